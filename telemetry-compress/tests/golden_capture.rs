//! The `store` chunk on the real capture: lossless to the bit, and within the VictoriaMetrics
//! figure (0.264 bytes/sample of data, capture README) at the block writer's chunk size.

use std::io::Read;

use telemetry_compress::{decode_store_chunk, encode_store_chunk};

const CAPTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/capture/prometheus-node-1s.om.gz");

/// Every series of the capture as (timestamps ms, values), in file order.
fn series() -> Vec<(Vec<i64>, Vec<f64>)> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(CAPTURE).unwrap()).read_to_string(&mut text).unwrap();
    let mut out: Vec<(Vec<i64>, Vec<f64>)> = Vec::new();
    let mut cur = "";
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        // `name{labels} value timestamp`; label values in this file contain no spaces.
        let mut f = line.rsplitn(3, ' ');
        let (Some(t), Some(v), Some(name)) = (f.next(), f.next(), f.next()) else { panic!("bad line {line}") };
        let (s, ms) = t.split_once('.').unwrap_or((t, "0"));
        let t = s.parse::<i64>().unwrap() * 1000 + format!("{ms:0<3}")[..3].parse::<i64>().unwrap();
        if name != cur {
            cur = name;
            out.push((Vec::new(), Vec::new()));
        }
        let last = out.last_mut().unwrap();
        last.0.push(t);
        last.1.push(v.parse::<f64>().unwrap());
    }
    out
}

#[test]
#[ignore = "needs ../shared/data"]
fn capture_store_chunks_are_lossless_and_small() {
    let all = series();
    let samples: usize = all.iter().map(|s| s.0.len()).sum();
    assert_eq!((all.len(), samples), (940, 3_396_842));
    let nans = all.iter().flat_map(|s| &s.1).filter(|v| v.is_nan()).count();
    assert_eq!(nans, 98_697);
    // (chunk samples, largest bytes/sample accepted: measured 0.3072 and 0.2097)
    for (size, limit) in [(120usize, 0.31), (2048, 0.264)] {
        let mut bytes = 0usize;
        let (mut t2, mut v2) = (Vec::new(), Vec::new());
        for (ts, vs) in &all {
            for (t, v) in ts.chunks(size).zip(vs.chunks(size)) {
                let b = encode_store_chunk(t, v).unwrap();
                bytes += b.len();
                t2.clear();
                v2.clear();
                decode_store_chunk(&b, &mut t2, &mut v2).unwrap();
                assert_eq!(t2, t);
                assert!(v2.iter().zip(v).all(|(a, b)| a.to_bits() == b.to_bits()), "values differ");
            }
        }
        let per = bytes as f64 / samples as f64;
        eprintln!("store chunks of {size}: {bytes} bytes, {per:.4} bytes/sample");
        assert!(per <= limit, "{per} bytes/sample at {size} over {limit}");
    }
}
