//! Merging is associative and order-independent: partial aggregates merged in random orders
//! (random binary trees) equal the left fold, exactly for the exact aggregates and within the
//! sketches' tolerance for the quantiles.

use proptest::prelude::*;
use rand::{Rng, SeedableRng, rngs::StdRng};
use telemetry_agg::{AggregateSet, WindowAggregate};
use telemetry_core::{Fingerprint, Sample};

fn set() -> AggregateSet {
    AggregateSet { counter: true, ..AggregateSet::all() }
}

/// Splits `samples` (series, sample) into `parts` aggregates. With `by_time`, each series'
/// samples are cut into consecutive time ranges (as minutes of one hour); otherwise samples are
/// dealt out at random (as several workers sharing one window).
fn parts(samples: &[(u64, Sample)], parts: usize, by_time: bool, rng: &mut StdRng) -> Vec<WindowAggregate> {
    let set = set();
    let mut out: Vec<WindowAggregate> = (0..parts).map(|_| WindowAggregate::new(&set)).collect();
    let t_max = samples.iter().map(|s| s.1.timestamp_ms).max().unwrap_or(0) + 1;
    for &(series, s) in samples {
        let p = if by_time { (s.timestamp_ms * parts as i64 / t_max) as usize } else { rng.gen_range(0..parts) };
        out[p].add(&set, Fingerprint(series), s, 1.0);
    }
    out
}

fn fold(aggs: &[WindowAggregate]) -> WindowAggregate {
    let mut acc = WindowAggregate::new(&set());
    for a in aggs {
        acc.merge(a).unwrap();
    }
    acc
}

fn random_tree(mut aggs: Vec<WindowAggregate>, rng: &mut StdRng) -> WindowAggregate {
    while aggs.len() > 1 {
        let i = rng.gen_range(0..aggs.len());
        let a = aggs.swap_remove(i);
        let j = rng.gen_range(0..aggs.len());
        let mut b = aggs.swap_remove(j);
        // Either side may be the receiver.
        let merged = if rng.r#gen() {
            b.merge(&a).unwrap();
            b
        } else {
            let mut a = a;
            a.merge(&b).unwrap();
            a
        };
        aggs.push(merged);
    }
    aggs.pop().unwrap()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
}

/// `counters`: compare counter increases too (exact only for pieces that follow each other
/// in time; overlapping pieces of one series are joined approximately, see `CounterState`).
fn compare(
    x: &WindowAggregate,
    y: &WindowAggregate,
    integer_values: bool,
    counters: bool,
) -> Result<(), TestCaseError> {
    let set = set();
    let (vx, vy) = (x.values(&set, 60_000), y.values(&set, 60_000));
    // Exact in any order.
    prop_assert_eq!(vx.samples, vy.samples);
    prop_assert_eq!(vx.count, vy.count);
    prop_assert_eq!(vx.min, vy.min);
    prop_assert_eq!(vx.max, vy.max);
    prop_assert_eq!(vx.first, vy.first);
    prop_assert_eq!(vx.last, vy.last);
    prop_assert_eq!(vx.distinct, vy.distinct);
    if counters {
        prop_assert_eq!(vx.resets, vy.resets);
    }
    // DDSketch bins are integer counts: merged sketches are identical.
    prop_assert_eq!(&vx.ddsketch, &vy.ddsketch);
    let tol = if integer_values { 0.0 } else { 1e-9 };
    let increase = if counters { (vx.increase, vy.increase) } else { (None, None) };
    for (a, b) in [(vx.sum, vy.sum), (vx.mean, vy.mean), increase] {
        match (a, b) {
            (Some(a), Some(b)) => prop_assert!(close(a, b, tol), "{a} vs {b}"),
            (a, b) => prop_assert_eq!(a, b),
        }
    }
    if let (Some(a), Some(b)) = (vx.stddev, vy.stddev) {
        prop_assert!(close(a, b, 1e-9), "stddev {a} vs {b}");
    }
    // t-digest: merge order changes centroids; estimates stay within a small rank distance.
    // Check by value against the spread of the data.
    if let (Some(a), Some(b), Some(min), Some(max)) = (&vx.tdigest, &vy.tdigest, vx.min, vx.max) {
        for (qa, qb) in a.iter().zip(b) {
            prop_assert!((qa.value - qb.value).abs() <= 0.05 * (max - min).max(1e-12), "t-digest {qa:?} vs {qb:?}");
        }
    }
    Ok(())
}

fn samples_strategy() -> impl Strategy<Value = (Vec<(u64, Sample)>, bool)> {
    (1usize..2000, 1u64..5, any::<u64>(), any::<bool>()).prop_map(|(n, series, seed, integer)| {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut counters = vec![0.0f64; series as usize];
        let v = (0..n)
            .map(|i| {
                let s = rng.gen_range(0..series);
                // Counter-like values with occasional resets, integers or not.
                let c = &mut counters[s as usize];
                *c = if rng.gen_ratio(1, 50) { 0.0 } else { *c + rng.gen_range(0.0..100.0) };
                if integer {
                    *c = c.floor();
                }
                (s, Sample::new(i as i64 * 10, *c))
            })
            .collect();
        (v, integer)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Minutes of one hour merged in random orders equal the in-order fold.
    #[test]
    fn time_split_merges_are_associative((samples, integer) in samples_strategy(), k in 2usize..12, seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let ps = parts(&samples, k, true, &mut rng);
        let a = fold(&ps);
        let b = random_tree(ps.clone(), &mut rng);
        compare(&a, &b, integer, true)?;
        // And both equal aggregating everything at once (except t-digest within tolerance).
        let one = fold(&parts(&samples, 1, true, &mut rng));
        compare(&one, &a, integer, true)?;
    }

    /// Several workers' partial aggregates of one window merge the same in any order.
    #[test]
    fn worker_merges_are_order_independent((samples, integer) in samples_strategy(), k in 2usize..8, seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        // Interleaved counter pieces are joined approximately, but the same way in any order.
        let ps = parts(&samples, k, false, &mut rng);
        let a = random_tree(ps.clone(), &mut rng);
        let b = random_tree(ps, &mut rng);
        compare(&a, &b, integer, true)?;
    }

    /// Serialized and deserialized aggregates merge like the originals.
    #[test]
    fn serde_round_trip_preserves_merges((samples, _integer) in samples_strategy(), seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let ps = parts(&samples, 3, true, &mut rng);
        let back: Vec<WindowAggregate> = ps
            .iter()
            .map(|p| serde_json::from_str(&serde_json::to_string(p).unwrap()).unwrap())
            .collect();
        compare(&fold(&ps), &fold(&back), false, true)?;
    }
}

#[test]
fn mismatched_aggregates_refuse_to_merge() {
    let mut a = WindowAggregate::new(&AggregateSet::default());
    let b = WindowAggregate::new(&AggregateSet::all());
    assert!(a.merge(&b).is_err());
    let mut c = WindowAggregate::new(&AggregateSet {
        ddsketch: Some(telemetry_agg::DdSketchConfig { alpha: 0.02, max_bins: 2048 }),
        ..AggregateSet::all()
    });
    let mut d = WindowAggregate::new(&AggregateSet::all());
    d.add(&AggregateSet::all(), Fingerprint(1), Sample::new(0, 1.0), 1.0);
    assert_eq!(c.merge(&d), Err(telemetry_agg::MergeError::Parameters("DDSketch")));
}
