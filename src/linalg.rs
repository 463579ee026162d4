//! Symmetric-matrix helpers shared by the Gaussian law, the oracle and the VI module.
//!
//! Matrix square roots and other spectral functions always go through the symmetric
//! eigendecomposition with clamped eigenvalues and a re-symmetrised result, never through a
//! general (non-symmetric) matrix function.

use nalgebra::{DMatrix, DefaultAllocator, Dim, OMatrix, SymmetricEigen};

use crate::dim::Alloc;
use crate::error::{Error, Result};

/// Relative tolerance of the symmetry check.
pub(crate) const SYMMETRY_TOL: f64 = 1e-10;

/// Checks that `m` is square, finite and symmetric up to [`SYMMETRY_TOL`] (relative to its
/// largest entry), and returns its exactly symmetrised copy.
pub(crate) fn checked_symmetric<D: Dim>(
    name: &'static str,
    m: &OMatrix<f64, D, D>,
) -> Result<OMatrix<f64, D, D>>
where
    DefaultAllocator: Alloc<D>,
{
    if !m.iter().all(|v| v.is_finite()) {
        return Err(Error::NonFiniteInput { name });
    }
    let scale = m.amax().max(f64::MIN_POSITIVE);
    let mut asym = 0.0_f64;
    let n = m.nrows();
    for j in 0..n {
        for i in 0..j {
            asym = asym.max((m[(i, j)] - m[(j, i)]).abs());
        }
    }
    if asym > SYMMETRY_TOL * scale {
        return Err(Error::NotSymmetric {
            name,
            asymmetry: asym,
        });
    }
    Ok(symmetrize(m))
}

/// `(m + mᵀ)/2`.
pub(crate) fn symmetrize<D: Dim>(m: &OMatrix<f64, D, D>) -> OMatrix<f64, D, D>
where
    DefaultAllocator: Alloc<D>,
{
    (m + m.transpose()) * 0.5
}

/// Applies `f` to the eigenvalues of the symmetric matrix `m`: `Q f(Λ) Qᵀ`, re-symmetrised.
///
/// The decomposition runs on a heap copy (`DMatrix`), which keeps the `DimSub` bounds of
/// nalgebra's `SymmetricEigen` out of every generic signature; its O(d³) cost dwarfs the copy.
pub(crate) fn sym_apply<D: Dim>(
    m: &OMatrix<f64, D, D>,
    f: impl Fn(f64) -> f64,
) -> OMatrix<f64, D, D>
where
    DefaultAllocator: Alloc<D>,
{
    let (r, c) = m.shape_generic();
    let n = m.nrows();
    let eig =
        SymmetricEigen::<f64, nalgebra::Dyn>::new(DMatrix::from_column_slice(n, n, m.as_slice()));
    let mut q = eig.eigenvectors.clone();
    for (j, lam) in eig.eigenvalues.iter().enumerate() {
        let v = f(*lam);
        q.column_mut(j).scale_mut(v);
    }
    let out = q * eig.eigenvectors.transpose();
    symmetrize(&OMatrix::from_column_slice_generic(r, c, out.as_slice()))
}

/// Eigenvalues of the symmetric matrix `m`, ascending.
pub(crate) fn sym_eigenvalues<D: Dim>(m: &OMatrix<f64, D, D>) -> Vec<f64>
where
    DefaultAllocator: Alloc<D>,
{
    let n = m.nrows();
    let mut ev: Vec<f64> =
        SymmetricEigen::<f64, nalgebra::Dyn>::new(DMatrix::from_column_slice(n, n, m.as_slice()))
            .eigenvalues
            .iter()
            .copied()
            .collect();
    ev.sort_by(f64::total_cmp);
    ev
}

/// The principal square root of a symmetric positive semi-definite matrix (eigenvalues clamped
/// at 0).
pub(crate) fn sym_sqrt<D: Dim>(m: &OMatrix<f64, D, D>) -> OMatrix<f64, D, D>
where
    DefaultAllocator: Alloc<D>,
{
    sym_apply(m, |l| l.max(0.0).sqrt())
}

/// Writes the eigendecomposition `m = Q diag(λ) Qᵀ` of the symmetric matrix `m` into `q` and
/// `lambda`. Returns `false` if the iteration did not converge (non-finite input).
///
/// Only `m`'s lower triangle is read. The decomposition itself allocates (a heap copy and
/// nalgebra's own work space); its O(d³) cost dwarfs the O(d²) allocation.
pub(crate) fn sym_eigen_into<D: Dim>(
    m: &OMatrix<f64, D, D>,
    q: &mut OMatrix<f64, D, D>,
    lambda: &mut nalgebra::OVector<f64, D>,
) -> bool
where
    DefaultAllocator: Alloc<D>,
{
    let n = m.nrows();
    if !m.iter().all(|v| v.is_finite()) {
        return false;
    }
    let max_iter = 1000 * n.max(10);
    match SymmetricEigen::<f64, nalgebra::Dyn>::try_new(
        DMatrix::from_column_slice(n, n, m.as_slice()),
        f64::EPSILON,
        max_iter,
    ) {
        Some(eig) => {
            q.as_mut_slice()
                .copy_from_slice(eig.eigenvectors.as_slice());
            lambda
                .as_mut_slice()
                .copy_from_slice(eig.eigenvalues.as_slice());
            true
        }
        None => false,
    }
}

/// The symmetric eigendecomposition `m = Q diag(λ) Qᵀ` (eigenvalues unsorted), through a heap
/// copy like [`sym_apply`]. A non-finite or non-converging input yields NaN eigenvalues, which
/// callers' positivity checks reject.
pub(crate) fn sym_eigen<D: Dim>(
    m: &OMatrix<f64, D, D>,
) -> (nalgebra::OVector<f64, D>, OMatrix<f64, D, D>)
where
    DefaultAllocator: Alloc<D>,
{
    let (r, c) = m.shape_generic();
    let mut values = nalgebra::OVector::<f64, D>::zeros_generic(r, nalgebra::U1);
    let mut vectors = OMatrix::<f64, D, D>::zeros_generic(r, c);
    if !sym_eigen_into(m, &mut vectors, &mut values) {
        values.fill(f64::NAN);
    }
    (values, vectors)
}
