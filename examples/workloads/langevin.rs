//! The `ula` and `mala` workloads: `x ← x − h∇U(x) + √(2h)ξ` (MALA adds the Metropolis–Hastings
//! test) for 10 000 steps, statistics over the second half, on `--target aniso` (N(0, diag(1/λ)), λ log-spaced in [1, 100], h = 1e-3, x₀ = 1) or
//! `--target logreg` (Bayesian logistic regression on 1000 synthetic points, prior N(0, I),
//! h = 2e-4, x₀ = 0). Each chain has its own ChaCha8 stream (`seed`, stream = chain index).

use klflow::Sampler;
use klflow::langevin::{Mala, Ula};
use klflow::potential::{Gaussian, LogisticRegression, Potential, PotentialHessian};
use nalgebra::{DMatrix, DVector, Dyn};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use serde_json::json;

use crate::{Args, emit, median_per_iter};

/// λ log-spaced in [1, 100].
fn aniso_lambdas(d: usize) -> DVector<f64> {
    DVector::from_fn(d, |i, _| {
        100f64.powf(if d > 1 {
            i as f64 / (d - 1) as f64
        } else {
            0.0
        })
    })
}

/// Synthetic logistic-regression data: X ~ N(0, 1), θ* ~ N(0, (4/d)I), y ~ Bernoulli(σ(Xθ*)).
pub fn logreg_data(n: usize, d: usize, rng: &mut ChaCha8Rng) -> (DMatrix<f64>, Vec<f64>) {
    let x = DMatrix::from_fn(n, d, |_, _| rng.sample::<f64, _>(StandardNormal));
    let theta = DVector::from_fn(d, |_, _| {
        (4.0 / d as f64).sqrt() * rng.sample::<f64, _>(StandardNormal)
    });
    let eta = &x * theta;
    let y = eta
        .iter()
        .map(|e| f64::from(rng.random::<f64>() < 1.0 / (1.0 + (-e).exp())))
        .collect();
    (x, y)
}

/// The MAP by Newton's method (the posterior is strongly log-concave).
fn map_estimate(post: &LogisticRegression<Dyn>, d: usize) -> DVector<f64> {
    let mut w = DVector::zeros(d);
    let mut g = DVector::zeros(d);
    let mut h = DMatrix::zeros(d, d);
    for _ in 0..50 {
        post.energy_grad(&w, &mut g);
        post.hessian(&w, &mut h);
        let step = h.clone().cholesky().expect("SPD Hessian").solve(&g);
        w -= &step;
        if step.amax() < 1e-12 {
            break;
        }
    }
    w
}

/// Runs `chains` chains for `steps` steps; returns the median time per step (all chains) and
/// the per-coordinate mean and variance over the second half, pooled over chains.
fn run_chains<S>(
    sampler: &S,
    x0: &DVector<f64>,
    chains: usize,
    steps: usize,
    seed: u64,
) -> Result<(f64, DVector<f64>, DVector<f64>, f64), String>
where
    S: Sampler<Init = DVector<f64>>,
    S::Info: Accept,
    S::State: klflow::sampler::HasPosition<Dim = Dyn>,
{
    use klflow::sampler::HasPosition;
    let mut rngs: Vec<ChaCha8Rng> = (0..chains)
        .map(|c| {
            let mut r = ChaCha8Rng::seed_from_u64(seed);
            r.set_stream(c as u64);
            r
        })
        .collect();
    let mut states = rngs
        .iter_mut()
        .map(|r| sampler.init(x0.clone(), r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let d = x0.len();
    let (mut s1, mut s2) = (DVector::zeros(d), DVector::zeros(d));
    let mut k = 0usize;
    let mut err = None;
    let (mut accepted, mut proposals) = (0.0, 0.0);
    let per_iter = median_per_iter(steps, 5, || {
        k += 1;
        for (s, r) in states.iter_mut().zip(rngs.iter_mut()) {
            match sampler.step(s, r) {
                Ok(info) => {
                    accepted += info.accepted();
                    proposals += 1.0;
                }
                Err(e) => {
                    err.get_or_insert(e);
                }
            }
            if k > steps / 2 {
                s1 += HasPosition::position(s);
                s2 += HasPosition::position(s).component_mul(HasPosition::position(s));
            }
        }
    });
    if let Some(e) = err {
        return Err(e.to_string());
    }
    let count = ((k - steps / 2) * chains) as f64;
    let mean = s1 / count;
    let var = s2 / count - mean.component_mul(&mean);
    Ok((per_iter, mean, var, accepted / proposals))
}

/// The acceptance indicator of a step's info (1 for ULA, which accepts everything).
trait Accept {
    fn accepted(&self) -> f64;
}
impl Accept for klflow::langevin::UlaInfo {
    fn accepted(&self) -> f64 {
        1.0
    }
}
impl Accept for klflow::langevin::MalaInfo {
    fn accepted(&self) -> f64 {
        f64::from(u8::from(self.accepted))
    }
}

/// Runs the workload's algorithm (`ula` or `mala`) on `potential` with step `h`.
fn run_algo<P: Potential<Dim = Dyn> + Sync>(
    args: &Args,
    potential: &P,
    h: f64,
    x0: &DVector<f64>,
    chains: usize,
    steps: usize,
) -> Result<(f64, DVector<f64>, DVector<f64>, f64), String> {
    if args.workload == "mala" {
        let mala = Mala::new(potential, h).map_err(|e| e.to_string())?;
        run_chains(&mala, x0, chains, steps, args.seed)
    } else {
        let ula = Ula::new(potential, h).map_err(|e| e.to_string())?;
        run_chains(&ula, x0, chains, steps, args.seed)
    }
}

pub fn run(args: &Args) -> Result<(), String> {
    if args.threads.unwrap_or(1) != 1 {
        return Err(
            "the ula workload runs on one thread (parallel chains arrive with the rayon feature)"
                .into(),
        );
    }
    let target = args.target.clone().unwrap_or_else(|| "aniso".into());
    let d = args.d.unwrap_or(10);
    let chains = args.chains.unwrap_or(1);
    let steps = args.steps.unwrap_or(10_000);
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed ^ 0x5eed);
    match target.as_str() {
        "aniso" => {
            let lambda = aniso_lambdas(d);
            let gauss = Gaussian::diagonal(DVector::zeros(d), lambda.map(|l| 1.0 / l))
                .map_err(|e| e.to_string())?;
            let (t, mean, var, acc) = run_algo(
                args,
                &gauss,
                1e-3,
                &DVector::from_element(d, 1.0),
                chains,
                steps,
            )?;
            let var_lambda = var.component_mul(&lambda).mean();
            let m_sqrt_lambda = mean.zip_map(&lambda, |m, l| m.abs() * l.sqrt()).mean();
            emit(
                args,
                0,
                d,
                chains,
                steps,
                t,
                json!({"mean_var_times_lambda": var_lambda, "mean_abs_m_sqrt_lambda": m_sqrt_lambda, "acceptance": acc}),
            );
        }
        "logreg" => {
            let n = args.n.unwrap_or(1000);
            let (x, y) = logreg_data(n, d, &mut rng);
            let post = LogisticRegression::new(Dyn(d), &x, &y, 1.0).map_err(|e| e.to_string())?;
            let map = map_estimate(&post, d);
            let (t, mean, var, acc) =
                run_algo(args, &post, 2e-4, &DVector::zeros(d), chains, steps)?;
            let rel = (&mean - &map).norm() / map.norm();
            emit(
                args,
                n,
                d,
                chains,
                steps,
                t,
                json!({"rel_mean_minus_map": rel, "mean_posterior_sd": var.map(f64::sqrt).mean(), "acceptance": acc}),
            );
        }
        other => {
            return Err(format!(
                "unknown ula target `{other}`; known: aniso, logreg"
            ));
        }
    }
    Ok(())
}
