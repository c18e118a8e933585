//! Connecting accounts in the browser: `POST /connect/{network}` for the networks that
//! connect in one step (the sandbox, Bluesky, Nostr through a remote signer), and for
//! Mastodon the server's own OAuth page, its callback (`GET /connect/mastodon/callback`)
//! and the authorizations waiting for it ([`PendingAuthorizations`]); the same for the
//! networks whose official API the host registered an app with (`[threads]`,
//! `[linkedin]`, `[x]`, `[facebook]`: `GET /connect/<network>/callback`), offered only
//! when it did; and `POST /connect/tap`, a tap-to-post account (a network and a handle).
//! Every connect goes
//! back to the join step it came from, with a message.
//!
//! Connecting an account reaches addresses the visitor typed: always through the guarded
//! client, and a failure is told with the same fixed sentence whatever happened (refused
//! address, closed port, an error page from the server); the detail goes to the debug log.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::form::{Fields, Form};
use super::session::signed_in;
use super::{AppState, WebError};
use crate::network::mastodon::OOB_REDIRECT;
use crate::participation::connect::{
    self, ConnectError, MastodonAuthorization, OfficialApp, OfficialAuthorization, TypedBy,
};
use crate::participation::{self, Connected};
use crate::store::Participant;

/// Where a connect form sends the person back to: a join step on this site, nothing else.
/// Only printable ASCII (a query is percent-encoded): the path becomes a `Location`
/// header, which cannot hold control characters, and `..` could climb out of `/c/`.
pub(crate) fn back_to(f: &Fields) -> String {
    let back = f.text("back");
    let path = back.split(['?', '#']).next().unwrap_or_default();
    let ok = back.starts_with("/c/")
        && back.bytes().all(|b| b.is_ascii_graphic())
        && !back.contains("//")
        && !back.contains('\\')
        && !path.split('/').any(|seg| seg == "." || seg == "..");
    if ok { back } else { "/me".to_string() }
}

pub(crate) fn with_flash(back: &str, key: &str, msg: &str) -> String {
    let sep = if back.contains('?') { '&' } else { '?' };
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair(key, msg)
        .finish();
    format!("{back}{sep}{q}")
}

/// An authorization under way, by network.
enum Authorization {
    Mastodon(MastodonAuthorization),
    /// A MiAuth session on a Misskey-API server (keyed by the session id).
    Misskey(connect::MisskeyServer),
    /// Through the host's own app with a network's official API (Threads, LinkedIn).
    Official(OfficialAuthorization),
}

/// An OAuth authorization waiting for the server to send the person back.
pub struct PendingOAuth {
    participant: crate::store::ParticipantId,
    auth: Authorization,
    back: String,
    started: std::time::Instant,
    /// The person ticked "hand my posts to my server's own scheduler" (Mastodon).
    hand_off: bool,
}

/// OAuth authorizations in progress, by their `state` parameter. In memory: one that is
/// interrupted by a restart is simply started again.
#[derive(Clone, Default)]
pub struct PendingAuthorizations(Arc<std::sync::Mutex<HashMap<String, PendingOAuth>>>);

impl PendingAuthorizations {
    /// How long a person has to approve picket on their server.
    const TTL: std::time::Duration = std::time::Duration::from_secs(30 * 60);

    fn put(&self, state: String, p: PendingOAuth) {
        let mut map = crate::sync::lock(&self.0);
        map.retain(|_, v| v.started.elapsed() < Self::TTL);
        map.insert(state, p);
    }

    fn take(&self, state: &str) -> Option<PendingOAuth> {
        let mut map = crate::sync::lock(&self.0);
        map.remove(state)
            .filter(|p| p.started.elapsed() < Self::TTL)
    }
}

/// `POST /connect/{network}`: connect an account for the signed-in participant, then go
/// back to the join step it came from with a message.
pub async fn connect_account(
    State(state): State<AppState>,
    Path(network): Path<String>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    let f = &form.fields;
    let (me, _) = signed_in(&state, &headers).await?;
    let back = back_to(f);
    if !form.csrf_ok() {
        return Ok(Redirect::to(&with_flash(
            &back,
            "msg",
            "Your session expired or the form came from another site: please try again.",
        ))
        .into_response());
    }
    let connected: Result<Connected, ConnectError> = match network.as_str() {
        // Only where the sandbox is served, with a token it takes.
        "sandbox" if state.settings.sandbox => connect::sandbox(
            &f.text("name"),
            &format!(
                "{}/sandbox",
                state.settings.public_url.trim_end_matches('/')
            ),
            state.sandbox.issue_token(),
        ),
        "bluesky" => {
            let service = f.text("service");
            connect::bluesky(
                &state.egress,
                TypedBy::Visitor,
                &f.text("handle"),
                f.get("app_password").unwrap_or_default(),
                (!service.is_empty()).then_some(service.as_str()),
            )
            .await
        }
        "nostr" => {
            let relays = vec![f.text("relays")];
            match connect::nostr_relays(&state.egress, TypedBy::Visitor, &relays).await {
                Ok(relays) => {
                    connect::nostr_bunker(
                        &state.egress,
                        TypedBy::Visitor,
                        relays,
                        &f.text("bunker"),
                        NOSTR_BUNKER_WAIT,
                    )
                    .await
                }
                Err(e) => Err(e),
            }
        }
        "mastodon" => return mastodon_start(&state, &me, f, back).await,
        "misskey" => return misskey_start(&state, &me, f, back).await,
        // "I'll post it myself": a network and a handle, nothing to sign in to.
        "tap" => return Ok(Redirect::to(&add_tap(&state, &me, f, &back).await?).into_response()),
        // Only where the host registered an app with the network.
        other if official(&state, other).is_some() => {
            let app = official(&state, other).expect("just checked");
            return Ok(official_start(&state, &me, app, back).into_response());
        }
        other => {
            return Err(WebError::NotFound(format!(
                "picket cannot connect “{other}” accounts here."
            )));
        }
    };
    let connected = connected.map(|a| vec![a]);
    Ok(Redirect::to(&finish_connect(&state, &me, connected, &back, false).await?).into_response())
}

/// Add a tap-to-post account from the join page's "I'll post it myself" form.
async fn add_tap(
    state: &AppState,
    me: &Participant,
    f: &Fields,
    back: &str,
) -> Result<String, WebError> {
    let Ok(network) = f.text("network").parse::<crate::domain::NetworkKind>() else {
        return Ok(with_flash(back, "msg", "Choose the network you post to."));
    };
    let added = participation::tap::add_tap_account(
        state.store.as_ref(),
        me.id,
        network,
        &f.text("handle"),
        false,
        state.clock.now(),
    )
    .await;
    Ok(match added {
        Ok(_) => with_flash(
            back,
            "ok",
            &format!(
                "Added your {} account {}: picket reminds you at each slot with the notice ready; you post it.",
                network.label(),
                f.text("handle").trim()
            ),
        ),
        Err(participation::ParticipationError::Invalid(m)) => with_flash(back, "msg", &m),
        Err(e) => return Err(e.into()),
    })
}

/// A browser waits for the remote signer's answer: shorter than the CLI's minute.
const NOSTR_BUNKER_WAIT: std::time::Duration = std::time::Duration::from_secs(45);

/// Store the connected account (or accounts: a Facebook login may share several Pages)
/// and say how it went, on the page `back`.
async fn finish_connect(
    state: &AppState,
    me: &Participant,
    connected: Result<Vec<Connected>, ConnectError>,
    back: &str,
    hand_off: bool,
) -> Result<String, WebError> {
    Ok(match connected {
        Ok(accounts) => {
            let mut ids = Vec::new();
            for account in &accounts {
                ids.push(
                    participation::save_account(
                        state.store.as_ref(),
                        &state.vault,
                        me.id,
                        account,
                        state.clock.now(),
                    )
                    .await?,
                );
            }
            let label = accounts.first().map_or("", |a| a.network.label());
            let handles: Vec<&str> = accounts.iter().map(|a| a.handle.as_str()).collect();
            let plural = if handles.len() == 1 { "" } else { "s" };
            let mut said = format!(
                "Connected your {label} account{plural} {}.",
                handles.join(", ")
            );
            if hand_off {
                said.push_str(&hand_off_note(state, me, &ids).await?);
            }
            with_flash(back, "ok", &said)
        }
        Err(e) => with_flash(back, "msg", &refused(&e)),
    })
}

/// Turn hand-off on for the just-connected `ids` where their server schedules, and say
/// what became of it (the server's software, or why not).
async fn hand_off_note(
    state: &AppState,
    me: &Participant,
    ids: &[crate::store::AccountId],
) -> Result<String, WebError> {
    let chosen = participation::choose_hand_off(
        state.store.as_ref(),
        &state.networks,
        &state.vault,
        me.id,
        ids,
        state.clock.now(),
    )
    .await?;
    let mut s = String::new();
    for c in chosen {
        match c {
            participation::HandOffChoice::On { .. } => s.push_str(
                " Its posts at least 6 minutes ahead are handed to your server's own \
                 scheduler, so they go out even if this site is down (at most 25 a day and \
                 300 in all; this site sends the rest).",
            ),
            participation::HandOffChoice::Off { why, .. } => s.push_str(&format!(
                " Its posts are not handed to your server's scheduler ({why}); this site \
                 sends them."
            )),
        }
    }
    Ok(s)
}

/// What the visitor is told about a failed connect; the detail (never a token) is logged.
fn refused(e: &ConnectError) -> String {
    tracing::debug!(reason = %e, "connecting an account failed");
    e.for_visitor().to_string()
}

async fn mastodon_start(
    state: &AppState,
    me: &Participant,
    f: &Fields,
    back: String,
) -> Result<Response, WebError> {
    let server =
        match connect::mastodon_server(&state.egress, TypedBy::Visitor, &f.text("server")).await {
            Ok(s) => s,
            Err(e) => {
                return Ok(Redirect::to(&with_flash(&back, "msg", &refused(&e))).into_response());
            }
        };
    let known = connect::known_app(state.store.as_ref(), &state.vault, server.url()).await?;
    let callback = format!(
        "{}/connect/mastodon/callback",
        state.settings.public_url.trim_end_matches('/')
    );
    // One app per server serves the CLI (out-of-band) and this host's callback.
    let redirects = format!("{OOB_REDIRECT}\n{callback}");
    let oauth_state = participation::new_access_token();
    match connect::mastodon_authorize(server, known, &callback, &redirects, &oauth_state).await {
        Ok(auth) => {
            let url = auth.url().to_string();
            state.oauth.put(
                oauth_state,
                PendingOAuth {
                    participant: me.id,
                    auth: Authorization::Mastodon(auth),
                    back,
                    started: std::time::Instant::now(),
                    hand_off: f.get("hand_off").is_some(),
                },
            );
            Ok(Redirect::to(&url).into_response())
        }
        Err(e) => Ok(Redirect::to(&with_flash(&back, "msg", &refused(&e))).into_response()),
    }
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The host's app with the official API of the network named `name`, if it has one.
fn official(state: &AppState, name: &str) -> Option<OfficialApp> {
    let network = name.parse().ok()?;
    OfficialApp::configured(&state.settings, network)
}

/// Send the person to the network's authorization page; it comes back to
/// [`official_callback`].
fn official_start(state: &AppState, me: &Participant, app: OfficialApp, back: String) -> Redirect {
    let redirect = connect::official_redirect(&state.settings.public_url, app.network());
    let oauth_state = participation::new_access_token();
    let auth = connect::official_authorize(app, &redirect, &oauth_state);
    let url = auth.url.clone();
    state.oauth.put(
        oauth_state,
        PendingOAuth {
            participant: me.id,
            auth: Authorization::Official(auth),
            back,
            started: std::time::Instant::now(),
            hand_off: false,
        },
    );
    Redirect::to(&url)
}

/// `GET /connect/threads/callback`, `GET /connect/linkedin/callback`: the network sends
/// the person back with a code.
pub async fn official_callback(
    state: State<AppState>,
    headers: HeaderMap,
    q: Query<Callback>,
) -> Result<Response, WebError> {
    oauth_callback(state, headers, q).await
}

/// `GET /connect/mastodon/callback`: the server sends the person back with a code.
pub async fn mastodon_callback(
    state: State<AppState>,
    headers: HeaderMap,
    q: Query<Callback>,
) -> Result<Response, WebError> {
    oauth_callback(state, headers, q).await
}

/// Either callback: the pending authorization (found by its single-use `state`) says
/// which network it was for.
async fn oauth_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Result<Response, WebError> {
    let pending = q
        .state
        .as_deref()
        .and_then(|s| state.oauth.take(s))
        .ok_or_else(|| {
            WebError::Invalid(
                "This authorization is unknown or expired: connect the account again.".into(),
            )
        })?;
    let (me, _) = signed_in(&state, &headers).await?;
    if me.id != pending.participant {
        return Err(WebError::Forbidden(
            "This authorization was started by someone else on this device.".into(),
        ));
    }
    let connected = match (q.code, q.error, pending.auth) {
        // A MiAuth session comes back to `misskey_callback`, never here.
        (_, _, Authorization::Misskey(_)) => Err(ConnectError::Invalid(
            "This authorization is unknown or expired: connect the account again.".into(),
        )),
        (Some(code), None, Authorization::Mastodon(auth)) => {
            connect::mastodon_code(auth, &code).await.map(|a| vec![a])
        }
        (Some(code), None, Authorization::Official(auth)) => {
            connect::official_code(
                &state.egress,
                &auth,
                &code,
                q.state.as_deref(),
                state.clock.now(),
            )
            .await
        }
        // The server's words come back in the query string: not shown, only logged.
        (_, error, _) => Err(ConnectError::Failed {
            shown: "The server did not allow picket to post for you.",
            detail: format!(
                "the server did not allow picket: {}",
                q.error_description
                    .or(error)
                    .unwrap_or_else(|| "no reason given".into())
            ),
        }),
    };
    Ok(Redirect::to(
        &finish_connect(&state, &me, connected, &pending.back, pending.hand_off).await?,
    )
    .into_response())
}

/// Send the person to their Misskey-API server's MiAuth page (asking only
/// `write:notes`); it comes back to [`misskey_callback`] with the session.
async fn misskey_start(
    state: &AppState,
    me: &Participant,
    f: &Fields,
    back: String,
) -> Result<Response, WebError> {
    let server =
        match connect::misskey_server(&state.egress, TypedBy::Visitor, &f.text("server")).await {
            Ok(s) => s,
            Err(e) => {
                return Ok(Redirect::to(&with_flash(&back, "msg", &refused(&e))).into_response());
            }
        };
    let session = crate::network::misskey::enroll::new_session();
    let callback = format!(
        "{}/connect/misskey/callback",
        state.settings.public_url.trim_end_matches('/')
    );
    let url = server.miauth_url(&session, Some(&callback));
    state.oauth.put(
        format!("miauth:{session}"),
        PendingOAuth {
            participant: me.id,
            auth: Authorization::Misskey(server),
            back,
            started: std::time::Instant::now(),
            // Hand-off is a Mastodon-API server's scheduler; Misskey has none picket uses.
            hand_off: false,
        },
    );
    Ok(Redirect::to(&url).into_response())
}

#[derive(Deserialize)]
pub struct MiAuthCallback {
    session: Option<String>,
}

/// `GET /connect/misskey/callback?session=`: the server sends the person back once they
/// allowed picket; the session is checked with the server for the token.
pub async fn misskey_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<MiAuthCallback>,
) -> Result<Response, WebError> {
    let pending = q
        .session
        .as_deref()
        .and_then(|s| state.oauth.take(&format!("miauth:{s}")))
        .ok_or_else(|| {
            WebError::Invalid(
                "This authorization is unknown or expired: connect the account again.".into(),
            )
        })?;
    let (me, _) = signed_in(&state, &headers).await?;
    if me.id != pending.participant {
        return Err(WebError::Forbidden(
            "This authorization was started by someone else on this device.".into(),
        ));
    }
    let Authorization::Misskey(server) = &pending.auth else {
        return Err(WebError::Invalid(
            "This authorization is unknown or expired: connect the account again.".into(),
        ));
    };
    let session = q.session.as_deref().unwrap_or_default();
    let connected = connect::misskey_session(server, session)
        .await
        .map(|a| vec![a]);
    Ok(
        Redirect::to(&finish_connect(&state, &me, connected, &pending.back, false).await?)
            .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_form_can_only_send_people_back_into_this_site() {
        let f = |b: &str| Fields::of(&[("back", b)]);
        assert_eq!(
            back_to(&f("/c/x/join/accounts?tz=UTC")),
            "/c/x/join/accounts?tz=UTC"
        );
        assert_eq!(back_to(&f("https://evil.example/")), "/me");
        assert_eq!(back_to(&f("/c//evil.example")), "/me");
        assert_eq!(back_to(&f("//evil.example/c/")), "/me");
        assert_eq!(back_to(&f("/c/x/join\u{1}")), "/me");
        assert_eq!(back_to(&f("/c/x/join?tz=A\r\nSet-Cookie:%20a=b")), "/me");
        assert_eq!(back_to(&f("/c/../me/delete")), "/me");
        assert_eq!(back_to(&f("/c/x/join/accounts?tz=Zoë")), "/me");
        assert_eq!(
            back_to(&f(
                "/c/x/join/accounts?tz=America%2FNew_York&day=2027-07-04"
            )),
            "/c/x/join/accounts?tz=America%2FNew_York&day=2027-07-04"
        );
    }
}
