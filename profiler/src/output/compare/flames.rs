//! Differential flamegraphs of two recordings, both ways, and the folded stacks they and
//! the stack tables are made of.
use std::path::Path;

use super::pair::{Pair, Side};
use crate::{
    model::{recording::Recording, units::fmt_ns},
    output::flamegraph::{self as fg, FoldOptions, Folded, View},
};

/// Which way a differential flamegraph reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Frames sized by AFTER; red grew, blue shrank.
    BeforeVsAfter,
    /// Frames sized by BEFORE, colours negated so they still read "after vs before": stacks
    /// that vanished show here, in blue.
    AfterVsBefore,
}

impl Direction {
    pub const BOTH: [Direction; 2] = [Direction::BeforeVsAfter, Direction::AfterVsBefore];

    /// The recording whose stacks size the frames.
    pub fn sized_by(self) -> Side {
        match self {
            Direction::BeforeVsAfter => Side::After,
            Direction::AfterVsBefore => Side::Before,
        }
    }

    /// How its file name says it.
    pub fn slug(self) -> &'static str {
        match self {
            Direction::BeforeVsAfter => "before-vs-after",
            Direction::AfterVsBefore => "after-vs-before",
        }
    }
}

/// One differential flamegraph, rendered.
#[derive(Debug, Clone)]
pub struct DiffFlamegraph {
    pub view: View,
    pub direction: Direction,
    pub title: String,
    pub svg: Vec<u8>,
}

impl DiffFlamegraph {
    /// `<view>.<direction>.diff.svg` (docs/compare-json.md).
    pub fn file_name(&self) -> String {
        format!("{}.{}.diff.svg", self.view.name(), self.direction.slug())
    }
}

/// Lock-wait stacks folded for `view` (all CPUs), per second of recording.
pub fn folded_per_s(rec: &Recording, view: View) -> Folded {
    let f = fg::fold(&fg::stacks_for_view(rec, view), &FoldOptions::default());
    let secs = rec.duration_s();
    if secs > 0.0 {
        f.into_scaled(1.0 / secs)
    } else {
        f
    }
}

/// Differential flamegraphs of `view`, before→after then the negated after→before. A
/// direction whose sizing recording has none of these stacks is left out.
pub fn diff_flamegraphs(
    recs: Pair<&Recording>,
    view: View,
) -> Result<Vec<DiffFlamegraph>, fg::FlameError> {
    let folded = recs.par_map(|r| folded_per_s(r, view));
    let sub = "per second of recording; red = grew, blue = shrank (after vs before)";
    let mut out = Vec::new();
    for direction in Direction::BOTH {
        let sizing = folded.get(direction.sized_by());
        if sizing.is_empty() {
            continue;
        }
        let title = match direction {
            Direction::BeforeVsAfter => format!(
                "{} per second, widths = AFTER ({}/s); red = grew, blue = shrank",
                view.describe(),
                fmt_ns(sizing.total())
            ),
            Direction::AfterVsBefore => format!(
                "{} per second, widths = BEFORE ({}/s); blue = gone or shrank in AFTER",
                view.describe(),
                fmt_ns(sizing.total())
            ),
        };
        let negate = direction == Direction::AfterVsBefore;
        let svg = fg::render_diff_svg(&folded.before, &folded.after, negate, view, &title, sub)?;
        out.push(DiffFlamegraph {
            view,
            direction,
            title,
            svg,
        });
    }
    Ok(out)
}

/// Writes the zone-wait and locks differential flamegraphs into `dir`; returns their paths.
pub fn write_flamegraphs(
    recs: Pair<&Recording>,
    dir: &Path,
) -> Result<Vec<String>, fg::FlameError> {
    std::fs::create_dir_all(dir).map_err(|source| fg::FlameError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for view in [View::ZoneWait, View::Locks] {
        for f in diff_flamegraphs(recs, view)? {
            let p = dir.join(f.file_name());
            fg::write_atomic(&p, &f.svg)?;
            written.push(p.display().to_string());
        }
    }
    Ok(written)
}
