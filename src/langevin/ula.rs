//! The unadjusted Langevin algorithm.

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, OVector};
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;

use crate::dim::{all_finite, check_len};
use crate::error::{Error, Result, finite_input, positive};
use crate::fastmath::{NormalScratch, for_normals_in};
use crate::potential::Potential;
use crate::sampler::{ChainState, Sampler};

/// The unadjusted Langevin algorithm (ULA, also called LMC):
/// `x_{k+1} = x_k − h∇U(x_k) + √(2h) ξ_k`, `ξ_k ~ N(0, I)`.
///
/// The normals `ξ_k`: for `d < 32` one `rand_distr::StandardNormal` draw per coordinate; for
/// `d ≥ 32` in bulk by a vectorised Box–Muller transform (one 64-bit word of the RNG per pair
/// of normals, `⌈d/2⌉` words per step for `d ≤ 128`), about twice as fast per normal.
///
/// One gradient evaluation per step; the step allocates nothing. ULA is biased: its stationary
/// law differs from `π` by O(h) (on `N(0, 1/λ)` the stationary variance is `1/(λ(1 − hλ/2))`,
/// see [`oracle::UlaOracle`](crate::oracle::UlaOracle)). For an exact sampler add a
/// Metropolis–Hastings correction (MALA).
///
/// If the potential knows its smoothness `L`, the constructor rejects `h ≥ 2/L`, where the
/// chain is unstable even on a Gaussian.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::Ula, potential::Banana, run::{OnlineMoments, run}};
/// use nalgebra::SVector;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let target = Banana::standard(nalgebra::Const::<2>);
/// let ula = Ula::new(&target, 0.02)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(42);
/// let mut state = ula.init(SVector::zeros(), &mut rng)?;
/// let mut moments = OnlineMoments::with_burn_in(nalgebra::Const::<2>, 1_000);
/// run(&ula, &mut state, 50_000, &mut rng, &mut moments)?;
/// assert!(moments.mean()[0].abs() < 0.3);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Ula<P> {
    potential: P,
    step_size: f64,
}

/// What one ULA step reports.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::Ula, potential::Gaussian};
/// use nalgebra::{Const, Vector2};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let target = Gaussian::standard(Const::<2>);
/// let ula = Ula::new(&target, 0.1)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut state = ula.init(Vector2::new(1.0, 2.0), &mut rng)?;
/// let info = ula.step(&mut state, &mut rng)?;
/// assert_eq!(info.energy, state.energy());
/// assert!((info.energy - 0.5 * state.position().norm_squared()).abs() < 1e-15);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UlaInfo {
    /// `U(x)` at the new position.
    pub energy: f64,
}

impl<P: Potential> Ula<P> {
    /// ULA on `potential` with step size `h = step_size`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming `step_size` if it is not finite and positive, or if
    /// the potential's smoothness `L` is known and `h·L ≥ 2`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, langevin::Ula, potential::Gaussian};
    /// use nalgebra::Const;
    ///
    /// // N(0, I) has L = 1: ULA needs h < 2/L.
    /// let target = Gaussian::standard(Const::<2>);
    /// assert!(Ula::new(&target, 1.9).is_ok());
    /// assert!(matches!(Ula::new(&target, 2.0), Err(Error::InvalidParameter { name: "step_size", .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(potential: P, step_size: f64) -> Result<Self> {
        positive("step_size", step_size)?;
        if let Some(l) = potential.smoothness()
            && step_size * l >= 2.0
        {
            return Err(Error::InvalidParameter {
                name: "step_size",
                value: step_size,
                reason: "must be below 2/L (the potential's smoothness): ULA diverges there",
            });
        }
        Ok(Self {
            potential,
            step_size,
        })
    }

    /// The step size `h`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{langevin::Ula, potential::Gaussian};
    /// use nalgebra::Const;
    ///
    /// assert_eq!(Ula::new(Gaussian::standard(Const::<2>), 0.1)?.step_size(), 0.1);
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
    /// use klflow::{Potential, langevin::Ula, potential::Gaussian};
    /// use nalgebra::{Const, Vector2};
    ///
    /// let ula = Ula::new(Gaussian::standard(Const::<2>), 0.1)?;
    /// assert_eq!(ula.potential().energy(&Vector2::new(3.0, 4.0)), 12.5);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn potential(&self) -> &P {
        &self.potential
    }
}

/// From this dimension on, [`ula_update`] draws the normals in bulk.
pub(crate) const BULK_NORMALS_FROM: usize = 32;

/// [`ula_update`] below [`BULK_NORMALS_FROM`] coordinates: one `StandardNormal` draw each.
#[inline]
fn ula_update_few<R: Rng + ?Sized>(x: &mut [f64], g: &[f64], h: f64, noise: f64, rng: &mut R) {
    for (x, g) in x.iter_mut().zip(g) {
        let z: f64 = rng.sample(StandardNormal);
        *x += -h * g + noise * z;
    }
}

/// `x ← x − h g + noise·ξ` with `ξ` standard normal from `rng`: the arithmetic of every ULA
/// step (single chain and ensemble). Below [`BULK_NORMALS_FROM`] coordinates one
/// `rand_distr::StandardNormal` draw per coordinate (the cheapest for a few normals); from
/// there on the normals in bulk ([`for_normals`]: refills of 128, a vectorised,
/// division-free Box–Muller transform of one RNG word per pair, radii and angles in two
/// passes), each refill consumed at once by the update.
#[inline]
pub(crate) fn ula_update<R: Rng + ?Sized>(
    x: &mut [f64],
    g: &[f64],
    h: f64,
    noise: f64,
    rng: &mut R,
) {
    if x.len() < BULK_NORMALS_FROM {
        ula_update_few(x, g, h, noise, rng);
        return;
    }
    ula_update_in(&mut NormalScratch::new(), x, g, h, noise, rng);
}

/// [`ula_update`] with the bulk normals' buffers provided (ensembles reuse one across their
/// chains): same draws, same values.
#[inline]
pub(crate) fn ula_update_in<R: Rng + ?Sized>(
    scratch: &mut NormalScratch,
    x: &mut [f64],
    g: &[f64],
    h: f64,
    noise: f64,
    rng: &mut R,
) {
    if x.len() < BULK_NORMALS_FROM {
        ula_update_few(x, g, h, noise, rng);
        return;
    }
    for_normals_in(scratch, rng, x.len(), |start, z| {
        let end = start + z.len();
        for ((x, g), z) in x[start..end].iter_mut().zip(&g[start..end]).zip(z) {
            *x += -h * g + noise * z;
        }
    });
}

/// Builds a chain state at `x`, validating it against `potential`.
pub(crate) fn chain_state<P: Potential>(
    potential: &P,
    x: OVector<f64, P::Dim>,
) -> Result<ChainState<P::Dim>>
where
    DefaultAllocator: Allocator<P::Dim>,
{
    check_len("init", potential.dim(), &x)?;
    finite_input("init", x.as_slice())?;
    let mut gradient = x.clone();
    let energy = potential.energy_grad(&x, &mut gradient);
    check_finite(0, energy, &gradient)?;
    Ok(ChainState {
        position: x,
        gradient,
        energy,
        iteration: 0,
    })
}

/// Checks the energy and the gradient after step `step`.
#[inline]
pub(crate) fn check_finite<D: nalgebra::Dim>(
    step: usize,
    energy: f64,
    gradient: &OVector<f64, D>,
) -> Result<()>
where
    DefaultAllocator: Allocator<D>,
{
    if !energy.is_finite() {
        return Err(Error::NonFinite {
            step,
            quantity: "energy",
        });
    }
    if !all_finite(gradient.as_slice()) {
        return Err(Error::NonFinite {
            step,
            quantity: "gradient",
        });
    }
    Ok(())
}

impl<P: Potential> Sampler for Ula<P>
where
    DefaultAllocator: Allocator<P::Dim>,
{
    type Init = OVector<f64, P::Dim>;
    type State = ChainState<P::Dim>;
    type Info = UlaInfo;

    fn init<R: Rng + ?Sized>(&self, init: Self::Init, _rng: &mut R) -> Result<Self::State> {
        chain_state(&self.potential, init)
    }

    fn step<R: Rng + ?Sized>(&self, state: &mut Self::State, rng: &mut R) -> Result<UlaInfo> {
        let h = self.step_size;
        let noise = (2.0 * h).sqrt();
        ula_update(
            state.position.as_mut_slice(),
            state.gradient.as_slice(),
            h,
            noise,
            rng,
        );
        state.iteration += 1;
        state.energy = self
            .potential
            .energy_grad(&state.position, &mut state.gradient);
        check_finite(state.iteration, state.energy, &state.gradient)?;
        Ok(UlaInfo {
            energy: state.energy,
        })
    }
}
