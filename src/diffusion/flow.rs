//! The probability-flow ODE `dY/dt = Y + ∇log q_{T−t}(Y)` (score coefficient 1, not 2).

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, OVector};
use rand::Rng;

use crate::diffusion::batch::{Block, MaybeSend, MaybeSync, all_finite};
use crate::diffusion::ddpm::{advance_doc, advance_grid, finished_error};
use crate::diffusion::{DiffusionInfo, DiffusionInit, DiffusionState, ScoreModel, TimeGrid};
use crate::error::Result;
use crate::sampler::Sampler;

/// The discretisation of the probability-flow ODE over a step `t_k → t_{k+1}`, `h = t_k − t_{k+1}`.
///
/// # Example
///
/// ```
/// use klflow::diffusion::{GaussianScore, OdeScheme, ProbabilityFlow, TimeGrid};
/// use klflow::potential::Gaussian;
/// use nalgebra::Vector1;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// // Data N(0, 1): the flow field y + s(t, y) = y − y vanishes; both schemes leave points fixed.
/// let data = Gaussian::standard(nalgebra::Const::<1>);
/// for scheme in [OdeScheme::ExponentialIntegrator, OdeScheme::Heun] {
///     let flow = ProbabilityFlow::new(GaussianScore::new(&data), TimeGrid::uniform(5.0, 0.0, 3)?, scheme);
///     let y = flow.sample(vec![Vector1::new(0.7)], &mut ChaCha8Rng::seed_from_u64(0))?;
///     assert!((y[0][0] - 0.7).abs() < 1e-12);
/// }
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum OdeScheme {
    /// `y ← e^h y + (e^h − 1) s(t_k, y)`: the linear part solved exactly, the score frozen at
    /// `t_k`. One score call per step.
    #[default]
    ExponentialIntegrator,
    /// Heun's method (explicit trapezoid) on `f(t, y) = y + s(t, y)`:
    /// `ỹ = y + h f(t_k, y)`, `y ← y + (h/2)(f(t_k, y) + f(t_{k+1}, ỹ))`. Two score calls per
    /// step, the second at `t_{k+1}` (so `δ > 0` for data without a density).
    Heun,
}

impl OdeScheme {
    /// Score evaluations per step.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::OdeScheme;
    ///
    /// assert_eq!(OdeScheme::ExponentialIntegrator.score_evaluations(), 1);
    /// assert_eq!(OdeScheme::Heun.score_evaluations(), 2);
    /// ```
    pub fn score_evaluations(self) -> usize {
        match self {
            Self::ExponentialIntegrator => 1,
            Self::Heun => 2,
        }
    }
}

/// One ODE step on a block (no randomness).
pub(crate) fn ode_block<S: ScoreModel>(
    score: &S,
    scheme: OdeScheme,
    t: f64,
    t_next: f64,
    block: &mut Block<'_, S::Dim>,
) where
    DefaultAllocator: Allocator<S::Dim>,
{
    let h = t - t_next;
    match scheme {
        OdeScheme::ExponentialIntegrator => {
            let em1 = h.exp_m1();
            score.score_step_batch(t, 1.0 + em1, em1, block.x, block.s);
        }
        OdeScheme::Heun => {
            score.score_batch(t, block.x, block.s);
            let half = 0.5 * h;
            for ((x, s), y) in block
                .x
                .iter_mut()
                .zip(block.s.iter())
                .zip(block.aux.iter_mut())
            {
                // ỹ = x + h(x + s); then x ← x + (h/2)(x + s), the first half of the trapezoid.
                for ((xv, sv), yv) in x.iter_mut().zip(s.iter()).zip(y.iter_mut()) {
                    let f = *xv + sv;
                    *yv = *xv + h * f;
                    *xv += half * f;
                }
            }
            score.score_batch(t_next, block.aux, block.s);
            for ((x, s), y) in block.x.iter_mut().zip(block.s.iter()).zip(block.aux.iter()) {
                x.axpy(half, y, 1.0);
                x.axpy(half, s, 1.0);
            }
        }
    }
}

/// The probability-flow ODE sampler: deterministic transport from `y_T ~ N(0, I)` (or given
/// particles) to `δ` with the exponential integrator or Heun ([`OdeScheme`]).
///
/// The ODE has no contraction: errors made early are carried to the end (in W₂). Add a
/// corrector ([`PredictorCorrector`](crate::diffusion::PredictorCorrector)) to turn W₂
/// closeness into TV closeness.
///
/// # Example
///
/// ```
/// use klflow::diffusion::{GaussianScore, OdeScheme, ProbabilityFlow, TimeGrid};
/// use klflow::potential::Gaussian;
/// use nalgebra::Vector1;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// // For data N(μ, 1) the exponential integrator is exact: each particle moves by
/// // (e^{−δ} − e^{−T})μ.
/// let data = Gaussian::isotropic(Vector1::new(2.0), 1.0)?;
/// let grid = TimeGrid::uniform(5.0, 0.0, 7)?;
/// let flow = ProbabilityFlow::new(GaussianScore::new(&data), grid, OdeScheme::ExponentialIntegrator);
/// let start = vec![Vector1::new(0.3)];
/// let out = flow.sample(start, &mut ChaCha8Rng::seed_from_u64(0))?;
/// assert!((out[0][0] - (0.3 + (1.0 - (-5.0f64).exp()) * 2.0)).abs() < 1e-12);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ProbabilityFlow<S> {
    score: S,
    grid: TimeGrid,
    scheme: OdeScheme,
}

impl<S: ScoreModel> ProbabilityFlow<S> {
    /// The probability-flow sampler with `score` on `grid`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{GaussianScore, OdeScheme, ProbabilityFlow, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector1;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// // Heun on data N(2, 0.25) from 4000 N(0, 1) draws: mean 2 within a few SE (0.008) plus O(h²).
    /// let data = Gaussian::isotropic(Vector1::new(2.0), 0.25)?;
    /// let flow = ProbabilityFlow::new(GaussianScore::new(&data), TimeGrid::uniform(10.0, 0.0, 50)?, OdeScheme::Heun);
    /// let ys = flow.sample(4_000, &mut ChaCha8Rng::seed_from_u64(1))?;
    /// let mean = ys.iter().map(|y| y[0]).sum::<f64>() / 4_000.0;
    /// assert!((mean - 2.0).abs() < 0.05);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(score: S, grid: TimeGrid, scheme: OdeScheme) -> Self {
        Self {
            score,
            grid,
            scheme,
        }
    }

    /// The time grid.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{GaussianScore, OdeScheme, ProbabilityFlow, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Const;
    ///
    /// let score = GaussianScore::new(&Gaussian::standard(Const::<1>));
    /// let flow = ProbabilityFlow::new(score, TimeGrid::geometric(10.0, 1e-3, 50)?, OdeScheme::Heun);
    /// assert_eq!(flow.grid().end(), 1e-3);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn grid(&self) -> &TimeGrid {
        &self.grid
    }

    /// The score model.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{GaussianScore, OdeScheme, ProbabilityFlow, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector1;
    ///
    /// let data = Gaussian::isotropic(Vector1::new(-3.0), 1.0)?;
    /// let flow = ProbabilityFlow::new(GaussianScore::new(&data), TimeGrid::uniform(10.0, 0.0, 50)?, OdeScheme::Heun);
    /// assert_eq!(flow.score_model().data().mean()[0], -3.0);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn score_model(&self) -> &S {
        &self.score
    }

    /// The scheme.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{GaussianScore, OdeScheme, ProbabilityFlow, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Const;
    ///
    /// let score = GaussianScore::new(&Gaussian::standard(Const::<1>));
    /// let flow = ProbabilityFlow::new(score, TimeGrid::uniform(10.0, 0.0, 50)?, OdeScheme::Heun);
    /// assert_eq!(flow.scheme(), OdeScheme::Heun);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn scheme(&self) -> OdeScheme {
        self.scheme
    }

    /// Runs from `init` to `δ` and returns the particles.
    ///
    /// # Errors
    ///
    /// As [`Sampler::init`] and [`Sampler::step`].
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{GaussianScore, OdeScheme, ProbabilityFlow, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector1;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// // From given particles the flow is deterministic: the seed does not matter.
    /// let score = GaussianScore::new(&Gaussian::isotropic(Vector1::new(1.0), 0.5)?);
    /// let flow = ProbabilityFlow::new(score, TimeGrid::uniform(4.0, 0.0, 20)?, OdeScheme::Heun);
    /// let start = vec![Vector1::new(-1.0), Vector1::new(2.0)];
    /// let a = flow.sample(start.clone(), &mut ChaCha8Rng::seed_from_u64(1))?;
    /// let b = flow.sample(start, &mut ChaCha8Rng::seed_from_u64(2))?;
    /// assert_eq!(a, b);
    /// assert!(a[0][0] < a[1][0]); // the flow map is monotone in 1-D
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn sample<R: Rng + ?Sized>(
        &self,
        init: impl Into<DiffusionInit<S::Dim>>,
        rng: &mut R,
    ) -> Result<Vec<OVector<f64, S::Dim>>>
    where
        S: MaybeSync,
        DefaultAllocator: Allocator<S::Dim>,
        OVector<f64, S::Dim>: MaybeSend,
    {
        let mut state = self.init(init.into(), rng)?;
        self.advance(&mut state, usize::MAX, rng)?;
        Ok(state.into_particles())
    }

    #[doc = advance_doc!()]
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::Sampler;
    /// use klflow::diffusion::{GaussianScore, OdeScheme, ProbabilityFlow, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector2;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let score = GaussianScore::new(&Gaussian::isotropic(Vector2::new(1.0, 0.0), 0.5)?);
    /// let s = ProbabilityFlow::new(score, TimeGrid::uniform(4.0, 0.0, 10)?, OdeScheme::Heun);
    /// let (mut r1, mut r2) = (ChaCha8Rng::seed_from_u64(1), ChaCha8Rng::seed_from_u64(1));
    /// let (mut a, mut b) = (s.init(600.into(), &mut r1)?, s.init(600.into(), &mut r2)?);
    /// let info = s.advance(&mut a, 6, &mut r1)?;
    /// let mut evals = 0;
    /// for _ in 0..6 {
    ///     evals += s.step(&mut b, &mut r2)?.score_evaluations;
    /// }
    /// assert_eq!((a.particles(), info.score_evaluations), (b.particles(), evals));
    /// // Clamped at the end of the grid: 4 steps were left.
    /// s.advance(&mut a, 100, &mut r1)?;
    /// assert!(s.is_finished(&a));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn advance<R: Rng + ?Sized>(
        &self,
        state: &mut DiffusionState<S::Dim>,
        steps: usize,
        rng: &mut R,
    ) -> Result<DiffusionInfo>
    where
        S: MaybeSync,
        DefaultAllocator: Allocator<S::Dim>,
        OVector<f64, S::Dim>: MaybeSend,
    {
        let grid = &self.grid;
        let evaluations = self.scheme.score_evaluations();
        advance_grid(grid, state, steps, evaluations, rng, |k, mut b, _| {
            let (t, t_next) = (grid.times()[k], grid.times()[k + 1]);
            ode_block(&self.score, self.scheme, t, t_next, &mut b);
            all_finite(b.x)
        })
    }
}

impl<S> Sampler for ProbabilityFlow<S>
where
    S: ScoreModel + MaybeSync,
    DefaultAllocator: Allocator<S::Dim>,
    OVector<f64, S::Dim>: MaybeSend,
{
    type Init = DiffusionInit<S::Dim>;
    type State = DiffusionState<S::Dim>;
    type Info = DiffusionInfo;

    fn init<R: Rng + ?Sized>(&self, init: Self::Init, rng: &mut R) -> Result<Self::State> {
        DiffusionState::new(init, self.score.dim(), self.grid.horizon(), rng)
    }

    fn step<R: Rng + ?Sized>(&self, state: &mut Self::State, rng: &mut R) -> Result<DiffusionInfo> {
        if state.index >= self.grid.steps() {
            return Err(finished_error(state.index));
        }
        self.advance(state, 1, rng)
    }

    fn is_finished(&self, state: &Self::State) -> bool {
        state.index >= self.grid.steps()
    }
}
