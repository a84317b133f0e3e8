//! Two independent jobs at once: `compare` reads and analyses its two recordings side by side.

/// Runs `a` on a second thread while `b` runs on this one, and returns both results. A panic
/// in `a` resumes here, as if `a` had run on this thread. (Spawning panics only when the OS
/// cannot start a thread at all.)
pub fn both<RA: Send, RB>(a: impl FnOnce() -> RA + Send, b: impl FnOnce() -> RB) -> (RA, RB) {
    std::thread::scope(|s| {
        let a = s.spawn(a);
        let rb = b();
        match a.join() {
            Ok(ra) => (ra, rb),
            Err(panic) => std::panic::resume_unwind(panic),
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
