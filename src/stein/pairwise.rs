//! The tiled pair engine: every O(n²d) sum of SVGD and the kernel Stein discrepancy in one
//! fused pass over cache-sized tiles.
//!
//! For particles `x_i` with scores `s_i = ∇log π(x_i)` it computes, for every `i`,
//!
//! ```text
//! a_i   = Σ_j k(x_j, x_i) s_j          (driving term)
//! rep_i = Σ_j ∇ₓk(x_j, x_i)            (repulsive term)
//! div_i = Σ_j ∇ₓ·∇ᵧk(x_i, x_j)
//! ```
//!
//! from which `φ_i = (a_i + rep_i)/n` and the V-statistic
//! `KSD² = n⁻² Σ_i (s_iᵀa_i + 2 s_iᵀrep_i + div_i)` (the symmetric Stein kernel summed over all
//! pairs, rearranged using `k(x, y) = k(y, x)`).
//!
//! **Radial kernels** (`k = ψ(r²)`): particles are centred (radial kernels are translation
//! invariant) and transposed to a coordinate-major copy padded to a multiple of 8, so for a row
//! `i` and a block of `BJ = 256` columns `j` the loops `r²_ij → (k, w, c)_ij → Σ_j k s_j,
//! Σ_j w x_j, Σ_j w, Σ_j c` run over contiguous slices with 8 independent accumulators (they
//! vectorise). `rep_i = Σ_j w_ij x_j − x_i Σ_j w_ij`, `div_i = −d Σ_j w_ij + Σ_j c_ij`. Memory is
//! O(nd): no n × n matrix exists. Rows are processed in blocks of 64; with the `rayon` feature
//! blocks run in parallel. Every row's sums are formed in the same order whatever the thread
//! count, so results are bit-identical for any number of threads.
//!
//! **Other kernels** (the linear kernel) use a plain sequential pair loop through
//! [`Kernel::value_grad_x`] and [`Kernel::div_grad`].

use nalgebra::DMatrix;

use crate::error::{Error, Result};
use crate::kernel::Kernel;

/// Columns per tile.
const BJ: usize = 256;
/// Rows per block (the unit of parallel work).
const BI: usize = 64;
/// Below this many particles the radial engine stays on the calling thread.
#[cfg(feature = "rayon")]
const PARALLEL_MIN_N: usize = 256;

/// Buffers of the pair engine for `n` particles in dimension `d` (all O(nd)).
#[derive(Clone, Debug)]
pub(crate) struct PairScratch {
    d: usize,
    n: usize,
    np: usize,
    xt: Vec<f64>,
    st: Vec<f64>,
    xc: Vec<f64>,
    grad: Vec<f64>,
    pub(crate) a: Vec<f64>,
    pub(crate) rep: Vec<f64>,
    pub(crate) div: Vec<f64>,
}

impl PairScratch {
    pub(crate) fn new(d: usize, n: usize) -> Self {
        let np = n.div_ceil(8) * 8;
        Self {
            d,
            n,
            np,
            xt: vec![0.0; d * np],
            st: vec![0.0; d * np],
            xc: vec![0.0; d * n],
            grad: vec![0.0; d],
            a: vec![0.0; d * n],
            rep: vec![0.0; d * n],
            div: vec![0.0; n],
        }
    }

    /// Computes `a`, `rep`, `div` for particles `x` and scores `s` (both `d × n`, column-major).
    pub(crate) fn compute<K: Kernel + Sync>(&mut self, kernel: &K, x: &[f64], s: &[f64]) {
        if kernel.is_radial() {
            self.prepare(x, s);
            self.radial(kernel);
        } else {
            self.generic(kernel, x, s);
        }
    }

    /// Centres, transposes and pads.
    fn prepare(&mut self, x: &[f64], s: &[f64]) {
        let (d, n, np) = (self.d, self.n, self.np);
        for l in 0..d {
            let mean = (0..n).map(|i| x[i * d + l]).sum::<f64>() / n as f64;
            let (xrow, srow) = (&mut self.xt[l * np..][..np], &mut self.st[l * np..][..np]);
            for i in 0..n {
                let v = x[i * d + l] - mean;
                xrow[i] = v;
                self.xc[i * d + l] = v;
                srow[i] = s[i * d + l];
            }
        }
    }

    fn radial<K: Kernel + Sync>(&mut self, kernel: &K) {
        let (d, n, np) = (self.d, self.n, self.np);
        let (xt, st, xc) = (&self.xt[..], &self.st[..], &self.xc[..]);
        #[cfg(feature = "rayon")]
        if n >= PARALLEL_MIN_N {
            use rayon::prelude::*;
            self.a
                .par_chunks_mut(BI * d)
                .zip(self.rep.par_chunks_mut(BI * d))
                .zip(self.div.par_chunks_mut(BI))
                .enumerate()
                .for_each(|(b, ((a, rep), div))| {
                    radial_rows(kernel, d, n, np, xt, st, xc, b * BI, a, rep, div)
                });
            return;
        }
        let blocks = self
            .a
            .chunks_mut(BI * d)
            .zip(self.rep.chunks_mut(BI * d))
            .zip(self.div.chunks_mut(BI));
        for (b, ((a, rep), div)) in blocks.enumerate() {
            radial_rows(kernel, d, n, np, xt, st, xc, b * BI, a, rep, div);
        }
    }

    fn generic<K: Kernel>(&mut self, kernel: &K, x: &[f64], s: &[f64]) {
        let (d, n) = (self.d, self.n);
        for i in 0..n {
            let xi = &x[i * d..][..d];
            let (a, rep) = (&mut self.a[i * d..][..d], &mut self.rep[i * d..][..d]);
            a.fill(0.0);
            rep.fill(0.0);
            let mut div = 0.0;
            for j in 0..n {
                let xj = &x[j * d..][..d];
                let k = kernel.value_grad_x(xj, xi, &mut self.grad);
                for ((a, r), (sj, g)) in a
                    .iter_mut()
                    .zip(rep.iter_mut())
                    .zip(s[j * d..][..d].iter().zip(&self.grad))
                {
                    *a += k * sj;
                    *r += g;
                }
                div += kernel.div_grad(xi, xj);
            }
            self.div[i] = div;
        }
    }

    /// `φ_i = (a_i + rep_i)/n`.
    pub(crate) fn phi_into(&self, phi: &mut [f64]) {
        let inv = 1.0 / self.n as f64;
        for ((p, a), r) in phi.iter_mut().zip(&self.a).zip(&self.rep) {
            *p = (a + r) * inv;
        }
    }

    /// The V-statistic `KSD² = n⁻² Σ_{i,j} k_π(x_i, x_j)`.
    pub(crate) fn ksd_v(&self, s: &[f64]) -> f64 {
        let d = self.d;
        let mut total = 0.0;
        for i in 0..self.n {
            let si = &s[i * d..][..d];
            let (a, r) = (&self.a[i * d..][..d], &self.rep[i * d..][..d]);
            let sa: f64 = si.iter().zip(a).map(|(x, y)| x * y).sum();
            let sr: f64 = si.iter().zip(r).map(|(x, y)| x * y).sum();
            total += sa + 2.0 * sr + self.div[i];
        }
        total / (self.n as f64 * self.n as f64)
    }

    /// The U-statistic (diagonal terms removed) from the V-statistic `v`.
    pub(crate) fn ksd_u<K: Kernel>(&mut self, kernel: &K, x: &[f64], s: &[f64], v: f64) -> f64 {
        let (d, n) = (self.d, self.n);
        if n < 2 {
            return f64::NAN;
        }
        let mut diag = 0.0;
        for i in 0..n {
            let (xi, si) = (&x[i * d..][..d], &s[i * d..][..d]);
            let k = kernel.value_grad_x(xi, xi, &mut self.grad);
            let s2: f64 = si.iter().map(|v| v * v).sum();
            let sg: f64 = si.iter().zip(&self.grad).map(|(a, b)| a * b).sum();
            diag += s2 * k + 2.0 * sg + kernel.div_grad(xi, xi);
        }
        let nf = n as f64;
        (v * nf * nf - diag) / (nf * (nf - 1.0))
    }
}

/// Sum of a slice whose length is a multiple of 8, with 8 accumulators in a fixed order.
#[inline(always)]
fn sum8(a: &[f64]) -> f64 {
    let mut acc = [0.0; 8];
    for c in a.chunks_exact(8) {
        for t in 0..8 {
            acc[t] += c[t];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Dot product of two slices whose length is a multiple of 8 (fixed order, 8 accumulators).
#[inline(always)]
fn dot8(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 8];
    for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for t in 0..8 {
            acc[t] += ca[t] * cb[t];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// The radial sums for rows `i0 .. i0 + div.len()`.
#[allow(clippy::too_many_arguments)]
fn radial_rows<K: Kernel>(
    kernel: &K,
    d: usize,
    n: usize,
    np: usize,
    xt: &[f64],
    st: &[f64],
    xc: &[f64],
    i0: usize,
    a: &mut [f64],
    rep: &mut [f64],
    div: &mut [f64],
) {
    let rows = div.len();
    let mut r2 = [0.0_f64; BJ];
    let mut kv = [0.0_f64; BJ];
    let mut wv = [0.0_f64; BJ];
    let mut cv = [0.0_f64; BJ];
    let mut wsum = [0.0_f64; BI];
    let mut csum = [0.0_f64; BI];
    a.fill(0.0);
    rep.fill(0.0);
    let mut j0 = 0;
    while j0 < np {
        let bj = (np - j0).min(BJ);
        let valid = n.saturating_sub(j0).min(bj);
        for ii in 0..rows {
            let xi = &xc[(i0 + ii) * d..][..d];
            let r2 = &mut r2[..bj];
            r2.fill(0.0);
            for (l, &xil) in xi.iter().enumerate() {
                for (r, v) in r2.iter_mut().zip(&xt[l * np + j0..][..bj]) {
                    let t = v - xil;
                    *r += t * t;
                }
            }
            let (kv, wv, cv) = (&mut kv[..bj], &mut wv[..bj], &mut cv[..bj]);
            kernel.radial_block(r2, kv, wv, cv);
            // Padding columns contribute nothing.
            kv[valid..].fill(0.0);
            wv[valid..].fill(0.0);
            cv[valid..].fill(0.0);
            wsum[ii] += sum8(wv);
            csum[ii] += sum8(cv);
            let (ai, ri) = (&mut a[ii * d..][..d], &mut rep[ii * d..][..d]);
            for l in 0..d {
                ai[l] += dot8(kv, &st[l * np + j0..][..bj]);
                ri[l] += dot8(wv, &xt[l * np + j0..][..bj]);
            }
        }
        j0 += bj;
    }
    let df = d as f64;
    for ii in 0..rows {
        let xi = &xc[(i0 + ii) * d..][..d];
        for (r, x) in rep[ii * d..][..d].iter_mut().zip(xi) {
            *r -= wsum[ii] * x;
        }
        div[ii] = -df * wsum[ii] + csum[ii];
    }
}

/// The kernel Stein discrepancy of a particle system, from one pair pass.
///
/// `v_statistic = n⁻² Σ_{i,j} k_π(x_i, x_j)` is the Stein–Fisher information of the empirical
/// measure (`= ‖φ‖²` in the RKHS, ≥ 0 up to rounding); `u_statistic` leaves out `i = j` and is
/// unbiased for the population KSD² (it can be negative). `k_π` is the Stein kernel
/// `sᵀ(x)s(y)k + sᵀ(x)∇ᵧk + sᵀ(y)∇ₓk + ∇ₓ·∇ᵧk` with `s = ∇log π`.
///
/// # Example
///
/// ```
/// use klflow::{kernel::Rbf, stein::stein_direction};
/// use nalgebra::DMatrix;
///
/// // One particle at the mode of N(0, 1) (score 0): k_π(0, 0) = ∇ₓ·∇ᵧk(0, 0) = d/σ² = 1.
/// let x = DMatrix::zeros(1, 1);
/// let mut phi = DMatrix::zeros(1, 1);
/// let ksd = stein_direction(&Rbf::new(1.0)?, &x, &x.clone(), &mut phi)?;
/// assert!((ksd.v_statistic - 1.0).abs() < 1e-15);
/// assert!(ksd.u_statistic.is_nan()); // no pairs i ≠ j
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Ksd {
    /// The V-statistic (all pairs).
    pub v_statistic: f64,
    /// The U-statistic (pairs `i ≠ j`; NaN for one particle).
    pub u_statistic: f64,
}

/// The SVGD direction `φ_i = n⁻¹ Σ_j [k(x_j, x_i) s_j + ∇ₓk(x_j, x_i)]` for particles `x` and
/// scores `s = ∇log π(x)` (both `d × n`, one particle per column), written into `phi`, and
/// the kernel Stein discrepancy from the same kernel evaluations.
///
/// This is the building block of [`Svgd`](super::Svgd), exposed for custom particle methods; it
/// allocates O(nd) scratch per call (the sampler keeps its scratch in its state).
///
/// # Errors
///
/// [`Error::DimensionMismatch`] if the shapes differ; [`Error::Empty`] without particles;
/// [`Error::NonFiniteInput`] if an input is not finite.
///
/// # Example
///
/// ```
/// use klflow::kernel::Rbf;
/// use klflow::stein::stein_direction;
/// use nalgebra::DMatrix;
///
/// // Two particles at ±1 in 1-D, target N(0, 1): s(x) = −x.
/// let x = DMatrix::from_column_slice(1, 2, &[-1.0, 1.0]);
/// let s = -&x;
/// let mut phi = DMatrix::zeros(1, 2);
/// let ksd = stein_direction(&Rbf::new(1.0)?, &x, &s, &mut phi)?;
/// let k = (-2.0f64).exp(); // k(−1, 1) with σ = 1
/// // φ(x₁) = ½[s₁ + k·s₂ + k·(x₁ − x₂)] = ½[1 − k − 2k]
/// assert!((phi[0] - 0.5 * (1.0 - 3.0 * k)).abs() < 1e-15);
/// assert!(ksd.v_statistic > 0.0);
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn stein_direction<K: Kernel + Sync>(
    kernel: &K,
    x: &DMatrix<f64>,
    s: &DMatrix<f64>,
    phi: &mut DMatrix<f64>,
) -> Result<Ksd> {
    let (d, n) = x.shape();
    check_shape("scores", x, s)?;
    check_shape("phi", x, phi)?;
    if n == 0 {
        return Err(Error::Empty { name: "particles" });
    }
    crate::error::finite_input("particles", x.as_slice())?;
    crate::error::finite_input("scores", s.as_slice())?;
    let mut p = PairScratch::new(d, n);
    p.compute(kernel, x.as_slice(), s.as_slice());
    p.phi_into(phi.as_mut_slice());
    let v = p.ksd_v(s.as_slice());
    let u = p.ksd_u(kernel, x.as_slice(), s.as_slice(), v);
    Ok(Ksd {
        v_statistic: v,
        u_statistic: u,
    })
}

pub(crate) fn check_shape(name: &'static str, x: &DMatrix<f64>, y: &DMatrix<f64>) -> Result<()> {
    if x.nrows() != y.nrows() {
        return Err(Error::DimensionMismatch {
            name,
            expected: x.nrows(),
            found: y.nrows(),
        });
    }
    if x.ncols() != y.ncols() {
        return Err(Error::DimensionMismatch {
            name,
            expected: x.ncols(),
            found: y.ncols(),
        });
    }
    Ok(())
}
