//! Effective sample size: Geyer's initial monotone sequence estimator (as in Stan, ArviZ and
//! posterior) and the bulk, tail, quantile and mean ESS built on it.

use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use crate::error::Result;

use super::chains::{Chains, check_prob, quantile_sorted};

/// Lags computed by direct sums before switching to one FFT for all lags.
///
/// Below it the direct O(m·n) cost per lag is cheaper than the FFT; most chains (ESS per draw
/// above ~0.1) stop Geyer's sequence earlier. Chosen from the `diagnostics` benchmark
/// (docs/diagnostics.md).
const DIRECT_LAGS: usize = 32;

/// The chain-averaged autocovariance `γ̂_t = mean_j (1/n) Σᵢ (x_{j,i} − x̄_j)(x_{j,i+t} − x̄_j)`,
/// computed lazily, lag by lag.
struct MeanAutocov {
    centered: Vec<f64>,
    m: usize,
    n: usize,
    all: Option<Vec<f64>>,
}

impl MeanAutocov {
    fn new(x: &Chains) -> Self {
        let mut centered = x.data.clone();
        for chain in centered.chunks_exact_mut(x.n) {
            let mean = chain.iter().sum::<f64>() / x.n as f64;
            chain.iter_mut().for_each(|v| *v -= mean);
        }
        Self {
            centered,
            m: x.m,
            n: x.n,
            all: None,
        }
    }

    fn at(&mut self, lag: usize) -> f64 {
        if self.all.is_none() {
            if lag < DIRECT_LAGS {
                return self.direct(lag);
            }
            self.all = Some(self.by_fft());
        }
        self.all.as_ref().map_or(f64::NAN, |all| all[lag])
    }

    fn direct(&self, lag: usize) -> f64 {
        let total: f64 = self
            .centered
            .chunks_exact(self.n)
            .map(|c| {
                c[..self.n - lag]
                    .iter()
                    .zip(&c[lag..])
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
            })
            .sum();
        total / (self.n * self.m) as f64
    }

    /// Every lag at once: zero-pad to `L ≥ 2n`, sum the power spectra of all chains, invert.
    /// Two real chains share one complex transform (`z = a + ib`; the pair's power at `k` is
    /// `(|Z_k|² + |Z_{L−k}|²)/2`).
    fn by_fft(&self) -> Vec<f64> {
        let len = (2 * self.n).next_power_of_two();
        let mut planner = FftPlanner::<f64>::new();
        let forward: Arc<dyn Fft<f64>> = planner.plan_fft_forward(len);
        let inverse = planner.plan_fft_inverse(len);
        let mut power = vec![Complex::new(0.0, 0.0); len];
        let mut buf = vec![Complex::new(0.0, 0.0); len];
        let chains: Vec<&[f64]> = self.centered.chunks_exact(self.n).collect();
        for pair in chains.chunks(2) {
            buf.iter_mut().for_each(|z| *z = Complex::new(0.0, 0.0));
            for (i, &a) in pair[0].iter().enumerate() {
                buf[i].re = a;
            }
            if let Some(b) = pair.get(1) {
                for (i, &v) in b.iter().enumerate() {
                    buf[i].im = v;
                }
            }
            forward.process(&mut buf);
            for k in 0..len {
                let mirror = buf[(len - k) % len];
                power[k].re += 0.5 * (buf[k].norm_sqr() + mirror.norm_sqr());
            }
        }
        inverse.process(&mut power);
        let scale = 1.0 / (len as f64 * self.n as f64 * self.m as f64);
        power[..self.n].iter().map(|z| z.re * scale).collect()
    }
}

/// Geyer's initial monotone sequence ESS of `x` (already split/transformed), step for step as
/// ArviZ's `_ess`: pooled variance estimate `var⁺`, autocorrelations `ρ̂_t = 1 − (W − γ̂_t)/var⁺`,
/// truncation at the first negative pair sum, monotone pair sums, `τ̂ = −1 + 2Σρ̂`, floored at
/// `1/log₁₀(N)` (so ESS ≤ N·log₁₀ N for antithetic chains). Constant input gives `N`.
pub(crate) fn geyer_ess(x: &Chains) -> f64 {
    let (m, n) = (x.m, x.n);
    let total = (m * n) as f64;
    if x.is_constant() {
        return total;
    }
    let nf = n as f64;
    let mut acov = MeanAutocov::new(x);
    let mean_var = acov.at(0) * nf / (nf - 1.0);
    let mut var_plus = mean_var * (nf - 1.0) / nf;
    if m > 1 {
        let means: Vec<f64> = (0..m)
            .map(|j| x.chain(j).iter().sum::<f64>() / nf)
            .collect();
        let grand = means.iter().sum::<f64>() / m as f64;
        var_plus += means.iter().map(|v| (v - grand) * (v - grand)).sum::<f64>() / (m - 1) as f64;
    }
    let mut rho = vec![0.0; n];
    let mut rho_even = 1.0;
    rho[0] = rho_even;
    let mut rho_odd = 1.0 - (mean_var - acov.at(1)) / var_plus;
    rho[1] = rho_odd;
    // Initial positive sequence: pairs (ρ̂_{t+1}, ρ̂_{t+2}) while their sum stays positive.
    let mut t = 1;
    while t + 3 < n && rho_even + rho_odd > 0.0 {
        rho_even = 1.0 - (mean_var - acov.at(t + 1)) / var_plus;
        rho_odd = 1.0 - (mean_var - acov.at(t + 2)) / var_plus;
        if rho_even + rho_odd >= 0.0 {
            rho[t + 1] = rho_even;
            rho[t + 2] = rho_odd;
        }
        t += 2;
    }
    // ArviZ's max_t is t − 2 (−1 for very short chains); `last` = max_t + 1 ≥ 0.
    let last = t - 1;
    if rho_even > 0.0 {
        rho[last] = rho_even;
    }
    // Initial monotone sequence: no pair sum exceeds the previous one.
    let mut t = 1;
    while t + 3 <= last {
        if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t] {
            rho[t + 1] = (rho[t - 1] + rho[t]) / 2.0;
            rho[t + 2] = rho[t + 1];
        }
        t += 2;
    }
    let tau = -1.0 + 2.0 * rho[..last].iter().sum::<f64>() + rho[last];
    let tau = tau.max(1.0 / total.log10());
    total / tau
}

/// ESS of the indicator `x ≤ q_prob` (type-7 quantile of all draws), split.
pub(crate) fn quantile(x: &Chains, prob: f64) -> f64 {
    below(x, x.quantile(prob))
}

/// ESS of the split indicator chains `x ≤ q`.
pub(crate) fn below(x: &Chains, q: f64) -> f64 {
    geyer_ess(&x.map(|v| if v <= q { 1.0 } else { 0.0 }).split())
}

/// Tail ESS of validated chains given their sorted draws: the smaller of the 5 % and 95 %
/// quantile ESS.
pub(crate) fn tail(x: &Chains, sorted: &[f64]) -> f64 {
    below(x, quantile_sorted(sorted, 0.05)).min(below(x, quantile_sorted(sorted, 0.95)))
}

/// ESS of the mean of validated chains: ESS of the split chains themselves.
pub(crate) fn mean(x: &Chains) -> f64 {
    geyer_ess(&x.split())
}

/// Bulk effective sample size (Vehtari et al. 2021): the ESS of the rank-normalised split
/// chains. Robust to heavy tails and invariant under monotone transformations of the draws;
/// use it to judge the reliability of the posterior mean and median.
///
/// `chains` holds one slice per chain, all of the same length (≥ 4 draws). An odd-length
/// chain loses its middle draw to the split (as in ArviZ).
///
/// # Errors
///
/// [`Error::Empty`](crate::Error::Empty) for no chains;
/// [`Error::DimensionMismatch`](crate::Error::DimensionMismatch) for chains of unequal length;
/// [`Error::InvalidParameter`](crate::Error::InvalidParameter) naming `chains` for fewer than 4
/// draws or when all draws are equal; [`Error::NonFiniteInput`](crate::Error::NonFiniteInput)
/// for NaN or infinite draws.
///
/// # Example
///
/// ```
/// use klflow::diagnostics::ess_bulk;
///
/// // Four chains of 500 independent uniform draws from a small LCG: ESS ≈ N = 2000.
/// let mut s = 1_u64;
/// let chains: Vec<Vec<f64>> = (0..4)
///     .map(|_| {
///         (0..500)
///             .map(|_| {
///                 s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
///                 (s >> 11) as f64 / (1u64 << 53) as f64
///             })
///             .collect()
///     })
///     .collect();
/// let ess = ess_bulk(&chains)?;
/// assert!(ess > 1600.0 && ess < 2400.0);
/// // Only ranks matter: a monotone transformation changes nothing.
/// let transformed: Vec<Vec<f64>> =
///     chains.iter().map(|c| c.iter().map(|v| v.exp()).collect()).collect();
/// assert_eq!(ess_bulk(&transformed)?, ess);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn ess_bulk<C: AsRef<[f64]>>(chains: &[C]) -> Result<f64> {
    Ok(geyer_ess(&Chains::new(chains)?.split().z_scale()))
}

/// Tail effective sample size (Vehtari et al. 2021): the smaller of the ESS of the indicators
/// `x ≤ q₀.₀₅` and `x ≤ q₀.₉₅`. Use it to judge the reliability of 5 % and 95 % quantiles
/// (90 % intervals).
///
/// # Errors
///
/// As [`ess_bulk`].
///
/// # Example
///
/// ```
/// use klflow::diagnostics::ess_tail;
///
/// let chains = [[0.3, -1.2, 0.8, 2.1, -0.4, 0.0], [1.1, -0.7, 0.2, -2.0, 0.5, 0.9]];
/// assert!(ess_tail(&chains)? > 0.0);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn ess_tail<C: AsRef<[f64]>>(chains: &[C]) -> Result<f64> {
    let x = Chains::new(chains)?;
    Ok(tail(&x, &x.sorted()))
}

/// Effective sample size for the `prob` quantile: the ESS of the split indicator chains
/// `x ≤ q_prob`, with `q_prob` the type-7 quantile of all draws.
///
/// # Errors
///
/// As [`ess_bulk`], and [`Error::InvalidParameter`](crate::Error::InvalidParameter) naming
/// `prob` unless `0 < prob < 1`.
///
/// # Example
///
/// ```
/// use klflow::diagnostics::ess_quantile;
///
/// let chains = [[0.3, -1.2, 0.8, 2.1, -0.4, 0.0], [1.1, -0.7, 0.2, -2.0, 0.5, 0.9]];
/// assert!(ess_quantile(&chains, 0.5)? > 0.0);
/// assert!(ess_quantile(&chains, 1.5).is_err());
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn ess_quantile<C: AsRef<[f64]>>(chains: &[C], prob: f64) -> Result<f64> {
    check_prob(prob)?;
    Ok(quantile(&Chains::new(chains)?, prob))
}

/// Effective sample size of the mean: Geyer's initial monotone sequence estimator on the split
/// chains (Stan's classic `n_eff`, ArviZ's `method="mean"`). Sensitive to heavy tails; prefer
/// [`ess_bulk`] unless you need the ESS of the mean itself (it enters [`mcse_mean`](super::mcse_mean)).
///
/// # Errors
///
/// As [`ess_bulk`].
///
/// # Example
///
/// ```
/// use klflow::diagnostics::ess_mean;
///
/// // A slowly drifting chain carries far fewer than its 200 draws of information.
/// let drift: Vec<f64> = (0..200).map(|i| (i as f64 / 40.0).sin()).collect();
/// assert!(ess_mean(&[&drift[..]])? < 20.0);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn ess_mean<C: AsRef<[f64]>>(chains: &[C]) -> Result<f64> {
    Ok(mean(&Chains::new(chains)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct sums and the FFT (two chains per transform, odd chain counts included) give the
    /// same chain-averaged autocovariance at every lag, to rounding.
    #[test]
    fn direct_and_fft_autocovariances_agree() {
        let mut state = 7_u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for m in [1, 3, 4] {
            for n in [5, 64, 1001] {
                let mut data = Vec::with_capacity(m * n);
                let mut y = 0.0;
                for _ in 0..m * n {
                    y = 0.8 * y + next() - 0.5;
                    data.push(y);
                }
                let acov = MeanAutocov::new(&Chains::from_flat(data, m, n).unwrap());
                let all = acov.by_fft();
                for (lag, &fft) in all.iter().enumerate() {
                    let direct = acov.direct(lag);
                    assert!(
                        (direct - fft).abs() < 1e-13 * all[0],
                        "m={m} n={n} lag={lag}"
                    );
                }
            }
        }
    }
}
