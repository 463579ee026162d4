//! # klflow — sampling as optimisation over probability measures
//!
//! klflow samples from a density `π ∝ e^{−U}` on ℝᵈ by following (discretised) gradient flows
//! of the KL divergence: Langevin Monte Carlo in the space of points, Stein variational
//! gradient descent in the space of particle systems, Gaussian variational inference in the
//! Bures–Wasserstein space, and score-based diffusion. Every algorithm is checked by tests
//! against the theorem of the paper it comes from, using exact oracles for Gaussian targets.
//!
//! ## Algorithms
//!
//! | algorithm | type | the target must provide | you get back | reference |
//! |---|---|---|---|---|
//! | Unadjusted Langevin (ULA / LMC) | [`langevin::Ula`] | [`Potential`] (energy + gradient) | a chain of points | Roberts & Tweedie 1996; Durmus & Moulines 2017 |
//! | Averaged LMC (continuous time average) | [`langevin::AveragedLmc`] | [`Potential`] (L-smooth, convexity not needed) | one draw per run, with a Fisher-information guarantee | Balasubramanian, Chewi, Erdogdu, Salim, Zhang 2022 |
//! | MALA (+ dual-averaging step, diagonal / dense metric) | [`langevin::Mala`] | [`Potential`] | an exact MCMC chain; acceptance and divergence counts | Roberts & Tweedie 1996; Hoffman & Gelman 2014 |
//! | Underdamped Langevin (exact OU step, BAOAB) | [`langevin::UnderdampedLangevin`] | [`Potential`] | a chain in (x, p) | Cheng et al. 2018; Leimkuhler & Matthews 2013 |
//! | Parallel chains (rayon, bit-identical) | [`run::run_chains`] | any [`Sampler`] | one result per chain | — |
//! | Exact law of ULA on Gaussians | [`oracle::UlaOracle`] | a [`Gaussian`](potential::Gaussian) target | the law after n steps, along the interpolation, the stationary law | — |
//! | Exact law of underdamped Langevin on Gaussians | [`oracle::UnderdampedOracle`] | a Gaussian target | joint (x, p) laws, the stationary law | — |
//! | Forward–backward Gaussian VI (deterministic, stochastic, Hessian-free) | [`vi::FbGvi`] | [`PotentialHessian`], or [`Potential`] with [`vi::SteinHessian`] | a [`Gaussian`](potential::Gaussian) iterate | Diao, Balasubramanian, Chewi, Salim 2023 |
//! | Bures–Wasserstein gradient descent | [`vi::BwGd`] | as FB-GVI | a [`Gaussian`](potential::Gaussian) iterate | Lambert, Chewi, Bach, Bonnabel, Rigollet 2022 |
//! | Wide random networks as Gaussian fields on Sⁿ | [`field::NetworkSpec`], [`field::Nngp`], [`field::GaussianField`], [`field::GpPosterior`] | an architecture (widths, activation, weight law) | sampled networks evaluated in batches, the NNGP kernel, limit-field draws and GP posteriors, one-point / sliced W₁ and a sup-norm proxy | Neal 1996; Williams 1997; Cho & Saul 2009; Balasubramanian, Goldstein, Ross & Salim 2023 |
//! | Stein variational gradient descent (SVGD) | [`stein::Svgd`] | [`Potential`] (gradient) + a [`Kernel`] or a [`kernel::Bandwidth`] rule | the particles; KSD² per step | Liu & Wang 2016; Korba et al. 2020 |
//! | Noisy SVGD (isotropic, kernel-correlated) | [`stein::Svgd`] + [`stein::Noise`] | [`Potential`] (gradient) + a kernel | the particles, without variance collapse | Priser, Bianchi & Salim 2025; Gallego & Insua 2018 |
//! | Kernel Stein discrepancy (U/V) | [`stein::ksd`] | [`Potential`] (gradient) + a [`Kernel`] | KSD² of particles against the target | Liu, Lee & Jordan 2016; Gorham & Mackey 2017 |
//! | Maximum mean discrepancy (unbiased) | [`stein::mmd2_unbiased`] | a [`Kernel`] | MMD² between two samples | Gretton et al. 2012 |
//!
//! ## Quick start
//!
//! ```
//! use klflow::{Sampler, langevin::Ula, potential::Banana, run::{OnlineMoments, run}};
//! use nalgebra::{Const, SVector};
//! use rand::{SeedableRng, rngs::ChaCha8Rng};
//!
//! // A 2-D banana: x₁ ~ N(0, 1), x₂ | x₁ ~ N(x₁²/2, 0.5²).
//! let target = Banana::standard(Const::<2>);
//! let sampler = Ula::new(&target, 0.01)?;
//! let mut rng = ChaCha8Rng::seed_from_u64(2024);
//! let mut state = sampler.init(SVector::zeros(), &mut rng)?;
//! let mut moments = OnlineMoments::with_burn_in(Const::<2>, 2_000);
//! run(&sampler, &mut state, 100_000, &mut rng, &mut moments)?;
//! // E x₂ = 0.5 exactly; ULA's O(h) bias and the Monte Carlo error are far below 0.2.
//! assert!((moments.mean()[1] - target.mean()[1]).abs() < 0.2);
//! # Ok::<(), klflow::Error>(())
//! ```
//!
//! ## Conventions
//!
//! * **Potential.** Targets are given by `U = −log π + const` ([`Potential`]); gradients are
//!   written into caller-owned buffers, so sampler steps allocate nothing.
//! * **Langevin step.** `x ← x − h∇U(x) + √(2h) ξ` (BlackJAX's `h`). TensorFlow Probability's
//!   `UncalibratedLangevin` step size is `ε = 2h`.
//! * **Dimensions.** Every target and algorithm is generic over nalgebra's [`Dim`](nalgebra::Dim):
//!   `Const<N>` (stack-allocated `SVector<f64, N>`) or `Dyn` (`DVector`, any size).
//! * **Randomness.** Every random function takes `rng: &mut R` with `R: Rng + ?Sized` as its last
//!   argument; the library never creates or stores an RNG. A fixed seed gives bit-identical output.
//! * **Errors.** Constructors validate and return [`Result`]; a run that meets a non-finite
//!   energy or gradient returns [`Error::NonFinite`] naming the step — never a NaN sample, never
//!   a panic.
//! * **Diffusion.** Forward process `dX = −X dt + √2 dB` (see [`diffusion`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]
// `!(x > 0.0)` is how validation rejects NaN along with non-positive values.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

#[cfg(feature = "serde")]
pub mod checkpoint;
pub mod diagnostics;
pub mod diffusion;
pub mod dim;
pub mod error;
#[cfg(feature = "export")]
pub mod export;
mod fastmath;
pub mod field;
mod gaussian;
pub mod kernel;
pub mod langevin;
mod linalg;
pub mod oracle;
mod par;
pub mod potential;
pub mod quadrature;
pub mod run;
pub mod sampler;
mod simd;
pub mod stein;
pub mod vi;

pub use diffusion::ScoreModel;
pub use error::{Error, Result};
pub use kernel::Kernel;
pub use potential::{Potential, PotentialHessian};
pub use run::{Observer, run};
pub use sampler::Sampler;

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
