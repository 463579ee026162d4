//! The inverse multiquadric kernel.

use super::{Kernel, sq_dist};

/// The inverse multiquadric kernel `k(x, y) = (c² + ‖x − y‖²)^β`, `c > 0`, `β ∈ (−1, 0)`.
///
/// Its kernel Stein discrepancy controls weak convergence (Gorham & Mackey 2017); the usual
/// choice is `c = 1`, `β = −½` (evaluated with a square root instead of `powf`).
/// `∇ₓk = 2β(x − y)(c² + r²)^{β−1}`,
/// `∇ₓ·∇ᵧk = −2βd(c² + r²)^{β−1} − 4β(β − 1)r²(c² + r²)^{β−2}`.
///
/// # Example
///
/// ```
/// use klflow::kernel::{Imq, Kernel};
///
/// let k = Imq::new(1.0, -0.5)?;
/// assert!((k.value(&[3.0], &[0.0]) - 10f64.powf(-0.5)).abs() < 1e-15);
/// assert!(Imq::new(1.0, 0.5).is_err());
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Imq {
    c: f64,
    beta: f64,
}

impl Imq {
    /// IMQ kernel with scale `c` and exponent `beta`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`](crate::Error::InvalidParameter) unless `c > 0` and
    /// `−1 < beta < 0`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, kernel::{Imq, Kernel}};
    ///
    /// // k(x, x) = (c²)^β = 4^(−1/2).
    /// assert_eq!(Imq::new(2.0, -0.5)?.value(&[1.0, 2.0], &[1.0, 2.0]), 0.5);
    /// assert!(matches!(Imq::new(1.0, -1.0), Err(Error::InvalidParameter { name: "beta", .. })));
    /// assert!(matches!(Imq::new(0.0, -0.5), Err(Error::InvalidParameter { name: "c", .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(c: f64, beta: f64) -> crate::Result<Self> {
        crate::error::positive("c", c)?;
        if !(beta > -1.0 && beta < 0.0) {
            return Err(crate::Error::InvalidParameter {
                name: "beta",
                value: beta,
                reason: "must lie in (-1, 0)",
            });
        }
        Ok(Self { c, beta })
    }

    /// `base^β` (a square root for β = −½).
    #[inline]
    fn pow(&self, base: f64) -> f64 {
        if self.beta == -0.5 {
            1.0 / base.sqrt()
        } else {
            base.powf(self.beta)
        }
    }
}

impl Kernel for Imq {
    fn value(&self, x: &[f64], y: &[f64]) -> f64 {
        self.pow(self.c * self.c + sq_dist(x, y))
    }

    fn value_grad_x(&self, x: &[f64], y: &[f64], grad: &mut [f64]) -> f64 {
        let base = self.c * self.c + sq_dist(x, y);
        let k = self.pow(base);
        let f = 2.0 * self.beta * k / base;
        for ((g, a), b) in grad.iter_mut().zip(x).zip(y) {
            *g = f * (a - b);
        }
        k
    }

    fn div_grad(&self, x: &[f64], y: &[f64]) -> f64 {
        let r2 = sq_dist(x, y);
        let base = self.c * self.c + r2;
        let b = self.beta;
        let d = x.len() as f64;
        let k = self.pow(base);
        -2.0 * b * d * k / base - 4.0 * b * (b - 1.0) * r2 * k / (base * base)
    }

    fn is_radial(&self) -> bool {
        true
    }

    #[inline]
    fn radial_block(&self, r2: &[f64], k: &mut [f64], w: &mut [f64], c: &mut [f64]) {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let (c2, b) = (self.c * self.c, self.beta);
                for (((r, k), w), c) in r2
                    .iter()
                    .zip(k.iter_mut())
                    .zip(w.iter_mut())
                    .zip(c.iter_mut())
                {
                    let base = c2 + r;
                    let v = self.pow(base);
                    let inv = 1.0 / base;
                    *k = v;
                    *w = 2.0 * b * v * inv;
                    *c = -4.0 * b * (b - 1.0) * r * v * inv * inv;
                }
            },
        )
    }
}
