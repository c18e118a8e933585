//! Campaign files for tests: the bundled Social Media Strike, and short strikes written
//! on the spot with windows relative to now.

use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat, Utc};

/// The bundled campaign's id.
pub const BUNDLED: &str = "social-media-strike";

/// The repository's `campaigns/` folder, with the bundled campaign and its declaration.
pub fn bundled_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("campaigns")
}

/// The bundled campaign's files, as `(file name, text)`.
pub fn bundled_files() -> Vec<(String, String)> {
    ["social-media-strike.toml", "declaration.md"]
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(bundled_dir().join(f)).unwrap();
            (f.to_string(), text)
        })
        .collect()
}

/// An RFC 3339 instant as campaign files write it.
pub fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A campaign with one absolute strike window and `posts` (TOML `[[posts]]` tables).
pub fn window_campaign(id: &str, start: DateTime<Utc>, end: DateTime<Utc>, posts: &str) -> String {
    format!(
        r#"id = "{id}"
title = "Test strike {id}"
hashtag = "TestStrike"
networks = ["sandbox"]

[strike]
windows = [{{ start = "{}", end = "{}" }}]
min_interval = "5m"

{posts}

[templates]
notice = [
  "On #{{{{ hashtag }}}} strike. Join: {{{{ invite_link }}}}",
  "Striking today, #{{{{ hashtag }}}}: {{{{ invite_link }}}}",
  "No posts from me today but this one. #{{{{ hashtag }}}} {{{{ invite_link }}}}",
]
"#,
        rfc(start),
        rfc(end)
    )
}

/// `n` posts named p0..pn, all at the start of the strike, each open for `window`.
pub fn posts_at_start(n: usize, window: &str) -> String {
    (0..n)
        .map(|i| format!("[[posts]]\nname = \"p{i}\"\nwhen = \"start\"\ntemplate = \"notice\"\nwindow = \"{window}\"\n"))
        .collect::<Vec<_>>()
        .join("\n")
}
