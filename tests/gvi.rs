//! Gaussian VI in the Bures–Wasserstein space: FB-GVI (deterministic, stochastic,
//! Hessian-free) and BW gradient descent, against the theorems of ALGORITHMS.md §4.

use klflow::potential::{Gaussian, LogisticRegression, Potential, PotentialHessian};
use klflow::vi::{
    BwGd, Expectation, FbGvi, GaussHermite, GviInfo, GviState, entropy_jko, entropy_jko_eigenvalue,
};
use klflow::{Error, Sampler};
use nalgebra::{Const, DMatrix, DVector, DefaultAllocator, Dim, Dyn, SMatrix, SVector};
use proptest::prelude::*;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

type V5 = SVector<f64, 5>;
type M5 = SMatrix<f64, 5, 5>;

fn random_rotation(n: usize, rng: &mut ChaCha8Rng) -> DMatrix<f64> {
    let g = DMatrix::from_fn(n, n, |_, _| rng.sample::<f64, _>(StandardNormal));
    g.qr().q()
}

/// `Q diag(eigs) Qᵀ` with a random rotation `Q`.
fn spd_with_spectrum(eigs: &[f64], rng: &mut ChaCha8Rng) -> DMatrix<f64> {
    let q = random_rotation(eigs.len(), rng);
    let m = &q * DMatrix::from_diagonal(&DVector::from_column_slice(eigs)) * q.transpose();
    (&m + m.transpose()) * 0.5
}

fn to5(m: &DMatrix<f64>) -> M5 {
    M5::from_column_slice(m.as_slice())
}

/// The T4.1/T4.2 target: precision with eigenvalues {0.2, 0.5, 1, 2, 4} (α = 0.2, β = 4),
/// and a random initial Gaussian.
fn setup5(seed: u64) -> (Gaussian<Const<5>>, Gaussian<Const<5>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let a = spd_with_spectrum(&[0.2, 0.5, 1.0, 2.0, 4.0], &mut rng);
    let mu = V5::from_fn(|_, _| rng.sample::<f64, _>(StandardNormal));
    let target = Gaussian::from_precision(mu, to5(&a)).unwrap();
    let s0 = spd_with_spectrum(&[0.3, 0.8, 1.5, 3.0, 6.0], &mut rng);
    let m0 = V5::from_fn(|_, _| 3.0 * rng.sample::<f64, _>(StandardNormal));
    (target, Gaussian::new(m0, to5(&s0)).unwrap())
}

fn mean_err<D: Dim>(s: &GviState<D>, t: &Gaussian<D>) -> f64
where
    DefaultAllocator: klflow::dim::Alloc<D>,
{
    (s.mean() - t.mean()).norm()
}

fn cov_err<D: Dim>(s: &GviState<D>, t: &Gaussian<D>) -> f64
where
    DefaultAllocator: klflow::dim::Alloc<D>,
{
    (s.covariance() - t.covariance()).norm()
}

// ---------------------------------------------------------------------------------------------
// T4.1: the target is the exact fixed point (no discretisation bias).

#[test]
fn t41_no_discretisation_bias_on_gaussian_targets() {
    let (target, start) = setup5(41);
    let (alpha, beta) = (0.2, 4.0);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for c in [0.1, 0.5, 0.9] {
        let h = c / beta;
        let gvi = FbGvi::new(&target, h, Expectation::Quadratic).unwrap();
        let mut st = gvi.init(start.clone(), &mut rng).unwrap();
        let e0 = mean_err(&st, &target);
        for k in 1..=400 {
            gvi.step(&mut st, &mut rng).unwrap();
            // The mean error is multiplied by I − hA exactly: ‖e_k‖ ≤ (1 − hα)^k ‖e_0‖.
            let bound = (1.0 - h * alpha).powi(k) * e0;
            assert!(
                mean_err(&st, &target) <= bound * (1.0 + 1e-9) + 1e-14,
                "c={c} k={k}"
            );
        }
        if c == 0.9 {
            // (1 − hα)^400 = 0.955^400 ≈ 1e-8 of the initial error (≈ 7): below 1e-6.
            assert!(mean_err(&st, &target) < 1e-6, "{}", mean_err(&st, &target));
            // ((1 − hα)/(1 + hα))^400 ≈ 2e-16: only round-off is left.
            assert!(cov_err(&st, &target) < 1e-8, "{}", cov_err(&st, &target));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// T4.2: W₂ contraction and the asymptotic rates.

fn w2_contraction_holds(seed: u64, c: f64, eigs: [f64; 4]) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let a = spd_with_spectrum(&eigs, &mut rng);
    let alpha = eigs.iter().copied().fold(f64::INFINITY, f64::min);
    let beta = eigs.iter().copied().fold(0.0, f64::max);
    let mu = SVector::<f64, 4>::from_fn(|_, _| rng.sample::<f64, _>(StandardNormal));
    let target =
        Gaussian::from_precision(mu, SMatrix::<f64, 4, 4>::from_column_slice(a.as_slice()))
            .unwrap();
    let s0 = spd_with_spectrum(&[0.1, 1.0, 2.0, 10.0], &mut rng);
    let start = Gaussian::new(
        SVector::<f64, 4>::repeat(2.0),
        SMatrix::<f64, 4, 4>::from_column_slice(s0.as_slice()),
    )
    .unwrap();
    let h = c / beta;
    let gvi = FbGvi::new(&target, h, Expectation::Quadratic).unwrap();
    let w0 = start.w2_squared(&target).unwrap();
    let mut st = gvi.init(start, &mut rng).unwrap();
    for k in 1..=400 {
        gvi.step(&mut st, &mut rng).unwrap();
        let wk = st.gaussian().unwrap().w2_squared(&target).unwrap();
        let bound = (-alpha * h * k as f64).exp() * w0;
        assert!(wk <= bound * (1.0 + 1e-9) + 1e-13, "k={k}: {wk} > {bound}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(0x6b6c_666c_6f77), ..ProptestConfig::default() })]
    #[test]
    fn t42_w2_contraction(seed in 0u64..1000, c in 0.1f64..=1.0,
                          e in proptest::array::uniform4(0.25f64..5.0)) {
        w2_contraction_holds(seed, c, e);
    }
}

#[test]
fn t42_asymptotic_rates() {
    let (target, start) = setup5(42);
    let (alpha, beta) = (0.2, 4.0);
    let h = 0.9 / beta;
    let gvi = FbGvi::new(&target, h, Expectation::Quadratic).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut st = gvi.init(start, &mut rng).unwrap();
    // By step 150 the next-slowest modes are 0.932^150 ≈ 3e-5 (covariance) and
    // 0.929^150 ≈ 1e-5 (mean) of the slowest: the ratios are the leading rates to < 1e-3, and
    // the errors (≈ 1e-6) are still far above round-off.
    for _ in 0..150 {
        gvi.step(&mut st, &mut rng).unwrap();
    }
    let (c0, m0) = (cov_err(&st, &target), mean_err(&st, &target));
    gvi.step(&mut st, &mut rng).unwrap();
    let (c1, m1) = (cov_err(&st, &target), mean_err(&st, &target));
    let cov_rate = (1.0 - h * alpha) / (1.0 + h * alpha); // 0.913876
    eprintln!(
        "T4.2: covariance ratio {:.6} (theory {cov_rate:.6}), mean ratio {:.6}",
        c1 / c0,
        m1 / m0
    );
    assert!(
        (c1 / c0 - cov_rate).abs() < 1e-3,
        "{} vs {cov_rate}",
        c1 / c0
    );
    assert!((m1 / m0 - (1.0 - h * alpha)).abs() < 1e-3, "{}", m1 / m0);
    // The covariance converges faster than the mean; BW gradient descent is not exact.
    assert!(c1 / c0 < m1 / m0 - 0.03);
}

// ---------------------------------------------------------------------------------------------
// T4.3: the stochastic version's noise floor.

#[test]
fn t43_stochastic_noise_floor() {
    let (target, start) = setup5(43);
    let beta = 4.0;
    let h = 0.5 / beta;
    let lambdas = [0.2, 0.5, 1.0, 2.0, 4.0];
    let floor: f64 = lambdas.iter().map(|l| h / (2.0 - h * l)).sum(); // 0.349232
    let gvi = FbGvi::new(&target, h, Expectation::MonteCarlo { batch: 1 }).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut st = gvi.init(start, &mut rng).unwrap();
    for _ in 0..1000 {
        gvi.step(&mut st, &mut rng).unwrap();
    }
    // The Hessian of a Gaussian is constant: the covariance follows the deterministic recursion
    // ((0.975/1.025)^1000 ≈ 1e-22), whatever the draws.
    assert!(cov_err(&st, &target) < 1e-10, "{}", cov_err(&st, &target));
    // Time average of ‖m − μ*‖² over 10⁵ steps; standard error by batch means (batches of
    // 2000 steps ≫ the integrated autocorrelation time ≈ 40).
    let (nb, len) = (50, 2000);
    let mut batch_means = Vec::with_capacity(nb);
    for _ in 0..nb {
        let mut acc = 0.0;
        for _ in 0..len {
            gvi.step(&mut st, &mut rng).unwrap();
            acc += (st.mean() - target.mean()).norm_squared();
        }
        batch_means.push(acc / len as f64);
    }
    let est = batch_means.iter().sum::<f64>() / nb as f64;
    let var = batch_means.iter().map(|b| (b - est).powi(2)).sum::<f64>() / (nb - 1) as f64;
    let se = (var / nb as f64).sqrt();
    assert!(cov_err(&st, &target) < 1e-10);
    eprintln!("T4.3: E‖m − μ*‖² = {est:.5} ± {se:.5} vs {floor:.5}");
    // The test has power: 4.5 SE is below 5 %.
    assert!(4.5 * se < 0.05 * floor, "se = {se}");
    assert!(
        (est - floor).abs() < 4.5 * se,
        "E‖m − μ*‖² = {est} vs {floor} (se {se})"
    );
}

// ---------------------------------------------------------------------------------------------
// T4.4: a non-Gaussian 1-D target with Gauss–Hermite expectations.

/// `U(x) = x²/2 + log cosh(x − 1)`: 1-strongly convex, 2-smooth.
struct LogCosh;

fn log_cosh(y: f64) -> f64 {
    y.abs() + (-2.0 * y.abs()).exp().ln_1p() - std::f64::consts::LN_2
}

impl Potential for LogCosh {
    type Dim = Const<1>;
    fn dim(&self) -> Const<1> {
        Const
    }
    fn energy(&self, x: &SVector<f64, 1>) -> f64 {
        0.5 * x[0] * x[0] + log_cosh(x[0] - 1.0)
    }
    fn energy_grad(&self, x: &SVector<f64, 1>, g: &mut SVector<f64, 1>) -> f64 {
        g[0] = x[0] + (x[0] - 1.0).tanh();
        self.energy(x)
    }
    fn smoothness(&self) -> Option<f64> {
        Some(2.0)
    }
}

impl PotentialHessian for LogCosh {
    fn hessian(&self, x: &SVector<f64, 1>, h: &mut SMatrix<f64, 1, 1>) {
        h[0] = 1.0 + 1.0 / (x[0] - 1.0).cosh().powi(2);
    }
}

/// `(E∇U, σ²E∇²U − 1)` under `N(m, v)` by the trapezoid rule on a fine grid (independent of
/// the crate's quadrature).
fn stationarity_residuals(m: f64, v: f64) -> (f64, f64) {
    let sd = v.sqrt();
    let (n, half_width) = (40_000, 12.0);
    let dz = 2.0 * half_width / n as f64;
    let (mut g, mut hs) = (0.0, 0.0);
    for i in 0..=n {
        let z = -half_width + i as f64 * dz;
        let w = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt() * dz;
        let x = m + sd * z;
        g += w * (x + (x - 1.0).tanh());
        hs += w * (1.0 + 1.0 / (x - 1.0).cosh().powi(2));
    }
    (g, v * hs - 1.0)
}

#[test]
fn t44_non_gaussian_fixed_point() {
    let start = Gaussian::new(
        SVector::<f64, 1>::from_element(-3.0),
        SMatrix::from_element(5.0),
    )
    .unwrap();
    let mut finals = Vec::new();
    for h in [0.25, 0.5] {
        let gvi = FbGvi::new(LogCosh, h, Expectation::GaussHermite { nodes: 60 }).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut st = gvi.init(start.clone(), &mut rng).unwrap();
        let mut last = f64::INFINITY;
        let mut info = None::<GviInfo>;
        for _ in 0..300 {
            let i = gvi.step(&mut st, &mut rng).unwrap();
            // F(p_k) = E U − ½log σ² + const is non-increasing (Theorem: h ≤ 1/β).
            assert!(
                i.objective <= last + 1e-13,
                "h={h}: {} > {last}",
                i.objective
            );
            last = i.objective;
            info = Some(i);
        }
        let (m, v) = (st.mean()[0], st.covariance()[(0, 0)]);
        let (g, hs) = stationarity_residuals(m, v);
        assert!(
            g.abs() < 1e-10 && hs.abs() < 1e-10,
            "h={h}: residuals {g:e}, {hs:e}"
        );
        assert!(info.unwrap().gradient_norm_sq < 1e-20);
        finals.push((m, v));
    }
    for (m, v) in finals {
        eprintln!("T4.4: m = {m:.9}, σ² = {v:.9}");
        assert!((m - 0.396503).abs() < 1e-6, "m = {m}");
        assert!((v - 0.626380).abs() < 1e-6, "σ² = {v}");
    }
}

// ---------------------------------------------------------------------------------------------
// T4.5: the JKO step of the entropy.

fn jko_round_trip(seed: u64, h: f64, log_spread: f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let eigs: Vec<f64> = (0..6)
        .map(|i| 10f64.powf(log_spread * (i as f64 / 5.0 - 0.5)))
        .collect();
    let s = spd_with_spectrum(&eigs, &mut rng);
    let s1 = entropy_jko(&s, h).unwrap();
    assert_eq!(s1, s1.transpose(), "not exactly symmetric");
    let chol = s1.clone().cholesky().expect("S' must be positive definite");
    let ev = s1.clone().symmetric_eigenvalues();
    assert!(
        ev.min() >= h * (1.0 - 1e-12),
        "λ_min(S') = {} < h = {h}",
        ev.min()
    );
    let m = DMatrix::identity(6, 6) - chol.inverse() * h;
    let back = &m * &s1 * m.transpose();
    let err = (back - &s).norm() / s.norm();
    assert!(err < 1e-12, "round trip {err:e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(0x6b6c_666c_6f77), ..ProptestConfig::default() })]
    #[test]
    fn t45_jko_round_trip(seed in 0u64..10_000, h in 1e-3f64..2.0, spread in 0.0f64..4.0) {
        jko_round_trip(seed, h, spread);
    }
}

#[test]
fn t45_jko_scalar_map_and_semidefinite_input() {
    // s(σ) minimises −½log s + (√s − √σ)²/(2h): its derivative vanishes there.
    for (sigma, h) in [(0.3, 0.1), (5.0, 2.0), (1e-6, 1.0)] {
        let s: f64 = entropy_jko_eigenvalue(sigma, h);
        let deriv = -0.5 / s + (s.sqrt() - sigma.sqrt()) / (2.0 * h * s.sqrt());
        assert!(deriv.abs() < 1e-12 / s, "{deriv}");
    }
    // A singular (PSD) covariance is mapped to an SPD one: σ = 0 → s = h.
    let s = DMatrix::from_row_slice(2, 2, &[1.0, 1.0, 1.0, 1.0]);
    let s1 = entropy_jko(&s, 0.5).unwrap();
    let ev = s1.symmetric_eigenvalues();
    assert!((ev.min() - 0.5).abs() < 1e-12);
    let bad = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 2.0, 1.0]);
    assert_eq!(
        entropy_jko(&bad, 0.5),
        Err(Error::NotPositiveDefinite { name: "cov" })
    );
}

// ---------------------------------------------------------------------------------------------
// Gauss–Hermite nodes.

#[test]
fn gauss_hermite_moments_and_tails() {
    for n in [1, 2, 5, 20, 60, 100] {
        let gh = GaussHermite::new(n).unwrap();
        // E Z^{2k} = (2k − 1)!! exactly for 2k ≤ 2n − 1.
        let mut dfact = 1.0;
        for k in 0..n.min(10) {
            let moment = gh.expect(|x| x.powi(2 * k as i32));
            assert!(
                (moment / dfact - 1.0).abs() < 1e-12,
                "n={n} k={k}: {moment} vs {dfact}"
            );
            dfact *= (2 * k + 1) as f64;
        }
        assert!(gh.expect(|x| x.powi(3)).abs() < 1e-12);
    }
    // The outermost weight of the 60-point rule to full relative accuracy: it is
    // w_n = 1/Σ p_k(x_n)², checked against the closed form n!/(n² He_{n−1}(x)²) computed in
    // logarithms.
    let gh = GaussHermite::new(60).unwrap();
    let x = *gh.nodes().last().unwrap();
    let (mut he_prev, mut he) = (0.0f64, 1.0f64); // He_{-1}, He_0 scaled by e^{-shift}
    let mut log_scale = 0.0;
    for k in 0..59 {
        let next = x * he - k as f64 * he_prev;
        he_prev = he;
        he = next;
        let s = he.abs().max(1.0);
        he /= s;
        he_prev /= s;
        log_scale += s.ln();
    }
    // he = He_59(x)/e^{log_scale}
    let log_fact: f64 = (1..=60).map(|k| (k as f64).ln()).sum();
    let log_w = log_fact - 2.0 * 60f64.ln() - 2.0 * (he.abs().ln() + log_scale);
    let w = *gh.weights().last().unwrap();
    assert!((w.ln() - log_w).abs() < 1e-10, "{} vs {}", w.ln(), log_w);
    assert!(w < 1e-40 && w > 0.0);
    assert!(GaussHermite::new(0).is_err() && GaussHermite::new(257).is_err());
}

// ---------------------------------------------------------------------------------------------
// Hessian-free (Stein) FB-GVI and BW gradient descent.

#[test]
fn stein_hessian_matches_exact_hessian_with_quadrature() {
    // With a Gauss–Hermite grid Stein's identity is exact for a quadratic U: the Hessian-free
    // iterates coincide with the exact ones. Dropping the Σ⁻¹ factor breaks this.
    let (target, start) = setup5(44);
    let target3 = Gaussian::new(
        target.mean().fixed_rows::<3>(0).into_owned(),
        target.covariance().fixed_view::<3, 3>(0, 0).into_owned(),
    )
    .unwrap();
    let start3 = Gaussian::new(
        start.mean().fixed_rows::<3>(0).into_owned(),
        start.covariance().fixed_view::<3, 3>(0, 0).into_owned(),
    )
    .unwrap();
    let h = 0.5 / target3.smoothness().unwrap();
    let exact = FbGvi::new(&target3, h, Expectation::Quadratic).unwrap();
    let stein = FbGvi::hessian_free(&target3, h, Expectation::GaussHermite { nodes: 4 }).unwrap();
    let cub = FbGvi::hessian_free(&target3, h, Expectation::Cubature).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut a = exact.init(start3.clone(), &mut rng).unwrap();
    let mut b = stein.init(start3.clone(), &mut rng).unwrap();
    let mut c = cub.init(start3, &mut rng).unwrap();
    for _ in 0..50 {
        let ia = exact.step(&mut a, &mut rng).unwrap();
        let ib = stein.step(&mut b, &mut rng).unwrap();
        cub.step(&mut c, &mut rng).unwrap();
        assert!((ia.objective - ib.objective).abs() < 1e-10);
    }
    assert!((a.covariance() - b.covariance()).norm() < 1e-10);
    assert!((a.covariance() - c.covariance()).norm() < 1e-10);
    assert!((a.mean() - b.mean()).norm() < 1e-10);
}

#[test]
fn stochastic_hessian_free_converges_near_the_target() {
    // d = 5, batch 16: the iterates hover around the target; the time-averaged covariance is
    // within a few per cent (noise floor O(h)).
    let (target, start) = setup5(45);
    let h = 0.05;
    let gvi = FbGvi::hessian_free(&target, h, Expectation::MonteCarlo { batch: 16 }).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut st = gvi.init(start, &mut rng).unwrap();
    for _ in 0..2000 {
        gvi.step(&mut st, &mut rng).unwrap();
    }
    let mut cov_avg = M5::zeros();
    let n = 4000;
    for _ in 0..n {
        let info = gvi.step(&mut st, &mut rng).unwrap();
        assert!(info.min_eigenvalue >= h);
        cov_avg += st.covariance() / n as f64;
    }
    let rel = (cov_avg - target.covariance()).norm() / target.covariance().norm();
    assert!(rel < 0.05, "relative covariance error {rel}");
}

#[test]
fn bw_gradient_descent_converges_and_compares_in_one_line() {
    let (target, start) = setup5(46);
    let h = 0.5 / 4.0;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let fb = FbGvi::new(&target, h, Expectation::Quadratic).unwrap();
    let bw = BwGd::new(&target, h, Expectation::Quadratic).unwrap();
    let (mut a, mut b) = (
        fb.init(start.clone(), &mut rng).unwrap(),
        bw.init(start, &mut rng).unwrap(),
    );
    for _ in 0..1500 {
        fb.step(&mut a, &mut rng).unwrap();
        bw.step(&mut b, &mut rng).unwrap();
    }
    // BW-GD's fixed point is also the target (its gradient vanishes there).
    assert!(b.gaussian().unwrap().kl(&target).unwrap() < 1e-12);
    // One step of BW-GD by hand from a 1-D Gaussian: M = a − 1/σ², σ'² = (1 − hM)²σ².
    let t1 = Gaussian::new(SVector::<f64, 1>::zeros(), SMatrix::from_element(0.5)).unwrap();
    let bw1 = BwGd::new(&t1, 0.25, Expectation::Quadratic).unwrap();
    let mut s1 = bw1
        .init(
            Gaussian::new(SVector::from_element(1.0), SMatrix::from_element(2.0)).unwrap(),
            &mut rng,
        )
        .unwrap();
    bw1.step(&mut s1, &mut rng).unwrap();
    let expect = (1.0f64 - 0.25 * (2.0 - 0.5)).powi(2) * 2.0;
    assert!((s1.covariance()[(0, 0)] - expect).abs() < 1e-14);
    assert!((s1.mean()[0] - 0.5).abs() < 1e-14); // 1 − 0.25·2·1
}

// ---------------------------------------------------------------------------------------------
// Ill-conditioned target (κ = 1e8) and the step-size check.

#[test]
fn condition_number_1e8_stays_spd() {
    let d = 10;
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let eigs: Vec<f64> = (0..d).map(|i| 10f64.powf(8.0 * i as f64 / 9.0)).collect();
    let a = spd_with_spectrum(&eigs, &mut rng);
    let target = Gaussian::from_precision(DVector::from_element(d, 1.0), a).unwrap();
    let l = target.smoothness().unwrap();
    assert!((l / 1e8 - 1.0).abs() < 1e-6);
    // A step above 1/L is refused, and the error says why.
    match FbGvi::new(&target, 2.0 / l, Expectation::Quadratic) {
        Err(
            e @ Error::InvalidParameter {
                name: "step_size",
                reason,
                ..
            },
        ) => {
            assert!(reason.contains("1/L"), "{e}");
        }
        other => panic!("expected a step-size error, got {other:?}"),
    }
    let start = Gaussian::isotropic(DVector::zeros(d), 1.0).unwrap();
    for e in [Expectation::Quadratic, Expectation::MonteCarlo { batch: 4 }] {
        let gvi = FbGvi::new(&target, 1.0 / l, e).unwrap();
        let mut st = gvi.init(start.clone(), &mut rng).unwrap();
        for _ in 0..200 {
            let info = gvi.step(&mut st, &mut rng).unwrap();
            assert!(info.min_eigenvalue >= 1.0 / l * (1.0 - 1e-12));
            assert!(info.objective.is_finite());
        }
        let g = st.gaussian().expect("Σ stays SPD");
        assert!(g.covariance_eigen_range().0 > 0.0);
        // The stiff directions are resolved: Σ's component along λ_max(A) is ≈ 1/λ_max.
        let s = st.covariance_eigenvalues();
        assert!((s.min() * l - 1.0).abs() < 1e-3, "{}", s.min() * l);
    }
    // Hessian-free with a deterministic rule: Stein's identity is exact for a quadratic U,
    // so it copes with κ = 1e8 like the exact Hessian.
    let gvi = FbGvi::hessian_free(&target, 1.0 / l, Expectation::Cubature).unwrap();
    let mut st = gvi.init(start.clone(), &mut rng).unwrap();
    for _ in 0..200 {
        gvi.step(&mut st, &mut rng).unwrap();
    }
    assert!(st.gaussian().is_ok());
    assert!((st.covariance_eigenvalues().min() * l - 1.0).abs() < 1e-3);
    // Hessian-free with 4 Monte Carlo draws: the estimator's variance grows with κ and the
    // run may blow up — but as an error naming the step, never a panic or a NaN state.
    let gvi = FbGvi::hessian_free(&target, 1.0 / l, Expectation::MonteCarlo { batch: 4 }).unwrap();
    let mut st = gvi.init(start, &mut rng).unwrap();
    for _ in 0..200 {
        match gvi.step(&mut st, &mut rng) {
            Ok(info) => assert!(info.min_eigenvalue > 0.0 && info.objective.is_finite()),
            Err(Error::NonFinite { step, .. }) => {
                assert!(step >= 1);
                break;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// German credit logistic regression (Inference Gym reference, NUTS with 1.5·10⁶ draws).

fn german_credit() -> (LogisticRegression<Dyn>, Vec<(f64, f64)>) {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/posteriordb/german_credit-logistic_regression"
    );
    let read = |f: &str| -> serde_json::Value {
        let path = format!("{dir}/{f}");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("German credit data missing at {path}: {e}"));
        serde_json::from_str(&text).expect("valid JSON")
    };
    let data = read("data.json");
    let reference = read("reference.json");
    let f = |v: &serde_json::Value| v.as_f64().unwrap();
    let raw = data["features_raw"].as_array().unwrap();
    let mean: Vec<f64> = data["feature_mean"]
        .as_array()
        .unwrap()
        .iter()
        .map(f)
        .collect();
    let sd: Vec<f64> = data["feature_std_ddof0"]
        .as_array()
        .unwrap()
        .iter()
        .map(f)
        .collect();
    let n = raw.len();
    let a = DMatrix::from_fn(n, 25, |i, j| {
        if j == 24 {
            1.0
        } else {
            (f(&raw[i][j]) - mean[j]) / sd[j]
        }
    });
    let y: Vec<f64> = data["labels"].as_array().unwrap().iter().map(f).collect();
    let post = LogisticRegression::new(Dyn(25), &a, &y, 1.0).unwrap();
    let refs = reference["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (f(&p["mean"]), f(&p["sd"])))
        .collect();
    (post, refs)
}

#[test]
fn german_credit_matches_nuts_reference() {
    let (post, refs) = german_credit();
    let h = 1.0 / post.smoothness().unwrap();
    let gvi = FbGvi::new(&post, h, Expectation::Cubature).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut st = gvi
        .init(
            Gaussian::isotropic(DVector::zeros(25), 0.1).unwrap(),
            &mut rng,
        )
        .unwrap();
    let mut last = f64::INFINITY;
    let mut info = None;
    for _ in 0..600 {
        let i = gvi.step(&mut st, &mut rng).unwrap();
        last = i.objective.min(last);
        info = Some(i);
    }
    let info = info.unwrap();
    eprintln!(
        "german credit: grad² = {:e}, F = {}",
        info.gradient_norm_sq, info.objective
    );
    let mut worst_m: f64 = 0.0;
    let mut worst_s: f64 = 0.0;
    for (j, (m, s)) in refs.iter().enumerate() {
        let zm = (st.mean()[j] - m) / s;
        let rs = st.covariance()[(j, j)].sqrt() / s - 1.0;
        worst_m = worst_m.max(zm.abs());
        worst_s = worst_s.max(rs.abs());
    }
    eprintln!("german credit: worst |Δmean|/sd = {worst_m}, worst |sd ratio − 1| = {worst_s}");
    assert!(worst_m < 0.1);
    assert!(worst_s < 0.1);
}
