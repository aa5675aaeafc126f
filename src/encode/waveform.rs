//! Waveform peaks in BBC audiowaveform's data format (version 2, `.dat` binary or `.json`), the
//! format peaks.js and the npm `waveform-data` package read: one minimum/maximum pair per
//! channel for every `samples_per_pixel` frames, 8- or 16-bit.
//!
//! Written by hand because the format is a 24-byte header and an array of integers, and no
//! maintained crate writes it. The values are computed as audiowaveform 1.x computes them (its
//! `WaveformGenerator` and `WaveformBuffer`), so a front end sees the same picture whichever
//! tool made the file:
//! - each sample becomes a 16-bit integer (`round(x · 32768)`, clamped to −32768…32767: a
//!   16-bit source gives back its own samples);
//! - without `split_channels`, the channels of a frame are summed as integers and divided by
//!   the channel count, truncating toward zero (one output channel);
//! - 8-bit data is the 16-bit value divided by 256, truncating toward zero;
//! - the last pixel holds what is left (fewer frames), so `length` = ⌈frames ÷
//!   samples_per_pixel⌉.
//!
//! Streaming and constant memory: pixels go to the sink as they complete, through a 64 KiB
//! buffer. The binary header's `length` is written last with [`ByteSink::patch`]; the JSON
//! object puts `length` after `data` (member order does not matter in JSON), so nothing is
//! patched.

use super::EncodeError;
use crate::audio::{round_to_i64, Block, ByteSink, StreamSpec, MAX_CHANNELS};
use serde::{Deserialize, Serialize};
use std::io::Write as _;

/// Frames per pixel when a request gives none (audiowaveform's default zoom).
pub const DEFAULT_SAMPLES_PER_PIXEL: u32 = 256;
/// The smallest zoom audiowaveform accepts.
pub const MIN_SAMPLES_PER_PIXEL: u32 = 2;
/// The largest zoom accepted: ≈ 22 s per pixel at 48 kHz, far coarser than any display needs.
pub const MAX_SAMPLES_PER_PIXEL: u32 = 1 << 20;

/// Bytes of pixel data gathered before they are written to the sink.
const BUFFER_BYTES: usize = 64 * 1024;
/// Offset of the `length` field in the binary header.
const DAT_LENGTH_OFFSET: u64 = 16;

/// The two encodings of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WaveformFormat {
    /// Binary, little-endian (`.dat`): the compact one, what peaks.js fetches by default.
    #[default]
    Dat,
    /// A JSON object (`.json`).
    Json,
}

impl WaveformFormat {
    /// The file extension (`dat`, `json`).
    pub fn extension(self) -> &'static str {
        match self {
            WaveformFormat::Dat => "dat",
            WaveformFormat::Json => "json",
        }
    }

    /// `dat` or `json` (case-insensitive); `None` otherwise.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "dat" => Some(WaveformFormat::Dat),
            "json" => Some(WaveformFormat::Json),
            _ => None,
        }
    }
}

/// What waveform data to write (the job spec's `waveform` object, the CLI's `--waveform*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaveformSettings {
    /// `dat` (default) or `json`.
    #[serde(default)]
    pub format: WaveformFormat,
    /// Input frames per min/max pair ([`MIN_SAMPLES_PER_PIXEL`]…[`MAX_SAMPLES_PER_PIXEL`],
    /// default [`DEFAULT_SAMPLES_PER_PIXEL`]).
    #[serde(default = "default_samples_per_pixel")]
    pub samples_per_pixel: u32,
    /// 8 or 16 (default 16): bits per value.
    #[serde(default = "default_bits")]
    pub bits: u8,
    /// One min/max pair per input channel instead of one for the channels mixed (default
    /// false, as audiowaveform).
    #[serde(default)]
    pub split_channels: bool,
}

fn default_samples_per_pixel() -> u32 {
    DEFAULT_SAMPLES_PER_PIXEL
}

fn default_bits() -> u8 {
    16
}

impl Default for WaveformSettings {
    fn default() -> Self {
        Self {
            format: WaveformFormat::Dat,
            samples_per_pixel: DEFAULT_SAMPLES_PER_PIXEL,
            bits: 16,
            split_channels: false,
        }
    }
}

impl WaveformSettings {
    /// Checks the ranges; the error names the field (`samples_per_pixel: …`).
    ///
    /// # Errors
    /// A zoom outside [`MIN_SAMPLES_PER_PIXEL`]…[`MAX_SAMPLES_PER_PIXEL`], bits other than 8
    /// or 16.
    pub fn validate(&self) -> Result<(), String> {
        if !(MIN_SAMPLES_PER_PIXEL..=MAX_SAMPLES_PER_PIXEL).contains(&self.samples_per_pixel) {
            return Err(format!(
                "samples_per_pixel: {} is outside {MIN_SAMPLES_PER_PIXEL}..={MAX_SAMPLES_PER_PIXEL}",
                self.samples_per_pixel
            ));
        }
        if self.bits != 8 && self.bits != 16 {
            return Err(format!("bits: {} is not 8 or 16", self.bits));
        }
        Ok(())
    }

    /// Channels of data written for a stream of `channels`.
    pub fn output_channels(&self, channels: usize) -> usize {
        if self.split_channels {
            channels
        } else {
            1
        }
    }
}

/// What a finished waveform file holds, for the manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaveformSummary {
    /// Min/max pairs per channel (the header's `length`).
    pub length: u64,
    /// Channels of data.
    pub channels: usize,
    /// Sample rate of the audio it describes.
    pub sample_rate: u32,
    /// Frames it describes.
    pub frames: u64,
    /// Size in bytes.
    pub bytes: u64,
}

/// Computes peaks of a stream block by block and writes them into a sink. Call
/// [`WaveformWriter::write`] for every block in order, then [`WaveformWriter::finish`]; dropping
/// it unfinished aborts the sink (nothing appears).
pub struct WaveformWriter {
    settings: WaveformSettings,
    spec: StreamSpec,
    sink: Box<dyn ByteSink>,
    /// Running minimum and maximum (16-bit scale) of the pixel being filled, per output channel.
    mins: Vec<i32>,
    maxs: Vec<i32>,
    /// Frames in the pixel being filled.
    filled: u32,
    /// Pixels completed.
    pixels: u64,
    /// Frames seen.
    frames: u64,
    /// Bytes not yet written to the sink (at most [`BUFFER_BYTES`] plus one pixel).
    buffer: Vec<u8>,
    /// JSON: a value was written, so the next one needs a comma before it.
    json_separator: bool,
}

impl WaveformWriter {
    /// A writer for a stream of `spec` into `sink`; writes the header at once.
    ///
    /// # Errors
    /// Settings out of range ([`EncodeError::Unsupported`]), or the sink fails.
    pub fn new(
        settings: WaveformSettings,
        spec: StreamSpec,
        sink: Box<dyn ByteSink>,
    ) -> Result<Self, EncodeError> {
        settings
            .validate()
            .map_err(|reason| EncodeError::unsupported("waveform", reason))?;
        let out_channels = settings.output_channels(spec.channels);
        let mut writer = Self {
            settings,
            spec,
            sink,
            mins: vec![i32::MAX; out_channels],
            maxs: vec![i32::MIN; out_channels],
            filled: 0,
            pixels: 0,
            frames: 0,
            buffer: Vec::with_capacity(BUFFER_BYTES + 256),
            json_separator: false,
        };
        writer.write_header();
        Ok(writer)
    }

    fn write_header(&mut self) {
        let channels = self.mins.len();
        let WaveformSettings {
            samples_per_pixel,
            bits,
            ..
        } = self.settings;
        let rate = self.spec.sample_rate;
        match self.settings.format {
            WaveformFormat::Dat => {
                let flags: u32 = if bits == 8 { 1 } else { 0 };
                self.buffer.extend_from_slice(&2i32.to_le_bytes());
                self.buffer.extend_from_slice(&flags.to_le_bytes());
                self.buffer.extend_from_slice(&(rate as i32).to_le_bytes());
                self.buffer
                    .extend_from_slice(&(samples_per_pixel as i32).to_le_bytes());
                self.buffer.extend_from_slice(&0u32.to_le_bytes()); // length, patched last
                self.buffer
                    .extend_from_slice(&(channels as i32).to_le_bytes());
            }
            WaveformFormat::Json => {
                // Writing into a Vec cannot fail.
                let _ = write!(
                    self.buffer,
                    "{{\"version\":2,\"channels\":{channels},\"sample_rate\":{rate},\
                     \"samples_per_pixel\":{samples_per_pixel},\"bits\":{bits},\"data\":["
                );
            }
        }
    }

    /// Adds the valid frames of `block`.
    ///
    /// # Errors
    /// The block's channels differ from the stream's, the sink fails, or the file would hold
    /// more pixels than its 32-bit `length` field can count.
    pub fn write(&mut self, block: &Block) -> Result<(), EncodeError> {
        if block.channel_count() != self.spec.channels {
            return Err(EncodeError::ChannelMismatch {
                format: "waveform",
                expected: self.spec.channels,
                got: block.channel_count(),
            });
        }
        let frames = block.frames();
        let spp = self.settings.samples_per_pixel as usize;
        let mut offset = 0;
        while offset < frames {
            let run = (spp - self.filled as usize).min(frames - offset);
            self.accumulate(block, offset, run);
            offset += run;
            self.filled += run as u32;
            if self.filled as usize == spp {
                self.emit_pixel()?;
            }
        }
        self.frames += frames as u64;
        Ok(())
    }

    /// Folds frames `offset..offset + len` of `block` into the current pixel.
    fn accumulate(&mut self, block: &Block, offset: usize, len: usize) {
        if self.mins.len() == block.channel_count() {
            // One pixel row per channel: the conversion to 16 bits is monotonic, so the
            // extremes of the converted samples are the converted extremes.
            for (ch, samples) in block.channels().enumerate() {
                let (low, high) = samples[offset..offset + len]
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
                        (lo.min(x), hi.max(x))
                    });
                self.mins[ch] = self.mins[ch].min(to_16_bit(low));
                self.maxs[ch] = self.maxs[ch].max(to_16_bit(high));
            }
        } else {
            // Channels mixed as audiowaveform mixes them: integer sum ÷ channels, per frame.
            // The channel slices are taken once (a stream has at most MAX_CHANNELS), not per
            // frame: the per-frame iterator over channels cost a third of a one-shot WAV job.
            let mut slices: [&[f32]; MAX_CHANNELS] = [&[]; MAX_CHANNELS];
            let channels = block.channel_count().min(MAX_CHANNELS);
            for (slot, samples) in slices.iter_mut().zip(block.channels()) {
                *slot = &samples[offset..offset + len];
            }
            let slices = &slices[..channels];
            let divisor = channels as i32;
            let (mut low, mut high) = (self.mins[0], self.maxs[0]);
            for frame in 0..len {
                let sum: i32 = slices.iter().map(|c| to_16_bit(c[frame])).sum();
                let mixed = sum / divisor;
                low = low.min(mixed);
                high = high.max(mixed);
            }
            self.mins[0] = low;
            self.maxs[0] = high;
        }
    }

    /// Appends the current pixel's pairs and starts the next pixel.
    fn emit_pixel(&mut self) -> Result<(), EncodeError> {
        if self.pixels >= u64::from(u32::MAX) {
            return Err(EncodeError::unsupported(
                "waveform",
                format!(
                    "more than {} pixels at samples_per_pixel {}: choose a larger samples_per_pixel",
                    u32::MAX,
                    self.settings.samples_per_pixel
                ),
            ));
        }
        let eight_bit = self.settings.bits == 8;
        for ch in 0..self.mins.len() {
            for value in [self.mins[ch], self.maxs[ch]] {
                let value = if eight_bit { value / 256 } else { value };
                match self.settings.format {
                    WaveformFormat::Dat if eight_bit => self.buffer.push(value as i8 as u8),
                    WaveformFormat::Dat => {
                        self.buffer.extend_from_slice(&(value as i16).to_le_bytes())
                    }
                    WaveformFormat::Json => {
                        // A separator before every value but the array's first.
                        if self.json_separator {
                            self.buffer.push(b',');
                        }
                        self.json_separator = true;
                        let _ = write!(self.buffer, "{value}");
                    }
                }
            }
            self.mins[ch] = i32::MAX;
            self.maxs[ch] = i32::MIN;
        }
        self.pixels += 1;
        self.filled = 0;
        if self.buffer.len() >= BUFFER_BYTES {
            self.flush_buffer()?;
        }
        Ok(())
    }

    fn flush_buffer(&mut self) -> Result<(), EncodeError> {
        self.sink.write_all(&self.buffer)?;
        self.buffer.clear();
        Ok(())
    }

    /// Writes the last, partial pixel and the totals, and commits the sink.
    ///
    /// # Errors
    /// The sink fails to write, patch or commit; nothing is then published.
    pub fn finish(mut self) -> Result<WaveformSummary, EncodeError> {
        if self.filled > 0 {
            self.emit_pixel()?;
        }
        match self.settings.format {
            WaveformFormat::Dat => {
                self.flush_buffer()?;
                let length = self.pixels as u32; // emit_pixel bounds it
                self.sink.patch(DAT_LENGTH_OFFSET, &length.to_le_bytes())?;
            }
            WaveformFormat::Json => {
                let _ = writeln!(self.buffer, "],\"length\":{}}}", self.pixels);
                self.flush_buffer()?;
            }
        }
        let bytes = self.sink.commit()?;
        Ok(WaveformSummary {
            length: self.pixels,
            channels: self.mins.len(),
            sample_rate: self.spec.sample_rate,
            frames: self.frames,
            bytes,
        })
    }
}

/// A sample on audiowaveform's 16-bit scale: `round(x · 32768)` clamped to the i16 range (the
/// samples reaching here are finite: decoded blocks are sanitized).
#[inline]
fn to_16_bit(x: f32) -> i32 {
    round_to_i64(f64::from(x) * 32768.0).clamp(-32768, 32767) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::MemorySink;

    /// Runs `channels` (planar samples) through a writer in blocks of `block_frames`.
    fn waveform(settings: WaveformSettings, channels: &[Vec<f32>], block_frames: usize) -> Vec<u8> {
        let spec = StreamSpec::new(48_000, channels.len()).unwrap();
        let sink = MemorySink::new();
        let output = sink.output();
        let mut writer = WaveformWriter::new(settings, spec, Box::new(sink)).unwrap();
        let frames = channels[0].len();
        let mut start = 0;
        while start < frames {
            let end = (start + block_frames).min(frames);
            let slices: Vec<&[f32]> = channels.iter().map(|c| &c[start..end]).collect();
            writer.write(&Block::from_channels(&slices)).unwrap();
            start = end;
        }
        let summary = writer.finish().unwrap();
        let bytes = output.take().unwrap();
        assert_eq!(summary.bytes, bytes.len() as u64);
        assert_eq!(summary.frames, frames as u64);
        bytes
    }

    fn le_i32(bytes: &[u8], at: usize) -> i32 {
        i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    /// Samples from 16-bit values (what a 16-bit source decodes to).
    fn from_16_bit(values: &[i32]) -> Vec<f32> {
        values.iter().map(|&v| v as f32 / 32768.0).collect()
    }

    #[test]
    fn binary_header_and_pairs_with_a_partial_last_pixel() {
        let settings = WaveformSettings {
            samples_per_pixel: 4,
            ..WaveformSettings::default()
        };
        let samples = from_16_bit(&[1, -2, 3, 4, -32768, 32767, 0, 0, 7, -9]);
        let bytes = waveform(settings, &[samples], 3);
        assert_eq!(le_i32(&bytes, 0), 2, "version");
        assert_eq!(le_i32(&bytes, 4), 0, "flags: 16-bit");
        assert_eq!(le_i32(&bytes, 8), 48_000, "sample rate");
        assert_eq!(le_i32(&bytes, 12), 4, "samples per pixel");
        assert_eq!(le_i32(&bytes, 16), 3, "length = ceil(10 / 4)");
        assert_eq!(le_i32(&bytes, 20), 1, "channels");
        let values: Vec<i16> = bytes[24..]
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(values, [-2, 4, -32768, 32767, -9, 7]);
    }

    #[test]
    fn block_size_does_not_change_the_file() {
        let signal: Vec<f32> = (0..10_000)
            .map(|i| ((i as f32) * 0.013).sin() * 0.9)
            .collect();
        let other: Vec<f32> = signal.iter().map(|x| -0.5 * x).collect();
        for settings in [
            WaveformSettings::default(),
            WaveformSettings {
                format: WaveformFormat::Json,
                samples_per_pixel: 300,
                bits: 8,
                split_channels: true,
            },
        ] {
            let channels = [signal.clone(), other.clone()];
            let whole = waveform(settings, &channels, 10_000);
            for block in [1, 7, 256, 4096] {
                assert_eq!(waveform(settings, &channels, block), whole, "{block}");
            }
        }
    }

    #[test]
    fn channels_are_mixed_as_integers_truncating_toward_zero() {
        // (16384 + -8191) / 2 = 4096 (4096.5 truncated); (-3 + 0) / 2 = -1.
        let left = from_16_bit(&[16384, -3]);
        let right = from_16_bit(&[-8191, 0]);
        let settings = WaveformSettings {
            samples_per_pixel: 2,
            ..WaveformSettings::default()
        };
        let bytes = waveform(settings, &[left.clone(), right.clone()], 2);
        assert_eq!(le_i32(&bytes, 20), 1);
        let pair: Vec<i16> = bytes[24..]
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(pair, [-1, 4096]);
        // Split: one pair per channel, interleaved by pixel.
        let split = WaveformSettings {
            split_channels: true,
            ..settings
        };
        let bytes = waveform(split, &[left, right], 2);
        assert_eq!(le_i32(&bytes, 20), 2);
        let pairs: Vec<i16> = bytes[24..]
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(pairs, [-3, 16384, -8191, 0]);
    }

    #[test]
    fn eight_bit_values_divide_by_256_toward_zero_and_json_matches_binary() {
        let samples = from_16_bit(&[-300, 255, -32768, 32767, 256, -256]);
        let eight = WaveformSettings {
            samples_per_pixel: 2,
            bits: 8,
            ..WaveformSettings::default()
        };
        let bytes = waveform(eight, std::slice::from_ref(&samples), 5);
        assert_eq!(le_i32(&bytes, 4), 1, "flags: 8-bit");
        let values: Vec<i8> = bytes[24..].iter().map(|&b| b as i8).collect();
        assert_eq!(values, [-1, 0, -128, 127, -1, 1]);

        let json = waveform(
            WaveformSettings {
                format: WaveformFormat::Json,
                ..eight
            },
            &[samples],
            5,
        );
        let parsed: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "version": 2, "channels": 1, "sample_rate": 48000, "samples_per_pixel": 2,
                "bits": 8, "length": 3, "data": [-1, 0, -128, 127, -1, 1]
            })
        );
    }

    #[test]
    fn values_beyond_full_scale_clamp_to_16_bits() {
        let bytes = waveform(
            WaveformSettings {
                samples_per_pixel: 2,
                ..WaveformSettings::default()
            },
            &[vec![-3.0, 2.5]],
            2,
        );
        let pair: Vec<i16> = bytes[24..]
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(pair, [-32768, 32767]);
    }

    #[test]
    fn settings_out_of_range_are_named() {
        let bad = |settings: WaveformSettings| settings.validate().unwrap_err();
        assert!(bad(WaveformSettings {
            samples_per_pixel: 1,
            ..WaveformSettings::default()
        })
        .starts_with("samples_per_pixel: 1 is outside"));
        assert_eq!(
            bad(WaveformSettings {
                bits: 12,
                ..WaveformSettings::default()
            }),
            "bits: 12 is not 8 or 16"
        );
        let parsed: Result<WaveformSettings, _> = serde_json::from_str(r#"{"zoom": 3}"#);
        assert!(parsed
            .unwrap_err()
            .to_string()
            .contains("unknown field `zoom`"));
        let parsed: WaveformSettings = serde_json::from_str(r#"{"format":"json"}"#).unwrap();
        assert_eq!(parsed.samples_per_pixel, DEFAULT_SAMPLES_PER_PIXEL);
        assert_eq!(parsed.bits, 16);
    }
}
