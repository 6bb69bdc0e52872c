//! Property tests: every codec is lossless to the bit on arbitrary inputs, and every decoder
//! returns an error (never panics) on hostile bytes.

use proptest::prelude::*;
use telemetry_compress::codec::all_codecs;
use telemetry_compress::{
    ChunkError, StoreOptions, XorChunk, XorIter, decode_store_chunk, decode_store_values, decode_xor_chunk,
    encode_store_chunk, encode_store_chunk_with,
};

const STALE: u64 = 0x7ff0_0000_0000_0002;

/// f64 bit patterns weighted towards the awkward ones.
fn value_bits() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => any::<u64>(),
        1 => Just(STALE),
        1 => Just(0x8000_0000_0000_0000u64), // -0.0
        1 => Just(f64::INFINITY.to_bits()),
        1 => Just(f64::NEG_INFINITY.to_bits()),
        1 => 1u64..1 << 52, // subnormals
        1 => 0x7ff0_0000_0000_0001u64..=u64::MAX, // NaN payloads (and negative patterns)
        3 => (0i64..100_000).prop_map(|d| (d as f64 / 100.0).to_bits()),
        2 => (0i64..1000).prop_map(|d| (d as f64).to_bits()),
    ]
}

/// Timestamp sequences: regular, jittered, equal, decreasing, huge jumps.
fn timestamps(n: usize) -> impl Strategy<Value = Vec<i64>> {
    let steps = prop::collection::vec(
        prop_oneof![
            4 => Just(1000i64),
            2 => 990i64..1010,
            1 => Just(0i64),
            1 => -5000i64..0,
            1 => any::<i64>(),
            1 => Just(i64::MIN),
        ],
        n,
    );
    (any::<i64>(), steps).prop_map(|(t0, steps)| {
        let mut t = t0;
        steps
            .into_iter()
            .map(|s| {
                let cur = t;
                t = t.wrapping_add(s);
                cur
            })
            .collect()
    })
}

fn samples() -> impl Strategy<Value = (Vec<i64>, Vec<f64>)> {
    (0usize..300).prop_flat_map(|n| {
        (timestamps(n), prop::collection::vec(value_bits(), n))
            .prop_map(|(t, v)| (t, v.into_iter().map(f64::from_bits).collect()))
    })
}

/// Samples shaped like scraped metrics, to reach every `store` form: scrape-jittered or drifting
/// timestamps; values that are decimals written as `d / 10^a` or `d / 10^a / 10^b` (Go's
/// `float64(ns) / 1e9`, `float64(us) / 1000 / 1000`), page-sized steps, mostly-constant runs or
/// raw bit patterns, each with a few arbitrary bit patterns mixed in.
fn metric_like() -> impl Strategy<Value = (Vec<i64>, Vec<f64>)> {
    (1usize..2200).prop_flat_map(|n| {
        let ts = (
            any::<i64>(),
            prop::collection::vec(prop_oneof![8 => Just(0i64), 1 => -5i64..5, 1 => any::<i64>()], n),
            prop_oneof![Just(1000i64), Just(15_000), any::<i64>()],
        )
            .prop_map(|(t0, jit, step)| {
                jit.iter()
                    .enumerate()
                    .map(|(i, j)| t0.wrapping_add(step.wrapping_mul(i as i64)).wrapping_add(*j))
                    .collect::<Vec<i64>>()
            });
        let digits = prop::collection::vec(prop_oneof![6 => -1000i64..1000, 1 => any::<i64>(), 1 => Just(0i64)], n);
        let kind = 0u8..6;
        let (a, b) = (0usize..19, 0usize..10);
        let odd = prop::collection::vec((0usize..n, value_bits()), 0..4);
        (ts, digits, kind, a, b, odd).prop_map(|(ts, digits, kind, a, b, odd)| {
            let mut acc = 1_000_000i64;
            let mut vs: Vec<f64> = digits
                .iter()
                .map(|&d| {
                    acc = acc.wrapping_add(d);
                    match kind {
                        0 => acc as f64 / 10f64.powi(a as i32),
                        1 => acc as f64 / 10f64.powi(a as i32) / 10f64.powi(b as i32),
                        2 => (acc.wrapping_mul(4096)) as f64,
                        3 => {
                            if d.rem_euclid(17) == 0 {
                                acc as f64 * 0.1
                            } else {
                                42.0
                            }
                        }
                        4 => f64::from_bits(acc as u64),
                        _ => d as f64 / 1e9,
                    }
                })
                .collect();
            for (i, b) in odd {
                vs[i] = f64::from_bits(b);
            }
            (ts, vs)
        })
    })
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(debug_assertions) { 64 } else { 512 }, ..ProptestConfig::default() })]

    #[test]
    fn xor_chunk_round_trips_any_samples((ts, vs) in samples()) {
        let mut c = XorChunk::new();
        for (&t, &v) in ts.iter().zip(&vs) {
            c.append(t, v).unwrap();
        }
        let (mut t2, mut v2) = (Vec::new(), Vec::new());
        prop_assert_eq!(c.decode_into(&mut t2, &mut v2).unwrap(), ts.len());
        prop_assert_eq!(&t2, &ts);
        prop_assert_eq!(bits(&v2), bits(&vs));
        let back = XorChunk::from_bytes(c.bytes()).unwrap();
        prop_assert_eq!(back.bytes(), c.bytes());
        prop_assert_eq!(back.min_time(), ts.iter().min().copied());
        prop_assert_eq!(back.max_time(), ts.iter().max().copied());
        let it: Vec<_> = back.iter().map(|s| (s.timestamp_ms, s.value.to_bits())).collect();
        let want: Vec<_> = ts.iter().copied().zip(bits(&vs)).collect();
        prop_assert_eq!(it, want);
    }

    #[test]
    fn xor_chunk_appends_after_from_bytes((ts, vs) in samples(), split in 0usize..300) {
        let split = split.min(ts.len());
        let mut a = XorChunk::new();
        for (&t, &v) in ts[..split].iter().zip(&vs[..split]) {
            a.append(t, v).unwrap();
        }
        let mut b = XorChunk::from_bytes(a.bytes()).unwrap();
        for (&t, &v) in ts[split..].iter().zip(&vs[split..]) {
            b.append(t, v).unwrap();
        }
        let (mut t2, mut v2) = (Vec::new(), Vec::new());
        b.decode_into(&mut t2, &mut v2).unwrap();
        prop_assert_eq!(&t2, &ts);
        prop_assert_eq!(bits(&v2), bits(&vs));
    }

    #[test]
    fn every_codec_round_trips_any_samples((ts, vs) in samples()) {
        for c in all_codecs() {
            let mut out = Vec::new();
            c.encode(&ts, &vs, &mut out).unwrap();
            let (mut t2, mut v2) = (Vec::new(), Vec::new());
            c.decode(&out, &mut t2, &mut v2).unwrap_or_else(|e| panic!("{}: {e}", c.name()));
            prop_assert_eq!(&t2, &ts, "{}", c.name());
            prop_assert_eq!(bits(&v2), bits(&vs), "{}", c.name());
            let mut out = Vec::new();
            c.encode_values(&vs, &mut out).unwrap();
            let mut v3 = Vec::new();
            c.decode_values(&out, &mut v3).unwrap_or_else(|e| panic!("{}: {e}", c.name()));
            prop_assert_eq!(bits(&v3), bits(&vs), "{}", c.name());
        }
    }

    #[test]
    fn alp_round_trips_long_decimal_blocks(ds in prop::collection::vec(-1_000_000i64..1_000_000, 0..3000), e in 0u32..6) {
        let vs: Vec<f64> = ds.iter().map(|&d| d as f64 / 10f64.powi(e as i32)).collect();
        let c = telemetry_compress::codec::Alp;
        use telemetry_compress::Codec;
        let mut out = Vec::new();
        c.encode_values(&vs, &mut out).unwrap();
        let mut back = Vec::new();
        c.decode_values(&out, &mut back).unwrap();
        prop_assert_eq!(bits(&back), bits(&vs));
    }

    #[test]
    fn store_chunk_round_trips((ts, vs) in samples()) {
        let b = encode_store_chunk(&ts, &vs).unwrap();
        let (mut t2, mut v2) = (Vec::new(), Vec::new());
        decode_store_chunk(&b, &mut t2, &mut v2).unwrap();
        prop_assert_eq!(&t2, &ts);
        prop_assert_eq!(bits(&v2), bits(&vs));
    }

    #[test]
    fn store_chunk_round_trips_metric_like_samples((ts, vs) in metric_like()) {
        let b = encode_store_chunk(&ts, &vs).unwrap();
        let (mut t2, mut v2) = (Vec::new(), Vec::new());
        decode_store_chunk(&b, &mut t2, &mut v2).unwrap();
        prop_assert_eq!(&t2, &ts);
        prop_assert_eq!(bits(&v2), bits(&vs));
        // The values alone, appended after what the vector holds.
        let mut v3 = vec![1.5];
        prop_assert_eq!(decode_store_values(&b, &mut v3).unwrap(), vs.len());
        prop_assert_eq!(bits(&v3[1..]), bits(&vs));
    }

    #[test]
    fn store_chunk_round_trips_under_any_options((ts, vs) in metric_like(), eg_margin in 0u32..40) {
        let mut b = Vec::new();
        encode_store_chunk_with(&ts, &vs, &StoreOptions { eg_margin }, &mut b).unwrap();
        let (mut t2, mut v2) = (Vec::new(), Vec::new());
        decode_store_chunk(&b, &mut t2, &mut v2).unwrap();
        prop_assert_eq!(&t2, &ts);
        prop_assert_eq!(bits(&v2), bits(&vs));
    }

    #[test]
    fn corrupted_store_chunks_never_panic((ts, vs) in metric_like(), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4), cut in any::<usize>()) {
        let mut b = encode_store_chunk(&ts, &vs).unwrap();
        for &(at, x) in &flips {
            let i = at % b.len();
            b[i] ^= x;
        }
        let b = &b[..cut % (b.len() + 1)];
        let (mut t, mut v) = (Vec::new(), Vec::new());
        let full = decode_store_chunk(b, &mut t, &mut v);
        // The values-only decoder accepts and refuses exactly the same bytes.
        let mut v2 = Vec::new();
        let values = decode_store_values(b, &mut v2);
        prop_assert_eq!(full.is_ok(), values.is_ok(), "{:?} / {:?}", full, values);
        if full.is_ok() {
            prop_assert_eq!(bits(&v2), bits(&v));
        }
    }

    #[test]
    fn hostile_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..400)) {
        let (mut t, mut v) = (Vec::new(), Vec::new());
        let _ = decode_xor_chunk(&data, &mut t, &mut v);
        let _ = XorChunk::from_bytes(&data);
        let mut it = XorIter::new(&data);
        let _ = it.seek(0);
        for _ in it.by_ref() {}
        let _ = decode_store_chunk(&data, &mut t, &mut v);
        for c in all_codecs() {
            let _ = c.decode(&data, &mut t, &mut v);
            let _ = c.decode_values(&data, &mut v);
        }
    }

    #[test]
    fn corrupted_valid_blocks_never_panic((ts, vs) in samples(), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4), cut in any::<usize>()) {
        let mut blocks = Vec::new();
        let mut c = XorChunk::new();
        for (&t, &v) in ts.iter().zip(&vs) {
            c.append(t, v).unwrap();
        }
        blocks.push(("xor", c.bytes().to_vec()));
        blocks.push(("store", encode_store_chunk(&ts, &vs).unwrap()));
        for codec in all_codecs() {
            let mut out = Vec::new();
            codec.encode(&ts, &vs, &mut out).unwrap();
            blocks.push((codec.name(), out));
        }
        for (name, mut b) in blocks {
            if b.is_empty() { continue; }
            for &(at, x) in &flips {
                let i = at % b.len();
                b[i] ^= x;
            }
            let b = &b[..cut % (b.len() + 1)];
            let (mut t, mut v) = (Vec::new(), Vec::new());
            let r: Result<(), ChunkError> = match name {
                "xor" => decode_xor_chunk(b, &mut t, &mut v).map(|_| ()),
                "store" => decode_store_chunk(b, &mut t, &mut v),
                n => telemetry_compress::codec_by_name(n).unwrap().decode(b, &mut t, &mut v),
            };
            let _ = r;
        }
    }
}

#[test]
fn xor_chunk_rejects_only_the_65536th_sample() {
    let mut c = XorChunk::new();
    for i in 0..65_535i64 {
        // Decreasing, equal and huge steps are all accepted.
        let t = match i % 4 {
            0 => i,
            1 => -i,
            2 => i64::MAX - i,
            _ => i64::MIN + i,
        };
        c.append(t, f64::from_bits(i as u64)).unwrap();
    }
    assert_eq!(c.append(0, 0.0), Err(ChunkError::ChunkFull));
    assert_eq!(c.num_samples(), 65_535);
}
