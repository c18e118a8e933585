//! Page templates (`*.html`, autoescaped) and mail templates (`mail/*.txt`, plain text,
//! not escaped: a mail body is not HTML): built into the binary, each shadowed by a file
//! of the same name in the override folder when there is one (zola/vaultwarden style),
//! so a host can restyle every page and reword every mail without rebuilding picket.

use std::path::Path;

use serde::Serialize;

use super::RenderError;

/// The built-in page templates: (name, source).
const BUILTIN: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("index.html", include_str!("../../templates/index.html")),
    ("error.html", include_str!("../../templates/error.html")),
    (
        "campaign.html",
        include_str!("../../templates/campaign.html"),
    ),
    ("signed.html", include_str!("../../templates/signed.html")),
    (
        "declaration.html",
        include_str!("../../templates/declaration.html"),
    ),
    (
        "declaration_parts.html",
        include_str!("../../templates/declaration_parts.html"),
    ),
    (
        "signatures.html",
        include_str!("../../templates/signatures.html"),
    ),
    ("join.html", include_str!("../../templates/join.html")),
    (
        "join_accounts.html",
        include_str!("../../templates/join_accounts.html"),
    ),
    ("joined.html", include_str!("../../templates/joined.html")),
    ("me.html", include_str!("../../templates/me.html")),
    ("switch.html", include_str!("../../templates/switch.html")),
    ("link.html", include_str!("../../templates/link.html")),
    (
        "new_link.html",
        include_str!("../../templates/new_link.html"),
    ),
    ("deleted.html", include_str!("../../templates/deleted.html")),
    (
        "confirmed.html",
        include_str!("../../templates/confirmed.html"),
    ),
    (
        "mail/confirm.txt",
        include_str!("../../templates/mail/confirm.txt"),
    ),
    (
        "mail/magic_link.txt",
        include_str!("../../templates/mail/magic_link.txt"),
    ),
    ("posted.html", include_str!("../../templates/posted.html")),
    ("admin.html", include_str!("../../templates/admin.html")),
    (
        "admin_sign_in.html",
        include_str!("../../templates/admin_sign_in.html"),
    ),
    ("stats.html", include_str!("../../templates/stats.html")),
    ("hosts.html", include_str!("../../templates/hosts.html")),
    (
        "mail/reminder.txt",
        include_str!("../../templates/mail/reminder.txt"),
    ),
];

/// Compiled page templates.
pub struct Pages {
    tera: tera::Tera,
    /// Variables every page can use besides its own: `assets` (the paths of the pages'
    /// stylesheet and script) and `site` ([`Pages::with_site`]).
    globals: tera::Context,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages").finish_non_exhaustive()
    }
}

impl Pages {
    /// Built-in templates, each replaced by `overrides/<name>` when that file exists.
    pub fn load(overrides: Option<&Path>) -> Result<Pages, RenderError> {
        let mut tera = tera::Tera::default();
        // Everything a user typed reaches pages through these templates: escape it. Mail
        // (`.txt`) is plain text, where `&amp;` would show as such.
        tera.autoescape_on(vec![".html"]);
        let mut sources = Vec::with_capacity(BUILTIN.len());
        for (name, builtin) in BUILTIN {
            let src = match overrides.map(|d| d.join(name)) {
                Some(p) if p.is_file() => std::fs::read_to_string(&p).map_err(|e| RenderError {
                    message: format!("reading template override {}: {e}", p.display()),
                })?,
                _ => builtin.to_string(),
            };
            sources.push((name.to_string(), src));
        }
        // Added together so `{% extends %}` resolves whatever the order.
        tera.add_raw_templates(sources)?;
        let mut globals = tera::Context::new();
        globals.insert("assets", &super::assets::paths());
        globals.insert(
            "site",
            &serde_json::json!({ "sandbox": false, "threads": false, "linkedin": false, "facebook": false }),
        );
        Ok(Pages { tera, globals })
    }

    /// Facts about this host that pages may show or hide parts by, as `site.<name>`
    /// (`site.sandbox`: the sandbox receiver is served).
    pub fn with_site(mut self, site: &impl Serialize) -> Result<Pages, RenderError> {
        self.globals.insert(
            "site",
            &serde_json::to_value(site).map_err(|e| RenderError {
                message: format!("site variables: {e}"),
            })?,
        );
        Ok(self)
    }

    pub fn render(&self, name: &str, ctx: &impl Serialize) -> Result<String, RenderError> {
        let mut all = self.globals.clone();
        // A page's own variable of the same name wins.
        all.extend(tera::Context::from_serialize(ctx)?);
        Ok(self.tera.render(name, &all)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_built_in_page_carries_inline_script_or_style() {
        // The Content-Security-Policy allows scripts and styles from picket's own files
        // only: anything inline would be blocked in the browser.
        for (name, src) in BUILTIN.iter().filter(|(n, _)| n.ends_with(".html")) {
            let lower = src.to_ascii_lowercase();
            for tag in lower.split("<script").skip(1) {
                let open = tag.split('>').next().unwrap_or_default();
                assert!(open.contains("src="), "{name}: inline <script{open}>");
            }
            assert!(!lower.contains("<style"), "{name}: a <style> element");
            assert!(!lower.contains(" style="), "{name}: a style attribute");
            assert!(
                !lower
                    .split_whitespace()
                    .any(|w| w.starts_with("on") && w.contains("=\"")),
                "{name}: an inline event handler"
            );
            assert!(!lower.contains("javascript:"), "{name}: a javascript: link");
        }
    }

    #[test]
    fn every_page_links_the_hashed_stylesheet_and_script() {
        let pages = Pages::load(None).unwrap();
        let html = pages
            .render(
                "error.html",
                &serde_json::json!({"status": 404, "title": "Not found", "message": "x"}),
            )
            .unwrap();
        let assets = super::super::assets::paths();
        assert!(
            html.contains(&format!("href=\"{}\"", assets["css"].as_str().unwrap())),
            "{html}"
        );
        assert!(html.contains(&format!(
            "<script src=\"{}\" defer>",
            assets["js"].as_str().unwrap()
        )));
    }

    #[test]
    fn user_text_in_pages_is_escaped() {
        let pages = Pages::load(None).unwrap();
        let html = pages
            .render(
                "error.html",
                &serde_json::json!({"status": 400, "title": "Bad", "message": "<script>alert(1)</script>"}),
            )
            .unwrap();
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>alert"));
    }

    #[test]
    fn mail_templates_are_plain_text_not_escaped() {
        let pages = Pages::load(None).unwrap();
        let text = pages
            .render(
                "mail/magic_link.txt",
                &serde_json::json!({"name": "Tom & <b>Jerry</b>", "url": "https://x.test/me?a=1&b=2", "until": "Monday"}),
            )
            .unwrap();
        assert!(text.contains("Hello Tom & <b>Jerry</b>,"), "{text}");
        assert!(text.contains("https://x.test/me?a=1&b=2"), "{text}");
    }

    #[test]
    fn a_file_in_the_override_folder_replaces_the_builtin_page() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("error.html"), "custom {{ message }}").unwrap();
        let pages = Pages::load(Some(dir.path())).unwrap();
        let html = pages
            .render(
                "error.html",
                &serde_json::json!({"status": 404, "title": "x", "message": "gone"}),
            )
            .unwrap();
        assert_eq!(html, "custom gone");
    }
}
