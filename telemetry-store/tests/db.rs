//! The database: flushing the head into blocks, WAL checkpoints, out-of-order blocks,
//! compaction, and reads merged over head and blocks, checked against a model.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::copy_dir;
use telemetry_core::{Labels, Matcher, Queryable, SelectHints};
use telemetry_store::db::{Db, DbOptions};
use telemetry_store::{HeadOptions, SyncPolicy};

const H: i64 = 3_600_000;

fn labels(i: usize) -> Labels {
    Labels::from_pairs([("__name__", "db_test"), ("i", &format!("{i:02}"))]).unwrap()
}

fn opts() -> DbOptions {
    let mut head = HeadOptions::default();
    head.wal.sync = SyncPolicy::Never;
    DbOptions { head, ..Default::default() }
}

type Model = BTreeMap<Labels, BTreeMap<i64, u64>>;

fn read_all(db: &Db, mint: i64, maxt: i64, matchers: &[Matcher]) -> Model {
    let q = db.querier(mint, maxt).unwrap();
    let mut out = Model::new();
    let mut prev: Option<Labels> = None;
    for s in q.select(&SelectHints::default(), matchers).unwrap() {
        let mut s = s.unwrap();
        assert!(prev.as_ref().is_none_or(|p| *p < s.labels), "series sorted and unique");
        prev = Some(s.labels.clone());
        let b = s.samples.collect_all().unwrap();
        assert!(b.timestamps.windows(2).all(|w| w[0] < w[1]), "strictly increasing timestamps");
        out.insert(s.labels, b.timestamps.iter().zip(&b.values).map(|(t, v)| (*t, v.to_bits())).collect());
    }
    out
}

fn value(i: usize, t: i64) -> f64 {
    if t % 7 == 0 { f64::from_bits(0x7ff8_0000_0000_0000 | t as u64) } else { (t / 1000) as f64 * 0.5 + i as f64 }
}

/// Appends samples every `step` ms in `[from, to)` for `n` series, into `db` and `model`.
fn fill(db: &Db, model: &mut Model, n: usize, from: i64, to: i64, step: i64) {
    let mut app = db.appender();
    let mut t = from;
    while t < to {
        for i in 0..n {
            app.append(&labels(i), t, value(i, t)).unwrap();
            model.entry(labels(i)).or_default().insert(t, value(i, t).to_bits());
        }
        if app.len() > 5000 {
            app.commit().unwrap();
        }
        t += step;
    }
    app.commit().unwrap();
}

fn clip(model: &Model, mint: i64, maxt: i64) -> Model {
    model
        .iter()
        .map(|(l, s)| (l.clone(), s.range(mint..=maxt).map(|(a, b)| (*a, *b)).collect::<BTreeMap<_, _>>()))
        .filter(|(_, s)| !s.is_empty())
        .collect()
}

#[test]
fn flush_checkpoint_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    {
        let (db, _) = Db::open(dir.path(), opts()).unwrap();
        fill(&db, &mut model, 5, 0, 5 * H, 10_000);
        let wal_before = db.stats().head.wal_bytes;
        let r = db.maintain(5 * H).unwrap();
        // Head spanned 5 h: [0, 2h) is persisted (then 3h remain = 1.5 ranges: stop).
        assert_eq!(r.flushed.len(), 1, "{r:?}");
        assert_eq!((r.flushed[0].min_time, r.flushed[0].max_time), (0, 2 * H));
        assert_eq!(r.flushed[0].stats.samples, 5 * 720);
        assert_eq!(r.checkpoints.len(), 1);
        assert!(db.stats().head.wal_bytes < wal_before);
        assert_eq!(db.stats().persisted_until, Some(2 * H));
        assert_eq!(read_all(&db, i64::MIN, i64::MAX, &[]), model);
        for (a, b) in [(0, 2 * H - 1), (H, 3 * H), (2 * H, 2 * H), (2 * H - 1, 2 * H), (4 * H, 10 * H)] {
            assert_eq!(read_all(&db, a, b, &[]), clip(&model, a, b), "range {a}..={b}");
        }
        let sel = read_all(&db, 0, 5 * H, &[Matcher::equal("i", "03")]);
        assert_eq!(sel.len(), 1);
        let q = db.querier(0, 5 * H).unwrap();
        assert_eq!(q.label_values("i", &[]).unwrap().len(), 5);
        assert!(q.label_names(&[]).unwrap().contains(&"i".to_string()));
    }
    let (db, _) = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(read_all(&db, i64::MIN, i64::MAX, &[]), model);
    assert_eq!(db.blocks().len(), 1);
}

#[test]
fn crash_between_block_rename_and_checkpoint_serves_each_sample_once() {
    let dir = tempfile::tempdir().unwrap();
    let saved = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    {
        let (db, _) = Db::open(dir.path(), opts()).unwrap();
        fill(&db, &mut model, 3, 0, 5 * H, 15_000);
        copy_dir(&dir.path().join("wal"), &saved.path().join("wal"));
        assert_eq!(db.maintain(0).unwrap().flushed.len(), 1);
    }
    // The WAL as it was before the checkpoint, beside the new block.
    std::fs::remove_dir_all(dir.path().join("wal")).unwrap();
    copy_dir(&saved.path().join("wal"), &dir.path().join("wal"));
    let (db, _) = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(read_all(&db, i64::MIN, i64::MAX, &[]), model);
    // And the next flush does not write the persisted range again.
    let r = db.maintain(0).unwrap();
    assert!(r.flushed.iter().all(|m| m.min_time >= 2 * H), "{r:?}");
    assert_eq!(read_all(&db, i64::MIN, i64::MAX, &[]), model);
}

#[test]
fn out_of_order_samples_for_persisted_ranges_go_to_blocks_and_compact() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let (db, _) = Db::open(dir.path(), opts()).unwrap();
    fill(&db, &mut model, 3, 0, 5 * H, 60_000);
    db.maintain(0).unwrap();
    // Older than the persisted boundary (2 h), off the 60 s grid, one duplicate of a persisted
    // sample, and one new series.
    let mut app = db.appender();
    for (i, t) in [(0, 30_000), (1, H + 1), (0, 60_000), (7, 90 * 60_000 + 5)] {
        app.append(&labels(i), t, value(i, t)).unwrap();
        model.entry(labels(i)).or_default().insert(t, value(i, t).to_bits());
    }
    // A conflicting value for a persisted sample is refused; the same value is ignored.
    app.append(&labels(1), 120_000, 42.0).unwrap();
    app.append(&labels(1), 180_000, value(1, 180_000)).unwrap();
    let s = app.commit().unwrap();
    assert_eq!(s.out_of_order_block, 3);
    assert_eq!(s.out_of_order_duplicates_ignored, 2);
    assert_eq!(s.out_of_order_refused, 1);
    assert_eq!(db.stats().out_of_order_block_refused, 1);
    assert_eq!(db.blocks().iter().filter(|b| b.out_of_order).count(), 1);
    assert_eq!(read_all(&db, i64::MIN, i64::MAX, &[]), model);
    // Compaction folds the out-of-order block into the overlapping one.
    let r = db.maintain(0).unwrap();
    assert_eq!(r.compacted.len(), 1, "{r:?}");
    let blocks = db.blocks();
    assert_eq!(blocks.len(), 1);
    assert!(!blocks[0].out_of_order);
    assert_eq!(blocks[0].compaction.level, 2);
    assert_eq!(blocks[0].stats.samples, 3 * 120 + 3);
    // Retrying the whole commit writes nothing new.
    let mut app = db.appender();
    for (i, t) in [(0, 30_000), (1, H + 1), (7, 90 * 60_000 + 5)] {
        app.append(&labels(i), t, value(i, t)).unwrap();
    }
    let s = app.commit().unwrap();
    assert_eq!((s.out_of_order_block, s.out_of_order_duplicates_ignored), (0, 3));
    assert_eq!(db.blocks().len(), 1);
    assert_eq!(read_all(&db, i64::MIN, i64::MAX, &[]), model);
    drop(db);
    let (db, _) = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(read_all(&db, i64::MIN, i64::MAX, &[]), model);
}

#[test]
fn batches_of_label_pairs_route_late_samples_to_out_of_order_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let (db, _) = Db::open(dir.path(), opts()).unwrap();
    fill(&db, &mut model, 3, 0, 5 * H, 60_000);
    db.maintain(0).unwrap();
    // In order (after the 2 h boundary) and late samples mixed, a new series among both, and
    // one sample with invalid labels.
    let is: Vec<String> = (0..8).map(|i| format!("{i:02}")).collect();
    let sample = |i: usize, t: i64| ([("__name__", "db_test"), ("i", is[i].as_str())], t, value(i, t));
    let batch = vec![
        sample(0, 5 * H + 1_000),
        sample(1, 30_000),
        sample(7, 5 * H + 2_000),
        sample(7, 90_000),
        ([("__name__", "db_test"), ("", "x")], 5 * H, 1.0),
        sample(2, 5 * H + 1_000),
    ];
    let mut app = db.appender();
    let mut results = Vec::new();
    app.append_pairs_batch(&batch, &mut results);
    assert_eq!(results.len(), batch.len());
    let head_ref = |k: usize| results[k].as_ref().unwrap().is_some();
    assert!(head_ref(0) && head_ref(2) && head_ref(5), "{results:?}");
    assert_eq!((results[1].as_ref().unwrap(), results[3].as_ref().unwrap()), (&None, &None), "late: routed");
    assert!(results[4].is_err(), "{:?}", results[4]);
    for (k, (_, t, v)) in batch.iter().enumerate() {
        if k != 4 {
            let i = [0, 1, 7, 7, 0, 2][k];
            model.entry(labels(i)).or_default().insert(*t, v.to_bits());
        }
    }
    let s = app.commit().unwrap();
    assert_eq!((s.out_of_order_block, s.out_of_order_refused), (2, 0), "{s:?}");
    assert_eq!(read_all(&db, i64::MIN, i64::MAX, &[]), model);
    // A batch with no late sample goes to the head whole.
    let batch: Vec<_> = (0..8).map(|i| sample(i, 5 * H + 3_000)).collect();
    app.append_pairs_batch(&batch, &mut results);
    assert!(results.iter().all(|r| matches!(r, Ok(Some(_)))), "{results:?}");
    for (i, (_, t, v)) in batch.iter().enumerate() {
        model.entry(labels(i)).or_default().insert(*t, v.to_bits());
    }
    assert_eq!(app.commit().unwrap().out_of_order_block, 0);
    assert_eq!(read_all(&db, i64::MIN, i64::MAX, &[]), model);
    drop(app);
    drop(db);
    let (db, _) = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(read_all(&db, i64::MIN, i64::MAX, &[]), model);
}

#[test]
fn compaction_into_larger_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let (db, _) = Db::open(dir.path(), opts()).unwrap();
    for hour in 0..30 {
        fill(&db, &mut model, 4, hour * H, (hour + 1) * H, 120_000);
        db.maintain(0).unwrap();
    }
    let blocks: Vec<_> = db.blocks().into_iter().filter(|b| b.resolution_ms == 0).collect();
    // 0-24h is one level-3 block (4 x 6h, each 3 x 2h); then 24-26h as 2h blocks... up to the
    // boundary of 28h: [24h, 26h), [26h, 28h) not yet a complete 6h window.
    let ranges: Vec<(i64, i64, u32)> =
        blocks.iter().map(|b| (b.min_time / H, b.max_time / H, b.compaction.level)).collect();
    assert_eq!(ranges[0], (0, 24, 3), "{ranges:?}");
    assert_eq!(blocks[0].compaction.sources.len(), 12);
    assert!(ranges[1..].iter().all(|r| r.2 == 1 && r.1 - r.0 == 2), "{ranges:?}");
    assert_eq!(read_all(&db, i64::MIN, i64::MAX, &[]), model);
    for (a, b) in [(5 * H, 7 * H), (23 * H, 25 * H + 1), (0, 0)] {
        assert_eq!(read_all(&db, a, b, &[]), clip(&model, a, b));
    }
    drop(db);
    let (db, _) = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(read_all(&db, i64::MIN, i64::MAX, &[]), model);
}

#[test]
fn reads_run_concurrently_with_appends_and_maintenance() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = Db::open(dir.path(), opts()).unwrap();
    let db = Arc::new(db);
    let done = Arc::new(std::sync::atomic::AtomicI64::new(-1));
    let reader = {
        let (db, done) = (db.clone(), done.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            loop {
                let acked = done.load(std::sync::atomic::Ordering::SeqCst);
                if acked == i64::MAX {
                    break reads;
                }
                let m = read_all(&db, i64::MIN, i64::MAX, &[Matcher::equal("i", "00")]);
                let got = m.get(&labels(0)).map_or(0, |s| s.len() as i64);
                // Every sample acknowledged before the read started is there, each once.
                assert!(got > acked, "read {got} samples, {acked} acknowledged before");
                reads += 1;
            }
        })
    };
    let mut model = Model::new();
    for k in 0..40 {
        fill(&db, &mut model, 2, k * 900_000, (k + 1) * 900_000, 30_000);
        done.store((k + 1) * 30 - 1, std::sync::atomic::Ordering::SeqCst);
        db.maintain(0).unwrap();
    }
    done.store(i64::MAX, std::sync::atomic::Ordering::SeqCst);
    let reads = reader.join().unwrap();
    assert!(reads > 0);
    assert!(db.blocks().len() > 1);
    assert_eq!(read_all(&db, i64::MIN, i64::MAX, &[]), model);
}

#[test]
fn background_thread_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = Db::open(dir.path(), opts()).unwrap();
    let db = Arc::new(db);
    let mut model = Model::new();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let start = now / H * H - 4 * H;
    fill(&db, &mut model, 2, start, start + 4 * H, 60_000);
    let handle = db.start_background(std::time::Duration::from_millis(5));
    let start = std::time::Instant::now();
    while db.blocks().is_empty() && start.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    handle.stop();
    assert_eq!(db.blocks().iter().filter(|b| b.resolution_ms == 0).count(), 1);
    assert_eq!(read_all(&db, i64::MIN, i64::MAX, &[]), model);
}

#[test]
fn queries_with_a_coarse_step_read_the_rollup_tier() {
    use telemetry_store::tier::{Tier, TierConfig};
    const D: i64 = 24 * H;
    const R: i64 = 600_000;
    let dir = tempfile::tempdir().unwrap();
    let o = DbOptions {
        tiers: TierConfig {
            raw_retention_ms: 1000 * D,
            tiers: vec![Tier { resolution_ms: R, retention_ms: 1000 * D, block_range_ms: D }],
            ..Default::default()
        },
        ..opts()
    };
    let (db, _) = Db::open(dir.path(), o).unwrap();
    let mut model = Model::new();
    for hour in 0..60 {
        fill(&db, &mut model, 2, hour * H, (hour + 1) * H, 60_000);
        db.maintain((hour + 1) * H).unwrap();
    }
    let rollups: Vec<_> = db.blocks().into_iter().filter(|b| b.resolution_ms == R).collect();
    assert!(!rollups.is_empty(), "{:?}", db.blocks());
    // No hints: raw, exactly.
    assert_eq!(read_all(&db, 0, 60 * H, &[]), model);
    // A 1-hour step with max_over_time: the 10-minute tier where it has blocks.
    let hints = SelectHints {
        start_ms: 0,
        end_ms: 60 * H,
        step_ms: H,
        range_ms: H,
        func: Some("max_over_time".into()),
        ..Default::default()
    };
    let q = db.querier(0, 60 * H).unwrap();
    let covered_until = rollups.iter().map(|b| b.max_time).max().unwrap();
    for s in q.select(&hints, &[Matcher::equal("i", "01")]).unwrap() {
        let mut s = s.unwrap();
        let b = s.samples.collect_all().unwrap();
        let raw = &model[&s.labels];
        let mut rolled = 0;
        for (t, v) in b.timestamps.iter().zip(&b.values) {
            if *t < covered_until - R {
                // A rollup point: on the grid, the max of its bucket (t - R, t].
                assert_eq!(t % R, 0, "rollup point off the grid at {t}");
                let want = raw
                    .range(t - R + 1..=*t)
                    .map(|(_, b)| f64::from_bits(*b))
                    .filter(|x| !x.is_nan())
                    .fold(f64::NEG_INFINITY, f64::max);
                if want.is_finite() {
                    assert_eq!(*v, want, "max of bucket ending {t}");
                }
                rolled += 1;
            }
        }
        assert!(rolled > 100, "read {rolled} rollup points");
        // The raw part after the rollups is read raw.
        let last_raw: Vec<i64> = b.timestamps.iter().copied().filter(|t| *t >= covered_until).collect();
        let want: Vec<i64> = raw.range(covered_until..).map(|(t, _)| *t).collect();
        assert_eq!(last_raw, want);
    }
}

#[test]
fn late_samples_racing_flushes_are_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts();
    o.block_range_ms = 600_000;
    o.compaction_ranges = vec![600_000, 1_800_000];
    o.head.chunk_range_ms = 600_000;
    o.head.out_of_order_window_ms = 1_800_000;
    let (db, _) = Db::open(dir.path(), o).unwrap();
    let db = Arc::new(db);
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let maint = {
        let (db, stop, done) = (db.clone(), stop.clone(), done.clone());
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                db.maintain(0).unwrap();
                done.fetch_add(1, Relaxed);
            }
            done.load(Relaxed)
        })
    };
    let mut model = Model::new();
    let mut app = db.appender();
    let mut seen = 0;
    for k in 0..3000i64 {
        if k % 250 == 0 {
            // Let maintenance finish a round before going on, so that rounds interleave
            // with the appends however fast either side runs.
            while done.load(Relaxed) == seen {
                std::thread::yield_now();
            }
            seen = done.load(Relaxed);
        }
        let t = k * 2_000;
        let mut batch = vec![(0, t, value(0, t)), (1, t + 1, value(1, t + 1))];
        if k % 7 == 0 && t > 1_200_000 {
            // Twenty minutes late, odd timestamp: inside the head's window (30 minutes), but
            // maybe behind the persisted boundary by the time it commits.
            batch.push((0, t - 1_200_000 + 7, 1.5));
        }
        for &(i, t, v) in &batch {
            app.append(&labels(i), t, v).unwrap();
        }
        let s = app.commit().unwrap();
        assert_eq!(s.head.refused + s.out_of_order_refused, 0);
        for (i, t, v) in batch {
            model.entry(labels(i)).or_default().insert(t, v.to_bits());
        }
    }
    stop.store(true, Relaxed);
    let rounds = maint.join().unwrap();
    assert!(rounds >= 12, "{rounds} maintenance rounds");
    assert_eq!(read_all(&db, i64::MIN, i64::MAX, &[]), model);
    db.maintain(0).unwrap();
    assert_eq!(read_all(&db, i64::MIN, i64::MAX, &[]), model);
    let st = db.stats();
    eprintln!(
        "{rounds} maintenance rounds, {} blocks, {} samples in out-of-order blocks",
        st.blocks, st.out_of_order_block_samples
    );
    assert!(st.blocks > 1);
}

#[test]
fn inconsistent_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for o in [
        DbOptions { block_range_ms: 0, ..opts() },
        DbOptions { compaction_ranges: vec![2 * H, 5 * H], ..opts() },
        DbOptions { tiers: telemetry_store::tier::TierConfig { raw_retention_ms: -1, ..Default::default() }, ..opts() },
    ] {
        let e = Db::open(dir.path(), o).unwrap_err();
        assert!(matches!(e, telemetry_store::DbError::Config(_)), "{e}");
    }
}
