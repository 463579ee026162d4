//! Score-based diffusion in pictures: reverse-time DDPM samples of a 2-D Gaussian mixture.
//!
//! ```text
//! cargo run --release --example diffusion
//! ```
//!
//! The data law is a mixture of six Gaussians (sd 0.2) on a circle of radius 2 with unequal
//! weights. 3 000 particles start from `N(0, I)` at `T = 6` and follow the reverse SDE with the
//! exact mixture score ([`MixtureScore`]) and the exponential integrator on a geometric grid of
//! 200 steps down to `δ = 10⁻³`. Each panel shows the particles at one forward time `t` over the
//! contours of the exact marginal `q_t` (the data law pushed through the OU process
//! `dX = −X dt + √2 dB`); the last panel is the output over the data law itself.
//! Writes `out/diffusion/reverse.svg`; prints the fraction of samples nearest each component
//! against its weight.

#[path = "common/contour.rs"]
mod contour;

use std::error::Error;

use klflow::Sampler;
use klflow::diffusion::{Ddpm, DiffusionInit, ForwardOu, MixtureScore, SdeScheme, TimeGrid};
use klflow::potential::{Gaussian, GaussianMixture, Potential};
use nalgebra::{Const, Vector2};
use plotters::prelude::*;
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

/// Forward times at which the particles are drawn (the first is T, the last is δ).
const SHOWN: [f64; 6] = [6.0, 1.0, 0.5, 0.25, 0.1, 1e-3];

fn main() -> Result<(), Box<dyn Error>> {
    let weights = [0.3, 0.2, 0.15, 0.15, 0.1, 0.1];
    let components = (0..6)
        .map(|k| {
            let a = std::f64::consts::TAU * k as f64 / 6.0;
            Gaussian::isotropic(Vector2::new(2.0 * a.cos(), 2.0 * a.sin()), 0.04)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let data = GaussianMixture::new(&weights, components)?;

    let grid = TimeGrid::geometric(SHOWN[0], *SHOWN.last().unwrap(), 200)?;
    let ddpm = Ddpm::new(
        MixtureScore::new(&data),
        grid,
        SdeScheme::ExponentialIntegrator,
    );
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut state = ddpm.init(DiffusionInit::Samples(3_000), &mut rng)?;
    let mut snaps = vec![(state.time(), state.particles().to_vec())];
    let mut next = 1;
    while !ddpm.is_finished(&state) {
        ddpm.step(&mut state, &mut rng)?;
        // The first grid time at or below the next shown time.
        if next < SHOWN.len() && state.time() <= SHOWN[next] * (1.0 + 1e-9) {
            snaps.push((state.time(), state.particles().to_vec()));
            next += 1;
        }
    }
    let out = state.particles();

    // Component frequencies: each sample to its nearest centre.
    let mut counts = [0usize; 6];
    for y in out {
        let k = (0..6)
            .min_by(|&i, &j| {
                let d = |c: usize| (y - data.components()[c].mean()).norm();
                d(i).total_cmp(&d(j))
            })
            .unwrap();
        counts[k] += 1;
    }
    println!(
        "DDPM (exact score, exponential integrator, {} steps, T = {}, δ = {}), {} samples:",
        ddpm.grid().steps(),
        SHOWN[0],
        SHOWN[5],
        out.len()
    );
    for (k, c) in counts.iter().enumerate() {
        let f = *c as f64 / out.len() as f64;
        let se = (weights[k] * (1.0 - weights[k]) / out.len() as f64).sqrt();
        println!(
            "  component {k}: fraction {f:.3}, weight {:.3} ({:+.1} SE)",
            weights[k],
            (f - weights[k]) / se
        );
    }
    let n = out.len() as f64;
    let mean = out.iter().sum::<Vector2<f64>>() / n;
    println!(
        "  sample mean ({:+.3}, {:+.3}), exact ({:+.3}, {:+.3})",
        mean[0],
        mean[1],
        data.mean()[0],
        data.mean()[1]
    );

    std::fs::create_dir_all("out/diffusion")?;
    let path = "out/diffusion/reverse.svg";
    let root = SVGBackend::new(path, (1260, 860)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        "Reverse-time DDPM on a six-component mixture: particles over the contours of q_t",
        ("sans-serif", 22),
    )?;
    let panels = root.split_evenly((2, 3));
    let range = (-3.6, 3.6);
    for (i, (t, particles)) in snaps.iter().enumerate() {
        let law: GaussianMixture<Const<2>> = ForwardOu::marginal_mixture(&data, *t)?;
        let u = |x: f64, y: f64| law.energy(&Vector2::new(x, y));
        // U − U_min on the grid's scale: the levels where the density is e^{−1}, e^{−3}, e^{−6}
        // of its maximum.
        let mut u_min = f64::INFINITY;
        for a in 0..=100 {
            for b in 0..=100 {
                let (x, y) = (-3.6 + 0.072 * a as f64, -3.6 + 0.072 * b as f64);
                u_min = u_min.min(u(x, y));
            }
        }
        let title = if i + 1 == snaps.len() {
            format!("output, t = {t:.0e} (data law)")
        } else {
            format!("t = {t:.2}")
        };
        let mut chart = ChartBuilder::on(&panels[i])
            .caption(title, ("sans-serif", 17))
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(30)
            .build_cartesian_2d(range.0..range.1, range.0..range.1)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_labels(5)
            .y_labels(5)
            .draw()?;
        chart.draw_series(
            particles
                .iter()
                .map(|p| Circle::new((p[0], p[1]), 1, RGBColor(31, 119, 180).mix(0.5).filled())),
        )?;
        for (k, level) in [1.0, 3.0, 6.0].iter().enumerate() {
            let shade = 40 * k as u8;
            let style = RGBColor(200 - shade, 40, 40).stroke_width(1);
            chart.draw_series(
                contour::contour(&u, range, range, 110, u_min + level)
                    .into_iter()
                    .map(|s| PathElement::new(vec![s[0], s[1]], style)),
            )?;
        }
    }
    root.present()?;
    println!("picture: {path}");
    Ok(())
}
