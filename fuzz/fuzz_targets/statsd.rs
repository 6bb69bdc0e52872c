//! StatsD/DogStatsD decoder: arbitrary bytes never panic; decoded lines expose values, tags
//! and labels without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telemetry_core::format::statsd::StatsdDecoder;

fuzz_target!(|data: &[u8]| {
    for line in StatsdDecoder::new(data) {
        let Ok(line) = line else { break };
        let _ = line.values().count();
        let _ = line.tag_pairs().count();
        let _ = line.to_labels();
    }
});
