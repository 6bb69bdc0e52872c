//! JSON series decoder: arbitrary bytes never panic; decoded payloads map to labels and
//! re-encode when their values are finite.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telemetry_core::format::json;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = json::decode(data) {
        for s in &p.series {
            let _ = s.to_labels();
            let _ = s.metric_type();
        }
        let mut out = Vec::new();
        let _ = json::encode(&p, &mut out);
    }
});
