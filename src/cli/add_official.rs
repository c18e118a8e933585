//! `picket account add threads|linkedin|x|facebook --oauth`: connect
//! an account through this host's app with the network's official API (`[threads]`,
//! `[linkedin]` in the settings). Neither network has an out-of-band page: they send the
//! browser to the host's registered redirect (`PUBLIC_URL/connect/<network>/callback`),
//! and the person pastes back the address they landed on (or the code in it), whether or
//! not that page loaded.

use std::io::Write;

use anyhow::Context;

use super::participate::Ctx;
use crate::domain::NetworkKind;
use crate::network::threads::oauth::code_from_paste;
use crate::participation::connect::{self, OfficialApp};
use crate::participation::{self};

/// `picket account add threads|linkedin|x|facebook --oauth`.
pub async fn add_with_oauth(ctx: &Ctx, network: NetworkKind) -> anyhow::Result<()> {
    let app = OfficialApp::configured(&ctx.settings, network).with_context(|| {
        let name = network.as_str();
        let upper = name.to_uppercase();
        format!(
            "this picket has no {} app: set [{name}] client_id and client_secret in the \
             settings (or PICKET_{upper}_CLIENT_ID / PICKET_{upper}_CLIENT_SECRET)",
            network.label()
        )
    })?;
    let redirect = connect::official_redirect(&ctx.settings.public_url, network);
    if network == NetworkKind::X {
        println!(
            "X's automation rules forbid posting the same or similar content from many \
             accounts and coordinated hashtag posting; picket posts to X through the API only \
             for campaigns that say x_api = true.\n"
        );
    }
    let auth = connect::official_authorize(app, &redirect, &participation::new_access_token());
    println!(
        "Open this page, sign in to {} and allow picket to post for you:\n\n  {}\n",
        network.label(),
        auth.url
    );
    println!(
        "{} then sends your browser to {redirect}?code=...",
        network.label()
    );
    print!("Paste that whole address (or the code in it): ");
    std::io::stdout().flush()?;
    let pasted = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await?
    .context("reading the address from standard input")?;
    let (code, state) = code_from_paste(&pasted);
    let accounts = connect::official_code(
        &ctx.egress(),
        &auth,
        &code,
        state.as_deref(),
        ctx.clock.now(),
    )
    .await?;
    // One account, or one per Facebook Page the person shared.
    for account in &accounts {
        ctx.save_account(account).await?;
    }
    Ok(())
}
