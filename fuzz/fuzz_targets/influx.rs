//! InfluxDB line protocol decoder: arbitrary bytes never panic; decoded lines expose tags,
//! fields and samples without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telemetry_core::format::influx::InfluxDecoder;

fuzz_target!(|data: &[u8]| {
    for line in InfluxDecoder::new(data) {
        let Ok(line) = line else { break };
        let _ = line.measurement.unescape();
        for (k, v) in line.tags() {
            let _ = (k.unescape(), v.unescape());
        }
        let _ = line.fields().count();
        let _ = line.samples().count();
    }
});
