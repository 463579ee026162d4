//! Chain diagnostics: ESS (direct lags vs. the FFT fallback) and a full per-parameter summary.
//!
//! `cargo bench --bench diagnostics -- --warm-up-time 1 --measurement-time 2`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use klflow::diagnostics::{ParamSummary, ess_bulk, ess_mean, rhat};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

/// Four stationary unit-variance AR(1) chains.
fn ar1(draws: usize, phi: f64) -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let s = (1.0 - phi * phi).sqrt();
    (0..4)
        .map(|_| {
            let mut x: f64 = rng.sample(StandardNormal);
            (0..draws)
                .map(|_| {
                    let e: f64 = rng.sample(StandardNormal);
                    x = phi * x + s * e;
                    x
                })
                .collect()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("diagnostics");
    group.sample_size(10);
    for draws in [1_000, 10_000, 100_000] {
        for phi in [0.0, 0.9, 0.99] {
            let x = ar1(draws, phi);
            let id = format!("4x{draws}/phi={phi}");
            group.bench_with_input(BenchmarkId::new("ess_mean", &id), &x, |b, x| {
                b.iter(|| ess_mean(x).unwrap())
            });
            group.bench_with_input(BenchmarkId::new("ess_bulk", &id), &x, |b, x| {
                b.iter(|| ess_bulk(x).unwrap())
            });
        }
        let x = ar1(draws, 0.5);
        let id = format!("4x{draws}/phi=0.5");
        group.bench_with_input(BenchmarkId::new("rhat", &id), &x, |b, x| {
            b.iter(|| rhat(x).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("summary", &id), &x, |b, x| {
            b.iter(|| ParamSummary::new(x).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
