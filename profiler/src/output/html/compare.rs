//! `zoneprof compare --format html`: the verdict first, then the evidence, each section
//! before and after side by side.
use std::fmt::Write as _;

use super::{
    HtmlError, esc,
    groups::{CpuGroup, all_cpus, group_cpus},
    page, sections,
    widgets::{
        BarRow, Cells, Segments, Shown, Td, details, num, table, td, td_class, titled_flame,
    },
};
use crate::{
    model::{
        recording::Recording,
        units::{fmt_count, fmt_ns, fmt_pct},
    },
    output::{
        compare::{self, CellRow, Comparison, CpuMetric, DiffFlamegraph, Pair, Side, Total, Unit},
        flamegraph::View,
    },
};

/// `zoneprof compare --format html`: verdict first, then the evidence.
pub fn compare_html(
    c: &Comparison,
    before: &Recording,
    after: &Recording,
) -> Result<String, HtmlError> {
    let recs = Pair::new(before, after);
    let mut b = String::new();
    let title = header(&mut b, c);
    verdict(&mut b, c);
    headlines(&mut b, c);
    // Per CPU: groups over the union of both recordings' CPUs.
    let mut cpus = all_cpus(before);
    cpus.extend(all_cpus(after));
    cpus.sort_unstable();
    cpus.dedup();
    let groups = group_cpus(&cpus, &before.host);
    sections::per_cpu_wait(
        &mut b,
        &groups,
        &[("a", "alloc side"), ("f", "free side")],
        &wait_rows(c, &groups),
    );
    blame(&mut b, c, &groups);
    flamegraphs(&mut b, recs)?;
    matrices(&mut b, c, &groups);
    let pcp = c
        .rates
        .total(Total::PcpRefill)
        .any()
        .then(|| pcp_rows(c, &groups));
    sections::pcp(
        &mut b,
        &[("r", "refill (buddy → PCP)"), ("d", "drain (PCP → buddy)")],
        pcp.as_deref(),
        "No PCP refill/drain counts in either recording.",
    );
    nodes(&mut b, c);
    skb_sites(&mut b, c);
    stacks(&mut b, c);
    sections::facts(&mut b, Shown::Two(recs));
    Ok(page(&title, &b))
}

/// The title and the two recordings in one line; returns the title.
fn header(b: &mut String, c: &Comparison) -> String {
    let (rb, ra) = (&c.recordings.before, &c.recordings.after);
    let title = format!("zoneprof compare: {} → {}", rb.file, ra.file);
    let _ = write!(
        b,
        "<h1>{}</h1><p class=\"sub\">before: {} (Linux {}), {} CPUs, {:.2} s · after: {} (Linux {}), {} CPUs, {:.2} s · \
         all rates per second of recording</p>",
        esc(&title),
        esc(&rb.host),
        esc(&rb.kernel),
        rb.online_cpus,
        rb.duration_s,
        esc(&ra.host),
        esc(&ra.kernel),
        ra.online_cpus,
        ra.duration_s
    );
    title
}

/// The verdict, the warnings and each side's observer cost.
fn verdict(b: &mut String, c: &Comparison) {
    sections::section(b, "verdict", "Verdict", |b| {
        b.push_str("<ul>");
        for v in &c.verdict {
            let _ = write!(b, "<li>{}</li>", esc(v));
        }
        b.push_str("</ul>");
        for w in &c.warnings {
            let _ = write!(b, "<div class=\"warn\">⚠ {}</div>", esc(w));
        }
        for (side, line) in compare::observer_lines(c).sides() {
            let line = format!("Observer cost under zone->lock, {}: {line}", side.label());
            let _ = write!(b, "<p class=\"note observer-cost\">{}</p>", esc(&line));
        }
    });
}

/// The change in percent, coloured by direction.
fn change_cell(v: Pair<Option<f64>>) -> Td {
    match v.change_pct() {
        Some(p) => {
            let class = if p <= -0.05 {
                "num down"
            } else if p >= 0.05 {
                "num up"
            } else {
                "num"
            };
            td_class(class, &format!("{p:+.1} %"))
        }
        None => num("n/a"),
    }
}

fn headlines(b: &mut String, c: &Comparison) {
    sections::section(b, "metrics", "Headlines (per second)", |b| {
        let rows = c.rates.headlines();
        let rows = rows.iter().filter(|m| m.values.any()).map(|m| {
            let unit = m.key.unit();
            vec![
                td_class("mono", &m.key.name()),
                num(&unit.fmt(m.values.before)),
                num(&unit.fmt(m.values.after)),
                change_cell(m.values),
            ]
        });
        table(b, &["metric", "before", "after", "change"], rows);
    });
}

/// A group's bars before and after: per (class, per-CPU rate), the mean over the group's
/// CPUs, or their sum when `summed`.
fn group_bars(
    c: &Comparison,
    g: &CpuGroup,
    keys: [(&'static str, CpuMetric); 2],
    summed: bool,
) -> Pair<Segments> {
    let mean = |m: CpuMetric, side: Side| -> f64 {
        g.cpus
            .iter()
            .filter_map(|&cpu| *c.rates.cpu(cpu, m).get(side))
            .sum::<f64>()
            / g.cpus.len().max(1) as f64
    };
    let bars = |side| {
        keys.iter()
            .map(|&(class, m)| {
                let v = mean(m, side);
                (class, if summed { v * g.cpus.len() as f64 } else { v })
            })
            .collect()
    };
    Pair::new(bars(Side::Before), bars(Side::After))
}

/// "alloc 1.0 % → 0.1 % · free …" of two-segment bars, each value through `fmt`.
fn pair_value(names: [&str; 2], bars: &Pair<Segments>, fmt: impl Fn(f64) -> String) -> String {
    let (b, a) = (&bars.before, &bars.after);
    format!(
        "{} {} → {} · {} {} → {}",
        names[0],
        fmt(b[0].1),
        fmt(a[0].1),
        names[1],
        fmt(b[1].1),
        fmt(a[1].1)
    )
}

/// Zone-lock wait as a share of each group's CPU time, before and after.
fn wait_rows(c: &Comparison, groups: &[CpuGroup]) -> Vec<BarRow<Pair<Segments>>> {
    let keys = [
        ("a", CpuMetric::ZoneWaitAllocPct),
        ("f", CpuMetric::ZoneWaitFreePct),
    ];
    groups
        .iter()
        .map(|g| {
            let bars = group_bars(c, g, keys, false);
            BarRow {
                label: g.label.clone(),
                value: pair_value(["alloc", "free"], &bars, fmt_pct),
                bars,
            }
        })
        .collect()
}

/// PCP pages per second of each group (all its CPUs), before and after.
fn pcp_rows(c: &Comparison, groups: &[CpuGroup]) -> Vec<BarRow<Pair<Segments>>> {
    let keys = [("r", CpuMetric::PcpRefill), ("d", CpuMetric::PcpDrain)];
    groups
        .iter()
        .map(|g| {
            let bars = group_bars(c, g, keys, true);
            BarRow {
                label: g.label.clone(),
                value: pair_value(["refill", "drain"], &bars, |v| fmt_count(v.round() as u64)),
                bars,
            }
        })
        .collect()
}

/// Each side's blame headline and heatmap (ns/s on one scale), then the explained share and
/// the followed pair's share before and after.
fn blame(b: &mut String, c: &Comparison, groups: &[CpuGroup]) {
    let bl = &c.blame;
    let view = |side: Side| {
        let one = bl.sides.get(side);
        sections::Blame {
            headline: &one.headline,
            basis: one
                .source
                .filter(|_| one.explained_pct.is_some())
                .map(|s| format!("weights: {}", s.describe(one.sample_one_in))),
            cells: bl
                .cells
                .iter()
                .filter_map(|r| r.per_s.get(side).map(|v| (r.alloc_cpu, r.free_cpu, v)))
                .collect(),
        }
    };
    let fmt = |v: f64| format!("{}/s", fmt_ns(v.round() as u64));
    let views = Pair::new(view(Side::Before), view(Side::After));
    sections::blame(b, Shown::Two(views), groups, &fmt, |b| {
        let pct = |v: Option<f64>| num(&v.map_or("n/a".to_string(), fmt_pct));
        let explained = bl.sides.as_ref().map(|x| x.explained_pct);
        let mut rows = vec![vec![
            td("explained by cross-CPU frees"),
            pct(explained.before),
            pct(explained.after),
        ]];
        let across = bl.sides.as_ref().map(|x| x.cross_node_pct);
        if across.any() {
            rows.push(vec![
                td("explained across NUMA nodes"),
                pct(across.before),
                pct(across.after),
            ]);
        }
        if let Some((a, f)) = bl.pair {
            rows.push(vec![
                td(&format!("pair {a} → {f}: share of zone-lock wait")),
                pct(bl.pair_share_pct.before),
                pct(bl.pair_share_pct.after),
            ]);
        }
        table(b, &["", "before", "after"], rows);
    });
}

/// The zone-lock differential flamegraphs, or the all-locks ones when there are none.
fn flamegraphs(b: &mut String, recs: Pair<&Recording>) -> Result<(), HtmlError> {
    sections::section(b, "flamegraphs", "Differential flamegraphs", |b| {
        b.push_str(
            "<p class=\"note\">Red: grew after the change; blue: shrank. The first is sized by \
             AFTER; the second by BEFORE (colours negated so they read the same way), so stacks \
             that vanished are visible there.</p>",
        );
        for view in [View::ZoneWait, View::Locks] {
            let flames = compare::diff_flamegraphs(recs, view)?;
            match flames.as_slice() {
                [] => {
                    let _ = write!(
                        b,
                        "<p class=\"note\">{}: no stacks in either recording.</p>",
                        esc(view.describe())
                    );
                    continue;
                }
                [only] => one_direction_note(b, only),
                _ => {}
            }
            for f in &flames {
                titled_flame(b, &f.title, &f.svg, &f.title);
            }
            // Zone-lock diffs answer the question; the all-locks pair only when there are none.
            return Ok(());
        }
        b.push_str("<p class=\"note\">No lock-wait stacks to draw.</p>");
        Ok(())
    })
}

/// One side has none of these stacks: say which, rather than leave a gap.
fn one_direction_note(b: &mut String, f: &DiffFlamegraph) {
    // The drawn direction is sized by the side that has stacks.
    let empty = f.direction.sized_by().other();
    let shown = match empty {
        Side::After => "everything below vanished",
        Side::Before => "everything below is new",
    };
    let _ = write!(
        b,
        "<p class=\"note\">{}: the {} recording has none of these stacks, so only one \
         direction can be drawn ({shown}).</p>",
        esc(f.view.describe()),
        empty.upper()
    );
}

fn matrices(b: &mut String, c: &Comparison, groups: &[CpuGroup]) {
    let side = |rows: &[CellRow], side: Side| -> Cells {
        rows.iter()
            .filter_map(|r| r.per_s.get(side).map(|v| (r.alloc_cpu, r.free_cpu, v)))
            .collect()
    };
    let shown: Vec<sections::Matrix> = [
        ("SKBs", &c.skb_matrix, "SKBs/s"),
        ("Pages (sampled estimate)", &c.page_matrix, "pages/s"),
    ]
    .into_iter()
    .filter(|(_, rows, _)| !rows.is_empty())
    .map(|(title, rows, unit)| sections::Matrix {
        title,
        unit,
        cells: Shown::Two(Pair::new(side(rows, Side::Before), side(rows, Side::After))),
    })
    .collect();
    sections::matrices(
        b,
        &shown,
        groups,
        "<p class=\"note\">Neither recording has an SKB or page matrix; PCP refill and drain \
         per CPU below.</p>",
    );
}

/// Zone-lock wait per NUMA node, when either recording has several.
fn nodes(b: &mut String, c: &Comparison) {
    if c.zone_nodes.len() < 2 {
        return;
    }
    let title = "Zone-lock wait per NUMA node (of the zone's memory, per second)";
    sections::section(b, "nodes", title, |b| {
        let ns = |v: Option<f64>| num(&Unit::NsPerS.fmt(v));
        let rows = c.zone_nodes.iter().map(|n| {
            vec![
                td(&n.node.to_string()),
                ns(n.wait_ns_per_s.before),
                ns(n.wait_ns_per_s.after),
                change_cell(n.wait_ns_per_s),
                ns(n.alloc_ns_per_s.before),
                ns(n.alloc_ns_per_s.after),
                ns(n.free_ns_per_s.before),
                ns(n.free_ns_per_s.after),
                ns(n.remote_cpu_ns_per_s.before),
                ns(n.remote_cpu_ns_per_s.after),
            ]
        });
        let head = [
            "node",
            "wait before",
            "wait after",
            "change",
            "alloc before",
            "alloc after",
            "free before",
            "free after",
            "other nodes' CPUs before",
            "other nodes' CPUs after",
        ];
        table(b, &head, rows);
    });
}

fn skb_sites(b: &mut String, c: &Comparison) {
    if c.skb_sites.is_empty() {
        return;
    }
    let ratio = |x: Option<f64>| x.map_or("n/a".to_string(), |x| fmt_pct(100.0 * x));
    sections::section(b, "skb", "SKB free sites", |b| {
        let rows = c.skb_sites.iter().map(|s| {
            vec![
                td_class("mono", &format!("{} ← {}", s.function, s.caller)),
                num(&Unit::PerS.fmt(s.frees_per_s.before)),
                num(&ratio(s.remote_ratio.before)),
                num(&Unit::PerS.fmt(s.frees_per_s.after)),
                num(&ratio(s.remote_ratio.after)),
            ]
        });
        let head = [
            "function ← caller",
            "frees/s before",
            "remote before",
            "frees/s after",
            "remote after",
        ];
        table(b, &head, rows);
    });
}

fn stacks(b: &mut String, c: &Comparison) {
    sections::section(
        b,
        "stacks",
        "Stacks that changed most (lock wait per second)",
        |b| {
            for (what, rows) in [("Shrank", &c.stacks_shrank), ("Grew", &c.stacks_grew)] {
                let _ = write!(b, "<h3>{what}</h3>");
                if rows.is_empty() {
                    b.push_str("<p class=\"note\">None.</p>");
                    continue;
                }
                let rows = rows.iter().map(|d| {
                    let rate = |v: f64| format!("{}/s", fmt_ns(v as u64));
                    vec![
                        num(&rate(d.ns_per_s.before)),
                        num(&rate(d.ns_per_s.after)),
                        details(
                            "mono",
                            &compare::short_stack(&d.stack),
                            &d.stack.replace(';', "\n"),
                        ),
                    ]
                });
                table(b, &["before", "after", "stack"], rows);
            }
        },
    );
}
