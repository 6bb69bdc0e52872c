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

/// Cuts the next line out of `bytes` from `*pos`: without its `\n` and a `\r` before it.
/// Advances `*pos` past the newline and counts the line in `*line` (1-based). `None` at the end.
pub(crate) fn next_line<'a>(bytes: &'a [u8], pos: &mut usize, line: &mut usize) -> Option<&'a [u8]> {
    let start = *pos;
    if start >= bytes.len() {
        return None;
    }
    let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
    *pos = end + 1;
    *line += 1;
    let raw = &bytes[start..end];
    Some(raw.strip_suffix(b"\r").unwrap_or(raw))
}
