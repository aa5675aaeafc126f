//! The local S3/SQS server (scripts/local-aws.sh, started by scripts/test.sh) through the aws CLI,
//! the independent client of the end-to-end tests.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The local server's URL; the tests refuse to run without it rather than skip silently.
pub fn endpoint() -> String {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "AWS_ENDPOINT_URL is not set: run the tests through scripts/test.sh (it starts the \
             local S3/SQS server), or `. \"$(scripts/local-aws.sh start >&2; scripts/local-aws.sh env)\"` first"
        ),
    }
}

/// Runs the aws CLI against the local server.
pub fn aws(args: &[&str]) -> Output {
    let cli = std::env::var("LONGWAVE_AWS_CLI").unwrap_or_else(|_| "aws".to_owned());
    Command::new(&cli)
        .args(["--endpoint-url", &endpoint(), "--region", "us-east-1"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cli}: {e} (run through scripts/test.sh)"))
}

/// [`aws`], failing the test with the CLI's stderr unless it succeeds; returns stdout.
pub fn aws_ok(args: &[&str]) -> String {
    let out = aws(args);
    assert!(
        out.status.success(),
        "aws {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A name no other test of this run uses (buckets, queues), valid for S3 and SQS.
pub fn unique(test: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "lw-{test}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
    .replace('_', "-")
}

/// A fresh bucket (the server is shared by the whole run).
pub fn bucket(test: &str) -> String {
    let name = unique(test);
    aws_ok(&["s3api", "create-bucket", "--bucket", &name]);
    name
}

/// Uploads a local file to `s3://bucket/key`.
pub fn upload(path: &Path, bucket: &str, key: &str) {
    aws_ok(&[
        "s3",
        "cp",
        "--only-show-errors",
        path.to_str().unwrap(),
        &format!("s3://{bucket}/{key}"),
    ]);
}

/// Every key under `prefix`, in S3's order.
pub fn keys(bucket: &str, prefix: &str) -> Vec<String> {
    let out = aws_ok(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        bucket,
        "--prefix",
        prefix,
    ]);
    if out.trim().is_empty() {
        return Vec::new(); // the CLI prints nothing for an empty listing
    }
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["Contents"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| o["Key"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Multipart uploads started and neither completed nor aborted.
pub fn pending_uploads(bucket: &str) -> usize {
    aws_ok(&["s3api", "list-multipart-uploads", "--bucket", bucket])
        .matches("\"UploadId\"")
        .count()
}
