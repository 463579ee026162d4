//! Predictor–corrector sampling: a reverse-time predictor step, then Langevin corrector steps
//! targeting the marginal `q_t` at the time the predictor reached.

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, OVector};
use rand::rngs::ChaCha8Rng;
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;

use crate::diffusion::batch::{Block, MaybeSend, MaybeSync, all_finite};
use crate::diffusion::ddpm::{advance_doc, advance_grid, finished_error, sde_block};
use crate::diffusion::flow::ode_block;
use crate::diffusion::{
    DiffusionInfo, DiffusionInit, DiffusionState, OdeScheme, ScoreModel, SdeScheme, TimeGrid,
};
use crate::dim::fill_standard_normal;
use crate::error::{Result, positive};
use crate::langevin::OuStep;
use crate::sampler::Sampler;

/// The predictor of a [`PredictorCorrector`] sampler.
///
/// # Example
///
/// ```
/// use klflow::Sampler;
/// use klflow::diffusion::{Corrector, GaussianScore, OdeScheme, Predictor, PredictorCorrector, SdeScheme, TimeGrid};
/// use klflow::potential::Gaussian;
/// use nalgebra::Const;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// // Score calls per step: the predictor's (Heun 2, an SDE step 1) plus the corrector's.
/// let data = Gaussian::standard(Const::<1>);
/// let grid = TimeGrid::uniform(2.0, 0.1, 4)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// for (predictor, calls) in [(Predictor::Flow(OdeScheme::Heun), 5), (Predictor::Sde(SdeScheme::EulerMaruyama), 4)] {
///     let pc = PredictorCorrector::new(GaussianScore::new(&data), grid.clone(), predictor, Corrector::overdamped(0.01, 3)?);
///     let mut state = pc.init(5.into(), &mut rng)?;
///     assert_eq!(pc.step(&mut state, &mut rng)?.score_evaluations, calls);
/// }
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Predictor {
    /// A probability-flow ODE step (Chen et al. 2023's DPUM / DPOM).
    Flow(OdeScheme),
    /// A reverse-SDE step (Song et al. 2021's predictor–corrector).
    Sde(SdeScheme),
}

/// The corrector of a [`PredictorCorrector`] sampler: Langevin dynamics targeting `q_t` with the
/// score `s(t, ·)` standing in for `−∇U`, at the forward time `t` the predictor reached.
///
/// # Example
///
/// ```
/// use klflow::diffusion::Corrector;
/// use klflow::oracle::DiffusionOracle;
/// use klflow::potential::Gaussian;
/// use nalgebra::Vector1;
///
/// assert_eq!(Corrector::overdamped(0.05, 10)?, Corrector::Overdamped { step_size: 0.05, steps: 10 });
/// // On data N(0, 1) (q_t = N(0, 1)) an overdamped phase of n steps of size η multiplies the mean
/// // by (1 − η)ⁿ.
/// let oracle = DiffusionOracle::new(&Gaussian::isotropic(Vector1::new(0.0), 1.0)?);
/// let law = Gaussian::isotropic(Vector1::new(2.0), 1.0)?;
/// let after = oracle.corrector(&law, 0.5, &Corrector::overdamped(0.05, 10)?)?;
/// assert!((after.mean()[0] - 2.0 * 0.95f64.powi(10)).abs() < 1e-12);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Corrector {
    /// Underdamped Langevin with the exact OU step and frozen force `s(t, x)` (see [`OuStep`]:
    /// correlated position/velocity noise), `steps` steps per phase, and a **fresh** velocity
    /// `p ~ N(0, I)` at the start of every phase.
    Underdamped {
        /// Friction `γ` and step `η`.
        step: OuStep,
        /// Steps per corrector phase.
        steps: usize,
    },
    /// Overdamped Langevin (LMC): `x ← x + η s(t, x) + √(2η) ξ`, `steps` steps per phase.
    Overdamped {
        /// The step `η`.
        step_size: f64,
        /// Steps per corrector phase.
        steps: usize,
    },
}

impl Corrector {
    /// The underdamped corrector with friction `γ = friction`, step `η = step`, `steps` steps.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`](crate::Error::InvalidParameter) for invalid `friction` or `step` (see [`OuStep::new`]).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::Corrector;
    ///
    /// let c = Corrector::underdamped(2.0, 0.05, 10)?;
    /// assert_eq!(c.steps(), 10);
    /// assert!(Corrector::underdamped(-1.0, 0.05, 10).is_err());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn underdamped(friction: f64, step: f64, steps: usize) -> Result<Self> {
        Ok(Self::Underdamped {
            step: OuStep::new(friction, step)?,
            steps,
        })
    }

    /// The overdamped (LMC) corrector with step `η = step_size`, `steps` steps.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`](crate::Error::InvalidParameter) naming `step_size` unless finite and positive.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, diffusion::Corrector};
    ///
    /// assert_eq!(Corrector::overdamped(0.01, 5)?.steps(), 5);
    /// assert!(matches!(Corrector::overdamped(0.0, 5), Err(Error::InvalidParameter { name: "step_size", .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn overdamped(step_size: f64, steps: usize) -> Result<Self> {
        positive("step_size", step_size)?;
        Ok(Self::Overdamped { step_size, steps })
    }

    /// Steps (= score evaluations) per corrector phase.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::Corrector;
    ///
    /// assert_eq!(Corrector::underdamped(1.0, 0.1, 7)?.steps(), 7);
    /// assert_eq!(Corrector::overdamped(0.1, 3)?.steps(), 3);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn steps(&self) -> usize {
        match *self {
            Self::Underdamped { steps, .. } | Self::Overdamped { steps, .. } => steps,
        }
    }
}

/// One corrector phase on a block at forward time `t`.
fn corrector_block<S: ScoreModel>(
    score: &S,
    corrector: &Corrector,
    t: f64,
    block: &mut Block<'_, S::Dim>,
    rng: &mut ChaCha8Rng,
) where
    DefaultAllocator: Allocator<S::Dim>,
{
    match *corrector {
        Corrector::Underdamped { step, steps } => {
            for p in block.aux.iter_mut() {
                fill_standard_normal(p, rng);
            }
            for _ in 0..steps {
                score.score_batch(t, block.x, block.s);
                for ((x, p), s) in block
                    .x
                    .iter_mut()
                    .zip(block.aux.iter_mut())
                    .zip(block.s.iter())
                {
                    step.apply(x, p, s, rng);
                }
            }
        }
        Corrector::Overdamped { step_size, steps } => {
            let noise = (2.0 * step_size).sqrt();
            for _ in 0..steps {
                score.score_batch(t, block.x, block.s);
                for (x, s) in block.x.iter_mut().zip(block.s.iter()) {
                    for (xv, sv) in x.iter_mut().zip(s.iter()) {
                        let z: f64 = rng.sample(StandardNormal);
                        *xv += step_size * sv + noise * z;
                    }
                }
            }
        }
    }
}

/// Predictor–corrector sampling. Step `k`: the predictor moves the particles from forward time
/// `t_k` to `t_{k+1}` (scores at `t_k`, plus `t_{k+1}` for Heun); **then** the corrector runs its
/// phase targeting `q_{t_{k+1}}`, the marginal at the post-predictor time, with every score call at
/// `t_{k+1}`. The last corrector phase runs at `δ`, so keep `δ > 0` for data without a density.
///
/// With [`Predictor::Flow`] and [`Corrector::Underdamped`] this is the DPUM scheme of Chen,
/// Chewi, Lee, Li, Lu, Salim (2023); with [`Corrector::Overdamped`], DPOM.
///
/// # Example
///
/// ```
/// use klflow::diffusion::{Corrector, MixtureScore, OdeScheme, Predictor, PredictorCorrector, TimeGrid};
/// use klflow::potential::{Gaussian, GaussianMixture};
/// use nalgebra::Vector1;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let comp = |m: f64| Gaussian::isotropic(Vector1::new(m), 0.25);
/// let data = GaussianMixture::new(&[0.3, 0.7], vec![comp(-2.0)?, comp(1.5)?])?;
/// let pc = PredictorCorrector::new(
///     MixtureScore::new(&data),
///     TimeGrid::uniform(8.0, 1e-3, 40)?,
///     Predictor::Flow(OdeScheme::ExponentialIntegrator),
///     Corrector::underdamped(2.0, 0.05, 10)?,
/// );
/// let ys = pc.sample(2_000, &mut ChaCha8Rng::seed_from_u64(1))?;
/// let right = ys.iter().filter(|y| y[0] > 0.0).count() as f64 / 2_000.0;
/// assert!((right - 0.7).abs() < 0.05); // SE 0.01
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct PredictorCorrector<S> {
    score: S,
    grid: TimeGrid,
    predictor: Predictor,
    corrector: Corrector,
}

impl<S: ScoreModel> PredictorCorrector<S> {
    /// The sampler with `score` on `grid`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{Corrector, GaussianScore, OdeScheme, Predictor, PredictorCorrector, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector1;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// // DPOM on data N(−1, 0.5): the sample mean is −1 within a few standard errors (SE 0.016) plus
    /// // the O(h) bias.
    /// let data = Gaussian::isotropic(Vector1::new(-1.0), 0.5)?;
    /// let pc = PredictorCorrector::new(
    ///     GaussianScore::new(&data),
    ///     TimeGrid::uniform(8.0, 1e-3, 40)?,
    ///     Predictor::Flow(OdeScheme::ExponentialIntegrator),
    ///     Corrector::overdamped(0.02, 5)?,
    /// );
    /// let ys = pc.sample(2_000, &mut ChaCha8Rng::seed_from_u64(4))?;
    /// let mean = ys.iter().map(|y| y[0]).sum::<f64>() / 2_000.0;
    /// assert!((mean + 1.0).abs() < 0.1);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(score: S, grid: TimeGrid, predictor: Predictor, corrector: Corrector) -> Self {
        Self {
            score,
            grid,
            predictor,
            corrector,
        }
    }

    /// The time grid.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{Corrector, GaussianScore, OdeScheme, Predictor, PredictorCorrector, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Const;
    ///
    /// let grid = TimeGrid::uniform(8.0, 1e-3, 40)?;
    /// let score = GaussianScore::new(&Gaussian::standard(Const::<1>));
    /// let pc = PredictorCorrector::new(score, grid.clone(), Predictor::Flow(OdeScheme::Heun), Corrector::overdamped(0.02, 5)?);
    /// assert_eq!(pc.grid(), &grid);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn grid(&self) -> &TimeGrid {
        &self.grid
    }

    /// The predictor.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{Corrector, GaussianScore, OdeScheme, Predictor, PredictorCorrector, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Const;
    ///
    /// let score = GaussianScore::new(&Gaussian::standard(Const::<1>));
    /// let p = Predictor::Flow(OdeScheme::Heun);
    /// let pc = PredictorCorrector::new(score, TimeGrid::uniform(8.0, 1e-3, 40)?, p, Corrector::overdamped(0.02, 5)?);
    /// assert_eq!(pc.predictor(), p);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn predictor(&self) -> Predictor {
        self.predictor
    }

    /// The corrector.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{Corrector, GaussianScore, OdeScheme, Predictor, PredictorCorrector, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Const;
    ///
    /// let score = GaussianScore::new(&Gaussian::standard(Const::<1>));
    /// let c = Corrector::underdamped(2.0, 0.05, 10)?;
    /// let pc = PredictorCorrector::new(score, TimeGrid::uniform(8.0, 1e-3, 40)?, Predictor::Flow(OdeScheme::Heun), c);
    /// assert_eq!(pc.corrector(), c);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn corrector(&self) -> Corrector {
        self.corrector
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
    /// use klflow::diffusion::{Corrector, GaussianScore, OdeScheme, Predictor, PredictorCorrector, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector1;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// // The same seed gives the same particles (one RNG stream per block of particles).
    /// let score = GaussianScore::new(&Gaussian::isotropic(Vector1::new(1.0), 0.5)?);
    /// let c = Corrector::underdamped(2.0, 0.05, 3)?;
    /// let pc = PredictorCorrector::new(score, TimeGrid::uniform(4.0, 1e-2, 10)?, Predictor::Flow(OdeScheme::Heun), c);
    /// let a = pc.sample(300, &mut ChaCha8Rng::seed_from_u64(9))?;
    /// let b = pc.sample(300, &mut ChaCha8Rng::seed_from_u64(9))?;
    /// assert_eq!(a, b);
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

    /// Score evaluations per particle in one step (predictor and corrector).
    fn score_evaluations_per_step(&self) -> usize {
        let pred = match self.predictor {
            Predictor::Flow(s) => s.score_evaluations(),
            Predictor::Sde(_) => 1,
        };
        pred + self.corrector.steps()
    }

    #[doc = advance_doc!()]
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::Sampler;
    /// use klflow::diffusion::{Corrector, GaussianScore, Predictor, PredictorCorrector, SdeScheme, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector2;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let score = GaussianScore::new(&Gaussian::isotropic(Vector2::new(1.0, 0.0), 0.5)?);
    /// let c = Corrector::underdamped(2.0, 0.05, 2)?;
    /// let s = PredictorCorrector::new(score, TimeGrid::uniform(4.0, 0.01, 10)?, Predictor::Sde(SdeScheme::ExponentialIntegrator), c);
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
        let evaluations = self.score_evaluations_per_step();
        advance_grid(grid, state, steps, evaluations, rng, |k, mut b, r| {
            let (t, t_next) = (grid.times()[k], grid.times()[k + 1]);
            let score = &self.score;
            match self.predictor {
                Predictor::Flow(scheme) => ode_block(score, scheme, t, t_next, &mut b),
                Predictor::Sde(scheme) => {
                    sde_block(score, scheme, t, t - t_next, &mut b, r);
                }
            }
            corrector_block(score, &self.corrector, t_next, &mut b, r);
            all_finite(b.x)
        })
    }
}

impl<S> Sampler for PredictorCorrector<S>
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
