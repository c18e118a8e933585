//! Request guards for forms: CSRF tokens (double-submit cookie) and per-IP rate limits.
//!
//! CSRF: a page with a form sets a random token in a `SameSite=Strict` cookie and puts the
//! same token in a hidden field; a POST is accepted only when both are present and equal.
//! Another site can make a browser send the cookie (not with Strict) but can never read it
//! to fill the field.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::http::HeaderMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::Rng;

pub const CSRF_COOKIE: &str = "picket_csrf";
pub const REF_COOKIE: &str = "picket_ref";

/// A fresh random token.
pub fn new_token() -> String {
    let mut b = [0u8; 24];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// The value of cookie `name` in the request, if any.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The CSRF token a page puts in its forms: the visitor's own (from their cookie) when it
/// looks like one of ours, a new one otherwise.
pub fn form_token(headers: &HeaderMap) -> String {
    cookie(headers, CSRF_COOKIE)
        .filter(|t| t.len() == 48)
        .unwrap_or_else(new_token)
}

/// Whether `code` can be an invitation code (they are short and alphanumeric): anything
/// else is not looked up or stored.
pub fn plausible_code(code: &str) -> bool {
    !code.is_empty() && code.len() <= 64 && code.chars().all(|c| c.is_ascii_alphanumeric())
}

/// `Set-Cookie` for a token: not readable by scripts, sent only to this site.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age_secs: u64) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Whether the form's token matches the cookie's, compared in constant time.
pub fn csrf_ok(headers: &HeaderMap, form_token: &str) -> bool {
    let Some(cookie) = cookie(headers, CSRF_COOKIE) else {
        return false;
    };
    let (a, b) = (cookie.as_bytes(), form_token.as_bytes());
    a.len() == b.len()
        && !a.is_empty()
        && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Per-IP budgets for what the public can write.
#[derive(Clone)]
pub struct Limits {
    /// `None` when rate limits are off (PICKET_RATE_LIMITS=off).
    writes: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
}

impl Limits {
    /// `per_minute` writes per client address, in bursts of up to `burst`.
    pub fn new(enabled: bool, per_minute: u32, burst: u32) -> Limits {
        let writes = enabled.then(|| {
            let quota = Quota::per_minute(NonZeroU32::new(per_minute.max(1)).expect("non-zero"))
                .allow_burst(NonZeroU32::new(burst.max(1)).expect("non-zero"));
            Arc::new(RateLimiter::keyed(quota))
        });
        Limits { writes }
    }

    /// Whether `ip` may write now.
    pub fn allow(&self, ip: IpAddr) -> bool {
        self.writes
            .as_ref()
            .is_none_or(|l| l.check_key(&ip).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::COOKIE, cookie.parse().unwrap());
        h
    }

    #[test]
    fn a_form_token_must_match_its_cookie() {
        assert!(csrf_ok(&headers("a=1; picket_csrf=abc"), "abc"));
        assert!(!csrf_ok(&headers("picket_csrf=abc"), "abd"));
        assert!(!csrf_ok(&headers("other=abc"), "abc"));
        assert!(!csrf_ok(&headers("picket_csrf="), ""));
    }

    #[test]
    fn a_client_over_its_budget_is_refused_and_others_are_not() {
        let limits = Limits::new(true, 60, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(limits.allow(a) && limits.allow(a));
        assert!(!limits.allow(a));
        assert!(limits.allow(b));
        assert!(Limits::new(false, 1, 1).allow(a) && Limits::new(false, 1, 1).allow(a));
    }
}
