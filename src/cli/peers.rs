//! `picket host key` (this host's public key, one line to paste into a peer's `[[peers]]`)
//! and `picket peers CAMPAIGN` (every peer with its status, counts and last check, as
//! `picket serve`'s peers task last recorded them).

use anyhow::Context;

use super::Format;
use super::participate::Ctx;
use crate::config::Settings;
use crate::federation::{self, HostKey};

/// The verifier key line; creates the key file on first use, as `picket serve` would.
pub fn host_key(settings: &Settings) -> anyhow::Result<()> {
    let key = HostKey::open(
        settings.host_key.as_ref(),
        &federation::key_file_for(&settings.database_url),
    )
    .context("opening the host key")?;
    println!("{}", key.verifier(&settings.public_url));
    Ok(())
}

pub async fn peers(ctx: &Ctx, id: &str, format: Format) -> anyhow::Result<()> {
    let campaigns = crate::campaign::load_dir(&ctx.settings.campaigns_dir).map_err(|problems| {
        anyhow::anyhow!(
            "the campaigns in {} do not check ({} problem(s)): run `picket campaign check`",
            ctx.settings.campaigns_dir.display(),
            problems.len()
        )
    })?;
    let c = campaigns.iter().find(|c| &*c.id == id).with_context(|| {
        format!(
            "no campaign {id} in {}",
            ctx.settings.campaigns_dir.display()
        )
    })?;
    let report = crate::stats::Report::compute(ctx.store.as_ref(), c, ctx.clock.now()).await?;
    let hosts = &report.hosts;
    let configured: Vec<String> = ctx
        .settings
        .peers
        .iter()
        .map(|p| p.url.trim_end_matches('/').to_string())
        .collect();
    let shown: Vec<_> = hosts
        .peers
        .iter()
        .filter(|p| configured.contains(&p.url))
        .collect();
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = shown
                .iter()
                .map(|p| {
                    let mut v = serde_json::to_value(p).unwrap_or_default();
                    v["id"] = serde_json::Value::String(p.url.clone());
                    v
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        Format::Text => {
            println!(
                "{} signatures, {} strikers, {} published across {} host(s) (this one and verified peers)",
                hosts.signatures, hosts.strikers, hosts.published, hosts.counted_hosts
            );
            for p in &shown {
                let why = if p.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", p.detail)
                };
                println!(
                    "{}  {}{why}  signatures {}  strikers {}  published {}  checked {}",
                    p.url,
                    p.status.as_str(),
                    p.signatures,
                    p.strikers,
                    p.published,
                    p.checked_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
            }
            for url in configured
                .iter()
                .filter(|u| !shown.iter().any(|p| &p.url == *u))
            {
                println!("{url}  not checked yet (`picket serve` checks peers while it runs)");
            }
            if configured.is_empty() {
                println!("No [[peers]] in the settings.");
            }
        }
    }
    Ok(())
}
