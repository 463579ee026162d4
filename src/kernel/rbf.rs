//! The Gaussian (RBF) kernel with a fixed bandwidth.

use super::{Kernel, sq_dist};
use crate::fastmath as fastexp;

/// The Gaussian (RBF) kernel `k(x, y) = exp(−‖x − y‖²/(2σ²))` with a fixed bandwidth `σ`.
///
/// `∇ₓk = −(x − y)k/σ²`, `∇ₓ·∇ᵧk = (d/σ² − ‖x − y‖²/σ⁴)k`. Peers write the same kernel as
/// `exp(−‖x − y‖²/ℓ)`: `ℓ = 2σ²` ([`Rbf::from_length_scale`]). The bandwidth rules (median
/// heuristics) that fit `σ` to particles are in [`Bandwidth`](super::Bandwidth).
///
/// [`Kernel::value`] uses `f64::exp`; the fused block evaluation [`Kernel::radial_block`] uses
/// a vectorised exp accurate to a few ulp.
///
/// # Example
///
/// ```
/// use klflow::kernel::{Kernel, Rbf};
///
/// let k = Rbf::new(2.0)?;
/// assert_eq!(k.value(&[0.0], &[0.0]), 1.0);
/// assert!(Rbf::new(0.0).is_err());
/// // exp(−r²/ℓ) with ℓ = 8 is the same kernel.
/// assert_eq!(Rbf::from_length_scale(8.0)?.sigma(), 2.0);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Rbf {
    sigma: f64,
}

impl Rbf {
    /// RBF kernel with bandwidth `sigma`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`](crate::Error::InvalidParameter) unless `sigma` is finite and > 0.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, kernel::{Kernel, Rbf}};
    ///
    /// let k = Rbf::new(1.0)?;
    /// assert_eq!(k.value(&[1.0], &[0.0]), (-0.5f64).exp());
    /// assert!(matches!(Rbf::new(f64::NAN), Err(Error::InvalidParameter { name: "sigma", .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(sigma: f64) -> crate::Result<Self> {
        crate::error::positive("sigma", sigma).map(|sigma| Self { sigma })
    }

    /// The kernel `exp(−‖x − y‖²/ℓ)` (the Liu–Wang, BlackJAX and NumPyro parameterisation):
    /// `σ = √(ℓ/2)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`](crate::Error::InvalidParameter) unless `ℓ` is finite and > 0.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::kernel::{Kernel, Rbf};
    ///
    /// // exp(−r²/ℓ) with ℓ = 2 is the RBF kernel with σ = 1.
    /// let k = Rbf::from_length_scale(2.0)?;
    /// assert_eq!(k.sigma(), 1.0);
    /// assert!((k.value(&[1.5], &[0.0]) - (-1.5f64 * 1.5 / 2.0).exp()).abs() < 1e-15);
    /// assert!(Rbf::from_length_scale(-1.0).is_err());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn from_length_scale(length_scale: f64) -> crate::Result<Self> {
        crate::error::positive("length_scale", length_scale)?;
        Self::new((0.5 * length_scale).sqrt())
    }

    /// The bandwidth `σ`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::kernel::Rbf;
    ///
    /// assert_eq!(Rbf::new(0.25)?.sigma(), 0.25);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// `ℓ = 2σ²`, the length scale of the `exp(−r²/ℓ)` parameterisation.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::kernel::Rbf;
    ///
    /// assert_eq!(Rbf::new(2.0)?.length_scale(), 8.0); // ℓ = 2σ²
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn length_scale(&self) -> f64 {
        2.0 * self.sigma * self.sigma
    }
}

impl Kernel for Rbf {
    fn value(&self, x: &[f64], y: &[f64]) -> f64 {
        (-sq_dist(x, y) / (2.0 * self.sigma * self.sigma)).exp()
    }

    fn value_grad_x(&self, x: &[f64], y: &[f64], grad: &mut [f64]) -> f64 {
        let s2 = self.sigma * self.sigma;
        let k = self.value(x, y);
        for ((g, a), b) in grad.iter_mut().zip(x).zip(y) {
            *g = -(a - b) * k / s2;
        }
        k
    }

    fn div_grad(&self, x: &[f64], y: &[f64]) -> f64 {
        let s2 = self.sigma * self.sigma;
        let r2 = sq_dist(x, y);
        (x.len() as f64 / s2 - r2 / (s2 * s2)) * (-r2 / (2.0 * s2)).exp()
    }

    fn is_radial(&self) -> bool {
        true
    }

    fn gaussian_precision(&self) -> Option<f64> {
        Some(1.0 / (self.sigma * self.sigma))
    }

    #[inline]
    fn radial_block(&self, r2: &[f64], k: &mut [f64], w: &mut [f64], c: &mut [f64]) {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let s2 = self.sigma * self.sigma;
                let a = -0.5 / s2;
                let inv = 1.0 / s2;
                let inv2 = inv * inv;
                for (((r, k), w), c) in r2
                    .iter()
                    .zip(k.iter_mut())
                    .zip(w.iter_mut())
                    .zip(c.iter_mut())
                {
                    let v = fastexp::exp(r * a);
                    *k = v;
                    *w = -v * inv;
                    *c = -r * v * inv2;
                }
            },
        )
    }
}
