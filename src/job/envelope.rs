//! The picture-sized outline of a recording for `longwave plot`: per column of the picture, the
//! lowest and highest sample over all channels, computed in one streaming pass in memory that
//! does not depend on the recording's length.
//!
//! The input's length is not always known before the end (a header may lie or be missing), so
//! frames are gathered into bins of `frames_per_bin` frames; when `2 × columns` bins are full,
//! neighbouring bins are merged and the bin size doubles. At the end every bin goes to the
//! column its first frame falls in. At least `columns` bins exist whenever the recording has
//! `columns` frames, so every column gets one.

use crate::audio::Block;

/// Per-column min/max of a recording (see the module docs).
#[derive(Debug, Clone)]
pub struct Envelope {
    columns: usize,
    frames_per_bin: u64,
    /// Completed bins: (min, max) over all channels.
    bins: Vec<(f32, f32)>,
    /// The bin being filled: its extremes and frame count.
    current: (f32, f32),
    filled: u64,
    frames: u64,
}

/// The result: one `(min, max)` per column (`None` for a column no frame falls in: only when
/// the recording has fewer frames than columns), and the frames it describes.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvelopeColumns {
    /// `(min, max)` per column, left to right.
    pub columns: Vec<Option<(f32, f32)>>,
    /// Frames of the recording.
    pub frames: u64,
}

impl Envelope {
    /// An envelope of `columns` columns (at least 1).
    pub fn new(columns: usize) -> Self {
        let columns = columns.max(1);
        Self {
            columns,
            frames_per_bin: 1,
            bins: Vec::with_capacity(2 * columns),
            current: (f32::INFINITY, f32::NEG_INFINITY),
            filled: 0,
            frames: 0,
        }
    }

    /// Memory it holds, in bytes (the bound it keeps whatever the length).
    pub fn memory_bytes(columns: usize) -> usize {
        2 * columns.max(1) * std::mem::size_of::<(f32, f32)>()
    }

    /// Adds the valid frames of `block`.
    pub fn add(&mut self, block: &Block) {
        let frames = block.frames();
        let mut offset = 0;
        while offset < frames {
            let room = (self.frames_per_bin - self.filled) as usize;
            let run = room.min(frames - offset);
            for channel in block.channels() {
                for &x in &channel[offset..offset + run] {
                    self.current.0 = self.current.0.min(x);
                    self.current.1 = self.current.1.max(x);
                }
            }
            offset += run;
            self.filled += run as u64;
            if self.filled == self.frames_per_bin {
                self.close_bin();
            }
        }
        self.frames += frames as u64;
    }

    fn close_bin(&mut self) {
        self.bins.push(self.current);
        self.current = (f32::INFINITY, f32::NEG_INFINITY);
        self.filled = 0;
        if self.bins.len() == 2 * self.columns {
            // Merge neighbours: half as many bins, each twice as long.
            for i in 0..self.columns {
                let (a, b) = (self.bins[2 * i], self.bins[2 * i + 1]);
                self.bins[i] = (a.0.min(b.0), a.1.max(b.1));
            }
            self.bins.truncate(self.columns);
            self.frames_per_bin *= 2;
        }
    }

    /// The columns, each the union of the bins that start in it.
    pub fn finish(mut self) -> EnvelopeColumns {
        if self.filled > 0 {
            let partial = self.current;
            self.bins.push(partial);
        }
        let mut columns = vec![None; self.columns];
        let total = self.frames.max(1) as u128;
        for (index, &(low, high)) in self.bins.iter().enumerate() {
            let start = index as u128 * u128::from(self.frames_per_bin);
            let column = ((start * self.columns as u128) / total) as usize;
            let slot: &mut Option<(f32, f32)> = &mut columns[column.min(self.columns - 1)];
            *slot = Some(match *slot {
                Some((lo, hi)) => (lo.min(low), hi.max(high)),
                None => (low, high),
            });
        }
        EnvelopeColumns {
            columns,
            frames: self.frames,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The envelope computed directly: column `c` covers the frames whose bin starts in it,
    /// which for this reference is checked through its extremes only.
    fn run(samples: &[f32], columns: usize, block: usize) -> EnvelopeColumns {
        let mut envelope = Envelope::new(columns);
        for chunk in samples.chunks(block) {
            envelope.add(&Block::from_channels(&[chunk]));
        }
        envelope.finish()
    }

    #[test]
    fn every_column_holds_the_extremes_of_its_stretch_and_the_whole_is_exact() {
        // A ramp: column extremes must grow left to right and cover the full range.
        let samples: Vec<f32> = (0..100_003).map(|i| i as f32 / 100_003.0).collect();
        let env = run(&samples, 640, 4096);
        assert_eq!(env.frames, 100_003);
        let cols: Vec<(f32, f32)> = env.columns.iter().map(|c| c.unwrap()).collect();
        assert_eq!(cols[0].0, 0.0);
        assert_eq!(cols.last().unwrap().1, samples[100_002]);
        for pair in cols.windows(2) {
            assert!(pair[0].1 < pair[1].0 + 1e-3, "{pair:?}");
        }
        // Each column spans about 1/640 of the ramp (bins are up to 2× finer than columns).
        for (c, &(lo, hi)) in cols.iter().enumerate() {
            let expected = c as f32 / 640.0;
            assert!((lo - expected).abs() < 2.5 / 640.0, "column {c}: {lo}");
            assert!(hi - lo < 2.5 / 640.0, "column {c}: {lo}..{hi}");
        }
    }

    #[test]
    fn block_size_does_not_matter_and_memory_is_bounded() {
        let samples: Vec<f32> = (0..50_000).map(|i| ((i as f32) * 0.01).sin()).collect();
        let whole = run(&samples, 300, 50_000);
        for block in [1, 13, 4096] {
            assert_eq!(run(&samples, 300, block), whole);
        }
        let mut envelope = Envelope::new(300);
        let block = Block::from_channels(&[&samples[..]]);
        for _ in 0..40 {
            envelope.add(&block);
            assert!(envelope.bins.len() < 600);
            assert_eq!(envelope.bins.capacity(), 600, "never reallocates");
        }
    }

    #[test]
    fn a_recording_shorter_than_the_picture_leaves_columns_empty() {
        let env = run(&[0.5, -0.5, 0.25], 10, 2);
        assert_eq!(env.columns.iter().filter(|c| c.is_some()).count(), 3);
        assert_eq!(env.columns[0], Some((0.5, 0.5)));
    }
}
