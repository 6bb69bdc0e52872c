//! Throughput of each detector on one core (samples scored per second) and memory per series.
//!
//! Series: 5-minute samples with a daily season (period 288) plus noise. Each detector is warmed
//! up and fitted on 4032 samples (14 days) outside the measurement; the measured batch scores
//! the next 10 080 samples (35 days), so it includes the periodic refits the detector schedules
//! (STL every 24 steps, Holt-Winters parameters every 2016 steps) unless the name says
//! "no refit". Memory per series is printed before the benchmarks.
//!
//! ```text
//! cargo bench -p telemetry-anomaly --bench detectors -- --warm-up-time 1 --measurement-time 3
//! ```

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use telemetry_anomaly::{
    Baseline, Detector, DetectorConfig, Ensemble, HoltWinters, ResidualDetector, Seasonality, StlBaseline, StlOptions,
};

const STEP: i64 = 300_000;
const WARM: usize = 4032;
const N: usize = 10_080;

fn value(i: usize) -> f64 {
    let p = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
    let noise = (((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as f64 / (1u64 << 24) as f64) - 0.5;
    100.0 + 20.0 * p.sin() + 5.0 * (2.0 * p).cos() + 2.0 * noise
}

fn warmed<D: Detector>(mut d: D) -> D {
    for i in 0..WARM {
        d.update(i as i64 * STEP, value(i)).unwrap();
    }
    d
}

fn bench_one<D: Detector + Clone>(c: &mut Criterion, name: &str, det: D) {
    let samples: Vec<(i64, f64)> = (WARM..WARM + N).map(|i| (i as i64 * STEP, value(i))).collect();
    let mut g = c.benchmark_group("score");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function(name, |b| {
        b.iter_batched(
            || det.clone(),
            |mut d| {
                for &(t, v) in &samples {
                    black_box(d.update(t, v).unwrap());
                }
                d
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn detectors(c: &mut Criterion) {
    let cfg = DetectorConfig { warmup: 864, ..DetectorConfig::default() };
    let no_refit = DetectorConfig { refit_every: 0, ..cfg.clone() };
    let hw = warmed(ResidualDetector::new(HoltWinters::new(Seasonality::Auto), cfg.clone()).unwrap());
    let hw_fixed = warmed(ResidualDetector::new(HoltWinters::new(Seasonality::Auto), no_refit).unwrap());
    let stl = warmed(ResidualDetector::new(StlBaseline::new(StlOptions::default()), cfg.clone()).unwrap());
    let ens = warmed(Ensemble::new(cfg.clone()).unwrap());
    println!(
        "memory per series after warm-up (history {} samples): holt-winters {} B (model alone {} B), stl {} B (model alone {} B), ensemble {} B",
        cfg.history,
        hw.memory_bytes(),
        hw.baseline().memory_bytes(),
        stl.memory_bytes(),
        stl.baseline().memory_bytes(),
        ens.memory_bytes()
    );
    println!("holt-winters with refit_every = 0 (window dropped after the fit): {} B", hw_fixed.memory_bytes());
    println!("detected period {:?}, step {} ms", hw.period(), hw.step_ms());

    // The bare Holt-Winters recursion (forecast + update), no scoring around it.
    let mut model = hw.baseline().clone();
    let values: Vec<f64> = (WARM..WARM + N).map(value).collect();
    let mut g = c.benchmark_group("score");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("holt-winters model step only", |b| {
        b.iter(|| {
            let mut acc = 0.0;
            for &v in &values {
                acc += model.forecast();
                model.observe(v);
            }
            black_box(acc)
        })
    });
    g.finish();

    bench_one(c, "holt-winters no refit", hw_fixed);
    bench_one(c, "holt-winters", hw);
    bench_one(c, "stl", stl);
    bench_one(c, "ensemble", ens);
}

fn fit_cost(c: &mut Criterion) {
    let history: Vec<f64> = (0..WARM).map(value).collect();
    let mut g = c.benchmark_group("fit");
    g.sample_size(10);
    g.bench_function("holt-winters full fit, 4032 samples, period 288", |b| {
        b.iter(|| {
            let mut m = HoltWinters::new(Seasonality::Auto);
            m.fit(&history, Some(288), true);
            black_box(m.forecast())
        })
    });
    g.bench_function("holt-winters warm refit, 4032 samples, period 288", |b| {
        let mut m = HoltWinters::new(Seasonality::Auto);
        m.fit(&history, Some(288), true);
        b.iter(|| {
            let mut m = m.clone();
            m.fit(&history, Some(288), false);
            black_box(m.forecast())
        })
    });
    g.bench_function("stl refit, 8 periods of 288", |b| {
        b.iter(|| {
            let mut m = StlBaseline::new(StlOptions::default());
            m.fit(&history, Some(288), false);
            black_box(m.forecast())
        })
    });
    g.bench_function("season detection, 4032 samples", |b| {
        b.iter(|| black_box(telemetry_anomaly::season::detect_period(&history, STEP, 2016)))
    });
    g.finish();
}

mod group {
    #![allow(missing_docs)] // the macro generates an undocumented public function
    use super::*;
    criterion_group!(benches, detectors, fit_cost);
}
criterion_main!(group::benches);
