//! WAV output written by hand, so that it needs no `Seek` and has no 4 GiB cap.
//!
//! `hound` needs `Write + Seek` and stops at 4 GiB (≈ 6.7 h of 44.1 kHz stereo 16-bit), while a
//! long job may go far beyond. We follow the EBU RF64 practice (EBU Tech 3306): the header
//! reserves a 28-byte `JUNK` chunk right after `WAVE`. At the end, when the sizes fit in 32 bits,
//! the header is a plain RIFF one (the `JUNK` chunk stays, which every reader skips); otherwise it
//! becomes `RF64`, the `JUNK` chunk turns into `ds64` carrying the 64-bit sizes, and the 32-bit
//! size fields are set to `0xFFFFFFFF`. Both headers have the same length, so the final header is
//! written with one [`ByteSink::patch`].

use super::pcm::Quantizer;
use super::{EncodeError, EncodedOutput, Encoder, WavSampleFormat};
use crate::audio::ByteSink;
use crate::audio::{Block, StreamSpec};

const FORMAT: &str = "wav";

const WAVE_FORMAT_PCM: u16 = 0x0001;
const WAVE_FORMAT_IEEE_FLOAT: u16 = 0x0003;
const WAVE_FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// Tail of the `KSDATAFORMAT_SUBTYPE_*` GUIDs: `xxxxxxxx-0000-0010-8000-00aa00389b71`, the first
/// two bytes being the format tag.
const SUBTYPE_GUID_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];
/// Payload of the reserved `JUNK` / `ds64` chunk: riff size, data size, sample count (u64 each)
/// and a table length (u32) of 0.
const DS64_PAYLOAD: u32 = 28;

/// The shape of a WAV stream: everything the header depends on besides the totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WavParams {
    pub(crate) sample_rate: u32,
    pub(crate) channels: u16,
    pub(crate) sample_format: WavSampleFormat,
}

impl WavParams {
    fn bytes_per_sample(&self) -> usize {
        match self.sample_format {
            WavSampleFormat::Pcm16 => 2,
            WavSampleFormat::Pcm24 => 3,
            WavSampleFormat::Float32 => 4,
        }
    }

    fn is_float(&self) -> bool {
        self.sample_format == WavSampleFormat::Float32
    }

    /// WAVE_FORMAT_EXTENSIBLE is needed to say which speaker each channel feeds.
    fn is_extensible(&self) -> bool {
        self.channels > 2
    }

    fn fmt_payload_len(&self) -> u32 {
        if self.is_extensible() {
            40
        } else if self.is_float() {
            18 // non-PCM formats carry cbSize = 0
        } else {
            16
        }
    }

    /// `fact` is required for every non-PCM format (IEEE float, plain or extensible).
    fn has_fact(&self) -> bool {
        self.is_float()
    }

    /// Header length in bytes, identical for RIFF and RF64.
    pub(crate) fn header_len(&self) -> usize {
        12 + (8 + DS64_PAYLOAD as usize)
            + (8 + self.fmt_payload_len() as usize)
            + if self.has_fact() { 12 } else { 0 }
            + 8
    }
}

/// Speaker mask for WAVE_FORMAT_EXTENSIBLE, in the channel orders ffmpeg and Windows use.
fn channel_mask(channels: u16) -> u32 {
    const FL: u32 = 0x1;
    const FR: u32 = 0x2;
    const FC: u32 = 0x4;
    const LFE: u32 = 0x8;
    const BL: u32 = 0x10;
    const BR: u32 = 0x20;
    const BC: u32 = 0x100;
    const SL: u32 = 0x200;
    const SR: u32 = 0x400;
    match channels {
        1 => FC,
        2 => FL | FR,
        3 => FL | FR | FC,
        4 => FL | FR | BL | BR,
        5 => FL | FR | FC | BL | BR,
        6 => FL | FR | FC | LFE | BL | BR,
        7 => FL | FR | FC | LFE | BC | SL | SR,
        8 => FL | FR | FC | LFE | BL | BR | SL | SR,
        // No standard layout: leave the speakers unassigned.
        _ => 0,
    }
}

/// Builds the complete header for `data_bytes` bytes of sample data (`frames` frames) into `out`
/// (cleared first). Switches to RF64 when a size does not fit in 32 bits.
pub(crate) fn build_header(params: &WavParams, data_bytes: u64, frames: u64, out: &mut Vec<u8>) {
    out.clear();
    let header_len = params.header_len() as u64;
    let pad = data_bytes & 1;
    // Everything after the 8-byte RIFF chunk header.
    let riff_size = header_len - 8 + data_bytes + pad;
    let rf64 = riff_size >= u64::from(u32::MAX) || data_bytes >= u64::from(u32::MAX);
    let u32_or_marker = |v: u64| {
        if rf64 {
            u32::MAX
        } else {
            // Fits: checked by `rf64` above.
            v as u32
        }
    };
    let put_u16 = |out: &mut Vec<u8>, v: u16| out.extend_from_slice(&v.to_le_bytes());
    let put_u32 = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());

    out.extend_from_slice(if rf64 { b"RF64" } else { b"RIFF" });
    put_u32(out, u32_or_marker(riff_size));
    out.extend_from_slice(b"WAVE");

    if rf64 {
        out.extend_from_slice(b"ds64");
        put_u32(out, DS64_PAYLOAD);
        out.extend_from_slice(&riff_size.to_le_bytes());
        out.extend_from_slice(&data_bytes.to_le_bytes());
        out.extend_from_slice(&frames.to_le_bytes());
        put_u32(out, 0); // no table entries
    } else {
        out.extend_from_slice(b"JUNK");
        put_u32(out, DS64_PAYLOAD);
        out.extend_from_slice(&[0; DS64_PAYLOAD as usize]);
    }

    let bytes_per_sample = params.bytes_per_sample() as u16;
    let block_align = params.channels * bytes_per_sample;
    let bits = bytes_per_sample * 8;
    let base_tag = if params.is_float() {
        WAVE_FORMAT_IEEE_FLOAT
    } else {
        WAVE_FORMAT_PCM
    };
    out.extend_from_slice(b"fmt ");
    put_u32(out, params.fmt_payload_len());
    put_u16(
        out,
        if params.is_extensible() {
            WAVE_FORMAT_EXTENSIBLE
        } else {
            base_tag
        },
    );
    put_u16(out, params.channels);
    put_u32(out, params.sample_rate);
    put_u32(out, params.sample_rate * u32::from(block_align));
    put_u16(out, block_align);
    put_u16(out, bits);
    if params.is_extensible() {
        put_u16(out, 22); // cbSize
        put_u16(out, bits); // valid bits per sample
        put_u32(out, channel_mask(params.channels));
        put_u16(out, base_tag);
        out.extend_from_slice(&SUBTYPE_GUID_TAIL);
    } else if params.is_float() {
        put_u16(out, 0); // cbSize
    }

    if params.has_fact() {
        out.extend_from_slice(b"fact");
        put_u32(out, 4);
        put_u32(out, u32::try_from(frames).unwrap_or(u32::MAX));
    }

    out.extend_from_slice(b"data");
    put_u32(out, u32_or_marker(data_bytes));
    debug_assert_eq!(out.len() as u64, header_len);
}

/// Interleaves the valid frames of `block` into `out` (resized, not reallocated once it has
/// grown to the largest block) in the byte layout of `format`, converting through `quantizer`
/// (which counts clipped and non-finite samples).
fn interleave(
    block: &Block,
    format: WavSampleFormat,
    quantizer: &mut Quantizer,
    out: &mut Vec<u8>,
) {
    let channels = block.channel_count();
    let frames = block.frames();
    let bytes_per_sample = match format {
        WavSampleFormat::Pcm16 => 2,
        WavSampleFormat::Pcm24 => 3,
        WavSampleFormat::Float32 => 4,
    };
    let stride = channels * bytes_per_sample;
    out.resize(frames * stride, 0);
    for ch in 0..channels {
        let samples = block.channel(ch);
        let dest = out[ch * bytes_per_sample..].chunks_mut(stride);
        match format {
            WavSampleFormat::Pcm16 => {
                for (d, &x) in dest.zip(samples) {
                    d[..2].copy_from_slice(&quantizer.pcm16(x).to_le_bytes());
                }
            }
            WavSampleFormat::Pcm24 => {
                for (d, &x) in dest.zip(samples) {
                    d[..3].copy_from_slice(&quantizer.pcm24(x).to_le_bytes()[..3]);
                }
            }
            // Float output keeps values beyond full scale (that headroom is why one picks it),
            // up to the hygiene limit; NaN/Inf never reach the file.
            WavSampleFormat::Float32 => {
                for (d, &x) in dest.zip(samples) {
                    d[..4].copy_from_slice(&quantizer.guard_float(x).to_le_bytes());
                }
            }
        }
    }
}

/// Streaming WAV / RF64 encoder: 16- or 24-bit PCM (clipped, rounded to nearest, no dither) or
/// 32-bit float. The header is written with placeholder sizes first and patched at
/// [`Encoder::finish`].
pub struct WavEncoder {
    params: WavParams,
    sink: Box<dyn ByteSink>,
    frames: u64,
    data_bytes: u64,
    /// Interleaved bytes of the current block; grows to the largest block, then is reused.
    buffer: Vec<u8>,
    /// The sample conversion, with its clip counts.
    quantizer: Quantizer,
}

impl WavEncoder {
    /// Writes the placeholder header and returns the encoder.
    ///
    /// # Errors
    /// [`EncodeError::Unsupported`] for more than 65 535 channels; sink errors.
    pub fn new(
        spec: StreamSpec,
        sample_format: WavSampleFormat,
        mut sink: Box<dyn ByteSink>,
    ) -> Result<Self, EncodeError> {
        let channels = u16::try_from(spec.channels)
            .ok()
            .filter(|&c| c > 0)
            .ok_or_else(|| {
                EncodeError::unsupported(
                    FORMAT,
                    format!("cannot write a stream of {} channels", spec.channels),
                )
            })?;
        let params = WavParams {
            sample_rate: spec.sample_rate,
            channels,
            sample_format,
        };
        let mut buffer = Vec::new();
        build_header(&params, 0, 0, &mut buffer);
        sink.write_all(&buffer)?;
        Ok(Self {
            params,
            sink,
            frames: 0,
            data_bytes: 0,
            buffer,
            quantizer: Quantizer::default(),
        })
    }
}

impl Encoder for WavEncoder {
    fn write(&mut self, block: &Block) -> Result<(), EncodeError> {
        if block.channel_count() != usize::from(self.params.channels) {
            return Err(EncodeError::ChannelMismatch {
                format: FORMAT,
                expected: usize::from(self.params.channels),
                got: block.channel_count(),
            });
        }
        interleave(
            block,
            self.params.sample_format,
            &mut self.quantizer,
            &mut self.buffer,
        );
        self.sink.write_all(&self.buffer)?;
        self.frames += block.frames() as u64;
        self.data_bytes += self.buffer.len() as u64;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<EncodedOutput, EncodeError> {
        let mut this = *self;
        if this.data_bytes % 2 == 1 {
            this.sink.write_all(&[0])?;
        }
        build_header(&this.params, this.data_bytes, this.frames, &mut this.buffer);
        this.sink.patch(0, &this.buffer)?;
        let bytes = this.sink.commit()?;
        Ok(EncodedOutput {
            frames: this.frames,
            sample_rate: this.params.sample_rate,
            channels: usize::from(this.params.channels),
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

    fn u32_at(bytes: &[u8], offset: usize) -> u32 {
        u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap())
    }
    fn u64_at(bytes: &[u8], offset: usize) -> u64 {
        u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap())
    }

    const STEREO16: WavParams = WavParams {
        sample_rate: 44_100,
        channels: 2,
        sample_format: WavSampleFormat::Pcm16,
    };

    #[test]
    fn small_stream_header_has_sizes_at_the_right_offsets() {
        let spec = StreamSpec {
            sample_rate: 44_100,
            channels: 2,
        };
        let sink = MemorySink::new();
        let output = sink.output();
        let mut enc =
            Box::new(WavEncoder::new(spec, WavSampleFormat::Pcm16, Box::new(sink)).unwrap());
        let block = Block::from_channels(&[&[0.5, -0.5, 1.0], &[0.0, 2.0, -2.0]]);
        enc.write(&block).unwrap();
        let out = enc.finish().unwrap();
        assert_eq!(out.frames, 3);
        assert_eq!(out.bytes, 80 + 12);
        let b = output.take().unwrap();
        assert_eq!(b.len(), 92);
        assert_eq!(&b[0..4], b"RIFF");
        assert_eq!(u32_at(&b, 4), 92 - 8);
        assert_eq!(&b[8..12], b"WAVE");
        assert_eq!(&b[12..16], b"JUNK");
        assert_eq!(u32_at(&b, 16), 28);
        assert_eq!(&b[48..52], b"fmt ");
        assert_eq!(u32_at(&b, 52), 16);
        assert_eq!(u16::from_le_bytes([b[56], b[57]]), WAVE_FORMAT_PCM);
        assert_eq!(u16::from_le_bytes([b[58], b[59]]), 2);
        assert_eq!(u32_at(&b, 60), 44_100);
        assert_eq!(u32_at(&b, 64), 44_100 * 4);
        assert_eq!(u16::from_le_bytes([b[68], b[69]]), 4);
        assert_eq!(u16::from_le_bytes([b[70], b[71]]), 16);
        assert_eq!(&b[72..76], b"data");
        assert_eq!(u32_at(&b, 76), 12);
        // Interleaved L R L R L R, clipped.
        let samples: Vec<i16> = b[80..]
            .chunks(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(samples, [16384, 0, -16384, 32767, 32767, -32768]);
    }

    #[test]
    fn odd_data_size_gets_a_pad_byte_outside_the_data_chunk() {
        let spec = StreamSpec {
            sample_rate: 8_000,
            channels: 1,
        };
        let sink = MemorySink::new();
        let output = sink.output();
        let mut enc =
            Box::new(WavEncoder::new(spec, WavSampleFormat::Pcm24, Box::new(sink)).unwrap());
        enc.write(&Block::from_channels(&[&[0.25]])).unwrap();
        enc.finish().unwrap();
        let b = output.take().unwrap();
        assert_eq!(b.len(), 80 + 3 + 1);
        assert_eq!(u32_at(&b, 76), 3, "data size excludes the pad byte");
        assert_eq!(u32_at(&b, 4), (b.len() - 8) as u32, "RIFF size includes it");
        assert_eq!(
            &b[80..83],
            &Quantizer::default().pcm24(0.25).to_le_bytes()[..3]
        );
    }

    #[test]
    fn float_header_has_fact_chunk_and_extensible_for_surround() {
        let mut h = Vec::new();
        let float_stereo = WavParams {
            sample_format: WavSampleFormat::Float32,
            ..STEREO16
        };
        build_header(&float_stereo, 800, 100, &mut h);
        assert_eq!(h.len(), 94);
        assert_eq!(u32_at(&h, 52), 18);
        assert_eq!(u16::from_le_bytes([h[56], h[57]]), WAVE_FORMAT_IEEE_FLOAT);
        assert_eq!(&h[74..78], b"fact");
        assert_eq!(u32_at(&h, 82), 100);
        assert_eq!(&h[86..90], b"data");
        assert_eq!(u32_at(&h, 90), 800);

        let surround = WavParams {
            channels: 6,
            sample_format: WavSampleFormat::Pcm24,
            ..STEREO16
        };
        build_header(&surround, 0, 0, &mut h);
        assert_eq!(u32_at(&h, 52), 40);
        assert_eq!(u16::from_le_bytes([h[56], h[57]]), WAVE_FORMAT_EXTENSIBLE);
        assert_eq!(u32_at(&h, 76), 0x3F, "5.1 channel mask");
        assert_eq!(u16::from_le_bytes([h[80], h[81]]), WAVE_FORMAT_PCM);
        assert_eq!(&h[96..100], b"data");
        assert_eq!(h.len(), surround.header_len());
    }

    #[test]
    fn sizes_beyond_4_gib_switch_to_rf64_with_ds64() {
        let mut h = Vec::new();
        let data: u64 = 5 * 1024 * 1024 * 1024 + 4; // 5 GiB + one frame
        let frames = data / 4;
        build_header(&STEREO16, data, frames, &mut h);
        assert_eq!(
            h.len(),
            80,
            "RF64 header has the same length as the RIFF one"
        );
        assert_eq!(&h[0..4], b"RF64");
        assert_eq!(u32_at(&h, 4), u32::MAX);
        assert_eq!(&h[12..16], b"ds64");
        assert_eq!(u32_at(&h, 16), 28);
        assert_eq!(u64_at(&h, 20), 80 - 8 + data);
        assert_eq!(u64_at(&h, 28), data);
        assert_eq!(u64_at(&h, 36), frames);
        assert_eq!(u32_at(&h, 44), 0);
        assert_eq!(&h[72..76], b"data");
        assert_eq!(u32_at(&h, 76), u32::MAX);

        // Largest whole-frame size whose RIFF size still fits: plain RIFF.
        let data = (u64::from(u32::MAX) - 72) / 4 * 4;
        build_header(&STEREO16, data, data / 4, &mut h);
        assert_eq!(&h[0..4], b"RIFF");
        assert_eq!(u64::from(u32_at(&h, 4)), 72 + data);
        assert_eq!(u64::from(u32_at(&h, 76)), data);
        // One frame more and the RIFF size no longer fits.
        build_header(&STEREO16, data + 4, data / 4 + 1, &mut h);
        assert_eq!(&h[0..4], b"RF64");
    }

    #[test]
    fn interleave_converts_through_the_quantizer() {
        let mut out = Vec::new();
        let mut q = Quantizer::default();
        interleave(
            &Block::from_channels(&[&[-1.0, 2.0], &[0.5, f32::NAN]]),
            WavSampleFormat::Pcm24,
            &mut q,
            &mut out,
        );
        // −2^23, +2^22, then the clipped +full scale and NaN → 0.
        assert_eq!(
            out,
            [0x00, 0x00, 0x80, 0x00, 0x00, 0x40, 0xFF, 0xFF, 0x7F, 0x00, 0x00, 0x00]
        );
        assert_eq!((q.clipped, q.non_finite), (1, 1));
        interleave(
            &Block::from_channels(&[&[f32::INFINITY], &[3.0]]),
            WavSampleFormat::Float32,
            &mut q,
            &mut out,
        );
        assert_eq!(out[..4], 0.0f32.to_le_bytes());
        assert_eq!(out[4..], 3.0f32.to_le_bytes(), "float keeps headroom");
        assert_eq!((q.clipped, q.non_finite), (1, 2));
    }
}
