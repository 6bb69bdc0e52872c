//! Metric types and metadata, as the OpenMetrics 1.0 specification names them
//! ("Metric Types" section).

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    /// A monotonically increasing count that resets to zero on restart.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Cumulative buckets (`_bucket` with `le`), `_sum` and `_count`.
    Histogram,
    /// A histogram whose buckets go up and down (OpenMetrics `gaugehistogram`).
    GaugeHistogram,
    /// Client-side quantiles (`quantile` label), `_sum` and `_count`.
    Summary,
    /// Constant labels exposed as a series of value 1 (`_info`).
    Info,
    /// A set of boolean states, one series per state.
    StateSet,
    /// No type given (Prometheus text `untyped`, OpenMetrics `unknown`).
    #[default]
    Unknown,
}

impl MetricType {
    /// The OpenMetrics spelling: `counter`, `gauge`, `histogram`, `gaugehistogram`, `summary`,
    /// `info`, `stateset`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A metric type name that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown metric type {0:?}")]
pub struct UnknownMetricType(pub String);

impl FromStr for MetricType {
    type Err = UnknownMetricType;
    /// Accepts the OpenMetrics names and the Prometheus text format's `untyped`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "gaugehistogram" => MetricType::GaugeHistogram,
            "summary" => MetricType::Summary,
            "info" => MetricType::Info,
            "stateset" => MetricType::StateSet,
            "unknown" | "untyped" => MetricType::Unknown,
            other => return Err(UnknownMetricType(other.to_string())),
        })
    }
}

/// What a metric family says about itself: `# TYPE`, `# HELP` and `# UNIT`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Metadata {
    /// The family's type.
    #[serde(rename = "type")]
    pub metric_type: MetricType,
    /// Help text, unescaped; empty when none was given.
    pub help: String,
    /// Unit (OpenMetrics `# UNIT`, e.g. `seconds`); empty when none was given.
    pub unit: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in [
            MetricType::Counter,
            MetricType::Gauge,
            MetricType::Histogram,
            MetricType::GaugeHistogram,
            MetricType::Summary,
            MetricType::Info,
            MetricType::StateSet,
            MetricType::Unknown,
        ] {
            assert_eq!(t.as_str().parse::<MetricType>().unwrap(), t);
        }
        assert_eq!("untyped".parse::<MetricType>().unwrap(), MetricType::Unknown);
        assert!("countr".parse::<MetricType>().is_err());
    }
}
