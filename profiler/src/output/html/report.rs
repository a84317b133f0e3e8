//! `zoneprof report --format html`: one recording, summary first, then the evidence.
use std::{collections::BTreeMap, fmt::Write as _};

use super::{
    HtmlError, esc,
    groups::{CpuGroup, all_cpus, group_cpus},
    page, sections,
    widgets::{BarRow, Segments, Shown, details, num, table, td, td_class, th, titled_flame},
};
use crate::{
    kernel::cpulist::format_cpu_list,
    model::{
        blame,
        recording::{LossUnit, Recording},
        tasks::By,
        units::{SatSum, fmt_count, fmt_ns, fmt_pct},
    },
    output::{
        flamegraph::{self as fg, FlameError, FoldOptions, View},
        report::{self, PerCpu, Report},
    },
};

/// `zoneprof report --format html`.
pub fn report_html(rec: &Recording, top: usize, source: &str) -> Result<String, HtmlError> {
    report_html_by(rec, top, source, By::Cpu)
}

/// `zoneprof report --format html --by …`: with `by` task or cgroup, that table comes
/// right after the summary (the per-CPU chart stays, below it).
pub fn report_html_by(
    rec: &Recording,
    top: usize,
    source: &str,
    by: By,
) -> Result<String, HtmlError> {
    let r = report::build(rec, top);
    let mut b = String::new();
    let title = format!(
        "zoneprof report: {} (Linux {})",
        r.host.hostname, r.host.kernel_release
    );
    let _ = write!(
        b,
        "<h1>{}</h1><p class=\"sub\">{} · {} CPUs, {} NUMA node(s) · recorded {:.2} s · stopped by {}</p>",
        esc(&title),
        esc(source),
        r.host.online_cpus,
        r.host.numa_nodes,
        r.duration_s,
        esc(&r.end_reason)
    );
    summary(&mut b, &r);
    if by != By::Cpu {
        who(&mut b, &r, top, by);
    }
    let groups = group_cpus(&all_cpus(rec), &rec.host);
    sections::per_cpu_wait(
        &mut b,
        &groups,
        &[
            ("a", "alloc side"),
            ("f", "free side"),
            ("o", "other zone-lock"),
        ],
        &wait_rows(&r, &groups),
    );
    blame(&mut b, &r, &groups, top);
    flamegraphs(&mut b, rec, source)?;
    matrices(&mut b, rec, &groups);
    let pcp = rec
        .pcp
        .iter()
        .any(|p| p.refill_pages > 0 || p.drain_pages > 0)
        .then(|| pcp_rows(rec, &groups));
    sections::pcp(
        &mut b,
        &[
            ("r", "refill (buddy → PCP, under zone->lock)"),
            ("d", "drain (PCP → buddy)"),
        ],
        pcp.as_deref(),
        "No PCP refill or drain counts in this recording.",
    );
    sections::section(&mut b, "tables", "Details", |b| details_tables(b, &r, top));
    sections::facts(&mut b, Shown::One(rec));
    Ok(page(&title, &b))
}

/// Lock wait (and SKB frees) per thread or per cgroup, the `top` rows with the most.
fn who(b: &mut String, r: &Report, top: usize, by: By) {
    let (id, h2) = match by {
        By::Task => ("threads", "Per thread"),
        _ => ("cgroups", "Per cgroup"),
    };
    sections::section(b, id, h2, |b| match by {
        By::Task => {
            let rows = r.lock_wait_tasks.iter().take(top).map(|t| {
                let [first, rest @ ..] = report::task_wait_cells(t);
                std::iter::once(th(&first))
                    .chain(rest.iter().enumerate().map(|(i, c)| match i {
                        1 => td(c),
                        _ => num(c),
                    }))
                    .collect()
            });
            table(b, &report::TASK_WAIT_COLUMNS, rows);
            if !r.skb_free_tasks.is_empty() {
                b.push_str("<h3>SKB frees per thread</h3>");
                let rows = r.skb_free_tasks.iter().take(top).map(|t| {
                    vec![
                        th(&t.task.frame()),
                        num(&t.task.tgid.map_or("?".into(), |p| p.to_string())),
                        td(&t.task.cgroup_name()),
                        num(&fmt_count(t.frees.count)),
                        num(&fmt_count(t.frees.remote)),
                        num(&fmt_count(t.frees.cross_node)),
                    ]
                });
                table(
                    b,
                    &[
                        "thread (comm-tid)",
                        "process",
                        "cgroup",
                        "frees",
                        "remote",
                        "cross-node",
                    ],
                    rows,
                );
            }
        }
        _ => {
            let rows = r.cgroups.iter().take(top).map(|c| {
                let [first, rest @ ..] = report::cgroup_cells(c);
                std::iter::once(th(&first))
                    .chain(rest.iter().map(|c| num(c)))
                    .collect()
            });
            table(b, &report::CGROUP_COLUMNS, rows);
        }
    });
}

/// The headline totals as cards, and the observer-cost line.
fn summary(b: &mut String, r: &Report) {
    let t = &r.totals;
    let z = t.zone_lock_wait_ns;
    let cards = [
        (
            fmt_ns(z.total()),
            format!(
                "zone->lock wait ({} of CPU time)",
                fmt_pct(t.zone_lock_wait_pct_of_cpu_time)
            ),
        ),
        (fmt_ns(z.alloc), "allocation side".to_string()),
        (fmt_ns(z.free), "free side".to_string()),
        (
            fmt_ns(t.other_lock_wait_ns),
            "other contended locks".to_string(),
        ),
        (
            fmt_count(t.pcp_refill_pages),
            "PCP refill pages".to_string(),
        ),
        (fmt_count(t.pcp_drain_pages), "PCP drain pages".to_string()),
    ];
    sections::section(b, "summary", "", |b| {
        b.push_str("<div class=\"cards\">");
        for (v, l) in cards {
            let _ = write!(
                b,
                "<div class=\"card\"><b>{}</b><span>{}</span></div>",
                esc(&v),
                esc(&l)
            );
        }
        b.push_str("</div>");
        let _ = write!(
            b,
            "<p class=\"note\" id=\"observer-cost\">{}</p>",
            esc(&report::observer_line(r))
        );
    });
}

/// `(alloc, free, other)` share of each CPU's time, percent.
fn wait_rows(r: &Report, groups: &[CpuGroup]) -> Vec<BarRow<Segments>> {
    let by_cpu: BTreeMap<u32, &report::PerCpu> = r.per_cpu.iter().map(|c| (c.cpu, c)).collect();
    let secs = r.duration_s.max(f64::MIN_POSITIVE);
    groups
        .iter()
        .map(|g| {
            let (mut a, mut f, mut o) = (0u64, 0u64, 0u64);
            for c in g.cpus.iter().filter_map(|c| by_cpu.get(c)) {
                a = a.saturating_add(c.zone_lock_wait_ns.alloc);
                f = f.saturating_add(c.zone_lock_wait_ns.free);
                o = o.saturating_add(c.zone_lock_wait_ns.other);
            }
            // Percent of the group's CPU time (mean over its CPUs).
            let pct = |ns: u64| 100.0 * ns as f64 / 1e9 / secs / g.cpus.len().max(1) as f64;
            BarRow {
                label: g.label.clone(),
                bars: vec![("a", pct(a)), ("f", pct(f)), ("o", pct(o))],
                value: format!(
                    "alloc {} · free {} ({} waited)",
                    fmt_pct(pct(a)),
                    fmt_pct(pct(f)),
                    fmt_ns([a, f, o].into_iter().sat_sum())
                ),
            }
        })
        .collect()
}

fn pcp_rows(rec: &Recording, groups: &[CpuGroup]) -> Vec<BarRow<Segments>> {
    let by_cpu: BTreeMap<u32, (u64, u64)> = rec
        .pcp
        .iter()
        .map(|p| (p.cpu, (p.refill_pages, p.drain_pages)))
        .collect();
    let secs = rec.duration_s().max(f64::MIN_POSITIVE);
    groups
        .iter()
        .map(|g| {
            let (r, d) = g
                .cpus
                .iter()
                .filter_map(|c| by_cpu.get(c))
                .fold((0u64, 0u64), |(r, d), (a, b)| {
                    (r.saturating_add(*a), d.saturating_add(*b))
                });
            BarRow {
                label: g.label.clone(),
                bars: vec![("r", r as f64 / secs), ("d", d as f64 / secs)],
                value: format!(
                    "refill {} · drain {} pages/s",
                    fmt_count((r as f64 / secs).round() as u64),
                    fmt_count((d as f64 / secs).round() as u64)
                ),
            }
        })
        .collect()
}

/// The blame headline and heatmap, and the pairs with the most wait.
fn blame(b: &mut String, r: &Report, groups: &[CpuGroup], top: usize) {
    let s = &r.zone_wait_blame_summary;
    let view = sections::Blame {
        headline: &s.headline,
        basis: s.basis.clone(),
        cells: r
            .zone_wait_blame
            .iter()
            .map(|c| (c.alloc_cpu, c.free_cpu, c.wait_ns as f64))
            .collect(),
    };
    let fmt = |v: f64| fmt_ns(v.round() as u64);
    sections::blame(b, Shown::One(view), groups, &fmt, |b| {
        if r.zone_wait_blame.is_empty() {
            return;
        }
        let _ = write!(b, "<h3>Pairs with the most zone-lock wait</h3>");
        let rows = r.zone_wait_blame.iter().take(top).map(|c| {
            let share = 100.0 * c.wait_ns as f64 / s.zone_lock_wait_ns.max(1) as f64;
            let mut samples = fmt_count(c.samples);
            if c.samples < blame::FEW_SAMPLES {
                samples.push_str(" (few)");
            }
            vec![
                td(&format!("{} → {}", c.alloc_cpu, c.free_cpu)),
                num(&fmt_ns(c.wait_ns)),
                num(&fmt_pct(share)),
                num(&fmt_ns(c.alloc_side_ns)),
                num(&fmt_ns(c.free_side_ns)),
                num(&samples),
            ]
        });
        table(
            b,
            &[
                "alloc → free CPU",
                "wait",
                "share",
                "alloc side",
                "free side",
                "samples",
            ],
            rows,
        );
        blame_nodes(b, r);
    });
}

/// The blame per (alloc node, free node), on hosts of several nodes.
fn blame_nodes(b: &mut String, r: &Report) {
    let s = &r.zone_wait_blame_summary;
    let Some(pct) = s.cross_node_pct else {
        return;
    };
    let _ = write!(
        b,
        "<h3>Per NUMA node pair</h3><p class=\"note\">{} of zone-lock wait is explained by \
         pairs of CPUs on different nodes.</p>",
        esc(&fmt_pct(pct))
    );
    let rows = r.zone_wait_blame_nodes.iter().map(|c| {
        let share = 100.0 * c.wait_ns as f64 / s.zone_lock_wait_ns.max(1) as f64;
        vec![
            td(&format!("{} → {}", c.alloc_node, c.free_node)),
            num(&fmt_ns(c.wait_ns)),
            num(&fmt_pct(share)),
            num(&fmt_ns(c.alloc_side_ns)),
            num(&fmt_ns(c.free_side_ns)),
            num(&fmt_count(c.samples)),
        ]
    });
    table(
        b,
        &[
            "alloc → free node",
            "wait",
            "share",
            "alloc side",
            "free side",
            "samples",
        ],
        rows,
    );
}

/// Zone-lock wait, all locks, and SKB frees when there are any.
fn flamegraphs(b: &mut String, rec: &Recording, source: &str) -> Result<(), HtmlError> {
    sections::section(b, "flamegraphs", "Flamegraphs", |b| {
        b.push_str(
            "<p class=\"note\">Click to zoom, Ctrl-F / the Search button to highlight; \
             widths are nanoseconds waited.</p>",
        );
        flame_or_note(b, rec, View::ZoneWait, source)?;
        flame_or_note(b, rec, View::Locks, source)?;
        if !rec.skb_sites.is_empty() {
            flame_or_note(b, rec, View::SkbFree, source)?;
        }
        Ok(())
    })
}

/// Flamegraph of `view`, or a one-line note saying why there is none.
fn flame_or_note(
    out: &mut String,
    rec: &Recording,
    view: View,
    source: &str,
) -> Result<(), HtmlError> {
    let opts = FoldOptions::default();
    match fg::build(rec, view, &opts, source) {
        Ok(f) => {
            let svg = fg::render_svg(&f.folded, view, &f.title, &f.subtitle)?;
            titled_flame(out, view.describe(), &svg, &f.title);
        }
        Err(FlameError::NoData(why)) => {
            let _ = write!(
                out,
                "<h3>{}</h3><p class=\"note\">{}</p>",
                esc(view.describe()),
                esc(&why)
            );
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

fn matrices(b: &mut String, rec: &Recording, groups: &[CpuGroup]) {
    let secs = rec.duration_s().max(f64::MIN_POSITIVE);
    let skb: Vec<_> = rec
        .skb_matrix
        .iter()
        .map(|c| (c.alloc_cpu, c.free_cpu, c.count as f64 / secs))
        .collect();
    let pages: Vec<_> = rec
        .page_matrix
        .iter()
        .map(|c| (c.alloc_cpu, c.free_cpu, c.pages as f64 / secs))
        .collect();
    let shown: Vec<sections::Matrix> = [
        ("SKBs (skb->alloc_cpu at free time)", skb, "SKBs/s"),
        ("Pages (sampled, scaled estimate)", pages, "pages/s"),
    ]
    .into_iter()
    .filter(|(_, cells, _)| !cells.is_empty())
    .map(|(title, cells, unit)| sections::Matrix {
        title,
        unit,
        cells: Shown::One(cells),
    })
    .collect();
    sections::matrices(
        b,
        &shown,
        groups,
        "<p class=\"note\">No SKB or page matrix in this recording (those probes did not run); \
         the PCP refill/drain counts per CPU below show where pages entered and left the \
         per-CPU lists.</p>",
    );
}

/// The report's tables: per CPU, free triggers, zones, top stacks, other locks, probes,
/// losses, and what the recording could not observe.
fn details_tables(b: &mut String, r: &Report, top: usize) {
    per_cpu_table(b, r);
    if !r.free_triggers.is_empty() {
        b.push_str("<h3>Free-side zone-lock wait by trigger</h3>");
        let rows = r.free_triggers.iter();
        table(
            b,
            &["trigger", "wait"],
            rows.map(|t| vec![td(t.label), num(&fmt_ns(t.wait_ns))]),
        );
    }
    if !r.zones.is_empty() {
        b.push_str("<h3>Zones (lock address proven in the kernel)</h3>");
        let rows = r.zones.iter().map(|z| {
            let w = z.wait_by_side_ns;
            vec![
                td(&z.label),
                td_class("mono", &z.lock_addr),
                num(&fmt_ns(z.wait_ns)),
                num(&fmt_ns(w.alloc)),
                num(&fmt_ns(w.free)),
                num(&fmt_ns(w.other)),
                num(&fmt_ns(z.remote_cpu_wait_ns)),
                num(&fmt_count(z.contentions)),
            ]
        });
        table(
            b,
            &[
                "zone",
                "lock",
                "wait",
                "alloc side",
                "free side",
                "other",
                "by other nodes' CPUs",
                "contentions",
            ],
            rows,
        );
    }
    numa_tables(b, r);
    zone_stacks(b, r, top);
    other_locks(b, r);
    probes_and_losses(b, r);
}

/// Zone-lock wait per node, and SKBs and pages per (alloc node, free node), on hosts of
/// several nodes.
fn numa_tables(b: &mut String, r: &Report) {
    if r.zone_nodes.len() < 2 {
        return;
    }
    b.push_str(
        "<h3>Per NUMA node</h3><p class=\"note\">Zone-lock wait on each node's zones (the \
         node of the memory, not of the waiting CPU).</p>",
    );
    let rows = r.zone_nodes.iter().map(|n| {
        let w = n.wait_ns;
        vec![
            td(&n.node.to_string()),
            num(&fmt_ns(w.total())),
            num(&fmt_ns(w.alloc)),
            num(&fmt_ns(w.free)),
            num(&fmt_ns(w.other)),
            num(&fmt_ns(n.remote_cpu_wait_ns)),
            num(&fmt_count(n.contentions)),
            td(&n.zones.join(", ")),
        ]
    });
    table(
        b,
        &[
            "node",
            "wait",
            "alloc side",
            "free side",
            "other",
            "by other nodes' CPUs",
            "contentions",
            "zones",
        ],
        rows,
    );
    let mut pairs: BTreeMap<(u32, u32), (Option<u64>, Option<u64>)> = BTreeMap::new();
    for c in &r.skb_node_matrix {
        pairs.entry((c.alloc_cpu, c.free_cpu)).or_default().0 = Some(c.count);
    }
    for c in &r.page_node_matrix {
        pairs.entry((c.alloc_node, c.free_node)).or_default().1 = Some(c.pages);
    }
    if pairs.is_empty() {
        return;
    }
    b.push_str("<h3>Flows per NUMA node pair</h3>");
    let secs = r.duration_s.max(f64::MIN_POSITIVE);
    let rate = |v: Option<u64>| {
        v.map_or("-".to_string(), |n| {
            fmt_count((n as f64 / secs).round() as u64)
        })
    };
    let rows = pairs.into_iter().map(|((a, f), (skb, pages))| {
        vec![
            td(&format!("{a} → {f}")),
            num(&rate(skb)),
            num(&rate(pages)),
        ]
    });
    table(
        b,
        &["alloc → free node", "SKBs/s", "pages/s (sampled)"],
        rows,
    );
}

/// Every CPU with activity (all of them on small hosts).
fn per_cpu_table(b: &mut String, r: &Report) {
    b.push_str("<h3>Per CPU</h3><div class=\"scroll\">");
    let many = r.per_cpu.len() > 16;
    let shown = r.per_cpu.iter().filter(|c| c.is_busy() || !many);
    let rows = shown.map(|c| c.cells().iter().map(|cell| num(cell)).collect());
    table(b, &PerCpu::COLUMNS, rows);
    b.push_str("</div>");
    let hidden = r.per_cpu.iter().filter(|c| !c.is_busy() && many).count();
    if hidden > 0 {
        let _ = write!(
            b,
            "<p class=\"note\">{hidden} CPUs with no activity not shown.</p>"
        );
    }
}

fn zone_stacks(b: &mut String, r: &Report, top: usize) {
    let _ = write!(b, "<h3>Top {top} zone-lock stacks</h3>");
    if r.top_zone_stacks.is_empty() {
        b.push_str("<p class=\"note\">No zone-lock contention was recorded.</p>");
        return;
    }
    let rows = r.top_zone_stacks.iter().map(|s| {
        let leaf: Vec<String> = s.frames.iter().take(3).cloned().collect();
        vec![
            td(&s.class),
            num(&fmt_ns(s.wait_ns)),
            num(&fmt_count(s.count)),
            num(&fmt_ns(s.max_ns)),
            td(&format_cpu_list(&s.cpus)),
            details("mono", &leaf.join(" ← "), &s.frames.join("\n")),
        ]
    });
    table(
        b,
        &["lock", "wait", "waits", "max", "CPUs", "stack (leaf first)"],
        rows,
    );
}

fn other_locks(b: &mut String, r: &Report) {
    b.push_str("<h3>Other contended locks</h3>");
    if r.top_other_locks.is_empty() {
        b.push_str("<p class=\"note\">None.</p>");
        return;
    }
    let rows = r.top_other_locks.iter().map(|o| {
        vec![
            td(&o.lock),
            num(&fmt_ns(o.wait_ns)),
            num(&fmt_count(o.count)),
            num(&fmt_ns(o.max_ns)),
            details("", "stack", &o.top_stack.join("\n")),
        ]
    });
    table(b, &["lock", "wait", "waits", "max", "heaviest stack"], rows);
}

fn probes_and_losses(b: &mut String, r: &Report) {
    b.push_str("<h3>Probes</h3>");
    let rows = r.probes.iter().map(|p| {
        let status = if p.attached {
            "attached".to_string()
        } else {
            format!("NOT attached: {}", p.reason.as_deref().unwrap_or("?"))
        };
        vec![
            td(&p.name),
            td(&p.method),
            td_class("mono", &p.target),
            td(&status),
        ]
    });
    table(b, &["probe", "method", "target", "status"], rows);
    b.push_str("<h3>Losses</h3>");
    let losses: Vec<_> = r.losses.losses().collect();
    if losses.is_empty() {
        b.push_str("<p>None.</p>");
    } else {
        let rows = losses.into_iter().map(|(loss, n)| {
            let n = match loss.unit {
                LossUnit::Count => fmt_count(n),
                LossUnit::Nanoseconds => fmt_ns(n),
            };
            vec![th(loss.label), num(&n)]
        });
        table(b, &[], rows);
    }
    if !r.not_observable.is_empty() {
        b.push_str("<h3>Not observable in this recording</h3><ul>");
        for n in &r.not_observable {
            let _ = write!(b, "<li><b>{}</b>: {}</li>", esc(&n.what), esc(&n.why));
        }
        b.push_str("</ul>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tasks::tests::sample_with_tasks;

    #[test]
    fn by_task_and_by_cgroup_put_their_table_after_the_summary() {
        let rec = sample_with_tasks();
        let plain = report_html(&rec, 10, "t.zprof").expect("html");
        assert!(!plain.contains("<section id=\"threads\">"));
        let t = report_html_by(&rec, 10, "t.zprof", By::Task).expect("html");
        let at = t
            .find("<section id=\"threads\">")
            .expect("a threads section");
        assert!(at < t.find("Per CPU").expect("per-CPU table still there"));
        assert!(
            t.contains("<th>vhost-1000-1002</th>"),
            "the reader thread's row"
        );
        assert!(t.contains("<h3>SKB frees per thread</h3>"));
        let c = report_html_by(&rec, 10, "t.zprof", By::Cgroup).expect("html");
        assert!(c.contains("<section id=\"cgroups\">"));
        assert!(c.contains("<th>/machine.slice/vm1.scope</th>"));
    }
}
