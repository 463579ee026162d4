//! Convergence diagnostics for MCMC chains: R-hat, effective sample sizes, Monte Carlo
//! standard errors, and a per-parameter summary.
//!
//! | function | what it measures | reference |
//! |---|---|---|
//! | [`rhat`] | rank-normalised, folded split R-hat: max of bulk and tail | Vehtari et al. 2021 |
//! | [`rhat_split`] | classic split R-hat on the raw draws | Gelman et al., BDA3 |
//! | [`ess_bulk`] | ESS of the rank-normalised split chains | Vehtari et al. 2021 |
//! | [`ess_tail`] | min ESS of the 5 % and 95 % quantile indicators | Vehtari et al. 2021 |
//! | [`ess_quantile`] | ESS of the indicator `x ≤ q_p` | Vehtari et al. 2021 |
//! | [`ess_mean`] | ESS of the split chains (Stan's classic `n_eff`) | Geyer 1992; Stan |
//! | [`mcse_mean`], [`mcse_sd`], [`mcse_quantile`] | Monte Carlo standard errors | ArviZ / posterior |
//! | [`ParamSummary`], [`Summary`] | mean, sd, q05/q50/q95, MCSEs, ESS, R-hat | — |
//!
//! **Input.** Draws of a scalar quantity are given as one slice per chain, `&[C]` with
//! `C: AsRef<[f64]>` (`&[&[f64]]`, `&[Vec<f64>]`, arrays). Vector-valued chains (for instance
//! one [`Trace`](crate::run::Trace) per chain) go through [`Summary::new`] or [`coordinate`].
//! All chains must have the same length, at least 4 draws; one chain is enough (every chain is
//! split in halves, the middle draw of an odd-length chain is dropped).
//!
//! **Conventions.** Every function computes exactly what ArviZ 0.23 computes (rank ties get
//! their average rank, Blom's offset `(r − 3/8)/(N + 1/4)`, type-7 quantiles, autocovariances
//! with denominator `n`, ESS capped at `N·log₁₀ N`); the integration tests check the values
//! against ArviZ's on fixed inputs to 1e-10 relative (see `docs/diagnostics.md`). The one
//! difference: ArviZ's R-hat refuses a single chain (NaN), klflow answers.
//!
//! **Degenerate input.** Constant draws (all equal up to rounding) are an error,
//! [`Error::InvalidParameter`](crate::Error::InvalidParameter) naming `chains`: R-hat is 0/0
//! there (ArviZ returns NaN) and an ESS of `N` (ArviZ's answer) would wrongly certify a stuck
//! sampler. Chains that are each constant but at different values give R-hat `+∞`. NaN or
//! infinite draws are [`Error::NonFiniteInput`](crate::Error::NonFiniteInput).
//!
//! # Example
//!
//! ```
//! use klflow::diagnostics::{ess_bulk, rhat};
//!
//! // Two AR(1) chains with φ = 0.5 from a tiny linear congruential generator.
//! let mut state = 12345_u64;
//! let mut uniform = || {
//!     state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
//!     (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
//! };
//! let chains: Vec<Vec<f64>> = (0..2)
//!     .map(|_| {
//!         let mut x = 0.0;
//!         (0..2000).map(|_| { x = 0.5 * x + uniform(); x }).collect()
//!     })
//!     .collect();
//! assert!(rhat(&chains)? < 1.01);
//! // Theory: N(1 − φ)/(1 + φ) = 4000/3 ≈ 1333.
//! let ess = ess_bulk(&chains)?;
//! assert!(ess > 1000.0 && ess < 1700.0);
//! # Ok::<(), klflow::Error>(())
//! ```

mod chains;
mod ess;
mod mcse;
mod rhat;
mod special;
mod summary;

pub use ess::{ess_bulk, ess_mean, ess_quantile, ess_tail};
pub use mcse::{mcse_mean, mcse_quantile, mcse_sd};
pub use rhat::{rhat, rhat_split};
pub use special::{normal_cdf, normal_quantile};
pub use summary::{ParamSummary, Summary, coordinate};
