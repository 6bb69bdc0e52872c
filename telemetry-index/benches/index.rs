//! Index build and `postings_for_matchers` on the capture's label sets scaled to ~1M series
//! (940 series × 1,000 synthetic `instance` values), for the in-memory and the persisted index.
//!
//! Needs `../shared/data/capture`; prints a note and does nothing without it. The ~9M-series
//! set (× 10,000 instances) runs only with `TELEMETRY_INDEX_9M=1`.
//!
//! `cargo bench -p telemetry-index --bench index -- --warm-up-time 1 --measurement-time 3`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use telemetry_core::{Labels, Matcher};
use telemetry_index::{BlockIndex, BlockWriter, IndexReader, MemIndex};

#[path = "../tests/common/capture.rs"]
mod capture;

fn queries() -> Vec<(&'static str, Vec<Matcher>)> {
    vec![
        ("cpu_idle", vec![Matcher::equal("__name__", "node_cpu_seconds_total"), Matcher::equal("mode", "idle")]),
        (
            "network_regex_not_lo",
            vec![Matcher::regex("__name__", "node_network_.*").unwrap(), Matcher::not_equal("device", "lo")],
        ),
        ("instance_host_1_prefix", vec![Matcher::regex("instance", "host-1.*").unwrap()]),
        ("job_node_instance_42", vec![Matcher::equal("job", "node"), Matcher::equal("instance", "host-42")]),
    ]
}

fn build(series: &[Labels]) -> MemIndex {
    let idx = MemIndex::new();
    idx.add_batch(series.iter().enumerate().map(|(i, l)| (i as u32, l))).unwrap();
    idx
}

fn report(label: &str, series: &[Labels]) -> MemIndex {
    let t = Instant::now();
    let idx = build(series);
    let dt = t.elapsed();
    let n = series.len() as f64;
    println!(
        "[{label}] {} series: one build {:.3} s = {:.2}M series/s; index {:.1} bytes/series beyond {} bytes of distinct label strings",
        series.len(),
        dt.as_secs_f64(),
        n / dt.as_secs_f64() / 1e6,
        idx.memory_bytes() as f64 / n,
        idx.string_bytes()
    );
    for (name, ms) in queries() {
        let hits = idx.postings_for_matchers(&ms).len();
        let iters = 2000;
        let (t, cpu) = (Instant::now(), thread_cpu_ns());
        for _ in 0..iters {
            black_box(idx.postings_for_matchers(&ms));
        }
        let wall = t.elapsed().as_nanos() as f64 / iters as f64 / 1e3;
        let cpu = match (cpu, thread_cpu_ns()) {
            (Some(a), Some(b)) => format!("{:.1} µs", (b - a) as f64 / iters as f64 / 1e3),
            _ => "n/a".to_string(),
        };
        println!("[{label}]   {name}: {hits} series; mean of {iters}: {wall:.1} µs wall, {cpu} on-CPU");
    }
    idx
}

/// CPU time of this thread (`CLOCK_THREAD_CPUTIME_ID`), to separate the cost of a call from
/// waiting for a core on a loaded machine.
fn thread_cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

fn bench(c: &mut Criterion) {
    let Some(base) = capture::capture_series() else {
        eprintln!("../shared/data/capture is missing: nothing to bench");
        return;
    };
    let series: Vec<Labels> = capture::scaled(&base, 1_000).collect();
    let mem = report("1M", &series);

    let mut g = c.benchmark_group("build_1m");
    g.sample_size(10);
    g.throughput(Throughput::Elements(series.len() as u64));
    g.bench_function("mem_index", |b| b.iter(|| black_box(build(&series))));
    g.finish();

    let mut w = BlockWriter::new();
    for l in &series {
        w.add_series(l, &[]).unwrap();
    }
    let t = Instant::now();
    let bytes = w.finish().unwrap();
    println!(
        "[1M] block index: {} bytes ({:.1} bytes/series), serialised in {:?}",
        bytes.len(),
        bytes.len() as f64 / series.len() as f64,
        t.elapsed()
    );
    let path = std::env::temp_dir().join(format!("telemetry-index-bench-{}", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    drop(bytes);
    let block = BlockIndex::open(&path).unwrap();

    let mut g = c.benchmark_group("postings_for_matchers_1m");
    for (name, ms) in queries() {
        assert_eq!(mem.postings_for_matchers(&ms), block.postings_for_matchers(&ms).unwrap());
        g.bench_with_input(BenchmarkId::new("mem", name), &ms, |b, ms| {
            b.iter(|| black_box(mem.postings_for_matchers(ms)))
        });
        g.bench_with_input(BenchmarkId::new("block", name), &ms, |b, ms| {
            b.iter(|| black_box(block.postings_for_matchers(ms).unwrap()))
        });
    }
    g.finish();

    // The same series with references handed out series-major (every target's copy of a
    // series in a row, as when many targets are scraped at once): selective lists are then
    // scattered over the whole reference space instead of clustered.
    let per = base.len();
    let scattered = MemIndex::new();
    scattered.add_batch(series.iter().enumerate().map(|(k, l)| (((k % per) * 1_000 + k / per) as u32, l))).unwrap();
    let mut g = c.benchmark_group("postings_for_matchers_1m_scattered_refs");
    for (name, ms) in queries() {
        assert_eq!(scattered.postings_for_matchers(&ms).len(), mem.postings_for_matchers(&ms).len());
        g.bench_with_input(BenchmarkId::new("mem", name), &ms, |b, ms| {
            b.iter(|| black_box(scattered.postings_for_matchers(ms)))
        });
    }
    g.finish();
    drop(scattered);

    let mut g = c.benchmark_group("listing_1m");
    g.sample_size(10);
    g.bench_function("label_values_instance_job_node", |b| {
        b.iter(|| black_box(mem.label_values("instance", &[Matcher::equal("job", "node")])))
    });
    g.bench_function("top_10_label_pairs", |b| b.iter(|| black_box(mem.top_label_pairs(10))));
    g.finish();
    drop(block);
    let _ = std::fs::remove_file(&path);
    drop(mem);
    drop(series);

    if std::env::var_os("TELEMETRY_INDEX_9M").is_some() {
        let series: Vec<Labels> = capture::scaled(&base, 10_000).collect();
        let mem = report("9M", &series);
        let mut g = c.benchmark_group("postings_for_matchers_9m");
        g.sample_size(10);
        for (name, ms) in queries() {
            g.bench_with_input(BenchmarkId::new("mem", name), &ms, |b, ms| {
                b.iter(|| black_box(mem.postings_for_matchers(ms)))
            });
        }
        g.finish();
    } else {
        println!("[9M] skipped: set TELEMETRY_INDEX_9M=1 to build and query the ~9M-series set");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
