//! Squared distances of the pair engine and the median heuristics.
//!
//! **Tiled layouts: Gram form with an exact fallback.** With the particles centred on their
//! mean, `x̃_i = x_i − x̄`, and their squared norms `ν_i = ‖x̃_i‖²`,
//!
//! ```text
//! r²_ij = ‖x_i − x_j‖² = ν_i + ν_j − 2 x̃_iᵀx̃_j,
//! ```
//!
//! so a tile of distances is one small matrix product: one fused multiply-add per pair and
//! coordinate, where the difference form `Σ_l (x_jl − x_il)²` needs a subtraction as well (on
//! Intel cores both go to the same two vector ports; on AMD Zen they fill the dispatch width).
//! Its rounding error is relative to `ν_i + ν_j`, not to `r²`: `|r̂² − r²| ≤ (2d + 8)·u·(ν_i +
//! ν_j)` with `u = 2⁻⁵³` (the dot product and the two norms each within `γ_d ≈ d·u` of their
//! sums of absolute terms; the centring and the last two operations a few `u` more). So every
//! pair whose Gram value falls below `(ν_i + ν_j)/4` — two particles much closer to each other
//! than to the mean, e.g. a tight cluster away from the bulk — is recomputed in the difference
//! form from the raw particles. Every value is then within a relative `≈ 4(2d + 8)·u +
//! 2√8·u` of the exact `r²` (`≤ 10⁻¹³` for `d ≤ 100`), against `≈ d·u` for the difference
//! form: accuracy relative to `r²` itself, whatever the layout of the cloud. For a cloud
//! like a Gaussian in `d ≥ 16` dimensions almost no pair takes the fallback (it needs the two
//! particles' directions from the mean within ≈ 40° of each other). NaN values and norms that
//! overflow (finite particles beyond ≈ 10¹⁵⁴) take it too, so that a pair's value is the
//! difference form's whenever the Gram form cannot be trusted.
//!
//! The dot products run in coordinate order and `ν_i` is summed in the same order by the same
//! fused multiply-adds, the fallback's condition and its value are symmetric in `(i, j)`, so
//!
//! - `r²_ij` and `r²_ji` have the same bits, and
//! - `r²_ii = +0` exactly;
//!
//! the median's counts rely on both. A rounded value below zero is `+0`; a NaN stays NaN.
//!
//! **Packed layout** (the small-`n` Gaussian path, `d ≤ 4`): the difference form of the raw
//! coordinates, eight pairs per register chunk (with four coordinates or fewer the Gram form
//! saves little and would take the fallback often).
//!
//! **Layouts.** For the tiled engine the centred particles are kept twice: block-major rows
//! (`xb`, block `b`, coordinate `l`, particle `jj` at `(b·d + l)·ld + jj`, `ld = t + 4` so that a
//! block's rows spread over the L1 sets) for the column side of a tile, and groups of 4
//! particles (`xg`, `(g·d + l)·4 + r`) for its row side, so that a register block reads
//! contiguous memory on both sides. The packed layout keeps one coordinate-major raw copy
//! (`np` per coordinate, 8 zeros after it).

use super::pairwise::{TileLayout, packed_row, prepare_in_parallel};
use crate::fastmath::{c8, fmadd, wide_regs};

/// A Gram value below `(ν_i + ν_j)/FALLBACK` is recomputed in the difference form.
const FALLBACK: f64 = 4.0;

/// The tiled layout uses the Gram form from this dimension on; below it the difference form
/// of the raw coordinates (measured at n = 1000, d = 10: the Gram form's final sum, clamp
/// and fallback check per pair cost more than its saved subtractions over 10 coordinates).
pub(crate) const GRAM_MIN_D: usize = 16;

#[cfg(test)]
thread_local! {
    /// Pairs recomputed by [`DistPanels::fallback`] on this thread (tests).
    static FALLBACKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Padding of a block's coordinate rows: a stride of `t = 64` doubles (512 bytes) maps a
/// block's rows to 8 of the 64 L1 sets.
const LD_PAD: usize = 4;

/// The coordinate means of the `n` particles `x` (`d × n`, column-major) into `mean` (`d`
/// entries), each summed in particle order in one pass over the particles: the centring of
/// [`DistPanels`] and of the pair engine's features.
pub(crate) fn coord_means(x: &[f64], d: usize, n: usize, mean: &mut [f64]) {
    mean.fill(0.0);
    for xi in x.chunks_exact(d).take(n) {
        for (m, &v) in mean.iter_mut().zip(xi) {
            *m += v;
        }
    }
    for m in mean.iter_mut() {
        *m /= n as f64;
    }
}

/// `+0` for a rounded `r²` below zero; NaN stays NaN.
#[inline(always)]
fn clamp0(v: f64) -> f64 {
    if v < 0.0 { 0.0 } else { v }
}

/// The centred particles in the layouts of the Gram-form distance kernels, and their squared
/// norms (see the module docs). Refilled for every particle system; buffers are reused.
#[derive(Clone, Debug, Default)]
pub(crate) struct DistPanels {
    /// Layout and dimension of the last fill.
    shape: Option<(TileLayout, usize)>,
    ld: usize,
    /// Tiled: block-major rows; packed: coordinate-major (`np` per coordinate, 8 zeros after).
    xb: Vec<f64>,
    /// Tiled: groups of 4 particles (empty when packed).
    xg: Vec<f64>,
    /// `ν_i = ‖x̃_i‖²` (`np` entries, zero past `n`; empty for the raw copy).
    nrm: Vec<f64>,
    mean: Vec<f64>,
}

impl DistPanels {
    /// The raw coordinate-major copy and the difference form (packed layout, or `d <`
    /// [`GRAM_MIN_D`]); else the centred copies and the Gram form.
    fn raw(lay: TileLayout, d: usize) -> bool {
        lay.packed || d < GRAM_MIN_D
    }

    /// `true` if the last fill was for this layout and dimension.
    pub(crate) fn matches(&self, lay: TileLayout, d: usize) -> bool {
        self.shape == Some((lay, d))
    }

    /// Writes the layouts of `lay` for its `n = lay.n` particles `x` (`d × n`, column-major):
    /// centred copies and norms (Gram form), or the raw coordinate-major copy. Padding
    /// entries (particles `≥ n`) are zero.
    /// `means`: the coordinate means by [`coord_means`] if the caller has them already. The
    /// blocks of the Gram layouts go to the pool where [`prepare_in_parallel`] says so (the
    /// same values); serial work keeps a worker awake from `PARALLEL_MIN_N` on, since a
    /// parallel pass follows.
    pub(crate) fn fill(&mut self, x: &[f64], d: usize, lay: TileLayout, means: Option<&[f64]>) {
        if prepare_in_parallel(lay.n, d) {
            self.fill_with(x, d, lay, means, true);
        } else {
            crate::par::keep_warm_for(lay.n, || self.fill_with(x, d, lay, means, false));
        }
    }

    /// [`DistPanels::fill`] with the blocks on the pool (`parallel`, with `rayon`) or not.
    fn fill_with(
        &mut self,
        x: &[f64],
        d: usize,
        lay: TileLayout,
        means: Option<&[f64]>,
        parallel: bool,
    ) {
        let (n, np, t) = (lay.n, lay.np, lay.t);
        if !self.matches(lay, d) {
            // New shape: zeroed buffers (the padding is never written afterwards).
            self.shape = Some((lay, d));
            self.ld = t + LD_PAD;
            self.xb.clear();
            self.xg.clear();
            self.nrm.clear();
            if Self::raw(lay, d) {
                self.xb.resize(d * np + 8, 0.0);
            } else {
                self.xb.resize(lay.nb * d * self.ld, 0.0);
                self.xg.resize(np * d, 0.0);
                self.nrm.resize(np, 0.0);
            }
        }
        if Self::raw(lay, d) {
            for (i, xi) in x.chunks_exact(d).take(n).enumerate() {
                for (l, &v) in xi.iter().enumerate() {
                    self.xb[l * np + i] = v;
                }
            }
            return;
        }
        self.mean.resize(d, 0.0);
        match means {
            Some(m) => self.mean.copy_from_slice(m),
            None => coord_means(x, d, n, &mut self.mean),
        }
        let (ld, mean) = (self.ld, &self.mean[..]);
        let block = |(b, ((xb, xg), nu)): (usize, BlockBufs<'_>)| {
            fill_block(x, d, lay, ld, mean, b, xb, xg, nu);
        };
        #[cfg(feature = "rayon")]
        if parallel {
            use rayon::prelude::*;
            self.xb
                .par_chunks_exact_mut(d * ld)
                .zip(self.xg.par_chunks_mut(t * d))
                .zip(self.nrm.par_chunks_mut(t))
                .enumerate()
                .for_each(block);
            return;
        }
        let _ = parallel;
        self.xb
            .chunks_exact_mut(d * ld)
            .zip(self.xg.chunks_mut(t * d))
            .zip(self.nrm.chunks_mut(t))
            .enumerate()
            .for_each(block);
    }

    /// The tile of row block `bi` (`ti` rows) and column block `bj` (`tj` columns) of the
    /// tiled layout, for the particles `x` of the last fill: `r2[ii·tj + jj] = r²(bi·t + ii,
    /// bj·t + jj)`. Register blocks of 4 rows × 16 columns where the target has
    /// [`wide_regs`], else 4 × 8 (the same bits).
    pub(crate) fn tile(
        &self,
        x: &[f64],
        bi: usize,
        ti: usize,
        bj: usize,
        tj: usize,
        r2: &mut [f64],
    ) {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let (lay, d) = self.shape.expect("filled");
                if Self::raw(lay, d) {
                    let (t, np) = (lay.t, lay.np);
                    if wide_regs() {
                        diff_tile_c::<2>(d, np, &self.xb, bi * t, ti, bj * t, tj, r2);
                    } else {
                        diff_tile_c::<1>(d, np, &self.xb, bi * t, ti, bj * t, tj, r2);
                    }
                } else if wide_regs() {
                    self.tile_c::<2>(x, bi, ti, bj, tj, r2);
                } else {
                    self.tile_c::<1>(x, bi, ti, bj, tj, r2);
                }
            },
        )
    }

    /// [`DistPanels::tile`] in register blocks of 4 rows × `8C` columns (`C` = 1 or 2).
    /// (Separate accumulator locals, not an array: LLVM keeps them in registers.)
    #[inline(always)]
    fn tile_c<const C: usize>(
        &self,
        x: &[f64],
        bi: usize,
        ti: usize,
        bj: usize,
        tj: usize,
        r2: &mut [f64],
    ) {
        let (lay, d) = self.shape.expect("filled");
        let (t, ld) = (lay.t, self.ld);
        debug_assert!(!Self::raw(lay, d) && ti.is_multiple_of(4) && tj.is_multiple_of(8 * C));
        let xj = &self.xb[bj * d * ld..][..d * ld];
        let nj = &self.nrm[bj * t..][..tj];
        for ib in (0..ti).step_by(4) {
            let i = bi * t + ib;
            let pan = &self.xg[(i / 4) * d * 4..][..d * 4];
            let ni: &[f64; 4] = self.nrm[i..][..4].try_into().expect("4 rows");
            for jb in (0..tj).step_by(8 * C) {
                let z = [0.0_f64; 8];
                let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
                let (mut a4, mut a5, mut a6, mut a7) = (z, z, z, z);
                for (l, xi) in pan.chunks_exact(4).enumerate() {
                    let row = &xj[l * ld + jb..][..8 * C];
                    let x0 = c8(row, 0);
                    dot8(&mut a0, xi[0], x0);
                    dot8(&mut a2, xi[1], x0);
                    dot8(&mut a4, xi[2], x0);
                    dot8(&mut a6, xi[3], x0);
                    if C > 1 {
                        let x1 = c8(row, 8);
                        dot8(&mut a1, xi[0], x1);
                        dot8(&mut a3, xi[1], x1);
                        dot8(&mut a5, xi[2], x1);
                        dot8(&mut a7, xi[3], x1);
                    }
                }
                for (r, (lo, hi)) in [(a0, a1), (a2, a3), (a4, a5), (a6, a7)].iter().enumerate() {
                    let o = &mut r2[(ib + r) * tj + jb..][..8 * C];
                    for (h, acc) in [lo, hi].into_iter().enumerate().take(C) {
                        let j = bj * t + jb + 8 * h;
                        if finish8(&mut o[8 * h..][..8], ni[r], c8(nj, jb + 8 * h), acc) {
                            self.fallback(x, d, lay.n, i + r, j, &mut o[8 * h..][..8]);
                        }
                    }
                }
            }
        }
    }

    /// The difference form from the raw particles for the lanes of `o` (pairs `(i, j + q)`)
    /// whose Gram value [`needs_fallback`].
    #[cold]
    #[inline(never)]
    fn fallback(&self, x: &[f64], d: usize, n: usize, i: usize, j: usize, o: &mut [f64]) {
        if i >= n {
            return;
        }
        let xi = &x[i * d..][..d];
        for (q, v) in o.iter_mut().enumerate() {
            let jq = j + q;
            // (The diagonal lane of every row group of a diagonal tile brings us here; it is
            // +0 already unless the norms overflowed.)
            if jq < n && !(jq == i && *v == 0.0) && needs_fallback(*v, self.nrm[i] + self.nrm[jq]) {
                let xj = &x[jq * d..][..d];
                *v = xi.iter().zip(xj).fold(0.0, |acc, (&a, &b)| {
                    let u = b - a;
                    fmadd(u, u, acc)
                });
                #[cfg(test)]
                FALLBACKS.with(|c| c.set(c.get() + 1));
            }
        }
    }

    /// The packed upper triangle (packed layout): `out[packed_row(n, i) + j − i − 1] = r²_ij`
    /// for `i < j < n`, eight pairs per register chunk. The last chunk of a row runs past it
    /// (into the next row, written afterwards, or 8 padding slots at the end of `out`) and reads
    /// the zero padding past particle `n`.
    pub(crate) fn packed(&self, out: &mut [f64]) {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let (lay, d) = self.shape.expect("filled");
                debug_assert!(lay.packed);
                match d {
                    1 => self.packed_d::<1>(lay, d, out),
                    2 => self.packed_d::<2>(lay, d, out),
                    3 => self.packed_d::<3>(lay, d, out),
                    _ => self.packed_d::<0>(lay, d, out),
                }
            },
        )
    }

    /// [`DistPanels::packed`] for `d = D` (`D = 0`: any `d`).
    #[inline(always)]
    fn packed_d<const D: usize>(&self, lay: TileLayout, d: usize, out: &mut [f64]) {
        let d = if D > 0 { D } else { d };
        let (n, np) = (lay.n, lay.np);
        let xt = &self.xb[..d * np + 8];
        for i in 0..n.saturating_sub(1) {
            let off = packed_row(n, i);
            let len = n - 1 - i;
            for c in 0..len.div_ceil(8) {
                let j0 = i + 1 + 8 * c;
                let mut acc = [0.0_f64; 8];
                for l in 0..d {
                    sq8(&mut acc, c8(xt, l * np + j0), xt[l * np + i]);
                }
                out[off + 8 * c..][..8].copy_from_slice(&acc);
            }
        }
    }
}

/// One block's pieces of `xb`, `xg` and the norms (see [`fill_block`]).
type BlockBufs<'a> = ((&'a mut [f64], &'a mut [f64]), &'a mut [f64]);

/// Block `b` of the Gram layouts (see [`DistPanels`]): its particles' centred coordinates in
/// groups of 4 (`xg`), its coordinate rows copied from the groups (`xb`; writing them per
/// particle, one store per row, was slower) and the norms `ν_i = Σ_l c_il²` in coordinate
/// order, vectorised over the block's particles (`nu`; the padding's rows are zero, so its `ν`
/// is `+0`).
#[allow(clippy::too_many_arguments)]
fn fill_block(
    x: &[f64],
    d: usize,
    lay: TileLayout,
    ld: usize,
    mean: &[f64],
    b: usize,
    xb: &mut [f64],
    xg: &mut [f64],
    nu: &mut [f64],
) {
    crate::simd::dispatch(
        #[inline(always)]
        || {
            let i0 = b * lay.t;
            let real = lay.valid(b);
            for (ii, xi) in x[i0 * d..].chunks_exact(d).take(real).enumerate() {
                // Coordinate l of particle ii: slot l of its group of 4.
                let slots = xg[(ii / 4) * d * 4 + ii % 4..].iter_mut().step_by(4);
                for ((&v, &m), pg) in xi.iter().zip(mean).zip(slots) {
                    *pg = v - m;
                }
            }
            for (g, grp) in xg.chunks_exact(4 * d).enumerate() {
                for (row, v) in xb.chunks_exact_mut(ld).zip(grp.chunks_exact(4)) {
                    row[4 * g..4 * g + 4].copy_from_slice(v);
                }
            }
            nu.fill(0.0);
            for row in xb.chunks_exact(ld) {
                for (v, &c) in nu.iter_mut().zip(row) {
                    *v = fmadd(c, c, *v);
                }
            }
        },
    )
}

/// The difference form for a tile of `ti × tj` pairs from the raw coordinate-major copy
/// (`np` per coordinate): `r2[ii·tj + jj] = Σ_l (x_{j0+jj,l} − x_{i0+ii,l})²` in coordinate
/// order, register blocks of 4 rows × `8C` columns (`C` = 1 or 2; the same bits).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn diff_tile_c<const C: usize>(
    d: usize,
    np: usize,
    xt: &[f64],
    i0: usize,
    ti: usize,
    j0: usize,
    tj: usize,
    r2: &mut [f64],
) {
    for ib in (0..ti).step_by(4) {
        for jb in (0..tj).step_by(8 * C) {
            let z = [0.0_f64; 8];
            let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
            let (mut a4, mut a5, mut a6, mut a7) = (z, z, z, z);
            for l in 0..d {
                let row = &xt[l * np..][..np];
                let xi: &[f64; 4] = row[i0 + ib..][..4].try_into().expect("4 rows");
                let x0 = c8(row, j0 + jb);
                sq8(&mut a0, x0, xi[0]);
                sq8(&mut a2, x0, xi[1]);
                sq8(&mut a4, x0, xi[2]);
                sq8(&mut a6, x0, xi[3]);
                if C > 1 {
                    let x1 = c8(row, j0 + jb + 8);
                    sq8(&mut a1, x1, xi[0]);
                    sq8(&mut a3, x1, xi[1]);
                    sq8(&mut a5, x1, xi[2]);
                    sq8(&mut a7, x1, xi[3]);
                }
            }
            for (r, (lo, hi)) in [(a0, a1), (a2, a3), (a4, a5), (a6, a7)].iter().enumerate() {
                let o = (ib + r) * tj + jb;
                r2[o..o + 8].copy_from_slice(lo);
                if C > 1 {
                    r2[o + 8..o + 16].copy_from_slice(hi);
                }
            }
        }
    }
}

/// `acc += (x − y)²` lane-wise.
#[inline(always)]
fn sq8(acc: &mut [f64; 8], x: &[f64; 8], y: f64) {
    for t in 0..8 {
        let u = x[t] - y;
        acc[t] = fmadd(u, u, acc[t]);
    }
}

/// `acc += s·x` lane-wise (fused).
#[inline(always)]
fn dot8(acc: &mut [f64; 8], s: f64, x: &[f64; 8]) {
    for t in 0..8 {
        acc[t] = fmadd(s, x[t], acc[t]);
    }
}

/// `o = max⁺(ν_i + ν_j − 2·dot)` lane-wise (see [`clamp0`]); `true` if a lane needs
/// [`DistPanels::fallback`] (see [`needs_fallback`]).
#[inline(always)]
fn finish8(o: &mut [f64], ni: f64, nj: &[f64; 8], dot: &[f64; 8]) -> bool {
    let mut low = false;
    for t in 0..8 {
        let s = ni + nj[t];
        let v = clamp0(fmadd(-2.0, dot[t], s));
        o[t] = v;
        low |= needs_fallback(v, s);
    }
    low
}

/// A Gram value `v` with norm sum `s = ν_i + ν_j` is recomputed in the difference form if it is
/// below `s/FALLBACK` (cancellation), NaN, or `s` overflowed (finite particles far apart
/// whose squared norms exceed the double range: `∞ − ∞`).
#[inline(always)]
fn needs_fallback(v: f64, s: f64) -> bool {
    !(v >= s * (1.0 / FALLBACK) && s < f64::INFINITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Particles around a far-away centre (1e3 in every coordinate, spread ≈ 1): the centring
    /// keeps the Gram form accurate there.
    fn cloud(d: usize, n: usize) -> Vec<f64> {
        (0..d * n)
            .map(|k| 1e3 + ((k * 7919 % 1009) as f64 / 504.5 - 1.0) + 1e-3 * (k % 7) as f64)
            .collect()
    }

    /// A tight cluster (spread 10⁻³) plus 10 % far outliers: the cluster's pairs are far closer
    /// than their distance from the mean, where only the fallback is accurate.
    fn clustered(d: usize, n: usize) -> Vec<f64> {
        let mut x: Vec<f64> = (0..d * n)
            .map(|k| 1e-3 * ((k * 7919 % 1009) as f64 / 504.5 - 1.0))
            .collect();
        for i in 0..n / 10 {
            x[i * d] += 100.0 + i as f64;
        }
        x
    }

    /// Both register shapes of the tile kernels give the same bits; every value is within a
    /// relative `(9d + 42)·u` of the difference form computed here (Gram form from
    /// [`GRAM_MIN_D`] on, the difference form below it) (the Gram bound `(2d + 8)u(ν_i + ν_j)`
    /// with `ν_i + ν_j ≤ 4r²` outside the fallback, plus the reference's own `(d + 2)u`): the
    /// test fails without the fallback (relative errors ≈ 4·10⁻¹⁴ for the far cloud at d = 16,
    /// ≈ 10⁻⁸ in the cluster); `r²_ij` and `r²_ji` have the same bits and the
    /// diagonal is `+0` exactly (the median's counts rely on both). The packed layout's
    /// difference form is within `(d + 2)·u` relative.
    #[test]
    fn tiles_match_the_difference_form() {
        let u = f64::EPSILON / 2.0;
        for (d, n, x) in [
            (1, 70, cloud(1, 70)),
            (3, 130, cloud(3, 130)),
            (16, 75, cloud(16, 75)),
            (21, 300, cloud(21, 300)),
            (100, 90, cloud(100, 90)),
            (2, 200, clustered(2, 200)),
            (20, 150, clustered(20, 150)),
        ] {
            let lay = TileLayout {
                packed: false,
                ..TileLayout::new(n, d)
            };
            let mut p = DistPanels::default();
            p.fill(&x, d, lay, None);
            let exact = |i: usize, j: usize| -> f64 {
                (0..d).map(|l| (x[i * d + l] - x[j * d + l]).powi(2)).sum()
            };
            let t = lay.t;
            let mut tiles = vec![vec![0.0; t * t]; lay.nb * lay.nb];
            for bi in 0..lay.nb {
                for bj in 0..lay.nb {
                    let (ti, tj) = (lay.len(bi), lay.len(bj));
                    let (mut a, mut b) = (vec![0.0; ti * tj], vec![0.0; ti * tj]);
                    if DistPanels::raw(lay, d) {
                        let (i0, j0) = (bi * t, bj * t);
                        diff_tile_c::<1>(d, lay.np, &p.xb, i0, ti, j0, tj, &mut a);
                        diff_tile_c::<2>(d, lay.np, &p.xb, i0, ti, j0, tj, &mut b);
                    } else {
                        p.tile_c::<1>(&x, bi, ti, bj, tj, &mut a);
                        p.tile_c::<2>(&x, bi, ti, bj, tj, &mut b);
                    }
                    assert!(a.iter().zip(&b).all(|(u, v)| u.to_bits() == v.to_bits()));
                    tiles[bi * lay.nb + bj][..ti * tj].copy_from_slice(&a);
                }
            }
            let at = |i: usize, j: usize| {
                let (bi, bj) = (i / t, j / t);
                tiles[bi * lay.nb + bj][(i % t) * lay.len(bj) + j % t]
            };
            for i in 0..n {
                assert_eq!(at(i, i).to_bits(), 0.0_f64.to_bits(), "d={d} diagonal {i}");
                for j in 0..n {
                    let (v, e) = (at(i, j), exact(i, j));
                    assert_eq!(v.to_bits(), at(j, i).to_bits(), "d={d} symmetry ({i},{j})");
                    let bound = (9 * d + 42) as f64 * u * e;
                    assert!(
                        (v - e).abs() <= bound,
                        "d={d} n={n} ({i},{j}): {v} vs {e} (bound {bound:e})"
                    );
                }
            }
            // The packed layout (any n, d here: the kernel does not depend on the limits).
            let plan = TileLayout {
                packed: true,
                ..lay
            };
            let mut q = DistPanels::default();
            q.fill(&x, d, plan, None);
            let mut out = vec![f64::NAN; n * (n - 1) / 2 + 8];
            q.packed(&mut out);
            for i in 0..n {
                for j in i + 1..n {
                    let (v, e) = (out[packed_row(n, i) + j - i - 1], exact(i, j));
                    assert!((v - e).abs() <= (d + 2) as f64 * u * e, "packed ({i},{j})");
                }
            }
        }
    }

    /// A Gaussian-like cloud (sums of uniforms, d = 24) takes the fallback for under 1 % of
    /// its pairs (fails without the centring: then every pair does), the cluster for some.
    #[test]
    fn fallback_is_rare_for_a_spread_cloud() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut unif = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let (d, n) = (24, 300);
        let gauss: Vec<f64> = (0..d * n)
            .map(|_| 5.0 + (0..12).map(|_| unif()).sum::<f64>() - 6.0)
            .collect();
        let count = |x: &[f64], d: usize, n: usize| {
            let lay = TileLayout::new(n, d);
            let mut p = DistPanels::default();
            p.fill(x, d, lay, None);
            FALLBACKS.with(|c| c.set(0));
            let mut r2 = vec![0.0; lay.t * lay.t];
            for bi in 0..lay.nb {
                for bj in 0..lay.nb {
                    let (ti, tj) = (lay.len(bi), lay.len(bj));
                    p.tile(x, bi, ti, bj, tj, &mut r2[..ti * tj]);
                }
            }
            FALLBACKS.with(|c| c.get())
        };
        let spread = count(&gauss, d, n);
        assert!(spread * 100 < n * n, "{spread} of {} pairs", n * n);
        assert!(count(&clustered(20, 150), 20, 150) > 1000);
    }

    /// Finite particles whose squared norms overflow (one particle at 10¹⁶⁰): every pair takes
    /// the fallback, so the distances among the others are the difference form's and the
    /// diagonal stays +0 (the Gram form alone gives NaN everywhere); the median heuristic then
    /// gives the same bandwidth as at d < 16. A NaN particle is an error at every d.
    #[test]
    fn overflowing_norms_and_non_finite_particles() {
        use crate::kernel::{Bandwidth, MedianScratch};
        let n = 300;
        for d in [GRAM_MIN_D - 1, GRAM_MIN_D] {
            let mut x = cloud(d, n);
            x[7 * d] = 1e160;
            let lay = TileLayout::new(n, d);
            let mut p = DistPanels::default();
            p.fill(&x, d, lay, None);
            let t = lay.t;
            let mut r2 = vec![0.0; t * t];
            p.tile(&x, 0, t, 0, t, &mut r2);
            for i in 0..t {
                for j in 0..t {
                    let v = r2[i * t + j];
                    if i == 7 || j == 7 {
                        assert!(i == j && v == 0.0 || v == f64::INFINITY, "({i},{j}) {v}");
                    } else {
                        let e: f64 = (0..d).map(|l| (x[i * d + l] - x[j * d + l]).powi(2)).sum();
                        assert!((v - e).abs() <= (d + 2) as f64 * f64::EPSILON * e);
                    }
                }
            }
            let xm = nalgebra::DMatrix::from_column_slice(d, n, &x);
            let ell = Bandwidth::Median.length_scale(&xm, &mut MedianScratch::new(n));
            assert!(
                ell.is_ok_and(|l| l.is_finite() && l > 0.0),
                "d={d}: {ell:?}"
            );
            // (Infinite: in the 8-lane sums or, at d = 15, the tail of the finiteness check.)
            for (k, v) in [(9 * d + 1, f64::NAN), (d * n - 1, f64::INFINITY)] {
                let mut y = x.clone();
                y[k] = v;
                let ym = nalgebra::DMatrix::from_column_slice(d, n, &y);
                let got = Bandwidth::Median.length_scale(&ym, &mut MedianScratch::new(n));
                assert!(got.is_err(), "d={d} {v}: {got:?}");
            }
        }
    }

    /// The parallel fill (blocks on a 2-thread pool) writes exactly the serial one's buffers,
    /// with a last block of 28 real particles and 4 of padding (fails on a block offset).
    #[cfg(feature = "rayon")]
    #[test]
    fn parallel_fill_equals_serial() {
        let (d, n) = (20, 668);
        let x = cloud(d, n);
        let lay = TileLayout::new(n, d);
        assert!(!DistPanels::raw(lay, d) && lay.valid(lay.nb - 1) < lay.len(lay.nb - 1));
        let mut a = DistPanels::default();
        a.fill_with(&x, d, lay, None, false);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let mut b = DistPanels::default();
        pool.install(|| b.fill_with(&x, d, lay, None, true));
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.xb), bits(&b.xb));
        assert_eq!(bits(&a.xg), bits(&b.xg));
        assert_eq!(bits(&a.nrm), bits(&b.nrm));
        assert!(a.nrm[..n].iter().all(|&v| v > 0.0) && a.nrm[n..].iter().all(|&v| v == 0.0));
    }

    /// Refilling with other particles of the same shape overwrites every real entry and
    /// leaves the padding zero; a non-finite coordinate gives non-finite distances, never a
    /// finite one.
    #[test]
    fn refill_and_non_finite_input() {
        let (d, n) = (GRAM_MIN_D + 3, 37);
        let lay = TileLayout::new(n, d);
        assert!(!DistPanels::raw(lay, d));
        let (a, b) = (cloud(d, n), vec![0.5; d * n]);
        let mut p = DistPanels::default();
        p.fill(&a, d, lay, None);
        p.fill(&b, d, lay, None);
        let mut fresh = DistPanels::default();
        fresh.fill(&b, d, lay, None);
        assert_eq!(p.xb, fresh.xb);
        assert_eq!(p.xg, fresh.xg);
        assert_eq!(p.nrm, fresh.nrm);
        assert!(p.nrm.iter().all(|&v| v == 0.0));
        let mut c = a.clone();
        c[3 * d + 2] = f64::INFINITY;
        p.fill(&c, d, lay, None);
        let tj = lay.len(0);
        let mut r2 = vec![0.0; tj * tj];
        p.tile(&c, 0, tj, 0, tj, &mut r2);
        assert!((0..tj).all(|i| !r2[i * tj + 3].is_finite()));
    }
}
