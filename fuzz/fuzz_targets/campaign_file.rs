//! Fuzz target: A campaign file (TOML) through parsing and validation, with its file:line:col problems.
//! The checks live in `picket::fuzzing::campaign_file`, which `tests/it/fuzz_corpus.rs` also runs
//! on every file in `fuzz/regressions/campaign_file/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| picket::fuzzing::campaign_file(data));
