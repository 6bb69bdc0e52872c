//! # telemetry-anomaly
//!
//! Streaming STL and Holt-Winters baselines with residual scoring for metric anomaly detection.
//!
//! This crate is being built; its contents arrive with the issue that fills it (see the
//! workspace's `ARCHITECTURE.md`).
