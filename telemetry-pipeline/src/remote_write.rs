//! Prometheus remote write 1.0: the `WriteRequest` protobuf (`prompb/remote.proto`,
//! `prompb/types.proto`), snappy block-compressed, decoded into a [`Batch`].
//!
//! Only the fields remote write 1.0 senders fill for float samples are declared (labels,
//! samples, metadata); prost skips the others (exemplars, native histograms), which are
//! counted as not supported by the caller when present.

use telemetry_core::{LabelsBuilder, Metadata, MetricType};

use crate::batch::{Batch, BatchBuilder};

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    /// Metric metadata.
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Labels, sorted by name.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Samples, in time order.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// Value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    /// `MetricType` enum: 0 unknown, 1 counter, 2 gauge, 3 histogram, 4 gaugehistogram,
    /// 5 summary, 6 info, 7 stateset.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// Family name.
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    /// Help text.
    #[prost(string, tag = "4")]
    pub help: String,
    /// Unit.
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// Why a remote-write body was refused. Each message names what is wrong and where (the
/// series by index, the label, the byte counts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteWriteError {
    /// The body is not a snappy block (remote write 1.0 uses the block format, not frames).
    #[error("invalid snappy block: {0}")]
    Snappy(String),
    /// The snappy block declares more decompressed bytes than allowed.
    #[error("snappy block declares {declared} decompressed bytes, over the limit of {limit}")]
    TooLarge {
        /// Decompressed length the block's header declares.
        declared: usize,
        /// The limit.
        limit: usize,
    },
    /// The decompressed bytes are not a `WriteRequest`.
    #[error("invalid WriteRequest protobuf: {0}")]
    Protobuf(String),
    /// A series' labels are invalid (bad name, duplicate, missing `__name__`).
    #[error("timeseries[{index}]: {message}")]
    Series {
        /// Index of the series in the request.
        index: usize,
        /// What is wrong with it.
        message: String,
    },
}

/// Decodes a remote-write body (snappy block format around a `WriteRequest`), refusing a
/// block that declares more than `max_decoded` decompressed bytes before allocating.
///
/// # Errors
/// [`RemoteWriteError`]: bad snappy data, too large, a malformed protobuf, or the series (by
/// index) whose labels are invalid. Nothing of a refused body is returned.
pub fn decode(body: &[u8], max_decoded: usize) -> Result<Batch, RemoteWriteError> {
    let len = snap::raw::decompress_len(body).map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    if len > max_decoded {
        return Err(RemoteWriteError::TooLarge { declared: len, limit: max_decoded });
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body).map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    let req =
        <WriteRequest as prost::Message>::decode(&raw[..]).map_err(|e| RemoteWriteError::Protobuf(e.to_string()))?;
    let mut b = BatchBuilder::new();
    for (i, ts) in req.timeseries.iter().enumerate() {
        let mut lb = LabelsBuilder::new();
        for l in &ts.labels {
            lb.push(&l.name, &l.value);
        }
        let labels = lb.build().map_err(|e| RemoteWriteError::Series { index: i, message: e.to_string() })?;
        if labels.metric_name().is_none() {
            return Err(RemoteWriteError::Series { index: i, message: format!("{labels}: no __name__ label") });
        }
        for s in &ts.samples {
            b.push(&labels, s.timestamp, s.value);
        }
    }
    for m in &req.metadata {
        let metric_type = match m.r#type {
            1 => MetricType::Counter,
            2 => MetricType::Gauge,
            3 => MetricType::Histogram,
            4 => MetricType::GaugeHistogram,
            5 => MetricType::Summary,
            6 => MetricType::Info,
            7 => MetricType::StateSet,
            _ => MetricType::Unknown,
        };
        b.metadata(&m.metric_family_name, Metadata { metric_type, help: m.help.clone(), unit: m.unit.clone() });
    }
    Ok(b.finish())
}

/// Encodes a request (for clients and tests): protobuf, then snappy.
pub fn encode(req: &WriteRequest) -> Vec<u8> {
    let raw = prost::Message::encode_to_vec(req);
    // ok: compressing a Vec into a fresh Vec only fails for inputs over ~4 GiB
    snap::raw::Encoder::new().compress_vec(&raw).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![
                    Label { name: "__name__".into(), value: "up".into() },
                    Label { name: "job".into(), value: "a".into() },
                ],
                samples: vec![Sample { value: 1.0, timestamp: 1000 }, Sample { value: 0.0, timestamp: 2000 }],
            }],
            metadata: vec![],
        };
        let b = decode(&encode(&req), 1 << 20).unwrap();
        assert_eq!((b.series.len(), b.samples.len()), (1, 2));
        assert_eq!(b.series[0].to_string(), r#"up{job="a"}"#);
        assert!(matches!(decode(b"\xff\xff\xff\xff\xff", 1 << 20), Err(RemoteWriteError::Snappy(_))));
        let junk = snap::raw::Encoder::new().compress_vec(b"\x0a\xff\xff").unwrap();
        assert!(decode(&junk, 1 << 20).unwrap_err().to_string().contains("protobuf"));
        assert_eq!(
            decode(&junk, 2).unwrap_err(),
            RemoteWriteError::TooLarge { declared: 3, limit: 2 },
            "the declared length is checked before decompressing"
        );
        let bad = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label { name: "1x".into(), value: "v".into() }],
                samples: vec![],
            }],
            metadata: vec![],
        };
        assert!(decode(&encode(&bad), 1 << 20).unwrap_err().to_string().contains("timeseries[0]"));
    }
}
