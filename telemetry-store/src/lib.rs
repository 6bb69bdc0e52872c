//! # telemetry-store
//!
//! Head block, write-ahead log, on-disk blocks, tiered downsampling and retention.
//!
//! This crate is being built; its contents arrive with the issue that fills it (see the
//! workspace's `ARCHITECTURE.md`).
