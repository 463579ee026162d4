//! The particle state shared by the diffusion samplers, and the block-parallel step machinery.

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, Dim, OVector, U1};
use rand::rngs::ChaCha8Rng;
use rand::{Rng, RngExt, SeedableRng};

use crate::dim::{check_len, fill_standard_normal};
use crate::error::{Error, Result, finite_input};
use crate::fastmath::fill_normals;

/// Particles per block. Every step draws one `u64` seed from the caller's RNG; block `b` then
/// draws its noise from `ChaCha8Rng::seed_from_u64(seed)` on stream `b`. The blocks are the
/// same whatever the number of threads, so results are bit-identical with or without the
/// `rayon` feature and for any thread count.
pub const BLOCK: usize = 256;

/// `Sync` when the `rayon` feature is on (blocks run on a thread pool), nothing otherwise.
#[cfg(feature = "rayon")]
pub trait MaybeSync: Sync {}
#[cfg(feature = "rayon")]
impl<T: Sync + ?Sized> MaybeSync for T {}
/// `Sync` when the `rayon` feature is on (blocks run on a thread pool), nothing otherwise.
#[cfg(not(feature = "rayon"))]
pub trait MaybeSync {}
#[cfg(not(feature = "rayon"))]
impl<T: ?Sized> MaybeSync for T {}

/// `Send` when the `rayon` feature is on, nothing otherwise.
#[cfg(feature = "rayon")]
pub trait MaybeSend: Send {}
#[cfg(feature = "rayon")]
impl<T: Send + ?Sized> MaybeSend for T {}
/// `Send` when the `rayon` feature is on, nothing otherwise.
#[cfg(not(feature = "rayon"))]
pub trait MaybeSend {}
#[cfg(not(feature = "rayon"))]
impl<T: ?Sized> MaybeSend for T {}

/// How a diffusion sampler starts at time `T`.
///
/// # Example
///
/// ```
/// use klflow::diffusion::DiffusionInit;
/// use nalgebra::Vector2;
///
/// let a: DiffusionInit<nalgebra::Const<2>> = 100.into(); // 100 draws from N(0, I)
/// let b = DiffusionInit::from(vec![Vector2::new(0.0, 1.0)]); // given particles (e.g. from q_T)
/// assert!(matches!((a, b), (DiffusionInit::Samples(100), DiffusionInit::Particles(_))));
/// ```
#[derive(Clone, Debug)]
pub enum DiffusionInit<D: Dim>
where
    DefaultAllocator: Allocator<D>,
{
    /// This many independent draws from `N(0, I)` (the usual start, `≈ q_T` for large `T`).
    Samples(usize),
    /// The given particles (to start from the exact `q_T` when isolating discretisation error).
    Particles(Vec<OVector<f64, D>>),
}

impl<D: Dim> From<usize> for DiffusionInit<D>
where
    DefaultAllocator: Allocator<D>,
{
    fn from(n: usize) -> Self {
        Self::Samples(n)
    }
}

impl<D: Dim> From<Vec<OVector<f64, D>>> for DiffusionInit<D>
where
    DefaultAllocator: Allocator<D>,
{
    fn from(p: Vec<OVector<f64, D>>) -> Self {
        Self::Particles(p)
    }
}

/// The state of a diffusion sampler: the particles (a `Vec` of points), two scratch buffers of
/// the same shape (scores, and Heun's predictor or the corrector's momentum), the number of
/// completed steps and the current forward time.
///
/// Particles are stored as `Vec<OVector<f64, D>>`: for `D = Const<N>` this is exactly a
/// contiguous `N × n` column-major array; for `Dyn` each particle is one contiguous vector. It
/// keeps the per-point [`ScoreModel`](crate::ScoreModel) API free of views and copies, and
/// splits into blocks with `chunks_mut`.
#[derive(Clone, Debug)]
pub struct DiffusionState<D: Dim>
where
    DefaultAllocator: Allocator<D>,
{
    pub(crate) particles: Vec<OVector<f64, D>>,
    pub(crate) scores: Vec<OVector<f64, D>>,
    pub(crate) aux: Vec<OVector<f64, D>>,
    pub(crate) index: usize,
    pub(crate) time: f64,
}

impl<D: Dim> DiffusionState<D>
where
    DefaultAllocator: Allocator<D>,
{
    pub(crate) fn new<R: Rng + ?Sized>(
        init: DiffusionInit<D>,
        dim: D,
        horizon: f64,
        rng: &mut R,
    ) -> Result<Self> {
        let particles = match init {
            DiffusionInit::Samples(n) => {
                if n == 0 {
                    return Err(Error::Empty { name: "init" });
                }
                (0..n)
                    .map(|_| {
                        let mut x = OVector::<f64, D>::zeros_generic(dim, U1);
                        fill_standard_normal(&mut x, rng);
                        x
                    })
                    .collect()
            }
            DiffusionInit::Particles(p) => {
                if p.is_empty() {
                    return Err(Error::Empty { name: "init" });
                }
                for x in &p {
                    check_len("init", dim, x)?;
                    finite_input("init", x.as_slice())?;
                }
                p
            }
        };
        let scores = particles.clone();
        let aux = particles.clone();
        Ok(Self {
            particles,
            scores,
            aux,
            index: 0,
            time: horizon,
        })
    }

    /// The particles.
    pub fn particles(&self) -> &[OVector<f64, D>] {
        &self.particles
    }

    /// The particles, consuming the state.
    pub fn into_particles(self) -> Vec<OVector<f64, D>> {
        self.particles
    }

    /// The number of completed steps.
    pub fn steps_done(&self) -> usize {
        self.index
    }

    /// The current forward time (`T` after `init`, `δ` when finished).
    pub fn time(&self) -> f64 {
        self.time
    }
}

/// What one diffusion step reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiffusionInfo {
    /// The forward time reached by the step.
    pub time: f64,
    /// The number of score evaluations per particle in the step.
    pub score_evaluations: usize,
}

/// One block of the state: particles, scores and the auxiliary buffer.
pub(crate) struct Block<'a, D: Dim>
where
    DefaultAllocator: Allocator<D>,
{
    pub x: &'a mut [OVector<f64, D>],
    pub s: &'a mut [OVector<f64, D>],
    pub aux: &'a mut [OVector<f64, D>],
}

/// A block's slice of one buffer.
type Chunk<'a, D> = &'a mut [OVector<f64, D>];
/// What the zipped, enumerated chunk iterators yield.
type BlockItem<'a, D> = (usize, ((Chunk<'a, D>, Chunk<'a, D>), Chunk<'a, D>));

/// Normals drawn per bulk refill in [`with_noise`].
const NOISE_BUF: usize = 1024;

/// Calls `f(x, s, z)` on every particle `x` with its score `s` and fresh standard normals `z`
/// (equal-length slices; for `d > NOISE_BUF` on consecutive pieces of the particle, so `f` must
/// act elementwise). The normals come from `rng` in bulk ([`fill_normals`]), particle after
/// particle, so the draws depend only on the block's stream.
pub(crate) fn with_noise<D: Dim>(
    xs: &mut [OVector<f64, D>],
    ss: &[OVector<f64, D>],
    rng: &mut ChaCha8Rng,
    mut f: impl FnMut(&mut [f64], &[f64], &[f64]),
) where
    DefaultAllocator: Allocator<D>,
{
    let Some(d) = xs.first().map(|x| x.len()) else {
        return;
    };
    let mut z = [0.0f64; NOISE_BUF];
    if d == 0 {
    } else if d <= NOISE_BUF {
        let g = NOISE_BUF / d;
        for (xc, sc) in xs.chunks_mut(g).zip(ss.chunks(g)) {
            let z = &mut z[..xc.len() * d];
            fill_normals(rng, z);
            for ((x, s), zc) in xc.iter_mut().zip(sc).zip(z.chunks_exact(d)) {
                f(x.as_mut_slice(), s.as_slice(), zc);
            }
        }
    } else {
        for (x, s) in xs.iter_mut().zip(ss) {
            let pieces = x.as_mut_slice().chunks_mut(NOISE_BUF);
            for (xc, sc) in pieces.zip(s.as_slice().chunks(NOISE_BUF)) {
                let z = &mut z[..xc.len()];
                fill_normals(rng, z);
                f(xc, sc, z);
            }
        }
    }
}

/// Runs `f` on every block with its own RNG stream, in parallel with the `rayon` feature, and
/// returns `NonFinite` if a particle is not finite afterwards.
pub(crate) fn run_blocks<D, R, F>(
    state: &mut DiffusionState<D>,
    step: usize,
    rng: &mut R,
    f: F,
) -> Result<()>
where
    D: Dim,
    DefaultAllocator: Allocator<D>,
    OVector<f64, D>: MaybeSend,
    R: Rng + ?Sized,
    F: Fn(Block<'_, D>, &mut ChaCha8Rng) + MaybeSync,
{
    let seed: u64 = rng.random();
    let job = |(b, ((x, s), aux)): BlockItem<'_, D>| {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream(b as u64);
        f(Block { x: &mut *x, s, aux }, &mut r);
        // Not short-circuiting, so it vectorises.
        x.iter().fold(true, |ok, v| {
            v.as_slice().iter().fold(ok, |ok, e| ok & e.is_finite())
        })
    };
    let DiffusionState {
        particles,
        scores,
        aux,
        ..
    } = state;
    #[cfg(feature = "rayon")]
    let ok = {
        use rayon::prelude::*;
        particles
            .par_chunks_mut(BLOCK)
            .zip(scores.par_chunks_mut(BLOCK))
            .zip(aux.par_chunks_mut(BLOCK))
            .enumerate()
            .map(job)
            .reduce(|| true, |a, b| a & b)
    };
    #[cfg(not(feature = "rayon"))]
    let ok = particles
        .chunks_mut(BLOCK)
        .zip(scores.chunks_mut(BLOCK))
        .zip(aux.chunks_mut(BLOCK))
        .enumerate()
        .map(job)
        .fold(true, |a, b| a & b);
    if ok {
        Ok(())
    } else {
        Err(Error::NonFinite {
            step,
            quantity: "particles",
        })
    }
}
