//! One MP3 stream encoded on several threads: the input is cut into frame-aligned segments,
//! each encoded by its own LAME instance, and the segments' frames are joined into one gapless
//! stream with one Info tag.
//!
//! - **Segments.** Segment `s` owns output frames `s·K … (s+1)·K` (K = [`SEGMENT_FRAMES`]).
//!   Its encoder starts [`PREROLL_FRAMES`] frames early (frame-aligned, so its frames line up
//!   with a single encoder's): the filterbank overlap, the psychoacoustic state and the bit
//!   reservoir warm up on audio whose frames are then dropped. It is fed
//!   [`JOIN_WINDOW`] + 2 frames past its end without a flush, so it also yields up to
//!   [`JOIN_WINDOW`] frames past its end, and its LAME instance stays alive.
//! - **Joins.** Frames are laid out again ([`super::layout`]) with `main_data_begin`
//!   rewritten. The join between segments A and B may fall on any of the first
//!   [`JOIN_WINDOW`] + 1 frame boundaries of B's range; the first at which B's frames fit into
//!   the reservoir A leaves (checked on a copy of the layout cursor until B's frames sit where
//!   B's encoder put them) is taken. When none fits, A's still-open encoder simply carries on
//!   through B's input (B's frames are dropped): that stretch is encoded serially, exactly as a
//!   single encoder would, so every join is valid whatever the reservoir held.
//! - **End.** The last segment is flushed like a single encoder (LAME's padding); the tag
//!   (frame count, bytes, seek table, delay, padding, CRCs) is written over the placeholder
//!   frame at offset 0 through [`ByteSink::patch`].
//!
//! Bounds: at most `threads + 1` segments are in flight (dispatched and not yet joined), each
//! holding its input (≤ K + [`PREROLL_FRAMES`] + [`JOIN_WINDOW`] + 2 frames of f32 per
//! channel) and its encoded frames; the collecting buffer holds one segment's input more. See
//! [`ParallelMp3Encoder::memory_bytes`].

use super::frame::FrameRun;
use super::layout::Writer;
use super::tag::InfoTag;
use super::{build_lame, template_tag, LameSettings};
use crate::audio::{Block, ByteSink};
use crate::encode::pcm::Quantizer;
use crate::encode::{EncodeError, EncodedOutput, Encoder};
use crossbeam_channel::{Receiver, Sender};
use mp3lame_encoder::{max_required_buffer_size, DualPcm, FlushGap, MonoPcm};
use std::collections::BTreeMap;
use std::thread::JoinHandle;

/// Output frames each segment owns: 256 MPEG-1 frames are 6.7 s at 44.1 kHz. Larger segments
/// spend less on pre-roll and tails ((8 + 6) / 256 ≈ 5 % more frames encoded) but hold more
/// input in memory.
pub const SEGMENT_FRAMES: u64 = 512;
/// Frames a segment's encoder starts early; their output is dropped.
pub const PREROLL_FRAMES: u64 = 2;
/// How many frame boundaries past a segment's nominal end a join may move to.
pub const JOIN_WINDOW: u64 = 1;
/// LAME's look-ahead in samples: it outputs a frame once it holds this much input past the
/// frame's end (its 576-sample encoder delay plus the psychoacoustic look-ahead), rounded up.
const LOOKAHEAD_SAMPLES: u64 = 2 * 1152;

/// Frames of input fed past a segment's end: the join window plus LAME's look-ahead.
fn tail_frames(samples_per_frame: u64) -> u64 {
    JOIN_WINDOW + LOOKAHEAD_SAMPLES.div_ceil(samples_per_frame)
}
/// Frames before a segment's end that stay unplaced until the join, so that their bitrate can
/// be raised when the next segment's first frames need more reservoir than they leave.
pub const BUMP_FRAMES: usize = 3;
/// Samples per LAME call when feeding a segment.
const FEED_SAMPLES: usize = 16 * 1152;

const FORMAT: &str = "mp3";

/// A segment's input, sent to a worker thread.
struct Job {
    index: u64,
    /// First frame of the stream this segment's encoder produces (its frame 0).
    start_frame: u64,
    /// Stream sample of `input[ch][0]`.
    input_start: u64,
    input: [Vec<f32>; 2],
    last: bool,
}

/// A segment's encoded frames and the encoder that made them.
struct Segment {
    index: u64,
    start_frame: u64,
    input_start: u64,
    /// Stream sample after the last one fed to `lame`.
    input_end: u64,
    input: [Vec<f32>; 2],
    run: FrameRun,
    /// Still open (not flushed) unless this is the last segment.
    lame: Option<mp3lame_encoder::Encoder>,
    last: bool,
    /// Frames of `run` already placed in the output.
    placed: usize,
}

impl Segment {
    /// Frames of `run` that belong to this segment for sure: up to its nominal end, or all of
    /// them for the last segment (a later join may take up to [`JOIN_WINDOW`] more).
    fn horizon(&self) -> usize {
        if self.last {
            self.run.frames.len()
        } else {
            let end = (self.index + 1) * SEGMENT_FRAMES - self.start_frame;
            (end as usize)
                .saturating_sub(BUMP_FRAMES)
                .min(self.run.frames.len())
        }
    }
}

/// How the joins went (for tests and the benchmark's report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinStats {
    /// Segments joined to the one before.
    pub joins: u64,
    /// Joins that had to move past the nominal boundary.
    pub shifted: u64,
    /// Joins made by raising the bitrate of frames before them.
    pub bumped: u64,
    /// Frames whose bitrate was raised.
    pub bumped_frames: u64,
    /// Segments the previous encoder had to carry on through.
    pub continued: u64,
}

/// MP3 encoder that spreads one stream over `threads` LAME instances (see the module docs).
/// Used only when LAME does not resample (input rate = output rate).
pub struct ParallelMp3Encoder {
    channels: usize,
    samples_per_frame: u64,
    out_rate: u32,
    /// Samples per channel received.
    samples: u64,
    /// Input not yet handed to a segment that may still be needed, from stream sample
    /// `buffer_start`.
    buffer: [Vec<f32>; 2],
    buffer_start: u64,
    next_dispatch: u64,
    in_flight: usize,
    max_in_flight: usize,
    jobs: Option<Sender<Job>>,
    results: Receiver<(u64, Result<Segment, EncodeError>)>,
    workers: Vec<JoinHandle<()>>,
    arrived: BTreeMap<u64, Segment>,
    next_join: u64,
    prev: Option<Segment>,
    writer: Option<Writer>,
    spare_inputs: Vec<[Vec<f32>; 2]>,
    scratch: Vec<u8>,
    quantizer: Quantizer,
    stats: JoinStats,
    /// Tests only: refuse every join as it was encoded, so that the previous encoder carries on.
    #[cfg(test)]
    refuse_joins: bool,
}

fn segment_start_frame(index: u64) -> u64 {
    (index * SEGMENT_FRAMES).saturating_sub(PREROLL_FRAMES)
}

fn end_frame(index: u64, samples_per_frame: u64) -> u64 {
    (index + 1) * SEGMENT_FRAMES + tail_frames(samples_per_frame)
}

impl ParallelMp3Encoder {
    /// Starts `threads` (≥ 1) segment encoders for `settings`, whose output rate must equal its
    /// input rate.
    ///
    /// # Errors
    /// What [`super::Mp3Encoder::new`] refuses, or a thread cannot be started.
    pub fn new(
        settings: LameSettings,
        threads: usize,
        sink: Box<dyn ByteSink>,
    ) -> Result<Self, EncodeError> {
        let (probe, out_rate) = build_lame(&settings, false)?;
        drop(probe);
        if out_rate != settings.spec.sample_rate {
            return Err(EncodeError::codec(
                FORMAT,
                "the parallel encoder cannot resample; use the single-thread encoder",
            ));
        }
        let tag = InfoTag::from_template(template_tag(&settings)?)
            .map_err(|e| EncodeError::codec(FORMAT, e.0))?;
        let writer = Writer::new(tag, sink)?;
        let threads = threads.max(1);
        let max_in_flight = threads + 1;
        let (job_tx, job_rx) = crossbeam_channel::bounded::<Job>(max_in_flight);
        let (result_tx, result_rx) = crossbeam_channel::bounded(max_in_flight);
        let mut workers = Vec::with_capacity(threads);
        for n in 0..threads {
            let jobs = job_rx.clone();
            let results = result_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("mp3-segment-{n}"))
                .spawn(move || segment_worker(&settings, &jobs, &results))
                .map_err(|e| {
                    EncodeError::codec(FORMAT, format!("cannot start an encoder thread: {e}"))
                })?;
            workers.push(handle);
        }
        Ok(Self {
            channels: settings.spec.channels,
            samples_per_frame: if out_rate >= 32_000 { 1152 } else { 576 },
            out_rate,
            samples: 0,
            buffer: [Vec::new(), Vec::new()],
            buffer_start: 0,
            next_dispatch: 0,
            in_flight: 0,
            max_in_flight,
            jobs: Some(job_tx),
            results: result_rx,
            workers,
            arrived: BTreeMap::new(),
            next_join: 0,
            prev: None,
            writer: Some(writer),
            spare_inputs: Vec::new(),
            scratch: Vec::new(),
            quantizer: Quantizer::default(),
            stats: JoinStats::default(),
            #[cfg(test)]
            refuse_joins: false,
        })
    }

    /// Upper bound of the memory the encoder holds with `threads` at `channels` and
    /// `sample_rate`: `threads + 1` segments in flight (input and encoded frames), the segment
    /// kept for the next join (its frames), the collecting buffer (twice a segment's input:
    /// `Vec` growth) and one LAME state per thread (≤ 1 MiB each).
    pub fn memory_bytes(threads: usize, channels: usize, sample_rate: u32) -> u64 {
        let samples_per_frame: u64 = if sample_rate >= 32_000 { 1152 } else { 576 };
        let frames = SEGMENT_FRAMES + PREROLL_FRAMES + tail_frames(samples_per_frame);
        let input = frames * samples_per_frame * channels as u64 * 4;
        // Encoded frames: ≤ 1441 bytes each (320 kbps at 32 kHz), held twice (frames and main
        // data).
        let encoded = frames * 2 * 1441;
        let threads = threads as u64;
        (threads + 1) * (input + encoded) + encoded + 2 * input + threads * (1 << 20)
    }

    /// How the joins went so far.
    pub fn stats(&self) -> JoinStats {
        self.stats
    }

    fn buffer_end(&self) -> u64 {
        self.buffer_start + self.buffer[0].len() as u64
    }

    fn dispatch(&mut self, last: bool) -> Result<(), EncodeError> {
        while self.in_flight >= self.max_in_flight {
            self.receive(true)?;
        }
        let index = self.next_dispatch;
        let start_frame = segment_start_frame(index);
        let input_start = start_frame * self.samples_per_frame;
        let input_end = if last {
            self.samples
        } else {
            end_frame(index, self.samples_per_frame) * self.samples_per_frame
        };
        let from = (input_start - self.buffer_start) as usize;
        let to = (input_end - self.buffer_start) as usize;
        let mut input = self.spare_inputs.pop().unwrap_or_default();
        for (copy, buffer) in input.iter_mut().zip(&self.buffer).take(self.channels) {
            copy.clear();
            copy.extend_from_slice(&buffer[from..to]);
        }
        let job = Job {
            index,
            start_frame,
            input_start,
            input,
            last,
        };
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(job).is_ok());
        if sent != Some(true) {
            return Err(EncodeError::codec(
                FORMAT,
                "the encoder threads have stopped",
            ));
        }
        self.in_flight += 1;
        self.next_dispatch += 1;
        if !last {
            // Keep what the next segment starts with (its pre-roll) and everything after.
            let keep = segment_start_frame(index + 1) * self.samples_per_frame;
            let drop_n = (keep - self.buffer_start) as usize;
            for ch in 0..self.channels {
                self.buffer[ch].drain(..drop_n);
            }
            self.buffer_start = keep;
        }
        Ok(())
    }

    /// Takes results (waiting for one if `wait`) and joins every segment that is next in order.
    fn receive(&mut self, wait: bool) -> Result<(), EncodeError> {
        loop {
            let message = if wait {
                self.results.recv().ok()
            } else {
                self.results.try_recv().ok()
            };
            let Some((index, result)) = message else {
                if wait {
                    return Err(EncodeError::codec(
                        FORMAT,
                        "the encoder threads have stopped",
                    ));
                }
                return Ok(());
            };
            self.arrived.insert(index, result?);
            while let Some(segment) = self.arrived.remove(&self.next_join) {
                self.next_join += 1;
                self.in_flight -= 1;
                self.join(segment)?;
            }
            if wait {
                return Ok(());
            }
        }
    }

    fn join(&mut self, mut b: Segment) -> Result<(), EncodeError> {
        let writer = self.writer.as_mut().ok_or_else(finished)?;
        let Some(mut a) = self.prev.take() else {
            let horizon = b.horizon();
            place(writer, &mut b, horizon)?;
            self.keep(b);
            return Ok(());
        };
        self.stats.joins += 1;
        #[cfg(test)]
        let windows = if self.refuse_joins {
            0
        } else {
            JOIN_WINDOW + 1
        };
        #[cfg(not(test))]
        let windows = JOIN_WINDOW + 1;
        for shift in 0..windows {
            let join_frame = b.index * SEGMENT_FRAMES + shift;
            let a_end = (join_frame - a.start_frame) as usize;
            let b_from = (join_frame - b.start_frame) as usize;
            if a_end > a.run.frames.len() || b_from >= b.run.frames.len() {
                break;
            }
            if fits(writer, &a, a_end, &b, b_from) {
                place(writer, &mut a, a_end)?;
                b.placed = b_from;
                let horizon = b.horizon();
                place(writer, &mut b, horizon)?;
                if shift > 0 {
                    self.stats.shifted += 1;
                }
                self.recycle(a);
                self.keep(b);
                return Ok(());
            }
        }
        // No join point fits as encoded: make room in the reservoir by raising the bitrate of
        // A's last frames (lowest sufficient rates, last frame first).
        let a_end = (b.index * SEGMENT_FRAMES - a.start_frame) as usize;
        let b_from = (b.index * SEGMENT_FRAMES - b.start_frame) as usize;
        if windows > 0 && a_end <= a.run.frames.len() && b_from < b.run.frames.len() {
            let first = a_end.saturating_sub(BUMP_FRAMES).max(a.placed);
            let originals: Vec<(usize, u8)> = (first..a_end)
                .map(|i| (i, a.run.bitrate_index(i)))
                .collect();
            for frame in (first..a_end).rev() {
                let mut index = a.run.bitrate_index(frame);
                while index < 14 {
                    index += 1;
                    a.run
                        .set_bitrate_index(frame, index)
                        .map_err(|e| codec_error(e.0))?;
                    if fits(writer, &a, a_end, &b, b_from) {
                        place(writer, &mut a, a_end)?;
                        b.placed = b_from;
                        let horizon = b.horizon();
                        place(writer, &mut b, horizon)?;
                        self.stats.bumped += 1;
                        self.stats.bumped_frames += (frame..a_end).count() as u64;
                        self.recycle(a);
                        self.keep(b);
                        return Ok(());
                    }
                }
            }
            for (frame, index) in originals {
                a.run
                    .set_bitrate_index(frame, index)
                    .map_err(|e| codec_error(e.0))?;
            }
        }
        // Still no room (the rate is already the highest): A's encoder carries on through B's
        // input.
        self.stats.continued += 1;
        let lame = a
            .lame
            .as_mut()
            .ok_or_else(|| EncodeError::codec(FORMAT, "a finished segment cannot be continued"))?;
        let from = (a.input_end - b.input_start) as usize;
        let channels = self.channels;
        feed(
            lame,
            channels,
            &b.input,
            from,
            &mut self.scratch,
            &mut a.run,
        )?;
        if b.last {
            flush(lame, &mut self.scratch, &mut a.run)?;
            a.lame = None;
        }
        a.input_end = b.input_end;
        a.index = b.index;
        a.last = b.last;
        let horizon = a.horizon();
        place(writer, &mut a, horizon)?;
        self.recycle(b);
        self.keep(a);
        Ok(())
    }

    /// Keeps `segment` as the one the next segment joins to, returning its input buffers.
    fn keep(&mut self, mut segment: Segment) {
        let input = std::mem::take(&mut segment.input);
        self.spare(input);
        self.prev = Some(segment);
    }

    fn recycle(&mut self, segment: Segment) {
        self.spare(segment.input);
    }

    /// Keeps an input buffer for the next dispatch: at most as many as can be in flight, and
    /// only ones with room (a buffer given away by [`Self::keep`] is empty).
    fn spare(&mut self, input: [Vec<f32>; 2]) {
        if input[0].capacity() > 0 && self.spare_inputs.len() < self.max_in_flight {
            self.spare_inputs.push(input);
        }
    }
}

fn finished() -> EncodeError {
    EncodeError::codec(FORMAT, "the encoder is already finished")
}

/// Whether placing `a`'s frames up to `a_end` and `b`'s from `b_from` fits the reservoir until
/// `b`'s frames sit where its encoder put them (then all later ones do) or `b` ends.
fn fits(writer: &Writer, a: &Segment, a_end: usize, b: &Segment, b_from: usize) -> bool {
    let mut cursor = writer.cursor();
    for frame in &a.run.frames[a.placed..a_end] {
        if cursor.place(frame).is_none() {
            return false;
        }
    }
    let check_to = if b.last {
        b.run.frames.len()
    } else {
        b.horizon()
    };
    for frame in &b.run.frames[b_from..check_to.max(b_from)] {
        match cursor.place(frame) {
            None => return false,
            Some(p) if p.settled => return true,
            Some(_) => {}
        }
    }
    b.last
}

/// Places `segment`'s frames from the first unplaced one up to `to`.
fn place(writer: &mut Writer, segment: &mut Segment, to: usize) -> Result<(), EncodeError> {
    for i in segment.placed..to {
        writer.place(&segment.run, i)?;
    }
    segment.placed = segment.placed.max(to);
    Ok(())
}

fn codec_error(e: impl std::fmt::Display) -> EncodeError {
    EncodeError::codec(FORMAT, e)
}

/// Encodes `input[..][from..]` with `lame`, appending the frames to `run`.
fn feed(
    lame: &mut mp3lame_encoder::Encoder,
    channels: usize,
    input: &[Vec<f32>; 2],
    from: usize,
    out: &mut Vec<u8>,
    run: &mut FrameRun,
) -> Result<(), EncodeError> {
    let len = input[0].len();
    let mut at = from;
    while at < len {
        let end = (at + FEED_SAMPLES).min(len);
        out.clear();
        out.reserve(max_required_buffer_size(end - at));
        let left = &input[0][at..end];
        let result = if channels == 1 {
            lame.encode_to_vec(MonoPcm(left), out)
        } else {
            let right = &input[1][at..end];
            lame.encode_to_vec(DualPcm { left, right }, out)
        };
        result.map_err(codec_error)?;
        run.push_bytes(out).map_err(|e| codec_error(e.0))?;
        at = end;
    }
    Ok(())
}

/// Flushes `lame` (`lame_encode_flush`: the end padding a single encoder writes).
fn flush(
    lame: &mut mp3lame_encoder::Encoder,
    out: &mut Vec<u8>,
    run: &mut FrameRun,
) -> Result<(), EncodeError> {
    out.clear();
    out.reserve(max_required_buffer_size(0));
    lame.flush_to_vec::<FlushGap>(out).map_err(codec_error)?;
    run.push_bytes(out).map_err(|e| codec_error(e.0))?;
    if !run.is_whole() {
        return Err(codec_error("LAME ended the stream inside a frame"));
    }
    run.close();
    Ok(())
}

fn encode_segment(settings: &LameSettings, job: Job) -> Result<Segment, EncodeError> {
    let (mut lame, _) = build_lame(settings, false)?;
    let mut run = FrameRun::default();
    let mut out = Vec::new();
    feed(
        &mut lame,
        settings.spec.channels,
        &job.input,
        0,
        &mut out,
        &mut run,
    )?;
    let lame = if job.last {
        flush(&mut lame, &mut out, &mut run)?;
        None
    } else {
        Some(lame)
    };
    Ok(Segment {
        index: job.index,
        start_frame: job.start_frame,
        input_start: job.input_start,
        input_end: job.input_start + job.input[0].len() as u64,
        input: job.input,
        run,
        lame,
        last: job.last,
        placed: 0,
    })
}

fn segment_worker(
    settings: &LameSettings,
    jobs: &Receiver<Job>,
    results: &Sender<(u64, Result<Segment, EncodeError>)>,
) {
    while let Ok(job) = jobs.recv() {
        let index = job.index;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            encode_segment(settings, job)
        }))
        .unwrap_or_else(|payload| {
            Err(codec_error(format!(
                "a segment encoder panicked: {}",
                crate::audio::panic_message(&*payload)
            )))
        });
        if results.send((index, result)).is_err() {
            return;
        }
    }
}

impl Encoder for ParallelMp3Encoder {
    fn write(&mut self, block: &Block) -> Result<(), EncodeError> {
        if block.channel_count() != self.channels {
            return Err(EncodeError::ChannelMismatch {
                format: FORMAT,
                expected: self.channels,
                got: block.channel_count(),
            });
        }
        for ch in 0..self.channels {
            let buffer = &mut self.buffer[ch];
            let old = buffer.len();
            buffer.extend_from_slice(block.channel(ch));
            self.quantizer
                .count(crate::audio::sanitize(&mut buffer[old..]));
        }
        self.samples += block.frames() as u64;
        let spf = self.samples_per_frame;
        while self.buffer_end() >= end_frame(self.next_dispatch, spf) * spf {
            self.dispatch(false)?;
        }
        self.receive(false)
    }

    fn finish(self: Box<Self>) -> Result<EncodedOutput, EncodeError> {
        self.finish_with_stats().map(|(output, _)| output)
    }
}

impl ParallelMp3Encoder {
    /// [`Encoder::finish`], also returning how the joins went.
    ///
    /// # Errors
    /// As [`Encoder::finish`].
    pub fn finish_with_stats(self: Box<Self>) -> Result<(EncodedOutput, JoinStats), EncodeError> {
        let mut this = *self;
        this.dispatch(true)?;
        while this.in_flight > 0 {
            this.receive(true)?;
        }
        let writer = this.writer.take().ok_or_else(finished)?;
        let bytes = writer.finish(this.samples, this.samples_per_frame)?;
        tracing::debug!(
            joins = this.stats.joins,
            shifted = this.stats.shifted,
            continued = this.stats.continued,
            "parallel MP3 encode joined"
        );
        let output = EncodedOutput {
            frames: this.samples,
            sample_rate: this.out_rate,
            channels: this.channels,
            bytes,
            clipped_samples: this.quantizer.clipped,
            non_finite_samples: this.quantizer.non_finite,
        };
        Ok((output, this.stats))
    }
}

impl Drop for ParallelMp3Encoder {
    fn drop(&mut self) {
        // Closing the job channel ends every worker after its current segment; results go to a
        // channel with room for all of them, so none blocks.
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{MemorySink, StreamSpec};
    use crate::encode::{Mp3Encoder, Mp3Rate};

    const SPEC: StreamSpec = StreamSpec {
        sample_rate: 44_100,
        channels: 2,
    };

    /// Tones with bursts of noise (the reservoir fills and drains), `seconds` long, planar.
    fn signal(seconds: usize) -> Vec<Vec<f32>> {
        let frames = seconds * 44_100;
        let mut seed = 5u32;
        let mono: Vec<f32> = (0..frames)
            .map(|i| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                let burst = if (i / 50_000) % 4 == 3 {
                    noise * 0.8
                } else {
                    0.0
                };
                (i as f32 * 0.043).sin() * 0.3 + burst
            })
            .collect();
        vec![mono.clone(), mono.iter().map(|x| x * 0.7).collect()]
    }

    fn feed(encoder: &mut dyn Encoder, signal: &[Vec<f32>]) {
        for start in (0..signal[0].len()).step_by(3000) {
            let end = (start + 3000).min(signal[0].len());
            let parts: Vec<&[f32]> = signal.iter().map(|c| &c[start..end]).collect();
            encoder.write(&Block::from_channels(&parts)).unwrap();
        }
    }

    fn single(rate: Mp3Rate, signal: &[Vec<f32>]) -> Vec<u8> {
        let sink = MemorySink::new();
        let output = sink.output();
        let mut encoder = Box::new(Mp3Encoder::new(SPEC, rate, Box::new(sink)).unwrap());
        feed(encoder.as_mut(), signal);
        encoder.finish().unwrap();
        output.take().unwrap()
    }

    #[test]
    fn when_no_join_fits_the_previous_encoder_carries_on_exactly_like_a_single_one() {
        // Every join refused: segment 0's encoder encodes the whole stream, so the result must
        // be the single encoder's stream byte for byte (frames, reservoir, tag).
        for rate in [Mp3Rate::Cbr { kbps: 320 }, Mp3Rate::Vbr { quality: 4 }] {
            let audio = signal(30);
            let sink = MemorySink::new();
            let output = sink.output();
            let settings = LameSettings { spec: SPEC, rate };
            let mut encoder =
                Box::new(ParallelMp3Encoder::new(settings, 3, Box::new(sink)).unwrap());
            encoder.refuse_joins = true;
            feed(encoder.as_mut(), &audio);
            let (out, stats) = encoder.finish_with_stats().unwrap();
            assert_eq!(out.frames, audio[0].len() as u64);
            assert_eq!(stats.continued, stats.joins);
            assert!(stats.joins >= 2, "{stats:?}");
            assert!(output.take().unwrap() == single(rate, &audio), "{rate:?}");
        }
    }

    #[test]
    fn empty_and_tiny_streams_equal_the_single_encoder() {
        for frames in [0, 1, 1151, 1152, 1153, 5000] {
            let audio: Vec<Vec<f32>> = signal(1)
                .into_iter()
                .map(|c| c[..frames].to_vec())
                .collect();
            let rate = Mp3Rate::Cbr { kbps: 128 };
            let sink = MemorySink::new();
            let output = sink.output();
            let settings = LameSettings { spec: SPEC, rate };
            let mut encoder =
                Box::new(ParallelMp3Encoder::new(settings, 2, Box::new(sink)).unwrap());
            feed(encoder.as_mut(), &audio);
            let out = encoder.finish().unwrap();
            assert_eq!(out.frames, frames as u64);
            assert!(
                output.take().unwrap() == single(rate, &audio),
                "{frames} frames"
            );
        }
    }

    #[test]
    fn dropping_an_unfinished_encoder_stops_its_threads() {
        let audio = signal(25);
        let settings = LameSettings {
            spec: SPEC,
            rate: Mp3Rate::Cbr { kbps: 128 },
        };
        let sink = MemorySink::new();
        let output = sink.output();
        let mut encoder = Box::new(ParallelMp3Encoder::new(settings, 4, Box::new(sink)).unwrap());
        feed(encoder.as_mut(), &audio);
        drop(encoder); // joins the workers: the test would hang if one were stuck
        assert!(output.take().is_none(), "nothing committed");
    }
}
