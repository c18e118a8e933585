//! Hostile input over HTTP against a real `picket serve` (the binary, rate limits off so
//! every request reaches its handler): the report's crashing cadence, and well over a
//! thousand generated bodies and query strings across every public POST route, the JSON
//! API and the GET routes that read a query (wrong types, huge values, control characters,
//! invalid UTF-8, overlong fields, duplicate keys, absurd durations and dates), with and
//! without a valid CSRF token. None may get a 5xx, and the server must keep answering
//! `/healthz`. A seeded RNG makes a failure reproducible.
//!
//! Nothing leaves the machine: the server has no SMTP, and bodies for the Mastodon,
//! Bluesky and Nostr connect forms carry a valid token only with addresses that are
//! refused before any lookup (or loopback ones).

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};

use crate::support::{Options, TestApp};

const ID: &str = "social-media-strike";

/// The report's cadence: each part under the old per-part cap, the sum far past the range
/// of dates.
fn crashing_cadence() -> String {
    "100000d".repeat(960)
}

/// `picket serve` with the bundled campaign, rate limits off, the sandbox network on (the
/// tests connect a sandbox account, which needs nothing outside the machine).
async fn start() -> TestApp {
    start_with(None).await
}

/// Like [`start`], with the declaration's text replaced when given.
async fn start_with(declaration: Option<&str>) -> TestApp {
    let mut options = Options::default().config("sandbox = true").process();
    if let Some(text) = declaration {
        options = options.campaign_file("declaration.md", text);
    }
    TestApp::spawn(options).await
}

/// One browser: keeps its cookies, follows no redirects, sends raw bytes.
struct Browser {
    base: String,
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

struct Answer {
    status: StatusCode,
    body: String,
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser {
            base: base.to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                // A connection the server closed after refusing a body unread must not be
                // reused for the next request: each request gets its own.
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder, what: &str) -> Answer {
        let jar: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let resp = match req.header(COOKIE, jar.join("; ")).send().await {
            Ok(resp) => resp,
            // No answer at all (a dropped connection): worse than a 5xx, reported as one.
            Err(e) => {
                return Answer {
                    status: StatusCode::from_u16(599).unwrap(),
                    body: format!("{what}: no answer ({e:?})"),
                };
            }
        };
        for c in resp.headers().get_all(SET_COOKIE) {
            let c = c.to_str().unwrap();
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        Answer {
            status: resp.status(),
            body: resp.text().await.unwrap_or_default(),
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req, path).await
    }

    async fn post(&mut self, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, content_type)
            .body(body);
        self.send(req, path).await
    }

    async fn form(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.post(path, "application/x-www-form-urlencoded", body.into_bytes())
            .await
    }

    /// The form token of a page (and its cookie, kept).
    async fn token(&mut self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        field(&page.body, "csrf")
    }

    /// Step 1 of joining, so this browser is signed in as a new participant.
    async fn join(&mut self) {
        let csrf = self.token(&format!("/c/{ID}/join")).await;
        let joined = self
            .form(
                &format!("/c/{ID}/join"),
                &[
                    ("csrf", &csrf),
                    ("name", "Hostile Tester"),
                    ("tz", "UTC"),
                    ("day", "2027-07-04"),
                    ("every", "2h"),
                ],
            )
            .await;
        assert_eq!(joined.status, StatusCode::SEE_OTHER, "{}", joined.body);
        assert!(self.cookies.contains_key("picket_me"));
    }
}

fn field(html: &str, name: &str) -> String {
    html.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no field {name} in {html}"))
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crashing_cadence_is_refused_with_a_4xx_and_the_server_stays_up() {
    // Arrange
    let mut app = start().await;
    let mut browser = Browser::new(&app.base);
    let csrf = browser.token(&format!("/c/{ID}/join")).await;
    let cadence = crashing_cadence();

    // Act: step 1, step 2's page and step 3 with the cadence, as the report sent them.
    let step1 = browser
        .form(
            &format!("/c/{ID}/join"),
            &[
                ("csrf", &csrf),
                ("name", "Mallory"),
                ("tz", "UTC"),
                ("day", "2027-07-04"),
                ("every", &cadence),
            ],
        )
        .await;
    browser.join().await;
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("tz", "UTC"), ("day", "2027-07-04"), ("every", &cadence)])
        .finish();
    let step2 = browser.get(&format!("/c/{ID}/join/accounts?{query}")).await;
    let csrf = browser
        .token(&format!(
            "/c/{ID}/join/accounts?tz=UTC&day=2027-07-04&every=2h"
        ))
        .await;
    let connected = browser
        .form(
            "/connect/sandbox",
            &[("csrf", &csrf), ("name", "mallory"), ("back", "/me")],
        )
        .await;
    assert_eq!(connected.status, StatusCode::SEE_OTHER);
    let me = browser.get("/me").await;
    let account = me
        .body
        .split("name=\"account\" value=\"")
        .nth(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .unwrap_or_else(|| "1".into());
    let step3 = browser
        .form(
            &format!("/c/{ID}/join/confirm"),
            &[
                ("csrf", &csrf),
                ("tz", "UTC"),
                ("day", "2027-07-04"),
                ("every", &cadence),
                ("account", &account),
            ],
        )
        .await;

    // Assert
    for (what, answer) in [("step 1", &step1), ("step 2", &step2), ("step 3", &step3)] {
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {}",
            answer.body
        );
        assert!(
            answer.body.contains("too long a duration"),
            "{what}: {}",
            answer.body
        );
        assert!(
            answer.body.len() < 60_000,
            "{what}: the cadence is not echoed back"
        );
    }
    let health = browser.get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert!(app.exited().is_none(), "picket serve exited");
    app.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declaration_with_script_links_is_served_without_them() {
    // Arrange: a copy of the bundled campaign whose declaration links to scripts.
    let app = start_with(Some(
        "# We declare\n\n[Sign](JaVaScRiPt:alert(1)) [here](jav&#x09;ascript:alert(2)) \
         [data](data:text/html;base64,PHNjcmlwdD5hbGVydCgzKTwvc2NyaXB0Pg==) \
         <a href=\"javascript:alert(4)\" onclick=\"alert(5)\">raw</a> \
         [fine](https://example.org/declaration)\n",
    ))
    .await;
    let mut browser = Browser::new(&app.base);

    // Act
    let campaign = browser.get(&format!("/c/{ID}")).await;
    let declaration = browser.get(&format!("/c/{ID}/declaration")).await;

    // Assert
    for page in [&campaign, &declaration] {
        assert_eq!(page.status, StatusCode::OK);
        let lower = page.body.to_lowercase();
        for bad in ["onclick", "alert(4)", "alert(5)"] {
            assert!(!lower.contains(bad), "{bad} in {}", page.body);
        }
        // Every link, resolved as a browser on this page would, is a web or mail address.
        let here = url::Url::parse(&app.url(&format!("/c/{ID}"))).unwrap();
        for piece in page.body.split(" href=\"").skip(1) {
            let raw = piece.split('"').next().unwrap().replace("&amp;", "&");
            let url = here.join(&raw).unwrap();
            assert!(
                ["http", "https", "mailto"].contains(&url.scheme()),
                "{raw} in {}",
                page.body
            );
        }
        assert!(
            page.body
                .contains("href=\"https://example.org/declaration\"")
        );
    }
    app.stop();
}

/// Note a 5xx answer to `what`.
fn check(what: String, answer: &Answer, failures: &mut Vec<String>) {
    if answer.status.is_server_error() {
        failures.push(format!(
            "{what} -> {}: {}",
            answer.status,
            answer.body.chars().take(300).collect::<String>()
        ));
    }
}

/// Raw values of every hostile kind (bytes: some are not UTF-8).
fn value(rng: &mut StdRng) -> Vec<u8> {
    let fixed: &[&str] = &[
        "",
        " ",
        "0",
        "-1",
        "1e309",
        "NaN",
        "true",
        "null",
        "[]",
        "{}",
        "9223372036854775807",
        "-9223372036854775808",
        "99999999999999999999999999",
        "2027-07-04",
        "2027-07-05",
        "2027-02-30",
        "0000-00-00",
        "+262143-12-31",
        "-262144-01-01",
        "99999-01-01",
        "2027-07-04T00:00:00Z",
        "1h",
        "5m",
        "0m",
        "-5m",
        "24h",
        "25h",
        "366d",
        "367d",
        "9223372036854775807d",
        "99999999999999999999m",
        "1h1h1h1h1h1h1h1h1h1h",
        "UTC",
        "Europe/Berlin",
        "Mars/Olympus_Mons",
        "../../etc/passwd",
        "Pacific/Chatham",
        "<script>alert(1)</script>",
        "javascript:alert(1)",
        "' OR 1=1 --",
        "Zoë 😀 \u{202e}txet\u{200b}",
        "%00%ff%fe",
        "a@b.co",
        "not an address",
        "/c/social-media-strike/join/accounts?tz=UTC",
        "//evil.example/",
        "https://evil.example/",
        "social-media-strike",
        "on",
    ];
    match rng.random_range(0..10) {
        0..=4 => fixed[rng.random_range(0..fixed.len())].as_bytes().to_vec(),
        5 => (0..rng.random_range(1..40))
            .map(|_| rng.random_range(0u8..0x20))
            .collect(),
        6 => vec![0xff, 0xfe, b'a', 0xc3, 0x28, 0xed, 0xa0, 0x80],
        7 => "x".repeat(rng.random_range(100..20_000)).into_bytes(),
        8 => crashing_cadence().into_bytes(),
        _ => {
            let n = rng.random_range(1..8);
            "100000d".repeat(n).into_bytes()
        }
    }
}

/// `name=value&...` with raw (percent-encoded) bytes, names repeated at times.
fn form_body(rng: &mut StdRng, names: &[&str], csrf: Option<&str>) -> Vec<u8> {
    let enc = |b: &[u8]| {
        percent_encoding::percent_encode(b, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let mut parts = Vec::new();
    if let Some(t) = csrf {
        parts.push(format!("csrf={t}"));
    } else if rng.random_bool(0.3) {
        parts.push(format!("csrf={}", enc(&value(rng))));
    }
    for _ in 0..rng.random_range(0..8) {
        let name = if rng.random_bool(0.85) {
            names[rng.random_range(0..names.len())].to_string()
        } else {
            enc(&value(rng))
        };
        parts.push(format!("{name}={}", enc(&value(rng))));
    }
    let mut body = parts.join("&").into_bytes();
    if rng.random_bool(0.1) {
        // Raw bytes outside any encoding: invalid UTF-8 in the body itself.
        body.extend_from_slice(b"&name=\xff\xfe\x00");
    }
    if rng.random_bool(0.02) {
        body.extend(std::iter::repeat_n(b'a', 70_000));
    }
    body
}

/// A hostile value that fits the field: durations for a cadence, dates for a day, zones
/// for a zone (the values that reach arithmetic); any value otherwise.
fn value_for(rng: &mut StdRng, name: &str) -> Vec<u8> {
    let pick = |rng: &mut StdRng, list: &[&str]| list[rng.random_range(0..list.len())].to_string();
    let v = match (name, rng.random_range(0..10)) {
        ("every", 0..=3) => "100000d".repeat(rng.random_range(1..1_200)),
        ("every", 4) => crashing_cadence(),
        ("every", 5..=7) => pick(
            rng,
            &[
                "5m", "59m", "1h", "24h", "24h1m", "366d", "366d1m", "1m", "0h", "1h-1m", "1h30m",
            ],
        ),
        ("day", 0..=7) => pick(
            rng,
            &[
                "2027-07-05",
                "2027-07-06",
                "2027-7-4",
                "0001-01-01",
                "9999-12-31",
                "2027-02-29",
                "+2027-07-04",
            ],
        ),
        ("tz", 0..=7) => pick(
            rng,
            &[
                "Etc/GMT+12",
                "Etc/GMT-14",
                "Pacific/Kiritimati",
                "Asia/Calcutta",
                "utc",
                "EST5EDT",
                "Factory",
            ],
        ),
        _ => return value(rng),
    };
    v.into_bytes()
}

/// A body that is valid but for one or two fields: the hostile value reaches the parsing
/// and arithmetic behind the checks a random body fails first.
fn mutated_body(rng: &mut StdRng, base: &[(&str, String)], csrf: Option<&str>) -> Vec<u8> {
    let enc = |b: &[u8]| {
        percent_encoding::percent_encode(b, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let mut fields: Vec<(String, Vec<u8>)> = base
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    for _ in 0..rng.random_range(1..3) {
        let i = rng.random_range(0..fields.len());
        match rng.random_range(0..4) {
            // Replace, repeat (a duplicate key) or drop the field.
            0 | 1 => fields[i].1 = value_for(rng, &fields[i].0.clone()),
            2 => {
                let name = fields[i].0.clone();
                fields.push((name.clone(), value_for(rng, &name)));
            }
            _ => {
                fields.remove(i);
                if fields.is_empty() {
                    break;
                }
            }
        }
    }
    let mut parts: Vec<String> = csrf.map(|t| format!("csrf={t}")).into_iter().collect();
    parts.extend(fields.iter().map(|(k, v)| format!("{k}={}", enc(v))));
    parts.join("&").into_bytes()
}

/// A JSON-ish body for the signing API: right and wrong types, duplicate keys, deep
/// nesting, invalid UTF-8, huge numbers.
fn json_body(rng: &mut StdRng) -> Vec<u8> {
    let text =
        |rng: &mut StdRng| serde_json::to_string(&String::from_utf8_lossy(&value(rng))).unwrap();
    let any = |rng: &mut StdRng| -> String {
        match rng.random_range(0..8) {
            0 => "null".into(),
            1 => "true".into(),
            2 => "1e400".into(),
            3 => "-0".into(),
            4 => "[1,{\"a\":[]}]".into(),
            5 => "{\"name\":\"x\"}".into(),
            _ => text(rng),
        }
    };
    match rng.random_range(0..12) {
        0 => b"\xff{\"name\":\"x\"}".to_vec(),
        1 => "[".repeat(5_000).into_bytes(),
        2 => format!("{{\"name\":{},\"name\":{}}}", text(rng), text(rng)).into_bytes(),
        3 => any(rng).into_bytes(),
        4 => Vec::new(),
        _ => {
            let mut fields = Vec::new();
            for key in ["name", "email", "public", "ref", "extra"] {
                if rng.random_bool(0.7) {
                    let v = if rng.random_bool(0.5) {
                        text(rng)
                    } else {
                        any(rng)
                    };
                    fields.push(format!("{key:?}:{v}"));
                }
            }
            format!("{{{}}}", fields.join(",")).into_bytes()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_and_more_hostile_requests_get_no_5xx_and_the_server_stays_up() {
    // Arrange: a signed-in participant with a sandbox account, and the tokens of the
    // campaign page, the join form and the accounts step.
    let seed: u64 = std::env::var("PICKET_HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut app = start().await;
    let mut browser = Browser::new(&app.base);
    browser.join().await;
    let accounts_page = format!("/c/{ID}/join/accounts?tz=UTC&day=2027-07-04&every=2h");
    let mut csrf = browser.token(&accounts_page).await;
    let connected = browser
        .form(
            "/connect/sandbox",
            &[("csrf", &csrf), ("name", "hostile"), ("back", "/me")],
        )
        .await;
    assert_eq!(connected.status, StatusCode::SEE_OTHER);
    let page = browser.get(&accounts_page).await;
    let account = field(&page.body, "account");
    let choice = |every: &str| -> Vec<(&'static str, String)> {
        vec![
            ("tz", "UTC".into()),
            ("day", "2027-07-04".into()),
            ("every", every.into()),
        ]
    };
    let mut confirm = choice("2h");
    confirm.push(("account", account.clone()));
    let mut join = choice("3h");
    join.push(("name", "Near Valid".into()));
    // Routes with the valid body a mutation starts from.
    let valid_routes: Vec<(String, Vec<(&str, String)>)> = vec![
        (format!("/c/{ID}/join/confirm"), confirm),
        (format!("/c/{ID}/join"), join),
        (
            format!("/c/{ID}/sign"),
            vec![
                ("name", "Near Valid".into()),
                ("email", "".into()),
                ("consent", "on".into()),
                ("public", "on".into()),
            ],
        ),
        (
            "/me/withdraw".into(),
            vec![("campaign", ID.into()), ("account", account.clone())],
        ),
        (
            "/me/accounts/remove".into(),
            vec![("account", account.clone())],
        ),
    ];
    let started = std::time::Instant::now();

    // Each route with the field names its handler reads.
    let form_routes: &[(&str, &[&str])] = &[
        (
            "/c/social-media-strike/sign",
            &["name", "email", "public", "consent", "ref", "website"],
        ),
        (
            "/c/social-media-strike/join",
            &["name", "email", "tz", "day", "every"],
        ),
        (
            "/c/social-media-strike/join/confirm",
            &["tz", "day", "every", "account"],
        ),
        ("/c/no-such-campaign/sign", &["name", "email", "consent"]),
        ("/connect/sandbox", &["name", "back"]),
        ("/connect/telegram", &["name", "back"]),
        ("/me/withdraw", &["campaign", "account", "delete_posts"]),
        ("/me/accounts/remove", &["account", "delete_posts"]),
        ("/sandbox/api/v1/statuses", &["status", "slot"]),
    ];
    // Connect forms that would reach out: with a valid token only addresses refused
    // before any lookup, or loopback.
    let reaching: &[(&str, &str, &[&str])] = &[
        (
            "/connect/mastodon",
            "server",
            &["", "   ", "http://127.0.0.1:9", "127.0.0.1:9", "\u{1}\u{2}"],
        ),
        (
            "/connect/bluesky",
            "handle",
            &["", "nodot", "\u{7f}", "a\u{0}b"],
        ),
        (
            "/connect/nostr",
            "relays",
            &["", "http://127.0.0.1:9", "not a relay", "\u{1b}[31m"],
        ),
    ];
    let query_routes: &[(&str, &[&str])] = &[
        (
            "/c/social-media-strike/join/accounts",
            &["tz", "day", "every", "msg", "ok"],
        ),
        ("/c/social-media-strike/join", &["tz", "day", "every"]),
        ("/c/social-media-strike", &["ref", "error"]),
        (
            "/c/social-media-strike/signatures",
            &["page", "offset", "limit"],
        ),
        (
            "/connect/mastodon/callback",
            &["state", "code", "error", "error_description"],
        ),
        ("/api/v1/campaigns/social-media-strike/stats", &["x"]),
        ("/c/social-media-strike/card.png", &["day", "size"]),
        ("/c/social-media-strike/card.txt", &["day"]),
        ("/me", &["t", "msg"]),
    ];

    // Act
    let mut sent = 0usize;
    let mut failures = Vec::new();
    for i in 0..1_500 {
        if i % 100 == 0 {
            let health = browser.get("/healthz").await;
            assert_eq!(health.status, StatusCode::OK, "after {i} requests");
            csrf = browser.token(&accounts_page).await;
        }
        let with_token = rng.random_bool(0.6);
        let token = with_token.then_some(csrf.as_str());
        match rng.random_range(0..14) {
            10..=13 => {
                let (path, base) = &valid_routes[rng.random_range(0..valid_routes.len())];
                let body = mutated_body(&mut rng, base, token);
                let answer = browser
                    .post(path, "application/x-www-form-urlencoded", body.clone())
                    .await;
                check(
                    format!(
                        "POST {path} {:?}",
                        String::from_utf8_lossy(&body)
                            .chars()
                            .take(200)
                            .collect::<String>()
                    ),
                    &answer,
                    &mut failures,
                );
            }
            0..=4 => {
                let (path, names) = form_routes[rng.random_range(0..form_routes.len())];
                let body = form_body(&mut rng, names, token);
                let content_type = if rng.random_bool(0.9) {
                    "application/x-www-form-urlencoded"
                } else {
                    [
                        "text/plain",
                        "application/json",
                        "multipart/form-data",
                        "application/x-www-form-urlencoded; charset=latin1",
                    ][rng.random_range(0..4)]
                };
                let answer = browser.post(path, content_type, body.clone()).await;
                check(
                    format!(
                        "POST {path} {:?}",
                        String::from_utf8_lossy(&body)
                            .chars()
                            .take(200)
                            .collect::<String>()
                    ),
                    &answer,
                    &mut failures,
                );
            }
            5 => {
                let (path, key, safe) = reaching[rng.random_range(0..reaching.len())];
                let body = if with_token {
                    let v = safe[rng.random_range(0..safe.len())];
                    url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs([("csrf", csrf.as_str()), (key, v), ("back", "/me")])
                        .finish()
                        .into_bytes()
                } else {
                    form_body(
                        &mut rng,
                        &[key, "back", "bunker", "service", "app_password"],
                        None,
                    )
                };
                let answer = browser
                    .post(path, "application/x-www-form-urlencoded", body.clone())
                    .await;
                check(
                    format!("POST {path} {:?}", String::from_utf8_lossy(&body)),
                    &answer,
                    &mut failures,
                );
            }
            6 | 7 => {
                let body = json_body(&mut rng);
                let id = if rng.random_bool(0.9) { ID } else { "nope" };
                let content_type = if rng.random_bool(0.9) {
                    "application/json"
                } else {
                    "text/plain"
                };
                let path = format!("/api/v1/campaigns/{id}/signatures");
                let answer = browser.post(&path, content_type, body.clone()).await;
                check(
                    format!(
                        "POST {path} {:?}",
                        String::from_utf8_lossy(&body)
                            .chars()
                            .take(200)
                            .collect::<String>()
                    ),
                    &answer,
                    &mut failures,
                );
            }
            _ => {
                let (mut path, names) = query_routes[rng.random_range(0..query_routes.len())];
                let query = if rng.random_bool(0.5) {
                    path = if rng.random_bool(0.8) {
                        "/c/social-media-strike/join/accounts"
                    } else {
                        "/c/social-media-strike/join"
                    };
                    String::from_utf8(mutated_body(&mut rng, &choice("2h"), None))
                        .unwrap_or_default()
                } else {
                    String::from_utf8(
                        form_body(&mut rng, names, None)
                            .into_iter()
                            .take(20_000)
                            .collect(),
                    )
                    .unwrap_or_default()
                };
                let full = format!("{path}?{query}");
                let answer = browser.get(&full).await;
                check(
                    format!("GET {}", full.chars().take(300).collect::<String>()),
                    &answer,
                    &mut failures,
                );
                // A magic-link attempt must not end this browser's session.
                if !browser.cookies.contains_key("picket_me") {
                    browser.join().await;
                }
            }
        }
        sent += 1;
    }
    // Last, the routes that end the session, signing in again each time.
    for i in 0..60 {
        let token = browser.token(&accounts_page).await;
        let path = if i % 2 == 0 {
            "/me/logout"
        } else {
            "/me/delete"
        };
        let body = form_body(&mut rng, &["confirm", "delete_posts"], Some(&token));
        let answer = browser
            .post(path, "application/x-www-form-urlencoded", body.clone())
            .await;
        check(
            format!(
                "POST {path} {:?}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ),
            &answer,
            &mut failures,
        );
        sent += 1;
        if browser.get("/me").await.status != StatusCode::OK {
            browser.cookies.clear();
            browser.join().await;
        }
    }

    // Assert
    assert!(
        failures.is_empty(),
        "seed {seed}: {} server errors:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(sent >= 1_000);
    let health = browser.get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert!(app.exited().is_none(), "picket serve exited");
    let log = app.installation().log();
    assert!(!log.contains("panicked"), "a handler panicked:\n{log}");
    eprintln!("{sent} hostile requests in {:?}, no 5xx", started.elapsed());
    app.stop();
}
