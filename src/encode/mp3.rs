//! MP3 output through LAME 3.100 (`mp3lame-encoder`), CBR or VBR, with an exact-length LAME tag.
//!
//! LAME reserves its first frame for the Xing/"Info" + LAME tag, which carries the frame count,
//! the encoder delay and the padding: without it decoders output about a thousand extra frames
//! of priming and padding. The tag is only known after the final flush, so it is written over
//! frame 0 with [`ByteSink::patch`] (no ID3v2 tag is written, so frame 0 starts at byte 0).
//!
//! The output sample rate is always chosen here and set explicitly, never left to LAME's
//! bitrate-dependent guess, so the manifest states the real rate: MPEG rates pass through
//! unchanged; others are resampled by LAME to the next MPEG rate up (above 48 kHz: 44.1 or
//! 48 kHz, whichever divides the input rate).

use super::pcm::Quantizer;
use super::{EncodeError, EncodedOutput, Encoder, Mp3Rate};
use crate::audio::{Block, StreamSpec};
use crate::audio::{ByteSink, PATCH_WINDOW};
use mp3lame_encoder::{
    max_required_buffer_size, Bitrate, Builder, DualPcm, FlushGap, Mode, MonoPcm, Quality, VbrMode,
};
use std::num::NonZeroU32;

const FORMAT: &str = "mp3";

/// The sample rates MPEG-1/2/2.5 Layer III can carry.
const MPEG_RATES: [u32; 9] = [
    8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000,
];

/// The output rate for an input rate: itself when MPEG can carry it, else the rate LAME
/// resamples to (see the module docs).
pub fn output_sample_rate(input: u32) -> u32 {
    if input > 48_000 {
        return if input.is_multiple_of(11_025) {
            44_100
        } else {
            48_000
        };
    }
    MPEG_RATES
        .iter()
        .copied()
        .find(|&r| r >= input)
        .unwrap_or(48_000)
}

/// The CBR bitrates LAME offers, kbit/s.
pub const CBR_KBPS: [u32; 16] = [
    8, 16, 24, 32, 40, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
];

/// The CBR bitrates the MPEG version of `out_rate` allows (MPEG-1 at 32–48 kHz: 32–320 kbps;
/// MPEG-2/2.5 below: 8–160 kbps), with the version's name.
fn cbr_range(out_rate: u32) -> (&'static str, std::ops::RangeInclusive<u32>) {
    if out_rate >= 32_000 {
        ("MPEG-1", 32..=320)
    } else {
        ("MPEG-2", 8..=160)
    }
}

/// The allowed CBR bitrate at `out_rate` nearest to `kbps` (the lower one on a tie), among
/// those whose frames hold the LAME tag.
pub fn nearest_cbr_kbps(kbps: u32, out_rate: u32) -> u32 {
    let (_, range) = cbr_range(out_rate);
    CBR_KBPS
        .iter()
        .copied()
        .filter(|k| range.contains(k))
        .filter(|&k| cbr_frame_bytes(k, out_rate) >= TAG_FRAME_BYTES_ANY)
        .min_by_key(|&k| k.abs_diff(kbps))
        .unwrap_or(*range.start())
}

/// Bytes a frame needs to hold LAME's Info + LAME tag: header and side info,
/// 120 bytes of Xing fields and 36 of LAME extension (`VbrTag.c`'s `LAMEHEADERSIZE`). LAME
/// silently writes no tag into a smaller CBR frame, and the stream's decoded length would then
/// include the encoder delay and padding; such rates are refused up front.
fn tag_frame_bytes(out_rate: u32, channels: usize) -> u32 {
    let side_info = match (out_rate >= 32_000, channels == 1) {
        (true, false) => 32,
        (true, true) | (false, false) => 17,
        (false, true) => 9,
    };
    4 + side_info + 156
}

/// [`tag_frame_bytes`] for the largest side info (stereo MPEG-1): where the channel count is not
/// known yet, a rate that fits this fits every stream.
const TAG_FRAME_BYTES_ANY: u32 = 4 + 32 + 156;

/// The size of a CBR frame at `kbps` and `out_rate`, without padding (LAME's formula).
fn cbr_frame_bytes(kbps: u32, out_rate: u32) -> u32 {
    let coefficient = if out_rate >= 32_000 { 144_000 } else { 72_000 };
    coefficient * kbps / out_rate
}

/// Why `kbps` is refused when it is not one of [`CBR_KBPS`]: one message wherever it is checked.
pub(crate) fn not_a_cbr_rate(kbps: u32) -> String {
    format!(
        "{kbps} kbps is not an MP3 CBR rate (allowed {})",
        CBR_KBPS.map(|k| k.to_string()).join(", ")
    )
}

/// LAME's CBR bitrate for `kbps`, checked against what the MPEG version of `out_rate` allows.
fn cbr_bitrate(kbps: u32, out_rate: u32, channels: usize) -> Result<Bitrate, EncodeError> {
    let bitrate = match kbps {
        8 => Bitrate::Kbps8,
        16 => Bitrate::Kbps16,
        24 => Bitrate::Kbps24,
        32 => Bitrate::Kbps32,
        40 => Bitrate::Kbps40,
        48 => Bitrate::Kbps48,
        64 => Bitrate::Kbps64,
        80 => Bitrate::Kbps80,
        96 => Bitrate::Kbps96,
        112 => Bitrate::Kbps112,
        128 => Bitrate::Kbps128,
        160 => Bitrate::Kbps160,
        192 => Bitrate::Kbps192,
        224 => Bitrate::Kbps224,
        256 => Bitrate::Kbps256,
        320 => Bitrate::Kbps320,
        _ => return Err(EncodeError::unsupported(FORMAT, not_a_cbr_rate(kbps))),
    };
    let (version, range) = cbr_range(out_rate);
    let need = tag_frame_bytes(out_rate, channels);
    if range.contains(&kbps) && cbr_frame_bytes(kbps, out_rate) < need {
        let least = CBR_KBPS
            .iter()
            .copied()
            .filter(|&k| range.contains(&k))
            .find(|&k| cbr_frame_bytes(k, out_rate) >= need)
            .unwrap_or(*range.end());
        return Err(EncodeError::unsupported(
            FORMAT,
            format!(
                "{kbps} kbps at {out_rate} Hz makes {}-byte frames, too small for the LAME tag \
                 that gives the MP3 its exact length ({need} bytes): use at least \
                 {least} kbps, or VBR",
                cbr_frame_bytes(kbps, out_rate)
            ),
        ));
    }
    if !range.contains(&kbps) {
        return Err(EncodeError::unsupported(
            FORMAT,
            format!(
                "{kbps} kbps is not available at {out_rate} Hz ({version} allows {}–{} kbps)",
                range.start(),
                range.end()
            ),
        ));
    }
    Ok(bitrate)
}

fn vbr_quality(quality: u8) -> Result<Quality, EncodeError> {
    Ok(match quality {
        0 => Quality::Best,
        1 => Quality::SecondBest,
        2 => Quality::NearBest,
        3 => Quality::VeryNice,
        4 => Quality::Nice,
        5 => Quality::Good,
        6 => Quality::Decent,
        7 => Quality::Ok,
        8 => Quality::SecondWorst,
        9 => Quality::Worst,
        _ => {
            return Err(EncodeError::unsupported(
                FORMAT,
                format!("VBR quality must be 0 (best) to 9 (smallest), not {quality}"),
            ))
        }
    })
}

/// Checks that MP3 can carry `spec` with `rate` (see [`Mp3Encoder::new`]).
pub(crate) fn check(spec: StreamSpec, rate: Mp3Rate) -> Result<(), EncodeError> {
    if !(1..=2).contains(&spec.channels) {
        return Err(EncodeError::unsupported(
            FORMAT,
            format!(
                "MP3 carries at most 2 channels; the stream has {}: use wav or flac",
                spec.channels
            ),
        ));
    }
    match rate.fitted(spec.sample_rate) {
        Mp3Rate::Cbr { kbps } | Mp3Rate::CbrPreferred { kbps } => {
            cbr_bitrate(kbps, output_sample_rate(spec.sample_rate), spec.channels).map(drop)
        }
        Mp3Rate::Vbr { quality } => vbr_quality(quality).map(drop),
    }
}

mod frame;
mod layout;
mod parallel;
mod tag;

pub use parallel::{JoinStats, ParallelMp3Encoder};

/// What a LAME instance is configured with: the stream and the rate setting. Every encoder of
/// one output (the single one, or each segment's and the tag template's in parallel encoding)
/// is built from the same settings by `build_lame`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LameSettings {
    /// The PCM stream the encoder is fed.
    pub spec: StreamSpec,
    /// CBR or VBR.
    pub rate: Mp3Rate,
}

/// A LAME instance for `settings` (writing its own Info tag frame or not) and its output rate.
pub(crate) fn build_lame(
    settings: &LameSettings,
    write_tag: bool,
) -> Result<(mp3lame_encoder::Encoder, u32), EncodeError> {
    let LameSettings { spec, rate } = *settings;
    check(spec, rate)?;
    let (channels, mode) = if spec.channels == 1 {
        (1u8, Mode::Mono)
    } else {
        (2u8, Mode::JointStereo)
    };
    let out_rate = output_sample_rate(spec.sample_rate);
    let build_error = |what: &str, e: mp3lame_encoder::BuildError| {
        EncodeError::codec(FORMAT, format!("cannot set {what}: {e}"))
    };
    let mut builder = Builder::new()
        .ok_or_else(|| EncodeError::codec(FORMAT, "LAME could not allocate its state"))?;
    builder
        .set_num_channels(channels)
        .map_err(|e| build_error("channels", e))?;
    builder
        .set_sample_rate(spec.sample_rate)
        .map_err(|e| build_error("input sample rate", e))?;
    builder
        .set_output_sample_rate(NonZeroU32::new(out_rate))
        .map_err(|e| build_error("output sample rate", e))?;
    builder
        .set_mode(mode)
        .map_err(|e| build_error("channel mode", e))?;
    builder
        .set_quality(Quality::Good)
        .map_err(|e| build_error("quality", e))?;
    match rate.fitted(spec.sample_rate) {
        Mp3Rate::Cbr { kbps } | Mp3Rate::CbrPreferred { kbps } => {
            let bitrate = cbr_bitrate(kbps, out_rate, spec.channels)?;
            builder
                .set_vbr_mode(VbrMode::Off)
                .map_err(|e| build_error("CBR mode", e))?;
            builder
                .set_brate(bitrate)
                .map_err(|e| build_error("bitrate", e))?;
        }
        Mp3Rate::Vbr { quality } => {
            let quality = vbr_quality(quality)?;
            builder
                .set_vbr_mode(VbrMode::Mtrh)
                .map_err(|e| build_error("VBR mode", e))?;
            builder
                .set_vbr_quality(quality)
                .map_err(|e| build_error("VBR quality", e))?;
        }
    }
    builder
        .set_to_write_vbr_tag(write_tag)
        .map_err(|e| build_error("LAME tag", e))?;
    let lame = builder.build().map_err(|e| {
        EncodeError::unsupported(
            FORMAT,
            format!(
                "LAME rejects {} Hz {}-channel input with these settings: {e}",
                spec.sample_rate, spec.channels
            ),
        )
    })?;
    Ok((lame, out_rate))
}

/// The Info tag frame LAME writes for one frame of silence with `settings`: the template whose
/// fixed fields [`tag::InfoTag`] keeps.
pub(crate) fn template_tag(settings: &LameSettings) -> Result<Vec<u8>, EncodeError> {
    let (mut lame, _) = build_lame(settings, true)?;
    let silence = vec![0f32; 1152];
    let mut out = Vec::with_capacity(max_required_buffer_size(silence.len()));
    let result = if settings.spec.channels == 1 {
        lame.encode_to_vec(MonoPcm(&silence[..]), &mut out)
    } else {
        lame.encode_to_vec(
            DualPcm {
                left: &silence[..],
                right: &silence[..],
            },
            &mut out,
        )
    };
    result.map_err(|e| EncodeError::codec(FORMAT, e))?;
    out.reserve(max_required_buffer_size(0));
    lame.flush_to_vec::<FlushGap>(&mut out)
        .map_err(|e| EncodeError::codec(FORMAT, e))?;
    let mut tag = Vec::with_capacity(lame.lame_tag_size());
    lame.lame_tag_encode_to_vec(&mut tag)
        .ok_or_else(|| EncodeError::codec(FORMAT, "LAME produced no LAME tag"))?;
    Ok(tag)
}

/// Streaming MP3 encoder: mono or stereo, CBR or VBR (`-V` 0–9, MTRH), LAME algorithm quality
/// 5 ("good", LAME's default), LAME tag patched over frame 0 at finish.
pub struct Mp3Encoder {
    lame: mp3lame_encoder::Encoder,
    sink: Box<dyn ByteSink>,
    channels: usize,
    in_rate: u32,
    out_rate: u32,
    frames: u64,
    /// Encoded bytes of the current block; grows to the largest block's need, then is reused.
    out: Vec<u8>,
    /// Guards LAME's input: it aborts the process on a NaN (`calc_energy: Assertion 'el >= 0'`),
    /// so no non-finite or absurd sample may reach it.
    quantizer: Quantizer,
    /// Repaired copies of a block's channels, used only when a block is not clean; grow to the
    /// largest such block, then are reused.
    repaired: [Vec<f32>; 2],
}

impl Mp3Encoder {
    /// Configures LAME for `spec` and `rate`.
    ///
    /// # Errors
    /// [`EncodeError::Unsupported`] for more than two channels, a bitrate that is not a LAME CBR
    /// rate or not available at the output sample rate, or a VBR quality above 9.
    pub fn new(
        spec: StreamSpec,
        rate: Mp3Rate,
        sink: Box<dyn ByteSink>,
    ) -> Result<Self, EncodeError> {
        let (lame, out_rate) = build_lame(&LameSettings { spec, rate }, true)?;
        Ok(Self {
            lame,
            sink,
            channels: spec.channels,
            in_rate: spec.sample_rate,
            out_rate,
            frames: 0,
            out: Vec::new(),
            quantizer: Quantizer::default(),
            repaired: [Vec::new(), Vec::new()],
        })
    }

    /// The sample rate of the MP3 (differs from the input's when LAME resamples).
    pub fn output_rate(&self) -> u32 {
        self.out_rate
    }
}

impl Encoder for Mp3Encoder {
    fn write(&mut self, block: &Block) -> Result<(), EncodeError> {
        if block.channel_count() != self.channels {
            return Err(EncodeError::ChannelMismatch {
                format: FORMAT,
                expected: self.channels,
                got: block.channel_count(),
            });
        }
        self.out.clear();
        // LAME's documented worst case: 1.25 × samples + 7200 bytes. `reserve` allocates only
        // when a block is larger than every one before.
        self.out.reserve(max_required_buffer_size(block.frames()));
        let clean = (0..self.channels).all(|ch| crate::audio::is_clean(block.channel(ch)));
        if !clean {
            for ch in 0..self.channels {
                let repaired = &mut self.repaired[ch];
                repaired.clear();
                repaired.extend_from_slice(block.channel(ch));
                self.quantizer.count(crate::audio::sanitize(repaired));
            }
        }
        let (left, right): (&[f32], &[f32]) = match (clean, self.channels) {
            (true, 1) => (block.channel(0), &[]),
            (true, _) => (block.channel(0), block.channel(1)),
            (false, _) => (&self.repaired[0], &self.repaired[1]),
        };
        let result = if self.channels == 1 {
            self.lame.encode_to_vec(MonoPcm(left), &mut self.out)
        } else {
            self.lame
                .encode_to_vec(DualPcm { left, right }, &mut self.out)
        };
        result.map_err(|e| EncodeError::codec(FORMAT, e))?;
        self.sink.write_all(&self.out)?;
        self.frames += block.frames() as u64;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<EncodedOutput, EncodeError> {
        let mut this = *self;
        // `FlushGap` is `lame_encode_flush`: it feeds zeros through the whole pipeline and
        // records the end padding in the tag. `FlushNoGap` (`lame_encode_flush_nogap`) only
        // empties the bit reservoir, losing the last ≈ 1.5 frames of audio and leaving the
        // padding field unset, so the tag would state the wrong length.
        this.out.clear();
        this.out.reserve(max_required_buffer_size(0));
        this.lame
            .flush_to_vec::<FlushGap>(&mut this.out)
            .map_err(|e| EncodeError::codec(FORMAT, e))?;
        this.sink.write_all(&this.out)?;

        this.out.clear();
        this.out.reserve(this.lame.lame_tag_size());
        let tag_len = this
            .lame
            .lame_tag_encode_to_vec(&mut this.out)
            .ok_or_else(|| EncodeError::codec(FORMAT, "LAME produced no LAME tag"))?
            .get();
        debug_assert!(tag_len as u64 <= PATCH_WINDOW);
        this.sink.patch(0, &this.out)?;

        // With resampling the output length is what the tag says; without, it is the input's.
        let frames = if this.in_rate == this.out_rate {
            this.frames
        } else {
            tag_frames(&this.out).ok_or_else(|| {
                EncodeError::codec(FORMAT, "cannot read the frame count from the LAME tag")
            })?
        };
        let bytes = this.sink.commit()?;
        Ok(EncodedOutput {
            frames,
            sample_rate: this.out_rate,
            channels: this.channels,
            bytes,
            clipped_samples: this.quantizer.clipped,
            non_finite_samples: this.quantizer.non_finite,
        })
    }
}

/// The number of PCM frames a gapless decoder outputs for a stream whose first frame is `tag`:
/// Xing frame count × samples per frame − encoder delay − padding.
pub(crate) fn tag_frames(tag: &[u8]) -> Option<u64> {
    let header = tag.get(..4)?;
    if header[0] != 0xFF || header[1] & 0xE0 != 0xE0 {
        return None;
    }
    let mpeg1 = header[1] & 0x18 == 0x18;
    let mono = header[3] & 0xC0 == 0xC0;
    let side_info = match (mpeg1, mono) {
        (true, false) => 32,
        (true, true) | (false, false) => 17,
        (false, true) => 9,
    };
    let samples_per_frame: u64 = if mpeg1 { 1152 } else { 576 };
    let xing = 4 + side_info;
    let id = tag.get(xing..xing + 4)?;
    if id != b"Xing" && id != b"Info" {
        return None;
    }
    let be32 = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(tag.get(at..at + 4)?.try_into().ok()?))
    };
    let flags = be32(xing + 4)?;
    let mut at = xing + 8;
    if flags & 1 == 0 {
        return None;
    }
    let frame_count = u64::from(be32(at)?);
    at += 4;
    if flags & 2 != 0 {
        at += 4;
    }
    if flags & 4 != 0 {
        at += 100;
    }
    if flags & 8 != 0 {
        at += 4;
    }
    // LAME extension: 9-byte version, then 12 bytes of fields, then delay and padding (12 bits
    // each).
    if tag.get(at..at + 4)? != b"LAME" {
        return None;
    }
    let dp = tag.get(at + 21..at + 24)?;
    let delay = (u64::from(dp[0]) << 4) | (u64::from(dp[1]) >> 4);
    let padding = (u64::from(dp[1] & 0x0F) << 8) | u64::from(dp[2]);
    (frame_count * samples_per_frame).checked_sub(delay + padding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::MemorySink;

    fn spec(sample_rate: u32, channels: usize) -> StreamSpec {
        StreamSpec {
            sample_rate,
            channels,
        }
    }

    fn encode(spec: StreamSpec, rate: Mp3Rate, frames: usize) -> (EncodedOutput, Vec<u8>) {
        let sink = MemorySink::new();
        let output = sink.output();
        let mut enc = Box::new(Mp3Encoder::new(spec, rate, Box::new(sink)).unwrap());
        let tone: Vec<f32> = (0..frames).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let channels: Vec<&[f32]> = (0..spec.channels).map(|_| &tone[..]).collect();
        for chunk in (0..frames).step_by(1000) {
            let end = (chunk + 1000).min(frames);
            let parts: Vec<&[f32]> = channels.iter().map(|c| &c[chunk..end]).collect();
            enc.write(&Block::from_channels(&parts)).unwrap();
        }
        let out = enc.finish().unwrap();
        (out, output.take().unwrap())
    }

    #[test]
    fn lame_tag_is_patched_over_frame_zero_and_states_the_input_length() {
        for rate in [Mp3Rate::Cbr { kbps: 128 }, Mp3Rate::Vbr { quality: 2 }] {
            let (out, bytes) = encode(spec(44_100, 2), rate, 44_100 + 123);
            assert_eq!(out.frames, 44_100 + 123);
            assert_eq!(out.bytes, bytes.len() as u64);
            assert_eq!(tag_frames(&bytes), Some(out.frames), "{rate:?}");
        }
    }

    #[test]
    fn resampled_output_reports_the_real_rate_and_length() {
        let (out, bytes) = encode(spec(96_000, 1), Mp3Rate::Cbr { kbps: 64 }, 96_000);
        assert_eq!(out.sample_rate, 48_000);
        assert_eq!(Some(out.frames), tag_frames(&bytes));
        assert!(out.frames.abs_diff(48_000) <= 2, "{}", out.frames);
    }

    #[test]
    fn rejects_what_mp3_cannot_carry() {
        let err = |spec, rate| {
            Mp3Encoder::new(spec, rate, Box::new(MemorySink::new()))
                .err()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            err(spec(48_000, 6), Mp3Rate::default()),
            "mp3: MP3 carries at most 2 channels; the stream has 6: use wav or flac"
        );
        assert!(err(spec(44_100, 2), Mp3Rate::Cbr { kbps: 100 }).contains("not an MP3 CBR rate"));
        assert!(err(spec(22_050, 2), Mp3Rate::Cbr { kbps: 320 }).contains("MPEG-2 allows"));
        assert!(err(spec(44_100, 2), Mp3Rate::Vbr { quality: 10 }).contains("0 (best) to 9"));
        // LAME would drop its tag (and the exact length) from frames this small.
        assert_eq!(
            err(spec(44_100, 2), Mp3Rate::Cbr { kbps: 48 }),
            "mp3: 48 kbps at 44100 Hz makes 156-byte frames, too small for the LAME tag that \
             gives the MP3 its exact length (192 bytes): use at least 64 kbps, or VBR"
        );
        // Mono MPEG-2.5 needs 169 bytes: 24 kbps at 8 kHz (216) holds it, 16 (144) does not.
        assert!(err(spec(8_000, 1), Mp3Rate::Cbr { kbps: 16 }).contains("use at least 24 kbps"));
        assert!(check(spec(8_000, 1), Mp3Rate::Cbr { kbps: 24 }).is_ok());
        // The preferred default never lands on such a rate.
        assert_eq!(nearest_cbr_kbps(8, 44_100), 64);
    }

    #[test]
    fn output_rates() {
        assert_eq!(output_sample_rate(44_100), 44_100);
        assert_eq!(output_sample_rate(8_000), 8_000);
        assert_eq!(output_sample_rate(37_800), 44_100);
        assert_eq!(output_sample_rate(88_200), 44_100);
        assert_eq!(output_sample_rate(96_000), 48_000);
        assert_eq!(output_sample_rate(192_000), 48_000);
    }
}
