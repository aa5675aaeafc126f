//! Entry points for the fuzz targets (`fuzz/`, run with cargo-fuzz) and for the replay of their
//! corpora under `cargo test` (`tests/fuzz_corpus.rs`): one function per untrusted input the
//! service parses, taking raw bytes and checking the invariants a caller relies on.
//!
//! A panic here, or an invariant assertion that fails, is a bug: bad input must end as an error
//! value. (The decoder turns a panic *inside symphonia* into [`DecodeError::DecoderPanic`]; that
//! is handled input, not a crash, and the fuzz targets install a panic hook that lets it through.)
//!
//! Kept in the library, not in the fuzz crate, so the same code runs in CI's `cargo test` and
//! under the fuzzer, and the fuzz crate stays a thin shell.
//!
//! [`DecodeError::DecoderPanic`]: crate::decode::DecodeError::DecoderPanic

use crate::audio::Block;
use crate::decode::{AudioDecoder, DecodeOptions};
use crate::worker::message::{parse_message, Routing};

/// Frames decoded from one input before the decode target stops: a few kilobytes can honestly
/// announce hours (a FLAC frame of constant subframes is a dozen bytes for 4,096 frames), and
/// decoding them all is slow, not wrong. 2^24 frames is 6 minutes at 48 kHz.
pub const MAX_FUZZ_FRAMES: u64 = 1 << 24;

/// Frames per block in the decode target: small, so block boundaries fall everywhere.
const FUZZ_BLOCK_FRAMES: usize = 1_000;

/// Longest error text a caller may be shown, in bytes: every foreign text in an error is capped
/// (`job::cap_echo`, `MAX_REASON`), so an error longer than this echoes input uncapped.
pub const MAX_ERROR_LEN: usize = 4_096;

/// Extension hints the decode target tries: the extension is only a hint, and a wrong or missing
/// one must not change safety.
const HINTS: [Option<&str>; 10] = [
    None,
    Some("wav"),
    Some("mp3"),
    Some("m4a"),
    Some("flac"),
    Some("ogg"),
    Some("mkv"),
    Some("aac"),
    Some("aiff"),
    Some("caf"),
];

/// Probes, demuxes and decodes `data` through [`AudioDecoder`] as a seekable source of known
/// length (so the WAV/Ogg header inspection and the MP4 box walker run), with the extension hint
/// chosen by the data's length. Checks: every block holds at most its capacity, its samples are
/// finite and within the sanitised range, and every error message is one bounded line.
/// Returns the frames decoded, or the error as a user would read it.
///
/// # Errors
/// The decoder's error, as text (bad input is expected here; only a panic is a finding).
///
/// # Panics
/// When an invariant above does not hold: that is the finding.
pub fn decode_bytes(data: &[u8]) -> Result<u64, String> {
    let hint = HINTS[data.len() % HINTS.len()];
    let source = Box::new(std::io::Cursor::new(data.to_vec()));
    let decoder = AudioDecoder::open_source(source, "fuzz-input", hint, DecodeOptions::default());
    let mut decoder = match decoder {
        Ok(decoder) => decoder,
        Err(error) => return Err(checked_error(error.to_string())),
    };
    let channels = decoder.info().spec.channels;
    let mut block = Block::new(channels, FUZZ_BLOCK_FRAMES);
    let mut total = 0u64;
    while total < MAX_FUZZ_FRAMES {
        match decoder.fill(&mut block) {
            Ok(0) => break,
            Ok(frames) => {
                assert!(frames <= FUZZ_BLOCK_FRAMES, "{frames} frames in a block");
                assert_eq!(frames, block.frames());
                for channel in block.channels() {
                    assert!(
                        crate::audio::is_clean(channel),
                        "a decoded block has a sample that is not finite or out of range"
                    );
                }
                total += frames as u64;
            }
            Err(error) => return Err(checked_error(error.to_string())),
        }
    }
    assert_eq!(
        decoder.frames_decoded(),
        total,
        "frames counted ≠ frames returned"
    );
    Ok(total)
}

/// Parses `data` as an SQS message body, with each kind of [`Routing`] a worker may have (none;
/// an output root and parameters as a job spec; legacy parameters). Checks that an error is one
/// bounded line and that every accepted work item reads from S3 and writes at least one output,
/// all to S3 (the worker never touches its own disk on a message's word). Returns how many of
/// the routings accepted the body.
///
/// # Panics
/// When an invariant above does not hold: that is the finding.
pub fn parse_message_bytes(data: &[u8]) -> usize {
    let Ok(body) = std::str::from_utf8(data) else {
        return 0; // SQS bodies are Unicode text; the SDK hands the worker a String
    };
    let routings = [
        Routing::default(),
        Routing::new(
            Some("out-bucket".to_owned()),
            Some("processed/".to_owned()),
            Some(r#"{"preset":"8d","format":"mp3","bitrate":192}"#),
        )
        .expect("a valid routing"),
        Routing::new(
            None,
            None,
            Some(r#"{"silenceThreshold":-40,"minSilenceDuration":700,"outputFormats":["wav"]}"#),
        )
        .expect("a valid routing"),
    ];
    let mut accepted = 0;
    for routing in &routings {
        match parse_message(body, routing) {
            Ok(parsed) => {
                accepted += 1;
                for item in &parsed.items {
                    let plan = &item.plan;
                    assert!(plan.input.is_s3(), "a local input accepted: {plan:?}");
                    assert!(
                        !plan.jobs.is_empty(),
                        "a work item without output: {plan:?}"
                    );
                    for job in &plan.jobs {
                        assert!(job.output.is_s3(), "a local output accepted: {plan:?}");
                    }
                    if let Some(copy) = &plan.preserve_original {
                        assert!(copy.is_s3(), "a local copy target accepted: {plan:?}");
                    }
                }
            }
            Err(error) => {
                checked_error(error.to_string());
            }
        }
    }
    accepted
}

/// An error a user reads: one line, bounded. Returns it.
fn checked_error(text: String) -> String {
    assert!(
        text.len() <= MAX_ERROR_LEN,
        "an error of {} bytes: {}",
        text.len(),
        &text[..text.floor_char_boundary(200)]
    );
    assert!(!text.contains('\n'), "a multi-line error: {text}");
    text
}
