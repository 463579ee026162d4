//! More sampler families against the reference posteriors (`../shared/data/posteriordb`):
//! underdamped Langevin, SVGD and FB-GVI on well-behaved targets, and adapted MALA on the
//! centred eight schools (a funnel) as the documented hard case.
//!
//! Reference statistics (posteriordb, 10 000 near-independent NUTS draws): a reference mean
//! carries a Monte Carlo error `mcse_ref ≈ sd/100` and a reference sd a relative error
//! `≈ 1/√(2·ESS) ≈ 0.7 %`. Each test states its own tolerance and why.

use klflow::Sampler;
use klflow::diagnostics::ParamSummary;
use klflow::kernel::Bandwidth;
use klflow::langevin::{KineticIntegrator, Mala, MetricAdaptation, UnderdampedLangevin, Warmup};
use klflow::potential::{EightSchools, Gaussian, LinearRegression, Parameterisation, Potential};
use klflow::run::{Trace, run_chains};
use klflow::stein::Svgd;
use klflow::vi::{Expectation, FbGvi};
use nalgebra::{DMatrix, DVector, Dyn};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use serde_json::Value;

const ES: &str = "eight_schools-eight_schools_noncentered";
const KIDIQ: &str = "kidiq-kidscore_momiq";

fn load(dir: &str, file: &str) -> Value {
    let path = format!(
        "{}/../shared/data/posteriordb/{dir}/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reference data missing at {path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap()
}

fn eight_schools(p: Parameterisation) -> EightSchools {
    let data = load(ES, "data.json");
    EightSchools::new(&floats(&data["y"]), &floats(&data["sigma"]), p).unwrap()
}

/// Four chains from `x0`, on independent streams of one seed.
fn starts(x0: &DVector<f64>) -> Vec<(DVector<f64>, ChaCha8Rng)> {
    (0..4u64)
        .map(|c| {
            let mut r = ChaCha8Rng::seed_from_u64(2027);
            r.set_stream(c);
            (x0.clone(), r)
        })
        .collect()
}

/// The summary of coordinate `k` of `draws[chain][t]`.
fn summarise(draws: &[Vec<Vec<f64>>], k: usize) -> ParamSummary {
    let chains: Vec<Vec<f64>> = draws
        .iter()
        .map(|c| c.iter().map(|x| x[k]).collect())
        .collect();
    ParamSummary::new(&chains).unwrap()
}

fn mean_sd(x: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = x.clone().count() as f64;
    let m = x.clone().sum::<f64>() / n;
    let v = x.map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, v.sqrt())
}

// ---------------------------------------------------------------------------------------------
// Underdamped Langevin (BAOAB) on eight schools, non-centred.

/// BAOAB, friction γ = 1, step η = 0.2, 4 chains × 100 000 steps (thinned by 5).
///
/// Underdamped Langevin is not Metropolis-adjusted: its stationary law differs from the target
/// by a discretisation bias (O(η²) for BAOAB's configurational averages, Leimkuhler & Matthews
/// 2013; O(η) for the exact-OU/frozen-force integrator). We measured the bias on this target
/// at η ∈ {0.05, 0.1, 0.2} (4 × 20 000/η steps each): the largest |mean − ref|/sd was 0.019,
/// 0.019, 0.017 and the sd ratios stayed within [0.986, 1.010], with no trend in η — i.e. at
/// η = 0.2 the bias is below the Monte Carlo error and the usual MCMC tolerances apply:
/// means within 4 combined MCSE, sds within 10 %, R-hat < 1.01.
#[test]
fn underdamped_baoab_recovers_eight_schools_noncentered() {
    let post = eight_schools(Parameterisation::NonCentered);
    let reference = load(ES, "reference.json");
    let ul = UnderdampedLangevin::new(&post, 1.0, 0.2, KineticIntegrator::Baoab).unwrap();
    let (steps, thin, burn) = (100_000, 5, 2_000);
    let runs = run_chains(&ul, starts(&DVector::zeros(10)), steps, |_| {
        Trace::with_capacity(steps / thin, thin, burn)
    })
    .unwrap();
    let draws: Vec<Vec<Vec<f64>>> = runs
        .into_iter()
        .map(|r| {
            r.observer
                .samples()
                .iter()
                .map(|u| post.constrain(u.as_slice()).unwrap())
                .collect()
        })
        .collect();
    for (k, p) in reference["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let s = summarise(&draws, k);
        let (m, sd, mc) = (num(p, "mean"), num(p, "sd"), num(p, "mcse_mean"));
        let z = (s.mean - m) / (mc * mc + s.mcse_mean * s.mcse_mean).sqrt();
        let name = p["name"].as_str().unwrap();
        eprintln!(
            "BAOAB eight schools {name}: mean {:.4} (ref {m:.4}, z = {z:+.2}), sd {:.4} (ref {sd:.4}), R-hat {:.4}, ESS {:.0}",
            s.mean, s.sd, s.r_hat, s.ess_bulk
        );
        assert!(z.abs() < 4.0, "{name}: mean {} vs {m} (z = {z:.2})", s.mean);
        assert!(
            (s.sd / sd - 1.0).abs() < 0.10,
            "{name}: sd {} vs {sd}",
            s.sd
        );
        assert!(s.r_hat < 1.01, "{name}: R-hat {}", s.r_hat);
    }
}

// ---------------------------------------------------------------------------------------------
// SVGD on eight schools, non-centred (unconstrained scale).

/// 200 particles, median-heuristic RBF kernel, constant step 0.1, 2 000 steps, from N(0, I).
///
/// Expectation: SVGD's particles are a deterministic quadrature, not a Monte Carlo sample. Its
/// means are accurate (the mean of ∇log π·k terms balances); its variances are known to be
/// **under**estimated, increasingly with d/n (the repulsion of the RBF kernel weakens in
/// higher dimension: Ba et al. 2021, Zhuo et al. 2018). Measured at d = 10, n = 200:
/// |Δmean|/sd ≤ 0.036, sd ratios 0.945–0.989 (all < 1). Asserted: every |Δmean| < 0.1 sd
/// (≈ 1.4 i.i.d. standard errors sd/√200, and 2.8× the measured worst), every sd ratio in
/// [0.85, 1.02] (1.02 allows the reference's own 0.7 % sd error), and the mean sd ratio below
/// 0.99 — the known direction of the error.
#[test]
fn svgd_on_eight_schools_noncentered_matches_means_and_underestimates_spread() {
    let post = eight_schools(Parameterisation::NonCentered);
    let reference = load(ES, "reference.json");
    let unconstrained = reference["unconstrained"].as_array().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let n = 200;
    let x0 = DMatrix::from_fn(10, n, |_, _| rng.sample::<f64, _>(StandardNormal));
    let svgd = Svgd::new(&post, Bandwidth::Median, 0.1).unwrap();
    let mut st = svgd.init(x0, &mut rng).unwrap();
    let first = svgd.step(&mut st, &mut rng).unwrap().ksd2;
    let mut last = first;
    for _ in 1..2_000 {
        last = svgd.step(&mut st, &mut rng).unwrap().ksd2;
    }
    eprintln!("SVGD eight schools: KSD² {first:.3e} -> {last:.3e}");
    assert!(last < 0.02 * first, "KSD² {first} -> {last}");
    let mut ratios = Vec::new();
    for (k, q) in unconstrained.iter().enumerate() {
        let (m, sd) = mean_sd(st.particles().row(k).iter().copied());
        let (rm, rs) = (num(q, "mean"), num(q, "sd"));
        let name = q["name"].as_str().unwrap();
        eprintln!(
            "SVGD eight schools {name}: mean {m:.4} (ref {rm:.4}, Δ/sd = {:+.3}), sd ratio {:.3}",
            (m - rm) / rs,
            sd / rs
        );
        assert!((m - rm).abs() < 0.1 * rs, "{name}: mean {m} vs {rm}");
        assert!((0.85..1.02).contains(&(sd / rs)), "{name}: sd {sd} vs {rs}");
        ratios.push(sd / rs);
    }
    let avg = ratios.iter().sum::<f64>() / ratios.len() as f64;
    eprintln!("SVGD eight schools: mean sd ratio {avg:.4}");
    assert!(avg < 0.99, "SVGD should underestimate the spread: {avg}");
}

// ---------------------------------------------------------------------------------------------
// FB-GVI on kidiq.

/// `U(c + T z)`: a fixed affine reparameterisation (preconditioner) of a potential.
struct Affine<P> {
    inner: P,
    c: DVector<f64>,
    t: DMatrix<f64>,
}

impl<P: Potential<Dim = Dyn>> Potential for Affine<P> {
    type Dim = Dyn;
    fn dim(&self) -> Dyn {
        Dyn(self.c.len())
    }
    fn energy(&self, z: &DVector<f64>) -> f64 {
        self.inner.energy(&(&self.c + &self.t * z))
    }
    fn energy_grad(&self, z: &DVector<f64>, grad: &mut DVector<f64>) -> f64 {
        let mut g = DVector::zeros(self.c.len());
        let v = self.inner.energy_grad(&(&self.c + &self.t * z), &mut g);
        grad.copy_from(&(self.t.transpose() * g));
        v
    }
}

/// Hessian-free FB-GVI (degree-3 cubature, h = 0.5, 200 steps) on kidiq, preconditioned by the
/// data alone: `u = c + T z` with `c = (β̂_OLS, log σ̂)` and `T = diag(σ̂·chol((XᵀX)⁻¹), 1/√(2N))`
/// (kidiq's raw coordinates have condition number ≈ 5·10⁵). Gaussian VI is affine-equivariant,
/// so the optimum mapped back is the optimum in u.
///
/// Expectation, from the model: given σ, β is exactly N(β̂, σ²(XᵀX)⁻¹), so the posterior mean of
/// β is β̂ and Cov(β, log σ) = 0; the VI objective is symmetric under β − β̂ ↦ β̂ − β, so the
/// Gaussian VI mean of β is β̂ too (asserted to 1e-6 sd), and the comparison with the reference
/// mean is limited only by the reference's Monte Carlo error: asserted within 4 `mcse_ref`
/// (measured: 1.9 and 2.3 for β, 0.3 for log σ). Spreads: Gaussian VI is mode-seeking and
/// slightly under-covers a posterior that is Gaussian up to O(1/N) (N = 434); measured sd ratios
/// 0.992, 0.992, 0.997. Asserted within 3 % (≈ 4 reference sd errors of 0.7 %), and
/// corr(β₁, β₂) within 0.005 of the reference (−0.9893), cross-correlations with log σ within
/// 4/√ESS = 0.04 of the reference's (noise around 0).
#[test]
fn fb_gvi_recovers_kidiq_unconstrained_mean_and_covariance() {
    let data = load(KIDIQ, "data.json");
    let (y, iq) = (floats(&data["kid_score"]), floats(&data["mom_iq"]));
    let x = DMatrix::from_fn(y.len(), 2, |i, j| if j == 0 { 1.0 } else { iq[i] });
    let post = LinearRegression::new(Dyn(3), &x, &y, 2.5).unwrap();
    let n = y.len() as f64;
    let yv = DVector::from_column_slice(&y);
    let xtx = x.transpose() * &x;
    let beta = xtx
        .clone()
        .cholesky()
        .unwrap()
        .solve(&(x.transpose() * &yv));
    let s_hat = ((&yv - &x * &beta).norm_squared() / (n - 2.0)).sqrt();
    let l = xtx.try_inverse().unwrap().cholesky().unwrap().l();
    let mut t = DMatrix::zeros(3, 3);
    t.view_mut((0, 0), (2, 2)).copy_from(&(l * s_hat));
    t[(2, 2)] = 1.0 / (2.0 * n).sqrt();
    let c = DVector::from_vec(vec![beta[0], beta[1], s_hat.ln()]);
    let target = Affine {
        inner: &post,
        c: c.clone(),
        t: t.clone(),
    };
    let gvi = FbGvi::hessian_free(&target, 0.5, Expectation::Cubature).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let start = Gaussian::isotropic(DVector::from_element(3, 2.0), 4.0).unwrap();
    let mut st = gvi.init(start, &mut rng).unwrap();
    let mut info = None;
    for _ in 0..200 {
        info = Some(gvi.step(&mut st, &mut rng).unwrap());
    }
    let info = info.unwrap();
    eprintln!("FB-GVI kidiq: ‖E∇U‖² = {:e}", info.gradient_norm_sq);
    assert!(info.gradient_norm_sq < 1e-16);
    let m = &c + &t * st.mean();
    let s = &t * st.covariance() * t.transpose();

    let reference = load(KIDIQ, "reference.json");
    let un = reference["unconstrained"].as_array().unwrap();
    let rcov: Vec<Vec<f64>> = reference["unconstrained_cov"]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect();
    for k in 0..3 {
        let (rm, rs, mc) = (
            num(&un[k], "mean"),
            num(&un[k], "sd"),
            num(&un[k], "mcse_mean"),
        );
        let name = un[k]["name"].as_str().unwrap();
        let ratio = s[(k, k)].sqrt() / rs;
        eprintln!(
            "FB-GVI kidiq {name}: mean {:.5} (ref {rm:.5}, {:+.2} mcse_ref), sd ratio {ratio:.4}",
            m[k],
            (m[k] - rm) / mc
        );
        if k < 2 {
            assert!(
                (m[k] - beta[k]).abs() < 1e-6 * rs,
                "{name}: {} vs β̂ {}",
                m[k],
                beta[k]
            );
        }
        assert!(
            (m[k] - rm).abs() < 4.0 * mc,
            "{name}: mean {} vs {rm}",
            m[k]
        );
        assert!((ratio - 1.0).abs() < 0.03, "{name}: sd ratio {ratio}");
    }
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        let r = s[(a, b)] / (s[(a, a)] * s[(b, b)]).sqrt();
        let rr = rcov[a][b] / (rcov[a][a] * rcov[b][b]).sqrt();
        eprintln!("FB-GVI kidiq corr({a}, {b}) = {r:+.4} (ref {rr:+.4})");
        let tol = if (a, b) == (0, 1) { 0.005 } else { 0.04 };
        assert!((r - rr).abs() < tol, "corr({a}, {b}) {r} vs {rr}");
    }
}

// ---------------------------------------------------------------------------------------------
// The hard case: centred eight schools (a funnel).

/// Adapted MALA (dense metric, as in `tests/posteriors.rs`) on the *centred* eight schools:
/// 4 chains × (3 000 warm-up + 100 000) draws from 0.
///
/// Why it fails: in the centred parameterisation θ_j | μ, τ ~ N(μ, τ), so the scale of the θ
/// directions shrinks with τ — a funnel. One step size and one (dense) metric cannot fit both
/// the wide mouth (τ ≈ 10) and the narrow neck (τ ≈ 0.3): the warm-up settles on a step that is
/// too large for the neck, so the chains rarely enter it and, when they do, stick there.
/// Expected and asserted:
/// * the diagnostics flag it: max rank-normalised R-hat > 1.01 and the smallest bulk ESS
///   below 1 000 out of 400 000 draws (the same sampler on the non-centred form gives R-hat
///   < 1.01 in `tests/posteriors.rs`);
/// * the neck is under-sampled: fewer than 3 % of draws have τ below the reference's 5 %
///   quantile (0.257), and the sd of log τ is below 0.9 × the reference's 1.174. With an
///   ESS of a few dozen these two are not statistically sharp for one run; they held for all
///   five seeds we tried and are asserted for this fixed seed as a regression check.
///
/// Measured over five seeds: max R-hat 1.03–1.14, min bulk ESS 21–270, P(τ < q05_ref)
/// 0–2.2 %, sd(log τ)/ref 0.66–0.84, log τ biased upwards by 0.04–0.28 sd. No proposal was
/// flagged divergent (MALA's energy-error criterion does not fire here): the R-hat / ESS
/// diagnostics are the signal, not the divergence count.
#[test]
fn mala_on_centered_eight_schools_is_flagged_by_diagnostics() {
    let post = eight_schools(Parameterisation::Centered);
    let reference = load(ES, "reference.json");
    let params = reference["parameters"].as_array().unwrap();
    let (warmup, draws) = (3_000, 100_000);
    let w = Warmup {
        steps: warmup,
        target_accept: 0.574,
        metric: MetricAdaptation::Dense,
    };
    let mala = Mala::new(&post, 0.01).unwrap().with_warmup(w).unwrap();
    let runs = run_chains(&mala, starts(&DVector::zeros(10)), warmup + draws, |_| {
        Trace::with_capacity(draws, 1, warmup)
    })
    .unwrap();
    for r in &runs {
        eprintln!(
            "centred eight schools chain: step {:.4}, acceptance {:.3}, divergences {}",
            r.state.step_size(),
            r.state.acceptance_rate(),
            r.state.divergences()
        );
    }
    // Constrained (θ, μ, τ) and, last, log τ.
    let d: Vec<Vec<Vec<f64>>> = runs
        .iter()
        .map(|r| {
            r.observer
                .samples()
                .iter()
                .map(|u| {
                    let mut v = post.constrain(u.as_slice()).unwrap();
                    v.push(u[9]);
                    v
                })
                .collect()
        })
        .collect();
    let summaries: Vec<ParamSummary> = (0..11).map(|k| summarise(&d, k)).collect();
    for (k, s) in summaries.iter().enumerate().take(10) {
        eprintln!(
            "centred eight schools {}: mean {:.3} (ref {:.3}), R-hat {:.4}, ESS bulk {:.0}",
            params[k]["name"].as_str().unwrap(),
            s.mean,
            num(&params[k], "mean"),
            s.r_hat,
            s.ess_bulk
        );
    }
    let max_rhat = summaries.iter().map(|s| s.r_hat).fold(0.0, f64::max);
    let min_ess = summaries
        .iter()
        .map(|s| s.ess_bulk)
        .fold(f64::INFINITY, f64::min);
    let log_tau = &summaries[10];
    let ref_log_tau = &reference["unconstrained"][9];
    let q05 = num(&params[9], "q05");
    let below = d.iter().flatten().filter(|x| x[9] < q05).count() as f64 / (4 * draws) as f64;
    let sd_ratio = log_tau.sd / num(ref_log_tau, "sd");
    eprintln!(
        "centred eight schools: max R-hat {max_rhat:.4}, min ESS bulk {min_ess:.0} of {}, \
         P(τ < {q05:.3}) = {below:.4} (should be 0.05), sd(log τ)/ref = {sd_ratio:.3}, \
         mean log τ {:.3} (ref {:.3})",
        4 * draws,
        log_tau.mean,
        num(ref_log_tau, "mean")
    );
    assert!(
        max_rhat > 1.01,
        "the funnel went unflagged: R-hat {max_rhat}"
    );
    assert!(
        min_ess < 1_000.0,
        "the funnel went unflagged: ESS {min_ess}"
    );
    assert!(below < 0.03, "the neck was sampled: {below}");
    assert!(sd_ratio < 0.9, "sd(log τ) ratio {sd_ratio}");
}
