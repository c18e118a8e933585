//! `picket account add bluesky`: resolve the handle, sign in ONCE with an app password and
//! store the session (and the app password, to sign in again if the session is lost)
//! sealed. Posting never signs in again while the session can be refreshed.

use anyhow::Context;

use super::participate::Ctx;
use crate::network::{NetworkKind, bluesky};
use crate::store::NewAccount;

pub async fn add_bluesky(
    ctx: &Ctx,
    handle: &str,
    app_password: &str,
    service: Option<&str>,
) -> anyhow::Result<()> {
    // Open the vault first: a session made and then not stored would be a wasted sign-in.
    let vault = ctx.vault()?;
    let client = crate::network::http_client();
    let creds = bluesky::connect(&client, handle, app_password, service)
        .await
        .with_context(|| format!("connecting the Bluesky account {handle}"))?;
    let me = ctx.me(None, "UTC").await?;
    let sealed = vault.seal(creds.to_secret().expose().as_bytes());
    let id = ctx
        .store
        .add_account(
            &NewAccount {
                participant_id: me,
                network: NetworkKind::Bluesky,
                handle: creds.handle.clone(),
                server: Some(creds.pds.clone()),
                credentials: sealed,
            },
            ctx.clock.now(),
        )
        .await?;
    println!(
        "added bluesky account {id} (@{} {}) on {}",
        creds.handle, creds.did, creds.pds
    );
    Ok(())
}
