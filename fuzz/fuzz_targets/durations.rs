//! Fuzz target: Durations and cadences: campaign `when`/`window`, the join form's `every`, the CLI's `--every`, and the slots of a pledge.
//! The checks live in `picket::fuzzing::durations`, which `tests/it/fuzz_corpus.rs` also runs
//! on every file in `fuzz/regressions/durations/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| picket::fuzzing::durations(data));
