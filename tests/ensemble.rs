//! Ensembles of Langevin chains (`UlaEnsemble`, `MalaEnsemble`) and batched potentials
//! (`BatchPotential`): against the single-chain samplers and the single-point gradient.

mod common;

use common::{Wall, on_pools, rng, spd_with_spectrum};
use klflow::langevin::{Mala, MalaEnsemble, Ula, UlaEnsemble};
use klflow::potential::{BatchPotential, BatchWorkspace, Gaussian, LogisticRegression, Potential};
use klflow::{Error, Sampler};
use nalgebra::{DMatrix, DVector, Dyn};
use proptest::prelude::*;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

fn streams(seed: u64, c: usize) -> Vec<ChaCha8Rng> {
    (0..c as u64)
        .map(|i| {
            let mut r = ChaCha8Rng::seed_from_u64(seed);
            r.set_stream(i);
            r
        })
        .collect()
}

/// A dense (non-diagonal) Gaussian on Dyn(4): its batch gradient is the default loop.
fn dense_gaussian() -> Gaussian<Dyn> {
    let mut r = rng(5);
    let cov = spd_with_spectrum::<4>([0.3, 0.7, 1.0, 2.0], &mut r);
    let mean = DVector::from_vec(vec![1.0, -0.5, 0.0, 2.0]);
    Gaussian::new(mean, DMatrix::from_column_slice(4, 4, cov.as_slice())).unwrap()
}

fn starts(d: usize, c: usize) -> DMatrix<f64> {
    DMatrix::from_fn(d, c, |i, j| (i as f64 - 1.5) + 0.3 * j as f64)
}

/// With one stream per chain, the ULA ensemble is bit for bit the single ULA chains fed the
/// same streams (the default batch gradient does the single-point arithmetic). Fails on a
/// column/stream mix-up, on a different update formula, or on draws in another order.
#[test]
fn ula_ensemble_equals_single_chains_bit_for_bit() {
    let target = dense_gaussian();
    let (d, c, h, steps) = (4, 5, 0.05, 300);
    let ens = UlaEnsemble::new(&target, h).unwrap();
    let ula = Ula::new(&target, h).unwrap();
    let mut rngs = streams(11, c);
    let mut state = ens.init(starts(d, c), &mut rngs[0]).unwrap();
    for _ in 0..steps {
        ens.step_streams(&mut state, &mut rngs).unwrap();
    }
    let mut single_rngs = streams(11, c);
    for (j, r) in single_rngs.iter_mut().enumerate() {
        let mut s = ula.init(starts(d, c).column(j).into_owned(), r).unwrap();
        for _ in 0..steps {
            ula.step(&mut s, r).unwrap();
        }
        assert_eq!(
            s.position().as_slice(),
            state.positions().column(j).as_slice()
        );
        assert_eq!(s.energy(), state.energies()[j]);
    }
    assert_eq!(state.iteration(), steps);
}

/// The same for MALA (identity metric, fixed step): positions, energies and the acceptance
/// count equal those of the single chains. The step size is large enough that about a third of
/// the proposals are rejected, so the accept/reject path is exercised.
#[test]
fn mala_ensemble_equals_single_chains_bit_for_bit() {
    let target = dense_gaussian();
    let (d, c, h, steps) = (4, 6, 0.6, 400);
    let ens = MalaEnsemble::new(&target, h).unwrap();
    let mala = Mala::new(&target, h).unwrap();
    let mut rngs = streams(12, c);
    let mut state = ens.init(starts(d, c), &mut rngs[0]).unwrap();
    for _ in 0..steps {
        ens.step_streams(&mut state, &mut rngs).unwrap();
    }
    let mut single_rngs = streams(12, c);
    let mut accepted = 0.0;
    for (j, r) in single_rngs.iter_mut().enumerate() {
        let mut s = mala.init(starts(d, c).column(j).into_owned(), r).unwrap();
        for _ in 0..steps {
            mala.step(&mut s, r).unwrap();
        }
        assert_eq!(
            s.position().as_slice(),
            state.positions().column(j).as_slice()
        );
        assert_eq!(s.chain().energy(), state.energies()[j]);
        accepted += s.acceptance_rate() * steps as f64;
    }
    let rate = state.acceptance_rate();
    assert!((rate * (c * steps) as f64 - accepted).abs() < 1e-6);
    assert!(rate > 0.2 && rate < 0.9, "acceptance {rate}");
}

/// MALA with one shared RNG keeps π invariant in every chain: C = 4000 chains started from
/// exact draws of N(μ, Σ), 25 steps, then the coordinate means and variances of the chains
/// match μ and diag Σ within 4.5 standard errors (SE(mean) = √(Σᵢᵢ/C),
/// SE(var) = Σᵢᵢ√(2/C)). Fails on a wrong acceptance ratio (e.g. a missing reverse density,
/// which inflates the spread at h = 0.6) or on accepting the wrong chain's proposal.
#[test]
fn mala_ensemble_shared_rng_preserves_target() {
    let target = dense_gaussian();
    let (d, c) = (4, 4000);
    let mut r = rng(21);
    let x0 = DMatrix::from_fn(d, c, |_, _| 0.0);
    let mut x0 = x0;
    for mut col in x0.column_iter_mut() {
        let z = rand_distr::Distribution::sample(&target, &mut r);
        col.copy_from(&z);
    }
    let ens = MalaEnsemble::new(&target, 0.6).unwrap();
    let mut state = ens.init(x0, &mut r).unwrap();
    for _ in 0..25 {
        ens.step(&mut state, &mut r).unwrap();
    }
    let x = state.positions();
    let cov = target.covariance();
    for i in 0..d {
        let row: Vec<f64> = x.row(i).iter().copied().collect();
        let m = row.iter().sum::<f64>() / c as f64;
        let v = row.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / (c - 1) as f64;
        let sii = cov[(i, i)];
        let mu = target.mean()[i];
        assert!(
            (m - mu).abs() < 4.5 * (sii / c as f64).sqrt(),
            "mean {i}: {m} vs {mu}"
        );
        assert!(
            (v - sii).abs() < 4.5 * sii * (2.0 / c as f64).sqrt(),
            "var {i}: {v} vs {sii}"
        );
    }
    assert!(state.acceptance_rate() > 0.2);
    // Reproducible: the same seed gives the same run.
    let mut r2 = rng(21);
    let mut x0b = DMatrix::zeros(d, c);
    for mut col in x0b.column_iter_mut() {
        col.copy_from(&rand_distr::Distribution::sample(&target, &mut r2));
    }
    let mut s2 = ens.init(x0b, &mut r2).unwrap();
    for _ in 0..25 {
        ens.step(&mut s2, &mut r2).unwrap();
    }
    assert_eq!(s2.positions(), state.positions());
}

fn logistic(n: usize, d: usize, seed: u64, scale: f64) -> LogisticRegression<Dyn> {
    let mut r = rng(seed);
    let a = DMatrix::from_fn(n, d, |_, _| scale * r.sample::<f64, _>(StandardNormal));
    let y: Vec<f64> = (0..n).map(|_| r.random::<f64>()).collect();
    LogisticRegression::new(Dyn(d), &a, &y, 2.0).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(0x6b6c_666c_6f77), ..ProptestConfig::default() })]

    /// The batch gradient and energy of logistic regression equal the blocked single-point
    /// ones to 1e-12 relative (they sum the same n terms in different orders: a few ulp per
    /// term), on all three batch paths: the fused kernel (d ≤ 16), the blocked kernel (d > 16,
    /// C ≥ 8) and the matrix products (d > 16, C < 8). n spans the 64-observation block
    /// boundary; feature scales up to 8 give |η| up to ~100, where softplus and the logistic
    /// function take their other branch.
    #[test]
    fn logistic_batch_equals_single_point(n in 1usize..200, d in 1usize..40, c in 1usize..20,
                                          scale in 0.1f64..8.0, seed in 0u64..1000) {
        let post = logistic(n, d, seed, scale);
        let mut r = rng(seed + 1);
        let x = DMatrix::from_fn(d, c, |_, _| r.sample::<f64, _>(StandardNormal));
        let mut grad = DMatrix::zeros(d, c);
        let mut energy = vec![0.0; c];
        let mut work = BatchWorkspace::new();
        post.energy_grad_batch(&x, &mut grad, &mut energy, &mut work);
        // Twice through the same workspace: the result does not depend on stale contents.
        post.energy_grad_batch(&x, &mut grad, &mut energy, &mut work);
        let mut g = DVector::zeros(d);
        for (j, &ej) in energy.iter().enumerate() {
            let xj = x.column(j).into_owned();
            let u = post.energy_grad(&xj, &mut g);
            let gscale = 1.0 + g.amax();
            prop_assert!((&g - grad.column(j)).amax() <= 1e-12 * gscale,
                "gradient {j}: {:e}", (&g - grad.column(j)).amax());
            prop_assert!((u - ej).abs() <= 1e-12 * (1.0 + u.abs()), "energy {j}: {u} vs {ej}");
            prop_assert!((post.energy(&xj) - u).abs() <= 1e-12 * (1.0 + u.abs()));
        }
    }
}

/// With a batched gradient (here the blocked kernel: d = 20, 8 chains) the ULA ensemble
/// follows the single chains to rounding: after 50 steps on a 300-point logistic posterior the
/// positions agree to 1e-9 (rounding of 1e-16 amplified by at most (1 + hL)⁵⁰ along a
/// contracting flow).
#[test]
fn ula_ensemble_logistic_tracks_single_chains() {
    let post = logistic(300, 20, 3, 1.0);
    let (c, h) = (8, 1e-3);
    let ens = UlaEnsemble::new(&post, h).unwrap();
    let ula = Ula::new(&post, h).unwrap();
    let mut rngs = streams(4, c);
    let mut state = ens.init(DMatrix::zeros(20, c), &mut rngs[0]).unwrap();
    for _ in 0..50 {
        ens.step_streams(&mut state, &mut rngs).unwrap();
    }
    for (j, r) in streams(4, c).iter_mut().enumerate() {
        let mut s = ula.init(DVector::zeros(20), r).unwrap();
        for _ in 0..50 {
            ula.step(&mut s, r).unwrap();
        }
        let diff = (s.position() - state.positions().column(j)).amax();
        assert!(diff < 1e-9, "chain {j}: {diff:e}");
    }
}

#[test]
fn ensemble_input_errors() {
    let target = Gaussian::standard(Dyn(3));
    let ula = UlaEnsemble::new(&target, 0.1).unwrap();
    let mala = MalaEnsemble::new(&target, 0.1).unwrap();
    let mut r = rng(0);
    assert!(matches!(
        ula.init(DMatrix::zeros(2, 4), &mut r),
        Err(Error::DimensionMismatch {
            name: "init",
            expected: 3,
            found: 2
        })
    ));
    assert!(matches!(
        mala.init(DMatrix::zeros(3, 0), &mut r),
        Err(Error::Empty { name: "init" })
    ));
    let mut bad = DMatrix::zeros(3, 2);
    bad[(1, 1)] = f64::NAN;
    assert!(matches!(
        ula.init(bad, &mut r),
        Err(Error::NonFiniteInput { name: "init" })
    ));
    let mut s = ula.init(DMatrix::zeros(3, 2), &mut r).unwrap();
    let mut three = streams(0, 3);
    assert!(matches!(
        ula.step_streams(&mut s, &mut three),
        Err(Error::DimensionMismatch {
            name: "rngs",
            expected: 2,
            found: 3
        })
    ));
    let mut m = mala.init(DMatrix::zeros(3, 2), &mut r).unwrap();
    assert!(mala.step_streams(&mut m, &mut three[..1]).is_err());
    assert!(UlaEnsemble::new(&target, 0.0).is_err());
    assert!(MalaEnsemble::new(&target, f64::NAN).is_err());
    // h ≥ 2/L is rejected as for Ula (L = 1 here).
    assert!(UlaEnsemble::new(&target, 2.0).is_err());
}

/// A potential that is finite only on x₀ < 1: ULA ensembles report the step, MALA ensembles
/// reject (a divergence) and keep every position finite.
#[test]
fn ensemble_non_finite() {
    let mut r = rng(9);
    let ula = UlaEnsemble::new(Wall(1), 0.5).unwrap();
    let mut s = ula.init(DMatrix::from_element(1, 8, 0.9), &mut r).unwrap();
    let mut err = None;
    for _ in 0..100 {
        if let Err(e) = ula.step(&mut s, &mut r) {
            err = Some(e);
            break;
        }
    }
    assert!(matches!(
        err,
        Some(Error::NonFinite {
            quantity: "energy",
            ..
        })
    ));
    let mala = MalaEnsemble::new(Wall(1), 0.5).unwrap();
    let mut m = mala.init(DMatrix::from_element(1, 8, 0.9), &mut r).unwrap();
    for _ in 0..100 {
        mala.step(&mut m, &mut r).unwrap();
    }
    assert!(m.divergences() > 0);
    assert!(m.positions().iter().all(|v| *v < 1.0));
    assert!(m.energies().iter().all(|e| e.is_finite()));
}

/// The gradient-only batch path equals the gradient of the full path (energies and
/// gradients) bit for bit, for logistic regression (its sigmoid-only pass) and the diagonal
/// and dense Gaussians; checked to 1e-12 relative and, because both run the same arithmetic on
/// each entry, exactly. On column views that skip the first column, so a stride or offset
/// mix-up shows.
#[test]
fn gradient_only_batch_equals_full_path() {
    let diag = Gaussian::diagonal(
        DVector::from_fn(7, |i, _| i as f64 - 3.0),
        DVector::from_fn(7, |i, _| 0.5 + i as f64),
    )
    .unwrap();
    let cases: Vec<(Box<dyn BatchPotential>, usize)> = vec![
        (Box::new(logistic(150, 9, 2, 3.0)), 9),
        (Box::new(logistic(64, 3, 7, 8.0)), 3),
        (Box::new(diag), 7),
        (Box::new(dense_gaussian()), 4),
    ];
    for (p, d) in &cases {
        let d = *d;
        let c = 11;
        let mut r = rng(d as u64);
        let x = DMatrix::from_fn(d, c + 1, |_, _| 2.0 * r.sample::<f64, _>(StandardNormal));
        let mut full = DMatrix::zeros(d, c);
        let mut only = DMatrix::from_element(d, c, f64::NAN);
        let mut energy = vec![0.0; c];
        let mut work = BatchWorkspace::new();
        p.energy_grad_columns(x.columns(1, c), full.as_view_mut(), &mut energy, &mut work);
        p.grad_columns(x.columns(1, c), only.as_view_mut(), &mut work);
        let scale = 1.0 + full.amax();
        assert!((&full - &only).amax() <= 1e-12 * scale);
        assert_eq!(full, only, "d = {d}");
        // And the columns are those of the single-point gradient (to rounding).
        let mut g = DVector::zeros(d);
        for (j, e) in energy.iter().enumerate() {
            let u = p.energy_grad(&x.column(j + 1).into_owned(), &mut g);
            assert!((&g - only.column(j)).amax() <= 1e-12 * scale);
            assert!((u - e).abs() <= 1e-12 * (1.0 + u.abs()));
        }
    }
}

/// From d = 32 on, ULA draws its normals in bulk (vectorised Box–Muller); the ensemble must
/// still be bit for bit the single chains fed the same streams (same per-chain calls), with
/// and without the energies, and the energy-free run must report NaN energies.
#[test]
fn ula_ensemble_bulk_normals_equal_single_chains() {
    let d = 40;
    let target = Gaussian::diagonal(
        DVector::zeros(d),
        DVector::from_fn(d, |i, _| 1.0 / (1.0 + i as f64)),
    )
    .unwrap();
    let (c, h, steps) = (3, 0.01, 50);
    let start = DMatrix::from_fn(d, c, |i, j| 0.1 * (i as f64) - 0.2 * j as f64);
    let ens = UlaEnsemble::new(&target, h).unwrap();
    let fast = UlaEnsemble::new(&target, h).unwrap().without_energies();
    let (mut r1, mut r2) = (streams(8, c), streams(8, c));
    let mut a = ens.init(start.clone(), &mut r1[0]).unwrap();
    let mut b = fast.init(start.clone(), &mut r2[0]).unwrap();
    for _ in 0..steps {
        ens.step_streams(&mut a, &mut r1).unwrap();
        fast.step_streams(&mut b, &mut r2).unwrap();
    }
    assert_eq!(a.positions(), b.positions());
    assert!(b.energies().iter().all(|u| u.is_nan()));
    let ula = Ula::new(&target, h).unwrap();
    for (j, r) in streams(8, c).iter_mut().enumerate() {
        let mut s = ula.init(start.column(j).into_owned(), r).unwrap();
        for _ in 0..steps {
            ula.step(&mut s, r).unwrap();
        }
        assert_eq!(s.position().as_slice(), a.positions().column(j).as_slice());
        assert_eq!(s.energy(), a.energies()[j]);
    }
}

/// ULA with the bulk normals has the right stationary law: on N(0, I) in d = 32 its
/// stationary variance is 1/(1 − h/2) = 1.0526 at h = 0.1 (UlaOracle). 2000 chains from 0,
/// 150 steps (the bias (1 − h)^300 < 1e-13 of the variance is gone), pooled variance of the
/// 64 000 coordinates: SE = 1.0526·√(2/64000) = 0.0059, tolerance 5 SE = 0.03; normals with
/// the wrong variance (or a missing √2) miss by ≥ 0.05.
#[test]
fn ula_ensemble_bulk_normals_stationary_variance() {
    let (d, c, h) = (32, 2000, 0.1);
    let target = Gaussian::standard(Dyn(d));
    let ens = UlaEnsemble::new(&target, h).unwrap().without_energies();
    let mut r = rng(31);
    let mut s = ens.init(DMatrix::zeros(d, c), &mut r).unwrap();
    for _ in 0..150 {
        ens.step(&mut s, &mut r).unwrap();
    }
    let x = s.positions();
    let n = (d * c) as f64;
    let mean = x.sum() / n;
    let var = x.iter().map(|v| v * v).sum::<f64>() / n - mean * mean;
    let expected = 1.0 / (1.0 - h / 2.0);
    let se = expected * (2.0 / n).sqrt();
    assert!(
        (var - expected).abs() < 5.0 * se,
        "variance {var}, expected {expected}"
    );
    assert!(mean.abs() < 5.0 * (expected / n).sqrt(), "mean {mean}");
}

/// With the `rayon` feature the blocks of chains run in parallel; the result must not depend
/// on the number of threads: one thread and two threads give bit-identical positions,
/// energies and acceptance counts, for per-chain streams and for one shared RNG, ULA and MALA
/// (150 chains: 3 blocks of 50, so the threads really share the work).
#[cfg(feature = "rayon")]
#[test]
fn ensembles_are_bit_identical_for_any_thread_count() {
    let post = logistic(200, 5, 4, 1.0);
    let c = 150;
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let ula = UlaEnsemble::new(&post, 1e-3).unwrap();
            let mala = MalaEnsemble::new(&post, 0.01).unwrap();
            let mut rngs = streams(3, c);
            let mut shared = rng(77);
            let mut a = ula.init(DMatrix::zeros(5, c), &mut shared).unwrap();
            let mut b = ula.init(DMatrix::zeros(5, c), &mut shared).unwrap();
            let mut m = mala.init(DMatrix::zeros(5, c), &mut shared).unwrap();
            for _ in 0..30 {
                ula.step_streams(&mut a, &mut rngs).unwrap();
                ula.step(&mut b, &mut shared).unwrap();
                mala.step(&mut m, &mut shared).unwrap();
            }
            (a, b, m)
        })
    };
    let (a1, b1, m1) = run(1);
    let (a2, b2, m2) = run(2);
    assert_eq!(a1.positions(), a2.positions());
    assert_eq!(a1.energies(), a2.energies());
    assert_eq!(b1.positions(), b2.positions());
    assert_eq!(m1.positions(), m2.positions());
    assert_eq!(m1.energies(), m2.energies());
    assert_eq!(m1.acceptance_rate(), m2.acceptance_rate());
    assert!(m1.acceptance_rate() > 0.1 && m1.acceptance_rate() < 1.0);
    // The shared-RNG runs differ from the per-chain ones (different streams) but all moved.
    assert_ne!(a1.positions(), b1.positions());
}

/// `advance(k)` and `advance_streams(k)` equal `k` calls of `step` / `step_streams` bit for
/// bit, for ULA (with and without energies) and MALA on logistic regression with 150 chains
/// (3 blocks of 50), on 1- and 2-thread pools: positions, gradients, energies, the iteration,
/// acceptance and divergence counts, the summed accepted/divergent counts of the infos (the
/// mean acceptance probability to 1e-12: it is summed in another order), and the caller's RNG
/// afterwards. Segments of 7, 0, 1 and 12 steps.
#[test]
fn advance_equals_repeated_steps_bit_for_bit() {
    use klflow::langevin::{EnsembleInfo, EnsembleState};
    type Step<'a, S> =
        &'a dyn Fn(&S, &mut EnsembleState, &mut ChaCha8Rng) -> klflow::Result<EnsembleInfo>;
    type Adv<'a, S> =
        &'a dyn Fn(&S, &mut EnsembleState, usize, &mut ChaCha8Rng) -> klflow::Result<EnsembleInfo>;
    type StepS<'a, S> =
        &'a dyn Fn(&S, &mut EnsembleState, &mut [ChaCha8Rng]) -> klflow::Result<EnsembleInfo>;
    type AdvS<'a, S> = &'a dyn Fn(
        &S,
        &mut EnsembleState,
        usize,
        &mut [ChaCha8Rng],
    ) -> klflow::Result<EnsembleInfo>;
    fn same(a: &EnsembleState, b: &EnsembleState) {
        assert_eq!(a.positions(), b.positions());
        assert_eq!(a.gradients(), b.gradients());
        let bits = |s: &EnsembleState| s.energies().iter().map(|u| u.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(a), bits(b));
        assert_eq!(a.iteration(), b.iteration());
        assert_eq!(a.acceptance_rate(), b.acceptance_rate());
        assert_eq!(a.divergences(), b.divergences());
    }
    fn check<S: Sampler<Init = DMatrix<f64>, State = EnsembleState>>(
        s: &S,
        step: Step<'_, S>,
        advance: Adv<'_, S>,
        step_s: StepS<'_, S>,
        advance_s: AdvS<'_, S>,
    ) {
        let c = 150;
        let (mut r1, mut r2) = (rng(12), rng(12));
        let (mut q1, mut q2) = (streams(13, c), streams(13, c));
        let start = DMatrix::from_fn(5, c, |i, j| 0.1 * ((i + j) % 7) as f64 - 0.3);
        let a0 = s.init(start, &mut r1).unwrap();
        let (mut a, mut b, mut sa, mut sb) = (a0.clone(), a0.clone(), a0.clone(), a0);
        for k in [7, 0, 1, 12] {
            let ia = advance(s, &mut a, k, &mut r1).unwrap();
            let ja = advance_s(s, &mut sa, k, &mut q1).unwrap();
            let (mut acc, mut div, mut prob, mut acc_s) = (0, 0, 0.0, 0);
            for _ in 0..k {
                let i = step(s, &mut b, &mut r2).unwrap();
                acc += i.accepted;
                div += i.divergent;
                prob += i.mean_accept_prob;
                acc_s += step_s(s, &mut sb, &mut q2).unwrap().accepted;
            }
            same(&a, &b);
            same(&sa, &sb);
            assert_eq!((ia.accepted, ia.divergent, ja.accepted), (acc, div, acc_s));
            if k > 0 {
                assert!((ia.mean_accept_prob - prob / k as f64).abs() < 1e-12);
            }
            assert_eq!(r1.random::<u64>(), r2.random::<u64>());
            assert_eq!(q1[149].random::<u64>(), q2[149].random::<u64>());
        }
        // The per-chain and shared-RNG runs differ, and everything moved.
        assert_ne!(a.positions(), sa.positions());
    }
    let post = logistic(200, 5, 4, 1.0);
    on_pools(|| {
        let ula = UlaEnsemble::new(&post, 1e-3).unwrap();
        check(
            &ula,
            &|s, st, r| s.step(st, r),
            &|s, st, k, r| s.advance(st, k, r),
            &|s, st, r| s.step_streams(st, r),
            &|s, st, k, r| s.advance_streams(st, k, r),
        );
        let fast = UlaEnsemble::new(&post, 1e-3).unwrap().without_energies();
        check(
            &fast,
            &|s, st, r| s.step(st, r),
            &|s, st, k, r| s.advance(st, k, r),
            &|s, st, r| s.step_streams(st, r),
            &|s, st, k, r| s.advance_streams(st, k, r),
        );
        let mala = MalaEnsemble::new(&post, 0.02).unwrap();
        check(
            &mala,
            &|s, st, r| s.step(st, r),
            &|s, st, k, r| s.advance(st, k, r),
            &|s, st, r| s.step_streams(st, r),
            &|s, st, k, r| s.advance_streams(st, k, r),
        );
    });
}

/// A potential infinite on x₀ ≥ 1 (finite gradient): ULA's `advance` fails at the same step
/// as single steps (the earliest step any block failed at), naming the energy, with the same
/// iteration and acceptance counts; MALA's `advance` counts the same divergences as single
/// steps. 200 chains (4 blocks; ULA from 0, MALA from 0.9) on 1- and 2-thread pools.
#[test]
fn advance_non_finite_matches_single_steps() {
    on_pools(|| {
        let ula = UlaEnsemble::new(Wall(1), 0.01).unwrap();
        let (mut r1, mut r2) = (rng(9), rng(9));
        let mut a = ula.init(DMatrix::zeros(1, 200), &mut r1).unwrap();
        let mut b = a.clone();
        let ea = ula.advance(&mut a, 1000, &mut r1).unwrap_err();
        let eb = (0..1000)
            .find_map(|_| ula.step(&mut b, &mut r2).err())
            .unwrap();
        assert!(
            matches!(eb, Error::NonFinite { quantity: "energy", step } if step > 1),
            "{eb:?}"
        );
        assert_eq!(ea, eb);
        assert_eq!(
            (a.iteration(), a.acceptance_rate()),
            (b.iteration(), b.acceptance_rate())
        );
        let mala = MalaEnsemble::new(Wall(1), 0.5).unwrap();
        // After the error `advance` has drawn all its seeds, single steps only those before it.
        let (mut r1, mut r2) = (rng(10), rng(10));
        let mut m = mala
            .init(DMatrix::from_element(1, 200, 0.9), &mut r1)
            .unwrap();
        let mut n = m.clone();
        mala.advance(&mut m, 50, &mut r1).unwrap();
        for _ in 0..50 {
            mala.step(&mut n, &mut r2).unwrap();
        }
        assert!(n.divergences() > 0);
        assert_eq!(
            (m.divergences(), m.positions()),
            (n.divergences(), n.positions())
        );
    });
}
