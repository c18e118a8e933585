//! The web side through HTTP, against the same `Application` `picket serve` runs, on port 0:
//! every route and its error paths.

use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};

use crate::support::{BUNDLED as ID, Options, TestApp};

#[tokio::test]
async fn the_index_and_campaign_pages_show_the_campaign() {
    let app = TestApp::spawn(Options::default()).await;
    let index = app
        .http
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(index.contains(&format!("/c/{ID}")), "{index}");
    let page = app
        .http
        .get(app.url(&format!("/c/{ID}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let cookie = page.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Secure"),
        "{cookie}"
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Declaration of Digital Independence"),
        "the declaration is rendered"
    );
    assert!(html.contains("#SocialMediaStrike"));
}

#[tokio::test]
async fn an_unknown_campaign_is_a_404_page_and_a_404_json_error() {
    let app = TestApp::spawn(Options::default()).await;
    let page = app.http.get(app.url("/c/nope")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    let api = app
        .http
        .get(app.url("/api/v1/campaigns/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = api.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("nope"));
}

#[tokio::test]
async fn signing_the_form_counts_once_per_person_and_gives_an_invitation_link() {
    let app = TestApp::spawn(Options::default()).await;

    let first = app
        .sign_form(&[
            ("name", "Ada"),
            ("email", "Ada.Lovelace@Gmail.com"),
            ("public", "on"),
        ])
        .await;
    let again = app
        .sign_form(&[
            ("name", "Ada L."),
            ("email", "adalovelace+strike@gmail.com"),
        ])
        .await;

    assert_eq!(first.status(), StatusCode::OK);
    // Tera escapes '/' in attributes as &#x2F;, which browsers read back as '/'.
    let html = first.text().await.unwrap().replace("&#x2F;", "/");
    assert!(html.contains("https://picket.test/i/"), "{html}");
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(app.stats(ID).await["signatures"], 1);
}

#[tokio::test]
async fn a_form_without_a_valid_csrf_token_is_refused_with_a_message() {
    let app = TestApp::spawn(Options::default()).await;
    let (cookie, _) = app.form_token(&format!("/c/{ID}")).await;

    let no_cookie = app
        .http
        .post(app.url(&format!("/c/{ID}/sign")))
        .form(&[("name", "Eve"), ("consent", "on"), ("csrf", "x")])
        .send()
        .await
        .unwrap();
    let wrong = app
        .http
        .post(app.url(&format!("/c/{ID}/sign")))
        .header(COOKIE, cookie)
        .form(&[
            ("name", "Eve"),
            ("consent", "on"),
            ("csrf", "not-the-token"),
        ])
        .send()
        .await
        .unwrap();

    assert_eq!(no_cookie.status(), StatusCode::FORBIDDEN);
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert!(wrong.text().await.unwrap().contains("sign again"));
    assert_eq!(app.stats(ID).await["signatures"], 0);
}

#[tokio::test]
async fn bad_form_input_gets_a_4xx_with_a_message_and_keeps_what_was_typed() {
    let app = TestApp::spawn(Options::default()).await;

    let no_name = app
        .sign_form(&[("name", "  "), ("email", "x@example.org")])
        .await;
    let bad_email = app
        .sign_form(&[("name", "Bob"), ("email", "bob-at-example")])
        .await;

    assert_eq!(no_name.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(no_name.text().await.unwrap().contains("Please give a name"));
    assert_eq!(bad_email.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = bad_email.text().await.unwrap();
    assert!(
        html.contains("does not look like an e-mail address") && html.contains("value=\"Bob\""),
        "{html}"
    );
}

#[tokio::test]
async fn an_oversized_or_undecodable_body_is_a_4xx_never_a_500() {
    let app = TestApp::spawn(Options::default()).await;
    let (cookie, _) = app.form_token(&format!("/c/{ID}")).await;
    let url = app.url(&format!("/c/{ID}/sign"));

    let huge = app
        .http
        .post(&url)
        .header(COOKIE, &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("name={}", "a".repeat(200_000)))
        .send()
        .await
        .unwrap();
    let not_utf8 = app
        .http
        .post(&url)
        .header(COOKIE, &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'n', b'a', b'm', b'e', b'=', 0xff, 0xfe, 0xfd])
        .send()
        .await
        .unwrap();
    let api_garbage = app
        .http
        .post(app.url(&format!("/api/v1/campaigns/{ID}/signatures")))
        .header("content-type", "application/json")
        .body(vec![0xff, b'{'])
        .send()
        .await
        .unwrap();

    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(not_utf8.status().is_client_error(), "{}", not_utf8.status());
    assert_eq!(api_garbage.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn names_with_markup_and_sql_are_stored_verbatim_and_shown_escaped() {
    let app = TestApp::spawn(Options::default()).await;
    let evil = "<script>alert('x')</script> Robert'); DROP TABLE signatures;--";

    let signed = app.sign_form(&[("name", evil), ("public", "on")]).await;
    let list = app
        .http
        .get(app.url(&format!("/c/{ID}/signatures")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    assert_eq!(signed.status(), StatusCode::OK);
    assert!(!list.contains("<script>alert"), "{list}");
    assert!(
        list.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2F;script&gt;")
            || list.contains("&lt;script&gt;"),
        "{list}"
    );
    assert!(list.contains("DROP TABLE signatures;--"));
    assert_eq!(
        app.stats(ID).await["signatures"],
        1,
        "the table is still there"
    );
}

#[tokio::test]
async fn a_filled_honeypot_is_thanked_but_not_counted() {
    let app = TestApp::spawn(Options::default()).await;
    let bot = app
        .sign_form(&[("name", "Bot"), ("website", "http://spam.example")])
        .await;
    assert_eq!(bot.status(), StatusCode::OK);
    assert_eq!(app.stats(ID).await["signatures"], 0);
}

#[tokio::test]
async fn the_json_api_signs_with_201_repeats_with_200_and_refuses_with_422() {
    let app = TestApp::spawn(Options::default()).await;

    let created = app
        .api_sign(serde_json::json!({"name": "Cy", "email": "cy@example.org", "public": true}))
        .await;
    let repeat = app
        .api_sign(serde_json::json!({"name": "Cy", "email": "CY@example.org"}))
        .await;
    let invalid = app
        .api_sign(serde_json::json!({"name": "", "email": "cy@example.org"}))
        .await;
    let wrong_shape = app.api_sign(serde_json::json!({"nom": "Cy"})).await;

    assert_eq!(created.status(), StatusCode::CREATED);
    let body: serde_json::Value = created.json().await.unwrap();
    assert!(
        body["invite_link"]
            .as_str()
            .unwrap()
            .starts_with("https://picket.test/i/")
    );
    assert_eq!(repeat.status(), StatusCode::OK);
    assert_eq!(
        repeat.json::<serde_json::Value>().await.unwrap()["duplicate"],
        true
    );
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        invalid.json::<serde_json::Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("name")
    );
    assert_eq!(wrong_shape.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.stats(ID).await["signatures"], 1);
}

#[tokio::test]
async fn an_invitation_link_records_who_invited_the_next_signer() {
    let app = TestApp::spawn(Options::default()).await;
    let inviter: serde_json::Value = app
        .api_sign(serde_json::json!({"name": "Di"}))
        .await
        .json()
        .await
        .unwrap();
    let code = inviter["invite_link"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();

    let landing = app
        .http
        .get(app.url(&format!("/i/{code}")))
        .send()
        .await
        .unwrap();
    let unknown = app
        .http
        .get(app.url("/i/doesnotexist"))
        .send()
        .await
        .unwrap();
    app.api_sign(serde_json::json!({"name": "Ed", "ref": code}))
        .await;

    assert!(landing.status().is_redirection());
    assert_eq!(landing.headers()["location"], format!("/c/{ID}?ref={code}"));
    assert!(
        landing.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .starts_with("picket_ref=")
    );
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.stats(ID).await["invitations"], 1);
}

#[tokio::test]
async fn stats_badge_and_metrics_report_the_counts() {
    let app = TestApp::spawn(Options::default()).await;
    app.api_sign(serde_json::json!({"name": "Fay"})).await;

    let stats = app.stats(ID).await;
    let badge = app
        .http
        .get(app.url(&format!("/c/{ID}/badge.svg")))
        .send()
        .await
        .unwrap();
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let list: serde_json::Value = app
        .http
        .get(app.url("/api/v1/campaigns"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    for key in [
        "signatures",
        "strikers",
        "accounts_by_network",
        "posts",
        "invitations",
    ] {
        assert!(stats.get(key).is_some(), "stats lacks {key}: {stats}");
    }
    assert_eq!(badge.headers()["content-type"], "image/svg+xml");
    assert!(badge.text().await.unwrap().contains("1 signed"));
    assert!(
        metrics.contains(&format!("picket_signatures{{campaign=\"{ID}\"}} 1")),
        "{metrics}"
    );
    assert_eq!(list[0]["id"], ID);
}

#[tokio::test]
async fn signing_too_fast_from_one_address_is_refused_with_429() {
    let app = TestApp::spawn(Options::default().config("rate_limits = true")).await;
    let mut statuses = Vec::new();
    for i in 0..7 {
        statuses.push(
            app.api_sign(serde_json::json!({"name": format!("P{i}")}))
                .await
                .status(),
        );
    }
    assert!(statuses[..5].iter().all(|s| s.is_success()), "{statuses:?}");
    assert_eq!(statuses[6], StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_api_can_be_called_from_a_page_on_another_site() {
    let app = TestApp::spawn(Options::default()).await;
    let preflight = app
        .http
        .request(
            reqwest::Method::OPTIONS,
            app.url(&format!("/api/v1/campaigns/{ID}/signatures")),
        )
        .header("origin", "https://blog.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn the_openapi_document_describes_every_api_route_and_its_shapes() {
    let app = TestApp::spawn(Options::default()).await;
    let doc: serde_json::Value = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/campaigns",
        "/api/v1/campaigns/{id}",
        "/api/v1/campaigns/{id}/signatures",
        "/api/v1/campaigns/{id}/stats",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    // The documented required fields are what the API really answers.
    let stats = app.stats(ID).await;
    for field in doc["components"]["schemas"]["Stats"]["required"]
        .as_array()
        .unwrap()
    {
        assert!(
            stats.get(field.as_str().unwrap()).is_some(),
            "stats lacks documented {field}"
        );
    }
    let signed: serde_json::Value = app
        .api_sign(serde_json::json!({"name": "Ada"}))
        .await
        .json()
        .await
        .unwrap();
    for field in doc["components"]["schemas"]["SignatureAnswer"]["required"]
        .as_array()
        .unwrap()
    {
        assert!(
            signed.get(field.as_str().unwrap()).is_some(),
            "the signing answer lacks documented {field}"
        );
    }
    let one: serde_json::Value = app
        .http
        .get(app.url(&format!("/api/v1/campaigns/{ID}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for field in doc["components"]["schemas"]["Campaign"]["allOf"][1]["properties"]
        .as_object()
        .unwrap()
        .keys()
    {
        assert!(
            one.get(field).is_some(),
            "campaign lacks documented {field}"
        );
    }
    let list: serde_json::Value = app
        .http
        .get(app.url("/api/v1/campaigns"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for field in doc["components"]["schemas"]["CampaignSummary"]["required"]
        .as_array()
        .unwrap()
    {
        assert!(
            list[0].get(field.as_str().unwrap()).is_some(),
            "campaigns lack documented {field}"
        );
    }
}

#[tokio::test]
async fn the_declaration_is_served_raw_with_its_content_hash_for_other_hosts() {
    use sha2::Digest;
    let app = TestApp::spawn(Options::default()).await;

    // Act
    let raw = app
        .http
        .get(app.url(&format!("/c/{ID}/declaration.md")))
        .send()
        .await
        .unwrap();

    // Assert: the hash in the headers is the SHA-256 of the bytes served.
    assert_eq!(raw.status(), StatusCode::OK);
    assert!(
        raw.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/markdown")
    );
    let sum = raw.headers()["x-content-sha256"]
        .to_str()
        .unwrap()
        .to_string();
    let etag = raw.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(etag, format!("\"{sum}\""));
    let body = raw.bytes().await.unwrap();
    assert_eq!(hex::encode(sha2::Sha256::digest(&body)), sum);
    assert!(String::from_utf8_lossy(&body).starts_with("# Declaration of Digital Independence"));

    // The same hash is in the JSON API, and a cached copy is not sent again.
    let api: serde_json::Value = app
        .http
        .get(app.url(&format!("/api/v1/campaigns/{ID}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api["declaration_sha256"], sum.as_str());
    assert!(api["declaration_origin"].is_null());
    let again = app
        .http
        .get(app.url(&format!("/c/{ID}/declaration.md")))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
}

#[tokio::test]
async fn the_declaration_page_shows_the_text_and_its_hash_without_generated_changes() {
    let app = TestApp::spawn(Options::default()).await;

    let page = app
        .http
        .get(app.url(&format!("/c/{ID}/declaration")))
        .send()
        .await
        .unwrap();

    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<h1>Declaration of Digital Independence</h1>"),
        "{html}"
    );
    assert!(html.contains("This text's SHA-256"), "{html}");
    // The bundled text is an original: its hand-written "Proposed changes" stays, and no
    // section is generated.
    assert!(!html.contains("id=\"proposed-changes\""), "{html}");
}

#[tokio::test]
async fn the_declaration_of_an_unknown_campaign_is_a_404() {
    let app = TestApp::spawn(Options::default()).await;
    for path in ["/c/nope/declaration.md", "/c/nope/declaration"] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn counts_follow_this_servers_writes_at_once_and_others_once_counted_again() {
    // Arrange: a server on a manual clock, and a way to sign behind its back (as another
    // process on the same database would).
    let start = chrono::DateTime::<chrono::Utc>::from_timestamp(1_780_000_000, 0).unwrap();
    let clock = Arc::new(picket::clock::ManualClock::new(start));
    let app = TestApp::spawn(Options::default().clock(clock.clone())).await;
    let signatures = async || -> u64 { app.signatures(ID).await };

    // Act
    let before = signatures().await;
    let signed = app
        .api_sign(serde_json::json!({ "name": "Ada" }))
        .await
        .status();
    let after_signing_here = signatures().await;
    app.store
        .add_signature(
            &picket::store::NewSignature {
                campaign_id: ID.parse().unwrap(),
                name: "Bob".into(),
                confirmed: true,
                email_canonical: None,
                public: false,
                invited_by: None,
                confirm_token_hash: None,
                email_consent: false,
            },
            start,
        )
        .await
        .unwrap();
    let right_after_elsewhere = signatures().await;
    clock.advance(chrono::Duration::seconds(1));
    // Counts older than a second are answered while they are counted again behind the
    // reader: the first read after the second starts the count, a later one sees it.
    let a_second_later = signatures().await;

    // Assert
    assert_eq!(signed, StatusCode::CREATED);
    assert_eq!(before, 0);
    assert_eq!(
        after_signing_here, 1,
        "a write through this server shows at once"
    );
    assert_eq!(
        right_after_elsewhere, 1,
        "a write elsewhere may wait for the cache"
    );
    assert!(
        a_second_later == 1 || a_second_later == 2,
        "{a_second_later}: the aged count, or the new one if it was quicker"
    );
    crate::support::eventually(
        std::time::Duration::from_secs(10),
        "the signature made elsewhere counted",
        async || signatures().await == 2,
    )
    .await;
}

#[tokio::test]
async fn the_campaign_page_gives_each_visitor_their_own_token_and_shows_a_new_signature_at_once() {
    let app = TestApp::spawn(Options::default()).await;
    // Two visitors, each with their own CSRF cookie, and one with none.
    let page_with = |cookie: Option<String>| {
        let app = &app;
        async move {
            let mut req = app.http.get(app.url(&format!("/c/{ID}")));
            if let Some(c) = cookie {
                req = req.header(COOKIE, c);
            }
            req.send().await.unwrap().text().await.unwrap()
        }
    };
    let a_token = "a".repeat(48);
    let b_token = "b".repeat(48);

    let a = page_with(Some(format!("picket_csrf={a_token}"))).await;
    let b = page_with(Some(format!("picket_csrf={b_token}"))).await;
    let fresh = page_with(None).await;
    let signed = app.sign_form(&[("name", "Grace")]).await.status();
    let after = page_with(None).await;

    assert!(
        a.contains(&format!("value=\"{a_token}\"")),
        "visitor a's own token"
    );
    assert!(
        b.contains(&format!("value=\"{b_token}\"")),
        "visitor b's own token"
    );
    assert!(!b.contains(&a_token) && !fresh.contains(&a_token) && !fresh.contains(&b_token));
    assert!(!fresh.contains("@@picket"), "no placeholder is ever served");
    assert_eq!(signed, StatusCode::OK);
    assert!(fresh.contains("<strong>0</strong> signed"), "{fresh}");
    assert!(after.contains("<strong>1</strong> signed"), "{after}");
}
