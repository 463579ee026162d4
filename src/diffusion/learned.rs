//! A learned score: denoising score matching with time-conditioned random Fourier features,
//! fitted by ridge regression in closed form.

use nalgebra::allocator::Allocator;
use nalgebra::{DMatrix, DefaultAllocator, Dim, OVector, U1};
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;

use crate::diffusion::{ForwardOu, ScoreModel};
use crate::dim::{Alloc, check_len};
use crate::error::{Error, Result, finite_input, positive};

/// Settings of [`RffScore::fit`].
///
/// # Example
///
/// ```
/// use klflow::diffusion::RffConfig;
///
/// let c = RffConfig { features: 200, ..RffConfig::default() };
/// assert_eq!((c.features, c.horizon, c.min_time), (200, 10.0, 1e-3));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RffConfig {
    /// Number of random Fourier features `m`.
    pub features: usize,
    /// Length scale of the features in the standardised input (the noised point divided by the
    /// standard deviation of the fitted Gaussian's `q_t`).
    pub length_scale: f64,
    /// Length scale in the time embedding `τ = ln(t/δ)/ln(T/δ) ∈ [0, 1]`.
    pub time_scale: f64,
    /// Ridge penalty, relative to the mean diagonal of the Gram matrix. Much below 1e-4 the
    /// normal equations become ill-conditioned and the fit degrades.
    pub ridge: f64,
    /// Noised copies `(t, z)` drawn per data point.
    pub draws: usize,
    /// The largest training time `T`.
    pub horizon: f64,
    /// The smallest training time `δ`; training times are log-uniform on `[δ, T]`.
    pub min_time: f64,
    /// The fraction of the data held out to report the error.
    pub heldout_fraction: f64,
}

impl Default for RffConfig {
    fn default() -> Self {
        Self {
            features: 500,
            length_scale: 0.3,
            time_scale: 0.5,
            ridge: 1e-3,
            draws: 2,
            horizon: 10.0,
            min_time: 1e-3,
            heldout_fraction: 0.1,
        }
    }
}

/// What [`RffScore::fit`] measured: denoising losses `E‖σ_t s(t, x_t) + z‖²/d` (per coordinate)
/// on the training pairs and on held-out data.
///
/// The denoising loss of a score `s` is that of the exact score plus
/// `E σ_t²‖s − ∇log q_t‖²/d`, so differences between models measure score error; compare with
/// [`denoising_loss`](RffScore::denoising_loss) of a reference on the same data and seed.
///
/// # Example
///
/// ```
/// use klflow::diffusion::{RffConfig, RffScore};
/// use nalgebra::Vector1;
/// use rand::{SeedableRng, RngExt, rngs::ChaCha8Rng};
///
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let data: Vec<Vector1<f64>> = (0..500).map(|_| Vector1::new(rng.random::<f64>())).collect();
/// let cfg = RffConfig { features: 50, draws: 2, heldout_fraction: 0.1, ..RffConfig::default() };
/// let r = RffScore::fit(&data, &cfg, &mut rng)?.report();
/// // 450 training and 50 held-out points, 2 noised copies each.
/// assert_eq!((r.train_pairs, r.heldout_pairs), (900, 100));
/// assert!(r.train_loss > 0.0 && r.heldout_loss.is_finite());
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RffReport {
    /// Loss on the training points (with fresh noise).
    pub train_loss: f64,
    /// Loss on the held-out data (fresh noise).
    pub heldout_loss: f64,
    /// Held-out loss of the fitted Gaussian alone (the model without features).
    pub heldout_baseline_loss: f64,
    /// Number of training pairs.
    pub train_pairs: usize,
    /// Number of held-out pairs.
    pub heldout_pairs: usize,
}

/// A score learned from samples by denoising score matching.
///
/// The model is the exact score of a fitted Gaussian `N(m̂, v̂I)` plus a correction in the
/// noise-prediction parameterisation:
/// `s(t, x) = −(x − e^{−t}m̂)/c_t − (1/σ_t) Σ_k w_k φ_k(t, x)`, `c_t = e^{−2t}v̂ + σ_t²`, with
/// random Fourier features `φ_k = √(2/m) cos(⟨ω_k, x̃⟩/ℓ + ν_k τ/ℓ_τ + b_k)` of the standardised
/// point `x̃ = (x − e^{−t}m̂)/√c_t` and the time `τ = ln(t/δ)/ln(T/δ)`. Training minimises the
/// denoising loss `E‖σ_t s(t, x_t) + z‖²` over `x_t = e^{−t}x₀ + σ_t z` with `t` log-uniform on
/// `[δ, T]`; the loss is quadratic in `w`, so the fit is a ridge regression solved in closed form
/// (Cholesky of the `m × m` Gram matrix). A few hundred features train in about a second.
///
/// # Example
///
/// ```
/// use klflow::diffusion::{RffConfig, RffScore};
/// use nalgebra::Vector1;
/// use rand::{SeedableRng, RngExt, rngs::ChaCha8Rng};
///
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// // Two clusters at ±2.
/// let data: Vec<Vector1<f64>> = (0..2_000)
///     .map(|i| Vector1::new(if i % 2 == 0 { 2.0 } else { -2.0 } + 0.3 * rng.random::<f64>()))
///     .collect();
/// let cfg = RffConfig { features: 100, ..RffConfig::default() };
/// let model = RffScore::fit(&data, &cfg, &mut rng)?;
/// let r = model.report();
/// assert!(r.heldout_loss < r.heldout_baseline_loss); // the features help
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct RffScore<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    mean: OVector<f64, D>,
    variance: f64,
    omega: Vec<OVector<f64, D>>,
    omega_mean: Vec<f64>,
    nu: Vec<f64>,
    phase: Vec<f64>,
    weights: Vec<OVector<f64, D>>,
    config: RffConfig,
    ln_span: f64,
    report: RffReport,
}

impl<D: Dim> RffScore<D>
where
    DefaultAllocator: Alloc<D>,
{
    /// Fits the model to `data` (shuffled, then split into training and held-out parts).
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] with fewer than two points; [`Error::DimensionMismatch`] /
    /// [`Error::NonFiniteInput`] naming `data`; [`Error::InvalidParameter`] for an invalid
    /// setting; [`Error::NotPositiveDefinite`] naming `gram` if the regularised Gram matrix is
    /// not (numerically) positive definite.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, diffusion::{RffConfig, RffScore, ScoreModel}};
    /// use nalgebra::Vector1;
    /// use rand::{SeedableRng, RngExt, rngs::ChaCha8Rng};
    ///
    /// let mut rng = ChaCha8Rng::seed_from_u64(1);
    /// // Data N(0, 1): the exact score is −x at every t.
    /// let data: Vec<Vector1<f64>> = (0..1_000).map(|_| Vector1::new(rng.sample(rand_distr::StandardNormal))).collect();
    /// let model = RffScore::fit(&data, &RffConfig { features: 50, ..RffConfig::default() }, &mut rng)?;
    /// let mut out = Vector1::zeros();
    /// model.score(1.0, &Vector1::new(1.0), &mut out);
    /// assert!((out[0] + 1.0).abs() < 0.2);
    /// assert!(matches!(RffScore::fit(&data[..1], &RffConfig::default(), &mut rng), Err(Error::Empty { .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn fit<R: Rng + ?Sized>(
        data: &[OVector<f64, D>],
        config: &RffConfig,
        rng: &mut R,
    ) -> Result<Self> {
        let cfg = *config;
        positive("features", cfg.features as f64)?;
        positive("length_scale", cfg.length_scale)?;
        positive("time_scale", cfg.time_scale)?;
        positive("ridge", cfg.ridge)?;
        positive("draws", cfg.draws as f64)?;
        positive("min_time", cfg.min_time)?;
        if !(cfg.horizon > cfg.min_time && cfg.horizon.is_finite()) {
            return Err(Error::InvalidParameter {
                name: "horizon",
                value: cfg.horizon,
                reason: "must be finite and > min_time",
            });
        }
        if !(0.0..1.0).contains(&cfg.heldout_fraction) {
            return Err(Error::InvalidParameter {
                name: "heldout_fraction",
                value: cfg.heldout_fraction,
                reason: "must lie in [0, 1)",
            });
        }
        let first = data.first().ok_or(Error::Empty { name: "data" })?;
        let dim = first.shape_generic().0;
        for x in data {
            check_len("data", dim, x)?;
            finite_input("data", x.as_slice())?;
        }
        let mut idx: Vec<usize> = (0..data.len()).collect();
        for i in (1..idx.len()).rev() {
            idx.swap(i, rng.random_range(0..=i));
        }
        let n_held = ((data.len() as f64) * cfg.heldout_fraction).round() as usize;
        let (held, train) = idx.split_at(n_held);
        if train.len() < 2 {
            return Err(Error::Empty { name: "data" });
        }
        let d = dim.value();
        let nt = train.len() as f64;
        let mut mean = OVector::<f64, D>::zeros_generic(dim, U1);
        for &i in train {
            mean += &data[i];
        }
        mean /= nt;
        let variance = train
            .iter()
            .map(|&i| (&data[i] - &mean).norm_squared())
            .sum::<f64>()
            / (nt * d as f64);
        let m = cfg.features;
        let draw = |rng: &mut R, s: f64| {
            let mut v = OVector::<f64, D>::zeros_generic(dim, U1);
            for x in v.iter_mut() {
                *x = s * rng.sample::<f64, _>(StandardNormal);
            }
            v
        };
        let omega: Vec<_> = (0..m).map(|_| draw(rng, 1.0 / cfg.length_scale)).collect();
        let nu = (0..m)
            .map(|_| rng.sample::<f64, _>(StandardNormal) / cfg.time_scale)
            .collect();
        let phase = (0..m)
            .map(|_| std::f64::consts::TAU * rng.random::<f64>())
            .collect();
        let omega_mean = omega.iter().map(|w| w.dot(&mean)).collect();
        let zero = OVector::<f64, D>::zeros_generic(dim, U1);
        let mut model = Self {
            mean,
            variance: variance.max(f64::MIN_POSITIVE),
            omega,
            omega_mean,
            nu,
            phase,
            weights: vec![zero.clone(); m],
            config: cfg,
            ln_span: (cfg.horizon / cfg.min_time).ln(),
            report: RffReport {
                train_loss: 0.0,
                heldout_loss: 0.0,
                heldout_baseline_loss: 0.0,
                train_pairs: 0,
                heldout_pairs: 0,
            },
        };
        // Normal equations (ΦᵀΦ/n + λI) W = ΦᵀY/n, accumulated over chunks of pairs.
        const CHUNK: usize = 1024;
        let pairs = train.len() * cfg.draws;
        let mut gram = DMatrix::<f64>::zeros(m, m);
        let mut rhs = DMatrix::<f64>::zeros(m, d);
        let mut phi = DMatrix::<f64>::zeros(CHUNK, m);
        let mut y = DMatrix::<f64>::zeros(CHUNK, d);
        let (mut xt, mut z, mut base) = (zero.clone(), zero.clone(), zero.clone());
        let mut feat = vec![0.0; m];
        let mut row = 0;
        for (p, &i) in train
            .iter()
            .flat_map(|i| std::iter::repeat_n(i, cfg.draws))
            .enumerate()
        {
            let t = model.draw_time(rng);
            ForwardOu::sample_conditional(&data[i], t, &mut xt, &mut z, rng);
            model.features(t, &xt, &mut feat);
            let s = ForwardOu::variance(t).sqrt();
            model.base_score(t, &xt, &mut base);
            for c in 0..d {
                y[(row, c)] = s * base[c] + z[c];
            }
            for (k, f) in feat.iter().enumerate() {
                phi[(row, k)] = *f;
            }
            row += 1;
            if row == CHUNK || p + 1 == pairs {
                let (a, b) = (phi.rows(0, row), y.rows(0, row));
                gram.gemm_tr(1.0, &a, &a, 1.0);
                rhs.gemm_tr(1.0, &a, &b, 1.0);
                row = 0;
            }
        }
        let np = pairs as f64;
        gram /= np;
        rhs /= np;
        let scale = gram.diagonal().mean();
        for k in 0..m {
            gram[(k, k)] += cfg.ridge * scale;
        }
        let chol = gram
            .cholesky()
            .ok_or(Error::NotPositiveDefinite { name: "gram" })?;
        let w = chol.solve(&rhs);
        for (k, wk) in model.weights.iter_mut().enumerate() {
            for c in 0..d {
                wk[c] = w[(k, c)];
            }
        }
        let train_data: Vec<_> = train.iter().map(|&i| data[i].clone()).collect();
        let held_data: Vec<_> = held.iter().map(|&i| data[i].clone()).collect();
        let train_loss = model.loss_on(&train_data, 1, rng, false);
        let (heldout_loss, heldout_baseline_loss) = if held_data.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            (
                model.loss_on(&held_data, cfg.draws, rng, false),
                model.loss_on(&held_data, cfg.draws, rng, true),
            )
        };
        model.report = RffReport {
            train_loss,
            heldout_loss,
            heldout_baseline_loss,
            train_pairs: pairs,
            heldout_pairs: held_data.len() * cfg.draws,
        };
        Ok(model)
    }

    fn loss_on<R: Rng + ?Sized>(
        &self,
        data: &[OVector<f64, D>],
        draws: usize,
        rng: &mut R,
        baseline: bool,
    ) -> f64 {
        if baseline {
            let base = BaseOnly(self);
            denoising_loss(
                &base,
                data,
                draws,
                self.config.horizon,
                self.config.min_time,
                rng,
            )
        } else {
            denoising_loss(
                self,
                data,
                draws,
                self.config.horizon,
                self.config.min_time,
                rng,
            )
        }
    }

    fn draw_time<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        self.config.min_time * (self.ln_span * rng.random::<f64>()).exp()
    }

    fn tau(&self, t: f64) -> f64 {
        (t / self.config.min_time).ln() / self.ln_span
    }

    /// `(e^{−t}, σ_t², 1/√c_t)`.
    fn consts(&self, t: f64) -> (f64, f64, f64) {
        let (a, s2) = (ForwardOu::mean_factor(t), ForwardOu::variance(t));
        (a, s2, 1.0 / (a * a * self.variance + s2).sqrt())
    }

    fn base_score(&self, t: f64, x: &OVector<f64, D>, out: &mut OVector<f64, D>) {
        let (a, _, ic) = self.consts(t);
        for ((o, xv), mv) in out.iter_mut().zip(x.iter()).zip(self.mean.iter()) {
            *o = -(xv - a * mv) * ic * ic;
        }
    }

    #[inline]
    fn feature(&self, k: usize, a: f64, ic: f64, tau: f64, x: &OVector<f64, D>) -> f64 {
        let arg =
            (self.omega[k].dot(x) - a * self.omega_mean[k]) * ic + self.nu[k] * tau + self.phase[k];
        arg.cos()
    }

    fn features(&self, t: f64, x: &OVector<f64, D>, out: &mut [f64]) {
        let (a, _, ic) = self.consts(t);
        let (tau, c) = (self.tau(t), (2.0 / self.omega.len() as f64).sqrt());
        for (k, o) in out.iter_mut().enumerate() {
            *o = c * self.feature(k, a, ic, tau, x);
        }
    }

    /// What the fit measured.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{RffConfig, RffScore};
    /// use nalgebra::Vector1;
    /// use rand::{SeedableRng, RngExt, rngs::ChaCha8Rng};
    ///
    /// let mut rng = ChaCha8Rng::seed_from_u64(2);
    /// let data: Vec<Vector1<f64>> = (0..400).map(|_| Vector1::new(rng.random::<f64>())).collect();
    /// let cfg = RffConfig { features: 40, draws: 1, heldout_fraction: 0.25, ..RffConfig::default() };
    /// let r = RffScore::fit(&data, &cfg, &mut rng)?.report();
    /// assert_eq!(r.train_pairs + r.heldout_pairs, 400);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn report(&self) -> RffReport {
        self.report
    }

    /// The settings it was fitted with.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{RffConfig, RffScore};
    /// use nalgebra::Vector1;
    /// use rand::{SeedableRng, RngExt, rngs::ChaCha8Rng};
    ///
    /// let mut rng = ChaCha8Rng::seed_from_u64(3);
    /// let data: Vec<Vector1<f64>> = (0..200).map(|_| Vector1::new(rng.random::<f64>())).collect();
    /// let cfg = RffConfig { features: 30, ..RffConfig::default() };
    /// assert_eq!(RffScore::fit(&data, &cfg, &mut rng)?.config(), &cfg);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn config(&self) -> &RffConfig {
        &self.config
    }

    /// The denoising loss `E‖σ_t s(t, x_t) + z‖²/d` of any score model on `data`, with `draws`
    /// noised copies per point and `t` log-uniform on `[min_time, horizon]`.
    ///
    /// Two models evaluated with the same RNG seed see the same pairs, so the difference of their
    /// losses is the difference of their weighted score errors `E σ_t²‖s − ∇log q_t‖²/d`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{GaussianScore, RffScore};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::{Const, Vector1};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// // Data N(0, 1): the exact score is −x and σ_t s + z = σ_t(αx₀ + σ_t z)·(−1) + z.
    /// let exact = GaussianScore::new(&Gaussian::standard(Const::<1>));
    /// let data = vec![Vector1::new(0.5); 10];
    /// let l = RffScore::denoising_loss(&exact, &data, 5, 10.0, 1e-3, &mut ChaCha8Rng::seed_from_u64(1));
    /// assert!(l.is_finite() && l > 0.0);
    /// ```
    pub fn denoising_loss<S, R>(
        score: &S,
        data: &[OVector<f64, D>],
        draws: usize,
        horizon: f64,
        min_time: f64,
        rng: &mut R,
    ) -> f64
    where
        S: ScoreModel<Dim = D>,
        R: Rng + ?Sized,
    {
        denoising_loss(score, data, draws, horizon, min_time, rng)
    }
}

fn denoising_loss<D: Dim, S: ScoreModel<Dim = D>, R: Rng + ?Sized>(
    score: &S,
    data: &[OVector<f64, D>],
    draws: usize,
    horizon: f64,
    min_time: f64,
    rng: &mut R,
) -> f64
where
    DefaultAllocator: Alloc<D>,
{
    let Some(first) = data.first() else {
        return f64::NAN;
    };
    let ln_span = (horizon / min_time).ln();
    let (mut xt, mut z, mut s) = (first.clone(), first.clone(), first.clone());
    let mut total = 0.0;
    for x0 in data {
        for _ in 0..draws {
            let t = min_time * (ln_span * rng.random::<f64>()).exp();
            ForwardOu::sample_conditional(x0, t, &mut xt, &mut z, rng);
            score.score(t, &xt, &mut s);
            let sig = ForwardOu::variance(t).sqrt();
            total += s
                .iter()
                .zip(z.iter())
                .map(|(sv, zv)| (sig * sv + zv).powi(2))
                .sum::<f64>();
        }
    }
    total / (data.len() * draws * first.len()) as f64
}

/// The fitted Gaussian's score alone (for the baseline loss).
struct BaseOnly<'a, D: Dim>(&'a RffScore<D>)
where
    DefaultAllocator: Alloc<D>;

impl<D: Dim> ScoreModel for BaseOnly<'_, D>
where
    DefaultAllocator: Alloc<D>,
{
    type Dim = D;
    fn dim(&self) -> D {
        self.0.mean.shape_generic().0
    }
    fn score(&self, t: f64, x: &OVector<f64, D>, out: &mut OVector<f64, D>)
    where
        DefaultAllocator: Allocator<D>,
    {
        self.0.base_score(t, x, out);
    }
}

impl<D: Dim> ScoreModel for RffScore<D>
where
    DefaultAllocator: Alloc<D>,
{
    type Dim = D;
    fn dim(&self) -> D {
        self.mean.shape_generic().0
    }
    fn score(&self, t: f64, x: &OVector<f64, D>, out: &mut OVector<f64, D>)
    where
        DefaultAllocator: Allocator<D>,
    {
        self.base_score(t, x, out);
        let (a, s2, ic) = self.consts(t);
        let tau = self.tau(t);
        let c = -(2.0 / self.omega.len() as f64).sqrt() / s2.sqrt();
        for (k, w) in self.weights.iter().enumerate() {
            out.axpy(c * self.feature(k, a, ic, tau, x), w, 1.0);
        }
    }
}
