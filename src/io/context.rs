//! [`S3Settings`] (validated tuning with a computable memory bound) and [`S3Context`] (the
//! runtime + client shared by every reader and sink, and the small object operations).

use super::{IoError, ObjectRef};
use crate::telemetry;
use aws_config::retry::RetryConfig;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tokio::runtime::Runtime;

const MIB: usize = 1024 * 1024;

/// S3's minimum size of every multipart part but the last.
pub const MIN_PART_SIZE: usize = 5 * MIB;
/// S3's maximum part size.
pub const MAX_PART_SIZE: usize = 5 * 1024 * MIB;
/// S3's maximum number of parts in one multipart upload.
pub const MAX_PARTS: u64 = 10_000;

/// Tuning of S3 transfers. None of it changes the bytes transferred; all of it bounds memory
/// ([`memory_bytes`](Self::memory_bytes)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// Multipart part size in bytes: 5 MiB ≤ `part_size` ≤ 5 GiB (S3 limits). Default 8 MiB,
    /// which allows outputs up to 78 GiB (10,000 parts).
    pub part_size: usize,
    /// Parts uploaded concurrently; when all are busy `write_all` blocks (backpressure).
    /// Default 4.
    pub parts_in_flight: usize,
    /// Size of one ranged GET in bytes (≥ 64 KiB). Default 4 MiB: small enough that a resumed
    /// or retried range is cheap, large enough that request overhead is negligible.
    pub read_chunk: usize,
    /// Chunks fetched ahead of the one being read (0 = no prefetch). Default 1.
    pub read_ahead: usize,
    /// Attempts after the first, both for the SDK's own retry of a request and for resuming a
    /// download whose body broke mid-stream. Default 5.
    pub max_retries: u32,
    /// Send and validate checksums only when an operation requires them. Off by default: the
    /// SDK's default (CRC32 on every upload, aws-chunked trailers, validation on download) is
    /// what AWS recommends and works with moto. Some S3 clones (R2, OVH, COS, …) reject the
    /// checksum headers or aws-chunked bodies; this switch is for them.
    pub checksums_when_required: bool,
    /// Write without `If-None-Match: *` when the server does not implement it (`501
    /// NotImplemented`, or a 400 naming the header: older S3 clones and emulators). Off by
    /// default: then such a server fails the write with a clear error, because without the
    /// condition an existing output could be replaced. Each unconditional write is logged and
    /// counted (`longwave_s3_unconditional_writes_total`).
    pub allow_unconditional_writes: bool,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            part_size: 8 * MIB,
            parts_in_flight: 4,
            read_chunk: 4 * MIB,
            read_ahead: 1,
            max_retries: 5,
            checksums_when_required: false,
            allow_unconditional_writes: false,
        }
    }
}

impl S3Settings {
    /// Checks every field against S3's limits and this module's minimums.
    ///
    /// # Errors
    /// [`IoError::InvalidSettings`] naming the field and its allowed range.
    pub fn validate(&self) -> Result<(), IoError> {
        let bad = |msg: String| Err(IoError::InvalidSettings(msg));
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return bad(format!(
                "part_size {} is outside S3's range 5 MiB..=5 GiB",
                self.part_size
            ));
        }
        if self.parts_in_flight == 0 || self.parts_in_flight > 64 {
            return bad(format!(
                "parts_in_flight {} is outside 1..=64",
                self.parts_in_flight
            ));
        }
        if !(64 * 1024..=MAX_PART_SIZE).contains(&self.read_chunk) {
            return bad(format!(
                "read_chunk {} is outside 64 KiB..=5 GiB",
                self.read_chunk
            ));
        }
        if self.read_ahead > 64 {
            return bad(format!("read_ahead {} is above 64", self.read_ahead));
        }
        if self.max_retries > 20 {
            return bad(format!("max_retries {} is above 20", self.max_retries));
        }
        Ok(())
    }

    /// Upper bound of the transfer buffers one reader plus one sink hold, in bytes:
    /// the sink's held first part, the part being filled and `parts_in_flight` parts uploading,
    /// plus the reader's current chunk and `read_ahead` prefetched chunks.
    pub fn memory_bytes(&self) -> u64 {
        let sink = (2 + self.parts_in_flight as u64) * self.part_size as u64;
        let reader = (1 + self.read_ahead as u64) * self.read_chunk as u64;
        sink + reader
    }

    /// The largest output a sink with these settings can write (10,000 parts).
    pub fn max_output_bytes(&self) -> u64 {
        self.part_size as u64 * MAX_PARTS
    }
}

/// What readers, sinks and the context share: one runtime, one client (one connection pool).
#[derive(Debug)]
pub(crate) struct Shared {
    /// Drives every request. Owned here and shut down (without blocking, see `Drop`) with the
    /// last reader, sink or context. `Option` only so that `Drop` can take it out.
    runtime: Option<Runtime>,
    /// Handle on `runtime`, for spawning and blocking.
    pub(crate) handle: tokio::runtime::Handle,
    /// The S3 client; cheap to clone into tasks.
    pub(crate) client: Client,
    /// Validated settings.
    pub(crate) settings: S3Settings,
}

impl Shared {
    /// Runs `future` to completion on the runtime, from a plain (non-runtime) thread.
    ///
    /// # Errors
    /// [`IoError::Setup`] when called from inside a tokio runtime, where blocking would panic or
    /// starve the runtime.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> Result<F::Output, IoError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(IoError::Setup(
                "the synchronous S3 API was called from inside an async runtime; call it from a \
                 plain thread (e.g. tokio::task::spawn_blocking)"
                    .to_owned(),
            ));
        }
        Ok(self.handle.block_on(future))
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Dropping a `Runtime` blocks until its workers stop, which panics when the last owner is
        // dropped inside some other async context (say, the job layer's runtime). Shutting down
        // in the background never blocks; sinks have already finished their cleanup by then.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Access to S3 for the synchronous pipeline threads: a private multi-thread tokio runtime (2
/// worker threads) and an `aws_sdk_s3::Client`.
///
/// Every method blocks the calling thread until the requests are done. **Call them from plain
/// threads only** (the decode thread, the encoder's thread, `spawn_blocking`), never from inside
/// an async runtime: they detect that case and return [`IoError::Setup`] instead of panicking.
///
/// Cloning is cheap and shares the runtime and the connection pool.
#[derive(Debug, Clone)]
pub struct S3Context {
    pub(crate) shared: Arc<Shared>,
}

impl S3Context {
    /// Builds the client from the standard sources (environment, shared config/credentials
    /// files, web identity, ECS task role, IMDS, via aws-config's defaults). When
    /// `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` is set (an S3-compatible server, the local
    /// test server), requests go there with path-style addressing.
    ///
    /// No request is made here; credentials are resolved on the first request.
    ///
    /// # Errors
    /// [`IoError::InvalidSettings`], or [`IoError::Setup`] when no region is configured, the
    /// runtime cannot start, or this is called from inside an async runtime.
    pub fn from_env(settings: S3Settings) -> Result<Self, IoError> {
        let endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
        Self::build(settings, endpoint, None)
    }

    /// Like [`from_env`](Self::from_env), but sends every request to `endpoint` (path-style),
    /// whatever the environment says. For S3-compatible servers and tests.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn with_endpoint(settings: S3Settings, endpoint: &str) -> Result<Self, IoError> {
        Self::build(settings, Some(endpoint.to_owned()), None)
    }

    /// A context whose region is fixed and whose endpoint answers nothing, for unit tests of
    /// code that builds requests but must not send any.
    #[cfg(test)]
    pub(crate) fn offline_for_tests(settings: S3Settings) -> Self {
        Self::build(
            settings,
            Some("http://127.0.0.1:9".to_owned()),
            Some("us-east-1"),
        )
        .expect("an offline S3 context")
    }

    fn build(
        settings: S3Settings,
        endpoint: Option<String>,
        region: Option<&'static str>,
    ) -> Result<Self, IoError> {
        settings.validate()?;
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(IoError::Setup(
                "S3Context must be created outside an async runtime (it owns its own)".to_owned(),
            ));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("longwave-s3")
            .enable_all()
            .build()
            .map_err(|e| IoError::Setup(format!("cannot start the I/O runtime: {e}")))?;
        let retry = RetryConfig::standard().with_max_attempts(settings.max_retries + 1);
        let shared_config = runtime.block_on(async {
            let mut loader =
                aws_config::defaults(BehaviorVersion::v2026_01_12()).retry_config(retry);
            if let Some(endpoint) = &endpoint {
                loader = loader.endpoint_url(endpoint);
            }
            if let Some(region) = region {
                loader = loader.region(aws_config::Region::from_static(region));
            }
            loader.load().await
        });
        if shared_config.region().is_none() {
            return Err(IoError::Setup(
                "no AWS region configured (set AWS_REGION or a profile region)".to_owned(),
            ));
        }
        let mut config = aws_sdk_s3::config::Builder::from(&shared_config);
        if endpoint.is_some() {
            // Virtual-host style would resolve `bucket.127.0.0.1`/`bucket.localhost`.
            config = config.force_path_style(true);
        }
        if settings.checksums_when_required {
            config = config
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        let client = Client::from_conf(config.build());
        Ok(Self {
            shared: Arc::new(Shared {
                handle: runtime.handle().clone(),
                runtime: Some(runtime),
                client,
                settings,
            }),
        })
    }

    /// The validated settings.
    pub fn settings(&self) -> &S3Settings {
        &self.shared.settings
    }

    /// The underlying SDK client, for operations this module does not wrap. Async: use it from
    /// your own runtime or through [`block_on`](Self::block_on).
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// Runs `future` on this context's runtime and waits for it.
    ///
    /// # Errors
    /// [`IoError::Setup`] when called from inside an async runtime.
    pub fn block_on<F: Future>(&self, future: F) -> Result<F::Output, IoError> {
        self.shared.block_on(future)
    }

    /// Writes a small object in one `PutObject` (a manifest, a report). Overwrites.
    ///
    /// # Errors
    /// [`IoError::NoSuchBucket`], [`IoError::AccessDenied`], [`IoError::Remote`].
    pub fn put_object_bytes(
        &self,
        bucket: &str,
        key: &str,
        bytes: Vec<u8>,
        content_type: Option<&str>,
    ) -> Result<(), IoError> {
        let target = s3_name(bucket, key);
        let len = bytes.len() as u64;
        let request = self
            .shared
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .set_content_type(content_type.map(str::to_owned))
            .body(ByteStream::from(bytes));
        let started = Instant::now();
        let sent = self.block_on(request.send())?;
        telemetry::record_s3_request("put_object", sent.is_ok(), started);
        sent.map_err(|e| IoError::from_sdk("PutObject", &target, e))?;
        telemetry::add_written_bytes(len);
        Ok(())
    }

    /// Server-side copy of one object (no bytes pass through this process). Overwrites `to`.
    /// Limited to sources of at most 5 GiB (S3's `CopyObject` limit).
    ///
    /// # Errors
    /// [`IoError::NoSuchKey`]/[`IoError::NoSuchBucket`] for a missing source or target bucket,
    /// [`IoError::AccessDenied`], [`IoError::Remote`].
    pub fn copy_s3_object(
        &self,
        from_bucket: &str,
        from_key: &str,
        to_bucket: &str,
        to_key: &str,
    ) -> Result<(), IoError> {
        let target = s3_name(to_bucket, to_key);
        let source = format!("{from_bucket}/{}", percent_encode_key(from_key));
        let request = self
            .shared
            .client
            .copy_object()
            .copy_source(source)
            .bucket(to_bucket)
            .key(to_key);
        self.block_on(request.send())?.map_err(|e| {
            let err = IoError::from_sdk("CopyObject", &target, e);
            match err {
                // The missing object is the source (a missing target bucket is NoSuchBucket).
                IoError::NoSuchKey { .. } => IoError::NoSuchKey {
                    target: s3_name(from_bucket, from_key),
                },
                other => other,
            }
        })?;
        Ok(())
    }

    /// Fails early when `bucket` does not exist, so a job writing there stops before decoding
    /// anything (a sink would otherwise only find out at its first upload). Only a definite
    /// "no such bucket" (404) is an error: a role allowed to write but not to list gets 403 from
    /// HeadBucket, which says nothing about the bucket, so that and other answers pass.
    ///
    /// # Errors
    /// [`IoError::NoSuchBucket`] naming `target`.
    pub fn check_bucket_exists(&self, bucket: &str, target: &str) -> Result<(), IoError> {
        let client = self.client().clone();
        let bucket = bucket.to_owned();
        let answer =
            self.block_on(async move { client.head_bucket().bucket(bucket).send().await })?;
        match answer {
            Err(e) if IoError::sdk_status(&e) == Some(404) => Err(IoError::NoSuchBucket {
                target: target.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// Every key under `prefix` in `bucket` (all pages), in S3's (lexicographic) order.
    ///
    /// # Errors
    /// [`IoError::NoSuchBucket`], [`IoError::AccessDenied`], [`IoError::Remote`].
    pub fn list_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, IoError> {
        let target = s3_name(bucket, prefix);
        let client = self.shared.client.clone();
        self.block_on(async move {
            let mut keys = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .map_err(|e| IoError::from_sdk("ListObjectsV2", &target, e))?;
                keys.extend(
                    page.contents()
                        .iter()
                        .filter_map(|o| o.key().map(str::to_owned)),
                );
                match page.next_continuation_token() {
                    Some(next) if page.is_truncated() == Some(true) => {
                        token = Some(next.to_owned())
                    }
                    _ => break,
                }
            }
            Ok(keys)
        })?
    }

    /// Deletes `keys` from `bucket` (batches of 1,000, S3's limit). Missing keys are not an
    /// error (S3 semantics).
    ///
    /// # Errors
    /// [`IoError::Remote`] naming the first key S3 refused to delete, or the request failure.
    pub fn delete_keys(&self, bucket: &str, keys: &[String]) -> Result<(), IoError> {
        let client = self.shared.client.clone();
        self.block_on(async move {
            for batch in keys.chunks(1000) {
                let target = s3_name(bucket, batch.first().map_or("", String::as_str));
                let build_error = |e: aws_sdk_s3::error::BuildError| IoError::Remote {
                    op: "DeleteObjects",
                    target: target.clone(),
                    reason: e.to_string(),
                    retryable: false,
                };
                let objects = batch
                    .iter()
                    .map(|k| ObjectIdentifier::builder().key(k).build())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(build_error)?;
                let delete = Delete::builder()
                    .set_objects(Some(objects))
                    .quiet(true)
                    .build()
                    .map_err(build_error)?;
                let out = client
                    .delete_objects()
                    .bucket(bucket)
                    .delete(delete)
                    .send()
                    .await
                    .map_err(|e| IoError::from_sdk("DeleteObjects", &target, e))?;
                if let Some(failed) = out.errors().first() {
                    return Err(IoError::Remote {
                        op: "DeleteObjects",
                        target: s3_name(bucket, failed.key().unwrap_or("")),
                        reason: format!(
                            "{}: {}",
                            failed.code().unwrap_or("error"),
                            failed.message().unwrap_or("")
                        ),
                        retryable: false,
                    });
                }
            }
            Ok(())
        })?
    }
}

impl S3Context {
    /// The ETag of `s3://bucket/key`, or `None` when the key does not exist.
    ///
    /// # Errors
    /// [`IoError::AccessDenied`], [`IoError::NoSuchBucket`] (as a missing key: HEAD cannot
    /// tell them apart; the job's own read reports the difference), [`IoError::Remote`].
    pub fn head_etag(&self, bucket: &str, key: &str) -> Result<Option<String>, IoError> {
        let target = s3_name(bucket, key);
        let client = self.shared.client.clone();
        let started = Instant::now();
        let answer = self
            .block_on(async move { client.head_object().bucket(bucket).key(key).send().await })?;
        telemetry::record_s3_request("head_object", answer.is_ok(), started);
        match answer {
            Ok(head) => Ok(Some(head.e_tag().unwrap_or_default().to_owned())),
            Err(e) if IoError::sdk_status(&e) == Some(404) => Ok(None),
            Err(e) => Err(IoError::from_sdk("HeadObject", &target, e)),
        }
    }

    /// Reads a small object whole (a manifest): `None` when the key does not exist.
    ///
    /// # Errors
    /// [`IoError::Remote`] when the object is larger than `max_bytes` (not read) or the request
    /// fails; [`IoError::AccessDenied`], [`IoError::NoSuchBucket`].
    pub fn get_small_object(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> Result<Option<Vec<u8>>, IoError> {
        let target = s3_name(bucket, key);
        let client = self.shared.client.clone();
        let started = Instant::now();
        let answer = self.block_on(async {
            let response = match client.get_object().bucket(bucket).key(key).send().await {
                Ok(r) => r,
                Err(e) if IoError::sdk_status(&e) == Some(404) => {
                    // NoSuchKey: absent; NoSuchBucket is an error worth reporting.
                    use aws_sdk_s3::error::ProvideErrorMetadata;
                    if e.code() == Some("NoSuchBucket") {
                        return Err(IoError::NoSuchBucket {
                            target: target.clone(),
                        });
                    }
                    return Ok(None);
                }
                Err(e) => return Err(IoError::from_sdk("GetObject", &target, e)),
            };
            let len = response
                .content_length()
                .and_then(|l| u64::try_from(l).ok())
                .unwrap_or(0);
            if len > max_bytes {
                return Err(IoError::Remote {
                    op: "GetObject",
                    target: target.clone(),
                    reason: format!("{len} bytes is more than the {max_bytes} expected"),
                    retryable: false,
                });
            }
            let body = response.body.collect().await.map_err(|e| IoError::Remote {
                op: "GetObject",
                target: target.clone(),
                reason: format!("body broke: {e}"),
                retryable: true,
            })?;
            Ok(Some(body.into_bytes().to_vec()))
        })?;
        telemetry::record_s3_request("get_object", answer.is_ok(), started);
        if let Ok(Some(bytes)) = &answer {
            telemetry::add_read_bytes(bytes.len() as u64);
        }
        answer
    }
}

/// `s3://bucket/key`, the name used in every message.
pub(crate) fn s3_name(bucket: &str, key: &str) -> String {
    ObjectRef::S3 {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    }
    .to_string()
}

/// URL-encodes a key for `x-amz-copy-source` (everything but unreserved characters and `/`).
fn percent_encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_validated_and_bound_memory() {
        let s = S3Settings::default();
        s.validate().unwrap();
        // 8 MiB × (2 + 4) + 4 MiB × 2
        assert_eq!(s.memory_bytes(), 56 * MIB as u64);
        assert_eq!(s.max_output_bytes(), 80_000 * MIB as u64);
        let small = S3Settings {
            part_size: MIN_PART_SIZE - 1,
            ..S3Settings::default()
        };
        assert!(small
            .validate()
            .unwrap_err()
            .to_string()
            .contains("part_size"));
        let none = S3Settings {
            parts_in_flight: 0,
            ..S3Settings::default()
        };
        assert!(none.validate().is_err());
    }

    #[test]
    fn copy_source_keys_are_encoded() {
        assert_eq!(percent_encode_key("a b/ü+c.wav"), "a%20b/%C3%BC%2Bc.wav");
    }
}
