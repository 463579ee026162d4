//! The exact law of ULA on a Gaussian target.

use nalgebra::{DefaultAllocator, Dim, OMatrix};

use crate::dim::Alloc;
use crate::error::{Error, Result, positive};
use crate::gaussian::Gaussian;
use crate::linalg::{sym_apply, symmetrize};

/// The exact law of [`Ula`](crate::langevin::Ula) with step `h` on the Gaussian target
/// `π = N(μ*, A⁻¹)`.
///
/// From `x ~ N(m, S)` one step gives `N(m', S')` with
/// `m' = m − hA(m − μ*)`, `S' = (I − hA)S(I − hA) + 2hI`. The chain is stable iff
/// `0 < hλ < 2` for every eigenvalue `λ` of `A`; its stationary law is
/// `N(μ*, Q diag(1/(λ_i(1 − hλ_i/2))) Qᵀ)` (`A = QΛQᵀ`): the variance is inflated by the
/// factor `1/(1 − hλ/2)`, an O(h) bias.
///
/// # Example
///
/// ```
/// use klflow::{oracle::UlaOracle, potential::Gaussian};
/// use nalgebra::{SMatrix, SVector};
///
/// // π = N(0, 1/2), h = 0.3: stationary variance 1/(2(1 − 0.3)) = 0.714...
/// let target = Gaussian::from_precision(SVector::<f64, 1>::zeros(), SMatrix::identity() * 2.0)?;
/// let oracle = UlaOracle::new(&target, 0.3)?;
/// let v = oracle.stationary().covariance()[(0, 0)];
/// assert!((v - 1.0 / (2.0 * 0.7)).abs() < 1e-12);
///
/// // One step from a point mass's neighbourhood: the recursion by hand.
/// let start = Gaussian::isotropic(SVector::<f64, 1>::new(1.0), 0.5)?;
/// let next = oracle.step(&start)?;
/// assert!((next.mean()[0] - 0.4).abs() < 1e-12);                         // (1 − 0.6)·1
/// assert!((next.covariance()[(0, 0)] - (0.16 * 0.5 + 0.6)).abs() < 1e-12); // 0.4²·0.5 + 2h
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct UlaOracle<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    target: Gaussian<D>,
    step_size: f64,
}

impl<D: Dim> UlaOracle<D>
where
    DefaultAllocator: Alloc<D>,
{
    /// The oracle for ULA with step `step_size` on `target`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming `step_size` unless `0 < h < 2/λ_max(A)`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, oracle::UlaOracle, potential::Gaussian};
    /// use nalgebra::Vector1;
    ///
    /// // precision 4: stable iff h < 2/4
    /// let target = Gaussian::isotropic(Vector1::new(0.0), 0.25)?;
    /// assert!(UlaOracle::new(&target, 0.4).is_ok());
    /// let err = UlaOracle::new(&target, 0.5).unwrap_err();
    /// assert!(matches!(err, Error::InvalidParameter { name: "step_size", .. }));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(target: &Gaussian<D>, step_size: f64) -> Result<Self> {
        positive("step_size", step_size)?;
        let lmax = 1.0 / target.covariance_eigen_range().0;
        if step_size * lmax >= 2.0 {
            return Err(Error::InvalidParameter {
                name: "step_size",
                value: step_size,
                reason: "must be below 2/λ_max of the target's precision",
            });
        }
        Ok(Self {
            target: target.clone(),
            step_size,
        })
    }

    /// The step size `h`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{oracle::UlaOracle, potential::Gaussian};
    ///
    /// let oracle = UlaOracle::new(&Gaussian::standard(nalgebra::Const::<2>), 0.1)?;
    /// assert_eq!(oracle.step_size(), 0.1);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn step_size(&self) -> f64 {
        self.step_size
    }

    /// The law after a partial step of length `u ∈ [0, h]` along the interpolation
    /// `x_u = x − u∇U(x) + √2 (B_u − B_0)`: the one-step formulas with `h` replaced by `u`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming `u` if it is outside `[0, h]`;
    /// [`Error::DimensionMismatch`] if `law` has another dimension.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, oracle::UlaOracle, potential::Gaussian};
    /// use nalgebra::Vector1;
    ///
    /// let oracle = UlaOracle::new(&Gaussian::standard(nalgebra::Const::<1>), 0.2)?;
    /// let law = Gaussian::isotropic(Vector1::new(1.0), 0.5)?;
    /// // u = 0 is the identity, u = h the full step
    /// assert!(oracle.interpolate(&law, 0.0)?.kl(&law)?.abs() < 1e-14);
    /// assert!(oracle.interpolate(&law, 0.2)?.kl(&oracle.step(&law)?)?.abs() < 1e-14);
    /// assert!(matches!(oracle.interpolate(&law, 0.3), Err(Error::InvalidParameter { name: "u", .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn interpolate(&self, law: &Gaussian<D>, u: f64) -> Result<Gaussian<D>> {
        if !(0.0..=self.step_size).contains(&u) {
            return Err(Error::InvalidParameter {
                name: "u",
                value: u,
                reason: "must lie in [0, h]",
            });
        }
        if law.dim_value() != self.target.dim_value() {
            return Err(Error::DimensionMismatch {
                name: "law",
                expected: self.target.dim_value(),
                found: law.dim_value(),
            });
        }
        let a = self.target.precision();
        let (r, c) = a.shape_generic();
        let mut m = OMatrix::<f64, D, D>::identity_generic(r, c);
        m -= a * u; // I − uA
        let mean = &m * (law.mean() - self.target.mean()) + self.target.mean();
        let mut cov = symmetrize(&(&m * law.covariance() * &m));
        for i in 0..cov.nrows() {
            cov[(i, i)] += 2.0 * u;
        }
        Gaussian::new(mean, cov)
    }

    /// The law after one full step.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if `law` has another dimension.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{oracle::UlaOracle, potential::Gaussian};
    /// use nalgebra::Vector1;
    ///
    /// // N(0, 1) target, h = 0.5: mean 2 → (1 − 0.5)·2, variance 1 → 0.5²·1 + 2·0.5
    /// let oracle = UlaOracle::new(&Gaussian::standard(nalgebra::Const::<1>), 0.5)?;
    /// let next = oracle.step(&Gaussian::isotropic(Vector1::new(2.0), 1.0)?)?;
    /// assert!((next.mean()[0] - 1.0).abs() < 1e-14);
    /// assert!((next.covariance()[(0, 0)] - 1.25).abs() < 1e-14);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn step(&self, law: &Gaussian<D>) -> Result<Gaussian<D>> {
        self.interpolate(law, self.step_size)
    }

    /// The law after `n` steps.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if `law` has another dimension.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{oracle::UlaOracle, potential::Gaussian};
    /// use nalgebra::Vector1;
    ///
    /// let oracle = UlaOracle::new(&Gaussian::standard(nalgebra::Const::<1>), 0.5)?;
    /// let start = Gaussian::isotropic(Vector1::new(8.0), 1.0)?;
    /// let law = oracle.propagate(&start, 3)?;
    /// assert!((law.mean()[0] - 1.0).abs() < 1e-12); // 8 · 0.5³
    /// // many steps: the stationary law
    /// assert!(oracle.propagate(&start, 200)?.kl(&oracle.stationary())? < 1e-12);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn propagate(&self, law: &Gaussian<D>, n: usize) -> Result<Gaussian<D>> {
        let mut cur = law.clone();
        for _ in 0..n {
            cur = self.step(&cur)?;
        }
        Ok(cur)
    }

    /// The stationary law `N(μ*, Q diag(1/(λ_i(1 − hλ_i/2))) Qᵀ)`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{oracle::UlaOracle, potential::Gaussian};
    ///
    /// let oracle = UlaOracle::new(&Gaussian::standard(nalgebra::Const::<2>), 0.5)?;
    /// let pi_h = oracle.stationary();
    /// // variance 1/(1 − h/2) = 4/3, and a fixed point of the step
    /// assert!((pi_h.covariance()[(0, 0)] - 4.0 / 3.0).abs() < 1e-12);
    /// assert!(oracle.step(&pi_h)?.kl(&pi_h)?.abs() < 1e-12);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn stationary(&self) -> Gaussian<D> {
        let h = self.step_size;
        let cov = sym_apply(self.target.precision(), |l| 1.0 / (l * (1.0 - 0.5 * h * l)));
        Gaussian::new(self.target.mean().clone(), cov)
            .expect("0 < hλ < 2 makes the stationary covariance SPD")
    }
}
