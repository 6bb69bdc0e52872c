//! The real label sets of `../shared/data/capture` and the scaled sets built from them.
//! Run with `cargo test -p telemetry-index --release -- --ignored`; the 9M set only with
//! `TELEMETRY_INDEX_9M=1`.

mod common;

use common::capture::{capture_series, scaled};
use telemetry_core::{Labels, Matcher, matches_all};
use telemetry_index::{BlockIndex, BlockWriter, IndexReader, MemIndex};

fn queries() -> Vec<(&'static str, Vec<Matcher>)> {
    vec![
        (
            r#"{__name__="node_cpu_seconds_total", mode="idle"}"#,
            vec![Matcher::equal("__name__", "node_cpu_seconds_total"), Matcher::equal("mode", "idle")],
        ),
        (
            r#"{__name__=~"node_network_.*", device!="lo"}"#,
            vec![Matcher::regex("__name__", "node_network_.*").unwrap(), Matcher::not_equal("device", "lo")],
        ),
        (r#"{instance=~"host-1.*"}"#, vec![Matcher::regex("instance", "host-1.*").unwrap()]),
        (
            r#"{job="node", instance="host-42"}"#,
            vec![Matcher::equal("job", "node"), Matcher::equal("instance", "host-42")],
        ),
        (r#"{job!~"node|x", mode=""}"#, vec![Matcher::not_regex("job", "node|x").unwrap(), Matcher::equal("mode", "")]),
        (r#"{__name__=~"(?i)GO_.*|up"}"#, vec![Matcher::regex("__name__", "(?i)GO_.*|up").unwrap()]),
    ]
}

fn brute(series: &[Labels], ms: &[Matcher]) -> Vec<u32> {
    series.iter().enumerate().filter(|(_, l)| matches_all(ms, l)).map(|(i, _)| i as u32).collect()
}

#[test]
#[ignore = "needs ../shared/data"]
fn capture_label_sets() {
    let base = capture_series().expect("../shared/data/capture is missing");
    assert_eq!(base.len(), 940, "series in the capture (README: 940)");
    let mem = MemIndex::new();
    let mut w = BlockWriter::new();
    for (i, l) in base.iter().enumerate() {
        mem.add(i as u32, l).unwrap();
        w.add_series(l, &[]).unwrap();
    }
    let block = BlockIndex::from_bytes(w.finish().unwrap()).unwrap();
    let mut qs = queries();
    qs.push(("{instance=~\"127.0.0.1:19.*\"}", vec![Matcher::regex("instance", "127.0.0.1:19.*").unwrap()]));
    qs.push(("{job=\"prometheus\"}", vec![Matcher::equal("job", "prometheus")]));
    for (q, ms) in &qs {
        let want = brute(&base, ms);
        assert_eq!(mem.postings_for_matchers(ms).into_vec(), want, "{q}");
        assert_eq!(block.postings_for_matchers(ms).unwrap().into_vec(), want, "{q}");
        assert_eq!(mem.label_names(ms), block.label_names(ms).unwrap(), "{q}");
    }
    let counts = mem.series_count_by_metric_name();
    assert_eq!(counts, block.series_count_by_metric_name().unwrap());
    assert_eq!(counts.iter().map(|c| c.1).sum::<usize>(), 940);
    assert_eq!(mem.top_label_pairs(10), block.top_label_pairs(10).unwrap());
    println!("capture: {} series, {} metric names, top pairs {:?}", base.len(), counts.len(), &mem.top_label_pairs(3));
}

fn check_scaled(instances: usize) {
    let base = capture_series().expect("../shared/data/capture is missing");
    let all: Vec<Labels> = scaled(&base, instances).collect();
    let mem = MemIndex::new();
    let t = std::time::Instant::now();
    for (i, l) in all.iter().enumerate() {
        mem.add(i as u32, l).unwrap();
    }
    let build = t.elapsed();
    assert_eq!(mem.num_series(), base.len() * instances);
    println!(
        "{} series: built in {:?} ({:.2}M series/s), {:.1} index bytes/series beyond {} bytes of label strings",
        all.len(),
        build,
        all.len() as f64 / build.as_secs_f64() / 1e6,
        mem.memory_bytes() as f64 / all.len() as f64,
        mem.string_bytes()
    );
    let mut w = BlockWriter::new();
    for l in &all {
        w.add_series(l, &[]).unwrap();
    }
    let block = BlockIndex::from_bytes(w.finish().unwrap()).unwrap();
    for (q, ms) in queries() {
        let want = brute(&all, &ms);
        let got = mem.postings_for_matchers(&ms).into_vec();
        assert_eq!(got.len(), want.len(), "{q}");
        assert_eq!(got, want, "{q}");
        assert_eq!(block.postings_for_matchers(&ms).unwrap().into_vec(), want, "{q}");
        println!("  {q}: {} series", got.len());
    }
    assert_eq!(mem.label_values("instance", &[Matcher::equal("job", "node")]).len(), instances);
    assert_eq!(block.top_label_pairs(5).unwrap(), mem.top_label_pairs(5));
}

#[test]
#[ignore = "needs ../shared/data"]
fn scaled_1m() {
    check_scaled(1_000);
}

#[test]
#[ignore = "needs ../shared/data"]
fn scaled_9m_opt_in() {
    if std::env::var_os("TELEMETRY_INDEX_9M").is_none() {
        println!("skipped: set TELEMETRY_INDEX_9M=1 for the 9M-series set");
        return;
    }
    check_scaled(10_000);
}
