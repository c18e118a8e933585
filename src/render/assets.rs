//! The pages' own static files (`static/picket.css`, `static/picket.js`), built into the
//! binary and served under names that carry a hash of their content
//! (`/static/picket.3f9a0c1d2e4b.js`). A changed file gets a new name, so browsers and
//! proxies may keep each one for a year, and pages load script and style from picket
//! alone (no inline `<script>`), which the Content-Security-Policy then insists on.
//!
//! The service worker (`static/sw.js`) is the one exception: it keeps its fixed address.
//!
//! Templates name them as `{{ assets.css }}` and `{{ assets.js }}` (see [`super::pages`]).

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

/// One static file.
#[derive(Debug)]
pub struct Asset {
    /// The path it is served at, hash included.
    pub path: String,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// (template name, file stem, extension, content type, body).
const FILES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "css",
        "picket",
        "css",
        "text/css; charset=utf-8",
        include_str!("../../static/picket.css"),
    ),
    (
        "js",
        "picket",
        "js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/picket.js"),
    ),
];

/// The service worker (`static/sw.js`). Not content-hashed like the others: a service
/// worker's address is its identity (and its scope), and the browser checks it for
/// changes itself. Served at `/sw.js` (`web::push`).
pub const SERVICE_WORKER: &str = include_str!("../../static/sw.js");

static ASSETS: LazyLock<Vec<(&'static str, Asset)>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(name, stem, ext, content_type, body)| {
            let hash = hex::encode(&Sha256::digest(body.as_bytes())[..6]);
            let asset = Asset {
                path: format!("/static/{stem}.{hash}.{ext}"),
                content_type,
                body,
            };
            (*name, asset)
        })
        .collect()
});

/// The asset served at `path`, if any.
pub fn by_path(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().map(|(_, a)| a).find(|a| a.path == path)
}

/// `{"css": "/static/picket.….css", "js": "/static/picket.….js"}` for templates.
pub fn paths() -> serde_json::Value {
    ASSETS
        .iter()
        .map(|(name, a)| (name.to_string(), serde_json::Value::from(a.path.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_asset_is_found_by_its_hashed_path_only() {
        let js = paths()["js"].as_str().unwrap().to_string();
        assert!(
            js.starts_with("/static/picket.") && js.ends_with(".js"),
            "{js}"
        );
        assert_eq!(js.len(), "/static/picket.".len() + 12 + ".js".len());
        assert!(by_path(&js).unwrap().body.contains("countdown"));
        assert!(by_path("/static/picket.js").is_none());
        let css = paths()["css"].as_str().unwrap().to_string();
        assert_eq!(
            by_path(&css).unwrap().content_type,
            "text/css; charset=utf-8"
        );
    }
}
