//! `CompactDdSketch`: merging equals building directly, the encoding round-trips and refuses
//! bad bytes without panicking, and quantiles stay within the relative-error bound of the exact
//! order statistic `x_(floor(q·(n−1)))`.

use proptest::collection::vec;
use proptest::prelude::*;
use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use telemetry_agg::ddbins::{MAX_BINS, MIN_ALPHA, MIN_INDEXABLE};
use telemetry_agg::{CompactDdSketch, MergeError, SketchDecodeError, SketchError};

const QS: [f64; 7] = [0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 1.0];

/// Float rounding slack on top of the alpha bound (relative).
const EPS: f64 = 1e-9;

fn build(alpha: f64, values: &[f64]) -> CompactDdSketch {
    let mut s = CompactDdSketch::new(alpha).unwrap();
    for &v in values {
        s.add(v);
    }
    s
}

fn encode(s: &CompactDdSketch) -> Vec<u8> {
    let mut b = Vec::new();
    s.encode(&mut b);
    b
}

/// Log-uniform magnitude in `10^lo..10^hi`.
fn magnitude(lo: f64, hi: f64) -> impl Strategy<Value = f64> {
    (lo..hi).prop_map(|e| 10f64.powf(e))
}

/// Every kind of value: positive and negative over a wide range, a gauge, zeros, values at and
/// below the zero-bucket threshold, subnormals, huge values, NaN and infinities, arbitrary bits.
fn any_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => magnitude(-12.0, 15.0),
        4 => magnitude(-12.0, 15.0).prop_map(|v| -v),
        3 => 40.0..60.0f64,
        1 => prop_oneof![Just(0.0), Just(-0.0), Just(MIN_INDEXABLE), Just(-MIN_INDEXABLE), Just(9.99e-10),
            Just(-9.99e-10), Just(f64::MIN_POSITIVE), Just(5e-324)],
        1 => prop_oneof![Just(f64::MAX), Just(-f64::MAX), Just(1e300), Just(-1e300), Just(1e-300)],
        1 => prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)],
        2 => any::<f64>(),
    ]
}

/// Finite values of both signs and the zero bucket, within a range that never collapses for
/// the alphas of [`bound_alpha`].
fn finite_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        5 => magnitude(-6.0, 9.0),
        3 => magnitude(-6.0, 9.0).prop_map(|v| -v),
        1 => prop_oneof![Just(0.0), Just(-0.0), Just(5e-10), Just(-5e-10), Just(MIN_INDEXABLE), Just(-MIN_INDEXABLE)],
    ]
}

fn any_alpha() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.01), Just(0.001), Just(0.05), 1e-4..0.9f64]
}

/// Alphas for which `1e-9..1e9` fits in `MAX_BINS` bins (41.5 / ln(gamma) < 4096).
fn bound_alpha() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.01), Just(0.006), 0.006..0.3f64]
}

/// The exact order statistic the estimate approximates: 0-based rank `floor(q·(n−1))`.
fn exact(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

/// Checks the documented bound: relative `alpha` for `|x| >= MIN_INDEXABLE` (same sign),
/// estimate 0 for the zero bucket.
fn check_bound(est: f64, x: f64, alpha: f64, q: f64) -> Result<(), TestCaseError> {
    if x.abs() < MIN_INDEXABLE {
        prop_assert_eq!(est, 0.0, "q {}: exact {} is in the zero bucket", q, x);
    } else {
        prop_assert_eq!(est.signum(), x.signum(), "q {}: {} vs {}", q, est, x);
        prop_assert!(
            (est - x).abs() <= alpha * x.abs() * (1.0 + EPS),
            "q {}: estimate {} exact {} alpha {}",
            q,
            est,
            x,
            alpha
        );
    }
    Ok(())
}

fn sorted_finite(values: &[f64]) -> Vec<f64> {
    let mut s: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Splitting the values into k parts at random points and merging the parts' sketches in
    /// a random order gives the sketch of all the values, bin for bin.
    #[test]
    fn merge_equals_direct(
        alpha in any_alpha(),
        values in vec(any_value(), 0..400),
        cuts in vec(any::<prop::sample::Index>(), 0..8),
        seed in any::<u64>(),
    ) {
        let direct = build(alpha, &values);
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(values.len() + 1)).collect();
        points.push(0);
        points.push(values.len());
        points.sort_unstable();
        let mut parts: Vec<CompactDdSketch> = points.windows(2).map(|w| build(alpha, &values[w[0]..w[1]])).collect();
        parts.shuffle(&mut StdRng::seed_from_u64(seed));
        let mut merged = CompactDdSketch::new(alpha).unwrap();
        for p in &parts {
            merged.merge(p).unwrap();
        }
        prop_assert_eq!(&merged, &direct);
        prop_assert_eq!(merged.count(), values.iter().filter(|v| v.is_finite()).count() as u64);
        prop_assert_eq!(merged.is_empty(), merged.count() == 0);
        // The bins hold every counted value: the top rank is reachable.
        prop_assert_eq!(merged.quantile(1.0).is_some(), !merged.is_empty());
        // Merging into a non-empty sketch (the first part) also matches.
        let mut into_first = parts[0].clone();
        for p in &parts[1..] {
            into_first.merge(p).unwrap();
        }
        prop_assert_eq!(&into_first, &direct);
        prop_assert_eq!(encode(&merged), encode(&direct));
    }

    /// `add_n(v, n)` equals `n` calls of `add(v)`.
    #[test]
    fn add_n_equals_repeated_add(alpha in any_alpha(), values in vec((any_value(), 0u64..20), 0..50)) {
        let mut a = CompactDdSketch::new(alpha).unwrap();
        let mut b = CompactDdSketch::new(alpha).unwrap();
        for &(v, n) in &values {
            a.add_n(v, n);
            for _ in 0..n {
                b.add(v);
            }
        }
        prop_assert_eq!(a, b);
    }

    /// Decoding an encoding gives the sketch back and consumes exactly the bytes written;
    /// two concatenated encodings decode one after the other; strict prefixes are refused.
    #[test]
    fn encoding_round_trips(alpha in any_alpha(), a in vec(any_value(), 0..300), b in vec(any_value(), 0..300)) {
        let (a, b) = (build(alpha, &a), build(alpha, &b));
        let mut bytes = encode(&a);
        let la = bytes.len();
        prop_assert_eq!(la, a.encoded_len());
        b.encode(&mut bytes);
        prop_assert_eq!(bytes.len() - la, b.encoded_len());

        let (a2, used) = CompactDdSketch::decode(alpha, &bytes).unwrap();
        prop_assert_eq!(used, la);
        prop_assert_eq!(a2.count(), a.count());
        prop_assert_eq!(a2.is_collapsed(), a.is_collapsed());
        for q in QS {
            prop_assert_eq!(a2.quantile(q).map(f64::to_bits), a.quantile(q).map(f64::to_bits));
        }
        prop_assert_eq!(&a2, &a);
        let (b2, used_b) = CompactDdSketch::decode(alpha, &bytes[la..]).unwrap();
        prop_assert_eq!(used_b, bytes.len() - la);
        prop_assert_eq!(&b2, &b);

        // Every prefix of short encodings; about 80 spread over long ones (each decode is linear).
        let step = (la / 64).max(1);
        for k in (0..la).step_by(step).chain(la.saturating_sub(16)..la) {
            let r = CompactDdSketch::decode(alpha, &bytes[..k]);
            prop_assert!(matches!(r, Err(SketchDecodeError::Truncated { .. })), "prefix {} of {}: {:?}", k, la, r);
        }
    }

    /// Arbitrary bytes decode to a sketch or an error, never a panic; whatever decodes
    /// re-encodes to an equal sketch.
    #[test]
    fn arbitrary_bytes_never_panic(alpha in any_alpha(), bytes in vec(any::<u8>(), 0..80)) {
        check_decode(alpha, &bytes)?;
    }

    /// Small mostly-valid inputs: a valid encoding with one byte changed.
    #[test]
    fn flipped_bytes_never_panic(
        alpha in any_alpha(),
        values in vec(any_value(), 0..100),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let mut bytes = encode(&build(alpha, &values));
        let i = at.index(bytes.len());
        bytes[i] ^= mask;
        check_decode(alpha, &bytes)?;
    }

    /// Positive data: every estimate is within `alpha·x` of the exact order statistic.
    #[test]
    fn quantiles_of_positive_data_are_within_alpha(alpha in bound_alpha(), values in vec(magnitude(-6.0, 9.0), 1..500)) {
        let s = build(alpha, &values);
        prop_assert!(!s.is_collapsed());
        let sorted = sorted_finite(&values);
        for q in QS {
            let est = s.quantile(q).unwrap();
            let x = exact(&sorted, q);
            prop_assert!((est - x).abs() <= alpha * x * (1.0 + EPS), "q {}: estimate {} exact {}", q, est, x);
        }
    }

    /// Mixed signs and the zero bucket: negative values below zeros below positive values,
    /// the bound relative to `|x|` with the sign of `x`, 0 for the zero bucket. Also after
    /// merging two halves and after an encoding round trip.
    #[test]
    fn quantiles_of_mixed_data_are_within_alpha(alpha in bound_alpha(), values in vec(finite_value(), 1..500)) {
        let s = build(alpha, &values);
        prop_assert!(!s.is_collapsed());
        let sorted = sorted_finite(&values);
        let mut halves = build(alpha, &values[..values.len() / 2]);
        halves.merge(&build(alpha, &values[values.len() / 2..])).unwrap();
        let (decoded, _) = CompactDdSketch::decode(alpha, &encode(&halves)).unwrap();
        for q in QS {
            let x = exact(&sorted, q);
            for sk in [&s, &halves, &decoded] {
                check_bound(sk.quantile(q).unwrap(), x, alpha, q)?;
            }
        }
    }
}

fn check_decode(alpha: f64, bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok((s, used)) = CompactDdSketch::decode(alpha, bytes) {
        prop_assert!(used <= bytes.len());
        let (again, used2) = CompactDdSketch::decode(alpha, &encode(&s)).unwrap();
        prop_assert_eq!(used2, s.encoded_len());
        prop_assert_eq!(&again, &s);
        for q in QS {
            // Estimates exist and are finite for any decodable sketch.
            prop_assert!(s.quantile(q).is_none_or(f64::is_finite));
        }
    }
    Ok(())
}

#[test]
fn zero_bucket_quantiles_are_zero() {
    let s = build(0.01, &[0.0, -0.0, 5e-10, -5e-10, 1e-300, 5e-324]);
    assert_eq!(s.count(), 6);
    for q in QS {
        assert_eq!(s.quantile(q), Some(0.0));
    }
    let s = build(0.01, &[-2.0, 0.0, 0.0, 3.0]);
    assert!((s.quantile(0.0).unwrap() + 2.0).abs() <= 0.02);
    assert_eq!(s.quantile(0.34), Some(0.0)); // rank floor(0.34·3) = 1
    assert_eq!(s.quantile(0.66), Some(0.0)); // rank 1
    assert_eq!(s.quantile(0.67), Some(0.0)); // rank 2: the second zero
    assert!((s.quantile(1.0).unwrap() - 3.0).abs() <= 0.03); // rank 3
}

#[test]
fn quantile_refuses_bad_q_and_empty_sketches() {
    let empty = CompactDdSketch::new(0.01).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.quantile(0.5), None);
    let s = build(0.01, &[1.0, 2.0, f64::NAN, f64::INFINITY]);
    assert_eq!(s.count(), 2);
    for q in [-0.01, 1.01, f64::NAN, f64::INFINITY] {
        assert_eq!(s.quantile(q), None, "{q}");
    }
    let nan_only = build(0.01, &[f64::NAN, f64::NEG_INFINITY]);
    assert!(nan_only.is_empty());
    assert_eq!(nan_only, empty);
}

#[test]
fn bad_alpha_is_refused() {
    for alpha in [0.0, 1.0, -0.01, 1.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e-8, MIN_ALPHA / 2.0] {
        match CompactDdSketch::new(alpha) {
            Err(SketchError::Alpha { got, min }) => {
                assert!(got.to_bits() == alpha.to_bits(), "{got} vs {alpha}");
                assert_eq!(min, MIN_ALPHA);
            }
            Ok(_) => panic!("alpha {alpha} accepted"),
        }
        assert!(matches!(CompactDdSketch::decode(alpha, &[0, 0, 0, 0]), Err(SketchDecodeError::Alpha(_))));
    }
    for alpha in [MIN_ALPHA, 1e-6, 0.01, 0.5, 0.999_999] {
        let mut s = CompactDdSketch::new(alpha).unwrap();
        for v in [f64::MAX, -f64::MAX, MIN_INDEXABLE, -MIN_INDEXABLE, 1.0] {
            s.add(v);
        }
        let (back, _) = CompactDdSketch::decode(alpha, &encode(&s)).unwrap();
        assert_eq!(back, s);
        assert!(s.quantile(1.0).unwrap().is_finite());
        assert!(s.quantile(0.0).unwrap().is_finite());
    }
    let msg = CompactDdSketch::new(1.5).unwrap_err().to_string();
    assert!(msg.contains("1.5"), "{msg}");
}

#[test]
fn merge_refuses_a_different_alpha() {
    let mut a = build(0.01, &[1.0]);
    let before = a.clone();
    let b = build(0.02, &[1.0]);
    assert_eq!(a.merge(&b), Err(MergeError::Parameters("DDSketch")));
    let c = build(f64::from_bits(0.01f64.to_bits() + 1), &[1.0]);
    assert_eq!(a.merge(&c), Err(MergeError::Parameters("DDSketch")));
    assert_eq!(a, before);
}

#[test]
fn merge_refuses_to_overflow_the_count() {
    let mut a = CompactDdSketch::new(0.01).unwrap();
    a.add_n(1.0, u64::MAX - 1);
    let before = a.clone();
    let mut b = CompactDdSketch::new(0.01).unwrap();
    b.add_n(2.0, 2);
    assert_eq!(a.merge(&b), Err(MergeError::CountOverflow("DDSketch")));
    assert_eq!(a, before);
    // add_n saturates at u64::MAX values.
    a.add_n(3.0, 10);
    assert_eq!(a.count(), u64::MAX);
}

/// 30,000 values spread log-uniformly over 1e-3..1e6, a third of them negative: at alpha 0.001
/// about 10,000 bins per sign, more than `MAX_BINS`.
fn wide_values(rng: &mut StdRng) -> Vec<f64> {
    (0..30_000)
        .map(|i| {
            let v = 10f64.powf(rand::Rng::gen_range(rng, -3.0..6.0));
            if i % 3 == 0 { -v } else { v }
        })
        .collect()
}

#[test]
fn collapsed_merges_equal_direct() {
    // alpha 0.001 over 1e-3..1e6 needs about 10,000 bins: both stores collapse.
    let mut rng = StdRng::seed_from_u64(11);
    let values = wide_values(&mut rng);
    let direct = build(0.001, &values);
    assert!(direct.is_collapsed());
    for parts in [2, 7, 60] {
        let mut chunks: Vec<CompactDdSketch> = values.chunks(values.len() / parts).map(|c| build(0.001, c)).collect();
        chunks.shuffle(&mut rng);
        let mut m = CompactDdSketch::new(0.001).unwrap();
        for c in &chunks {
            m.merge(c).unwrap();
        }
        assert_eq!(m, direct, "{parts} parts");
    }
    let (back, _) = CompactDdSketch::decode(0.001, &encode(&direct)).unwrap();
    assert!(back.is_collapsed());
    assert_eq!(back, direct);
    // The top quantiles keep the bound.
    let sorted = sorted_finite(&values);
    for q in [0.9, 0.99, 1.0] {
        let x = exact(&sorted, q);
        let est = direct.quantile(q).unwrap();
        assert!((est - x).abs() <= 0.001 * x * (1.0 + EPS), "q {q}: {est} vs {x}");
    }
}

#[test]
fn decode_errors_name_the_offset() {
    let a = 0.01;
    let err = |b: &[u8]| CompactDdSketch::decode(a, b).unwrap_err();
    assert!(matches!(err(&[]), SketchDecodeError::Truncated { offset: 0, field: "flags" }));
    assert!(matches!(err(&[0x02, 0, 0, 0]), SketchDecodeError::Flags { offset: 0, flags: 2 }));
    assert!(matches!(err(&[0, 0x80]), SketchDecodeError::Truncated { offset: 1, field: "zero count" }));
    assert!(matches!(
        err(&[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
        SketchDecodeError::VarintOverflow { offset: 1, .. }
    ));
    // nbins = 4097 (0x81 0x20).
    let e = err(&[0, 0, 0x81, 0x20]);
    assert!(matches!(e, SketchDecodeError::TooManyBins { offset: 2, nbins: 4097, max: MAX_BINS, .. }), "{e:?}");
    // Negative run with MAX_BINS + 1 bins at offset 3.
    let e = err(&[0, 0, 0, 0x81, 0x20]);
    assert!(matches!(e, SketchDecodeError::TooManyBins { offset: 3, store: "negative", .. }), "{e:?}");
    // Offset 2^40 (zig-zag 2^41): beyond i32 and the alpha's range.
    let mut b = vec![0, 0, 1];
    let mut z = 1u64 << 41;
    while z >= 0x80 {
        b.push(z as u8 | 0x80);
        z >>= 7;
    }
    b.push(z as u8);
    b.push(1);
    let e = err(&b);
    assert!(matches!(e, SketchDecodeError::IndexRange { offset: 3, first, .. } if first == 1 << 40), "{e:?}");
    // Bin 36,000 at alpha 0.01 is above the bin of f64::MAX (about 35,500).
    let e = err(&[0, 0, 1, 0xc0, 0xb2, 0x04, 1]);
    assert!(matches!(e, SketchDecodeError::IndexRange { offset: 3, first: 36_000, .. }), "{e:?}");
    // Zero at either edge of a run.
    assert!(matches!(err(&[0, 0, 2, 0, 0, 1, 0]), SketchDecodeError::ZeroEdge { offset: 4, store: "positive" }));
    assert!(matches!(err(&[0, 0, 2, 0, 1, 0, 0]), SketchDecodeError::ZeroEdge { offset: 5, store: "positive" }));
    assert!(matches!(err(&[0, 0, 0, 1, 0, 0]), SketchDecodeError::ZeroEdge { offset: 5, store: "negative" }));
    // Counts summing above u64::MAX: zero_count = u64::MAX, then one positive value.
    let mut b = vec![0];
    b.extend([0xff; 9]);
    b.push(0x01);
    b.extend([1, 0, 1, 0]);
    assert!(matches!(err(&b), SketchDecodeError::CountOverflow { offset: 13 }), "{:?}", err(&b));
    assert_eq!(err(&b).offset(), 13);
    // The minimal valid encodings.
    let (s, used) = CompactDdSketch::decode(a, &[0, 0, 0, 0, 0xaa]).unwrap();
    assert_eq!((s.count(), used), (0, 4));
    let (s, used) = CompactDdSketch::decode(a, &[1, 3, 1, 0, 2, 0]).unwrap();
    assert_eq!((s.count(), used, s.is_collapsed()), (5, 6, true));
    let msg = err(&[0, 0, 0x81, 0x20]).to_string();
    assert!(msg.contains("offset 2") && msg.contains("4097"), "{msg}");
}

// ---- merge_encoded, clear, quantile_of_encoded ----

/// Values that collapse at small alphas: log-uniform over 1e-9..1e15 of both signs (about
/// 5,500 bins per sign at alpha 0.005, so more than `MAX_BINS`), plus every kind of value.
fn wide_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => magnitude(-9.0, 15.0),
        2 => magnitude(-9.0, 15.0).prop_map(|v| -v),
        2 => any_value(),
    ]
}

/// Alphas including small ones at which wide data collapses.
fn merge_alpha() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.01), Just(0.001), Just(0.0005), 1e-4..0.9f64]
}

/// A sketch of `values`, sometimes with a large copy count on one value (multi-byte counts).
fn sketch_strategy() -> impl Strategy<Value = (Vec<f64>, Option<(f64, u64)>)> {
    (vec(wide_value(), 0..400), proptest::option::of((any_value(), 1u64..u64::MAX / 4)))
}

fn build_n(alpha: f64, (values, heavy): &(Vec<f64>, Option<(f64, u64)>)) -> CompactDdSketch {
    let mut s = build(alpha, values);
    if let Some((v, n)) = heavy {
        s.add_n(*v, *n);
    }
    s
}

/// What `merge_encoded` must equal: decode, then merge.
fn decode_then_merge(a: &CompactDdSketch, bytes: &[u8]) -> Result<(CompactDdSketch, usize), String> {
    let (s, used) = CompactDdSketch::decode(a.alpha(), bytes).map_err(|e| format!("decode: {e:?}"))?;
    let mut out = a.clone();
    out.merge(&s).map_err(|e| format!("merge: {e:?}"))?;
    Ok((out, used))
}

/// `a.merge_encoded(bytes)` against decode then merge: same sketch (bins, counts, collapsed
/// flag, count), same length, or errors that correspond, with `a` unchanged on error.
fn check_merge_encoded(a: &CompactDdSketch, bytes: &[u8]) -> Result<(), TestCaseError> {
    let mut got = a.clone();
    let r = got.merge_encoded(bytes);
    match (r, CompactDdSketch::decode(a.alpha(), bytes)) {
        (Ok(used), Ok(_)) => {
            let (want, want_used) = decode_then_merge(a, bytes).unwrap();
            prop_assert_eq!(used, want_used);
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(got.count(), want.count());
            prop_assert_eq!(got.is_collapsed(), want.is_collapsed());
            for q in QS {
                prop_assert_eq!(got.quantile(q).map(f64::to_bits), want.quantile(q).map(f64::to_bits));
            }
        }
        (Err(e), Err(d)) => {
            prop_assert_eq!(e, d);
            prop_assert_eq!(&got, a);
            prop_assert_eq!(got.count(), a.count());
        }
        (Err(SketchDecodeError::Merge(m)), Ok((s, _))) => {
            let mut m2 = a.clone();
            prop_assert_eq!(m2.merge(&s), Err(m));
            prop_assert_eq!(&got, a);
            prop_assert_eq!(got.count(), a.count());
        }
        (r, d) => prop_assert!(false, "merge_encoded {:?} but decode {:?}", r, d.map(|x| x.1)),
    }
    Ok(())
}

/// `quantile_of_encoded` against decode then quantile, bit for bit, errors included.
fn check_quantile_of_encoded(alpha: f64, bytes: &[u8]) -> Result<(), TestCaseError> {
    let decoded = CompactDdSketch::decode(alpha, bytes);
    for q in QS.into_iter().chain([-0.1, 1.5, f64::NAN]) {
        let got = CompactDdSketch::quantile_of_encoded(alpha, bytes, q);
        match &decoded {
            Ok((s, _)) => prop_assert_eq!(got.unwrap().map(f64::to_bits), s.quantile(q).map(f64::to_bits)),
            Err(e) => prop_assert_eq!(&got.unwrap_err(), e),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// `a.merge_encoded(enc(b))` equals `a.merge(decode(enc(b)))` and consumes the same
    /// length, also when either side is collapsed, with trailing bytes, and into a cleared
    /// sketch (which then equals the decoded `b`).
    #[test]
    fn merge_encoded_equals_decode_then_merge(alpha in merge_alpha(), a in sketch_strategy(), b in sketch_strategy()) {
        let (a, b) = (build_n(alpha, &a), build_n(alpha, &b));
        let mut bytes = encode(&b);
        check_merge_encoded(&a, &bytes)?;
        check_merge_encoded(&b, &bytes)?;
        check_merge_encoded(&CompactDdSketch::new(alpha).unwrap(), &bytes)?;
        check_quantile_of_encoded(alpha, &bytes)?;
        let len = bytes.len();
        bytes.extend_from_slice(&encode(&a));
        check_merge_encoded(&a, &bytes)?;

        // Into a cleared accumulator: equals decoding.
        let mut acc = a.clone();
        acc.clear();
        prop_assert_eq!(acc.merge_encoded(&bytes), Ok(len));
        prop_assert_eq!(&acc, &b);
        prop_assert_eq!(acc.count(), b.count());

        // Folding a sequence of encodings equals merging the sketches, with either method.
        let mut by_bytes = CompactDdSketch::new(alpha).unwrap();
        let mut at = 0;
        while at < bytes.len() {
            at += by_bytes.merge_encoded(&bytes[at..]).unwrap();
        }
        prop_assert_eq!(at, bytes.len());
        let mut by_merge = b.clone();
        by_merge.merge(&a).unwrap();
        prop_assert_eq!(&by_bytes, &by_merge);
        prop_assert_eq!(by_bytes.count(), by_merge.count());
    }

    /// Damaged bytes (one byte changed, or a strict prefix) give the same error as decode and
    /// leave the sketch unchanged; bytes that still decode merge as decode then merge.
    #[test]
    fn damaged_bytes_leave_the_sketch_unchanged(
        alpha in merge_alpha(),
        a in sketch_strategy(),
        b in sketch_strategy(),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let (a, b) = (build_n(alpha, &a), build_n(alpha, &b));
        let good = encode(&b);
        let mut bad = good.clone();
        let i = at.index(bad.len());
        bad[i] ^= mask;
        check_merge_encoded(&a, &bad)?;
        check_quantile_of_encoded(alpha, &bad)?;
        let step = (good.len() / 32).max(1);
        for k in (0..good.len()).step_by(step).chain(good.len().saturating_sub(8)..good.len()) {
            let mut got = a.clone();
            let r = got.merge_encoded(&good[..k]);
            prop_assert!(matches!(r, Err(SketchDecodeError::Truncated { .. })), "prefix {}: {:?}", k, r);
            prop_assert_eq!(&got, &a);
            prop_assert_eq!(got.count(), a.count());
        }
    }

    /// Arbitrary bytes: merge_encoded and quantile_of_encoded agree with decode and never panic.
    #[test]
    fn arbitrary_bytes_merge_like_decode(alpha in any_alpha(), values in vec(any_value(), 0..50), bytes in vec(any::<u8>(), 0..80)) {
        let a = build(alpha, &values);
        check_merge_encoded(&a, &bytes)?;
        check_quantile_of_encoded(alpha, &bytes)?;
    }

    /// A cleared sketch behaves as a fresh one under add, merge and merge_encoded, and keeps
    /// its capacity.
    #[test]
    fn clear_then_reuse_equals_fresh(alpha in merge_alpha(), a in sketch_strategy(), b in sketch_strategy(), c in vec(any_value(), 0..100)) {
        let (a, b) = (build_n(alpha, &a), build_n(alpha, &b));
        let fresh = CompactDdSketch::new(alpha).unwrap();
        let mut s = a.clone();
        let heap = s.heap_bytes();
        s.clear();
        prop_assert_eq!(&s, &fresh);
        prop_assert_eq!(s.count(), 0);
        prop_assert!(s.is_empty() && !s.is_collapsed());
        prop_assert_eq!(s.heap_bytes(), heap);
        prop_assert_eq!(s.quantile(0.5), None);
        prop_assert_eq!(s.alpha().to_bits(), alpha.to_bits());

        let mut s1 = s.clone();
        let mut f1 = fresh.clone();
        for &v in &c {
            s1.add(v);
            f1.add(v);
        }
        s1.merge(&b).unwrap();
        f1.merge(&b).unwrap();
        prop_assert_eq!(&s1, &f1);
        prop_assert_eq!(s1.count(), f1.count());

        let mut s2 = a.clone();
        s2.clear();
        let mut f2 = fresh.clone();
        s2.merge_encoded(&encode(&b)).unwrap();
        f2.merge_encoded(&encode(&b)).unwrap();
        s2.merge_encoded(&encode(&a)).unwrap();
        f2.merge_encoded(&encode(&a)).unwrap();
        prop_assert_eq!(&s2, &f2);
        prop_assert_eq!(s2.count(), f2.count());
        prop_assert_eq!(s2.is_collapsed(), f2.is_collapsed());
    }
}

#[test]
fn merge_encoded_refuses_to_overflow_the_count() {
    let mut a = CompactDdSketch::new(0.01).unwrap();
    a.add_n(1.0, u64::MAX - 1);
    let before = a.clone();
    let mut b = CompactDdSketch::new(0.01).unwrap();
    b.add_n(2.0, 2);
    let err = a.merge_encoded(&encode(&b)).unwrap_err();
    assert_eq!(err, SketchDecodeError::Merge(MergeError::CountOverflow("DDSketch")));
    assert_eq!(err.offset(), 0);
    assert_eq!(err.to_string(), MergeError::CountOverflow("DDSketch").to_string());
    assert_eq!((&a, a.count()), (&before, before.count()));
    // Bad bytes report the decode error first, as decode then merge would.
    let mut bad = encode(&b);
    bad[0] = 2;
    assert!(matches!(a.merge_encoded(&bad), Err(SketchDecodeError::Flags { offset: 0, flags: 2 })));
    assert_eq!(a, before);
}

#[test]
fn merge_encoded_collapses_like_merge() {
    // alpha 0.001: 1e-3..1e6 needs about 10,000 bins per sign, more than MAX_BINS.
    let mut rng = StdRng::seed_from_u64(5);
    let values = wide_values(&mut rng);
    let direct = build(0.001, &values);
    assert!(direct.is_collapsed());
    // Low parts first, then high ones: the accumulator's runs have to fold while merging.
    let mut sorted = values.clone();
    sorted.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    let mut acc = CompactDdSketch::new(0.001).unwrap();
    for part in sorted.chunks(1_000) {
        acc.merge_encoded(&encode(&build(0.001, part))).unwrap();
    }
    assert_eq!(acc, direct);
    assert_eq!(acc.count(), direct.count());
    // And the other way round, each part a full run below the accumulator's.
    let mut acc = CompactDdSketch::new(0.001).unwrap();
    for part in sorted.chunks(1_000).rev() {
        acc.merge_encoded(&encode(&build(0.001, part))).unwrap();
    }
    assert_eq!(acc, direct);
}

#[test]
fn quantile_of_encoded_reports_bad_alpha_and_bytes() {
    let s = build(0.01, &[1.0, 2.0, -3.0, 0.0]);
    let bytes = encode(&s);
    assert!(matches!(CompactDdSketch::quantile_of_encoded(0.0, &bytes, 0.5), Err(SketchDecodeError::Alpha(_))));
    assert!(matches!(
        CompactDdSketch::quantile_of_encoded(0.01, &bytes[..2], 0.5),
        Err(SketchDecodeError::Truncated { .. })
    ));
    assert_eq!(CompactDdSketch::quantile_of_encoded(0.01, &bytes, 0.0).unwrap(), s.quantile(0.0));
    assert_eq!(CompactDdSketch::quantile_of_encoded(0.01, &[0, 0, 0, 0], 0.5), Ok(None));
}

/// Hand-made bad encodings: merge_encoded and quantile_of_encoded report exactly decode's error
/// (kind and offset), including which edge of a run is named when both are zero.
#[test]
fn merge_encoded_errors_equal_decode_errors() {
    let mut overflow = vec![0];
    overflow.extend([0xff; 9]);
    overflow.push(0x01);
    overflow.extend([1, 0, 1, 0]);
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x02, 0, 0, 0],
        vec![0, 0x80],
        vec![0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
        vec![0, 0, 0x81, 0x20],
        vec![0, 0, 0, 0x81, 0x20],
        vec![0, 0, 1, 0xc0, 0xb2, 0x04, 1],
        vec![0, 0, 2, 0, 0, 1, 0],
        vec![0, 0, 2, 0, 1, 0, 0],
        vec![0, 0, 2, 0, 0, 0, 0],
        vec![0, 0, 3, 0, 0, 1, 0, 0],
        vec![0, 0, 3, 0, 0, 0x81, 0x01, 0],
        vec![0, 0, 3, 0, 1, 0x81, 0x01, 0],
        vec![0, 0, 0, 1, 0, 0],
        vec![0, 0, 0, 2, 0, 0, 0],
        vec![0, 0, 3, 0, 1, 1],
        vec![0, 0, 3, 0, 1, 0x81],
        overflow,
    ];
    let mut a = build(0.01, &[1.0, -2.0, 0.0, 50.0]);
    let before = a.clone();
    for b in &cases {
        let want = CompactDdSketch::decode(0.01, b).unwrap_err();
        assert_eq!(a.merge_encoded(b).unwrap_err(), want, "{b:?}");
        assert_eq!(a, before, "{b:?}");
        assert_eq!(CompactDdSketch::quantile_of_encoded(0.01, b, 0.5).unwrap_err(), want, "{b:?}");
    }
    // Both edges zero: the last one is named, as decode reads it first.
    assert!(matches!(
        a.merge_encoded(&[0, 0, 3, 0, 0, 1, 0, 0]),
        Err(SketchDecodeError::ZeroEdge { offset: 6, store: "positive" })
    ));
}
