//! The program of `docs/tutorial.md`: from a model to a trusted posterior and a picture.
//!
//! ```text
//! cargo run --release --example tutorial                    # summary + out/tutorial/trace.svg
//! cargo run --release --example tutorial --features export  # ... + out/tutorial/draws.csv
//! ```
//!
//! A Poisson regression `y_i ~ Poisson(exp(a + b x_i))` with `a, b ~ N(0, 2²)` on eight
//! made-up counts: (1) the target as a hand-written [`Potential`], (2) the same model through
//! [`AutoDiff`] and a gradient check, (3) adapted MALA on four parallel chains, (4) the
//! diagnostics [`Summary`], (5) CSV export, (6) a trace plot.

use std::error::Error;

use klflow::diagnostics::Summary;
use klflow::langevin::{Mala, MetricAdaptation, Warmup};
use klflow::potential::{AutoDiff, DualFunction, Potential, check_gradient};
use klflow::run::{Trace, run_chains};
use nalgebra::{Const, OVector, SVector, Vector2};
use num_dual::DualNum;
use plotters::prelude::*;
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

// ---- Step 1: the target, U = −log posterior (up to a constant) -------------------------------

/// Counts `y` at doses `x`; log-rate `a + b x`; independent N(0, 2²) priors on `a` and `b`.
struct PoissonRegression {
    x: Vec<f64>,
    y: Vec<f64>,
}

impl Potential for PoissonRegression {
    type Dim = Const<2>;

    fn dim(&self) -> Const<2> {
        Const
    }

    fn energy(&self, theta: &SVector<f64, 2>) -> f64 {
        let mut grad = SVector::zeros();
        self.energy_grad(theta, &mut grad)
    }

    // U(a, b) = Σ [exp(a + b xᵢ) − yᵢ (a + b xᵢ)] + (a² + b²)/8
    fn energy_grad(&self, theta: &SVector<f64, 2>, grad: &mut SVector<f64, 2>) -> f64 {
        let (a, b) = (theta[0], theta[1]);
        let mut u = (a * a + b * b) / 8.0;
        *grad = theta / 4.0;
        for (&x, &y) in self.x.iter().zip(&self.y) {
            let eta = a + b * x;
            let rate = eta.exp();
            u += rate - y * eta;
            grad[0] += rate - y;
            grad[1] += (rate - y) * x;
        }
        u
    }
}

// ---- Step 2: the same energy, differentiated automatically -----------------------------------

/// The energy written once for any number type; `AutoDiff` gives its gradient and Hessian.
struct PoissonRegressionAd<'a>(&'a PoissonRegression);

impl DualFunction for PoissonRegressionAd<'_> {
    type Dim = Const<2>;

    fn dim(&self) -> Const<2> {
        Const
    }

    fn eval<T: DualNum<Primitive = f64>>(&self, theta: &OVector<T, Const<2>>) -> T {
        let (a, b) = (theta[0].clone(), theta[1].clone());
        let mut u = (a.clone() * a.clone() + b.clone() * b.clone()) / 8.0;
        for (&x, &y) in self.0.x.iter().zip(&self.0.y) {
            let eta = a.clone() + b.clone() * x;
            u += eta.clone().exp() - eta * y;
        }
        u
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let model = PoissonRegression {
        x: vec![-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0],
        y: vec![1.0, 0.0, 2.0, 3.0, 3.0, 6.0, 8.0, 12.0],
    };

    // Check the hand-written gradient against finite differences and against autodiff.
    let theta = Vector2::new(0.7, 0.4);
    let check = check_gradient(&model, &theta)?;
    println!(
        "gradient check: max relative error {:.1e}",
        check.max_rel_error
    );
    assert!(check.max_rel_error < 1e-6, "the gradient is wrong");
    let (mut g_hand, mut g_auto) = (SVector::zeros(), SVector::zeros());
    model.energy_grad(&theta, &mut g_hand);
    AutoDiff(PoissonRegressionAd(&model)).energy_grad(&theta, &mut g_auto);
    println!(
        "hand-written vs autodiff gradient: {:.1e}",
        (g_hand - g_auto).norm()
    );
    assert!((g_hand - g_auto).norm() < 1e-12);

    // ---- Step 3: adapted MALA on four parallel chains ----------------------------------------
    let (warmup, draws) = (1_000, 5_000);
    let mala = Mala::new(&model, 0.1)?.with_warmup(Warmup {
        steps: warmup,
        target_accept: 0.574,
        metric: MetricAdaptation::Dense,
    })?;
    let starts = (0..4u64)
        .map(|chain| {
            let mut rng = ChaCha8Rng::seed_from_u64(42);
            rng.set_stream(chain); // one seed, an independent stream per chain
            (Vector2::new(-1.0 + chain as f64, 1.0 - chain as f64), rng)
        })
        .collect();
    let runs = run_chains(&mala, starts, warmup + draws, |_| {
        Trace::with_capacity(draws, 1, warmup) // keep the draws after warm-up
    })?;
    for (c, r) in runs.iter().enumerate() {
        println!(
            "chain {c}: step {:.3}, acceptance {:.2}, divergences {}",
            r.state.step_size(),
            r.state.acceptance_rate(),
            r.state.divergences()
        );
    }
    let chains: Vec<Vec<Vector2<f64>>> = runs
        .into_iter()
        .map(|r| r.observer.into_samples())
        .collect();

    // ---- Step 4: read the diagnostics ---------------------------------------------------------
    let summary = Summary::new(&chains)?;
    println!("parameters: 0 = a (intercept), 1 = b (slope)\n{summary}");
    println!(
        "max R-hat {:.4} (want < 1.01), min bulk ESS {:.0} (want > 400)",
        summary.max_r_hat(),
        summary.min_ess_bulk()
    );
    assert!(summary.max_r_hat() < 1.01 && summary.min_ess_bulk() > 400.0);

    std::fs::create_dir_all("out/tutorial")?;

    // ---- Step 5: export for ArviZ / pandas (needs the `export` feature) ----------------------
    #[cfg(feature = "export")]
    {
        let file = std::fs::File::create("out/tutorial/draws.csv")?;
        klflow::export::write_csv(file, &["a", "b"], &chains)?;
        println!("draws: out/tutorial/draws.csv");
    }

    // ---- Step 6: a trace plot of the slope b (first 500 draws), one colour per chain ----------
    let shown = 500;
    let path = "out/tutorial/trace.svg";
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let all = chains.iter().flatten().map(|t| t[1]);
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Poisson regression: trace of the slope b (4 chains, first 500 draws)",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(0..shown, lo..hi)?;
    chart.configure_mesh().x_desc("draw").y_desc("b").draw()?;
    let colours = [BLUE, RED, GREEN, MAGENTA];
    for (chain, colour) in chains.iter().zip(colours) {
        chart.draw_series(LineSeries::new(
            chain.iter().take(shown).enumerate().map(|(t, v)| (t, v[1])),
            colour.mix(0.7).stroke_width(1),
        ))?;
    }
    root.present()?;
    println!("picture: {path}");
    Ok(())
}

/// `cargo test` runs the whole tutorial (Cargo.toml sets `test = true` for this example).
#[cfg(test)]
mod tests {
    #[test]
    fn tutorial_runs_end_to_end() {
        super::main().expect("the tutorial runs");
    }
}
