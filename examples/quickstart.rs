//! klflow in one command: sample a 2-D banana with the unadjusted Langevin algorithm, compare
//! the moments with the exact ones, and draw the samples over the target's density.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! Writes `out/quickstart/banana.svg`.

use std::error::Error;
use std::time::Instant;

use klflow::Sampler;
use klflow::langevin::Ula;
use klflow::potential::{Banana, Potential};
use klflow::run::{OnlineMoments, Trace, run};
use nalgebra::{Const, Vector2};
use plotters::prelude::*;
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

fn main() -> Result<(), Box<dyn Error>> {
    // x₁ ~ N(0, 1), x₂ | x₁ ~ N(x₁²/2, 0.5²): a curved ridge, not log-concave.
    let target = Banana::standard(Const::<2>);
    let h = 0.01;
    let steps = 400_000;
    let burn_in = 5_000;
    let sampler = Ula::new(&target, h)?;

    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let mut state = sampler.init(Vector2::zeros(), &mut rng)?;
    let mut observers = (
        OnlineMoments::with_burn_in(Const::<2>, burn_in),
        Trace::with_capacity(2_000, (steps - burn_in) / 2_000, burn_in),
    );
    let start = Instant::now();
    run(&sampler, &mut state, steps, &mut rng, &mut observers)?;
    let elapsed = start.elapsed();
    let (moments, trace) = observers;

    let (mean, var) = (target.mean(), target.variance());
    let cov = moments.covariance();
    println!("ULA on a 2-D banana, h = {h}, {steps} steps ({burn_in} burn-in)");
    println!("{:<12} {:>10} {:>10}", "", "estimate", "exact");
    println!(
        "{:<12} {:>10.4} {:>10.4}",
        "E x1",
        moments.mean()[0],
        mean[0]
    );
    println!(
        "{:<12} {:>10.4} {:>10.4}",
        "E x2",
        moments.mean()[1],
        mean[1]
    );
    println!("{:<12} {:>10.4} {:>10.4}", "Var x1", cov[(0, 0)], var[0]);
    println!("{:<12} {:>10.4} {:>10.4}", "Var x2", cov[(1, 1)], var[1]);
    println!("{:<12} {:>10.4} {:>10.4}", "Cov x1,x2", cov[(0, 1)], 0.0);
    println!(
        "time: {:.1} ms ({:.0} ns per step)",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e9 / steps as f64
    );
    println!("(ULA is O(h)-biased: its stationary law is not exactly the target.)");

    std::fs::create_dir_all("out/quickstart")?;
    let path = "out/quickstart/banana.svg";
    draw(&target, trace.samples(), path)?;
    println!("picture: {path}");
    Ok(())
}

/// Density bands of the target (filled contours) with the samples on top.
fn draw(
    target: &Banana<Const<2>>,
    samples: &[Vector2<f64>],
    path: &str,
) -> Result<(), Box<dyn Error>> {
    let (x_range, y_range) = (-3.5..3.5, -1.5..5.5);
    let root = SVGBackend::new(path, (720, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("ULA samples on the banana target", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(x_range.clone(), y_range.clone())?;
    chart
        .configure_mesh()
        .x_desc("x1")
        .y_desc("x2")
        .light_line_style(WHITE)
        .draw()?;

    // Density relative to its maximum (at the origin, U = 0), in bands like filled contours.
    let levels = [0.01, 0.05, 0.15, 0.35, 0.6, 0.85];
    let (nx, ny) = (140, 140);
    let (dx, dy) = (
        (x_range.end - x_range.start) / nx as f64,
        (y_range.end - y_range.start) / ny as f64,
    );
    let mut cells = Vec::new();
    for i in 0..nx {
        for j in 0..ny {
            let (x, y) = (
                x_range.start + (i as f64 + 0.5) * dx,
                y_range.start + (j as f64 + 0.5) * dy,
            );
            let p = (-target.energy(&Vector2::new(x, y))).exp();
            let band = levels.iter().filter(|l| p >= **l).count();
            if band > 0 {
                let shade = 1.0 - 0.13 * band as f64;
                let c = RGBColor(
                    (255.0 * shade) as u8,
                    (255.0 * (0.55 + 0.45 * shade)) as u8,
                    255,
                );
                let (x0, y0) = (x_range.start + i as f64 * dx, y_range.start + j as f64 * dy);
                cells.push(Rectangle::new([(x0, y0), (x0 + dx, y0 + dy)], c.filled()));
            }
        }
    }
    chart.draw_series(cells)?;
    chart.draw_series(
        samples
            .iter()
            .map(|s| Circle::new((s[0], s[1]), 2, RGBColor(200, 40, 40).mix(0.6).filled())),
    )?;
    root.present()?;
    Ok(())
}
