//! [`S3Reader`]: an S3 object as a `Read + Seek` [`MediaSource`], read by ranged GETs with
//! bounded read-ahead, resumed when a body breaks, and pinned to one version by its ETag.
//!
//! # Bounds
//! At most `1 + read_ahead` chunks of `read_chunk` bytes are held: the one being read and the
//! ones prefetched (each a spawned task collecting one range). A seek outside them cancels the
//! prefetches and starts a new range at the target.
//!
//! # Consistency
//! HeadObject at open records the length and ETag. Every GET carries `If-Match: <etag>` and
//! the returned ETag is compared too (for servers that ignore the header), so an object replaced
//! mid-read fails with [`IoError::Changed`] instead of mixing two versions.
//!
//! # Pinned to what an event named
//! [`S3Reader::open_pinned`] reads the exact version an S3 event reported: its `versionId`
//! (versioned buckets) on every request, so a later overwrite does not change what is read; or,
//! without one, its ETag as `If-Match` on the HEAD, so an object replaced since the event fails
//! with [`IoError::Changed`] instead of being processed for an event that did not describe it.
//!
//! # Resume
//! The SDK retries a request until its response headers arrive; after that a broken body is the
//! caller's problem. `RangeJob::fetch` keeps what arrived and asks for the rest (`Range:
//! bytes=N-END`) with exponential backoff and jitter, at most `max_retries` times per chunk.
//! Each resume is counted in [`ReadStats::resumes`].
//!
//! # A server that ignores `Range`
//! Some S3 clones and proxies answer a ranged GET with `200` and the whole object. Nothing is
//! kept beyond the requested range: the body is read only up to the range's end and then
//! dropped (the connection closes). A `200` to a range that does not start at 0 would put the
//! object's first bytes where later ones belong, so it fails with a clear, permanent error
//! instead; so does a `206` whose `Content-Range` starts elsewhere than asked.

use super::backoff::S3_REQUESTS;
use super::context::{s3_name, Shared};
use super::{IoError, S3Context};
use crate::telemetry;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use symphonia::core::io::MediaSource;
use tokio::task::JoinHandle;

/// Counters of one reader, shared with whoever holds a clone (tests, metrics).
#[derive(Debug, Clone, Default)]
pub struct ReadStats {
    inner: Arc<StatsInner>,
}

#[derive(Debug, Default)]
struct StatsInner {
    requests: AtomicU64,
    resumes: AtomicU64,
    bytes: AtomicU64,
}

impl ReadStats {
    /// GET requests sent (first attempts and resumes).
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Times a range was resumed after a body broke or a request failed transiently.
    pub fn resumes(&self) -> u64 {
        self.inner.resumes.load(Ordering::Relaxed)
    }

    /// Body bytes received (including prefetched bytes never read).
    pub fn bytes(&self) -> u64 {
        self.inner.bytes.load(Ordering::Relaxed)
    }
}

/// One range being fetched in the background.
#[derive(Debug)]
struct Pending {
    start: u64,
    end: u64,
    task: JoinHandle<Result<Bytes, IoError>>,
}

/// A seekable reader over one S3 object version. See the module docs for bounds and semantics.
///
/// Blocking: `read` waits for the network on the calling thread, which must not be inside an
/// async runtime (the decode thread is a plain thread).
#[derive(Debug)]
pub struct S3Reader {
    shared: Arc<Shared>,
    bucket: String,
    key: String,
    target: String,
    len: u64,
    etag: String,
    /// The version every request reads (`None`: the current one, pinned by `etag`).
    version_id: Option<String>,
    /// Logical read position (may be past the end after a seek).
    pos: u64,
    /// The chunk being read and the offset of its first byte.
    chunk: Bytes,
    chunk_start: u64,
    /// Prefetched ranges, contiguous and in order after `chunk` (at most `read_ahead`).
    ahead: VecDeque<Pending>,
    stats: ReadStats,
}

impl S3Reader {
    /// Opens `s3://bucket/key`: one HeadObject for its length and ETag. No data is fetched yet.
    ///
    /// # Errors
    /// [`IoError::NoSuchBucket`], [`IoError::NoSuchKey`], [`IoError::AccessDenied`] (distinct;
    /// a HEAD 404 is disambiguated with a HeadBucket), [`IoError::Remote`], [`IoError::Setup`]
    /// from inside an async runtime.
    pub fn open(ctx: &S3Context, bucket: &str, key: &str) -> Result<Self, IoError> {
        Self::open_pinned(ctx, bucket, key, &ObjectVersion::default())
    }

    /// Opens the version of `s3://bucket/key` that `pin` names (module docs): by version id,
    /// or the current object only if its ETag is still the pinned one.
    ///
    /// # Errors
    /// As [`S3Reader::open`]; [`IoError::Changed`] when the object's ETag is no longer the
    /// pinned one (no version id given).
    pub fn open_pinned(
        ctx: &S3Context,
        bucket: &str,
        key: &str,
        pin: &ObjectVersion,
    ) -> Result<Self, IoError> {
        let shared = Arc::clone(&ctx.shared);
        let target = s3_name(bucket, key);
        let client = shared.client.clone();
        let if_match = match (&pin.version_id, &pin.etag) {
            (None, Some(etag)) => Some(quoted(etag)),
            _ => None,
        };
        let head = shared.block_on(async {
            let started = Instant::now();
            let head = client
                .head_object()
                .bucket(bucket)
                .key(key)
                .set_version_id(pin.version_id.clone())
                .set_if_match(if_match.clone())
                .send()
                .await;
            telemetry::record_s3_request("head_object", head.is_ok(), started);
            match head {
                Ok(head) => Ok(head),
                Err(e) if IoError::sdk_status(&e) == Some(412) => Err(IoError::Changed {
                    target: target.clone(),
                    detail: format!(
                        "the event named ETag {}, the object now has another",
                        if_match.as_deref().unwrap_or_default()
                    ),
                }),
                Err(e) => Err(classify_head_error(&client, bucket, &target, e).await),
            }
        })??;
        let len = head
            .content_length()
            .and_then(|l| u64::try_from(l).ok())
            .ok_or_else(|| IoError::Remote {
                op: "HeadObject",
                target: target.clone(),
                reason: "the response has no Content-Length".to_owned(),
                retryable: false,
            })?;
        let etag = head.e_tag().unwrap_or_default().to_owned();
        Ok(Self {
            shared,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            target,
            len,
            etag,
            version_id: pin.version_id.clone(),
            pos: 0,
            chunk: Bytes::new(),
            chunk_start: 0,
            ahead: VecDeque::new(),
            stats: ReadStats::default(),
        })
    }

    /// The object's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ETag every read is pinned to.
    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// A handle on this reader's counters (stays valid after the reader is boxed or dropped).
    pub fn stats(&self) -> ReadStats {
        self.stats.clone()
    }

    /// Spawns the fetch of `[start, min(start + read_chunk, len))`.
    fn spawn(&self, start: u64) -> Pending {
        let end = start
            .saturating_add(self.shared.settings.read_chunk as u64)
            .min(self.len);
        let job = RangeJob {
            client: self.shared.client.clone(),
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            target: self.target.clone(),
            etag: self.etag.clone(),
            version_id: self.version_id.clone(),
            max_retries: self.shared.settings.max_retries,
            stats: self.stats.clone(),
        };
        let task = self.shared.handle.spawn(job.fetch(start, end));
        Pending { start, end, task }
    }

    /// Cancels every prefetch.
    fn cancel_ahead(&mut self) {
        for pending in self.ahead.drain(..) {
            pending.task.abort();
        }
    }

    /// Makes `chunk` contain `pos` (which is `< len`), reusing a prefetched range when one covers
    /// it, then tops the prefetch queue up to `read_ahead`.
    fn load_chunk(&mut self) -> Result<(), IoError> {
        // Drop prefetches that end before `pos`; use the first one that covers it.
        while let Some(front) = self.ahead.front() {
            if front.end <= self.pos {
                if let Some(p) = self.ahead.pop_front() {
                    p.task.abort();
                }
            } else {
                break;
            }
        }
        let pending = match self.ahead.front() {
            Some(front) if front.start <= self.pos => self.ahead.pop_front(),
            _ => {
                self.cancel_ahead();
                None
            }
        };
        let pending = match pending {
            Some(p) => p,
            None => self.spawn(self.pos),
        };
        let start = pending.start;
        self.chunk = Bytes::new();
        let bytes = self
            .shared
            .block_on(pending.task)?
            .map_err(|e| IoError::Remote {
                op: "GetObject",
                target: self.target.clone(),
                reason: format!("download task failed: {e}"),
                retryable: true,
            })??;
        self.chunk = bytes;
        self.chunk_start = start;
        // Top up the read-ahead after the last range we know of.
        let mut next = self
            .ahead
            .back()
            .map_or(start + self.chunk.len() as u64, |p| p.end);
        while self.ahead.len() < self.shared.settings.read_ahead && next < self.len {
            let pending = self.spawn(next);
            next = pending.end;
            self.ahead.push_back(pending);
        }
        Ok(())
    }
}

impl Read for S3Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.pos >= self.len {
            return Ok(0);
        }
        let chunk_end = self.chunk_start + self.chunk.len() as u64;
        if self.pos < self.chunk_start || self.pos >= chunk_end {
            self.load_chunk().map_err(io::Error::other)?;
        }
        // `pos` lies inside `chunk` now, so the offset fits in usize.
        let offset = (self.pos - self.chunk_start) as usize;
        let available = &self.chunk[offset..];
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for S3Reader {
    fn seek(&mut self, from: SeekFrom) -> io::Result<u64> {
        let target = match from {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        // A new position needs no request: the next read fetches it (keeping the current chunk
        // and prefetches if they cover it).
        self.pos = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: seek before the start of the object", self.target),
            )
        })?;
        Ok(self.pos)
    }
}

impl MediaSource for S3Reader {
    fn is_seekable(&self) -> bool {
        true
    }

    fn byte_len(&self) -> Option<u64> {
        Some(self.len)
    }
}

impl Drop for S3Reader {
    fn drop(&mut self) {
        self.cancel_ahead();
    }
}

/// Everything one range download needs, owned, so it can run as a task.
struct RangeJob {
    client: Client,
    bucket: String,
    key: String,
    target: String,
    etag: String,
    version_id: Option<String>,
    max_retries: u32,
    stats: ReadStats,
}

impl RangeJob {
    /// Downloads `[start, end)`, resuming after broken bodies and transient request failures.
    async fn fetch(self, start: u64, end: u64) -> Result<Bytes, IoError> {
        let want = (end - start) as usize;
        let mut data = BytesMut::with_capacity(want);
        let mut failures = 0u32;
        while data.len() < want {
            let from = start + data.len() as u64;
            let attempt = self.get(from, end, &mut data, want).await;
            match attempt {
                Ok(()) if data.len() >= want => break,
                Ok(()) => {
                    // The body ended early without an error: treat like a broken body.
                    failures += 1;
                    if failures > self.max_retries {
                        return Err(IoError::Remote {
                            op: "GetObject",
                            target: self.target.clone(),
                            reason: format!(
                                "the body of bytes={from}-{} ended early {failures} times",
                                end - 1
                            ),
                            retryable: true,
                        });
                    }
                }
                Err(e) if e.retryable() && failures < self.max_retries => failures += 1,
                Err(e) => return Err(e),
            }
            self.stats.inner.resumes.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(S3_REQUESTS.delay(failures - 1)).await;
        }
        data.truncate(want);
        Ok(data.freeze())
    }

    /// One GET of `[from, end)` appending to `data` (never beyond `want` bytes in all); on a
    /// body error `data` keeps what arrived.
    async fn get(
        &self,
        from: u64,
        end: u64,
        data: &mut BytesMut,
        want: usize,
    ) -> Result<(), IoError> {
        let started = Instant::now();
        let result = self.get_once(from, end, data, want).await;
        telemetry::record_s3_request("get_object", result.is_ok(), started);
        result
    }

    /// [`get`](Self::get) without the metric.
    async fn get_once(
        &self,
        from: u64,
        end: u64,
        data: &mut BytesMut,
        want: usize,
    ) -> Result<(), IoError> {
        self.stats.inner.requests.fetch_add(1, Ordering::Relaxed);
        let mut request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .set_version_id(self.version_id.clone())
            .range(format!("bytes={from}-{}", end - 1));
        if !self.etag.is_empty() {
            request = request.if_match(&self.etag);
        }
        let response = request.send().await.map_err(|e| {
            if IoError::sdk_status(&e) == Some(412) {
                IoError::Changed {
                    target: self.target.clone(),
                    detail: format!("precondition If-Match {} failed", self.etag),
                }
            } else {
                IoError::from_sdk("GetObject", &self.target, e)
            }
        })?;
        if let Some(etag) = response.e_tag() {
            if !self.etag.is_empty() && etag != self.etag {
                return Err(IoError::Changed {
                    target: self.target.clone(),
                    detail: format!("ETag {} at open, {etag} now", self.etag),
                });
            }
        }
        let starts_at = match response.content_range() {
            Some(range) => range_start(range),
            None => Some(0), // a 200: the whole object, from its first byte
        };
        if starts_at != Some(from) {
            return Err(IoError::Remote {
                op: "GetObject",
                target: self.target.clone(),
                reason: match response.content_range() {
                    Some(range) => format!(
                        "asked for bytes={from}-{} but the server sent Content-Range {range}",
                        end - 1
                    ),
                    None => format!(
                        "the server ignored the Range header (asked for bytes={from}-{}, got \
                         the whole object); longwave needs an S3 endpoint that serves ranges",
                        end - 1
                    ),
                },
                retryable: false,
            });
        }
        let mut body = response.body;
        loop {
            match body.try_next().await {
                Ok(Some(bytes)) => {
                    // A whole-object answer is cut at the end of the range asked for.
                    let take = bytes.len().min(want.saturating_sub(data.len()));
                    self.stats
                        .inner
                        .bytes
                        .fetch_add(take as u64, Ordering::Relaxed);
                    telemetry::add_read_bytes(take as u64);
                    data.extend_from_slice(&bytes[..take]);
                    if data.len() >= want {
                        return Ok(()); // dropping the body closes the connection
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    return Err(IoError::Remote {
                        op: "GetObject",
                        target: self.target.clone(),
                        reason: format!(
                            "body broke after {} bytes: {}",
                            data.len(),
                            aws_sdk_s3::error::DisplayErrorContext(&e)
                        ),
                        retryable: true,
                    })
                }
            }
        }
    }
}

/// Which version of an object a read must see, as an S3 event reported it. Both `None`: the
/// current object (still pinned to its ETag at open for the whole read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectVersion {
    /// The object's version id (versioned buckets): read exactly this version.
    pub version_id: Option<String>,
    /// The object's ETag (quoted or not, as events write it): without a version id, read only
    /// if the current object still has it.
    pub etag: Option<String>,
}

/// An ETag in the quoted form HTTP headers use (S3 events write it without quotes).
fn quoted(etag: &str) -> String {
    format!("\"{}\"", etag.trim_matches('"'))
}

/// The first byte of a `Content-Range: bytes FIRST-LAST/TOTAL` header.
fn range_start(content_range: &str) -> Option<u64> {
    content_range
        .trim()
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Turns a HeadObject failure into a distinct error: HEAD responses have no body, so a 404 does
/// not say whether the bucket or the key is missing; a HeadBucket tells.
async fn classify_head_error<E>(
    client: &Client,
    bucket: &str,
    target: &str,
    error: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> IoError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if IoError::sdk_status(&error) != Some(404) {
        return IoError::from_sdk("HeadObject", target, error);
    }
    match client.head_bucket().bucket(bucket).send().await {
        Err(e) if IoError::sdk_status(&e) == Some(404) => IoError::NoSuchBucket {
            target: target.to_owned(),
        },
        // The bucket exists, or we may not ask (403): either way the key is what is missing.
        _ => IoError::NoSuchKey {
            target: target.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::range_start;

    #[test]
    fn content_range_start_is_read_and_anything_else_is_none() {
        assert_eq!(range_start("bytes 0-1023/4096"), Some(0));
        assert_eq!(
            range_start("bytes 1048576-2097151/4194304"),
            Some(1_048_576)
        );
        assert_eq!(range_start("bytes 5-9/*"), Some(5));
        assert_eq!(range_start("bytes */4096"), None);
        assert_eq!(range_start("items 0-1/2"), None);
        assert_eq!(range_start(""), None);
    }
}
