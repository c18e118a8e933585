//! The text of one post: a campaign's templates compiled once, one variant rendered with
//! a post's variables, measured the way the account's network counts, and another variant
//! taken when the planned one is too long. The dispatcher sends what [`Templates::compose`]
//! returns; previews show the same.

use std::collections::{BTreeMap, HashMap};

use super::length::Measure;
use super::vars::PostVars;
use crate::render::{PostRenderer, RenderError};

/// A variant of a campaign's templates does not compile.
#[derive(Debug, Clone, thiserror::Error)]
#[error("variant {} of template \"{}\" does not compile: {}", .variant + 1, .template, .source)]
pub struct TemplateError {
    pub template: String,
    /// 0-based.
    pub variant: usize,
    pub source: RenderError,
}

/// Why a post has no text to send.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ComposeError {
    /// The campaign has no such template, or it has no variants.
    #[error("template `{template}` has no variants")]
    NoVariants { template: String },
    /// A variant did not render (a value the template uses is missing, a filter failed).
    #[error("template `{template}` could not be rendered: {source}")]
    Render {
        template: String,
        /// 0-based.
        variant: usize,
        source: RenderError,
    },
    /// No variant fits the network: `text` and `measure` are the planned variant's.
    #[error("every variant is too long for {}: {}", .measure.network, .measure.describe())]
    TooLong {
        text: String,
        /// 0-based.
        variant: usize,
        measure: Measure,
    },
}

/// A post's text, the variant it came from, and how it measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    pub text: String,
    /// 0-based; the planned one unless that was too long.
    pub variant: usize,
    pub measure: Measure,
}

/// A campaign's post templates, compiled: each variant is parsed once, then rendered for
/// every post (the dispatcher renders each post it sends).
#[derive(Debug)]
pub struct Templates {
    renderer: PostRenderer,
    variants: HashMap<String, usize>,
}

impl Templates {
    /// Compile `templates` (name -> variants); fails on the first variant that does not parse.
    pub fn new(templates: &BTreeMap<String, Vec<String>>) -> Result<Templates, TemplateError> {
        let renderer = PostRenderer::new(templates.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .map_err(|(template, variant, source)| TemplateError {
                template,
                variant,
                source,
            })?;
        Ok(Templates {
            renderer,
            variants: templates
                .iter()
                .map(|(k, v)| (k.clone(), v.len()))
                .collect(),
        })
    }

    /// How many variants `template` has (0 when there is no such template).
    pub fn variants(&self, template: &str) -> usize {
        self.variants.get(template).copied().unwrap_or(0)
    }

    /// The text of one post from `template`: the `planned` variant, or, when the
    /// participant's own values (a long name, many accounts) make it too long as `measure`
    /// counts it, the first variant after it (wrapping around) that fits.
    pub fn compose(
        &self,
        template: &str,
        planned: usize,
        vars: &PostVars,
        measure: impl Fn(&str) -> Measure,
    ) -> Result<Composed, ComposeError> {
        let n = self.variants(template);
        if n == 0 {
            return Err(ComposeError::NoVariants {
                template: template.to_string(),
            });
        }
        let planned = planned.min(n - 1);
        let mut too_long = None;
        for variant in (0..n).map(|i| (planned + i) % n) {
            let text = self
                .renderer
                .render(template, variant, vars)
                .map_err(|source| ComposeError::Render {
                    template: template.to_string(),
                    variant,
                    source,
                })?;
            let m = measure(&text);
            if m.fits() {
                return Ok(Composed {
                    text,
                    variant,
                    measure: m,
                });
            }
            too_long.get_or_insert((text, variant, m));
        }
        let (text, variant, measure) = too_long.expect("at least one variant was measured");
        Err(ComposeError::TooLong {
            text,
            variant,
            measure,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::length::{Limit, measure_with};
    use crate::domain::NetworkKind;

    fn templates(variants: &[&str]) -> Templates {
        let mut map = BTreeMap::new();
        map.insert(
            "t".to_string(),
            variants.iter().map(|v| v.to_string()).collect(),
        );
        Templates::new(&map).unwrap()
    }

    fn vars(name: &str) -> PostVars {
        let mut v = PostVars::sample("Strike", "A strike", "s");
        v.participant.name = name.to_string();
        v
    }

    /// A network allowing `max` graphemes.
    fn at_most(max: usize) -> impl Fn(&str) -> Measure {
        move |text| {
            measure_with(
                NetworkKind::Sandbox,
                text,
                Limit {
                    max: Some(max),
                    max_bytes: None,
                    unit: "graphemes",
                },
            )
        }
    }

    #[test]
    fn the_planned_variant_is_used_when_it_fits() {
        let t = templates(&["one {{ participant.name }}", "two {{ participant.name }}"]);

        let c = t.compose("t", 1, &vars("Zoë"), at_most(20)).unwrap();

        assert_eq!((c.text.as_str(), c.variant), ("two Zoë", 1));
        assert!(c.measure.fits());
    }

    #[test]
    fn a_variant_too_long_for_the_network_falls_back_to_the_next_one_that_fits() {
        let t = templates(&[
            "short",
            "a long one by {{ participant.name }}",
            "also long, {{ participant.name }}",
            "fits",
        ]);

        // Planned 1 and 2 are too long; 3 comes next, before wrapping around to 0.
        let c = t
            .compose("t", 1, &vars("Zoë Quintana"), at_most(10))
            .unwrap();

        assert_eq!((c.text.as_str(), c.variant), ("fits", 3));
    }

    #[test]
    fn the_fallback_wraps_around_to_the_first_variants() {
        let t = templates(&["ok", "far too long for this"]);

        let c = t.compose("t", 1, &vars("Zoë"), at_most(5)).unwrap();

        assert_eq!((c.text.as_str(), c.variant), ("ok", 0));
    }

    #[test]
    fn when_no_variant_fits_the_error_holds_the_planned_text_and_its_measure() {
        let t = templates(&["first is long", "second is long"]);

        let err = t.compose("t", 1, &vars("Zoë"), at_most(5)).unwrap_err();

        let ComposeError::TooLong {
            text,
            variant,
            measure,
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!((text.as_str(), *variant), ("second is long", 1));
        assert_eq!(measure.count, 14);
        assert_eq!(
            err.to_string(),
            "every variant is too long for sandbox: 14/5 graphemes"
        );
    }

    #[test]
    fn a_planned_variant_past_the_last_one_is_the_last_one() {
        let t = templates(&["a", "b"]);

        let c = t.compose("t", 9, &vars("Zoë"), at_most(5)).unwrap();

        assert_eq!(c.variant, 1);
    }

    #[test]
    fn an_unknown_template_has_no_variants() {
        let t = templates(&["a"]);

        let err = t
            .compose("missing", 0, &vars("Zoë"), at_most(5))
            .unwrap_err();

        assert_eq!(err.to_string(), "template `missing` has no variants");
    }

    #[test]
    fn a_variant_that_does_not_compile_is_named_one_based() {
        let mut map = BTreeMap::new();
        map.insert(
            "t".to_string(),
            vec!["fine".to_string(), "{{ broken".to_string()],
        );

        let err = Templates::new(&map).unwrap_err();

        assert_eq!((err.template.as_str(), err.variant), ("t", 1));
        assert!(
            err.to_string()
                .starts_with("variant 2 of template \"t\" does not compile: "),
            "{err}"
        );
    }
}
