//! Audio data types shared by every layer: the stream description ([`StreamSpec`]) and the
//! fixed-capacity planar buffer ([`Block`]) that flows through decode → DSP → encode.
//!
//! This module does no I/O and depends on nothing else in the crate, so `dsp` can depend on it
//! alone. Blocks are allocated once per job (see [`BlockPool`]) and reused: nothing on the per-chunk
//! path allocates.

mod block;
mod hygiene;
mod panic;
mod pool;
mod round;
mod sink;

pub use block::Block;
pub use hygiene::{is_clean, sanitize, SampleRepairs, MAX_SAMPLE_MAGNITUDE};
pub use panic::panic_message;
pub use pool::BlockPool;
pub use round::round_to_i64;
pub use sink::{
    check_patch, io_reason, ByteSink, MemoryOutput, MemorySink, SinkError, PATCH_WINDOW,
};

use serde::Serialize;

/// The shape of a stream of audio: what every stage needs to know before the first sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StreamSpec {
    /// Frames per second (one frame = one sample of every channel).
    pub sample_rate: u32,
    /// Number of channels, 1..=[`MAX_CHANNELS`].
    pub channels: usize,
}

/// The most channels longwave accepts (7.1 surround); more is rejected at decode time.
pub const MAX_CHANNELS: usize = 8;
/// The lowest sample rate longwave accepts.
pub const MIN_SAMPLE_RATE: u32 = 8_000;
/// The highest sample rate longwave accepts.
pub const MAX_SAMPLE_RATE: u32 = 192_000;

impl StreamSpec {
    /// A spec, checked against the supported channel and sample-rate ranges.
    ///
    /// # Errors
    /// Returns a human-readable reason when a value is outside the supported range.
    pub fn new(sample_rate: u32, channels: usize) -> Result<Self, String> {
        if !(1..=MAX_CHANNELS).contains(&channels) {
            return Err(format!(
                "{channels} channels is outside the supported range 1..={MAX_CHANNELS}"
            ));
        }
        if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
            return Err(format!(
                "sample rate {sample_rate} Hz is outside the supported range \
                 {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz"
            ));
        }
        Ok(Self {
            sample_rate,
            channels,
        })
    }

    /// Duration in seconds of `frames` frames at this rate.
    pub fn seconds(&self, frames: u64) -> f64 {
        frames as f64 / f64::from(self.sample_rate)
    }
}
