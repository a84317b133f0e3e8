//! Derived views of a recording shared by report, flamegraph and compare: every lock wait
//! classified once (stack classifier, confirmed by the kernel's zone-address proof), and
//! per-CPU sums split by side. Sums saturate (a recording may hold any u64, `units::SatSum`).
use std::collections::BTreeMap;

use crate::{
    model::classify::{self, FreeTrigger, LockClass, Side},
    model::recording::{LockWait, Recording},
};

/// A lock wait with its class.
pub struct ClassifiedWait<'a> {
    pub wait: &'a LockWait,
    pub class: LockClass,
    /// The zone the kernel proved this lock address to be, if any.
    pub zone: Option<String>,
}

pub fn trigger_name(t: FreeTrigger) -> &'static str {
    match t {
        FreeTrigger::PcpHigh => "pcp_high",
        FreeTrigger::DrainAllPages => "drain_all_pages",
        FreeTrigger::Decay => "decay",
        FreeTrigger::NumaDrain => "numa_drain",
        FreeTrigger::Direct => "direct",
        FreeTrigger::Unknown => "unknown",
    }
}

pub fn trigger_label(t: FreeTrigger) -> &'static str {
    match t {
        FreeTrigger::PcpHigh => "PCP list over high on free (cross-CPU symptom)",
        FreeTrigger::DrainAllPages => "drain_all_pages",
        FreeTrigger::Decay => "PCP high decay (vmstat)",
        FreeTrigger::NumaDrain => "NUMA PCP expiry",
        FreeTrigger::Direct => "direct buddy free (no PCP)",
        FreeTrigger::Unknown => "unknown trigger",
    }
}

/// Classifies every wait of `rec`. Each distinct stack is classified once.
pub fn classify_waits(rec: &Recording) -> Vec<ClassifiedWait<'_>> {
    // Indexed by stack number: a map lookup per wait cost a quarter of this function on a
    // 640-CPU recording (125,000 waits over 50,000 stacks).
    let mut cache: Vec<Option<LockClass>> = vec![None; rec.stacks.len()];
    rec.lock_waits
        .iter()
        .map(|w| {
            let zone = rec.zone_by_addr(w.lock_addr).map(|z| z.label());
            let classify = |s: u32| classify::classify(&rec.stack_frames(s)).class;
            let from_stack = match w.stack {
                Some(s) => match cache.get_mut(s as usize) {
                    Some(c) => c.get_or_insert_with(|| classify(s)).clone(),
                    // Beyond the stack table (validation rules it out): no frames to cache.
                    None => classify(s),
                },
                None => LockClass::Unknown,
            };
            // The address proof wins over the stack: a proven zone lock is a zone lock even
            // when the stack is missing or its taker is not in the classifier's table.
            let class = if zone.is_some() && !from_stack.is_zone() {
                LockClass::ZoneOther(match &from_stack {
                    LockClass::Unknown => "stack unavailable".to_string(),
                    other => other.label(),
                })
            } else {
                from_stack
            };
            ClassifiedWait {
                wait: w,
                class,
                zone,
            }
        })
        .collect()
}

/// Zone-lock wait split by side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SideNs {
    pub alloc: u64,
    pub free: u64,
    /// Zone lock taken by neither path (compaction, zoneinfo readers, unknown stack, ...).
    pub other: u64,
}

impl SideNs {
    pub fn total(&self) -> u64 {
        self.alloc
            .saturating_add(self.free)
            .saturating_add(self.other)
    }

    pub fn add(&mut self, class: &LockClass, ns: u64) {
        let sum = match class.side() {
            Some(Side::Alloc) => &mut self.alloc,
            Some(Side::Free) => &mut self.free,
            None if class.is_zone() => &mut self.other,
            None => return,
        };
        *sum = sum.saturating_add(ns);
    }
}

/// Per-CPU zone-lock wait and other-lock wait.
#[derive(Debug, Clone, Default)]
pub struct CpuWait {
    pub zone: SideNs,
    pub other_ns: u64,
    pub contentions: u64,
}

pub fn per_cpu_wait(waits: &[ClassifiedWait<'_>]) -> BTreeMap<u32, CpuWait> {
    let mut out: BTreeMap<u32, CpuWait> = BTreeMap::new();
    for cw in waits {
        let e = out.entry(cw.wait.cpu).or_default();
        e.contentions = e.contentions.saturating_add(cw.wait.count);
        if cw.class.is_zone() {
            e.zone.add(&cw.class, cw.wait.total_ns);
        } else {
            e.other_ns = e.other_ns.saturating_add(cw.wait.total_ns);
        }
    }
    out
}

pub fn zone_totals(waits: &[ClassifiedWait<'_>]) -> SideNs {
    let mut s = SideNs::default();
    for cw in waits {
        s.add(&cw.class, cw.wait.total_ns);
    }
    s
}
