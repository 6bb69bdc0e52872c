//! Fuzz target: hostile bytes into the telemetry-compress `store` decoder must give an error,
//! never a panic or an out-of-bounds read.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (mut t, mut v) = (Vec::new(), Vec::new());
    if telemetry_compress::decode_store_chunk(data, &mut t, &mut v).is_ok() {
        // Whatever decodes must re-encode losslessly.
        let b = telemetry_compress::encode_store_chunk(&t, &v).expect("decoded chunk re-encodes");
        let (mut t2, mut v2) = (Vec::new(), Vec::new());
        telemetry_compress::decode_store_chunk(&b, &mut t2, &mut v2).expect("re-encoded chunk decodes");
        assert_eq!(t, t2);
        assert!(v.iter().zip(&v2).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
});
