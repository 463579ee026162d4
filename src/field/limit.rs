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
///
/// # Example
///
/// ```
/// use klflow::field::{cross_kernel_matrix, kernel_matrix};
/// use klflow::kernel::Rbf;
/// use nalgebra::DMatrix;
///
/// let k = Rbf::new(1.0)?;
/// let a = DMatrix::from_column_slice(1, 2, &[0.0, 1.0]);
/// let b = DMatrix::from_column_slice(1, 3, &[0.0, 2.0, 5.0]);
/// let c = cross_kernel_matrix(&k, &a, &b);
/// assert_eq!(c.shape(), (2, 3));
/// assert_eq!(c[(1, 1)], (-0.5f64).exp()); // exp(−‖1 − 2‖²/2)
/// // against itself: the Gram matrix
/// assert_eq!(cross_kernel_matrix(&k, &a, &a), kernel_matrix(&k, &a));
/// # Ok::<(), klflow::Error>(())
/// ```
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
///
/// # Example
///
/// ```
/// use klflow::{Error, field::{GaussianField, Jitter}};
/// use nalgebra::DMatrix;
///
/// let singular = DMatrix::from_element(2, 2, 1.0); // rank one
/// assert_eq!(
///     GaussianField::from_covariance(singular.clone(), Jitter::None).unwrap_err(),
///     Error::NotPositiveDefinite { name: "cov" }
/// );
/// let fixed = GaussianField::from_covariance(singular.clone(), Jitter::Fixed(1e-3))?;
/// assert_eq!(fixed.jitter(), 1e-3); // ε times the mean diagonal entry 1
/// let adaptive = GaussianField::from_covariance(singular, Jitter::default())?;
/// assert!(adaptive.jitter() > 0.0 && adaptive.jitter() <= 1e-6);
/// # Ok::<(), klflow::Error>(())
/// ```
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
///
/// The relative jitter is scaled by `reference` when given (a GP posterior covariance, which
/// vanishes at the training points under exact conditioning, is jittered relative to the prior
/// variance), otherwise by the matrix's own mean diagonal.
fn cholesky_jitter(
    name: &'static str,
    m: &DMatrix<f64>,
    jitter: Jitter,
    reference: Option<f64>,
) -> Result<(Cholesky<f64, Dyn>, f64)> {
    if !m.iter().all(|v| v.is_finite()) {
        return Err(Error::NonFiniteInput { name });
    }
    let p = m.nrows();
    let own = (m.trace() / p.max(1) as f64).abs();
    let scale = reference
        .map_or(own, |r| r.abs().max(own))
        .max(f64::MIN_POSITIVE);
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
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, field::{GaussianField, Jitter}};
    /// use klflow::kernel::Rbf;
    /// use nalgebra::DMatrix;
    ///
    /// let k = Rbf::new(1.0)?;
    /// let pts = DMatrix::from_column_slice(1, 3, &[0.0, 1.0, 2.0]);
    /// let g = GaussianField::new(&k, &pts, Jitter::None)?;
    /// assert_eq!(g.len(), 3);
    /// assert_eq!(g.cov()[(0, 2)], (-2.0f64).exp()); // exp(−2²/2)
    /// let none = DMatrix::<f64>::zeros(1, 0);
    /// assert_eq!(GaussianField::new(&k, &none, Jitter::None).unwrap_err(), Error::Empty { name: "points" });
    /// # Ok::<(), klflow::Error>(())
    /// ```
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
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, field::{GaussianField, Jitter}};
    /// use nalgebra::DMatrix;
    ///
    /// let cov = DMatrix::from_row_slice(2, 2, &[4.0, 2.0, 2.0, 2.0]);
    /// let g = GaussianField::from_covariance(cov, Jitter::None)?;
    /// assert_eq!(g.cholesky()[(1, 0)], 1.0); // L = [[2, 0], [1, 1]]
    /// let asym = DMatrix::from_row_slice(2, 2, &[1.0, 0.5, 0.0, 1.0]);
    /// assert!(matches!(GaussianField::from_covariance(asym, Jitter::None), Err(Error::NotSymmetric { .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn from_covariance(cov: DMatrix<f64>, jitter: Jitter) -> Result<Self> {
        Self::from_covariance_scaled(cov, jitter, None)
    }

    /// As [`from_covariance`](Self::from_covariance), with the jitter relative to `reference`.
    fn from_covariance_scaled(
        cov: DMatrix<f64>,
        jitter: Jitter,
        reference: Option<f64>,
    ) -> Result<Self> {
        if cov.nrows() != cov.ncols() {
            return Err(Error::DimensionMismatch {
                name: "cov",
                expected: cov.nrows(),
                found: cov.ncols(),
            });
        }
        let cov = crate::linalg::checked_symmetric("cov", &cov)?;
        let (chol, jitter) = cholesky_jitter("cov", &cov, jitter, reference)?;
        Ok(Self {
            cov,
            chol: chol.unpack(),
            jitter,
        })
    }

    /// The number of points.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{GaussianField, Jitter};
    /// use nalgebra::DMatrix;
    ///
    /// let g = GaussianField::from_covariance(DMatrix::identity(5, 5), Jitter::None)?;
    /// assert_eq!(g.len(), 5);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.cov.nrows()
    }

    /// `true` if there are no points.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{GaussianField, Jitter};
    /// use nalgebra::DMatrix;
    ///
    /// let g = GaussianField::from_covariance(DMatrix::identity(2, 2), Jitter::None)?;
    /// assert!(!g.is_empty());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.cov.nrows() == 0
    }

    /// The covariance matrix `K` (without jitter).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{GaussianField, Jitter};
    /// use nalgebra::DMatrix;
    ///
    /// // the jitter goes into the Cholesky factor, not into the stored covariance
    /// let singular = DMatrix::from_element(2, 2, 1.0);
    /// let g = GaussianField::from_covariance(singular.clone(), Jitter::Fixed(1e-4))?;
    /// assert_eq!(*g.cov(), singular);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn cov(&self) -> &DMatrix<f64> {
        &self.cov
    }

    /// The lower Cholesky factor `L` of `K + εI`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{GaussianField, Jitter};
    /// use nalgebra::DMatrix;
    ///
    /// let cov = DMatrix::from_row_slice(2, 2, &[2.0, 1.0, 1.0, 2.0]);
    /// let g = GaussianField::from_covariance(cov.clone(), Jitter::Fixed(0.5))?;
    /// let l = g.cholesky();
    /// // L Lᵀ = K + εI with ε = 0.5 · (mean diagonal entry 2)
    /// let eps = g.jitter();
    /// assert_eq!(eps, 1.0);
    /// assert!((l * l.transpose() - (cov + DMatrix::identity(2, 2) * eps)).amax() < 1e-12);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn cholesky(&self) -> &DMatrix<f64> {
        &self.chol
    }

    /// The absolute jitter `ε` that was added to the diagonal (0 if none was needed).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{GaussianField, Jitter};
    /// use nalgebra::DMatrix;
    ///
    /// // a well-conditioned matrix needs no jitter under the adaptive policy
    /// let g = GaussianField::from_covariance(DMatrix::identity(3, 3), Jitter::default())?;
    /// assert_eq!(g.jitter(), 0.0);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// Overwrites `out` with a draw `LZ`. Allocates nothing (the product is done in place).
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if `out.len()` is not the number of points.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, field::{GaussianField, Jitter}};
    /// use nalgebra::DMatrix;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// // perfectly correlated coordinates (rank one, tiny fixed jitter): the draws agree
    /// let g = GaussianField::from_covariance(DMatrix::from_element(2, 2, 1.0), Jitter::Fixed(1e-14))?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut out = [0.0; 2];
    /// g.sample_into(&mut out, &mut rng)?;
    /// assert!((out[0] - out[1]).abs() < 1e-5);
    /// assert!(matches!(g.sample_into(&mut [0.0; 3], &mut rng), Err(Error::DimensionMismatch { .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
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
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{GaussianField, Jitter};
    /// use nalgebra::DMatrix;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let g = GaussianField::from_covariance(DMatrix::identity(4, 4) * 9.0, Jitter::None)?;
    /// // the same draw as sample_into from the same RNG state
    /// let mut a = [0.0; 4];
    /// g.sample_into(&mut a, &mut ChaCha8Rng::seed_from_u64(1))?;
    /// assert_eq!(g.sample(&mut ChaCha8Rng::seed_from_u64(1)).as_slice(), &a);
    /// # Ok::<(), klflow::Error>(())
    /// ```
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
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{GpPosterior, Jitter};
    /// use klflow::kernel::Rbf;
    /// use nalgebra::DMatrix;
    ///
    /// // one observation y = 2 at x = 0 with noise variance 1, k(0, 0) = 1
    /// let k = Rbf::new(1.0)?;
    /// let train = DMatrix::from_column_slice(1, 1, &[0.0]);
    /// let test = DMatrix::from_column_slice(1, 2, &[0.0, 50.0]);
    /// let post = GpPosterior::new(&k, &train, &[2.0], 1.0, &test, Jitter::None)?;
    /// assert!((post.mean()[0] - 1.0).abs() < 1e-12); // k/(k + τ²) · y
    /// assert!(post.mean()[1].abs() < 1e-12); // far away: the prior mean
    /// assert!((post.cov()[(0, 0)] - 0.5).abs() < 1e-12); // k − k²/(k + τ²)
    /// # Ok::<(), klflow::Error>(())
    /// ```
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
        let (chol, jitter_train) = cholesky_jitter("train_cov", &a, jitter, None)?;
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
        let prior_scale = cov.trace() / cov.nrows().max(1) as f64;
        cov.gemm_tr(-1.0, &v, &v, 1.0);
        let cov = (&cov + cov.transpose()) * 0.5;
        let log_det: f64 = 2.0 * l.diagonal().iter().map(|d| d.ln()).sum::<f64>();
        let log_marginal_likelihood = -0.5 * yv.dot(&alpha)
            - 0.5 * log_det
            - 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln();
        let field = GaussianField::from_covariance_scaled(cov, jitter, Some(prior_scale))?;
        Ok(Self {
            mean,
            field,
            log_marginal_likelihood,
            jitter_train,
        })
    }

    /// The posterior mean at the test points.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{GpPosterior, Jitter};
    /// use klflow::kernel::Rbf;
    /// use nalgebra::DMatrix;
    ///
    /// // nearly exact conditioning (τ² = 1e-10): the mean interpolates the data
    /// let k = Rbf::new(1.0)?;
    /// let train = DMatrix::from_column_slice(1, 2, &[-1.0, 1.0]);
    /// let post = GpPosterior::new(&k, &train, &[0.5, -0.5], 1e-10, &train, Jitter::default())?;
    /// assert!((post.mean()[0] - 0.5).abs() < 1e-8 && (post.mean()[1] + 0.5).abs() < 1e-8);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn mean(&self) -> &DVector<f64> {
        &self.mean
    }

    /// The posterior covariance at the test points.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{GpPosterior, Jitter};
    /// use klflow::kernel::Rbf;
    /// use nalgebra::DMatrix;
    ///
    /// let k = Rbf::new(1.0)?;
    /// let train = DMatrix::from_column_slice(1, 1, &[0.0]);
    /// let test = DMatrix::from_column_slice(1, 2, &[0.0, 1.0]);
    /// let post = GpPosterior::new(&k, &train, &[1.0], 0.25, &test, Jitter::None)?;
    /// // k − k_*t k_t* / (k + τ²): 1 − 1/1.25 at the observation, 1 − e⁻¹/1.25 next to it
    /// assert!((post.cov()[(0, 0)] - 0.2).abs() < 1e-12);
    /// assert!((post.cov()[(1, 1)] - (1.0 - (-1.0f64).exp() / 1.25)).abs() < 1e-12);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn cov(&self) -> &DMatrix<f64> {
        self.field.cov()
    }

    /// The centred posterior field (covariance and Cholesky factor).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{GpPosterior, Jitter};
    /// use klflow::kernel::Rbf;
    /// use nalgebra::DMatrix;
    ///
    /// let k = Rbf::new(1.0)?;
    /// let train = DMatrix::from_column_slice(1, 1, &[0.0]);
    /// let test = DMatrix::from_column_slice(1, 3, &[-1.0, 0.5, 2.0]);
    /// let post = GpPosterior::new(&k, &train, &[1.0], 0.1, &test, Jitter::None)?;
    /// assert_eq!(post.field().len(), 3);
    /// assert_eq!(post.field().cov(), post.cov());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn field(&self) -> &GaussianField {
        &self.field
    }

    /// `log p(y)` under the prior `N(0, K_tt + τ²I)`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{GpPosterior, Jitter};
    /// use klflow::kernel::Rbf;
    /// use nalgebra::DMatrix;
    ///
    /// // one observation y = 2, k(0, 0) = 1, τ² = 1: log N(2; 0, 2) = −1 − ½ log 4π
    /// let k = Rbf::new(1.0)?;
    /// let x = DMatrix::from_column_slice(1, 1, &[0.0]);
    /// let post = GpPosterior::new(&k, &x, &[2.0], 1.0, &x, Jitter::None)?;
    /// let expected = -1.0 - 0.5 * (4.0 * std::f64::consts::PI).ln();
    /// assert!((post.log_marginal_likelihood() - expected).abs() < 1e-12);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn log_marginal_likelihood(&self) -> f64 {
        self.log_marginal_likelihood
    }

    /// The absolute jitter added to `K_tt + τ²I`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{GpPosterior, Jitter};
    /// use klflow::kernel::Rbf;
    /// use nalgebra::DMatrix;
    ///
    /// let k = Rbf::new(1.0)?;
    /// let x = DMatrix::from_column_slice(1, 2, &[0.0, 1.0]);
    /// // with noise the training matrix is well conditioned: no jitter needed
    /// let post = GpPosterior::new(&k, &x, &[0.0, 1.0], 0.1, &x, Jitter::default())?;
    /// assert_eq!(post.jitter_train(), 0.0);
    /// // a repeated training point without noise makes K_tt singular: jitter is added
    /// let twice = DMatrix::from_column_slice(1, 2, &[0.0, 0.0]);
    /// let post = GpPosterior::new(&k, &twice, &[1.0, 1.0], 0.0, &x, Jitter::default())?;
    /// assert!(post.jitter_train() > 0.0);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn jitter_train(&self) -> f64 {
        self.jitter_train
    }

    /// Overwrites `out` with a posterior draw (mean plus a centred draw). Allocates nothing.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if `out.len()` is not the number of test points.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{GpPosterior, Jitter};
    /// use klflow::kernel::Rbf;
    /// use nalgebra::DMatrix;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// // observations with noise variance 1e-4 pin the draws at the training points: the
    /// // posterior standard deviation there is below 0.01
    /// let k = Rbf::new(1.0)?;
    /// let x = DMatrix::from_column_slice(1, 2, &[-1.0, 1.0]);
    /// let post = GpPosterior::new(&k, &x, &[3.0, -3.0], 1e-4, &x, Jitter::default())?;
    /// assert!(post.cov()[(0, 0)] < 1e-4);
    /// let mut out = [0.0; 2];
    /// post.sample_into(&mut out, &mut ChaCha8Rng::seed_from_u64(5))?;
    /// assert!((out[0] - 3.0).abs() < 0.05 && (out[1] + 3.0).abs() < 0.05);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn sample_into<R: Rng + ?Sized>(&self, out: &mut [f64], rng: &mut R) -> Result<()> {
        self.field.sample_into(out, rng)?;
        for (o, m) in out.iter_mut().zip(self.mean.iter()) {
            *o += m;
        }
        Ok(())
    }
}
