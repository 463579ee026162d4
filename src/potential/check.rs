//! Checking derivatives against central finite differences.

use nalgebra::{DefaultAllocator, OMatrix, OVector};

use crate::dim::{Alloc, check_len};
use crate::error::{Result, finite_input};
use crate::potential::{Potential, PotentialHessian};

/// The result of comparing an analytic derivative with finite differences.
///
/// `max_abs_error = max |a − f|` and `max_rel_error = max |a − f| / max(1, |f|)` over the
/// entries (`a` analytic, `f` finite-difference); `worst_index` is the flat (column-major)
/// index of the entry with the largest relative error, or `usize::MAX` from
/// [`check_gradient`] when the worst mismatch is between the energies returned by
/// `energy` and `energy_grad`.
///
/// # Example
///
/// ```
/// use klflow::potential::{Potential, check_gradient};
/// use nalgebra::{Const, Vector2};
///
/// /// U(x) = x₁² + x₂², with a gradient that forgets the factor 2 in the second entry.
/// struct Buggy;
/// impl Potential for Buggy {
///     type Dim = Const<2>;
///     fn dim(&self) -> Const<2> { Const }
///     fn energy(&self, x: &Vector2<f64>) -> f64 { x.norm_squared() }
///     fn energy_grad(&self, x: &Vector2<f64>, grad: &mut Vector2<f64>) -> f64 {
///         *grad = Vector2::new(2.0 * x[0], x[1]);
///         x.norm_squared()
///     }
/// }
/// let c = check_gradient(&Buggy, &Vector2::new(1.0, 3.0))?;
/// assert_eq!(c.worst_index, 1);
/// assert!((c.max_abs_error - 3.0).abs() < 1e-6); // 6 − 3
/// assert!((c.max_rel_error - 0.5).abs() < 1e-6); // 3 / 6
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DerivativeCheck {
    /// Largest absolute difference.
    pub max_abs_error: f64,
    /// Largest difference relative to `max(1, |finite difference|)`.
    pub max_rel_error: f64,
    /// Where the largest relative difference is.
    pub worst_index: usize,
}

impl DerivativeCheck {
    fn compare<'a>(
        analytic: impl Iterator<Item = &'a f64>,
        fd: impl Iterator<Item = &'a f64>,
    ) -> Self {
        let mut out = Self {
            max_abs_error: 0.0,
            max_rel_error: 0.0,
            worst_index: 0,
        };
        for (i, (a, f)) in analytic.zip(fd).enumerate() {
            let abs = (a - f).abs();
            let rel = abs / f.abs().max(1.0);
            out.max_abs_error = out.max_abs_error.max(abs);
            if rel > out.max_rel_error || rel.is_nan() {
                out.max_rel_error = rel;
                out.worst_index = i;
            }
        }
        out
    }
}

fn fd_step(x: f64) -> f64 {
    // ≈ ε^{1/3}·max(1, |x|): balances truncation O(h²) against rounding O(ε/h).
    6e-6 * x.abs().max(1.0)
}

/// Central finite-difference gradient of `potential` at `x`, written into `out`.
///
/// Accuracy is about `1e-10·scale` for smooth potentials.
///
/// # Errors
///
/// [`Error::DimensionMismatch`](crate::Error::DimensionMismatch) or
/// [`Error::NonFiniteInput`](crate::Error::NonFiniteInput) for a bad `x` or `out`.
///
/// # Example
///
/// ```
/// use klflow::potential::{Gaussian, finite_difference_gradient};
/// use nalgebra::SVector;
///
/// let g = Gaussian::standard(nalgebra::Const::<2>);
/// let mut fd = SVector::zeros();
/// finite_difference_gradient(&g, &nalgebra::Vector2::new(1.0, -2.0), &mut fd)?;
/// assert!((fd - nalgebra::Vector2::new(1.0, -2.0)).norm() < 1e-8);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn finite_difference_gradient<P: Potential>(
    potential: &P,
    x: &OVector<f64, P::Dim>,
    out: &mut OVector<f64, P::Dim>,
) -> Result<()>
where
    DefaultAllocator: Alloc<P::Dim>,
{
    check_len("x", potential.dim(), x)?;
    check_len("out", potential.dim(), out)?;
    finite_input("x", x.as_slice())?;
    let mut y = x.clone();
    for i in 0..x.len() {
        let h = fd_step(x[i]);
        y[i] = x[i] + h;
        let up = potential.energy(&y);
        y[i] = x[i] - h;
        let down = potential.energy(&y);
        y[i] = x[i];
        out[i] = (up - down) / (2.0 * h);
    }
    Ok(())
}

/// Central finite-difference Hessian (differences of the analytic gradient), symmetrised.
///
/// # Errors
///
/// [`Error::DimensionMismatch`](crate::Error::DimensionMismatch) or
/// [`Error::NonFiniteInput`](crate::Error::NonFiniteInput) for a bad `x`.
///
/// # Example
///
/// ```
/// use klflow::potential::{Gaussian, finite_difference_hessian};
/// use nalgebra::{SMatrix, SVector};
///
/// let g = Gaussian::isotropic(SVector::<f64, 2>::zeros(), 0.5)?;
/// let h = finite_difference_hessian(&g, &nalgebra::Vector2::new(0.3, 0.1))?;
/// assert!((h - SMatrix::<f64, 2, 2>::identity() * 2.0).norm() < 1e-8);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn finite_difference_hessian<P: Potential>(
    potential: &P,
    x: &OVector<f64, P::Dim>,
) -> Result<OMatrix<f64, P::Dim, P::Dim>>
where
    DefaultAllocator: Alloc<P::Dim>,
{
    check_len("x", potential.dim(), x)?;
    finite_input("x", x.as_slice())?;
    let d = potential.dim();
    let mut hess = OMatrix::zeros_generic(d, d);
    let mut y = x.clone();
    let mut gu = x.clone();
    let mut gd = x.clone();
    for j in 0..x.len() {
        let h = fd_step(x[j]);
        y[j] = x[j] + h;
        potential.energy_grad(&y, &mut gu);
        y[j] = x[j] - h;
        potential.energy_grad(&y, &mut gd);
        y[j] = x[j];
        let mut col = hess.column_mut(j);
        col.copy_from(&gu);
        col -= &gd;
        col /= 2.0 * h;
    }
    Ok(crate::linalg::symmetrize(&hess))
}

/// Compares `potential.energy_grad` with central finite differences of `potential.energy` at
/// `x`; also checks that `energy_grad` returns the same energy as `energy`.
///
/// # Errors
///
/// As [`finite_difference_gradient`].
///
/// # Example
///
/// ```
/// use klflow::potential::{Funnel, check_gradient};
/// use nalgebra::SVector;
///
/// let f = Funnel::new(nalgebra::Const::<3>, 3.0)?;
/// let c = check_gradient(&f, &nalgebra::Vector3::new(0.5, 1.0, -1.0))?;
/// assert!(c.max_rel_error < 1e-7);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn check_gradient<P: Potential>(
    potential: &P,
    x: &OVector<f64, P::Dim>,
) -> Result<DerivativeCheck>
where
    DefaultAllocator: Alloc<P::Dim>,
{
    let mut fd = x.clone();
    finite_difference_gradient(potential, x, &mut fd)?;
    let mut g = x.clone();
    let e1 = potential.energy_grad(x, &mut g);
    let e0 = potential.energy(x);
    let mut check = DerivativeCheck::compare(g.iter(), fd.iter());
    let de = (e1 - e0).abs();
    let rel = de / e0.abs().max(1.0);
    if rel > check.max_rel_error || rel.is_nan() {
        check.max_rel_error = rel;
        check.worst_index = usize::MAX;
    }
    check.max_abs_error = check.max_abs_error.max(de);
    Ok(check)
}

/// Compares `potential.hessian` with central finite differences of the gradient at `x`.
///
/// # Errors
///
/// As [`finite_difference_hessian`].
///
/// # Example
///
/// ```
/// use klflow::potential::{Banana, check_hessian};
/// use nalgebra::SVector;
///
/// let b = Banana::standard(nalgebra::Const::<2>);
/// assert!(check_hessian(&b, &nalgebra::Vector2::new(0.7, 1.3))?.max_rel_error < 1e-6);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn check_hessian<P: PotentialHessian>(
    potential: &P,
    x: &OVector<f64, P::Dim>,
) -> Result<DerivativeCheck>
where
    DefaultAllocator: Alloc<P::Dim>,
{
    let fd = finite_difference_hessian(potential, x)?;
    let d = potential.dim();
    let mut h = OMatrix::zeros_generic(d, d);
    potential.hessian(x, &mut h);
    Ok(DerivativeCheck::compare(h.iter(), fd.iter()))
}
