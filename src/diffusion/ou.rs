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
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::ForwardOu;
    ///
    /// assert_eq!(ForwardOu::mean_factor(0.0), 1.0);
    /// assert!((ForwardOu::mean_factor(2f64.ln()) - 0.5).abs() < 1e-15);
    /// ```
    pub fn mean_factor(t: f64) -> f64 {
        (-t).exp()
    }

    /// `σ_t² = 1 − e^{−2t}`, the variance of the added noise (accurate for small `t`).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::ForwardOu;
    ///
    /// // N(0, I) is invariant: e^{−2t} + σ_t² = 1.
    /// for t in [1e-6, 0.1, 1.0, 10.0] {
    ///     assert!((ForwardOu::mean_factor(t).powi(2) + ForwardOu::variance(t) - 1.0).abs() < 1e-15);
    /// }
    /// ```
    pub fn variance(t: f64) -> f64 {
        -(-2.0 * t).exp_m1()
    }

    /// The marginal `q_t = N(e^{−t}μ, e^{−2t}Σ + σ_t² I)` of Gaussian data `N(μ, Σ)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming `t` if it is negative or not finite.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, diffusion::ForwardOu, potential::Gaussian};
    /// use nalgebra::Const;
    ///
    /// // N(0, I) is the stationary law: q_t = N(0, I) for every t.
    /// let data = Gaussian::standard(Const::<2>);
    /// let q = ForwardOu::marginal_gaussian(&data, 0.7)?;
    /// assert!((q.covariance() - data.covariance()).norm() < 1e-15);
    /// assert!(matches!(ForwardOu::marginal_gaussian(&data, -1.0), Err(Error::InvalidParameter { name: "t", .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
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
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::ForwardOu;
    /// use klflow::potential::{Gaussian, GaussianMixture};
    /// use nalgebra::Vector1;
    ///
    /// let comp = |m: f64| Gaussian::isotropic(Vector1::new(m), 0.5);
    /// let data = GaussianMixture::new(&[0.25, 0.75], vec![comp(-2.0)?, comp(2.0)?])?;
    /// let q = ForwardOu::marginal_mixture(&data, 1.0)?;
    /// // The weights are kept; each component is noised: mean e^{−1}μ_j.
    /// assert_eq!(q.weights(), data.weights());
    /// assert!((q.components()[1].mean()[0] - 2.0 * (-1.0f64).exp()).abs() < 1e-15);
    /// assert!((q.mean()[0] - data.mean()[0] * (-1.0f64).exp()).abs() < 1e-14);
    /// # Ok::<(), klflow::Error>(())
    /// ```
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
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::ForwardOu;
    /// use nalgebra::Vector2;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let (x0, t) = (Vector2::new(2.0, -1.0), 0.5);
    /// let (mut xt, mut z) = (Vector2::zeros(), Vector2::zeros());
    /// ForwardOu::sample_conditional(&x0, t, &mut xt, &mut z, &mut ChaCha8Rng::seed_from_u64(0));
    /// // x_t = e^{−t}x₀ + σ_t z with the returned z.
    /// let expected = x0 * ForwardOu::mean_factor(t) + z * ForwardOu::variance(t).sqrt();
    /// assert!((xt - expected).norm() < 1e-15);
    /// ```
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
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, diffusion::TimeGrid};
    ///
    /// let g = TimeGrid::uniform(1.0, 0.2, 4)?;
    /// let expected = [1.0, 0.8, 0.6, 0.4, 0.2];
    /// assert!(g.times().iter().zip(expected).all(|(t, e)| (t - e).abs() < 1e-15));
    /// assert!(matches!(TimeGrid::uniform(1.0, 1.0, 4), Err(Error::InvalidParameter { name: "end", .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
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
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::TimeGrid;
    ///
    /// let g = TimeGrid::geometric(1.0, 0.01, 2)?;
    /// assert!((g.times()[1] - 0.1).abs() < 1e-15); // ratio (0.01)^{1/2}
    /// assert!(TimeGrid::geometric(1.0, 0.0, 2).is_err()); // a geometric grid cannot reach 0
    /// # Ok::<(), klflow::Error>(())
    /// ```
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
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, diffusion::TimeGrid};
    ///
    /// let g = TimeGrid::from_times(vec![5.0, 1.0, 0.1, 0.0])?;
    /// assert_eq!((g.steps(), g.step_size(0)), (3, 4.0));
    /// assert!(matches!(TimeGrid::from_times(vec![1.0, 2.0]), Err(Error::InvalidParameter { name: "times", .. })));
    /// assert!(matches!(TimeGrid::from_times(vec![1.0]), Err(Error::Empty { name: "times" })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
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
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{TimeGrid, VpSchedule};
    ///
    /// let vp = VpSchedule::linear(0.1, 20.0)?;
    /// let g = TimeGrid::from_vp(&vp, 1e-3, 1000)?;
    /// assert_eq!(g.steps(), 1000);
    /// assert!((g.horizon() - vp.ou_time(1.0)).abs() < 1e-12);
    /// assert!((g.end() - vp.ou_time(1e-3)).abs() < 1e-15);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn from_vp(schedule: &VpSchedule, s_end: f64, steps: usize) -> Result<Self> {
        let s = Self::uniform(1.0, s_end, steps)?;
        Self::from_times(s.times.iter().map(|&s| schedule.ou_time(s)).collect())
    }

    /// The times `t₀ = T, …, t_N = δ`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::TimeGrid;
    ///
    /// let g = TimeGrid::uniform(2.0, 0.0, 2)?;
    /// assert_eq!(g.times(), &[2.0, 1.0, 0.0]); // N + 1 times, decreasing
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn times(&self) -> &[f64] {
        &self.times
    }

    /// The number of steps `N`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::TimeGrid;
    ///
    /// let g = TimeGrid::uniform(2.0, 0.0, 20)?;
    /// assert_eq!(g.steps(), g.times().len() - 1);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn steps(&self) -> usize {
        self.times.len() - 1
    }

    /// The horizon `T = t₀`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::TimeGrid;
    ///
    /// assert_eq!(TimeGrid::geometric(10.0, 1e-3, 50)?.horizon(), 10.0);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn horizon(&self) -> f64 {
        self.times[0]
    }

    /// The final time `δ = t_N`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::TimeGrid;
    ///
    /// assert_eq!(TimeGrid::geometric(10.0, 1e-3, 50)?.end(), 1e-3);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn end(&self) -> f64 {
        self.times[self.times.len() - 1]
    }

    /// `h_k = t_k − t_{k+1}`.
    ///
    /// # Panics
    ///
    /// If `k ≥ N`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::TimeGrid;
    ///
    /// // The steps add up to T − δ.
    /// let g = TimeGrid::geometric(10.0, 1e-3, 50)?;
    /// let total: f64 = (0..g.steps()).map(|k| g.step_size(k)).sum();
    /// assert!((total - (10.0 - 1e-3)).abs() < 1e-12);
    /// assert!(g.step_size(0) > g.step_size(49)); // small steps near the data
    /// # Ok::<(), klflow::Error>(())
    /// ```
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
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, diffusion::VpSchedule};
    ///
    /// assert!(VpSchedule::linear(0.1, 20.0).is_ok());
    /// assert!(matches!(VpSchedule::linear(1.0, 0.5), Err(Error::InvalidParameter { name: "beta_max", .. })));
    /// assert!(VpSchedule::linear(0.0, 20.0).is_err());
    /// # Ok::<(), klflow::Error>(())
    /// ```
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
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::VpSchedule;
    ///
    /// let vp = VpSchedule::linear(0.1, 20.0)?;
    /// assert_eq!((vp.beta(0.0), vp.beta(1.0)), (0.1, 20.0));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn beta(&self, s: f64) -> f64 {
        self.beta_min + s * (self.beta_max - self.beta_min)
    }

    /// The OU time `t(s) = ½(β_min s + ½(β_max − β_min)s²)`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::VpSchedule;
    ///
    /// // dt/ds = β(s)/2 (central difference, exact for a quadratic).
    /// let vp = VpSchedule::linear(0.1, 20.0)?;
    /// let (s, e) = (0.4, 1e-4);
    /// let slope = (vp.ou_time(s + e) - vp.ou_time(s - e)) / (2.0 * e);
    /// assert!((slope - 0.5 * vp.beta(s)).abs() < 1e-8);
    /// assert_eq!(vp.ou_time(0.0), 0.0);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn ou_time(&self, s: f64) -> f64 {
        0.5 * (self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s * s)
    }

    /// The VP time `s(t)`, the inverse of [`ou_time`](VpSchedule::ou_time) (for `t ≥ 0`).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::VpSchedule;
    ///
    /// let vp = VpSchedule::linear(0.1, 20.0)?;
    /// for s in [0.0, 1e-3, 0.5, 1.0] {
    ///     assert!((vp.vp_time(vp.ou_time(s)) - s).abs() < 1e-12);
    /// }
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn vp_time(&self, t: f64) -> f64 {
        let (b0, db) = (self.beta_min, self.beta_max - self.beta_min);
        // ¼db s² + ½b0 s − t = 0, in the cancellation-free form of the positive root.
        2.0 * t / (0.5 * b0 + (0.25 * b0 * b0 + db * t).sqrt())
    }
}
