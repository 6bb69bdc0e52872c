//! Bytes on disk per raw sample on the real capture, beside Prometheus and VictoriaMetrics.
//!
//! ```text
//! cargo run --release -p telemetry-store --example disk_usage -- [capture.om.gz] [--keep <dir>]
//! ```
//!
//! Decodes `../shared/data/capture/prometheus-node-1s.om.gz` (or the file given) with
//! telemetry-core's OpenMetrics decoder, appends every sample through a [`Db`] (head + WAL),
//! persists the head into blocks and compacts them (one block covering the hour), checks that
//! reading the store back gives every sample bit for bit, and prints bytes per sample: in the
//! chunk segments, with the index, and with `meta.json`. The capture's README gives the peers'
//! figures, measured on the same file: Prometheus 2.42 1.051 in chunks / 1.136 with the index;
//! VictoriaMetrics 1.79.5 0.264 data / 0.310 with its indexdb, over the 3,298,145 samples it
//! keeps (it drops the 98,697 NaN samples). Our figures are printed both over all samples and
//! over the non-NaN ones (the latter is the denominator VictoriaMetrics uses), though we keep
//! the NaNs.
//!
//! A second table writes the same data straight through `BlockWriter` with other chunk sizes
//! (the head cuts 120-sample chunks; blocks re-cut them). A third writes the capture's rollups
//! (1-minute and 1-hour buckets) with and without a quantile sketch per bucket.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use telemetry_core::format::text::{Entry, Flavor, TextDecoder};
use telemetry_core::{Labels, Queryable, SelectHints};
use telemetry_store::block::{Aggr, BlockCompaction, BlockWriter, BlockWriterOptions};
use telemetry_store::db::{Db, DbOptions};
use telemetry_store::rollup::{BucketSketches, Rollups};
use telemetry_store::{HeadOptions, SyncPolicy};

type Series = BTreeMap<Labels, (Vec<i64>, Vec<f64>)>;

fn load(path: &Path) -> Result<Series, Box<dyn std::error::Error>> {
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path)?).read_to_end(&mut text)?;
    let mut series = Series::new();
    let mut last: Option<(Labels, Vec<i64>, Vec<f64>)> = None;
    for e in TextDecoder::new(&text, Flavor::OpenMetrics) {
        let Entry::Sample(s) = e? else { continue };
        let labels = s.to_labels()?;
        let t = s.timestamp_ms.ok_or("sample without timestamp")?;
        match &mut last {
            Some((l, ts, vs)) if *l == labels => {
                ts.push(t);
                vs.push(s.value);
            }
            _ => {
                if let Some((l, ts, vs)) = last.take() {
                    series.insert(l, (ts, vs));
                }
                last = Some((labels, vec![t], vec![s.value]));
            }
        }
    }
    if let Some((l, ts, vs)) = last {
        series.insert(l, (ts, vs));
    }
    Ok(series)
}

fn dir_bytes(p: &Path, f: &mut dyn FnMut(&Path, u64)) -> std::io::Result<()> {
    for e in std::fs::read_dir(p)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            dir_bytes(&e.path(), f)?;
        } else {
            f(&e.path(), e.metadata()?.len());
        }
    }
    Ok(())
}

/// Bytes of chunk segments, index files and meta.json files under `blocks`.
fn sizes(blocks: &Path) -> std::io::Result<(u64, u64, u64)> {
    let (mut chunks, mut index, mut meta) = (0, 0, 0);
    dir_bytes(blocks, &mut |p, n| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "index" {
            index += n;
        } else if name == "meta.json" {
            meta += n;
        } else if p.parent().and_then(|d| d.file_name()).is_some_and(|d| d == "chunks") {
            chunks += n;
        }
    })?;
    Ok((chunks, index, meta))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let keep = args.iter().position(|a| a == "--keep").and_then(|i| args.get(i + 1)).map(PathBuf::from);
    let default = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/capture/prometheus-node-1s.om.gz");
    let path = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--keep"))
        .map_or(PathBuf::from(default), |(_, a)| PathBuf::from(a));
    let t0 = Instant::now();
    let series = load(&path)?;
    let samples: u64 = series.values().map(|s| s.0.len() as u64).sum();
    let nan = series.values().flat_map(|s| &s.1).filter(|v| v.is_nan()).count() as u64;
    println!(
        "{}: {} series, {samples} samples ({nan} NaN), decoded in {:.1?}",
        path.display(),
        series.len(),
        t0.elapsed()
    );

    let tmp;
    let dir = match &keep {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = std::env::temp_dir().join(format!("telemetry-disk-usage-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            tmp.clone()
        }
    };
    let mut head = HeadOptions::default();
    head.wal.sync = SyncPolicy::Never;
    let opts = DbOptions { head, ..Default::default() };
    let t0 = Instant::now();
    {
        let (db, _) = Db::open(&dir, opts.clone())?;
        let mut app = db.appender();
        for (l, (ts, vs)) in &series {
            for (&t, &v) in ts.iter().zip(vs) {
                app.append(l, t, v)?;
            }
            app.commit()?;
        }
        let ingest = t0.elapsed();
        db.persist_head(i64::MAX)?;
        let report = db.maintain(0)?;
        println!(
            "ingested through head + WAL in {ingest:.1?}; persisted and compacted in {:.1?} ({} compactions)",
            t0.elapsed() - ingest,
            report.compacted.len()
        );
        // Lossless: everything reads back bit for bit.
        let t_read = Instant::now();
        let q = db.querier(i64::MIN, i64::MAX)?;
        let mut n = 0u64;
        for s in q.select(&SelectHints::default(), &[])? {
            let mut s = s?;
            let b = s.samples.collect_all()?;
            let (ts, vs) = series.get(&s.labels).ok_or("unknown series read back")?;
            let same = b.timestamps == *ts
                && b.values.len() == vs.len()
                && b.values.iter().zip(vs).all(|(a, b)| a.to_bits() == b.to_bits());
            if !same {
                return Err(format!("series {} does not read back exactly", s.labels).into());
            }
            n += b.len() as u64;
        }
        if n != samples {
            return Err(format!("read back {n} samples of {samples}").into());
        }
        let read = t_read.elapsed();
        println!(
            "read back through Db (blocks, memory-mapped) and compared in {read:.1?} ({:.1}M samples/s)",
            n as f64 / read.as_secs_f64() / 1e6
        );
        let raw: Vec<_> = db.blocks().into_iter().filter(|b| b.resolution_ms == 0).collect();
        println!(
            "raw blocks: {} ({}); lossless: all {n} samples read back bit for bit",
            raw.len(),
            raw.iter()
                .map(|b| format!("{} series, {} chunks", b.stats.series, b.stats.chunks))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    // Only the raw blocks count (rollup tiers are not built for a one-hour capture at now = 0).
    let metas = telemetry_store::block::list_blocks(&dir.join("blocks"))?;
    let (mut chunks, mut index, mut meta) = (0, 0, 0);
    for m in metas.iter().filter(|m| m.resolution_ms == 0) {
        let (c, i, j) = sizes(&dir.join("blocks").join(&m.id))?;
        chunks += c;
        index += i;
        meta += j;
    }
    let kept = samples - nan;
    let per = |b: u64, n: u64| b as f64 / n as f64;
    println!();
    println!("| store | bytes/sample, chunks | with index | with index + meta.json | samples counted |");
    println!("|---|---|---|---|---|");
    println!(
        "| telemetry-store (all samples, NaN kept) | {:.3} | {:.3} | {:.3} | {samples} |",
        per(chunks, samples),
        per(chunks + index, samples),
        per(chunks + index + meta, samples)
    );
    println!(
        "| telemetry-store (over non-NaN samples, as VictoriaMetrics counts) | {:.3} | {:.3} | {:.3} | {kept} |",
        per(chunks, kept),
        per(chunks + index, kept),
        per(chunks + index + meta, kept)
    );
    println!("| Prometheus 2.42 (README) | 1.051 | 1.136 | | 3396842 |");
    println!("| VictoriaMetrics 1.79.5 (README; drops NaN) | 0.264 | 0.310 | | 3298145 |");
    println!("bytes: chunks {chunks}, index {index}, meta.json {meta}");

    // Chunk size sweep straight through BlockWriter.
    println!();
    println!("| chunk_max_samples | chunks | bytes/sample, chunks | with index |");
    println!("|---|---|---|---|");
    let sweep = std::env::temp_dir().join(format!("telemetry-disk-usage-sweep-{}", std::process::id()));
    for max in [120usize, 512, 2048, 4096] {
        let _ = std::fs::remove_dir_all(&sweep);
        let mut w = BlockWriter::with_options(
            &sweep,
            0,
            BlockWriterOptions { chunk_max_samples: max, ..BlockWriterOptions::default() },
        )?;
        for (l, (ts, vs)) in &series {
            w.add_series(l, &[(Aggr::Raw, ts, vs)])?;
        }
        let m = w.finish(0, i64::MAX, BlockCompaction::default())?;
        let (c, i, _) = sizes(&sweep.join(&m.id))?;
        println!("| {max} | {} | {:.3} | {:.3} |", m.stats.chunks, per(c, samples), per(c + i, samples));
    }
    let _ = std::fs::remove_dir_all(&sweep);

    // Rollup blocks of the capture with and without quantile sketches.
    println!();
    println!(
        "| rollup blocks of the capture | points | bytes, 5 aggregates | with sketches (alpha 0.01) | sketch bytes/point |"
    );
    println!("|---|---|---|---|---|");
    for (name, res) in [("1-minute", 60_000i64), ("1-hour", 3_600_000)] {
        let mut bytes = [0u64; 2];
        let mut points = 0u64;
        for (k, with_sketches) in [false, true].into_iter().enumerate() {
            let _ = std::fs::remove_dir_all(&sweep);
            let mut w = BlockWriter::new(&sweep, res)?;
            points = 0;
            for (l, (ts, vs)) in &series {
                let r = Rollups::from_raw(ts, vs, res, None)?;
                let sk = if with_sketches {
                    BucketSketches::from_raw(ts, vs, res, 0.01)?
                } else {
                    BucketSketches::default()
                };
                let t = &r.timestamps[..];
                let data = [
                    (Aggr::Count, t, &r.count[..]),
                    (Aggr::Sum, t, &r.sum[..]),
                    (Aggr::Min, t, &r.min[..]),
                    (Aggr::Max, t, &r.max[..]),
                    (Aggr::Counter, t, &r.counter[..]),
                ];
                w.add_series_with_sketches(l, &data, &sk.timestamps, &sk.sketches)?;
                points += r.len() as u64;
            }
            let m = w.finish(0, i64::MAX, BlockCompaction::default())?;
            let (c, i, _) = sizes(&sweep.join(&m.id))?;
            bytes[k] = c + i;
        }
        println!(
            "| {name} | {points} | {} | {} | {:.1} |",
            bytes[0],
            bytes[1],
            (bytes[1] - bytes[0]) as f64 / points as f64
        );
    }
    let _ = std::fs::remove_dir_all(&sweep);
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
