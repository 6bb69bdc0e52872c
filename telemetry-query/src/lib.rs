//! # telemetry-query
//!
//! A PromQL evaluator over any telemetry-core storage, with the Prometheus HTTP API's data shapes.
//!
//! This crate is being built; its contents arrive with the issue that fills it (see the
//! workspace's `ARCHITECTURE.md`).
