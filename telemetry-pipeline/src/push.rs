//! Pushgateway semantics on the HTTP API (cargo feature `server`), after the Prometheus
//! Pushgateway README ("API", "About timestamps", "About metric inconsistencies"):
//!
//! | request | effect | success |
//! |---|---|---|
//! | `PUT /metrics/job/<job>{/<label>/<value>}` | the group's metrics are replaced by the body's (an empty body empties the group) | `200` |
//! | `POST /metrics/job/<job>{/<label>/<value>}` | only the group's metric families named in the body are replaced | `200` |
//! | `DELETE /metrics/job/<job>{/<label>/<value>}` | the group is deleted (no body allowed); deleting an unknown group is a no-op | `202` |
//!
//! - The path's label pairs are the **grouping key**. A name suffixed `@base64` takes a value in
//!   URL-safe base64 (RFC 4648 §5, padding optional; `=` alone is the empty value); other values
//!   are percent-decoded. The job must not be empty; label names must be valid and not start
//!   with `__`.
//! - The body is the text exposition format 0.0.4 (optionally gzip); the protobuf format is
//!   refused with `415`. Samples with timestamps are refused (`400`), as the Pushgateway does;
//!   a series given twice, or a family whose type (from `# TYPE`; untyped without one) differs
//!   from the same family's in another group, is refused (`400`, and the group's `push_failure_time_seconds` is set).
//! - Every series of the group is written with the grouping labels (which overwrite labels of
//!   the same name in the body; an empty value removes the label), at the push time, together
//!   with `push_time_seconds` and `push_failure_time_seconds` (Unix seconds of the last
//!   successful and failed push; 0 = never) labelled with the grouping key (pushed metrics of
//!   those names are ignored, as the Pushgateway overrides them). A series that a
//!   `PUT`/`POST` removes from the group, and every series of a deleted group, gets a stale
//!   marker. The response is sent once the samples are durable (`429`/`503` as the other
//!   write endpoints when the pipeline cannot take them).
//! - As a Prometheus scraping a Pushgateway sees pushed groups at every scrape, the groups are
//!   written again every `push.refresh_interval_ms` (0 = only when pushed), so that they stay
//!   current for instant queries. Groups live in memory: they are lost on restart (what was
//!   written stays stored).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use telemetry_core::{Labels, LabelsBuilder, METRIC_NAME, MetricType, STALE_NAN};

use crate::batch::{Batch, BatchBuilder};
use crate::pipeline::Pipeline;
use crate::server::{AppState, authorized, body_bytes, submit, text, unauthorized};

/// The pushed groups. One per router; pushes are applied one at a time, in arrival order.
#[derive(Debug, Default)]
pub struct PushRegistry {
    groups: tokio::sync::Mutex<BTreeMap<Labels, Group>>,
    last_ts: AtomicI64,
    refresher: AtomicBool,
}

#[derive(Debug, Default, Clone)]
struct Group {
    /// The grouping key's labels (empty values left out).
    key: Vec<(String, String)>,
    /// Family name → its type and series.
    families: BTreeMap<String, Family>,
    push_time_s: f64,
    failure_time_s: f64,
}

#[derive(Debug, Default, Clone)]
struct Family {
    metric_type: MetricType,
    series: Vec<(Labels, f64)>,
}

impl Group {
    fn series(&self) -> impl Iterator<Item = &(Labels, f64)> {
        self.families.values().flat_map(|f| f.series.iter())
    }

    fn own(&self, name: &str) -> Option<Labels> {
        let mut b = LabelsBuilder::new();
        for (k, v) in &self.key {
            b.set(k, v);
        }
        b.set(METRIC_NAME, name);
        b.build().ok()
    }

    /// Every series plus `push_time_seconds` and `push_failure_time_seconds`, at `ts`.
    fn write(&self, b: &mut BatchBuilder, ts: i64) {
        for (l, v) in self.series() {
            b.push(l, ts, *v);
        }
        if let Some(l) = self.own("push_time_seconds") {
            b.push(&l, ts, self.push_time_s);
        }
        if let Some(l) = self.own("push_failure_time_seconds") {
            b.push(&l, ts, self.failure_time_s);
        }
    }
}

impl PushRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of groups.
    pub async fn group_count(&self) -> usize {
        self.groups.lock().await.len()
    }

    /// A timestamp after every one this registry wrote (so that two writes never share one).
    fn next_ts(&self) -> i64 {
        let now = now_ms();
        let prev = self.last_ts.fetch_max(now, Ordering::AcqRel);
        if prev >= now { self.last_ts.fetch_add(1, Ordering::AcqRel) + 1 } else { now }
    }

    fn start_refresher(self: &Arc<Self>, p: &Arc<Pipeline>) {
        let ms = p.config().push.refresh_interval_ms;
        if ms == 0 || self.refresher.swap(true, Ordering::AcqRel) {
            return;
        }
        let (reg, p) = (Arc::downgrade(self), Arc::downgrade(p));
        tokio::spawn(refresh(reg, p, Duration::from_millis(ms)));
    }
}

async fn refresh(reg: Weak<PushRegistry>, p: Weak<Pipeline>, period: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (Some(reg), Some(p)) = (reg.upgrade(), p.upgrade()) else { return };
        if p.is_closed() {
            return;
        }
        let batch = {
            let groups = reg.groups.lock().await;
            let ts = reg.next_ts();
            let mut b = BatchBuilder::new();
            for g in groups.values() {
                g.write(&mut b, ts);
            }
            b.finish()
        };
        if batch.is_empty() {
            continue;
        }
        // A full queue skips this refresh; the next one writes the same values.
        if let Err(crate::pipeline::IngestError::Closed) = p.try_submit(batch, Box::new(|_| {})) {
            return;
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(v) = hex else { return Err(format!("bad percent-encoding in {s:?}")) };
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// The grouping key of a `/metrics/job/...` path, in path order.
///
/// # Errors
/// A message naming the bad segment.
pub fn parse_grouping_key(path: &str) -> Result<Vec<(String, String)>, String> {
    let rest = path.strip_prefix("/metrics/").ok_or_else(|| format!("path {path:?} is not /metrics/job/<job>..."))?;
    let segs: Vec<&str> = rest.split('/').collect();
    if !segs.len().is_multiple_of(2) {
        return Err(format!("path {path:?}: label names and values must come in pairs"));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in segs.chunks(2) {
        let (raw_name, raw_value) = (pair[0], pair[1]);
        let name = percent_decode(raw_name)?;
        let (name, b64) = match name.strip_suffix("@base64") {
            Some(n) => (n.to_string(), true),
            None => (name, false),
        };
        let value = if b64 {
            let trimmed = raw_value.trim_end_matches('=');
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(trimmed)
                .map_err(|e| format!("label {name:?}: invalid base64 value {raw_value:?}: {e}"))?;
            String::from_utf8(bytes).map_err(|_| format!("label {name:?}: base64 value is not UTF-8"))?
        } else {
            if raw_value.is_empty() {
                return Err(format!("label {name:?}: empty value (use {name}@base64/= for an empty value)"));
            }
            percent_decode(raw_value)?
        };
        if out.is_empty() && name != "job" {
            return Err(format!("path {path:?}: the first label must be job"));
        }
        if name == "job" && value.is_empty() {
            return Err("the job name must not be empty".into());
        }
        if !telemetry_core::labels::is_valid_label_name(&name) || name.starts_with("__") {
            return Err(format!("invalid label name {name:?} in the grouping key"));
        }
        if out.iter().any(|(n, _)| *n == name) {
            return Err(format!("label {name:?} appears twice in the grouping key"));
        }
        out.push((name, value));
    }
    if out.is_empty() {
        return Err(format!("path {path:?}: no job"));
    }
    Ok(out)
}

/// The family a sample name belongs to, given the families the body declared.
fn family_of<'a>(name: &'a str, declared: &BTreeMap<String, MetricType>) -> &'a str {
    if declared.contains_key(name) {
        return name;
    }
    for suffix in ["_bucket", "_sum", "_count", "_total", "_created", "_info", "_gcount", "_gsum"] {
        if let Some(base) = name.strip_suffix(suffix)
            && declared.contains_key(base)
        {
            return base;
        }
    }
    name
}

fn bad(msg: impl Into<String>) -> Response {
    text(StatusCode::BAD_REQUEST, msg)
}

/// `PUT`, `POST` and `DELETE` on `/metrics/job/...`.
pub(crate) async fn handle(
    State(s): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers, &s.p.config().server.write_token) {
        return unauthorized();
    }
    let key = match parse_grouping_key(uri.path()) {
        Ok(k) => k,
        Err(e) => return bad(e),
    };
    let key_pairs: Vec<(String, String)> = key.iter().filter(|(_, v)| !v.is_empty()).cloned().collect();
    let Ok(key_labels) = Labels::from_pairs(key_pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))) else {
        return bad("invalid grouping key");
    };
    let reg = s.push.clone();
    if method == Method::DELETE {
        if !body.is_empty() {
            return bad("a DELETE request must not have a body");
        }
        let mut groups = reg.groups.lock().await;
        let Some(g) = groups.get(&key_labels) else { return StatusCode::ACCEPTED.into_response() };
        let ts = reg.next_ts();
        let mut b = BatchBuilder::new();
        for (l, _) in g.series() {
            b.push(l, ts, STALE_NAN);
        }
        for n in ["push_time_seconds", "push_failure_time_seconds"] {
            if let Some(l) = g.own(n) {
                b.push(&l, ts, STALE_NAN);
            }
        }
        let r = submit(&s.p, b.finish(), StatusCode::ACCEPTED).await;
        if r.status().is_success() {
            groups.remove(&key_labels);
        }
        return r;
    }
    let replace_all = method == Method::PUT;
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct.starts_with("application/vnd.google.protobuf") {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the protobuf push format is not supported; push the text format 0.0.4",
        );
    }
    let body = match body_bytes(&headers, body, s.p.config().server.max_body_bytes) {
        Ok(b) => b,
        Err(r) => return r,
    };
    // The Pushgateway reads the text format 0.0.4 whatever the Content-Type says.
    let (samples, md) = match crate::scrape::decode_exposition(&body, "text/plain") {
        Ok(x) => x,
        Err(e) => return bad(e),
    };
    let declared: BTreeMap<String, MetricType> = md.into_iter().map(|(f, m)| (f, m.metric_type)).collect();
    let mut pushed: BTreeMap<String, Family> = BTreeMap::new();
    let mut seen = HashSet::new();
    for (i, smp) in samples.into_iter().enumerate() {
        let name = smp.labels.metric_name().unwrap_or("").to_string();
        if smp.timestamp_ms.is_some() {
            return bad(format!("sample {} ({name}) has a timestamp; pushed metrics must not have timestamps", i + 1));
        }
        let mut lb = smp.labels.to_builder();
        for (k, v) in &key {
            if v.is_empty() {
                lb.delete(k);
            } else {
                lb.set(k, v);
            }
        }
        let labels = match lb.build() {
            Ok(l) => l,
            Err(e) => return bad(format!("sample {} ({name}): {e}", i + 1)),
        };
        if !seen.insert(labels.clone()) {
            return bad(format!("sample {} ({labels}) is pushed twice", i + 1));
        }
        if name == "push_time_seconds" || name == "push_failure_time_seconds" {
            // The Pushgateway's own per-group metrics override pushed ones of that name.
            continue;
        }
        let fam = family_of(&name, &declared).to_string();
        let f = pushed.entry(fam.clone()).or_default();
        f.metric_type = declared.get(&fam).copied().unwrap_or_default();
        f.series.push((labels, smp.value));
    }
    let mut groups = reg.groups.lock().await;
    // Consistency: one type per family across groups.
    for (fam, f) in &pushed {
        let clash = groups.iter().find_map(|(k, g)| {
            (*k != key_labels)
                .then(|| g.families.get(fam))
                .flatten()
                .filter(|o| o.metric_type != f.metric_type)
                .map(|o| o.metric_type)
        });
        if let Some(other) = clash {
            if let Some(g) = groups.get_mut(&key_labels) {
                g.failure_time_s = now_ms() as f64 / 1000.0;
            }
            return bad(format!(
                "metric family {fam} pushed as {} but another group has it as {}",
                f.metric_type.as_str(),
                other.as_str()
            ));
        }
    }
    let old = groups.get(&key_labels).cloned().unwrap_or_else(|| Group { key: key_pairs.clone(), ..Group::default() });
    let mut new = old.clone();
    if replace_all {
        new.families = pushed;
    } else {
        new.families.extend(pushed);
    }
    let ts = reg.next_ts();
    new.push_time_s = ts as f64 / 1000.0;
    let mut b = BatchBuilder::new();
    new.write(&mut b, ts);
    let now: HashSet<&Labels> = new.series().map(|(l, _)| l).collect();
    for (l, _) in old.series() {
        if !now.contains(l) {
            b.push(l, ts, STALE_NAN);
        }
    }
    let batch: Batch = b.finish();
    let r = submit(&s.p, batch, StatusCode::OK).await;
    if r.status().is_success() {
        groups.insert(key_labels, new);
        drop(groups);
        reg.start_refresher(&s.p);
    } else if let Some(g) = groups.get_mut(&key_labels) {
        g.failure_time_s = now_ms() as f64 / 1000.0;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_keys() {
        let k = parse_grouping_key("/metrics/job/some_job/instance/some_instance").unwrap();
        assert_eq!(k, vec![("job".into(), "some_job".into()), ("instance".into(), "some_instance".into())]);
        let k = parse_grouping_key("/metrics/job/directory_cleaner/path@base64/L3Zhci90bXA").unwrap();
        assert_eq!(k[1], ("path".into(), "/var/tmp".into()));
        let k = parse_grouping_key("/metrics/job/example/first_label@base64/=/second_label/foobar").unwrap();
        assert_eq!(k[1], ("first_label".into(), String::new()));
        let k = parse_grouping_key("/metrics/job/titan/name@base64/zqDPgc6_zrzOt864zrXPjc-C").unwrap();
        assert_eq!(k[1].1, "Προμηθεύς");
        let k = parse_grouping_key("/metrics/job/titan/name/%CE%A0%CF%81%CE%BF%CE%BC%CE%B7%CE%B8%CE%B5%CF%8D%CF%82")
            .unwrap();
        assert_eq!(k[1].1, "Προμηθεύς");
        let k = parse_grouping_key("/metrics/job@base64/L3g").unwrap();
        assert_eq!(k[0], ("job".into(), "/x".into()));
        assert!(parse_grouping_key("/metrics/job/a/b").unwrap_err().contains("pairs"));
        assert!(parse_grouping_key("/metrics/job/").unwrap_err().contains("empty"));
        assert!(parse_grouping_key("/metrics/instance/a").unwrap_err().contains("job"));
        assert!(parse_grouping_key("/metrics/job/a/__x/1").unwrap_err().contains("__x"));
        assert!(parse_grouping_key("/metrics/job/a/x/1/x/2").unwrap_err().contains("twice"));
        assert!(parse_grouping_key("/metrics/job/a/x@base64/!!").unwrap_err().contains("base64"));
    }
}
