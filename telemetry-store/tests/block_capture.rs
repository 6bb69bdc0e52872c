//! The real capture round-trips exactly through the head, the WAL and blocks (golden test,
//! needs `../shared/data`).

use std::collections::BTreeMap;
use std::io::Read;

use telemetry_core::format::text::{Entry, Flavor, TextDecoder};
use telemetry_core::{Labels, Queryable, SelectHints};
use telemetry_store::db::{Db, DbOptions};
use telemetry_store::{HeadOptions, SyncPolicy};

const CAPTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/capture/prometheus-node-1s.om.gz");

#[test]
#[ignore = "needs ../shared/data"]
fn capture_round_trips_exactly_through_blocks() {
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(CAPTURE).unwrap()).read_to_end(&mut text).unwrap();
    let mut want: BTreeMap<Labels, Vec<(i64, u64)>> = BTreeMap::new();
    for e in TextDecoder::new(&text, Flavor::OpenMetrics) {
        if let Entry::Sample(s) = e.unwrap() {
            want.entry(s.to_labels().unwrap()).or_default().push((s.timestamp_ms.unwrap(), s.value.to_bits()));
        }
    }
    // The counts of the capture's README.
    assert_eq!(want.len(), 940);
    assert_eq!(want.values().map(Vec::len).sum::<usize>(), 3_396_842);
    assert_eq!(want.values().flatten().filter(|(_, b)| f64::from_bits(*b).is_nan()).count(), 98_697);

    let dir = tempfile::tempdir().unwrap();
    let mut head = HeadOptions::default();
    head.wal.sync = SyncPolicy::Never;
    let opts = DbOptions { head, ..Default::default() };
    {
        let (db, _) = Db::open(dir.path(), opts.clone()).unwrap();
        let mut app = db.appender();
        for (l, samples) in &want {
            for &(t, b) in samples {
                app.append(l, t, f64::from_bits(b)).unwrap();
            }
            app.commit().unwrap();
        }
        db.persist_head(i64::MAX).unwrap();
        db.maintain(0).unwrap();
        assert_eq!(db.stats().head.series, 0, "everything persisted");
    }
    // Reopened: only blocks hold the data now.
    let (db, _) = Db::open(dir.path(), opts).unwrap();
    let raw: Vec<_> = db.blocks().into_iter().filter(|b| b.resolution_ms == 0).collect();
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].stats.samples, 3_396_842);
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let mut got: BTreeMap<Labels, Vec<(i64, u64)>> = BTreeMap::new();
    for s in q.select(&SelectHints::default(), &[]).unwrap() {
        let mut s = s.unwrap();
        let b = s.samples.collect_all().unwrap();
        got.insert(s.labels, b.timestamps.iter().zip(&b.values).map(|(t, v)| (*t, v.to_bits())).collect());
    }
    assert!(got == want, "the capture does not read back bit for bit");
}
