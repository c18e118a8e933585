//! `picket admin` (the operator's password or token for `/admin`) and `picket export`
//! (signatures and the published-posts ledger). The rules are the `admin` module's; this
//! file reads the command line and prints.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use super::participate::Ctx;
use crate::admin::{self, AdminError, ExportFormat, ExportKind};
use crate::domain::CampaignId;

/// Set the secret: a password read from the first line of stdin, or a new token printed
/// once (only its hash is stored).
pub async fn set(ctx: &Ctx, password_stdin: bool) -> anyhow::Result<ExitCode> {
    let (secret, generated) = if password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        (line.trim_end_matches(['\r', '\n']).to_string(), false)
    } else {
        (admin::new_token(), true)
    };
    match admin::set_secret(ctx.store.as_ref(), &secret, ctx.clock.now()).await {
        Ok(()) => {}
        Err(e @ AdminError::WeakPassword) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    }
    if generated {
        println!("{secret}");
        eprintln!(
            "This is the organiser token for /admin; it is shown only this once. Any earlier \
             password or token no longer works, and every /admin session has ended."
        );
    } else {
        eprintln!(
            "The /admin password is set. Any earlier password or token no longer works, and \
             every /admin session has ended."
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Print an export of `campaign` to stdout.
pub async fn export(
    ctx: &Ctx,
    kind: ExportKind,
    campaign: &str,
    format: ExportFormat,
) -> anyhow::Result<ExitCode> {
    let Ok(id) = campaign.parse::<CampaignId>() else {
        eprintln!("error: `{campaign}` is not a campaign id (see `picket campaign check`)");
        return Ok(ExitCode::from(2));
    };
    let bytes = admin::export(ctx.store.as_ref(), id.as_str(), kind, format).await?;
    std::io::stdout().lock().write_all(&bytes)?;
    Ok(ExitCode::SUCCESS)
}
