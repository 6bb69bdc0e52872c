//! Prints every eval outcome of the given scripts (debug aid).
fn main() {
    let args: Vec<std::path::PathBuf> = std::env::args().skip(1).map(Into::into).collect();
    for r in telemetry_query::promqltest::run_paths(&args).unwrap_or_default() {
        for o in r.outcomes {
            println!("{}: {} => {:?}", o.line, o.header, o.status);
        }
    }
}
