//! `picket account add nostr`: connect a Nostr identity with a secret key (sealed like
//! every credential) or a NIP-46 remote signer ("bunker"), which keeps the key with the
//! participant. It checks the key or the signer before storing anything; it does not
//! read relay limits or the participant's relay list (NIP-65).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::participate::Ctx;
use crate::network::NetworkKind;
use crate::network::nostr::{self, Bunker, Credentials};
use crate::store::NewAccount;

/// A human may have to approve picket in their signer app: give them time.
const BUNKER_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn add_nostr(
    ctx: &Ctx,
    relays: &[String],
    nsec: Option<String>,
    bunker: Option<String>,
) -> anyhow::Result<ExitCode> {
    // Bad input exits 2 (the CLI's convention), a signer that does not answer exits 1.
    let invalid = |m: String| {
        eprintln!("error: {m}");
        Ok(ExitCode::from(2))
    };
    let relays = relays
        .iter()
        .flat_map(|r| nostr::relays_of(r))
        .map(|r| nostr::check_relay_url(&r))
        .collect::<Result<Vec<_>, _>>();
    let relays = match relays {
        Ok(r) if !r.is_empty() => r,
        Ok(_) => return invalid("give at least one --relay ws(s)://...".into()),
        Err(e) => return invalid(e),
    };
    let (credentials, user) = match (nsec, bunker) {
        (Some(nsec), None) => {
            let keys = match nostr::parse_secret_key(&nsec) {
                Ok(k) => k,
                Err(e) => return invalid(e),
            };
            eprintln!(
                "warning: picket will hold this secret key (sealed in its database); it gives full \
                 control of the account. A remote signer (--bunker bunker://...) keeps the key with you."
            );
            let credentials = Credentials::Key {
                secret_key: keys.secret_key().to_secret_hex(),
            };
            (credentials, keys.public_key())
        }
        (None, Some(uri)) => {
            let client = nostr::generate_client_keys();
            let (session, secret) = match Bunker::new(&uri, client) {
                Ok(b) => b,
                Err(e) => return invalid(e),
            };
            eprintln!("asking the remote signer to connect picket (approve it there if asked)...");
            let user = session
                .connect(secret, BUNKER_TIMEOUT)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
                .context("connecting to the remote signer")?;
            let credentials = Credentials::Bunker {
                uri: nostr::bunker_uri_without_secret(&uri),
                client_secret_key: session.client.secret_key().to_secret_hex(),
                user_public_key: user.to_hex(),
            };
            (credentials, user)
        }
        _ => return invalid("give exactly one of --nsec or --bunker".into()),
    };
    let handle = nostr::npub(&user);
    let server = relays.join(" ");
    let me = ctx
        .store
        .ensure_local_participant("me", "UTC", ctx.clock.now())
        .await?;
    let sealed = ctx
        .vault()?
        .seal(credentials.to_secret().expose().as_bytes());
    let id = ctx
        .store
        .add_account(
            &NewAccount {
                participant_id: me,
                network: NetworkKind::Nostr,
                handle: handle.clone(),
                server: Some(server.clone()),
                credentials: sealed,
            },
            ctx.clock.now(),
        )
        .await?;
    println!("added nostr account {id} ({handle}) posting to {server}");
    Ok(ExitCode::SUCCESS)
}
