//! Lists the blocks of a store, as `promtool tsdb list` does.
//!
//! ```text
//! cargo run -p telemetry-store --example tsdb_list -- <db dir or blocks dir> [--human]
//! ```
//!
//! Columns: block id, min time, max time (exclusive), duration, resolution (raw or the rollup
//! interval), series, samples (rollup points for tiers), chunks, bytes on disk, compaction
//! level, and `ooo` for out-of-order blocks. `--human` prints times as UTC dates.

use std::path::PathBuf;

use telemetry_store::block::list_blocks;

fn duration(ms: i64) -> String {
    let (d, rem) = (ms / 86_400_000, ms % 86_400_000);
    let (h, rem) = (rem / 3_600_000, rem % 3_600_000);
    let (m, rem) = (rem / 60_000, rem % 60_000);
    let s = rem as f64 / 1000.0;
    let mut out = String::new();
    if d > 0 {
        out += &format!("{d}d");
    }
    if h > 0 {
        out += &format!("{h}h");
    }
    if m > 0 {
        out += &format!("{m}m");
    }
    if s > 0.0 || out.is_empty() {
        out += &format!("{s}s");
    }
    out
}

/// UTC date and time of a millisecond timestamp (proleptic Gregorian calendar).
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", sod / 3600, sod % 3600 / 60, sod % 60, ms.rem_euclid(1000))
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n}B") } else { format!("{v:.1}{}", UNITS[u]) }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let human = args.iter().any(|a| a == "--human" || a == "-r");
    let Some(dir) = args.iter().find(|a| !a.starts_with('-')) else {
        eprintln!("usage: tsdb_list <db dir or blocks dir> [--human]");
        std::process::exit(2);
    };
    let mut dir = PathBuf::from(dir);
    if dir.join("blocks").is_dir() {
        dir = dir.join("blocks");
    }
    let metas = list_blocks(&dir)?;
    let time = |t: i64| if human { utc(t) } else { t.to_string() };
    let rows: Vec<[String; 11]> = metas
        .iter()
        .map(|m| {
            [
                m.id.clone(),
                time(m.min_time),
                time(m.max_time),
                duration(m.max_time.saturating_sub(m.min_time)),
                if m.resolution_ms == 0 { "raw".into() } else { duration(m.resolution_ms) },
                m.stats.series.to_string(),
                m.stats.samples.to_string(),
                m.stats.chunks.to_string(),
                if human { bytes(m.stats.bytes) } else { m.stats.bytes.to_string() },
                m.compaction.level.to_string(),
                if m.out_of_order { "ooo".into() } else { String::new() },
            ]
        })
        .collect();
    let header = [
        "BLOCK ULID",
        "MIN TIME",
        "MAX TIME",
        "DURATION",
        "RESOLUTION",
        "NUM SERIES",
        "NUM SAMPLES",
        "NUM CHUNKS",
        "SIZE",
        "LEVEL",
        "",
    ];
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells.iter().zip(&width).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(header.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    let total: u64 = metas.iter().map(|m| m.stats.bytes).sum();
    let samples: u64 = metas.iter().filter(|m| m.resolution_ms == 0).map(|m| m.stats.samples).sum();
    println!("{} blocks, {} on disk, {samples} raw samples", metas.len(), bytes(total));
    Ok(())
}
