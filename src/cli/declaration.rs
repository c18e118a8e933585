//! `picket declaration hash` and `picket declaration fork`: a blogger's own copy of a
//! declaration, served by their own picket, that shows what it changes in the original.
//!
//! `fork` writes three files side by side: a campaign file, the copy of the declaration (to
//! edit) and the original as it was fetched (kept so the changes can be computed offline;
//! its hash is in the campaign file and checked on every load). From another picket host
//! it reads `GET /c/{id}/declaration.md` and the campaign's JSON; from a local campaign
//! file it copies the file, comments and all. It never overwrites a file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::campaign::declaration::{content_hash, normalize};
use crate::campaign::{self, Strike, StrikeTime};
use crate::network::peer;

/// `picket declaration hash FILE`: the content hash, hex, on its own line. A campaign file
/// (`*.toml`) stands for its declaration.
pub fn hash(path: &Path) -> anyhow::Result<ExitCode> {
    if path.extension().is_some_and(|e| e == "toml") {
        return match campaign::load_file(path) {
            Ok(c) => match c.declaration {
                Some(d) => {
                    println!("{}", d.sha256);
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("error: {} has no declaration", path.display());
                    Ok(ExitCode::from(2))
                }
            },
            Err(problems) => {
                for p in &problems {
                    println!("{p}");
                }
                Ok(ExitCode::from(2))
            }
        };
    }
    let text = match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                eprintln!(
                    "error: {} is not UTF-8 text: save it as UTF-8 first",
                    path.display()
                );
                return Ok(ExitCode::from(2));
            }
        },
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return Ok(ExitCode::from(2));
        }
    };
    println!("{}", content_hash(&text));
    Ok(ExitCode::SUCCESS)
}

pub struct ForkArgs {
    pub source: String,
    pub campaign_id: Option<String>,
    pub out: PathBuf,
    pub origin_url: Option<String>,
}

/// Where a fork comes from, read and checked.
struct Source {
    /// The source campaign's id.
    id: String,
    title: String,
    /// The original declaration, normalised (so its hash is the hash of the saved file).
    text: String,
    /// Where readers find the original.
    url: Option<String>,
    kind: SourceKind,
}

enum SourceKind {
    /// A local campaign file's text, copied with its comments.
    File(String),
    /// Another host's campaign, as its JSON API describes it.
    Remote(serde_json::Value),
}

/// The three files a fork writes.
struct Names {
    campaign: PathBuf,
    copy: String,
    origin: String,
}

/// `picket declaration fork SOURCE [--campaign-id NEW] [--out DIR]`.
pub fn fork(args: ForkArgs) -> anyhow::Result<ExitCode> {
    let source = match read_source(&args) {
        Ok(s) => s,
        Err(Refusal(msg, code)) => {
            eprintln!("error: {msg}");
            return Ok(ExitCode::from(code));
        }
    };
    let id = args
        .campaign_id
        .clone()
        .unwrap_or_else(|| source.id.clone());
    let names = Names {
        campaign: args.out.join(format!("{id}.toml")),
        copy: format!("{id}.declaration.md"),
        origin: format!("{id}.declaration.origin.md"),
    };
    if let Err(Refusal(msg, code)) = check_free(&args.out, &id, &names) {
        eprintln!("error: {msg}");
        return Ok(ExitCode::from(code));
    }
    let sha256 = content_hash(&source.text);
    let campaign_toml = match &source.kind {
        SourceKind::File(toml) => from_file(toml, &id, &names, &source, &sha256)?,
        SourceKind::Remote(json) => match from_remote(json, &id, &names, &source, &sha256) {
            Ok(t) => t,
            Err(Refusal(msg, code)) => {
                eprintln!("error: {msg}");
                return Ok(ExitCode::from(code));
            }
        },
    };

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let written = [
        (args.out.join(&names.origin), source.text.as_str()),
        (args.out.join(&names.copy), source.text.as_str()),
        (names.campaign.clone(), campaign_toml.as_str()),
    ];
    for (path, text) in &written {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    // The new file must pass `campaign check` as written; if it does not (an --campaign-id
    // that is not a slug, a remote campaign this picket cannot express), take it back.
    if let Err(problems) = campaign::load_file(&names.campaign) {
        for p in &problems {
            println!("{p}");
        }
        for (path, _) in &written {
            let _ = std::fs::remove_file(path);
        }
        eprintln!("error: the forked campaign is not valid, nothing was written");
        return Ok(ExitCode::from(2));
    }

    let from = source.url.clone().unwrap_or_else(|| args.source.clone());
    println!(
        "Forked the declaration of \"{}\" from {from}\n(sha256 {sha256}).\n",
        source.title
    );
    println!("Wrote:");
    println!(
        "  {}  the campaign: same strike, your page",
        names.campaign.display()
    );
    println!(
        "  {}  your copy of the declaration: edit it",
        args.out.join(&names.copy).display()
    );
    println!(
        "  {}  the original, to compare with: leave it as it is",
        args.out.join(&names.origin).display()
    );
    println!("\nNext:");
    println!(
        "  1. Edit {} (Markdown). Your changes are listed under the text as \"Proposed changes\".",
        args.out.join(&names.copy).display()
    );
    let mut step = 2;
    if source.url.is_none() {
        println!(
            "  {step}. Add url = \"https://.../c/{}/declaration.md\" under [declaration.origin] in {} so readers can open the original.",
            source.id,
            names.campaign.display()
        );
        step += 1;
    }
    if matches!(source.kind, SourceKind::Remote(_)) {
        println!(
            "  {step}. Read the [[posts]] and [templates] in {}: the original's host does not publish its own, these are a start.",
            names.campaign.display()
        );
        step += 1;
    }
    println!(
        "  {step}. picket campaign check {}",
        names.campaign.display()
    );
    println!(
        "  {}. picket serve, then open /c/{id}/declaration",
        step + 1
    );
    Ok(ExitCode::SUCCESS)
}

/// Why a fork stopped: printed as is; exit 2 for input the user can fix, 1 otherwise
/// (a host that cannot be reached, a disk that cannot be read).
struct Refusal(String, u8);

fn invalid(msg: String) -> Refusal {
    Refusal(msg, 2)
}

impl<E: std::fmt::Display> From<E> for Refusal {
    fn from(e: E) -> Self {
        Refusal(e.to_string(), 1)
    }
}

fn read_source(args: &ForkArgs) -> Result<Source, Refusal> {
    if args.source.starts_with("http://") || args.source.starts_with("https://") {
        if args.origin_url.is_some() {
            return Err(invalid(
                "--origin-url is for a local SOURCE: a URL is its own origin".into(),
            ));
        }
        return read_remote(&args.source);
    }
    let path = Path::new(&args.source);
    let c = campaign::load_file(path).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        invalid(format!(
            "{} is not a valid campaign file:\n{}",
            path.display(),
            list.join("\n")
        ))
    })?;
    let Some(d) = &c.declaration else {
        return Err(invalid(format!(
            "{} has no declaration to copy",
            path.display()
        )));
    };
    let url = match &args.origin_url {
        None => None,
        Some(u) => Some(http_url(u)?.to_string()),
    };
    let toml = std::fs::read_to_string(path)?;
    Ok(Source {
        id: c.id.to_string(),
        title: c.title.clone(),
        text: normalize(&d.markdown),
        url,
        kind: SourceKind::File(toml),
    })
}

fn http_url(s: &str) -> Result<url::Url, Refusal> {
    match url::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u),
        _ => Err(invalid(format!(
            "\"{s}\" is not an http(s) address, e.g. https://picket.example.org/c/social-media-strike/declaration.md"
        ))),
    }
}

/// `https://host[/prefix]/c/{id}[/declaration[.md]]` -> (host base, id).
fn campaign_address(u: &url::Url) -> Option<(String, String)> {
    let segments: Vec<&str> = u.path_segments()?.filter(|s| !s.is_empty()).collect();
    let c_at = segments.iter().rposition(|s| *s == "c")?;
    let rest = &segments[c_at + 1..];
    let id = match rest {
        [id] | [id, "declaration" | "declaration.md"] => *id,
        _ => return None,
    };
    let mut base = u.clone();
    base.set_query(None);
    base.set_fragment(None);
    base.set_path(&segments[..c_at].join("/"));
    Some((
        base.as_str().trim_end_matches('/').to_string(),
        id.to_string(),
    ))
}

fn read_remote(source: &str) -> Result<Source, Refusal> {
    let u = http_url(source)?;
    let Some((base, id)) = campaign_address(&u) else {
        return Err(invalid(format!(
            "{source} is not the address of a picket campaign: use its declaration, e.g. \
             https://picket.example.org/c/social-media-strike/declaration.md (or the campaign \
             page /c/ID)"
        )));
    };
    let raw_url = format!("{base}/c/{id}/declaration.md");
    let api_url = format!("{base}/api/v1/campaigns/{id}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (fetched, json) = rt.block_on(async {
        // The operator typed this address: it may be a host on their own network.
        let http = crate::network::Http::trusted();
        let text = peer::get_text(&http, &raw_url).await?;
        let json = peer::get_json(&http, &api_url).await?;
        Ok::<_, peer::FetchError>((text, json))
    })?;
    let text = normalize(&fetched.text);
    let sha256 = content_hash(&text);
    if let Some(announced) = &fetched.announced_sha256
        && *announced != sha256
    {
        return Err(invalid(format!(
            "{raw_url} announced sha256 {announced} but the text received hashes to {sha256}: \
             it was changed or cut off on the way; try again"
        )));
    }
    if text.is_empty() {
        return Err(invalid(format!("{raw_url} is empty: nothing to copy")));
    }
    let title = json["title"].as_str().unwrap_or(&id).to_string();
    Ok(Source {
        id,
        title,
        text,
        url: Some(raw_url),
        kind: SourceKind::Remote(json),
    })
}

/// Refuse to overwrite, and to reuse an id another campaign in `out` already has.
fn check_free(out: &Path, id: &str, names: &Names) -> Result<(), Refusal> {
    for path in [
        names.campaign.clone(),
        out.join(&names.copy),
        out.join(&names.origin),
    ] {
        if path.exists() {
            return Err(invalid(format!(
                "{} already exists: choose another id with --campaign-id, or another folder with --out",
                path.display()
            )));
        }
    }
    if out.is_dir() {
        let (campaigns, _) = campaign::check_paths(&[out.to_path_buf()]);
        if let Some(other) = campaigns.iter().find(|c| c.id == id) {
            return Err(invalid(format!(
                "campaign id \"{id}\" is already used by {} in {}: choose another with --campaign-id",
                other.source.display(),
                out.display()
            )));
        }
    }
    Ok(())
}

/// The `[declaration]` table with its origin, as the fork writes it.
fn declaration_table(names: &Names, url: Option<&str>, sha256: &str) -> toml_edit::Table {
    use toml_edit::{Item, Table, value};
    let mut origin = Table::new();
    if let Some(url) = url {
        origin["url"] = value(url);
    }
    origin["sha256"] = value(sha256);
    origin["file"] = value(&names.origin);
    let mut table = Table::new();
    table["file"] = value(&names.copy);
    table.insert("origin", Item::Table(origin));
    table.decor_mut().set_prefix(
        "\n# Your copy of the declaration (edit it) and the original it was copied from (leave it\n\
         # as it is: the page's \"Proposed changes\" are computed against it). See campaigns/README.md.\n",
    );
    table
}

/// A local campaign file with a new id and the declaration pointing at the copy.
fn from_file(
    toml: &str,
    id: &str,
    names: &Names,
    source: &Source,
    sha256: &str,
) -> anyhow::Result<String> {
    let mut doc: toml_edit::DocumentMut = toml.parse().context("re-reading the campaign file")?;
    doc["id"] = toml_edit::value(id);
    doc.remove("declaration");
    let mut table = declaration_table(names, source.url.as_deref(), sha256);
    // Right after [strike], near the top, rather than at the end of the file.
    let at = doc
        .get("strike")
        .and_then(|s| s.as_table())
        .and_then(|t| t.position());
    table.set_position(at);
    if let Some(origin) = table.get_mut("origin").and_then(|o| o.as_table_mut()) {
        origin.set_position(at);
    }
    doc.insert("declaration", toml_edit::Item::Table(table));
    Ok(doc.to_string())
}

/// A TOML basic string.
fn q(s: &str) -> String {
    toml_edit::Value::from(s).to_string()
}

/// A new campaign file for another host's campaign: its name, hashtag and strike, with
/// posts of our own (the API does not publish the original's templates).
fn from_remote(
    json: &serde_json::Value,
    id: &str,
    names: &Names,
    source: &Source,
    sha256: &str,
) -> Result<String, Refusal> {
    let field = |k: &str| json[k].as_str().map(str::to_string);
    let (Some(title), Some(hashtag)) = (field("title"), field("hashtag")) else {
        return Err(invalid(format!(
            "the campaign at {} lacks a title or hashtag: is it a picket host?",
            source.url.as_deref().unwrap_or("?")
        )));
    };
    let strike: Strike = serde_json::from_value(json["strike"].clone()).map_err(|e| {
        invalid(format!(
            "the campaign's strike could not be read ({e}): is the host's picket much older or newer than this one?"
        ))
    })?;
    let networks: Vec<String> = json["networks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(q))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();

    let mut out = format!(
        "# A copy of \"{title}\" from {from}, made by `picket declaration fork`:\n\
         # the same strike and hashtag, with your own copy of the declaration.\n\
         # Format: campaigns/README.md. Check it with `picket campaign check`.\n\n\
         id = {id}\ntitle = {title_q}\nhashtag = {hashtag}\n",
        title = title.replace('\n', " "),
        from = source.url.as_deref().unwrap_or("another host"),
        id = q(id),
        title_q = q(&title),
        hashtag = q(&hashtag),
    );
    if let Some(d) = field("description") {
        out.push_str(&format!("description = {}\n", q(&d)));
    }
    if !networks.is_empty() {
        out.push_str(&format!("networks = [{}]\n", networks.join(", ")));
    }
    let mut table = toml_edit::DocumentMut::new();
    table.insert(
        "declaration",
        toml_edit::Item::Table(declaration_table(names, source.url.as_deref(), sha256)),
    );
    out.push_str(&table.to_string());

    out.push_str("\n[strike]\n");
    match &strike.when {
        StrikeTime::ParticipantDays(days) => {
            out.push_str("timezone = \"participant\"\n");
            out.push_str(&format!("days = [{}]\n", dates(days)));
        }
        StrikeTime::ZonedDays { tz, days } => {
            out.push_str(&format!("timezone = {}\n", q(tz.name())));
            out.push_str(&format!("days = [{}]\n", dates(days)));
        }
        StrikeTime::Windows(windows) => {
            out.push_str("windows = [\n");
            for w in windows {
                out.push_str(&format!(
                    "  {{ start = \"{}\", end = \"{}\" }},\n",
                    rfc3339(w.start),
                    rfc3339(w.end)
                ));
            }
            out.push_str("]\n");
        }
    }
    out.push_str(&format!("min_days = {}\n", strike.min_days));
    out.push_str(REMOTE_POSTS);
    Ok(out)
}

fn dates(days: &[chrono::NaiveDate]) -> String {
    days.iter()
        .map(|d| format!("\"{d}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Posts for a campaign forked from another host: a notice on each strike day and a
/// "back" post, short enough for every network picket knows.
const REMOTE_POSTS: &str = r#"
# The original's [threshold], if any, is left out: pledges are counted per host.

# The original's host does not publish its posts: these are a start, change them freely.
[[posts]]
name = "notice"
when = "start"
template = "notice"

[[posts]]
name = "back"
when = "end"
template = "back"

[templates]
notice = [
  "On strike today: #{{ hashtag }}. No posts from me here but this one. Why: {{ declaration_url }} Join: {{ invite_link }}",
  "Day {{ day }} of {{ days_total }} of my #{{ hashtag }}. Read the declaration and sign: {{ invite_link }}",
  "Silence on purpose: I'm on #{{ hashtag }} today. Sign and strike too: {{ invite_link }}",
]
back = [
  "I'm back from #{{ hashtag }}. The declaration is still open for signatures: {{ invite_link }}",
  "Strike over for me. Thank you to everyone on #{{ hashtag }}. Why we did it: {{ declaration_url }}",
  "Back from #{{ hashtag }}. Next time, strike with me: {{ invite_link }}",
]
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn address(s: &str) -> Option<(String, String)> {
        campaign_address(&url::Url::parse(s).unwrap())
    }

    #[test]
    fn a_declaration_or_campaign_address_names_the_host_and_the_campaign() {
        let expected = Some((
            "https://picket.example.org".to_string(),
            "social-media-strike".to_string(),
        ));
        for s in [
            "https://picket.example.org/c/social-media-strike/declaration.md",
            "https://picket.example.org/c/social-media-strike/declaration",
            "https://picket.example.org/c/social-media-strike",
            "https://picket.example.org/c/social-media-strike/?ref=abc",
        ] {
            assert_eq!(address(s), expected, "{s}");
        }
        assert_eq!(
            address("http://127.0.0.1:8080/strike/c/x/declaration.md"),
            Some(("http://127.0.0.1:8080/strike".to_string(), "x".to_string()))
        );
        assert_eq!(address("https://blog.example/declaration.md"), None);
        assert_eq!(address("https://picket.example.org/c/x/signatures"), None);
    }

    #[test]
    fn a_remote_campaign_with_windows_becomes_a_valid_campaign_file() {
        // Arrange: what /api/v1/campaigns/{id} answers for a campaign with windows.
        let dir = tempfile::tempdir().unwrap();
        let names = Names {
            campaign: dir.path().join("copy.toml"),
            copy: "copy.declaration.md".into(),
            origin: "copy.declaration.origin.md".into(),
        };
        let text = "# Ours \"too\"\n";
        std::fs::write(dir.path().join(&names.copy), text).unwrap();
        std::fs::write(dir.path().join(&names.origin), text).unwrap();
        let json = serde_json::json!({
            "id": "w", "title": "Window \"strike\"", "hashtag": "WinStrike",
            "description": null, "networks": ["mastodon", "bluesky"],
            "strike": {"when": {"Windows": [
                {"start": "2027-07-04T09:00:00Z", "end": "2027-07-04T17:00:00Z"},
                {"start": "2027-07-05T09:00:00Z", "end": "2027-07-05T17:00:00Z"}
            ]}, "min_days": 2},
        });
        let source = Source {
            id: "w".into(),
            title: "Window \"strike\"".into(),
            text: text.into(),
            url: Some("https://picket.example.org/c/w/declaration.md".into()),
            kind: SourceKind::Remote(json.clone()),
        };

        // Act
        let toml = from_remote(&json, "copy", &names, &source, &content_hash(text))
            .unwrap_or_else(|r| panic!("{}", r.0));

        // Assert
        let c =
            campaign::parse_str(&toml, &names.campaign).unwrap_or_else(|p| panic!("{toml}\n{p:?}"));
        assert_eq!(c.title, "Window \"strike\"");
        assert_eq!(c.strike.min_days, 2);
        let StrikeTime::Windows(w) = &c.strike.when else {
            panic!("{toml}")
        };
        assert_eq!(w.len(), 2);
        let origin = c.declaration.unwrap().origin.unwrap();
        assert!(origin.changes.is_empty());
    }

    #[test]
    fn toml_strings_are_quoted_and_escaped() {
        assert_eq!(q("a \"b\""), r#"'a "b"'"#);
        assert_eq!(q("plain"), "\"plain\"");
    }
}
