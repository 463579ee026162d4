//! A non-log-concave double well.

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, Dim, OMatrix, OVector};
use rand::{Rng, RngExt};

use crate::error::{Error, Result};
use crate::potential::{Potential, PotentialHessian};

/// `log cosh z`, stable for large `|z|`.
pub(crate) fn log_cosh(z: f64) -> f64 {
    let a = z.abs();
    a + (-2.0 * a).exp().ln_1p() - std::f64::consts::LN_2
}

/// The double well `U(x) = ‖x‖²/2 − log cosh(a x₁)`.
///
/// Since `e^{−x²/2} cosh(ax) ∝ e^{−(x−a)²/2} + e^{−(x+a)²/2}`, the target is exactly
/// `x₁ ~ ½N(a, 1) + ½N(−a, 1)` with the other coordinates standard normal. The Hessian's
/// eigenvalue along `x₁` ranges over `[1 − a², 1]`: for `a > 1` the potential is not convex.
/// Smoothness `L = max(1, a² − 1)`; `a = 2` gives the target of the averaged-LMC tests (L = 3).
///
/// # Example
///
/// ```
/// use klflow::potential::{DoubleWell, Potential};
///
/// let w = DoubleWell::new(nalgebra::Const::<1>, 2.0)?;
/// assert_eq!(w.smoothness(), Some(3.0));
/// assert_eq!(w.strong_convexity(), None);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DoubleWell<D> {
    dim: D,
    a: f64,
}

impl<D: Dim> DoubleWell<D> {
    /// The double well with modes at `x₁ = ±a`.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] naming `dim` if `d = 0`; [`Error::InvalidParameter`]
    /// naming `a` unless it is finite and ≥ 0.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, potential::{DoubleWell, Potential}};
    ///
    /// // a = 0 is the standard normal
    /// let w = DoubleWell::new(nalgebra::Const::<1>, 0.0)?;
    /// assert_eq!(w.energy(&nalgebra::Vector1::new(2.0)), 2.0);
    /// assert!(matches!(
    ///     DoubleWell::new(nalgebra::Const::<1>, -1.0),
    ///     Err(Error::InvalidParameter { name: "a", .. })
    /// ));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(dim: D, a: f64) -> Result<Self> {
        if dim.value() == 0 {
            return Err(Error::DimensionMismatch {
                name: "dim",
                expected: 1,
                found: 0,
            });
        }
        if !(a.is_finite() && a >= 0.0) {
            return Err(Error::InvalidParameter {
                name: "a",
                value: a,
                reason: "must be finite and >= 0",
            });
        }
        Ok(Self { dim, a })
    }

    /// The mode separation parameter `a`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::DoubleWell;
    ///
    /// assert_eq!(DoubleWell::new(nalgebra::Dyn(4), 2.5)?.a(), 2.5);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn a(&self) -> f64 {
        self.a
    }

    /// Writes an exact draw into `out`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::DoubleWell;
    /// use nalgebra::Vector2;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let w = DoubleWell::new(nalgebra::Const::<2>, 2.0)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(3);
    /// let (n, mut right) = (10_000, 0);
    /// let mut x = Vector2::zeros();
    /// for _ in 0..n {
    ///     w.sample_into(&mut x, &mut rng);
    ///     right += usize::from(x[0] > 0.0);
    /// }
    /// // by symmetry half the draws are in the right well; standard error √(¼ / n) = 0.005
    /// assert!((right as f64 / n as f64 - 0.5).abs() < 5.0 * 0.005);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn sample_into<R: Rng + ?Sized>(&self, out: &mut OVector<f64, D>, rng: &mut R)
    where
        DefaultAllocator: Allocator<D>,
    {
        crate::dim::fill_standard_normal(out, rng);
        out[0] += if rng.random::<bool>() {
            self.a
        } else {
            -self.a
        };
    }
}

impl<D: Dim> Potential for DoubleWell<D> {
    type Dim = D;

    fn dim(&self) -> D {
        self.dim
    }

    fn energy(&self, x: &OVector<f64, D>) -> f64
    where
        DefaultAllocator: Allocator<D>,
    {
        0.5 * x.norm_squared() - log_cosh(self.a * x[0])
    }

    fn energy_grad(&self, x: &OVector<f64, D>, grad: &mut OVector<f64, D>) -> f64
    where
        DefaultAllocator: Allocator<D>,
    {
        grad.copy_from(x);
        grad[0] -= self.a * (self.a * x[0]).tanh();
        0.5 * x.norm_squared() - log_cosh(self.a * x[0])
    }

    fn smoothness(&self) -> Option<f64> {
        Some((self.a * self.a - 1.0).max(1.0))
    }

    fn strong_convexity(&self) -> Option<f64> {
        (self.a < 1.0).then_some(1.0 - self.a * self.a)
    }
}

impl<D: Dim> PotentialHessian for DoubleWell<D> {
    fn hessian(&self, x: &OVector<f64, D>, hess: &mut OMatrix<f64, D, D>)
    where
        DefaultAllocator: Allocator<D> + Allocator<D, D>,
    {
        let t = (self.a * x[0]).tanh();
        hess.fill_with_identity();
        hess[(0, 0)] = 1.0 - self.a * self.a * (1.0 - t * t);
    }
}
