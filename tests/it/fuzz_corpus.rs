//! The fuzzers' regression corpus, replayed by the normal test suite: every file in
//! `fuzz/regressions/<target>/` (minimised seeds and every input a fuzzer ever failed on)
//! goes through the same checks as the fuzz target of that name (`picket::fuzzing`), so
//! `cargo test` catches a finding coming back without cargo-fuzz or libFuzzer.

use std::path::{Path, PathBuf};

use picket::fuzzing::{self, TARGETS};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a readable folder").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// Run `check` on every file of `target`'s corpus; fail naming every file that panics.
fn replay(target: &str, check: fuzzing::Check) {
    let dir = corpus_dir(target);
    let files = files(&dir);
    assert!(!files.is_empty(), "{} has no inputs", dir.display());
    let failed: Vec<String> = files
        .iter()
        .filter(|f| {
            let data = std::fs::read(f).expect("a readable file");
            std::panic::catch_unwind(|| check(&data)).is_err()
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs fail (the panics are printed above): {failed:#?}",
        failed.len(),
        files.len()
    );
}

fn target(name: &str) -> fuzzing::Check {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no fuzz target {name}"))
}

#[test]
fn the_campaign_file_corpus_passes_its_checks() {
    replay("campaign_file", target("campaign_file"));
}

#[test]
fn the_durations_corpus_passes_its_checks() {
    replay("durations", target("durations"));
}

#[test]
fn the_form_corpus_passes_its_checks() {
    replay("form", target("form"));
}

#[test]
fn the_template_corpus_passes_its_checks() {
    replay("template", target("template"));
}

#[test]
fn the_facets_corpus_passes_its_checks() {
    replay("facets", target("facets"));
}

#[test]
fn the_declaration_corpus_passes_its_checks() {
    replay("declaration", target("declaration"));
}

#[test]
fn every_fuzz_target_has_a_corpus_and_every_corpus_a_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut targets: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    targets.sort();
    let names = |dir: &Path, ext: Option<&str>| -> Vec<String> {
        let mut v: Vec<String> = files_and_dirs(dir)
            .iter()
            .filter(|p| ext.is_none_or(|e| p.extension().is_some_and(|x| x == e)))
            .filter_map(|p| p.file_stem()?.to_str().map(str::to_string))
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&root.join("fuzz_targets"), Some("rs")), targets);
    assert_eq!(names(&root.join("regressions"), None), targets);
}

fn files_and_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a readable folder").path())
        .collect()
}
