//! The product's DSP: the [`Stage`] contract, the [`Chain`] that runs stages in order with latency
//! and tail handling, and the stages themselves.
//!
//! `dsp` is pure: it depends on `audio` only (no I/O, no tokio, AWS, metrics or tracing), and once
//! prepared it cannot fail. Streaming is the default: a stage keeps its state from block to block
//! until [`Stage::reset`] is called (pedalboard resets by default; we invert that).

mod chain;
mod gain;
mod limiter;
mod normalize;
mod pan8d;
mod reverb;
mod silence;
mod stage;
#[cfg(test)]
mod test_util;

pub use chain::{Chain, StageTiming};
pub use gain::Gain;
pub use limiter::{Limiter, LimiterMode, LimiterParams};
pub use normalize::{Normalize, NormalizeParamError, NormalizeParams};
pub use pan8d::{Pan8d, Pan8dParams, PanLaw, PanMode};
pub use reverb::{Reverb, ReverbParams};
pub use silence::{
    AutoKeyword, KeepSilence, Silence, SilenceAction, SilenceMode, SilenceParams, Threshold,
};
pub use stage::{short_number, ParamError, Stage, StageContext, StageError, StageEvent};

/// Converts decibels to a linear amplitude ratio.
pub fn db_to_gain(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

/// Converts a linear amplitude ratio to decibels (`-inf` for 0).
pub fn gain_to_db(gain: f64) -> f64 {
    20.0 * gain.log10()
}
