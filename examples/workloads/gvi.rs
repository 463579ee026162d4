//! The `gvi` workload: forward–backward Gaussian VI.
//!
//! ```text
//! cargo run --release --example workloads -- gvi [--target logreg|gauss] [--d D] [--n N]
//!     [--steps S] [--seed SEED]
//! ```
//!
//! - `logreg` (default): Bayesian logistic regression, `n` = 1000 synthetic points,
//!   X ~ N(0, 1), θ* ~ N(0, (4/d)I), y ~ Bernoulli(sigmoid(Xθ*)), prior N(0, I); stochastic
//!   Hessian-free FB-GVI (Stein, batch 2d), h = 1/L. Checks, on the iterates averaged over the
//!   second half: |mean − MAP|/|MAP| and the mean posterior sd; λ_min(Σ) at the end.
//! - `gauss`: N(1, A⁻¹) with a dense precision A (eigenvalues in [1, 10], random rotation);
//!   exact FB-GVI, h = 0.5/L. Checks: W₂ and KL to the target (zero up to round-off: no bias).

use klflow::Sampler;
use klflow::potential::{Gaussian, LogisticRegression, Potential, PotentialHessian};
use klflow::vi::{Expectation, FbGvi, GviInfo};
use nalgebra::{DMatrix, DVector, Dyn};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

use crate::{Args, emit, median_per_iter};

/// Runs `steps` steps of `sampler`, timed in segments; returns (per-iteration seconds, the
/// last info).
fn timed<S: Sampler<Info = GviInfo>>(
    sampler: &S,
    state: &mut S::State,
    steps: usize,
    rng: &mut ChaCha8Rng,
) -> Result<(f64, GviInfo), String> {
    let mut last = None;
    let mut err = None;
    let per = median_per_iter(steps, 5, || {
        if err.is_none() {
            match sampler.step(state, rng) {
                Ok(i) => last = Some(i),
                Err(e) => err = Some(e),
            }
        }
    });
    if let Some(e) = err {
        return Err(e.to_string());
    }
    Ok((per, last.ok_or("no steps were run")?))
}

pub fn run(args: &Args) -> Result<(), String> {
    let target = args.target.clone().unwrap_or_else(|| "logreg".into());
    let d = args.d.unwrap_or(10);
    let steps = args.steps.unwrap_or(500);
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    match target.as_str() {
        "logreg" => logreg(args, d, args.n.unwrap_or(1000), steps, &mut rng),
        "gauss" => gauss(args, d, steps, &mut rng),
        other => Err(format!(
            "unknown gvi target `{other}`; known: logreg, gauss"
        )),
    }
}

fn logreg(
    args: &Args,
    d: usize,
    n: usize,
    steps: usize,
    rng: &mut ChaCha8Rng,
) -> Result<(), String> {
    let x = DMatrix::from_fn(n, d, |_, _| rng.sample::<f64, _>(StandardNormal));
    let theta = DVector::from_fn(d, |_, _| {
        (4.0 / d as f64).sqrt() * rng.sample::<f64, _>(StandardNormal)
    });
    let eta = &x * &theta;
    let y: Vec<f64> = eta
        .iter()
        .map(|e| f64::from(rng.random::<f64>() < 1.0 / (1.0 + (-e).exp())))
        .collect();
    let post = LogisticRegression::new(Dyn(d), &x, &y, 1.0).map_err(|e| e.to_string())?;
    let map = newton_map(&post, d);
    let h = 1.0 / post.smoothness().ok_or("no smoothness")?;
    let batch = 2 * d;
    let gvi = FbGvi::hessian_free(&post, h, Expectation::MonteCarlo { batch })
        .map_err(|e| e.to_string())?;
    let start =
        Gaussian::isotropic(DVector::zeros(d), 1.0 / n as f64).map_err(|e| e.to_string())?;
    let mut st = gvi.init(start, rng).map_err(|e| e.to_string())?;
    // Stochastic iterates hover around the optimum: report the average over the second half.
    let (mut k, mut count) = (0usize, 0usize);
    let (mut mean_avg, mut var_avg) = (DVector::zeros(d), DVector::zeros(d));
    let mut err = None;
    let per = median_per_iter(steps, 5, || {
        if err.is_some() {
            return;
        }
        match gvi.step(&mut st, rng) {
            Ok(_) => {
                k += 1;
                if k > steps / 2 {
                    count += 1;
                    mean_avg += st.mean();
                    var_avg += st.covariance().diagonal();
                }
            }
            Err(e) => err = Some(e),
        }
    });
    if let Some(e) = err {
        return Err(e.to_string());
    }
    let c = count.max(1) as f64;
    let (mean_avg, var_avg) = (mean_avg / c, var_avg / c);
    let checks = serde_json::json!({
        "algorithm": "stochastic FB-GVI, Hessian-free (Stein), batch 2d",
        "step_size": h,
        "batch": batch,
        "rel_mean_vs_map": (&mean_avg - &map).norm() / map.norm(),
        "mean_posterior_sd": var_avg.map(f64::sqrt).mean(),
        "lambda_min_last": st.covariance_eigenvalues().min(),
        "averaged_steps": count,
    });
    emit(args, n, d, 1, steps, per, checks);
    Ok(())
}

/// The posterior mode by Newton's method (the workloads' MAP reference).
fn newton_map(post: &LogisticRegression<Dyn>, d: usize) -> DVector<f64> {
    let mut w = DVector::zeros(d);
    let mut g = DVector::zeros(d);
    let mut hess = DMatrix::zeros(d, d);
    for _ in 0..50 {
        post.energy_grad(&w, &mut g);
        post.hessian(&w, &mut hess);
        let step = hess
            .clone()
            .cholesky()
            .expect("the posterior is strictly convex")
            .solve(&g);
        w -= &step;
        if step.norm() < 1e-13 * (1.0 + w.norm()) {
            break;
        }
    }
    w
}

fn gauss(args: &Args, d: usize, steps: usize, rng: &mut ChaCha8Rng) -> Result<(), String> {
    let g = DMatrix::from_fn(d, d, |_, _| rng.sample::<f64, _>(StandardNormal));
    let q = g.qr().q();
    let lam = DVector::from_fn(d, |i, _| 1.0 + 9.0 * i as f64 / (d.max(2) - 1) as f64);
    let a = &q * DMatrix::from_diagonal(&lam) * q.transpose();
    let a = (&a + a.transpose()) * 0.5;
    let target =
        Gaussian::from_precision(DVector::from_element(d, 1.0), a).map_err(|e| e.to_string())?;
    let h = 0.5 / target.smoothness().ok_or("no smoothness")?;
    let gvi = FbGvi::new(&target, h, Expectation::Quadratic).map_err(|e| e.to_string())?;
    let start = Gaussian::standard(Dyn(d));
    let mut st = gvi.init(start, rng).map_err(|e| e.to_string())?;
    let (per, info) = timed(&gvi, &mut st, steps, rng)?;
    let law = st.gaussian().map_err(|e| e.to_string())?;
    let checks = serde_json::json!({
        "algorithm": "FB-GVI, exact expectations",
        "step_size": h,
        "w2_to_target": law.w2(&target).map_err(|e| e.to_string())?,
        "kl_to_target": law.kl(&target).map_err(|e| e.to_string())?,
        "bw_grad_norm_sq": info.gradient_norm_sq,
        "lambda_min": info.min_eigenvalue,
    });
    emit(args, 0, d, 1, steps, per, checks);
    Ok(())
}
