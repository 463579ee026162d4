//! The particle state shared by the diffusion samplers, and the block-parallel step machinery.

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, Dim, OVector, U1};
use rand::rngs::ChaCha8Rng;
use rand::{Rng, SeedableRng};

use crate::dim::{check_len, fill_standard_normal};
use crate::error::{Error, Result, finite_input};
use crate::fastmath::fill_normals;

/// Particles per block. Every step draws one `u64` seed from the caller's RNG; block `b` then
/// draws its noise from `ChaCha8Rng::seed_from_u64(seed)` on stream `b`. The blocks are the
/// same whatever the number of threads, so results are bit-identical with or without the
/// `rayon` feature and for any thread count.
///
/// # Example
///
/// ```
/// use klflow::diffusion::{BLOCK, GaussianScore, OdeScheme, ProbabilityFlow, TimeGrid};
/// use klflow::potential::Gaussian;
/// use nalgebra::Const;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// // Any number of particles: the last block is partial.
/// let data = Gaussian::standard(Const::<2>);
/// let flow = ProbabilityFlow::new(GaussianScore::new(&data), TimeGrid::uniform(1.0, 0.0, 2)?, OdeScheme::Heun);
/// let ys = flow.sample(BLOCK + 1, &mut ChaCha8Rng::seed_from_u64(0))?;
/// assert_eq!((BLOCK, ys.len()), (256, 257));
/// # Ok::<(), klflow::Error>(())
/// ```
pub const BLOCK: usize = 256;

/// `Sync` when the `rayon` feature is on (blocks run on a thread pool), nothing otherwise.
///
/// # Example
///
/// ```
/// use klflow::diffusion::{GaussianScore, MaybeSync};
/// use klflow::potential::Gaussian;
/// use nalgebra::Const;
///
/// // The exact scores satisfy the bound the samplers put on score models.
/// fn usable<S: MaybeSync>(_: &S) -> bool { true }
/// assert!(usable(&GaussianScore::new(&Gaussian::standard(Const::<2>))));
/// ```
#[cfg(feature = "rayon")]
pub trait MaybeSync: Sync {}
#[cfg(feature = "rayon")]
impl<T: Sync + ?Sized> MaybeSync for T {}
/// `Sync` when the `rayon` feature is on (blocks run on a thread pool), nothing otherwise.
///
/// # Example
///
/// ```
/// use klflow::diffusion::{GaussianScore, MaybeSync};
/// use klflow::potential::Gaussian;
/// use nalgebra::Const;
///
/// // The exact scores satisfy the bound the samplers put on score models.
/// fn usable<S: MaybeSync>(_: &S) -> bool { true }
/// assert!(usable(&GaussianScore::new(&Gaussian::standard(Const::<2>))));
/// ```
#[cfg(not(feature = "rayon"))]
pub trait MaybeSync {}
#[cfg(not(feature = "rayon"))]
impl<T: ?Sized> MaybeSync for T {}

/// `Send` when the `rayon` feature is on, nothing otherwise.
///
/// # Example
///
/// ```
/// use klflow::diffusion::MaybeSend;
/// use nalgebra::Vector2;
///
/// // Particles satisfy the bound the samplers put on them.
/// fn usable<T: MaybeSend>(_: &T) -> bool { true }
/// assert!(usable(&Vector2::new(1.0, 2.0)));
/// ```
#[cfg(feature = "rayon")]
pub trait MaybeSend: Send {}
#[cfg(feature = "rayon")]
impl<T: Send + ?Sized> MaybeSend for T {}
/// `Send` when the `rayon` feature is on, nothing otherwise.
///
/// # Example
///
/// ```
/// use klflow::diffusion::MaybeSend;
/// use nalgebra::Vector2;
///
/// // Particles satisfy the bound the samplers put on them.
/// fn usable<T: MaybeSend>(_: &T) -> bool { true }
/// assert!(usable(&Vector2::new(1.0, 2.0)));
/// ```
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
///
/// # Example
///
/// ```
/// use klflow::Sampler;
/// use klflow::diffusion::{GaussianScore, SdeScheme, Ddpm, TimeGrid};
/// use klflow::potential::Gaussian;
/// use nalgebra::Const;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let data = Gaussian::standard(Const::<2>);
/// let ddpm = Ddpm::new(GaussianScore::new(&data), TimeGrid::uniform(4.0, 0.01, 8)?, SdeScheme::EulerMaruyama);
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut state = ddpm.init(100.into(), &mut rng)?;
/// assert_eq!((state.steps_done(), state.time(), state.particles().len()), (0, 4.0, 100));
/// while !ddpm.is_finished(&state) {
///     ddpm.step(&mut state, &mut rng)?;
/// }
/// assert_eq!((state.steps_done(), state.time()), (8, 0.01));
/// # Ok::<(), klflow::Error>(())
/// ```
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
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::Sampler;
    /// use klflow::diffusion::{GaussianScore, OdeScheme, ProbabilityFlow, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::{Const, Vector2};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// // For data N(0, I) every q_t is N(0, I): the probability-flow field y + s(t, y) vanishes and
    /// // the particles do not move.
    /// let data = Gaussian::standard(Const::<2>);
    /// let flow = ProbabilityFlow::new(GaussianScore::new(&data), TimeGrid::uniform(3.0, 0.0, 5)?, OdeScheme::ExponentialIntegrator);
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let start = vec![Vector2::new(1.0, -2.0), Vector2::new(0.5, 0.0)];
    /// let mut state = flow.init(start.clone().into(), &mut rng)?;
    /// flow.step(&mut state, &mut rng)?;
    /// for (y, x) in state.particles().iter().zip(&start) {
    ///     assert!((y - x).norm() < 1e-12);
    /// }
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn particles(&self) -> &[OVector<f64, D>] {
        &self.particles
    }

    /// The particles, consuming the state.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::Sampler;
    /// use klflow::diffusion::{GaussianScore, SdeScheme, Ddpm, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Const;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let data = Gaussian::standard(Const::<3>);
    /// let ddpm = Ddpm::new(GaussianScore::new(&data), TimeGrid::uniform(4.0, 0.0, 4)?, SdeScheme::ExponentialIntegrator);
    /// let state = ddpm.init(10.into(), &mut ChaCha8Rng::seed_from_u64(0))?;
    /// let first = state.particles()[0];
    /// let ys = state.into_particles();
    /// assert_eq!((ys.len(), ys[0]), (10, first));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn into_particles(self) -> Vec<OVector<f64, D>> {
        self.particles
    }

    /// The number of completed steps.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::Sampler;
    /// use klflow::diffusion::{GaussianScore, SdeScheme, Ddpm, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Const;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let data = Gaussian::standard(Const::<1>);
    /// let ddpm = Ddpm::new(GaussianScore::new(&data), TimeGrid::uniform(4.0, 0.0, 4)?, SdeScheme::ExponentialIntegrator);
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = ddpm.init(10.into(), &mut rng)?;
    /// ddpm.step(&mut state, &mut rng)?;
    /// ddpm.step(&mut state, &mut rng)?;
    /// assert_eq!(state.steps_done(), 2);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn steps_done(&self) -> usize {
        self.index
    }

    /// The current forward time (`T` after `init`, `δ` when finished).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::Sampler;
    /// use klflow::diffusion::{GaussianScore, SdeScheme, Ddpm, TimeGrid};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Const;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let data = Gaussian::standard(Const::<1>);
    /// let grid = TimeGrid::geometric(4.0, 0.01, 4)?;
    /// let ddpm = Ddpm::new(GaussianScore::new(&data), grid.clone(), SdeScheme::ExponentialIntegrator);
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = ddpm.init(10.into(), &mut rng)?;
    /// ddpm.step(&mut state, &mut rng)?;
    /// assert_eq!(state.time(), grid.times()[1]);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn time(&self) -> f64 {
        self.time
    }
}

/// What one diffusion step reports.
///
/// # Example
///
/// ```
/// use klflow::Sampler;
/// use klflow::diffusion::{GaussianScore, OdeScheme, ProbabilityFlow, TimeGrid};
/// use klflow::potential::Gaussian;
/// use nalgebra::Const;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let data = Gaussian::standard(Const::<1>);
/// let flow = ProbabilityFlow::new(GaussianScore::new(&data), TimeGrid::uniform(2.0, 0.0, 4)?, OdeScheme::Heun);
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut state = flow.init(5.into(), &mut rng)?;
/// let info = flow.step(&mut state, &mut rng)?;
/// assert_eq!((info.time, info.score_evaluations), (1.5, 2));
/// # Ok::<(), klflow::Error>(())
/// ```
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

/// Normals drawn per bulk refill in [`add_noise`].
const NOISE_BUF: usize = 1024;

/// Adds `c·z` to every particle, `z` fresh standard normals, elementwise `x + c * z`, and
/// returns whether every result is finite (checked in the same pass). The normals come from
/// `rng` in bulk ([`fill_normals`], refills of `NOISE_BUF`: as many whole particles as fit, or
/// consecutive pieces of one particle when `d > NOISE_BUF`), particle after particle, so the
/// draws depend only on the block's stream.
pub(crate) fn add_noise<D: Dim>(xs: &mut [OVector<f64, D>], c: f64, rng: &mut ChaCha8Rng) -> bool
where
    DefaultAllocator: Allocator<D>,
{
    let Some(d) = xs.first().map(|x| x.len()) else {
        return true;
    };
    // Not short-circuiting, so it vectorises.
    let mut ok = true;
    let mut z = [0.0f64; NOISE_BUF];
    if d == 0 {
    } else if d <= NOISE_BUF {
        let g = NOISE_BUF / d;
        for xc in xs.chunks_mut(g) {
            let z = &mut z[..xc.len() * d];
            fill_normals(rng, z);
            for (x, zc) in xc.iter_mut().zip(z.chunks_exact(d)) {
                for (xv, zv) in x.as_mut_slice().iter_mut().zip(zc) {
                    *xv += c * zv;
                    ok &= xv.is_finite();
                }
            }
        }
    } else {
        for x in xs.iter_mut() {
            for xc in x.as_mut_slice().chunks_mut(NOISE_BUF) {
                let z = &mut z[..xc.len()];
                fill_normals(rng, z);
                for (xv, zv) in xc.iter_mut().zip(z.iter()) {
                    *xv += c * zv;
                    ok &= xv.is_finite();
                }
            }
        }
    }
    ok
}

/// Whether every coordinate of every particle is finite (not short-circuiting, so it
/// vectorises).
pub(crate) fn all_finite<D: Dim>(xs: &[OVector<f64, D>]) -> bool
where
    DefaultAllocator: Allocator<D>,
{
    xs.iter().fold(true, |ok, v| {
        v.as_slice().iter().fold(ok, |ok, e| ok & e.is_finite())
    })
}

/// Runs `seeds.len()` consecutive steps in one parallel region: every block advances through
/// all of them, step `j` calling `f(j, block, r)` with `r` the stream `(seeds[j], b)`, exactly
/// the stream `Sampler::step` gives block `b` in that step. A block stops at its own first non-finite step; the
/// error names the earliest such step over all blocks (`first + j`, `first` the 1-based number
/// of step 0).
pub(crate) fn run_blocks_multi<D, F>(
    state: &mut DiffusionState<D>,
    first: usize,
    seeds: &[u64],
    f: F,
) -> Result<()>
where
    D: Dim,
    DefaultAllocator: Allocator<D>,
    OVector<f64, D>: MaybeSend,
    F: Fn(usize, Block<'_, D>, &mut ChaCha8Rng) -> bool + MaybeSync,
{
    let job = |(b, ((x, s), aux)): BlockItem<'_, D>| {
        for (j, &seed) in seeds.iter().enumerate() {
            let mut r = ChaCha8Rng::seed_from_u64(seed);
            r.set_stream(b as u64);
            let block = Block {
                x: &mut *x,
                s: &mut *s,
                aux: &mut *aux,
            };
            if !f(j, block, &mut r) {
                return j;
            }
        }
        usize::MAX
    };
    let DiffusionState {
        particles,
        scores,
        aux,
        ..
    } = state;
    #[cfg(feature = "rayon")]
    let failed = {
        use rayon::prelude::*;
        particles
            .par_chunks_mut(BLOCK)
            .zip(scores.par_chunks_mut(BLOCK))
            .zip(aux.par_chunks_mut(BLOCK))
            .enumerate()
            // One block per task, so that a thread slowed down (by the host, say) holds at
            // most one block while the other steals the rest; the result does not depend on
            // how the blocks are split.
            .with_max_len(1)
            .map(job)
            .min()
            .unwrap_or(usize::MAX)
    };
    #[cfg(not(feature = "rayon"))]
    let failed = particles
        .chunks_mut(BLOCK)
        .zip(scores.chunks_mut(BLOCK))
        .zip(aux.chunks_mut(BLOCK))
        .enumerate()
        .map(job)
        .min()
        .unwrap_or(usize::MAX);
    if failed == usize::MAX {
        Ok(())
    } else {
        Err(Error::NonFinite {
            step: first + failed,
            quantity: "particles",
        })
    }
}
