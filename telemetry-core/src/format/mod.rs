//! Wire formats: streaming decoders that borrow from their input, and encoders.
//!
//! | module | format | decoder | encoder |
//! |---|---|---|---|
//! | [`text`] | Prometheus text exposition 0.0.4 and OpenMetrics 1.0 text | [`text::TextDecoder`] | [`text::TextEncoder`] |
//! | [`statsd`] | StatsD and DogStatsD lines | [`statsd::StatsdDecoder`] | [`statsd::write_line`] |
//! | [`json`] | JSON series (`{"series":[...]}`, submission API) | [`json::decode`] | [`json::encode`] |
//! | [`influx`] | InfluxDB line protocol | [`influx::InfluxDecoder`] | [`influx::write_line`] |
//!
//! [`normalize`] maps dotted names and `k:v` tags (StatsD, JSON, InfluxDB) to Prometheus names
//! and labels; [`number`] holds the float and timestamp parsing they share (Go's
//! `strconv.ParseFloat` semantics, exact seconds-to-milliseconds conversion).
//!
//! Every decoder returns a typed error naming the 1-based line and byte column, stops at the
//! first error, and never panics on any input (each has a "arbitrary bytes" property test and a
//! fuzz target under `fuzz/`). Timestamps are milliseconds since the Unix epoch throughout.

pub mod influx;
pub mod json;
pub mod normalize;
pub mod number;
pub mod statsd;
pub mod text;
