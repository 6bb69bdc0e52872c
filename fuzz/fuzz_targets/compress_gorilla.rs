//! Fuzz target: hostile bytes into the telemetry-compress `gorilla` decoder must give an error,
//! never a panic or an out-of-bounds read.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let c = telemetry_compress::codec_by_name("gorilla").expect("codec compiled in");
    let (mut t, mut v) = (Vec::new(), Vec::new());
    let _ = c.decode(data, &mut t, &mut v);
    let mut v = Vec::new();
    let _ = c.decode_values(data, &mut v);
});
