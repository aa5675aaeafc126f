//! FLAC output through flacenc's per-frame API, in constant memory.
//!
//! flacenc's top-level `encode_with_fixed_block_size` needs the whole signal and the whole
//! encoded stream in memory (2.6 GB for 30 min in our measurements), so we drive
//! [`flacenc::encode_fixed_size_frame`] ourselves: samples accumulate into one reused
//! [`FrameBuf`] of [`BLOCK_SIZE`] frames, each full buffer becomes one FLAC frame written straight
//! to the sink. `fLaC` + STREAMINFO go first with "unknown" totals and are patched at the end
//! with the sample count, the frame-size bounds and the MD5 of the PCM.
//!
//! Allocation: our buffers are allocated once; flacenc itself allocates a few small vectors per
//! encoded frame (its `Frame` holds a `Vec` of subframes), which is bounded and not per sample.
//!
//! # The verbatim bound
//! No FLAC frame we write is larger than the same frame stored verbatim (raw samples), so an
//! output never exceeds its raw PCM by more than frame headers. flacenc 0.5.1 breaks that bound
//! on 24-bit input: its Rice parameter is capped at 14 (no 5-bit RICE2, no escape codes), and its
//! Rice search sums per-partition bit counts in `u32` with a 28-bit ceiling (`rice.rs`,
//! `MAX_P_TO_BITS`, merged 64 times), so large 24-bit residuals wrap the counts and it picks a
//! tiny parameter whose unary codes take 10⁴–10⁵ bits per sample. Its fixed predictor is also
//! accepted on an entropy estimate that ignores the cap, never compared with verbatim. Measured
//! before this guard: 30–170 MB for single 4096-frame blocks, a 2.35 GB output (and a wrong
//! 24-bit frame-size field in STREAMINFO) for 120 s of 6-channel speech. So every encoded frame
//! is checked here with flacenc's exact bit counts ([`BitRepr::count_bits`] recomputes them from
//! the residual, it does not trust the search): a stereo-coded frame with an oversized subframe
//! is re-encoded with independent channels, and any subframe larger than its verbatim form is
//! replaced by it. A frame still above the bound is an internal error, never written.

use super::pcm::{PcmDepth, Quantizer};
use super::{EncodeError, EncodedOutput, Encoder};
use crate::audio::ByteSink;
use crate::audio::{Block, StreamSpec};
use flacenc::bitsink::ByteSink as BitBytes;
use flacenc::component::{BitRepr, ChannelAssignment, Frame, StreamInfo, SubFrame, Verbatim};
use flacenc::error::{Verified, Verify};
use flacenc::source::{Fill, FrameBuf};
use md5::{Digest, Md5};

const FORMAT: &str = "flac";

/// Frames per FLAC block: libFLAC's default at compression levels 3–8, and flacenc's.
pub const BLOCK_SIZE: usize = 4096;

/// Byte offset of the STREAMINFO payload: after `fLaC` and the 4-byte metadata block header.
const STREAMINFO_OFFSET: u64 = 8;

/// Streaming FLAC encoder (16- or 24-bit, 1–8 channels, fixed block size [`BLOCK_SIZE`]).
/// Samples are clipped and rounded exactly as the WAV encoder does, so a FLAC and a WAV of the
/// same bit depth decode to the same PCM.
pub struct FlacEncoder {
    sink: Box<dyn ByteSink>,
    config: Verified<flacenc::config::Encoder>,
    /// The same settings without stereo decorrelation, for re-encoding a stereo frame whose
    /// side-coded form broke the verbatim bound.
    independent: Verified<flacenc::config::Encoder>,
    /// Running STREAMINFO: flacenc's `update_frame_info` tracks block and frame sizes.
    info: StreamInfo,
    channels: usize,
    depth: PcmDepth,
    /// The one f32 → integer conversion, shared with WAV, with its clip counts.
    quantizer: Quantizer,
    /// Interleaved quantised samples of the frame being filled (capacity `BLOCK_SIZE × channels`).
    pending: Vec<i32>,
    framebuf: FrameBuf,
    /// Reused output buffer of one encoded frame.
    frame_bytes: BitBytes,
    /// Reused little-endian PCM bytes fed to the MD5.
    md5_bytes: Vec<u8>,
    md5: Md5,
    frame_number: usize,
    frames: u64,
    sample_rate: u32,
}

impl FlacEncoder {
    /// Writes the `fLaC` marker and a placeholder STREAMINFO and returns the encoder.
    ///
    /// # Errors
    /// [`EncodeError::Unsupported`] for a bit depth other than 16/24, more than 8 channels or a
    /// sample rate FLAC cannot carry; sink errors.
    pub fn new(
        spec: StreamSpec,
        bits_per_sample: u8,
        mut sink: Box<dyn ByteSink>,
    ) -> Result<Self, EncodeError> {
        check(spec, bits_per_sample)?;
        let depth = PcmDepth::from_bits(bits_per_sample).unwrap_or(PcmDepth::Bits16);
        let mut config = flacenc::config::Encoder::default();
        config.block_size = BLOCK_SIZE;
        // Parallelism comes from running several jobs at once, not from inside one encoder.
        config.multithread = false;
        let mut independent = config.clone();
        independent.stereo_coding.use_leftside = false;
        independent.stereo_coding.use_rightside = false;
        independent.stereo_coding.use_midside = false;
        let verify = |config: flacenc::config::Encoder| {
            config
                .into_verified()
                .map_err(|(_, e)| EncodeError::codec(FORMAT, e))
        };
        let config = verify(config)?;
        let independent = verify(independent)?;
        let info = StreamInfo::new(
            spec.sample_rate as usize,
            spec.channels,
            usize::from(bits_per_sample),
        )
        .map_err(|e| EncodeError::unsupported(FORMAT, e.to_string()))?;
        let framebuf = FrameBuf::with_size(spec.channels, BLOCK_SIZE)
            .map_err(|e| EncodeError::codec(FORMAT, e))?;

        // "Unknown" totals: frame sizes, sample count and MD5 are zero until finish.
        let mut frame_bytes = BitBytes::with_capacity(BLOCK_SIZE * spec.channels * 32);
        let mut placeholder = info.clone();
        set_sizes(&mut placeholder, BLOCK_SIZE, 0, 0)?;
        sink.write_all(&header(&placeholder, &mut frame_bytes)?)?;
        Ok(Self {
            sink,
            config,
            independent,
            info,
            channels: spec.channels,
            depth,
            quantizer: Quantizer::default(),
            pending: Vec::with_capacity(BLOCK_SIZE * spec.channels),
            framebuf,
            frame_bytes,
            md5_bytes: Vec::with_capacity(BLOCK_SIZE * spec.channels * 3),
            md5: Md5::new(),
            frame_number: 0,
            frames: 0,
            sample_rate: spec.sample_rate,
        })
    }

    /// Encodes `pending` (one full frame, or the short last one) and writes it.
    fn encode_pending(&mut self) -> Result<(), EncodeError> {
        let frames = self.pending.len() / self.channels;
        if frames == 0 {
            return Ok(());
        }
        if frames != self.framebuf.size() {
            // Only the last frame is short; this is the one resize of the stream.
            self.framebuf.resize(frames);
        }
        self.framebuf
            .fill_interleaved(&self.pending)
            .map_err(|e| EncodeError::codec(FORMAT, e))?;
        let frame = flacenc::encode_fixed_size_frame(
            &self.config,
            &self.framebuf,
            self.frame_number,
            &self.info,
        )
        .map_err(|e| EncodeError::codec(FORMAT, e))?;
        let frame = self.within_verbatim_bound(frame, frames)?;
        self.frame_bytes.clear();
        frame
            .write(&mut self.frame_bytes)
            .map_err(|e| EncodeError::codec(FORMAT, e))?;
        self.sink.write_all(self.frame_bytes.as_slice())?;
        self.info.update_frame_info(&frame);

        // MD5 over the interleaved little-endian samples, `bits / 8` bytes each (FLAC spec).
        let width = usize::from(self.depth.bits() / 8);
        self.md5_bytes.clear();
        for &s in &self.pending {
            self.md5_bytes.extend_from_slice(&s.to_le_bytes()[..width]);
        }
        self.md5.update(&self.md5_bytes);

        self.frame_number += 1;
        self.frames += frames as u64;
        self.pending.clear();
        Ok(())
    }
}

impl FlacEncoder {
    /// `frame` (of `frames` frames, encoded from `pending`), made no larger than its verbatim
    /// form: see the module docs.
    fn within_verbatim_bound(&self, frame: Frame, frames: usize) -> Result<Frame, EncodeError> {
        let bits = usize::from(self.depth.bits());
        let verbatim_subframe = 8 + frames * bits;
        let oversized = |sub: &SubFrame| sub.count_bits() > verbatim_subframe;
        let mut frame = frame;
        if !matches!(
            frame.header().channel_assignment(),
            ChannelAssignment::Independent(_)
        ) && (0..self.channels).any(|ch| frame.subframe(ch).is_some_and(oversized))
        {
            frame = flacenc::encode_fixed_size_frame(
                &self.independent,
                &self.framebuf,
                self.frame_number,
                &self.info,
            )
            .map_err(|e| EncodeError::codec(FORMAT, e))?;
        }
        if (0..self.channels).any(|ch| frame.subframe(ch).is_some_and(oversized)) {
            let (header, subframes) = frame.into_parts();
            let mut replaced = Vec::with_capacity(subframes.len());
            for (ch, sub) in subframes.into_iter().enumerate() {
                if oversized(&sub) {
                    let samples: Vec<i32> = self
                        .pending
                        .iter()
                        .skip(ch)
                        .step_by(self.channels)
                        .copied()
                        .collect();
                    let verbatim =
                        Verbatim::new(&samples, bits).map_err(|e| EncodeError::codec(FORMAT, e))?;
                    replaced.push(SubFrame::from(verbatim));
                } else {
                    replaced.push(sub);
                }
            }
            frame = Frame::new(header, replaced.into_iter())
                .map_err(|e| EncodeError::codec(FORMAT, e))?;
        }
        let bound = frame.header().count_bits() + self.channels * verbatim_subframe + 7 + 16;
        if frame.count_bits() > bound {
            return Err(EncodeError::codec(
                FORMAT,
                format!(
                    "internal error: frame {} takes {} bits, more than its verbatim {bound}",
                    self.frame_number,
                    frame.count_bits()
                ),
            ));
        }
        Ok(frame)
    }
}

/// Checks that FLAC can carry `spec` at `bits_per_sample` (see [`FlacEncoder::new`]).
pub(crate) fn check(spec: StreamSpec, bits_per_sample: u8) -> Result<(), EncodeError> {
    if PcmDepth::from_bits(bits_per_sample).is_none() {
        return Err(EncodeError::unsupported(
            FORMAT,
            format!("bits_per_sample must be 16 or 24, not {bits_per_sample}"),
        ));
    }
    if !(1..=8).contains(&spec.channels) {
        return Err(EncodeError::unsupported(
            FORMAT,
            format!(
                "FLAC carries 1 to 8 channels; the stream has {}",
                spec.channels
            ),
        ));
    }
    Ok(())
}

/// `fLaC`, then `info` as the last (only) metadata block; `scratch` is a reused bit buffer.
fn header(info: &StreamInfo, scratch: &mut BitBytes) -> Result<Vec<u8>, EncodeError> {
    scratch.clear();
    info.write(scratch)
        .map_err(|e| EncodeError::codec(FORMAT, e))?;
    let payload = scratch.as_slice();
    let mut header = Vec::with_capacity(STREAMINFO_OFFSET as usize + payload.len());
    header.extend_from_slice(b"fLaC");
    // is_last = 1, type 0 (STREAMINFO), 24-bit length (34).
    header.push(0x80);
    header.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    header.extend_from_slice(payload);
    Ok(header)
}

/// Sets block and frame size bounds on `info`.
///
/// The min block size is set to the max, as libFLAC does: the spec allows the last block of a
/// fixed-blocksize stream to be shorter than `min_block_size`, and `min == max` is what tells
/// readers the stream has a fixed block size.
fn set_sizes(
    info: &mut StreamInfo,
    block_size: usize,
    min_frame: usize,
    max_frame: usize,
) -> Result<(), EncodeError> {
    info.set_block_sizes(block_size, block_size)
        .map_err(|e| EncodeError::codec(FORMAT, e))?;
    info.set_frame_sizes(min_frame, max_frame)
        .map_err(|e| EncodeError::codec(FORMAT, e))
}

impl Encoder for FlacEncoder {
    fn write(&mut self, block: &Block) -> Result<(), EncodeError> {
        if block.channel_count() != self.channels {
            return Err(EncodeError::ChannelMismatch {
                format: FORMAT,
                expected: self.channels,
                got: block.channel_count(),
            });
        }
        let mut offset = 0;
        while offset < block.frames() {
            let room = BLOCK_SIZE - self.pending.len() / self.channels;
            let take = room.min(block.frames() - offset);
            for i in offset..offset + take {
                for ch in 0..self.channels {
                    let x = block.channel(ch)[i];
                    self.pending.push(self.quantizer.pcm(self.depth, x));
                }
            }
            offset += take;
            if self.pending.len() == BLOCK_SIZE * self.channels {
                self.encode_pending()?;
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<EncodedOutput, EncodeError> {
        let mut this = *self;
        this.encode_pending()?;
        let mut info = this.info.clone();
        let (min_frame, max_frame) = if this.frame_number == 0 {
            (0, 0)
        } else {
            (info.min_frame_size(), info.max_frame_size())
        };
        set_sizes(&mut info, BLOCK_SIZE, min_frame, max_frame)?;
        let total = usize::try_from(this.frames)
            .map_err(|_| EncodeError::codec(FORMAT, "sample count does not fit this platform"))?;
        info.set_total_samples(total);
        let digest: [u8; 16] = this.md5.clone().finalize().into();
        info.set_md5_digest(&digest);
        let header = header(&info, &mut this.frame_bytes)?;
        this.sink.patch(0, &header)?;
        debug_assert_eq!(STREAMINFO_OFFSET as usize + 34, header.len());
        let bytes = this.sink.commit()?;
        Ok(EncodedOutput {
            frames: this.frames,
            sample_rate: this.sample_rate,
            channels: this.channels,
            bytes,
            clipped_samples: this.quantizer.clipped,
            non_finite_samples: this.quantizer.non_finite,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::MemorySink;

    fn encode(frames: usize, block: usize, bits: u8) -> (EncodedOutput, Vec<u8>) {
        let spec = StreamSpec {
            sample_rate: 44_100,
            channels: 2,
        };
        let sink = MemorySink::new();
        let output = sink.output();
        let mut enc = Box::new(FlacEncoder::new(spec, bits, Box::new(sink)).unwrap());
        let left: Vec<f32> = (0..frames).map(|i| (i as f32 * 0.01).sin() * 0.5).collect();
        let right: Vec<f32> = left.iter().map(|x| -x).collect();
        for start in (0..frames).step_by(block) {
            let end = (start + block).min(frames);
            enc.write(&Block::from_channels(&[
                &left[start..end],
                &right[start..end],
            ]))
            .unwrap();
        }
        let out = enc.finish().unwrap();
        (out, output.take().unwrap())
    }

    #[test]
    fn streaminfo_is_patched_with_totals() {
        // Two full frames and a 5-frame tail (shorter than FLAC's usual 16 minimum).
        let (out, bytes) = encode(2 * BLOCK_SIZE + 5, 1000, 16);
        assert_eq!(out.frames, 2 * BLOCK_SIZE as u64 + 5);
        assert_eq!(out.bytes, bytes.len() as u64);
        assert_eq!(&bytes[0..4], b"fLaC");
        assert_eq!(bytes[4], 0x80);
        assert_eq!(&bytes[5..8], &[0, 0, 34]);
        let si = &bytes[8..42];
        assert_eq!(u16::from_be_bytes([si[0], si[1]]), BLOCK_SIZE as u16);
        assert_eq!(u16::from_be_bytes([si[2], si[3]]), BLOCK_SIZE as u16);
        let min_frame = u32::from_be_bytes([0, si[4], si[5], si[6]]);
        let max_frame = u32::from_be_bytes([0, si[7], si[8], si[9]]);
        assert!(min_frame > 0 && min_frame <= max_frame);
        // 36-bit total sample count in the low nibble of byte 13 and bytes 14..18.
        let total = (u64::from(si[13] & 0x0F) << 32)
            | u64::from(u32::from_be_bytes([si[14], si[15], si[16], si[17]]));
        assert_eq!(total, out.frames);
        assert_ne!(&si[18..34], &[0; 16], "MD5 is set");
        // The first frame starts right after STREAMINFO with the FLAC sync code.
        assert_eq!(&bytes[42..44], &[0xFF, 0xF8]);
    }

    #[test]
    fn rejects_unsupported_bit_depth() {
        let spec = StreamSpec {
            sample_rate: 44_100,
            channels: 2,
        };
        let err = FlacEncoder::new(spec, 20, Box::new(MemorySink::new()))
            .err()
            .unwrap();
        assert_eq!(err.kind(), "unsupported_output");
        assert!(err.to_string().contains("16 or 24"), "{err}");
    }

    #[test]
    fn empty_stream_is_valid() {
        let (out, bytes) = encode(0, 1000, 24);
        assert_eq!(out.frames, 0);
        assert_eq!(bytes.len(), 42);
    }
}
