//! [`Normalize`]: peak or loudness normalisation, a two-pass stage.
//!
//! A target level needs the level of the whole input before the first output sample, so the stage
//! asks for an analysis pass ([`Stage::wants_analysis`]): it measures the sample peak, and for a
//! LUFS target the BS.1770 / EBU R128 integrated loudness (the `ebur128` crate, in histogram mode
//! so its memory stays constant however long the input is), then applies one constant gain.
//! Like ffmpeg `loudnorm` in linear mode, it never changes the dynamics; a LUFS target can push
//! peaks above 0 dBFS, so put a `limiter` after it (the report predicts the output peak).
//! Channels use ebur128's default BS.1770 map (L, R, C, LFE ignored, Ls, Rs); mono is measured as
//! one channel, not as dual mono, like ffmpeg's `ebur128`/`loudnorm` defaults.
//!
//! Pure DSP: no I/O, no logging.

use super::{db_to_gain, gain_to_db, ParamError, Stage, StageContext, StageError};
use crate::audio::{Block, StreamSpec, MAX_CHANNELS};
use ebur128::{EbuR128, Mode};
use serde::{Deserialize, Serialize};

/// Below this integrated loudness (the BS.1770 absolute gate) the input counts as silent.
const SILENCE_LUFS: f64 = -70.0;

/// Parameters of the `normalize` stage, as written in a job spec
/// (`{"type": "normalize", "lufs": -16}` or `{"type": "normalize", "peak_db": -1}`).
/// Exactly one of `peak_db` and `lufs` must be given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NormalizeParams {
    /// Target sample peak in dBFS (over all channels); −60 ..= 0.
    pub peak_db: Option<f64>,
    /// Target integrated loudness in LUFS (BS.1770-4, EBU R128 gating); −70 ..= −5.
    pub lufs: Option<f64>,
    /// Largest boost applied, in dB, so near-silent input is not raised absurdly; 0 ..= 60,
    /// default 30. Attenuation is never limited.
    pub max_gain_db: f64,
}

impl Default for NormalizeParams {
    /// No target (invalid until one is set) and `max_gain_db = 30`.
    fn default() -> Self {
        Self {
            peak_db: None,
            lufs: None,
            max_gain_db: 30.0,
        }
    }
}

/// Why [`NormalizeParams`] are invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NormalizeParamError {
    /// A value is out of its allowed range.
    #[error(transparent)]
    Range(#[from] ParamError),
    /// Neither or both of `peak_db` and `lufs` were given.
    #[error("normalize needs exactly one of peak_db or lufs")]
    ExactlyOneTarget,
}

impl NormalizeParams {
    /// Checks that exactly one target is given and every value is in range.
    ///
    /// # Errors
    /// [`NormalizeParamError::ExactlyOneTarget`] when neither or both targets are set,
    /// [`NormalizeParamError::Range`] for a value out of range.
    pub fn validate(&self) -> Result<(), NormalizeParamError> {
        match (self.peak_db, self.lufs) {
            (Some(peak), None) => ParamError::check("peak_db", peak, -60.0, 0.0)?,
            (None, Some(lufs)) => ParamError::check("lufs", lufs, -70.0, -5.0)?,
            _ => return Err(NormalizeParamError::ExactlyOneTarget),
        }
        ParamError::check("max_gain_db", self.max_gain_db, 0.0, 60.0)?;
        Ok(())
    }
}

/// What the analysis pass decided.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Decision {
    measured_lufs: Option<f64>,
    measured_peak_db: f64,
    gain_db: f64,
    silent: bool,
    clamped: bool,
}

/// The `normalize` stage: measures in the analysis pass, applies one constant gain afterwards.
///
/// Without an analysis pass (`process` before `end_observation`) the gain is 0 dB: the audio
/// passes unchanged and the report says `"analysed": false`. [`Stage::reset`] keeps the decision,
/// because it describes the whole input rather than stream state (the runner resets stages that
/// ran during a later stage's analysis pass); observing again starts a fresh measurement.
pub struct Normalize {
    params: NormalizeParams,
    meter: Option<EbuR128>,
    channels: usize,
    sample_rate: u32,
    /// Largest |sample| seen in the current analysis pass.
    peak: f32,
    observing: bool,
    /// `ebur128` rejected a block (cannot happen with matching channel counts); reported.
    meter_failed: bool,
    decision: Option<Decision>,
    factor: f32,
}

impl std::fmt::Debug for Normalize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Normalize")
            .field("params", &self.params)
            .field("decision", &self.decision)
            .finish_non_exhaustive()
    }
}

impl Normalize {
    /// A normaliser with `params` (validate them first: without a target it measures and applies
    /// 0 dB).
    pub fn new(params: NormalizeParams) -> Self {
        Self {
            params,
            meter: None,
            channels: 0,
            sample_rate: 0,
            peak: 0.0,
            observing: false,
            meter_failed: false,
            decision: None,
            factor: 1.0,
        }
    }

    /// The gain the processing pass applies, in dB (0 before an analysis pass).
    pub fn gain_db(&self) -> f64 {
        self.decision.map_or(0.0, |d| d.gain_db)
    }

    fn start_observation(&mut self) {
        if let Some(meter) = &mut self.meter {
            meter.reset();
        }
        self.peak = 0.0;
        self.meter_failed = false;
        self.observing = true;
    }
}

impl Stage for Normalize {
    fn name(&self) -> &'static str {
        "normalize"
    }

    fn prepare(
        &mut self,
        input: StreamSpec,
        _max_block_frames: usize,
    ) -> Result<StreamSpec, StageError> {
        self.channels = input.channels;
        self.sample_rate = input.sample_rate;
        self.meter = if self.params.lufs.is_some() {
            // HISTOGRAM: constant memory and no allocation while observing (the default queue
            // keeps every 400 ms block and grows with the input); costs < 0.05 LU of resolution.
            let mode = Mode::I | Mode::HISTOGRAM;
            let channels = u32::try_from(input.channels).unwrap_or(u32::MAX);
            Some(
                EbuR128::new(channels, input.sample_rate, mode).map_err(|e| StageError {
                    stage: "normalize",
                    reason: format!("loudness meter: {e}"),
                })?,
            )
        } else {
            None
        };
        self.peak = 0.0;
        self.observing = false;
        Ok(input)
    }

    fn process(&mut self, input: &Block, output: &mut Block, _cx: &mut StageContext) {
        output.set_frames(input.frames());
        for ch in 0..input.channel_count() {
            let dst = output.channel_mut(ch);
            for (d, s) in dst.iter_mut().zip(input.channel(ch)) {
                *d = *s * self.factor;
            }
        }
    }

    fn state_bytes(&self) -> usize {
        // The meter (ebur128, integrated mode with histograms) keeps a 400 ms window of f64
        // samples per channel and two 1,000-bin histograms; half a second plus 32 KiB bounds it.
        match &self.meter {
            Some(_) => {
                self.sample_rate as usize / 2 * self.channels * std::mem::size_of::<f64>()
                    + 32 * 1024
            }
            None => 0,
        }
    }

    fn reset(&mut self) {
        // Keep `decision` and `factor` (see the type docs); drop a half-finished measurement.
        self.observing = false;
        self.peak = 0.0;
        if let Some(meter) = &mut self.meter {
            meter.reset();
        }
    }

    fn wants_analysis(&self) -> bool {
        true
    }

    fn observe(&mut self, input: &Block) {
        if !self.observing {
            self.start_observation();
        }
        let channels = input.channel_count().min(MAX_CHANNELS);
        let mut planes: [&[f32]; MAX_CHANNELS] = [&[]; MAX_CHANNELS];
        for (ch, plane) in planes.iter_mut().enumerate().take(channels) {
            let samples = input.channel(ch);
            *plane = samples;
            self.peak = samples.iter().fold(self.peak, |p, s| p.max(s.abs()));
        }
        if let Some(meter) = &mut self.meter {
            if channels == self.channels
                && input.frames() > 0
                && meter.add_frames_planar_f32(&planes[..channels]).is_err()
            {
                self.meter_failed = true;
            }
        }
    }

    fn end_observation(&mut self) {
        let measured_peak_db = gain_to_db(f64::from(self.peak));
        let measured_lufs = self
            .meter
            .as_ref()
            .map(|m| m.loudness_global().unwrap_or(f64::NEG_INFINITY));
        let (measured, target) = match (self.params.lufs, self.params.peak_db) {
            (Some(target), _) => (measured_lufs.unwrap_or(f64::NEG_INFINITY), target),
            (None, Some(target)) => (measured_peak_db, target),
            (None, None) => (f64::NEG_INFINITY, 0.0),
        };
        let floor = if self.params.lufs.is_some() {
            SILENCE_LUFS
        } else {
            // A peak of −inf dB (all zeros); any non-zero peak can be normalised.
            f64::MIN
        };
        let silent = !measured.is_finite() || measured < floor || self.meter_failed;
        let wanted = target - measured;
        let (gain_db, clamped) = if silent {
            (0.0, false)
        } else if wanted > self.params.max_gain_db {
            (self.params.max_gain_db, true)
        } else {
            (wanted, false)
        };
        self.decision = Some(Decision {
            measured_lufs,
            measured_peak_db,
            gain_db,
            silent,
            clamped,
        });
        // gain 0 dB → factor exactly 1.0, a bit-exact pass-through.
        self.factor = db_to_gain(gain_db) as f32;
        self.observing = false;
    }

    fn report(&self) -> Option<serde_json::Value> {
        // JSON has no infinities: report silence as null levels.
        let finite = |v: f64| v.is_finite().then_some(v);
        Some(match &self.decision {
            None => serde_json::json!({ "analysed": false, "applied_gain_db": 0.0 }),
            Some(d) => serde_json::json!({
                "analysed": true,
                "measured_lufs": d.measured_lufs.and_then(finite),
                "measured_peak_db": finite(d.measured_peak_db),
                "applied_gain_db": d.gain_db,
                "predicted_peak_db": finite(d.measured_peak_db + d.gain_db),
                "silent": d.silent,
                "gain_clamped": d.clamped,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(frames: usize, amp: f32, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..frames)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0) * amp
            })
            .collect()
    }

    fn sine(fs: u32, freq: f64, amp: f64, frames: usize) -> Vec<f32> {
        (0..frames)
            .map(|n| (amp * (std::f64::consts::TAU * freq * n as f64 / f64::from(fs)).sin()) as f32)
            .collect()
    }

    /// Integrated loudness measured independently (ebur128 default queue mode, no histogram).
    fn lufs(channels: &[Vec<f32>], fs: u32) -> f64 {
        let mut meter = EbuR128::new(channels.len() as u32, fs, Mode::I).expect("meter");
        let planes: Vec<&[f32]> = channels.iter().map(|c| c.as_slice()).collect();
        meter.add_frames_planar_f32(&planes).expect("add");
        meter.loudness_global().expect("loudness")
    }

    fn blocks(input: &[Vec<f32>], block: usize) -> Vec<Block> {
        let frames = input[0].len();
        (0..frames)
            .step_by(block.max(1))
            .map(|start| {
                let end = (start + block).min(frames);
                let slices: Vec<&[f32]> = input.iter().map(|c| &c[start..end]).collect();
                Block::from_channels(&slices)
            })
            .collect()
    }

    /// Analysis pass in `observe_block` frames, then the processing pass in `process_block`.
    fn run(
        params: NormalizeParams,
        fs: u32,
        input: &[Vec<f32>],
        observe_block: usize,
        process_block: usize,
    ) -> (Normalize, Vec<Vec<f32>>) {
        let mut stage = Normalize::new(params);
        let spec = StreamSpec::new(fs, input.len()).expect("spec");
        stage.prepare(spec, process_block).expect("prepare");
        assert!(stage.wants_analysis());
        for b in blocks(input, observe_block) {
            stage.observe(&b);
        }
        stage.end_observation();
        let out = process(&mut stage, input, process_block);
        (stage, out)
    }

    fn process(stage: &mut Normalize, input: &[Vec<f32>], block: usize) -> Vec<Vec<f32>> {
        let mut out = vec![Vec::new(); input.len()];
        for b in blocks(input, block) {
            let mut o = Block::new(b.channel_count(), b.frames());
            stage.process(&b, &mut o, &mut StageContext::default());
            for (dst, src) in out.iter_mut().zip(o.channels()) {
                dst.extend_from_slice(src);
            }
        }
        out
    }

    fn lufs_target(target: f64) -> NormalizeParams {
        NormalizeParams {
            lufs: Some(target),
            ..NormalizeParams::default()
        }
    }

    fn peak_target(target: f64) -> NormalizeParams {
        NormalizeParams {
            peak_db: Some(target),
            ..NormalizeParams::default()
        }
    }

    #[test]
    fn reference_tone_reads_minus_23_lufs() {
        // EBU Tech 3341 case 1: 1 kHz stereo sine at −23 dBFS peak per channel = −23.0 LUFS
        // (the −0.691 dB constant of BS.1770 cancels the K-weighting gain at 1 kHz, and two
        // channels of a sine of peak A sum to 20·log10(A)). ±0.1 LU, as the spec allows.
        let fs = 48_000;
        let x = sine(fs, 1000.0, 10f64.powf(-23.0 / 20.0), 20 * fs as usize);
        let input = vec![x.clone(), x];
        assert!((lufs(&input, fs) + 23.0).abs() < 0.1);
        let (stage, _) = run(lufs_target(-16.0), fs, &input, 4096, 4096);
        let report = stage.report().expect("report");
        let measured = report["measured_lufs"].as_f64().expect("lufs");
        assert!((measured + 23.0).abs() < 0.1, "{report}");
        assert!((stage.gain_db() - 7.0).abs() < 0.1, "{report}");
    }

    #[test]
    fn noise_at_minus_30_is_normalised_to_minus_16() {
        // ±0.1 LU measured independently afterwards.
        let fs = 44_100;
        let raw = vec![
            noise(10 * fs as usize, 0.5, 1),
            noise(10 * fs as usize, 0.5, 2),
        ];
        let scale = 10f64.powf((-30.0 - lufs(&raw, fs)) / 20.0) as f32;
        let input: Vec<Vec<f32>> = raw
            .iter()
            .map(|c| c.iter().map(|s| s * scale).collect())
            .collect();
        assert!((lufs(&input, fs) + 30.0).abs() < 0.01);
        let (stage, out) = run(lufs_target(-16.0), fs, &input, 4096, 4096);
        let measured = lufs(&out, fs);
        assert!(
            (measured + 16.0).abs() < 0.1,
            "{measured}, gain {}",
            stage.gain_db()
        );
    }

    #[test]
    fn peak_mode_hits_target_sample_peak() {
        // ±0.01 dB.
        let fs = 48_000;
        let input = vec![noise(fs as usize, 0.2, 3), noise(fs as usize, 0.35, 4)];
        for target in [-1.0, -6.0, 0.0] {
            let (stage, out) = run(peak_target(target), fs, &input, 1000, 1000);
            let peak = out
                .iter()
                .flatten()
                .fold(0.0f64, |p, &s| p.max(f64::from(s.abs())));
            let got = gain_to_db(peak);
            assert!(
                (got - target).abs() < 0.01,
                "{got} vs {target}, {:?}",
                stage.report()
            );
        }
    }

    #[test]
    fn silence_gets_zero_gain_and_no_nan() {
        let fs = 44_100;
        let input = vec![vec![0.0f32; fs as usize]; 2];
        for params in [lufs_target(-16.0), peak_target(-1.0)] {
            let (stage, out) = run(params, fs, &input, 4096, 4096);
            assert_eq!(stage.gain_db(), 0.0);
            assert_eq!(out, input);
            let report = stage.report().expect("report");
            assert_eq!(report["silent"], true, "{report}");
            assert_eq!(report["applied_gain_db"], 0.0);
            assert!(!report.to_string().contains("NaN"));
        }
        // Too short for one 400 ms gating block: silent as well, not an error.
        let short = vec![noise(1000, 0.5, 5); 2];
        let (stage, out) = run(lufs_target(-16.0), fs, &short, 64, 64);
        assert_eq!(stage.gain_db(), 0.0);
        assert_eq!(out, short);
    }

    #[test]
    fn boost_is_limited_by_max_gain() {
        let fs = 44_100;
        let input = vec![noise(fs as usize, 10f32.powf(-50.0 / 20.0), 6)];
        let (stage, _) = run(peak_target(0.0), fs, &input, 4096, 4096);
        assert_eq!(stage.gain_db(), 30.0);
        assert_eq!(stage.report().expect("report")["gain_clamped"], true);
    }

    #[test]
    fn analysis_and_processing_are_chunk_invariant() {
        for fs in [44_100, 96_000] {
            let input = vec![
                noise(3 * fs as usize, 0.1, 7),
                noise(3 * fs as usize, 0.3, 8),
            ];
            let frames = input[0].len();
            for params in [lufs_target(-14.0), peak_target(-3.0)] {
                let (whole_stage, whole) = run(params.clone(), fs, &input, frames, frames);
                for block in [1, 17, 4096] {
                    let (stage, out) = run(params.clone(), fs, &input, block, block);
                    let diff = (stage.gain_db() - whole_stage.gain_db()).abs();
                    assert!(diff < 1e-9, "fs {fs} block {block}: {diff} dB");
                    assert_eq!(out, whole, "fs {fs} block {block}");
                }
            }
        }
    }

    #[test]
    fn without_analysis_the_gain_is_zero() {
        let input = vec![noise(1000, 0.5, 9)];
        let mut stage = Normalize::new(lufs_target(-16.0));
        stage
            .prepare(StreamSpec::new(44_100, 1).expect("spec"), 256)
            .expect("prepare");
        assert_eq!(process(&mut stage, &input, 256), input);
        assert_eq!(stage.report().expect("report")["analysed"], false);
    }

    #[test]
    fn reset_keeps_the_decision() {
        let fs = 44_100;
        let input = vec![noise(fs as usize, 0.1, 10)];
        let (mut stage, first) = run(peak_target(-1.0), fs, &input, 4096, 4096);
        let gain = stage.gain_db();
        assert!(gain > 10.0);
        stage.reset();
        assert_eq!(stage.gain_db(), gain);
        assert_eq!(process(&mut stage, &input, 4096), first);
    }

    /// The runner's flow through [`Chain`]: analysis pass for the normaliser (a gain before it
    /// runs, then is reset), processing pass through a limiter after it: the output is aligned,
    /// of the same length, and at the target peak (±0.01 dB).
    #[test]
    fn two_pass_through_a_chain() {
        use crate::dsp::{Chain, Gain, Limiter, LimiterParams};
        let fs = 44_100;
        let input = vec![noise(fs as usize, 0.1, 11), noise(fs as usize, 0.2, 12)];
        let mut chain = Chain::new(vec![
            Box::new(Gain::new(6.0)),
            Box::new(Normalize::new(peak_target(-10.0))),
            Box::new(Limiter::new(LimiterParams::default())),
        ]);
        chain
            .prepare(StreamSpec::new(fs, 2).expect("spec"), 4096)
            .expect("prepare");
        assert_eq!(chain.analysis_stages(), vec![1]);
        for b in blocks(&input, 4096) {
            chain.observe(1, &b);
        }
        chain.end_observation(1);
        let mut out = vec![Vec::new(); 2];
        for b in blocks(&input, 4096) {
            for (o, c) in out.iter_mut().zip(chain.process(&b).channels()) {
                o.extend_from_slice(c);
            }
        }
        while let Some(b) = chain.flush() {
            for (o, c) in out.iter_mut().zip(b.channels()) {
                o.extend_from_slice(c);
            }
        }
        assert_eq!(out[0].len(), input[0].len());
        let peak = out
            .iter()
            .flatten()
            .fold(0.0f64, |p, &s| p.max(f64::from(s.abs())));
        assert!(
            (gain_to_db(peak) + 10.0).abs() < 0.01,
            "{}",
            gain_to_db(peak)
        );
        // Full-band noise can have true peaks a few dB above its sample peak; at −10 dB it stays
        // below the limiter's −2 dB ceiling, so the limiter is transparent: out = in × gain.
        let factor = out[0][100] / input[0][100];
        assert!((out[1][200] / input[1][200] - factor).abs() < 1e-6);
    }

    #[test]
    fn params_need_exactly_one_target() {
        assert_eq!(
            NormalizeParams::default().validate(),
            Err(NormalizeParamError::ExactlyOneTarget)
        );
        let both = NormalizeParams {
            peak_db: Some(-1.0),
            lufs: Some(-16.0),
            ..NormalizeParams::default()
        };
        assert_eq!(both.validate(), Err(NormalizeParamError::ExactlyOneTarget));
        assert_eq!(lufs_target(-16.0).validate(), Ok(()));
        assert_eq!(peak_target(-1.0).validate(), Ok(()));
        assert!(matches!(
            lufs_target(-3.0).validate(),
            Err(NormalizeParamError::Range(ParamError { field: "lufs", .. }))
        ));
        assert!(peak_target(0.5).validate().is_err());
        let big_boost = NormalizeParams {
            max_gain_db: 61.0,
            ..peak_target(-1.0)
        };
        assert!(big_boost.validate().is_err());
        let p: NormalizeParams = serde_json::from_str(r#"{"lufs": -16}"#).expect("parse");
        assert_eq!(p, lufs_target(-16.0));
        assert!(serde_json::from_str::<NormalizeParams>(r#"{"target": -16}"#).is_err());
    }
}
