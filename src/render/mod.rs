//! The renderer: the only place that uses `tera`.
//!
//! Two kinds of output, two escaping rules: pages (`*.html`, autoescaped, built into the
//! binary with an override folder, see [`pages`]) and post bodies (campaign template
//! variants, never escaped: a post is plain text and an `&` must stay an `&`). What goes
//! into a post body, and which variant is sent, is decided in `compose`.
//! Declarations are Markdown from anyone, turned into sanitised HTML (see [`declaration`]).

pub mod assets;
pub mod declaration;
pub mod pages;

use serde::Serialize;

/// A template variant could not be compiled or rendered.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RenderError {
    /// The whole tera error chain, flattened to one line a person can act on.
    pub message: String,
}

impl From<tera::Error> for RenderError {
    fn from(e: tera::Error) -> Self {
        RenderError {
            message: flatten(&e),
        }
    }
}

fn flatten(e: &tera::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

/// Compiled post templates of one campaign: each variant is parsed once, then rendered
/// many times (the dispatcher renders every post it sends).
pub struct PostRenderer {
    tera: tera::Tera,
}

impl std::fmt::Debug for PostRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostRenderer").finish_non_exhaustive()
    }
}

impl PostRenderer {
    /// Compile `templates` (name -> variants). Fails on the first variant that does not parse.
    pub fn new<'a>(
        templates: impl IntoIterator<Item = (&'a str, &'a [String])>,
    ) -> Result<Self, (String, usize, RenderError)> {
        let mut tera = tera::Tera::default();
        // Post bodies are plain text; escaping would turn `&` into `&amp;` in a post.
        tera.autoescape_on(vec![]);
        for (name, variants) in templates {
            for (i, src) in variants.iter().enumerate() {
                tera.add_raw_template(&key(name, i), src)
                    .map_err(|e| (name.to_string(), i, RenderError::from(e)))?;
            }
        }
        Ok(PostRenderer { tera })
    }

    /// Check one variant on its own: does it parse and render with `vars`?
    pub fn check_variant(src: &str, vars: &impl Serialize) -> Result<String, RenderError> {
        let mut tera = tera::Tera::default();
        tera.autoescape_on(vec![]);
        tera.add_raw_template("variant", src)?;
        let ctx = tera::Context::from_serialize(vars)?;
        Ok(tidy(&tera.render("variant", &ctx)?))
    }

    pub fn render(
        &self,
        template: &str,
        variant: usize,
        vars: &impl Serialize,
    ) -> Result<String, RenderError> {
        let ctx = tera::Context::from_serialize(vars)?;
        Ok(tidy(&self.tera.render(&key(template, variant), &ctx)?))
    }
}

fn key(name: &str, variant: usize) -> String {
    format!("{name}#{variant}")
}

/// Trim the ends: TOML multi-line strings and tera tags leave stray newlines that would
/// count against a network's limit and show as blank lines.
fn tidy(s: &str) -> String {
    s.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> serde_json::Value {
        serde_json::json!({
            "hashtag": "SocialMediaStrike",
            "participant": { "name": "Alex Example" },
        })
    }

    #[test]
    fn post_bodies_are_not_html_escaped() {
        let out = PostRenderer::check_variant("Tom & Jerry <3 #{{ hashtag }}", &vars()).unwrap();
        assert_eq!(out, "Tom & Jerry <3 #SocialMediaStrike");
    }

    #[test]
    fn an_unknown_variable_is_an_error_that_names_it() {
        let err = PostRenderer::check_variant("hi {{ invite_url }}", &vars()).unwrap_err();
        assert!(err.message.contains("invite_url"), "{}", err.message);
    }

    #[test]
    fn nested_participant_name_renders() {
        let r = PostRenderer::new([("n", &["by {{ participant.name }}".to_string()][..])]).unwrap();
        assert_eq!(r.render("n", 0, &vars()).unwrap(), "by Alex Example");
    }
}
