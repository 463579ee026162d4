//! Per-parameter posterior summaries from chains of scalars or of vectors.

use std::fmt;

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, Dim, OVector};

use crate::error::{Error, Result};

use super::chains::{Chains, check_shape, quantile_sorted};
use super::{ess, mcse, rhat};

/// Summary statistics and convergence diagnostics of one scalar quantity.
///
/// Quantiles are type 7 (NumPy's default, R's `quantile`); `sd` has denominator `N − 1`; the
/// diagnostics are those of [`rhat`](super::rhat), [`ess_bulk`](super::ess_bulk),
/// [`ess_tail`](super::ess_tail), [`mcse_mean`](super::mcse_mean) and
/// [`mcse_sd`](super::mcse_sd), computed over all chains.
///
/// # Example
///
/// ```
/// use klflow::diagnostics::ParamSummary;
///
/// let chains = [[0.3, -1.2, 0.8, 2.1, -0.4, 0.0], [1.1, -0.7, 0.2, -2.0, 0.5, 0.9]];
/// let s = ParamSummary::new(&chains)?;
/// assert!((s.mean - 0.1333333333333333).abs() < 1e-15);
/// assert!(s.q05 < s.q50 && s.q50 < s.q95);
/// assert!(s.r_hat > 0.8 && s.ess_bulk > 0.0);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ParamSummary {
    /// Mean of all draws.
    pub mean: f64,
    /// Standard deviation of all draws (denominator `N − 1`).
    pub sd: f64,
    /// 5 % quantile.
    pub q05: f64,
    /// Median.
    pub q50: f64,
    /// 95 % quantile.
    pub q95: f64,
    /// Monte Carlo standard error of the mean.
    pub mcse_mean: f64,
    /// Monte Carlo standard error of the standard deviation.
    pub mcse_sd: f64,
    /// Bulk effective sample size.
    pub ess_bulk: f64,
    /// Tail effective sample size.
    pub ess_tail: f64,
    /// Rank-normalised split R-hat.
    pub r_hat: f64,
}

impl ParamSummary {
    /// Summarises the draws of one scalar quantity, one slice per chain.
    ///
    /// # Errors
    ///
    /// As [`rhat`](super::rhat): no chains, unequal lengths, fewer than 4 draws, non-finite or
    /// constant draws.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, diagnostics::ParamSummary};
    ///
    /// // two chains of the draws 1..=8 between them: mean 4.5, median 4.5, sd √6
    /// let s = ParamSummary::new(&[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])?;
    /// assert_eq!((s.mean, s.q50), (4.5, 4.5));
    /// assert!((s.sd - 6f64.sqrt()).abs() < 1e-14);
    /// assert!((s.q05 - 1.35).abs() < 1e-14); // type 7: 1 + 0.05 · 7
    /// assert!(s.r_hat > 1.5); // the chains do not overlap
    /// let err = ParamSummary::new(&[[1.0, 2.0, 3.0]]).unwrap_err();
    /// assert!(matches!(err, Error::InvalidParameter { name: "chains", .. })); // fewer than 4 draws
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new<C: AsRef<[f64]>>(chains: &[C]) -> Result<Self> {
        Self::of(&Chains::new(chains)?)
    }

    fn of(x: &Chains) -> Result<Self> {
        let sorted = x.sorted();
        let split = x.split();
        let z = split.z_scale();
        Ok(Self {
            mean: x.mean(),
            sd: x.sd(),
            q05: quantile_sorted(&sorted, 0.05),
            q50: quantile_sorted(&sorted, 0.5),
            q95: quantile_sorted(&sorted, 0.95),
            mcse_mean: mcse::mean(x),
            mcse_sd: mcse::sd(x),
            ess_bulk: ess::geyer_ess(&z),
            ess_tail: ess::tail(x, &sorted),
            r_hat: rhat::rank_of_split(&split, &z)?,
        })
    }
}

/// Summaries of every coordinate of vector-valued chains (one [`ParamSummary`] per coordinate).
///
/// # Example
///
/// ```
/// use klflow::{Sampler, diagnostics::Summary, langevin::Ula, potential::Gaussian};
/// use klflow::run::{Trace, run};
/// use nalgebra::{Const, SVector};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let ula = Ula::new(Gaussian::standard(Const::<2>), 0.2)?;
/// let mut chains = Vec::new();
/// for seed in 0..4 {
///     let mut rng = ChaCha8Rng::seed_from_u64(seed);
///     let mut state = ula.init(SVector::zeros(), &mut rng)?;
///     let mut trace = Trace::new();
///     run(&ula, &mut state, 1_000, &mut rng, &mut trace)?;
///     chains.push(trace.into_samples());
/// }
/// let summary = Summary::new(&chains)?;
/// assert_eq!(summary.params.len(), 2);
/// assert!(summary.max_r_hat() < 1.05);
/// assert!(summary.min_ess_bulk() > 100.0);
/// println!("{summary}");
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Summary {
    /// One entry per coordinate, in coordinate order.
    pub params: Vec<ParamSummary>,
}

impl Summary {
    /// Summarises chains of vectors: `chains[j][t]` is draw `t` of chain `j` (for instance the
    /// samples of a [`Trace`](crate::run::Trace), one trace per chain).
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] for no chains or zero-dimensional draws; [`Error::DimensionMismatch`]
    /// for chains of unequal length or draws of unequal dimension; otherwise the first error
    /// of [`ParamSummary::new`] over the coordinates (e.g. a constant coordinate).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, diagnostics::{ParamSummary, Summary}};
    /// use nalgebra::Vector2;
    ///
    /// let chain: Vec<Vector2<f64>> = [0.3, -1.2, 0.8, 2.1, -0.4, 0.0]
    ///     .iter()
    ///     .map(|&x| Vector2::new(x, 2.0 * x))
    ///     .collect();
    /// let s = Summary::new(&[chain.clone(), chain.iter().map(|v| -v).collect()])?;
    /// // each coordinate is summarised as by ParamSummary
    /// let first = ParamSummary::new(&[
    ///     chain.iter().map(|v| v[0]).collect::<Vec<_>>(),
    ///     chain.iter().map(|v| -v[0]).collect(),
    /// ])?;
    /// assert_eq!(s.params[0], first);
    /// assert!((s.params[1].sd - 2.0 * first.sd).abs() < 1e-14);
    /// let err = Summary::new(&[chain.clone(), chain[..5].to_vec()]).unwrap_err();
    /// assert!(matches!(err, Error::DimensionMismatch { name: "chains", .. }));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new<D: Dim, T: AsRef<[OVector<f64, D>]>>(chains: &[T]) -> Result<Self>
    where
        DefaultAllocator: Allocator<D>,
    {
        let dim = vector_dim(chains)?;
        let params = (0..dim)
            .map(|i| ParamSummary::of(&coordinate_chains(chains, i)?))
            .collect::<Result<_>>()?;
        Ok(Self { params })
    }

    /// The largest R-hat over the coordinates.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diagnostics::{ParamSummary, Summary};
    ///
    /// let mixed = ParamSummary::new(&[[1.0, 8.0, 3.0, 6.0], [5.0, 2.0, 7.0, 4.0]])?;
    /// let stuck = ParamSummary::new(&[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])?;
    /// let s = Summary { params: vec![mixed, stuck] };
    /// assert_eq!(s.max_r_hat(), stuck.r_hat);
    /// assert!(s.max_r_hat() > mixed.r_hat);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn max_r_hat(&self) -> f64 {
        self.params.iter().map(|p| p.r_hat).fold(f64::MIN, f64::max)
    }

    /// The smallest bulk ESS over the coordinates.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diagnostics::{ParamSummary, Summary};
    ///
    /// let a = ParamSummary::new(&[[1.0, 8.0, 3.0, 6.0], [5.0, 2.0, 7.0, 4.0]])?;
    /// let b = ParamSummary::new(&[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])?;
    /// let s = Summary { params: vec![a, b] };
    /// assert_eq!(s.min_ess_bulk(), a.ess_bulk.min(b.ess_bulk));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn min_ess_bulk(&self) -> f64 {
        self.params
            .iter()
            .map(|p| p.ess_bulk)
            .fold(f64::MAX, f64::min)
    }

    /// The smallest tail ESS over the coordinates.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diagnostics::{ParamSummary, Summary};
    ///
    /// let a = ParamSummary::new(&[[1.0, 8.0, 3.0, 6.0], [5.0, 2.0, 7.0, 4.0]])?;
    /// let b = ParamSummary::new(&[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])?;
    /// let s = Summary { params: vec![a, b] };
    /// assert_eq!(s.min_ess_tail(), a.ess_tail.min(b.ess_tail));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn min_ess_tail(&self) -> f64 {
        self.params
            .iter()
            .map(|p| p.ess_tail)
            .fold(f64::MAX, f64::min)
    }
}

impl fmt::Display for Summary {
    /// A table, one row per coordinate.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>5} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>7}",
            "param",
            "mean",
            "sd",
            "q05",
            "q50",
            "q95",
            "mcse_mean",
            "mcse_sd",
            "ess_bulk",
            "ess_tail",
            "r_hat"
        )?;
        for (i, p) in self.params.iter().enumerate() {
            writeln!(
                f,
                "{:>5} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>9.0} {:>9.0} {:>7.4}",
                i,
                p.mean,
                p.sd,
                p.q05,
                p.q50,
                p.q95,
                p.mcse_mean,
                p.mcse_sd,
                p.ess_bulk,
                p.ess_tail,
                p.r_hat
            )?;
        }
        Ok(())
    }
}

/// The chains of coordinate `index` of vector-valued chains, ready for the scalar diagnostics.
///
/// # Errors
///
/// As [`Summary::new`] for the shape, and [`Error::InvalidParameter`] naming `index` if it is
/// not below the dimension of the draws.
///
/// # Example
///
/// ```
/// use klflow::diagnostics::{coordinate, rhat};
/// use nalgebra::Vector2;
///
/// let chain_a: Vec<Vector2<f64>> = (0..50).map(|i| Vector2::new((i as f64).sin(), 1.0)).collect();
/// let chain_b: Vec<Vector2<f64>> = (0..50).map(|i| Vector2::new((i as f64).cos(), 2.0)).collect();
/// let x0 = coordinate(&[chain_a, chain_b], 0)?;
/// assert_eq!((x0.len(), x0[1].len()), (2, 50));
/// assert!(rhat(&x0)? < 1.2);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn coordinate<D: Dim, T: AsRef<[OVector<f64, D>]>>(
    chains: &[T],
    index: usize,
) -> Result<Vec<Vec<f64>>>
where
    DefaultAllocator: Allocator<D>,
{
    let dim = vector_dim(chains)?;
    if index >= dim {
        return Err(Error::InvalidParameter {
            name: "index",
            value: index as f64,
            reason: "must be below the dimension of the draws",
        });
    }
    Ok(chains
        .iter()
        .map(|c| c.as_ref().iter().map(|v| v[index]).collect())
        .collect())
}

/// Validates the shape of vector chains; returns the dimension of the draws.
fn vector_dim<D: Dim, T: AsRef<[OVector<f64, D>]>>(chains: &[T]) -> Result<usize>
where
    DefaultAllocator: Allocator<D>,
{
    check_shape(chains.iter().map(|c| c.as_ref().len()))?;
    let dim = chains[0].as_ref()[0].len();
    if dim == 0 {
        return Err(Error::Empty { name: "chains" });
    }
    for v in chains.iter().flat_map(|c| c.as_ref()) {
        if v.len() != dim {
            return Err(Error::DimensionMismatch {
                name: "chains",
                expected: dim,
                found: v.len(),
            });
        }
    }
    Ok(dim)
}

/// The validated scalar chains of coordinate `index`.
fn coordinate_chains<D: Dim, T: AsRef<[OVector<f64, D>]>>(
    chains: &[T],
    index: usize,
) -> Result<Chains>
where
    DefaultAllocator: Allocator<D>,
{
    let n = chains[0].as_ref().len();
    let data = chains
        .iter()
        .flat_map(|c| c.as_ref().iter().map(|v| v[index]))
        .collect();
    Chains::from_flat(data, chains.len(), n)
}
