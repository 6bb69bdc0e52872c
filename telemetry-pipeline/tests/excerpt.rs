//! The whole pipeline on the bundled real excerpt (`testdata/excerpt-20m.om.gz`, in the
//! repository): counts, a PromQL answer, the CPU burn found, and WAL replay giving back every
//! acknowledged sample bit for bit.

use telemetry_core::{Matcher, Queryable, SelectHints};
use telemetry_pipeline::{InputFormat, Pipeline, PipelineConfig, read_capture};
use telemetry_query::Value;
use telemetry_store::{Head, HeadOptions};

const EXCERPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/excerpt-20m.om.gz");
/// The CPU burn on both cores, Unix ms (testdata/README.md).
const BURN: (i64, i64) = (1_795_267_190_000, 1_795_267_280_000);

#[test]
fn excerpt_through_the_pipeline_and_back_from_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = PipelineConfig::default();
    cfg.storage.data_dir = dir.path().to_path_buf();
    cfg.ingest.replay_batch_samples = 5_000;

    let capture = read_capture(EXCERPT.as_ref(), InputFormat::Auto, &mut |_, _| {}).unwrap();
    assert_eq!(capture.series_count(), 103);
    assert_eq!(capture.samples, 123_600);
    assert_eq!(capture.metadata.len(), 23);

    let pipeline = Pipeline::start(cfg).unwrap();
    let mut last_progress = 0;
    let summary = capture.replay(&pipeline, 5_000, &mut |n| last_progress = n).unwrap();
    assert_eq!(summary.ack.samples, 123_600);
    assert_eq!(summary.ack.stored, 123_600, "{summary:?}");
    assert_eq!(summary.failed_batches, 0);
    assert_eq!(last_progress, 123_600);
    assert_eq!(summary.batches, 123_600 / 5_000 + 1 + 1); // + the metadata batch
    pipeline.shutdown().unwrap();

    // Every series stored; anomaly scores stored as series of their own.
    let stats = pipeline.stats();
    assert_eq!(stats.samples_acknowledged, 123_600);
    let data_series = pipeline.storage().stats().head.series;
    assert!(data_series > 103, "anomaly_score series expected besides the 103");

    // PromQL: all CPU time adds up to about 2 cores (2 CPUs, 1 s per s).
    let (_, t1) = summary.time_range.unwrap();
    let r = pipeline.query_instant("sum(rate(node_cpu_seconds_total[1m]))", t1).unwrap();
    let Value::Vector(v) = r.value else { panic!("vector expected") };
    assert_eq!(v.len(), 1);
    assert!((v[0].value - 2.0).abs() < 0.1, "{}", v[0].value);
    // During the burn, user time dominates on both CPUs.
    let mid = (BURN.0 + BURN.1) / 2;
    let r = pipeline.query_instant("sum by (cpu) (rate(node_cpu_seconds_total{mode=\"user\"}[30s]))", mid).unwrap();
    let Value::Vector(v) = r.value else { panic!("vector expected") };
    assert_eq!(v.len(), 2);
    assert!(v.iter().all(|s| s.value > 0.8), "{v:?}");

    // The burn is found on both cores, and nothing else is reported on the CPU rule.
    let events = pipeline.anomalies();
    for cpu in ["0", "1"] {
        assert!(
            events.iter().any(|e| e.rule == "cpu"
                && e.labels.get("cpu") == Some(cpu)
                && e.start_ms <= BURN.0 + 30_000
                && e.end_ms >= BURN.0
                && e.start_ms < BURN.1),
            "no event on cpu {cpu}: {events:#?}"
        );
    }
    assert!(events.iter().all(|e| e.start_ms >= BURN.0 - 60_000 && e.start_ms <= BURN.1 + 60_000), "{events:#?}");
    // ...and PromQL sees the scores.
    let r = pipeline.query_instant("max(max_over_time(anomaly_score{rule=\"cpu\"}[30m]))", t1).unwrap();
    let Value::Vector(v) = r.value else { panic!("vector expected") };
    assert!(v[0].value > 5.0, "{v:?}");

    // 1-minute rollups with quantiles exist for every series.
    let rollups = pipeline.rollups();
    assert!(rollups.iter().any(|r| r.values.tdigest.as_ref().is_some_and(|q| q.len() == 3)));
    drop(pipeline);

    // Reopen the data directory: WAL replay gives back every acknowledged sample.
    let (head, replay) = Head::open(dir.path(), HeadOptions::default()).unwrap();
    assert!(replay.corruption.is_none());
    assert_eq!(head.stats().series, data_series);
    let q = head.querier(i64::MIN, i64::MAX).unwrap();
    let mut compared = 0usize;
    for (i, labels) in capture.series.iter().enumerate() {
        let matchers: Vec<Matcher> = labels.iter().map(|l| Matcher::equal(&*l.name, &*l.value)).collect();
        let mut set = q.select(&SelectHints::default(), &matchers).unwrap();
        let mut s = set.next().expect("series missing after reopen").unwrap();
        assert_eq!(&s.labels, labels);
        let got = s.samples.collect_all().unwrap();
        let (ts, vs) = capture.column(i).unwrap();
        assert_eq!(got.timestamps, ts, "{labels}");
        assert!(got.values.iter().zip(vs).all(|(a, b)| a.to_bits() == b.to_bits()), "{labels}");
        compared += got.len();
    }
    assert_eq!(compared, 123_600);
}

#[test]
fn cardinality_limits_refuse_new_series_and_count_them() {
    let mut cfg = PipelineConfig::default();
    cfg.limits.per_metric = 2;
    cfg.anomaly.rules.clear();
    let p = Pipeline::start(cfg).unwrap();
    let mut b = telemetry_pipeline::BatchBuilder::new();
    for i in 0..5 {
        let l = telemetry_core::Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]).unwrap();
        b.push(&l, 1_000, 1.0);
    }
    let ack = p.ingest(b.finish()).unwrap();
    assert_eq!((ack.stored, ack.refused_limits), (2, 3));
    let st = p.stats();
    assert_eq!(st.refused_by_metric, vec![("m".to_string(), 3)]);
    assert_eq!(p.storage().stats().head.series, 2);
}

#[test]
fn sampling_drops_are_counted_and_weights_reach_aggregation() {
    let cfg = PipelineConfig::from_toml_str(
        "[sampling.default]\npolicy = \"probabilistic\"\np = 0.5\nseed = 7\n[anomaly]\nrules = []\n",
    )
    .unwrap();
    let p = Pipeline::start(cfg).unwrap();
    let mut b = telemetry_pipeline::BatchBuilder::new();
    let l = telemetry_core::Labels::from_pairs([("__name__", "g"), ("k", "v")]).unwrap();
    for i in 0..6_000 {
        b.push(&l, 1_700_000_000_000 + i * 10, 1.0);
    }
    let ack = p.ingest(b.finish()).unwrap();
    assert_eq!(ack.stored + ack.dropped_sampling, 6_000);
    assert!((2_500..3_500).contains(&ack.stored), "{ack:?}");
    p.shutdown().unwrap();
    // The weighted count estimates the unsampled count.
    let total: f64 = p.rollups().iter().filter_map(|r| r.values.count).sum();
    assert!((total - 6_000.0).abs() < 400.0, "{total}");
}
