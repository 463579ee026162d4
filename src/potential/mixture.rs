//! Gaussian mixtures.

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, Dim, OMatrix, OVector};
use rand::{Rng, RngExt};

use crate::dim::Alloc;
use crate::error::{Error, Result};
use crate::gaussian::Gaussian;
use crate::potential::{Potential, PotentialHessian};

const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// A Gaussian mixture `π = Σ_k w_k N(μ_k, Σ_k)`, with `U = −log π` (normalised).
///
/// Energy and gradient use a one-pass streaming log-sum-exp over the components, so they are
/// stable far from every mode and allocate nothing; each component costs O(d²).
///
/// # Example
///
/// ```
/// use klflow::potential::{Gaussian, GaussianMixture, Potential};
/// use nalgebra::SVector;
///
/// let comp = |m: f64| Gaussian::isotropic(SVector::<f64, 1>::new(m), 0.25);
/// let mix = GaussianMixture::new(&[0.3, 0.7], vec![comp(-2.0)?, comp(1.5)?])?;
/// assert!((mix.mean()[0] - (0.3 * -2.0 + 0.7 * 1.5)).abs() < 1e-15);
/// // Far in the tail the energy stays finite (no underflow to log 0).
/// assert!(mix.energy(&nalgebra::Vector1::new(1e3)).is_finite());
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct GaussianMixture<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    weights: Vec<f64>,
    log_consts: Vec<f64>,
    components: Vec<Gaussian<D>>,
}

impl<D: Dim> GaussianMixture<D>
where
    DefaultAllocator: Alloc<D>,
{
    /// The mixture with (unnormalised, non-negative) `weights` and `components`.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if there are no components; [`Error::DimensionMismatch`] if the
    /// numbers of weights and components differ or the components' dimensions differ;
    /// [`Error::InvalidParameter`] naming `weights` if a weight is negative or not finite or
    /// their sum is zero or overflows.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, potential::{Gaussian, GaussianMixture}};
    ///
    /// let g = Gaussian::standard(nalgebra::Const::<1>);
    /// assert!(GaussianMixture::new(&[2.0, 6.0], vec![g.clone(), g.clone()]).is_ok());
    /// let err = GaussianMixture::new(&[1.0], vec![g.clone(), g.clone()]).unwrap_err();
    /// assert_eq!(err, Error::DimensionMismatch { name: "weights", expected: 2, found: 1 });
    /// assert!(matches!(
    ///     GaussianMixture::new(&[0.0, 0.0], vec![g.clone(), g]),
    ///     Err(Error::InvalidParameter { name: "weights", .. })
    /// ));
    /// ```
    pub fn new(weights: &[f64], components: Vec<Gaussian<D>>) -> Result<Self> {
        if components.is_empty() {
            return Err(Error::Empty { name: "components" });
        }
        if weights.len() != components.len() {
            return Err(Error::DimensionMismatch {
                name: "weights",
                expected: components.len(),
                found: weights.len(),
            });
        }
        let d = components[0].dim_value();
        if let Some(c) = components.iter().find(|c| c.dim_value() != d) {
            return Err(Error::DimensionMismatch {
                name: "components",
                expected: d,
                found: c.dim_value(),
            });
        }
        if let Some(&w) = weights.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
            return Err(Error::InvalidParameter {
                name: "weights",
                value: w,
                reason: "must be finite and >= 0",
            });
        }
        let total: f64 = weights.iter().sum();
        if !(total > 0.0 && total.is_finite()) {
            return Err(Error::InvalidParameter {
                name: "weights",
                value: total,
                reason: "must have a positive, finite sum",
            });
        }
        let weights: Vec<f64> = weights.iter().map(|w| w / total).collect();
        let log_consts = weights
            .iter()
            .zip(&components)
            .map(|(w, c)| w.ln() - 0.5 * c.log_det_covariance() - d as f64 * HALF_LN_2PI)
            .collect();
        Ok(Self {
            weights,
            log_consts,
            components,
        })
    }

    /// The normalised weights.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::{Gaussian, GaussianMixture};
    ///
    /// let g = Gaussian::standard(nalgebra::Const::<1>);
    /// let mix = GaussianMixture::new(&[2.0, 6.0], vec![g.clone(), g])?;
    /// assert_eq!(mix.weights(), &[0.25, 0.75]);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// The components.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::{Gaussian, GaussianMixture};
    /// use nalgebra::Vector1;
    ///
    /// let a = Gaussian::isotropic(Vector1::new(-1.0), 1.0)?;
    /// let b = Gaussian::isotropic(Vector1::new(1.0), 2.0)?;
    /// let mix = GaussianMixture::new(&[1.0, 1.0], vec![a, b])?;
    /// assert_eq!(mix.components().len(), 2);
    /// assert_eq!(mix.components()[1].covariance()[(0, 0)], 2.0);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn components(&self) -> &[Gaussian<D>] {
        &self.components
    }

    /// The exact mean `Σ w_k μ_k`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::{Gaussian, GaussianMixture};
    /// use nalgebra::Vector2;
    ///
    /// let a = Gaussian::isotropic(Vector2::new(-1.0, 0.0), 1.0)?;
    /// let b = Gaussian::isotropic(Vector2::new(3.0, 4.0), 1.0)?;
    /// let mix = GaussianMixture::new(&[3.0, 1.0], vec![a, b])?;
    /// assert!((mix.mean() - Vector2::new(0.0, 1.0)).amax() < 1e-15);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn mean(&self) -> OVector<f64, D> {
        let mut m = self.components[0].mean() * 0.0;
        for (w, c) in self.weights.iter().zip(&self.components) {
            m.axpy(*w, c.mean(), 1.0);
        }
        m
    }

    /// The exact covariance `Σ w_k (Σ_k + μ_k μ_kᵀ) − m mᵀ`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::{Gaussian, GaussianMixture};
    /// use nalgebra::Vector1;
    ///
    /// // ½N(−2, 1) + ½N(2, 1): variance 1 + 2² (within + between)
    /// let comp = |m: f64| Gaussian::isotropic(Vector1::new(m), 1.0);
    /// let mix = GaussianMixture::new(&[1.0, 1.0], vec![comp(-2.0)?, comp(2.0)?])?;
    /// assert!((mix.covariance()[(0, 0)] - 5.0).abs() < 1e-14);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn covariance(&self) -> OMatrix<f64, D, D> {
        let m = self.mean();
        let mut c = self.components[0].covariance() * 0.0;
        for (w, comp) in self.weights.iter().zip(&self.components) {
            c += comp.covariance() * *w;
            c.ger(*w, comp.mean(), comp.mean(), 1.0);
        }
        c.ger(-1.0, &m, &m, 1.0);
        c
    }

    /// Writes an exact draw into `out`: a component by weight, then a draw from it.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::{Gaussian, GaussianMixture};
    /// use nalgebra::Vector1;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// // well separated components: the share of draws near +10 estimates its weight 0.2
    /// let comp = |m: f64| Gaussian::isotropic(Vector1::new(m), 1.0);
    /// let mix = GaussianMixture::new(&[0.8, 0.2], vec![comp(-10.0)?, comp(10.0)?])?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(4);
    /// let (n, mut right) = (10_000, 0);
    /// let mut x = Vector1::zeros();
    /// for _ in 0..n {
    ///     mix.sample_into(&mut x, &mut rng);
    ///     right += usize::from(x[0] > 0.0);
    /// }
    /// let se = (0.2 * 0.8 / n as f64).sqrt(); // 0.004
    /// assert!((right as f64 / n as f64 - 0.2).abs() < 5.0 * se);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn sample_into<R: Rng + ?Sized>(&self, out: &mut OVector<f64, D>, rng: &mut R) {
        let u: f64 = rng.random();
        let mut acc = 0.0;
        let mut k = self.weights.len() - 1;
        for (i, w) in self.weights.iter().enumerate() {
            acc += w;
            if u < acc {
                k = i;
                break;
            }
        }
        self.components[k].sample_into(out, rng);
    }

    /// Per-component log weights `log w_k + log N(x; μ_k, Σ_k)`, in order.
    fn log_terms<'a>(&'a self, x: &'a OVector<f64, D>) -> impl Iterator<Item = f64> + 'a {
        self.components
            .iter()
            .zip(&self.log_consts)
            .map(move |(c, lc)| lc - 0.5 * c.mahalanobis_sq(x))
    }
}

impl<D: Dim> Potential for GaussianMixture<D>
where
    DefaultAllocator: Alloc<D>,
{
    type Dim = D;

    fn dim(&self) -> D {
        self.components[0].mean().shape_generic().0
    }

    fn energy(&self, x: &OVector<f64, D>) -> f64
    where
        DefaultAllocator: Allocator<D>,
    {
        let (mut m, mut s) = (f64::NEG_INFINITY, 0.0);
        for l in self.log_terms(x) {
            if l == f64::NEG_INFINITY {
                continue; // a zero weight contributes nothing (and −∞ − (−∞) would be NaN)
            }
            if l > m {
                s *= (m - l).exp();
                m = l;
            }
            s += (l - m).exp();
        }
        -(m + s.ln())
    }

    fn energy_grad(&self, x: &OVector<f64, D>, grad: &mut OVector<f64, D>) -> f64
    where
        DefaultAllocator: Allocator<D>,
    {
        // Streaming log-sum-exp: grad accumulates Σ_k e^{l_k − m} Σ_k⁻¹(x − μ_k), rescaled
        // whenever the running maximum m grows.
        grad.fill(0.0);
        let (mut m, mut s) = (f64::NEG_INFINITY, 0.0);
        for (c, l) in self.components.iter().zip(self.log_terms(x)) {
            if l == f64::NEG_INFINITY {
                continue;
            }
            if l > m {
                let r = (m - l).exp();
                s *= r;
                *grad *= r;
                m = l;
            }
            let w = (l - m).exp();
            s += w;
            grad.gemv(w, c.precision(), x, 1.0);
            grad.axpy(-w, c.precision_mean(), 1.0);
        }
        *grad /= s;
        -(m + s.ln())
    }
}

impl<D: Dim> PotentialHessian for GaussianMixture<D>
where
    DefaultAllocator: Alloc<D>,
{
    /// `∇²U = Σ r_k Σ_k⁻¹ − Σ r_k g_k g_kᵀ + g gᵀ` with responsibilities `r_k`,
    /// `g_k = Σ_k⁻¹(x − μ_k)` and `g = Σ r_k g_k`. Allocates O(K + d).
    fn hessian(&self, x: &OVector<f64, D>, hess: &mut OMatrix<f64, D, D>)
    where
        DefaultAllocator: Allocator<D> + Allocator<D, D>,
    {
        let logs: Vec<f64> = self.log_terms(x).collect();
        let m = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = logs.iter().map(|l| (l - m).exp()).sum();
        hess.fill(0.0);
        let mut g = x * 0.0;
        let mut gk = x * 0.0;
        for (c, l) in self.components.iter().zip(&logs) {
            let r = (l - m).exp() / z;
            gk.gemv(1.0, c.precision(), x, 0.0);
            gk -= c.precision_mean();
            *hess += c.precision() * r;
            hess.ger(-r, &gk, &gk, 1.0);
            g.axpy(r, &gk, 1.0);
        }
        hess.ger(1.0, &g, &g, 1.0);
    }
}
