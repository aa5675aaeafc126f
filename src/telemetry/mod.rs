//! Metrics: the catalogue of names ([`names`]), the Prometheus endpoint, and the small helpers
//! the pipeline calls where something happens.
//!
//! Emission goes through the `metrics` facade: with no exporter installed (library use, tests,
//! `process` without `--metrics-addr`) every call is a cheap no-op. Hot paths hold registered
//! handles (one per job or stage) and record once per block, never per sample.

pub mod names;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use names::{MetricDef, MetricKind, CATALOGUE};

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The exporter rejected its configuration or could not bind its address.
    #[error("cannot start the metrics endpoint on {addr}: {reason}")]
    Exporter {
        /// The listen address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// Outcome labels of [`names::JOBS_FINISHED_TOTAL`] and [`names::JOB_DURATION_SECONDS`].
pub const OUTCOMES: &[&str] = &[
    "success",
    "duplicate",
    "superseded",
    "failed",
    "retry",
    "released",
];

/// Starts the Prometheus endpoint on `addr` (every path answers; `/metrics` by convention),
/// with explicit buckets for every histogram of the catalogue, describes every metric, sets
/// `longwave_build_info` and starts sampling the process RSS every few seconds.
///
/// Call once per process.
///
/// # Errors
/// [`TelemetryError::Exporter`] when the address cannot be bound or a recorder is already
/// installed.
pub fn install_prometheus(addr: SocketAddr) -> Result<(), TelemetryError> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let fail = |reason: String| TelemetryError::Exporter { addr, reason };
    let mut builder = PrometheusBuilder::new().with_http_listener(addr);
    for def in CATALOGUE.iter().filter(|d| d.kind == MetricKind::Histogram) {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(def.name.to_string()), def.buckets)
            .map_err(|e| fail(e.to_string()))?;
    }
    // The listener binds inside `install`, so a busy port fails here rather than later.
    std::net::TcpListener::bind(addr)
        .map(drop)
        .map_err(|e| fail(e.to_string()))?;
    builder.install().map_err(|e| fail(e.to_string()))?;
    describe_all();
    metrics::gauge!(
        names::BUILD_INFO,
        "version" => env!("CARGO_PKG_VERSION"),
        "git_sha" => option_env!("LONGWAVE_GIT_SHA").unwrap_or("unknown"),
    )
    .set(1.0);
    // Counters without labels exist (at 0) from the start, so rates work from the first scrape.
    for def in CATALOGUE {
        if def.kind == MetricKind::Counter && def.labels.is_empty() {
            metrics::counter!(def.name).absolute(0);
        }
    }
    // Counters with a small, fixed label set too (the codec list is `codec_label`'s).
    for route in ["explicit", "redrive"] {
        metrics::counter!(names::DEAD_LETTERED_MESSAGES_TOTAL, "route" => route).absolute(0);
    }
    for kind in ["non_finite", "out_of_range"] {
        metrics::counter!(names::DECODE_REPAIRED_SAMPLES_TOTAL, "kind" => kind).absolute(0);
    }
    for kind in ["clipped", "non_finite"] {
        metrics::counter!(names::ENCODE_REPAIRED_SAMPLES_TOTAL, "kind" => kind).absolute(0);
    }
    for status in ["processing", "complete", "failed"] {
        for outcome in ["applied", "kept_complete", "failed"] {
            metrics::counter!(names::STATUS_WRITES_TOTAL, "status" => status, "outcome" => outcome)
                .absolute(0);
        }
    }
    for codec in KNOWN_CODECS.iter().chain(&["pcm", "other"]) {
        metrics::counter!(names::DECODE_SKIPPED_PACKETS_TOTAL, "codec" => *codec).absolute(0);
    }
    start_rss_sampler(Duration::from_secs(5));
    Ok(())
}

fn describe_all() {
    for def in CATALOGUE {
        let unit = if def.name.ends_with("_seconds") || def.name.ends_with("_seconds_total") {
            Some(metrics::Unit::Seconds)
        } else if def.name.ends_with("_bytes") || def.name.ends_with("_bytes_total") {
            Some(metrics::Unit::Bytes)
        } else {
            None
        };
        match (def.kind, unit) {
            (MetricKind::Counter, Some(u)) => metrics::describe_counter!(def.name, u, def.help),
            (MetricKind::Counter, None) => metrics::describe_counter!(def.name, def.help),
            (MetricKind::Gauge, Some(u)) => metrics::describe_gauge!(def.name, u, def.help),
            (MetricKind::Gauge, None) => metrics::describe_gauge!(def.name, def.help),
            (MetricKind::Histogram, Some(u)) => {
                metrics::describe_histogram!(def.name, u, def.help)
            }
            (MetricKind::Histogram, None) => metrics::describe_histogram!(def.name, def.help),
        }
    }
}

/// Samples the resident set size into [`names::MEMORY_RSS_BYTES`] every `period`, on a
/// background thread that lives as long as the process.
fn start_rss_sampler(period: Duration) {
    let gauge = metrics::gauge!(names::MEMORY_RSS_BYTES);
    let spawned = std::thread::Builder::new()
        .name("longwave-rss".into())
        .spawn(move || loop {
            if let Some(rss) = rss_bytes() {
                gauge.set(rss as f64);
            }
            std::thread::sleep(period);
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "Cannot start the RSS sampler; longwave_memory_rss_bytes stays empty.");
    }
}

/// The resident set size of this process, from `/proc/self/statm` (Linux); `None` elsewhere.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always valid.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096))
}

/// Records one S3 request of operation `op` (`get_object`, `upload_part`, …) that started at
/// `started`.
pub fn record_s3_request(op: &'static str, ok: bool, started: Instant) {
    metrics::histogram!(
        names::S3_REQUEST_DURATION_SECONDS,
        "op" => op,
        "outcome" => if ok { "ok" } else { "error" },
    )
    .record(started.elapsed().as_secs_f64());
}

/// Counts one S3 write sent without `If-None-Match` (the server does not implement it).
pub fn count_unconditional_write() {
    metrics::counter!(names::S3_UNCONDITIONAL_WRITES_TOTAL).increment(1);
}

/// Per-stage metric handles, registered once per job so a block records with two atomic updates
/// and no lookup. No-ops when no metrics exporter is installed.
pub struct StageMeter {
    block_seconds: metrics::Histogram,
    frames: metrics::Counter,
}

impl StageMeter {
    /// The handles of the stage named `stage`.
    pub fn new(stage: &'static str) -> Self {
        Self {
            block_seconds: metrics::histogram!(names::STAGE_BLOCK_DURATION_SECONDS, "stage" => stage),
            frames: metrics::counter!(names::STAGE_PROCESSED_FRAMES_TOTAL, "stage" => stage),
        }
    }

    /// Records one block: its processing time and frame count.
    pub fn record(&self, elapsed: Duration, frames: u64) {
        self.block_seconds.record(elapsed.as_secs_f64());
        self.frames.increment(frames);
    }
}

/// Codec labels besides `pcm` (every PCM variant) and `other`.
const KNOWN_CODECS: &[&str] = &["mp3", "aac", "flac", "vorbis", "alac", "adpcm"];

/// A bounded `codec` label for a decoder's short name: the codecs longwave decodes, else
/// `other` (labels must come from a fixed set).
pub fn codec_label(codec: &str) -> &'static str {
    if let Some(known) = KNOWN_CODECS.iter().find(|k| **k == codec) {
        return known;
    }
    if codec.starts_with("pcm") {
        "pcm"
    } else if codec.starts_with("adpcm") {
        "adpcm"
    } else {
        "other"
    }
}

/// Adds `bytes` to [`names::SOURCE_READ_BYTES_TOTAL`].
pub fn add_read_bytes(bytes: u64) {
    metrics::counter!(names::SOURCE_READ_BYTES_TOTAL).increment(bytes);
}

/// Adds `bytes` to [`names::SINK_WRITTEN_BYTES_TOTAL`].
pub fn add_written_bytes(bytes: u64) {
    metrics::counter!(names::SINK_WRITTEN_BYTES_TOTAL).increment(bytes);
}

/// Counts a job's decoded audio into [`names::AUDIO_PROCESSED_SECONDS_TOTAL`] as it goes, in
/// whole seconds (the counter is an integer), so long jobs show up in rates while they run.
#[derive(Debug)]
pub struct AudioSecondsCounter {
    counter: metrics::Counter,
    sample_rate: u64,
    frames: u64,
    counted_seconds: u64,
}

impl AudioSecondsCounter {
    /// A counter for a stream at `sample_rate` Hz.
    pub fn new(sample_rate: u32) -> Self {
        Self {
            counter: metrics::counter!(names::AUDIO_PROCESSED_SECONDS_TOTAL),
            sample_rate: u64::from(sample_rate.max(1)),
            frames: 0,
            counted_seconds: 0,
        }
    }

    /// `frames` more frames were processed.
    pub fn add_frames(&mut self, frames: u64) {
        self.frames += frames;
        let whole = self.frames / self.sample_rate;
        if whole > self.counted_seconds {
            self.counter.increment(whole - self.counted_seconds);
            self.counted_seconds = whole;
        }
    }

    /// The job ended: counts the remainder, rounded to the nearest second.
    pub fn finish(&mut self) {
        let rounded = (self.frames + self.sample_rate / 2) / self.sample_rate;
        if rounded > self.counted_seconds {
            self.counter.increment(rounded - self.counted_seconds);
            self.counted_seconds = rounded;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            let rss = rss_bytes().unwrap_or(0);
            assert!(rss > 1024 * 1024, "rss {rss}");
        }
    }

    #[test]
    fn audio_seconds_round_at_the_end() {
        let mut c = AudioSecondsCounter::new(44_100);
        c.add_frames(44_100 + 22_049);
        assert_eq!(c.counted_seconds, 1);
        c.finish();
        assert_eq!(c.counted_seconds, 1);
        c.add_frames(2);
        c.finish();
        assert_eq!(c.counted_seconds, 2);
    }
}
