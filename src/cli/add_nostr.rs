//! `picket account add nostr`: connect a Nostr identity with a secret key (sealed like
//! every credential) or a NIP-46 remote signer ("bunker"), which keeps the key with the
//! participant. It checks the key or the signer before storing anything; it does not
//! read relay limits or the participant's relay list (NIP-65). The relays and bunker typed
//! here are trusted: they may be on the operator's own network.

use std::process::ExitCode;
use std::time::Duration;

use super::participate::Ctx;
use crate::participation::connect::{self, ConnectError, TypedBy};

/// A human may have to approve picket in their signer app: give them time.
const BUNKER_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn add_nostr(
    ctx: &Ctx,
    relays: &[String],
    nsec: Option<String>,
    bunker: Option<String>,
) -> anyhow::Result<ExitCode> {
    let egress = ctx.egress();
    let connected = async {
        let relays = connect::nostr_relays(&egress, TypedBy::Operator, relays).await?;
        match (nsec, bunker) {
            (Some(nsec), None) => {
                let account = connect::nostr_key(relays, &nsec, TypedBy::Operator)?;
                eprintln!(
                    "warning: picket will hold this secret key (sealed in its database); it gives full \
                     control of the account. A remote signer (--bunker bunker://...) keeps the key with you."
                );
                Ok(account)
            }
            (None, Some(uri)) => {
                eprintln!(
                    "asking the remote signer to connect picket (approve it there if asked)..."
                );
                connect::nostr_bunker(&egress, TypedBy::Operator, relays, &uri, BUNKER_TIMEOUT)
                    .await
            }
            _ => Err(ConnectError::Invalid(
                "give exactly one of --nsec or --bunker".into(),
            )),
        }
    };
    // Bad input exits 2 (the CLI's convention), a signer that does not answer exits 1.
    let account = match connected.await {
        Ok(a) => a,
        Err(ConnectError::Invalid(m)) => {
            eprintln!("error: {m}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    ctx.save_account(&account).await?;
    Ok(ExitCode::SUCCESS)
}
