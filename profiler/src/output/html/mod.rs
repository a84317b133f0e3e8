//! Self-contained HTML for `report --format html` and `compare --format html`: one file, no
//! network (inline CSS, inline SVG/JS), readable on 2 CPUs and on 640.
//!
//! Pages are built from sections (`sections`): one renderer per section, shared by the
//! report (`report`) and the comparison (`compare`), over small widgets (`widgets`: bars,
//! heatmaps, tables). The stylesheet is `assets/page.css`, included at build time.
//!
//! inferno's flamegraph SVGs carry their own JavaScript that looks elements up by fixed ids,
//! so two of them inlined into one page would fight over `#frames`, `#details`, … Each is
//! embedded as its own document instead (`<iframe src="data:image/svg+xml;base64,…">`),
//! which keeps search, zoom and tooltips working and needs no network.
mod compare;
mod groups;
mod report;
mod sections;
mod widgets;

pub use compare::compare_html;
pub use groups::{CpuGroup, group_cpus};
pub use report::{report_html, report_html_by};

use crate::output::flamegraph::FlameError;

#[derive(Debug, thiserror::Error)]
pub enum HtmlError {
    #[error(transparent)]
    Flame(#[from] FlameError),
}

/// The page's stylesheet.
const CSS: &str = include_str!("assets/page.css");

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Standard base64 (RFC 4648, with padding), for `data:` URLs.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0) as u32;
        let b1 = chunk.get(1).copied().unwrap_or(0) as u32;
        let b2 = chunk.get(2).copied().unwrap_or(0) as u32;
        let n = (b0 << 16) | (b1 << 8) | b2;
        out.push(T[(n >> 18 & 63) as usize] as char);
        out.push(T[(n >> 12 & 63) as usize] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6 & 63) as usize] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[(n & 63) as usize] as char
        } else {
            '='
        });
    }
    out
}

/// The whole document around `body` (already HTML).
fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>\n{CSS}</style></head><body><main>\n{body}\n</main></body></html>\n",
        esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn the_stylesheet_is_the_asset_file() {
        let p = page("t", "");
        assert!(p.contains("<style>\n:root {"));
        assert!(p.contains("code, .mono {"));
        assert!(CSS.ends_with("}\n"));
    }
}
