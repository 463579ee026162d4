//! The maximum mean discrepancy between two samples.

use nalgebra::DMatrix;

use crate::error::{Error, Result};
use crate::kernel::Kernel;

/// The unbiased estimate of MMD² between the samples `x` (`d × m`) and `y` (`d × n`):
///
/// ```text
/// MMD²_u = Σ_{i≠i'} k(x_i, x_i')/(m(m−1)) + Σ_{j≠j'} k(y_j, y_j')/(n(n−1)) − 2 Σ_{i,j} k(x_i, y_j)/(mn)
/// ```
///
/// (Gretton et al. 2012). Its expectation is the population MMD², 0 when both samples come
/// from the same law; it can be negative. O((m + n)²d) kernel evaluations.
///
/// # Errors
///
/// [`Error::DimensionMismatch`] if the dimensions differ; [`Error::InvalidParameter`] if a
/// sample has fewer than two points; [`Error::NonFiniteInput`] for non-finite points.
///
/// # Example
///
/// ```
/// use klflow::{kernel::Rbf, stein::mmd2_unbiased};
/// use nalgebra::DMatrix;
///
/// let x = DMatrix::from_column_slice(1, 3, &[0.0, 1.0, 2.0]);
/// let y = x.map(|v| v + 5.0);
/// let k = Rbf::new(1.0)?;
/// assert!(mmd2_unbiased(&k, &x, &y)? > 0.5);
/// assert!(mmd2_unbiased(&k, &x, &x)? < 0.0); // unbiased: the same sample twice is below 0
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn mmd2_unbiased<K: Kernel>(kernel: &K, x: &DMatrix<f64>, y: &DMatrix<f64>) -> Result<f64> {
    if x.nrows() != y.nrows() {
        return Err(Error::DimensionMismatch {
            name: "y",
            expected: x.nrows(),
            found: y.nrows(),
        });
    }
    for (name, s) in [("x", x), ("y", y)] {
        if s.ncols() < 2 {
            return Err(Error::InvalidParameter {
                name,
                value: s.ncols() as f64,
                reason: "needs at least two points",
            });
        }
        crate::error::finite_input(name, s.as_slice())?;
    }
    let within = |s: &DMatrix<f64>| {
        let m = s.ncols();
        let mut t = 0.0;
        for j in 1..m {
            for i in 0..j {
                t += kernel.value(s.column(i).as_slice(), s.column(j).as_slice());
            }
        }
        2.0 * t / (m as f64 * (m as f64 - 1.0))
    };
    let mut cross = 0.0;
    for xi in x.column_iter() {
        for yj in y.column_iter() {
            cross += kernel.value(xi.as_slice(), yj.as_slice());
        }
    }
    Ok(within(x) + within(y) - 2.0 * cross / (x.ncols() as f64 * y.ncols() as f64))
}
