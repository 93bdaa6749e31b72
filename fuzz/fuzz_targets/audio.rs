//! cargo-fuzz target: see `fuzz/targets.rs` for what `audio` checks.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::audio(data));
