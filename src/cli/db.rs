//! `picket db copy` and `picket db backup`: moving an installation between SQLite and
//! PostgreSQL, and keeping a copy of a SQLite one (the work is in `store::copy`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::app::redact_url;
use crate::store::copy;

/// Copy, verify, and say table by table what was copied and checked.
pub async fn copy(from: &str, to: &str) -> anyhow::Result<ExitCode> {
    let (shown_from, shown_to) = (redact_url(from), redact_url(to));
    println!("copying {shown_from} to {shown_to}");
    let tables = copy::copy(from, to, |t| {
        println!(
            "  {:<24} {:>10} rows ({} new)  checksum {}  verified",
            t.sum.table, t.sum.rows, t.written, t.sum.checksum
        );
    })
    .await
    .with_context(|| format!("copying {shown_from} to {shown_to}"))?;
    let rows: u64 = tables.iter().map(|t| t.sum.rows).sum();
    println!(
        "done: {} tables, {rows} rows, every table's row count and checksum equal on both sides",
        tables.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Back up, then say where and how large.
pub async fn backup(url: &str, to: &Path) -> anyhow::Result<ExitCode> {
    copy::backup(url, to)
        .await
        .with_context(|| format!("backing up {} to {}", redact_url(url), to.display()))?;
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    println!(
        "backed up {} to {} ({bytes} bytes, integrity check ok)",
        redact_url(url),
        to.display()
    );
    Ok(ExitCode::SUCCESS)
}
