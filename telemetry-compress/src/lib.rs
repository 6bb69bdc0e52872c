//! # telemetry-compress
//!
//! Gorilla-compatible chunks, research codecs (Chimp128, ALP) and an adaptive chunk format for time series.
//!
//! This crate is being built; its contents arrive with the issue that fills it (see the
//! workspace's `ARCHITECTURE.md`).
