//! The pieces sections are drawn with: stacked bars, legends, heatmaps, tables, embedded
//! flamegraphs, and one recording's view or two side by side. Every text is escaped here.
use std::{collections::BTreeMap, fmt::Write as _};

use super::{base64, esc, groups::CpuGroup};
use crate::output::compare::Pair;

/// One recording's view, or both recordings' side by side.
pub(super) enum Shown<T> {
    One(T),
    Two(Pair<T>),
}

impl<T> Shown<T> {
    /// Draws each view with `draw`; two go side by side, each under its side's name in `tag`.
    pub(super) fn draw(&self, out: &mut String, tag: &str, mut draw: impl FnMut(&mut String, &T)) {
        match self {
            Shown::One(v) => draw(out, v),
            Shown::Two(p) => {
                out.push_str("<div class=\"side\">");
                for (side, v) in p.sides() {
                    let _ = write!(out, "<div><{tag}>{}</{tag}>", side.label());
                    draw(out, v);
                    out.push_str("</div>");
                }
                out.push_str("</div>");
            }
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        let (first, second) = match self {
            Shown::One(v) => (v, None),
            Shown::Two(p) => (&p.before, Some(&p.after)),
        };
        std::iter::once(first).chain(second)
    }
}

/// Stacked-bar segments: (CSS class, value).
pub(super) type Segments = Vec<(&'static str, f64)>;

/// One stacked bar, scaled so `max` fills it.
fn bar(segments: &Segments, max: f64) -> String {
    let mut s = String::from("<div class=\"bar\">");
    for (class, v) in segments {
        let w = if max > 0.0 {
            (100.0 * v / max).clamp(0.0, 100.0)
        } else {
            0.0
        };
        if w > 0.0 {
            let _ = write!(s, "<div class=\"{class}\" style=\"width:{w:.3}%\"></div>");
        }
    }
    s.push_str("</div>");
    s
}

fn total(segments: &Segments) -> f64 {
    segments.iter().map(|(_, v)| v).sum::<f64>()
}

/// What one bar row draws: one recording's bar, or a before/after pair on one scale.
pub(super) trait Bars {
    /// The row's CSS class.
    const CLASS: &'static str;
    /// A heading row above the rows.
    const HEAD: &'static str;
    /// The longest bar's total.
    fn longest(&self) -> f64;
    fn draw(&self, max: f64) -> String;
}

impl Bars for Segments {
    const CLASS: &'static str = "bar-row";
    const HEAD: &'static str = "";
    fn longest(&self) -> f64 {
        total(self)
    }
    fn draw(&self, max: f64) -> String {
        bar(self, max)
    }
}

impl Bars for Pair<Segments> {
    const CLASS: &'static str = "bar-row pair";
    const HEAD: &'static str =
        "<div class=\"bar-row pair\"><b></b><b>before</b><b>after</b><b></b></div>";
    fn longest(&self) -> f64 {
        total(&self.before).max(total(&self.after))
    }
    fn draw(&self, max: f64) -> String {
        bar(&self.before, max) + &bar(&self.after, max)
    }
}

/// A labelled row of bars with its values in words.
pub(super) struct BarRow<B> {
    pub label: String,
    pub bars: B,
    pub value: String,
}

/// Rows of bars (per CPU or per group), all on one scale.
pub(super) fn bar_rows<B: Bars>(out: &mut String, rows: &[BarRow<B>]) {
    let max = rows.iter().map(|r| r.bars.longest()).fold(0.0, f64::max);
    out.push_str("<div class=\"bars\">");
    out.push_str(B::HEAD);
    for r in rows {
        let _ = write!(
            out,
            "<div class=\"{}\"><span class=\"lbl\" title=\"{l}\">{l}</span>{}<span class=\"val\">{}</span></div>",
            B::CLASS,
            r.bars.draw(max),
            esc(&r.value),
            l = esc(&r.label)
        );
    }
    out.push_str("</div>");
}

/// Colour keys: (CSS class, label).
pub(super) fn legend(out: &mut String, items: &[(&str, &str)]) {
    out.push_str("<div class=\"legend\">");
    for (class, label) in items {
        let _ = write!(out, "<span class=\"{class}\"></span>{}", esc(label));
    }
    out.push_str("</div>");
}

/// (alloc CPU, free CPU, value) cells of one matrix.
pub(super) type Cells = Vec<(u32, u32, f64)>;

/// How a heatmap maps a value to colour.
#[derive(Clone, Copy)]
pub(super) enum Scale {
    /// Log: one cell with 1000x the traffic of another is still visible (SKB and page
    /// matrices, which span orders of magnitude).
    Log,
    /// Linear: the colour is the cell's part of the largest (shares of one wait).
    Linear,
}

impl Scale {
    /// The cell's opacity: 0 for nothing, from 0.08 up to 1 at `max`.
    fn alpha(self, v: f64, max: f64) -> f64 {
        if v <= 0.0 || max <= 0.0 {
            return 0.0;
        }
        let x = match self {
            Scale::Log => (1.0 + v).ln() / (1.0 + max).ln(),
            Scale::Linear => v / max,
        };
        (0.08 + 0.92 * x).min(1.0)
    }
}

/// A heatmap of alloc-CPU (rows) × free-CPU (columns) cells, CPUs grouped as `groups`.
/// `max` sets the colour scale (shared by before/after maps); `fmt` writes a value with
/// its unit.
pub(super) fn heatmap(
    out: &mut String,
    cells: &Cells,
    groups: &[CpuGroup],
    (max, scale): (f64, Scale),
    fmt: &dyn Fn(f64) -> String,
) {
    let gi: BTreeMap<u32, usize> = groups
        .iter()
        .enumerate()
        .flat_map(|(i, g)| g.cpus.iter().map(move |&c| (c, i)))
        .collect();
    let mut grid: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    let mut outside = 0.0;
    for &(a, f, v) in cells {
        match (gi.get(&a), gi.get(&f)) {
            (Some(&x), Some(&y)) => *grid.entry((x, y)).or_default() += v,
            _ => outside += v,
        }
    }
    let head = |g: &CpuGroup| format!("<th title=\"{}\">{}</th>", esc(&g.label), esc(&g.short()));
    out.push_str("<div class=\"scroll\"><table class=\"heat\"><tr><th>alloc ↓ / free →</th>");
    for g in groups {
        out.push_str(&head(g));
    }
    out.push_str("</tr>");
    for (x, gx) in groups.iter().enumerate() {
        let _ = write!(out, "<tr>{}", head(gx));
        for (y, gy) in groups.iter().enumerate() {
            let v = grid.get(&(x, y)).copied().unwrap_or(0.0);
            let alpha = scale.alpha(v, max);
            let diag = if x == y { " class=\"diag\"" } else { "" };
            let _ = write!(
                out,
                "<td{diag} style=\"background:rgba(200,40,40,{alpha:.3})\" title=\"alloc {} → free {}: {}\"></td>",
                esc(&gx.label),
                esc(&gy.label),
                esc(&fmt(v))
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</table></div>");
    if outside > 0.0 {
        let _ = write!(
            out,
            "<p class=\"note\">{} on CPUs outside this map not shown.</p>",
            esc(&fmt(outside))
        );
    }
}

/// One table cell: its tag, class and content (already HTML).
pub(super) struct Td {
    tag: &'static str,
    class: &'static str,
    html: String,
}

/// A plain cell.
pub(super) fn td(text: &str) -> Td {
    td_class("", text)
}

/// A cell with a CSS class (`num`, `mono`, `num down`, …).
pub(super) fn td_class(class: &'static str, text: &str) -> Td {
    Td {
        tag: "td",
        class,
        html: esc(text),
    }
}

/// A right-aligned number.
pub(super) fn num(text: &str) -> Td {
    td_class("num", text)
}

/// A header cell at the start of a row.
pub(super) fn th(text: &str) -> Td {
    Td {
        tag: "th",
        class: "",
        html: esc(text),
    }
}

/// A stack folded away: `summary` shown, `body` lines on opening.
pub(super) fn details(summary_class: &str, summary: &str, body: &str) -> Td {
    let class = if summary_class.is_empty() {
        String::new()
    } else {
        format!(" class=\"{summary_class}\"")
    };
    Td {
        tag: "td",
        class: "",
        html: format!(
            "<details><summary{class}>{}</summary><pre class=\"mono\">{}</pre></details>",
            esc(summary),
            esc(body)
        ),
    }
}

/// A `<table>` with a heading row (none when `head` is empty) and `rows`.
pub(super) fn table(out: &mut String, head: &[&str], rows: impl IntoIterator<Item = Vec<Td>>) {
    out.push_str("<table>");
    if !head.is_empty() {
        out.push_str("<tr>");
        for h in head {
            let _ = write!(out, "<th>{}</th>", esc(h));
        }
        out.push_str("</tr>");
    }
    for row in rows {
        out.push_str("<tr>");
        for Td { tag, class, html } in row {
            if class.is_empty() {
                let _ = write!(out, "<{tag}>{html}</{tag}>");
            } else {
                let _ = write!(out, "<{tag} class=\"{class}\">{html}</{tag}>");
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// (key, value) rows.
pub(super) fn kv_table(out: &mut String, rows: &[(&str, String)]) {
    table(out, &[], rows.iter().map(|(k, v)| vec![th(k), td(v)]));
}

/// The `height="N"` of an SVG's root element, to size its frame.
fn svg_height(svg: &[u8]) -> Option<u32> {
    let head = String::from_utf8_lossy(&svg[..svg.len().min(4096)]);
    let root = &head[head.find("<svg")?..];
    let h = &root[root.find(" height=\"")? + 9..];
    h[..h.find('"')?].parse().ok()
}

/// Embeds an SVG flamegraph as its own document (see the module comment).
pub(super) fn flame_embed(out: &mut String, svg: &[u8], title: &str) {
    let h = svg_height(svg).unwrap_or(600).clamp(120, 4000) + 4;
    let _ = writeln!(
        out,
        "<iframe class=\"flame\" title=\"{}\" style=\"height:{h}px\" loading=\"lazy\" \
         src=\"data:image/svg+xml;base64,{}\"></iframe>",
        esc(title),
        base64(svg)
    );
}

/// A flamegraph under its heading.
pub(super) fn titled_flame(out: &mut String, heading: &str, svg: &[u8], title: &str) {
    let _ = write!(out, "<h3>{}</h3>", esc(heading));
    flame_embed(out, svg, title);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_map_values_to_opacity() {
        assert_eq!(Scale::Linear.alpha(0.0, 10.0), 0.0);
        assert_eq!(Scale::Log.alpha(5.0, 0.0), 0.0);
        assert!((Scale::Linear.alpha(10.0, 10.0) - 1.0).abs() < 1e-12);
        // A 3 % cell: faint on the linear scale, strong on the log scale.
        assert!(Scale::Linear.alpha(101.5e3, 3.5e6) < 0.15);
        assert!(Scale::Log.alpha(101.5e3, 3.5e6) > 0.7);
    }

    #[test]
    fn svg_height_is_read_from_the_root_element() {
        let svg = br#"<?xml version="1.0"?><svg version="1.1" width="1200" height="398" onload="init(evt)">"#;
        assert_eq!(svg_height(svg), Some(398));
        assert_eq!(svg_height(b"<svg>"), None);
    }

    #[test]
    fn tables_escape_every_cell() {
        let mut out = String::new();
        table(
            &mut out,
            &["a<b"],
            [vec![th("k&"), num("1"), details("mono", "s<", "x\ny")]],
        );
        assert_eq!(
            out,
            "<table><tr><th>a&lt;b</th></tr><tr><th>k&amp;</th><td class=\"num\">1</td>\
             <td><details><summary class=\"mono\">s&lt;</summary><pre class=\"mono\">x\ny</pre>\
             </details></td></tr></table>"
        );
    }

    #[test]
    fn two_views_go_side_by_side() {
        let mut out = String::new();
        Shown::Two(Pair::new(1, 2)).draw(&mut out, "b", |o, v| o.push_str(&v.to_string()));
        assert_eq!(
            out,
            "<div class=\"side\"><div><b>before</b>1</div><div><b>after</b>2</div></div>"
        );
        assert_eq!(Shown::One(7).iter().count(), 1);
    }
}
