//! Rechunking and gapless trimming: turns packets of whatever size the codec produces into blocks
//! of exactly `capacity` frames (except the last), dropping encoder priming and padding.
//!
//! The rechunker never copies a packet into a staging buffer: it remembers which frames of the
//! decoder's last packet are still pending and converts them straight into the caller's block.
//! So the only per-sample work is one format conversion + store, and nothing allocates.

use std::ops::Range;

use super::error::DecodeError;
use crate::audio::Block;

/// Where the valid audio lies in the decoder's raw output, in frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Trim {
    /// Raw frames to drop at the start (encoder priming).
    pub skip: u64,
    /// Valid frames after the skipped ones; `None` = until the stream ends.
    pub length: Option<u64>,
}

impl Trim {
    /// Raw frame index one past the last valid frame.
    fn end(&self) -> Option<u64> {
        self.length.map(|len| self.skip.saturating_add(len))
    }
}

/// A decoder seen as a sequence of packets whose frames can be copied out.
pub(crate) trait PacketSource {
    /// Decodes the next packet and returns its frame count (may be 0), or `None` at the end.
    fn next_packet(&mut self) -> Result<Option<usize>, DecodeError>;
    /// Copies frames `src..src + frames` of the last packet into every channel of `block`,
    /// starting at index `dst` of the channel buffers.
    fn copy_out(&self, src: usize, frames: usize, block: &mut Block, dst: usize);
    /// The source's name, for error messages.
    fn name(&self) -> &str;
    /// True if the stream ended with an I/O end-of-file inside a packet rather than cleanly.
    fn ended_inside_data(&self) -> bool;
    /// Packets skipped so far because they failed to decode (their frames are missing).
    fn skipped_packets(&self) -> u64;
}

/// Rechunking state: which frames of the current packet are still to be emitted, and counters.
#[derive(Debug)]
pub(crate) struct Rechunker {
    trim: Trim,
    /// Frames of the current packet not yet copied out (indices into the packet).
    pending: Range<usize>,
    /// Raw frames received from the decoder so far (before trimming).
    raw_position: u64,
    /// Frames emitted so far (after trimming).
    emitted: u64,
    /// Output length announced by the container, checked at the end (`None` = unknown).
    expected: Option<u64>,
    /// Largest packet seen: how short of `expected` a stream may end without being truncated.
    max_packet: usize,
    finished: bool,
}

impl Rechunker {
    /// A rechunker applying `trim`, expecting `expected` output frames if known.
    pub fn new(trim: Trim, expected: Option<u64>) -> Self {
        Self {
            trim,
            pending: 0..0,
            raw_position: 0,
            emitted: 0,
            expected,
            max_packet: 0,
            finished: false,
        }
    }

    /// Frames emitted so far.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// Registers a freshly decoded packet of `frames` raw frames: computes which of its frames
    /// survive the trim. Returns false when the trimmed end has been reached (stop decoding).
    fn accept_packet(&mut self, frames: usize) -> bool {
        self.max_packet = self.max_packet.max(frames);
        let start = self.raw_position;
        let end = start + frames as u64;
        self.raw_position = end;
        let valid_start = self.trim.skip.max(start);
        let valid_end = self.trim.end().map_or(end, |e| e.min(end));
        self.pending = if valid_start < valid_end {
            (valid_start - start) as usize..(valid_end - start) as usize
        } else {
            0..0
        };
        self.trim.end().is_none_or(|e| end < e)
    }

    /// Fills `block` with up to `block.capacity()` frames from `source`; returns the frame count,
    /// 0 at the end. Every call but the last returns exactly `capacity` frames.
    pub fn fill<S: PacketSource>(
        &mut self,
        source: &mut S,
        block: &mut Block,
    ) -> Result<usize, DecodeError> {
        let capacity = block.capacity();
        let mut filled = 0;
        block.set_start_frame(self.emitted);
        while filled < capacity {
            if self.pending.is_empty() {
                if self.finished {
                    break;
                }
                match source.next_packet()? {
                    Some(frames) => {
                        if !self.accept_packet(frames) {
                            // The trimmed end lies inside this packet: what follows is padding.
                            self.finished = true;
                        }
                    }
                    None => {
                        self.finished = true;
                        self.check_length(source)?;
                    }
                }
                continue;
            }
            let n = (capacity - filled).min(self.pending.len());
            source.copy_out(self.pending.start, n, block, filled);
            self.pending.start += n;
            filled += n;
            self.emitted += n as u64;
        }
        block.set_frames(filled);
        Ok(filled)
    }

    /// At the end of the stream: fails if it ended clearly short of the announced length, or
    /// (when no length was announced) inside a packet.
    fn check_length<S: PacketSource>(&self, source: &S) -> Result<(), DecodeError> {
        match self.expected {
            Some(expected) => {
                // One packet of slack: some containers round their announced length up to a
                // whole packet, and a final partial packet may legitimately be dropped. Skipped
                // bad packets are missing too: that is reported by their count, not as truncation.
                let packet = self.max_packet.max(1) as u64;
                let tolerance = packet.saturating_mul(1 + source.skipped_packets());
                if self.emitted + tolerance < expected {
                    return Err(DecodeError::Truncated {
                        file: source.name().to_owned(),
                        expected,
                        decoded: self.emitted,
                    });
                }
            }
            None if source.ended_inside_data() => {
                return Err(DecodeError::UnexpectedEof {
                    file: source.name().to_owned(),
                    decoded: self.emitted,
                });
            }
            None => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packets of the given sizes; sample value = raw frame index (+0.5 on channel 1).
    struct FakeSource {
        sizes: Vec<usize>,
        next: usize,
        raw_start: usize,
        current: usize,
    }

    impl FakeSource {
        fn new(sizes: &[usize]) -> Self {
            Self {
                sizes: sizes.to_vec(),
                next: 0,
                raw_start: 0,
                current: 0,
            }
        }
    }

    impl PacketSource for FakeSource {
        fn next_packet(&mut self) -> Result<Option<usize>, DecodeError> {
            let Some(&size) = self.sizes.get(self.next) else {
                return Ok(None);
            };
            self.next += 1;
            self.raw_start += self.current;
            self.current = size;
            Ok(Some(size))
        }

        fn copy_out(&self, src: usize, frames: usize, block: &mut Block, dst: usize) {
            for ch in 0..block.channel_count() {
                let buf = block.channel_buffer_mut(ch);
                for i in 0..frames {
                    buf[dst + i] = (self.raw_start + src + i) as f32 + 0.5 * ch as f32;
                }
            }
        }

        fn name(&self) -> &str {
            "fake"
        }

        fn ended_inside_data(&self) -> bool {
            false
        }

        fn skipped_packets(&self) -> u64 {
            0
        }
    }

    /// Runs the rechunker to the end and returns (block sizes, channel-0 samples, start frames).
    fn drain(sizes: &[usize], trim: Trim, capacity: usize) -> (Vec<usize>, Vec<f32>, Vec<u64>) {
        let mut source = FakeSource::new(sizes);
        let mut rechunker = Rechunker::new(trim, None);
        let mut block = Block::new(2, capacity);
        let (mut lens, mut samples, mut starts) = (Vec::new(), Vec::new(), Vec::new());
        loop {
            let n = rechunker.fill(&mut source, &mut block).unwrap();
            if n == 0 {
                break;
            }
            lens.push(n);
            starts.push(block.start_frame());
            samples.extend_from_slice(block.channel(0));
            for (a, b) in block.channel(0).iter().zip(block.channel(1)) {
                assert_eq!(*b, *a + 0.5, "channels stay aligned");
            }
        }
        // Once finished, fill keeps returning 0.
        assert_eq!(rechunker.fill(&mut source, &mut block).unwrap(), 0);
        (lens, samples, starts)
    }

    #[test]
    fn every_block_but_the_last_is_full_whatever_the_packet_sizes() {
        let sizes = [1152, 0, 17, 4096, 1, 1024, 576, 3000];
        let total: usize = sizes.iter().sum();
        for capacity in [1, 7, 64, 1000, 4096, 20_000] {
            let (lens, samples, starts) = drain(&sizes, Trim::default(), capacity);
            assert_eq!(lens.iter().sum::<usize>(), total);
            assert!(lens[..lens.len() - 1].iter().all(|&n| n == capacity));
            let expected: Vec<f32> = (0..total).map(|i| i as f32).collect();
            assert_eq!(samples, expected, "capacity {capacity}");
            let expected_starts: Vec<u64> =
                (0..lens.len()).map(|i| (i * capacity) as u64).collect();
            assert_eq!(starts, expected_starts);
        }
    }

    #[test]
    fn trim_drops_priming_and_padding_across_packet_boundaries() {
        // AAC-like: 1024-frame packets, 1024 priming frames + 100 more, 2500 valid frames.
        let sizes = [1024; 6];
        let trim = Trim {
            skip: 1124,
            length: Some(2500),
        };
        let (lens, samples, _) = drain(&sizes, trim, 1000);
        assert_eq!(lens, vec![1000, 1000, 500]);
        let expected: Vec<f32> = (1124..3624).map(|i| i as f32).collect();
        assert_eq!(samples, expected);
    }

    #[test]
    fn skip_beyond_the_stream_yields_nothing() {
        let (lens, _, _) = drain(
            &[10, 10],
            Trim {
                skip: 100,
                length: None,
            },
            8,
        );
        assert!(lens.is_empty());
    }

    #[test]
    fn stream_ending_short_of_the_announced_length_is_truncated() {
        let mut source = FakeSource::new(&[1000; 5]);
        let mut rechunker = Rechunker::new(Trim::default(), Some(10_000));
        let mut block = Block::new(2, 4096);
        assert_eq!(rechunker.fill(&mut source, &mut block).unwrap(), 4096);
        let err = rechunker.fill(&mut source, &mut block).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::Truncated {
                expected: 10_000,
                decoded: 5000,
                ..
            }
        ));
    }

    #[test]
    fn ending_within_one_packet_of_the_announced_length_is_accepted() {
        let mut source = FakeSource::new(&[1000; 5]);
        let mut rechunker = Rechunker::new(Trim::default(), Some(5500));
        let mut block = Block::new(1, 8192);
        assert_eq!(rechunker.fill(&mut source, &mut block).unwrap(), 5000);
        assert_eq!(rechunker.fill(&mut source, &mut block).unwrap(), 0);
    }
}
