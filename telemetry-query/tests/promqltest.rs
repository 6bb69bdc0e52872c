//! The PromQL test scripts: ours (`testdata/*.test`, always) and Prometheus's
//! (`../shared/data/promqltest`, ignored by default; checked against the recorded ratchet).

use std::path::PathBuf;

use telemetry_query::promqltest::{Report, Status, run_paths};

fn summarize(reports: &[Report], verbose: bool) -> (usize, usize, usize) {
    let (mut p, mut f, mut s) = (0, 0, 0);
    for r in reports {
        let name =
            r.path.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        println!("{name:<28} {:>5} passed {:>5} failed {:>5} skipped", r.passed(), r.failed(), r.skipped());
        for o in &r.outcomes {
            match &o.status {
                Status::Failed(why) => println!("  FAIL {name}:{} {}\n       {why}", o.line, o.header),
                Status::Skipped { reason, .. } if verbose => {
                    println!("  SKIP {name}:{} {}\n       {reason}", o.line, o.header)
                }
                _ => {}
            }
        }
        p += r.passed();
        f += r.failed();
        s += r.skipped();
    }
    println!("{p} passed, {f} failed, {s} skipped");
    (p, f, s)
}

#[test]
fn own_scripts_pass() {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata"));
    let reports = run_paths(&[dir]).expect("testdata readable");
    assert!(reports.len() >= 5, "expected our test scripts in testdata/");
    let (p, f, s) = summarize(&reports, true);
    assert!(p > 100, "too few evals in our scripts: {p}");
    assert_eq!(f, 0, "failed evals in our scripts");
    assert_eq!(s, 0, "skipped evals in our scripts");
}

#[test]
#[ignore = "needs ../shared/data"]
fn prometheus_scripts_meet_ratchet() {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/promqltest"));
    let reports = run_paths(&[dir]).expect("../shared/data/promqltest readable");
    let (p, _, _) = summarize(&reports, std::env::var_os("PROMQLTEST_VERBOSE").is_some());
    let ratchet: usize = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../promqltest-ratchet.txt"))
        .expect("promqltest-ratchet.txt")
        .trim()
        .parse()
        .expect("a number in promqltest-ratchet.txt");
    assert!(p >= ratchet, "{p} passed evals, below the ratchet of {ratchet}");
}
