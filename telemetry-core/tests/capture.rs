//! Golden tests against real data: the one-hour OpenMetrics capture in `../shared/data/capture`
//! (ignored by default) and the 20-minute excerpt committed in `testdata/`.
//!
//! Each decodes the whole file, checks the counts its README gives, re-encodes every entry
//! and checks that decoding the re-encoded text reproduces every sample bit for bit.

use std::collections::HashSet;
use std::io::Read;

use telemetry_core::format::text::{Entry, Flavor, TextDecoder, TextEncoder};

fn gunzip(path: &str) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(file).read_to_end(&mut out).unwrap_or_else(|e| panic!("{path}: {e}"));
    out
}

#[derive(Debug, Default, PartialEq)]
struct Counts {
    families: usize,
    series: usize,
    samples: usize,
    nan_samples: usize,
    first_ts: i64,
    last_ts: i64,
}

/// Decodes, counts, re-encodes and checks the re-encoded text sample by sample.
fn check(input: &[u8]) -> Counts {
    let mut c = Counts { first_ts: i64::MAX, last_ts: i64::MIN, ..Counts::default() };
    let mut series = HashSet::new();
    let mut last_key: Option<(&str, &str)> = None;
    let enc = TextEncoder::new(Flavor::OpenMetrics);
    let mut out = Vec::with_capacity(input.len());
    let mut saw_eof = false;
    for entry in TextDecoder::new(input, Flavor::OpenMetrics) {
        let entry = entry.unwrap_or_else(|e| panic!("decode: {e}"));
        match &entry {
            Entry::Type { .. } => c.families += 1,
            Entry::Sample(s) => {
                c.samples += 1;
                if s.value.is_nan() {
                    c.nan_samples += 1;
                }
                let ts = s.timestamp_ms.expect("every sample in the capture has a timestamp");
                c.first_ts = c.first_ts.min(ts);
                c.last_ts = c.last_ts.max(ts);
                let key = (s.name, s.labels.raw());
                if last_key != Some(key) {
                    series.insert(key);
                    last_key = Some(key);
                }
            }
            Entry::Eof => saw_eof = true,
            _ => {}
        }
        enc.write_entry(&mut out, &entry).unwrap_or_else(|e| panic!("encode: {e}"));
    }
    assert!(saw_eof);
    c.series = series.len();

    // Decode both again in lockstep: every entry must match, samples bit for bit.
    let mut a = TextDecoder::new(input, Flavor::OpenMetrics);
    let mut b = TextDecoder::new(&out, Flavor::OpenMetrics);
    let mut compared = 0usize;
    loop {
        match (a.next(), b.next()) {
            (None, None) => break,
            (Some(Ok(x)), Some(Ok(y))) => match (&x, &y) {
                (Entry::Sample(s), Entry::Sample(t)) => {
                    assert_eq!(s.name, t.name);
                    assert!(s.labels.iter().eq(t.labels.iter()), "labels differ at sample {compared}");
                    assert_eq!(s.value.to_bits(), t.value.to_bits(), "value differs at sample {compared}");
                    assert_eq!(s.timestamp_ms, t.timestamp_ms);
                    compared += 1;
                }
                (Entry::Help { family: f, help: h }, Entry::Help { family: g, help: i }) => {
                    assert_eq!((f, h.unescape()), (g, i.unescape()));
                }
                _ => assert_eq!(x, y),
            },
            (x, y) => panic!("streams diverge: {x:?} vs {y:?}"),
        }
    }
    assert_eq!(compared, c.samples);
    c
}

#[test]
#[ignore = "needs ../shared/data"]
fn full_capture_decodes_and_round_trips() {
    let input = gunzip(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/capture/prometheus-node-1s.om.gz"));
    let c = check(&input);
    assert_eq!(
        c,
        Counts {
            families: 421,
            series: 940,
            samples: 3_396_842,
            nan_samples: 98_697,
            first_ts: 1_795_264_944_510,
            last_ts: 1_795_268_561_510,
        }
    );
}

#[test]
fn bundled_excerpt_decodes_and_round_trips() {
    let input = gunzip(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/excerpt-20m.om.gz"));
    let c = check(&input);
    assert_eq!(c.series, 103);
    assert_eq!(c.samples, 123_600);
    assert_eq!(c.families, 23);
    assert!(c.first_ts >= 1_795_266_290_000 && c.last_ts <= 1_795_267_490_999, "{c:?}");
}
