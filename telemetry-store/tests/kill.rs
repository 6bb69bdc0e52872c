//! Crash safety of block writing, compaction, downsampling and deletion, for real: a child
//! process (this test binary in child mode) appends batches through a [`Db`] with tiny block
//! ranges, prints `ACK <batch>` after each commit returns, and runs maintenance (flush + WAL
//! checkpoint, compaction, rollups, retention of rollups) after every batch with a fake clock,
//! so that most of its time is spent persisting. The parent SIGKILLs it at random moments,
//! reopens the database and checks through the query interface that every acknowledged batch
//! is there exactly once, bit for bit, and that every batch present is complete.
//!
//! Batch `b` holds one sample for each of `SERIES` series at timestamp `b * 1000 + i`. Every
//! tenth batch is held back and written 40 batches later in the same commit as the current
//! batch, after its range was persisted, so that commit has an out-of-order block part and a
//! head part (each atomic; see `DbAppender::commit`). The child resumes after the newest
//! batch present.
//!
//! `KILL_ROUNDS` sets the number of kills (default 50).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use telemetry_core::{Labels, Queryable, SelectHints};
use telemetry_store::db::{Db, DbOptions};
use telemetry_store::tier::{Tier, TierConfig};
use telemetry_store::{HeadOptions, SyncPolicy};

const SERIES: usize = 12;
const CHILD_ENV: &str = "TELEMETRY_STORE_KILL_CHILD_DIR";
const DEFER: u64 = 40;

fn value_bits(b: u64, i: usize) -> u64 {
    let mut x = b.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 31;
    match x % 5 {
        0 => 0x7ff8_0000_0000_0000 | (x >> 20),
        1 => ((b % 50) as f64).to_bits(),
        _ => x,
    }
}

fn series_labels(i: usize) -> Labels {
    Labels::from_pairs([("__name__", "kill_test"), ("series", &format!("{i:03}"))]).unwrap()
}

fn opts() -> DbOptions {
    let mut head = HeadOptions { chunk_max_samples: 8, chunk_range_ms: 10_000, ..Default::default() };
    head.wal.segment_size = 16 << 10;
    head.wal.sync = SyncPolicy::Always;
    DbOptions {
        head,
        block_range_ms: 10_000,
        compaction_ranges: vec![10_000, 30_000, 120_000],
        tiers: TierConfig {
            raw_retention_ms: i64::MAX / 4,
            tiers: vec![Tier { resolution_ms: 5_000, retention_ms: 300_000, block_range_ms: 60_000 }],
            // Downsampling writes sketch chunks too, so kills land in them as well.
            sketch_alpha: Some(0.01),
        },
        ..Default::default()
    }
}

/// Per batch id present: how many of its samples are present (each checked bit for bit).
fn read_back(db: &Db) -> std::collections::BTreeMap<u64, usize> {
    let mut present = std::collections::BTreeMap::new();
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    for s in q.select(&SelectHints::default(), &[]).unwrap() {
        let mut s = s.unwrap();
        let i: usize = s.labels.get("series").unwrap().parse().unwrap();
        let batch = s.samples.collect_all().unwrap();
        assert!(batch.timestamps.windows(2).all(|w| w[0] < w[1]), "series {i}: timestamps not strictly increasing");
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
    let (db, _) = Db::open(dir, opts()).unwrap();
    let next = read_back(&db).keys().next_back().map_or(0, |b| b + 1);
    let labels: Vec<Labels> = (0..SERIES).map(series_labels).collect();
    let mut app = db.appender();
    let mut deferred = std::collections::VecDeque::new();
    for b in next.. {
        let mut write = vec![];
        if b % 10 == 3 {
            deferred.push_back(b);
        } else {
            write.push(b);
        }
        if deferred.front().is_some_and(|&d| d + DEFER <= b) {
            write.extend(deferred.pop_front());
        }
        // A deferred batch shares its commit with the current one: the commit has an
        // out-of-order block part and a head part.
        for &w in &write {
            for (i, l) in labels.iter().enumerate() {
                app.append(l, w as i64 * 1000 + i as i64, f64::from_bits(value_bits(w, i))).unwrap();
            }
        }
        app.commit().unwrap();
        for w in write {
            println!("ACK {w}");
        }
        db.maintain(b as i64 * 1000).unwrap();
    }
}

#[test]
#[ignore = "child mode of sigkill_during_flush_compaction_and_downsampling"]
fn kill_child() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
    }
}

fn leftovers(dir: &Path) -> (usize, usize) {
    let mut tmp = 0;
    let mut deleted = 0;
    if let Ok(rd) = std::fs::read_dir(dir.join("blocks")) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            tmp += usize::from(n.ends_with(".tmp"));
            deleted += usize::from(n.ends_with(".deleted"));
        }
    }
    (tmp, deleted)
}

#[test]
fn sigkill_during_flush_compaction_and_downsampling() {
    let kills: usize = std::env::var("KILL_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut acked = std::collections::BTreeSet::new();
    let (mut tmp_found, mut deleted_found) = (0, 0);
    for round in 0..kills {
        let start = Instant::now();
        let lines = common::run_and_kill(
            "kill_child",
            &[(CHILD_ENV, dir.path().as_os_str())],
            Stdio::null(),
            |l| l.starts_with("ACK "),
            Duration::from_micros(rng.gen_range(0..150_000)),
        );
        let acks: Vec<u64> =
            lines.iter().filter_map(|l| l.strip_prefix("ACK ")).map(|b| b.trim().parse().unwrap()).collect();
        assert!(!acks.is_empty(), "round {round}: child acknowledged nothing in {:?}", start.elapsed());
        acked.extend(acks);

        let (t, d) = leftovers(dir.path());
        tmp_found += t;
        deleted_found += d;
        let (db, _) = Db::open(dir.path(), opts()).unwrap();
        let present = read_back(&db);
        for b in &acked {
            assert_eq!(present.get(b), Some(&SERIES), "round {round}: acknowledged batch {b} incomplete or missing");
        }
        for (b, n) in &present {
            assert_eq!(*n, SERIES, "round {round}: batch {b} is half there ({n} of {SERIES} samples)");
        }
        assert_eq!(leftovers(dir.path()), (0, 0), "open removes leftovers");
    }
    let blocks = telemetry_store::block::list_blocks(&dir.path().join("blocks")).unwrap();
    let rollups = blocks.iter().filter(|b| b.resolution_ms > 0).count();
    let compacted = blocks.iter().filter(|b| b.compaction.level > 1).count();
    eprintln!(
        "{kills} SIGKILLs, {} acknowledged batches (last {:?}); killed mid block write {tmp_found} times, mid deletion {deleted_found} times; {} blocks at the end ({compacted} compacted, {rollups} rollups)",
        acked.len(),
        acked.last(),
        blocks.len()
    );
    assert!(compacted > 0 && rollups > 0, "compaction and downsampling ran");
}
