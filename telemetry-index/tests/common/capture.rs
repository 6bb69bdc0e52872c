//! Loads the label sets of `../shared/data/capture` and builds the scaled sets.
//!
//! Shared by the ignored integration test and the criterion bench (`#[path]` include).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::sync::Arc;

use telemetry_core::{Label, Labels};

/// The capture file, relative to this crate.
pub const CAPTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/capture/prometheus-node-1s.om.gz");

/// Where a sample line's series ends: after the closing `}` (quotes and escapes respected) or
/// at the first space.
fn series_end(line: &[u8]) -> Option<usize> {
    let brace = line.iter().position(|&b| b == b'{' || b == b' ')?;
    if line[brace] == b' ' {
        return Some(brace);
    }
    let mut i = brace + 1;
    let mut in_str = false;
    while i < line.len() {
        match (line[i], in_str) {
            (b'\\', true) => i += 1,
            (b'"', _) => in_str = !in_str,
            (b'}', false) => return Some(i + 1),
            _ => {}
        }
        i += 1;
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses `name{a="b",c="d"}` (OpenMetrics text, minimal).
pub fn parse_series(s: &str) -> Labels {
    let (name, rest) = match s.find('{') {
        Some(i) => (&s[..i], &s[i + 1..s.len() - 1]),
        None => (s, ""),
    };
    let mut pairs = vec![("__name__".to_string(), name.to_string())];
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let eq = i + rest[i..].find('=').expect("label without =");
        let lname = rest[i..eq].trim_matches(|c| c == ',' || c == ' ').to_string();
        let start = eq + 2; // skip ="
        let mut j = start;
        while b[j] != b'"' {
            if b[j] == b'\\' {
                j += 1;
            }
            j += 1;
        }
        pairs.push((lname, unescape(&rest[start..j])));
        i = j + 1;
    }
    Labels::from_pairs(pairs).expect("capture labels are valid")
}

/// The distinct series of the capture (about 940), in file order; `None` when the file is
/// absent.
pub fn capture_series() -> Option<Vec<Labels>> {
    let f = std::fs::File::open(CAPTURE).ok()?;
    let mut r = BufReader::with_capacity(1 << 20, flate2::read::GzDecoder::new(f));
    let mut out = Vec::new();
    let mut prev: Vec<u8> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).expect("read capture") == 0 {
            break;
        }
        if line.first() == Some(&b'#') || line.is_empty() {
            continue;
        }
        let Some(end) = series_end(&line) else { continue };
        if line[..end] == prev[..] {
            continue;
        }
        prev.clear();
        prev.extend_from_slice(&line[..end]);
        out.push(parse_series(std::str::from_utf8(&prev).expect("utf-8")));
    }
    Some(out)
}

/// The base series with `instance` replaced by `host-0 … host-{n-1}`, instance-major (the
/// order a head sees when each target's series are created together).
pub fn scaled(base: &[Labels], instances: usize) -> impl Iterator<Item = Labels> + '_ {
    (0..instances).flat_map(move |i| {
        let inst: Arc<str> = Arc::from(format!("host-{i}"));
        let name: Arc<str> = Arc::from("instance");
        base.iter().map(move |l| {
            Labels::from_sorted_unchecked(l.iter().map(|p| {
                if &*p.name == "instance" { Label { name: name.clone(), value: inst.clone() } } else { p.clone() }
            }))
        })
    })
}
