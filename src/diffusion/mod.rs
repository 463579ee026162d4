//! Score-based diffusion: the [`ScoreModel`] trait.
//!
//! Conventions: the forward process is the Ornstein–Uhlenbeck process
//! `dX = −X dt + √2 dB`, whose marginal at time `t` is `q_t = law(e^{−t}X₀ + √(1 − e^{−2t}) Z)`.
//! A DDPM β-schedule VP-SDE `dX = −½β(s)X ds + √β(s) dB` is this process after the time change
//! `t = ½∫₀ˢβ`. A score model approximates `∇log q_t(x)`.

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, Dim, OVector};

/// An approximation `s(t, x) ≈ ∇log q_t(x)` of the score of the noised data law at forward
/// time `t > 0`.
///
/// Exact score models (Gaussian, mixture, finite data) make rate tests possible; learned models
/// plug into the same samplers.
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
}
