//! SIGINT/SIGTERM handling for the length of one run: the handler only records the signal,
//! every loop polls [`caught`], and the run unwinds normally so its guards delete the
//! namespace. The previous handlers come back when the guard drops.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

static CAUGHT: AtomicI32 = AtomicI32::new(0);

const SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

extern "C" fn on_signal(sig: libc::c_int) {
    // An atomic store is async-signal-safe.
    CAUGHT.store(sig, Ordering::Relaxed);
}

/// The signal caught since [`SignalGuard::install`], if any.
pub fn caught() -> Option<libc::c_int> {
    match CAUGHT.load(Ordering::Relaxed) {
        0 => None,
        s => Some(s),
    }
}

pub struct SignalGuard {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

impl SignalGuard {
    /// Installs the recording handler. Runs are serialised by the caller, so one guard is
    /// live at a time.
    pub fn install() -> io::Result<SignalGuard> {
        CAUGHT.store(0, Ordering::Relaxed);
        let mut guard = SignalGuard { old: Vec::new() };
        for sig in SIGNALS {
            // SAFETY: sigaction is plain old data; all-zero is a valid empty value
            // (no flags, empty mask) that is filled in before use.
            let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
            new.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            // SA_RESTART: syscalls in other code resume; our loops wake at least every
            // poll interval anyway.
            new.sa_flags = libc::SA_RESTART;
            // SAFETY: as above.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: `new.sa_mask` is a valid sigset_t owned here.
            unsafe { libc::sigemptyset(&mut new.sa_mask) };
            // SAFETY: both pointers refer to live sigaction values; the handler only
            // performs an atomic store.
            if unsafe { libc::sigaction(sig, &new, &mut old) } != 0 {
                // `guard` restores the handlers installed so far.
                return Err(io::Error::last_os_error());
            }
            guard.old.push((sig, old));
        }
        Ok(guard)
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for (sig, old) in self.old.drain(..).rev() {
            // SAFETY: `old` is the action sigaction returned for `sig`, so restoring it
            // is valid; a null old-action pointer is allowed.
            unsafe { libc::sigaction(sig, &old, std::ptr::null_mut()) };
        }
    }
}
