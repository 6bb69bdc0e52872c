//! StatsD aggregation throughput: lines per second through `StatsdAggregator::add_packet`
//! (decode, label mapping, aggregation) and the cost of a flush.
//!
//! `cargo bench -p telemetry-pipeline --features server --bench statsd -- --warm-up-time 1 --measurement-time 3`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use telemetry_pipeline::config::StatsdConfig;
use telemetry_pipeline::statsd::StatsdAggregator;

/// Datagrams of 20 lines each over `series` series: counters, gauges and timers with tags.
fn packets(series: usize, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|p| {
            let mut b = Vec::new();
            for k in 0..20 {
                let i = (p * 20 + k) % series;
                let line = match i % 3 {
                    0 => format!("api.requests.total.{i}:1|c|#env:production,service:checkout\n"),
                    1 => format!("memory.used_bytes.{i}:{}|g|#host:ip-10-0-1-42\n", p * 7),
                    _ => format!("api.request.duration.{i}:{}|ms|@0.5|#env:production,service:checkout\n", p % 250),
                };
                b.extend_from_slice(line.as_bytes());
            }
            b
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let pkts = packets(1_000, 500);
    let lines: u64 = 500 * 20;
    let mut g = c.benchmark_group("statsd");
    g.throughput(Throughput::Elements(lines));
    g.bench_function("add_packet 10k lines, 1k series", |b| {
        let mut a = StatsdAggregator::new(StatsdConfig::default());
        b.iter(|| {
            for p in &pkts {
                a.add_packet(p, 1_700_000_000_000);
            }
        });
    });
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("flush 1k series", |b| {
        let mut a = StatsdAggregator::new(StatsdConfig::default());
        let mut t = 1_700_000_000_000i64;
        b.iter(|| {
            for p in &pkts[..50] {
                a.add_packet(p, t);
            }
            t += 10_000;
            a.flush(t)
        });
    });
    g.finish();
}

#[allow(missing_docs)] // the macro generates an undocumented public function
mod group {
    use super::*;
    criterion_group!(benches, bench);
}
criterion_main!(group::benches);
