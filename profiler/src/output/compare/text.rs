//! `zoneprof compare` as text: one writer per section.
use std::fmt::{Result, Write as _};

use super::{
    Comparison,
    metrics::{CpuMetric, Unit},
    pair::{Pair, Side},
    rates::CpuRates,
    rows::{CellRow, StackDelta},
    verdict::short_stack,
};
use crate::model::{
    observer,
    units::{fmt_ns, fmt_pct},
};

/// Matrix cells listed, busiest first.
const TOP_CELLS: usize = 20;

pub fn to_text(c: &Comparison) -> String {
    let mut s = String::new();
    let _ = write_text(&mut s, c);
    s
}

/// Each side's observer-cost sentence.
pub fn observer_lines(c: &Comparison) -> Pair<String> {
    c.observer_cost
        .as_ref()
        .zip(c.pcp_method.as_ref())
        .map(|(cost, method)| observer::describe(cost, method))
}

/// "+12 %", "=" (0 both sides), "new" (from 0), or "n/a".
fn fmt_change(v: Pair<Option<f64>>) -> String {
    match (v.change_pct(), v.before, v.after) {
        (Some(p), _, _) => format!("{p:+.0} %"),
        (None, Some(b), Some(a)) if b == 0.0 && a == 0.0 => "=".to_string(),
        (None, Some(_), Some(_)) => "new".to_string(),
        _ => "n/a".to_string(),
    }
}

fn write_text(s: &mut String, c: &Comparison) -> Result {
    header(s, c)?;
    headlines(s, c)?;
    blame(s, c)?;
    nodes(s, c)?;
    per_cpu(s, c)?;
    skb_sites(s, c)?;
    matrices(s, c)?;
    stacks(s, c)?;
    if !c.flamegraphs.is_empty() {
        writeln!(s, "\nDifferential flamegraphs")?;
        for f in &c.flamegraphs {
            writeln!(s, "  {f}")?;
        }
    }
    Ok(())
}

/// The recordings, warnings, observer cost and verdict.
fn header(s: &mut String, c: &Comparison) -> Result {
    writeln!(s, "zoneprof compare")?;
    for (side, r) in c.recordings.sides() {
        writeln!(
            s,
            "  {:<6}: {}  {} (Linux {}), {} CPUs, {:.2} s",
            side.label(),
            r.file,
            r.host,
            r.kernel,
            r.online_cpus,
            r.duration_s
        )?;
    }
    for w in &c.warnings {
        writeln!(s, "WARNING: {w}")?;
    }
    writeln!(s, "\nObserver cost under zone->lock")?;
    for (side, line) in observer_lines(c).sides() {
        writeln!(s, "  {:<6}: {line}", side.label())?;
    }
    writeln!(s, "\nVerdict")?;
    for v in &c.verdict {
        writeln!(s, "  - {v}")?;
    }
    Ok(())
}

fn headlines(s: &mut String, c: &Comparison) -> Result {
    writeln!(s, "\nHeadlines (per second of recording)")?;
    writeln!(
        s,
        "  {:<34} {:>16} {:>16} {:>8}",
        "metric", "before", "after", "change"
    )?;
    for m in c.rates.headlines().iter().filter(|m| m.values.any()) {
        let unit = m.key.unit();
        writeln!(
            s,
            "  {:<34} {:>16} {:>16} {:>8}",
            m.key.name(),
            unit.fmt(m.values.before),
            unit.fmt(m.values.after),
            fmt_change(m.values)
        )?;
    }
    Ok(())
}

/// Each side's blame headline, then the explained share and the followed pair's share.
fn blame(s: &mut String, c: &Comparison) -> Result {
    let b = &c.blame;
    writeln!(s, "\nZone-lock wait by (alloc CPU → free CPU)")?;
    for (side, one) in b.sides.sides() {
        write!(s, "  {:<6}: {}", side.label(), one.headline)?;
        match one.source {
            Some(src) if one.explained_pct.is_some() => {
                writeln!(s, " (weights: {})", src.describe(one.sample_one_in))?
            }
            _ => writeln!(s)?,
        }
    }
    let pct = |v: Option<f64>| v.map_or("n/a".to_string(), fmt_pct);
    let explained = b.sides.as_ref().map(|x| x.explained_pct);
    writeln!(
        s,
        "  {:<34} {:>8} → {:>8}",
        "explained by cross-CPU frees",
        pct(explained.before),
        pct(explained.after)
    )?;
    let across = b.sides.as_ref().map(|x| x.cross_node_pct);
    if across.any() {
        writeln!(
            s,
            "  {:<34} {:>8} → {:>8}",
            "explained across NUMA nodes",
            pct(across.before),
            pct(across.after)
        )?;
    }
    if let Some((a, f)) = b.pair {
        writeln!(
            s,
            "  {:<34} {:>8} → {:>8}  of zone-lock wait",
            format!("pair {a} → {f}"),
            pct(b.pair_share_pct.before),
            pct(b.pair_share_pct.after)
        )?;
    }
    Ok(())
}

/// Zone-lock wait per NUMA node, when either recording has several.
fn nodes(s: &mut String, c: &Comparison) -> Result {
    if c.zone_nodes.len() < 2 {
        return Ok(());
    }
    writeln!(
        s,
        "\nPer NUMA node (zone-lock wait on the node's zones, before → after, per second)"
    )?;
    writeln!(
        s,
        "  {:>4} {:>25} {:>25} {:>25} {:>25}",
        "node", "wait", "alloc side", "free side", "by other nodes' CPUs"
    )?;
    let cell = |v: Pair<Option<f64>>| {
        format!(
            "{} → {}",
            Unit::NsPerS.fmt(v.before),
            Unit::NsPerS.fmt(v.after)
        )
    };
    for n in &c.zone_nodes {
        writeln!(
            s,
            "  {:>4} {:>25} {:>25} {:>25} {:>25}",
            n.node,
            cell(n.wait_ns_per_s),
            cell(n.alloc_ns_per_s),
            cell(n.free_ns_per_s),
            cell(n.remote_cpu_ns_per_s)
        )?;
    }
    Ok(())
}

/// One row per CPU with any activity on either side.
fn per_cpu(s: &mut String, c: &Comparison) -> Result {
    writeln!(s, "\nPer CPU (before → after, per second)")?;
    writeln!(
        s,
        "  {:>4} {:>25} {:>25} {:>27} {:>27}",
        "CPU", "zone alloc wait", "zone free wait", "PCP refill", "PCP drain"
    )?;
    let mut quiet = 0;
    for cpu in c.rates.cpus() {
        let rates: Pair<Option<&CpuRates>> = c.rates.as_ref().map(|r| r.per_cpu.get(&cpu));
        let value = |m: CpuMetric| rates.map(|r| r.and_then(|r| r.get(m)));
        // Shares of CPU time are left out: they are the wait again, per CPU.
        let busy = CpuMetric::ALL
            .iter()
            .filter(|m| m.unit() != Unit::Pct)
            .any(|&m| {
                let v = value(m);
                v.before.unwrap_or(0.0) > 0.0 || v.after.unwrap_or(0.0) > 0.0
            });
        if !busy {
            quiet += 1;
            continue;
        }
        let cell = |m: CpuMetric| {
            let v = value(m);
            format!("{} → {}", m.unit().fmt(v.before), m.unit().fmt(v.after))
        };
        writeln!(
            s,
            "  {:>4} {:>25} {:>25} {:>27} {:>27}",
            cpu,
            cell(CpuMetric::ZoneWaitAllocNs),
            cell(CpuMetric::ZoneWaitFreeNs),
            cell(CpuMetric::PcpRefill),
            cell(CpuMetric::PcpDrain)
        )?;
    }
    if quiet > 0 {
        writeln!(
            s,
            "  ({quiet} CPUs with no activity in either recording not shown)"
        )?;
    }
    Ok(())
}

fn skb_sites(s: &mut String, c: &Comparison) -> Result {
    if c.skb_sites.is_empty() {
        return Ok(());
    }
    writeln!(
        s,
        "\nSKB free sites (frees/s and share freed on another CPU)"
    )?;
    let ratio = |x: Option<f64>| x.map_or("n/a".to_string(), |x| fmt_pct(100.0 * x));
    for r in &c.skb_sites {
        writeln!(
            s,
            "  {:<40} {:>14} {:>8} → {:>14} {:>8}",
            format!("{} ← {}", r.function, r.caller),
            Unit::PerS.fmt(r.frees_per_s.before),
            ratio(r.remote_ratio.before),
            Unit::PerS.fmt(r.frees_per_s.after),
            ratio(r.remote_ratio.after)
        )?;
    }
    Ok(())
}

/// The busiest cells of each matrix either recording has.
fn matrices(s: &mut String, c: &Comparison) -> Result {
    for (title, cells, unit) in [
        (
            "SKB alloc CPU → free CPU (SKBs/s)",
            &c.skb_matrix,
            Unit::PerS,
        ),
        (
            "Page alloc CPU → free CPU (pages/s, sampled)",
            &c.page_matrix,
            Unit::PagesPerS,
        ),
    ] {
        if cells.is_empty() {
            continue;
        }
        writeln!(s, "\n{title}")?;
        let mut rows: Vec<&CellRow> = cells.iter().collect();
        let busy = |r: &CellRow| r.per_s.map(|v| v.unwrap_or(0.0)).max();
        rows.sort_by(|x, y| busy(y).total_cmp(&busy(x)));
        for r in rows.iter().take(TOP_CELLS) {
            writeln!(
                s,
                "  cpu{:<4} → cpu{:<4} {:>16} → {:>16}",
                r.alloc_cpu,
                r.free_cpu,
                unit.fmt(r.per_s.before),
                unit.fmt(r.per_s.after)
            )?;
        }
        if rows.len() > TOP_CELLS {
            writeln!(s, "  ... {} more cells", rows.len() - TOP_CELLS)?;
        }
    }
    Ok(())
}

fn stacks(s: &mut String, c: &Comparison) -> Result {
    let lists: [(&str, &Vec<StackDelta>); 2] = [
        (
            "Stacks that shrank most (lock wait per second)",
            &c.stacks_shrank,
        ),
        (
            "Stacks that grew most (lock wait per second)",
            &c.stacks_grew,
        ),
    ];
    for (title, rows) in lists {
        writeln!(s, "\n{title}")?;
        if rows.is_empty() {
            writeln!(s, "  (none)")?;
        }
        for d in rows {
            let rate = |side: Side| format!("{}/s", fmt_ns(*d.ns_per_s.get(side) as u64));
            writeln!(
                s,
                "  {:>12} → {:>12}  {}",
                rate(Side::Before),
                rate(Side::After),
                short_stack(&d.stack)
            )?;
        }
    }
    Ok(())
}
