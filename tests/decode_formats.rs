//! Decoding every supported format end to end: exact frame counts (gapless), level of a known
//! sine, rechunking into full blocks, and a clear error for every kind of bad input.
//!
//! Fixtures are generated with ffmpeg at test time into `target/test-fixtures/` (cached; written
//! under a temporary name and renamed so parallel tests do not race). Real-world files come from
//! `tests/fixtures/pydub` (pydub's test data, MIT).

use std::path::{Path, PathBuf};
use std::process::Command;

use longwave::audio::Block;
use longwave::decode::{AudioDecoder, DecodeError, DecodeOptions, SourceInfo};

/// The test signal: a 440 Hz sine at −6 dBFS peak (RMS −9.03 dBFS), 2.5 s.
const SINE_SECONDS: f64 = 2.5;
const EXPECTED_RMS_DB: f64 = -9.03;

fn fixture_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-fixtures");
    std::fs::create_dir_all(&dir).expect("create target/test-fixtures");
    dir
}

fn pydub(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pydub")
        .join(name)
}

fn require_ffmpeg() {
    let ok = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "ffmpeg is required to generate the decode fixtures but was not found on PATH: \
         run scripts/setup-test-env.sh"
    );
}

/// Runs ffmpeg with `args` (everything between `-y` and the output path) unless `name` exists.
fn generate(name: &str, args: &[&str]) -> PathBuf {
    require_ffmpeg();
    let path = fixture_dir().join(name);
    if path.exists() {
        return path;
    }
    // Keep the extension last so ffmpeg picks the right muxer.
    let tmp = fixture_dir().join(format!(".{}-{name}", std::process::id()));
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&tmp)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg failed for {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &path).expect("rename fixture");
    path
}

/// The lavfi input args for the −6 dBFS sine (the `sine` source is at 1/8 full scale, so ×4),
/// then the filter (an output option: extra inputs must come before [`sine_filter`]).
fn sine_input(rate: u32, seconds: f64) -> Vec<String> {
    vec![
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("sine=frequency=440:sample_rate={rate}:duration={seconds}"),
    ]
}

/// `-af` for [`sine_input`]: gain to −6 dBFS and the same signal on every channel (no pan law).
fn sine_filter(channels: usize) -> Vec<String> {
    let layout = match channels {
        1 => "mono|c0=c0".to_owned(),
        2 => "stereo|c0=c0|c1=c0".to_owned(),
        n => {
            let map: Vec<String> = (0..n).map(|c| format!("c{c}=c0")).collect();
            format!("{n}c|{}", map.join("|"))
        }
    };
    vec!["-af".into(), format!("volume=4,pan={layout}")]
}

fn sine_fixture(name: &str, rate: u32, channels: usize, codec_args: &[&str]) -> PathBuf {
    let mut args = sine_input(rate, SINE_SECONDS);
    args.extend(sine_filter(channels));
    args.extend(codec_args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    generate(name, &refs)
}

/// Result of decoding a whole file.
struct Decoded {
    info: SourceInfo,
    frames: u64,
    /// RMS in dBFS of each channel over the middle second.
    middle_rms_db: Vec<f64>,
}

/// Decodes `path` to the end in blocks of `capacity`, checking the block contract on the way.
fn decode(path: &Path, capacity: usize) -> Result<Decoded, DecodeError> {
    let mut decoder = AudioDecoder::open_file(path, DecodeOptions::default())?;
    let info = decoder.info().clone();
    let channels = info.spec.channels;
    let rate = u64::from(info.spec.sample_rate);
    let mut block = Block::new(channels, capacity);
    // Unknown length: assume the sine fixture's (the level is only checked for those).
    let total_hint = info.frames.unwrap_or((SINE_SECONDS * rate as f64) as u64);
    let middle = total_hint / 2;
    let window = middle.saturating_sub(rate / 2)..middle + rate / 2;
    let mut sums = vec![0.0f64; channels];
    let mut counted = 0u64;
    let mut frames = 0u64;
    let mut short_blocks = 0;
    loop {
        let n = decoder.fill(&mut block)?;
        assert_eq!(n, block.frames());
        if n == 0 {
            break;
        }
        assert_eq!(block.start_frame(), frames, "blocks are contiguous");
        if n < capacity {
            short_blocks += 1;
        }
        for i in 0..n {
            let index = frames + i as u64;
            if window.contains(&index) {
                for (ch, sum) in sums.iter_mut().enumerate() {
                    let s = f64::from(block.channel(ch)[i]);
                    *sum += s * s;
                }
                counted += 1;
            }
        }
        frames += n as u64;
    }
    assert!(short_blocks <= 1, "only the last block may be short");
    assert_eq!(decoder.fill(&mut block)?, 0, "end is sticky");
    assert_eq!(decoder.frames_decoded(), frames);
    let middle_rms_db = sums
        .iter()
        .map(|s| 10.0 * (s / counted.max(1) as f64).log10())
        .collect();
    Ok(Decoded {
        info,
        frames,
        middle_rms_db,
    })
}

/// Decodes a generated sine fixture and checks format, exact length and level.
fn check_sine(path: &Path, container: &str, codec: &str, rate: u32, channels: usize) -> Decoded {
    check_sine_with_padding(path, container, codec, rate, channels, 0)
}

/// [`check_sine`] for containers that cannot say where the audio ends: the length may exceed the
/// exact one by up to `max_padding` frames (never fall short).
fn check_sine_with_padding(
    path: &Path,
    container: &str,
    codec: &str,
    rate: u32,
    channels: usize,
    max_padding: u64,
) -> Decoded {
    let decoded = decode(path, 4096).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let info = &decoded.info;
    assert_eq!(info.container, container, "{}", path.display());
    assert_eq!(info.codec, codec, "{}", path.display());
    assert_eq!(info.spec.sample_rate, rate);
    assert_eq!(info.spec.channels, channels);
    let expected = (f64::from(rate) * SINE_SECONDS).round() as u64;
    assert!(
        (expected..=expected + max_padding).contains(&decoded.frames),
        "{}: {} frames, expected {expected} (+{max_padding} allowed)",
        path.display(),
        decoded.frames
    );
    if let Some(frames) = info.frames {
        assert_eq!(frames, expected, "{}: announced length", path.display());
    }
    for (ch, db) in decoded.middle_rms_db.iter().enumerate() {
        assert!(
            (db - EXPECTED_RMS_DB).abs() < 0.1,
            "{} channel {ch}: RMS {db:.3} dBFS, expected {EXPECTED_RMS_DB}",
            path.display()
        );
    }
    decoded
}

#[test]
fn wav_pcm_variants() {
    for (name, codec_name, ffcodec, bits) in [
        ("sine_s16.wav", "pcm_s16le", "pcm_s16le", 16),
        ("sine_s24.wav", "pcm_s24le", "pcm_s24le", 24),
        ("sine_s32.wav", "pcm_s32le", "pcm_s32le", 32),
        ("sine_f32.wav", "pcm_f32le", "pcm_f32le", 32),
        ("sine_u8.wav", "pcm_u8", "pcm_u8", 8),
    ] {
        let path = sine_fixture(name, 44_100, 2, &["-c:a", ffcodec]);
        let decoded = check_sine(&path, "wav", codec_name, 44_100, 2);
        assert_eq!(decoded.info.bits_per_sample, Some(bits), "{name}");
    }
}

#[test]
fn wav_channel_counts_and_rates() {
    let six = sine_fixture("sine_6ch_48k.wav", 48_000, 6, &["-c:a", "pcm_s16le"]);
    check_sine(&six, "wav", "pcm_s16le", 48_000, 6);
    let mono = sine_fixture("sine_mono_8k.wav", 8_000, 1, &["-c:a", "pcm_s16le"]);
    check_sine(&mono, "wav", "pcm_s16le", 8_000, 1);
    let hi = sine_fixture("sine_96k.flac", 96_000, 2, &["-c:a", "flac"]);
    check_sine(&hi, "flac", "flac", 96_000, 2);
}

#[test]
fn mp3_cbr_and_vbr_are_gapless() {
    // 320k, not 128k: at 128k LAME itself lowers this sine by about 0.5 dB (ffmpeg's own decode
    // measures the same), which would fail the 0.1 dB level check for reasons not ours.
    let cbr = sine_fixture(
        "sine_cbr320.mp3",
        44_100,
        2,
        &["-c:a", "libmp3lame", "-b:a", "320k"],
    );
    check_sine(&cbr, "mp3", "mp3", 44_100, 2);
    let vbr = sine_fixture(
        "sine_vbr.mp3",
        44_100,
        2,
        &["-c:a", "libmp3lame", "-q:a", "2"],
    );
    check_sine(&vbr, "mp3", "mp3", 44_100, 2);
}

#[test]
fn aac_m4a_faststart_and_moov_at_end_are_trimmed_exactly() {
    let fast = sine_fixture(
        "sine_faststart.m4a",
        44_100,
        2,
        &["-c:a", "aac", "-b:a", "192k", "-movflags", "+faststart"],
    );
    check_sine(&fast, "mp4", "aac", 44_100, 2);
    let end = sine_fixture(
        "sine_moov_end.m4a",
        44_100,
        2,
        &["-c:a", "aac", "-b:a", "192k"],
    );
    check_sine(&end, "mp4", "aac", 44_100, 2);
}

#[test]
fn one_second_aac_matches_ffprobe_exactly() {
    let mut args = sine_input(44_100, 1.0);
    args.extend(sine_filter(2));
    args.extend(["-c:a", "aac", "-b:a", "128k"].map(String::from));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let path = generate("sine_1s.m4a", &refs);
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=duration",
        ])
        .args(["-of", "default=nw=1:nk=1"])
        .arg(&path)
        .output()
        .expect("run ffprobe");
    let seconds: f64 = String::from_utf8_lossy(&probe.stdout)
        .trim()
        .parse()
        .expect("duration");
    let decoded = decode(&path, 1000).unwrap();
    assert_eq!(decoded.frames, 44_100);
    assert_eq!(
        decoded.frames,
        (seconds * 44_100.0).round() as u64,
        "ffprobe says {seconds} s"
    );
}

#[test]
fn flac_16_and_24_bit() {
    let f16 = sine_fixture(
        "sine_16.flac",
        44_100,
        2,
        &["-c:a", "flac", "-sample_fmt", "s16"],
    );
    assert_eq!(
        check_sine(&f16, "flac", "flac", 44_100, 2)
            .info
            .bits_per_sample,
        Some(16)
    );
    let f24 = sine_fixture(
        "sine_24.flac",
        44_100,
        2,
        &[
            "-c:a",
            "flac",
            "-sample_fmt",
            "s32",
            "-bits_per_raw_sample",
            "24",
        ],
    );
    assert_eq!(
        check_sine(&f24, "flac", "flac", 44_100, 2)
            .info
            .bits_per_sample,
        Some(24)
    );
}

#[test]
fn ogg_vorbis() {
    let path = sine_fixture("sine.ogg", 44_100, 2, &["-c:a", "libvorbis", "-q:a", "6"]);
    check_sine(&path, "ogg", "vorbis", 44_100, 2);
}

#[test]
fn video_containers_use_their_audio_track() {
    let video = |codec: &'static str| {
        [
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x64:rate=10:duration=2.5",
            "-map",
            "0:a",
            "-map",
            "1:v",
            "-c:v",
            codec,
        ]
    };
    let mut mp4_args: Vec<String> = sine_input(44_100, SINE_SECONDS);
    mp4_args.extend(video("libx264").map(String::from));
    mp4_args.extend(sine_filter(2));
    mp4_args.extend(["-c:a", "aac", "-b:a", "192k"].map(String::from));
    let refs: Vec<&str> = mp4_args.iter().map(String::as_str).collect();
    let mp4 = generate("sine_video.mp4", &refs);
    check_sine(&mp4, "mp4", "aac", 44_100, 2);

    for (name, acodec, codec) in [
        ("sine_flac.mkv", "flac", "flac"),
        ("sine_vorbis.mkv", "libvorbis", "vorbis"),
    ] {
        let mut args: Vec<String> = sine_input(44_100, SINE_SECONDS);
        args.extend(video("mpeg4").map(String::from));
        args.extend(sine_filter(2));
        args.extend(["-c:a", acodec].map(String::from));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mkv = generate(name, &refs);
        // Vorbis in Matroska carries no sample-exact end (only a millisecond segment duration
        // that covers the video too), so the last packet's padding stays: measured +918 frames,
        // the same count ffmpeg decodes. FLAC frames carry exact sizes.
        let padding = if codec == "vorbis" { 2048 } else { 0 };
        check_sine_with_padding(&mkv, "mkv", codec, 44_100, 2, padding);
    }
}

#[test]
fn real_world_files() {
    // Same M4A bytes under two names: probing is by content, not extension.
    for name in ["format_test.m4a", "wrong_extension.aac"] {
        let d = decode(&pydub(name), 4096).unwrap();
        assert_eq!(
            (d.info.container.as_str(), d.info.codec.as_str()),
            ("mp4", "aac")
        );
        assert_eq!((d.info.spec.sample_rate, d.info.spec.channels), (44_100, 1));
        // No edit list and no iTunSMPB: 425984 raw frames − 1024 priming (ffmpeg: 425984).
        assert_eq!(d.frames, 424_960, "{name}");
    }
    let d = decode(&pydub("creative_common.mp4"), 4096).unwrap();
    assert_eq!((d.info.spec.sample_rate, d.info.spec.channels), (48_000, 2));
    // ffprobe: duration_ts 108541 (edit list applied).
    assert_eq!(d.frames, 108_541);

    let d = decode(&pydub("test1.wav"), 4096).unwrap();
    assert_eq!(d.frames, 320_303);
    assert_eq!(d.info.frames, Some(320_303));
    let d = decode(&pydub("test1-8bit.wav"), 4096).unwrap();
    assert_eq!(d.frames, 320_303);
    let d = decode(&pydub("test1-24bit.wav"), 4096).unwrap();
    assert_eq!(d.frames, 441_000);

    let d = decode(&pydub("party.mp3"), 4096).unwrap();
    assert_eq!((d.info.spec.sample_rate, d.info.spec.channels), (44_100, 1));
    assert!(
        (d.frames as f64 / 44_100.0 - 6.58).abs() < 0.05,
        "party.mp3: {}",
        d.frames
    );

    // A WAV header with a 0-frame data chunk is a valid empty stream.
    let mut empty = AudioDecoder::open_file(&pydub("test1_empty.wav"), DecodeOptions::default())
        .expect("empty WAV opens");
    assert_eq!(empty.info().frames, Some(0));
    let mut block = Block::new(empty.info().spec.channels, 1024);
    assert_eq!(empty.fill(&mut block).unwrap(), 0);

    // Opus in WebM: symphonia has no Opus decoder.
    let err = AudioDecoder::open_file(&pydub("test5.webm"), DecodeOptions::default()).unwrap_err();
    assert_eq!(err.kind(), "unsupported");
    assert!(
        err.to_string().contains("test5.webm") && err.to_string().contains("opus"),
        "{err}"
    );

    // FLAC in Ogg. ffprobe reports the last granule (134737 frames) but the stream holds 133632
    // (ffmpeg decodes exactly that many too): the shortfall is under one packet, so accepted.
    let d = decode(&pydub("bach.ogg"), 4096).unwrap();
    assert_eq!(
        (d.info.container.as_str(), d.info.codec.as_str()),
        ("ogg", "flac")
    );
    assert_eq!(d.frames, 133_632);
}

/// Asserts that opening or decoding `path` fails with `kind`, naming the file.
fn assert_fails(path: &Path, kind: &str) {
    let err = match decode(path, 4096) {
        Ok(d) => panic!(
            "{} decoded {} frames, expected a {kind} error",
            path.display(),
            d.frames
        ),
        Err(e) => e,
    };
    assert_eq!(err.kind(), kind, "{}: {err}", path.display());
    let name = path.display().to_string();
    assert!(
        err.to_string().contains(&name),
        "message names the file: {err}"
    );
    assert!(!err.retryable());
}

fn write_fixture(name: &str, bytes: &[u8]) -> PathBuf {
    let path = fixture_dir().join(name);
    let tmp = fixture_dir().join(format!(".{}-{name}", std::process::id()));
    std::fs::write(&tmp, bytes).expect("write fixture");
    std::fs::rename(&tmp, &path).expect("rename fixture");
    path
}

#[test]
fn bad_inputs_fail_clearly() {
    assert_fails(&fixture_dir().join("does-not-exist.wav"), "not_found");
    assert_fails(&write_fixture("empty.wav", b""), "empty");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let random: Vec<u8> = (0..65_536)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    assert_fails(&write_fixture("random.bin", &random), "not_audio");
    let text = "This is not audio. ".repeat(200);
    assert_fails(&write_fixture("text.mp3", text.as_bytes()), "not_audio");
}

#[test]
fn truncated_files_fail_as_truncated() {
    let sources = [
        sine_fixture("sine_s16.wav", 44_100, 2, &["-c:a", "pcm_s16le"]),
        sine_fixture(
            "sine_16.flac",
            44_100,
            2,
            &["-c:a", "flac", "-sample_fmt", "s16"],
        ),
        sine_fixture(
            "sine_cbr320.mp3",
            44_100,
            2,
            &["-c:a", "libmp3lame", "-b:a", "320k"],
        ),
        sine_fixture(
            "sine_faststart.m4a",
            44_100,
            2,
            &["-c:a", "aac", "-b:a", "192k", "-movflags", "+faststart"],
        ),
        sine_fixture(
            "sine_moov_end.m4a",
            44_100,
            2,
            &["-c:a", "aac", "-b:a", "192k"],
        ),
    ];
    for source in sources {
        let bytes = std::fs::read(&source).unwrap();
        let name = format!("half_{}", source.file_name().unwrap().to_string_lossy());
        let cut = write_fixture(&name, &bytes[..bytes.len() / 2]);
        assert_fails(&cut, "truncated");
    }
}

#[test]
fn too_many_bad_packets_is_an_error_and_few_are_skipped() {
    // Overwrite part of an M4A's audio with garbage: MP4 addresses packets through its sample
    // table, so the reader cannot resynchronise (an MP3 reader would skip the garbage instead)
    // and the AAC decoder rejects the packets there.
    let source = sine_fixture(
        "sine_faststart.m4a",
        44_100,
        2,
        &["-c:a", "aac", "-b:a", "192k", "-movflags", "+faststart"],
    );
    let mut bytes = std::fs::read(&source).unwrap();
    let len = bytes.len();
    for (i, b) in bytes[len / 3..len / 3 + 4000].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0x5A;
    }
    let path = write_fixture("damaged.m4a", &bytes);

    let drain = |options: DecodeOptions| -> (Result<u64, DecodeError>, u64) {
        let mut decoder = AudioDecoder::open_file(&path, options).unwrap();
        let mut block = Block::new(2, 4096);
        let result = loop {
            match decoder.fill(&mut block) {
                Ok(0) => break Ok(decoder.frames_decoded()),
                Ok(_) => {}
                Err(e) => break Err(e),
            }
        };
        (result, decoder.skipped_packets())
    };
    let (lenient, skipped) = drain(DecodeOptions::default());
    eprintln!("damaged.m4a, default limit: {lenient:?}, {skipped} packets skipped");
    let (strict, _) = drain(DecodeOptions {
        max_skipped_packets: 0,
    });
    eprintln!("damaged.m4a, limit 0: {strict:?}");
    // The damaged packets are skipped and decoding goes on to the end (their frames are missing,
    // which the decoder cannot know for MP4: the edit list still announces the full length).
    assert!(skipped > 0, "some packets failed to decode");
    let decoded = lenient.expect("a few bad packets are skipped");
    assert!(decoded > 100_000, "{decoded} frames");
    let err = strict.unwrap_err();
    assert_eq!(err.kind(), "too_many_bad_packets", "{err}");
    assert!(err.to_string().contains("damaged.m4a"));
}

#[test]
fn block_with_wrong_channel_count_is_rejected() {
    let path = sine_fixture("sine_s16.wav", 44_100, 2, &["-c:a", "pcm_s16le"]);
    let mut decoder = AudioDecoder::open_file(&path, DecodeOptions::default()).unwrap();
    let err = decoder.fill(&mut Block::new(1, 64)).unwrap_err();
    assert_eq!(err.kind(), "block_mismatch");
}

#[test]
fn other_codecs_and_untagged_streams() {
    // ALAC in M4A: lossless, edit list says the exact length.
    let alac = sine_fixture("sine_alac.m4a", 44_100, 2, &["-c:a", "alac"]);
    check_sine(&alac, "mp4", "alac", 44_100, 2);
    // MP3 without a Xing/LAME tag: no exact length is known (frames = None), encoder delay and
    // padding stay in (as with ffmpeg): at most 2 MP3 frames + LAME's delay of extra audio.
    let raw = sine_fixture(
        "sine_noxing.mp3",
        44_100,
        2,
        &["-c:a", "libmp3lame", "-b:a", "320k", "-write_xing", "0"],
    );
    let d = check_sine_with_padding(&raw, "mp3", "mp3", 44_100, 2, 3 * 1152);
    assert_eq!(d.info.frames, None);
    // ADTS AAC: no container length, priming + padding stay in (as with ffmpeg).
    let adts = sine_fixture("sine_adts.aac", 44_100, 2, &["-c:a", "aac", "-b:a", "192k"]);
    let d = check_sine_with_padding(&adts, "aac", "aac", 44_100, 2, 2048);
    assert_eq!(d.info.frames, None);
}

#[test]
fn open_source_accepts_any_media_source_and_uses_its_name() {
    use symphonia::core::io::ReadOnlySource;
    let path = sine_fixture("sine_s16.wav", 44_100, 2, &["-c:a", "pcm_s16le"]);
    let file = std::fs::File::open(&path).unwrap();
    // Non-seekable (like a plain HTTP body): WAV still decodes exactly.
    let source = Box::new(ReadOnlySource::new(file));
    let mut decoder = AudioDecoder::open_source(
        source,
        "s3://bucket/sine.wav",
        Some("wav"),
        Default::default(),
    )
    .unwrap();
    let mut block = Block::new(2, 4096);
    while decoder.fill(&mut block).unwrap() > 0 {}
    assert_eq!(decoder.frames_decoded(), 110_250);

    let text = std::io::Cursor::new(b"definitely not audio".repeat(100));
    let err = AudioDecoder::open_source(
        Box::new(ReadOnlySource::new(text)),
        "s3://bucket/x.mp3",
        Some("mp3"),
        Default::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), "not_audio");
    assert!(err.to_string().contains("s3://bucket/x.mp3"), "{err}");
}
