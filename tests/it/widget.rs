//! The embeddable strike widget: `GET /widget.js` as a blogger's page loads it, and
//! `picket widget export` as a blogger without a picket host runs it. What the script shows
//! in a browser is tested in Chromium (browser tests); here: what is served and written.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output};

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};

use crate::support::{BUNDLED as ID, Options, TestApp, bundled_dir};

/// The harness's default public URL, the only host the served widget may name.
const PUBLIC_URL: &str = "https://picket.test";

/// The configuration the server inlined into the script.
fn inlined_config(js: &str) -> serde_json::Value {
    let json = js
        .split("var CONFIG = ")
        .nth(1)
        .and_then(|rest| rest.split(";\n").next())
        .expect("the script has its configuration");
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// Every `scheme://...` in a text, as far as a delimiter.
fn absolute_urls(text: &str) -> Vec<String> {
    text.match_indices("://")
        .map(|(i, _)| {
            let start = text[..i]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
                .map_or(0, |p| p + 1);
            let end = text[i..]
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
                .map_or(text.len(), |p| i + p);
            text[start..end].to_string()
        })
        .collect()
}

fn gzipped_len(body: &[u8]) -> usize {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body).unwrap();
    gz.finish().unwrap().len()
}

#[tokio::test]
async fn the_widget_is_served_as_javascript_that_caches_may_keep() {
    let app = TestApp::spawn(Options::default()).await;

    let res = app.get("/widget.js").await;

    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    let cache = res.headers()[CACHE_CONTROL].to_str().unwrap();
    assert!(cache.contains("max-age="), "{cache}");
    assert!(res.headers().contains_key(ETAG));
    let js = res.text().await.unwrap();
    assert!(js.is_ascii(), "served as plain ASCII");
    let config = inlined_config(&js);
    assert_eq!(config["campaigns"][0]["id"], ID);
    assert_eq!(config["snapshot"], false);
}

#[tokio::test]
async fn the_widget_is_at_most_15_kb_gzipped() {
    let app = TestApp::spawn(Options::default()).await;

    let body = app.get("/widget.js").await.bytes().await.unwrap();

    let size = gzipped_len(&body);
    assert!(size <= 15 * 1024, "{size} bytes gzipped");
}

#[tokio::test]
async fn the_widget_names_no_host_but_the_public_url_and_makes_no_request() {
    let app = TestApp::spawn(Options::default()).await;

    let js = app.get("/widget.js").await.text().await.unwrap();

    let urls = absolute_urls(&js);
    assert!(!urls.is_empty(), "the sign and join links are absolute");
    for url in &urls {
        assert!(url.starts_with(&format!("{PUBLIC_URL}/")), "{url}");
    }
    for call in [
        "fetch(",
        "XMLHttpRequest",
        "sendBeacon",
        "WebSocket",
        "import(",
    ] {
        assert!(!js.contains(call), "the script must not call {call}");
    }
}

#[tokio::test]
async fn the_requested_campaign_is_inlined_with_its_days_links_and_counters() {
    let app = TestApp::spawn(Options::default()).await;
    let signed = app
        .api_sign(serde_json::json!({"name": "Ada", "email": "ada@example.org"}))
        .await;
    assert_eq!(signed.status(), StatusCode::CREATED);

    let js = app
        .get(&format!("/widget.js?campaign={ID}"))
        .await
        .text()
        .await
        .unwrap();

    let config = inlined_config(&js);
    let campaigns = config["campaigns"].as_array().unwrap();
    assert_eq!(campaigns.len(), 1);
    let c = &campaigns[0];
    assert_eq!(c["id"], ID);
    assert_eq!(c["hashtag"], "SocialMediaStrike");
    assert_eq!(c["mode"], "local", "days follow the visitor's own zone");
    assert_eq!(c["days"], serde_json::json!(["2027-07-04", "2027-07-05"]));
    assert_eq!(c["sign_url"], format!("{PUBLIC_URL}/c/{ID}#sign"));
    assert_eq!(c["join_url"], format!("{PUBLIC_URL}/c/{ID}/join"));
    assert_eq!(c["counters"]["signatures"], 1);
    assert_eq!(c["counters"]["strikers"], 0);
}

#[tokio::test]
async fn an_unknown_campaign_is_a_404() {
    let app = TestApp::spawn(Options::default()).await;

    let res = app.get("/widget.js?campaign=no-such-strike").await;

    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.text().await.unwrap().contains("no-such-strike"));
}

#[tokio::test]
async fn a_cache_holding_the_current_script_is_told_it_has_not_changed() {
    let app = TestApp::spawn(Options::default()).await;
    let first = app.get("/widget.js").await;
    let etag = first.headers()[ETAG].clone();

    let again = app
        .http
        .get(app.url("/widget.js"))
        .header(IF_NONE_MATCH, etag.clone())
        .send()
        .await
        .unwrap();
    app.api_sign(serde_json::json!({"name": "Grace"})).await;
    let after_signing = app
        .http
        .get(app.url("/widget.js"))
        .header(IF_NONE_MATCH, etag)
        .send()
        .await
        .unwrap();

    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(
        after_signing.status(),
        StatusCode::OK,
        "a new count is a new script"
    );
}

fn picket(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_picket"))
        .current_dir(dir)
        .args(args)
        .env("PICKET_LOG", "warn")
        .env_remove("PICKET_DATABASE_URL")
        .env_remove("PICKET_CAMPAIGNS")
        .env_remove("PICKET_CONFIG")
        .env_remove("PICKET_PUBLIC_URL")
        .output()
        .expect("picket runs")
}

#[test]
fn widget_export_writes_a_static_copy_that_names_only_its_own_host() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("picket.db").display());
    let campaigns = bundled_dir();

    let out = picket(
        dir.path(),
        &[
            "widget",
            "export",
            "site/strike",
            "--campaigns",
            campaigns.to_str().unwrap(),
            "--database-url",
            &db,
            "--public-url",
            "https://strike.example.org",
        ],
    );

    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let site = dir.path().join("site/strike");
    let js = std::fs::read_to_string(site.join("widget.js")).unwrap();
    let json = std::fs::read_to_string(site.join("widget.json")).unwrap();
    let page = std::fs::read_to_string(site.join("embed.html")).unwrap();
    let config = inlined_config(&js);
    assert_eq!(config["snapshot"], true);
    assert_eq!(config["campaigns"][0]["id"], ID);
    assert_eq!(config["campaigns"][0]["counters"]["signatures"], 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json).unwrap(),
        config,
        "the JSON snapshot is what the script holds"
    );
    assert!(
        page.contains(&format!(
            r#"<script src="widget.js" data-campaign="{ID}" async></script>"#
        )),
        "{page}"
    );
    assert!(gzipped_len(js.as_bytes()) <= 15 * 1024);
    for text in [&js, &json, &page] {
        for url in absolute_urls(text) {
            assert!(url.starts_with("https://strike.example.org/"), "{url}");
        }
    }
}

#[test]
fn widget_export_without_counters_leaves_them_out_and_opens_no_database() {
    let dir = tempfile::tempdir().unwrap();
    let campaigns = bundled_dir();

    let out = picket(
        dir.path(),
        &[
            "widget",
            "export",
            "out",
            "--campaigns",
            campaigns.to_str().unwrap(),
            "--public-url",
            "https://strike.example.org",
            "--no-counters",
        ],
    );

    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let js = std::fs::read_to_string(dir.path().join("out/widget.js")).unwrap();
    assert!(inlined_config(&js)["campaigns"][0]["counters"].is_null());
    assert!(!dir.path().join("picket.db").exists());
}

#[test]
fn widget_export_of_an_unknown_campaign_or_a_bad_address_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let campaigns = bundled_dir();
    let export = |extra: &[&str]| {
        let mut args = vec![
            "widget",
            "export",
            "out",
            "--no-counters",
            "--campaigns",
            campaigns.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        picket(dir.path(), &args)
    };

    let unknown = export(&["--campaign", "no-such-strike"]);
    let bad_url = export(&["--public-url", "strike.example.org"]);

    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no-such-strike"));
    assert_eq!(bad_url.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_url.stderr).contains("http(s)"));
    assert!(!dir.path().join("out").exists());
}
