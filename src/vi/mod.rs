//! Gaussian variational inference in the Bures–Wasserstein space.
//!
//! Gaussian VI looks for the Gaussian `p = N(m, Σ)` closest to the target `π ∝ e^{−U}` in KL,
//! i.e. it minimises `F(p) = E_p U − H(p)` (`= KL(p‖π) − log Z`) over Gaussians. With the
//! 2-Wasserstein metric the Gaussians form the Bures–Wasserstein manifold, where
//! `F = potential energy (smooth) + negative entropy (non-smooth)`. Two algorithms ship:
//!
//! | algorithm | type | step |
//! |---|---|---|
//! | forward–backward GVI (Diao, Balasubramanian, Chewi, Salim 2023) | [`FbGvi`] | gradient step on `E_p U`, then the exact JKO (proximal) step of the entropy |
//! | BW gradient descent (Lambert, Chewi, Bach, Bonnabel, Rigollet 2022) | [`BwGd`] | gradient step on the whole of `F` |
//!
//! Both take the same arguments and implement [`Sampler`](crate::Sampler) with the same state
//! ([`GviState`]) and per-step report ([`GviInfo`]), so comparing them is a one-word change.
//! The expectations `E_p∇U`, `E_p∇²U` (and `E_p U` for the reported objective) are computed by
//! the rule chosen in [`Expectation`]: exact for quadratic potentials, Gauss–Hermite
//! ([`GaussHermite`]) or a degree-3 cubature (deterministic), or Monte Carlo with a batch size
//! (the *stochastic* algorithms). The Hessian comes from the target
//! ([`PotentialHessian`], marker [`ExactHessian`]) or, Hessian-free,
//! from gradients only through Stein's identity (marker [`SteinHessian`]).
//!
//! The math, the rates and the recipe for the step size are in `docs/gvi.md`.
//!
//! # Example
//!
//! ```
//! use klflow::{Sampler, potential::Gaussian, vi::{BwGd, Expectation, FbGvi}};
//! use nalgebra::{SMatrix, SVector};
//! use rand::{SeedableRng, rngs::ChaCha8Rng};
//!
//! let cov = SMatrix::<f64, 2, 2>::new(1.0, 0.6, 0.6, 2.0);
//! let target = Gaussian::new(SVector::<f64, 2>::new(1.0, -1.0), cov)?;
//! let h = 0.5 / target.covariance_eigen_range().0.recip(); // h = 0.5/L
//! let start = Gaussian::standard(nalgebra::Const::<2>);
//! let mut rng = ChaCha8Rng::seed_from_u64(0);
//!
//! let fb = FbGvi::new(&target, h, Expectation::Quadratic)?;
//! let bw = BwGd::new(&target, h, Expectation::Quadratic)?;
//! let (mut s_fb, mut s_bw) = (fb.init(start.clone(), &mut rng)?, bw.init(start, &mut rng)?);
//! for _ in 0..300 {
//!     fb.step(&mut s_fb, &mut rng)?;
//!     bw.step(&mut s_bw, &mut rng)?;
//! }
//! assert!(s_fb.gaussian()?.w2(&target)? < 1e-6);
//! assert!(s_bw.gaussian()?.w2(&target)? < 1e-3);
//! # Ok::<(), klflow::Error>(())
//! ```

mod bw_gd;
mod fb_gvi;
mod state;

pub use crate::quadrature::GaussHermite;
pub use bw_gd::BwGd;
pub use fb_gvi::{FbGvi, entropy_jko, entropy_jko_eigenvalue};
pub use state::{GviInfo, GviState};

use nalgebra::{DefaultAllocator, OMatrix, OVector};

use crate::dim::Alloc;
use crate::error::{Error, Result};
use crate::potential::{Potential, PotentialHessian};

/// The largest tensor Gauss–Hermite grid accepted (points per expectation).
const MAX_GRID_POINTS: usize = 1 << 20;

/// How the expectations `E_p U`, `E_p∇U`, `E_p∇²U` under the current Gaussian `p = N(m, Σ)`
/// are computed. Points are `x = m + Bz` with `Σ = BBᵀ`.
///
/// # Example
///
/// ```
/// use klflow::{potential::Gaussian, vi::{Expectation, FbGvi}};
///
/// let target = Gaussian::standard(nalgebra::Const::<3>);
/// // 8³ = 512 quadrature points per step: fine in 3-D.
/// assert!(FbGvi::new(&target, 0.5, Expectation::GaussHermite { nodes: 8 }).is_ok());
/// // The Stein (Hessian-free) estimator needs spread-out points, not just the mean.
/// assert!(FbGvi::hessian_free(&target, 0.5, Expectation::Quadratic).is_err());
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Expectation {
    /// Evaluate at the mean: `E∇U = ∇U(m)`, `E∇²U = ∇²U(m)`, `E U = U(m) + ½tr(∇²U(m)Σ)`.
    /// Exact when `U` is quadratic; a Laplace-type approximation otherwise. One gradient and one
    /// Hessian per step. Requires [`ExactHessian`].
    Quadratic,
    /// The tensor Gauss–Hermite rule with `nodes` points per axis (`nodesᵈ` points, at most
    /// 2²⁰): exact for polynomials of degree ≤ 2·nodes − 1 in each coordinate. Small `d`.
    GaussHermite {
        /// Nodes per axis (1 to 200).
        nodes: usize,
    },
    /// The degree-3 spherical cubature rule: the `2d` points `m ± √d·Bᵢ` with equal weights.
    /// Exact for polynomials of degree ≤ 3; deterministic at any `d`.
    Cubature,
    /// Monte Carlo: `batch` fresh draws from `p` per step (the stochastic algorithms).
    MonteCarlo {
        /// Draws per step (≥ 1).
        batch: usize,
    },
}

/// The expectation rule, resolved for a dimension (nodes computed once, at construction).
#[derive(Clone, Debug)]
pub(crate) enum Rule {
    Quadratic,
    Grid(GaussHermite),
    Cubature,
    MonteCarlo(usize),
}

impl Rule {
    pub(crate) fn new(e: Expectation, d: usize, hessian_free: bool) -> Result<Self> {
        match e {
            Expectation::Quadratic if hessian_free => Err(Error::InvalidParameter {
                name: "expectation",
                value: 0.0,
                reason: "the Stein (Hessian-free) estimator needs Gauss-Hermite, cubature or \
                         Monte Carlo points: at the mean alone it is zero",
            }),
            Expectation::Quadratic => Ok(Rule::Quadratic),
            Expectation::GaussHermite { nodes } => {
                let gh = GaussHermite::new(nodes)?;
                let points = (nodes as f64).powi(d as i32);
                if points > MAX_GRID_POINTS as f64 {
                    return Err(Error::InvalidParameter {
                        name: "nodes",
                        value: nodes as f64,
                        reason: "the tensor Gauss-Hermite grid nodes^d exceeds 2^20 points in \
                                 this dimension; use Cubature or MonteCarlo",
                    });
                }
                Ok(Rule::Grid(gh))
            }
            Expectation::Cubature => Ok(Rule::Cubature),
            Expectation::MonteCarlo { batch } => {
                if batch == 0 {
                    Err(Error::InvalidParameter {
                        name: "batch",
                        value: 0.0,
                        reason: "Monte Carlo needs at least one draw per step",
                    })
                } else {
                    Ok(Rule::MonteCarlo(batch))
                }
            }
        }
    }
}

/// Checks `0 < h ≤ 1/L` when the potential knows its smoothness `L`.
pub(crate) fn check_step<P: Potential>(potential: &P, h: f64) -> Result<f64> {
    crate::error::positive("step_size", h)?;
    if let Some(l) = potential.smoothness()
        && h * l > 1.0 + 1e-12
    {
        return Err(Error::InvalidParameter {
            name: "step_size",
            value: h,
            reason: "must be at most 1/L (L = the potential's smoothness): beyond it \
                     I - hE[Hessian] can change sign and the convergence guarantees are lost",
        });
    }
    Ok(h)
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ExactHessian {}
    impl Sealed for super::SteinHessian {}
}

/// Where the expected Hessian `E_p∇²U` comes from: [`ExactHessian`] or [`SteinHessian`].
///
/// Sealed: the two markers are the only implementations. The methods are an implementation
/// detail of the GVI step.
///
/// # Example
///
/// ```
/// use klflow::potential::Gaussian;
/// use klflow::vi::{Curvature, Expectation, FbGvi, SteinHessian};
///
/// // code generic over the source of the expected Hessian
/// fn describe<P: klflow::Potential, C: Curvature<P>>(gvi: &FbGvi<P, C>) -> f64 {
///     gvi.step_size()
/// }
/// let target = Gaussian::standard(nalgebra::Const::<2>);
/// let stein: FbGvi<_, SteinHessian> = FbGvi::hessian_free(&target, 0.5, Expectation::Cubature)?;
/// assert_eq!(describe(&stein), 0.5);
/// assert_eq!(describe(&FbGvi::new(&target, 0.25, Expectation::Quadratic)?), 0.25);
/// # Ok::<(), klflow::Error>(())
/// ```
pub trait Curvature<P: Potential>: sealed::Sealed {
    /// `true` if the accumulator is the cross moment `E[z∇Uᵀ]` (Stein), which a Monte Carlo
    /// batch replaces by the unbiased sample cross-covariance.
    #[doc(hidden)]
    const CROSS_MOMENT: bool;

    /// Adds `weight ×` this point's contribution to the accumulator `acc`.
    #[doc(hidden)]
    fn accumulate(
        potential: &P,
        x: &OVector<f64, P::Dim>,
        z: &OVector<f64, P::Dim>,
        grad: &OVector<f64, P::Dim>,
        weight: f64,
        scratch: &mut OMatrix<f64, P::Dim, P::Dim>,
        acc: &mut OMatrix<f64, P::Dim, P::Dim>,
    ) where
        DefaultAllocator: Alloc<P::Dim>;

    /// Turns the accumulator into `E∇²U` (symmetric), given `Σ = Q diag(s) Qᵀ`.
    #[doc(hidden)]
    fn finish(
        acc: &mut OMatrix<f64, P::Dim, P::Dim>,
        q: &OMatrix<f64, P::Dim, P::Dim>,
        s: &OVector<f64, P::Dim>,
        scratch: &mut OMatrix<f64, P::Dim, P::Dim>,
        scratch2: &mut OMatrix<f64, P::Dim, P::Dim>,
    ) where
        DefaultAllocator: Alloc<P::Dim>;
}

/// Marker: the expected Hessian averages the target's own Hessian
/// ([`PotentialHessian`]) over the expectation rule.
///
/// # Example
///
/// ```
/// use klflow::potential::Gaussian;
/// use klflow::vi::{ExactHessian, Expectation, FbGvi};
///
/// // the default curvature of FbGvi::new (the target must implement PotentialHessian)
/// let target = Gaussian::standard(nalgebra::Const::<2>);
/// let gvi: FbGvi<_, ExactHessian> = FbGvi::new(&target, 0.5, Expectation::Quadratic)?;
/// assert_eq!(gvi.step_size(), 0.5);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExactHessian;

/// Marker: the Hessian-free estimator from Stein's identity,
/// `E∇²U = Σ⁻¹E[(X − m)∇U(X)ᵀ] = B⁻ᵀE[z∇U(m + Bz)ᵀ]` (`Σ = BBᵀ`), symmetrised. Gradients only.
///
/// Since `E z = 0`, `E[z∇Uᵀ] = Cov(z, ∇U)`. With a Monte Carlo batch of `b ≥ 2` draws the
/// estimator uses the unbiased sample cross-covariance
/// `(b − 1)⁻¹ Σᵢ (zᵢ − z̄)(∇U(xᵢ) − ḡ)ᵀ`: far from the optimum `∇U` has a large common part
/// `ḡ`, which the raw moment `b⁻¹Σ zᵢ∇U(xᵢ)ᵀ` turns into O(‖ḡ‖/√b) noise and the centred form
/// removes. The variance still grows with `d/b` and the condition number: use `b ≳ 2d`, or a
/// deterministic rule.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, potential::Gaussian, vi::{Expectation, FbGvi, SteinHessian}};
/// use nalgebra::{Matrix2, Vector2};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// // on a Gaussian target the cubature Stein estimate is exact: the target stays a fixed point
/// let target = Gaussian::new(Vector2::zeros(), Matrix2::new(2.0, 0.5, 0.5, 1.0))?;
/// let h = target.covariance_eigen_range().0;
/// let gvi: FbGvi<_, SteinHessian> = FbGvi::hessian_free(&target, h, Expectation::Cubature)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut state = gvi.init(target.clone(), &mut rng)?;
/// gvi.step(&mut state, &mut rng)?;
/// assert!(state.gaussian()?.kl(&target)? < 1e-12);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SteinHessian;

impl<P: PotentialHessian> Curvature<P> for ExactHessian {
    const CROSS_MOMENT: bool = false;

    fn accumulate(
        potential: &P,
        x: &OVector<f64, P::Dim>,
        _z: &OVector<f64, P::Dim>,
        _grad: &OVector<f64, P::Dim>,
        weight: f64,
        scratch: &mut OMatrix<f64, P::Dim, P::Dim>,
        acc: &mut OMatrix<f64, P::Dim, P::Dim>,
    ) where
        DefaultAllocator: Alloc<P::Dim>,
    {
        potential.hessian(x, scratch);
        acc.zip_apply(scratch, |a, b| *a += weight * b);
    }

    fn finish(
        acc: &mut OMatrix<f64, P::Dim, P::Dim>,
        _q: &OMatrix<f64, P::Dim, P::Dim>,
        _s: &OVector<f64, P::Dim>,
        _scratch: &mut OMatrix<f64, P::Dim, P::Dim>,
        _scratch2: &mut OMatrix<f64, P::Dim, P::Dim>,
    ) where
        DefaultAllocator: Alloc<P::Dim>,
    {
        symmetrize_in_place(acc);
    }
}

impl<P: Potential> Curvature<P> for SteinHessian {
    const CROSS_MOMENT: bool = true;

    fn accumulate(
        _potential: &P,
        _x: &OVector<f64, P::Dim>,
        z: &OVector<f64, P::Dim>,
        grad: &OVector<f64, P::Dim>,
        weight: f64,
        _scratch: &mut OMatrix<f64, P::Dim, P::Dim>,
        acc: &mut OMatrix<f64, P::Dim, P::Dim>,
    ) where
        DefaultAllocator: Alloc<P::Dim>,
    {
        // acc += weight · z ∇Uᵀ, row by row so that zero coordinates cost nothing.
        for (j, &zj) in z.iter().enumerate() {
            if zj != 0.0 {
                let c = weight * zj;
                for (k, gk) in grad.iter().enumerate() {
                    acc[(j, k)] += c * gk;
                }
            }
        }
    }

    fn finish(
        acc: &mut OMatrix<f64, P::Dim, P::Dim>,
        q: &OMatrix<f64, P::Dim, P::Dim>,
        s: &OVector<f64, P::Dim>,
        scratch: &mut OMatrix<f64, P::Dim, P::Dim>,
        scratch2: &mut OMatrix<f64, P::Dim, P::Dim>,
    ) where
        DefaultAllocator: Alloc<P::Dim>,
    {
        // B⁻ᵀ = Q diag(s^{-1/2}): scale the columns of Q into the scratch, then multiply.
        scratch.copy_from(q);
        for (j, sj) in s.iter().enumerate() {
            scratch.column_mut(j).scale_mut(1.0 / sj.sqrt());
        }
        scratch2.gemm(1.0, scratch, acc, 0.0);
        acc.copy_from(scratch2);
        symmetrize_in_place(acc);
    }
}

/// `a ← (a + aᵀ)/2` without allocating.
pub(crate) fn symmetrize_in_place<D: nalgebra::Dim>(a: &mut OMatrix<f64, D, D>)
where
    DefaultAllocator: Alloc<D>,
{
    let n = a.nrows();
    for j in 0..n {
        for i in 0..j {
            let v = 0.5 * (a[(i, j)] + a[(j, i)]);
            a[(i, j)] = v;
            a[(j, i)] = v;
        }
    }
}
