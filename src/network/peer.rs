//! Reading from another picket host: the raw declaration text and the campaign JSON that
//! `picket declaration fork` copies, and a peer's signed checkpoint (`GET /c/{id}/checkpoint`,
//! judged by `federation`). Here because only `network/` speaks HTTP; it does not
//! post and holds no credentials. The caller picks the client: the trusted one for an
//! address the operator typed, the guarded one for any other.

use std::time::Duration;

use super::guarded::{Http, HttpError, Response};

/// Larger than any declaration or campaign: a host answering more is not a picket host.
const MAX_BYTES: usize = 2 * 1024 * 1024;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a page could not be read; each says what to check.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Nothing answered (DNS, refused connection, TLS, timeout).
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The host answered with an error status.
    #[error("{url} answered {status}: is this the address of a picket campaign?")]
    Status { url: String, status: u16 },
    /// The answer is not what a picket host serves there.
    #[error("{url} did not answer {expected}: {reason}")]
    Unexpected {
        url: String,
        expected: &'static str,
        reason: String,
    },
}

/// A text body and the content hash its host announced (`X-Content-SHA256`), if any.
#[derive(Debug, Clone)]
pub struct FetchedText {
    pub text: String,
    pub announced_sha256: Option<String>,
}

/// `GET url` as UTF-8 text.
pub async fn get_text(http: &Http, url: &str) -> Result<FetchedText, FetchError> {
    let resp = get(http, url).await?;
    let announced_sha256 = resp
        .headers()
        .get("x-content-sha256")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let bytes = body(url, resp).await?;
    let text = String::from_utf8(bytes).map_err(|e| FetchError::Unexpected {
        url: url.to_string(),
        expected: "UTF-8 text",
        reason: e.to_string(),
    })?;
    Ok(FetchedText {
        text,
        announced_sha256,
    })
}

/// `GET url` as JSON.
pub async fn get_json(http: &Http, url: &str) -> Result<serde_json::Value, FetchError> {
    let resp = get(http, url).await?;
    let bytes = body(url, resp).await?;
    serde_json::from_slice(&bytes).map_err(|e| FetchError::Unexpected {
        url: url.to_string(),
        expected: "JSON",
        reason: e.to_string(),
    })
}

/// Larger than any checkpoint (a dozen short lines and a signature).
const MAX_CHECKPOINT_BYTES: usize = 16 * 1024;

/// A peer's checkpoint note at `url`, within `timeout` (a peer that does not answer must
/// not hold up the others' round).
pub async fn get_checkpoint(
    http: &Http,
    url: &str,
    timeout: Duration,
) -> Result<String, FetchError> {
    let resp = get_within(http, url, timeout, MAX_CHECKPOINT_BYTES).await?;
    let bytes = body(url, resp).await?;
    String::from_utf8(bytes).map_err(|e| FetchError::Unexpected {
        url: url.to_string(),
        expected: "UTF-8 text",
        reason: e.to_string(),
    })
}

async fn get(http: &Http, url: &str) -> Result<Response, FetchError> {
    get_within(http, url, TIMEOUT, MAX_BYTES).await
}

async fn get_within(
    http: &Http,
    url: &str,
    timeout: Duration,
    max: usize,
) -> Result<Response, FetchError> {
    let resp = http
        .get(url)
        .timeout(timeout)
        .max_body(max)
        .send()
        .await
        .map_err(|e| FetchError::Unreachable {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    if !resp.status().is_success() {
        return Err(FetchError::Status {
            url: url.to_string(),
            status: resp.status().as_u16(),
        });
    }
    Ok(resp)
}

async fn body(url: &str, resp: Response) -> Result<Vec<u8>, FetchError> {
    resp.bytes().await.map_err(|e| match e {
        HttpError::TooLarge(max) => FetchError::Unexpected {
            url: url.to_string(),
            expected: "a picket document",
            reason: format!("the answer is larger than {max} bytes"),
        },
        other => FetchError::Unreachable {
            url: url.to_string(),
            reason: other.to_string(),
        },
    })
}
