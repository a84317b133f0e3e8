//! One alloc/free pair, run in the current process.

use std::io::{self, Write};
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};
use std::sync::mpsc::{self, SendError};
use std::thread;
use std::time::{Duration, Instant};

use super::{CHANNEL_DEPTH, PAIR_RESULT_PREFIX, PairOpts, WorkloadError, validate_common};
use crate::kernel::cpulist::MAX_CPUS;

/// What one pair did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairCounts {
    pub alloc_bytes: u64,
    pub freed_bytes: u64,
    pub elapsed: Duration,
}

/// Restricts the calling thread to `cpu`. Fails (never panics) for CPUs that are offline,
/// absent, outside this task's cpuset, or beyond 65535.
pub fn pin_current_thread(cpu: u32) -> Result<(), WorkloadError> {
    if cpu as usize >= MAX_CPUS {
        return Err(WorkloadError::CpuOutOfRange(cpu));
    }
    // Build the mask ourselves: libc's cpu_set_t holds only 1024 CPUs and CPU_SET indexes
    // out of bounds beyond that. The kernel reads the mask as an array of longs.
    let bits = libc::c_ulong::BITS as usize;
    let cpu = cpu as usize;
    let mut mask: Vec<libc::c_ulong> = vec![0; cpu / bits + 1];
    mask[cpu / bits] |= 1 << (cpu % bits);
    let size = std::mem::size_of_val(mask.as_slice());
    // SAFETY: `mask` is a live buffer of exactly `size` bytes; the kernel reads only
    // `size` bytes through the pointer (glibc passes it through to the syscall), so the
    // cast to cpu_set_t never reads beyond the buffer. pid 0 = the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, size, mask.as_ptr().cast::<libc::cpu_set_t>()) };
    if rc != 0 {
        return Err(WorkloadError::Pin {
            cpu: cpu as u32,
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// An anonymous mapping owned by exactly one thread at a time; unmapped on drop.
struct Chunk {
    addr: NonNull<libc::c_void>,
    len: usize,
}

// SAFETY: a Chunk is the only handle to its mapping (no references into it escape), so
// moving it to another thread, which then unmaps it, cannot race with any access.
unsafe impl Send for Chunk {}

impl Chunk {
    /// Maps `len` bytes and writes one byte per page, so each page is allocated by a page
    /// fault on the calling CPU (MAP_POPULATE does not guarantee that everywhere).
    fn map_and_touch(len: usize, page: usize) -> Result<Chunk, WorkloadError> {
        // SAFETY: a fresh private anonymous mapping with no address hint cannot alias any
        // existing memory; the result is checked against MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        let addr = match NonNull::new(p) {
            Some(a) if p != libc::MAP_FAILED => a,
            _ => {
                return Err(WorkloadError::Mmap {
                    bytes: len,
                    source: io::Error::last_os_error(),
                });
            }
        };
        let chunk = Chunk { addr, len };
        // With THP the fault would take one order-9 page instead of 512 order-0 pages from
        // the PCP lists. EINVAL (THP compiled out) is harmless, so the result is ignored.
        // SAFETY: advises on a range this Chunk owns; no memory is accessed.
        unsafe { libc::madvise(p, len, libc::MADV_NOHUGEPAGE) };
        let base = p.cast::<u8>();
        for off in (0..len).step_by(page) {
            let byte = base.wrapping_add(off);
            // SAFETY: off < len, so the byte lies inside the writable mapping owned here.
            unsafe { ptr::write_volatile(byte, 1) };
        }
        Ok(chunk)
    }

    fn unmap(self) -> Result<(), WorkloadError> {
        let this = ManuallyDrop::new(self);
        // SAFETY: the range is the mapping this Chunk owns; ManuallyDrop keeps Drop from
        // unmapping it a second time.
        if unsafe { libc::munmap(this.addr.as_ptr(), this.len) } != 0 {
            return Err(WorkloadError::Munmap(io::Error::last_os_error()));
        }
        Ok(())
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        // Error paths only; the normal path uses unmap() to see failures.
        // SAFETY: the range is the mapping this Chunk owns, unmapped only here.
        unsafe { libc::munmap(self.addr.as_ptr(), self.len) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}

fn join<T>(
    h: thread::JoinHandle<Result<T, WorkloadError>>,
    role: &'static str,
) -> Result<T, WorkloadError> {
    h.join().map_err(|_| WorkloadError::ThreadPanicked(role))?
}

fn spawn_worker<T: Send + 'static>(
    role: &'static str,
    f: impl FnOnce() -> Result<T, WorkloadError> + Send + 'static,
) -> Result<thread::JoinHandle<Result<T, WorkloadError>>, WorkloadError> {
    thread::Builder::new()
        .name(format!("zp-{role}"))
        .spawn(f)
        .map_err(|source| WorkloadError::Thread { role, source })
}

/// Runs one pair in this process and returns what it did; prints nothing.
///
/// Work happens on new threads, so the caller's own CPU affinity is left alone.
pub fn measure_pair(opts: &PairOpts) -> Result<PairCounts, WorkloadError> {
    validate_common(opts.duration, opts.chunk_kib)?;
    let page = page_size();
    // Whole pages; chunk_kib is at most 1 GiB so this cannot overflow.
    let len = (opts.chunk_kib as usize * 1024).div_ceil(page) * page;
    let start = Instant::now();
    let deadline = start + opts.duration;
    let alloc_cpu = opts.alloc_cpu;

    if opts.is_same_cpu() {
        // The fixed shape: free each chunk on the CPU that allocated it.
        let worker = spawn_worker("alloc-free", move || {
            pin_current_thread(alloc_cpu)?;
            let mut bytes = 0u64;
            // Bounded by the deadline.
            while Instant::now() < deadline {
                Chunk::map_and_touch(len, page)?.unmap()?;
                bytes += len as u64;
            }
            Ok(bytes)
        })?;
        let bytes = join(worker, "alloc-free")?;
        return Ok(PairCounts {
            alloc_bytes: bytes,
            freed_bytes: bytes,
            elapsed: start.elapsed(),
        });
    }

    let free_cpu = opts.free_cpu;
    let (tx, rx) = mpsc::sync_channel::<Chunk>(CHANNEL_DEPTH);
    // The free thread ends when the alloc thread drops its sender (deadline or error).
    // If the free thread fails, it drops the receiver and the alloc thread's send fails.
    let freer = spawn_worker("free", move || {
        pin_current_thread(free_cpu)?;
        let mut bytes = 0u64;
        for chunk in rx {
            chunk.unmap()?;
            bytes += len as u64;
        }
        Ok(bytes)
    })?;
    let allocator = spawn_worker("alloc", move || {
        pin_current_thread(alloc_cpu)?;
        let mut bytes = 0u64;
        while Instant::now() < deadline {
            let chunk = Chunk::map_and_touch(len, page)?;
            bytes += len as u64;
            if let Err(SendError(chunk)) = tx.send(chunk) {
                // Free thread is gone; its error is the one reported.
                drop(chunk);
                break;
            }
        }
        Ok(bytes)
    });
    let allocator = match allocator {
        Ok(h) => h,
        Err(e) => {
            // The sender was dropped with the closure, so the free thread ends promptly.
            join(freer, "free").ok();
            return Err(e);
        }
    };
    let alloc_res = join(allocator, "alloc");
    let freed = join(freer, "free")?;
    let alloc_bytes = alloc_res?;
    Ok(PairCounts {
        alloc_bytes,
        freed_bytes: freed,
        elapsed: start.elapsed(),
    })
}

/// Runs one pair (the body of the hidden `workload __pair` subcommand) and prints the one
/// machine-readable result line the parent parses:
/// `zoneprof-pair-result alloc_cpu=A free_cpu=F alloc_bytes=N freed_bytes=N elapsed_ns=N`.
/// Returns the bytes freed.
pub fn run_pair(opts: &PairOpts) -> Result<u64, WorkloadError> {
    let c = measure_pair(opts)?;
    let free_cpu = if opts.is_same_cpu() {
        opts.alloc_cpu
    } else {
        opts.free_cpu
    };
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "{PAIR_RESULT_PREFIX} alloc_cpu={} free_cpu={} alloc_bytes={} freed_bytes={} elapsed_ns={}",
        opts.alloc_cpu,
        free_cpu,
        c.alloc_bytes,
        c.freed_bytes,
        c.elapsed.as_nanos()
    )
    .and_then(|()| out.flush())
    .map_err(WorkloadError::Output)?;
    Ok(c.freed_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn online(cpu: u32) -> bool {
        crate::kernel::host::online_cpus().is_ok_and(|c| c.contains(&cpu))
    }

    fn opts(a: u32, f: u32, same: bool, ms: u64) -> PairOpts {
        PairOpts {
            alloc_cpu: a,
            free_cpu: f,
            same_cpu: same,
            duration: Duration::from_millis(ms),
            chunk_kib: super::super::DEFAULT_CHUNK_KIB,
        }
    }

    #[test]
    fn cross_cpu_pair_moves_pages() {
        if !online(1) {
            eprintln!("skipped: CPU 1 not online");
            return;
        }
        let c = measure_pair(&opts(0, 1, false, 200)).unwrap();
        assert!(c.freed_bytes > 0);
        assert_eq!(c.alloc_bytes, c.freed_bytes);
        assert!(c.elapsed >= Duration::from_millis(200));
        assert!(c.elapsed < Duration::from_secs(10));
    }

    #[test]
    fn same_cpu_pair_moves_pages() {
        let c = measure_pair(&opts(0, 1, true, 200)).unwrap();
        assert!(c.freed_bytes > 0);
        assert_eq!(c.alloc_bytes, c.freed_bytes);
        // Equal CPUs without the flag is also same-CPU mode.
        assert!(measure_pair(&opts(0, 0, false, 50)).unwrap().freed_bytes > 0);
    }

    #[test]
    fn run_pair_returns_bytes() {
        assert!(run_pair(&opts(0, 0, true, 20)).unwrap() > 0);
    }

    #[test]
    fn pin_to_missing_cpu_fails() {
        let h = thread::spawn(|| {
            let e = pin_current_thread(4095).unwrap_err();
            assert!(matches!(e, WorkloadError::Pin { cpu: 4095, .. }), "{e}");
            assert!(e.to_string().contains("CPU 4095"));
            assert!(matches!(
                pin_current_thread(70000),
                Err(WorkloadError::CpuOutOfRange(70000))
            ));
            pin_current_thread(0).unwrap();
            // SAFETY: sched_getcpu has no preconditions.
            assert_eq!(unsafe { libc::sched_getcpu() }, 0);
        });
        h.join().unwrap();
    }

    #[test]
    fn pair_on_missing_cpu_fails() {
        for o in [
            opts(4095, 0, false, 50),
            opts(0, 4095, false, 50),
            opts(4095, 0, true, 50),
        ] {
            let e = measure_pair(&o).unwrap_err();
            assert!(e.to_string().contains("CPU 4095"), "{e}");
        }
    }

    #[test]
    fn pair_rejects_bad_opts() {
        let mut o = opts(0, 0, true, 0);
        assert!(matches!(
            measure_pair(&o),
            Err(WorkloadError::BadDuration(_))
        ));
        o.duration = Duration::from_millis(10);
        o.chunk_kib = 0;
        assert!(matches!(measure_pair(&o), Err(WorkloadError::BadChunk(0))));
        o.chunk_kib = u32::MAX;
        assert!(matches!(measure_pair(&o), Err(WorkloadError::BadChunk(_))));
    }
}
