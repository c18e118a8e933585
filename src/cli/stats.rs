//! `picket stats CAMPAIGN [--format text|json|csv]`: the organiser's figures in the
//! terminal, the very [`Report`](crate::stats::Report) the stats API and page show.

use anyhow::Context;
use clap::ValueEnum;

use super::participate::Ctx;
use crate::stats::{Report, text};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatsFormat {
    Text,
    Json,
    Csv,
}

pub async fn stats(ctx: &Ctx, id: &str, format: StatsFormat) -> anyhow::Result<()> {
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
    let report = Report::compute(ctx.store.as_ref(), c, ctx.clock.now()).await?;
    match format {
        StatsFormat::Text => print!("{}", text::render(&report)),
        StatsFormat::Json => println!("{}", serde_json::to_string_pretty(&report.to_json())?),
        StatsFormat::Csv => print!("{}", report.to_csv()?),
    }
    Ok(())
}
