//! Ingest throughput of the head (filled in below).
fn main() {}
