//! The checks behind picket's fuzz targets, shared by the cargo-fuzz targets in `fuzz/`
//! and by the replay of the committed corpus in `tests/it/fuzz_corpus.rs`, so that
//! `cargo test` checks every saved input exactly as the fuzzer did.
//!
//! Each target takes raw bytes, feeds them to the code the server or the CLI runs on
//! untrusted text, and panics when a property fails. An `Err` for bad input is fine; a
//! panic, an offset off a character boundary or a result that breaks its own rules is a
//! finding. Inputs are plain text so that corpus files can be read and edited by hand;
//! where a target needs several strings it splits the input on lines or NUL bytes (each
//! function says how).
//!
//! Not part of picket's interface: hidden from the docs, may change with the fuzzers.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use chrono::{Duration, NaiveDate};
use unicode_segmentation::UnicodeSegmentation;

use crate::campaign::{
    self, Campaign, Participation, When, declaration, fmt_duration, parse_duration, parse_when,
};
use crate::compose::PostVars;
use crate::compose::measure;
use crate::domain::NetworkKind;
use crate::network::bluesky::facets::{self, Feature};
use crate::render::PostRenderer;
use crate::web::form::Fields;
use crate::web::join::Choice;

/// A target's checks: panics when a property fails.
pub type Check = fn(&[u8]);

/// Every target by the name of its folder in `fuzz/fuzz_targets` and `fuzz/regressions`.
pub const TARGETS: [(&str, Check); 6] = [
    ("campaign_file", campaign_file),
    ("durations", durations),
    ("form", form),
    ("template", template),
    ("facets", facets),
    ("declaration", declaration),
];

/// A campaign file as `picket campaign check` and the server read it: UTF-8 TOML, with a
/// `declaration.md` and an `original.md` ([`ORIGINAL_MD`]) beside it; other names are
/// skipped (see [`names_a_file_elsewhere`]).
pub fn campaign_file(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    if names_a_file_elsewhere(src) {
        return;
    }
    let path = campaign_dir().join("campaign.toml");
    match campaign::parse_str(src, &path) {
        Err(problems) => {
            assert!(!problems.is_empty(), "an error with no problem in it");
            let lines: Vec<&str> = src.split('\n').collect();
            for p in &problems {
                assert!(p.line >= 1 && p.line <= lines.len(), "{p} is past the end");
                let width = lines[p.line - 1].chars().count();
                assert!(p.col >= 1 && p.col <= width + 1, "{p} is past its line");
                assert!(!p.message.trim().is_empty(), "{p} says nothing");
                assert!(p.to_string().starts_with(&path.display().to_string()));
            }
        }
        Ok(c) => campaign_holds(&c),
    }
}

/// Durations and cadences. Line 1 is read as a duration (campaign files, the join form's
/// `every`, the CLI's `--every`) and as a `when`; with line 2 as a time zone (default
/// UTC) and line 3 as comma-separated days, line 1 is a pledge's cadence on each of a
/// few fixed campaigns, and the pledge's slots are computed when the campaign accepts it.
pub fn durations(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(3, '\n');
    let every = lines.next().unwrap_or_default();
    let tz = lines.next().unwrap_or("UTC");
    let days = lines.next().map(|l| {
        l.split(',')
            .filter_map(|d| campaign::parse_date(d.trim()).ok())
            .collect::<Vec<NaiveDate>>()
    });

    duration_holds(every);
    for prefix in ["every ", "before ", "daily "] {
        when_holds(&format!("{prefix}{every}"));
    }
    when_holds(every);

    for c in fixed_campaigns() {
        let days = days.clone().filter(|d| !d.is_empty());
        if let Ok(p) = crate::participation::choices(c, tz, days, Some(every)) {
            slots_hold(c, &p);
        }
    }
}

/// A form body as the join flow and `/me` read it (`Fields`, raw bytes, not always
/// UTF-8), then step 1's choices, the connect forms' `back` address and, when a fixed
/// campaign accepts the choices, the pledge's slots.
pub fn form(data: &[u8]) {
    let parsed = Fields::parse(data);
    assert_eq!(
        parsed.is_ok(),
        std::str::from_utf8(data).is_ok(),
        "UTF-8 bodies and only they are read"
    );
    let Ok(f) = parsed else { return };

    let back = crate::web::connect::back_to(&f);
    assert!(
        back.starts_with('/') && !back.starts_with("//"),
        "{:?} leaves the site",
        short(&back)
    );
    let to = crate::web::connect::with_flash(&back, "msg", "Could not connect: “x” <y>");
    assert!(
        axum::http::HeaderValue::from_str(&to).is_ok(),
        "{:?} cannot be a Location header",
        short(&to)
    );

    let Ok(choice) = Choice::from_fields(&f) else {
        return;
    };
    let again = Choice::from_fields(&Fields::parse(choice.query().as_bytes()).expect("UTF-8"))
        .expect("a query picket wrote reads back");
    assert_eq!(again.tz, choice.tz);
    assert_eq!(again.days, choice.days);
    assert_eq!(again.every, choice.every);

    for c in fixed_campaigns() {
        if let Ok(p) = choice.participation(c) {
            slots_hold(c, &p);
        }
    }
}

/// A post template and its variables. The text up to the first NUL byte is the template
/// (a `[templates]` variant); the next NUL-separated parts replace, in order, the hashtag,
/// the title, the participant's name, `elsewhere` and the time zone. Not UTF-8 is read
/// lossily. Templates that call `range` or `get_env` are skipped: those are unbounded
/// loops and the host's environment, which only an operator writes into a campaign file.
pub fn template(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let src = parts.next().unwrap_or_default();
    if src.contains("range") || src.contains("get_env") {
        return;
    }
    let mut vars = PostVars::sample("SocialMediaStrike", "Social Media Strike", "sms");
    for (slot, value) in [
        &mut vars.hashtag,
        &mut vars.title,
        &mut vars.participant.name,
        &mut vars.elsewhere,
        &mut vars.timezone,
    ]
    .into_iter()
    .zip(parts)
    {
        *slot = value.to_string();
    }

    let Ok(out) = PostRenderer::check_variant(src, &vars) else {
        return;
    };
    if !src.contains('{') {
        assert_eq!(out, src.trim(), "text without tags changed");
    }
    let compiled =
        PostRenderer::new([("t", &[src.to_string()][..])]).expect("a variant that checks compiles");
    compiled
        .render("t", 0, &vars)
        .expect("a variant that checks renders");
    for network in NetworkKind::ALL {
        let m = measure(network, &out);
        let _ = (m.fits(), m.describe());
    }
    facets_hold(&out);
}

/// Bluesky rich-text facets of a text (lossy UTF-8).
pub fn facets(data: &[u8]) {
    facets_hold(&String::from_utf8_lossy(data));
}

/// A declaration's Markdown (lossy UTF-8) as the campaign page shows it, its normal form
/// and hash, and the changes a copy makes (the text split in two halves as original and
/// copy). No `href` or `src` may keep a scheme other than http(s) or mailto.
pub fn declaration(data: &[u8]) {
    let md = String::from_utf8_lossy(data);
    let html = crate::render::declaration::to_html(&md);
    if let Some(tag) = raw_html(&html) {
        panic!("raw HTML <{tag}> got through: {html}");
    }
    declaration_links(data);

    let normal = declaration::normalize(&md);
    assert_eq!(
        declaration::normalize(&normal),
        normal,
        "normalize is not idempotent"
    );
    assert_eq!(
        declaration::content_hash(&md),
        declaration::content_hash(&normal)
    );
    assert!(declaration::proposed_changes(&md, &normal).is_empty());

    let mut mid = md.len() / 2;
    while !md.is_char_boundary(mid) {
        mid -= 1;
    }
    let (original, copy) = md.split_at(mid);
    let changes = declaration::proposed_changes(original, copy);
    let words = |kind| {
        changes
            .hunks
            .iter()
            .flat_map(|h| &h.parts)
            .filter(|p| p.kind == kind)
            .map(|p| p.text.split_whitespace().count())
            .sum::<usize>()
    };
    assert_eq!(words(declaration::PartKind::Inserted), changes.inserted);
    assert_eq!(words(declaration::PartKind::Deleted), changes.deleted);
    let copy_lines = declaration::normalize(copy).lines().count().max(1);
    for h in &changes.hunks {
        assert!(
            h.line >= 1 && h.line <= copy_lines,
            "hunk at line {}",
            h.line
        );
    }
}

/// The declaration's links: no `href` or `src` of the rendered Markdown keeps a scheme
/// other than http, https or mailto (a `javascript:` link in a declaration copied from
/// another host is a stored XSS). Part of [`declaration`]; on its own for a quick check of
/// the sanitiser.
pub fn declaration_links(data: &[u8]) {
    let html = crate::render::declaration::to_html(&String::from_utf8_lossy(data));
    let bad = unsafe_links(&html);
    assert!(bad.is_empty(), "live links {bad:?} in {html}");
}

/// Every `href` or `src` value in `html` whose scheme is not http, https or mailto (after
/// undoing character references and dropping the blanks browsers ignore).
pub fn unsafe_links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\""] {
        for (at, _) in html.match_indices(attr) {
            let rest = &html[at + attr.len()..];
            let value = &rest[..rest.find('"').unwrap_or(rest.len())];
            let plain: String = unescape(value)
                .chars()
                .filter(|c| !c.is_whitespace() && !c.is_control())
                .collect::<String>()
                .to_ascii_lowercase();
            // RFC 3986 scheme syntax; anything else before a ':' is a relative path.
            let scheme = plain.split_once(':').map(|(s, _)| s).filter(|s| {
                s.starts_with(|c: char| c.is_ascii_alphabetic())
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            });
            if scheme.is_some_and(|s| !matches!(s, "http" | "https" | "mailto")) {
                out.push(value.to_string());
            }
        }
    }
    out
}

/// Character references as a browser reads them in an attribute (enough of them to
/// spell a scheme: numeric ones and the few named ones pulldown-cmark writes).
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.find(';').unwrap_or(0);
        let name = &rest[1..end.max(1)];
        let c = match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "colon" => Some(':'),
            _ => name
                .strip_prefix("#x")
                .or_else(|| name.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) if end > 0 => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The first element in `html` that Markdown without raw HTML does not produce.
fn raw_html(html: &str) -> Option<String> {
    const MADE_BY_MARKDOWN: &[&str] = &[
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "a",
        "img",
        "em",
        "strong",
        "del",
        "code",
        "pre",
        "blockquote",
        "ul",
        "ol",
        "li",
        "hr",
        "br",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "sup",
        "div",
        "input",
    ];
    for (at, _) in html.match_indices('<') {
        let rest = html[at + 1..].trim_start_matches('/');
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if !MADE_BY_MARKDOWN.contains(&name.as_str()) {
            return Some(name);
        }
    }
    None
}

fn duration_holds(s: &str) {
    let Ok(d) = parse_duration(s) else { return };
    let s = short(s);
    assert!(d > Duration::zero(), "{s:?} parsed to {d}");
    assert_eq!(d.num_seconds() % 60, 0, "{s:?} is not whole minutes");
    let printed = fmt_duration(d);
    assert_eq!(
        parse_duration(&printed),
        Ok(d),
        "{s:?} printed as {printed:?}"
    );
}

/// The start of a long input, for a failure message a person can read.
fn short(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}... ({} bytes)", &s[..i], s.len()),
        None => s.to_string(),
    }
}

fn when_holds(s: &str) {
    match parse_when(s) {
        Ok(When::Every(d) | When::Before(d)) => assert!(d > Duration::zero()),
        Ok(When::Daily(t)) => assert_eq!(chrono::Timelike::second(&t), 0),
        Ok(When::Start | When::End) | Err(_) => {}
    }
}

/// What must hold of any campaign that validates, as the server then uses it.
fn campaign_holds(c: &Campaign) {
    assert!(!c.id.is_empty() && !c.posts.is_empty() && !c.days().is_empty());
    let json = serde_json::to_value(c).expect("a campaign serializes for the API");
    let _: campaign::Strike =
        serde_json::from_value(json["strike"].clone()).expect("the API's strike reads back");
    let _ = c.strike.earliest_start();
    // The strike card lays out as one well-formed document whatever the title, hashtag,
    // description or `card_why` say: nothing from the file is markup in it.
    let day = c.days()[0];
    for size in [crate::card::Size::Square, crate::card::Size::Story] {
        let svg = crate::card::svg(&c.card_notice(day, "https://picket.example.org"), size);
        let doc = resvg::usvg::roxmltree::Document::parse(&svg).expect("a card is well-formed");
        let elements: Vec<&str> = doc
            .descendants()
            .filter(|n| n.is_element())
            .map(|n| n.tag_name().name())
            .collect();
        assert!(
            elements
                .iter()
                .all(|e| matches!(*e, "svg" | "rect" | "text")),
            "{elements:?}"
        );
    }
    let renderer = PostRenderer::new(c.templates.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
        .expect("validated templates compile");
    let vars = PostVars::sample(&c.hashtag, &c.title, &c.id);
    for (name, variants) in &c.templates {
        for i in 0..variants.len() {
            renderer
                .render(name, i, &vars)
                .expect("validated templates render");
        }
    }
    for tz in [
        chrono_tz::UTC,
        chrono_tz::Pacific::Kiritimati,
        chrono_tz::Pacific::Pago_Pago,
        chrono_tz::America::Santiago,
    ] {
        for every in [None, Some(c.min_interval)] {
            let p = Participation {
                tz: tz.into(),
                days: None,
                every,
            };
            assert_eq!(
                c.check_participation(&p),
                Ok(()),
                "all days, finest cadence"
            );
            if too_many_slots(c, &p) {
                continue;
            }
            slots_hold(c, &p);
        }
    }
}

/// Would `p` give more slots than a fuzzer can afford to compute? A campaign's operator
/// may write a window of centuries; that is their choice, not a crash.
fn too_many_slots(c: &Campaign, p: &Participation) -> bool {
    let Some(finest) = c
        .posts
        .iter()
        .filter_map(|r| match r.when {
            When::Every(d) => Some(p.every.unwrap_or(d).min(d)),
            When::Daily(_) => Some(Duration::hours(23)),
            _ => None,
        })
        .min()
    else {
        return false;
    };
    let span: i64 = c
        .periods(p)
        .iter()
        .map(|pd| (pd.end - pd.start).num_minutes())
        .sum();
    span / finest.num_minutes().max(1) > 20_000
}

/// What must hold of the slots of any participation a campaign accepts.
fn slots_hold(c: &Campaign, p: &Participation) {
    let slots = c.slots(p);
    let mut keys = HashSet::new();
    for (i, s) in slots.iter().enumerate() {
        assert!(s.window_end > s.at, "{} has an empty window", s.key);
        assert!(s.day <= s.days_total, "{} is on day {}", s.key, s.day);
        assert!(keys.insert(&s.key), "{} twice", s.key);
        if let Some(next) = slots.get(i + 1) {
            assert!(s.at <= next.at, "{} after {}", s.key, next.key);
        }
    }
}

fn facets_hold(text: &str) {
    let mut end = 0;
    for s in facets::detect(text) {
        let r = s.bytes.clone();
        assert!(
            r.start < r.end && r.end <= text.len(),
            "{r:?} outside the text"
        );
        assert!(
            text.is_char_boundary(r.start) && text.is_char_boundary(r.end),
            "{r:?} splits a character"
        );
        assert!(
            r.start >= end,
            "{r:?} overlaps the span before, ending at {end}"
        );
        end = r.end;
        let covered = &text[r];
        match &s.feature {
            Feature::Link { uri } => assert_eq!(uri, covered),
            Feature::Tag { tag } => {
                let body = covered
                    .strip_prefix('#')
                    .or_else(|| covered.strip_prefix('＃'));
                assert_eq!(body, Some(tag.as_str()));
                assert!(tag.graphemes(true).count() <= 64 && tag.len() <= 640);
            }
            Feature::Mention { handle } => {
                assert_eq!(covered[1..].to_ascii_lowercase(), *handle);
                assert!(facets::is_handle(handle), "{handle:?} is no handle");
            }
        }
    }
}

/// Does the campaign name a declaration or origin file outside its own folder? Such a
/// file is skipped: the fuzzer would read whatever the machine has (`/dev/zero` never
/// ends), which tells nothing about picket.
fn names_a_file_elsewhere(src: &str) -> bool {
    let Ok(doc) = src.parse::<toml::Table>() else {
        return false;
    };
    let Some(decl) = doc.get("declaration") else {
        return false;
    };
    let mut names = Vec::new();
    match decl {
        toml::Value::String(s) => names.push(s.as_str()),
        toml::Value::Table(t) => {
            names.extend(t.get("file").and_then(|f| f.as_str()));
            names.extend(
                t.get("origin")
                    .and_then(|o| o.get("file"))
                    .and_then(|f| f.as_str()),
            );
        }
        _ => {}
    }
    names
        .iter()
        .any(|n| !matches!(*n, "declaration.md" | "original.md"))
}

/// The text of `original.md` beside fuzzed campaign files; seeds quote its hash.
pub const ORIGINAL_MD: &str = "# Original\n\nWe [stop](https://example.org) posting.\n";

/// The text of `declaration.md` beside fuzzed campaign files.
pub const DECLARATION_MD: &str =
    "# Declaration\n\nWe [stop](https://example.org) posting, *together*.\n";

/// A folder with the files fuzzed campaigns may name. One fixed folder rather than one per
/// process, so test runs and fuzz jobs leave no trail; each file is written whole and
/// renamed into place, so a process never reads another's half-written file.
fn campaign_dir() -> &'static Path {
    static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
        let dir = std::env::temp_dir().join("picket-fuzz-campaign");
        std::fs::create_dir_all(&dir).expect("temp folder");
        for (name, text) in [
            ("declaration.md", DECLARATION_MD),
            ("original.md", ORIGINAL_MD),
        ] {
            let path = dir.join(name);
            if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
                continue;
            }
            let tmp = dir.join(format!("{name}.{}", std::process::id()));
            std::fs::write(&tmp, text).expect("write beside the campaign");
            std::fs::rename(&tmp, &path).expect("rename into place");
        }
        dir
    });
    &DIR
}

/// Campaigns the cadence and form targets pledge to: days in each participant's zone,
/// days in a zone whose midnight can fall in a gap, and absolute windows (where `every`
/// may exceed a day).
fn fixed_campaigns() -> &'static [Campaign] {
    static CAMPAIGNS: LazyLock<Vec<Campaign>> = LazyLock::new(|| {
        let templates = "[templates]\nt = [\"On strike #{{ hashtag }} {{ time }}\"]\n";
        let posts = "[[posts]]\nname = \"before\"\nwhen = \"before 7d\"\ntemplate = \"t\"\n\
                     [[posts]]\nname = \"start\"\nwhen = \"start\"\ntemplate = \"t\"\n\
                     [[posts]]\nname = \"daily\"\nwhen = \"daily 09:30\"\ntemplate = \"t\"\n\
                     [[posts]]\nname = \"end\"\nwhen = \"end\"\ntemplate = \"t\"\n";
        [
            "[strike]\ntimezone = \"participant\"\ndays = [\"2027-07-04\", \"2027-07-05\"]\n\
             min_interval = \"5m\"\n\
             [[posts]]\nname = \"often\"\nwhen = \"every 1h\"\ntemplate = \"t\"\noptional = true\n",
            "[strike]\ntimezone = \"America/Santiago\"\n\
             days = [\"2027-04-03\", \"2027-04-04\", \"2027-09-04\", \"2027-09-05\"]\nmin_days = 2\n\
             [[posts]]\nname = \"often\"\nwhen = \"every 2h\"\ntemplate = \"t\"\n",
            "[strike]\nwindows = [\
             { start = \"2027-07-04T12:00:00Z\", end = \"2027-07-09T12:00:00Z\" },\
             { start = \"2027-08-01T00:00:00+14:00\", end = \"2027-08-01T06:00:00+14:00\" }]\n\
             min_interval = \"30m\"\n\
             [[posts]]\nname = \"often\"\nwhen = \"every 2d\"\ntemplate = \"t\"\noptional = true\n",
        ]
        .iter()
        .enumerate()
        .map(|(i, strike)| {
            let src = format!(
                "id = \"fixed-{i}\"\ntitle = \"Fixed {i}\"\nhashtag = \"Fixed\"\n{strike}{posts}{templates}"
            );
            campaign::parse_str(&src, Path::new("fixed.toml"))
                .unwrap_or_else(|p| panic!("fixed campaign {i}: {p:?}"))
        })
        .collect()
    });
    &CAMPAIGNS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_check_sees_script_schemes_however_they_are_spelt() {
        let html = r#"<a href="javascript:x">a</a> <a href="JaVa&#x53;cript&colon;x">b</a>
            <img src=" java&#9;script:x"> <a href="data:text/html,x">c</a>"#;
        assert_eq!(unsafe_links(html).len(), 4, "{:?}", unsafe_links(html));
    }

    #[test]
    fn the_link_check_lets_web_mail_and_relative_links_through() {
        let html = r##"<a href="https://ex.org/a:b">a</a> <a href="mailto:a@ex.org">b</a>
            <a href="/c/x">c</a> <a href="jcvs&amp;aipt!Ptt:x">d</a> <a href="#x:y">e</a>
            <img src="./a:b.png">"##;
        assert_eq!(unsafe_links(html), Vec::<String>::new());
    }
}
