//! A fault-injecting HTTP proxy in front of the local S3/SQS server: requests pass through
//! untouched unless a [`Fault`] rule matches them, then the rule answers instead of the server
//! (a 503 SlowDown, a 500) or breaks the connection (reset, a body cut mid-way), or delays the
//! request. Rules are added and removed while tests run, so faults go on and off by schedule.
//!
//! Why a proxy and not a mock: the code under test talks to the real server through the real
//! SDK, retries included; only the failures are made up, at the wire, where real ones happen.
//!
//! HTTP/1.1 only, as the AWS SDK speaks it to a plain `http://` endpoint: each client
//! connection gets its own upstream connection; requests are read whole (Content-Length or
//! chunked bodies) before a decision, responses are copied back byte for byte. The SDK does not
//! pipeline, so an injected answer never interleaves with a server response.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a matching rule does to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Answer `503 SlowDown` (S3's throttling reply) without forwarding.
    SlowDown,
    /// Answer `500 InternalError` without forwarding.
    InternalError,
    /// Close both connections without an answer (the client sees a reset/EOF).
    Reset,
    /// Forward the request, then send only the first half of the response and close.
    CutResponse,
    /// Forward the request after this long.
    Delay(Duration),
    /// Answer `501 NotImplemented` to a request carrying `If-None-Match` (an S3 clone without
    /// conditional writes); forward the others.
    RejectConditional,
    /// Forward the request without its `Range` header, as servers that ignore ranges behave:
    /// the answer is `200` with the whole object.
    IgnoreRange,
}

/// A fault rule: requests whose method and target (path + query) match get `action`, for the
/// next `times` matches (`u64::MAX` = until removed).
#[derive(Debug, Clone)]
pub struct Fault {
    /// `PUT`, `POST` … or `None` for any.
    pub method: Option<&'static str>,
    /// Every one of these must occur in the request line's target (e.g. `"uploadId="`,
    /// `".manifest.json"`) or, for SQS's JSON protocol, in the `X-Amz-Target` header
    /// (e.g. `"DeleteMessage"`).
    pub contains: Vec<String>,
    /// What happens.
    pub action: Action,
    /// How many more matching requests get it.
    pub times: u64,
}

struct Rule {
    id: u64,
    fault: Fault,
}

/// The proxy. Dropping it stops accepting connections (open ones end with their clients).
pub struct FaultProxy {
    addr: std::net::SocketAddr,
    rules: Arc<Mutex<Vec<Rule>>>,
    next_id: AtomicU64,
    injected: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let injected = Arc::new(AtomicU64::new(0));
        let forwarded = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (r, i, f, s) = (
            Arc::clone(&rules),
            Arc::clone(&injected),
            Arc::clone(&forwarded),
            Arc::clone(&stop),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let (r, i, f, up) = (
                    Arc::clone(&r),
                    Arc::clone(&i),
                    Arc::clone(&f),
                    upstream.clone(),
                );
                std::thread::spawn(move || {
                    let _ = serve(client, &up, &r, &i, &f);
                });
            }
        });
        FaultProxy {
            addr,
            rules,
            next_id: AtomicU64::new(1),
            injected,
            forwarded,
            stop,
        }
    }

    /// The endpoint URL clients use instead of the server's.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a rule before every other (the first matching rule acts): an outage that must
    /// override the short faults already scheduled. Returns its id for [`FaultProxy::remove`].
    #[allow(dead_code)] // not every test binary that includes `common` uses it
    pub fn add_first(&self, fault: Fault) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.rules.lock().unwrap().insert(0, Rule { id, fault });
        id
    }

    /// Adds a rule after the others (the first matching rule acts); returns its id for
    /// [`FaultProxy::remove`].
    pub fn add(&self, fault: Fault) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.rules.lock().unwrap().push(Rule { id, fault });
        id
    }

    /// Removes a rule (no-op when it is used up already).
    pub fn remove(&self, id: u64) {
        self.rules.lock().unwrap().retain(|r| r.id != id);
    }

    /// Removes every rule: from now on everything passes.
    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// Requests answered or broken by a rule so far (delays not counted).
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// Requests forwarded to the server so far.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
    }
}

/// One request as read from the client.
struct Request {
    method: String,
    target: String,
    amz_target: String,
    /// It carries `If-None-Match`.
    conditional: bool,
    /// Head and body bytes exactly as received (forwarded unchanged).
    raw: Vec<u8>,
}

/// Reads one request; `None` at a clean end of the connection. An `Expect: 100-continue` is
/// answered here (and not forwarded): the proxy wants the whole request before it decides.
fn read_request(
    reader: &mut BufReader<TcpStream>,
    client: &mut TcpStream,
) -> std::io::Result<Option<Request>> {
    let mut raw = Vec::new();
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    raw.extend_from_slice(line.as_bytes());
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let (mut length, mut chunked, mut amz_target) = (0usize, false, String::new());
    let mut expects_continue = false;
    let mut conditional = false;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            return Ok(None);
        }
        if header == "\r\n" {
            raw.extend_from_slice(header.as_bytes());
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "x-amz-target" => amz_target = value.to_owned(),
                "if-none-match" => conditional = true,
                "expect" if value.eq_ignore_ascii_case("100-continue") => {
                    expects_continue = true;
                    continue;
                }
                _ => {}
            }
        }
        raw.extend_from_slice(header.as_bytes());
    }
    if expects_continue {
        client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    if chunked {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            raw.extend_from_slice(size_line.as_bytes());
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0u8; size + 2];
            reader.read_exact(&mut chunk)?;
            raw.extend_from_slice(&chunk);
            if size == 0 {
                break;
            }
        }
    } else {
        let start = raw.len();
        raw.resize(start + length, 0);
        reader.read_exact(&mut raw[start..])?;
    }
    Ok(Some(Request {
        method,
        target,
        amz_target,
        conditional,
        raw,
    }))
}

/// The first rule matching `request`, used up by one.
fn matching(rules: &Mutex<Vec<Rule>>, request: &Request) -> Option<Action> {
    let mut rules = rules.lock().unwrap();
    let position = rules.iter().position(|r| {
        r.fault.times > 0
            && r.fault.method.is_none_or(|m| m == request.method)
            && r.fault.contains.iter().all(|c| {
                request.target.contains(c.as_str()) || request.amz_target.contains(c.as_str())
            })
    })?;
    let rule = &mut rules[position];
    rule.fault.times = rule.fault.times.saturating_sub(1);
    Some(rule.fault.action)
}

/// `raw` (a request's head and body) without the header `name` (lower case).
fn without_header(raw: &[u8], name: &str) -> Vec<u8> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut out: Vec<u8> = head
        .split_inclusive("\r\n")
        .filter(|line| {
            line.split_once(':')
                .is_none_or(|(n, _)| !n.trim().eq_ignore_ascii_case(name))
        })
        .collect::<String>()
        .into_bytes();
    out.extend_from_slice(&raw[head_end..]);
    out
}

fn error_response(status: &str, code: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected \
         by the test's fault proxy</Message></Error>"
    );
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves one client connection until either side closes it.
fn serve(
    client: TcpStream,
    upstream: &str,
    rules: &Mutex<Vec<Rule>>,
    injected: &AtomicU64,
    forwarded: &AtomicU64,
) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    let mut to_client = client.try_clone()?;
    let mut to_server = server.try_clone()?;
    // Responses flow back on their own thread, byte for byte, unless a cut is armed.
    let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cut_flag = Arc::clone(&cut);
    let mut from_server = server.try_clone()?;
    let mut back_to_client = client.try_clone()?;
    let pump = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_server.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if cut_flag.load(Ordering::Relaxed) {
                let _ = back_to_client.write_all(&buf[..n.div_ceil(2)]);
                break;
            }
            if back_to_client.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = back_to_client.shutdown(Shutdown::Both);
        let _ = from_server.shutdown(Shutdown::Both);
    });
    let mut reader = BufReader::new(client);
    while let Some(request) = read_request(&mut reader, &mut to_client)? {
        match matching(rules, &request) {
            Some(Action::SlowDown) => {
                injected.fetch_add(1, Ordering::Relaxed);
                to_client.write_all(&error_response("503 Slow Down", "SlowDown"))?;
            }
            Some(Action::InternalError) => {
                injected.fetch_add(1, Ordering::Relaxed);
                to_client.write_all(&error_response(
                    "500 Internal Server Error",
                    "InternalError",
                ))?;
            }
            Some(Action::Reset) => {
                injected.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Some(Action::CutResponse) => {
                injected.fetch_add(1, Ordering::Relaxed);
                cut.store(true, Ordering::Relaxed);
                forwarded.fetch_add(1, Ordering::Relaxed);
                to_server.write_all(&request.raw)?;
            }
            Some(Action::RejectConditional) if request.conditional => {
                injected.fetch_add(1, Ordering::Relaxed);
                to_client.write_all(&error_response("501 Not Implemented", "NotImplemented"))?;
            }
            Some(Action::RejectConditional) => {
                forwarded.fetch_add(1, Ordering::Relaxed);
                to_server.write_all(&request.raw)?;
            }
            Some(Action::IgnoreRange) => {
                injected.fetch_add(1, Ordering::Relaxed);
                forwarded.fetch_add(1, Ordering::Relaxed);
                to_server.write_all(&without_header(&request.raw, "range"))?;
            }
            Some(Action::Delay(pause)) => {
                std::thread::sleep(pause);
                forwarded.fetch_add(1, Ordering::Relaxed);
                to_server.write_all(&request.raw)?;
            }
            None => {
                forwarded.fetch_add(1, Ordering::Relaxed);
                to_server.write_all(&request.raw)?;
            }
        }
    }
    let _ = to_client.shutdown(Shutdown::Both);
    let _ = to_server.shutdown(Shutdown::Both);
    let _ = pump.join();
    Ok(())
}
