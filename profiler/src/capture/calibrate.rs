//! What the kernel adds around each run of a zoneprof program, beyond the program's own time.
//!
//! The BPF run-time stats time a program between two clock reads inside `bpf_prog_run`. A
//! program run under `zone->lock` costs the lock more: the tracepoint's dispatch (its static
//! call, `__bpf_trace_<event>`, `bpf_trace_run*` with its recursion guard and RCU section, or
//! the perf record of a classic tracepoint) and the stats' own clock reads. The observer
//! bench measured that rest at about as much again as the program itself on this VM.
//!
//! So each recording measures it, at its start, on its host: it times a call it makes itself,
//! `prctl(PR_SET_NAME)` with the thread's own name, which fires `task:task_rename` and changes
//! nothing, without and with an empty program attached to that tracepoint in the same way as
//! the in-lock programs. The difference per call, less the empty program's own time from the
//! stats, is the dispatch cost of one run. Each timing keeps the fastest of many short batches
//! (other work on the host can only slow a batch down), rounds alternate the order of the two
//! timings, and the median round is kept. It takes well under 0.1 s per method, on one CPU.
use std::time::Instant;

use aya::{
    Ebpf,
    programs::{ProgramError, RawTracePoint, TracePoint},
};

use crate::model::recording::DispatchCost;

/// The empty programs (profiler-ebpf `main.rs`).
const RAW_NOP: &str = "calib_raw_nop";
const TP_NOP: &str = "calib_tp_nop";
/// Rounds, each a timing without and one with the empty program.
const ROUNDS: usize = 15;
/// Each timing is the fastest of this many batches ...
const BATCHES: usize = 40;
/// ... of this many calls: tens of microseconds, well inside a time slice.
const BATCH_CALLS: u32 = 200;

#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error("program {0} missing from the eBPF object")]
    Missing(&'static str),
    #[error("{program}: {source}")]
    Program {
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("prctl(PR_SET_NAME) failed: {0}")]
    Prctl(std::io::Error),
    #[error(
        "task:task_rename fired {runs} times for {calls} calls, so it does not fire on prctl here"
    )]
    NotFired { runs: u64, calls: u64 },
    #[error("run-time stats of {0} unreadable: {1}")]
    Stats(&'static str, ProgramError),
}

/// The dispatch cost of each attach method in `methods` (`raw_tracepoint`, `tracepoint`)
/// that the in-lock programs use; call with the BPF run-time stats on and before the probes
/// attach. The empty programs are unloaded again. A method that cannot be measured gives
/// its reason instead.
pub fn dispatch_costs(
    ebpf: &mut Ebpf,
    methods: &[&str],
) -> (Vec<DispatchCost>, Vec<(String, CalibrateError)>) {
    let mut costs = Vec::new();
    let mut errors = Vec::new();
    let name = match thread_name() {
        Ok(n) => n,
        Err(e) => {
            let method = methods.first().copied().unwrap_or("raw_tracepoint");
            return (costs, vec![(method.to_string(), e)]);
        }
    };
    let pinned = Pinned::here();
    for &method in methods {
        let result = match method {
            "raw_tracepoint" => measure(ebpf, RAW_NOP, &name, Nop::Raw),
            "tracepoint" => measure(ebpf, TP_NOP, &name, Nop::Classic),
            _ => continue,
        };
        match result {
            Ok(mut c) => {
                c.method = method.to_string();
                costs.push(c);
            }
            Err(e) => errors.push((method.to_string(), e)),
        }
    }
    drop(pinned);
    (costs, errors)
}

#[derive(Clone, Copy)]
enum Nop {
    Raw,
    Classic,
}

fn measure(
    ebpf: &mut Ebpf,
    program: &'static str,
    name: &[u8; 16],
    kind: Nop,
) -> Result<DispatchCost, CalibrateError> {
    let err = |source| CalibrateError::Program { program, source };
    let prog = ebpf
        .program_mut(program)
        .ok_or(CalibrateError::Missing(program))?;
    match kind {
        Nop::Raw => {
            let p: &mut RawTracePoint = prog.try_into().map_err(err)?;
            p.load().map_err(err)?;
        }
        Nop::Classic => {
            let p: &mut TracePoint = prog.try_into().map_err(err)?;
            p.load().map_err(err)?;
        }
    }
    let result = rounds(ebpf, program, name, kind);
    let unloaded = ebpf
        .program_mut(program)
        .map_or(Ok(()), crate::kernel::attach::try_unload);
    if let Err(e) = unloaded {
        // Detached already: a loaded empty program costs nothing until the object is dropped.
        eprintln!("zoneprof: calibration program {program} stays loaded: {e}");
    }
    result
}

fn rounds(
    ebpf: &mut Ebpf,
    program: &'static str,
    name: &[u8; 16],
    kind: Nop,
) -> Result<DispatchCost, CalibrateError> {
    // Warm up the path.
    time_calls(name, BATCH_CALLS)?;
    let mut deltas = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let fastest = || fastest_call(name);
        let (off, on) = if round % 2 == 0 {
            let off = fastest()?;
            (off, with_nop(ebpf, program, kind, fastest)?)
        } else {
            let on = with_nop(ebpf, program, kind, fastest)?;
            (fastest()?, on)
        };
        deltas.push(on - off);
    }

    let info = ebpf
        .program(program)
        .ok_or(CalibrateError::Missing(program))?
        .info()
        .map_err(|e| CalibrateError::Stats(program, e))?;
    let runs = info.run_count();
    let expected = (ROUNDS * BATCHES) as u64 * u64::from(BATCH_CALLS);
    // Other threads renaming themselves meanwhile add runs; fewer than our calls means the
    // tracepoint is not on this path.
    if runs < expected {
        return Err(CalibrateError::NotFired {
            runs,
            calls: expected,
        });
    }
    let nop_ns = info.run_time().as_nanos() as f64 / runs as f64;
    deltas.sort_by(f64::total_cmp);
    let less_nop = |d: f64| (d - nop_ns).max(0.0);
    Ok(DispatchCost {
        method: String::new(),
        ns_per_run: less_nop(deltas[ROUNDS / 2]),
        min_ns: less_nop(deltas[0]),
        max_ns: less_nop(deltas[ROUNDS - 1]),
        rounds: ROUNDS as u32,
        calls_per_round: (BATCHES as u32) * BATCH_CALLS,
    })
}

/// The time of one call, from the fastest of [`BATCHES`] short batches: a batch that was
/// preempted or interrupted is slower, never faster, so the fastest is the undisturbed cost
/// even on a busy host.
fn fastest_call(name: &[u8; 16]) -> Result<f64, CalibrateError> {
    let mut best = f64::INFINITY;
    for _ in 0..BATCHES {
        best = best.min(time_calls(name, BATCH_CALLS)?);
    }
    Ok(best / f64::from(BATCH_CALLS))
}

/// Runs `f` with the empty program attached to `task:task_rename`.
fn with_nop(
    ebpf: &mut Ebpf,
    program: &'static str,
    kind: Nop,
    f: impl FnOnce() -> Result<f64, CalibrateError>,
) -> Result<f64, CalibrateError> {
    let err = |source| CalibrateError::Program { program, source };
    let prog = ebpf
        .program_mut(program)
        .ok_or(CalibrateError::Missing(program))?;
    match kind {
        Nop::Raw => {
            let p: &mut RawTracePoint = prog.try_into().map_err(err)?;
            let link = p.attach("task_rename").map_err(err)?;
            let out = f();
            p.detach(link).map_err(err)?;
            out
        }
        Nop::Classic => {
            let p: &mut TracePoint = prog.try_into().map_err(err)?;
            let link = p.attach("task", "task_rename").map_err(err)?;
            let out = f();
            p.detach(link).map_err(err)?;
            out
        }
    }
}

/// Nanoseconds taken by `calls` renames of this thread to its own name.
fn time_calls(name: &[u8; 16], calls: u32) -> Result<f64, CalibrateError> {
    let start = Instant::now();
    for _ in 0..calls {
        // SAFETY: PR_SET_NAME reads a NUL-terminated name of at most 16 bytes from the
        // pointer; `name` is 16 bytes and ends in NUL (from PR_GET_NAME).
        let rc = unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
        if rc != 0 {
            return Err(CalibrateError::Prctl(std::io::Error::last_os_error()));
        }
    }
    Ok(start.elapsed().as_nanos() as f64)
}

/// This thread's name, as PR_SET_NAME takes it back.
fn thread_name() -> Result<[u8; 16], CalibrateError> {
    let mut name = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes, NUL included, into the buffer given.
    let rc = unsafe {
        libc::prctl(
            libc::PR_GET_NAME,
            name.as_mut_ptr() as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc != 0 {
        return Err(CalibrateError::Prctl(std::io::Error::last_os_error()));
    }
    name[15] = 0;
    Ok(name)
}

/// This thread pinned to the CPU it is on while it lives, so that no migration lands in a
/// timing; the previous affinity comes back on drop.
struct Pinned {
    previous: Option<libc::cpu_set_t>,
}

impl Pinned {
    fn here() -> Pinned {
        let none = Pinned { previous: None };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: sched_getcpu takes no arguments and touches no memory of ours.
        let cpu = unsafe { libc::sched_getcpu() };
        let Ok(cpu) = usize::try_from(cpu) else {
            return none;
        };
        // SAFETY: cpu_set_t is plain data (a bit array): all zeroes is a valid, empty set.
        let mut previous: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: writes exactly one cpu_set_t, of the size given, into `previous`.
        if unsafe { libc::sched_getaffinity(0, size, &mut previous) } != 0 {
            return none;
        }
        // SAFETY: as above, an empty set.
        let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: sets one bit of a valid set; `cpu` came from the kernel, below CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu, &mut one) };
        // SAFETY: reads exactly one cpu_set_t, of the size given.
        if unsafe { libc::sched_setaffinity(0, size, &one) } != 0 {
            return none;
        }
        Pinned {
            previous: Some(previous),
        }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(previous) = &self.previous {
            // SAFETY: restores the affinity read in `here`, a valid cpu_set_t.
            unsafe {
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), previous);
            }
        }
    }
}
