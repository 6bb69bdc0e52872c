//! PromQL queries: arbitrary query strings against a small in-memory store never panic; every
//! failure is a typed `QueryError` whose API error type is one of Prometheus's.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use telemetry_core::{Labels, MemStorage, STALE_NAN};
use telemetry_query::{ApiErrorType, Engine, EngineOptions};

fn store() -> &'static MemStorage {
    static DB: OnceLock<MemStorage> = OnceLock::new();
    DB.get_or_init(|| {
        let db = MemStorage::new();
        let series = [
            vec![("__name__", "http_requests_total"), ("job", "api"), ("instance", "0")],
            vec![("__name__", "http_requests_total"), ("job", "api"), ("instance", "1")],
            vec![("__name__", "http_requests_total"), ("job", "db"), ("instance", "0")],
            vec![("__name__", "latency_bucket"), ("le", "0.1")],
            vec![("__name__", "latency_bucket"), ("le", "1")],
            vec![("__name__", "latency_bucket"), ("le", "+Inf")],
            vec![("__name__", "gauge")],
        ];
        for (k, pairs) in series.iter().enumerate() {
            let Ok(l) = Labels::from_pairs(pairs.iter().copied()) else { continue };
            for i in 0..60i64 {
                let v = if i == 40 && k == 6 { STALE_NAN } else { (i * (k as i64 + 1)) as f64 };
                db.append(&l, i * 15_000, v);
            }
        }
        db
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 512 {
        return;
    }
    let query = String::from_utf8_lossy(data);
    let engine = Engine::new(EngineOptions {
        max_samples: 200_000,
        timeout: Some(std::time::Duration::from_secs(2)),
        ..EngineOptions::default()
    });
    let db = store();
    for r in [engine.instant_query(db, &query, 600_000), engine.range_query(db, &query, 0, 900_000, 30_000)] {
        if let Err(e) = r {
            let t = e.error_type();
            assert!(matches!(
                t,
                ApiErrorType::BadData | ApiErrorType::Execution | ApiErrorType::Timeout | ApiErrorType::Canceled
            ));
            assert!(!e.to_string().is_empty());
        }
    }
});
