//! Dimension plumbing: one bound for everything the crate allocates, and small vector helpers.
//!
//! klflow is generic over nalgebra's [`Dim`]: `Const<N>` gives stack-allocated
//! [`SVector<f64, N>`](nalgebra::SVector) states for small problems and [`Dyn`](nalgebra::Dyn)
//! gives heap-allocated [`DVector`](nalgebra::DVector) states for large ones.

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, Dim, OVector, U1};
use rand::Rng;
use rand_distr::StandardNormal;

use crate::error::{Error, Result};

/// The allocator bounds klflow needs for a dimension `D`: vectors, square matrices and row
/// vectors. `DefaultAllocator` implements it for every `Const<N>` and for `Dyn`.
///
/// Write `where DefaultAllocator: Alloc<D>` instead of three `Allocator` bounds.
///
/// # Example
///
/// ```
/// use klflow::dim::Alloc;
/// use nalgebra::{DefaultAllocator, Dim, OMatrix};
///
/// fn identity<D: Dim>(d: D) -> OMatrix<f64, D, D>
/// where
///     DefaultAllocator: Alloc<D>,
/// {
///     OMatrix::identity_generic(d, d)
/// }
/// assert_eq!(identity(nalgebra::Dyn(3)).trace(), 3.0);
/// ```
pub trait Alloc<D: Dim>: Allocator<D> + Allocator<D, D> + Allocator<U1, D> {}
impl<D: Dim, A: Allocator<D> + Allocator<D, D> + Allocator<U1, D>> Alloc<D> for A {}

/// Checks that a vector has the length of dimension `dim`.
///
/// # Errors
///
/// [`Error::DimensionMismatch`] naming `name` if the lengths differ.
///
/// # Example
///
/// ```
/// use klflow::dim::check_len;
/// use nalgebra::{DVector, Dyn};
///
/// assert!(check_len("x", Dyn(3), &DVector::<f64>::zeros(3)).is_ok());
/// assert!(check_len("x", Dyn(3), &DVector::<f64>::zeros(2)).is_err());
/// ```
pub fn check_len<D: Dim>(name: &'static str, dim: D, x: &OVector<f64, D>) -> Result<()>
where
    DefaultAllocator: Allocator<D>,
{
    if x.len() == dim.value() {
        Ok(())
    } else {
        Err(Error::DimensionMismatch {
            name,
            expected: dim.value(),
            found: x.len(),
        })
    }
}

/// Overwrites `out` with independent standard normal draws. Allocates nothing.
///
/// # Example
///
/// ```
/// use klflow::dim::fill_standard_normal;
/// use nalgebra::SVector;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let mut rng = ChaCha8Rng::seed_from_u64(1);
/// let mut z = SVector::<f64, 3>::zeros();
/// fill_standard_normal(&mut z, &mut rng);
/// assert!(z.iter().all(|v| v.is_finite() && *v != 0.0));
/// ```
pub fn fill_standard_normal<D: Dim, R: Rng + ?Sized>(out: &mut OVector<f64, D>, rng: &mut R)
where
    DefaultAllocator: Allocator<D>,
{
    for v in out.iter_mut() {
        *v = rand::RngExt::sample(rng, StandardNormal);
    }
}

/// `true` if every entry is finite. Branch free (vectorises): `v − v` is 0 for a finite `v` and
/// NaN otherwise, so the sum of the differences is 0 exactly when every entry is finite.
#[inline]
#[allow(clippy::eq_op)] // v − v is the point: 0 or NaN
pub(crate) fn all_finite(values: &[f64]) -> bool {
    let mut acc = [0.0f64; 8];
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k] - c[k];
        }
    }
    let mut s = acc.iter().sum::<f64>();
    for v in rest {
        s += v - v;
    }
    s == 0.0
}

/// `Σ aᵢbᵢ` with eight independent accumulators, so the compiler can vectorise the reduction
/// (a plain iterator sum must keep the sequential order of floating-point additions).
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}
