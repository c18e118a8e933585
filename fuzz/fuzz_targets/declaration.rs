//! Fuzz target: A declaration's Markdown as the campaign page renders it, its normal form, hash and proposed changes.
//! The checks live in `picket::fuzzing::declaration`, which `tests/it/fuzz_corpus.rs` also runs
//! on every file in `fuzz/regressions/declaration/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| picket::fuzzing::declaration(data));
