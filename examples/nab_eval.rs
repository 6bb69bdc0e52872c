//! Runs one detector configuration over every `<category>/<file>.csv` under a NAB-style data
//! directory and writes NAB result files (`timestamp,value,anomaly_score`, one row per input
//! row, same order) under the output directory, mirroring its layout.
//!
//! ```text
//! cargo run --release --example nab_eval -- --data ../shared/data/nab/data --out /tmp/nab-hw \
//!     [--detector holt-winters|hw-additive|hw-multiplicative|stl|ensemble]
//! python3 ../shared/tools/nab_score.py /tmp/nab-hw --nab ../shared/data/nab --per-file
//! ```
//!
//! Every file is processed on its own, strictly causally, with the same configuration; the
//! labels are never read. The anomaly score of a row is built from the detector's normalized
//! score `z` (residual over robust scale):
//!
//! 1. `--score likelihood` (default): the per-series anomaly likelihood of `|z|`
//!    ([`AnomalyLikelihood`], short-term mean of `--short` rows against long-term EWMA
//!    statistics with factor `--long-alpha`), as its log score in [0, 1];
//!    `--score raw`: `z / (z + threshold)`.
//! 2. [`PeakGate`]: the score passes only when it beats every score of the previous `--gate`
//!    rows, otherwise 0, so one anomaly raises one alarm.

use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::Parser;
use telemetry_anomaly::{AnomalyLikelihood, DetectorConfig, DetectorKind, PeakGate, build_detector};

#[derive(Parser, Debug)]
#[command(about = "Score a NAB-style data directory with a telemetry-anomaly detector")]
struct Args {
    /// Directory holding `<category>/<file>.csv` (columns timestamp,value).
    #[arg(long)]
    data: PathBuf,
    /// Output directory (created; mirrors the data layout).
    #[arg(long)]
    out: PathBuf,
    /// Detector: holt-winters, hw-additive, hw-multiplicative, stl or ensemble.
    #[arg(long, default_value = "holt-winters")]
    detector: String,
    /// Sensitivity in robust sigmas (only moves where events open; NAB sweeps its own threshold).
    #[arg(long, default_value_t = 3.0)]
    threshold: f64,
    /// Suppression window in minutes: anomalous rows closer than this to an open event extend it.
    #[arg(long, default_value_t = 5.0)]
    suppression_min: f64,
    /// Rows over which a score must be a new maximum to pass (0 = no gating).
    #[arg(long, default_value_t = 120)]
    gate: usize,
    /// Row score: `raw` (squashed z) or `likelihood` (per-series anomaly likelihood of z).
    #[arg(long, default_value = "likelihood")]
    score: String,
    /// Samples before the model is fitted.
    #[arg(long)]
    warmup: Option<usize>,
    /// Steps between parameter refits.
    #[arg(long)]
    refit_every: Option<usize>,
    /// EWMA factor of the likelihood's long-term statistics.
    #[arg(long, default_value_t = 0.005)]
    long_alpha: f64,
    /// Recent rows averaged by the likelihood.
    #[arg(long, default_value_t = 2)]
    short: usize,
    /// Rows before the likelihood scores (its statistics settle meanwhile).
    #[arg(long, default_value_t = 100)]
    likelihood_warmup: u32,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant, "chrono-Compatible
/// Low-Level Date Algorithms", days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DD HH:MM:SS[.fff]` (no time zone) into ms since the epoch.
fn parse_ts(s: &str) -> Option<i64> {
    let s = s.trim();
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi) = (num(11..13)?, num(14..16)?);
    let sec: f64 = s.get(17..)?.parse().ok()?;
    Some(((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60_000 + (sec * 1000.0).round() as i64)
}

fn csv_files(data: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for cat in fs::read_dir(data)? {
        let cat = cat?.path();
        if !cat.is_dir() {
            continue;
        }
        for f in fs::read_dir(&cat)? {
            let f = f?.path();
            if f.extension().is_some_and(|e| e == "csv") {
                out.push(f);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn run_file(args: &Args, kind: DetectorKind, input: &Path, output: &Path) -> Result<usize, Box<dyn std::error::Error>> {
    let mut cfg = DetectorConfig {
        threshold: args.threshold,
        suppression_ms: (args.suppression_min * 60_000.0) as i64,
        ..DetectorConfig::default()
    };
    if let Some(w) = args.warmup {
        cfg.warmup = w;
    }
    if let Some(r) = args.refit_every {
        cfg.refit_every = r;
    }
    let mut lik = AnomalyLikelihood::with_short_window(args.long_alpha, args.likelihood_warmup, args.short);
    let mut det = build_detector(kind, cfg)?;
    let reader = BufReader::new(fs::File::open(input)?);
    let mut w = BufWriter::new(fs::File::create(output)?);
    writeln!(w, "timestamp,value,anomaly_score")?;
    let mut rows = 0usize;
    let mut gate = PeakGate::new(args.gate);
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if i == 0 || line.trim().is_empty() {
            continue;
        }
        let (ts_text, v_text) =
            line.split_once(',').ok_or_else(|| format!("{}:{}: no comma", input.display(), i + 1))?;
        let ts =
            parse_ts(ts_text).ok_or_else(|| format!("{}:{}: bad timestamp {ts_text:?}", input.display(), i + 1))?;
        let value: f64 =
            v_text.trim().parse().map_err(|e| format!("{}:{}: bad value {v_text:?}: {e}", input.display(), i + 1))?;
        let raw = match det.update(ts, value) {
            Ok(s) => {
                let z = s.normalized.abs();
                let l = lik.update(z);
                if args.score == "raw" { z / (z + args.threshold) } else { l.log_score }
            }
            // A rejected sample (NaN, out of order) still gets its row; it counts as unsurprising.
            Err(_) => {
                lik.update(0.0);
                0.0
            }
        };
        let score = gate.update(raw);
        writeln!(w, "{ts_text},{v_text},{score:.9}")?;
        rows += 1;
    }
    w.flush()?;
    Ok(rows)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let kind = DetectorKind::from_name(&args.detector)?;
    let files = csv_files(&args.data)?;
    if files.is_empty() {
        return Err(format!("no <category>/<file>.csv under {}", args.data.display()).into());
    }
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    let started = std::time::Instant::now();
    let mut total = 0usize;
    for f in &files {
        let rel = f.strip_prefix(&args.data)?;
        let out = args.out.join(rel);
        if let Some(dir) = out.parent() {
            fs::create_dir_all(dir)?;
        }
        total += run_file(&args, kind, f, &out)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "{}: {} files, {} rows scored in {:.2?} -> {}",
        kind.name(),
        files.len(),
        total,
        started.elapsed(),
        args.out.display()
    );
    Ok(())
}
