//! The Gaussian law `N(m, Σ)`: a target, a distribution to draw from, and the object of the
//! closed-form divergences the test oracle is built on.

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, Dim, OMatrix, OVector};
use rand::Rng;
use rand_distr::Distribution;

use crate::dim::{Alloc, check_len, fill_standard_normal};
use crate::error::{Error, Result, finite_input, positive};
use crate::linalg::{checked_symmetric, sym_eigenvalues, sym_sqrt, symmetrize};
use crate::potential::{Potential, PotentialHessian};

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// A multivariate normal law `N(m, Σ)` with `Σ` symmetric positive definite.
///
/// Stores the mean, the covariance, its lower Cholesky factor `L` (`Σ = LLᵀ`), the precision
/// `Σ⁻¹` and `log det Σ`, all computed once at construction. As a [`Potential`] its energy is
/// `U(x) = ½(x − m)ᵀΣ⁻¹(x − m)` (the normalising constant is left out; see
/// [`Gaussian::log_density`] for the normalised value).
///
/// Closed forms between two Gaussians: [`kl`](Gaussian::kl), [`w2`](Gaussian::w2) (Bures),
/// [`relative_fisher`](Gaussian::relative_fisher), [`entropy`](Gaussian::entropy).
///
/// # Example
///
/// ```
/// use klflow::potential::Gaussian;
/// use nalgebra::{SMatrix, SVector};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
/// use rand_distr::Distribution;
///
/// let p = Gaussian::new(SVector::<f64, 2>::new(1.0, -1.0), SMatrix::identity() * 2.0)?;
/// let q = Gaussian::standard(nalgebra::Const::<2>);
/// // KL(N(m, 2I) ‖ N(0, I)) = ½[tr(2I) − 2 − log det(2I) + ‖m‖²]
/// let kl = 0.5 * (4.0 - 2.0 - 2.0 * 2f64.ln() + 2.0);
/// assert!((p.kl(&q)? - kl).abs() < 1e-12);
///
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let x = p.sample(&mut rng);
/// assert!(p.log_density(&x)?.is_finite());
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(bound(
        serialize = "OVector<f64, D>: serde::Serialize, OMatrix<f64, D, D>: serde::Serialize",
        deserialize = "OVector<f64, D>: serde::Deserialize<'de>, OMatrix<f64, D, D>: serde::Deserialize<'de>"
    ))
)]
pub struct Gaussian<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    mean: OVector<f64, D>,
    cov: OMatrix<f64, D, D>,
    chol: OMatrix<f64, D, D>,
    precision: OMatrix<f64, D, D>,
    precision_mean: OVector<f64, D>,
    log_det_cov: f64,
    eig_min: f64,
    eig_max: f64,
    /// `Some((diag Σ⁻¹, diag L))` when Σ is diagonal: the O(d) fast paths.
    diagonal: Option<(OVector<f64, D>, OVector<f64, D>)>,
}

impl<D: Dim> Gaussian<D>
where
    DefaultAllocator: Alloc<D>,
{
    /// `N(mean, cov)`.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if `cov` is not `d × d` with `d = mean.len()`, or naming
    /// `mean` if `d = 0`; [`Error::NonFiniteInput`] naming `mean` or `cov` for NaN or infinite
    /// entries; [`Error::NotSymmetric`] if `cov` is not symmetric to a relative 1e-10;
    /// [`Error::NotPositiveDefinite`] if its Cholesky factorisation fails.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, potential::Gaussian};
    /// use nalgebra::{DMatrix, DVector};
    ///
    /// let bad = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 2.0, 1.0]); // eigenvalues 3, −1
    /// let err = Gaussian::new(DVector::zeros(2), bad).unwrap_err();
    /// assert_eq!(err, Error::NotPositiveDefinite { name: "cov" });
    /// ```
    pub fn new(mean: OVector<f64, D>, cov: OMatrix<f64, D, D>) -> Result<Self> {
        check_square("cov", mean.len(), &cov)?;
        finite_input("mean", mean.as_slice())?;
        let cov = checked_symmetric("cov", &cov)?;
        let chol = cov
            .clone()
            .cholesky()
            .ok_or(Error::NotPositiveDefinite { name: "cov" })?;
        let precision = symmetrize(&chol.inverse());
        Self::assemble(mean, cov, chol.unpack(), precision)
    }

    /// `N(mean, precision⁻¹)`, given the precision matrix (inverse covariance).
    ///
    /// # Errors
    ///
    /// As [`Gaussian::new`], naming `precision`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Gaussian;
    /// use nalgebra::{SMatrix, SVector};
    ///
    /// let g = Gaussian::from_precision(SVector::<f64, 2>::zeros(), SMatrix::identity() * 4.0)?;
    /// assert!((g.covariance()[(0, 0)] - 0.25).abs() < 1e-15);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn from_precision(mean: OVector<f64, D>, precision: OMatrix<f64, D, D>) -> Result<Self> {
        check_square("precision", mean.len(), &precision)?;
        finite_input("mean", mean.as_slice())?;
        let precision = checked_symmetric("precision", &precision)?;
        let pchol = precision
            .clone()
            .cholesky()
            .ok_or(Error::NotPositiveDefinite { name: "precision" })?;
        let cov = symmetrize(&pchol.inverse());
        let chol = cov
            .clone()
            .cholesky()
            .ok_or(Error::NotPositiveDefinite { name: "precision" })?;
        Self::assemble(mean, cov, chol.unpack(), precision)
    }

    /// `N(mean, variance · I)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] if `variance` is not finite and positive;
    /// [`Error::NonFiniteInput`] naming `mean` for a non-finite mean;
    /// [`Error::DimensionMismatch`] naming `mean` if `d = 0`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Gaussian;
    /// use nalgebra::DVector;
    ///
    /// let g = Gaussian::isotropic(DVector::zeros(1000), 2.0)?;
    /// assert!((g.entropy() - 500.0 * (1.0 + (2.0 * std::f64::consts::PI * 2.0).ln())).abs() < 1e-9);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn isotropic(mean: OVector<f64, D>, variance: f64) -> Result<Self> {
        positive("variance", variance)?;
        let (d, _) = mean.shape_generic();
        Self::diagonal_unchecked(
            mean,
            OVector::from_element_generic(d, nalgebra::U1, variance),
        )
    }

    /// `N(mean, diag(variances))`.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if the lengths differ; [`Error::InvalidParameter`] naming
    /// `variances` if an entry is not finite and positive; [`Error::NonFiniteInput`] naming `mean`
    /// for a non-finite mean; [`Error::DimensionMismatch`] naming `mean` if `d = 0`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Gaussian;
    /// use nalgebra::SVector;
    ///
    /// let g = Gaussian::diagonal(SVector::<f64, 2>::zeros(), nalgebra::Vector2::new(1.0, 4.0))?;
    /// assert_eq!(g.covariance()[(1, 1)], 4.0);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn diagonal(mean: OVector<f64, D>, variances: OVector<f64, D>) -> Result<Self> {
        check_len("variances", mean.shape_generic().0, &variances)?;
        for &v in variances.iter() {
            positive("variances", v)?;
        }
        Self::diagonal_unchecked(mean, variances)
    }

    /// The standard normal `N(0, I)` in dimension `dim`.
    ///
    /// # Panics
    ///
    /// If `dim` is `Dyn(0)`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Gaussian;
    ///
    /// let g = Gaussian::standard(nalgebra::Dyn(3));
    /// assert_eq!(g.mean().len(), 3);
    /// ```
    pub fn standard(dim: D) -> Self {
        let mean = OVector::zeros_generic(dim, nalgebra::U1);
        let ones = OVector::from_element_generic(dim, nalgebra::U1, 1.0);
        Self::diagonal_unchecked(mean, ones).expect("the standard normal needs d >= 1")
    }

    fn diagonal_unchecked(mean: OVector<f64, D>, variances: OVector<f64, D>) -> Result<Self> {
        finite_input("mean", mean.as_slice())?;
        let cov = OMatrix::from_diagonal(&variances);
        let chol = OMatrix::from_diagonal(&variances.map(f64::sqrt));
        let precision = OMatrix::from_diagonal(&variances.map(|v| 1.0 / v));
        Self::assemble(mean, cov, chol, precision)
    }

    /// `N(mean, Q diag(s) Qᵀ)` from a known eigendecomposition of the covariance (`Q`
    /// orthogonal, `s > 0`): the precision, `log det` and the eigenvalue range come from the
    /// spectrum, only the Cholesky factor is computed.
    pub(crate) fn from_spectral(
        mean: OVector<f64, D>,
        cov: &OMatrix<f64, D, D>,
        q: &OMatrix<f64, D, D>,
        s: &OVector<f64, D>,
    ) -> Result<Self> {
        finite_input("mean", mean.as_slice())?;
        if !s.iter().all(|v| v.is_finite() && *v > 0.0) {
            return Err(Error::NotPositiveDefinite { name: "cov" });
        }
        let cov = symmetrize(cov);
        let chol = cov
            .clone()
            .cholesky()
            .ok_or(Error::NotPositiveDefinite { name: "cov" })?
            .unpack();
        let mut scaled = q.clone();
        for (j, sj) in s.iter().enumerate() {
            scaled.column_mut(j).scale_mut(1.0 / sj);
        }
        let precision = symmetrize(&(scaled * q.transpose()));
        let log_det_cov = s.iter().map(|v| v.ln()).sum();
        let precision_mean = &precision * &mean;
        Ok(Self {
            mean,
            cov,
            chol,
            precision,
            precision_mean,
            log_det_cov,
            eig_min: s.min(),
            eig_max: s.max(),
            diagonal: None,
        })
    }

    fn assemble(
        mean: OVector<f64, D>,
        cov: OMatrix<f64, D, D>,
        chol: OMatrix<f64, D, D>,
        precision: OMatrix<f64, D, D>,
    ) -> Result<Self> {
        if mean.is_empty() {
            return Err(Error::DimensionMismatch {
                name: "mean",
                expected: 1,
                found: 0,
            });
        }
        let log_det_cov = 2.0 * chol.diagonal().iter().map(|v| v.ln()).sum::<f64>();
        let n = precision.nrows();
        let is_diagonal = (0..n).all(|j| (0..n).all(|i| i == j || precision[(i, j)] == 0.0));
        let diagonal = is_diagonal.then(|| (precision.diagonal(), chol.diagonal()));
        let (eig_min, eig_max) = if is_diagonal {
            let d = cov.diagonal();
            (d.min(), d.max())
        } else {
            let ev = sym_eigenvalues(&cov);
            (ev[0], ev[ev.len() - 1])
        };
        if !(eig_min > 0.0 && log_det_cov.is_finite()) {
            return Err(Error::NotPositiveDefinite { name: "cov" });
        }
        let precision_mean = &precision * &mean;
        Ok(Self {
            mean,
            cov,
            chol,
            precision,
            precision_mean,
            log_det_cov,
            eig_min,
            eig_max,
            diagonal,
        })
    }

    /// The dimension `d`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Gaussian;
    ///
    /// assert_eq!(Gaussian::standard(nalgebra::Dyn(5)).dim_value(), 5);
    /// ```
    pub fn dim_value(&self) -> usize {
        self.mean.len()
    }

    /// The mean `m`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Gaussian;
    ///
    /// let g = Gaussian::isotropic(nalgebra::Vector2::new(1.0, -2.0), 3.0)?;
    /// assert_eq!(*g.mean(), nalgebra::Vector2::new(1.0, -2.0));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn mean(&self) -> &OVector<f64, D> {
        &self.mean
    }

    /// The covariance `Σ`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Gaussian;
    ///
    /// let g = Gaussian::isotropic(nalgebra::Vector2::new(0.0, 0.0), 3.0)?;
    /// assert_eq!(*g.covariance(), nalgebra::Matrix2::identity() * 3.0);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn covariance(&self) -> &OMatrix<f64, D, D> {
        &self.cov
    }

    /// The precision `Σ⁻¹`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Gaussian;
    /// use nalgebra::{Matrix2, Vector2};
    ///
    /// let cov = Matrix2::new(2.0, 1.0, 1.0, 2.0);
    /// let g = Gaussian::new(Vector2::zeros(), cov)?;
    /// assert!((g.precision() * cov - Matrix2::identity()).amax() < 1e-12);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn precision(&self) -> &OMatrix<f64, D, D> {
        &self.precision
    }

    /// The lower Cholesky factor `L` with `Σ = LLᵀ`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Gaussian;
    /// use nalgebra::{Matrix2, Vector2};
    ///
    /// let cov = Matrix2::new(4.0, 2.0, 2.0, 3.0);
    /// let g = Gaussian::new(Vector2::zeros(), cov)?;
    /// let l = g.cholesky_factor();
    /// assert_eq!(l[(0, 1)], 0.0); // lower triangular
    /// assert!((l * l.transpose() - cov).amax() < 1e-12);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn cholesky_factor(&self) -> &OMatrix<f64, D, D> {
        &self.chol
    }

    /// `log det Σ`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Gaussian;
    /// use nalgebra::{Matrix2, Vector2};
    ///
    /// let g = Gaussian::new(Vector2::zeros(), Matrix2::new(4.0, 2.0, 2.0, 3.0))?;
    /// assert!((g.log_det_covariance() - 8f64.ln()).abs() < 1e-12); // det = 12 − 4
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn log_det_covariance(&self) -> f64 {
        self.log_det_cov
    }

    /// The smallest and largest eigenvalue of `Σ`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Gaussian;
    /// use nalgebra::{Matrix2, Vector2};
    ///
    /// // eigenvalues of [[2, 1], [1, 2]] are 1 and 3
    /// let g = Gaussian::new(Vector2::zeros(), Matrix2::new(2.0, 1.0, 1.0, 2.0))?;
    /// let (lo, hi) = g.covariance_eigen_range();
    /// assert!((lo - 1.0).abs() < 1e-12 && (hi - 3.0).abs() < 1e-12);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn covariance_eigen_range(&self) -> (f64, f64) {
        (self.eig_min, self.eig_max)
    }

    fn same_dim(&self, other: &Self) -> Result<()> {
        if self.dim_value() == other.dim_value() {
            Ok(())
        } else {
            Err(Error::DimensionMismatch {
                name: "other",
                expected: self.dim_value(),
                found: other.dim_value(),
            })
        }
    }

    /// `Σ⁻¹ m`.
    pub(crate) fn precision_mean(&self) -> &OVector<f64, D> {
        &self.precision_mean
    }

    /// `(x − m)ᵀ Σ⁻¹ (x − m)`, without allocating.
    pub(crate) fn mahalanobis_sq(&self, x: &OVector<f64, D>) -> f64 {
        let p = &self.precision;
        if let Some((pd, _)) = &self.diagonal {
            let (xs, ms, ps) = (x.as_slice(), self.mean.as_slice(), pd.as_slice());
            return xs
                .iter()
                .zip(ms)
                .zip(ps)
                .map(|((a, m), q)| q * (a - m) * (a - m))
                .sum();
        }
        let mut q = 0.0;
        for j in 0..x.len() {
            q += (x[j] - self.mean[j]) * (p.column(j).dot(x) - self.precision_mean[j]);
        }
        q
    }

    /// The normalised log density `log N(x; m, Σ)`.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if `x` has the wrong length.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector2;
    ///
    /// let g = Gaussian::standard(nalgebra::Const::<2>);
    /// // log N(0; 0, I₂) = −log 2π
    /// let at_mean = g.log_density(&Vector2::zeros())?;
    /// assert!((at_mean + (2.0 * std::f64::consts::PI).ln()).abs() < 1e-12);
    /// assert!((g.log_density(&Vector2::new(1.0, 0.0))? - (at_mean - 0.5)).abs() < 1e-12);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn log_density(&self, x: &OVector<f64, D>) -> Result<f64> {
        check_len("x", self.mean.shape_generic().0, x)?;
        let d = self.dim_value() as f64;
        Ok(-0.5 * (d * LN_2PI + self.log_det_cov + self.mahalanobis_sq(x)))
    }

    /// The differential entropy `½ d (1 + ln 2π) + ½ log det Σ`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Gaussian;
    ///
    /// // one dimension: ½ ln(2πe σ²)
    /// let g = Gaussian::isotropic(nalgebra::Vector1::new(0.0), 4.0)?;
    /// let expected = 0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E * 4.0).ln();
    /// assert!((g.entropy() - expected).abs() < 1e-12);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn entropy(&self) -> f64 {
        0.5 * (self.dim_value() as f64 * (1.0 + LN_2PI) + self.log_det_cov)
    }

    /// `KL(self ‖ other) = ½[tr(AΣ) − d − log det(AΣ) + (m − m*)ᵀA(m − m*)]`, `A` = other's precision.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if the dimensions differ.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, potential::Gaussian};
    /// use nalgebra::{DVector, Vector2};
    ///
    /// let p = Gaussian::isotropic(Vector2::new(1.0, 0.0), 1.0)?;
    /// let q = Gaussian::standard(nalgebra::Const::<2>);
    /// assert!((p.kl(&q)? - 0.5).abs() < 1e-12); // ½‖m‖²
    /// assert!(p.kl(&p)?.abs() < 1e-15);
    /// let a = Gaussian::isotropic(DVector::zeros(2), 1.0)?;
    /// let b = Gaussian::isotropic(DVector::zeros(3), 1.0)?;
    /// assert!(matches!(a.kl(&b), Err(Error::DimensionMismatch { .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn kl(&self, other: &Self) -> Result<f64> {
        self.same_dim(other)?;
        let a = &other.precision;
        let tr = a.component_mul(&self.cov).sum();
        let dm = &self.mean - &other.mean;
        let quad = dm.dot(&(a * &dm));
        let d = self.dim_value() as f64;
        Ok(0.5 * (tr - d + other.log_det_cov - self.log_det_cov + quad))
    }

    /// The squared 2-Wasserstein distance (Bures–Wasserstein):
    /// `‖m₁ − m₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₂^{½} Σ₁ Σ₂^{½})^{½})`.
    ///
    /// Square roots go through symmetric eigendecompositions with clamped eigenvalues.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if the dimensions differ.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector2;
    ///
    /// // W₂²(N(m, I), N(0, 4I)) = ‖m‖² + d (2 − 1)² in d = 2
    /// let p = Gaussian::isotropic(Vector2::new(3.0, 0.0), 1.0)?;
    /// let q = Gaussian::isotropic(Vector2::zeros(), 4.0)?;
    /// assert!((p.w2_squared(&q)? - (9.0 + 2.0)).abs() < 1e-10);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn w2_squared(&self, other: &Self) -> Result<f64> {
        self.same_dim(other)?;
        let r2 = sym_sqrt(&other.cov);
        let mid = sym_sqrt(&symmetrize(&(&r2 * &self.cov * &r2)));
        let cross = self.cov.trace() + other.cov.trace() - 2.0 * mid.trace();
        Ok((&self.mean - &other.mean).norm_squared() + cross.max(0.0))
    }

    /// The 2-Wasserstein distance, `sqrt` of [`w2_squared`](Gaussian::w2_squared).
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if the dimensions differ.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector2;
    ///
    /// // equal covariances: W₂ is the distance between the means
    /// let p = Gaussian::isotropic(Vector2::new(3.0, 4.0), 2.0)?;
    /// let q = Gaussian::isotropic(Vector2::zeros(), 2.0)?;
    /// assert!((p.w2(&q)? - 5.0).abs() < 1e-10);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn w2(&self, other: &Self) -> Result<f64> {
        self.w2_squared(other).map(f64::sqrt)
    }

    /// The relative Fisher information `FI(self ‖ other) = E_self ‖∇log(self/other)‖²`
    /// `= tr(AΣA) − 2 tr A + tr Σ⁻¹ + ‖A(m − m*)‖²`, `A` = other's precision.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if the dimensions differ.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector2;
    ///
    /// let q = Gaussian::standard(nalgebra::Const::<2>);
    /// assert!(q.relative_fisher(&q)?.abs() < 1e-12);
    /// // N(m, I) against N(0, I): the score difference is the constant −m
    /// let p = Gaussian::isotropic(Vector2::new(1.0, 2.0), 1.0)?;
    /// assert!((p.relative_fisher(&q)? - 5.0).abs() < 1e-12);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn relative_fisher(&self, other: &Self) -> Result<f64> {
        self.same_dim(other)?;
        let a = &other.precision;
        let asa = (a * &self.cov).component_mul(a).sum(); // tr(AΣA) = Σ_ij (AΣ)_ij A_ji
        let dm = a * (&self.mean - &other.mean);
        Ok(asa - 2.0 * a.trace() + self.precision.trace() + dm.norm_squared())
    }

    /// Writes a draw `m + Lz`, `z ~ N(0, I)`, into `out`, without allocating.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Gaussian;
    /// use nalgebra::SVector;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let g = Gaussian::isotropic(SVector::<f64, 3>::repeat(5.0), 1e-6)?;
    /// let mut x = SVector::zeros();
    /// g.sample_into(&mut x, &mut ChaCha8Rng::seed_from_u64(7));
    /// assert!((x - g.mean()).amax() < 0.01);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn sample_into<R: Rng + ?Sized>(&self, out: &mut OVector<f64, D>, rng: &mut R) {
        fill_standard_normal(out, rng);
        let n = out.len();
        if let Some((_, ld)) = &self.diagonal {
            for ((o, m), l) in out.iter_mut().zip(self.mean.iter()).zip(ld.iter()) {
                *o = m + l * *o;
            }
            return;
        }
        // out ← L·out in place: row i only reads z_j for j ≤ i, so go from the last row up.
        for i in (0..n).rev() {
            let mut s = 0.0;
            for j in 0..=i {
                s += self.chol[(i, j)] * out[j];
            }
            out[i] = s + self.mean[i];
        }
    }
}

/// Checks that the matrix argument `name` is `d × d`, reporting the first wrong side.
fn check_square<D: Dim>(name: &'static str, d: usize, m: &OMatrix<f64, D, D>) -> Result<()>
where
    DefaultAllocator: Alloc<D>,
{
    match m.shape() {
        (r, _) if r != d => Err(Error::DimensionMismatch {
            name,
            expected: d,
            found: r,
        }),
        (_, c) if c != d => Err(Error::DimensionMismatch {
            name,
            expected: d,
            found: c,
        }),
        _ => Ok(()),
    }
}

impl<D: Dim> Distribution<OVector<f64, D>> for Gaussian<D>
where
    DefaultAllocator: Alloc<D>,
{
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> OVector<f64, D> {
        let mut out = self.mean.clone();
        self.sample_into(&mut out, rng);
        out
    }
}

impl<D: Dim> Potential for Gaussian<D>
where
    DefaultAllocator: Alloc<D>,
{
    type Dim = D;

    fn dim(&self) -> D {
        self.mean.shape_generic().0
    }

    fn energy(&self, x: &OVector<f64, D>) -> f64
    where
        DefaultAllocator: Allocator<D>,
    {
        0.5 * self.mahalanobis_sq(x)
    }

    fn energy_grad(&self, x: &OVector<f64, D>, grad: &mut OVector<f64, D>) -> f64
    where
        DefaultAllocator: Allocator<D>,
    {
        if let Some((pd, _)) = &self.diagonal {
            // O(d) instead of O(d²): the common isotropic / anisotropic-diagonal case.
            let mut u = 0.0;
            let (xs, ms, ps) = (x.as_slice(), self.mean.as_slice(), pd.as_slice());
            for (((g, a), m), q) in grad.as_mut_slice().iter_mut().zip(xs).zip(ms).zip(ps) {
                let r = a - m;
                *g = q * r;
                u += r * *g;
            }
            return 0.5 * u;
        }
        grad.gemv(1.0, &self.precision, x, 0.0);
        *grad -= &self.precision_mean;
        0.5 * (x.dot(grad) - self.mean.dot(grad))
    }

    fn smoothness(&self) -> Option<f64> {
        Some(1.0 / self.eig_min)
    }

    fn strong_convexity(&self) -> Option<f64> {
        Some(1.0 / self.eig_max)
    }
}

impl<D: Dim> PotentialHessian for Gaussian<D>
where
    DefaultAllocator: Alloc<D>,
{
    fn hessian(&self, _x: &OVector<f64, D>, hess: &mut OMatrix<f64, D, D>)
    where
        DefaultAllocator: Allocator<D> + Allocator<D, D>,
    {
        hess.copy_from(&self.precision);
    }
}

impl crate::potential::BatchPotential for Gaussian<nalgebra::Dyn> {
    /// Diagonal covariance: the single-point arithmetic of [`Potential::energy_grad`] on each
    /// column in place (bit for bit the same); otherwise one column at a time.
    fn energy_grad_columns(
        &self,
        x: nalgebra::DMatrixView<'_, f64>,
        mut grad: nalgebra::DMatrixViewMut<'_, f64>,
        energy: &mut [f64],
        work: &mut crate::potential::BatchWorkspace,
    ) {
        let Some((pd, _)) = &self.diagonal else {
            return crate::potential::column_loop(self, x, grad, energy, work);
        };
        crate::potential::check_batch_shapes(pd.len(), &x, &grad, Some(energy));
        let (ms, ps) = (self.mean.as_slice(), pd.as_slice());
        for (c, e) in energy.iter_mut().enumerate() {
            let mut u = 0.0;
            let (xc, mut gc) = (x.column(c), grad.column_mut(c));
            let (xs, gs) = (xc.as_slice(), gc.as_mut_slice());
            for (((g, a), m), q) in gs.iter_mut().zip(xs).zip(ms).zip(ps) {
                let r = a - m;
                *g = q * r;
                u += r * *g;
            }
            *e = 0.5 * u;
        }
    }

    /// Diagonal covariance: `∇U = Σ⁻¹(x − μ)` on each column in place, no energies.
    fn grad_columns(
        &self,
        x: nalgebra::DMatrixView<'_, f64>,
        mut grad: nalgebra::DMatrixViewMut<'_, f64>,
        work: &mut crate::potential::BatchWorkspace,
    ) {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let Some((pd, _)) = &self.diagonal else {
                    return crate::potential::grad_via_energy(self, x, grad, work);
                };
                crate::potential::check_batch_shapes(pd.len(), &x, &grad, None);
                let (ms, ps) = (self.mean.as_slice(), pd.as_slice());
                for c in 0..x.ncols() {
                    let (xc, mut gc) = (x.column(c), grad.column_mut(c));
                    let (xs, gs) = (xc.as_slice(), gc.as_mut_slice());
                    for (((g, a), m), q) in gs.iter_mut().zip(xs).zip(ms).zip(ps) {
                        *g = q * (a - m);
                    }
                }
            },
        )
    }
}
