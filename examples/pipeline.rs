//! The whole pipeline on real data: the README's first command.
//!
//! ```text
//! cargo run --release --example pipeline                       # replay the bundled excerpt, print a report
//! cargo run --release --example pipeline -- --input ../shared/data/capture/prometheus-node-1s.om.gz
//! cargo run --release --example pipeline -- --serve [--input FILE] [--listen 127.0.0.1:9201]
//! cargo run --release --example pipeline -- --print-default-config > pipeline.toml
//! ```
//!
//! With no arguments it replays `testdata/excerpt-20m.om.gz` (103 series, 123,600 samples of a
//! real Prometheus + node_exporter capture around a CPU burn on both cores at 1795267190 to
//! 1795267280 Unix s) in event-time order through decode, cardinality limits, sampling, WAL +
//! head, acknowledgement, 1-minute aggregation and anomaly detection, into a temporary data
//! directory, and prints what it measured, the aggregates, the anomalies and PromQL answers.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use telemetry_core::{Labels, MetricType};
use telemetry_pipeline::{InputFormat, Pipeline, PipelineConfig, RollupRecord, read_capture};
use telemetry_query::Value;

const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/excerpt-20m.om.gz");

/// Replay a capture through the telemetry pipeline and report, or serve the HTTP API.
#[derive(Parser, Debug)]
#[command(name = "pipeline")]
struct Args {
    /// Capture to replay (OpenMetrics or Prometheus text with timestamps, optionally gzip).
    /// Default: the bundled excerpt (without --serve) or nothing (with --serve).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Input format: auto, openmetrics or prometheus.
    #[arg(long, default_value = "auto")]
    format: String,
    /// Configuration file (TOML); every field is optional.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (overrides the configuration; default: a temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address of the HTTP API with --serve (overrides the configuration).
    #[arg(long)]
    listen: Option<String>,
    /// Keep running with the HTTP API open after the replay.
    #[arg(long)]
    serve: bool,
    /// Print the documented default configuration and exit.
    #[arg(long)]
    print_default_config: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.print_default_config {
        print!("{}", telemetry_pipeline::DEFAULT_CONFIG_TOML);
        return Ok(());
    }
    let mut cfg = match &args.config {
        Some(p) => PipelineConfig::from_file(p)?,
        None => PipelineConfig::default(),
    };
    if let Some(d) = &args.data_dir {
        cfg.storage.data_dir = d.clone();
    }
    if let Some(l) = &args.listen {
        cfg.server.listen = l.clone();
    }
    let format = match args.format.as_str() {
        "auto" => InputFormat::Auto,
        "openmetrics" => InputFormat::OpenMetrics,
        "prometheus" => InputFormat::Prometheus,
        other => return Err(format!("--format must be auto, openmetrics or prometheus, not {other:?}").into()),
    };
    let input = match (&args.input, args.serve) {
        (Some(p), _) => Some(p.clone()),
        (None, false) => Some(PathBuf::from(BUNDLED)),
        (None, true) => None,
    };
    #[cfg(not(feature = "server"))]
    if args.serve {
        return Err("--serve needs the `server` feature (on by default)".into());
    }

    let pipeline = std::sync::Arc::new(Pipeline::start(cfg)?);
    let mut replay = None;
    if let Some(path) = &input {
        replay = Some(replay_file(&pipeline, path, format, args.quiet)?);
    }
    if args.serve {
        #[cfg(feature = "server")]
        {
            pipeline.barrier()?;
            telemetry_pipeline::server::serve_blocking(pipeline.clone(), |addr| {
                println!("listening on http://{addr}");
            })?;
            pipeline.shutdown()?;
        }
        return Ok(());
    }
    let t_shutdown = Instant::now();
    pipeline.shutdown()?;
    let shutdown_time = t_shutdown.elapsed();
    if let Some(r) = replay {
        report(&pipeline, &r, shutdown_time)?;
    }
    Ok(())
}

struct Replayed {
    path: PathBuf,
    families: usize,
    series: usize,
    samples: u64,
    bytes: u64,
    decode: Duration,
    ingest: Duration,
    summary: telemetry_pipeline::ReplaySummary,
}

fn replay_file(
    pipeline: &Pipeline,
    path: &std::path::Path,
    format: InputFormat,
    quiet: bool,
) -> Result<Replayed, Box<dyn std::error::Error>> {
    let bar = |len: u64, tmpl: &str| {
        let b = if quiet { ProgressBar::hidden() } else { ProgressBar::new(len) };
        b.set_style(
            ProgressStyle::with_template(tmpl).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> "),
        );
        b
    };
    let size = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.len();
    let pb = bar(size, "decode  [{bar:40}] {bytes}/{total_bytes} {elapsed_precise}");
    let capture = read_capture(path, format, &mut |done, _| pb.set_position(done))?;
    pb.finish_and_clear();
    let pb = bar(capture.samples, "ingest  [{bar:40}] {human_pos}/{human_len} samples {per_sec} {elapsed_precise}");
    let batch = pipeline.config().ingest.replay_batch_samples;
    let summary = capture.replay(pipeline, batch, &mut |n| pb.set_position(n))?;
    pb.finish_and_clear();
    pipeline.barrier()?;
    Ok(Replayed {
        path: path.to_path_buf(),
        families: capture.metadata.len(),
        series: capture.series_count(),
        samples: capture.samples,
        bytes: capture.bytes,
        decode: capture.decode_time,
        ingest: summary.elapsed,
        summary,
    })
}

fn vm_hwm_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn utc(ms: i64) -> String {
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let secs = ms.div_euclid(1000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z", sod / 3600, sod / 60 % 60, sod % 60)
}

fn short_labels(l: &Labels) -> String {
    let name = l.metric_name().unwrap_or("");
    let rest: Vec<String> = l
        .iter()
        .filter(|x| !matches!(&*x.name, "__name__" | "instance" | "job"))
        .map(|x| format!("{}=\"{}\"", x.name, x.value))
        .collect();
    if rest.is_empty() { name.to_string() } else { format!("{name}{{{}}}", rest.join(",")) }
}

fn fmt_v(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e7).contains(&a) {
        format!("{v:.3e}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    }
}

fn report(p: &Pipeline, r: &Replayed, shutdown: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let stats = p.stats();
    let s = &r.summary;
    let (t0, t1) = s.time_range.unwrap_or((0, 0));
    println!("telemetry pipeline: replay of {}", r.path.display());
    println!(
        "input     {} families, {} series, {} samples, {} to {} ({} min of event time), {:.1} MB of text",
        r.families,
        r.series,
        thousands(r.samples),
        utc(t0),
        utc(t1),
        (t1 - t0) / 60_000,
        r.bytes as f64 / 1e6
    );
    let a = &s.ack;
    println!(
        "ingest    {} samples acknowledged in {} batches: {} stored, {} duplicates, {} refused by limits, {} refused by storage, {} dropped by sampling{}",
        thousands(a.samples),
        s.batches,
        thousands(a.stored),
        a.duplicates,
        a.refused_limits,
        a.refused_storage,
        a.dropped_sampling,
        if s.failed_batches > 0 {
            format!(", {} batches FAILED: {:?}", s.failed_batches, s.errors)
        } else {
            String::new()
        }
    );
    let total = r.decode + r.ingest;
    println!(
        "rate      decode {:.2} s, event-time merge + ingest + acknowledge {:.2} s ({:.2}M samples/s); end to end {:.2} s = {:.2}M samples/s ({}); final flush {:.2} s",
        r.decode.as_secs_f64(),
        r.ingest.as_secs_f64(),
        a.samples as f64 / r.ingest.as_secs_f64() / 1e6,
        total.as_secs_f64(),
        a.samples as f64 / total.as_secs_f64() / 1e6,
        match p.config().storage.ack {
            telemetry_pipeline::AckMode::Synced => {
                format!("durable: fdatasync before every acknowledgement, {} group syncs", stats.wal_syncs)
            }
            telemetry_pipeline::AckMode::Written => "acknowledged after write(2), before fdatasync".to_string(),
        },
        shutdown.as_secs_f64(),
    );
    println!(
        "          reference (capture README, full 1-hour file on this machine class): VictoriaMetrics import 1.36M samples/s, promtool create-blocks 0.81M samples/s"
    );
    let h = &stats.storage.head;
    let stored = a.stored.max(1) as f64;
    println!(
        "storage   {} series in the head ({} anomaly_score series); WAL {:.2} MB = {:.2} bytes/sample; head in memory (chunks + index + labels) {:.2} MB = {:.2} bytes/sample",
        h.series,
        h.series.saturating_sub(r.series as u64),
        h.wal_bytes as f64 / 1e6,
        h.wal_bytes as f64 / stored,
        h.bytes_in_memory as f64 / 1e6,
        h.bytes_in_memory as f64 / stored,
    );
    // Persist the whole head into blocks now (the running pipeline does it once the head spans
    // 1.5 block ranges), so the report shows what the data costs on disk; the queries below
    // then read the blocks.
    let t_persist = Instant::now();
    let persisted = p.storage().persist_head(i64::MAX)?;
    let db = p.storage().stats();
    println!(
        "blocks    head persisted in {:.2} s: {} block(s), {} samples (anomaly scores included), {:.2} MB on disk (chunks, index, meta.json) = {:.3} bytes/sample; WAL after checkpoint {:.2} MB",
        t_persist.elapsed().as_secs_f64(),
        persisted.flushed.len(),
        thousands(db.block_samples),
        db.block_bytes as f64 / 1e6,
        db.block_bytes as f64 / db.block_samples.max(1) as f64,
        db.head.wal_bytes as f64 / 1e6,
    );
    if let Some(kib) = vm_hwm_kib() {
        println!("memory    peak resident (VmHWM) {:.1} MB", kib as f64 / 1024.0);
    }
    println!(
        "aggregate {} one-minute windows closed, {} per-series records ({} late samples); anomaly detection scored {} windows, flagged {}",
        stats.aggregation.windows_closed,
        stats.aggregation.records_emitted,
        stats.aggregation.late_samples,
        stats.anomaly_points_scored,
        stats.anomaly_points_flagged
    );

    let events = p.anomalies();
    // The longest CPU event (most anomalous windows), earliest first on ties.
    let burn = events
        .iter()
        .filter(|e| e.rule == "cpu")
        .max_by_key(|e| (e.points, std::cmp::Reverse(e.start_ms)))
        .or_else(|| events.first())
        .map(|e| (e.start_ms + e.end_ms.min(e.start_ms + 120_000)) / 2);
    print_rollups(p, burn);

    println!("\nanomalies ({} events)", events.len());
    let mut ev = events.clone();
    ev.sort_by(|a, b| a.start_ms.cmp(&b.start_ms).then(b.peak_score.total_cmp(&a.peak_score)));
    for e in ev.iter().take(20) {
        println!(
            "  {} .. {}  [{}] {}  peak {:.1}σ at {}: value {} expected {} (band {} .. {}), {} points",
            utc(e.start_ms),
            utc(e.end_ms),
            e.rule,
            short_labels(&e.labels),
            e.peak_score,
            utc(e.peak_ms),
            fmt_v(e.value),
            fmt_v(e.expected),
            fmt_v(e.lower),
            fmt_v(e.upper),
            e.points
        );
    }
    if ev.len() > 20 {
        println!("  ... {} more", ev.len() - 20);
    }

    println!("\nPromQL (evaluated at the end of the data, {}):", utc(t1));
    let mut queries: Vec<(String, i64)> = vec![
        ("sum by (mode) (rate(node_cpu_seconds_total[1m]))".into(), t1),
        ("node_load1".into(), t1),
        ("topk(3, sum by (device) (rate(node_disk_written_bytes_total[5m])))".into(), t1),
        (
            "histogram_quantile(0.99, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[5m])))".into(),
            t1,
        ),
        ("topk(3, max_over_time(anomaly_score[30m]))".into(), t1),
    ];
    if let Some(b) = burn {
        queries.insert(1, ("sum by (mode) (rate(node_cpu_seconds_total[1m]))".into(), b));
    }
    for (q, t) in queries {
        let at = if t == t1 { String::new() } else { format!("   @ {}", utc(t)) };
        println!("  > {q}{at}");
        match p.query_instant(&q, t) {
            Ok(res) => match res.value {
                Value::Vector(v) if v.is_empty() => println!("      (empty: no such series in this input)"),
                Value::Vector(mut v) => {
                    v.sort_by(|a, b| b.value.total_cmp(&a.value));
                    for s in v.iter().take(8) {
                        println!("      {:<60} {}", s.labels.to_string(), fmt_v(s.value));
                    }
                }
                Value::Scalar { value, .. } => println!("      {}", fmt_v(value)),
                other => println!("      {other:?}"),
            },
            Err(e) => println!("      error: {e}"),
        }
    }
    Ok(())
}

fn print_rollups(p: &Pipeline, focus: Option<i64>) {
    let md = p.metadata();
    let mut recs = p.rollups();
    recs.sort_by(|a, b| a.labels.cmp(&b.labels).then(a.start_ms.cmp(&b.start_ms)));
    let kind = |l: &Labels| {
        let name = l.metric_name().unwrap_or("");
        md.get(name).or_else(|| md.get(name.strip_suffix("_total").unwrap_or(name))).map(|m| m.metric_type)
    };
    // Windows around the first anomaly (or the last ones).
    let end = recs.iter().map(|r| r.end_ms).max().unwrap_or(0);
    let centre = focus.unwrap_or(end);
    let lo = centre - 3 * 60_000;
    let hi = centre + 3 * 60_000;
    let pick = |pred: &dyn Fn(&RollupRecord) -> bool| -> Vec<&RollupRecord> {
        recs.iter().filter(|r| pred(r) && r.start_ms >= lo && r.end_ms <= hi).collect()
    };
    println!(
        "\n1-minute aggregates around {} (count, min, mean, p50/p90/p99 from t-digest, max; counters: rate/s)",
        utc(centre)
    );
    let wanted = ["node_load1", "go_goroutines", "process_resident_memory_bytes", "node_memory_MemAvailable_bytes"];
    let mut shown = 0;
    for w in wanted {
        if shown >= 2 {
            break;
        }
        let rows = pick(&|r| r.labels.metric_name() == Some(w) && kind(&r.labels) != Some(MetricType::Counter));
        let first = rows.first().map(|r| r.labels.clone());
        let Some(series) = first else { continue };
        shown += 1;
        println!("  {}", short_labels(&series));
        for r in rows.iter().filter(|r| r.labels == series) {
            let v = &r.values;
            let q = v.tdigest.as_ref().or(v.ddsketch.as_ref());
            let qs = q.map(|q| q.iter().map(|x| fmt_v(x.value)).collect::<Vec<_>>().join("/")).unwrap_or_default();
            println!(
                "    {}  n={:<3} min {:<10} mean {:<10} p50/p90/p99 {:<28} max {}",
                &utc(r.start_ms)[11..16],
                v.samples,
                fmt_v(v.min.unwrap_or(f64::NAN)),
                fmt_v(v.mean.unwrap_or(f64::NAN)),
                qs,
                fmt_v(v.max.unwrap_or(f64::NAN))
            );
        }
    }
    let cpu = pick(&|r| {
        r.labels.metric_name() == Some("node_cpu_seconds_total")
            && matches!(r.labels.get("mode"), Some("user" | "idle"))
    });
    if !cpu.is_empty() {
        println!("  rate(node_cpu_seconds_total) per minute, by cpu and mode");
        let mut starts: Vec<i64> = cpu.iter().map(|r| r.start_ms).collect();
        starts.sort_unstable();
        starts.dedup();
        let mut keys: Vec<String> = cpu.iter().map(|r| short_labels(&r.labels)).collect();
        keys.sort();
        keys.dedup();
        print!("    {:<6}", "");
        for k in &keys {
            print!(" {:>22}", k.trim_start_matches("node_cpu_seconds_total"));
        }
        println!();
        for s in starts {
            print!("    {:<6}", &utc(s)[11..16]);
            for k in &keys {
                let v =
                    cpu.iter().find(|r| r.start_ms == s && short_labels(&r.labels) == *k).and_then(|r| r.values.rate);
                print!(" {:>22}", v.map(|x| format!("{x:.3}")).unwrap_or_default());
            }
            println!();
        }
    }
}
