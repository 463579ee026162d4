//! The Metropolis-adjusted Langevin algorithm, with step-size and metric adaptation.

use nalgebra::{DefaultAllocator, Dim, OMatrix, OVector};
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;

use crate::dim::{Alloc, all_finite, check_len};
use crate::error::{Error, Result, finite_input, positive};
use crate::langevin::ensemble::{mala_accept_prob, mala_propose};
use crate::langevin::ula::chain_state;
use crate::linalg::checked_symmetric;
use crate::potential::Potential;
use crate::sampler::{ChainState, HasPosition, Sampler};

/// A preconditioner (mass matrix) `M ≈ Cov π` for MALA: the proposal is
/// `y = x − hM∇U(x) + √(2h) M^{1/2} ξ`.
///
/// # Example
///
/// ```
/// use klflow::langevin::Metric;
/// use nalgebra::{Const, Vector2};
///
/// let m: Metric<Const<2>> = Metric::Diagonal(Vector2::new(1.0, 100.0));
/// # let _ = m;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Metric<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    /// `M = I`.
    Identity,
    /// `M = diag(m)`, all entries positive.
    Diagonal(OVector<f64, D>),
    /// A dense symmetric positive-definite `M`.
    Dense(OMatrix<f64, D, D>),
}

/// Which metric warm-up estimates from the chain's own draws.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::{Mala, Metric, MetricAdaptation, Warmup}, potential::Gaussian};
/// use nalgebra::{Matrix2, Vector2};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// // Marginal variances 4 and 1/4: the diagonal warm-up finds the ratio (16) roughly.
/// let target = Gaussian::new(Vector2::zeros(), Matrix2::new(4.0, 0.0, 0.0, 0.25))?;
/// let warmup = Warmup { steps: 1_500, ..Warmup::default() }.with_metric(MetricAdaptation::Diagonal);
/// let mala = Mala::new(&target, 0.1)?.with_warmup(warmup)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(2);
/// let mut state = mala.init(Vector2::new(0.0, 0.0), &mut rng)?;
/// for _ in 0..1_500 {
///     mala.step(&mut state, &mut rng)?;
/// }
/// let Metric::Diagonal(m) = state.metric() else { panic!("a diagonal metric") };
/// assert!(m[0] / m[1] > 8.0 && m[0] / m[1] < 32.0);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MetricAdaptation {
    /// Keep the metric given to [`Mala::with_metric`].
    #[default]
    None,
    /// Estimate the marginal variances.
    Diagonal,
    /// Estimate the full covariance.
    Dense,
}

/// Warm-up settings: step-size adaptation by dual averaging toward `target_accept`, and
/// optionally a metric estimated in doubling windows (Stan's schedule: a first buffer of 15 %
/// (at most 75 steps) adapting only the step, slow windows starting at 25 steps that double,
/// and a last buffer of 10 % (at most 50 steps)).
///
/// # Example
///
/// ```
/// use klflow::langevin::{MetricAdaptation, Warmup};
///
/// let w = Warmup { steps: 2_000, target_accept: 0.574, metric: MetricAdaptation::Dense };
/// assert_eq!(w, Warmup { steps: 2_000, ..Warmup::default() }.with_metric(MetricAdaptation::Dense));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Warmup {
    /// Number of warm-up steps (the first steps of the chain; discard them).
    pub steps: usize,
    /// Target mean acceptance probability (0.574 is optimal for MALA in high dimension).
    pub target_accept: f64,
    /// Metric estimation during warm-up.
    pub metric: MetricAdaptation,
}

impl Default for Warmup {
    fn default() -> Self {
        Self {
            steps: 1_000,
            target_accept: 0.574,
            metric: MetricAdaptation::None,
        }
    }
}

impl Warmup {
    /// The same settings with `metric` adaptation.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::langevin::{MetricAdaptation, Warmup};
    ///
    /// let w = Warmup::default().with_metric(MetricAdaptation::Dense);
    /// assert_eq!(w.metric, MetricAdaptation::Dense);
    /// assert_eq!(w.steps, Warmup::default().steps);
    /// ```
    pub fn with_metric(self, metric: MetricAdaptation) -> Self {
        Self { metric, ..self }
    }

    /// The end of the first (step-size only) buffer and the ends of the slow metric windows:
    /// each window doubles the previous one, and a window whose successor would run into the
    /// last buffer is stretched to the last buffer's start.
    fn windows(&self) -> (usize, Vec<usize>) {
        let n = self.steps;
        let (init, term, base) = if n >= 75 + 50 + 25 {
            (75, 50, 25)
        } else {
            let (i, t) = ((n * 15) / 100, n / 10);
            (i, t, n - i - t)
        };
        let adapt_end = n - term;
        let mut ends = Vec::new();
        let (mut start, mut size) = (init, base.max(1));
        while start < adapt_end {
            let mut end = start + size;
            if end + 2 * size > adapt_end {
                end = adapt_end;
            }
            ends.push(end);
            start = end;
            size *= 2;
        }
        (init, ends)
    }
}

/// Nesterov dual averaging of `log h` (Hoffman & Gelman 2014), with their constants
/// γ = 0.05, t₀ = 10, κ = 0.75.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct DualAveraging {
    mu: f64,
    log_h: f64,
    log_h_bar: f64,
    h_bar: f64,
    t: f64,
}

impl DualAveraging {
    fn new(h: f64) -> Self {
        Self {
            mu: (10.0 * h).ln(),
            log_h: h.ln(),
            log_h_bar: 0.0,
            h_bar: 0.0,
            t: 0.0,
        }
    }

    fn update(&mut self, accept: f64, target: f64) -> f64 {
        self.t += 1.0;
        let eta = 1.0 / (self.t + 10.0);
        self.h_bar = (1.0 - eta) * self.h_bar + eta * (target - accept);
        self.log_h = self.mu - self.t.sqrt() / 0.05 * self.h_bar;
        let w = self.t.powf(-0.75);
        self.log_h_bar = w * self.log_h + (1.0 - w) * self.log_h_bar;
        self.log_h.exp()
    }
}

/// The Metropolis-adjusted Langevin algorithm (MALA).
///
/// Proposal `y = x − hM∇U(x) + √(2h) M^{1/2} ξ` (the ULA step, preconditioned by the metric
/// `M`), accepted with probability `min(1, e^{−U(y) + U(x)} q(x|y)/q(y|x))`, where
/// `q(y|x) ∝ exp(−‖y − x + hM∇U(x)‖²_{M⁻¹}/(4h))`. The correction makes `π` exactly invariant:
/// unlike [`Ula`](crate::langevin::Ula) there is no O(h) bias.
///
/// A proposal with a non-finite energy or gradient is a rejection, counted as a divergence in
/// [`MalaInfo`] and [`MalaState::divergences`] — never an error, never a NaN sample.
///
/// Warm-up ([`Mala::with_warmup`]) adapts the step size by dual averaging toward an acceptance
/// rate (default 0.574) and can estimate a diagonal or dense metric from the chain; the step
/// size and metric are frozen afterwards, so the chain after warm-up is an exact MCMC chain.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::{Mala, Warmup}, potential::Gaussian, run::{OnlineMoments, run}};
/// use nalgebra::{Const, SMatrix, Vector2};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let target = Gaussian::new(Vector2::zeros(), SMatrix::<f64, 2, 2>::new(1.0, 0.9, 0.9, 1.0))?;
/// let mala = Mala::new(&target, 0.1)?.with_warmup(Warmup { steps: 1_000, ..Warmup::default() })?;
/// let mut rng = ChaCha8Rng::seed_from_u64(1);
/// let mut state = mala.init(Vector2::new(2.0, -2.0), &mut rng)?;
/// let mut m = OnlineMoments::with_burn_in(Const::<2>, 1_000);
/// run(&mala, &mut state, 41_000, &mut rng, &mut m)?;
/// assert!((state.acceptance_rate() - 0.574).abs() < 0.1);
/// assert!((m.covariance()[(0, 1)] - 0.9).abs() < 0.15);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Mala<P: Potential>
where
    DefaultAllocator: Alloc<P::Dim>,
{
    potential: P,
    step_size: f64,
    metric: Metric<P::Dim>,
    warmup: Option<Warmup>,
}

/// What one MALA step reports.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::Mala, potential::Gaussian};
/// use nalgebra::{Const, Vector2};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let target = Gaussian::standard(Const::<2>);
/// let mala = Mala::new(&target, 0.5)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut state = mala.init(Vector2::new(1.0, 1.0), &mut rng)?;
/// let info = mala.step(&mut state, &mut rng)?;
/// assert!((0.0..=1.0).contains(&info.accept_prob) && !info.divergent);
/// assert_eq!(info.step_size, 0.5);
/// assert_eq!(info.energy, state.chain().energy());
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MalaInfo {
    /// The Metropolis–Hastings acceptance probability of the proposal (0 for a divergence).
    pub accept_prob: f64,
    /// Whether the proposal was accepted.
    pub accepted: bool,
    /// Whether the proposal had a non-finite energy or gradient (and was rejected).
    pub divergent: bool,
    /// The step size used.
    pub step_size: f64,
    /// `U(x)` at the (possibly unchanged) position.
    pub energy: f64,
}

/// The metric with its factors: `sqrt` gives `M^{1/2}ξ`, `chol` solves for `‖r‖²_{M⁻¹}`.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(bound(
        serialize = "OVector<f64, D>: serde::Serialize, OMatrix<f64, D, D>: serde::Serialize",
        deserialize = "OVector<f64, D>: serde::Deserialize<'de>, OMatrix<f64, D, D>: serde::Deserialize<'de>"
    ))
)]
struct MetricFactors<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    /// `(m, √m)` for a diagonal metric.
    diag: Option<(OVector<f64, D>, OVector<f64, D>)>,
    /// `(M, L)` with `LLᵀ = M` for a dense metric.
    dense: Option<DenseFactors<D>>,
}

/// A dense metric and its lower Cholesky factor.
type DenseFactors<D> = (OMatrix<f64, D, D>, OMatrix<f64, D, D>);

impl<D: Dim> MetricFactors<D>
where
    DefaultAllocator: Alloc<D>,
{
    fn from_metric(m: &Metric<D>) -> Result<Self> {
        Ok(match m {
            Metric::Identity => Self {
                diag: None,
                dense: None,
            },
            Metric::Diagonal(v) => {
                for &x in v.iter() {
                    positive("metric", x)?;
                }
                Self {
                    diag: Some((v.clone(), v.map(f64::sqrt))),
                    dense: None,
                }
            }
            Metric::Dense(m) => {
                let m = checked_symmetric("metric", m)?;
                let l = m
                    .clone()
                    .cholesky()
                    .ok_or(Error::NotPositiveDefinite { name: "metric" })?
                    .unpack();
                Self {
                    diag: None,
                    dense: Some((m, l)),
                }
            }
        })
    }

    /// `out = M g`.
    fn apply(&self, g: &OVector<f64, D>, out: &mut OVector<f64, D>) {
        if let Some((m, _)) = &self.diag {
            out.copy_from(g);
            out.component_mul_assign(m);
        } else if let Some((m, _)) = &self.dense {
            out.gemv(1.0, m, g, 0.0);
        } else {
            out.copy_from(g);
        }
    }

    /// `out += scale · M^{1/2} ξ`; `xi` may be overwritten.
    fn add_sqrt(&self, scale: f64, xi: &mut OVector<f64, D>, out: &mut OVector<f64, D>) {
        if let Some((_, s)) = &self.diag {
            xi.component_mul_assign(s);
            out.axpy(scale, xi, 1.0);
        } else if let Some((_, l)) = &self.dense {
            out.gemv(scale, l, xi, 1.0);
        } else {
            out.axpy(scale, xi, 1.0);
        }
    }

    /// `‖r‖²_{M⁻¹}`; `r` is overwritten.
    fn inv_norm_sq(&self, r: &mut OVector<f64, D>) -> f64 {
        if let Some((m, _)) = &self.diag {
            r.iter().zip(m.iter()).map(|(a, b)| a * a / b).sum()
        } else if let Some((_, l)) = &self.dense {
            l.solve_lower_triangular_mut(r);
            r.norm_squared()
        } else {
            r.norm_squared()
        }
    }
}

/// The state of a MALA chain: position, the adapted step size and metric, proposal buffers,
/// and acceptance counts. With the `serde` feature it serialises completely (adaptation state
/// included), so a chain can be checkpointed and resumed bit for bit.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::Mala, potential::Gaussian};
/// use nalgebra::{Const, Vector2};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let target = Gaussian::standard(Const::<2>);
/// let mala = Mala::new(&target, 0.5)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut state = mala.init(Vector2::new(1.0, 1.0), &mut rng)?;
/// let mut accepted = 0;
/// for _ in 0..100 {
///     accepted += mala.step(&mut state, &mut rng)?.accepted as u32;
/// }
/// assert_eq!(state.acceptance_rate(), accepted as f64 / 100.0);
/// assert_eq!(state.chain().iteration(), 100);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(bound(
        serialize = "OVector<f64, D>: serde::Serialize, OMatrix<f64, D, D>: serde::Serialize",
        deserialize = "OVector<f64, D>: serde::Deserialize<'de>, OMatrix<f64, D, D>: serde::Deserialize<'de>"
    ))
)]
pub struct MalaState<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    chain: ChainState<D>,
    proposal: OVector<f64, D>,
    proposal_grad: OVector<f64, D>,
    scratch: OVector<f64, D>,
    step_size: f64,
    metric: MetricFactors<D>,
    dual: DualAveraging,
    window_mean: OVector<f64, D>,
    window_m2: Option<OMatrix<f64, D, D>>,
    window_var: OVector<f64, D>,
    window_count: usize,
    accepted: u64,
    proposals: u64,
    divergent: u64,
}

impl<D: Dim> MalaState<D>
where
    DefaultAllocator: Alloc<D>,
{
    /// The position part: position, gradient, energy, step count.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::Mala, potential::Gaussian};
    /// use nalgebra::{Const, Vector2};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let target = Gaussian::standard(Const::<2>);
    /// let mala = Mala::new(&target, 0.5)?;
    /// let state = mala.init(Vector2::new(1.0, 1.0), &mut ChaCha8Rng::seed_from_u64(0))?;
    /// assert_eq!(state.chain().energy(), 1.0); // U(x) = ‖x‖²/2
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn chain(&self) -> &ChainState<D> {
        &self.chain
    }
    /// The current position.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::Mala, potential::Gaussian};
    /// use nalgebra::{Const, Vector2};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let target = Gaussian::standard(Const::<2>);
    /// let mala = Mala::new(&target, 0.5)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = mala.init(Vector2::new(1.0, 1.0), &mut rng)?;
    /// let before = *state.position();
    /// let info = mala.step(&mut state, &mut rng)?;
    /// // A rejected proposal leaves the chain where it was.
    /// assert_eq!(info.accepted, state.position() != &before);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn position(&self) -> &OVector<f64, D> {
        self.chain.position()
    }
    /// The current step size (adapted during warm-up, fixed afterwards).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::{Mala, Warmup}, potential::Gaussian};
    /// use nalgebra::{Const, Vector2};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let target = Gaussian::standard(Const::<2>);
    /// let mala = Mala::new(&target, 0.01)?.with_warmup(Warmup { steps: 500, ..Warmup::default() })?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = mala.init(Vector2::new(1.0, 1.0), &mut rng)?;
    /// assert_eq!(state.step_size(), 0.01);
    /// for _ in 0..500 {
    ///     mala.step(&mut state, &mut rng)?;
    /// }
    /// // A step of 0.01 accepts almost everything: warm-up enlarges it.
    /// assert!(state.step_size() > 0.1);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn step_size(&self) -> f64 {
        self.step_size
    }
    /// The current metric.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::{Mala, Metric}, potential::Gaussian};
    /// use nalgebra::{Const, Vector2};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let target = Gaussian::standard(Const::<2>);
    /// let m = Metric::Diagonal(Vector2::new(1.0, 2.0));
    /// let mala = Mala::new(&target, 0.5)?.with_metric(m.clone())?;
    /// let state = mala.init(Vector2::new(1.0, 1.0), &mut ChaCha8Rng::seed_from_u64(0))?;
    /// assert_eq!(state.metric(), m); // no warm-up: the metric as given
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn metric(&self) -> Metric<D> {
        if let Some((m, _)) = &self.metric.diag {
            Metric::Diagonal(m.clone())
        } else if let Some((m, _)) = &self.metric.dense {
            Metric::Dense(m.clone())
        } else {
            Metric::Identity
        }
    }
    /// Accepted proposals / proposals so far (warm-up included).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::Mala, potential::Gaussian};
    /// use nalgebra::{Const, Vector2};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// // A step of 10 on N(0, I) overshoots: most proposals are rejected.
    /// let target = Gaussian::standard(Const::<2>);
    /// let mala = Mala::new(&target, 10.0)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = mala.init(Vector2::new(0.0, 0.0), &mut rng)?;
    /// for _ in 0..200 {
    ///     mala.step(&mut state, &mut rng)?;
    /// }
    /// assert!(state.acceptance_rate() < 0.2);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn acceptance_rate(&self) -> f64 {
        self.accepted as f64 / self.proposals.max(1) as f64
    }
    /// Proposals with a non-finite energy or gradient so far.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::Mala, potential::Gaussian};
    /// use nalgebra::{Const, Vector2};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let target = Gaussian::standard(Const::<2>);
    /// let mala = Mala::new(&target, 0.5)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = mala.init(Vector2::new(1.0, 1.0), &mut rng)?;
    /// for _ in 0..100 {
    ///     mala.step(&mut state, &mut rng)?;
    /// }
    /// assert_eq!(state.divergences(), 0); // a Gaussian never diverges
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn divergences(&self) -> u64 {
        self.divergent
    }
    /// Resets the acceptance and divergence counts (e.g. after warm-up).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::Mala, potential::Gaussian};
    /// use nalgebra::{Const, Vector2};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let target = Gaussian::standard(Const::<2>);
    /// let mala = Mala::new(&target, 0.5)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = mala.init(Vector2::new(1.0, 1.0), &mut rng)?;
    /// for _ in 0..10 {
    ///     mala.step(&mut state, &mut rng)?;
    /// }
    /// assert!(state.acceptance_rate() > 0.0);
    /// state.reset_counts();
    /// assert_eq!((state.acceptance_rate(), state.divergences()), (0.0, 0));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn reset_counts(&mut self) {
        self.accepted = 0;
        self.proposals = 0;
        self.divergent = 0;
    }
}

impl<D: Dim> HasPosition for MalaState<D>
where
    DefaultAllocator: Alloc<D>,
{
    type Dim = D;
    fn position(&self) -> &OVector<f64, D> {
        self.chain.position()
    }
}

impl<P: Potential> Mala<P>
where
    DefaultAllocator: Alloc<P::Dim>,
{
    /// MALA on `potential` with (initial) step size `step_size` and the identity metric.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming `step_size` unless finite and positive.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, langevin::Mala, potential::Gaussian};
    /// use nalgebra::Const;
    ///
    /// let target = Gaussian::standard(Const::<2>);
    /// assert!(Mala::new(&target, 0.5).is_ok());
    /// assert!(matches!(Mala::new(&target, f64::INFINITY), Err(Error::InvalidParameter { name: "step_size", .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(potential: P, step_size: f64) -> Result<Self> {
        positive("step_size", step_size)?;
        Ok(Self {
            potential,
            step_size,
            metric: Metric::Identity,
            warmup: None,
        })
    }

    /// Uses the preconditioner `metric` (the initial one, if warm-up adapts it).
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`], [`Error::InvalidParameter`] (a non-positive diagonal
    /// entry), [`Error::NotSymmetric`] or [`Error::NotPositiveDefinite`] naming `metric`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, langevin::{Mala, Metric}, potential::Gaussian};
    /// use nalgebra::{Const, Matrix2, Vector2};
    ///
    /// let target = Gaussian::standard(Const::<2>);
    /// let mala = Mala::new(&target, 0.5)?;
    /// assert!(mala.clone().with_metric(Metric::Diagonal(Vector2::new(1.0, 4.0))).is_ok());
    /// let indefinite = Metric::Dense(Matrix2::new(1.0, 2.0, 2.0, 1.0));
    /// assert!(matches!(mala.with_metric(indefinite), Err(Error::NotPositiveDefinite { name: "metric" })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn with_metric(mut self, metric: Metric<P::Dim>) -> Result<Self> {
        let d = self.potential.dim();
        match &metric {
            Metric::Identity => {}
            Metric::Diagonal(v) => check_len("metric", d, v)?,
            Metric::Dense(m) => {
                if m.nrows() != d.value() || m.ncols() != d.value() {
                    return Err(Error::DimensionMismatch {
                        name: "metric",
                        expected: d.value(),
                        found: m.nrows(),
                    });
                }
            }
        }
        MetricFactors::from_metric(&metric)?;
        self.metric = metric;
        Ok(self)
    }

    /// Adapts during the first `warmup.steps` steps.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming `target_accept` unless it lies in (0, 1).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, langevin::{Mala, Warmup}, potential::Gaussian};
    /// use nalgebra::Const;
    ///
    /// let target = Gaussian::standard(Const::<2>);
    /// let mala = Mala::new(&target, 0.5)?;
    /// let bad = Warmup { target_accept: 1.0, ..Warmup::default() };
    /// assert!(matches!(mala.clone().with_warmup(bad), Err(Error::InvalidParameter { name: "target_accept", .. })));
    /// assert_eq!(mala.with_warmup(Warmup::default())?.warmup_steps(), 1_000);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn with_warmup(mut self, warmup: Warmup) -> Result<Self> {
        if !(warmup.target_accept > 0.0 && warmup.target_accept < 1.0) {
            return Err(Error::InvalidParameter {
                name: "target_accept",
                value: warmup.target_accept,
                reason: "must lie in (0, 1)",
            });
        }
        self.warmup = Some(warmup);
        Ok(self)
    }

    /// The number of warm-up steps (0 without warm-up).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{langevin::{Mala, Warmup}, potential::Gaussian};
    /// use nalgebra::Const;
    ///
    /// let target = Gaussian::standard(Const::<2>);
    /// let mala = Mala::new(&target, 0.5)?;
    /// assert_eq!(mala.warmup_steps(), 0);
    /// assert_eq!(mala.with_warmup(Warmup { steps: 300, ..Warmup::default() })?.warmup_steps(), 300);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn warmup_steps(&self) -> usize {
        self.warmup.map_or(0, |w| w.steps)
    }

    /// Feeds the current position to the metric window; at a window end, installs the
    /// regularised estimate `(n/(n+5))Σ̂ + 10⁻³(5/(n+5))I` and restarts dual averaging.
    fn adapt_metric(&self, state: &mut MalaState<P::Dim>, warmup: &Warmup, iteration: usize) {
        if warmup.metric == MetricAdaptation::None {
            return;
        }
        let (init, ends) = warmup.windows();
        let last = ends.last().copied().unwrap_or(0);
        if iteration <= init || iteration > last {
            return;
        }
        // Welford update of the window moments.
        state.window_count += 1;
        let n = state.window_count as f64;
        state.scratch.copy_from(&state.chain.position);
        state.scratch -= &state.window_mean;
        state.window_mean.axpy(1.0 / n, &state.scratch, 1.0);
        let w = (n - 1.0) / n;
        match &mut state.window_m2 {
            Some(m2) => m2.ger(w, &state.scratch, &state.scratch, 1.0),
            None => {
                for (v, s) in state.window_var.iter_mut().zip(state.scratch.iter()) {
                    *v += w * s * s;
                }
            }
        }
        if !ends.contains(&iteration) || state.window_count < 3 {
            return;
        }
        let shrink = n / (n + 5.0);
        let ridge = 1e-3 * 5.0 / (n + 5.0);
        let metric = match &state.window_m2 {
            Some(m2) => {
                let mut c = m2 * (shrink / (n - 1.0));
                for i in 0..c.nrows() {
                    c[(i, i)] += ridge;
                }
                Metric::Dense(c)
            }
            None => Metric::Diagonal(state.window_var.map(|v| shrink * v / (n - 1.0) + ridge)),
        };
        if let Ok(f) = MetricFactors::from_metric(&metric) {
            state.metric = f;
        }
        state.window_count = 0;
        state.window_mean.fill(0.0);
        state.window_var.fill(0.0);
        if let Some(m2) = &mut state.window_m2 {
            m2.fill(0.0);
        }
        state.dual = DualAveraging::new(state.step_size);
    }
}

impl<P: Potential> Sampler for Mala<P>
where
    DefaultAllocator: Alloc<P::Dim>,
{
    type Init = OVector<f64, P::Dim>;
    type State = MalaState<P::Dim>;
    type Info = MalaInfo;

    fn init<R: Rng + ?Sized>(&self, init: Self::Init, _rng: &mut R) -> Result<Self::State> {
        finite_input("init", init.as_slice())?;
        let chain = chain_state(&self.potential, init)?;
        let d = self.potential.dim();
        let zeros = OVector::zeros_generic(d, nalgebra::U1);
        let dense_window = self
            .warmup
            .is_some_and(|w| w.metric == MetricAdaptation::Dense);
        Ok(MalaState {
            proposal: zeros.clone(),
            proposal_grad: zeros.clone(),
            scratch: zeros.clone(),
            step_size: self.step_size,
            metric: MetricFactors::from_metric(&self.metric)?,
            dual: DualAveraging::new(self.step_size),
            window_mean: zeros.clone(),
            window_m2: dense_window.then(|| OMatrix::zeros_generic(d, d)),
            window_var: zeros,
            window_count: 0,
            accepted: 0,
            proposals: 0,
            divergent: 0,
            chain,
        })
    }

    fn step<R: Rng + ?Sized>(&self, state: &mut Self::State, rng: &mut R) -> Result<MalaInfo> {
        let h = state.step_size;
        let s = &mut *state;
        let identity = s.metric.diag.is_none() && s.metric.dense.is_none();
        let (u_new, accept_prob, finite) = if identity {
            // One fused pass for the proposal and one for the reverse density: the
            // arithmetic of `MalaEnsemble`, so an ensemble reproduces these chains bit for bit.
            let xi_sq = mala_propose(
                s.proposal.as_mut_slice(),
                s.chain.position.as_slice(),
                s.chain.gradient.as_slice(),
                h,
                (2.0 * h).sqrt(),
                rng,
            );
            let u_new = self
                .potential
                .energy_grad(&s.proposal, &mut s.proposal_grad);
            let (p, finite) = mala_accept_prob(
                s.chain.position.as_slice(),
                s.chain.energy,
                s.proposal.as_slice(),
                s.proposal_grad.as_slice(),
                u_new,
                xi_sq,
                h,
            );
            (u_new, p, finite)
        } else {
            // y = x − hM∇U(x) + √(2h) M^{1/2} ξ; log q(y|x) = −‖ξ‖²/2 + const.
            let mut xi_sq = 0.0;
            for v in s.scratch.iter_mut() {
                let z: f64 = rng.sample(StandardNormal);
                xi_sq += z * z;
                *v = z;
            }
            s.metric.apply(&s.chain.gradient, &mut s.proposal);
            s.proposal *= -h;
            s.proposal += &s.chain.position;
            s.metric
                .add_sqrt((2.0 * h).sqrt(), &mut s.scratch, &mut s.proposal);
            let u_new = self
                .potential
                .energy_grad(&s.proposal, &mut s.proposal_grad);
            let finite = u_new.is_finite()
                && all_finite(s.proposal_grad.as_slice())
                && all_finite(s.proposal.as_slice());
            let accept_prob = if finite {
                // log q(x|y) = −‖x − y + hM∇U(y)‖²_{M⁻¹}/(4h)
                s.metric.apply(&s.proposal_grad, &mut s.scratch);
                s.scratch *= h;
                s.scratch += &s.chain.position;
                s.scratch -= &s.proposal;
                let back = s.metric.inv_norm_sq(&mut s.scratch) / (4.0 * h);
                let log_a = s.chain.energy - u_new - back + 0.5 * xi_sq;
                if log_a >= 0.0 { 1.0 } else { log_a.exp() }
            } else {
                0.0
            };
            (u_new, accept_prob, finite)
        };
        let accepted = finite && rng.random::<f64>() < accept_prob;
        if accepted {
            std::mem::swap(&mut s.chain.position, &mut s.proposal);
            std::mem::swap(&mut s.chain.gradient, &mut s.proposal_grad);
            s.chain.energy = u_new;
            s.accepted += 1;
        }
        s.proposals += 1;
        s.divergent += u64::from(!finite);
        s.chain.iteration += 1;
        let it = s.chain.iteration;
        if let Some(w) = &self.warmup
            && it <= w.steps
        {
            let new_h = s.dual.update(accept_prob, w.target_accept);
            s.step_size = if it == w.steps {
                s.dual.log_h_bar.exp()
            } else {
                new_h
            };
            self.adapt_metric(state, w, it);
        }
        Ok(MalaInfo {
            accept_prob,
            accepted,
            divergent: !finite,
            step_size: h,
            energy: state.chain.energy,
        })
    }
}
