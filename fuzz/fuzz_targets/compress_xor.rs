//! Fuzz target: hostile bytes into the telemetry-compress `xor` decoder must give an error,
//! never a panic or an out-of-bounds read.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (mut t, mut v) = (Vec::new(), Vec::new());
    let _ = telemetry_compress::decode_xor_chunk(data, &mut t, &mut v);
    if let Ok(c) = telemetry_compress::XorChunk::from_bytes(data) {
        // A validated chunk must decode and re-serialize to the same bytes.
        let n = c.iter().count();
        assert_eq!(n, c.num_samples());
        assert_eq!(c.bytes(), data);
    }
    let mut it = telemetry_compress::XorIter::new(data);
    let _ = it.seek(i64::MIN / 2);
    for _ in it.by_ref() {}
});
