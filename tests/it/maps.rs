//! The maps newcomers read stay true: CONTRIBUTING.md's structure table names every entry
//! of `src/` and every file of each folder in it, and `lib.rs`'s `//! # Layout` names
//! every module folder. A file added without its line in the map fails here, with the
//! names that are missing.

use std::path::Path;

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_structure_map_in_contributing_names_everything_in_src() {
    let doc = std::fs::read_to_string(root().join("CONTRIBUTING.md")).unwrap();
    let src = root().join("src");
    let mut missing = Vec::new();
    for entry in entries(&src) {
        if !doc.contains(&format!("`src/{entry}")) {
            missing.push(format!("src/{entry}"));
        }
        if !src.join(&entry).is_dir() {
            continue;
        }
        // The folder's row: the table line that names `src/<folder>/`.
        let Some(row) = doc
            .lines()
            .find(|l| l.starts_with('|') && l.contains(&format!("`src/{entry}/`")))
        else {
            missing.push(format!("a row for src/{entry}/"));
            continue;
        };
        for file in entries(&src.join(&entry)) {
            // mod.rs is what the row itself describes.
            if file == "mod.rs" {
                continue;
            }
            let stem = file.strip_suffix(".rs").unwrap_or(&file);
            let named = [
                format!("`{file}"),
                format!("`{stem}`"),
                format!("`{stem}/"),
                format!("`{stem} "),
            ]
            .iter()
            .any(|n| row.contains(n.as_str()));
            if !named {
                missing.push(format!("src/{entry}/{file}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "CONTRIBUTING.md's structure map does not name: {missing:?}"
    );
}

#[test]
fn the_layout_in_lib_rs_names_every_module_folder() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let layout: String = lib
        .lines()
        .take_while(|l| l.starts_with("//!") || l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        layout.contains("# Layout"),
        "lib.rs opens with a Layout map"
    );
    let missing: Vec<String> = entries(&root().join("src"))
        .into_iter()
        .filter(|e| root().join("src").join(e).is_dir())
        .filter(|e| !layout.contains(e.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "lib.rs's Layout does not name: {missing:?}"
    );
}
