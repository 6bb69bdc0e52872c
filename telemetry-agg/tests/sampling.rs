//! Sampling: weighted count and sum are unbiased, their error shrinks as theory says, and the
//! rate limiter never exceeds its rate.
//!
//! `cargo test -p telemetry-agg --release --test sampling -- --nocapture` prints the figures.

use proptest::prelude::*;
use rand::{Rng, SeedableRng, rngs::StdRng};
use telemetry_agg::{
    AggregateSet, Aggregator, AggregatorConfig, Decision, Policy, Sampler, SamplingConfig, sampling::TokenBucket,
};
use telemetry_core::{Labels, Sample};

struct Population {
    series: Vec<Labels>,
    /// (series index, sample)
    samples: Vec<(usize, Sample)>,
    count: f64,
    sum: f64,
}

fn population(n_series: usize, per_series: usize) -> Population {
    let mut rng = StdRng::seed_from_u64(99);
    let series: Vec<Labels> = (0..n_series)
        .map(|i| Labels::from_pairs([("__name__", "req_ms".to_string()), ("i", i.to_string())]).unwrap())
        .collect();
    let mut samples = Vec::with_capacity(n_series * per_series);
    for t in 0..per_series {
        for s in 0..n_series {
            // Heavy-tailed positive values (log-normal-ish).
            let v = (2.0 + 1.2 * (rng.r#gen::<f64>() * 4.0 - 2.0)).exp();
            samples.push((s, Sample::new(t as i64 * 10, v)));
        }
    }
    let sum = samples.iter().map(|s| s.1.value).sum();
    Population { count: samples.len() as f64, series, samples, sum }
}

/// One seeded run: sample with probability `p`, aggregate with weights, return the estimated
/// (count, sum) over the whole population (one window).
fn run(pop: &Population, p: f64, seed: u64) -> (f64, f64) {
    let cfg = SamplingConfig { default: Policy::Probabilistic { p, seed: Some(seed) }, ..SamplingConfig::default() };
    let mut sampler = Sampler::new(&cfg).unwrap();
    let mut agg = Aggregator::new(AggregatorConfig {
        window_ms: 3_600_000,
        aggregates: AggregateSet::default(),
        ..AggregatorConfig::default()
    })
    .unwrap();
    let fps: Vec<_> = pop.series.iter().map(|l| l.fingerprint()).collect();
    let refs: Vec<_> = pop.series.iter().map(|l| agg.series_ref(l).unwrap()).collect();
    for &(s, sample) in &pop.samples {
        if let Decision::Keep { weight } = sampler.decide(&pop.series[s], fps[s], sample) {
            agg.push(refs[s], sample, weight).unwrap();
        }
    }
    agg.flush();
    let recs = agg.drain_records();
    let (mut c, mut su) = (0.0, 0.0);
    for r in &recs {
        c += r.values.count.unwrap_or(0.0);
        su += r.values.sum.unwrap_or(0.0);
    }
    (c, su)
}

struct Stats {
    mean_rel_err: f64,
    std_err_of_mean: f64,
    rel_sd: f64,
}

fn stats(xs: &[f64], truth: f64) -> Stats {
    let n = xs.len() as f64;
    let errs: Vec<f64> = xs.iter().map(|x| (x - truth) / truth).collect();
    let mean = errs.iter().sum::<f64>() / n;
    let var = errs.iter().map(|e| (e - mean) * (e - mean)).sum::<f64>() / (n - 1.0);
    Stats { mean_rel_err: mean, std_err_of_mean: (var / n).sqrt(), rel_sd: var.sqrt() }
}

fn check_unbiased(pop: &Population, p: f64, runs: u64) -> (Stats, Stats) {
    let mut counts = Vec::new();
    let mut sums = Vec::new();
    for seed in 0..runs {
        let (c, s) = run(pop, p, seed * 7919 + 1);
        counts.push(c);
        sums.push(s);
    }
    let (c, s) = (stats(&counts, pop.count), stats(&sums, pop.sum));
    // Theory: the Horvitz–Thompson count has relative sd sqrt((1-p)/(p·N)); the sum's is that
    // times sqrt(E[v²])/E[v].
    let n = pop.count;
    let theory_count = ((1.0 - p) / (p * n)).sqrt();
    let m2 = pop.samples.iter().map(|s| s.1.value * s.1.value).sum::<f64>() / n;
    let m1 = pop.sum / n;
    let theory_sum = theory_count * m2.sqrt() / m1;
    println!(
        "p={p:<5} N={n:>7} runs={runs}: count mean rel err {:+.5}% (3 SE = {:.5}%), rel sd {:.4}% (theory {:.4}%); \
         sum mean rel err {:+.5}% (3 SE = {:.5}%), rel sd {:.4}% (theory {:.4}%)",
        c.mean_rel_err * 100.0,
        3.0 * c.std_err_of_mean * 100.0,
        c.rel_sd * 100.0,
        theory_count * 100.0,
        s.mean_rel_err * 100.0,
        3.0 * s.std_err_of_mean * 100.0,
        s.rel_sd * 100.0,
        theory_sum * 100.0,
    );
    assert!(c.mean_rel_err.abs() <= 3.0 * c.std_err_of_mean, "count biased at p={p}");
    assert!(s.mean_rel_err.abs() <= 3.0 * s.std_err_of_mean, "sum biased at p={p}");
    // The measured spread matches theory within 25 % (runs ≥ 200 give ~5 % precision).
    assert!((c.rel_sd / theory_count - 1.0).abs() < 0.25, "count sd {} vs theory {theory_count}", c.rel_sd);
    assert!((s.rel_sd / theory_sum - 1.0).abs() < 0.25, "sum sd {} vs theory {theory_sum}", s.rel_sd);
    (c, s)
}

#[test]
fn weighted_count_and_sum_are_unbiased_and_error_shrinks() {
    let small = population(100, 100); // 10k samples
    let large = population(100, 1000); // 100k samples
    for p in [0.1, 0.01] {
        let (cs, _) = check_unbiased(&small, p, 300);
        let (cl, _) = check_unbiased(&large, p, 200);
        // Ten times the data: error shrinks by about sqrt(10) = 3.16.
        let shrink = cs.rel_sd / cl.rel_sd;
        println!("p={p}: relative sd shrinks {shrink:.2}x from N=10k to N=100k (expected 3.16x)");
        assert!((2.5..4.0).contains(&shrink), "shrink {shrink}");
    }
    // And a lower p costs error as sqrt((1-p)/p): 0.1 → 0.01 is about 3.3x.
}

#[test]
fn weighted_quantities_not_values_are_scaled() {
    let pop = population(10, 1000);
    let (c, s) = run(&pop, 0.1, 5);
    // Mean of kept values ≈ population mean, not 10x it.
    let mean = s / c;
    let truth = pop.sum / pop.count;
    assert!((mean / truth - 1.0).abs() < 0.1, "mean {mean} vs {truth}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Over every interval [a, b] of sample time, a token bucket of rate r and size B keeps at
    /// most B + r·(b − a) samples.
    #[test]
    fn rate_limiter_never_exceeds_its_rate(
        per_second in 0.5f64..50.0,
        burst_extra in 0.0f64..5.0,
        gaps in proptest::collection::vec(0i64..200, 1..600),
    ) {
        let burst = per_second.max(1.0) + burst_extra;
        let mut b = TokenBucket::new(per_second, burst);
        let mut t = 0i64;
        let mut kept = Vec::new();
        for g in gaps {
            t += g;
            if b.take(t).is_some() {
                kept.push(t);
            }
        }
        for i in 0..kept.len() {
            for j in i..kept.len() {
                let n = (j - i + 1) as f64;
                let allowed = burst + per_second * (kept[j] - kept[i]) as f64 / 1000.0;
                prop_assert!(n <= allowed + 1e-9, "{n} samples in {} ms, allowed {allowed}", kept[j] - kept[i]);
            }
        }
    }
}

#[test]
fn rate_limited_policy_counts_drops_and_keeps_count_exact() {
    let cfg =
        SamplingConfig { default: Policy::RateLimited { per_second: 2.0, burst: None }, ..SamplingConfig::default() };
    let mut s = Sampler::new(&cfg).unwrap();
    let l = Labels::from_pairs([("__name__", "m")]).unwrap();
    let fp = l.fingerprint();
    let mut weight = 0.0;
    let mut kept = 0;
    // 100 samples per second for 10 s, then one more sample 10 s later to carry the tail.
    for i in 0..1000 {
        if let Decision::Keep { weight: w } = s.decide(&l, fp, Sample::new(i * 10, 1.0)) {
            weight += w;
            kept += 1;
        }
    }
    if let Decision::Keep { weight: w } = s.decide(&l, fp, Sample::new(20_000, 1.0)) {
        weight += w;
        kept += 1;
    }
    let st = s.stats();
    println!("rate limit 2/s: kept {kept} of 1001, dropped {}, weighted count {weight}", st.dropped_rate_limited);
    assert!(kept <= 2 + 2 * 20 + 1);
    assert_eq!(st.dropped_rate_limited + kept, 1001);
    assert_eq!(weight, 1001.0);
}

#[test]
fn seeded_decisions_agree_across_replicas() {
    let pop = population(20, 50);
    let cfg = SamplingConfig { default: Policy::Probabilistic { p: 0.2, seed: Some(3) }, ..SamplingConfig::default() };
    let decide_all = || {
        let mut s = Sampler::new(&cfg).unwrap();
        pop.samples.iter().map(|&(i, x)| s.decide(&pop.series[i], pop.series[i].fingerprint(), x)).collect::<Vec<_>>()
    };
    assert_eq!(decide_all(), decide_all());
}
