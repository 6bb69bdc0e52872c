//! The sources beside the HTTP API, on loopback: StatsD over real UDP datagrams, the scrape
//! manager against a local axum server, Pushgateway pushes and the simple REST query.
#![cfg(feature = "server")]

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use telemetry_core::is_stale_nan;
use telemetry_pipeline::config::{FileSdConfig, ScrapeJob, StaticTargets};
use telemetry_pipeline::sources::Sources;
use telemetry_pipeline::{Pipeline, PipelineConfig};
use telemetry_query::Value;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// The latest value of each series `expr` selects at `t`, as `(labels, value)` sorted.
fn instant(p: &Pipeline, expr: &str, t: i64) -> Vec<(String, f64)> {
    let r = p.query_instant(expr, t).unwrap();
    let Value::Vector(v) = r.value else { panic!("not a vector") };
    let mut out: Vec<(String, f64)> = v.into_iter().map(|s| (s.labels.to_string(), s.value)).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every raw sample (stale markers included) of the series `selector` selects.
fn raw(p: &Pipeline, selector: &str) -> Vec<(String, Vec<(i64, f64)>)> {
    use telemetry_core::{Queryable, SelectHints};
    let m = telemetry_pipeline::anomaly::parse_selector(selector).unwrap();
    let q = p.storage().querier(i64::MIN, i64::MAX).unwrap();
    let mut out = Vec::new();
    for s in q.select(&SelectHints::default(), &m).unwrap() {
        let mut s = s.unwrap();
        let b = s.samples.collect_all().unwrap();
        out.push((s.labels.to_string(), b.timestamps.into_iter().zip(b.values).collect()));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn statsd_over_udp_becomes_the_documented_series() {
    let mut cfg = PipelineConfig::default();
    cfg.anomaly.rules.clear();
    cfg.statsd.listen = "127.0.0.1:0".into();
    cfg.statsd.flush_interval_ms = 300;
    cfg.statsd.aggregates.push(telemetry_pipeline::StatsdAggregate::Avg);
    let p = Arc::new(Pipeline::start(cfg).unwrap());
    let rt = runtime();
    let sources = rt.block_on(Sources::start(p.clone())).unwrap();
    let addr = sources.statsd_addr().unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    // The seeds' lines, plus every type, sample rates and a bad line in the middle.
    sock.send_to(
        b"api.request.duration:142|ms|#env:production,service:checkout\napi.requests.total:1|c|#env:production\nmemory.used_bytes:536870912|g|#host:ip-10-0-1-42\n",
        addr,
    )
    .unwrap();
    sock.send_to(
        b"api.requests.total:3|c|@0.5|#env:production\nnot a metric\nusers:alice|s\nusers:bob|s\nusers:alice|s",
        addr,
    )
    .unwrap();
    sock.send_to(b"memory.used_bytes:-12|g|#host:ip-10-0-1-42", addr).unwrap();
    let mut pkt = Vec::new();
    for i in 1..=100 {
        pkt.extend_from_slice(format!("db.query:{i}|h|#db:main\n").as_bytes());
    }
    sock.send_to(&pkt, addr).unwrap();
    let stored = || {
        p.metrics_text().lines().any(|l| l.starts_with("telemetry_statsd_samples_stored_total") && !l.ends_with(" 0"))
    };
    wait_until("a StatsD flush", Duration::from_secs(10), stored);
    let t = now_ms() + 1;
    let one = |expr: &str| instant(&p, expr, t);
    assert_eq!(one("api_requests_total"), vec![(r#"api_requests_total{env="production"}"#.into(), 7.0)]);
    assert_eq!(one("memory_used_bytes"), vec![(r#"memory_used_bytes{host="ip-10-0-1-42"}"#.into(), 536870900.0)]);
    assert_eq!(one("users"), vec![("users".into(), 2.0)]);
    let labels = r#"env="production",service="checkout""#;
    assert_eq!(one("api_request_duration_count"), vec![(format!("api_request_duration_count{{{labels}}}"), 1.0)]);
    assert_eq!(one("api_request_duration_sum")[0].1, 142.0);
    assert_eq!(one("api_request_duration_max")[0].1, 142.0);
    assert_eq!(one("db_query_count")[0].1, 100.0);
    assert_eq!(one("db_query_sum")[0].1, 5050.0);
    assert_eq!(one("db_query_min")[0].1, 1.0);
    assert_eq!(one("db_query_max")[0].1, 100.0);
    assert_eq!(one("db_query_avg")[0].1, 50.5);
    assert_eq!(
        one("db_query"),
        vec![
            (r#"db_query{db="main",quantile="0.5"}"#.into(), 50.0),
            (r#"db_query{db="main",quantile="0.9"}"#.into(), 90.0),
            (r#"db_query{db="main",quantile="0.99"}"#.into(), 99.0),
        ]
    );
    // The next interval: the counter carries on from its total.
    sock.send_to(b"api.requests.total:2|c|#env:production", addr).unwrap();
    wait_until("the next counter total", Duration::from_secs(10), || {
        instant(&p, "api_requests_total", now_ms() + 1).first().map(|x| x.1) == Some(9.0)
    });
    let m = p.metrics_text();
    assert!(m.contains("telemetry_statsd_bad_lines_total 1"), "{m}");
    assert!(m.contains("telemetry_statsd_samples_dropped_total{reason=\"queue_full\"} 0"), "{m}");
    rt.block_on(sources.shutdown());
    p.shutdown().unwrap();
}

#[test]
fn statsd_counts_drops_when_the_queue_is_full() {
    // A one-batch ingest queue kept full by another thread's large batches: StatsD flushes
    // find it full, drop their samples and count them, and the socket loop keeps reading.
    let mut cfg = PipelineConfig::default();
    cfg.anomaly.rules.clear();
    cfg.ingest.queue_batches = 1;
    cfg.statsd.listen = "127.0.0.1:0".into();
    cfg.statsd.flush_interval_ms = 50;
    let p = Arc::new(Pipeline::start(cfg).unwrap());
    let rt = runtime();
    let sources = rt.block_on(Sources::start(p.clone())).unwrap();
    let addr = sources.statsd_addr().unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Flood: many distinct series per flush while another thread keeps the queue busy.
    let busy = {
        let p = p.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut i = 0i64;
            while t0.elapsed() < Duration::from_millis(1500) {
                let mut b = telemetry_pipeline::Batch::default();
                let s = b.add_series(telemetry_core::Labels::from_pairs([("__name__", "busy")]).unwrap());
                for k in 0..20_000 {
                    b.push(s, 1_000_000 + i * 20_000 + k, 1.0);
                }
                i += 1;
                let _ = p.submit(b, Box::new(|_| {}));
            }
        })
    };
    let t0 = Instant::now();
    let mut sent = 0u64;
    while t0.elapsed() < Duration::from_millis(1500) {
        let mut pkt = Vec::new();
        for k in 0..50 {
            pkt.extend_from_slice(format!("flood.{}:1|c\n", (sent * 50 + k) % 5000).as_bytes());
        }
        sock.send_to(&pkt, addr).unwrap();
        sent += 1;
    }
    busy.join().unwrap();
    let m = p.metrics_text();
    let get = |name: &str| -> u64 {
        m.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap()
    };
    let received = get("telemetry_statsd_packets_total");
    assert!(received > 0);
    let dropped = get("telemetry_statsd_samples_dropped_total{reason=\"queue_full\"}");
    let submitted = get("telemetry_statsd_samples_submitted_total");
    assert!(dropped > 0, "{m}");
    eprintln!("statsd: {sent} datagrams sent, {received} received, {submitted} samples submitted, {dropped} dropped");
    rt.block_on(sources.shutdown());
    p.shutdown().unwrap();
}

/// A local exposition server whose body the test changes.
fn exposition_server(rt: &tokio::runtime::Runtime, body: Arc<Mutex<String>>) -> SocketAddr {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let b = body.lock().unwrap().clone();
            async move { ([("content-type", "text/plain; version=0.0.4")], b) }
        }),
    );
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        addr
    })
}

#[test]
fn scrape_static_and_file_sd_targets() {
    let rt = runtime();
    let body =
        Arc::new(Mutex::new("# TYPE a gauge\na{job=\"pushed\",x=\"1\"} 1\nb 2\nc 3 1700000000000\n".to_string()));
    let addr = exposition_server(&rt, body.clone());
    let dir = tempfile::tempdir().unwrap();
    let sd_json = dir.path().join("targets.json");
    std::fs::write(&sd_json, format!(r#"[{{"targets": ["{addr}"], "labels": {{"src": "json"}}}}]"#)).unwrap();
    // A dead target: nothing listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut cfg = PipelineConfig::default();
    cfg.anomaly.rules.clear();
    cfg.statsd.enabled = false;
    cfg.scrape.jobs = vec![
        ScrapeJob {
            job_name: "static".into(),
            scrape_interval_ms: 200,
            scrape_timeout_ms: 150,
            static_configs: vec![StaticTargets {
                targets: vec![addr.to_string(), dead.to_string()],
                labels: [("env".to_string(), "test".to_string())].into(),
            }],
            ..ScrapeJob::default()
        },
        ScrapeJob {
            job_name: "honor".into(),
            scrape_interval_ms: 200,
            honor_labels: true,
            honor_timestamps: false,
            static_configs: vec![StaticTargets { targets: vec![addr.to_string()], ..StaticTargets::default() }],
            ..ScrapeJob::default()
        },
        ScrapeJob {
            job_name: "sd".into(),
            scrape_interval_ms: 200,
            file_sd_configs: vec![FileSdConfig {
                files: vec![dir.path().join("*.json"), dir.path().join("t.yml")],
                refresh_interval_ms: 100,
            }],
            ..ScrapeJob::default()
        },
    ];
    let p = Arc::new(Pipeline::start(cfg).unwrap());
    let sources = rt.block_on(Sources::start(p.clone())).unwrap();
    let inst = addr.to_string();
    wait_until("scrapes of every job", Duration::from_secs(10), || {
        instant(&p, "up", now_ms() + 1).len() == 4 && instant(&p, "b", now_ms() + 1).len() == 3
    });
    let t = now_ms() + 1;
    let up = instant(&p, "up", t);
    let mut want = vec![
        (format!(r#"up{{env="test",instance="{dead}",job="static"}}"#), 0.0),
        (format!(r#"up{{env="test",instance="{inst}",job="static"}}"#), 1.0),
        (format!(r#"up{{instance="{inst}",job="honor"}}"#), 1.0),
        (format!(r#"up{{instance="{inst}",job="sd",src="json"}}"#), 1.0),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(up, want);
    // honor_labels: the exposition's job wins; otherwise it becomes exported_job.
    let a = instant(&p, "a", t);
    assert!(
        a.contains(&(format!(r#"a{{env="test",exported_job="pushed",instance="{inst}",job="static",x="1"}}"#), 1.0)),
        "{a:?}"
    );
    assert!(a.contains(&(format!(r#"a{{instance="{inst}",job="pushed",x="1"}}"#), 1.0)), "{a:?}");
    // Report series.
    let n = instant(&p, r#"scrape_samples_scraped{job="static"}"#, t);
    let mut n: Vec<f64> = n.iter().map(|x| x.1).collect();
    n.sort_by(f64::total_cmp);
    assert_eq!(n, vec![0.0, 3.0]);
    assert_eq!(instant(&p, "scrape_samples_post_metric_relabeling", t).len(), 4);
    assert_eq!(instant(&p, "scrape_duration_seconds", t).len(), 4);
    let added = raw(&p, r#"scrape_series_added{job="static",instance="HOST"}"#.replace("HOST", &inst).as_str());
    assert_eq!(added[0].1[0].1, 2.0, "a and b are new in the first scrape (c has a timestamp)");
    // Timestamps from the exposition are honoured (except where honor_timestamps = false).
    let c = raw(&p, r#"c{job="static"}"#);
    assert!(c.iter().all(|(_, s)| s.iter().all(|x| x.0 == 1_700_000_000_000)), "{c:?}");
    let c = raw(&p, r#"c{job="honor"}"#);
    assert!(c[0].1.iter().all(|x| x.0 > 1_700_000_000_000));

    // b disappears from the exposition: a stale marker ends it.
    *body.lock().unwrap() = "# TYPE a gauge\na{job=\"pushed\",x=\"1\"} 1\nc 3 1700000000000\n".into();
    wait_until("b to go stale", Duration::from_secs(10), || instant(&p, "b", now_ms() + 1).is_empty());
    let b = raw(&p, r#"b{job="static"}"#);
    let last = b[0].1.last().unwrap();
    assert!(is_stale_nan(last.1), "{b:?}");
    // c has an explicit timestamp: never marked stale.
    assert!(raw(&p, r#"c{job="static"}"#)[0].1.iter().all(|x| !is_stale_nan(x.1)));

    // file_sd: the JSON file goes, a YAML file brings the target back with other labels.
    std::fs::remove_file(&sd_json).unwrap();
    std::fs::write(dir.path().join("t.yml"), format!("- targets: ['{addr}']\n  labels:\n    src: yaml\n")).unwrap();
    wait_until("the YAML target", Duration::from_secs(10), || {
        instant(&p, r#"up{job="sd",src="yaml"}"#, now_ms() + 1).len() == 1
            && instant(&p, r#"up{job="sd",src="json"}"#, now_ms() + 1).is_empty()
    });
    let gone = raw(&p, r#"up{job="sd",src="json"}"#);
    assert!(is_stale_nan(gone[0].1.last().unwrap().1), "the removed target's up is marked stale");
    let gone_a = raw(&p, r#"a{job="sd",src="json"}"#);
    assert!(is_stale_nan(gone_a[0].1.last().unwrap().1), "and its series");
    // A file that does not parse keeps the previous targets.
    std::fs::write(dir.path().join("t.yml"), "- targets: [unclosed\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(instant(&p, r#"up{job="sd",src="yaml"}"#, now_ms() + 1).len(), 1);
    assert!(p.metrics_text().contains("telemetry_scrape_sd_file_errors_total"));
    let targets = sources.scrape().unwrap().targets();
    assert_eq!(targets.len(), 4);
    assert!(targets.iter().any(|t| t.up == Some(false) && t.last_error.is_some()));

    // Shutdown marks everything stale.
    rt.block_on(sources.shutdown());
    p.barrier().unwrap();
    assert!(instant(&p, "up", now_ms() + 1).is_empty());
    p.shutdown().unwrap();
}

/// The HTTP API on a loopback port, on `rt`.
fn http_server(rt: &tokio::runtime::Runtime, p: Arc<Pipeline>) -> SocketAddr {
    rt.block_on(async move {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { telemetry_pipeline::server::serve(p, l, std::future::pending()).await.unwrap() });
        addr
    })
}

/// One HTTP/1.1 request; the status and the body.
fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn pushgateway_groups() {
    let mut cfg = PipelineConfig::default();
    cfg.anomaly.rules.clear();
    cfg.push.refresh_interval_ms = 200;
    let p = Arc::new(Pipeline::start(cfg).unwrap());
    let rt = runtime();
    let addr = http_server(&rt, p.clone());
    let group = "/metrics/job/batch/instance/i1";
    let body = "# TYPE jobs_done counter\njobs_done_total{job=\"other\"} 5\n# TYPE last_run gauge\nlast_run 100\n";
    let t0 = now_ms();
    assert_eq!(request(addr, "PUT", group, body), (200, String::new()));
    let now = || now_ms() + 1;
    assert_eq!(
        instant(&p, r#"{job="batch"}"#, now()).into_iter().filter(|x| !x.0.starts_with("push")).collect::<Vec<_>>(),
        vec![
            (r#"jobs_done_total{instance="i1",job="batch"}"#.to_string(), 5.0),
            (r#"last_run{instance="i1",job="batch"}"#.to_string(), 100.0),
        ],
        "the grouping labels overwrite the body's"
    );
    let pt = instant(&p, "push_time_seconds", now());
    assert_eq!(pt.len(), 1);
    assert!((pt[0].1 * 1000.0 - t0 as f64).abs() < 5_000.0, "{pt:?}");
    assert_eq!(instant(&p, "push_failure_time_seconds", now())[0].1, 0.0);

    // POST replaces same-named families only.
    assert_eq!(request(addr, "POST", group, "last_run 200\n").0, 200);
    assert_eq!(instant(&p, "jobs_done_total", now())[0].1, 5.0);
    assert_eq!(instant(&p, "last_run", now())[0].1, 200.0);
    // PUT replaces the whole group: jobs_done_total ends with a stale marker.
    assert_eq!(request(addr, "PUT", group, "last_run 300\n").0, 200);
    assert!(instant(&p, "jobs_done_total", now()).is_empty());
    assert!(is_stale_nan(raw(&p, "jobs_done_total")[0].1.last().unwrap().1));
    assert_eq!(instant(&p, "last_run", now())[0].1, 300.0);

    // Refused pushes: timestamps, a series twice, a type clash with another group.
    let (st, msg) = request(addr, "PUT", group, "last_run 1 1700000000000\n");
    assert_eq!(st, 400);
    assert!(msg.contains("timestamp"), "{msg}");
    let (st, msg) = request(addr, "PUT", group, "a 1\na 2\n");
    assert_eq!(st, 400);
    assert!(msg.contains("twice"), "{msg}");
    let (st, msg) = request(addr, "PUT", "/metrics/job/other", "# TYPE last_run counter\nlast_run 1\n");
    assert_eq!(st, 400);
    assert!(msg.contains("last_run"), "{msg}");
    let (st, msg) = request(addr, "PUT", "/metrics/job/a/b", "x 1\n");
    assert_eq!(st, 400);
    assert!(msg.contains("pairs"), "{msg}");
    assert_eq!(instant(&p, "last_run", now())[0].1, 300.0, "nothing of a refused push is stored");

    // base64 grouping values.
    assert_eq!(
        request(addr, "PUT", "/metrics/job/cleaner/path@base64/L3Zhci90bXA", "files 3\npush_time_seconds 1\n").0,
        200
    );
    let pt = instant(&p, r#"push_time_seconds{job="cleaner"}"#, now());
    assert!(pt[0].1 > 1e9, "a pushed push_time_seconds is overridden: {pt:?}");
    assert_eq!(instant(&p, "files", now()), vec![(r#"files{job="cleaner",path="/var/tmp"}"#.to_string(), 3.0)]);

    // The groups are written again every refresh interval.
    let before = raw(&p, r#"last_run{job="batch"}"#)[0].1.len();
    wait_until("a refresh", Duration::from_secs(10), || raw(&p, r#"last_run{job="batch"}"#)[0].1.len() > before);

    // DELETE: 202, the group's series and its push_time_seconds end.
    assert_eq!(request(addr, "DELETE", group, "").0, 202);
    assert!(instant(&p, "last_run", now()).is_empty());
    assert_eq!(instant(&p, "push_time_seconds", now()).len(), 1, "only the cleaner group is left");
    assert_eq!(request(addr, "DELETE", "/metrics/job/never", "").0, 202);
    p.shutdown().unwrap();
}

#[test]
fn simple_rest_query_matches_exact_computation() {
    let mut cfg = PipelineConfig::default();
    cfg.anomaly.rules.clear();
    let p = Arc::new(Pipeline::start(cfg).unwrap());
    let t0: i64 = 1_700_000_000_000;
    let mut b = telemetry_pipeline::BatchBuilder::new();
    let prod = telemetry_core::Labels::from_pairs([("__name__", "api_request_duration"), ("env", "prod")]).unwrap();
    let dev = telemetry_core::Labels::from_pairs([("__name__", "api_request_duration"), ("env", "dev")]).unwrap();
    for i in 0..=600i64 {
        b.push(&prod, t0 + i * 1000, i as f64);
        b.push(&dev, t0 + i * 1000, 2.0 * i as f64);
    }
    p.ingest(b.finish()).unwrap();
    let rt = runtime();
    let addr = http_server(&rt, p.clone());
    let q = |stat: &str, tags: &str| -> serde_json::Value {
        let (st, body) = request(
            addr,
            "GET",
            &format!(
                "/api/v1/simple/query?metric=api.request.duration&tags={tags}&from={}&to={}&resolution=60s&stat={stat}",
                t0 / 1000,
                t0 / 1000 + 600
            ),
            "",
        );
        assert_eq!(st, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    // Exact: the window (t − 60 s, t] holds the values 60k − 59 ..= 60k.
    let window = |k: i64| -> Vec<f64> { (60 * k - 59..=60 * k).filter(|&i| i >= 0).map(|i| i as f64).collect() };
    for (stat, f) in [
        ("avg", &(|w: &[f64]| w.iter().sum::<f64>() / w.len() as f64) as &dyn Fn(&[f64]) -> f64),
        ("max", &|w: &[f64]| w.iter().cloned().fold(f64::MIN, f64::max)),
        ("min", &|w: &[f64]| w.iter().cloned().fold(f64::MAX, f64::min)),
        ("sum", &|w: &[f64]| w.iter().sum()),
        ("count", &|w: &[f64]| w.len() as f64),
        ("p50", &|w: &[f64]| {
            // PromQL quantile: linear interpolation between closest ranks.
            let r = 0.5 * (w.len() - 1) as f64;
            let (lo, hi) = (r.floor() as usize, r.ceil() as usize);
            w[lo] + (w[hi] - w[lo]) * (r - lo as f64)
        }),
    ] {
        let v = q(stat, "env:prod");
        let series = v["data"]["series"].as_array().unwrap();
        assert_eq!(series.len(), 1, "{v}");
        assert_eq!(series[0]["tags"], serde_json::json!({"env": "prod"}));
        let pts = series[0]["datapoints"].as_array().unwrap();
        assert_eq!(pts.len(), 11, "{stat}: {v}");
        for (k, pt) in pts.iter().enumerate() {
            let k = k as i64;
            assert_eq!(pt[0].as_i64().unwrap(), t0 / 1000 + 60 * k);
            let want = if k == 0 { f(&[0.0]) } else { f(&window(k)) };
            assert!((pt[1].as_f64().unwrap() - want).abs() < 1e-9, "{stat} at {k}: {} vs {want}", pt[1]);
        }
    }
    // Without tags: both series, sorted by tags.
    let v = q("max", "");
    let s = v["data"]["series"].as_array().unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s[0]["tags"]["env"], "dev");
    assert_eq!(s[0]["datapoints"][10][1].as_f64(), Some(1200.0));
    // Bad parameters name themselves.
    let (st, body) = request(addr, "GET", "/api/v1/simple/query?metric=m&stat=median", "");
    assert_eq!(st, 400);
    assert!(body.contains("stat"), "{body}");
    let (st, body) = request(addr, "GET", "/api/v1/simple/query?tags=a:b", "");
    assert_eq!(st, 400);
    assert!(body.contains("metric"), "{body}");
    p.shutdown().unwrap();
}

/// Kills the child process on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "needs prometheus-node-exporter (Debian package)"]
fn scrape_manager_scrapes_a_real_node_exporter() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let target = format!("127.0.0.1:{port}");
    let _ne = Child(
        std::process::Command::new("prometheus-node-exporter")
            .args([format!("--web.listen-address={target}"), "--no-collector.systemd".into()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus-node-exporter"),
    );
    let direct = || -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&target).ok()?;
        s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {target}\r\n\r\n").as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
    };
    wait_until("node exporter", Duration::from_secs(10), || direct().is_some());
    let body = direct().unwrap();
    let samples = body.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count() as f64;
    let cpu = body.lines().filter(|l| l.starts_with("node_cpu_seconds_total{")).count();

    let mut cfg = PipelineConfig::default();
    cfg.anomaly.rules.clear();
    cfg.statsd.enabled = false;
    cfg.scrape.jobs = vec![ScrapeJob {
        job_name: "node".into(),
        scrape_interval_ms: 1000,
        scrape_timeout_ms: 1000,
        static_configs: vec![StaticTargets { targets: vec![target.clone()], ..StaticTargets::default() }],
        ..ScrapeJob::default()
    }];
    let p = Arc::new(Pipeline::start(cfg).unwrap());
    let rt = runtime();
    let sources = rt.block_on(Sources::start(p.clone())).unwrap();
    wait_until("four scrapes", Duration::from_secs(20), || {
        raw(&p, r#"up{job="node"}"#).first().is_some_and(|s| s.1.len() >= 4)
    });
    let t = now_ms() + 1;
    assert_eq!(instant(&p, "up", t), vec![(format!(r#"up{{instance="{target}",job="node"}}"#), 1.0)]);
    let scraped = instant(&p, "scrape_samples_scraped", t)[0].1;
    assert!((scraped - samples).abs() <= 0.05 * samples, "scraped {scraped}, direct {samples}");
    assert_eq!(instant(&p, "count(node_cpu_seconds_total)", t)[0].1, cpu as f64);
    let rates = instant(&p, r#"rate(node_cpu_seconds_total{mode="idle"}[5s])"#, t);
    assert!(!rates.is_empty() && rates.iter().all(|r| r.1 >= 0.0 && r.1 <= 1.5), "{rates:?}");
    let dur = instant(&p, "scrape_duration_seconds", t)[0].1;
    assert!(dur > 0.0 && dur < 1.0, "{dur}");
    eprintln!(
        "node exporter: {scraped} samples per scrape ({samples} fetched directly), {cpu} CPU series, scrape {dur:.3} s"
    );
    rt.block_on(sources.shutdown());
    p.barrier().unwrap();
    assert!(instant(&p, "node_load1", now_ms() + 1).is_empty(), "stale after shutdown");
    p.shutdown().unwrap();
}
