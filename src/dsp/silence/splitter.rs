//! From silent ranges to output: the [`Planner`] turns finalized silent ranges into piece
//! boundaries (keep_silence padding, pydub's midpoint rule, clamping, the empty/all-silent/
//! no-silence rules), and the [`Emitter`] holds audio in a preallocated ring until its fate is
//! decided, then emits it with `PieceStart`/`PieceEnd` events.
//!
//! Positions in the planner are detector units (ms for pydub, frames for accurate) converted to
//! source frames with the detector's own rule, so pydub's ms↔frame truncation is preserved.

use crate::audio::Block;
use crate::dsp::{StageContext, StageEvent};
use std::collections::VecDeque;

/// Receives what a detector finds.
pub(crate) trait RangeSink {
    /// A finalized silent range `[start, end]` in detector units, in order.
    fn silent_range(&mut self, start: i64, end: i64);
    /// The stream's total length in units (called once at the end, before the last ranges).
    fn set_total(&mut self, total: i64);
}

/// Most silent ranges kept in the report list.
pub(crate) const RANGE_LIST_CAP: usize = 10_000;

/// Counts and a bounded list of the detected silent ranges, for `report()`.
#[derive(Debug, Clone, Default)]
pub(crate) struct RangeLog {
    pub count: u64,
    pub total_units: i64,
    pub list: Vec<(i64, i64)>,
    pub total: Option<i64>,
}

impl RangeLog {
    pub(crate) fn with_capacity() -> Self {
        Self {
            list: Vec::with_capacity(RANGE_LIST_CAP),
            ..Self::default()
        }
    }

    pub(crate) fn clear(&mut self) {
        self.count = 0;
        self.total_units = 0;
        self.list.clear();
        self.total = None;
    }

    fn add(&mut self, start: i64, end: i64) {
        self.count += 1;
        self.total_units += end - start;
        if self.list.len() < RANGE_LIST_CAP {
            self.list.push((start, end));
        }
    }
}

/// Fans detector output out to the log and (when splitting/trimming) the planner.
pub(crate) struct Fanout<'a> {
    pub log: &'a mut RangeLog,
    pub planner: Option<&'a mut Planner>,
}

impl RangeSink for Fanout<'_> {
    fn silent_range(&mut self, start: i64, end: i64) {
        self.log.add(start, end);
        if let Some(p) = self.planner.as_deref_mut() {
            p.on_range(start, end);
        }
    }
    fn set_total(&mut self, total: i64) {
        self.log.total = Some(total);
        if let Some(p) = self.planner.as_deref_mut() {
            p.total = Some(total);
        }
    }
}

/// How detector units map to source frames.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scale {
    /// pydub: `int(ms · (fs/1000.0))`.
    Ms { rate_per_ms: f64 },
    /// accurate: units are frames.
    Frames,
}

impl Scale {
    pub(crate) fn to_frame(self, u: i64) -> u64 {
        match self {
            Self::Ms { rate_per_ms } => super::time::ms_to_frame(u.max(0), rate_per_ms),
            Self::Frames => u.max(0) as u64,
        }
    }
    fn unit_at_or_after(self, frame: u64) -> i64 {
        match self {
            Self::Ms { rate_per_ms } => {
                let mut u = (frame as f64 / rate_per_ms).floor() as i64;
                while self.to_frame(u) < frame {
                    u += 1;
                }
                u
            }
            Self::Frames => frame as i64,
        }
    }
}

/// A piece boundary in source frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Boundary {
    Start(u64),
    End(u64),
}

impl Boundary {
    fn frame(self) -> u64 {
        match self {
            Self::Start(f) | Self::End(f) => f,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PlanState {
    /// Nothing decided: a piece starts at 0 unless the first silence starts at 0.
    Start,
    /// A piece is open.
    InPiece,
    /// The last piece ended (or none started); waiting for the open silence's end.
    Gap,
    /// No more pieces.
    Done,
}

/// pydub's `split_on_silence` bookkeeping, streaming. `keep = None` is `keep_silence=True`.
#[derive(Debug, Clone)]
pub(crate) struct Planner {
    keep: Option<i64>,
    scale: Scale,
    state: PlanState,
    /// Units before this are decided.
    decided: i64,
    /// A forced (over-long hold) piece boundary may not fall before this unit.
    min_boundary: i64,
    pub total: Option<i64>,
    pub queue: VecDeque<Boundary>,
}

impl Planner {
    pub(crate) fn new(keep: Option<i64>, scale: Scale, queue_capacity: usize) -> Self {
        Self {
            keep,
            scale,
            state: PlanState::Start,
            decided: 0,
            min_boundary: 0,
            total: None,
            queue: VecDeque::with_capacity(queue_capacity),
        }
    }

    pub(crate) fn reset(&mut self) {
        self.state = PlanState::Start;
        self.decided = 0;
        self.min_boundary = 0;
        self.total = None;
        self.queue.clear();
    }

    /// Source frames before this are decided.
    pub(crate) fn decided_frame(&self) -> u64 {
        self.scale.to_frame(self.decided)
    }

    fn push(&mut self, b: Boundary) {
        self.queue.push_back(b);
    }

    fn start_piece(&mut self, u: i64) {
        let f = self.scale.to_frame(u);
        self.push(Boundary::Start(f));
        self.state = PlanState::InPiece;
        self.decided = self.decided.max(u);
    }

    /// A finalized silent range (split_on_silence steps 2–4 for the pair it separates).
    pub(crate) fn on_range(&mut self, s: i64, e: i64) {
        let last = self.total == Some(e);
        if self.state == PlanState::Start {
            if s == 0 {
                // detect_nonsilent drops the leading [0, 0]: no piece before this silence.
                self.state = PlanState::Gap;
            } else {
                self.start_piece(0);
            }
        }
        match self.state {
            PlanState::InPiece => {
                if s == 0 {
                    // Only after a forced start (see `force_start`): the piece goes on.
                    return;
                }
                match self.keep {
                    _ if last => {
                        // No next range: pad (clamped to len), no midpoint.
                        let total = self.total.unwrap_or(e);
                        let end = self.keep.map_or(total, |k| (s + k).min(total));
                        self.push(Boundary::End(self.scale.to_frame(end)));
                        self.state = PlanState::Done;
                        self.decided = self.decided.max(end);
                    }
                    Some(k) if e - k >= s + k => {
                        self.push(Boundary::End(self.scale.to_frame(s + k)));
                        self.start_piece((e - k).max(0));
                    }
                    _ => {
                        // Paddings overlap (or keep all): both pieces meet at the floor of
                        // the midpoint, pydub's `(last_end + next_start) // 2`.
                        let mid = ((s + e).div_euclid(2)).max(self.min_boundary);
                        let f = self.scale.to_frame(mid);
                        self.push(Boundary::End(f));
                        self.start_piece(mid);
                    }
                }
            }
            PlanState::Gap => {
                if last {
                    // First silence is [0, len]: completely silent → no pieces at all.
                    self.state = PlanState::Done;
                } else {
                    let start = self.keep.map_or(0, |k| (e - k).max(0));
                    self.start_piece(start);
                }
            }
            PlanState::Start | PlanState::Done => {}
        }
    }

    /// Advances what is decided from the detector's open silence and frontier.
    pub(crate) fn update(&mut self, open: Option<(i64, i64)>, frontier: i64) {
        if self.state == PlanState::Start {
            match open {
                Some((0, _)) => self.state = PlanState::Gap,
                Some(_) => self.start_piece(0),
                None if frontier > 0 => self.start_piece(0),
                None => return,
            }
        }
        match (self.state, open) {
            (PlanState::InPiece, Some((cs, elb))) => match self.keep {
                Some(k) if elb - k >= cs + k && cs > 0 => {
                    // The silence is already too long for the paddings to meet: the piece
                    // ends at cs + k, and [cs + k, elb − k) is dropped whatever comes next.
                    self.push(Boundary::End(self.scale.to_frame(cs + k)));
                    self.state = PlanState::Gap;
                    self.decided = self.decided.max(elb - k);
                }
                Some(k) => self.decided = self.decided.max((cs + k).min((cs + elb) / 2)),
                None => self.decided = self.decided.max((cs + elb) / 2),
            },
            (PlanState::InPiece, None) => self.decided = self.decided.max(frontier),
            (PlanState::Gap, Some((_, elb))) => {
                if let Some(k) = self.keep {
                    self.decided = self.decided.max(elb - k);
                }
            }
            _ => {}
        }
    }

    /// End of stream (after the detector reported its last ranges).
    pub(crate) fn finish(&mut self) {
        let total = self.total.unwrap_or(0);
        match self.state {
            PlanState::Start => {
                // No silence at all: one piece of everything (also for empty input).
                self.start_piece(0);
                self.push(Boundary::End(self.scale.to_frame(total)));
            }
            PlanState::InPiece => self.push(Boundary::End(self.scale.to_frame(total))),
            PlanState::Gap | PlanState::Done => {}
        }
        self.state = PlanState::Done;
        self.decided = self.decided.max(total);
    }

    /// The emitter had to emit undecided frames up to `frame` (keep-all hold overflow): the
    /// pending boundary may not fall before it, and a provisional piece at 0 becomes real.
    pub(crate) fn force_until(&mut self, frame: u64) {
        self.min_boundary = self.min_boundary.max(self.scale.unit_at_or_after(frame));
    }

    /// The hold overflowed while it was undecided whether the input starts with a piece.
    pub(crate) fn force_start(&mut self) {
        if matches!(self.state, PlanState::Start | PlanState::Gap) && self.keep.is_none() {
            self.start_piece(0);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EmitState {
    Dropping,
    Emitting,
    /// Split with `min_piece_ms`: a piece started here; held until it is known to be long enough.
    Pending(u64),
    /// Trim: between pieces, held until another piece starts (kept) or the input ends (dropped).
    Gap,
}

/// Holds audio until decided and writes the kept frames.
#[derive(Debug, Clone)]
pub(crate) struct Emitter {
    ring: Vec<Vec<f32>>,
    cap: u64,
    pushed: u64,
    /// Next source frame to decide; the ring holds `pos..pushed`.
    pos: u64,
    state: EmitState,
    out_frames: u64,
    split: bool,
    sample_rate: u32,
    min_piece_ms: i64,
    /// Total input frames, once the input ended.
    end: Option<u64>,
    pub pieces: u64,
    pub pieces_dropped: u64,
    pub forced_frames: u64,
    pub overflow_frames: u64,
    pub output_frames: u64,
}

impl Emitter {
    pub(crate) fn new(
        channels: usize,
        cap: usize,
        split: bool,
        sample_rate: u32,
        min_piece_ms: i64,
    ) -> Self {
        Self {
            ring: vec![vec![0.0; cap.max(1)]; channels],
            cap: cap.max(1) as u64,
            pushed: 0,
            pos: 0,
            state: EmitState::Dropping,
            out_frames: 0,
            split,
            sample_rate,
            min_piece_ms,
            end: None,
            pieces: 0,
            pieces_dropped: 0,
            forced_frames: 0,
            overflow_frames: 0,
            output_frames: 0,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.pushed = 0;
        self.pos = 0;
        self.state = EmitState::Dropping;
        self.out_frames = 0;
        self.end = None;
        self.pieces = 0;
        self.pieces_dropped = 0;
        self.forced_frames = 0;
        self.overflow_frames = 0;
        self.output_frames = 0;
    }

    pub(crate) fn set_end(&mut self) {
        self.end = Some(self.pushed);
    }

    /// Makes room for `n` more frames, forcing decisions if the hold is full (keep-all and trim
    /// gaps only; exact modes are sized never to get here).
    pub(crate) fn make_room(
        &mut self,
        n: u64,
        planner: &mut Planner,
        out: &mut Block,
        budget: &mut usize,
        cx: &mut StageContext,
    ) {
        let mut forced_start = false;
        while self.pushed.saturating_sub(self.pos) + n > self.cap {
            let over = self.pushed.saturating_sub(self.pos) + n - self.cap;
            match self.state {
                EmitState::Emitting | EmitState::Gap if *budget > 0 => {
                    self.state = EmitState::Emitting;
                    let m = over.min(*budget as u64).min(self.pushed - self.pos);
                    self.copy_out(m, out, budget);
                    self.forced_frames += m;
                    planner.force_until(self.pos);
                }
                EmitState::Dropping if planner.keep.is_none() && !forced_start => {
                    forced_start = true;
                    planner.force_start();
                    let decided = planner.decided_frame();
                    self.drain(planner, out, budget, decided, cx);
                }
                _ => self.discard(over),
            }
        }
    }

    fn discard(&mut self, n: u64) {
        self.pos += n;
        self.overflow_frames += n;
    }

    pub(crate) fn push(&mut self, input: &Block) {
        let n = input.frames();
        for (ch, ring) in self.ring.iter_mut().enumerate() {
            let src = input.channel(ch);
            let mut written = 0;
            while written < n {
                let at = ((self.pushed + written as u64) % self.cap) as usize;
                let m = (n - written).min(ring.len() - at);
                ring[at..at + m].copy_from_slice(&src[written..written + m]);
                written += m;
            }
        }
        self.pushed += n as u64;
    }

    /// Copies `n` frames from `pos` to the output (zeros past the input: pydub's padding).
    fn copy_out(&mut self, n: u64, out: &mut Block, budget: &mut usize) {
        let start = out.frames();
        out.set_frames(start + n as usize);
        for (ch, ring) in self.ring.iter().enumerate() {
            let dst = &mut out.channel_mut(ch)[start..];
            for (i, d) in dst.iter_mut().enumerate() {
                let f = self.pos + i as u64;
                *d = if f < self.pushed {
                    ring[(f % self.cap) as usize]
                } else {
                    0.0
                };
            }
        }
        self.pos += n;
        self.out_frames += n;
        self.output_frames += n;
        *budget -= n as usize;
    }

    fn len_ms(&self, frames: u64) -> i64 {
        super::time::frames_to_len_ms(frames, self.sample_rate)
    }

    fn start_event(&mut self, cx: &mut StageContext, source: u64) {
        if self.split {
            cx.emit(StageEvent::PieceStart {
                frame: self.out_frames,
                source_frame: source,
            });
        }
    }

    /// Emits/drops every decided frame (up to the budget); `decided` is in source frames.
    pub(crate) fn run(
        &mut self,
        planner: &mut Planner,
        out: &mut Block,
        budget: &mut usize,
        cx: &mut StageContext,
    ) {
        let decided = if self.end.is_some() {
            u64::MAX
        } else {
            planner.decided_frame()
        };
        self.drain(planner, out, budget, decided, cx);
    }

    fn drain(
        &mut self,
        planner: &mut Planner,
        out: &mut Block,
        budget: &mut usize,
        decided: u64,
        cx: &mut StageContext,
    ) {
        loop {
            let next = planner.queue.front().copied();
            // Boundaries first.
            match (self.state, next) {
                (EmitState::Dropping, Some(Boundary::Start(f))) if f <= self.pos => {
                    planner.queue.pop_front();
                    if self.split && self.min_piece_ms > 0 {
                        self.state = EmitState::Pending(self.pos);
                    } else {
                        self.start_event(cx, self.pos);
                        self.state = EmitState::Emitting;
                    }
                    continue;
                }
                (EmitState::Emitting, Some(Boundary::End(f))) if f <= self.pos => {
                    planner.queue.pop_front();
                    self.pieces += 1;
                    if self.split {
                        let source = self.end.map_or(self.pos, |n| self.pos.min(n));
                        cx.emit(StageEvent::PieceEnd {
                            frame: self.out_frames,
                            source_frame: source,
                        });
                        self.state = EmitState::Dropping;
                    } else {
                        self.state = EmitState::Gap;
                    }
                    continue;
                }
                (EmitState::Pending(start), Some(Boundary::End(f))) => {
                    if self.len_ms(f - start) < self.min_piece_ms {
                        // Too short: dropped whole, no events.
                        planner.queue.pop_front();
                        self.pieces_dropped += 1;
                        self.pos = f;
                        self.state = EmitState::Dropping;
                    } else {
                        self.start_event(cx, start);
                        self.state = EmitState::Emitting;
                    }
                    continue;
                }
                (EmitState::Pending(start), _) => {
                    let known = decided.saturating_sub(start);
                    if decided != u64::MAX && self.len_ms(known) >= self.min_piece_ms {
                        self.start_event(cx, start);
                        self.state = EmitState::Emitting;
                        continue;
                    }
                    break;
                }
                (EmitState::Gap, Some(Boundary::Start(_))) => {
                    // Trim: another piece follows, so the held gap is kept.
                    planner.queue.pop_front();
                    self.state = EmitState::Emitting;
                    continue;
                }
                (EmitState::Gap, _) => {
                    if self.end.is_some() {
                        // Trailing silence after the last piece: dropped.
                        self.state = EmitState::Dropping;
                        continue;
                    }
                    break;
                }
                _ => {}
            }
            let limit = next.map_or(decided, |b| b.frame().min(decided));
            let limit = match self.end {
                // Past the last boundary only input frames remain (dropped).
                Some(n) if next.is_none() => limit.min(n.max(self.pos)),
                _ => limit,
            };
            if limit <= self.pos {
                break;
            }
            match self.state {
                EmitState::Dropping => self.pos = limit,
                EmitState::Emitting => {
                    let n = (limit - self.pos).min(*budget as u64);
                    if n == 0 {
                        break;
                    }
                    self.copy_out(n, out, budget);
                }
                _ => break,
            }
        }
    }
}
