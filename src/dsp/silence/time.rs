//! pydub's time arithmetic (ms ↔ frames), shared by the pydub detector and the splitter so that
//! neither imports the other.

/// ms → frame exactly as pydub's `AudioSegment._parse_position`/`frame_count`:
/// `int(ms * (frame_rate / 1000.0))` (f64 multiply, then truncation).
pub(crate) fn ms_to_frame(ms: i64, rate_per_ms: f64) -> u64 {
    ((ms as f64) * rate_per_ms) as u64
}

/// `len(seg)` as pydub computes it: `round(1000 * (frames / frame_rate))`, Python's `round`
/// (ties to even).
pub(crate) fn frames_to_len_ms(frames: u64, sample_rate: u32) -> i64 {
    (1000.0 * (frames as f64 / f64::from(sample_rate))).round_ties_even() as i64
}
