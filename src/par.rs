//! Helpers for the parallel regions of the `rayon` feature.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// From this many particles on, the SVGD pair engine and the exact median run their passes in
/// parallel (below, they stay on the calling thread).
pub(crate) const PARALLEL_MIN_N: usize = 256;

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
/// after [`SPIN_LIMIT`]: past that a wake-up costs little next to the work.
pub(crate) fn keep_warm<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    #[cfg(feature = "rayon")]
    if rayon::current_num_threads() > 1 && rayon::current_thread_index().is_some() {
        /// Sets the flag when dropped, so the spinner also stops if `f` panics.
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let done = AtomicBool::new(false);
        let (out, _) = rayon::join(
            || {
                let _done = Done(&done);
                f()
            },
            || spin_until(&done, SPIN_LIMIT),
        );
        return out;
    }
    f()
}

/// [`keep_warm`] when `n` particles make the next pass parallel (`n ≥ PARALLEL_MIN_N`), else
/// just `f()`: below, no parallel pair pass follows that a sleeping worker would slow down,
/// and the spinner's join would only cost time (SVGD n = 100, d = 2 on two threads, per step:
/// 16–24 µs before `keep_warm` existed, 24–27 µs with it at every `n`, 15–24 µs with this
/// gate).
pub(crate) fn keep_warm_for<T: Send>(n: usize, f: impl FnOnce() -> T + Send) -> T {
    if n >= PARALLEL_MIN_N {
        keep_warm(f)
    } else {
        f()
    }
}

/// The longest a [`keep_warm`] spinner waits.
#[cfg_attr(not(feature = "rayon"), allow(dead_code))]
pub(crate) const SPIN_LIMIT: Duration = Duration::from_micros(200);

/// Spins until `done` is set (`true`) or `limit` has passed (`false`).
#[cfg_attr(not(feature = "rayon"), allow(dead_code))]
fn spin_until(done: &AtomicBool, limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if done.load(Ordering::Acquire) {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() > limit {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// The result is `f`'s, on 1-, 2- and 3-thread pools and outside a pool; a panic in `f`
    /// reaches the caller instead of leaving the spinner waiting; `keep_warm_for` gives `f`'s
    /// result on both sides of its threshold.
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
            let n = super::PARALLEL_MIN_N;
            let both =
                pool.install(|| (super::keep_warm_for(n, || 1), super::keep_warm_for(1, || 2)));
            assert_eq!(both, (1, 2));
        }
    }

    /// The spinner stops at its limit while the flag is still clear (fails if it waited for
    /// the flag, which another thread sets only 50 ms later), and at once once it is set.
    #[test]
    fn spinner_gives_up_at_its_limit() {
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                done.store(true, Ordering::Release);
            });
            assert!(!super::spin_until(&done, Duration::from_micros(200)));
        });
        assert!(super::spin_until(&done, Duration::from_micros(200)));
    }
}
