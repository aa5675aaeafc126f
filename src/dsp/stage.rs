//! The [`Stage`] trait: the lifecycle every DSP stage follows.

use crate::audio::{Block, StreamSpec};

/// One DSP step of a chain (gain, reverb, limiter, …).
///
/// Lifecycle: [`prepare`](Stage::prepare) once per stream (may allocate), then
/// [`process`](Stage::process) for every block in stream order (must not allocate, lock or fail),
/// then [`reset`](Stage::reset) before reusing the stage on another stream.
///
/// # For implementors
/// - The one invariant every stage is tested for: processing a signal whole and in blocks of any
///   size (1, 17, 4096, 48000 frames …) gives the same output and the same length.
/// - State persists across `process` calls until `reset` is called.
/// - `process` writes `output` with `output.frames() <= input.frames()` frames (a stage may drop
///   frames, e.g. trimming, but never invent more than it received; latency is handled by the
///   chain, not by shortening the output). `output` has the channel count `prepare` returned and
///   the capacity `max_block_frames` given to `prepare`.
/// - A stage with look-ahead reports it in [`latency_frames`](Stage::latency_frames): its output
///   is the input delayed by that many frames, and the chain drops that many frames at the start
///   and flushes them at the end.
/// - A stage that rings on after its input ends (reverb with a tail) reports the length to render
///   in [`tail_frames`](Stage::tail_frames); the chain feeds that many frames of silence at the end.
pub trait Stage: Send {
    /// Short lower_snake name; doubles as a metric label.
    fn name(&self) -> &'static str;

    /// Configures the stage for a stream and allocates its state; returns the output spec.
    ///
    /// # Errors
    /// Fails when the stage cannot handle the stream (e.g. a channel count it does not support).
    fn prepare(
        &mut self,
        input: StreamSpec,
        max_block_frames: usize,
    ) -> Result<StreamSpec, StageError>;

    /// Processes one block. Infallible and allocation-free.
    fn process(&mut self, input: &Block, output: &mut Block, cx: &mut StageContext);

    /// Frames by which the output lags the input.
    fn latency_frames(&self) -> usize {
        0
    }

    /// Frames of output to render after the input ends.
    fn tail_frames(&self) -> usize {
        0
    }

    /// Clears all state, as if freshly prepared.
    fn reset(&mut self);

    /// Bytes of state [`prepare`](Stage::prepare) allocated for this stream (delay lines,
    /// rings, meters), as an upper bound of what the stage holds while it runs. The runner adds
    /// it to the job's memory bound and refuses a job whose bound exceeds its budget before any
    /// audio is decoded; a stage that under-reports breaks that promise. 0 for stateless stages.
    fn state_bytes(&self) -> usize {
        0
    }

    /// True when the stage needs statistics of its whole input before the first output sample
    /// (loudness normalisation, an auto-detected silence threshold). The runner then runs an
    /// analysis pass first: the stages before this one process normally and this stage only
    /// [`observe`](Stage::observe)s; then [`end_observation`](Stage::end_observation); then the
    /// processing pass.
    fn wants_analysis(&self) -> bool {
        false
    }

    /// Analysis pass: sees one block of this stage's input. Allocation-free, like `process`.
    fn observe(&mut self, _input: &Block) {}

    /// Analysis pass finished: fix the decision (gain, threshold …) for the processing pass.
    fn end_observation(&mut self) {}

    /// What the stage decided or measured (chosen threshold, measured loudness, applied gain,
    /// detected ranges summary), recorded in the manifest. `None` when there is nothing to say.
    fn report(&self) -> Option<serde_json::Value> {
        None
    }
}

/// Something a stage tells the runner about the stream it outputs, positioned in that output
/// stream's frames (absolute, counted from the stage's first output frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageEvent {
    /// A new output piece starts at output frame `frame`; it comes from source frame
    /// `source_frame` of the stage's input.
    PieceStart {
        /// Output frame where the piece starts.
        frame: u64,
        /// Where the piece starts in the stage's input, in frames.
        source_frame: u64,
    },
    /// The current piece ends just before output frame `frame`; it ends at (exclusive) source
    /// frame `source_frame`.
    PieceEnd {
        /// Output frame after the piece's last frame.
        frame: u64,
        /// Where the piece ends in the stage's input (exclusive), in frames.
        source_frame: u64,
    },
}

/// Per-call context handed to every stage: where the chain is in the stream, and where a stage
/// reports [`StageEvent`]s (piece boundaries of a split).
#[derive(Debug, Clone)]
pub struct StageContext {
    /// True while the chain is feeding silence to flush latency and tails after the input ended.
    pub flushing: bool,
    /// True when the input has ended: a splitting stage must close its last piece now. Set on the
    /// first flush call (or by the runner on the last block when nothing needs flushing).
    pub end_of_stream: bool,
    events: Vec<StageEvent>,
}

/// Events one `process` call may emit before the buffer must grow (it still grows if needed; a
/// piece boundary per block is the realistic maximum).
const EVENT_CAPACITY: usize = 64;

impl Default for StageContext {
    fn default() -> Self {
        Self {
            flushing: false,
            end_of_stream: false,
            events: Vec::with_capacity(EVENT_CAPACITY),
        }
    }
}

impl StageContext {
    /// Reports an event (called by stages).
    pub fn emit(&mut self, event: StageEvent) {
        self.events.push(event);
    }

    /// Events emitted since the last [`StageContext::clear_events`] (called by the runner).
    pub fn events(&self) -> &[StageEvent] {
        &self.events
    }

    /// Clears the events (called by the runner after routing them).
    pub fn clear_events(&mut self) {
        self.events.clear();
    }

    /// Moves the events from index `from` on earlier by `frames`: a stage after look-ahead
    /// stages sees their delay, which the chain removes from its output.
    pub fn shift_events_from(&mut self, from: usize, frames: u64) {
        for event in &mut self.events[from..] {
            match event {
                StageEvent::PieceStart {
                    frame,
                    source_frame,
                }
                | StageEvent::PieceEnd {
                    frame,
                    source_frame,
                } => {
                    *frame = frame.saturating_sub(frames);
                    *source_frame = source_frame.saturating_sub(frames);
                }
            }
        }
    }
}

/// A stage could not be prepared for a stream.
#[derive(Debug, thiserror::Error)]
#[error("stage {stage}: {reason}")]
pub struct StageError {
    /// The stage's name.
    pub stage: &'static str,
    /// Why it cannot run.
    pub reason: String,
}

/// `value` for an error message: plain when short, in scientific notation when huge or tiny
/// (`1e308` is not echoed as a 309-digit number).
pub fn short_number(value: f64) -> String {
    let plain = value.to_string();
    if plain.len() <= 16 {
        plain
    } else {
        format!("{value:e}")
    }
}

/// A stage parameter outside its allowed range; the job layer adds the stage's position.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} = {} is out of range (allowed {min} ..= {max})", short_number(*value))]
pub struct ParamError {
    /// The parameter's name as users write it (`room_size`).
    pub field: &'static str,
    /// The rejected value.
    pub value: f64,
    /// Lowest allowed.
    pub min: f64,
    /// Highest allowed.
    pub max: f64,
}

impl ParamError {
    /// Checks that `value` is finite and within `min..=max`.
    ///
    /// # Errors
    /// A [`ParamError`] naming `field` otherwise.
    pub fn check(field: &'static str, value: f64, min: f64, max: f64) -> Result<(), ParamError> {
        if value.is_finite() && (min..=max).contains(&value) {
            Ok(())
        } else {
            Err(ParamError {
                field,
                value,
                min,
                max,
            })
        }
    }
}
