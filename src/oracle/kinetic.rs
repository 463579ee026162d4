//! The exact law of the underdamped Langevin exact-OU integrator on a Gaussian target.

use nalgebra::{DMatrix, DVector, DefaultAllocator, Dim, Dyn, Matrix3, OMatrix, Vector3};

use crate::dim::Alloc;
use crate::error::{Error, Result};
use crate::gaussian::Gaussian;
use crate::langevin::OuStep;
use crate::linalg::{sym_apply, symmetrize};

/// The exact law of [`UnderdampedLangevin`](crate::langevin::UnderdampedLangevin) with the
/// [`ExactOu`](crate::langevin::KineticIntegrator::ExactOu) integrator on `π = N(μ*, A⁻¹)`.
///
/// With `z = (x − μ*, p)` one step is `z' = Mz + ζ`,
/// `M = [[I − a₂A, a₁I], [−a₁A, eI]]`, `Cov ζ = [[v_x I, cI], [cI, v_p I]]`
/// (coefficients of [`OuStep`]), so joint laws of `(x, p)` — represented as a
/// `Gaussian<Dyn>` of dimension `2d`, position first — stay Gaussian. In the eigenbasis of `A`
/// the stationary covariance solves a 2×2 Lyapunov equation per eigenvalue; its position part
/// differs from `A⁻¹` by O(η) (the integrator's bias).
///
/// # Example
///
/// ```
/// use klflow::{oracle::UnderdampedOracle, potential::Gaussian};
/// use nalgebra::{Const, SMatrix, Vector1};
///
/// let target = Gaussian::standard(Const::<1>);
/// let bias = |eta: f64| {
///     let o = UnderdampedOracle::new(&target, 2.0, eta).unwrap();
///     o.stationary_position().unwrap().covariance()[(0, 0)] - 1.0
/// };
/// // First-order bias: halving η roughly halves it.
/// let r = bias(0.1) / bias(0.05);
/// assert!((r - 2.0).abs() < 0.1);
/// ```
#[derive(Clone, Debug)]
pub struct UnderdampedOracle<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    target: Gaussian<D>,
    ou: OuStep,
    transition: DMatrix<f64>,
    noise: DMatrix<f64>,
}

impl<D: Dim> UnderdampedOracle<D>
where
    DefaultAllocator: Alloc<D>,
{
    /// The oracle for friction `friction` and step `step` on `target`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for invalid coefficients, or naming `step` if the linear
    /// recursion is unstable (spectral radius of some 2×2 block ≥ 1).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, oracle::UnderdampedOracle, potential::Gaussian};
    ///
    /// let target = Gaussian::standard(nalgebra::Const::<2>);
    /// assert!(UnderdampedOracle::new(&target, 1.0, 0.1).is_ok());
    /// let err = UnderdampedOracle::new(&target, -1.0, 0.1).unwrap_err();
    /// assert!(matches!(err, Error::InvalidParameter { name: "friction", .. }));
    /// ```
    pub fn new(target: &Gaussian<D>, friction: f64, step: f64) -> Result<Self> {
        let ou = OuStep::new(friction, step)?;
        let (e, a1, a2) = ou.drift_coefficients();
        let [[vx, c], [_, vp]] = ou.noise_covariance();
        let a = target.precision();
        let d = a.nrows();
        let mut m = DMatrix::zeros(2 * d, 2 * d);
        let mut q = DMatrix::zeros(2 * d, 2 * d);
        for j in 0..d {
            for i in 0..d {
                let id = if i == j { 1.0 } else { 0.0 };
                m[(i, j)] = id - a2 * a[(i, j)];
                m[(i, d + j)] = a1 * id;
                m[(d + i, j)] = -a1 * a[(i, j)];
                m[(d + i, d + j)] = e * id;
            }
            q[(j, j)] = vx;
            q[(j, d + j)] = c;
            q[(d + j, j)] = c;
            q[(d + j, d + j)] = vp;
        }
        let (lmin, lmax) = target.covariance_eigen_range();
        for lambda in [1.0 / lmax, 1.0 / lmin] {
            let (m11, m12, m21, m22) = (1.0 - a2 * lambda, a1, -a1 * lambda, e);
            let tr = m11 + m22;
            let det = m11 * m22 - m12 * m21;
            let disc = tr * tr - 4.0 * det;
            let rho = if disc >= 0.0 {
                0.5 * (tr.abs() + disc.sqrt())
            } else {
                det.abs().sqrt()
            };
            if rho >= 1.0 {
                return Err(Error::InvalidParameter {
                    name: "step",
                    value: step,
                    reason: "the underdamped recursion is unstable on this target",
                });
            }
        }
        Ok(Self {
            target: target.clone(),
            ou,
            transition: m,
            noise: q,
        })
    }

    /// The joint law of `(x, p)` with `x ~ position`, `p ~ N(0, I)` independent (as after
    /// `init`).
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if `position` has another dimension.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{oracle::UnderdampedOracle, potential::Gaussian};
    /// use nalgebra::Vector1;
    ///
    /// let oracle = UnderdampedOracle::new(&Gaussian::standard(nalgebra::Const::<1>), 1.0, 0.1)?;
    /// let joint = oracle.joint_initial(&Gaussian::isotropic(Vector1::new(3.0), 0.5)?)?;
    /// // (x, p): position law first, then an independent N(0, 1) momentum
    /// assert_eq!(joint.mean().as_slice(), &[3.0, 0.0]);
    /// assert_eq!(joint.covariance().as_slice(), &[0.5, 0.0, 0.0, 1.0]);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn joint_initial(&self, position: &Gaussian<D>) -> Result<Gaussian<Dyn>> {
        let d = self.target.dim_value();
        if position.dim_value() != d {
            return Err(Error::DimensionMismatch {
                name: "position",
                expected: d,
                found: position.dim_value(),
            });
        }
        let mut mean = DVector::zeros(2 * d);
        let mut cov = DMatrix::identity(2 * d, 2 * d);
        for i in 0..d {
            mean[i] = position.mean()[i];
            for j in 0..d {
                cov[(i, j)] = position.covariance()[(i, j)];
            }
        }
        Gaussian::<Dyn>::new(mean, cov)
    }

    /// The joint law after one step.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] unless `joint` has dimension `2d`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, oracle::UnderdampedOracle, potential::Gaussian};
    ///
    /// let oracle = UnderdampedOracle::new(&Gaussian::standard(nalgebra::Const::<1>), 1.0, 0.1)?;
    /// // the stationary joint law is a fixed point of the step
    /// let pi = oracle.stationary()?;
    /// assert!(oracle.step(&pi)?.kl(&pi)?.abs() < 1e-12);
    /// // joint laws have dimension 2d
    /// let wrong = Gaussian::standard(nalgebra::Dyn(3));
    /// assert!(matches!(oracle.step(&wrong), Err(Error::DimensionMismatch { .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn step(&self, joint: &Gaussian<Dyn>) -> Result<Gaussian<Dyn>> {
        let d = self.target.dim_value();
        if joint.dim_value() != 2 * d {
            return Err(Error::DimensionMismatch {
                name: "joint",
                expected: 2 * d,
                found: joint.dim_value(),
            });
        }
        let mut centred = joint.mean().clone();
        for i in 0..d {
            centred[i] -= self.target.mean()[i];
        }
        let mut mean = &self.transition * centred;
        for i in 0..d {
            mean[i] += self.target.mean()[i];
        }
        let cov = symmetrize::<Dyn>(
            &(&self.transition * joint.covariance() * self.transition.transpose() + &self.noise),
        );
        Gaussian::<Dyn>::new(mean, cov)
    }

    /// The joint law after `n` steps.
    ///
    /// # Errors
    ///
    /// As [`step`](Self::step).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{oracle::UnderdampedOracle, potential::Gaussian};
    /// use nalgebra::Vector1;
    ///
    /// let oracle = UnderdampedOracle::new(&Gaussian::standard(nalgebra::Const::<1>), 2.0, 0.1)?;
    /// let start = oracle.joint_initial(&Gaussian::isotropic(Vector1::new(5.0), 0.1)?)?;
    /// let two = oracle.propagate(&start, 2)?;
    /// assert!(two.kl(&oracle.step(&oracle.step(&start)?)?)?.abs() < 1e-12);
    /// // after many steps: the stationary law
    /// assert!(oracle.propagate(&start, 2_000)?.kl(&oracle.stationary()?)? < 1e-9);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn propagate(&self, joint: &Gaussian<Dyn>, n: usize) -> Result<Gaussian<Dyn>> {
        let mut cur = joint.clone();
        for _ in 0..n {
            cur = self.step(&cur)?;
        }
        Ok(cur)
    }

    /// The per-eigenvalue stationary covariance `(s_xx, s_xp, s_pp)` for precision eigenvalue
    /// `lambda`.
    fn stationary_block(&self, lambda: f64) -> Vector3<f64> {
        let (e, a1, a2) = self.ou.drift_coefficients();
        let [[vx, c], [_, vp]] = self.ou.noise_covariance();
        let (m11, m12, m21, m22) = (1.0 - a2 * lambda, a1, -a1 * lambda, e);
        let t = Matrix3::new(
            m11 * m11,
            2.0 * m11 * m12,
            m12 * m12,
            m11 * m21,
            m11 * m22 + m12 * m21,
            m12 * m22,
            m21 * m21,
            2.0 * m21 * m22,
            m22 * m22,
        );
        (Matrix3::identity() - t)
            .lu()
            .solve(&Vector3::new(vx, c, vp))
            .unwrap_or_else(Vector3::zeros)
    }

    /// The stationary joint law of `(x, p)`.
    ///
    /// # Errors
    ///
    /// [`Error::NotPositiveDefinite`] if the solved covariance is not SPD (cannot happen for a
    /// stable recursion).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{oracle::UnderdampedOracle, potential::Gaussian};
    ///
    /// let oracle = UnderdampedOracle::new(&Gaussian::standard(nalgebra::Const::<2>), 1.0, 0.01)?;
    /// let pi = oracle.stationary()?;
    /// assert_eq!(pi.dim_value(), 4); // (x, p) in d = 2
    /// // for a small step it is close to π ⊗ N(0, I)
    /// let exact = Gaussian::standard(nalgebra::Dyn(4));
    /// assert!(pi.kl(&exact)? < 1e-3);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn stationary(&self) -> Result<Gaussian<Dyn>> {
        let d = self.target.dim_value();
        let a = self.target.precision();
        let blocks: [OMatrix<f64, D, D>; 3] =
            [0, 1, 2].map(|k| sym_apply(a, |l| self.stationary_block(l)[k]));
        let mut cov = DMatrix::zeros(2 * d, 2 * d);
        let mut mean = DVector::zeros(2 * d);
        for i in 0..d {
            mean[i] = self.target.mean()[i];
            for j in 0..d {
                cov[(i, j)] = blocks[0][(i, j)];
                cov[(i, d + j)] = blocks[1][(i, j)];
                cov[(d + i, j)] = blocks[1][(i, j)];
                cov[(d + i, d + j)] = blocks[2][(i, j)];
            }
        }
        Gaussian::<Dyn>::new(mean, symmetrize::<Dyn>(&cov))
    }

    /// The position marginal of the stationary law.
    ///
    /// # Errors
    ///
    /// As [`stationary`](Self::stationary).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{oracle::UnderdampedOracle, potential::Gaussian};
    ///
    /// let target = Gaussian::standard(nalgebra::Const::<2>);
    /// let oracle = UnderdampedOracle::new(&target, 1.0, 0.1)?;
    /// let pos = oracle.stationary_position()?;
    /// // the position block of the joint stationary law
    /// let joint = oracle.stationary()?;
    /// assert!((pos.covariance()[(1, 1)] - joint.covariance()[(1, 1)]).abs() < 1e-12);
    /// assert!(pos.kl(&target)? < 1e-2); // O(η) bias
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn stationary_position(&self) -> Result<Gaussian<D>> {
        let a = self.target.precision();
        let cov = sym_apply(a, |l| self.stationary_block(l)[0]);
        Gaussian::new(self.target.mean().clone(), cov)
    }
}
