//! Handle → DID → PDS resolution (atproto.com/specs/handle, /specs/did), for adding an
//! account, and handle → DID through a PDS (`com.atproto.identity.resolveHandle`) for
//! mentions and `--service`.
//!
//! Only the HTTPS method resolves handles here (`https://<handle>/.well-known/atproto-did`);
//! the DNS TXT method (`_atproto.<handle>`) needs a DNS resolver picket does not carry
//! yet, so handles that publish only a TXT record need `--service`.

use std::time::Duration;

use serde_json::Value;

/// The public PLC directory `did:plc` documents are read from.
pub const PLC_DIRECTORY: &str = "https://plc.directory";

/// Where an account lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub did: String,
    pub pds: String,
}

/// Why a handle could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("`{0}` is not a handle (like alice.bsky.social)")]
    NotAHandle(String),
    #[error("{0}")]
    Lookup(String),
    #[error(
        "the DID document of {did} does not list the handle {handle}: the handle is not verified"
    )]
    NotBidirectional { did: String, handle: String },
    #[error("the DID document of {0} names no PDS (#atproto_pds)")]
    NoPds(String),
}

/// Handle → DID (HTTPS well-known), DID → document (PLC directory or did:web), → PDS,
/// checking that the document claims the handle back.
pub async fn resolve(
    client: &reqwest::Client,
    handle: &str,
    plc: &str,
    timeout: Duration,
) -> Result<Resolved, ResolveError> {
    if !super::facets::is_handle(handle) {
        return Err(ResolveError::NotAHandle(handle.to_string()));
    }
    let url = format!("https://{handle}/.well-known/atproto-did");
    let did = get_text(client, &url, timeout).await?.trim().to_string();
    if !did.starts_with("did:") {
        return Err(ResolveError::Lookup(format!("{url} did not return a DID")));
    }
    let doc_url = if let Some(domain) = did.strip_prefix("did:web:") {
        format!(
            "https://{}/.well-known/did.json",
            domain.replace("%3A", ":")
        )
    } else if did.starts_with("did:plc:") {
        format!("{}/{did}", plc.trim_end_matches('/'))
    } else {
        return Err(ResolveError::Lookup(format!(
            "unsupported DID method: {did}"
        )));
    };
    let doc: Value = serde_json::from_str(&get_text(client, &doc_url, timeout).await?)
        .map_err(|_| ResolveError::Lookup(format!("{doc_url} is not a DID document")))?;
    let pds = pds_of(&doc).ok_or_else(|| ResolveError::NoPds(did.clone()))?;
    let claimed = format!("at://{handle}");
    let claims = doc["alsoKnownAs"].as_array().is_some_and(|a| {
        a.iter()
            .any(|v| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(&claimed)))
    });
    if !claims {
        return Err(ResolveError::NotBidirectional {
            did,
            handle: handle.to_string(),
        });
    }
    Ok(Resolved { did, pds })
}

/// The first `#atproto_pds` service of a DID document.
fn pds_of(doc: &Value) -> Option<String> {
    doc["service"].as_array()?.iter().find_map(|s| {
        let id = s["id"].as_str()?;
        (id.ends_with("#atproto_pds") && s["type"] == "AtprotoPersonalDataServer")
            .then(|| {
                s["serviceEndpoint"]
                    .as_str()
                    .map(|e| e.trim_end_matches('/').to_string())
            })
            .flatten()
    })
}

async fn get_text(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<String, ResolveError> {
    let resp = client
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| ResolveError::Lookup(format!("{url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(ResolveError::Lookup(format!("{url}: {}", resp.status())));
    }
    resp.text()
        .await
        .map_err(|e| ResolveError::Lookup(format!("{url}: {e}")))
}

/// `com.atproto.identity.resolveHandle` on `service` (a PDS resolves its own accounts and
/// looks others up itself).
pub async fn resolve_handle_via(
    client: &reqwest::Client,
    service: &str,
    handle: &str,
    timeout: Duration,
) -> Result<String, ResolveError> {
    let url = format!(
        "{}/xrpc/com.atproto.identity.resolveHandle",
        service.trim_end_matches('/')
    );
    let resp = client
        .get(super::with_query(&url, &[("handle".into(), handle.into())]))
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| {
            ResolveError::Lookup(format!("{service}: {}", super::super::without_url(&e)))
        })?;
    if !resp.status().is_success() {
        return Err(ResolveError::Lookup(format!(
            "{service} could not resolve {handle}: {}",
            resp.status()
        )));
    }
    let v: Value = resp
        .json()
        .await
        .map_err(|e| ResolveError::Lookup(e.to_string()))?;
    v["did"]
        .as_str()
        .filter(|d| d.starts_with("did:"))
        .map(str::to_string)
        .ok_or_else(|| ResolveError::Lookup(format!("{service} returned no DID for {handle}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_pds_is_the_atproto_pds_service_of_the_did_document() {
        let doc = json!({
            "id": "did:plc:abc",
            "alsoKnownAs": ["at://alice.example.com"],
            "service": [
                {"id": "#other", "type": "Other", "serviceEndpoint": "https://x"},
                {"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": "https://pds.example/"}
            ]
        });
        assert_eq!(pds_of(&doc).as_deref(), Some("https://pds.example"));
    }

    #[test]
    fn a_document_without_a_pds_names_none() {
        assert_eq!(pds_of(&json!({"service": []})), None);
    }
}
