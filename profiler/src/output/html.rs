//! Self-contained HTML for `report --format html` and `compare --format html`: one file, no
//! network (inline CSS, inline SVG/JS), readable on 2 CPUs and on 640.
//!
//! inferno's flamegraph SVGs carry their own JavaScript that looks elements up by fixed ids,
//! so two of them inlined into one page would fight over `#frames`, `#details`, … Each is
//! embedded as its own document instead (`<iframe src="data:image/svg+xml;base64,…">`),
//! which keeps search, zoom and tooltips working and needs no network.
use std::{collections::BTreeMap, fmt::Write as _};

use crate::{
    kernel::cpulist::format_cpu_list,
    kernel::host::HostInfo,
    model::recording::{LossUnit, Recording},
    model::units::{fmt_count, fmt_ns, fmt_pct},
    output::compare::{self, Comparison, CpuMetric, Direction, Pair, Side, Total},
    output::flamegraph::{self as fg, FlameError, FoldOptions, View},
    output::report::{self, PerCpu, Report},
};

#[derive(Debug, thiserror::Error)]
pub enum HtmlError {
    #[error(transparent)]
    Flame(#[from] FlameError),
}

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

const CSS: &str = r#"
:root { --alloc:#d64541; --free:#2f7fc1; --other:#999; --refill:#3a9a5b; --drain:#8e5bb5;
        --ink:#1d1f23; --muted:#666; --line:#ddd; --bg:#fafafa; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--ink); background:var(--bg); }
main { max-width:1320px; margin:0 auto; padding:16px 24px 48px; }
h1 { font-size:22px; margin:8px 0 4px; }
h2 { font-size:17px; margin:28px 0 8px; border-bottom:1px solid var(--line); padding-bottom:4px; }
h3 { font-size:14px; margin:16px 0 6px; }
.sub { color:var(--muted); margin:0 0 12px; }
.cards { display:flex; flex-wrap:wrap; gap:10px; margin:12px 0; }
.card { background:#fff; border:1px solid var(--line); border-radius:6px; padding:8px 12px; min-width:150px; }
.card b { display:block; font-size:18px; }
.card span { color:var(--muted); font-size:12px; }
#verdict ul { font-size:16px; background:#fff; border:1px solid var(--line); border-left:5px solid var(--alloc);
              border-radius:6px; padding:10px 14px 10px 32px; margin:8px 0; }
#verdict li { margin:3px 0; }
.warn { background:#fff6e0; border:1px solid #e8c46a; border-radius:6px; padding:6px 12px; margin:6px 0; }
.note { color:var(--muted); font-style:italic; }
table { border-collapse:collapse; background:#fff; margin:6px 0 12px; font-size:13px; }
th, td { border:1px solid var(--line); padding:3px 8px; text-align:left; vertical-align:top; }
th { background:#f0f0f0; }
td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
.down { color:#1d5fa0; } .up { color:#b3261e; }
.legend span { display:inline-block; width:12px; height:12px; margin:0 4px 0 12px; vertical-align:-1px; }
.bars { background:#fff; border:1px solid var(--line); border-radius:6px; padding:8px 12px; }
.bar-row { display:grid; grid-template-columns:130px 1fr 260px; gap:8px; align-items:center; margin:2px 0; font-size:12px; }
.bar-row.pair { grid-template-columns:130px 1fr 1fr 300px; }
.bar { display:flex; height:12px; background:#f1f1f1; border-radius:2px; overflow:hidden; }
.bar div { height:100%; }
.a { background:var(--alloc); } .f { background:var(--free); } .o { background:var(--other); }
.r { background:var(--refill); } .d { background:var(--drain); }
.lbl { white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }
.val { color:var(--muted); white-space:nowrap; font-variant-numeric:tabular-nums; }
iframe.flame { width:100%; border:1px solid var(--line); border-radius:6px; background:#fff; display:block; margin:6px 0 16px; }
.heat td { width:22px; height:18px; padding:0; text-align:center; font-size:10px; }
.heat th { font-size:10px; padding:1px 3px; white-space:nowrap; }
.heat td.diag { outline:2px solid #333; outline-offset:-2px; }
.side { display:flex; flex-wrap:wrap; gap:24px; align-items:flex-start; }
.scroll { overflow-x:auto; max-width:100%; }
details summary { cursor:pointer; }
code, .mono { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:12px; }
"#;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{CSS}</style></head><body><main>\n{body}\n</main></body></html>\n",
        esc(title)
    )
}

/// The `height="N"` of an SVG's root element, to size its frame.
fn svg_height(svg: &[u8]) -> Option<u32> {
    let head = String::from_utf8_lossy(&svg[..svg.len().min(4096)]);
    let root = &head[head.find("<svg")?..];
    let h = &root[root.find(" height=\"")? + 9..];
    h[..h.find('"')?].parse().ok()
}

/// Embeds an SVG flamegraph as its own document (see the module comment).
fn flame_embed(out: &mut String, svg: &[u8], title: &str) {
    let h = svg_height(svg).unwrap_or(600).clamp(120, 4000) + 4;
    let _ = writeln!(
        out,
        "<iframe class=\"flame\" title=\"{}\" style=\"height:{h}px\" loading=\"lazy\" \
         src=\"data:image/svg+xml;base64,{}\"></iframe>",
        esc(title),
        base64(svg)
    );
}

/// CPUs shown one by one up to this many; grouped beyond.
const MAX_SINGLE_CPUS: usize = 64;

/// A set of CPUs drawn as one row or one heatmap cell.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuGroup {
    pub label: String,
    pub cpus: Vec<u32>,
}

/// One group per CPU on small hosts; on large ones by NUMA node (when that gives a readable
/// number of groups), else ranges of 16 or 32 CPUs.
pub fn group_cpus(cpus: &[u32], host: &HostInfo) -> Vec<CpuGroup> {
    let mut cpus: Vec<u32> = cpus.to_vec();
    cpus.sort_unstable();
    cpus.dedup();
    if cpus.len() <= MAX_SINGLE_CPUS {
        return cpus
            .iter()
            .map(|&c| CpuGroup {
                label: format!("cpu{c}"),
                cpus: vec![c],
            })
            .collect();
    }
    let mut by_node: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &c in &cpus {
        by_node.entry(host.node_of(c)).or_default().push(c);
    }
    if (2..=MAX_SINGLE_CPUS).contains(&by_node.len()) && by_node.values().all(|v| v.len() <= 128) {
        return by_node
            .into_iter()
            .map(|(n, v)| CpuGroup {
                label: format!("node {n} (cpu {})", format_cpu_list(&v)),
                cpus: v,
            })
            .collect();
    }
    let size = if cpus.len() <= 640 { 16 } else { 32 };
    // Ranges aligned to CPU ids, so "cpu 32-47" means the same on every host.
    let mut by_range: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &c in &cpus {
        by_range.entry(c / size).or_default().push(c);
    }
    by_range
        .into_values()
        .map(|v| CpuGroup {
            label: format!("cpu {}", format_cpu_list(&v)),
            cpus: v,
        })
        .collect()
}

/// One stacked bar: (class, value) segments, scaled so `max` fills the bar.
fn bar(segments: &[(&str, f64)], max: f64) -> String {
    let mut s = String::from("<div class=\"bar\">");
    for (class, v) in segments {
        let w = if max > 0.0 {
            (100.0 * v / max).clamp(0.0, 100.0)
        } else {
            0.0
        };
        if w > 0.0 {
            let _ = write!(s, "<div class=\"{class}\" style=\"width:{w:.3}%\"></div>");
        }
    }
    s.push_str("</div>");
    s
}

/// One row of stacked bars: (label, (CSS class, value) segments, value text).
type BarRow<'a> = (String, Vec<(&'a str, f64)>, String);

/// Per-CPU (or per-group) rows of stacked bars.
fn bar_rows(out: &mut String, rows: &[BarRow<'_>]) {
    let max = rows
        .iter()
        .map(|(_, seg, _)| seg.iter().map(|(_, v)| v).sum::<f64>())
        .fold(0.0, f64::max);
    out.push_str("<div class=\"bars\">");
    for (label, seg, val) in rows {
        let _ = write!(
            out,
            "<div class=\"bar-row\"><span class=\"lbl\" title=\"{l}\">{l}</span>{}<span class=\"val\">{}</span></div>",
            bar(seg, max),
            esc(val),
            l = esc(label)
        );
    }
    out.push_str("</div>");
}

/// Rows of two bars (before, after) on one scale.
type PairRow<'a> = (String, Vec<(&'a str, f64)>, Vec<(&'a str, f64)>, String);

fn pair_rows(out: &mut String, rows: &[PairRow<'_>]) {
    let sum = |seg: &Vec<(&str, f64)>| seg.iter().map(|(_, v)| v).sum::<f64>();
    let max = rows
        .iter()
        .map(|(_, b, a, _)| sum(b).max(sum(a)))
        .fold(0.0, f64::max);
    out.push_str(
        "<div class=\"bars\"><div class=\"bar-row pair\"><b></b><b>before</b><b>after</b><b></b></div>",
    );
    for (label, b, a, val) in rows {
        let _ = write!(
            out,
            "<div class=\"bar-row pair\"><span class=\"lbl\" title=\"{l}\">{l}</span>{}{}<span class=\"val\">{}</span></div>",
            bar(b, max),
            bar(a, max),
            esc(val),
            l = esc(label)
        );
    }
    out.push_str("</div>");
}

fn legend(items: &[(&str, &str)]) -> String {
    let mut s = String::from("<div class=\"legend\">");
    for (class, label) in items {
        let _ = write!(s, "<span class=\"{class}\"></span>{}", esc(label));
    }
    s.push_str("</div>");
    s
}

/// A heatmap of alloc-CPU (rows) × free-CPU (columns) cells, CPUs grouped as `groups`.
/// `max` sets the colour scale (shared by before/after maps).
fn heatmap(out: &mut String, cells: &[(u32, u32, f64)], groups: &[CpuGroup], max: f64, unit: &str) {
    let gi: BTreeMap<u32, usize> = groups
        .iter()
        .enumerate()
        .flat_map(|(i, g)| g.cpus.iter().map(move |&c| (c, i)))
        .collect();
    let mut grid: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    let mut outside = 0.0;
    for &(a, f, v) in cells {
        match (gi.get(&a), gi.get(&f)) {
            (Some(&x), Some(&y)) => *grid.entry((x, y)).or_default() += v,
            _ => outside += v,
        }
    }
    let short = |g: &CpuGroup| {
        if g.cpus.len() == 1 {
            g.cpus[0].to_string()
        } else {
            format_cpu_list(&g.cpus)
        }
    };
    out.push_str("<div class=\"scroll\"><table class=\"heat\"><tr><th>alloc ↓ / free →</th>");
    for g in groups {
        let _ = write!(
            out,
            "<th title=\"{}\">{}</th>",
            esc(&g.label),
            esc(&short(g))
        );
    }
    out.push_str("</tr>");
    for (x, gx) in groups.iter().enumerate() {
        let _ = write!(
            out,
            "<tr><th title=\"{}\">{}</th>",
            esc(&gx.label),
            esc(&short(gx))
        );
        for (y, gy) in groups.iter().enumerate() {
            let v = grid.get(&(x, y)).copied().unwrap_or(0.0);
            // Log scale: one cell with 1000x the traffic of another is still visible.
            let alpha = if v > 0.0 && max > 0.0 {
                (0.08 + 0.92 * ((1.0 + v).ln() / (1.0 + max).ln())).min(1.0)
            } else {
                0.0
            };
            let diag = if x == y { " class=\"diag\"" } else { "" };
            let _ = write!(
                out,
                "<td{diag} style=\"background:rgba(200,40,40,{alpha:.3})\" title=\"alloc {} → free {}: {} {}\"></td>",
                esc(&gx.label),
                esc(&gy.label),
                fmt_count(v.round() as u64),
                esc(unit)
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</table></div>");
    if outside > 0.0 {
        let _ = write!(
            out,
            "<p class=\"note\">{} {} on CPUs outside this map not shown.</p>",
            fmt_count(outside.round() as u64),
            esc(unit)
        );
    }
}

fn kv_table(out: &mut String, rows: &[(&str, String)]) {
    out.push_str("<table>");
    for (k, v) in rows {
        let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    out.push_str("</table>");
}

/// Host and kernel facts of a recording, as (key, value) rows.
fn facts(rec: &Recording) -> Vec<(&'static str, String)> {
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
    // PCP list sizes per zone: the range over CPUs, so 640 CPUs stay one line per zone.
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
    for ((node, zone), (hmin, hmax, bmin, bmax)) in zones {
        let range = |a: u64, b: u64| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        };
        rows.push((
            "PCP list",
            format!(
                "node {node} zone {zone}: high {} pages, batch {}",
                range(hmin, hmax),
                range(bmin, bmax)
            ),
        ));
    }
    rows
}

/// `(alloc, free, other)` share of each CPU's time, percent.
fn wait_rows(r: &Report, groups: &[CpuGroup]) -> Vec<BarRow<'static>> {
    let by_cpu: BTreeMap<u32, &report::PerCpu> = r.per_cpu.iter().map(|c| (c.cpu, c)).collect();
    let secs = r.duration_s.max(f64::MIN_POSITIVE);
    groups
        .iter()
        .map(|g| {
            let (mut a, mut f, mut o) = (0u64, 0u64, 0u64);
            for c in g.cpus.iter().filter_map(|c| by_cpu.get(c)) {
                a += c.zone_lock_wait_ns.alloc;
                f += c.zone_lock_wait_ns.free;
                o += c.zone_lock_wait_ns.other;
            }
            // Percent of the group's CPU time (mean over its CPUs).
            let pct = |ns: u64| 100.0 * ns as f64 / 1e9 / secs / g.cpus.len().max(1) as f64;
            (
                g.label.clone(),
                vec![("a", pct(a)), ("f", pct(f)), ("o", pct(o))],
                format!(
                    "alloc {} · free {} ({} waited)",
                    fmt_pct(pct(a)),
                    fmt_pct(pct(f)),
                    fmt_ns(a + f + o)
                ),
            )
        })
        .collect()
}

fn pcp_rows(rec: &Recording, groups: &[CpuGroup]) -> Vec<BarRow<'static>> {
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
                .fold((0, 0), |(r, d), (a, b)| (r + a, d + b));
            (
                g.label.clone(),
                vec![("r", r as f64 / secs), ("d", d as f64 / secs)],
                format!(
                    "refill {} · drain {} pages/s",
                    fmt_count((r as f64 / secs).round() as u64),
                    fmt_count((d as f64 / secs).round() as u64)
                ),
            )
        })
        .collect()
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
            let _ = write!(out, "<h3>{}</h3>", esc(view.describe()));
            flame_embed(out, &svg, &f.title);
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

fn all_cpus(rec: &Recording) -> Vec<u32> {
    let mut c: Vec<u32> = rec.cpus.clone();
    c.extend(rec.pcp.iter().map(|p| p.cpu));
    c.extend(rec.lock_waits.iter().map(|w| w.cpu));
    c.extend(
        rec.skb_matrix
            .iter()
            .flat_map(|x| [x.alloc_cpu, x.free_cpu]),
    );
    c.extend(
        rec.page_matrix
            .iter()
            .flat_map(|x| [x.alloc_cpu, x.free_cpu]),
    );
    c.sort_unstable();
    c.dedup();
    c
}

/// `zoneprof report --format html`.
pub fn report_html(rec: &Recording, top: usize, source: &str) -> Result<String, HtmlError> {
    let r = report::build(rec, top);
    let t = &r.totals;
    let z = t.zone_lock_wait_ns;
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
    b.push_str("<section id=\"summary\"><div class=\"cards\">");
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
        esc(&report::observer_line(&r))
    );
    b.push_str("</section>");

    let cpus = all_cpus(rec);
    let groups = group_cpus(&cpus, &rec.host);
    b.push_str(
        "<section id=\"per-cpu\"><h2>Zone-lock wait per CPU (share of each CPU's time)</h2>",
    );
    b.push_str(&legend(&[
        ("a", "alloc side"),
        ("f", "free side"),
        ("o", "other zone-lock"),
    ]));
    if groups.first().is_some_and(|g| g.cpus.len() > 1) {
        b.push_str(
            "<p class=\"note\">Many CPUs: grouped; each bar is the mean over its group.</p>",
        );
    }
    bar_rows(&mut b, &wait_rows(&r, &groups));
    b.push_str("</section>");

    b.push_str(
        "<section id=\"flamegraphs\"><h2>Flamegraphs</h2><p class=\"note\">Click to zoom, \
                Ctrl-F / the Search button to highlight; widths are nanoseconds waited.</p>",
    );
    flame_or_note(&mut b, rec, View::ZoneWait, source)?;
    flame_or_note(&mut b, rec, View::Locks, source)?;
    if !rec.skb_sites.is_empty() {
        flame_or_note(&mut b, rec, View::SkbFree, source)?;
    }
    b.push_str("</section>");

    b.push_str("<section id=\"matrix\"><h2>Alloc CPU × free CPU</h2>");
    let secs = rec.duration_s().max(f64::MIN_POSITIVE);
    let mut any_matrix = false;
    for (what, cells, unit) in [
        (
            "SKBs (skb->alloc_cpu at free time)",
            rec.skb_matrix
                .iter()
                .map(|c| (c.alloc_cpu, c.free_cpu, c.count as f64 / secs))
                .collect::<Vec<_>>(),
            "SKBs/s",
        ),
        (
            "Pages (sampled, scaled estimate)",
            rec.page_matrix
                .iter()
                .map(|c| (c.alloc_cpu, c.free_cpu, c.pages as f64 / secs))
                .collect(),
            "pages/s",
        ),
    ] {
        if cells.is_empty() {
            continue;
        }
        any_matrix = true;
        let max = cells.iter().map(|c| c.2).fold(0.0, f64::max);
        let _ = write!(b, "<h3>{}</h3>", esc(what));
        heatmap(&mut b, &cells, &groups, max, unit);
    }
    if !any_matrix {
        b.push_str(
            "<p class=\"note\">No SKB or page matrix in this recording (those probes did not run); \
             the PCP refill/drain counts per CPU below show where pages entered and left the \
             per-CPU lists.</p>",
        );
    }
    b.push_str("</section>");

    b.push_str("<section id=\"pcp\"><h2>PCP refill vs drain per CPU (pages/s)</h2>");
    if rec.pcp.iter().any(|p| p.refill_pages + p.drain_pages > 0) {
        b.push_str(&legend(&[
            ("r", "refill (buddy → PCP, under zone->lock)"),
            ("d", "drain (PCP → buddy)"),
        ]));
        bar_rows(&mut b, &pcp_rows(rec, &groups));
    } else {
        b.push_str("<p class=\"note\">No PCP refill or drain counts in this recording.</p>");
    }
    b.push_str("</section>");

    b.push_str("<section id=\"tables\"><h2>Details</h2>");
    report_tables(&mut b, &r, top);
    b.push_str("</section>");

    b.push_str("<section id=\"facts\"><h2>Host and kernel</h2>");
    kv_table(&mut b, &facts(rec));
    b.push_str("</section>");
    Ok(page(&title, &b))
}

fn report_tables(b: &mut String, r: &Report, top: usize) {
    // Per-CPU table: every CPU with activity (all of them on small hosts).
    b.push_str("<h3>Per CPU</h3><div class=\"scroll\"><table><tr>");
    for h in PerCpu::COLUMNS {
        let _ = write!(b, "<th>{}</th>", esc(h));
    }
    b.push_str("</tr>");
    let mut hidden = 0;
    for c in &r.per_cpu {
        if !c.is_busy() && r.per_cpu.len() > 16 {
            hidden += 1;
            continue;
        }
        b.push_str("<tr>");
        for cell in c.cells() {
            let _ = write!(b, "<td class=\"num\">{}</td>", esc(&cell));
        }
        b.push_str("</tr>");
    }
    b.push_str("</table></div>");
    if hidden > 0 {
        let _ = write!(
            b,
            "<p class=\"note\">{hidden} CPUs with no activity not shown.</p>"
        );
    }

    if !r.free_triggers.is_empty() {
        b.push_str("<h3>Free-side zone-lock wait by trigger</h3><table><tr><th>trigger</th><th>wait</th></tr>");
        for t in &r.free_triggers {
            let _ = write!(
                b,
                "<tr><td>{}</td><td class=\"num\">{}</td></tr>",
                esc(t.label),
                fmt_ns(t.wait_ns)
            );
        }
        b.push_str("</table>");
    }
    if !r.zones.is_empty() {
        b.push_str("<h3>Zones (lock address proven in the kernel)</h3><table><tr><th>zone</th><th>lock</th><th>wait</th><th>contentions</th></tr>");
        for z in &r.zones {
            let _ = write!(
                b,
                "<tr><td>{}</td><td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&z.label),
                esc(&z.lock_addr),
                fmt_ns(z.wait_ns),
                fmt_count(z.contentions)
            );
        }
        b.push_str("</table>");
    }
    let _ = write!(b, "<h3>Top {top} zone-lock stacks</h3>");
    if r.top_zone_stacks.is_empty() {
        b.push_str("<p class=\"note\">No zone-lock contention was recorded.</p>");
    } else {
        b.push_str("<table><tr><th>lock</th><th>wait</th><th>waits</th><th>max</th><th>CPUs</th><th>stack (leaf first)</th></tr>");
        for s in &r.top_zone_stacks {
            let _ = write!(
                b,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td>\
                 <td><details><summary class=\"mono\">{}</summary><pre class=\"mono\">{}</pre></details></td></tr>",
                esc(&s.class),
                fmt_ns(s.wait_ns),
                fmt_count(s.count),
                fmt_ns(s.max_ns),
                esc(&format_cpu_list(&s.cpus)),
                esc(&s
                    .frames
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ← ")),
                esc(&s.frames.join("\n"))
            );
        }
        b.push_str("</table>");
    }
    b.push_str("<h3>Other contended locks</h3>");
    if r.top_other_locks.is_empty() {
        b.push_str("<p class=\"note\">None.</p>");
    } else {
        b.push_str("<table><tr><th>lock</th><th>wait</th><th>waits</th><th>max</th><th>heaviest stack</th></tr>");
        for o in &r.top_other_locks {
            let _ = write!(
                b,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td><details><summary>stack</summary><pre class=\"mono\">{}</pre></details></td></tr>",
                esc(&o.lock),
                fmt_ns(o.wait_ns),
                fmt_count(o.count),
                fmt_ns(o.max_ns),
                esc(&o.top_stack.join("\n"))
            );
        }
        b.push_str("</table>");
    }
    b.push_str("<h3>Probes</h3><table><tr><th>probe</th><th>method</th><th>target</th><th>status</th></tr>");
    for p in &r.probes {
        let status = if p.attached {
            "attached".to_string()
        } else {
            format!("NOT attached: {}", p.reason.as_deref().unwrap_or("?"))
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td></tr>",
            esc(&p.name),
            esc(&p.method),
            esc(&p.target),
            esc(&status)
        );
    }
    b.push_str("</table>");
    b.push_str("<h3>Losses</h3>");
    let losses: Vec<_> = r.losses.losses().collect();
    if losses.is_empty() {
        b.push_str("<p>None.</p>");
    } else {
        b.push_str("<table>");
        for (loss, n) in losses {
            let n = match loss.unit {
                LossUnit::Count => fmt_count(n),
                LossUnit::Nanoseconds => fmt_ns(n),
            };
            let _ = write!(
                b,
                "<tr><th>{}</th><td class=\"num\">{n}</td></tr>",
                esc(loss.label)
            );
        }
        b.push_str("</table>");
    }
    if !r.not_observable.is_empty() {
        b.push_str("<h3>Not observable in this recording</h3><ul>");
        for n in &r.not_observable {
            let _ = write!(b, "<li><b>{}</b>: {}</li>", esc(&n.what), esc(&n.why));
        }
        b.push_str("</ul>");
    }
}

fn change_cell(v: Pair<Option<f64>>) -> String {
    match v.change_pct() {
        Some(p) => {
            let class = if p <= -0.05 {
                " down"
            } else if p >= 0.05 {
                " up"
            } else {
                ""
            };
            format!("<td class=\"num{class}\">{p:+.1} %</td>")
        }
        None => "<td class=\"num\">n/a</td>".to_string(),
    }
}

/// `zoneprof compare --format html`: verdict first, then the evidence.
pub fn compare_html(
    c: &Comparison,
    before: &Recording,
    after: &Recording,
) -> Result<String, HtmlError> {
    let mut b = String::new();
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
    b.push_str("<section id=\"verdict\"><h2>Verdict</h2><ul>");
    for v in &c.verdict {
        let _ = write!(b, "<li>{}</li>", esc(v));
    }
    b.push_str("</ul>");
    for w in &c.warnings {
        let _ = write!(b, "<div class=\"warn\">⚠ {}</div>", esc(w));
    }
    for (side, line) in compare::observer_lines(c).sides() {
        let _ = write!(
            b,
            "<p class=\"note observer-cost\">{}</p>",
            esc(&format!(
                "Observer cost under zone->lock, {}: {line}",
                side.label()
            ))
        );
    }
    b.push_str("</section>");

    b.push_str("<section id=\"metrics\"><h2>Headlines (per second)</h2><table><tr><th>metric</th><th>before</th><th>after</th><th>change</th></tr>");
    for m in c.rates.headlines().iter().filter(|m| m.values.any()) {
        let unit = m.key.unit();
        let _ = write!(
            b,
            "<tr><td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>{}</tr>",
            esc(&m.key.name()),
            esc(&unit.fmt(m.values.before)),
            esc(&unit.fmt(m.values.after)),
            change_cell(m.values)
        );
    }
    b.push_str("</table></section>");

    // Per CPU: groups over the union of both recordings' CPUs.
    let mut cpus = all_cpus(before);
    cpus.extend(all_cpus(after));
    cpus.sort_unstable();
    cpus.dedup();
    let groups = group_cpus(&cpus, &before.host);
    let group_sum = |g: &[u32], m: CpuMetric, side: Side| -> f64 {
        g.iter()
            .filter_map(|&cpu| *c.rates.cpu(cpu, m).get(side))
            .sum::<f64>()
            / g.len().max(1) as f64
    };
    b.push_str(
        "<section id=\"per-cpu\"><h2>Zone-lock wait per CPU (share of each CPU's time)</h2>",
    );
    b.push_str(&legend(&[("a", "alloc side"), ("f", "free side")]));
    if groups.first().is_some_and(|g| g.cpus.len() > 1) {
        b.push_str(
            "<p class=\"note\">Many CPUs: grouped; each bar is the mean over its group.</p>",
        );
    }
    let rows: Vec<PairRow<'_>> = groups
        .iter()
        .map(|g| {
            let seg = |side| {
                vec![
                    ("a", group_sum(&g.cpus, CpuMetric::ZoneWaitAllocPct, side)),
                    ("f", group_sum(&g.cpus, CpuMetric::ZoneWaitFreePct, side)),
                ]
            };
            let (sb, sa) = (seg(Side::Before), seg(Side::After));
            let val = format!(
                "alloc {} → {} · free {} → {}",
                fmt_pct(sb[0].1),
                fmt_pct(sa[0].1),
                fmt_pct(sb[1].1),
                fmt_pct(sa[1].1)
            );
            (g.label.clone(), sb, sa, val)
        })
        .collect();
    pair_rows(&mut b, &rows);
    b.push_str("</section>");

    b.push_str("<section id=\"flamegraphs\"><h2>Differential flamegraphs</h2><p class=\"note\">Red: grew \
                after the change; blue: shrank. The first is sized by AFTER; the second by BEFORE \
                (colours negated so they read the same way), so stacks that vanished are visible there.</p>");
    let mut drawn = false;
    for view in [View::ZoneWait, View::Locks] {
        let flames = compare::diff_flamegraphs(Pair::new(before, after), view)?;
        if flames.is_empty() {
            let _ = write!(
                b,
                "<p class=\"note\">{}: no stacks in either recording.</p>",
                esc(view.describe())
            );
            continue;
        }
        if flames.len() == 1 {
            // One side has none of these stacks: say which, rather than leave a gap.
            let empty = flames[0].direction.sized_by().other();
            let shown = match flames[0].direction {
                Direction::AfterVsBefore => "everything below vanished",
                Direction::BeforeVsAfter => "everything below is new",
            };
            let _ = write!(
                b,
                "<p class=\"note\">{}: the {empty} recording has none of these stacks, so only \
                 one direction can be drawn ({shown}).</p>",
                esc(view.describe()),
                empty = empty.upper()
            );
        }
        for f in &flames {
            let _ = write!(b, "<h3>{}</h3>", esc(&f.title));
            flame_embed(&mut b, &f.svg, &f.title);
        }
        drawn = true;
        // Zone-lock diffs answer the question; the all-locks pair only when there are none.
        if view == View::ZoneWait {
            break;
        }
    }
    if !drawn {
        b.push_str("<p class=\"note\">No lock-wait stacks to draw.</p>");
    }
    b.push_str("</section>");

    b.push_str("<section id=\"matrix\"><h2>Alloc CPU × free CPU</h2>");
    let mut any_matrix = false;
    for (what, cells, unit) in [
        ("SKBs", &c.skb_matrix, "SKBs/s"),
        ("Pages (sampled estimate)", &c.page_matrix, "pages/s"),
    ] {
        if cells.is_empty() {
            continue;
        }
        any_matrix = true;
        let side = |side: Side| -> Vec<(u32, u32, f64)> {
            cells
                .iter()
                .filter_map(|r| r.per_s.get(side).map(|v| (r.alloc_cpu, r.free_cpu, v)))
                .collect()
        };
        let (cb, ca) = (side(Side::Before), side(Side::After));
        let max = cb.iter().chain(ca.iter()).map(|c| c.2).fold(0.0, f64::max);
        let _ = write!(
            b,
            "<h3>{}</h3><div class=\"side\"><div><b>before</b>",
            esc(what)
        );
        heatmap(&mut b, &cb, &groups, max, unit);
        b.push_str("</div><div><b>after</b>");
        heatmap(&mut b, &ca, &groups, max, unit);
        b.push_str("</div></div>");
    }
    if !any_matrix {
        b.push_str("<p class=\"note\">Neither recording has an SKB or page matrix; PCP refill and drain per CPU below.</p>");
    }
    b.push_str("</section>");

    b.push_str("<section id=\"pcp\"><h2>PCP refill vs drain per CPU (pages/s)</h2>");
    let has_pcp = c.rates.total(Total::PcpRefill).any();
    if has_pcp {
        b.push_str(&legend(&[
            ("r", "refill (buddy → PCP)"),
            ("d", "drain (PCP → buddy)"),
        ]));
        let rows: Vec<PairRow<'_>> = groups
            .iter()
            .map(|g| {
                let seg = |side| {
                    vec![
                        (
                            "r",
                            group_sum(&g.cpus, CpuMetric::PcpRefill, side) * g.cpus.len() as f64,
                        ),
                        (
                            "d",
                            group_sum(&g.cpus, CpuMetric::PcpDrain, side) * g.cpus.len() as f64,
                        ),
                    ]
                };
                let (sb, sa) = (seg(Side::Before), seg(Side::After));
                let n = |v: f64| fmt_count(v.round() as u64);
                let val = format!(
                    "refill {} → {} · drain {} → {}",
                    n(sb[0].1),
                    n(sa[0].1),
                    n(sb[1].1),
                    n(sa[1].1)
                );
                (g.label.clone(), sb, sa, val)
            })
            .collect();
        pair_rows(&mut b, &rows);
    } else {
        b.push_str("<p class=\"note\">No PCP refill/drain counts in either recording.</p>");
    }
    b.push_str("</section>");

    if !c.skb_sites.is_empty() {
        b.push_str("<section id=\"skb\"><h2>SKB free sites</h2><table><tr><th>function ← caller</th>\
                    <th>frees/s before</th><th>remote before</th><th>frees/s after</th><th>remote after</th></tr>");
        let ratio = |x: Option<f64>| x.map_or("n/a".to_string(), |x| fmt_pct(100.0 * x));
        for s in &c.skb_sites {
            let _ = write!(
                b,
                "<tr><td class=\"mono\">{} ← {}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&s.function),
                esc(&s.caller),
                esc(&compare::Unit::PerS.fmt(s.frees_per_s.before)),
                esc(&ratio(s.remote_ratio.before)),
                esc(&compare::Unit::PerS.fmt(s.frees_per_s.after)),
                esc(&ratio(s.remote_ratio.after))
            );
        }
        b.push_str("</table></section>");
    }

    b.push_str("<section id=\"stacks\"><h2>Stacks that changed most (lock wait per second)</h2>");
    for (what, rows) in [("Shrank", &c.stacks_shrank), ("Grew", &c.stacks_grew)] {
        let _ = write!(b, "<h3>{what}</h3>");
        if rows.is_empty() {
            b.push_str("<p class=\"note\">None.</p>");
            continue;
        }
        b.push_str("<table><tr><th>before</th><th>after</th><th>stack</th></tr>");
        for d in rows {
            let _ = write!(
                b,
                "<tr><td class=\"num\">{}/s</td><td class=\"num\">{}/s</td><td><details><summary class=\"mono\">{}</summary>\
                 <pre class=\"mono\">{}</pre></details></td></tr>",
                fmt_ns(d.ns_per_s.before as u64),
                fmt_ns(d.ns_per_s.after as u64),
                esc(&compare::short_stack(&d.stack)),
                esc(&d.stack.replace(';', "\n"))
            );
        }
        b.push_str("</table>");
    }
    b.push_str("</section>");

    b.push_str(
        "<section id=\"facts\"><h2>Host and kernel</h2><div class=\"side\"><div><h3>before</h3>",
    );
    kv_table(&mut b, &facts(before));
    b.push_str("</div><div><h3>after</h3>");
    kv_table(&mut b, &facts(after));
    b.push_str("</div></div></section>");
    Ok(page(&title, &b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(ncpus: u32, nodes: u32) -> HostInfo {
        let cpus: Vec<u32> = (0..ncpus).collect();
        let per_node = ncpus.div_ceil(nodes.max(1));
        HostInfo {
            hostname: "h".into(),
            kernel_release: "k".into(),
            kernel_version: "v".into(),
            arch: "x86_64".into(),
            online_cpus: cpus.clone(),
            possible_cpus: ncpus,
            cpu_node: cpus.iter().map(|&c| (c, c / per_node)).collect(),
            numa_nodes: (0..nodes).collect(),
        }
    }

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
    fn cpus_are_grouped_on_big_hosts() {
        let small = group_cpus(&(0..2).collect::<Vec<_>>(), &host(2, 1));
        assert_eq!(small.len(), 2);
        assert_eq!(small[1].label, "cpu1");
        // 640 CPUs, one node: ranges of 16 -> 40 rows.
        let big = group_cpus(&(0..640).collect::<Vec<_>>(), &host(640, 1));
        assert_eq!(big.len(), 40);
        assert_eq!(big[1].label, "cpu 16-31");
        // 640 CPUs on 8 nodes: one row per node.
        let numa = group_cpus(&(0..640).collect::<Vec<_>>(), &host(640, 8));
        assert_eq!(numa.len(), 8);
        assert!(numa[0].label.starts_with("node 0 (cpu 0-79)"));
        // 2048 CPUs, one node: ranges of 32.
        assert_eq!(
            group_cpus(&(0..2048).collect::<Vec<_>>(), &host(2048, 1)).len(),
            64
        );
    }

    #[test]
    fn svg_height_is_read_from_the_root_element() {
        let svg = br#"<?xml version="1.0"?><svg version="1.1" width="1200" height="398" onload="init(evt)">"#;
        assert_eq!(svg_height(svg), Some(398));
        assert_eq!(svg_height(b"<svg>"), None);
    }
}
