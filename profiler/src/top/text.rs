//! `zoneprof top` as lines of at most 80 columns: the plain-text snapshot (`--once`, or
//! stdout not a terminal) prints them all; the full-screen view styles the same lines and
//! keeps as many CPU rows as the screen has room for.
use crate::{
    model::units,
    top::view::{CpuRow, Sort, TopView},
};

/// Width of every line.
pub const WIDTH: usize = 80;
/// Columns of a CPU's wait bar.
pub const BAR: usize = 20;

/// Bar scales: the smallest that holds the busiest CPU, in % of a CPU.
const SCALES: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0];

pub fn bar_scale(v: &TopView) -> f64 {
    let max = v.cpus.iter().map(CpuRow::zone_pct).fold(0.0, f64::max);
    SCALES.iter().copied().find(|s| *s >= max).unwrap_or(100.0)
}

pub fn header(v: &TopView, sort: Sort, paused: bool) -> String {
    let state = if paused { "PAUSED" } else { "" };
    fit(&format!(
        "zoneprof top  {}  {:.1} s  sort:{} {state:<6}  [s]ort [p]ause [q]uit",
        v.host,
        v.interval_s,
        sort.name()
    ))
}

pub fn totals(v: &TopView) -> String {
    fit(&format!(
        "zone-lock wait, % of one CPU: alloc {}  free {}  other {}",
        pct(v.total.alloc),
        pct(v.total.free),
        pct(v.total.other)
    ))
}

pub fn cpu_header(scale: f64) -> String {
    let bar = format!("#alloc =free 0-{scale}%");
    fit(&format!(
        "  CPU alloc%  free% other%  {bar:<width$}  refill/s   drain/s",
        width = BAR
    ))
}

/// A CPU row in three parts: the text before the bar, the bar's alloc/free/other widths
/// (in columns, together at most [`BAR`]), and the text after it.
pub struct CpuLine {
    pub before: String,
    pub bar: [usize; 3],
    pub after: String,
}

pub fn cpu_line(r: &CpuRow, scale: f64) -> CpuLine {
    let cols = |p: f64| ((p / scale) * BAR as f64).round() as usize;
    let a = cols(r.alloc_pct).min(BAR);
    let f = cols(r.alloc_pct + r.free_pct).min(BAR).saturating_sub(a);
    let o = cols(r.zone_pct()).min(BAR).saturating_sub(a + f);
    let rate = |x: Option<f64>| match x {
        Some(x) => units::fmt_count(x.round() as u64),
        None => "-".into(),
    };
    CpuLine {
        before: format!(
            "{:>5} {:>6.2} {:>6.2} {:>6.2}  ",
            r.cpu, r.alloc_pct, r.free_pct, r.other_pct
        ),
        bar: [a, f, o],
        after: format!("  {:>8}  {:>8}", rate(r.refill_per_s), rate(r.drain_per_s)),
    }
}

impl CpuLine {
    /// The row as plain text: `#` alloc, `=` free, `-` other.
    pub fn plain(&self) -> String {
        let [a, f, o] = self.bar;
        let bar = format!("{}{}{}", "#".repeat(a), "=".repeat(f), "-".repeat(o));
        fit(&format!(
            "{}{bar:<width$}{}",
            self.before,
            self.after,
            width = BAR
        ))
    }
}

pub fn stacks_title() -> String {
    "Top zone-lock stacks           % of one CPU".into()
}

pub fn stack_lines(v: &TopView) -> Vec<String> {
    if v.stacks.is_empty() {
        return vec!["  (no zone-lock wait in this interval)".into()];
    }
    v.stacks
        .iter()
        .map(|s| fit(&format!("  {:>6.2}  {:<16} {}", s.pct, s.side, s.path)))
        .collect()
}

pub fn skb_title() -> String {
    "Top remote SKB free sites      remote/s    frees/s".into()
}

pub fn skb_lines(v: &TopView) -> Vec<String> {
    if v.skb.is_empty() {
        return vec!["  (no remote SKB frees in this interval)".into()];
    }
    v.skb
        .iter()
        .map(|s| {
            fit(&format!(
                "  {:<28} {:>9} {:>10}",
                format!("{} < {}", s.function, s.caller),
                units::fmt_count(s.remote_per_s.round() as u64),
                units::fmt_count(s.frees_per_s.round() as u64)
            ))
        })
        .collect()
}

pub fn threads_title() -> String {
    "Top threads (--tasks)           zone%  remote/s  cgroup".into()
}

/// The `--tasks` section; None without `--tasks`.
pub fn thread_lines(v: &TopView) -> Option<Vec<String>> {
    let rows = v.threads.as_ref()?;
    if rows.is_empty() {
        return Some(vec![
            "  (no thread waited or freed remotely in this interval)".into(),
        ]);
    }
    Some(
        rows.iter()
            .map(|t| {
                fit(&format!(
                    "  {:<28} {:>6.2} {:>9}  {}",
                    t.task,
                    t.zone_pct,
                    units::fmt_count(t.remote_frees_per_s.round() as u64),
                    t.cgroup
                ))
            })
            .collect(),
    )
}

pub fn losses_line(v: &TopView) -> String {
    if v.losses.is_empty() {
        return "Losses: none".into();
    }
    let all: Vec<String> = v
        .losses
        .iter()
        .map(|(what, n)| format!("{} {what}", units::fmt_count(*n)))
        .collect();
    fit(&format!("Losses: {}", all.join("; ")))
}

pub fn probes_line(v: &TopView) -> String {
    let mut s = format!("Probes: {}/{} attached", v.probes_attached, v.probes_total);
    if !v.not_attached.is_empty() {
        s += &format!("; not: {}", v.not_attached.join(", "));
    }
    fit(&s)
}

/// The plain-text snapshot: every CPU, every section.
pub fn snapshot(v: &TopView, sort: Sort) -> String {
    let scale = bar_scale(v);
    let mut lines = vec![
        fit(&format!(
            "zoneprof top  {}  {:.1} s interval  sort: {}",
            v.host,
            v.interval_s,
            sort.name()
        )),
        totals(v),
        String::new(),
        cpu_header(scale),
    ];
    lines.extend(
        v.sorted_cpus(sort)
            .iter()
            .map(|r| cpu_line(r, scale).plain()),
    );
    lines.push(String::new());
    lines.push(stacks_title());
    lines.extend(stack_lines(v));
    lines.push(String::new());
    lines.push(skb_title());
    lines.extend(skb_lines(v));
    if let Some(threads) = thread_lines(v) {
        lines.push(String::new());
        lines.push(threads_title());
        lines.extend(threads);
    }
    lines.push(String::new());
    lines.push(losses_line(v));
    lines.push(probes_line(v));
    lines.join("\n") + "\n"
}

fn pct(x: f64) -> String {
    format!("{x:.2} %")
}

/// Cut to [`WIDTH`] columns (the last one an ellipsis), trailing spaces dropped.
pub fn fit(s: &str) -> String {
    let s = s.trim_end();
    if s.chars().count() <= WIDTH {
        return s.to_string();
    }
    let mut out: String = s.chars().take(WIDTH - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::recording::sample;

    #[test]
    fn every_line_fits_80_columns() {
        let mut rec = sample();
        rec.host.hostname = "a-very-long-hostname-that-would-push-the-header-past-eighty".into();
        let text = snapshot(&TopView::of(&rec), Sort::Wait);
        for l in text.lines() {
            assert!(
                l.chars().count() <= WIDTH,
                "{} columns: {l}",
                l.chars().count()
            );
        }
        assert!(text.contains("…"));
        // With --tasks: the thread section, also within 80 columns.
        let mut rec = crate::model::tasks::tests::sample_with_tasks();
        rec.cgroups[0].path = Some(format!("/machine.slice/{}.scope", "v".repeat(80)));
        let text = snapshot(&TopView::of(&rec), Sort::Wait);
        assert!(text.contains(&threads_title()), "{text}");
        assert!(text.contains("  vhost-1000-1002 "), "{text}");
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
    }

    /// The whole snapshot of `sample()` with PCP counted and a remote SKB site, against
    /// `tests/golden/top/snapshot.txt` (`ZONEPROF_BLESS=1` rewrites it).
    #[test]
    fn snapshot_matches_the_golden_file() {
        let mut rec = sample();
        for n in ["pcp_refill", "pcp_drain"] {
            let mut p = rec.probes[0].clone();
            p.name = n.into();
            rec.probes.push(p);
        }
        rec.skb_sites.push(crate::model::recording::SkbSite {
            function: "consume_skb".into(),
            caller: "tun_do_read".into(),
            cpu: 1,
            count: 40_000,
            remote: 39_990,
            cross_node: 0,
            tid: None,
        });
        rec.counters.end_without_begin = 3;
        let text = snapshot(&TopView::of(&rec), Sort::Wait);
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/top/snapshot.txt"
        ));
        if std::env::var("ZONEPROF_BLESS").as_deref() == Ok("1") {
            std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
            std::fs::write(path, &text).expect("bless");
            return;
        }
        let want = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{}: {e}; ZONEPROF_BLESS=1 creates it", path.display()));
        assert_eq!(
            text, want,
            "rerun with ZONEPROF_BLESS=1 if the change is intended"
        );
    }

    #[test]
    fn bars_are_scaled_to_the_busiest_cpu() {
        let row = |alloc_pct, free_pct| CpuRow {
            cpu: 3,
            alloc_pct,
            free_pct,
            other_pct: 0.0,
            refill_per_s: Some(1234.4),
            drain_per_s: None,
        };
        let l = cpu_line(&row(1.0, 1.0), 2.0);
        assert_eq!(l.bar, [10, 10, 0]);
        let p = l.plain();
        assert!(
            p.contains(&format!("{}{}", "#".repeat(10), "=".repeat(10))),
            "{p}"
        );
        assert!(p.ends_with("1,234         -"), "{p}");
        // Never wider than the bar, whatever the scale says.
        assert_eq!(cpu_line(&row(30.0, 30.0), 20.0).bar, [20, 0, 0]);
    }
}
