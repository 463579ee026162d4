//! Adapters from the usual network parameterisations (noise ε, clean sample x₀, velocity v) to a
//! score.

use std::marker::PhantomData;

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, Dim, OVector};

use crate::diffusion::{ForwardOu, ScoreModel};

/// What a network predicts from `(t, x_t)`, where `x_t = αx₀ + σε`, `α = e^{−t}`,
/// `σ = √(1 − e^{−2t})` (so `α² + σ² = 1`).
///
/// | variant | prediction | score |
/// |---|---|---|
/// | `Noise` | `ε̂ ≈ E[ε | x_t]` | `−ε̂/σ` |
/// | `CleanSample` | `x̂₀ ≈ E[x₀ | x_t]` | `(αx̂₀ − x)/σ²` |
/// | `Velocity` | `v̂ ≈ E[αε − σx₀ | x_t]` | `−(αv̂ + σx)/σ` (since `ε = αv + σx_t`) |
/// | `Score` | `ŝ` | `ŝ` |
///
/// # Example
///
/// ```
/// use klflow::diffusion::{FnNetwork, FromPrediction, Parameterisation, ScoreModel};
/// use nalgebra::{Const, Vector1};
///
/// // Data N(0, 1): q_t = N(0, 1), E[ε | x_t] = σx_t and E[x₀ | x_t] = αx_t, so the exact
/// // velocity prediction αE[ε | x_t] − σE[x₀ | x_t] is 0 — and the score is −x.
/// let v = FnNetwork::new(Const::<1>, |_t: f64, _x: &Vector1<f64>, out: &mut Vector1<f64>| {
///     out[0] = 0.0;
/// });
/// let s = FromPrediction::new(v, Parameterisation::Velocity);
/// let mut out = Vector1::zeros();
/// s.score(0.3, &Vector1::new(1.7), &mut out);
/// assert!((out[0] + 1.7).abs() < 1e-12);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Parameterisation {
    /// Noise prediction (DDPM's ε-network).
    Noise,
    /// Clean-sample (x₀, "denoiser") prediction.
    CleanSample,
    /// Velocity (v) prediction.
    Velocity,
    /// The score itself.
    Score,
}

/// A network `f(t, x)` in some [`Parameterisation`]; wrap it in [`FromPrediction`] to get a
/// [`ScoreModel`].
///
/// # Example
///
/// ```
/// use klflow::diffusion::{FromPrediction, Network, Parameterisation, ScoreModel};
/// use nalgebra::{Const, Vector2};
///
/// /// An x₀-predictor that always answers the data point `a` (point-mass data).
/// struct Denoiser(Vector2<f64>);
/// impl Network for Denoiser {
///     type Dim = Const<2>;
///     fn dim(&self) -> Const<2> { Const }
///     fn predict(&self, _t: f64, _x: &Vector2<f64>, out: &mut Vector2<f64>) {
///         *out = self.0;
///     }
/// }
/// let s = FromPrediction::new(Denoiser(Vector2::new(1.0, -1.0)), Parameterisation::CleanSample);
/// let mut out = Vector2::zeros();
/// // At x = e^{−t}a the point is on the noised data mean: zero score.
/// let t = 0.5f64;
/// s.score(t, &(Vector2::new(1.0, -1.0) * (-t).exp()), &mut out);
/// assert!(out.norm() < 1e-12);
/// ```
pub trait Network {
    /// The dimension of the data.
    type Dim: Dim;
    /// The dimension.
    fn dim(&self) -> Self::Dim;
    /// Writes `f(t, x)` into `out`.
    fn predict(&self, t: f64, x: &OVector<f64, Self::Dim>, out: &mut OVector<f64, Self::Dim>)
    where
        DefaultAllocator: Allocator<Self::Dim>;
}

/// A [`Network`] from a closure `Fn(t, &x, &mut out)`.
///
/// # Example
///
/// ```
/// use klflow::diffusion::{FnNetwork, FromPrediction, Parameterisation, ScoreModel};
/// use nalgebra::{Const, Vector1};
///
/// // Data N(0, 1): q_t = N(0, 1), x_t = αx₀ + σε, E[ε | x_t] = σ x_t, score −x.
/// let eps = FnNetwork::new(Const::<1>, |t: f64, x: &Vector1<f64>, out: &mut Vector1<f64>| {
///     *out = x * (1.0 - (-2.0 * t).exp()).sqrt();
/// });
/// let s = FromPrediction::new(eps, Parameterisation::Noise);
/// let mut out = Vector1::zeros();
/// s.score(0.7, &Vector1::new(2.0), &mut out);
/// assert!((out[0] + 2.0).abs() < 1e-12);
/// ```
pub struct FnNetwork<D, F> {
    dim: D,
    f: F,
    _marker: PhantomData<fn() -> D>,
}

impl<D: Dim, F> FnNetwork<D, F> {
    /// Wraps `f` for dimension `dim`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{FnNetwork, Network};
    /// use nalgebra::{Const, Vector1};
    ///
    /// let net = FnNetwork::new(Const::<1>, |t: f64, x: &Vector1<f64>, out: &mut Vector1<f64>| {
    ///     *out = x * t;
    /// });
    /// let mut out = Vector1::zeros();
    /// net.predict(2.0, &Vector1::new(3.0), &mut out);
    /// assert_eq!(out[0], 6.0);
    /// ```
    pub fn new(dim: D, f: F) -> Self {
        Self {
            dim,
            f,
            _marker: PhantomData,
        }
    }
}

impl<D: Dim, F> Network for FnNetwork<D, F>
where
    DefaultAllocator: Allocator<D>,
    F: Fn(f64, &OVector<f64, D>, &mut OVector<f64, D>),
{
    type Dim = D;
    fn dim(&self) -> D {
        self.dim
    }
    fn predict(&self, t: f64, x: &OVector<f64, D>, out: &mut OVector<f64, D>)
    where
        DefaultAllocator: Allocator<D>,
    {
        (self.f)(t, x, out)
    }
}

/// The score of a [`Network`] in a given [`Parameterisation`] (see its table for the formulas).
///
/// The ε and v conversions divide by `σ_t`, the x₀ conversion by `σ_t²`: never call them at
/// `t = 0`.
///
/// # Example
///
/// ```
/// use klflow::diffusion::{FnNetwork, FromPrediction, Parameterisation, ScoreModel};
/// use nalgebra::{Const, Vector1};
///
/// // Point data at 1: E[x₀ | x_t] = 1, score (α − x)/σ².
/// let x0 = FnNetwork::new(Const::<1>, |_t: f64, _x: &Vector1<f64>, out: &mut Vector1<f64>| {
///     out[0] = 1.0;
/// });
/// let s = FromPrediction::new(x0, Parameterisation::CleanSample);
/// let mut out = Vector1::zeros();
/// s.score(1.0, &Vector1::new(0.0), &mut out);
/// let (a, s2) = ((-1.0f64).exp(), 1.0 - (-2.0f64).exp());
/// assert!((out[0] - a / s2).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct FromPrediction<P> {
    model: P,
    kind: Parameterisation,
}

impl<P> FromPrediction<P> {
    /// Reads `model`'s output as `kind`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{FnNetwork, FromPrediction, Parameterisation, ScoreModel};
    /// use nalgebra::{Const, Vector1};
    ///
    /// // `Score` passes the network's output through unchanged.
    /// let net = FnNetwork::new(Const::<1>, |_t: f64, x: &Vector1<f64>, out: &mut Vector1<f64>| {
    ///     *out = -x;
    /// });
    /// let s = FromPrediction::new(net, Parameterisation::Score);
    /// let mut out = Vector1::zeros();
    /// s.score(0.1, &Vector1::new(4.0), &mut out);
    /// assert_eq!(out[0], -4.0);
    /// ```
    pub fn new(model: P, kind: Parameterisation) -> Self {
        Self { model, kind }
    }

    /// The parameterisation.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{FnNetwork, FromPrediction, Parameterisation};
    /// use nalgebra::{Const, Vector1};
    ///
    /// let net = FnNetwork::new(Const::<1>, |_t: f64, _x: &Vector1<f64>, _out: &mut Vector1<f64>| {});
    /// let s = FromPrediction::new(net, Parameterisation::Noise);
    /// assert_eq!(s.parameterisation(), Parameterisation::Noise);
    /// ```
    pub fn parameterisation(&self) -> Parameterisation {
        self.kind
    }

    /// The wrapped network.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{FnNetwork, FromPrediction, Network, Parameterisation};
    /// use nalgebra::{Const, Vector1};
    ///
    /// let net = FnNetwork::new(Const::<1>, |_t: f64, _x: &Vector1<f64>, _out: &mut Vector1<f64>| {});
    /// let s = FromPrediction::new(net, Parameterisation::Noise);
    /// assert_eq!(s.model().dim(), Const::<1>);
    /// ```
    pub fn model(&self) -> &P {
        &self.model
    }
}

impl<P: Network> ScoreModel for FromPrediction<P> {
    type Dim = P::Dim;
    fn dim(&self) -> P::Dim {
        self.model.dim()
    }
    fn score(&self, t: f64, x: &OVector<f64, P::Dim>, out: &mut OVector<f64, P::Dim>)
    where
        DefaultAllocator: Allocator<P::Dim>,
    {
        self.model.predict(t, x, out);
        let a = ForwardOu::mean_factor(t);
        let s2 = ForwardOu::variance(t);
        let s = s2.sqrt();
        match self.kind {
            Parameterisation::Noise => *out *= -1.0 / s,
            Parameterisation::CleanSample => {
                *out *= a / s2;
                out.axpy(-1.0 / s2, x, 1.0);
            }
            Parameterisation::Velocity => {
                *out *= -a / s;
                out.axpy(-1.0, x, 1.0);
            }
            Parameterisation::Score => {}
        }
    }
}
