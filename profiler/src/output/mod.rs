//! Views of recordings: text and JSON reports (`report`), folded stacks and SVG
//! flamegraphs (`flamegraph`), two recordings compared (`compare`), self-contained HTML of
//! both (`html`), other tools' formats (`export`: pprof, speedscope, folded, CSV), and the
//! atomic file writer they all use (`atomic`).
pub mod atomic;
pub mod compare;
pub mod export;
pub mod flamegraph;
pub mod html;
pub mod report;
