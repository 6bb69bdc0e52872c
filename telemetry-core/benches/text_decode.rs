//! Text-format decoding throughput on the real capture, side by side with published parsers.
//!
//! Input: `../shared/data/capture/prometheus-node-1s.om.gz` (373 MB of OpenMetrics text),
//! decompressed into memory before timing; without `../shared/data`, the bundled
//! `testdata/excerpt-20m.om.gz`.
//!
//! - `text_decode/full/ours_openmetrics`: this crate's decoder over the whole input.
//! - `text_decode/peer_slice/*`: the first 32 MB (whole lines, `# EOF` appended; the whole
//!   excerpt when the capture is absent), given to every parser in the format it reads:
//!   OpenMetrics for ours and `openmetrics-parser`, the same samples re-encoded as Prometheus
//!   0.0.4 text (millisecond timestamps) for ours and `prometheus-parse` (which cannot read
//!   fractional-second timestamps). Throughput is in bytes of each parser's own input.
//!
//! Before criterion runs, a table prints, per parser, the median of 5 timed runs (3 for slow
//! ones) in MB/s and samples/s of wall time and of the thread's CPU time (the single-core figure
//! on a shared machine). Samples are the sample lines of the input; what each parser returns is
//! printed too.
//!
//! Run: `cargo bench -p telemetry-core --bench text_decode -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::io::Read;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use telemetry_core::format::text::{Entry, Flavor, TextDecoder, TextEncoder};

const SLICE_BYTES: usize = 32 << 20;

fn load() -> (Vec<u8>, &'static str) {
    let full = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/capture/prometheus-node-1s.om.gz");
    let excerpt = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/excerpt-20m.om.gz");
    let (path, what) =
        if std::path::Path::new(full).exists() { (full, "full capture") } else { (excerpt, "bundled excerpt") };
    let mut out = Vec::new();
    let f = std::fs::File::open(path).expect("input file"); // ok: bench setup
    flate2::read::GzDecoder::new(f).read_to_end(&mut out).expect("gunzip"); // ok: bench setup
    (out, what)
}

fn slice_om(om: &[u8]) -> Vec<u8> {
    if om.len() <= SLICE_BYTES {
        return om.to_vec();
    }
    let cut = om[..SLICE_BYTES].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut v = om[..cut].to_vec();
    v.extend_from_slice(b"# EOF\n");
    v
}

fn to_prometheus_004(om: &[u8]) -> Vec<u8> {
    let enc = TextEncoder::new(Flavor::Prometheus);
    let mut out = Vec::with_capacity(om.len());
    for e in TextDecoder::new(om, Flavor::OpenMetrics) {
        let e = e.expect("decode"); // ok: bench setup
        if matches!(e, Entry::Eof | Entry::Unit { .. }) {
            continue;
        }
        enc.write_entry(&mut out, &e).expect("encode"); // ok: bench setup
    }
    out
}

fn ours(input: &[u8], flavor: Flavor) -> usize {
    let mut n = 0usize;
    let mut acc = 0f64;
    for e in TextDecoder::new(input, flavor) {
        if let Ok(Entry::Sample(s)) = e {
            n += 1;
            acc += s.value;
            black_box(s.timestamp_ms);
            black_box(s.labels);
        }
    }
    black_box(acc);
    n
}

fn ours_with_labels(input: &[u8], flavor: Flavor) -> usize {
    let mut n = 0usize;
    for e in TextDecoder::new(input, flavor) {
        if let Ok(Entry::Sample(s)) = e {
            n += 1;
            for (name, value) in s.labels.iter() {
                black_box((name, &value));
            }
            black_box(s.value);
        }
    }
    n
}

fn prometheus_parse(input: &str) -> usize {
    let lines = input.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("prometheus-parse"); // ok: bench
    // Histograms and summaries come back grouped: count their points.
    scrape
        .samples
        .iter()
        .map(|s| match &s.value {
            prometheus_parse::Value::Histogram(h) => h.len(),
            prometheus_parse::Value::Summary(q) => q.len(),
            _ => 1,
        })
        .sum()
}

fn openmetrics_parser(input: &str) -> Result<usize, String> {
    let exp = openmetrics_parser::openmetrics::parse_openmetrics(input).map_err(|e| format!("{e:?}"))?;
    Ok(exp.families.values().map(|f| f.iter_samples().count()).sum())
}

fn openmetrics_parser_004(input: &str) -> Result<usize, String> {
    let exp = openmetrics_parser::prometheus::parse_prometheus(input).map_err(|e| format!("{e:?}"))?;
    Ok(exp.families.values().map(|f| f.iter_samples().count()).sum())
}

/// CPU time of this thread in seconds (Linux `/proc/thread-self/schedstat`), when available:
/// on a shared machine, bytes per CPU-second is the single-core figure that wall time hides.
fn thread_cpu_secs() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// Medians of wall time and thread CPU time over `runs` runs, and the last result.
fn median_secs(mut f: impl FnMut() -> usize, runs: usize) -> (f64, Option<f64>, usize) {
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    let mut n = 0;
    for _ in 0..runs {
        let c0 = thread_cpu_secs();
        let t = Instant::now();
        n = f();
        wall.push(t.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (c0, thread_cpu_secs()) {
            cpu.push(b - a);
        }
    }
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    (wall[wall.len() / 2], cpu.get(cpu.len() / 2).copied(), n)
}

/// `samples` is the number of sample lines in the input (the same for every parser of a
/// slice); `returned` is what the parser handed back (peers group histogram lines).
fn row(name: &str, bytes: usize, (secs, cpu, returned): (f64, Option<f64>, usize), samples: usize) {
    let per_cpu = cpu.map_or(String::from("n/a"), |c| format!("{:.1} MB/s", bytes as f64 / c / 1e6));
    println!(
        "{name:<44} {:>8.1} MB/s {:>10.0} samples/s | per CPU-second: {per_cpu}, {:.0} samples/s | {samples} sample lines, {returned} items returned, {:.1} MB",
        bytes as f64 / secs / 1e6,
        samples as f64 / secs,
        cpu.map_or(0.0, |c| samples as f64 / c),
        bytes as f64 / 1e6,
    );
}

fn main() {
    let (om, what) = load();
    let slice = slice_om(&om);
    let slice_prom = to_prometheus_004(&slice);
    let slice_str = std::str::from_utf8(&slice).expect("utf8"); // ok: bench setup
    let slice_prom_str = std::str::from_utf8(&slice_prom).expect("utf8"); // ok: bench setup

    println!(
        "input: {what}, {:.1} MB; peer slice {:.1} MB OpenMetrics / {:.1} MB 0.0.4",
        om.len() as f64 / 1e6,
        slice.len() as f64 / 1e6,
        slice_prom.len() as f64 / 1e6
    );
    let runs = 5;
    let m = median_secs(|| ours(&om, Flavor::OpenMetrics), if om.len() > SLICE_BYTES { 3 } else { runs });
    row(&format!("ours openmetrics ({what})"), om.len(), m, m.2);
    let m = median_secs(|| ours(&slice, Flavor::OpenMetrics), runs);
    let lines = m.2;
    row("slice: ours openmetrics", slice.len(), m, lines);
    let m = median_secs(|| ours_with_labels(&slice, Flavor::OpenMetrics), runs);
    row("slice: ours openmetrics + label iteration", slice.len(), m, lines);
    let m = median_secs(|| ours(&slice_prom, Flavor::Prometheus), runs);
    row("slice: ours prometheus 0.0.4", slice_prom.len(), m, lines);
    let m = median_secs(|| prometheus_parse(slice_prom_str), 3);
    row("slice: prometheus-parse 0.2 (0.0.4)", slice_prom.len(), m, lines);
    let om_peer_ok = match openmetrics_parser(slice_str) {
        Ok(_) => {
            let m = median_secs(|| openmetrics_parser(slice_str).unwrap_or(0), 3);
            row("slice: openmetrics-parser 0.5 (openmetrics)", slice.len(), m, lines);
            true
        }
        Err(e) => {
            println!("slice: openmetrics-parser 0.5 refuses the input: {}", e.chars().take(200).collect::<String>());
            false
        }
    };
    let om_peer_004_ok = match openmetrics_parser_004(slice_prom_str) {
        Ok(_) => {
            let m = median_secs(|| openmetrics_parser_004(slice_prom_str).unwrap_or(0), 3);
            row("slice: openmetrics-parser 0.5 (0.0.4)", slice_prom.len(), m, lines);
            true
        }
        Err(e) => {
            println!(
                "slice: openmetrics-parser 0.5 (0.0.4) refuses the input: {}",
                e.chars().take(200).collect::<String>()
            );
            false
        }
    };

    let mut c = Criterion::default().configure_from_args();
    {
        let mut g = c.benchmark_group("text_decode/full");
        g.sample_size(10).measurement_time(Duration::from_secs(3));
        g.throughput(Throughput::Bytes(om.len() as u64));
        g.bench_function("ours_openmetrics", |b| b.iter(|| ours(&om, Flavor::OpenMetrics)));
        g.finish();
    }
    {
        let mut g = c.benchmark_group("text_decode/peer_slice");
        g.sample_size(10);
        g.throughput(Throughput::Bytes(slice.len() as u64));
        g.bench_function("ours_openmetrics", |b| b.iter(|| ours(&slice, Flavor::OpenMetrics)));
        if om_peer_ok {
            g.bench_function("openmetrics_parser", |b| b.iter(|| openmetrics_parser(slice_str)));
        }
        g.throughput(Throughput::Bytes(slice_prom.len() as u64));
        g.bench_function("ours_prometheus_004", |b| b.iter(|| ours(&slice_prom, Flavor::Prometheus)));
        g.bench_function("prometheus_parse", |b| b.iter(|| prometheus_parse(slice_prom_str)));
        if om_peer_004_ok {
            g.bench_function("openmetrics_parser_004", |b| b.iter(|| openmetrics_parser_004(slice_prom_str)));
        }
        g.finish();
    }
    c.final_summary();
}
