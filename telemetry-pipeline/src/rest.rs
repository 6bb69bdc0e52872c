//! The seeds' simple REST query (cargo feature `server`):
//!
//! ```text
//! GET /api/v1/simple/query?metric=api.request.duration_count&tags=env:production,service:checkout
//!     &from=1700000000&to=1700003600&resolution=60s&stat=p99
//! ```
//!
//! | parameter | meaning | default |
//! |---|---|---|
//! | `metric` | metric name, dotted names mapped as the StatsD/JSON sources map them (`api.request.duration` → `api_request_duration`) | required |
//! | `tags` | `k:v` pairs separated by `,`, each an equality matcher (a bare `k` means `k="true"`, as the sources map it) | none |
//! | `from`, `to` | Unix seconds or RFC 3339 | `to` = now, `from` = `to` − 1 h |
//! | `resolution` | seconds or a Prometheus duration (`60s`, `5m`) | `60s` |
//! | `stat` | `avg`, `min`, `max`, `sum`, `count`, `last`, or a percentile `p50`, `p90`, `p99` (any `pNN`, `p99.9`) | `avg` |
//!
//! It is evaluated by the PromQL engine as a range query from `from` to `to` every
//! `resolution` of `<stat>_over_time(<selector>[<resolution>])` (`quantile_over_time(q, …)`
//! for percentiles), so each datapoint `[t, v]` summarises the raw samples in
//! `(t − resolution, t]`, and it reads whatever storage the engine reads. The answer:
//!
//! ```json
//! {"status": "success", "data": {"metric": "api_request_duration_count", "stat": "p99",
//!   "resolution": 60, "query": "quantile_over_time(0.99, {...}[60000ms])",
//!   "series": [{"tags": {"env": "production", "service": "checkout"},
//!               "datapoints": [[1700000060, 142], ...]}]}}
//! ```
//!
//! Timestamps `t` are Unix seconds; series are sorted by tags. Errors: `400` with
//! Prometheus's error JSON naming the parameter; at most 11,000 points per series.

// Handlers bail out with a ready `Response` as the error value; boxing it buys nothing here.
#![allow(clippy::result_large_err)]

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use telemetry_core::format::normalize::{label_name, metric_name, split_tag};
use telemetry_query::Value;

use crate::server::{AppState, api_error, api_ok, param, parse_duration_ms, parse_time, read_params};

/// A PromQL double-quoted string literal holding `s`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The PromQL expression for a simple query: `(function prefix, normalised metric)`.
///
/// # Errors
/// A message naming the bad parameter.
pub fn simple_query_expr(metric: &str, tags: &str, stat: &str, resolution_ms: i64) -> Result<String, String> {
    if metric.is_empty() {
        return Err("parameter \"metric\" must not be empty".into());
    }
    let mut sel = format!("{{__name__={}", quote(&metric_name(metric)));
    for tag in tags.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (k, v) = split_tag(tag);
        if k.is_empty() {
            return Err(format!("parameter \"tags\": empty key in {tag:?}"));
        }
        sel.push_str(&format!(",{}={}", label_name(k), quote(v.unwrap_or("true"))));
    }
    sel.push_str(&format!("}}[{resolution_ms}ms]"));
    let f = match stat {
        "avg" | "mean" => "avg_over_time",
        "min" => "min_over_time",
        "max" => "max_over_time",
        "sum" => "sum_over_time",
        "count" => "count_over_time",
        "last" => "last_over_time",
        p if p.starts_with('p') => {
            let q: f64 = p[1..]
                .parse()
                .ok()
                .filter(|q: &f64| (0.0..=100.0).contains(q))
                .ok_or_else(|| format!("parameter \"stat\": invalid percentile {p:?} (p0 to p100)"))?;
            return Ok(format!("quantile_over_time({}, {sel})", q / 100.0));
        }
        other => {
            return Err(format!("parameter \"stat\": unknown stat {other:?} (avg, min, max, sum, count, last or pNN)"));
        }
    };
    Ok(format!("{f}({sel})"))
}

const MAX_POINTS: i64 = 11_000;

/// `GET /api/v1/simple/query`.
pub(crate) async fn simple_query(State(s): State<AppState>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let ps = match read_params(&s, &Method::GET, &headers, q, Bytes::new()).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let bad = |m: String| api_error(StatusCode::BAD_REQUEST, "bad_data", m);
    let Some(metric) = param(&ps, "metric").map(str::to_string) else {
        return bad("missing parameter \"metric\"".into());
    };
    let time = |k: &str| param(&ps, k).map(parse_time).transpose().map_err(|e| bad(format!("parameter {k:?}: {e}")));
    let to = match time("to") {
        Ok(t) => t.unwrap_or_else(now_ms),
        Err(r) => return r,
    };
    let from = match time("from") {
        Ok(t) => t.unwrap_or(to - 3_600_000),
        Err(r) => return r,
    };
    let res = match param(&ps, "resolution").map(parse_duration_ms).transpose() {
        Ok(r) => r.unwrap_or(60_000),
        Err(e) => return bad(format!("parameter \"resolution\": {e}")),
    };
    if res <= 0 {
        return bad("parameter \"resolution\" must be positive".into());
    }
    if from > to {
        return bad("parameter \"from\" is after \"to\"".into());
    }
    if (to - from) / res + 1 > MAX_POINTS {
        return bad(format!("more than {MAX_POINTS} points per series: raise \"resolution\" or narrow from/to"));
    }
    let stat = param(&ps, "stat").unwrap_or("avg").to_string();
    let expr = match simple_query_expr(&metric, param(&ps, "tags").unwrap_or(""), &stat, res) {
        Ok(e) => e,
        Err(e) => return bad(e),
    };
    let p = s.p.clone();
    let e2 = expr.clone();
    let r = match tokio::task::spawn_blocking(move || p.query_range(&e2, from, to, res)).await {
        Ok(r) => r,
        Err(e) => return api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    };
    let r = match r {
        Ok(r) => r,
        Err(e) => return api_error(StatusCode::UNPROCESSABLE_ENTITY, "execution", format!("{expr}: {e}")),
    };
    let series: Vec<serde_json::Value> = match r.value {
        Value::Matrix(m) => m
            .into_iter()
            .map(|s| {
                let tags: serde_json::Map<String, serde_json::Value> = s
                    .labels
                    .iter()
                    .filter(|l| &*l.name != telemetry_core::METRIC_NAME)
                    .map(|l| (l.name.to_string(), serde_json::Value::from(l.value.to_string())))
                    .collect();
                let points: Vec<serde_json::Value> = s
                    .samples
                    .iter()
                    .map(|x| {
                        let t = if x.timestamp_ms % 1000 == 0 {
                            serde_json::Value::from(x.timestamp_ms / 1000)
                        } else {
                            serde_json::Value::from(x.timestamp_ms as f64 / 1000.0)
                        };
                        serde_json::json!([t, x.value])
                    })
                    .collect();
                serde_json::json!({"tags": tags, "datapoints": points})
            })
            .collect(),
        _ => Vec::new(),
    };
    api_ok(serde_json::json!({
        "metric": metric_name(&metric),
        "stat": stat,
        "from": from as f64 / 1000.0,
        "to": to as f64 / 1000.0,
        "resolution": res as f64 / 1000.0,
        "query": expr,
        "series": series,
    }))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions() {
        assert_eq!(
            simple_query_expr("api.request.duration", "env:prod, canary", "p99", 60_000).unwrap(),
            r#"quantile_over_time(0.99, {__name__="api_request_duration",env="prod",canary="true"}[60000ms])"#
        );
        assert_eq!(simple_query_expr("m", "", "sum", 1000).unwrap(), r#"sum_over_time({__name__="m"}[1000ms])"#);
        assert_eq!(
            simple_query_expr("m", "k:a\"b", "avg", 1000).unwrap(),
            r#"avg_over_time({__name__="m",k="a\"b"}[1000ms])"#
        );
        assert!(simple_query_expr("m", "", "median", 1000).unwrap_err().contains("stat"));
        assert!(simple_query_expr("m", "", "p101", 1000).unwrap_err().contains("percentile"));
        assert!(simple_query_expr("", "", "avg", 1000).unwrap_err().contains("metric"));
    }
}
