//! The JSON API (`/api/v1/...`), the counter badge and Prometheus metrics. Errors are JSON
//! `{"error": "..."}` with a 4xx status that says what to fix.
//!
//! `openapi.json` beside this file says exactly what the API accepts and answers, and the
//! handlers check exactly that: a request the document allows is not refused for its shape,
//! and one it forbids is refused with a status it lists (`scripts/schemathesis.sh` holds the
//! two together against a running picket).

use std::fmt::Write as _;
use std::net::SocketAddr;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::campaign::{counters, find, view};
use super::signing::{self, Signer};
use super::{AppState, WebError};

/// An API error, as JSON: the same variants as pages, or a status of its own for what
/// only the API meets (a body not sent as JSON, or too large).
pub enum ApiError {
    Web(WebError),
    Status(StatusCode, String),
}

impl From<WebError> for ApiError {
    fn from(e: WebError) -> Self {
        ApiError::Web(e)
    }
}

/// The `{id}` of an API path; a path that is not UTF-8 once decoded is a JSON 400, like
/// every other API error (axum's own answer would be plain text).
fn campaign_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(id)| id).map_err(|e| {
        ApiError::Web(WebError::BadRequest(format!(
            "the campaign id in the path could not be read: {}",
            e.body_text()
        )))
    })
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::Web(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::Web(e) => {
                if let WebError::Internal(e) = &e {
                    tracing::error!(error = %format!("{e:#}"), "API request failed");
                }
                (e.status(), e.to_string())
            }
            ApiError::Status(status, message) => (status, message),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// The OpenAPI document of this API.
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

pub async fn campaigns(State(state): State<AppState>) -> Json<Vec<serde_json::Value>> {
    Json(state.campaigns.iter().map(|c| summary(&state, c)).collect())
}

fn summary(state: &AppState, c: &crate::campaign::Campaign) -> serde_json::Value {
    let v = view(state, c);
    let base = state.settings.public_url.trim_end_matches('/');
    serde_json::json!({
        "id": c.id,
        "title": c.title,
        "hashtag": c.hashtag,
        "description": c.description,
        "when": v.when,
        "starts": v.starts,
        "url": format!("{base}/c/{}", c.id),
        "networks": c.networks,
        "threshold": c.threshold,
    })
}

pub async fn campaign(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = find(&state, &campaign_id(id)?)?;
    let mut v = summary(&state, c);
    v["strike"] = serde_json::to_value(&c.strike).unwrap_or_default();
    v["declaration"] = serde_json::json!(c.declaration.as_ref().map(|d| &d.markdown));
    v["declaration_sha256"] = serde_json::json!(c.declaration.as_ref().map(|d| &d.sha256));
    v["declaration_origin"] =
        serde_json::json!(c.declaration.as_ref().and_then(|d| d.origin.as_ref()).map(
            |o| serde_json::json!({
                "url": o.url,
                "sha256": o.sha256,
                "words_inserted": o.changes.inserted,
                "words_deleted": o.changes.deleted,
            })
        ));
    v["counters"] = serde_json::to_value(counters(&state, c).await?).unwrap_or_default();
    Ok(Json(v))
}

#[derive(Deserialize)]
pub struct NewSignatureBody {
    name: String,
    email: Option<String>,
    public: Option<bool>,
    #[serde(rename = "ref")]
    invited_by: Option<String>,
    /// The organisers may e-mail this signer (default false).
    email_consent: Option<bool>,
}

#[derive(Serialize)]
struct SignatureAnswer {
    invite_link: String,
    /// The same person had signed already: not counted again.
    duplicate: bool,
    /// Whether the signature counts now (not until its mailed link is followed otherwise).
    counted: bool,
    confirmation: signing::Confirmation,
}

/// The longest name, in characters (`NewSignature.name.maxLength`).
const MAX_NAME: usize = 80;
/// The longest address, in characters (`NewSignature.email`).
const MAX_EMAIL: usize = 254;

/// The body's fields as `openapi.json` describes them (`NewSignature`), checked to the
/// letter before [`Signer::parse`] reads them: its own rules (trimming, an address's
/// shape) are the same or looser for anything that passes here.
fn check_body(body: &NewSignatureBody) -> Result<(), String> {
    let name = &body.name;
    let length = name.chars().count();
    if length == 0 || name.trim().is_empty() {
        return Err("name: give a name (it can be a first name or a pseudonym)".into());
    }
    if length > MAX_NAME {
        return Err(format!(
            "name: at most {MAX_NAME} characters ({length} given)"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("name: control characters are not allowed".into());
    }
    if let Some(email) = body.email.as_deref()
        && email.chars().count() > MAX_EMAIL
    {
        return Err(format!("email: at most {MAX_EMAIL} characters"));
    }
    if let Some(code) = body.invited_by.as_deref()
        && !code.is_empty()
        && !super::guard::plausible_code(code)
    {
        return Err(
            "ref: an invitation code is letters and digits, at most 64 (or leave it out)".into(),
        );
    }
    Ok(())
}

/// Why a body was refused, with the status `openapi.json` lists for it: 413 too large,
/// 415 not sent as JSON, 422 not JSON or not the right fields.
fn body_error(e: JsonRejection) -> ApiError {
    const EXPECTED: &str =
        "expected JSON {\"name\": ..., \"email\"?: ..., \"public\"?: true|false, \"ref\"?: ...}";
    match e.status() {
        status @ StatusCode::PAYLOAD_TOO_LARGE => ApiError::Status(
            status,
            format!("the body is larger than the server accepts; {EXPECTED}"),
        ),
        status @ StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::Status(
            status,
            format!("send the body with Content-Type: application/json; {EXPECTED}"),
        ),
        _ => ApiError::Web(WebError::Invalid(format!("{EXPECTED}: {}", e.body_text()))),
    }
}

/// `201` for a new signature, `200` for a repeat of the same person, `422` for invalid input.
/// A signature waiting for its e-mail confirmation is stored all the same (2xx), even when
/// the mail could not be sent: `confirmation` says so.
pub async fn sign(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Json<NewSignatureBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let c = find(&state, &campaign_id(id)?)?;
    if !state.limits.allow(peer.ip()) {
        return Err(WebError::TooMany.into());
    }
    let Json(body) = body.map_err(body_error)?;
    check_body(&body).map_err(WebError::Invalid)?;
    let signer = Signer::parse(
        &body.name,
        body.email.as_deref(),
        body.public.unwrap_or(false),
        body.invited_by.as_deref(),
    )
    .map_err(|e| WebError::Invalid(e.to_string()))?
    .with_email_consent(body.email_consent.unwrap_or(false));
    let added = signing::sign(&state, c, &signer).await?;
    let answer = SignatureAnswer {
        invite_link: format!(
            "{}/i/{}",
            state.settings.public_url.trim_end_matches('/'),
            added.invite_code
        ),
        duplicate: added.duplicate,
        counted: added.confirmation.counted(),
        confirmation: added.confirmation,
    };
    let status = if added.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(answer)).into_response())
}

/// The campaign's [`Report`](crate::stats::Report): the very figures `picket stats
/// --format json` prints and the stats page draws.
pub async fn stats(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = find(&state, &campaign_id(id)?)?;
    let report = state.counts.report(&state, c).await?;
    Ok(Json(report.to_json()))
}

/// A live counter badge: "#Hashtag | 1,234 signed" (with `[[peers]]`: "1,234 signed across
/// 5 hosts", the verified total).
pub async fn badge(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let c = find(&state, &id)?;
    let snapshot = state.counts.get(&state, c).await?;
    let left = format!("#{}", c.hashtag);
    let right = match snapshot.across {
        Some(a) => format!(
            "{} signed across {} host{}",
            thousands(a.signatures),
            a.hosts,
            if a.hosts == 1 { "" } else { "s" }
        ),
        None => format!("{} signed", thousands(snapshot.counters.signatures)),
    };
    // Roughly 7 px a character at 11 px Verdana, as shields-style badges assume.
    let (lw, rw) = (
        left.chars().count() * 7 + 12,
        right.chars().count() * 7 + 12,
    );
    let esc = super::error::html_escape;
    let svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="{al}: {ar}"><title>{al}: {ar}</title><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{rw}" height="20" fill="#b3261e"/><g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="14">{al}</text><text x="{rx}" y="14">{ar}</text></g></svg>"##,
        w = lw + rw,
        al = esc(&left),
        ar = esc(&right),
        lx = lw / 2,
        rx = lw + rw / 2,
    );
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=60"),
        ],
        svg,
    )
        .into_response())
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Prometheus text exposition of the counts per campaign.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, WebError> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP picket_signatures Signatures per campaign.\n# TYPE picket_signatures gauge"
    );
    let mut posts = String::from(
        "# HELP picket_posts Posts per campaign and state.\n# TYPE picket_posts gauge\n",
    );
    let mut strikers = String::from(
        "# HELP picket_strikers Active pledges per campaign.\n# TYPE picket_strikers gauge\n",
    );
    let mut by_network = String::from(
        "# HELP picket_network_posts Posts per campaign, network and outcome, as stored (scheduled: not finished yet).\n# TYPE picket_network_posts gauge\n",
    );
    let mut awaiting = String::from(
        "# HELP picket_signatures_awaiting_confirmation Signatures per campaign waiting for their e-mail confirmation.\n# TYPE picket_signatures_awaiting_confirmation gauge\n",
    );
    for c in state.campaigns.iter() {
        let snap = state.counts.get(&state, c).await?;
        let counted = &snap.counters;
        let _ = writeln!(
            out,
            "picket_signatures{{campaign=\"{}\"}} {}",
            c.id, counted.signatures
        );
        let _ = writeln!(
            strikers,
            "picket_strikers{{campaign=\"{}\"}} {}",
            c.id, counted.strikers
        );
        // The stats report (cached like the counts) has the posts by network.
        let report = state.counts.report(&state, c).await?;
        let _ = writeln!(
            awaiting,
            "picket_signatures_awaiting_confirmation{{campaign=\"{}\"}} {}",
            c.id, report.signatures_awaiting_confirmation
        );
        network_lines(&mut by_network, &c.id, &report.posts.by_network_hour);
        let o = snap.posts;
        for (name, n) in [
            ("pending", o.pending),
            ("claimed", o.claimed),
            ("sending", o.sending),
            ("published", o.published),
            ("failed", o.failed),
            ("missed", o.missed),
            ("cancelled", o.cancelled),
            ("reminded", o.reminded),
            ("posted_by_hand", o.posted_by_hand),
            ("handing_off", o.handing_off),
            ("handed_off", o.handed_off),
        ] {
            let _ = writeln!(
                posts,
                "picket_posts{{campaign=\"{}\",state=\"{name}\"}} {n}",
                c.id
            );
        }
    }
    out.push_str(&awaiting);
    out.push_str(&strikers);
    out.push_str(&posts);
    out.push_str(&by_network);
    out.push_str(&state.lateness.render());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

/// `picket_network_posts` lines of one campaign: every network with posts, each outcome,
/// summed over the hours.
fn network_lines(out: &mut String, campaign: &str, hours: &[crate::stats::NetworkHour]) {
    let mut sums: std::collections::BTreeMap<&str, crate::stats::PostCounts> = Default::default();
    for h in hours {
        let s = sums.entry(h.network.as_str()).or_default();
        let c = &h.counts;
        s.scheduled += c.scheduled;
        s.published += c.published;
        s.failed += c.failed;
        s.missed += c.missed;
        s.cancelled += c.cancelled;
        s.posted_by_hand += c.posted_by_hand;
        s.reminded += c.reminded;
    }
    for (network, c) in sums {
        for (state, n) in [
            ("scheduled", c.scheduled),
            ("published", c.published),
            ("failed", c.failed),
            ("missed", c.missed),
            ("cancelled", c.cancelled),
            ("posted_by_hand", c.posted_by_hand),
            ("reminded", c.reminded),
        ] {
            let _ = writeln!(
                out,
                "picket_network_posts{{campaign=\"{campaign}\",network=\"{network}\",state=\"{state}\"}} {n}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_lines_sum_each_networks_hours_per_outcome() {
        let counts = |published, failed| crate::stats::PostCounts {
            published,
            failed,
            ..Default::default()
        };
        let hour = |network: &str, hour, c| crate::stats::NetworkHour {
            network: network.into(),
            hour,
            counts: c,
        };
        let mut out = String::new();
        network_lines(
            &mut out,
            "c",
            &[
                hour("mastodon", 1, counts(2, 1)),
                hour("mastodon", 5, counts(3, 0)),
                hour("nostr", 1, counts(0, 4)),
            ],
        );
        assert!(
            out.contains(
                "picket_network_posts{campaign=\"c\",network=\"mastodon\",state=\"published\"} 5\n"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "picket_network_posts{campaign=\"c\",network=\"mastodon\",state=\"failed\"} 1\n"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "picket_network_posts{campaign=\"c\",network=\"nostr\",state=\"failed\"} 4\n"
            ),
            "{out}"
        );
        assert_eq!(
            out.lines().count(),
            14,
            "seven outcomes for each of two networks"
        );
    }

    fn body(name: &str, email: Option<&str>, code: Option<&str>) -> NewSignatureBody {
        NewSignatureBody {
            name: name.into(),
            email: email.map(Into::into),
            public: None,
            invited_by: code.map(Into::into),
            email_consent: None,
        }
    }

    #[test]
    fn a_signing_body_is_checked_as_the_openapi_document_says() {
        assert!(check_body(&body("Ada", None, None)).is_ok());
        assert!(check_body(&body(&"é".repeat(80), Some(""), Some(""))).is_ok());
        assert!(check_body(&body(&"é".repeat(81), None, None)).is_err());
        assert!(check_body(&body(" \t ", None, None)).is_err());
        assert!(check_body(&body("A\u{7}da", None, None)).is_err());
        assert!(check_body(&body("A\u{85}da", None, None)).is_err());
        assert!(check_body(&body("Ada", Some(&"a".repeat(255)), None)).is_err());
        assert!(check_body(&body("Ada", None, Some("k7Qm2xVa"))).is_ok());
        assert!(check_body(&body("Ada", None, Some("x'; DROP TABLE--"))).is_err());
        assert!(check_body(&body("Ada", None, Some(&"a".repeat(65)))).is_err());
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(1234), "1,234");
        assert_eq!(super::thousands(1234567), "1,234,567");
    }
}
