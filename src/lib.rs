//! # telemetry
//!
//! The facade of the telemetry suite: it re-exports each member crate under a short name, so
//! an application can depend on `telemetry` alone. Libraries should depend on the member they
//! need (`telemetry-core`, `telemetry-compress`, ...) instead.
//!
//! ```
//! use telemetry::core::{Labels, Sample};
//!
//! let labels = Labels::from_pairs([("__name__", "up"), ("job", "node")]).unwrap();
//! assert_eq!(labels.to_string(), r#"up{job="node"}"#);
//! let s = Sample::new(1_700_000_000_000, 1.0);
//! assert!(!s.is_stale());
//! ```

pub use telemetry_agg as agg;
pub use telemetry_anomaly as anomaly;
pub use telemetry_compress as compress;
pub use telemetry_core as core;
pub use telemetry_index as index;
pub use telemetry_pipeline as pipeline;
pub use telemetry_query as query;
pub use telemetry_store as store;
