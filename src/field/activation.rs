//! Activation functions σ of the random networks and their NNGP kernels.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};

/// A scalar function `ℝ → ℝ` shared between threads.
///
/// # Example
///
/// ```
/// use klflow::field::ScalarFn;
/// use std::sync::Arc;
///
/// let square: ScalarFn = Arc::new(|t| t * t);
/// let shared = Arc::clone(&square);
/// assert_eq!(std::thread::spawn(move || shared(3.0)).join().unwrap(), 9.0);
/// ```
pub type ScalarFn = Arc<dyn Fn(f64) -> f64 + Send + Sync>;

/// The activation `σ` applied entrywise to the pre-activations of every hidden layer.
///
/// | variant | σ(t) | Lipschitz | NNGP expectation `E σ(u)σ(v)` |
/// |---|---|---|---|
/// | [`Relu`](Activation::Relu) | `max(t, 0)` | 1 | closed form (arc-cosine kernel of degree 1) |
/// | [`Step`](Activation::Step) | `1{t > 0}` | — (not Lipschitz) | closed form (arc-cosine kernel of degree 0) |
/// | [`Erf`](Activation::Erf) | `erf(t)` | `2/√π` | closed form (Williams 1997) |
/// | [`Tanh`](Activation::Tanh) | `tanh(t)` | 1 | 2-D Gauss–Hermite quadrature |
/// | [`Custom`](Activation::Custom) | user-supplied | user-stated | 2-D Gauss–Hermite quadrature |
///
/// The step function is not Lipschitz, so it lies outside the field-level theorem of
/// Balasubramanian, Goldstein, Ross & Salim; its NNGP kernel is still exact.
///
/// # Example
///
/// ```
/// use klflow::field::{Activation, CustomActivation};
///
/// assert_eq!(Activation::Relu.eval(-2.0), 0.0);
/// assert_eq!(Activation::Step.eval(0.5), 1.0);
/// // A user-supplied activation: softplus, 1-Lipschitz, with its derivative (the logistic).
/// let softplus = CustomActivation::new("softplus", 1.0, |t: f64| t.exp().ln_1p())?
///     .with_derivative(|t: f64| 1.0 / (1.0 + (-t).exp()));
/// let act = Activation::Custom(softplus);
/// assert!((act.eval(0.0) - 2f64.ln()).abs() < 1e-15);
/// assert_eq!(act.lipschitz(), Some(1.0));
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Activation {
    /// `max(t, 0)`.
    Relu,
    /// The Heaviside step `1{t > 0}` (with `σ(0) = 0`).
    Step,
    /// The error function `erf(t)`.
    Erf,
    /// `tanh(t)`.
    Tanh,
    /// A user-supplied Lipschitz function.
    Custom(CustomActivation),
}

/// A user-supplied activation: the function, optionally its derivative, and its stated
/// Lipschitz constant.
///
/// The derivative is used only by the gradient of the NNGP kernel
/// ([`Kernel::value_grad_x`](crate::Kernel::value_grad_x)); without it a central difference
/// with step `h = 6·10⁻⁶·max(1, |t|)` is used (relative error ≈ 1e-10 for smooth functions).
/// The Lipschitz constant is not checked (it cannot be); it is reported by
/// [`Activation::lipschitz`] for the constants of the paper's bounds.
///
/// # Example
///
/// ```
/// use klflow::field::CustomActivation;
///
/// let leaky = CustomActivation::new("leaky relu", 1.0, |t: f64| if t > 0.0 { t } else { 0.1 * t })?;
/// assert_eq!(leaky.name(), "leaky relu");
/// assert!(CustomActivation::new("bad", -1.0, |t: f64| t).is_err());
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone)]
pub struct CustomActivation {
    name: &'static str,
    lipschitz: f64,
    f: ScalarFn,
    df: Option<ScalarFn>,
}

impl fmt::Debug for CustomActivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomActivation")
            .field("name", &self.name)
            .field("lipschitz", &self.lipschitz)
            .field("has_derivative", &self.df.is_some())
            .finish()
    }
}

impl CustomActivation {
    /// A custom activation `f` with the stated Lipschitz constant.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless `lipschitz` is finite and ≥ 0;
    /// [`Error::NonFiniteInput`] (name `"f"`) if `f(0)` or `f(±1)` is not finite.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, field::{Activation, CustomActivation}};
    ///
    /// let sine = CustomActivation::new("sine", 1.0, f64::sin)?;
    /// assert_eq!(Activation::Custom(sine).eval(0.0), 0.0);
    /// assert!(matches!(
    ///     CustomActivation::new("inf", 1.0, |t: f64| 1.0 / t), // f(0) = ∞
    ///     Err(Error::NonFiniteInput { name: "f" })
    /// ));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(
        name: &'static str,
        lipschitz: f64,
        f: impl Fn(f64) -> f64 + Send + Sync + 'static,
    ) -> Result<Self> {
        if !(lipschitz.is_finite() && lipschitz >= 0.0) {
            return Err(Error::InvalidParameter {
                name: "lipschitz",
                value: lipschitz,
                reason: "must be finite and >= 0",
            });
        }
        if ![-1.0, 0.0, 1.0].iter().all(|&t| f(t).is_finite()) {
            return Err(Error::NonFiniteInput { name: "f" });
        }
        Ok(Self {
            name,
            lipschitz,
            f: Arc::new(f),
            df: None,
        })
    }

    /// Adds the derivative `f'` (used by the kernel gradient instead of a finite difference).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, CustomActivation};
    ///
    /// let logistic = |t: f64| 1.0 / (1.0 + (-t).exp());
    /// let plain = Activation::Custom(CustomActivation::new("softplus", 1.0, |t: f64| t.exp().ln_1p())?);
    /// let exact = Activation::Custom(
    ///     CustomActivation::new("softplus", 1.0, |t: f64| t.exp().ln_1p())?.with_derivative(logistic),
    /// );
    /// assert_eq!(exact.derivative(0.7), logistic(0.7)); // the supplied f′
    /// assert!((plain.derivative(0.7) - logistic(0.7)).abs() < 1e-9); // a central difference
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn with_derivative(mut self, df: impl Fn(f64) -> f64 + Send + Sync + 'static) -> Self {
        self.df = Some(Arc::new(df));
        self
    }

    /// The name given at construction.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::CustomActivation;
    ///
    /// assert_eq!(CustomActivation::new("identity", 1.0, |t: f64| t)?.name(), "identity");
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }
}

const FRAC_2_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;

impl Activation {
    /// `σ(t)`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::Activation;
    ///
    /// assert_eq!(Activation::Relu.eval(-1.5), 0.0);
    /// assert_eq!(Activation::Relu.eval(1.5), 1.5);
    /// assert_eq!(Activation::Step.eval(0.0), 0.0); // σ(0) = 0
    /// assert!((Activation::Erf.eval(1.0) - 0.842_700_792_949_715).abs() < 1e-14);
    /// ```
    #[inline]
    pub fn eval(&self, t: f64) -> f64 {
        match self {
            Self::Relu => t.max(0.0),
            Self::Step => {
                if t > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Self::Erf => libm::erf(t),
            Self::Tanh => t.tanh(),
            Self::Custom(c) => (c.f)(t),
        }
    }

    /// `σ'(t)` (for ReLU and step, the a.e. derivative: `1{t > 0}` and `0`).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::Activation;
    ///
    /// assert_eq!(Activation::Relu.derivative(2.0), 1.0);
    /// assert_eq!(Activation::Step.derivative(2.0), 0.0);
    /// assert_eq!(Activation::Tanh.derivative(0.0), 1.0); // 1 − tanh²
    /// assert_eq!(Activation::Erf.derivative(0.0), 2.0 / std::f64::consts::PI.sqrt());
    /// ```
    #[inline]
    pub fn derivative(&self, t: f64) -> f64 {
        match self {
            Self::Relu => {
                if t > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Self::Step => 0.0,
            Self::Erf => FRAC_2_SQRT_PI * (-t * t).exp(),
            Self::Tanh => {
                let th = t.tanh();
                1.0 - th * th
            }
            Self::Custom(c) => match &c.df {
                Some(df) => df(t),
                None => {
                    let h = 6e-6 * t.abs().max(1.0);
                    ((c.f)(t + h) - (c.f)(t - h)) / (2.0 * h)
                }
            },
        }
    }

    /// Applies `σ` to every entry of `values` in place (one `match`, then a tight loop).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::Activation;
    ///
    /// let mut v = [-1.0, 0.0, 2.0];
    /// Activation::Relu.apply(&mut v);
    /// assert_eq!(v, [0.0, 0.0, 2.0]);
    /// let mut w = [-0.3, 0.4];
    /// Activation::Tanh.apply(&mut w);
    /// assert_eq!(w, [Activation::Tanh.eval(-0.3), Activation::Tanh.eval(0.4)]);
    /// ```
    pub fn apply(&self, values: &mut [f64]) {
        match self {
            Self::Relu => values.iter_mut().for_each(|v| *v = v.max(0.0)),
            Self::Step => values
                .iter_mut()
                .for_each(|v| *v = if *v > 0.0 { 1.0 } else { 0.0 }),
            Self::Erf => values.iter_mut().for_each(|v| *v = libm::erf(*v)),
            Self::Tanh => values.iter_mut().for_each(|v| *v = v.tanh()),
            Self::Custom(c) => values.iter_mut().for_each(|v| *v = (c.f)(*v)),
        }
    }

    /// The Lipschitz constant: 1 (ReLU, tanh), `2/√π` (erf), the stated one (custom), `None`
    /// for the step function.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::Activation;
    ///
    /// assert_eq!(Activation::Relu.lipschitz(), Some(1.0));
    /// assert_eq!(Activation::Step.lipschitz(), None);
    /// assert_eq!(Activation::Erf.lipschitz(), Some(std::f64::consts::FRAC_2_SQRT_PI));
    /// ```
    pub fn lipschitz(&self) -> Option<f64> {
        match self {
            Self::Relu | Self::Tanh => Some(1.0),
            Self::Step => None,
            Self::Erf => Some(FRAC_2_SQRT_PI),
            Self::Custom(c) => Some(c.lipschitz),
        }
    }

    /// `true` if `E σ(u)σ(v)` has a closed form (ReLU, step, erf); otherwise the NNGP kernel
    /// uses Gauss–Hermite quadrature.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::Activation;
    ///
    /// assert!(Activation::Relu.has_closed_form() && Activation::Erf.has_closed_form());
    /// assert!(!Activation::Tanh.has_closed_form()); // Gauss–Hermite quadrature
    /// ```
    pub fn has_closed_form(&self) -> bool {
        matches!(self, Self::Relu | Self::Step | Self::Erf)
    }
}
