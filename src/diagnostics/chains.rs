//! The validated draws of one scalar quantity (chains × draws) and the transforms every
//! diagnostic is built from: splitting, rank normalisation, folding, indicators, quantiles.

use crate::error::{Error, Result};

use super::special::normal_quantile;

/// `m` chains of `n` draws each, stored chain after chain.
#[derive(Clone, Debug)]
pub(crate) struct Chains {
    pub(crate) data: Vec<f64>,
    pub(crate) m: usize,
    pub(crate) n: usize,
}

/// The shortest chain the diagnostics accept (as ArviZ and posterior): split halves of 2 draws.
pub(crate) const MIN_DRAWS: usize = 4;

impl Chains {
    /// Validates user input: at least one chain, equal lengths, at least [`MIN_DRAWS`] draws,
    /// finite values, not all equal.
    pub(crate) fn new<C: AsRef<[f64]>>(chains: &[C]) -> Result<Self> {
        let n = check_shape(chains.iter().map(|c| c.as_ref().len()))?;
        let mut data = Vec::with_capacity(chains.len() * n);
        for c in chains {
            data.extend_from_slice(c.as_ref());
        }
        Self::from_flat(data, chains.len(), n)
    }

    /// Validates the values of already shaped draws (finite, not constant).
    pub(crate) fn from_flat(data: Vec<f64>, m: usize, n: usize) -> Result<Self> {
        if !data.iter().all(|v| v.is_finite()) {
            return Err(Error::NonFiniteInput { name: "chains" });
        }
        let chains = Self { data, m, n };
        if chains.is_constant() {
            return Err(Error::InvalidParameter {
                name: "chains",
                value: chains.data[0],
                reason: "all draws are equal (constant chains): R-hat and ESS are undefined",
            });
        }
        Ok(chains)
    }

    /// Draws of chain `j`.
    pub(crate) fn chain(&self, j: usize) -> &[f64] {
        &self.data[j * self.n..(j + 1) * self.n]
    }

    /// Total number of draws.
    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    /// `true` if all draws are equal up to rounding: `max − min ≤ 1e-15 · max(|min|, |max|)`.
    ///
    /// ArviZ tests `max − min < 1e-15` (absolute); the relative form agrees with it on the
    /// z-scores and 0/1 indicators it is applied to, and keeps the test scale-free on raw draws.
    pub(crate) fn is_constant(&self) -> bool {
        let (lo, hi) = self
            .data
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        hi - lo <= 1e-15 * lo.abs().max(hi.abs())
    }

    /// Each chain cut into its first and last `⌊n/2⌋` draws (the middle draw of an odd-length
    /// chain is dropped, as in ArviZ): `2m` chains of `⌊n/2⌋`.
    pub(crate) fn split(&self) -> Self {
        let half = self.n / 2;
        let mut data = Vec::with_capacity(2 * self.m * half);
        for j in 0..self.m {
            data.extend_from_slice(&self.chain(j)[..half]);
        }
        for j in 0..self.m {
            data.extend_from_slice(&self.chain(j)[self.n - half..]);
        }
        Self {
            data,
            m: 2 * self.m,
            n: half,
        }
    }

    /// The same shape with every draw mapped by `f`.
    pub(crate) fn map(&self, f: impl Fn(f64) -> f64) -> Self {
        Self {
            data: self.data.iter().map(|&v| f(v)).collect(),
            m: self.m,
            n: self.n,
        }
    }

    /// Rank normalisation: pooled average ranks `r` (ties share their mean rank), Blom's
    /// offset `p = (r − 3/8)/(N + 1/4)`, then `z = Φ⁻¹(p)`.
    pub(crate) fn z_scale(&self) -> Self {
        let size = self.len() as f64;
        let ranks = average_ranks(&self.data);
        Self {
            data: ranks
                .into_iter()
                .map(|r| normal_quantile((r - 0.375) / (size - 0.75 + 1.0)))
                .collect(),
            m: self.m,
            n: self.n,
        }
    }

    /// `|x − median|` with the median of all draws.
    pub(crate) fn fold(&self) -> Self {
        let med = median(&self.data);
        self.map(|v| (v - med).abs())
    }

    /// Mean of all draws.
    pub(crate) fn mean(&self) -> f64 {
        self.data.iter().sum::<f64>() / self.len() as f64
    }

    /// Sample standard deviation of all draws (denominator `N − 1`).
    pub(crate) fn sd(&self) -> f64 {
        let mean = self.mean();
        let ss: f64 = self.data.iter().map(|v| (v - mean) * (v - mean)).sum();
        (ss / (self.len() - 1) as f64).sqrt()
    }

    /// The type-7 quantile of all draws (see [`quantile_sorted`]).
    pub(crate) fn quantile(&self, prob: f64) -> f64 {
        quantile_sorted(&self.sorted(), prob)
    }

    /// All draws in increasing order.
    pub(crate) fn sorted(&self) -> Vec<f64> {
        let mut v = self.data.clone();
        v.sort_unstable_by(f64::total_cmp);
        v
    }
}

/// Checks the shape of user chains given their lengths; returns the common length.
pub(crate) fn check_shape(mut lengths: impl Iterator<Item = usize>) -> Result<usize> {
    let n = lengths.next().ok_or(Error::Empty { name: "chains" })?;
    if let Some(found) = lengths.find(|&len| len != n) {
        return Err(Error::DimensionMismatch {
            name: "chains",
            expected: n,
            found,
        });
    }
    if n < MIN_DRAWS {
        return Err(Error::InvalidParameter {
            name: "chains",
            value: n as f64,
            reason: "each chain needs at least 4 draws",
        });
    }
    Ok(n)
}

/// Checks a probability argument lies strictly inside (0, 1).
pub(crate) fn check_prob(prob: f64) -> Result<f64> {
    if prob > 0.0 && prob < 1.0 {
        Ok(prob)
    } else {
        Err(Error::InvalidParameter {
            name: "prob",
            value: prob,
            reason: "must lie strictly between 0 and 1",
        })
    }
}

/// 1-based ranks, ties replaced by their average (SciPy's `rankdata(method="average")`).
fn average_ranks(x: &[f64]) -> Vec<f64> {
    // Sorting (value, index) pairs keeps the comparisons in cache (an index sort compares
    // through random accesses into `x`).
    let mut pairs: Vec<(f64, usize)> = x.iter().copied().zip(0..).collect();
    pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut ranks = vec![0.0; x.len()];
    let mut start = 0;
    while start < pairs.len() {
        let mut end = start + 1;
        while end < pairs.len() && pairs[end].0 == pairs[start].0 {
            end += 1;
        }
        // Positions start..end (0-based) share the ranks start+1 ..= end.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &(_, i) in &pairs[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// The median (mean of the two middle values for an even count).
pub(crate) fn median(x: &[f64]) -> f64 {
    let mut v = x.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    let k = v.len() / 2;
    if v.len() % 2 == 1 {
        v[k]
    } else {
        (v[k - 1] + v[k]) / 2.0
    }
}

/// Type-7 (R's default, NumPy's `"linear"`) quantile of sorted values: with `h = (N − 1)p`,
/// interpolate linearly between the order statistics around `h`.
///
/// The arithmetic is SciPy's `mquantiles(alphap = 1, betap = 1)` step for step (ArviZ's
/// quantile), so the 0/1 indicators `x ≤ q` of the tail ESS come out identical even when `q`
/// falls on a tie.
pub(crate) fn quantile_sorted(sorted: &[f64], prob: f64) -> f64 {
    let n = sorted.len();
    // mquantiles' m = αₚ + p(1 − αₚ − βₚ) with αₚ = βₚ = 1.
    let aleph = n as f64 * prob + (1.0 - prob);
    let k = aleph.clamp(1.0, (n - 1) as f64).floor();
    let gamma = (aleph - k).clamp(0.0, 1.0);
    let k = k as usize;
    (1.0 - gamma) * sorted[k - 1] + gamma * sorted[k]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties() {
        assert_eq!(
            average_ranks(&[3.0, 1.0, 3.0, 2.0, 3.0]),
            vec![4.0, 1.0, 4.0, 2.0, 4.0]
        );
        assert_eq!(average_ranks(&[5.0, 5.0]), vec![1.5, 1.5]);
    }

    #[test]
    fn type7_quantile() {
        let x = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert_eq!(quantile_sorted(&x, 0.5), 3.0);
        assert_eq!(quantile_sorted(&x, 0.0), 1.0);
        assert_eq!(quantile_sorted(&x, 1.0), 10.0);
        // h = 4 · 0.9 = 3.6: 4 + 0.6 · (10 − 4).
        assert!((quantile_sorted(&x, 0.9) - 7.6).abs() < 1e-14);
    }

    #[test]
    fn split_drops_the_middle_of_odd_chains() {
        let c = Chains::new(&[[1.0, 2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0, 10.0]]).unwrap();
        let s = c.split();
        assert_eq!((s.m, s.n), (4, 2));
        assert_eq!(s.data, vec![1.0, 2.0, 6.0, 7.0, 4.0, 5.0, 9.0, 10.0]);
    }
}
