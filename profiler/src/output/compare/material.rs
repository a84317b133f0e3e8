//! What the verdict calls material: a sentence is written only for a change that passes
//! these rules, so the verdict lists what moved, zone-lock first, and not every number that
//! differs. docs/compare-json.md (`verdict`) says the same in words.
//!
//! - A rate moved when it changed by at least its floor (per second) **and** by
//!   [`MIN_CHANGE_PCT`] of its BEFORE value (any change from 0 counts as relative).
//! - A share (remote frees, the free-method mix, the defer ratio, a matrix's cross-CPU
//!   share, the share of zone-lock wait explained by cross-CPU frees) moved when it changed
//!   by [`MIN_POINTS`] percentage points **and** what it is a share of is at least its floor
//!   on one side: ten tiny frees turning remote are not a finding.
//! - Zone-lock wait, the subject, has a low floor ([`ZONE_WAIT_FLOOR_NS_PER_S`]), and a
//!   side above it is stated even when unchanged (that the fix did nothing is the finding).
//! - A stack of another lock is material only when it moved by [`OTHER_LOCK_FLOOR_NS_PER_S`]
//!   **and** held [`OTHER_LOCK_MIN_SHARE`] of all lock wait on the side where it was larger;
//!   zone-lock stacks need only the zone floor.
use super::{pair::Pair, rows::StackDelta};

/// A relative change under this (percent of BEFORE) is noise.
pub const MIN_CHANGE_PCT: f64 = 10.0;
/// A share changing by less than this (percentage points) did not move.
pub const MIN_POINTS: f64 = 10.0;
/// Zone-lock wait: 100 µs/s, 0.01 % of one CPU.
pub const ZONE_WAIT_FLOOR_NS_PER_S: f64 = 100e3;
/// Another lock's stack: 10 ms/s, 1 % of one CPU.
pub const OTHER_LOCK_FLOOR_NS_PER_S: f64 = 10e6;
/// …and this share of all lock wait (zone and other locks) on the side where it is larger.
pub const OTHER_LOCK_MIN_SHARE: f64 = 0.10;
/// PCP refills and drains, and the page matrix: 1,000 pages/s (4 MB/s).
pub const PCP_FLOOR_PAGES_PER_S: f64 = 1_000.0;
/// SKB frees, deferral calls and IPIs: 100/s.
pub const SKB_FLOOR_PER_S: f64 = 100.0;

/// The rate changed by at least `floor` and by [`MIN_CHANGE_PCT`] of BEFORE.
pub fn rate_moved(v: Pair<f64>, floor: f64) -> bool {
    let d = (v.after - v.before).abs();
    d > 0.0 && d >= floor && (v.before == 0.0 || 100.0 * d / v.before >= MIN_CHANGE_PCT)
}

/// The share (percent) changed by [`MIN_POINTS`], over a `volume` of at least `floor` per
/// second on one side.
pub fn share_moved(pct: Pair<f64>, volume: Pair<f64>, floor: f64) -> bool {
    (pct.after - pct.before).abs() >= MIN_POINTS && volume.max() >= floor
}

/// Zone-lock wait at a level worth stating, on either side.
pub fn zone_wait_material(ns_per_s: Pair<f64>) -> bool {
    ns_per_s.max() >= ZONE_WAIT_FLOOR_NS_PER_S
}

/// A lock-wait stack's move (`is_zone`: its lock is a zone lock) against all lock wait per
/// second of each recording.
pub fn stack_moved(s: &StackDelta, is_zone: bool, all_lock_wait: Pair<f64>) -> bool {
    let v = s.ns_per_s;
    if is_zone {
        return rate_moved(v, ZONE_WAIT_FLOOR_NS_PER_S);
    }
    // Its share on the side where it was larger.
    let (mine, all) = if v.before >= v.after {
        (v.before, all_lock_wait.before)
    } else {
        (v.after, all_lock_wait.after)
    };
    rate_moved(v, OTHER_LOCK_FLOOR_NS_PER_S) && all > 0.0 && mine / all >= OTHER_LOCK_MIN_SHARE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(b: f64, a: f64) -> Pair<f64> {
        Pair::new(b, a)
    }

    #[test]
    fn a_rate_must_pass_its_floor_and_the_relative_change() {
        // 5 % of a large rate: above the floor, under the relative change.
        assert!(!rate_moved(p(100_000.0, 105_000.0), 1_000.0));
        // 50 % of a tiny rate: the relative change, under the floor.
        assert!(!rate_moved(p(100.0, 150.0), 1_000.0));
        assert!(rate_moved(p(100_000.0, 80_000.0), 1_000.0));
        // From 0, only the floor applies.
        assert!(rate_moved(p(0.0, 1_000.0), 1_000.0));
        assert!(!rate_moved(p(0.0, 999.0), 1_000.0));
        // No change is never a move, whatever the floor.
        assert!(!rate_moved(p(0.0, 0.0), 0.0));
        assert!(!rate_moved(p(5.0, 5.0), 0.0));
    }

    #[test]
    fn a_share_must_move_ten_points_over_a_real_volume() {
        // netlink_broadcast_filtered in the demo: 5 frees/s, 0 % remote on both sides.
        assert!(!share_moved(p(0.0, 0.0), p(5.0, 6.0), SKB_FLOOR_PER_S));
        // Ten frees/s going all remote: a large move of nothing.
        assert!(!share_moved(p(0.0, 100.0), p(10.0, 10.0), SKB_FLOOR_PER_S));
        // tun_do_read: 3,795 frees/s, 100 % → 0 %.
        assert!(share_moved(
            p(100.0, 0.0),
            p(3_795.0, 21_778.0),
            SKB_FLOOR_PER_S
        ));
        // 5 points is not a move, whatever the volume.
        assert!(!share_moved(p(40.0, 45.0), p(1e6, 1e6), SKB_FLOOR_PER_S));
    }

    #[test]
    fn zone_wait_has_a_low_floor() {
        // 40 µs/s of zone-lock wait on either side is negligible; 426 µs/s (the loaded
        // demo) is not.
        assert!(!zone_wait_material(p(40_200.0, 0.0)));
        assert!(zone_wait_material(p(426_000.0, 0.0)));
        assert!(zone_wait_material(p(0.0, 100_000.0)));
    }

    fn stack(b: f64, a: f64) -> StackDelta {
        StackDelta {
            stack: "[x];y".into(),
            ns_per_s: p(b, a),
        }
    }

    #[test]
    fn another_lock_needs_one_percent_of_a_cpu_and_a_share_of_the_wait() {
        let all = p(15.2e6, 1.1e6);
        // The demo's wait-queue lock stack, 60 µs/s → 0: not material, on any lock.
        let wq = stack(60.5e3, 0.0);
        assert!(!stack_moved(&wq, false, all));
        assert!(!stack_moved(&wq, true, all));
        // The demo's mmap_lock drop, 8.2 ms/s: under 1 % of a CPU.
        assert!(!stack_moved(&stack(8.2e6, 0.0), false, all));
        // A zone-lock stack moving 201 µs/s is material.
        assert!(stack_moved(&stack(201.1e3, 0.0), true, all));
        // 82.7 ms/s of mmap_lock, 41 % of all lock wait: material.
        assert!(stack_moved(
            &stack(82.7e6, 0.0),
            false,
            p(200.4e6 + 1.8e6, 8.6e6)
        ));
        // 20 ms/s, but 2 % of 1 s/s of lock wait: a small part of a busy host's waiting.
        assert!(!stack_moved(&stack(20e6, 0.0), false, p(1e9, 1e9)));
        // Its share is taken where it was larger: a rise is weighed against AFTER.
        assert!(stack_moved(&stack(0.0, 20e6), false, p(1e9, 100e6)));
    }
}
