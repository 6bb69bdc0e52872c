//! Bad queries give typed errors, never panics: random strings, random token soups and
//! mutated valid queries against a small store.

use std::sync::OnceLock;

use proptest::prelude::*;
use telemetry_core::{Labels, MemStorage};
use telemetry_query::{ApiErrorType, Engine, EngineOptions, QueryError};

fn store() -> &'static MemStorage {
    static DB: OnceLock<MemStorage> = OnceLock::new();
    DB.get_or_init(|| {
        let db = MemStorage::new();
        for (k, job) in ["api", "db"].iter().enumerate() {
            let l = Labels::from_pairs([("__name__", "m_total"), ("job", job)]).unwrap();
            let b = Labels::from_pairs([("__name__", "h_bucket"), ("le", if k == 0 { "1" } else { "+Inf" })]).unwrap();
            for i in 0..40i64 {
                db.append(&l, i * 15_000, (i * (k as i64 + 1)) as f64);
                db.append(&b, i * 15_000, (i * (k as i64 + 1)) as f64);
            }
        }
        db
    })
}

fn engine() -> Engine {
    Engine::new(EngineOptions { max_samples: 100_000, ..EngineOptions::default() })
}

fn check(q: &str) {
    let e = engine();
    for r in [e.instant_query(store(), q, 300_000), e.range_query(store(), q, 0, 600_000, 30_000)] {
        if let Err(err) = r {
            assert_ne!(err.error_type(), ApiErrorType::Internal, "{q:?}: {err}");
        }
    }
}

const TOKENS: &[&str] = &[
    "m_total",
    "h_bucket",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "5m",
    "1s",
    ":",
    "1m",
    ",",
    "job",
    "=",
    "=~",
    "!=",
    "\"api\"",
    "\".*\"",
    "rate",
    "sum",
    "by",
    "without",
    "topk",
    "2",
    "0.5",
    "-1",
    "NaN",
    "Inf",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    "==",
    ">",
    "bool",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "@",
    "start()",
    "end()",
    "histogram_quantile",
    "label_replace",
    "\"x\"",
    "\"$1\"",
    "count_values",
    "quantile_over_time",
    "absent",
    "scalar",
    "vector",
    "time()",
    "sort_by_label",
    "predict_linear",
    "clamp",
    "limitk",
    "limit_ratio",
    "1e308",
    "-1e308",
    "10000d",
    "1ms",
    "stddev",
    "avg_over_time",
    "deriv",
    "holt_winters",
    "round",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_strings_never_panic(q in "\\PC{0,60}") {
        check(&q);
    }

    #[test]
    fn token_soups_never_panic(toks in proptest::collection::vec(proptest::sample::select(TOKENS), 1..14)) {
        check(&toks.join(" "));
        check(&toks.concat());
    }
}

#[test]
fn limits_and_mistakes_are_typed() {
    let e = engine();
    let db = store();
    let cases: &[(&str, ApiErrorType)] = &[
        ("sum(m_total", ApiErrorType::BadData),
        ("-:[099999999999999999999999999999999999999999999999999999999999999999999901:]-%-", ApiErrorType::BadData),
        ("m_total[1e300]", ApiErrorType::BadData),
        ("m_total offset 1e300", ApiErrorType::BadData),
        ("rate(m_total)", ApiErrorType::BadData),
        ("m_total[5m] + 1", ApiErrorType::BadData),
        ("histogram_count(m_total)", ApiErrorType::BadData),
        ("m_total + ignoring(job) m_total", ApiErrorType::Execution),
        ("count_over_time(m_total[100000d:1ms])", ApiErrorType::Execution),
        ("label_replace(m_total, \"job\", \"x\", \"job\", \".*\")", ApiErrorType::Execution),
    ];
    for (q, t) in cases {
        let err = e.instant_query(db, q, 300_000).expect_err(q);
        assert_eq!(err.error_type(), *t, "{q}: {err}");
    }
    let err = e.range_query(db, "m_total", 0, 10_000_000_000, 1).unwrap_err();
    assert!(matches!(err, QueryError::TooManyPoints { .. }));
    assert_eq!(err.error_type(), ApiErrorType::BadData);
    let err = e.range_query(db, "m_total[1m]", 0, 60_000, 1_000).unwrap_err();
    assert_eq!(err.error_type(), ApiErrorType::BadData);
    let tiny = Engine::new(EngineOptions { max_samples: 5, ..EngineOptions::default() });
    let err = tiny.instant_query(db, "sum_over_time(m_total[10m])", 300_000).unwrap_err();
    assert!(matches!(err, QueryError::TooManySamples { .. }));
    assert_eq!(err.error_type(), ApiErrorType::Execution);
    let slow = Engine::new(EngineOptions { timeout: Some(std::time::Duration::ZERO), ..EngineOptions::default() });
    let err = slow.instant_query(db, "m_total", 300_000).unwrap_err();
    assert_eq!(err.error_type(), ApiErrorType::Timeout);
}
