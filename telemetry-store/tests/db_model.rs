//! Property test: any sequence of appends (in order, late within the head's window, or older
//! than the persisted range), maintenance rounds, forced flushes and reopenings reads back
//! exactly as a simple model (a `BTreeMap` per series) says.

mod common;

use common::{Model, read_model, scratch, small_db_opts};
use proptest::prelude::*;
use telemetry_core::Labels;
use telemetry_store::SyncPolicy;
use telemetry_store::db::Db;

#[derive(Debug, Clone)]
enum Op {
    /// Series, step forward of the clock (ms), lateness (ms) of this sample behind the clock,
    /// value bits.
    Append(usize, i64, i64, u64),
    Maintain,
    PersistAll,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (0..4usize, 0..4_000i64, prop_oneof![3 => Just(0i64), 1 => 0..20_000i64, 1 => 0..200_000i64], any::<u64>())
            .prop_map(|(s, step, late, v)| Op::Append(s, step, late, v)),
        3 => Just(Op::Maintain),
        1 => Just(Op::PersistAll),
        1 => Just(Op::Reopen),
    ]
}

fn labels(i: usize) -> Labels {
    Labels::from_pairs([("__name__", "model"), ("s", &i.to_string())]).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("DB_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24),
        ..ProptestConfig::default()
    })]
    #[test]
    fn db_matches_model(ops in proptest::collection::vec(op(), 1..150)) {
        let dir = scratch();
        let (mut db, _) = Db::open(dir.path(), small_db_opts(SyncPolicy::Never)).unwrap();
        let mut model = Model::new();
        let mut clock = 0i64;
        for op in ops {
            match op {
                Op::Append(s, step, late, bits) => {
                    clock += step;
                    let t = clock - late;
                    let l = labels(s);
                    if model.get(&l).is_some_and(|m| m.contains_key(&t)) {
                        continue; // duplicates have their own tests
                    }
                    let mut app = db.appender();
                    if app.append(&l, t, f64::from_bits(bits)).is_err() {
                        continue; // refused (older than the head's window): not stored
                    }
                    let sum = app.commit().unwrap();
                    prop_assert_eq!(sum.head.refused + sum.out_of_order_refused, 0);
                    model.entry(l).or_default().insert(t, bits);
                }
                Op::Maintain => {
                    db.maintain(clock).unwrap();
                }
                Op::PersistAll => {
                    db.persist_head(i64::MAX).unwrap();
                }
                Op::Reopen => {
                    drop(db);
                    db = Db::open(dir.path(), small_db_opts(SyncPolicy::Never)).unwrap().0;
                }
            }
        }
        prop_assert_eq!(read_model(&db), model.clone());
        db.maintain(clock).unwrap();
        prop_assert_eq!(read_model(&db), model.clone());
        drop(db);
        let (db, _) = Db::open(dir.path(), small_db_opts(SyncPolicy::Never)).unwrap();
        prop_assert_eq!(read_model(&db), model);
    }
}
