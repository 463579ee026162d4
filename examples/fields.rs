//! Pictures of wide random networks and their Gaussian limit, written to `out/fields/`:
//!
//! * `circle.svg` — three draws of a random ReLU network on the circle S¹ for widths 4, 32
//!   and 512 (two hidden layers), next to three draws of the Gaussian limit field;
//! * `sphere.svg` — one draw on S² (equirectangular heat map) per width and of the limit;
//! * `w1_rate.svg` — the one-point W₁ between the network output and its limit against the
//!   width, with the exact 1/n reference.
//!
//! ```text
//! cargo run --release --example fields
//! ```

use klflow::field::{
    Activation, GaussianField, Jitter, NetworkSpec, NetworkWorkspace, circle_points, one_point_w1,
};
use nalgebra::DMatrix;
use plotters::prelude::*;
use rand::{SeedableRng, rngs::ChaCha8Rng};

const WIDTHS: [usize; 3] = [4, 32, 512];
const COLORS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
];

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn spec(input_dim: usize, n: usize) -> klflow::Result<NetworkSpec> {
    NetworkSpec::new(input_dim, &[n, n], 1, Activation::Relu)?
        .with_weight_variances(1.0, 2.0)?
        .with_bias_variance(0.05)
}

/// `draws` evaluations of fresh networks (rows) at the columns of `pts`.
fn network_draws(
    spec: &NetworkSpec,
    pts: &DMatrix<f64>,
    draws: usize,
    rng: &mut ChaCha8Rng,
) -> Res<Vec<Vec<f64>>> {
    let mut net = spec.sample(rng);
    let mut ws = NetworkWorkspace::new(spec, 256);
    let mut out = DMatrix::zeros(1, pts.ncols());
    let mut rows = Vec::new();
    for _ in 0..draws {
        net.resample(rng);
        net.eval_batch(pts, &mut out, &mut ws)?;
        rows.push(out.iter().copied().collect());
    }
    Ok(rows)
}

fn circle(rng: &mut ChaCha8Rng) -> Res<()> {
    let p = 400;
    let pts = circle_points(p);
    let limit = GaussianField::new(&spec(2, 4)?.nngp(), &pts, Jitter::default())?;
    let mut panels: Vec<(String, Vec<Vec<f64>>)> = Vec::new();
    for n in WIDTHS {
        panels.push((
            format!("width {n}"),
            network_draws(&spec(2, n)?, &pts, 3, rng)?,
        ));
    }
    panels.push((
        "Gaussian limit".into(),
        (0..3)
            .map(|_| limit.sample(rng).iter().copied().collect())
            .collect(),
    ));
    let ymax = panels
        .iter()
        .flat_map(|(_, d)| d.iter().flatten())
        .fold(1.0f64, |m, v| m.max(v.abs()))
        .ceil();
    let root = SVGBackend::new("out/fields/circle.svg", (1200, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    for (area, (title, draws)) in root.split_evenly((2, 2)).iter().zip(&panels) {
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(0.0..std::f64::consts::TAU, -ymax..ymax)?;
        chart
            .configure_mesh()
            .x_desc("angle")
            .disable_mesh()
            .draw()?;
        for (draw, color) in draws.iter().zip(COLORS) {
            let series = draw
                .iter()
                .enumerate()
                .map(|(j, v)| (std::f64::consts::TAU * j as f64 / p as f64, *v));
            chart.draw_series(LineSeries::new(series, color.stroke_width(2)))?;
        }
    }
    root.present()?;
    Ok(())
}

fn sphere(rng: &mut ChaCha8Rng) -> Res<()> {
    let (nlat, nlon) = (30, 60);
    let pts = DMatrix::from_fn(3, nlat * nlon, |i, j| {
        let (a, b) = (j / nlon, j % nlon);
        let lat =
            -std::f64::consts::FRAC_PI_2 + std::f64::consts::PI * (a as f64 + 0.5) / nlat as f64;
        let lon = std::f64::consts::TAU * (b as f64 + 0.5) / nlon as f64;
        [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()][i]
    });
    let mut fields: Vec<(String, Vec<f64>)> = Vec::new();
    for n in WIDTHS {
        fields.push((
            format!("width {n}"),
            network_draws(&spec(3, n)?, &pts, 1, rng)?.remove(0),
        ));
    }
    let limit = GaussianField::new(&spec(3, 4)?.nngp(), &pts, Jitter::default())?;
    fields.push((
        "Gaussian limit".into(),
        limit.sample(rng).iter().copied().collect(),
    ));
    let root = SVGBackend::new("out/fields/sphere.svg", (1200, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    for (area, (title, values)) in root.split_evenly((2, 2)).iter().zip(&fields) {
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(25)
            .y_label_area_size(35)
            .build_cartesian_2d(0.0..360.0, -90.0..90.0)?;
        chart
            .configure_mesh()
            .x_desc("longitude")
            .y_desc("latitude")
            .disable_mesh()
            .draw()?;
        let scale = values.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
        chart.draw_series(values.iter().enumerate().map(|(j, v)| {
            let (a, b) = (j / nlon, j % nlon);
            let (x0, y0) = (
                360.0 * b as f64 / nlon as f64,
                -90.0 + 180.0 * a as f64 / nlat as f64,
            );
            let t = (v / scale).clamp(-1.0, 1.0);
            // Diverging blue–white–red map.
            let c = if t < 0.0 {
                RGBColor((255.0 * (1.0 + t)) as u8, (255.0 * (1.0 + t)) as u8, 255)
            } else {
                RGBColor(255, (255.0 * (1.0 - t)) as u8, (255.0 * (1.0 - t)) as u8)
            };
            Rectangle::new(
                [
                    (x0, y0),
                    (x0 + 360.0 / nlon as f64, y0 + 180.0 / nlat as f64),
                ],
                c.filled(),
            )
        }))?;
    }
    root.present()?;
    Ok(())
}

fn w1_rate(rng: &mut ChaCha8Rng) -> Res<()> {
    let widths = [8usize, 16, 32, 64, 128, 256];
    let mut w1 = Vec::new();
    for &n in &widths {
        let spec = NetworkSpec::new(3, &[n], 1, Activation::Relu)?;
        let r = one_point_w1(&spec, &[0.0, 0.0, 1.0], 200_000, rng)?;
        println!("n = {n:4}: one-point W1 = {:.4e}", r.w1);
        w1.push((n as f64, r.w1));
    }
    let root = SVGBackend::new("out/fields/w1_rate.svg", (700, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("one-point W1, one hidden ReLU layer", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((6.0..350.0).log_scale(), (1e-3..0.2).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("width n")
        .y_desc("W1")
        .disable_x_mesh()
        .disable_y_mesh()
        .x_labels(4)
        .y_labels(4)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0e}"))
        .draw()?;
    chart
        .draw_series(w1.iter().map(|&p| Circle::new(p, 5, COLORS[0].filled())))?
        .label("measured")
        .legend(|(x, y)| Circle::new((x, y), 5, COLORS[0].filled()));
    // Reference 1/n through the exact value at n = 64 (1.024e-2).
    chart
        .draw_series(LineSeries::new(
            [6.0, 350.0].map(|n| (n, 1.024e-2 * 64.0 / n)),
            COLORS[1].stroke_width(2),
        ))?
        .label("slope -1")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], COLORS[1].stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() -> Res<()> {
    std::fs::create_dir_all("out/fields")?;
    let mut rng = ChaCha8Rng::seed_from_u64(2306);
    circle(&mut rng)?;
    sphere(&mut rng)?;
    w1_rate(&mut rng)?;
    println!("wrote out/fields/circle.svg, sphere.svg, w1_rate.svg");
    Ok(())
}
