//! The scrape manager (cargo feature `server`): Prometheus-style pull of text expositions.
//!
//! Semantics follow Prometheus's `scrape` package (`scrape/scrape.go`, `scrape/target.go`):
//!
//! - **Targets** come from each job's `static_configs` and `file_sd_configs` (Prometheus
//!   `file_sd` files: a JSON or YAML list of `{targets: [...], labels: {...}}`, chosen by the
//!   `.json`/`.yml`/`.yaml` extension; a `*` wildcard may stand in the last path element).
//!   Files are polled every `refresh_interval_ms` and re-read when their modification time
//!   changes; a file that no longer parses keeps its previous targets (the error is counted).
//! - **Target labels**: the group's labels, then `job` (the job name) and `instance` (the
//!   address) unless the group sets them; labels starting with `__` are dropped.
//! - **Sample labels**: without `honor_labels`, an exposed label that a target label also
//!   names is kept as `exported_<name>` (`exported_exported_<name>` if that is taken, and so
//!   on) and the target's value wins; with `honor_labels`, the exposed value wins. Empty values
//!   mean no label.
//! - **Timestamps**: with `honor_timestamps` (the default) a timestamp in the exposition is
//!   used; otherwise, and for samples without one, the time the scrape started.
//! - **Report series** per scrape, with the target labels: `up` (1 or 0),
//!   `scrape_duration_seconds`, `scrape_samples_scraped`,
//!   `scrape_samples_post_metric_relabeling` (equal to the former: there is no relabelling) and
//!   `scrape_series_added` (series in this scrape that were not in the previous one).
//! - **Staleness**: a series of the previous scrape missing from this one gets a stale marker
//!   ([`STALE_NAN`]) at this scrape's time; a failed scrape (HTTP error, timeout, a body that
//!   does not parse) marks every series of the previous scrape stale; a target that disappears
//!   (or the manager stopping) marks its series and its report series stale. Series exposed
//!   with explicit timestamps are not marked stale, as in Prometheus.
//! - Each target is scraped every interval with a fixed offset derived from its labels (so
//!   targets spread over the interval), with `Accept` preferring OpenMetrics and
//!   `X-Prometheus-Scrape-Timeout-Seconds`. The body is read up to `server.max_body_bytes`.
//!   Samples are submitted with backpressure (a scrape waits for queue room).
//!
//! Only `http` is supported (no TLS, no authentication, no relabelling rules).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use telemetry_core::format::text::{Entry, Flavor, TextDecoder};
use telemetry_core::{Labels, LabelsBuilder, METRIC_NAME, Metadata, STALE_NAN};
use tokio::sync::watch;

use crate::batch::{Batch, BatchBuilder};
use crate::config::{ScrapeConfig, ScrapeJob, StaticTargets};
use crate::pipeline::Pipeline;
use crate::statsd::stopped;

const ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";

/// One decoded exposition line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExposedSample {
    pub(crate) labels: Labels,
    pub(crate) timestamp_ms: Option<i64>,
    pub(crate) value: f64,
}

/// Samples and family metadata of an exposition.
pub(crate) type Exposition = (Vec<ExposedSample>, Vec<(String, Metadata)>);

/// Decodes a whole exposition; the flavour from the `Content-Type` (OpenMetrics when it
/// says `application/openmetrics-text`, else Prometheus 0.0.4).
///
/// # Errors
/// A message naming the line and column of the first bad line.
pub(crate) fn decode_exposition(body: &[u8], content_type: &str) -> Result<Exposition, String> {
    let flavor =
        if content_type.starts_with("application/openmetrics-text") { Flavor::OpenMetrics } else { Flavor::Prometheus };
    let mut out = Vec::new();
    let mut md: BTreeMap<String, Metadata> = BTreeMap::new();
    let mut dec = TextDecoder::new(body, flavor);
    while let Some(e) = dec.next() {
        match e.map_err(|e| format!("cannot parse {flavor} text: {e}"))? {
            Entry::Sample(s) => {
                let labels = s.to_labels().map_err(|err| format!("line {}: {err}", dec.line()))?;
                out.push(ExposedSample { labels, timestamp_ms: s.timestamp_ms, value: s.value });
            }
            Entry::Type { family, metric_type } => md.entry(family.to_string()).or_default().metric_type = metric_type,
            Entry::Help { family, help } => {
                md.entry(family.to_string()).or_default().help = help.unescape().into_owned()
            }
            Entry::Unit { family, unit } => md.entry(family.to_string()).or_default().unit = unit.to_string(),
            _ => {}
        }
    }
    Ok((out, md.into_iter().collect()))
}

/// Merges target labels into a scraped sample's labels, as Prometheus's `mutateSampleLabels`.
pub fn merge_target_labels(sample: &Labels, target: &Labels, honor_labels: bool) -> Labels {
    let mut b = sample.to_builder();
    for l in target.iter() {
        let existing = sample.get(&l.name).filter(|v| !v.is_empty());
        match (existing, honor_labels) {
            (Some(_), true) => {}
            (Some(v), false) => {
                let mut name = format!("exported_{}", l.name);
                while sample.get(&name).is_some() {
                    name = format!("exported_{name}");
                }
                b.set(&name, v);
                b.set(&l.name, &l.value);
            }
            (None, _) => {
                b.set(&l.name, &l.value);
            }
        }
    }
    // Labels are validated already; fall back to the sample's own on a limit error.
    b.build().unwrap_or_else(|_| sample.clone())
}

/// A target group read from a `file_sd` file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
struct FileGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Reads one `file_sd` file (JSON or YAML by extension).
fn read_sd_file(path: &Path) -> Result<Vec<StaticTargets>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let groups: Vec<FileGroup> = match ext {
        "json" => serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?,
        "yml" | "yaml" => serde_yaml_ng::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?,
        _ => return Err(format!("{}: file_sd files must end in .json, .yml or .yaml", path.display())),
    };
    for g in &groups {
        for t in &g.targets {
            if t.is_empty() || t.contains(['/', ' ']) || !t.contains(':') {
                return Err(format!("{}: target {t:?} is not host:port", path.display()));
            }
        }
        for n in g.labels.keys() {
            if !telemetry_core::labels::is_valid_label_name(n) {
                return Err(format!("{}: invalid label name {n:?}", path.display()));
            }
        }
    }
    Ok(groups.into_iter().map(|g| StaticTargets { targets: g.targets, labels: g.labels }).collect())
}

/// `*` wildcard match (no other metacharacters).
fn wildcard(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The files a `files` entry names now (a wildcard in the last element lists its directory).
fn expand(pattern: &Path) -> Vec<PathBuf> {
    let Some(name) = pattern.file_name().and_then(|n| n.to_str()) else { return vec![pattern.to_path_buf()] };
    if !name.contains('*') {
        return vec![pattern.to_path_buf()];
    }
    let dir = pattern.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_str().is_some_and(|n| wildcard(name, n)))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// A target to scrape: its address and final labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TargetSpec {
    address: String,
    labels: Labels,
}

fn targets_of(job: &ScrapeJob, groups: &[StaticTargets]) -> Vec<TargetSpec> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for g in groups {
        for addr in &g.targets {
            let mut b = LabelsBuilder::new();
            for (k, v) in &g.labels {
                if !k.starts_with("__") && !v.is_empty() {
                    b.set(k, v);
                }
            }
            if !g.labels.contains_key("job") {
                b.set("job", &job.job_name);
            }
            if !g.labels.contains_key("instance") {
                b.set("instance", addr);
            }
            let Ok(labels) = b.build() else { continue };
            let spec = TargetSpec { address: addr.clone(), labels };
            if seen.insert(spec.clone()) {
                out.push(spec);
            }
        }
    }
    out
}

/// The health of one target, as its last scrape left it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetStatus {
    /// The job.
    pub job: String,
    /// The target's labels (with `job` and `instance`).
    pub labels: Labels,
    /// The scrape URL.
    pub url: String,
    /// `Some(true)` after a successful scrape, `Some(false)` after a failed one, `None` before
    /// the first.
    pub up: Option<bool>,
    /// Why the last scrape failed.
    pub last_error: Option<String>,
    /// Samples of the last scrape.
    pub samples: u64,
}

#[derive(Debug, Default)]
struct ScrapeStats {
    scrapes: AtomicU64,
    failures: AtomicU64,
    sd_errors: AtomicU64,
    samples: AtomicU64,
}

type StatusMap = Arc<Mutex<BTreeMap<(String, String), TargetStatus>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The running scrape manager: one discovery task per job and one loop per target.
#[derive(Debug)]
pub struct ScrapeManager {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    status: StatusMap,
}

impl ScrapeManager {
    /// Starts every job of `scrape.jobs` on the current tokio runtime; everything stops when
    /// `stop` turns `true` or the pipeline shuts down. Registers counters on `/metrics`.
    pub fn start(p: Arc<Pipeline>, stop: watch::Receiver<bool>) -> ScrapeManager {
        let cfg = p.config().scrape.clone();
        let stats = Arc::new(ScrapeStats::default());
        let status: StatusMap = Arc::new(Mutex::new(BTreeMap::new()));
        {
            let (s, st) = (stats.clone(), status.clone());
            p.add_metrics(Arc::new(move |o: &mut String| {
                use std::fmt::Write as _;
                let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
                for (name, help, v) in [
                    ("telemetry_scrapes_total", "Scrapes done.", ld(&s.scrapes)),
                    ("telemetry_scrape_failures_total", "Scrapes that failed.", ld(&s.failures)),
                    ("telemetry_scrape_samples_total", "Samples scraped.", ld(&s.samples)),
                    ("telemetry_scrape_sd_file_errors_total", "file_sd files that could not be read.", ld(&s.sd_errors)),
                ] {
                    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
                }
                let n = lock(&st).len();
                let _ = writeln!(
                    o,
                    "# HELP telemetry_scrape_targets Targets scraped.\n# TYPE telemetry_scrape_targets gauge\ntelemetry_scrape_targets {n}"
                );
            }));
        }
        let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let tasks = cfg
            .jobs
            .iter()
            .map(|job| {
                let ctx = JobCtx {
                    p: p.clone(),
                    job: job.clone(),
                    defaults: cfg.clone(),
                    client: client.clone(),
                    stats: stats.clone(),
                    status: status.clone(),
                };
                tokio::spawn(run_job(ctx, stop.clone()))
            })
            .collect();
        ScrapeManager { tasks, status }
    }

    /// Every target's status, by job and address.
    pub fn targets(&self) -> Vec<TargetStatus> {
        lock(&self.status).values().cloned().collect()
    }

    /// Waits for every job to end (after `stop` turned `true`).
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

#[derive(Clone)]
struct JobCtx {
    p: Arc<Pipeline>,
    job: ScrapeJob,
    defaults: ScrapeConfig,
    client: Client<HttpConnector, Empty<Bytes>>,
    stats: Arc<ScrapeStats>,
    status: StatusMap,
}

struct RunningTarget {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn run_job(ctx: JobCtx, mut stop: watch::Receiver<bool>) {
    let refresh = ctx.job.file_sd_configs.iter().map(|f| f.refresh_interval_ms).min();
    let mut files: HashMap<PathBuf, (SystemTime, Vec<StaticTargets>)> = HashMap::new();
    let mut running: HashMap<TargetSpec, RunningTarget> = HashMap::new();
    loop {
        // Discovery.
        let mut groups = ctx.job.static_configs.clone();
        let mut present = HashSet::new();
        for f in &ctx.job.file_sd_configs {
            for path in f.files.iter().flat_map(|p| expand(p)) {
                present.insert(path.clone());
                let Ok(mtime) = std::fs::metadata(&path).and_then(|m| m.modified()) else {
                    files.remove(&path);
                    continue;
                };
                if files.get(&path).is_some_and(|(t, _)| *t == mtime) {
                    continue;
                }
                match read_sd_file(&path) {
                    Ok(g) => {
                        files.insert(path, (mtime, g));
                    }
                    Err(_) => {
                        // Keep the previous targets of the file; try again when it changes.
                        ctx.stats.sd_errors.fetch_add(1, Ordering::Relaxed);
                        let prev = files.remove(&path).map(|(_, g)| g).unwrap_or_default();
                        files.insert(path, (mtime, prev));
                    }
                }
            }
        }
        files.retain(|p, _| present.contains(p));
        let mut paths: Vec<&PathBuf> = files.keys().collect();
        paths.sort();
        for p in paths {
            groups.extend(files[p].1.iter().cloned());
        }
        let wanted: HashSet<TargetSpec> = targets_of(&ctx.job, &groups).into_iter().collect();
        // Stop the targets that went away (they write their stale markers).
        let gone: Vec<TargetSpec> = running.keys().filter(|t| !wanted.contains(*t)).cloned().collect();
        for t in gone {
            if let Some(r) = running.remove(&t) {
                let _ = r.stop.send(true);
                let _ = r.task.await;
            }
            lock(&ctx.status).remove(&(ctx.job.job_name.clone(), key_of(&t)));
        }
        for t in wanted {
            if running.contains_key(&t) {
                continue;
            }
            let (tx, rx) = watch::channel(false);
            let task = tokio::spawn(run_target(ctx.clone(), t.clone(), rx));
            running.insert(t, RunningTarget { stop: tx, task });
        }
        let wait = match refresh {
            Some(ms) => tokio::time::sleep(Duration::from_millis(ms)),
            None => tokio::time::sleep(Duration::from_secs(86_400 * 365)),
        };
        tokio::select! {
            _ = wait => {
                if ctx.p.is_closed() { break; }
            }
            _ = stopped(&mut stop) => break,
        }
    }
    for (_, r) in running.drain() {
        let _ = r.stop.send(true);
        let _ = r.task.await;
    }
}

fn key_of(t: &TargetSpec) -> String {
    format!("{} {}", t.address, t.labels)
}

fn with_name(target: &Labels, name: &str) -> Labels {
    let mut b = target.to_builder();
    b.set(METRIC_NAME, name);
    b.build().unwrap_or_else(|_| target.clone())
}

const REPORT: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

async fn run_target(ctx: JobCtx, t: TargetSpec, mut stop: watch::Receiver<bool>) {
    let (interval_ms, timeout_ms) = ctx.job.interval_and_timeout(&ctx.defaults);
    let url = format!("{}://{}{}", ctx.job.scheme, t.address, ctx.job.metrics_path);
    let key = (ctx.job.job_name.clone(), key_of(&t));
    lock(&ctx.status).insert(
        key.clone(),
        TargetStatus {
            job: ctx.job.job_name.clone(),
            labels: t.labels.clone(),
            url: url.clone(),
            up: None,
            last_error: None,
            samples: 0,
        },
    );
    let report_labels: Vec<Labels> = REPORT.iter().map(|n| with_name(&t.labels, n)).collect();
    let interval = Duration::from_millis(interval_ms.max(1));
    // A fixed offset within the interval, from the target's identity, spreads targets out.
    let offset = Duration::from_millis(t.labels.fingerprint().0 % interval_ms.max(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let max_body = ctx.p.config().server.max_body_bytes;
    let mut prev: HashSet<Labels> = HashSet::new();
    let mut last_ts = i64::MIN;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped(&mut stop) => break,
        }
        if ctx.p.is_closed() {
            return;
        }
        let start = now_ms().max(last_ts.saturating_add(1));
        let t0 = Instant::now();
        let result = fetch(&ctx.client, &url, timeout_ms, max_body).await;
        let duration = t0.elapsed().as_secs_f64();
        ctx.stats.scrapes.fetch_add(1, Ordering::Relaxed);
        let mut b = BatchBuilder::new();
        let mut seen: HashSet<Labels> = HashSet::new();
        let (up, scraped, added, err) = match result.and_then(|(ct, body)| decode_exposition(&body, &ct)) {
            Ok((samples, md)) => {
                let n = samples.len() as u64;
                let mut added = 0u64;
                for s in samples {
                    let labels = merge_target_labels(&s.labels, &t.labels, ctx.job.honor_labels);
                    let ts = match (ctx.job.honor_timestamps, s.timestamp_ms) {
                        (true, Some(ts)) => ts,
                        _ => {
                            if !prev.contains(&labels) {
                                added += 1;
                            }
                            seen.insert(labels.clone());
                            start
                        }
                    };
                    b.push(&labels, ts, s.value);
                }
                for (family, m) in md {
                    b.metadata(&family, m);
                }
                (1.0, n, added, None)
            }
            Err(e) => {
                ctx.stats.failures.fetch_add(1, Ordering::Relaxed);
                (0.0, 0, 0, Some(e))
            }
        };
        ctx.stats.samples.fetch_add(scraped, Ordering::Relaxed);
        for l in prev.iter().filter(|l| !seen.contains(*l)) {
            b.push(l, start, STALE_NAN);
        }
        let vals = [up, duration, scraped as f64, scraped as f64, added as f64];
        for (l, v) in report_labels.iter().zip(vals) {
            b.push(l, start, v);
        }
        prev = seen;
        last_ts = start;
        {
            let mut st = lock(&ctx.status);
            if let Some(s) = st.get_mut(&key) {
                s.up = Some(up == 1.0);
                s.last_error = err;
                s.samples = scraped;
            }
        }
        if ingest(&ctx.p, b.finish()).await.is_err() {
            return;
        }
    }
    // The target is gone (or the manager stops): its series end here.
    if last_ts == i64::MIN || ctx.p.is_closed() {
        return;
    }
    let ts = now_ms().max(last_ts + 1);
    let mut b = BatchBuilder::new();
    for l in prev.iter().chain(report_labels.iter()) {
        b.push(l, ts, STALE_NAN);
    }
    let _ = ingest(&ctx.p, b.finish()).await;
}

/// Submits with backpressure and waits for the acknowledgement.
async fn ingest(p: &Arc<Pipeline>, batch: Batch) -> Result<(), crate::pipeline::IngestError> {
    let p = p.clone();
    match tokio::task::spawn_blocking(move || p.ingest(batch)).await {
        Ok(r) => r.map(|_| ()),
        Err(_) => Err(crate::pipeline::IngestError::Closed),
    }
}

/// GETs `url`; the `Content-Type` and the body, or why not.
async fn fetch(
    client: &Client<HttpConnector, Empty<Bytes>>,
    url: &str,
    timeout_ms: u64,
    max_body: usize,
) -> Result<(String, Bytes), String> {
    let req = hyper::Request::get(url)
        .header(hyper::header::ACCEPT, ACCEPT)
        .header("X-Prometheus-Scrape-Timeout-Seconds", format!("{}", timeout_ms as f64 / 1000.0))
        .header(hyper::header::USER_AGENT, "telemetry-pipeline")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("bad scrape URL {url:?}: {e}"))?;
    let work = async {
        let resp = client.request(req).await.map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("GET {url}: server returned HTTP status {status}"));
        }
        let ct =
            resp.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let body = Limited::new(resp.into_body(), max_body)
            .collect()
            .await
            .map_err(|e| format!("GET {url}: reading the body: {e}"))?
            .to_bytes();
        Ok((ct, body))
    };
    match tokio::time::timeout(Duration::from_millis(timeout_ms), work).await {
        Ok(r) => r,
        Err(_) => Err(format!("GET {url}: timeout after {timeout_ms} ms")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(s.iter().copied()).unwrap()
    }

    #[test]
    fn honor_labels_and_exported() {
        let target = l(&[("job", "node"), ("instance", "h:1")]);
        let sample = l(&[("__name__", "m"), ("job", "pushed"), ("exported_job", "x")]);
        let m = merge_target_labels(&sample, &target, false);
        assert_eq!(m.get("job"), Some("node"));
        assert_eq!(m.get("exported_exported_job"), Some("pushed"));
        assert_eq!(m.get("exported_job"), Some("x"));
        assert_eq!(m.get("instance"), Some("h:1"));
        let m = merge_target_labels(&sample, &target, true);
        assert_eq!(m.get("job"), Some("pushed"));
        assert_eq!(m.get("instance"), Some("h:1"));
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*.json", "a.json"));
        assert!(wildcard("t-*-x.yml", "t-1-x.yml"));
        assert!(!wildcard("*.json", "a.yml"));
        assert!(wildcard("a", "a"));
        assert!(!wildcard("a*b*c", "acb"));
    }

    #[test]
    fn target_labels() {
        let job = ScrapeJob { job_name: "j".into(), ..ScrapeJob::default() };
        let g = StaticTargets {
            targets: vec!["a:1".into(), "a:1".into()],
            labels: [("env".to_string(), "p".to_string()), ("__meta_x".to_string(), "y".to_string())].into(),
        };
        let t = targets_of(&job, &[g]);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].labels.to_string(), r#"{env="p",instance="a:1",job="j"}"#);
    }
}
