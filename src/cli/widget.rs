//! `picket widget export DIR`: the strike widget as static files for a site with no picket
//! host of its own (the files are written by `crate::widget::export`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::campaign;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::widget::{self, CampaignConfig, Config, Counts};

pub async fn export(
    settings: Settings,
    dir: &Path,
    only: Option<&str>,
    public_url: Option<String>,
    no_counters: bool,
) -> anyhow::Result<ExitCode> {
    let public_url = public_url.unwrap_or_else(|| settings.public_url.clone());
    let base = match url::Url::parse(&public_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
        _ => {
            eprintln!(
                "error: the public URL `{public_url}` is not an http(s) address like https://strike.example.org"
            );
            return Ok(ExitCode::from(2));
        }
    };
    let campaigns = match campaign::load_dir(&settings.campaigns_dir) {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems {
                println!("{p}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    let campaigns: Vec<_> = match only {
        Some(id) => match campaigns.into_iter().find(|c| c.id == id) {
            Some(c) => vec![c],
            None => {
                eprintln!(
                    "error: no campaign `{id}` in {}",
                    settings.campaigns_dir.display()
                );
                return Ok(ExitCode::from(2));
            }
        },
        None => campaigns,
    };
    if campaigns.is_empty() {
        eprintln!("error: no campaign in {}", settings.campaigns_dir.display());
        return Ok(ExitCode::from(2));
    }

    let clock = SystemClock;
    let now = clock.now();
    let store = if no_counters {
        None
    } else {
        Some(
            crate::store::open(&settings.database_url)
                .await
                .with_context(|| {
                    format!(
                        "opening the database {} for the counters (--no-counters leaves them out)",
                        crate::app::redact_url(&settings.database_url)
                    )
                })?,
        )
    };
    let mut configs = Vec::with_capacity(campaigns.len());
    for c in &campaigns {
        let counts = match &store {
            Some(store) => Some(Counts {
                signatures: store.signature_count(&c.id).await?,
                strikers: store.active_pledge_count(&c.id, now).await?,
                hosts: None,
            }),
            None => None,
        };
        configs.push(CampaignConfig::new(c, counts, base.as_str()));
    }
    let config = Config::new(configs, now, true);
    let files = widget::export(dir, &config)?;
    for f in &files {
        println!("{}", f.display());
    }
    eprintln!(
        "\nPut these files on your site and add this tag to its pages:\n  {}",
        widget::tag("/PATH/TO/widget.js", Some(&campaigns[0].id))
    );
    if base
        .host_str()
        .is_some_and(|h| h == "localhost" || h.starts_with("127.") || h == "[::1]")
    {
        eprintln!(
            "note: the widget's links go to {base}, a local address; pass --public-url with your picket host's address"
        );
    }
    Ok(ExitCode::SUCCESS)
}
