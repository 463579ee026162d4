//! Bures–Wasserstein gradient descent, the baseline for FB-GVI.

use std::marker::PhantomData;

use nalgebra::{DefaultAllocator, Dim};
use rand::Rng;

use super::fb_gvi::check_init;
use super::state::{GviInfo, GviState, Scheme, gvi_step};
use super::{Curvature, ExactHessian, Expectation, Rule, SteinHessian, check_step};
use crate::dim::Alloc;
use crate::error::Result;
use crate::gaussian::Gaussian;
use crate::potential::{Potential, PotentialHessian};
use crate::sampler::Sampler;

/// Bures–Wasserstein gradient descent for Gaussian VI (Lambert, Chewi, Bach, Bonnabel,
/// Rigollet, NeurIPS 2022): the explicit (forward) Euler step of the BW gradient flow of the
/// whole of `F(p) = E_pU − H(p)`.
///
/// The BW gradient at `p = N(m, Σ)` is the affine map
/// `x ↦ E∇U + (E∇²U − Σ⁻¹)(x − m)`; moving along it gives, with `M = E∇²U − Σ⁻¹`,
///
/// ```text
/// m_{k+1} = m_k − h E∇U
/// Σ_{k+1} = (I − hM) Σ_k (I − hM)
/// ```
///
/// Same interface, state and report as [`FbGvi`](super::FbGvi). The difference is the
/// entropy: here it enters the explicit step through `Σ⁻¹`, whose curvature is unbounded as
/// `Σ` shrinks, so the step is only stable while `h ≲ λ_min(Σ_k)`; FB-GVI treats the entropy
/// implicitly and has no such restriction. If an update makes `Σ` singular the step returns
/// [`Error::NotPositiveDefinite`](crate::Error::NotPositiveDefinite) naming `covariance`.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, potential::Gaussian, vi::{BwGd, Expectation}};
/// use nalgebra::{SMatrix, SVector};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let target = Gaussian::new(SVector::<f64, 2>::new(1.0, 2.0),
///                            SMatrix::<f64, 2, 2>::new(1.0, 0.3, 0.3, 0.5))?;
/// let bw = BwGd::new(&target, 0.1, Expectation::Quadratic)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut state = bw.init(Gaussian::standard(nalgebra::Const::<2>), &mut rng)?;
/// for _ in 0..500 {
///     bw.step(&mut state, &mut rng)?;
/// }
/// assert!(state.gaussian()?.kl(&target)? < 1e-10);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct BwGd<P, C = ExactHessian> {
    potential: P,
    step_size: f64,
    rule: Rule,
    curvature: PhantomData<C>,
}

impl<P: PotentialHessian> BwGd<P, ExactHessian> {
    /// BW gradient descent with step `h = step_size`, expectations by `expectation`, and the
    /// target's own Hessian.
    ///
    /// # Errors
    ///
    /// As [`FbGvi::new`](super::FbGvi::new): `h` must be positive and at most `1/L` when the
    /// smoothness `L` is known.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, potential::Gaussian, vi::{BwGd, Expectation}};
    ///
    /// // N(0, I/4) has smoothness L = 4: the step must be at most 1/4
    /// let target = Gaussian::isotropic(nalgebra::Vector2::zeros(), 0.25)?;
    /// assert!(BwGd::new(&target, 0.25, Expectation::Quadratic).is_ok());
    /// assert!(matches!(
    ///     BwGd::new(&target, 0.3, Expectation::Quadratic),
    ///     Err(Error::InvalidParameter { name: "step_size", .. })
    /// ));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(potential: P, step_size: f64, expectation: Expectation) -> Result<Self> {
        Self::build(potential, step_size, expectation, false)
    }
}

impl<P: Potential> BwGd<P, SteinHessian> {
    /// Hessian-free BW gradient descent (Stein's identity, see [`SteinHessian`]).
    ///
    /// # Errors
    ///
    /// As [`FbGvi::hessian_free`](super::FbGvi::hessian_free).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, Sampler, potential::Gaussian, vi::{BwGd, Expectation}};
    /// use nalgebra::Vector2;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let target = Gaussian::isotropic(Vector2::new(1.0, -1.0), 2.0)?;
    /// // the cubature rule is exact for the linear gradient of a Gaussian target
    /// let bw = BwGd::hessian_free(&target, 0.2, Expectation::Cubature)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = bw.init(Gaussian::standard(nalgebra::Const::<2>), &mut rng)?;
    /// for _ in 0..300 {
    ///     bw.step(&mut state, &mut rng)?;
    /// }
    /// assert!(state.gaussian()?.kl(&target)? < 1e-10);
    /// assert!(matches!(
    ///     BwGd::hessian_free(&target, 0.2, Expectation::Quadratic),
    ///     Err(Error::InvalidParameter { name: "expectation", .. })
    /// ));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn hessian_free(potential: P, step_size: f64, expectation: Expectation) -> Result<Self> {
        Self::build(potential, step_size, expectation, true)
    }
}

impl<P: Potential, C> BwGd<P, C> {
    fn build(potential: P, h: f64, expectation: Expectation, stein: bool) -> Result<Self> {
        let step_size = check_step(&potential, h)?;
        let rule = Rule::new(expectation, potential.dim().value(), stein)?;
        Ok(Self {
            potential,
            step_size,
            rule,
            curvature: PhantomData,
        })
    }

    /// The step size `h`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{potential::Gaussian, vi::{BwGd, Expectation}};
    ///
    /// let target = Gaussian::standard(nalgebra::Const::<2>);
    /// assert_eq!(BwGd::new(&target, 0.1, Expectation::Cubature)?.step_size(), 0.1);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn step_size(&self) -> f64 {
        self.step_size
    }

    /// The target potential.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{potential::{DoubleWell, Potential}, vi::{BwGd, Expectation}};
    ///
    /// let bw = BwGd::new(DoubleWell::new(nalgebra::Const::<2>, 1.5)?, 0.1, Expectation::Cubature)?;
    /// assert_eq!(bw.potential().a(), 1.5);
    /// assert_eq!(bw.potential().smoothness(), Some(1.25)); // max(1, a² − 1)
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn potential(&self) -> &P {
        &self.potential
    }
}

impl<P, C> Sampler for BwGd<P, C>
where
    P: Potential,
    C: Curvature<P>,
    DefaultAllocator: Alloc<P::Dim>,
{
    type Init = Gaussian<P::Dim>;
    type State = GviState<P::Dim>;
    type Info = GviInfo;

    fn init<R: Rng + ?Sized>(&self, init: Self::Init, _rng: &mut R) -> Result<Self::State> {
        check_init(&self.potential, &init)?;
        GviState::new(&init)
    }

    fn step<R: Rng + ?Sized>(&self, state: &mut Self::State, rng: &mut R) -> Result<GviInfo> {
        gvi_step::<P, C, R>(
            &self.potential,
            &self.rule,
            self.step_size,
            Scheme::GradientDescent,
            state,
            rng,
        )
    }
}
