//! Crash safety, for real: a child process (this test binary in child mode) appends batches and
//! prints `ACK <batch>` after each commit returns; the parent SIGKILLs it at random moments,
//! reopens the store and checks that every acknowledged batch is there bit for bit, and that
//! every batch present is complete (nothing unacknowledged is half there).
//!
//! Batch `b` holds one sample for each of `SERIES` series at timestamp `b * 1000 + i`, with
//! value bits derived from `(b, i)` (NaN payloads and signed zeros included). The child resumes
//! after the newest batch it finds, so a batch id is only ever written with the same contents.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use telemetry_core::{Labels, Queryable, SelectHints};
use telemetry_store::{Head, HeadOptions, SyncPolicy};

const SERIES: usize = 40;
const CHILD_ENV: &str = "TELEMETRY_STORE_CRASH_CHILD_DIR";

fn value_bits(b: u64, i: usize) -> u64 {
    let mut x = b.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 31;
    match x % 7 {
        0 => 0x7ff8_0000_0000_0000 | (x >> 20), // NaN with a payload
        1 => 0x8000_0000_0000_0000,             // -0.0
        2 => ((b % 100) as f64).to_bits(),      // compressible
        _ => x,
    }
}

fn series_labels(i: usize) -> Labels {
    Labels::from_pairs([("__name__", "crash_test"), ("series", &format!("{i:03}"))]).unwrap()
}

fn opts(policy: u64) -> HeadOptions {
    let mut o = HeadOptions { chunk_max_samples: 30, ..Default::default() };
    o.wal.segment_size = 32 << 10;
    o.wal.sync = match policy % 3 {
        0 => SyncPolicy::Always,
        1 => SyncPolicy::Interval(Duration::from_millis(5)),
        _ => SyncPolicy::Never,
    };
    o
}

/// Returns, per batch id present, how many of its samples are present with the right bits,
/// and panics on a sample with wrong bits.
fn read_back(head: &Head) -> std::collections::BTreeMap<u64, usize> {
    let mut present = std::collections::BTreeMap::new();
    let q = head.querier(i64::MIN, i64::MAX).unwrap();
    for s in q.select(&SelectHints::default(), &[]).unwrap() {
        let mut s = s.unwrap();
        let i: usize = s.labels.get("series").unwrap().parse().unwrap();
        let batch = s.samples.collect_all().unwrap();
        for smp in batch.iter() {
            let b = (smp.timestamp_ms / 1000) as u64;
            assert_eq!(smp.timestamp_ms, b as i64 * 1000 + i as i64, "timestamp of series {i}");
            assert_eq!(smp.value.to_bits(), value_bits(b, i), "value of batch {b} series {i}");
            *present.entry(b).or_insert(0) += 1;
        }
    }
    present
}

fn child(dir: &Path) {
    let policy: u64 = std::env::var("CRASH_POLICY").unwrap().parse().unwrap();
    let (head, _) = Head::open(dir, opts(policy)).unwrap();
    let next = read_back(&head).keys().next_back().map_or(0, |b| b + 1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(next ^ policy);
    let labels: Vec<Labels> = (0..SERIES).map(series_labels).collect();
    let mut app = head.appender();
    for b in next.. {
        for (i, l) in labels.iter().enumerate() {
            app.append(l, b as i64 * 1000 + i as i64, f64::from_bits(value_bits(b, i))).unwrap();
        }
        app.commit().unwrap();
        println!("ACK {b}");
        if rng.gen_ratio(1, 40) {
            // Exercise checkpointing under kills: keeps every sample (mint = MIN).
            head.truncate(i64::MIN).unwrap();
        }
    }
}

#[test]
#[ignore = "child mode of sigkill_never_loses_acknowledged_batches"]
fn crash_child() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
    }
}

#[test]
fn sigkill_never_loses_acknowledged_batches() {
    let kills: usize = std::env::var("CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut acked_max: Option<u64> = None;
    let mut total_acks = 0usize;
    let mut corruptions = 0usize;
    for round in 0..kills {
        let policy = round as u64 % 3;
        // Wait for the first acknowledgement (replay done), then kill at a random moment.
        let start = Instant::now();
        let policy_env = policy.to_string();
        let lines = common::run_and_kill(
            "crash_child",
            &[(CHILD_ENV, dir.path().as_os_str()), ("CRASH_POLICY", OsStr::new(&policy_env))],
            Stdio::null(),
            |l| l.starts_with("ACK "),
            Duration::from_micros(rng.gen_range(0..40_000)),
        );
        let acks_this_round: Vec<u64> =
            lines.iter().filter_map(|l| l.strip_prefix("ACK ")).map(|b| b.trim().parse().unwrap()).collect();
        assert!(!acks_this_round.is_empty(), "round {round}: child acknowledged nothing in {:?}", start.elapsed());
        total_acks += acks_this_round.len();
        let max = *acks_this_round.iter().max().unwrap();
        acked_max = Some(acked_max.map_or(max, |m: u64| m.max(max)));

        let (head, report) = Head::open(dir.path(), opts(policy)).unwrap();
        corruptions += usize::from(report.corruption.is_some());
        let present = read_back(&head);
        for b in 0..=acked_max.unwrap() {
            assert_eq!(present.get(&b), Some(&SERIES), "round {round}: acknowledged batch {b} incomplete or missing");
        }
        for (b, n) in &present {
            assert_eq!(*n, SERIES, "round {round}: batch {b} is half there ({n} of {SERIES} samples)");
        }
    }
    eprintln!(
        "{kills} SIGKILLs, {total_acks} acknowledged batches, last acknowledged {acked_max:?}, torn tails repaired on {corruptions} reopenings"
    );
}
