//! DDPM: the reverse SDE `dY = (Y + 2∇log q_{T−t}(Y)) dt + √2 dB`, discretised with the score
//! frozen at the start of each step.

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, Dim, OVector};
use rand::rngs::ChaCha8Rng;
use rand::{Rng, RngExt};

use crate::diffusion::batch::{Block, MaybeSend, MaybeSync, add_noise, run_blocks_multi};
use crate::diffusion::{DiffusionInfo, DiffusionInit, DiffusionState, ScoreModel, TimeGrid};
use crate::error::{Error, Result};
use crate::sampler::Sampler;

/// The discretisation of the reverse SDE over a step of length `h` with the score `s = s(t_k, y)`
/// frozen at the step's start (forward time `t_k`).
///
/// # Example
///
/// ```
/// use klflow::diffusion::SdeScheme;
///
/// assert_eq!(SdeScheme::default(), SdeScheme::ExponentialIntegrator);
/// // Both schemes agree to first order in h.
/// let h = 1e-4;
/// let (a, b) = (SdeScheme::ExponentialIntegrator.coefficients(h), SdeScheme::EulerMaruyama.coefficients(h));
/// assert!((a.0 - b.0).abs() < h * h && (a.1 - b.1).abs() < 2.0 * h * h);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum SdeScheme {
    /// `y ← e^h y + 2(e^h − 1)s + √(e^{2h} − 1) ξ`: the linear part solved exactly.
    #[default]
    ExponentialIntegrator,
    /// `y ← y + h(y + 2s) + √(2h) ξ`.
    EulerMaruyama,
}

impl SdeScheme {
    /// The coefficients `(on y, on s, on ξ)` for a step of length `h`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::SdeScheme;
    ///
    /// let (a, b, c) = SdeScheme::ExponentialIntegrator.coefficients(0.1);
    /// assert!((a - 0.1f64.exp()).abs() < 1e-15);
    /// assert!((b - 2.0 * 0.1f64.exp_m1()).abs() < 1e-15);
    /// assert!((c * c - 0.2f64.exp_m1()).abs() < 1e-15);
    /// assert_eq!(SdeScheme::EulerMaruyama.coefficients(0.1), (1.1, 0.2, 0.2f64.sqrt()));
    /// ```
    pub fn coefficients(self, h: f64) -> (f64, f64, f64) {
        match self {
            Self::ExponentialIntegrator => {
                let em1 = h.exp_m1();
                (1.0 + em1, 2.0 * em1, (em1 * (em1 + 2.0)).sqrt())
            }
            Self::EulerMaruyama => (1.0 + h, 2.0 * h, (2.0 * h).sqrt()),
        }
    }
}

/// One SDE step on a block: scores at `t`, then the update; returns whether the particles
/// are finite.
pub(crate) fn sde_block<S: ScoreModel>(
    score: &S,
    scheme: SdeScheme,
    t: f64,
    h: f64,
    block: &mut Block<'_, S::Dim>,
    rng: &mut ChaCha8Rng,
) -> bool
where
    DefaultAllocator: Allocator<S::Dim>,
{
    // y ← (a y + b s) + c ξ: the drift fused with the score pass where the model supports it.
    let (a, b, c) = scheme.coefficients(h);
    score.score_step_batch(t, a, b, block.x, block.s);
    add_noise(block.x, c, rng)
}

pub(crate) fn finished_error(index: usize) -> Error {
    Error::InvalidParameter {
        name: "state",
        value: index as f64,
        reason: "the sampler already reached its final time",
    }
}

/// The body of the `advance` methods: clamps `steps` to the rest of `grid`, draws one seed per
/// step (what that many calls of `step` draw), runs every block through all of them in one
/// parallel region (`f(k, block, r)` does grid step `k` on a block) and updates the index and
/// time. On `NonFinite` the state counts the steps before the failing one.
pub(crate) fn advance_grid<D, R, F>(
    grid: &TimeGrid,
    state: &mut DiffusionState<D>,
    steps: usize,
    evaluations: usize,
    rng: &mut R,
    f: F,
) -> Result<DiffusionInfo>
where
    D: Dim,
    DefaultAllocator: Allocator<D>,
    OVector<f64, D>: MaybeSend,
    R: Rng + ?Sized,
    F: Fn(usize, Block<'_, D>, &mut ChaCha8Rng) -> bool + MaybeSync,
{
    let k0 = state.index;
    if steps == 0 {
        return Ok(DiffusionInfo {
            time: state.time,
            score_evaluations: 0,
        });
    }
    if k0 >= grid.steps() {
        return Err(finished_error(k0));
    }
    let n = steps.min(grid.steps() - k0);
    // One step (`Sampler::step`) needs no allocation.
    let (one, many): ([u64; 1], Vec<u64>);
    let seeds: &[u64] = if n == 1 {
        one = [rng.random()];
        &one
    } else {
        many = (0..n).map(|_| rng.random()).collect();
        &many
    };
    let out = run_blocks_multi(state, k0 + 1, seeds, |j, b, r| f(k0 + j, b, r));
    let done = match out {
        Ok(()) => n,
        Err(Error::NonFinite { step, .. }) => step - 1 - k0,
        Err(_) => 0,
    };
    state.index = k0 + done;
    state.time = grid.times()[k0 + done];
    out.map(|()| DiffusionInfo {
        time: state.time,
        score_evaluations: evaluations * n,
    })
}

/// The doc text shared by the `advance` methods.
macro_rules! advance_doc {
    () => {
        "Runs up to `steps` steps in one parallel region (`rayon` feature): every block of \
         particles goes through all of them before the threads meet again, which is what makes \
         short steps scale with the thread count. The result equals `steps` calls of \
         [`Sampler::step`](crate::Sampler::step) bit for bit (it draws the same seeds from `rng`, \
         in the same order), for any thread count. Stops at the end of the grid: `steps` is \
         clamped to the steps left. Returns the time reached and the score evaluations per \
         particle summed over the steps taken (0 steps: the current time, 0).\n\n\
         # Errors\n\n\
         As [`Sampler::step`](crate::Sampler::step): \
         [`Error::InvalidParameter`](crate::Error::InvalidParameter) naming `state` if the \
         sampler is already finished and `steps > 0`; \
         [`Error::NonFinite`](crate::Error::NonFinite) naming the earliest step at which any \
         block's particles were not finite (each block stops at its own first such step). The \
         state then counts the steps before that one, as after single steps, but its particles \
         are unspecified (blocks that were still finite went on) and `rng` has given the seeds of \
         all the steps."
    };
}
pub(crate) use advance_doc;

/// The DDPM sampler: the reverse SDE from `y_T ~ N(0, I)` (or given particles) down to `δ`,
/// with the exponential integrator or Euler–Maruyama ([`SdeScheme`]).
///
/// Reverse step `k` uses the score at the forward time `t_k` at its start (never at `t = 0`),
/// then moves to `t_{k+1}`; the output approximates `q_δ` (compare with `q_δ`, not with the data,
/// when `δ > 0`). Each step draws one seed from the caller's RNG and gives every block of
/// [`BLOCK`](crate::diffusion::BLOCK) particles its own ChaCha8 stream, so results do not depend
/// on the thread count (`rayon` feature).
///
/// # Example
///
/// ```
/// use klflow::Sampler;
/// use klflow::diffusion::{Ddpm, GaussianScore, SdeScheme, TimeGrid};
/// use klflow::potential::Gaussian;
/// use nalgebra::Vector1;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let data = Gaussian::isotropic(Vector1::new(1.5), 0.25)?;
/// let grid = TimeGrid::uniform(8.0, 0.0, 200)?;
/// let ddpm = Ddpm::new(GaussianScore::new(&data), grid, SdeScheme::ExponentialIntegrator);
/// let ys = ddpm.sample(4_000, &mut ChaCha8Rng::seed_from_u64(3))?;
/// let mean = ys.iter().map(|y| y[0]).sum::<f64>() / ys.len() as f64;
/// assert!((mean - 1.5).abs() < 0.05); // SE 0.008
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Ddpm<S> {
    score: S,
    grid: TimeGrid,
    scheme: SdeScheme,
}

impl<S: ScoreModel> Ddpm<S> {
    /// DDPM with `score` on `grid`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{Ddpm, GaussianScore, SdeScheme, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector1;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// // Euler–Maruyama on data N(−1, 0.5): the sample mean is −1 up to a few SE (0.011) and O(h).
    /// let data = Gaussian::isotropic(Vector1::new(-1.0), 0.5)?;
    /// let ddpm = Ddpm::new(GaussianScore::new(&data), TimeGrid::uniform(8.0, 0.0, 400)?, SdeScheme::EulerMaruyama);
    /// let ys = ddpm.sample(4_000, &mut ChaCha8Rng::seed_from_u64(2))?;
    /// let mean = ys.iter().map(|y| y[0]).sum::<f64>() / 4_000.0;
    /// assert!((mean + 1.0).abs() < 0.08);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(score: S, grid: TimeGrid, scheme: SdeScheme) -> Self {
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
    /// use klflow::diffusion::{Ddpm, GaussianScore, SdeScheme, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Const;
    ///
    /// let score = GaussianScore::new(&Gaussian::standard(Const::<2>));
    /// let ddpm = Ddpm::new(score, TimeGrid::uniform(8.0, 0.0, 400)?, SdeScheme::EulerMaruyama);
    /// assert_eq!((ddpm.grid().steps(), ddpm.grid().horizon()), (400, 8.0));
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
    /// use klflow::diffusion::{Ddpm, GaussianScore, SdeScheme, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector1;
    ///
    /// let data = Gaussian::isotropic(Vector1::new(3.0), 1.0)?;
    /// let ddpm = Ddpm::new(GaussianScore::new(&data), TimeGrid::uniform(8.0, 0.0, 400)?, SdeScheme::EulerMaruyama);
    /// assert_eq!(ddpm.score_model().data().mean()[0], 3.0);
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
    /// use klflow::diffusion::{Ddpm, GaussianScore, SdeScheme, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Const;
    ///
    /// let score = GaussianScore::new(&Gaussian::standard(Const::<2>));
    /// let ddpm = Ddpm::new(score, TimeGrid::uniform(8.0, 0.0, 400)?, SdeScheme::EulerMaruyama);
    /// assert_eq!(ddpm.scheme(), SdeScheme::EulerMaruyama);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn scheme(&self) -> SdeScheme {
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
    /// use klflow::diffusion::{Ddpm, GaussianScore, SdeScheme, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector1;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// // From given particles; the same seed gives the same output.
    /// let score = GaussianScore::new(&Gaussian::isotropic(Vector1::new(1.0), 0.5)?);
    /// let ddpm = Ddpm::new(score, TimeGrid::uniform(4.0, 0.0, 20)?, SdeScheme::ExponentialIntegrator);
    /// let start = vec![Vector1::new(0.0); 50];
    /// let a = ddpm.sample(start.clone(), &mut ChaCha8Rng::seed_from_u64(5))?;
    /// let b = ddpm.sample(start, &mut ChaCha8Rng::seed_from_u64(5))?;
    /// assert_eq!((a.len(), &a), (50, &b));
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
    /// use klflow::diffusion::{Ddpm, GaussianScore, SdeScheme, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Const;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let score = GaussianScore::new(&Gaussian::standard(Const::<2>));
    /// let ddpm = Ddpm::new(score, TimeGrid::uniform(4.0, 0.0, 10)?, SdeScheme::ExponentialIntegrator);
    /// let (mut r1, mut r2) = (ChaCha8Rng::seed_from_u64(1), ChaCha8Rng::seed_from_u64(1));
    /// let (mut a, mut b) = (ddpm.init(600.into(), &mut r1)?, ddpm.init(600.into(), &mut r2)?);
    /// let info = ddpm.advance(&mut a, 6, &mut r1)?;
    /// for _ in 0..6 {
    ///     ddpm.step(&mut b, &mut r2)?;
    /// }
    /// assert_eq!((a.particles(), info.score_evaluations), (b.particles(), 6));
    /// // Clamped at the end of the grid: 4 steps were left.
    /// assert_eq!(ddpm.advance(&mut a, 100, &mut r1)?.time, 0.0);
    /// assert!(ddpm.is_finished(&a));
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
        advance_grid(grid, state, steps, 1, rng, |k, mut b, r| {
            let (t, h) = (grid.times()[k], grid.step_size(k));
            sde_block(&self.score, self.scheme, t, h, &mut b, r)
        })
    }
}

impl<S> Sampler for Ddpm<S>
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
