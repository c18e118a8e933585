//! Connecting a Misskey (or Sharkey, Iceshrimp ...) account with MiAuth, asking only
//! `write:notes` (misskey-hub.net, "MiAuth": open `{server}/miauth/{session}?name=..&
//! permission=write:notes&callback=..` in the browser, where the person allows the app;
//! then `POST /api/miauth/{session}/check` answers `{"ok": true, "token", "user"}`). The
//! server's limits come from `POST /api/meta` (`maxNoteTextLength`).
//!
//! A pasted access token (from the web client's Settings → API) works too; its account is
//! read with `POST /api/i`, which needs `read:account` on that token.

use std::time::Duration;

use rand::RngExt;
use serde::Deserialize;

use super::Credentials;
use crate::network::Enrolled;
use crate::network::guarded::Http;

/// The only permission picket asks for.
pub const PERMISSION: &str = "write:notes";

/// How long each enrolment request may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// Why an account could not be connected; the text may quote the server (operator only).
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The address is not a server address.
    #[error("{0}")]
    Invalid(String),
    /// The server could not be reached, or answered what Misskey does not.
    #[error("{0}")]
    Failed(String),
    /// The person has not allowed picket (yet), or the token was refused.
    #[error("{0}")]
    NotAllowed(String),
}

/// `https://` added to a bare host; http(s) only, no path, credentials or query.
pub fn normalise_server(server: &str) -> Result<String, EnrollError> {
    let s = server.trim().trim_end_matches('/');
    let s = if s.contains("://") {
        s.to_string()
    } else {
        format!("https://{s}")
    };
    let ok = url::Url::parse(&s).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some()
            && u.username().is_empty()
            && u.password().is_none()
            && u.query().is_none()
    });
    if !ok {
        return Err(EnrollError::Invalid(format!(
            "`{server}` is not a server address such as misskey.io"
        )));
    }
    Ok(s)
}

/// A fresh MiAuth session id (a UUID, as MiAuth asks).
pub fn new_session() -> String {
    let b: [u8; 16] = rand::rng().random();
    let h = hex::encode(b);
    format!(
        "{}-{}-4{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A server, opened: its address and the limits it announced.
#[derive(Clone)]
pub struct Server {
    http: Http,
    pub url: String,
    /// `maxNoteTextLength`.
    pub max_text: Option<usize>,
    /// `version` from `api/meta`, for the summary.
    pub version: Option<String>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "maxNoteTextLength", default)]
    max_note_text_length: Option<usize>,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Deserialize)]
struct User {
    id: String,
    username: String,
}

#[derive(Deserialize)]
struct Check {
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    user: Option<User>,
}

impl Server {
    /// Read what the server at `url` (already normalised) allows.
    pub async fn open(http: Http, url: String) -> Result<Server, EnrollError> {
        let resp = http
            .post(&format!("{url}/api/meta"))
            .timeout(TIMEOUT)
            .json(&serde_json::json!({ "detail": false }))
            .send()
            .await
            .map_err(|e| EnrollError::Failed(format!("reaching {url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(EnrollError::Failed(format!(
                "{url}/api/meta answered {}: not a Misskey-API server?",
                resp.status().as_u16()
            )));
        }
        let meta: Meta = resp
            .json()
            .await
            .map_err(|e| EnrollError::Failed(format!("{url}/api/meta: {e}")))?;
        Ok(Server {
            http,
            url,
            max_text: meta.max_note_text_length,
            version: meta.version,
        })
    }

    /// The page where the person allows picket to post notes; the server sends the
    /// browser to `callback` (with `?session=`) once they did.
    pub fn miauth_url(&self, session: &str, callback: Option<&str>) -> String {
        let mut u = url::Url::parse(&format!("{}/miauth/{session}", self.url))
            .expect("a normalised server address");
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("name", "picket");
            q.append_pair("permission", PERMISSION);
            if let Some(cb) = callback {
                q.append_pair("callback", cb);
            }
        }
        u.to_string()
    }

    /// The token of MiAuth session `session`, once the person allowed it.
    pub async fn miauth_check(&self, session: &str) -> Result<Enrolled, EnrollError> {
        let resp = self
            .http
            .post(&format!("{}/api/miauth/{session}/check", self.url))
            .timeout(TIMEOUT)
            .json(&serde_json::json!({}))
            .send()
            .await
            .map_err(|e| EnrollError::Failed(format!("reaching {}: {e}", self.url)))?;
        if !resp.status().is_success() {
            return Err(EnrollError::Failed(format!(
                "{} answered {} to the MiAuth check",
                self.url,
                resp.status().as_u16()
            )));
        }
        let check: Check = resp
            .json()
            .await
            .map_err(|e| EnrollError::Failed(format!("the MiAuth check: {e}")))?;
        match (check.ok, check.token, check.user) {
            (true, Some(token), Some(user)) => Ok(self.enrolled(token, user)),
            _ => Err(EnrollError::NotAllowed(
                "the server says picket was not allowed (yet): open the page and allow it".into(),
            )),
        }
    }

    /// A pasted token: the account it belongs to (`i` needs `read:account`).
    pub async fn token(&self, token: &str) -> Result<Enrolled, EnrollError> {
        let resp = self
            .http
            .post(&format!("{}/api/i", self.url))
            .timeout(TIMEOUT)
            .json(&serde_json::json!({ "i": token }))
            .send()
            .await
            .map_err(|e| EnrollError::Failed(format!("reaching {}: {e}", self.url)))?;
        match resp.status().as_u16() {
            200 => {}
            401 => {
                return Err(EnrollError::NotAllowed(
                    "the server refused the token".into(),
                ));
            }
            403 => {
                return Err(EnrollError::NotAllowed(
                    "the token may not read its account (read:account): connect without \
                     --token instead, which asks only write:notes"
                        .into(),
                ));
            }
            s => {
                return Err(EnrollError::Failed(format!(
                    "{} answered {s} to /api/i",
                    self.url
                )));
            }
        }
        let user: User = resp
            .json()
            .await
            .map_err(|e| EnrollError::Failed(format!("/api/i: {e}")))?;
        Ok(self.enrolled(token.to_string(), user))
    }

    fn enrolled(&self, token: String, user: User) -> Enrolled {
        let host = url::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        Enrolled {
            handle: format!("@{}@{host}", user.username),
            credentials: Credentials {
                token,
                user_id: user.id,
                max_text: self.max_text,
            }
            .to_secret(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miauth_page_asks_only_to_write_notes() {
        let server = Server {
            http: Http::trusted(),
            url: "https://misskey.example".into(),
            max_text: None,
            version: None,
        };
        let page = server.miauth_url(
            "0b5c1f3e-1111-4222-8333-444455556666",
            Some("https://p.example/cb?x=1"),
        );
        assert_eq!(
            page,
            "https://misskey.example/miauth/0b5c1f3e-1111-4222-8333-444455556666?name=picket&permission=write%3Anotes&callback=https%3A%2F%2Fp.example%2Fcb%3Fx%3D1"
        );
        let s = new_session();
        assert_eq!(s.len(), 36);
        assert_ne!(s, new_session());
        assert_eq!(
            normalise_server("misskey.io/").unwrap(),
            "https://misskey.io"
        );
        assert!(normalise_server("https://u:p@misskey.io").is_err());
    }
}
