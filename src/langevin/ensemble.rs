//! Ensembles of Langevin chains stepped together, so that the gradient of all chains is one
//! call of [`BatchPotential::energy_grad_batch`] (for logistic regression a fused pass over the
//! observations for `d ≤ 16`, two matrix products above).

use nalgebra::{DMatrix, DMatrixView, DMatrixViewMut};
use rand::rngs::ChaCha8Rng;
use rand::{Rng, RngExt, SeedableRng};
use rand_distr::StandardNormal;

use crate::diffusion::{MaybeSend, MaybeSync};
use crate::dim::all_finite;
use crate::error::{Error, Result, finite_input, positive};
use crate::fastmath::NormalScratch;
use crate::langevin::ula::ula_update_in;
use crate::potential::{BatchPotential, BatchWorkspace};
use crate::sampler::Sampler;

/// The most chains in one block. The `C` chains are split into `⌈C/64⌉` blocks of consecutive
/// columns of (nearly) equal width; with the `rayon` feature the blocks of a step run in
/// parallel. The split depends on `C` alone, so results are the same for any thread count.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::{ENSEMBLE_BLOCK, UlaEnsemble}, potential::Gaussian};
/// use nalgebra::{DMatrix, Dyn};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// // 100 chains run as ⌈100/64⌉ = 2 blocks of 50; the output does not depend on the split.
/// assert_eq!(100usize.div_ceil(ENSEMBLE_BLOCK), 2);
/// let ens = UlaEnsemble::new(Gaussian::standard(Dyn(3)), 0.1)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(1);
/// let mut state = ens.init(DMatrix::zeros(3, 100), &mut rng)?;
/// ens.advance(&mut state, 5, &mut rng)?;
/// assert_eq!(state.chains(), 100);
/// # Ok::<(), klflow::Error>(())
/// ```
pub const ENSEMBLE_BLOCK: usize = 64;

/// `C` ULA chains on one target, stepped together: `X ← X − h∇U(X) + √(2h) Ξ` with the
/// positions `X` the columns of a `d × C` matrix and all gradients from one
/// [`BatchPotential::energy_grad_batch`] call.
///
/// Randomness, two ways (both reproducible: the same seed gives the same run, whatever the
/// number of threads):
/// - [`Sampler::step`] with one RNG draws one `u64` seed from it per step; block `b` of
///   chains (see [`ENSEMBLE_BLOCK`]) then draws its normals, column after column, from
///   `ChaCha8Rng::seed_from_u64(seed)` on stream `b`;
/// - [`UlaEnsemble::step_streams`] takes one RNG per chain and then equals, bit for bit,
///   `C` independent [`Ula`](crate::langevin::Ula) chains fed the same streams, whenever the
///   batched gradient equals the single-point one bit for bit (the default
///   `energy_grad_columns`, the diagonal Gaussian); with the batched override of
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
    /// Compute the energies each step (see [`UlaEnsemble::without_energies`]).
    energies: bool,
}

/// `C` MALA chains on one target with the identity metric and a fixed step size, stepped
/// together (one batched gradient call per step for all proposals). Each chain keeps its own
/// Metropolis–Hastings test, so every chain leaves `π` exactly invariant.
///
/// Randomness as for [`UlaEnsemble`]: one RNG ([`Sampler::step`]: one seed per step, then in
/// each block all normals column by column and the uniforms in chain order from the block's
/// ChaCha8 stream) or one stream per chain
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
    /// Chains per block (the last block may be narrower).
    width: usize,
    blocks: Vec<BlockScratch>,
    /// One ChaCha8 stream per block, re-seeded every [`Sampler::step`].
    block_rngs: Vec<BlockRng>,
    iteration: usize,
    accepted: u64,
    proposals: u64,
    divergent: u64,
}

/// A block's ChaCha8 stream for [`Sampler::step`]. It is re-seeded before every use, so a
/// clone of the state need not copy it (`ChaCha8Rng` is not `Clone`): a clone holds a
/// placeholder. An [`Rng`] through `DerefMut`.
#[derive(Debug)]
struct BlockRng(ChaCha8Rng);

impl Clone for BlockRng {
    fn clone(&self) -> Self {
        Self(ChaCha8Rng::seed_from_u64(0))
    }
}

impl std::ops::Deref for BlockRng {
    type Target = ChaCha8Rng;
    fn deref(&self) -> &ChaCha8Rng {
        &self.0
    }
}

impl std::ops::DerefMut for BlockRng {
    fn deref_mut(&mut self) -> &mut ChaCha8Rng {
        &mut self.0
    }
}

/// A block's own memory: the batch workspace, the MALA proposal buffers and what the block's
/// step reports.
#[derive(Clone, Debug)]
struct BlockScratch {
    work: BatchWorkspace,
    proposal: DMatrix<f64>,
    proposal_grad: DMatrix<f64>,
    proposal_energy: Vec<f64>,
    xi_sq: Vec<f64>,
    out: BlockOut,
}

/// What one block's step reports.
#[derive(Clone, Copy, Debug, Default)]
struct BlockOut {
    accepted: usize,
    divergent: usize,
    prob_sum: f64,
    energy_ok: bool,
    grad_ok: bool,
    /// The block's first failing step of the call (ULA), [`NO_FAIL`] if none.
    fail: usize,
}

/// [`BlockOut::fail`] when every step was finite.
const NO_FAIL: usize = usize::MAX;

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

/// The block width for `c` chains: `⌈C/64⌉` blocks of nearly equal width.
fn block_width(c: usize) -> usize {
    c.div_ceil(c.div_ceil(ENSEMBLE_BLOCK))
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
    let width = block_width(c);
    let mut gradients = DMatrix::zeros(d, c);
    let mut energies = vec![0.0; c];
    let blocks: Vec<BlockScratch> = (0..c)
        .step_by(width)
        .map(|first| {
            let w = if proposals { width.min(c - first) } else { 0 };
            BlockScratch {
                work: BatchWorkspace::new(),
                proposal: DMatrix::zeros(d, w),
                proposal_grad: DMatrix::zeros(d, w),
                proposal_energy: vec![0.0; w],
                xi_sq: vec![0.0; w],
                out: BlockOut::default(),
            }
        })
        .collect();
    let mut work = BatchWorkspace::new();
    potential.energy_grad_batch(&init, &mut gradients, &mut energies, &mut work);
    check_batch(0, &energies, &gradients)?;
    let block_rngs = vec![BlockRng(ChaCha8Rng::seed_from_u64(0)); blocks.len()];
    Ok(EnsembleState {
        positions: init,
        gradients,
        energies,
        width,
        blocks,
        block_rngs,
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

/// One block of a step: its columns of the positions, gradients and energies (`d × w`,
/// column-major), its scratch, and its generators: one per chain, or one for the whole block.
struct BlockMut<'a, R> {
    d: usize,
    x: &'a mut [f64],
    g: &'a mut [f64],
    u: &'a mut [f64],
    s: &'a mut BlockScratch,
    rngs: &'a mut [R],
}

/// What the zipped block iterators yield: positions, gradients, energies, scratch, generators.
type BlockItem<'a, R> = (
    (
        ((&'a mut [f64], &'a mut [f64]), &'a mut [f64]),
        &'a mut BlockScratch,
    ),
    &'a mut [R],
);

/// Runs `f` on every block of `state` (in parallel with the `rayon` feature when there is
/// more than one block). `rngs` holds one generator per chain, or (`shared`) one per block.
fn for_blocks<R, F>(state: &mut EnsembleState, rngs: &mut [R], shared: bool, f: F)
where
    R: MaybeSend,
    F: Fn(usize, BlockMut<'_, R>) + MaybeSync,
{
    let d = state.positions.nrows();
    let w = state.width;
    let per = if shared { 1 } else { w };
    let EnsembleState {
        positions,
        gradients,
        energies,
        blocks,
        ..
    } = state;
    let job = |(b, ((((x, g), u), s), rngs)): (usize, BlockItem<'_, R>)| {
        f(
            b,
            BlockMut {
                d,
                x,
                g,
                u,
                s,
                rngs,
            },
        )
    };
    #[cfg(feature = "rayon")]
    if blocks.len() > 1 {
        use rayon::prelude::*;
        positions
            .as_mut_slice()
            .par_chunks_mut(d * w)
            .zip(gradients.as_mut_slice().par_chunks_mut(d * w))
            .zip(energies.par_chunks_mut(w))
            .zip(blocks.par_iter_mut())
            .zip(rngs.par_chunks_mut(per))
            .enumerate()
            .for_each(job);
        return;
    }
    positions
        .as_mut_slice()
        .chunks_mut(d * w)
        .zip(gradients.as_mut_slice().chunks_mut(d * w))
        .zip(energies.chunks_mut(w))
        .zip(blocks.iter_mut())
        .zip(rngs.chunks_mut(per))
        .enumerate()
        .for_each(job);
}

/// Re-seeds a block's stream for one step of [`Sampler::step`]: `seed` on stream `b`.
fn reseed_block(r: &mut BlockRng, seed: u64, b: usize) {
    r.0 = ChaCha8Rng::seed_from_u64(seed);
    r.0.set_stream(b as u64);
}

/// Leaves per-chain streams as they are.
fn keep_streams<R>(_: &mut R, _: u64, _: usize) {}

/// Runs `f` with the state's per-block streams taken out of it (`Sampler::step`, `advance`).
fn with_block_rngs<T>(
    state: &mut EnsembleState,
    f: impl FnOnce(&mut EnsembleState, &mut [BlockRng]) -> T,
) -> T {
    let mut block_rngs = std::mem::take(&mut state.block_rngs);
    let out = f(state, &mut block_rngs);
    state.block_rngs = block_rngs;
    out
}

/// Draws the seeds of `steps` shared-RNG steps from `rng` (one per step, in order: what
/// `steps` calls of [`Sampler::step`] draw) and runs `f` on them; one step needs no allocation.
fn with_seeds<R: Rng + ?Sized, T>(steps: usize, rng: &mut R, f: impl FnOnce(&[u64]) -> T) -> T {
    if steps == 1 {
        f(&[rng.random()])
    } else {
        let seeds: Vec<u64> = (0..steps).map(|_| rng.random()).collect();
        f(&seeds)
    }
}

/// The outcome of `steps` ULA steps of every block: the earliest step at which any block saw
/// a non-finite energy (checked first, as in one step) or gradient is the error; otherwise the
/// totals over the steps.
fn ula_outcome(state: &mut EnsembleState, steps: usize) -> Result<EnsembleInfo> {
    let c = state.chains();
    let fail = state
        .blocks
        .iter()
        .map(|b| b.out.fail)
        .min()
        .unwrap_or(NO_FAIL);
    let done = fail.min(steps);
    state.accepted += (c * done) as u64;
    state.proposals += (c * done) as u64;
    if fail == NO_FAIL {
        state.iteration += steps;
        return Ok(EnsembleInfo {
            accepted: c * steps,
            divergent: 0,
            mean_accept_prob: 1.0,
        });
    }
    state.iteration += fail + 1;
    let energy = state
        .blocks
        .iter()
        .any(|b| b.out.fail == fail && !b.out.energy_ok);
    Err(Error::NonFinite {
        step: state.iteration,
        quantity: if energy { "energy" } else { "gradient" },
    })
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

impl<P: BatchPotential + MaybeSync> UlaEnsemble<P> {
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
            energies: true,
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
    pub fn step_streams<R: Rng + MaybeSend>(
        &self,
        state: &mut EnsembleState,
        rngs: &mut [R],
    ) -> Result<EnsembleInfo> {
        self.advance_streams(state, 1, rngs)
    }

    /// Skips the energies: ULA never uses `U`, so the step then asks the potential for the
    /// gradients alone ([`BatchPotential::grad_columns`]; for logistic regression this drops
    /// the softplus pass). The positions are the same bit for bit; after a step
    /// [`EnsembleState::energies`] are NaN (not computed), and only a non-finite gradient is
    /// an error.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::UlaEnsemble, potential::Gaussian};
    /// use nalgebra::{DMatrix, Dyn};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let target = Gaussian::standard(Dyn(2));
    /// let full = UlaEnsemble::new(&target, 0.1)?;
    /// let fast = UlaEnsemble::new(&target, 0.1)?.without_energies();
    /// let (mut r1, mut r2) = (ChaCha8Rng::seed_from_u64(4), ChaCha8Rng::seed_from_u64(4));
    /// let mut a = full.init(DMatrix::from_element(2, 3, 1.0), &mut r1)?;
    /// let mut b = fast.init(DMatrix::from_element(2, 3, 1.0), &mut r2)?;
    /// full.step(&mut a, &mut r1)?;
    /// fast.step(&mut b, &mut r2)?;
    /// assert_eq!(a.positions(), b.positions());
    /// assert!(b.energies().iter().all(|u| u.is_nan()));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn without_energies(mut self) -> Self {
        self.energies = false;
        self
    }

    /// Runs `steps` steps with one parallel region (`rayon` feature): every block of chains
    /// (see [`ENSEMBLE_BLOCK`]) goes through all of them before the threads meet again, which
    /// is what makes short steps scale with the thread count. Equals `steps` calls of
    /// [`Sampler::step`] bit for bit, for any thread count (it draws the same seeds from `rng`,
    /// in the same order). Returns the totals over the steps (`accepted` = chains × steps).
    ///
    /// Each call costs one wake-up and join of the pool's threads (measured ≈ 20–30 µs on a
    /// 2-vCPU VM): give it segments long enough to hide that. 100 chains of ULA at d = 100
    /// (23 µs a step) run 1.5× faster on two threads with 10 steps per call and 1.8× with 100.
    ///
    /// # Errors
    ///
    /// [`Error::NonFinite`] naming the earliest step at which any block saw a non-finite energy
    /// or gradient (each block stops at its own first such step). The iteration and acceptance
    /// counts are then those of single steps, but the positions are unspecified (blocks that
    /// were still finite went on), and `rng` has given all `steps` seeds.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::UlaEnsemble, potential::Gaussian};
    /// use nalgebra::{DMatrix, Dyn};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let ens = UlaEnsemble::new(Gaussian::standard(Dyn(2)), 0.1)?;
    /// let (mut r1, mut r2) = (ChaCha8Rng::seed_from_u64(4), ChaCha8Rng::seed_from_u64(4));
    /// let mut a = ens.init(DMatrix::from_element(2, 100, 1.0), &mut r1)?;
    /// let mut b = a.clone();
    /// let info = ens.advance(&mut a, 20, &mut r1)?;
    /// for _ in 0..20 {
    ///     ens.step(&mut b, &mut r2)?;
    /// }
    /// assert_eq!((a.positions(), a.iteration(), info.accepted), (b.positions(), 20, 2_000));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn advance<R: Rng + ?Sized>(
        &self,
        state: &mut EnsembleState,
        steps: usize,
        rng: &mut R,
    ) -> Result<EnsembleInfo> {
        with_seeds(steps, rng, |seeds| {
            with_block_rngs(state, |state, rngs| {
                self.run_steps(state, rngs, true, seeds.len(), seeds, reseed_block)
            })
        })
    }

    /// [`UlaEnsemble::advance`] with one RNG stream per chain: equals `steps` calls of
    /// [`UlaEnsemble::step_streams`] bit for bit, in one parallel region.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] naming `rngs` unless there is one per chain;
    /// [`Error::NonFinite`] as for [`UlaEnsemble::advance`].
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::UlaEnsemble, potential::Gaussian};
    /// use nalgebra::{DMatrix, Dyn};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let ens = UlaEnsemble::new(Gaussian::standard(Dyn(2)), 0.1)?;
    /// let streams = || -> Vec<ChaCha8Rng> {
    ///     (0..3).map(|c| { let mut r = ChaCha8Rng::seed_from_u64(5); r.set_stream(c); r }).collect()
    /// };
    /// let (mut r1, mut r2) = (streams(), streams());
    /// let mut a = ens.init(DMatrix::zeros(2, 3), &mut r1[0])?;
    /// let mut b = a.clone();
    /// ens.advance_streams(&mut a, 10, &mut r1)?;
    /// for _ in 0..10 {
    ///     ens.step_streams(&mut b, &mut r2)?;
    /// }
    /// assert_eq!(a.positions(), b.positions());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn advance_streams<R: Rng + MaybeSend>(
        &self,
        state: &mut EnsembleState,
        steps: usize,
        rngs: &mut [R],
    ) -> Result<EnsembleInfo> {
        check_streams(state.chains(), rngs.len())?;
        self.run_steps(state, rngs, false, steps, &[], keep_streams)
    }

    /// `steps` steps on every block: the update with fresh normals, then the block's gradients
    /// (and energies) in one batched call; `shared`: one generator per block, re-seeded with
    /// `seeds[j]` before step `j`.
    fn run_steps<R: Rng + MaybeSend>(
        &self,
        state: &mut EnsembleState,
        rngs: &mut [R],
        shared: bool,
        steps: usize,
        seeds: &[u64],
        reseed: fn(&mut R, u64, usize),
    ) -> Result<EnsembleInfo> {
        let (h, noise) = (self.step_size, (2.0 * self.step_size).sqrt());
        let energies = self.energies;
        for_blocks(state, rngs, shared, |b, blk| {
            let d = blk.d;
            let w = blk.u.len();
            blk.s.out = BlockOut {
                energy_ok: true,
                grad_ok: true,
                fail: NO_FAIL,
                ..BlockOut::default()
            };
            let mut scratch = NormalScratch::new();
            for j in 0..steps {
                // Shared: `seeds` has one seed per step; per chain it is empty.
                if let Some(&seed) = seeds.get(j) {
                    reseed(&mut blk.rngs[0], seed, b);
                }
                for (c, (x, g)) in blk
                    .x
                    .chunks_exact_mut(d)
                    .zip(blk.g.chunks_exact(d))
                    .enumerate()
                {
                    let r = if shared {
                        &mut blk.rngs[0]
                    } else {
                        &mut blk.rngs[c]
                    };
                    ula_update_in(&mut scratch, x, g, h, noise, r);
                }
                let x = DMatrixView::from_slice(blk.x, d, w);
                let g = DMatrixViewMut::from_slice(blk.g, d, w);
                if energies {
                    self.potential
                        .energy_grad_columns(x, g, blk.u, &mut blk.s.work);
                    blk.s.out.energy_ok = all_finite(blk.u);
                } else {
                    self.potential.grad_columns(x, g, &mut blk.s.work);
                    blk.u.fill(f64::NAN);
                }
                blk.s.out.grad_ok = all_finite(blk.g);
                if !(blk.s.out.energy_ok && blk.s.out.grad_ok) {
                    blk.s.out.fail = j;
                    break;
                }
            }
        });
        ula_outcome(state, steps)
    }
}

impl<P: BatchPotential + MaybeSync> Sampler for UlaEnsemble<P> {
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
        self.advance(state, 1, rng)
    }
}

impl<P: BatchPotential + MaybeSync> MalaEnsemble<P> {
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
    pub fn step_streams<R: Rng + MaybeSend>(
        &self,
        state: &mut EnsembleState,
        rngs: &mut [R],
    ) -> Result<EnsembleInfo> {
        self.advance_streams(state, 1, rngs)
    }

    /// Runs `steps` steps with one parallel region (`rayon` feature), as
    /// [`UlaEnsemble::advance`]: equals `steps` calls of [`Sampler::step`] bit for bit
    /// (positions, energies, the state's acceptance and divergence counts), for any thread
    /// count. Returns the totals over the steps: accepted and divergent proposals, and the
    /// acceptance probability averaged over chains and steps.
    ///
    /// # Errors
    ///
    /// None (a non-finite proposal is a rejection counted as a divergence); `Result` for
    /// symmetry with [`Sampler::step`].
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::MalaEnsemble, potential::Gaussian};
    /// use nalgebra::{DMatrix, Dyn};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let ens = MalaEnsemble::new(Gaussian::standard(Dyn(2)), 0.5)?;
    /// let (mut r1, mut r2) = (ChaCha8Rng::seed_from_u64(4), ChaCha8Rng::seed_from_u64(4));
    /// let mut a = ens.init(DMatrix::zeros(2, 100), &mut r1)?;
    /// let mut b = a.clone();
    /// let info = ens.advance(&mut a, 20, &mut r1)?;
    /// let mut accepted = 0;
    /// for _ in 0..20 {
    ///     accepted += ens.step(&mut b, &mut r2)?.accepted;
    /// }
    /// assert_eq!((a.positions(), info.accepted), (b.positions(), accepted));
    /// assert_eq!(a.acceptance_rate(), b.acceptance_rate());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn advance<R: Rng + ?Sized>(
        &self,
        state: &mut EnsembleState,
        steps: usize,
        rng: &mut R,
    ) -> Result<EnsembleInfo> {
        Ok(with_seeds(steps, rng, |seeds| {
            with_block_rngs(state, |state, rngs| {
                self.run_steps(state, rngs, true, seeds.len(), seeds, reseed_block)
            })
        }))
    }

    /// [`MalaEnsemble::advance`] with one RNG stream per chain: equals `steps` calls of
    /// [`MalaEnsemble::step_streams`] bit for bit, in one parallel region.
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
    /// let streams = || -> Vec<ChaCha8Rng> {
    ///     (0..3).map(|c| { let mut r = ChaCha8Rng::seed_from_u64(5); r.set_stream(c); r }).collect()
    /// };
    /// let (mut r1, mut r2) = (streams(), streams());
    /// let mut a = ens.init(DMatrix::zeros(2, 3), &mut r1[0])?;
    /// let mut b = a.clone();
    /// ens.advance_streams(&mut a, 10, &mut r1)?;
    /// for _ in 0..10 {
    ///     ens.step_streams(&mut b, &mut r2)?;
    /// }
    /// assert_eq!((a.positions(), a.acceptance_rate()), (b.positions(), b.acceptance_rate()));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn advance_streams<R: Rng + MaybeSend>(
        &self,
        state: &mut EnsembleState,
        steps: usize,
        rngs: &mut [R],
    ) -> Result<EnsembleInfo> {
        check_streams(state.chains(), rngs.len())?;
        Ok(self.run_steps(state, rngs, false, steps, &[], keep_streams))
    }

    /// `steps` steps on every block: the proposals, their energies and gradients in one
    /// batched call, then each chain's accept/reject test; `shared`: one generator per block,
    /// re-seeded with `seeds[j]` before step `j`.
    fn run_steps<R: Rng + MaybeSend>(
        &self,
        state: &mut EnsembleState,
        rngs: &mut [R],
        shared: bool,
        steps: usize,
        seeds: &[u64],
        reseed: fn(&mut R, u64, usize),
    ) -> EnsembleInfo {
        let (h, noise) = (self.step_size, (2.0 * self.step_size).sqrt());
        for_blocks(state, rngs, shared, |b, blk| {
            let d = blk.d;
            let w = blk.u.len();
            let s = &mut *blk.s;
            let (mut accepted, mut divergent, mut prob_sum) = (0usize, 0usize, 0.0);
            for j in 0..steps {
                // Shared: `seeds` has one seed per step; per chain it is empty.
                if let Some(&seed) = seeds.get(j) {
                    reseed(&mut blk.rngs[0], seed, b);
                }
                for (c, ((y, (x, g)), xi)) in s
                    .proposal
                    .as_mut_slice()
                    .chunks_exact_mut(d)
                    .zip(blk.x.chunks_exact(d).zip(blk.g.chunks_exact(d)))
                    .zip(s.xi_sq.iter_mut())
                    .enumerate()
                {
                    let r = if shared {
                        &mut blk.rngs[0]
                    } else {
                        &mut blk.rngs[c]
                    };
                    *xi = mala_propose(y, x, g, h, noise, r);
                }
                self.potential.energy_grad_columns(
                    s.proposal.as_view(),
                    s.proposal_grad.as_view_mut(),
                    &mut s.proposal_energy,
                    &mut s.work,
                );
                let mut step_prob = 0.0;
                for c in 0..w {
                    let x = &mut blk.x[c * d..(c + 1) * d];
                    let gx = &mut blk.g[c * d..(c + 1) * d];
                    let y = &s.proposal.as_slice()[c * d..(c + 1) * d];
                    let gy = &s.proposal_grad.as_slice()[c * d..(c + 1) * d];
                    let uy = s.proposal_energy[c];
                    let (p, finite) = mala_accept_prob(x, blk.u[c], y, gy, uy, s.xi_sq[c], h);
                    step_prob += p;
                    divergent += usize::from(!finite);
                    let r = if shared {
                        &mut blk.rngs[0]
                    } else {
                        &mut blk.rngs[c]
                    };
                    if finite && r.random::<f64>() < p {
                        x.copy_from_slice(y);
                        gx.copy_from_slice(gy);
                        blk.u[c] = uy;
                        accepted += 1;
                    }
                }
                prob_sum += step_prob;
            }
            s.out = BlockOut {
                accepted,
                divergent,
                prob_sum,
                energy_ok: true,
                grad_ok: true,
                fail: NO_FAIL,
            };
        });
        let (mut accepted, mut divergent, mut prob_sum) = (0usize, 0usize, 0.0);
        for b in &state.blocks {
            accepted += b.out.accepted;
            divergent += b.out.divergent;
            prob_sum += b.out.prob_sum;
        }
        let c = state.chains();
        state.iteration += steps;
        state.accepted += accepted as u64;
        state.proposals += (c * steps) as u64;
        state.divergent += divergent as u64;
        EnsembleInfo {
            accepted,
            divergent,
            mean_accept_prob: if steps == 0 {
                1.0
            } else {
                prob_sum / (c * steps) as f64
            },
        }
    }
}

impl<P: BatchPotential + MaybeSync> Sampler for MalaEnsemble<P> {
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
        self.advance(state, 1, rng)
    }
}
