//! # longwave
//!
//! Streaming audio processing for long files: decode → DSP chain → encode, in memory that does
//! not depend on the file's length.
//!
//! ```text
//! file / S3 object
//!   │ Read + Seek (bounded reads)
//!   ▼
//! decode   symphonia on its own thread → fixed-size planar Blocks      (decode/)
//!   │ bounded channel (backpressure)
//!   ▼
//! dsp      Chain of Stages, on the job's DSP thread, blocks in order   (dsp/, job/runner)
//!   │ bounded channel
//!   ▼
//! encode   WAV / FLAC / MP3 → ByteSink (header patched last, atomic)   (encode/)
//! ```
//!
//! Module map and dependency rules: `audio` depends on nothing; `dsp` only on `audio`;
//! `decode` and `encode` on `audio`; `job` is the one place that knows every layer.

pub mod audio;
pub mod decode;
pub mod dsp;
pub mod encode;
pub mod fuzzing;
pub mod io;
pub mod job;
pub mod synth;
pub mod telemetry;
pub mod worker;
