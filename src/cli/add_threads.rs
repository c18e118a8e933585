//! `picket account add threads --oauth`: connect a Threads account through this host's
//! Meta app (`[threads]` in the settings). Meta's authorization window has no
//! out-of-band page: it sends the browser to the host's registered redirect
//! (`PUBLIC_URL/connect/threads/callback`), and the person pastes back the address they
//! landed on (or the code in it), whether or not that page loaded.

use std::io::Write;

use anyhow::Context;

use super::participate::Ctx;
use crate::network::threads;
use crate::participation::{self, connect};

/// `picket account add threads --oauth`.
pub async fn add_threads_oauth(ctx: &Ctx) -> anyhow::Result<()> {
    let app = ctx.settings.threads.as_ref().context(
        "this picket has no Threads app: set [threads] client_id and client_secret in the \
         settings (or PICKET_THREADS_CLIENT_ID / PICKET_THREADS_CLIENT_SECRET)",
    )?;
    let app = threads::App::from_settings(app);
    let redirect = format!(
        "{}/connect/threads/callback",
        ctx.settings.public_url.trim_end_matches('/')
    );
    let vault = ctx.vault()?;
    let me = ctx.me(None, "UTC").await?;
    let auth = connect::threads_authorize(app, &redirect, &participation::new_access_token());
    println!(
        "Open this page, sign in to Threads and allow picket to publish for you:\n\n  {}\n",
        auth.url
    );
    println!("Threads then sends your browser to {redirect}?code=...");
    print!("Paste that whole address (or the code in it): ");
    std::io::stdout().flush()?;
    let pasted = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await?
    .context("reading the address from standard input")?;
    let (code, state) = threads::oauth::code_from_paste(&pasted);
    let account = connect::threads_code(
        &ctx.egress(),
        &auth,
        &code,
        state.as_deref(),
        ctx.clock.now(),
    )
    .await?;
    let id = participation::save_account(ctx.store.as_ref(), &vault, me, &account, ctx.clock.now())
        .await?;
    println!("added {} account {id} {}", account.network, account.summary);
    Ok(())
}
