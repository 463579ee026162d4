//! One FB-GVI step on a dense Gaussian target, d ∈ {10, 100, 1000}, against the floor: one
//! d×d symmetric eigendecomposition.
//!
//! ```text
//! cargo bench --bench gvi -- --warm-up-time 1 --measurement-time 2
//! ```

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use klflow::Sampler;
use klflow::potential::Gaussian;
use klflow::vi::{BwGd, Expectation, FbGvi};
use nalgebra::{DMatrix, DVector, SymmetricEigen};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

/// A dense SPD precision with eigenvalues in [1, 10] and a random rotation.
fn dense_target(d: usize, rng: &mut ChaCha8Rng) -> Gaussian<nalgebra::Dyn> {
    let g = DMatrix::from_fn(d, d, |_, _| rng.sample::<f64, _>(StandardNormal));
    let q = g.qr().q();
    let lam = DVector::from_fn(d, |i, _| 1.0 + 9.0 * i as f64 / (d.max(2) - 1) as f64);
    let a = &q * DMatrix::from_diagonal(&lam) * q.transpose();
    let a = (&a + a.transpose()) * 0.5;
    Gaussian::from_precision(DVector::from_element(d, 1.0), a).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("gvi_step");
    for d in [10usize, 100, 1000] {
        if d >= 1000 {
            group.sample_size(10);
        } else {
            group.sample_size(30);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(d as u64);
        let target = dense_target(d, &mut rng);
        let h = 0.5 / 10.0;
        let start = Gaussian::isotropic(DVector::zeros(d), 0.5).unwrap();
        let eig_input = target.covariance().clone();
        group.bench_with_input(BenchmarkId::new("eigen_floor", d), &d, |b, _| {
            b.iter(|| SymmetricEigen::new(black_box(eig_input.clone())))
        });
        let rules = [
            ("fb_exact", Expectation::Quadratic),
            ("fb_mc1", Expectation::MonteCarlo { batch: 1 }),
            ("fb_mc16", Expectation::MonteCarlo { batch: 16 }),
        ];
        for (name, rule) in rules {
            let gvi = FbGvi::new(&target, h, rule).unwrap();
            let mut st = gvi.init(start.clone(), &mut rng).unwrap();
            group.bench_with_input(BenchmarkId::new(name, d), &d, |b, _| {
                b.iter(|| gvi.step(&mut st, &mut rng).unwrap())
            });
        }
        // Hessian-free with the deterministic 2d-point cubature (Stein with a Monte Carlo batch
        // smaller than d is too noisy to run stably on this target).
        let stein = FbGvi::hessian_free(&target, h, Expectation::Cubature).unwrap();
        let mut st = stein.init(start.clone(), &mut rng).unwrap();
        group.bench_with_input(BenchmarkId::new("fb_stein_cubature", d), &d, |b, _| {
            b.iter(|| stein.step(&mut st, &mut rng).unwrap())
        });
        let bw = BwGd::new(&target, h, Expectation::Quadratic).unwrap();
        let mut st = bw.init(start.clone(), &mut rng).unwrap();
        group.bench_with_input(BenchmarkId::new("bw_exact", d), &d, |b, _| {
            b.iter(|| bw.step(&mut st, &mut rng).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
