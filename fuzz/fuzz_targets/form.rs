//! Fuzz target: Form bodies as the join flow and `/me` read them: fields, choices, the `back` address.
//! The checks live in `picket::fuzzing::form`, which `tests/it/fuzz_corpus.rs` also runs
//! on every file in `fuzz/regressions/form/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| picket::fuzzing::form(data));
