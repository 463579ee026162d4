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
/// `f` must be serial: no rayon work inside it. (A parallel pass inside `f` would run without
/// the spinning thread's help, and in a pool built with the deprecated breadth-first order the
/// waiting thread could pick up the spinner above `f` and never return.) The spinner gives up
/// after 200 µs: past that a wake-up costs little next to the work.
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
                let start = std::time::Instant::now();
                'spin: while !done.load(Ordering::Acquire) {
                    for _ in 0..64 {
                        std::hint::spin_loop();
                        if done.load(Ordering::Acquire) {
                            break 'spin;
                        }
                    }
                    if start.elapsed() > SPIN_LIMIT {
                        break;
                    }
                }
            },
        );
        return out;
    }
    f()
}

/// The longest a [`keep_warm`] spinner waits.
#[cfg(feature = "rayon")]
const SPIN_LIMIT: std::time::Duration = std::time::Duration::from_micros(200);

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
            // Work longer than the spin limit: the spinner gives up, the result still comes.
            let slow = pool.install(|| {
                super::keep_warm(|| {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    7
                })
            });
            assert_eq!(slow, 7);
        }
    }
}
