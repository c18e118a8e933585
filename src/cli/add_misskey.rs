//! `picket account add misskey`: connect an account on a Misskey-API server (Misskey,
//! Sharkey, Iceshrimp ...) with MiAuth: picket prints the server's page, where the person
//! allows picket to write notes (nothing else), and checks the session once they press
//! Enter. Or with a pasted token. The steps live in [`crate::participation::connect`];
//! this file only talks to the person. The server typed here is trusted.

use std::io::Write;

use anyhow::Context;

use super::participate::Ctx;
use crate::network::misskey::enroll::new_session;
use crate::participation::connect::{self, TypedBy};

/// `picket account add misskey --server URL [--token TOKEN]`.
pub async fn add_misskey(ctx: &Ctx, server: &str, token: Option<String>) -> anyhow::Result<()> {
    ctx.vault()?;
    let server = connect::misskey_server(&ctx.egress(), TypedBy::Operator, server).await?;
    let account = match token {
        Some(t) => connect::misskey_token(&server, &t).await?,
        None => {
            let session = new_session();
            println!(
                "Open this page, sign in and allow picket to write notes for you:\n\n  {}\n",
                server.miauth_url(&session, None)
            );
            print!("Then press Enter here: ");
            std::io::stdout().flush()?;
            tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map(|_| line)
            })
            .await?
            .context("reading standard input")?;
            connect::misskey_session(&server, &session).await?
        }
    };
    ctx.save_account(&account).await
}
