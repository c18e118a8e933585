//! Fuzz target: Post templates rendered with arbitrary template text and variables.
//! The checks live in `picket::fuzzing::template`, which `tests/it/fuzz_corpus.rs` also runs
//! on every file in `fuzz/regressions/template/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| picket::fuzzing::template(data));
