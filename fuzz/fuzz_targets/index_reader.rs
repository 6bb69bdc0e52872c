//! Persisted label index reader: arbitrary bytes give a typed error or an index whose every
//! call returns a value or a typed error, never a panic. Under `cfg(fuzzing)` the reader skips
//! its CRC32C comparisons so that the fuzzer reaches the structure checks behind them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telemetry_core::Matcher;
use telemetry_index::{BlockIndex, IndexReader};

fuzz_target!(|data: &[u8]| {
    let Ok(idx) = BlockIndex::from_bytes(data.to_vec()) else { return };
    exercise(&idx);
});

fn exercise(idx: &BlockIndex) {
    let qs = [
        vec![Matcher::equal("job", "node")],
        vec![Matcher::regex("instance", "host-1.*").unwrap(), Matcher::not_equal("mode", "idle")],
        vec![Matcher::not_regex("job", "api|x").unwrap()],
        vec![Matcher::regex("__name__", ".+").unwrap(), Matcher::equal("mode", "")],
    ];
    for q in &qs {
        let _ = idx.postings_for_matchers(q);
        let _ = idx.label_names(q);
        let _ = idx.label_values("instance", q);
    }
    if let Ok(names) = idx.label_names(&[]) {
        for n in names.iter().take(8) {
            let _ = idx.label_values(n, &[]);
        }
    }
    let _ = idx.series_count_by_metric_name();
    let _ = idx.top_label_pairs(3);
    for r in [0, 1, 2, 1023, 1024, u32::MAX] {
        let _ = idx.series_labels(r);
        let _ = idx.chunk_meta(r);
    }
}
