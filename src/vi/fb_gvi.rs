//! Forward–backward Gaussian variational inference (FB-GVI).

use std::marker::PhantomData;

use nalgebra::{DefaultAllocator, Dim, OMatrix};
use rand::Rng;

use super::state::{GviInfo, GviState, Scheme, gvi_step};
use super::{Curvature, ExactHessian, Expectation, Rule, SteinHessian, check_step};
use crate::dim::Alloc;
use crate::error::{Error, Result, positive};
use crate::gaussian::Gaussian;
use crate::linalg::{checked_symmetric, sym_apply, sym_eigenvalues};
use crate::potential::{Potential, PotentialHessian};
use crate::sampler::Sampler;

/// Forward–backward Gaussian VI (Diao, Balasubramanian, Chewi, Salim, ICML 2023): a proximal
/// gradient method for `F(p) = E_pU − H(p)` over Gaussians in the Bures–Wasserstein space.
///
/// From `p_k = N(m_k, Σ_k)`, with `g = E_{p_k}∇U` and `H = E_{p_k}∇²U`:
///
/// ```text
/// m_{k+1} = m_k − h g                                  (forward step on E U, mean)
/// Σ½      = (I − hH) Σ_k (I − hH)                      (forward step, covariance)
/// Σ_{k+1} = ½(Σ½ + 2hI + [Σ½(Σ½ + 4hI)]^{1/2})         (backward: JKO step of −H(p))
/// ```
///
/// The backward step is computed as the scalar map [`entropy_jko_eigenvalue`] on the
/// eigenvalues of `Σ½` — symmetric and positive definite by construction, with every
/// eigenvalue of `Σ_{k+1}` at least `h`. Its fixed points are exactly the stationary points of
/// Gaussian VI (`E∇U = 0`, `E∇²U = Σ⁻¹`): on a Gaussian target the target itself is a fixed
/// point for every `h ≤ 1/L` (no discretisation bias, unlike Langevin).
///
/// Guarantees (for `h ≤ 1/L`): α-strongly log-concave targets contract in W₂ as
/// `W₂²(p_k, π̂) ≤ e^{−αhk}W₂²(p₀, π̂)`; log-concave targets reach `F − F(π̂) ≤ W₂²(p₀, π̂)/(2hk)`.
/// With [`Expectation::MonteCarlo`] this is the *stochastic* FB-GVI, which converges to a noise
/// floor of size O(h).
///
/// Cost per step: the expectation (one gradient and, with [`ExactHessian`], one Hessian per
/// point), three d×d products and one symmetric eigendecomposition, which dominates for large
/// `d`. The eigendecomposition allocates a work copy (nalgebra's API); nothing else does.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, potential::DoubleWell, vi::{Expectation, FbGvi}};
/// use klflow::potential::Gaussian;
/// use klflow::run::{FnObserver, run};
/// use nalgebra::SVector;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// // A bimodal 2-D target; deterministic FB-GVI with 20 × 20 Gauss–Hermite points.
/// let target = DoubleWell::new(nalgebra::Const::<2>, 1.5)?;
/// let gvi = FbGvi::new(&target, 0.2, Expectation::GaussHermite { nodes: 20 })?;
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let start = Gaussian::isotropic(SVector::<f64, 2>::new(0.5, 0.5), 1.0)?;
/// let mut state = gvi.init(start, &mut rng)?;
/// let mut last = f64::INFINITY;
/// let mut monotone = true;
/// let mut obs = FnObserver(|_, _: &_, info: &klflow::vi::GviInfo| {
///     monotone &= info.objective <= last + 1e-12;
///     last = info.objective;
///     std::ops::ControlFlow::Continue(())
/// });
/// run(&gvi, &mut state, 200, &mut rng, &mut obs)?;
/// assert!(monotone);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct FbGvi<P, C = ExactHessian> {
    potential: P,
    step_size: f64,
    rule: Rule,
    curvature: PhantomData<C>,
}

impl<P: PotentialHessian> FbGvi<P, ExactHessian> {
    /// FB-GVI with step `h = step_size`, expectations by `expectation`, and the target's own
    /// Hessian.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming `step_size` if it is not positive, or if the
    /// potential's smoothness `L` is known and `h > 1/L` (the reason says why); naming
    /// `nodes` or `batch` if the expectation rule is invalid for this dimension.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, Sampler, potential::Gaussian, vi::{Expectation, FbGvi}};
    /// use nalgebra::{Matrix2, Vector2};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let target = Gaussian::new(Vector2::new(1.0, 2.0), Matrix2::new(1.0, 0.3, 0.3, 0.5))?;
    /// let h = target.covariance_eigen_range().0; // 1/L
    /// let gvi = FbGvi::new(&target, h, Expectation::Quadratic)?;
    /// // a Gaussian target is a fixed point of FB-GVI: no discretisation bias
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = gvi.init(target.clone(), &mut rng)?;
    /// gvi.step(&mut state, &mut rng)?;
    /// assert!(state.gaussian()?.kl(&target)? < 1e-12);
    /// assert!(matches!(
    ///     FbGvi::new(&target, 0.0, Expectation::Quadratic),
    ///     Err(Error::InvalidParameter { name: "step_size", .. })
    /// ));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(potential: P, step_size: f64, expectation: Expectation) -> Result<Self> {
        Self::build(potential, step_size, expectation, false)
    }
}

impl<P: Potential> FbGvi<P, SteinHessian> {
    /// Hessian-free FB-GVI: `E∇²U` from gradients through Stein's identity
    /// (see [`SteinHessian`]). Needs a point rule (not [`Expectation::Quadratic`]).
    ///
    /// # Errors
    ///
    /// As [`FbGvi::new`], and [`Error::InvalidParameter`] naming `expectation` for
    /// [`Expectation::Quadratic`].
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, Sampler, potential::Gaussian, vi::{Expectation, FbGvi}};
    /// use nalgebra::{Matrix2, Vector2};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// // gradients only; the cubature rule makes Stein's estimate exact on a Gaussian target
    /// let target = Gaussian::new(Vector2::new(1.0, -1.0), Matrix2::new(1.0, 0.4, 0.4, 0.5))?;
    /// let h = target.covariance_eigen_range().0; // 1/L
    /// let gvi = FbGvi::hessian_free(&target, h, Expectation::Cubature)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = gvi.init(Gaussian::standard(nalgebra::Const::<2>), &mut rng)?;
    /// for _ in 0..300 {
    ///     gvi.step(&mut state, &mut rng)?;
    /// }
    /// assert!(state.gaussian()?.kl(&target)? < 1e-10);
    /// assert!(matches!(
    ///     FbGvi::hessian_free(&target, h, Expectation::Quadratic),
    ///     Err(Error::InvalidParameter { name: "expectation", .. })
    /// ));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn hessian_free(potential: P, step_size: f64, expectation: Expectation) -> Result<Self> {
        Self::build(potential, step_size, expectation, true)
    }
}

impl<P: Potential, C> FbGvi<P, C> {
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
    /// use klflow::{potential::Gaussian, vi::{Expectation, FbGvi}};
    ///
    /// let target = Gaussian::standard(nalgebra::Const::<2>);
    /// assert_eq!(FbGvi::new(&target, 0.5, Expectation::Quadratic)?.step_size(), 0.5);
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
    /// use klflow::{potential::Gaussian, vi::{Expectation, FbGvi}};
    ///
    /// let gvi = FbGvi::new(Gaussian::standard(nalgebra::Const::<3>), 0.5, Expectation::Cubature)?;
    /// assert_eq!(gvi.potential().dim_value(), 3);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn potential(&self) -> &P {
        &self.potential
    }
}

impl<P, C> Sampler for FbGvi<P, C>
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
            Scheme::ForwardBackward,
            state,
            rng,
        )
    }
}

/// Checks that the initial Gaussian lives in the potential's dimension.
pub(crate) fn check_init<P: Potential>(potential: &P, init: &Gaussian<P::Dim>) -> Result<()>
where
    DefaultAllocator: Alloc<P::Dim>,
{
    let d = potential.dim().value();
    if init.dim_value() == d {
        Ok(())
    } else {
        Err(Error::DimensionMismatch {
            name: "init",
            expected: d,
            found: init.dim_value(),
        })
    }
}

/// The JKO (proximal) step of the negative entropy on one eigenvalue:
/// `s = ½(σ + 2h + √(σ(σ + 4h)))`, the minimiser of `−½log s + (√s − √σ)²/(2h)`.
///
/// Increasing in `σ ≥ 0`, with `s ≥ h` and `s(0) = h`; its inverse is `σ = (s − h)²/s`.
///
/// # Example
///
/// ```
/// use klflow::vi::entropy_jko_eigenvalue;
///
/// let (sigma, h) = (0.7, 0.3);
/// let s = entropy_jko_eigenvalue(sigma, h);
/// assert!(((s - h).powi(2) / s - sigma).abs() < 1e-15);
/// assert_eq!(entropy_jko_eigenvalue(0.0, h), h);
/// ```
pub fn entropy_jko_eigenvalue(sigma: f64, h: f64) -> f64 {
    0.5 * (sigma + 2.0 * h + (sigma * (sigma + 4.0 * h)).sqrt())
}

/// The JKO step of the negative entropy in the Bures–Wasserstein space: for `N(m, S)` it
/// returns the covariance `S' = ½(S + 2hI + [S(S + 4hI)]^{1/2})` of the proximal point (the
/// mean is unchanged), computed as [`entropy_jko_eigenvalue`] on the eigenvalues of `S`.
///
/// `S'` is symmetric positive definite with `S' ≽ hI`, and the round trip
/// `(I − hS'⁻¹)S'(I − hS'⁻¹) = S` holds exactly.
///
/// # Errors
///
/// [`Error::InvalidParameter`] naming `step_size` unless `h > 0`; [`Error::NotSymmetric`],
/// [`Error::NonFiniteInput`] for a bad `cov`; [`Error::NotPositiveDefinite`] if `cov` has an
/// eigenvalue below `−1e-12·‖cov‖` (positive *semi*-definite input is accepted).
///
/// # Example
///
/// ```
/// use klflow::vi::entropy_jko;
/// use nalgebra::SMatrix;
///
/// let s = SMatrix::<f64, 2, 2>::new(2.0, 0.5, 0.5, 1.0);
/// let h = 0.25;
/// let s1 = entropy_jko(&s, h)?;
/// let m = SMatrix::identity() - s1.try_inverse().unwrap() * h;
/// assert!((m * s1 * m.transpose() - s).norm() < 1e-12);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn entropy_jko<D: Dim>(cov: &OMatrix<f64, D, D>, step_size: f64) -> Result<OMatrix<f64, D, D>>
where
    DefaultAllocator: Alloc<D>,
{
    let h = positive("step_size", step_size)?;
    if cov.nrows() != cov.ncols() {
        return Err(Error::DimensionMismatch {
            name: "cov",
            expected: cov.nrows(),
            found: cov.ncols(),
        });
    }
    let s = checked_symmetric("cov", cov)?;
    let ev = sym_eigenvalues(&s);
    let scale = s.amax();
    if ev.first().is_some_and(|&l| l < -1e-12 * scale) {
        return Err(Error::NotPositiveDefinite { name: "cov" });
    }
    Ok(sym_apply(&s, |l| entropy_jko_eigenvalue(l.max(0.0), h)))
}
