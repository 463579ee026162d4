//! The Gaussian limit field on a finite point set: kernel matrices, Cholesky with jitter,
//! sampling, and the Gaussian-process posterior on noisy observations.

use nalgebra::{Cholesky, DMatrix, DVector, Dyn};
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;

use crate::Kernel;
use crate::error::{Error, Result};

/// The Gram matrix `[k(x_i, x_j)]` of the columns of `points` (exactly symmetric: the upper
/// triangle is computed and mirrored).
///
/// # Example
///
/// ```
/// use klflow::field::{Activation, Nngp, kernel_matrix};
/// use nalgebra::DMatrix;
///
/// let k = Nngp::new(Activation::Erf, 1, 1.0, 1.0, 0.0)?;
/// let pts = DMatrix::from_column_slice(2, 3, &[1.0, 0.0, 0.0, 1.0, -1.0, 0.0]);
/// let g = kernel_matrix(&k, &pts);
/// assert_eq!(g.shape(), (3, 3));
/// assert_eq!(g[(0, 2)], g[(2, 0)]);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn kernel_matrix<K: Kernel + ?Sized>(kernel: &K, points: &DMatrix<f64>) -> DMatrix<f64> {
    let p = points.ncols();
    let mut g = DMatrix::zeros(p, p);
    for j in 0..p {
        let xj = points.column(j);
        for i in 0..=j {
            let v = kernel.value(points.column(i).as_slice(), xj.as_slice());
            g[(i, j)] = v;
            g[(j, i)] = v;
        }
    }
    g
}

/// The cross-covariance `[k(a_i, b_j)]` between the columns of `a` and of `b`.
pub fn cross_kernel_matrix<K: Kernel + ?Sized>(
    kernel: &K,
    a: &DMatrix<f64>,
    b: &DMatrix<f64>,
) -> DMatrix<f64> {
    DMatrix::from_fn(a.ncols(), b.ncols(), |i, j| {
        kernel.value(a.column(i).as_slice(), b.column(j).as_slice())
    })
}

/// How much diagonal jitter `εI` a Cholesky factorisation may add.
///
/// Kernel matrices of smooth kernels on fine grids are numerically singular (their
/// eigenvalues decay geometrically), so an exact Cholesky fails. The policy:
///
/// * [`Jitter::None`]: factor as is; fail with [`Error::NotPositiveDefinite`] if it is not.
/// * [`Jitter::Fixed(ε)`](Jitter::Fixed): always add `ε·s·I`, with `s` the mean diagonal entry.
/// * [`Jitter::Adaptive { start, max }`](Jitter::Adaptive) (the default, `start = 1e-12`,
///   `max = 1e-6`): try with no jitter, then `ε·s` for `ε = start, 10·start, …` up to
///   `max`; fail if even `max` does not give a factorisation.
///
/// The jitter actually added is reported ([`GaussianField::jitter`]); a draw then has
/// covariance `K + εsI`, i.e. it carries independent noise of standard deviation `√(εs)`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Jitter {
    /// No jitter.
    None,
    /// A fixed relative jitter.
    Fixed(f64),
    /// The smallest working relative jitter in `{0, start, 10·start, …, ≤ max}`.
    Adaptive {
        /// The first relative jitter tried after the plain factorisation fails.
        start: f64,
        /// The largest relative jitter tried.
        max: f64,
    },
}

impl Default for Jitter {
    fn default() -> Self {
        Self::Adaptive {
            start: 1e-12,
            max: 1e-6,
        }
    }
}

/// Cholesky factorisation of the symmetric matrix `m` under the jitter policy; returns the
/// factor and the absolute jitter added.
fn cholesky_jitter(
    name: &'static str,
    m: &DMatrix<f64>,
    jitter: Jitter,
) -> Result<(Cholesky<f64, Dyn>, f64)> {
    if !m.iter().all(|v| v.is_finite()) {
        return Err(Error::NonFiniteInput { name });
    }
    let p = m.nrows();
    let scale = (m.trace() / p.max(1) as f64).abs().max(f64::MIN_POSITIVE);
    let attempt = |eps: f64| {
        let mut a = m.clone();
        for i in 0..p {
            a[(i, i)] += eps;
        }
        a.cholesky()
    };
    let bad = |value: f64| Error::InvalidParameter {
        name: "jitter",
        value,
        reason: "must be finite and >= 0, with start <= max",
    };
    match jitter {
        Jitter::None => attempt(0.0).map(|c| (c, 0.0)),
        Jitter::Fixed(eps) => {
            if !(eps.is_finite() && eps >= 0.0) {
                return Err(bad(eps));
            }
            attempt(eps * scale).map(|c| (c, eps * scale))
        }
        Jitter::Adaptive { start, max } => {
            if !(start.is_finite() && max.is_finite() && start > 0.0 && start <= max) {
                return Err(bad(start));
            }
            if let Some(c) = attempt(0.0) {
                return Ok((c, 0.0));
            }
            let mut eps = start;
            loop {
                if let Some(c) = attempt(eps * scale) {
                    return Ok((c, eps * scale));
                }
                if eps >= max {
                    break None;
                }
                eps = (eps * 10.0).min(max);
            }
        }
    }
    .ok_or(Error::NotPositiveDefinite { name })
}

/// A centred Gaussian vector `N(0, K)` on a finite point set: the limit field (one output
/// coordinate) restricted to the points.
///
/// Stores `K` and its lower Cholesky factor `L` (`LLᵀ = K + εI`, see [`Jitter`]); a draw is
/// `LZ`, `Z ~ N(0, I)`.
///
/// # Example
///
/// ```
/// use klflow::field::{Activation, GaussianField, Jitter, Nngp};
/// use nalgebra::DMatrix;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let k = Nngp::new(Activation::Relu, 2, 1.0, 2.0, 0.0)?;
/// let pts = DMatrix::from_fn(2, 100, |i, j| {
///     let t = j as f64 * std::f64::consts::TAU / 100.0;
///     if i == 0 { t.cos() } else { t.sin() }
/// });
/// let g = GaussianField::new(&k, &pts, Jitter::default())?;
/// let mut rng = ChaCha8Rng::seed_from_u64(1);
/// let mut draw = vec![0.0; 100];
/// g.sample_into(&mut draw, &mut rng)?;
/// assert!(draw.iter().all(|v| v.is_finite()));
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct GaussianField {
    cov: DMatrix<f64>,
    chol: DMatrix<f64>,
    jitter: f64,
}

impl GaussianField {
    /// The limit field of `kernel` on the columns of `points`.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if there are no points; as [`GaussianField::from_covariance`].
    pub fn new<K: Kernel + ?Sized>(
        kernel: &K,
        points: &DMatrix<f64>,
        jitter: Jitter,
    ) -> Result<Self> {
        if points.ncols() == 0 {
            return Err(Error::Empty { name: "points" });
        }
        Self::from_covariance(kernel_matrix(kernel, points), jitter)
    }

    /// `N(0, cov)`.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if `cov` is not square; [`Error::NonFiniteInput`],
    /// [`Error::NotSymmetric`] (relative 1e-10); [`Error::NotPositiveDefinite`] if the
    /// jitter policy does not give a factorisation; [`Error::InvalidParameter`] for an
    /// invalid policy.
    pub fn from_covariance(cov: DMatrix<f64>, jitter: Jitter) -> Result<Self> {
        if cov.nrows() != cov.ncols() {
            return Err(Error::DimensionMismatch {
                name: "cov",
                expected: cov.nrows(),
                found: cov.ncols(),
            });
        }
        let cov = crate::linalg::checked_symmetric("cov", &cov)?;
        let (chol, jitter) = cholesky_jitter("cov", &cov, jitter)?;
        Ok(Self {
            cov,
            chol: chol.unpack(),
            jitter,
        })
    }

    /// The number of points.
    pub fn len(&self) -> usize {
        self.cov.nrows()
    }

    /// `true` if there are no points.
    pub fn is_empty(&self) -> bool {
        self.cov.nrows() == 0
    }

    /// The covariance matrix `K` (without jitter).
    pub fn cov(&self) -> &DMatrix<f64> {
        &self.cov
    }

    /// The lower Cholesky factor `L` of `K + εI`.
    pub fn cholesky(&self) -> &DMatrix<f64> {
        &self.chol
    }

    /// The absolute jitter `ε` that was added to the diagonal (0 if none was needed).
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// Overwrites `out` with a draw `LZ`. Allocates nothing (the product is done in place).
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if `out.len()` is not the number of points.
    pub fn sample_into<R: Rng + ?Sized>(&self, out: &mut [f64], rng: &mut R) -> Result<()> {
        if out.len() != self.len() {
            return Err(Error::DimensionMismatch {
                name: "out",
                expected: self.len(),
                found: out.len(),
            });
        }
        for v in out.iter_mut() {
            *v = rng.sample(StandardNormal);
        }
        // out ← L out, from the last row up: row i only reads z_j, j ≤ i, not yet overwritten.
        let p = out.len();
        for i in (0..p).rev() {
            let mut s = 0.0;
            for (j, zj) in out.iter().enumerate().take(i + 1) {
                s += self.chol[(i, j)] * zj;
            }
            out[i] = s;
        }
        Ok(())
    }

    /// A draw as a new vector.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> DVector<f64> {
        let mut out = DVector::zeros(self.len());
        self.sample_into(out.as_mut_slice(), rng)
            .expect("sized to the field");
        out
    }
}

/// The Gaussian-process posterior of the limit field given noisy observations
/// `y_i = f(x_i) + ε_i`, `ε_i ~ N(0, τ²)`, at a set of test points.
///
/// With `K_tt` the training Gram matrix, `K_*t` the test–training cross-covariance and
/// `A = K_tt + τ²I` (plus jitter if needed, see [`Jitter`]):
/// mean `K_*t A⁻¹y`, covariance `K_** − K_*t A⁻¹K_t*`, and the log marginal likelihood
/// `−½yᵀA⁻¹y − ½log det A − (n/2)log 2π`. Draws from the posterior ("conditional sampling")
/// use the Cholesky factor of the posterior covariance under the same jitter policy.
///
/// # Example
///
/// ```
/// use klflow::field::{Activation, GpPosterior, Jitter, Nngp};
/// use nalgebra::DMatrix;
///
/// // Depth 2 with a bias: strictly positive definite on the circle (the bias-free one-layer
/// // ReLU kernel is not: its Fourier coefficients of odd frequency ≥ 3 vanish).
/// let k = Nngp::new(Activation::Relu, 2, 1.0, 2.0, 0.1)?;
/// let circle = |n: usize| DMatrix::from_fn(2, n, |i, j| {
///     let t = j as f64 * std::f64::consts::TAU / n as f64;
///     if i == 0 { t.cos() } else { t.sin() }
/// });
/// let (train, test) = (circle(8), circle(64));
/// let y: Vec<f64> = (0..8).map(|j| (j as f64).sin()).collect();
/// let post = GpPosterior::new(&k, &train, &y, 1e-6, &test, Jitter::default())?;
/// // The test grid contains the training points (every 8th): the mean interpolates them.
/// assert!((post.mean()[8] - y[1]).abs() < 1e-2);
/// assert!(post.cov()[(8, 8)] < 1e-3);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct GpPosterior {
    mean: DVector<f64>,
    field: GaussianField,
    log_marginal_likelihood: f64,
    jitter_train: f64,
}

impl GpPosterior {
    /// The posterior at the columns of `test` given observations `y` at the columns of
    /// `train` with noise variance `noise_var ≥ 0` (0 = exact conditioning).
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] for no training or test points; [`Error::DimensionMismatch`] if
    /// `y.len()` differs from the number of training points or the point dimensions differ;
    /// [`Error::NonFiniteInput`] for non-finite `y`; [`Error::InvalidParameter`] for a
    /// negative or non-finite `noise_var`; [`Error::NotPositiveDefinite`] if the jitter
    /// policy fails on `A` or on the posterior covariance.
    pub fn new<K: Kernel + ?Sized>(
        kernel: &K,
        train: &DMatrix<f64>,
        y: &[f64],
        noise_var: f64,
        test: &DMatrix<f64>,
        jitter: Jitter,
    ) -> Result<Self> {
        if train.ncols() == 0 {
            return Err(Error::Empty { name: "train" });
        }
        if test.ncols() == 0 {
            return Err(Error::Empty { name: "test" });
        }
        if y.len() != train.ncols() {
            return Err(Error::DimensionMismatch {
                name: "y",
                expected: train.ncols(),
                found: y.len(),
            });
        }
        if test.nrows() != train.nrows() {
            return Err(Error::DimensionMismatch {
                name: "test",
                expected: train.nrows(),
                found: test.nrows(),
            });
        }
        crate::error::finite_input("y", y)?;
        let noise_var = super::nngp::check_variance("noise_var", noise_var, false)?;
        let n = train.ncols();
        let mut a = kernel_matrix(kernel, train);
        for i in 0..n {
            a[(i, i)] += noise_var;
        }
        let (chol, jitter_train) = cholesky_jitter("train_cov", &a, jitter)?;
        let yv = DVector::from_column_slice(y);
        let alpha = chol.solve(&yv);
        let k_st = cross_kernel_matrix(kernel, test, train);
        let mean = &k_st * &alpha;
        // V = L⁻¹K_t*, posterior cov = K_** − VᵀV.
        let mut v = k_st.transpose();
        chol.l_dirty()
            .solve_lower_triangular_mut(&mut v)
            .then_some(())
            .ok_or(Error::NotPositiveDefinite { name: "train_cov" })?;
        let l = chol.l();
        let mut cov = kernel_matrix(kernel, test);
        cov.gemm_tr(-1.0, &v, &v, 1.0);
        let cov = (&cov + cov.transpose()) * 0.5;
        let log_det: f64 = 2.0 * l.diagonal().iter().map(|d| d.ln()).sum::<f64>();
        let log_marginal_likelihood = -0.5 * yv.dot(&alpha)
            - 0.5 * log_det
            - 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln();
        let field = GaussianField::from_covariance(cov, jitter)?;
        Ok(Self {
            mean,
            field,
            log_marginal_likelihood,
            jitter_train,
        })
    }

    /// The posterior mean at the test points.
    pub fn mean(&self) -> &DVector<f64> {
        &self.mean
    }

    /// The posterior covariance at the test points.
    pub fn cov(&self) -> &DMatrix<f64> {
        self.field.cov()
    }

    /// The centred posterior field (covariance and Cholesky factor).
    pub fn field(&self) -> &GaussianField {
        &self.field
    }

    /// `log p(y)` under the prior `N(0, K_tt + τ²I)`.
    pub fn log_marginal_likelihood(&self) -> f64 {
        self.log_marginal_likelihood
    }

    /// The absolute jitter added to `K_tt + τ²I`.
    pub fn jitter_train(&self) -> f64 {
        self.jitter_train
    }

    /// Overwrites `out` with a posterior draw (mean plus a centred draw). Allocates nothing.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if `out.len()` is not the number of test points.
    pub fn sample_into<R: Rng + ?Sized>(&self, out: &mut [f64], rng: &mut R) -> Result<()> {
        self.field.sample_into(out, rng)?;
        for (o, m) in out.iter_mut().zip(self.mean.iter()) {
            *o += m;
        }
        Ok(())
    }
}
