//! Positive-definite kernels `k(x, y)` for particle methods (SVGD) and discrepancies (KSD, MMD).
//!
//! A [`Kernel`] gives the value, the gradient in its first argument, and the trace of the mixed
//! second derivative `∇ₓ·∇ᵧk(x, y)` (needed by the kernel Stein discrepancy). Points are
//! slices of length `d`, so the same kernel serves `SVector` particles, `DVector` particles and
//! columns of a particle matrix without copies.
//!
//! Shipped: [`Rbf`] (fixed bandwidth), [`Imq`], [`Linear`].

/// A symmetric positive-definite kernel on ℝᵈ with the derivatives particle methods need.
///
/// Conventions: `grad_x` is `∇ₓk(x, y)`, the gradient in the **first** argument; SVGD's
/// repulsive term for particle `i` sums `∇ₓk(x_j, x_i)` over `j` (differentiating in the summed
/// particle). `div_grad` is `Σ_l ∂²k/∂x_l∂y_l`.
///
/// # Example
///
/// ```
/// use klflow::kernel::{Kernel, Rbf};
///
/// let k = Rbf::new(1.0)?; // exp(−‖x − y‖²/(2·1²))
/// let (x, y) = ([1.0, 0.0], [0.0, 0.0]);
/// let mut g = [0.0; 2];
/// let v = k.value_grad_x(&x, &y, &mut g);
/// assert!((v - (-0.5f64).exp()).abs() < 1e-15);
/// assert!((g[0] + v).abs() < 1e-15); // ∇ₓk = −(x − y)k/σ²
/// # Ok::<(), klflow::Error>(())
/// ```
pub trait Kernel {
    /// `k(x, y)`.
    fn value(&self, x: &[f64], y: &[f64]) -> f64;

    /// Writes `∇ₓk(x, y)` into `grad` and returns `k(x, y)`.
    fn value_grad_x(&self, x: &[f64], y: &[f64], grad: &mut [f64]) -> f64;

    /// `∇ₓ·∇ᵧk(x, y) = Σ_l ∂²k(x, y)/∂x_l∂y_l`.
    fn div_grad(&self, x: &[f64], y: &[f64]) -> f64;
}

fn sq_dist(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum()
}

/// The Gaussian (RBF) kernel `k(x, y) = exp(−‖x − y‖²/(2σ²))` with a fixed bandwidth `σ`.
///
/// `∇ₓk = −(x − y)k/σ²`, `∇ₓ·∇ᵧk = (d/σ² − ‖x − y‖²/σ⁴)k`.
///
/// # Example
///
/// ```
/// use klflow::kernel::{Kernel, Rbf};
///
/// let k = Rbf::new(2.0)?;
/// assert_eq!(k.value(&[0.0], &[0.0]), 1.0);
/// assert!(Rbf::new(0.0).is_err());
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
    pub fn new(sigma: f64) -> crate::Result<Self> {
        crate::error::positive("sigma", sigma).map(|sigma| Self { sigma })
    }

    /// The bandwidth `σ`.
    pub fn sigma(&self) -> f64 {
        self.sigma
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
}

/// The inverse multiquadric kernel `k(x, y) = (c² + ‖x − y‖²)^β`, `c > 0`, `β ∈ (−1, 0)`.
///
/// Its kernel Stein discrepancy controls weak convergence (Gorham & Mackey 2017); the usual
/// choice is `c = 1`, `β = −½`.
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
}

impl Kernel for Imq {
    fn value(&self, x: &[f64], y: &[f64]) -> f64 {
        (self.c * self.c + sq_dist(x, y)).powf(self.beta)
    }

    fn value_grad_x(&self, x: &[f64], y: &[f64], grad: &mut [f64]) -> f64 {
        let base = self.c * self.c + sq_dist(x, y);
        let k = base.powf(self.beta);
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
        -2.0 * b * d * base.powf(b - 1.0) - 4.0 * b * (b - 1.0) * r2 * base.powf(b - 2.0)
    }
}

/// The linear (bilinear) kernel `k(x, y) = xᵀy + c`, `c ≥ 0`.
///
/// With SVGD on a Gaussian target its particle moments follow the population recursion exactly,
/// which makes it the kernel of the exact SVGD tests (Liu & Wang 2018, moment matching).
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
