//! Tap-to-post (issue 10): accounts picket reminds instead of posting with. A participant
//! in Pacific/Auckland with X, Facebook and Instagram accounts gets, at their own local
//! midnight, one mail (through the real SMTP sink) with an X compose link whose text is the
//! rendered notice, the Facebook text to copy and an Instagram card; the same on their
//! page; and no second mail after a restart. "I posted it" from the mail's link and, in
//! Chromium, from the page; the calendar's alarms parsed back; the command line's
//! `account add x --handle`, `join --email` and `status --format json`.
//!
//! The strike day is chosen so that Auckland's midnight is seconds after the test starts,
//! on the app's own clock (a `ManualClock` the test moves), so "not before the minute" is
//! shown without waiting for a real midnight.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use picket::clock::{Clock, ManualClock};
use picket::store::{OutboxRow, OutboxState, ParticipantId};
use reqwest::StatusCode;

use crate::browser::with_browsers;
use crate::mail::{fresh_address, read_mail, sink, smtp};
use crate::support::{Options, TestApp, Visitor, World, eventually, require_server};

const ID: &str = "tap-strike";
const DAY: &str = "2027-07-04";
const NOTICE: &str = "I'm on #{{ hashtag }} strike today ✊ no posting here & nowhere else. Why, and how to join: {{ invite_link }}";

fn day() -> NaiveDate {
    DAY.parse().unwrap()
}

/// Midnight of the strike day in Auckland (NZST, UTC+12 in July).
fn auckland_midnight() -> DateTime<Utc> {
    chrono_tz::Pacific::Auckland
        .from_local_datetime(&day().and_hms_opt(0, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// One strike day in each participant's own zone, one notice at its start.
fn campaign() -> String {
    format!(
        r#"id = "{ID}"
title = "Tap strike"
hashtag = "TapStrike"
networks = ["x", "facebook", "instagram"]

[strike]
timezone = "participant"
days = ["{DAY}"]
min_days = 1

[[posts]]
name = "notice"
when = "start"
template = "notice"
window = "1h"

[templates]
notice = ["{NOTICE}"]
"#
    )
}

/// The rows of a participant's tap notices, once every one of them is `state`.
async fn rows_in(
    app: &TestApp,
    who: ParticipantId,
    n: usize,
    state: OutboxState,
) -> Vec<OutboxRow> {
    eventually(
        Duration::from_secs(30),
        &format!("{n} notices {state}"),
        async || {
            let rows = app.store.outbox_for(who, Some(ID)).await.unwrap();
            let states: Vec<_> = rows.iter().map(|r| r.state).collect();
            if rows.len() == n && states.iter().all(|s| *s == state) {
                Ok(rows)
            } else {
                Err(format!("{states:?}"))
            }
        },
    )
    .await
}

/// Join `ID` in Auckland through the web pages (signed in as the new participant) with
/// tap-to-post accounts (network, handle); returns who joined and their magic link.
async fn join_tapping(
    app: &TestApp,
    v: &Visitor,
    email: &str,
    accounts: &[(&str, &str)],
) -> (ParticipantId, String) {
    let step2 = v
        .start_joining(
            ID,
            &[
                ("name", "Aroha"),
                ("email", email),
                ("tz", "Pacific/Auckland"),
                ("day", DAY),
            ],
        )
        .await;
    let mut back = step2.field("back");
    for (network, handle) in accounts {
        let added = v
            .post(
                "/connect/tap",
                &[
                    ("csrf", &step2.field("csrf")),
                    ("back", &step2.field("back")),
                    ("network", network),
                    ("handle", handle),
                ],
            )
            .await;
        assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.html);
        back = added.location.unwrap();
    }
    let page = v.get(&back).await;
    assert!(
        page.html.contains("picket reminds you at each slot"),
        "{}",
        page.html
    );
    let joined = v.confirm(ID, &page).await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.html);
    let found = app
        .store
        .participants_by_email(&picket::store::canonical_email(email), 1)
        .await
        .unwrap();
    (found[0].id, joined.magic_path(&app.base))
}

/// The reminder mails the sink holds for `to`.
fn reminders_in(maildir: &std::path::Path, to: &str) -> Vec<(String, String)> {
    let rcpt = format!("X-RcptTo: {to}");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(maildir.join("new")).unwrap() {
        let Ok(bytes) = std::fs::read(entry.unwrap().path()) else {
            continue;
        };
        if String::from_utf8_lossy(&bytes).contains(&rcpt) {
            let (subject, body) = read_mail(&bytes);
            if subject.starts_with("Time to post") {
                out.push((subject, body));
            }
        }
    }
    out
}

/// The line after `label` in a mail body, trimmed.
fn line_after<'a>(body: &'a str, label: &str) -> &'a str {
    let rest = &body[body
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {body}"))
        + label.len()..];
    rest.trim_start().lines().next().unwrap().trim()
}

/// The `text` parameter of a compose link, decoded as the network's page reads it.
fn text_param(link: &str) -> String {
    url::Url::parse(link)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "text")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no text in {link}"))
}

#[tokio::test]
async fn a_striker_in_auckland_gets_one_mail_at_local_midnight_with_the_links_of_their_page() {
    let Some((host, port, maildir)) = sink() else {
        return;
    };
    // Arrange: the app's clock a minute before Auckland's midnight on strike day.
    let midnight = auckland_midnight();
    let clock = Arc::new(ManualClock::new(midnight - chrono::Duration::seconds(60)));
    let world = World::new(&campaign(), clock.clone()).await;
    let options = Options::default()
        .over(&world)
        .clock(clock.clone())
        .config(&smtp(&host, port))
        .own_address();
    let app = TestApp::spawn(options.clone()).await;
    let v = app.visitor();
    let to = fresh_address("aroha");
    let (who, _) = join_tapping(
        &app,
        &v,
        &to,
        &[
            ("x", "@aroha"),
            ("facebook", "aroha.k"),
            ("instagram", "@aroha.k"),
        ],
    )
    .await;
    let accounts = app.store.list_accounts(who).await.unwrap();
    rows_in(&app, who, 3, OutboxState::Pending).await;

    // Act 1: five seconds before the minute. Real time passes on purpose: the dispatcher
    // and the reminder mailer look every second, and nothing may come yet.
    clock.set(midnight - chrono::Duration::seconds(5));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let early = reminders_in(&maildir, &to);
    let still = app.store.outbox_for(who, Some(ID)).await.unwrap();

    // Act 2: the minute comes.
    clock.set(midnight);
    let rows = rows_in(&app, who, 3, OutboxState::Reminded).await;
    let mails = eventually(Duration::from_secs(30), "the reminder mail", async || {
        let m = reminders_in(&maildir, &to);
        if m.is_empty() { Err("none yet") } else { Ok(m) }
    })
    .await;
    let me = v.get("/me").await;

    // Assert: nothing before the minute, the notices rendered at it.
    assert!(early.is_empty(), "a reminder before the minute: {early:?}");
    assert!(
        still.iter().all(|r| r.state == OutboxState::Pending),
        "{still:?}"
    );
    assert!(
        rows.iter().all(|r| r.reminded_at == Some(midnight)),
        "{rows:?}"
    );
    let text_of = |handle: &str| {
        let account = accounts.iter().find(|a| a.handle == handle).unwrap();
        rows.iter()
            .find(|r| r.account_id == account.id)
            .and_then(|r| r.text.clone())
            .unwrap()
    };
    let (x_text, fb_text) = (text_of("@aroha"), text_of("aroha.k"));
    assert!(
        x_text.contains("#TapStrike") && x_text.contains("/i/"),
        "{x_text}"
    );
    // One mail, with the X link whose decoded text is the notice, the Facebook text to
    // copy, and the Instagram card.
    assert_eq!(mails.len(), 1, "{mails:?}");
    let (subject, body) = &mails[0];
    assert!(subject.contains("Tap strike"), "{subject}");
    let x_link = line_after(body, "Open this link, check the text and post it:");
    assert!(
        x_link.starts_with("https://x.com/intent/tweet?text="),
        "{x_link}"
    );
    assert_eq!(text_param(x_link), x_text);
    assert!(
        body.contains("Copy this text and post it on Facebook"),
        "{body}"
    );
    assert!(body.contains(&fb_text), "{body}");
    let card = format!("/c/{ID}/card.png?day={DAY}&size=square");
    let story = format!("/c/{ID}/card.png?day={DAY}&size=story");
    assert!(body.contains(&card) && body.contains(&story), "{body}");
    assert!(body.contains(&format!("{}/me", app.base)), "{body}");
    // The same on the participant's page, due notices first.
    assert_eq!(me.status, StatusCode::OK);
    let due = me.html.find("id=\"due\"").expect("a due-now section");
    assert!(due < me.html.find("class=\"card pledge\"").unwrap());
    assert!(
        me.html.contains(&format!("href=\"{x_link}\"")),
        "{}",
        me.html
    );
    assert!(me.html.contains(&as_shown(&fb_text)), "{}", me.html);
    assert!(me.html.contains(&card), "{}", me.html);

    // Act 3: the mail's "I posted it" link. Opening it counts nothing (mail scanners
    // follow links); its button does.
    let posted_link = line_after(body, "Posted it? Tell picket, so it counts:");
    let path = posted_link.trim_start_matches(&app.base);
    let stranger = app.visitor();
    let opened = stranger.get(path).await;
    let after_get = app.store.outbox_for(who, Some(ID)).await.unwrap();
    let foreign = stranger
        .post(
            "/me/posted",
            &[
                ("csrf", &opened.field("csrf")),
                ("token", &opened.field("token")),
                ("url", "https://evil.example/aroha/status/1"),
            ],
        )
        .await;
    let counted = stranger
        .post(
            "/me/posted",
            &[
                ("csrf", &opened.field("csrf")),
                ("token", &opened.field("token")),
                ("url", "https://x.com/aroha/status/1"),
            ],
        )
        .await;
    let stats = eventually(
        Duration::from_secs(10),
        "posted by hand counted",
        async || {
            let s = app.stats(ID).await;
            if s["posts"]["posted_by_hand"] == 1 {
                Ok(s)
            } else {
                Err(s.to_string())
            }
        },
    )
    .await;

    // Assert
    assert_eq!(opened.status, StatusCode::OK, "{}", opened.html);
    assert!(opened.html.contains("I posted it"), "{}", opened.html);
    assert!(after_get.iter().all(|r| r.state == OutboxState::Reminded));
    assert_eq!(
        foreign.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        foreign.html
    );
    assert!(foreign.html.contains("not on X"), "{}", foreign.html);
    assert_eq!(counted.status, StatusCode::OK, "{}", counted.html);
    assert!(counted.html.contains("posted by hand"), "{}", counted.html);
    assert!(
        counted
            .html
            .contains("href=\"https://x.com/aroha/status/1\""),
        "{}",
        counted.html
    );
    assert_eq!(stats["posts"]["reminded"], 2, "{stats}");
    assert_eq!(stats["posts"]["published"], 0, "{stats}");

    // Act 4: picket restarts on the same database within the slot's window.
    drop(app);
    clock.set(midnight + chrono::Duration::seconds(30));
    let again = TestApp::spawn(options).await;
    // Real time passes on purpose: a second mail would be sent within a round or two.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let due = again
        .store
        .reminders_due(clock.now(), chrono::Duration::seconds(60), 10)
        .await
        .unwrap();

    // Assert: still the one mail.
    assert_eq!(
        reminders_in(&maildir, &to).len(),
        1,
        "a second mail for the slot"
    );
    assert!(due.is_empty(), "{due:?}");
}

/// `s` as a page holds it once the visitor decoded what tera writes for '/', '&', '='.
fn as_shown(s: &str) -> String {
    s.replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

#[tokio::test]
async fn i_posted_it_in_chromium_counts_the_notice_and_refuses_an_address_on_another_site() {
    if require_server("PICKET_TEST_CHROMEDRIVER").is_none() {
        return;
    }
    // Arrange: joined with X and Instagram, the clock at Auckland's midnight.
    let midnight = auckland_midnight();
    let clock = Arc::new(ManualClock::new(midnight - chrono::Duration::seconds(60)));
    let app = TestApp::spawn(
        Options::default()
            .without_bundled()
            .campaign(ID, &campaign())
            .clock(clock.clone())
            .own_address(),
    )
    .await;
    let v = app.visitor();
    let email = crate::mail::fresh_address("aroha");
    let (who, magic) = join_tapping(
        &app,
        &v,
        &email,
        &[("x", "@aroha"), ("instagram", "@aroha.k")],
    )
    .await;
    clock.set(midnight);
    let rows = rows_in(&app, who, 2, OutboxState::Reminded).await;
    let accounts = app.store.list_accounts(who).await.unwrap();
    let id_of = |network: picket::domain::NetworkKind| {
        let a = accounts.iter().find(|a| a.network == network).unwrap();
        rows.iter().find(|r| r.account_id == a.id).unwrap().id
    };
    let (x, insta) = (
        id_of(picket::domain::NetworkKind::X),
        id_of(picket::domain::NetworkKind::Instagram),
    );

    with_browsers(async |browsers| {
        let b = browsers.open_in("Pacific/Auckland").await;
        b.goto(&app.url(&magic)).await;
        b.wait_until(
            "return !!document.getElementById('due')",
            "the due-now notices",
        )
        .await;
        // The copy button appears with the script, for the Instagram text.
        b.wait_until(
            &format!(
                "var b = document.querySelector('#due-{insta} .copy-button'); return !!b && !b.hidden"
            ),
            "the copy button",
        )
        .await;
        let compose = b
            .eval(&format!(
                "return document.querySelector('#due-{x} a.compose-link').href"
            ))
            .await;

        // Act 1: an Instagram notice "posted" at an address elsewhere.
        b.fill(&format!("#url-{insta}"), "https://evil.example/p/1")
            .await;
        b.submit(&format!("#posted-{insta}")).await;
        let refused = b.text("body").await;

        // Act 2: back on the page, the X notice with its address.
        b.goto(&app.url("/me")).await;
        b.fill(&format!("#url-{x}"), "https://x.com/aroha/status/42")
            .await;
        b.submit(&format!("#posted-{x}")).await;
        let flash = b.text("#flash-ok").await;
        let counted = b.text(&format!("#posted-by-hand-{ID}")).await;
        let link = b
            .eval("return Array.from(document.querySelectorAll('tr.posted a')).map(a => a.href)")
            .await;

        // Assert
        assert!(
            compose
                .as_str()
                .unwrap()
                .starts_with("https://x.com/intent/tweet?text="),
            "{compose}"
        );
        assert!(refused.contains("not on Instagram"), "{refused}");
        assert!(flash.contains("posted by hand"), "{flash}");
        assert_eq!(counted, "1");
        assert!(
            link.to_string().contains("https://x.com/aroha/status/42"),
            "{link}"
        );
    })
    .await;
    if require_server("PICKET_TEST_CHROMEDRIVER").is_some() {
        let states: Vec<_> = app
            .store
            .outbox_for(who, Some(ID))
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.id, r.state, r.confirmed_url))
            .collect();
        assert!(
            states.contains(&(
                x,
                OutboxState::PostedByHand,
                Some("https://x.com/aroha/status/42".into())
            )),
            "{states:?}"
        );
        assert!(
            states
                .iter()
                .any(|s| s.0 == insta && s.1 == OutboxState::Reminded)
        );
    }
}

/// The events of a calendar as (property name with its parameters, value) lists: long
/// lines unfolded, text values unescaped (RFC 5545 §3.1, §3.3.11).
fn events(ics: &str) -> Vec<Vec<(String, String)>> {
    let mut lines: Vec<String> = Vec::new();
    for line in ics.split("\r\n").flat_map(|l| l.split('\n')) {
        match line.strip_prefix(' ').or_else(|| line.strip_prefix('\t')) {
            Some(rest) => lines.last_mut().unwrap().push_str(rest),
            None if !line.is_empty() => lines.push(line.to_string()),
            None => {}
        }
    }
    let mut out = Vec::new();
    let mut current: Option<Vec<(String, String)>> = None;
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        match (name, value) {
            ("BEGIN", "VEVENT") => current = Some(Vec::new()),
            ("END", "VEVENT") => out.push(current.take().unwrap()),
            _ => {
                if let Some(props) = current.as_mut() {
                    let value = value
                        .replace("\\n", "\n")
                        .replace("\\N", "\n")
                        .replace("\\,", ",")
                        .replace("\\;", ";")
                        .replace("\\\\", "\\");
                    props.push((name.to_string(), value));
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn the_calendar_alarms_each_tap_notice_at_its_minute_with_the_link_that_is_then_due() {
    // Arrange: joined with X and Facebook, a day before the strike.
    let midnight = auckland_midnight();
    let clock = Arc::new(ManualClock::new(midnight - chrono::Duration::days(1)));
    let app = TestApp::spawn(
        Options::default()
            .without_bundled()
            .campaign(ID, &campaign())
            .clock(clock.clone())
            .own_address(),
    )
    .await;
    let v = app.visitor();
    let email = fresh_address("aroha");
    let (who, _) = join_tapping(
        &app,
        &v,
        &email,
        &[("x", "@aroha"), ("facebook", "aroha.k")],
    )
    .await;

    // Act: the calendar as downloaded the day before, then the notices at the minute.
    let ics = v.get("/me/strike.ics").await;
    clock.set(midnight);
    let rows = rows_in(&app, who, 2, OutboxState::Reminded).await;

    // Assert: one event with an alarm per notice, at its minute, with what to tap.
    assert_eq!(ics.status, StatusCode::OK);
    let with_alarm: Vec<_> = events(&ics.html)
        .into_iter()
        .filter(|e| e.iter().any(|(k, v)| k == "BEGIN" && v == "VALARM"))
        .collect();
    assert_eq!(with_alarm.len(), 2, "{}", ics.html);
    let start = midnight.format("%Y%m%dT%H%M%SZ").to_string();
    for e in &with_alarm {
        let get = |key: &str| {
            e.iter()
                .filter(|(k, _)| k == key || k.starts_with(&format!("{key};")))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(get("DTSTART")[0].1, start, "{e:?}");
        // A zero duration (P0D, PT0S) from the event's start: at the notice's minute.
        let trigger = &get("TRIGGER")[0];
        let duration = trigger.1.trim_start_matches(['+', '-']);
        assert!(
            duration.starts_with('P')
                && duration.chars().any(|c| c.is_ascii_digit())
                && duration
                    .chars()
                    .filter(char::is_ascii_digit)
                    .all(|c| c == '0'),
            "{e:?}"
        );
        assert!(!trigger.0.contains("RELATED=END"), "{e:?}");
        assert!(get("ACTION").iter().any(|(_, v)| v == "DISPLAY"), "{e:?}");
    }
    let described = |needle: &str| {
        with_alarm
            .iter()
            .flat_map(|e| e.iter())
            .filter(|(k, _)| k == "DESCRIPTION")
            .map(|(_, v)| v.clone())
            .find(|v| v.contains(needle))
            .unwrap_or_else(|| panic!("no description with {needle}: {}", ics.html))
    };
    let x = described("https://x.com/intent/tweet?text=");
    let link = x
        .split_whitespace()
        .find(|w| w.starts_with("https://x.com/"))
        .unwrap();
    let facebook = described("Copy and post on Facebook");
    let accounts = app.store.list_accounts(who).await.unwrap();
    let text_of = |network| {
        let a = accounts.iter().find(|a| a.network == network).unwrap();
        rows.iter()
            .find(|r| r.account_id == a.id)
            .and_then(|r| r.text.clone())
            .unwrap()
    };
    assert_eq!(text_param(link), text_of(picket::domain::NetworkKind::X));
    assert!(
        facebook.contains(&text_of(picket::domain::NetworkKind::Facebook)),
        "{facebook}"
    );
}

#[tokio::test]
async fn the_command_line_adds_tap_accounts_joins_with_an_address_and_status_gives_their_links() {
    // Arrange: a strike starting in a few seconds, on the real clock of `picket serve`.
    let start = Utc::now() + chrono::Duration::seconds(3);
    let toml = crate::support::window_campaign(
        "tapcli",
        start,
        start + chrono::Duration::hours(1),
        &crate::support::posts_at_start(1, "10m"),
    );
    let install = Options::default()
        .without_bundled()
        .campaign("tapcli", &toml)
        .install();

    // Act: tap-to-post accounts, mistakes, and a join with an address.
    let x = install.add_account(&["x", "--handle", "@alex"]);
    let fb = install.add_account(&["facebook", "--handle", "alex.doe"]);
    let spaced = install
        .command()
        .args(["account", "add", "instagram", "--handle", "alex doe"])
        .output()
        .unwrap();
    let (x, fb) = (x.to_string(), fb.to_string());
    let bad_email = install
        .command()
        .args([
            "join",
            "tapcli",
            "--account",
            &x,
            "--email",
            "alex at example",
        ])
        .output()
        .unwrap();
    let planned_before = install.store().await.outbox_counts("tapcli").await.unwrap();
    let joined = install.run(&[
        "join",
        "tapcli",
        "--account",
        &x,
        "--account",
        &fb,
        "--email",
        "alex@example.org",
        "--tz",
        "Pacific/Auckland",
    ]);
    let listed: serde_json::Value =
        serde_json::from_slice(&install.run(&["account", "list", "--format", "json"]).stdout)
            .unwrap();
    let app = install.serve().await;
    let status = eventually(
        Duration::from_secs(60),
        "both notices due in `picket status`",
        async || {
            let out = install.run(&["status", "--format", "json"]);
            let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
            if rows.len() == 2 && rows.iter().all(|r| r["state"] == "reminded") {
                Ok(rows)
            } else {
                Err(String::from_utf8_lossy(&out.stdout).to_string())
            }
        },
    )
    .await;
    let local = app
        .store
        .ensure_local_participant("me", picket::domain::Zone::UTC, Utc::now())
        .await
        .unwrap();
    let me = app.store.get_participant(local).await.unwrap().unwrap();

    // Assert: the mistakes are refused with a message and store nothing.
    assert_eq!(spaced.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&spaced.stderr).contains("no spaces"),
        "{spaced:?}"
    );
    assert_eq!(bad_email.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad_email.stderr).contains("e-mail address"),
        "{bad_email:?}"
    );
    assert_eq!(planned_before.pending, 0);
    // Nothing to check for accounts without credentials, nothing to warn about.
    let said = String::from_utf8_lossy(&joined.stderr);
    assert!(!said.contains("could not be checked"), "{said}");
    assert!(!said.contains("reconnect"), "{said}");
    // The accounts are tap-to-post, the address is the participant's.
    let routes: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["network"].as_str().unwrap(), a["route"].as_str().unwrap()))
        .collect();
    assert_eq!(routes, [("x", "tap"), ("facebook", "tap")]);
    assert_eq!(me.email.as_deref(), Some("alex@example.org"));
    // X: a compose link with the notice; Facebook: the notice to copy.
    let row = |account: &str| {
        status
            .iter()
            .find(|r| r["account"].as_i64().map(|a| a.to_string()).as_deref() == Some(account))
            .unwrap()
            .clone()
    };
    let (x_row, fb_row) = (row(&x), row(&fb));
    let link = x_row["compose_url"].as_str().unwrap();
    assert!(
        link.starts_with("https://x.com/intent/tweet?text="),
        "{x_row}"
    );
    assert_eq!(text_param(link), x_row["text"].as_str().unwrap());
    assert!(x_row.get("copy_text").is_none(), "{x_row}");
    assert!(fb_row.get("compose_url").is_none(), "{fb_row}");
    assert_eq!(fb_row["copy_text"], fb_row["text"]);
    assert!(fb_row["text"].as_str().unwrap().contains("#TestStrike"));
}

#[tokio::test]
async fn a_post_of_an_account_needing_reconnection_is_shown_to_post_by_hand_and_then_never_sent() {
    // Arrange: a sandbox account (picket posts with it) whose credentials stopped working,
    // and the strike's minute.
    let midnight = auckland_midnight();
    let clock = Arc::new(ManualClock::new(midnight - chrono::Duration::seconds(60)));
    let toml = campaign().replace(
        r#"networks = ["x", "facebook", "instagram"]"#,
        r#"networks = ["sandbox"]"#,
    );
    let app = TestApp::spawn(
        Options::joinable()
            .without_bundled()
            .campaign(ID, &toml)
            .clock(clock.clone()),
    )
    .await;
    let v = app.visitor();
    let email = fresh_address("aroha");
    let step2 = v
        .join_with_sandbox(
            ID,
            &[
                ("name", "Aroha"),
                ("email", &email),
                ("tz", "Pacific/Auckland"),
                ("day", DAY),
            ],
        )
        .await;
    assert_eq!(v.confirm(ID, &step2).await.status, StatusCode::OK);
    let who = app
        .store
        .participants_by_email(&picket::store::canonical_email(&email), 1)
        .await
        .unwrap()[0]
        .id;
    let account = app.store.list_accounts(who).await.unwrap()[0].id;
    app.store
        .set_account_status(
            account,
            picket::store::AccountStatus::ReconnectNeeded,
            Some("token revoked"),
            clock.now(),
        )
        .await
        .unwrap();
    let before = v.get("/me").await;
    clock.set(midnight);

    // Act: the page at the minute, and "I posted it".
    let due = v.get("/me").await;
    let id = app.store.outbox_for(who, Some(ID)).await.unwrap()[0].id;
    let posted = v
        .post(
            "/me/posted",
            &[("csrf", &due.field("csrf")), ("id", &id.to_string())],
        )
        .await;
    // The owner reconnects within the window: picket must not post it now.
    app.store
        .set_account_status(
            account,
            picket::store::AccountStatus::Active,
            None,
            clock.now(),
        )
        .await
        .unwrap();
    clock.set(midnight + chrono::Duration::seconds(5));
    // Real time passes on purpose: a post would go out within a dispatcher round or two.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rows = app.store.outbox_for(who, Some(ID)).await.unwrap();

    // Assert
    assert!(!before.html.contains("id=\"due\""), "not before the minute");
    assert!(
        due.html.contains(&format!("id=\"due-{id}\"")),
        "{}",
        due.html
    );
    assert!(due.html.contains("needs reconnecting"), "{}", due.html);
    assert!(due.html.contains("#TapStrike"), "{}", due.html);
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.html);
    assert_eq!(rows[0].state, OutboxState::PostedByHand, "{rows:?}");
    assert_eq!(app.sandbox().report().created, 0);
}

#[tokio::test]
async fn status_gives_the_post_of_an_account_needing_reconnection_to_post_by_hand() {
    // Arrange: a sandbox account with a token this picket's receiver refuses, and a strike
    // that starts now.
    let start = Utc::now();
    let toml = crate::support::window_campaign(
        "tapfb",
        start,
        start + chrono::Duration::hours(1),
        &crate::support::posts_at_start(1, "10m"),
    );
    let install = Options::default()
        .without_bundled()
        .campaign("tapfb", &toml)
        .config("sandbox = true")
        .own_address()
        .install();
    let id = install.add_account(&["sandbox", "--name", "refused", "--token", "not-issued"]);
    install.run(&["join", "tapfb", "--account", &id.to_string()]);

    // Act
    let _app = install.serve().await;
    let status = eventually(
        Duration::from_secs(60),
        "the refused account's post due by hand",
        async || {
            let out = install.run(&["status", "--format", "json"]);
            let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
            match rows.first() {
                Some(r) if r.get("copy_text").is_some() => Ok(r.clone()),
                _ => Err(String::from_utf8_lossy(&out.stdout).to_string()),
            }
        },
    )
    .await;

    // Assert: it still waits for a reconnect, with its text to post meanwhile.
    assert_eq!(status["state"], "pending", "{status}");
    let text = status["copy_text"].as_str().unwrap();
    assert!(
        text.contains("#TestStrike") && text.contains("/i/"),
        "{status}"
    );
}
