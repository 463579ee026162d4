//! Point sets on spheres and random rotations.

use nalgebra::DMatrix;
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;

use crate::error::{Error, Result};

/// `n` equally spaced points on the circle `S¹ ⊂ ℝ²`, as the columns of a `2 × n` matrix
/// (angles `2πj/n`).
///
/// # Example
///
/// ```
/// let c = klflow::field::circle_points(4);
/// assert!((c[(0, 1)]).abs() < 1e-15 && (c[(1, 1)] - 1.0).abs() < 1e-15);
/// ```
pub fn circle_points(n: usize) -> DMatrix<f64> {
    DMatrix::from_fn(2, n, |i, j| {
        let t = std::f64::consts::TAU * j as f64 / n as f64;
        if i == 0 { t.cos() } else { t.sin() }
    })
}

/// `n` nearly uniform points on the sphere `S² ⊂ ℝ³` (the Fibonacci lattice), as the columns
/// of a `3 × n` matrix.
///
/// # Example
///
/// ```
/// let p = klflow::field::fibonacci_sphere(50);
/// assert!(p.column_iter().all(|c| (c.norm() - 1.0).abs() < 1e-14));
/// ```
pub fn fibonacci_sphere(n: usize) -> DMatrix<f64> {
    let golden = std::f64::consts::PI * (3.0 - 5f64.sqrt());
    DMatrix::from_fn(3, n, |i, j| {
        let z = 1.0 - (2.0 * j as f64 + 1.0) / n as f64;
        let r = (1.0 - z * z).max(0.0).sqrt();
        let phi = golden * j as f64;
        match i {
            0 => r * phi.cos(),
            1 => r * phi.sin(),
            _ => z,
        }
    })
}

/// Normalises every column of `points` to unit length (projects onto the sphere).
///
/// # Errors
///
/// [`Error::NonFiniteInput`] if a column is zero or not finite (it has no projection).
///
/// # Example
///
/// ```
/// use nalgebra::DMatrix;
/// let mut p = DMatrix::from_column_slice(2, 1, &[3.0, 4.0]);
/// klflow::field::project_to_sphere(&mut p)?;
/// assert!((p[(0, 0)] - 0.6).abs() < 1e-15);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn project_to_sphere(points: &mut DMatrix<f64>) -> Result<()> {
    for mut c in points.column_iter_mut() {
        let n = c.norm();
        if !(n.is_finite() && n > 0.0) {
            return Err(Error::NonFiniteInput { name: "points" });
        }
        c /= n;
    }
    Ok(())
}

/// A Haar-distributed random rotation of `ℝ^dim` (QR of a Gaussian matrix with the signs of
/// `R`'s diagonal moved into `Q`, then one column flipped if needed so that `det = +1`).
///
/// # Example
///
/// ```
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
/// let q = klflow::field::random_rotation(3, &mut ChaCha8Rng::seed_from_u64(0));
/// assert!((q.transpose() * &q - nalgebra::DMatrix::<f64>::identity(3, 3)).amax() < 1e-14);
/// assert!((q.determinant() - 1.0).abs() < 1e-12);
/// ```
pub fn random_rotation<R: Rng + ?Sized>(dim: usize, rng: &mut R) -> DMatrix<f64> {
    let g = DMatrix::from_fn(dim, dim, |_, _| rng.sample(StandardNormal));
    let qr = g.qr();
    let mut q = qr.q();
    let r = qr.r();
    for j in 0..dim {
        if r[(j, j)] < 0.0 {
            let mut c = q.column_mut(j);
            c.neg_mut();
        }
    }
    if dim > 0 && q.determinant() < 0.0 {
        let mut c = q.column_mut(0);
        c.neg_mut();
    }
    q
}
