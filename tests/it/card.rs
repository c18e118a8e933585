//! The public strike cards over HTTP against a real app: `/c/{id}/card.png` (a PNG of the
//! right size, cached by browsers and by picket, 4xx for what does not exist) and
//! `/c/{id}/card.txt` (its text).

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};

use crate::support::{Options, TestApp};

/// Width and height of a PNG, decoded in full (a header alone proves little).
pub fn png_size(bytes: &[u8]) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a buffer size")];
    let info = reader.next_frame(&mut buf).expect("a whole PNG frame");
    (info.width, info.height)
}

#[tokio::test]
async fn a_card_of_each_size_is_a_png_of_that_size_that_browsers_may_keep_and_revalidate() {
    let app = TestApp::spawn(Options::default()).await;

    let square = app
        .get("/c/social-media-strike/card.png?day=2027-07-04")
        .await;
    assert_eq!(square.status(), StatusCode::OK);
    assert_eq!(square.headers()[CONTENT_TYPE], "image/png");
    let cache = square.headers()[CACHE_CONTROL]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cache.starts_with("public, max-age="), "{cache}");
    let etag = square.headers()[ETAG].clone();
    assert_eq!(png_size(&square.bytes().await.unwrap()), (1080, 1080));

    let story = app
        .get("/c/social-media-strike/card.png?day=2027-07-05&size=story")
        .await;
    assert_eq!(story.status(), StatusCode::OK);
    assert_ne!(story.headers()[ETAG], etag, "another card, another ETag");
    assert_eq!(png_size(&story.bytes().await.unwrap()), (1080, 1920));

    // Without a day: the first strike day's card, the same one.
    let first = app.get("/c/social-media-strike/card.png").await;
    assert_eq!(first.headers()[ETAG], etag);

    let again = app
        .http
        .get(app.url("/c/social-media-strike/card.png?day=2027-07-04&size=square"))
        .header(IF_NONE_MATCH, etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()[ETAG], etag);
    assert!(again.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_day_size_or_campaign_that_does_not_exist_is_a_4xx_with_a_message() {
    let app = TestApp::spawn(Options::default()).await;
    let cases = [
        (
            "/c/social-media-strike/card.png?day=2027-07-06",
            StatusCode::NOT_FOUND,
            "2027-07-04, 2027-07-05",
        ),
        (
            "/c/social-media-strike/card.png?day=tomorrow",
            StatusCode::UNPROCESSABLE_ENTITY,
            "YYYY-MM-DD",
        ),
        (
            "/c/social-media-strike/card.png?day=2027-02-30",
            StatusCode::UNPROCESSABLE_ENTITY,
            "not a date",
        ),
        (
            "/c/social-media-strike/card.png?size=banner",
            StatusCode::UNPROCESSABLE_ENTITY,
            "size=story",
        ),
        (
            "/c/social-media-strike/card.png?day=2027-07-04&day=2027-07-05",
            StatusCode::BAD_REQUEST,
            "",
        ),
        ("/c/no-such/card.png", StatusCode::NOT_FOUND, "no campaign"),
        (
            "/c/social-media-strike/card.txt?day=1999-01-01",
            StatusCode::NOT_FOUND,
            "not a strike day",
        ),
    ];
    for (path, status, says) in cases {
        let r = app.get(path).await;
        assert_eq!(r.status(), status, "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains(says), "{path}: {body}");
    }
}

#[tokio::test]
async fn the_cards_text_says_everything_the_card_shows() {
    let app = TestApp::spawn(Options::default()).await;

    let r = app
        .get("/c/social-media-strike/card.txt?day=2027-07-05")
        .await;

    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    for part in [
        "Social Media Strike",
        "#SocialMediaStrike",
        "Monday 5 July 2027",
        // The description's first sentence: the bundled campaign has no `card_why`.
        "we stop posting on social media",
        "picket.test",
    ] {
        assert!(text.contains(part), "{part} missing from {text}");
    }
}

/// A campaign of ten strike days: more cards than a client may have drawn at once.
fn ten_days() -> String {
    let days: Vec<String> = (1..=10).map(|d| format!("\"2027-08-{d:02}\"")).collect();
    format!(
        r#"id = "long"
title = "Long strike"
hashtag = "Long"
networks = ["sandbox"]
card_why = "Ten days & ten <nights>."
[strike]
timezone = "participant"
days = [{}]
[[posts]]
name = "notice"
when = "start"
template = "t"
card = true
[templates]
t = ["On strike #{{{{ hashtag }}}}"]
"#,
        days.join(", ")
    )
}

#[tokio::test]
async fn drawing_new_cards_counts_against_the_rate_limit_but_a_drawn_card_is_always_served() {
    let app = TestApp::spawn(
        Options::default()
            .without_bundled()
            .campaign("long", &ten_days())
            .config("rate_limits = true"),
    )
    .await;

    // Every new card is drawn: the budget (a burst of 5) runs out on the sixth. The six are
    // asked at once: one after another, a slow (debug, loaded) draw lets the budget refill
    // (10 a minute) before the sixth is asked.
    let days: Vec<String> = (1..=6)
        .map(|d| format!("/c/long/card.png?day=2027-08-{d:02}"))
        .collect();
    let asked: Vec<StatusCode> = futures::future::join_all(days.iter().map(|path| app.get(path)))
        .await
        .iter()
        .map(|r| r.status())
        .collect();
    let mut statuses = asked.clone();
    statuses.sort_by_key(|s| s.as_u16());
    let drawn = &days[asked
        .iter()
        .position(|s| *s == StatusCode::OK)
        .expect("one drawn")];
    // A card already drawn costs nothing: served however often it is asked for.
    let mut cached = Vec::new();
    for _ in 0..20 {
        cached.push(app.get(drawn).await.status());
    }

    assert_eq!(&statuses[..5], [StatusCode::OK; 5]);
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS);
    assert!(cached.iter().all(|s| *s == StatusCode::OK), "{cached:?}");
    let why = app.get("/c/long/card.txt?day=2027-08-03").await;
    assert!(
        why.text()
            .await
            .unwrap()
            .contains("Ten days & ten <nights>.")
    );
}
