//! The forward Ornstein–Uhlenbeck process, its marginals, time grids, and the VP-SDE time change.

use nalgebra::{DefaultAllocator, Dim, OVector};
use rand::Rng;

use crate::dim::{Alloc, fill_standard_normal};
use crate::error::{Error, Result, positive};
use crate::gaussian::Gaussian;
use crate::potential::GaussianMixture;

/// The forward process `dX = −X dt + √2 dB`: `X_t = e^{−t}X₀ + σ_t Z`, `σ_t² = 1 − e^{−2t}`.
///
/// All functions are associated (the process has no parameters).
///
/// # Example
///
/// ```
/// use klflow::diffusion::ForwardOu;
/// use klflow::potential::Gaussian;
/// use nalgebra::{SVector, Vector1};
///
/// // Data N(1.5, 0.25): q_t = N(1.5 e^{−t}, 0.25 e^{−2t} + 1 − e^{−2t}).
/// let data = Gaussian::isotropic(Vector1::new(1.5), 0.25)?;
/// let q1 = ForwardOu::marginal_gaussian(&data, 1.0)?;
/// let a = (-1.0f64).exp();
/// assert!((q1.mean()[0] - 1.5 * a).abs() < 1e-15);
/// assert!((q1.covariance()[(0, 0)] - (0.25 * a * a + 1.0 - a * a)).abs() < 1e-15);
/// assert!((ForwardOu::variance(1e-9) - 2e-9).abs() < 1e-17); // no cancellation near 0
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForwardOu;

impl ForwardOu {
    /// `e^{−t}`, the factor on the data.
    pub fn mean_factor(t: f64) -> f64 {
        (-t).exp()
    }

    /// `σ_t² = 1 − e^{−2t}`, the variance of the added noise (accurate for small `t`).
    pub fn variance(t: f64) -> f64 {
        -(-2.0 * t).exp_m1()
    }

    /// The marginal `q_t = N(e^{−t}μ, e^{−2t}Σ + σ_t² I)` of Gaussian data `N(μ, Σ)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming `t` if it is negative or not finite.
    pub fn marginal_gaussian<D: Dim>(data: &Gaussian<D>, t: f64) -> Result<Gaussian<D>>
    where
        DefaultAllocator: Alloc<D>,
    {
        check_time(t)?;
        let a = Self::mean_factor(t);
        let mut cov = data.covariance() * (a * a);
        for i in 0..cov.nrows() {
            cov[(i, i)] += Self::variance(t);
        }
        Gaussian::new(data.mean() * a, cov)
    }

    /// The marginal `q_t = Σ_j w_j N(e^{−t}μ_j, e^{−2t}Σ_j + σ_t² I)` of mixture data.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming `t` if it is negative or not finite.
    pub fn marginal_mixture<D: Dim>(data: &GaussianMixture<D>, t: f64) -> Result<GaussianMixture<D>>
    where
        DefaultAllocator: Alloc<D>,
    {
        let comps = data
            .components()
            .iter()
            .map(|c| Self::marginal_gaussian(c, t))
            .collect::<Result<Vec<_>>>()?;
        GaussianMixture::new(data.weights(), comps)
    }

    /// Writes a draw of `X_t | X₀ = x0` into `out` and the standard normal noise `Z` used into
    /// `noise` (the regression target of denoising score matching).
    pub fn sample_conditional<D: Dim, R: Rng + ?Sized>(
        x0: &OVector<f64, D>,
        t: f64,
        out: &mut OVector<f64, D>,
        noise: &mut OVector<f64, D>,
        rng: &mut R,
    ) where
        DefaultAllocator: Alloc<D>,
    {
        fill_standard_normal(noise, rng);
        let (a, s) = (Self::mean_factor(t), Self::variance(t).sqrt());
        out.copy_from(x0);
        *out *= a;
        out.axpy(s, noise, 1.0);
    }
}

pub(crate) fn check_time(t: f64) -> Result<f64> {
    if t.is_finite() && t >= 0.0 {
        Ok(t)
    } else {
        Err(Error::InvalidParameter {
            name: "t",
            value: t,
            reason: "must be finite and >= 0",
        })
    }
}

/// The forward times `T = t₀ > t₁ > … > t_N = δ ≥ 0` a reverse-time sampler walks through.
///
/// Reverse step `k` goes from forward time `t_k` to `t_{k+1}` with step `h_k = t_k − t_{k+1}`.
/// The score is never evaluated at `t = 0` by the frozen-score schemes (they use `t_k`, the left
/// end in reverse time); Heun and the correctors also evaluate it at `t_{k+1}`, so keep `δ > 0`
/// for data without a density (point masses).
///
/// # Example
///
/// ```
/// use klflow::diffusion::TimeGrid;
///
/// let g = TimeGrid::geometric(10.0, 1e-3, 1000)?;
/// assert_eq!(g.steps(), 1000);
/// assert_eq!((g.times()[0], g.end()), (10.0, 1e-3));
/// // Constant ratio t_{k+1}/t_k.
/// let r = g.times()[1] / g.times()[0];
/// assert!((g.times()[501] / g.times()[500] - r).abs() < 1e-12);
/// let u = TimeGrid::uniform(8.0, 0.0, 80)?;
/// assert!((u.step_size(79) - 0.1).abs() < 1e-12 && u.end() == 0.0);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TimeGrid {
    times: Vec<f64>,
}

impl TimeGrid {
    /// `N = steps` equal steps from `horizon` (T) down to `end` (δ ≥ 0).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless `0 ≤ end < horizon < ∞` and `steps ≥ 1`.
    pub fn uniform(horizon: f64, end: f64, steps: usize) -> Result<Self> {
        check_ends(horizon, end, steps)?;
        let h = (horizon - end) / steps as f64;
        let mut times: Vec<f64> = (0..steps).map(|k| horizon - k as f64 * h).collect();
        times.push(end);
        Ok(Self { times })
    }

    /// `N = steps` steps with a constant ratio `t_{k+1}/t_k = (δ/T)^{1/N}`: small steps near the
    /// data, where the score changes fast.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless `0 < end < horizon < ∞` and `steps ≥ 1`.
    pub fn geometric(horizon: f64, end: f64, steps: usize) -> Result<Self> {
        check_ends(horizon, end, steps)?;
        positive("end", end)?;
        let ln_ratio = (end / horizon).ln() / steps as f64;
        let mut times: Vec<f64> = (0..steps)
            .map(|k| horizon * (k as f64 * ln_ratio).exp())
            .collect();
        times.push(end);
        Ok(Self { times })
    }

    /// A grid from explicit forward times, strictly decreasing, finite, ending at `δ ≥ 0`.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] with fewer than two times; [`Error::InvalidParameter`] naming `times`
    /// if they are not finite, not strictly decreasing, or the last is negative.
    pub fn from_times(times: Vec<f64>) -> Result<Self> {
        if times.len() < 2 {
            return Err(Error::Empty { name: "times" });
        }
        let bad = |value, reason| {
            Err(Error::InvalidParameter {
                name: "times",
                value,
                reason,
            })
        };
        if let Some(&v) = times.iter().find(|v| !v.is_finite()) {
            return bad(v, "must be finite");
        }
        if let Some(w) = times.windows(2).find(|w| !(w[1] < w[0])) {
            return bad(w[1], "must be strictly decreasing");
        }
        let last = times[times.len() - 1];
        if last < 0.0 {
            return bad(last, "must end at a time >= 0");
        }
        Ok(Self { times })
    }

    /// The grid of a β-schedule VP-SDE mapped to this crate's OU time: the VP times
    /// `s_k = 1 − k(1 − s_end)/N` become `t_k = schedule.ou_time(s_k)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless `0 ≤ s_end < 1` and `steps ≥ 1`.
    pub fn from_vp(schedule: &VpSchedule, s_end: f64, steps: usize) -> Result<Self> {
        let s = Self::uniform(1.0, s_end, steps)?;
        Self::from_times(s.times.iter().map(|&s| schedule.ou_time(s)).collect())
    }

    /// The times `t₀ = T, …, t_N = δ`.
    pub fn times(&self) -> &[f64] {
        &self.times
    }

    /// The number of steps `N`.
    pub fn steps(&self) -> usize {
        self.times.len() - 1
    }

    /// The horizon `T = t₀`.
    pub fn horizon(&self) -> f64 {
        self.times[0]
    }

    /// The final time `δ = t_N`.
    pub fn end(&self) -> f64 {
        self.times[self.times.len() - 1]
    }

    /// `h_k = t_k − t_{k+1}`.
    ///
    /// # Panics
    ///
    /// If `k ≥ N`.
    pub fn step_size(&self, k: usize) -> f64 {
        self.times[k] - self.times[k + 1]
    }
}

fn check_ends(horizon: f64, end: f64, steps: usize) -> Result<()> {
    positive("horizon", horizon)?;
    if !(end >= 0.0 && end < horizon) {
        return Err(Error::InvalidParameter {
            name: "end",
            value: end,
            reason: "must satisfy 0 <= end < horizon",
        });
    }
    if steps == 0 {
        return Err(Error::InvalidParameter {
            name: "steps",
            value: 0.0,
            reason: "must be >= 1",
        });
    }
    Ok(())
}

/// The linear β-schedule of DDPM as a time change of the OU process.
///
/// The VP-SDE `dX = −½β(s)X ds + √β(s) dB` on `s ∈ [0, 1]` with
/// `β(s) = β_min + s(β_max − β_min)` is `dX = −X dt + √2 dB` run at the clock
/// `t(s) = ½∫₀ˢβ = ½(β_min s + ½(β_max − β_min)s²)`. Its marginal at `s` is `q_{t(s)}` and its
/// score is `∇log q_{t(s)}` — the same function, no rescaling; only the clock changes. DDPM's
/// discrete `β_i` for `i = 1..M` correspond to `β(s) ≈ Mβ_i`.
///
/// # Example
///
/// ```
/// use klflow::diffusion::VpSchedule;
///
/// let vp = VpSchedule::linear(0.1, 20.0)?; // Song et al.'s defaults
/// assert!((vp.ou_time(1.0) - 0.5 * (0.1 + 0.5 * 19.9)).abs() < 1e-12);
/// assert!((vp.vp_time(vp.ou_time(0.3)) - 0.3).abs() < 1e-12);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct VpSchedule {
    beta_min: f64,
    beta_max: f64,
}

impl VpSchedule {
    /// `β(s) = β_min + s(β_max − β_min)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless `0 < β_min ≤ β_max < ∞`.
    pub fn linear(beta_min: f64, beta_max: f64) -> Result<Self> {
        positive("beta_min", beta_min)?;
        positive("beta_max", beta_max)?;
        if beta_max < beta_min {
            return Err(Error::InvalidParameter {
                name: "beta_max",
                value: beta_max,
                reason: "must be >= beta_min",
            });
        }
        Ok(Self { beta_min, beta_max })
    }

    /// `β(s)`.
    pub fn beta(&self, s: f64) -> f64 {
        self.beta_min + s * (self.beta_max - self.beta_min)
    }

    /// The OU time `t(s) = ½(β_min s + ½(β_max − β_min)s²)`.
    pub fn ou_time(&self, s: f64) -> f64 {
        0.5 * (self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s * s)
    }

    /// The VP time `s(t)`, the inverse of [`ou_time`](VpSchedule::ou_time) (for `t ≥ 0`).
    pub fn vp_time(&self, t: f64) -> f64 {
        let (b0, db) = (self.beta_min, self.beta_max - self.beta_min);
        // ¼db s² + ½b0 s − t = 0, in the cancellation-free form of the positive root.
        2.0 * t / (0.5 * b0 + (0.25 * b0 * b0 + db * t).sqrt())
    }
}
