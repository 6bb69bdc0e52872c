//! Load generator: Prometheus remote write 1.0 to a running pipeline on loopback, then a check
//! that every acknowledged sample is stored.
//!
//! ```text
//! cargo run --release --example pipeline -- --serve --config pipeline.toml   # in one shell
//! cargo run --release --example loadgen -- --duration 60 --rate 0 --connections 4 --series 10000
//! ```
//!
//! `--connections` threads each keep one HTTP/1.1 connection open and send one request at a
//! time (`--batch` samples, `--per-series` consecutive samples of each series it carries), paced
//! to `--rate` samples/s in total (0: as fast as acknowledgements come back). Each series
//! belongs to one connection, so its timestamps only increase: 1 ms apart from the start time,
//! values a random walk. Requests are encoded by hand (each series' labels once, as
//! protobuf bytes; snappy per request) and checked once against the pipeline's own `prost`
//! decoder before the run.
//!
//! A `429` or `503` answer is counted; with `--retry` the same request is sent again after
//! `--backoff-ms`, otherwise its samples are given up (never acknowledged). Printed: samples
//! sent, acknowledged and refused, answers by status, p50/p99/max acknowledgement latency,
//! achieved samples/s, the load average, and with `--pid` the server's RSS before and after and
//! per new series. Then, unless `--no-verify`, the query API is asked how many samples of this
//! run are stored (`sum(count_over_time(<metric>{run="<id>"}[...]))` per metric name): it must
//! equal the number acknowledged. The exit code is 1 when it does not.
//!
//! Only loopback addresses are accepted as targets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;

/// Remote-write load against a pipeline on loopback.
#[derive(Parser, Debug, Clone)]
#[command(name = "loadgen")]
struct Args {
    /// Base URL of the pipeline (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:9201")]
    url: String,
    /// Seconds of load.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Target samples per second over all connections; 0 sends as fast as acknowledged.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Concurrent connections (one thread each, one request in flight each).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Series written (spread over the connections and over `--metrics` metric names).
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Metric names the series are spread over (`loadgen_m<i>`).
    #[arg(long, default_value_t = 10)]
    metrics: usize,
    /// Samples per request.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Consecutive samples of one series in a request.
    #[arg(long, default_value_t = 1)]
    per_series: usize,
    /// Send a request answered 429/503 again (after --backoff-ms) instead of giving it up.
    #[arg(long)]
    retry: bool,
    /// Pause before a retry, ms.
    #[arg(long, default_value_t = 100)]
    backoff_ms: u64,
    /// Server process id, for its RSS from /proc.
    #[arg(long)]
    pid: Option<u32>,
    /// Skip the check that stored equals acknowledged.
    #[arg(long)]
    no_verify: bool,
    /// Run id (label `run`); default: derived from the pid and the time.
    #[arg(long)]
    run: Option<String>,
}

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Protobuf by hand (prompb.WriteRequest): each series' labels encoded once.

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_bytes(out: &mut Vec<u8>, tag: u32, b: &[u8]) {
    varint(out, u64::from(tag << 3 | 2));
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// `TimeSeries.labels` entries (field 1, each a `Label` message), ready to copy.
fn encode_labels(pairs: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in pairs {
        let mut l = Vec::new();
        field_bytes(&mut l, 1, n.as_bytes());
        field_bytes(&mut l, 2, v.as_bytes());
        field_bytes(&mut out, 1, &l);
    }
    out
}

/// One `Sample` message: field 1 double, field 2 int64.
fn encode_sample(out: &mut Vec<u8>, t: i64, v: f64) {
    let mut s = [0u8; 20];
    s[0] = 0x09;
    s[1..9].copy_from_slice(&v.to_le_bytes());
    s[9] = 0x10;
    let mut n = 10;
    let mut u = t as u64;
    while u >= 0x80 {
        s[n] = (u as u8) | 0x80;
        u >>= 7;
        n += 1;
    }
    s[n] = u as u8;
    n += 1;
    out.push(0x12); // TimeSeries.samples, field 2
    out.push(n as u8);
    out.extend_from_slice(&s[..n]);
}

struct SeriesState {
    labels: Vec<u8>,
    next_t: i64,
    value: f64,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The next request of one connection: `batch` samples, `per_series` per series, round robin
/// over the connection's series. Returns the snappy body, its sample count and the largest
/// timestamp in it.
struct Encoder {
    series: Vec<SeriesState>,
    cursor: usize,
    rng: Rng,
    raw: Vec<u8>,
    ts: Vec<u8>,
    snap: snap::raw::Encoder,
}

impl Encoder {
    fn next_request(&mut self, batch: usize, per_series: usize) -> (Vec<u8>, u64, i64) {
        self.raw.clear();
        let mut n = 0u64;
        let mut max_t = i64::MIN;
        while (n as usize) < batch {
            let len = self.series.len();
            let s = &mut self.series[self.cursor];
            self.cursor = (self.cursor + 1) % len;
            self.ts.clear();
            self.ts.extend_from_slice(&s.labels);
            let k = per_series.min(batch - n as usize);
            for _ in 0..k {
                // A random walk with two decimals, as gauges look.
                let step = (self.rng.next() % 201) as f64 - 100.0;
                s.value = ((s.value * 100.0 + step).round()) / 100.0;
                encode_sample(&mut self.ts, s.next_t, s.value);
                max_t = max_t.max(s.next_t);
                s.next_t += 1;
            }
            n += k as u64;
            field_bytes(&mut self.raw, 1, &self.ts);
        }
        let body = self.snap.compress_vec(&self.raw).unwrap_or_default();
        (body, n, max_t)
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 keep-alive client.

struct Conn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

struct Answer {
    status: u16,
    body: String,
}

impl Conn {
    fn post(&mut self, path: &str, headers: &str, body: &[u8]) -> std::io::Result<Answer> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(120)))?;
            self.stream = Some(BufReader::new(s));
        }
        let r = self.exchange(path, headers, body);
        if r.is_err() {
            self.stream = None;
        }
        r
    }

    fn exchange(&mut self, path: &str, headers: &str, body: &[u8]) -> std::io::Result<Answer> {
        let addr = self.addr;
        let Some(s) = self.stream.as_mut() else { return Err(std::io::ErrorKind::NotConnected.into()) };
        let mut head = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n", body.len());
        head.push_str(headers);
        head.push_str("\r\n");
        let w = s.get_mut();
        w.write_all(head.as_bytes())?;
        w.write_all(body)?;
        let mut line = String::new();
        s.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|x| x.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let (mut len, mut close) = (0usize, false);
        loop {
            line.clear();
            if s.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                if k == "content-length" {
                    len = v.parse().unwrap_or(0);
                } else if k == "connection" && v.eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        let mut b = vec![0u8; len];
        s.read_exact(&mut b)?;
        if close {
            self.stream = None;
        }
        Ok(Answer { status, body: String::from_utf8_lossy(&b).into_owned() })
    }

    fn get(&mut self, path_and_query: &str) -> std::io::Result<Answer> {
        // One short-lived connection per GET (HTTP/1.0: the server closes).
        let mut s = TcpStream::connect(self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        s.write_all(format!("GET {path_and_query} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).as_bytes())?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text.split_whitespace().nth(1).and_then(|x| x.parse().ok()).unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Ok(Answer { status, body })
    }
}

fn enc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

// ---------------------------------------------------------------------------------------------
// The run.

#[derive(Default)]
struct Tally {
    sent: u64,
    acked: u64,
    given_up: u64,
    requests: u64,
    retries: u64,
    s429: u64,
    s503: u64,
    other: Vec<(u16, String)>,
    io_errors: u64,
    latencies_us: Vec<u32>,
    max_t: i64,
}

fn worker(args: &Args, addr: SocketAddr, mut enc: Encoder, t0: Instant, deadline: Instant, stop: &AtomicBool) -> Tally {
    let mut conn = Conn { addr, stream: None };
    let mut t = Tally { max_t: i64::MIN, ..Tally::default() };
    let headers = "Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\nUser-Agent: telemetry-loadgen\r\n";
    // Seconds between two requests of this connection at the target rate.
    let interval = (args.rate > 0).then(|| args.batch as f64 * args.connections as f64 / args.rate as f64);
    let mut n = 0u64;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        if let Some(iv) = interval {
            let due = t0 + Duration::from_secs_f64(iv * n as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        n += 1;
        let (body, samples, max_t) = enc.next_request(args.batch, args.per_series);
        t.sent += samples;
        loop {
            t.requests += 1;
            let start = Instant::now();
            match conn.post("/api/v1/write", headers, &body) {
                Ok(a) if (200..300).contains(&a.status) => {
                    t.latencies_us.push(start.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                    t.acked += samples;
                    t.max_t = t.max_t.max(max_t);
                    break;
                }
                Ok(a) if a.status == 429 || a.status == 503 => {
                    if a.status == 429 {
                        t.s429 += 1;
                    } else {
                        t.s503 += 1;
                    }
                    if args.retry && Instant::now() < deadline + Duration::from_secs(30) {
                        t.retries += 1;
                        std::thread::sleep(Duration::from_millis(args.backoff_ms));
                        continue;
                    }
                    t.given_up += samples;
                    break;
                }
                Ok(a) => {
                    if t.other.len() < 5 {
                        t.other.push((a.status, a.body.trim().chars().take(200).collect()));
                    }
                    t.given_up += samples;
                    break;
                }
                Err(_) => {
                    // Not acknowledged: the request may or may not have been stored. A retry
                    // sends the same samples again (exact duplicates are accepted, not stored
                    // twice), so the count stays exact.
                    t.io_errors += 1;
                    if t.io_errors > 100 {
                        stop.store(true, Ordering::Relaxed);
                        t.given_up += samples;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(args.backoff_ms));
                }
            }
        }
    }
    t
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// VmRSS and VmHWM of `pid`, KiB.
fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let get =
        |k: &str| -> Option<u64> { s.lines().find(|l| l.starts_with(k))?.split_whitespace().nth(1)?.parse().ok() };
    Some((get("VmRSS:")?, get("VmHWM:")?))
}

/// A gauge from the server's `/metrics`.
fn self_metric(conn: &mut Conn, name: &str) -> Option<f64> {
    let a = conn.get("/metrics").ok()?;
    a.body.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn parse_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = url.strip_prefix("http://").ok_or("--url must start with http://")?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| format!("{hostport}: {e}"))?
        .next()
        .ok_or_else(|| format!("{hostport}: no address"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{addr} is not a loopback address; this load generator only targets this machine"));
    }
    Ok(addr)
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.connections == 0 || args.series == 0 || args.metrics == 0 || args.batch == 0 || args.per_series == 0 {
        return Err("--connections, --series, --metrics, --batch and --per-series must be at least 1".into());
    }
    if args.series < args.connections {
        return Err("--series must be at least --connections (each series belongs to one connection)".into());
    }
    let addr = parse_addr(&args.url)?;
    let start_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let run_id = args.run.clone().unwrap_or_else(|| format!("{}-{}", std::process::id(), start_ms / 1000));
    let mut probe = Conn { addr, stream: None };

    // Series and their owners.
    let mut encoders: Vec<Encoder> = (0..args.connections)
        .map(|k| Encoder {
            series: Vec::new(),
            cursor: 0,
            rng: Rng(0x9e37_79b9_7f4a_7c15 ^ (k as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d)),
            raw: Vec::new(),
            ts: Vec::new(),
            snap: snap::raw::Encoder::new(),
        })
        .collect();
    for i in 0..args.series {
        let labels = encode_labels(&[
            ("__name__", format!("loadgen_m{}", i % args.metrics)),
            ("instance", format!("host-{:04}:9100", i / 100 % 10_000)),
            ("job", "loadgen".into()),
            ("run", run_id.clone()),
            ("series", i.to_string()),
        ]);
        encoders[i % args.connections].series.push(SeriesState { labels, next_t: start_ms, value: 100.0 });
    }

    // Self-check of the hand encoding against the pipeline's prost decoder (then rewind).
    {
        let e = &mut encoders[0];
        let saved: Vec<(i64, f64)> = e.series.iter().map(|s| (s.next_t, s.value)).collect();
        let (body, n, _) = e.next_request(args.batch.min(1000), args.per_series);
        let batch = telemetry_pipeline::remote_write::decode(&body, 64 << 20)?;
        if batch.samples.len() as u64 != n || batch.series.iter().any(|l| l.get("run") != Some(run_id.as_str())) {
            return Err("self-check: the hand-encoded request does not decode as written".into());
        }
        for (s, (t, v)) in e.series.iter_mut().zip(saved) {
            s.next_t = t;
            s.value = v;
        }
        e.cursor = 0;
    }

    let rss0 = args.pid.and_then(rss_kib);
    let series0 = self_metric(&mut probe, "telemetry_head_series");
    println!("run            {run_id}");
    println!(
        "load           {} connections, {} series over {} metric names, {} samples/request ({} per series), {}, {} s",
        args.connections,
        args.series,
        args.metrics,
        args.batch,
        args.per_series,
        if args.rate == 0 { "max rate".to_string() } else { format!("target {} samples/s", args.rate) },
        args.duration
    );
    println!("loadavg before {}", loadavg());

    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(args.duration);
    let handles: Vec<_> = encoders
        .into_iter()
        .map(|e| {
            let (a, stop) = (args.clone(), stop.clone());
            std::thread::spawn(move || worker(&a, addr, e, t0, deadline, &stop))
        })
        .collect();
    let mut total = Tally { max_t: i64::MIN, ..Tally::default() };
    for h in handles {
        let t = h.join().map_err(|_| "a worker thread panicked")?;
        total.sent += t.sent;
        total.acked += t.acked;
        total.given_up += t.given_up;
        total.requests += t.requests;
        total.retries += t.retries;
        total.s429 += t.s429;
        total.s503 += t.s503;
        total.io_errors += t.io_errors;
        total.other.extend(t.other);
        total.latencies_us.extend(t.latencies_us);
        total.max_t = total.max_t.max(t.max_t);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let load_after = loadavg();
    total.latencies_us.sort_unstable();
    let l = &total.latencies_us;
    println!("elapsed        {elapsed:.1} s");
    println!("samples        sent {}, acknowledged {}, given up {}", total.sent, total.acked, total.given_up);
    println!(
        "requests       {} ({} acknowledged, {} answered 429, {} answered 503, {} retries, {} other, {} I/O errors)",
        total.requests,
        l.len(),
        total.s429,
        total.s503,
        total.retries,
        total.other.len(),
        total.io_errors
    );
    for (st, b) in &total.other {
        println!("  answer {st}: {b}");
    }
    println!(
        "ack latency    p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(l, 0.5),
        percentile(l, 0.99),
        percentile(l, 1.0)
    );
    println!("throughput     {:.0} samples/s acknowledged", total.acked as f64 / elapsed);
    println!("loadavg after  {load_after}");
    let series1 = self_metric(&mut probe, "telemetry_head_series");
    if let Some(b) = self_metric(&mut probe, "telemetry_head_bytes") {
        println!(
            "head           {} series, {:.1} MiB (the head's own estimate)",
            series1.unwrap_or(0.0),
            b / 1048576.0
        );
    }
    if let (Some(pid), Some((rss_a, _))) = (args.pid, rss0)
        && let Some((rss_b, hwm)) = rss_kib(pid)
    {
        let new_series = series1.zip(series0).map_or(0.0, |(a, b)| a - b);
        print!(
            "server RSS     {:.1} MiB -> {:.1} MiB (peak {:.1} MiB)",
            rss_a as f64 / 1024.0,
            rss_b as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
        if new_series > 0.0 {
            print!(", {:.0} bytes per new active series", (rss_b as f64 - rss_a as f64) * 1024.0 / new_series);
        }
        println!();
    }
    if args.no_verify {
        return Ok(true);
    }

    // Stored, through the query API: per metric name, so no query loads too many samples.
    let t_eval = total.max_t.max(start_ms) + 1_000;
    let range_s = (t_eval - start_ms) / 1000 + 60;
    let mut stored = 0u64;
    for m in 0..args.metrics.min(args.series) {
        let q = format!("sum(count_over_time(loadgen_m{m}{{run=\"{run_id}\"}}[{range_s}s]))");
        let path = format!("/api/v1/query?query={}&time={}.{:03}", enc(&q), t_eval / 1000, t_eval % 1000);
        let a = probe.get(&path)?;
        if a.status != 200 {
            return Err(format!("query {q}: {} {}", a.status, a.body).into());
        }
        let v: serde_json::Value = serde_json::from_str(&a.body)?;
        stored += v["data"]["result"][0]["value"][1].as_str().map_or(0.0, |s| s.parse::<f64>().unwrap_or(0.0)) as u64;
    }
    let ok = stored == total.acked;
    println!(
        "verify         acknowledged {}, stored {stored} (query API, count_over_time per metric): {}",
        total.acked,
        if ok { "equal" } else { "DIFFERENT" }
    );
    Ok(ok)
}
