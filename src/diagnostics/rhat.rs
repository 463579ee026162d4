//! Potential scale reduction: the classic split R-hat and the rank-normalised, folded split
//! R-hat of Vehtari et al. (2021).

use crate::error::{Error, Result};

use super::chains::Chains;

/// `sqrt((B/W + n − 1)/n)` with `B = n·Var(chain means)` and `W = mean of chain variances`
/// (both with denominator `k − 1`).
///
/// `None` when `B = W = 0` (every chain constant at the same value); `+∞` when the chains are
/// constant at different values (`W = 0 < B`).
fn psrf(x: &Chains) -> Option<f64> {
    let (m, n) = (x.m, x.n);
    let nf = n as f64;
    let mut means = Vec::with_capacity(m);
    let mut within = 0.0;
    for j in 0..m {
        let c = x.chain(j);
        let mean = c.iter().sum::<f64>() / nf;
        within += c.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (nf - 1.0);
        means.push(mean);
    }
    within /= m as f64;
    let grand = means.iter().sum::<f64>() / m as f64;
    let between =
        nf * means.iter().map(|v| (v - grand) * (v - grand)).sum::<f64>() / (m - 1) as f64;
    if within == 0.0 {
        return if between == 0.0 {
            None
        } else {
            Some(f64::INFINITY)
        };
    }
    Some(((between / within + nf - 1.0) / nf).sqrt())
}

/// The error for split chains without any variation (only possible when the dropped middle
/// draws of odd-length chains were the only ones that differed).
fn constant_split(x: &Chains) -> Error {
    Error::InvalidParameter {
        name: "chains",
        value: x.data[0],
        reason: "the split chains are constant: R-hat is undefined",
    }
}

/// Rank-normalised split R-hat of validated chains.
pub(crate) fn rank(x: &Chains) -> Result<f64> {
    let split = x.split();
    rank_of_split(&split, &split.z_scale())
}

/// Rank-normalised R-hat from the split chains and their rank-normalised values.
pub(crate) fn rank_of_split(split: &Chains, z: &Chains) -> Result<f64> {
    let bulk = psrf(z).ok_or_else(|| constant_split(split))?;
    // The folded draws |x − median| can be constant on non-constant input (e.g. ±1 draws):
    // the tail R-hat is then undefined and the bulk value stands alone.
    Ok(match psrf(&split.fold().z_scale()) {
        Some(tail) if tail > bulk => tail,
        _ => bulk,
    })
}

/// Classic split R-hat of validated chains.
pub(crate) fn split(x: &Chains) -> Result<f64> {
    let split = x.split();
    psrf(&split).ok_or_else(|| constant_split(&split))
}

/// Rank-normalised split R-hat (Vehtari, Gelman, Simpson, Carpenter, Bürkner 2021): the
/// larger of the split R-hat of the rank-normalised draws (bulk) and of the rank-normalised
/// folded draws `|x − median|` (tail). Values above 1.01 signal that the chains have not mixed.
///
/// `chains` holds one slice per chain, all of the same length (≥ 4 draws). Each chain is split
/// into halves (the middle draw of an odd-length chain is dropped), so one chain is enough.
/// Chains constant at *different* values give `+∞`.
///
/// Convention: ArviZ's `rhat(method="rank")` step for step (ArviZ returns NaN for a single
/// chain; klflow answers, since the split gives two).
///
/// # Errors
///
/// [`Error::Empty`] for no chains; [`Error::DimensionMismatch`] for chains of unequal length;
/// [`Error::InvalidParameter`] naming `chains` for fewer than 4 draws or when all draws are
/// equal (R-hat is undefined there; ArviZ returns NaN); [`Error::NonFiniteInput`] for NaN or
/// infinite draws.
///
/// # Example
///
/// ```
/// use klflow::diagnostics::rhat;
///
/// let a: Vec<f64> = (0..100).map(|i| ((i * 37 % 101) as f64 / 101.0) - 0.5).collect();
/// let b: Vec<f64> = (0..100).map(|i| ((i * 53 % 101) as f64 / 101.0) - 0.5).collect();
/// assert!(rhat(&[&a, &b])? < 1.05);
/// // Shift one chain: the chains disagree.
/// let shifted: Vec<f64> = b.iter().map(|v| v + 1.0).collect();
/// assert!(rhat(&[&a, &shifted])? > 1.5);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn rhat<C: AsRef<[f64]>>(chains: &[C]) -> Result<f64> {
    rank(&Chains::new(chains)?)
}

/// Classic split R-hat (Gelman et al., BDA3 §11.4): the potential scale reduction factor of
/// the half-chains, on the raw draws. Not robust to heavy tails (prefer [`rhat`]); matches
/// ArviZ's `rhat(method="split")`.
///
/// # Errors
///
/// As [`rhat`].
///
/// # Example
///
/// ```
/// use klflow::diagnostics::rhat_split;
///
/// // A chain that drifts: its two halves disagree.
/// let drift: Vec<f64> = (0..200).map(|i| i as f64 / 200.0).collect();
/// assert!(rhat_split(&[&drift[..]])? > 1.5);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn rhat_split<C: AsRef<[f64]>>(chains: &[C]) -> Result<f64> {
    split(&Chains::new(chains)?)
}
