//! Targets as potentials: `U(x) = −log π(x) + const`.
//!
//! A [`Potential`] gives the energy `U` and its gradient in one call (the gradient is written
//! into a caller-owned buffer, so samplers allocate nothing per step). [`PotentialHessian`] adds
//! the Hessian for the algorithms that need it (Gaussian VI). Implementations ship for the
//! standard test targets:
//!
//! | target | type | Hessian | exact draws |
//! |---|---|---|---|
//! | Gaussian (mean + covariance or precision) | [`Gaussian`] | ✔ | ✔ |
//! | Gaussian mixture (log-sum-exp) | [`GaussianMixture`] | ✔ | ✔ |
//! | banana (Rosenbrock-type) | [`Banana`] | ✔ | ✔ |
//! | Neal's funnel | [`Funnel`] | ✔ | ✔ |
//! | double well `‖x‖²/2 − log cosh(a x₁)` | [`DoubleWell`] | ✔ | ✔ |
//! | Bayesian logistic regression | [`LogisticRegression`] | ✔ | — |
//! | linear regression, half-Cauchy σ (posteriordb `kidiq`) | [`LinearRegression`] | — | — |
//! | eight schools, centred or non-centred (posteriordb) | [`EightSchools`] | — | — |
//!
//! Derivatives need not be written by hand: [`AutoDiff`] builds a potential from one generic
//! function of the point with forward-mode automatic differentiation (num-dual), and
//! [`check_gradient`] / [`check_hessian`] compare any implementation against finite differences.

use nalgebra::allocator::Allocator;
use nalgebra::{
    DMatrix, DMatrixView, DMatrixViewMut, DVector, DefaultAllocator, Dim, Dyn, OMatrix, OVector,
};

use crate::dim::Alloc;

mod autodiff;
mod banana;
mod check;
mod counter;
mod double_well;
mod funnel;
mod logistic;
mod mixture;
mod models;

pub use crate::gaussian::Gaussian;
pub use autodiff::{AutoDiff, DualFunction};
pub use banana::Banana;
pub use check::{
    DerivativeCheck, check_gradient, check_hessian, finite_difference_gradient,
    finite_difference_hessian,
};
pub use counter::{Counted, EvaluationCounts};
pub use double_well::DoubleWell;
pub use funnel::Funnel;
pub use logistic::LogisticRegression;
pub use mixture::GaussianMixture;
pub use models::{EightSchools, LinearRegression, Parameterisation};

/// A target density `π ∝ exp(−U)` on ℝᵈ, given through its potential `U`.
///
/// The target fixes the dimension through [`Potential::Dim`]: `Const<N>` for stack vectors,
/// `Dyn` for heap vectors. Allocator bounds sit on the methods, so `dyn Potential<Dim = Dyn>`
/// works.
///
/// Implementations must be pure (same input, same output) and `Sync` if they are to be shared by
/// parallel chains. A potential may return a non-finite energy (outside its support, say);
/// samplers turn that into [`Error::NonFinite`](crate::Error::NonFinite) or, for Metropolis-type
/// samplers, into a rejection — never into a NaN sample.
///
/// # Example
///
/// ```
/// use klflow::potential::Potential;
/// use nalgebra::{Const, SVector};
///
/// /// U(x) = ‖x‖⁴/4: a light-tailed, non-Gaussian target.
/// struct Quartic;
/// impl Potential for Quartic {
///     type Dim = Const<2>;
///     fn dim(&self) -> Const<2> { Const }
///     fn energy(&self, x: &SVector<f64, 2>) -> f64 { x.norm_squared().powi(2) / 4.0 }
///     fn energy_grad(&self, x: &SVector<f64, 2>, grad: &mut SVector<f64, 2>) -> f64 {
///         let r2 = x.norm_squared();
///         *grad = x * r2;
///         r2 * r2 / 4.0
///     }
/// }
///
/// let x = SVector::<f64, 2>::new(1.0, 1.0);
/// let check = klflow::potential::check_gradient(&Quartic, &x).unwrap();
/// assert!(check.max_abs_error < 1e-8);
/// ```
pub trait Potential {
    /// The dimension of the state space.
    type Dim: Dim;

    /// The dimension (`Const<N>` or `Dyn(d)`).
    fn dim(&self) -> Self::Dim;

    /// The energy `U(x)`.
    fn energy(&self, x: &OVector<f64, Self::Dim>) -> f64
    where
        DefaultAllocator: Allocator<Self::Dim>;

    /// Writes `∇U(x)` into `grad` and returns `U(x)`.
    fn energy_grad(&self, x: &OVector<f64, Self::Dim>, grad: &mut OVector<f64, Self::Dim>) -> f64
    where
        DefaultAllocator: Allocator<Self::Dim>;

    /// A Lipschitz constant `L` of `∇U` (`−L·I ≼ ∇²U ≼ L·I`), if known.
    ///
    /// Samplers use it to validate step sizes; `None` means unknown.
    fn smoothness(&self) -> Option<f64> {
        None
    }

    /// A strong-convexity constant `α > 0` (`∇²U ≽ α·I`), if the potential is strongly convex
    /// and the constant is known.
    fn strong_convexity(&self) -> Option<f64> {
        None
    }
}

/// A [`Potential`] that also gives its Hessian `∇²U(x)`.
///
/// # Example
///
/// ```
/// use klflow::potential::{Gaussian, PotentialHessian};
/// use nalgebra::{SMatrix, SVector};
///
/// let cov = SMatrix::<f64, 2, 2>::new(2.0, 0.5, 0.5, 1.0);
/// let target = Gaussian::new(SVector::zeros(), cov).unwrap();
/// let mut h = SMatrix::zeros();
/// target.hessian(&SVector::zeros(), &mut h);
/// assert!((h * cov - SMatrix::<f64, 2, 2>::identity()).norm() < 1e-12);
/// ```
pub trait PotentialHessian: Potential {
    /// Writes `∇²U(x)` into `hess`.
    fn hessian(&self, x: &OVector<f64, Self::Dim>, hess: &mut OMatrix<f64, Self::Dim, Self::Dim>)
    where
        DefaultAllocator: Alloc<Self::Dim>;
}

/// Reusable scratch memory for [`BatchPotential::energy_grad_batch`]: keep one per ensemble
/// so that repeated calls allocate nothing after the first.
///
/// # Example
///
/// ```
/// use klflow::potential::BatchWorkspace;
///
/// let mut work = BatchWorkspace::new();
/// assert_eq!(work.buffer(6).len(), 6);
/// let (x, g) = work.column_buffers(3);
/// assert_eq!((x.len(), g.len()), (3, 3));
/// ```
#[derive(Clone, Debug, Default)]
pub struct BatchWorkspace {
    x: DVector<f64>,
    g: DVector<f64>,
    buffer: Vec<f64>,
    energies: Vec<f64>,
}

impl BatchWorkspace {
    /// An empty workspace (it grows on first use).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::BatchWorkspace;
    ///
    /// let mut work = BatchWorkspace::new();
    /// assert!(work.buffer(0).is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A buffer of exactly `len` entries with unspecified contents; it grows only when `len`
    /// exceeds every earlier request.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::BatchWorkspace;
    ///
    /// let mut work = BatchWorkspace::new();
    /// work.buffer(8).fill(1.0);
    /// assert_eq!(work.buffer(4).len(), 4); // a shorter view of the same storage
    /// ```
    pub fn buffer(&mut self, len: usize) -> &mut [f64] {
        if self.buffer.len() < len {
            self.buffer.resize(len, 0.0);
        }
        &mut self.buffer[..len]
    }

    /// Two vectors of length `d` with unspecified contents (for copying one column in and its
    /// gradient out); they are reallocated only when `d` changes.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::BatchWorkspace;
    ///
    /// let mut work = BatchWorkspace::new();
    /// let (x, g) = work.column_buffers(5);
    /// assert_eq!((x.len(), g.len()), (5, 5));
    /// ```
    pub fn column_buffers(&mut self, d: usize) -> (&mut DVector<f64>, &mut DVector<f64>) {
        if self.x.len() != d {
            self.x = DVector::zeros(d);
            self.g = DVector::zeros(d);
        }
        (&mut self.x, &mut self.g)
    }
}

/// A [`Potential`] evaluated at many points at once: the points are the columns of a `d × C`
/// matrix and the gradients are written as the columns of another.
///
/// Implement [`energy_grad_columns`](BatchPotential::energy_grad_columns) (and, if the energy
/// costs extra, [`grad_columns`](BatchPotential::grad_columns)); they take matrix *views*, so
/// that an ensemble can hand each thread its own block of columns. The defaults loop over
/// [`Potential::energy_grad`], one column at a time, with identical arithmetic (so a batched
/// sampler gives bit for bit the chains of the single-point sampler).
/// [`LogisticRegression`] overrides both (a fused pass over the observations with the chains
/// along the vector lanes for `d ≤ 16`, two matrix products `AX` and `AᵀR` above), which is
/// what makes an ensemble of chains cheaper than the chains one by one; the diagonal
/// [`Gaussian`] works on the columns in place. Implement the trait with an empty body
/// (`impl BatchPotential for MyTarget {}`) to use the defaults.
///
/// # Example
///
/// ```
/// use klflow::potential::{BatchPotential, BatchWorkspace, Gaussian, Potential};
/// use nalgebra::{DMatrix, DVector, Dyn};
///
/// let target = Gaussian::standard(Dyn(2));
/// let x = DMatrix::from_column_slice(2, 3, &[1.0, 0.0, 0.0, 2.0, 1.0, 1.0]);
/// let mut grad = DMatrix::zeros(2, 3);
/// let mut energy = [0.0; 3];
/// target.energy_grad_batch(&x, &mut grad, &mut energy, &mut BatchWorkspace::new());
/// assert_eq!(energy, [0.5, 2.0, 1.0]);
/// assert_eq!(grad, x); // ∇U(x) = x for N(0, I)
/// ```
pub trait BatchPotential: Potential<Dim = Dyn> {
    /// Writes `∇U(x_c)` into column `c` of `grad` and `U(x_c)` into `energy[c]` for every
    /// column `x_c` of `x` (`d × C`, any column stride).
    ///
    /// # Panics
    ///
    /// If `x` does not have `d` rows, `grad` is not `d × C` or `energy` does not have `C`
    /// entries (samplers check shapes before calling).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::{BatchPotential, BatchWorkspace, Gaussian};
    /// use nalgebra::{DMatrix, Dyn};
    ///
    /// // The last two columns of a 2 × 3 matrix, through views.
    /// let x = DMatrix::from_column_slice(2, 3, &[1.0, 0.0, 0.0, 2.0, 1.0, 1.0]);
    /// let mut grad = DMatrix::zeros(2, 2);
    /// let mut energy = [0.0; 2];
    /// Gaussian::standard(Dyn(2)).energy_grad_columns(
    ///     x.columns(1, 2), grad.as_view_mut(), &mut energy, &mut BatchWorkspace::new());
    /// assert_eq!(energy, [2.0, 1.0]);
    /// assert_eq!(grad, x.columns(1, 2));
    /// ```
    fn energy_grad_columns(
        &self,
        x: DMatrixView<'_, f64>,
        grad: DMatrixViewMut<'_, f64>,
        energy: &mut [f64],
        work: &mut BatchWorkspace,
    ) {
        column_loop(self, x, grad, energy, work);
    }

    /// Writes `∇U(x_c)` into column `c` of `grad` for every column of `x`, without the
    /// energies (a sampler that never uses `U`, like ULA, calls this). The default calls
    /// [`energy_grad_columns`](BatchPotential::energy_grad_columns) and drops the energies;
    /// override it where the energy costs extra work (logistic regression: the softplus).
    ///
    /// # Panics
    ///
    /// As [`energy_grad_columns`](BatchPotential::energy_grad_columns).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::{BatchPotential, BatchWorkspace, Gaussian};
    /// use nalgebra::{DMatrix, Dyn};
    ///
    /// let x = DMatrix::from_column_slice(2, 2, &[1.0, 0.0, 0.0, 2.0]);
    /// let mut grad = DMatrix::zeros(2, 2);
    /// Gaussian::standard(Dyn(2)).grad_columns(x.as_view(), grad.as_view_mut(), &mut BatchWorkspace::new());
    /// assert_eq!(grad, x);
    /// ```
    fn grad_columns(
        &self,
        x: DMatrixView<'_, f64>,
        grad: DMatrixViewMut<'_, f64>,
        work: &mut BatchWorkspace,
    ) {
        grad_via_energy(self, x, grad, work);
    }

    /// [`energy_grad_columns`](BatchPotential::energy_grad_columns) on whole matrices (a
    /// convenience; implement `energy_grad_columns` instead).
    ///
    /// # Panics
    ///
    /// As [`energy_grad_columns`](BatchPotential::energy_grad_columns).
    fn energy_grad_batch(
        &self,
        x: &DMatrix<f64>,
        grad: &mut DMatrix<f64>,
        energy: &mut [f64],
        work: &mut BatchWorkspace,
    ) {
        self.energy_grad_columns(x.as_view(), grad.as_view_mut(), energy, work);
    }
}

/// Checks the shapes of a batched call against the dimension `d`.
pub(crate) fn check_batch_shapes(
    d: usize,
    x: &DMatrixView<'_, f64>,
    grad: &DMatrixViewMut<'_, f64>,
    energy: Option<&[f64]>,
) {
    assert_eq!(x.nrows(), d, "energy_grad_batch: x must have d rows");
    assert_eq!(
        grad.shape(),
        x.shape(),
        "energy_grad_batch: grad must be d × C"
    );
    if let Some(e) = energy {
        assert_eq!(
            e.len(),
            x.ncols(),
            "energy_grad_batch: one energy per column"
        );
    }
}

/// `p.energy_grad_columns` into the workspace's energy scratch (the default gradient-only
/// evaluation).
pub(crate) fn grad_via_energy<P: BatchPotential + ?Sized>(
    p: &P,
    x: DMatrixView<'_, f64>,
    grad: DMatrixViewMut<'_, f64>,
    work: &mut BatchWorkspace,
) {
    let mut energy = std::mem::take(&mut work.energies);
    energy.resize(x.ncols(), 0.0);
    p.energy_grad_columns(x, grad, &mut energy, work);
    work.energies = energy;
}

/// The default batched evaluation: [`Potential::energy_grad`] column by column through the
/// workspace's column buffers.
pub(crate) fn column_loop<P: Potential<Dim = Dyn> + ?Sized>(
    p: &P,
    x: DMatrixView<'_, f64>,
    mut grad: DMatrixViewMut<'_, f64>,
    energy: &mut [f64],
    work: &mut BatchWorkspace,
) {
    let d = Dim::value(&p.dim());
    check_batch_shapes(d, &x, &grad, Some(energy));
    let (xc, gc) = work.column_buffers(d);
    for (c, e) in energy.iter_mut().enumerate() {
        xc.copy_from(&x.column(c));
        *e = p.energy_grad(xc, gc);
        grad.column_mut(c).copy_from(gc);
    }
}

impl BatchPotential for GaussianMixture<Dyn> {}
impl BatchPotential for Banana<Dyn> {}
impl BatchPotential for Funnel<Dyn> {}
impl BatchPotential for DoubleWell<Dyn> {}

macro_rules! forward_batch {
    ($($ty:ty),*) => {$(
        impl<P: BatchPotential + ?Sized> BatchPotential for $ty {
            fn energy_grad_columns(
                &self,
                x: DMatrixView<'_, f64>,
                grad: DMatrixViewMut<'_, f64>,
                energy: &mut [f64],
                work: &mut BatchWorkspace,
            ) {
                (**self).energy_grad_columns(x, grad, energy, work)
            }
            fn grad_columns(
                &self,
                x: DMatrixView<'_, f64>,
                grad: DMatrixViewMut<'_, f64>,
                work: &mut BatchWorkspace,
            ) {
                (**self).grad_columns(x, grad, work)
            }
            fn energy_grad_batch(
                &self,
                x: &DMatrix<f64>,
                grad: &mut DMatrix<f64>,
                energy: &mut [f64],
                work: &mut BatchWorkspace,
            ) {
                (**self).energy_grad_batch(x, grad, energy, work)
            }
        }
    )*};
}
forward_batch!(&P, Box<P>, std::sync::Arc<P>);

macro_rules! forward_potential {
    ($($ty:ty),*) => {$(
        impl<P: Potential + ?Sized> Potential for $ty {
            type Dim = P::Dim;
            fn dim(&self) -> P::Dim {
                (**self).dim()
            }
            fn energy(&self, x: &OVector<f64, P::Dim>) -> f64
            where
                DefaultAllocator: Allocator<P::Dim>,
            {
                (**self).energy(x)
            }
            fn energy_grad(&self, x: &OVector<f64, P::Dim>, grad: &mut OVector<f64, P::Dim>) -> f64
            where
                DefaultAllocator: Allocator<P::Dim>,
            {
                (**self).energy_grad(x, grad)
            }
            fn smoothness(&self) -> Option<f64> {
                (**self).smoothness()
            }
            fn strong_convexity(&self) -> Option<f64> {
                (**self).strong_convexity()
            }
        }
        impl<P: PotentialHessian + ?Sized> PotentialHessian for $ty {
            fn hessian(&self, x: &OVector<f64, P::Dim>, hess: &mut OMatrix<f64, P::Dim, P::Dim>)
            where
                DefaultAllocator: Alloc<P::Dim>,
            {
                (**self).hessian(x, hess)
            }
        }
    )*};
}
forward_potential!(&P, Box<P>, std::sync::Arc<P>);
