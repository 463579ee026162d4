//! Bayesian logistic regression.

use nalgebra::allocator::Allocator;
use nalgebra::{DMatrix, DefaultAllocator, Dim, OMatrix, OVector};

use crate::error::{Error, Result, finite_input, positive};
use crate::linalg::sym_eigenvalues;
use crate::potential::{Potential, PotentialHessian};

/// `log(1 + e^η)` without overflow.
pub(crate) fn softplus(eta: f64) -> f64 {
    eta.max(0.0) + (-eta.abs()).exp().ln_1p()
}

/// The logistic function `1/(1 + e^{−η})`, stable for both signs.
pub(crate) fn sigmoid(eta: f64) -> f64 {
    if eta >= 0.0 {
        1.0 / (1.0 + (-eta).exp())
    } else {
        let e = eta.exp();
        e / (1.0 + e)
    }
}

/// The posterior of Bayesian logistic regression with prior `w ~ N(0, σ²I)`:
/// `U(w) = Σ_n [log(1 + e^{η_n}) − y_n η_n] + ‖w‖²/(2σ²)`, `η = Aw`,
/// `∇U = Aᵀ(logistic(η) − y) + w/σ²`.
///
/// The data are stored observation-major (each row of `A` contiguous), so energy and gradient
/// stream through the data once, allocate nothing and cost O(nd). Labels may be any values in
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
    rows: Vec<f64>,
    labels: Vec<f64>,
    prior_precision: f64,
    smoothness: f64,
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
        let rows = features.transpose().as_slice().to_vec();
        let gram = features.transpose() * features;
        let lmax = sym_eigenvalues(&gram)
            .last()
            .copied()
            .unwrap_or(0.0)
            .max(0.0);
        Ok(Self {
            dim,
            rows,
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

    fn observations(&self) -> impl Iterator<Item = (&[f64], f64)> {
        self.rows
            .chunks_exact(self.dim.value())
            .zip(self.labels.iter().copied())
    }
}

use crate::dim::dot;

/// `(log(1 + e^η), 1/(1 + e^{−η}))` from a single `exp(−|η|)`.
fn softplus_sigmoid(eta: f64) -> (f64, f64) {
    let e = (-eta.abs()).exp();
    let sp = eta.max(0.0) + e.ln_1p();
    let sig = if eta >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    };
    (sp, sig)
}

impl<D: Dim> Potential for LogisticRegression<D> {
    type Dim = D;

    fn dim(&self) -> D {
        self.dim
    }

    fn energy(&self, w: &OVector<f64, D>) -> f64
    where
        DefaultAllocator: Allocator<D>,
    {
        let ws = w.as_slice();
        let lik: f64 = self
            .observations()
            .map(|(a, y)| {
                let eta = dot(a, ws);
                softplus(eta) - y * eta
            })
            .sum();
        lik + 0.5 * self.prior_precision * w.norm_squared()
    }

    fn energy_grad(&self, w: &OVector<f64, D>, grad: &mut OVector<f64, D>) -> f64
    where
        DefaultAllocator: Allocator<D>,
    {
        grad.copy_from(w);
        *grad *= self.prior_precision;
        let mut u = 0.5 * self.prior_precision * w.norm_squared();
        let ws = w.as_slice();
        let gs = grad.as_mut_slice();
        for (a, y) in self.observations() {
            let eta = dot(a, ws);
            let (sp, sig) = softplus_sigmoid(eta);
            u += sp - y * eta;
            let c = sig - y;
            for (g, ai) in gs.iter_mut().zip(a) {
                *g += c * ai;
            }
        }
        u
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
        let ws = w.as_slice();
        for (a, _) in self.observations() {
            let s = sigmoid(dot(a, ws));
            let c = s * (1.0 - s);
            for (j, aj) in a.iter().enumerate() {
                let caj = c * aj;
                for (i, ai) in a.iter().enumerate() {
                    hess[(i, j)] += caj * ai;
                }
            }
        }
    }
}
