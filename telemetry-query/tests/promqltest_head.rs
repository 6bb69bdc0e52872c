//! Prometheus's PromQL test scripts against telemetry-store's head block (through the
//! `Queryable` interface): the head must answer every eval exactly as the in-memory reference
//! store does.

use std::path::PathBuf;

use telemetry_core::{Labels, MemStorage, Queryable};
use telemetry_query::promqltest::{Status, TestStorage, run_script_on};
use telemetry_store::{Head, HeadOptions, SyncPolicy};

struct HeadStore {
    base: PathBuf,
    generation: usize,
    head: Option<Head>,
    pending: Vec<(Labels, i64, f64)>,
}

impl HeadStore {
    fn new(name: &str) -> Self {
        let base = std::env::temp_dir().join(format!("telemetry-query-head-{}-{name}", std::process::id()));
        let mut s = HeadStore { base, generation: 0, head: None, pending: Vec::new() };
        s.clear().expect("head opens");
        s
    }
}

impl Drop for HeadStore {
    fn drop(&mut self) {
        self.head = None;
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

impl TestStorage for HeadStore {
    fn queryable(&self) -> &dyn Queryable {
        self.head.as_ref().expect("head is open")
    }
    fn append(&mut self, labels: &Labels, timestamp_ms: i64, value: f64) -> Result<(), String> {
        self.pending.push((labels.clone(), timestamp_ms, value));
        Ok(())
    }
    fn commit(&mut self) -> Result<(), String> {
        let head = self.head.as_ref().ok_or("head is closed")?;
        let mut app = head.appender();
        for (l, t, v) in self.pending.drain(..) {
            app.append(&l, t, v).map_err(|e| e.to_string())?;
        }
        app.commit().map_err(|e| e.to_string())?;
        Ok(())
    }
    fn clear(&mut self) -> Result<(), String> {
        self.head = None;
        self.pending.clear();
        self.generation += 1;
        let dir = self.base.join(self.generation.to_string());
        let _ = std::fs::remove_dir_all(&dir);
        let mut opts = HeadOptions { out_of_order_window_ms: i64::MAX / 4, ..HeadOptions::default() };
        opts.wal.sync = SyncPolicy::Never;
        let (head, _) = Head::open(&dir, opts).map_err(|e| e.to_string())?;
        self.head = Some(head);
        Ok(())
    }
}

#[test]
#[ignore = "needs ../shared/data"]
fn head_answers_like_memstorage() {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/promqltest"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("../shared/data/promqltest readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    files.sort();
    let mut differences = Vec::new();
    let (mut head_passed, mut mem_passed) = (0, 0);
    for f in &files {
        let text = std::fs::read_to_string(f).expect("script readable");
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mem = run_script_on(&text, &mut MemStorage::new());
        let head = run_script_on(&text, &mut HeadStore::new(&name));
        head_passed += head.passed();
        mem_passed += mem.passed();
        for (a, b) in mem.outcomes.iter().zip(&head.outcomes) {
            let same = matches!(
                (&a.status, &b.status),
                (Status::Passed, Status::Passed)
                    | (Status::Failed(_), Status::Failed(_))
                    | (Status::Skipped { .. }, Status::Skipped { .. })
            );
            if !same {
                differences.push(format!("{name}:{} {}: memory {:?}, head {:?}", a.line, a.header, a.status, b.status));
            }
        }
    }
    println!("head: {head_passed} passed; memory: {mem_passed} passed");
    for d in &differences {
        println!("{d}");
    }
    assert!(differences.is_empty(), "{} evals differ between the head and MemStorage", differences.len());
}
