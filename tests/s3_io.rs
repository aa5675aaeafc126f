//! The S3 I/O layer against a local S3 server, with the aws CLI as the independent client that
//! uploads inputs and fetches outputs. `scripts/test.sh` runs this file twice: against moto
//! (`scripts/local-aws.sh`) and against SeaweedFS (`scripts/local-seaweedfs.sh`), two
//! independent implementations that must give the same answers. Every test makes its own bucket, so tests run in parallel without sharing
//! state. Nothing here reaches the internet.
#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test, with its message.

mod common;

use common::aws::{aws, aws_ok, bucket, endpoint, upload};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use longwave::audio::Block;
use longwave::audio::ByteSink;
use longwave::decode::{AudioDecoder, DecodeOptions};
use longwave::io::{
    create_sink, open_source, IoError, ObjectRef, S3Context, S3Reader, S3Settings, S3Sink,
    WriteMode,
};

const MIB: usize = 1024 * 1024;

fn download(bucket: &str, key: &str, dir: &Path) -> Vec<u8> {
    let path = dir.join(format!("download-{}", key.replace('/', "_")));
    aws_ok(&[
        "s3",
        "cp",
        "--only-show-errors",
        &format!("s3://{bucket}/{key}"),
        path.to_str().unwrap(),
    ]);
    std::fs::read(path).unwrap()
}

fn pending_uploads(bucket: &str) -> String {
    aws_ok(&[
        "s3api",
        "list-multipart-uploads",
        "--bucket",
        bucket,
        "--query",
        "Uploads[].Key",
        "--output",
        "text",
    ])
    .trim()
    .to_owned()
}

fn object_exists(bucket: &str, key: &str) -> bool {
    aws(&["s3api", "head-object", "--bucket", bucket, "--key", key])
        .status
        .success()
}

fn etag(bucket: &str, key: &str) -> String {
    aws_ok(&[
        "s3api",
        "head-object",
        "--bucket",
        bucket,
        "--key",
        key,
        "--query",
        "ETag",
        "--output",
        "text",
    ])
    .trim()
    .to_owned()
}

/// Deterministic pseudo-random bytes (xorshift), different per seed.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn context(settings: S3Settings) -> S3Context {
    endpoint();
    S3Context::from_env(settings).unwrap()
}

fn small_read_settings(read_chunk: usize, read_ahead: usize) -> S3Settings {
    S3Settings {
        read_chunk,
        read_ahead,
        max_retries: 5,
        ..S3Settings::default()
    }
}

/// The `IoError` inside an `io::Error` returned by `S3Reader::read`.
fn io_error_kind(error: &std::io::Error) -> &'static str {
    error
        .get_ref()
        .and_then(|e| e.downcast_ref::<IoError>())
        .map_or("not an IoError", IoError::kind)
}

#[test]
fn ranged_reads_and_seeks_are_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(3 * MIB + 12_345, 1);
    let path = dir.path().join("input.bin");
    std::fs::write(&path, &data).unwrap();
    let b = bucket("ranged");
    upload(&path, &b, "in/input.bin");

    let ctx = context(small_read_settings(256 * 1024, 2));
    let mut reader = S3Reader::open(&ctx, &b, "in/input.bin").unwrap();
    assert_eq!(reader.len(), data.len() as u64);
    let mut all = Vec::new();
    reader.read_to_end(&mut all).unwrap();
    assert!(all == data, "sequential read differs");

    // Seeks in every direction, inside and outside the buffered chunk, past the end.
    let len = data.len() as u64;
    let cases: [(SeekFrom, usize); 7] = [
        (SeekFrom::Start(0), 1000),
        (SeekFrom::End(-100), 100),
        (SeekFrom::Start(1_000_000), 700_000), // crosses chunk boundaries
        (SeekFrom::Current(-50_000), 10),      // backwards into the current chunk
        (SeekFrom::Start(256 * 1024 - 3), 6),  // across one chunk boundary
        (SeekFrom::Current(2 * MIB as i64), 5000),
        (SeekFrom::Start(len + 10), 10), // past the end: reads nothing
    ];
    for (from, n) in cases {
        let pos = reader.seek(from).unwrap();
        let mut buf = vec![0u8; n];
        let mut got = 0;
        while got < n {
            let r = reader.read(&mut buf[got..]).unwrap();
            if r == 0 {
                break;
            }
            got += r;
        }
        let start = (pos as usize).min(data.len());
        let end = (start + n).min(data.len());
        assert_eq!(&buf[..got], &data[start..end], "after seek {from:?}");
    }
    assert!(reader.seek(SeekFrom::Current(-(len as i64) - 100)).is_err());
    let stats = reader.stats();
    assert!(stats.requests() >= 14, "{} requests", stats.requests());
    assert_eq!(stats.resumes(), 0);

    // Through the generic entry point too.
    let obj = ObjectRef::parse(&format!("s3://{b}/in/input.bin")).unwrap();
    let mut source = open_source(Some(&ctx), &obj).unwrap();
    assert_eq!(source.byte_len(), Some(len));
    assert!(source.is_seekable());
    let mut head = [0u8; 16];
    source.read_exact(&mut head).unwrap();
    assert_eq!(head, data[..16]);
}

/// Decodes everything from a decoder into one interleaved-by-channel vector.
fn decode_all(mut decoder: AudioDecoder) -> (u64, Vec<Vec<f32>>) {
    let channels = decoder.info().spec.channels;
    let mut block = Block::new(channels, 4096);
    let mut out = vec![Vec::new(); channels];
    let mut frames = 0u64;
    loop {
        let n = decoder.fill(&mut block).unwrap();
        if n == 0 {
            break;
        }
        frames += n as u64;
        for (ch, samples) in out.iter_mut().enumerate() {
            samples.extend_from_slice(&block.channel(ch)[..n]);
        }
    }
    (frames, out)
}

#[test]
fn m4a_with_moov_at_the_end_decodes_from_s3_like_the_local_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moov-last.m4a");
    // ffmpeg's mp4 muxer writes `moov` after `mdat` unless `-movflags +faststart`.
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("sine=frequency=440:sample_rate=44100:duration=20")
        .args(["-ac", "2", "-c:a", "aac", "-b:a", "96k"])
        .arg(&path)
        .output()
        .expect("ffmpeg is required (scripts/setup-test-env.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&path).unwrap();
    let find = |tag: &[u8]| bytes.windows(4).position(|w| w == tag).unwrap();
    assert!(find(b"moov") > find(b"mdat"), "fixture must have moov last");

    let b = bucket("moov");
    upload(&path, &b, "audio/moov-last.m4a");
    // Small chunks so the moov lives in a chunk of its own, far from the start.
    let ctx = context(small_read_settings(64 * 1024, 1));
    let obj = ObjectRef::parse(&format!("s3://{b}/audio/moov-last.m4a")).unwrap();
    let source = open_source(Some(&ctx), &obj).unwrap();
    let remote = AudioDecoder::open_source(
        source,
        &obj.to_string(),
        obj.extension(),
        DecodeOptions::default(),
    )
    .unwrap();
    let local = AudioDecoder::open_file(&path, DecodeOptions::default()).unwrap();
    assert_eq!(remote.info(), local.info());
    let (remote_frames, remote_samples) = decode_all(remote);
    let (local_frames, local_samples) = decode_all(local);
    assert_eq!(remote_frames, local_frames);
    assert_eq!(remote_frames, 20 * 44_100, "gapless length");
    assert!(remote_samples == local_samples, "decoded samples differ");
}

/// A TCP proxy in front of the S3 server that cuts the first `cuts` connections once they have
/// carried `limit` response bytes (mid-body: the limit is far above any header size).
fn cutting_proxy(upstream: &str, limit: usize, cuts: usize) -> (String, Arc<AtomicUsize>) {
    let upstream = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let cuts_left = Arc::new(AtomicUsize::new(cuts));
    let cuts_done = Arc::new(AtomicUsize::new(0));
    let done = Arc::clone(&cuts_done);
    std::thread::spawn(move || {
        // Ends with the test process; it only ever serves this test's client.
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (cuts_left, done) = (Arc::clone(&cuts_left), Arc::clone(&done));
            std::thread::spawn(move || {
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_read, &mut s_write);
                    let _ = s_write.shutdown(Shutdown::Write);
                });
                let (mut s_read, mut c_write) = (server, client);
                let mut buf = [0u8; 16 * 1024];
                let mut carried = 0usize;
                let mut may_cut = true;
                loop {
                    let n = match s_read.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if may_cut && carried + n > limit {
                        let take = cuts_left
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
                            .is_ok();
                        if take {
                            let _ = c_write.write_all(&buf[..limit - carried]);
                            done.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        may_cut = false;
                    }
                    if c_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    carried += n;
                }
                let _ = c_write.shutdown(Shutdown::Both);
                let _ = s_read.shutdown(Shutdown::Both);
            });
        }
    });
    (url, cuts_done)
}

#[test]
fn a_body_cut_mid_stream_is_resumed_with_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(3 * MIB + 777, 2);
    let path = dir.path().join("input.bin");
    std::fs::write(&path, &data).unwrap();
    let b = bucket("resume");
    upload(&path, &b, "input.bin");

    let (proxy, cuts_done) = cutting_proxy(&endpoint(), 300_000, 3);
    let ctx = S3Context::with_endpoint(small_read_settings(MIB, 1), &proxy).unwrap();
    let mut reader = S3Reader::open(&ctx, &b, "input.bin").unwrap();
    let stats = reader.stats();
    let mut all = Vec::new();
    reader.read_to_end(&mut all).unwrap();
    assert!(all == data, "resumed read differs");
    assert!(
        cuts_done.load(Ordering::SeqCst) > 0,
        "the proxy cut nothing"
    );
    assert!(stats.resumes() > 0, "no resume counted");
    assert!(
        stats.resumes() <= 3,
        "{} resumes for 3 cuts",
        stats.resumes()
    );
}

#[test]
fn a_server_that_ignores_range_never_yields_wrong_bytes_or_the_whole_object() {
    // Before: a ranged GET answered 200 with the whole object was appended as if it were the
    // range: the chunk at offset 1 MiB held the object's first bytes (silently wrong audio), and
    // every chunk buffered the whole object.
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(4 * MIB, 3);
    let path = dir.path().join("input.bin");
    std::fs::write(&path, &data).unwrap();
    let b = bucket("norange");
    upload(&path, &b, "input.bin");
    let proxy = common::fault_proxy::FaultProxy::start(&endpoint());
    proxy.add(common::fault_proxy::Fault {
        method: Some("GET"),
        contains: vec!["input.bin".to_owned()],
        action: common::fault_proxy::Action::IgnoreRange,
        times: u64::MAX,
    });
    let ctx = S3Context::with_endpoint(small_read_settings(MIB, 0), &proxy.url()).unwrap();
    let mut reader = S3Reader::open(&ctx, &b, "input.bin").unwrap();
    let stats = reader.stats();
    // The first chunk starts at 0: a whole-object answer serves it, cut at the chunk's end.
    let mut first = vec![0u8; MIB];
    reader.read_exact(&mut first).unwrap();
    assert!(first == data[..MIB], "first chunk differs");
    assert_eq!(stats.bytes(), MIB as u64, "kept only the chunk");
    // The next chunk cannot be served by a server that ignores ranges: a clear error.
    let mut next = vec![0u8; 1];
    let err = reader.read_exact(&mut next).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("ignored the Range header"), "{text}");
    assert!(text.contains("input.bin"), "{text}");
    assert!(proxy.injected() >= 2);
}

#[test]
fn an_object_replaced_mid_read_fails_instead_of_mixing_versions() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("v1.bin");
    let second = dir.path().join("v2.bin");
    std::fs::write(&first, random_bytes(2 * MIB, 3)).unwrap();
    std::fs::write(&second, random_bytes(2 * MIB, 4)).unwrap();
    let b = bucket("changed");
    upload(&first, &b, "obj.bin");

    let ctx = context(small_read_settings(64 * 1024, 1));
    let mut reader = S3Reader::open(&ctx, &b, "obj.bin").unwrap();
    let mut head = vec![0u8; 1000];
    reader.read_exact(&mut head).unwrap();
    upload(&second, &b, "obj.bin");
    let mut rest = Vec::new();
    let err = reader.read_to_end(&mut rest).unwrap_err();
    assert_eq!(io_error_kind(&err), "object_changed", "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("s3://{b}/obj.bin")), "{msg}");
    assert!(msg.contains("changed while it was being read"), "{msg}");
}

/// Writes `total` bytes of a known pattern into an S3 sink in uneven pieces, patches the start,
/// commits, and checks the object fetched by the aws CLI byte for byte. Returns the ETag.
fn write_and_check(ctx: &S3Context, b: &str, key: &str, total: usize, dir: &Path) -> String {
    let mut expected = random_bytes(total, total as u64);
    let obj = ObjectRef::parse(&format!("s3://{b}/{key}")).unwrap();
    let mut sink = create_sink(Some(ctx), &obj, None).unwrap();
    let mut written = 0;
    let mut piece = 1;
    while written < total {
        let n = (piece * 7919 % 300_000 + 1).min(total - written);
        sink.write_all(&expected[written..written + n]).unwrap();
        written += n;
        piece += 1;
        if written > 2000 && piece == 3 {
            // A patch long before commit, while later parts are uploading.
            sink.patch(1000, b"early patch").unwrap();
            expected[1000..1011].copy_from_slice(b"early patch");
        }
    }
    assert_eq!(sink.position(), total as u64);
    // The "header written last" patch at offset 0.
    sink.patch(0, b"HEADER").unwrap();
    expected[..6].copy_from_slice(b"HEADER");
    assert!(
        sink.patch(64 * 1024 - 2, b"xyz").is_err(),
        "outside the window"
    );
    assert_eq!(sink.commit().unwrap(), total as u64);
    let got = download(b, key, dir);
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "{key}: content differs");
    etag(b, key)
}

#[test]
fn sink_outputs_at_part_boundaries_and_many_parts_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("sink");
    let ctx = context(S3Settings {
        part_size: 5 * MIB,
        parts_in_flight: 2,
        ..S3Settings::default()
    });
    // Exactly one part: a single PutObject (plain ETag).
    let etag1 = write_and_check(&ctx, &b, "out/exact.bin", 5 * MIB, dir.path());
    assert!(
        !etag1.contains('-'),
        "single PutObject expected, ETag {etag1}"
    );
    // One byte more: two parts, the second 1 byte long.
    let etag2 = write_and_check(&ctx, &b, "out/plus-one.bin", 5 * MIB + 1, dir.path());
    assert!(etag2.ends_with("-2\""), "2 parts expected, ETag {etag2}");
    // Many parts with a bounded window (2 in flight): 23 MiB = 5 parts.
    let etag5 = write_and_check(&ctx, &b, "out/many.bin", 23 * MIB, dir.path());
    assert!(etag5.ends_with("-5\""), "5 parts expected, ETag {etag5}");
    assert_eq!(
        pending_uploads(&b),
        "None",
        "pending multipart uploads left"
    );
}

#[test]
fn commit_never_overwrites_an_existing_output() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("nooverwrite");
    let ctx = context(S3Settings {
        part_size: 5 * MIB,
        ..S3Settings::default()
    });
    for (key, size) in [("small.bin", 1000), ("large.bin", 6 * MIB)] {
        write_and_check(&ctx, &b, key, size, dir.path());
        let obj = ObjectRef::parse(&format!("s3://{b}/{key}")).unwrap();
        let mut dup = create_sink(Some(&ctx), &obj, None).unwrap();
        dup.write_all(&vec![1u8; size]).unwrap();
        let err = dup.commit().unwrap_err().to_string();
        assert!(err.contains("already exists"), "{key}: {err}");
        assert!(err.contains(&format!("s3://{b}/{key}")), "{err}");
        // The first output is intact.
        let got = download(&b, key, dir.path());
        assert_ne!(got, vec![1u8; size], "{key} was overwritten");
        // An explicit overwrite works.
        let mut over = S3Sink::create(&ctx, &b, key, WriteMode::Overwrite);
        over.write_all(&vec![2u8; size]).unwrap();
        Box::new(over).commit().unwrap();
        assert_eq!(download(&b, key, dir.path()), vec![2u8; size]);
    }
    assert_eq!(pending_uploads(&b), "None");
}

#[test]
fn an_owned_sink_replaces_only_its_own_earlier_object() {
    // A redelivered job meets what its own killed attempt committed: the same owner replaces
    // it; another owner, or none, still gets "already exists" and leaves the object intact.
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("owned");
    let ctx = context(S3Settings {
        part_size: 5 * MIB,
        ..S3Settings::default()
    });
    for (key, size) in [("small.bin", 1000), ("large.bin", 6 * MIB)] {
        let obj = ObjectRef::parse(&format!("s3://{b}/{key}")).unwrap();
        let write = |owner: Option<&str>, fill: u8| {
            let mut sink = create_sink(Some(&ctx), &obj, owner).unwrap();
            sink.write_all(&vec![fill; size]).unwrap();
            sink.commit()
        };
        write(Some("job-a"), 1).unwrap();
        let meta: serde_json::Value = serde_json::from_str(&aws_ok(&[
            "s3api",
            "head-object",
            "--bucket",
            &b,
            "--key",
            key,
        ]))
        .unwrap();
        assert_eq!(meta["Metadata"]["longwave-job"], "job-a", "{key}: {meta}");
        write(Some("job-a"), 2).unwrap();
        assert_eq!(download(&b, key, dir.path()), vec![2u8; size], "{key}");
        for stranger in [Some("job-b"), None] {
            let err = write(stranger, 3).unwrap_err().to_string();
            assert!(err.contains("already exists"), "{key} {stranger:?}: {err}");
            assert_eq!(download(&b, key, dir.path()), vec![2u8; size], "{key}");
        }
    }
    assert_eq!(pending_uploads(&b), "None");
}

#[test]
fn without_conditional_writes_the_server_is_refused_unless_allowed() {
    // Before: a server answering 501 to If-None-Match got the write again without it, silently:
    // the existence check was gone without anyone asking for it.
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("nocond");
    let proxy = common::fault_proxy::FaultProxy::start(&endpoint());
    proxy.add(common::fault_proxy::Fault {
        method: None,
        contains: vec![b.clone()],
        action: common::fault_proxy::Action::RejectConditional,
        times: u64::MAX,
    });
    for allow in [false, true] {
        let ctx = S3Context::with_endpoint(
            S3Settings {
                part_size: 5 * MIB,
                allow_unconditional_writes: allow,
                ..S3Settings::default()
            },
            &proxy.url(),
        )
        .unwrap();
        for (key, size) in [("small.bin", 1000), ("large.bin", 6 * MIB)] {
            let key = format!("{allow}/{key}");
            let obj = ObjectRef::parse(&format!("s3://{b}/{key}")).unwrap();
            let mut sink = create_sink(Some(&ctx), &obj, None).unwrap();
            sink.write_all(&vec![7u8; size]).unwrap();
            let result = sink.commit();
            if allow {
                result.unwrap();
                assert_eq!(download(&b, &key, dir.path()), vec![7u8; size]);
            } else {
                let err = result.unwrap_err().to_string();
                assert!(err.contains("--s3-allow-unconditional-writes"), "{err}");
                assert!(err.contains(&key), "{err}");
                assert!(!object_exists(&b, &key), "{key} written without the check");
            }
        }
    }
    assert!(proxy.injected() >= 4);
    assert_eq!(pending_uploads(&b), "None");
}

#[test]
fn a_sink_dropped_mid_way_leaves_no_object_and_no_pending_upload() {
    let b = bucket("dropped");
    let ctx = context(S3Settings {
        part_size: 5 * MIB,
        parts_in_flight: 2,
        ..S3Settings::default()
    });
    let obj = ObjectRef::parse(&format!("s3://{b}/out/partial.bin")).unwrap();
    let mut sink = create_sink(Some(&ctx), &obj, None).unwrap();
    // Parts 2 and 3 are uploaded (or uploading) when the sink is dropped.
    for _ in 0..16 {
        sink.write_all(&random_bytes(MIB, 9)).unwrap();
    }
    assert!(
        !pending_uploads(&b).contains("None"),
        "the upload should be under way"
    );
    drop(sink);
    assert_eq!(pending_uploads(&b), "None", "pending multipart upload left");
    assert!(!object_exists(&b, "out/partial.bin"));

    // A failing sink (no such bucket) reports it clearly and leaves nothing either.
    let missing = ObjectRef::parse("s3://lw-no-such-bucket-for-sink/out.bin").unwrap();
    let mut sink = create_sink(Some(&ctx), &missing, None).unwrap();
    let err = sink
        .write_all(&vec![0u8; 11 * MIB])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("s3://lw-no-such-bucket-for-sink/out.bin") && err.contains("no such bucket"),
        "{err}"
    );
}

#[test]
fn missing_bucket_and_missing_key_are_distinct_clear_errors() {
    let b = bucket("missing");
    let ctx = context(S3Settings::default());
    let err = S3Reader::open(&ctx, "lw-no-such-bucket-anywhere", "a/b.wav").unwrap_err();
    assert_eq!(err.kind(), "no_such_bucket");
    assert_eq!(
        err.to_string(),
        "s3://lw-no-such-bucket-anywhere/a/b.wav: no such bucket"
    );
    let obj = ObjectRef::parse(&format!("s3://{b}/a/missing.wav")).unwrap();
    let err = open_source(Some(&ctx), &obj).map(|_| ()).unwrap_err();
    assert_eq!(err.kind(), "no_such_key");
    assert_eq!(
        err.to_string(),
        format!("s3://{b}/a/missing.wav: no such key")
    );
    assert!(!err.retryable());
    // No context configured: a clear setup error, not a panic.
    let err = open_source(None, &obj).map(|_| ()).unwrap_err();
    assert_eq!(err.kind(), "s3_setup");
}

/// moto's server mode does not evaluate bucket policies or IAM unless authentication is switched
/// on for the whole server (which would break the other tests running in parallel), so access
/// denied comes from a stub that answers every request with S3's 403.
#[test]
fn access_denied_is_reported_as_such() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 8192];
            let _ = stream.read(&mut buf);
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>\
                        <Message>Access Denied</Message></Error>";
            let _ = write!(
                stream,
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let head_only = buf.starts_with(b"HEAD");
            if !head_only {
                let _ = stream.write_all(body.as_bytes());
            }
        }
    });
    let ctx = S3Context::with_endpoint(S3Settings::default(), &url).unwrap();
    let err = S3Reader::open(&ctx, "private-bucket", "secret.wav").unwrap_err();
    assert_eq!(err.kind(), "access_denied", "{err}");
    assert_eq!(
        err.to_string(),
        "s3://private-bucket/secret.wav: access denied (HeadObject)"
    );
}

#[test]
fn small_object_operations_put_copy_list_delete() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("ops");
    let ctx = context(S3Settings::default());
    let manifest = ObjectRef::parse(&format!("s3://{b}/job/manifest.json")).unwrap();
    longwave::io::put_bytes(
        Some(&ctx),
        &manifest,
        b"{\"ok\":true}".to_vec(),
        Some("application/json"),
    )
    .unwrap();
    assert_eq!(
        download(&b, "job/manifest.json", dir.path()),
        b"{\"ok\":true}"
    );
    let copy = ObjectRef::parse(&format!("s3://{b}/job/original copy+1.json")).unwrap();
    longwave::io::copy_object(Some(&ctx), &manifest, &copy).unwrap();
    let keys = ctx.list_keys(&b, "job/").unwrap();
    assert_eq!(keys, vec!["job/manifest.json", "job/original copy+1.json"]);
    ctx.delete_keys(&b, &keys).unwrap();
    assert!(ctx.list_keys(&b, "job/").unwrap().is_empty());

    // Local files go through the same entry points without any S3 context.
    let local = ObjectRef::File(dir.path().join("local.json"));
    longwave::io::put_bytes(None, &local, b"abc".to_vec(), None).unwrap();
    let local_copy = ObjectRef::File(dir.path().join("copy.json"));
    longwave::io::copy_object(None, &local, &local_copy).unwrap();
    let mut text = String::new();
    open_source(None, &local_copy)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "abc");
    let mut sink = create_sink(None, &ObjectRef::File(dir.path().join("out.bin")), None).unwrap();
    sink.write_all(b"xyz").unwrap();
    sink.commit().unwrap();
    assert_eq!(std::fs::read(dir.path().join("out.bin")).unwrap(), b"xyz");
}
