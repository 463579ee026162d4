//! Stein variational gradient descent (Liu & Wang 2016), with the analysis of Korba, Salim,
//! Arbel, Luise & Gretton (2020) and the noisy variants of Priser, Bianchi & Salim (2025).

use nalgebra::allocator::Allocator;
use nalgebra::{DMatrix, DefaultAllocator, Dim, OVector};
use rand::Rng;

use super::noisy::{Noise, NoiseScratch};
use super::pairwise::PairScratch;
use crate::diffusion::{MaybeSend, MaybeSync};
use crate::error::{Error, Result, positive};
use crate::kernel::{FitKernel, Kernel, MedianScratch};
use crate::potential::Potential;
use crate::sampler::Sampler;

/// The step size `γ_k` of step `k = 0, 1, …`.
///
/// # Example
///
/// ```
/// use klflow::stein::StepSchedule;
///
/// let s = StepSchedule::InverseTime { initial: 0.5, decay: 0.1 };
/// assert_eq!(s.at(0), 0.5);
/// assert_eq!(s.at(10), 0.25);
/// assert_eq!(StepSchedule::Power { initial: 1.0, power: 0.5 }.at(3), 0.5);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum StepSchedule {
    /// `γ_k = γ` (the analysed algorithm of Korba et al.).
    Constant(f64),
    /// `γ_k = γ₀/(1 + decay·k)`.
    InverseTime {
        /// `γ₀`.
        initial: f64,
        /// The decay rate (≥ 0).
        decay: f64,
    },
    /// `γ_k = γ₀(k + 1)^(−power)`, `power ∈ [0, 1]` (`Σγ_k = ∞`, `γ_k → 0` for `power > 0`:
    /// the schedules of the noisy-SVGD theory).
    Power {
        /// `γ₀`.
        initial: f64,
        /// The exponent.
        power: f64,
    },
}

impl StepSchedule {
    /// `γ_k`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::stein::StepSchedule;
    ///
    /// assert_eq!(StepSchedule::Constant(0.1).at(1000), 0.1);
    /// assert_eq!(StepSchedule::InverseTime { initial: 1.0, decay: 1.0 }.at(3), 0.25);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn at(&self, k: usize) -> f64 {
        match *self {
            StepSchedule::Constant(g) => g,
            StepSchedule::InverseTime { initial, decay } => initial / (1.0 + decay * k as f64),
            StepSchedule::Power { initial, power } => initial * ((k + 1) as f64).powf(-power),
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |name, value, reason| {
            Err(Error::InvalidParameter {
                name,
                value,
                reason,
            })
        };
        match *self {
            StepSchedule::Constant(g) => positive("step_size", g).map(|_| ()),
            StepSchedule::InverseTime { initial, decay } => {
                positive("step_size", initial)?;
                if decay.is_finite() && decay >= 0.0 {
                    Ok(())
                } else {
                    bad("decay", decay, "must be finite and >= 0")
                }
            }
            StepSchedule::Power { initial, power } => {
                positive("step_size", initial)?;
                if (0.0..=1.0).contains(&power) {
                    Ok(())
                } else {
                    bad("power", power, "must lie in [0, 1]")
                }
            }
        }
    }
}

/// How the direction `φ` moves the particles.
///
/// # Example
///
/// ```
/// use klflow::stein::Update;
///
/// assert_eq!(Update::adagrad(), Update::AdaGrad { alpha: 0.9, fudge: 1e-6 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Update {
    /// `x ← x + γ_k φ` (the analysed algorithm).
    Plain,
    /// Liu & Wang's reference code: `h ← φ²` at the first step, then
    /// `h ← α h + (1 − α) φ²` (elementwise), and `x ← x + γ_k φ/(fudge + √h)`.
    AdaGrad {
        /// The momentum `α ∈ [0, 1)` (0.9 in the reference code).
        alpha: f64,
        /// Added to `√h` (1e-6 in the reference code).
        fudge: f64,
    },
}

impl Update {
    /// The reference code's AdaGrad with momentum: `α = 0.9`, `fudge = 1e-6`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::stein::Update;
    ///
    /// assert!(matches!(Update::adagrad(), Update::AdaGrad { alpha, .. } if alpha == 0.9));
    /// ```
    pub fn adagrad() -> Self {
        Update::AdaGrad {
            alpha: 0.9,
            fudge: 1e-6,
        }
    }
}

/// Stein variational gradient descent: `n` particles move along
///
/// ```text
/// φ(x_i) = (1/n) Σ_j [ k(x_j, x_i) ∇log π(x_j) + ∇ₓk(x_j, x_i) ],     x_i ← x_i + γ_k φ(x_i)
/// ```
///
/// synchronously (all `φ_i` from the old positions), optionally with noise ([`Noise`]) or the
/// reference code's AdaGrad ([`Update`]). The kernel comes from a [`FitKernel`]: a fixed kernel
/// ([`Rbf`](crate::kernel::Rbf), [`Imq`](crate::kernel::Imq),
/// [`Linear`](crate::kernel::Linear)) or a bandwidth rule ([`Bandwidth`](crate::kernel::Bandwidth))
/// re-fitted every `refit_every` steps (1 by default) and kept in the state.
///
/// Every step reports the kernel Stein discrepancy of the particles it moved (the
/// Stein–Fisher information `‖φ‖²` of the empirical measure, [`SvgdInfo::ksd2`]) from the same
/// kernel evaluations. The pair sums run in a fused, tiled O(n²d) pass with O(nd) memory (see
/// [`stein`](super)); one step calls the target's gradient `n` times and allocates nothing.
///
/// Particles are the columns of a `d × n` [`DMatrix`].
///
/// A step that meets a non-finite value returns [`Error::NonFinite`] naming it, by precedence:
/// a new `"position"`, else an `"energy"`, else a `"gradient"` of the new positions. The state
/// is then not usable for further steps: the positions have moved, and the scores of some
/// particles may be those of the new positions.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, kernel::Bandwidth, potential::Gaussian, stein::Svgd};
/// use nalgebra::{DMatrix, Dyn};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let target = Gaussian::standard(Dyn(2));
/// let svgd = Svgd::new(&target, Bandwidth::LiuWang, 0.1)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(1);
/// let x0 = DMatrix::from_fn(2, 50, |i, j| -1.0 + 0.04 * j as f64 + 0.3 * i as f64);
/// let mut state = svgd.init(x0, &mut rng)?;
/// let first = svgd.step(&mut state, &mut rng)?.ksd2;
/// let mut last = first;
/// for _ in 0..300 {
///     last = svgd.step(&mut state, &mut rng)?.ksd2;
/// }
/// assert!(last < 0.05 * first);
/// assert!(state.particles().column_mean().norm() < 0.05);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Svgd<P, F> {
    potential: P,
    kernel: F,
    schedule: StepSchedule,
    update: Update,
    noise: Noise,
    refit_every: usize,
}

/// What one SVGD step reports, for the particles *before* the step.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, kernel::Rbf, potential::Gaussian, stein::Svgd};
/// use nalgebra::{DMatrix, Dyn};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let svgd = Svgd::new(Gaussian::standard(Dyn(1)), Rbf::new(1.0)?, 0.05)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut state = svgd.init(DMatrix::from_row_slice(1, 3, &[-1.0, 0.5, 2.0]), &mut rng)?;
/// let info = svgd.step(&mut state, &mut rng)?;
/// assert_eq!(info.step_size, 0.05);
/// assert!(info.ksd2 > 0.0 && info.ksd2_u < info.ksd2);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SvgdInfo {
    /// The V-statistic KSD² = Stein–Fisher information of the particles = `‖φ‖²` in the RKHS.
    pub ksd2: f64,
    /// The U-statistic KSD² (unbiased for the population value; can be negative).
    pub ksd2_u: f64,
    /// The step size `γ_k` used.
    pub step_size: f64,
}

/// The state of an SVGD run: particles, their scores, the fitted kernel and all scratch.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, kernel::Rbf, potential::Gaussian, stein::Svgd};
/// use nalgebra::{DMatrix, Dyn};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let svgd = Svgd::new(Gaussian::standard(Dyn(1)), Rbf::new(1.0)?, 0.1)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut state = svgd.init(DMatrix::from_row_slice(1, 2, &[-3.0, 3.0]), &mut rng)?;
/// svgd.step(&mut state, &mut rng)?;
/// assert_eq!(state.iteration(), 1);
/// // The two particles move towards the mode, symmetrically.
/// assert!(state.particles()[1] < 3.0);
/// assert!((state.particles()[0] + state.particles()[1]).abs() < 1e-12);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct SvgdState<D: Dim, K>
where
    DefaultAllocator: Allocator<D>,
{
    particles: DMatrix<f64>,
    scores: DMatrix<f64>,
    phi: DMatrix<f64>,
    hist: DMatrix<f64>,
    kernel: K,
    iteration: usize,
    pairs: PairScratch,
    median: MedianScratch,
    noise: NoiseScratch,
    /// One (point, gradient) buffer pair per [`SCORE_CHUNK`] particles, so that the scores
    /// can be evaluated in parallel without allocating.
    score_bufs: Vec<ScoreBufs<D>>,
    /// The chunk outcomes of the last move pass (kept to reuse the allocation).
    move_parts: Vec<MovePart>,
}

/// A point and its gradient, scratch for one chunk of the score evaluations.
type ScoreBufs<D> = (OVector<f64, D>, OVector<f64, D>);

/// One task of the score evaluation: particles, their scores, the chunk's scratch.
type ScoreJob<'a, D> = ((&'a [f64], &'a mut [f64]), &'a mut ScoreBufs<D>);

/// Particles per parallel task when the scores are evaluated (a fixed split: the same
/// arithmetic at any thread count).
const SCORE_CHUNK: usize = 16;

impl<D: Dim, K> SvgdState<D, K>
where
    DefaultAllocator: Allocator<D>,
{
    /// The particles, one per column (`d × n`).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, kernel::Rbf, potential::Gaussian, stein::Svgd};
    /// use nalgebra::{DMatrix, Dyn};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let svgd = Svgd::new(Gaussian::standard(Dyn(2)), Rbf::new(1.0)?, 0.1)?;
    /// let x0 = DMatrix::from_fn(2, 5, |i, j| (i + j) as f64);
    /// let state = svgd.init(x0.clone(), &mut ChaCha8Rng::seed_from_u64(0))?;
    /// assert_eq!(state.particles(), &x0); // d × n, unchanged by init
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn particles(&self) -> &DMatrix<f64> {
        &self.particles
    }
    /// The scores `∇log π` at the particles (`d × n`).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, kernel::Rbf, potential::Gaussian, stein::Svgd};
    /// use nalgebra::{DMatrix, Dyn};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let svgd = Svgd::new(Gaussian::standard(Dyn(2)), Rbf::new(1.0)?, 0.1)?;
    /// let x0 = DMatrix::from_fn(2, 5, |i, j| (i + j) as f64);
    /// let state = svgd.init(x0.clone(), &mut ChaCha8Rng::seed_from_u64(0))?;
    /// assert_eq!(state.scores(), &(-x0)); // ∇log π(x) = −x for N(0, I)
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn scores(&self) -> &DMatrix<f64> {
        &self.scores
    }
    /// The last direction `φ` (zero before the first step).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, kernel::Rbf, potential::Gaussian, stein::Svgd};
    /// use nalgebra::{DMatrix, Dyn};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let svgd = Svgd::new(Gaussian::standard(Dyn(1)), Rbf::new(1.0)?, 0.1)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = svgd.init(DMatrix::from_row_slice(1, 2, &[1.0, 2.0]), &mut rng)?;
    /// assert_eq!(state.phi().norm(), 0.0);
    /// let before = state.particles().clone();
    /// svgd.step(&mut state, &mut rng)?;
    /// // Plain SVGD: x ← x + γφ.
    /// assert!((state.particles() - (before + 0.1 * state.phi())).norm() < 1e-15);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn phi(&self) -> &DMatrix<f64> {
        &self.phi
    }
    /// The kernel fitted at the last refit.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, kernel::Rbf, potential::Gaussian, stein::Svgd};
    /// use nalgebra::{DMatrix, Dyn};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let svgd = Svgd::new(Gaussian::standard(Dyn(1)), Rbf::new(0.7)?, 0.1)?;
    /// let state = svgd.init(DMatrix::from_row_slice(1, 2, &[1.0, 2.0]), &mut ChaCha8Rng::seed_from_u64(0))?;
    /// assert_eq!(state.kernel().sigma(), 0.7); // a fixed kernel is used as given
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn kernel(&self) -> &K {
        &self.kernel
    }
    /// The number of completed steps.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, kernel::Bandwidth, potential::Gaussian, stein::Svgd};
    /// use nalgebra::{DMatrix, Dyn};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let svgd = Svgd::new(Gaussian::standard(Dyn(1)), Bandwidth::LiuWang, 0.1)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = svgd.init(DMatrix::from_row_slice(1, 3, &[0.0, 1.0, 2.0]), &mut rng)?;
    /// assert_eq!(state.iteration(), 0);
    /// for _ in 0..4 {
    ///     svgd.step(&mut state, &mut rng)?;
    /// }
    /// assert_eq!(state.iteration(), 4);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn iteration(&self) -> usize {
        self.iteration
    }
}

impl<P: Potential, F: FitKernel> Svgd<P, F> {
    /// Plain SVGD on `potential` with kernel (rule) `kernel` and constant step `step_size`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming `step_size` unless it is finite and > 0.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, kernel::Rbf, potential::Gaussian, stein::Svgd};
    /// use nalgebra::Dyn;
    ///
    /// let target = Gaussian::standard(Dyn(3));
    /// assert!(Svgd::new(&target, Rbf::new(1.0)?, 0.1).is_ok());
    /// assert!(matches!(
    ///     Svgd::new(&target, Rbf::new(1.0)?, 0.0),
    ///     Err(Error::InvalidParameter { name: "step_size", .. })
    /// ));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(potential: P, kernel: F, step_size: f64) -> Result<Self> {
        positive("step_size", step_size)?;
        Ok(Self {
            potential,
            kernel,
            schedule: StepSchedule::Constant(step_size),
            update: Update::Plain,
            noise: Noise::None,
            refit_every: 1,
        })
    }

    /// Uses the step-size schedule `schedule`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for a non-positive step or an out-of-range decay/power.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{kernel::Rbf, potential::Gaussian, stein::{StepSchedule, Svgd}};
    /// use nalgebra::Dyn;
    ///
    /// let svgd = Svgd::new(Gaussian::standard(Dyn(1)), Rbf::new(1.0)?, 0.1)?;
    /// let decaying = StepSchedule::Power { initial: 0.1, power: 0.5 };
    /// let svgd = svgd.with_schedule(decaying)?;
    /// // A power above 1 makes Σγ_k finite: rejected.
    /// assert!(svgd.with_schedule(StepSchedule::Power { initial: 0.1, power: 2.0 }).is_err());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn with_schedule(mut self, schedule: StepSchedule) -> Result<Self> {
        schedule.validate()?;
        self.schedule = schedule;
        Ok(self)
    }

    /// Uses the update rule `update`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless `0 ≤ alpha < 1` and `fudge > 0` for AdaGrad.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, kernel::Rbf, potential::Gaussian, stein::{Svgd, Update}};
    /// use nalgebra::Dyn;
    ///
    /// let svgd = Svgd::new(Gaussian::standard(Dyn(1)), Rbf::new(1.0)?, 0.1)?;
    /// let svgd = svgd.with_update(Update::adagrad())?;
    /// let bad = Update::AdaGrad { alpha: 1.0, fudge: 1e-6 };
    /// assert!(matches!(svgd.with_update(bad), Err(Error::InvalidParameter { name: "alpha", .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn with_update(mut self, update: Update) -> Result<Self> {
        if let Update::AdaGrad { alpha, fudge } = update {
            if !(0.0..1.0).contains(&alpha) {
                return Err(Error::InvalidParameter {
                    name: "alpha",
                    value: alpha,
                    reason: "must lie in [0, 1)",
                });
            }
            positive("fudge", fudge)?;
        }
        self.update = update;
        Ok(self)
    }

    /// Adds noise after every step (noisy SVGD).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for a negative or non-finite noise scale.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{kernel::Rbf, potential::Gaussian, stein::{Noise, Svgd}};
    /// use nalgebra::Dyn;
    ///
    /// let svgd = Svgd::new(Gaussian::standard(Dyn(1)), Rbf::new(1.0)?, 0.1)?;
    /// let svgd = svgd.with_noise(Noise::isotropic())?;
    /// assert!(svgd.with_noise(Noise::Isotropic { scale: -1.0 }).is_err());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn with_noise(mut self, noise: Noise) -> Result<Self> {
        noise.validate()?;
        self.noise = noise;
        Ok(self)
    }

    /// Re-fits the kernel every `k` steps (1 = every step, the reference code's choice).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming `refit_every` if `k = 0`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, kernel::Bandwidth, potential::Gaussian, stein::Svgd};
    /// use nalgebra::Dyn;
    ///
    /// let svgd = Svgd::new(Gaussian::standard(Dyn(1)), Bandwidth::LiuWang, 0.1)?;
    /// let svgd = svgd.with_refit_every(10)?;
    /// assert!(matches!(svgd.with_refit_every(0), Err(Error::InvalidParameter { name: "refit_every", .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn with_refit_every(mut self, k: usize) -> Result<Self> {
        if k == 0 {
            return Err(Error::InvalidParameter {
                name: "refit_every",
                value: 0.0,
                reason: "must be >= 1",
            });
        }
        self.refit_every = k;
        Ok(self)
    }

    /// The target potential.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Potential, kernel::Rbf, potential::Gaussian, stein::Svgd};
    /// use nalgebra::Dyn;
    ///
    /// let svgd = Svgd::new(Gaussian::standard(Dyn(3)), Rbf::new(1.0)?, 0.1)?;
    /// assert_eq!(svgd.potential().dim(), Dyn(3));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn potential(&self) -> &P {
        &self.potential
    }

    /// Writes the scores `−∇U` of every particle, checking finiteness; in parallel over
    /// chunks of [`SCORE_CHUNK`] particles with the `rayon` feature (each particle's score is
    /// computed alone, so the values do not depend on the thread count).
    fn scores<K>(&self, state: &mut SvgdState<P::Dim, K>, step: usize) -> Result<()>
    where
        P: MaybeSync,
        OVector<f64, P::Dim>: MaybeSend,
        DefaultAllocator: Allocator<P::Dim>,
    {
        let d = state.particles.nrows();
        let potential = &self.potential;
        let job = |((xs, ss), bufs): ScoreJob<'_, P::Dim>| score_chunk(potential, d, xs, ss, bufs);
        let chunk = SCORE_CHUNK * d;
        #[cfg(feature = "rayon")]
        let outcome = {
            use rayon::prelude::*;
            state
                .particles
                .as_slice()
                .par_chunks(chunk)
                .zip(state.scores.as_mut_slice().par_chunks_mut(chunk))
                .zip(state.score_bufs.par_iter_mut())
                .with_max_len(1)
                .map(job)
                .reduce(|| Outcome::Ok, Outcome::max)
        };
        #[cfg(not(feature = "rayon"))]
        let outcome = state
            .particles
            .as_slice()
            .chunks(chunk)
            .zip(state.scores.as_mut_slice().chunks_mut(chunk))
            .zip(state.score_bufs.iter_mut())
            .map(job)
            .fold(Outcome::Ok, Outcome::max);
        outcome.check(step)
    }

    /// The end of a step, one pass per chunk of [`SCORE_CHUNK`] particles (in parallel with
    /// the `rayon` feature from [`PARALLEL_MIN_N`](crate::par::PARALLEL_MIN_N) particles on; a
    /// fixed split, so the values do not depend on the thread count):
    /// the chunk's part of the KSD sums (from the scores about to be replaced), the directions
    /// `φ`, the move `x ← x + γ φ` (or the AdaGrad move) plus the noise, the finiteness of the
    /// new positions, and their scores. Returns the KSD² V- and U-statistics (the chunk parts
    /// added in order: the bits of the serial [`PairScratch::ksd`]). Errors, in this order of
    /// precedence: a non-finite position, energy, gradient.
    ///
    /// [`PairScratch::ksd`]: super::pairwise::PairScratch::ksd
    fn move_particles<K>(
        &self,
        state: &mut SvgdState<P::Dim, K>,
        k: usize,
        gamma: f64,
        noisy: bool,
    ) -> Result<(f64, f64)>
    where
        P: MaybeSync,
        OVector<f64, P::Dim>: MaybeSend,
        DefaultAllocator: Allocator<P::Dim>,
        K: Kernel + MaybeSync,
    {
        let (d, n) = state.particles.shape();
        let potential = &self.potential;
        let update = self.update;
        let (pairs, kernel) = (&state.pairs, &state.kernel);
        let chunk = SCORE_CHUNK * d;
        let job = |c: usize, part: MoveJob<'_, P::Dim>| -> MovePart {
            let (((xs, ss), ph), (hist, eta, bufs)) = part;
            let i0 = c * SCORE_CHUNK;
            let (rows, diag) = pairs.ksd_terms(kernel, i0, xs, ss, bufs.1.as_mut_slice());
            pairs.phi_range(i0, xs, ph);
            match update {
                Update::Plain => {
                    for (x, p) in xs.iter_mut().zip(ph.iter()) {
                        *x += gamma * p;
                    }
                }
                Update::AdaGrad { alpha, fudge } => {
                    for ((x, p), h) in xs.iter_mut().zip(ph.iter()).zip(hist.iter_mut()) {
                        *h = if k == 0 {
                            *h + p * p
                        } else {
                            alpha * *h + (1.0 - alpha) * p * p
                        };
                        *x += gamma * p / (fudge + h.sqrt());
                    }
                }
            }
            if noisy {
                for (x, e) in xs.iter_mut().zip(eta.iter()) {
                    *x += e;
                }
            }
            if !crate::dim::all_finite(xs) {
                return (Outcome::Position, rows, diag);
            }
            (score_chunk(potential, d, xs, ss, bufs), rows, diag)
        };
        let SvgdState {
            particles,
            scores,
            phi,
            hist,
            noise,
            score_bufs,
            move_parts,
            ..
        } = state;
        // In parallel from `PARALLEL_MIN_N` particles on (below, a region's cost — waking a
        // worker, splitting — exceeds the chunks' work); the same chunks and parts either way.
        #[cfg(feature = "rayon")]
        let parallel = n >= crate::par::PARALLEL_MIN_N;
        #[cfg(not(feature = "rayon"))]
        let parallel = false;
        #[cfg(feature = "rayon")]
        if parallel {
            use rayon::iter::Either;
            use rayon::prelude::*;
            let chunks = score_bufs.len();
            let hist = if hist.is_empty() {
                Either::Left((0..chunks).into_par_iter().map(|_| <&mut [f64]>::default()))
            } else {
                Either::Right(hist.as_mut_slice().par_chunks_mut(chunk))
            };
            let eta = if noisy {
                Either::Right(noise.eta.as_slice().par_chunks(chunk))
            } else {
                Either::Left((0..chunks).into_par_iter().map(|_| <&[f64]>::default()))
            };
            particles
                .as_mut_slice()
                .par_chunks_mut(chunk)
                .zip(scores.as_mut_slice().par_chunks_mut(chunk))
                .zip(phi.as_mut_slice().par_chunks_mut(chunk))
                .zip(hist.zip(eta).zip(score_bufs.par_iter_mut()))
                .map(|(a, ((h, e), b))| (a, (h, e, b)))
                .enumerate()
                .with_max_len(1)
                .map(|(c, part)| job(c, part))
                .collect_into_vec(move_parts);
        }
        if !parallel {
            let (hist, eta) = (hist.as_mut_slice(), noise.eta.as_slice());
            move_parts.clear();
            for (c, (((xs, ss), ph), bufs)) in particles
                .as_mut_slice()
                .chunks_mut(chunk)
                .zip(scores.as_mut_slice().chunks_mut(chunk))
                .zip(phi.as_mut_slice().chunks_mut(chunk))
                .zip(score_bufs.iter_mut())
                .enumerate()
            {
                let range = c * chunk..(c * chunk + xs.len());
                let h: &mut [f64] = if hist.is_empty() {
                    &mut []
                } else {
                    &mut hist[range.clone()]
                };
                let e: &[f64] = if noisy { &eta[range] } else { &[] };
                move_parts.push(job(c, (((xs, ss), ph), (h, e, bufs))));
            }
        }
        let (mut outcome, mut rows, mut diag) = (Outcome::Ok, 0.0, 0.0);
        for &(o, r, g) in move_parts.iter() {
            outcome = outcome.max(o);
            rows += r;
            diag += g;
        }
        outcome.check(state.iteration)?;
        Ok(super::pairwise::ksd_statistics(n, rows, diag))
    }
}

/// One task of [`Svgd::move_particles`]: the chunk's particles, scores and directions, then its
/// AdaGrad history (empty for the plain move), noise (empty without noise) and score scratch.
type MoveJob<'a, D> = (
    ((&'a mut [f64], &'a mut [f64]), &'a mut [f64]),
    (&'a mut [f64], &'a [f64], &'a mut ScoreBufs<D>),
);

/// One chunk's outcome in [`Svgd::move_particles`], with its parts of the KSD sums.
type MovePart = (Outcome, f64, f64);

// The move pass's chunks are the KSD's chunks (same parts, same order, same bits).
const _: () = assert!(SCORE_CHUNK == super::pairwise::KSD_CHUNK);

/// What a chunk of particles met, ordered by precedence: the largest over the chunks is
/// reported (so the error does not depend on which chunk, or thread, met it first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Ok,
    Gradient,
    Energy,
    Position,
}

impl Outcome {
    /// `Ok` or the [`Error::NonFinite`] naming the quantity, at `step`.
    fn check(self, step: usize) -> Result<()> {
        let quantity = match self {
            Outcome::Ok => return Ok(()),
            Outcome::Gradient => "gradient",
            Outcome::Energy => "energy",
            Outcome::Position => "position",
        };
        Err(Error::NonFinite { step, quantity })
    }
}

/// The scores `−∇U` of the particles `xs` (`d` entries each) into `ss`, with the chunk's
/// point/gradient scratch; `Energy` if an energy is not finite, else `Gradient` if a score is
/// not, else `Ok`.
fn score_chunk<P: Potential>(
    potential: &P,
    d: usize,
    xs: &[f64],
    ss: &mut [f64],
    (point, grad): &mut ScoreBufs<P::Dim>,
) -> Outcome
where
    DefaultAllocator: Allocator<P::Dim>,
{
    let mut energies_ok = true;
    for (x, s) in xs.chunks_exact(d).zip(ss.chunks_exact_mut(d)) {
        point.as_mut_slice().copy_from_slice(x);
        energies_ok &= potential.energy_grad(point, grad).is_finite();
        for (s, g) in s.iter_mut().zip(grad.iter()) {
            *s = -g;
        }
    }
    if !energies_ok {
        Outcome::Energy
    } else if !crate::dim::all_finite(ss) {
        Outcome::Gradient
    } else {
        Outcome::Ok
    }
}

impl<P, F> Sampler for Svgd<P, F>
where
    P: Potential + MaybeSync,
    OVector<f64, P::Dim>: MaybeSend,
    F: FitKernel,
    F::Kernel: Sync,
    DefaultAllocator: Allocator<P::Dim>,
{
    type Init = DMatrix<f64>;
    type State = SvgdState<P::Dim, F::Kernel>;
    type Info = SvgdInfo;

    fn init<R: Rng + ?Sized>(&self, init: DMatrix<f64>, _rng: &mut R) -> Result<Self::State> {
        let dim = self.potential.dim();
        let (d, n) = init.shape();
        if d != dim.value() {
            return Err(Error::DimensionMismatch {
                name: "init",
                expected: dim.value(),
                found: d,
            });
        }
        if n == 0 {
            return Err(Error::Empty { name: "init" });
        }
        crate::error::finite_input("init", init.as_slice())?;
        let mut median = if self.kernel.is_adaptive() {
            MedianScratch::new(n)
        } else {
            MedianScratch::default()
        };
        let kernel = self.kernel.fit(&init, &mut median)?;
        let hist = match self.update {
            Update::Plain => DMatrix::zeros(0, 0),
            Update::AdaGrad { .. } => DMatrix::zeros(d, n),
        };
        let mut state = SvgdState {
            scores: DMatrix::zeros(d, n),
            phi: DMatrix::zeros(d, n),
            hist,
            kernel,
            iteration: 0,
            pairs: PairScratch::new(d, n),
            median,
            noise: NoiseScratch::new(&self.noise, d, n),
            score_bufs: vec![
                (
                    OVector::zeros_generic(dim, nalgebra::Const::<1>),
                    OVector::zeros_generic(dim, nalgebra::Const::<1>),
                );
                n.div_ceil(SCORE_CHUNK)
            ],
            move_parts: Vec::with_capacity(n.div_ceil(SCORE_CHUNK)),
            particles: init,
        };
        self.scores(&mut state, 0)?;
        Ok(state)
    }

    fn step<R: Rng + ?Sized>(&self, state: &mut Self::State, rng: &mut R) -> Result<SvgdInfo> {
        let k = state.iteration;
        if k > 0 && self.kernel.is_adaptive() && k % self.refit_every == 0 {
            state.kernel = self.kernel.fit(&state.particles, &mut state.median)?;
        }
        let (x, s) = (state.particles.as_slice(), state.scores.as_slice());
        let (d, n) = state.particles.shape();
        // The median of this step's fit (or of init, for step 0) computed every squared
        // distance of these particles in the pair engine's layout: reuse them.
        let r2 = state.median.fresh_store(n, d);
        state.pairs.compute(&state.kernel, x, s, r2);
        state.median.mark_stale();
        let gamma = self.schedule.at(k);
        // Noise is drawn at the old positions (the kernel-correlated factor uses K(x_old)).
        let noisy = state
            .noise
            .draw(&self.noise, &state.kernel, &state.particles, gamma, rng);
        state.iteration += 1;
        let (ksd2, ksd2_u) = self.move_particles(state, k, gamma, noisy)?;
        Ok(SvgdInfo {
            ksd2,
            ksd2_u,
            step_size: gamma,
        })
    }
}
