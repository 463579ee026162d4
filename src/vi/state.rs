//! The state of a Gaussian-VI run and the step shared by FB-GVI and BW gradient descent.

use nalgebra::{DefaultAllocator, Dim, OMatrix, OVector, U1};
use rand::Rng;

use super::{Curvature, Rule};
use crate::dim::{Alloc, all_finite, fill_standard_normal};
use crate::error::{Error, Result};
use crate::gaussian::Gaussian;
use crate::linalg::sym_eigen_into;
use crate::potential::Potential;
use crate::sampler::HasPosition;

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// The current Gaussian iterate `p_k = N(m_k, Σ_k)` of [`FbGvi`](super::FbGvi) or
/// [`BwGd`](super::BwGd), with `Σ_k = Q diag(s) Qᵀ` kept in spectral form, and the scratch
/// buffers of the step.
///
/// [`gaussian`](GviState::gaussian) turns the iterate into a [`Gaussian`] (to sample, evaluate
/// log densities, or compare with a reference via KL/W₂); [`position`](HasPosition::position)
/// is the mean, so the observers of [`run`](mod@crate::run) apply.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, potential::Gaussian, vi::{Expectation, FbGvi}};
/// use nalgebra::SVector;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let target = Gaussian::isotropic(SVector::<f64, 2>::repeat(1.0), 0.5)?;
/// let gvi = FbGvi::new(&target, 0.5, Expectation::Quadratic)?; // L = 2: h = 1/L is allowed
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut state = gvi.init(Gaussian::standard(nalgebra::Const::<2>), &mut rng)?;
/// gvi.step(&mut state, &mut rng)?;
/// // With h = 1/L on an isotropic Gaussian one step lands on the target.
/// assert!((state.mean() - target.mean()).norm() < 1e-12);
/// assert!((state.covariance() - target.covariance()).norm() < 1e-12);
/// assert_eq!(state.iteration(), 1);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct GviState<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    pub(crate) mean: OVector<f64, D>,
    pub(crate) cov: OMatrix<f64, D, D>,
    pub(crate) q: OMatrix<f64, D, D>,
    pub(crate) s: OVector<f64, D>,
    pub(crate) factor: OMatrix<f64, D, D>,
    pub(crate) iteration: usize,
    x: OVector<f64, D>,
    z: OVector<f64, D>,
    grad: OVector<f64, D>,
    g: OVector<f64, D>,
    zbar: OVector<f64, D>,
    hess: OMatrix<f64, D, D>,
    acc: OMatrix<f64, D, D>,
    w: OMatrix<f64, D, D>,
    c: OMatrix<f64, D, D>,
    index: Vec<usize>,
}

/// What one Gaussian-VI step reports.
///
/// The objective and the gradient norm are those of the iterate the step *started* from (they
/// come with the expectations the step needs anyway); the eigenvalues are those of the new
/// covariance. With Monte Carlo expectations the first three fields are noisy estimates.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, potential::Gaussian, vi::{Expectation, FbGvi}};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// // started at the target N(0, I₂): a stationary point, and F(π) = −log Z = −log 2π
/// let target = Gaussian::standard(nalgebra::Const::<2>);
/// let gvi = FbGvi::new(&target, 0.5, Expectation::Quadratic)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut state = gvi.init(target.clone(), &mut rng)?;
/// let info = gvi.step(&mut state, &mut rng)?;
/// assert!(info.gradient_norm_sq < 1e-20);
/// assert!((info.objective + (2.0 * std::f64::consts::PI).ln()).abs() < 1e-12);
/// assert!((info.expected_energy - 1.0).abs() < 1e-12); // E ½‖x‖² = d/2
/// assert!((info.min_eigenvalue - 1.0).abs() < 1e-12 && (info.max_eigenvalue - 1.0).abs() < 1e-12);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GviInfo {
    /// `F(p_k) = E_{p_k}U − H(p_k)`: the KL divergence to the target up to the constant
    /// `log Z` (`KL(p‖π) = F(p) + log Z`).
    pub objective: f64,
    /// `E_{p_k}U`.
    pub expected_energy: f64,
    /// The squared Bures–Wasserstein gradient norm
    /// `‖E∇U‖² + tr((E∇²U − Σ⁻¹)Σ(E∇²U − Σ⁻¹))` at `p_k`: zero exactly at a stationary point.
    pub gradient_norm_sq: f64,
    /// `λ_min(Σ_{k+1})`. FB-GVI keeps it `≥ h`; if it stays pinned near `h`, `h` is too large
    /// for the target's curvature (see `docs/gvi.md`).
    pub min_eigenvalue: f64,
    /// `λ_max(Σ_{k+1})`.
    pub max_eigenvalue: f64,
}

impl<D: Dim> GviState<D>
where
    DefaultAllocator: Alloc<D>,
{
    pub(crate) fn new(start: &Gaussian<D>) -> Result<Self> {
        let (d, _) = start.mean().shape_generic();
        let n = d.value();
        let mut q = OMatrix::zeros_generic(d, d);
        let mut s = OVector::zeros_generic(d, U1);
        if !sym_eigen_into(start.covariance(), &mut q, &mut s) || s.min() <= 0.0 {
            return Err(Error::NotPositiveDefinite { name: "init" });
        }
        let mut st = Self {
            mean: start.mean().clone(),
            cov: start.covariance().clone(),
            q,
            s,
            factor: OMatrix::zeros_generic(d, d),
            iteration: 0,
            x: OVector::zeros_generic(d, U1),
            z: OVector::zeros_generic(d, U1),
            grad: OVector::zeros_generic(d, U1),
            g: OVector::zeros_generic(d, U1),
            zbar: OVector::zeros_generic(d, U1),
            hess: OMatrix::zeros_generic(d, d),
            acc: OMatrix::zeros_generic(d, d),
            w: OMatrix::zeros_generic(d, d),
            c: OMatrix::zeros_generic(d, d),
            index: vec![0; n],
        };
        st.refresh_factor();
        Ok(st)
    }

    /// `B = Q diag(√s)`.
    fn refresh_factor(&mut self) {
        self.factor.copy_from(&self.q);
        for (j, sj) in self.s.iter().enumerate() {
            self.factor.column_mut(j).scale_mut(sj.sqrt());
        }
    }

    /// The mean `m_k`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, potential::Gaussian, vi::{Expectation, FbGvi}};
    /// use nalgebra::Vector2;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let gvi = FbGvi::new(Gaussian::standard(nalgebra::Const::<2>), 0.5, Expectation::Quadratic)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = gvi.init(Gaussian::isotropic(Vector2::new(4.0, -2.0), 1.0)?, &mut rng)?;
    /// assert_eq!(*state.mean(), Vector2::new(4.0, -2.0));
    /// gvi.step(&mut state, &mut rng)?;
    /// // m − h E∇U = m − 0.5 m
    /// assert!((state.mean() - Vector2::new(2.0, -1.0)).amax() < 1e-14);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn mean(&self) -> &OVector<f64, D> {
        &self.mean
    }

    /// The covariance `Σ_k` (symmetric positive definite).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, potential::Gaussian, vi::{Expectation, FbGvi}};
    /// use nalgebra::{Matrix2, Vector2};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let gvi = FbGvi::new(Gaussian::standard(nalgebra::Const::<2>), 1.0, Expectation::Quadratic)?;
    /// let start = Gaussian::new(Vector2::zeros(), Matrix2::new(3.0, 1.0, 1.0, 2.0))?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = gvi.init(start, &mut rng)?;
    /// assert_eq!(*state.covariance(), Matrix2::new(3.0, 1.0, 1.0, 2.0));
    /// // h = 1/L on N(0, I): the forward step collapses Σ, the JKO step lands on I
    /// gvi.step(&mut state, &mut rng)?;
    /// assert!((state.covariance() - Matrix2::identity()).amax() < 1e-12);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn covariance(&self) -> &OMatrix<f64, D, D> {
        &self.cov
    }

    /// The eigenvalues of `Σ_k` (unordered; paired with the columns of
    /// [`covariance_eigenvectors`](GviState::covariance_eigenvectors)).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, potential::Gaussian, vi::{Expectation, FbGvi}};
    /// use nalgebra::{Matrix2, Vector2};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let gvi = FbGvi::new(Gaussian::standard(nalgebra::Const::<2>), 0.5, Expectation::Quadratic)?;
    /// let start = Gaussian::new(Vector2::zeros(), Matrix2::new(2.0, 1.0, 1.0, 2.0))?;
    /// let state = gvi.init(start, &mut ChaCha8Rng::seed_from_u64(0))?;
    /// let mut s: Vec<f64> = state.covariance_eigenvalues().iter().copied().collect();
    /// s.sort_by(f64::total_cmp);
    /// assert!((s[0] - 1.0).abs() < 1e-12 && (s[1] - 3.0).abs() < 1e-12);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn covariance_eigenvalues(&self) -> &OVector<f64, D> {
        &self.s
    }

    /// The orthonormal eigenvectors of `Σ_k`, one per column.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, potential::Gaussian, vi::{Expectation, FbGvi}};
    /// use nalgebra::{Matrix2, Vector2};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let gvi = FbGvi::new(Gaussian::standard(nalgebra::Const::<2>), 0.5, Expectation::Quadratic)?;
    /// let cov = Matrix2::new(2.0, 1.0, 1.0, 2.0);
    /// let state = gvi.init(Gaussian::new(Vector2::zeros(), cov)?, &mut ChaCha8Rng::seed_from_u64(0))?;
    /// let (q, s) = (state.covariance_eigenvectors(), state.covariance_eigenvalues());
    /// // Σ = Q diag(s) Qᵀ with Q orthogonal
    /// assert!((q * Matrix2::from_diagonal(s) * q.transpose() - cov).amax() < 1e-12);
    /// assert!((q.transpose() * q - Matrix2::identity()).amax() < 1e-12);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn covariance_eigenvectors(&self) -> &OMatrix<f64, D, D> {
        &self.q
    }

    /// The number of completed steps `k`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, potential::Gaussian, run::run, vi::{Expectation, FbGvi}};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let target = Gaussian::standard(nalgebra::Const::<2>);
    /// let gvi = FbGvi::new(&target, 0.5, Expectation::Quadratic)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = gvi.init(target.clone(), &mut rng)?;
    /// assert_eq!(state.iteration(), 0);
    /// run(&gvi, &mut state, 7, &mut rng, &mut ())?;
    /// assert_eq!(state.iteration(), 7);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn iteration(&self) -> usize {
        self.iteration
    }

    /// The iterate as a [`Gaussian`] law (allocates; call it when you need the law, not in a
    /// hot loop).
    ///
    /// # Errors
    ///
    /// [`Error::NotPositiveDefinite`] if the covariance is too ill-conditioned for a Cholesky
    /// factorisation in floating point (its eigenvalues are always positive).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, potential::Gaussian, vi::{Expectation, FbGvi}};
    /// use nalgebra::Vector2;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let target = Gaussian::isotropic(Vector2::new(1.0, 1.0), 2.0)?;
    /// let gvi = FbGvi::new(&target, 0.5, Expectation::Quadratic)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut state = gvi.init(Gaussian::standard(nalgebra::Const::<2>), &mut rng)?;
    /// for _ in 0..200 {
    ///     gvi.step(&mut state, &mut rng)?;
    /// }
    /// let law = state.gaussian()?;
    /// assert_eq!(law.mean(), state.mean());
    /// assert!(law.kl(&target)? < 1e-12);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn gaussian(&self) -> Result<Gaussian<D>> {
        Gaussian::from_spectral(self.mean.clone(), &self.cov, &self.q, &self.s)
    }
}

impl<D: Dim> HasPosition for GviState<D>
where
    DefaultAllocator: Alloc<D>,
{
    type Dim = D;
    fn position(&self) -> &OVector<f64, D> {
        &self.mean
    }
}

/// Which covariance update a step makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `Σ½ = (I − hE∇²U)Σ(I − hE∇²U)`, then the entropy's JKO step.
    ForwardBackward,
    /// `Σ' = (I − h(E∇²U − Σ⁻¹))Σ(I − h(E∇²U − Σ⁻¹))`.
    GradientDescent,
}

/// Evaluates the point `x = m + Bz` (with `z` already in `st.z`), adds its weighted gradient
/// and curvature contributions, and returns `weight · U(x)`.
fn add_point<P, C>(
    potential: &P,
    st: &mut GviState<P::Dim>,
    weight: f64,
    step: usize,
) -> Result<f64>
where
    P: Potential,
    C: Curvature<P>,
    DefaultAllocator: Alloc<P::Dim>,
{
    st.x.copy_from(&st.mean);
    // x += Bz column by column, skipping zero coordinates (the cubature points have one).
    for (j, &zj) in st.z.iter().enumerate() {
        if zj != 0.0 {
            st.x.axpy(zj, &st.factor.column(j), 1.0);
        }
    }
    let u = potential.energy_grad(&st.x, &mut st.grad);
    if !u.is_finite() {
        return Err(Error::NonFinite {
            step,
            quantity: "energy",
        });
    }
    if !all_finite(st.grad.as_slice()) {
        return Err(Error::NonFinite {
            step,
            quantity: "gradient",
        });
    }
    st.g.axpy(weight, &st.grad, 1.0);
    C::accumulate(
        potential,
        &st.x,
        &st.z,
        &st.grad,
        weight,
        &mut st.hess,
        &mut st.acc,
    );
    Ok(weight * u)
}

/// Fills `st.g = E∇U`, `st.acc = E∇²U` (symmetric) and returns `E U`.
fn expectations<P, C, R>(
    potential: &P,
    rule: &Rule,
    st: &mut GviState<P::Dim>,
    step: usize,
    rng: &mut R,
) -> Result<f64>
where
    P: Potential,
    C: Curvature<P>,
    R: Rng + ?Sized,
    DefaultAllocator: Alloc<P::Dim>,
{
    let d = st.mean.len();
    st.g.fill(0.0);
    st.acc.fill(0.0);
    let mut eu = 0.0;
    match rule {
        Rule::Quadratic => {
            st.z.fill(0.0);
            eu += add_point::<P, C>(potential, st, 1.0, step)?;
        }
        Rule::Grid(gh) => {
            let (nodes, weights) = (gh.nodes(), gh.weights());
            st.index.fill(0);
            loop {
                let mut w = 1.0;
                for (j, &i) in st.index.iter().enumerate() {
                    st.z[j] = nodes[i];
                    w *= weights[i];
                }
                if w > 0.0 {
                    eu += add_point::<P, C>(potential, st, w, step)?;
                }
                // Odometer increment over nodes^d multi-indices.
                let mut j = 0;
                while j < d {
                    st.index[j] += 1;
                    if st.index[j] < nodes.len() {
                        break;
                    }
                    st.index[j] = 0;
                    j += 1;
                }
                if j == d {
                    break;
                }
            }
        }
        Rule::Cubature => {
            let r = (d as f64).sqrt();
            let w = 0.5 / d as f64;
            for i in 0..d {
                for sign in [1.0, -1.0] {
                    st.z.fill(0.0);
                    st.z[i] = sign * r;
                    eu += add_point::<P, C>(potential, st, w, step)?;
                }
            }
        }
        Rule::MonteCarlo(batch) => {
            let b = *batch;
            let w = 1.0 / b as f64;
            st.zbar.fill(0.0);
            for _ in 0..b {
                fill_standard_normal(&mut st.z, rng);
                st.zbar.axpy(w, &st.z, 1.0);
                eu += add_point::<P, C>(potential, st, w, step)?;
            }
            if C::CROSS_MOMENT && b >= 2 {
                // acc = b⁻¹Σ zᵢgᵢᵀ → (b − 1)⁻¹Σ (zᵢ − z̄)(gᵢ − ḡ)ᵀ = b/(b − 1)·(acc − z̄ḡᵀ).
                st.acc.ger(-1.0, &st.zbar, &st.g, 1.0);
                st.acc *= b as f64 / (b - 1) as f64;
            }
        }
    }
    C::finish(&mut st.acc, &st.q, &st.s, &mut st.w, &mut st.c);
    if matches!(rule, Rule::Quadratic) {
        eu += 0.5 * st.acc.dot(&st.cov);
    }
    if !eu.is_finite() {
        return Err(Error::NonFinite {
            step,
            quantity: "expected energy",
        });
    }
    if !all_finite(st.acc.as_slice()) {
        return Err(Error::NonFinite {
            step,
            quantity: "expected Hessian",
        });
    }
    Ok(eu)
}

/// One FB-GVI or BW-GD step; see the two algorithms' docs for the update.
pub(crate) fn gvi_step<P, C, R>(
    potential: &P,
    rule: &Rule,
    h: f64,
    scheme: Scheme,
    st: &mut GviState<P::Dim>,
    rng: &mut R,
) -> Result<GviInfo>
where
    P: Potential,
    C: Curvature<P>,
    R: Rng + ?Sized,
    DefaultAllocator: Alloc<P::Dim>,
{
    let step = st.iteration + 1;
    let d = st.mean.len();
    let eu = expectations::<P, C, R>(potential, rule, st, step, rng)?;
    let half_log_det: f64 = 0.5 * st.s.iter().map(|v| v.ln()).sum::<f64>();
    let objective = eu - half_log_det - 0.5 * d as f64 * (1.0 + LN_2PI);

    // W = E∇²U · B, and G = (E∇²U − Σ⁻¹)B = W − Q diag(s^{-1/2}), the BW gradient's
    // covariance part in factored form: ‖G‖²_F = tr((H − Σ⁻¹)Σ(H − Σ⁻¹)).
    st.w.gemm(1.0, &st.acc, &st.factor, 0.0);
    let mut cov_grad_sq = 0.0;
    for j in 0..d {
        let inv = 1.0 / st.s[j].sqrt();
        for i in 0..d {
            let gij = st.w[(i, j)] - st.q[(i, j)] * inv;
            cov_grad_sq += gij * gij;
            if scheme == Scheme::GradientDescent {
                st.w[(i, j)] = gij;
            }
        }
    }
    let gradient_norm_sq = st.g.norm_squared() + cov_grad_sq;

    // C = (I − hM)B with M = E∇²U (FB) or E∇²U − Σ⁻¹ (BW); the new (half-)covariance is CCᵀ,
    // a symmetric product by construction.
    st.c.copy_from(&st.factor);
    st.c.zip_apply(&st.w, |c, w| *c -= h * w);
    st.c.transpose_to(&mut st.w);
    st.cov.gemm(1.0, &st.c, &st.w, 0.0);
    crate::vi::symmetrize_in_place(&mut st.cov);
    if !sym_eigen_into(&st.cov, &mut st.q, &mut st.s) {
        return Err(Error::NonFinite {
            step,
            quantity: "covariance",
        });
    }
    match scheme {
        Scheme::ForwardBackward => {
            for v in st.s.iter_mut() {
                *v = super::entropy_jko_eigenvalue(v.max(0.0), h);
            }
        }
        Scheme::GradientDescent => {
            if !st.s.iter().all(|v| v.is_finite() && *v > 0.0) {
                return Err(Error::NotPositiveDefinite { name: "covariance" });
            }
        }
    }
    st.refresh_factor();
    st.factor.transpose_to(&mut st.w);
    st.cov.gemm(1.0, &st.factor, &st.w, 0.0);
    crate::vi::symmetrize_in_place(&mut st.cov);
    st.mean.axpy(-h, &st.g, 1.0);
    st.iteration = step;
    if !all_finite(st.mean.as_slice()) {
        return Err(Error::NonFinite {
            step,
            quantity: "mean",
        });
    }
    Ok(GviInfo {
        objective,
        expected_energy: eu,
        gradient_norm_sq,
        min_eigenvalue: st.s.min(),
        max_eigenvalue: st.s.max(),
    })
}
