//! Driving a sampler: the [`run`] loop and the [`Observer`]s that watch it.
//!
//! An observer sees the state and the step's info after every step and answers with
//! [`ControlFlow`]: `Continue` or `Break` (stop early). Observers compose as tuples:
//! `(Trace::new(..), OnlineMoments::new(..))` records a trace *and* accumulates moments.

use std::ops::ControlFlow;

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, Dim, OMatrix, OVector};
use rand::Rng;

use crate::dim::Alloc;
use crate::error::Result;
use crate::sampler::{HasPosition, Sampler};

/// Watches a run: called after every step with the step count (1-based), the state, and the
/// step's info.
///
/// Implemented by `()` (does nothing), by pairs and triples of observers, and by
/// [`FnObserver`] for closures.
///
/// # Example
///
/// ```
/// use std::ops::ControlFlow;
/// use klflow::run::Observer;
///
/// /// Counts the steps whose energy exceeded a threshold.
/// struct HighEnergy(usize);
/// impl<S, I> Observer<S, I> for HighEnergy
/// where
///     S: klflow::sampler::HasPosition,
/// {
///     fn observe(&mut self, _step: usize, _state: &S, _info: &I) -> ControlFlow<()> {
///         self.0 += 1;
///         ControlFlow::Continue(())
///     }
/// }
/// # let _ = HighEnergy(0);
/// ```
pub trait Observer<S, I> {
    /// Called after step `step` (1-based). Return `ControlFlow::Break(())` to stop the run.
    fn observe(&mut self, step: usize, state: &S, info: &I) -> ControlFlow<()>;
}

impl<S, I> Observer<S, I> for () {
    fn observe(&mut self, _: usize, _: &S, _: &I) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

impl<S, I, A: Observer<S, I>, B: Observer<S, I>> Observer<S, I> for (A, B) {
    fn observe(&mut self, step: usize, state: &S, info: &I) -> ControlFlow<()> {
        let a = self.0.observe(step, state, info);
        let b = self.1.observe(step, state, info);
        if a.is_break() || b.is_break() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

impl<S, I, A: Observer<S, I>, B: Observer<S, I>, C: Observer<S, I>> Observer<S, I> for (A, B, C) {
    fn observe(&mut self, step: usize, state: &S, info: &I) -> ControlFlow<()> {
        let ab = (&mut self.0, &mut self.1).observe(step, state, info);
        let c = self.2.observe(step, state, info);
        if ab.is_break() || c.is_break() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

impl<S, I, O: Observer<S, I> + ?Sized> Observer<S, I> for &mut O {
    fn observe(&mut self, step: usize, state: &S, info: &I) -> ControlFlow<()> {
        (**self).observe(step, state, info)
    }
}

/// An observer made from a closure `FnMut(step, &state, &info) -> ControlFlow<()>`.
///
/// # Example
///
/// ```
/// use std::ops::ControlFlow;
/// use klflow::{langevin::Ula, potential::Gaussian, run::{FnObserver, run}, Sampler};
/// use nalgebra::SVector;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let ula = Ula::new(Gaussian::standard(nalgebra::Const::<2>), 0.1)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(3);
/// let mut state = ula.init(nalgebra::Vector2::new(10.0, 0.0), &mut rng)?;
/// // Stop as soon as the chain comes within distance 1 of the mode.
/// let mut stop = FnObserver(|_, s: &klflow::sampler::ChainState<nalgebra::Const<2>>, _: &_| {
///     if s.position().norm() < 1.0 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
/// });
/// let summary = run(&ula, &mut state, 10_000, &mut rng, &mut stop)?;
/// assert!(summary.stopped_early && summary.steps < 10_000);
/// # Ok::<(), klflow::Error>(())
/// ```
pub struct FnObserver<F>(pub F);

impl<S, I, F: FnMut(usize, &S, &I) -> ControlFlow<()>> Observer<S, I> for FnObserver<F> {
    fn observe(&mut self, step: usize, state: &S, info: &I) -> ControlFlow<()> {
        (self.0)(step, state, info)
    }
}

/// What [`run`] did.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::Ula, potential::Gaussian, run::{RunSummary, run}};
/// use nalgebra::Vector1;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let ula = Ula::new(Gaussian::standard(nalgebra::Const::<1>), 0.1)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut state = ula.init(Vector1::new(0.0), &mut rng)?;
/// let summary = run(&ula, &mut state, 25, &mut rng, &mut ())?;
/// assert_eq!(summary, RunSummary { steps: 25, stopped_early: false, finished: false });
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunSummary {
    /// Steps taken.
    pub steps: usize,
    /// `true` if an observer stopped the run.
    pub stopped_early: bool,
    /// `true` if the sampler reported [`Sampler::is_finished`].
    pub finished: bool,
}

/// Runs `sampler` from `state` for at most `max_steps` steps, calling `observer` after each.
///
/// Stops early when the observer breaks or the sampler is finished. The state is updated in
/// place, so a run can be continued by calling `run` again.
///
/// # Errors
///
/// The first error of [`Sampler::step`], e.g. [`Error::NonFinite`](crate::Error::NonFinite).
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::Ula, potential::Gaussian, run::{OnlineMoments, run}};
/// use nalgebra::SVector;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let target = Gaussian::standard(nalgebra::Const::<2>);
/// let ula = Ula::new(&target, 0.05)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(11);
/// let mut state = ula.init(SVector::zeros(), &mut rng)?;
/// let mut moments = OnlineMoments::new(nalgebra::Const::<2>);
/// run(&ula, &mut state, 20_000, &mut rng, &mut moments)?;
/// assert!(moments.mean().norm() < 0.2);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn run<S, R, O>(
    sampler: &S,
    state: &mut S::State,
    max_steps: usize,
    rng: &mut R,
    observer: &mut O,
) -> Result<RunSummary>
where
    S: Sampler,
    R: Rng + ?Sized,
    O: Observer<S::State, S::Info> + ?Sized,
{
    let mut summary = RunSummary {
        steps: 0,
        stopped_early: false,
        finished: false,
    };
    while summary.steps < max_steps {
        if sampler.is_finished(state) {
            summary.finished = true;
            return Ok(summary);
        }
        let info = sampler.step(state, rng)?;
        summary.steps += 1;
        if observer.observe(summary.steps, state, &info).is_break() {
            summary.stopped_early = true;
            return Ok(summary);
        }
    }
    summary.finished = sampler.is_finished(state);
    Ok(summary)
}

/// Records positions: every `thin`-th step after `burn_in` steps.
///
/// Storage grows by one vector per recorded step; reserve with [`Trace::with_capacity`] to
/// keep the run allocation-free.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::Ula, potential::Gaussian, run::{Trace, run}};
/// use nalgebra::SVector;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let ula = Ula::new(Gaussian::standard(nalgebra::Const::<2>), 0.1)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut state = ula.init(SVector::zeros(), &mut rng)?;
/// let mut trace = Trace::with_capacity(100, 5, 50);
/// run(&ula, &mut state, 550, &mut rng, &mut trace)?;
/// assert_eq!(trace.samples().len(), 100);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Trace<D: Dim>
where
    DefaultAllocator: Allocator<D>,
{
    thin: usize,
    burn_in: usize,
    samples: Vec<OVector<f64, D>>,
}

impl<D: Dim> Trace<D>
where
    DefaultAllocator: Allocator<D>,
{
    /// Records every step.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::Ula, potential::Gaussian, run::{Trace, run}};
    /// use nalgebra::{Const, Vector1};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let ula = Ula::new(Gaussian::standard(Const::<1>), 0.1)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = ula.init(Vector1::new(0.0), &mut rng)?;
    /// let mut trace = Trace::<Const<1>>::new();
    /// run(&ula, &mut state, 30, &mut rng, &mut trace)?;
    /// assert_eq!(trace.samples().len(), 30);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new() -> Self {
        Self::with_capacity(0, 1, 0)
    }

    /// Reserves room for `capacity` samples; records every `thin`-th step (`thin = 0` is
    /// treated as 1) after the first `burn_in` steps.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::Ula, potential::Gaussian, run::{Trace, run}};
    /// use nalgebra::{Const, Vector1};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let ula = Ula::new(Gaussian::standard(Const::<1>), 0.1)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = ula.init(Vector1::new(0.0), &mut rng)?;
    /// // a burn-in of 10 steps, then every 3rd step: steps 13, 16 and 19 of 20
    /// let mut trace = Trace::with_capacity(3, 3, 10);
    /// run(&ula, &mut state, 20, &mut rng, &mut trace)?;
    /// assert_eq!(trace.samples().len(), 3);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn with_capacity(capacity: usize, thin: usize, burn_in: usize) -> Self {
        Self {
            thin: thin.max(1),
            burn_in,
            samples: Vec::with_capacity(capacity),
        }
    }

    /// The recorded positions, in order.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::Ula, potential::Gaussian, run::{Trace, run}};
    /// use nalgebra::{Const, Vector1};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let ula = Ula::new(Gaussian::standard(Const::<1>), 0.1)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = ula.init(Vector1::new(0.0), &mut rng)?;
    /// let mut trace = Trace::new();
    /// run(&ula, &mut state, 10, &mut rng, &mut trace)?;
    /// // the last recorded position is the final state's
    /// assert_eq!(trace.samples().last(), Some(state.position()));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn samples(&self) -> &[OVector<f64, D>] {
        &self.samples
    }

    /// Takes the recorded positions out.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::Ula, potential::Gaussian, run::{Trace, run}};
    /// use nalgebra::{Const, Vector1};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let ula = Ula::new(Gaussian::standard(Const::<1>), 0.1)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = ula.init(Vector1::new(0.0), &mut rng)?;
    /// let mut trace = Trace::with_capacity(5, 2, 0);
    /// run(&ula, &mut state, 10, &mut rng, &mut trace)?;
    /// let draws: Vec<Vector1<f64>> = trace.into_samples();
    /// assert_eq!(draws.len(), 5);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn into_samples(self) -> Vec<OVector<f64, D>> {
        self.samples
    }
}

impl<D: Dim> Default for Trace<D>
where
    DefaultAllocator: Allocator<D>,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<D: Dim, S: HasPosition<Dim = D>, I> Observer<S, I> for Trace<D>
where
    DefaultAllocator: Allocator<D>,
{
    fn observe(&mut self, step: usize, state: &S, _: &I) -> ControlFlow<()> {
        if step > self.burn_in && (step - self.burn_in).is_multiple_of(self.thin) {
            self.samples.push(state.position().clone());
        }
        ControlFlow::Continue(())
    }
}

/// Running mean and covariance of the positions (Welford's algorithm), without storing them.
///
/// Allocates its buffers once, at construction. Steps before `burn_in` are skipped.
///
/// # Example
///
/// ```
/// use klflow::run::{Observer, OnlineMoments};
/// use klflow::sampler::HasPosition;
/// use nalgebra::{Const, SVector};
///
/// struct P(SVector<f64, 1>);
/// impl HasPosition for P {
///     type Dim = Const<1>;
///     fn position(&self) -> &SVector<f64, 1> { &self.0 }
/// }
/// let mut m = OnlineMoments::new(Const::<1>);
/// for (i, x) in [1.0, 2.0, 3.0, 4.0].into_iter().enumerate() {
///     let _ = m.observe(i + 1, &P(nalgebra::Vector1::new(x)), &());
/// }
/// assert_eq!(m.mean()[0], 2.5);
/// assert!((m.covariance()[(0, 0)] - 5.0 / 3.0).abs() < 1e-15); // unbiased (n − 1)
/// ```
#[derive(Clone, Debug)]
pub struct OnlineMoments<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    burn_in: usize,
    count: usize,
    mean: OVector<f64, D>,
    m2: OMatrix<f64, D, D>,
    delta: OVector<f64, D>,
}

impl<D: Dim> OnlineMoments<D>
where
    DefaultAllocator: Alloc<D>,
{
    /// Moments of every observed position.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::run::OnlineMoments;
    ///
    /// let mut m = OnlineMoments::new(nalgebra::Dyn(2));
    /// assert_eq!((m.count(), m.mean().len()), (0, 2));
    /// m.push(&nalgebra::DVector::from_vec(vec![1.0, 3.0]));
    /// assert_eq!(m.mean().as_slice(), &[1.0, 3.0]);
    /// ```
    pub fn new(dim: D) -> Self {
        Self::with_burn_in(dim, 0)
    }

    /// Moments of the positions after the first `burn_in` steps.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::Ula, potential::Gaussian, run::{OnlineMoments, run}};
    /// use nalgebra::{Const, Vector1};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let ula = Ula::new(Gaussian::standard(Const::<1>), 0.1)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = ula.init(Vector1::new(0.0), &mut rng)?;
    /// let mut m = OnlineMoments::with_burn_in(Const::<1>, 40);
    /// run(&ula, &mut state, 100, &mut rng, &mut m)?;
    /// assert_eq!(m.count(), 60);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn with_burn_in(dim: D, burn_in: usize) -> Self {
        Self {
            burn_in,
            count: 0,
            mean: OVector::zeros_generic(dim, nalgebra::U1),
            m2: OMatrix::zeros_generic(dim, dim),
            delta: OVector::zeros_generic(dim, nalgebra::U1),
        }
    }

    /// Adds one point.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::run::OnlineMoments;
    /// use nalgebra::{Const, Vector2};
    ///
    /// let mut m = OnlineMoments::new(Const::<2>);
    /// m.push(&Vector2::new(0.0, 0.0));
    /// m.push(&Vector2::new(2.0, 2.0));
    /// assert_eq!(*m.mean(), Vector2::new(1.0, 1.0));
    /// // perfectly correlated coordinates: every covariance entry is 2
    /// assert!((m.covariance().add_scalar(-2.0)).amax() < 1e-15);
    /// ```
    pub fn push(&mut self, x: &OVector<f64, D>) {
        self.count += 1;
        self.delta.copy_from(x);
        self.delta -= &self.mean;
        self.mean.axpy(1.0 / self.count as f64, &self.delta, 1.0);
        // M2 += δ (x − mean_new)ᵀ, with x − mean_new = δ (n−1)/n.
        let w = (self.count - 1) as f64 / self.count as f64;
        self.m2.ger(w, &self.delta, &self.delta, 1.0);
    }

    /// Points seen.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::run::OnlineMoments;
    ///
    /// let mut m = OnlineMoments::new(nalgebra::Const::<1>);
    /// for x in [1.0, 2.0, 3.0] {
    ///     m.push(&nalgebra::Vector1::new(x));
    /// }
    /// assert_eq!(m.count(), 3);
    /// ```
    pub fn count(&self) -> usize {
        self.count
    }

    /// The running mean.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::run::OnlineMoments;
    ///
    /// let mut m = OnlineMoments::new(nalgebra::Const::<1>);
    /// for x in [1.0, 2.0, 6.0] {
    ///     m.push(&nalgebra::Vector1::new(x));
    /// }
    /// assert_eq!(m.mean()[0], 3.0);
    /// ```
    pub fn mean(&self) -> &OVector<f64, D> {
        &self.mean
    }

    /// The unbiased sample covariance (divides by `n − 1`; zero for fewer than two points).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::run::OnlineMoments;
    ///
    /// let mut m = OnlineMoments::new(nalgebra::Const::<1>);
    /// m.push(&nalgebra::Vector1::new(5.0));
    /// assert_eq!(m.covariance()[(0, 0)], 0.0); // one point: zero
    /// m.push(&nalgebra::Vector1::new(7.0));
    /// assert_eq!(m.covariance()[(0, 0)], 2.0); // ((5 − 6)² + (7 − 6)²) / (2 − 1)
    /// ```
    pub fn covariance(&self) -> OMatrix<f64, D, D> {
        &self.m2 / (self.count.max(2) - 1) as f64
    }
}

impl<D: Dim, S: HasPosition<Dim = D>, I> Observer<S, I> for OnlineMoments<D>
where
    DefaultAllocator: Alloc<D>,
{
    fn observe(&mut self, step: usize, state: &S, _: &I) -> ControlFlow<()> {
        if step > self.burn_in {
            self.push(state.position());
        }
        ControlFlow::Continue(())
    }
}

/// One chain's result from [`run_chains`]: the final state, its observer, its RNG (to continue
/// the chain later) and the run summary.
///
/// # Example
///
/// ```
/// use klflow::{langevin::Ula, potential::Gaussian, run::{Trace, run_chains}};
/// use nalgebra::{Const, Vector1};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let ula = Ula::new(Gaussian::standard(Const::<1>), 0.1)?;
/// let starts = vec![(Vector1::new(1.0), ChaCha8Rng::seed_from_u64(1))];
/// let runs = run_chains(&ula, starts, 50, |_| Trace::new())?;
/// let chain = &runs[0];
/// assert_eq!(chain.summary.steps, 50);
/// assert_eq!(chain.observer.samples().last(), Some(chain.state.position()));
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ChainRun<S, O, R> {
    /// The final state.
    pub state: S,
    /// The chain's observer, with whatever it recorded.
    pub observer: O,
    /// The chain's RNG, advanced past the run.
    pub rng: R,
    /// What the run did.
    pub summary: RunSummary,
}

/// Runs one chain per `(init, rng)` pair for up to `max_steps` steps each, with observer
/// `make_observer(chain_index)`; results come back in input order.
///
/// With the `rayon` feature the chains run in parallel on the current rayon pool. Each chain
/// only touches its own state, RNG and observer, so the output is bit-identical for any thread
/// count and equal to running the chains one after another. Give every chain its own RNG stream,
/// e.g. `ChaCha8Rng::seed_from_u64(seed)` followed by `set_stream(chain)`: then one seed fixes
/// the whole run, and chain `c` of seed `s` never equals chain `c + 1` of seed `s − 1`.
///
/// # Errors
///
/// The first error (in chain order) of `init` or `step`.
///
/// # Example
///
/// ```
/// use klflow::{langevin::Ula, potential::Gaussian, run::{OnlineMoments, run_chains}};
/// use nalgebra::{Const, Vector2};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let ula = Ula::new(Gaussian::standard(Const::<2>), 0.1)?;
/// let starts = (0..4)
///     .map(|c| {
///         let mut rng = ChaCha8Rng::seed_from_u64(42);
///         rng.set_stream(c);
///         (Vector2::new(5.0, -5.0), rng)
///     })
///     .collect();
/// let runs = run_chains(&ula, starts, 5_000, |_| OnlineMoments::with_burn_in(Const::<2>, 500))?;
/// assert_eq!(runs.len(), 4);
/// assert!(runs.iter().all(|r| r.observer.mean().norm() < 0.3));
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn run_chains<S, R, O, F>(
    sampler: &S,
    starts: Vec<(S::Init, R)>,
    max_steps: usize,
    make_observer: F,
) -> Result<Vec<ChainRun<S::State, O, R>>>
where
    S: Sampler + Sync,
    S::Init: Send,
    S::State: Send,
    R: Rng + Send,
    O: Observer<S::State, S::Info> + Send,
    F: Fn(usize) -> O + Sync,
{
    let one = |(c, (init, mut rng)): (usize, (S::Init, R))| -> Result<ChainRun<S::State, O, R>> {
        let mut state = sampler.init(init, &mut rng)?;
        let mut observer = make_observer(c);
        let summary = run(sampler, &mut state, max_steps, &mut rng, &mut observer)?;
        Ok(ChainRun {
            state,
            observer,
            rng,
            summary,
        })
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        starts.into_par_iter().enumerate().map(one).collect()
    }
    #[cfg(not(feature = "rayon"))]
    {
        starts.into_iter().enumerate().map(one).collect()
    }
}
