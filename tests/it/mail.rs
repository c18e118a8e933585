//! E-mail: signature confirmation through the web and the API, and the magic-link mail,
//! against a real SMTP server (aiosmtpd, `scripts/servers/smtp-sink.sh`) that stores what it
//! receives in a Maildir, read back here. Tests that need it print "skipped" without
//! `PICKET_TEST_SMTP`, except under `PICKET_REQUIRE_SERVERS=1`. The tests of a mail server
//! that is down, and of a host without SMTP, need nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use picket::clock::ManualClock;
use reqwest::StatusCode;

use crate::support::{
    BUNDLED as ID, HeldPort, Options, TestApp, eventually, posts_at_start, require_server,
    window_campaign,
};

/// The SMTP sink's address and Maildir, or `None` (the test skipped) without them.
pub(crate) fn sink() -> Option<(String, u16, PathBuf)> {
    let addr = require_server("PICKET_TEST_SMTP")?;
    let maildir = require_server("PICKET_TEST_SMTP_MAILDIR")?;
    let (host, port) = addr
        .rsplit_once(':')
        .expect("PICKET_TEST_SMTP is host:port");
    Some((host.to_string(), port.parse().unwrap(), maildir.into()))
}

/// Settings for plain SMTP on the loopback, as the sink speaks it.
pub(crate) fn smtp(host: &str, port: u16) -> String {
    format!(
        "[smtp]\nhost = \"{host}\"\nport = {port}\ntls = \"none\"\nfrom = \"Strike HQ <picket@example.org>\"\n"
    )
}

/// An address no other test (or earlier run) uses, so its mails can be told apart in the
/// shared Maildir.
pub(crate) fn fresh_address(who: &str) -> String {
    format!("{who}-{}@example.org", picket::web::guard::new_token())
}

/// A port nothing listens on while it is kept: a mail server that is down.
fn closed_port() -> HeldPort {
    HeldPort::new()
}

/// The mails the sink received for `to`, oldest first, once there are `at_least`.
///
/// A mail picket sends while answering a request is in the Maildir when the answer
/// arrives (picket waits for the sink's "250", which aiosmtpd gives after storing the
/// mail), so a count taken after the answers is final for them; the wait is for mails
/// sent in the background (a new link asked for by mail).
pub(crate) async fn mails_to(maildir: &Path, to: &str, at_least: usize) -> Vec<Vec<u8>> {
    // aiosmtpd's Mailbox records the envelope recipient in its own header.
    let rcpt = format!("X-RcptTo: {to}");
    let mut found = eventually(
        Duration::from_secs(30),
        &format!("{at_least} mail(s) to {to}"),
        async || {
            let mut found = Vec::new();
            for entry in std::fs::read_dir(maildir.join("new")).unwrap() {
                let path = entry.unwrap().path();
                let (Ok(bytes), Ok(meta)) = (std::fs::read(&path), std::fs::metadata(&path)) else {
                    continue;
                };
                if String::from_utf8_lossy(&bytes).contains(&rcpt) {
                    found.push((meta.modified().unwrap(), path, bytes));
                }
            }
            match found.len() {
                n if n >= at_least => Ok(found),
                n => Err(format!("{n} so far")),
            }
        },
    )
    .await;
    found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    found.into_iter().map(|(_, _, b)| b).collect()
}

/// Subject and decoded text body of a raw mail.
pub(crate) fn read_mail(raw: &[u8]) -> (String, String) {
    let m = mail_parser::MessageParser::default().parse(raw).unwrap();
    (
        m.subject().unwrap_or_default().to_string(),
        m.body_text(0).unwrap_or_default().to_string(),
    )
}

/// The confirmation link in a mail's body, as a path.
fn confirm_path(body: &str) -> String {
    let start = body
        .find("https://picket.test/")
        .expect("a link in the mail");
    let link = body[start..].split_whitespace().next().unwrap();
    link.trim_start_matches("https://picket.test").to_string()
}

/// The bundled campaign on a clock the test moves, mailing through `smtp` (settings) if
/// given.
async fn mail_app(smtp: Option<String>) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let mut options = Options::default().clock(clock.clone());
    if let Some(smtp) = smtp {
        options = options.config(&smtp);
    }
    (TestApp::spawn(options).await, clock)
}

/// Status and page; tera's `&#x2F;` for '/' read back as browsers do.
async fn get(app: &TestApp, path: &str) -> (StatusCode, String) {
    let r = app.get(path).await;
    (r.status(), r.text().await.unwrap().replace("&#x2F;", "/"))
}

/// Sign through the HTML form (with its CSRF cookie and token); status and page.
async fn sign_form(app: &TestApp, name: &str, email: &str) -> (StatusCode, String) {
    let r = app
        .sign_form(&[("public", "on"), ("name", name), ("email", email)])
        .await;
    (r.status(), r.text().await.unwrap().replace("&#x2F;", "/"))
}

async fn sign_api(app: &TestApp, name: &str, email: &str) -> (StatusCode, serde_json::Value) {
    let r = app
        .api_sign(serde_json::json!({"name": name, "email": email, "public": true}))
        .await;
    (r.status(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_signature_with_an_address_counts_only_once_its_mailed_link_is_followed() {
    let Some((host, port, maildir)) = sink() else {
        return;
    };
    // Arrange
    let (app, _clock) = mail_app(Some(smtp(&host, port))).await;
    let to = fresh_address("ada");

    // Act
    let (signed_status, signed_page) = sign_form(&app, "Ada Lovelace", &to).await;
    let before = app.signatures(ID).await;
    let (listed_before_status, listed_before) = get(&app, &format!("/c/{ID}/signatures")).await;
    let mails = mails_to(&maildir, &to, 1).await;
    let (subject, body) = read_mail(&mails[0]);
    let link = confirm_path(&body);
    let (first_status, first_page) = get(&app, &link).await;
    let after_first = app.signatures(ID).await;
    let (again_status, again_page) = get(&app, &link).await;
    let after_again = app.signatures(ID).await;
    let (_, listed_after) = get(&app, &format!("/c/{ID}/signatures")).await;

    // Assert
    assert_eq!(signed_status, StatusCode::OK);
    assert!(
        signed_page.contains("we sent you an e-mail"),
        "{signed_page}"
    );
    assert!(
        !signed_page.contains("/i/"),
        "no invitation link before confirming"
    );
    assert_eq!(before, 0, "not counted before the link is followed");
    assert_eq!(listed_before_status, StatusCode::OK);
    assert!(
        !listed_before.contains("Ada Lovelace"),
        "not listed before either"
    );
    assert_eq!(mails.len(), 1);
    assert!(subject.contains("confirm"), "{subject}");
    assert!(body.starts_with("Hello Ada Lovelace,"), "{body}");
    assert!(link.starts_with(&format!("/c/{ID}/confirm/")), "{link}");
    assert_eq!(first_status, StatusCode::OK);
    assert!(first_page.contains("confirmed and counted"), "{first_page}");
    assert!(
        first_page.contains("https://picket.test/i/"),
        "the invitation link"
    );
    assert_eq!(after_first, 1);
    assert_eq!(again_status, StatusCode::OK, "confirming twice is harmless");
    assert!(again_page.contains("it already was"), "{again_page}");
    assert_eq!(after_again, 1, "and counts once");
    assert!(listed_after.contains("Ada Lovelace"));
}

#[tokio::test]
async fn signing_again_resends_the_link_but_not_more_than_once_in_five_minutes() {
    let Some((host, port, maildir)) = sink() else {
        return;
    };
    // Arrange
    let (app, clock) = mail_app(Some(smtp(&host, port))).await;
    let to = fresh_address("bob");

    // Act
    let (first_status, first) = sign_api(&app, "Bob", &to).await;
    let (soon_status, soon) = sign_api(&app, "Bob", &to).await;
    let after_soon = mails_to(&maildir, &to, 1).await.len();
    clock.advance(chrono::Duration::minutes(6));
    let (later_status, later) = sign_api(&app, "Bob", &to).await;
    let mails = mails_to(&maildir, &to, 2).await;
    let old_link = confirm_path(&read_mail(&mails[0]).1);
    let new_link = confirm_path(&read_mail(&mails[1]).1);
    let (old_status, old_page) = get(&app, &old_link).await;
    let (new_status, _) = get(&app, &new_link).await;

    // Assert
    assert_eq!(first_status, StatusCode::CREATED);
    assert_eq!(first["counted"], false);
    assert_eq!(first["confirmation"], "mail_sent");
    assert_eq!(soon_status, StatusCode::OK);
    assert_eq!(soon["duplicate"], true);
    assert_eq!(soon["confirmation"], "mail_recently_sent");
    assert_eq!(after_soon, 1, "no second mail within five minutes");
    assert_eq!(later_status, StatusCode::OK);
    assert_eq!(later["confirmation"], "mail_sent");
    assert_eq!(mails.len(), 2);
    assert_ne!(old_link, new_link);
    assert_eq!(
        old_status,
        StatusCode::NOT_FOUND,
        "the newest link replaces the old one"
    );
    assert!(old_page.contains("latest mail"), "{old_page}");
    assert_eq!(new_status, StatusCode::OK);
    assert_eq!(app.signatures(ID).await, 1);
}

#[tokio::test]
async fn a_name_with_markup_reaches_the_mail_as_plain_text_only() {
    let Some((host, port, maildir)) = sink() else {
        return;
    };
    // Arrange
    let (app, _clock) = mail_app(Some(smtp(&host, port))).await;
    let to = fresh_address("mallory");
    let name = "<a href=\"https://evil.example\">Mallory</a> & <script>x()</script>";

    // Act
    let (status, _) = sign_api(&app, name, &to).await;
    let mails = mails_to(&maildir, &to, 1).await;
    let raw = String::from_utf8_lossy(&mails[0]).to_string();
    let (_, body) = read_mail(&mails[0]);

    // Assert: one text/plain part, nothing a mail reader would render as HTML.
    assert_eq!(status, StatusCode::CREATED);
    assert!(raw.contains("Content-Type: text/plain"), "{raw}");
    assert!(!raw.to_ascii_lowercase().contains("text/html"), "{raw}");
    assert!(!raw.contains("multipart"), "{raw}");
    assert!(body.contains(&format!("Hello {name},")), "{body}");
}

#[tokio::test]
async fn the_magic_link_mail_carries_the_link() {
    let Some((host, port, maildir)) = sink() else {
        return;
    };
    // Arrange
    let settings: picket::config::Settings = toml::from_str(&smtp(&host, port)).unwrap();
    let target = settings.smtp.unwrap().resolve().unwrap();
    let mailer = picket::mail::SmtpMailer::new(&target).unwrap();
    let pages = picket::render::pages::Pages::load(None).unwrap();
    let to = fresh_address("cy");
    let url = "https://picket.test/me?token=0123456789abcdef0123456789abcdef0123456789abcdef";

    // Act
    picket::mail::magic_link(
        &mailer,
        &pages,
        &to,
        "Cy",
        url,
        "Monday 5 July 2027, 10:00 UTC",
    )
    .await
    .unwrap();
    let mails = mails_to(&maildir, &to, 1).await;
    let (subject, body) = read_mail(&mails[0]);

    // Assert
    assert_eq!(mails.len(), 1);
    assert_eq!(subject, "Your picket link");
    assert!(body.starts_with("Hello Cy,"), "{body}");
    assert!(
        body.split_whitespace().any(|w| w == url),
        "the link, whole: {body}"
    );
    let raw = String::from_utf8_lossy(&mails[0]).to_string();
    assert!(
        raw.contains("From: \"Strike HQ\" <picket@example.org>")
            || raw.contains("From: Strike HQ <picket@example.org>"),
        "{raw}"
    );
}

#[tokio::test]
async fn when_the_mail_server_is_down_the_signature_is_kept_and_the_signer_told() {
    // Arrange
    let down = closed_port();
    let (app, _clock) = mail_app(Some(smtp("127.0.0.1", down.port()))).await;
    let to = fresh_address("dee");

    // Act
    let (form_status, form_page) = sign_form(&app, "Dee", &to).await;
    let (retry_status, retry) = sign_api(&app, "Dee", &to).await;
    let counted = app.signatures(ID).await;

    // Assert
    assert_eq!(form_status, StatusCode::OK);
    assert!(form_page.contains("could not be sent"), "{form_page}");
    assert!(
        form_page.contains("sign again with the same address"),
        "{form_page}"
    );
    assert_eq!(
        retry_status,
        StatusCode::OK,
        "a repeat: the first one was kept"
    );
    assert_eq!(retry["duplicate"], true);
    assert_eq!(
        retry["confirmation"], "mail_failed",
        "retried at once (a failed mail does not start the five minutes), failed again"
    );
    assert_eq!(retry["counted"], false);
    assert_eq!(counted, 0);
}

#[tokio::test]
async fn without_smtp_a_signature_with_an_address_counts_at_once() {
    // Arrange
    let (app, _clock) = mail_app(None).await;

    // Act
    let (status, answer) = sign_api(&app, "Eve", &fresh_address("eve")).await;
    let (page_status, page) = sign_form(&app, "Fay", &fresh_address("fay")).await;

    // Assert
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(answer["counted"], true);
    assert_eq!(answer["confirmation"], "counted");
    assert_eq!(page_status, StatusCode::OK);
    assert!(page.contains("is counted"), "{page}");
    assert!(page.contains("https://picket.test/i/"), "{page}");
    assert_eq!(app.signatures(ID).await, 2);
}

#[tokio::test]
async fn an_unknown_or_malformed_confirmation_link_is_a_404_page() {
    // Arrange
    let (app, _clock) = mail_app(None).await;
    let unknown = format!("/c/{ID}/confirm/{}", picket::web::guard::new_token());

    // Act
    let (unknown_status, unknown_page) = get(&app, &unknown).await;
    let (junk_status, _) = get(&app, &format!("/c/{ID}/confirm/%3Cscript%3E")).await;
    let (campaign_status, _) = get(&app, "/c/nope/confirm/abc").await;

    // Assert
    assert_eq!(unknown_status, StatusCode::NOT_FOUND);
    assert!(unknown_page.contains("not known here"), "{unknown_page}");
    assert_eq!(junk_status, StatusCode::NOT_FOUND);
    assert_eq!(campaign_status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn neither_the_address_nor_a_confirmation_token_reaches_the_log() {
    // Arrange: the real binary, its log at debug level, a mail server that is down.
    let down = closed_port();
    let start = Utc::now() + chrono::Duration::days(30);
    let app = TestApp::spawn(
        Options::default()
            .without_bundled()
            .campaign(
                "mailtest",
                &window_campaign(
                    "mailtest",
                    start,
                    start + chrono::Duration::hours(1),
                    &posts_at_start(1, "30m"),
                ),
            )
            .config(&format!(
                "[smtp]\nurl = \"smtp://127.0.0.1:{}?tls=none\"\nfrom = \"picket@example.org\"\n",
                down.port()
            ))
            .key([7; 32])
            .process()
            .log_level("debug"),
    )
    .await;
    let to = fresh_address("gus");

    // Act
    let answer: serde_json::Value = app
        .post_json(
            "/api/v1/campaigns/mailtest/signatures",
            &serde_json::json!({"name": "Gus", "email": to}),
        )
        .await
        .json()
        .await
        .unwrap();
    let token = picket::web::guard::new_token();
    let unknown = app
        .get(&format!("/c/mailtest/confirm/{token}"))
        .await
        .status();
    let log = app.stop().log;

    // Assert
    assert_eq!(answer["confirmation"], "mail_failed", "{answer}");
    assert_eq!(unknown, StatusCode::NOT_FOUND);
    assert!(
        log.contains("/confirm/…"),
        "requests are logged at debug:\n{log}"
    );
    assert!(
        !log.contains(&token),
        "a confirmation token is in the log:\n{log}"
    );
    assert!(log.contains("confirmation mail could not be sent"), "{log}");
    let local = to.split('@').next().unwrap();
    assert!(!log.contains(local), "the address is in the log:\n{log}");
}

/// A site that mails through the sink, with `per_hour` mails per address, on a clock the
/// test moves.
async fn budgeted_site(host: &str, port: u16, per_hour: u32) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let site = TestApp::spawn(
        Options::joinable()
            .clock(clock.clone())
            .config(&smtp(host, port))
            .config(&format!(
                "[sessions]\nmails_per_address_per_hour = {per_hour}"
            )),
    )
    .await;
    (site, clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_cannon_aimed_at_one_address_gets_only_its_hourly_budget_and_the_same_answers() {
    let Some((host, port, maildir)) = sink() else {
        return;
    };
    // Arrange: someone joined with the victim's address.
    let (site, clock) = budgeted_site(&host, port, 2).await;
    let victim = fresh_address("victim");
    let browser = site.visitor();
    let step2 = browser
        .join_with_sandbox(ID, &[("tz", "UTC"), ("email", &victim)])
        .await;

    // Act: confirm four times, then sign with the same address through the API.
    let mut pages = Vec::new();
    for _ in 0..4 {
        pages.push(browser.confirm(ID, &step2).await);
    }
    let signed: serde_json::Value = site
        .api_sign(serde_json::json!({"name": "Vic", "email": victim.to_uppercase()}))
        .await
        .json()
        .await
        .unwrap();
    let within_the_hour = mails_to(&maildir, &victim, 2).await;
    clock.advance(chrono::Duration::minutes(61));
    let next_hour = browser.confirm(ID, &step2).await;
    let after = mails_to(&maildir, &victim, 3).await;

    // Assert: two mails, every answer as if each had been sent.
    assert_eq!(within_the_hour.len(), 2, "the budget of the hour");
    for page in &pages {
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        assert!(
            page.html.contains("We also sent it to you by e-mail"),
            "{}",
            page.html
        );
    }
    assert_eq!(signed["confirmation"], "mail_sent", "{signed}");
    assert!(next_hour.html.contains("We also sent it to you by e-mail"));
    assert_eq!(after.len(), 3, "a new hour, a new budget");
    let (_, body) = read_mail(after.last().unwrap());
    assert!(
        body.contains(&next_hour.magic_path(&site.base)),
        "the newest link: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_link_can_be_asked_for_by_mail_with_the_same_answer_for_any_address() {
    let Some((host, port, maildir)) = sink() else {
        return;
    };
    // Arrange: Ada joined with her address; her link was mailed.
    let (site, _clock) = budgeted_site(&host, port, 5).await;
    let address = fresh_address("ada");
    let ada = site.visitor();
    let old_link = ada.join_as("Ada", &[("email", &address)]).await;
    assert_eq!(mails_to(&maildir, &address, 1).await.len(), 1);

    // Act: on another device, with no session, she asks for a new link; so does someone
    // typing an address nobody joined with.
    let stranger = site.visitor();
    let form = stranger.get("/me/new-link").await;
    let asked = stranger
        .post(
            "/me/new-link",
            &[
                ("csrf", &form.field("csrf")),
                ("email", &address.to_uppercase()),
            ],
        )
        .await;
    let unknown = stranger
        .post(
            "/me/new-link",
            &[
                ("csrf", &form.field("csrf")),
                ("email", &fresh_address("nobody")),
            ],
        )
        .await;
    let not_an_address = stranger
        .post(
            "/me/new-link",
            &[("csrf", &form.field("csrf")), ("email", "ada at home")],
        )
        .await;
    let forged = stranger
        .post("/me/new-link", &[("csrf", "x"), ("email", &address)])
        .await;
    let mails = mails_to(&maildir, &address, 2).await;

    // Assert
    assert_eq!(form.status, StatusCode::OK);
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.html);
    assert!(asked.html.contains("id=\"asked\""), "{}", asked.html);
    assert_eq!(unknown.status, asked.status);
    assert_eq!(
        unknown.html, asked.html,
        "no difference for an unknown address"
    );
    assert_eq!(not_an_address.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(mails.len(), 2, "one at joining, one asked for");
    let (_, body) = read_mail(&mails[1]);
    let start = body.find(&format!("{}/me?t=", site.base)).unwrap();
    let new_link = body[start..].split_whitespace().next().unwrap();
    let new_path = new_link.trim_start_matches(&site.base).to_string();
    assert_ne!(new_path, old_link);
    let elsewhere = site.visitor();
    assert_eq!(elsewhere.get(&new_path).await.status, StatusCode::SEE_OTHER);
    assert_eq!(elsewhere.me().await.as_deref(), Some("Ada"));
    assert_eq!(
        site.visitor().get(&old_link).await.status,
        StatusCode::NOT_FOUND,
        "the mailed link replaces the old one"
    );
}
