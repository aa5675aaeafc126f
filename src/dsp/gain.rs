//! [`Gain`]: a constant gain in dB (pedalboard `Gain(gain_db)`).

use super::{db_to_gain, Stage, StageContext, StageError};
use crate::audio::{Block, StreamSpec};

/// Multiplies every sample by `10^(gain_db/20)`. `gain_db = 0` is a bit-exact no-op, as in
/// pedalboard (JUCE `dsp::Gain` with no ramp).
#[derive(Debug, Clone)]
pub struct Gain {
    gain_db: f64,
    factor: f32,
}

impl Gain {
    /// A gain stage of `gain_db` decibels.
    pub fn new(gain_db: f64) -> Self {
        Self {
            gain_db,
            factor: db_to_gain(gain_db) as f32,
        }
    }

    /// The configured gain in dB.
    pub fn gain_db(&self) -> f64 {
        self.gain_db
    }
}

impl Stage for Gain {
    fn name(&self) -> &'static str {
        "gain"
    }

    fn prepare(
        &mut self,
        input: StreamSpec,
        _max_block_frames: usize,
    ) -> Result<StreamSpec, StageError> {
        Ok(input)
    }

    fn process(&mut self, input: &Block, output: &mut Block, _cx: &mut StageContext) {
        output.set_frames(input.frames());
        for ch in 0..input.channel_count() {
            let src = input.channel(ch);
            let dst = output.channel_mut(ch);
            for (d, s) in dst.iter_mut().zip(src) {
                *d = *s * self.factor;
            }
        }
    }

    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(gain_db: f64, samples: &[f32]) -> Vec<f32> {
        let mut stage = Gain::new(gain_db);
        let spec = StreamSpec::new(44_100, 1).expect("valid spec");
        stage.prepare(spec, samples.len()).expect("prepare");
        let input = Block::from_channels(&[samples]);
        let mut output = Block::new(1, samples.len());
        stage.process(&input, &mut output, &mut StageContext::default());
        output.channel(0).to_vec()
    }

    #[test]
    fn zero_db_is_bit_exact() {
        let samples = [0.1, -0.7, 0.123_456_79, 1.5];
        assert_eq!(run(0.0, &samples), samples);
    }

    #[test]
    fn minus_six_db_halves_within_tolerance() {
        let out = run(-6.020_599_913, &[1.0, -0.5]);
        assert!((out[0] - 0.5).abs() < 1e-6, "{out:?}");
        assert!((out[1] + 0.25).abs() < 1e-6, "{out:?}");
    }
}
