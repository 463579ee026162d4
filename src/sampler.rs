//! The [`Sampler`] trait and the chain state shared by the Langevin samplers.

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, Dim, OVector};
use rand::Rng;

use crate::error::Result;

/// An iterative sampling algorithm: `init` builds a state, `step` advances it.
///
/// `step` takes `&self`: one sampler (and the target it closes over) can be shared by many
/// chains on many threads, each with its own state and RNG. Everything that changes — positions,
/// particles, adapted step sizes, kernel bandwidths, scratch buffers — lives in
/// [`Sampler::State`], so a step allocates nothing. Randomness is always passed in as the last
/// argument and never created inside the library.
///
/// | family | `Init` | `State` | result |
/// |---|---|---|---|
/// | Langevin chains | a point | [`ChainState`] | positions, via an [`Observer`](crate::run::Observer) |
/// | particle methods | particles | particles + kernel + buffers | the particles |
/// | Gaussian VI | a Gaussian | the current Gaussian | a [`Gaussian`](crate::potential::Gaussian) |
/// | diffusion | number of samples | particles + time index | the particles |
///
/// Drive a sampler with [`run`](crate::run::run) or call `step` in your own loop.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::Ula, potential::Gaussian};
/// use nalgebra::SVector;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let ula = Ula::new(Gaussian::standard(nalgebra::Const::<2>), 0.1)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(1);
/// let mut state = ula.init(nalgebra::Vector2::new(3.0, -3.0), &mut rng)?;
/// for _ in 0..100 {
///     ula.step(&mut state, &mut rng)?;
/// }
/// assert!(state.position().norm() < 6.0);
/// # Ok::<(), klflow::Error>(())
/// ```
pub trait Sampler {
    /// What `init` starts from.
    type Init;
    /// Everything that changes from step to step.
    type State;
    /// What one step reports (energy, acceptance, KSD, ...).
    type Info;

    /// Builds the initial state, validating `init` against the target.
    ///
    /// # Errors
    ///
    /// Dimension mismatch, non-finite input, or a non-finite energy at the initial point.
    fn init<R: Rng + ?Sized>(&self, init: Self::Init, rng: &mut R) -> Result<Self::State>;

    /// Advances `state` by one step.
    ///
    /// # Errors
    ///
    /// [`Error::NonFinite`](crate::Error::NonFinite) naming the step and the quantity if the
    /// run produced a non-finite value.
    fn step<R: Rng + ?Sized>(&self, state: &mut Self::State, rng: &mut R) -> Result<Self::Info>;

    /// `true` when the algorithm has nothing more to do (a diffusion sampler that reached its
    /// final time). Chains never finish.
    fn is_finished(&self, _state: &Self::State) -> bool {
        false
    }
}

/// A state that has a current position (chains; the mean of a Gaussian-VI iterate).
///
/// Observers such as [`Trace`](crate::run::Trace) and [`OnlineMoments`](crate::run::OnlineMoments)
/// work on any state that implements it.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, sampler::HasPosition, langevin::Ula, potential::Gaussian};
/// use nalgebra::SVector;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let ula = Ula::new(Gaussian::standard(nalgebra::Const::<1>), 0.1)?;
/// let state = ula.init(SVector::<f64, 1>::new(2.0), &mut ChaCha8Rng::seed_from_u64(0))?;
/// assert_eq!(state.position()[0], 2.0);
/// # Ok::<(), klflow::Error>(())
/// ```
pub trait HasPosition {
    /// The dimension of the position.
    type Dim: Dim;
    /// The current position.
    fn position(&self) -> &OVector<f64, Self::Dim>
    where
        DefaultAllocator: Allocator<Self::Dim>;
}

/// The state of a single gradient-based chain: position, gradient and energy at the position,
/// and the number of completed steps.
///
/// The gradient is kept so each step costs one gradient evaluation. Fields are read through
/// accessors: they must stay consistent with each other.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::Ula, potential::{Gaussian, Potential}};
/// use nalgebra::SVector;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let target = Gaussian::standard(nalgebra::Const::<2>);
/// let ula = Ula::new(&target, 0.05)?;
/// let state = ula.init(nalgebra::Vector2::new(1.0, 2.0), &mut ChaCha8Rng::seed_from_u64(0))?;
/// assert_eq!(state.energy(), target.energy(state.position()));
/// assert_eq!(state.gradient(), state.position()); // ∇U(x) = x for N(0, I)
/// assert_eq!(state.iteration(), 0);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(bound(
        serialize = "OVector<f64, D>: serde::Serialize",
        deserialize = "OVector<f64, D>: serde::Deserialize<'de>"
    ))
)]
pub struct ChainState<D: Dim>
where
    DefaultAllocator: Allocator<D>,
{
    pub(crate) position: OVector<f64, D>,
    pub(crate) gradient: OVector<f64, D>,
    pub(crate) energy: f64,
    pub(crate) iteration: usize,
}

impl<D: Dim> ChainState<D>
where
    DefaultAllocator: Allocator<D>,
{
    /// The current position `x`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::Ula, potential::Gaussian};
    /// use nalgebra::Vector2;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let ula = Ula::new(Gaussian::standard(nalgebra::Const::<2>), 0.1)?;
    /// let state = ula.init(Vector2::new(1.0, 2.0), &mut ChaCha8Rng::seed_from_u64(0))?;
    /// assert_eq!(*state.position(), Vector2::new(1.0, 2.0));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn position(&self) -> &OVector<f64, D> {
        &self.position
    }
    /// `∇U(x)` at the current position.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::Ula, potential::Gaussian};
    /// use nalgebra::Vector2;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// // U(x) = ½ xᵀx / 4 for N(0, 4I): ∇U(x) = x / 4
    /// let ula = Ula::new(Gaussian::isotropic(Vector2::zeros(), 4.0)?, 0.1)?;
    /// let state = ula.init(Vector2::new(4.0, -8.0), &mut ChaCha8Rng::seed_from_u64(0))?;
    /// assert_eq!(*state.gradient(), Vector2::new(1.0, -2.0));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn gradient(&self) -> &OVector<f64, D> {
        &self.gradient
    }
    /// `U(x)` at the current position.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::Ula, potential::Gaussian};
    /// use nalgebra::Vector2;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let ula = Ula::new(Gaussian::standard(nalgebra::Const::<2>), 0.1)?;
    /// let state = ula.init(Vector2::new(3.0, 4.0), &mut ChaCha8Rng::seed_from_u64(0))?;
    /// assert_eq!(state.energy(), 12.5); // ½‖x‖²
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn energy(&self) -> f64 {
        self.energy
    }
    /// The number of completed steps.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::Ula, potential::Gaussian};
    /// use nalgebra::Vector2;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let ula = Ula::new(Gaussian::standard(nalgebra::Const::<2>), 0.1)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = ula.init(Vector2::zeros(), &mut rng)?;
    /// for _ in 0..3 {
    ///     ula.step(&mut state, &mut rng)?;
    /// }
    /// assert_eq!(state.iteration(), 3);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn iteration(&self) -> usize {
        self.iteration
    }
}

impl<D: Dim> HasPosition for ChainState<D>
where
    DefaultAllocator: Allocator<D>,
{
    type Dim = D;
    fn position(&self) -> &OVector<f64, D> {
        &self.position
    }
}
