//! Gaussian VI in pictures: the FB-GVI iterate converging on a non-Gaussian target.
//!
//! ```text
//! cargo run --release --example gvi
//! ```
//!
//! Forward–backward Gaussian VI (Diao et al. 2023; exact Hessians, 12 × 12 Gauss–Hermite
//! expectations, step h = 0.1) on the 2-D banana `x₁ ~ N(0, 1)`, `x₂ | x₁ ~ N(x₁²/2, 0.5²)`,
//! from a small Gaussian far from it. Left: the iterates' 2-sd ellipses over the target's
//! density contours (`U − U_min = k²/2`, k = 1, 2, 3). Right: the objective
//! `F(p_k) = E_{p_k}U − H(p_k)` minus its final value, which decreases monotonically.
//! Writes `out/gvi/ellipses.svg` and prints the final Gaussian against the exact moments (the
//! best Gaussian in KL(q‖π) is not moment-matched: it is narrower along the curved ridge).

#[path = "common/contour.rs"]
mod contour;

use std::error::Error;

use klflow::Sampler;
use klflow::potential::{Banana, Gaussian, Potential};
use klflow::vi::{Expectation, FbGvi, GviState};
use nalgebra::{Const, Matrix2, Vector2};
use plotters::prelude::*;
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

const DRAWN: [usize; 9] = [0, 1, 2, 4, 8, 15, 30, 60, 300];

/// The 2-sd ellipse `m + 2 Σ^{1/2} (cos t, sin t)` of an iterate.
fn ellipse(state: &GviState<Const<2>>) -> Vec<(f64, f64)> {
    let (m, vals, vecs) = (
        state.mean(),
        state.covariance_eigenvalues(),
        state.covariance_eigenvectors(),
    );
    (0..=120)
        .map(|i| {
            let t = std::f64::consts::TAU * i as f64 / 120.0;
            let p = m
                + vecs.column(0) * (2.0 * vals[0].sqrt() * t.cos())
                + vecs.column(1) * (2.0 * vals[1].sqrt() * t.sin());
            (p[0], p[1])
        })
        .collect()
}

fn main() -> Result<(), Box<dyn Error>> {
    let target = Banana::standard(Const::<2>);
    let gvi = FbGvi::new(&target, 0.1, Expectation::GaussHermite { nodes: 12 })?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let start = Gaussian::new(Vector2::new(2.2, -1.2), Matrix2::new(0.04, 0.0, 0.0, 0.01))?;
    let mut state = gvi.init(start, &mut rng)?;
    let mut ellipses = vec![(0, ellipse(&state))];
    let mut objective = Vec::new();
    for k in 1..=*DRAWN.last().unwrap() {
        let info = gvi.step(&mut state, &mut rng)?;
        objective.push(info.objective);
        if DRAWN.contains(&k) {
            ellipses.push((k, ellipse(&state)));
        }
    }
    let last = *objective.last().unwrap();
    let monotone = objective.windows(2).all(|w| w[1] <= w[0] + 1e-12);
    let (m, s) = (state.mean(), state.covariance());
    println!(
        "FB-GVI on the banana, {} steps: F = {last:.6} (monotone: {monotone})",
        objective.len()
    );
    println!(
        "Gaussian VI: mean ({:+.3}, {:+.3}), variances ({:.3}, {:.3}), cov {:+.3}",
        m[0],
        m[1],
        s[(0, 0)],
        s[(1, 1)],
        s[(0, 1)]
    );
    println!("exact:       mean (+0.000, +0.500), variances (1.000, 0.750), cov +0.000");

    std::fs::create_dir_all("out/gvi")?;
    let path = "out/gvi/ellipses.svg";
    let root = SVGBackend::new(path, (1300, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(680);

    let (xr, yr) = ((-3.2, 3.2), (-1.8, 4.2));
    let mut chart = ChartBuilder::on(&left)
        .caption(
            "FB-GVI iterates (2-sd ellipses) on a banana",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(40)
        .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)?;
    chart
        .configure_mesh()
        .x_desc("x1")
        .y_desc("x2")
        .light_line_style(WHITE)
        .draw()?;
    let u = |x: f64, y: f64| target.energy(&Vector2::new(x, y));
    for k in [1.0f64, 2.0, 3.0] {
        let shade = 100 + 40 * k as u8;
        let style = RGBColor(shade, shade, shade).stroke_width(1);
        chart.draw_series(
            contour::contour(&u, xr, yr, 100, 0.5 * k * k)
                .into_iter()
                .map(|s| PathElement::new(vec![s[0], s[1]], style)),
        )?;
    }
    let n = ellipses.len();
    for (i, (k, pts)) in ellipses.iter().enumerate() {
        // From light orange (early) to dark red (late).
        let f = i as f64 / (n - 1) as f64;
        let colour = RGBColor(
            (250.0 - 90.0 * f) as u8,
            (170.0 - 150.0 * f) as u8,
            (60.0 - 40.0 * f) as u8,
        );
        chart
            .draw_series(std::iter::once(PathElement::new(
                pts.clone(),
                colour.stroke_width(2),
            )))?
            .label(format!("k = {k}"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperMiddle)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;

    let gaps: Vec<(f64, f64)> = objective
        .iter()
        .enumerate()
        .map(|(k, f)| ((k + 1) as f64, (f - last).max(1e-16)))
        .take_while(|(_, g)| *g > 1e-14)
        .collect();
    let kmax = gaps.last().map_or(2.0, |g| g.0).max(2.0);
    let mut chart = ChartBuilder::on(&right)
        .caption("objective gap F(p_k) − F(p_final)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(60)
        .build_cartesian_2d(1.0..kmax, (1e-14..1e2).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("iteration k")
        .y_desc("gap")
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()?;
    chart.draw_series(LineSeries::new(
        gaps,
        RGBColor(31, 119, 180).stroke_width(2),
    ))?;
    root.present()?;
    println!("picture: {path}");
    Ok(())
}
