//! The crate's error type.
//!
//! Every fallible constructor and every sampler step returns [`Result`]. Errors are small,
//! `Copy`, and name the offending parameter or quantity, so a caller can report them or match
//! on them without string parsing.

/// Everything that can go wrong in klflow.
///
/// The enum is `#[non_exhaustive]`: later versions may add variants.
///
/// # Example
///
/// ```
/// use klflow::{Error, langevin::Ula, potential::Gaussian};
/// use nalgebra::{SMatrix, SVector};
///
/// let target = Gaussian::new(SVector::<f64, 2>::zeros(), SMatrix::identity()).unwrap();
/// match Ula::new(target, -0.1) {
///     Err(Error::InvalidParameter { name, .. }) => assert_eq!(name, "step_size"),
///     _ => unreachable!(),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Error {
    /// A scalar parameter is out of its domain (non-positive step, NaN, ...).
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// The parameter's name, as in the constructor's signature.
        name: &'static str,
        /// The value that was given.
        value: f64,
        /// What the value must satisfy.
        reason: &'static str,
    },
    /// A vector, matrix or data set has the wrong size.
    #[error("dimension mismatch in `{name}`: expected {expected}, found {found}")]
    DimensionMismatch {
        /// The argument whose size is wrong.
        name: &'static str,
        /// The size it must have.
        expected: usize,
        /// The size it has.
        found: usize,
    },
    /// A matrix that must be symmetric is not (beyond a relative tolerance of 1e-10).
    #[error("`{name}` is not symmetric (largest |a_ij - a_ji| = {asymmetry:e})")]
    NotSymmetric {
        /// The matrix argument.
        name: &'static str,
        /// The largest absolute asymmetry found.
        asymmetry: f64,
    },
    /// A matrix that must be symmetric positive definite is not.
    #[error("`{name}` is not positive definite")]
    NotPositiveDefinite {
        /// The matrix argument.
        name: &'static str,
    },
    /// A data set or list that must be non-empty is empty.
    #[error("`{name}` is empty")]
    Empty {
        /// The argument that is empty.
        name: &'static str,
    },
    /// An input contains NaN or an infinity.
    #[error("`{name}` contains a non-finite value")]
    NonFiniteInput {
        /// The argument that is not finite.
        name: &'static str,
    },
    /// Reading or writing a file failed.
    #[error("I/O error while {context}: {kind}")]
    Io {
        /// What was being done (`"writing CSV"`, ...).
        context: &'static str,
        /// The kind of the underlying `std::io::Error`.
        #[cfg_attr(feature = "serde", serde(skip, default = "io_other"))]
        kind: std::io::ErrorKind,
    },
    /// A run produced a non-finite quantity (energy, gradient, position) at a given step.
    ///
    /// Samplers report this instead of returning NaN samples.
    #[error("non-finite {quantity} at step {step}")]
    NonFinite {
        /// The step (1-based count of completed steps, 0 = initialisation) where it happened.
        step: usize,
        /// What became non-finite: `"energy"`, `"gradient"`, `"position"`, ...
        quantity: &'static str,
    },
}

#[cfg(feature = "serde")]
fn io_other() -> std::io::ErrorKind {
    std::io::ErrorKind::Other
}

/// `Result` with the crate's [`Error`].
///
/// # Example
///
/// ```
/// use klflow::{Error, Result, potential::Gaussian};
/// use nalgebra::DVector;
///
/// fn entropy_of_isotropic(d: usize, variance: f64) -> Result<f64> {
///     Ok(Gaussian::isotropic(DVector::zeros(d), variance)?.entropy())
/// }
/// assert!(entropy_of_isotropic(3, 1.0).is_ok());
/// assert!(matches!(entropy_of_isotropic(3, -1.0), Err(Error::InvalidParameter { name: "variance", .. })));
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks that `value` is finite and strictly positive.
pub(crate) fn positive(name: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(Error::InvalidParameter {
            name,
            value,
            reason: "must be finite and > 0",
        })
    }
}

/// Checks that every entry of `values` is finite (branch free, see [`crate::dim::all_finite`]).
pub(crate) fn finite_input(name: &'static str, values: &[f64]) -> Result<()> {
    if crate::dim::all_finite(values) {
        Ok(())
    } else {
        Err(Error::NonFiniteInput { name })
    }
}
