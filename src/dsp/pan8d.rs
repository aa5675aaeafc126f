//! [`Pan8d`]: "8D audio" — a point source circling the listener's head, rendered to stereo.
//!
//! Why it exists: the 8D service this crate replaces panned with `pan = sin(2π·t/T)`;
//! [`PanMode::Sine`] reproduces that exactly (with the equal-power or linear law), and
//! [`PanMode::Binaural`] adds the cues that make the motion sound like a circle rather than a
//! left–right swing (dsp-reference §6): interaural time difference through a per-ear fractional
//! delay (Woodworth spherical head), Brown–Duda head shadow, and a mild rear cue.
//!
//! Input handling: every input channel is downmixed to mono with equal weights (stereo:
//! `(L + R)/2`) and that mono source is panned. A rotating *point source* is what "8D" means; the
//! alternative, balance panning of the existing channels (ffmpeg `apulsator`), loses the opposite
//! channel's content when hard-panned (§6.2). Output is always stereo.
//!
//! Time: the source position is a function of the absolute frame index, counted by the stage
//! from the first frame after `prepare`/`reset`, so output never depends on block boundaries or
//! on the (unknown) stream length. In sine mode the two gain curves are evaluated exactly (`f64`
//! `sin`/`cos`) at every [`GAIN_SEGMENT`]-th absolute frame, with their time derivatives, and
//! each segment in between is the cubic Hermite interpolant of those values and slopes: the
//! curves are smooth, so the interpolation error is at most 4.3e-8 at the fastest rotation
//! (0.5 s) at 8 kHz, below one f32 ulp of a gain near 1 (6e-8), 5e-11 at 44.1 kHz and 1e-15 for
//! the default 8 s period (the f32 rounding of the gains is what the output shows), and the
//! per-frame work is a short polynomial instead of three `f64` transcendental calls. The
//! segment grid is absolute, so block boundaries still change nothing. Binaural mode does the
//! same with its five cues (each ear's delay and shadow, the rear shelf) on an absolute grid of
//! at most [`MAX_CUE_SEGMENT`] frames, short enough that the source turns at most
//! [`MAX_CUE_TURN_RAD`] per segment, interpolated linearly: the far ear's delay and shadow have a
//! cusp where the source passes ±90°, where a cubic would overshoot and a straight line cannot.
//!
//! Pure DSP: depends on `audio` only; allocates in `prepare`, never in `process`.

use std::f64::consts::{FRAC_1_SQRT_2, FRAC_PI_2, PI, TAU};

use super::{ParamError, Stage, StageContext, StageError};
use crate::audio::{Block, StreamSpec};

/// Head radius `a` of the spherical-head model, metres (Woodworth / Brown–Duda).
const HEAD_RADIUS_M: f64 = 0.0875;
/// Speed of sound `c`, m/s.
const SPEED_OF_SOUND_M_S: f64 = 343.0;
/// `a/c` in seconds (≈ 255 µs); the Woodworth ITD is `(a/c)(θ + sin θ)`, at most ≈ 656 µs.
const HEAD_DELAY_S: f64 = HEAD_RADIUS_M / SPEED_OF_SOUND_M_S;
/// Largest per-ear path delay, `(a/c)(π/2 + 1)` (source directly opposite the ear).
const MAX_EAR_DELAY_S: f64 = HEAD_DELAY_S * (FRAC_PI_2 + 1.0);
/// Brown–Duda head-shadow corner `ω0 = c/a`, rad/s.
const SHADOW_OMEGA: f64 = SPEED_OF_SOUND_M_S / HEAD_RADIUS_M;
/// Brown–Duda shadow depth: HF gain at the deepest point (−20 dB).
const SHADOW_ALPHA_MIN: f64 = 0.1;
/// Brown–Duda: ear–source angle of the deepest shadow (150°).
const SHADOW_PHI_MIN: f64 = 150.0 / 180.0 * PI;
/// Rear (pinna) shelf corner, rad/s (TASCAR `omega_front`).
const REAR_OMEGA: f64 = 11_200.0;
/// Rear shelf HF gain directly behind (TASCAR `alphamin_front` 0.39 ≈ −8 dB at Nyquist; ≈ −5 dB
/// at 8 kHz): a mild front/back cue.
const REAR_ALPHA_MIN: f64 = 0.39;
/// Fixed extra delay of both ears in binaural mode, in frames: the cubic Lagrange interpolator
/// reads one sample ahead of the interpolated position, so the smallest usable delay is 1. The
/// stage reports it as latency, so after the chain's compensation the near ear at ±90° is
/// sample-aligned with the input.
const BINAURAL_LATENCY: usize = 1;

/// Frames per segment of the sine-mode gain curves (see the module docs). A power of two, so the
/// segment's parameter `j / GAIN_SEGMENT` is exact; 32 keeps the Hermite error below 4.3e-8
/// even for a 0.5 s rotation at 8 kHz (0.05 rad per segment; the error scales with its 4th
/// power) while the two exact evaluations per segment cost a few instructions per frame.
const GAIN_SEGMENT: usize = 32;

/// `j / GAIN_SEGMENT` for `j` in `0..GAIN_SEGMENT`: the Hermite parameter of each frame.
const SEGMENT_T: [f64; GAIN_SEGMENT] = {
    let mut t = [0.0; GAIN_SEGMENT];
    let mut j = 0;
    while j < GAIN_SEGMENT {
        t[j] = j as f64 / GAIN_SEGMENT as f64;
        j += 1;
    }
    t
};

/// Most frames per segment of the binaural cues (see the module docs).
const MAX_CUE_SEGMENT: u64 = 16;
/// Most the source may turn within one binaural cue segment, radians: bounds the linear
/// interpolation's error, which is largest at the far ear's cusp: at most `(a/c)·turn/2` =
/// 0.51 µs of delay (the ITD a listener can tell apart is about 10 µs) and 2.3e-3 of shadow α,
/// whatever the rate. Measured against per-frame cues by a test.
const MAX_CUE_TURN_RAD: f64 = 0.004;

/// The binaural cues of one frame: `[delay_L, delay_R, shadow_L, shadow_R, rear]` (delays in
/// frames without the fixed latency, shadow and rear as the shelves' HF gain α).
type Cues = [f64; 5];

/// The binaural cues of the current segment: the value at its first frame and the change per
/// frame (see the module docs).
#[derive(Debug, Clone)]
struct CueSegment {
    /// Absolute segment index (`frame / frames`); `None` before the first.
    index: Option<u64>,
    /// Frames per segment: a power of two ≤ [`MAX_CUE_SEGMENT`] (set by `prepare`).
    frames: u64,
    start: Cues,
    step: Cues,
    /// The exact cues at the segment's end (the next segment's start).
    end: Cues,
}

impl Default for CueSegment {
    fn default() -> Self {
        Self {
            index: None,
            frames: 1,
            start: [0.0; 5],
            step: [0.0; 5],
            end: [0.0; 5],
        }
    }
}

/// How the pan position maps to the two channel gains (`n = (p + 1)/2`, p ∈ −1..=1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PanLaw {
    /// `gL = cos(π/2·n)`, `gR = sin(π/2·n)`: constant power, −3 dB (0.7071) at the centre.
    #[default]
    EqualPower,
    /// `gL = 1 − n`, `gR = n`: constant amplitude sum, −6 dB at the centre (ffmpeg `apulsator`).
    Linear,
}

/// Which spatialisation renders the rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PanMode {
    /// The existing service: level panning with `p(t) = depth·sin(2π·t/period)`.
    #[default]
    Sine,
    /// Spherical-head rendering of a source at azimuth `θ(t) = 2π·t/period` (0 = front, turning
    /// right): per-ear fractional delay (ITD), Brown–Duda head shadow, mild rear shelf. `law` is
    /// not used: the interaural level difference comes from the frequency-dependent head shadow
    /// (0 dB at DC, as a real head), and both ears get the equal-power centre level 1/√2 so the
    /// loudness matches sine mode. Applying a full level pan on top would mute the far ear at
    /// ±90° and with it the ITD cue.
    Binaural,
}

/// Parameters of [`Pan8d`]; the job-spec vocabulary:
/// `{"type": "pan8d", "period_s": 8.0, "law": "equal_power", "mode": "sine"}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pan8dParams {
    /// Time for one full circle, seconds, 0.5..=120 (default 8.0).
    pub period_s: f64,
    /// Pan law for [`PanMode::Sine`] (default equal power).
    pub law: PanLaw,
    /// Rendering (default [`PanMode::Sine`], the existing service).
    pub mode: PanMode,
    /// How far the source swings, 0..=1 (default 1.0 = fully left/right). Sine mode scales the
    /// pan position; binaural mode scales the lateral coordinate `sin θ` (ITD and shadow) and the
    /// rear cue. 0 = a static centred source.
    pub depth: f64,
}

impl Default for Pan8dParams {
    fn default() -> Self {
        Self {
            period_s: 8.0,
            law: PanLaw::EqualPower,
            mode: PanMode::Sine,
            depth: 1.0,
        }
    }
}

impl Pan8dParams {
    /// Checks `period_s` ∈ 0.5..=120 and `depth` ∈ 0..=1 (finite).
    ///
    /// # Errors
    /// A [`ParamError`] naming the first offending field.
    pub fn validate(&self) -> Result<(), ParamError> {
        ParamError::check("period_s", self.period_s, 0.5, 120.0)?;
        ParamError::check("depth", self.depth, 0.0, 1.0)?;
        Ok(())
    }
}

/// Channel gains `(gL, gR)` of `law` at pan position `p` ∈ −1..=1 (−1 = left, +1 = right): the
/// reference formula the tests hold the interpolated curves to.
#[cfg(test)]
fn pan_gains(law: PanLaw, p: f64) -> (f64, f64) {
    let n = (p + 1.0) * 0.5;
    match law {
        PanLaw::EqualPower => {
            let (sin, cos) = (FRAC_PI_2 * n).sin_cos();
            (cos, sin)
        }
        PanLaw::Linear => (1.0 - n, n),
    }
}

/// Gains `(gL, gR)` of `law` at pan position `p` and their derivatives with respect to `p`.
fn pan_gains_and_slopes(law: PanLaw, p: f64) -> [(f64, f64); 2] {
    match law {
        PanLaw::EqualPower => {
            // gL = cos u, gR = sin u with u = π/2·(p + 1)/2, du/dp = π/4.
            let (sin, cos) = (FRAC_PI_2 * (p + 1.0) * 0.5).sin_cos();
            let du = std::f64::consts::FRAC_PI_4;
            [(cos, -sin * du), (sin, cos * du)]
        }
        PanLaw::Linear => [(1.0 - (p + 1.0) * 0.5, -0.5), ((p + 1.0) * 0.5, 0.5)],
    }
}

/// One channel's gain curve over one segment, `g(t) = a + t·(b + t·(c + t·d))` for
/// `t = j / GAIN_SEGMENT`: the cubic Hermite interpolant of the exact values `y0`, `y1` and
/// slopes (per segment) `m0`, `m1` at the segment's two ends.
fn hermite(y0: f64, m0: f64, y1: f64, m1: f64, out: &mut [f32; GAIN_SEGMENT]) {
    let (a, b) = (y0, m0);
    let c = 3.0 * (y1 - y0) - 2.0 * m0 - m1;
    let d = 2.0 * (y0 - y1) + m0 + m1;
    for (g, &t) in out.iter_mut().zip(&SEGMENT_T) {
        *g = (a + t * (b + t * (c + t * d))) as f32;
    }
}

/// The sine-mode gains of the segment that holds the current frame (see the module docs).
#[derive(Debug, Clone)]
struct GainSegment {
    /// Absolute segment index (`frame / GAIN_SEGMENT`); `None` before the first.
    index: Option<u64>,
    left: [f32; GAIN_SEGMENT],
    right: [f32; GAIN_SEGMENT],
    /// The exact gains and slopes at the segment's end, which are the next segment's start
    /// (the same frame, so reusing them changes nothing and halves the exact evaluations).
    end: [(f64, f64); 2],
}

impl Default for GainSegment {
    fn default() -> Self {
        Self {
            index: None,
            left: [0.0; GAIN_SEGMENT],
            right: [0.0; GAIN_SEGMENT],
            end: [(0.0, 0.0); 2],
        }
    }
}

/// Path delay to one ear, seconds, for ear–source angle `phi` (0 = source on the ear's axis), as
/// Brown & Duda / TASCAR: `(a/c)(1 − cos φ)` in the lit half, `(a/c)(φ − π/2 + 1)` around the
/// head. The difference between the two ears is the Woodworth ITD `(a/c)(θ + sin θ)` of the
/// lateral angle θ, and unlike a "delay only the far ear" form it is C¹ in the angle.
fn ear_delay_s(phi: f64, cos_phi: f64) -> f64 {
    if phi < FRAC_PI_2 {
        HEAD_DELAY_S * (1.0 - cos_phi)
    } else {
        HEAD_DELAY_S * (phi - FRAC_PI_2 + 1.0)
    }
}

/// Brown–Duda shadow HF gain `α(φ) = (1 + α_min/2) + (1 − α_min/2)·cos(π·φ/φ_min)`: 2 (+6 dB)
/// facing the source, 0.1 (−20 dB) at 150°, rising again to ≈0.28 at 180° (the bright spot).
fn shadow_alpha(phi: f64) -> f64 {
    (1.0 + SHADOW_ALPHA_MIN / 2.0)
        + (1.0 - SHADOW_ALPHA_MIN / 2.0) * (PI * phi / SHADOW_PHI_MIN).cos()
}

/// Bilinear first-order high shelf (dsp-reference §6.4, TASCAR form):
/// `H(s) = (1 + α·s/(2ω)) / (1 + s/(2ω))`, DC gain 1, Nyquist gain α. The pole (`a1`) depends on
/// the rate only; α changes per sample through `b0`, `b1`, which in direct form I changes the
/// output smoothly (no state rescaling needed, no clicks).
#[derive(Debug, Clone, Copy, Default)]
struct Shelf {
    /// `1/(ω + fs)`.
    norm: f64,
    omega: f64,
    fs: f64,
    a1: f64,
    x1: f64,
    y1: f64,
}

impl Shelf {
    fn new(omega: f64, fs: f64) -> Self {
        let norm = 1.0 / (omega + fs);
        Self {
            norm,
            omega,
            fs,
            a1: (omega - fs) * norm,
            x1: 0.0,
            y1: 0.0,
        }
    }

    #[inline]
    fn process(&mut self, x: f64, alpha: f64) -> f64 {
        let a = alpha * self.fs;
        let b0 = (self.omega + a) * self.norm;
        let b1 = (self.omega - a) * self.norm;
        let y = b0 * x + b1 * self.x1 - self.a1 * self.y1;
        self.x1 = x;
        self.y1 = y;
        y
    }

    /// Magnitude response at `freq` Hz for a fixed `alpha` (tests).
    #[cfg(test)]
    fn magnitude(&self, alpha: f64, freq: f64) -> f64 {
        let a = alpha * self.fs;
        let b0 = (self.omega + a) * self.norm;
        let b1 = (self.omega - a) * self.norm;
        let w = TAU * freq / self.fs;
        let (s, c) = w.sin_cos();
        let num = ((b0 + b1 * c).powi(2) + (b1 * s).powi(2)).sqrt();
        let den = ((1.0 + self.a1 * c).powi(2) + (self.a1 * s).powi(2)).sqrt();
        num / den
    }

    fn clear(&mut self) {
        self.x1 = 0.0;
        self.y1 = 0.0;
    }
}

/// A power-of-two ring of the mono source, read at fractional delays with cubic Lagrange
/// interpolation (flat to a few kHz, unlike linear interpolation which dulls the far ear).
#[derive(Debug, Clone, Default)]
struct FractionalDelay {
    buf: Vec<f32>,
    mask: usize,
    /// Index of the most recently written sample.
    pos: usize,
}

impl FractionalDelay {
    /// Allocates room for delays up to `max_delay` frames (prepare only).
    fn with_max_delay(max_delay: usize) -> Self {
        // The 4-point window reaches 2 samples beyond the integer delay.
        let len = (max_delay + 4).next_power_of_two();
        Self {
            buf: vec![0.0; len],
            mask: len - 1,
            pos: 0,
        }
    }

    #[inline]
    fn push(&mut self, x: f32) {
        self.pos = (self.pos + 1) & self.mask;
        self.buf[self.pos] = x;
    }

    /// The signal `delay` frames ago (`delay` ≥ 1, ≤ the prepared maximum), interpolated by the
    /// cubic Lagrange polynomial through the samples at integer delays `i−1, i, i+1, i+2`
    /// (`i = ⌊delay⌋`), evaluated at fraction `t = delay − i`. At `t = 0` it returns the sample
    /// at delay `i` exactly.
    #[inline]
    fn read(&self, delay: f64) -> f64 {
        let i = delay as usize; // delay ≥ 1 > 0, so truncation is floor
        let t = delay - i as f64;
        let at = |d: usize| f64::from(self.buf[self.pos.wrapping_sub(d) & self.mask]);
        let (xm1, x0, x1, x2) = (at(i - 1), at(i), at(i + 1), at(i + 2));
        let (tp1, tm1, tm2) = (t + 1.0, t - 1.0, t - 2.0);
        let wm1 = -t * tm1 * tm2 / 6.0;
        let w0 = tp1 * tm1 * tm2 / 2.0;
        let w1 = -tp1 * t * tm2 / 2.0;
        let w2 = tp1 * t * tm1 / 6.0;
        wm1 * xm1 + w0 * x0 + w1 * x1 + w2 * x2
    }

    fn clear(&mut self) {
        self.buf.fill(0.0);
        self.pos = 0;
    }
}

/// One ear's binaural rendering state.
#[derive(Debug, Clone, Copy, Default)]
struct Ear {
    shadow: Shelf,
    rear: Shelf,
}

/// Where the source is, per ear, for one frame of binaural rendering.
#[derive(Debug, Clone, Copy, PartialEq)]
struct EarCues {
    /// Delay of the ear's signal, frames (without the fixed [`BINAURAL_LATENCY`]).
    delay_frames: f64,
    /// Head-shadow HF gain α.
    shadow_alpha: f64,
}

/// The circular panner (see the module docs). Mono or multichannel in, stereo out.
#[derive(Debug, Clone)]
pub struct Pan8d {
    params: Pan8dParams,
    sample_rate: f64,
    /// `period_s · fs`: frames per revolution.
    period_frames: f64,
    /// Equal downmix weight, `1/channels`.
    downmix: f32,
    /// Absolute index of the next input frame (since prepare/reset): the clock of the rotation.
    frame: u64,
    delay: FractionalDelay,
    ears: [Ear; 2],
    /// Head-shadow and rear filters on (tests switch them off to measure the pure ITD).
    filters: bool,
    /// Sine mode: the gain curves of the current segment.
    segment: GainSegment,
    /// Binaural mode: the cues of the current segment.
    cue_segment: CueSegment,
}

impl Pan8d {
    /// A panner with `params` (call [`Pan8dParams::validate`] first).
    pub fn new(params: Pan8dParams) -> Self {
        Self {
            params,
            sample_rate: 0.0,
            period_frames: 1.0,
            downmix: 1.0,
            frame: 0,
            delay: FractionalDelay::default(),
            ears: [Ear::default(); 2],
            filters: true,
            segment: GainSegment::default(),
            cue_segment: CueSegment::default(),
        }
    }

    /// The parameters this panner was built with.
    pub fn params(&self) -> &Pan8dParams {
        &self.params
    }

    /// Azimuth θ ∈ [0, 2π) of the source at absolute input frame `frame` (0 = front, π/2 =
    /// right). The fraction is taken before scaling by 2π so the phase stays accurate on
    /// multi-hour streams.
    #[inline]
    fn azimuth(&self, frame: u64) -> f64 {
        TAU * (frame as f64 / self.period_frames).fract()
    }

    /// Per-ear cues `[left, right]` for a source at lateral coordinate `x` (`depth·sin θ`, +1 =
    /// fully right): the ear–source angles satisfy `cos φ_R = x`, `cos φ_L = −x`.
    #[inline]
    fn ear_cues(&self, x: f64) -> [EarCues; 2] {
        let x = x.clamp(-1.0, 1.0);
        let phi_right = x.acos();
        let phi_left = PI - phi_right;
        let cue = |phi: f64, cos_phi: f64| EarCues {
            delay_frames: ear_delay_s(phi, cos_phi) * self.sample_rate,
            shadow_alpha: shadow_alpha(phi),
        };
        [cue(phi_left, -x), cue(phi_right, x)]
    }

    /// Exact gains and their slopes per segment at absolute frame `frame`:
    /// `[(gL, dgL), (gR, dgR)]`.
    fn gains_at(&self, frame: u64) -> [(f64, f64); 2] {
        let (sin, cos) = self.azimuth(frame).sin_cos();
        let depth = self.params.depth;
        // dp/d(segment) = depth·cos θ · dθ/dframe · GAIN_SEGMENT.
        let dp = depth * cos * TAU / self.period_frames * GAIN_SEGMENT as f64;
        pan_gains_and_slopes(self.params.law, depth * sin).map(|(g, slope)| (g, slope * dp))
    }

    /// Makes `self.segment` hold segment `index`'s gain curves.
    fn load_segment(&mut self, index: u64) {
        if self.segment.index == Some(index) {
            return;
        }
        let start = index * GAIN_SEGMENT as u64;
        let [(l0, ml0), (r0, mr0)] =
            if self.segment.index.and_then(|i| i.checked_add(1)) == Some(index) {
                self.segment.end
            } else {
                self.gains_at(start)
            };
        let end = self.gains_at(start + GAIN_SEGMENT as u64);
        let [(l1, ml1), (r1, mr1)] = end;
        hermite(l0, ml0, l1, ml1, &mut self.segment.left);
        hermite(r0, mr0, r1, mr1, &mut self.segment.right);
        self.segment.index = Some(index);
        self.segment.end = end;
    }

    fn process_sine(&mut self, input: &Block, output: &mut Block) {
        let frames = input.frames();
        let mut i = 0;
        while i < frames {
            let offset = (self.frame % GAIN_SEGMENT as u64) as usize;
            let n = (GAIN_SEGMENT - offset).min(frames - i);
            self.load_segment(self.frame / GAIN_SEGMENT as u64);
            let left_gains = &self.segment.left[offset..offset + n];
            let right_gains = &self.segment.right[offset..offset + n];
            let mut channels = output.channels_mut();
            let (Some(left), Some(right)) = (channels.next(), channels.next()) else {
                return; // prepare made the output stereo
            };
            let (left, right) = (&mut left[i..i + n], &mut right[i..i + n]);
            let pan = |mono: f32, k: usize, left: &mut [f32], right: &mut [f32]| {
                left[k] = mono * left_gains[k];
                right[k] = mono * right_gains[k];
            };
            match input.channel_count() {
                1 => {
                    for (k, &mono) in input.channel(0)[i..i + n].iter().enumerate() {
                        pan(mono, k, left, right);
                    }
                }
                2 => {
                    let (l_in, r_in) = (&input.channel(0)[i..i + n], &input.channel(1)[i..i + n]);
                    for (k, (&l, &r)) in l_in.iter().zip(r_in).enumerate() {
                        // (L + R)/2, written as in the docs (the product by 0.5 is the same value).
                        pan((l + r) * 0.5, k, left, right);
                    }
                }
                _ => {
                    for k in 0..n {
                        pan(self.mono_at(input, i + k), k, left, right);
                    }
                }
            }
            self.frame += n as u64;
            i += n;
        }
    }

    /// The exact binaural cues at absolute frame `frame`.
    fn cues_at(&self, frame: u64) -> Cues {
        let depth = self.params.depth;
        let (sin, cos) = self.azimuth(frame).sin_cos();
        let [left, right] = self.ear_cues(depth * sin);
        // Rear cue: 0 at the sides and in front, growing to `depth` directly behind.
        let behind = depth * (-cos).max(0.0);
        let rear_alpha = 1.0 - (1.0 - REAR_ALPHA_MIN) * behind;
        [
            left.delay_frames,
            right.delay_frames,
            left.shadow_alpha,
            right.shadow_alpha,
            rear_alpha,
        ]
    }

    /// Makes `self.cue_segment` hold segment `index`'s cues.
    fn load_cue_segment(&mut self, index: u64) {
        if self.cue_segment.index == Some(index) {
            return;
        }
        let frames = self.cue_segment.frames;
        let first = index * frames;
        let start = if self.cue_segment.index.and_then(|i| i.checked_add(1)) == Some(index) {
            self.cue_segment.end
        } else {
            self.cues_at(first)
        };
        let end = self.cues_at(first + frames);
        let segment = &mut self.cue_segment;
        for ((step, &a), &b) in segment.step.iter_mut().zip(&start).zip(&end) {
            *step = (b - a) / frames as f64;
        }
        segment.start = start;
        segment.end = end;
        segment.index = Some(index);
    }

    fn process_binaural(&mut self, input: &Block, output: &mut Block) {
        let frames = input.frames();
        for i in 0..frames {
            self.delay.push(self.mono_at(input, i));
            let per_segment = self.cue_segment.frames;
            self.load_cue_segment(self.frame / per_segment);
            let j = (self.frame % per_segment) as f64;
            let s = &self.cue_segment;
            let cue = |k: usize| s.start[k] + s.step[k] * j;
            let (delays, shadows, rear_alpha) = ([cue(0), cue(1)], [cue(2), cue(3)], cue(4));
            for (ch, ear) in self.ears.iter_mut().enumerate() {
                let delayed = self.delay.read(BINAURAL_LATENCY as f64 + delays[ch]);
                let y = if self.filters {
                    let shadowed = ear.shadow.process(delayed, shadows[ch]);
                    ear.rear.process(shadowed, rear_alpha)
                } else {
                    delayed
                };
                output.channel_mut(ch)[i] = (y * FRAC_1_SQRT_2) as f32;
            }
            self.frame += 1;
        }
    }

    /// Equal-weight downmix of frame `i`.
    #[inline]
    fn mono_at(&self, input: &Block, i: usize) -> f32 {
        match input.channel_count() {
            1 => input.channel(0)[i],
            // (L + R)/2, written as in the docs (the product by 0.5 is the same value).
            2 => (input.channel(0)[i] + input.channel(1)[i]) * 0.5,
            _ => input.channels().map(|c| c[i]).sum::<f32>() * self.downmix,
        }
    }
}

impl Stage for Pan8d {
    fn name(&self) -> &'static str {
        "pan8d"
    }

    fn prepare(
        &mut self,
        input: StreamSpec,
        _max_block_frames: usize,
    ) -> Result<StreamSpec, StageError> {
        let fs = f64::from(input.sample_rate);
        self.sample_rate = fs;
        self.period_frames = self.params.period_s * fs;
        self.downmix = 1.0 / input.channels as f32;
        // The longest power-of-two segment (≤ MAX_CUE_SEGMENT) over which the source turns at
        // most MAX_CUE_TURN_RAD.
        let turn_per_frame = TAU / self.period_frames;
        let mut frames = MAX_CUE_SEGMENT;
        while frames > 1 && frames as f64 * turn_per_frame > MAX_CUE_TURN_RAD {
            frames /= 2;
        }
        self.cue_segment.frames = frames;
        if self.params.mode == PanMode::Binaural {
            let max_delay = BINAURAL_LATENCY + (MAX_EAR_DELAY_S * fs).ceil() as usize;
            self.delay = FractionalDelay::with_max_delay(max_delay);
            for ear in &mut self.ears {
                ear.shadow = Shelf::new(SHADOW_OMEGA, fs);
                ear.rear = Shelf::new(REAR_OMEGA, fs);
            }
        }
        self.reset();
        Ok(StreamSpec {
            sample_rate: input.sample_rate,
            channels: 2,
        })
    }

    fn process(&mut self, input: &Block, output: &mut Block, _cx: &mut StageContext) {
        output.set_frames(input.frames());
        match self.params.mode {
            PanMode::Sine => self.process_sine(input, output),
            PanMode::Binaural => self.process_binaural(input, output),
        }
    }

    fn latency_frames(&self) -> usize {
        match self.params.mode {
            PanMode::Sine => 0,
            PanMode::Binaural => BINAURAL_LATENCY,
        }
    }

    fn state_bytes(&self) -> usize {
        self.delay.buf.capacity() * std::mem::size_of::<f32>()
    }

    fn reset(&mut self) {
        self.frame = 0;
        self.segment.index = None;
        self.cue_segment.index = None;
        self.delay.clear();
        for ear in &mut self.ears {
            ear.shadow.clear();
            ear.rear.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic noise without a dev-dependency.
    fn noise(seed: u64, frames: usize) -> Vec<f32> {
        let mut state = seed.max(1);
        (0..frames)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
                ((bits as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * 0.5
            })
            .collect()
    }

    fn sine(freq: f64, rate: u32, frames: usize) -> Vec<f32> {
        (0..frames)
            .map(|i| (TAU * freq * i as f64 / f64::from(rate)).sin() as f32)
            .collect()
    }

    fn params(mode: PanMode, law: PanLaw, period_s: f64) -> Pan8dParams {
        Pan8dParams {
            period_s,
            law,
            mode,
            depth: 1.0,
        }
    }

    /// This stage through a one-stage chain in blocks of `block` frames (see `test_util`).
    fn run_chain(
        params: &Pan8dParams,
        rate: u32,
        channels: &[Vec<f32>],
        block: usize,
    ) -> Vec<Vec<f32>> {
        crate::dsp::test_util::run_chain(
            Box::new(Pan8d::new(params.clone())),
            rate,
            channels,
            block,
        )
    }

    /// Runs the bare stage once over `channels`, starting at absolute frame `start_frame`.
    fn run_at(stage: &mut Pan8d, start_frame: u64, channels: &[Vec<f32>]) -> Vec<Vec<f32>> {
        stage.frame = start_frame;
        let slices: Vec<&[f32]> = channels.iter().map(|c| c.as_slice()).collect();
        let input = Block::from_channels(&slices);
        let mut output = Block::new(2, input.frames());
        stage.process(&input, &mut output, &mut StageContext::default());
        output.channels().map(<[f32]>::to_vec).collect()
    }

    fn prepared(params: Pan8dParams, rate: u32, channels: usize) -> Pan8d {
        let mut stage = Pan8d::new(params);
        stage
            .prepare(StreamSpec::new(rate, channels).unwrap(), 4096)
            .unwrap();
        stage
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn equal_power_centre_is_0_7071_and_power_is_constant() {
        // Tolerance 1e-6 against 1/√2 = 0.70710678 ("0.7071" in the reference, rounded).
        let (l, r) = pan_gains(PanLaw::EqualPower, 0.0);
        assert!((l - FRAC_1_SQRT_2).abs() < 1e-6 && (r - FRAC_1_SQRT_2).abs() < 1e-6);
        // The stage's own output for a constant 1.0 across a whole period (f32 output).
        let rate = 44_100;
        let p = params(PanMode::Sine, PanLaw::EqualPower, 2.0);
        let out = run_chain(&p, rate, &[vec![1.0; 2 * rate as usize]], 4096);
        assert!((f64::from(out[0][0]) - FRAC_1_SQRT_2).abs() < 1e-6);
        assert!((f64::from(out[1][0]) - FRAC_1_SQRT_2).abs() < 1e-6);
        for (i, (&l, &r)) in out[0].iter().zip(&out[1]).enumerate() {
            let power = f64::from(l).powi(2) + f64::from(r).powi(2);
            assert!((power - 1.0).abs() < 1e-6, "frame {i}: {power}");
        }
    }

    #[test]
    fn sine_gains_equal_the_exact_formula_at_every_frame() {
        // The Hermite segments against the formula evaluated per frame in f64, for both laws,
        // the fastest rotation at the lowest and a common rate, and a depth below 1. Tolerance
        // 1.2e-7: the f32 rounding of a gain ≤ 1 (half an ulp, 3e-8) plus the interpolation
        // error (≤ 4.3e-8 at 8 kHz, see GAIN_SEGMENT), so an interpolation error of 1.5 f32
        // ulps fails. Also over a multi-hour offset, where the phase is taken modulo the period.
        let mut worst = 0.0f64;
        for law in [PanLaw::EqualPower, PanLaw::Linear] {
            for (rate, period_s, depth, start) in [
                (8_000, 0.5, 1.0, 0),
                (44_100, 0.5, 1.0, 0),
                (44_100, 8.0, 0.7, 0),
                (48_000, 3.3, 1.0, 48_000 * 3 * 3600 + 17),
            ] {
                let p = Pan8dParams {
                    period_s,
                    law,
                    depth,
                    ..Pan8dParams::default()
                };
                let mut stage = prepared(p, rate, 1);
                let frames = (period_s * f64::from(rate)) as usize + 100;
                let out = run_at(&mut stage, start, &[vec![1.0; frames]]);
                for (k, (&left, &right)) in out[0].iter().zip(&out[1]).enumerate() {
                    let frame = start + k as u64;
                    let period = period_s * f64::from(rate);
                    let theta = TAU * (frame as f64 / period).fract();
                    let (gl, gr) = pan_gains(law, depth * theta.sin());
                    for (got, want) in [(left, gl), (right, gr)] {
                        let error = (f64::from(got) - want).abs();
                        worst = worst.max(error);
                        assert!(
                            error < 1.2e-7,
                            "{law:?} {rate} Hz frame {frame}: {got} vs {want}"
                        );
                    }
                }
            }
        }
        eprintln!("largest gain error against the formula: {worst:e}");
    }

    /// Binaural output with the cues computed exactly at every frame (the rendering before the
    /// segments): the reference the segmented cues are held to.
    fn binaural_with_exact_cues(stage: &mut Pan8d, input: &[f32]) -> Vec<Vec<f32>> {
        let mut output = vec![Vec::new(), Vec::new()];
        for &x in input {
            stage.delay.push(x);
            let cues = stage.cues_at(stage.frame);
            for (ch, ear) in stage.ears.iter_mut().enumerate() {
                let delayed = stage.delay.read(BINAURAL_LATENCY as f64 + cues[ch]);
                let shadowed = ear.shadow.process(delayed, cues[2 + ch]);
                let y = ear.rear.process(shadowed, cues[4]);
                output[ch].push((y * FRAC_1_SQRT_2) as f32);
            }
            stage.frame += 1;
        }
        output
    }

    #[test]
    fn binaural_segments_follow_the_per_frame_cues() {
        // Over one full revolution (both ±90° cusps), for the fastest rotation at the lowest
        // and a common rate and the default: the interpolated cues against the exact ones, and
        // the output against a rendering with exact cues per frame (noise at ±0.5).
        // Bounds: the delay error (a/c)·MAX_CUE_TURN_RAD/2 = 0.51 µs, α 2.3e-3 (see the
        // constant); the output error is what that does to noise at ±0.5 (7.2e-4 measured at
        // 44.1 kHz, 0.5 s), bounded at 1e-3.
        let max_delay_s = HEAD_DELAY_S * MAX_CUE_TURN_RAD / 2.0 * 1.01;
        for (rate, period_s) in [(8_000, 0.5), (44_100, 0.5), (44_100, 8.0), (96_000, 2.0)] {
            let p = params(PanMode::Binaural, PanLaw::EqualPower, period_s);
            let frames = (period_s * f64::from(rate)) as usize + 100;
            let mut stage = prepared(p.clone(), rate, 1);
            let (mut delay_error, mut alpha_error) = (0.0f64, 0.0f64);
            for frame in 0..frames as u64 {
                let per = stage.cue_segment.frames;
                stage.load_cue_segment(frame / per);
                let j = (frame % per) as f64;
                let exact = stage.cues_at(frame);
                for (k, &want) in exact.iter().enumerate() {
                    let got = stage.cue_segment.start[k] + stage.cue_segment.step[k] * j;
                    let error = (got - want).abs();
                    if k < 2 {
                        delay_error = delay_error.max(error);
                    } else {
                        alpha_error = alpha_error.max(error);
                    }
                }
            }
            let input = noise(9, frames);
            let mut fast = prepared(p.clone(), rate, 1);
            let got = run_at(&mut fast, 0, std::slice::from_ref(&input));
            let mut exact = prepared(p, rate, 1);
            let want = binaural_with_exact_cues(&mut exact, &input);
            let output_error = got
                .iter()
                .flatten()
                .zip(want.iter().flatten())
                .map(|(&a, &b)| f64::from((a - b).abs()))
                .fold(0.0, f64::max);
            let delay_error_s = delay_error / f64::from(rate);
            eprintln!(
                "{rate} Hz, {period_s} s: delay error {delay_error_s:.2e} s, α error \
                 {alpha_error:.2e}, output error {output_error:.2e}"
            );
            assert!(
                delay_error_s <= max_delay_s,
                "delay error {delay_error_s} s"
            );
            assert!(alpha_error <= 2.3e-3, "α error {alpha_error}");
            assert!(output_error <= 1e-3, "output error {output_error}");
        }
    }

    #[test]
    fn linear_law_sums_to_one() {
        let rate = 48_000;
        let p = params(PanMode::Sine, PanLaw::Linear, 0.5);
        let out = run_chain(&p, rate, &[vec![1.0; rate as usize]], 1000);
        assert!((out[0][0] - 0.5).abs() < 1e-6);
        for (&l, &r) in out[0].iter().zip(&out[1]) {
            assert!((l + r - 1.0).abs() < 1e-6, "{l} + {r}");
        }
    }

    #[test]
    fn phase_follows_the_formula_and_is_fully_right_at_a_quarter_period() {
        let rate = 44_100;
        let period_s = 2.0;
        let p = params(PanMode::Sine, PanLaw::EqualPower, period_s);
        let out = run_chain(&p, rate, &[vec![1.0; 2 * rate as usize]], 4096);
        // The minimum of L over the first half period is at t = period/4, within 1 frame.
        let half = (period_s * f64::from(rate) / 2.0) as usize;
        let argmin = (0..half)
            .min_by(|&a, &b| out[0][a].total_cmp(&out[0][b]))
            .unwrap();
        let quarter = period_s * f64::from(rate) / 4.0;
        assert!(
            (argmin as f64 - quarter).abs() <= 1.0,
            "{argmin} vs {quarter}"
        );
        assert!(out[0][argmin] < 1e-6 && (out[1][argmin] - 1.0).abs() < 1e-6);
        // And every frame matches the formula (1e-6: f64 gains rounded to f32).
        for (k, (&l, &r)) in out[0].iter().zip(&out[1]).enumerate() {
            let t = k as f64 / f64::from(rate);
            let n = ((TAU * t / period_s).sin() + 1.0) / 2.0;
            assert!(
                (f64::from(l) - (FRAC_PI_2 * n).cos()).abs() < 1e-6,
                "L at {k}"
            );
            assert!(
                (f64::from(r) - (FRAC_PI_2 * n).sin()).abs() < 1e-6,
                "R at {k}"
            );
        }
    }

    #[test]
    fn output_is_stereo_and_input_is_downmixed_equally() {
        for channels in [1, 2, 6] {
            let mut stage = Pan8d::new(Pan8dParams::default());
            let out = stage
                .prepare(StreamSpec::new(44_100, channels).unwrap(), 64)
                .unwrap();
            assert_eq!(out, StreamSpec::new(44_100, 2).unwrap());
        }
        // Stereo (1, 0) pans the mono 0.5; six channels of 1.0 pan 1.0. Frame 0 is the centre.
        let mut stage = prepared(Pan8dParams::default(), 44_100, 2);
        let out = run_at(&mut stage, 0, &[vec![1.0], vec![0.0]]);
        assert!((f64::from(out[0][0]) - 0.5 * FRAC_1_SQRT_2).abs() < 1e-6);
        let mut stage = prepared(Pan8dParams::default(), 44_100, 6);
        let out = run_at(&mut stage, 0, &vec![vec![1.0]; 6]);
        assert!((f64::from(out[1][0]) - FRAC_1_SQRT_2).abs() < 1e-6);
    }

    #[test]
    fn zero_depth_is_a_static_centre() {
        let p = Pan8dParams {
            depth: 0.0,
            ..Pan8dParams::default()
        };
        let out = run_chain(&p, 44_100, &[vec![1.0; 50_000]], 4096);
        assert!(out
            .iter()
            .flatten()
            .all(|&g| (f64::from(g) - FRAC_1_SQRT_2).abs() < 1e-6));
    }

    #[test]
    fn binaural_itd_at_90_degrees_is_28_9_samples() {
        let rate = 44_100;
        // The model's delays: right ear on axis (0), left ear around the head, (a/c)(π/2 + 1).
        let stage = prepared(
            params(PanMode::Binaural, PanLaw::EqualPower, 120.0),
            rate,
            1,
        );
        let [left, right] = stage.ear_cues(1.0);
        let itd = left.delay_frames - right.delay_frames;
        assert!((itd - 28.92).abs() < 0.01, "computed ITD {itd} samples");
        assert_eq!(right.delay_frames, 0.0);

        // Measured: broadband noise held at 90° (120 s period, 4096 frames centred on t = T/4,
        // where the angle moves 0.3°), shadow filters off so the delay line alone is measured;
        // cross-correlation peak of R against L, tolerance ±1 sample.
        let mut stage = prepared(
            params(PanMode::Binaural, PanLaw::EqualPower, 120.0),
            rate,
            1,
        );
        stage.filters = false;
        let frames = 4096;
        let start = (120.0 * f64::from(rate) / 4.0) as u64 - frames as u64 / 2;
        let out = run_at(&mut stage, start, &[noise(3, frames)]);
        let xcorr = |lag: usize| -> f64 {
            (100..frames - 100)
                .map(|n| f64::from(out[1][n]) * f64::from(out[0][n + lag]))
                .sum()
        };
        let best = (0..60)
            .max_by(|&a, &b| xcorr(a).total_cmp(&xcorr(b)))
            .unwrap();
        // Parabolic refinement of the peak, for a sub-sample estimate.
        let (c_prev, c0, c_next) = (xcorr(best - 1), xcorr(best), xcorr(best + 1));
        let refined = best as f64 + 0.5 * (c_prev - c_next) / (c_prev - 2.0 * c0 + c_next);
        eprintln!("ITD computed {itd:.3}, measured {best} (refined {refined:.3}) samples");
        assert!(
            (best as f64 - 28.92).abs() <= 1.0,
            "measured ITD {best} samples"
        );
        assert!(
            (refined - 28.92).abs() <= 0.5,
            "refined ITD {refined} samples"
        );
    }

    #[test]
    fn binaural_head_shadow_darkens_the_far_ear_only_at_high_frequencies() {
        let rate = 44_100;
        let p = params(PanMode::Binaural, PanLaw::EqualPower, 120.0);
        // Source held at 90° (right), as above. Windows of exactly 10 (100 Hz) and 800 (8 kHz)
        // periods after 2000 frames of settling.
        let level_difference_db = |freq: f64| {
            let mut stage = prepared(p.clone(), rate, 1);
            let frames = 6410;
            let start = (120.0 * f64::from(rate) / 4.0) as u64 - frames as u64 / 2;
            let out = run_at(&mut stage, start, &[sine(freq, rate, frames)]);
            20.0 * (rms(&out[1][2000..]) / rms(&out[0][2000..])).log10()
        };
        let hf = level_difference_db(8_000.0);
        let lf = level_difference_db(100.0);
        // Several dB at 8 kHz (model: ≈ 16 dB); ≈ 0 dB at 100 Hz (tolerance 0.5 dB).
        eprintln!("near - far: {hf:.2} dB at 8 kHz, {lf:.3} dB at 100 Hz");
        assert!(hf > 6.0, "near − far at 8 kHz: {hf} dB");
        assert!(lf.abs() < 0.5, "near − far at 100 Hz: {lf} dB");
        // The filter itself: DC gain 1 and Nyquist gain α.
        let shelf = Shelf::new(SHADOW_OMEGA, f64::from(rate));
        assert!((shelf.magnitude(0.1, 0.0) - 1.0).abs() < 1e-12);
        assert!((shelf.magnitude(0.1, f64::from(rate) / 2.0) - 0.1).abs() < 1e-9);
    }

    #[test]
    fn rear_cue_darkens_sources_behind() {
        // Front (θ = 0) vs back (θ = π): same ITD/shadow, the rear shelf only behind.
        let rate = 44_100;
        let p = params(PanMode::Binaural, PanLaw::EqualPower, 120.0);
        let level = |start: u64| {
            let mut stage = prepared(p.clone(), rate, 1);
            let out = run_at(&mut stage, start, &[sine(8_000.0, rate, 6410)]);
            rms(&out[0][2000..])
        };
        let front = level(120 * 44_100 - 3205);
        let back = level(60 * 44_100 - 3205);
        let db = 20.0 * (front / back).log10();
        eprintln!("front - back at 8 kHz: {db:.2} dB");
        assert!((3.0..8.0).contains(&db), "front − back at 8 kHz: {db} dB");
    }

    #[test]
    fn no_clicks_on_a_1_khz_sine() {
        // Fastest rotation (0.5 s), 2 revolutions: the largest sample-to-sample step of the
        // output stays below 1.1 × that of the input.
        let rate = 44_100;
        let input = sine(1_000.0, rate, rate as usize);
        let input_step = input
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0f32, f32::max);
        for mode in [PanMode::Sine, PanMode::Binaural] {
            for law in [PanLaw::EqualPower, PanLaw::Linear] {
                let out = run_chain(
                    &params(mode, law, 0.5),
                    rate,
                    std::slice::from_ref(&input),
                    4096,
                );
                for ch in &out {
                    let step = ch
                        .windows(2)
                        .map(|w| (w[1] - w[0]).abs())
                        .fold(0.0, f32::max);
                    eprintln!("{mode:?} {law:?}: step ratio {:.4}", step / input_step);
                    assert!(
                        step < 1.1 * input_step,
                        "{mode:?} {law:?}: step {step} vs input {input_step}"
                    );
                }
            }
        }
    }

    #[test]
    fn chunked_equals_whole_bit_exactly() {
        for mode in [PanMode::Sine, PanMode::Binaural] {
            let p = params(mode, PanLaw::EqualPower, 0.5);
            for rate in [44_100, 48_000, 96_000] {
                let frames = 50_000;
                let stereo = vec![noise(1, frames), noise(2, frames)];
                let mono = vec![noise(3, frames)];
                for input in [&stereo, &mono] {
                    let whole = run_chain(&p, rate, input, frames);
                    assert_eq!(whole[0].len(), frames);
                    for block in [1, 17, 4096, 48_000] {
                        let chunked = run_chain(&p, rate, input, block);
                        assert!(chunked == whole, "{mode:?} {rate} Hz block {block}");
                    }
                }
            }
        }
    }

    #[test]
    fn reset_restarts_the_rotation_at_zero() {
        for mode in [PanMode::Sine, PanMode::Binaural] {
            let p = params(mode, PanLaw::EqualPower, 1.0);
            let mut stage = prepared(p.clone(), 44_100, 1);
            let input = vec![noise(4, 10_000)];
            let first = run_at(&mut stage, 0, &input);
            stage.reset();
            assert_eq!(stage.frame, 0);
            let slices: Vec<&[f32]> = input.iter().map(|c| c.as_slice()).collect();
            let block = Block::from_channels(&slices);
            let mut output = Block::new(2, 10_000);
            stage.process(&block, &mut output, &mut StageContext::default());
            assert_eq!(output.channel(0), &first[0][..], "{mode:?}");
            assert_eq!(output.channel(1), &first[1][..], "{mode:?}");
        }
    }

    #[test]
    fn process_does_not_reallocate() {
        // `process` only indexes the ring sized in `prepare` (no Vec growth, no collect); check
        // its capacity is unchanged after blocks of several sizes, including more channels.
        let p = params(PanMode::Binaural, PanLaw::EqualPower, 8.0);
        let mut stage = prepared(p, 96_000, 6);
        let before = (stage.delay.buf.capacity(), stage.delay.buf.as_ptr());
        for frames in [1, 1000, 4096] {
            run_at(&mut stage, 0, &vec![noise(5, frames); 6]);
        }
        assert_eq!(
            (stage.delay.buf.capacity(), stage.delay.buf.as_ptr()),
            before
        );
    }

    #[test]
    fn params_parse_and_validate() {
        let p: Pan8dParams =
            serde_json::from_str(r#"{"period_s": 10, "law": "linear", "mode": "binaural"}"#)
                .unwrap();
        assert_eq!(p.law, PanLaw::Linear);
        assert_eq!(p.mode, PanMode::Binaural);
        assert_eq!(p.depth, 1.0);
        assert!(p.validate().is_ok());
        assert!(serde_json::from_str::<Pan8dParams>(r#"{"law": "sine"}"#).is_err());
        assert!(serde_json::from_str::<Pan8dParams>(r#"{"speed": 1}"#).is_err());
        let bad = Pan8dParams {
            period_s: 0.1,
            ..Pan8dParams::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "period_s");
    }
}
