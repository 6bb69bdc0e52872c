//! Head behaviour: refusals and their counters, out-of-order merge, chunk cutting, garbage
//! collection, truncation with WAL checkpoint, concurrent reads and appends.

use std::sync::Arc;

use telemetry_core::{Labels, Matcher, Queryable, SelectHints};
use telemetry_store::{AppendError, Head, HeadOptions, RefuseReason, SyncPolicy};

fn l(v: &str) -> Labels {
    Labels::from_pairs([("__name__", "m"), ("s", v)]).unwrap()
}

fn read_all(head: &Head, mint: i64, maxt: i64) -> Vec<(Labels, Vec<(i64, f64)>)> {
    let q = head.querier(mint, maxt).unwrap();
    q.select(&SelectHints::default(), &[])
        .unwrap()
        .map(|s| {
            let mut s = s.unwrap();
            let b = s.samples.collect_all().unwrap();
            (s.labels.clone(), b.iter().map(|x| (x.timestamp_ms, x.value)).collect())
        })
        .collect()
}

fn wal_opts() -> HeadOptions {
    let mut o = HeadOptions::default();
    o.wal.sync = SyncPolicy::Never;
    o
}

#[test]
fn refusals_are_typed_and_counted() {
    let head = Head::in_memory(HeadOptions { out_of_order_window_ms: 1_000, ..Default::default() });
    let mut app = head.appender();
    app.append(&l("a"), 10_000, 1.0).unwrap();
    app.commit().unwrap();
    let e = app.append(&l("a"), 10_000, 2.0).unwrap_err();
    assert!(matches!(e.refuse_reason(), Some(RefuseReason::Duplicate { existing }) if existing == 1.0), "{e}");
    let e = app.append(&l("a"), 8_999, 2.0).unwrap_err();
    assert!(matches!(e.refuse_reason(), Some(RefuseReason::TooOld { newest_ms: 10_000 })), "{e}");
    assert!(e.to_string().contains(r#"m{s="a"}"#), "error names the series: {e}");
    app.append(&l("a"), 10_000, 1.0).unwrap(); // exact duplicate: idempotent
    app.append(&l("a"), 9_500, 3.0).unwrap(); // within the window
    let sum = app.commit().unwrap();
    assert_eq!((sum.appended, sum.duplicates_ignored, sum.refused_at_append), (1, 1, 2));
    let st = head.stats();
    assert_eq!((st.refused_duplicate, st.refused_too_old, st.samples_out_of_order), (1, 1, 1));
    assert_eq!(read_all(&head, 0, 20_000), vec![(l("a"), vec![(9_500, 3.0), (10_000, 1.0)])]);
    assert!(matches!(app.append(&Labels::empty(), 1, 1.0), Err(AppendError::EmptyLabels)));
}

#[test]
fn out_of_order_samples_merge_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = HeadOptions { chunk_max_samples: 5, ..wal_opts() };
    let mut want = vec![];
    {
        let (head, _) = Head::open(dir.path(), opts.clone()).unwrap();
        let mut app = head.appender();
        // In order with gaps, then fill the gaps out of order (more than one OOO chunk).
        for t in (0..100).map(|i| 1_000 + i * 2) {
            app.append(&l("x"), t, t as f64).unwrap();
        }
        app.commit().unwrap();
        for t in (0..99).map(|i| 1_001 + i * 2).rev() {
            app.append(&l("x"), t, -(t as f64)).unwrap();
        }
        app.commit().unwrap();
        for t in 1_000..1_199 {
            want.push((t, if t % 2 == 0 { t as f64 } else { -(t as f64) }));
        }
        assert_eq!(read_all(&head, 0, i64::MAX), vec![(l("x"), want.clone())]);
        assert_eq!(read_all(&head, 1_050, 1_060)[0].1, want[50..=60].to_vec());
    }
    let (head, _) = Head::open(dir.path(), opts).unwrap();
    assert_eq!(read_all(&head, 0, i64::MAX), vec![(l("x"), want)]);
}

#[test]
fn chunks_cut_by_count_and_time_boundary() {
    let head = Head::in_memory(HeadOptions { chunk_max_samples: 10, chunk_range_ms: 1_000, ..Default::default() });
    let mut app = head.appender();
    for t in 0..95 {
        app.append(&l("c"), t * 10, 0.5).unwrap(); // 950 ms: count cuts only
    }
    app.append(&l("c"), 1_000, 0.5).unwrap(); // crosses the 1 s boundary
    app.commit().unwrap();
    // 95 samples → 9 full + 1 open(5), then the boundary forces a new chunk.
    assert_eq!(head.stats().chunks, 11);
}

#[test]
fn gc_removes_idle_series_and_replay_does_not_bring_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let opts = HeadOptions { gc_idle_ms: 60_000, ..wal_opts() };
    {
        let (head, _) = Head::open(dir.path(), opts.clone()).unwrap();
        let mut app = head.appender();
        app.append(&l("old"), 1_000, 1.0).unwrap();
        app.append(&l("new"), 100_000, 1.0).unwrap();
        app.commit().unwrap();
        assert_eq!(head.gc(120_000).unwrap(), 1);
        assert_eq!(head.stats().series, 1);
        assert_eq!(head.series_ref(&l("old")), None);
        // Appending to the removed series creates it again with a new reference.
        app.append(&l("old"), 130_000, 2.0).unwrap();
        app.commit().unwrap();
    }
    let (head, _) = Head::open(dir.path(), opts).unwrap();
    assert_eq!(read_all(&head, 0, i64::MAX), vec![(l("new"), vec![(100_000, 1.0)]), (l("old"), vec![(130_000, 2.0)])]);
}

#[test]
fn truncate_checkpoints_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = HeadOptions { chunk_max_samples: 10, ..wal_opts() };
    opts.wal.segment_size = 4 << 10;
    let (head, _) = Head::open(dir.path(), opts.clone()).unwrap();
    let mut app = head.appender();
    for t in 0..1_000 {
        app.append(&l("keep"), t, t as f64).unwrap();
        if t < 300 {
            app.append(&l("gone"), t, t as f64).unwrap();
        }
        if t % 50 == 49 {
            app.commit().unwrap();
        }
    }
    app.commit().unwrap();
    let before = head.wal().unwrap().size_bytes();
    let cp = head.truncate(500).unwrap().unwrap();
    assert!(cp.segments_removed > 3, "{cp:?}");
    assert!(head.wal().unwrap().size_bytes() < before);
    assert_eq!(head.series_ref(&l("gone")), None);
    // A second truncation with nothing written since is a no-op, not an error.
    assert_eq!(head.truncate(500).unwrap().unwrap().segments_removed, 0);
    // After truncation the head holds whole chunks ending at or after 500.
    let mem = read_all(&head, 0, i64::MAX);
    assert_eq!(mem.len(), 1);
    assert_eq!(mem[0].1.first().map(|s| s.0), Some(500));
    app.append(&l("keep"), 1_000, 1.0).unwrap();
    app.commit().unwrap();
    drop(app);
    drop(head);
    let (head, report) = Head::open(dir.path(), opts).unwrap();
    assert!(report.checkpoint.is_some() && report.corruption.is_none(), "{report:?}");
    let got = read_all(&head, 0, i64::MAX);
    assert_eq!(got.len(), 1);
    let want: Vec<(i64, f64)> = (500..1_000).map(|t| (t, t as f64)).chain([(1_000, 1.0)]).collect();
    assert_eq!(got[0].1, want);
}

#[test]
fn reads_run_concurrently_with_appends() {
    let head = Arc::new(Head::in_memory(HeadOptions::default()));
    let writer = {
        let head = head.clone();
        std::thread::spawn(move || {
            let mut app = head.appender();
            for t in 0..20_000i64 {
                for s in 0..10 {
                    app.append_pairs(
                        [("__name__", "m"), ("s", ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"][s])],
                        t,
                        t as f64,
                    )
                    .unwrap();
                }
                if t % 100 == 99 {
                    app.commit().unwrap();
                }
            }
            app.commit().unwrap();
        })
    };
    let mut reads = 0;
    while !writer.is_finished() {
        let q = head.querier(0, i64::MAX).unwrap();
        for s in q.select(&SelectHints::default(), &[Matcher::regex("s", "[0-4]").unwrap()]).unwrap() {
            let b = s.unwrap().samples.collect_all().unwrap();
            // Every series is a prefix of 0..n, in order, values equal to timestamps.
            assert!(b.iter().enumerate().all(|(i, x)| x.timestamp_ms == i as i64 && x.value == i as f64));
        }
        reads += 1;
    }
    writer.join().unwrap();
    assert!(reads > 0);
    let st = head.stats();
    assert_eq!((st.series, st.samples_appended), (10, 200_000));
    let q = head.querier(0, i64::MAX).unwrap();
    assert_eq!(q.label_values("s", &[Matcher::regex("s", "[0-2]").unwrap()]).unwrap(), ["0", "1", "2"]);
    assert_eq!(q.label_names(&[]).unwrap(), ["__name__", "s"]);
}
