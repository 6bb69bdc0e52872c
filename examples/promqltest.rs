//! Runs PromQL test scripts (Prometheus's `promqltest` format) against the engine over the
//! in-memory store, and prints per-file and total counts.
//!
//! ```text
//! cargo run --release --example promqltest -- ../shared/data/promqltest [-v]
//! ```
//!
//! `-v` lists every failed and skipped eval with its reason (skips are always listed per
//! reason class). The last line is `N passed, M failed, K skipped`.

use std::path::PathBuf;
use std::process::ExitCode;

use telemetry_query::promqltest::{Status, run_paths};

fn main() -> ExitCode {
    let mut verbose = false;
    let mut paths = Vec::new();
    for a in std::env::args().skip(1) {
        if a == "-v" || a == "--verbose" {
            verbose = true;
        } else {
            paths.push(PathBuf::from(a));
        }
    }
    if paths.is_empty() {
        eprintln!("usage: promqltest [-v] PATH...");
        return ExitCode::from(2);
    }
    let reports = match run_paths(&paths) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let (mut p, mut f, mut s, mut u) = (0, 0, 0, 0);
    println!("{:<28} {:>7} {:>7} {:>7} {:>12}", "file", "passed", "failed", "skipped", "unsupported");
    for r in &reports {
        let name =
            r.path.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        println!("{:<28} {:>7} {:>7} {:>7} {:>12}", name, r.passed(), r.failed(), r.skipped(), r.unsupported());
        p += r.passed();
        f += r.failed();
        s += r.skipped();
        u += r.unsupported();
        for o in &r.outcomes {
            match &o.status {
                Status::Failed(why) if verbose => println!("  FAIL {name}:{} {}\n       {why}", o.line, o.header),
                Status::Skipped { reason, .. } if verbose => {
                    println!("  SKIP {name}:{} {}\n       {reason}", o.line, o.header)
                }
                _ => {}
            }
        }
    }
    println!("skipped for an unsupported feature: {u} of {s}");
    println!("{p} passed, {f} failed, {s} skipped");
    ExitCode::SUCCESS
}
