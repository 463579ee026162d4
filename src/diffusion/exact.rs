//! Exact scores of the noised data law for Gaussian, mixture, finite and two-point data, and a
//! wrapper that adds a known error.

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, Dim, OMatrix, OVector};
use rand::{Rng, RngExt};

use crate::diffusion::{ForwardOu, ScoreModel};
use crate::dim::{Alloc, check_len, fill_standard_normal};
use crate::error::{Error, Result, finite_input, positive};
use crate::fastmath::{exp_fast, fmadd};
use crate::gaussian::Gaussian;
use crate::linalg::sym_eigen;
use crate::potential::GaussianMixture;

/// `(e^{−t}, σ_t²)`.
fn ab(t: f64) -> (f64, f64) {
    (ForwardOu::mean_factor(t), ForwardOu::variance(t))
}

/// A Gaussian in the eigenbasis of its covariance: what the scores of its noised versions need.
#[derive(Clone, Debug)]
struct EigenGaussian<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    lambda: OVector<f64, D>,
    q: OMatrix<f64, D, D>,
    qt_mean: OVector<f64, D>,
}

impl<D: Dim> EigenGaussian<D>
where
    DefaultAllocator: Alloc<D>,
{
    fn new(g: &Gaussian<D>) -> Self {
        let (lambda, q) = sym_eigen(g.covariance());
        let qt_mean = q.tr_mul(g.mean());
        Self { lambda, q, qt_mean }
    }

    /// `−½ log det C_t − ½ (x − e^{−t}μ)ᵀC_t⁻¹(x − e^{−t}μ)` with `C_t = e^{−2t}Σ + σ_t²I`.
    fn log_density(&self, a: f64, s2: f64, x: &OVector<f64, D>) -> f64 {
        let mut acc = 0.0;
        for (i, (l, qm)) in self.lambda.iter().zip(self.qt_mean.iter()).enumerate() {
            let c = a * a * l + s2;
            let p = self.q.column(i).dot(x) - a * qm;
            acc += c.ln() + p * p / c;
        }
        -0.5 * acc
    }

    /// `out += w · (−C_t⁻¹(x − e^{−t}μ))`.
    fn add_score(&self, a: f64, s2: f64, w: f64, x: &OVector<f64, D>, out: &mut OVector<f64, D>) {
        for (i, (l, qm)) in self.lambda.iter().zip(self.qt_mean.iter()).enumerate() {
            let c = a * a * l + s2;
            let p = self.q.column(i).dot(x) - a * qm;
            out.axpy(-w * p / c, &self.q.column(i), 1.0);
        }
    }
}

/// The exact score of Gaussian data `N(μ, Σ)`: `q_t = N(e^{−t}μ, C_t)`,
/// `C_t = e^{−2t}Σ + σ_t²I`, `∇log q_t(x) = −C_t⁻¹(x − e^{−t}μ)`.
///
/// Evaluated in the eigenbasis of `Σ` (computed once): O(d²) per point, no allocation.
///
/// # Example
///
/// ```
/// use klflow::diffusion::{GaussianScore, ScoreModel};
/// use klflow::potential::Gaussian;
/// use nalgebra::Vector1;
///
/// let s = GaussianScore::new(&Gaussian::isotropic(Vector1::new(1.5), 0.25)?);
/// let mut out = Vector1::zeros();
/// s.score(0.0, &Vector1::new(2.0), &mut out);
/// assert!((out[0] - (-(2.0 - 1.5) / 0.25)).abs() < 1e-12);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct GaussianScore<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    data: Gaussian<D>,
    eig: EigenGaussian<D>,
}

impl<D: Dim> GaussianScore<D>
where
    DefaultAllocator: Alloc<D>,
{
    /// The score of the noised `data`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{ForwardOu, GaussianScore, ScoreModel};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector1;
    ///
    /// // ∇log q_t(x) = −(x − e^{−t}μ)/C_t, C_t = e^{−2t}σ² + σ_t².
    /// let s = GaussianScore::new(&Gaussian::isotropic(Vector1::new(1.5), 0.25)?);
    /// let (t, x) = (1.0, 0.4);
    /// let a = ForwardOu::mean_factor(t);
    /// let c = a * a * 0.25 + ForwardOu::variance(t);
    /// let mut out = Vector1::zeros();
    /// s.score(t, &Vector1::new(x), &mut out);
    /// assert!((out[0] + (x - a * 1.5) / c).abs() < 1e-12);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(data: &Gaussian<D>) -> Self {
        Self {
            data: data.clone(),
            eig: EigenGaussian::new(data),
        }
    }

    /// The data law.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::GaussianScore;
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Vector1;
    ///
    /// let data = Gaussian::isotropic(Vector1::new(1.5), 0.25)?;
    /// assert_eq!(GaussianScore::new(&data).data().mean(), data.mean());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn data(&self) -> &Gaussian<D> {
        &self.data
    }
}

impl<D: Dim> ScoreModel for GaussianScore<D>
where
    DefaultAllocator: Alloc<D>,
{
    type Dim = D;
    fn dim(&self) -> D {
        self.data.mean().shape_generic().0
    }
    fn score(&self, t: f64, x: &OVector<f64, D>, out: &mut OVector<f64, D>)
    where
        DefaultAllocator: Allocator<D>,
    {
        let (a, s2) = ab(t);
        out.fill(0.0);
        self.eig.add_score(a, s2, 1.0, x, out);
    }
}

/// Mixtures of isotropic Gaussians with one shared variance `v ≥ 0` (finite data: `v = 0`).
///
/// `q_t = Σ_j w_j N(e^{−t}μ_j, c I)`, `c = e^{−2t}v + σ_t²`, so with
/// `l_j = log w_j + (e^{−t}⟨x, μ_j⟩ − e^{−2t}‖μ_j‖²/2)/c` (the common `−‖x‖²/2c` dropped) the
/// score is `(e^{−t} Σ_j softmax(l)_j μ_j − x)/c`.
///
/// Up to [`STACK`] components two fused kernels run, both vectorised, both with the softmax
/// weights by [`exp_fast`] (relative error below `10⁻¹³`): for `d ≤ SMALL_D`
/// ([`small_point`](IsoCore::small_point)) scalar code for one point with the number of
/// components and the dimension compile-time constants, in a loop over the points that LLVM
/// vectorises (8 points per vector); for larger `d` ([`wide_weights`](IsoCore::wide_weights)
/// and [`wide_chunk`](IsoCore::wide_chunk)) one point at a time, its dot products with up to
/// [`GROUP`] means as one vector (the components in the lanes), the weighted mean over tiles
/// (coordinates in the lanes). Beyond `STACK` components a streaming log-sum-exp.
///
/// Both kernels can combine the score with the point while it is in registers
/// ([`ScoreModel::score_step_batch`]), bit for bit as storing it and combining afterwards.
#[derive(Clone, Debug)]
struct IsoCore<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    means: Vec<OVector<f64, D>>,
    /// Up to `STACK` components, the layout of the kernel in use. Small `d`: component-major
    /// (`μ_j` at `j d..(j + 1) d`). Otherwise tiles: for each group of [`GROUP`] components
    /// (zero-padded) and each [`W`] coordinates (zero-padded), the `GROUP × W` block of those
    /// coordinates of those means, component after component.
    flat: Vec<f64>,
    /// Large `d`, up to `STACK` components: for each group of `GROUP` components and each
    /// coordinate `i`, the `GROUP` values `μ_{j,i}` (zero-padded).
    by_coord: Vec<f64>,
    log_weights: Vec<f64>,
    half_norms: Vec<f64>,
    variance: f64,
}

/// Up to this many components the logits live in a stack buffer (two passes, no rescaling).
const STACK: usize = 16;
/// Width of the lane-wise helpers (`GROUP` components, `W` coordinates).
const LANES: usize = 8;
/// Largest dimension of the small-dimension kernel.
const SMALL_D: usize = 4;
/// Components whose dot products the wide kernel computes as one vector.
const GROUP: usize = 8;
/// Width of the wide kernel's tiles (coordinates per vector in the weighted mean).
const W: usize = 8;

/// One block's constants of the small-dimension kernel for `K` component slots and `DD`
/// coordinates (components `k..K` are padding: zero mean, logit offset `−10³⁰⁰`, so weight
/// `e^{−708}`, invisible next to the weight 1 of the largest logit).
struct SmallConsts<const K: usize, const DD: usize> {
    /// `α μ_j`, `α = e^{−t}/c`.
    am: [[f64; DD]; K],
    /// `μ_j`.
    mu: [[f64; DD]; K],
    /// `log w_j − α e^{−t}‖μ_j‖²/2`.
    beta: [f64; K],
    alpha: f64,
    inv_c: f64,
}

/// `s = f·acc − inv_c·x`, the score from the weighted mean (one rounding for `f·acc`).
#[inline(always)]
fn score_value(f: f64, acc: f64, inv_c: f64, x: f64) -> f64 {
    fmadd(f, acc, -(inv_c * x))
}

/// `p·x + q·s`, as in [`ScoreModel::score_step_batch`]'s default.
#[inline(always)]
fn step_value(p: f64, q: f64, x: f64, s: f64) -> f64 {
    p * x + q * s
}

/// `a + b` lane-wise.
#[inline(always)]
fn v_add(mut a: [f64; LANES], b: [f64; LANES]) -> [f64; LANES] {
    for (av, bv) in a.iter_mut().zip(&b) {
        *av += bv;
    }
    a
}

/// `a·b + c` lane-wise, `b` a scalar.
#[inline(always)]
fn v_fma(a: [f64; LANES], b: f64, mut c: [f64; LANES]) -> [f64; LANES] {
    for (cv, av) in c.iter_mut().zip(&a) {
        *cv = fmadd(*av, b, *cv);
    }
    c
}

impl<D: Dim> IsoCore<D>
where
    DefaultAllocator: Alloc<D>,
{
    fn new(means: Vec<OVector<f64, D>>, weights: &[f64], variance: f64) -> Self {
        let total: f64 = weights.iter().sum();
        let log_weights = weights.iter().map(|w| (w / total).ln()).collect();
        let half_norms = means.iter().map(|m| 0.5 * m.norm_squared()).collect();
        let (k, d) = (means.len(), means[0].len());
        let (flat, by_coord) = if k > STACK {
            (Vec::new(), Vec::new())
        } else if d <= SMALL_D {
            (
                means.iter().flat_map(|m| m.iter().copied()).collect(),
                Vec::new(),
            )
        } else {
            let chunks = d.div_ceil(W);
            let groups = k.div_ceil(GROUP);
            let mut flat = vec![0.0; groups * chunks * GROUP * W];
            let mut by_coord = vec![0.0; groups * d * GROUP];
            for (j, m) in means.iter().enumerate() {
                let (g, jj) = (j / GROUP, j % GROUP);
                for (i, v) in m.iter().enumerate() {
                    flat[((g * chunks + i / W) * GROUP + jj) * W + i % W] = *v;
                    by_coord[(g * d + i) * GROUP + jj] = *v;
                }
            }
            (flat, by_coord)
        };
        Self {
            means,
            flat,
            by_coord,
            log_weights,
            half_norms,
            variance,
        }
    }

    /// The logits are `l_j = α⟨x, μ_j⟩ + β_j` with `α = e^{−t}/c`,
    /// `β_j = log w_j − α e^{−t}‖μ_j‖²/2`.
    fn offsets(&self, a: f64, inv_c: f64, beta: &mut [f64]) {
        for ((b, lw), hn) in beta.iter_mut().zip(&self.log_weights).zip(&self.half_norms) {
            *b = lw - a * a * inv_c * hn;
        }
    }

    fn small_consts<const K: usize, const DD: usize>(&self, t: f64) -> SmallConsts<K, DD> {
        let (a, inv_c) = self.consts(t);
        let alpha = a * inv_c;
        let k = self.means.len();
        let mut beta = [-1e300; K];
        self.offsets(a, inv_c, &mut beta[..k]);
        let mut am = [[0.0; DD]; K];
        let mut mu = [[0.0; DD]; K];
        for (j, m) in self.means.iter().enumerate() {
            for (i, v) in m.iter().enumerate() {
                mu[j][i] = *v;
                am[j][i] = alpha * v;
            }
        }
        SmallConsts {
            am,
            mu,
            beta,
            alpha,
            inv_c,
        }
    }

    /// Small dimension, `K` component slots, `DD = d` coordinates: the score of one point,
    /// written as plain scalar code with every loop of constant length. Called in a loop over
    /// the points, it is that loop that LLVM vectorises: each operation below then runs on 8
    /// points at once, the per-component constants broadcast, the coordinates of consecutive
    /// points de-interleaved by shuffles.
    ///
    /// Every exponential is evaluated (no skipping of far components): a term with
    /// `l_j − max l < −37` is below half an ulp of the sum, which holds the 1 of the maximum.
    #[inline(always)]
    fn small_point<const K: usize, const DD: usize>(
        c: &SmallConsts<K, DD>,
        x: &[f64; DD],
    ) -> [f64; DD] {
        let mut l = [0.0f64; K];
        for (lj, (b, am)) in l.iter_mut().zip(c.beta.iter().zip(&c.am)) {
            let mut v = *b;
            for (xv, av) in x.iter().zip(am) {
                v = fmadd(*xv, *av, v);
            }
            *lj = v;
        }
        let m = l
            .iter()
            .fold(f64::NEG_INFINITY, |m, v| if *v > m { *v } else { m });
        let mut w = [0.0f64; K];
        for (wv, lv) in w.iter_mut().zip(&l) {
            *wv = exp_fast(lv - m);
        }
        // Two chains (even and odd components), then combined.
        let (mut s0, mut s1) = (0.0, 0.0);
        let (mut a0, mut a1) = ([0.0f64; DD], [0.0f64; DD]);
        for (j, (wv, mu)) in w.iter().zip(&c.mu).enumerate() {
            let (s, a) = if j % 2 == 0 {
                (&mut s0, &mut a0)
            } else {
                (&mut s1, &mut a1)
            };
            *s += wv;
            for (av, mv) in a.iter_mut().zip(mu) {
                *av = fmadd(*wv, *mv, *av);
            }
        }
        let f = c.alpha / (s0 + s1);
        let mut out = [0.0f64; DD];
        for (((o, x), u), v) in out.iter_mut().zip(x).zip(&a0).zip(&a1) {
            *o = score_value(f, u + v, c.inv_c, *x);
        }
        out
    }

    fn small_batch<const K: usize, const DD: usize>(
        &self,
        t: f64,
        xs: &[OVector<f64, D>],
        out: &mut [OVector<f64, D>],
    ) {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let c = self.small_consts::<K, DD>(t);
                for (x, o) in xs.iter().zip(out.iter_mut()) {
                    let x: &[f64; DD] = x.as_slice().try_into().expect("d coordinates");
                    let o: &mut [f64; DD] = o.as_mut_slice().try_into().expect("d coordinates");
                    *o = Self::small_point(&c, x);
                }
            },
        )
    }

    fn small_step<const K: usize, const DD: usize>(
        &self,
        t: f64,
        p: f64,
        q: f64,
        xs: &mut [OVector<f64, D>],
    ) {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let c = self.small_consts::<K, DD>(t);
                for x in xs.iter_mut() {
                    let x: &mut [f64; DD] = x.as_mut_slice().try_into().expect("d coordinates");
                    let s = Self::small_point(&c, x);
                    for (xv, sv) in x.iter_mut().zip(&s) {
                        *xv = step_value(p, q, *xv, *sv);
                    }
                }
            },
        )
    }

    /// The small-dimension kernel for `K` slots, dispatched on `d`.
    fn small_batch_k<const K: usize>(
        &self,
        t: f64,
        xs: &[OVector<f64, D>],
        out: &mut [OVector<f64, D>],
    ) {
        match self.means[0].len() {
            1 => self.small_batch::<K, 1>(t, xs, out),
            2 => self.small_batch::<K, 2>(t, xs, out),
            3 => self.small_batch::<K, 3>(t, xs, out),
            _ => self.small_batch::<K, SMALL_D>(t, xs, out),
        }
    }

    /// The small-dimension step for `K` slots, dispatched on `d`.
    fn small_step_k<const K: usize>(&self, t: f64, p: f64, q: f64, xs: &mut [OVector<f64, D>]) {
        match self.means[0].len() {
            1 => self.small_step::<K, 1>(t, p, q, xs),
            2 => self.small_step::<K, 2>(t, p, q, xs),
            3 => self.small_step::<K, 3>(t, p, q, xs),
            _ => self.small_step::<K, SMALL_D>(t, p, q, xs),
        }
    }

    /// Large dimension, at most `STACK` components: the softmax weights of one point (zero for
    /// padding components) and `f = α/Σ_j w_j`. The dot products with a group of means are one
    /// vector (a component per lane), accumulated coordinate by coordinate in four chains.
    #[inline(always)]
    fn wide_weights(&self, alpha: f64, beta: &[f64; STACK], x: &[f64]) -> ([f64; STACK], f64) {
        let k = self.means.len();
        let d = x.len();
        let mut l = [[f64::NEG_INFINITY; GROUP]; STACK / GROUP];
        for ((cols, lg), bg) in self
            .by_coord
            .chunks_exact(d * GROUP)
            .zip(l.iter_mut())
            .zip(beta.chunks_exact(GROUP))
        {
            // Separate locals, not an array of accumulators: they stay in registers.
            let z = [0.0f64; GROUP];
            let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
            let mut rows = cols.chunks_exact(4 * GROUP);
            let mut xq = x.chunks_exact(4);
            for (r4, x4) in (&mut rows).zip(&mut xq) {
                let r4: &[f64; 4 * GROUP] = r4.try_into().expect("four rows");
                let row = |h: usize| -> [f64; GROUP] {
                    r4[h * GROUP..(h + 1) * GROUP].try_into().expect("one row")
                };
                a0 = v_fma(row(0), x4[0], a0);
                a1 = v_fma(row(1), x4[1], a1);
                a2 = v_fma(row(2), x4[2], a2);
                a3 = v_fma(row(3), x4[3], a3);
            }
            for (row, xv) in rows.remainder().chunks_exact(GROUP).zip(xq.remainder()) {
                a0 = v_fma(row.try_into().expect("one row"), *xv, a0);
            }
            let dots = v_add(v_add(a0, a1), v_add(a2, a3));
            for ((lv, dv), bv) in lg.iter_mut().zip(&dots).zip(bg) {
                *lv = fmadd(alpha, *dv, *bv);
            }
        }
        let l = l.as_flattened();
        let m = l.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v));
        // Padding components get weight 0 (their tiles are zero too).
        let mut w = [0.0f64; STACK];
        for (j, (wj, lj)) in w.iter_mut().zip(l).enumerate() {
            let e = exp_fast(lj - m);
            *wj = if j < k { e } else { 0.0 };
        }
        (w, alpha / pairwise_sum(&w))
    }

    /// `Σ_j w_j μ_j` on the coordinates `c W..(c + 1) W` (zero beyond `d`).
    #[inline(always)]
    fn wide_chunk(&self, w: &[f64; STACK], chunks: usize, c: usize) -> [f64; W] {
        const TILE: usize = GROUP * W;
        let groups = self.flat.len() / (chunks * TILE);
        let (mut a0, mut a1) = ([0.0f64; W], [0.0f64; W]);
        for (g, wg) in w.chunks_exact(GROUP).take(groups).enumerate() {
            let o = (g * chunks + c) * TILE;
            let t: &[f64; TILE] = self.flat[o..o + TILE].try_into().expect("one tile");
            // Two chains (even and odd components) of fused multiply-adds.
            for jj in (0..GROUP).step_by(2) {
                for lane in 0..W {
                    a0[lane] = fmadd(wg[jj], t[jj * W + lane], a0[lane]);
                    a1[lane] = fmadd(wg[jj + 1], t[(jj + 1) * W + lane], a1[lane]);
                }
            }
        }
        v_add(a0, a1)
    }

    fn wide_batch(&self, t: f64, xs: &[OVector<f64, D>], out: &mut [OVector<f64, D>]) {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let (a, inv_c, beta) = self.wide_consts(t);
                let alpha = a * inv_c;
                for (x, o) in xs.iter().zip(out.iter_mut()) {
                    let (x, o) = (x.as_slice(), o.as_mut_slice());
                    let (w, f) = self.wide_weights(alpha, &beta, x);
                    let chunks = x.len().div_ceil(W);
                    let full = x.len() / W;
                    for (c, (xc, oc)) in x.chunks_exact(W).zip(o.chunks_exact_mut(W)).enumerate() {
                        let acc = self.wide_chunk(&w, chunks, c);
                        let (xc, oc): (&[f64; W], &mut [f64; W]) =
                            (xc.try_into().expect("W"), oc.try_into().expect("W"));
                        for lane in 0..W {
                            oc[lane] = score_value(f, acc[lane], inv_c, xc[lane]);
                        }
                    }
                    if full < chunks {
                        let acc = self.wide_chunk(&w, chunks, full);
                        for ((ov, xv), av) in o[full * W..].iter_mut().zip(&x[full * W..]).zip(&acc)
                        {
                            *ov = score_value(f, *av, inv_c, *xv);
                        }
                    }
                }
            },
        )
    }

    fn wide_step(&self, t: f64, p: f64, q: f64, xs: &mut [OVector<f64, D>]) {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let (a, inv_c, beta) = self.wide_consts(t);
                let alpha = a * inv_c;
                for x in xs.iter_mut() {
                    let x = x.as_mut_slice();
                    let (w, f) = self.wide_weights(alpha, &beta, x);
                    let chunks = x.len().div_ceil(W);
                    let full = x.len() / W;
                    for (c, xc) in x.chunks_exact_mut(W).enumerate() {
                        let acc = self.wide_chunk(&w, chunks, c);
                        let xc: &mut [f64; W] = xc.try_into().expect("W");
                        for lane in 0..W {
                            let xv = xc[lane];
                            xc[lane] = step_value(p, q, xv, score_value(f, acc[lane], inv_c, xv));
                        }
                    }
                    if full < chunks {
                        let acc = self.wide_chunk(&w, chunks, full);
                        for (xv, av) in x[full * W..].iter_mut().zip(&acc) {
                            *xv = step_value(p, q, *xv, score_value(f, *av, inv_c, *xv));
                        }
                    }
                }
            },
        )
    }

    fn wide_consts(&self, t: f64) -> (f64, f64, [f64; STACK]) {
        let (a, inv_c) = self.consts(t);
        let mut beta = [0.0f64; STACK];
        self.offsets(a, inv_c, &mut beta[..self.means.len()]);
        (a, inv_c, beta)
    }

    /// Any number of components (finite data sets): a streaming log-sum-exp that rescales the
    /// running sums when the maximum moves.
    fn score_streaming(&self, a: f64, inv_c: f64, x: &OVector<f64, D>, out: &mut OVector<f64, D>) {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let alpha = a * inv_c;
                out.fill(0.0);
                let (mut m, mut sum) = (f64::NEG_INFINITY, 0.0);
                for ((mu, lw), hn) in self
                    .means
                    .iter()
                    .zip(&self.log_weights)
                    .zip(&self.half_norms)
                {
                    let lj = lw + alpha * (x.dot(mu) - a * hn);
                    if lj > m {
                        let r = (m - lj).exp();
                        sum = sum * r + 1.0;
                        *out *= r;
                        out.axpy(1.0, mu, 1.0);
                        m = lj;
                    } else {
                        let w = (lj - m).exp();
                        sum += w;
                        out.axpy(w, mu, 1.0);
                    }
                }
                *out *= alpha / sum;
                out.axpy(-inv_c, x, 1.0);
            },
        )
    }

    fn consts(&self, t: f64) -> (f64, f64) {
        let (a, s2) = ab(t);
        (a, 1.0 / (a * a * self.variance + s2))
    }

    fn score(&self, t: f64, x: &OVector<f64, D>, out: &mut OVector<f64, D>) {
        self.score_batch(t, std::slice::from_ref(x), std::slice::from_mut(out));
    }

    fn score_batch(&self, t: f64, xs: &[OVector<f64, D>], out: &mut [OVector<f64, D>]) {
        let k = self.means.len();
        if k > STACK {
            let (a, inv_c) = self.consts(t);
            for (x, o) in xs.iter().zip(out.iter_mut()) {
                self.score_streaming(a, inv_c, x, o);
            }
        } else if self.means[0].len() > SMALL_D {
            self.wide_batch(t, xs, out);
        } else if k <= 2 {
            self.small_batch_k::<2>(t, xs, out);
        } else if k <= 4 {
            self.small_batch_k::<4>(t, xs, out);
        } else if k <= 8 {
            self.small_batch_k::<8>(t, xs, out);
        } else {
            self.small_batch_k::<STACK>(t, xs, out);
        }
    }

    /// `xs[i] ← p xs[i] + q s(t, xs[i])`, fused where a kernel applies (`scratch` otherwise).
    fn score_step_batch(
        &self,
        t: f64,
        p: f64,
        q: f64,
        xs: &mut [OVector<f64, D>],
        scratch: &mut [OVector<f64, D>],
    ) {
        let k = self.means.len();
        if k > STACK {
            self.score_batch(t, xs, scratch);
            for (x, s) in xs.iter_mut().zip(scratch.iter()) {
                for (xv, sv) in x.as_mut_slice().iter_mut().zip(s.as_slice()) {
                    *xv = step_value(p, q, *xv, *sv);
                }
            }
        } else if self.means[0].len() > SMALL_D {
            self.wide_step(t, p, q, xs);
        } else if k <= 2 {
            self.small_step_k::<2>(t, p, q, xs);
        } else if k <= 4 {
            self.small_step_k::<4>(t, p, q, xs);
        } else if k <= 8 {
            self.small_step_k::<8>(t, p, q, xs);
        } else {
            self.small_step_k::<STACK>(t, p, q, xs);
        }
    }
}

/// `Σ_j v_j` as a pairwise tree (depth 4, not a chain of 16 additions).
#[inline(always)]
fn pairwise_sum(v: &[f64; STACK]) -> f64 {
    let mut h: [f64; 8] = std::array::from_fn(|i| v[i] + v[i + 8]);
    for width in [4, 2, 1] {
        for i in 0..width {
            h[i] += h[i + width];
        }
    }
    h[0]
}

#[derive(Clone, Debug)]
enum MixtureInner<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    Iso(IsoCore<D>),
    Full(Vec<(f64, EigenGaussian<D>)>),
}

/// The exact score of Gaussian-mixture data `Σ_j w_j N(μ_j, Σ_j)`:
/// `q_t = Σ_j w_j N(e^{−t}μ_j, C_j(t))`, `C_j(t) = e^{−2t}Σ_j + σ_t²I`,
/// `∇log q_t(x) = −Σ_j r_j(x) C_j(t)⁻¹(x − e^{−t}μ_j)` with responsibilities `r_j` computed by
/// log-sum-exp (stable far from every component).
///
/// When every `Σ_j` is the same multiple of the identity (the usual test mixtures) a fused
/// O(K d) path is used; otherwise each component is evaluated in its eigenbasis (O(K d²)).
///
/// # Example
///
/// ```
/// use klflow::diffusion::{MixtureScore, ScoreModel};
/// use klflow::potential::{Gaussian, GaussianMixture};
/// use nalgebra::Vector1;
///
/// let comp = |m: f64| Gaussian::isotropic(Vector1::new(m), 0.25);
/// let data = GaussianMixture::new(&[0.3, 0.7], vec![comp(-2.0)?, comp(1.5)?])?;
/// let s = MixtureScore::new(&data);
/// let mut out = Vector1::zeros();
/// // Far from both modes, at large t the score is ≈ −x (q_t ≈ N(0, 1)).
/// s.score(30.0, &Vector1::new(5.0), &mut out);
/// assert!((out[0] + 5.0).abs() < 1e-9);
/// // Far in the tail at t ≈ 0 it stays finite and points back: −(x − 1.5)/0.25.
/// s.score(1e-12, &Vector1::new(1e3), &mut out);
/// assert!((out[0] + (1e3 - 1.5) / 0.25).abs() < 1e-6);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MixtureScore<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    data: GaussianMixture<D>,
    inner: MixtureInner<D>,
}

/// `Some(v)` if `m = v I` exactly.
fn isotropic_variance<D: Dim>(m: &OMatrix<f64, D, D>) -> Option<f64>
where
    DefaultAllocator: Alloc<D>,
{
    let v = m[(0, 0)];
    let n = m.nrows();
    let ok = (0..n).all(|j| (0..n).all(|i| m[(i, j)] == if i == j { v } else { 0.0 }));
    ok.then_some(v)
}

impl<D: Dim> MixtureScore<D>
where
    DefaultAllocator: Alloc<D>,
{
    /// The score of the noised mixture `data`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{GaussianScore, MixtureScore, ScoreModel};
    /// use klflow::potential::{Gaussian, GaussianMixture};
    /// use nalgebra::{Matrix2, Vector2};
    ///
    /// // A one-component mixture has the score of its component.
    /// let g = Gaussian::new(Vector2::new(1.0, -1.0), Matrix2::new(2.0, 0.5, 0.5, 1.0))?;
    /// let mix = MixtureScore::new(&GaussianMixture::new(&[1.0], vec![g.clone()])?);
    /// let (mut a, mut b) = (Vector2::zeros(), Vector2::zeros());
    /// mix.score(0.3, &Vector2::new(0.2, 0.4), &mut a);
    /// GaussianScore::new(&g).score(0.3, &Vector2::new(0.2, 0.4), &mut b);
    /// assert!((a - b).norm() < 1e-12);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(data: &GaussianMixture<D>) -> Self {
        let comps = data.components();
        let iso: Vec<Option<f64>> = comps
            .iter()
            .map(|c| isotropic_variance(c.covariance()))
            .collect();
        let inner = match iso[0] {
            Some(v) if iso.iter().all(|w| *w == Some(v)) => MixtureInner::Iso(IsoCore::new(
                comps.iter().map(|c| c.mean().clone()).collect(),
                data.weights(),
                v,
            )),
            _ => MixtureInner::Full(
                data.weights()
                    .iter()
                    .zip(comps)
                    .map(|(w, c)| (w.ln(), EigenGaussian::new(c)))
                    .collect(),
            ),
        };
        Self {
            data: data.clone(),
            inner,
        }
    }

    /// The data law.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::MixtureScore;
    /// use klflow::potential::{Gaussian, GaussianMixture};
    /// use nalgebra::Vector1;
    ///
    /// let comp = |m: f64| Gaussian::isotropic(Vector1::new(m), 0.25);
    /// let data = GaussianMixture::new(&[0.3, 0.7], vec![comp(-2.0)?, comp(1.5)?])?;
    /// assert_eq!(MixtureScore::new(&data).data().weights(), &[0.3, 0.7]);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn data(&self) -> &GaussianMixture<D> {
        &self.data
    }

    fn score_full(
        comps: &[(f64, EigenGaussian<D>)],
        t: f64,
        x: &OVector<f64, D>,
        out: &mut OVector<f64, D>,
    ) {
        let (a, s2) = ab(t);
        out.fill(0.0);
        let (mut m, mut sum) = (f64::NEG_INFINITY, 0.0);
        for (lw, g) in comps {
            let l = lw + g.log_density(a, s2, x);
            let w = if l > m {
                let r = (m - l).exp();
                sum *= r;
                *out *= r;
                m = l;
                1.0
            } else {
                (l - m).exp()
            };
            sum += w;
            g.add_score(a, s2, w, x, out);
        }
        *out /= sum;
    }
}

impl<D: Dim> ScoreModel for MixtureScore<D>
where
    DefaultAllocator: Alloc<D>,
{
    type Dim = D;
    fn dim(&self) -> D {
        self.data.components()[0].mean().shape_generic().0
    }
    fn score(&self, t: f64, x: &OVector<f64, D>, out: &mut OVector<f64, D>)
    where
        DefaultAllocator: Allocator<D>,
    {
        match &self.inner {
            MixtureInner::Iso(core) => core.score(t, x, out),
            MixtureInner::Full(comps) => Self::score_full(comps, t, x, out),
        }
    }
    fn score_batch(&self, t: f64, xs: &[OVector<f64, D>], out: &mut [OVector<f64, D>])
    where
        DefaultAllocator: Allocator<D>,
    {
        match &self.inner {
            MixtureInner::Iso(core) => core.score_batch(t, xs, out),
            MixtureInner::Full(comps) => {
                for (x, o) in xs.iter().zip(out.iter_mut()) {
                    Self::score_full(comps, t, x, o);
                }
            }
        }
    }
    fn score_step_batch(
        &self,
        t: f64,
        p: f64,
        q: f64,
        xs: &mut [OVector<f64, D>],
        scratch: &mut [OVector<f64, D>],
    ) where
        DefaultAllocator: Allocator<D>,
    {
        match &self.inner {
            MixtureInner::Iso(core) => core.score_step_batch(t, p, q, xs, scratch),
            MixtureInner::Full(_) => {
                self.score_batch(t, xs, scratch);
                for (x, s) in xs.iter_mut().zip(scratch.iter()) {
                    for (xv, sv) in x.as_mut_slice().iter_mut().zip(s.as_slice()) {
                        *xv = step_value(p, q, *xv, *sv);
                    }
                }
            }
        }
    }
}

/// The exact score of the noised empirical law of a finite data set `{x_i}`:
/// `q_t = (1/n) Σ_i N(e^{−t}x_i, σ_t² I)`, `∇log q_t(x) = (e^{−t} Σ_i r_i(x) x_i − x)/σ_t²`.
///
/// This is what a perfectly trained network would learn from the data set (it memorises the
/// data: samples at small `δ` land on the data points). O(n d) per point; never evaluate it at
/// `t = 0`.
///
/// # Example
///
/// ```
/// use klflow::diffusion::{FiniteDataScore, ScoreModel};
/// use nalgebra::Vector2;
///
/// let s = FiniteDataScore::new(vec![Vector2::new(1.0, 0.0), Vector2::new(-1.0, 0.0)])?;
/// let mut out = Vector2::zeros();
/// // Next to a data point at small t the score pulls onto it: ≈ −(x − x_i)/σ_t².
/// s.score(1e-3, &Vector2::new(1.01, 0.0), &mut out);
/// let s2 = 1.0 - (-2e-3f64).exp();
/// assert!((out[0] - (-(1.01 - (-1e-3f64).exp()) / s2)).abs() < 1e-6);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct FiniteDataScore<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    core: IsoCore<D>,
}

impl<D: Dim> FiniteDataScore<D>
where
    DefaultAllocator: Alloc<D>,
{
    /// The score of the noised empirical law of `data`.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if there are no points; [`Error::DimensionMismatch`] if the points have
    /// different lengths; [`Error::NonFiniteInput`] for NaN or infinite coordinates.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, diffusion::{FiniteDataScore, ScoreModel, TwoPointScore}};
    /// use nalgebra::{Vector1, Vector2};
    ///
    /// // Data {−a, a} is the two-point law ½δ_{−a} + ½δ_a.
    /// let a = Vector2::new(1.0, 0.5);
    /// let finite = FiniteDataScore::new(vec![-a, a])?;
    /// let two = TwoPointScore::new(a)?;
    /// let (mut u, mut v) = (Vector2::zeros(), Vector2::zeros());
    /// finite.score(0.2, &Vector2::new(0.3, -0.1), &mut u);
    /// two.score(0.2, &Vector2::new(0.3, -0.1), &mut v);
    /// assert!((u - v).norm() < 1e-10);
    /// assert!(matches!(FiniteDataScore::new(Vec::<Vector1<f64>>::new()), Err(Error::Empty { .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(data: Vec<OVector<f64, D>>) -> Result<Self> {
        let first = data.first().ok_or(Error::Empty { name: "data" })?;
        let dim = first.shape_generic().0;
        for x in &data {
            check_len("data", dim, x)?;
            finite_input("data", x.as_slice())?;
        }
        let n = data.len();
        Ok(Self {
            core: IsoCore::new(data, &vec![1.0; n], 0.0),
        })
    }

    /// The data points.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::FiniteDataScore;
    /// use nalgebra::Vector1;
    ///
    /// let s = FiniteDataScore::new(vec![Vector1::new(0.0), Vector1::new(3.0)])?;
    /// assert_eq!(s.data().len(), 2);
    /// assert_eq!(s.data()[1][0], 3.0);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn data(&self) -> &[OVector<f64, D>] {
        &self.core.means
    }
}

impl<D: Dim> ScoreModel for FiniteDataScore<D>
where
    DefaultAllocator: Alloc<D>,
{
    type Dim = D;
    fn dim(&self) -> D {
        self.core.means[0].shape_generic().0
    }
    fn score(&self, t: f64, x: &OVector<f64, D>, out: &mut OVector<f64, D>)
    where
        DefaultAllocator: Allocator<D>,
    {
        self.core.score(t, x, out);
    }
    fn score_batch(&self, t: f64, xs: &[OVector<f64, D>], out: &mut [OVector<f64, D>])
    where
        DefaultAllocator: Allocator<D>,
    {
        self.core.score_batch(t, xs, out);
    }
    fn score_step_batch(
        &self,
        t: f64,
        p: f64,
        q: f64,
        xs: &mut [OVector<f64, D>],
        scratch: &mut [OVector<f64, D>],
    ) where
        DefaultAllocator: Allocator<D>,
    {
        self.core.score_step_batch(t, p, q, xs, scratch);
    }
}

/// The exact score of two-point data `½δ_{−a} + ½δ_{a}`:
/// `∇log q_t(x) = (−x + e^{−t} a tanh(e^{−t}⟨a, x⟩/σ_t²))/σ_t²`.
///
/// The data have no density: the score blows up as `t → 0`, so samplers must stop early
/// (`δ > 0`) and their output is compared with `q_δ`.
///
/// # Example
///
/// ```
/// use klflow::diffusion::{ScoreModel, TwoPointScore};
/// use nalgebra::Vector1;
///
/// let s = TwoPointScore::new(Vector1::new(1.0))?;
/// let mut out = Vector1::zeros();
/// s.score(0.5, &Vector1::new(0.0), &mut out);
/// assert_eq!(out[0], 0.0); // symmetric
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TwoPointScore<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    a: OVector<f64, D>,
}

impl<D: Dim> TwoPointScore<D>
where
    DefaultAllocator: Alloc<D>,
{
    /// Data `½δ_{−a} + ½δ_{a}`.
    ///
    /// # Errors
    ///
    /// [`Error::NonFiniteInput`] naming `a` if it has a non-finite entry.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, diffusion::{ScoreModel, TwoPointScore}};
    /// use nalgebra::Vector1;
    ///
    /// // At large t, q_t ≈ N(0, 1): the score is ≈ −x.
    /// let s = TwoPointScore::new(Vector1::new(1.0))?;
    /// let mut out = Vector1::zeros();
    /// s.score(30.0, &Vector1::new(2.0), &mut out);
    /// assert!((out[0] + 2.0).abs() < 1e-9);
    /// assert!(matches!(TwoPointScore::new(Vector1::new(f64::NAN)), Err(Error::NonFiniteInput { name: "a" })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(a: OVector<f64, D>) -> Result<Self> {
        finite_input("a", a.as_slice())?;
        Ok(Self { a })
    }

    /// The point `a`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::TwoPointScore;
    /// use nalgebra::Vector2;
    ///
    /// let s = TwoPointScore::new(Vector2::new(1.0, 2.0))?;
    /// assert_eq!(s.point(), &Vector2::new(1.0, 2.0));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn point(&self) -> &OVector<f64, D> {
        &self.a
    }
}

impl<D: Dim> ScoreModel for TwoPointScore<D>
where
    DefaultAllocator: Alloc<D>,
{
    type Dim = D;
    fn dim(&self) -> D {
        self.a.shape_generic().0
    }
    fn score(&self, t: f64, x: &OVector<f64, D>, out: &mut OVector<f64, D>)
    where
        DefaultAllocator: Allocator<D>,
    {
        let (e, s2) = ab(t);
        let th = (e * self.a.dot(x) / s2).tanh();
        out.copy_from(x);
        *out *= -1.0 / s2;
        out.axpy(e * th / s2, &self.a, 1.0);
    }
}

#[derive(Clone, Debug)]
enum ErrorKind<D: Dim>
where
    DefaultAllocator: Alloc<D>,
{
    Bias(OVector<f64, D>),
    Field {
        scale: f64,
        amplitudes: Vec<OVector<f64, D>>,
        frequencies: Vec<OVector<f64, D>>,
        phases: Vec<f64>,
    },
}

/// A score model with a known error added: `s(t, x) = s_inner(t, x) + e(x)`.
///
/// * [`bias`](ScoreError::bias): a constant `e = b`. For `q = N(0, I)` the DDPM exponential
///   integrator then shifts the output mean by exactly `2b(1 − (2 − e^h)^N)` (saturating at
///   `2b`, not growing like `√T`).
/// * [`random_field`](ScoreError::random_field): a smooth random function
///   `e(x) = ε √(2/m) Σ_k a_k cos(⟨ω_k, x⟩ + φ_k)`, `a_k ~ N(0, I/d)`, `ω_k ~ N(0, I/ℓ²)`,
///   `φ_k ~ U[0, 2π)`, drawn once (root-mean-square size ≈ ε), the same at every `t`.
///
/// # Example
///
/// ```
/// use klflow::diffusion::{GaussianScore, ScoreError, ScoreModel};
/// use klflow::potential::Gaussian;
/// use nalgebra::{Const, Vector2};
///
/// let exact = GaussianScore::new(&Gaussian::standard(Const::<2>));
/// let biased = ScoreError::bias(&exact, Vector2::new(0.1, 0.0))?;
/// let (mut a, mut b) = (Vector2::zeros(), Vector2::zeros());
/// exact.score(1.0, &Vector2::new(1.0, 1.0), &mut a);
/// biased.score(1.0, &Vector2::new(1.0, 1.0), &mut b);
/// assert!((b - a - Vector2::new(0.1, 0.0)).norm() < 1e-15);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ScoreError<S: ScoreModel>
where
    DefaultAllocator: Alloc<S::Dim>,
{
    inner: S,
    kind: ErrorKind<S::Dim>,
}

impl<S: ScoreModel> ScoreError<S>
where
    DefaultAllocator: Alloc<S::Dim>,
{
    /// `s + b` with a constant bias `b`.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] / [`Error::NonFiniteInput`] naming `bias`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, diffusion::{GaussianScore, ScoreError}};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::{DVector, Dyn};
    ///
    /// let exact = GaussianScore::new(&Gaussian::standard(Dyn(2)));
    /// assert!(ScoreError::bias(&exact, DVector::from_vec(vec![0.1, 0.0])).is_ok());
    /// assert!(matches!(
    ///     ScoreError::bias(&exact, DVector::zeros(3)),
    ///     Err(Error::DimensionMismatch { name: "bias", .. })
    /// ));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn bias(inner: S, bias: OVector<f64, S::Dim>) -> Result<Self> {
        check_len("bias", inner.dim(), &bias)?;
        finite_input("bias", bias.as_slice())?;
        Ok(Self {
            inner,
            kind: ErrorKind::Bias(bias),
        })
    }

    /// `s + e` with the random field `e` of RMS size `magnitude`, length scale `length_scale` and
    /// `features` cosines, drawn from `rng`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless `magnitude ≥ 0` and `length_scale > 0` are finite and
    /// `features ≥ 1`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{GaussianScore, ScoreError, ScoreModel};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::{Const, Vector2};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let exact = GaussianScore::new(&Gaussian::standard(Const::<2>));
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let noisy = ScoreError::random_field(&exact, 0.1, 1.0, 500, &mut rng)?;
    /// let (mut a, mut b) = (Vector2::zeros(), Vector2::zeros());
    /// let mut err = |t: f64, x: &Vector2<f64>| {
    ///     noisy.score(t, x, &mut a);
    ///     exact.score(t, x, &mut b);
    ///     a - b
    /// };
    /// // The error field is the same at every t, and of RMS size ≈ 0.1 over a spread of points.
    /// let x = Vector2::new(0.3, -0.8);
    /// assert!((err(0.1, &x) - err(2.0, &x)).norm() < 1e-12);
    /// let ms = (0..400)
    ///     .map(|i| err(1.0, &Vector2::new((i % 20) as f64 * 0.5 - 5.0, (i / 20) as f64 * 0.5 - 5.0)).norm_squared())
    ///     .sum::<f64>() / 400.0;
    /// assert!(ms.sqrt() > 0.05 && ms.sqrt() < 0.2);
    /// assert!(ScoreError::random_field(&exact, 0.1, 0.0, 500, &mut rng).is_err());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn random_field<R: Rng + ?Sized>(
        inner: S,
        magnitude: f64,
        length_scale: f64,
        features: usize,
        rng: &mut R,
    ) -> Result<Self> {
        if !(magnitude.is_finite() && magnitude >= 0.0) {
            return Err(Error::InvalidParameter {
                name: "magnitude",
                value: magnitude,
                reason: "must be finite and >= 0",
            });
        }
        positive("length_scale", length_scale)?;
        positive("features", features as f64)?;
        let dim = inner.dim();
        let d = dim.value() as f64;
        let draw = |rng: &mut R, s: f64| {
            let mut v = OVector::<f64, S::Dim>::zeros_generic(dim, nalgebra::U1);
            fill_standard_normal(&mut v, rng);
            v * s
        };
        let mut amplitudes = Vec::with_capacity(features);
        let mut frequencies = Vec::with_capacity(features);
        let mut phases = Vec::with_capacity(features);
        for _ in 0..features {
            amplitudes.push(draw(rng, 1.0 / d.sqrt()));
            frequencies.push(draw(rng, 1.0 / length_scale));
            phases.push(std::f64::consts::TAU * rng.random::<f64>());
        }
        let scale = magnitude * (2.0 / features as f64).sqrt();
        Ok(Self {
            inner,
            kind: ErrorKind::Field {
                scale,
                amplitudes,
                frequencies,
                phases,
            },
        })
    }

    /// The constant bias, if this is a bias error.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{GaussianScore, ScoreError};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::{Const, Vector2};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let exact = GaussianScore::new(&Gaussian::standard(Const::<2>));
    /// let b = Vector2::new(0.1, 0.0);
    /// assert_eq!(ScoreError::bias(&exact, b)?.bias_vector(), Some(&b));
    /// let field = ScoreError::random_field(&exact, 0.1, 1.0, 10, &mut ChaCha8Rng::seed_from_u64(0))?;
    /// assert_eq!(field.bias_vector(), None);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn bias_vector(&self) -> Option<&OVector<f64, S::Dim>> {
        match &self.kind {
            ErrorKind::Bias(b) => Some(b),
            ErrorKind::Field { .. } => None,
        }
    }

    /// The wrapped model.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::diffusion::{GaussianScore, ScoreError};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::{Vector1};
    ///
    /// let exact = GaussianScore::new(&Gaussian::isotropic(Vector1::new(2.0), 1.0)?);
    /// let biased = ScoreError::bias(exact, Vector1::new(0.5))?;
    /// assert_eq!(biased.inner().data().mean()[0], 2.0);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn add_error(&self, x: &OVector<f64, S::Dim>, out: &mut OVector<f64, S::Dim>) {
        match &self.kind {
            ErrorKind::Bias(b) => *out += b,
            ErrorKind::Field {
                scale,
                amplitudes,
                frequencies,
                phases,
            } => {
                for ((a, w), p) in amplitudes.iter().zip(frequencies).zip(phases) {
                    out.axpy(scale * (w.dot(x) + p).cos(), a, 1.0);
                }
            }
        }
    }
}

impl<S: ScoreModel> ScoreModel for ScoreError<S>
where
    DefaultAllocator: Alloc<S::Dim>,
{
    type Dim = S::Dim;
    fn dim(&self) -> S::Dim {
        self.inner.dim()
    }
    fn score(&self, t: f64, x: &OVector<f64, S::Dim>, out: &mut OVector<f64, S::Dim>)
    where
        DefaultAllocator: Allocator<S::Dim>,
    {
        self.inner.score(t, x, out);
        self.add_error(x, out);
    }
    fn score_batch(&self, t: f64, xs: &[OVector<f64, S::Dim>], out: &mut [OVector<f64, S::Dim>])
    where
        DefaultAllocator: Allocator<S::Dim>,
    {
        self.inner.score_batch(t, xs, out);
        for (x, o) in xs.iter().zip(out.iter_mut()) {
            self.add_error(x, o);
        }
    }
}
