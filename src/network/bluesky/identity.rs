//! Handle → DID → PDS resolution (atproto.com/specs/handle, /specs/did), for adding an
//! account, and handle → DID through a PDS (`com.atproto.identity.resolveHandle`) for
//! mentions and `--service`.
//!
//! Handles resolve by DNS first (a TXT record `_atproto.<handle>` holding `did=<did>`), then
//! over HTTPS (`https://<handle>/.well-known/atproto-did`), as the handle spec lists them.
//!
//! Every address here comes from a handle or a remote document (the DID document names
//! the PDS): callers pass the guarded client unless the operator typed the address.

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

/// Where DNS questions go.
#[derive(Debug, Clone, Default)]
pub enum Dns {
    /// The machine's resolvers (`/etc/resolv.conf`).
    #[default]
    System,
    /// These servers only (tests, or a host that must use a given resolver).
    Servers(Vec<std::net::SocketAddr>),
}

/// The DID a handle's `_atproto` TXT record names, if it has one.
pub async fn did_from_dns(
    handle: &str,
    dns: &Dns,
    timeout: Duration,
) -> Result<Option<String>, ResolveError> {
    use hickory_resolver::Resolver;
    use hickory_resolver::config::{
        ConnectionConfig, NameServerConfig, ProtocolConfig, ResolverConfig,
    };
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    use hickory_resolver::proto::rr::RData;

    let mut builder = match dns {
        Dns::System => Resolver::builder(TokioRuntimeProvider::default())
            .map_err(|e| ResolveError::Lookup(format!("reading the system's DNS settings: {e}")))?,
        Dns::Servers(servers) => {
            let name_servers = servers
                .iter()
                .map(|addr| {
                    let mut udp = ConnectionConfig::new(ProtocolConfig::Udp);
                    udp.port = addr.port();
                    NameServerConfig::new(addr.ip(), true, vec![udp])
                })
                .collect();
            Resolver::builder_with_config(
                ResolverConfig::from_name_servers(name_servers),
                TokioRuntimeProvider::default(),
            )
        }
    };
    builder.options_mut().timeout = timeout;
    let resolver = builder
        .build()
        .map_err(|e| ResolveError::Lookup(format!("starting a DNS resolver: {e}")))?;
    // The trailing dot makes the name absolute: no search domains are tried.
    let lookup = match resolver.txt_lookup(format!("_atproto.{handle}.")).await {
        Ok(l) => l,
        // No record (or no answer): the HTTPS method may still work.
        Err(_) => return Ok(None),
    };
    let dids: Vec<String> = lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|part| String::from_utf8_lossy(part))
                    .collect::<String>(),
            ),
            _ => None,
        })
        .filter_map(|text| text.strip_prefix("did=").map(|d| d.trim().to_string()))
        .filter(|d| d.starts_with("did:"))
        .collect();
    // The spec: more than one `did=` record makes the handle invalid, not ambiguous.
    match dids.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        _ => Err(ResolveError::Lookup(format!(
            "_atproto.{handle} has several DID records"
        ))),
    }
}

/// Handle → DID (DNS TXT, then HTTPS well-known), DID → document (PLC directory or
/// did:web), → PDS, checking that the document claims the handle back.
pub async fn resolve(
    client: &super::super::Http,
    handle: &str,
    plc: &str,
    dns: &Dns,
    timeout: Duration,
) -> Result<Resolved, ResolveError> {
    if !super::facets::is_handle(handle) {
        return Err(ResolveError::NotAHandle(handle.to_string()));
    }
    let did = match did_from_dns(handle, dns, timeout).await? {
        Some(did) => did,
        None => {
            let url = format!("https://{handle}/.well-known/atproto-did");
            let did = get_text(client, &url, timeout).await?.trim().to_string();
            if !did.starts_with("did:") {
                return Err(ResolveError::Lookup(format!("{url} did not return a DID")));
            }
            did
        }
    };
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
    client: &super::super::Http,
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
    client: &super::super::Http,
    service: &str,
    handle: &str,
    timeout: Duration,
) -> Result<String, ResolveError> {
    let url = format!(
        "{}/xrpc/com.atproto.identity.resolveHandle",
        service.trim_end_matches('/')
    );
    let resp = client
        .get(&super::with_query(
            &url,
            &[("handle".into(), handle.into())],
        ))
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| ResolveError::Lookup(format!("{service}: {e}")))?;
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

#[cfg(test)]
mod dns_tests {
    use super::*;
    use hickory_resolver::proto::op::Message;
    use hickory_resolver::proto::rr::rdata::TXT;
    use hickory_resolver::proto::rr::{RData, Record};

    /// A real DNS server on loopback (UDP, wire format from hickory-proto) answering TXT
    /// questions from `zone`: (name, strings).
    async fn dns_server(zone: Vec<(&'static str, Vec<&'static str>)>) -> std::net::SocketAddr {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut answer = query.clone().into_response();
                for q in &query.queries {
                    let asked = q
                        .name()
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase();
                    for (name, strings) in &zone {
                        if *name == asked {
                            let txt = TXT::new(strings.iter().map(|s| s.to_string()).collect());
                            answer.add_answer(Record::from_rdata(
                                q.name().clone(),
                                60,
                                RData::TXT(txt),
                            ));
                        }
                    }
                }
                let _ = socket.send_to(&answer.to_vec().unwrap(), peer).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_handle_resolves_through_its_atproto_txt_record() {
        let server = dns_server(vec![
            ("_atproto.alice.example", vec!["did=did:plc:abc123"]),
            ("_atproto.twice.example", vec!["did=did:plc:one"]),
            ("_atproto.twice.example", vec!["did=did:plc:two"]),
            ("_atproto.other.example", vec!["v=spf1 -all"]),
        ])
        .await;
        let dns = Dns::Servers(vec![server]);
        let t = Duration::from_secs(2);

        assert_eq!(
            did_from_dns("alice.example", &dns, t)
                .await
                .unwrap()
                .as_deref(),
            Some("did:plc:abc123")
        );
        assert_eq!(did_from_dns("nobody.example", &dns, t).await.unwrap(), None);
        assert_eq!(
            did_from_dns("other.example", &dns, t).await.unwrap(),
            None,
            "a TXT record that is not did= is ignored"
        );
        assert!(
            did_from_dns("twice.example", &dns, t).await.is_err(),
            "two DIDs make the handle invalid"
        );
    }
}
