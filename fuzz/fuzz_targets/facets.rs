//! Fuzz target: Bluesky rich-text facets: byte offsets on character boundaries, inside the text, not overlapping.
//! The checks live in `picket::fuzzing::facets`, which `tests/it/fuzz_corpus.rs` also runs
//! on every file in `fuzz/regressions/facets/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| picket::fuzzing::facets(data));
