//! The `ula` and `mala` workloads: `x ← x − h∇U(x) + √(2h)ξ` (MALA adds the Metropolis–Hastings
//! test) for 10 000 steps, statistics over the second half, on `--target aniso` (N(0, diag(1/λ)), λ log-spaced in [1, 100], h = 1e-3, x₀ = 1) or
//! `--target logreg` (Bayesian logistic regression on 1000 synthetic points, prior N(0, I),
//! h = 2e-4, x₀ = 0). Each chain has its own stream of the `--rng` generator; `--batch` steps
//! the chains as one ensemble (10 steps per `advance_streams` call, one parallel region;
//! statistics every 10th step), `--threads K` runs them on a K-thread pool.

use std::ops::ControlFlow;
use std::time::Instant;

use klflow::Sampler;
use klflow::langevin::{EnsembleInfo, EnsembleState, Mala, MalaEnsemble, Ula, UlaEnsemble};
use klflow::potential::{
    BatchPotential, Gaussian, LogisticRegression, Potential, PotentialHessian,
};
use klflow::run::{Observer, run_chains};
use klflow::sampler::HasPosition;
use nalgebra::{DMatrix, DVector, Dyn};
use rand::rngs::{ChaCha8Rng, Xoshiro256PlusPlus};
use rand::{Rng, RngExt, SeedableRng};
use rand_distr::StandardNormal;
use serde_json::json;

use crate::{Args, RngKind, emit, median_per_iter};

/// λ log-spaced in [1, 100].
fn aniso_lambdas(d: usize) -> DVector<f64> {
    DVector::from_fn(d, |i, _| {
        100f64.powf(if d > 1 {
            i as f64 / (d - 1) as f64
        } else {
            0.0
        })
    })
}

/// Synthetic logistic-regression data: X ~ N(0, 1), θ* ~ N(0, (4/d)I), y ~ Bernoulli(σ(Xθ*)).
pub fn logreg_data(n: usize, d: usize, rng: &mut ChaCha8Rng) -> (DMatrix<f64>, Vec<f64>) {
    let x = DMatrix::from_fn(n, d, |_, _| rng.sample::<f64, _>(StandardNormal));
    let theta = DVector::from_fn(d, |_, _| {
        (4.0 / d as f64).sqrt() * rng.sample::<f64, _>(StandardNormal)
    });
    let eta = &x * theta;
    let y = eta
        .iter()
        .map(|e| f64::from(rng.random::<f64>() < 1.0 / (1.0 + (-e).exp())))
        .collect();
    (x, y)
}

/// The MAP by Newton's method (the posterior is strongly log-concave).
fn map_estimate(post: &LogisticRegression<Dyn>, d: usize) -> DVector<f64> {
    let mut w = DVector::zeros(d);
    let mut g = DVector::zeros(d);
    let mut h = DMatrix::zeros(d, d);
    for _ in 0..50 {
        post.energy_grad(&w, &mut g);
        post.hessian(&w, &mut h);
        let step = h.clone().cholesky().expect("SPD Hessian").solve(&g);
        w -= &step;
        if step.amax() < 1e-12 {
            break;
        }
    }
    w
}

/// Per-chain generator streams: ChaCha8 `seed` with stream = chain index, or Xoshiro256++
/// seeded from a SplitMix-style hash of `(seed, chain)`.
trait Streams: Rng + Send + Sized {
    fn streams(seed: u64, chains: usize) -> Vec<Self>;
}
impl Streams for ChaCha8Rng {
    fn streams(seed: u64, chains: usize) -> Vec<Self> {
        (0..chains)
            .map(|c| {
                let mut r = ChaCha8Rng::seed_from_u64(seed);
                r.set_stream(c as u64);
                r
            })
            .collect()
    }
}
impl Streams for Xoshiro256PlusPlus {
    fn streams(seed: u64, chains: usize) -> Vec<Self> {
        (0..chains as u64)
            .map(|c| {
                Xoshiro256PlusPlus::seed_from_u64(
                    seed ^ (c.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                )
            })
            .collect()
    }
}

/// Per-coordinate sums of x and x² (second half of the run) and acceptance counts.
#[derive(Clone, Debug)]
struct Stats {
    from: usize,
    s1: Vec<f64>,
    s2: Vec<f64>,
    count: f64,
    accepted: f64,
    proposals: f64,
}

impl Stats {
    fn new(d: usize, from: usize) -> Self {
        Self {
            from,
            s1: vec![0.0; d],
            s2: vec![0.0; d],
            count: 0.0,
            accepted: 0.0,
            proposals: 0.0,
        }
    }
    /// Adds the columns of `x` (d × k, column-major) observed after step `step`.
    fn push(&mut self, step: usize, x: &[f64]) {
        if step <= self.from {
            return;
        }
        let d = self.s1.len();
        for col in x.chunks_exact(d) {
            for ((a, b), v) in self.s1.iter_mut().zip(self.s2.iter_mut()).zip(col) {
                *a += v;
                *b += v * v;
            }
            self.count += 1.0;
        }
    }
    fn merge(&mut self, o: &Stats) {
        for (a, b) in self.s1.iter_mut().zip(&o.s1) {
            *a += b;
        }
        for (a, b) in self.s2.iter_mut().zip(&o.s2) {
            *a += b;
        }
        self.count += o.count;
        self.accepted += o.accepted;
        self.proposals += o.proposals;
    }
    /// (time, mean, var, acceptance)
    fn finish(self, t: f64) -> Outcome {
        let mean = DVector::from_vec(self.s1) / self.count;
        let var = DVector::from_vec(self.s2) / self.count - mean.component_mul(&mean);
        (t, mean, var, self.accepted / self.proposals)
    }
}

impl<S: HasPosition<Dim = Dyn>, I: Accept> Observer<S, I> for Stats {
    fn observe(&mut self, step: usize, state: &S, info: &I) -> ControlFlow<()> {
        self.accepted += info.accepted();
        self.proposals += info.proposals();
        self.push(step, state.position().as_slice());
        ControlFlow::Continue(())
    }
}

type Outcome = (f64, DVector<f64>, DVector<f64>, f64);

/// Runs `chains` chains for `steps` steps one after another within each step; returns the
/// median time per step (all chains) and the per-coordinate mean and variance over the second
/// half, pooled over chains.
fn run_sequential<S, R>(
    sampler: &S,
    x0: &DVector<f64>,
    chains: usize,
    steps: usize,
    seed: u64,
) -> Result<Outcome, String>
where
    S: Sampler<Init = DVector<f64>>,
    S::Info: Accept,
    S::State: HasPosition<Dim = Dyn>,
    R: Streams,
{
    let mut rngs = R::streams(seed, chains);
    let mut states = rngs
        .iter_mut()
        .map(|r| sampler.init(x0.clone(), r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut stats = Stats::new(x0.len(), steps / 2);
    let mut k = 0usize;
    let mut err = None;
    let per_iter = median_per_iter(steps, 5, || {
        k += 1;
        for (s, r) in states.iter_mut().zip(rngs.iter_mut()) {
            match sampler.step(s, r) {
                Ok(info) => {
                    stats.accepted += info.accepted();
                    stats.proposals += 1.0;
                }
                Err(e) => {
                    err.get_or_insert(e);
                }
            }
            stats.push(k, s.position().as_slice());
        }
    });
    if let Some(e) = err {
        return Err(e.to_string());
    }
    Ok(stats.finish(per_iter))
}

/// Steps per `advance_streams` call in the ensemble runs: the statistics see every
/// `ENSEMBLE_CHUNK`-th step (thinning; the slowest mode of `aniso` has an autocorrelation
/// time of ≈ 1/(hλ_min) = 1000 steps, and `logreg`'s are longer still). Each call is one
/// parallel region, which costs ≈ 20–30 µs of thread wake-up and join on a 2-vCPU VM: with
/// 10 steps per call that was 13 % of a 2-thread ULA d = 100 step (1.5× instead of 1.8×).
const ENSEMBLE_CHUNK: usize = 100;

/// The same run with the chains as one ensemble (`--batch`): one batched gradient per step,
/// chain `c` driven by stream `c`, [`ENSEMBLE_CHUNK`] steps per `advance_streams` call (one
/// parallel region), statistics after each call.
fn run_ensemble<S, R>(
    sampler: &S,
    advance_streams: impl Fn(&S, &mut EnsembleState, usize, &mut [R]) -> klflow::Result<EnsembleInfo>,
    x0: &DVector<f64>,
    chains: usize,
    steps: usize,
    seed: u64,
) -> Result<Outcome, String>
where
    S: Sampler<Init = DMatrix<f64>, State = EnsembleState>,
    R: Streams,
{
    let mut rngs = R::streams(seed, chains);
    let init = DMatrix::from_fn(x0.len(), chains, |i, _| x0[i]);
    let mut state = sampler
        .init(init, &mut rngs[0])
        .map_err(|e| e.to_string())?;
    let mut stats = Stats::new(x0.len(), steps / 2);
    let mut k = 0usize;
    let mut err = None;
    let mut chunk = |n: usize| {
        k += n;
        match advance_streams(sampler, &mut state, n, &mut rngs) {
            Ok(info) => {
                stats.accepted += info.accepted as f64;
                stats.proposals += (chains * n) as f64;
            }
            Err(e) => {
                err.get_or_insert(e);
            }
        }
        stats.push(k, state.positions().as_slice());
    };
    // Short runs (`--steps` below 5 chunks) take shorter chunks, so that 5 timed segments
    // never run more steps than asked for.
    let len = ENSEMBLE_CHUNK.min((steps / 5).max(1));
    let chunks = steps / len;
    let per_chunk = median_per_iter(chunks, 5, || chunk(len));
    // What `median_per_iter` ran: 5 segments of ⌊chunks/5⌋ (at least 1) chunks.
    let rest = steps.saturating_sub(5 * (chunks / 5).max(1) * len);
    if rest > 0 {
        chunk(rest);
    }
    if let Some(e) = err {
        return Err(e.to_string());
    }
    Ok(stats.finish(per_chunk / len as f64))
}

/// The run through `run::run_chains` on a `threads`-thread rayon pool (`--threads`): the
/// chains are independent tasks; wall time of the whole run / steps.
fn run_pool<S, R>(
    sampler: &S,
    x0: &DVector<f64>,
    chains: usize,
    steps: usize,
    seed: u64,
    threads: usize,
) -> Result<Outcome, String>
where
    S: Sampler<Init = DVector<f64>> + Sync,
    S::Info: Accept,
    S::State: HasPosition<Dim = Dyn> + Send,
    R: Streams,
{
    let starts: Vec<_> = R::streams(seed, chains)
        .into_iter()
        .map(|r| (x0.clone(), r))
        .collect();
    let d = x0.len();
    let go = || run_chains(sampler, starts, steps, |_| Stats::new(d, steps / 2));
    let t = Instant::now();
    #[cfg(feature = "rayon")]
    let runs = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| e.to_string())?
        .install(go);
    #[cfg(not(feature = "rayon"))]
    let runs = if threads == 1 {
        go()
    } else {
        return Err("--threads > 1 needs `--features rayon`".into());
    };
    let elapsed = t.elapsed().as_secs_f64();
    let runs = runs.map_err(|e| e.to_string())?;
    let mut stats = Stats::new(d, steps / 2);
    for r in &runs {
        stats.merge(&r.observer);
    }
    Ok(stats.finish(elapsed / steps as f64))
}

/// Runs `f` on a `threads`-thread rayon pool (default one thread). With `--batch`, the
/// ensembles run their blocks of chains on the pool.
fn in_pool<T: Send>(
    threads: Option<usize>,
    f: impl FnOnce() -> Result<T, String> + Send,
) -> Result<T, String> {
    let threads = threads.unwrap_or(1);
    #[cfg(feature = "rayon")]
    {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| e.to_string())?
            .install(f)
    }
    #[cfg(not(feature = "rayon"))]
    if threads == 1 {
        f()
    } else {
        Err("--threads > 1 needs `--features rayon`".into())
    }
}

/// The acceptance indicator of a step's info (1 for ULA, which accepts everything).
trait Accept {
    fn accepted(&self) -> f64;
    fn proposals(&self) -> f64 {
        1.0
    }
}
impl Accept for klflow::langevin::UlaInfo {
    fn accepted(&self) -> f64 {
        1.0
    }
}
impl Accept for klflow::langevin::MalaInfo {
    fn accepted(&self) -> f64 {
        f64::from(u8::from(self.accepted))
    }
}

/// Runs the workload's algorithm (`ula` or `mala`) on `potential` with step `h`, in the mode
/// the arguments ask for (sequential chains, one ensemble, or a thread pool).
fn run_algo<P: BatchPotential + Sync, R: Streams>(
    args: &Args,
    potential: &P,
    h: f64,
    x0: &DVector<f64>,
    chains: usize,
    steps: usize,
) -> Result<Outcome, String> {
    let e = |e: klflow::Error| e.to_string();
    let mala = args.workload == "mala";
    match (args.batch, args.threads) {
        (true, threads) if mala => {
            let s = MalaEnsemble::new(potential, h).map_err(e)?;
            in_pool(threads, || {
                run_ensemble::<_, R>(
                    &s,
                    |s, st, n, r| s.advance_streams(st, n, r),
                    x0,
                    chains,
                    steps,
                    args.seed,
                )
            })
        }
        (true, threads) => {
            // ULA never uses the energy: the gradient-only batched call.
            let s = UlaEnsemble::new(potential, h)
                .map_err(e)?
                .without_energies();
            in_pool(threads, || {
                run_ensemble::<_, R>(
                    &s,
                    |s, st, n, r| s.advance_streams(st, n, r),
                    x0,
                    chains,
                    steps,
                    args.seed,
                )
            })
        }
        (false, Some(t)) if mala => {
            let s = Mala::new(potential, h).map_err(e)?;
            run_pool::<_, R>(&s, x0, chains, steps, args.seed, t)
        }
        (false, Some(t)) => {
            let s = Ula::new(potential, h).map_err(e)?;
            run_pool::<_, R>(&s, x0, chains, steps, args.seed, t)
        }
        (false, None) if mala => {
            let s = Mala::new(potential, h).map_err(e)?;
            run_sequential::<_, R>(&s, x0, chains, steps, args.seed)
        }
        (false, None) => {
            let s = Ula::new(potential, h).map_err(e)?;
            run_sequential::<_, R>(&s, x0, chains, steps, args.seed)
        }
    }
}

/// [`run_algo`] with the generator of `--rng`.
fn run_with_rng<P: BatchPotential + Sync>(
    args: &Args,
    potential: &P,
    h: f64,
    x0: &DVector<f64>,
    chains: usize,
    steps: usize,
) -> Result<Outcome, String> {
    match args.rng {
        RngKind::ChaCha8 => run_algo::<_, ChaCha8Rng>(args, potential, h, x0, chains, steps),
        RngKind::Xoshiro => {
            run_algo::<_, Xoshiro256PlusPlus>(args, potential, h, x0, chains, steps)
        }
    }
}

pub fn run(args: &Args) -> Result<(), String> {
    let target = args.target.clone().unwrap_or_else(|| "aniso".into());
    let d = args.d.unwrap_or(10);
    let chains = args.chains.unwrap_or(1);
    let steps = args.steps.unwrap_or(10_000);
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed ^ 0x5eed);
    match target.as_str() {
        "aniso" => {
            let lambda = aniso_lambdas(d);
            let gauss = Gaussian::diagonal(DVector::zeros(d), lambda.map(|l| 1.0 / l))
                .map_err(|e| e.to_string())?;
            let (t, mean, var, acc) = run_with_rng(
                args,
                &gauss,
                1e-3,
                &DVector::from_element(d, 1.0),
                chains,
                steps,
            )?;
            let var_lambda = var.component_mul(&lambda).mean();
            let m_sqrt_lambda = mean.zip_map(&lambda, |m, l| m.abs() * l.sqrt()).mean();
            emit(
                args,
                0,
                d,
                chains,
                steps,
                t,
                json!({"mean_var_times_lambda": var_lambda, "mean_abs_m_sqrt_lambda": m_sqrt_lambda, "acceptance": acc}),
            );
        }
        "logreg" => {
            let n = args.n.unwrap_or(1000);
            let (x, y) = logreg_data(n, d, &mut rng);
            let post = LogisticRegression::new(Dyn(d), &x, &y, 1.0).map_err(|e| e.to_string())?;
            let map = map_estimate(&post, d);
            let (t, mean, var, acc) =
                run_with_rng(args, &post, 2e-4, &DVector::zeros(d), chains, steps)?;
            let rel = (&mean - &map).norm() / map.norm();
            emit(
                args,
                n,
                d,
                chains,
                steps,
                t,
                json!({"rel_mean_minus_map": rel, "mean_posterior_sd": var.map(f64::sqrt).mean(), "acceptance": acc}),
            );
        }
        other => {
            return Err(format!(
                "unknown ula target `{other}`; known: aniso, logreg"
            ));
        }
    }
    Ok(())
}
