//! Score-based diffusion: the [`ScoreModel`] trait, exact and learned scores, and the reverse-time
//! samplers.
//!
//! **Convention.** The forward process is the Ornstein–Uhlenbeck process
//! `dX = −X dt + √2 dB` ([`ForwardOu`]), whose marginal at time `t` is
//! `q_t = law(e^{−t}X₀ + σ_t Z)`, `σ_t² = 1 − e^{−2t}`, and `q_∞ = N(0, I)`. A DDPM β-schedule
//! VP-SDE `dX = −½β(s)X ds + √β(s) dB` is this process after the time change `t = ½∫₀ˢβ`
//! ([`VpSchedule`]); its score at VP time `s` is `∇log q_{t(s)}`. A score model approximates
//! `∇log q_t(x)` (the score of the noised data law, not `∇U`).
//!
//! **Samplers** walk a [`TimeGrid`] `T = t₀ > … > t_N = δ` backwards and implement
//! [`Sampler`](crate::Sampler): `Init` is a [`DiffusionInit`] (a number of samples drawn from
//! `N(0, I)`, or initial particles), the state holds the particles, and `is_finished` becomes true
//! at `δ`.
//!
//! | sampler | step `k` (forward time `t_k → t_{k+1}`, `h = t_k − t_{k+1}`) | score calls |
//! |---|---|---|
//! | [`Ddpm`], exponential integrator | `y ← e^h y + 2(e^h − 1) s(t_k, y) + √(e^{2h} − 1) ξ` | `t_k` |
//! | [`Ddpm`], Euler–Maruyama | `y ← y + h(y + 2s(t_k, y)) + √(2h) ξ` | `t_k` |
//! | [`ProbabilityFlow`], exponential integrator | `y ← e^h y + (e^h − 1) s(t_k, y)` | `t_k` |
//! | [`ProbabilityFlow`], Heun | trapezoid on `f = y + s` with an Euler predictor | `t_k`, `t_{k+1}` |
//! | [`PredictorCorrector`] | a predictor step, **then** a corrector phase targeting `q_{t_{k+1}}` | predictor's, then `t_{k+1}` |
//!
//! **Exact scores** for tests: [`GaussianScore`], [`MixtureScore`], [`FiniteDataScore`],
//! [`TwoPointScore`], and [`ScoreError`] to add a known error. **Learned**: [`RffScore`]
//! (denoising score matching with time-conditioned random Fourier features, closed-form ridge).
//! Network outputs in other parameterisations (noise ε, clean sample x₀, velocity v) convert
//! through [`FromPrediction`].
//!
//! The exact Gaussian laws of these samplers live in
//! [`oracle::DiffusionOracle`](crate::oracle::DiffusionOracle).

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, Dim, OVector};

mod batch;
mod corrector;
mod ddpm;
mod exact;
mod flow;
mod learned;
mod ou;
mod param;

pub use batch::{BLOCK, DiffusionInfo, DiffusionInit, DiffusionState, MaybeSend, MaybeSync};
pub use corrector::{Corrector, Predictor, PredictorCorrector};
pub use ddpm::{Ddpm, SdeScheme};
pub use exact::{FiniteDataScore, GaussianScore, MixtureScore, ScoreError, TwoPointScore};
pub use flow::{OdeScheme, ProbabilityFlow};
pub use learned::{RffConfig, RffReport, RffScore};
pub use ou::{ForwardOu, TimeGrid, VpSchedule};
pub use param::{FnNetwork, FromPrediction, Network, Parameterisation};

/// An approximation `s(t, x) ≈ ∇log q_t(x)` of the score of the noised data law at forward
/// time `t > 0`.
///
/// Exact score models (Gaussian, mixture, finite data) make rate tests possible; learned models
/// plug into the same samplers. Implementations must be pure (same input, same output); the
/// samplers call [`score_batch`](ScoreModel::score_batch) on blocks of particles, which by default
/// loops over [`score`](ScoreModel::score) and which a model may override with a fused loop
/// (precomputing what depends on `t` only once per block), and the exponential-integrator and
/// Euler steps call [`score_step_batch`](ScoreModel::score_step_batch), which a model may
/// override to combine the score with the point in the same pass.
///
/// # Example
///
/// ```
/// use klflow::diffusion::ScoreModel;
/// use nalgebra::{Const, SVector};
///
/// /// Data N(μ, I): q_t = N(e^{−t}μ, I), so ∇log q_t(x) = e^{−t}μ − x.
/// struct UnitGaussianData(SVector<f64, 2>);
/// impl ScoreModel for UnitGaussianData {
///     type Dim = Const<2>;
///     fn dim(&self) -> Const<2> { Const }
///     fn score(&self, t: f64, x: &SVector<f64, 2>, out: &mut SVector<f64, 2>) {
///         *out = self.0 * (-t).exp() - x;
///     }
/// }
/// let s = UnitGaussianData(nalgebra::Vector2::new(1.0, 2.0));
/// let mut out = SVector::zeros();
/// s.score(0.0, &nalgebra::Vector2::new(1.0, 2.0), &mut out);
/// assert_eq!(out, SVector::<f64, 2>::zeros());
/// ```
pub trait ScoreModel {
    /// The dimension of the data.
    type Dim: Dim;

    /// The dimension (`Const<N>` or `Dyn(d)`).
    fn dim(&self) -> Self::Dim;

    /// Writes `s(t, x)` into `out`.
    fn score(&self, t: f64, x: &OVector<f64, Self::Dim>, out: &mut OVector<f64, Self::Dim>)
    where
        DefaultAllocator: Allocator<Self::Dim>;

    /// Writes `s(t, xs[i])` into `out[i]` for every `i` (the slices have equal lengths).
    ///
    /// The default loops over [`score`](ScoreModel::score); override it when work that depends
    /// only on `t` can be shared across points. Must not allocate.
    fn score_batch(
        &self,
        t: f64,
        xs: &[OVector<f64, Self::Dim>],
        out: &mut [OVector<f64, Self::Dim>],
    ) where
        DefaultAllocator: Allocator<Self::Dim>,
    {
        for (x, o) in xs.iter().zip(out.iter_mut()) {
            self.score(t, x, o);
        }
    }

    /// Replaces every `xs[i]` by `p·xs[i] + q·s(t, xs[i])`, elementwise `p * x + q * s`
    /// (two products and a sum, each rounded): the drift part of the exponential-integrator
    /// and Euler steps. `scratch` has the length of `xs` and may be overwritten.
    ///
    /// The default calls [`score_batch`](ScoreModel::score_batch) into `scratch`, then
    /// combines. A model may override it to combine while the score is still in registers
    /// (one pass over the points instead of two); it must give the same result bit for bit.
    /// Must not allocate.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{GaussianScore, ScoreModel};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::{Const, Vector2};
    ///
    /// // Data N(0, I): s(t, x) = −x, so p x + q s = (p − q) x.
    /// let s = GaussianScore::new(&Gaussian::standard(Const::<2>));
    /// let mut xs = vec![Vector2::new(1.0, -2.0), Vector2::new(0.5, 4.0)];
    /// let mut scratch = xs.clone();
    /// s.score_step_batch(0.7, 3.0, 0.5, &mut xs, &mut scratch);
    /// assert!((xs[0] - Vector2::new(2.5, -5.0)).norm() < 1e-12);
    /// assert!((xs[1] - Vector2::new(1.25, 10.0)).norm() < 1e-12);
    /// ```
    fn score_step_batch(
        &self,
        t: f64,
        p: f64,
        q: f64,
        xs: &mut [OVector<f64, Self::Dim>],
        scratch: &mut [OVector<f64, Self::Dim>],
    ) where
        DefaultAllocator: Allocator<Self::Dim>,
    {
        self.score_batch(t, xs, scratch);
        for (x, s) in xs.iter_mut().zip(scratch.iter()) {
            for (xv, sv) in x.as_mut_slice().iter_mut().zip(s.as_slice()) {
                *xv = p * *xv + q * sv;
            }
        }
    }
}

impl<S: ScoreModel + ?Sized> ScoreModel for &S {
    type Dim = S::Dim;
    fn dim(&self) -> S::Dim {
        (**self).dim()
    }
    fn score(&self, t: f64, x: &OVector<f64, S::Dim>, out: &mut OVector<f64, S::Dim>)
    where
        DefaultAllocator: Allocator<S::Dim>,
    {
        (**self).score(t, x, out)
    }
    fn score_batch(&self, t: f64, xs: &[OVector<f64, S::Dim>], out: &mut [OVector<f64, S::Dim>])
    where
        DefaultAllocator: Allocator<S::Dim>,
    {
        (**self).score_batch(t, xs, out)
    }
    fn score_step_batch(
        &self,
        t: f64,
        p: f64,
        q: f64,
        xs: &mut [OVector<f64, S::Dim>],
        scratch: &mut [OVector<f64, S::Dim>],
    ) where
        DefaultAllocator: Allocator<S::Dim>,
    {
        (**self).score_step_batch(t, p, q, xs, scratch)
    }
}
