//! The Xing/"Info" + LAME tag for MP3 streams that LAME did not write in one piece: the
//! parallel encoder's joined segments now, lossless cuts later (issue 16).
//!
//! The tag's fixed fields (encoder version, quality, lowpass, flags, ABR rate, encoder delay,
//! misc, preset) depend only on the encoder settings, so they are taken from a *template*: the
//! tag LAME itself writes for a tiny stream encoded with the same settings. The fields that
//! describe the stream are then recomputed here exactly as LAME 3.100's `VbrTag.c` computes them
//! (frame count, byte count, the 100-entry seek table from LAME's 400-slot bag of running
//! bitrate sums, padding, music length, music CRC, tag CRC), so a stream written by one LAME
//! instance gets a tag identical byte for byte to LAME's own (tested below).

/// CRC-16/ARC (polynomial 0x8005 reflected), the CRC of LAME's music and tag CRC fields.
const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u16;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

fn crc16(mut crc: u16, bytes: &[u8]) -> u16 {
    for &b in bytes {
        crc = (crc >> 8) ^ CRC16_TABLE[usize::from((crc ^ u16::from(b)) as u8)];
    }
    crc
}

/// LAME's seek-table bag (`VBR_seek_info_t`): running sums of frame bitrates sampled every
/// `want` frames into 400 slots, halving the resolution whenever the slots fill.
#[derive(Debug, Clone)]
struct SeekBag {
    sum: u64,
    seen: u64,
    want: u64,
    bag: Vec<u64>,
}

const BAG_SLOTS: usize = 400;

impl SeekBag {
    fn new() -> Self {
        Self {
            sum: 0,
            seen: 0,
            want: 1,
            bag: Vec::with_capacity(BAG_SLOTS),
        }
    }

    /// `addVbr`.
    fn add(&mut self, kbps: u32) {
        self.sum += u64::from(kbps);
        self.seen += 1;
        if self.seen < self.want {
            return;
        }
        if self.bag.len() < BAG_SLOTS {
            self.bag.push(self.sum);
            self.seen = 0;
        }
        if self.bag.len() == BAG_SLOTS {
            for i in (1..BAG_SLOTS).step_by(2) {
                self.bag[i / 2] = self.bag[i];
            }
            self.want *= 2;
            self.bag.truncate(BAG_SLOTS / 2);
        }
    }

    /// `Xing_seek_table`: entry 0 stays 0.
    fn toc(&self) -> [u8; 100] {
        let mut toc = [0u8; 100];
        let pos = self.bag.len();
        if pos == 0 {
            return toc;
        }
        for (i, entry) in toc.iter_mut().enumerate().skip(1) {
            // LAME computes the index in f32 and the ratio in f32/f64 as below.
            let j = i as f32 / 100.0;
            let index = ((j * pos as f32).floor() as usize).min(pos - 1);
            let act = self.bag[index] as f32;
            let sum = self.sum as f32;
            *entry = ((256.0 * f64::from(act) / f64::from(sum)) as i64).min(255) as u8;
        }
        toc
    }
}

/// Builds the tag of a stream from its audio frames, as they are written.
#[derive(Debug, Clone)]
pub struct InfoTag {
    template: Vec<u8>,
    /// Offset of "Xing"/"Info".
    xing_at: usize,
    /// Offset of "LAME".
    lame_at: usize,
    frames: u32,
    audio_bytes: u64,
    music_crc: u16,
    bag: SeekBag,
    /// The mode extension bits of the last audio frame: LAME's tag header carries the last
    /// frame's (it writes the tag from the encoder's state after the flush).
    mode_extension: u8,
}

/// The template is not a tag this writer knows how to fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagError(pub String);

impl InfoTag {
    /// A writer whose fixed fields come from `template`, a LAME-written tag frame.
    ///
    /// # Errors
    /// The template lacks the Xing/Info header with all four fields or the LAME extension.
    pub fn from_template(template: Vec<u8>) -> Result<Self, TagError> {
        let header = super::frame::parse_header(&template)
            .ok_or_else(|| TagError("the template is not a Layer III frame".into()))?;
        let xing_at = header.head_len();
        let id = template.get(xing_at..xing_at + 4);
        if id != Some(b"Xing") && id != Some(b"Info") {
            return Err(TagError("the template has no Xing/Info header".into()));
        }
        let flags = template.get(xing_at + 4..xing_at + 8);
        if flags != Some(&[0, 0, 0, 0x0F]) {
            return Err(TagError("the template's Xing header lacks a field".into()));
        }
        let lame_at = xing_at + 8 + 4 + 4 + 100 + 4;
        if template.get(lame_at..lame_at + 4) != Some(b"LAME") || template.len() < lame_at + 36 {
            return Err(TagError("the template has no LAME extension".into()));
        }
        Ok(Self {
            template,
            xing_at,
            lame_at,
            frames: 0,
            audio_bytes: 0,
            music_crc: 0,
            bag: SeekBag::new(),
            mode_extension: 0,
        })
    }

    /// Bytes of the tag frame (the first frame of the stream, written as a placeholder first).
    pub fn frame_len(&self) -> usize {
        self.template.len()
    }

    /// The encoder delay the template states, in samples (576 for LAME).
    pub fn encoder_delay(&self) -> u64 {
        let dp = &self.template[self.lame_at + 21..self.lame_at + 24];
        (u64::from(dp[0]) << 4) | (u64::from(dp[1]) >> 4)
    }

    /// Accounts for one audio frame of `kbps` as written to the stream.
    pub fn add_frame(&mut self, frame: &[u8], kbps: u32) {
        self.frames += 1;
        self.audio_bytes += frame.len() as u64;
        self.music_crc = crc16(self.music_crc, frame);
        self.bag.add(kbps);
        if let Some(&mode) = frame.get(3) {
            self.mode_extension = mode & 0x30;
        }
    }

    /// Audio frames accounted so far.
    pub fn frames(&self) -> u64 {
        u64::from(self.frames)
    }

    /// The finished tag frame for a stream whose end padding is `padding` samples.
    pub fn finish(&self, padding: u64) -> Vec<u8> {
        let mut tag = self.template.clone();
        tag[3] = (tag[3] & !0x30) | self.mode_extension;
        let x = self.xing_at + 8;
        let stream_size = (self.audio_bytes + tag.len() as u64) as u32;
        tag[x..x + 4].copy_from_slice(&self.frames.to_be_bytes());
        tag[x + 4..x + 8].copy_from_slice(&stream_size.to_be_bytes());
        tag[x + 8..x + 108].copy_from_slice(&self.bag.toc());
        let l = self.lame_at;
        let padding = padding.min(0xFFF) as u16;
        tag[l + 22] = (tag[l + 22] & 0xF0) | (padding >> 8) as u8;
        tag[l + 23] = padding as u8;
        tag[l + 28..l + 32].copy_from_slice(&stream_size.to_be_bytes());
        tag[l + 32..l + 34].copy_from_slice(&self.music_crc.to_be_bytes());
        let crc = crc16(0, &tag[..l + 34]);
        tag[l + 34..l + 36].copy_from_slice(&crc.to_be_bytes());
        tag
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::parse_header;
    use super::super::{template_tag, LameSettings, Mp3Encoder};
    use super::*;
    use crate::audio::{Block, MemorySink, StreamSpec};
    use crate::encode::{Encoder, Mp3Rate};

    /// A single LAME encoder's stream of `frames` of a two-tone signal with a noise burst.
    fn lame_stream(settings: LameSettings, frames: usize) -> Vec<u8> {
        let sink = MemorySink::new();
        let output = sink.output();
        let mut enc =
            Box::new(Mp3Encoder::new(settings.spec, settings.rate, Box::new(sink)).unwrap());
        let mut seed = 1u32;
        let signal: Vec<f32> = (0..frames)
            .map(|i| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                let burst = if (i / 20_000) % 3 == 1 {
                    noise * 0.6
                } else {
                    0.0
                };
                (i as f32 * 0.031).sin() * 0.3 + (i as f32 * 0.0021).sin() * 0.2 + burst
            })
            .collect();
        let channels: Vec<&[f32]> = (0..settings.spec.channels).map(|_| &signal[..]).collect();
        for start in (0..frames).step_by(4096) {
            let end = (start + 4096).min(frames);
            let parts: Vec<&[f32]> = channels.iter().map(|c| &c[start..end]).collect();
            enc.write(&Block::from_channels(&parts)).unwrap();
        }
        enc.finish().unwrap();
        output.take().unwrap()
    }

    #[test]
    fn reproduces_lames_own_tag_byte_for_byte() {
        let cases = [
            (44_100, 2, Mp3Rate::Cbr { kbps: 192 }, 441_000 + 77),
            (44_100, 2, Mp3Rate::Vbr { quality: 2 }, 300_000),
            (48_000, 1, Mp3Rate::Cbr { kbps: 64 }, 1_000),
            (22_050, 1, Mp3Rate::Vbr { quality: 5 }, 100_000),
            // Long enough (> 400 frames) for LAME's seek bag to halve twice.
            (8_000, 1, Mp3Rate::Cbr { kbps: 32 }, 8_000 * 120),
        ];
        for (rate, channels, mp3_rate, frames) in cases {
            let settings = LameSettings {
                spec: StreamSpec {
                    sample_rate: rate,
                    channels,
                },
                rate: mp3_rate,
            };
            let stream = lame_stream(settings, frames);
            let mut tag = InfoTag::from_template(template_tag(&settings).unwrap()).unwrap();
            let tag_len = tag.frame_len();
            let mut at = tag_len;
            while at < stream.len() {
                let header = parse_header(&stream[at..]).unwrap();
                tag.add_frame(&stream[at..at + header.size], header.kbps);
                at += header.size;
            }
            let spf = if rate >= 32_000 { 1152 } else { 576 };
            let padding = tag.frames() * spf - tag.encoder_delay() - frames as u64;
            assert_eq!(
                tag.finish(padding),
                stream[..tag_len],
                "{rate} Hz {channels} ch {mp3_rate:?}"
            );
        }
    }

    #[test]
    fn crc16_is_crc_16_arc() {
        // The standard check value of CRC-16/ARC.
        assert_eq!(crc16(0, b"123456789"), 0xBB3D);
    }

    #[test]
    fn seek_bag_halves_like_lame() {
        let mut bag = SeekBag::new();
        for _ in 0..400 {
            bag.add(128);
        }
        // Full at 400 → halved to 200 slots, sampling every 2nd frame.
        assert_eq!((bag.bag.len(), bag.want), (200, 2));
        assert_eq!(bag.bag[0], 2 * 128);
        assert_eq!(bag.bag[199], 400 * 128);
    }
}
