//! The `svgd` workload: SVGD with the Liu–Wang RBF bandwidth re-fitted before every step,
//! `x₀ = −1 + 0.5·N(0, I)`, `x ← x + 0.1·φ(x)`, 500 iterations, on `--target std`
//! (N(0, I_d)) or `--target corr` (N(1, S), S_ij = 0.8^|i−j|). Checks: the largest
//! |mean error| over coordinates and the mean over coordinates of particle variance (1/n) /
//! target variance; `peak_rss_mb` is the process's peak resident memory.

use klflow::Sampler;
use klflow::kernel::Bandwidth;
use klflow::potential::Gaussian;
use klflow::stein::Svgd;
use nalgebra::{DMatrix, DVector};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use serde_json::json;

use crate::{Args, emit, median_per_iter};

/// Peak resident memory in MB (Linux `VmHWM`), NaN elsewhere.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn run_inner(args: &Args) -> Result<(), String> {
    let target = args.target.clone().unwrap_or_else(|| "std".into());
    let n = args.n.unwrap_or(100);
    let d = args.d.unwrap_or(2);
    let steps = args.steps.unwrap_or(500);
    let gauss = match target.as_str() {
        "std" => Gaussian::new(DVector::zeros(d), DMatrix::identity(d, d)),
        "corr" => Gaussian::new(
            DVector::from_element(d, 1.0),
            DMatrix::from_fn(d, d, |i, j| 0.8f64.powi(i.abs_diff(j) as i32)),
        ),
        other => return Err(format!("unknown svgd target `{other}`; known: std, corr")),
    }
    .map_err(|e| e.to_string())?;
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let x0 = DMatrix::from_fn(d, n, |_, _| {
        -1.0 + 0.5 * rng.sample::<f64, _>(StandardNormal)
    });
    let svgd = Svgd::new(&gauss, Bandwidth::LiuWang, 0.1).map_err(|e| e.to_string())?;
    let mut state = svgd.init(x0, &mut rng).map_err(|e| e.to_string())?;
    let mut err = None;
    let mut done = 0;
    let per_iter = median_per_iter(steps, 5, || {
        done += 1;
        if let Err(e) = svgd.step(&mut state, &mut rng) {
            err.get_or_insert(e);
        }
    });
    if let Some(e) = err {
        return Err(e.to_string());
    }
    let x = state.particles();
    let mean = x.column_mean();
    let mut var = DVector::zeros(d);
    for col in x.column_iter() {
        var += (col - &mean).map(|v| v * v);
    }
    var /= n as f64;
    let cov = gauss.covariance();
    let max_mean_err = (&mean - gauss.mean()).amax();
    let var_ratio = (0..d).map(|i| var[i] / cov[(i, i)]).sum::<f64>() / d as f64;
    emit(
        args,
        n,
        d,
        1,
        done,
        per_iter,
        json!({
            "max_abs_mean_error": max_mean_err,
            "mean_variance_ratio": var_ratio,
            "final_length_scale": state.kernel().length_scale(),
            "peak_rss_mb": peak_rss_mb(),
        }),
    );
    Ok(())
}

pub fn run(args: &Args) -> Result<(), String> {
    let threads = args.threads.unwrap_or(1);
    #[cfg(feature = "rayon")]
    {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| e.to_string())?;
        pool.install(|| run_inner(args))
    }
    #[cfg(not(feature = "rayon"))]
    {
        if threads != 1 {
            return Err("--threads > 1 needs `--features rayon`".into());
        }
        run_inner(args)
    }
}
