//! The pages in a real headless Chromium, driven through chromedriver (WebDriver): what a
//! visitor sees after the page's own scripts ran, cookies and forms as a browser handles
//! them, and the visitor's time zone.
//!
//! Start chromedriver with `scripts/servers/chromium.sh`, which prints
//! `PICKET_TEST_CHROMEDRIVER=...`; without that variable these tests are skipped, unless
//! `PICKET_REQUIRE_SERVERS=1`.
//!
//! The harness: picket is a [`TestApp`] serving one campaign file ([`one_campaign`]: its public
//! URL its real address so links can be followed, the sandbox on); [`with_browsers`] runs
//! a test body that opens browser sessions through [`Browsers`], closes every session
//! whatever happens, and on failure saves a screenshot of each into
//! `target/browser-screenshots/`; [`Browser`] has the few verbs the tests use (go, fill,
//! tick, submit, read) and [`Browser::set_time_zone`]; [`HostSite`] is someone else's site
//! on another port, for pages that embed the widget.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SubsecRound, TimeZone, Utc};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use picket::clock::ManualClock;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{
    Options, TestApp, eventually, posts_at_start, require_server, window_campaign,
};

/// Longest a whole browser test may take: a hung page must fail the test, not CI.
const TEST_LIMIT: Duration = Duration::from_secs(90);
/// Longest to wait for an element or a text to appear (a page load in a Chromium on a
/// busy 2-core CI machine can take seconds).
const WAIT: Duration = Duration::from_secs(20);

/// Without these a headless Chromium on a machine with no internet stalls on background
/// connections (updates, sync, field trials), and in a container on `/dev/shm` and the
/// sandbox.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
];

/// A campaign whose strike runs from midnight in each participant's own zone on
/// `first_day`, postable to the sandbox network.
pub fn participant_campaign(id: &str, first_day: NaiveDate) -> String {
    format!(
        r#"id = "{id}"
title = "Browser Strike"
hashtag = "BrowserStrike"
networks = ["sandbox"]

[strike]
timezone = "participant"
days = ["{first_day}"]
min_days = 1
min_interval = "1h"

[[posts]]
name = "notice"
when = "start"
template = "notice"

[templates]
notice = ["On #{{{{ hashtag }}}} strike today. Join: {{{{ invite_link }}}}"]
"#
    )
}

/// A campaign like [`participant_campaign`] over two days, `first_day` and the next, with
/// an optional repeating notice whose cadence each participant chooses.
pub fn two_day_campaign(id: &str, first_day: NaiveDate) -> String {
    let second_day = first_day.succ_opt().unwrap();
    participant_campaign(id, first_day)
        .replace(
            &format!(r#"days = ["{first_day}"]"#),
            &format!(r#"days = ["{first_day}", "{second_day}"]"#),
        )
        .replace(
            "[templates]\n",
            r#"[[posts]]
name = "reminder"
when = "every 6h"
template = "reminder"
optional = true

[templates]
reminder = ["Still on #{{ hashtag }} strike."]
"#,
        )
}

/// picket serving one campaign file, on a loopback port that is also its public URL
/// (invitation links then lead back to it), with the sandbox network on.
fn one_campaign(campaign_toml: &str) -> Options {
    Options::joinable()
        .without_bundled()
        .campaign_file("campaign.toml", campaign_toml)
}

/// Someone else's web site on its own loopback port, so another origin than picket's,
/// serving fixed pages: a blog that embeds the widget.
pub struct HostSite {
    pub base: String,
    stop: CancellationToken,
}

impl Drop for HostSite {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl HostSite {
    /// Serves each `(path, html)` of `pages`.
    pub async fn start(pages: Vec<(&str, String)>) -> HostSite {
        let mut router = axum::Router::new();
        for (path, html) in pages {
            router = router.route(
                path,
                axum::routing::get(move || async move { axum::response::Html(html) }),
            );
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let until = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(until)
                .await
        });
        HostSite { base, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A host page with some text and the widget's script tag; `attrs` are more attributes of
/// that tag (`data-close="false"`).
fn page_with_widget(picket: &str, campaign: &str, attrs: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A blog</title></head>
<body><h1>A blog</h1><p>Posts about gardening.</p><a id="host-link" href="/">Home</a>
<script src="{picket}/widget.js" data-campaign="{campaign}" {attrs} async></script>
</body></html>"#
    )
}

/// Runs `test` with a chromedriver to open browsers from; skipped (returns at once)
/// without one. Every session opened is closed afterwards even when `test` fails or runs
/// past [`TEST_LIMIT`]; on failure each session's screenshot is saved first.
pub async fn with_browsers(test: impl AsyncFnOnce(&Browsers)) {
    let Some(driver) = require_server("PICKET_TEST_CHROMEDRIVER") else {
        return;
    };
    let name = std::thread::current()
        .name()
        .unwrap_or("browser")
        .replace("::", "-");
    let browsers = Browsers {
        driver,
        opened: Mutex::new(Vec::new()),
    };
    let outcome =
        tokio::time::timeout(TEST_LIMIT, AssertUnwindSafe(test(&browsers)).catch_unwind()).await;
    let failed = !matches!(outcome, Ok(Ok(())));
    let opened = std::mem::take(&mut *browsers.opened.lock().unwrap());
    for (i, b) in opened.into_iter().enumerate() {
        if failed {
            b.save_screenshot(&format!("{name}-{i}")).await;
        }
        if let Err(e) = b.client.close().await {
            eprintln!("closing browser session {i}: {e}");
        }
    }
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("the browser test took longer than {TEST_LIMIT:?}"),
    }
}

/// Where a test opens its browser sessions; [`with_browsers`] closes them.
pub struct Browsers {
    driver: String,
    opened: Mutex<Vec<Browser>>,
}

impl Browsers {
    /// A fresh browser: its own empty profile, so no cookies or storage carry over.
    pub async fn open(&self) -> Browser {
        let profile = Arc::new(tempfile::tempdir().unwrap());
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
            "timeouts": { "pageLoad": 20_000, "script": 10_000, "implicit": 0 },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps)
            .connect(&self.driver)
            .await
            .unwrap_or_else(|e| panic!("no browser session from {}: {e}", self.driver));
        let b = Browser {
            client,
            _profile: profile,
        };
        self.opened.lock().unwrap().push(b.clone());
        b
    }

    /// A fresh browser whose pages see `zone` (IANA name) as the local time zone.
    pub async fn open_in(&self, zone: &str) -> Browser {
        let b = self.open().await;
        b.set_time_zone(zone).await;
        b
    }
}

/// One browser session (a window with one tab).
#[derive(Clone)]
pub struct Browser {
    pub client: Client,
    _profile: Arc<tempfile::TempDir>,
}

/// A Chrome DevTools Protocol command, sent through chromedriver's own endpoint.
#[derive(Debug)]
struct Cdp {
    cmd: String,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.expect("CDP commands need a session");
        base_url.join(&format!("session/{session}/goog/cdp/execute"))
    }

    fn method_and_body(&self, _: &url::Url) -> (reqwest::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (reqwest::Method::POST, Some(body.to_string()))
    }
}

impl Browser {
    /// Run a Chrome DevTools Protocol command in this session's tab.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.client
            .issue_cmd(Cdp {
                cmd: cmd.to_string(),
                params,
            })
            .await
            .unwrap_or_else(|e| panic!("CDP {cmd} failed: {e}"))
    }

    /// Pages loaded from now on (and the current one) see `zone` as their local zone;
    /// the host's zone is left alone.
    pub async fn set_time_zone(&self, zone: &str) {
        self.cdp(
            "Emulation.setTimezoneOverride",
            json!({ "timezoneId": zone }),
        )
        .await;
    }

    /// Pages loaded from now on see the time as if it were `at` now, and their clock
    /// runs on from there (`Date` is shifted by a script that runs before the page's own;
    /// timers keep real time). The host's clock is left alone.
    pub async fn set_clock(&self, at: DateTime<Utc>) {
        let offset_ms = (at - Utc::now()).num_milliseconds();
        let shift = format!(
            r#"(() => {{
  const Real = Date, offset = {offset_ms};
  function Shifted(...args) {{
    if (!new.target) return new Real(Real.now() + offset).toString();
    return args.length ? new Real(...args) : new Real(Real.now() + offset);
  }}
  Shifted.prototype = Real.prototype;
  Shifted.now = () => Real.now() + offset;
  Shifted.parse = Real.parse;
  Shifted.UTC = Real.UTC;
  window.Date = Shifted;
}})();"#
        );
        self.cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": shift }),
        )
        .await;
    }

    /// The zone the page's scripts see.
    pub async fn time_zone(&self) -> String {
        self.eval("return Intl.DateTimeFormat().resolvedOptions().timeZone")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// Run `script` (a function body: `return ...`) in the page.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script {script:?} failed: {e}"))
    }

    /// The element `css` selects, waiting for it to appear.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!("no {css} on {}: {e}", self.url().await),
        }
    }

    /// Type `text` into the field `css` selects, replacing what it held.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Tick the checkbox `css` selects (clicking it, as a person would), if it is not yet.
    pub async fn tick(&self, css: &str) {
        let b = self.find(css).await;
        if !b.is_selected().await.unwrap() {
            b.click().await.unwrap();
        }
    }

    /// Untick the checkbox `css` selects, if it is ticked.
    pub async fn untick(&self, css: &str) {
        let b = self.find(css).await;
        if b.is_selected().await.unwrap() {
            b.click().await.unwrap();
        }
    }

    /// Choose the option whose value is `value` in the `<select>` `css` selects.
    pub async fn choose(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("choosing {value:?} in {css}: {e}"));
    }

    /// Press `key` (e.g. [`fantoccini::key::Key::Escape`]) where the focus is.
    pub async fn press(&self, key: fantoccini::key::Key) {
        self.client
            .active_element()
            .await
            .unwrap()
            .send_keys(&key.to_string())
            .await
            .unwrap_or_else(|e| panic!("pressing {key:?}: {e}"));
    }

    /// Click `css` (a submit button or a link) and wait until the next page has loaded.
    pub async fn submit(&self, css: &str) {
        // A mark on the current document: it is gone once another document replaced it.
        self.eval("window.__picketOldPage = true; return null")
            .await;
        self.click(css).await;
        self.wait_until(
            "return !window.__picketOldPage && document.readyState === 'complete'",
            &format!("a new page after clicking {css}"),
        )
        .await;
    }

    /// Wait until `script` returns `true`.
    pub async fn wait_until(&self, script: &str, what: &str) {
        eventually(WAIT, what, async || {
            // During a navigation a script may fail: that is "not yet".
            match self.client.execute(script, vec![]).await {
                Ok(Value::Bool(true)) => Ok(()),
                _ => Err(format!("at {}", self.url().await)),
            }
        })
        .await
    }

    /// The text of `css` as rendered (what a person reads).
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// The text of every element `css` selects, in page order, straight from the DOM.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let all = self
            .eval(&format!(
                "return Array.from(document.querySelectorAll({})).map(e => e.textContent)",
                json!(css)
            ))
            .await;
        serde_json::from_value(all).unwrap()
    }

    /// An input's current value.
    pub async fn value(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// Save a screenshot as `target/browser-screenshots/{name}.png` and say where.
    pub async fn save_screenshot(&self, name: &str) {
        let url = self.url().await;
        match self.client.screenshot().await {
            Ok(png) => {
                let dir = screenshot_dir();
                let path = dir.join(format!("{name}.png"));
                match std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, png)) {
                    Ok(()) => eprintln!("screenshot of {url}: {}", path.display()),
                    Err(e) => eprintln!("could not save the screenshot of {url}: {e}"),
                }
            }
            Err(e) => eprintln!("no screenshot of {url}: {e}"),
        }
    }
}

/// `target/browser-screenshots`, in whichever target folder this build uses.
fn screenshot_dir() -> PathBuf {
    // The picket binary sits in target/<profile>/.
    Path::new(env!("CARGO_BIN_EXE_picket"))
        .parent()
        .and_then(Path::parent)
        .map(|target| target.join("browser-screenshots"))
        .unwrap_or_else(|| PathBuf::from("target/browser-screenshots"))
}

/// "in 3 d 4 h 5 min" (the page's countdown) as minutes.
fn countdown_minutes(text: &str) -> Option<i64> {
    let mut words = text.strip_prefix("in ")?.split_whitespace();
    let mut total = 0;
    while let Some(n) = words.next() {
        let n: i64 = n.parse().ok()?;
        total += n * match words.next()? {
            "d" => 24 * 60,
            "h" => 60,
            "min" => 1,
            _ => return None,
        };
    }
    Some(total)
}

const ID: &str = "browser-strike";

fn in_days(days: i64) -> NaiveDate {
    (Utc::now() + chrono::Duration::days(days)).date_naive()
}

#[tokio::test]
async fn the_countdown_aims_at_local_midnight_in_the_visitors_own_time_zone() {
    let first_day = in_days(30);
    let site = TestApp::spawn(one_campaign(&participant_campaign(ID, first_day))).await;

    with_browsers(async |browsers| {
        let browser = browsers.open_in("Pacific/Kiritimati").await;
        let mut seen = Vec::new();
        for zone in ["Pacific/Kiritimati", "Pacific/Pago_Pago"] {
            browser.set_time_zone(zone).await;
            browser.goto(&site.url(&format!("/c/{ID}"))).await;
            let text = browser.text("#countdown").await;
            let tz: chrono_tz::Tz = zone.parse().unwrap();
            let midnight = tz
                .from_local_datetime(&first_day.and_hms_opt(0, 0, 0).unwrap())
                .single()
                .unwrap();
            let expected = (midnight.with_timezone(&Utc) - Utc::now()).num_minutes();
            seen.push((zone, browser.time_zone().await, text, expected));
        }

        for (zone, page_zone, text, expected) in &seen {
            assert_eq!(page_zone, zone, "the page runs in the zone asked for");
            let minutes = countdown_minutes(text)
                .unwrap_or_else(|| panic!("the script did not write the countdown: {text:?}"));
            assert!(
                (minutes - expected).abs() <= 2,
                "{zone}: {text:?} is {minutes} min, local midnight is {expected} min away"
            );
        }
        let (kiritimati, pago_pago) = (
            countdown_minutes(&seen[0].2).unwrap(),
            countdown_minutes(&seen[1].2).unwrap(),
        );
        assert!(
            (pago_pago - kiritimati - 25 * 60).abs() <= 2,
            "the strike starts 25 hours later in Pago Pago than in Kiritimati: {seen:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn on_strike_day_the_countdown_says_now_where_midnight_has_passed_and_counts_on_elsewhere() {
    let first_day = in_days(30);
    let kiritimati: chrono_tz::Tz = "Pacific/Kiritimati".parse().unwrap();
    // A minute after the strike began in Kiritimati (UTC+14), where the day comes first;
    // in Pago Pago (UTC-11) it is still 25 hours minus a minute away.
    let now = kiritimati
        .from_local_datetime(&first_day.and_hms_opt(0, 1, 0).unwrap())
        .single()
        .unwrap()
        .with_timezone(&Utc);
    let site = TestApp::spawn(
        one_campaign(&participant_campaign(ID, first_day)).clock(Arc::new(ManualClock::new(now))),
    )
    .await;

    with_browsers(async |browsers| {
        let browser = browsers.open_in("Pacific/Kiritimati").await;
        browser.set_clock(now).await;
        browser.goto(&site.url(&format!("/c/{ID}"))).await;
        let in_kiritimati = browser.text("#countdown").await;
        let page_now = browser.eval("return new Date().toISOString()").await;
        browser.set_time_zone("Pacific/Pago_Pago").await;
        browser.goto(&site.url(&format!("/c/{ID}"))).await;
        let in_pago_pago = browser.text("#countdown").await;

        let page_now: DateTime<Utc> = page_now.as_str().unwrap().parse().unwrap();
        assert!(
            (page_now - now).num_seconds().abs() < 30,
            "the page's clock was set: {page_now}"
        );
        assert_eq!(in_kiritimati, "now");
        let left = countdown_minutes(&in_pago_pago)
            .unwrap_or_else(|| panic!("no countdown in Pago Pago: {in_pago_pago:?}"));
        assert!(
            (25 * 60 - 3..25 * 60).contains(&left),
            "{in_pago_pago:?} is {left} min"
        );
    })
    .await;
}

#[tokio::test]
async fn signing_in_a_browser_shows_an_invitation_link_that_counts_the_next_signer() {
    let site = TestApp::spawn(one_campaign(&participant_campaign(ID, in_days(30)))).await;
    let page = site.url(&format!("/c/{ID}"));

    with_browsers(async |browsers| {
        // A session that expired between loading the form and sending it is refused, with
        // what was typed kept; sending again (new cookie, new token) works.
        let ada = browsers.open().await;
        ada.goto(&page).await;
        ada.fill("#name", "Ada").await;
        ada.fill("#email", "ada@example.org").await;
        ada.tick("input[name=public]").await;
        ada.tick("input[name=consent]").await;
        ada.client.delete_all_cookies().await.unwrap();
        ada.submit("#sign button[type=submit]").await;
        let refused = ada.text("#sign .error").await;
        ada.tick("input[name=consent]").await;
        ada.submit("#sign button[type=submit]").await;
        let thanks = ada.text("h1").await;
        let invite_link = ada.value("input[aria-label='Your invitation link']").await;

        let grace = browsers.open().await;
        grace.goto(&invite_link).await;
        let landed_on = grace.url().await;
        grace.fill("#name", "Grace").await;
        grace.tick("input[name=consent]").await;
        grace.submit("#sign button[type=submit]").await;
        let grace_thanks = grace.text("h1").await;
        ada.goto(&page).await;
        let counters = ada.texts(".counters div").await;
        let stats = site.stats(ID).await;

        assert!(refused.contains("sign again"), "{refused}");
        assert_eq!(thanks, "Thank you, Ada.");
        assert!(
            invite_link.starts_with(&site.url("/i/")),
            "{invite_link} leads back to this site"
        );
        assert!(
            landed_on.starts_with(&format!("{page}?ref=")),
            "{landed_on}"
        );
        assert_eq!(grace_thanks, "Thank you, Grace.");
        assert!(
            counters.iter().any(|c| c == "2 signed"),
            "the page counts both: {counters:?}"
        );
        assert!(
            counters.iter().any(|c| c == "1 joined by invitation"),
            "Ada's page shows the invitation: {counters:?}"
        );
        assert_eq!(stats["signatures"], 2, "{stats}");
        assert_eq!(stats["invitations"], 1, "{stats}");
    })
    .await;
}

#[tokio::test]
async fn a_name_with_markup_is_shown_as_text_and_runs_no_script() {
    let site = TestApp::spawn(one_campaign(&participant_campaign(ID, in_days(30)))).await;
    let evil = r#"<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>Mallory"#;

    with_browsers(async |browsers| {
        let b = browsers.open().await;
        b.goto(&site.url(&format!("/c/{ID}"))).await;
        b.fill("#name", evil).await;
        b.tick("input[name=public]").await;
        b.tick("input[name=consent]").await;
        b.submit("#sign button[type=submit]").await;
        let thanks = b.texts("h1").await;
        let pwned_on_thanks = b.eval("return window.pwned === undefined").await;
        b.goto(&site.url(&format!("/c/{ID}/signatures"))).await;
        let listed = b.texts("main ol li").await;
        let injected = b
            .eval("return document.querySelectorAll('main img, main ol script').length")
            .await;
        let pwned_on_list = b.eval("return window.pwned === undefined").await;
        let stored = site.store.public_signatures(ID, 10, 0).await.unwrap();

        assert_eq!(thanks, [format!("Thank you, {evil}.")]);
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert!(listed[0].starts_with(evil), "{listed:?}");
        assert_eq!(stored[0].name, evil, "stored as typed");
        assert_eq!(injected, 0, "no element made from the name");
        assert_eq!(pwned_on_thanks, true, "no script ran on the thank-you page");
        assert_eq!(pwned_on_list, true, "no script ran on the list of signers");
    })
    .await;
}

/// `at` as the join preview writes it, in `zone`.
fn local_label(at: DateTime<Utc>, zone: chrono_tz::Tz) -> String {
    at.with_timezone(&zone)
        .format("%a %-d %b %Y, %H:%M %Z")
        .to_string()
}

#[tokio::test]
async fn joining_with_a_sandbox_account_previews_the_notices_in_the_participants_zone_and_withdrawing_cancels_them()
 {
    let (first_day, second_day) = (in_days(30), in_days(31));
    let site = TestApp::spawn(one_campaign(&two_day_campaign(ID, first_day))).await;
    let kolkata: chrono_tz::Tz = "Asia/Kolkata".parse().unwrap();
    let midnight = kolkata
        .from_local_datetime(&second_day.and_hms_opt(0, 0, 0).unwrap())
        .single()
        .unwrap()
        .with_timezone(&Utc);
    // The second day only, with a reminder every 12 h: the notice at midnight, reminders
    // at midnight and noon.
    let expected_times: Vec<String> = [0, 0, 12]
        .iter()
        .map(|h| local_label(midnight + chrono::Duration::hours(*h), kolkata))
        .collect();

    with_browsers(async |browsers| {
        let zoe = browsers.open_in("Asia/Kolkata").await;
        zoe.goto(&site.url(&format!("/c/{ID}"))).await;
        zoe.submit("#join-link").await;
        let prefilled_zone = zoe.value("#tz").await;
        zoe.fill("#name", "Zoë").await;
        zoe.untick(&format!("input[name=day][value='{first_day}']"))
            .await;
        zoe.tick(&format!("input[name=day][value='{second_day}']"))
            .await;
        zoe.choose("#every", "12h").await;
        zoe.submit(&format!("form[action='/c/{ID}/join'] button[type=submit]"))
            .await;
        // Step 2: connect a sandbox account.
        let sandbox = "#connect details:has(form[action='/connect/sandbox'])";
        if zoe
            .eval(&format!(
                "return document.querySelector({}).open",
                json!(sandbox)
            ))
            .await
            != true
        {
            zoe.click(&format!("{sandbox} > summary")).await;
        }
        zoe.fill("#s-name", "zoe-sandbox").await;
        zoe.submit("form[action='/connect/sandbox'] button[type=submit]")
            .await;
        let connected = zoe.text("#flash-ok").await;
        let summary = zoe.text("main p:has(strong)").await;
        let preview_times = zoe.texts("#preview article.post h3 time").await;
        let preview_texts = zoe.texts("#preview .post-text").await;
        let preview_utc = zoe.text("#preview article.post h3 .muted").await;
        zoe.submit("#confirm-button").await;
        let joined = zoe.text("#joined-summary").await;
        let magic_link = zoe.value("#magic-link").await;
        zoe.goto(&site.url("/me")).await;
        let scheduled = zoe
            .texts(&format!("#pledge-{ID} tr.scheduled td:first-child"))
            .await;

        // The link signs in another browser, which has no cookie of this site.
        let elsewhere = browsers.open().await;
        elsewhere.goto(&magic_link).await;
        let landed_on = elsewhere.url().await;
        let elsewhere_name = elsewhere.text("h1").await;
        let elsewhere_rows = elsewhere.texts(&format!("#pledge-{ID} tr.scheduled")).await;

        zoe.submit(&format!("#withdraw-{ID}")).await;
        let withdrawn = zoe.text("#flash-ok").await;
        let still_scheduled = zoe.texts("tr.scheduled").await;
        let pledge = zoe.text(&format!("#pledge-{ID} h2")).await;

        // Chromium's ICU still names the zone by its old IANA link, Asia/Calcutta; picket
        // reads it and keeps the current name.
        assert!(
            ["Asia/Kolkata", "Asia/Calcutta"].contains(&prefilled_zone.as_str()),
            "the browser's own zone: {prefilled_zone:?}"
        );
        assert!(
            connected.contains("Connected your Sandbox account"),
            "{connected}"
        );
        assert!(summary.contains("in Asia/Kolkata"), "{summary}");
        assert!(summary.contains("every 12h"), "{summary}");
        assert_eq!(preview_times, expected_times, "local times in Kolkata");
        assert!(
            preview_utc.contains(&midnight.format("%Y-%m-%d %H:%M UTC").to_string()),
            "{preview_utc}"
        );
        assert_eq!(preview_texts.len(), 3, "{preview_texts:?}");
        assert!(
            preview_texts.iter().all(|t| t.contains("#BrowserStrike")),
            "rendered with the hashtag: {preview_texts:?}"
        );
        assert!(
            preview_texts[0].contains(&site.url("/i/")),
            "with Zoë's own invitation link: {preview_texts:?}"
        );
        assert!(
            joined.contains("3 post(s) planned from 1 account(s)"),
            "{joined}"
        );
        assert!(magic_link.starts_with(&site.url("/me?t=")), "{magic_link}");
        assert_eq!(
            scheduled.len(),
            3,
            "/me lists the posts as scheduled: {scheduled:?}"
        );
        assert_eq!(
            landed_on,
            site.url("/me"),
            "the token is gone from the address"
        );
        assert_eq!(elsewhere_name, "Zoë", "signed in on /me");
        assert_eq!(elsewhere_rows.len(), 3, "{elsewhere_rows:?}");
        assert!(
            withdrawn.contains("3 scheduled post(s) cancelled"),
            "{withdrawn}"
        );
        assert_eq!(still_scheduled, Vec::<String>::new());
        assert!(pledge.contains("withdrawn"), "{pledge}");
        let stats = site.stats(ID).await;
        assert_eq!(stats["strikers"], 0, "{stats}");
    })
    .await;
}

/// The instant 12:00 UTC the day before `first_day`: already `first_day` in Kiritimati
/// (UTC+14), still the day before in Pago Pago (UTC-11).
fn noon_before(first_day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&first_day.pred_opt().unwrap().and_hms_opt(12, 0, 0).unwrap())
}

/// Waits until the widget has decided and says what it shows.
async fn widget_view(b: &Browser) -> String {
    b.wait_until(
        "return document.documentElement.hasAttribute('data-picket-widget')",
        "the widget to decide",
    )
    .await;
    b.eval("return document.documentElement.getAttribute('data-picket-widget')")
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn attr_of(b: &Browser, css: &str, attr: &str) -> String {
    b.find(css)
        .await
        .attr(attr)
        .await
        .unwrap()
        .unwrap_or_default()
}

#[tokio::test]
async fn at_the_same_instant_the_widget_shows_the_takeover_where_the_strike_day_began_and_a_countdown_where_it_has_not()
 {
    let first_day = in_days(30);
    let now = noon_before(first_day);
    let site = TestApp::spawn(one_campaign(&two_day_campaign(ID, first_day))).await;
    let host = HostSite::start(vec![("/", page_with_widget(&site.base, ID, ""))]).await;
    let pago_pago: chrono_tz::Tz = "Pacific/Pago_Pago".parse().unwrap();
    let starts = pago_pago
        .from_local_datetime(&first_day.and_hms_opt(0, 0, 0).unwrap())
        .single()
        .unwrap();
    let left = (starts.with_timezone(&Utc) - now).num_minutes();
    let countdown = format!("Starts in {} h {} min", left / 60, left % 60);
    let cookie = format!("picket_closed_{ID}");

    with_browsers(async |browsers| {
        let kiritimati = browsers.open_in("Pacific/Kiritimati").await;
        kiritimati.set_clock(now).await;
        kiritimati.goto(&host.url("/")).await;
        let strike_view = widget_view(&kiritimati).await;
        let title = kiritimati.text("#picket-takeover-title").await;
        let sign = attr_of(&kiritimati, "#picket-takeover .picket-sign", "href").await;
        let join = attr_of(&kiritimati, "#picket-takeover .picket-join", "href").await;
        kiritimati.click("#picket-takeover .picket-close").await;
        let after_close = widget_view(&kiritimati).await;
        let takeovers_left = kiritimati
            .eval("return document.querySelectorAll('#picket-takeover').length")
            .await;
        let closed_on = kiritimati
            .client
            .get_named_cookie(&cookie)
            .await
            .map(|c| c.value().to_string());
        kiritimati.goto(&host.url("/")).await;
        let after_reload = widget_view(&kiritimati).await;

        let pago = browsers.open_in("Pacific/Pago_Pago").await;
        pago.set_clock(now).await;
        pago.goto(&host.url("/")).await;
        let banner_view = widget_view(&pago).await;
        let banner_countdown = pago.text("#picket-countdown").await;
        let banner_sign = attr_of(&pago, "#picket-banner .picket-sign", "href").await;
        let banner_join = attr_of(&pago, "#picket-banner .picket-join", "href").await;
        let pago_takeovers = pago
            .eval("return document.querySelectorAll('#picket-takeover').length")
            .await;

        assert_eq!(
            strike_view, "takeover",
            "the strike day began in Kiritimati"
        );
        assert_eq!(title, "This site is on strike today");
        assert_eq!(sign, site.url(&format!("/c/{ID}#sign")));
        assert_eq!(join, site.url(&format!("/c/{ID}/join")));
        assert_eq!(after_close, "closed");
        assert_eq!(takeovers_left, 0);
        assert_eq!(
            closed_on.ok().as_deref(),
            Some(first_day.to_string().as_str()),
            "closed for the visitor's own day"
        );
        assert_eq!(after_reload, "none", "not shown again that day");
        assert_eq!(banner_view, "banner", "the day before, in Pago Pago");
        assert_eq!(banner_countdown, countdown, "to local midnight");
        assert_eq!(banner_sign, site.url(&format!("/c/{ID}#sign")));
        assert_eq!(banner_join, site.url(&format!("/c/{ID}/join")));
        assert_eq!(pago_takeovers, 0);
    })
    .await;
}

#[tokio::test]
async fn escape_closes_the_takeover_unless_the_page_asks_for_no_close_button_and_german_is_spoken_on_request()
 {
    let first_day = in_days(30);
    let now = noon_before(first_day);
    let site = TestApp::spawn(one_campaign(&two_day_campaign(ID, first_day))).await;
    let host = HostSite::start(vec![
        ("/", page_with_widget(&site.base, ID, "")),
        (
            "/fixed",
            page_with_widget(&site.base, ID, r#"data-close="false""#),
        ),
    ])
    .await;
    let at = format!(
        "picket-now={}",
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );

    with_browsers(async |browsers| {
        let b = browsers.open_in("Pacific/Kiritimati").await;
        b.goto(&host.url(&format!("/fixed?{at}"))).await;
        let fixed_view = widget_view(&b).await;
        let fixed_buttons = b
            .eval("return document.querySelectorAll('#picket-takeover .picket-close').length")
            .await;
        b.press(fantoccini::key::Key::Escape).await;
        let fixed_after_escape = widget_view(&b).await;

        b.goto(&host.url(&format!("/?{at}&picket-lang=de"))).await;
        let german_view = widget_view(&b).await;
        let german_title = b.text("#picket-takeover-title").await;
        let german_join = b.text("#picket-takeover .picket-join").await;
        let german_close = b.text("#picket-takeover .picket-close").await;
        let focused = b
            .eval("return document.activeElement && document.activeElement.id")
            .await;
        b.press(fantoccini::key::Key::Escape).await;
        let after_escape = widget_view(&b).await;
        let host_text = b.text("h1").await;

        assert_eq!(fixed_view, "takeover");
        assert_eq!(fixed_buttons, 0, "no close button with data-close=false");
        assert_eq!(
            fixed_after_escape, "takeover",
            "Escape does not close it either"
        );
        assert_eq!(german_view, "takeover");
        assert_eq!(german_title, "Diese Seite streikt heute");
        assert_eq!(german_join, "Mitstreiken");
        assert_eq!(german_close, "Weiter zur Seite");
        assert_eq!(focused, "picket-takeover", "the dialog takes the focus");
        assert_eq!(after_escape, "closed");
        assert_eq!(host_text, "A blog", "the host page is there behind it");
    })
    .await;
}

#[tokio::test]
async fn a_notice_due_at_a_strike_that_begins_seconds_after_joining_is_published_and_shown_so() {
    // Time enough to join first, even on a busy machine (a browser session to open,
    // four pages to load); whole seconds, as in the file.
    let start = (Utc::now() + chrono::Duration::seconds(30)).trunc_subsecs(0);
    let site = TestApp::spawn(one_campaign(&window_campaign(
        "soon",
        start,
        start + chrono::Duration::hours(2),
        &posts_at_start(1, "30m"),
    )))
    .await;

    with_browsers(async |browsers| {
        let b = browsers.open_in("Europe/Berlin").await;
        b.goto(&site.url("/c/soon/join")).await;
        b.fill("#name", "Ada").await;
        b.submit("form[action='/c/soon/join'] button[type=submit]")
            .await;
        b.fill("#s-name", "ada-sandbox").await;
        b.submit("form[action='/connect/sandbox'] button[type=submit]")
            .await;
        b.submit("#confirm-button").await;
        let joined = b.text("#joined-summary").await;
        b.goto(&site.url("/me")).await;
        let before = b.texts("#pledge-soon tr.scheduled").await;
        let read_before_at = Utc::now();
        // The strike begins a few seconds from now; the page shows the post once sent.
        let published = eventually(
            Duration::from_secs(60),
            "the notice shown as published on /me",
            async || {
                b.goto(&site.url("/me")).await;
                let published = b.texts("#pledge-soon tr.published").await;
                (!published.is_empty()).then_some(published)
            },
        )
        .await;
        let sent = site.sandbox().posts();

        assert!(
            joined.contains("1 post(s) planned from 1 account(s)"),
            "{joined}"
        );
        assert!(
            read_before_at < start,
            "joining took until {read_before_at}, past the start at {start}"
        );
        assert_eq!(before.len(), 1, "scheduled before the start: {before:?}");
        assert_eq!(published.len(), 1, "published after it: {published:?}");
        assert_eq!(sent.len(), 1, "sent once: {sent:?}");
        assert!(sent[0].text.contains("#TestStrike"), "{sent:?}");
        assert!(
            sent[0].received_at >= start,
            "not before the strike began: {sent:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn the_admin_area_shows_only_its_sign_in_form_until_the_organiser_signs_in() {
    let site = TestApp::spawn(one_campaign(&participant_campaign(ID, in_days(30)))).await;
    let signed = site
        .post_json(
            &format!("/api/v1/campaigns/{ID}/signatures"),
            &json!({"name": "Ada Admin", "email": "ada.admin-browser@example.org", "email_consent": true}),
        )
        .await
        .status();
    assert_eq!(signed, reqwest::StatusCode::CREATED);
    picket::admin::set_secret(
        site.store.as_ref(),
        "correct horse battery staple",
        Utc::now(),
    )
    .await
    .unwrap();

    with_browsers(async |browsers| {
        let organiser = browsers.open().await;
        organiser.goto(&site.url("/admin")).await;
        let landed_on = organiser.url().await;
        let before = organiser.client.source().await.unwrap();
        organiser
            .fill("#admin-secret", "correct horse battery staple")
            .await;
        organiser.submit("#admin-sign-in").await;
        let after = organiser.url().await;
        let signatures = organiser.text(&format!("#campaign-{ID} .signatures")).await;
        let title = organiser.text(&format!("#campaign-{ID} h2")).await;

        assert_eq!(landed_on, site.url("/admin/sign-in"));
        assert!(
            before.contains("admin-secret"),
            "the sign-in form: {before}"
        );
        for data in ["Browser Strike", "ada.admin-browser", "Ada Admin"] {
            assert!(!before.contains(data), "{data} before signing in: {before}");
        }
        assert_eq!(after, site.url("/admin"));
        assert_eq!(signatures, "1");
        assert!(title.starts_with("Browser Strike"), "{title}");
    })
    .await;
}
