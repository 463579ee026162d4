//! Bayesian logistic regression.

use nalgebra::allocator::Allocator;
use nalgebra::{
    DMatrix, DMatrixView, DMatrixViewMut, DefaultAllocator, Dim, Dyn, OMatrix, OVector,
};

use crate::error::{Error, Result, finite_input, positive};
use crate::fastmath;
use crate::linalg::sym_eigenvalues;
use crate::potential::{BatchPotential, BatchWorkspace, Potential, PotentialHessian};

mod panel;

/// Observations per block of the blocked evaluation: `η` for the block, then the
/// transcendental pass, then the gradient accumulation, each a vectorised loop.
const BLOCK: usize = 64;

/// `(log(1 + e^η), 1/(1 + e^{−η}))` from a single `exp(−|η|)`, branch free (vectorises): the
/// same exponential and logistic function as the fused batch kernel; its softplus takes one
/// logarithm per entry ([`softplus_sigmoid_from`]) where the fused kernel takes one per chunk.
#[inline(always)]
fn softplus_sigmoid(eta: f64) -> (f64, f64) {
    softplus_sigmoid_from(eta, fastmath::exp_nonpos(-eta.abs()))
}

/// The logistic function `1/(1 + e^{−η})` from `exp(−|η|)`, branch free (the sigmoid half of
/// [`softplus_sigmoid`], bit for bit).
#[inline(always)]
fn sigmoid(eta: f64) -> f64 {
    sigmoid_from(eta, fastmath::exp_nonpos(-eta.abs()))
}

/// The posterior of Bayesian logistic regression with prior `w ~ N(0, σ²I)`:
/// `U(w) = Σ_n [log(1 + e^{η_n}) − y_n η_n] + ‖w‖²/(2σ²)`, `η = Aw`,
/// `∇U = Aᵀ(logistic(η) − y) + w/σ²`.
///
/// The design matrix is stored column-major; energy and gradient run over blocks of
/// observations (`η = A_B w` for the block, one shared `exp(−|η|)` per observation for
/// `softplus` and the logistic function, then `∇ += A_Bᵀ r`), allocate nothing and cost O(nd).
/// Many points at once ([`BatchPotential`]): for `d ≤ 16` one fused pass over the
/// observations with the chains along the vector lanes (softplus from one logarithm per 64
/// observations and chain, of the product of the `1 + e^{−|η|}`; energies agree with the
/// single-point path to ~`10⁻¹⁵` relative); above, the products `AW` and `AᵀR` fused with
/// the logistic pass between them, block by block of observations (two plain matrix
/// products for fewer than 8 chains). Labels may be any values in
/// `[0, 1]` (fractional labels give a tempered likelihood). Smoothness `L = λ_max(AᵀA)/4 + 1/σ²`
/// and strong convexity `α = 1/σ²` are computed at construction.
///
/// # Example
///
/// ```
/// use klflow::potential::{LogisticRegression, Potential};
/// use nalgebra::{DMatrix, DVector};
///
/// let a = DMatrix::from_row_slice(3, 2, &[1.0, 0.5, -1.0, 0.2, 0.3, -0.7]);
/// let post = LogisticRegression::new(nalgebra::Dyn(2), &a, &[1.0, 0.0, 1.0], 1.0)?;
/// // At w = 0 every η is 0: U = 3 log 2.
/// assert!((post.energy(&DVector::zeros(2)) - 3.0 * 2f64.ln()).abs() < 1e-15);
/// assert!(post.smoothness().unwrap() > 1.0);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(
        try_from = "LogisticParts<D>",
        into = "LogisticParts<D>",
        bound(
            serialize = "D: Dim + serde::Serialize",
            deserialize = "D: Dim + serde::Deserialize<'de>"
        )
    )
)]
pub struct LogisticRegression<D> {
    dim: D,
    /// The design matrix `A` (n × d, column-major).
    design: DMatrix<f64>,
    /// `Aᵀ` (d × n), for the batched gradient `AᵀR`. A copy rather than a strided view of
    /// `design`: nalgebra 0.35's `gemm` mis-sizes row-strided operands (dimforge/nalgebra
    /// PR #1613) and crashed here with a transposed view.
    design_t: DMatrix<f64>,
    labels: Vec<f64>,
    /// `Σ_i y_i a_i` over each chunk of [`FUSED_CHUNK`] observations (chunk-major, `d` per
    /// chunk), for the fused kernel's label terms.
    label_sums: Vec<f64>,
    prior_variance: f64,
    prior_precision: f64,
    smoothness: f64,
}

/// The serialised form of a [`LogisticRegression`]: the constructor's arguments only.
/// Deserialising goes through [`LogisticRegression::new`], so the input is validated and
/// the derived fields (`Aᵀ`, the label sums, the smoothness) are recomputed rather than
/// trusted.
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
struct LogisticParts<D> {
    dim: D,
    features: DMatrix<f64>,
    labels: Vec<f64>,
    prior_variance: f64,
}

#[cfg(feature = "serde")]
impl<D: Dim> TryFrom<LogisticParts<D>> for LogisticRegression<D> {
    type Error = Error;

    fn try_from(p: LogisticParts<D>) -> Result<Self> {
        Self::new(p.dim, &p.features, &p.labels, p.prior_variance)
    }
}

#[cfg(feature = "serde")]
impl<D> From<LogisticRegression<D>> for LogisticParts<D> {
    fn from(l: LogisticRegression<D>) -> Self {
        Self {
            dim: l.dim,
            features: l.design,
            labels: l.labels,
            prior_variance: l.prior_variance,
        }
    }
}

/// Overwrites `eta` with the residuals `logistic(η) − y` and returns `Σ softplus(η) − yη`
/// (`lik` is scratch of the same length). Separate loops without loop-carried state, so that
/// each vectorises.
#[inline(always)]
fn transcendental_pass(eta: &mut [f64], y: &[f64], lik: &mut [f64]) -> f64 {
    crate::simd::dispatch(
        #[inline(always)]
        || {
            for ((e, l), &yi) in eta.iter_mut().zip(lik.iter_mut()).zip(y) {
                let (sp, sig) = softplus_sigmoid(*e);
                *l = sp - yi * *e;
                *e = sig - yi;
            }
            let mut acc = [0.0f64; 8];
            let chunks = lik.chunks_exact(8);
            let rest = chunks.remainder();
            for c in chunks {
                for k in 0..8 {
                    acc[k] += c[k];
                }
            }
            let mut s =
                ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
            for v in rest {
                s += v;
            }
            s
        },
    )
}

impl<D: Dim> LogisticRegression<D> {
    /// The posterior for design matrix `features` (n × d, one observation per row), `labels`
    /// in `[0, 1]`, and prior variance `prior_variance`.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] for no observations; [`Error::DimensionMismatch`] if `features` does
    /// not have `d` columns or `labels` has the wrong length, or naming `dim` if `d = 0`; [`Error::NonFiniteInput`] for
    /// non-finite features; [`Error::InvalidParameter`] for a label outside `[0, 1]` or a
    /// non-positive prior variance.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, Potential, potential::LogisticRegression};
    /// use nalgebra::{DMatrix, Dyn};
    ///
    /// // L = λ_max(AᵀA)/4 + 1/σ² = 4/4 + 2; α = 1/σ² = 2.
    /// let a = DMatrix::from_row_slice(2, 2, &[2.0, 0.0, 0.0, 1.0]);
    /// let post = LogisticRegression::new(Dyn(2), &a, &[1.0, 0.0], 0.5)?;
    /// assert!((post.smoothness().unwrap() - 3.0).abs() < 1e-12);
    /// assert_eq!(post.strong_convexity(), Some(2.0));
    /// assert!(matches!(
    ///     LogisticRegression::new(Dyn(2), &a, &[1.5, 0.0], 0.5),
    ///     Err(Error::InvalidParameter { name: "labels", .. })
    /// ));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(
        dim: D,
        features: &DMatrix<f64>,
        labels: &[f64],
        prior_variance: f64,
    ) -> Result<Self> {
        let (n, d) = features.shape();
        if dim.value() == 0 {
            return Err(Error::DimensionMismatch {
                name: "dim",
                expected: 1,
                found: 0,
            });
        }
        if n == 0 {
            return Err(Error::Empty { name: "features" });
        }
        if d != dim.value() {
            return Err(Error::DimensionMismatch {
                name: "features",
                expected: dim.value(),
                found: d,
            });
        }
        if labels.len() != n {
            return Err(Error::DimensionMismatch {
                name: "labels",
                expected: n,
                found: labels.len(),
            });
        }
        finite_input("features", features.as_slice())?;
        if let Some(&y) = labels.iter().find(|y| !(0.0..=1.0).contains(*y)) {
            return Err(Error::InvalidParameter {
                name: "labels",
                value: y,
                reason: "must lie in [0, 1]",
            });
        }
        positive("prior_variance", prior_variance)?;
        let gram = features.transpose() * features;
        let lmax = sym_eigenvalues(&gram)
            .last()
            .copied()
            .unwrap_or(0.0)
            .max(0.0);
        let mut label_sums = vec![0.0; n.div_ceil(FUSED_CHUNK) * d];
        for (i, &y) in labels.iter().enumerate() {
            let sums = &mut label_sums[i / FUSED_CHUNK * d..][..d];
            for (s, j) in sums.iter_mut().zip(0..d) {
                *s = fastmath::fmadd(y, features[(i, j)], *s);
            }
        }
        Ok(Self {
            dim,
            design: features.clone(),
            design_t: features.transpose(),
            labels: labels.to_vec(),
            label_sums,
            prior_variance,
            prior_precision: 1.0 / prior_variance,
            smoothness: 0.25 * lmax + 1.0 / prior_variance,
        })
    }

    /// The prior variance `σ²` given to [`LogisticRegression::new`].
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::LogisticRegression;
    /// use nalgebra::{DMatrix, Dyn};
    ///
    /// let a = DMatrix::from_row_slice(2, 1, &[1.0, -1.0]);
    /// assert_eq!(LogisticRegression::new(Dyn(1), &a, &[1.0, 0.0], 2.5)?.prior_variance(), 2.5);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn prior_variance(&self) -> f64 {
        self.prior_variance
    }

    /// The number of observations.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::LogisticRegression;
    /// use nalgebra::{DMatrix, Dyn};
    ///
    /// let a = DMatrix::from_row_slice(3, 1, &[1.0, -1.0, 0.5]);
    /// assert_eq!(LogisticRegression::new(Dyn(1), &a, &[1.0, 0.0, 1.0], 1.0)?.len(), 3);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// `false`: a posterior always has observations (kept for the `len` convention).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, potential::LogisticRegression};
    /// use nalgebra::{DMatrix, Dyn};
    ///
    /// let a = DMatrix::from_row_slice(1, 1, &[1.0]);
    /// assert!(!LogisticRegression::new(Dyn(1), &a, &[1.0], 1.0)?.is_empty());
    /// // No observations is an error, so a posterior is never empty.
    /// let none = DMatrix::<f64>::zeros(0, 1);
    /// assert!(matches!(LogisticRegression::new(Dyn(1), &none, &[], 1.0), Err(Error::Empty { .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Blocked pass over the observations at `w`: returns the likelihood part of `U` and, if
    /// `grad` is given, adds `Aᵀ(logistic(η) − y)` to it.
    fn likelihood_pass(&self, ws: &[f64], mut grad: Option<&mut [f64]>) -> f64 {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let n = self.labels.len();
                let a = self.design.as_slice();
                let mut u = 0.0;
                let mut eta = [0.0f64; BLOCK];
                let mut lik = [0.0f64; BLOCK];
                let mut start = 0;
                while start < n {
                    let m = BLOCK.min(n - start);
                    let eta = &mut eta[..m];
                    eta.fill(0.0);
                    for (j, &wj) in ws.iter().enumerate() {
                        let col = &a[j * n + start..j * n + start + m];
                        for (e, &aij) in eta.iter_mut().zip(col) {
                            *e += aij * wj;
                        }
                    }
                    u += transcendental_pass(eta, &self.labels[start..start + m], &mut lik[..m]);
                    if let Some(g) = grad.as_deref_mut() {
                        for (j, gj) in g.iter_mut().enumerate() {
                            *gj += dot(&a[j * n + start..j * n + start + m], eta);
                        }
                    }
                    start += m;
                }
                u
            },
        )
    }
}

use crate::dim::dot;

impl<D: Dim> Potential for LogisticRegression<D> {
    type Dim = D;

    fn dim(&self) -> D {
        self.dim
    }

    fn energy(&self, w: &OVector<f64, D>) -> f64
    where
        DefaultAllocator: Allocator<D>,
    {
        self.likelihood_pass(w.as_slice(), None) + 0.5 * self.prior_precision * w.norm_squared()
    }

    fn energy_grad(&self, w: &OVector<f64, D>, grad: &mut OVector<f64, D>) -> f64
    where
        DefaultAllocator: Allocator<D>,
    {
        grad.copy_from(w);
        *grad *= self.prior_precision;
        let u = 0.5 * self.prior_precision * w.norm_squared();
        u + self.likelihood_pass(w.as_slice(), Some(grad.as_mut_slice()))
    }

    fn smoothness(&self) -> Option<f64> {
        Some(self.smoothness)
    }

    fn strong_convexity(&self) -> Option<f64> {
        Some(self.prior_precision)
    }
}

impl<D: Dim> PotentialHessian for LogisticRegression<D> {
    fn hessian(&self, w: &OVector<f64, D>, hess: &mut OMatrix<f64, D, D>)
    where
        DefaultAllocator: Allocator<D> + Allocator<D, D>,
    {
        hess.fill_with_identity();
        *hess *= self.prior_precision;
        let n = self.labels.len();
        let d = self.dim.value();
        let a = &self.design;
        let ws = w.as_slice();
        for r in 0..n {
            let eta: f64 = (0..d).map(|j| a[(r, j)] * ws[j]).sum();
            let (_, s) = softplus_sigmoid(eta);
            let c = s * (1.0 - s);
            for j in 0..d {
                let caj = c * a[(r, j)];
                for i in 0..d {
                    hess[(i, j)] += caj * a[(r, i)];
                }
            }
        }
    }
}

impl LogisticRegression<Dyn> {
    /// `η = AX` (n × C) in the workspace buffer; checks the shapes.
    fn batch_eta<'w>(
        &self,
        x: &DMatrixView<'_, f64>,
        grad: &DMatrixViewMut<'_, f64>,
        energy: Option<&[f64]>,
        work: &'w mut BatchWorkspace,
    ) -> DMatrixViewMut<'w, f64> {
        let (n, d) = self.design.shape();
        crate::potential::check_batch_shapes(d, x, grad, energy);
        let buf = work.buffer(n * x.ncols());
        let mut eta = DMatrixViewMut::from_slice(buf, n, x.ncols());
        eta.gemm(1.0, &self.design, x, 0.0);
        eta
    }
}

/// Chains per tile of the fused small-`d` kernel (one AVX-512 vector of `f64`); a last tile
/// of at most 4 chains uses half vectors ([`NARROW`]).
const LANES: usize = 8;
/// The width of a narrow last tile.
const NARROW: usize = 4;

/// `(softplus(η), logistic(η))` given `e = exp(−|η|)` (from [`fastmath::exp_nonpos`]), with
/// [`fastmath::ln_1p_unit`] (no bit manipulation, no rounding correction); the logistic
/// function is [`sigmoid_parts`]'s, bit for bit.
#[inline(always)]
fn softplus_sigmoid_from(eta: f64, e: f64) -> (f64, f64) {
    let sp = eta.max(0.0) + fastmath::ln_1p_unit(e);
    (sp, sigmoid_parts(eta, e).1)
}

/// The logistic half of [`softplus_sigmoid_from`], bit for bit.
#[inline(always)]
fn sigmoid_from(eta: f64, e: f64) -> f64 {
    sigmoid_parts(eta, e).1
}

/// `(1 + e, logistic(η))` given `e = exp(−|η|)`: the logistic function as `1/(1 + e)` or
/// `e/(1 + e)`, with the denominator for the fused kernel's product of `1 + e` factors.
#[inline(always)]
fn sigmoid_parts(eta: f64, e: f64) -> (f64, f64) {
    let x = 1.0 + e;
    let inv = 1.0 / x;
    (x, if eta >= 0.0 { inv } else { e * inv })
}

/// The largest dimension evaluated by the fused kernel ([`fused_tile`]); above it the batch
/// goes through the two matrix products. At `d ≤ 16` a tile's `Θ` and gradient accumulators
/// (`2d` vectors) stay in registers; measured with 100 chains the fused kernel is faster at
/// `d = 10, 12, 16` (ULA 17–29 %, MALA 18–31 % less time); at small `d` the products are
/// dominated by packing and their narrow output.
pub(crate) const FUSED_MAX_D: usize = 16;

/// Observations per partial sum of [`fused_tile`] (the partial sums are then added, so the
/// rounding grows like `64 + n/64` rather than `n`), and per logarithm of its product of
/// `1 + e^{−|z|}` factors (each in `[1, 2]`, so the product stays below `2⁶⁴`).
const FUSED_CHUNK: usize = 64;

/// Observations per group of [`fused_rows`]: their `z` first, then their transcendental
/// functions, then their gradient terms, so that the independent evaluations of the group
/// overlap (one observation at a time is a latency chain of ≈ 150 cycles).
const FUSED_ROWS: usize = 8;

/// The loop orders of the fused kernel's two small products: in builds for AVX-512 CPUs
/// [`z_rows`] coordinate-outer and [`g_rows`] observation-outer (each carrying all of its
/// output in registers); elsewhere, including the AVX-512 code a baseline build runs through
/// [`crate::simd::dispatch`], the other way round (one accumulator vector at a time). Either
/// way the same bits; LLVM vectorises each form well only under its own tuning. MALA logreg
/// d = 10 with 100 chains on a Zen 4 core: native build 0.185 ms against 0.285 ms with the
/// other `z` order; baseline x86-64 build 0.38 → 0.30 ms (`z` order) → 0.25 ms (`g` order).
const Z_BY_COORDINATE: bool = cfg!(target_feature = "avx512f");

/// `z[j][t] += Σ_k rows[j·D + k]·theta[k][t]` for `R` observations (row-major `rows`), the
/// sum over `k` in order after `z`'s own value. `BY_COORDINATE`: the loop over `k` outside,
/// carrying all of `z` (R vectors in registers, in chunks of at most 8 coordinates), else
/// observation by observation with one local accumulator vector (see [`Z_BY_COORDINATE`]).
#[inline(always)]
fn z_rows<const D: usize, const L: usize, const R: usize, const BY_COORDINATE: bool>(
    rows: &[f64],
    theta: &[[f64; L]; D],
    z: &mut [[f64; L]; R],
) {
    let rows: &[f64] = &rows[..R * D];
    if BY_COORDINATE {
        for (kc, thc) in theta.chunks(8).enumerate() {
            for (kk, th) in thc.iter().enumerate() {
                for (j, zj) in z.iter_mut().enumerate() {
                    let a = rows[j * D + kc * 8 + kk];
                    for t in 0..L {
                        zj[t] = fastmath::fmadd(a, th[t], zj[t]);
                    }
                }
            }
        }
    } else {
        for (zj, row) in z.iter_mut().zip(rows.chunks_exact(D)) {
            let mut acc = *zj;
            for (&a, th) in row.iter().zip(theta) {
                for t in 0..L {
                    acc[t] = fastmath::fmadd(a, th[t], acc[t]);
                }
            }
            *zj = acc;
        }
    }
}

/// [`fused_tile`] on `R` consecutive observations (`rows`: `R × D` row-major), accumulating
/// `a_i σ(z_i)` into `g`, `max(z_i, 0)` into `lik` and `1 + e^{−|z_i|}` into the product
/// `prod`, in observation order.
#[inline(always)]
fn fused_rows<const D: usize, const ENERGY: bool, const L: usize, const R: usize>(
    rows: &[f64],
    theta: &[[f64; L]; D],
    g: &mut [[f64; L]; D],
    lik: &mut [f64; L],
    prod: &mut [f64; L],
) {
    let rows: &[f64] = &rows[..R * D];
    let mut z = [[0.0; L]; R];
    z_rows::<D, L, R, Z_BY_COORDINATE>(rows, theta, &mut z);
    // One flat loop over the R × 8 entries (contiguous, so LLVM vectorises it along the
    // entries), then the label terms row by row; z becomes the residual σ(z) − y.
    // The exponentials first, then the rest: two short loop bodies keep more independent
    // evaluations in flight than one long one (the chains are latency bound).
    let mut ex = [[0.0; L]; R];
    for (e, &zv) in ex.as_flattened_mut().iter_mut().zip(z.as_flattened()) {
        *e = fastmath::exp_nonpos(-zv.abs());
    }
    // The logistic function from `1 + e`, which (if ENERGY) is also the factor of the chunk's
    // product for softplus: `softplus(z) = max(z, 0) + ln(1 + e)`, the logarithms taken once
    // per chunk (see `fused_tile`). z becomes σ(z) (the label terms are added per chunk).
    // Row by row with the energy (per-chain accumulators), one flat loop without (measured:
    // each is the faster form for its case).
    if ENERGY {
        for (zj, ej) in z.iter_mut().zip(&ex) {
            for t in 0..L {
                let (zv, e) = (zj[t], ej[t]);
                let (x, sig) = sigmoid_parts(zv, e);
                lik[t] += zv.max(0.0);
                prod[t] *= x;
                zj[t] = sig;
            }
        }
    } else {
        for (zv, &e) in z.as_flattened_mut().iter_mut().zip(ex.as_flattened()) {
            *zv = sigmoid_from(*zv, e);
        }
    }
    g_rows::<D, L, R, Z_BY_COORDINATE>(rows, &z, g);
}

/// `g[k][t] += Σ_j rows[j·D + k]·z[j][t]` for `R` observations, the sum over `j` in order.
/// `BY_OBSERVATION`: the loop over observations outside (carrying all of `g`; the coordinates
/// in chunks of at most 8, so that each inner loop is fully unrolled rather than vectorised
/// across coordinates), else coordinate by coordinate with one local accumulator vector. The
/// same bits; the order is the opposite of [`z_rows`]'s (see [`Z_BY_COORDINATE`]).
#[inline(always)]
fn g_rows<const D: usize, const L: usize, const R: usize, const BY_OBSERVATION: bool>(
    rows: &[f64],
    z: &[[f64; L]; R],
    g: &mut [[f64; L]; D],
) {
    let rows: &[f64] = &rows[..R * D];
    if BY_OBSERVATION {
        for (rj, row) in z.iter().zip(rows.chunks_exact(D)) {
            for (gc, ac) in g.chunks_mut(8).zip(row.chunks(8)) {
                for (gk, &a) in gc.iter_mut().zip(ac) {
                    for t in 0..L {
                        gk[t] = fastmath::fmadd(a, rj[t], gk[t]);
                    }
                }
            }
        }
    } else {
        for (k, gk) in g.iter_mut().enumerate() {
            let mut acc = *gk;
            for (rj, row) in z.iter().zip(rows.chunks_exact(D)) {
                let a = row[k];
                for t in 0..L {
                    acc[t] = fastmath::fmadd(a, rj[t], acc[t]);
                }
            }
            *gk = acc;
        }
    }
}

/// The fused small-`d` kernel on one tile of up to 8 chains: `theta[k][t]` is coordinate `k`
/// of chain `t`. For every observation `i` (row `a_i` of `A`, label `y_i`):
/// `z_t = Σ_k a_ik θ_kt`, one `e = exp(−|z_t|)` ([`fastmath::exp_nonpos`]) for the logistic
/// function and (if `ENERGY`) softplus, `g_kt += a_ik σ(z_t)`. Every loop runs along the 8
/// chains (one vector). Returns `Σ_i a_i (σ − y_i)` per chain and (if `ENERGY`)
/// `Σ_i softplus(z) − y_i z`, each summed in observation order within chunks of 64
/// observations, then over the chunks.
///
/// Per chunk `c`, the label terms are taken out of the per-observation loop:
/// `Σ_i a_i (σ_i − y_i) = Σ_i a_i σ_i − b_c` and `Σ_i y_i z_i = b_cᵀθ` with `b_c = Σ_{i∈c} y_i a_i`
/// (`label_sums`, computed at construction). Softplus is `max(z, 0) + ln(1 + e)`, and the
/// logarithms of a chunk are one logarithm of a product:
/// `Σ_i ln(1 + e_i) = ln Π_i (1 + e_i)`, one [`fastmath::ln`] per chunk and chain instead of a
/// logarithm per entry. Each factor lies in `[1, 2]`, so the product of at most 64 lies in
/// `[1, 2⁶⁴]` (no overflow, no underflow).
///
/// Rounding (`u = 2⁻⁵³`): the `m ≤ 64` rounded factors `fl(1 + e)` and `m − 1` rounded
/// products make the computed product `P(1 + δ)` with `|δ| ≤ (2m − 1)u` (first order), so its
/// logarithm is within `(2m − 1)u ≤ 127u` absolute of `ln P`; [`fastmath::ln`] adds at most 4
/// ulp of `max(ln P, 1) ≤ 64 ln 2`. In all below `127u + 4·2u·44.4 < 5.4·10⁻¹⁴` per chunk
/// (unit test `ln_of_product_matches_sum_of_ln_1p`), the same order as the `m`-term sum of
/// per-entry logarithms it replaces. The label terms cost cancellation instead: `Σ max(z, 0)`
/// and `b_cᵀθ` are summed separately, so the energy's absolute error is of order
/// `u·Σ_i |z_i|` rather than `u·Σ_i |softplus(z_i) − y_i z_i|`, and the gradient's
/// `u·Σ_i |a_i|` as before. Both far below anything a sampler can resolve.
#[inline(never)]
fn fused_tile<const D: usize, const ENERGY: bool, const L: usize>(
    rows: &[f64],
    label_sums: &[f64],
    theta: &[[f64; L]; D],
) -> ([[f64; L]; D], [f64; L]) {
    crate::simd::dispatch(
        #[inline(always)]
        || {
            let mut g_tot = [[0.0; L]; D];
            let mut lik_tot = [0.0; L];
            for (rc, ys) in rows.chunks(FUSED_CHUNK * D).zip(label_sums.chunks_exact(D)) {
                let mut g = [[0.0; L]; D];
                let mut lik = [0.0; L];
                let mut prod = [1.0; L];
                let groups = rc.chunks_exact(FUSED_ROWS * D);
                let rest = groups.remainder();
                for rg in groups {
                    fused_rows::<D, ENERGY, L, FUSED_ROWS>(rg, theta, &mut g, &mut lik, &mut prod);
                }
                for row in rest.chunks_exact(D) {
                    fused_rows::<D, ENERGY, L, 1>(row, theta, &mut g, &mut lik, &mut prod);
                }
                // Σ a_i (σ_i − y_i) = Σ a_i σ_i − Σ a_i y_i, and Σ y_i z_i = (Σ y_i a_i)ᵀθ.
                let mut yz = [0.0; L];
                for ((gt, gk), (&yk, th)) in g_tot.iter_mut().zip(&g).zip(ys.iter().zip(theta)) {
                    for t in 0..L {
                        gt[t] += gk[t] - yk;
                        if ENERGY {
                            yz[t] = fastmath::fmadd(yk, th[t], yz[t]);
                        }
                    }
                }
                if ENERGY {
                    for t in 0..L {
                        lik_tot[t] += (lik[t] - yz[t]) + fastmath::ln(prod[t]);
                    }
                }
            }
            (g_tot, lik_tot)
        },
    )
}

impl LogisticRegression<Dyn> {
    /// The fused small-`d` batch (`d = D ≤ FUSED_MAX_D`): the columns in tiles of 8 chains
    /// (a last tile of at most 4 in half vectors) through [`fused_tile`], then `∇ = Aᵀr + x/σ²` and (if `ENERGY`)
    /// `U = lik + ‖x‖²/(2σ²)` per column.
    fn fused_columns<const D: usize, const ENERGY: bool>(
        &self,
        x: &DMatrixView<'_, f64>,
        grad: &mut DMatrixViewMut<'_, f64>,
        energy: &mut [f64],
    ) {
        let c = x.ncols();
        let mut c0 = 0;
        while c - c0 > NARROW {
            self.fused_tile_columns::<D, ENERGY, LANES>(x, grad, energy, c0);
            c0 = (c0 + LANES).min(c);
        }
        if c0 < c {
            self.fused_tile_columns::<D, ENERGY, NARROW>(x, grad, energy, c0);
        }
    }

    /// One tile: columns `c0 .. min(c0 + L, C)` through [`fused_tile`].
    fn fused_tile_columns<const D: usize, const ENERGY: bool, const L: usize>(
        &self,
        x: &DMatrixView<'_, f64>,
        grad: &mut DMatrixViewMut<'_, f64>,
        energy: &mut [f64],
        c0: usize,
    ) {
        let w = L.min(x.ncols() - c0);
        // Padding lanes hold θ = 0 (finite; their results are dropped).
        let mut theta = [[0.0; L]; D];
        for t in 0..w {
            for (k, th) in theta.iter_mut().enumerate() {
                th[t] = x[(k, c0 + t)];
            }
        }
        let (g, lik) =
            fused_tile::<D, ENERGY, L>(self.design_t.as_slice(), &self.label_sums, &theta);
        for t in 0..w {
            let mut sq = 0.0;
            for k in 0..D {
                let xk = theta[k][t];
                sq += xk * xk;
                grad[(k, c0 + t)] = self.prior_precision * xk + g[k][t];
            }
            if ENERGY {
                energy[c0 + t] = lik[t] + 0.5 * self.prior_precision * sq;
            }
        }
    }

    /// [`fused_columns`](Self::fused_columns) for the runtime `d` (`1 ≤ d ≤ FUSED_MAX_D`).
    fn fused_dispatch<const ENERGY: bool>(
        &self,
        x: &DMatrixView<'_, f64>,
        grad: &mut DMatrixViewMut<'_, f64>,
        energy: &mut [f64],
    ) {
        macro_rules! by_dim {
            ($($n:literal)*) => {
                match x.nrows() {
                    $($n => self.fused_columns::<$n, ENERGY>(x, grad, energy),)*
                    d => unreachable!("fused kernel called with d = {d}"),
                }
            };
        }
        by_dim!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
    }
}

/// The fewest chains for which the blocked kernel ([`panel`]) replaces the two matrix
/// products at `d > FUSED_MAX_D`: it runs the chains along 8-lane vectors, so fewer would
/// leave most lanes idle.
const PANEL_MIN_CHAINS: usize = 8;

impl LogisticRegression<Dyn> {
    /// The blocked batch ([`panel`]): `Θ` copied chain-minor, the fused products and logistic
    /// pass, then `∇ = AᵀR + X/σ²` and the energies back in the caller's layout. `wide`: the
    /// register tiles for 32 registers of 512 bits ([`fastmath::wide_regs`]; the tests run both
    /// shapes).
    fn panel_columns<const ENERGY: bool>(
        &self,
        wide: bool,
        x: DMatrixView<'_, f64>,
        mut grad: DMatrixViewMut<'_, f64>,
        energy: &mut [f64],
        work: &mut BatchWorkspace,
    ) {
        let d = self.design.ncols();
        let c = x.ncols();
        let cp = c.next_multiple_of(8);
        let buf = work.buffer(2 * cp * d + panel::ROWS * cp + 2 * cp);
        let (xt, rest) = buf.split_at_mut(cp * d);
        let (gt, rest) = rest.split_at_mut(cp * d);
        let (e, lik) = rest.split_at_mut(panel::ROWS * cp);
        for (k, row) in xt.chunks_exact_mut(cp).enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = if j < c { x[(k, j)] } else { 0.0 };
            }
        }
        gt.fill(0.0);
        lik.fill(0.0);
        panel::batch::<ENERGY>(
            wide,
            self.design_t.as_slice(),
            &self.labels,
            d,
            xt,
            cp,
            gt,
            e,
            lik,
        );
        let prec = self.prior_precision;
        for (j, (mut col, xc)) in grad.column_iter_mut().zip(x.column_iter()).enumerate() {
            for (k, (g, &w)) in col.iter_mut().zip(xc.iter()).enumerate() {
                *g = gt[k * cp + j] + w * prec;
            }
        }
        if ENERGY {
            for ((u, l), xc) in energy.iter_mut().zip(lik.iter()).zip(x.column_iter()) {
                *u = l + 0.5 * prec * xc.norm_squared();
            }
        }
    }

    /// The matrix-product batch (any `d`): `η = AX` (n × C) in the workspace, the
    /// transcendental pass over it, and `∇ = AᵀR + X/σ²`.
    fn gemm_energy_grad(
        &self,
        x: DMatrixView<'_, f64>,
        mut grad: DMatrixViewMut<'_, f64>,
        energy: &mut [f64],
        work: &mut BatchWorkspace,
    ) {
        let mut lik = [0.0f64; BLOCK];
        let mut eta = self.batch_eta(&x, &grad, Some(energy), work);
        for ((mut col, e), xc) in eta
            .column_iter_mut()
            .zip(energy.iter_mut())
            .zip(x.column_iter())
        {
            let mut lik_sum = 0.0;
            for (block, y) in col
                .as_mut_slice()
                .chunks_mut(BLOCK)
                .zip(self.labels.chunks(BLOCK))
            {
                lik_sum += transcendental_pass(block, y, &mut lik[..block.len()]);
            }
            *e = lik_sum + 0.5 * self.prior_precision * xc.norm_squared();
        }
        grad.copy_from(&x);
        grad *= self.prior_precision;
        grad.gemm(1.0, &self.design_t, &eta, 1.0);
    }

    /// The matrix-product gradient alone: `η = AX`, `R = logistic(η) − y`, `∇ = AᵀR + X/σ²`.
    fn gemm_grad(
        &self,
        x: DMatrixView<'_, f64>,
        mut grad: DMatrixViewMut<'_, f64>,
        work: &mut BatchWorkspace,
    ) {
        let mut eta = self.batch_eta(&x, &grad, None, work);
        crate::simd::dispatch(
            #[inline(always)]
            || {
                for mut col in eta.column_iter_mut() {
                    for (e, &y) in col.as_mut_slice().iter_mut().zip(&self.labels) {
                        *e = sigmoid(*e) - y;
                    }
                }
            },
        );
        grad.copy_from(&x);
        grad *= self.prior_precision;
        grad.gemm(1.0, &self.design_t, &eta, 1.0);
    }
}

impl BatchPotential for LogisticRegression<Dyn> {
    /// For `d ≤ 16` a fused kernel: tiles of 8 chains with `Θ` and the gradient accumulators
    /// in registers, one pass over the observations (`z = Θᵀa_i`, one shared `exp(−|z|)` for
    /// softplus and the logistic function, `∇ += a_i σ`, the label terms and the softplus
    /// logarithms once per 64 observations), all loops along the chains.
    /// Above, with at least 8 chains, a blocked kernel (per block of 64 observations: `η = A_BΘ`
    /// in register tiles along the chains, the transcendental pass, `∇ += A_BᵀR_B`; nothing
    /// packed per call); with fewer chains two matrix products: `η = AX` (n × C) in the
    /// workspace, the transcendental pass over it, and `∇ = AᵀR + X/σ²`. All agree with
    /// [`Potential::energy_grad`] to rounding.
    fn energy_grad_columns(
        &self,
        x: DMatrixView<'_, f64>,
        mut grad: DMatrixViewMut<'_, f64>,
        energy: &mut [f64],
        work: &mut BatchWorkspace,
    ) {
        if self.design.ncols() <= FUSED_MAX_D {
            crate::potential::check_batch_shapes(self.design.ncols(), &x, &grad, Some(energy));
            self.fused_dispatch::<true>(&x, &mut grad, energy);
        } else if x.ncols() >= PANEL_MIN_CHAINS {
            crate::potential::check_batch_shapes(self.design.ncols(), &x, &grad, Some(energy));
            self.panel_columns::<true>(fastmath::wide_regs(), x, grad, energy, work);
        } else {
            self.gemm_energy_grad(x, grad, energy, work);
        }
    }

    /// The gradient alone (no softplus: one `exp` and one division per entry), by the fused
    /// kernel for `d ≤ 16`, else the matrix products. Equals the gradient of
    /// [`energy_grad_columns`](BatchPotential::energy_grad_columns) bit for bit.
    fn grad_columns(
        &self,
        x: DMatrixView<'_, f64>,
        mut grad: DMatrixViewMut<'_, f64>,
        work: &mut BatchWorkspace,
    ) {
        if self.design.ncols() <= FUSED_MAX_D {
            crate::potential::check_batch_shapes(self.design.ncols(), &x, &grad, None);
            self.fused_dispatch::<false>(&x, &mut grad, &mut []);
        } else if x.ncols() >= PANEL_MIN_CHAINS {
            crate::potential::check_batch_shapes(self.design.ncols(), &x, &grad, None);
            self.panel_columns::<false>(fastmath::wide_regs(), x, grad, &mut [], work);
        } else {
            self.gemm_grad(x, grad, work);
        }
    }
}

#[cfg(test)]
mod tests {
    /// Serialising keeps only the constructor's arguments; deserialising rebuilds the
    /// posterior bit for bit and rejects what the constructor rejects.
    #[cfg(feature = "serde")]
    #[test]
    fn serde_round_trip_revalidates() {
        use crate::potential::Potential;
        use nalgebra::{DMatrix, DVector, Dyn};
        let a = DMatrix::from_fn(70, 3, |i, j| ((i * 7 + j * 3) % 11) as f64 / 5.0 - 1.0);
        let y: Vec<f64> = (0..70).map(|i| (i % 3 == 0) as u8 as f64).collect();
        let post = super::LogisticRegression::new(Dyn(3), &a, &y, 0.3).unwrap();
        let json = serde_json::to_string(&post).unwrap();
        assert!(!json.contains("label_sums") && !json.contains("smoothness"));
        let back: super::LogisticRegression<Dyn> = serde_json::from_str(&json).unwrap();
        let w = DVector::from_vec(vec![0.3, -1.2, 0.7]);
        let (mut g1, mut g2) = (w.clone(), w.clone());
        assert_eq!(
            post.energy_grad(&w, &mut g1).to_bits(),
            back.energy_grad(&w, &mut g2).to_bits()
        );
        assert_eq!(g1, g2);
        assert_eq!(post.smoothness(), back.smoothness());
        let bad = json.replacen("\"prior_variance\":0.3", "\"prior_variance\":-0.3", 1);
        assert_ne!(bad, json);
        let err = serde_json::from_str::<super::LogisticRegression<Dyn>>(&bad).unwrap_err();
        assert!(err.to_string().contains("prior_variance"), "{err}");
    }

    use super::*;
    use nalgebra::DVector;
    use rand::rngs::ChaCha8Rng;
    use rand::{RngExt, SeedableRng};
    use rand_distr::StandardNormal;

    /// The fused kernel's softplus logarithms: `ln Π(1 + e_i)` as the kernel computes it
    /// (rounded factors, products in order, one `fastmath::ln`) against `Σ ln_1p(e_i)` (std,
    /// summed compensated, so the reference is within `u·Σ` of the exact value), for blocks
    /// of 1 to 64 entries with `η` spread over `[−40, 40]`, near 0 (`e ≈ 1`: every factor ≈ 2,
    /// the largest product) and beyond ±700 (`e` tiny, factors rounding to 1). Tolerance from
    /// the bound in [`fused_tile`]'s docs: `(2m − 1)u` for the product, 4 ulp of
    /// `max(ln P, 1)` for the logarithm, plus `2u·S` for the reference (`S` its value).
    #[test]
    fn ln_of_product_matches_sum_of_ln_1p() {
        let u = f64::EPSILON / 2.0;
        let mut r = ChaCha8Rng::seed_from_u64(3);
        let mut worst = 0.0_f64;
        for case in 0..3000 {
            let m = 1 + case % FUSED_CHUNK;
            let etas: Vec<f64> = (0..m)
                .map(|_| match case % 4 {
                    0 => 80.0 * r.random::<f64>() - 40.0,
                    1 => 1e-6 * r.sample::<f64, _>(StandardNormal),
                    2 => {
                        700.0
                            + 50.0 * r.random::<f64>() * if r.random::<bool>() { 1.0 } else { -1.0 }
                    }
                    _ => 3.0 * r.sample::<f64, _>(StandardNormal),
                })
                .collect();
            let mut prod = 1.0;
            let (mut sum, mut comp) = (0.0_f64, 0.0_f64);
            for &eta in &etas {
                let e = fastmath::exp_nonpos(-eta.abs());
                prod *= sigmoid_parts(eta, e).0;
                // Neumaier's compensated sum of the std logarithms of the same e.
                let v = e.ln_1p();
                let t = sum + v;
                comp += if sum.abs() >= v.abs() {
                    (sum - t) + v
                } else {
                    (v - t) + sum
                };
                sum = t;
            }
            let reference = sum + comp;
            let got = fastmath::ln(prod);
            let tol = (2.0 * m as f64 - 1.0) * u
                + 4.0 * f64::EPSILON * got.max(1.0)
                + 2.0 * u * reference;
            let err = (got - reference).abs();
            assert!(
                err <= tol,
                "m = {m}, case {case}: {got} vs {reference} ({err:e} > {tol:e})"
            );
            worst = worst.max(err / tol);
        }
        // The bound is a worst case; typical errors are a fraction of it.
        assert!(worst < 0.5, "worst error / bound = {worst}");
    }

    /// The fused small-`d` kernel against the matrix-product path and the single-point
    /// `Potential`: energies and gradients to 1e-12 relative (all three sum the same n terms in
    /// different orders, with transcendental functions a few ulp apart; the fused kernel takes
    /// its softplus logarithms once per 64-row chunk, of the product of the `1 + e` factors,
    /// and its label terms per chunk, whose rounding bounds in `fused_tile`'s docs are ~1e-14
    /// absolute per chunk: measured differences up to 6e-16 relative for the energies and
    /// 1.6e-15 for the gradients, so the tolerance is unchanged). Dimensions 1 to 16 (every instantiation), chain counts 1, 3, 4, 5, 8,
    /// 13, 50 and 64 (full and narrow tiles, counts not a multiple of 8), n across the 8-row
    /// group and 64-row chunk boundaries, feature scales up to 6 (|η| up to ~100: both
    /// branches of softplus and the logistic function), with and without energies, on column
    /// views that skip the first column.
    #[test]
    fn fused_equals_gemm_and_single_point() {
        let mut r = ChaCha8Rng::seed_from_u64(11);
        let mut cases = 0;
        for d in 1..=FUSED_MAX_D {
            for (ci, &c) in [1usize, 3, 4, 5, 8, 13, 50, 64].iter().enumerate() {
                if (d + ci) % 3 != 0 && c != 1 && c != 13 {
                    continue; // a spread of (d, C) pairs keeps the test fast
                }
                cases += 1;
                let n = [1usize, 7, 64, 71, 200][(d + ci) % 5];
                let scale = [0.3, 1.0, 6.0][(d * 7 + ci) % 3];
                let a = DMatrix::from_fn(n, d, |_, _| scale * r.sample::<f64, _>(StandardNormal));
                let y: Vec<f64> = (0..n).map(|_| r.random::<f64>()).collect();
                let post = LogisticRegression::new(Dyn(d), &a, &y, 2.0).unwrap();
                let x = DMatrix::from_fn(d, c + 1, |_, _| r.sample::<f64, _>(StandardNormal));
                let xv = x.columns(1, c);
                let mut work = BatchWorkspace::new();
                let (mut gf, mut gg) = (DMatrix::zeros(d, c), DMatrix::zeros(d, c));
                let (mut ef, mut eg) = (vec![0.0; c], vec![0.0; c]);
                post.energy_grad_columns(xv, gf.as_view_mut(), &mut ef, &mut work);
                post.gemm_energy_grad(xv, gg.as_view_mut(), &mut eg, &mut work);
                let mut only = DMatrix::from_element(d, c, f64::NAN);
                post.grad_columns(xv, only.as_view_mut(), &mut work);
                // The gradient-only kernel runs the same arithmetic on every entry.
                assert_eq!(only, gf, "d = {d}, C = {c}: gradient-only differs");
                let mut gemm_only = DMatrix::zeros(d, c);
                post.gemm_grad(xv, gemm_only.as_view_mut(), &mut work);
                assert_eq!(gemm_only, gg);
                let mut g1 = DVector::zeros(d);
                for j in 0..c {
                    let u1 = post.energy_grad(&xv.column(j).into_owned(), &mut g1);
                    let gscale = 1.0 + g1.amax();
                    let (df, dg) = ((&g1 - gf.column(j)).amax(), (&g1 - gg.column(j)).amax());
                    assert!(
                        df <= 1e-12 * gscale,
                        "d = {d}, C = {c}, chain {j}: fused {df:e}"
                    );
                    assert!(
                        dg <= 1e-12 * gscale,
                        "d = {d}, C = {c}, chain {j}: gemm {dg:e}"
                    );
                    assert!((gf.column(j) - gg.column(j)).amax() <= 1e-12 * gscale);
                    let tol = 1e-12 * (1.0 + u1.abs());
                    assert!(
                        (ef[j] - u1).abs() <= tol,
                        "d = {d}, C = {c}: {} vs {u1}",
                        ef[j]
                    );
                    assert!((ef[j] - eg[j]).abs() <= tol);
                }
            }
        }
        assert!(cases >= 40, "{cases} cases");
    }

    /// The two loop orders of the fused kernel's `z += Θᵀa` and `g += Σ a_j z_j` give the
    /// same bits (the build picks one by its tuning), from non-zero starting values, for full
    /// and single-observation groups, 8 and 4 chains.
    #[test]
    fn fused_loop_orders_agree_bit_for_bit() {
        fn check_g<const D: usize, const L: usize, const R: usize>(r: &mut ChaCha8Rng) {
            let rows: Vec<f64> = (0..R * D).map(|_| r.sample(StandardNormal)).collect();
            let z: [[f64; L]; R] =
                std::array::from_fn(|_| std::array::from_fn(|_| r.sample(StandardNormal)));
            let g0: [[f64; L]; D] =
                std::array::from_fn(|_| std::array::from_fn(|_| r.sample(StandardNormal)));
            let (mut a, mut b) = (g0, g0);
            g_rows::<D, L, R, true>(&rows, &z, &mut a);
            g_rows::<D, L, R, false>(&rows, &z, &mut b);
            let bits = |g: &[[f64; L]; D]| {
                g.as_flattened()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>()
            };
            assert_eq!(bits(&a), bits(&b), "g: D = {D}, L = {L}, R = {R}");
            for k in 0..D {
                for t in 0..L {
                    let s: f64 = g0[k][t] + (0..R).map(|j| rows[j * D + k] * z[j][t]).sum::<f64>();
                    let scale: f64 = g0[k][t].abs()
                        + (0..R)
                            .map(|j| (rows[j * D + k] * z[j][t]).abs())
                            .sum::<f64>();
                    assert!((a[k][t] - s).abs() <= 1e-14 * scale, "g: D = {D}");
                }
            }
        }
        fn check<const D: usize, const L: usize, const R: usize>(r: &mut ChaCha8Rng) {
            let rows: Vec<f64> = (0..R * D).map(|_| r.sample(StandardNormal)).collect();
            let theta: [[f64; L]; D] =
                std::array::from_fn(|_| std::array::from_fn(|_| r.sample(StandardNormal)));
            let z0: [[f64; L]; R] =
                std::array::from_fn(|_| std::array::from_fn(|_| r.sample(StandardNormal)));
            let (mut a, mut b) = (z0, z0);
            z_rows::<D, L, R, true>(&rows, &theta, &mut a);
            z_rows::<D, L, R, false>(&rows, &theta, &mut b);
            let bits = |z: &[[f64; L]; R]| {
                z.as_flattened()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>()
            };
            assert_eq!(bits(&a), bits(&b), "D = {D}, L = {L}, R = {R}");
            // Against a plain sum (different rounding: 1e-14 relative to the terms).
            for j in 0..R {
                for t in 0..L {
                    let terms = (0..D).map(|k| rows[j * D + k] * theta[k][t]);
                    let s: f64 = z0[j][t] + terms.clone().sum::<f64>();
                    let scale: f64 = z0[j][t].abs() + terms.map(f64::abs).sum::<f64>();
                    assert!(
                        (a[j][t] - s).abs() <= 1e-14 * scale,
                        "D = {D}: {} vs {s}",
                        a[j][t]
                    );
                }
            }
        }
        let mut r = ChaCha8Rng::seed_from_u64(13);
        check_g::<10, 8, 8>(&mut r);
        check_g::<16, 8, 1>(&mut r);
        check_g::<13, 4, 8>(&mut r);
        check::<1, 8, 8>(&mut r);
        check::<10, 8, 8>(&mut r);
        check::<16, 8, 1>(&mut r);
        check::<13, 4, 8>(&mut r);
        check::<9, 4, 1>(&mut r);
    }

    /// The blocked kernel for `d > 16` against the matrix-product path and the single-point
    /// gradient and energy, to `10⁻¹²` relative (the three sum in different orders), on column
    /// views that skip the first column. Chain counts 8 to 100 (3-vector panels, leftover
    /// single vectors, padding lanes), `n` across the 8- and 6-observation tiles and the
    /// 64-observation blocks, feature scales up to 6. Both register-tile shapes give the same
    /// bits, and the gradient-only kernel the energy kernel's gradient.
    #[test]
    fn panel_equals_gemm_and_single_point() {
        let mut r = ChaCha8Rng::seed_from_u64(12);
        let mut cases = 0;
        for (di, &d) in [17usize, 20, 33, 100].iter().enumerate() {
            for (ci, &c) in [8usize, 9, 16, 23, 24, 25, 40, 100].iter().enumerate() {
                if (di + ci) % 2 != 0 && c != 25 {
                    continue;
                }
                cases += 1;
                let n = [1usize, 7, 13, 64, 71, 200][(di + 3 * ci) % 6];
                let scale = [0.3, 1.0, 6.0][(d + ci) % 3];
                let a = DMatrix::from_fn(n, d, |_, _| scale * r.sample::<f64, _>(StandardNormal));
                let y: Vec<f64> = (0..n).map(|_| r.random::<f64>()).collect();
                let post = LogisticRegression::new(Dyn(d), &a, &y, 2.0).unwrap();
                let x = DMatrix::from_fn(d, c + 1, |_, _| 0.5 * r.sample::<f64, _>(StandardNormal));
                let xv = x.columns(1, c);
                let mut work = BatchWorkspace::new();
                let mut runs = Vec::new();
                for wide in [true, false] {
                    let mut g = DMatrix::from_element(d, c, f64::NAN);
                    let mut e = vec![f64::NAN; c];
                    post.panel_columns::<true>(wide, xv, g.as_view_mut(), &mut e, &mut work);
                    let mut only = DMatrix::from_element(d, c, f64::NAN);
                    post.panel_columns::<false>(wide, xv, only.as_view_mut(), &mut [], &mut work);
                    assert_eq!(only, g, "d = {d}, C = {c}: gradient-only differs");
                    runs.push((g, e));
                }
                let ((gp, ep), (gn, en)) = (&runs[0], &runs[1]);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(gp.as_slice()), bits(gn.as_slice()), "d = {d}, C = {c}");
                assert_eq!(bits(ep), bits(en), "d = {d}, C = {c}");
                // The public entry points take this kernel.
                let mut gpub = DMatrix::zeros(d, c);
                let mut epub = vec![0.0; c];
                post.energy_grad_columns(xv, gpub.as_view_mut(), &mut epub, &mut work);
                assert_eq!(bits(gpub.as_slice()), bits(gp.as_slice()));
                assert_eq!(bits(&epub), bits(ep));
                let (mut gg, mut eg) = (DMatrix::zeros(d, c), vec![0.0; c]);
                post.gemm_energy_grad(xv, gg.as_view_mut(), &mut eg, &mut work);
                let mut g1 = DVector::zeros(d);
                for j in 0..c {
                    let u1 = post.energy_grad(&xv.column(j).into_owned(), &mut g1);
                    let gscale = 1.0 + g1.amax();
                    let dp = (&g1 - gp.column(j)).amax();
                    assert!(dp <= 1e-12 * gscale, "d = {d}, C = {c}, chain {j}: {dp:e}");
                    assert!((gp.column(j) - gg.column(j)).amax() <= 1e-12 * gscale);
                    let tol = 1e-12 * (1.0 + u1.abs());
                    assert!(
                        (ep[j] - u1).abs() <= tol,
                        "d = {d}, C = {c}: {} vs {u1}",
                        ep[j]
                    );
                    assert!((ep[j] - eg[j]).abs() <= tol);
                }
            }
        }
        assert!(cases >= 16, "{cases} cases");
    }
}
