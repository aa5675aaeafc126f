//! Lays Layer III frames from several encoders out as one stream: each frame keeps its header,
//! side info and main data, and its main data is put back into the bit reservoir behind the
//! frames already placed, with `main_data_begin` rewritten.
//!
//! A frame is placed where its own encoder put it (`main_data_begin` unchanged) unless frames
//! placed before it end later than that, in which case it starts right after them. Once a frame
//! sits where its encoder put it, every later frame of the same encoder does too (its encoder's
//! layout was valid), so a join only has to be checked until that happens: [`Cursor::place`]
//! says so with `settled`.

use super::frame::{set_main_data_begin, FrameEntry, FrameRun};
use super::tag::InfoTag;
use crate::audio::ByteSink;
use crate::encode::EncodeError;
use std::collections::VecDeque;

/// Where the reservoir stands after the frames placed so far; cheap to copy, so joins can be
/// tried before they are made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Reservoir position after the last placed main data.
    pub free: usize,
    /// Reservoir position where the next frame's data area starts.
    pub next_area: usize,
}

/// Where one frame's main data goes.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    /// Reservoir position of the main data.
    pub start: usize,
    /// The frame's new `main_data_begin`.
    pub main_data_begin: usize,
    /// True when the frame sits exactly where its encoder put it.
    pub settled: bool,
}

impl Cursor {
    /// Places `frame` after what is placed, or returns `None` when its main data no longer fits
    /// before the end of its own frame.
    pub fn place(&mut self, frame: &FrameEntry) -> Option<Placement> {
        let area_start = self.next_area;
        let area_len = frame.header.size - frame.header.head_len();
        let own = area_start.checked_sub(frame.main_data_begin);
        let start = match own {
            Some(own) => self.free.max(own),
            None => self.free,
        };
        if start + frame.main_len > area_start + area_len {
            return None;
        }
        self.free = start + frame.main_len;
        self.next_area = area_start + area_len;
        Some(Placement {
            start,
            main_data_begin: area_start - start,
            settled: own == Some(start),
        })
    }
}

/// One output frame whose data area may still receive later frames' main data.
struct PendingFrame {
    bytes: Vec<u8>,
    area_start: usize,
    head_len: usize,
    kbps: u32,
}

/// The output stream: placed frames waiting until no later frame can write into them, then
/// written to the sink and counted into the Info tag.
pub struct Writer {
    cursor: Cursor,
    pending: VecDeque<PendingFrame>,
    /// Frame buffers to reuse (the queue holds at most a few frames: a frame is final once the
    /// main data placed after it starts past its end, and main data reaches back ≤ 511 bytes).
    spare: Vec<Vec<u8>>,
    /// Frames written since the last flush to the sink, back to back.
    out: Vec<u8>,
    /// The last placed frame's ancillary tail and where it starts: written when the next frame's
    /// data area exists (it may reach into it), before that frame's main data, which overwrites
    /// it where they overlap.
    tail: Vec<u8>,
    tail_at: usize,
    tag: InfoTag,
    sink: Box<dyn ByteSink>,
}

/// Write to the sink once this many bytes are collected.
const SINK_CHUNK: usize = 64 * 1024;

impl Writer {
    /// A writer that first writes a placeholder of the tag frame (patched at the end).
    ///
    /// # Errors
    /// The sink refuses the placeholder.
    pub fn new(tag: InfoTag, mut sink: Box<dyn ByteSink>) -> Result<Self, EncodeError> {
        sink.write_all(&vec![0u8; tag.frame_len()])?;
        Ok(Self {
            cursor: Cursor::default(),
            pending: VecDeque::new(),
            spare: Vec::new(),
            out: Vec::with_capacity(2 * SINK_CHUNK),
            tail: Vec::new(),
            tail_at: 0,
            tag,
            sink,
        })
    }

    /// The cursor after every frame placed so far.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// Places frame `i` of `run` (the caller checked that it fits with a copy of the cursor).
    ///
    /// # Errors
    /// The frame does not fit (a caller bug), or the sink fails.
    pub fn place(&mut self, run: &FrameRun, i: usize) -> Result<(), EncodeError> {
        let entry = run.frames[i];
        let area_start = self.cursor.next_area;
        let placement = self.cursor.place(&entry).ok_or_else(|| {
            EncodeError::codec("mp3", "a joined frame does not fit in the bit reservoir")
        })?;
        let mut bytes = self.spare.pop().unwrap_or_default();
        bytes.clear();
        bytes.extend_from_slice(run.head(i));
        bytes.resize(entry.header.size, 0);
        set_main_data_begin(&entry.header, &mut bytes, placement.main_data_begin);
        self.pending.push_back(PendingFrame {
            bytes,
            area_start,
            head_len: entry.header.head_len(),
            kbps: entry.header.kbps,
        });
        let tail = std::mem::take(&mut self.tail);
        let written = write_areas(&mut self.pending, self.tail_at, &tail);
        debug_assert!(written <= tail.len());
        self.tail = tail;
        let data = run.main_data(i);
        let written = write_areas(&mut self.pending, placement.start, data);
        debug_assert_eq!(written, data.len());
        self.tail.clear();
        self.tail.extend_from_slice(run.tail(i));
        self.tail_at = self.cursor.free;
        while let Some(front) = self.pending.front() {
            let area_end = front.area_start + front.bytes.len() - front.head_len;
            if area_end > self.cursor.free {
                break;
            }
            let Some(done) = self.pending.pop_front() else {
                break;
            };
            self.emit(done)?;
        }
        Ok(())
    }

    fn emit(&mut self, frame: PendingFrame) -> Result<(), EncodeError> {
        self.tag.add_frame(&frame.bytes, frame.kbps);
        self.out.extend_from_slice(&frame.bytes);
        self.spare.push(frame.bytes);
        if self.out.len() >= SINK_CHUNK {
            self.sink.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    /// Writes every pending frame and the tag (`samples` per channel were encoded, each frame
    /// carries `samples_per_frame`), then commits the sink. Returns the bytes written.
    ///
    /// # Errors
    /// The frames cannot carry `samples` (a caller bug), or the sink fails.
    pub fn finish(mut self, samples: u64, samples_per_frame: u64) -> Result<u64, EncodeError> {
        write_areas(&mut self.pending, self.tail_at, &self.tail);
        while let Some(frame) = self.pending.pop_front() {
            self.emit(frame)?;
        }
        self.sink.write_all(&self.out)?;
        let total = self.tag.frames() * samples_per_frame;
        let padding = total
            .checked_sub(self.tag.encoder_delay() + samples)
            .ok_or_else(|| {
                EncodeError::codec(
                    "mp3",
                    format!(
                        "{} frames cannot carry {samples} samples",
                        self.tag.frames()
                    ),
                )
            })?;
        self.sink.patch(0, &self.tag.finish(padding))?;
        Ok(self.sink.commit()?)
    }
}

/// Copies `data` into the data areas of `pending` from reservoir position `at` on, as far as
/// they reach; returns the bytes copied.
fn write_areas(pending: &mut VecDeque<PendingFrame>, mut at: usize, mut data: &[u8]) -> usize {
    let total = data.len();
    for frame in pending.iter_mut() {
        if data.is_empty() {
            break;
        }
        let area_end = frame.area_start + frame.bytes.len() - frame.head_len;
        if at >= area_end {
            continue;
        }
        let n = data.len().min(area_end - at);
        let dst = frame.head_len + at - frame.area_start;
        frame.bytes[dst..dst + n].copy_from_slice(&data[..n]);
        data = &data[n..];
        at += n;
    }
    total - data.len()
}
