//! Codec research harness: bits/value, bits/sample and speed of every codec on real data.
//!
//! ```text
//! cargo run --release --example codec_bench -- [--data DIR]... [--codec NAME]... [--dataset SUBSTR]... [--csv] [--runs N]
//!     [--chunk-samples N]
//! ```
//!
//! Datasets (formats in `../shared/data/codec/README.md` and `../shared/data/capture/README.md`):
//! - `*.csv` one value per line (lines that do not parse as `f64`, such as `""`, are SKIPPED and
//!   counted); NAB files with a `timestamp,value` header keep their real timestamps; other files get
//!   synthetic timestamps 1 s apart (for the bits/sample column only). Each file is one block.
//! - `*.bin` raw little-endian `f64`, one block, synthetic timestamps.
//! - `*.om` / `*.om.gz` an OpenMetrics capture: encoded series by series, cut into chunks of
//!   `--chunk-samples` samples (default 120, as the head cuts them; 2048 is what the block writer
//!   re-cuts to; 0 keeps each series whole); reported as one dataset named after the file. A chunk
//!   over 65,535 samples (the XOR chunk's limit) is cut again for the Prometheus comparison.
//!
//! Columns: `bits_per_value` = size of the codec's values-only form × 8 / values;
//! `bits_per_sample` = size with timestamps × 8 / samples; `encode_mvalues_s` and
//! `decode_mvalues_s` = millions of values per second for the values-only form, median of
//! `--runs` runs on one thread, timed in the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`) so that
//! other processes on a shared machine do not count; `lossless` = both forms decode to the same bits. A block larger
//! than a codec accepts (the `store` format holds 65,535 samples) is cut into pieces first.
//! After the rows, one summary row per codec with dataset `(mean)`: the mean over the datasets of
//! each column (`values` is the total; `lossless` is `true` only if every dataset was).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use telemetry_compress::codec::{Codec, MAX_BLOCK_SAMPLES, all_codecs};
use telemetry_compress::{STORE_MAX_SAMPLES, StoreCodec, XorChunk};

const CSV_HEADER: &str =
    "codec,dataset,values,bits_per_value,bits_per_sample,encode_mvalues_s,decode_mvalues_s,lossless";
/// Samples per chunk when the capture is cut as the head cuts it (`--chunk-samples`).
const CHUNK: usize = 120;

#[derive(Parser, Debug)]
#[command(about = "Compare time-series codecs on real data (bits/value, speed, losslessness)")]
struct Args {
    /// Directory of datasets (repeatable). Default: ../shared/data/codec and ../shared/data/capture.
    #[arg(long = "data")]
    data: Vec<PathBuf>,
    /// Only these codecs (repeatable or comma-separated).
    #[arg(long = "codec", value_delimiter = ',')]
    codec: Vec<String>,
    /// Only datasets whose name contains this (repeatable or comma-separated).
    #[arg(long = "dataset", value_delimiter = ',')]
    dataset: Vec<String>,
    /// Print CSV with the header `codec,dataset,values,bits_per_value,bits_per_sample,encode_mvalues_s,decode_mvalues_s,lossless`.
    #[arg(long)]
    csv: bool,
    /// Timed runs per pair; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Samples per chunk when cutting a capture's series (120 as the head cuts them; the block
    /// writer re-cuts to 2048). 0 keeps every series whole.
    #[arg(long = "chunk-samples", default_value_t = CHUNK)]
    chunk_samples: usize,
}

struct Dataset {
    name: String,
    /// Blocks of (timestamps ms, values).
    blocks: Vec<(Vec<i64>, Vec<f64>)>,
    skipped: usize,
}

impl Dataset {
    fn values(&self) -> usize {
        self.blocks.iter().map(|b| b.1.len()).sum()
    }
}

fn synthetic_ts(n: usize) -> Vec<i64> {
    (0..n as i64).map(|i| 1_700_000_000_000 + i * 1000).collect()
}

fn parse_nab_time(s: &str) -> Option<i64> {
    // YYYY-MM-DD HH:MM:SS (UTC assumed)
    let (d, t) = s.trim().split_once(' ')?;
    let mut dp = d.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (dp.next()?.ok()?, dp.next()?.ok()?, dp.next()?.ok()?);
    let mut tp = t.split(':').map(|x| x.parse::<i64>());
    let (hh, mm, ss) = (tp.next()?.ok()?, tp.next()?.ok()?, tp.next()?.ok()?);
    // days from civil (H. Hinnant)
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000)
}

fn load_csv(path: &Path, name: String) -> std::io::Result<Dataset> {
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines().peekable();
    let nab = lines.peek().is_some_and(|l| l.trim() == "timestamp,value");
    let (mut ts, mut vs, mut skipped) = (Vec::new(), Vec::new(), 0);
    if nab {
        lines.next();
        for l in lines {
            match l.split_once(',').and_then(|(t, v)| Some((parse_nab_time(t)?, v.trim().parse::<f64>().ok()?))) {
                Some((t, v)) => {
                    ts.push(t);
                    vs.push(v);
                }
                None => skipped += 1,
            }
        }
    } else {
        for l in lines {
            match l.trim().parse::<f64>() {
                Ok(v) => vs.push(v),
                Err(_) => skipped += 1,
            }
        }
        ts = synthetic_ts(vs.len());
    }
    Ok(Dataset { name, blocks: vec![(ts, vs)], skipped })
}

fn load_bin(path: &Path, name: String) -> std::io::Result<Dataset> {
    let b = std::fs::read(path)?;
    let vs: Vec<f64> =
        b.chunks_exact(8).map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect();
    Ok(Dataset { name, blocks: vec![(synthetic_ts(vs.len()), vs)], skipped: b.len() % 8 })
}

/// Splits an OpenMetrics sample line into (series, value, timestamp ms).
fn parse_om_line(line: &str) -> Option<(&str, f64, i64)> {
    let end = if let Some(open) = line.find('{') {
        let mut in_q = false;
        let mut esc = false;
        let mut close = None;
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
    let series = &line[..end];
    let mut rest = line[end..].split_ascii_whitespace();
    let v: f64 = rest.next()?.parse().ok()?;
    let t = rest.next()?;
    let (secs, frac) = t.split_once('.').unwrap_or((t, "0"));
    let mut ms: i64 = secs.parse::<i64>().ok()? * 1000;
    let frac3 = format!("{frac:0<3}");
    ms += frac3[..3].parse::<i64>().ok()?;
    Some((series, v, ms))
}

fn load_om(path: &Path, name: String, chunk: usize) -> std::io::Result<Dataset> {
    let mut text = String::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(std::fs::File::open(path)?).read_to_string(&mut text)?;
    } else {
        std::fs::File::open(path)?.read_to_string(&mut text)?;
    }
    let mut blocks = Vec::new();
    let mut skipped = 0;
    let mut cur_series = String::new();
    let chunk = if chunk == 0 { usize::MAX } else { chunk };
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((series, v, t)) = parse_om_line(line) else {
            skipped += 1;
            continue;
        };
        if series != cur_series || ts.len() == chunk {
            if !ts.is_empty() {
                blocks.push((std::mem::take(&mut ts), std::mem::take(&mut vs)));
            }
            if series != cur_series {
                cur_series = series.to_string();
            }
        }
        ts.push(t);
        vs.push(v);
    }
    if !ts.is_empty() {
        blocks.push((ts, vs));
    }
    Ok(Dataset { name, blocks, skipped })
}

fn load_dir(dir: &Path, filter: &[String], chunk: usize) -> Vec<Dataset> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            eprintln!("skipping {}: {e}", dir.display());
            return Vec::new();
        }
    };
    files.sort();
    let mut out = Vec::new();
    for p in files {
        let Some(fname) = p.file_name().and_then(|f| f.to_str()).map(str::to_string) else { continue };
        if !filter.is_empty() && !filter.iter().any(|f| fname.contains(f.as_str())) {
            continue;
        }
        let loaded = if fname.ends_with(".csv") {
            load_csv(&p, fname.trim_end_matches(".csv").to_string())
        } else if fname.ends_with(".bin") {
            load_bin(&p, fname.trim_end_matches(".bin").to_string())
        } else if fname.ends_with(".om.gz") || fname.ends_with(".om") {
            load_om(&p, fname.clone(), chunk)
        } else {
            continue;
        };
        match loaded {
            Ok(d) if d.values() > 0 => out.push(d),
            Ok(_) => {}
            Err(e) => eprintln!("skipping {}: {e}", p.display()),
        }
    }
    out
}

/// CPU time consumed by the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

struct Row {
    codec: String,
    dataset: String,
    values: usize,
    bpv: f64,
    bps: f64,
    enc: f64,
    dec: f64,
    lossless: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

fn measure(codec: &dyn Codec, ds: &Dataset, runs: usize) -> Row {
    let limit = if codec.name() == StoreCodec.name() { STORE_MAX_SAMPLES } else { MAX_BLOCK_SAMPLES };
    let pieces: Vec<(&[i64], &[f64])> =
        ds.blocks.iter().flat_map(|(t, v)| t.chunks(limit).zip(v.chunks(limit))).collect();
    let n = ds.values();
    let mut lossless = true;
    // Sizes and losslessness.
    let mut vbytes = 0usize;
    let mut sbytes = 0usize;
    let mut encoded_values: Vec<Vec<u8>> = Vec::with_capacity(pieces.len());
    for (t, v) in &pieces {
        let mut out = Vec::new();
        match codec.encode_values(v, &mut out) {
            Ok(()) => {
                let mut back = Vec::new();
                let ok = codec.decode_values(&out, &mut back).is_ok()
                    && back.len() == v.len()
                    && back.iter().zip(v.iter()).all(|(a, b)| a.to_bits() == b.to_bits());
                lossless &= ok;
            }
            Err(_) => lossless = false,
        }
        vbytes += out.len();
        encoded_values.push(out);
        let mut out = Vec::new();
        match codec.encode(t, v, &mut out) {
            Ok(()) => {
                let (mut bt, mut bv) = (Vec::new(), Vec::new());
                let ok = codec.decode(&out, &mut bt, &mut bv).is_ok()
                    && bt.as_slice() == *t
                    && bv.len() == v.len()
                    && bv.iter().zip(v.iter()).all(|(a, b)| a.to_bits() == b.to_bits());
                lossless &= ok;
            }
            Err(_) => lossless = false,
        }
        sbytes += out.len();
    }
    // Speed (values-only form).
    let (mut enc, mut dec) = (Vec::new(), Vec::new());
    let mut out = Vec::with_capacity(vbytes + 64);
    let mut back: Vec<f64> = Vec::with_capacity(limit.min(n));
    for _ in 0..runs.max(1) {
        let t0 = thread_cpu();
        for (_, v) in &pieces {
            out.clear();
            let _ = codec.encode_values(v, &mut out);
        }
        enc.push(n as f64 / (thread_cpu() - t0).as_secs_f64() / 1e6);
        std::hint::black_box(&out);
        let t0 = thread_cpu();
        for e in &encoded_values {
            back.clear();
            let _ = codec.decode_values(e, &mut back);
        }
        dec.push(n as f64 / (thread_cpu() - t0).as_secs_f64() / 1e6);
        std::hint::black_box(&back);
    }
    Row {
        codec: codec.name().to_string(),
        dataset: ds.name.clone(),
        values: n,
        bpv: vbytes as f64 * 8.0 / n as f64,
        bps: sbytes as f64 * 8.0 / n as f64,
        enc: median(enc),
        dec: median(dec),
        lossless,
    }
}

fn print_row(r: &Row, csv: bool) {
    if csv {
        println!(
            "{},{},{},{:.3},{:.3},{:.1},{:.1},{}",
            r.codec, r.dataset, r.values, r.bpv, r.bps, r.enc, r.dec, r.lossless
        );
    } else {
        println!(
            "{:<9} {:<40} {:>9} {:>8.2} {:>8.2} {:>9.1} {:>9.1} {}",
            r.codec, r.dataset, r.values, r.bpv, r.bps, r.enc, r.dec, r.lossless
        );
    }
}

fn main() {
    let args = Args::parse();
    let root = env!("CARGO_MANIFEST_DIR");
    let dirs = if args.data.is_empty() {
        vec![
            PathBuf::from(format!("{root}/../shared/data/codec")),
            PathBuf::from(format!("{root}/../shared/data/capture")),
        ]
    } else {
        args.data.clone()
    };
    let codecs: Vec<Box<dyn Codec>> = all_codecs()
        .into_iter()
        .filter(|c| args.codec.is_empty() || args.codec.iter().any(|n| n == c.name()))
        .collect();
    if codecs.is_empty() {
        eprintln!("no codec matches {:?}", args.codec);
        std::process::exit(2);
    }
    let mut datasets = Vec::new();
    for d in &dirs {
        datasets.extend(load_dir(d, &args.dataset, args.chunk_samples));
    }
    if datasets.is_empty() {
        eprintln!("no dataset found in {dirs:?}");
        std::process::exit(2);
    }
    for d in &datasets {
        if d.skipped > 0 {
            eprintln!("{}: skipped {} lines that are not numbers", d.name, d.skipped);
        }
    }
    // Prometheus comparison for captures: XOR chunks exactly as Prometheus writes them, alone and
    // with the framing of a chunk segment file (length uvarint, encoding byte, CRC32C).
    for d in datasets.iter().filter(|d| d.name.contains(".om")) {
        let (mut data, mut framed) = (0usize, 0usize);
        let pieces = d.blocks.iter().flat_map(|(t, v)| t.chunks(STORE_MAX_SAMPLES).zip(v.chunks(STORE_MAX_SAMPLES)));
        for (t, v) in pieces {
            let mut c = XorChunk::new();
            for (&t, &v) in t.iter().zip(v) {
                if c.append(t, v).is_err() {
                    eprintln!("{}: chunk over 65535 samples", d.name);
                }
            }
            let len = c.size_bytes();
            data += len;
            framed += len + (64 - (len as u64).leading_zeros()).div_ceil(7).max(1) as usize + 1 + 4;
        }
        let n = d.values() as f64;
        eprintln!(
            "{}: Prometheus XOR chunks of {}: {:.4} bytes/sample of chunk data, {:.4} with segment framing",
            d.name,
            if args.chunk_samples == 0 { "whole series".to_string() } else { args.chunk_samples.to_string() },
            data as f64 / n,
            framed as f64 / n
        );
    }
    let pb = ProgressBar::new((codecs.len() * datasets.len()) as u64);
    pb.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut rows = Vec::new();
    for c in &codecs {
        for d in &datasets {
            pb.set_message(format!("{} on {}", c.name(), d.name));
            rows.push(measure(c.as_ref(), d, args.runs));
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    if args.csv {
        println!("{CSV_HEADER}");
    } else {
        println!(
            "{:<9} {:<40} {:>9} {:>8} {:>8} {:>9} {:>9} lossless",
            "codec", "dataset", "values", "bits/val", "bits/smp", "enc Mv/s", "dec Mv/s"
        );
    }
    for r in &rows {
        print_row(r, args.csv);
    }
    for c in &codecs {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.codec == c.name()).collect();
        let k = mine.len() as f64;
        let mean = |f: &dyn Fn(&Row) -> f64| mine.iter().map(|r| f(r)).sum::<f64>() / k;
        let summary = Row {
            codec: c.name().to_string(),
            dataset: "(mean)".to_string(),
            values: mine.iter().map(|r| r.values).sum(),
            bpv: mean(&|r| r.bpv),
            bps: mean(&|r| r.bps),
            enc: mean(&|r| r.enc),
            dec: mean(&|r| r.dec),
            lossless: mine.iter().all(|r| r.lossless),
        };
        print_row(&summary, args.csv);
    }
}
