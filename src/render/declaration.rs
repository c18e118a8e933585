//! A declaration's Markdown as HTML for pages. Declarations are copied between hosts by
//! design (`declaration fork`), so the text is someone else's: the HTML is sanitised with
//! ammonia after conversion. Links and images keep only `http`, `https` and `mailto`
//! addresses, or relative ones; `javascript:`, `data:` and every other scheme are removed
//! however they are spelt (any case, character references, tabs and spaces inside), since
//! ammonia reads a URL the way a browser does. Raw HTML in the Markdown is dropped before
//! that, and what ammonia lets through has no scripts, styles or event handlers.

use std::collections::HashSet;
use std::sync::LazyLock;

/// The declaration `markdown` as safe HTML.
pub fn to_html(markdown: &str) -> String {
    use pulldown_cmark::{Event, Options, Parser, html};
    let parser = Parser::new_ext(
        markdown,
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH,
    )
    .filter(|e| !matches!(e, Event::Html(_) | Event::InlineHtml(_)));
    let mut raw = String::new();
    html::push_html(&mut raw, parser);
    SANITIZER.clean(&raw).to_string()
}

/// ammonia's defaults (a conservative set of tags and attributes, no `style`, no `on*`,
/// `rel="noopener noreferrer"` on links, relative URLs kept) with the schemes narrowed.
static SANITIZER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut b = ammonia::Builder::default();
    b.url_schemes(HashSet::from(["http", "https", "mailto"]));
    b
});

#[cfg(test)]
mod tests {
    use super::*;

    /// Links whose address runs script or carries a document, in the spellings browsers
    /// accept.
    const HOSTILE_LINKS: &[&str] = &[
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](JAVASCRIPT:alert(1))",
        "[x](jav&#x09;ascript:alert(1))",
        "[x](jav&#9;ascript:alert(1))",
        "[x](&#106;avascript:alert(1))",
        "[x](&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(1))",
        "[x](javascript&colon;alert(1))",
        "[x](<javascript:alert(1)>)",
        "[x](< javascript:alert(1)>)",
        "[x](%20javascript:alert(1))",
        "[x](\u{1}javascript:alert(1))",
        "<javascript:alert(1)>",
        "[x][r]\n\n[r]: javascript:alert(1)",
        "[x][r]\n\n[r]: <JaVaScRiPt:alert(1)>",
        "![x](javascript:alert(1))",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "[x](DATA:text/html,<script>alert(1)</script>)",
        "![x](data:image/svg+xml,<svg/onload=alert(1)>)",
        "[x](file:///etc/passwd)",
    ];

    /// Raw HTML that would run script or restyle the page.
    const HOSTILE_HTML: &[&str] = &[
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "<a href=\"javascript:alert(1)\">x</a>",
        "<style>body{display:none}</style>",
        "<iframe src=\"https://evil.example\"></iframe>",
        "<p onclick=\"alert(1)\">x</p>",
        "<svg><script>alert(1)</script></svg>",
        "text <b onmouseover=alert(1)>bold</b> text",
        "<form action=\"https://evil.example\"><input name=x></form>",
        "<object data=\"javascript:alert(1)\"></object>",
        "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    ];

    /// Every address in `html` (`href`, `src`), as a browser on a page of this host would
    /// resolve it.
    fn addresses(html: &str) -> Vec<url::Url> {
        let page = url::Url::parse("https://picket.example/c/x").unwrap();
        let mut out = Vec::new();
        for attr in ["href=\"", "src=\""] {
            for piece in html.split(attr).skip(1) {
                let raw = piece.split('"').next().unwrap().replace("&amp;", "&");
                out.push(page.join(&raw).unwrap_or_else(|e| panic!("{raw:?}: {e}")));
            }
        }
        out
    }

    fn assert_harmless(md: &str) {
        let html = to_html(md);
        for url in addresses(&html) {
            assert!(
                ["http", "https", "mailto"].contains(&url.scheme()),
                "{md:?} gave {html:?} ({url})"
            );
        }
        let lower = html.to_lowercase();
        for bad in [
            "<script", "<style", "<iframe", "<form", "<object", "<meta", "<svg", " on", "style=",
        ] {
            assert!(!lower.contains(bad), "{md:?} gave {html:?} ({bad})");
        }
    }

    #[test]
    fn links_that_run_script_or_carry_documents_lose_their_address() {
        for md in HOSTILE_LINKS {
            assert_harmless(md);
        }
    }

    #[test]
    fn raw_html_brings_no_script_style_or_event_handler() {
        for md in HOSTILE_HTML {
            assert_harmless(md);
            // Inside a paragraph too, where it is inline HTML.
            assert_harmless(&format!("Before {md} after"));
        }
    }

    #[test]
    fn web_mail_and_relative_links_and_ordinary_markdown_stay() {
        let html = to_html(
            "# Declaration\n\nWe **demand** [data](https://example.org/a?b=1&c=2), \
             [mail](mailto:strike@example.org), [here](/c/x/declaration) and \
             [below](#sign).\n\n| a | b |\n|---|---|\n| 1 | ~~2~~ |\n",
        );
        assert!(html.contains("<h1>Declaration</h1>"), "{html}");
        assert!(html.contains("<strong>demand</strong>"), "{html}");
        assert!(
            html.contains("href=\"https://example.org/a?b=1&amp;c=2\""),
            "{html}"
        );
        assert!(
            html.contains("href=\"mailto:strike@example.org\""),
            "{html}"
        );
        assert!(html.contains("href=\"/c/x/declaration\""), "{html}");
        assert!(html.contains("href=\"#sign\""), "{html}");
        assert!(
            html.contains("<table>") && html.contains("<del>2</del>"),
            "{html}"
        );
        assert!(html.contains("rel=\"noopener noreferrer\""), "{html}");
    }
}
