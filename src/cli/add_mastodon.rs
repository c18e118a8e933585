//! `picket account add mastodon`: connect an account on a Mastodon-API server, with a
//! pasted token or through OAuth (out-of-band: picket prints the authorize page, the
//! participant pastes back the code it shows).
//!
//! The server's limits and software are read here, once, and sealed with the token so
//! the adapter can apply them. The OAuth app is registered once per server: its client
//! id and secret live inside each account's sealed credentials, and a second account on
//! the same server reuses the app found in the first. The HTTP calls themselves live in
//! [`crate::network::mastodon`]; this file only talks to the participant and the store.

use anyhow::{Context, bail};
use std::io::Write;

use super::participate::Ctx;
use crate::network::mastodon::{self, App, Credentials, EnrollError, Pkce};
use crate::network::{self, NetworkKind};
use crate::store::NewAccount;

/// `picket account add mastodon --server URL [--token TOKEN]`.
pub async fn add_mastodon(ctx: &Ctx, server: &str, token: Option<String>) -> anyhow::Result<()> {
    let server = mastodon::normalise_server(server)?;
    let client = network::http_client();
    let vault = ctx.vault()?;
    let info = mastodon::discover(&client, &server)
        .await
        .with_context(|| format!("reading what {server} allows"))?;
    let me = ctx.me(None, "UTC").await?;

    let (token, app) = match token {
        Some(t) => (t.trim().to_string(), None),
        None => {
            let app = match known_app(ctx, &vault, me, &server).await? {
                Some(app) => app,
                None => mastodon::register_app(&client, &server, info.scopes()).await?,
            };
            let token = authorize(&client, &server, &app, &info).await?;
            (token, Some(app))
        }
    };
    if token.is_empty() {
        bail!("the token is empty");
    }
    let who = mastodon::verify_token(&client, &server, &token)
        .await
        .map_err(EnrollError::from)
        .with_context(|| format!("checking the token with {server}"))?;
    let handle = who.handle(&server);
    let creds = Credentials {
        token,
        account_id: Some(who.id.clone()),
        software: info.software.clone(),
        max_characters: info.max_characters,
        characters_reserved_per_url: info.characters_reserved_per_url,
        client_id: app.as_ref().map(|a| a.client_id.clone()),
        client_secret: app.map(|a| a.client_secret),
    };
    let sealed = vault.seal(creds.to_json().as_bytes());
    let id = ctx
        .store
        .add_account(
            &NewAccount {
                participant_id: me,
                network: NetworkKind::Mastodon,
                handle: handle.clone(),
                server: Some(server.clone()),
                credentials: sealed,
            },
            ctx.clock.now(),
        )
        .await?;
    println!(
        "added mastodon account {id} ({handle}) on {server}: {}, {} characters per post",
        info.software.as_deref().unwrap_or("unknown software"),
        info.max_characters.unwrap_or(500),
    );
    Ok(())
}

/// The app a earlier enrollment registered on this server, if any account still holds it.
async fn known_app(
    ctx: &Ctx,
    vault: &crate::crypto::Vault,
    me: crate::store::ParticipantId,
    server: &str,
) -> anyhow::Result<Option<App>> {
    for a in ctx.store.list_accounts(me).await? {
        if a.network != NetworkKind::Mastodon || a.server.as_deref() != Some(server) {
            continue;
        }
        let Ok(plain) = vault.open_sealed(&a.credentials) else {
            continue;
        };
        let creds = Credentials::parse(&String::from_utf8_lossy(&plain));
        if let (Some(client_id), Some(client_secret)) = (creds.client_id, creds.client_secret) {
            return Ok(Some(App {
                client_id,
                client_secret,
            }));
        }
    }
    Ok(None)
}

/// Print the authorize page, read the code, exchange it for a token.
async fn authorize(
    client: &mastodon::HttpClient,
    server: &str,
    app: &App,
    info: &mastodon::ServerInfo,
) -> anyhow::Result<String> {
    let pkce = info.pkce_s256.then(Pkce::new);
    let state = {
        use rand::Rng;
        let mut b = [0u8; 12];
        rand::rng().fill_bytes(&mut b);
        hex::encode(b)
    };
    let url = mastodon::authorize_url(server, app, info.scopes(), pkce.as_ref(), &state);
    println!("Open this page, sign in and allow picket to post for you:\n\n  {url}\n");
    print!("Then paste the code the page shows: ");
    std::io::stdout().flush()?;
    let code = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await?
    .context("reading the code from standard input")?;
    let code = code.trim();
    if code.is_empty() {
        bail!("no code given: run the command again and paste the code the page shows");
    }
    Ok(mastodon::exchange_code(client, server, app, info.scopes(), code, pkce.as_ref()).await?)
}
