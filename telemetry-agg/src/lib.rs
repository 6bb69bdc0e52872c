//! # telemetry-agg
//!
//! Tumbling-window aggregation with t-digest, DDSketch and HyperLogLog, mergeable rollups and sampling policies.
//!
//! This crate is being built; its contents arrive with the issue that fills it (see the
//! workspace's `ARCHITECTURE.md`).
