//! One reverse step of the `diffusion` workload (10 000 particles, exact score of the
//! 8-component mixture, geometric grid T = 10 → δ = 1e-3 with 1000 steps): DDPM with the
//! exponential integrator at d = 2 and d = 100, and the probability-flow ODE at d = 2.
//! The time per iteration is the time per step averaged over the whole grid.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use klflow::Sampler;
use klflow::diffusion::{
    Ddpm, DiffusionState, MixtureScore, OdeScheme, ProbabilityFlow, SdeScheme, TimeGrid,
};
use klflow::dim::Alloc;
use klflow::potential::{Gaussian, GaussianMixture};
use nalgebra::{Const, DefaultAllocator, Dim, Dyn, OVector, U1};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

const N: usize = 10_000;

fn mixture<D: Dim>(dim: D) -> GaussianMixture<D>
where
    DefaultAllocator: Alloc<D>,
{
    let d = dim.value();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let comps = (0..8)
        .map(|j| {
            let m = if d == 2 {
                let a = std::f64::consts::TAU * j as f64 / 8.0;
                OVector::<f64, D>::from_iterator_generic(dim, U1, [4.0 * a.cos(), 4.0 * a.sin()])
            } else {
                OVector::<f64, D>::from_fn_generic(dim, U1, |_, _| rng.sample(StandardNormal))
                    .normalize()
                    * 4.0
            };
            Gaussian::isotropic(m, 0.25).unwrap()
        })
        .collect();
    let w: Vec<f64> = (1..=8).map(f64::from).collect();
    GaussianMixture::new(&w, comps).unwrap()
}

/// Times `iters` steps, re-initialising (untimed) whenever the grid is exhausted.
fn time_steps<D, S>(s: &S, iters: u64, rng: &mut ChaCha8Rng) -> Duration
where
    D: Dim,
    DefaultAllocator: Alloc<D>,
    S: Sampler<State = DiffusionState<D>, Init = klflow::diffusion::DiffusionInit<D>>,
{
    let mut state = s.init(N.into(), rng).unwrap();
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        if s.is_finished(&state) {
            state = s.init(N.into(), rng).unwrap();
        }
        let t = Instant::now();
        s.step(&mut state, rng).unwrap();
        total += t.elapsed();
    }
    total
}

fn bench(c: &mut Criterion) {
    let grid = TimeGrid::geometric(10.0, 1e-3, 1000).unwrap();
    let mut g = c.benchmark_group("diffusion");
    g.sample_size(10);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let s2 = MixtureScore::new(&mixture(Const::<2>));
    let ddpm2 = Ddpm::new(&s2, grid.clone(), SdeScheme::ExponentialIntegrator);
    g.bench_function("ddpm_step/d=2/n=10000", |b| {
        b.iter_custom(|it| time_steps(&ddpm2, it, &mut rng))
    });
    let flow2 = ProbabilityFlow::new(&s2, grid.clone(), OdeScheme::ExponentialIntegrator);
    g.bench_function("flow_step/d=2/n=10000", |b| {
        b.iter_custom(|it| time_steps(&flow2, it, &mut rng))
    });
    let s100 = MixtureScore::new(&mixture(Dyn(100)));
    let ddpm100 = Ddpm::new(&s100, grid, SdeScheme::ExponentialIntegrator);
    g.bench_function("ddpm_step/d=100/n=10000", |b| {
        b.iter_custom(|it| time_steps(&ddpm100, it, &mut rng))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
