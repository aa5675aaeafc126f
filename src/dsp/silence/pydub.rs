//! Streaming, O(N) re-implementation of pydub's `detect_silence` (pydub 0.25.1,
//! `pydub/silence.py`), decision-for-decision identical on 8/16-bit input.
//!
//! pydub recomputes the RMS of every `min_silence_len` window from scratch (one window per
//! `seek_step` ms), which is O(N·window). Here the squared integer samples are summed once into a
//! running total, and the total is recorded at every *millisecond grid frame*
//! `int(ms · (fs/1000.0))` — the only frame positions a pydub slice can start or end at. A
//! window's sum is then a difference of two recorded totals, so memory is a ring of
//! `min_silence + seek_step` totals (≤ 11 001 entries), whatever the file length.

use super::splitter::RangeSink;
use super::time::{frames_to_len_ms, ms_to_frame};
use crate::audio::round_to_i64;

/// Integer-sample recovery for pydub parity, for one source bit depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntFormat {
    /// Unsigned 8-bit WAV, which pydub biases to signed: max amplitude 128.
    Bits8,
    /// 16-bit (also pydub's forced width for MP3/AAC/OGG input): max amplitude 32768.
    Bits16,
    /// 24-bit, which pydub widens to a 32-bit container: see [`IntFormat::to_int`].
    Bits24,
    /// 32-bit integer: max amplitude 2^31 (f32 keeps only 24 significant bits, so the low bits
    /// are lost; decisions on the threshold boundary may rarely differ).
    Bits32,
}

impl IntFormat {
    /// From a decoder's `bits_per_sample` (anything unknown or other reads as 16-bit, as pydub
    /// decodes compressed formats to 16-bit).
    pub(crate) fn from_bits(bits: u32) -> Self {
        match bits {
            1..=8 => Self::Bits8,
            17..=24 => Self::Bits24,
            25..=32 => Self::Bits32,
            _ => Self::Bits16,
        }
    }

    /// pydub's `max_possible_amplitude` for the sample width it holds.
    pub(crate) fn max_amplitude(self) -> f64 {
        match self {
            Self::Bits8 => 128.0,
            Self::Bits16 => 32768.0,
            Self::Bits24 | Self::Bits32 => 2_147_483_648.0,
        }
    }

    /// The integer sample pydub would hold for a decoded `x` in −1..1.
    #[inline]
    pub(crate) fn to_int(self, x: f32) -> i64 {
        match self {
            // Clamped before rounding: the same as after (a value beyond a limit rounds to or
            // past it), and it keeps `round_to_i64` within its range. NaN gives 0 either way.
            Self::Bits8 => round_to_i64(f64::from(x * 128.0).clamp(-128.0, 127.0)),
            Self::Bits16 => round_to_i64(f64::from(x * 32768.0).clamp(-32768.0, 32767.0)),
            Self::Bits24 => {
                // pydub inserts a *low* pad byte: 0x00 for positive samples, 0xFF for negative
                // ones (`AudioSegment.__init__`), so the value is x·256 + (0 | 255).
                let v = round_to_i64(f64::from(x * 8_388_608.0).clamp(-8_388_608.0, 8_388_607.0));
                v * 256 + if v < 0 { 255 } else { 0 }
            }
            Self::Bits32 => round_to_i64(
                (f64::from(x) * 2_147_483_648.0).clamp(-2_147_483_648.0, 2_147_483_647.0),
            ),
        }
    }
}

/// Σ v² of the integer samples `to_int` makes of `range` in every channel, summed in `A`:
/// `i64` for formats of at most 16 bits (a square is ≤ 2^30, so an i64 holds 2^33 of them; a
/// block is far fewer), `i128` for 24 and 32 bits.
#[inline]
fn sum_of_squares<A>(
    channels: &[&[f32]],
    range: std::ops::Range<usize>,
    to_int: impl Fn(f32) -> i64,
) -> i128
where
    A: From<i64> + Into<i128> + Copy + Default + std::ops::Mul<Output = A> + std::ops::AddAssign,
{
    let mut acc = A::default();
    for ch in channels {
        for &x in &ch[range.clone()] {
            let v = A::from(to_int(x));
            acc += v * v;
        }
    }
    acc.into()
}

/// Streaming `detect_silence`. Positions (units) are milliseconds.
#[derive(Debug, Clone)]
pub(crate) struct PydubDetector {
    sample_rate: u32,
    channels: usize,
    rate_per_ms: f64,
    format: IntFormat,
    min_silence: i64,
    seek: i64,
    /// `db_to_float(thresh) · max_possible_amplitude`; `+inf` = everything silent.
    threshold: f64,
    /// Sum of squared integer samples of every frame pushed so far.
    sum: i128,
    frames: u64,
    /// Next grid millisecond whose total is not yet recorded, and its frame.
    next_grid_ms: i64,
    next_grid_frame: u64,
    /// Ring of totals at grid ms: `totals[ms % len]` = sum over frames `< int(ms·r)`.
    totals: Vec<i128>,
    /// Next window start (a multiple of `seek`) not yet evaluated.
    next_start: i64,
    /// Merge state: start of the current silent range and its last silent window start.
    current: Option<(i64, i64)>,
    finished: bool,
}

impl PydubDetector {
    pub(crate) fn new(
        sample_rate: u32,
        channels: usize,
        format: IntFormat,
        min_silence_ms: i64,
        seek_ms: i64,
        threshold_db: f64,
    ) -> Self {
        // Totals needed at once: from the oldest unevaluated start to its window end.
        let ring = (min_silence_ms + seek_ms + 4) as usize;
        let mut detector = Self {
            sample_rate,
            channels,
            rate_per_ms: f64::from(sample_rate) / 1000.0,
            format,
            min_silence: min_silence_ms,
            seek: seek_ms,
            threshold: 0.0,
            sum: 0,
            frames: 0,
            next_grid_ms: 0,
            next_grid_frame: 0,
            totals: vec![0; ring],
            next_start: 0,
            current: None,
            finished: false,
        };
        detector.set_threshold_db(threshold_db);
        detector
    }

    /// `silence_thresh` in dBFS (`+inf` makes every window silent).
    pub(crate) fn set_threshold_db(&mut self, threshold_db: f64) {
        // pydub: `db_to_float(silence_thresh) * max_possible_amplitude`, compared `rms <= thr`
        // with the RMS truncated to an integer (audioop).
        self.threshold = if threshold_db.is_infinite() && threshold_db > 0.0 {
            f64::INFINITY
        } else {
            10f64.powf(threshold_db / 20.0) * self.format.max_amplitude()
        };
    }

    pub(crate) fn reset(&mut self) {
        self.sum = 0;
        self.frames = 0;
        self.next_grid_ms = 0;
        self.next_grid_frame = 0;
        self.totals.fill(0);
        self.next_start = 0;
        self.current = None;
        self.finished = false;
    }

    pub(crate) fn to_frame(&self, ms: i64) -> u64 {
        ms_to_frame(ms.max(0), self.rate_per_ms)
    }

    /// pydub's `len(seg)` of everything pushed so far.
    pub(crate) fn len_ms(&self) -> i64 {
        frames_to_len_ms(self.frames, self.sample_rate)
    }

    /// Feeds frames `start..end` of `channels` (planar).
    pub(crate) fn push(
        &mut self,
        channels: &[&[f32]],
        start: usize,
        end: usize,
        sink: &mut dyn RangeSink,
    ) {
        let mut f = start;
        while f < end {
            self.record_grid(sink);
            // Sum frames up to the next grid frame (or the block end).
            let until = (self.next_grid_frame.saturating_sub(self.frames) as usize)
                .min(end - f)
                .max(1);
            // One loop per format, so each is a straight conversion the compiler can unroll.
            let range = f..f + until;
            self.sum += match self.format {
                IntFormat::Bits8 => {
                    sum_of_squares::<i64>(channels, range, |x| IntFormat::Bits8.to_int(x))
                }
                IntFormat::Bits16 => {
                    sum_of_squares::<i64>(channels, range, |x| IntFormat::Bits16.to_int(x))
                }
                IntFormat::Bits24 => {
                    sum_of_squares::<i128>(channels, range, |x| IntFormat::Bits24.to_int(x))
                }
                IntFormat::Bits32 => {
                    sum_of_squares::<i128>(channels, range, |x| IntFormat::Bits32.to_int(x))
                }
            };
            self.frames += until as u64;
            f += until;
        }
        self.record_grid(sink);
    }

    /// Records the total at every grid ms whose frame has been reached, evaluating the windows
    /// that end there.
    fn record_grid(&mut self, sink: &mut dyn RangeSink) {
        while self.next_grid_frame <= self.frames {
            let ms = self.next_grid_ms;
            let len = self.totals.len();
            self.totals[ms as usize % len] = self.sum;
            self.next_grid_ms += 1;
            self.next_grid_frame = self.to_frame(self.next_grid_ms);
            // A window [i, i + min_silence] can be evaluated once its end total exists. Its start
            // is a real pydub candidate: i + min_silence = ms ≤ len(seg) so far ≤ final len.
            while self.next_start + self.min_silence <= ms {
                let i = self.next_start;
                self.evaluate(i, sink);
                self.next_start += self.seek;
            }
            self.close_if_final(ms, sink);
        }
    }

    fn total_at(&self, ms: i64) -> i128 {
        self.totals[ms as usize % self.totals.len()]
    }

    fn evaluate(&mut self, i: i64, sink: &mut dyn RangeSink) {
        let end = i + self.min_silence;
        let sum = self.total_at(end) - self.total_at(i);
        // Frames past the data are zero-padded by pydub's slicing (≤ 2 ms): they count in n.
        let n = (self.to_frame(end) - self.to_frame(i)) * self.channels as u64;
        // audioop.rms: int(sqrt(sum / n)), 0 for an empty slice.
        let rms = if n == 0 {
            0.0
        } else {
            ((sum as f64) / (n as f64)).sqrt().trunc()
        };
        if rms <= self.threshold {
            self.silent_start(i, sink);
        }
    }

    /// pydub's merge rule: a new range starts only when the silent start is neither the next
    /// seek step nor within `min_silence` of the previous silent start.
    fn silent_start(&mut self, i: i64, sink: &mut dyn RangeSink) {
        match self.current {
            None => self.current = Some((i, i)),
            Some((start, prev)) => {
                let continuous = i == prev + self.seek;
                let has_gap = i > prev + self.min_silence;
                if !continuous && has_gap {
                    sink.silent_range(start, prev + self.min_silence);
                    self.current = Some((i, i));
                } else {
                    self.current = Some((start, i));
                }
            }
        }
    }

    /// Closes the current range once no later silent start could merge into it. Later starts
    /// are the multiples of seek from `next_start` and, at the end, the appended last start
    /// `len − min_silence ≥ ms − min_silence` (`ms` = the newest grid ms, `≤ len`).
    fn close_if_final(&mut self, ms: i64, sink: &mut dyn RangeSink) {
        if let Some((start, prev)) = self.current {
            let limit = prev + self.min_silence;
            if self.next_start > limit
                && self.next_start > prev + self.seek
                && ms - self.min_silence > limit
            {
                sink.silent_range(start, prev + self.min_silence);
                self.current = None;
            }
        }
    }

    /// The silent range still growing: its start and a lower bound of its end.
    pub(crate) fn open(&self) -> Option<(i64, i64)> {
        self.current
            .map(|(start, prev)| (start, prev + self.min_silence))
    }

    /// Any silent range not yet reported (nor open) starts at or after this ms.
    pub(crate) fn frontier(&self) -> i64 {
        // The appended last start (`len − min_silence`) may fall before `next_start`.
        self.next_start
            .min(self.next_grid_ms - 1 - self.min_silence)
            .max(0)
    }

    /// End of stream: evaluates the last windows (zero-padded as pydub pads) and the appended
    /// last start `len − min_silence`; reports the remaining range. Returns `len(seg)` in ms.
    pub(crate) fn finish(&mut self, sink: &mut dyn RangeSink) -> i64 {
        let len = self.len_ms();
        if self.finished {
            return len;
        }
        self.finished = true;
        sink.set_total(len);
        if len < self.min_silence {
            // "you can't have a silent portion of a sound that is longer than the sound"
            return len;
        }
        // Totals at grid ms beyond the data: padding adds nothing to the sum.
        while self.next_grid_ms <= len {
            let ms = self.next_grid_ms;
            let ring = self.totals.len();
            self.totals[ms as usize % ring] = self.sum;
            self.next_grid_ms += 1;
        }
        let last_start = len - self.min_silence;
        while self.next_start <= last_start {
            let i = self.next_start;
            self.evaluate(i, sink);
            self.next_start += self.seek;
        }
        // pydub appends `last_slice_start` when it is not a multiple of seek_step.
        if last_start % self.seek != 0 {
            self.evaluate(last_start, sink);
        }
        if let Some((start, prev)) = self.current.take() {
            sink.silent_range(start, prev + self.min_silence);
        }
        len
    }
}
