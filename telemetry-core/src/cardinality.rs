//! Cardinality limits.
