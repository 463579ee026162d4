//! NNGP kernels: the covariance of the infinite-width limit of a random network.
//!
//! For inputs `x, y ∈ ℝ^{n+1}` (on the sphere, `‖x‖ = ‖y‖ = 1`) the output covariance of
//! the network of [`NetworkSpec`](super::NetworkSpec) converges, as every width grows, to
//!
//! ```text
//! K¹(x, y)     = σ_b² + σ_w0² xᵀy
//! K^{ℓ+1}(x, y) = σ_b² + σ_w² E[σ(u)σ(v)],  (u, v) ~ N(0, [[K^ℓ(x,x), K^ℓ(x,y)], [K^ℓ(x,y), K^ℓ(y,y)]])
//! ```
//!
//! and the kernel is `K^{L+1}` for `L` hidden layers. Writing `a, b, c` for the three entries of
//! the 2 × 2 covariance, `ρ = c/√(ab)` clipped to `[−1, 1]` and `θ = arccos ρ`:
//!
//! * ReLU: `E = √(ab)(sin θ + (π − θ)cos θ)/(2π)` (arc-cosine kernel of degree 1);
//! * step: `E = (π − θ)/(2π)` (degree 0);
//! * erf: `E = (2/π) arcsin(2c/√((1 + 2a)(1 + 2b)))`;
//! * tanh and custom activations: 2-D Gauss–Hermite quadrature with
//!   `u = √a z₁`, `v = (c/√a) z₁ + √(b − c²/a) z₂`.

use crate::Kernel;
use crate::error::{Error, Result};

use super::activation::Activation;
use crate::quadrature::GaussHermite;

use std::f64::consts::{FRAC_1_PI, PI};

/// The default number of Gauss–Hermite nodes per dimension for activations without a closed
/// form (64² = 4096 activation evaluations per layer and pair of points).
///
/// Gauss–Hermite converges like `exp(−2d√n)` for an activation analytic in the strip
/// `|Im z| < d` of the standard-normal variable; for `tanh(√a z)`, `d = π/(2√a)`. Measured
/// for tanh with pre-activation variances 1–2: kernel error ≈ 1e-9 at 64 nodes, 2e-11 at 96,
/// below 1e-15 at 256 (see `docs/fields.md`). Kinked activations converge only like `n^{-3/2}`.
///
/// # Example
///
/// ```
/// use klflow::field::{Activation, DEFAULT_GH_NODES, Nngp};
///
/// // the default rule agrees with a much finer one to about 1e-9 for tanh
/// let default = Nngp::new(Activation::Tanh, 2, 1.0, 1.0, 0.1)?;
/// let fine = Nngp::new(Activation::Tanh, 2, 1.0, 1.0, 0.1)?.with_quadrature_nodes(4 * DEFAULT_GH_NODES)?;
/// assert!((default.zonal(0.5) - fine.zonal(0.5)).abs() < 1e-8);
/// # Ok::<(), klflow::Error>(())
/// ```
pub const DEFAULT_GH_NODES: usize = 64;

/// The NNGP kernel of a fully connected network with `depth` hidden layers: a
/// [`Kernel`] on `ℝ^{n+1}` that, on the sphere, depends on `xᵀy` only.
///
/// Conventions (the same as the sampler [`NetworkSpec`](super::NetworkSpec)): first-layer
/// weights of variance `σ_w0²` with **no** fan-in factor (inputs are unit vectors), deeper
/// weights of variance `σ_w²/n_ℓ`, biases of variance `σ_b²`.
///
/// Derivatives: the kernel is a function `F(xᵀx, yᵀy, xᵀy)`; the recursion carries `∂/∂(xᵀx)`
/// and `∂/∂(xᵀy)` of every layer analytically, so `∇ₓk = 2F₁x + F₃y` is exact for the closed
/// forms. For quadrature activations the partial derivatives `∂E/∂c = E σ'(u)σ'(v)` and
/// `∂E/∂a = E[σ'(u)(z₁σ(v) − (c/√a)σ'(v))]/(2√a)` (Price's theorem followed by a Gaussian
/// integration by parts, so only `σ'` is needed) are evaluated with the same quadrature rule.
/// [`Kernel::div_grad`] is a central difference of that analytic gradient in `y`
/// (`2d` recursion evaluations, step `10⁻⁵·max(‖y‖, 10⁻³)`; relative error ≈ 1e-9 off the
/// diagonal). Where the kernel is not differentiable (step activation at `x ∥ y`, any
/// activation at `a = 0` or `b = 0`) the partial derivatives are set to 0, the minimal-norm
/// subgradient.
///
/// # Example
///
/// ```
/// use klflow::{Kernel, field::{Activation, Nngp}};
///
/// // One hidden ReLU layer, He scaling: K(x, x) = 1 on the sphere.
/// let k = Nngp::new(Activation::Relu, 1, 1.0, 2.0, 0.0)?;
/// let (x, y) = ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]);
/// assert!((k.value(&x, &x) - 1.0).abs() < 1e-15);
/// // Orthogonal inputs: θ = π/2, K = (2/2π)·(1 + 0) = 1/π.
/// assert!((k.value(&x, &y) - 1.0 / std::f64::consts::PI).abs() < 1e-15);
/// assert!((k.zonal(0.0) - k.value(&x, &y)).abs() < 1e-15);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Nngp {
    activation: Activation,
    depth: usize,
    sigma_w0_sq: f64,
    sigma_w_sq: f64,
    sigma_b_sq: f64,
    rule: Option<GaussHermite>,
}

/// `E σ(u)σ(v)` and its partial derivatives in `a = Var u` and `c = Cov(u, v)`.
#[derive(Clone, Copy, Debug)]
struct PairMoment {
    e: f64,
    e_a: f64,
    e_c: f64,
}

pub(crate) fn check_variance(name: &'static str, v: f64, positive: bool) -> Result<f64> {
    let ok = v.is_finite() && if positive { v > 0.0 } else { v >= 0.0 };
    if ok {
        Ok(v)
    } else {
        Err(Error::InvalidParameter {
            name,
            value: v,
            reason: if positive {
                "must be finite and > 0"
            } else {
                "must be finite and >= 0"
            },
        })
    }
}

impl Nngp {
    /// The NNGP kernel of `depth ≥ 1` hidden layers with activation `activation`, first-layer
    /// weight variance `sigma_w0_sq`, deeper weight variance `sigma_w_sq` (divided by the
    /// fan-in) and bias variance `sigma_b_sq`. Quadrature activations get a
    /// [`DEFAULT_GH_NODES`]-point rule.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] if `depth == 0`, a weight variance is not finite and
    /// positive, or the bias variance is negative or not finite.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, field::{Activation, Nngp}};
    ///
    /// // one ReLU layer with σ_w0² = 1, σ_w² = 2: K(x, x) = σ_w² · E relu(Z)² = 1
    /// let k = Nngp::new(Activation::Relu, 1, 1.0, 2.0, 0.0)?;
    /// assert!((k.variance() - 1.0).abs() < 1e-15);
    /// assert!(matches!(
    ///     Nngp::new(Activation::Relu, 0, 1.0, 2.0, 0.0),
    ///     Err(Error::InvalidParameter { name: "depth", .. })
    /// ));
    /// assert!(matches!(
    ///     Nngp::new(Activation::Relu, 1, 1.0, 2.0, -0.1),
    ///     Err(Error::InvalidParameter { name: "sigma_b_sq", .. })
    /// ));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(
        activation: Activation,
        depth: usize,
        sigma_w0_sq: f64,
        sigma_w_sq: f64,
        sigma_b_sq: f64,
    ) -> Result<Self> {
        if depth == 0 {
            return Err(Error::InvalidParameter {
                name: "depth",
                value: 0.0,
                reason: "must be >= 1 (at least one hidden layer)",
            });
        }
        check_variance("sigma_w0_sq", sigma_w0_sq, true)?;
        check_variance("sigma_w_sq", sigma_w_sq, true)?;
        check_variance("sigma_b_sq", sigma_b_sq, false)?;
        let rule = if activation.has_closed_form() {
            None
        } else {
            Some(GaussHermite::new(DEFAULT_GH_NODES)?)
        };
        Ok(Self {
            activation,
            depth,
            sigma_w0_sq,
            sigma_w_sq,
            sigma_b_sq,
            rule,
        })
    }

    /// Uses an `n`-point Gauss–Hermite rule (per dimension) for activations without a closed
    /// form; closed-form activations ignore it.
    ///
    /// # Errors
    ///
    /// As [`GaussHermite::new`].
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, Nngp};
    ///
    /// let coarse = Nngp::new(Activation::Tanh, 2, 1.0, 1.0, 0.1)?.with_quadrature_nodes(32)?;
    /// let fine = Nngp::new(Activation::Tanh, 2, 1.0, 1.0, 0.1)?.with_quadrature_nodes(96)?;
    /// assert!((coarse.zonal(0.3) - fine.zonal(0.3)).abs() < 1e-5);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn with_quadrature_nodes(mut self, n: usize) -> Result<Self> {
        let rule = GaussHermite::new(n)?;
        if !self.activation.has_closed_form() {
            self.rule = Some(rule);
        }
        Ok(self)
    }

    /// The activation.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, Nngp};
    ///
    /// let k = Nngp::new(Activation::Step, 1, 1.0, 1.0, 0.0)?;
    /// assert!(matches!(k.activation(), Activation::Step));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn activation(&self) -> &Activation {
        &self.activation
    }

    /// The number of hidden layers `L`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, Nngp};
    ///
    /// assert_eq!(Nngp::new(Activation::Erf, 3, 1.0, 1.0, 0.0)?.depth(), 3);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// `(σ_w0², σ_w², σ_b²)`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, Nngp};
    ///
    /// let k = Nngp::new(Activation::Relu, 2, 1.0, 2.0, 0.1)?;
    /// assert_eq!(k.variances(), (1.0, 2.0, 0.1));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn variances(&self) -> (f64, f64, f64) {
        (self.sigma_w0_sq, self.sigma_w_sq, self.sigma_b_sq)
    }

    /// The kernel on the sphere as a function of `t = xᵀy ∈ [−1, 1]`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Kernel, field::{Activation, Nngp}};
    ///
    /// // one step layer: K(t) = σ_w² (π − arccos t)/(2π); at t = 0 this is σ_w²/4
    /// let k = Nngp::new(Activation::Step, 1, 1.0, 1.0, 0.0)?;
    /// assert!((k.zonal(0.0) - 0.25).abs() < 1e-15);
    /// // the kernel on unit vectors with xᵀy = t
    /// let (x, y) = ([1.0, 0.0], [0.6, 0.8]);
    /// assert!((k.zonal(0.6) - k.value(&x, &y)).abs() < 1e-15);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn zonal(&self, t: f64) -> f64 {
        self.recursion(1.0, 1.0, t, false).0
    }

    /// The pointwise variance `K(x, x)` on the unit sphere.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, Nngp};
    ///
    /// // erf, one layer, no bias: (2/π) arcsin(2/3) at σ_w0² = 1
    /// let k = Nngp::new(Activation::Erf, 1, 1.0, 1.0, 0.0)?;
    /// let expected = 2.0 / std::f64::consts::PI * (2.0f64 / 3.0).asin();
    /// assert!((k.variance() - expected).abs() < 1e-15);
    /// assert_eq!(k.variance(), k.zonal(1.0));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn variance(&self) -> f64 {
        self.zonal(1.0)
    }

    /// The layer kernels `[K¹, …, K^{L+1}]` at `(x, y)` given `xᵀx`, `yᵀy`, `xᵀy`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, Nngp};
    ///
    /// let k = Nngp::new(Activation::Relu, 2, 1.0, 2.0, 0.0)?;
    /// let layers = k.layer_kernels(1.0, 1.0, 1.0);
    /// assert_eq!(layers.len(), 3);
    /// assert!(layers.iter().all(|v| (v - 1.0).abs() < 1e-15)); // He scaling keeps K(x,x) = 1
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn layer_kernels(&self, xx: f64, yy: f64, xy: f64) -> Vec<f64> {
        let (mut a, mut b, mut c) = self.first_layer(xx, yy, xy);
        let mut out = vec![c];
        for _ in 0..self.depth {
            (a, b, c) = self.next_layer(a, b, c);
            out.push(c);
        }
        out
    }

    /// `E σ(u)σ(v)` for `(u, v) ~ N(0, [[a, c], [c, b]])`: the closed form, or the kernel's
    /// Gauss–Hermite rule. `c` is clipped to `[−√(ab), √(ab)]`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, Nngp};
    ///
    /// let k = Nngp::new(Activation::Step, 1, 1.0, 1.0, 0.0)?;
    /// assert_eq!(k.pair_expectation(2.0, 3.0, 0.0), 0.25); // P(u > 0, v > 0), independent
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn pair_expectation(&self, a: f64, b: f64, c: f64) -> f64 {
        self.pair(a, b, c, false).e
    }

    fn first_layer(&self, xx: f64, yy: f64, xy: f64) -> (f64, f64, f64) {
        let (w, bias) = (self.sigma_w0_sq, self.sigma_b_sq);
        (bias + w * xx, bias + w * yy, bias + w * xy)
    }

    fn next_layer(&self, a: f64, b: f64, c: f64) -> (f64, f64, f64) {
        let (w, bias) = (self.sigma_w_sq, self.sigma_b_sq);
        let e = self.pair(a, b, c, false).e;
        (
            bias + w * self.diag(a).0,
            bias + w * self.diag(b).0,
            bias + w * e,
        )
    }

    /// `(k, ∂k/∂(xᵀx), ∂k/∂(xᵀy))`; the derivatives are 0 unless `grad`.
    pub(crate) fn recursion(&self, xx: f64, yy: f64, xy: f64, grad: bool) -> (f64, f64, f64) {
        let (mut a, mut b, mut c) = self.first_layer(xx, yy, xy);
        let (w, bias) = (self.sigma_w_sq, self.sigma_b_sq);
        // da/d(xᵀx), dc/d(xᵀx), dc/d(xᵀy)
        let (mut da1, mut dc1, mut dc3) = (self.sigma_w0_sq, 0.0, self.sigma_w0_sq);
        for _ in 0..self.depth {
            let p = self.pair(a, b, c, grad);
            let (va, dva) = self.diag(a);
            let vb = if b == a { va } else { self.diag(b).0 };
            if grad {
                dc1 = w * (p.e_a * da1 + p.e_c * dc1);
                dc3 *= w * p.e_c;
                da1 *= w * dva;
            }
            a = bias + w * va;
            b = bias + w * vb;
            c = bias + w * p.e;
        }
        (c, dc1, dc3)
    }

    /// `(E σ(√a Z)², d/da)`.
    fn diag(&self, a: f64) -> (f64, f64) {
        match &self.activation {
            Activation::Relu => (0.5 * a.max(0.0), 0.5),
            Activation::Step => (if a > 0.0 { 0.5 } else { 0.0 }, 0.0),
            Activation::Erf => {
                let a = a.max(0.0);
                let s = 1.0 + 2.0 * a;
                (
                    2.0 * FRAC_1_PI * (2.0 * a / s).asin(),
                    4.0 * FRAC_1_PI / (s * (1.0 + 4.0 * a).sqrt()),
                )
            }
            act => gh_diag(act, self.rule.as_ref().expect("quadrature rule"), a),
        }
    }

    fn pair(&self, a: f64, b: f64, c: f64, grad: bool) -> PairMoment {
        let zero = PairMoment {
            e: 0.0,
            e_a: 0.0,
            e_c: 0.0,
        };
        let ab = (a * b).max(0.0);
        let sab = ab.sqrt();
        let c = c.clamp(-sab, sab);
        match &self.activation {
            Activation::Relu => {
                if sab == 0.0 {
                    return zero;
                }
                let rho = (c / sab).clamp(-1.0, 1.0);
                let theta = rho.acos();
                let sin = (1.0 - rho * rho).max(0.0).sqrt();
                PairMoment {
                    e: sab * (sin + (PI - theta) * rho) / (2.0 * PI),
                    e_a: (b / a).sqrt() * sin / (4.0 * PI),
                    e_c: (PI - theta) / (2.0 * PI),
                }
            }
            Activation::Step => {
                if sab == 0.0 {
                    return zero;
                }
                let rho = (c / sab).clamp(-1.0, 1.0);
                let sin = (1.0 - rho * rho).max(0.0).sqrt();
                let e_rho = if sin > 0.0 {
                    1.0 / (2.0 * PI * sin)
                } else {
                    0.0
                };
                PairMoment {
                    e: (PI - rho.acos()) / (2.0 * PI),
                    e_a: -e_rho * rho / (2.0 * a),
                    e_c: e_rho / sab,
                }
            }
            Activation::Erf => {
                let (sa, sb) = (1.0 + 2.0 * a.max(0.0), 1.0 + 2.0 * b.max(0.0));
                let d = (sa * sb).sqrt();
                let t = (2.0 * c / d).clamp(-1.0, 1.0);
                let g = 2.0 * FRAC_1_PI / (1.0 - t * t).sqrt();
                PairMoment {
                    e: 2.0 * FRAC_1_PI * t.asin(),
                    e_a: -g * t / sa,
                    e_c: 2.0 * g / d,
                }
            }
            act => gh_pair(
                act,
                self.rule.as_ref().expect("quadrature rule"),
                a,
                b,
                c,
                grad,
            ),
        }
    }
}

/// `(σ(t), σ'(t))`, sharing work for tanh.
#[inline]
fn eval_d(act: &Activation, t: f64) -> (f64, f64) {
    match act {
        Activation::Tanh => {
            let th = t.tanh();
            (th, 1.0 - th * th)
        }
        _ => (act.eval(t), act.derivative(t)),
    }
}

fn gh_diag(act: &Activation, rule: &GaussHermite, a: f64) -> (f64, f64) {
    if a <= 0.0 {
        let (s, ds) = eval_d(act, 0.0);
        return (s * s, ds * ds);
    }
    let sa = a.sqrt();
    let (mut v, mut dv) = (0.0, 0.0);
    for (z, w) in rule.nodes().iter().zip(rule.weights()) {
        let (s, ds) = eval_d(act, sa * z);
        v += w * s * s;
        dv += w * s * ds * z;
    }
    (v, dv / sa)
}

fn gh_pair(
    act: &Activation,
    rule: &GaussHermite,
    a: f64,
    b: f64,
    c: f64,
    grad: bool,
) -> PairMoment {
    let (nodes, weights) = (rule.nodes(), rule.weights());
    if a <= 0.0 || b <= 0.0 {
        // One of u, v is identically 0.
        let s0 = act.eval(0.0);
        let q = a.max(b).max(0.0).sqrt();
        let e = s0 * rule.expect(|z| act.eval(q * z));
        return PairMoment {
            e,
            e_a: 0.0,
            e_c: 0.0,
        };
    }
    let sa = a.sqrt();
    let slope = c / sa;
    let tau = (b - c * c / a).max(0.0).sqrt();
    let (mut e, mut e_a, mut e_c) = (0.0, 0.0, 0.0);
    for (zi, wi) in nodes.iter().zip(weights) {
        let m = slope * zi;
        let (s0, s1) = if tau == 0.0 {
            if grad {
                eval_d(act, m)
            } else {
                (act.eval(m), 0.0)
            }
        } else if grad {
            let (mut s0, mut s1) = (0.0, 0.0);
            for (zj, wj) in nodes.iter().zip(weights) {
                let (s, ds) = eval_d(act, m + tau * zj);
                s0 += wj * s;
                s1 += wj * ds;
            }
            (s0, s1)
        } else {
            let s0: f64 = nodes
                .iter()
                .zip(weights)
                .map(|(zj, wj)| wj * act.eval(m + tau * zj))
                .sum();
            (s0, 0.0)
        };
        if grad {
            let (su, dsu) = eval_d(act, sa * zi);
            e += wi * su * s0;
            e_c += wi * dsu * s1;
            e_a += wi * dsu * (zi * s0 - slope * s1);
        } else {
            e += wi * act.eval(sa * zi) * s0;
        }
    }
    PairMoment {
        e,
        e_a: e_a / (2.0 * sa),
        e_c,
    }
}

fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

impl Kernel for Nngp {
    fn value(&self, x: &[f64], y: &[f64]) -> f64 {
        self.recursion(dot(x, x), dot(y, y), dot(x, y), false).0
    }

    fn value_grad_x(&self, x: &[f64], y: &[f64], grad: &mut [f64]) -> f64 {
        let (k, f1, f3) = self.recursion(dot(x, x), dot(y, y), dot(x, y), true);
        for ((g, xi), yi) in grad.iter_mut().zip(x).zip(y) {
            *g = 2.0 * f1 * xi + f3 * yi;
        }
        k
    }

    fn div_grad(&self, x: &[f64], y: &[f64]) -> f64 {
        let (xx, yy, xy) = (dot(x, x), dot(y, y), dot(x, y));
        let h = 1e-5 * yy.sqrt().max(1e-3);
        let mut div = 0.0;
        for (xl, yl) in x.iter().zip(y) {
            let mut g = [0.0; 2];
            for (s, gs) in [1.0, -1.0].iter().zip(g.iter_mut()) {
                let dy = s * h;
                let (_, f1, f3) =
                    self.recursion(xx, yy + 2.0 * dy * yl + dy * dy, xy + dy * xl, true);
                *gs = 2.0 * f1 * xl + f3 * (yl + dy);
            }
            div += (g[0] - g[1]) / (2.0 * h);
        }
        div
    }
}
