//! Prometheus remote write 1.0: the `WriteRequest` protobuf (`prompb/remote.proto`,
//! `prompb/types.proto`), snappy block-compressed, decoded into a [`Batch`].
//!
//! Only the fields remote write 1.0 senders fill for float samples are declared (labels,
//! samples, metadata); the others (exemplars, native histograms) are skipped. [`decode`] reads
//! the protobuf in place and keeps, per thread, the label sets it has decoded (at most 262,144
//! series or 64 MiB of keys per thread, then emptied), so a series sent again costs a hash
//! and a comparison.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use telemetry_core::{Fingerprint, LabelsBuilder, Metadata, MetricType};

use crate::batch::{Batch, InternedSeries};

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
    decode_interned(body, max_decoded).map(Batch::uninterned)
}

/// [`decode`] into a batch whose series are shared with the label cache (the server's path).
pub(crate) fn decode_interned(body: &[u8], max_decoded: usize) -> Result<Batch, RemoteWriteError> {
    let len = snap::raw::decompress_len(body).map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    if len > max_decoded {
        return Err(RemoteWriteError::TooLarge { declared: len, limit: max_decoded });
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body).map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    decode_raw(&raw)
}

/// Decodes the protobuf bytes of a `WriteRequest` straight into a [`Batch`]: label strings
/// are read in place (no intermediate `WriteRequest`), and each `TimeSeries` becomes one
/// series of the batch (remote-write senders send a series once per request; a repeat is
/// resolved to the same series downstream). Fields this crate does not use (exemplars, native
/// histograms, unknown fields) are skipped by wire type, as prost skips them.
fn decode_raw(raw: &[u8]) -> Result<Batch, RemoteWriteError> {
    let mut b = Batch::default();
    let mut r = Reader { buf: raw, pos: 0, base: 0 };
    let mut index = 0usize;
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let mut label_msgs: Vec<(&[u8], usize)> = Vec::new();
    let mut samples: Vec<(i64, f64)> = Vec::new();
    let mut key: Vec<u8> = Vec::new();
    while !r.done() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, WIRE_LEN) => {
                let (msg, base) = r.bytes()?;
                label_msgs.clear();
                samples.clear();
                key.clear();
                read_series(msg, base, index, &mut label_msgs, &mut samples, &mut key)?;
                let series = match LABELS_CACHE.with_borrow(|c| c.get(&key[..]).cloned()) {
                    Some(hit) => hit,
                    None => {
                        // A key seen before parsed without error; a new one is parsed here.
                        pairs.clear();
                        for &(lmsg, lbase) in &label_msgs {
                            pairs.push(read_label(lmsg, lbase, index)?);
                        }
                        let mut lb = LabelsBuilder::new();
                        for (n, v) in &pairs {
                            lb.push(n, v);
                        }
                        let labels =
                            lb.build().map_err(|e| RemoteWriteError::Series { index, message: e.to_string() })?;
                        if labels.metric_name().is_none() {
                            return Err(RemoteWriteError::Series {
                                index,
                                message: format!("{labels}: no __name__ label"),
                            });
                        }
                        let series = Arc::new(InternedSeries { fp: labels.fingerprint(), labels });
                        LABELS_CACHE.with_borrow_mut(|c| c.insert(&key, &series));
                        series
                    }
                };
                if !samples.is_empty() {
                    let s = b.add_interned(series);
                    b.samples.reserve(samples.len());
                    for &(t, v) in &samples {
                        b.push(s, t, v);
                    }
                }
                index += 1;
            }
            (3, WIRE_LEN) => {
                let (msg, base) = r.bytes()?;
                let m = <MetricMetadata as prost::Message>::decode(msg)
                    .map_err(|e| RemoteWriteError::Protobuf(format!("metadata at byte {base}: {e}")))?;
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
                b.metadata.push((m.metric_family_name, Metadata { metric_type, help: m.help, unit: m.unit }));
            }
            (1 | 3, w) => return Err(r.wrong_wire(field, w)),
            (_, w) => r.skip(w)?,
        }
    }
    Ok(b)
}

/// Label sets already decoded on this thread, by the bytes of their `Label` messages: a
/// sender writes a series' labels the same way in every request, so a known series costs a
/// hash and a comparison instead of building and validating its labels again. Bounded: it is
/// emptied when it holds [`CACHE_MAX_SERIES`] series or [`CACHE_MAX_KEY_BYTES`] of keys.
struct LabelsCache {
    map: HashMap<Box<[u8]>, Arc<InternedSeries>, BuildHasherDefault<KeyHasher>>,
    key_bytes: usize,
}

/// Most series one thread's [`LabelsCache`] holds. An entry costs about 700 bytes (key, slot,
/// its own label strings), so a thread's cache stays under about 180 MiB; with more active
/// series than this a sender's series mostly miss, and the cost is the insertions (measured
/// with `examples/loadgen` at 100,000 series: 98k samples/s with a 65,536-series cap against
/// 167k with room for all, for about 280 bytes per series less).
const CACHE_MAX_SERIES: usize = 1 << 18;
/// Most key bytes one thread's [`LabelsCache`] holds.
const CACHE_MAX_KEY_BYTES: usize = 64 << 20;

impl LabelsCache {
    fn get(&self, key: &[u8]) -> Option<&Arc<InternedSeries>> {
        self.map.get(key)
    }

    fn insert(&mut self, key: &[u8], series: &Arc<InternedSeries>) {
        if self.map.len() >= CACHE_MAX_SERIES || self.key_bytes + key.len() > CACHE_MAX_KEY_BYTES {
            self.map.clear();
            self.key_bytes = 0;
        }
        self.key_bytes += key.len();
        self.map.insert(key.into(), Arc::clone(series));
    }
}

thread_local! {
    static LABELS_CACHE: RefCell<LabelsCache> =
        RefCell::new(LabelsCache { map: HashMap::default(), key_bytes: 0 });
}

/// xxHash64 of the key bytes (the map hashes a `Box<[u8]>` as its length, then its bytes).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = Fingerprint::of_key_bytes(bytes).as_u64() ^ self.0.rotate_left(5);
    }
}

/// One `TimeSeries` message: its `Label` messages (field 1, with their offsets, parsed later
/// by [`read_label`] and only when the [`LabelsCache`] does not know them) and float samples
/// (`Sample` messages, field 2), in wire order; other fields skipped. `key` receives the
/// series' `Label` messages, each behind its length, as the [`LabelsCache`] key. An error in a
/// sample is reported after any error in a label before it, as a single pass in wire order
/// would.
fn read_series<'a>(
    msg: &'a [u8],
    base: usize,
    index: usize,
    label_msgs: &mut Vec<(&'a [u8], usize)>,
    samples: &mut Vec<(i64, f64)>,
    key: &mut Vec<u8>,
) -> Result<(), RemoteWriteError> {
    let r = read_series_fields(msg, base, label_msgs, samples, key);
    if r.is_err() {
        // Report a bad label before the error, as a pass in wire order would have.
        for &(lmsg, lbase) in label_msgs.iter() {
            read_label(lmsg, lbase, index)?;
        }
    }
    r
}

fn read_series_fields<'a>(
    msg: &'a [u8],
    base: usize,
    label_msgs: &mut Vec<(&'a [u8], usize)>,
    samples: &mut Vec<(i64, f64)>,
    key: &mut Vec<u8>,
) -> Result<(), RemoteWriteError> {
    let mut r = Reader { buf: msg, pos: 0, base };
    while !r.done() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, WIRE_LEN) => {
                let (lmsg, lbase) = r.bytes()?;
                key.extend_from_slice(&(lmsg.len() as u32).to_le_bytes());
                key.extend_from_slice(lmsg);
                label_msgs.push((lmsg, lbase));
            }
            (2, WIRE_LEN) => {
                let (smsg, sbase) = r.bytes()?;
                let mut sr = Reader { buf: smsg, pos: 0, base: sbase };
                let (mut t, mut v) = (0i64, 0f64);
                while !sr.done() {
                    let (f, w) = sr.key()?;
                    match (f, w) {
                        (1, WIRE_I64) => v = f64::from_bits(sr.fixed64()?),
                        (2, WIRE_VARINT) => t = sr.varint()? as i64,
                        (1 | 2, w) => return Err(sr.wrong_wire(f, w)),
                        (_, w) => sr.skip(w)?,
                    }
                }
                samples.push((t, v));
            }
            (1 | 2, w) => return Err(r.wrong_wire(field, w)),
            (_, w) => r.skip(w)?,
        }
    }
    Ok(())
}

/// One `Label` message of series `index` (its bytes and their offset in the request): name
/// and value, checked to be UTF-8.
fn read_label(lmsg: &[u8], lbase: usize, index: usize) -> Result<(&str, &str), RemoteWriteError> {
    let mut l = Reader { buf: lmsg, pos: 0, base: lbase };
    let (mut name, mut value) = ("", "");
    while !l.done() {
        let (f, w) = l.key()?;
        match (f, w) {
            (1 | 2, WIRE_LEN) => {
                let (bytes, at) = l.bytes()?;
                let text = std::str::from_utf8(bytes).map_err(|_| {
                    RemoteWriteError::Protobuf(format!(
                        "timeseries[{index}]: label {} at byte {at} is not valid UTF-8",
                        if f == 1 { "name" } else { "value" }
                    ))
                })?;
                if f == 1 {
                    name = text;
                } else {
                    value = text;
                }
            }
            (1 | 2, w) => return Err(l.wrong_wire(f, w)),
            (_, w) => l.skip(w)?,
        }
    }
    Ok((name, value))
}

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;

/// A protobuf reader over one message; `base` is the message's offset in the whole request,
/// so errors name the byte.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn err(&self, what: &str) -> RemoteWriteError {
        RemoteWriteError::Protobuf(format!("{what} at byte {}", self.base + self.pos))
    }

    fn wrong_wire(&self, field: u32, wire: u8) -> RemoteWriteError {
        self.err(&format!("field {field} has wire type {wire}, not the one its type needs"))
    }

    fn varint(&mut self) -> Result<u64, RemoteWriteError> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else { return Err(self.err("truncated varint")) };
            self.pos += 1;
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                if i == 9 && byte > 1 {
                    return Err(self.err("varint overflows 64 bits"));
                }
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    fn key(&mut self) -> Result<(u32, u8), RemoteWriteError> {
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(self.err(&format!("invalid field number {field}")));
        }
        Ok((field as u32, (k & 7) as u8))
    }

    /// A length-delimited field's bytes and their offset in the request.
    fn bytes(&mut self) -> Result<(&'a [u8], usize), RemoteWriteError> {
        let len = self.varint()?;
        let start = self.pos;
        let end = usize::try_from(len).ok().and_then(|l| start.checked_add(l)).filter(|&e| e <= self.buf.len());
        let Some(end) = end else { return Err(self.err(&format!("length {len} runs past the end of the message"))) };
        self.pos = end;
        Ok((&self.buf[start..end], self.base + start))
    }

    fn fixed64(&mut self) -> Result<u64, RemoteWriteError> {
        let Some(b) = self.buf.get(self.pos..self.pos + 8) else { return Err(self.err("truncated fixed64")) };
        self.pos += 8;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn skip(&mut self, wire: u8) -> Result<(), RemoteWriteError> {
        match wire {
            WIRE_VARINT => self.varint().map(|_| ()),
            WIRE_I64 => self.fixed64().map(|_| ()),
            WIRE_LEN => self.bytes().map(|_| ()),
            WIRE_I32 => {
                if self.pos + 4 > self.buf.len() {
                    return Err(self.err("truncated fixed32"));
                }
                self.pos += 4;
                Ok(())
            }
            w => Err(self.err(&format!("unsupported wire type {w}"))),
        }
    }
}

/// Encodes a request (for clients and tests): protobuf, then snappy.
pub fn encode(req: &WriteRequest) -> Vec<u8> {
    let raw = prost::Message::encode_to_vec(req);
    // ok: compressing a Vec into a fresh Vec only fails for inputs over ~4 GiB
    snap::raw::Encoder::new().compress_vec(&raw).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use telemetry_core::Labels;

    use super::*;

    /// What prost makes of the same bytes: each series with samples, its labels and samples
    /// (values as bits).
    fn by_prost(raw: &[u8]) -> Vec<(Labels, Vec<(i64, u64)>)> {
        let req = <WriteRequest as prost::Message>::decode(raw).unwrap();
        req.timeseries
            .iter()
            .filter(|ts| !ts.samples.is_empty())
            .map(|ts| {
                let mut lb = LabelsBuilder::new();
                for l in &ts.labels {
                    lb.push(&l.name, &l.value);
                }
                (lb.build().unwrap(), ts.samples.iter().map(|s| (s.timestamp, s.value.to_bits())).collect())
            })
            .collect()
    }

    fn ours(raw: &[u8]) -> Vec<(Labels, Vec<(i64, u64)>)> {
        let b = decode_raw(raw).map(Batch::uninterned).unwrap();
        let mut out: Vec<(Labels, Vec<(i64, u64)>)> = b.series.iter().map(|l| (l.clone(), Vec::new())).collect();
        for s in &b.samples {
            out[s.series as usize].1.push((s.timestamp_ms, s.value.to_bits()));
        }
        out
    }

    /// Labels are parsed after the series' other fields, but errors still come in wire order.
    #[test]
    fn a_bad_label_before_a_bad_sample_is_the_error_named() {
        let label = [0x0a, 0x06, 0x0a, 0x01, 0xff, 0x12, 0x01, b'x']; // name not UTF-8
        let sample = [0x10, 0x01]; // field 2 as a varint: wrong wire type
        let series = |parts: &[&[u8]]| {
            let ts: Vec<u8> = parts.concat();
            let mut raw = vec![0x0a, ts.len() as u8];
            raw.extend_from_slice(&ts);
            raw
        };
        let e = decode_raw(&series(&[&label, &sample])).unwrap_err().to_string();
        assert!(e.contains("label name at byte 6 is not valid UTF-8"), "{e}");
        let e = decode_raw(&series(&[&sample, &label])).unwrap_err().to_string();
        assert!(e.contains("field 2 has wire type 0"), "{e}");
    }

    proptest! {
        #[test]
        fn hand_decoding_agrees_with_prost(
            series in prop::collection::vec(
                (
                    "[a-z_][a-z0-9_]{0,8}",
                    prop::collection::btree_map("[a-z][a-z0-9_]{0,6}", "\\PC{0,12}", 0..5),
                    prop::collection::vec((any::<i64>(), any::<u64>()), 0..6),
                ),
                0..8,
            )
        ) {
            let req = WriteRequest {
                timeseries: series
                    .iter()
                    .map(|(name, labels, samples)| TimeSeries {
                        labels: std::iter::once(Label { name: "__name__".into(), value: name.clone() })
                            .chain(labels.iter().map(|(n, v)| Label { name: n.clone(), value: v.clone() }))
                            .collect(),
                        samples: samples.iter().map(|&(t, v)| Sample { value: f64::from_bits(v), timestamp: t }).collect(),
                    })
                    .collect(),
                metadata: vec![],
            };
            let raw = prost::Message::encode_to_vec(&req);
            prop_assert_eq!(ours(&raw), by_prost(&raw));
        }

        #[test]
        fn hostile_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_raw(&raw);
        }
    }

    #[test]
    fn exemplars_histograms_and_unknown_fields_are_skipped() {
        let mut ts = Vec::new();
        let label = |n: &[u8], v: &[u8]| {
            let mut l = vec![0x0a, n.len() as u8];
            l.extend_from_slice(n);
            l.extend_from_slice(&[0x12, v.len() as u8]);
            l.extend_from_slice(v);
            l
        };
        for l in [label(b"__name__", b"up"), label(b"job", b"x")] {
            ts.extend_from_slice(&[0x0a, l.len() as u8]);
            ts.extend_from_slice(&l);
        }
        ts.extend_from_slice(&[0x1a, 0x02, 0x10, 0x05]); // exemplar (field 3)
        ts.extend_from_slice(&[0x22, 0x02, 0x08, 0x01]); // native histogram (field 4)
        ts.extend_from_slice(&[0x12, 0x0b, 0x09]); // sample: value 1.5, timestamp 7
        ts.extend_from_slice(&1.5f64.to_le_bytes());
        ts.extend_from_slice(&[0x10, 0x07]);
        let mut raw = vec![0x0a, ts.len() as u8];
        raw.extend_from_slice(&ts);
        raw.extend_from_slice(&[0x78, 0x2a]); // unknown field 15, varint
        let b = decode_raw(&raw).map(Batch::uninterned).unwrap();
        assert_eq!(b.series[0].to_string(), r#"up{job="x"}"#);
        assert_eq!((b.samples[0].timestamp_ms, b.samples[0].value), (7, 1.5));
        // Again: now from the thread's label cache, the same.
        let again = decode_raw(&raw).map(Batch::uninterned).unwrap();
        assert_eq!((&again.series, &again.samples), (&b.series, &b.samples));
        // Truncated anywhere: an error naming a byte offset, never a panic.
        for cut in 0..raw.len() - 2 {
            if let Err(e) = decode_raw(&raw[..cut]) {
                assert!(e.to_string().contains("byte") || e.to_string().contains("timeseries"), "{e}");
            }
        }
    }

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
