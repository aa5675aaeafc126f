//! [`Chain`]: stages run in order over one stream, with latency compensation and tail rendering.

use super::{Stage, StageContext, StageError, StageEvent};
use crate::audio::{Block, StreamSpec};
use std::time::{Duration, Instant};

/// What one stage did in the chain's last [`Chain::process`] or [`Chain::flush`] call: the
/// caller (the runner) turns these into metrics, so `dsp` stays free of telemetry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageTiming {
    /// The stage's name.
    pub stage: &'static str,
    /// Wall time of its `process` call.
    pub elapsed: Duration,
    /// Frames it was given.
    pub frames: u64,
}

/// An ordered list of stages applied block by block to one stream.
///
/// The chain owns one intermediate block per stage, allocated in [`Chain::prepare`], so
/// [`Chain::process`] allocates nothing. It makes the output exactly aligned with the input:
/// the first `latency_frames()` frames of output (the look-ahead delay) are dropped, and after
/// the input ends [`Chain::flush`] feeds silence through the stages so the delayed frames and the
/// requested tails come out. Output length = input length (minus frames stages drop) + tails.
pub struct Chain {
    stages: Vec<Box<dyn Stage>>,
    /// `buffers[i]` holds stage `i`'s output; one extra buffer serves an empty chain.
    buffers: Vec<Block>,
    /// Silence of the input shape, fed during the flush.
    silence: Block,
    input_spec: Option<StreamSpec>,
    output_spec: Option<StreamSpec>,
    max_block_frames: usize,
    /// `latency_before[i]`: summed latency of the stages before stage `i`; a stage's events are
    /// shifted by it so they land on the chain's (latency-compensated) output frames.
    latency_before: Vec<usize>,
    latency_to_drop: usize,
    flush_remaining: usize,
    /// True once the end-of-stream call has been made (flush may have zero frames to feed).
    ended: bool,
    frames_out: u64,
    context: StageContext,
    /// One per stage, from `prepare`; rewritten by every `process` and `flush` (not by analysis
    /// passes), in place: nothing allocates per block.
    timings: Vec<StageTiming>,
}

impl Chain {
    /// A chain of `stages`, not yet prepared.
    pub fn new(stages: Vec<Box<dyn Stage>>) -> Self {
        Self {
            stages,
            buffers: Vec::new(),
            silence: Block::new(0, 0),
            input_spec: None,
            output_spec: None,
            max_block_frames: 0,
            latency_before: Vec::new(),
            latency_to_drop: 0,
            flush_remaining: 0,
            ended: false,
            frames_out: 0,
            context: StageContext::default(),
            timings: Vec::new(),
        }
    }

    /// The stages' names, in order.
    pub fn stage_names(&self) -> Vec<&'static str> {
        self.stages.iter().map(|s| s.name()).collect()
    }

    /// Prepares every stage for `input` and blocks of at most `max_block_frames`; returns the
    /// spec of the chain's output.
    ///
    /// # Errors
    /// Fails when a stage cannot handle the stream it would receive.
    pub fn prepare(
        &mut self,
        input: StreamSpec,
        max_block_frames: usize,
    ) -> Result<StreamSpec, StageError> {
        let max_block_frames = max_block_frames.max(1);
        let mut spec = input;
        self.buffers.clear();
        for stage in &mut self.stages {
            spec = stage.prepare(spec, max_block_frames)?;
            self.buffers
                .push(Block::new(spec.channels, max_block_frames));
        }
        if self.stages.is_empty() {
            self.buffers
                .push(Block::new(spec.channels, max_block_frames));
        }
        self.silence = Block::new(input.channels, max_block_frames);
        self.latency_before = self
            .stages
            .iter()
            .scan(0, |sum, stage| {
                let before = *sum;
                *sum += stage.latency_frames();
                Some(before)
            })
            .collect();
        self.timings = self
            .stages
            .iter()
            .map(|s| StageTiming {
                stage: s.name(),
                elapsed: Duration::ZERO,
                frames: 0,
            })
            .collect();
        self.input_spec = Some(input);
        self.output_spec = Some(spec);
        self.max_block_frames = max_block_frames;
        self.restart();
        Ok(spec)
    }

    /// The output spec, once prepared.
    pub fn output_spec(&self) -> Option<StreamSpec> {
        self.output_spec
    }

    /// Total look-ahead delay of the stages, in frames.
    pub fn latency_frames(&self) -> usize {
        self.stages.iter().map(|s| s.latency_frames()).sum()
    }

    /// Total tail the stages render after the input ends, in frames.
    pub fn tail_frames(&self) -> usize {
        self.stages.iter().map(|s| s.tail_frames()).sum()
    }

    /// Largest block the chain accepts (as prepared).
    pub fn max_block_frames(&self) -> usize {
        self.max_block_frames
    }

    /// Processes one input block (at most `max_block_frames` frames) and returns the output
    /// block, which may hold fewer frames (or none) while latency is being absorbed.
    ///
    /// # Panics
    /// Panics if the chain was not prepared or the block is larger than prepared: pipeline bugs.
    pub fn process(&mut self, input: &Block) -> &Block {
        assert!(
            self.output_spec.is_some(),
            "Chain::process called before prepare"
        );
        assert!(
            input.frames() <= self.max_block_frames,
            "block of {} frames exceeds the prepared maximum {}",
            input.frames(),
            self.max_block_frames
        );
        self.context.flushing = false;
        self.context.end_of_stream = false;
        self.context.clear_events();
        run_stages(
            &mut self.stages,
            &mut self.buffers,
            &self.latency_before,
            input,
            &mut self.context,
            &mut self.timings,
        );
        self.finish_output()
    }

    /// Each stage's time and frames in the last `process` or `flush` call, in chain order.
    pub fn last_stage_timings(&self) -> &[StageTiming] {
        &self.timings
    }

    /// The events (piece boundaries) the stages emitted during the last `process` or `flush`
    /// call, positioned in the chain's output frames.
    pub fn events(&self) -> &[StageEvent] {
        self.context.events()
    }

    /// Call after the last input block, repeatedly, until it returns `None`: each call feeds a
    /// block of silence through the chain and returns the resulting output (latency frames still
    /// in flight and the stages' tails).
    ///
    /// Every stage sees at least one call with `end_of_stream` set (with zero frames when nothing
    /// needs flushing), so a splitting stage can close its last piece.
    pub fn flush(&mut self) -> Option<&Block> {
        if self.flush_remaining == 0 && self.ended {
            return None;
        }
        let frames = self.flush_remaining.min(self.max_block_frames);
        self.flush_remaining -= frames;
        self.ended = true;
        self.silence.set_frames(frames);
        self.silence.fill_silence();
        self.context.flushing = true;
        self.context.end_of_stream = true;
        self.context.clear_events();
        run_stages(
            &mut self.stages,
            &mut self.buffers,
            &self.latency_before,
            &self.silence,
            &mut self.context,
            &mut self.timings,
        );
        Some(self.finish_output())
    }

    /// Bytes of state each stage allocated in `prepare` ([`Stage::state_bytes`]), in chain
    /// order; for the job's memory bound (call after [`Chain::prepare`]).
    pub fn stage_state_bytes(&self) -> Vec<usize> {
        self.stages
            .iter()
            .map(|stage| stage.state_bytes())
            .collect()
    }

    /// Bytes of the chain's own sample buffers: one block per stage plus the flush's silence.
    pub fn buffer_bytes(&self) -> usize {
        self.buffers
            .iter()
            .chain(std::iter::once(&self.silence))
            .map(|block| block.capacity() * block.channel_count() * std::mem::size_of::<f32>())
            .sum()
    }

    /// Indices of the stages that need an analysis pass, in chain order.
    pub fn analysis_stages(&self) -> Vec<usize> {
        (0..self.stages.len())
            .filter(|&i| self.stages[i].wants_analysis())
            .collect()
    }

    /// Analysis pass for stage `index`: runs the stages before it on `input` and lets stage
    /// `index` observe the result. Stages after it are not run.
    ///
    /// # Panics
    /// Panics if `index` is out of range or the chain is not prepared (pipeline bugs).
    pub fn observe(&mut self, index: usize, input: &Block) {
        self.context.flushing = false;
        self.context.end_of_stream = false;
        run_stages(
            &mut self.stages[..index],
            &mut self.buffers[..index],
            &self.latency_before[..index],
            input,
            &mut self.context,
            &mut [], // analysis passes are not timed
        );
        self.context.clear_events();
        let observed = if index == 0 {
            input
        } else {
            &self.buffers[index - 1]
        };
        self.stages[index].observe(observed);
    }

    /// Ends the analysis pass of stage `index` (it fixes its decision) and resets the stages
    /// before it, which ran on the analysis pass's audio.
    pub fn end_observation(&mut self, index: usize) {
        self.stages[index].end_observation();
        for stage in &mut self.stages[..index] {
            stage.reset();
        }
    }

    /// Each stage's name and report (decisions and measurements), for the manifest.
    pub fn reports(&self) -> Vec<(&'static str, Option<serde_json::Value>)> {
        self.stages.iter().map(|s| (s.name(), s.report())).collect()
    }

    /// Resets every stage and the chain's own position, ready for a new stream of the same spec.
    pub fn reset(&mut self) {
        for stage in &mut self.stages {
            stage.reset();
        }
        self.restart();
    }

    fn restart(&mut self) {
        self.latency_to_drop = self.latency_frames();
        self.flush_remaining = self.latency_frames() + self.tail_frames();
        self.ended = false;
        self.frames_out = 0;
        self.context.clear_events();
    }

    /// Drops pending latency frames from the front of the last buffer and stamps its position.
    fn finish_output(&mut self) -> &Block {
        let out = self
            .buffers
            .last_mut()
            .expect("prepare allocates at least one buffer");
        if self.latency_to_drop > 0 {
            let drop = self.latency_to_drop.min(out.frames());
            let frames = out.frames();
            for ch in 0..out.channel_count() {
                out.channel_mut(ch).copy_within(drop..frames, 0);
            }
            out.set_frames(frames - drop);
            self.latency_to_drop -= drop;
        }
        out.set_start_frame(self.frames_out);
        self.frames_out += out.frames() as u64;
        out
    }
}

fn run_stages(
    stages: &mut [Box<dyn Stage>],
    buffers: &mut [Block],
    latency_before: &[usize],
    input: &Block,
    cx: &mut StageContext,
    timings: &mut [StageTiming],
) {
    if stages.is_empty() {
        if let Some(first) = buffers.first_mut() {
            first.copy_from(input);
        }
        return;
    }
    for (i, stage) in stages.iter_mut().enumerate() {
        let (before, after) = buffers.split_at_mut(i);
        let src = if i == 0 { input } else { &before[i - 1] };
        let events_before = cx.events().len();
        let started = Instant::now();
        stage.process(src, &mut after[0], cx);
        if let Some(timing) = timings.get_mut(i) {
            timing.elapsed = started.elapsed();
            timing.frames = src.frames() as u64;
        }
        let shift = latency_before[i] as u64;
        if shift > 0 {
            cx.shift_events_from(events_before, shift);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::Gain;

    /// A stage that delays its input by `delay` frames (a stand-in for look-ahead) and asks for a
    /// tail of `tail` frames; used to check the chain's latency and tail bookkeeping.
    struct Delay {
        delay: usize,
        tail: usize,
        line: Vec<Vec<f32>>,
        pos: usize,
    }

    impl Stage for Delay {
        fn name(&self) -> &'static str {
            "delay"
        }
        fn prepare(&mut self, input: StreamSpec, _max: usize) -> Result<StreamSpec, StageError> {
            self.line = vec![vec![0.0; self.delay.max(1)]; input.channels];
            Ok(input)
        }
        fn process(&mut self, input: &Block, output: &mut Block, _cx: &mut StageContext) {
            output.set_frames(input.frames());
            for i in 0..input.frames() {
                for ch in 0..input.channel_count() {
                    let x = input.channel(ch)[i];
                    output.channel_mut(ch)[i] = if self.delay == 0 {
                        x
                    } else {
                        std::mem::replace(&mut self.line[ch][self.pos], x)
                    };
                }
                if self.delay > 0 {
                    self.pos = (self.pos + 1) % self.delay;
                }
            }
        }
        fn latency_frames(&self) -> usize {
            self.delay
        }
        fn tail_frames(&self) -> usize {
            self.tail
        }
        fn reset(&mut self) {
            self.line.iter_mut().for_each(|l| l.fill(0.0));
            self.pos = 0;
        }
    }

    fn run_chunked(chain: &mut Chain, signal: &[f32], block: usize) -> Vec<f32> {
        let mut out = Vec::new();
        for chunk in signal.chunks(block) {
            let input = Block::from_channels(&[chunk]);
            out.extend_from_slice(chain.process(&input).channel(0));
        }
        while let Some(b) = chain.flush() {
            out.extend_from_slice(b.channel(0));
        }
        out
    }

    #[test]
    fn latency_is_compensated_and_tail_rendered() {
        let signal: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        for block in [1, 17, 256, 1000] {
            let mut chain = Chain::new(vec![Box::new(Delay {
                delay: 37,
                tail: 5,
                line: Vec::new(),
                pos: 0,
            })]);
            let spec = StreamSpec::new(48_000, 1).expect("spec");
            chain.prepare(spec, block).expect("prepare");
            let out = run_chunked(&mut chain, &signal, block);
            assert_eq!(out.len(), 1005, "block size {block}");
            assert_eq!(&out[..1000], &signal[..], "block size {block}");
            assert!(out[1000..].iter().all(|&x| x == 0.0));
        }
    }

    #[test]
    fn empty_chain_passes_through() {
        let mut chain = Chain::new(Vec::new());
        chain
            .prepare(StreamSpec::new(44_100, 1).expect("spec"), 4)
            .expect("prepare");
        let out = run_chunked(&mut chain, &[1.0, 2.0, 3.0, 4.0, 5.0], 4);
        assert_eq!(out, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn reset_restarts_latency_bookkeeping() {
        let mut chain = Chain::new(vec![
            Box::new(Gain::new(0.0)),
            Box::new(Delay {
                delay: 3,
                tail: 0,
                line: Vec::new(),
                pos: 0,
            }),
        ]);
        chain
            .prepare(StreamSpec::new(44_100, 1).expect("spec"), 8)
            .expect("prepare");
        let first = run_chunked(&mut chain, &[1.0, 2.0, 3.0, 4.0], 8);
        chain.reset();
        let second = run_chunked(&mut chain, &[1.0, 2.0, 3.0, 4.0], 8);
        assert_eq!(first, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(first, second);
    }
}
