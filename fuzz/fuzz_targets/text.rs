//! Prometheus text 0.0.4 decoder: arbitrary bytes never panic, and every decoded entry
//! re-encodes to text that decodes to the same entry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telemetry_core::format::text::Flavor;

#[path = "text_common.rs"]
mod text_common;

fuzz_target!(|data: &[u8]| text_common::check(data, Flavor::Prometheus));
