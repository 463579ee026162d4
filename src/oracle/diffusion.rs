//! The exact laws of the diffusion samplers for Gaussian data.

use nalgebra::{DefaultAllocator, Dim, Dyn, OMatrix, OVector};

use crate::diffusion::{Corrector, ForwardOu, OdeScheme, Predictor, SdeScheme, TimeGrid};
use crate::dim::{Alloc, check_len};
use crate::error::Result;
use crate::gaussian::Gaussian;
use crate::linalg::symmetrize;
use crate::oracle::{UlaOracle, UnderdampedOracle};

/// `(P_t, P_t m_t)`: the score is `x ↦ −P_t x + P_t m_t`.
type Affine<D> = (OMatrix<f64, D, D>, OVector<f64, D>);

/// The exact laws of [`Ddpm`](crate::diffusion::Ddpm),
/// [`ProbabilityFlow`](crate::diffusion::ProbabilityFlow) and
/// [`PredictorCorrector`](crate::diffusion::PredictorCorrector) run with the exact score of
/// Gaussian data `N(μ, Σ)`.
///
/// The score `∇log q_t(x) = −P_t(x − m_t)`, `P_t = C_t⁻¹`, `m_t = e^{−t}μ`,
/// `C_t = e^{−2t}Σ + σ_t²I`, is affine, so every step maps `N(m, S)` to
/// `N(Am + b, ASAᵀ + cI)`:
///
/// | step (`h = t_k − t_{k+1}`) | `A` | `b` | `c` |
/// |---|---|---|---|
/// | DDPM, exponential integrator | `e^h I − 2(e^h − 1)P` | `2(e^h − 1)(P m_t + β)` | `e^{2h} − 1` |
/// | DDPM, Euler–Maruyama | `(1 + h)I − 2hP` | `2h(P m_t + β)` | `2h` |
/// | flow, exponential integrator | `e^h I − (e^h − 1)P` | `(e^h − 1)P m_t` | 0 |
/// | flow, Heun (`F = I − P`, `g = P m_t`) | `I + (h/2)(F_k + F_{k+1}(I + hF_k))` | `(h/2)(g_k + hF_{k+1}g_k + g_{k+1})` | 0 |
///
/// (`β` an optional constant score bias, as in [`ScoreError::bias`](crate::diffusion::ScoreError::bias);
/// `P`, `m_t` at `t_k` unless marked.) A corrector phase on `q_t` is underdamped or overdamped
/// Langevin on the Gaussian target `q_t`, propagated by [`UnderdampedOracle`] (from the joint law
/// with a fresh `p ~ N(0, I)`, then the position marginal) or [`UlaOracle`].
///
/// # Example
///
/// ```
/// use klflow::diffusion::{SdeScheme, TimeGrid};
/// use klflow::oracle::DiffusionOracle;
/// use klflow::potential::Gaussian;
/// use nalgebra::Vector1;
///
/// // T5.1: data N(1.5, 0.25), T = 12, start from the exact q_T, h = 0.2.
/// let oracle = DiffusionOracle::new(&Gaussian::isotropic(Vector1::new(1.5), 0.25)?);
/// let grid = TimeGrid::uniform(12.0, 0.0, 60)?;
/// let out = oracle.ddpm(&oracle.marginal(12.0)?, &grid, SdeScheme::ExponentialIntegrator, None)?;
/// let kl = out.kl(oracle.data())?;
/// assert!((kl - 0.2356).abs() < 5e-4);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct DiffusionOracle<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    data: Gaussian<D>,
}

impl<D: Dim> DiffusionOracle<D>
where
    DefaultAllocator: Alloc<D>,
{
    /// The oracle for data `data`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{OdeScheme, TimeGrid};
    /// use klflow::oracle::DiffusionOracle;
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector1;
    ///
    /// // For data N(μ, 1) the exponential-integrator flow from the exact q_T is exact: it returns
    /// // the data law (to rounding).
    /// let data = Gaussian::isotropic(Vector1::new(2.0), 1.0)?;
    /// let oracle = DiffusionOracle::new(&data);
    /// let grid = TimeGrid::uniform(6.0, 0.0, 12)?;
    /// let out = oracle.flow(&oracle.marginal(6.0)?, &grid, OdeScheme::ExponentialIntegrator)?;
    /// assert!(out.kl(&data)? < 1e-20);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(data: &Gaussian<D>) -> Self {
        Self { data: data.clone() }
    }

    /// The data law.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::oracle::DiffusionOracle;
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector1;
    ///
    /// let data = Gaussian::isotropic(Vector1::new(2.0), 0.5)?;
    /// assert_eq!(DiffusionOracle::new(&data).data().covariance()[(0, 0)], 0.5);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn data(&self) -> &Gaussian<D> {
        &self.data
    }

    /// The marginal `q_t` of the forward process.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`](crate::Error::InvalidParameter) naming `t` if `t < 0`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::oracle::DiffusionOracle;
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector1;
    ///
    /// let data = Gaussian::isotropic(Vector1::new(2.0), 0.5)?;
    /// let oracle = DiffusionOracle::new(&data);
    /// assert_eq!(oracle.marginal(0.0)?.mean()[0], 2.0); // q_0 is the data
    /// assert!((oracle.marginal(40.0)?.kl(&Gaussian::isotropic(Vector1::new(0.0), 1.0)?)?).abs() < 1e-15);
    /// assert!(oracle.marginal(-1.0).is_err());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn marginal(&self, t: f64) -> Result<Gaussian<D>> {
        ForwardOu::marginal_gaussian(&self.data, t)
    }

    /// `(P_t, P_t m_t)`.
    fn score_affine(&self, t: f64) -> Result<Affine<D>> {
        let q = self.marginal(t)?;
        let p = q.precision().clone();
        let g = &p * q.mean();
        Ok((p, g))
    }

    fn affine(
        law: &Gaussian<D>,
        a: &OMatrix<f64, D, D>,
        b: &OVector<f64, D>,
        noise: f64,
    ) -> Result<Gaussian<D>> {
        let mean = a * law.mean() + b;
        let mut cov = symmetrize(&(a * law.covariance() * a.transpose()));
        for i in 0..cov.nrows() {
            cov[(i, i)] += noise;
        }
        Gaussian::new(mean, cov)
    }

    fn identity(&self) -> OMatrix<f64, D, D> {
        let (r, c) = self.data.covariance().shape_generic();
        OMatrix::identity_generic(r, c)
    }

    /// One DDPM step from forward time `t` with step `h`, the score optionally shifted by a
    /// constant `bias`.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`](crate::Error::DimensionMismatch) naming `bias`; errors of
    /// [`Gaussian::new`] if the law degenerates.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::SdeScheme;
    /// use klflow::oracle::DiffusionOracle;
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector1;
    ///
    /// // Data N(0, 1), law N(0, 1), score bias β: the exponential-integrator step is
    /// // y ↦ (2 − e^h)y + 2(e^h − 1)β + √(e^{2h} − 1)ξ, so the law becomes
    /// // N(2(e^h − 1)β, 1 + 2(e^h − 1)²).
    /// let n01 = Gaussian::isotropic(Vector1::new(0.0), 1.0)?;
    /// let oracle = DiffusionOracle::new(&n01);
    /// let (h, beta) = (0.1f64, Vector1::new(0.3));
    /// let out = oracle.ddpm_step(&n01, 1.0, h, SdeScheme::ExponentialIntegrator, Some(&beta))?;
    /// assert!((out.mean()[0] - 2.0 * h.exp_m1() * 0.3).abs() < 1e-12);
    /// assert!((out.covariance()[(0, 0)] - (1.0 + 2.0 * h.exp_m1().powi(2))).abs() < 1e-12);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn ddpm_step(
        &self,
        law: &Gaussian<D>,
        t: f64,
        h: f64,
        scheme: SdeScheme,
        bias: Option<&OVector<f64, D>>,
    ) -> Result<Gaussian<D>> {
        let (p, mut g) = self.score_affine(t)?;
        if let Some(beta) = bias {
            check_len("bias", self.data.mean().shape_generic().0, beta)?;
            g += beta;
        }
        let (ca, cb, cc) = scheme.coefficients(h);
        let a = self.identity() * ca - p * cb;
        Self::affine(law, &a, &(g * cb), cc * cc)
    }

    /// One probability-flow step from `t` to `t_next`.
    ///
    /// # Errors
    ///
    /// Errors of [`Gaussian::new`] if the law degenerates.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::OdeScheme;
    /// use klflow::oracle::DiffusionOracle;
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector1;
    ///
    /// // Data N(0, 1): the flow field vanishes, so any law is left unchanged by either scheme.
    /// let oracle = DiffusionOracle::new(&Gaussian::isotropic(Vector1::new(0.0), 1.0)?);
    /// let law = Gaussian::isotropic(Vector1::new(3.0), 0.2)?;
    /// for scheme in [OdeScheme::ExponentialIntegrator, OdeScheme::Heun] {
    ///     let out = oracle.flow_step(&law, 1.0, 0.5, scheme)?;
    ///     assert!((out.mean()[0] - 3.0).abs() < 1e-12 && (out.covariance()[(0, 0)] - 0.2).abs() < 1e-12);
    /// }
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn flow_step(
        &self,
        law: &Gaussian<D>,
        t: f64,
        t_next: f64,
        scheme: OdeScheme,
    ) -> Result<Gaussian<D>> {
        let h = t - t_next;
        let (p, g) = self.score_affine(t)?;
        let id = self.identity();
        let (a, b) = match scheme {
            OdeScheme::ExponentialIntegrator => {
                let em1 = h.exp_m1();
                (&id * (1.0 + em1) - p * em1, g * em1)
            }
            OdeScheme::Heun => {
                let (p1, g1) = self.score_affine(t_next)?;
                let f0 = &id - p;
                let f1 = &id - p1;
                let a = &id + (&f0 + &f1 * (&id + &f0 * h)) * (0.5 * h);
                let b = (&g + &f1 * &g * h + g1) * (0.5 * h);
                (a, b)
            }
        };
        Self::affine(law, &a, &b, 0.0)
    }

    /// One corrector phase at forward time `t` (targeting `q_t`), with a fresh velocity for the
    /// underdamped corrector.
    ///
    /// # Errors
    ///
    /// Errors of [`UnderdampedOracle::new`] / [`UlaOracle::new`] (an unstable step).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::Corrector;
    /// use klflow::oracle::DiffusionOracle;
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector1;
    ///
    /// // A long underdamped phase brings any law close to its target q_t.
    /// let oracle = DiffusionOracle::new(&Gaussian::isotropic(Vector1::new(2.0), 0.25)?);
    /// let law = Gaussian::isotropic(Vector1::new(-1.0), 3.0)?;
    /// let t = 0.5;
    /// let before = law.kl(&oracle.marginal(t)?)?;
    /// let after = oracle.corrector(&law, t, &Corrector::underdamped(2.0, 0.05, 400)?)?;
    /// assert!(after.kl(&oracle.marginal(t)?)? < 1e-3 * before);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn corrector(
        &self,
        law: &Gaussian<D>,
        t: f64,
        corrector: &Corrector,
    ) -> Result<Gaussian<D>> {
        let target = self.marginal(t)?;
        match *corrector {
            Corrector::Underdamped { step, steps } => {
                let o = UnderdampedOracle::new(&target, step.friction(), step.step())?;
                let joint = o.propagate(&o.joint_initial(law)?, steps)?;
                position_marginal(&joint, law)
            }
            Corrector::Overdamped { step_size, steps } => {
                UlaOracle::new(&target, step_size)?.propagate(law, steps)
            }
        }
    }

    /// The law after all DDPM steps on `grid` from `init` (the law at `T`).
    ///
    /// # Errors
    ///
    /// As [`ddpm_step`](Self::ddpm_step).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{SdeScheme, TimeGrid};
    /// use klflow::oracle::DiffusionOracle;
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector1;
    ///
    /// // Exponential integrator from the exact q_T: the KL of the output to the data is O(h²)
    /// // (0.236 at h = 0.2, 0.051 at h = 0.1).
    /// let oracle = DiffusionOracle::new(&Gaussian::isotropic(Vector1::new(1.5), 0.25)?);
    /// let q_t = oracle.marginal(12.0)?;
    /// let kl = |n| -> Result<f64, klflow::Error> {
    ///     let grid = TimeGrid::uniform(12.0, 0.0, n)?;
    ///     oracle.ddpm(&q_t, &grid, SdeScheme::ExponentialIntegrator, None)?.kl(oracle.data())
    /// };
    /// assert!(kl(120)? < 0.3 * kl(60)?);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn ddpm(
        &self,
        init: &Gaussian<D>,
        grid: &TimeGrid,
        scheme: SdeScheme,
        bias: Option<&OVector<f64, D>>,
    ) -> Result<Gaussian<D>> {
        let mut law = init.clone();
        for k in 0..grid.steps() {
            law = self.ddpm_step(&law, grid.times()[k], grid.step_size(k), scheme, bias)?;
        }
        Ok(law)
    }

    /// The law after all probability-flow steps on `grid` from `init`.
    ///
    /// # Errors
    ///
    /// As [`flow_step`](Self::flow_step).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{OdeScheme, TimeGrid};
    /// use klflow::oracle::DiffusionOracle;
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector1;
    ///
    /// // Heun (second order) beats the exponential integrator on the same grid.
    /// let oracle = DiffusionOracle::new(&Gaussian::isotropic(Vector1::new(1.5), 0.25)?);
    /// let (q_t, grid) = (oracle.marginal(10.0)?, TimeGrid::uniform(10.0, 0.0, 50)?);
    /// let heun = oracle.flow(&q_t, &grid, OdeScheme::Heun)?.kl(oracle.data())?;
    /// let exp = oracle.flow(&q_t, &grid, OdeScheme::ExponentialIntegrator)?.kl(oracle.data())?;
    /// assert!(heun < exp);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn flow(
        &self,
        init: &Gaussian<D>,
        grid: &TimeGrid,
        scheme: OdeScheme,
    ) -> Result<Gaussian<D>> {
        let mut law = init.clone();
        for w in grid.times().windows(2) {
            law = self.flow_step(&law, w[0], w[1], scheme)?;
        }
        Ok(law)
    }

    /// The law after all predictor–corrector steps on `grid` from `init`: each predictor step
    /// followed by a corrector phase at the post-predictor time.
    ///
    /// # Errors
    ///
    /// As [`ddpm_step`](Self::ddpm_step), [`flow_step`](Self::flow_step) and
    /// [`corrector`](Self::corrector).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{Corrector, OdeScheme, Predictor, TimeGrid};
    /// use klflow::oracle::DiffusionOracle;
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector1;
    ///
    /// // With zero corrector steps, predictor–corrector is the predictor alone.
    /// let oracle = DiffusionOracle::new(&Gaussian::isotropic(Vector1::new(1.5), 0.25)?);
    /// let (q_t, grid) = (oracle.marginal(10.0)?, TimeGrid::uniform(10.0, 1e-3, 30)?);
    /// let scheme = OdeScheme::ExponentialIntegrator;
    /// let pc = oracle.predictor_corrector(&q_t, &grid, Predictor::Flow(scheme), &Corrector::overdamped(0.01, 0)?)?;
    /// let flow = oracle.flow(&q_t, &grid, scheme)?;
    /// assert!(pc.kl(&flow)? < 1e-20);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn predictor_corrector(
        &self,
        init: &Gaussian<D>,
        grid: &TimeGrid,
        predictor: Predictor,
        corrector: &Corrector,
    ) -> Result<Gaussian<D>> {
        let mut law = init.clone();
        for w in grid.times().windows(2) {
            law = match predictor {
                Predictor::Flow(s) => self.flow_step(&law, w[0], w[1], s)?,
                Predictor::Sde(s) => self.ddpm_step(&law, w[0], w[0] - w[1], s, None)?,
            };
            law = self.corrector(&law, w[1], corrector)?;
        }
        Ok(law)
    }
}

/// The position block of a joint `(x, p)` law, in the dimension type of `like`.
fn position_marginal<D: Dim>(joint: &Gaussian<Dyn>, like: &Gaussian<D>) -> Result<Gaussian<D>>
where
    DefaultAllocator: Alloc<D>,
{
    let (r, c) = like.covariance().shape_generic();
    let mean = OVector::<f64, D>::from_fn_generic(r, nalgebra::U1, |i, _| joint.mean()[i]);
    let cov = OMatrix::<f64, D, D>::from_fn_generic(r, c, |i, j| joint.covariance()[(i, j)]);
    Gaussian::new(mean, cov)
}
