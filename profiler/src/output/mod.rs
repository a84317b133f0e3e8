//! Views of recordings: text and JSON reports (`report`), folded stacks and SVG
//! flamegraphs (`flamegraph`), two recordings compared (`compare`), self-contained HTML of
//! both (`html`), other tools' formats (`export`: pprof, speedscope, folded, CSV), the
//! Prometheus exposition of a live session (`prometheus`), and the
//! atomic file writer they all use (`atomic`).
pub mod atomic;
#[allow(
    clippy::let_underscore_must_use,
    reason = "write! into a String cannot fail"
)]
pub mod compare;
pub mod export;
#[allow(
    clippy::let_underscore_must_use,
    reason = "write! into a String cannot fail"
)]
pub mod flamegraph;
#[allow(
    clippy::let_underscore_must_use,
    reason = "write! into a String cannot fail"
)]
pub mod html;
pub mod prometheus;
#[allow(
    clippy::let_underscore_must_use,
    reason = "write! into a String cannot fail"
)]
pub mod report;
