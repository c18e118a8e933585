//! Signing a declaration: what a valid signature is (shared by the HTML form and the JSON
//! API) and writing it. Parse, don't validate: a [`Signer`] can only be made valid.

use crate::store::{NewSignature, SignatureAdded, canonical_email};

use super::{AppState, WebError};

/// A signer's input, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    name: String,
    email: Option<String>,
    public: bool,
    invited_by: Option<String>,
}

const MAX_NAME: usize = 80;
const MAX_EMAIL: usize = 254;

impl Signer {
    /// Check what a person typed; the error says what to fix.
    pub fn parse(
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
            .filter(|r| {
                !r.is_empty() && r.len() <= 64 && r.chars().all(|c| c.is_ascii_alphanumeric())
            })
            .map(str::to_string);
        Ok(Signer {
            name: name.to_string(),
            email,
            public,
            invited_by,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }
}

fn parse_email(e: &str) -> Result<String, String> {
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

/// Record a signature; a repeat of the same person is recognised, not counted again.
pub async fn sign(
    state: &AppState,
    campaign_id: &str,
    s: &Signer,
) -> Result<SignatureAdded, WebError> {
    let added = state
        .store
        .add_signature(
            &NewSignature {
                campaign_id: campaign_id.to_string(),
                name: s.name.clone(),
                email_canonical: s.email.as_deref().map(canonical_email),
                public: s.public,
                invited_by: s.invited_by.clone(),
                confirmed: true,
            },
            state.clock.now(),
        )
        .await?;
    Ok(added)
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
            let e = Signer::parse("Ada", Some(bad), true, None).unwrap_err();
            assert!(e.contains("e-mail"), "{bad}: {e}");
        }
        assert!(Signer::parse("Ada", Some("ada@example.org"), true, None).is_ok());
        assert!(
            Signer::parse("Ada", Some(""), true, None).is_ok(),
            "empty means none"
        );
    }

    #[test]
    fn an_odd_invitation_code_is_ignored_not_stored() {
        let s = Signer::parse("Ada", None, true, Some("x'; DROP TABLE--")).unwrap();
        assert_eq!(s.invited_by, None);
    }
}
