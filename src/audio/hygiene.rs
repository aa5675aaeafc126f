//! Sample hygiene: the one place where non-finite and absurd sample values are repaired.
//!
//! Decoders can hand us NaN and ±Inf (a 32-bit float WAV may carry them) and absurd magnitudes
//! (a corrupt MP3 decoded by symphonia reached +103.9 dBFS where ffmpeg stays at 0 dBFS). One
//! NaN poisons every recursive stage after it (reverb and limiter state become NaN for the rest
//! of the stream) and LAME aborts the whole process on one (`calc_energy: Assertion 'el >= 0'`).
//! So the decoder runs [`Block::sanitize`] on every block it produces, and every encoder runs it
//! on what it is about to encode: no stage and no codec ever sees a non-finite sample.
//!
//! Policy (stated once, here): a non-finite sample becomes 0.0; a finite sample beyond
//! ±[`MAX_SAMPLE_MAGNITUDE`] is clamped to it. Both are counted ([`SampleRepairs`]) and reported
//! in the manifest and the metrics. Values between full scale (±1.0) and the limit are legal
//! (float files and DAW exports carry headroom) and are left alone here; integer encoders clip
//! them to their range and count that separately.

use super::Block;
use serde::Serialize;

/// The largest sample magnitude that passes unchanged: 16.0, i.e. +24.08 dBFS.
///
/// Real float recordings with headroom stay far below it (DAW exports rarely exceed +6 dBFS);
/// anything above is a decoder artefact of corrupt data, and letting it through would make a peak
/// normaliser turn the whole file down by the artefact's level.
pub const MAX_SAMPLE_MAGNITUDE: f32 = 16.0;

/// How many samples [`sanitize`] repaired, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SampleRepairs {
    /// NaN or ±Inf samples replaced by 0.0.
    pub non_finite: u64,
    /// Finite samples beyond ±[`MAX_SAMPLE_MAGNITUDE`] clamped to it.
    pub out_of_range: u64,
}

impl SampleRepairs {
    /// True when nothing was repaired.
    pub fn is_clean(&self) -> bool {
        self.non_finite == 0 && self.out_of_range == 0
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: SampleRepairs) {
        self.non_finite += other.non_finite;
        self.out_of_range += other.out_of_range;
    }
}

/// True when [`sanitize`] would change nothing: every sample finite and within
/// ±[`MAX_SAMPLE_MAGNITUDE`] (`abs() <= limit` is false for NaN too, so one comparison a sample).
#[inline]
pub fn is_clean(samples: &[f32]) -> bool {
    samples.iter().all(|x| x.abs() <= MAX_SAMPLE_MAGNITUDE)
}

/// Repairs `samples` in place by the module's policy and returns what it changed.
///
/// The common case (every sample finite and in range) is one comparison per sample and no
/// write: `abs() <= limit` is false for NaN too, so a single scan finds both kinds.
pub fn sanitize(samples: &mut [f32]) -> SampleRepairs {
    let mut repairs = SampleRepairs::default();
    if is_clean(samples) {
        return repairs;
    }
    for x in samples.iter_mut() {
        if !x.is_finite() {
            *x = 0.0;
            repairs.non_finite += 1;
        } else if x.abs() > MAX_SAMPLE_MAGNITUDE {
            *x = MAX_SAMPLE_MAGNITUDE.copysign(*x);
            repairs.out_of_range += 1;
        }
    }
    repairs
}

impl Block {
    /// [`sanitize`]s the valid frames of every channel.
    pub fn sanitize(&mut self) -> SampleRepairs {
        let mut repairs = SampleRepairs::default();
        for ch in 0..self.channel_count() {
            repairs.add(sanitize(self.channel_mut(ch)));
        }
        repairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_samples_are_left_alone() {
        let mut samples = [
            0.0,
            1.0,
            -1.0,
            15.9,
            -MAX_SAMPLE_MAGNITUDE,
            f32::MIN_POSITIVE,
        ];
        let before = samples;
        assert!(sanitize(&mut samples).is_clean());
        assert_eq!(samples, before);
    }

    #[test]
    fn non_finite_become_zero_and_absurd_values_are_clamped() {
        let mut samples = [
            f32::NAN,
            0.5,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1.6e5,
            -2.0e30,
            -0.25,
        ];
        let repairs = sanitize(&mut samples);
        assert_eq!(
            repairs,
            SampleRepairs {
                non_finite: 3,
                out_of_range: 2
            }
        );
        assert_eq!(samples, [0.0, 0.5, 0.0, 0.0, 16.0, -16.0, -0.25]);
    }

    #[test]
    fn block_sanitize_touches_only_valid_frames() {
        let mut block = Block::new(2, 4);
        block
            .channel_buffer_mut(0)
            .copy_from_slice(&[f32::NAN, 0.1, 0.2, f32::NAN]);
        block
            .channel_buffer_mut(1)
            .copy_from_slice(&[0.3, 99.0, 0.4, 99.0]);
        block.set_frames(3);
        let repairs = block.sanitize();
        assert_eq!(repairs.non_finite, 1);
        assert_eq!(repairs.out_of_range, 1);
        assert_eq!(block.channel(0), &[0.0, 0.1, 0.2]);
        assert_eq!(block.channel(1), &[0.3, 16.0, 0.4]);
        // Beyond the valid frames nothing changed.
        assert!(block.channel_buffer_mut(0)[3].is_nan());
    }
}
