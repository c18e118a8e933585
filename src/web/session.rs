//! Who is asking. A participant signs a browser in by opening their magic link; the
//! browser then gets a session of its own: a fresh random token in an HttpOnly cookie. The
//! link and the session are separate secrets, so each can be withdrawn without the other:
//!
//! | | magic link | session |
//! |---|---|---|
//! | lives in | the joined page and a mail, once | the browser's cookie |
//! | lasts | `sessions.link_days` (7) | `sessions.signed_in_days` (180) |
//! | ends when | a newer link is made (on `/me`, at a new join confirmation, by mail), the participant signs out | they sign out here, ask for a new link on `/me` (every session ends), delete their data |
//!
//! So a link that leaked stops working once the participant gets a new one or signs out,
//! and whoever opened it is signed out by the new link too. Only hashes of both tokens are
//! stored, so a copy of the database opens no one's page.
//!
//! Opening a link in a browser signed in as someone else never switches silently (that
//! would let any site sign a visitor in as the attacker: login CSRF): `/me?t=` then shows
//! a page that asks, and only its POST form, with the CSRF token, switches.
//!
//! The cookie is `SameSite=Lax`, not `Strict`: a magic link opened from a mail program and
//! the return from a Mastodon server's authorize page are cross-site navigations, and must
//! arrive signed in. Every change is a POST that also needs the CSRF token, which another
//! site cannot read.

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};

use super::{AppState, WebError, guard};
use crate::participation;
use crate::store::{Participant, ParticipantId};

pub const SESSION_COOKIE: &str = "picket_me";

/// The participant this request's session belongs to, with the session's token, if any.
pub async fn participant(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(Participant, String)>, WebError> {
    let Some(token) = guard::cookie(headers, SESSION_COOKIE).filter(|t| plausible(t)) else {
        return Ok(None);
    };
    let found = state
        .store
        .participant_by_session(&participation::token_hash(&token), state.clock.now())
        .await?;
    Ok(found.map(|p| (p, token)))
}

/// The participant a magic link's token belongs to, if the link still works.
pub async fn link_owner(state: &AppState, token: &str) -> Result<Option<Participant>, WebError> {
    if !plausible(token) {
        return Ok(None);
    }
    Ok(state
        .store
        .participant_by_link(&participation::token_hash(token), state.clock.now())
        .await?)
}

/// A token as we make them: 64 hex digits. Anything else is not looked up.
pub fn plausible(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Sign this browser in as `participant`: a new session, and the `Set-Cookie` that carries
/// it. With `end_others`, every other session of theirs ends (a new link after a leak).
pub async fn start(
    state: &AppState,
    participant: ParticipantId,
    end_others: bool,
) -> Result<String, WebError> {
    let token = participation::new_access_token();
    let now = state.clock.now();
    let lifetime = state.settings.sessions.signed_in_lifetime();
    state
        .store
        .start_session(
            participant,
            &participation::token_hash(&token),
            now + lifetime,
            end_others,
            now,
        )
        .await?;
    Ok(format!(
        "{SESSION_COOKIE}={token}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
        lifetime.num_seconds(),
        if state.secure_cookies() {
            "; Secure"
        } else {
            ""
        }
    ))
}

/// End the session `token` (this browser's) and give the `Set-Cookie` that forgets it.
pub async fn end(state: &AppState, token: &str) -> Result<String, WebError> {
    state
        .store
        .end_session(&participation::token_hash(token))
        .await?;
    Ok(sign_out(state.secure_cookies()))
}

/// `Set-Cookie` that signs this device out.
pub fn sign_out(secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A new magic link for `participant`; the one they had stops working. The link and when
/// it expires.
pub async fn new_link(
    state: &AppState,
    participant: ParticipantId,
) -> Result<(String, DateTime<Utc>), WebError> {
    let token = participation::new_access_token();
    let expires = state.clock.now() + state.settings.sessions.link_lifetime();
    state
        .store
        .set_link(
            participant,
            Some((&participation::token_hash(&token), expires)),
        )
        .await?;
    Ok((magic_link(state, &token), expires))
}

/// The link that opens a participant's page from anywhere.
pub fn magic_link(state: &AppState, token: &str) -> String {
    format!(
        "{}/me?t={token}",
        state.settings.public_url.trim_end_matches('/')
    )
}

/// When a link stops working, as pages and mails say it.
pub fn until(expires: DateTime<Utc>) -> String {
    expires.format("%A %-d %B %Y, %H:%M UTC").to_string()
}

/// The signed-in participant and their session token, or a 403 page saying how to sign in.
pub(crate) async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Participant, String), WebError> {
    participant(state, headers).await?.ok_or_else(|| {
        WebError::Forbidden(
            "You are not signed in on this device: open the link picket gave you (or join again)."
                .into(),
        )
    })
}
