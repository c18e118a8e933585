//! Where each line of a card goes, and the SVG that draws it.
//!
//! SVG cannot wrap text, so lines are made here: words are measured with the bundled
//! font's advance widths (no kerning or shaping, hence a safety margin), a word wider than
//! the card (a long hashtag, a sentence in a script without spaces) is broken between
//! graphemes, and each block shrinks from its largest size towards its smallest until it
//! fits its lines; what still does not fit ends in "…". If the blocks together are taller
//! than the card, every size is scaled down and the layout made again.

use std::fmt::Write as _;
use std::sync::OnceLock;

use skrifa::instance::{LocationRef, Size as FontSize};
use skrifa::{FontRef, GlyphId, MetadataProvider};
use unicode_segmentation::UnicodeSegmentation;

use super::{FONT_BOLD, FONT_REGULAR, Notice, Size, day_label};

/// Lines are filled to this share of the width: the measure ignores kerning and shaping,
/// which may make a line a little wider once drawn.
const FILL: f32 = 0.92;
const LINE_HEIGHT: f32 = 1.22;
const BACKGROUND: &str = "#16120f";
const ACCENT: &str = "#d93a2b";

/// One font, for measuring.
struct Metrics {
    font: FontRef<'static>,
    notdef: f32,
}

impl Metrics {
    fn new(data: &'static [u8]) -> Metrics {
        // The bundled fonts are known good; an unreadable one would measure as empty boxes
        // (and the tests fail), never panic.
        let font = FontRef::new(data).expect("the bundled font parses");
        let notdef = font
            .glyph_metrics(FontSize::new(1.0), LocationRef::default())
            .advance_width(GlyphId::NOTDEF)
            .unwrap_or(0.6);
        Metrics { font, notdef }
    }

    /// Width of `text` at `px`.
    fn width(&self, text: &str, px: f32) -> f32 {
        let charmap = self.font.charmap();
        let glyphs = self
            .font
            .glyph_metrics(FontSize::new(1.0), LocationRef::default());
        let em: f32 = text
            .chars()
            .map(|c| {
                charmap
                    .map(c)
                    .and_then(|g| glyphs.advance_width(g))
                    .unwrap_or(self.notdef)
            })
            .sum();
        em * px
    }
}

fn metrics(bold: bool) -> &'static Metrics {
    static REGULAR: OnceLock<Metrics> = OnceLock::new();
    static BOLD: OnceLock<Metrics> = OnceLock::new();
    if bold {
        BOLD.get_or_init(|| Metrics::new(FONT_BOLD))
    } else {
        REGULAR.get_or_init(|| Metrics::new(FONT_REGULAR))
    }
}

/// A piece of the card: its text, its weight, its sizes and how many lines it may take.
struct Block {
    text: String,
    bold: bool,
    max_px: f32,
    min_px: f32,
    max_lines: usize,
    color: &'static str,
    gap_after: f32,
}

/// A block laid out: its size and lines.
struct Fitted {
    px: f32,
    lines: Vec<String>,
}

/// The geometry of one card size.
struct Frame {
    pad_x: f32,
    /// Where the blocks may go, top and bottom.
    top: f32,
    bottom: f32,
    /// Baseline of the host's address.
    footer_y: f32,
    footer_px: f32,
}

fn frame(size: Size) -> Frame {
    match size {
        Size::Square => Frame {
            pad_x: 84.0,
            top: 90.0,
            bottom: 940.0,
            footer_y: 1010.0,
            footer_px: 34.0,
        },
        // Stories cover their top and bottom with the app's own buttons.
        Size::Story => Frame {
            pad_x: 96.0,
            top: 260.0,
            bottom: 1560.0,
            footer_y: 1660.0,
            footer_px: 40.0,
        },
    }
}

fn blocks(notice: &Notice, size: Size) -> Vec<Block> {
    let story = size == Size::Story;
    let mut out = vec![
        Block {
            text: format!("#{}", clean(&notice.hashtag)),
            bold: true,
            max_px: if story { 76.0 } else { 62.0 },
            min_px: 26.0,
            max_lines: 2,
            color: "#ff7a6b",
            gap_after: if story { 48.0 } else { 28.0 },
        },
        Block {
            text: clean(&notice.title),
            bold: true,
            max_px: if story { 116.0 } else { 96.0 },
            min_px: 34.0,
            max_lines: if story { 6 } else { 4 },
            color: "#ffffff",
            gap_after: if story { 56.0 } else { 32.0 },
        },
        Block {
            text: day_label(notice.day),
            bold: true,
            max_px: if story { 66.0 } else { 54.0 },
            min_px: 28.0,
            max_lines: 2,
            color: "#ffd166",
            gap_after: if story { 56.0 } else { 32.0 },
        },
    ];
    if let Some(why) = notice.why.as_deref().map(clean)
        && !why.trim().is_empty()
    {
        out.push(Block {
            text: why,
            bold: false,
            max_px: if story { 50.0 } else { 40.0 },
            min_px: 22.0,
            max_lines: if story { 8 } else { 5 },
            color: "#e3ddd7",
            gap_after: 0.0,
        });
    }
    out
}

/// The card's SVG document.
pub(super) fn svg(notice: &Notice, size: Size) -> String {
    let (w, h) = (size.width() as f32, size.height() as f32);
    let f = frame(size);
    let width = (w - 2.0 * f.pad_x) * FILL;
    let blocks = blocks(notice, size);

    // Shrink everything until the blocks fit between top and bottom.
    let mut scale = 1.0;
    let mut fitted: Vec<Fitted>;
    loop {
        fitted = blocks.iter().map(|b| fit(b, width, scale)).collect();
        if height(&blocks, &fitted) <= f.bottom - f.top || scale < 0.3 {
            break;
        }
        scale *= 0.9;
    }

    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}"><rect width="{w}" height="{h}" fill="{BACKGROUND}"/><rect width="{w}" height="22" fill="{ACCENT}"/><rect y="{y}" width="{w}" height="22" fill="{ACCENT}"/>"#,
        y = h - 22.0
    );
    let cx = w / 2.0;
    let mut y = f.top + ((f.bottom - f.top) - height(&blocks, &fitted)).max(0.0) / 2.0;
    for (b, fit) in blocks.iter().zip(&fitted) {
        for line in &fit.lines {
            // The baseline sits below the line's top by the font's ascent (~0.93 em).
            let baseline = y + fit.px * 0.95;
            text_element(&mut out, line, cx, baseline, fit.px, b.bold, b.color);
            y += fit.px * LINE_HEIGHT;
        }
        y += b.gap_after * scale_of(b, fit);
    }
    // A short rule above the address, then the address.
    let _ = write!(
        out,
        r#"<rect x="{x}" y="{ry}" width="120" height="6" fill="{ACCENT}"/>"#,
        x = cx - 60.0,
        ry = f.footer_y - f.footer_px * 2.0
    );
    let host = Block {
        text: clean(&notice.host),
        bold: false,
        max_px: f.footer_px,
        min_px: 18.0,
        max_lines: 1,
        color: "#bdb5ad",
        gap_after: 0.0,
    };
    let host_fit = fit(&host, width, 1.0);
    for line in &host_fit.lines {
        text_element(
            &mut out,
            line,
            cx,
            f.footer_y,
            host_fit.px,
            false,
            host.color,
        );
    }
    out.push_str("</svg>");
    out
}

/// How much a block's gap shrinks with its text.
fn scale_of(b: &Block, fit: &Fitted) -> f32 {
    (fit.px / b.max_px).clamp(0.3, 1.0)
}

fn height(blocks: &[Block], fitted: &[Fitted]) -> f32 {
    blocks
        .iter()
        .zip(fitted)
        .map(|(b, f)| f.lines.len() as f32 * f.px * LINE_HEIGHT + b.gap_after * scale_of(b, f))
        .sum()
}

fn text_element(out: &mut String, line: &str, x: f32, y: f32, px: f32, bold: bool, color: &str) {
    let _ = write!(
        out,
        r#"<text x="{x}" y="{y:.1}" font-family="{family}" font-size="{px:.1}" font-weight="{weight}" fill="{color}" text-anchor="middle">{text}</text>"#,
        family = super::FAMILY,
        weight = if bold { "bold" } else { "normal" },
        text = escape(line),
    );
}

/// The largest size (down to the block's smallest) at which the text fits its lines; at
/// the smallest, the lines it has room for, the last ending in "…".
fn fit(b: &Block, width: f32, scale: f32) -> Fitted {
    let m = metrics(b.bold);
    let (max_px, min_px) = (b.max_px * scale, (b.min_px * scale).min(b.max_px * scale));
    let mut px = max_px;
    loop {
        let lines = wrap(&b.text, m, px, width);
        if lines.len() <= b.max_lines {
            return Fitted { px, lines };
        }
        if px <= min_px {
            return Fitted {
                px,
                lines: truncate(lines, b.max_lines, m, px, width),
            };
        }
        px = (px * 0.94).max(min_px);
    }
}

/// Greedy line filling; a word wider than a line is broken between graphemes.
fn wrap(text: &str, m: &Metrics, px: f32, width: f32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let candidate = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        if m.width(&candidate, px) <= width {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        if m.width(word, px) <= width {
            line = word.to_string();
            continue;
        }
        for g in word.graphemes(true) {
            if !line.is_empty() && m.width(&format!("{line}{g}"), px) > width {
                lines.push(std::mem::take(&mut line));
            }
            line.push_str(g);
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn truncate(mut lines: Vec<String>, keep: usize, m: &Metrics, px: f32, width: f32) -> Vec<String> {
    if lines.len() <= keep {
        return lines;
    }
    lines.truncate(keep);
    if let Some(last) = lines.last_mut() {
        let mut graphemes: Vec<&str> = last.graphemes(true).collect();
        while !graphemes.is_empty() && m.width(&format!("{}…", graphemes.concat()), px) > width {
            graphemes.pop();
        }
        *last = format!("{}…", graphemes.concat().trim_end());
    }
    lines
}

/// More characters than any block shows at its smallest size: the rest is cut before
/// measuring, so the time a card takes does not grow with the text it is given.
const MAX_CHARS: usize = 800;

/// Text as it may appear in XML: characters XML 1.0 forbids (control characters,
/// U+FFFE, U+FFFF) become spaces; at most [`MAX_CHARS`]. Escaping itself happens in
/// [`escape`].
fn clean(s: &str) -> String {
    s.chars()
        .take(MAX_CHARS)
        .map(|c| {
            let allowed = matches!(c, '\t' | '\n' | '\r')
                || (!c.is_control() && !matches!(c, '\u{fffe}' | '\u{ffff}'));
            if allowed { c } else { ' ' }
        })
        .collect()
}

/// Escape for SVG text and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in clean(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The text of each `<text>` element of a card's SVG, as written (tests).
#[cfg(test)]
pub(super) fn lines_of(svg: &str) -> Vec<String> {
    svg.split("<text ")
        .skip(1)
        .filter_map(|t| {
            let start = t.find('>')? + 1;
            let end = t.find("</text>")?;
            Some(t[start..end].to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_title_is_cut_before_it_is_measured_and_still_ends_in_an_ellipsis() {
        let huge = Notice {
            title: "word ".repeat(200_000),
            ..super::super::tests::notice()
        };
        let started = std::time::Instant::now();
        let text = svg(&huge, Size::Square);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(text.len() < 20_000, "{}", text.len());
        assert!(lines_of(&text).iter().any(|l| l.ends_with('…')));
    }

    #[test]
    fn a_line_never_measures_wider_than_the_card() {
        let m = metrics(true);
        let width = 900.0;
        for text in [
            "short",
            &"word ".repeat(100),
            &"x".repeat(500),
            &"罢工".repeat(200),
        ] {
            for line in wrap(text, m, 60.0, width) {
                assert!(
                    m.width(&line, 60.0) <= width || line.graphemes(true).count() == 1,
                    "{line}"
                );
            }
        }
        let cut = truncate(
            wrap(&"word ".repeat(100), m, 60.0, width),
            2,
            m,
            60.0,
            width,
        );
        assert_eq!(cut.len(), 2);
        assert!(cut[1].ends_with('…'), "{cut:?}");
    }
}
