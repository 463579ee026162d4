//! Ensembles of Langevin chains stepped together, so that the gradient of all chains is one
//! call of [`BatchPotential::energy_grad_batch`] (two matrix products for logistic regression).

use nalgebra::DMatrix;
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;

use crate::dim::all_finite;
use crate::error::{Error, Result, finite_input, positive};
use crate::potential::{BatchPotential, BatchWorkspace};
use crate::sampler::Sampler;

/// `C` ULA chains on one target, stepped together: `X ← X − h∇U(X) + √(2h) Ξ` with the
/// positions `X` the columns of a `d × C` matrix and all gradients from one
/// [`BatchPotential::energy_grad_batch`] call.
///
/// Randomness, two ways (both reproducible: the same seed gives the same run):
/// - [`Sampler::step`] with one RNG draws the normals column after column from it;
/// - [`UlaEnsemble::step_streams`] takes one RNG per chain and then equals, bit for bit,
///   `C` independent [`Ula`](crate::langevin::Ula) chains fed the same streams, whenever the
///   batched gradient equals the single-point one bit for bit (the default
///   `energy_grad_batch`); with the matrix-product override of
///   [`LogisticRegression`](crate::potential::LogisticRegression) the gradients agree to
///   rounding (≈ 1e-15 relative), so the chains agree to rounding for a while and remain equal
///   in law.
///
/// A non-finite energy or gradient in any chain is an [`Error::NonFinite`], as for `Ula`.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::UlaEnsemble, potential::Gaussian};
/// use nalgebra::{DMatrix, Dyn};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let target = Gaussian::standard(Dyn(3));
/// let ens = UlaEnsemble::new(&target, 0.05)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(7);
/// let mut state = ens.init(DMatrix::from_element(3, 200, 4.0), &mut rng)?;
/// for _ in 0..400 {
///     ens.step(&mut state, &mut rng)?;
/// }
/// // 200 chains, each near N(0, I) after 400 steps of size 0.05.
/// assert!(state.positions().mean().abs() < 0.15);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct UlaEnsemble<P> {
    potential: P,
    step_size: f64,
}

/// `C` MALA chains on one target with the identity metric and a fixed step size, stepped
/// together (one batched gradient call per step for all proposals). Each chain keeps its own
/// Metropolis–Hastings test, so every chain leaves `π` exactly invariant.
///
/// Randomness as for [`UlaEnsemble`]: one RNG ([`Sampler::step`]: all normals column by
/// column, then the uniforms in chain order) or one stream per chain
/// ([`MalaEnsemble::step_streams`]), which equals `C` single [`Mala`](crate::langevin::Mala)
/// chains (identity metric, no warm-up) fed the same streams, bit for bit when the batched
/// gradient is the default loop.
///
/// A proposal with a non-finite energy or gradient is a rejection counted as a divergence.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::MalaEnsemble, potential::Gaussian};
/// use nalgebra::{DMatrix, Dyn};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let target = Gaussian::standard(Dyn(2));
/// let ens = MalaEnsemble::new(&target, 0.5)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(3);
/// let mut state = ens.init(DMatrix::zeros(2, 50), &mut rng)?;
/// for _ in 0..200 {
///     ens.step(&mut state, &mut rng)?;
/// }
/// assert!(state.acceptance_rate() > 0.5 && state.divergences() == 0);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MalaEnsemble<P> {
    potential: P,
    step_size: f64,
}

/// What one ensemble step reports (summed over chains).
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::MalaEnsemble, potential::Gaussian};
/// use nalgebra::{DMatrix, Dyn};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let ens = MalaEnsemble::new(Gaussian::standard(Dyn(2)), 0.5)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(1);
/// let mut state = ens.init(DMatrix::zeros(2, 10), &mut rng)?;
/// let info = ens.step(&mut state, &mut rng)?;
/// assert!(info.accepted <= 10 && info.divergent == 0);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EnsembleInfo {
    /// Chains whose proposal was accepted (all of them for ULA).
    pub accepted: usize,
    /// Chains whose proposal had a non-finite energy or gradient (MALA; rejected).
    pub divergent: usize,
    /// The mean Metropolis–Hastings acceptance probability over chains (1 for ULA).
    pub mean_accept_prob: f64,
}

/// The state of an ensemble: positions, gradients and energies of all chains (columns), the
/// proposal buffers, the batch workspace and acceptance counts.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::UlaEnsemble, potential::Gaussian};
/// use nalgebra::{DMatrix, Dyn};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let ens = UlaEnsemble::new(Gaussian::standard(Dyn(2)), 0.1)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let state = ens.init(DMatrix::from_element(2, 4, 1.0), &mut rng)?;
/// assert_eq!((state.chains(), state.iteration()), (4, 0));
/// assert_eq!(state.energies(), &[1.0; 4]);
/// assert_eq!(state.gradients(), state.positions());
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct EnsembleState {
    positions: DMatrix<f64>,
    gradients: DMatrix<f64>,
    energies: Vec<f64>,
    proposal: DMatrix<f64>,
    proposal_grad: DMatrix<f64>,
    proposal_energy: Vec<f64>,
    xi_sq: Vec<f64>,
    work: BatchWorkspace,
    iteration: usize,
    accepted: u64,
    proposals: u64,
    divergent: u64,
}

impl EnsembleState {
    /// The positions, one chain per column (`d × C`).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::UlaEnsemble, potential::Gaussian};
    /// use nalgebra::{DMatrix, Dyn};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let ens = UlaEnsemble::new(Gaussian::standard(Dyn(2)), 0.1)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = ens.init(DMatrix::from_element(2, 3, 1.0), &mut rng)?;
    /// ens.step(&mut state, &mut rng)?;
    /// assert_eq!(state.positions().shape(), (2, 3)); // d × chains
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn positions(&self) -> &DMatrix<f64> {
        &self.positions
    }
    /// `∇U` at the positions (`d × C`).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::UlaEnsemble, potential::Gaussian};
    /// use nalgebra::{DMatrix, Dyn};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let ens = UlaEnsemble::new(Gaussian::standard(Dyn(2)), 0.1)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = ens.init(DMatrix::from_element(2, 3, 1.0), &mut rng)?;
    /// ens.step(&mut state, &mut rng)?;
    /// // ∇U(x) = x for N(0, I).
    /// assert_eq!(state.gradients(), state.positions());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn gradients(&self) -> &DMatrix<f64> {
        &self.gradients
    }
    /// `U` at the positions, one per chain.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::UlaEnsemble, potential::Gaussian};
    /// use nalgebra::{DMatrix, Dyn};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let ens = UlaEnsemble::new(Gaussian::standard(Dyn(2)), 0.1)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = ens.init(DMatrix::from_element(2, 3, 1.0), &mut rng)?;
    /// let x = state.positions().column(0).norm_squared();
    /// assert_eq!(state.energies()[0], 0.5 * x);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn energies(&self) -> &[f64] {
        &self.energies
    }
    /// The number of chains `C`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::UlaEnsemble, potential::Gaussian};
    /// use nalgebra::{DMatrix, Dyn};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let ens = UlaEnsemble::new(Gaussian::standard(Dyn(2)), 0.1)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = ens.init(DMatrix::from_element(2, 3, 1.0), &mut rng)?;
    /// assert_eq!(state.chains(), 3);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn chains(&self) -> usize {
        self.positions.ncols()
    }
    /// Steps taken.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::UlaEnsemble, potential::Gaussian};
    /// use nalgebra::{DMatrix, Dyn};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let ens = UlaEnsemble::new(Gaussian::standard(Dyn(2)), 0.1)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = ens.init(DMatrix::from_element(2, 3, 1.0), &mut rng)?;
    /// ens.step(&mut state, &mut rng)?;
    /// assert_eq!(state.iteration(), 1);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn iteration(&self) -> usize {
        self.iteration
    }
    /// Accepted proposals / proposals over all chains so far (1 for ULA).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::UlaEnsemble, potential::Gaussian};
    /// use nalgebra::{DMatrix, Dyn};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let ens = UlaEnsemble::new(Gaussian::standard(Dyn(2)), 0.1)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = ens.init(DMatrix::from_element(2, 3, 1.0), &mut rng)?;
    /// ens.step(&mut state, &mut rng)?;
    /// assert_eq!(state.acceptance_rate(), 1.0); // ULA accepts every move
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn acceptance_rate(&self) -> f64 {
        self.accepted as f64 / self.proposals.max(1) as f64
    }
    /// Proposals with a non-finite energy or gradient so far (MALA).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::UlaEnsemble, potential::Gaussian};
    /// use nalgebra::{DMatrix, Dyn};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let ens = UlaEnsemble::new(Gaussian::standard(Dyn(2)), 0.1)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = ens.init(DMatrix::from_element(2, 3, 1.0), &mut rng)?;
    /// ens.step(&mut state, &mut rng)?;
    /// assert_eq!(state.divergences(), 0);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn divergences(&self) -> u64 {
        self.divergent
    }
}

/// Validates the `d × C` starting matrix and builds the state.
fn ensemble_state<P: BatchPotential>(
    potential: &P,
    init: DMatrix<f64>,
    proposals: bool,
) -> Result<EnsembleState> {
    let d = nalgebra::Dim::value(&potential.dim());
    if init.nrows() != d {
        return Err(Error::DimensionMismatch {
            name: "init",
            expected: d,
            found: init.nrows(),
        });
    }
    if init.ncols() == 0 {
        return Err(Error::Empty { name: "init" });
    }
    finite_input("init", init.as_slice())?;
    let c = init.ncols();
    let mut work = BatchWorkspace::new();
    let mut gradients = DMatrix::zeros(d, c);
    let mut energies = vec![0.0; c];
    potential.energy_grad_batch(&init, &mut gradients, &mut energies, &mut work);
    check_batch(0, &energies, &gradients)?;
    let (pc, pe) = if proposals { (c, c) } else { (0, 0) };
    Ok(EnsembleState {
        positions: init,
        gradients,
        energies,
        proposal: DMatrix::zeros(d, pc),
        proposal_grad: DMatrix::zeros(d, pc),
        proposal_energy: vec![0.0; pe],
        xi_sq: vec![0.0; pe],
        work,
        iteration: 0,
        accepted: 0,
        proposals: 0,
        divergent: 0,
    })
}

fn check_batch(step: usize, energies: &[f64], gradients: &DMatrix<f64>) -> Result<()> {
    if !all_finite(energies) {
        return Err(Error::NonFinite {
            step,
            quantity: "energy",
        });
    }
    if !all_finite(gradients.as_slice()) {
        return Err(Error::NonFinite {
            step,
            quantity: "gradient",
        });
    }
    Ok(())
}

fn check_streams(chains: usize, streams: usize) -> Result<()> {
    if chains == streams {
        Ok(())
    } else {
        Err(Error::DimensionMismatch {
            name: "rngs",
            expected: chains,
            found: streams,
        })
    }
}

/// Where a step draws chain `c`'s randomness: its own stream, or one shared RNG.
trait Streams {
    type R: Rng + ?Sized;
    fn get(&mut self, c: usize) -> &mut Self::R;
}

impl<R: Rng> Streams for [R] {
    type R = R;
    fn get(&mut self, c: usize) -> &mut R {
        &mut self[c]
    }
}

/// One RNG shared by all chains.
struct Shared<'a, R: ?Sized>(&'a mut R);

impl<R: Rng + ?Sized> Streams for Shared<'_, R> {
    type R = R;
    fn get(&mut self, _: usize) -> &mut R {
        self.0
    }
}

/// `x ← x − h g + noise·ξ` on one column, with `ξ` drawn from `rng` (the arithmetic of
/// [`Ula`](crate::langevin::Ula)'s step).
#[inline]
fn ula_column<R: Rng + ?Sized>(x: &mut [f64], g: &[f64], h: f64, noise: f64, rng: &mut R) {
    for (x, g) in x.iter_mut().zip(g) {
        let z: f64 = rng.sample(StandardNormal);
        *x += -h * g + noise * z;
    }
}

/// The MALA proposal `y = x − h g + noise·ξ` on one column; returns `‖ξ‖²` (the arithmetic of
/// [`Mala`](crate::langevin::Mala)'s identity-metric step).
#[inline]
pub(crate) fn mala_propose<R: Rng + ?Sized>(
    y: &mut [f64],
    x: &[f64],
    g: &[f64],
    h: f64,
    noise: f64,
    rng: &mut R,
) -> f64 {
    let mut xi_sq = 0.0;
    for ((y, x), g) in y.iter_mut().zip(x).zip(g) {
        let z: f64 = rng.sample(StandardNormal);
        xi_sq += z * z;
        *y = (-h * g + x) + noise * z;
    }
    xi_sq
}

/// The MALA acceptance probability for the proposal `y` (energy `u_y`, gradient `gy`) from
/// `x` (energy `u_x`), identity metric; 0 if the proposal is not finite.
#[inline]
pub(crate) fn mala_accept_prob(
    x: &[f64],
    u_x: f64,
    y: &[f64],
    gy: &[f64],
    u_y: f64,
    xi_sq: f64,
    h: f64,
) -> (f64, bool) {
    let finite = u_y.is_finite() && all_finite(gy) && all_finite(y);
    if !finite {
        return (0.0, false);
    }
    // log q(x|y) = −‖x − y + h∇U(y)‖²/(4h)
    let mut back = 0.0;
    for ((x, y), g) in x.iter().zip(y).zip(gy) {
        let r = (h * g + x) - y;
        back += r * r;
    }
    let back = back / (4.0 * h);
    let log_a = u_x - u_y - back + 0.5 * xi_sq;
    (if log_a >= 0.0 { 1.0 } else { log_a.exp() }, true)
}

impl<P: BatchPotential> UlaEnsemble<P> {
    /// ULA chains on `potential` with step size `step_size`.
    ///
    /// # Errors
    ///
    /// As [`Ula::new`](crate::langevin::Ula::new): [`Error::InvalidParameter`] naming
    /// `step_size` unless finite, positive and (if the smoothness `L` is known) below `2/L`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, langevin::UlaEnsemble, potential::Gaussian};
    /// use nalgebra::Dyn;
    ///
    /// let ens = UlaEnsemble::new(Gaussian::standard(Dyn(2)), 0.25)?;
    /// assert_eq!(ens.step_size(), 0.25);
    /// assert!(matches!(UlaEnsemble::new(Gaussian::standard(Dyn(2)), -1.0), Err(Error::InvalidParameter { name: "step_size", .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(potential: P, step_size: f64) -> Result<Self> {
        crate::langevin::Ula::new(&potential, step_size)?;
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
    /// use klflow::{langevin::UlaEnsemble, potential::Gaussian};
    /// use nalgebra::Dyn;
    ///
    /// assert_eq!(UlaEnsemble::new(Gaussian::standard(Dyn(3)), 0.125)?.step_size(), 0.125);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn step_size(&self) -> f64 {
        self.step_size
    }

    /// One step with one RNG stream per chain (`rngs[c]` drives chain `c`): the chains equal
    /// independent [`Ula`](crate::langevin::Ula) chains fed the same streams (see the type
    /// docs).
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] naming `rngs` unless there is one per chain;
    /// [`Error::NonFinite`] as for [`Sampler::step`].
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::UlaEnsemble, potential::Gaussian};
    /// use nalgebra::{DMatrix, Dyn};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let ens = UlaEnsemble::new(Gaussian::standard(Dyn(2)), 0.1)?;
    /// let mut rngs: Vec<ChaCha8Rng> = (0..3)
    ///     .map(|c| { let mut r = ChaCha8Rng::seed_from_u64(5); r.set_stream(c); r })
    ///     .collect();
    /// let mut state = ens.init(DMatrix::zeros(2, 3), &mut rngs[0])?;
    /// ens.step_streams(&mut state, &mut rngs)?;
    /// assert!(ens.step_streams(&mut state, &mut rngs[..2]).is_err());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn step_streams<R: Rng>(
        &self,
        state: &mut EnsembleState,
        rngs: &mut [R],
    ) -> Result<EnsembleInfo> {
        check_streams(state.chains(), rngs.len())?;
        self.advance(state, rngs)
    }

    fn advance<S: Streams + ?Sized>(
        &self,
        state: &mut EnsembleState,
        rngs: &mut S,
    ) -> Result<EnsembleInfo> {
        let (h, noise) = (self.step_size, (2.0 * self.step_size).sqrt());
        let d = state.positions.nrows();
        for (c, (x, g)) in state
            .positions
            .as_mut_slice()
            .chunks_exact_mut(d)
            .zip(state.gradients.as_slice().chunks_exact(d))
            .enumerate()
        {
            ula_column(x, g, h, noise, rngs.get(c));
        }
        state.iteration += 1;
        self.potential.energy_grad_batch(
            &state.positions,
            &mut state.gradients,
            &mut state.energies,
            &mut state.work,
        );
        check_batch(state.iteration, &state.energies, &state.gradients)?;
        let c = state.chains();
        state.accepted += c as u64;
        state.proposals += c as u64;
        Ok(EnsembleInfo {
            accepted: c,
            divergent: 0,
            mean_accept_prob: 1.0,
        })
    }
}

impl<P: BatchPotential> Sampler for UlaEnsemble<P> {
    type Init = DMatrix<f64>;
    type State = EnsembleState;
    type Info = EnsembleInfo;

    fn init<R: Rng + ?Sized>(&self, init: DMatrix<f64>, _rng: &mut R) -> Result<EnsembleState> {
        ensemble_state(&self.potential, init, false)
    }

    fn step<R: Rng + ?Sized>(
        &self,
        state: &mut EnsembleState,
        rng: &mut R,
    ) -> Result<EnsembleInfo> {
        self.advance(state, &mut Shared(rng))
    }
}

impl<P: BatchPotential> MalaEnsemble<P> {
    /// MALA chains on `potential` with step size `step_size` and the identity metric.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming `step_size` unless finite and positive.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, langevin::MalaEnsemble, potential::Gaussian};
    /// use nalgebra::Dyn;
    ///
    /// let ens = MalaEnsemble::new(Gaussian::standard(Dyn(2)), 0.25)?;
    /// assert_eq!(ens.step_size(), 0.25);
    /// assert!(matches!(MalaEnsemble::new(Gaussian::standard(Dyn(2)), -1.0), Err(Error::InvalidParameter { name: "step_size", .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(potential: P, step_size: f64) -> Result<Self> {
        positive("step_size", step_size)?;
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
    /// use klflow::{langevin::MalaEnsemble, potential::Gaussian};
    /// use nalgebra::Dyn;
    ///
    /// assert_eq!(MalaEnsemble::new(Gaussian::standard(Dyn(3)), 0.125)?.step_size(), 0.125);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn step_size(&self) -> f64 {
        self.step_size
    }

    /// One step with one RNG stream per chain (`rngs[c]` drives chain `c`): the chains equal
    /// independent [`Mala`](crate::langevin::Mala) chains fed the same streams (see the type
    /// docs).
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] naming `rngs` unless there is one per chain.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::MalaEnsemble, potential::Gaussian};
    /// use nalgebra::{DMatrix, Dyn};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let ens = MalaEnsemble::new(Gaussian::standard(Dyn(2)), 0.5)?;
    /// let mut rngs: Vec<ChaCha8Rng> = (0..3)
    ///     .map(|c| { let mut r = ChaCha8Rng::seed_from_u64(5); r.set_stream(c); r })
    ///     .collect();
    /// let mut state = ens.init(DMatrix::zeros(2, 3), &mut rngs[0])?;
    /// let info = ens.step_streams(&mut state, &mut rngs)?;
    /// assert!(info.accepted <= 3 && info.divergent == 0);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn step_streams<R: Rng>(
        &self,
        state: &mut EnsembleState,
        rngs: &mut [R],
    ) -> Result<EnsembleInfo> {
        check_streams(state.chains(), rngs.len())?;
        self.propose(state, rngs);
        Ok(self.accept(state, rngs))
    }

    fn propose<S: Streams + ?Sized>(&self, state: &mut EnsembleState, rngs: &mut S) {
        let (h, noise) = (self.step_size, (2.0 * self.step_size).sqrt());
        let d = state.positions.nrows();
        for (c, (((y, x), g), xi)) in state
            .proposal
            .as_mut_slice()
            .chunks_exact_mut(d)
            .zip(state.positions.as_slice().chunks_exact(d))
            .zip(state.gradients.as_slice().chunks_exact(d))
            .zip(state.xi_sq.iter_mut())
            .enumerate()
        {
            *xi = mala_propose(y, x, g, h, noise, rngs.get(c));
        }
        self.potential.energy_grad_batch(
            &state.proposal,
            &mut state.proposal_grad,
            &mut state.proposal_energy,
            &mut state.work,
        );
    }

    fn accept<S: Streams + ?Sized>(&self, state: &mut EnsembleState, rngs: &mut S) -> EnsembleInfo {
        let h = self.step_size;
        let d = state.positions.nrows();
        let (mut accepted, mut divergent, mut prob_sum) = (0usize, 0usize, 0.0);
        for (c, (((x, gx), ux), xi)) in state
            .positions
            .as_mut_slice()
            .chunks_exact_mut(d)
            .zip(state.gradients.as_mut_slice().chunks_exact_mut(d))
            .zip(state.energies.iter_mut())
            .zip(state.xi_sq.iter())
            .enumerate()
        {
            let y = &state.proposal.as_slice()[c * d..(c + 1) * d];
            let gy = &state.proposal_grad.as_slice()[c * d..(c + 1) * d];
            let uy = state.proposal_energy[c];
            let (p, finite) = mala_accept_prob(x, *ux, y, gy, uy, *xi, h);
            prob_sum += p;
            divergent += usize::from(!finite);
            if finite && rngs.get(c).random::<f64>() < p {
                x.copy_from_slice(y);
                gx.copy_from_slice(gy);
                *ux = uy;
                accepted += 1;
            }
        }
        let c = state.chains();
        state.iteration += 1;
        state.accepted += accepted as u64;
        state.proposals += c as u64;
        state.divergent += divergent as u64;
        EnsembleInfo {
            accepted,
            divergent,
            mean_accept_prob: prob_sum / c as f64,
        }
    }
}

impl<P: BatchPotential> Sampler for MalaEnsemble<P> {
    type Init = DMatrix<f64>;
    type State = EnsembleState;
    type Info = EnsembleInfo;

    fn init<R: Rng + ?Sized>(&self, init: DMatrix<f64>, _rng: &mut R) -> Result<EnsembleState> {
        ensemble_state(&self.potential, init, true)
    }

    fn step<R: Rng + ?Sized>(
        &self,
        state: &mut EnsembleState,
        rng: &mut R,
    ) -> Result<EnsembleInfo> {
        let mut shared = Shared(rng);
        self.propose(state, &mut shared);
        Ok(self.accept(state, &mut shared))
    }
}
