//! `--tasks`: which thread waited or freed. The thread id goes into the lock-wait and
//! SKB-site keys; who that thread is (process, cgroup, comm) is noted here once per thread,
//! at `contention_begin` or at the free, never with a lock held.
use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
};
use profiler_common::{NO_TASK, TaskInfo, counter};

use crate::{
    config,
    maps::{self, BPF_NOEXIST},
};

/// Whether `--tasks` is on.
#[inline(always)]
pub fn on() -> bool {
    config::get(&config::TASKS_ON) != 0
}

/// The key's thread id: this thread's with `--tasks`, else [`NO_TASK`].
#[inline(always)]
pub fn key_tid() -> u32 {
    if on() {
        // Lower 32 bits: the thread id.
        bpf_get_current_pid_tgid() as u32
    } else {
        NO_TASK
    }
}

/// Notes who this thread is, the first time it is seen (with `--tasks`). A thread that
/// later renames itself or moves cgroup keeps its first name: one lookup per event, not an
/// update.
#[inline(always)]
pub fn note() {
    if !on() {
        return;
    }
    let id = bpf_get_current_pid_tgid();
    let tid = id as u32;
    if maps::TASKS.get_ptr(tid).is_some() {
        return;
    }
    let info = TaskInfo {
        tgid: (id >> 32) as u32,
        _pad: 0,
        // SAFETY: helper with no preconditions (0 without cgroup v2).
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        comm: bpf_get_current_comm().unwrap_or_default(),
    };
    // -EEXIST when a nested program noted it first: fine. Anything else is a full map.
    if let Err(e) = maps::TASKS.insert(tid, info, BPF_NOEXIST)
        && e != -17
    {
        maps::count(counter::TASK_INFO_FULL, 1);
    }
}
