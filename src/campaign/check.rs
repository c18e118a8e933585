//! Loading campaign files and folders: what `picket campaign check` and the server read.
//!
//! Besides each file's own problems this catches what only shows across files: two
//! campaigns with the same `id` would share URLs and slot keys.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::validate::{self, Loaded, line_col};
use super::{Campaign, Problem};
use crate::domain::CampaignId;

/// Read and validate one file.
pub(crate) fn load(path: &Path) -> Result<Loaded, Vec<Problem>> {
    match std::fs::read_to_string(path) {
        Ok(src) => validate::parse(&src, path),
        Err(e) => Err(vec![file_problem(
            path,
            format!("cannot read the file: {e}"),
        )]),
    }
}

/// Check files and folders (a folder: every `*.toml` directly inside it, by name).
/// Returns the campaigns that are valid and every problem found, in path order.
pub fn check_paths(paths: &[PathBuf]) -> (Vec<Campaign>, Vec<Problem>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        if path.is_dir() {
            match toml_files_in(path) {
                Ok(found) if found.is_empty() => problems.push(file_problem(
                    path,
                    "no *.toml campaign files in this folder".to_string(),
                )),
                Ok(found) => files.extend(found),
                Err(e) => problems.push(file_problem(path, format!("cannot list the folder: {e}"))),
            }
        } else {
            files.push(path.clone());
        }
    }

    let mut campaigns = Vec::new();
    let mut first_seen: HashMap<CampaignId, PathBuf> = HashMap::new();
    for file in files {
        match load(&file) {
            Ok(loaded) => {
                let id = loaded.campaign.id.clone();
                if let Some(other) = first_seen.get(&id) {
                    let (line, col) = line_col(&loaded.src, loaded.id_at.start);
                    problems.push(Problem {
                        path: file.clone(),
                        line,
                        col,
                        message: format!(
                            "campaign id \"{id}\" is already used by {}: ids must be unique \
                             (they are in URLs and post keys)",
                            other.display()
                        ),
                    });
                } else {
                    first_seen.insert(id, file.clone());
                    campaigns.push(loaded.campaign);
                }
            }
            Err(mut p) => problems.append(&mut p),
        }
    }
    (campaigns, problems)
}

/// Every campaign in `dir`, or every problem if any file is wrong: a server should not
/// start with half of its campaigns.
pub fn load_dir(dir: &Path) -> Result<Vec<Campaign>, Vec<Problem>> {
    let (campaigns, problems) = check_paths(&[dir.to_path_buf()]);
    if problems.is_empty() {
        Ok(campaigns)
    } else {
        Err(problems)
    }
}

fn toml_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn file_problem(path: &Path, message: String) -> Problem {
    Problem {
        path: path.to_path_buf(),
        line: 1,
        col: 1,
        message,
    }
}
