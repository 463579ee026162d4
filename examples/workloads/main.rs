//! Benchmark workloads of `../shared/WORKLOADS.md`: one JSON line per run.
//!
//! ```text
//! cargo run --release --example workloads -- <workload> [--target T] [--n N] [--d D]
//!     [--chains C] [--steps S] [--threads K] [--seed SEED] [--rng chacha8|xoshiro] [--batch]
//! ```
//!
//! `--rng` picks the workload's generator (ChaCha8 by default; Xoshiro256++ draws normals about
//! twice as fast). `--batch` steps the Langevin chains as one ensemble (`UlaEnsemble`,
//! `MalaEnsemble`: one batched gradient per step). `--threads K` runs the chains with
//! `run::run_chains` on a K-thread rayon pool (needs `--features rayon`).
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
    /// The workload's random number generator.
    pub rng: RngKind,
    /// Step the chains as one ensemble (Langevin workloads).
    pub batch: bool,
}

/// Which generator a workload uses for its own runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RngKind {
    /// `rand::rngs::ChaCha8Rng` (streams via `set_stream`).
    #[default]
    ChaCha8,
    /// `rand::rngs::Xoshiro256PlusPlus` (streams seeded from a hash of seed and index).
    Xoshiro,
}

impl RngKind {
    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "chacha8" => Ok(Self::ChaCha8),
            "xoshiro" => Ok(Self::Xoshiro),
            other => Err(format!("unknown --rng `{other}`; known: chacha8, xoshiro")),
        }
    }

    /// The name printed in the JSON line.
    pub fn name(self) -> &'static str {
        match self {
            Self::ChaCha8 => "chacha8",
            Self::Xoshiro => "xoshiro",
        }
    }
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
            Long("rng") => {
                args.rng = RngKind::parse(&p.value()?.string()?).map_err(lexopt::Error::from)?
            }
            Long("batch") => args.batch = true,
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
        "rng": args.rng.name(),
        "batch": args.batch,
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
