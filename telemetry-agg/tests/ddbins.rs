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

#[test]
fn collapsed_merges_equal_direct() {
    // alpha 0.001 over 1e-3..1e6 needs about 10,000 bins: both stores collapse.
    let mut rng = StdRng::seed_from_u64(11);
    let values: Vec<f64> = (0..30_000)
        .map(|i| {
            let v = 10f64.powf(rand::Rng::gen_range(&mut rng, -3.0..6.0));
            if i % 3 == 0 { -v } else { v }
        })
        .collect();
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
