//! SVGD in pictures: particles moving onto a banana, plain SVGD against noisy SVGD.
//!
//! ```text
//! cargo run --release --example svgd
//! ```
//!
//! 100 particles start in a tight cluster off the target and follow SVGD (median-heuristic
//! RBF kernel, constant step 0.05); the same start, step and kernel with isotropic noise
//! (`Noise::isotropic()`, the `√(2γ/n)` scale of Priser, Bianchi & Salim 2025) in the second
//! row. Small multiples at iterations 0, 20, 100, 500, 2000 over the target's density contours
//! (1, 2, 3 "sd" levels, `U − U_min = k²/2`): `out/svgd/particles.svg`. Prints the KSD² and the
//! particles' moments against the exact ones.

#[path = "common/contour.rs"]
mod contour;

use std::error::Error;

use klflow::Sampler;
use klflow::kernel::Bandwidth;
use klflow::potential::{Banana, Potential};
use klflow::stein::{Noise, Svgd};
use nalgebra::{Const, DMatrix, Vector2};
use plotters::prelude::*;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

const SNAPSHOTS: [usize; 5] = [0, 20, 100, 500, 2000];
const X_RANGE: (f64, f64) = (-3.2, 3.2);
const Y_RANGE: (f64, f64) = (-1.8, 4.8);

/// Runs SVGD (or noisy SVGD) and returns the particles at each of `SNAPSHOTS`.
fn snapshots(
    svgd: &Svgd<&Banana<Const<2>>, Bandwidth>,
    x0: &DMatrix<f64>,
    label: &str,
) -> Result<Vec<DMatrix<f64>>, Box<dyn Error>> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut state = svgd.init(x0.clone(), &mut rng)?;
    let mut out = vec![state.particles().clone()];
    let mut ksd2 = f64::NAN;
    for k in 1..=*SNAPSHOTS.last().unwrap() {
        let info = svgd.step(&mut state, &mut rng)?;
        if k == 1 {
            println!("{label}: KSD² at the start {:.3e}", info.ksd2);
        }
        ksd2 = info.ksd2;
        if SNAPSHOTS.contains(&k) {
            out.push(state.particles().clone());
        }
    }
    let p = state.particles();
    let n = p.ncols() as f64;
    let mean = p.column_mean();
    let var: Vec<f64> = (0..2)
        .map(|i| p.row(i).iter().map(|x| (x - mean[i]).powi(2)).sum::<f64>() / (n - 1.0))
        .collect();
    println!(
        "{label}: KSD² at iteration {} {ksd2:.3e}; mean ({:+.3}, {:+.3}) [exact (0, 0.5)], \
         variance ({:.3}, {:.3}) [exact (1, 0.75)]",
        SNAPSHOTS.last().unwrap(),
        mean[0],
        mean[1],
        var[0],
        var[1]
    );
    Ok(out)
}

fn main() -> Result<(), Box<dyn Error>> {
    let target = Banana::standard(Const::<2>);
    let n = 100;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // A tight cluster at (1.5, −1): off the ridge x₂ = x₁²/2.
    let x0 = DMatrix::from_fn(2, n, |i, _| {
        let centre = if i == 0 { 1.5 } else { -1.0 };
        centre + 0.2 * rng.sample::<f64, _>(StandardNormal)
    });

    let plain = Svgd::new(&target, Bandwidth::Median, 0.05)?;
    let noisy = Svgd::new(&target, Bandwidth::Median, 0.05)?.with_noise(Noise::isotropic())?;
    let rows = [
        ("SVGD", snapshots(&plain, &x0, "plain SVGD")?),
        ("noisy SVGD", snapshots(&noisy, &x0, "noisy SVGD")?),
    ];

    std::fs::create_dir_all("out/svgd")?;
    let path = "out/svgd/particles.svg";
    let u = |x: f64, y: f64| target.energy(&Vector2::new(x, y));
    let levels: Vec<Vec<[(f64, f64); 2]>> = [1.0f64, 2.0, 3.0]
        .iter()
        .map(|k| contour::contour(&u, X_RANGE, Y_RANGE, 90, 0.5 * k * k))
        .collect();

    let root = SVGBackend::new(path, (1500, 660)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        "SVGD on a banana: 100 particles, median-heuristic RBF kernel, step 0.05",
        ("sans-serif", 22),
    )?;
    let panels = root.split_evenly((2, SNAPSHOTS.len()));
    let colours = [RGBColor(31, 119, 180), RGBColor(214, 39, 40)];
    for (r, (name, snaps)) in rows.iter().enumerate() {
        for (c, particles) in snaps.iter().enumerate() {
            let area = &panels[r * SNAPSHOTS.len() + c];
            let mut chart = ChartBuilder::on(area)
                .caption(
                    format!("{name}, iteration {}", SNAPSHOTS[c]),
                    ("sans-serif", 15),
                )
                .margin(6)
                .x_label_area_size(22)
                .y_label_area_size(28)
                .build_cartesian_2d(X_RANGE.0..X_RANGE.1, Y_RANGE.0..Y_RANGE.1)?;
            chart
                .configure_mesh()
                .light_line_style(WHITE)
                .x_labels(4)
                .y_labels(4)
                .draw()?;
            for (k, segs) in levels.iter().enumerate() {
                let shade = 120 + 45 * k as u8;
                let style = RGBColor(shade, shade, shade).stroke_width(1);
                chart.draw_series(
                    segs.iter()
                        .map(|s| PathElement::new(vec![s[0], s[1]], style)),
                )?;
            }
            chart.draw_series(
                particles
                    .column_iter()
                    .map(|p| Circle::new((p[0], p[1]), 2, colours[r].filled())),
            )?;
        }
    }
    root.present()?;
    println!("picture: {path}");
    Ok(())
}
