//! Exact laws for Gaussian targets: the test oracle, public so users can check their own runs.
//!
//! On a quadratic potential `U(x) = ½(x − μ*)ᵀA(x − μ*)` every step of the Langevin samplers is
//! an affine map plus Gaussian noise, so a Gaussian initial law stays Gaussian and its mean and
//! covariance follow closed recursions. Combined with the closed-form divergences of
//! [`Gaussian`](crate::potential::Gaussian) (KL, W₂, relative Fisher information) this turns
//! rate tests into deterministic computations.
//!
//! | sampler | oracle |
//! |---|---|
//! | ULA | [`UlaOracle`]: one step, n steps, the law along the interpolation, the stationary law |
//! | underdamped Langevin (exact OU integrator) | [`UnderdampedOracle`]: joint `(x, p)` laws, the stationary law |
//! | diffusion samplers (DDPM, probability flow, predictor–corrector) on Gaussian data | [`DiffusionOracle`]: `q_t`, one step, a whole grid, corrector phases |

mod diffusion;
mod kinetic;
mod ula;

pub use diffusion::DiffusionOracle;
pub use kinetic::UnderdampedOracle;
pub use ula::UlaOracle;
