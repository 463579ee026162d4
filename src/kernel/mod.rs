//! Positive-definite kernels `k(x, y)` for particle methods (SVGD) and discrepancies (KSD, MMD).
//!
//! A [`Kernel`] gives the value, the gradient in its first argument, and the trace of the mixed
//! second derivative `∇ₓ·∇ᵧk(x, y)` (needed by the kernel Stein discrepancy). Points are
//! slices of length `d`, so the same kernel serves `SVector` particles, `DVector` particles and
//! columns of a particle matrix without copies.
//!
//! Shipped: [`Rbf`] (fixed bandwidth) with the named bandwidth rules of [`Bandwidth`], [`Imq`],
//! [`Linear`]. A [`FitKernel`] turns particles into a kernel: fixed kernels return themselves,
//! a [`Bandwidth`] rule fits an [`Rbf`] to the particles (the median heuristics).
//!
//! Radial kernels `k(x, y) = ψ(‖x − y‖²)` can also report the profile `ψ` and its derivatives on
//! whole blocks of squared distances ([`Kernel::radial_block`]); the tiled pair engine of
//! [`stein`](crate::stein) then evaluates distance → kernel → every pair product in one fused
//! pass. Kernels that are not radial (the linear kernel) go through a plain pair loop.

mod bandwidth;

mod imq;
mod linear;
mod rbf;

pub use bandwidth::{Bandwidth, EXACT_MEDIAN_MAX_PAIRS, MedianScratch, SUBSAMPLE_PAIRS};
pub use imq::Imq;
pub use linear::Linear;
pub use rbf::Rbf;

/// A symmetric positive-definite kernel on ℝᵈ with the derivatives particle methods need.
///
/// Conventions: `grad_x` is `∇ₓk(x, y)`, the gradient in the **first** argument; SVGD's
/// repulsive term for particle `i` sums `∇ₓk(x_j, x_i)` over `j` (differentiating in the summed
/// particle). `div_grad` is `Σ_l ∂²k/∂x_l∂y_l`.
///
/// # Radial fast path
///
/// A radial kernel `k(x, y) = ψ(r²)`, `r² = ‖x − y‖²`, may override [`Kernel::is_radial`] and
/// [`Kernel::radial_block`]. Then `∇ₓk(x, y) = w·(x − y)` with `w = 2ψ'(r²)` and
/// `∇ₓ·∇ᵧk(x, y) = −d·w + c` with `c = −4r²ψ''(r²)`.
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

    /// `true` if the kernel is radial and implements [`Kernel::radial_block`].
    fn is_radial(&self) -> bool {
        false
    }

    /// For a radial kernel `ψ(r²)`: for every squared distance `r2[j]` writes `k[j] = ψ`,
    /// `w[j] = 2ψ'` and `c[j] = −4r²ψ''` (all slices have the same length). The default does
    /// nothing (the kernel is not radial).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::kernel::{Kernel, Rbf};
    ///
    /// let k = Rbf::new(1.0)?;
    /// let (mut v, mut w, mut c) = ([0.0; 2], [0.0; 2], [0.0; 2]);
    /// k.radial_block(&[0.0, 2.0], &mut v, &mut w, &mut c);
    /// assert!((v[1] - (-1.0f64).exp()).abs() < 1e-15);
    /// assert!((w[1] + v[1]).abs() < 1e-15); // 2ψ' = −ψ/σ²
    /// # Ok::<(), klflow::Error>(())
    /// ```
    fn radial_block(&self, r2: &[f64], k: &mut [f64], w: &mut [f64], c: &mut [f64]) {
        let _ = (r2, k, w, c);
    }

    /// For the Gaussian kernel `k = exp(−p‖x − y‖²/2)`, the precision `p = 1/σ²`; `None` (the
    /// default) for every other kernel.
    ///
    /// A radial kernel that reports it must also implement [`Kernel::radial_block`]. Then
    /// `∇ₓk(x, y) = −p(x − y)k`, and the pair engine of [`stein`](crate::stein) folds the
    /// driving and repulsive sums of SVGD into one product with the feature `s_j − p·x_j`
    /// (half the pair work of the general radial path).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::kernel::{Imq, Kernel, Rbf};
    ///
    /// assert_eq!(Rbf::new(0.5)?.gaussian_precision(), Some(4.0)); // 1/σ²
    /// assert_eq!(Imq::new(1.0, -0.5)?.gaussian_precision(), None);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    fn gaussian_precision(&self) -> Option<f64> {
        None
    }
}

impl<K: Kernel + ?Sized> Kernel for &K {
    fn value(&self, x: &[f64], y: &[f64]) -> f64 {
        (**self).value(x, y)
    }
    fn value_grad_x(&self, x: &[f64], y: &[f64], grad: &mut [f64]) -> f64 {
        (**self).value_grad_x(x, y, grad)
    }
    fn div_grad(&self, x: &[f64], y: &[f64]) -> f64 {
        (**self).div_grad(x, y)
    }
    fn is_radial(&self) -> bool {
        (**self).is_radial()
    }
    fn radial_block(&self, r2: &[f64], k: &mut [f64], w: &mut [f64], c: &mut [f64]) {
        (**self).radial_block(r2, k, w, c)
    }
    fn gaussian_precision(&self) -> Option<f64> {
        (**self).gaussian_precision()
    }
}

/// How a particle method obtains its kernel from the current particles.
///
/// Fixed kernels ([`Rbf`], [`Imq`], [`Linear`]) return a copy of themselves; a [`Bandwidth`]
/// rule fits an [`Rbf`] to the particles (the median heuristics). Particles are the columns of
/// a `d × n` matrix. `scratch` holds the pairwise distances of the median (allocated once by
/// the caller, see [`MedianScratch::new`]).
///
/// # Example
///
/// ```
/// use klflow::kernel::{Bandwidth, FitKernel, MedianScratch};
/// use nalgebra::DMatrix;
///
/// let x = DMatrix::from_column_slice(1, 3, &[0.0, 1.0, 3.0]);
/// let mut scratch = MedianScratch::new(3);
/// // Squared distances 1, 4, 9 (i < j): the plain median is 4, and σ² = 4/2.
/// let k = Bandwidth::Median.fit(&x, &mut scratch)?;
/// assert!((k.sigma() - 2f64.sqrt()).abs() < 1e-15);
/// # Ok::<(), klflow::Error>(())
/// ```
pub trait FitKernel {
    /// The kernel that is fitted.
    type Kernel: Kernel + Clone;

    /// Fits the kernel to the particles (the columns of `x`).
    ///
    /// # Errors
    ///
    /// [`Error::NonFiniteInput`](crate::Error::NonFiniteInput) if the fitted bandwidth is not
    /// finite (non-finite particles).
    fn fit(
        &self,
        x: &nalgebra::DMatrix<f64>,
        scratch: &mut MedianScratch,
    ) -> crate::Result<Self::Kernel>;

    /// `true` if [`FitKernel::fit`] depends on the particles (and needs a [`MedianScratch`]).
    fn is_adaptive(&self) -> bool {
        false
    }
}

macro_rules! fixed_fit {
    ($($ty:ty),*) => {$(
        impl FitKernel for $ty {
            type Kernel = $ty;
            fn fit(&self, _x: &nalgebra::DMatrix<f64>, _s: &mut MedianScratch) -> crate::Result<$ty> {
                Ok(*self)
            }
        }
    )*};
}
fixed_fit!(Rbf, Imq, Linear);

pub(crate) fn sq_dist(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum()
}
