//! Bayesian logistic regression.

use nalgebra::allocator::Allocator;
use nalgebra::{
    DMatrix, DMatrixView, DMatrixViewMut, DefaultAllocator, Dim, Dyn, OMatrix, OVector,
};

use crate::error::{Error, Result, finite_input, positive};
use crate::fastmath;
use crate::linalg::sym_eigenvalues;
use crate::potential::{BatchPotential, BatchWorkspace, Potential, PotentialHessian};

/// Observations per block of the blocked evaluation: `η` for the block, then the
/// transcendental pass, then the gradient accumulation, each a vectorised loop.
const BLOCK: usize = 64;

/// `(log(1 + e^η), 1/(1 + e^{−η}))` from a single `exp(−|η|)`, branch free (vectorises).
#[inline(always)]
fn softplus_sigmoid(eta: f64) -> (f64, f64) {
    // The Estrin-scheme variants: short dependency chains, so that the many independent
    // evaluations of a block overlap in the out-of-order window.
    let e = fastmath::exp_ilp(-eta.abs());
    let u = 1.0 + e;
    let inv = 1.0 / u;
    let sp = eta.max(0.0) + fastmath::ln_1p_with_ilp(e, u, inv);
    let sig = if eta >= 0.0 { inv } else { e * inv };
    (sp, sig)
}

/// The logistic function `1/(1 + e^{−η})` from `exp(−|η|)`, branch free (the sigmoid half of
/// [`softplus_sigmoid`], bit for bit).
#[inline(always)]
fn sigmoid(eta: f64) -> f64 {
    let e = fastmath::exp_ilp(-eta.abs());
    let inv = 1.0 / (1.0 + e);
    if eta >= 0.0 { inv } else { e * inv }
}

/// The posterior of Bayesian logistic regression with prior `w ~ N(0, σ²I)`:
/// `U(w) = Σ_n [log(1 + e^{η_n}) − y_n η_n] + ‖w‖²/(2σ²)`, `η = Aw`,
/// `∇U = Aᵀ(logistic(η) − y) + w/σ²`.
///
/// The design matrix is stored column-major; energy and gradient run over blocks of
/// observations (`η = A_B w` for the block, one shared `exp(−|η|)` per observation for
/// `softplus` and the logistic function, then `∇ += A_Bᵀ r`), allocate nothing and cost O(nd).
/// Many points at once ([`BatchPotential`]) cost two matrix products `AW` and `AᵀR`. Labels may be any values in
/// `[0, 1]` (fractional labels give a tempered likelihood). Smoothness `L = λ_max(AᵀA)/4 + 1/σ²`
/// and strong convexity `α = 1/σ²` are computed at construction.
///
/// # Example
///
/// ```
/// use klflow::potential::{LogisticRegression, Potential};
/// use nalgebra::{DMatrix, DVector};
///
/// let a = DMatrix::from_row_slice(3, 2, &[1.0, 0.5, -1.0, 0.2, 0.3, -0.7]);
/// let post = LogisticRegression::new(nalgebra::Dyn(2), &a, &[1.0, 0.0, 1.0], 1.0)?;
/// // At w = 0 every η is 0: U = 3 log 2.
/// assert!((post.energy(&DVector::zeros(2)) - 3.0 * 2f64.ln()).abs() < 1e-15);
/// assert!(post.smoothness().unwrap() > 1.0);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LogisticRegression<D> {
    dim: D,
    /// The design matrix `A` (n × d, column-major).
    design: DMatrix<f64>,
    /// `Aᵀ` (d × n), for the batched gradient `AᵀR`. A copy rather than a strided view of
    /// `design`: nalgebra 0.35's `gemm` mis-sizes row-strided operands (dimforge/nalgebra
    /// PR #1613) and crashed here with a transposed view.
    design_t: DMatrix<f64>,
    labels: Vec<f64>,
    prior_precision: f64,
    smoothness: f64,
}

/// Overwrites `eta` with the residuals `logistic(η) − y` and returns `Σ softplus(η) − yη`
/// (`lik` is scratch of the same length). Separate loops without loop-carried state, so that
/// each vectorises.
#[inline(always)]
fn transcendental_pass(eta: &mut [f64], y: &[f64], lik: &mut [f64]) -> f64 {
    for ((e, l), &yi) in eta.iter_mut().zip(lik.iter_mut()).zip(y) {
        let (sp, sig) = softplus_sigmoid(*e);
        *l = sp - yi * *e;
        *e = sig - yi;
    }
    let mut acc = [0.0f64; 8];
    let chunks = lik.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for v in rest {
        s += v;
    }
    s
}

impl<D: Dim> LogisticRegression<D> {
    /// The posterior for design matrix `features` (n × d, one observation per row), `labels`
    /// in `[0, 1]`, and prior variance `prior_variance`.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] for no observations; [`Error::DimensionMismatch`] if `features` does
    /// not have `d` columns or `labels` has the wrong length, or naming `dim` if `d = 0`; [`Error::NonFiniteInput`] for
    /// non-finite features; [`Error::InvalidParameter`] for a label outside `[0, 1]` or a
    /// non-positive prior variance.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, Potential, potential::LogisticRegression};
    /// use nalgebra::{DMatrix, Dyn};
    ///
    /// // L = λ_max(AᵀA)/4 + 1/σ² = 4/4 + 2; α = 1/σ² = 2.
    /// let a = DMatrix::from_row_slice(2, 2, &[2.0, 0.0, 0.0, 1.0]);
    /// let post = LogisticRegression::new(Dyn(2), &a, &[1.0, 0.0], 0.5)?;
    /// assert!((post.smoothness().unwrap() - 3.0).abs() < 1e-12);
    /// assert_eq!(post.strong_convexity(), Some(2.0));
    /// assert!(matches!(
    ///     LogisticRegression::new(Dyn(2), &a, &[1.5, 0.0], 0.5),
    ///     Err(Error::InvalidParameter { name: "labels", .. })
    /// ));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(
        dim: D,
        features: &DMatrix<f64>,
        labels: &[f64],
        prior_variance: f64,
    ) -> Result<Self> {
        let (n, d) = features.shape();
        if dim.value() == 0 {
            return Err(Error::DimensionMismatch {
                name: "dim",
                expected: 1,
                found: 0,
            });
        }
        if n == 0 {
            return Err(Error::Empty { name: "features" });
        }
        if d != dim.value() {
            return Err(Error::DimensionMismatch {
                name: "features",
                expected: dim.value(),
                found: d,
            });
        }
        if labels.len() != n {
            return Err(Error::DimensionMismatch {
                name: "labels",
                expected: n,
                found: labels.len(),
            });
        }
        finite_input("features", features.as_slice())?;
        if let Some(&y) = labels.iter().find(|y| !(0.0..=1.0).contains(*y)) {
            return Err(Error::InvalidParameter {
                name: "labels",
                value: y,
                reason: "must lie in [0, 1]",
            });
        }
        positive("prior_variance", prior_variance)?;
        let gram = features.transpose() * features;
        let lmax = sym_eigenvalues(&gram)
            .last()
            .copied()
            .unwrap_or(0.0)
            .max(0.0);
        Ok(Self {
            dim,
            design: features.clone(),
            design_t: features.transpose(),
            labels: labels.to_vec(),
            prior_precision: 1.0 / prior_variance,
            smoothness: 0.25 * lmax + 1.0 / prior_variance,
        })
    }

    /// The number of observations.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::LogisticRegression;
    /// use nalgebra::{DMatrix, Dyn};
    ///
    /// let a = DMatrix::from_row_slice(3, 1, &[1.0, -1.0, 0.5]);
    /// assert_eq!(LogisticRegression::new(Dyn(1), &a, &[1.0, 0.0, 1.0], 1.0)?.len(), 3);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// `false`: a posterior always has observations (kept for the `len` convention).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, potential::LogisticRegression};
    /// use nalgebra::{DMatrix, Dyn};
    ///
    /// let a = DMatrix::from_row_slice(1, 1, &[1.0]);
    /// assert!(!LogisticRegression::new(Dyn(1), &a, &[1.0], 1.0)?.is_empty());
    /// // No observations is an error, so a posterior is never empty.
    /// let none = DMatrix::<f64>::zeros(0, 1);
    /// assert!(matches!(LogisticRegression::new(Dyn(1), &none, &[], 1.0), Err(Error::Empty { .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Blocked pass over the observations at `w`: returns the likelihood part of `U` and, if
    /// `grad` is given, adds `Aᵀ(logistic(η) − y)` to it.
    fn likelihood_pass(&self, ws: &[f64], mut grad: Option<&mut [f64]>) -> f64 {
        let n = self.labels.len();
        let a = self.design.as_slice();
        let mut u = 0.0;
        let mut eta = [0.0f64; BLOCK];
        let mut lik = [0.0f64; BLOCK];
        let mut start = 0;
        while start < n {
            let m = BLOCK.min(n - start);
            let eta = &mut eta[..m];
            eta.fill(0.0);
            for (j, &wj) in ws.iter().enumerate() {
                let col = &a[j * n + start..j * n + start + m];
                for (e, &aij) in eta.iter_mut().zip(col) {
                    *e += aij * wj;
                }
            }
            u += transcendental_pass(eta, &self.labels[start..start + m], &mut lik[..m]);
            if let Some(g) = grad.as_deref_mut() {
                for (j, gj) in g.iter_mut().enumerate() {
                    *gj += dot(&a[j * n + start..j * n + start + m], eta);
                }
            }
            start += m;
        }
        u
    }
}

use crate::dim::dot;

impl<D: Dim> Potential for LogisticRegression<D> {
    type Dim = D;

    fn dim(&self) -> D {
        self.dim
    }

    fn energy(&self, w: &OVector<f64, D>) -> f64
    where
        DefaultAllocator: Allocator<D>,
    {
        self.likelihood_pass(w.as_slice(), None) + 0.5 * self.prior_precision * w.norm_squared()
    }

    fn energy_grad(&self, w: &OVector<f64, D>, grad: &mut OVector<f64, D>) -> f64
    where
        DefaultAllocator: Allocator<D>,
    {
        grad.copy_from(w);
        *grad *= self.prior_precision;
        let u = 0.5 * self.prior_precision * w.norm_squared();
        u + self.likelihood_pass(w.as_slice(), Some(grad.as_mut_slice()))
    }

    fn smoothness(&self) -> Option<f64> {
        Some(self.smoothness)
    }

    fn strong_convexity(&self) -> Option<f64> {
        Some(self.prior_precision)
    }
}

impl<D: Dim> PotentialHessian for LogisticRegression<D> {
    fn hessian(&self, w: &OVector<f64, D>, hess: &mut OMatrix<f64, D, D>)
    where
        DefaultAllocator: Allocator<D> + Allocator<D, D>,
    {
        hess.fill_with_identity();
        *hess *= self.prior_precision;
        let n = self.labels.len();
        let d = self.dim.value();
        let a = &self.design;
        let ws = w.as_slice();
        for r in 0..n {
            let eta: f64 = (0..d).map(|j| a[(r, j)] * ws[j]).sum();
            let (_, s) = softplus_sigmoid(eta);
            let c = s * (1.0 - s);
            for j in 0..d {
                let caj = c * a[(r, j)];
                for i in 0..d {
                    hess[(i, j)] += caj * a[(r, i)];
                }
            }
        }
    }
}

impl LogisticRegression<Dyn> {
    /// `η = AX` (n × C) in the workspace buffer; checks the shapes.
    fn batch_eta<'w>(
        &self,
        x: &DMatrixView<'_, f64>,
        grad: &DMatrixViewMut<'_, f64>,
        energy: Option<&[f64]>,
        work: &'w mut BatchWorkspace,
    ) -> DMatrixViewMut<'w, f64> {
        let (n, d) = self.design.shape();
        crate::potential::check_batch_shapes(d, x, grad, energy);
        let buf = work.buffer(n * x.ncols());
        let mut eta = DMatrixViewMut::from_slice(buf, n, x.ncols());
        eta.gemm(1.0, &self.design, x, 0.0);
        eta
    }
}

impl BatchPotential for LogisticRegression<Dyn> {
    /// Two matrix products: `η = AX` (n × C) in the workspace, the transcendental pass over
    /// it, and `∇ = AᵀR + X/σ²`.
    fn energy_grad_columns(
        &self,
        x: DMatrixView<'_, f64>,
        mut grad: DMatrixViewMut<'_, f64>,
        energy: &mut [f64],
        work: &mut BatchWorkspace,
    ) {
        let mut lik = [0.0f64; BLOCK];
        let mut eta = self.batch_eta(&x, &grad, Some(energy), work);
        for ((mut col, e), xc) in eta
            .column_iter_mut()
            .zip(energy.iter_mut())
            .zip(x.column_iter())
        {
            let mut lik_sum = 0.0;
            for (block, y) in col
                .as_mut_slice()
                .chunks_mut(BLOCK)
                .zip(self.labels.chunks(BLOCK))
            {
                lik_sum += transcendental_pass(block, y, &mut lik[..block.len()]);
            }
            *e = lik_sum + 0.5 * self.prior_precision * xc.norm_squared();
        }
        grad.copy_from(&x);
        grad *= self.prior_precision;
        grad.gemm(1.0, &self.design_t, &eta, 1.0);
    }

    /// The gradient alone: `η = AX`, `R = logistic(η) − y` (one `exp` and one division per
    /// entry, no softplus), `∇ = AᵀR + X/σ²`. Equals the gradient of
    /// [`energy_grad_columns`](BatchPotential::energy_grad_columns) bit for bit.
    fn grad_columns(
        &self,
        x: DMatrixView<'_, f64>,
        mut grad: DMatrixViewMut<'_, f64>,
        work: &mut BatchWorkspace,
    ) {
        let mut eta = self.batch_eta(&x, &grad, None, work);
        for mut col in eta.column_iter_mut() {
            for (e, &y) in col.as_mut_slice().iter_mut().zip(&self.labels) {
                *e = sigmoid(*e) - y;
            }
        }
        grad.copy_from(&x);
        grad *= self.prior_precision;
        grad.gemm(1.0, &self.design_t, &eta, 1.0);
    }
}
