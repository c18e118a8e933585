//! The one way a test asks for a real server (PostgreSQL, the Mastodon imitation, a Nostr
//! relay, the Bluesky PDS, chromedriver, the SMTP sink): [`require_server`] with the
//! variable `scripts/servers/*.sh` prints. Without it the test prints "skipped" and
//! passes, except under `PICKET_REQUIRE_SERVERS=1` (set by `scripts/test`, so CI), where
//! a missing server fails the test instead.

/// The script that starts the server each variable names.
const SCRIPTS: &[(&str, &str)] = &[
    (
        "PICKET_TEST_POSTGRES_URL",
        "scripts/servers/postgres.sh start",
    ),
    (
        "PICKET_TEST_MASTODON_URL",
        "scripts/servers/mastodon-mock.sh",
    ),
    ("PICKET_TEST_NOSTR_RELAY", "scripts/servers/nostr-relay.sh"),
    ("PICKET_TEST_PDS_URL", "scripts/servers/atproto-pds.sh"),
    ("PICKET_TEST_CHROMEDRIVER", "scripts/servers/chromium.sh"),
    ("PICKET_TEST_SMTP", "scripts/servers/smtp-sink.sh"),
    ("PICKET_TEST_SMTP_MAILDIR", "scripts/servers/smtp-sink.sh"),
];

/// The value of `var` (an address, a URL; without a trailing `/`), or `None` after
/// printing "skipped <test>" when it is unset or empty. Under `PICKET_REQUIRE_SERVERS=1`
/// a missing server fails the test.
///
/// ```ignore
/// let Some(relay) = require_server("PICKET_TEST_NOSTR_RELAY") else { return };
/// ```
pub fn require_server(var: &str) -> Option<String> {
    if let Some(value) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
        return Some(value.trim_end_matches('/').to_string());
    }
    let script = SCRIPTS
        .iter()
        .find(|(v, _)| *v == var)
        .map_or("its script in scripts/servers/", |(_, s)| s);
    // The test's name: tokio's test macro runs the body on the test's own thread.
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    assert!(
        !servers_required(),
        "{test}: {var} is not set but PICKET_REQUIRE_SERVERS=1: start {script} and export the line it prints"
    );
    println!("skipped {test}: {var} is not set (start {script} and export the line it prints)");
    None
}

/// `scripts/test` (and so CI) sets `PICKET_REQUIRE_SERVERS=1`.
fn servers_required() -> bool {
    std::env::var("PICKET_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}
