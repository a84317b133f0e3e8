//! Sections both pages have, one renderer each: the report draws one recording, the
//! comparison two ([`Shown`], or before/after bar pairs).
use std::{collections::BTreeMap, fmt::Write as _};

use super::{
    esc,
    groups::CpuGroup,
    widgets::{BarRow, Bars, Cells, Scale, Shown, bar_rows, heatmap, kv_table, legend},
};
use crate::{
    kernel::cpulist::format_cpu_list,
    model::{recording::Recording, units::fmt_count},
};

/// `<section id="ID">`, its `<h2>` (trusted HTML; none when empty), what `body` writes.
pub(super) fn section<R>(
    out: &mut String,
    id: &str,
    h2: &str,
    body: impl FnOnce(&mut String) -> R,
) -> R {
    let _ = write!(out, "<section id=\"{id}\">");
    if !h2.is_empty() {
        let _ = write!(out, "<h2>{h2}</h2>");
    }
    let r = body(out);
    out.push_str("</section>");
    r
}

/// Zone-lock wait per CPU (or per group) as stacked bars.
pub(super) fn per_cpu_wait<B: Bars>(
    out: &mut String,
    groups: &[CpuGroup],
    keys: &[(&str, &str)],
    rows: &[BarRow<B>],
) {
    section(
        out,
        "per-cpu",
        "Zone-lock wait per CPU (share of each CPU's time)",
        |out| {
            legend(out, keys);
            if groups.first().is_some_and(|g| g.cpus.len() > 1) {
                out.push_str(
                    "<p class=\"note\">Many CPUs: grouped; each bar is the mean over its group.</p>",
                );
            }
            bar_rows(out, rows);
        },
    );
}

/// PCP refill and drain per CPU as bars, or `none` when no recording counted them.
pub(super) fn pcp<B: Bars>(
    out: &mut String,
    keys: &[(&str, &str)],
    rows: Option<&[BarRow<B>]>,
    none: &str,
) {
    section(
        out,
        "pcp",
        "PCP refill vs drain per CPU (pages/s)",
        |out| match rows {
            Some(rows) => {
                legend(out, keys);
                bar_rows(out, rows);
            }
            None => {
                let _ = write!(out, "<p class=\"note\">{}</p>", esc(none));
            }
        },
    );
}

/// One alloc-CPU × free-CPU matrix to draw.
pub(super) struct Matrix {
    pub title: &'static str,
    pub unit: &'static str,
    pub cells: Shown<Cells>,
}

/// The matrices as heatmaps on `groups`, before and after on one colour scale; `none`
/// (trusted HTML) when there are none.
pub(super) fn matrices(out: &mut String, matrices: &[Matrix], groups: &[CpuGroup], none: &str) {
    section(out, "matrix", "Alloc CPU × free CPU", |out| {
        for m in matrices {
            let max = m.cells.iter().flatten().map(|c| c.2).fold(0.0, f64::max);
            let _ = write!(out, "<h3>{}</h3>", esc(m.title));
            let fmt = |v: f64| format!("{} {}", fmt_count(v.round() as u64), m.unit);
            m.cells.draw(out, "b", |out, cells| {
                heatmap(out, cells, groups, (max, Scale::Log), &fmt)
            });
        }
        if matrices.is_empty() {
            out.push_str(none);
        }
    });
}

/// One recording's zone-lock wait blame: its headline, where the weights came from, and
/// the wait (or wait rate) per (alloc CPU, free CPU) pair.
pub(super) struct Blame<'a> {
    pub headline: &'a str,
    pub basis: Option<String>,
    pub cells: Cells,
}

/// "Who and why": each recording's blame headline and heatmap (before and after on one
/// colour scale), then what `more` writes (the report's pair table, the comparison's).
pub(super) fn blame(
    out: &mut String,
    views: Shown<Blame<'_>>,
    groups: &[CpuGroup],
    fmt: &dyn Fn(f64) -> String,
    more: impl FnOnce(&mut String),
) {
    section(
        out,
        "blame",
        "Who and why: zone-lock wait by alloc CPU × free CPU",
        |out| {
            let max = views
                .iter()
                .flat_map(|v| &v.cells)
                .map(|c| c.2)
                .fold(0.0, f64::max);
            views.draw(out, "h3", |out, v| {
                let _ = write!(out, "<p class=\"headline\">{}</p>", esc(v.headline));
                if let Some(basis) = &v.basis {
                    let _ = write!(out, "<p class=\"note\">{}</p>", esc(basis));
                }
                if !v.cells.is_empty() {
                    // Linear: each cell's part of one wait.
                    heatmap(out, &v.cells, groups, (max, Scale::Linear), fmt);
                }
            });
            more(out);
        },
    );
}

/// Host and kernel facts of each recording.
pub(super) fn facts(out: &mut String, recs: Shown<&Recording>) {
    section(out, "facts", "Host and kernel", |out| {
        recs.draw(out, "h3", |out, rec| kv_table(out, &fact_rows(rec)));
    });
}

/// Host and kernel facts of a recording, as (key, value) rows.
fn fact_rows(rec: &Recording) -> Vec<(&'static str, String)> {
    let h = &rec.host;
    let opt = |v: Option<i64>| v.map_or("n/a".to_string(), |v| v.to_string());
    let mut rows = vec![
        ("host", h.hostname.clone()),
        ("kernel", h.kernel_release.clone()),
        ("kernel build", h.kernel_version.clone()),
        ("arch", h.arch.clone()),
        (
            "online CPUs",
            format!(
                "{} ({})",
                h.online_cpus.len(),
                format_cpu_list(&h.online_cpus)
            ),
        ),
        (
            "recorded CPUs",
            format!("{} ({})", rec.cpus.len(), format_cpu_list(&rec.cpus)),
        ),
        ("NUMA nodes", format_cpu_list(&h.numa_nodes)),
        ("duration", format!("{:.2} s", rec.duration_s())),
        ("stopped by", rec.end_reason.clone()),
        ("zoneprof", rec.zoneprof_version.clone()),
        ("net.core.skb_defer_max", opt(rec.settings.skb_defer_max)),
        (
            "vm.percpu_pagelist_high_fraction",
            opt(rec.settings.percpu_pagelist_high_fraction),
        ),
        ("vm.stat_interval", opt(rec.settings.stat_interval)),
    ];
    if let Some(c) = &rec.command {
        rows.push(("command", c.argv.join(" ")));
    }
    rows.extend(pcp_list_rows(rec).into_iter().map(|r| ("PCP list", r)));
    rows
}

/// PCP list sizes per zone: the range over CPUs, so 640 CPUs stay one line per zone.
fn pcp_list_rows(rec: &Recording) -> Vec<String> {
    let mut zones: BTreeMap<(u32, &str), (u64, u64, u64, u64)> = BTreeMap::new();
    for p in &rec.settings.pcp {
        let e = zones
            .entry((p.node, p.zone.as_str()))
            .or_insert((u64::MAX, 0, u64::MAX, 0));
        e.0 = e.0.min(p.high);
        e.1 = e.1.max(p.high);
        e.2 = e.2.min(p.batch);
        e.3 = e.3.max(p.batch);
    }
    let range = |a: u64, b: u64| {
        if a == b {
            a.to_string()
        } else {
            format!("{a}-{b}")
        }
    };
    zones
        .into_iter()
        .map(|((node, zone), (hmin, hmax, bmin, bmax))| {
            format!(
                "node {node} zone {zone}: high {} pages, batch {}",
                range(hmin, hmax),
                range(bmin, bmax)
            )
        })
        .collect()
}
