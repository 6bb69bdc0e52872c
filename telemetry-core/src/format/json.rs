//! JSON series, as the Datadog-style submission API (`POST /api/v1/series`) sends them.
//!
//! ```json
//! {"series":[{"metric":"http.request.duration","type":"gauge","points":[[1681200000,45.2]],
//!             "tags":["service:api-gateway","env:production"]}]}
//! ```
//!
//! Source: Datadog API reference, "Metrics → Submit metrics" (v1 series; `points` as
//! `[timestamp, value]` pairs). Accepted as well: points written as objects
//! `{"timestamp": <s>, "value": <v>}` (the v2 shape) and `type` given as the v2 integers
//! (0 unspecified, 1 count, 2 rate, 3 gauge).
//!
//! Units: point timestamps are Unix **seconds**, integer or fractional; they are converted to
//! milliseconds as `round(seconds × 1000)` (an `f64` carries sub-microsecond precision at
//! today's epoch, so the rounding is exact for millisecond data). Values are JSON numbers;
//! JSON cannot write NaN or infinities, so the encoder refuses them.
//!
//! Fields other than `metric`, `type`, `points`, `tags`, `host` and `interval` (e.g. `device`,
//! `source_type_name`) are ignored. The metric name and tags map to labels through
//! [`normalize`]; `host` becomes the label `host`.
//!
//! # Errors
//! [`JsonError`] with serde_json's 1-based line and column (a column counts bytes) and its
//! message: syntax, a missing field, a point that is not `[seconds, value]`, a timestamp out of
//! range. [`JsonEncodeError`] for values JSON cannot hold.
//!
//! ```
//! use telemetry_core::format::json;
//!
//! let body = br#"{"series":[{"metric":"http.request.duration","type":"gauge","points":[[1681200000,45.2]],"tags":["service:api-gateway","env:production"]}]}"#;
//! let payload = json::decode(body)?;
//! let s = &payload.series[0];
//! assert_eq!(s.points[0].timestamp_ms, 1_681_200_000_000);
//! assert_eq!(s.to_labels()?.to_string(), r#"http_request_duration{env="production",service="api-gateway"}"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use super::normalize::{self, split_tag};
use crate::labels::{LabelError, LabelLimits, Labels};
use crate::metric::MetricType;

/// A request body: `{"series": [...]}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SeriesPayload<'a> {
    /// The series.
    #[serde(borrow)]
    pub series: Vec<JsonSeries<'a>>,
}

/// One series with its points.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct JsonSeries<'a> {
    /// The metric name as sent (dotted).
    #[serde(borrow)]
    pub metric: Cow<'a, str>,
    /// The submission type, when sent.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<JsonMetricKind>,
    /// The points, in the order sent.
    pub points: Vec<JsonPoint>,
    /// Tags, `key:value` or `key`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Cow<'a, str>>,
    /// The host the series comes from.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Cow<'a, str>>,
    /// Interval in seconds for `count` and `rate` series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<f64>,
}

impl JsonSeries<'_> {
    /// The series labels through [`normalize`], `host` as label `host`, with
    /// the default [`LabelLimits`].
    ///
    /// # Errors
    /// [`LabelError`] when a limit is exceeded.
    pub fn to_labels(&self) -> Result<Labels, LabelError> {
        let host = self.host.as_deref().map(|h| ("host", Some(h)));
        normalize::series_labels_kv(
            &self.metric,
            self.tags.iter().map(|t| split_tag(t)).chain(host),
            LabelLimits::default(),
        )
    }

    /// The Prometheus type the submission type maps to: gauge and rate → gauge, count →
    /// counter (note: a Datadog count is the delta over `interval`, not a running total),
    /// unspecified or absent → unknown.
    pub fn metric_type(&self) -> MetricType {
        match self.kind {
            Some(JsonMetricKind::Gauge | JsonMetricKind::Rate) => MetricType::Gauge,
            Some(JsonMetricKind::Count) => MetricType::Counter,
            Some(JsonMetricKind::Unspecified) | None => MetricType::Unknown,
        }
    }
}

/// The submission type: `"gauge"`, `"count"`, `"rate"` (or the v2 integers 3, 1, 2; 0 is
/// unspecified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonMetricKind {
    /// `"gauge"` / 3.
    Gauge,
    /// `"count"` / 1.
    Count,
    /// `"rate"` / 2.
    Rate,
    /// `"unspecified"` / 0.
    Unspecified,
}

impl JsonMetricKind {
    /// The v1 spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JsonMetricKind::Gauge => "gauge",
            JsonMetricKind::Count => "count",
            JsonMetricKind::Rate => "rate",
            JsonMetricKind::Unspecified => "unspecified",
        }
    }
}

impl Serialize for JsonMetricKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JsonMetricKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = JsonMetricKind;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"gauge\", \"count\", \"rate\", \"unspecified\" or 0..=3")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(match v {
                    "gauge" => JsonMetricKind::Gauge,
                    "count" => JsonMetricKind::Count,
                    "rate" => JsonMetricKind::Rate,
                    "unspecified" => JsonMetricKind::Unspecified,
                    _ => return Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(match v {
                    0 => JsonMetricKind::Unspecified,
                    1 => JsonMetricKind::Count,
                    2 => JsonMetricKind::Rate,
                    3 => JsonMetricKind::Gauge,
                    _ => return Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
                })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// One point: timestamp in milliseconds since the Unix epoch (sent as seconds) and value.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct JsonPoint {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The value (finite: JSON has no NaN or infinities).
    pub value: f64,
}

fn seconds_to_ms<E: de::Error>(secs: f64) -> Result<i64, E> {
    let ms = (secs * 1000.0).round();
    if ms.is_finite() && (-9.2e18..9.2e18).contains(&ms) {
        Ok(ms as i64)
    } else {
        Err(E::custom(format_args!("timestamp {secs} s is out of range")))
    }
}

impl<'de> Deserialize<'de> for JsonPoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonPoint;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a point [seconds, value] or {\"timestamp\": seconds, \"value\": value}")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let ts: f64 = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let value: f64 = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(JsonPoint { timestamp_ms: seconds_to_ms(ts)?, value })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut ts = None;
                let mut value = None;
                while let Some(k) = map.next_key::<Cow<'de, str>>()? {
                    match &*k {
                        "timestamp" => ts = Some(map.next_value::<f64>()?),
                        "value" => value = Some(map.next_value::<f64>()?),
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                let ts = ts.ok_or_else(|| de::Error::missing_field("timestamp"))?;
                let value = value.ok_or_else(|| de::Error::missing_field("value"))?;
                Ok(JsonPoint { timestamp_ms: seconds_to_ms(ts)?, value })
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for JsonPoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !self.value.is_finite() {
            return Err(serde::ser::Error::custom(format_args!("value {} cannot be written in JSON", self.value)));
        }
        let mut t = s.serialize_tuple(2)?;
        if self.timestamp_ms % 1000 == 0 {
            t.serialize_element(&(self.timestamp_ms / 1000))?;
        } else {
            t.serialize_element(&(self.timestamp_ms as f64 / 1000.0))?;
        }
        t.serialize_element(&self.value)?;
        t.end()
    }
}

/// A decoding error with its position.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}, column {column}: {message}")]
pub struct JsonError {
    /// 1-based line (0 when the input ended early).
    pub line: usize,
    /// 1-based byte column (0 when the input ended early).
    pub column: usize,
    /// What is wrong, as serde_json words it.
    pub message: String,
}

/// An encoding error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("cannot encode series as JSON: {0}")]
pub struct JsonEncodeError(pub String);

/// Decodes a request body. Strings without escapes are borrowed from `input`.
///
/// # Errors
/// [`JsonError`] naming line and column.
pub fn decode(input: &[u8]) -> Result<SeriesPayload<'_>, JsonError> {
    serde_json::from_slice(input).map_err(|e| {
        let (line, column) = (e.line(), e.column());
        // serde_json appends " at line L column C"; the position lives in the fields.
        let mut message = e.to_string();
        if let Some(i) = message.rfind(" at line ") {
            message.truncate(i);
        }
        JsonError { line, column, message }
    })
}

/// Appends the JSON body for `payload` to `out`.
///
/// # Errors
/// [`JsonEncodeError`] for a NaN or infinite value; `out` is left as it was.
pub fn encode(payload: &SeriesPayload<'_>, out: &mut Vec<u8>) -> Result<(), JsonEncodeError> {
    let mark = out.len();
    serde_json::to_writer(&mut *out, payload).map_err(|e| {
        out.truncate(mark);
        JsonEncodeError(e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_and_shapes() {
        let p = decode(
            br#"{"series":[{"metric":"m","type":3,"points":[{"timestamp":1681200000.5,"value":1}],"host":"h"}]}"#,
        )
        .unwrap();
        assert_eq!(p.series[0].points[0], JsonPoint { timestamp_ms: 1_681_200_000_500, value: 1.0 });
        assert_eq!(p.series[0].kind, Some(JsonMetricKind::Gauge));
        assert_eq!(p.series[0].to_labels().unwrap().to_string(), r#"m{host="h"}"#);
    }

    #[test]
    fn errors_have_positions() {
        let e = decode(b"{\"series\":[\n{\"metric\":\"m\",\"points\":[[1]]}]}").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("invalid length"), "{e}");
        let e = decode(b"{\"series\":[{\"metric\":\"m\",\"type\":\"gauges\",\"points\":[]}]}").unwrap_err();
        assert_eq!((e.line, e.column), (1, 40));
        let mut out = Vec::new();
        let bad = SeriesPayload {
            series: vec![JsonSeries {
                metric: "m".into(),
                points: vec![JsonPoint { timestamp_ms: 0, value: f64::NAN }],
                ..Default::default()
            }],
        };
        assert!(encode(&bad, &mut out).is_err());
        assert!(out.is_empty());
    }
}
