//! Wide random neural networks as Gaussian random fields on the sphere.
//!
//! A fully connected network with random weights, restricted to inputs on the unit sphere
//! `Sⁿ ⊂ ℝ^{n+1}`, is a random field `Sⁿ → ℝ^d`. As every hidden width grows it converges to
//! a centred Gaussian field whose covariance is the NNGP kernel; Balasubramanian, Goldstein,
//! Ross & Salim (arXiv 2306.16308) bound the W₁ distance between the two fields in the
//! sup-norm, explicitly in the widths. This module gives the four objects of that statement:
//!
//! | object | type / function | file |
//! |---|---|---|
//! | finite-width random network (any depth, widths, activation, weight law, biases) | [`NetworkSpec`], [`Network`], [`NetworkWorkspace`] | `network.rs` |
//! | NNGP kernel (closed forms for ReLU, step, erf; Gauss–Hermite otherwise) | [`Nngp`] (a [`Kernel`](crate::Kernel)) | `nngp.rs` |
//! | the Gaussian limit on a point set; GP posterior on noisy observations | [`GaussianField`], [`GpPosterior`], [`Jitter`] | `limit.rs` |
//! | distances between the two | [`one_point_w1`], [`sliced_w1_to_gaussian`], [`sup_norm_proxy`], … | `distance.rs` |
//!
//! # Conventions
//!
//! `z¹ = W⁰x + b⁰` with `Var W⁰_ij = σ_w0²` (no fan-in factor: `‖x‖ = 1`),
//! `z^{ℓ+1} = Wˡσ(zˡ) + bˡ` with `Var Wˡ_ij = σ_w²/n_ℓ`, `Var b = σ_b²`; the kernel recursion
//! [`Nngp`] uses the same convention, so `spec.nngp()` is the limit of `spec.sample(rng)`.
//! Both are defined on all of `ℝ^{n+1}` and agree there too; on the sphere the kernel depends
//! on `xᵀy` only ([`Nngp::zonal`]). [`project_to_sphere`] normalises inputs.
//!
//! # Example
//!
//! ```
//! use klflow::field::{Activation, GaussianField, Jitter, NetworkSpec, NetworkWorkspace, circle_points};
//! use nalgebra::DMatrix;
//! use rand::{SeedableRng, rngs::ChaCha8Rng};
//!
//! let spec = NetworkSpec::new(2, &[512], 1, Activation::Relu)?.with_weight_variances(1.0, 2.0)?;
//! let pts = circle_points(200);
//! let mut rng = ChaCha8Rng::seed_from_u64(11);
//!
//! // A wide network on the circle ...
//! let net = spec.sample(&mut rng);
//! let mut ws = NetworkWorkspace::new(&spec, 200);
//! let mut f = DMatrix::zeros(1, 200);
//! net.eval_batch(&pts, &mut f, &mut ws)?;
//!
//! // ... and a draw of its Gaussian limit at the same points.
//! let limit = GaussianField::new(&spec.nngp(), &pts, Jitter::default())?;
//! let g = limit.sample(&mut rng);
//! assert_eq!((f.ncols(), g.len()), (200, 200));
//! # Ok::<(), klflow::Error>(())
//! ```

mod activation;
mod distance;
mod limit;
mod network;
mod nngp;
mod sphere;

pub use crate::diagnostics::{normal_cdf, normal_quantile};
pub use crate::quadrature::{GaussHermite, MAX_GH_NODES};
pub use activation::{Activation, CustomActivation, ScalarFn};
pub use distance::{
    Estimate, OnePointW1, one_point_w1, sliced_w1, sliced_w1_to_gaussian, sup_norm_proxy,
    w1_empirical_normal, w1_scale_mixture_normal,
};
pub use limit::{GaussianField, GpPosterior, Jitter, cross_kernel_matrix, kernel_matrix};
pub use network::{Network, NetworkSpec, NetworkWorkspace, Standardized, WeightLaw};
pub use nngp::{DEFAULT_GH_NODES, Nngp};
pub use sphere::{circle_points, fibonacci_sphere, project_to_sphere, random_rotation};
