//! # telemetry-pipeline
//!
//! The telemetry crates wired into an ingest, aggregate, detect and query pipeline.
//!
//! This crate is being built; its contents arrive with the issue that fills it (see the
//! workspace's `ARCHITECTURE.md`).
