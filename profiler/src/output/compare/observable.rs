//! What a recording could observe: a metric it could not is `null`, never 0.
use crate::{
    kernel::probes::name,
    model::recording::{PcpCount, PcpMethod, Recording},
};

/// Probes that see SKB frees (see probes.rs).
const SKB_FREE_PROBES: &[&str] = &[
    name::CONSUME_SKB,
    name::KFREE_SKB,
    name::SKB_ATTEMPT_DEFER_FREE,
];

/// What a recording could observe (its probes attached, or it holds the data).
#[derive(Debug, Clone, Copy)]
pub struct Observable {
    pub locks: bool,
    pub refill: bool,
    pub drain: bool,
    pub skb: bool,
    /// `skb_attempt_defer_free` itself was probed (calls, deferred vs immediate).
    pub defer: bool,
    /// Deferred-list flushes (consume_skb from the flush path) and their IPIs were watched.
    pub defer_cost: bool,
    pub skb_matrix: bool,
    pub page_matrix: bool,
}

impl Observable {
    pub fn of(rec: &Recording) -> Observable {
        let any = |names: &[&str]| names.iter().any(|n| rec.attached(n));
        // Pages are counted per page or per batch: either way the side was watched.
        let m = PcpMethod::of(&rec.probes);
        Observable {
            locks: !rec.lock_waits.is_empty() || rec.attached(name::CONTENTION_END),
            refill: rec.pcp.iter().any(|p| p.refill_pages > 0) || m.refill != PcpCount::Off,
            drain: rec.pcp.iter().any(|p| p.drain_pages > 0) || m.drain != PcpCount::Off,
            skb: !rec.skb_sites.is_empty() || any(SKB_FREE_PROBES),
            defer: rec.skb_defer.iter().any(|d| d.calls > 0)
                || rec.attached(name::SKB_ATTEMPT_DEFER_FREE),
            defer_cost: any(&[name::SKB_DEFER_IPI, name::CONSUME_SKB]),
            skb_matrix: !rec.skb_matrix.is_empty() || any(SKB_FREE_PROBES),
            page_matrix: !rec.page_matrix.is_empty() || rec.page_tracking.is_some(),
        }
    }
}
