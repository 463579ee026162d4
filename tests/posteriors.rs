//! Samplers against gold-standard reference posteriors (`../shared/data/posteriordb`).
//!
//! Tolerances: a mean agrees when |m − μ_ref| < 4·√(MCSE_ref² + MCSE²), where MCSE is our
//! estimate's Monte Carlo standard error from the multi-chain ESS; an sd agrees within 10 %;
//! chains have mixed when the rank-normalised split R-hat is < 1.01.

use klflow::diagnostics::{mcse_mean, rhat};
use klflow::langevin::{Mala, MetricAdaptation, Warmup};
use klflow::potential::{EightSchools, LinearRegression, Parameterisation, Potential};
use klflow::run::{Trace, run_chains};
use nalgebra::{DMatrix, DVector, Dyn};
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use serde_json::Value;

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

/// Runs `chains` adapted-MALA chains (dense metric) and returns, per chain, the post-warm-up
/// draws mapped through `constrain`.
fn mala_draws<P: Potential<Dim = Dyn> + Sync>(
    target: &P,
    x0: DVector<f64>,
    warmup: usize,
    draws: usize,
    constrain: impl Fn(&[f64]) -> Vec<f64>,
) -> Vec<Vec<Vec<f64>>> {
    let w = Warmup {
        steps: warmup,
        target_accept: 0.574,
        metric: MetricAdaptation::Dense,
    };
    let mala = Mala::new(target, 0.01).unwrap().with_warmup(w).unwrap();
    let starts = (0..4u64)
        .map(|c| {
            let mut r = ChaCha8Rng::seed_from_u64(2026);
            r.set_stream(c);
            (x0.clone(), r)
        })
        .collect();
    let runs = run_chains(&mala, starts, warmup + draws, |_| {
        Trace::with_capacity(draws, 1, warmup)
    })
    .unwrap();
    for r in &runs {
        assert_eq!(r.state.divergences(), 0, "divergent proposals");
    }
    runs.into_iter()
        .map(|r| {
            r.observer
                .samples()
                .iter()
                .map(|u| constrain(u.as_slice()))
                .collect()
        })
        .collect()
}

/// Compares per-parameter means, sds and R-hat with the reference.
fn compare(name: &str, draws: &[Vec<Vec<f64>>], reference: &Value) {
    let params = reference["parameters"].as_array().unwrap();
    for (k, p) in params.iter().enumerate() {
        let chains: Vec<Vec<f64>> = draws
            .iter()
            .map(|c| c.iter().map(|x| x[k]).collect())
            .collect();
        let all: Vec<f64> = chains.iter().flatten().copied().collect();
        let n = all.len() as f64;
        let mean = all.iter().sum::<f64>() / n;
        let sd = (all.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let (ref_mean, ref_sd, ref_mcse) = (
            p["mean"].as_f64().unwrap(),
            p["sd"].as_f64().unwrap(),
            p["mcse_mean"].as_f64().unwrap(),
        );
        let mcse = mcse_mean(&chains).unwrap();
        let r = rhat(&chains).unwrap();
        let z = (mean - ref_mean) / (ref_mcse * ref_mcse + mcse * mcse).sqrt();
        let pname = p["name"].as_str().unwrap();
        eprintln!(
            "{name} {pname}: mean {mean:.4} (ref {ref_mean:.4}, z = {z:+.2}), sd {sd:.4} (ref {ref_sd:.4}), R-hat {r:.4}, MCSE {mcse:.4}"
        );
        assert!(
            z.abs() < 4.0,
            "{name} {pname}: mean {mean} vs {ref_mean} ({z:.2} combined MCSE)"
        );
        assert!(
            (sd / ref_sd - 1.0).abs() < 0.10,
            "{name} {pname}: sd {sd} vs {ref_sd}"
        );
        assert!(r < 1.01, "{name} {pname}: R-hat {r}");
    }
}

/// Eight schools, non-centred (d = 10), adapted MALA: 4 chains × 100 000 draws.
#[test]
fn mala_recovers_eight_schools_noncentered() {
    let dir = "eight_schools-eight_schools_noncentered";
    let data = load(dir, "data.json");
    let post = EightSchools::new(
        &floats(&data["y"]),
        &floats(&data["sigma"]),
        Parameterisation::NonCentered,
    )
    .unwrap();
    let draws = mala_draws(&post, DVector::zeros(10), 3_000, 100_000, |u| {
        post.constrain(u).unwrap()
    });
    compare("eight schools", &draws, &load(dir, "reference.json"));
}

/// kidiq (d = 3; corr(β₁, β₂) ≈ −0.99, scales 6 / 0.06 / 0.03): adapted MALA with a dense metric.
#[test]
fn mala_recovers_kidiq() {
    let dir = "kidiq-kidscore_momiq";
    let data = load(dir, "data.json");
    let (y, iq) = (floats(&data["kid_score"]), floats(&data["mom_iq"]));
    let x = DMatrix::from_fn(y.len(), 2, |i, j| if j == 0 { 1.0 } else { iq[i] });
    let post = LinearRegression::new(Dyn(3), &x, &y, 2.5).unwrap();
    let x0 = DVector::from_vec(vec![0.0, 0.0, 3.0]);
    let draws = mala_draws(&post, x0, 5_000, 100_000, |u| vec![u[0], u[1], u[2].exp()]);
    compare("kidiq", &draws, &load(dir, "reference.json"));
}
