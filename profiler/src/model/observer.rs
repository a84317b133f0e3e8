//! What zoneprof's own programs cost under `zone->lock`, derived from a recording.
//!
//! The per-page PCP programs (probes `pcp_refill`, `pcp_drain`) fire inside the lock, once per
//! page; `contention_end` runs once a contended lock has been acquired, so for a zone-lock
//! contention it runs inside `zone->lock`. Each of those runs lengthens the very hold times
//! zoneprof measures. The run counts and times come from the kernel's BPF run-time stats,
//! which `record` enables for the recording alone (`Recording::observer`).
use serde::Serialize;

use crate::{
    kernel::probes::name,
    model::analysis::{self, ClassifiedWait},
    model::recording::{ObserverStats, PcpMethod, Recording},
    model::units::{SatSum, fmt_count, fmt_ns, fmt_pct},
};

/// Probes whose every program run holds `zone->lock`.
const PER_PAGE_PROBES: [&str; 2] = [name::PCP_REFILL, name::PCP_DRAIN];
/// Runs with the contended lock held: inside `zone->lock` for zone-lock contentions.
const CONTENTION_END: &str = name::CONTENTION_END;
/// Every probe whose programs can run with `zone->lock` held.
pub const IN_LOCK_PROBES: [&str; 3] = [name::PCP_REFILL, name::PCP_DRAIN, name::CONTENTION_END];

/// One program's share.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgramCost {
    pub probe: String,
    pub program: String,
    pub runs: u64,
    /// Mean time per run; null when it never ran.
    pub ns_per_run: Option<f64>,
    /// Runs made with `zone->lock` held: all of a per-page PCP program's, the zone-lock
    /// contentions of `contention_end`'s, none of the others'.
    pub in_lock_runs: u64,
}

/// The observer cost under `zone->lock` (docs/report-json.md, `observer_cost`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObserverCost {
    /// Program runs made with `zone->lock` held.
    pub in_lock_program_runs: u64,
    /// Mean time per such run, the program's own and the kernel's dispatch around it; null
    /// without run-time stats or runs.
    pub ns_per_run: Option<f64>,
    /// The programs' own part of `ns_per_run` (BPF run-time stats).
    pub program_ns_per_run: Option<f64>,
    /// The dispatch part (measured at the recording's start, `capture::calibrate`); null
    /// when it was not measured for the method of some in-lock run, whose cost is then the
    /// program's alone.
    pub dispatch_ns_per_run: Option<f64>,
    /// Hold time those runs added; null without run-time stats.
    pub in_lock_ns: Option<u64>,
    /// `in_lock_ns` as a percentage of the zone-lock wait recorded; null without run-time
    /// stats or zone-lock wait.
    pub pct_of_zone_lock_wait: Option<f64>,
    /// Why the null values are null.
    pub reason: Option<String>,
    pub programs: Vec<ProgramCost>,
}

/// The cost of `rec`'s programs under `zone->lock`; `waits` are `rec`'s classified waits
/// (the zone-lock wait the percentage refers to is the report's).
pub fn cost(rec: &Recording, waits: &[ClassifiedWait<'_>]) -> ObserverCost {
    let zone_wait_ns = analysis::zone_totals(waits).total();
    // Counted in the kernel for proven zone-lock addresses; without that proof (no BTF) the
    // stack classifier's count is all there is.
    let classified: u64 = waits
        .iter()
        .filter(|w| w.class.is_zone())
        .map(|w| w.wait.count)
        .sat_sum();
    let zone_contentions = rec.counters.zone_contentions.max(classified);
    let per_page = |probe: &str| PER_PAGE_PROBES.contains(&probe);

    let stats = rec.observer.as_ref();
    let programs: Vec<ProgramCost> = stats
        .map(|o| {
            o.programs
                .iter()
                .map(|p| ProgramCost {
                    probe: p.probe.clone(),
                    program: p.program.clone(),
                    runs: p.runs,
                    ns_per_run: (p.runs > 0).then(|| p.run_ns as f64 / p.runs as f64),
                    in_lock_runs: if per_page(&p.probe) {
                        p.runs
                    } else if p.probe == CONTENTION_END {
                        zone_contentions.min(p.runs)
                    } else {
                        0
                    },
                })
                .collect()
        })
        .unwrap_or_default();

    let failed = match stats {
        None => Err(
            "this recording has no run-time stats of its programs (made by a zoneprof that did \
             not measure them)"
                .to_string(),
        ),
        Some(o) => match &o.stats_error {
            Some(why) => Err(why.clone()),
            None => Ok(o),
        },
    };
    let observer = match failed {
        Ok(o) => o,
        Err(reason) => return without_stats(rec, zone_contentions, reason, programs),
    };

    let raw = observer.programs.as_slice();
    // The dispatch cost of the method `probe` is attached by, where it was measured.
    let dispatch_of = |probe: &str| {
        let method = probe_method(rec, probe)?;
        observer
            .dispatch
            .iter()
            .find(|d| d.method == method)
            .map(|d| d.ns_per_run)
    };
    let mut runs = 0u64;
    let mut program_ns = 0f64;
    let mut dispatch_ns = 0f64;
    let mut unmeasured: Vec<&str> = Vec::new();
    let mut add = |probe: &str, r: u64, ns: f64| {
        runs = runs.saturating_add(r);
        program_ns += ns;
        match dispatch_of(probe) {
            Some(d) => dispatch_ns += d * r as f64,
            None if r > 0 => {
                unmeasured.push(probe_method(rec, probe).unwrap_or("an unknown method"));
            }
            None => {}
        }
    };
    for p in raw.iter().filter(|p| per_page(&p.probe)) {
        add(&p.probe, p.runs, p.run_ns as f64);
    }
    // Which contention_end runs were zone-lock ones is not known: charge each the mean.
    let (end_runs, end_ns) = raw
        .iter()
        .filter(|p| p.probe == CONTENTION_END)
        .fold((0u64, 0u64), |(r, n), p| {
            (r.saturating_add(p.runs), n.saturating_add(p.run_ns))
        });
    let in_lock_ends = zone_contentions.min(end_runs);
    if end_runs > 0 {
        add(
            CONTENTION_END,
            in_lock_ends,
            in_lock_ends as f64 * end_ns as f64 / end_runs as f64,
        );
    }
    unmeasured.sort_unstable();
    unmeasured.dedup();
    let dispatch_reason = dispatch_reason(observer, &unmeasured);
    let total = program_ns + dispatch_ns;
    // Whole nanoseconds, and the share from them, so the JSON's fields agree exactly.
    let in_lock_ns = total.round() as u64;
    let per_run = |ns: f64| (runs > 0).then(|| ns / runs as f64);
    ObserverCost {
        in_lock_program_runs: runs,
        ns_per_run: per_run(total),
        program_ns_per_run: per_run(program_ns),
        dispatch_ns_per_run: if dispatch_reason.is_none() {
            per_run(dispatch_ns)
        } else {
            None
        },
        in_lock_ns: Some(in_lock_ns),
        pct_of_zone_lock_wait: (zone_wait_ns > 0)
            .then(|| 100.0 * in_lock_ns as f64 / zone_wait_ns as f64),
        reason: if runs == 0 {
            Some("no zoneprof program ran with zone->lock held".to_string())
        } else {
            dispatch_reason
        },
        programs,
    }
}

/// Why some in-lock runs count their program time only: `unmeasured` are their attach
/// methods; None when every run had its dispatch measured.
fn dispatch_reason(observer: &ObserverStats, unmeasured: &[&str]) -> Option<String> {
    if unmeasured.is_empty() {
        return None;
    }
    let measured: Vec<&str> = observer
        .dispatch
        .iter()
        .map(|d| d.method.as_str())
        .collect();
    let why = match (&observer.dispatch_error, measured.is_empty()) {
        (Some(e), _) => e.clone(),
        (None, true) => "this recording has no dispatch measurement (made by a zoneprof that \
                         did not measure it)"
            .to_string(),
        (None, false) => format!("measured only for {}", measured.join(", ")),
    };
    Some(format!(
        "dispatch not counted for runs attached by {}: {why}",
        unmeasured.join(", ")
    ))
}

/// The cost when the recording has no run-time stats: runs counted from the events the
/// per-page programs recorded (a lower bound, as a program also runs for CPUs outside
/// --cpus and records nothing there), times unknown, and why.
fn without_stats(
    rec: &Recording,
    zone_contentions: u64,
    reason: String,
    programs: Vec<ProgramCost>,
) -> ObserverCost {
    let refill: u64 = if rec.attached(name::PCP_REFILL) {
        rec.pcp
            .iter()
            .map(|p| p.refill_events.saturating_add(p.buddy_events))
            .sat_sum()
    } else {
        0
    };
    let drain: u64 = if rec.attached(name::PCP_DRAIN) {
        rec.pcp.iter().map(|p| p.drain_events).sat_sum()
    } else {
        0
    };
    ObserverCost {
        in_lock_program_runs: [refill, drain, zone_contentions].into_iter().sat_sum(),
        ns_per_run: None,
        program_ns_per_run: None,
        dispatch_ns_per_run: None,
        in_lock_ns: None,
        pct_of_zone_lock_wait: None,
        reason: Some(reason),
        programs,
    }
}

/// The attach method of `probe` in `rec`, e.g. `raw_tracepoint`.
fn probe_method<'r>(rec: &'r Recording, probe: &str) -> Option<&'r str> {
    rec.probes
        .iter()
        .find(|p| p.name == probe)
        .map(|p| p.method.as_str())
}

/// [`cost`] for a recording whose waits are not classified yet.
pub fn cost_of(rec: &Recording) -> ObserverCost {
    cost(rec, &analysis::classify_waits(rec))
}

fn fmt_ns_f(ns: f64) -> String {
    if ns < 10.0 {
        format!("{ns:.1} ns")
    } else {
        fmt_ns(ns.round() as u64)
    }
}

/// "1,234,567 program runs × 31 ns = 38.3 ms added hold time (2.1 % of the zone-lock wait
/// recorded); PCP pages counted per page (refill) / per batch (drain)".
pub fn describe(c: &ObserverCost, m: &PcpMethod) -> String {
    let runs = fmt_count(c.in_lock_program_runs);
    let cost = match (c.ns_per_run, c.in_lock_ns) {
        (Some(per), Some(total)) => {
            let share = match c.pct_of_zone_lock_wait {
                Some(p) => format!("{} of the zone-lock wait recorded", fmt_pct(p)),
                None => "no zone-lock wait recorded to compare with".to_string(),
            };
            let split = match (c.program_ns_per_run, c.dispatch_ns_per_run) {
                (Some(prog), Some(disp)) => {
                    format!(
                        " ({} program + {} dispatch)",
                        fmt_ns_f(prog),
                        fmt_ns_f(disp)
                    )
                }
                _ => " (program time only: dispatch not measured)".to_string(),
            };
            format!(
                "{runs} program runs × {}{split} = {} added hold time ({share})",
                fmt_ns_f(per),
                fmt_ns(total)
            )
        }
        _ => match &c.reason {
            Some(why) if c.in_lock_program_runs > 0 => {
                format!("{runs} program runs, time unknown: {why}")
            }
            Some(why) => format!("none: {why}"),
            None => format!("{runs} program runs, time unknown"),
        },
    };
    let pcp = if m.refill == m.drain {
        format!("{} (refill and drain)", m.refill.words())
    } else {
        format!(
            "{} (refill) / {} (drain)",
            m.refill.words(),
            m.drain.words()
        )
    };
    format!("{cost}; PCP pages counted {pcp}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::recording::{
        DispatchCost, ObserverStats, PcpCount, ProbeStatus, ProgramRunStats, sample,
    };

    fn probe(name: &str, attached: bool) -> ProbeStatus {
        ProbeStatus {
            name: name.into(),
            method: "raw_tracepoint".into(),
            target: String::new(),
            attached,
            reason: None,
            attempts: vec![],
        }
    }

    fn run(probe: &str, program: &str, runs: u64, run_ns: u64) -> ProgramRunStats {
        ProgramRunStats {
            probe: probe.into(),
            program: program.into(),
            runs,
            run_ns,
        }
    }

    /// The sample recording (19.5 ms of zone-lock wait over 30 contentions) with per-page
    /// PCP probes and run-time stats.
    fn recording() -> Recording {
        let mut rec = sample();
        rec.probes = vec![
            probe("contention_begin", true),
            probe("contention_end", true),
            probe("pcp_refill", true),
            probe("pcp_drain", true),
            probe("rmqueue_pcplist", false),
        ];
        rec.counters.zone_contentions = 30;
        rec.observer = Some(ObserverStats {
            programs: vec![
                run("contention_begin", "raw_contention_begin", 40, 40_000),
                run("contention_end", "raw_contention_end", 40, 8_000),
                run("pcp_refill", "raw_page_alloc_zone_locked", 1_000, 31_000),
                run("pcp_drain", "raw_page_pcpu_drain", 990, 29_700),
            ],
            stats_error: None,
            dispatch: vec![DispatchCost {
                method: "raw_tracepoint".into(),
                ns_per_run: 40.0,
                min_ns: 38.0,
                max_ns: 45.0,
                rounds: 9,
                calls_per_round: 20_000,
            }],
            dispatch_error: None,
        });
        rec
    }

    #[test]
    fn cost_counts_pcp_runs_and_zone_lock_contention_ends() {
        let rec = recording();
        let c = cost_of(&rec);
        // 1000 + 990 PCP runs, 30 of the 40 contention_end runs (zone-lock contentions).
        assert_eq!(c.in_lock_program_runs, 2_020);
        // Programs: 31,000 + 29,700 ns, and 30 × (8,000 / 40) = 6,000 ns; dispatch: 2,020
        // raw tracepoint runs × 40 ns = 80,800 ns.
        assert_eq!(c.in_lock_ns, Some(147_500));
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
        assert!(
            close(c.ns_per_run, 147_500.0 / 2_020.0),
            "{:?}",
            c.ns_per_run
        );
        assert!(close(c.program_ns_per_run, 66_700.0 / 2_020.0));
        assert!(close(c.dispatch_ns_per_run, 40.0));
        // Zone-lock wait of the sample: 6 + 12 + 0.5 ms (the rq lock is not a zone lock).
        assert!(close(
            c.pct_of_zone_lock_wait,
            100.0 * 147_500.0 / 18_500_000.0
        ));
        assert_eq!(c.reason, None);
        let end = c
            .programs
            .iter()
            .find(|p| p.program == "raw_contention_end")
            .expect("contention_end listed");
        assert_eq!((end.in_lock_runs, end.ns_per_run), (30, Some(200.0)));
        let begin = c
            .programs
            .iter()
            .find(|p| p.probe == "contention_begin")
            .expect("contention_begin listed");
        assert_eq!(
            begin.in_lock_runs, 0,
            "contention_begin runs before the lock is held"
        );
    }

    #[test]
    fn classifier_count_stands_in_without_the_address_proof() {
        let mut rec = recording();
        rec.counters.zone_contentions = 0;
        // The sample's zone-lock waits: 3 rows of 10 contentions on the proven address.
        assert_eq!(cost_of(&rec).in_lock_program_runs, 1_990 + 30);
        rec.zones.clear();
        // Without the zone table the two stacks the classifier knows still count.
        assert_eq!(cost_of(&rec).in_lock_program_runs, 1_990 + 20);
    }

    #[test]
    fn failed_stats_leave_times_null_with_the_reason() {
        let mut rec = recording();
        rec.observer = Some(ObserverStats {
            programs: vec![],
            stats_error: Some("BPF_ENABLE_STATS: EINVAL".into()),
            dispatch: vec![],
            dispatch_error: None,
        });
        let c = cost_of(&rec);
        assert_eq!(c.ns_per_run, None);
        assert_eq!(c.in_lock_ns, None);
        assert_eq!(c.pct_of_zone_lock_wait, None);
        assert_eq!(c.reason.as_deref(), Some("BPF_ENABLE_STATS: EINVAL"));
        // Runs fall back to the events recorded: 1000 refills, 990 drains, 30 contentions.
        assert_eq!(c.in_lock_program_runs, 2_020);
        let line = describe(&c, &PcpMethod::of(&rec.probes));
        assert!(
            line.contains("time unknown: BPF_ENABLE_STATS: EINVAL"),
            "{line}"
        );

        rec.observer = None;
        let c = cost_of(&rec);
        assert!(c.reason.is_some_and(|r| r.contains("no run-time stats")));
    }

    #[test]
    fn runs_by_an_unmeasured_method_count_their_program_time_only() {
        let mut rec = recording();
        // contention_end attached as a classic tracepoint, whose dispatch was not measured.
        if let Some(p) = rec.probes.iter_mut().find(|p| p.name == "contention_end") {
            p.method = "tracepoint".into();
        }
        if let Some(o) = rec.observer.as_mut() {
            o.dispatch_error = Some("dispatch cost not measured: tracepoint: EPERM".into());
        }
        let c = cost_of(&rec);
        // 1,990 per-page runs get the 40 ns; the 30 contention_end runs do not.
        assert_eq!(c.in_lock_ns, Some(66_700 + 1_990 * 40));
        assert_eq!(c.dispatch_ns_per_run, None);
        let why = c.reason.clone().expect("reason");
        assert!(
            why.contains("runs attached by tracepoint") && why.contains("EPERM"),
            "{why}"
        );
        let line = describe(&c, &PcpMethod::of(&rec.probes));
        assert!(
            line.contains("(program time only: dispatch not measured)"),
            "{line}"
        );

        // Measured, but not for this method, and no error recorded.
        if let Some(o) = rec.observer.as_mut() {
            o.dispatch_error = None;
        }
        let why = cost_of(&rec).reason.expect("reason");
        assert!(why.ends_with("measured only for raw_tracepoint"), "{why}");

        // A recording from before the dispatch was measured says so.
        if let Some(o) = rec.observer.as_mut() {
            o.dispatch.clear();
            o.dispatch_error = None;
        }
        let c = cost_of(&rec);
        assert_eq!(c.in_lock_ns, Some(66_700));
        assert!(
            c.reason.is_some_and(
                |r| r.contains("no dispatch measurement") && r.contains("raw_tracepoint")
            )
        );
    }

    #[test]
    fn no_zone_lock_wait_leaves_the_share_null() {
        let mut rec = recording();
        rec.lock_waits
            .retain(|w| w.lock_addr != 0xffff_8886_3ffd_6b08);
        rec.counters.zone_contentions = 0;
        let c = cost_of(&rec);
        assert_eq!(c.in_lock_program_runs, 1_990);
        assert_eq!(c.in_lock_ns, Some(60_700 + 1_990 * 40));
        assert_eq!(c.pct_of_zone_lock_wait, None);
        assert!(describe(&c, &PcpMethod::of(&rec.probes)).contains("no zone-lock wait recorded"));
    }

    #[test]
    fn pcp_method_prefers_page_then_batch() {
        let mut rec = recording();
        let m = PcpMethod::of(&rec.probes);
        assert_eq!((m.refill, m.drain), (PcpCount::Page, PcpCount::Page));
        rec.probes = vec![
            probe("pcp_refill", false),
            probe("rmqueue_pcplist", true),
            probe("pcp_drain", true),
            probe("free_pcppages_bulk", true),
        ];
        let m = PcpMethod::of(&rec.probes);
        assert_eq!((m.refill, m.drain), (PcpCount::Batch, PcpCount::Page));
        rec.probes = vec![
            probe("pcp_drain", false),
            probe("free_pcppages_bulk", false),
        ];
        let m = PcpMethod::of(&rec.probes);
        assert_eq!((m.refill, m.drain), (PcpCount::Off, PcpCount::Off));
        assert_eq!(
            serde_json::to_value(m).expect("json"),
            serde_json::json!({"refill": "off", "drain": "off"})
        );
    }

    #[test]
    fn line_states_runs_time_share_and_methods() {
        let rec = recording();
        let c = cost_of(&rec);
        let line = describe(
            &c,
            &PcpMethod {
                refill: PcpCount::Page,
                drain: PcpCount::Batch,
            },
        );
        assert_eq!(
            line,
            "2,020 program runs × 73 ns (33 ns program + 40 ns dispatch) = 147.5 µs added hold \
             time (0.8 % of the zone-lock wait recorded); PCP pages counted per page (refill) / \
             per batch (drain)"
        );
        assert!(describe(&c, &PcpMethod::of(&rec.probes)).ends_with("per page (refill and drain)"));
    }
}
