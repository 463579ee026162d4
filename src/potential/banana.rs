//! The banana (Rosenbrock-type) target.

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, Dim, OMatrix, OVector};
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;

use crate::error::{Error, Result, positive};
use crate::potential::{Potential, PotentialHessian};

/// A banana-shaped target in `d ≥ 2` dimensions:
/// `x₁ ~ N(0, a²)`, `x₂ | x₁ ~ N(b x₁², c²)`, the other coordinates standard normal, i.e.
/// `U(x) = x₁²/(2a²) + (x₂ − b x₁²)²/(2c²) + Σ_{i≥3} x_i²/2`.
///
/// Exact moments: `E x₁ = 0`, `Var x₁ = a²`, `E x₂ = b a²`, `Var x₂ = c² + 2b²a⁴`,
/// `Cov(x₁, x₂) = 0`; exact draws by [`Banana::sample_into`]. Not log-concave for `b ≠ 0`.
///
/// # Example
///
/// ```
/// use klflow::potential::{Banana, Potential};
/// use nalgebra::SVector;
///
/// let b = Banana::new(nalgebra::Const::<2>, 1.0, 1.0, 0.5)?;
/// let (m, v) = (b.mean(), b.variance());
/// assert_eq!((m[1], v[1]), (1.0, 0.25 + 2.0));
/// assert_eq!(b.energy(&nalgebra::Vector2::new(1.0, 1.0)), 0.5); // on the ridge x₂ = b x₁²
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Banana<D> {
    dim: D,
    a: f64,
    b: f64,
    c: f64,
}

impl<D: Dim> Banana<D> {
    /// The banana with `x₁ ~ N(0, a²)`, curvature `b`, conditional sd `c`.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] naming `dim` if `d < 2`; [`Error::InvalidParameter`] if
    /// `a` or `c` is not finite and positive or `b` is not finite.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, potential::Banana};
    ///
    /// assert!(Banana::new(nalgebra::Dyn(3), 2.0, 0.3, 1.0).is_ok());
    /// let err = Banana::new(nalgebra::Dyn(1), 1.0, 0.5, 0.5).unwrap_err();
    /// assert_eq!(err, Error::DimensionMismatch { name: "dim", expected: 2, found: 1 });
    /// assert!(matches!(
    ///     Banana::new(nalgebra::Dyn(2), 1.0, 0.5, 0.0),
    ///     Err(Error::InvalidParameter { name: "c", .. })
    /// ));
    /// ```
    pub fn new(dim: D, a: f64, b: f64, c: f64) -> Result<Self> {
        if dim.value() < 2 {
            return Err(Error::DimensionMismatch {
                name: "dim",
                expected: 2,
                found: dim.value(),
            });
        }
        positive("a", a)?;
        positive("c", c)?;
        if !b.is_finite() {
            return Err(Error::InvalidParameter {
                name: "b",
                value: b,
                reason: "must be finite",
            });
        }
        Ok(Self { dim, a, b, c })
    }

    /// The usual test banana: `a = 1`, `b = 0.5`, `c = 0.5` (a clearly curved ridge,
    /// `E x₂ = 0.5`, `Var x₂ = 0.75`). Its Hessian grows like `1 + 4x₁²`, so ULA needs
    /// `h ≲ 2/(1 + 4x₁²)` over the region it visits: `h = 0.01` is safe up to `|x₁| ≈ 7`.
    ///
    /// # Panics
    ///
    /// If `dim < 2`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Banana;
    ///
    /// let b = Banana::standard(nalgebra::Const::<2>);
    /// assert_eq!(b.mean()[1], 0.5);
    /// assert_eq!(b.variance()[1], 0.75);
    /// ```
    pub fn standard(dim: D) -> Self {
        Self::new(dim, 1.0, 0.5, 0.5).expect("the standard banana needs d >= 2")
    }

    /// The exact mean `(0, b a², 0, …)`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Banana;
    ///
    /// let b = Banana::new(nalgebra::Const::<3>, 2.0, 0.5, 1.0)?;
    /// assert_eq!(b.mean(), nalgebra::Vector3::new(0.0, 2.0, 0.0)); // b a² = 0.5 · 4
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn mean(&self) -> OVector<f64, D>
    where
        DefaultAllocator: Allocator<D>,
    {
        let mut m = OVector::zeros_generic(self.dim, nalgebra::U1);
        m[1] = self.b * self.a * self.a;
        m
    }

    /// The exact marginal variances `(a², c² + 2b²a⁴, 1, …)` (the covariance is diagonal).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Banana;
    ///
    /// let b = Banana::new(nalgebra::Const::<3>, 2.0, 0.5, 1.0)?;
    /// // (a², c² + 2b²a⁴, 1) = (4, 1 + 2 · 0.25 · 16, 1)
    /// assert_eq!(b.variance(), nalgebra::Vector3::new(4.0, 9.0, 1.0));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn variance(&self) -> OVector<f64, D>
    where
        DefaultAllocator: Allocator<D>,
    {
        let mut v = OVector::from_element_generic(self.dim, nalgebra::U1, 1.0);
        v[0] = self.a * self.a;
        v[1] = self.c * self.c + 2.0 * self.b * self.b * self.a.powi(4);
        v
    }

    /// Writes an exact draw into `out`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::Banana;
    /// use nalgebra::Vector2;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let b = Banana::standard(nalgebra::Const::<2>);
    /// let mut rng = ChaCha8Rng::seed_from_u64(1);
    /// let (n, mut sum) = (20_000, 0.0);
    /// let mut x = Vector2::zeros();
    /// for _ in 0..n {
    ///     b.sample_into(&mut x, &mut rng);
    ///     sum += x[1];
    /// }
    /// // E x₂ = 0.5, standard error √(0.75 / n) ≈ 0.006
    /// assert!((sum / n as f64 - 0.5).abs() < 5.0 * (0.75 / n as f64).sqrt());
    /// ```
    pub fn sample_into<R: Rng + ?Sized>(&self, out: &mut OVector<f64, D>, rng: &mut R)
    where
        DefaultAllocator: Allocator<D>,
    {
        crate::dim::fill_standard_normal(out, rng);
        out[0] *= self.a;
        let z: f64 = rng.sample(StandardNormal);
        out[1] = self.b * out[0] * out[0] + self.c * z;
    }
}

impl<D: Dim> Potential for Banana<D> {
    type Dim = D;

    fn dim(&self) -> D {
        self.dim
    }

    fn energy(&self, x: &OVector<f64, D>) -> f64
    where
        DefaultAllocator: Allocator<D>,
    {
        let r = x[1] - self.b * x[0] * x[0];
        let rest: f64 = x.iter().skip(2).map(|v| v * v).sum();
        0.5 * (x[0] * x[0] / (self.a * self.a) + r * r / (self.c * self.c) + rest)
    }

    fn energy_grad(&self, x: &OVector<f64, D>, grad: &mut OVector<f64, D>) -> f64
    where
        DefaultAllocator: Allocator<D>,
    {
        let (a2, c2) = (self.a * self.a, self.c * self.c);
        let r = x[1] - self.b * x[0] * x[0];
        grad.copy_from(x);
        grad[0] = x[0] / a2 - 2.0 * self.b * x[0] * r / c2;
        grad[1] = r / c2;
        let rest: f64 = x.iter().skip(2).map(|v| v * v).sum();
        0.5 * (x[0] * x[0] / a2 + r * r / c2 + rest)
    }
}

impl<D: Dim> PotentialHessian for Banana<D> {
    fn hessian(&self, x: &OVector<f64, D>, hess: &mut OMatrix<f64, D, D>)
    where
        DefaultAllocator: Allocator<D> + Allocator<D, D>,
    {
        let (a2, c2) = (self.a * self.a, self.c * self.c);
        let r = x[1] - self.b * x[0] * x[0];
        hess.fill_with_identity();
        hess[(0, 0)] = 1.0 / a2 - 2.0 * self.b * r / c2 + 4.0 * self.b * self.b * x[0] * x[0] / c2;
        hess[(0, 1)] = -2.0 * self.b * x[0] / c2;
        hess[(1, 0)] = hess[(0, 1)];
        hess[(1, 1)] = 1.0 / c2;
    }
}
