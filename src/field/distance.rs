//! Distances between the finite-width field and its Gaussian limit.
//!
//! What each function measures, and what it does not:
//!
//! * [`one_point_w1`] — the **exact** W₁ between the law of `F(x)` at one point and its
//!   limit `N(0, K(x, x))`, up to Monte Carlo error in the hidden layers only: given the
//!   hidden layers, `F(x)` is exactly `N(0, S)`, so its CDF is the mixture `E Φ(t/√S)`
//!   (Rao–Blackwellised), and W₁ is `∫|E Φ(t/√S) − Φ(t/√K)| dt`, integrated exactly.
//! * [`w1_empirical_normal`], [`w1_scale_mixture_normal`] — the exact one-dimensional W₁
//!   against a Gaussian CDF, for an empirical measure and for a scale mixture of centred
//!   normals.
//! * [`sliced_w1_to_gaussian`], [`sliced_w1`] — the **sliced** W₁ on a finite point set:
//!   the average over random directions `θ` of the 1-D W₁ of the projections. It is a lower
//!   bound on the Euclidean W₁ of the finite-dimensional distributions, and carries a
//!   Monte Carlo floor `∝ 1/√M` from the `M` samples.
//! * [`sup_norm_proxy`] — `E maxᵢ|F(xᵢ) − G(xᵢ)|` under one explicit coupling of the
//!   network with its limit on a grid. A coupling gives an **upper bound** on the grid W₁ in
//!   the sup-norm; it is a proxy, not the distance (the field-level sup-norm W₁ of the
//!   paper is not computable).

use crate::diagnostics::{normal_cdf, normal_quantile};
use nalgebra::{DMatrix, DVector};
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;

use crate::error::{Error, Result, finite_input};
use crate::linalg::sym_sqrt;

use super::limit::kernel_matrix;
use super::network::{NetworkSpec, NetworkWorkspace};
use super::nngp::check_variance;

const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// A Monte Carlo estimate and its standard error.
///
/// # Example
///
/// ```
/// use klflow::field::{Estimate, sliced_w1};
/// use nalgebra::DMatrix;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// // in one dimension every direction gives the same value, so the standard error is zero
/// let a = DMatrix::from_column_slice(1, 3, &[0.0, 1.0, 2.0]);
/// let w: Estimate = sliced_w1(&a, &a.add_scalar(-1.5), 8, &mut ChaCha8Rng::seed_from_u64(0))?;
/// assert!((w.value - 1.5).abs() < 1e-12 && w.se < 1e-12);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Estimate {
    /// The estimate (a sample mean).
    pub value: f64,
    /// Its standard error (sample standard deviation over √(number of draws)).
    pub se: f64,
}

impl Estimate {
    fn from_samples(xs: impl Iterator<Item = f64>) -> Self {
        let (mut n, mut mean, mut m2) = (0.0, 0.0, 0.0);
        for x in xs {
            n += 1.0;
            let d = x - mean;
            mean += d / n;
            m2 += d * (x - mean);
        }
        let se = if n > 1.0 {
            (m2 / (n - 1.0) / n).sqrt()
        } else {
            f64::NAN
        };
        Self { value: mean, se }
    }
}

/// `∫Φ((t−μ)/σ)dt = (t−μ)Φ(z) + σφ(z)`, `z = (t−μ)/σ`.
fn cdf_antiderivative(t: f64, mu: f64, sd: f64) -> f64 {
    let z = (t - mu) / sd;
    (t - mu) * normal_cdf(z) + sd * FRAC_1_SQRT_2PI * (-0.5 * z * z).exp()
}

/// The exact `W₁(μ_n, N(mean, sd²)) = ∫|F_n(t) − Φ((t − mean)/sd)| dt` between the empirical
/// measure of `samples` and a normal law. Sorts `samples` in place; O(n log n).
///
/// On each gap between order statistics `F_n` is constant, and `∫|q − Φ|` has a closed form
/// through the antiderivative of `Φ`, split at the crossing `mean + sd·Φ⁻¹(q)`.
///
/// # Errors
///
/// [`Error::Empty`] for no samples; [`Error::NonFiniteInput`] for non-finite samples;
/// [`Error::InvalidParameter`] unless `sd > 0` and `mean` is finite.
///
/// # Example
///
/// ```
/// use klflow::field::w1_empirical_normal;
///
/// // One atom at 0 against N(0, 1): W₁ = E|Z| = √(2/π).
/// let w = w1_empirical_normal(&mut [0.0], 0.0, 1.0)?;
/// assert!((w - (2.0 / std::f64::consts::PI).sqrt()).abs() < 1e-15);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn w1_empirical_normal(samples: &mut [f64], mean: f64, sd: f64) -> Result<f64> {
    if samples.is_empty() {
        return Err(Error::Empty { name: "samples" });
    }
    finite_input("samples", samples)?;
    finite_input("mean", &[mean])?;
    check_variance("sd", sd, true)?;
    samples.sort_unstable_by(f64::total_cmp);
    let n = samples.len();
    let a = |t: f64| cdf_antiderivative(t, mean, sd);
    // Left tail (F_n = 0) and right tail (F_n = 1).
    let mut w = a(samples[0]) + (mean - samples[n - 1] + a(samples[n - 1]));
    for i in 1..n {
        let (l, r) = (samples[i - 1], samples[i]);
        if r > l {
            let q = i as f64 / n as f64;
            let cross = mean + sd * normal_quantile(q);
            // ∫_l^r (Φ − q) = A(r) − A(l) − q(r − l).
            let up = |l: f64, r: f64| a(r) - a(l) - q * (r - l);
            w += if cross <= l {
                up(l, r)
            } else if cross >= r {
                -up(l, r)
            } else {
                -up(l, cross) + up(cross, r)
            };
        }
    }
    Ok(w)
}

/// The exact `W₁` between the scale mixture `E_S N(0, S)` (the `variances` `S_i` weighted
/// equally) and `N(0, var)`: `2∫₀^∞|mean_i Φ(t/√S_i) − Φ(t/√var)| dt`.
///
/// Integrated exactly through the antiderivative `tΦ(t/s) + sφ(t/s)` of each CDF: the range
/// `[0, 12·max(√var, √max S)]` is cut into 48 cells, the sign of the integrand is checked at
/// the cell ends, and every sign change is located by the Illinois method (to 1e-12
/// relative) and split there. Only a pair of sign changes inside one cell (closer than
/// a quarter of the largest standard deviation) could be missed. The tail beyond the range
/// is below 1e-30. Cost: about 120 CDF and density evaluations per variance.
///
/// # Errors
///
/// [`Error::Empty`] for no variances; [`Error::InvalidParameter`] for a negative or
/// non-finite `S_i` or a non-positive `var`.
///
/// # Example
///
/// ```
/// use klflow::field::w1_scale_mixture_normal;
///
/// // N(0, 4) against N(0, 1): W₁ = (2 − 1)·E|Z| = √(2/π).
/// let w = w1_scale_mixture_normal(&[4.0], 1.0)?;
/// assert!((w - (2.0 / std::f64::consts::PI).sqrt()).abs() < 1e-13);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn w1_scale_mixture_normal(variances: &[f64], var: f64) -> Result<f64> {
    if variances.is_empty() {
        return Err(Error::Empty { name: "variances" });
    }
    for &s in variances {
        check_variance("variances", s, false)?;
    }
    let sd = check_variance("var", var, true)?.sqrt();
    let sds: Vec<f64> = variances.iter().map(|v| v.sqrt()).collect();
    let m = sds.len() as f64;
    let s_max = sds.iter().copied().fold(sd, f64::max);
    // G(t) = F_mix(t) − Φ(t/sd) and its antiderivative H, for t > 0.
    let g = |t: f64| {
        let f: f64 = sds
            .iter()
            .map(|&s| if s > 0.0 { normal_cdf(t / s) } else { 1.0 })
            .sum();
        f / m - normal_cdf(t / sd)
    };
    let h = |t: f64| {
        let f: f64 = sds
            .iter()
            .map(|&s| {
                if s > 0.0 {
                    cdf_antiderivative(t, 0.0, s)
                } else {
                    t
                }
            })
            .sum();
        f / m - cdf_antiderivative(t, 0.0, sd)
    };
    const CELLS: usize = 48;
    let top = 12.0 * s_max;
    let step = top / CELLS as f64;
    let (mut t0, mut g0, mut h0) = (0.0, 0.0, h(0.0));
    let mut w = 0.0;
    for k in 1..=CELLS {
        let t1 = k as f64 * step;
        let (g1, h1) = (g(t1), h(t1));
        if g0 * g1 < 0.0 {
            let root = illinois(&g, (t0, g0), (t1, g1), 1e-12 * top);
            let hr = h(root);
            w += (hr - h0).abs() + (h1 - hr).abs();
        } else {
            w += (h1 - h0).abs();
        }
        (t0, g0, h0) = (t1, g1, h1);
    }
    Ok(2.0 * w)
}

/// A root of `g` in the bracket `[lo, hi]` (`g(lo)g(hi) < 0`) by the Illinois variant of
/// regula falsi, to an absolute tolerance `tol` in `t`.
fn illinois(g: &dyn Fn(f64) -> f64, lo: (f64, f64), hi: (f64, f64), tol: f64) -> f64 {
    let ((mut a, mut ga), (mut b, mut gb)) = (lo, hi);
    let mut side = 0;
    for _ in 0..100 {
        let c = (a * gb - b * ga) / (gb - ga);
        let gc = g(c);
        if gc == 0.0 || (b - a).abs() < tol {
            return c;
        }
        if gc * gb < 0.0 {
            (a, ga) = (b, gb);
            side = 0;
        } else {
            if side == 1 {
                ga *= 0.5;
            }
            side = 1;
        }
        (b, gb) = (c, gc);
    }
    0.5 * (a + b)
}

/// The result of [`one_point_w1`].
///
/// # Example
///
/// ```
/// use klflow::Kernel;
/// use klflow::field::{Activation, NetworkSpec, one_point_w1};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let spec = NetworkSpec::new(2, &[16], 1, Activation::Erf)?;
/// let x = [0.6, -0.8];
/// let r = one_point_w1(&spec, &x, 2_000, &mut ChaCha8Rng::seed_from_u64(9))?;
/// assert_eq!(r.limit_variance, spec.nngp().value(&x, &x));
/// // one hidden layer: E S = K(x, x) exactly
/// assert!((r.mean_variance - r.limit_variance).abs() < 5.0 * r.se_variance);
/// assert!(r.w1 > 0.0 && r.w1 < 0.1);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct OnePointW1 {
    /// `W₁(law of F(x), N(0, K(x, x)))` for one output coordinate.
    pub w1: f64,
    /// The Monte Carlo mean of the conditional variance `S` (its expectation is `K(x, x)`
    /// exactly for one hidden layer, and `K(x, x) + O(1/n)` for deeper networks).
    pub mean_variance: f64,
    /// The standard error of `mean_variance`.
    pub se_variance: f64,
    /// The limit variance `K(x, x)`.
    pub limit_variance: f64,
}

/// The one-point W₁ between a network output `F(x)` (one coordinate) and its Gaussian limit,
/// from `draws` draws of the hidden layers.
///
/// Weights are Gaussian. Given layer `ℓ`, the pre-activations of layer `ℓ + 1` at the single
/// point `x` are i.i.d. `N(0, S_ℓ)` with `S_ℓ = σ_b² + (σ_w²/n_ℓ)Σⱼσ(z_j^ℓ)²` (and
/// `S_0 = σ_b² + σ_w0²‖x‖²`), so each draw samples `n₁ + … + n_L` normals, not the weight
/// matrices. The output is then exactly `N(0, S_L)` and the W₁ of the mixture is computed by
/// [`w1_scale_mixture_normal`]. The remaining error is the Monte Carlo error of the mixing
/// law (bias of order `1/√draws` times the spread of `S`).
///
/// # Errors
///
/// [`Error::DimensionMismatch`] if `x` has the wrong length; [`Error::InvalidParameter`] if
/// `draws < 2`; [`Error::NonFiniteInput`] for non-finite `x`.
///
/// # Example
///
/// ```
/// use klflow::field::{Activation, NetworkSpec, one_point_w1};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let spec = NetworkSpec::new(3, &[64], 1, Activation::Relu)?;
/// let r = one_point_w1(&spec, &[0.0, 0.0, 1.0], 20_000, &mut ChaCha8Rng::seed_from_u64(1))?;
/// assert!(r.w1 > 0.005 && r.w1 < 0.02); // ≈ 1.02e-2 exactly
/// assert!((r.mean_variance - 0.5).abs() < 5.0 * r.se_variance);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn one_point_w1<R: Rng + ?Sized>(
    spec: &NetworkSpec,
    x: &[f64],
    draws: usize,
    rng: &mut R,
) -> Result<OnePointW1> {
    if x.len() != spec.input_dim() {
        return Err(Error::DimensionMismatch {
            name: "x",
            expected: spec.input_dim(),
            found: x.len(),
        });
    }
    finite_input("x", x)?;
    if draws < 2 {
        return Err(Error::InvalidParameter {
            name: "draws",
            value: draws as f64,
            reason: "must be >= 2",
        });
    }
    let (s0, s, sb) = spec.variances();
    let act = spec.activation();
    let xx: f64 = x.iter().map(|v| v * v).sum();
    let first = sb + s0 * xx;
    let mut z = vec![0.0; spec.widths().iter().copied().max().unwrap_or(1)];
    let mut variances = Vec::with_capacity(draws);
    for _ in 0..draws {
        let mut var = first;
        for &n in spec.widths() {
            let sd = var.sqrt();
            let buf = &mut z[..n];
            for v in buf.iter_mut() {
                *v = sd * rng.sample::<f64, _>(StandardNormal);
            }
            act.apply(buf);
            var = sb + s / n as f64 * buf.iter().map(|v| v * v).sum::<f64>();
        }
        variances.push(var);
    }
    let limit_variance = crate::Kernel::value(&spec.nngp(), x, x);
    let est = Estimate::from_samples(variances.iter().copied());
    Ok(OnePointW1 {
        w1: w1_scale_mixture_normal(&variances, limit_variance)?,
        mean_variance: est.value,
        se_variance: est.se,
        limit_variance,
    })
}

/// The sliced W₁ between draws of a random vector and the centred Gaussian `N(0, cov)`:
/// the mean over `directions` uniform random directions `θ` of
/// `W₁(empirical law of θᵀsamples, N(0, θᵀcovθ))`, each computed exactly by
/// [`w1_empirical_normal`]. `samples` holds one draw per column (`P × M`).
///
/// The returned standard error covers the random directions only. Even exact Gaussian
/// samples give a positive value (the `O(1/√M)` empirical floor): compare with the same
/// statistic on `M` draws of the limit.
///
/// # Errors
///
/// [`Error::Empty`] for no samples or `directions == 0`; [`Error::DimensionMismatch`] if
/// `cov` is not `P × P`; as [`w1_empirical_normal`].
///
/// # Example
///
/// ```
/// use klflow::field::sliced_w1_to_gaussian;
/// use nalgebra::DMatrix;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
/// use rand_distr::{Distribution, StandardNormal};
///
/// let mut rng = ChaCha8Rng::seed_from_u64(5);
/// let exact = DMatrix::from_fn(3, 4000, |_, _| StandardNormal.sample(&mut rng));
/// let shifted = exact.add_scalar(0.5);
/// let cov = DMatrix::identity(3, 3);
/// let a = sliced_w1_to_gaussian(&exact, &cov, 50, &mut rng)?;
/// let b = sliced_w1_to_gaussian(&shifted, &cov, 50, &mut rng)?;
/// assert!(a.value < 0.05 && b.value > 0.2);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn sliced_w1_to_gaussian<R: Rng + ?Sized>(
    samples: &DMatrix<f64>,
    cov: &DMatrix<f64>,
    directions: usize,
    rng: &mut R,
) -> Result<Estimate> {
    let (p, m) = samples.shape();
    if m == 0 || p == 0 {
        return Err(Error::Empty { name: "samples" });
    }
    if directions == 0 {
        return Err(Error::Empty { name: "directions" });
    }
    if cov.shape() != (p, p) {
        return Err(Error::DimensionMismatch {
            name: "cov",
            expected: p,
            found: cov.nrows(),
        });
    }
    let mut theta = DVector::zeros(p);
    let mut proj = DVector::zeros(m);
    let mut ktheta = DVector::zeros(p);
    let mut values = Vec::with_capacity(directions);
    for _ in 0..directions {
        random_direction(&mut theta, rng);
        proj.gemv_tr(1.0, samples, &theta, 0.0);
        ktheta.gemv(1.0, cov, &theta, 0.0);
        let var = theta.dot(&ktheta);
        values.push(w1_empirical_normal(
            proj.as_mut_slice(),
            0.0,
            var.max(0.0).sqrt(),
        )?);
    }
    Ok(Estimate::from_samples(values.into_iter()))
}

/// The sliced W₁ between two sets of draws (one draw per column, `P × M_a` and `P × M_b`):
/// the mean over random directions of the exact 1-D W₁ between the projected empirical
/// measures.
///
/// # Errors
///
/// [`Error::Empty`] for no samples or `directions == 0`; [`Error::DimensionMismatch`] if
/// the row counts differ; [`Error::NonFiniteInput`] for non-finite samples.
///
/// # Example
///
/// ```
/// use klflow::field::sliced_w1;
/// use nalgebra::DMatrix;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let a = DMatrix::from_column_slice(1, 2, &[0.0, 1.0]);
/// let b = a.add_scalar(3.0);
/// // In one dimension every direction is ±1 and W₁ of a shift is the shift.
/// let w = sliced_w1(&a, &b, 4, &mut ChaCha8Rng::seed_from_u64(0))?;
/// assert!((w.value - 3.0).abs() < 1e-12);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn sliced_w1<R: Rng + ?Sized>(
    a: &DMatrix<f64>,
    b: &DMatrix<f64>,
    directions: usize,
    rng: &mut R,
) -> Result<Estimate> {
    if a.is_empty() || b.is_empty() {
        return Err(Error::Empty { name: "samples" });
    }
    if directions == 0 {
        return Err(Error::Empty { name: "directions" });
    }
    if a.nrows() != b.nrows() {
        return Err(Error::DimensionMismatch {
            name: "b",
            expected: a.nrows(),
            found: b.nrows(),
        });
    }
    finite_input("a", a.as_slice())?;
    finite_input("b", b.as_slice())?;
    let mut theta = DVector::zeros(a.nrows());
    let mut pa = DVector::zeros(a.ncols());
    let mut pb = DVector::zeros(b.ncols());
    let mut values = Vec::with_capacity(directions);
    for _ in 0..directions {
        random_direction(&mut theta, rng);
        pa.gemv_tr(1.0, a, &theta, 0.0);
        pb.gemv_tr(1.0, b, &theta, 0.0);
        values.push(w1_two_sample(pa.as_mut_slice(), pb.as_mut_slice()));
    }
    Ok(Estimate::from_samples(values.into_iter()))
}

/// Exact 1-D W₁ between two empirical measures: `∫|F_a − F_b|` by merging the sorted samples.
fn w1_two_sample(a: &mut [f64], b: &mut [f64]) -> f64 {
    a.sort_unstable_by(f64::total_cmp);
    b.sort_unstable_by(f64::total_cmp);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0, 0);
    let mut prev = a[0].min(b[0]);
    let mut w = 0.0;
    while i < a.len() || j < b.len() {
        let take_a = j == b.len() || (i < a.len() && a[i] <= b[j]);
        let t = if take_a { a[i] } else { b[j] };
        w += (i as f64 / na - j as f64 / nb).abs() * (t - prev);
        prev = t;
        if take_a {
            i += 1;
        } else {
            j += 1;
        }
    }
    w
}

fn random_direction<R: Rng + ?Sized>(theta: &mut DVector<f64>, rng: &mut R) {
    loop {
        theta
            .iter_mut()
            .for_each(|v| *v = rng.sample(StandardNormal));
        let n = theta.norm();
        if n > 0.0 {
            *theta /= n;
            return;
        }
    }
}

/// **Proxy** for the sup-norm distance on a grid: `E maxᵢ|F(xᵢ) − G(xᵢ)|` under the coupling
/// `F = K̂^{1/2}Z`, `G = K^{1/2}Z` with a shared `Z ~ N(0, I_P)`.
///
/// Here `K` is the NNGP kernel matrix on the columns of `points` and `K̂ = σ_b² +
/// (σ_w²/n_L)ΦᵀΦ` the covariance of the output given the last hidden layer `Φ` of a fresh
/// Gaussian network per draw (so `F` has exactly the law of one network output coordinate).
/// Square roots are symmetric (eigen-decomposition, eigenvalues clamped at 0).
///
/// This is one coupling, hence an **upper bound** on `W₁` of the two fields restricted to the
/// grid in the sup-norm, not the distance itself; it decays like `n^{-1/2}` (the fluctuation
/// of `K̂`), slower than the one-point W₁.
///
/// # Errors
///
/// [`Error::Empty`] for no points; [`Error::DimensionMismatch`] if the points do not have
/// `spec.input_dim()` rows; [`Error::InvalidParameter`] if `draws < 2`.
///
/// # Example
///
/// ```
/// use klflow::field::{Activation, NetworkSpec, fibonacci_sphere, sup_norm_proxy};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let pts = fibonacci_sphere(20);
/// let mut rng = ChaCha8Rng::seed_from_u64(3);
/// let narrow = NetworkSpec::new(3, &[8], 1, Activation::Relu)?;
/// let wide = NetworkSpec::new(3, &[512], 1, Activation::Relu)?;
/// let a = sup_norm_proxy(&narrow, &pts, 50, &mut rng)?;
/// let b = sup_norm_proxy(&wide, &pts, 50, &mut rng)?;
/// assert!(b.value < a.value);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn sup_norm_proxy<R: Rng + ?Sized>(
    spec: &NetworkSpec,
    points: &DMatrix<f64>,
    draws: usize,
    rng: &mut R,
) -> Result<Estimate> {
    let p = points.ncols();
    if p == 0 {
        return Err(Error::Empty { name: "points" });
    }
    if draws < 2 {
        return Err(Error::InvalidParameter {
            name: "draws",
            value: draws as f64,
            reason: "must be >= 2",
        });
    }
    let kernel = spec.nngp();
    let root = sym_sqrt(&kernel_matrix(&kernel, points));
    let (_, s, sb) = spec.variances();
    let n_last = *spec.widths().last().expect("non-empty widths");
    let mut net = spec.sample(rng);
    let mut ws = NetworkWorkspace::new(spec, p);
    let mut feats = DMatrix::zeros(n_last, p);
    let mut khat = DMatrix::zeros(p, p);
    let mut zv = DVector::zeros(p);
    let mut diff = DVector::zeros(p);
    let mut values = Vec::with_capacity(draws);
    for _ in 0..draws {
        net.resample(rng);
        net.features_batch(points, &mut feats, &mut ws)?;
        khat.fill(sb);
        khat.gemm_tr(s / n_last as f64, &feats, &feats, 1.0);
        let root_hat = sym_sqrt(&khat);
        zv.iter_mut().for_each(|v| *v = rng.sample(StandardNormal));
        diff.gemv(1.0, &root_hat, &zv, 0.0);
        diff.gemv(-1.0, &root, &zv, 1.0);
        values.push(diff.amax());
    }
    Ok(Estimate::from_samples(values.into_iter()))
}
