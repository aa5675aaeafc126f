//! [`Block`]: planar `f32` samples with a fixed capacity, reused for the whole job.

/// A chunk of planar audio: `channels` buffers of `capacity` samples, of which the first
/// `frames()` are valid. Samples are nominally in −1.0..=1.0 (full scale), but values beyond are
/// kept (DSP may produce them; encoders clip).
///
/// A block never reallocates after construction unless [`Block::reconfigure`] is called, which is
/// only done when a stage is prepared, never per chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    samples: Vec<Vec<f32>>,
    frames: usize,
    capacity: usize,
    start_frame: u64,
}

impl Block {
    /// A silent block of `channels` × `capacity` samples holding zero valid frames.
    pub fn new(channels: usize, capacity: usize) -> Self {
        Self {
            samples: (0..channels).map(|_| vec![0.0; capacity]).collect(),
            frames: 0,
            capacity,
            start_frame: 0,
        }
    }

    /// A block holding a copy of `channels` (all the same length); for tests and benches.
    ///
    /// # Panics
    /// Panics if the channel slices differ in length.
    pub fn from_channels(channels: &[&[f32]]) -> Self {
        let frames = channels.first().map_or(0, |c| c.len());
        assert!(
            channels.iter().all(|c| c.len() == frames),
            "all channels of a block must have the same length"
        );
        Self {
            samples: channels.iter().map(|c| c.to_vec()).collect(),
            frames,
            capacity: frames,
            start_frame: 0,
        }
    }

    /// Changes the channel count and capacity (allocates); valid frames become zero.
    pub fn reconfigure(&mut self, channels: usize, capacity: usize) {
        self.samples.resize_with(channels, Vec::new);
        for channel in &mut self.samples {
            channel.resize(capacity, 0.0);
        }
        self.capacity = capacity;
        self.frames = 0;
    }

    /// Number of channels.
    pub fn channel_count(&self) -> usize {
        self.samples.len()
    }

    /// How many frames the block can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many frames are valid.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// True when no frame is valid.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// Sets how many frames are valid. Samples beyond the old count keep whatever they held.
    ///
    /// # Panics
    /// Panics if `frames` exceeds the capacity: that is a bug in the caller, never input-driven.
    pub fn set_frames(&mut self, frames: usize) {
        assert!(
            frames <= self.capacity,
            "block frames {frames} exceed capacity {}",
            self.capacity
        );
        self.frames = frames;
    }

    /// Index of this block's first frame in its stream (for time-dependent stages and pieces).
    pub fn start_frame(&self) -> u64 {
        self.start_frame
    }

    /// Sets the index of the first frame in the stream.
    pub fn set_start_frame(&mut self, start_frame: u64) {
        self.start_frame = start_frame;
    }

    /// The valid samples of channel `ch`.
    pub fn channel(&self, ch: usize) -> &[f32] {
        &self.samples[ch][..self.frames]
    }

    /// The valid samples of channel `ch`, mutable.
    pub fn channel_mut(&mut self, ch: usize) -> &mut [f32] {
        &mut self.samples[ch][..self.frames]
    }

    /// The whole buffer of channel `ch` (all `capacity` samples), for producers that fill a block
    /// before calling [`Block::set_frames`].
    pub fn channel_buffer_mut(&mut self, ch: usize) -> &mut [f32] {
        &mut self.samples[ch]
    }

    /// All channels' valid samples, in channel order.
    pub fn channels(&self) -> impl Iterator<Item = &[f32]> + '_ {
        self.samples.iter().map(move |c| &c[..self.frames])
    }

    /// All channels' valid samples, mutable, in channel order (stages that write several
    /// channels in one pass).
    pub fn channels_mut(&mut self) -> impl Iterator<Item = &mut [f32]> + '_ {
        let frames = self.frames;
        self.samples.iter_mut().map(move |c| &mut c[..frames])
    }

    /// Copies `input`'s valid frames, channel count and start frame into `self`, which must have
    /// the same channel count and at least as much capacity.
    ///
    /// # Panics
    /// Panics on a channel-count or capacity mismatch (a pipeline bug, not an input error).
    pub fn copy_from(&mut self, input: &Block) {
        assert_eq!(self.channel_count(), input.channel_count());
        self.set_frames(input.frames());
        self.start_frame = input.start_frame;
        for (dst, src) in self.samples.iter_mut().zip(&input.samples) {
            dst[..input.frames].copy_from_slice(&src[..input.frames]);
        }
    }

    /// Sets every valid sample to zero.
    pub fn fill_silence(&mut self) {
        let frames = self.frames;
        for channel in &mut self.samples {
            channel[..frames].fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_from_copies_valid_frames_and_position() {
        let src = Block::from_channels(&[&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]]);
        let mut dst = Block::new(2, 8);
        dst.copy_from(&src);
        assert_eq!(dst.frames(), 3);
        assert_eq!(dst.channel(1), &[4.0, 5.0, 6.0]);
    }

    #[test]
    fn reconfigure_changes_shape() {
        let mut block = Block::new(1, 4);
        block.reconfigure(3, 16);
        assert_eq!(block.channel_count(), 3);
        assert_eq!(block.capacity(), 16);
        assert!(block.is_empty());
    }
}
