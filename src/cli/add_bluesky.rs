//! `picket account add bluesky`: resolve the handle, sign in ONCE with an app password and
//! store the session (and the app password, to sign in again if the session is lost)
//! sealed. Posting never signs in again while the session can be refreshed.
//!
//! A `--service` typed here is trusted (it may be a PDS on this machine); without it, the
//! handle is resolved like a visitor's, through the guarded client.

use super::participate::Ctx;
use crate::participation::connect::{self, TypedBy};

pub async fn add_bluesky(
    ctx: &Ctx,
    handle: &str,
    app_password: &str,
    service: Option<&str>,
) -> anyhow::Result<()> {
    // Open the vault first: a session made and then not stored would be a wasted sign-in.
    // No credential key: say so before signing in, not after.
    ctx.vault()?;
    let account = connect::bluesky(
        &ctx.egress(),
        TypedBy::Operator,
        handle,
        app_password,
        service,
    )
    .await?;
    ctx.save_account(&account).await
}
