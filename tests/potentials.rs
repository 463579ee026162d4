//! Tests of the shipped targets (`klflow::potential`).
//!
//! Three independent derivative sources check each other on every target (the Hessian where one
//! is shipped), at a `Const` dimension (stack vectors) and at `Dyn(7)` (heap vectors;
//! `EightSchools` is `Dyn` only):
//!
//! * the hand-written `energy_grad` / `hessian` of the target;
//! * central finite differences (`check_gradient`, `check_hessian`);
//! * forward-mode automatic differentiation (`AutoDiff`) of an independent re-implementation of
//!   the potential, written here from the formula in the target's documentation (with its own
//!   matrix inverses and log-determinants by LU, not the crate's Cholesky factors).
//!
//! Exact samplers are checked against the stated moments at 5 Monte Carlo standard errors
//! (computed from the draws), the Gaussian divergences against their defining expectations,
//! and every constructor against its documented errors.
//!
//! Tolerances (all stated relative to a scale `1 + |U| + ‖∇U‖∞`, or `1 + ‖∇U‖∞ + ‖∇²U‖max`
//! for Hessians):
//!
//! * finite differences: the checker's step is `h ≈ 6e-6·max(1, |xᵢ|)`, so the error is the
//!   truncation `h²|U'''|/6 ≈ 6e-12|U'''|` plus rounding `ε|U|/h ≈ 4e-11|U|`: about 1e-10 of the
//!   scale on our draws. We assert [`FD_TOL`] = 1e-8 (the usual "central differences are good to
//!   ~1e-8").
//! * automatic differentiation evaluates the same mathematics in another order: errors of a few
//!   ulps times the number of summed terms. We assert [`AD_TOL`] = 1e-12.

use std::cell::Cell;

use klflow::Error;
use klflow::dim::Alloc;
use klflow::potential::{
    AutoDiff, Banana, Counted, DualFunction, EvaluationCounts, Funnel, Gaussian, GaussianMixture,
    LogisticRegression, Potential, PotentialHessian, check_gradient, check_hessian,
    finite_difference_gradient,
};
use klflow::potential::{DoubleWell, EightSchools, LinearRegression, Parameterisation};
use nalgebra::allocator::Allocator;
use nalgebra::{
    Const, DMatrix, DVector, DefaultAllocator, Dim, Dyn, OMatrix, OVector, SMatrix, SVector, U1,
};
use num_dual::DualNum;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

/// Finite differences vs analytic derivatives, relative to the scale (see the module docs).
const FD_TOL: f64 = 1e-8;
/// Automatic differentiation vs analytic derivatives, relative to the scale.
const AD_TOL: f64 = 1e-12;
/// Monte Carlo checks: |estimate − exact| ≤ Z·SE.
const Z: f64 = 5.0;
/// Cases per property.
const CASES: u32 = 24;
/// The runtime dimension of the `Dyn` cases.
const DYN_D: usize = 7;

const LN_2PI: f64 = 1.837_877_066_409_345_5;

// ---------------------------------------------------------------------------------------------
// Property runner: fixed seed, no failure files, reports the worst error/tolerance ratio.
// ---------------------------------------------------------------------------------------------

/// The worst error/tolerance ratios of one case: exact-type checks (AD, identities) and
/// finite-difference checks.
#[derive(Clone, Copy, Default)]
struct Worst {
    exact: f64,
    fd: f64,
}

impl Worst {
    fn max(self, o: Self) -> Self {
        Self {
            exact: self.exact.max(o.exact),
            fd: self.fd.max(o.fd),
        }
    }
    fn exact(r: f64) -> Self {
        Self { exact: r, fd: 0.0 }
    }
}

/// Runs `test` on `CASES` values of `strategy` (deterministic seed). `test` returns the worst
/// ratios error/tolerance it saw (it fails itself if a ratio exceeds 1); the largest are printed.
fn property<S: Strategy>(
    name: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<Worst, TestCaseError>,
) {
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    };
    let mut seed = [0u8; 32];
    for (i, b) in name.bytes().enumerate() {
        seed[i % 32] ^= b;
    }
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let worst = Cell::new(Worst::default());
    let result = runner.run(&strategy, |v| {
        let r = test(v)?;
        worst.set(worst.get().max(r));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    let w = worst.get();
    println!(
        "{name}: worst error/tolerance: exact/AD {:.2e}, finite differences {:.2e}",
        w.exact, w.fd
    );
}

/// `Ok(err / tol)` if `err ≤ tol`, else a failure naming `what`.
fn within(what: &str, err: f64, tol: f64) -> Result<f64, TestCaseError> {
    if err <= tol {
        Ok(err / tol)
    } else {
        Err(TestCaseError::fail(format!(
            "{what}: error {err:e} > tolerance {tol:e}"
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// Random parameters.
// ---------------------------------------------------------------------------------------------

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    rng.sample(StandardNormal)
}

/// A random orthogonal matrix (Q of the QR of a Gaussian matrix).
fn random_orthogonal(n: usize, rng: &mut ChaCha8Rng) -> DMatrix<f64> {
    DMatrix::from_fn(n, n, |_, _| normal(rng)).qr().q()
}

/// `Q diag(λ) Qᵀ`, exactly symmetrised.
fn spd_from(q: &DMatrix<f64>, lambda: &[f64]) -> DMatrix<f64> {
    let c = q * DMatrix::from_diagonal(&DVector::from_column_slice(lambda)) * q.transpose();
    (&c + c.transpose()) * 0.5
}

/// `diag(v)` (a non-generic helper: inside generic functions the `DefaultAllocator: Alloc<D>`
/// bound hides nalgebra's `Dyn` allocator impl from method resolution).
fn diagonal_matrix(v: &[f64]) -> DMatrix<f64> {
    DMatrix::from_diagonal(&DVector::from_column_slice(v))
}

/// Eigenvalues log-uniform in `[lo, hi]`.
fn random_spectrum(n: usize, lo: f64, hi: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    (0..n)
        .map(|_| (lo.ln() + rng.random::<f64>() * (hi / lo).ln()).exp())
        .collect()
}

/// A random SPD matrix with spectrum in `[lo, hi]`.
fn random_spd(n: usize, lo: f64, hi: f64, rng: &mut ChaCha8Rng) -> DMatrix<f64> {
    let q = random_orthogonal(n, rng);
    spd_from(&q, &random_spectrum(n, lo, hi, rng))
}

fn to_vec<D: Dim>(d: D, v: &[f64]) -> OVector<f64, D>
where
    DefaultAllocator: Allocator<D>,
{
    OVector::from_column_slice_generic(d, U1, v)
}

fn to_mat<D: Dim>(d: D, m: &DMatrix<f64>) -> OMatrix<f64, D, D>
where
    DefaultAllocator: Alloc<D>,
{
    OMatrix::from_column_slice_generic(d, d, m.as_slice())
}

fn zeros<D: Dim>(d: D) -> OVector<f64, D>
where
    DefaultAllocator: Allocator<D>,
{
    OVector::zeros_generic(d, U1)
}

/// Inverse and log-determinant by LU (independent of the crate's Cholesky route).
fn inverse_logdet(m: &DMatrix<f64>) -> (DMatrix<f64>, f64) {
    let lu = m.clone().lu();
    let det = lu.determinant();
    assert!(det > 0.0);
    (lu.try_inverse().expect("invertible"), det.ln())
}

/// Sorted eigenvalues of a symmetric matrix.
fn eigenvalues<D: Dim>(m: &OMatrix<f64, D, D>) -> Vec<f64>
where
    DefaultAllocator: Alloc<D>,
{
    let n = m.nrows();
    let mut ev: Vec<f64> = DMatrix::from_column_slice(n, n, m.as_slice())
        .symmetric_eigen()
        .eigenvalues
        .iter()
        .copied()
        .collect();
    ev.sort_by(f64::total_cmp);
    ev
}

// ---------------------------------------------------------------------------------------------
// Independent AD implementations of every target (from the documented formulas).
// ---------------------------------------------------------------------------------------------

fn quad<T: DualNum<Primitive = f64>, D: Dim>(
    x: &OVector<T, D>,
    mean: &DVector<f64>,
    prec: &DMatrix<f64>,
) -> T
where
    DefaultAllocator: Allocator<D>,
{
    let n = x.len();
    let y: Vec<T> = (0..n).map(|i| x[i].clone() - mean[i]).collect();
    let mut s = T::from(0.0);
    for i in 0..n {
        for j in 0..n {
            s += y[i].clone() * y[j].clone() * prec[(i, j)];
        }
    }
    s
}

/// `U(x) = ½(x − m)ᵀΣ⁻¹(x − m)`.
struct GaussAd<D> {
    dim: D,
    mean: DVector<f64>,
    prec: DMatrix<f64>,
}

impl<D: Dim> DualFunction for GaussAd<D> {
    type Dim = D;
    fn dim(&self) -> D {
        self.dim
    }
    fn eval<T: DualNum<Primitive = f64>>(&self, x: &OVector<T, D>) -> T
    where
        DefaultAllocator: Allocator<D>,
    {
        quad(x, &self.mean, &self.prec) * 0.5
    }
}

/// `U(x) = −log Σ_k w_k N(x; μ_k, Σ_k)` with normalised weights, stabilised by the largest term.
struct MixtureAd<D> {
    dim: D,
    log_consts: Vec<f64>,
    means: Vec<DVector<f64>>,
    precs: Vec<DMatrix<f64>>,
}

impl<D: Dim> DualFunction for MixtureAd<D> {
    type Dim = D;
    fn dim(&self) -> D {
        self.dim
    }
    fn eval<T: DualNum<Primitive = f64>>(&self, x: &OVector<T, D>) -> T
    where
        DefaultAllocator: Allocator<D>,
    {
        let logs: Vec<T> = (0..self.means.len())
            .map(|k| quad(x, &self.means[k], &self.precs[k]) * -0.5 + self.log_consts[k])
            .collect();
        let m = logs
            .iter()
            .map(|l| l.re())
            .fold(f64::NEG_INFINITY, f64::max);
        let s: T = logs.into_iter().map(|l| (l - m).exp()).sum();
        -(s.ln() + m)
    }
}

/// `U = x₁²/(2a²) + (x₂ − b x₁²)²/(2c²) + Σ_{i≥3} x_i²/2`.
struct BananaAd<D> {
    dim: D,
    a: f64,
    b: f64,
    c: f64,
}

impl<D: Dim> DualFunction for BananaAd<D> {
    type Dim = D;
    fn dim(&self) -> D {
        self.dim
    }
    fn eval<T: DualNum<Primitive = f64>>(&self, x: &OVector<T, D>) -> T
    where
        DefaultAllocator: Allocator<D>,
    {
        let x0 = x[0].clone();
        let r = x[1].clone() - x0.clone() * x0.clone() * self.b;
        let mut u =
            x0.clone() * x0 / (2.0 * self.a * self.a) + r.clone() * r / (2.0 * self.c * self.c);
        for i in 2..x.len() {
            u += x[i].clone() * x[i].clone() * 0.5;
        }
        u
    }
}

/// `U = v²/(2σ²) + ½e^{−v} Σ_{i≥2} x_i² + (d − 1)v/2`.
struct FunnelAd<D> {
    dim: D,
    sigma: f64,
}

impl<D: Dim> DualFunction for FunnelAd<D> {
    type Dim = D;
    fn dim(&self) -> D {
        self.dim
    }
    fn eval<T: DualNum<Primitive = f64>>(&self, x: &OVector<T, D>) -> T
    where
        DefaultAllocator: Allocator<D>,
    {
        let v = x[0].clone();
        let mut s = T::from(0.0);
        for i in 1..x.len() {
            s += x[i].clone() * x[i].clone();
        }
        let n = (x.len() - 1) as f64;
        v.clone() * v.clone() / (2.0 * self.sigma * self.sigma)
            + (-v.clone()).exp() * s * 0.5
            + v * (0.5 * n)
    }
}

/// `U = ‖x‖²/2 − log cosh(a x₁)`.
struct DoubleWellAd<D> {
    dim: D,
    a: f64,
}

impl<D: Dim> DualFunction for DoubleWellAd<D> {
    type Dim = D;
    fn dim(&self) -> D {
        self.dim
    }
    fn eval<T: DualNum<Primitive = f64>>(&self, x: &OVector<T, D>) -> T
    where
        DefaultAllocator: Allocator<D>,
    {
        let mut s = T::from(0.0);
        for i in 0..x.len() {
            s += x[i].clone() * x[i].clone();
        }
        s * 0.5 - (x[0].clone() * self.a).cosh().ln()
    }
}

/// `U(w) = Σ_n [log(1 + e^{η_n}) − y_n η_n] + ‖w‖²/(2σ²)`, `η = Aw`.
struct LogisticAd<D> {
    dim: D,
    features: DMatrix<f64>,
    labels: Vec<f64>,
    prior_variance: f64,
}

impl<D: Dim> DualFunction for LogisticAd<D> {
    type Dim = D;
    fn dim(&self) -> D {
        self.dim
    }
    fn eval<T: DualNum<Primitive = f64>>(&self, w: &OVector<T, D>) -> T
    where
        DefaultAllocator: Allocator<D>,
    {
        let mut u = T::from(0.0);
        for i in 0..w.len() {
            u += w[i].clone() * w[i].clone() / (2.0 * self.prior_variance);
        }
        for (n, y) in self.labels.iter().enumerate() {
            let mut eta = T::from(0.0);
            for j in 0..w.len() {
                eta += w[j].clone() * self.features[(n, j)];
            }
            let softplus = if eta.re() > 0.0 {
                eta.clone() + (-eta.clone()).exp().ln_1p()
            } else {
                eta.clone().exp().ln_1p()
            };
            u += softplus - eta * *y;
        }
        u
    }
}

// ---------------------------------------------------------------------------------------------
// The three-way derivative check.
// ---------------------------------------------------------------------------------------------

/// Checks at `x`: `energy_grad`'s energy = `energy`; AD energy = analytic energy; gradient vs
/// finite differences and vs AD. Returns the worst error/tolerance ratios.
fn gradient_checks<D: Dim, P, F>(
    p: &P,
    ad: &AutoDiff<F>,
    x: &OVector<f64, D>,
) -> Result<Worst, TestCaseError>
where
    P: Potential<Dim = D>,
    F: DualFunction<Dim = D>,
    DefaultAllocator: Alloc<D>,
{
    let d = p.dim();
    let u = p.energy(x);
    let mut g = zeros(d);
    let u_g = p.energy_grad(x, &mut g);
    let mut g_ad = zeros(d);
    let u_ad = ad.energy_grad(x, &mut g_ad);
    prop_assert!(u.is_finite() && g.iter().all(|v| v.is_finite()));
    let gscale = 1.0 + u.abs() + g.amax();
    let mut worst = within(
        "energy_grad energy vs energy",
        (u_g - u).abs(),
        AD_TOL * gscale,
    )?;
    worst = worst.max(within("AD energy", (u_ad - u).abs(), AD_TOL * gscale)?);
    worst = worst.max(within(
        "gradient vs AD",
        (&g - &g_ad).amax(),
        AD_TOL * gscale,
    )?);
    let fd = check_gradient(p, x).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let worst_fd = within("gradient vs FD", fd.max_abs_error, FD_TOL * gscale)?;
    Ok(Worst {
        exact: worst,
        fd: worst_fd,
    })
}

/// [`gradient_checks`], plus the Hessian vs finite differences of the gradient and vs AD, and
/// its symmetry.
fn three_way<D: Dim, P, F>(p: &P, ad: F, x: &OVector<f64, D>) -> Result<Worst, TestCaseError>
where
    P: PotentialHessian<Dim = D>,
    F: DualFunction<Dim = D>,
    DefaultAllocator: Alloc<D>,
{
    let d = p.dim();
    let ad = AutoDiff(ad);
    let worst = gradient_checks(p, &ad, x)?;
    let mut g = zeros(d);
    p.energy_grad(x, &mut g);
    let mut h = OMatrix::zeros_generic(d, d);
    p.hessian(x, &mut h);
    let mut h_ad = OMatrix::zeros_generic(d, d);
    ad.hessian(x, &mut h_ad);
    let hscale = 1.0 + g.amax() + h.amax();
    let mut exact = within("Hessian vs AD", (&h - &h_ad).amax(), AD_TOL * hscale)?;
    exact = exact.max(within(
        "Hessian symmetric",
        (&h - h.transpose()).amax(),
        AD_TOL * hscale,
    )?);
    let fdh = check_hessian(p, x).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let fd = within("Hessian vs FD", fdh.max_abs_error, FD_TOL * hscale)?;
    Ok(worst.max(Worst { exact, fd }))
}

/// A point with coordinates from the strategy.
fn point<D: Dim>(d: D, xs: &[f64]) -> OVector<f64, D>
where
    DefaultAllocator: Allocator<D>,
{
    to_vec(d, &xs[..d.value()])
}

fn coords(d: usize, r: f64) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-r..r, d)
}

// ---- Gaussian ----

struct GaussianCase<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    target: Gaussian<D>,
    ad: GaussAd<D>,
}

/// A Gaussian with covariance spectrum in [0.2, 5] and mean ~ N(0, I).
fn gaussian_case<D: Dim>(d: D, seed: u64) -> GaussianCase<D>
where
    DefaultAllocator: Alloc<D>,
{
    let n = d.value();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mean = DVector::from_fn(n, |_, _| normal(&mut rng));
    let m = to_vec(d, mean.as_slice());
    // seed % 3: 0 = dense covariance; 1 = `Gaussian::diagonal`; 2 = a diagonal matrix given to
    // `Gaussian::new` (both diagonal routes take the crate's O(d) fast path).
    let (cov, target) = match seed % 3 {
        0 => {
            let cov = random_spd(n, 0.2, 5.0, &mut rng);
            let g = Gaussian::new(m, to_mat(d, &cov)).unwrap();
            (cov, g)
        }
        kind => {
            let v = random_spectrum(n, 0.2, 5.0, &mut rng);
            let cov = diagonal_matrix(&v);
            let g = if kind == 1 {
                Gaussian::diagonal(m, to_vec(d, &v)).unwrap()
            } else {
                Gaussian::new(m, to_mat(d, &cov)).unwrap()
            };
            (cov, g)
        }
    };
    let (prec, _) = inverse_logdet(&cov);
    GaussianCase {
        target,
        ad: GaussAd { dim: d, mean, prec },
    }
}

fn gaussian_property<D: Dim>(d: D, name: &str)
where
    DefaultAllocator: Alloc<D>,
{
    property(
        name,
        (any::<u64>(), coords(d.value(), 3.0), any::<bool>()),
        |(seed, xs, by_prec)| {
            let c = gaussian_case(d, seed);
            let x = point(d, &xs);
            let mut worst = three_way(&c.target, c.ad, &x)?;
            // The precision parametrisation gives the same potential.
            if by_prec {
                let p =
                    Gaussian::from_precision(c.target.mean().clone(), c.target.precision().clone())
                        .unwrap();
                let err = (&p.covariance().clone() - c.target.covariance()).amax();
                worst = worst.max(Worst::exact(within(
                    "from_precision covariance",
                    err,
                    1e-10 * 5.0,
                )?));
                let mut g1 = zeros(d);
                let mut g2 = zeros(d);
                let u1 = p.energy_grad(&x, &mut g1);
                let u2 = c.target.energy_grad(&x, &mut g2);
                let scale = 1.0 + u2.abs() + g2.amax();
                worst = worst.max(Worst::exact(within(
                    "from_precision energy",
                    (u1 - u2).abs(),
                    1e-10 * scale,
                )?));
            }
            Ok(worst)
        },
    );
}

#[test]
fn gaussian_derivatives_const() {
    gaussian_property(Const::<3>, "gaussian Const<3>");
}

#[test]
fn gaussian_derivatives_dyn() {
    gaussian_property(Dyn(DYN_D), "gaussian Dyn(7)");
}

// ---- mixture ----

struct MixtureCase<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    target: GaussianMixture<D>,
    ad: MixtureAd<D>,
}

/// 2–3 components, unnormalised weights in [0.2, 1], means ~ N(0, 2²I), covariance spectra in
/// [0.3, 3].
fn mixture_case<D: Dim>(d: D, seed: u64) -> MixtureCase<D>
where
    DefaultAllocator: Alloc<D>,
{
    let n = d.value();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let k = 2 + (rng.random::<u32>() % 2) as usize;
    let weights: Vec<f64> = (0..k).map(|_| 0.2 + 0.8 * rng.random::<f64>()).collect();
    let total: f64 = weights.iter().sum();
    let mut comps = Vec::new();
    let mut ad = MixtureAd {
        dim: d,
        log_consts: vec![],
        means: vec![],
        precs: vec![],
    };
    for w in &weights {
        let cov = random_spd(n, 0.3, 3.0, &mut rng);
        let mean = DVector::from_fn(n, |_, _| 2.0 * normal(&mut rng));
        let (prec, logdet) = inverse_logdet(&cov);
        comps.push(Gaussian::new(to_vec(d, mean.as_slice()), to_mat(d, &cov)).unwrap());
        ad.log_consts
            .push((w / total).ln() - 0.5 * logdet - 0.5 * n as f64 * LN_2PI);
        ad.means.push(mean);
        ad.precs.push(prec);
    }
    MixtureCase {
        target: GaussianMixture::new(&weights, comps).unwrap(),
        ad,
    }
}

fn mixture_property<D: Dim>(d: D, name: &str)
where
    DefaultAllocator: Alloc<D>,
{
    property(
        name,
        (any::<u64>(), coords(d.value(), 3.0)),
        |(seed, xs)| {
            let c = mixture_case(d, seed);
            three_way(&c.target, c.ad, &point(d, &xs))
        },
    );
}

#[test]
fn mixture_derivatives_const() {
    mixture_property(Const::<2>, "mixture Const<2>");
}

#[test]
fn mixture_derivatives_dyn() {
    mixture_property(Dyn(DYN_D), "mixture Dyn(7)");
}

// ---- banana ----

fn banana_property<D: Dim>(d: D, name: &str)
where
    DefaultAllocator: Alloc<D>,
{
    let params = (0.5..2.0f64, -2.0..2.0f64, 0.3..2.0f64);
    property(name, (params, coords(d.value(), 2.5)), |((a, b, c), xs)| {
        let target = Banana::new(d, a, b, c).unwrap();
        three_way(&target, BananaAd { dim: d, a, b, c }, &point(d, &xs))
    });
}

#[test]
fn banana_derivatives_const() {
    banana_property(Const::<2>, "banana Const<2>");
    banana_property(Const::<5>, "banana Const<5>");
}

#[test]
fn banana_derivatives_dyn() {
    banana_property(Dyn(DYN_D), "banana Dyn(7)");
}

// ---- funnel ----

fn funnel_property<D: Dim>(d: D, name: &str)
where
    DefaultAllocator: Alloc<D>,
{
    property(
        name,
        (0.5..3.0f64, coords(d.value(), 2.5)),
        |(sigma, xs)| {
            let target = Funnel::new(d, sigma).unwrap();
            three_way(&target, FunnelAd { dim: d, sigma }, &point(d, &xs))
        },
    );
}

#[test]
fn funnel_derivatives_const() {
    funnel_property(Const::<3>, "funnel Const<3>");
}

#[test]
fn funnel_derivatives_dyn() {
    funnel_property(Dyn(DYN_D), "funnel Dyn(7)");
}

// ---- double well ----

fn double_well_property<D: Dim>(d: D, name: &str)
where
    DefaultAllocator: Alloc<D>,
{
    property(name, (0.0..3.0f64, coords(d.value(), 3.0)), |(a, xs)| {
        let target = DoubleWell::new(d, a).unwrap();
        three_way(&target, DoubleWellAd { dim: d, a }, &point(d, &xs))
    });
}

#[test]
fn double_well_derivatives_const() {
    double_well_property(Const::<2>, "double well Const<2>");
}

#[test]
fn double_well_derivatives_dyn() {
    double_well_property(Dyn(DYN_D), "double well Dyn(7)");
}

// ---- logistic regression ----

struct LogisticCase<D> {
    target: LogisticRegression<D>,
    ad: LogisticAd<D>,
}

/// 5–30 observations with N(0, 1) features, labels in {0, 1}, prior variance in [0.5, 5].
fn logistic_case<D: Dim>(d: D, seed: u64) -> LogisticCase<D> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = 5 + (rng.random::<u32>() % 26) as usize;
    let features = DMatrix::from_fn(n, d.value(), |_, _| normal(&mut rng));
    let labels: Vec<f64> = (0..n)
        .map(|_| f64::from(u8::from(rng.random::<bool>())))
        .collect();
    let prior_variance = 0.5 + 4.5 * rng.random::<f64>();
    LogisticCase {
        target: LogisticRegression::new(d, &features, &labels, prior_variance).unwrap(),
        ad: LogisticAd {
            dim: d,
            features,
            labels,
            prior_variance,
        },
    }
}

fn logistic_property<D: Dim>(d: D, name: &str)
where
    DefaultAllocator: Alloc<D>,
{
    property(
        name,
        (any::<u64>(), coords(d.value(), 2.0)),
        |(seed, xs)| {
            let c = logistic_case(d, seed);
            three_way(&c.target, c.ad, &point(d, &xs))
        },
    );
}

#[test]
fn logistic_derivatives_const() {
    logistic_property(Const::<3>, "logistic Const<3>");
}

#[test]
fn logistic_derivatives_dyn() {
    logistic_property(Dyn(DYN_D), "logistic Dyn(7)");
}

// ---- eight schools and linear regression (gradient only: no Hessian is shipped) ----

/// `U = Σ_j −log N(θ_j; μ, τ) [centred] or Σ_j −log N(θ̃_j; 0, 1) [non-centred]
/// + Σ_j −log N(y_j; θ_j, σ_j) − log N(μ; 0, 5) − log halfCauchy(τ; 0, 5) − s`, `τ = e^s`.
struct EightSchoolsAd {
    y: Vec<f64>,
    sigma: Vec<f64>,
    centered: bool,
}

/// `−log N(x; m, sd)` for a dual-number `x − m` given as `r`.
fn neg_log_normal<T: DualNum<Primitive = f64>>(r: T, sd: T) -> T {
    let z = r / sd.clone();
    z.clone() * z * 0.5 + sd.ln() + 0.5 * LN_2PI
}

impl DualFunction for EightSchoolsAd {
    type Dim = Dyn;
    fn dim(&self) -> Dyn {
        Dyn(self.y.len() + 2)
    }
    fn eval<T: DualNum<Primitive = f64>>(&self, u: &OVector<T, Dyn>) -> T {
        let j = self.y.len();
        let (mu, s) = (u[j].clone(), u[j + 1].clone());
        let tau = s.clone().exp();
        let one = T::from(1.0);
        // half-Cauchy(0, 5): p(τ) = 2 / (5π (1 + (τ/5)²)).
        let mut v = neg_log_normal(mu.clone(), T::from(5.0))
            + ((tau.clone() / 5.0).powi(2) + 1.0).ln()
            - (2.0 / (5.0 * std::f64::consts::PI)).ln()
            - s;
        for k in 0..j {
            let theta = if self.centered {
                v += neg_log_normal(u[k].clone() - mu.clone(), tau.clone());
                u[k].clone()
            } else {
                v += neg_log_normal(u[k].clone(), one.clone());
                mu.clone() + tau.clone() * u[k].clone()
            };
            v += neg_log_normal(theta - self.y[k], T::from(self.sigma[k]));
        }
        v
    }
}

/// `U = Σ_n −log N(y_n; x_nᵀβ, σ) − log halfCauchy(σ; 0, c) − s`, `σ = e^s`.
struct LinearRegressionAd<D> {
    dim: D,
    x: DMatrix<f64>,
    y: Vec<f64>,
    scale: f64,
}

impl<D: Dim> DualFunction for LinearRegressionAd<D> {
    type Dim = D;
    fn dim(&self) -> D {
        self.dim
    }
    fn eval<T: DualNum<Primitive = f64>>(&self, u: &OVector<T, D>) -> T
    where
        DefaultAllocator: Allocator<D>,
    {
        let p = self.x.ncols();
        let s = u[p].clone();
        let sigma = s.clone().exp();
        let c = self.scale;
        let mut v =
            ((sigma.clone() / c).powi(2) + 1.0).ln() - (2.0 / (std::f64::consts::PI * c)).ln() - s;
        for (n, y) in self.y.iter().enumerate() {
            let mut fit = T::from(0.0);
            for k in 0..p {
                fit += u[k].clone() * self.x[(n, k)];
            }
            v += neg_log_normal(fit - *y, sigma.clone());
        }
        v
    }
}

#[test]
fn eight_schools_derivatives_dyn() {
    // J schools in 1..=10 with y ~ N(0, 10²), σ in [5, 20]; the log-scale s in [−2, 2].
    let strategy = (any::<u64>(), any::<bool>(), coords(12, 3.0), -2.0..2.0f64);
    property(
        "eight schools Dyn(J + 2)",
        strategy,
        |(seed, centered, xs, s)| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let j = 1 + (rng.random::<u32>() % 10) as usize;
            let y: Vec<f64> = (0..j).map(|_| 10.0 * normal(&mut rng)).collect();
            let sigma: Vec<f64> = (0..j).map(|_| 5.0 + 15.0 * rng.random::<f64>()).collect();
            let par = if centered {
                Parameterisation::Centered
            } else {
                Parameterisation::NonCentered
            };
            let target = EightSchools::new(&y, &sigma, par).unwrap();
            let mut u = DVector::from_column_slice(&xs[..j + 2]);
            if centered {
                u.rows_mut(0, j).scale_mut(5.0); // θ on the data's scale
            }
            u[j + 1] = s;
            gradient_checks(
                &target,
                &AutoDiff(EightSchoolsAd { y, sigma, centered }),
                &u,
            )
        },
    );
}

fn linear_regression_property<D: Dim>(d: D, name: &str)
where
    DefaultAllocator: Alloc<D>,
{
    // 5–30 observations, a column of ones and N(0, 1) covariates, y = Xβ* + N(0, 0.5²);
    // half-Cauchy scale in [0.5, 5]; log σ in [−2, 2].
    property(
        name,
        (any::<u64>(), coords(d.value(), 2.0), -2.0..2.0f64),
        |(seed, xs, s)| {
            let p = d.value() - 1;
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let n = 5 + (rng.random::<u32>() % 26) as usize;
            let x = DMatrix::from_fn(n, p, |_, k| if k == 0 { 1.0 } else { normal(&mut rng) });
            let beta: Vec<f64> = (0..p).map(|_| normal(&mut rng)).collect();
            let y: Vec<f64> = (0..n)
                .map(|i| (0..p).map(|k| x[(i, k)] * beta[k]).sum::<f64>() + 0.5 * normal(&mut rng))
                .collect();
            let scale = 0.5 + 4.5 * rng.random::<f64>();
            let target = LinearRegression::new(d, &x, &y, scale).unwrap();
            let mut u = point(d, &xs);
            u[p] = s;
            gradient_checks(
                &target,
                &AutoDiff(LinearRegressionAd {
                    dim: d,
                    x,
                    y,
                    scale,
                }),
                &u,
            )
        },
    );
}

#[test]
fn linear_regression_derivatives_const() {
    linear_regression_property(Const::<3>, "linear regression Const<3>");
}

#[test]
fn linear_regression_derivatives_dyn() {
    linear_regression_property(Dyn(DYN_D), "linear regression Dyn(7)");
}

#[test]
fn model_constructor_errors() {
    let (y, sigma) = ([28.0, 8.0, -3.0], [15.0, 10.0, 16.0]);
    let nc = Parameterisation::NonCentered;
    assert!(EightSchools::new(&y, &sigma, nc).is_ok());
    assert_eq!(
        EightSchools::new(&[], &[], nc).unwrap_err(),
        Error::Empty { name: "y" }
    );
    assert_eq!(
        EightSchools::new(&y, &sigma[..2], nc).unwrap_err(),
        Error::DimensionMismatch {
            name: "sigma",
            expected: 3,
            found: 2
        }
    );
    assert_eq!(
        EightSchools::new(&[1.0, f64::NAN, 0.0], &sigma, nc).unwrap_err(),
        Error::NonFiniteInput { name: "y" }
    );
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            EightSchools::new(&y, &[1.0, bad, 1.0], nc),
            Err(Error::InvalidParameter { name: "sigma", .. })
        ));
    }
    let post = EightSchools::new(&y, &sigma, nc).unwrap();
    assert_eq!(
        post.constrain(&[0.0; 4]).unwrap_err(),
        Error::DimensionMismatch {
            name: "u",
            expected: 5,
            found: 4
        }
    );
    // θ_j = μ + τ θ̃_j with τ = e^s.
    let c = post.constrain(&[1.0, 0.0, -1.0, 2.0, 2f64.ln()]).unwrap();
    assert_eq!(c, vec![4.0, 2.0, 0.0, 2.0, 2.0]);

    let x = DMatrix::from_row_slice(3, 2, &[1.0, 0.5, 1.0, 1.5, 1.0, 2.5]);
    let yr = [1.0, 2.0, 2.9];
    assert!(LinearRegression::new(Dyn(3), &x, &yr, 2.5).is_ok());
    assert_eq!(
        LinearRegression::new(Dyn(3), &DMatrix::zeros(0, 2), &[], 2.5).unwrap_err(),
        Error::Empty { name: "x" }
    );
    assert_eq!(
        LinearRegression::new(Const::<4>, &x, &yr, 2.5).unwrap_err(),
        Error::DimensionMismatch {
            name: "x",
            expected: 3,
            found: 2
        }
    );
    assert_eq!(
        LinearRegression::new(Dyn(3), &x, &yr[..2], 2.5).unwrap_err(),
        Error::DimensionMismatch {
            name: "y",
            expected: 3,
            found: 2
        }
    );
    let mut xn = x.clone();
    xn[(2, 1)] = f64::INFINITY;
    assert_eq!(
        LinearRegression::new(Dyn(3), &xn, &yr, 2.5).unwrap_err(),
        Error::NonFiniteInput { name: "x" }
    );
    assert_eq!(
        LinearRegression::new(Dyn(3), &x, &[1.0, f64::NAN, 0.0], 2.5).unwrap_err(),
        Error::NonFiniteInput { name: "y" }
    );
    for bad in [0.0, -1.0, f64::NAN] {
        assert!(matches!(
            LinearRegression::new(Dyn(3), &x, &yr, bad),
            Err(Error::InvalidParameter {
                name: "sigma_scale",
                ..
            })
        ));
    }
    // A design without columns (only σ unknown) is an error, not a panic in `energy`.
    assert_eq!(
        LinearRegression::new(Dyn(1), &DMatrix::zeros(3, 0), &yr, 2.5).unwrap_err(),
        Error::Empty { name: "x" }
    );
}

// ---------------------------------------------------------------------------------------------
// The checker and the counter themselves.
// ---------------------------------------------------------------------------------------------

/// A Gaussian whose gradient is off by a factor `1 + bias` and whose `energy_grad` energy is
/// shifted by `shift`: the checker must notice both.
struct Broken {
    bias: f64,
    shift: f64,
}

impl Potential for Broken {
    type Dim = Const<2>;
    fn dim(&self) -> Const<2> {
        Const
    }
    fn energy(&self, x: &SVector<f64, 2>) -> f64 {
        0.5 * x.norm_squared()
    }
    fn energy_grad(&self, x: &SVector<f64, 2>, grad: &mut SVector<f64, 2>) -> f64 {
        *grad = x * (1.0 + self.bias);
        0.5 * x.norm_squared() + self.shift
    }
}

#[test]
fn checker_detects_wrong_derivatives() {
    let x = SVector::<f64, 2>::new(1.5, -0.5);
    let ok = check_gradient(
        &Broken {
            bias: 0.0,
            shift: 0.0,
        },
        &x,
    )
    .unwrap();
    assert!(ok.max_rel_error < 1e-10, "{ok:?}");
    // A 1e-6 relative error in the gradient is 100× above the FD accuracy: detected.
    let bad = check_gradient(
        &Broken {
            bias: 1e-6,
            shift: 0.0,
        },
        &x,
    )
    .unwrap();
    assert!((bad.max_abs_error - 1.5e-6).abs() < 1e-9, "{bad:?}");
    assert!((bad.max_rel_error - 1e-6).abs() < 1e-9, "{bad:?}");
    assert_eq!(bad.worst_index, 0);
    // An energy_grad energy differing from energy is reported at index usize::MAX.
    let shifted = check_gradient(
        &Broken {
            bias: 0.0,
            shift: 1e-3,
        },
        &x,
    )
    .unwrap();
    assert_eq!(shifted.worst_index, usize::MAX);
    assert!((shifted.max_rel_error - 1e-3 / 1.25).abs() < 1e-12);
    // Bad inputs are errors, not panics.
    let g = Gaussian::standard(Dyn(3));
    assert_eq!(
        check_gradient(&g, &DVector::zeros(2)).unwrap_err(),
        Error::DimensionMismatch {
            name: "x",
            expected: 3,
            found: 2
        }
    );
    assert_eq!(
        check_gradient(&g, &DVector::from_vec(vec![0.0, f64::NAN, 0.0])).unwrap_err(),
        Error::NonFiniteInput { name: "x" }
    );
    let mut out = DVector::zeros(4);
    assert_eq!(
        finite_difference_gradient(&g, &DVector::zeros(3), &mut out).unwrap_err(),
        Error::DimensionMismatch {
            name: "out",
            expected: 3,
            found: 4
        }
    );
    assert!(check_hessian(&g, &DVector::zeros(5)).is_err());
}

#[test]
fn counted_counts_every_call() {
    let d = 4;
    let target = Counted::new(Banana::standard(Dyn(d)));
    let x = DVector::from_fn(d, |i, _| 0.3 * i as f64 - 0.2);
    assert_eq!(target.counts(), EvaluationCounts::default());
    // check_gradient: 2d energies for the differences + 1 energy + 1 energy_grad.
    check_gradient(&target, &x).unwrap();
    let after_grad = EvaluationCounts {
        energy: 2 * d as u64 + 1,
        gradient: 1,
        hessian: 0,
    };
    assert_eq!(target.counts(), after_grad);
    // check_hessian: 2d gradients for the differences + 1 Hessian.
    check_hessian(&target, &x).unwrap();
    assert_eq!(
        target.counts(),
        EvaluationCounts {
            energy: 2 * d as u64 + 1,
            gradient: 2 * d as u64 + 1,
            hessian: 1,
        }
    );
    // The wrapper is transparent.
    let mut g1 = DVector::zeros(d);
    let mut g2 = DVector::zeros(d);
    assert_eq!(
        target.energy_grad(&x, &mut g1),
        target.inner().energy_grad(&x, &mut g2)
    );
    assert_eq!(g1, g2);
    assert_eq!(target.smoothness(), target.inner().smoothness());
    // Counting is thread-safe: 2 threads × 1000 calls.
    target.reset();
    assert_eq!(target.counts(), EvaluationCounts::default());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut g = DVector::zeros(d);
                for _ in 0..1000 {
                    target.energy(&x);
                    target.energy_grad(&x, &mut g);
                }
            });
        }
    });
    assert_eq!(
        target.counts(),
        EvaluationCounts {
            energy: 2000,
            gradient: 2000,
            hessian: 0
        }
    );
    // Through a reference (the forwarding impls) the same counters move.
    let by_ref = &target;
    by_ref.energy(&x);
    assert_eq!(target.counts().energy, 2001);
}

// ---------------------------------------------------------------------------------------------
// Smoothness and strong-convexity claims.
// ---------------------------------------------------------------------------------------------

/// For a target claiming `L` (and possibly `α`): the Hessian's eigenvalues at `x` lie in
/// `[−L, L]` (and `≥ α`), to a relative 1e-10 (the eigensolver's accuracy).
fn check_claims<D: Dim, P>(p: &P, x: &OVector<f64, D>) -> Result<Worst, TestCaseError>
where
    P: PotentialHessian<Dim = D>,
    DefaultAllocator: Alloc<D>,
{
    let d = p.dim();
    let l = p
        .smoothness()
        .ok_or_else(|| TestCaseError::fail("no smoothness claim"))?;
    let mut h = OMatrix::zeros_generic(d, d);
    p.hessian(x, &mut h);
    let ev = eigenvalues(&h);
    let (lo, hi) = (ev[0], ev[ev.len() - 1]);
    let tol = 1e-10 * l;
    let mut worst = within("λ_max ≤ L", (hi - l).max(0.0), tol)?;
    worst = worst.max(within("λ_min ≥ −L", (-l - lo).max(0.0), tol)?);
    if let Some(alpha) = p.strong_convexity() {
        prop_assert!(alpha > 0.0 && alpha <= l);
        worst = worst.max(within("λ_min ≥ α", (alpha - lo).max(0.0), tol)?);
    }
    Ok(Worst::exact(worst))
}

fn claims_property<D: Dim>(d: D, name: &str)
where
    DefaultAllocator: Alloc<D>,
{
    property(
        name,
        (any::<u64>(), coords(d.value(), 4.0), 0.0..3.0f64),
        |(seed, xs, a)| {
            let x = point(d, &xs);
            // Gaussian: L = λ_max(Σ⁻¹), α = λ_min(Σ⁻¹) exactly (tight, not just bounds).
            let g = gaussian_case(d, seed).target;
            let mut worst = check_claims(&g, &x)?;
            let ev = eigenvalues(g.precision());
            let (l, alpha) = (g.smoothness().unwrap(), g.strong_convexity().unwrap());
            worst = worst.max(Worst::exact(within(
                "Gaussian L tight",
                (l - ev[ev.len() - 1]).abs(),
                1e-10 * l,
            )?));
            worst = worst.max(Worst::exact(within(
                "Gaussian α tight",
                (alpha - ev[0]).abs(),
                1e-10 * l,
            )?));
            // Logistic regression: the bound L = λ_max(AᵀA)/4 + 1/σ² is attained at w = 0.
            let lr = logistic_case(d, seed).target;
            worst = worst.max(check_claims(&lr, &x)?);
            worst = worst.max(check_claims(&lr, &zeros(d))?);
            let mut h0 = OMatrix::zeros_generic(d, d);
            lr.hessian(&zeros(d), &mut h0);
            let l = lr.smoothness().unwrap();
            let top = *eigenvalues(&h0).last().unwrap();
            worst = worst.max(Worst::exact(within(
                "logistic L tight at 0",
                (l - top).abs(),
                1e-10 * l,
            )?));
            // Double well: eigenvalues in [1 − a², 1]; L = max(1, a² − 1) attained at x₁ = 0.
            let w = DoubleWell::new(d, a).unwrap();
            worst = worst.max(check_claims(&w, &x)?);
            let mut h0 = OMatrix::zeros_generic(d, d);
            w.hessian(&zeros(d), &mut h0);
            let ev = eigenvalues(&h0);
            let l = w.smoothness().unwrap();
            let sup = ev[0].abs().max(ev[ev.len() - 1].abs());
            worst = worst.max(Worst::exact(within(
                "double-well L tight at 0",
                (l - sup).abs(),
                1e-10 * l,
            )?));
            prop_assert_eq!(w.strong_convexity().is_some(), a < 1.0);
            Ok(worst)
        },
    );
}

#[test]
fn smoothness_claims_const() {
    claims_property(Const::<3>, "claims Const<3>");
}

#[test]
fn smoothness_claims_dyn() {
    claims_property(Dyn(DYN_D), "claims Dyn(7)");
}

// ---------------------------------------------------------------------------------------------
// Exact draws vs the stated moments.
// ---------------------------------------------------------------------------------------------

/// Running means and variances of a vector of statistics (Welford).
struct Acc {
    n: f64,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

impl Acc {
    fn new(k: usize) -> Self {
        Self {
            n: 0.0,
            mean: vec![0.0; k],
            m2: vec![0.0; k],
        }
    }
    fn push(&mut self, stats: &[f64]) {
        self.n += 1.0;
        for ((m, s), x) in self.mean.iter_mut().zip(&mut self.m2).zip(stats) {
            let delta = x - *m;
            *m += delta / self.n;
            *s += delta * (x - *m);
        }
    }
    /// Asserts `|mean_i − expected_i| ≤ Z·SE_i` for every statistic; returns the largest
    /// `|z|`-score.
    fn assert_means(&self, what: &str, expected: &[f64]) -> f64 {
        let mut worst = 0.0_f64;
        for (i, (m, e)) in self.mean.iter().zip(expected).enumerate() {
            let se = (self.m2[i] / (self.n - 1.0) / self.n).sqrt();
            let z = (m - e).abs() / se;
            assert!(
                z <= Z,
                "{what}: statistic {i}: {m} vs exact {e}, {z:.2} SE (SE {se:e})"
            );
            worst = worst.max(z);
        }
        worst
    }
}

/// Draws `n` samples with `draw` and checks the mean `mu` and the covariance `cov` (statistics
/// `x_i` and `(x_i − μ_i)(x_j − μ_j)`, `j ≤ i`, whose exact expectations are `μ_i` and `Σ_ij`).
/// Returns the largest |z|-score.
fn check_moments<D: Dim>(
    what: &str,
    n: usize,
    mu: &OVector<f64, D>,
    cov: &OMatrix<f64, D, D>,
    mut draw: impl FnMut(&mut OVector<f64, D>, &mut ChaCha8Rng),
    seed: u64,
) -> f64
where
    DefaultAllocator: Alloc<D>,
{
    let d = mu.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = mu.clone();
    let mut acc = Acc::new(d + d * (d + 1) / 2);
    let mut expected: Vec<f64> = mu.iter().copied().collect();
    for i in 0..d {
        for j in 0..=i {
            expected.push(cov[(i, j)]);
        }
    }
    let mut stats = vec![0.0; expected.len()];
    for _ in 0..n {
        draw(&mut x, &mut rng);
        let mut k = d;
        for i in 0..d {
            stats[i] = x[i];
            for j in 0..=i {
                stats[k] = (x[i] - mu[i]) * (x[j] - mu[j]);
                k += 1;
            }
        }
        acc.push(&stats);
    }
    let z = acc.assert_means(what, &expected);
    println!(
        "{what}: {n} draws, largest |z| over {} moments = {z:.2}",
        expected.len()
    );
    z
}

const DRAWS: usize = 40_000;

fn sampler_moments<D: Dim>(d: D, tag: &str)
where
    DefaultAllocator: Alloc<D>,
{
    let g = gaussian_case(d, 12).target;
    check_moments(
        &format!("Gaussian {tag}"),
        DRAWS,
        g.mean(),
        g.covariance(),
        |x, r| g.sample_into(x, r),
        1,
    );
    // seed 12: dense covariance; seed 13: the diagonal fast path.
    let g2 = gaussian_case(d, 13).target;
    check_moments(
        &format!("diagonal Gaussian {tag}"),
        DRAWS,
        g2.mean(),
        g2.covariance(),
        |x, r| g2.sample_into(x, r),
        7,
    );

    let m = mixture_case(d, 12).target;
    check_moments(
        &format!("mixture {tag}"),
        DRAWS,
        &m.mean(),
        &m.covariance(),
        |x, r| m.sample_into(x, r),
        2,
    );

    let b = Banana::new(d, 1.2, 0.8, 0.5).unwrap();
    let bcov = OMatrix::from_diagonal(&b.variance());
    check_moments(
        &format!("banana {tag}"),
        DRAWS,
        &b.mean(),
        &bcov,
        |x, r| b.sample_into(x, r),
        3,
    );

    // Funnel (σ = 1): v ~ N(0, σ²); x_i | v ~ N(0, e^v), so E x_i = 0, Var x_i = E e^v =
    // e^{σ²/2}, all covariances 0.
    let sigma = 1.0;
    let f = Funnel::new(d, sigma).unwrap();
    let mut fvar = OVector::from_element_generic(d, U1, (0.5 * sigma * sigma).exp());
    fvar[0] = sigma * sigma;
    check_moments(
        &format!("funnel {tag}"),
        DRAWS,
        &zeros(d),
        &OMatrix::from_diagonal(&fvar),
        |x, r| f.sample_into(x, r),
        4,
    );

    // Double well: x₁ ~ ½N(a, 1) + ½N(−a, 1): mean 0, variance 1 + a²; the rest N(0, I).
    let a = 1.7;
    let w = DoubleWell::new(d, a).unwrap();
    let mut wvar = OVector::from_element_generic(d, U1, 1.0);
    wvar[0] = 1.0 + a * a;
    check_moments(
        &format!("double well {tag}"),
        DRAWS,
        &zeros(d),
        &OMatrix::from_diagonal(&wvar),
        |x, r| w.sample_into(x, r),
        5,
    );
}

#[test]
fn exact_draws_match_moments_const() {
    sampler_moments(Const::<3>, "Const<3>");
}

#[test]
fn exact_draws_match_moments_dyn() {
    sampler_moments(Dyn(DYN_D), "Dyn(7)");
}

/// Moments beyond the covariance that a wrong sampler with the right covariance would miss.
#[test]
fn exact_draws_higher_moments() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let mut x = SVector::<f64, 2>::zeros();
    // Double well (a = 1.7): E x₁⁴ = a⁴ + 6a² + 3 (bimodal, not Gaussian), P(x₁ > 0) = ½.
    let a = 1.7;
    let w = DoubleWell::new(Const::<2>, a).unwrap();
    let mut acc = Acc::new(2);
    for _ in 0..DRAWS {
        w.sample_into(&mut x, &mut rng);
        acc.push(&[x[0].powi(4), f64::from(u8::from(x[0] > 0.0))]);
    }
    acc.assert_means(
        "double well E x⁴, P(x₁ > 0)",
        &[a.powi(4) + 6.0 * a * a + 3.0, 0.5],
    );
    // Banana: x₂ − b x₁² ~ N(0, c²) independent of x₁: E[(x₂ − b x₁²)²] = c², E[x₁²(x₂ − b x₁²)] = 0.
    let (a, b, c) = (1.2, 0.8, 0.5);
    let ban = Banana::new(Const::<2>, a, b, c).unwrap();
    let mut acc = Acc::new(3);
    for _ in 0..DRAWS {
        ban.sample_into(&mut x, &mut rng);
        let r = x[1] - b * x[0] * x[0];
        acc.push(&[r * r, x[0] * x[0] * r, x[0].powi(4)]);
    }
    acc.assert_means("banana residual", &[c * c, 0.0, 3.0 * a.powi(4)]);
    // Funnel at Neal's σ = 3: v ~ N(0, 9) and x_i e^{−v/2} ~ N(0, 1) independent of v.
    let f = Funnel::new(Const::<3>, 3.0).unwrap();
    let mut y = SVector::<f64, 3>::zeros();
    let mut acc = Acc::new(5);
    for _ in 0..DRAWS {
        f.sample_into(&mut y, &mut rng);
        let s = (-0.5 * y[0]).exp();
        let (z1, z2) = (y[1] * s, y[2] * s);
        acc.push(&[y[0], y[0] * y[0], z1 * z1, z2 * z2, z1 * y[0]]);
    }
    acc.assert_means("funnel σ = 3", &[0.0, 9.0, 1.0, 1.0, 0.0]);
}

// ---------------------------------------------------------------------------------------------
// Gaussian closed forms.
// ---------------------------------------------------------------------------------------------

fn gaussian_closed_forms<D: Dim>(d: D, tag: &str)
where
    DefaultAllocator: Alloc<D>,
{
    let n = d.value();
    let p = gaussian_case(d, 21).target;
    let q = gaussian_case(d, 22).target;
    // Self-divergences vanish.
    assert!(p.kl(&p).unwrap().abs() < 1e-10);
    assert!(p.relative_fisher(&p).unwrap().abs() < 1e-10);
    assert!(p.w2_squared(&p).unwrap().abs() < 1e-10);
    // W2 itself is the square root: rounding of order ε·tr Σ in W2² becomes √(ε·tr Σ) ≈ 1e-7.
    let w2_self = p.w2(&p).unwrap();
    assert!(w2_self < 1e-6, "W2(p, p) = {w2_self:e}");
    println!(
        "Gaussian {tag}: KL(p‖p) = {:e}, FI(p‖p) = {:e}, W2²(p, p) = {:e}, W2(p, p) = {w2_self:e}",
        p.kl(&p).unwrap(),
        p.relative_fisher(&p).unwrap(),
        p.w2_squared(&p).unwrap()
    );
    // Normalisation: log N(m; m, Σ) = −½(d log 2π + log det Σ), log det by LU here.
    let (_, logdet) = inverse_logdet(&DMatrix::from_column_slice(n, n, p.covariance().as_slice()));
    let at_mean = p.log_density(p.mean()).unwrap();
    assert!((at_mean + 0.5 * (n as f64 * LN_2PI + logdet)).abs() < 1e-10);
    assert!((p.entropy() - 0.5 * (n as f64 * (1.0 + LN_2PI) + logdet)).abs() < 1e-10);

    // W2 for commuting covariances: ‖m₁ − m₂‖² + Σ(√λ₁ − √λ₂)² = ‖m₁ − m₂‖² + ‖√S₁ − √S₂‖²_F.
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let o = random_orthogonal(n, &mut rng);
    let (l1, l2) = (
        random_spectrum(n, 0.1, 10.0, &mut rng),
        random_spectrum(n, 0.1, 10.0, &mut rng),
    );
    let m1 = DVector::from_fn(n, |_, _| normal(&mut rng));
    let m2 = DVector::from_fn(n, |_, _| normal(&mut rng));
    let g1 = Gaussian::new(to_vec(d, m1.as_slice()), to_mat(d, &spd_from(&o, &l1))).unwrap();
    let g2 = Gaussian::new(to_vec(d, m2.as_slice()), to_mat(d, &spd_from(&o, &l2))).unwrap();
    let exact = (&m1 - &m2).norm_squared()
        + l1.iter()
            .zip(&l2)
            .map(|(a, b)| (a.sqrt() - b.sqrt()).powi(2))
            .sum::<f64>();
    let w2 = g1.w2_squared(&g2).unwrap();
    assert!(
        (w2 - exact).abs() < 1e-10 * exact.max(1.0),
        "{w2} vs {exact}"
    );
    assert!((g2.w2_squared(&g1).unwrap() - exact).abs() < 1e-10 * exact.max(1.0));
    assert!((g1.w2(&g2).unwrap() - exact.sqrt()).abs() < 1e-10);

    // KL and relative Fisher information against their defining expectations under p:
    // KL(p‖q) = E_p[log p − log q], FI(p‖q) = E_p‖∇log p − ∇log q‖² (∇log = −∇U).
    let mut acc = Acc::new(2);
    let mut x = zeros(d);
    let (mut gp, mut gq) = (zeros(d), zeros(d));
    let mut rng = ChaCha8Rng::seed_from_u64(24);
    for _ in 0..20_000 {
        p.sample_into(&mut x, &mut rng);
        let llr = p.log_density(&x).unwrap() - q.log_density(&x).unwrap();
        p.energy_grad(&x, &mut gp);
        q.energy_grad(&x, &mut gq);
        acc.push(&[llr, (&gp - &gq).norm_squared()]);
    }
    let (kl, fi) = (p.kl(&q).unwrap(), p.relative_fisher(&q).unwrap());
    let z = acc.assert_means(&format!("KL, FI {tag}"), &[kl, fi]);
    println!(
        "Gaussian {tag}: KL = {kl:.4}, FI = {fi:.4}, W2² (commuting) = {exact:.4}; MC |z| ≤ {z:.2}"
    );
}

#[test]
fn gaussian_dimension_mismatch_errors() {
    let n = 3;
    let p_dyn = gaussian_case(Dyn(n), 25).target;
    let other = Gaussian::standard(Dyn(n + 1));
    let mismatch = Error::DimensionMismatch {
        name: "other",
        expected: n,
        found: n + 1,
    };
    assert_eq!(p_dyn.kl(&other).unwrap_err(), mismatch);
    assert_eq!(p_dyn.w2_squared(&other).unwrap_err(), mismatch);
    assert_eq!(p_dyn.relative_fisher(&other).unwrap_err(), mismatch);
    assert!(matches!(
        p_dyn.log_density(&DVector::zeros(n + 1)),
        Err(Error::DimensionMismatch { name: "x", .. })
    ));
}

#[test]
fn gaussian_closed_forms_const() {
    gaussian_closed_forms(Const::<3>, "Const<3>");
}

#[test]
fn gaussian_closed_forms_dyn() {
    gaussian_closed_forms(Dyn(DYN_D), "Dyn(7)");
}

// ---------------------------------------------------------------------------------------------
// Mixture: tails and degenerate weights.
// ---------------------------------------------------------------------------------------------

#[test]
fn mixture_far_tail_is_finite() {
    property(
        "mixture tail Dyn(7)",
        (any::<u64>(), coords(DYN_D, 1.0)),
        |(seed, dir)| {
            let d = Dyn(DYN_D);
            let c = mixture_case(d, seed);
            let u = DVector::from_vec(dir);
            prop_assume!(u.norm() > 0.1);
            let x = u.normalize() * 1e3;
            let mut g = DVector::zeros(DYN_D);
            let e = c.target.energy_grad(&x, &mut g);
            prop_assert!(e.is_finite() && e > 1e4, "energy {e}");
            prop_assert!(g.iter().all(|v| v.is_finite()));
            prop_assert!(c.target.energy(&x).is_finite());
            // Still agrees with the (max-shifted) AD implementation: 1e-12 of the scale.
            let mut g_ad = DVector::zeros(DYN_D);
            let e_ad = AutoDiff(c.ad).energy_grad(&x, &mut g_ad);
            let scale = 1.0 + e.abs() + g.amax();
            let mut w = within("tail energy", (e - e_ad).abs(), AD_TOL * scale)?;
            w = w.max(within(
                "tail gradient",
                (&g - &g_ad).amax(),
                AD_TOL * scale,
            )?);
            let mut h = DMatrix::zeros(DYN_D, DYN_D);
            c.target.hessian(&x, &mut h);
            prop_assert!(h.iter().all(|v| v.is_finite()));
            Ok(Worst::exact(w))
        },
    );
}

#[test]
fn mixture_with_zero_weights() {
    let comp = |m: f64, v: f64| Gaussian::isotropic(SVector::<f64, 2>::new(m, -m), v).unwrap();
    let (a, b) = (comp(-2.0, 0.5), comp(1.5, 2.0));
    let x = SVector::<f64, 2>::new(0.3, 0.9);
    // Weight 0 on either component (first or last): the mixture is the other component,
    // U = −log N(x; μ, Σ) exactly; never NaN.
    for (weights, only) in [([0.0, 1.0], &b), ([1.0, 0.0], &a)] {
        let mix = GaussianMixture::new(&weights, vec![a.clone(), b.clone()]).unwrap();
        let exact = -only.log_density(&x).unwrap();
        let mut g = SVector::zeros();
        let e = mix.energy_grad(&x, &mut g);
        let mut g_only = SVector::zeros();
        only.energy_grad(&x, &mut g_only);
        assert!(
            (mix.energy(&x) - exact).abs() < 1e-12,
            "{weights:?}: {}",
            mix.energy(&x)
        );
        assert!((e - exact).abs() < 1e-12, "{weights:?}: {e}");
        assert!((g - g_only).amax() < 1e-12, "{weights:?}: {g}");
        let mut h = SMatrix::<f64, 2, 2>::zeros();
        mix.hessian(&x, &mut h);
        assert!((h - only.precision()).amax() < 1e-12, "{weights:?}: {h}");
        let c = check_gradient(&mix, &x).unwrap();
        assert!(c.max_rel_error < FD_TOL, "{c:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Constructor validation: the documented error, naming the parameter; never a panic.
// ---------------------------------------------------------------------------------------------

#[test]
fn gaussian_constructor_errors() {
    let m2 = SVector::<f64, 2>::zeros();
    let not_pd = SMatrix::<f64, 2, 2>::new(1.0, 2.0, 2.0, 1.0);
    let asym = SMatrix::<f64, 2, 2>::new(1.0, 0.5, 0.0, 1.0);
    let nan = SMatrix::<f64, 2, 2>::new(1.0, f64::NAN, f64::NAN, 1.0);
    let eye = SMatrix::<f64, 2, 2>::identity();
    let nan_mean = SVector::<f64, 2>::new(f64::NAN, 0.0);
    assert_eq!(
        Gaussian::new(m2, not_pd).unwrap_err(),
        Error::NotPositiveDefinite { name: "cov" }
    );
    assert_eq!(
        Gaussian::from_precision(m2, not_pd).unwrap_err(),
        Error::NotPositiveDefinite { name: "precision" }
    );
    // Semi-definite is not positive definite.
    let singular = SMatrix::<f64, 2, 2>::new(1.0, 1.0, 1.0, 1.0);
    assert_eq!(
        Gaussian::new(m2, singular).unwrap_err(),
        Error::NotPositiveDefinite { name: "cov" }
    );
    assert!(
        matches!(Gaussian::new(m2, asym), Err(Error::NotSymmetric { name: "cov", asymmetry }) if asymmetry == 0.5)
    );
    assert!(matches!(
        Gaussian::from_precision(m2, asym),
        Err(Error::NotSymmetric {
            name: "precision",
            ..
        })
    ));
    // Asymmetry below the relative 1e-10 tolerance is accepted (and symmetrised).
    let tiny = SMatrix::<f64, 2, 2>::new(1.0, 0.5, 0.5 + 1e-13, 1.0);
    let g = Gaussian::new(m2, tiny).unwrap();
    assert_eq!(g.covariance()[(0, 1)], g.covariance()[(1, 0)]);
    assert_eq!(
        Gaussian::new(m2, nan).unwrap_err(),
        Error::NonFiniteInput { name: "cov" }
    );
    assert_eq!(
        Gaussian::from_precision(m2, nan).unwrap_err(),
        Error::NonFiniteInput { name: "precision" }
    );
    let inf = SMatrix::<f64, 2, 2>::new(f64::INFINITY, 0.0, 0.0, 1.0);
    assert_eq!(
        Gaussian::new(m2, inf).unwrap_err(),
        Error::NonFiniteInput { name: "cov" }
    );
    assert_eq!(
        Gaussian::new(nan_mean, eye).unwrap_err(),
        Error::NonFiniteInput { name: "mean" }
    );
    assert_eq!(
        Gaussian::from_precision(nan_mean, eye).unwrap_err(),
        Error::NonFiniteInput { name: "mean" }
    );
    assert_eq!(
        Gaussian::isotropic(nan_mean, 1.0).unwrap_err(),
        Error::NonFiniteInput { name: "mean" }
    );
    for v in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            Gaussian::isotropic(m2, v),
            Err(Error::InvalidParameter {
                name: "variance",
                ..
            })
        ));
        assert!(matches!(
            Gaussian::diagonal(m2, SVector::<f64, 2>::new(1.0, v)),
            Err(Error::InvalidParameter {
                name: "variances",
                ..
            })
        ));
    }
    // Wrong sizes (only possible with Dyn); the error reports the wrong side.
    let dm = DVector::<f64>::zeros(3);
    assert_eq!(
        Gaussian::new(dm.clone(), DMatrix::identity(2, 2)).unwrap_err(),
        Error::DimensionMismatch {
            name: "cov",
            expected: 3,
            found: 2
        }
    );
    assert_eq!(
        Gaussian::new(dm.clone(), DMatrix::identity(3, 4)).unwrap_err(),
        Error::DimensionMismatch {
            name: "cov",
            expected: 3,
            found: 4
        }
    );
    assert_eq!(
        Gaussian::from_precision(dm.clone(), DMatrix::identity(4, 3)).unwrap_err(),
        Error::DimensionMismatch {
            name: "precision",
            expected: 3,
            found: 4
        }
    );
    assert_eq!(
        Gaussian::diagonal(dm.clone(), DVector::from_element(2, 1.0)).unwrap_err(),
        Error::DimensionMismatch {
            name: "variances",
            expected: 3,
            found: 2
        }
    );
    // d = 0 is an error, not a panic.
    let empty = Error::DimensionMismatch {
        name: "mean",
        expected: 1,
        found: 0,
    };
    assert_eq!(
        Gaussian::new(DVector::zeros(0), DMatrix::zeros(0, 0)).unwrap_err(),
        empty
    );
    assert_eq!(
        Gaussian::from_precision(DVector::zeros(0), DMatrix::zeros(0, 0)).unwrap_err(),
        empty
    );
    assert_eq!(
        Gaussian::isotropic(DVector::zeros(0), 1.0).unwrap_err(),
        empty
    );
    assert_eq!(
        Gaussian::diagonal(DVector::zeros(0), DVector::zeros(0)).unwrap_err(),
        empty
    );
}

#[test]
fn mixture_constructor_errors() {
    let c2 = || Gaussian::standard(Dyn(2));
    assert_eq!(
        GaussianMixture::<Dyn>::new(&[], vec![]).unwrap_err(),
        Error::Empty { name: "components" }
    );
    assert_eq!(
        GaussianMixture::new(&[1.0], vec![c2(), c2()]).unwrap_err(),
        Error::DimensionMismatch {
            name: "weights",
            expected: 2,
            found: 1
        }
    );
    assert_eq!(
        GaussianMixture::new(&[1.0, 1.0], vec![c2(), Gaussian::standard(Dyn(3))]).unwrap_err(),
        Error::DimensionMismatch {
            name: "components",
            expected: 2,
            found: 3
        }
    );
    for bad in [-0.1, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            GaussianMixture::new(&[1.0, bad], vec![c2(), c2()]),
            Err(Error::InvalidParameter {
                name: "weights",
                ..
            })
        ));
    }
    assert!(matches!(
        GaussianMixture::new(&[0.0, 0.0], vec![c2(), c2()]),
        Err(Error::InvalidParameter { name: "weights", value, .. }) if value == 0.0
    ));
    // Finite weights whose sum overflows.
    assert!(matches!(
        GaussianMixture::new(&[f64::MAX, f64::MAX], vec![c2(), c2()]),
        Err(Error::InvalidParameter {
            name: "weights",
            ..
        })
    ));
    // Unnormalised weights are normalised.
    let m = GaussianMixture::new(&[1.0, 3.0], vec![c2(), c2()]).unwrap();
    assert_eq!(m.weights(), &[0.25, 0.75]);
}

#[test]
fn banana_funnel_double_well_constructor_errors() {
    let dim = |found| Error::DimensionMismatch {
        name: "dim",
        expected: 2,
        found,
    };
    assert_eq!(Banana::new(Const::<1>, 1.0, 1.0, 1.0).unwrap_err(), dim(1));
    assert_eq!(Banana::new(Dyn(0), 1.0, 1.0, 1.0).unwrap_err(), dim(0));
    assert_eq!(Funnel::new(Const::<1>, 3.0).unwrap_err(), dim(1));
    assert_eq!(Funnel::new(Dyn(1), 3.0).unwrap_err(), dim(1));
    assert_eq!(
        DoubleWell::new(Dyn(0), 1.0).unwrap_err(),
        Error::DimensionMismatch {
            name: "dim",
            expected: 1,
            found: 0
        }
    );
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            Banana::new(Const::<2>, bad, 1.0, 1.0),
            Err(Error::InvalidParameter { name: "a", .. })
        ));
        assert!(matches!(
            Banana::new(Const::<2>, 1.0, 1.0, bad),
            Err(Error::InvalidParameter { name: "c", .. })
        ));
        assert!(matches!(
            Funnel::new(Const::<2>, bad),
            Err(Error::InvalidParameter { name: "sigma", .. })
        ));
    }
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(matches!(
            Banana::new(Const::<2>, 1.0, bad, 1.0),
            Err(Error::InvalidParameter { name: "b", .. })
        ));
    }
    for bad in [-0.5, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            DoubleWell::new(Const::<2>, bad),
            Err(Error::InvalidParameter { name: "a", .. })
        ));
    }
    // The boundary values are valid: b = 0 (a Gaussian), a = 0 (a Gaussian).
    assert!(Banana::new(Const::<2>, 1.0, 0.0, 1.0).is_ok());
    assert!(DoubleWell::new(Const::<1>, 0.0).is_ok());
}

#[test]
fn logistic_constructor_errors() {
    let x = DMatrix::from_row_slice(3, 2, &[1.0, 0.5, -1.0, 0.2, 0.3, -0.7]);
    let y = [1.0, 0.0, 1.0];
    assert!(LogisticRegression::new(Dyn(2), &x, &y, 1.0).is_ok());
    assert_eq!(
        LogisticRegression::new(Dyn(2), &DMatrix::zeros(0, 2), &[], 1.0).unwrap_err(),
        Error::Empty { name: "features" }
    );
    assert_eq!(
        LogisticRegression::new(Const::<3>, &x, &y, 1.0).unwrap_err(),
        Error::DimensionMismatch {
            name: "features",
            expected: 3,
            found: 2
        }
    );
    assert_eq!(
        LogisticRegression::new(Dyn(2), &x, &y[..2], 1.0).unwrap_err(),
        Error::DimensionMismatch {
            name: "labels",
            expected: 3,
            found: 2
        }
    );
    let mut xn = x.clone();
    xn[(1, 1)] = f64::NAN;
    assert_eq!(
        LogisticRegression::new(Dyn(2), &xn, &y, 1.0).unwrap_err(),
        Error::NonFiniteInput { name: "features" }
    );
    for bad in [2.0, -0.1, f64::NAN] {
        assert!(matches!(
            LogisticRegression::new(Dyn(2), &x, &[1.0, bad, 0.0], 1.0),
            Err(Error::InvalidParameter { name: "labels", .. })
        ));
    }
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            LogisticRegression::new(Dyn(2), &x, &y, bad),
            Err(Error::InvalidParameter {
                name: "prior_variance",
                ..
            })
        ));
    }
    // d = 0 is an error (an empty parameter vector would make every evaluation panic).
    assert_eq!(
        LogisticRegression::new(Dyn(0), &DMatrix::zeros(3, 0), &y, 1.0).unwrap_err(),
        Error::DimensionMismatch {
            name: "dim",
            expected: 1,
            found: 0
        }
    );
}

// ---------------------------------------------------------------------------------------------
// d = 1000 on a normal test thread (heap storage; no D×D stack matrix anywhere).
// ---------------------------------------------------------------------------------------------

/// `(U(x + tv) − U(x − tv))/(2t)` vs `∇U·v`: a gradient check in O(1) energy evaluations.
fn directional_error<P: Potential<Dim = Dyn>>(
    p: &P,
    x: &DVector<f64>,
    v: &DVector<f64>,
) -> (f64, f64) {
    let t = 1e-5;
    let mut g = DVector::zeros(x.len());
    let u = p.energy_grad(x, &mut g);
    let fd = (p.energy(&(x + v * t)) - p.energy(&(x - v * t))) / (2.0 * t);
    ((fd - g.dot(v)).abs(), 1.0 + u.abs() + g.dot(v).abs())
}

#[test]
fn dimension_1000() {
    let d = 1000;
    let mut rng = ChaCha8Rng::seed_from_u64(1000);
    let x = DVector::from_fn(d, |_, _| normal(&mut rng));
    let v = DVector::from_fn(d, |_, _| normal(&mut rng)).normalize();
    let m = DVector::from_fn(d, |_, _| normal(&mut rng));

    // Dense Gaussian given by a tridiagonal precision P = tridiag(−0.4, 1, −0.4) (spectrum in
    // (0.2, 1.8)): ∇U = P(x − m), computed here in O(d).
    let prec = DMatrix::from_fn(d, d, |i, j| match i.abs_diff(j) {
        0 => 1.0,
        1 => -0.4,
        _ => 0.0,
    });
    let g = Gaussian::from_precision(m.clone(), prec).unwrap();
    let y = &x - &m;
    let exact = DVector::from_fn(d, |i, _| {
        y[i] - 0.4 * (if i > 0 { y[i - 1] } else { 0.0 } + if i + 1 < d { y[i + 1] } else { 0.0 })
    });
    let mut grad = DVector::zeros(d);
    let u = g.energy_grad(&x, &mut grad);
    assert!(
        (&grad - &exact).amax() < 1e-10,
        "Gaussian d = 1000 gradient"
    );
    assert!((u - 0.5 * y.dot(&exact)).abs() < 1e-9 * u.abs());
    let (err, scale) = directional_error(&g, &x, &v);
    assert!(
        err < FD_TOL * scale,
        "Gaussian d = 1000 directional derivative {err:e}"
    );
    let (lo, hi) = (g.strong_convexity().unwrap(), g.smoothness().unwrap());
    assert!(lo > 0.2 && hi < 1.8 && hi > 1.79, "{lo} {hi}");
    // The isotropic route (no O(d³) work) gives the same numbers as its definition.
    let iso = Gaussian::isotropic(m.clone(), 2.0).unwrap();
    let u = iso.energy_grad(&x, &mut grad);
    assert!((&grad - &y / 2.0).amax() < 1e-14 && (u - y.norm_squared() / 4.0).abs() < 1e-10);
    assert_eq!(
        (iso.smoothness(), iso.strong_convexity()),
        (Some(0.5), Some(0.5))
    );

    // Logistic regression, 200 observations: against the formula evaluated here.
    let n = 200;
    let a = DMatrix::from_fn(n, d, |_, _| normal(&mut rng) / (d as f64).sqrt());
    let labels: Vec<f64> = (0..n).map(|i| (i % 2) as f64).collect();
    let lr = LogisticRegression::new(Dyn(d), &a, &labels, 2.0).unwrap();
    let eta = &a * &x;
    let resid = DVector::from_fn(n, |i, _| 1.0 / (1.0 + (-eta[i]).exp()) - labels[i]);
    let exact = a.transpose() * resid + &x / 2.0;
    let u_exact: f64 = (0..n)
        .map(|i| (1.0 + eta[i].exp()).ln() - labels[i] * eta[i])
        .sum::<f64>()
        + x.norm_squared() / 4.0;
    let u = lr.energy_grad(&x, &mut grad);
    assert!(
        (&grad - &exact).amax() < 1e-12 * (1.0 + exact.amax()),
        "logistic d = 1000 gradient"
    );
    assert!((u - u_exact).abs() < 1e-12 * u_exact.abs());
    let (err, scale) = directional_error(&lr, &x, &v);
    assert!(
        err < FD_TOL * scale,
        "logistic d = 1000 directional derivative {err:e}"
    );
}
