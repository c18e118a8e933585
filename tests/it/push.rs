//! Web Push reminders: a browser subscribes from `/me` (as a browser's script would: a
//! form with the page's CSRF token), and pushes reach a local push endpoint that checks
//! the VAPID header (the ES256 signature against the key the page serves, `aud`, `exp`)
//! and decrypts the RFC 8291 `aes128gcm` payload with its own implementation, written
//! here from the RFC (p256 ECDH, HKDF, AES-128-GCM), independent of the sending crate.
//!
//! Chromium's own push needs a push service (FCM) this machine cannot reach, so the
//! browser side is exercised by posting its subscription as `PushSubscription.toJSON()`
//! gives it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::Utc;
use p256::ecdsa::signature::Verifier;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use picket::clock::SystemClock;
use picket::network::Egress;
use picket::network::push::{Notification, PushOutcome, Pusher, Subscription, VapidKey};
use picket::store::ParticipantId;

use crate::support::{Options, TestApp};

/// A browser's side of a subscription: its key pair and authentication secret.
pub struct BrowserKeys {
    secret: p256::SecretKey,
    auth: [u8; 16],
}

impl BrowserKeys {
    pub fn new() -> BrowserKeys {
        loop {
            if let Ok(secret) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
                return BrowserKeys {
                    secret,
                    auth: rand::random(),
                };
            }
        }
    }

    fn public(&self) -> Vec<u8> {
        self.secret
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    /// `p256dh` and `auth` as `PushSubscription.toJSON().keys` gives them.
    pub fn p256dh(&self) -> String {
        B64URL.encode(self.public())
    }

    pub fn auth(&self) -> String {
        B64URL.encode(self.auth)
    }

    /// RFC 8291 §3.4 and RFC 8188 §2, from the receiving side: the header (salt, record
    /// size, the sender's public key as key id), the shared secret, the key and nonce,
    /// then one record whose padding ends in the last-record delimiter 0x02.
    pub fn decrypt(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        use hkdf::Hkdf;
        use sha2::Sha256;
        if body.len() < 21 {
            return Err("shorter than the aes128gcm header".into());
        }
        let salt = &body[..16];
        let rs = u32::from_be_bytes(body[16..20].try_into().unwrap()) as usize;
        let idlen = body[20] as usize;
        let keyid = body.get(21..21 + idlen).ok_or("key id cut off")?;
        let sender = p256::PublicKey::from_sec1_bytes(keyid).map_err(|_| "key id is no key")?;
        let record = &body[21 + idlen..];
        if record.len() > rs {
            return Err(format!("one record of {} bytes over rs {rs}", record.len()));
        }
        let ecdh = p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), sender.as_affine());
        // PRK_key = HMAC(auth, ecdh); IKM = HKDF-Expand(PRK_key, key_info, 32)
        let mut key_info = b"WebPush: info\0".to_vec();
        key_info.extend_from_slice(&self.public());
        key_info.extend_from_slice(keyid);
        let mut ikm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&self.auth), &ecdh.raw_secret_bytes()[..])
            .expand(&key_info, &mut ikm)
            .unwrap();
        // PRK = HMAC(salt, IKM); CEK and NONCE from it.
        let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
        let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
        prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
            .unwrap();
        prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
            .unwrap();
        let cipher = aes_gcm::Aes128Gcm::new(&cek.into());
        let mut plain = cipher
            .decrypt(&nonce.into(), record)
            .map_err(|_| "the record does not decrypt")?;
        // Padding: the delimiter, then zeros.
        while plain.last() == Some(&0) {
            plain.pop();
        }
        if plain.pop() != Some(2) {
            return Err("no last-record delimiter".into());
        }
        Ok(plain)
    }
}

/// What the push endpoint received in one request.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// What the push endpoint's handler shares with the test.
type Shared = (
    Arc<Mutex<Vec<Received>>>,
    Arc<Mutex<std::collections::HashMap<String, StatusCode>>>,
);

/// A push service on 127.0.0.1: keeps every request and answers `status`.
#[derive(Clone)]
pub struct PushEndpoint {
    pub base: String,
    received: Arc<Mutex<Vec<Received>>>,
    /// The answer per path; "" is every other path's (201 at first).
    status: Arc<Mutex<std::collections::HashMap<String, StatusCode>>>,
}

impl PushEndpoint {
    pub async fn start() -> PushEndpoint {
        let received = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(Mutex::new(std::collections::HashMap::from([(
            String::new(),
            StatusCode::CREATED,
        )])));
        let state = (received.clone(), status.clone());
        let router = axum::Router::new()
            .route(
                "/push/{id}",
                axum::routing::post(
                    async |State((received, status)): State<Shared>,
                           uri: axum::http::Uri,
                           headers: HeaderMap,
                           body: axum::body::Bytes| {
                        let path = uri.path().to_string();
                        let answers = status.lock().unwrap();
                        let answer = answers.get(&path).unwrap_or(&answers[""]);
                        let answer = *answer;
                        drop(answers);
                        received.lock().unwrap().push(Received {
                            path,
                            headers,
                            body: body.to_vec(),
                        });
                        answer
                    },
                ),
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        PushEndpoint {
            base,
            received,
            status,
        }
    }

    pub fn endpoint(&self, id: &str) -> String {
        format!("{}/push/{id}", self.base)
    }

    /// Answer `status` to every push from now on (but those of [`Self::answer_for`]).
    pub fn answer(&self, status: StatusCode) {
        self.status.lock().unwrap().insert(String::new(), status);
    }

    /// Answer `status` to pushes to `path`.
    pub fn answer_for(&self, path: &str, status: StatusCode) {
        self.status.lock().unwrap().insert(path.to_string(), status);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// Checks a push as a push service does (RFC 8292): `vapid t=JWT, k=KEY`, the key the
/// host serves, an ES256 signature by it, `aud` the endpoint's origin, `exp` after `now`
/// (the host's clock) and at most 24 hours away, a `sub` to contact. Returns the claims.
pub fn check_vapid(
    push: &Received,
    origin: &str,
    served_key: &str,
    now: chrono::DateTime<Utc>,
) -> serde_json::Value {
    let auth = push.headers["authorization"].to_str().unwrap();
    let rest = auth.strip_prefix("vapid t=").expect(auth);
    let (token, k) = rest.split_once(", k=").expect(auth);
    assert_eq!(k, served_key, "the VAPID k is the key the page serves");
    let (input, signature) = token.rsplit_once('.').unwrap();
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&B64URL.decode(k).unwrap()).unwrap();
    let signature = p256::ecdsa::Signature::from_slice(&B64URL.decode(signature).unwrap()).unwrap();
    key.verify(input.as_bytes(), &signature)
        .expect("the VAPID token is signed by the served key");
    let (header, claims) = input.split_once('.').unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(&B64URL.decode(header).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    let claims: serde_json::Value =
        serde_json::from_slice(&B64URL.decode(claims).unwrap()).unwrap();
    assert_eq!(claims["aud"], origin);
    let exp = claims["exp"].as_i64().unwrap();
    let now = now.timestamp();
    assert!(exp > now && exp <= now + 24 * 3600, "exp {exp}, now {now}");
    let sub = claims["sub"].as_str().unwrap();
    assert!(
        sub.starts_with("mailto:") || sub.starts_with("https://"),
        "{sub}"
    );
    claims
}

fn pusher(allow_private: bool, key: &Arc<VapidKey>) -> Pusher {
    Pusher::new(
        Egress::new(allow_private).guarded().clone(),
        key.clone(),
        "mailto:host@picket.test".into(),
        Arc::new(SystemClock),
    )
}

#[tokio::test]
async fn a_push_reaches_the_endpoint_signed_and_decrypts_to_the_notification() {
    // Arrange
    let service = PushEndpoint::start().await;
    let browser = BrowserKeys::new();
    let key = Arc::new(VapidKey::generate());
    let sub = Subscription::parse(
        &service.endpoint("one"),
        &browser.p256dh(),
        &browser.auth(),
        true,
    )
    .unwrap();
    let notice = "I'm on #SocialMediaStrike today: no posting here except this notice.";
    let notification = Notification::reminder(&[notice], "https://picket.test/me", "slot-1");

    // Act
    let outcome = pusher(true, &key)
        .send(&sub, &notification, Duration::from_secs(1800))
        .await;

    // Assert
    assert_eq!(outcome, PushOutcome::Delivered);
    let got = service.received();
    assert_eq!(got.len(), 1);
    let push = &got[0];
    assert_eq!(push.path, "/push/one");
    check_vapid(push, &service.base, &key.public_key(), Utc::now());
    assert_eq!(push.headers["ttl"], "1800");
    assert_eq!(push.headers["urgency"], "high");
    assert_eq!(push.headers["content-encoding"], "aes128gcm");
    let plain = browser.decrypt(&push.body).unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(shown["title"], "Strike notice due");
    assert_eq!(shown["body"], notice);
    assert_eq!(shown["url"], "https://picket.test/me");
    // Another browser's keys cannot read it.
    assert!(BrowserKeys::new().decrypt(&push.body).is_err());
}

#[tokio::test]
async fn a_gone_subscription_is_told_apart_from_a_failure_that_names_no_endpoint() {
    let service = PushEndpoint::start().await;
    let browser = BrowserKeys::new();
    let key = Arc::new(VapidKey::generate());
    let sub = Subscription::parse(
        &service.endpoint("secret-capability"),
        &browser.p256dh(),
        &browser.auth(),
        true,
    )
    .unwrap();
    let n = Notification::reminder(&["notice"], "https://picket.test/me", "t");
    let ttl = Duration::from_secs(60);

    service.answer(StatusCode::GONE);
    assert_eq!(
        pusher(true, &key).send(&sub, &n, ttl).await,
        PushOutcome::Gone
    );
    service.answer_for("/push/secret-capability", StatusCode::NOT_FOUND);
    assert_eq!(
        pusher(true, &key).send(&sub, &n, ttl).await,
        PushOutcome::Gone
    );
    service.answer_for("/push/secret-capability", StatusCode::TOO_MANY_REQUESTS);
    let PushOutcome::Failed(reason) = pusher(true, &key).send(&sub, &n, ttl).await else {
        panic!("a 429 is a failure");
    };
    assert!(reason.contains("429"), "{reason}");
    assert_eq!(service.received().len(), 3);

    // Without allow_private_addresses a loopback endpoint is refused before any
    // connection, and the reason does not hold the capability.
    let PushOutcome::Failed(reason) = pusher(false, &key).send(&sub, &n, ttl).await else {
        panic!("a loopback endpoint is refused");
    };
    assert!(!reason.contains("secret-capability"), "{reason}");
    assert_eq!(service.received().len(), 3, "nothing was sent");
}

#[tokio::test]
async fn a_signed_in_participant_subscribes_this_browser_and_unsubscribes_it() {
    // Arrange
    let app = TestApp::spawn(Options::joinable().config("allow_private_addresses = true")).await;
    let visitor = app.visitor();
    visitor.join_as("Ada", &[]).await;
    let me = visitor.get("/me").await;
    let csrf = me.field("csrf");
    let served_key = me
        .html
        .split("data-key=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(served_key, app.state().vapid.public_key());
    let browser = BrowserKeys::new();
    let endpoint = "http://127.0.0.1:9/push/ada";
    let ada = ParticipantId(1);
    let subscribed = || async { app.store.push_subscriptions_of(ada).await.unwrap().len() };

    // The service worker is served from the root, as a script.
    let sw = app.get("/sw.js").await;
    assert_eq!(sw.status(), StatusCode::OK);
    assert!(
        sw.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(sw.text().await.unwrap().contains("showNotification"));

    // Act and assert: without the page's token, nothing is kept.
    let forged = visitor
        .post(
            "/me/push",
            &[
                ("endpoint", endpoint),
                ("p256dh", &browser.p256dh()),
                ("auth", &browser.auth()),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // A stranger (no session) cannot subscribe.
    let stranger = app.visitor();
    let (_, token) = app
        .form_token(&format!("/c/{}", crate::support::BUNDLED))
        .await;
    let anon = stranger
        .post("/me/push", &[("csrf", &token), ("endpoint", endpoint)])
        .await;
    assert!(
        anon.status.is_client_error() || anon.status.is_redirection(),
        "{}",
        anon.status
    );
    // A key that is not a P-256 point is a 422 that says so.
    let bad = visitor
        .post(
            "/me/push",
            &[
                ("csrf", &csrf),
                ("endpoint", endpoint),
                ("p256dh", &B64URL.encode([4u8; 65])),
                ("auth", &browser.auth()),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.html.contains("P-256"), "{}", bad.html);
    let long = format!("http://127.0.0.1:9/{}", "a".repeat(4096));
    let too_long = visitor
        .post(
            "/me/push",
            &[
                ("csrf", &csrf),
                ("endpoint", &long),
                ("p256dh", &browser.p256dh()),
                ("auth", &browser.auth()),
            ],
        )
        .await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(subscribed().await, 0);

    let ok = visitor
        .post(
            "/me/push",
            &[
                ("csrf", &csrf),
                ("endpoint", endpoint),
                ("p256dh", &browser.p256dh()),
                ("auth", &browser.auth()),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{}", ok.html);
    assert_eq!(subscribed().await, 1);
    // Sealed at rest: the endpoint is nowhere in the stored bytes.
    let stored = app.store.push_subscriptions_of(ada).await.unwrap();
    assert!(
        !String::from_utf8_lossy(stored[0].sealed.as_bytes()).contains("/push/ada"),
        "the endpoint is sealed"
    );
    assert!(
        visitor
            .get("/me")
            .await
            .html
            .contains("id=\"push-browsers\">1<")
    );

    // The same address, spelt otherwise (scheme and host are case-insensitive).
    let off = visitor
        .post(
            "/me/push/delete",
            &[("csrf", &csrf), ("endpoint", "HTTP://127.0.0.1:9/push/ada")],
        )
        .await;
    assert_eq!(off.status, StatusCode::NO_CONTENT);
    assert_eq!(subscribed().await, 0);
}

#[tokio::test]
async fn in_chromium_the_page_offers_reminders_here_and_registers_the_service_worker() {
    // Chromium's pushManager.subscribe needs its vendor's push service, which tests may
    // not reach: this shows the page's part (the button, under the strict CSP) and the
    // service worker's registration; the subscription itself is posted by the test above
    // as the script posts it.
    let site = TestApp::spawn(Options::joinable()).await;
    let magic = site.visitor().join_as("Ada", &[]).await;
    crate::browser::with_browsers(async |browsers| {
        let b = browsers.open().await;
        b.goto(&site.url(&magic)).await;
        b.goto(&site.url("/me")).await;
        b.eval(
            "navigator.serviceWorker.ready.then(function (r) { \
             window.picketWorker = r.active ? r.active.scriptURL : 'none'; }); return null;",
        )
        .await;
        let worker = crate::support::eventually(
            Duration::from_secs(30),
            "the service worker to be active",
            async || {
                let url = b.eval("return window.picketWorker || null;").await;
                url.as_str().map(str::to_string)
            },
        )
        .await;
        let on_hidden = b
            .eval("return document.getElementById('push-on').hidden;")
            .await;
        let unsupported = b
            .eval("return document.getElementById('push-unsupported').hidden;")
            .await;

        assert_eq!(worker, site.url("/sw.js"));
        assert_eq!(on_hidden, false, "the button shows where push exists");
        assert_eq!(unsupported, true);
    })
    .await;
}

#[tokio::test]
async fn a_push_service_that_never_answers_is_given_up_on_within_its_timeout() {
    // A listener that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let browser = BrowserKeys::new();
    let sub = Subscription::parse(
        &format!("http://{addr}/push/slow"),
        &browser.p256dh(),
        &browser.auth(),
        true,
    )
    .unwrap();
    let n = Notification::reminder(&["notice"], "https://picket.test/me", "t");

    // Real time passes on purpose: the push's own timeout is what is tested.
    let started = std::time::Instant::now();
    let outcome = pusher(true, &Arc::new(VapidKey::generate()))
        .send(&sub, &n, Duration::from_secs(60))
        .await;

    assert!(matches!(outcome, PushOutcome::Failed(_)), "{outcome:?}");
    let took = started.elapsed();
    assert!(
        took >= picket::network::push::PUSH_TIMEOUT && took < Duration::from_secs(20),
        "{took:?}"
    );
}

// ── reminders at the slot, end to end ───────────────────────────────────────────────────

mod at_the_slot {
    use super::*;
    use chrono::{DateTime, NaiveDate, TimeZone};
    use picket::clock::{Clock, ManualClock};
    use picket::store::{OutboxRow, OutboxState};

    use crate::support::{Visitor, World, eventually};

    const ID: &str = "push-strike";
    const DAY: &str = "2027-07-04";

    /// Midnight of the strike day in Auckland (UTC+12 in July).
    fn auckland_midnight() -> DateTime<Utc> {
        chrono_tz::Pacific::Auckland
            .from_local_datetime(
                &DAY.parse::<NaiveDate>()
                    .unwrap()
                    .and_hms_opt(0, 0, 0)
                    .unwrap(),
            )
            .unwrap()
            .with_timezone(&Utc)
    }

    fn campaign() -> String {
        format!(
            r#"id = "{ID}"
title = "Push strike"
hashtag = "PushStrike"
networks = ["x"]

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
notice = ["I'm on #{{{{ hashtag }}}} strike today: no posting here. Join: {{{{ invite_link }}}}"]
"#
        )
    }

    /// A site on `clock`, over `world`'s database, that may push to loopback endpoints.
    fn options(world: &World, clock: &Arc<ManualClock>) -> Options {
        Options::default()
            .over(world)
            .clock(clock.clone())
            .own_address()
            .config("allow_private_addresses = true\nvapid_subject = \"mailto:host@push.test\"")
    }

    /// Join in Auckland with an X account to post by hand (no [smtp] on this host: the
    /// reminder is pushed only), then subscribe one browser per endpoint, as the page's
    /// script does.
    async fn join_and_subscribe(
        app: &TestApp,
        v: &Visitor,
        browsers: &[(&BrowserKeys, String)],
    ) -> picket::store::ParticipantId {
        let email = "aroha@push.test";
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
        let added = v
            .post(
                "/connect/tap",
                &[
                    ("csrf", &step2.field("csrf")),
                    ("back", &step2.field("back")),
                    ("network", "x"),
                    ("handle", "@aroha"),
                ],
            )
            .await;
        assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.html);
        let page = v.get(&added.location.unwrap()).await;
        let joined = v.confirm(ID, &page).await;
        assert_eq!(joined.status, StatusCode::OK, "{}", joined.html);
        let me = v.get("/me").await;
        for (keys, endpoint) in browsers {
            let kept = v
                .post(
                    "/me/push",
                    &[
                        ("csrf", &me.field("csrf")),
                        ("endpoint", endpoint),
                        ("p256dh", &keys.p256dh()),
                        ("auth", &keys.auth()),
                    ],
                )
                .await;
            assert_eq!(kept.status, StatusCode::NO_CONTENT, "{}", kept.html);
        }
        app.store
            .participants_by_email(&picket::store::canonical_email(email), 1)
            .await
            .unwrap()[0]
            .id
    }

    async fn reminded(app: &TestApp, who: picket::store::ParticipantId) -> OutboxRow {
        eventually(Duration::from_secs(30), "the notice reminded", async || {
            let rows = app.store.outbox_for(who, Some(ID)).await.unwrap();
            match rows.as_slice() {
                [row] if row.state == OutboxState::Reminded => Ok(row.clone()),
                other => Err(format!("{other:?}")),
            }
        })
        .await
    }

    #[tokio::test]
    async fn a_striker_in_auckland_is_pushed_once_at_local_midnight_and_a_gone_browser_is_forgotten()
     {
        // Arrange: the app's clock a minute before Auckland's midnight on strike day.
        let service = PushEndpoint::start().await;
        service.answer_for("/push/gone", StatusCode::GONE);
        let midnight = auckland_midnight();
        let clock = Arc::new(ManualClock::new(midnight - chrono::Duration::seconds(60)));
        let world = World::new(&campaign(), clock.clone()).await;
        let app = TestApp::spawn(options(&world, &clock)).await;
        let (phone, old_laptop) = (BrowserKeys::new(), BrowserKeys::new());
        let who = join_and_subscribe(
            &app,
            &app.visitor(),
            &[
                (&phone, service.endpoint("phone")),
                (&old_laptop, service.endpoint("gone")),
            ],
        )
        .await;
        let served_key = app.state().vapid.public_key();

        // Act 1: five seconds before the minute. Real time passes on purpose: the
        // dispatcher and the reminder step look every second, and nothing may come yet.
        clock.set(midnight - chrono::Duration::seconds(5));
        tokio::time::sleep(Duration::from_secs(3)).await;
        let early = service.received();

        // Act 2: the minute comes.
        clock.set(midnight);
        let row = reminded(&app, who).await;
        let pushes = eventually(Duration::from_secs(30), "both pushes", async || {
            let got = service.received();
            if got.len() >= 2 {
                Ok(got)
            } else {
                Err(format!("{got:?}"))
            }
        })
        .await;
        let left = eventually(
            Duration::from_secs(10),
            "the gone browser forgotten",
            async || {
                let subs = app.store.push_subscriptions_of(who).await.unwrap();
                if subs.len() == 1 {
                    Ok(subs)
                } else {
                    Err(subs.len())
                }
            },
        )
        .await;

        // Assert: nothing before the minute; at it, one push per browser, signed with the
        // served key, living until the window's end, holding the rendered notice.
        assert!(early.is_empty(), "a push before the minute: {early:?}");
        assert_eq!(pushes.len(), 2, "{pushes:?}");
        let push = pushes.iter().find(|p| p.path == "/push/phone").unwrap();
        check_vapid(push, &service.base, &served_key, midnight);
        assert_eq!(push.headers["ttl"], "3600", "the window is an hour");
        assert_eq!(push.headers["urgency"], "high");
        let shown: serde_json::Value =
            serde_json::from_slice(&phone.decrypt(&push.body).unwrap()).unwrap();
        let text = row.text.clone().unwrap();
        assert!(text.contains("#PushStrike"), "{text}");
        assert_eq!(shown["title"], "Strike notice due");
        assert_eq!(shown["body"], text.as_str());
        assert_eq!(shown["url"], format!("{}/me", app.base));
        // The browser that is gone is no more; the other one stays.
        assert!(pushes.iter().any(|p| p.path == "/push/gone"));
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].last_error, None);

        // Act 3: picket restarts on the same database within the slot's window.
        drop(app);
        clock.set(midnight + chrono::Duration::seconds(30));
        let again = TestApp::spawn(options(&world, &clock)).await;
        // Real time passes on purpose: a second push would go within a round or two.
        tokio::time::sleep(Duration::from_secs(3)).await;

        // Assert: once per slot.
        assert_eq!(
            again.store.outbox_for(who, Some(ID)).await.unwrap()[0].state,
            OutboxState::Reminded
        );
        assert_eq!(
            service.received().len(),
            2,
            "no second push after a restart"
        );
    }

    #[tokio::test]
    async fn no_push_goes_once_the_slots_window_has_closed() {
        // Arrange
        let service = PushEndpoint::start().await;
        let midnight = auckland_midnight();
        let clock = Arc::new(ManualClock::new(midnight - chrono::Duration::seconds(60)));
        let world = World::new(&campaign(), clock.clone()).await;
        let app = TestApp::spawn(options(&world, &clock)).await;
        let browser = BrowserKeys::new();
        let who = join_and_subscribe(
            &app,
            &app.visitor(),
            &[(&browser, service.endpoint("late"))],
        )
        .await;

        // Act: picket comes back 30 s after the hour's window closed, inside the 60 s
        // grace in which a late mail may still go.
        clock.set(midnight + chrono::Duration::seconds(3600 + 30));
        reminded(&app, who).await;
        eventually(
            Duration::from_secs(30),
            "the slot's reminder handled",
            async || {
                let due = app
                    .store
                    .reminders_due(clock.now(), chrono::Duration::seconds(60), 10)
                    .await
                    .unwrap();
                due.is_empty()
            },
        )
        .await;
        // Real time passes on purpose: a push would follow the mark within moments.
        tokio::time::sleep(Duration::from_secs(2)).await;

        // Assert
        let late: Vec<_> = service.received().into_iter().map(|r| r.path).collect();
        assert!(late.is_empty(), "a push after the window: {late:?}");
    }
}
