//! Where the bytes of the `store` chunk go on the real capture, at several chunk sizes.
//!
//! ```text
//! cargo run --release -p telemetry-compress --example store_sizes -- [CAPTURE.om.gz] [--sizes 120,512,2048,4096,0] [--top N]
//! ```
//!
//! Reads `../shared/data/capture/prometheus-node-1s.om.gz` by default, cuts every series into
//! chunks of N samples (N = 0: the whole series, one hour here), encodes each chunk with
//! [`telemetry_compress::encode_store_chunk`], checks that it decodes to the same bits, and prints
//! bytes/sample split into the chunk header (encoding byte and count), the timestamp section and
//! the value section, then the metric families (`--top N`, default 10) (by `# TYPE`) that take the most bytes, and
//! the chunk encodings used.

use std::collections::HashMap;
use std::io::Read;

use telemetry_compress::{decode_store_chunk, encode_store_chunk, store_chunk_layout};

struct Series {
    family: usize,
    ts: Vec<i64>,
    vs: Vec<f64>,
}

/// Splits an OpenMetrics sample line into (series, value, timestamp ms).
fn parse_line(line: &str) -> Option<(&str, f64, i64)> {
    let end = if let Some(open) = line.find('{') {
        let (mut in_q, mut esc, mut close) = (false, false, None);
        for (i, c) in line[open..].char_indices() {
            match c {
                _ if esc => esc = false,
                '\\' if in_q => esc = true,
                '"' => in_q = !in_q,
                '}' if !in_q => {
                    close = Some(open + i + 1);
                    break;
                }
                _ => {}
            }
        }
        close?
    } else {
        line.find(' ')?
    };
    let mut rest = line[end..].split_ascii_whitespace();
    let v: f64 = rest.next()?.parse().ok()?;
    let t = rest.next()?;
    let (secs, frac) = t.split_once('.').unwrap_or((t, "0"));
    let frac3 = format!("{frac:0<3}");
    Some((&line[..end], v, secs.parse::<i64>().ok()? * 1000 + frac3[..3].parse::<i64>().ok()?))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut path =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/capture/prometheus-node-1s.om.gz").to_string();
    let mut sizes = vec![120usize, 512, 2048, 4096, 0];
    let mut top = 10;
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--sizes" && i + 1 < args.len() {
            sizes = args[i + 1].split(',').filter_map(|s| s.parse().ok()).collect();
            i += 2;
        } else if args[i] == "--top" && i + 1 < args.len() {
            top = args[i + 1].parse().unwrap_or(10);
            i += 2;
        } else {
            path = args[i].clone();
            i += 1;
        }
    }
    let mut text = String::new();
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    if path.ends_with(".gz") {
        flate2::read::GzDecoder::new(file).read_to_string(&mut text).expect("gunzip");
    } else {
        std::io::BufReader::new(file).read_to_string(&mut text).expect("read");
    }
    let mut families: Vec<String> = Vec::new();
    let mut series: Vec<Series> = Vec::new();
    let mut cur = String::new();
    let mut fam_now = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split_whitespace().next().unwrap_or("").to_string();
            match families.iter().position(|f| *f == name) {
                Some(i) => fam_now = i,
                None => {
                    fam_now = families.len();
                    families.push(name);
                }
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, v, t)) = parse_line(line) else { continue };
        if name != cur || series.is_empty() {
            cur = name.to_string();
            series.push(Series { family: fam_now, ts: Vec::new(), vs: Vec::new() });
        }
        let s = series.last_mut().expect("pushed above");
        s.ts.push(t);
        s.vs.push(v);
    }
    let total: usize = series.iter().map(|s| s.ts.len()).sum();
    println!("{path}: {} series, {total} samples, {} families", series.len(), families.len());
    for &n in &sizes {
        let (mut h, mut t, mut v, mut chunks) = (0usize, 0usize, 0usize, 0usize);
        let mut by_family: HashMap<usize, (usize, usize)> = HashMap::new();
        let mut fam_enc: HashMap<(usize, u8), usize> = HashMap::new();
        let mut encs: HashMap<u8, usize> = HashMap::new();
        let (mut bt, mut bv) = (Vec::new(), Vec::new());
        for s in &series {
            let cut = if n == 0 { s.ts.len() } else { n };
            for (ts, vs) in s.ts.chunks(cut).zip(s.vs.chunks(cut)) {
                let b = encode_store_chunk(ts, vs).expect("encode");
                bt.clear();
                bv.clear();
                decode_store_chunk(&b, &mut bt, &mut bv).expect("decode");
                assert!(bt == ts && bv.iter().zip(vs).all(|(a, b)| a.to_bits() == b.to_bits()), "not lossless");
                let l = store_chunk_layout(&b).expect("layout");
                h += l.header;
                t += l.timestamps;
                v += l.values;
                chunks += 1;
                *encs.entry(b[0]).or_default() += 1;
                *fam_enc.entry((s.family, b[0])).or_default() += 1;
                let f = by_family.entry(s.family).or_default();
                f.0 += b.len();
                f.1 += ts.len();
            }
        }
        let all = (h + t + v) as f64;
        let per = |x: usize| x as f64 / total as f64;
        println!(
            "\nchunk {:>5}: {chunks} chunks, {:.4} bytes/sample = header {:.4} + timestamps {:.4} + values {:.4}",
            if n == 0 { "whole".to_string() } else { n.to_string() },
            all / total as f64,
            per(h),
            per(t),
            per(v)
        );
        let mut fams: Vec<(usize, (usize, usize))> = by_family.into_iter().collect();
        fams.sort_by_key(|f| std::cmp::Reverse(f.1.0));
        for (f, (bytes, samples)) in fams.iter().take(top) {
            let mut e: Vec<String> =
                fam_enc.iter().filter(|k| k.0.0 == *f).map(|(k, c)| format!("{:#04x}:{c}", k.1)).collect();
            e.sort();
            println!(
                "  {:<55} {:>5.1}% of bytes, {:>8} samples, {:.3} bytes/sample  {}",
                families.get(*f).map_or("?", |s| s.as_str()),
                *bytes as f64 * 100.0 / all,
                samples,
                *bytes as f64 / *samples as f64,
                e.join(" ")
            );
        }
        let mut encs: Vec<(u8, usize)> = encs.into_iter().collect();
        encs.sort_by_key(|e| std::cmp::Reverse(e.1));
        let list: Vec<String> = encs.iter().map(|(e, c)| format!("{e:#04x}:{c}")).collect();
        println!("  encodings (byte:chunks): {}", list.join(" "));
    }
}
