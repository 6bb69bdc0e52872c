//! Persisted label index reader on a valid index with byte edits applied: each 5-byte group
//! of the input is (position u32 LE, xor mask). Exercises checksum and bounds checks on
//! plausible files; must never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use telemetry_core::{Labels, Matcher};
use telemetry_index::{BlockIndex, BlockWriter, IndexReader};

fn sample() -> &'static [u8] {
    static S: OnceLock<Vec<u8>> = OnceLock::new();
    S.get_or_init(|| {
        let mut w = BlockWriter::new();
        for i in 0..2100u32 {
            let l = Labels::from_pairs([
                ("__name__", ["up", "node_cpu_seconds_total", "node_load1"][i as usize % 3]),
                ("instance", &format!("host-{}", i % 17)),
                ("job", if i % 2 == 0 { "node" } else { "api" }),
                ("mode", ["idle", "user", "system", ""][i as usize % 4]),
            ])
            .unwrap();
            w.add_series(&l, &i.to_le_bytes()).unwrap();
        }
        w.finish().unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let mut b = sample().to_vec();
    for e in data.chunks_exact(5) {
        let at = u32::from_le_bytes([e[0], e[1], e[2], e[3]]) as usize % (b.len() + 1);
        if at == b.len() {
            b.truncate(e[4] as usize * b.len() / 256);
        } else {
            b[at] ^= e[4];
        }
    }
    let Ok(idx) = BlockIndex::from_bytes(b) else { return };
    let qs = [
        vec![Matcher::equal("job", "node")],
        vec![Matcher::regex("instance", "host-1.*").unwrap(), Matcher::not_equal("mode", "idle")],
        vec![Matcher::not_regex("job", "api|x").unwrap()],
    ];
    for q in &qs {
        let _ = idx.postings_for_matchers(q);
        let _ = idx.label_names(q);
        let _ = idx.label_values("instance", q);
    }
    let _ = idx.series_count_by_metric_name();
    let _ = idx.top_label_pairs(3);
    for r in [0, 1, 1023, 1024, 2099, 2100] {
        let _ = idx.series_labels(r);
        let _ = idx.chunk_meta(r);
    }
});
