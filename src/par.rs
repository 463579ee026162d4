//! Helpers for the parallel regions of the `rayon` feature.

/// Runs `f` (serial work between two parallel regions) on the calling thread while, inside a
/// rayon pool with more than one thread, a second task of the pool spins until `f` is done.
///
/// Why: a rayon worker left idle for more than a few microseconds goes to sleep, and waking it
/// for the next parallel region costs 20–40 µs on a virtual machine (measured on a 2-vCPU KVM
/// guest: a region after a 10 µs serial gap cost ≈ 35 µs more than one after a 2 µs gap). The
/// spinning task keeps one worker awake through the gap, and its own wake-up, if it was
/// asleep, overlaps with `f`. It computes nothing, so results never depend on it; with one
/// thread, outside a pool or without `rayon`, this is just `f()`.
///
/// `f` must not start parallel work of its own that needs the spinning thread to make
/// progress: it still completes (the calling thread runs every task it does not share), only
/// without that thread's help.
pub(crate) fn keep_warm<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    #[cfg(feature = "rayon")]
    if rayon::current_num_threads() > 1 && rayon::current_thread_index().is_some() {
        use std::sync::atomic::{AtomicBool, Ordering};
        /// Sets the flag when dropped, so the spinner also stops if `f` panics.
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let done = AtomicBool::new(false);
        let (out, ()) = rayon::join(
            || {
                let _done = Done(&done);
                f()
            },
            || {
                while !done.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
            },
        );
        return out;
    }
    f()
}

#[cfg(test)]
mod tests {
    /// The result is `f`'s, on 1-, 2- and 3-thread pools and outside a pool; a panic in `f`
    /// reaches the caller instead of leaving the spinner waiting.
    #[test]
    fn keep_warm_returns_f_and_propagates_panics() {
        assert_eq!(super::keep_warm(|| 41 + 1), 42);
        #[cfg(feature = "rayon")]
        for threads in 1..=3 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let sum = pool.install(|| {
                (0..50)
                    .map(|i| super::keep_warm(move || (0..1000u64).sum::<u64>() + i))
                    .sum::<u64>()
            });
            assert_eq!(sum, 50 * 499_500 + 1225);
            let caught = pool.install(|| {
                std::panic::catch_unwind(|| super::keep_warm(|| -> u32 { panic!("inside") }))
            });
            assert!(caught.is_err());
        }
    }
}
