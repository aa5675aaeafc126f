//! A one-shot split of a PCM WAV into WAV pieces of the same sample format gives pieces whose
//! audio bytes are a byte range of the source, byte for byte: 16- and 24-bit integer PCM and
//! 32-bit float, mono, stereo and 6 channels (WAVE_FORMAT_EXTENSIBLE), at 44.1 and 48 kHz, from
//! a source whose data chunk does not start at byte 44 (an application chunk of odd size comes first).
//!
//! The source is written here byte by byte (not by longwave's encoder), the pieces are made by
//! the `longwave` binary as a user runs it, and each piece's data chunk is looked up in the
//! source's data at a frame-aligned offset within a millisecond of the manifest's `start_ms`.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

/// The sample encodings a source is written in.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    Pcm16,
    Pcm24,
    Float32,
}

impl Encoding {
    fn bytes(self) -> usize {
        match self {
            Encoding::Pcm16 => 2,
            Encoding::Pcm24 => 3,
            Encoding::Float32 => 4,
        }
    }

    fn push(self, x: f32, out: &mut Vec<u8>) {
        match self {
            Encoding::Pcm16 => {
                let v = (x * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16;
                out.extend_from_slice(&v.to_le_bytes());
            }
            Encoding::Pcm24 => {
                let v = (f64::from(x) * 8_388_608.0)
                    .round()
                    .clamp(-8_388_608.0, 8_388_607.0) as i32;
                out.extend_from_slice(&v.to_le_bytes()[..3]);
            }
            Encoding::Float32 => out.extend_from_slice(&x.to_le_bytes()),
        }
    }
}

/// A WAV with an application chunk of odd size (padded) between `fmt ` and `data`; EXTENSIBLE for more
/// than two channels. Returns (file bytes, offset of the sample data).
fn source_wav(
    rate: u32,
    channels: u16,
    encoding: Encoding,
    interleaved: &[f32],
) -> (Vec<u8>, usize) {
    let mut data = Vec::with_capacity(interleaved.len() * encoding.bytes());
    for &x in interleaved {
        encoding.push(x, &mut data);
    }
    let bytes_per_sample = encoding.bytes() as u16;
    let tag: u16 = if matches!(encoding, Encoding::Float32) {
        3
    } else {
        1
    };
    let mut fmt = Vec::new();
    let extensible = channels > 2;
    fmt.extend_from_slice(&(if extensible { 0xFFFEu16 } else { tag }).to_le_bytes());
    fmt.extend_from_slice(&channels.to_le_bytes());
    fmt.extend_from_slice(&rate.to_le_bytes());
    fmt.extend_from_slice(&(rate * u32::from(channels * bytes_per_sample)).to_le_bytes());
    fmt.extend_from_slice(&(channels * bytes_per_sample).to_le_bytes());
    fmt.extend_from_slice(&(bytes_per_sample * 8).to_le_bytes());
    if extensible {
        fmt.extend_from_slice(&22u16.to_le_bytes());
        fmt.extend_from_slice(&(bytes_per_sample * 8).to_le_bytes());
        fmt.extend_from_slice(&0x3Fu32.to_le_bytes()); // 5.1
        fmt.extend_from_slice(&tag.to_le_bytes());
        fmt.extend_from_slice(&[
            0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
        ]);
    } else if tag == 3 {
        fmt.extend_from_slice(&0u16.to_le_bytes());
    }
    let list = b"take1"; // an application chunk of odd size, padded to 6
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    let riff_len = 4 + (8 + fmt.len()) + (8 + list.len() + 1) + (8 + data.len());
    out.extend_from_slice(&u32::try_from(riff_len).unwrap().to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&u32::try_from(fmt.len()).unwrap().to_le_bytes());
    out.extend_from_slice(&fmt);
    out.extend_from_slice(b"note");
    out.extend_from_slice(&u32::try_from(list.len()).unwrap().to_le_bytes());
    out.extend_from_slice(list);
    out.push(0);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
    let offset = out.len();
    out.extend_from_slice(&data);
    (out, offset)
}

/// The bytes of the `data` chunk of a WAV longwave wrote (after its `JUNK`/`fmt `/`fact`).
fn data_chunk(wav: &[u8]) -> &[u8] {
    let mut pos = 12;
    while pos + 8 <= wav.len() {
        let size = u32::from_le_bytes(wav[pos + 4..pos + 8].try_into().unwrap()) as usize;
        if &wav[pos..pos + 4] == b"data" {
            return &wav[pos + 8..pos + 8 + size];
        }
        pos += 8 + size + size % 2;
    }
    panic!("no data chunk");
}

/// Splits `source` with the one-shot preset and checks every piece against the source bytes;
/// returns (pieces, bytes compared).
fn check_split(
    dir: &Path,
    name: &str,
    rate: u32,
    channels: u16,
    encoding: Encoding,
) -> (usize, usize) {
    let signal = common::speech_bursts(rate, usize::from(channels), 16.0, 7);
    let (bytes, data_offset) = source_wav(rate, channels, encoding, &signal);
    let input = dir.join(format!("{name}.wav"));
    std::fs::write(&input, &bytes).unwrap();
    let source_data = &bytes[data_offset..];
    let out = dir.join(name);
    let run = common::longwave(&[
        "process",
        common::s(&input),
        "--preset",
        "oneshot",
        "-o",
        &format!("{}/", common::s(&out)),
        "--quiet",
    ]);
    assert!(
        run.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let outputs = manifest["outputs"].as_array().unwrap();
    assert!(outputs.len() >= 5, "{name}: {} pieces", outputs.len());
    let frame_bytes = usize::from(channels) * encoding.bytes();
    let mut compared = 0;
    for output in outputs {
        let path = output["path"].as_str().unwrap();
        let piece = std::fs::read(path).unwrap();
        let audio = data_chunk(&piece);
        let frames = output["frames"].as_u64().unwrap() as usize;
        assert_eq!(audio.len(), frames * frame_bytes, "{name} {path}");
        // The piece's first frame is within a millisecond of start_ms (which is rounded).
        let start_ms = output["start_ms"].as_u64().unwrap() as usize;
        let near = start_ms * rate as usize / 1000;
        let window = rate as usize / 1000 + 1;
        let found = (near.saturating_sub(window)..=near + window).find(|&frame| {
            let at = frame * frame_bytes;
            source_data.get(at..at + audio.len()) == Some(audio)
        });
        assert!(
            found.is_some(),
            "{name} {path}: its {frames} frames are not the source's bytes near {start_ms} ms"
        );
        compared += audio.len();
    }
    (outputs.len(), compared)
}

#[test]
fn wav_pieces_are_byte_ranges_of_the_source() {
    let dir = tempfile::tempdir().unwrap();
    for (name, rate, channels, encoding) in [
        ("s16-stereo-44k", 44_100, 2, Encoding::Pcm16),
        ("s16-mono-48k", 48_000, 1, Encoding::Pcm16),
        ("s24-stereo-48k", 48_000, 2, Encoding::Pcm24),
        ("s24-6ch-44k", 44_100, 6, Encoding::Pcm24),
        ("f32-stereo-44k", 44_100, 2, Encoding::Float32),
    ] {
        let (pieces, compared) = check_split(dir.path(), name, rate, channels, encoding);
        eprintln!("{name}: {pieces} pieces, {compared} bytes identical to the source's");
    }
}
