//! [`S3Sink`]: a [`ByteSink`] that writes an S3 object by multipart upload, with bounded memory,
//! backpressure, the header-patch window and an atomic, non-overwriting commit.
//!
//! # How the patch window works
//! Part 1 holds the first `part_size` (≥ 5 MiB) bytes, which include the whole
//! [`PATCH_WINDOW`](crate::audio::PATCH_WINDOW). It stays in memory until
//! [`commit`](ByteSink::commit), so [`patch`](ByteSink::patch) simply edits it, and it is uploaded
//! last, still as part number 1 (S3 assembles parts by number, not by upload order).
//!
//! # Bounds
//! Memory: part 1, the part being filled, and at most `parts_in_flight` parts uploading, each
//! `part_size`. When all upload slots are busy, `write_all` waits for the oldest upload: that wait
//! is the pipeline's backpressure. Outputs beyond `part_size × 10,000` fail as soon as they cross
//! that size.
//!
//! # Commit and cleanup
//! - Output ≤ `part_size`: one `PutObject` with `If-None-Match: *`.
//! - Larger: parts 2… were uploaded while writing; commit uploads the last part and part 1, waits
//!   for all, and completes with `If-None-Match: *`.
//! - Either way an existing object is never overwritten (a duplicate job gets
//!   [`IoError::AlreadyExists`]) unless the sink was made with [`WriteMode::Overwrite`], or the
//!   object is this writer's own from an earlier attempt (see below).
//!
//! # An earlier attempt's object is not someone else's
//! A sink given an owner ([`S3Sink::owned_by`], the job's identity) stores it as the object's
//! user metadata [`OWNER_METADATA`]. When its conditional commit meets an existing object, it
//! reads that object's owner: the same owner means an earlier attempt of the same job committed
//! it and was stopped before finishing (a worker killed between its outputs and its manifest),
//! so the commit is repeated unconditionally and replaces it with identical work. Anything else
//! stays [`IoError::AlreadyExists`]. Without this, every redelivery of such a job failed for good
//! on its own output.
//! - On any failure and on drop without commit the multipart upload is aborted, so neither a
//!   finished nor a failed job leaves pending parts (billed storage) behind.

use super::context::{s3_name, Shared, MAX_PARTS};
use super::{IoError, S3Context};
use crate::audio::{check_patch, ByteSink, SinkError};
use crate::telemetry;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Whether a sink may replace an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Fail with [`IoError::AlreadyExists`] at commit if the object exists
    /// (`If-None-Match: *`). The default: a duplicate job cannot clobber a finished output.
    #[default]
    CreateNew,
    /// Replace an existing object.
    Overwrite,
}

/// The user-metadata key (`x-amz-meta-longwave-job`) under which an owned sink records its
/// owner on the object.
pub const OWNER_METADATA: &str = "longwave-job";

/// How long dropping an unfinished sink waits for in-flight parts before aborting the upload.
const DROP_WAIT: Duration = Duration::from_secs(30);

/// A [`ByteSink`] writing `s3://bucket/key`. See the module docs.
#[derive(Debug)]
pub struct S3Sink {
    shared: Arc<Shared>,
    bucket: String,
    key: String,
    target: String,
    mode: WriteMode,
    /// Recorded on the object; an existing object with the same owner may be replaced.
    owner: Option<String>,
    /// Part 1 (the first `part_size` bytes), held until commit for `patch`.
    first: Vec<u8>,
    /// The part being filled (part `next_part`).
    current: BytesMut,
    position: u64,
    /// Number of the part `current` will become.
    next_part: i32,
    /// Set once the multipart upload exists.
    upload_id: Option<String>,
    /// Part uploads running on the runtime, oldest first; at most `parts_in_flight`.
    in_flight: VecDeque<JoinHandle<Result<CompletedPart, IoError>>>,
    completed: Vec<CompletedPart>,
    /// Set by an error: later calls fail with [`SinkError::Poisoned`].
    poisoned: bool,
    /// Set by a successful commit: `Drop` has nothing to clean up.
    done: bool,
}

impl S3Sink {
    /// A sink for `s3://bucket/key`. No request is made until the first part is full (or
    /// commit, for small outputs).
    pub fn create(ctx: &S3Context, bucket: &str, key: &str, mode: WriteMode) -> Self {
        Self {
            shared: Arc::clone(&ctx.shared),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            target: s3_name(bucket, key),
            mode,
            owner: None,
            // Grown as bytes arrive (never past one part): a small piece costs its own size,
            // not a part's (a split into 2,000 short pieces held 2,000 × 8 MiB of capacity).
            first: Vec::new(),
            current: BytesMut::new(),
            position: 0,
            next_part: 2,
            upload_id: None,
            in_flight: VecDeque::new(),
            completed: Vec::new(),
            poisoned: false,
            done: false,
        }
    }

    /// Records `owner` (a job identity, at most a few dozen ASCII characters) on the object,
    /// and lets the commit replace an existing object recorded with the same owner (module docs).
    #[must_use]
    pub fn owned_by(mut self, owner: Option<&str>) -> Self {
        self.owner = owner.map(str::to_owned);
        self
    }

    /// Whether the existing object has this sink's owner (so an earlier attempt of the same job
    /// wrote it). No owner, or a vanished object, is not ours.
    fn existing_is_own(&self) -> Result<bool, IoError> {
        let Some(owner) = &self.owner else {
            return Ok(false);
        };
        let client = self.shared.client.clone();
        let (bucket, key) = (self.bucket.clone(), self.key.clone());
        let started = Instant::now();
        let answer = self
            .shared
            .block_on(async move { client.head_object().bucket(bucket).key(key).send().await })?;
        telemetry::record_s3_request("head_object", answer.is_ok(), started);
        match answer {
            Ok(head) => Ok(head
                .metadata()
                .and_then(|m| m.get(OWNER_METADATA))
                .is_some_and(|found| found == owner)),
            Err(e) if IoError::sdk_status(&e) == Some(404) => Ok(false),
            Err(e) => Err(IoError::from_sdk("HeadObject", &self.target, e)),
        }
    }

    /// Commits with `send`: conditionally unless overwriting, and once more unconditionally when
    /// the object that blocked it is this sink's own from an earlier attempt.
    fn commit_with<F, Fut, E>(&self, op: &'static str, send: F) -> Result<(), IoError>
    where
        F: Fn(bool) -> Fut,
        Fut: std::future::Future<
            Output = Result<
                (),
                aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
            >,
        >,
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let if_none_match = self.mode == WriteMode::CreateNew;
        let fallback = self.shared.settings.allow_unconditional_writes;
        match self.shared.block_on(conditional(
            &self.target,
            op,
            if_none_match,
            fallback,
            &send,
        ))? {
            Err(IoError::AlreadyExists { target }) => {
                if !self.existing_is_own()? {
                    return Err(IoError::AlreadyExists { target });
                }
                tracing::info!(
                    object = %self.target,
                    "Replacing this job's own output from an earlier, unfinished attempt."
                );
                self.shared
                    .block_on(conditional(&self.target, op, false, fallback, &send))?
            }
            other => other,
        }
    }

    fn part_size(&self) -> usize {
        self.shared.settings.part_size
    }

    fn fail(&mut self, op: &'static str, error: IoError) -> SinkError {
        self.poisoned = true;
        self.abort_upload();
        error.into_sink_error(op, &self.target)
    }

    /// Creates the multipart upload if needed and returns its id.
    fn upload_id(&mut self) -> Result<String, IoError> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let request = self
            .shared
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .set_metadata(self.metadata());
        let started = Instant::now();
        let out = self.shared.block_on(request.send())?;
        telemetry::record_s3_request("create_multipart_upload", out.is_ok(), started);
        let out = out.map_err(|e| IoError::from_sdk("CreateMultipartUpload", &self.target, e))?;
        let id = out.upload_id().ok_or_else(|| IoError::Remote {
            op: "CreateMultipartUpload",
            target: self.target.clone(),
            reason: "the response has no upload id".to_owned(),
            retryable: true,
        })?;
        self.upload_id = Some(id.to_owned());
        Ok(id.to_owned())
    }

    /// Starts uploading `bytes` as part `number`, after waiting for a free slot.
    fn start_part(&mut self, number: i32, bytes: Bytes) -> Result<(), IoError> {
        let upload_id = self.upload_id()?;
        while self.in_flight.len() >= self.shared.settings.parts_in_flight {
            self.wait_oldest()?;
        }
        let client = self.shared.client.clone();
        let (bucket, key, target) = (self.bucket.clone(), self.key.clone(), self.target.clone());
        let task = self.shared.handle.spawn(upload_part(
            client, bucket, key, target, upload_id, number, bytes,
        ));
        self.in_flight.push_back(task);
        Ok(())
    }

    /// Waits for the oldest part upload and records it.
    fn wait_oldest(&mut self) -> Result<(), IoError> {
        let Some(task) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let part = self.shared.block_on(task)?.map_err(|e| IoError::Remote {
            op: "UploadPart",
            target: self.target.clone(),
            reason: format!("upload task failed: {e}"),
            retryable: true,
        })??;
        self.completed.push(part);
        Ok(())
    }

    /// Hands the full `current` buffer to an upload task.
    fn flush_current(&mut self) -> Result<(), IoError> {
        let number = self.next_part;
        if number as u64 > MAX_PARTS {
            return Err(IoError::Remote {
                op: "UploadPart",
                target: self.target.clone(),
                reason: format!(
                    "the output exceeds {MAX_PARTS} parts of {} bytes; raise part_size",
                    self.part_size()
                ),
                retryable: false,
            });
        }
        let bytes = std::mem::take(&mut self.current).freeze();
        self.next_part += 1;
        self.start_part(number, bytes)
    }

    fn append(&mut self, mut bytes: &[u8]) -> Result<(), IoError> {
        let part_size = self.part_size();
        if self.first.len() < part_size {
            let n = extend_within(&mut self.first, bytes, part_size);
            bytes = &bytes[n..];
        }
        while !bytes.is_empty() {
            if self.current.capacity() == 0 {
                self.current = BytesMut::with_capacity(part_size);
            }
            let n = bytes.len().min(part_size - self.current.len());
            self.current.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.current.len() == part_size {
                self.flush_current()?;
            }
        }
        Ok(())
    }

    /// The user metadata every request creating the object carries.
    fn metadata(&self) -> Option<std::collections::HashMap<String, String>> {
        self.owner
            .as_ref()
            .map(|owner| [(OWNER_METADATA.to_owned(), owner.clone())].into())
    }

    fn finish(&mut self) -> Result<(), IoError> {
        if self.upload_id.is_none() && self.current.is_empty() {
            // Everything fits in one part: a single PutObject.
            let body = Bytes::from(std::mem::take(&mut self.first));
            let len = body.len() as u64;
            let client = self.shared.client.clone();
            let (bucket, key) = (self.bucket.clone(), self.key.clone());
            let metadata = self.metadata();
            return self
                .commit_with("PutObject", |cond| {
                    let request = client
                        .put_object()
                        .bucket(&bucket)
                        .key(&key)
                        .set_metadata(metadata.clone())
                        .set_if_none_match(cond.then(|| "*".to_owned()))
                        .body(ByteStream::from(body.clone()));
                    async move { request.send().await.map(|_| ()) }
                })
                .inspect(|()| telemetry::add_written_bytes(len));
        }
        if !self.current.is_empty() {
            self.flush_current()?;
        }
        let first = Bytes::from(std::mem::take(&mut self.first));
        self.start_part(1, first)?;
        while !self.in_flight.is_empty() {
            self.wait_oldest()?;
        }
        let upload_id = self.upload_id()?;
        let mut parts = std::mem::take(&mut self.completed);
        parts.sort_by_key(|p| p.part_number());
        let upload = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        let client = self.shared.client.clone();
        let (bucket, key) = (self.bucket.clone(), self.key.clone());
        self.commit_with("CompleteMultipartUpload", |cond| {
            let request = client
                .complete_multipart_upload()
                .bucket(&bucket)
                .key(&key)
                .upload_id(&upload_id)
                .multipart_upload(upload.clone())
                .set_if_none_match(cond.then(|| "*".to_owned()));
            async move { request.send().await.map(|_| ()) }
        })
    }

    /// Aborts the multipart upload, if any: cancels nothing that is running but waits (bounded)
    /// for in-flight parts, since S3 may keep a part that finishes after the abort.
    fn abort_upload(&mut self) {
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        let tasks: Vec<_> = self.in_flight.drain(..).collect();
        let client = self.shared.client.clone();
        let (bucket, key) = (self.bucket.clone(), self.key.clone());
        let cleanup = async move {
            let _ = tokio::time::timeout(DROP_WAIT, async {
                for task in tasks {
                    let _ = task.await;
                }
            })
            .await;
            // Twice at most: a part finishing concurrently with the first abort can survive it.
            for _ in 0..2 {
                let started = Instant::now();
                let aborted = client
                    .abort_multipart_upload()
                    .bucket(&bucket)
                    .key(&key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                telemetry::record_s3_request("abort_multipart_upload", aborted.is_ok(), started);
                let parts = client
                    .list_parts()
                    .bucket(&bucket)
                    .key(&key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                match parts {
                    Ok(p) if !p.parts().is_empty() => continue,
                    // NoSuchUpload (the abort worked) or nothing left.
                    _ => break,
                }
            }
        };
        if self.shared.block_on(cleanup).is_err() {
            // Inside an async runtime (not how the pipeline uses sinks): the cleanup cannot be
            // awaited here; the bucket's AbortIncompleteMultipartUpload lifecycle rule is the
            // backstop.
            tracing::warn!(object = %self.target, "Multipart upload left for lifecycle cleanup.");
        }
    }
}

/// Runs a write `op` with `If-None-Match: *` when `if_none_match`. A 412 means the object exists
/// ([`IoError::AlreadyExists`]). A server that does not implement the header (`501
/// NotImplemented`, or a 400 naming the header: older S3 clones and emulators; AWS S3 supports
/// it on both PutObject and CompleteMultipartUpload) fails the write, unless `fallback`
/// ([`super::S3Settings::allow_unconditional_writes`]) allows sending it again without the
/// header, logged and counted.
async fn conditional<F, Fut, E>(
    target: &str,
    op: &'static str,
    if_none_match: bool,
    fallback: bool,
    send: &F,
) -> Result<(), IoError>
where
    F: Fn(bool) -> Fut,
    Fut: std::future::Future<
        Output = Result<(), aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
    >,
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_sdk_s3::error::ProvideErrorMetadata;
    let started = Instant::now();
    let result = match send(if_none_match).await {
        Ok(()) => Ok(()),
        Err(e) if IoError::sdk_status(&e) == Some(412) => Err(IoError::AlreadyExists {
            target: target.to_owned(),
        }),
        Err(e)
            if if_none_match
                && (e.code() == Some("NotImplemented")
                    || (IoError::sdk_status(&e) == Some(400)
                        && e.message().is_some_and(|m| m.contains("If-None-Match")))) =>
        {
            if !fallback {
                return Err(IoError::Remote {
                    op,
                    target: target.to_owned(),
                    reason: "the S3 server does not support conditional writes (If-None-Match), \
                             so an existing object could be replaced; pass \
                             --s3-allow-unconditional-writes to write without that check"
                        .to_owned(),
                    retryable: false,
                });
            }
            tracing::warn!(
                object = %target,
                "The S3 server ignores If-None-Match: writing without the existence check."
            );
            telemetry::count_unconditional_write();
            send(false)
                .await
                .map_err(|e| IoError::from_sdk(op, target, e))
        }
        Err(e) => Err(IoError::from_sdk(op, target, e)),
    };
    let label = match op {
        "PutObject" => "put_object",
        "CompleteMultipartUpload" => "complete_multipart_upload",
        _ => "other",
    };
    telemetry::record_s3_request(label, result.is_ok(), started);
    result
}

/// Uploads one part (an in-memory body, so the SDK can retry it).
async fn upload_part(
    client: Client,
    bucket: String,
    key: String,
    target: String,
    upload_id: String,
    number: i32,
    bytes: Bytes,
) -> Result<CompletedPart, IoError> {
    let len = bytes.len() as u64;
    let started = Instant::now();
    let out = client
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .body(ByteStream::from(bytes))
        .send()
        .await;
    telemetry::record_s3_request("upload_part", out.is_ok(), started);
    let out = out.map_err(|e| IoError::from_sdk("UploadPart", &target, e))?;
    telemetry::add_written_bytes(len);
    Ok(CompletedPart::builder()
        .part_number(number)
        .set_e_tag(out.e_tag().map(str::to_owned))
        .build())
}

/// Appends as much of `bytes` to `buffer` as fits under `cap` and returns how many it took.
/// Capacity grows by doubling but never past `cap`, so a buffer that ends small stays small and
/// one that fills holds exactly `cap`.
fn extend_within(buffer: &mut Vec<u8>, bytes: &[u8], cap: usize) -> usize {
    let n = bytes.len().min(cap.saturating_sub(buffer.len()));
    let needed = buffer.len() + n;
    if needed > buffer.capacity() {
        let target = needed.max(buffer.capacity().saturating_mul(2)).min(cap);
        buffer.reserve_exact(target - buffer.len());
    }
    buffer.extend_from_slice(&bytes[..n]);
    n
}

impl ByteSink for S3Sink {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        if self.poisoned || self.done {
            return Err(SinkError::Poisoned);
        }
        self.append(bytes).map_err(|e| self.fail("upload", e))?;
        self.position += bytes.len() as u64;
        Ok(())
    }

    fn patch(&mut self, offset: u64, bytes: &[u8]) -> Result<(), SinkError> {
        if self.poisoned || self.done {
            return Err(SinkError::Poisoned);
        }
        check_patch(offset, bytes.len(), self.position)?;
        // Inside the window, hence inside part 1 (PATCH_WINDOW < MIN_PART_SIZE).
        let start = offset as usize;
        self.first[start..start + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    fn position(&self) -> u64 {
        self.position
    }

    fn commit(mut self: Box<Self>) -> Result<u64, SinkError> {
        if self.poisoned || self.done {
            return Err(SinkError::Poisoned);
        }
        match self.finish() {
            Ok(()) => {
                self.done = true;
                self.upload_id = None;
                Ok(self.position)
            }
            Err(e) => Err(self.fail("upload", e)),
        }
    }
}

impl Drop for S3Sink {
    fn drop(&mut self) {
        if !self.done {
            self.abort_upload();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::S3Settings;

    #[test]
    fn a_small_output_holds_its_own_size_not_a_part() {
        // Before: every sink reserved a whole part (8 MiB) up front, so each small piece of a
        // split held 8 MiB until it was committed. No request is made before commit.
        let ctx = S3Context::offline_for_tests(S3Settings::default());
        let mut sink = S3Sink::create(&ctx, "bucket", "piece.wav", WriteMode::CreateNew);
        sink.write_all(&[7u8; 1000]).expect("buffered");
        assert!(
            sink.first.capacity() < 64 * 1024,
            "{}",
            sink.first.capacity()
        );
        assert_eq!(sink.position(), 1000);
    }

    #[test]
    fn the_first_part_grows_to_exactly_one_part() {
        let cap = 10_000;
        let mut buffer = Vec::new();
        let mut taken = 0;
        for _ in 0..30 {
            taken += extend_within(&mut buffer, &[1u8; 777], cap);
        }
        assert_eq!((taken, buffer.len(), buffer.capacity()), (cap, cap, cap));
        assert_eq!(extend_within(&mut buffer, &[1u8; 5], cap), 0);
    }
}
