//! Real Prometheus tools against the pipeline, all on 127.0.0.1 (Debian packages `prometheus`
//! 2.42 with `promtool`, and `prometheus-node-exporter`; `.ci/run` installs them).
//!
//! - `prometheus` scrapes `prometheus-node-exporter` and itself every second and remote-writes to
//!   the pipeline (in-process, data directory in a temporary directory). After 20 s the targets
//!   are removed from the `file_sd` files (Prometheus then writes a stale marker in every series),
//!   and once the remote-write queue has drained, every sample Prometheus stored must be in the
//!   pipeline: same series, same count, same timestamps, the same values bit for bit (read from
//!   both through `/api/v1/query` with `{__name__=~".+"}[1h]`), and every series must end with
//!   the stale marker in the pipeline too (read from the head).
//! - `promtool query instant` and `promtool query range` give the same answers from the
//!   pipeline as from that Prometheus for rates, sums by label, `histogram_quantile` over
//!   Prometheus's own histogram and more, after 75 s of scraping so that every `[1m]` window
//!   evaluated lies inside the data. (Where a window starts before a young counter's first
//!   sample, Prometheus 2.42 and Prometheus 3 extrapolate differently: 2.42 limits the
//!   extrapolation to the counter's zero point before testing it against 1.1 sample intervals,
//!   3.x after; the pipeline follows 3.x, so such windows are avoided, not compared.)
//!
//! - The pipeline's own scrape manager scrapes the same node exporter (job `pipeline-node`,
//!   `file_sd`, every second) beside Prometheus: the same series with the same report series,
//!   equal `scrape_samples_scraped` and constants, and a stale marker ending every series once
//!   the target leaves the `file_sd` file.
//!
//! The binaries run with their own flags and ports; no system service is involved. StatsD over
//! UDP is tested in the default suite (`tests/sources.rs`).
#![cfg(feature = "server")]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use telemetry_core::{Queryable, SelectHints, is_stale_nan};
use telemetry_pipeline::config::{FileSdConfig, ScrapeJob};
use telemetry_pipeline::sources::Sources;
use telemetry_pipeline::{Pipeline, PipelineConfig};

const IGNORE: &str = "needs prometheus, prometheus-node-exporter (Debian packages) and ../shared/data";

/// Seconds Prometheus scrapes before the targets are removed, for the sample-by-sample test.
const SCRAPE_SECONDS: u64 = 20;
/// The same for the promtool test: more than the longest range (`[1m]`), the span queried
/// (10 s) and the up to 6 s the evaluation end keeps from the stop (3 s, rounding to a second,
/// the millisecond offset), with a few seconds for a late first scrape. (At 75 s the test
/// failed once when the first scrape came late.)
const SCRAPE_SECONDS_QUERIES: u64 = 80;

// ---------------------------------------------------------------------------------------------
// Plumbing: processes, ports, HTTP.

/// A child process killed (by its own pid) and reaped when dropped.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, bin: &str, args: &[String], dir: &Path) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} ({e}): {IGNORE}"));
        Proc { name, child, log }
    }

    fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        format!("--- {} log (last lines) ---\n{}", self.name, lines[lines.len().saturating_sub(15)..].join("\n"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One HTTP/1.0 request (no chunked answers, the server closes); the status and the body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
    let head = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n", body.len());
    let ct = if body.is_empty() { "" } else { "Content-Type: application/x-www-form-urlencoded\r\n" };
    s.write_all(format!("{head}{ct}\r\n").as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(body).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status line")?;
    Ok((status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()))
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

/// `data` of a successful Prometheus API answer.
fn api(addr: SocketAddr, path_and_query: &str) -> serde_json::Value {
    let (st, body) = http(addr, "GET", path_and_query, b"").unwrap_or_else(|e| panic!("GET {path_and_query}: {e}"));
    assert_eq!(st, 200, "GET {path_and_query} on {addr}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success", "{body}");
    v["data"].clone()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Milliseconds as the API's seconds (`1795278955.437`).
fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

// ---------------------------------------------------------------------------------------------
// The rig: pipeline, node exporter, Prometheus.

struct Rig {
    pipeline: Arc<Pipeline>,
    pipeline_addr: SocketAddr,
    prom_addr: SocketAddr,
    sd_files: [PathBuf; 2],
    own_sd: Option<PathBuf>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<std::thread::JoinHandle<()>>,
    // Dropped before the temporary directory.
    prometheus: Option<Proc>,
    node_exporter: Option<Proc>,
    _dir: tempfile::TempDir,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.prometheus.take();
        self.node_exporter.take();
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.server.take() {
            let _ = t.join();
        }
    }
}

fn prometheus_yml(sd_files: &[PathBuf; 2], pipeline: SocketAddr) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: node\n    file_sd_configs: [{{files: [\"{}\"], refresh_interval: 1s}}]\n  - job_name: prometheus\n    file_sd_configs: [{{files: [\"{}\"], refresh_interval: 1s}}]\nremote_write:\n  - url: http://{pipeline}/api/v1/write\n    queue_config: {{batch_send_deadline: 1s, min_backoff: 50ms, max_backoff: 1s}}\n",
        sd_files[0].display(),
        sd_files[1].display()
    )
}

/// Writes a `file_sd` file atomically (write, then rename).
fn write_sd(path: &Path, target: Option<u16>) {
    let body = match target {
        Some(port) => format!("[{{\"targets\": [\"127.0.0.1:{port}\"]}}]\n"),
        None => "[]\n".into(),
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

impl Rig {
    /// Starts everything and lets Prometheus scrape for `scrape_seconds`.
    /// With `own_scrape`, the pipeline's scrape manager scrapes the node exporter too, every
    /// second, as job `pipeline-node` (targets from the `file_sd` file [`Rig::own_sd`]).
    fn start(scrape_seconds: u64, own_scrape: bool) -> Rig {
        let dir = tempfile::Builder::new().prefix("real-clients-").tempdir().unwrap();
        let (node_port, prom_port) = (free_port(), free_port());
        let mut cfg = PipelineConfig::default();
        cfg.storage.data_dir = dir.path().join("pipeline");
        cfg.anomaly.rules.clear(); // no anomaly_score series: the stores must hold the same series
        cfg.statsd.enabled = false;
        let own_sd = own_scrape.then(|| dir.path().join("pipeline-node.json"));
        if let Some(sd) = &own_sd {
            write_sd(sd, Some(node_port));
            cfg.scrape.jobs.push(ScrapeJob {
                job_name: "pipeline-node".into(),
                scrape_interval_ms: 1000,
                scrape_timeout_ms: 1000,
                file_sd_configs: vec![FileSdConfig { files: vec![sd.clone()], refresh_interval_ms: 200 }],
                ..ScrapeJob::default()
            });
        }
        let pipeline = Arc::new(Pipeline::start(cfg).unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let p = pipeline.clone();
        let server = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(l.local_addr().unwrap()).unwrap();
                let sources = Sources::start(p.clone()).await.unwrap();
                telemetry_pipeline::server::serve(p, l, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
                sources.shutdown().await;
            });
        });
        let pipeline_addr = addr_rx.recv().unwrap();

        let node_exporter = Proc::spawn(
            "node-exporter",
            "prometheus-node-exporter",
            &[format!("--web.listen-address=127.0.0.1:{node_port}"), "--no-collector.systemd".into()],
            dir.path(),
        );
        let prom_config = dir.path().join("prometheus.yml");
        let sd_files = [dir.path().join("node.json"), dir.path().join("prometheus.json")];
        write_sd(&sd_files[0], Some(node_port));
        write_sd(&sd_files[1], Some(prom_port));
        std::fs::write(&prom_config, prometheus_yml(&sd_files, pipeline_addr)).unwrap();
        let prometheus = Proc::spawn(
            "prometheus",
            "prometheus",
            &[
                format!("--config.file={}", prom_config.display()),
                format!("--storage.tsdb.path={}", dir.path().join("prometheus").display()),
                format!("--web.listen-address=127.0.0.1:{prom_port}"),
                "--web.enable-lifecycle".into(),
            ],
            dir.path(),
        );
        let prom_addr: SocketAddr = format!("127.0.0.1:{prom_port}").parse().unwrap();
        let rig = Rig {
            pipeline,
            pipeline_addr,
            prom_addr,
            sd_files,
            own_sd,
            stop: Some(stop),
            server: Some(server),
            prometheus: Some(prometheus),
            node_exporter: Some(node_exporter),
            _dir: dir,
        };
        let logs = || {
            format!(
                "{}\n{}",
                rig.prometheus.as_ref().map(Proc::log_tail).unwrap_or_default(),
                rig.node_exporter.as_ref().map(Proc::log_tail).unwrap_or_default()
            )
        };
        let t0 = Instant::now();
        loop {
            let up = http(rig.prom_addr, "GET", "/api/v1/query?query=sum(up)", b"")
                .ok()
                .and_then(|(st, b)| (st == 200).then_some(b))
                .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
                .and_then(|v| v["data"]["result"][0]["value"][1].as_str().map(str::to_string));
            if up.as_deref() == Some("2") {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "both targets not up after 60 s:\n{}", logs());
            std::thread::sleep(Duration::from_millis(250));
        }
        std::thread::sleep(Duration::from_secs(scrape_seconds));
        rig
    }

    /// Removes the targets (Prometheus ends every series with a stale marker), waits until
    /// `up` has gone stale in Prometheus and in the pipeline, then until the pipeline holds as
    /// many samples as Prometheus and the count has settled. Returns the evaluation time for
    /// comparisons (ms) and the time the targets were removed.
    fn stop_scraping_and_drain(&self) -> (i64, i64) {
        let stopped_at = now_ms();
        for f in &self.sd_files {
            write_sd(f, None);
        }
        // Discovery updates reach the scrape manager every 5 s; the end-of-run stale markers
        // follow within two scrape intervals, and remote write within a second.
        for addr in [self.prom_addr, self.pipeline_addr] {
            wait_for("`up` to go stale", Duration::from_secs(60), || {
                let q = format!("/api/v1/query?query=up&time={}", secs(now_ms()));
                api(addr, &q)["result"].as_array().is_some_and(Vec::is_empty)
            });
        }
        let t = now_ms();
        // Counted here: Prometheus 2.42 refuses `sum(count_over_time({__name__=~".+"}[1h]))`
        // ("vector cannot contain metrics with the same labelset": it drops the metric name
        // before aggregating, where Prometheus 3 and the pipeline delay that).
        let count = |addr| -> usize { raw_samples(addr, t).values().map(Vec::len).sum() };
        let mut last = (usize::MAX, 0);
        wait_for("the pipeline to hold every sample Prometheus stored", Duration::from_secs(90), || {
            let now = (count(self.prom_addr), count(self.pipeline_addr));
            let settled = now.0 == now.1 && now == last;
            last = now;
            settled
        });
        (t, stopped_at)
    }
}

// ---------------------------------------------------------------------------------------------
// Reading results.

/// Series (labels as sorted JSON) → points `(timestamp ms, value)` of a matrix or vector.
type Points = BTreeMap<String, Vec<(i64, f64)>>;

fn point(p: &serde_json::Value) -> (i64, f64) {
    let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
    let v = match p[1].as_str().unwrap() {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        s => s.parse().unwrap(),
    };
    (t, v)
}

fn points(result: &serde_json::Value) -> Points {
    let mut out = Points::new();
    for s in result.as_array().unwrap() {
        let labels: BTreeMap<String, String> = serde_json::from_value(s["metric"].clone()).unwrap();
        let key = serde_json::to_string(&labels).unwrap();
        let pts: Vec<(i64, f64)> = match (s.get("values"), s.get("value")) {
            (Some(vs), _) => vs.as_array().unwrap().iter().map(point).collect(),
            (None, Some(v)) => vec![point(v)],
            _ => panic!("neither value nor values: {s}"),
        };
        assert!(out.insert(key, pts).is_none(), "series twice in one answer");
    }
    out
}

/// Every sample of the last hour before `t` (ms), stale markers excepted, by series.
fn raw_samples(addr: SocketAddr, t: i64) -> Points {
    points(&api(addr, &format!("/api/v1/query?query={}&time={}", enc(r#"{__name__=~".+"}[1h]"#), secs(t)))["result"])
}

// ---------------------------------------------------------------------------------------------
// (a) Every sample Prometheus stored is in the pipeline.

#[test]
#[ignore = "needs prometheus, prometheus-node-exporter (Debian packages) and ../shared/data"]
fn prometheus_remote_write_stores_every_sample_prometheus_stored() {
    let rig = Rig::start(SCRAPE_SECONDS, false);
    let (t, stopped_at) = rig.stop_scraping_and_drain();
    let (prom, ours) = (raw_samples(rig.prom_addr, t), raw_samples(rig.pipeline_addr, t));
    let n_prom: usize = prom.values().map(Vec::len).sum();
    let n_ours: usize = ours.values().map(Vec::len).sum();
    eprintln!(
        "Prometheus stored {} series, {n_prom} samples; the pipeline {} series, {n_ours} samples",
        prom.len(),
        ours.len()
    );
    assert!(prom.len() > 300 && n_prom > 300 * SCRAPE_SECONDS as usize / 2, "too little was scraped");

    let missing: Vec<&String> = prom.keys().filter(|k| !ours.contains_key(*k)).collect();
    let extra: Vec<&String> = ours.keys().filter(|k| !prom.contains_key(*k)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "series missing: {missing:?}\nseries extra: {extra:?}");
    let mut mismatches = Vec::new();
    for (k, p) in &prom {
        let o = &ours[k];
        if p.len() != o.len() {
            mismatches.push(format!("{k}: {} samples in Prometheus, {} in the pipeline", p.len(), o.len()));
            continue;
        }
        for (a, b) in p.iter().zip(o) {
            // The same float, to the bit (NaN payloads cannot cross the JSON API; NaN = NaN).
            let same = a.0 == b.0 && (a.1.to_bits() == b.1.to_bits() || (a.1.is_nan() && b.1.is_nan()));
            if !same {
                mismatches.push(format!("{k}: Prometheus {a:?}, pipeline {b:?}"));
                break;
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} series differ:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(20)].join("\n")
    );
    assert_eq!(n_prom, n_ours);

    // Stale markers are not visible through the query API; read them from the head: when the
    // jobs were removed, Prometheus marked every series stale, and remote write carried that.
    let head = rig.pipeline.storage();
    let q = head.querier(i64::MIN, i64::MAX).unwrap();
    let (mut series, mut ending_stale) = (0, 0);
    for s in q.select(&SelectHints::default(), &[]).unwrap() {
        let mut s = s.unwrap();
        let b = s.samples.collect_all().unwrap();
        series += 1;
        if let (Some(&t), Some(&v)) = (b.timestamps.last(), b.values.last())
            && is_stale_nan(v)
            && t >= stopped_at - 2_000
        {
            ending_stale += 1;
        }
    }
    eprintln!("{ending_stale} of {series} series end with a stale marker written after the targets were removed");
    assert_eq!(series, prom.len());
    assert_eq!(ending_stale, series, "every series ends with Prometheus's stale marker");
}

// ---------------------------------------------------------------------------------------------
// (b) promtool gives the same answers from both.

fn promtool(args: &[String]) -> serde_json::Value {
    let out = Command::new("promtool").args(args).output().unwrap_or_else(|e| panic!("promtool: {e}: {IGNORE}"));
    assert!(out.status.success(), "promtool {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("promtool {args:?} printed no JSON ({e})"))
}

/// Equal, or within 1e-9 relative; NaN equals NaN. Differences in the last bits come from the
/// order of floating-point operations: `sum` and `histogram_quantile` add in another order,
/// and `avg_over_time` is an incremental mean in Prometheus 2.42 but a Kahan-compensated sum
/// divided by the count in Prometheus 3 and the pipeline.
fn close(a: f64, b: f64) -> (bool, bool) {
    if a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()) {
        return (true, true);
    }
    (false, (a - b).abs() <= 1e-9 * a.abs().max(b.abs()))
}

#[test]
#[ignore = "needs prometheus, prometheus-node-exporter (Debian packages) and ../shared/data"]
fn promtool_queries_answer_the_same_from_the_pipeline_and_prometheus() {
    let rig = Rig::start(SCRAPE_SECONDS_QUERIES, false);
    let (t, stopped_at) = rig.stop_scraping_and_drain();

    // Prometheus 2.42 selects ranges [t - r, t] and the pipeline (t - r, t], as Prometheus 3
    // does: they differ only for a sample exactly on the left edge. Scrape timestamps keep one
    // millisecond offset per target, so evaluate at an offset no sample has.
    let raw = raw_samples(rig.pipeline_addr, t);
    let used: BTreeSet<i64> = raw.values().flatten().map(|p| p.0.rem_euclid(1000)).collect();
    let offset = (0..1000).max_by_key(|o| used.iter().map(|u| (o - u).abs().min(1000 - (o - u).abs())).min()).unwrap();
    eprintln!("sample timestamps use millisecond offsets {used:?}; evaluating at offset {offset}");
    let end = (stopped_at - 3_000).div_euclid(1000) * 1000 + offset - 1000;
    let start = end - 10_000;
    let first = raw.values().filter_map(|p| p.first()).map(|p| p.0).min().unwrap();
    assert!(start - 60_000 > first + 1_000, "every [1m] window must lie inside the data");

    let queries = [
        "rate(node_cpu_seconds_total[1m])",
        "sum by (mode) (rate(node_cpu_seconds_total[1m]))",
        "histogram_quantile(0.9, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[1m])))",
        "histogram_quantile(0.5, rate(prometheus_http_request_duration_seconds_bucket[30s]))",
        "count by (job) (up)",
        "sum by (job) (scrape_samples_scraped)",
        "irate(node_network_receive_bytes_total[10s])",
        "increase(prometheus_tsdb_head_samples_appended_total[10s])",
        "increase(prometheus_http_requests_total[1m])",
        "avg_over_time(node_load1[15s])",
        "max by (job) (scrape_duration_seconds)",
        "node_memory_MemAvailable_bytes / on (instance) node_memory_MemTotal_bytes",
        "quantile_over_time(0.9, scrape_duration_seconds[15s])",
        "sum(rate(process_cpu_seconds_total[30s])) by (job)",
        "deriv(process_resident_memory_bytes[15s])",
        "changes(node_context_switches_total[15s])",
    ];
    let urls = [format!("http://{}", rig.prom_addr), format!("http://{}", rig.pipeline_addr)];
    let (mut identical, mut within, mut total_series) = (0usize, 0usize, 0usize);
    let mut problems = Vec::new();
    for q in queries {
        for kind in ["instant", "range"] {
            let answers: Vec<Points> = urls
                .iter()
                .map(|u| {
                    let mut args = vec!["query".to_string(), kind.to_string(), "-o".into(), "json".into()];
                    if kind == "instant" {
                        args.push(format!("--time={}", secs(end)));
                    } else {
                        args.extend([
                            format!("--start={}", secs(start)),
                            format!("--end={}", secs(end)),
                            "--step=2s".into(),
                        ]);
                    }
                    args.extend([u.clone(), q.to_string()]);
                    points(&promtool(&args))
                })
                .collect();
            let (prom, ours) = (&answers[0], &answers[1]);
            if prom.is_empty() {
                problems.push(format!("{kind} {q}: Prometheus answered nothing (a query that checks nothing)"));
            }
            if prom.keys().ne(ours.keys()) {
                problems.push(format!("{kind} {q}: series differ: {:?} vs {:?}", prom.keys(), ours.keys()));
                continue;
            }
            for (k, p) in prom {
                total_series += 1;
                let o = &ours[k];
                if p.len() != o.len() || p.iter().zip(o).any(|(a, b)| a.0 != b.0) {
                    problems.push(format!("{kind} {q} {k}: timestamps differ: {p:?} vs {o:?}"));
                    continue;
                }
                let mut exact = true;
                for (a, b) in p.iter().zip(o) {
                    match close(a.1, b.1) {
                        (true, _) => {}
                        (false, true) => exact = false,
                        (false, false) => {
                            problems.push(format!("{kind} {q} {k} @{}: Prometheus {}, pipeline {}", a.0, a.1, b.1));
                            exact = false;
                        }
                    }
                }
                if exact {
                    identical += 1;
                } else {
                    within += 1;
                    eprintln!("{kind} {q} {k}: within 1e-9, not identical: {p:?} vs {o:?}");
                }
            }
        }
    }
    eprintln!(
        "{} queries, instant and range: {total_series} result series, {identical} identical to the bit, {within} within 1e-9",
        queries.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// (c) The pipeline's own scrape manager against the same node exporter.

/// Label sets (as sorted JSON, `job` removed) of `/api/v1/series` for `selector` over
/// `[start, end]`.
fn series_without_job(addr: SocketAddr, selector: &str, start: i64, end: i64) -> BTreeSet<String> {
    let data =
        api(addr, &format!("/api/v1/series?match%5B%5D={}&start={}&end={}", enc(selector), secs(start), secs(end)));
    data.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let mut l: BTreeMap<String, String> = serde_json::from_value(s.clone()).unwrap();
            l.remove("job");
            serde_json::to_string(&l).unwrap()
        })
        .collect()
}

/// The value of a one-series instant query.
fn scalar(addr: SocketAddr, q: &str, t: i64) -> f64 {
    let v = points(&api(addr, &format!("/api/v1/query?query={}&time={}", enc(q), secs(t)))["result"]);
    assert_eq!(v.len(), 1, "{q} on {addr}: {v:?}");
    v.values().next().unwrap()[0].1
}

#[test]
#[ignore = "needs prometheus, prometheus-node-exporter (Debian packages) and ../shared/data"]
fn the_pipelines_scrape_manager_scrapes_node_exporter_as_prometheus_does() {
    let started = now_ms();
    let rig = Rig::start(15, true);
    let t = now_ms();
    let (prom, ours) = (rig.prom_addr, rig.pipeline_addr);

    // The same series from the same exposition, report series (up, scrape_duration_seconds,
    // scrape_samples_scraped, scrape_samples_post_metric_relabeling, scrape_series_added)
    // included.
    let theirs = series_without_job(prom, r#"{job="node"}"#, started, t);
    let mine = series_without_job(ours, r#"{job="pipeline-node"}"#, started, t);
    eprintln!("Prometheus's node job: {} series; the pipeline's own: {}", theirs.len(), mine.len());
    assert!(theirs.len() > 300, "too few series scraped");
    let only_prom: Vec<&String> = theirs.difference(&mine).take(10).collect();
    let only_ours: Vec<&String> = mine.difference(&theirs).take(10).collect();
    assert!(
        only_prom.is_empty() && only_ours.is_empty(),
        "only in Prometheus: {only_prom:?}\nonly in the pipeline: {only_ours:?}"
    );

    // Report series and values that cannot differ between two scrapes of one exporter.
    let at = t - 500;
    assert_eq!(scalar(ours, r#"up{job="pipeline-node"}"#, at), 1.0);
    for q in ["scrape_samples_scraped", "node_boot_time_seconds", "node_memory_MemTotal_bytes"] {
        let (a, b) = (
            scalar(prom, &format!(r#"{q}{{job="node"}}"#), at),
            scalar(ours, &format!(r#"{q}{{job="pipeline-node"}}"#), at),
        );
        eprintln!("{q}: Prometheus {a}, pipeline {b}");
        assert_eq!(a, b, "{q}");
    }
    let d = scalar(ours, r#"scrape_duration_seconds{job="pipeline-node"}"#, at);
    assert!(d > 0.0 && d < 1.0, "scrape_duration_seconds {d}");
    let n = scalar(ours, r#"count_over_time(up{job="pipeline-node"}[10s])"#, at);
    assert!((9.0..=11.0).contains(&n), "{n} scrapes in 10 s at 1 s intervals");
    // Counters move on between the two scrapers' moments, but their rates agree (summed over
    // the modes, about the number of cores).
    let rate = |addr, job: &str| scalar(addr, &format!(r#"sum(rate(node_cpu_seconds_total{{job="{job}"}}[10s]))"#), at);
    let (a, b) = (rate(prom, "node"), rate(ours, "pipeline-node"));
    eprintln!("sum of CPU rates over 10 s: Prometheus {a:.3}, pipeline {b:.3} (cores busy)");
    assert!((a - b).abs() < 0.5, "CPU rates {a} vs {b}");

    // The target leaves the file_sd file: every series of the job ends with a stale marker.
    let removed = now_ms();
    write_sd(rig.own_sd.as_ref().unwrap(), None);
    wait_for("the pipeline's node target to go stale", Duration::from_secs(30), || {
        let q = format!("/api/v1/query?query={}&time={}", enc(r#"up{job="pipeline-node"}"#), secs(now_ms()));
        api(ours, &q)["result"].as_array().is_some_and(Vec::is_empty)
    });
    let head = rig.pipeline.storage();
    let q = head.querier(i64::MIN, i64::MAX).unwrap();
    let m = [telemetry_core::Matcher::equal("job", "pipeline-node")];
    let (mut series, mut ending_stale) = (0, 0);
    for s in q.select(&SelectHints::default(), &m).unwrap() {
        let mut s = s.unwrap();
        let b = s.samples.collect_all().unwrap();
        series += 1;
        if b.values.last().is_some_and(|&v| is_stale_nan(v)) && b.timestamps.last().is_some_and(|&t| t >= removed) {
            ending_stale += 1;
        }
    }
    eprintln!("{ending_stale} of {series} series of the pipeline's job end with a stale marker");
    assert_eq!(ending_stale, series);
}
