//! Who is asking: a participant is recognised by their magic-link token, kept in an
//! HttpOnly cookie once the link has been opened. Only the token's hash is stored, so a
//! copy of the database opens no one's page.
//!
//! The cookie is `SameSite=Lax`, not `Strict`: a magic link opened from a mail program and
//! the return from a Mastodon server's authorize page are cross-site navigations, and must
//! arrive signed in. Every change is a POST that also needs the CSRF token, which another
//! site cannot read.

use axum::http::HeaderMap;

use super::{AppState, WebError, guard};
use crate::participation;
use crate::store::Participant;

pub const SESSION_COOKIE: &str = "picket_me";
/// A participant stays signed in on this device for 180 days.
const SESSION_SECS: u64 = 180 * 24 * 3600;

/// The participant whose token the request carries, if any.
pub async fn participant(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(Participant, String)>, WebError> {
    let Some(token) = guard::cookie(headers, SESSION_COOKIE).filter(|t| plausible(t)) else {
        return Ok(None);
    };
    let found = state
        .store
        .participant_by_token_hash(&participation::token_hash(&token))
        .await?;
    Ok(found.map(|p| (p, token)))
}

/// A token as we make them: 64 hex digits. Anything else is not looked up.
pub fn plausible(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `Set-Cookie` that signs this device in.
pub fn sign_in(token: &str, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; Max-Age={SESSION_SECS}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` that signs this device out.
pub fn sign_out(secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The link that opens a participant's page from anywhere.
pub fn magic_link(state: &AppState, token: &str) -> String {
    format!(
        "{}/me?t={token}",
        state.settings.public_url.trim_end_matches('/')
    )
}
