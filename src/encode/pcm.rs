//! The one conversion from f32 samples to what an encoder stores, with every clip counted.
//!
//! Integer outputs (WAV PCM 16/24, FLAC 16/24) quantise through [`Quantizer`]; float WAV passes
//! samples through [`Quantizer::guard_float`], MP3 repairs a copy of an unclean block with
//! `audio::sanitize` and [`Quantizer::count`]s it. Both follow the hygiene policy of
//! `audio::sanitize` (non-finite → 0.0, counted), so an encoder never stores NaN or hands one to
//! LAME even if a stage produced one, and both count the samples that had to be clamped to what
//! the format carries. The counts go into the manifest's output entry.

use crate::audio::{round_to_i64, SampleRepairs, MAX_SAMPLE_MAGNITUDE};

/// Integer PCM depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PcmDepth {
    /// 16-bit: −32768..=32767.
    Bits16,
    /// 24-bit: −8388608..=8388607 (held in an `i32`).
    Bits24,
}

impl PcmDepth {
    /// The depth for a bit count, if it is 16 or 24.
    pub(crate) fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            16 => Some(Self::Bits16),
            24 => Some(Self::Bits24),
            _ => None,
        }
    }

    /// Bits per sample.
    pub(crate) fn bits(self) -> u8 {
        match self {
            Self::Bits16 => 16,
            Self::Bits24 => 24,
        }
    }
}

/// Converts samples and counts what did not fit; one per encoder.
#[derive(Debug, Default, Clone)]
pub(crate) struct Quantizer {
    /// Samples clamped to the format's limit: integer full scale, or ±`MAX_SAMPLE_MAGNITUDE`
    /// for float WAV and MP3.
    pub(crate) clipped: u64,
    /// NaN/±Inf samples written as 0.
    pub(crate) non_finite: u64,
}

impl Quantizer {
    /// Converts `x` to 16-bit PCM: scaled by 2^15, rounded to nearest (ties away from zero),
    /// clamped to −32768..=32767.
    ///
    /// The scale is 2^15 (not 32767) because decoders (symphonia, ffmpeg) map integer PCM to
    /// float as `i / 2^15`: with the same scale, integer input passes through decode → encode
    /// bit-exactly, which one-shot pieces of a WAV or FLAC file rely on.
    #[inline]
    pub(crate) fn pcm16(&mut self, x: f32) -> i16 {
        // Exact in f32: the scale is a power of two. `scaled` rounds into −32768..=32767
        // exactly when it lies strictly between −32768.5 and 32767.5 (NaN does not).
        let scaled = x * 32_768.0;
        if scaled > -32_768.5 && scaled < 32_767.5 {
            round_to_i64(f64::from(scaled)) as i16
        } else {
            self.out_of_range(x, i32::from(i16::MIN), i32::from(i16::MAX)) as i16
        }
    }

    /// Converts `x` to 24-bit PCM (in an `i32`): scaled by 2^23, rounded to nearest, clamped to
    /// −8388608..=8388607 (same reasoning as [`Quantizer::pcm16`]).
    #[inline]
    pub(crate) fn pcm24(&mut self, x: f32) -> i32 {
        // f64: an f32 mantissa (24 bits) cannot hold every product exactly.
        let scaled = f64::from(x) * 8_388_608.0;
        if scaled > -8_388_608.5 && scaled < 8_388_607.5 {
            round_to_i64(scaled) as i32
        } else {
            self.out_of_range(x, -8_388_608, 8_388_607)
        }
    }

    /// Converts `x` at `depth`.
    #[inline]
    pub(crate) fn pcm(&mut self, depth: PcmDepth, x: f32) -> i32 {
        match depth {
            PcmDepth::Bits16 => i32::from(self.pcm16(x)),
            PcmDepth::Bits24 => self.pcm24(x),
        }
    }

    /// `x` for a float output (float WAV, LAME's float input): unchanged when finite and within
    /// ±`MAX_SAMPLE_MAGNITUDE`, else 0.0 (non-finite) or clamped, and counted.
    #[inline]
    pub(crate) fn guard_float(&mut self, x: f32) -> f32 {
        if x.abs() <= MAX_SAMPLE_MAGNITUDE {
            x
        } else if x.is_finite() {
            self.clipped += 1;
            MAX_SAMPLE_MAGNITUDE.copysign(x)
        } else {
            self.non_finite += 1;
            0.0
        }
    }

    /// Adds repairs made by `audio::sanitize` on a copy of the samples (the MP3 path) to the
    /// counts: clamped magnitudes count as clipped.
    pub(crate) fn count(&mut self, repairs: SampleRepairs) {
        self.clipped += repairs.out_of_range;
        self.non_finite += repairs.non_finite;
    }

    /// The slow path of the integer conversions: NaN/Inf → 0, anything else to the nearer limit.
    #[cold]
    fn out_of_range(&mut self, x: f32, min: i32, max: i32) -> i32 {
        if x.is_finite() {
            self.clipped += 1;
            if x > 0.0 {
                max
            } else {
                min
            }
        } else {
            self.non_finite += 1;
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm16_rounds_to_nearest_and_counts_clips() {
        let mut q = Quantizer::default();
        assert_eq!(q.pcm16(0.0), 0);
        assert_eq!(q.pcm16(0.5 / 32_768.0), 1, "ties away from zero");
        assert_eq!(q.pcm16(-1.0), -32_768);
        assert_eq!(q.pcm16(32_767.0 / 32_768.0), 32_767);
        assert_eq!((q.clipped, q.non_finite), (0, 0));
        assert_eq!(q.pcm16(1.0), 32_767);
        assert_eq!(q.pcm16(-1.5), -32_768);
        assert_eq!(q.pcm16(f32::NAN), 0);
        assert_eq!(q.pcm16(f32::INFINITY), 0);
        assert_eq!((q.clipped, q.non_finite), (2, 2));
    }

    #[test]
    fn pcm24_is_exact_in_range_and_counts_clips() {
        let mut q = Quantizer::default();
        for i in [-8_388_608, -1, 0, 1, 4_194_304, 8_388_607] {
            assert_eq!(q.pcm24(i as f32 / 8_388_608.0), i);
        }
        assert_eq!((q.clipped, q.non_finite), (0, 0));
        assert_eq!(q.pcm24(1.0), 8_388_607);
        assert_eq!(q.pcm24(-7.0), -8_388_608);
        assert_eq!(q.pcm24(f32::NEG_INFINITY), 0);
        assert_eq!((q.clipped, q.non_finite), (2, 1));
    }

    #[test]
    fn float_guard_keeps_headroom_and_repairs_the_rest() {
        let mut q = Quantizer::default();
        assert_eq!(q.guard_float(1.5), 1.5);
        assert_eq!(q.guard_float(-16.0), -16.0);
        assert_eq!(q.guard_float(1e9), MAX_SAMPLE_MAGNITUDE);
        assert_eq!(q.guard_float(f32::NAN), 0.0);
        assert_eq!((q.clipped, q.non_finite), (1, 1));
    }
}
