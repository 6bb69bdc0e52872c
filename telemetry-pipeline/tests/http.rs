//! The HTTP API on a loopback port: good requests, and bad input on every write endpoint
//! answered with a 4xx naming the problem, nothing stored from it, the server still serving.
#![cfg(feature = "server")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use telemetry_pipeline::{Pipeline, PipelineConfig};

struct Server {
    addr: SocketAddr,
    pipeline: Arc<Pipeline>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(cfg: PipelineConfig) -> Server {
        let pipeline = Arc::new(Pipeline::start(cfg).unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let p = pipeline.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(l.local_addr().unwrap()).unwrap();
                telemetry_pipeline::server::serve(p, l, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        Server { addr, pipeline, stop: Some(stop), thread: Some(thread) }
    }

    /// One HTTP/1.1 request; returns the status and the body.
    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let text = String::from_utf8_lossy(&out).to_string();
        let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }

    fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, &[], b"")
    }

    fn series(&self) -> u64 {
        self.pipeline.storage().stats().head.series
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const RW: [(&str, &str); 2] = [("Content-Type", "application/x-protobuf"), ("Content-Encoding", "snappy")];

fn snap_of(b: &[u8]) -> Vec<u8> {
    // A valid snappy frame around arbitrary (invalid protobuf) bytes.
    let mut out = vec![b.len() as u8, ((b.len() as u8) - 1) << 2];
    out.extend_from_slice(b);
    out
}

fn cfg() -> PipelineConfig {
    let mut c = PipelineConfig::default();
    c.server.max_body_bytes = 4096;
    c
}

#[test]
fn writes_then_queries() {
    let s = Server::start(cfg());
    let body = b"# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 10 1700000000000\nhttp_requests_total{code=\"200\"} 70 1700000060000\n";
    assert_eq!(s.request("POST", "/api/v1/import/prometheus", &[], body).0, 204);
    let json =
        br#"{"series":[{"metric":"app.latency","type":"gauge","points":[[1700000000,5.5]],"tags":["env:prod"]}]}"#;
    assert_eq!(s.request("POST", "/api/v1/metrics", &[("Content-Type", "application/json")], json).0, 202);
    assert_eq!(s.request("POST", "/write?precision=s", &[], b"cpu,host=a usage=0.5 1700000000\n").0, 204);
    {
        use telemetry_pipeline::remote_write::*;
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![
                    Label { name: "__name__".into(), value: "rw_up".into() },
                    Label { name: "job".into(), value: "x".into() },
                ],
                samples: vec![Sample { value: 1.0, timestamp: 1_700_000_000_000 }],
            }],
            metadata: vec![],
        };
        let (st, b) = s.request("POST", "/api/v1/write", &RW, &encode(&req));
        assert_eq!(st, 204, "{b}");
    }
    assert_eq!(s.series(), 4);

    let (st, b) = s.get("/api/v1/query?query=rate(http_requests_total%5B2m%5D)&time=1700000060");
    assert_eq!(st, 200, "{b}");
    assert!(b.contains(r#""resultType":"vector""#) && b.contains(r#""code":"200""#), "{b}");
    let (st, b) = s.get("/api/v1/query_range?query=app_latency&start=1700000000&end=1700000060&step=30s");
    assert_eq!(st, 200, "{b}");
    assert!(b.contains(r#""resultType":"matrix""#) && b.contains(r#""env":"prod""#), "{b}");
    let (st, b) = s.get("/api/v1/series?match%5B%5D=cpu_usage");
    assert_eq!(st, 200);
    assert!(b.contains(r#""host":"a""#), "{b}");
    let (st, b) = s.get("/api/v1/labels");
    assert!(st == 200 && b.contains("__name__") && b.contains("code"), "{b}");
    let (st, b) = s.get("/api/v1/label/__name__/values");
    assert!(st == 200 && b.contains("http_requests_total") && b.contains("cpu_usage"), "{b}");
    let (st, b) = s.get("/api/v1/metadata");
    assert!(st == 200 && b.contains(r#""type":"counter""#), "{b}");
    let (st, b) = s.get("/api/v1/status/tsdb");
    assert!(st == 200 && b.contains(r#""numSeries":4"#), "{b}");
    let (st, b) = s.get("/api/v1/anomalies");
    assert_eq!((st, b.as_str()), (200, r#"{"data":[],"status":"success"}"#));
    let (st, b) = s.get("/metrics");
    assert!(st == 200 && b.contains("telemetry_ingest_samples_stored_total 5"), "{b}");
    // POST form bodies work for queries as in Prometheus.
    let (st, b) = s.request(
        "POST",
        "/api/v1/query",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"query=cpu_usage&time=1700000000",
    );
    assert!(st == 200 && b.contains(r#""0.5""#), "{b}");
}

#[test]
fn bad_input_is_refused_with_a_message_and_nothing_is_stored() {
    let s = Server::start(cfg());
    // (method, path, headers, body, expected status, text the answer must contain)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("POST", "/api/v1/import/prometheus", vec![], b"ok 1 1000\nbad{x=\"1\" 2 1000\n".to_vec(), 400, "line 2"),
        ("POST", "/api/v1/import/prometheus", vec![], b"m{1x=\"a\"} 1 1000\n".to_vec(), 400, "label name"),
        ("POST", "/api/v1/import/prometheus", vec![], b"m 1 NaN\n".to_vec(), 400, "timestamp"),
        ("POST", "/api/v1/import/prometheus", vec![("Content-Encoding", "gzip")], b"not gzip".to_vec(), 400, "gzip"),
        (
            "POST",
            "/api/v1/import/prometheus",
            vec![("Content-Encoding", "br")],
            b"m 1".to_vec(),
            415,
            "Content-Encoding",
        ),
        ("POST", "/api/v1/import/prometheus", vec![], vec![b'a'; 5000], 413, ""),
        (
            "POST",
            "/api/v1/metrics",
            vec![("Content-Type", "application/json")],
            b"{\"series\":[{\"metric\":".to_vec(),
            400,
            "line 1",
        ),
        ("POST", "/api/v1/metrics", vec![("Content-Type", "text/plain")], b"{}".to_vec(), 415, "application/json"),
        ("POST", "/write", vec![], b"cpu,host=a usage=1\ncpu,host=a usage=zz\n".to_vec(), 400, "line 2"),
        ("POST", "/write", vec![], b"cpu,host=a msg=\"hi\"\n".to_vec(), 400, "string"),
        ("POST", "/write?precision=h", vec![], b"cpu usage=1\n".to_vec(), 400, "precision"),
        ("POST", "/api/v1/write", vec![], b"\x00\x01".to_vec(), 415, "application/x-protobuf"),
        ("POST", "/api/v1/write", vec![("Content-Type", "application/x-protobuf")], b"\x00".to_vec(), 415, "snappy"),
        ("POST", "/api/v1/write", RW.to_vec(), b"\xff\xff\xff\xff\x0f".to_vec(), 400, "snappy"),
        ("POST", "/api/v1/write", RW.to_vec(), snap_of(b"\x0a\xff\xff"), 400, "protobuf"),
        ("GET", "/api/v1/query", vec![], vec![], 400, "query"),
        ("GET", "/api/v1/query?query=sum(", vec![], vec![], 400, "bad_data"),
        ("GET", "/api/v1/query?query=up&time=yesterday", vec![], vec![], 400, "time"),
        ("GET", "/api/v1/query_range?query=up&start=1&end=2", vec![], vec![], 400, "step"),
        ("GET", "/api/v1/series", vec![], vec![], 400, "match[]"),
        ("GET", "/api/v1/series?match%5B%5D=rate(x%5B1m%5D)", vec![], vec![], 400, "selector"),
        ("GET", "/api/v1/label/1bad/values", vec![], vec![], 400, "label name"),
    ];
    for (method, path, headers, body, want, needle) in cases {
        let (st, b) = s.request(method, path, &headers, &body);
        assert_eq!(st, want, "{method} {path}: {b}");
        assert!(b.contains(needle), "{method} {path}: {b:?} does not name {needle:?}");
    }
    assert_eq!(s.series(), 0, "nothing of a bad request may be stored");
    // Still serving.
    assert_eq!(s.request("POST", "/api/v1/import/prometheus", &[], b"m 1 1000\n").0, 204);
    assert_eq!(s.series(), 1);
}

#[test]
fn bearer_tokens_guard_writes_and_reads_separately() {
    let mut c = cfg();
    c.server.write_token = "w-secret".into();
    c.server.read_token = "r-secret".into();
    let s = Server::start(c);
    let (st, b) = s.request("POST", "/api/v1/import/prometheus", &[], b"m 1 1000\n");
    assert_eq!(st, 401, "{b}");
    assert_eq!(
        s.request("POST", "/api/v1/import/prometheus", &[("Authorization", "Bearer r-secret")], b"m 1 1000\n").0,
        401
    );
    assert_eq!(
        s.request("POST", "/api/v1/import/prometheus", &[("Authorization", "Bearer w-secret")], b"m 1 1000\n").0,
        204
    );
    assert_eq!(s.get("/api/v1/query?query=m&time=1").0, 401);
    let (st, b) = s.request("GET", "/api/v1/query?query=m&time=1", &[("Authorization", "Bearer r-secret")], b"");
    assert!(st == 200 && b.contains(r#""1""#), "{b}");
}

#[test]
fn admin_delete_series_hides_the_range_and_needs_the_admin_switch() {
    let body = b"m{k=\"a\"} 1 1700000000000\nm{k=\"a\"} 2 1700000060000\nm{k=\"a\"} 3 1700000120000\nm{k=\"b\"} 4 1700000060000\n";
    let count = |s: &Server| -> String {
        let (st, b) = s.get("/api/v1/query?query=sum%20by%20(k)%20(count_over_time(m%5B10m%5D))&time=1700000200");
        assert_eq!(st, 200, "{b}");
        b
    };
    // Off by default: 503 "unavailable", nothing deleted.
    let off = Server::start(cfg());
    assert_eq!(off.request("POST", "/api/v1/import/prometheus", &[], body).0, 204);
    let (st, b) = off.request("POST", "/api/v1/admin/tsdb/delete_series?match[]=m", &[], b"");
    assert_eq!(st, 503, "{b}");
    assert!(b.contains("admin APIs disabled"), "{b}");

    let mut c = cfg();
    c.server.enable_admin_api = true;
    c.server.write_token = "w".into();
    let s = Server::start(c);
    let auth = [("Authorization", "Bearer w")];
    assert_eq!(s.request("POST", "/api/v1/import/prometheus", &auth, body).0, 204);
    let before = count(&s);
    assert!(before.contains(r#""k":"a"},"value":[1700000200,"3"]"#), "{before}");
    // Without the write token: 401; without match[]: 400; a bad selector: 400 naming it.
    assert_eq!(s.request("POST", "/api/v1/admin/tsdb/delete_series?match[]=m", &[], b"").0, 401);
    let (st, b) = s.request("POST", "/api/v1/admin/tsdb/delete_series", &auth, b"");
    assert_eq!(st, 400, "{b}");
    let (st, b) = s.request("POST", "/api/v1/admin/tsdb/delete_series?match[]=m%7B", &auth, b"");
    assert_eq!((st, b.contains("match[]")), (400, true), "{b}");
    // Delete k="a" in [1700000050, 1700000130] s: its last two samples go, k="b" stays.
    let (st, b) = s.request(
        "POST",
        "/api/v1/admin/tsdb/delete_series?match[]=m%7Bk%3D%22a%22%7D&start=1700000050&end=1700000130",
        &auth,
        b"",
    );
    assert_eq!(st, 204, "{b}");
    let after = count(&s);
    assert!(after.contains(r#""k":"a"},"value":[1700000200,"1"]"#), "{after}");
    assert!(after.contains(r#""k":"b"},"value":[1700000200,"1"]"#), "{after}");
    let (st, b) = s.request("POST", "/api/v1/admin/tsdb/clean_tombstones", &auth, b"");
    assert_eq!(st, 204, "{b}");
    assert_eq!(count(&s), after);
}
