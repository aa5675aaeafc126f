//! [`Reverb`]: pedalboard's `Reverb` (JUCE 6.1.4 `juce::Reverb`, i.e. Freeverb), re-implemented
//! from the algorithm with the same constants, order of operations and `f32` arithmetic.
//!
//! Why it exists: the 8D service this crate replaces ran `pedalboard.Reverb(room_size=0.5)`; users
//! know its parameter names and sound, so the job spec reuses them. The same `f32` operations run
//! in the same order as JUCE's, with x86's undenormalise step emulated, so the output is
//! bit-identical to x86 pedalboard: `tests/pedalboard_parity.rs` renders four settings (stereo
//! and mono, 44.1 and 48 kHz) with pedalboard 0.9.26 itself and compares every bit. The samples
//! are computed in runs rather than one by one (see [`RunScratch`]), with the same operations in
//! the same order per sample.
//!
//! Algorithm (per frame): the input channels are summed (mono: not doubled) and scaled by 0.015;
//! that one signal feeds, per output channel, 8 parallel lowpass-feedback combs summed in index
//! order, then 4 series "allpasses" (Freeverb's approximation, g = 0.5); the two wet signals are
//! cross-mixed with `wet1`/`wet2` and the dry input added with `dry`. Delay lengths are scaled to
//! the sample rate with JUCE's integer arithmetic, the right channel adding a 23-sample spread
//! before scaling.
//!
//! Differences from pedalboard, on purpose:
//! - an optional rendered tail ([`ReverbParams::tail`]); pedalboard always cuts the output at the
//!   input length (the default here, for parity);
//! - more than two input channels is an error at prepare time (JUCE silently passes such audio
//!   through un-reverberated, after a debug assertion).
//!
//! Pure DSP: depends on `audio` only; allocates in `prepare`, never in `process`.

use super::{ParamError, Stage, StageContext, StageError};
use crate::audio::{Block, StreamSpec};

/// Comb delay lengths in samples at 44.1 kHz (Freeverb / JUCE tunings), processed in this order.
const COMB_TUNINGS: [u64; NUM_COMBS] = [1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617];
/// Allpass delay lengths in samples at 44.1 kHz, processed in series in this order.
const ALLPASS_TUNINGS: [u64; NUM_ALLPASSES] = [556, 441, 341, 225];
/// Added to every right-channel tuning *before* sample-rate scaling (decorrelates L and R).
const STEREO_SPREAD: u64 = 23;
/// The rate the tunings are specified at.
const TUNING_RATE: u64 = 44_100;
const NUM_COMBS: usize = 8;
const NUM_ALLPASSES: usize = 4;
/// Fixed input gain of the tank (JUCE `gain`), 0 when frozen.
const INPUT_GAIN: f32 = 0.015;
/// Freeverb's allpass feedback.
const ALLPASS_FEEDBACK: f32 = 0.5;

/// Emulate `JUCE_UNDENORMALISE(x)` (`x += 0.1f; x -= 0.1f;`), applied by JUCE to the comb's
/// damping state, the comb write and the allpass write.
///
/// JUCE compiles this only on x86 (`JUCE_INTEL`), which is what pedalboard's wheels on x86 run;
/// it flushes tiny state values onto the float grid around 0.1 (steps of ≈7.45e-9), which both
/// avoids denormals and changes the low bits of the output. Keeping it on makes our output
/// bit-identical to x86 pedalboard (on ARM pedalboard it is a no-op, and results differ from x86
/// by ~1e-7). IEEE arithmetic without fast-math means neither rustc nor LLVM folds
/// `(x + 0.1) - 0.1` back to `x`.
const UNDENORMALISE: bool = true;

/// The decay, in dB below the start of each comb's slowest mode, that [`Reverb::tail_frames`]
/// waits for: 60 dB plus 20 dB of margin because up to 8 combs may add coherently (+18 dB).
const TAIL_DECAY_DB: f64 = 80.0;

#[inline(always)]
fn undenormalise(x: f32) -> f32 {
    if UNDENORMALISE {
        (x + 0.1) - 0.1
    } else {
        x
    }
}

/// Parameters of [`Reverb`], named and defaulted as pedalboard's `Reverb` (all 0.0..=1.0), plus
/// `tail`. This struct is the job-spec vocabulary: `{"type": "reverb", "room_size": 0.25}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReverbParams {
    /// Room size, 0..=1 (default 0.5): comb feedback `0.7 + 0.28·room_size`.
    pub room_size: f64,
    /// High-frequency damping, 0..=1 (default 0.5): comb lowpass coefficient `0.4·damping`.
    pub damping: f64,
    /// Wet level, 0..=1 (default 0.33): wet gain `3·wet_level`, split by `width`.
    pub wet_level: f64,
    /// Dry level, 0..=1 (default 0.4): dry gain `2·dry_level` (so the default passes 0.8×input).
    pub dry_level: f64,
    /// Stereo width of the wet signal, 0..=1 (default 1.0 = no L/R cross-feed).
    pub width: f64,
    /// Freeze, 0..=1 (default 0.0); ≥ 0.5 means frozen (infinite sustain, no new input). Since
    /// parameters are fixed for a stream, a frozen reverb never receives input and is silent
    /// (exactly as a freshly built pedalboard `Reverb(freeze_mode=1)`): only the dry path is heard.
    pub freeze_mode: f64,
    /// Render the reverb's decay after the input ends (default `false`, = pedalboard, which cuts
    /// the output at the input length). See [`Reverb`]'s `tail_frames` for the length.
    pub tail: bool,
}

impl Default for ReverbParams {
    fn default() -> Self {
        Self {
            room_size: 0.5,
            damping: 0.5,
            wet_level: 0.33,
            dry_level: 0.4,
            width: 1.0,
            freeze_mode: 0.0,
            tail: false,
        }
    }
}

impl ReverbParams {
    /// Checks every level is finite and within 0..=1 (pedalboard rejects the same values).
    ///
    /// # Errors
    /// A [`ParamError`] naming the first offending field.
    pub fn validate(&self) -> Result<(), ParamError> {
        ParamError::check("room_size", self.room_size, 0.0, 1.0)?;
        ParamError::check("damping", self.damping, 0.0, 1.0)?;
        ParamError::check("wet_level", self.wet_level, 0.0, 1.0)?;
        ParamError::check("dry_level", self.dry_level, 0.0, 1.0)?;
        ParamError::check("width", self.width, 0.0, 1.0)?;
        ParamError::check("freeze_mode", self.freeze_mode, 0.0, 1.0)?;
        Ok(())
    }
}

/// The per-sample constants, derived from [`ReverbParams`] exactly as JUCE's `setParameters` /
/// `updateDamping` do (in `f32`, same operation order, parameters first rounded to `f32` as the
/// Python → C++ float conversion does).
///
/// JUCE smooths `damp`, `feedback`, `dry`, `wet1`, `wet2` with 10 ms linear ramps, but a ramp only
/// runs when a parameter changes after `prepare`: `SmoothedValue::reset` (called from `prepare`)
/// snaps to the target. Our parameters are fixed for the whole stream, so the smoothed values are
/// constant from the first sample and the smoother is omitted — the output is identical.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Coefficients {
    gain: f32,
    damp: f32,
    feedback: f32,
    dry: f32,
    wet1: f32,
    wet2: f32,
    frozen: bool,
}

impl Coefficients {
    fn new(p: &ReverbParams) -> Self {
        let room_size = p.room_size as f32;
        let damping = p.damping as f32;
        let wet_level = p.wet_level as f32;
        let dry_level = p.dry_level as f32;
        let width = p.width as f32;
        let frozen = (p.freeze_mode as f32) >= 0.5;
        let wet = wet_level * 3.0;
        let (damp, feedback) = if frozen {
            (0.0, 1.0)
        } else {
            (damping * 0.4, room_size * 0.28 + 0.7)
        };
        Self {
            gain: if frozen { 0.0 } else { INPUT_GAIN },
            damp,
            feedback,
            dry: dry_level * 2.0,
            wet1: 0.5 * wet * (1.0 + width),
            wet2: 0.5 * wet * (1.0 - width),
            frozen,
        }
    }
}

/// Lowpass-feedback comb: `y = buf[k]; last = y(1−d) + last·d; buf[k] = x + last·fb`.
#[derive(Debug, Clone, Default)]
struct Comb {
    buf: Vec<f32>,
    pos: usize,
    last: f32,
}

/// Freeverb's allpass approximation: `b = buf[k]; buf[k] = x + 0.5·b; y = b − x`.
#[derive(Debug, Clone, Default)]
struct Allpass {
    buf: Vec<f32>,
    pos: usize,
}

impl Allpass {
    /// Runs `signal` (at most `buf.len()` frames) through the allpass in place.
    fn process_run(&mut self, signal: &mut [f32]) {
        let mut done = 0;
        for range in ring_ranges(self.pos, signal.len(), self.buf.len()) {
            let count = range.len();
            for (slot, y) in self.buf[range]
                .iter_mut()
                .zip(&mut signal[done..done + count])
            {
                let buffered = *slot;
                *slot = undenormalise(*y + buffered * ALLPASS_FEEDBACK);
                *y = buffered - *y;
            }
            done += count;
        }
        self.pos = (self.pos + signal.len()) % self.buf.len();
    }
}

/// The slots `pos, pos + 1, …` (`n` of them, `n ≤ len`) of a ring of `len` as two index ranges:
/// up to the end, then from the start.
fn ring_ranges(pos: usize, n: usize, len: usize) -> [std::ops::Range<usize>; 2] {
    let first = n.min(len - pos);
    [pos..pos + first, 0..n - first]
}

/// The filters of one output channel.
#[derive(Debug, Clone, Default)]
struct Tank {
    combs: [Comb; NUM_COMBS],
    allpasses: [Allpass; NUM_ALLPASSES],
}

impl Tank {
    /// Sizes and clears the delay lines (allocates; prepare only).
    fn configure(&mut self, lengths: &ChannelLengths) {
        for (comb, &len) in self.combs.iter_mut().zip(&lengths.combs) {
            comb.buf = vec![0.0; len];
        }
        for (allpass, &len) in self.allpasses.iter_mut().zip(&lengths.allpasses) {
            allpass.buf = vec![0.0; len];
        }
        self.clear();
    }

    /// Zeroes all state. JUCE's `clear` keeps the buffer index, but with all-zero buffers the
    /// index is unobservable, so restarting at 0 gives identical output.
    fn clear(&mut self) {
        for comb in &mut self.combs {
            comb.buf.fill(0.0);
            comb.pos = 0;
            comb.last = 0.0;
        }
        for allpass in &mut self.allpasses {
            allpass.buf.fill(0.0);
            allpass.pos = 0;
        }
    }

    /// The shortest delay line, in frames.
    fn shortest_line(&self) -> usize {
        let combs = self.combs.iter().map(|c| c.buf.len());
        let allpasses = self.allpasses.iter().map(|a| a.buf.len());
        combs.chain(allpasses).min().unwrap_or(0)
    }

    fn capacity(&self) -> usize {
        self.combs.iter().map(|c| c.buf.capacity()).sum::<usize>()
            + self
                .allpasses
                .iter()
                .map(|a| a.buf.capacity())
                .sum::<usize>()
    }
}

/// Largest run of frames processed at once (further capped by the shortest delay line).
const MAX_RUN: usize = 1024;

/// How a run of `n` frames goes through the tanks (`n` ≤ every delay line, so every comb and
/// allpass output of the run was written before the run began):
/// 1. each comb's `n` outputs are a slice of its ring, read at once: summed per tank in comb
///    order (as JUCE's `out += comb.process(…)`) and transposed into `rows` (`lanes` per frame,
///    lane = tank·8 + comb);
/// 2. the one serial part, every comb's damping lowpass, runs for all lanes of a frame together
///    (independent chains that the CPU overlaps and the compiler vectorises), and turns each
///    row into the values written back;
/// 3. the rows go back into the rings, and each tank's sum runs through its allpasses, one
///    vectorisable pass per allpass.
///
/// Every sample goes through the same f32 operations in the same order as the per-sample
/// algorithm, so the output is the same bit for bit (a test holds it to a transcription).
/// Why by hand: this is the product's DSP (pedalboard parity), no crate offers it.
#[derive(Debug, Clone, Default)]
struct RunScratch {
    /// The tanks' shared input, `(L + R)·gain` or `x·gain`, per frame.
    input: Vec<f32>,
    /// Per tank: the comb sum, then the wet signal.
    wet: [Vec<f32>; 2],
    /// `lanes` values per frame: comb outputs, then the values written back.
    rows: Vec<f32>,
}

impl RunScratch {
    fn new(run: usize, tanks: usize) -> Self {
        Self {
            input: vec![0.0; run],
            wet: [vec![0.0; run], vec![0.0; if tanks == 2 { run } else { 0 }]],
            rows: vec![0.0; run * tanks * NUM_COMBS],
        }
    }

    fn capacity(&self) -> usize {
        self.input.capacity()
            + self.wet[0].capacity()
            + self.wet[1].capacity()
            + self.rows.capacity()
    }
}

/// Runs `n` frames of `scratch.input` through `tanks` (`LANES` = 8 per tank), leaving each
/// tank's wet signal in `scratch.wet` (see [`RunScratch`]).
fn process_run<const LANES: usize>(
    tanks: &mut [Tank],
    scratch: &mut RunScratch,
    c: &Coefficients,
    n: usize,
) {
    let rows = &mut scratch.rows[..n * LANES];
    // 1. Comb outputs: summed per tank in comb order, and transposed into rows.
    for (t, (tank, wet)) in tanks.iter().zip(&mut scratch.wet).enumerate() {
        let sum = &mut wet[..n];
        sum.fill(0.0);
        for (k, comb) in tank.combs.iter().enumerate() {
            let lane = t * NUM_COMBS + k;
            let mut done = 0;
            for range in ring_ranges(comb.pos, n, comb.buf.len()) {
                let outputs = &comb.buf[range];
                for (acc, &y) in sum[done..].iter_mut().zip(outputs) {
                    *acc += y;
                }
                for (row, &y) in rows[done * LANES..].chunks_exact_mut(LANES).zip(outputs) {
                    row[lane] = y;
                }
                done += outputs.len();
            }
        }
    }
    // 2. The damping lowpasses, all lanes per frame; each row becomes the values written back.
    let mut last = [0.0f32; LANES];
    for (lane, l) in last.iter_mut().enumerate() {
        *l = tanks[lane / NUM_COMBS].combs[lane % NUM_COMBS].last;
    }
    let (damp, feedback) = (c.damp, c.feedback);
    let keep = 1.0 - damp;
    for (row, &x) in rows.chunks_exact_mut(LANES).zip(&scratch.input[..n]) {
        for (y, l) in row.iter_mut().zip(&mut last) {
            *l = undenormalise(*y * keep + *l * damp);
            *y = undenormalise(x + *l * feedback);
        }
    }
    // 3. Back into the rings; then the allpasses, per tank.
    for (t, (tank, wet)) in tanks.iter_mut().zip(&mut scratch.wet).enumerate() {
        for (k, comb) in tank.combs.iter_mut().enumerate() {
            let lane = t * NUM_COMBS + k;
            comb.last = last[lane];
            let mut done = 0;
            for range in ring_ranges(comb.pos, n, comb.buf.len()) {
                let count = range.len();
                for (slot, row) in comb.buf[range]
                    .iter_mut()
                    .zip(rows[done * LANES..].chunks_exact(LANES))
                {
                    *slot = row[lane];
                }
                done += count;
            }
            comb.pos = (comb.pos + n) % comb.buf.len();
        }
        for allpass in &mut tank.allpasses {
            allpass.process_run(&mut wet[..n]);
        }
    }
}

/// Delay lengths of one channel's filters at some sample rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChannelLengths {
    combs: [usize; NUM_COMBS],
    allpasses: [usize; NUM_ALLPASSES],
}

/// JUCE's sample-rate scaling: `(int(fs) · tuning) / 44100` in integer arithmetic (truncating),
/// with the stereo spread added to the tuning first for the right channel (`channel` = 1).
fn channel_lengths(sample_rate: u32, channel: usize) -> ChannelLengths {
    let spread = if channel == 0 { 0 } else { STEREO_SPREAD };
    let scale = |tuning: u64| (u64::from(sample_rate) * (tuning + spread) / TUNING_RATE) as usize;
    ChannelLengths {
        combs: COMB_TUNINGS.map(scale),
        allpasses: ALLPASS_TUNINGS.map(scale),
    }
}

/// Freeverb as in pedalboard / JUCE 6.1.4 (see the module docs). Mono in → mono out, stereo in →
/// stereo out; more channels are rejected by `prepare`.
///
/// Tail: with [`ReverbParams::tail`] off (default) `tail_frames()` is 0 and the output has the
/// input's length, as in pedalboard. With it on, `tail_frames()` bounds the time for the
/// reverb to decay 80 dB (≥ 60 dB below the output's peak, with margin for
/// the 8 combs adding up), computed from the actual delay lengths and feedback:
/// each comb's slowest mode is DC (its damping lowpass has gain ≤ 1 everywhere, = 1 at DC), which
/// loses `fb` per round trip, so the combs need `ceil(80 dB / −20·log10 fb)` trips of the
/// longest comb; the series allpasses then ring for at most `ceil(80 dB / 6.02 dB)` = 14 trips
/// each. At 44.1 kHz with the defaults that is 110 090 frames ≈ 2.5 s (≈ 2.3 × the measured
/// RT60 of 1.08 s); at `room_size = 1` (fb 0.98) ≈ 17.5 s. A frozen or fully dry reverb has no
/// audible tail, so 0.
#[derive(Debug, Clone)]
pub struct Reverb {
    params: ReverbParams,
    coefficients: Coefficients,
    /// `tanks[0]` serves mono and left, `tanks[1]` right.
    tanks: [Tank; 2],
    channels: usize,
    /// Buffers of one run (see [`RunScratch`]), allocated in `prepare`.
    scratch: RunScratch,
    /// Frames per run: the shortest delay line, at most [`MAX_RUN`].
    run_frames: usize,
    tail_frames: usize,
}

impl Reverb {
    /// A reverb with `params` (call [`ReverbParams::validate`] first; out-of-range values are
    /// not rejected here, they are used as given).
    pub fn new(params: ReverbParams) -> Self {
        Self {
            coefficients: Coefficients::new(&params),
            params,
            tanks: Default::default(),
            channels: 0,
            scratch: RunScratch::default(),
            run_frames: 1,
            tail_frames: 0,
        }
    }

    /// The parameters this reverb was built with.
    pub fn params(&self) -> &ReverbParams {
        &self.params
    }

    fn compute_tail_frames(&self, sample_rate: u32) -> usize {
        let c = &self.coefficients;
        let silent_wet = c.wet1 == 0.0 && c.wet2 == 0.0;
        if !self.params.tail || c.frozen || silent_wet || c.gain == 0.0 {
            return 0;
        }
        let lengths = channel_lengths(sample_rate, 1);
        let longest_comb = lengths.combs.iter().copied().max().unwrap_or(0) as f64;
        let feedback = f64::from(c.feedback);
        let comb_trips = if feedback <= 0.0 {
            1.0
        } else {
            (TAIL_DECAY_DB / (-20.0 * feedback.log10())).ceil()
        };
        let allpass_trips = (TAIL_DECAY_DB / (-20.0 * f64::from(ALLPASS_FEEDBACK).log10())).ceil();
        let allpass_total: usize = lengths.allpasses.iter().sum();
        (comb_trips * longest_comb + allpass_trips * allpass_total as f64) as usize
    }

    /// Total delay-line and scratch capacity in samples (`process` never reallocates).
    fn state_capacity(&self) -> usize {
        self.tanks.iter().map(Tank::capacity).sum::<usize>() + self.scratch.capacity()
    }

    fn process_mono(&mut self, input: &[f32], output: &mut [f32]) {
        let c = self.coefficients;
        for (input, output) in input
            .chunks(self.run_frames)
            .zip(output.chunks_mut(self.run_frames))
        {
            let n = input.len();
            for (x, &dry) in self.scratch.input[..n].iter_mut().zip(input) {
                *x = dry * c.gain;
            }
            process_run::<NUM_COMBS>(&mut self.tanks[..1], &mut self.scratch, &c, n);
            for ((y, &dry), &wet) in output.iter_mut().zip(input).zip(&self.scratch.wet[0][..n]) {
                *y = wet * c.wet1 + dry * c.dry;
            }
        }
    }

    fn process_stereo(&mut self, input: &Block, output: &mut Block) {
        let c = self.coefficients;
        let frames = input.frames();
        let mut start = 0;
        while start < frames {
            let end = (start + self.run_frames).min(frames);
            let n = end - start;
            let left_in = &input.channel(0)[start..end];
            let right_in = &input.channel(1)[start..end];
            for ((x, &l), &r) in self.scratch.input[..n]
                .iter_mut()
                .zip(left_in)
                .zip(right_in)
            {
                *x = (l + r) * c.gain;
            }
            process_run::<{ 2 * NUM_COMBS }>(&mut self.tanks, &mut self.scratch, &c, n);
            let [wet_left, wet_right] = &self.scratch.wet;
            let (wet_left, wet_right) = (&wet_left[..n], &wet_right[..n]);
            // Same expression and evaluation order as JUCE:
            // L' = outL·wet1 + outR·wet2 + L·dry, R' = outR·wet1 + outL·wet2 + R·dry.
            for (((y, &dry), &wl), &wr) in output.channel_mut(0)[start..end]
                .iter_mut()
                .zip(left_in)
                .zip(wet_left)
                .zip(wet_right)
            {
                *y = wl * c.wet1 + wr * c.wet2 + dry * c.dry;
            }
            for (((y, &dry), &wl), &wr) in output.channel_mut(1)[start..end]
                .iter_mut()
                .zip(right_in)
                .zip(wet_left)
                .zip(wet_right)
            {
                *y = wr * c.wet1 + wl * c.wet2 + dry * c.dry;
            }
            start = end;
        }
    }
}

impl Stage for Reverb {
    fn name(&self) -> &'static str {
        "reverb"
    }

    fn prepare(
        &mut self,
        input: StreamSpec,
        max_block_frames: usize,
    ) -> Result<StreamSpec, StageError> {
        if !(1..=2).contains(&input.channels) {
            return Err(StageError {
                stage: "reverb",
                reason: format!(
                    "reverb supports mono or stereo input; got {} channels",
                    input.channels
                ),
            });
        }
        self.channels = input.channels;
        for (ch, tank) in self.tanks.iter_mut().enumerate() {
            if ch < input.channels {
                tank.configure(&channel_lengths(input.sample_rate, ch));
            } else {
                *tank = Tank::default();
            }
        }
        let shortest = self.tanks[..input.channels]
            .iter()
            .map(Tank::shortest_line)
            .min()
            .unwrap_or(0);
        if shortest == 0 {
            return Err(StageError {
                stage: "reverb",
                reason: format!(
                    "sample rate {} Hz is too low for the reverb's delay lines",
                    input.sample_rate
                ),
            });
        }
        self.run_frames = shortest.min(MAX_RUN).min(max_block_frames.max(1));
        self.scratch = RunScratch::new(self.run_frames, input.channels);
        self.tail_frames = self.compute_tail_frames(input.sample_rate);
        Ok(input)
    }

    fn process(&mut self, input: &Block, output: &mut Block, _cx: &mut StageContext) {
        output.set_frames(input.frames());
        if self.channels == 1 {
            self.process_mono(input.channel(0), output.channel_mut(0));
        } else {
            self.process_stereo(input, output);
        }
    }

    fn tail_frames(&self) -> usize {
        self.tail_frames
    }

    fn reset(&mut self) {
        for tank in &mut self.tanks {
            tank.clear();
        }
    }

    fn state_bytes(&self) -> usize {
        self.state_capacity() * std::mem::size_of::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic noise without a dev-dependency.
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            (bits as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }

        fn signal(seed: u64, frames: usize) -> Vec<f32> {
            let mut noise = Noise(seed);
            (0..frames).map(|_| noise.next() * 0.5).collect()
        }
    }

    /// This stage through a one-stage chain in blocks of `block` frames (see `test_util`).
    fn run_chain(
        params: &ReverbParams,
        rate: u32,
        channels: &[Vec<f32>],
        block: usize,
    ) -> Vec<Vec<f32>> {
        crate::dsp::test_util::run_chain(
            Box::new(Reverb::new(params.clone())),
            rate,
            channels,
            block,
        )
    }

    /// Processes `channels` in one call of the bare stage.
    fn run_stage(stage: &mut Reverb, channels: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let slices: Vec<&[f32]> = channels.iter().map(|c| c.as_slice()).collect();
        let input = Block::from_channels(&slices);
        let mut output = Block::new(channels.len(), input.frames());
        stage.process(&input, &mut output, &mut StageContext::default());
        output.channels().map(<[f32]>::to_vec).collect()
    }

    fn prepared(params: ReverbParams, rate: u32, channels: usize, max_block: usize) -> Reverb {
        let mut stage = Reverb::new(params);
        stage
            .prepare(StreamSpec::new(rate, channels).unwrap(), max_block)
            .unwrap();
        stage
    }

    fn impulse(frames: usize) -> Vec<f32> {
        let mut x = vec![0.0; frames];
        x[0] = 1.0;
        x
    }

    /// JUCE 6.1.4 `Reverb::processStereo` / `processMono`, transcribed sample by sample: the
    /// definition the block-wise stage must equal bit for bit. Indexed loops, as JUCE's.
    #[allow(clippy::needless_range_loop)]
    fn reference_freeverb(params: &ReverbParams, rate: u32, input: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let c = Coefficients::new(params);
        let channels = input.len();
        let lines: Vec<ChannelLengths> =
            (0..channels).map(|ch| channel_lengths(rate, ch)).collect();
        let mut comb_bufs: Vec<Vec<Vec<f32>>> = lines
            .iter()
            .map(|l| l.combs.iter().map(|&n| vec![0.0; n]).collect())
            .collect();
        let mut allpass_bufs: Vec<Vec<Vec<f32>>> = lines
            .iter()
            .map(|l| l.allpasses.iter().map(|&n| vec![0.0; n]).collect())
            .collect();
        let mut comb_last = vec![[0.0f32; NUM_COMBS]; channels];
        let mut comb_pos = vec![[0usize; NUM_COMBS]; channels];
        let mut allpass_pos = vec![[0usize; NUM_ALLPASSES]; channels];
        let mut output = vec![Vec::with_capacity(input[0].len()); channels];
        for n in 0..input[0].len() {
            let x = if channels == 2 {
                (input[0][n] + input[1][n]) * c.gain
            } else {
                input[0][n] * c.gain
            };
            let mut wet = [0.0f32; 2];
            for ch in 0..channels {
                let mut out = 0.0f32;
                for k in 0..NUM_COMBS {
                    let buf = &mut comb_bufs[ch][k];
                    let pos = comb_pos[ch][k];
                    let y = buf[pos];
                    comb_last[ch][k] =
                        undenormalise(y * (1.0 - c.damp) + comb_last[ch][k] * c.damp);
                    buf[pos] = undenormalise(x + comb_last[ch][k] * c.feedback);
                    comb_pos[ch][k] = (pos + 1) % buf.len();
                    out += y;
                }
                for k in 0..NUM_ALLPASSES {
                    let buf = &mut allpass_bufs[ch][k];
                    let pos = allpass_pos[ch][k];
                    let buffered = buf[pos];
                    buf[pos] = undenormalise(out + buffered * ALLPASS_FEEDBACK);
                    allpass_pos[ch][k] = (pos + 1) % buf.len();
                    out = buffered - out;
                }
                wet[ch] = out;
            }
            if channels == 2 {
                output[0].push(wet[0] * c.wet1 + wet[1] * c.wet2 + input[0][n] * c.dry);
                output[1].push(wet[1] * c.wet1 + wet[0] * c.wet2 + input[1][n] * c.dry);
            } else {
                output[0].push(wet[0] * c.wet1 + input[0][n] * c.dry);
            }
        }
        output
    }

    #[test]
    fn equals_the_per_sample_algorithm_bit_for_bit() {
        let settings = [
            ReverbParams::default(),
            ReverbParams {
                room_size: 0.95,
                damping: 0.1,
                wet_level: 0.6,
                dry_level: 0.2,
                width: 0.3,
                ..ReverbParams::default()
            },
            ReverbParams {
                freeze_mode: 1.0,
                ..ReverbParams::default()
            },
        ];
        for params in &settings {
            for rate in [8_000, 44_100, 48_000, 96_000] {
                let frames = rate as usize;
                let stereo = vec![Noise::signal(1, frames), Noise::signal(2, frames)];
                let mono = vec![Noise::signal(3, frames)];
                for input in [&stereo, &mono] {
                    let want = reference_freeverb(params, rate, input);
                    for block in [1, 17, 225, 4096, frames] {
                        let mut stage = prepared(params.clone(), rate, input.len(), block);
                        let mut got = vec![Vec::new(); input.len()];
                        for start in (0..frames).step_by(block) {
                            let end = (start + block).min(frames);
                            let piece: Vec<Vec<f32>> =
                                input.iter().map(|c| c[start..end].to_vec()).collect();
                            for (all, out) in got.iter_mut().zip(run_stage(&mut stage, &piece)) {
                                all.extend(out);
                            }
                        }
                        for (ch, (g, w)) in got.iter().zip(&want).enumerate() {
                            let first = g
                                .iter()
                                .zip(w)
                                .position(|(a, b)| a.to_bits() != b.to_bits());
                            assert!(
                                first.is_none() && g.len() == w.len(),
                                "{params:?} {rate} Hz block {block} channel {ch}: first difference at {first:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn delay_lengths_match_the_reference_table_exactly() {
        // dsp-reference §2.3 (JUCE integer scaling, +23 spread before scaling).
        type Row = (u32, [usize; 8], [usize; 8], [usize; 4], [usize; 4]);
        #[rustfmt::skip]
        let table: [Row; 5] = [
            (22_050, [558, 594, 638, 678, 711, 745, 778, 808], [569, 605, 650, 689, 722, 757, 790, 820], [278, 220, 170, 112], [289, 232, 182, 124]),
            (32_000, [809, 862, 926, 983, 1031, 1081, 1129, 1173], [826, 878, 943, 1000, 1048, 1098, 1146, 1190], [403, 320, 247, 163], [420, 336, 264, 179]),
            (44_100, [1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617], [1139, 1211, 1300, 1379, 1445, 1514, 1580, 1640], [556, 441, 341, 225], [579, 464, 364, 248]),
            (48_000, [1214, 1293, 1389, 1475, 1547, 1622, 1694, 1760], [1239, 1318, 1414, 1500, 1572, 1647, 1719, 1785], [605, 480, 371, 244], [630, 505, 396, 269]),
            (96_000, [2429, 2586, 2779, 2951, 3095, 3245, 3389, 3520], [2479, 2636, 2829, 3001, 3145, 3295, 3439, 3570], [1210, 960, 742, 489], [1260, 1010, 792, 539]),
        ];
        for (rate, comb_l, comb_r, ap_l, ap_r) in table {
            assert_eq!(channel_lengths(rate, 0).combs, comb_l, "{rate} left combs");
            assert_eq!(channel_lengths(rate, 1).combs, comb_r, "{rate} right combs");
            assert_eq!(
                channel_lengths(rate, 0).allpasses,
                ap_l,
                "{rate} left allpasses"
            );
            assert_eq!(
                channel_lengths(rate, 1).allpasses,
                ap_r,
                "{rate} right allpasses"
            );
            // And the stage really allocates those lengths.
            let stage = prepared(ReverbParams::default(), rate, 2, 64);
            let lens: Vec<usize> = stage.tanks[1].combs.iter().map(|c| c.buf.len()).collect();
            assert_eq!(lens, comb_r, "{rate} allocated right combs");
        }
    }

    #[test]
    fn coefficients_match_juce_defaults() {
        let c = Coefficients::new(&ReverbParams::default());
        assert_eq!(c.gain, 0.015);
        assert_eq!(c.feedback, 0.5f32 * 0.28 + 0.7);
        assert!((c.feedback - 0.84).abs() < 1e-6);
        assert!((c.damp - 0.2).abs() < 1e-7);
        assert!((c.wet1 - 0.99).abs() < 1e-6, "{}", c.wet1);
        assert_eq!(c.wet2, 0.0);
        assert_eq!(c.dry, 0.8);
    }

    #[test]
    fn first_wet_sample_arrives_after_the_shortest_comb() {
        // Wet only, width 1: left's first non-zero sample is at the shortest left comb length,
        // right's at the shortest right comb (the allpasses pass `−x` through instantly).
        let params = ReverbParams {
            dry_level: 0.0,
            ..ReverbParams::default()
        };
        for (rate, left_first, right_first) in [(44_100, 1116, 1139), (48_000, 1214, 1239)] {
            let mut stage = prepared(params.clone(), rate, 2, 4096);
            let out = run_stage(&mut stage, &[impulse(4096), vec![0.0; 4096]]);
            let first = |ch: &[f32]| ch.iter().position(|&x| x != 0.0);
            assert_eq!(first(&out[0]), Some(left_first), "{rate} left");
            assert_eq!(first(&out[1]), Some(right_first), "{rate} right");
            // Mono path: left tunings, input not doubled.
            let mut mono = prepared(params.clone(), rate, 1, 4096);
            let out = run_stage(&mut mono, &[impulse(4096)]);
            assert_eq!(first(&out[0]), Some(left_first), "{rate} mono");
        }
    }

    #[test]
    fn mono_path_equals_stereo_left_for_half_amplitude_dual_mono() {
        // Stereo feeds (L+R)·0.015; mono feeds s·0.015. With L = R = s/2 the tank input is the
        // same, so the wet left signals must match bit for bit (dry off, width 1).
        let params = ReverbParams {
            dry_level: 0.0,
            ..ReverbParams::default()
        };
        let s = Noise::signal(7, 6000);
        let half: Vec<f32> = s.iter().map(|x| x * 0.5).collect();
        let mono = run_stage(&mut prepared(params.clone(), 44_100, 1, 6000), &[s]);
        let stereo = run_stage(
            &mut prepared(params, 44_100, 2, 6000),
            &[half.clone(), half],
        );
        assert_eq!(mono[0], stereo[0]);
    }

    #[test]
    fn rt60_of_the_default_reverb_is_about_1_08_s() {
        // Schroeder backward integration of the wet impulse response (both channels), T30
        // (−5 … −35 dB) extrapolated to 60 dB; reference §2.5 measured ≈ 1.08 s. Tolerance: the
        // brief's 1.0–1.2 s window.
        let rate = 44_100;
        let frames = 4 * rate as usize;
        let params = ReverbParams {
            dry_level: 0.0,
            ..ReverbParams::default()
        };
        let out = run_stage(
            &mut prepared(params, rate, 2, frames),
            &[impulse(frames), vec![0.0; frames]],
        );
        let energy: Vec<f64> = out[0]
            .iter()
            .zip(&out[1])
            .map(|(&l, &r)| f64::from(l).powi(2) + f64::from(r).powi(2))
            .collect();
        let mut edc = vec![0.0; frames];
        let mut acc = 0.0;
        for i in (0..frames).rev() {
            acc += energy[i];
            edc[i] = acc;
        }
        let total = edc[0];
        let time_at = |db: f64| {
            let level = total * 10f64.powf(db / 10.0);
            edc.iter().position(|&e| e <= level).unwrap() as f64 / f64::from(rate)
        };
        let rt60 = 2.0 * (time_at(-35.0) - time_at(-5.0));
        eprintln!("RT60 = {rt60:.3} s");
        assert!((1.0..=1.2).contains(&rt60), "RT60 = {rt60} s");
    }

    #[test]
    fn no_wet_passes_dry_times_0_8_bit_exactly() {
        let params = ReverbParams {
            wet_level: 0.0,
            ..ReverbParams::default()
        };
        let left = Noise::signal(1, 5000);
        let right = Noise::signal(2, 5000);
        let out = run_stage(
            &mut prepared(params.clone(), 44_100, 2, 5000),
            &[left.clone(), right.clone()],
        );
        let expected = |x: &[f32]| x.iter().map(|v| v * 0.8f32).collect::<Vec<f32>>();
        assert_eq!(out[0], expected(&left));
        assert_eq!(out[1], expected(&right));
        let mono = run_stage(
            &mut prepared(params, 44_100, 1, 5000),
            std::slice::from_ref(&left),
        );
        assert_eq!(mono[0], expected(&left));
    }

    #[test]
    fn reset_clears_the_tail() {
        let mut stage = prepared(ReverbParams::default(), 44_100, 2, 8192);
        let noise = [Noise::signal(3, 8192), Noise::signal(4, 8192)];
        run_stage(&mut stage, &noise);
        stage.reset();
        let after_reset = run_stage(&mut stage, &[impulse(8192), vec![0.0; 8192]]);
        let mut fresh = prepared(ReverbParams::default(), 44_100, 2, 8192);
        let expected = run_stage(&mut fresh, &[impulse(8192), vec![0.0; 8192]]);
        assert_eq!(after_reset, expected);
        // And silence after a reset stays exactly silent.
        stage.reset();
        let silent = run_stage(&mut stage, &[vec![0.0; 8192], vec![0.0; 8192]]);
        assert!(silent.iter().flatten().all(|&x| x == 0.0));
    }

    #[test]
    fn tail_renders_a_decay_below_minus_60_db_and_no_tail_keeps_the_length() {
        let rate = 44_100;
        let frames = rate as usize;
        let input = vec![Noise::signal(5, frames), Noise::signal(6, frames)];
        let cut = run_chain(&ReverbParams::default(), rate, &input, 4096);
        assert_eq!(cut[0].len(), frames);
        assert_eq!(cut[1].len(), frames);

        let params = ReverbParams {
            tail: true,
            ..ReverbParams::default()
        };
        let tail_frames = prepared(params.clone(), rate, 2, 4096).tail_frames();
        assert_eq!(
            tail_frames, 110_090,
            "documented bound at 44.1 kHz defaults"
        );
        let out = run_chain(&params, rate, &input, 4096);
        assert_eq!(out[0].len(), frames + tail_frames);
        // Same samples as the cut version over the input's span.
        assert_eq!(&out[0][..frames], &cut[0][..]);
        let peak = out.iter().flatten().fold(0.0f32, |m, &x| m.max(x.abs()));
        let end = out.iter().map(|c| &c[c.len() - 1000..]);
        let end_peak = end.flatten().fold(0.0f32, |m, &x| m.max(x.abs()));
        let rel_db = 20.0 * f64::from(end_peak / peak).log10();
        eprintln!("tail end at {rel_db:.1} dB re peak");
        assert!(rel_db < -60.0, "last 1000 frames at {rel_db} dB re peak");
        // The tail is really there: just after the input it is far from silent.
        let just_after = out[0][frames..frames + 1000]
            .iter()
            .fold(0.0f32, |m, &x| m.max(x.abs()));
        assert!(just_after > peak * 0.01, "{just_after} vs peak {peak}");
    }

    #[test]
    fn chunked_equals_whole_bit_exactly_with_tail() {
        let params = ReverbParams {
            tail: true,
            room_size: 0.3,
            width: 0.7,
            ..ReverbParams::default()
        };
        for rate in [44_100, 48_000, 96_000] {
            let frames = 50_000;
            let stereo = vec![Noise::signal(11, frames), Noise::signal(12, frames)];
            let mono = vec![Noise::signal(13, frames)];
            for input in [&stereo, &mono] {
                let whole = run_chain(&params, rate, input, frames);
                for block in [1, 17, 4096, 48_000] {
                    let chunked = run_chain(&params, rate, input, block);
                    assert_eq!(chunked.len(), whole.len());
                    for (c, w) in chunked.iter().zip(&whole) {
                        assert_eq!(c.len(), w.len(), "{rate} Hz, block {block}");
                        assert!(c == w, "{rate} Hz, block {block}: outputs differ");
                    }
                }
            }
        }
    }

    #[test]
    fn process_does_not_reallocate() {
        // `process` only indexes buffers sized in `prepare` (no Vec growth, no collect); this
        // checks the total capacity is unchanged after processing blocks of every size up to
        // and beyond the prepared maximum (a larger block is processed in sub-blocks).
        let mut stage = prepared(ReverbParams::default(), 48_000, 2, 1024);
        let before = stage.state_capacity();
        for frames in [1, 1000, 1024, 5000] {
            let input = [Noise::signal(9, frames), Noise::signal(10, frames)];
            run_stage(&mut stage, &input);
        }
        assert_eq!(stage.state_capacity(), before);
    }

    #[test]
    fn more_than_two_channels_is_rejected() {
        let mut stage = Reverb::new(ReverbParams::default());
        let err = stage
            .prepare(StreamSpec::new(48_000, 6).unwrap(), 1024)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "stage reverb: reverb supports mono or stereo input; got 6 channels"
        );
    }

    #[test]
    fn frozen_reverb_is_dry_only_and_has_no_tail() {
        let params = ReverbParams {
            freeze_mode: 1.0,
            tail: true,
            ..ReverbParams::default()
        };
        let mut stage = prepared(params, 44_100, 1, 4096);
        assert_eq!(stage.tail_frames(), 0);
        let x = Noise::signal(8, 4096);
        let out = run_stage(&mut stage, std::slice::from_ref(&x));
        let expected: Vec<f32> = x.iter().map(|v| v * 0.8f32).collect();
        assert_eq!(out[0], expected);
    }

    #[test]
    fn params_parse_validate_and_default_like_pedalboard() {
        let p: ReverbParams = serde_json::from_str(r#"{"room_size": 0.25}"#).unwrap();
        assert_eq!(
            p,
            ReverbParams {
                room_size: 0.25,
                ..ReverbParams::default()
            }
        );
        assert!(p.validate().is_ok());
        assert!(serde_json::from_str::<ReverbParams>(r#"{"roomsize": 0.25}"#).is_err());
        let bad = ReverbParams {
            wet_level: 1.5,
            ..ReverbParams::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "wet_level");
        let nan = ReverbParams {
            damping: f64::NAN,
            ..ReverbParams::default()
        };
        assert_eq!(nan.validate().unwrap_err().field, "damping");
    }
}
