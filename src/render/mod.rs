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
                check_nesting(src).map_err(|e| (name.to_string(), i, e))?;
                tera.add_raw_template(&key(name, i), src)
                    .map_err(|e| (name.to_string(), i, RenderError::from(e)))?;
            }
        }
        Ok(PostRenderer { tera })
    }

    /// Check one variant on its own: does it parse and render with `vars`?
    pub fn check_variant(src: &str, vars: &impl Serialize) -> Result<String, RenderError> {
        check_nesting(src)?;
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

/// The deepest brackets may nest inside one tag. Tera's parser backtracks on nested
/// calls and groups, each level multiplying its work by three or four: five levels parse
/// in a blink, nine took seconds to a minute.
const MAX_NESTING: usize = 5;

/// Refuse a variant whose tags nest brackets deeper than [`MAX_NESTING`], before tera
/// parses it. Only `{{ }}` and `{% %}` count (outside strings): a post's own text may hold
/// any brackets.
fn check_nesting(src: &str) -> Result<(), RenderError> {
    let b = src.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        let close = match (b[i], b[i + 1]) {
            (b'{', b'{') => b'}',
            (b'{', b'%') => b'%',
            _ => {
                i += 1;
                continue;
            }
        };
        i += 2;
        let (mut depth, mut quote) = (0usize, None);
        while i < b.len() {
            let c = b[i];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    b'"' | b'\'' | b'`' => quote = Some(c),
                    b'(' | b'[' => {
                        depth += 1;
                        if depth > MAX_NESTING {
                            return Err(RenderError {
                                message: format!(
                                    "brackets are nested more than {MAX_NESTING} deep inside a \
                                     {{{{ }}}} or {{% %}} tag: simplify the expression"
                                ),
                            });
                        }
                    }
                    b')' | b']' => depth = depth.saturating_sub(1),
                    _ if c == close && b.get(i + 1) == Some(&b'}') => break,
                    _ => {}
                },
            }
            i += 1;
        }
        i += 2;
    }
    Ok(())
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
    fn a_template_nested_deeper_than_tera_parses_quickly_is_refused() {
        // Found by the `template` fuzz target: tera's parser backtracks exponentially on
        // nested calls, so nine levels took 7 to 60 seconds to compile (to fail, here).
        let deep = format!("{{{{ {}x{} }}}}", "f(value=".repeat(9), ")".repeat(9));
        let err = PostRenderer::check_variant(&deep, &vars()).unwrap_err();
        assert!(err.message.contains("nested"), "{}", err.message);
        let err = PostRenderer::new([("deep", &[deep][..])]).err().unwrap();
        assert!(err.2.message.contains("nested"), "{}", err.2.message);

        let unclosed = format!("{{{{ {}x", "f(value=(not ".repeat(9));
        assert!(PostRenderer::check_variant(&unclosed, &vars()).is_err());
    }

    #[test]
    fn brackets_outside_tags_and_shallow_nesting_inside_are_fine() {
        let text = "Strike :( :( :( :( :( :( :( [[[[[[[ {{ hashtag | truncate(length=((3))) }}";
        let out = PostRenderer::check_variant(text, &vars()).unwrap();
        assert_eq!(out, "Strike :( :( :( :( :( :( :( [[[[[[[ Soc…");
    }

    #[test]
    fn nested_participant_name_renders() {
        let r = PostRenderer::new([("n", &["by {{ participant.name }}".to_string()][..])]).unwrap();
        assert_eq!(r.render("n", 0, &vars()).unwrap(), "by Alex Example");
    }
}
