//! The targets of issue 6, the JSON results and `docs/benchmarks.md`.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::observer::{self, Observer};
use super::overhead::{Cell, Repro, Variant};
use super::progcost::CostRun;
use super::stats::cost_pct;
use super::{MB, Results, Target};

/// Below this many events in the window a program's ns/event is too noisy to judge.
const MIN_EVENTS: u64 = 100;

fn cell(r: &Results, repro: Repro, v: Variant) -> Option<&Cell> {
    r.cells.iter().find(|c| c.repro == repro && c.variant == v)
}

fn pct_spread(c: &Cell) -> String {
    // Cost is 1 - ratio: the best run has the lowest cost.
    format!(
        "{:.1} % (runs {:.1} … {:.1} %, IQR {:.1} … {:.1} %)",
        c.cost_pct(),
        cost_pct(c.ratio.max),
        cost_pct(c.ratio.min),
        cost_pct(c.ratio.q3),
        cost_pct(c.ratio.q1)
    )
}

/// The highest ns/event of the default programs over the default-probe cost runs.
fn worst_default_prog(costs: &[CostRun]) -> Option<(String, String, f64)> {
    costs
        .iter()
        .filter(|c| c.label.contains("default probes"))
        .flat_map(|c| {
            c.progs
                .iter()
                // Every program of a default-probe run is a default one, whatever its form.
                .filter(|p| p.events >= MIN_EVENTS)
                .filter_map(move |p| Some((c.label.clone(), p.name.clone(), p.ns_per_event()?)))
        })
        .max_by(|a, b| a.2.total_cmp(&b.2))
}

/// run_time / events over every default program of the default-probe runs.
fn mean_default_ns(costs: &[CostRun]) -> Option<f64> {
    let (ns, n) = costs
        .iter()
        .filter(|c| c.label.contains("default probes"))
        .flat_map(|c| c.progs.iter())
        .fold((0u64, 0u64), |(ns, n), p| {
            (ns + p.run_time_ns, n + p.events)
        });
    (n > 0).then(|| ns as f64 / n as f64)
}

/// Hand-written text kept across regenerations: everything between these markers in the
/// existing doc is carried into the new one.
pub const KEEP_BEGIN: &str = "<!-- analysis: kept by cargo xtask bench -->";
pub const KEEP_END: &str = "<!-- /analysis -->";

/// The kept block of an existing doc, markers included.
pub fn kept_block(old: &str) -> Option<&str> {
    let start = old.find(KEEP_BEGIN)?;
    let end = old[start..].find(KEEP_END)? + start + KEEP_END.len();
    Some(&old[start..end])
}

/// Half the IQR of the bare runs' work-per-CPU ratios, in percent.
fn cpu_noise_pct(r: &Results, repro: Repro) -> Option<f64> {
    cell(r, repro, Variant::Bare)
        .and_then(|c| c.cpu_ratio)
        .map(|q| (q.q3 - q.q1) / 2.0 * 100.0)
}

/// The same limit judged on CPU per unit of work (robust to other people's load).
fn cpu_target(r: &Results, repro: Repro, v: Variant, what: &str, limit: f64) -> Option<Target> {
    let c = cell(r, repro, v)?;
    let cost = c.cpu_cost_pct()?;
    let q = c.cpu_ratio?;
    let noise = cpu_noise_pct(r, repro);
    Some(Target {
        what: format!("{what}, {} extra CPU per unit of work", repro.name()),
        limit: format!("≤ {limit:.0} %"),
        measured: format!(
            "{cost:+.1} % (IQR {:+.1} … {:+.1} %); noise ±{:.1} %",
            (1.0 / q.q3 - 1.0) * 100.0,
            (1.0 / q.q1 - 1.0) * 100.0,
            noise.unwrap_or(0.0)
        ),
        met: Some(cost <= limit),
        noisy: noise.is_some_and(|n| (cost - limit).abs() < n),
    })
}

/// Half the IQR of the bare runs' ratios, in percent: the run-to-run noise.
fn noise_pct(r: &Results, repro: Repro) -> Option<f64> {
    cell(r, repro, Variant::Bare).map(|c| (c.ratio.q3 - c.ratio.q1) / 2.0 * 100.0)
}

/// CPU time of every program of the default-probe cost run of `repro`, in percent of one CPU.
fn bpf_cpu_share(costs: &[CostRun], repro: Repro) -> Option<f64> {
    let c = costs
        .iter()
        .find(|c| c.label == format!("{}, default probes", repro.name()))?;
    let window = c.progs.first()?.window_s;
    let ns: u64 = c.progs.iter().map(|p| p.run_time_ns).sum();
    (window > 0.0).then(|| ns as f64 / window / 1e9 * 100.0)
}

pub fn targets(r: &Results) -> Vec<Target> {
    let mut t = Vec::new();
    let unmeasured = |what: String, limit: &str| Target {
        what,
        limit: limit.to_string(),
        measured: "not measured".into(),
        met: None,
        noisy: false,
    };
    for repro in Repro::ALL {
        let what = format!("default probes, {} throughput cost", repro.name());
        let noise = noise_pct(r, repro);
        t.push(match cell(r, repro, Variant::Zoneprof) {
            Some(c) => Target {
                what,
                limit: "≤ 2 %".into(),
                measured: format!(
                    "{}; noise (bare IQR half-width) ±{:.1} %; in-kernel programs {}",
                    pct_spread(c),
                    noise.unwrap_or(0.0),
                    bpf_cpu_share(&r.costs, repro)
                        .map_or_else(|| "-".into(), |v| format!("{v:.2} % of one CPU"))
                ),
                met: Some(c.cost_pct() <= 2.0),
                noisy: noise.is_some_and(|n| n > 2.0),
            },
            None => unmeasured(what, "≤ 2 %"),
        });
        t.extend(cpu_target(
            r,
            repro,
            Variant::Zoneprof,
            "default probes",
            2.0,
        ));
    }
    t.push(match worst_default_prog(&r.costs) {
        Some((run, prog, ns)) => Target {
            what: "default probes, in-kernel cost per event (worst program)".into(),
            limit: "≤ 150 ns".into(),
            measured: format!(
                "{ns:.0} ns ({prog}, {run}); mean over all default-probe events {}",
                mean_default_ns(&r.costs).map_or_else(|| "-".into(), |m| format!("{m:.0} ns"))
            ),
            met: Some(ns <= 150.0),
            noisy: false,
        },
        None => unmeasured(
            "default probes, in-kernel cost per event".into(),
            "≤ 150 ns",
        ),
    });
    // The last pair is not an issue target: zoneprof with the same scope as perf lock (lock
    // waits alone), to show which part of the default cost perf does not pay for.
    for (ours, ours_name, prefix, other, name) in [
        (
            Variant::Zoneprof,
            "zoneprof",
            "",
            Variant::PerfLock,
            "perf lock record -a",
        ),
        (
            Variant::Zoneprof,
            "zoneprof",
            "",
            Variant::Bpftrace,
            "the bpftrace script",
        ),
        (
            Variant::LockProbes,
            "zoneprof --probes contention_begin,contention_end",
            "(extra, same scope) lock probes only: ",
            Variant::PerfLock,
            "perf lock record -a",
        ),
    ] {
        for repro in Repro::ALL {
            let what = format!("{prefix}lower overhead than {name}, {}", repro.name());
            t.push(match (cell(r, repro, ours), cell(r, repro, other)) {
                (Some(z), Some(o)) => Target {
                    what,
                    limit: "zoneprof cost < its cost".into(),
                    measured: format!(
                        "{ours_name} {:.1} %, {name} {:.1} % (median)",
                        z.cost_pct(),
                        o.cost_pct()
                    ),
                    met: Some(z.cost_pct() < o.cost_pct()),
                    noisy: noise_pct(r, repro)
                        .is_some_and(|n| n > (o.cost_pct() - z.cost_pct()).abs()),
                },
                _ => unmeasured(what, "zoneprof cost < its cost"),
            });
            let what = format!(
                "{prefix}less CPU per unit of work than {name}, {}",
                repro.name()
            );
            t.push(
                match (
                    cell(r, repro, ours).and_then(|c| Some((c.cpu_cost_pct()?, c))),
                    cell(r, repro, other).and_then(|c| Some((c.cpu_cost_pct()?, c))),
                ) {
                    (Some((z, zc)), Some((o, oc))) => Target {
                        what,
                        limit: "zoneprof cost < its cost".into(),
                        measured: format!("{ours_name} {z:+.1} %, {name} {o:+.1} % (median)"),
                        met: Some(z < o),
                        noisy: cpu_noise_pct(r, repro).is_some_and(|n| {
                            n > (o - z).abs() || zc.cpu_ratio.is_none() || oc.cpu_ratio.is_none()
                        }),
                    },
                    _ => unmeasured(what, "zoneprof cost < its cost"),
                },
            );
        }
    }
    for repro in Repro::ALL {
        let what = format!("--page-flows (1 in 64), {} throughput cost", repro.name());
        let noise = noise_pct(r, repro);
        t.push(match cell(r, repro, Variant::PageFlows) {
            Some(c) => Target {
                what,
                limit: "≤ 10 %".into(),
                measured: format!("{}; noise ±{:.1} %", pct_spread(c), noise.unwrap_or(0.0)),
                met: Some(c.cost_pct() <= 10.0),
                noisy: noise.is_some_and(|n| (c.cost_pct() - 10.0).abs() < n),
            },
            None => unmeasured(what, "≤ 10 %"),
        });
        t.extend(cpu_target(
            r,
            repro,
            Variant::PageFlows,
            "--page-flows (1 in 64)",
            10.0,
        ));
    }
    if let Some(u) = &r.userspace {
        for (label, what) in [
            ("report (text)", "report"),
            ("compare (text)", "compare"),
            ("flamegraph (zone-wait SVG)", "flamegraph"),
        ] {
            let Some(x) = u.timed.iter().find(|x| x.label == label) else {
                continue;
            };
            t.push(Target {
                what: format!("{}-CPU recording: {what}", u.spec.cpus),
                limit: "< 1 s and < 200 MB RSS".into(),
                measured: format!(
                    "{:.2} s (runs {:.2} … {:.2}), {:.0} MB",
                    x.wall_s.median, x.wall_s.min, x.wall_s.max, x.max_rss_mb.median
                ),
                met: Some(x.wall_s.median < 1.0 && x.max_rss_mb.median < 200.0),
                noisy: false,
            });
        }
        t.push(Target {
            what: format!("{}-CPU recording: file size", u.spec.cpus),
            limit: "< 20 MB".into(),
            measured: format!("{:.1} MB", u.recording_bytes as f64 / MB),
            met: Some((u.recording_bytes as f64) < 20.0 * MB),
            noisy: false,
        });
    }
    let m = &r.memory;
    t.push(Target {
        what: format!("map memory at {} possible CPUs, default sizes", m.cpus),
        limit: "< 64 MB".into(),
        measured: format!(
            "{:.1} MB in maps ({:.1} MB with perf's callchain buffers and the programs)",
            m.maps_total() as f64 / MB,
            m.total() as f64 / MB
        ),
        met: Some((m.total() as f64) < 64.0 * MB),
        noisy: false,
    });
    t
}

pub fn to_json(r: &Results) -> Value {
    let runs: Vec<Value> = r
        .runs
        .iter()
        .map(|x| {
            json!({
                "reproducer": x.repro.name(), "variant": x.variant.key(), "round": x.round,
                "throughput": x.throughput, "unit": x.repro.unit(), "packets_per_s": x.packets_s,
                "wall_s": x.wall_s, "cpu_s": x.cpu_s, "output_bytes": x.output_bytes,
            })
        })
        .collect();
    let cells: Vec<Value> = r
        .cells
        .iter()
        .map(|c| {
            json!({
                "reproducer": c.repro.name(), "variant": c.variant.key(), "label": c.variant.label(),
                "unit": c.repro.unit(), "throughput": c.throughput.to_json(),
                "ratio_to_bare": c.ratio.to_json(), "cost_pct_median": c.cost_pct(),
                "output_bytes_median": c.output_bytes,
                "fixed_cpu_s": c.fixed_cpu_s,
                "work_per_cpu_ratio_to_bare": c.cpu_ratio.map(|q| q.to_json()),
                "extra_cpu_per_work_pct_median": c.cpu_cost_pct(),
            })
        })
        .collect();
    let costs: Vec<Value> = r
        .costs
        .iter()
        .map(|c| {
            json!({
                "run": c.label, "command": c.command,
                "programs": c.progs.iter().map(|p| json!({
                    "name": p.name, "prog_type": p.prog_type, "events": p.events,
                    "run_time_ns": p.run_time_ns, "window_s": p.window_s,
                    "ns_per_event": p.ns_per_event(), "events_per_s": p.events_per_s(),
                    "recursion_misses": p.recursion_misses,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let m = &r.memory;
    let memory = json!({
        "possible_cpus": m.cpus,
        "maps": m.rows.iter().map(|(d, b)| json!({
            "name": d.name, "type": d.kind.name(), "key_size": d.key_size,
            "value_size": d.value_size, "max_entries": d.max_entries, "bytes": b,
            "shrunk_by_default": d.shrunk_by_default,
            "page_flows_only": d.page_flows_only,
        })).collect::<Vec<_>>(),
        "other_live_maps_bytes": m.unmatched_live.iter().map(|x| x.memlock).sum::<u64>(),
        "maps_total_bytes": m.maps_total(),
        "page_flows_extra_bytes": m.page_flows_extra,
        "perf_callchain_buffers_bytes": m.callchain_bytes,
        "programs_bytes": m.prog_memlock,
        "total_bytes": m.total(),
        "cross_check_here": m.checked.iter().map(|c| json!({
            "name": c.def.name, "model_bytes": c.model_here,
            "kernel_memlock": c.live.as_ref().map(|l| l.memlock),
        })).collect::<Vec<_>>(),
    });
    let userspace = r.userspace.as_ref().map(|u| {
        json!({
            "cpus": u.spec.cpus, "stacks": u.spec.stacks, "skb_cells": u.spec.skb_cells,
            "recording_bytes": u.recording_bytes, "synth": u.synth_summary,
            "commands": u.timed.iter().map(|x| json!({
                "label": x.label, "command": x.command, "wall_s": x.wall_s.to_json(),
                "max_rss_mb": x.max_rss_mb.to_json(),
            })).collect::<Vec<_>>(),
        })
    });
    json!({
        "date_utc": r.host.date_utc,
        "zoneprof_bin": r.zoneprof.display().to_string(),
        "elapsed_s": r.elapsed_s,
        "phases_s": r.phase_s.iter().map(|(k, v)| json!({"phase": k, "s": v})).collect::<Vec<_>>(),
        "host": {
            "kernel": r.host.kernel, "cpu_model": r.host.cpu_model,
            "online_cpus": r.host.online_cpus, "possible_cpus": r.host.possible_cpus,
            "mem_gib": r.host.mem_gib, "virtualized": r.host.virtualized,
            "loadavg_before": r.load_before, "loadavg_after": r.load_after,
            "others_busy_per_run": r.busy_samples,
            "foreign_bpf_tracepoint_progs_per_run": r.foreign_bpf_samples,
        },
        "tools": r.tool_versions.iter().map(|(k, v)| json!({"tool": k, "version": v})).collect::<Vec<_>>(),
        "skipped": r.skipped_tools,
        "settings": {
            "rounds": r.opts.rounds, "secs": r.opts.secs, "cost_secs": r.opts.cost_secs,
            "reps": r.opts.reps,
        },
        "fixed_cpu_s": r.fixed_cpu.iter().map(|(v, c)| json!({"variant": v.key(), "cpu_s": c})).collect::<Vec<_>>(),
        "throughput_runs": runs,
        "throughput": cells,
        "in_kernel_cost": costs,
        "map_memory": memory,
        "userspace": userspace,
        "observer_effect": r.observer.as_ref().map(super::observer::to_json),
        "targets": r.targets.iter().map(|t| json!({
            "what": t.what, "limit": t.limit, "measured": t.measured, "met": t.met,
        })).collect::<Vec<_>>(),
    })
}

fn mb(b: u64) -> String {
    format!("{:.2}", b as f64 / MB)
}

fn la(l: Option<[f64; 3]>) -> String {
    l.map_or_else(
        || "unknown".into(),
        |l| format!("{:.2} / {:.2} / {:.2}", l[0], l[1], l[2]),
    )
}

pub fn markdown(r: &Results, kept: Option<&str>, old_observer: Option<&str>) -> String {
    let mut s = String::new();
    let h = &r.host;
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "What zoneprof costs: throughput of the built-in reproducers bare and under zoneprof, \
         `perf lock record` and a bpftrace script; in-kernel nanoseconds per event of each eBPF \
         program; time and memory of `report`, `compare` and `flamegraph` on a synthetic \
         {}-CPU recording; kernel memory of the BPF maps at {} possible CPUs. Generated by \
         `cargo xtask bench` (issue 6); every number below is from the run described here.\n",
        r.memory.cpus, r.memory.cpus
    );
    let _ = writeln!(s, "## Machine and run\n");
    let _ = writeln!(s, "| | |\n| --- | --- |");
    let _ = writeln!(s, "| date | {} |", h.date_utc);
    let _ = writeln!(s, "| kernel | {} |", h.kernel);
    let _ = writeln!(
        s,
        "| CPU | {} online ({} possible), {}{} |",
        h.online_cpus,
        h.possible_cpus,
        h.cpu_model,
        h.virtualized
            .as_ref()
            .map_or(String::new(), |_| ", virtual machine".into())
    );
    let _ = writeln!(s, "| memory | {:.1} GiB |", h.mem_gib);
    for (tool, v) in &r.tool_versions {
        let _ = writeln!(s, "| {tool} | {v} |");
    }
    let _ = writeln!(
        s,
        "| load average (1/5/15 min) | before {}, after {} |",
        la(r.load_before),
        la(r.load_after)
    );
    let busy_runs = r.busy_samples.iter().filter(|&&n| n > 0).count();
    let foreign_runs = r.foreign_bpf_samples.iter().filter(|&&n| n > 0).count();
    let shared = busy_runs > 0;
    let _ = writeln!(
        s,
        "| whole bench | {:.0} s ({}) |",
        r.elapsed_s,
        r.phase_s
            .iter()
            .map(|(k, v)| format!("{k} {v:.0} s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(s);
    if shared {
        let _ = writeln!(
            s,
            "**The machine was shared during this run**: other people's compilers, linkers \
             or VMs were running when {busy_runs} of the {} throughput runs started, and the \
             load average before the bench was {}. With 2 CPUs both used by the reproducer, \
             that load lands directly on the measured throughput. The runs are round-robin \
             (each round runs every variant once, starting at a different one) so the noise \
             spreads over all variants, and the figures are medians with their spread; still, \
             a difference smaller than the spread of the bare runs is not significant.\n",
            r.busy_samples.len(),
            la(r.load_before)
        );
    } else if !r.busy_samples.is_empty() && foreign_runs == 0 {
        let _ = writeln!(
            s,
            "The machine is shared with other developers and VMs, but none of their compilers, \
             linkers, VMs or BPF tracepoint programs were seen when the {} throughput runs \
             started (the load average before the bench, {}, includes this bench's own build).\n",
            r.busy_samples.len(),
            la(r.load_before)
        );
    }
    if foreign_runs > 0 {
        let _ = writeln!(
            s,
            "**Other people's BPF programs were attached to tracepoints** when {foreign_runs} of \
             the {} throughput runs started (up to {} programs; e.g. another developer's zoneprof \
             tests): they slow every run on those tracepoints, bare runs included, which \
             understates every tool's relative cost.\n",
            r.foreign_bpf_samples.len(),
            r.foreign_bpf_samples.iter().max().copied().unwrap_or(0)
        );
    }
    for t in &r.skipped_tools {
        let _ = writeln!(s, "Skipped: {t}.\n");
    }

    let _ = writeln!(s, "## Targets\n");
    let _ = writeln!(
        s,
        "| target | limit | measured | |\n| --- | --- | --- | --- |"
    );
    for t in &r.targets {
        let v = match t.verdict() {
            "MISSED" => "**missed**",
            "MISSED (within noise)" => "**missed** (within noise)",
            other => other,
        };
        let _ = writeln!(s, "| {} | {} | {} | {v} |", t.what, t.limit, t.measured);
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{}\n",
        kept.unwrap_or(concat!(
            "<!-- analysis: kept by cargo xtask bench -->\n",
            "(Where the costs are: written by hand between these markers; the bench keeps it.)\n",
            "<!-- /analysis -->"
        ))
    );

    if !r.cells.is_empty() {
        let _ = writeln!(s, "## Throughput overhead\n");
        let _ = writeln!(
            s,
            "Each reproducer runs {} s on CPUs 0 and 1 (`workload cross-cpu-pages --alloc-cpus 0 \
             --free-cpus 1`, `workload tap --sender-cpus 0 --reader-cpus 1`), {} times per \
             variant, round-robin, after one unmeasured warm-up run of each. Throughput is what \
             the reproducer itself prints for its own run (GB/s of pages moved; Gbit/s read from \
             the tap), so each tool's start-up and write-out are outside the measured interval. \
             Ratio = run / median of the bare runs of the same reproducer; cost = 1 − ratio.\n",
            r.opts.secs, r.opts.rounds
        );
        for repro in Repro::ALL {
            let _ = writeln!(s, "### {}\n", repro.name());
            let _ = writeln!(
                s,
                "| variant | median {u} | min … max {u} | ratio median | ratio min … max | ratio IQR | cost | output |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
                u = repro.unit()
            );
            for c in r.cells.iter().filter(|c| c.repro == repro) {
                let _ = writeln!(
                    s,
                    "| {} | {:.3} | {:.3} … {:.3} | {:.3} | {:.3} … {:.3} | {:.3} … {:.3} | {:.1} % | {} |",
                    c.variant.label(),
                    c.throughput.median,
                    c.throughput.min,
                    c.throughput.max,
                    c.ratio.median,
                    c.ratio.min,
                    c.ratio.max,
                    c.ratio.q1,
                    c.ratio.q3,
                    c.cost_pct(),
                    c.output_bytes
                        .map_or_else(|| "-".into(), |b| format!("{:.2} MB", b as f64 / MB))
                );
            }
            let _ = writeln!(
                s,
                "\nCPU per unit of work (the same runs): work = throughput × {} s; CPU = user + \
                 system seconds of the whole process tree (tool and reproducer, `wait4`) minus \
                 the tool's fixed cost around `true`; ratio = (work / CPU) / bare median.\n",
                r.opts.secs
            );
            let _ = writeln!(
                s,
                "| variant | fixed CPU s | work/CPU ratio median | IQR | min … max | extra CPU per unit of work |\n| --- | ---: | ---: | ---: | ---: | ---: |"
            );
            for c in r.cells.iter().filter(|c| c.repro == repro) {
                let Some(q) = c.cpu_ratio else { continue };
                let _ = writeln!(
                    s,
                    "| {} | {:.3} | {:.3} | {:.3} … {:.3} | {:.3} … {:.3} | {:+.1} % |",
                    c.variant.label(),
                    c.fixed_cpu_s,
                    q.median,
                    q.q1,
                    q.q3,
                    q.min,
                    q.max,
                    c.cpu_cost_pct().unwrap_or(0.0)
                );
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(
            s,
            "`perf lock record -a` writes every `lock:contention_begin/end` event with its \
             callchain to perf.data and aggregates afterwards (`perf lock report`, not timed). \
             `zoneprof record --probes contention_begin,contention_end` observes what perf lock \
             does (lock waits and their stacks) and nothing else: the same-scope comparison. \
             The bpftrace script is:\n\n```\n{}```\n",
            super::overhead::BPFTRACE_SCRIPT
        );
    }

    let _ = writeln!(s, "## In-kernel cost per event\n");
    let _ = writeln!(
        s,
        "`kernel.bpf_stats_enabled` is set to 1 for these runs only (and restored). For each \
         program of the running zoneprof, `run_time_ns` and `run_cnt` are read from \
         `/proc/<zoneprof pid>/fdinfo/<prog fd>` twice: 1 s after the programs appear and \
         {} s later, both inside the workload's {} s; names come from the JIT's \
         `bpf_prog_<tag>_<name>` kallsyms entries. ns/event = Δrun_time_ns / Δrun_cnt: the \
         program's own run time, BPF-to-BPF calls and helpers included, but not the tracepoint's \
         dispatch around it; with stats on, the kernel adds two clock reads per run, counted in \
         `run_time_ns`, so these figures are slightly pessimistic. Programs under {MIN_EVENTS} \
         events in the window are shown but not judged.\n",
        r.opts.cost_secs.saturating_sub(2),
        r.opts.cost_secs
    );
    for c in &r.costs {
        let _ = writeln!(s, "### {}\n", c.label);
        let _ = writeln!(
            s,
            "| program | events/s | ns/event | events in window | recursion misses |\n| --- | ---: | ---: | ---: | ---: |"
        );
        for p in &c.progs {
            let _ = writeln!(
                s,
                "| {} | {:.0} | {} | {} | {} |",
                p.name,
                p.events_per_s(),
                p.ns_per_event()
                    .map_or_else(|| "-".into(), |v| format!("{v:.0}")),
                p.events,
                p.recursion_misses
            );
        }
        let total_ns: u64 = c.progs.iter().map(|p| p.run_time_ns).sum();
        let window = c.progs.first().map_or(0.0, |p| p.window_s);
        if window > 0.0 {
            let _ = writeln!(
                s,
                "\nAll programs together: {:.2} ms of CPU per second of wall time ({:.3} % of one CPU).\n",
                total_ns as f64 / 1e6 / window,
                total_ns as f64 / 1e7 / window
            );
        }
    }

    let m = &r.memory;
    let _ = writeln!(s, "## Kernel memory at {} possible CPUs\n", m.cpus);
    let _ = writeln!(
        s,
        "Computed from the map definitions (`profiler-common` sizes, the map list of \
         `profiler-ebpf/src/maps.rs` mirrored in `xtask/src/bench/memory.rs`) with the kernel's \
         own accounting (`htab_map_mem_usage`, `array_map_mem_usage`, `stack_map_mem_usage`): \
         hash maps are preallocated, so every entry exists from load time: \
         (48-byte `htab_elem` + key + value, each rounded to 8) × (entries + one spare per \
         possible CPU) + 16-byte buckets × entries rounded up to a power of two + an 8-byte \
         per-CPU pointer + the map header; per-CPU arrays cost value × entries × CPUs; the \
         stack-trace map costs (16 + 8 × 127) bytes per entry + 8 per bucket. Header sizes \
         (896, 312, 320 bytes) are those of Linux 6.18.\n"
    );
    let _ = writeln!(
        s,
        "| map | type | key | value | entries | bytes at {} CPUs | MB | only for --page-flows |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
        m.cpus
    );
    let mut rows = m.rows.clone();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    for (d, b) in &rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            d.name,
            d.kind.name(),
            d.key_size,
            d.value_size,
            d.max_entries,
            b,
            mb(*b),
            if d.page_flows_only { "yes" } else { "" }
        );
    }
    let other: u64 = m.unmatched_live.iter().map(|x| x.memlock).sum();
    let _ = writeln!(
        s,
        "| (global-variable maps, measured) | array | | | {} maps | {} | {} | |",
        m.unmatched_live.len(),
        other,
        mb(other)
    );
    let _ = writeln!(
        s,
        "\n- maps: **{} MB** in a default run ({} MB of it for maps only `--page-flows` uses, \
         created with one entry otherwise); `--page-flows` adds {} MB;",
        mb(m.maps_total()),
        mb(m.page_flows_only()),
        mb(m.page_flows_extra)
    );
    let _ = writeln!(
        s,
        "- perf callchain buffers that `bpf_get_stackid` needs: {} MB at {} CPU ids \
         (4 contexts × (8 + 8 × (perf_event_max_stack {} + 8)) bytes per CPU; one set for the whole \
         kernel, shared with perf when it runs);",
        mb(m.callchain_bytes),
        m.cpus,
        h.perf_max_stack
    );
    let _ = writeln!(
        s,
        "- programs (JIT images, measured): {} MB;\n- **total {} MB**.\n",
        mb(m.prog_memlock),
        mb(m.total())
    );
    if !m.checked.is_empty() {
        let ok = m
            .checked
            .iter()
            .filter(|c| c.live.as_ref().is_some_and(|l| l.memlock == c.model_here))
            .count();
        let _ = writeln!(
            s,
            "Cross-check on this host ({} possible CPUs): {ok} of {} modelled maps were found in \
             the running zoneprof with the same type, key, value and entries, and the kernel's \
             `memlock` for them equals the model to the byte{}.\n",
            h.possible_cpus,
            m.checked.len(),
            if ok == m.checked.len() {
                String::new()
            } else {
                format!(
                    "; differences: {}",
                    m.checked
                        .iter()
                        .filter(|c| c.live.as_ref().is_none_or(|l| l.memlock != c.model_here))
                        .map(|c| format!(
                            "{} model {} B, kernel {}",
                            c.def.name,
                            c.model_here,
                            c.live.as_ref().map_or_else(
                                || "absent".to_string(),
                                |l| format!("{} B", l.memlock)
                            )
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        );
    }

    if let Some(u) = &r.userspace {
        let _ = writeln!(s, "## Userspace: a {}-CPU recording\n", u.spec.cpus);
        let _ = writeln!(
            s,
            "`zoneprof __synth` (hidden) writes a recording of a {}-CPU, 2-node host with {} \
             distinct stacks spliced from the real stacks in `shared/fixtures/contention/*.folded` \
             (the leaf part of one joined to the root part of another), each waited on from 1–4 \
             CPUs, two histogram buckets per stack, PCP counters and PCP settings for every CPU, \
             an SKB matrix of {} cells, SKB sites and defer counts per CPU, and a page-flow matrix. \
             It said: `{}` ({:.1} s). The \"after\" recording for `compare` has the same stacks with other \
             values (seed 2, waits × 0.3). Note that the default map sizes cap a real recording \
             at {} stacks and {} (lock, stack, CPU) entries, so this is above what one recording \
             can hold today.\n",
            u.spec.cpus,
            u.spec.stacks,
            u.spec.skb_cells,
            u.synth_summary.trim_start_matches("zoneprof: "),
            u.synth_s,
            profiler_common::STACK_ENTRIES,
            profiler_common::LOCK_STATS_ENTRIES
        );
        let _ = writeln!(
            s,
            "Recording file: **{} MB** (gzip-compressed JSON). Each command ran {} times; wall \
             time and peak RSS (`wait4` rusage of the command) are medians.\n",
            mb(u.recording_bytes),
            r.opts.reps
        );
        let _ = writeln!(
            s,
            "| command | wall s (median) | min … max | peak RSS MB |\n| --- | ---: | ---: | ---: |"
        );
        for x in &u.timed {
            let _ = writeln!(
                s,
                "| {} | {:.2} | {:.2} … {:.2} | {:.0} |",
                x.label, x.wall_s.median, x.wall_s.min, x.wall_s.max, x.max_rss_mb.median
            );
        }
        let _ = writeln!(s);
    }

    // The observer section of this run, or the last one's when this run had none.
    match (&r.observer, old_observer) {
        (Some(o), _) => {
            let _ = writeln!(s, "{}", observer_section(o));
        }
        (None, Some(old)) => {
            let _ = writeln!(s, "{old}\n");
        }
        (None, None) => {}
    }

    let _ = writeln!(s, "## Rerun\n");
    let _ = writeln!(
        s,
        "```sh\ncargo xtask bench                 # as root: setup (adds linux-perf, bpftrace, bpftool), build, all phases (~7 min)\n\
         cargo xtask bench --rounds 7 --secs 5\ncargo xtask bench --skip-overhead   # only cost per event, memory, userspace (~1 min), to target/bench/*-partial.*\n```\n\n\
         Results: `target/bench/bench.json` (every run, not only the medians) and this file. \
         Compare figures only between runs on the same machine, and prefer a quiet one: on a \
         2-CPU VM shared with other work, the spread of the bare runs is the noise floor."
    );
    s
}

/// The observer section sits between these markers, so that `--only-observer` can replace
/// it alone and a whole run without it (`--skip-overhead`, no perf) keeps the last one.
pub const OBS_BEGIN: &str =
    "<!-- observer: generated by cargo xtask bench (also --only-observer) -->";
pub const OBS_END: &str = "<!-- /observer -->";

/// The observer section of an existing doc, markers included.
pub fn observer_block(old: &str) -> Option<&str> {
    let start = old.find(OBS_BEGIN)?;
    let end = old[start..].find(OBS_END)? + start + OBS_END.len();
    Some(&old[start..end])
}

/// `old` with its observer section replaced by `section`, or `section` inserted before
/// `## Rerun` (at the end when there is none); nothing else changes.
pub fn splice_observer(old: &str, section: &str) -> String {
    let section = section.trim_end();
    if let Some(b) = observer_block(old) {
        return old.replacen(b, section, 1);
    }
    match old.find("\n## Rerun") {
        Some(i) => format!("{}\n{section}\n{}", &old[..i], &old[i..]),
        None => format!("{}\n\n{section}\n", old.trim_end()),
    }
}

fn ms(ns: f64) -> String {
    format!("{:.1}", ns / 1e6)
}

fn opt_ms(ns: Option<f64>) -> String {
    ns.map_or_else(|| "-".into(), ms)
}

fn spread_pct(q: &super::stats::Summary) -> String {
    format!("{:.2} ({:.2} … {:.2})", q.median, q.min, q.max)
}

fn spread_ms(q: &super::stats::Summary) -> String {
    format!("{} ({} … {})", ms(q.median), ms(q.min), ms(q.max))
}

/// Runs and mean ns/run of the per-batch PCP probes (`rmqueue_pcplist`,
/// `free_pcppages_bulk`: entry and exit programs) in a recording; "-" when none ran.
fn batch_programs(r: &observer::RecStats) -> String {
    let (runs, ns) = r
        .programs
        .iter()
        .filter(|p| matches!(p.probe.as_str(), "rmqueue_pcplist" | "free_pcppages_bulk"))
        .fold((0u64, 0.0), |(n, t), p| {
            (n + p.runs, t + p.ns_per_run.unwrap_or(0.0) * p.runs as f64)
        });
    if runs == 0 {
        "-".into()
    } else {
        format!("{runs} × {:.0}", ns / runs as f64)
    }
}

/// `## Observer effect`: written only from the measured numbers of `o`.
pub fn observer_section(o: &Observer) -> String {
    use observer::Variant as V;
    let mut s = String::new();
    let _ = writeln!(s, "{OBS_BEGIN}");
    let _ = writeln!(
        s,
        "## Observer effect (issue: measure without disturbing)\n"
    );
    let event = o
        .runs
        .first()
        .map_or("unknown", |r| r.counts.event.as_str())
        .to_string();
    let window = o.runs.first().map_or(0.0, |r| r.window_s);
    let variants: Vec<&str> = o.cells.iter().map(|c| c.variant.label()).collect();
    let _ = writeln!(
        s,
        "What zoneprof adds to the page allocator's refill and drain paths, measured from outside \
         with whole-machine `perf` sampling, and whether the in-lock cost each recording states \
         (`observer_cost` of `report --format json`) agrees with it. Run {}: {} rounds, \
         round-robin, of {} on `workload cross-cpu-pages --alloc-cpus 0 --free-cpus 1 -d {}s`, \
         after an unmeasured warm-up; each run sampled by `perf record -a -g --kernel-callchains \
         -F {}` for {:.1} s from 0.5 s into the workload ({}; sampling event `{event}`). \
         {:.0} s in all.\n",
        o.date_utc,
        o.opts.rounds,
        variants.join(", "),
        o.opts.secs,
        o.opts.freq,
        window,
        o.perf_version,
        o.elapsed_s
    );
    let waited: f64 = o.runs.iter().map(|r| r.waited_s).sum();
    let disturbed: Vec<String> = o
        .runs
        .iter()
        .filter(|r| !r.disturbed.is_empty())
        .map(|r| {
            format!(
                "round {} {}: {}",
                r.round + 1,
                r.variant.label(),
                r.disturbed.join(", ")
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "Other people's qemu VMs share this machine's 2 CPUs, so before each run the bench waited \
         until none ran (`pgrep -f qemu-system`; {waited:.0} s of waiting in all). {}\n",
        if disturbed.is_empty() {
            format!(
                "None of the {} runs was disturbed (no qemu, compiler or linker seen before or \
                 during any of them).",
                o.runs.len()
            )
        } else {
            format!(
                "**{} of the {} runs {} disturbed**: {}.",
                disturbed.len(),
                o.runs.len(),
                if disturbed.len() == 1 { "was" } else { "were" },
                disturbed.join("; ")
            )
        }
    );
    for (v, why) in &o.skipped {
        let _ = writeln!(s, "`{}` was not run: {why}.\n", v.label());
    }
    let _ = writeln!(
        s,
        "Rerun this section alone (the others stay as they are): `cargo xtask bench \
         --only-observer [--vm-results DIR]`; every run is in `target/bench/observer.json`.\n"
    );

    let _ = writeln!(s, "### Targets\n");
    let _ = writeln!(
        s,
        "| target | limit | measured | |\n| --- | --- | --- | --- |"
    );
    for t in &o.targets {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            t.what,
            t.limit,
            t.measured,
            t.verdict_text()
        );
    }
    let _ = writeln!(s);
    let na = o
        .targets
        .iter()
        .any(|t| t.verdict == observer::Verdict::NotApplicable);
    if na {
        let vm_batch = o.vm.iter().any(|v| v.rec.pcp_method.1 == "batch");
        let _ = writeln!(
            s,
            "Not applicable here: no per-batch hook attached on this kernel (kprobes and fentry \
             are refused), so `--pcp auto` counted PCP pages per {} on the refill side and per \
             {} on the drain side. The per-page figures are given instead. {}\n",
            o.default_method.0,
            o.default_method.1,
            if vm_batch {
                "Where per-batch hooks exist (the qemu kernels below), the drain-side half is \
                 judged from the vm-test recordings: it needs only program counts. The CPU-time \
                 halves (≤ 2 %, close to lock-only) need perf on a host with per-batch hooks: \
                 TCG guests' timing cannot resolve 2 %."
            } else {
                "No vm-test recording with per-batch hooks was found to judge them in qemu."
            }
        );
    }

    let _ = writeln!(s, "### Refill and drain paths' share of all CPU samples\n");
    let unlock_share = o.cell(V::Default).map(|c| {
        if c.paths_samples == 0 {
            0.0
        } else {
            c.paths_at_unlock as f64 / c.paths_samples as f64 * 100.0
        }
    });
    let _ = writeln!(
        s,
        "A sample is in the refill path when `__rmqueue_pcplist` (or `rmqueue_bulk`) is on its \
         stack: on 6.18 `rmqueue_bulk`, which holds `zone->lock`, is inlined into it. It is in \
         the drain path when `free_pcppages_bulk` is on its stack, or when its leaf is \
         `_raw_spin_unlock_irqrestore` called straight from `free_frozen_page_commit` (or \
         another caller of `free_pcppages_bulk`): `free_pcppages_bulk` ends by jumping to the \
         unlock, so its own frame is gone there. Share = path samples / all samples of the \
         machine; added = (variant median − bare median) / bare median. Path CPU per GB = path \
         samples / {} Hz / GB moved in the sampled window (the run's GB/s × window).{}\n",
        o.opts.freq,
        if observer::sees_irqs_off(&event) {
            String::new()
        } else {
            format!(
                " The sampling event is `{event}` (this VM has no hardware PMU): a timer sample \
                 that falls due while interrupts are off is taken when they come back on, and \
                 `zone->lock` is held with interrupts off, so a locked section's samples land \
                 at its unlock. {} of the default runs' path samples have the unlock as their \
                 leaf.",
                unlock_share.map_or_else(|| "-".into(), |v| format!("{v:.0} %"))
            )
        }
    );
    let _ = writeln!(
        s,
        "| variant | runs | GB/s median | refill % median (min … max) | drain % | refill + drain % | added vs bare: refill / drain / both | path CPU ms per GB (min … max) |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for c in &o.cells {
        let added = observer::added_vs_bare(o, c.variant).map_or_else(
            || "-".into(),
            |(r, d, b)| format!("{r:+.1} % / {d:+.1} % / {b:+.1} %"),
        );
        let _ = writeln!(
            s,
            "| {} | {}{} | {:.2} | {} | {} | {} | {} | {} |",
            c.variant.label(),
            c.gbs.n,
            if c.disturbed_runs > 0 {
                format!(" ({} disturbed)", c.disturbed_runs)
            } else {
                String::new()
            },
            c.gbs.median,
            spread_pct(&c.refill_pct),
            spread_pct(&c.drain_pct),
            spread_pct(&c.paths_pct),
            added,
            spread_ms(&c.path_ns_per_gb)
        );
    }
    let _ = writeln!(s);
    // Recorded variants without PCP programs below bare by more than bare's own spread:
    // say so, since every "added vs bare" figure carries that uncertainty.
    if let Some(b) = o.cell(V::Bare) {
        let spread = (b.path_ns_per_gb.q3 - b.path_ns_per_gb.q1) / 2.0;
        let below: Vec<String> = [V::LockOnly, V::PcpOff]
            .iter()
            .filter_map(|&v| o.cell(v))
            .filter(|c| b.path_ns_per_gb.median - c.path_ns_per_gb.median > spread)
            .map(|c| {
                format!(
                    "{} {} ms/GB",
                    c.variant.label(),
                    ms(c.path_ns_per_gb.median)
                )
            })
            .collect();
        if !below.is_empty() {
            let _ = writeln!(
                s,
                "Recorded runs without PCP programs spent less CPU per GB in these paths than \
                 bare ones ({} against bare {} ms/GB, whose IQR half-width is {} ms/GB): an \
                 effect of running under `zoneprof record` that this bench does not isolate. \
                 The added-vs-bare figures carry that uncertainty; the in-lock estimate below \
                 takes `--pcp off`, recorded the same way, as its baseline.\n",
                below.join(", "),
                ms(b.path_ns_per_gb.median),
                ms(spread)
            );
        }
    }

    let _ = writeln!(
        s,
        "### In-lock cost: each recording's own figure against perf\n"
    );
    let dflt = o.cell(V::Default);
    let _ = write!(
        s,
        "Direct count: samples with one of zoneprof's in-lock programs on the stack (the JIT \
         symbol `bpf_prog_<tag>_<name>` of each program the recording lists with in-lock runs; \
         `contention_end` only when the sample is also in a refill or drain path): {} in the \
         default runs; counting also the samples in those programs' tracepoint dispatch, i.e. \
         any sample with `__traceiter_<event>`, `__bpf_trace_<event>` or `perf_trace_<event>` \
         of such a tracepoint on its stack (so a leaf in `bpf_trace_run*` / `__bpf_trace_run` \
         above one of them counts too): {}, of {} samples.",
        dflt.map_or(0, |c| c.in_lock_prog_samples),
        dflt.map_or(0, |c| c.in_lock_dispatch_samples),
        dflt.map_or(0, |c| c.samples)
    );
    match &o.check {
        Some(c) if c.method == "differential" => {
            let _ = writeln!(
                s,
                " With `{event}` these counts are zero by construction (see above), so the \
                 independent estimate is differential: per GB moved, (refill + drain path CPU − \
                 zone-lock wait recorded) of each default run minus the median of the same for \
                 the `--pcp off` runs ({} ms/GB), which differ only by the per-page PCP \
                 programs. Subtracting the recorded wait leaves out the extra spinning that \
                 longer holds cause in the other CPU; what remains is the added hold time: the \
                 programs, their tracepoint dispatch and their cache effects.\n",
                opt_ms(c.baseline_ns_per_gb)
            );
        }
        Some(_) => {
            let _ = writeln!(
                s,
                " The sampling event interrupts code running with interrupts off, so the \
                 estimate is direct: (program + dispatch samples) / {} Hz per GB moved.\n",
                o.opts.freq
            );
        }
        None => {
            let _ = writeln!(s, "\n");
        }
    }
    let _ = writeln!(
        s,
        "| round | in-lock runs | ns/run | in-lock ms | reported ms/GB | program samples | + dispatch | perf estimate ms/GB | perf ns per in-lock run | reported / estimate |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let baseline = o.check.as_ref().and_then(|c| c.baseline_ns_per_gb);
    for r in o.runs.iter().filter(|r| r.variant == V::Default) {
        let Some(rec) = &r.rec else { continue };
        let est = match &o.check {
            Some(c) if c.method == "direct" => r.direct_ns_per_gb(o.opts.freq),
            _ => r
                .path_ns_per_gb(o.opts.freq)
                .zip(r.wait_ns_per_gb())
                .zip(baseline)
                .map(|((p, w), b)| p - w - b),
        };
        let rep = r.reported_ns_per_gb();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.round + 1,
            rec.in_lock_runs,
            rec.ns_per_run
                .map_or_else(|| "-".into(), |v| format!("{v:.1}")),
            opt_ms(rec.in_lock_ns),
            opt_ms(rep),
            r.counts.in_lock_prog,
            r.counts.in_lock_dispatch,
            opt_ms(est),
            est.filter(|_| rec.in_lock_runs > 0).map_or_else(
                || "-".into(),
                |e| format!("{:.0}", e * r.gb / rec.in_lock_runs as f64)
            ),
            match (rep, est) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                _ => "-".into(),
            }
        );
    }
    if let Some(c) = &o.check {
        let _ = writeln!(
            s,
            "\nMedians: reported {} ms/GB, perf {} ms/GB (runs {} … {}); reported / perf {:.2} \
             (runs {:.2} … {:.2}).{}{}{}\n",
            ms(c.reported.median),
            ms(c.estimate.median),
            ms(c.estimate.min),
            ms(c.estimate.max),
            c.ratio.median,
            c.ratio.min,
            c.ratio.max,
            if c.other_baselines.is_empty() {
                String::new()
            } else {
                format!(
                    " With another baseline instead of `--pcp off`: {}.",
                    c.other_baselines
                        .iter()
                        .map(|(v, x)| format!("{} runs {x:.2}", v.label()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            c.per_run_ns.map_or_else(String::new, |(r, e)| format!(
                " Per in-lock program run: {:.0} ns by the recording, {:.0} ns by perf (runs \
                 {:.0} … {:.0}), {:+.0} ns per run that the recording does not state.",
                r.median,
                e.median,
                e.min,
                e.max,
                e.median - r.median
            )),
            if c.ratio.median < 0.75 {
                " The recording states less than perf measures. Its figure is the BPF run-time \
                 stats, which time only the program itself, between two clock reads in \
                 `bpf_prog_run`; they leave out the tracepoint's dispatch around it \
                 (`__traceiter_*`, `__bpf_trace_*`, the recursion counter, run context and RCU \
                 section of `bpf_trace_run*`), the stats' own update, and the cache lines the \
                 program's maps take from the allocator's, all of which perf charges to the \
                 locked section. This bench does not split the gap between them (bpftrace 0.17 \
                 cannot attach an empty raw tracepoint program to time the dispatch alone)."
            } else if c.ratio.median > 1.25 {
                " The recording states more than perf measures: the run-time stats include two \
                 clock reads per run, and part of each program's time may overlap what the \
                 section would spend anyway (cache misses the program takes instead)."
            } else {
                ""
            }
        );
    } else {
        let _ = writeln!(
            s,
            "\nNo estimate: no default or `--pcp off` runs with a recording.\n"
        );
    }

    let _ = writeln!(
        s,
        "### Zone-lock wait per GB moved (zoneprof's own report)\n"
    );
    let _ = writeln!(
        s,
        "`totals.zone_lock_wait_ns` (alloc + free + other) of each recording / GB the workload \
         moved in it.\n"
    );
    let _ = writeln!(
        s,
        "| variant | zone-lock wait ms/GB median (min … max) | reported in-lock ms/GB median | GB/s median |\n| --- | ---: | ---: | ---: |"
    );
    for c in o.cells.iter().filter(|c| c.wait_ns_per_gb.is_some()) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} |",
            c.variant.label(),
            c.wait_ns_per_gb
                .as_ref()
                .map_or_else(|| "-".into(), spread_ms),
            opt_ms(c.reported_ns_per_gb.map(|q| q.median)),
            c.gbs.median
        );
    }
    if let (Some(d), Some(l)) = (
        o.cell(V::Default).and_then(|c| c.wait_ns_per_gb),
        o.cell(V::LockOnly).and_then(|c| c.wait_ns_per_gb),
    ) {
        let _ = writeln!(
            s,
            "\nDefault against lock probes only: {} ms/GB against {} ms/GB of zone-lock wait \
             ({}).",
            ms(d.median),
            ms(l.median),
            observer::added_pct(d.median, l.median)
                .map_or_else(|| "-".into(), |v| format!("{v:+.0} %"))
        );
    }
    let _ = writeln!(s);

    let _ = writeln!(
        s,
        "### Per batch against per page under qemu (vm-test recordings)\n"
    );
    if o.vm.is_empty() {
        let _ = writeln!(
            s,
            "Not measured (run cargo xtask vm-test first): no `*/pcp-twin-*/report.json` or \
             `*/record-cross-cpu*/report.json` under `{}`.\n",
            o.opts.vm_results.display()
        );
    } else {
        let _ = writeln!(
            s,
            "The latest `cargo xtask vm-test` recordings under `{}` (TCG guests: absolute times \
             are not comparable with this host's). `pcp-twin-*` records with `--pcp page`, where \
             both forms run; `record-cross-cpu*` with the scenario's backend and `--pcp auto`.\n",
            o.opts.vm_results.display()
        );
        let _ = writeln!(
            s,
            "| kernel | scenario | PCP refill / drain | in-lock runs | ns/run | in-lock ms | % of zone-lock wait | drain-side in-lock runs | per-batch programs (outside the lock): runs × ns/run | note |\n| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
        );
        for v in &o.vm {
            let r = &v.rec;
            let _ = writeln!(
                s,
                "| {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} |",
                v.kernel,
                v.scenario,
                r.pcp_method.0,
                r.pcp_method.1,
                r.in_lock_runs,
                r.ns_per_run
                    .map_or_else(|| "-".into(), |x| format!("{x:.1}")),
                opt_ms(r.in_lock_ns),
                r.pct_of_wait
                    .map_or_else(|| "-".into(), |x| format!("{x:.1} %")),
                r.in_lock_runs_of("pcp_drain"),
                batch_programs(r),
                r.reason.as_deref().unwrap_or("")
            );
        }
        let batch: Vec<&observer::VmRow> =
            o.vm.iter()
                .filter(|v| v.rec.pcp_method.1 == "batch")
                .collect();
        if !batch.is_empty() {
            let drain: u64 = batch
                .iter()
                .map(|v| v.rec.in_lock_runs_of("pcp_drain"))
                .sum();
            let _ = writeln!(
                s,
                "\nIn the {} recordings that counted the drain side per batch, the drain-side \
                 programs ran {drain} times under `zone->lock`.",
                batch.len()
            );
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "{OBS_END}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::progcost::ProgCost;
    use crate::bench::stats::Summary;

    fn cost(label: &str, name: &str, events: u64, ns: u64) -> CostRun {
        CostRun {
            label: label.into(),
            command: String::new(),
            progs: vec![ProgCost {
                name: name.into(),
                prog_type: 5,
                events,
                run_time_ns: ns,
                window_s: 2.0,
                recursion_misses: 0,
            }],
            last: Default::default(),
        }
    }

    #[test]
    fn worst_program_ignores_rare_and_opt_in_programs() {
        let costs = vec![
            cost("x, default probes", "contention_end", 10_000, 1_500_000),
            cost("x, default probes", "skb_kfree", 10, 100_000),
            cost("x, --page-flows", "page_free", 1_000_000, 900_000_000),
        ];
        let (_, prog, ns) = worst_default_prog(&costs).expect("worst");
        assert_eq!(prog, "contention_end");
        assert_eq!(ns, 150.0);
    }

    #[test]
    fn kept_block_survives() {
        let old = format!("# B\n\n{KEEP_BEGIN}\nhand text\n{KEEP_END}\n\nrest\n");
        assert_eq!(
            kept_block(&old),
            Some(format!("{KEEP_BEGIN}\nhand text\n{KEEP_END}").as_str())
        );
        assert_eq!(kept_block("# nothing"), None);
        assert_eq!(kept_block(KEEP_BEGIN), None);
    }

    #[test]
    fn observer_section_is_spliced_alone() {
        let sec = format!("{OBS_BEGIN}\n## Observer effect\nnew\n{OBS_END}\n");
        // First time: before ## Rerun, everything else byte for byte.
        let old = "# B\n\n## Targets\n\nt\n\n## Rerun\n\nr\n";
        let once = splice_observer(old, &sec);
        assert_eq!(
            once,
            format!(
                "# B\n\n## Targets\n\nt\n\n{}\n\n## Rerun\n\nr\n",
                sec.trim_end()
            )
        );
        // Again: replaced in place, not added twice.
        let sec2 = sec.replace("new", "newer");
        let twice = splice_observer(&once, &sec2);
        assert_eq!(twice, once.replace("new\n", "newer\n"));
        assert_eq!(
            observer_block(&twice).map(|b| b.contains("newer")),
            Some(true)
        );
        // No Rerun section: appended.
        assert!(splice_observer("# B\n", &sec).ends_with(&format!("{OBS_END}\n")));
        assert_eq!(observer_block("# B"), None);
    }

    #[test]
    fn observer_section_says_what_was_not_measured() {
        let o = crate::bench::observer::tests::observer("page", vec![]);
        let sec = observer_section(&o);
        assert!(sec.starts_with(OBS_BEGIN) && sec.trim_end().ends_with(OBS_END));
        assert!(
            sec.contains("Not measured (run cargo xtask vm-test first)"),
            "{sec}"
        );
        assert!(sec.contains("| not applicable here |"));
        assert!(sec.contains("None of the 4 runs was disturbed"));
        // cpu-clock: the estimate is differential, and the section says why.
        assert!(sec.contains("zero by construction"));
        assert!(
            sec.contains("780000 ns by the recording, 990000 ns by perf"),
            "{sec}"
        );
        // Splicing it twice leaves one section.
        let doc = splice_observer(&splice_observer("# B\n\n## Rerun\n", &sec), &sec);
        assert_eq!(doc.matches(OBS_BEGIN).count(), 1);
    }

    #[test]
    fn batch_program_cost() {
        let mut r = crate::bench::observer::RecStats::from_report(
            &crate::bench::observer::tests::report("batch", Some(1.0), 0),
        )
        .expect("stats");
        assert_eq!(batch_programs(&r), "-");
        for (probe, runs, ns) in [
            ("rmqueue_pcplist", 10, 100.0),
            ("free_pcppages_bulk", 30, 20.0),
        ] {
            r.programs.push(crate::bench::observer::ProgStat {
                probe: probe.into(),
                program: format!("{probe}_exit"),
                runs,
                ns_per_run: Some(ns),
                in_lock_runs: 0,
            });
        }
        assert_eq!(batch_programs(&r), "40 × 40");
    }

    #[test]
    fn spread_reads_best_to_worst() {
        let ratio = Summary::of(&[0.9, 1.0, 1.05]).expect("summary");
        let c = Cell {
            repro: Repro::Tap,
            variant: Variant::Zoneprof,
            throughput: ratio,
            ratio,
            cpu_ratio: None,
            fixed_cpu_s: 0.0,
            output_bytes: None,
        };
        let s = pct_spread(&c);
        assert!(s.starts_with("0.0 % (runs -5.0 … 10.0 %"), "{s}");
    }
}
