//! `picket account add mastodon`: connect an account on a Mastodon-API server, with a
//! pasted token or through OAuth (out-of-band: picket prints the authorize page, the
//! participant pastes back the code it shows).
//!
//! The OAuth app is registered once per server: its client id and secret live inside each
//! account's sealed credentials, and a second account on the same server reuses the app
//! found in the first. The steps themselves live in [`crate::participation::connect`];
//! this file only talks to the participant. The server typed here is trusted: it may be
//! on the operator's own network.

use std::io::Write;

use anyhow::Context;

use super::participate::Ctx;
use crate::network::mastodon::OOB_REDIRECT;
use crate::participation::connect::{self, TypedBy};
use crate::participation::{self};

/// `picket account add mastodon --server URL [--token TOKEN]`.
pub async fn add_mastodon(ctx: &Ctx, server: &str, token: Option<String>) -> anyhow::Result<()> {
    let server = connect::mastodon_server(&ctx.egress(), TypedBy::Operator, server).await?;
    let vault = ctx.vault()?;
    let account = match token {
        Some(t) => connect::mastodon_token(server, &t, None).await?,
        None => {
            let known = connect::known_app(ctx.store.as_ref(), &vault, server.url()).await?;
            let state = participation::new_access_token();
            let auth =
                connect::mastodon_authorize(server, known, OOB_REDIRECT, OOB_REDIRECT, &state)
                    .await?;
            println!(
                "Open this page, sign in and allow picket to post for you:\n\n  {}\n",
                auth.url()
            );
            print!("Then paste the code the page shows: ");
            std::io::stdout().flush()?;
            let code = tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map(|_| line)
            })
            .await?
            .context("reading the code from standard input")?;
            connect::mastodon_code(auth, &code).await?
        }
    };
    ctx.save_account(&account).await
}
