//! Two independent jobs at once: `compare` reads and analyses its two recordings side by side.

/// Runs `a` on a second thread while `b` runs on this one, and returns both results. A panic
/// in `a` resumes here, as if `a` had run on this thread. When no thread can be started, `a`
/// runs here after `b`: slower, same result.
pub fn both<RA: Send, RB>(a: impl FnOnce() -> RA + Send, b: impl FnOnce() -> RB) -> (RA, RB) {
    // `a` stays reachable from here in case the thread never starts.
    let job = std::sync::Mutex::new(Some(a));
    let take = || job.lock().ok().and_then(|mut j| j.take());
    std::thread::scope(|s| {
        let spawned = std::thread::Builder::new().spawn_scoped(s, || take().map(|a| a()));
        let rb = b();
        let ra = match spawned.map(|h| h.join()) {
            Ok(Ok(Some(ra))) => Some(ra),
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            // Not started (or it found no job): run it here.
            Ok(Ok(None)) | Err(_) => take().map(|a| a()),
        };
        match ra {
            Some(ra) => (ra, rb),
            // The job is taken exactly once, by the thread or here.
            None => unreachable!("par::both lost its job"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_both_results_in_order() {
        let v = [1u64, 2, 3];
        let (a, b) = both(|| v.iter().sum::<u64>(), || v.len());
        assert_eq!((a, b), (6, 3));
    }

    #[test]
    #[should_panic(expected = "boom")]
    fn a_panic_in_the_thread_resumes_in_the_caller() {
        let _ = both(|| -> u8 { panic!("boom") }, || 1);
    }
}
