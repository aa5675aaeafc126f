//! What the load runs against. Local mode starts the local S3/SQS server
//! (`scripts/local-aws.sh`), a bucket, a queue with its dead-letter queue and N worker processes
//! with S slots each, and stops them all at the end; remote mode takes an existing queue and
//! bucket (real AWS or any S3/SQS endpoint, from the usual AWS environment) and starts nothing.

use anyhow::{bail, Context, Result};
use longwave::io::{S3Context, S3Settings};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The SQS queue and S3 bucket a run uses, with clients for both.
pub struct Target {
    /// The bucket inputs are uploaded to and outputs land in.
    pub bucket: String,
    /// The job queue.
    pub queue_url: String,
    /// The dead-letter queue, when known (local mode creates one).
    pub dlq_url: Option<String>,
    /// Every worker's `/metrics` URL (local workers, or `--metrics` in remote mode).
    pub metrics_urls: Vec<String>,
    /// The prefix the workers write event-driven outputs under (`OUTPUT_PREFIX`).
    pub event_output_prefix: String,
    /// The workers' `PROCESSING_PARAMS` (what event messages do).
    pub event_params: String,
    /// The local workers (empty in remote mode).
    pub workers: Vec<LocalWorker>,
    /// Slots per worker (local), or as stated (remote), for the report.
    pub slots_per_worker: u32,
    /// S3 access.
    pub s3: S3Context,
    /// SQS access (called through [`S3Context::block_on`]).
    pub sqs: aws_sdk_sqs::Client,
    /// Set in local mode: the local server's state folder, stopped on drop.
    local_aws: Option<(PathBuf, PathBuf)>,
}

/// A worker process started by the harness; its log is `worker-N.log` in the run's folder.
pub struct LocalWorker {
    child: SharedChild,
    /// Its `/metrics` URL.
    pub metrics_url: String,
    /// Its log file.
    log: PathBuf,
}

/// A child process that `&self` methods can poll.
struct SharedChild(std::sync::Mutex<Child>);

impl SharedChild {
    fn id(&self) -> u32 {
        self.0.lock().map_or(0, |c| c.id())
    }

    fn try_wait_shared(&self) -> std::io::Result<Option<std::process::ExitStatus>> {
        match self.0.lock() {
            Ok(mut child) => child.try_wait(),
            Err(_) => Ok(None),
        }
    }
}

/// Settings of local mode.
pub struct LocalSettings<'a> {
    /// The repository (for `scripts/local-aws.sh`).
    pub repo: &'a Path,
    /// The longwave binary the workers run.
    pub longwave: &'a Path,
    /// Worker processes.
    pub workers: u32,
    /// Slots per worker.
    pub slots: u32,
    /// The workers' `PROCESSING_PARAMS`.
    pub event_params: &'a str,
    /// Where state and logs go.
    pub dir: &'a Path,
}

/// Settings of remote mode.
pub struct RemoteSettings {
    /// The job queue's URL.
    pub queue_url: String,
    /// The bucket.
    pub bucket: String,
    /// The dead-letter queue's URL, if any.
    pub dlq_url: Option<String>,
    /// The workers' `/metrics` URLs, if reachable.
    pub metrics_urls: Vec<String>,
    /// The workers' `OUTPUT_PREFIX`.
    pub event_output_prefix: String,
    /// The workers' `PROCESSING_PARAMS`.
    pub event_params: String,
    /// Slots per worker, as deployed.
    pub slots_per_worker: u32,
}

/// The output root local workers get for event messages.
const LOCAL_EVENT_PREFIX: &str = "loadtest/events-out";

impl Target {
    /// Starts the local server, bucket, queues and workers.
    ///
    /// # Errors
    /// When the server, a queue or a worker cannot be started.
    pub fn local(settings: &LocalSettings<'_>) -> Result<Target> {
        if !settings.longwave.is_file() {
            bail!(
                "{} not found: build it first (cargo build --release) or pass --longwave",
                settings.longwave.display()
            );
        }
        let state = settings.dir.join("aws-state");
        std::fs::create_dir_all(&state)?;
        let script = settings.repo.join("scripts/local-aws.sh");
        let status = Command::new("bash")
            .arg(&script)
            .arg("start")
            .env("LONGWAVE_AWS_STATE", &state)
            .stdout(Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", script.display()))?;
        if !status.success() {
            bail!("{} start failed ({status})", script.display());
        }
        // From here on the server runs: `Target`'s drop stops it, so build the target early.
        let env = read_env_file(&state.join("env.sh"))?;
        for (key, value) in &env {
            // Single-threaded still (no runtime started yet): the SDK reads these.
            std::env::set_var(key, value);
        }
        let s3 = S3Context::from_env(S3Settings::default())?;
        let sqs = s3.block_on(sqs_client())?;
        let mut target = Target {
            bucket: "longwave-loadtest".to_owned(),
            queue_url: String::new(),
            dlq_url: None,
            metrics_urls: Vec::new(),
            event_output_prefix: LOCAL_EVENT_PREFIX.to_owned(),
            event_params: settings.event_params.to_owned(),
            workers: Vec::new(),
            slots_per_worker: settings.slots,
            s3,
            sqs,
            local_aws: Some((script, state)),
        };
        let client = target.s3.client().clone();
        let bucket = target.bucket.clone();
        target
            .s3
            .block_on(async move { client.create_bucket().bucket(bucket).send().await })?
            .context("cannot create the bucket")?;
        let (queue, dlq) = target.s3.block_on(create_queues(target.sqs.clone()))??;
        target.queue_url = queue;
        target.dlq_url = Some(dlq);
        for n in 0..settings.workers {
            let worker = start_worker(settings, &target, n)?;
            target.metrics_urls.push(worker.metrics_url.clone());
            target.workers.push(worker);
        }
        target.wait_for_metrics(Duration::from_secs(30))?;
        Ok(target)
    }

    /// An existing queue and bucket, reached with the usual AWS environment.
    ///
    /// # Errors
    /// When no AWS configuration (region) is found or the bucket does not exist.
    pub fn remote(settings: RemoteSettings) -> Result<Target> {
        let s3 = S3Context::from_env(S3Settings::default())?;
        let sqs = s3.block_on(sqs_client())?;
        s3.check_bucket_exists(&settings.bucket, &format!("s3://{}", settings.bucket))?;
        let target = Target {
            bucket: settings.bucket,
            queue_url: settings.queue_url,
            dlq_url: settings.dlq_url,
            metrics_urls: settings.metrics_urls,
            event_output_prefix: settings.event_output_prefix,
            event_params: settings.event_params,
            workers: Vec::new(),
            slots_per_worker: settings.slots_per_worker,
            s3,
            sqs,
            local_aws: None,
        };
        // Fail now rather than after the timeout: the queue and every metrics URL must answer.
        target
            .queue_depth(&target.queue_url)
            .with_context(|| format!("the queue {} does not answer", target.queue_url))?;
        target.wait_for_metrics(Duration::from_secs(10))?;
        Ok(target)
    }

    fn wait_for_metrics(&self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        for (n, url) in self.metrics_urls.iter().enumerate() {
            loop {
                if http_get(url).is_ok() {
                    break;
                }
                if let Some(worker) = self.workers.get(n) {
                    if let Ok(Some(status)) = worker.child.try_wait_shared() {
                        let log = std::fs::read_to_string(&worker.log).unwrap_or_default();
                        bail!(
                            "worker {n} exited at startup ({status}): {}",
                            log.lines().last().unwrap_or_default()
                        );
                    }
                }
                if started.elapsed() > timeout {
                    bail!("the worker's metrics at {url} did not answer within {timeout:?}");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// CPU seconds (user + system) each local worker has used so far; empty in remote mode.
    pub fn worker_cpu_seconds(&self) -> Vec<f64> {
        self.workers
            .iter()
            .map(|w| process_cpu_seconds(w.child.id()).unwrap_or(f64::NAN))
            .collect()
    }

    /// Messages visible and in flight on a queue (SQS's approximate counts).
    ///
    /// # Errors
    /// When SQS cannot be asked.
    pub fn queue_depth(&self, url: &str) -> Result<(u64, u64)> {
        let sqs = self.sqs.clone();
        let url = url.to_owned();
        let attributes = self.s3.block_on(async move {
            use aws_sdk_sqs::types::QueueAttributeName as A;
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(A::ApproximateNumberOfMessages)
                .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
        })??;
        let get = |name: aws_sdk_sqs::types::QueueAttributeName| {
            attributes
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        use aws_sdk_sqs::types::QueueAttributeName as A;
        Ok((
            get(A::ApproximateNumberOfMessages),
            get(A::ApproximateNumberOfMessagesNotVisible),
        ))
    }

    /// Stops the local workers (SIGTERM, then SIGKILL after 30 s) and returns each one's CPU
    /// seconds just before it was stopped.
    pub fn stop_workers(&mut self) -> Vec<f64> {
        let cpu = self.worker_cpu_seconds();
        for worker in &mut self.workers {
            if let Ok(child) = worker.child.0.get_mut() {
                stop_child(child);
            }
        }
        cpu
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            if let Ok(child) = worker.child.0.get_mut() {
                stop_child(child);
            }
        }
        if let Some((script, state)) = &self.local_aws {
            let _ = Command::new("bash")
                .arg(script)
                .arg("stop")
                .env("LONGWAVE_AWS_STATE", state)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn stop_child(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on a pid we own (our child, not yet reaped); no memory is involved.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

async fn sqs_client() -> aws_sdk_sqs::Client {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    aws_sdk_sqs::Client::new(&config)
}

async fn create_queues(sqs: aws_sdk_sqs::Client) -> Result<(String, String)> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let dlq = sqs
        .create_queue()
        .queue_name("longwave-loadtest-dlq")
        .send()
        .await
        .context("cannot create the dead-letter queue")?;
    let dlq_url = dlq.queue_url().unwrap_or_default().to_owned();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(A::QueueArn)
        .send()
        .await
        .context("cannot read the dead-letter queue's ARN")?
        .attributes()
        .and_then(|a| a.get(&A::QueueArn).cloned())
        .unwrap_or_default();
    let redrive = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": "5"});
    let queue = sqs
        .create_queue()
        .queue_name("longwave-loadtest")
        .attributes(A::RedrivePolicy, redrive.to_string())
        .attributes(A::VisibilityTimeout, "60")
        .send()
        .await
        .context("cannot create the queue")?;
    Ok((queue.queue_url().unwrap_or_default().to_owned(), dlq_url))
}

fn start_worker(settings: &LocalSettings<'_>, target: &Target, n: u32) -> Result<LocalWorker> {
    let port = free_port()?;
    let log = settings.dir.join(format!("worker-{n}.log"));
    let log_file = std::fs::File::create(&log)?;
    let child = Command::new(settings.longwave)
        .arg("worker")
        .args(["--queue-url", &target.queue_url])
        .args(["--max-jobs", &settings.slots.to_string()])
        .args(["--wait-seconds", "1"])
        .args(["--visibility-timeout", "60"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .args(["--log-format", "json"])
        .args(["--output-prefix", &target.event_output_prefix])
        .args(["--processing-params", settings.event_params])
        .args(["--dlq-url", target.dlq_url.as_deref().unwrap_or_default()])
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("cannot start {}", settings.longwave.display()))?;
    Ok(LocalWorker {
        child: SharedChild(std::sync::Mutex::new(child)),
        metrics_url: format!("http://127.0.0.1:{port}/metrics"),
        log,
    })
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `export KEY=VALUE` lines of `scripts/local-aws.sh`'s env file.
fn read_env_file(path: &Path) -> Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

/// User + system CPU seconds of process `pid`, from `/proc/PID/stat`.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: fields after its closing parenthesis.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 overall, 12 and 13 after the name (1-based).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf reads a constant; no memory is involved.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) / ticks as f64)
}

/// A plain HTTP/1.0 GET of `url` (`http://host:port/path`) with a 2 s timeout: enough for a
/// worker's `/metrics`, without an HTTP client crate.
pub fn http_get(url: &str) -> Result<String> {
    use std::io::{Read, Write};
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// metrics URLs are supported"))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host)?
        .next()
        .with_context(|| format!("{url}: cannot resolve {host}"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut response = String::new();
    stream.take(64 << 20).read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .with_context(|| format!("{url}: not an HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!("{url}: {}", head.lines().next().unwrap_or_default());
    }
    Ok(body.to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_cpu_time_is_readable() {
        let spent = super::process_cpu_seconds(std::process::id()).expect("/proc");
        assert!(spent >= 0.0);
    }
}
