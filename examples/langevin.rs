//! The Langevin family in pictures.
//!
//! ```text
//! cargo run --release --example langevin
//! ```
//!
//! 1. Adapted MALA (dense metric) on the eight-schools posterior, 4 parallel chains, with a
//!    progress bar; writes `out/langevin/trace.svg` (trace of log τ per chain) and
//!    `out/langevin/acf.svg` (its autocorrelation).
//! 2. Rates from the exact oracles: ULA's stationary KL bias against h (slope 2) and the
//!    underdamped exact-OU integrator's variance bias against η (slope 1), with the theoretical
//!    slopes drawn through the first point: `out/langevin/rates.svg`.

use std::error::Error;
use std::ops::ControlFlow;

use indicatif::{ProgressBar, ProgressStyle};
use klflow::langevin::{Mala, MalaInfo, MalaState, MetricAdaptation, Warmup};
use klflow::oracle::{UlaOracle, UnderdampedOracle};
use klflow::potential::{EightSchools, Gaussian, Parameterisation};
use klflow::run::{Observer, run_chains};
use nalgebra::{Const, DVector, Dyn, SMatrix, Vector2};
use plotters::prelude::*;
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

fn main() -> Result<(), Box<dyn Error>> {
    std::fs::create_dir_all("out/langevin")?;
    let y = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0];
    let sigma = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0];
    let post = EightSchools::new(&y, &sigma, Parameterisation::NonCentered)?;
    let (warmup, draws) = (2_000, 20_000);
    let mala = Mala::new(&post, 0.05)?.with_warmup(Warmup {
        steps: warmup,
        target_accept: 0.574,
        metric: MetricAdaptation::Dense,
    })?;

    let bar = ProgressBar::new(4 * (warmup + draws) as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} steps ({eta})",
    )?);
    let starts = (0..4u64)
        .map(|c| {
            let mut r = ChaCha8Rng::seed_from_u64(8);
            r.set_stream(c);
            (DVector::from_element(10, 0.5 * c as f64 - 1.0), r)
        })
        .collect();
    let runs = run_chains(&mala, starts, warmup + draws, |_| LogTau {
        bar: bar.clone(),
        warmup,
        values: Vec::with_capacity(draws),
    })?;
    bar.finish();
    let traces: Vec<Vec<f64>> = runs.into_iter().map(|r| r.observer.values).collect();
    for (c, t) in traces.iter().enumerate() {
        let mean = t.iter().sum::<f64>() / t.len() as f64;
        println!(
            "chain {c}: mean log τ = {mean:.3}, mean τ = {:.3}",
            t.iter().map(|v| v.exp()).sum::<f64>() / t.len() as f64
        );
    }
    plot_traces(&traces, "out/langevin/trace.svg")?;
    plot_acf(&traces, "out/langevin/acf.svg")?;

    plot_rates("out/langevin/rates.svg")?;
    println!("pictures: out/langevin/{{trace,acf,rates}}.svg");
    Ok(())
}

/// Records log τ after warm-up and advances the shared progress bar.
struct LogTau {
    bar: ProgressBar,
    warmup: usize,
    values: Vec<f64>,
}

impl Observer<MalaState<Dyn>, MalaInfo> for LogTau {
    fn observe(&mut self, step: usize, state: &MalaState<Dyn>, _: &MalaInfo) -> ControlFlow<()> {
        if step.is_multiple_of(1_000) {
            self.bar.inc(1_000);
        }
        if step > self.warmup {
            self.values.push(state.position()[9]);
        }
        ControlFlow::Continue(())
    }
}

fn plot_traces(traces: &[Vec<f64>], path: &str) -> Result<(), Box<dyn Error>> {
    let root = SVGBackend::new(path, (900, 360)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = traces[0].len();
    let (lo, hi) = traces
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "MALA on eight schools: trace of log tau, 4 chains",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(0..n, lo..hi)?;
    chart
        .configure_mesh()
        .x_desc("draw")
        .y_desc("log tau")
        .draw()?;
    for (c, t) in traces.iter().enumerate() {
        chart.draw_series(LineSeries::new(
            t.iter().enumerate().step_by(5).map(|(i, v)| (i, *v)),
            COLORS[c].mix(0.6),
        ))?;
    }
    root.present()?;
    Ok(())
}

fn autocorrelation(x: &[f64], max_lag: usize) -> Vec<f64> {
    let n = x.len();
    let m = x.iter().sum::<f64>() / n as f64;
    let var = x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n as f64;
    (0..=max_lag)
        .map(|k| (0..n - k).map(|i| (x[i] - m) * (x[i + k] - m)).sum::<f64>() / (n as f64 * var))
        .collect()
}

fn plot_acf(traces: &[Vec<f64>], path: &str) -> Result<(), Box<dyn Error>> {
    let max_lag = 200;
    let root = SVGBackend::new(path, (700, 360)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Autocorrelation of log tau", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(0..max_lag, -0.2..1.0)?;
    chart.configure_mesh().x_desc("lag").y_desc("acf").draw()?;
    for (c, t) in traces.iter().enumerate() {
        let acf = autocorrelation(t, max_lag);
        chart.draw_series(LineSeries::new(acf.into_iter().enumerate(), &COLORS[c]))?;
    }
    root.present()?;
    Ok(())
}

/// ULA's stationary bias KL(π_h‖π) and the exact-OU integrator's variance bias, from the oracles.
fn plot_rates(path: &str) -> Result<(), Box<dyn Error>> {
    let target = Gaussian::new(
        Vector2::zeros(),
        SMatrix::<f64, 2, 2>::new(1.0, 0.5, 0.5, 2.0),
    )?;
    let hs: Vec<f64> = (0..8).map(|k| 0.4 * 0.5f64.powi(k)).collect();
    let ula: Vec<(f64, f64)> = hs
        .iter()
        .map(|&h| Ok((h, UlaOracle::new(&target, h)?.stationary().kl(&target)?)))
        .collect::<Result<_, klflow::Error>>()?;
    let std1 = Gaussian::standard(Const::<1>);
    let ou: Vec<(f64, f64)> = hs
        .iter()
        .map(|&h| {
            Ok((
                h,
                UnderdampedOracle::new(&std1, 2.0, h)?
                    .stationary_position()?
                    .covariance()[(0, 0)]
                    - 1.0,
            ))
        })
        .collect::<Result<_, klflow::Error>>()?;
    let root = SVGBackend::new(path, (700, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Discretisation bias from the exact oracles",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d((0.002f64..0.5).log_scale(), (1e-7f64..1.0).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("step size h")
        .y_desc("bias")
        .x_label_formatter(&|v| format!("{v:.0e}"))
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()?;
    for (pts, slope, color, label) in [
        (&ula, 2.0, COLORS[0], "ULA: KL(stationary, target), slope 2"),
        (
            &ou,
            1.0,
            COLORS[1],
            "underdamped exact OU: variance bias, slope 1",
        ),
    ] {
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
        let (h0, b0) = pts[0];
        chart.draw_series(LineSeries::new(
            hs.iter().map(|h| (*h, b0 * (h / h0).powf(slope))),
            color.mix(0.4),
        ))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
