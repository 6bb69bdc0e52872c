//! The Prometheus HTTP API's response shapes (`/api/v1/query`, `/api/v1/query_range`), with
//! serde. Values are strings (`"1.5"`, `"NaN"`, `"+Inf"`, `"-Inf"`), timestamps are seconds
//! since the Unix epoch as JSON numbers with millisecond precision, labels are a JSON object.
//!
//! ```
//! use telemetry_query::api::{ApiResponse, QueryData};
//! use telemetry_query::Value;
//!
//! let v = Value::Scalar { timestamp_ms: 1_500, value: f64::INFINITY };
//! let body = ApiResponse::success(QueryData::from(&v), vec![], vec![]);
//! assert_eq!(
//!     serde_json::to_string(&body).unwrap(),
//!     r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"+Inf"]}}"#
//! );
//! ```

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use telemetry_core::Labels;

use crate::error::{ApiErrorType, QueryError};
use crate::value::{MatrixSeries, Value, VectorSample};

/// Formats a sample value as Prometheus does (`strconv.FormatFloat(v, 'f', -1, 64)`, with
/// `NaN`, `+Inf`, `-Inf`).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Parses a value string written by [`format_value`] (or by Prometheus).
///
/// # Errors
/// A message naming the string when it is not a number.
pub fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s.parse().map_err(|_| format!("invalid sample value {s:?}")),
    }
}

/// Milliseconds written as seconds the way Prometheus writes them: `15`, `1000.123`.
struct Seconds(i64);

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 1000 == 0 { s.serialize_i64(self.0 / 1000) } else { s.serialize_f64(self.0 as f64 / 1000.0) }
    }
}

/// One `[timestamp_seconds, "value"]` pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApiPoint {
    /// Milliseconds since the Unix epoch (written as seconds).
    pub timestamp_ms: i64,
    /// The value (written as a string).
    pub value: f64,
}

impl Serialize for ApiPoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&Seconds(self.timestamp_ms))?;
        t.serialize_element(&format_value(self.value))?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for ApiPoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (ts, v): (f64, String) = Deserialize::deserialize(d)?;
        Ok(ApiPoint { timestamp_ms: (ts * 1000.0).round() as i64, value: parse_value(&v).map_err(D::Error::custom)? })
    }
}

/// An element of a `vector` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiVectorSample {
    /// The series' labels.
    pub metric: Labels,
    /// Its value at the evaluation time.
    pub value: ApiPoint,
}

/// A series of a `matrix` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiMatrixSeries {
    /// The series' labels.
    pub metric: Labels,
    /// Its points in time order.
    pub values: Vec<ApiPoint>,
}

/// A `string` result: `[timestamp_seconds, "text"]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiString {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The string.
    pub value: String,
}

impl Serialize for ApiString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (Seconds(self.timestamp_ms), &self.value).serialize(s)
    }
}

impl<'de> Deserialize<'de> for ApiString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (ts, value): (f64, String) = Deserialize::deserialize(d)?;
        Ok(ApiString { timestamp_ms: (ts * 1000.0).round() as i64, value })
    }
}

/// The `data` of a query response, tagged by `resultType`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub enum QueryData {
    /// An instant vector.
    Vector(Vec<ApiVectorSample>),
    /// A range vector.
    Matrix(Vec<ApiMatrixSeries>),
    /// A scalar.
    Scalar(ApiPoint),
    /// A string.
    String(ApiString),
}

impl From<&Value> for QueryData {
    fn from(v: &Value) -> Self {
        match v {
            Value::Scalar { timestamp_ms, value } => {
                QueryData::Scalar(ApiPoint { timestamp_ms: *timestamp_ms, value: *value })
            }
            Value::String { timestamp_ms, value } => {
                QueryData::String(ApiString { timestamp_ms: *timestamp_ms, value: value.clone() })
            }
            Value::Vector(v) => QueryData::Vector(
                v.iter()
                    .map(|s: &VectorSample| ApiVectorSample {
                        metric: s.labels.clone(),
                        value: ApiPoint { timestamp_ms: s.timestamp_ms, value: s.value },
                    })
                    .collect(),
            ),
            Value::Matrix(m) => QueryData::Matrix(
                m.iter()
                    .map(|s: &MatrixSeries| ApiMatrixSeries {
                        metric: s.labels.clone(),
                        values: s
                            .samples
                            .iter()
                            .map(|p| ApiPoint { timestamp_ms: p.timestamp_ms, value: p.value })
                            .collect(),
                    })
                    .collect(),
            ),
        }
    }
}

/// The response envelope: `{"status":"success","data":...}` or
/// `{"status":"error","errorType":...,"error":...}`, with optional `warnings` and `infos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum ApiResponse {
    /// A successful query.
    Success {
        /// The result.
        data: QueryData,
        /// Warning annotations.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
        /// Info annotations.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        infos: Vec<String>,
    },
    /// A failed query.
    Error {
        /// The error class.
        #[serde(rename = "errorType")]
        error_type: ApiErrorType,
        /// The message.
        error: String,
        /// Warning annotations gathered before the failure.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
}

impl ApiResponse {
    /// A success envelope.
    pub fn success(data: QueryData, warnings: Vec<String>, infos: Vec<String>) -> Self {
        ApiResponse::Success { data, warnings, infos }
    }

    /// The envelope for a query's outcome.
    pub fn from_result(r: &Result<crate::QueryResult, QueryError>) -> Self {
        match r {
            Ok(q) => ApiResponse::success(QueryData::from(&q.value), q.warnings.clone(), q.infos.clone()),
            Err(e) => ApiResponse::from_error(e),
        }
    }

    /// An error envelope with the error's API type.
    pub fn from_error(e: &QueryError) -> Self {
        ApiResponse::Error { error_type: e.error_type(), error: e.to_string(), warnings: Vec::new() }
    }

    /// The HTTP status code Prometheus would answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            ApiResponse::Success { .. } => 200,
            ApiResponse::Error { error_type, .. } => error_type.http_status(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_and_error_shapes() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "a")]).unwrap();
        let v = Value::Vector(vec![VectorSample { labels: l, timestamp_ms: 1_000_123, value: f64::NAN }]);
        let body = ApiResponse::success(QueryData::from(&v), vec!["w".into()], vec![]);
        let s = serde_json::to_string(&body).unwrap();
        assert_eq!(
            s,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1000.123,"NaN"]}]},"warnings":["w"]}"#
        );
        let back: ApiResponse = serde_json::from_str(&s).unwrap();
        let ApiResponse::Success { data: QueryData::Vector(v), .. } = back else { panic!("shape") };
        assert!(v[0].value.value.is_nan());
        let e = ApiResponse::from_error(&QueryError::Parse("x".into()));
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"status":"error","errorType":"bad_data","error":"parse error: x"}"#
        );
        assert_eq!(e.http_status(), 400);
    }

    #[test]
    fn matrix_and_string_shapes() {
        let m = Value::Matrix(vec![MatrixSeries {
            labels: Labels::empty(),
            samples: vec![telemetry_core::Sample::new(0, 1.0), telemetry_core::Sample::new(15_000, f64::NEG_INFINITY)],
        }]);
        let s = serde_json::to_string(&QueryData::from(&m)).unwrap();
        assert_eq!(s, r#"{"resultType":"matrix","result":[{"metric":{},"values":[[0,"1"],[15,"-Inf"]]}]}"#);
        let st = Value::String { timestamp_ms: 2_000, value: "hi".into() };
        assert_eq!(
            serde_json::to_string(&QueryData::from(&st)).unwrap(),
            r#"{"resultType":"string","result":[2,"hi"]}"#
        );
    }
}
