//! Averaged Langevin Monte Carlo: a draw from the time-averaged law of the LMC interpolation.

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, OVector};
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;

use crate::error::{Error, Result, positive};
use crate::langevin::ula::{Ula, UlaInfo, chain_state};
use crate::potential::Potential;
use crate::sampler::{ChainState, HasPosition, Sampler};

/// Which average [`AveragedLmc`] draws from.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::{AveragedLmc, Averaging}, potential::Gaussian};
/// use nalgebra::{Const, Vector1};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// assert_eq!(Averaging::default(), Averaging::Continuous);
/// // The iterate mixture draws at a grid time: offset u = 0.
/// let target = Gaussian::standard(Const::<1>);
/// let alg = AveragedLmc::new(&target, 0.1, 50, Averaging::RandomIterate)?;
/// let state = alg.init(Vector1::new(1.0), &mut ChaCha8Rng::seed_from_u64(3))?;
/// assert_eq!(state.draw_time().1, 0.0);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Averaging {
    /// The law `μ̄_N = (1/(Nh))∫₀^{Nh} law(x_t) dt` of the continuous LMC interpolation
    /// `x_t = x_k − (t − kh)∇U(x_k) + √2 (B_t − B_{kh})`: draw `k ~ Unif{0, …, N−1}`,
    /// `u ~ Unif[0, h]`, run LMC to `x_k` and return `x_k − u∇U(x_k) + √(2u) ξ`. This is the
    /// law the theorem covers: its relative Fisher information is at most
    /// `(1/(Nh))∫ FI(μ_t‖π) dt ≤ C₁ KL(μ₀‖π)/(Nh) + C₂ L² d h` for any `L`-smooth `U`, convex
    /// or not (Balasubramanian, Chewi, Erdogdu, Salim, Zhang 2022).
    #[default]
    Continuous,
    /// The uniform mixture of the iterates `(1/N) Σ_{k<N} law(x_k)`: return `x_k`,
    /// `k ~ Unif{0, …, N−1}`. Cheaper to explain and the same cost, but the theorem is stated for
    /// the continuous average; the iterate mixture can differ from it by O(h) and carries no
    /// Fisher-information guarantee of its own.
    RandomIterate,
}

/// Averaged LMC: each run produces **one** draw from the averaged law of an LMC chain of length
/// `N` (see [`Averaging`]). Independent draws need independent runs (e.g.
/// [`run_chains`](crate::run::run_chains)); draws are not the successive states of one chain.
///
/// It is a [`Sampler`] that is [finished](Sampler::is_finished) once its draw is made (after
/// `k ≤ N − 1` ULA steps); [`AveragedLmc::draw`] does the whole run.
///
/// # Example
///
/// ```
/// use klflow::langevin::{AveragedLmc, Averaging};
/// use klflow::potential::DoubleWell;
/// use nalgebra::{Const, Vector1};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// // A non-log-concave target (modes at ±2), L = 3; h ≤ 1/(4L).
/// let target = DoubleWell::new(Const::<1>, 2.0)?;
/// let alg = AveragedLmc::new(&target, 0.05, 200, Averaging::Continuous)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(9);
/// let x = alg.draw(Vector1::new(4.0), &mut rng)?;
/// assert!(x[0].is_finite());
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct AveragedLmc<P> {
    ula: Ula<P>,
    steps: usize,
    averaging: Averaging,
}

/// The state of an averaged-LMC run: the LMC chain, the pre-drawn `(k, u)`, and the draw once
/// made.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::{AveragedLmc, Averaging}, potential::Gaussian};
/// use nalgebra::{Const, Vector1};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let target = Gaussian::standard(Const::<1>);
/// let alg = AveragedLmc::new(&target, 0.1, 50, Averaging::Continuous)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(3);
/// let mut state = alg.init(Vector1::new(1.0), &mut rng)?;
/// while !alg.is_finished(&state) {
///     alg.step(&mut state, &mut rng)?;
/// }
/// // The draw is taken after k ULA steps, at offset u ∈ [0, h].
/// let (k, u) = state.draw_time();
/// assert_eq!(state.chain().iteration(), k);
/// assert!(k < 50 && (0.0..=0.1).contains(&u));
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct AveragedState<D: nalgebra::Dim>
where
    DefaultAllocator: Allocator<D>,
{
    chain: ChainState<D>,
    k: usize,
    u: f64,
    output: Option<OVector<f64, D>>,
}

impl<D: nalgebra::Dim> AveragedState<D>
where
    DefaultAllocator: Allocator<D>,
{
    /// The draw, once the run is finished.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::{AveragedLmc, Averaging}, potential::Gaussian};
    /// use nalgebra::{Const, Vector1};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let target = Gaussian::standard(Const::<1>);
    /// let alg = AveragedLmc::new(&target, 0.1, 50, Averaging::RandomIterate)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(4);
    /// let mut state = alg.init(Vector1::new(1.0), &mut rng)?;
    /// while state.output().is_none() {
    ///     alg.step(&mut state, &mut rng)?;
    /// }
    /// // The iterate mixture returns the chain's position x_k itself.
    /// assert_eq!(state.output(), Some(state.chain().position()));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn output(&self) -> Option<&OVector<f64, D>> {
        self.output.as_ref()
    }
    /// The chain index `k` and the offset `u ∈ [0, h]` of this run's draw.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::{AveragedLmc, Averaging}, potential::Gaussian};
    /// use nalgebra::{Const, Vector1};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let target = Gaussian::standard(Const::<1>);
    /// let alg = AveragedLmc::new(&target, 0.2, 10, Averaging::Continuous)?;
    /// let state = alg.init(Vector1::new(0.0), &mut ChaCha8Rng::seed_from_u64(0))?;
    /// let (k, u) = state.draw_time(); // drawn in `init`
    /// assert!(k < 10 && (0.0..=0.2).contains(&u));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn draw_time(&self) -> (usize, f64) {
        (self.k, self.u)
    }
    /// The LMC chain.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::{AveragedLmc, Averaging}, potential::Gaussian};
    /// use nalgebra::{Const, Vector1};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let target = Gaussian::standard(Const::<1>);
    /// let alg = AveragedLmc::new(&target, 0.1, 10, Averaging::Continuous)?;
    /// let state = alg.init(Vector1::new(2.0), &mut ChaCha8Rng::seed_from_u64(0))?;
    /// assert_eq!(state.chain().iteration(), 0);
    /// assert_eq!(state.chain().energy(), 2.0); // U(x) = x²/2
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn chain(&self) -> &ChainState<D> {
        &self.chain
    }
}

impl<D: nalgebra::Dim> HasPosition for AveragedState<D>
where
    DefaultAllocator: Allocator<D>,
{
    type Dim = D;
    fn position(&self) -> &OVector<f64, D> {
        self.chain.position()
    }
}

impl<P: Potential> AveragedLmc<P> {
    /// Averaged LMC with step `step_size` over a horizon of `steps` LMC steps.
    ///
    /// # Errors
    ///
    /// As [`Ula::new`] for `step_size`; [`Error::InvalidParameter`] naming `steps` if it is 0.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, langevin::{AveragedLmc, Averaging}, potential::Gaussian};
    /// use nalgebra::Const;
    ///
    /// let target = Gaussian::standard(Const::<2>);
    /// assert!(AveragedLmc::new(&target, 0.1, 100, Averaging::Continuous).is_ok());
    /// assert!(matches!(
    ///     AveragedLmc::new(&target, 0.1, 0, Averaging::Continuous),
    ///     Err(Error::InvalidParameter { name: "steps", .. })
    /// ));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(potential: P, step_size: f64, steps: usize, averaging: Averaging) -> Result<Self> {
        positive("step_size", step_size)?;
        if steps == 0 {
            return Err(Error::InvalidParameter {
                name: "steps",
                value: 0.0,
                reason: "must be at least 1",
            });
        }
        Ok(Self {
            ula: Ula::new(potential, step_size)?,
            steps,
            averaging,
        })
    }

    /// The horizon `N`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{langevin::{AveragedLmc, Averaging}, potential::Gaussian};
    /// use nalgebra::Const;
    ///
    /// let target = Gaussian::standard(Const::<2>);
    /// assert_eq!(AveragedLmc::new(&target, 0.1, 100, Averaging::Continuous)?.steps(), 100);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Runs one averaged-LMC chain from `x0` and returns its draw.
    ///
    /// # Errors
    ///
    /// As [`Sampler::init`] and [`Sampler::step`].
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{langevin::{AveragedLmc, Averaging}, potential::Gaussian};
    /// use nalgebra::{Const, Vector1};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// // 400 independent runs on N(0, 1) from x₀ = 0: the draws have variance ≈ 1 (a run of
    /// // N = 400 steps of h = 0.05 mixes).
    /// let target = Gaussian::standard(Const::<1>);
    /// let alg = AveragedLmc::new(&target, 0.05, 400, Averaging::Continuous)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(7);
    /// let mut s2 = 0.0;
    /// for _ in 0..400 {
    ///     s2 += alg.draw(Vector1::new(0.0), &mut rng)?[0].powi(2) / 400.0;
    /// }
    /// // ULA's stationary variance is 1/(1 − h/2) ≈ 1.03; draws from early in the run (the chain
    /// // starts at the mode) have less. SE of the mean of x² over 400 draws ≈ 0.07 (seed 7: 1.002).
    /// assert!((s2 - 1.0).abs() < 0.3);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn draw<R: Rng + ?Sized>(
        &self,
        x0: OVector<f64, P::Dim>,
        rng: &mut R,
    ) -> Result<OVector<f64, P::Dim>>
    where
        DefaultAllocator: Allocator<P::Dim>,
    {
        let mut state = self.init(x0, rng)?;
        while state.output.is_none() {
            self.step(&mut state, rng)?;
        }
        Ok(state.output.take().expect("finished"))
    }

    fn finish<R: Rng + ?Sized>(&self, state: &mut AveragedState<P::Dim>, rng: &mut R)
    where
        DefaultAllocator: Allocator<P::Dim>,
    {
        let (x, g, u) = (&state.chain.position, &state.chain.gradient, state.u);
        let mut out = x.clone();
        if u > 0.0 {
            let s = (2.0 * u).sqrt();
            for (o, gi) in out.iter_mut().zip(g.iter()) {
                let z: f64 = rng.sample(StandardNormal);
                *o += -u * gi + s * z;
            }
        }
        state.output = Some(out);
    }
}

impl<P: Potential> Sampler for AveragedLmc<P>
where
    DefaultAllocator: Allocator<P::Dim>,
{
    type Init = OVector<f64, P::Dim>;
    type State = AveragedState<P::Dim>;
    type Info = UlaInfo;

    fn init<R: Rng + ?Sized>(&self, init: Self::Init, rng: &mut R) -> Result<Self::State> {
        let chain = chain_state(self.ula.potential(), init)?;
        let k = rng.random_range(0..self.steps);
        let u = match self.averaging {
            Averaging::Continuous => self.ula.step_size() * rng.random::<f64>(),
            Averaging::RandomIterate => 0.0,
        };
        let mut state = AveragedState {
            chain,
            k,
            u,
            output: None,
        };
        if k == 0 {
            self.finish(&mut state, rng);
        }
        Ok(state)
    }

    fn step<R: Rng + ?Sized>(&self, state: &mut Self::State, rng: &mut R) -> Result<UlaInfo> {
        if state.output.is_some() {
            return Ok(UlaInfo {
                energy: state.chain.energy,
            });
        }
        let info = self.ula.step(&mut state.chain, rng)?;
        if state.chain.iteration == state.k {
            self.finish(state, rng);
        }
        Ok(info)
    }

    fn is_finished(&self, state: &Self::State) -> bool {
        state.output.is_some()
    }
}
