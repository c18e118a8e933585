//! Request guards for forms: CSRF tokens (double-submit cookie), the client's address
//! (behind trusted reverse proxies) and per-client rate limits.
//!
//! CSRF: a page with a form sets a random token in a `SameSite=Strict` cookie and puts the
//! same token in a hidden field; a POST is accepted only when both are present and equal.
//! Another site can make a browser send the cookie (not with Strict) but can never read it
//! to fill the field.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::http::HeaderMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::Rng;

use crate::config::TrustedProxies;

pub const CSRF_COOKIE: &str = "picket_csrf";
pub const REF_COOKIE: &str = "picket_ref";

/// Bytes of randomness in a CSRF token; its text is their lowercase hex.
const TOKEN_BYTES: usize = 24;

/// A fresh random token.
pub fn new_token() -> String {
    let mut b = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut b);
    // Into a buffer of its own: `hex::encode` collects a `char` at a time (1% of serving
    // the campaign page, which makes a token for each new visitor).
    let mut text = [0u8; 2 * TOKEN_BYTES];
    hex::encode_to_slice(b, &mut text).expect("the buffer is twice the bytes");
    String::from_utf8(text.to_vec()).expect("hex is ASCII")
}

/// Whether `t` has the shape of a token [`new_token`] makes: only such text is ever
/// written into a page unescaped (the campaign page's cached HTML gets it by `replace`).
pub fn token_shape_ok(t: &str) -> bool {
    t.len() == 2 * TOKEN_BYTES && t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
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
        .filter(|t| token_shape_ok(t))
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

/// The client's address: the TCP peer, unless the peer is a trusted reverse proxy; then
/// the right-most address in `X-Forwarded-For` (or, when there is none, `Forwarded`) that
/// is not itself a trusted proxy. Everything left of that was written by the client and
/// proves nothing; a hop that says `unknown` leaves the nearest proxy as the client.
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> SocketAddr {
    if trusted.is_empty() || !trusted.contains(peer.ip()) {
        return peer;
    }
    let mut hops: Vec<Option<IpAddr>> = forwarded_for(headers, "x-forwarded-for", |list| {
        list.split(',').map(parse_hop).collect()
    });
    if hops.is_empty() {
        hops = forwarded_for(headers, "forwarded", |list| {
            list.split(',')
                .filter_map(|element| {
                    element.split(';').find_map(|pair| {
                        let (k, v) = pair.trim().split_once('=')?;
                        k.trim().eq_ignore_ascii_case("for").then(|| parse_hop(v))
                    })
                })
                .collect()
        });
    }
    let mut client = peer.ip();
    for hop in hops.into_iter().rev() {
        match hop {
            Some(ip) if trusted.contains(ip) => client = ip,
            Some(ip) => {
                client = ip;
                break;
            }
            None => break,
        }
    }
    SocketAddr::new(client.to_canonical(), peer.port())
}

/// Every hop of every `name` header line, in order.
fn forwarded_for(
    headers: &HeaderMap,
    name: &str,
    hops: impl Fn(&str) -> Vec<Option<IpAddr>>,
) -> Vec<Option<IpAddr>> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| match v.to_str() {
            Ok(list) => hops(list),
            // Bytes that are not text are no address.
            Err(_) => vec![None],
        })
        .collect()
}

/// One hop: `203.0.113.7`, `203.0.113.7:4711`, `2001:db8::1`, `[2001:db8::1]:4711`,
/// optionally quoted (`Forwarded`); `None` for `unknown`, `_hidden` and the like.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = hop.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
}

/// The key a client is limited by: its IPv4 address, or the /64 an IPv6 address is in
/// (one subscriber usually has a whole /64 and could step through it).
fn limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Per-client budgets for what the public can write.
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
            .is_none_or(|l| l.check_key(&limit_key(ip)).is_ok())
    }

    /// Forget the clients whose budget is full again: they are as if never seen, and the
    /// map would otherwise keep one entry per address that ever wrote.
    pub fn prune(&self) {
        if let Some(l) = &self.writes {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Clients remembered now.
    pub fn tracked(&self) -> usize {
        self.writes.as_ref().map_or(0, |l| l.len())
    }

    /// [`Limits::prune`] every `every` until `stop`.
    pub async fn prune_every(
        &self,
        every: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => self.prune(),
            }
        }
    }
}

/// Budgets for signing in to the organiser area: a strict one per client address (5 a
/// minute) and one for everyone together (20 a minute), so spreading guesses over many
/// addresses gains little. They apply whatever `rate_limits` says: a password guess is
/// not a public write.
#[derive(Clone)]
pub struct SignInLimits {
    per_client: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    global: Arc<governor::DefaultDirectRateLimiter>,
}

impl Default for SignInLimits {
    fn default() -> SignInLimits {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).expect("non-zero"));
        SignInLimits {
            per_client: Arc::new(RateLimiter::keyed(quota(5))),
            global: Arc::new(RateLimiter::direct(quota(20))),
        }
    }
}

impl SignInLimits {
    /// Whether `ip` may try a password now; a try is charged to both budgets.
    pub fn allow(&self, ip: IpAddr) -> bool {
        // Addresses whose budget is full again are forgotten before the map grows large.
        if self.per_client.len() > 10_000 {
            self.per_client.retain_recent();
        }
        self.per_client.check_key(&limit_key(ip)).is_ok() && self.global.check().is_ok()
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

    #[test]
    fn one_ipv6_subscriber_cannot_step_through_its_64_for_fresh_budgets() {
        let limits = Limits::new(true, 60, 1);
        assert!(limits.allow("2001:db8:1:2::1".parse().unwrap()));
        assert!(!limits.allow("2001:db8:1:2:ffff::9".parse().unwrap()));
        assert!(limits.allow("2001:db8:1:3::1".parse().unwrap()));
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(limits.allow(v4) && !limits.allow(mapped));
    }

    #[test]
    fn idle_clients_are_pruned_and_busy_ones_kept() {
        // A budget refilled within a millisecond, and one that takes a second.
        let quick = Limits::new(true, 60_000, 1);
        let slow = Limits::new(true, 60, 5);
        for i in 0..100u8 {
            assert!(quick.allow(IpAddr::from([10, 0, 0, i])));
        }
        assert!(slow.allow(IpAddr::from([10, 1, 0, 1])));
        assert_eq!((quick.tracked(), slow.tracked()), (100, 1));
        std::thread::sleep(std::time::Duration::from_millis(20));

        quick.prune();
        slow.prune();

        assert_eq!(
            quick.tracked(),
            0,
            "a client whose budget is full again is forgotten"
        );
        assert_eq!(
            slow.tracked(),
            1,
            "a client still paying off its writes is kept"
        );
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    fn forwarded(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn client(peer_ip: &str, trusted: &[&str], headers: &[(&str, &str)]) -> String {
        let trusted = TrustedProxies::parse(trusted.iter().copied()).unwrap();
        client_addr(peer(peer_ip), &forwarded(headers), &trusted)
            .ip()
            .to_string()
    }

    #[test]
    fn forwarded_addresses_count_only_from_a_trusted_proxy() {
        let xff = [("x-forwarded-for", "198.51.100.1")];
        assert_eq!(client("127.0.0.1", &[], &xff), "127.0.0.1");
        assert_eq!(client("203.0.113.9", &["127.0.0.1"], &xff), "203.0.113.9");
        assert_eq!(client("127.0.0.1", &["127.0.0.1"], &xff), "198.51.100.1");
        assert_eq!(
            client("127.0.0.1", &["127.0.0.1"], &[]),
            "127.0.0.1",
            "a proxy that says nothing is the client"
        );
    }

    #[test]
    fn the_right_most_address_that_is_not_a_proxy_is_the_client() {
        let trusted = ["10.0.0.0/8", "127.0.0.1"];
        // The client wrote the first two entries itself: they prove nothing.
        let chain = [
            ("x-forwarded-for", "1.1.1.1, 2.2.2.2"),
            ("x-forwarded-for", "198.51.100.7, 10.0.0.2"),
        ];
        assert_eq!(client("127.0.0.1", &trusted, &chain), "198.51.100.7");
        let all_proxies = [("x-forwarded-for", "10.0.0.3, 10.0.0.2")];
        assert_eq!(client("127.0.0.1", &trusted, &all_proxies), "10.0.0.3");
        let unknown = [("x-forwarded-for", "1.1.1.1, unknown, 10.0.0.2")];
        assert_eq!(client("127.0.0.1", &trusted, &unknown), "10.0.0.2");
        let mapped = [("x-forwarded-for", "::ffff:198.51.100.8")];
        assert_eq!(client("127.0.0.1", &trusted, &mapped), "198.51.100.8");
    }

    #[test]
    fn the_forwarded_header_is_read_when_there_is_no_x_forwarded_for() {
        let trusted = ["127.0.0.1"];
        let standard = [(
            "forwarded",
            "for=1.1.1.1, for=\"[2001:db8:cafe::17]:4711\";proto=https;by=127.0.0.1",
        )];
        assert_eq!(
            client("127.0.0.1", &trusted, &standard),
            "2001:db8:cafe::17"
        );
        let port = [("forwarded", "For=\"198.51.100.9:1234\"")];
        assert_eq!(client("127.0.0.1", &trusted, &port), "198.51.100.9");
        let both = [
            ("forwarded", "for=1.1.1.1"),
            ("x-forwarded-for", "198.51.100.10"),
        ];
        assert_eq!(client("127.0.0.1", &trusted, &both), "198.51.100.10");
        let hidden = [("forwarded", "for=_hidden")];
        assert_eq!(client("127.0.0.1", &trusted, &hidden), "127.0.0.1");
    }

    #[test]
    fn only_tokens_picket_makes_pass_as_tokens() {
        assert!(token_shape_ok(&new_token()));
        assert!(!token_shape_ok(&"A".repeat(48)));
        assert!(!token_shape_ok(&format!("{:x<48}", "\"><script>")));
        assert!(!token_shape_ok(&"a".repeat(47)));
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            format!("picket_csrf={:x<48}", "\"><b>").parse().unwrap(),
        );
        assert!(token_shape_ok(&form_token(&h)));
        assert!(!form_token(&h).contains('<'));
    }
}
