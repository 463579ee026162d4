//! Benchmark workloads of `../shared/WORKLOADS.md`: one JSON line per run.
//!
//! ```text
//! cargo run --release --example workloads -- <workload> [--target T] [--n N] [--d D]
//!     [--chains C] [--steps S] [--threads K] [--seed SEED]
//! ```
//!
//! Each line holds the parameters, `per_iter_s` (the median seconds per iteration over at least
//! three timed segments) and `checks` (correctness figures of the run).

use std::time::Instant;

mod diffusion;
mod gvi;
mod langevin;
mod svgd;

/// Command-line options shared by all workloads (`None` = the workload's default).
#[derive(Clone, Debug, Default)]
pub struct Args {
    pub workload: String,
    pub target: Option<String>,
    pub n: Option<usize>,
    pub d: Option<usize>,
    pub chains: Option<usize>,
    pub steps: Option<usize>,
    pub threads: Option<usize>,
    pub seed: u64,
}

fn parse() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args {
        seed: 1,
        ..Args::default()
    };
    let mut p = lexopt::Parser::from_env();
    while let Some(arg) = p.next()? {
        match arg {
            Long("target") => args.target = Some(p.value()?.string()?),
            Long("n") => args.n = Some(p.value()?.parse()?),
            Long("d") => args.d = Some(p.value()?.parse()?),
            Long("chains") => args.chains = Some(p.value()?.parse()?),
            Long("steps") => args.steps = Some(p.value()?.parse()?),
            Long("threads") => args.threads = Some(p.value()?.parse()?),
            Long("seed") => args.seed = p.value()?.parse()?,
            Value(v) if args.workload.is_empty() => args.workload = v.string()?,
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(args)
}

/// Runs `total` iterations of `step` split into `segments` timed segments and returns the
/// median seconds per iteration.
pub fn median_per_iter(total: usize, segments: usize, mut step: impl FnMut()) -> f64 {
    let segments = segments.max(3);
    let per = (total / segments).max(1);
    let mut times: Vec<f64> = (0..segments)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per {
                step();
            }
            t.elapsed().as_secs_f64() / per as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Prints one JSON line.
pub fn emit(
    args: &Args,
    n: usize,
    d: usize,
    chains: usize,
    steps: usize,
    per_iter_s: f64,
    checks: serde_json::Value,
) {
    let line = serde_json::json!({
        "workload": args.workload,
        "target": args.target,
        "n": n,
        "d": d,
        "chains": chains,
        "steps": steps,
        "threads": args.threads.unwrap_or(1),
        "per_iter_s": per_iter_s,
        "checks": checks,
    });
    println!("{line}");
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("workloads: {e}");
            std::process::exit(2);
        }
    };
    let result = match args.workload.as_str() {
        "diffusion" => diffusion::run(&args),
        "gvi" => gvi::run(&args),
        "ula" | "mala" => langevin::run(&args),
        "svgd" => svgd::run(&args),
        other => Err(format!(
            "unknown workload `{other}`; known: diffusion, gvi, mala, svgd, ula"
        )),
    };
    if let Err(e) = result {
        eprintln!("workloads: {e}");
        std::process::exit(1);
    }
}
