//! The pipeline on the bundled real excerpt. Until telemetry-pipeline lands it runs what exists:
//! it reads `testdata/excerpt-20m.om.gz` and reports what it holds.
//!
//! ```text
//! cargo run --release --example pipeline [-- --input FILE]
//! ```

use std::io::{BufRead, BufReader};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let input = match args.iter().position(|a| a == "--input") {
        Some(i) => args.get(i + 1).cloned().ok_or("--input needs a file")?,
        None => concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/excerpt-20m.om.gz").to_string(),
    };
    let file = std::fs::File::open(&input).map_err(|e| format!("{input}: {e}"))?;
    let reader = BufReader::new(flate2::read::GzDecoder::new(file));
    let (mut families, mut samples) = (0u64, 0u64);
    for line in reader.lines() {
        let line = line?;
        if line.starts_with("# TYPE") {
            families += 1;
        } else if !line.starts_with('#') && !line.is_empty() {
            samples += 1;
        }
    }
    println!("{input}: {families} families, {samples} samples");
    Ok(())
}
