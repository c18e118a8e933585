//! The link card (`app.bsky.embed.external`) for a post's first link: Bluesky does not
//! build cards server-side, the posting client does. This module reads a page's
//! OpenGraph tags (or `<title>`); the adapter fetches the page and uploads the thumbnail.
//!
//! It is a forgiving scanner for the `<head>` of well-formed pages (the invite page),
//! not an HTML parser.

/// What a card shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Card {
    pub title: String,
    pub description: String,
    /// Absolute URL of the preview image, if the page names one.
    pub image: Option<String>,
}

/// Read the card out of a page fetched from `base`; `None` when it has no title at all.
pub fn parse(html: &str, base: &url::Url) -> Option<Card> {
    let head_end = html
        .to_ascii_lowercase()
        .find("</head>")
        .unwrap_or(html.len());
    let head = &html[..head_end];
    let mut og_title = None;
    let mut og_desc = None;
    let mut desc = None;
    let mut image = None;
    for tag in head.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or("");
        if !tag.get(..4).is_some_and(|t| t.eq_ignore_ascii_case("meta")) {
            continue;
        }
        let key = attr(tag, "property").or_else(|| attr(tag, "name"));
        let Some(content) = attr(tag, "content") else {
            continue;
        };
        match key.as_deref() {
            Some("og:title") => og_title = Some(content),
            Some("og:description") => og_desc = Some(content),
            Some("description") => desc = Some(content),
            Some("og:image") => image = base.join(&content).ok().map(String::from),
            _ => {}
        }
    }
    let title = og_title.or_else(|| title_element(head))?;
    Some(Card {
        title: clip(&title, 300),
        description: clip(&og_desc.or(desc).unwrap_or_default(), 1000),
        image,
    })
}

fn title_element(head: &str) -> Option<String> {
    let lower = head.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let close = open_end + lower[open_end..].find("</title>")?;
    let t = unescape(head[open_end..close].trim());
    (!t.is_empty()).then_some(t)
}

/// The value of `name="..."` (or single-quoted) inside one tag.
fn attr(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(name) {
        let at = from + pos;
        from = at + name.len();
        let preceded_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = tag[from..].trim_start();
        if !preceded_ok || !rest.starts_with('=') {
            continue;
        }
        let rest = rest[1..].trim_start();
        let quote = rest.chars().next()?;
        if quote != '"' && quote != '\'' {
            continue;
        }
        let end = rest[1..].find(quote)?;
        return Some(unescape(&rest[1..1 + end]));
    }
    None
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn clip(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> url::Url {
        url::Url::parse("https://picket.example/i/abc").unwrap()
    }

    #[test]
    fn opengraph_tags_win_over_the_title_element() {
        let html = r#"<html><head><title>Plain</title>
            <meta property="og:title" content="Join the &amp; strike">
            <meta name='description' content='Why we strike'>
            <meta property="og:image" content="/static/card.png"></head><body></body></html>"#;
        let card = parse(html, &base()).unwrap();
        assert_eq!(card.title, "Join the & strike");
        assert_eq!(card.description, "Why we strike");
        assert_eq!(
            card.image.as_deref(),
            Some("https://picket.example/static/card.png")
        );
    }

    #[test]
    fn a_page_with_only_a_title_gives_a_card_without_image() {
        let card = parse("<HTML><HEAD><TITLE> Strike </TITLE></HEAD>", &base()).unwrap();
        assert_eq!(card.title, "Strike");
        assert_eq!(card.image, None);
    }

    #[test]
    fn a_page_without_title_gives_no_card() {
        assert_eq!(parse("<p>hello</p>", &base()), None);
    }
}
