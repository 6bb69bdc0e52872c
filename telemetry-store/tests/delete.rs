//! Deletion of series ranges ([`Db::delete`], [`Db::clean_tombstones`]): read-time hiding in
//! head, raw, out-of-order and rollup blocks, physical removal by head flush, compaction and
//! cleaning, a property test against a `BTreeMap` model, simulated crashes at every step of
//! deleting and cleaning, and SIGKILLs of a process that deletes, cleans, flushes and compacts.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{Model, copy_dir, read_model, scratch, small_db_opts};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use telemetry_core::{Labels, Matcher, Queryable, SelectHints};
use telemetry_store::block::Aggr;
use telemetry_store::db::{Db, DbOptions};
use telemetry_store::tombstone::TOMBSTONES_FILE;
use telemetry_store::{DbError, SyncPolicy};

fn labels(job: &str, i: usize) -> Labels {
    Labels::from_pairs([("__name__", "del"), ("job", job), ("s", &i.to_string())]).unwrap()
}

fn eq(labels: &Labels) -> Vec<Matcher> {
    labels.iter().map(|l| Matcher::equal(&*l.name, &*l.value)).collect()
}

fn model_delete(model: &mut Model, matchers: &[Matcher], a: i64, b: i64) {
    for (l, m) in model.iter_mut() {
        if telemetry_core::matches_all(matchers, l) {
            m.retain(|t, _| *t < a || *t > b);
        }
    }
    model.retain(|_, m| !m.is_empty());
}

/// Samples of `labels` in `[a, b]` physically stored in the raw blocks (no tombstone applied).
fn physical_raw(db: &Db, labels: &Labels, a: i64, b: i64) -> usize {
    let mut n = 0;
    for blk in db.open_blocks().iter().filter(|b| b.meta().resolution_ms == 0) {
        for (l, batch) in blk.select(&eq(labels), a, b, Aggr::Raw).unwrap() {
            assert_eq!(&l, labels);
            n += batch.len();
        }
    }
    n
}

fn append_all(db: &Db, model: &mut Model, series: &[Labels], ts: impl Iterator<Item = i64> + Clone) {
    let mut app = db.appender();
    for t in ts {
        for (i, l) in series.iter().enumerate() {
            let v = (t as f64) / 1000.0 + i as f64;
            app.append(l, t, v).unwrap();
            model.entry(l.clone()).or_default().insert(t, v.to_bits());
        }
    }
    let s = app.commit().unwrap();
    assert_eq!(s.head.refused + s.out_of_order_refused, 0);
}

#[test]
fn delete_hides_at_once_and_flush_compaction_clean_and_reopen_keep_it_deleted() {
    let dir = scratch();
    let o = small_db_opts(SyncPolicy::Never);
    let series = vec![labels("x", 0), labels("x", 1), labels("y", 0)];
    let mut model = Model::new();
    let (mut db, _) = Db::open(dir.path(), o.clone()).unwrap();
    append_all(&db, &mut model, &series, (0..60_000).step_by(1000));
    db.maintain(60_000).unwrap();
    assert!(db.stats().persisted_until.is_some(), "part of the data is in blocks");

    // Delete x/0 over a range spanning blocks and (later) the head.
    let sel = vec![Matcher::equal("job", "x"), Matcher::equal("s", "0")];
    let rep = db.delete(&sel, 5_000, 52_500).unwrap();
    assert_eq!(rep.series, 1);
    model_delete(&mut model, &sel, 5_000, 52_500);
    assert_eq!(read_model(&db), model, "hidden at once");
    assert!(physical_raw(&db, &series[0], 5_000, 52_500) > 0, "still in the blocks until cleaned");
    assert_eq!(db.stats().tombstoned_series, 1);

    // The series keeps receiving samples: those after the range stay, and so do late ones
    // before it (into an out-of-order block).
    append_all(&db, &mut model, &series[..1], (60_000..90_000).step_by(1000));
    let mut app = db.appender();
    app.append(&series[0], 4_500, 7.0).unwrap();
    assert_eq!(app.commit().unwrap().out_of_order_block, 1);
    model.get_mut(&series[0]).unwrap().insert(4_500, 7f64.to_bits());
    assert_eq!(read_model(&db), model);

    drop(db);
    db = Db::open(dir.path(), o.clone()).unwrap().0;
    assert_eq!(read_model(&db), model, "durable");

    // Flush the head (drops the deleted samples it holds) and compact (drops them from blocks).
    db.persist_head(i64::MAX).unwrap();
    let r = db.maintain(200_000).unwrap();
    assert!(!r.compacted.is_empty());
    assert_eq!(read_model(&db), model);
    assert_eq!(physical_raw(&db, &series[0], 5_000, 52_500), 0, "flush and compaction left the deleted samples out");
    assert!(physical_raw(&db, &series[1], 5_000, 52_500) > 0);
    // Rollup blocks written before the deletion still hold the deleted range: the
    // tombstone stays through maintenance.
    assert_eq!(r.tombstones_dropped, 0, "{r:?}");
    assert_eq!(db.stats().tombstoned_series, 1);

    let c = db.clean_tombstones().unwrap();
    assert_eq!((c.dropped, c.remaining_series), (1, 0), "{c:?}");
    assert_eq!(physical_raw(&db, &series[0], 5_000, 52_500), 0, "physically gone");
    assert_eq!(read_model(&db), model);
    assert!(db.tombstones().is_empty());
    // Nothing left to do the second time.
    assert_eq!(db.clean_tombstones().unwrap(), Default::default());

    drop(db);
    let (db, _) = Db::open(dir.path(), o).unwrap();
    assert_eq!(read_model(&db), model);
    assert!(db.tombstones().is_empty());
    assert_eq!(db.stats().tombstoned_series, 0);
}

#[test]
fn tombstones_stay_while_the_head_holds_deleted_data_and_flush_drops_it() {
    let dir = scratch();
    let series = vec![labels("x", 0)];
    let mut model = Model::new();
    let (db, _) = Db::open(dir.path(), small_db_opts(SyncPolicy::Never)).unwrap();
    append_all(&db, &mut model, &series, (0..12_000).step_by(500));
    // Everything is in the head: cleaning rewrites nothing and keeps the tombstone.
    db.delete(&eq(&series[0]), 2_000, 3_000).unwrap();
    model_delete(&mut model, &eq(&series[0]), 2_000, 3_000);
    let c = db.clean_tombstones().unwrap();
    assert_eq!((c.rewritten.len(), c.dropped, c.remaining_series), (0, 0, 1));
    assert_eq!(read_model(&db), model);
    // Persisting writes the block without the deleted samples; then the tombstone can go,
    // and maintenance drops it.
    db.persist_head(10_000).unwrap();
    assert_eq!(physical_raw(&db, &series[0], 2_000, 3_000), 0);
    assert_eq!(read_model(&db), model);
    let r = db.maintain(10_000).unwrap();
    assert_eq!(r.tombstones_dropped, 1, "{r:?}");
    assert!(db.tombstones().is_empty());
    assert_eq!(read_model(&db), model);
    let c = db.clean_tombstones().unwrap();
    assert_eq!((c.rewritten.len(), c.dropped, c.remaining_series), (0, 0, 0));
    drop(db);
    let (db, _) = Db::open(dir.path(), small_db_opts(SyncPolicy::Never)).unwrap();
    assert!(db.tombstones().is_empty(), "the dropped tombstone stays dropped");
    assert_eq!(read_model(&db), model);
}

#[test]
fn invalid_requests_and_damaged_logs_are_typed_errors() {
    let dir = scratch();
    let (db, _) = Db::open(dir.path(), small_db_opts(SyncPolicy::Never)).unwrap();
    assert!(matches!(db.delete(&[], 0, 10), Err(DbError::Config(_))));
    assert!(matches!(db.delete(&[Matcher::equal("a", "b")], 10, 0), Err(DbError::Config(_))));
    // No series matches: nothing recorded.
    assert_eq!(db.delete(&[Matcher::equal("a", "b")], 0, 10).unwrap().series, 0);
    let mut model = Model::new();
    append_all(&db, &mut model, &[labels("x", 0)], [1, 2, 3].into_iter());
    db.delete(&[Matcher::equal("job", "x")], 1, 1).unwrap();
    db.delete(&[Matcher::equal("job", "x")], 3, 3).unwrap();
    drop(db);
    let path = dir.path().join(TOMBSTONES_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[20] ^= 0x40; // inside the first of two records
    std::fs::write(&path, &bytes).unwrap();
    let err = Db::open(dir.path(), small_db_opts(SyncPolicy::Never)).unwrap_err().to_string();
    assert!(err.contains(TOMBSTONES_FILE) && err.contains("offset 8"), "{err}");
}

#[test]
fn deleted_ranges_do_not_reappear_through_rollups() {
    let dir = scratch();
    let mut o = small_db_opts(SyncPolicy::Never);
    o.tiers.sketch_alpha = Some(0.01);
    let series = vec![labels("x", 0), labels("x", 1)];
    let mut model = Model::new();
    let (db, _) = Db::open(dir.path(), o.clone()).unwrap();
    append_all(&db, &mut model, &series, (0..120_000).step_by(1000));
    db.persist_head(i64::MAX).unwrap();
    let now = 10 * 86_400_000;
    db.maintain(now).unwrap();
    assert!(db.blocks().iter().any(|b| b.resolution_ms == 5_000), "rollups built");
    let hints = SelectHints {
        start_ms: 0,
        end_ms: 119_999,
        step_ms: 5_000,
        func: Some("max_over_time".into()),
        ..Default::default()
    };
    // quantile_over_time(0, …[20s]) at a 10 s step from the sketches: the window's min (the
    // values are the seconds), within 1 %.
    let quantile_hints = SelectHints {
        end_ms: 115_000,
        step_ms: 10_000,
        range_ms: 20_000,
        func: Some("quantile_over_time".into()),
        quantile: Some(0.0),
        ..hints.clone()
    };
    let rollup_read_with = |db: &Db, hints: &SelectHints| -> BTreeMap<Labels, Vec<(i64, f64)>> {
        let q = db.querier(0, 119_999).unwrap();
        let mut out = BTreeMap::new();
        for s in q.select(hints, &[]).unwrap() {
            let mut s = s.unwrap();
            out.insert(s.labels, s.samples.collect_all().unwrap().iter().map(|x| (x.timestamp_ms, x.value)).collect());
        }
        out
    };
    let rollup_read = |db: &Db| rollup_read_with(db, &hints);
    let before = rollup_read(&db);
    let quantiles = rollup_read_with(&db, &quantile_hints);
    let q65 = quantiles[&series[0]].iter().find(|(t, _)| *t == 65_000).map(|(_, v)| *v);
    assert!(q65.is_some_and(|v| (v - 46.0).abs() <= 0.46), "{q65:?}");
    assert!(before[&series[0]].contains(&(45_000, 45.0)), "max of (40 s, 45 s] read from the rollup tier");

    db.delete(&eq(&series[0]), 38_000, 51_000).unwrap();
    model_delete(&mut model, &eq(&series[0]), 38_000, 51_000);
    assert_eq!(read_model(&db), model);
    let check = |db: &Db| {
        let after = rollup_read(db);
        let s0 = &after[&series[0]];
        // Points whose bucket (p - 5 s, p] meets [38 s, 51 s] are gone: 40 to 55 s (55 s holds
        // the deleted 51 s); 35 and 60 s stay.
        assert!(s0.iter().all(|(t, _)| !(36_000..60_000).contains(t)), "{s0:?}");
        assert!(s0.contains(&(35_000, 35.0)) && s0.contains(&(60_000, 60.0)), "{s0:?}");
        assert_eq!(after[&series[1]], before[&series[1]], "other series untouched");
        // No quantile comes from a deleted value (38 to 51): while the tombstone stands, every
        // window meeting it is dropped; once the blocks are cleaned, the windows read what is
        // left.
        let q0 = &rollup_read_with(db, &quantile_hints)[&series[0]];
        assert!(q0.iter().all(|(_, v)| !(37.6..=51.6).contains(v)), "{q0:?}");
        assert!(q0.iter().any(|(t, _)| *t == 35_000) && q0.iter().any(|(t, _)| *t == 75_000), "{q0:?}");
    };
    check(&db);

    let c = db.clean_tombstones().unwrap();
    assert!(c.rewritten.iter().any(|(_, m)| m.resolution_ms == 5_000), "rollup blocks rewritten: {c:?}");
    assert_eq!(c.remaining_series, 0);
    for blk in db.open_blocks().iter().filter(|b| b.meta().resolution_ms == 5_000) {
        for k in [Aggr::Count, Aggr::Sum, Aggr::Min, Aggr::Max, Aggr::Counter] {
            assert!(blk.select(&eq(&series[0]), 38_000, 59_999, k).unwrap().is_empty(), "{k:?} points remain");
        }
        // The sketches went with the other kinds, and the kept ones still line up with them.
        if let Some(r) = blk.find_series(&series[0]).unwrap() {
            let (_, crefs) = blk.series(r).unwrap();
            let (mut ts, mut sk) = (Vec::new(), Vec::new());
            blk.read_sketches(&crefs, i64::MIN, i64::MAX, &mut ts, &mut sk).unwrap();
            let counts = blk.select(&eq(&series[0]), i64::MIN, i64::MAX, Aggr::Count).unwrap();
            assert_eq!(ts, counts[0].1.timestamps);
            assert!(sk.iter().zip(&counts[0].1.values).all(|(s, c)| s.count() as f64 == *c));
        }
    }
    check(&db);
    // Tier maintenance does not rebuild the cleaned rollups, and reopening keeps them.
    let r = db.maintain(now).unwrap();
    assert!(r.tiers.written.is_empty(), "{:?}", r.tiers);
    check(&db);
    drop(db);
    let (db, _) = Db::open(dir.path(), o).unwrap();
    check(&db);
    assert_eq!(read_model(&db), model);
}

/// Data in blocks (several, some compacted, one out-of-order) and the head, then a deletion
/// over all of them.
fn crash_fixture(dir: &Path) -> (Model, Model) {
    let series = vec![labels("x", 0), labels("x", 1), labels("y", 0)];
    let mut model = Model::new();
    let (db, _) = Db::open(dir, small_db_opts(SyncPolicy::Always)).unwrap();
    append_all(&db, &mut model, &series, (0..70_000).step_by(700));
    db.maintain(70_000).unwrap();
    let mut app = db.appender();
    app.append(&series[0], 3_350, 1.5).unwrap();
    app.commit().unwrap();
    model.get_mut(&series[0]).unwrap().insert(3_350, 1.5f64.to_bits());
    let before = model.clone();
    let sel = vec![Matcher::equal("job", "x")];
    db.delete(&sel, 2_000, 64_000).unwrap();
    model_delete(&mut model, &sel, 2_000, 64_000);
    assert_eq!(read_model(&db), model);
    (before, model)
}

#[test]
fn a_torn_deletion_record_is_absent_and_a_complete_one_in_force() {
    let dir = scratch();
    let (before, after) = crash_fixture(dir.path());
    let path = dir.path().join(TOMBSTONES_FILE);
    let full = std::fs::read(&path).unwrap();
    // The log holds the 8-byte header and one record: every shorter prefix is a crash mid-append.
    for cut in 8..=full.len() {
        let d = scratch();
        copy_dir(dir.path(), d.path());
        std::fs::write(d.path().join(TOMBSTONES_FILE), &full[..cut]).unwrap();
        let (db, _) = Db::open(d.path(), small_db_opts(SyncPolicy::Always)).unwrap();
        let want = if cut == full.len() { &after } else { &before };
        assert_eq!(&read_model(&db), want, "log cut at {cut} of {}", full.len());
    }
    // A crash while the log was being replaced leaves a temporary file: ignored and removed.
    std::fs::write(dir.path().join(format!("{TOMBSTONES_FILE}.tmp")), b"TTMB\x01garbage").unwrap();
    let (db, _) = Db::open(dir.path(), small_db_opts(SyncPolicy::Always)).unwrap();
    assert_eq!(read_model(&db), after);
    drop(db);
    assert!(!dir.path().join(format!("{TOMBSTONES_FILE}.tmp")).exists());
    // A file extended with zeros but not written (a crash after the length grew).
    let mut padded = full.clone();
    padded.extend_from_slice(&[0; 64]);
    std::fs::write(&path, &padded).unwrap();
    let (db, _) = Db::open(dir.path(), small_db_opts(SyncPolicy::Always)).unwrap();
    assert_eq!(read_model(&db), after);
    drop(db);
    assert_eq!(std::fs::read(&path).unwrap(), full, "the zeros are cut off");
}

#[test]
fn a_crash_at_any_step_of_cleaning_leaves_the_deletion_in_force() {
    let pre = scratch();
    let (_, after) = crash_fixture(pre.path());
    let post = scratch();
    copy_dir(pre.path(), post.path());
    let (db, _) = Db::open(post.path(), small_db_opts(SyncPolicy::Always)).unwrap();
    let c = db.clean_tombstones().unwrap();
    assert!(c.rewritten.len() >= 3, "several blocks rewritten: {c:?}");
    assert_eq!(c.remaining_series, 2, "the head part of the range stays tombstoned");
    assert_eq!(read_model(&db), after);
    drop(db);
    let n = c.rewritten.len();
    let pre_blocks = telemetry_store::block::list_blocks(&pre.path().join("blocks")).unwrap();
    // Step 2k: k rewrites complete (new block renamed in, original deleted); step 2k+1: the
    // k+1-th new block is in place and its original not yet deleted (or half-deleted).
    for step in 0..=2 * n {
        for half_deleted in [false, true] {
            if half_deleted && step % 2 == 0 {
                continue;
            }
            let d = scratch();
            copy_dir(pre.path(), d.path());
            let blocks = d.path().join("blocks");
            for (k, (old, new)) in c.rewritten.iter().enumerate() {
                if 2 * k < step {
                    copy_dir(&post.path().join("blocks").join(&new.id), &blocks.join(&new.id));
                }
                if 2 * k + 1 < step {
                    std::fs::remove_dir_all(blocks.join(old)).unwrap();
                } else if half_deleted && 2 * k + 1 == step {
                    std::fs::rename(blocks.join(old), blocks.join(format!("{old}.deleted"))).unwrap();
                }
            }
            let (db, _) = Db::open(d.path(), small_db_opts(SyncPolicy::Always)).unwrap();
            assert_eq!(read_model(&db), after, "crash at step {step} of {} (half-deleted {half_deleted})", 2 * n);
            assert_eq!(db.blocks().len(), pre_blocks.len(), "step {step}: no original left beside its rewrite");
            // Cleaning again completes the work.
            let c2 = db.clean_tombstones().unwrap();
            assert_eq!(c2.remaining_series, 2);
            assert_eq!(read_model(&db), after);
        }
    }
    // After the last step the log is replaced: that is the state `post` is in.
    let (db, _) = Db::open(post.path(), small_db_opts(SyncPolicy::Always)).unwrap();
    assert_eq!(read_model(&db), after);
    assert_eq!(db.tombstones().num_series(), 2);
}

#[derive(Debug, Clone)]
enum Op {
    /// Series, clock step (ms), lateness behind the clock (ms), value bits.
    Append(usize, i64, i64, u64),
    /// Series (4 = all via a regex), distance of the range's end behind the clock, length.
    Delete(usize, i64, i64),
    Maintain,
    PersistAll,
    Clean,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (0..4usize, 0..4_000i64, prop_oneof![3 => Just(0i64), 1 => 0..20_000i64, 1 => 0..200_000i64], any::<u64>())
            .prop_map(|(s, step, late, v)| Op::Append(s, step, late, v)),
        3 => (0..5usize, 0..100_000i64, 0..40_000i64).prop_map(|(s, back, len)| Op::Delete(s, back, len)),
        3 => Just(Op::Maintain),
        1 => Just(Op::PersistAll),
        2 => Just(Op::Clean),
        1 => Just(Op::Reopen),
    ]
}

fn model_labels(i: usize) -> Labels {
    Labels::from_pairs([("__name__", "model"), ("s", &i.to_string())]).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("DELETE_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24),
        ..ProptestConfig::default()
    })]
    /// Random appends (in order, late, behind the persisted range), deletions, maintenance,
    /// forced flushes, cleanings and reopenings read back as the model with the deletions
    /// applied. Appends never land in a range deleted earlier (what a later sample in a deleted
    /// range shows depends on whether its tombstone was cleaned: see `Db::delete`). After each
    /// cleaning no raw block holds a deleted sample, and the tombstones left reach the head.
    #[test]
    fn db_with_deletions_matches_model(ops in proptest::collection::vec(op(), 1..120)) {
        let dir = scratch();
        let o = small_db_opts(SyncPolicy::Never);
        let (mut db, _) = Db::open(dir.path(), o.clone()).unwrap();
        let mut model = Model::new();
        let mut deleted: Vec<(Vec<Matcher>, i64, i64)> = Vec::new();
        let mut floor = i64::MIN; // appends must be after every deleted range
        let mut clock = 0i64;
        for op in ops {
            match op {
                Op::Append(s, step, late, bits) => {
                    clock += step;
                    let t = clock - late;
                    let l = model_labels(s);
                    if t <= floor || model.get(&l).is_some_and(|m| m.contains_key(&t)) {
                        continue;
                    }
                    let mut app = db.appender();
                    if app.append(&l, t, f64::from_bits(bits)).is_err() {
                        continue;
                    }
                    let sum = app.commit().unwrap();
                    prop_assert_eq!(sum.head.refused + sum.out_of_order_refused, 0);
                    model.entry(l).or_default().insert(t, bits);
                }
                Op::Delete(s, back, len) => {
                    let b = clock - back;
                    let a = b - len;
                    let sel = if s == 4 {
                        vec![Matcher::regex("s", ".+").unwrap()]
                    } else {
                        vec![Matcher::equal("s", s.to_string())]
                    };
                    db.delete(&sel, a, b).unwrap();
                    model_delete(&mut model, &sel, a, b);
                    deleted.push((sel, a, b));
                    floor = floor.max(b);
                    prop_assert_eq!(read_model(&db), model.clone());
                }
                Op::Maintain => {
                    db.maintain(clock).unwrap();
                }
                Op::PersistAll => {
                    db.persist_head(i64::MAX).unwrap();
                }
                Op::Clean => {
                    db.clean_tombstones().unwrap();
                    for (sel, a, b) in &deleted {
                        for i in 0..4 {
                            let l = model_labels(i);
                            if telemetry_core::matches_all(sel, &l) {
                                prop_assert_eq!(physical_raw(&db, &l, *a, *b), 0, "{} [{}, {}]", l, a, b);
                            }
                        }
                    }
                    let boundary = db.stats().persisted_until.unwrap_or(i64::MIN);
                    for (_, ivs) in db.tombstones().iter() {
                        prop_assert!(ivs.iter().all(|&(_, b)| b >= boundary));
                    }
                    prop_assert_eq!(read_model(&db), model.clone());
                }
                Op::Reopen => {
                    drop(db);
                    db = Db::open(dir.path(), o.clone()).unwrap().0;
                }
            }
        }
        prop_assert_eq!(read_model(&db), model.clone());
        db.maintain(clock).unwrap();
        db.clean_tombstones().unwrap();
        prop_assert_eq!(read_model(&db), model.clone());
        drop(db);
        let (db, _) = Db::open(dir.path(), o).unwrap();
        prop_assert_eq!(read_model(&db), model);
    }
}

// ---------------------------------------------------------------------------------------------
// SIGKILL: a child process deletes ranges one by one (printing `ACK k` once `delete` returns),
// cleans tombstones every third deletion, persists the head progressively and compacts. The
// parent kills it at random moments and checks, after reopening, that every acknowledged range
// is gone, every range is either wholly present or wholly gone (all series: one deletion is one
// record), and every sample outside the deleted ranges is present exactly once, bit for bit.

const KILL_SERIES: usize = 6;
const KILL_RANGES: i64 = 400;
const KILL_CHILD_ENV: &str = "TELEMETRY_STORE_DELETE_KILL_CHILD_DIR";

fn kill_labels(i: usize) -> Labels {
    Labels::from_pairs([("__name__", "kill_del"), ("s", &format!("{i:02}"))]).unwrap()
}

fn kill_value(t: i64, i: usize) -> f64 {
    (t as f64) * 0.5 + i as f64
}

/// Range `k` is `[k s, k s + 499 ms]`; samples every 100 ms.
fn kill_range(k: i64) -> (i64, i64) {
    (k * 1000, k * 1000 + 499)
}

/// Per range: how many samples it has (checked bit for bit); also checks the samples outside
/// the ranges are all there.
fn kill_read(db: &Db) -> BTreeMap<i64, usize> {
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let mut per_range = BTreeMap::new();
    let mut outside = 0;
    for s in q.select(&SelectHints::default(), &[]).unwrap() {
        let mut s = s.unwrap();
        let i: usize = s.labels.get("s").unwrap().parse().unwrap();
        let b = s.samples.collect_all().unwrap();
        assert!(b.timestamps.windows(2).all(|w| w[0] < w[1]));
        for x in b.iter() {
            assert_eq!(x.timestamp_ms % 100, 0);
            assert_eq!(x.value.to_bits(), kill_value(x.timestamp_ms, i).to_bits());
            if x.timestamp_ms % 1000 < 500 {
                *per_range.entry(x.timestamp_ms / 1000).or_insert(0) += 1;
            } else {
                outside += 1;
            }
        }
    }
    assert_eq!(outside, KILL_SERIES * KILL_RANGES as usize * 5, "samples outside the deleted ranges");
    per_range
}

fn kill_opts() -> DbOptions {
    let mut o = small_db_opts(SyncPolicy::Always);
    o.tiers.tiers.clear();
    o
}

fn kill_child_run(dir: &Path) {
    let (db, _) = Db::open(dir, kill_opts()).unwrap();
    let present = kill_read(&db);
    let start = (0..KILL_RANGES).find(|k| present.contains_key(k)).unwrap_or(KILL_RANGES);
    for k in start..KILL_RANGES {
        let (a, b) = kill_range(k);
        db.delete(&[Matcher::equal("__name__", "kill_del")], a, b).unwrap();
        println!("ACK {k}");
        if k % 3 == 2 {
            db.clean_tombstones().unwrap();
            db.persist_head(k * 1000 + 30_000).unwrap();
            db.maintain(k * 1000 + 30_000).unwrap();
        }
    }
    println!("DONE");
}

#[test]
#[ignore = "child mode of sigkill_while_deleting_and_cleaning"]
fn delete_kill_child() {
    if let Ok(dir) = std::env::var(KILL_CHILD_ENV) {
        kill_child_run(Path::new(&dir));
    }
}

#[test]
fn sigkill_while_deleting_and_cleaning() {
    let kills: usize = std::env::var("DELETE_KILL_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let log_dir = tempfile::tempdir().unwrap();
    let stderr_path = log_dir.path().join("child.stderr");
    {
        let (db, _) = Db::open(dir.path(), kill_opts()).unwrap();
        let mut app = db.appender();
        for t in (0..KILL_RANGES * 1000).step_by(100) {
            for i in 0..KILL_SERIES {
                app.append(&kill_labels(i), t, kill_value(t, i)).unwrap();
            }
        }
        app.commit().unwrap();
        // Half in blocks, half in the head.
        db.persist_head(KILL_RANGES * 500).unwrap();
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let mut acked: BTreeSet<i64> = BTreeSet::new();
    let mut done = false;
    let mut rounds = 0;
    let (mut mid_write, mut mid_delete, mut mid_log_rewrite) = (0, 0, 0);
    while rounds < kills && !done {
        rounds += 1;
        // The test harness may print its own prefix before the child's first line.
        let lines = common::run_and_kill(
            "delete_kill_child",
            &[(KILL_CHILD_ENV, dir.path().as_os_str())],
            Stdio::from(std::fs::File::create(&stderr_path).unwrap()),
            |l| l.contains("ACK ") || l.contains("DONE"),
            Duration::from_micros(rng.gen_range(0..60_000)),
        );
        let msgs: Vec<Option<i64>> = lines
            .iter()
            .filter_map(|line| match line.find("ACK ") {
                Some(i) => Some(Some(line[i + 4..].trim().parse::<i64>().unwrap())),
                None => line.contains("DONE").then_some(None),
            })
            .collect();
        assert!(
            !msgs.is_empty(),
            "round {rounds}: the child acknowledged nothing; its stderr:\n{}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
        done = msgs.contains(&None);
        acked.extend(msgs.into_iter().flatten());

        for e in std::fs::read_dir(dir.path().join("blocks")).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            mid_write += usize::from(n.ends_with(".tmp"));
            mid_delete += usize::from(n.ends_with(".deleted"));
        }
        mid_log_rewrite += usize::from(dir.path().join(format!("{TOMBSTONES_FILE}.tmp")).exists());
        let (db, _) = Db::open(dir.path(), kill_opts()).unwrap();
        let present = kill_read(&db);
        for k in &acked {
            assert!(!present.contains_key(k), "round {rounds}: acknowledged deletion {k} not in force");
        }
        for (k, n) in &present {
            assert_eq!(*n, KILL_SERIES * 5, "round {rounds}: range {k} half deleted");
        }
    }
    eprintln!(
        "{rounds} SIGKILLs, {} deletions acknowledged (done: {done}); killed mid block write {mid_write} times, \
         mid block deletion {mid_delete} times, mid tombstone log rewrite {mid_log_rewrite} times",
        acked.len()
    );
    assert!(acked.len() > 10, "the child made progress");
}
