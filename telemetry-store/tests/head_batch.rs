//! `Appender::append_pairs_batch` against one `append_pairs` call per sample: two heads get the
//! same operations, one through batches and one sample by sample, and must agree on every
//! per-sample result, every commit summary, the statistics (refusals counted by reason), what
//! reads return, and what a reopened WAL holds.

use std::sync::atomic::{AtomicBool, Ordering};

use proptest::prelude::*;
use telemetry_core::{Labels, Queryable, SelectHints};
use telemetry_store::{AppendError, CommitSummary, Head, HeadOptions, HeadStats, SeriesRef, SyncPolicy};

/// Valid series: more than the fingerprint table's first sizes (16, 32, 64 slots), so that
/// batches create series while the table grows.
const VALID: usize = 60;

/// The label pairs of series `i`, sorted by name. Beyond the valid ones: an invalid label
/// name, the empty set, and series 0 spelt with an extra empty-valued label (the same series
/// once the empty label is dropped, but a different key and fingerprint).
fn pairs(i: usize) -> Vec<(String, String)> {
    let p = |n: &str, v: String| (n.to_string(), v);
    match i {
        _ if i < VALID => vec![p("__name__", format!("m{}", i % 3)), p("i", i.to_string())],
        x if x == VALID => vec![p("__name__", "m".into()), p("bad-name", "x".into())],
        x if x == VALID + 1 => vec![],
        _ => vec![p("__name__", "m0".into()), p("i", "0".into()), p("z", String::new())],
    }
}

fn value(v: u8) -> f64 {
    // Equality is bitwise: a NaN payload and both zeros.
    [0.0, -0.0, 1.5, f64::from_bits(0x7ff8_0000_0000_0042)][v as usize % 4]
}

#[derive(Debug, Clone)]
enum Op {
    /// `(series, timestamp, value)` samples for one batch.
    Batch(Vec<(usize, i64, u8)>),
    Commit,
    Rollback,
    Gc(i64),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let sample = (prop_oneof![20 => 0..VALID, 1 => VALID..VALID + 3], 0i64..1_000, 0u8..4);
    prop_oneof![
        6 => proptest::collection::vec(sample, 0..120).prop_map(Op::Batch),
        3 => Just(Op::Commit),
        1 => Just(Op::Rollback),
        1 => (0i64..1_600).prop_map(Op::Gc),
        1 => Just(Op::Reopen),
    ]
}

fn opts() -> HeadOptions {
    let mut o = HeadOptions {
        chunk_max_samples: 5,
        chunk_range_ms: 300,
        out_of_order_window_ms: 200,
        gc_idle_ms: 500,
        ..Default::default()
    };
    o.wal.sync = SyncPolicy::Never;
    o.wal.segment_size = 4096;
    o
}

type Read = Vec<(Labels, Vec<(i64, u64)>)>;

fn read_all(head: &Head) -> Read {
    let q = head.querier(i64::MIN, i64::MAX).unwrap();
    q.select(&SelectHints::default(), &[])
        .unwrap()
        .map(|s| {
            let mut s = s.unwrap();
            let b = s.samples.collect_all().unwrap();
            (s.labels.clone(), b.iter().map(|x| (x.timestamp_ms, x.value.to_bits())).collect())
        })
        .collect()
}

/// Results compared by their debug text (`AppendError` has no `PartialEq`): variant, series,
/// timestamp, value and reason.
fn show(r: &[Result<SeriesRef, AppendError>]) -> Vec<String> {
    r.iter().map(|x| format!("{x:?}")).collect()
}

/// The statistics but the memory estimate (which, once series are removed, depends on the
/// order the index walks a hash map in: it differs between two heads given the same
/// operations one by one).
fn stats(h: &Head) -> HeadStats {
    HeadStats { bytes_in_memory: 0, ..h.stats() }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let all: Vec<Vec<(String, String)>> = (0..VALID + 3).map(pairs).collect();
    let mut sessions = ops.split(|o| matches!(o, Op::Reopen)).peekable();
    let mut results = Vec::new();
    while let Some(session) = sessions.next() {
        let (a, ra) = Head::open(dir_a.path(), opts()).unwrap();
        let (b, rb) = Head::open(dir_b.path(), opts()).unwrap();
        prop_assert!(ra.corruption.is_none() && rb.corruption.is_none());
        prop_assert_eq!(read_all(&a), read_all(&b), "after reopen");
        prop_assert_eq!(stats(&a), stats(&b), "after reopen");
        let (mut app_a, mut app_b) = (a.appender(), b.appender());
        for op in session {
            match op {
                Op::Batch(samples) => {
                    let batch: Vec<_> = samples
                        .iter()
                        .map(|&(s, t, v)| (all[s].iter().map(|(n, v)| (n.as_str(), v.as_str())), t, value(v)))
                        .collect();
                    app_a.append_pairs_batch(&batch, &mut results);
                    let one: Vec<_> = batch.iter().map(|(p, t, v)| app_b.append_pairs(p.clone(), *t, *v)).collect();
                    prop_assert_eq!(results.len(), samples.len());
                    prop_assert_eq!(show(&results), show(&one), "batch {:?}", samples);
                    prop_assert_eq!(app_a.len(), app_b.len());
                }
                Op::Commit => {
                    let (sa, sb): (CommitSummary, CommitSummary) = (app_a.commit().unwrap(), app_b.commit().unwrap());
                    prop_assert_eq!(sa, sb);
                    prop_assert_eq!(read_all(&a), read_all(&b));
                }
                Op::Rollback => {
                    std::mem::replace(&mut app_a, a.appender()).rollback();
                    std::mem::replace(&mut app_b, b.appender()).rollback();
                }
                Op::Gc(now) => prop_assert_eq!(a.gc(*now).unwrap(), b.gc(*now).unwrap()),
                Op::Reopen => unreachable!("split on"),
            }
            prop_assert_eq!(stats(&a), stats(&b));
        }
        // Commit what is pending before the reopen half the time, so that replay sees it.
        if sessions.peek().is_some_and(|s| s.len() % 2 == 0) {
            prop_assert_eq!(app_a.commit().unwrap(), app_b.commit().unwrap());
        }
        drop((app_a, app_b));
        prop_assert_eq!(read_all(&a), read_all(&b));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn batch_matches_one_by_one(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}

/// The first batches of an empty head create every series (the table grows under the
/// pipeline); later batches find them all; samples and references equal one-by-one appends.
#[test]
fn large_batches_create_then_find() {
    let (a, b) = (Head::in_memory(HeadOptions::default()), Head::in_memory(HeadOptions::default()));
    let series: Vec<Vec<(String, String)>> = (0..5_000)
        .map(|i| {
            vec![
                ("__name__".to_string(), format!("metric_{}", i % 13)),
                ("instance".to_string(), format!("host-{}", i / 100)),
                ("i".to_string(), i.to_string()),
                ("job".to_string(), "node".to_string()),
            ]
        })
        .collect();
    let mut results = Vec::new();
    for round in 0..4i64 {
        let (mut app_a, mut app_b) = (a.appender(), b.appender());
        for (k, part) in series.chunks(700).enumerate() {
            // Every other batch repeats its first samples one millisecond later.
            let mut batch: Vec<_> = part
                .iter()
                .enumerate()
                .map(|(j, p)| (p.iter().map(|(n, v)| (n.as_str(), v.as_str())), round * 1_000, (k * 700 + j) as f64))
                .collect();
            if k % 2 == 1 {
                let again: Vec<_> = batch[..50].iter().map(|(p, t, v)| (p.clone(), t + 1, v + 0.5)).collect();
                batch.extend(again);
            }
            app_a.append_pairs_batch(&batch, &mut results);
            for (r, (p, t, v)) in results.iter().zip(&batch) {
                assert_eq!(r.as_ref().unwrap(), &app_b.append_pairs(p.clone(), *t, *v).unwrap());
            }
        }
        assert_eq!(app_a.commit().unwrap(), app_b.commit().unwrap());
    }
    assert_eq!(stats(&a), stats(&b));
    assert_eq!(a.stats().series, 5_000);
    assert_eq!(read_all(&a), read_all(&b));
}

/// One batch of 10,000 samples (worked through in several parts inside): series created in
/// one part are found in the next, samples of one series stay in order across parts.
#[test]
fn a_long_batch_equals_one_by_one() {
    let (a, b) = (Head::in_memory(HeadOptions::default()), Head::in_memory(HeadOptions::default()));
    let series: Vec<Vec<(String, String)>> = (0..3_000)
        .map(|i| vec![("__name__".to_string(), format!("m{}", i % 7)), ("i".to_string(), i.to_string())])
        .collect();
    // Each series three times, at increasing timestamps, interleaved with the others; a few
    // out of order within the window and a few conflicting.
    let batch: Vec<_> = (0..10_000usize)
        .map(|k| {
            let i = (k * 7919) % 3_000;
            let t = (k / 3_000) as i64 * 1_000 + if k % 97 == 0 { -400 } else { 0 };
            (series[i].iter().map(|(n, v)| (n.as_str(), v.as_str())), t, (k % 5) as f64)
        })
        .collect();
    let (mut app_a, mut app_b) = (a.appender(), b.appender());
    let mut results = Vec::new();
    app_a.append_pairs_batch(&batch, &mut results);
    let one: Vec<_> = batch.iter().map(|(p, t, v)| app_b.append_pairs(p.clone(), *t, *v)).collect();
    assert_eq!(show(&results), show(&one));
    assert_eq!(app_a.commit().unwrap(), app_b.commit().unwrap());
    // Once more, now that every series exists and has committed samples: a third of the
    // values changed (refused at append as conflicting), the rest exact duplicates.
    let batch: Vec<_> =
        batch.into_iter().enumerate().map(|(k, (p, t, v))| (p, t, if k % 3 == 0 { v + 0.5 } else { v })).collect();
    app_a.append_pairs_batch(&batch, &mut results);
    let one: Vec<_> = batch.iter().map(|(p, t, v)| app_b.append_pairs(p.clone(), *t, *v)).collect();
    assert_eq!(show(&results), show(&one));
    assert!(results.iter().any(|r| r.is_err()) && results.iter().any(|r| r.is_ok()));
    assert_eq!(app_a.commit().unwrap(), app_b.commit().unwrap());
    assert_eq!(stats(&a), stats(&b));
    assert_eq!(read_all(&a), read_all(&b));
}

/// Refusals inside a batch are typed, counted by reason, and do not stop the other samples.
#[test]
fn refusals_in_a_batch_are_typed_and_counted() {
    let head = Head::in_memory(HeadOptions { out_of_order_window_ms: 1_000, ..Default::default() });
    let p = |s: &'static str| [("__name__", "m"), ("s", s)];
    let mut app = head.appender();
    app.append_pairs(p("a"), 10_000, 1.0).unwrap();
    app.commit().unwrap();
    let batch = [
        (p("a"), 10_000, 2.0), // conflicting duplicate
        (p("a"), 8_999, 2.0),  // too old
        (p("a"), 10_000, 1.0), // exact duplicate: accepted, idempotent
        (p("a"), 9_500, 3.0),  // out of order, within the window
        (p("b"), 1, 4.0),      // new series
        (p("a"), 11_000, 5.0),
    ];
    let mut results = Vec::new();
    app.append_pairs_batch(&batch, &mut results);
    assert!(matches!(
        &results[0],
        Err(AppendError::Refused { reason: telemetry_store::RefuseReason::Duplicate { existing }, .. }) if *existing == 1.0
    ));
    assert!(matches!(
        &results[1],
        Err(AppendError::Refused { reason: telemetry_store::RefuseReason::TooOld { newest_ms: 10_000 }, .. })
    ));
    assert!(results[2..].iter().all(|r| r.is_ok()), "{results:?}");
    assert_ne!(results[4].as_ref().unwrap(), results[5].as_ref().unwrap());
    let sum = app.commit().unwrap();
    assert_eq!((sum.appended, sum.duplicates_ignored, sum.refused_at_append), (3, 1, 2));
    let st = head.stats();
    assert_eq!((st.refused_duplicate, st.refused_too_old, st.samples_out_of_order, st.series), (1, 1, 1, 2));

    // Invalid and empty label sets of new series: typed errors in their places.
    let bad =
        [(vec![("__name__", "m"), ("bad-name", "x")], 1, 1.0), (vec![], 1, 1.0), (vec![("__name__", "ok")], 1, 1.0)];
    app.append_pairs_batch(&bad, &mut results);
    assert!(matches!(results[0], Err(AppendError::InvalidLabels(_))), "{results:?}");
    assert!(matches!(results[1], Err(AppendError::EmptyLabels)), "{results:?}");
    assert!(results[2].is_ok());
    // An empty batch clears the results.
    app.append_pairs_batch(&[] as &[([(&str, &str); 1], i64, f64)], &mut results);
    assert!(results.is_empty());
}

/// Batches keep finding the right series while another thread removes idle series (which
/// moves entries of the fingerprint table under the batch's feet between its lock holds):
/// every live series ends up with exactly its samples.
#[test]
fn batches_while_gc_removes_series() {
    let head = Head::in_memory(HeadOptions { gc_idle_ms: 1_000, ..Default::default() });
    let live: Vec<Vec<(String, String)>> = (0..400)
        .map(|i| vec![("__name__".to_string(), "live".to_string()), ("i".to_string(), i.to_string())])
        .collect();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Idle series (timestamp 0) created and collected over and over.
            let mut k = 0u64;
            while !done.load(Ordering::Relaxed) {
                let mut app = head.appender();
                for _ in 0..50 {
                    k += 1;
                    app.append_pairs([("__name__", "idle"), ("k", k.to_string().as_str())], 0, 0.0).unwrap();
                }
                app.commit().unwrap();
                head.gc(100_000).unwrap();
            }
        });
        let mut results = Vec::new();
        for round in 1..=60i64 {
            let mut app = head.appender();
            // Every round also brings new series into the batch (created mid-batch).
            let extra: Vec<Vec<(String, String)>> = (0..20)
                .map(|j| vec![("__name__".to_string(), "late".to_string()), ("r".to_string(), format!("{round}-{j}"))])
                .collect();
            let batch: Vec<_> = live
                .iter()
                .chain(&extra)
                .enumerate()
                .map(|(i, p)| (p.iter().map(|(n, v)| (n.as_str(), v.as_str())), 100_000 + round, i as f64))
                .collect();
            app.append_pairs_batch(&batch, &mut results);
            assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
            app.commit().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    let q = head.querier(100_000, 200_000).unwrap();
    let mut n = 0;
    for s in q.select(&SelectHints::default(), &[telemetry_core::Matcher::equal("__name__", "live")]).unwrap() {
        let mut s = s.unwrap();
        let i: f64 = s.labels.get("i").unwrap().parse().unwrap();
        let b = s.samples.collect_all().unwrap();
        let want: Vec<(i64, f64)> = (1..=60).map(|r| (100_000 + r, i)).collect();
        assert_eq!(b.iter().map(|x| (x.timestamp_ms, x.value)).collect::<Vec<_>>(), want, "{}", s.labels);
        n += 1;
    }
    assert_eq!(n, 400);
}
