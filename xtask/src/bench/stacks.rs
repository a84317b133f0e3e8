//! Whole-machine `perf record -a -g` samples, read back from `perf script -F event,ip,sym`,
//! sorted into the page allocator's refill and drain paths and into zoneprof's programs that
//! run under `zone->lock`.
//!
//! `perf script -F event,ip,sym` prints one sample as a header line (`cpu-clock:pppH: `)
//! followed by its call chain, leaf first, one tab-indented `ADDRESS SYMBOL` line per frame,
//! and a blank line.

/// One sample: the event that took it and its kernel frames, leaf first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample<'a> {
    pub event: &'a str,
    pub frames: Vec<&'a str>,
}

/// The samples of a `perf script -F event,ip,sym` output.
pub fn samples(text: &str) -> Vec<Sample<'_>> {
    let mut out = Vec::new();
    let mut cur: Option<Sample<'_>> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            out.extend(cur.take());
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            // `\t ffffffff822010c9 _raw_spin_unlock_irqrestore`; the symbol may contain
            // spaces (C++ user frames), so everything after the address is the symbol.
            let Some(s) = cur.as_mut() else { continue };
            let t = line.trim();
            let sym = t
                .split_once(char::is_whitespace)
                .map_or("", |(_, s)| s.trim());
            s.frames.push(sym);
        } else {
            out.extend(cur.take());
            // `cpu-clock:pppH: ` -> `cpu-clock` (the modifiers and the colon go).
            let event = line.split(':').next().unwrap_or("").trim();
            cur = Some(Sample {
                event,
                frames: Vec::new(),
            });
        }
    }
    out.extend(cur);
    out
}

/// `__rmqueue_pcplist+0x45` / `rmqueue_bulk.isra.0` / `foo.cold` -> the function's name.
pub fn base_name(sym: &str) -> &str {
    let s = sym.split('+').next().unwrap_or(sym);
    // Compiler clones keep the name before the first dot; kernel C names have none.
    s.split('.').next().unwrap_or(s)
}

/// `bpf_prog_91c2df79d75b244b_raw_page_pcpu_drain` -> `raw_page_pcpu_drain`: the JIT's
/// symbol for a BPF program is its tag (16 hex digits) and its name.
pub fn bpf_prog_name(sym: &str) -> Option<&str> {
    let rest = sym.split('+').next()?.strip_prefix("bpf_prog_")?;
    let (tag, name) = rest.split_once('_')?;
    (tag.len() == 16 && tag.bytes().all(|b| b.is_ascii_hexdigit()) && !name.is_empty())
        .then_some(name)
}

/// What to look for in the stacks.
#[derive(Debug, Clone, Default)]
pub struct Matchers {
    /// Functions that enclose the PCP refill's locked section (`__rmqueue_pcplist`).
    pub refill: Vec<String>,
    /// Functions that enclose the PCP drain's locked section (`free_pcppages_bulk`).
    pub drain: Vec<String>,
    /// `free_pcppages_bulk` ends by jumping to the unlock (a tail call), so its frame is gone
    /// from a sample taken there; a leaf `unlock` directly under one of `drain_callers` is
    /// the end of the drain's locked section. With a software clock (no PMU), every sample
    /// due while interrupts were off lands exactly there, at the `irqrestore`.
    pub unlock: String,
    pub drain_callers: Vec<String>,
    /// Programs that run only with `zone->lock` held (the per-page PCP programs).
    pub in_lock_progs: Vec<String>,
    /// Programs that run under the lock only some of the time (`contention_end`: after a
    /// zone-lock contention): counted as in the lock when the sample is in a refill or drain
    /// path.
    pub partly_in_lock_progs: Vec<String>,
    /// Tracepoints of the in-lock programs (`mm_page_pcpu_drain`): a sample under
    /// `__traceiter_<ev>`, `__bpf_trace_<ev>` or `perf_trace_<ev>` is in the tracepoint's
    /// dispatch or in a program it runs.
    pub in_lock_events: Vec<String>,
}

/// Sample counts of one perf recording.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// The sampling event (`cpu-clock` without a hardware PMU).
    pub event: String,
    pub total: u64,
    pub refill: u64,
    pub drain: u64,
    /// In either path (a sample in both counts once).
    pub paths: u64,
    /// Of `paths`: the leaf is the unlock, where deferred samples of the locked section land.
    pub paths_at_unlock: u64,
    /// In one of zoneprof's in-lock programs (its JIT symbol on the stack).
    pub in_lock_prog: u64,
    /// In an in-lock program or in the dispatch of its tracepoint.
    pub in_lock_dispatch: u64,
}

impl Counts {
    pub fn pct(&self, n: u64) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            n as f64 / self.total as f64 * 100.0
        }
    }
}

impl Matchers {
    fn in_path(&self, frames: &[&str]) -> (bool, bool) {
        let has = |names: &[String]| {
            frames
                .iter()
                .any(|f| names.iter().any(|n| n == base_name(f)))
        };
        let refill = has(&self.refill);
        let tail = frames.len() >= 2
            && base_name(frames[0]) == self.unlock
            && self.drain_callers.iter().any(|c| c == base_name(frames[1]));
        let drain = has(&self.drain) || tail;
        (refill, drain)
    }

    fn in_lock_prog(&self, frames: &[&str], in_path: bool) -> bool {
        frames.iter().filter_map(|f| bpf_prog_name(f)).any(|p| {
            self.in_lock_progs.iter().any(|n| n == p)
                || (in_path && self.partly_in_lock_progs.iter().any(|n| n == p))
        })
    }

    fn in_dispatch(&self, frames: &[&str]) -> bool {
        frames.iter().map(|f| base_name(f)).any(|f| {
            ["__traceiter_", "__bpf_trace_", "perf_trace_"]
                .iter()
                .filter_map(|p| f.strip_prefix(p))
                .any(|ev| self.in_lock_events.iter().any(|e| e == ev))
        })
    }

    /// Counts the samples of a `perf script -F event,ip,sym` output.
    pub fn count(&self, text: &str) -> Counts {
        let mut c = Counts::default();
        for s in samples(text) {
            if c.event.is_empty() {
                c.event = s.event.to_string();
            }
            c.total += 1;
            let (refill, drain) = self.in_path(&s.frames);
            c.refill += u64::from(refill);
            c.drain += u64::from(drain);
            let in_path = refill || drain;
            c.paths += u64::from(in_path);
            c.paths_at_unlock += u64::from(
                in_path
                    && s.frames
                        .first()
                        .is_some_and(|f| base_name(f) == self.unlock),
            );
            let prog = self.in_lock_prog(&s.frames, in_path);
            c.in_lock_prog += u64::from(prog);
            c.in_lock_dispatch += u64::from(prog || self.in_dispatch(&s.frames));
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shapes taken from `perf script -F event,ip,sym` on Linux 6.18 (cpu-clock, no PMU) and
    /// the JIT symbols of zoneprof's programs.
    const SCRIPT: &str = "cpu-clock:pppH: \n\
\tffffffff822010c9 _raw_spin_unlock_irqrestore\n\
\tffffffff8161ab75 __rmqueue_pcplist\n\
\tffffffff8161cbfe get_page_from_freelist\n\
\t          2bdeda zoneprof::workload::pair::Chunk::map_and_touch\n\
\n\
cpu-clock:pppH: \n\
\tffffffff822010c9 _raw_spin_unlock_irqrestore\n\
\tffffffff81616b8d free_frozen_page_commit\n\
\tffffffff81616dd0 __free_frozen_pages\n\
\n\
cpu-clock:pppH: \n\
\tffffffffc0012345 bpf_prog_91c2df79d75b244b_raw_page_pcpu_drain\n\
\tffffffff81300000 bpf_trace_run3\n\
\tffffffff81616500 free_pcppages_bulk\n\
\tffffffff81616b8d free_frozen_page_commit\n\
\n\
cpu-clock:pppH: \n\
\tffffffff81300000 bpf_trace_run4\n\
\tffffffff81300100 __bpf_trace_mm_page_alloc_zone_locked\n\
\tffffffff81610000 __rmqueue_smallest.isra.0\n\
\tffffffff8161ab75 __rmqueue_pcplist\n\
\n\
cpu-clock:pppH: \n\
\tffffffffc0022222 bpf_prog_aaaaaaaaaaaaaaaa_raw_contention_end\n\
\tffffffff81300000 bpf_trace_run2\n\
\tffffffff81400000 queued_spin_lock_slowpath\n\
\tffffffff81400100 mutex_lock\n\
\n\
cpu-clock:pppH: \n\
\tffffffffc0022222 bpf_prog_aaaaaaaaaaaaaaaa_raw_contention_end\n\
\tffffffff81400000 queued_spin_lock_slowpath\n\
\tffffffff8161ab75 __rmqueue_pcplist\n\
\n\
cpu-clock:pppH: \n\
\t          4a5d08 (anonymous namespace)::MachineBlockPlacement::buildChain\n\
\t    7f5e605a0488 [unknown]\n\
\n\
cpu-clock:pppH: \n\
\tffffffff822010c9 _raw_spin_unlock_irqrestore\n\
\tffffffff81615aa0 free_one_page\n";

    fn matchers() -> Matchers {
        Matchers {
            refill: vec!["__rmqueue_pcplist".into()],
            drain: vec!["free_pcppages_bulk".into()],
            unlock: "_raw_spin_unlock_irqrestore".into(),
            drain_callers: vec!["free_frozen_page_commit".into()],
            in_lock_progs: vec![
                "raw_page_alloc_zone_locked".into(),
                "raw_page_pcpu_drain".into(),
            ],
            partly_in_lock_progs: vec!["raw_contention_end".into()],
            in_lock_events: vec![
                "mm_page_alloc_zone_locked".into(),
                "mm_page_pcpu_drain".into(),
            ],
        }
    }

    #[test]
    fn script_splits_into_samples() {
        let s = samples(SCRIPT);
        assert_eq!(s.len(), 8);
        assert_eq!(s[0].event, "cpu-clock");
        assert_eq!(
            s[0].frames[..2],
            ["_raw_spin_unlock_irqrestore", "__rmqueue_pcplist"]
        );
        assert_eq!(
            s[6].frames[0],
            "(anonymous namespace)::MachineBlockPlacement::buildChain"
        );
        // No trailing blank line: the last sample still counts.
        assert_eq!(samples("cycles: \n\tffff01 a\n\tffff02 b").len(), 1);
        assert!(samples("").is_empty());
    }

    #[test]
    fn symbol_names() {
        assert_eq!(base_name("rmqueue_bulk.isra.0"), "rmqueue_bulk");
        assert_eq!(base_name("__rmqueue_pcplist+0x45"), "__rmqueue_pcplist");
        assert_eq!(
            bpf_prog_name("bpf_prog_91c2df79d75b244b_raw_page_pcpu_drain"),
            Some("raw_page_pcpu_drain")
        );
        assert_eq!(
            bpf_prog_name("bpf_prog_91c2df79d75b244b_raw_page_pcpu_drain+0x3c"),
            Some("raw_page_pcpu_drain")
        );
        // Not a tag: too short, or not hex.
        assert_eq!(bpf_prog_name("bpf_prog_short_x"), None);
        assert_eq!(bpf_prog_name("bpf_prog_zzzzzzzzzzzzzzzz_x"), None);
        assert_eq!(bpf_prog_name("bpf_prog_91c2df79d75b244b_"), None);
        assert_eq!(bpf_prog_name("bpf_trace_run2"), None);
    }

    #[test]
    fn shares_of_paths_and_in_lock_programs() {
        let c = matchers().count(SCRIPT);
        assert_eq!(c.event, "cpu-clock");
        assert_eq!(c.total, 8);
        // Samples 1, 4, 6 (__rmqueue_pcplist on the stack).
        assert_eq!(c.refill, 3);
        // Sample 2 by the tail-called unlock, 3 by its frame; free_one_page is not the drain.
        assert_eq!(c.drain, 2);
        assert_eq!(c.paths, 5);
        assert_eq!(c.paths_at_unlock, 2);
        // Sample 3 (per-page drain program) and 6 (contention_end within the refill path);
        // sample 5's contention_end is on a mutex, not in zone->lock.
        assert_eq!(c.in_lock_prog, 2);
        // Plus sample 4: in the tracepoint's dispatch, above no program frame.
        assert_eq!(c.in_lock_dispatch, 3);
        assert!((c.pct(c.refill) - 37.5).abs() < 1e-9);
        assert_eq!(Counts::default().pct(1), 0.0);
    }

    #[test]
    fn nothing_in_lock_without_in_lock_programs() {
        let m = Matchers {
            in_lock_progs: vec![],
            partly_in_lock_progs: vec![],
            in_lock_events: vec![],
            ..matchers()
        };
        let c = m.count(SCRIPT);
        assert_eq!((c.in_lock_prog, c.in_lock_dispatch), (0, 0));
        assert_eq!(c.paths, 5);
    }
}
