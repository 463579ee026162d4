//! Langevin Monte Carlo.
//!
//! Step-size convention (BlackJAX's): one step is
//! `x ← x − h∇U(x) + √(2h) ξ`, `ξ ~ N(0, I)`. TensorFlow Probability's
//! `UncalibratedLangevin` writes `x + (ε/2)∇log π + √ε ξ`, so `ε = 2h`.
//!
//! | sampler | what it is | bias |
//! |---|---|---|
//! | [`Ula`] | unadjusted Langevin (Euler–Maruyama of the Langevin diffusion) | O(h): on `N(0, 1/λ)` the stationary variance is `1/(λ(1 − hλ/2))` |
//! | [`AveragedLmc`] | one draw from the time-averaged law of an LMC run (Balasubramanian et al. 2022) | relative Fisher information ≤ C₁KL₀/(Nh) + C₂L²dh, also for non-convex `U` |
//! | [`Mala`] | ULA proposal + Metropolis–Hastings correction; dual-averaging step size, diagonal / dense metric | none: `π` is exactly invariant |
//! | [`UlaEnsemble`], [`MalaEnsemble`] | `C` ULA / MALA chains stepped together, one batched gradient ([`BatchPotential`](crate::potential::BatchPotential)) per step | as ULA / MALA |
//! | [`UnderdampedLangevin`] | kinetic Langevin in `(x, p)`: exact OU integrator ([`OuStep`]) or BAOAB | O(η) (exact OU), O(η²) (BAOAB, position) |

mod averaged;
mod ensemble;
mod kinetic;
mod mala;
mod ula;

pub use averaged::{AveragedLmc, AveragedState, Averaging};
pub use ensemble::{ENSEMBLE_BLOCK, EnsembleInfo, EnsembleState, MalaEnsemble, UlaEnsemble};
pub use kinetic::{KineticInfo, KineticIntegrator, KineticState, OuStep, UnderdampedLangevin};
pub use mala::{Mala, MalaInfo, MalaState, Metric, MetricAdaptation, Warmup};
pub use ula::{Ula, UlaInfo};
