//! The linear (bilinear) kernel.

use super::Kernel;

/// The linear (bilinear) kernel `k(x, y) = xᵀy + c`, `c ≥ 0`.
///
/// With SVGD on a Gaussian target its particle moments follow the population recursion exactly,
/// which makes it the kernel of the exact SVGD tests (Liu & Wang 2018, moment matching). It is
/// not radial: particle methods evaluate it with a plain pair loop.
///
/// # Example
///
/// ```
/// use klflow::kernel::{Kernel, Linear};
///
/// let k = Linear::new(1.0)?;
/// assert_eq!(k.value(&[1.0, 2.0], &[3.0, 4.0]), 12.0);
/// assert_eq!(k.div_grad(&[1.0, 2.0], &[3.0, 4.0]), 2.0); // = d
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Linear {
    c: f64,
}

impl Linear {
    /// Linear kernel with offset `c`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`](crate::Error::InvalidParameter) unless `c` is finite and ≥ 0.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::kernel::{Kernel, Linear};
    ///
    /// // k(x, y) = xᵀy + c.
    /// assert_eq!(Linear::new(0.0)?.value(&[1.0, 2.0], &[3.0, 4.0]), 11.0);
    /// assert!(Linear::new(-1.0).is_err());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(c: f64) -> crate::Result<Self> {
        if c.is_finite() && c >= 0.0 {
            Ok(Self { c })
        } else {
            Err(crate::Error::InvalidParameter {
                name: "c",
                value: c,
                reason: "must be finite and >= 0",
            })
        }
    }
}

impl Kernel for Linear {
    fn value(&self, x: &[f64], y: &[f64]) -> f64 {
        x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>() + self.c
    }

    fn value_grad_x(&self, x: &[f64], y: &[f64], grad: &mut [f64]) -> f64 {
        grad.copy_from_slice(y);
        self.value(x, y)
    }

    fn div_grad(&self, x: &[f64], _y: &[f64]) -> f64 {
        x.len() as f64
    }
}
