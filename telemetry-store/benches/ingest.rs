//! Ingest throughput of the head on one core, with memory per series and per sample.
//!
//! Data sets:
//! - `capture`: the real capture (`../shared/data/capture/prometheus-node-1s.om.gz`, falling
//!   back to the bundled `testdata/excerpt-20m.om.gz`), every series replayed in time order
//!   (all samples of one scrape timestamp, then the next), labels passed as parsed pairs
//!   (`append_pairs`: hash + compare, no allocation for known series), commit every 1,000;
//!   and the same through `append_pairs_batch` (`head-pairs-batch`, one batch per commit);
//! - `synthetic-1M`: 1,000,000 series already in the head, one scrape round (one sample per
//!   series) per iteration, same path (`head-round`), and again by series reference
//!   (`head-round-append-ref`: `append_ref` with references kept from the first round, as
//!   Prometheus's scrape cache does; no hashing, no label comparison), and by label pairs in
//!   batches (`head-round-pairs-batch`: `append_pairs_batch`, one 1,000-sample batch per
//!   commit: the same hashing and comparison, with the memory loads of neighbouring samples
//!   overlapped).
//!
//! Variants: head without WAL; head with WAL synced every 100 ms; the same samples through
//! telemetry-compress alone (one XorChunk per series, cut at 120, series found by index:
//! the floor the head's overhead is measured against).
//!
//! Run: `cargo bench -p telemetry-store --bench ingest -- --warm-up-time 1 --measurement-time 3`
//! (set `STORE_BENCH_SKIP_SYNTHETIC=1` to run the capture only, `STORE_BENCH_SKIP_CAPTURE=1` for the
//! synthetic series only). Besides criterion's wall-time
//! figures, it prints throughput by the ingest thread's CPU time: on a loaded machine that is
//! the figure for "one core".

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::io::Read;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use telemetry_compress::XorChunk;
use telemetry_core::Labels;
use telemetry_store::{Head, HeadOptions, SeriesRef, SyncPolicy};

/// Sorted `(name, value)` label pairs.
type Pairs = Vec<(String, String)>;

struct Data {
    name: &'static str,
    /// Sorted label pairs per series.
    series: Vec<Vec<(String, String)>>,
    /// (series index, timestamp ms, value) in time order.
    events: Vec<(u32, i64, f64)>,
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some(c) => out.push(c),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses one sample line of the OpenMetrics text: `name{a="b",...} value ts_seconds`.
fn parse_line(line: &str) -> Option<(Pairs, i64, f64)> {
    let (name_end, rest) = match line.find(['{', ' ']) {
        Some(i) => (i, &line[i..]),
        None => return None,
    };
    let mut pairs = vec![("__name__".to_string(), line[..name_end].to_string())];
    let rest = if let Some(body) = rest.strip_prefix('{') {
        let b = body.as_bytes();
        let mut i = 0;
        loop {
            if b.get(i) == Some(&b'}') {
                i += 1;
                break;
            }
            let eq = i + body[i..].find('=')?;
            let name = body[i..eq].trim_start_matches(',').to_string();
            let mut j = eq + 2; // skip ="
            let start = j;
            while b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            pairs.push((name, unescape(&body[start..j])));
            i = j + 1;
            if b.get(i) == Some(&b',') {
                i += 1;
            }
        }
        &body[i..]
    } else {
        rest
    };
    let mut f = rest.split_whitespace();
    let v = match f.next()? {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        x => x.parse().ok()?,
    };
    let ts = f.next()?;
    let (s, ms) = ts.split_once('.').unwrap_or((ts, "0"));
    let ms = format!("{ms:0<3}");
    let t = s.parse::<i64>().ok()? * 1000 + ms[..3].parse::<i64>().ok()?;
    pairs.retain(|p| !p.1.is_empty());
    pairs.sort();
    Some((pairs, t, v))
}

fn load_capture() -> Data {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let full = format!("{root}/../shared/data/capture/prometheus-node-1s.om.gz");
    let (path, name) = if std::path::Path::new(&full).exists() {
        (full, "capture-1h")
    } else {
        (format!("{root}/testdata/excerpt-20m.om.gz"), "capture-excerpt")
    };
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("capture file"))
        .read_to_string(&mut text)
        .expect("gunzip");
    let mut series: Vec<Vec<(String, String)>> = vec![];
    let mut index = std::collections::HashMap::new();
    let mut events = vec![];
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let Some((pairs, t, v)) = parse_line(line) else { panic!("unparsed line: {line}") };
        let id = *index.entry(pairs.clone()).or_insert_with(|| {
            series.push(pairs);
            series.len() as u32 - 1
        });
        events.push((id, t, v));
    }
    events.sort_by_key(|e| (e.1, e.0));
    eprintln!("{name}: {} series, {} samples from {path}", series.len(), events.len());
    Data { name, series, events }
}

fn synthetic(n: usize) -> Data {
    let series = (0..n)
        .map(|i| {
            let mut p = vec![
                ("__name__".to_string(), format!("synthetic_metric_{}", i % 100)),
                ("instance".to_string(), format!("host-{}:9100", i / 1000)),
                ("job".to_string(), "node".to_string()),
                ("series".to_string(), format!("{}", i % 1000)),
            ];
            p.sort();
            p
        })
        .collect();
    Data { name: "synthetic-1M", series, events: vec![] }
}

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Nanoseconds this thread has run on a CPU (`/proc/thread-self/schedstat`, first field): on
/// a loaded 2-core machine wall time overstates cost, CPU time of the ingest thread does not.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runs `f` `runs` times; prints the median throughput by wall time and by thread CPU time.
fn cpu_report(label: &str, samples: u64, runs: usize, mut f: impl FnMut()) {
    let mut wall = vec![];
    let mut cpu = vec![];
    for _ in 0..runs {
        let (w0, c0) = (Instant::now(), thread_cpu_ns());
        f();
        wall.push(samples as f64 / w0.elapsed().as_secs_f64() / 1e6);
        cpu.push(samples as f64 / ((thread_cpu_ns() - c0) as f64 / 1e9) / 1e6);
    }
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    eprintln!(
        "{label}: median of {runs}: {:.2}M samples/s by wall time, {:.2}M samples/s by ingest-thread CPU time",
        wall[runs / 2],
        cpu[runs / 2]
    );
}

const COMMIT_EVERY: usize = 1_000;

fn ingest(head: &Head, d: &Data) {
    let mut app = head.appender();
    for (k, &(s, t, v)) in d.events.iter().enumerate() {
        let pairs = &d.series[s as usize];
        app.append_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())), t, v).expect("append");
        if k % COMMIT_EVERY == COMMIT_EVERY - 1 {
            app.commit().expect("commit");
        }
    }
    app.commit().expect("commit");
}

/// As [`ingest`], through `append_pairs_batch`: one batch per commit.
fn ingest_batch(head: &Head, d: &Data) {
    let mut app = head.appender();
    let mut results = Vec::with_capacity(COMMIT_EVERY);
    let mut batch = Vec::with_capacity(COMMIT_EVERY);
    for part in d.events.chunks(COMMIT_EVERY) {
        batch.clear();
        batch.extend(
            part.iter().map(|&(s, t, v)| (d.series[s as usize].iter().map(|(n, v)| (n.as_str(), v.as_str())), t, v)),
        );
        app.append_pairs_batch(&batch, &mut results);
        for r in &results {
            r.as_ref().expect("append");
        }
        app.commit().expect("commit");
    }
}

fn compress_alone(d: &Data) -> usize {
    let mut open: Vec<XorChunk> = (0..d.series.len()).map(|_| XorChunk::new()).collect();
    let mut full: Vec<Vec<Box<[u8]>>> = vec![Vec::new(); d.series.len()];
    for &(s, t, v) in &d.events {
        let c = &mut open[s as usize];
        if c.num_samples() >= 120 {
            full[s as usize].push(c.bytes().into());
            *c = XorChunk::new();
        }
        c.append(t, v).expect("append");
    }
    full.iter().map(|f| f.len()).sum()
}

fn wal_opts(dir: &std::path::Path) -> (Head, tempfile::TempDir) {
    let _ = dir;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut o = HeadOptions::default();
    o.wal.sync = SyncPolicy::Interval(Duration::from_millis(100));
    let (h, _) = Head::open(tmp.path(), o).expect("open");
    (h, tmp)
}

fn bench_capture(c: &mut Criterion) {
    if std::env::var("STORE_BENCH_SKIP_CAPTURE").is_ok() {
        return;
    }
    let d = load_capture();
    // Memory report (outside the timings).
    {
        let rss0 = rss_bytes();
        let head = Head::in_memory(HeadOptions::default());
        ingest(&head, &d);
        let st = head.stats();
        let rss1 = rss_bytes();
        eprintln!(
            "{}: head after ingest: {} series, {} samples, {} chunks, {:.1} MiB by the head's estimate = {:.2} B/sample, {:.0} B/series; RSS grew {:.1} MiB = {:.2} B/sample",
            d.name,
            st.series,
            st.samples_appended,
            st.chunks,
            st.bytes_in_memory as f64 / (1 << 20) as f64,
            st.bytes_in_memory as f64 / st.samples_appended as f64,
            st.bytes_in_memory as f64 / st.series as f64,
            (rss1.saturating_sub(rss0)) as f64 / (1 << 20) as f64,
            (rss1.saturating_sub(rss0)) as f64 / st.samples_appended as f64,
        );
    }
    let n = d.events.len() as u64;
    cpu_report(&format!("{} head no-wal", d.name), n, 5, || {
        let head = Head::in_memory(HeadOptions::default());
        ingest(&head, &d);
    });
    cpu_report(&format!("{} head wal-sync-100ms", d.name), n, 5, || {
        let (head, _tmp) = wal_opts(std::path::Path::new(""));
        ingest(&head, &d);
    });
    cpu_report(&format!("{} head append_pairs_batch no-wal", d.name), n, 5, || {
        let head = Head::in_memory(HeadOptions::default());
        ingest_batch(&head, &d);
    });
    cpu_report(&format!("{} head append_pairs_batch wal-sync-100ms", d.name), n, 5, || {
        let (head, _tmp) = wal_opts(std::path::Path::new(""));
        ingest_batch(&head, &d);
    });
    cpu_report(&format!("{} compress-alone", d.name), n, 5, || {
        compress_alone(&d);
    });
    let mut g = c.benchmark_group(format!("ingest/{}", d.name));
    g.throughput(Throughput::Elements(d.events.len() as u64));
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("head", "no-wal"), |b| {
        b.iter(|| {
            let head = Head::in_memory(HeadOptions::default());
            ingest(&head, &d);
            head
        })
    });
    g.bench_function(BenchmarkId::new("head", "wal-sync-100ms"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (head, tmp) = wal_opts(std::path::Path::new(""));
                let t0 = Instant::now();
                ingest(&head, &d);
                total += t0.elapsed();
                drop(head);
                drop(tmp);
            }
            total
        })
    });
    g.bench_function(BenchmarkId::new("head-pairs-batch", "no-wal"), |b| {
        b.iter(|| {
            let head = Head::in_memory(HeadOptions::default());
            ingest_batch(&head, &d);
            head
        })
    });
    g.bench_function(BenchmarkId::new("compress-alone", "xor-chunks"), |b| b.iter(|| compress_alone(&d)));
    g.finish();
}

fn bench_synthetic(c: &mut Criterion) {
    if std::env::var("STORE_BENCH_SKIP_SYNTHETIC").is_ok() {
        return;
    }
    let d = synthetic(1_000_000);
    let n = d.series.len();
    let round = |head: &Head, t: i64| {
        let mut app = head.appender();
        for (i, pairs) in d.series.iter().enumerate() {
            let v = ((t / 15_000) as f64) * 0.5 + (i % 7) as f64;
            app.append_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())), t, v).expect("append");
            if i % COMMIT_EVERY == COMMIT_EVERY - 1 {
                app.commit().expect("commit");
            }
        }
        app.commit().expect("commit");
    };
    // The same round through `append_pairs_batch`, one batch per commit.
    let round_batch = |head: &Head, t: i64| {
        let mut app = head.appender();
        let mut results = Vec::with_capacity(COMMIT_EVERY);
        let mut batch = Vec::with_capacity(COMMIT_EVERY);
        for (k, part) in d.series.chunks(COMMIT_EVERY).enumerate() {
            batch.clear();
            for (j, pairs) in part.iter().enumerate() {
                let i = k * COMMIT_EVERY + j;
                let v = ((t / 15_000) as f64) * 0.5 + (i % 7) as f64;
                batch.push((pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())), t, v));
            }
            app.append_pairs_batch(&batch, &mut results);
            for r in &results {
                r.as_ref().expect("append");
            }
            app.commit().expect("commit");
        }
    };
    let mut g = c.benchmark_group("ingest/synthetic-1M");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(10);
    for wal in [false, true] {
        let rss0 = rss_bytes();
        let (head, _tmp) = if wal {
            let (h, t) = wal_opts(std::path::Path::new(""));
            (h, Some(t))
        } else {
            (Head::in_memory(HeadOptions::default()), None)
        };
        let t0 = Instant::now();
        round(&head, 0);
        let created = t0.elapsed();
        // The references a scrape cache would keep (Prometheus's scrape loop appends known
        // series by reference): looked up once here, outside the timings.
        let refs: Vec<SeriesRef> = d
            .series
            .iter()
            .map(|p| {
                let l = Labels::from_pairs(p.iter().map(|(n, v)| (n.as_str(), v.as_str()))).expect("labels");
                head.series_ref(&l).expect("series exists")
            })
            .collect();
        let round_ref = |head: &Head, t: i64| {
            let mut app = head.appender();
            for (i, &r) in refs.iter().enumerate() {
                let v = ((t / 15_000) as f64) * 0.5 + (i % 7) as f64;
                app.append_ref(r, t, v).expect("append");
                if i % COMMIT_EVERY == COMMIT_EVERY - 1 {
                    app.commit().expect("commit");
                }
            }
            app.commit().expect("commit");
        };
        let st = head.stats();
        let rss1 = rss_bytes();
        eprintln!(
            "synthetic-1M (wal: {wal}): created {} series with their first sample in {:.2?} ({:.2}M series/s); head estimate {:.0} B/series, RSS grew {:.0} B/series",
            st.series,
            created,
            n as f64 / created.as_secs_f64() / 1e6,
            st.bytes_in_memory as f64 / st.series as f64,
            rss1.saturating_sub(rss0) as f64 / st.series as f64,
        );
        let mut t = 0i64;
        cpu_report(&format!("synthetic-1M head-round (wal: {wal})"), n as u64, 5, || {
            t += 15_000;
            round(&head, t)
        });
        g.bench_function(BenchmarkId::new("head-round", if wal { "wal-sync-100ms" } else { "no-wal" }), |b| {
            b.iter(|| {
                t += 15_000;
                round(&head, t)
            })
        });
        cpu_report(&format!("synthetic-1M head-round append_pairs_batch (wal: {wal})"), n as u64, 5, || {
            t += 15_000;
            round_batch(&head, t)
        });
        g.bench_function(
            BenchmarkId::new("head-round-pairs-batch", if wal { "wal-sync-100ms" } else { "no-wal" }),
            |b| {
                b.iter(|| {
                    t += 15_000;
                    round_batch(&head, t)
                })
            },
        );
        cpu_report(&format!("synthetic-1M head-round append_ref (wal: {wal})"), n as u64, 5, || {
            t += 15_000;
            round_ref(&head, t)
        });
        g.bench_function(
            BenchmarkId::new("head-round-append-ref", if wal { "wal-sync-100ms" } else { "no-wal" }),
            |b| {
                b.iter(|| {
                    t += 15_000;
                    round_ref(&head, t)
                })
            },
        );
        // Ten more rounds for the per-sample memory figure (a full 120-sample chunk per
        // series takes too long on a loaded 2-core machine; the capture gives the
        // full-chunk figure).
        let stop = t + 10 * 15_000;
        while t < stop {
            t += 15_000;
            round(&head, t);
        }
        let st2 = head.stats();
        let rss2 = rss_bytes();
        eprintln!(
            "synthetic-1M (wal: {wal}): at {} samples/series: head estimate {:.2} B/sample beyond the first, RSS {:.2} B/sample beyond the first",
            st2.samples_appended / st2.series,
            (st2.bytes_in_memory - st.bytes_in_memory) as f64 / (st2.samples_appended - st.samples_appended) as f64,
            rss2.saturating_sub(rss1) as f64 / (st2.samples_appended - st.samples_appended) as f64,
        );
    }
    // telemetry-compress alone, same round shape.
    let mut chunks: Vec<XorChunk> = (0..n).map(|_| XorChunk::new()).collect();
    let mut t = 0i64;
    let mut one_round = |t: i64| {
        for (i, c) in chunks.iter_mut().enumerate() {
            if c.num_samples() >= 120 {
                *c = XorChunk::new();
            }
            let v = ((t / 15_000) as f64) * 0.5 + (i % 7) as f64;
            c.append(t, v).expect("append");
        }
    };
    cpu_report("synthetic-1M compress-alone round", n as u64, 5, || {
        t += 15_000;
        one_round(t)
    });
    g.bench_function(BenchmarkId::new("compress-alone-round", "xor-chunks"), |b| {
        b.iter(|| {
            t += 15_000;
            one_round(t)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_capture, bench_synthetic);
criterion_main!(benches);
