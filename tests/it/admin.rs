//! The organiser area `/admin` over HTTP, and `picket admin` / `picket export` against a
//! real database: every route refused without a session (the routes are read from the
//! router's own source, so a new one cannot be forgotten), sign-in (wrong secret, budget,
//! CSRF, cookie), the figures, the exports (consent, CSV injection), and no public page or
//! API answer showing a signer's address.

use std::io::Write;
use std::process::Stdio;

use chrono::Utc;
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_DISPOSITION, COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::support::{BUNDLED, Options, TestApp};

const SECRET: &str = "correct horse battery staple";
/// A signer whose address no page outside `/admin` may show.
const ADDRESS: &str = "ada.lovelace.admin-test@example.org";

/// The routes `web::admin::routes` declares, with their methods, read from its source.
fn admin_routes() -> Vec<(String, Vec<&'static str>)> {
    let source = include_str!("../../src/web/admin.rs");
    let mut routes = Vec::new();
    for part in source.split(".route(").skip(1) {
        let declaration = part.split(".route(").next().unwrap();
        let declaration = declaration.split(".layer(").next().unwrap();
        let path = declaration.split('"').nth(1).unwrap().to_string();
        let methods: Vec<&str> = ["get", "post", "put", "patch", "delete"]
            .into_iter()
            .filter(|m| {
                declaration.contains(&format!("{m}(")) || declaration.contains(&format!(".{m}("))
            })
            .collect();
        assert!(!methods.is_empty(), "no method read for {path}");
        routes.push((path, methods));
    }
    routes
}

fn concrete(path: &str) -> String {
    path.replace("{id}", BUNDLED)
        .replace("{kind}", "signatures")
        .replace("{format}", "csv")
}

async fn with_secret(app: &TestApp) {
    picket::admin::set_secret(app.store.as_ref(), SECRET, Utc::now())
        .await
        .unwrap();
}

/// A signer with an address who consented to mail from the organisers and is listed.
async fn consenting_signer(app: &TestApp) {
    let answer = app
        .api_sign(json!({"name": "Ada Lovelace", "email": ADDRESS, "public": true, "email_consent": true}))
        .await;
    assert_eq!(answer.status(), StatusCode::CREATED);
}

/// Post the sign-in form with a fresh CSRF cookie and token; the answer.
async fn sign_in(app: &TestApp, secret: &str) -> reqwest::Response {
    let (cookie, token) = app.form_token("/admin/sign-in").await;
    app.http
        .post(app.url("/admin/sign-in"))
        .header(COOKIE, cookie)
        .form(&[("csrf", token.as_str()), ("secret", secret)])
        .send()
        .await
        .unwrap()
}

/// Sign in with the right secret; the `Cookie` header value that carries the session.
async fn session(app: &TestApp) -> String {
    let answer = sign_in(app, SECRET).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let set = answer.headers()[SET_COOKIE].to_str().unwrap().to_string();
    set.split(';').next().unwrap().to_string()
}

async fn get_with(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    app.http
        .get(app.url(path))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
}

#[test]
fn the_admin_routes_are_read_from_the_router() {
    let routes = admin_routes();
    let paths: Vec<&str> = routes.iter().map(|(p, _)| p.as_str()).collect();
    assert!(paths.contains(&"/admin"), "{paths:?}");
    assert!(paths.contains(&"/admin/sign-in"), "{paths:?}");
    assert!(
        paths.iter().all(|p| p.starts_with("/admin")),
        "every route of the area is under /admin: {paths:?}"
    );
    let sign_in = &routes
        .iter()
        .find(|(p, _)| p == "/admin/sign-in")
        .unwrap()
        .1;
    assert_eq!(sign_in, &["get", "post"]);
}

#[tokio::test]
async fn every_admin_route_refuses_a_visitor_without_a_session() {
    // Arrange: data that must not leak, and a forged session cookie of the right shape.
    let app = TestApp::spawn(Options::default()).await;
    with_secret(&app).await;
    consenting_signer(&app).await;
    let forged = format!("picket_admin={}", "ab".repeat(32));
    let (csrf_cookie, token) = app.form_token("/admin/sign-in").await;

    for (path, methods) in admin_routes() {
        let url = app.url(&concrete(&path));
        for method in methods {
            for cookie in [csrf_cookie.clone(), format!("{csrf_cookie}; {forged}")] {
                // Act
                let request = match method {
                    "get" => app.http.get(&url),
                    "post" => app
                        .http
                        .post(&url)
                        .form(&[("csrf", token.as_str()), ("secret", "guess")]),
                    other => panic!("no request made for {other}"),
                };
                let answer = request.header(COOKIE, &cookie).send().await.unwrap();
                let status = answer.status();
                let location = answer
                    .headers()
                    .get(LOCATION)
                    .map(|l| l.to_str().unwrap().to_string());
                let signs_in = answer
                    .headers()
                    .get(SET_COOKIE)
                    .is_some_and(|c| c.to_str().unwrap().starts_with("picket_admin="));
                let body = answer.text().await.unwrap();

                // Assert
                let what = format!("{method} {path} with {cookie}");
                assert!(!signs_in, "{what}: a session was handed out");
                assert!(!body.contains(ADDRESS), "{what}: {body}");
                assert!(!body.contains("Ada Lovelace"), "{what}: {body}");
                if path == "/admin/sign-in" {
                    let expected = if method == "get" {
                        StatusCode::OK
                    } else {
                        StatusCode::UNAUTHORIZED
                    };
                    assert_eq!(status, expected, "{what}");
                    assert!(body.contains("name=\"secret\""), "{what}: the form");
                } else {
                    assert_eq!(status, StatusCode::SEE_OTHER, "{what}: {body}");
                    assert_eq!(location.as_deref(), Some("/admin/sign-in"), "{what}");
                }
            }
        }
    }
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_then_every_try_is_held_back() {
    // Arrange
    let app = TestApp::spawn(Options::default()).await;
    with_secret(&app).await;

    // Act
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(sign_in(&app, "not the secret at all").await.status());
    }
    let sixth = sign_in(&app, "not the secret at all").await;
    let sixth_set_cookie = sixth.headers().get(SET_COOKIE).is_some();
    let sixth_status = sixth.status();
    let right_but_too_late = sign_in(&app, SECRET).await.status();

    // Assert
    assert_eq!(statuses, [StatusCode::UNAUTHORIZED; 5]);
    assert_eq!(sixth_status, StatusCode::TOO_MANY_REQUESTS);
    assert!(!sixth_set_cookie);
    assert_eq!(
        right_but_too_late,
        StatusCode::TOO_MANY_REQUESTS,
        "once the budget is spent even the right secret waits"
    );
}

#[tokio::test]
async fn signing_in_needs_the_form_this_site_served() {
    // Arrange
    let app = TestApp::spawn(Options::default()).await;
    with_secret(&app).await;
    let (cookie, _) = app.form_token("/admin/sign-in").await;

    // Act: the right secret, without the token, then with another token.
    let mut answers = Vec::new();
    for token in [None, Some("0".repeat(48))] {
        let mut form = vec![("secret", SECRET.to_string())];
        if let Some(t) = token {
            form.push(("csrf", t));
        }
        answers.push(
            app.http
                .post(app.url("/admin/sign-in"))
                .header(COOKIE, &cookie)
                .form(&form)
                .send()
                .await
                .unwrap(),
        );
    }

    // Assert
    for answer in answers {
        assert_eq!(answer.status(), StatusCode::FORBIDDEN);
        assert!(
            answer
                .headers()
                .get_all(SET_COOKIE)
                .iter()
                .all(|c| !c.to_str().unwrap().starts_with("picket_admin="))
        );
    }
}

#[tokio::test]
async fn a_signed_in_organiser_sees_the_figures_and_signing_out_ends_the_session() {
    // Arrange
    let app = TestApp::spawn(Options::default()).await;
    with_secret(&app).await;
    consenting_signer(&app).await;
    app.api_sign(json!({"name": "Bo"})).await;

    // Act
    let answer = sign_in(&app, SECRET).await;
    let set = answer.headers()[SET_COOKIE].to_str().unwrap().to_string();
    let cookie = set.split(';').next().unwrap().to_string();
    let area = get_with(&app, "/admin", &cookie).await;
    let cache = area.headers()[CACHE_CONTROL].to_str().unwrap().to_string();
    let page = area.text().await.unwrap();
    let stats = app.stats(BUNDLED).await;
    let (csrf_cookie, token) = app.form_token("/admin/sign-in").await;
    let out = app
        .http
        .post(app.url("/admin/sign-out"))
        .header(COOKIE, format!("{csrf_cookie}; {cookie}"))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap()
        .status();
    let after = get_with(&app, "/admin", &cookie).await;

    // Assert
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()[LOCATION], "/admin");
    for attribute in ["Path=/admin", "HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    assert_eq!(cache, "no-store");
    assert_eq!(stats["signatures"], 2);
    assert!(
        page.contains(&format!(
            "<td class=\"signatures\">{}</td>",
            stats["signatures"]
        )),
        "{page}"
    );
    assert!(
        page.contains("No tipping point"),
        "the bundled campaign has none: {page}"
    );
    assert!(page.contains("Not cancelled."), "{page}");
    assert!(
        !page.contains(ADDRESS),
        "the area shows figures, not addresses"
    );
    assert_eq!(out, StatusCode::SEE_OTHER);
    assert_eq!(after.status(), StatusCode::SEE_OTHER, "signed out");
}

#[tokio::test]
async fn exports_give_addresses_only_of_consenting_signers_and_defuse_formulas() {
    // Arrange: consent through the API, through the form, and none.
    let app = TestApp::spawn(Options::default()).await;
    with_secret(&app).await;
    consenting_signer(&app).await;
    app.api_sign(json!({"name": "=HYPERLINK(\"http://evil.example\")", "email": "bo@example.org"}))
        .await;
    let form = app
        .sign_form(&[
            ("name", "@Cy"),
            ("email", "cy@example.org"),
            ("may_email", "on"),
        ])
        .await;
    assert!(form.status().is_success(), "{}", form.status());
    app.sign_form(&[("name", "+Di"), ("email", "di@example.org")])
        .await;
    let cookie = session(&app).await;

    // Act
    let csv = get_with(
        &app,
        &format!("/admin/c/{BUNDLED}/export/signatures/csv"),
        &cookie,
    )
    .await;
    let disposition = csv.headers()[CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .to_string();
    let cache = csv.headers()[CACHE_CONTROL].to_str().unwrap().to_string();
    let csv = csv.text().await.unwrap();
    let json: serde_json::Value = get_with(
        &app,
        &format!("/admin/c/{BUNDLED}/export/signatures/json"),
        &cookie,
    )
    .await
    .json()
    .await
    .unwrap();
    let posts = get_with(
        &app,
        &format!("/admin/c/{BUNDLED}/export/posts/csv"),
        &cookie,
    )
    .await
    .text()
    .await
    .unwrap();

    // Assert
    assert_eq!(
        disposition,
        format!("attachment; filename=\"{BUNDLED}-signatures.csv\"")
    );
    assert_eq!(cache, "no-store");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<(String, String)> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[1].to_string(), r[2].to_string())
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("Ada Lovelace".to_string(), ADDRESS.to_string()),
            (
                "'=HYPERLINK(\"http://evil.example\")".to_string(),
                String::new()
            ),
            ("'@Cy".to_string(), "cy@example.org".to_string()),
            ("'+Di".to_string(), String::new()),
        ]
    );
    assert!(!csv.contains("bo@example.org") && !csv.contains("di@example.org"));
    let emails: Vec<&serde_json::Value> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["email"])
        .collect();
    assert_eq!(
        emails,
        [
            &json!(ADDRESS),
            &json!(null),
            &json!("cy@example.org"),
            &json!(null)
        ]
    );
    assert!(
        posts.starts_with("campaign,network,account_id,post,slot,slot_at,published_at,link,state"),
        "{posts}"
    );
}

#[tokio::test]
async fn no_page_outside_admin_shows_a_signers_address() {
    // Arrange: a listed signer who consented, so every place that could show them does.
    let app = TestApp::spawn(Options::default()).await;
    let answer = app
        .api_sign(json!({"name": "Ada Lovelace", "email": ADDRESS, "public": true, "email_consent": true}))
        .await
        .text()
        .await
        .unwrap();
    let form = app
        .sign_form(&[
            ("name", "Bo"),
            ("email", "bo.admin-test@example.org"),
            ("public", "on"),
            ("may_email", "on"),
        ])
        .await
        .text()
        .await
        .unwrap();
    let paths = [
        "/".to_string(),
        format!("/c/{BUNDLED}"),
        format!("/c/{BUNDLED}/signatures"),
        format!("/c/{BUNDLED}/declaration"),
        format!("/c/{BUNDLED}/badge.svg"),
        format!("/c/{BUNDLED}/card.txt"),
        "/widget.js".to_string(),
        "/metrics".to_string(),
        "/api/v1/campaigns".to_string(),
        format!("/api/v1/campaigns/{BUNDLED}"),
        format!("/api/v1/campaigns/{BUNDLED}/stats"),
        "/admin".to_string(),
        "/admin/sign-in".to_string(),
    ];

    // Act
    let mut pages = vec![
        ("the API's answer".to_string(), answer),
        ("the form's answer".to_string(), form),
    ];
    for path in paths {
        pages.push((path.clone(), app.get(&path).await.text().await.unwrap()));
    }

    // Assert: the listed names are there, their addresses nowhere.
    assert!(pages[4].1.contains("Ada Lovelace"), "the signer is listed");
    for (path, body) in &pages {
        for address in [ADDRESS, "bo.admin-test@example.org"] {
            assert!(!body.contains(address), "{path} shows {address}");
            let local = address.split('@').next().unwrap();
            assert!(!body.contains(local), "{path} shows part of {address}");
        }
    }
}

/// `picket admin` with its output; `stdin` is written to the command.
fn picket_admin(
    install: &crate::support::Installation,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    let mut child = install
        .command()
        .arg("admin")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn picket_admin_sets_the_secret_and_picket_export_prints_what_admin_downloads() {
    // Arrange: a real installation, its SQLite file, the real binary.
    let install = Options::default().install();

    // Act
    let short = picket_admin(&install, &["--password-stdin"], "too short\n");
    let token = picket_admin(&install, &[], "");
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    let app = install.serve().await;
    consenting_signer(&app).await;
    app.api_sign(json!({"name": "-Bo", "email": "bo@example.org"}))
        .await;
    let answer = sign_in(&app, &token).await;
    let cookie = answer.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let mut downloads = Vec::new();
    let mut printed = Vec::new();
    for (what, format) in [
        ("signatures", "csv"),
        ("signatures", "json"),
        ("posts", "csv"),
        ("posts", "json"),
    ] {
        downloads.push(
            get_with(
                &app,
                &format!("/admin/c/{BUNDLED}/export/{what}/{format}"),
                &cookie,
            )
            .await
            .bytes()
            .await
            .unwrap()
            .to_vec(),
        );
        printed.push(
            install
                .run(&["export", what, BUNDLED, "--format", format])
                .stdout,
        );
    }
    let password = picket_admin(&install, &["--password-stdin"], &format!("{SECRET}\n"));
    let old_session = get_with(&app, "/admin", &cookie).await.status();
    let old_token = sign_in(&app, &token).await.status();
    let password_signs_in = sign_in(&app, SECRET).await.status();

    // Assert
    assert_eq!(short.status.code(), Some(2), "a short password is refused");
    assert_eq!(token.len(), 64, "{token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(answer.status(), StatusCode::SEE_OTHER, "the token signs in");
    assert_eq!(printed, downloads, "the CLI prints what /admin downloads");
    let csv = String::from_utf8(printed[0].clone()).unwrap();
    assert!(csv.contains(ADDRESS), "{csv}");
    assert!(csv.contains("'-Bo"), "{csv}");
    assert!(!csv.contains("bo@example.org"), "{csv}");
    assert!(password.status.success());
    assert!(!String::from_utf8_lossy(&password.stdout).contains(SECRET));
    assert_eq!(
        old_session,
        StatusCode::SEE_OTHER,
        "a new secret signs everyone out"
    );
    assert_eq!(old_token, StatusCode::UNAUTHORIZED);
    assert_eq!(password_signs_in, StatusCode::SEE_OTHER);
}
