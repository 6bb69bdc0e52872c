//! Replaying a WAL of 10M samples: time and peak memory.
//!
//! Writes a WAL of `--series` × `--samples` samples (default 10,000 × 1,000 = 10M, 15 s
//! apart, commits of 1,000 samples, sync policy `never` to write fast), then re-runs itself in a
//! fresh process that only opens the head (replay) and prints the replay time and that
//! process's peak resident memory (`VmHWM`), so the writing phase does not count.
//!
//! `cargo run --release -p telemetry-store --example wal_replay [-- <series> <samples per series>]`

use std::time::Instant;

use telemetry_core::Labels;
use telemetry_store::{Head, HeadOptions, SyncPolicy};

fn status(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn opts() -> HeadOptions {
    let mut o = HeadOptions::default();
    o.wal.sync = SyncPolicy::Never;
    o
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--replay") {
        let dir = &args[2];
        let t0 = Instant::now();
        let (head, report) = Head::open(dir, opts())?;
        let took = t0.elapsed();
        let st = head.stats();
        println!(
            "replayed {} samples of {} series ({} records, {:.1} MiB of WAL in {} segments) in {:.2?} = {:.2}M samples/s; peak RSS {:.1} MiB; head estimate {:.1} MiB",
            st.samples_appended,
            st.series,
            report.records,
            report.bytes as f64 / (1 << 20) as f64,
            report.segments,
            took,
            st.samples_appended as f64 / took.as_secs_f64() / 1e6,
            status("VmHWM:") as f64 / (1 << 20) as f64,
            st.bytes_in_memory as f64 / (1 << 20) as f64,
        );
        return Ok(());
    }
    let series: usize = args.get(1).map_or(Ok(10_000), |s| s.parse())?;
    let per: usize = args.get(2).map_or(Ok(1_000), |s| s.parse())?;
    let tmp = std::env::temp_dir().join(format!("telemetry-store-replay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    {
        let (head, _) = Head::open(&tmp, opts())?;
        let labels: Vec<Labels> = (0..series)
            .map(|i| {
                Labels::from_pairs([
                    ("__name__", format!("metric_{}", i % 50)),
                    ("instance", format!("host-{}:9100", i / 50)),
                    ("job", "node".to_string()),
                ])
            })
            .collect::<Result<_, _>>()?;
        let t0 = Instant::now();
        let mut app = head.appender();
        let mut n = 0usize;
        for k in 0..per {
            let t = 1_700_000_000_000 + k as i64 * 15_000;
            for (i, l) in labels.iter().enumerate() {
                app.append(l, t, (k as f64) * 0.25 + (i % 13) as f64)?;
                n += 1;
                if n.is_multiple_of(1_000) {
                    app.commit()?;
                }
            }
        }
        app.commit()?;
        println!(
            "wrote {} samples of {series} series in {:.2?}; WAL {:.1} MiB",
            n,
            t0.elapsed(),
            head.stats().wal_bytes as f64 / (1 << 20) as f64
        );
    }
    let out = std::process::Command::new(std::env::current_exe()?).arg("--replay").arg(&tmp).output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}
