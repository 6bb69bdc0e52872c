//! # telemetry-index
//!
//! Inverted index from label pairs to series postings with Prometheus matcher semantics.
//!
//! This crate is being built; its contents arrive with the issue that fills it (see the
//! workspace's `ARCHITECTURE.md`).
