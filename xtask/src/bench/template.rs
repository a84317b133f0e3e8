//! The generated spans of `docs/benchmarks.md`. The doc is written by hand; the bench only
//! replaces what lies between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` (a table, a
//! figure inside a sentence, or a sentence that depends on the results), and keeps every
//! other byte, so wording is edited in the doc, not in Rust strings.

use anyhow::{Result, bail};

const OPEN: &str = "<!-- bench:";
const CLOSE: &str = "<!-- /bench:";
const END: &str = " -->";

/// One span: the byte range of its content and its name.
struct Span<'a> {
    name: &'a str,
    content: std::ops::Range<usize>,
}

/// Markdown shows a comment inside code as text, so a marker there is an error.
fn in_code(doc: &str, pos: usize) -> bool {
    let before = &doc[..pos];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let fences = before.lines().filter(|l| l.starts_with("```")).count();
    fences % 2 == 1 || before[line_start..].matches('`').count() % 2 == 1
}

fn spans(doc: &str) -> Result<Vec<Span<'_>>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = doc[at..].find(OPEN) {
        if in_code(doc, at + i) {
            bail!(
                "a marker at line {} is inside code, where it would show: put the backticks \
                 inside the span",
                doc[..at + i].lines().count()
            );
        }
        let name_start = at + i + OPEN.len();
        let Some(n) = doc[name_start..].find(END) else {
            bail!("unterminated marker at byte {}", at + i);
        };
        let name = &doc[name_start..name_start + n];
        let content_start = name_start + n + END.len();
        let close = format!("{CLOSE}{name}{END}");
        let Some(c) = doc[content_start..].find(&close) else {
            bail!("`{OPEN}{name}{END}` has no `{close}`");
        };
        let content_end = content_start + c;
        if doc[content_start..content_end].contains(OPEN) {
            bail!("`{OPEN}{name}{END}` holds another span before its `{close}`");
        }
        out.push(Span {
            name,
            content: content_start..content_end,
        });
        at = content_end + close.len();
    }
    Ok(out)
}

/// The names of the spans in `doc` that `names` lacks, or an error naming the first
/// malformed marker.
pub fn missing<'n>(doc: &str, names: &[&'n str]) -> Result<Vec<&'n str>> {
    let found = spans(doc)?;
    Ok(names
        .iter()
        .filter(|n| !found.iter().any(|s| s.name == **n))
        .copied()
        .collect())
}

/// `doc` with each span named in `values` holding its value (every span of that name);
/// spans without a value keep their content. Fails when a value has no span, since it
/// would be lost.
pub fn fill(doc: &str, values: &[(&str, String)]) -> Result<String> {
    let spans = spans(doc)?;
    let lost: Vec<&str> = values
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !spans.iter().any(|s| s.name == *n))
        .collect();
    if !lost.is_empty() {
        bail!(
            "no `{OPEN}NAME{END}` … `{CLOSE}NAME{END}` span for: {} (add them where the figures belong)",
            lost.join(", ")
        );
    }
    let mut out = String::with_capacity(doc.len());
    let mut at = 0;
    for s in &spans {
        out.push_str(&doc[at..s.content.start]);
        match values.iter().find(|(n, _)| *n == s.name) {
            Some((_, v)) => out.push_str(v),
            None => out.push_str(&doc[s.content.clone()]),
        }
        at = s.content.end;
    }
    out.push_str(&doc[at..]);
    Ok(out)
}

/// A block span's content (a table, a paragraph): on lines of its own, set off from the
/// markers by blank lines so Markdown sees it as a block; empty when there is nothing.
pub fn block(s: &str) -> String {
    let s = s.trim();
    if s.is_empty() {
        "\n".into()
    } else {
        format!("\n\n{s}\n\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_named_spans_and_keeps_everything_else() {
        let doc = "# T\n\nRuns <!-- bench:n -->3<!-- /bench:n --> s, \
                   n again <!-- bench:n -->3<!-- /bench:n -->.\n\
                   <!-- bench:table -->\nold\n<!-- /bench:table -->\n\
                   <!-- bench:kept -->last run<!-- /bench:kept --> tail\n";
        let out = fill(
            doc,
            &[("n", "5".into()), ("table", block("| a |\n| --- |\n"))],
        )
        .expect("fill");
        assert_eq!(
            out,
            "# T\n\nRuns <!-- bench:n -->5<!-- /bench:n --> s, \
             n again <!-- bench:n -->5<!-- /bench:n -->.\n\
             <!-- bench:table -->\n\n| a |\n| --- |\n\n<!-- /bench:table -->\n\
             <!-- bench:kept -->last run<!-- /bench:kept --> tail\n"
        );
        // Filling again with the same values changes nothing.
        assert_eq!(
            fill(
                &out,
                &[("n", "5".into()), ("table", block("| a |\n| --- |"))]
            )
            .expect("again"),
            out
        );
        assert_eq!(block("  "), "\n");
    }

    #[test]
    fn a_value_without_its_span_or_a_broken_marker_is_an_error() {
        let err = fill("text", &[("gone", "1".into())]).unwrap_err();
        assert!(err.to_string().contains("span for: gone"), "{err}");
        assert!(fill("<!-- bench:a -->x", &[]).is_err());
        assert!(fill("<!-- bench:a", &[]).is_err());
        assert!(
            fill(
                "<!-- bench:a --><!-- bench:b --><!-- /bench:b --><!-- /bench:a -->",
                &[]
            )
            .is_err()
        );
        assert_eq!(
            missing("<!-- bench:a -->1<!-- /bench:a -->", &["a", "b"]).expect("missing"),
            ["b"]
        );
        // Inside code the markers would show.
        assert!(fill("`x <!-- bench:a -->1<!-- /bench:a -->`", &[]).is_err());
        assert!(fill("```\n<!-- bench:a -->1<!-- /bench:a -->\n```\n", &[]).is_err());
        assert!(fill("`x` <!-- bench:a -->`1`<!-- /bench:a -->", &[]).is_ok());
    }
}
