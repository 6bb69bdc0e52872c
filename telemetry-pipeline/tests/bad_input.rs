//! Bad input on every HTTP endpoint, one request at a time against a live server on a loopback
//! port: each gets a 4xx whose message names the problem (line, field, parameter or label), the
//! query API shows that nothing of it was stored (no new series, no new sample, a partly good
//! request included), and the server keeps answering.
#![cfg(feature = "server")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use telemetry_pipeline::remote_write::{Label, Sample, TimeSeries, WriteRequest, encode};
use telemetry_pipeline::{Pipeline, PipelineConfig};

/// Body limit of the server under test, bytes.
const LIMIT: usize = 4096;

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _pipeline: Arc<Pipeline>,
}

impl Server {
    fn start() -> Server {
        let mut cfg = PipelineConfig::default();
        cfg.server.max_body_bytes = LIMIT;
        cfg.anomaly.rules.clear();
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
        Server { addr, stop: Some(stop), thread: Some(thread), _pipeline: pipeline }
    }

    /// One HTTP/1.1 request with `Connection: close`; returns the status and the body. With
    /// `chunked`, the body is sent with `Transfer-Encoding: chunked` and no length.
    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8], chunked: bool) -> (u16, String) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        if chunked {
            req.push_str("Transfer-Encoding: chunked\r\n");
        } else {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut wire = req.into_bytes();
        if chunked {
            for c in body.chunks(1000) {
                wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                wire.extend_from_slice(c);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
        } else {
            wire.extend_from_slice(body);
        }
        // The server may answer (413) and close before reading an oversized body: a failed
        // write is not the test's concern, the answer is.
        let _ = s.write_all(&wire);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).to_string();
        let status: u16 = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
        self.send(method, path, headers, body, false)
    }

    fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, &[], b"")
    }

    /// Every series and the number of samples stored, read through the query API:
    /// `/api/v1/series` over all time and `sum(count_over_time({__name__=~".+"}[200y]))`.
    fn stored(&self) -> (Vec<String>, u64) {
        let (st, b) = self.get("/api/v1/series?match%5B%5D=%7B__name__%3D~%22.%2B%22%7D");
        assert_eq!(st, 200, "{b}");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        let mut series: Vec<String> =
            v["data"].as_array().unwrap().iter().map(|s| serde_json::to_string(s).unwrap()).collect();
        series.sort();
        // At 2096-10-02 over 200 years: every timestamp the cases use.
        let (st, b) = self
            .get("/api/v1/query?query=sum(count_over_time(%7B__name__%3D~%22.%2B%22%7D%5B200y%5D))&time=4000000000");
        assert_eq!(st, 200, "{b}");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        let n = v["data"]["result"]
            .as_array()
            .unwrap()
            .first()
            .map_or(0, |r| r["value"][1].as_str().unwrap().parse::<f64>().unwrap() as u64);
        (series, n)
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
const JSON: [(&str, &str); 1] = [("Content-Type", "application/json")];

fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).unwrap()
}

fn gzip(raw: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(raw).unwrap();
    e.finish().unwrap()
}

fn ts(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels.iter().map(|(n, v)| Label { name: (*n).into(), value: (*v).into() }).collect(),
        samples: samples.iter().map(|&(timestamp, value)| Sample { value, timestamp }).collect(),
    }
}

fn rw(series: Vec<TimeSeries>) -> Vec<u8> {
    encode(&WriteRequest { timeseries: series, metadata: vec![] })
}

/// Protobuf by hand: field `tag` as a length-delimited value.
fn pb_bytes(tag: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 128);
    let mut v = vec![(tag << 3) | 2, payload.len() as u8];
    v.extend_from_slice(payload);
    v
}

/// One bad request and what its answer must say.
struct Case {
    what: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    chunked: bool,
    status: u16,
    /// Each must appear in the answer's body.
    names: Vec<&'static str>,
}

fn case(
    what: &'static str,
    method: &'static str,
    path: &str,
    headers: &[(&'static str, &'static str)],
    body: impl Into<Vec<u8>>,
    status: u16,
    names: &[&'static str],
) -> Case {
    Case {
        what,
        method,
        path: path.to_string(),
        headers: headers.to_vec(),
        body: body.into(),
        chunked: false,
        status,
        names: names.to_vec(),
    }
}

fn write_cases() -> Vec<Case> {
    let good = ("__name__", "bad_rw_good");
    let big_text = {
        let mut s = String::new();
        let mut i = 0;
        while s.len() <= LIMIT {
            s.push_str(&format!("bad_big{{i=\"{i}\"}} 1 1700000000000\n"));
            i += 1;
        }
        s
    };
    // Compresses to far below the limit, expands to 4x past it.
    let bomb = gzip(&"bad_bomb 1 1700000000000\n".repeat(4 * LIMIT / 25 + 1).into_bytes());
    assert!(bomb.len() < LIMIT);
    let mut v = vec![
        // --- /api/v1/write: Prometheus remote write 1.0
        case("remote write without Content-Type", "POST", "/api/v1/write", &[], rw(vec![]), 415, &["Content-Type"]),
        case(
            "remote write as JSON",
            "POST",
            "/api/v1/write",
            &[("Content-Type", "application/json"), ("Content-Encoding", "snappy")],
            rw(vec![]),
            415,
            &["application/x-protobuf", "application/json"],
        ),
        case(
            "remote write without Content-Encoding",
            "POST",
            "/api/v1/write",
            &[("Content-Type", "application/x-protobuf")],
            prost::Message::encode_to_vec(&WriteRequest {
                timeseries: vec![ts(&[good], &[(1, 1.0)])],
                metadata: vec![],
            }),
            415,
            &["snappy"],
        ),
        case(
            "remote write gzip-encoded",
            "POST",
            "/api/v1/write",
            &[("Content-Type", "application/x-protobuf"), ("Content-Encoding", "gzip")],
            gzip(b"x"),
            415,
            &["snappy", "gzip"],
        ),
        case("remote write, empty body", "POST", "/api/v1/write", &RW, b"".to_vec(), 400, &["snappy"]),
        case(
            "remote write, not snappy",
            "POST",
            "/api/v1/write",
            &RW,
            b"\xff\xff\xff\xff\x0f".to_vec(),
            400,
            &["snappy"],
        ),
        case(
            "remote write, snappy frame stream instead of a block",
            "POST",
            "/api/v1/write",
            &RW,
            {
                let mut w = snap::write::FrameEncoder::new(Vec::new());
                w.write_all(&prost::Message::encode_to_vec(&WriteRequest {
                    timeseries: vec![ts(&[good], &[(1, 1.0)])],
                    metadata: vec![],
                }))
                .unwrap();
                w.into_inner().unwrap()
            },
            400,
            &["snappy"],
        ),
        case(
            "remote write, snappy block cut short",
            "POST",
            "/api/v1/write",
            &RW,
            {
                let full = rw(vec![ts(&[good], &[(1, 1.0), (2, 2.0)])]);
                full[..full.len() - 3].to_vec()
            },
            400,
            &["snappy"],
        ),
        case(
            "remote write, snappy block declaring more than the limit",
            "POST",
            "/api/v1/write",
            &RW,
            // varint 1 GiB, then a literal of 1 byte. 400, not 413, as from Prometheus.
            vec![0x80, 0x80, 0x80, 0x80, 0x04, 0x00, b'x'],
            400,
            &["snappy", "1073741824", "limit"],
        ),
        case(
            "remote write, protobuf garbage",
            "POST",
            "/api/v1/write",
            &RW,
            snappy(b"\x0a\xff\xff\xff"),
            400,
            &["protobuf"],
        ),
        case(
            "remote write, protobuf cut short",
            "POST",
            "/api/v1/write",
            &RW,
            {
                let raw = prost::Message::encode_to_vec(&WriteRequest {
                    timeseries: vec![ts(&[good], &[(1, 1.0)])],
                    metadata: vec![],
                });
                snappy(&raw[..raw.len() - 2])
            },
            400,
            &["protobuf"],
        ),
        case(
            "remote write, label value not UTF-8",
            "POST",
            "/api/v1/write",
            &RW,
            snappy(&pb_bytes(1, &pb_bytes(1, &[pb_bytes(1, b"__name__"), pb_bytes(2, b"bad_utf8\xff")].concat()))),
            400,
            &["protobuf"],
        ),
        case(
            "remote write, invalid label name after a good series",
            "POST",
            "/api/v1/write",
            &RW,
            rw(vec![ts(&[good], &[(1_700_000_000_000, 1.0)]), ts(&[("__name__", "bad_rw"), ("1x", "v")], &[(1, 1.0)])]),
            400,
            &["timeseries[1]", "1x"],
        ),
        case(
            "remote write, invalid metric name",
            "POST",
            "/api/v1/write",
            &RW,
            rw(vec![ts(&[("__name__", "bad rw")], &[(1, 1.0)])]),
            400,
            &["timeseries[0]", "metric name"],
        ),
        case(
            "remote write, duplicate label",
            "POST",
            "/api/v1/write",
            &RW,
            rw(vec![ts(&[("__name__", "bad_rw_dup"), ("a", "1"), ("a", "2")], &[(1, 1.0)])]),
            400,
            &["timeseries[0]", "duplicate", "\"a\""],
        ),
        case(
            "remote write, no metric name",
            "POST",
            "/api/v1/write",
            &RW,
            rw(vec![ts(&[("job", "x")], &[(1, 1.0)])]),
            400,
            &["timeseries[0]", "__name__"],
        ),
        case(
            "remote write, oversized body",
            "POST",
            "/api/v1/write",
            &RW,
            {
                // Label values from a xorshift generator: snappy cannot shrink them below the limit.
                let mut x = 0x9e37_79b9_7f4a_7c15u64;
                let mut next = move || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                let body = rw((0..150)
                    .map(|_| {
                        let v = format!("{:016x}{:016x}", next(), next());
                        ts(&[("__name__", "bad_rw_big"), ("v", &v)], &[(1, 1.0)])
                    })
                    .collect());
                assert!(body.len() > LIMIT, "{}", body.len());
                body
            },
            413,
            &["length limit"],
        ),
        // --- /api/v1/import/prometheus: text exposition
        case(
            "text, bad line after good ones",
            "POST",
            "/api/v1/import/prometheus",
            &[],
            "bad_text_good 1 1700000000000\nbad_text_good 2 1700000001000\nbad_text{x=\"1\" 2 1000\n",
            400,
            &["line 3"],
        ),
        case(
            "text, invalid label name",
            "POST",
            "/api/v1/import/prometheus",
            &[],
            "bad_text_good 1 1700000000000\nbad_text{1x=\"a\"} 1 1000\n",
            400,
            &["line 2", "label name"],
        ),
        case(
            "text, duplicate label name",
            "POST",
            "/api/v1/import/prometheus",
            &[],
            "bad_text{a=\"1\",a=\"2\"} 1 1000\n",
            400,
            &["line 1", "duplicate", "\"a\""],
        ),
        case(
            "text, NaN timestamp",
            "POST",
            "/api/v1/import/prometheus",
            &[],
            "bad_text_good 1 1700000000000\nbad_text 1 NaN\n",
            400,
            &["line 2", "timestamp", "NaN"],
        ),
        case(
            "text, timestamp past i64",
            "POST",
            "/api/v1/import/prometheus",
            &[],
            "bad_text 1 99999999999999999999\n",
            400,
            &["line 1", "timestamp"],
        ),
        case(
            "text, fractional timestamp",
            "POST",
            "/api/v1/import/prometheus",
            &[],
            "bad_text 1 1700000000.5\n",
            400,
            &["line 1", "timestamp"],
        ),
        case(
            "text, bad value",
            "POST",
            "/api/v1/import/prometheus",
            &[],
            "bad_text abc 5\n",
            400,
            &["line 1", "value"],
        ),
        case(
            "text, invalid UTF-8",
            "POST",
            "/api/v1/import/prometheus",
            &[],
            b"bad_text{a=\"\xff\"} 1 5\n".to_vec(),
            400,
            &["line 1", "UTF-8"],
        ),
        case(
            "text, unknown TYPE",
            "POST",
            "/api/v1/import/prometheus",
            &[],
            "# TYPE bad_text bogus\nbad_text 1 5\n",
            400,
            &["line 1", "bogus"],
        ),
        case(
            "OpenMetrics without # EOF",
            "POST",
            "/api/v1/import/prometheus",
            &[("Content-Type", "application/openmetrics-text; version=1.0.0")],
            "bad_text_good 1 1700000000\n",
            400,
            &["EOF"],
        ),
        case(
            "text, gzip header but not gzip",
            "POST",
            "/api/v1/import/prometheus",
            &[("Content-Encoding", "gzip")],
            "bad_text 1 5\n",
            400,
            &["gzip"],
        ),
        case(
            "text, unsupported encoding",
            "POST",
            "/api/v1/import/prometheus",
            &[("Content-Encoding", "br")],
            "bad_text 1 5\n",
            415,
            &["Content-Encoding", "br"],
        ),
        case(
            "text, oversized body",
            "POST",
            "/api/v1/import/prometheus",
            &[],
            big_text.clone(),
            413,
            &["length limit"],
        ),
        case(
            "text, gzip expanding past the limit",
            "POST",
            "/api/v1/import/prometheus",
            &[("Content-Encoding", "gzip")],
            bomb,
            413,
            &["exceeds", &*Box::leak(LIMIT.to_string().into_boxed_str())],
        ),
        // --- /api/v1/metrics: JSON series
        case(
            "JSON, truncated",
            "POST",
            "/api/v1/metrics",
            &JSON,
            r#"{"series":[{"metric":"bad_json","points":[[1700000000,1]]}"#,
            400,
            &["line 1", "column"],
        ),
        case(
            "JSON, string timestamp in the second series",
            "POST",
            "/api/v1/metrics",
            &JSON,
            "{\"series\":[{\"metric\":\"bad.json.good\",\"points\":[[1700000000,1]]},\n{\"metric\":\"bad.json\",\"points\":[[\"x\",2]]}]}",
            400,
            &["line 2", "string \"x\""],
        ),
        case(
            "JSON, NaN value",
            "POST",
            "/api/v1/metrics",
            &JSON,
            r#"{"series":[{"metric":"bad.json","points":[[1700000000,"NaN"]]}]}"#,
            400,
            &["column", "NaN"],
        ),
        case(
            "JSON, timestamp out of range",
            "POST",
            "/api/v1/metrics",
            &JSON,
            r#"{"series":[{"metric":"bad.json","points":[[1e300,1]]}]}"#,
            400,
            &["timestamp", "out of range"],
        ),
        case(
            "JSON, point of three numbers",
            "POST",
            "/api/v1/metrics",
            &JSON,
            r#"{"series":[{"metric":"bad.json","points":[[1700000000,1,2]]}]}"#,
            400,
            &["column", "[seconds, value]"],
        ),
        case(
            "JSON, missing points",
            "POST",
            "/api/v1/metrics",
            &JSON,
            r#"{"series":[{"metric":"bad.json"}]}"#,
            400,
            &["points"],
        ),
        case(
            "JSON, empty metric name",
            "POST",
            "/api/v1/metrics",
            &JSON,
            r#"{"series":[{"metric":"bad.json.good","points":[[1700000000,1]]},{"metric":"","points":[[1700000000,1]]}]}"#,
            400,
            &["series[1]", "metric"],
        ),
        case("JSON, not an object", "POST", "/api/v1/metrics", &JSON, "[1,2]", 400, &["line 1, column 2"]),
        case(
            "JSON as text/plain",
            "POST",
            "/api/v1/metrics",
            &[("Content-Type", "text/plain")],
            r#"{"series":[]}"#,
            415,
            &["application/json", "text/plain"],
        ),
        case(
            "JSON, oversized",
            "POST",
            "/api/v1/metrics",
            &JSON,
            format!(
                r#"{{"series":[{{"metric":"bad.json","points":[[1700000000,1]],"tags":["{}"]}}]}}"#,
                "x".repeat(LIMIT)
            ),
            413,
            &["length limit"],
        ),
        // --- /write: InfluxDB line protocol
        case(
            "Influx, bad field value on line 2",
            "POST",
            "/write",
            &[],
            "bad_influx,host=a good=1 1700000000000000000\nbad_influx,host=a usage=zz\n",
            400,
            &["line 2", "zz"],
        ),
        case(
            "Influx, string field",
            "POST",
            "/write",
            &[],
            "bad_influx,host=a good=1 1700000000000000000\nbad_influx,host=a msg=\"hi\"\n",
            400,
            &["line 2", "msg", "string"],
        ),
        case(
            "Influx, timestamp not a number",
            "POST",
            "/write",
            &[],
            "bad_influx,host=a usage=1 abc\n",
            400,
            &["line 1", "timestamp", "abc"],
        ),
        case(
            "Influx, timestamp past i64 ms at precision s",
            "POST",
            "/write?precision=s",
            &[],
            "bad_influx,host=a usage=1 9223372036854775807\n",
            400,
            &["line 1", "timestamp"],
        ),
        case("Influx, NaN field", "POST", "/write", &[], "bad_influx,host=a usage=NaN\n", 400, &["line 1", "NaN"]),
        case("Influx, empty tag key", "POST", "/write", &[], "bad_influx,=a usage=1\n", 400, &["line 1", "tag"]),
        case("Influx, no fields", "POST", "/write", &[], "bad_influx,host=a\n", 400, &["line 1", "field"]),
        case("Influx, bad precision", "POST", "/write?precision=h", &[], "bad_influx u=1\n", 400, &["precision", "h"]),
        case(
            "Influx, oversized",
            "POST",
            "/write",
            &[],
            "bad_influx,host=a u=1\n".repeat(LIMIT / 10),
            413,
            &["length limit"],
        ),
    ];
    // Oversized with no Content-Length (chunked): the limit holds while streaming.
    let mut chunked =
        case("text, oversized, chunked", "POST", "/api/v1/import/prometheus", &[], big_text, 413, &["length limit"]);
    chunked.chunked = true;
    v.push(chunked);
    v
}

fn read_cases() -> Vec<Case> {
    let get =
        |what, path: &str, status, names: &[&'static str]| case(what, "GET", path, &[], b"".to_vec(), status, names);
    vec![
        get("query without query", "/api/v1/query", 400, &["bad_data", "\"query\""]),
        get("query, PromQL syntax error", "/api/v1/query?query=sum(", 400, &["bad_data", "parse error"]),
        get("query, time not a time", "/api/v1/query?query=up&time=yesterday", 400, &["\"time\"", "yesterday"]),
        get("query, NaN time", "/api/v1/query?query=up&time=NaN", 400, &["\"time\"", "NaN"]),
        get("query, infinite time", "/api/v1/query?query=up&time=1e400", 400, &["\"time\"", "1e400"]),
        get(
            "query, month 13 in RFC 3339",
            "/api/v1/query?query=up&time=2020-13-45T00:00:00Z",
            400,
            &["\"time\"", "2020-13-45"],
        ),
        get("query, bad timeout", "/api/v1/query?query=up&timeout=soon", 400, &["\"timeout\"", "soon"]),
        get("range, missing step", "/api/v1/query_range?query=up&start=1&end=2", 400, &["\"step\""]),
        get("range, missing start", "/api/v1/query_range?query=up&end=2&step=1", 400, &["\"start\""]),
        get("range, zero step", "/api/v1/query_range?query=up&start=1&end=2&step=0", 400, &["\"step\""]),
        get("range, negative step", "/api/v1/query_range?query=up&start=1&end=2&step=-1", 400, &["\"step\""]),
        get(
            "range, step below a millisecond",
            "/api/v1/query_range?query=up&start=1&end=2&step=0.0001",
            400,
            &["step"],
        ),
        get("range, bad duration unit", "/api/v1/query_range?query=up&start=1&end=2&step=5x", 400, &["\"step\"", "5x"]),
        get("range, end before start", "/api/v1/query_range?query=up&start=100&end=1&step=1", 400, &["end", "start"]),
        get(
            "range, too many points",
            "/api/v1/query_range?query=up&start=0&end=1000000&step=1",
            400,
            &["11000 points"],
        ),
        get(
            "range, whole i64 span",
            "/api/v1/query_range?query=up&start=-9000000000000000&end=9000000000000000&step=1",
            400,
            &["11000 points"],
        ),
        get(
            "range, bad timeout",
            "/api/v1/query_range?query=up&start=1&end=2&step=1&timeout=-5s",
            400,
            &["\"timeout\""],
        ),
        get("series without match[]", "/api/v1/series", 400, &["match[]"]),
        get("series, expression as match[]", "/api/v1/series?match%5B%5D=rate(x%5B1m%5D)", 400, &["match[]", "rate"]),
        get("series, empty selector", "/api/v1/series?match%5B%5D=%7B%7D", 400, &["match[]", "empty"]),
        get("series, bad start", "/api/v1/series?match%5B%5D=up&start=abc", 400, &["start", "abc"]),
        get("series, end before start", "/api/v1/series?match%5B%5D=up&start=100&end=1", 400, &["end", "start"]),
        get("labels, bad match[]", "/api/v1/labels?match%5B%5D=%7B", 400, &["match[]"]),
        get("labels, bad end", "/api/v1/labels?end=tomorrow", 400, &["end", "tomorrow"]),
        get("label values, invalid label name", "/api/v1/label/1bad/values", 400, &["label name", "1bad"]),
        get("unknown path", "/api/v1/nope", 404, &["/api/v1/nope"]),
        case("GET on the write endpoint", "GET", "/api/v1/write", &[], b"".to_vec(), 405, &["GET", "/api/v1/write"]),
        case("DELETE on query", "DELETE", "/api/v1/query", &[], b"".to_vec(), 405, &["DELETE"]),
    ]
}

#[test]
fn every_bad_request_gets_a_4xx_naming_the_problem_and_stores_nothing() {
    let s = Server::start();
    // Some good data first, through every write endpoint, so that "nothing stored" is checked
    // against a store that is not empty (and bad requests that reuse these series would show).
    type Good<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16);
    let good: Vec<Good> = vec![
        ("/api/v1/import/prometheus", vec![], b"bad_text_good 1 1600000000000\n".to_vec(), 204),
        (
            "/api/v1/metrics",
            JSON.to_vec(),
            br#"{"series":[{"metric":"bad.json.good","points":[[1600000000,1]]}]}"#.to_vec(),
            202,
        ),
        ("/write", vec![], b"bad_influx,host=a good=1 1600000000000000000\n".to_vec(), 204),
        ("/api/v1/write", RW.to_vec(), rw(vec![ts(&[("__name__", "bad_rw_good")], &[(1_600_000_000_000, 1.0)])]), 204),
    ];
    for (path, headers, body, want) in &good {
        let (st, b) = s.request("POST", path, headers, body);
        assert_eq!(st, *want, "{path}: {b}");
    }
    let mut before = s.stored();
    assert_eq!(before.0.len(), 4, "{:?}", before.0);
    assert_eq!(before.1, 4);

    let mut failures = Vec::new();
    for c in write_cases().into_iter().chain(read_cases()) {
        let (st, b) = s.send(c.method, &c.path, &c.headers, &c.body, c.chunked);
        if st != c.status {
            failures.push(format!("{}: {} {} answered {st}, not {}: {b:?}", c.what, c.method, c.path, c.status));
        }
        // JSON answers: the message is the `error` field (its quotes unescaped).
        let msg = serde_json::from_str::<serde_json::Value>(&b)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_default();
        for n in &c.names {
            if !b.contains(n) && !msg.contains(n) {
                failures.push(format!("{}: answer {b:?} does not name {n:?}", c.what));
            }
        }
        let after = s.stored();
        if after != before {
            let new: Vec<&String> = after.0.iter().filter(|x| !before.0.contains(x)).take(3).collect();
            failures.push(format!(
                "{}: stored {} samples, {} series (e.g. {new:?})",
                c.what,
                after.1 as i64 - before.1 as i64,
                after.0.len() as i64 - before.0.len() as i64
            ));
            before = after;
        }
    }
    assert!(failures.is_empty(), "{} problems:\n{}", failures.len(), failures.join("\n"));

    // Still serving, reads and writes.
    let (st, b) = s.request("POST", "/api/v1/import/prometheus", &[], b"bad_after 1 1700000000000\n");
    assert_eq!(st, 204, "{b}");
    let (series, n) = s.stored();
    assert_eq!((series.len(), n), (before.0.len() + 1, before.1 + 1), "{series:?}");
}

#[test]
fn a_refused_request_leaves_the_series_it_touched_as_they_were() {
    // The same series in a good request and then in a bad one: the bad one adds no sample.
    let s = Server::start();
    let body = rw(vec![ts(&[("__name__", "same")], &[(1_700_000_000_000, 1.0), (1_700_000_001_000, 2.0)])]);
    assert_eq!(s.request("POST", "/api/v1/write", &RW, &body).0, 204);
    let bad = rw(vec![
        ts(&[("__name__", "same")], &[(1_700_000_002_000, 3.0)]),
        ts(&[("__name__", "same"), ("bad-label", "x")], &[(1_700_000_002_000, 3.0)]),
    ]);
    let (st, b) = s.request("POST", "/api/v1/write", &RW, &bad);
    assert!(st == 400 && b.contains("timeseries[1]") && b.contains("bad-label"), "{st} {b}");
    let (st, b) = s.request(
        "POST",
        "/api/v1/import/prometheus",
        &[],
        b"same 3 1700000002000\nsame{bad-label=\"x\"} 3 1700000002000\n",
    );
    assert!(st == 400 && b.contains("line 2"), "{st} {b}");
    let (st, b) = s.get("/api/v1/query?query=count_over_time(same%5B1h%5D)&time=1700000010");
    assert_eq!(st, 200, "{b}");
    assert!(b.contains(r#""value":[1700000010,"2"]"#), "{b}");
}
