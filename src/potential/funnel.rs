//! Neal's funnel.

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, Dim, OMatrix, OVector};
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;

use crate::error::{Error, Result, positive};
use crate::potential::{Potential, PotentialHessian};

/// Neal's funnel in `d ≥ 2` dimensions: `v = x₁ ~ N(0, σ²)`, `x_i | v ~ N(0, e^v)` for `i ≥ 2`:
/// `U(x) = v²/(2σ²) + ½e^{−v} Σ_{i≥2} x_i² + (d − 1)v/2`.
///
/// The scale of the `x_i` changes by orders of magnitude along `v` (σ = 3 is Neal's choice), so
/// no single step size fits: the standard hard case for gradient samplers. Exact draws by
/// [`Funnel::sample_into`].
///
/// # Example
///
/// ```
/// use klflow::potential::{Funnel, Potential};
/// use nalgebra::SVector;
///
/// let f = Funnel::new(nalgebra::Const::<3>, 3.0)?;
/// assert_eq!(f.energy(&nalgebra::Vector3::new(0.0, 1.0, 1.0)), 1.0);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Funnel<D> {
    dim: D,
    sigma: f64,
}

impl<D: Dim> Funnel<D> {
    /// The funnel with neck scale `sigma` (Neal: 3).
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] naming `dim` if `d < 2`; [`Error::InvalidParameter`] if
    /// `sigma` is not finite and positive.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, potential::Funnel};
    ///
    /// assert!(Funnel::new(nalgebra::Dyn(10), 3.0).is_ok());
    /// let err = Funnel::new(nalgebra::Dyn(1), 3.0).unwrap_err();
    /// assert_eq!(err, Error::DimensionMismatch { name: "dim", expected: 2, found: 1 });
    /// assert!(matches!(Funnel::new(nalgebra::Dyn(2), -3.0), Err(Error::InvalidParameter { name: "sigma", .. })));
    /// ```
    pub fn new(dim: D, sigma: f64) -> Result<Self> {
        if dim.value() < 2 {
            return Err(Error::DimensionMismatch {
                name: "dim",
                expected: 2,
                found: dim.value(),
            });
        }
        positive("sigma", sigma)?;
        Ok(Self { dim, sigma })
    }

    /// Writes an exact draw into `out`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Funnel;
    /// use nalgebra::Vector3;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let f = Funnel::new(nalgebra::Const::<3>, 3.0)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(2);
    /// let (n, mut sum_v2) = (20_000, 0.0);
    /// let mut x = Vector3::zeros();
    /// for _ in 0..n {
    ///     f.sample_into(&mut x, &mut rng);
    ///     sum_v2 += x[0] * x[0];
    /// }
    /// // E v² = σ² = 9; Var v² = 2σ⁴ = 162, so the standard error is √(162 / n) ≈ 0.09
    /// assert!((sum_v2 / n as f64 - 9.0).abs() < 5.0 * (162.0 / n as f64).sqrt());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn sample_into<R: Rng + ?Sized>(&self, out: &mut OVector<f64, D>, rng: &mut R)
    where
        DefaultAllocator: Allocator<D>,
    {
        let v = self.sigma * rng.sample::<f64, _>(StandardNormal);
        crate::dim::fill_standard_normal(out, rng);
        let s = (0.5 * v).exp();
        out.iter_mut().skip(1).for_each(|x| *x *= s);
        out[0] = v;
    }
}

impl<D: Dim> Potential for Funnel<D> {
    type Dim = D;

    fn dim(&self) -> D {
        self.dim
    }

    fn energy(&self, x: &OVector<f64, D>) -> f64
    where
        DefaultAllocator: Allocator<D>,
    {
        let v = x[0];
        let s: f64 = x.iter().skip(1).map(|t| t * t).sum();
        let n = (x.len() - 1) as f64;
        0.5 * (v * v / (self.sigma * self.sigma) + (-v).exp() * s + n * v)
    }

    fn energy_grad(&self, x: &OVector<f64, D>, grad: &mut OVector<f64, D>) -> f64
    where
        DefaultAllocator: Allocator<D>,
    {
        let v = x[0];
        let e = (-v).exp();
        let s: f64 = x.iter().skip(1).map(|t| t * t).sum();
        let n = (x.len() - 1) as f64;
        grad.copy_from(x);
        *grad *= e;
        grad[0] = v / (self.sigma * self.sigma) - 0.5 * e * s + 0.5 * n;
        0.5 * (v * v / (self.sigma * self.sigma) + e * s + n * v)
    }
}

impl<D: Dim> PotentialHessian for Funnel<D> {
    fn hessian(&self, x: &OVector<f64, D>, hess: &mut OMatrix<f64, D, D>)
    where
        DefaultAllocator: Allocator<D> + Allocator<D, D>,
    {
        let v = x[0];
        let e = (-v).exp();
        let s: f64 = x.iter().skip(1).map(|t| t * t).sum();
        hess.fill(0.0);
        hess[(0, 0)] = 1.0 / (self.sigma * self.sigma) + 0.5 * e * s;
        for i in 1..x.len() {
            hess[(i, i)] = e;
            hess[(0, i)] = -x[i] * e;
            hess[(i, 0)] = -x[i] * e;
        }
    }
}
