//! Stein methods: SVGD, noisy SVGD, the kernel Stein discrepancy, and MMD.
//!
//! | item | what |
//! |---|---|
//! | [`Svgd`] | Stein variational gradient descent on the [`Sampler`](crate::Sampler) trait: step schedules, AdaGrad, noise, kernel re-fitting |
//! | [`Noise`] | noisy SVGD: isotropic `√(2γ/n)ξ`, kernel-correlated `√(2γ/n)K^{1/2}Ξ`, user scale |
//! | [`ksd`] | kernel Stein discrepancy (U- and V-statistics) of particles against a target |
//! | [`mmd2_unbiased`] | unbiased MMD² between two samples |
//! | [`stein_direction`] | the SVGD direction and KSD² of given particles and scores |
//!
//! **The pair engine.** All O(n²d) sums run in one fused pass per step over tiles of 64 rows ×
//! 256 columns: squared distance → kernel value and derivatives → the driving sum `Σ_j k s_j`,
//! the repulsive sum, and the KSD terms, with memory O(nd) — no n × n matrix, so n = 100 000
//! particles fit in a few MB. Row blocks run on rayon's pool with the `rayon` feature; the
//! arithmetic of every row is fixed, so results are bit-identical for any thread count.
//!
//! **Conventions.** Particles are the columns of a `d × n` matrix. Scores `s = ∇log π = −∇U`.
//! `∇ₓk(x, y)` differentiates the first argument; the repulsive term of particle `i` is
//! `Σ_j ∇ₓk(x_j, x_i)` (it pushes `x_i` away from `x_j` for the RBF kernel). Updates are
//! synchronous. The RBF bandwidth rules and their peers' parameterisations are in
//! [`Bandwidth`](crate::kernel::Bandwidth). See `docs/stein.md` for the mathematics.

pub(crate) mod dists;
mod ksd;
mod mmd;
mod noisy;
pub(crate) mod pairwise;
mod svgd;

pub use ksd::ksd;
pub use mmd::mmd2_unbiased;
pub use noisy::Noise;
pub use pairwise::{Ksd, stein_direction};
pub use svgd::{StepSchedule, Svgd, SvgdInfo, SvgdState, Update};
