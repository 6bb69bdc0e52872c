//! The HTTP API (cargo feature `server`): axum on a tokio runtime.
//!
//! | method | path | what |
//! |---|---|---|
//! | POST | `/api/v1/import/prometheus` | text exposition (0.0.4, or OpenMetrics by `Content-Type`), timestamps optional; `204` once durable |
//! | POST | `/api/v1/metrics` | JSON series `{"series":[{"metric","points","tags"}]}` (telemetry-core `format::json`); `202` once durable |
//! | POST | `/api/v1/write` | Prometheus remote write 1.0 (snappy-compressed protobuf `WriteRequest`); `204` once durable |
//! | POST | `/write` | InfluxDB line protocol (`precision` = `ns`/`us`/`ms`/`s`); `204` once durable |
//! | GET/POST | `/api/v1/query`, `/api/v1/query_range` | PromQL, Prometheus's JSON |
//! | GET/POST | `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/{name}/values` | series metadata |
//! | GET | `/api/v1/metadata` | metric family metadata |
//! | GET | `/api/v1/status/tsdb` | cardinality statistics |
//! | GET | `/api/v1/anomalies` | anomaly events |
//! | GET | `/metrics` | self-monitoring, Prometheus text |
//! | PUT/POST/DELETE | `/metrics/job/<job>{/<label>/<value>}` | Pushgateway semantics ([`push`](crate::push)); `200`, `202` for DELETE |
//! | GET | `/api/v1/simple/query` | the simple REST query ([`rest`](crate::rest)): datapoints per series |
//!
//! Write endpoints answer `400` naming the bad line, `413` for bodies over
//! `server.max_body_bytes` (also once gunzipped; a remote-write snappy block declaring more than
//! 8 times that decompressed gets `400`, as from Prometheus), `415` for an unsupported
//! `Content-Encoding`, `429` with `Retry-After` when the ingest queue is full, `503` when storage
//! fails, `401` without the configured bearer token (compared in constant time). Nothing of a
//! refused request is stored. Read endpoints answer `400` with Prometheus's error JSON naming
//! the parameter; unknown paths `404` and wrong methods `405`, each naming the path.

// Handlers bail out with a ready `Response` as the error value; boxing it buys nothing here.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use telemetry_core::format::influx::{FieldSample, InfluxDecoder, Precision};
use telemetry_core::format::text::Flavor;
use telemetry_core::{Labels, Matcher, Queryable, SelectHints};
use telemetry_query::api::ApiResponse;

use crate::batch::{Batch, BatchBuilder};
use crate::pipeline::{Ack, IngestError, Pipeline};

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime cannot be built or the server failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    /// A source cannot be started (e.g. the StatsD address cannot be bound).
    #[error(transparent)]
    Source(#[from] crate::sources::SourceError),
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) p: Arc<Pipeline>,
    pub(crate) push: Arc<crate::push::PushRegistry>,
}

/// The router with every endpoint, for embedding or tests.
pub fn router(p: Arc<Pipeline>) -> Router {
    let limit = p.config().server.max_body_bytes;
    Router::new()
        .route("/api/v1/import/prometheus", post(import_prometheus))
        .route("/api/v1/metrics", post(import_json))
        .route("/write", post(import_influx))
        .route("/api/v1/write", post(remote_write))
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/status/tsdb", get(status_tsdb))
        .route("/api/v1/anomalies", get(anomalies))
        .route("/api/v1/admin/tsdb/delete_series", post(delete_series).put(delete_series))
        .route("/api/v1/admin/tsdb/clean_tombstones", post(clean_tombstones).put(clean_tombstones))
        .route("/metrics", get(self_metrics))
        .route("/api/v1/simple/query", get(crate::rest::simple_query))
        .route(
            "/metrics/{*grouping_key}",
            if p.config().push.enabled {
                axum::routing::put(crate::push::handle).post(crate::push::handle).delete(crate::push::handle)
            } else {
                axum::routing::MethodRouter::new()
            },
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(AppState { p, push: Arc::new(crate::push::PushRegistry::new()) })
}

/// Serves on `listener` until `shutdown` resolves, then stops accepting and finishes the
/// requests in flight.
///
/// # Errors
/// [`ServerError::Io`] when serving fails.
pub async fn serve(
    p: Arc<Pipeline>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    axum::serve(listener, router(p)).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

/// Runs the server on its own tokio runtime on `server.listen` until SIGINT or SIGTERM, with
/// the sources the configuration enables ([`Sources`](crate::sources::Sources): StatsD, the
/// scrape manager), which stop (StatsD flushing) after the server. `on_listen` is called with
/// the bound address once requests are accepted.
///
/// # Errors
/// [`ServerError::Bind`] when the address cannot be bound; [`ServerError::Source`] when a
/// source cannot start; [`ServerError::Io`] otherwise.
pub fn serve_blocking(p: Arc<Pipeline>, on_listen: impl FnOnce(SocketAddr)) -> Result<(), ServerError> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let addr = p.config().server.listen.clone();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| ServerError::Bind { addr: addr.clone(), source })?;
        let sources = crate::sources::Sources::start(p.clone()).await?;
        on_listen(listener.local_addr()?);
        let r = serve(p, listener, shutdown_signal()).await;
        sources.shutdown().await;
        r
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

async fn not_found(uri: axum::http::Uri) -> Response {
    text(StatusCode::NOT_FOUND, format!("no endpoint at {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Response {
    text(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {}", uri.path()))
}

pub(crate) fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut m = msg.into();
    m.push('\n');
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], m).into_response()
}

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(b) => (status, [(header::CONTENT_TYPE, "application/json")], b).into_response(),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode response: {e}")),
    }
}

pub(crate) fn api_error(status: StatusCode, error_type: &str, msg: impl Into<String>) -> Response {
    json_response(status, &serde_json::json!({"status": "error", "errorType": error_type, "error": msg.into()}))
}

pub(crate) fn api_ok(data: impl serde::Serialize) -> Response {
    json_response(StatusCode::OK, &serde_json::json!({"status": "success", "data": data}))
}

/// Constant-time comparison of the presented bearer token with the expected one.
pub(crate) fn authorized(headers: &HeaderMap, expected: &str) -> bool {
    if expected.is_empty() {
        return true;
    }
    let Some(got) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some(tok) = got.strip_prefix("Bearer ") else { return false };
    let (a, b) = (tok.as_bytes(), expected.as_bytes());
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

pub(crate) fn unauthorized() -> Response {
    let mut r = text(StatusCode::UNAUTHORIZED, "missing or wrong bearer token (Authorization: Bearer <token>)");
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// The body, gunzipped when `Content-Encoding: gzip`.
pub(crate) fn body_bytes(headers: &HeaderMap, body: Bytes, max: usize) -> Result<Vec<u8>, Response> {
    match headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()) {
        None | Some("identity") => Ok(body.to_vec()),
        Some("gzip") => {
            let mut out = Vec::new();
            let mut d = flate2::read::MultiGzDecoder::new(&body[..]).take(max as u64 + 1);
            d.read_to_end(&mut out).map_err(|e| text(StatusCode::BAD_REQUEST, format!("bad gzip body: {e}")))?;
            if out.len() > max {
                return Err(text(StatusCode::PAYLOAD_TOO_LARGE, format!("decompressed body exceeds {max} bytes")));
            }
            Ok(out)
        }
        Some(other) => Err(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Encoding {other:?} (gzip or identity)"),
        )),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Submits without waiting for queue room (429 when full), then waits for the acknowledgement.
pub(crate) async fn submit(p: &Pipeline, batch: Batch, ok: StatusCode) -> Response {
    let n = batch.len();
    let (tx, rx) = tokio::sync::oneshot::channel::<Result<Ack, IngestError>>();
    let r = p.try_submit(
        batch,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    match r {
        Ok(()) => {}
        Err(IngestError::QueueFull { capacity }) => {
            let mut resp = text(
                StatusCode::TOO_MANY_REQUESTS,
                format!("ingest queue full ({capacity} batches); retry after {} s", p.config().server.retry_after_s),
            );
            if let Ok(v) = HeaderValue::from_str(&p.config().server.retry_after_s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
        Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
    match rx.await {
        Ok(Ok(ack)) => {
            let refused = ack.refused_limits + ack.refused_storage + ack.refused_invalid;
            if refused > 0 && refused as usize == n {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "no sample stored: {} refused by cardinality limits, {} out of order or conflicting, {} with invalid labels",
                        ack.refused_limits, ack.refused_storage, ack.refused_invalid
                    ),
                );
            }
            ok.into_response()
        }
        Ok(Err(e)) => text(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "pipeline shut down"),
    }
}

// ---------------------------------------------------------------------------------------------
// Write endpoints

async fn import_prometheus(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&headers, &s.p.config().server.write_token) {
        return unauthorized();
    }
    let body = match body_bytes(&headers, body, s.p.config().server.max_body_bytes) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let flavor = if ct.starts_with("application/openmetrics-text") { Flavor::OpenMetrics } else { Flavor::Prometheus };
    let batch = match crate::replay::decode_text(&body, flavor, now_ms()) {
        Ok(b) => b,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("cannot parse {flavor} text: {e}")),
    };
    submit(&s.p, batch, StatusCode::NO_CONTENT).await
}

async fn import_json(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&headers, &s.p.config().server.write_token) {
        return unauthorized();
    }
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    if !ct.starts_with("application/json") {
        return text(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("Content-Type must be application/json, not {ct:?}"));
    }
    let body = match body_bytes(&headers, body, s.p.config().server.max_body_bytes) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let payload = match telemetry_core::format::json::decode(&body) {
        Ok(p) => p,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("invalid JSON series: {e}")),
    };
    let mut b = BatchBuilder::new();
    for (i, series) in payload.series.iter().enumerate() {
        if series.metric.is_empty() {
            return text(StatusCode::BAD_REQUEST, format!("series[{i}]: empty metric name"));
        }
        let labels = match series.to_labels() {
            Ok(l) => l,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("series[{i}] ({}): {e}", series.metric)),
        };
        for pt in &series.points {
            b.push(&labels, pt.timestamp_ms, pt.value);
        }
    }
    submit(&s.p, b.finish(), StatusCode::ACCEPTED).await
}

async fn import_influx(State(s): State<AppState>, RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&headers, &s.p.config().server.write_token) {
        return unauthorized();
    }
    let params = parse_params(q.as_deref(), None);
    let precision = match params.iter().find(|(k, _)| k == "precision").map(|(_, v)| v.as_str()) {
        None | Some("ns") | Some("n") => Precision::Nanoseconds,
        Some("us") | Some("u") => Precision::Microseconds,
        Some("ms") => Precision::Milliseconds,
        Some("s") => Precision::Seconds,
        Some(other) => {
            return text(StatusCode::BAD_REQUEST, format!("unknown precision {other:?} (ns, us, ms or s)"));
        }
    };
    let body = match body_bytes(&headers, body, s.p.config().server.max_body_bytes) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = now_ms();
    let mut b = BatchBuilder::new();
    for (i, line) in InfluxDecoder::new(&body).with_precision(precision).enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("invalid line protocol: {e}")),
        };
        let ts = line.timestamp_ms.unwrap_or(now);
        for fs in line.samples() {
            match fs {
                FieldSample::Sample { labels, value } => b.push(&labels, ts, value),
                FieldSample::NotNumeric { field } => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "line {}: field {field:?} is a string; only numeric and boolean fields become samples",
                            i + 1
                        ),
                    );
                }
                FieldSample::Invalid(e) => return text(StatusCode::BAD_REQUEST, format!("line {}: {e}", i + 1)),
            }
        }
    }
    submit(&s.p, b.finish(), StatusCode::NO_CONTENT).await
}

async fn remote_write(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&headers, &s.p.config().server.write_token) {
        return unauthorized();
    }
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("application/x-protobuf") {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type must be application/x-protobuf (remote write 1.0), not {ct:?}"),
        );
    }
    match headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()) {
        Some("snappy") => {}
        other => {
            return text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding must be snappy (remote write 1.0), not {other:?}"),
            );
        }
    }
    let batch = match crate::remote_write::decode_interned(&body, s.p.config().server.max_body_bytes.saturating_mul(8))
    {
        Ok(b) => b,
        // 400 for a block declaring too much, too, as Prometheus's receiver answers.
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    submit(&s.p, batch, StatusCode::NO_CONTENT).await
}

// ---------------------------------------------------------------------------------------------
// Read endpoints

/// Query-string and (for POST) form-body parameters, in order, repeated keys kept.
pub(crate) fn parse_params(query: Option<&str>, body: Option<&[u8]>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    if let Some(q) = query {
        out.extend(serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default());
    }
    if let Some(b) = body {
        out.extend(serde_urlencoded::from_bytes::<Vec<(String, String)>>(b).unwrap_or_default());
    }
    out
}

pub(crate) fn param<'a>(ps: &'a [(String, String)], k: &str) -> Option<&'a str> {
    ps.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// A Prometheus API time: Unix seconds (fractional allowed) or RFC 3339 (`...Z`).
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() && f.abs() < 9.2e15 {
            return Ok((f * 1000.0).round() as i64);
        }
        return Err(format!("invalid time {s:?}: out of range"));
    }
    parse_rfc3339(s).ok_or_else(|| format!("invalid time {s:?}: Unix seconds or RFC 3339 expected"))
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    // YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&mo) || d < 1 || d > month_days[(mo - 1) as usize] || h > 23 || mi > 59 || se > 59 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = s.get(start..i)?;
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        ms = digits.parse().ok()?;
    }
    let off = match s.get(i..)? {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && o.as_bytes()[3] == b':' => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let (oh, om) = (o.get(1..3)?.parse::<i64>().ok()?, o.get(4..6)?.parse::<i64>().ok()?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + se - off) * 1000) + ms)
}

/// A step or duration: seconds (`15`, `0.5`) or a Prometheus duration (`15s`, `1m`, `1h30m`).
pub(crate) fn parse_duration_ms(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() && f > 0.0 {
            return Ok((f * 1000.0).round() as i64);
        }
        return Err(format!("invalid duration {s:?}: must be positive"));
    }
    let mut total = 0i64;
    let mut rest = s;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let n: i64 = rest[..n_end].parse().map_err(|_| format!("invalid duration {s:?}"))?;
        rest = &rest[n_end..];
        let u_end = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return Err(format!("invalid duration {s:?}: unknown unit")),
        };
        total = total.saturating_add(n.saturating_mul(unit));
        rest = &rest[u_end..];
    }
    Ok(total)
}

/// Checks the optional `timeout` parameter (a duration, as Prometheus takes it). The engine's
/// configured `query.timeout_ms` is what limits evaluation.
fn check_timeout(ps: &[(String, String)]) -> Result<(), Response> {
    match param(ps, "timeout") {
        None => Ok(()),
        Some(v) => parse_duration_ms(v)
            .map(|_| ())
            .map_err(|e| api_error(StatusCode::BAD_REQUEST, "bad_data", format!("parameter \"timeout\": {e}"))),
    }
}

pub(crate) async fn read_params(
    s: &AppState,
    method: &Method,
    headers: &HeaderMap,
    q: Option<String>,
    body: Bytes,
) -> Result<Vec<(String, String)>, Response> {
    if !authorized(headers, &s.p.config().server.read_token) {
        return Err(unauthorized());
    }
    let body = (method == Method::POST).then_some(&body[..]);
    Ok(parse_params(q.as_deref(), body))
}

fn query_response(r: Result<telemetry_query::QueryResult, telemetry_query::QueryError>) -> Response {
    let resp = ApiResponse::from_result(&r);
    let status = StatusCode::from_u16(resp.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &resp)
}

async fn query(
    State(s): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let ps = match read_params(&s, &method, &headers, q, body).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(expr) = param(&ps, "query").map(str::to_string) else {
        return api_error(StatusCode::BAD_REQUEST, "bad_data", "missing parameter \"query\"");
    };
    if let Err(r) = check_timeout(&ps) {
        return r;
    }
    let t = match param(&ps, "time").map(parse_time).transpose() {
        Ok(t) => t.unwrap_or_else(now_ms),
        Err(e) => return api_error(StatusCode::BAD_REQUEST, "bad_data", format!("parameter \"time\": {e}")),
    };
    let p = s.p.clone();
    match tokio::task::spawn_blocking(move || p.query_instant(&expr, t)).await {
        Ok(r) => query_response(r),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

async fn query_range(
    State(s): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let ps = match read_params(&s, &method, &headers, q, body).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(expr) = param(&ps, "query").map(str::to_string) else {
        return api_error(StatusCode::BAD_REQUEST, "bad_data", "missing parameter \"query\"");
    };
    if let Err(r) = check_timeout(&ps) {
        return r;
    }
    let get = |k: &str, f: fn(&str) -> Result<i64, String>| -> Result<i64, Response> {
        let v = param(&ps, k)
            .ok_or_else(|| api_error(StatusCode::BAD_REQUEST, "bad_data", format!("missing parameter {k:?}")))?;
        f(v).map_err(|e| api_error(StatusCode::BAD_REQUEST, "bad_data", format!("parameter {k:?}: {e}")))
    };
    let (start, end, step) = match (get("start", parse_time), get("end", parse_time), get("step", parse_duration_ms)) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r,
    };
    let p = s.p.clone();
    match tokio::task::spawn_blocking(move || p.query_range(&expr, start, end, step)).await {
        Ok(r) => query_response(r),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

fn matchers_of(ps: &[(String, String)]) -> Result<Vec<Vec<Matcher>>, Response> {
    ps.iter()
        .filter(|(k, _)| k == "match[]")
        .map(|(_, v)| {
            crate::anomaly::parse_selector(v)
                .map_err(|e| api_error(StatusCode::BAD_REQUEST, "bad_data", format!("match[] {v:?}: {e}")))
        })
        .collect()
}

/// The `match[]` selectors of a request that needs at least one (`series`, `delete_series`).
fn required_matchers(ps: &[(String, String)]) -> Result<Vec<Vec<Matcher>>, Response> {
    let sets = matchers_of(ps)?;
    if sets.is_empty() {
        return Err(api_error(StatusCode::BAD_REQUEST, "bad_data", "no match[] parameter provided"));
    }
    Ok(sets)
}

/// The `match[]` selectors (at least one) and the `start`/`end` range of a request that
/// selects series (`series`, `delete_series`).
fn selection(ps: &[(String, String)]) -> Result<(Vec<Vec<Matcher>>, i64, i64), Response> {
    let sets = required_matchers(ps)?;
    let (start, end) = range_of(ps)?;
    Ok((sets, start, end))
}

fn range_of(ps: &[(String, String)]) -> Result<(i64, i64), Response> {
    let t = |k: &str, d: i64| -> Result<i64, Response> {
        match param(ps, k) {
            None => Ok(d),
            Some(v) => parse_time(v).map_err(|e| api_error(StatusCode::BAD_REQUEST, "bad_data", format!("{k}: {e}"))),
        }
    };
    let (start, end) = (t("start", i64::MIN)?, t("end", i64::MAX)?);
    if end < start {
        return Err(api_error(StatusCode::BAD_REQUEST, "bad_data", "end timestamp must not be before start time"));
    }
    Ok((start, end))
}

/// Parameters of an admin request: the admin API must be on, and the write token given when
/// one is set (these endpoints change stored data).
fn admin_params(
    s: &AppState,
    headers: &HeaderMap,
    q: Option<String>,
    body: &Bytes,
) -> Result<Vec<(String, String)>, Response> {
    if !s.p.config().server.enable_admin_api {
        return Err(api_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "admin APIs disabled"));
    }
    if !authorized(headers, &s.p.config().server.write_token) {
        return Err(unauthorized());
    }
    Ok(parse_params(q.as_deref(), Some(&body[..])))
}

fn db_error(e: telemetry_store::DbError) -> Response {
    match e {
        telemetry_store::DbError::Config(m) => api_error(StatusCode::BAD_REQUEST, "bad_data", m),
        e => api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

/// `POST|PUT /api/v1/admin/tsdb/delete_series?match[]=<selector>&start=&end=`: deletes the
/// matching series' samples in the range (default: all time), as Prometheus's admin API; each
/// `match[]` is one durable deletion. 204 on success.
async fn delete_series(State(s): State<AppState>, headers: HeaderMap, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let ps = match admin_params(&s, &headers, q, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (sets, start, end) = match selection(&ps) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let p = s.p.clone();
    admin_answer(
        tokio::task::spawn_blocking(move || -> Result<(), telemetry_store::DbError> {
            for m in &sets {
                p.storage().delete(m, start, end)?;
            }
            Ok(())
        })
        .await,
    )
}

/// 204 for an admin operation that succeeded, else its error's answer.
fn admin_answer<T>(r: Result<Result<T, telemetry_store::DbError>, tokio::task::JoinError>) -> Response {
    match r {
        Ok(Ok(_)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => db_error(e),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

/// `POST|PUT /api/v1/admin/tsdb/clean_tombstones`: rewrites the blocks that hold deleted data
/// and drops the tombstones with nothing left to hide. 204 on success.
async fn clean_tombstones(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    if let Err(r) = admin_params(&s, &headers, q, &body) {
        return r;
    }
    let p = s.p.clone();
    admin_answer(tokio::task::spawn_blocking(move || p.storage().clean_tombstones()).await)
}

fn storage_error(e: telemetry_core::StorageError) -> Response {
    api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
}

async fn series(
    State(s): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let ps = match read_params(&s, &method, &headers, q, body).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (sets, start, end) = match selection(&ps) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = match s.p.storage().querier(start, end) {
        Ok(q) => q,
        Err(e) => return storage_error(e),
    };
    let mut out: Vec<Labels> = Vec::new();
    for m in &sets {
        let set = match q.select(&SelectHints { start_ms: start, end_ms: end, ..SelectHints::default() }, m) {
            Ok(s) => s,
            Err(e) => return storage_error(e),
        };
        for series in set {
            match series {
                Ok(series) => out.push(series.labels),
                Err(e) => return storage_error(e),
            }
        }
    }
    out.sort();
    out.dedup();
    api_ok(out)
}

async fn labels(
    State(s): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let ps = match read_params(&s, &method, &headers, q, body).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    string_list(&s, &ps, |q, m| q.label_names(m))
}

/// The sorted, unique union of `list` over the request's `match[]` selectors (one pass with no
/// matchers when there are none), read from the head over the request's time range: the shape
/// of `/api/v1/labels` and `/api/v1/label/<name>/values`.
fn string_list(
    s: &AppState,
    ps: &[(String, String)],
    list: impl Fn(&dyn telemetry_core::Querier, &[Matcher]) -> Result<Vec<String>, telemetry_core::StorageError>,
) -> Response {
    let sets = match matchers_of(ps) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let (start, end) = match range_of(ps) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let q = match s.p.storage().querier(start, end) {
        Ok(q) => q,
        Err(e) => return storage_error(e),
    };
    let mut out = Vec::new();
    let all = [Vec::new()];
    for m in if sets.is_empty() { &all[..] } else { &sets[..] } {
        match list(q.as_ref(), m) {
            Ok(v) => out.extend(v),
            Err(e) => return storage_error(e),
        }
    }
    out.sort();
    out.dedup();
    api_ok(out)
}

async fn label_values(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let ps = match read_params(&s, &Method::GET, &headers, q, Bytes::new()).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !telemetry_core::labels::is_valid_label_name(&name) && name != "__name__" {
        return api_error(StatusCode::BAD_REQUEST, "bad_data", format!("invalid label name: {name:?}"));
    }
    string_list(&s, &ps, |q, m| q.label_values(&name, m))
}

async fn metadata(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&headers, &s.p.config().server.read_token) {
        return unauthorized();
    }
    let md = s.p.metadata();
    let out: HashMap<String, Vec<serde_json::Value>> = md
        .into_iter()
        .map(|(k, m)| (k, vec![serde_json::json!({"type": m.metric_type.as_str(), "help": m.help, "unit": m.unit})]))
        .collect();
    api_ok(out)
}

async fn status_tsdb(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&headers, &s.p.config().server.read_token) {
        return unauthorized();
    }
    let p = s.p.clone();
    let r = tokio::task::spawn_blocking(move || tsdb_status(&p)).await;
    match r {
        Ok(Ok(v)) => api_ok(v),
        Ok(Err(e)) => storage_error(e),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

fn tsdb_status(p: &Pipeline) -> Result<serde_json::Value, telemetry_core::StorageError> {
    let stats = p.storage().stats().head;
    let q = p.storage().querier(i64::MIN, i64::MAX)?;
    let mut by_metric: HashMap<String, u64> = HashMap::new();
    let mut values_by_name: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
    let mut by_pair: HashMap<String, u64> = HashMap::new();
    for s in q.select(&SelectHints::default(), &[])? {
        let s = s?;
        if let Some(n) = s.labels.metric_name() {
            *by_metric.entry(n.to_string()).or_default() += 1;
        }
        for l in s.labels.iter() {
            values_by_name.entry(l.name.to_string()).or_default().insert(l.value.to_string());
            *by_pair.entry(format!("{}={}", l.name, l.value)).or_default() += 1;
        }
    }
    let top = |m: HashMap<String, u64>| {
        let mut v: Vec<(String, u64)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(10);
        v.into_iter().map(|(name, value)| serde_json::json!({"name": name, "value": value})).collect::<Vec<_>>()
    };
    let label_counts: HashMap<String, u64> = values_by_name.into_iter().map(|(k, v)| (k, v.len() as u64)).collect();
    let (min, max) = stats.time_range.unwrap_or((0, 0));
    Ok(serde_json::json!({
        "headStats": {"numSeries": stats.series, "chunkCount": stats.chunks, "minTime": min, "maxTime": max},
        "seriesCountByMetricName": top(by_metric),
        "labelValueCountByLabelName": top(label_counts),
        "seriesCountByLabelValuePair": top(by_pair),
    }))
}

async fn anomalies(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&headers, &s.p.config().server.read_token) {
        return unauthorized();
    }
    api_ok(s.p.anomalies())
}

async fn self_metrics(State(s): State<AppState>) -> Response {
    let p = s.p.clone();
    match tokio::task::spawn_blocking(move || p.metrics_text()).await {
        Ok(t) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], t).into_response()
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations() {
        assert_eq!(parse_time("1795267190.5").unwrap(), 1_795_267_190_500);
        assert_eq!(parse_time("1970-01-01T00:01:00Z").unwrap(), 60_000);
        assert_eq!(parse_time("2015-07-01T20:10:51.781Z").unwrap(), 1_435_781_451_781);
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_time("2024-02-29T23:59:59+01:00").unwrap(), 1_709_247_599_000);
        for bad in ["2020-13-01T00:00:00Z", "2021-02-29T00:00:00Z", "2020-01-01T24:00:00Z", "2020-01-01T00:00:00+25:00"]
        {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration_ms("15s").unwrap(), 15_000);
        assert_eq!(parse_duration_ms("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration_ms("0.5").unwrap(), 500);
        assert!(parse_duration_ms("5x").is_err());
    }

    #[test]
    fn bearer_tokens() {
        let mut h = HeaderMap::new();
        assert!(authorized(&h, ""));
        assert!(!authorized(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert!(authorized(&h, "s3cret"));
        assert!(!authorized(&h, "s3cre"));
        assert!(!authorized(&h, "s3cret!"));
    }
}
