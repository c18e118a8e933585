//! Signing a declaration: what a valid signature is (shared by the HTML form and the JSON
//! API), writing it, and confirming it by e-mail. Parse, don't validate: a [`Signer`] can
//! only be made valid.
//!
//! With an SMTP server configured, a signature that gives an address counts only once the
//! link mailed to that address is followed (`/c/{id}/confirm/{token}`; only the token's
//! SHA-256 is stored). The signature is stored before the mail is sent, so a mail server
//! that is down never loses it: the person is told, and signing again with the same
//! address sends a new link (at most one every [`RESEND_AFTER`]). Without SMTP, or without
//! an address, a signature counts at once.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::campaign::Campaign;
use crate::store::{NewSignature, SignatureId, canonical_email};

use super::{AppState, WebError};

/// The shortest time between two confirmation mails to one signature: signing again
/// re-sends, and must not let anyone flood an address they typed.
pub const RESEND_AFTER: chrono::Duration = chrono::Duration::minutes(5);

/// A signer's input, checked. Its `Debug` leaves the address out (never log one).
#[derive(Clone, PartialEq, Eq)]
pub struct Signer {
    name: String,
    email: Option<String>,
    public: bool,
    invited_by: Option<String>,
    /// "The organisers may e-mail me"; off unless ticked (or `true` in the API).
    email_consent: bool,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("email", &self.email.as_ref().map(|_| "[redacted]"))
            .field("public", &self.public)
            .field("invited_by", &self.invited_by)
            .field("email_consent", &self.email_consent)
            .finish()
    }
}

const MAX_NAME: usize = 80;
const MAX_EMAIL: usize = 254;

/// What a signer typed that does not do; the message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSigner(String);

impl Signer {
    /// Check what a person typed; the error says what to fix.
    pub fn parse(
        name: &str,
        email: Option<&str>,
        public: bool,
        invited_by: Option<&str>,
    ) -> Result<Signer, InvalidSigner> {
        Self::read(name, email, public, invited_by).map_err(InvalidSigner)
    }

    fn read(
        name: &str,
        email: Option<&str>,
        public: bool,
        invited_by: Option<&str>,
    ) -> Result<Signer, String> {
        let name = name.trim();
        if name.is_empty() {
            return Err("Please give a name (it can be a first name or a pseudonym).".into());
        }
        if name.chars().count() > MAX_NAME {
            return Err(format!(
                "That name is longer than {MAX_NAME} characters: please shorten it."
            ));
        }
        if name.chars().any(char::is_control) {
            return Err("The name contains control characters: please type it again.".into());
        }
        let email = match email.map(str::trim).filter(|e| !e.is_empty()) {
            None => None,
            Some(e) => Some(parse_email(e)?),
        };
        let invited_by = invited_by
            .map(str::trim)
            .filter(|r| super::guard::plausible_code(r))
            .map(str::to_string);
        Ok(Signer {
            name: name.to_string(),
            email,
            public,
            invited_by,
            email_consent: false,
        })
    }

    /// The signer let the organisers e-mail them (only meaningful with an address).
    pub fn with_email_consent(mut self, consent: bool) -> Signer {
        self.email_consent = consent;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }
}

pub(crate) fn parse_email(e: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "“{e}” does not look like an e-mail address (name@example.org); leave it empty if you prefer."
        )
    };
    if e.len() > MAX_EMAIL || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = e.rsplit_once('@').ok_or_else(bad)?;
    if local.is_empty() || !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.')
    {
        return Err(bad());
    }
    Ok(e.to_string())
}

/// Where a signature stands after signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirmation {
    /// It counts (no confirmation needed, or confirmed before).
    Counted,
    /// A confirmation link was mailed; it counts once the link is followed.
    MailSent,
    /// A link was mailed less than [`RESEND_AFTER`] ago; none was sent now.
    MailRecentlySent,
    /// Stored, but the mail could not be sent: not counted yet; signing again retries.
    MailFailed,
}

impl Confirmation {
    pub fn counted(self) -> bool {
        self == Confirmation::Counted
    }
}

/// The outcome of [`sign`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The signer's own invitation code (the earlier one, for a repeat).
    pub invite_code: String,
    /// The same person had signed already: nothing was added.
    pub duplicate: bool,
    pub confirmation: Confirmation,
}

/// The token of a confirmation link as stored: its SHA-256, hex. A database leak then
/// gives no working links.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `token` has the shape of a confirmation token (so junk never reaches the store).
pub fn token_shape_ok(token: &str) -> bool {
    token.len() == 48 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Record a signature; a repeat of the same person is recognised, not counted again. With
/// mail configured and an address given, the signature waits for its confirmation link.
pub async fn sign(state: &AppState, c: &Campaign, s: &Signer) -> Result<Signed, WebError> {
    let mailer = state.mailer.as_deref().filter(|_| s.email.is_some());
    let token = mailer.map(|_| super::guard::new_token());
    let now = state.clock.now();
    let added = state
        .store
        .add_signature(
            &NewSignature {
                campaign_id: c.id.clone(),
                name: s.name.clone(),
                email_canonical: s.email.as_deref().map(canonical_email),
                public: s.public,
                invited_by: s.invited_by.clone(),
                confirmed: mailer.is_none(),
                confirm_token_hash: token.as_deref().map(token_hash),
                email_consent: s.email_consent,
            },
            now,
        )
        .await?;
    let signed = |confirmation| Signed {
        invite_code: added.invite_code.clone(),
        duplicate: added.duplicate,
        confirmation,
    };
    let (Some(mailer), Some(token), Some(to)) = (mailer, token, s.email.as_deref()) else {
        return Ok(signed(Confirmation::Counted));
    };
    if added.confirmed {
        return Ok(signed(Confirmation::Counted));
    }
    if added.duplicate {
        // A new link replaces the one mailed before: not when the budget would hold the new
        // one back, or anyone could void a signer's link by signing as them. Answered as if
        // sent, like any mail the budget holds back.
        let per_hour = state.settings.sessions.mails_per_address_per_hour;
        if !crate::mail::budget_left(state.store.as_ref(), to, per_hour, now).await? {
            return Ok(signed(Confirmation::MailSent));
        }
        let renewed = state
            .store
            .renew_signature_confirmation(added.id, &token_hash(&token), now, now - RESEND_AFTER)
            .await?;
        if !renewed {
            return Ok(signed(Confirmation::MailRecentlySent));
        }
    }
    let link = format!(
        "{}/c/{}/confirm/{token}",
        state.settings.public_url.trim_end_matches('/'),
        c.id
    );
    match crate::mail::confirm_signature(mailer, &state.pages, to, &s.name, c, &link).await {
        Ok(()) => Ok(signed(Confirmation::MailSent)),
        // The address had its mails for the hour: answered as if sent, so the answer does
        // not tell whether someone has been mailing it. The link stays valid; signing again
        // later sends it anew.
        Err(crate::mail::MailError::OverBudget) => Ok(signed(Confirmation::MailSent)),
        Err(e) => {
            // Never the address: the error does not hold it, and neither does this line.
            tracing::warn!(campaign = %c.id, signature = added.id.0, error = %e, "the confirmation mail could not be sent; the signature is kept unconfirmed");
            forget_sending(state, added.id).await;
            Ok(signed(Confirmation::MailFailed))
        }
    }
}

/// After a failed send, let the next signing retry at once. Failing here only means
/// waiting [`RESEND_AFTER`]; the signature is safe either way.
async fn forget_sending(state: &AppState, id: SignatureId) {
    if let Err(e) = state.store.confirmation_not_sent(id).await {
        tracing::warn!(signature = id.0, error = %e, "could not clear the confirmation mail time");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_required_and_trimmed() {
        assert!(Signer::parse("   ", None, true, None).is_err());
        assert_eq!(
            Signer::parse("  Ada ", None, true, None).unwrap().name(),
            "Ada"
        );
    }

    #[test]
    fn bad_email_addresses_are_refused_with_a_hint() {
        for bad in [
            "ada",
            "ada@",
            "@x.org",
            "ada@localhost",
            "a da@x.org",
            "ada@x.",
        ] {
            let e = Signer::parse("Ada", Some(bad), true, None)
                .unwrap_err()
                .to_string();
            assert!(e.contains("e-mail"), "{bad}: {e}");
        }
        assert!(Signer::parse("Ada", Some("ada@example.org"), true, None).is_ok());
        assert!(
            Signer::parse("Ada", Some(""), true, None).is_ok(),
            "empty means none"
        );
    }

    #[test]
    fn only_tokens_of_the_right_shape_are_looked_up_and_only_their_hash_is_kept() {
        let token = crate::web::guard::new_token();
        assert!(token_shape_ok(&token));
        assert!(!token_shape_ok("../../etc/passwd"));
        assert!(!token_shape_ok(&token[1..]));
        assert_eq!(token_hash(&token).len(), 64);
        assert_ne!(token_hash(&token), token);
    }

    #[test]
    fn the_debug_form_of_a_signer_hides_the_address() {
        let s = Signer::parse("Ada", Some("ada@example.org"), true, None).unwrap();
        let shown = format!("{s:?}");
        assert!(shown.contains("Ada") && !shown.contains("ada@"), "{shown}");
    }

    #[test]
    fn an_odd_invitation_code_is_ignored_not_stored() {
        let s = Signer::parse("Ada", None, true, Some("x'; DROP TABLE--")).unwrap();
        assert_eq!(s.invited_by, None);
    }
}
