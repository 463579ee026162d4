//! Classic Bayesian models on their unconstrained scale (as in Stan and posteriordb).

use nalgebra::allocator::Allocator;
use nalgebra::{DMatrix, DefaultAllocator, Dim, Dyn, OVector};

use crate::error::{Error, Result, finite_input, positive};
use crate::potential::Potential;

const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// How [`EightSchools`] parameterises the school effects.
///
/// # Example
///
/// ```
/// use klflow::potential::{EightSchools, Parameterisation};
///
/// // the same unconstrained point means different school effects θ_j
/// let (y, sigma) = ([10.0, 0.0], [5.0, 5.0]);
/// let nc = EightSchools::new(&y, &sigma, Parameterisation::NonCentered)?;
/// let c = EightSchools::new(&y, &sigma, Parameterisation::Centered)?;
/// let u = [1.0, -1.0, 2.0, 0.0]; // (θ̃ or θ, μ, s = log τ)
/// assert_eq!(nc.constrain(&u)?, vec![3.0, 1.0, 2.0, 1.0]); // θ = μ + τ θ̃
/// assert_eq!(c.constrain(&u)?, vec![1.0, -1.0, 2.0, 1.0]);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Parameterisation {
    /// `θ_j = μ + τ θ̃_j`, `θ̃_j ~ N(0, 1)`: a well-conditioned posterior.
    NonCentered,
    /// `θ_j ~ N(μ, τ)` directly: a funnel in `(θ, log τ)` — the standard hard case.
    Centered,
}

/// The eight-schools hierarchical model (Rubin 1981; Gelman et al., BDA3 §5.5) with
/// `y_j ~ N(θ_j, σ_j)`, `μ ~ N(0, 5)`, `τ ~ half-Cauchy(0, 5)`.
///
/// Unconstrained coordinates (Stan's order): `u = (θ̃₁..θ̃_J or θ₁..θ_J, μ, s)` with
/// `τ = e^s` and log-Jacobian `+s`. `U(u) = −log p(u)` including every normalising constant
/// (posteriordb's `model.md` formula), so `U` equals Stan's `−log_prob(u, jacobian=true)` up to
/// a constant.
///
/// # Example
///
/// ```
/// use klflow::potential::{EightSchools, Parameterisation, Potential, check_gradient};
/// use nalgebra::DVector;
///
/// let y = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0];
/// let sigma = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0];
/// let post = EightSchools::new(&y, &sigma, Parameterisation::NonCentered)?;
/// let u = DVector::from_element(10, 0.3);
/// assert!(check_gradient(&post, &u)?.max_rel_error < 1e-7);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EightSchools {
    y: Vec<f64>,
    sigma: Vec<f64>,
    parameterisation: Parameterisation,
    constant: f64,
}

impl EightSchools {
    /// The model for estimates `y` with standard errors `sigma` (any number J ≥ 1 of schools).
    ///
    /// # Errors
    ///
    /// [`Error::Empty`], [`Error::DimensionMismatch`] (lengths differ),
    /// [`Error::NonFiniteInput`] naming `y`, [`Error::InvalidParameter`] naming `sigma`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, potential::{EightSchools, Parameterisation, Potential}};
    ///
    /// let m = EightSchools::new(&[28.0, 8.0], &[15.0, 10.0], Parameterisation::Centered)?;
    /// assert_eq!(m.dim(), nalgebra::Dyn(4)); // J + 2
    /// let err = EightSchools::new(&[28.0, 8.0], &[15.0], Parameterisation::Centered).unwrap_err();
    /// assert_eq!(err, Error::DimensionMismatch { name: "sigma", expected: 2, found: 1 });
    /// assert!(matches!(
    ///     EightSchools::new(&[1.0], &[0.0], Parameterisation::Centered),
    ///     Err(Error::InvalidParameter { name: "sigma", .. })
    /// ));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(y: &[f64], sigma: &[f64], parameterisation: Parameterisation) -> Result<Self> {
        if y.is_empty() {
            return Err(Error::Empty { name: "y" });
        }
        if sigma.len() != y.len() {
            return Err(Error::DimensionMismatch {
                name: "sigma",
                expected: y.len(),
                found: sigma.len(),
            });
        }
        finite_input("y", y)?;
        for &s in sigma {
            positive("sigma", s)?;
        }
        let j = y.len() as f64;
        // 2J + 1 normal densities' −½log 2π, −Σ log σ_j, −log 5 (μ prior), log(2/(5π)) (τ prior).
        let constant =
            -(2.0 * j + 1.0) * HALF_LN_2PI - sigma.iter().map(|s| s.ln()).sum::<f64>() - 5f64.ln()
                + (2.0 / (5.0 * std::f64::consts::PI)).ln();
        Ok(Self {
            y: y.to_vec(),
            sigma: sigma.to_vec(),
            parameterisation,
            constant,
        })
    }

    /// The number of schools `J`; the dimension is `J + 2`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::{EightSchools, Parameterisation};
    ///
    /// let y = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0];
    /// let sigma = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0];
    /// assert_eq!(EightSchools::new(&y, &sigma, Parameterisation::NonCentered)?.schools(), 8);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn schools(&self) -> usize {
        self.y.len()
    }

    /// Maps unconstrained `u` to the reported parameters `(θ₁..θ_J, μ, τ)`.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] naming `u`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, potential::{EightSchools, Parameterisation}};
    ///
    /// let m = EightSchools::new(&[10.0], &[5.0], Parameterisation::NonCentered)?;
    /// // θ̃ = 2, μ = 1, s = ln 3: θ = 1 + 3·2, τ = 3
    /// let out = m.constrain(&[2.0, 1.0, 3f64.ln()])?;
    /// assert!((out[0] - 7.0).abs() < 1e-14 && out[1] == 1.0 && (out[2] - 3.0).abs() < 1e-14);
    /// assert!(matches!(m.constrain(&[0.0, 0.0]), Err(Error::DimensionMismatch { name: "u", .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn constrain(&self, u: &[f64]) -> Result<Vec<f64>> {
        let j = self.schools();
        if u.len() != j + 2 {
            return Err(Error::DimensionMismatch {
                name: "u",
                expected: j + 2,
                found: u.len(),
            });
        }
        let (mu, tau) = (u[j], u[j + 1].exp());
        let mut out: Vec<f64> = match self.parameterisation {
            Parameterisation::NonCentered => u[..j].iter().map(|t| mu + tau * t).collect(),
            Parameterisation::Centered => u[..j].to_vec(),
        };
        out.extend([mu, tau]);
        Ok(out)
    }

    fn eval(&self, u: &[f64], mut grad: Option<&mut [f64]>) -> f64 {
        let j = self.schools();
        let (mu, s) = (u[j], u[j + 1]);
        let tau = s.exp();
        let mut v = 0.5 * mu * mu / 25.0 + (1.0 + tau * tau / 25.0).ln() - s - self.constant;
        let (mut g_mu, mut g_s) = (mu / 25.0, 2.0 * tau * tau / (25.0 + tau * tau) - 1.0);
        match self.parameterisation {
            Parameterisation::NonCentered => {
                for k in 0..j {
                    let t = u[k];
                    let e = (self.y[k] - mu - tau * t) / (self.sigma[k] * self.sigma[k]);
                    let r = (self.y[k] - mu - tau * t) / self.sigma[k];
                    v += 0.5 * t * t + 0.5 * r * r;
                    if let Some(g) = grad.as_deref_mut() {
                        g[k] = t - tau * e;
                    }
                    g_mu -= e;
                    g_s -= tau * t * e;
                }
            }
            Parameterisation::Centered => {
                let inv_t2 = (-2.0 * s).exp();
                for k in 0..j {
                    let th = u[k];
                    let e = (self.y[k] - th) / (self.sigma[k] * self.sigma[k]);
                    let dev = th - mu;
                    v += 0.5 * dev * dev * inv_t2
                        + s
                        + 0.5 * (self.y[k] - th).powi(2) / (self.sigma[k] * self.sigma[k]);
                    if let Some(g) = grad.as_deref_mut() {
                        g[k] = dev * inv_t2 - e;
                    }
                    g_mu -= dev * inv_t2;
                    g_s += 1.0 - dev * dev * inv_t2;
                }
            }
        }
        if let Some(g) = grad {
            g[j] = g_mu;
            g[j + 1] = g_s;
        }
        v
    }
}

impl Potential for EightSchools {
    type Dim = Dyn;

    fn dim(&self) -> Dyn {
        Dyn(self.schools() + 2)
    }

    fn energy(&self, u: &OVector<f64, Dyn>) -> f64
    where
        DefaultAllocator: Allocator<Dyn>,
    {
        self.eval(u.as_slice(), None)
    }

    fn energy_grad(&self, u: &OVector<f64, Dyn>, grad: &mut OVector<f64, Dyn>) -> f64
    where
        DefaultAllocator: Allocator<Dyn>,
    {
        self.eval(u.as_slice(), Some(grad.as_mut_slice()))
    }
}

/// Linear regression `y_n ~ N(x_nᵀβ, σ)` with a flat prior on `β` and `σ ~ half-Cauchy(0, c)`,
/// on the unconstrained coordinates `u = (β, s)`, `σ = e^s`, log-Jacobian `+s` (posteriordb's
/// `kidiq` models).
///
/// `U(u) = N s + Σ r_n²/(2σ²) + log(1 + σ²/c²) − s + const`, `r = y − Xβ`; the data are
/// stored observation-major and each evaluation streams through them once, allocation-free.
///
/// # Example
///
/// ```
/// use klflow::potential::{LinearRegression, check_gradient};
/// use nalgebra::{DMatrix, DVector, Dyn};
///
/// let x = DMatrix::from_row_slice(3, 2, &[1.0, 0.5, 1.0, 1.5, 1.0, 2.5]);
/// let post = LinearRegression::new(Dyn(3), &x, &[1.0, 2.0, 2.9], 2.5)?;
/// assert!(check_gradient(&post, &DVector::from_vec(vec![0.1, 0.9, -1.0]))?.max_rel_error < 1e-7);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LinearRegression<D> {
    dim: D,
    rows: Vec<f64>,
    y: Vec<f64>,
    scale: f64,
}

impl<D: Dim> LinearRegression<D> {
    /// The posterior for design `x` (n × p, one observation per row, include a column of ones
    /// for an intercept), responses `y`, and half-Cauchy scale `sigma_scale`; `dim` = p + 1.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if `x` has no rows or no columns, [`Error::DimensionMismatch`] (`x` must
    /// have `dim − 1` columns, `y` one entry per row), [`Error::NonFiniteInput`],
    /// [`Error::InvalidParameter`] naming `sigma_scale`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, potential::{LinearRegression, Potential}};
    /// use nalgebra::{DMatrix, DVector, Dyn};
    ///
    /// // y = 1 + 2x exactly, σ = e⁰ = 1: the residuals vanish at β = (1, 2)
    /// let x = DMatrix::from_row_slice(3, 2, &[1.0, 0.0, 1.0, 1.0, 1.0, 2.0]);
    /// let post = LinearRegression::new(Dyn(3), &x, &[1.0, 3.0, 5.0], 2.5)?;
    /// let mut g = DVector::zeros(3);
    /// post.energy_grad(&DVector::from_vec(vec![1.0, 2.0, 0.0]), &mut g);
    /// assert!(g[0].abs() < 1e-12 && g[1].abs() < 1e-12);
    /// // dim must be the number of columns + 1 (for s = log σ)
    /// let err = LinearRegression::new(Dyn(2), &x, &[1.0, 3.0, 5.0], 2.5).unwrap_err();
    /// assert_eq!(err, Error::DimensionMismatch { name: "x", expected: 1, found: 2 });
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(dim: D, x: &DMatrix<f64>, y: &[f64], sigma_scale: f64) -> Result<Self> {
        let (n, p) = x.shape();
        if n == 0 || p == 0 {
            // p = 0 would leave nothing to stream over (and `chunks_exact(0)` panics).
            return Err(Error::Empty { name: "x" });
        }
        if p + 1 != dim.value() {
            return Err(Error::DimensionMismatch {
                name: "x",
                expected: dim.value().saturating_sub(1),
                found: p,
            });
        }
        if y.len() != n {
            return Err(Error::DimensionMismatch {
                name: "y",
                expected: n,
                found: y.len(),
            });
        }
        finite_input("x", x.as_slice())?;
        finite_input("y", y)?;
        positive("sigma_scale", sigma_scale)?;
        Ok(Self {
            dim,
            rows: x.transpose().as_slice().to_vec(),
            y: y.to_vec(),
            scale: sigma_scale,
        })
    }

    fn eval(&self, u: &[f64], mut grad: Option<&mut [f64]>) -> f64 {
        let p = self.dim.value() - 1;
        let s = u[p];
        let inv_s2 = (-2.0 * s).exp();
        let sigma2 = 1.0 / inv_s2;
        let n = self.y.len() as f64;
        let mut rss = 0.0;
        if let Some(g) = grad.as_deref_mut() {
            g.fill(0.0);
        }
        for (row, y) in self.rows.chunks_exact(p).zip(&self.y) {
            let r = y - row.iter().zip(&u[..p]).map(|(a, b)| a * b).sum::<f64>();
            rss += r * r;
            if let Some(g) = grad.as_deref_mut() {
                for (gk, a) in g[..p].iter_mut().zip(row) {
                    *gk -= r * a * inv_s2;
                }
            }
        }
        let c2 = self.scale * self.scale;
        if let Some(g) = grad {
            g[p] = n - rss * inv_s2 + 2.0 * sigma2 / (c2 + sigma2) - 1.0;
        }
        let constant = n * HALF_LN_2PI - (2.0 / (std::f64::consts::PI * self.scale)).ln();
        n * s + 0.5 * rss * inv_s2 + (1.0 + sigma2 / c2).ln() - s + constant
    }
}

impl<D: Dim> Potential for LinearRegression<D> {
    type Dim = D;

    fn dim(&self) -> D {
        self.dim
    }

    fn energy(&self, u: &OVector<f64, D>) -> f64
    where
        DefaultAllocator: Allocator<D>,
    {
        self.eval(u.as_slice(), None)
    }

    fn energy_grad(&self, u: &OVector<f64, D>, grad: &mut OVector<f64, D>) -> f64
    where
        DefaultAllocator: Allocator<D>,
    {
        self.eval(u.as_slice(), Some(grad.as_mut_slice()))
    }
}
