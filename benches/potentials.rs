//! Energy + gradient of the shipped targets, `Const<N>` (stack) against `Dyn` (heap), and one
//! ULA step. Results and the machine bounds: `docs/benchmarks.md`, section "Potentials".
//!
//! Run briefly with
//! `cargo bench --bench potentials -- --warm-up-time 1 --measurement-time 2`.

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main};
use klflow::Sampler;
use klflow::dim::Alloc;
use klflow::langevin::Ula;
use klflow::potential::{Gaussian, GaussianMixture, LogisticRegression, Potential};
use nalgebra::allocator::Allocator;
use nalgebra::{Const, DMatrix, DefaultAllocator, Dim, Dyn, OMatrix, OVector, U1};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

/// A fixed, non-trivial evaluation point: `x_i = sin(i + 1)`.
fn point<D: Dim>(d: D) -> OVector<f64, D>
where
    DefaultAllocator: Allocator<D>,
{
    OVector::from_fn_generic(d, U1, |i, _| ((i + 1) as f64).sin())
}

/// `N(0, I)` (the crate's diagonal fast path: O(d) per gradient).
fn isotropic<D: Dim>(d: D) -> Gaussian<D>
where
    DefaultAllocator: Alloc<D>,
{
    Gaussian::isotropic(OVector::zeros_generic(d, U1), 1.0).unwrap()
}

/// `N(1, S)` with `S_ij = 0.8^|i−j|` (the `corr` target of the workloads): a dense precision,
/// O(d²) per gradient.
fn correlated<D: Dim>(d: D) -> Gaussian<D>
where
    DefaultAllocator: Alloc<D>,
{
    let cov = OMatrix::from_fn_generic(d, d, |i, j| 0.8f64.powi(i.abs_diff(j) as i32));
    Gaussian::new(OVector::from_element_generic(d, U1, 1.0), cov).unwrap()
}

/// Bayesian logistic regression on 1000 synthetic observations: `X ~ N(0, 1)`,
/// `θ* ~ N(0, (4/d) I)`, `y ~ Bernoulli(logistic(Xθ*))`, prior `N(0, I)` (the `logreg` workload).
fn logistic<D: Dim>(d: D) -> LogisticRegression<D> {
    let n = 1000;
    let k = d.value();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x = DMatrix::from_fn(n, k, |_, _| rng.sample::<f64, _>(StandardNormal));
    let theta: Vec<f64> = (0..k)
        .map(|_| (4.0 / k as f64).sqrt() * rng.sample::<f64, _>(StandardNormal))
        .collect();
    let y: Vec<f64> = (0..n)
        .map(|i| {
            let eta: f64 = (0..k).map(|j| x[(i, j)] * theta[j]).sum();
            let p = 1.0 / (1.0 + (-eta).exp());
            f64::from(u8::from(rng.random::<f64>() < p))
        })
        .collect();
    LogisticRegression::new(d, &x, &y, 1.0).unwrap()
}

/// The workloads' 8-component mixture: weights ∝ k, variances 0.25, means on a circle of radius
/// 4 (d = 2) or 4 × random unit vectors (d > 2).
fn mixture<D: Dim>(d: D) -> GaussianMixture<D>
where
    DefaultAllocator: Alloc<D>,
{
    let k = 8;
    let n = d.value();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let comps = (0..k)
        .map(|j| {
            let mean = if n == 2 {
                let t = 2.0 * std::f64::consts::PI * j as f64 / k as f64;
                OVector::from_fn_generic(d, U1, |i, _| 4.0 * if i == 0 { t.cos() } else { t.sin() })
            } else {
                let v =
                    OVector::from_fn_generic(d, U1, |_, _| rng.sample::<f64, _>(StandardNormal));
                v.normalize() * 4.0
            };
            Gaussian::isotropic(mean, 0.25).unwrap()
        })
        .collect();
    let weights: Vec<f64> = (1..=k).map(f64::from).collect();
    GaussianMixture::new(&weights, comps).unwrap()
}

fn energy_grad<P: Potential>(group: &mut BenchmarkGroup<'_, WallTime>, id: BenchmarkId, p: &P)
where
    DefaultAllocator: Allocator<P::Dim>,
{
    let x = point(p.dim());
    let mut g = x.clone();
    group.bench_function(id, |b| b.iter(|| p.energy_grad(black_box(&x), &mut g)));
}

fn ula_step<P: Potential>(group: &mut BenchmarkGroup<'_, WallTime>, id: BenchmarkId, p: &P)
where
    DefaultAllocator: Allocator<P::Dim>,
{
    let ula = Ula::new(p, 0.05).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut state = ula.init(point(p.dim()), &mut rng).unwrap();
    group.bench_function(id, |b| b.iter(|| ula.step(&mut state, &mut rng).unwrap()));
}

/// Benches `make` at `Const<N>` and at `Dyn(N)`.
macro_rules! const_and_dyn {
    ($group:expr, $bench:ident, $make:ident, $($n:literal),*) => {$(
        $bench(&mut $group, BenchmarkId::new("const", $n), &$make(Const::<$n>));
        $bench(&mut $group, BenchmarkId::new("dyn", $n), &$make(Dyn($n)));
    )*};
}

fn gaussians(c: &mut Criterion) {
    let mut g = c.benchmark_group("gaussian_isotropic");
    const_and_dyn!(g, energy_grad, isotropic, 2, 10, 100);
    energy_grad(&mut g, BenchmarkId::new("dyn", 1000), &isotropic(Dyn(1000)));
    g.finish();
    let mut g = c.benchmark_group("gaussian_dense");
    const_and_dyn!(g, energy_grad, correlated, 2, 10, 100);
    energy_grad(
        &mut g,
        BenchmarkId::new("dyn", 1000),
        &correlated(Dyn(1000)),
    );
    g.finish();
}

fn others(c: &mut Criterion) {
    let mut g = c.benchmark_group("logistic_n1000");
    const_and_dyn!(g, energy_grad, logistic, 10, 100);
    g.finish();
    let mut g = c.benchmark_group("mixture_k8");
    const_and_dyn!(g, energy_grad, mixture, 2, 10);
    g.finish();
    let mut g = c.benchmark_group("ula_step_gaussian_dense");
    const_and_dyn!(g, ula_step, correlated, 10, 100);
    g.finish();
}

criterion_group!(benches, gaussians, others);
criterion_main!(benches);
