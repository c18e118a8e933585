//! Posted forms: the one parser of form bodies ([`Fields`]) and the one extractor every
//! POST handler that takes a form uses ([`Form`]). The extractor reads the body, charges
//! the client's write budget and checks the CSRF token against its cookie, in that order,
//! for every form alike; what a handler answers to a form from another site is its own
//! (a page shown again with a message, a redirect, or [`Form::checked`]'s 403).

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

use super::guard::{self, CSRF_COOKIE};
use super::{AppState, WebError};

/// A form body as (name, value) pairs; names may repeat (`day=...&day=...`).
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    pub(crate) fn parse(body: &[u8]) -> Result<Fields, WebError> {
        if std::str::from_utf8(body).is_err() {
            return Err(WebError::BadRequest(
                "The form could not be read (it is not UTF-8): please send it again.".into(),
            ));
        }
        Ok(Fields(
            url::form_urlencoded::parse(body).into_owned().collect(),
        ))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().trim().to_string()
    }

    pub(crate) fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
impl Fields {
    pub(crate) fn of(pairs: &[(&str, &str)]) -> Fields {
        Fields(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

/// What a page answers to a form it did not serve (an expired session, another site).
pub(crate) const FORM_REFUSED: &str = "Your session expired or the form came from another site: go back, reload the page and try again.";

/// A posted form, read, within the client's write budget, with its CSRF verdict.
pub(crate) struct Form {
    pub fields: Fields,
    csrf_ok: bool,
}

impl Form {
    /// Whether the form carries the token of the cookie this site set with the page.
    pub(crate) fn csrf_ok(&self) -> bool {
        self.csrf_ok
    }

    /// The fields, or a 403 page when the form is not this site's.
    pub(crate) fn checked(&self) -> Result<&Fields, WebError> {
        if self.csrf_ok {
            Ok(&self.fields)
        } else {
            Err(WebError::Forbidden(FORM_REFUSED.into()))
        }
    }
}

impl FromRequest<AppState> for Form {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        // The client's address as `serve` found it (behind trusted proxies, the client's).
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
            .ok_or_else(|| {
                WebError::Internal(anyhow::anyhow!("a form came without a client address"))
                    .into_response()
            })?;
        let headers = req.headers().clone();
        // A body over the limit keeps its own answer (413).
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let fields = Fields::parse(&body).map_err(IntoResponse::into_response)?;
        if !state.limits.allow(peer.ip()) {
            return Err(WebError::TooMany.into_response());
        }
        let csrf_ok = guard::csrf_ok(&headers, fields.get("csrf").unwrap_or_default());
        Ok(Form { fields, csrf_ok })
    }
}

/// A rendered page with the CSRF cookie its forms need.
pub(crate) fn page_with_csrf(
    state: &AppState,
    template: &str,
    ctx: &impl Serialize,
    csrf: &str,
    status: StatusCode,
) -> Result<Response, WebError> {
    let html = state
        .pages
        .render(template, ctx)
        .map_err(|e| WebError::Internal(e.into()))?;
    let cookie = guard::set_cookie(CSRF_COOKIE, csrf, state.secure_cookies(), 24 * 3600);
    Ok((status, [(header::SET_COOKIE, cookie)], Html(html)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_is_not_utf8_is_a_400() {
        assert!(matches!(
            Fields::parse(&[0x66, 0x3d, 0xff, 0xfe]),
            Err(WebError::BadRequest(_))
        ));
    }

    #[test]
    fn repeated_names_are_all_kept_and_the_first_is_the_value() {
        let f = Fields::parse(b"day=2027-07-04&day=2027-07-05&name=+Alex+").unwrap();
        assert_eq!(
            f.all("day").collect::<Vec<_>>(),
            ["2027-07-04", "2027-07-05"]
        );
        assert_eq!(f.get("day"), Some("2027-07-04"));
        assert_eq!(f.text("name"), "Alex");
        assert_eq!(f.get("missing"), None);
    }

    #[test]
    fn a_form_from_another_site_is_refused_with_a_403_that_says_what_to_do() {
        let form = Form {
            fields: Fields::of(&[("csrf", "forged")]),
            csrf_ok: false,
        };
        let e = form.checked().err().unwrap();
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
        assert_eq!(e.to_string(), FORM_REFUSED);
    }
}
