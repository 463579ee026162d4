//! Monte Carlo standard errors of the mean, the standard deviation and quantiles.

use crate::error::Result;

use super::chains::{Chains, check_prob};
use super::ess;
use super::special::beta_quantile;

/// MCSE of the mean of validated chains.
pub(crate) fn mean(x: &Chains) -> f64 {
    x.sd() / ess::mean(x).sqrt()
}

/// MCSE of the standard deviation of validated chains.
pub(crate) fn sd(x: &Chains) -> f64 {
    let mu = x.mean();
    let sq = x.map(|v| (v - mu) * (v - mu));
    let size = sq.len() as f64;
    let var = sq.data.iter().sum::<f64>() / size;
    let fourth = sq.data.iter().map(|v| v * v).sum::<f64>() / size;
    let var_of_var = (fourth - var * var) / ess::geyer_ess(&sq.split());
    (var_of_var / var / 4.0).sqrt()
}

/// MCSE of the `prob` quantile of validated chains.
pub(crate) fn quantile(x: &Chains, prob: f64) -> f64 {
    // ArviZ's constants: Φ(−1) and Φ(1) to 7 digits.
    const LOWER: f64 = 0.158_655_3;
    const UPPER: f64 = 0.841_344_7;
    let ess = ess::quantile(x, prob);
    let (a, b) = (ess * prob + 1.0, ess * (1.0 - prob) + 1.0);
    let sorted = x.sorted();
    let size = sorted.len();
    let lo = (beta_quantile(LOWER, a, b) * size as f64 - 1.0).max(0.0);
    let hi = (beta_quantile(UPPER, a, b) * size as f64 - 1.0).min((size - 1) as f64);
    (sorted[hi.ceil() as usize] - sorted[lo.floor() as usize]) / 2.0
}

/// Monte Carlo standard error of the posterior mean: `sd / √ESS_mean`, with the sample
/// standard deviation of all draws and [`ess_mean`](super::ess_mean).
///
/// # Errors
///
/// As [`ess_bulk`](super::ess_bulk).
///
/// # Example
///
/// ```
/// use klflow::diagnostics::{ess_mean, mcse_mean};
///
/// let chains = [[0.3, -1.2, 0.8, 2.1, -0.4, 0.0], [1.1, -0.7, 0.2, -2.0, 0.5, 0.9]];
/// let all: Vec<f64> = chains.iter().flatten().copied().collect();
/// let mean = all.iter().sum::<f64>() / 12.0;
/// let sd = (all.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 11.0).sqrt();
/// assert!((mcse_mean(&chains)? - sd / ess_mean(&chains)?.sqrt()).abs() < 1e-15);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn mcse_mean<C: AsRef<[f64]>>(chains: &[C]) -> Result<f64> {
    Ok(mean(&Chains::new(chains)?))
}

/// Monte Carlo standard error of the posterior standard deviation, ArviZ's definition: with
/// `s = (x − x̄)²`, `Var̂ = mean(s)`, `Var(Var̂) ≈ (mean(s²) − Var̂²)/ESS_mean(s)`, and the delta
/// method `MCSE(sd) = √(Var(Var̂)/(4 Var̂))`.
///
/// # Errors
///
/// As [`ess_bulk`](super::ess_bulk).
///
/// # Example
///
/// ```
/// use klflow::diagnostics::mcse_sd;
///
/// let chains = [[0.3, -1.2, 0.8, 2.1, -0.4, 0.0], [1.1, -0.7, 0.2, -2.0, 0.5, 0.9]];
/// let m = mcse_sd(&chains)?;
/// assert!(m > 0.0 && m < 1.0);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn mcse_sd<C: AsRef<[f64]>>(chains: &[C]) -> Result<f64> {
    Ok(sd(&Chains::new(chains)?))
}

/// Monte Carlo standard error of the `prob` quantile (ArviZ/posterior's interval method): with
/// `S` = [`ess_quantile`](super::ess_quantile), take the Beta(`S·prob + 1`, `S·(1 − prob) + 1`)
/// quantiles at `Φ(∓1)`, map them to order statistics of all `N` draws (indices
/// `⌊N·u − 1⌋` and `⌈N·u − 1⌉`, clamped) and return half the distance between them.
///
/// # Errors
///
/// As [`ess_bulk`](super::ess_bulk), and [`Error::InvalidParameter`](crate::Error::InvalidParameter)
/// naming `prob` unless `0 < prob < 1`.
///
/// # Example
///
/// ```
/// use klflow::diagnostics::mcse_quantile;
///
/// let chains: Vec<Vec<f64>> = (0..4)
///     .map(|j| (0..250).map(|i| (((i * 7919 + j * 104_729) % 1000) as f64) / 1000.0).collect())
///     .collect();
/// // Draws spread uniformly over [0, 1): the median is known to about ±0.02.
/// let m = mcse_quantile(&chains, 0.5)?;
/// assert!(m > 0.0 && m < 0.05);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn mcse_quantile<C: AsRef<[f64]>>(chains: &[C], prob: f64) -> Result<f64> {
    check_prob(prob)?;
    Ok(quantile(&Chains::new(chains)?, prob))
}
