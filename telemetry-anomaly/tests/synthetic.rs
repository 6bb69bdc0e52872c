//! Synthetic series with injected anomalies: each must be flagged within a stated delay, and
//! clean series must stay quiet.
//!
//! Series: a daily season of 48 steps (30-minute samples) with amplitude 10 around 100 and noise
//! of standard deviation 1; the detectors use [`DetectorConfig::default`] (3 sigma, 864-sample
//! warm-up), anomalies are injected at step 2000.

use telemetry_anomaly::{AnomalyError, DetectorConfig, DetectorKind, Direction, ModelState, Score, build_detector};

const STEP: i64 = 30 * 60 * 1000;
const PERIOD: usize = 48;
const AT: usize = 2000;
const KINDS: [DetectorKind; 5] = [
    DetectorKind::HoltWinters,
    DetectorKind::HwAdditive,
    DetectorKind::HwMultiplicative,
    DetectorKind::Stl,
    DetectorKind::Ensemble,
];

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform noise with standard deviation 1 (bounded by ±√3).
    fn bounded(&mut self) -> f64 {
        (self.uniform() - 0.5) * 12f64.sqrt()
    }
    /// Standard normal noise (Box-Muller).
    fn gauss(&mut self) -> f64 {
        let u = self.uniform().max(1e-300);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

fn season(i: usize) -> f64 {
    let p = (i % PERIOD) as f64 / PERIOD as f64 * std::f64::consts::TAU;
    // A non-sinusoidal daily shape: a sine plus its second harmonic.
    10.0 * p.sin() + 4.0 * (2.0 * p).cos()
}

fn clean(n: usize, seed: u64) -> Vec<f64> {
    let mut r = Rng(seed);
    (0..n).map(|i| 100.0 + season(i) + r.bounded()).collect()
}

fn run(kind: DetectorKind, cfg: DetectorConfig, values: &[f64]) -> Vec<Score> {
    let mut d = build_detector(kind, cfg).unwrap();
    values.iter().enumerate().map(|(i, &v)| d.update(i as i64 * STEP, v).unwrap()).collect()
}

fn first_anomaly_from(scores: &[Score], from: usize) -> Option<usize> {
    scores[from..].iter().position(|s| s.is_anomaly).map(|p| p + from)
}

/// Asserts no anomaly before `AT` (after warm-up) and one within `max_delay` steps after it.
fn assert_detected(name: &str, values: &[f64], max_delay: usize) {
    for kind in KINDS {
        let scores = run(kind, DetectorConfig::default(), values);
        let early: Vec<usize> = (900..AT).filter(|&i| scores[i].is_anomaly).collect();
        assert!(early.is_empty(), "{name}/{}: false alarms before the anomaly at {early:?}", kind.name());
        let hit = first_anomaly_from(&scores, AT);
        assert!(
            hit.is_some_and(|h| h - AT <= max_delay),
            "{name}/{}: first anomaly at {hit:?}, wanted within {max_delay} steps of {AT}",
            kind.name()
        );
    }
}

#[test]
fn spike_is_flagged_at_once() {
    let mut v = clean(2200, 1);
    v[AT] += 12.0;
    assert_detected("spike", &v, 0);
}

#[test]
fn spike_does_not_blind_the_next_one() {
    let mut v = clean(2200, 2);
    v[AT] += 40.0;
    v[AT + 3] += 8.0;
    for kind in KINDS {
        let s = run(kind, DetectorConfig::default(), &v);
        assert!(s[AT].is_anomaly && s[AT + 3].is_anomaly, "{}", kind.name());
    }
}

#[test]
fn level_shift_is_flagged_at_once() {
    let mut v = clean(2200, 3);
    for x in &mut v[AT..] {
        *x += 10.0;
    }
    assert_detected("level shift", &v, 0);
}

#[test]
fn variance_change_is_flagged_within_ten_steps() {
    let mut v = clean(2200, 4);
    let mut r = Rng(99);
    for x in &mut v[AT..] {
        *x += 5.0 * r.gauss();
    }
    assert_detected("variance change", &v, 10);
}

#[test]
fn seasonal_pattern_break_is_flagged_within_a_quarter_period() {
    // From AT on, the daily shape is flipped (peaks where troughs were); the mean is unchanged.
    let mut v = clean(2200, 5);
    for (i, x) in v.iter_mut().enumerate().skip(AT) {
        *x -= 2.0 * season(i);
    }
    // The first flipped samples sit near the zero crossing of the shape; give it 12 steps.
    assert_detected("pattern break", &v, PERIOD / 4);
}

#[test]
fn clean_seasonal_series_has_no_anomaly_in_10000_points() {
    // Bounded noise (uniform, σ = 1, |noise| <= 1.73σ): a correct baseline never reaches 3σ.
    let v = clean(10_864, 6);
    for kind in KINDS {
        let scores = run(kind, DetectorConfig::default(), &v);
        let after: Vec<usize> = (864..v.len()).filter(|&i| scores[i].is_anomaly).collect();
        assert!(after.is_empty(), "{}: {} anomalies, first {:?}", kind.name(), after.len(), after.first());
        assert!(scores[864..].iter().all(|s| s.state == ModelState::Ready));
    }
}

#[test]
fn gaussian_noise_false_alarm_rate_is_near_nominal() {
    // With N(0, 1) noise, 3σ two-sided is exceeded by 0.27% of points (27 in 10 000); the robust
    // scale is an estimate, so allow up to three times that.
    let mut r = Rng(7);
    let v: Vec<f64> = (0..10_864).map(|i| 100.0 + season(i) + r.gauss()).collect();
    for kind in [DetectorKind::HoltWinters, DetectorKind::Stl] {
        let scores = run(kind, DetectorConfig::default(), &v);
        let n = scores[864..].iter().filter(|s| s.is_anomaly).count();
        assert!(n <= 81, "{}: {n} of 10000 points flagged", kind.name());
    }
}

#[test]
fn direction_and_min_duration() {
    let mut v = clean(2200, 8);
    v[AT] -= 20.0;
    v[AT + 50] += 20.0;
    let up = DetectorConfig { direction: Direction::Up, ..DetectorConfig::default() };
    let s = run(DetectorKind::HoltWinters, up, &v);
    assert!(!s[AT].is_anomaly && s[AT + 50].is_anomaly);
    let s = run(DetectorKind::HoltWinters, DetectorConfig { min_duration: 2, ..DetectorConfig::default() }, &v);
    assert!(!s[AT].is_anomaly && !s[AT + 50].is_anomaly, "single points must not meet min_duration 2");
}

#[test]
fn suppression_merges_nearby_anomalies_into_one_event() {
    let mut v = clean(2300, 9);
    for k in [0, 3, 6] {
        v[AT + k] += 20.0; // 90 minutes apart: one event with a 2-hour suppression window
    }
    v[AT + 100] += 20.0; // a second event
    let cfg = DetectorConfig { suppression_ms: 2 * 3_600_000, ..DetectorConfig::default() };
    let mut d = build_detector(DetectorKind::HoltWinters, cfg).unwrap();
    let mut starts = Vec::new();
    let mut closed = Vec::new();
    for (i, &x) in v.iter().enumerate() {
        let s = d.update(i as i64 * STEP, x).unwrap();
        if i >= 864 {
            if s.event_start {
                starts.push(i);
            }
            closed.extend(s.closed_event);
        }
    }
    closed.extend(d.flush_event());
    assert_eq!(starts, vec![AT, AT + 100]);
    assert_eq!(closed.len(), 2);
    assert_eq!(closed[0].start_ms, AT as i64 * STEP);
    assert_eq!(closed[0].end_ms, (AT + 6) as i64 * STEP);
    assert_eq!(closed[0].points, 3);
    assert!(closed[0].peak_score >= 3.0);
}

#[test]
fn bad_samples_are_typed_errors_and_change_nothing() {
    let v = clean(1200, 10);
    let mut a = build_detector(DetectorKind::HoltWinters, DetectorConfig::default()).unwrap();
    let mut b = build_detector(DetectorKind::HoltWinters, DetectorConfig::default()).unwrap();
    for (i, &x) in v.iter().enumerate() {
        let t = i as i64 * STEP;
        if i == 1000 {
            assert!(
                matches!(a.update(t, f64::NAN), Err(AnomalyError::NonFiniteValue { timestamp_ms, .. }) if timestamp_ms == t)
            );
            assert!(matches!(a.update(t - 2 * STEP, 1.0), Err(AnomalyError::OutOfOrder { .. })));
        }
        assert_eq!(a.update(t, x).unwrap(), b.update(t, x).unwrap());
    }
}

#[test]
fn duplicates_gaps_and_irregular_sampling() {
    let v = clean(4000, 11);
    let mut r = Rng(12);
    let mut d = build_detector(DetectorKind::HoltWinters, DetectorConfig::default()).unwrap();
    let mut flagged = 0;
    for (i, &x) in v.iter().enumerate() {
        // Drop 10% of the samples and jitter the others by up to ±10% of a step.
        if i > 100 && r.uniform() < 0.1 {
            continue;
        }
        let t = i as i64 * STEP + ((r.uniform() - 0.5) * 0.2 * STEP as f64) as i64;
        let s = d.update(t, x).unwrap();
        if i % 97 == 0 {
            d.update(t, x).unwrap(); // duplicate timestamp
        }
        flagged += usize::from(i > 900 && s.is_anomaly);
    }
    assert!(flagged <= 3, "{flagged} anomalies on a clean irregular series");
    // A gap longer than max_gap_steps (288) makes the model stale: back to warm-up.
    let t = 4000 * STEP + 400 * STEP;
    assert_eq!(d.update(t, 100.0).unwrap().state, ModelState::WarmingUp);
}

#[test]
fn constant_series_does_not_divide_by_zero() {
    for kind in KINDS {
        let mut d = build_detector(kind, DetectorConfig::default()).unwrap();
        for i in 0..1500i64 {
            let s = d.update(i * STEP, 5.0).unwrap();
            assert!(s.normalized.is_finite() && s.scale > 0.0 && s.probability.is_finite(), "{}", kind.name());
            assert!(!s.is_anomaly, "{} at {i}", kind.name());
        }
        assert!(d.update(1500 * STEP, 6.0).unwrap().is_anomaly, "{}", kind.name());
        let mut z = build_detector(kind, DetectorConfig::default()).unwrap();
        for i in 0..1000i64 {
            assert!(z.update(i * STEP, 0.0).unwrap().normalized.is_finite());
        }
    }
}

#[test]
fn scores_are_causal() {
    // The score of a prefix does not depend on what comes after it.
    let v = clean(1500, 13);
    let full = run(DetectorKind::Stl, DetectorConfig::default(), &v);
    let mut w = v[..1200].to_vec();
    w.extend(std::iter::repeat_n(1e6, 300));
    let other = run(DetectorKind::Stl, DetectorConfig::default(), &w);
    assert_eq!(full[..1200], other[..1200]);
}
