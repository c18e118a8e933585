//! Joining in the browser, as HTTP: the three join steps, connecting a sandbox account,
//! the preview, the magic link, `/me` (posts, withdraw, remove, delete everything, the
//! calendar), and their error paths. Against the same `Application` `picket serve` runs,
//! posting for real to its built-in sandbox.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use picket::clock::ManualClock;
use reqwest::StatusCode;

use crate::support::{BUNDLED, Options, TestApp, eventually, posts_at_start, window_campaign};

/// A site a visitor can join: the bundled campaign and `soon`, a strike window opening in
/// a few seconds with two notices at its start; its public address is its real one, so
/// its built-in sandbox receives the posts.
fn joinable() -> Options {
    let now = Utc::now();
    Options::joinable().campaign(
        "soon",
        &window_campaign(
            "soon",
            now + chrono::Duration::seconds(6),
            now + chrono::Duration::hours(2),
            &posts_at_start(2, "30m"),
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_joins_with_a_sandbox_account_sees_the_preview_and_each_notice_goes_out_once() {
    // Arrange
    let site = TestApp::spawn(joinable()).await;
    let browser = site.visitor();
    let step2 = browser
        .join_with_sandbox("soon", &[("tz", "Asia/Kolkata")])
        .await;
    assert!(
        step2.html.contains("On #TestStrike strike") || step2.html.contains("#TestStrike"),
        "the preview shows the rendered notices: {}",
        step2.html
    );
    assert!(
        step2.html.contains("IST"),
        "times are shown in the participant's zone"
    );
    assert!(
        step2.html.contains("Zoë &lt;b&gt;Q&lt;/b&gt;"),
        "the name is escaped"
    );

    // Act
    let joined = browser.confirm("soon", &step2).await;

    // Assert
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.html);
    assert!(
        joined.html.contains("2 post(s) planned from 1 account(s)"),
        "{}",
        joined.html
    );
    eventually(
        Duration::from_secs(40),
        "two posts at the sandbox",
        async || site.sandbox().report().created >= 2,
    )
    .await;
    // Once both are recorded as published nothing is left to send, so what the sandbox
    // received by then is all it will receive (the sandbox has a post a moment before
    // picket records it).
    eventually(
        Duration::from_secs(30),
        "both posts published",
        async || {
            let counts = site.store.outbox_counts("soon").await.unwrap();
            match counts.published {
                2 => Ok(()),
                _ => Err(format!("{counts:?}")),
            }
        },
    )
    .await;
    let report = site.sandbox().report();
    assert_eq!(report.created, 2, "{report:?}");
    assert_eq!(report.duplicate_slots, 0);
    let posts = site.sandbox().posts();
    assert!(
        posts.iter().all(|p| p.text.contains("#TestStrike")),
        "{posts:?}"
    );
    // The participant's page lists them as published, with their links.
    let me = browser.get("/me").await;
    assert_eq!(
        me.html.matches("class=\"published\"").count(),
        2,
        "{}",
        me.html
    );
    assert!(
        !me.html.contains("href=\"sandbox:"),
        "only web addresses become links: {}",
        me.html
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_magic_link_opens_the_page_in_another_browser_and_withdrawing_there_stops_the_posts() {
    // Arrange: joined the bundled campaign (July, far away) in one browser.
    let site = TestApp::spawn(joinable()).await;
    let first = site.visitor();
    let step2 = first
        .join_with_sandbox(BUNDLED, &[("tz", "Pacific/Chatham"), ("every", "2h")])
        .await;
    let joined = first.confirm(BUNDLED, &step2).await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.html);
    let path = joined.magic_path(&site.base);
    assert!(path.starts_with("/me?t="), "{path}");

    // Act: another browser opens the link.
    let second = site.visitor();
    let opened = second.get(&path).await;
    let me = second.get("/me").await;

    // Assert: signed in, the token gone from the address, the pledge and its posts shown.
    assert_eq!(opened.status, StatusCode::SEE_OTHER);
    assert_eq!(opened.location.as_deref(), Some("/me"));
    assert_eq!(me.status, StatusCode::OK);
    assert!(me.html.contains("striking"), "{}", me.html);
    assert!(me.html.contains("Pacific/Chatham"));
    assert!(me.html.contains("a notice every 2h"), "{}", me.html);
    let scheduled = me.html.matches("class=\"scheduled\"").count();
    assert!(
        scheduled > 10,
        "the reminder, daily and every-2h notices: {scheduled}"
    );

    // Act: withdraw from the second browser.
    let withdrawn = second
        .post(
            "/me/withdraw",
            &[("csrf", &me.field("csrf")), ("campaign", BUNDLED)],
        )
        .await;
    let after = second.get(withdrawn.location.as_deref().unwrap()).await;

    // Assert
    assert_eq!(withdrawn.status, StatusCode::SEE_OTHER);
    assert!(
        after
            .html
            .contains(&format!("{scheduled} scheduled post(s) cancelled")),
        "{}",
        after.html
    );
    assert!(after.html.contains("withdrawn"));
    assert_eq!(after.html.matches("class=\"scheduled\"").count(), 0);
    // An unknown link is a 404, and signs no one in.
    let stranger = site.visitor();
    let bad = stranger.get(&format!("/me?t={}", "0".repeat(64))).await;
    assert_eq!(bad.status, StatusCode::NOT_FOUND);
    assert!(!stranger.signed_in());
    assert_eq!(stranger.get("/me").await.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calendar_holds_the_strike_days_at_midnight_in_the_participants_zone() {
    let site = TestApp::spawn(joinable()).await;
    let browser = site.visitor();
    let step2 = browser
        .join_with_sandbox(BUNDLED, &[("tz", "Asia/Kolkata"), ("day", "2027-07-05")])
        .await;
    assert_eq!(
        browser.confirm(BUNDLED, &step2).await.status,
        StatusCode::OK
    );

    let ics = browser.get("/me/strike.ics").await;

    assert_eq!(ics.status, StatusCode::OK);
    assert!(ics.html.starts_with("BEGIN:VCALENDAR"), "{}", ics.html);
    // 2027-07-05 00:00 in Kolkata (UTC+5:30) is 2027-07-04 18:30 UTC; only that day.
    assert!(
        ics.html.contains("DTSTART:20270704T183000Z"),
        "{}",
        ics.html
    );
    assert!(ics.html.contains("DTEND:20270705T183000Z"), "{}", ics.html);
    assert_eq!(ics.html.matches("(day ").count(), 1, "{}", ics.html);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_all_my_data_removes_the_participant_and_the_link_stops_working() {
    let site = TestApp::spawn(joinable()).await;
    let browser = site.visitor();
    let step2 = browser.join_with_sandbox(BUNDLED, &[("tz", "UTC")]).await;
    let joined = browser.confirm(BUNDLED, &step2).await;
    let link = joined.magic_path(&site.base);
    let me = browser.get("/me").await;

    let unconfirmed = browser
        .post("/me/delete", &[("csrf", &me.field("csrf"))])
        .await;
    let deleted = browser
        .post(
            "/me/delete",
            &[("csrf", &me.field("csrf")), ("confirm", "on")],
        )
        .await;

    assert_eq!(
        unconfirmed.status,
        StatusCode::SEE_OTHER,
        "asks to tick the box"
    );
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.html);
    assert!(deleted.html.contains("Everything is deleted"));
    assert!(!browser.signed_in(), "signed out");
    let stats: serde_json::Value =
        reqwest::get(format!("{}/api/v1/campaigns/{BUNDLED}/stats", site.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(stats["strikers"], 0, "{stats}");
    assert_eq!(
        site.visitor().get(&link).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_join_input_gets_a_4xx_with_a_message_never_a_500() {
    let site = TestApp::spawn(joinable()).await;
    let v = site.visitor();
    let form = v.get(&format!("/c/{BUNDLED}/join")).await;
    let csrf = form.field("csrf");
    let step1 = |fields: Vec<(&'static str, String)>| {
        let v = &v;
        async move {
            let f: Vec<(&str, &str)> = fields.iter().map(|(k, x)| (*k, x.as_str())).collect();
            v.post(&format!("/c/{BUNDLED}/join"), &f).await
        }
    };

    let no_csrf = step1(vec![("name", "A".into()), ("tz", "UTC".into())]).await;
    let bad_zone = step1(vec![
        ("csrf", csrf.clone()),
        ("name", "A".into()),
        ("tz", "Mars/Olympus".into()),
        ("day", "2027-07-04".into()),
    ])
    .await;
    let no_day = step1(vec![
        ("csrf", csrf.clone()),
        ("name", "A".into()),
        ("tz", "UTC".into()),
    ])
    .await;
    let wrong_day = step1(vec![
        ("csrf", csrf.clone()),
        ("name", "A".into()),
        ("tz", "UTC".into()),
        ("day", "2027-07-09".into()),
    ])
    .await;
    let too_often = step1(vec![
        ("csrf", csrf.clone()),
        ("name", "A".into()),
        ("tz", "UTC".into()),
        ("day", "2027-07-04".into()),
        ("every", "5m".into()),
    ])
    .await;
    let no_name = step1(vec![
        ("csrf", csrf.clone()),
        ("tz", "UTC".into()),
        ("day", "2027-07-04".into()),
    ])
    .await;
    let not_utf8 = v
        .send(
            v.http
                .post(format!("{}/c/{BUNDLED}/join", v.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(vec![b'n', b'a', b'm', b'e', b'=', 0xff, 0xfe]),
        )
        .await;

    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    assert!(no_csrf.html.contains("please send it again"));
    assert_eq!(bad_zone.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad_zone.html.contains("unknown time zone “Mars/Olympus”"),
        "{}",
        bad_zone.html
    );
    assert!(
        bad_zone.html.contains("value=\"Mars/Olympus\""),
        "what was typed is kept"
    );
    assert_eq!(no_day.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(no_day.html.contains("Choose at least one strike day"));
    assert_eq!(wrong_day.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong_day.html.contains("2027-07-09 is not a day of the"),
        "{}",
        wrong_day.html
    );
    assert_eq!(too_often.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        too_often.html.contains("more often than"),
        "{}",
        too_often.html
    );
    assert_eq!(no_name.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(no_name.html.contains("Please give a name"));
    assert_eq!(not_utf8.status, StatusCode::BAD_REQUEST);
    assert!(!v.signed_in(), "no participant made from bad input");

    // Signed in: confirming without an account, or with someone else's, is refused.
    let step2 = v.join_with_sandbox(BUNDLED, &[("tz", "UTC")]).await;
    let other = site.visitor();
    let other_step2 = other.join_with_sandbox(BUNDLED, &[("tz", "UTC")]).await;
    let others_account = other_step2
        .html
        .split("name=\"account\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let path = format!("/c/{BUNDLED}/join/confirm");
    let base = [
        ("csrf", step2.field("csrf")),
        ("tz", "UTC".to_string()),
        ("day", "2027-07-04".to_string()),
    ];
    let none: Vec<(&str, &str)> = base.iter().map(|(k, x)| (*k, x.as_str())).collect();
    let mut theirs = none.clone();
    theirs.push(("account", &others_account));
    let without = v.post(&path, &none).await;
    let stolen = v.post(&path, &theirs).await;
    let unknown_network = v
        .post("/connect/myspace", &[("csrf", &step2.field("csrf"))])
        .await;
    let not_signed_in = site
        .visitor()
        .post(&path, &[("csrf", "x"), ("tz", "UTC")])
        .await;
    let no_campaign = v.get("/c/nope/join").await;

    assert_eq!(without.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(without.html.contains("Connect an account and tick it"));
    assert_eq!(stolen.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(stolen.html.contains("not yours"));
    assert_eq!(unknown_network.status, StatusCode::NOT_FOUND);
    assert_eq!(not_signed_in.status, StatusCode::FORBIDDEN);
    assert_eq!(no_campaign.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_who_joins_through_an_invitation_is_counted_for_the_inviter() {
    let site = TestApp::spawn(joinable()).await;
    let inviter = site.visitor();
    let step2 = inviter.join_with_sandbox(BUNDLED, &[("tz", "UTC")]).await;
    let joined = inviter.confirm(BUNDLED, &step2).await;
    let invite = joined
        .html
        .split("aria-label=\"Your invitation link\"")
        .next()
        .unwrap()
        .rsplit("value=\"")
        .next()
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .trim_start_matches(&site.base)
        .to_string();
    assert!(invite.starts_with("/i/"), "{invite}");

    let friend = site.visitor();
    let landed = friend.get(&invite).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER);
    let step2 = friend.join_with_sandbox(BUNDLED, &[("tz", "UTC")]).await;
    friend.confirm(BUNDLED, &step2).await;

    let me = inviter.get("/me").await;
    assert!(
        me.html.contains("<strong id=\"invited\">1</strong>"),
        "{}",
        me.html
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_smtp_configured_the_magic_link_is_mailed_to_the_address_given_at_join() {
    let Some((host, port, maildir)) = crate::mail::sink() else {
        return;
    };
    let site = TestApp::spawn(joinable().config(&crate::mail::smtp(&host, port))).await;
    let browser = site.visitor();
    let to = crate::mail::fresh_address("joiner");
    let step2 = browser
        .join_with_sandbox(BUNDLED, &[("tz", "UTC"), ("email", &to)])
        .await;

    let joined = browser.confirm(BUNDLED, &step2).await;

    assert_eq!(joined.status, StatusCode::OK, "{}", joined.html);
    assert!(
        joined.html.contains("We also sent it to you by e-mail"),
        "{}",
        joined.html
    );
    let path = joined.magic_path(&site.base);
    let mails = crate::mail::mails_to(&maildir, &to, 1).await;
    assert_eq!(mails.len(), 1);
    let (_, body) = crate::mail::read_mail(&mails[0]);
    assert!(
        body.contains(&format!("{}{path}", site.base)),
        "the mailed link is the one shown: {body}"
    );
    assert_eq!(
        site.visitor().get(&path).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_someone_elses_link_while_signed_in_asks_first_and_switches_only_on_the_form() {
    // Arrange: Ada and Bob joined in their own browsers.
    let site = TestApp::spawn(joinable()).await;
    let ada = site.visitor();
    let ada_link = ada.join_as("Ada", &[]).await;
    let bob = site.visitor();
    bob.join_as("Bob", &[]).await;
    let bobs_session = bob.cookie("picket_me").unwrap();

    // Act: Bob's browser opens Ada's link (another site may have sent it there).
    let opened = bob.get(&ada_link).await;
    assert_eq!(
        opened.status,
        StatusCode::OK,
        "a page that asks: {:?}",
        opened.location
    );
    let still = bob.me().await;
    let forged = bob
        .post(
            "/me/switch",
            &[("csrf", "0".repeat(48).as_str()), ("t", &opened.field("t"))],
        )
        .await;
    let after_forged = bob.me().await;
    let switched = bob
        .post(
            "/me/switch",
            &[("csrf", &opened.field("csrf")), ("t", &opened.field("t"))],
        )
        .await;
    let after = bob.me().await;
    let old = site.visitor();
    old.set_cookie("picket_me", &bobs_session);

    // Assert: asked, nothing switched by the GET or a form without the CSRF token.
    assert_eq!(opened.status, StatusCode::OK, "{}", opened.html);
    assert!(
        opened.html.contains("This browser is signed in as Bob"),
        "{}",
        opened.html
    );
    assert!(
        opened.html.contains("id=\"link-owner\">Ada<"),
        "{}",
        opened.html
    );
    assert!(opened.html.contains("action=\"/me/switch\""));
    assert_eq!(still.as_deref(), Some("Bob"));
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(after_forged.as_deref(), Some("Bob"));
    assert_eq!(switched.status, StatusCode::SEE_OTHER);
    assert_eq!(switched.location.as_deref(), Some("/me"));
    assert_eq!(after.as_deref(), Some("Ada"));
    assert_eq!(old.me().await, None, "Bob's session on this browser ended");
    // The same person's link in their own browser just opens the page.
    let own = ada.get(&ada_link).await;
    assert_eq!(own.status, StatusCode::SEE_OTHER);
    assert_eq!(ada.me().await.as_deref(), Some("Ada"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_magic_link_expires_after_a_week_and_a_signed_in_browser_after_its_days() {
    // Arrange
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let site = TestApp::spawn(joinable().clock(clock.clone())).await;
    let ada = site.visitor();
    let link = ada.join_as("Ada", &[]).await;

    // Act
    clock.advance(chrono::Duration::days(6));
    let within = site.visitor();
    let opened_within = within.get(&link).await;
    let page = within.get("/me").await;
    clock.advance(chrono::Duration::days(2));
    let late = site.visitor();
    let opened_late = late.get(&link).await;

    // Assert
    assert_eq!(opened_within.status, StatusCode::SEE_OTHER);
    assert_eq!(within.me().await.as_deref(), Some("Ada"));
    assert!(page.html.contains("id=\"link-until\""), "{}", page.html);
    assert_eq!(opened_late.status, StatusCode::NOT_FOUND);
    assert!(
        opened_late.html.contains("does not work (any more)"),
        "{}",
        opened_late.html
    );
    assert!(!late.signed_in());
    assert_eq!(
        within.me().await.as_deref(),
        Some("Ada"),
        "a browser signed in stays signed in when the link expires"
    );
    // A signed-in browser lasts 180 days from opening the link (on day 6), whatever its
    // cookie says.
    clock.advance(chrono::Duration::days(177));
    assert_eq!(within.me().await.as_deref(), Some("Ada"));
    clock.advance(chrono::Duration::days(1));
    assert_eq!(within.me().await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_link_ends_the_old_one_and_signs_out_every_other_browser() {
    // Arrange: Ada's link was also opened by someone else.
    let site = TestApp::spawn(joinable()).await;
    let ada = site.visitor();
    let old_link = ada.join_as("Ada", &[]).await;
    let thief = site.visitor();
    assert_eq!(thief.get(&old_link).await.status, StatusCode::SEE_OTHER);
    assert_eq!(thief.me().await.as_deref(), Some("Ada"));
    let me = ada.get("/me").await;

    // Act
    let renewed = ada.post("/me/link", &[("csrf", &me.field("csrf"))]).await;

    // Assert
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.html);
    assert!(renewed.html.contains("no longer works"), "{}", renewed.html);
    let new_link = renewed.magic_path(&site.base);
    assert!(new_link.starts_with("/me?t="), "{new_link}");
    assert_ne!(new_link, old_link);
    assert_eq!(thief.me().await, None, "the other browser is signed out");
    let with_old = site.visitor();
    assert_eq!(with_old.get(&old_link).await.status, StatusCode::NOT_FOUND);
    assert!(!with_old.signed_in());
    let with_new = site.visitor();
    assert_eq!(with_new.get(&new_link).await.status, StatusCode::SEE_OTHER);
    assert_eq!(with_new.me().await.as_deref(), Some("Ada"));
    assert_eq!(
        ada.me().await.as_deref(),
        Some("Ada"),
        "this browser stays in"
    );
    // Not without the form's CSRF token.
    let forged = ada.post("/me/link", &[("csrf", "x")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(with_new.me().await.as_deref(), Some("Ada"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_session_and_the_link_so_copies_of_either_open_nothing() {
    // Arrange
    let site = TestApp::spawn(joinable()).await;
    let ada = site.visitor();
    let link = ada.join_as("Ada", &[]).await;
    let phone = site.visitor();
    assert_eq!(phone.get(&link).await.status, StatusCode::SEE_OTHER);
    let cookie = ada.cookie("picket_me").unwrap();
    let me = ada.get("/me").await;

    // Act
    let out = ada.post("/me/logout", &[("csrf", &me.field("csrf"))]).await;

    // Assert
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(!ada.signed_in());
    let copied = site.visitor();
    copied.set_cookie("picket_me", &cookie);
    assert_eq!(copied.me().await, None, "the cookie's session is over");
    let stolen = site.visitor();
    assert_eq!(stolen.get(&link).await.status, StatusCode::NOT_FOUND);
    assert!(!stolen.signed_in());
    assert_eq!(
        phone.me().await.as_deref(),
        Some("Ada"),
        "other devices stay signed in"
    );
    let page = phone.get("/me").await;
    assert!(page.html.contains("id=\"no-link\""), "{}", page.html);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_account_answers_only_once_its_posts_on_the_wire_have_settled() {
    // Arrange: the strike starts in a few seconds; the sandbox takes 6 s to store a post,
    // so both notices are on the wire for a while.
    let site = TestApp::spawn(joinable()).await;
    site.sandbox().set_faults(picket::sandbox::Faults {
        commit_delay: Duration::from_secs(6),
        ..Default::default()
    });
    let browser = site.visitor();
    let step2 = browser.join_with_sandbox("soon", &[("tz", "UTC")]).await;
    assert_eq!(browser.confirm("soon", &step2).await.status, StatusCode::OK);
    eventually(Duration::from_secs(60), "a post on the wire", async || {
        site.store.outbox_counts("soon").await.unwrap().sending > 0
    })
    .await;
    let me = browser.get("/me").await;

    // Act
    let removed = browser
        .post(
            "/me/accounts/remove",
            &[
                ("csrf", &me.field("csrf")),
                ("account", &me.field("account")),
            ],
        )
        .await;
    let answered = Utc::now();

    // Assert: whatever went out reached the network before the page said so.
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.html);
    let said = browser.get(removed.location.as_deref().unwrap()).await;
    eventually(
        Duration::from_secs(30),
        "nothing left on the wire",
        async || {
            let counts = site.store.outbox_counts("soon").await.unwrap();
            match counts.sending {
                0 => Ok(()),
                _ => Err(format!("{counts:?}")),
            }
        },
    )
    .await;
    let posts = site.sandbox().posts();
    assert!(!posts.is_empty(), "the posts on the wire went out");
    let late: Vec<_> = posts
        .iter()
        .filter(|p| p.received_at > answered)
        .map(|p| (&p.id, p.received_at))
        .collect();
    assert!(
        late.is_empty(),
        "published after the page answered ({answered}): {late:?}"
    );
    assert!(
        said.html.contains("were already on their way and went out"),
        "{}",
        said.html
    );
    let counts = site.store.outbox_counts("soon").await.unwrap();
    assert_eq!(counts.published as usize, posts.len(), "{counts:?}");
}

/// A campaign `where` whose two notices, at the start of a window opening in a few seconds,
/// tell followers where else to find the striker (two variants, so the variant matters too).
fn campaign_naming_other_accounts() -> String {
    let start = Utc::now() + chrono::Duration::seconds(8);
    let end = start + chrono::Duration::hours(2);
    let posts = (0..2)
        .map(|i| format!("[[posts]]\nname = \"p{i}\"\nwhen = \"start\"\ntemplate = \"where\"\nwindow = \"30m\"\n"))
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        r#"id = "where"
title = "Where to find us"
hashtag = "WhereStrike"
networks = ["sandbox"]

[strike]
windows = [{{ start = "{}", end = "{}" }}]
min_interval = "5m"

{posts}

[templates]
where = [
  "{{{{ participant.name }}}} is on strike, #{{{{ hashtag }}}}. Find me: {{{{ elsewhere }}}} {{{{ invite_link }}}}",
  "Day {{{{ day }}}}/{{{{ days_total }}}} of #{{{{ hashtag }}}}: {{{{ participant.name }}}} is also on {{{{ elsewhere }}}}",
]
"#,
        crate::support::rfc(start),
        crate::support::rfc(end)
    )
}

/// The preview's texts on a join page, each with the account it is for (`data-account`).
fn preview_texts(html: &str) -> Vec<(Option<String>, String)> {
    html.split("<pre class=\"post-text\"")
        .skip(1)
        .map(|piece| {
            let (attrs, rest) = piece.split_once('>').unwrap();
            let account = attrs
                .split("data-account=\"")
                .nth(1)
                .map(|a| a.split('"').next().unwrap().to_string());
            (account, rest.split("</pre>").next().unwrap().to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_shows_exactly_the_text_that_goes_out_when_another_account_needs_reconnecting()
{
    // Arrange: Ada connects two sandbox accounts; the network refused the second one's token.
    let site =
        TestApp::spawn(joinable().campaign("where", &campaign_naming_other_accounts())).await;
    let browser = site.visitor();
    let step2 = browser
        .join_with_sandbox("where", &[("tz", "UTC"), ("name", "Ada")])
        .await;
    let second = browser
        .post(
            "/connect/sandbox",
            &[
                ("csrf", &step2.field("csrf")),
                ("back", &step2.field("back")),
                ("name", "ada-old"),
            ],
        )
        .await;
    assert_eq!(second.status, StatusCode::SEE_OTHER, "{}", second.html);
    let ids: Vec<String> = browser
        .get(&step2.field("back"))
        .await
        .html
        .split("name=\"account\" value=\"")
        .skip(1)
        .map(|p| p.split('"').next().unwrap().to_string())
        .collect();
    let [posting, refused] = &ids[..] else {
        panic!("two accounts: {ids:?}")
    };
    site.store
        .set_account_status(
            picket::store::AccountId(refused.parse().unwrap()),
            picket::store::AccountStatus::ReconnectNeeded,
            Some("the network refused its token"),
            Utc::now(),
        )
        .await
        .unwrap();
    let approved = browser.get(&step2.field("back")).await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.html);
    let shown = preview_texts(&approved.html);

    // Act: confirm with the working account only, and let the notices go out.
    let mut form: Vec<(&str, String)> = vec![
        ("csrf", approved.field("csrf")),
        ("tz", approved.field("tz")),
        ("every", approved.field("every")),
        ("account", posting.clone()),
    ];
    for piece in approved.html.split("name=\"day\" value=\"").skip(1) {
        form.push(("day", piece.split('"').next().unwrap().to_string()));
    }
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let joined = browser.post("/c/where/join/confirm", &form).await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.html);
    eventually(
        Duration::from_secs(60),
        "both notices received by the sandbox",
        async || site.sandbox().report().created >= 2,
    )
    .await;

    // Assert: each text that went out is one the preview showed, for that very account.
    let mut sent: Vec<String> = site.sandbox().posts().into_iter().map(|p| p.text).collect();
    sent.sort();
    for text in &sent {
        assert!(
            shown.iter().any(|(_, t)| t == text),
            "sent {text:?}, but the preview showed {shown:?}"
        );
    }
    let mut previewed: Vec<String> = shown
        .iter()
        .filter(|(account, _)| account.as_ref() == Some(posting))
        .map(|(_, t)| t.clone())
        .collect();
    previewed.sort();
    assert_eq!(previewed, sent);
    // Followers can still find Ada on the account picket cannot post to.
    assert!(
        sent.iter()
            .all(|t| t.contains("Sandbox ada-old") && !t.contains("zoe-sandbox")),
        "{sent:?}"
    );
}
