//! Encode and decode speed of the Gorilla XOR chunk next to the `tsz` crate on the same samples,
//! and of ALP and Chimp128 on values, and of the adaptive `store` chunk at 120 samples (the head's
//! chunks) and 2048 (the block writer's).
//!
//! Data: the 13 real series of `../shared/data/prometheus-chunks/*.samples.csv` (cut into chunks
//! of 120 samples, as the store cuts them) and `../shared/data/codec/city_temperature_f_tw.bin`
//! (131,072 decimal values) when present; otherwise synthetic stand-ins of the same shape.
//! `tsz` is given seconds (its format is second-resolution), our chunk milliseconds.
//!
//! Times are the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time: on a
//! shared 2-core machine wall time mostly measures the other processes.
//!
//! Run: `cargo bench -p telemetry-compress --bench codecs -- --warm-up-time 1 --measurement-time 3`

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use telemetry_compress::codec::{Alp, Chimp128, Codec};
use telemetry_compress::{XorChunk, decode_store_chunk, decode_xor_chunk, encode_store_chunk_into};
use tsz::stream::{BufferedReader, BufferedWriter};
use tsz::{DataPoint, Decode, Encode, StdDecoder, StdEncoder};

/// CPU time of the calling thread.
struct CpuTime(WallTime);

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for CpuTime {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        thread_cpu()
    }
    fn end(&self, i: Duration) -> Duration {
        thread_cpu().saturating_sub(i)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.0.formatter()
    }
}

type C = Criterion<CpuTime>;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data");
const CHUNK: usize = 120;

fn series() -> Vec<(Vec<i64>, Vec<f64>)> {
    let mut out = Vec::new();
    for i in 0..13 {
        let Ok(text) = std::fs::read_to_string(format!("{DATA}/prometheus-chunks/{i:02}.samples.csv")) else {
            break;
        };
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        for l in text.lines().skip(1) {
            let mut f = l.split(',');
            let (Some(t), Some(_), Some(b)) = (f.next(), f.next(), f.next()) else { continue };
            let (Ok(t), Ok(b)) = (t.parse::<i64>(), u64::from_str_radix(b, 16)) else { continue };
            ts.push(t);
            vs.push(f64::from_bits(b));
        }
        out.push((ts, vs));
    }
    if out.is_empty() {
        eprintln!("../shared/data missing: synthetic series");
        for s in 0..13u64 {
            let ts: Vec<i64> = (0..3600).map(|i| 1_795_264_945_122 + i * 1000).collect();
            let vs: Vec<f64> = (0..3600u64).map(|i| ((i * (s + 7) * 2_654_435_761) % 10_000) as f64 / 100.0).collect();
            out.push((ts, vs));
        }
    }
    out
}

fn chunks(series: &[(Vec<i64>, Vec<f64>)]) -> Vec<(&[i64], &[f64])> {
    series.iter().flat_map(|(t, v)| t.chunks(CHUNK).zip(v.chunks(CHUNK))).collect()
}

fn decimal_values() -> Vec<f64> {
    match std::fs::read(format!("{DATA}/codec/city_temperature_f_tw.bin")) {
        Ok(b) => b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
        Err(_) => (0..131_072u64).map(|i| ((i * 2_654_435_761) % 2000) as f64 / 10.0 - 50.0).collect(),
    }
}

fn encode_ours(chunks: &[(&[i64], &[f64])]) -> Vec<XorChunk> {
    chunks
        .iter()
        .map(|(t, v)| {
            let mut c = XorChunk::with_capacity(CHUNK * 2);
            for (&t, &v) in t.iter().zip(v.iter()) {
                c.append(t, v).unwrap();
            }
            c
        })
        .collect()
}

fn encode_tsz(chunks: &[(&[i64], &[f64])]) -> Vec<Box<[u8]>> {
    chunks
        .iter()
        .map(|(t, v)| {
            let start = (t[0] / 1000) as u64;
            let mut e = StdEncoder::new(start, BufferedWriter::with_capacity(CHUNK * 2));
            for (&t, &v) in t.iter().zip(v.iter()) {
                e.encode(DataPoint::new((t / 1000) as u64, v));
            }
            e.close()
        })
        .collect()
}

fn bench_gorilla(c: &mut C) {
    let s = series();
    let ch = chunks(&s);
    let n: usize = ch.iter().map(|c| c.0.len()).sum();
    let ours = encode_ours(&ch);
    let theirs = encode_tsz(&ch);
    let ob: usize = ours.iter().map(|c| c.size_bytes()).sum();
    let tb: usize = theirs.iter().map(|b| b.len()).sum();
    eprintln!("gorilla: {n} samples in {} chunks; ours {ob} bytes, tsz {tb} bytes", ch.len());
    let mut g = c.benchmark_group("gorilla");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(BenchmarkId::new("encode", "ours"), |b| b.iter(|| black_box(encode_ours(black_box(&ch)))));
    g.bench_function(BenchmarkId::new("encode", "tsz"), |b| b.iter(|| black_box(encode_tsz(black_box(&ch)))));
    let (mut ts, mut vs) = (Vec::with_capacity(n), Vec::with_capacity(n));
    g.bench_function(BenchmarkId::new("decode", "ours"), |b| {
        b.iter(|| {
            ts.clear();
            vs.clear();
            for c in &ours {
                decode_xor_chunk(c.bytes(), &mut ts, &mut vs).unwrap();
            }
            black_box((&ts, &vs));
        })
    });
    g.bench_function(BenchmarkId::new("decode", "tsz"), |b| {
        b.iter(|| {
            ts.clear();
            vs.clear();
            for bytes in &theirs {
                let mut d = StdDecoder::new(BufferedReader::new(bytes.clone()));
                while let Ok(p) = d.next() {
                    ts.push(p.get_time() as i64);
                    vs.push(p.get_value());
                }
            }
            black_box((&ts, &vs));
        })
    });
    g.finish();
}

fn bench_values(c: &mut C) {
    let vs = decimal_values();
    let n = vs.len();
    let mut g = c.benchmark_group("values");
    g.throughput(Throughput::Elements(n as u64));
    for codec in [&Alp as &dyn Codec, &Chimp128] {
        let mut enc = Vec::new();
        codec.encode_values(&vs, &mut enc).unwrap();
        eprintln!("{}: {:.2} bits/value on {n} values", codec.name(), enc.len() as f64 * 8.0 / n as f64);
        let mut out = Vec::with_capacity(enc.len() * 2);
        g.bench_function(BenchmarkId::new("encode", codec.name()), |b| {
            b.iter(|| {
                out.clear();
                codec.encode_values(black_box(&vs), &mut out).unwrap();
                black_box(&out);
            })
        });
        let mut back = Vec::with_capacity(n);
        g.bench_function(BenchmarkId::new("decode", codec.name()), |b| {
            b.iter(|| {
                back.clear();
                codec.decode_values(black_box(&enc), &mut back).unwrap();
                black_box(&back);
            })
        });
    }
    g.finish();
}

fn bench_store(c: &mut C) {
    let s = series();
    let mut g = c.benchmark_group("store");
    for size in [CHUNK, 2048] {
        let ch: Vec<(&[i64], &[f64])> = s.iter().flat_map(|(t, v)| t.chunks(size).zip(v.chunks(size))).collect();
        let n: usize = ch.iter().map(|c| c.0.len()).sum();
        let enc: Vec<Vec<u8>> = ch
            .iter()
            .map(|(t, v)| {
                let mut out = Vec::new();
                encode_store_chunk_into(t, v, &mut out).unwrap();
                out
            })
            .collect();
        let bytes: usize = enc.iter().map(|b| b.len()).sum();
        eprintln!("store {size}: {n} samples, {:.3} bytes/sample", bytes as f64 / n as f64);
        g.throughput(Throughput::Elements(n as u64));
        let mut out = Vec::with_capacity(bytes * 2);
        g.bench_function(BenchmarkId::new("encode", size), |b| {
            b.iter(|| {
                out.clear();
                for (t, v) in &ch {
                    encode_store_chunk_into(t, v, &mut out).unwrap();
                }
                black_box(&out);
            })
        });
        let (mut ts, mut vs) = (Vec::with_capacity(n), Vec::with_capacity(n));
        g.bench_function(BenchmarkId::new("decode", size), |b| {
            b.iter(|| {
                ts.clear();
                vs.clear();
                for e in &enc {
                    decode_store_chunk(e, &mut ts, &mut vs).unwrap();
                }
                black_box((&ts, &vs));
            })
        });
    }
    g.finish();
}

// The macro generates an undocumented function.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group! {
        name = benches;
        config = Criterion::default().with_measurement(CpuTime(WallTime));
        targets = bench_gorilla, bench_values, bench_store
    }
}
use group::benches;
criterion_main!(benches);
