//! The `diffusion` workload: DDPM with the exponential integrator on the exact score of an
//! 8-component Gaussian mixture (weights ∝ k, variances 0.25; d = 2: means on a circle of
//! radius 4; d > 2: means = 4 × random unit vectors from `--seed`), y_T ~ N(0, I), T = 10,
//! geometric grid to δ = 1e-3 with 1000 steps, 10 000 samples. Three complete runs, each
//! with all its steps in one `Ddpm::advance` (one parallel region, like `Ddpm::sample`);
//! `per_iter_s` is the median run's time per step. (Short parallel regions — a few
//! milliseconds — scale erratically with threads on this project's VMs.)
//!
//! Checks: the largest error of the sample mean and the mean ratio of sample to exact variance
//! (against the exact moments of q_δ), and the fraction of samples nearest to each component
//! against its weight.

use klflow::Sampler;
use klflow::diffusion::{Ddpm, ForwardOu, MixtureScore, SdeScheme, TimeGrid};
use klflow::dim::Alloc;
use klflow::potential::{Gaussian, GaussianMixture};
use nalgebra::{Const, DVector, DefaultAllocator, Dim, Dyn, OVector, U1};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use serde_json::json;

use std::time::Instant;

use crate::{Args, emit};

const K: usize = 8;
const HORIZON: f64 = 10.0;
const DELTA: f64 = 1e-3;

/// The workload's mixture in dimension `dim`.
pub fn mixture<D: Dim>(dim: D, seed: u64) -> Result<GaussianMixture<D>, String>
where
    DefaultAllocator: Alloc<D>,
{
    let d = dim.value();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xd1ff);
    let means: Vec<OVector<f64, D>> = (0..K)
        .map(|j| {
            if d == 2 {
                let a = std::f64::consts::TAU * j as f64 / K as f64;
                OVector::<f64, D>::from_iterator_generic(dim, U1, [4.0 * a.cos(), 4.0 * a.sin()])
            } else {
                let v =
                    OVector::<f64, D>::from_fn_generic(dim, U1, |_, _| rng.sample(StandardNormal));
                v.normalize() * 4.0
            }
        })
        .collect();
    let comps = means
        .into_iter()
        .map(|m| Gaussian::isotropic(m, 0.25))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let weights: Vec<f64> = (1..=K).map(|k| k as f64).collect();
    GaussianMixture::new(&weights, comps).map_err(|e| e.to_string())
}

fn run_dim<D: Dim>(args: &Args, dim: D, n: usize, steps: usize) -> Result<(), String>
where
    DefaultAllocator: Alloc<D>,
    OVector<f64, D>: Send,
    MixtureScore<D>: Sync,
{
    let mix = mixture(dim, args.seed)?;
    let grid = TimeGrid::geometric(HORIZON, DELTA, steps).map_err(|e| e.to_string())?;
    let ddpm = Ddpm::new(
        MixtureScore::new(&mix),
        grid,
        SdeScheme::ExponentialIntegrator,
    );
    // Three complete runs (init, then every step in one `advance`: one parallel region, as
    // `Ddpm::sample` does); the per-step time is the median run's advance time / steps. The
    // checks use the last run.
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut times = Vec::with_capacity(3);
    let mut state = ddpm.init(n.into(), &mut rng).map_err(|e| e.to_string())?;
    for run in 0..3 {
        if run > 0 {
            state = ddpm.init(n.into(), &mut rng).map_err(|e| e.to_string())?;
        }
        let t = Instant::now();
        ddpm.advance(&mut state, steps, &mut rng)
            .map_err(|e| e.to_string())?;
        times.push(t.elapsed().as_secs_f64() / steps as f64);
    }
    times.sort_by(f64::total_cmp);
    let per_iter = times[1];
    if !ddpm.is_finished(&state) {
        return Err(format!("stopped at step {} of {steps}", state.steps_done()));
    }
    let ys = state.particles();
    let d = dim.value();
    let q = ForwardOu::marginal_mixture(&mix, DELTA).map_err(|e| e.to_string())?;
    let (m_exact, c_exact) = (q.mean(), q.covariance());
    let mut mean = DVector::<f64>::zeros(d);
    for y in ys {
        for i in 0..d {
            mean[i] += y[i] / n as f64;
        }
    }
    let mut var = DVector::<f64>::zeros(d);
    for y in ys {
        for i in 0..d {
            var[i] += (y[i] - mean[i]).powi(2) / (n as f64 - 1.0);
        }
    }
    let max_mean_err = (0..d)
        .map(|i| (mean[i] - m_exact[i]).abs())
        .fold(0.0, f64::max);
    let var_ratio = (0..d).map(|i| var[i] / c_exact[(i, i)]).sum::<f64>() / d as f64;
    let mut counts = [0usize; K];
    for y in ys {
        let nearest = (0..K)
            .min_by(|&a, &b| {
                let da = (y - q.components()[a].mean()).norm_squared();
                let db = (y - q.components()[b].mean()).norm_squared();
                da.total_cmp(&db)
            })
            .unwrap_or(0);
        counts[nearest] += 1;
    }
    let fractions: Vec<f64> = counts.iter().map(|c| *c as f64 / n as f64).collect();
    let max_frac_err = fractions
        .iter()
        .zip(q.weights())
        .map(|(f, w)| (f - w).abs())
        .fold(0.0, f64::max);
    emit(
        args,
        n,
        d,
        1,
        steps,
        per_iter,
        json!({
            "max_mean_error": max_mean_err,
            "mean_variance_ratio": var_ratio,
            "component_fractions": fractions,
            "max_fraction_error": max_frac_err,
        }),
    );
    Ok(())
}

pub fn run(args: &Args) -> Result<(), String> {
    let d = args.d.unwrap_or(2);
    let n = args.n.unwrap_or(10_000);
    let steps = args.steps.unwrap_or(1000);
    let threads = args.threads.unwrap_or(1);
    let go = || {
        if d == 2 {
            run_dim(args, Const::<2>, n, steps)
        } else {
            run_dim(args, Dyn(d), n, steps)
        }
    };
    #[cfg(feature = "rayon")]
    {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| e.to_string())?;
        pool.install(go)
    }
    #[cfg(not(feature = "rayon"))]
    {
        if threads != 1 {
            return Err("--threads > 1 needs `--features rayon`".into());
        }
        go()
    }
}
