//! Mapping of StatsD/Datadog-style names and tags to Prometheus names and labels.
//!
//! The StatsD, JSON series and InfluxDB decoders use this mapping when they turn an entry into
//! [`Labels`]. The rules (deterministic: the same input gives the same labels whatever the tag
//! order):
//!
//! 1. **Metric names.** Every character outside `[a-zA-Z0-9_:]` becomes one `_` (a multi-byte
//!    UTF-8 character is one character), so `api.request.duration` → `api_request_duration`
//!    and `http-requests/s` → `http_requests_s`. A name that starts with a digit gets a `_`
//!    prefix (`5xx.count` → `_5xx_count`). An empty name becomes `_`.
//! 2. **Label names** follow the same rule with `[a-zA-Z0-9_]` (a `:` becomes `_` too). Names
//!    that start with `__` are reserved by Prometheus (`__name__` holds the metric name), so a
//!    normalised key that starts with `__` gets the prefix `tag` (`__name__` → `tag__name__`).
//! 3. **Tags.** `k:v` (split at the first `:`) → label `k` = `v`; the value is kept as is (any
//!    UTF-8). A tag without `:` → label `k` = `"true"`: it is kept, not dropped, so that
//!    `#canary` still tells series apart. A tag `k:` has an empty value and so no label (in
//!    Prometheus an empty value and an absent label are the same).
//! 4. **Collisions.** When several tags map to the same label name (`env:a` and `env:b`, or
//!    `a.b:x` and `a_b:y`), the label's value is their distinct values sorted bytewise and
//!    joined with `,` (`env="a,b"`). Nothing is dropped and the result does not depend on the
//!    order of the tags.
//!
//! ```
//! use telemetry_core::format::normalize::{metric_name, series_labels};
//!
//! assert_eq!(metric_name("api.request.duration"), "api_request_duration");
//! let l = series_labels("api.request.duration", ["env:production", "service:checkout", "canary"])?;
//! assert_eq!(l.to_string(), r#"api_request_duration{canary="true",env="production",service="checkout"}"#);
//! # Ok::<(), telemetry_core::LabelError>(())
//! ```

use std::borrow::Cow;

use smallvec::SmallVec;

use crate::labels::{LabelError, LabelLimits, Labels, LabelsBuilder, METRIC_NAME};

fn normalize(s: &str, allow_colon: bool) -> Cow<'_, str> {
    let b = s.as_bytes();
    let ok = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || (allow_colon && c == b':');
    let starts_with_digit = b.first().is_some_and(|c| c.is_ascii_digit());
    if !b.is_empty() && !starts_with_digit && b.iter().all(|&c| ok(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 1);
    if starts_with_digit || s.is_empty() {
        out.push('_');
    }
    for ch in s.chars() {
        if ch.is_ascii() && ok(ch as u8) {
            out.push(ch);
        } else {
            out.push('_');
        }
    }
    Cow::Owned(out)
}

/// A Prometheus metric name for `name` (rule 1 of the [module docs](self)); borrows when
/// `name` is already valid.
pub fn metric_name(name: &str) -> Cow<'_, str> {
    normalize(name, true)
}

/// A Prometheus label name for a tag key (rule 2 of the [module docs](self)).
pub fn label_name(key: &str) -> Cow<'_, str> {
    let n = normalize(key, false);
    if n.starts_with("__") { Cow::Owned(format!("tag{n}")) } else { n }
}

/// Splits a `k:v` tag at the first `:`; `None` as value when there is no `:`.
pub fn split_tag(tag: &str) -> (&str, Option<&str>) {
    match tag.split_once(':') {
        Some((k, v)) => (k, Some(v)),
        None => (tag, None),
    }
}

/// Labels for a dotted metric name and `k:v` tags (the [module docs](self) give the rules),
/// with the default [`LabelLimits`].
///
/// # Errors
/// [`LabelError`] when a limit is exceeded (names are always valid after normalisation).
pub fn series_labels<'t>(name: &str, tags: impl IntoIterator<Item = &'t str>) -> Result<Labels, LabelError> {
    series_labels_kv(name, tags.into_iter().map(split_tag), LabelLimits::default())
}

/// Labels for a metric name and `(key, value)` tags; a `None` value means a bare tag (value
/// `"true"`). Applies the rules of the [module docs](self).
///
/// # Errors
/// [`LabelError`] when a limit in `limits` is exceeded.
pub fn series_labels_kv<'t>(
    name: &str,
    tags: impl IntoIterator<Item = (&'t str, Option<&'t str>)>,
    limits: LabelLimits,
) -> Result<Labels, LabelError> {
    let mut pairs: SmallVec<[(Cow<'t, str>, &'t str); 8]> = SmallVec::new();
    for (k, v) in tags {
        let v = v.unwrap_or("true");
        if v.is_empty() {
            continue;
        }
        pairs.push((label_name(k), v));
    }
    pairs.sort_unstable();
    pairs.dedup();
    let mut b = LabelsBuilder::new().with_limits(limits);
    b.push(METRIC_NAME, &metric_name(name));
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i + 1;
        while j < pairs.len() && pairs[j].0 == pairs[i].0 {
            j += 1;
        }
        if j == i + 1 {
            b.push(&pairs[i].0, pairs[i].1);
        } else {
            let joined: Vec<&str> = pairs[i..j].iter().map(|p| p.1).collect();
            b.push(&pairs[i].0, &joined.join(","));
        }
        i = j;
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(metric_name("api.request.duration"), "api_request_duration");
        assert_eq!(metric_name("5xx.count"), "_5xx_count");
        assert_eq!(metric_name(""), "_");
        assert_eq!(metric_name("a:b"), "a:b");
        assert_eq!(metric_name("tempé"), "temp_");
        assert_eq!(label_name("a:b"), "a_b");
        assert_eq!(label_name("__name__"), "tag__name__");
        assert_eq!(label_name("host"), "host");
        assert!(matches!(metric_name("ok_name"), Cow::Borrowed(_)));
    }

    #[test]
    fn tags_and_collisions() {
        let a = series_labels("m", ["env:b", "env:a", "x.y:1", "x_y:2", "flag", "empty:", "url:http://x"]).unwrap();
        let b = series_labels("m", ["x_y:2", "url:http://x", "flag", "env:a", "x.y:1", "env:b", "env:a"]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), r#"m{env="a,b",flag="true",url="http://x",x_y="1,2"}"#);
        let c = series_labels("m", ["__name__:evil"]).unwrap();
        assert_eq!(c.metric_name(), Some("m"));
        assert_eq!(c.get("tag__name__"), Some("evil"));
    }
}
