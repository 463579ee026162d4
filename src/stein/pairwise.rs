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
//! **Radial kernels** (`k = ψ(r²)`): particles are transposed to a centred coordinate-major
//! copy padded to a multiple of 16 (for the features; radial kernels are translation
//! invariant). The particles are cut into blocks of `t` (32 for n ≤ 256, else 64) and the
//! engine works on `t × t` tiles of pairs: `r²` by the register-blocked kernels of
//! [`super::dists`] (the Gram form with an exact fallback for d ≥ 16, the difference form
//! below) or read from the median's tile store of the same particles, the kernel values for
//! the whole tile (branch-free exp), then the sums as small matrix products with
//! register-blocked micro-kernels (dot products over particles for d < 16, vectorised over
//! coordinates from a particle-major copy
//! for d ≥ 16).
//!
//! *Gaussian kernel* ([`Kernel::gaussian_precision`] = `p`): with `f_j = s_j − p·x_j` the driving
//! and repulsive sums fold into `g_i = Σ_j k_ij f_j`: `n·φ_i = g_i + p·x_i·K_i` with `K_i = Σ_j
//! k_ij`, and `KSD²` follows from `g`, `K` and the total `R = Σ_{i,j} k_ij r²_ij` (see
//! `PairScratch::ksd`) — one `d`-feature product per side instead of `2d + 2`. Only the
//! total of `R` enters, so the tiled pass keeps it as one 8-lane sum per row block (no
//! per-particle row or column sums of `k r²`). For `d < 16` the row side of a row block
//! accumulates in 8 lanes per (particle, feature) across all its tiles and is reduced once at
//! the end of the block (no horizontal sums per tile).
//!
//! *Other radial kernels*: `(k, w, c)` per pair, the sums `Σ_j k s_j`, `Σ_j w x_j`, `Σ_j w`,
//! `Σ_j c`; `rep_i = Σ_j w_ij x_j − x_i Σ_j w_ij`, `div_i = −d Σ_j w_ij + Σ_j c_ij`.
//!
//! *Small n* (`n ≤ 192`, `d ≤ 4`, Gaussian kernel): the per-tile fixed work (padding, diagonal
//! tiles evaluated in full, per-row reductions of 32-wide tiles) dominates there, so the
//! median's distances are the packed upper triangle instead of tiles (`r²_ij`, `j > i`, row
//! after row, eight pairs per register chunk) and the pair pass runs untiled over it: each
//! pair once, all exps in one loop, then one fused pass per row `i` that adds the row side
//! into particle `i` and the column side into every `j > i` (all `d` features and `K`, `R` in
//! one sweep). Every particle's sums run in a fixed order (diagonal, rows `j < i`, own row).
//!
//! **Symmetry.** `k_ij = k_ji` (and likewise `w`, `c`), so each unordered pair of blocks
//! `(I, J)`, `I ≤ J`, is evaluated once: its row side is added to block `I`'s sums in
//! increasing `J`; its column side, with several threads, is written to a partial slot of its
//! own, and a second pass sums block `J`'s slots in increasing `I` and adds the sum to the
//! block. On one thread the blocks run in increasing `I`, so the column sides arrive in that
//! order already: they are summed in place into one slot per block `J` (the first tile writes
//! it, the later ones add), the same sums in the same order, so both give the same bits without
//! the per-pair slots' traffic (6 MB per step at n = 1000, d = 100). The slots take
//! `nb(nb−1)(2d+2)t` doubles (`nb` blocks, half of them touched; one thread touches
//! `nb(2d+2)t`). Above 2²² doubles (e.g. n ≳ 3500 at d = 10, n ≳ 1200 at d = 100) the
//! engine switches to **rounds of block-group pairs**: the blocks form groups of up to 8, and
//! round `r` evaluates the group pairs `(G, H)` with `G + H ≡ r (mod ng)`, a perfect matching of
//! the groups, so a round's tasks touch disjoint per-block accumulators (row side and column
//! side, O(nd) in all) and run in parallel; after `ng` rounds every pair of blocks has come
//! once, each block's sums in an order fixed by `n` (see `PairScratch::gauss_rounds`). Memory
//! stays O(nd) apart from the slots; no n × n matrix exists.
//!
//! **Threads.** With the `rayon` feature, row blocks run in parallel in both passes (n ≥ 256);
//! on the Gaussian path blocks `c` and `nb − 1 − c` form one task (equal work per task).
//! The partition into tiles and every reduction order depend on `(n, d)` only, so results are
//! bit-identical for any number of threads. Tile buffers are thread-local (allocated at a
//! thread's first use, never zeroed per call).
//!
//! **Other kernels** (the linear kernel) use a plain sequential pair loop through
//! [`Kernel::value_grad_x`] and [`Kernel::div_grad`].

use nalgebra::DMatrix;

use super::dists::{DistPanels, coord_means};
use crate::error::{Error, Result};
use crate::fastmath::{F4 as f64x4, axpy8, c8, fma4, fmadd, wide_regs};
use crate::kernel::Kernel;

std::thread_local! {
    /// Tile buffers of the radial engine, one set per thread, allocated at first use.
    static TILES: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// From this dimension on, the row side runs vectorised over coordinates (particle-major
/// copies) instead of as dot products over particles (whose horizontal sums then dominate).
const WIDE_D: usize = 16;

/// Largest tile edge (particles per block).
const TMAX: usize = 64;
/// Column chunk of the micro-kernels (a multiple of the vector width).
const CW: usize = 16;
/// The symmetric engine keeps one column-side partial per tile pair; above this many `f64`s
/// (≈ 32 MB, of which about half is touched) it switches to rounds of block-group pairs
/// (see [`PairScratch::gauss_rounds`]).
const SYM_MAX_SLOTS: usize = 1 << 22;

/// How particles are cut into blocks and where the distance tile of a block pair lives in a
/// tile store; a function of `n` only (shared by the pair engine and the median's distance
/// store, so that the median's tiles can be reused by the pair pass).
///
/// The store holds the tiles `(I, J)`, `J ≥ I`, of `t × t` slots each (a tile of a last,
/// shorter block uses a prefix). Row blocks `c` and `nb − 1 − c` share chunk `c` of `nb + 1`
/// tiles (`nb − c` and `c + 1` of them), so the `⌈nb/2⌉` chunks have equal work and can be
/// filled in parallel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TileLayout {
    /// Particles.
    pub(crate) n: usize,
    /// Particles padded to a multiple of 16.
    pub(crate) np: usize,
    /// Tile edge.
    pub(crate) t: usize,
    /// Number of blocks.
    pub(crate) nb: usize,
    /// `n ≤` [`PACKED_MAX_N`] and `d ≤` [`PACKED_MAX_D`]: the store is the packed upper
    /// triangle instead (row `i` holds
    /// `r²_ij`, `j = i+1 … n−1`, rows one after the other; one chunk), see [`DistPanels::packed`].
    pub(crate) packed: bool,
}

/// Up to this many particles the distance store is the packed upper triangle and the Gaussian
/// path runs untiled over it ([`PairScratch`]'s small-n path): at small `n` the per-tile fixed
/// work (padding, diagonal tiles evaluated in full, per-row reductions) dominates.
pub(crate) const PACKED_MAX_N: usize = 192;
/// Largest dimension of the small-n path: its row loop carries all `d` features (and `K`,
/// `R`) in one pass up to 4; for larger `d` the tiled engine's register-blocked products win.
pub(crate) const PACKED_MAX_D: usize = 4;
const _: () = assert!(
    PACKED_MAX_D <= 4,
    "the small-n row kernel carries at most 4 features"
);

/// Offset of row `i` of the packed upper triangle of `n` particles.
#[inline]
pub(crate) fn packed_row(n: usize, i: usize) -> usize {
    i * (2 * n - i - 1) / 2
}

impl TileLayout {
    /// The layout for `n` particles in dimension `d`.
    pub(crate) fn new(n: usize, d: usize) -> Self {
        let np = n.div_ceil(CW) * CW;
        let t = if np <= 256 { 32 } else { TMAX };
        Self {
            n,
            np,
            t,
            nb: np.div_ceil(t),
            packed: n <= PACKED_MAX_N && d <= PACKED_MAX_D,
        }
    }
    /// Number of chunks of the tile store.
    pub(crate) fn chunks(&self) -> usize {
        if self.packed { 1 } else { self.nb.div_ceil(2) }
    }
    /// `f64`s per chunk.
    pub(crate) fn chunk_len(&self) -> usize {
        if self.packed {
            // The m pairs, then 8 padding slots (see `DistPanels::packed`).
            self.n * self.n.saturating_sub(1) / 2 + 8
        } else {
            (self.nb + 1) * self.t * self.t
        }
    }
    /// `f64`s of the whole store.
    pub(crate) fn store_len(&self) -> usize {
        self.chunks() * self.chunk_len()
    }
    /// The row blocks of chunk `c` (one or two).
    pub(crate) fn chunk_rows(&self, c: usize) -> impl Iterator<Item = usize> {
        let other = self.nb - 1 - c;
        std::iter::once(c).chain((other != c).then_some(other))
    }
    /// Offset of tile `(i, j)`, `j ≥ i`, inside its chunk.
    pub(crate) fn local_offset(&self, i: usize, j: usize) -> usize {
        let c = i.min(self.nb - 1 - i);
        let tt = self.t * self.t;
        if i == c {
            (j - i) * tt
        } else {
            (self.nb - c + j - i) * tt
        }
    }
    /// Offset of tile `(i, j)`, `j ≥ i`, in the store.
    pub(crate) fn offset(&self, i: usize, j: usize) -> usize {
        i.min(self.nb - 1 - i) * self.chunk_len() + self.local_offset(i, j)
    }
    /// Length of block `b` (padding included).
    pub(crate) fn len(&self, b: usize) -> usize {
        (self.np - b * self.t).min(self.t)
    }
    /// Real particles in block `b`.
    pub(crate) fn valid(&self, b: usize) -> usize {
        self.n.saturating_sub(b * self.t).min(self.len(b))
    }
}

/// The rows `xt`, `st` of one coordinate (see [`prepare_row`]).
type PrepareRow<'a> = (&'a mut [f64], &'a mut [f64]);

/// Coordinate row `l` of [`PairScratch::prepare`] (`x`, `s` are `d × n` column-major; the
/// padding `i ≥ n` of each row is left as it is, zero): Gaussian path (precision `p`), the
/// features `st_i = s_{i,l} − p·(x_{i,l} − mean_l)` only (no pass of that path reads the
/// centred copy); general kernels, `xt_i = x_{i,l} − mean_l` (the centring of [`DistPanels`])
/// and `st_i = s_{i,l}`. (Groups of 8 rows, reading each particle's 8 coordinates of the group
/// at once, measured slower: 16 scattered write streams against two sequential ones.)
#[allow(clippy::too_many_arguments)]
fn prepare_row(
    x: &[f64],
    s: &[f64],
    d: usize,
    n: usize,
    l: usize,
    p: Option<f64>,
    mean: f64,
    xt: &mut [f64],
    st: &mut [f64],
) {
    match p {
        Some(p) => {
            for i in 0..n {
                st[i] = s[i * d + l] - p * (x[i * d + l] - mean);
            }
        }
        None => {
            for i in 0..n {
                xt[i] = x[i * d + l] - mean;
                st[i] = s[i * d + l];
            }
        }
    }
}

/// Block `b` ([`PREPARE_BLOCK`] particles) of the particle-major copies of
/// [`PairScratch::prepare`], rows of `dp` entries, straight from the particle-major `x`, `s`
/// (the values of `st`, `xt` by the same operations): `sp` the features, and for general
/// kernels (`p = None`) `xp` the centred particles.
#[allow(clippy::too_many_arguments)]
fn prepare_block(
    x: &[f64],
    s: &[f64],
    d: usize,
    n: usize,
    dp: usize,
    b: usize,
    p: Option<f64>,
    mean: &[f64],
    sp: &mut [f64],
    xp: &mut [f64],
) {
    let i0 = b * PREPARE_BLOCK;
    for (i, spi) in (i0..n).zip(sp.chunks_exact_mut(dp)) {
        let (xi, si) = (&x[i * d..][..d], &s[i * d..][..d]);
        for l in 0..d {
            spi[l] = match p {
                Some(p) => si[l] - p * (xi[l] - mean[l]),
                None => si[l],
            };
        }
    }
    if p.is_none() {
        for (i, xpi) in (i0..n).zip(xp.chunks_exact_mut(dp)) {
            let xi = &x[i * d..][..d];
            for l in 0..d {
                xpi[l] = xi[l] - mean[l];
            }
        }
    }
}

/// Tile geometry of the radial engine, a function of `(n, d)` only (never of the thread
/// count, so results do not depend on it).
#[derive(Clone, Copy, Debug)]
struct Geometry {
    /// Tile edge.
    t: usize,
    /// Number of blocks.
    nb: usize,
    /// Each unordered pair of blocks is evaluated once (`k_ij = k_ji`). `true`: the column
    /// sides go through per-tile slots; `false` (too many slots, large `n`): the pairs run in
    /// rounds of disjoint block groups with O(nd) accumulators (see
    /// [`PairScratch::gauss_rounds`]).
    per_tile: bool,
    /// Blocks per group of the round-robin engine ([`rounds_group`]).
    group: usize,
    /// Features per particle in a column-side partial: `a` (d), `Σ w x` (d), `Σ w`, `Σ c`
    /// (the Gaussian path uses the first `d + 2`).
    nf: usize,
}

impl Geometry {
    fn new(d: usize, lay: TileLayout) -> Self {
        let (t, nb) = (lay.t, lay.nb);
        let nf = 2 * d + 2;
        let per_tile = nb * nb.saturating_sub(1) * nf * t <= SYM_MAX_SLOTS;
        Self {
            t,
            nb,
            per_tile,
            group: rounds_group(nb),
            nf,
        }
    }
    /// `f64`s of one block's partial slots (`nb − 1` slots; 1 for the rounds).
    fn region(&self) -> usize {
        if self.per_tile {
            (self.nb.saturating_sub(1) * self.slot_len()).max(1)
        } else {
            1
        }
    }
    fn slot_len(&self) -> usize {
        self.nf * self.t
    }
}
#[cfg(feature = "rayon")]
pub(crate) use crate::par::PARALLEL_MIN_N;

/// Particles per piece of the particle-major copies (a task when they are written in
/// parallel).
const PREPARE_BLOCK: usize = 64;

/// From this many coordinates `n·d` on, the coordinate-major copies and features before the
/// pair pass run in parallel (below, the O(nd) copies are shorter than waking a second
/// thread: at n = 1000, d = 10 they are ≈ 2 % of a step).
#[cfg(feature = "rayon")]
const PREPARE_PARALLEL_MIN: usize = 1 << 15;

/// `true` if a pair pass runs its row blocks on the pool: `n ≥ PARALLEL_MIN_N` and more than
/// one thread. On one thread the serial order sums the column sides in place instead of in
/// per-tile slots (see [`gauss_block`]): the same bits with less traffic.
#[cfg(feature = "rayon")]
fn pass_in_parallel(n: usize) -> bool {
    n >= PARALLEL_MIN_N && rayon::current_num_threads() > 1
}

/// `true` if the O(nd) copies before a pair pass (the engine's features, the distance panels)
/// are written on the pool: with `rayon`, `n ≥ PARALLEL_MIN_N` and `n·d ≥ 2¹⁵`.
pub(crate) fn prepare_in_parallel(n: usize, d: usize) -> bool {
    #[cfg(feature = "rayon")]
    {
        n >= PARALLEL_MIN_N && n * d >= PREPARE_PARALLEL_MIN
    }
    #[cfg(not(feature = "rayon"))]
    {
        let _ = (n, d);
        false
    }
}

/// Buffers of the pair engine for `n` particles in dimension `d` (all O(nd)).
#[derive(Clone, Debug)]
pub(crate) struct PairScratch {
    d: usize,
    n: usize,
    np: usize,
    lay: TileLayout,
    geo: Geometry,
    /// Centred, coordinate-major particles (general radial path only: the Gaussian path forms
    /// `x − mean` where it needs it), and the coordinate means.
    xt: Vec<f64>,
    mean: Vec<f64>,
    /// The particles in the layouts of the distance kernels, filled when no distance store of
    /// the same step is given.
    dist: DistPanels,
    /// Scores (general radial path) or the features `f = s − p·x` (Gaussian path),
    /// coordinate-major.
    st: Vec<f64>,
    /// Particle-major copies padded to `dp` coordinates (only for `d ≥ WIDE_D`).
    dp: usize,
    xp: Vec<f64>,
    sp: Vec<f64>,
    grad: Vec<f64>,
    wsum: Vec<f64>,
    slots: Vec<f64>,
    /// Per-block accumulators of the round-robin engine ([`PairScratch::gauss_rounds`]),
    /// sized at its first use.
    rounds: Vec<f64>,
    /// Gaussian path: `g_i = Σ_j k_ij f_j`; general: `a_i = Σ_j k_ij s_j`.
    pub(crate) a: Vec<f64>,
    pub(crate) rep: Vec<f64>,
    /// General radial path: `div_i`. Gaussian path: `R = Σ_{i,j} k_ij r²_ij` (only its total
    /// enters the KSD) split into parts: per particle `R_i = Σ_j k_ij r²_ij` on the small-n
    /// path, else one part per row block at the block's first particle (zero elsewhere).
    pub(crate) div: Vec<f64>,
    /// `Some(p)` after a pass of the Gaussian path (`wsum` then holds `K_i = Σ_j k_ij`).
    gauss: Option<f64>,
    /// Small-n Gaussian path ([`TileLayout::packed`]): the packed upper triangle of `r²` and
    /// of the kernel values (empty otherwise).
    pr2: Vec<f64>,
    pk: Vec<f64>,
    /// Small-n path: stride `ns` and the padded features `f`, `K`, `R`, `g` (coordinate-major).
    ns: usize,
    pbuf: Vec<f64>,
    /// Small-n path: the 8-lane-array kernel (for [`wide_regs`] targets) or the pairs of
    /// 4-lane vectors; [`wide_regs`] except in tests, which run both and compare bits.
    wide: bool,
}

impl PairScratch {
    pub(crate) fn new(d: usize, n: usize) -> Self {
        let lay = TileLayout::new(n, d);
        let np = lay.np;
        let geo = Geometry::new(d, lay);
        let dp = if d >= WIDE_D { d.div_ceil(8) * 8 } else { 0 };
        Self {
            dp,
            xp: vec![0.0; np * dp],
            sp: vec![0.0; np * dp],
            d,
            n,
            np,
            lay,
            geo,
            xt: vec![0.0; d * np],
            mean: vec![0.0; d],
            dist: DistPanels::default(),
            st: vec![0.0; d * np],
            grad: vec![0.0; d],
            wsum: vec![0.0; np],
            slots: vec![0.0; geo.nb * geo.region()],
            rounds: Vec::new(),
            a: vec![0.0; d * np],
            rep: vec![0.0; d * np],
            div: vec![0.0; np],
            gauss: None,
            pr2: vec![0.0; if lay.packed { lay.store_len() } else { 0 }],
            pk: vec![0.0; if lay.packed { lay.store_len() } else { 0 }],
            ns: n.div_ceil(8) * 8 + 8,
            wide: wide_regs(),
            pbuf: vec![
                0.0;
                if lay.packed {
                    (2 * d + 2) * (n.div_ceil(8) * 8 + 8)
                } else {
                    0
                }
            ],
        }
    }

    /// Computes the pair sums for particles `x` and scores `s` (both `d × n`, column-major).
    /// `r2`: the squared distances of these particles in a tile store of this engine's layout
    /// (filled by the median of the same step), if available: the pass then reads them
    /// instead of recomputing them (same values, so the same results).
    pub(crate) fn compute<K: Kernel + Sync>(
        &mut self,
        kernel: &K,
        x: &[f64],
        s: &[f64],
        r2: Option<&[f64]>,
    ) {
        self.gauss = None;
        if kernel.is_radial() {
            let p = kernel.gaussian_precision();
            if prepare_in_parallel(self.n, self.d) {
                self.prepare(x, s, p, true);
            } else {
                // Serial, but with n ≥ PARALLEL_MIN_N a parallel pass follows: keep a worker
                // awake meanwhile.
                let n = self.n;
                crate::par::keep_warm_for(n, || self.prepare(x, s, p, false));
            }
            self.gauss = p;
            // The median's distance store of the same step, where this path can read it;
            // otherwise the distances are computed here.
            let lay = self.lay;
            let r2 = r2.filter(|r| p.is_some() && r.len() >= lay.store_len());
            if r2.is_none() {
                // (The packed layout is the Gaussian path's; other kernels run tiled.) With
                // the means of `prepare`.
                let packed = lay.packed && p.is_some();
                let lay = TileLayout { packed, ..lay };
                self.dist.fill(x, self.d, lay, Some(&self.mean));
            }
            match p {
                Some(p) if self.lay.packed => self.gauss_packed(p, r2),
                Some(p) => self.gauss_pass(p, r2, x),
                None => self.radial(kernel, x),
            }
        } else {
            self.generic(kernel, x, s);
        }
    }

    /// Writes the coordinate means, the features `st` (`f = s − p·x` with the Gaussian
    /// precision `p`, centred `x`; else `s` and the centred copies `xt`), and for wide
    /// `d` the particle-major copies `sp` of the features and (general kernels) `xp` of the
    /// centred particles: coordinate rows by [`prepare_row`], blocks of particles by
    /// [`prepare_block`], in parallel (`parallel`, with `rayon`) or on this thread. The same
    /// functions on the same pieces, so the values do not depend on `parallel`.
    fn prepare(&mut self, x: &[f64], s: &[f64], p: Option<f64>, parallel: bool) {
        let (d, n, np, dp) = (self.d, self.n, self.np, self.dp);
        coord_means(x, d, n, &mut self.mean);
        let mean = &self.mean[..];
        let row = |(l, (xt, st)): (usize, PrepareRow<'_>)| {
            prepare_row(x, s, d, n, l, p, mean[l], xt, st);
        };
        let block = PREPARE_BLOCK * dp.max(1);
        let blocks = |(b, (sp, xp)): (usize, (&mut [f64], &mut [f64]))| {
            prepare_block(x, s, d, n, dp, b, p, mean, sp, xp);
        };
        #[cfg(feature = "rayon")]
        if parallel {
            use rayon::prelude::*;
            self.xt
                .par_chunks_mut(np)
                .zip(self.st.par_chunks_mut(np))
                .enumerate()
                .for_each(row);
            if dp > 0 {
                self.sp
                    .par_chunks_mut(block)
                    .zip(self.xp.par_chunks_mut(block))
                    .enumerate()
                    .for_each(blocks);
            }
            return;
        }
        let _ = parallel;
        self.xt
            .chunks_mut(np)
            .zip(self.st.chunks_mut(np))
            .enumerate()
            .for_each(row);
        if dp > 0 {
            self.sp
                .chunks_mut(block)
                .zip(self.xp.chunks_mut(block))
                .enumerate()
                .for_each(blocks);
        }
    }

    fn radial<K: Kernel + Sync>(&mut self, kernel: &K, x: &[f64]) {
        if !self.geo.per_tile {
            self.radial_rounds(kernel, x);
            return;
        }
        let (d, n, np, g) = (self.d, self.n, self.np, self.geo);
        let t = g.t;
        let f = Feats {
            x,
            dist: &self.dist,
            xt: &self.xt,
            st: &self.st,
            xp: &self.xp,
            sp: &self.sp,
            dp: self.dp,
        };
        let xt = &self.xt[..];
        #[cfg(feature = "rayon")]
        if pass_in_parallel(n) {
            use rayon::prelude::*;
            let region = g.region();
            self.a
                .par_chunks_mut(t * d)
                .zip(self.rep.par_chunks_mut(t * d))
                .zip(self.wsum.par_chunks_mut(t))
                .zip(self.div.par_chunks_mut(t))
                .zip(self.slots.par_chunks_mut(region))
                .enumerate()
                .for_each(|(b, ((((a, wx), ws), cs), sl))| {
                    block_pass(kernel, d, n, np, g, &f, b, a, wx, ws, cs, (sl, false))
                });
            let slots = &self.slots[..];
            self.a
                .par_chunks_mut(t * d)
                .zip(self.rep.par_chunks_mut(t * d))
                .zip(self.wsum.par_chunks_mut(t))
                .zip(self.div.par_chunks_mut(t))
                .enumerate()
                .for_each(|(b, (((a, wx), ws), cs))| {
                    block_finish(d, np, g, xt, (slots, false), b, a, wx, ws, cs)
                });
            return;
        }
        let blocks = self
            .a
            .chunks_mut(t * d)
            .zip(self.rep.chunks_mut(t * d))
            .zip(self.wsum.chunks_mut(t))
            .zip(self.div.chunks_mut(t));
        for (b, (((a, wx), ws), cs)) in blocks.enumerate() {
            let sl = (&mut self.slots[..], true);
            block_pass(kernel, d, n, np, g, &f, b, a, wx, ws, cs, sl);
        }
        let slots = &self.slots[..];
        let blocks = self
            .a
            .chunks_mut(t * d)
            .zip(self.rep.chunks_mut(t * d))
            .zip(self.wsum.chunks_mut(t))
            .zip(self.div.chunks_mut(t));
        for (b, (((a, wx), ws), cs)) in blocks.enumerate() {
            block_finish(d, np, g, xt, (slots, true), b, a, wx, ws, cs);
        }
    }

    /// The Gaussian path: `g = Σ_j k_ij f_j`, `K_i = Σ_j k_ij`, and `Σ_{i,j} k_ij r²_ij` in
    /// per-block parts (see [`PairScratch::div`]).
    fn gauss_pass(&mut self, p: f64, r2: Option<&[f64]>, x: &[f64]) {
        let hp = 0.5 * p;
        if !self.geo.per_tile {
            self.gauss_rounds(hp, r2, x);
            return;
        }
        let (d, n, np, g, lay) = (self.d, self.n, self.np, self.geo, self.lay);
        let t = g.t;
        let store = r2;
        let f = Feats {
            x,
            dist: &self.dist,
            xt: &self.xt,
            st: &self.st,
            xp: &self.xp,
            sp: &self.sp,
            dp: self.dp,
        };
        #[cfg(feature = "rayon")]
        if pass_in_parallel(n) {
            use rayon::prelude::*;
            let region = g.region();
            // Row blocks c and nb − 1 − c form one task: phase 1 of block b has nb − b tiles
            // (symmetric engine) and phase 2 adds b slots, so every pair has the same work and
            // the ⌈nb/2⌉ tasks split evenly between threads (no straggling heavy block).
            let h = g.nb.div_ceil(2);
            let (a0, a1) = self.a.split_at_mut(h * t * d);
            let (k0, k1) = self.wsum.split_at_mut(h * t);
            let (r0, r1) = self.div.split_at_mut(h * t);
            let (s0, s1) = self.slots.split_at_mut(h * region);
            let lo = a0
                .par_chunks_mut(t * d)
                .zip(k0.par_chunks_mut(t))
                .zip(r0.par_chunks_mut(t))
                .zip(s0.par_chunks_mut(region));
            let hi = a1
                .par_chunks_mut(t * d)
                .zip(k1.par_chunks_mut(t))
                .zip(r1.par_chunks_mut(t))
                .zip(s1.par_chunks_mut(region))
                .enumerate()
                .rev()
                .map(Some)
                .chain(rayon::iter::once(None));
            lo.zip(hi)
                .enumerate()
                .for_each(|(b, ((((ga, ks), rs), sl), other))| {
                    gauss_block(d, lay, g, &f, hp, store, b, ga, ks, rs, (sl, false));
                    if let Some((q, (((ga, ks), rs), sl))) = other {
                        gauss_block(d, lay, g, &f, hp, store, h + q, ga, ks, rs, (sl, false));
                    }
                });
            let slots = &self.slots[..];
            let (a0, a1) = self.a.split_at_mut(h * t * d);
            let (k0, k1) = self.wsum.split_at_mut(h * t);
            let lo = a0.par_chunks_mut(t * d).zip(k0.par_chunks_mut(t));
            let hi = a1
                .par_chunks_mut(t * d)
                .zip(k1.par_chunks_mut(t))
                .enumerate()
                .rev()
                .map(Some)
                .chain(rayon::iter::once(None));
            lo.zip(hi).enumerate().for_each(|(b, ((ga, ks), other))| {
                gauss_finish(d, g, slots, false, b, ga, ks);
                if let Some((q, (ga, ks))) = other {
                    gauss_finish(d, g, slots, false, h + q, ga, ks);
                }
            });
            return;
        }
        let _ = (n, np);
        let blocks = self
            .a
            .chunks_mut(t * d)
            .zip(self.wsum.chunks_mut(t))
            .zip(self.div.chunks_mut(t));
        for (b, ((ga, ks), rs)) in blocks.enumerate() {
            gauss_block(
                d,
                lay,
                g,
                &f,
                hp,
                store,
                b,
                ga,
                ks,
                rs,
                (&mut self.slots, true),
            );
        }
        let slots = &self.slots[..];
        let blocks = self.a.chunks_mut(t * d).zip(self.wsum.chunks_mut(t));
        for (b, (ga, ks)) in blocks.enumerate() {
            gauss_finish(d, g, slots, true, b, ga, ks);
        }
    }

    /// The Gaussian path when per-tile slots would be too many (large `n`): each unordered
    /// pair of blocks still evaluated once, in rounds. The blocks form `ng` groups of up to
    /// [`rounds_group`] consecutive blocks; round `r` runs the group pairs `(G, H)`, `G ≤ H`,
    /// with `G + H ≡ r (mod ng)`. That is a perfect matching of the groups (every group in
    /// exactly one pair; the group with `2G ≡ r` paired with itself), so the tasks of a round
    /// touch disjoint accumulators and run in parallel, and over the `ng` rounds every pair of
    /// blocks comes exactly once. A task runs its tiles `(I, J)` (`I ≤ J` within one group)
    /// row block by row block, the row side in this thread's 8-lane buffer (reduced and added
    /// to block `I`'s sums at the end of the row) and the column sides added to blocks `J`'s
    /// coordinate-major sums; a group of blocks keeps these warm in cache (whereas one block
    /// pair per task re-reads a block's 40 KB of lanes from memory at every tile: measured no
    /// faster than evaluating every tile twice at n = 100 000). Every block receives its
    /// contributions in an order fixed by `n` (round, then tile order inside the task), so
    /// results do not depend on the thread count. A last pass per block adds its column side
    /// to its row side, as [`gauss_finish`] does. Memory: `(2d + 2)t + 8` doubles per block
    /// ([`rounds_region`]), O(nd), against `nb(nb − 1)(d + 1)t` for per-tile slots.
    fn gauss_rounds(&mut self, hp: f64, store: Option<&[f64]>, x: &[f64]) {
        let (d, lay, g) = (self.d, self.lay, self.geo);
        let (t, nb) = (g.t, g.nb);
        // (Out of `self` while the features borrow it; put back below.)
        let mut rounds = std::mem::take(&mut self.rounds);
        let f = self.feats(x);
        let pass = GaussRounds {
            d,
            lay,
            g,
            f: &f,
            hp,
            store,
        };
        let rb = pass.shape().1;
        let parallel = self.rounds_in_parallel();
        run_rounds(&pass, nb, fresh_regions(&mut rounds, nb * rb), parallel);
        let regions = &rounds[..nb * rb];
        let finish = |(((ga, ks), rs), reg): RoundOut<'_>| round_finish(d, t, reg, ga, ks, rs);
        #[cfg(feature = "rayon")]
        if parallel {
            use rayon::prelude::*;
            self.a
                .par_chunks_mut(t * d)
                .zip(self.wsum.par_chunks_mut(t))
                .zip(self.div.par_chunks_mut(t))
                .zip(regions.par_chunks(rb))
                .for_each(finish);
            self.rounds = rounds;
            return;
        }
        self.a
            .chunks_mut(t * d)
            .zip(self.wsum.chunks_mut(t))
            .zip(self.div.chunks_mut(t))
            .zip(regions.chunks(rb))
            .for_each(finish);
        self.rounds = rounds;
    }

    /// The general radial path at large `n`: the round-robin engine of
    /// [`PairScratch::gauss_rounds`] with the `(k, w, c)` sums of [`block_tiles`] (a block's
    /// region: its row sides, then its column sides; `(4d + 4)t` doubles), then per block the
    /// column sides added to the row sides and `rep`, `div` formed as in [`block_finish`].
    fn radial_rounds<K: Kernel + Sync>(&mut self, kernel: &K, x: &[f64]) {
        let (d, n, np, lay, g) = (self.d, self.n, self.np, self.lay, self.geo);
        let (t, nb) = (g.t, g.nb);
        // (Out of `self` while the features borrow it; put back below.)
        let mut rounds = std::mem::take(&mut self.rounds);
        let f = self.feats(x);
        let pass = RadialRounds {
            kernel,
            d,
            n,
            lay,
            g,
            f: &f,
        };
        let rb = pass.shape().1;
        let parallel = self.rounds_in_parallel();
        run_rounds(&pass, nb, fresh_regions(&mut rounds, nb * rb), parallel);
        let (regions, xt) = (&rounds[..nb * rb], &self.xt[..]);
        let sl = g.slot_len();
        let finish = |(b, ((((a, wx), ws), cs), reg)): (usize, RadialOut<'_>)| {
            let tj = ws.len();
            let (row, col) = reg.split_at(sl);
            a.copy_from_slice(&row[..tj * d]);
            wx.copy_from_slice(&row[t * d..][..tj * d]);
            ws.copy_from_slice(&row[2 * t * d..][..tj]);
            cs.copy_from_slice(&row[2 * t * d + t..][..tj]);
            add_col_sides(d, t, col, a, wx, ws, cs);
            radial_outputs(d, np, b * t, xt, wx, ws, cs);
        };
        #[cfg(feature = "rayon")]
        if parallel {
            use rayon::prelude::*;
            self.a
                .par_chunks_mut(t * d)
                .zip(self.rep.par_chunks_mut(t * d))
                .zip(self.wsum.par_chunks_mut(t))
                .zip(self.div.par_chunks_mut(t))
                .zip(regions.par_chunks(rb))
                .enumerate()
                .for_each(finish);
            self.rounds = rounds;
            return;
        }
        self.a
            .chunks_mut(t * d)
            .zip(self.rep.chunks_mut(t * d))
            .zip(self.wsum.chunks_mut(t))
            .zip(self.div.chunks_mut(t))
            .zip(regions.chunks(rb))
            .enumerate()
            .for_each(finish);
        self.rounds = rounds;
    }

    /// The engine's particle features for the particles `x` of this pass.
    fn feats<'a>(&'a self, x: &'a [f64]) -> Feats<'a> {
        Feats {
            x,
            dist: &self.dist,
            xt: &self.xt,
            st: &self.st,
            xp: &self.xp,
            sp: &self.sp,
            dp: self.dp,
        }
    }

    /// `true` if the round-robin engine runs its tasks on the pool (see [`pass_in_parallel`]).
    fn rounds_in_parallel(&self) -> bool {
        #[cfg(feature = "rayon")]
        {
            pass_in_parallel(self.n)
        }
        #[cfg(not(feature = "rayon"))]
        {
            false
        }
    }

    /// The Gaussian path for small `n` ([`TileLayout::packed`]), untiled over the packed
    /// upper triangle: each pair once, `k = exp(−hp·r²)` for all of them in one vectorised
    /// loop, then row by row (`i` increasing) the row side (`Σ_{j>i}` into `i`) and the
    /// column side (`k_ij` times particle `i`'s features into every `j > i`). Every entry of
    /// particle `i` is summed in a fixed order: its diagonal term, the rows `j < i` in
    /// increasing `j`, then its own row.
    fn gauss_packed(&mut self, p: f64, r2: Option<&[f64]>) {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let (d, n, np) = (self.d, self.n, self.np);
                let m = n * n.saturating_sub(1) / 2;
                // With the 8 padding slots (finite values; masked below).
                let r2: &[f64] = match r2 {
                    Some(r) => &r[..m + 8],
                    None => {
                        self.dist.packed(&mut self.pr2);
                        &self.pr2[..m + 8]
                    }
                };
                let hp = 0.5 * p;
                let kv = &mut self.pk[..m + 8];
                for (k, r) in kv.iter_mut().zip(r2) {
                    *k = crate::fastmath::exp_nonpos(-hp * r);
                }
                let kv = &self.pk[..m + 8];
                // Coordinate-major features and accumulators with `ns ≥ n + 8` per coordinate (the
                // last chunk of a row may reach 7 past `n`; its kernel values are zero there). The
                // diagonal (k_ii = 1, r²_ii = 0) starts the sums: K_i = 1, R_i = 0, g_i = f_i.
                let (ns, wide) = (self.ns, self.wide);
                let (ft, acc) = self.pbuf.split_at_mut(d * ns);
                let (kc, rest) = acc.split_at_mut(ns);
                let (rc, gc) = rest.split_at_mut(ns);
                for l in 0..d {
                    ft[l * ns..][..n].copy_from_slice(&self.st[l * np..][..n]);
                }
                gc.copy_from_slice(ft);
                kc[..n].fill(1.0);
                rc[..n].fill(0.0);
                for i in 0..n.saturating_sub(1) {
                    let off = packed_row(n, i);
                    let len = n - 1 - i;
                    let (kr, rr) = (
                        &kv[off..][..len.div_ceil(8) * 8],
                        &r2[off..][..len.div_ceil(8) * 8],
                    );
                    let args = PackedRow {
                        len,
                        kr,
                        rr,
                        i,
                        ns,
                        ft,
                    };
                    // (`d ≤ PACKED_MAX_D ≤ 4`: all features in one pass.)
                    match d {
                        1 => args.run::<1>(wide, kc, rc, gc),
                        2 => args.run::<2>(wide, kc, rc, gc),
                        3 => args.run::<3>(wide, kc, rc, gc),
                        _ => args.run::<4>(wide, kc, rc, gc),
                    }
                }
                self.wsum[..n].copy_from_slice(&kc[..n]);
                self.div[..n].copy_from_slice(&rc[..n]);
                for i in 0..n {
                    for l in 0..d {
                        self.a[i * d + l] = gc[l * ns + i];
                    }
                }
            },
        )
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

    /// `φ_i = (a_i + rep_i)/n`; Gaussian path: `φ_i = (g_i + p·x_i·K_i)/n` (centred `x`;
    /// `x` the particles of the pass).
    pub(crate) fn phi_into(&self, x: &[f64], phi: &mut [f64]) {
        self.phi_range(0, x, phi);
    }

    /// [`phi_into`](Self::phi_into) for the particles `i0, i0 + 1, …` whose directions `phi`
    /// holds and whose positions `x` holds (`d` entries each): the same values, so chunks of
    /// particles can be done apart. The centred positions are formed here as in
    /// [`prepare`](Self::prepare) (`x − mean`, same bits), read particle by particle instead
    /// of across the coordinate-major copies.
    pub(crate) fn phi_range(&self, i0: usize, x: &[f64], phi: &mut [f64]) {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let inv = 1.0 / self.n as f64;
                let d = self.d;
                let a = &self.a[i0 * d..][..phi.len()];
                if let Some(p) = self.gauss {
                    let rows = phi.chunks_exact_mut(d).zip(a.chunks_exact(d));
                    for (i, ((ph, g), xi)) in (i0..).zip(rows.zip(x.chunks_exact(d))) {
                        let pk = p * self.wsum[i];
                        for (((ph, g), xv), m) in ph.iter_mut().zip(g).zip(xi).zip(&self.mean) {
                            *ph = fmadd(pk, xv - m, *g) * inv;
                        }
                    }
                    return;
                }
                let rep = &self.rep[i0 * d..][..phi.len()];
                for ((p, a), r) in phi.iter_mut().zip(a).zip(rep) {
                    *p = (a + r) * inv;
                }
            },
        )
    }

    /// The V-statistic `KSD² = n⁻² Σ_{i,j} k_π(x_i, x_j)` and the U-statistic (diagonal terms
    /// removed), summed over chunks of [`KSD_CHUNK`] particles in order: chunk `c`'s part is
    /// [`ksd_terms`](Self::ksd_terms) of its particles, so a caller that evaluates the chunks
    /// elsewhere (in parallel, see `Svgd`) and adds them in the same order gets the same bits.
    ///
    /// Gaussian path (`k = exp(−p r²/2)`, `f = s − p·x`): `Σ_{i,j} k_π = Σ_i [f_iᵀg_i +
    /// K_i(‖s_i‖² − ‖f_i‖² + d·p) − p²R_i/2]`, from `Σ_j k_ij s_iᵀ(x_j − x_i)` rewritten with
    /// `k_ij = k_ji` and `2x_iᵀx_j = ‖x_i‖² + ‖x_j‖² − r²_ij` (see the module docs for the
    /// rounding); only `Σ_i R_i` enters, so `div` may hold any split of it (per particle or per
    /// row block).
    pub(crate) fn ksd<K: Kernel>(&mut self, kernel: &K, x: &[f64], s: &[f64]) -> (f64, f64) {
        let d = self.d;
        let mut grad = std::mem::take(&mut self.grad);
        let (mut v, mut diag) = (0.0, 0.0);
        for (c, (xc, sc)) in x
            .chunks(KSD_CHUNK * d)
            .zip(s.chunks(KSD_CHUNK * d))
            .enumerate()
        {
            let (a, b) = self.ksd_terms(kernel, c * KSD_CHUNK, xc, sc, &mut grad);
            v += a;
            diag += b;
        }
        self.grad = grad;
        ksd_statistics(self.n, v, diag)
    }

    /// For the particles `i0, i0 + 1, …` (positions `x`, scores `s`, `d` entries each): the sum
    /// of their rows `Σ_j k_π(x_i, x_j)` and of their diagonal terms `k_π(x_i, x_i)`. `grad`
    /// is scratch of length `d` (general kernels only).
    pub(crate) fn ksd_terms<K: Kernel>(
        &self,
        kernel: &K,
        i0: usize,
        x: &[f64],
        s: &[f64],
        grad: &mut [f64],
    ) -> (f64, f64) {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let d = self.d;
                let (mut rows, mut diag) = (0.0, 0.0);
                if let Some(p) = self.gauss {
                    let dpf = d as f64 * p;
                    for (i, (si, xi)) in (i0..).zip(s.chunks_exact(d).zip(x.chunks_exact(d))) {
                        let g = &self.a[i * d..][..d];
                        let (mut fg, mut ss, mut ff) = (0.0, 0.0, 0.0);
                        for l in 0..d {
                            // The feature of `prepare` (same operations, same bits).
                            let f = si[l] - p * (xi[l] - self.mean[l]);
                            fg = fmadd(f, g[l], fg);
                            ss = fmadd(si[l], si[l], ss);
                            ff = fmadd(f, f, ff);
                        }
                        rows += fg + self.wsum[i] * ((ss - ff) + dpf) - 0.5 * p * p * self.div[i];
                        // k(x, x) = 1, ∇ₓk(x, x) = 0, ∇ₓ·∇ᵧk(x, x) = d·p.
                        diag += ss + dpf;
                    }
                    return (rows, diag);
                }
                for ((i, si), xi) in (i0..).zip(s.chunks_exact(d)).zip(x.chunks_exact(d)) {
                    let (a, r) = (&self.a[i * d..][..d], &self.rep[i * d..][..d]);
                    let sa: f64 = si.iter().zip(a).map(|(x, y)| x * y).sum();
                    let sr: f64 = si.iter().zip(r).map(|(x, y)| x * y).sum();
                    rows += sa + 2.0 * sr + self.div[i];
                    let k = kernel.value_grad_x(xi, xi, grad);
                    let s2: f64 = si.iter().map(|v| v * v).sum();
                    let sg: f64 = si.iter().zip(grad.iter()).map(|(a, b)| a * b).sum();
                    diag += s2 * k + 2.0 * sg + kernel.div_grad(xi, xi);
                }
                (rows, diag)
            },
        )
    }
}

/// Particles per part of the KSD sums ([`PairScratch::ksd`]): a fixed split, so the sums do
/// not depend on how the parts are scheduled.
pub(crate) const KSD_CHUNK: usize = 16;

/// `(V, U)` from the totals of [`PairScratch::ksd_terms`] over all `n` particles: `V = rows/n²`,
/// `U = (rows − diag)/(n(n − 1))` (NaN for `n < 2`).
pub(crate) fn ksd_statistics(n: usize, rows: f64, diag: f64) -> (f64, f64) {
    let nf = n as f64;
    let u = if n < 2 {
        f64::NAN
    } else {
        (rows - diag) / (nf * (nf - 1.0))
    };
    (rows / (nf * nf), u)
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

/// One row `i` of the small-n Gaussian path over the packed upper triangle: kernel values
/// `kr` and squared distances `rr` of the pairs `(i, j)`, `j = i+1 … n−1`, all `D ≤ 4`
/// features of the coordinate-major `ft` (stride `ns`).
struct PackedRow<'a> {
    /// Pairs in the row; `kr`, `rr` are padded to whole chunks (finite values past `len`).
    len: usize,
    kr: &'a [f64],
    rr: &'a [f64],
    i: usize,
    ns: usize,
    ft: &'a [f64],
}

impl PackedRow<'_> {
    /// Row side into particle `i` (`Σ_j k`, `Σ_j k r²`, `Σ_j k f_j`), column side into
    /// every `j > i` (`k`, `k r²`, `k f_i`), eight pairs at a time; the last, partial chunk
    /// through zero-padded copies (zero kernel values: nothing added past `n`).
    ///
    /// `wide`: the 8-lane arrays as they are (for [`wide_regs`] targets), else the same lanes
    /// as pairs of explicit 4-lane vectors ([`PackedRow::run_n`]); the same bits either way.
    #[inline(always)]
    fn run<const D: usize>(&self, wide: bool, kc: &mut [f64], rc: &mut [f64], gc: &mut [f64]) {
        if wide {
            self.run_w::<D>(kc, rc, gc);
        } else {
            self.run_n::<D>(kc, rc, gc);
        }
    }

    /// [`PackedRow::run`] on 16 registers of 256 bits: every 8-lane sum as two explicit 4-lane
    /// vectors (the array form was partly left scalar by LLVM, with spills). Lane for lane
    /// the same operations as [`PackedRow::run_w`].
    #[inline(always)]
    fn run_n<const D: usize>(&self, kc: &mut [f64], rc: &mut [f64], gc: &mut [f64]) {
        let (i, ns) = (self.i, self.ns);
        let fi: [f64x4; D] = std::array::from_fn(|q| f64x4::splat(self.ft[q * ns + i]));
        let (mut sk, mut sr) = (V8::ZERO, V8::ZERO);
        let mut sg = [V8::ZERO; D];
        let (len, whole) = (self.len, self.len / 8 * 8);
        let mut acc = (&mut sk, &mut sr, &mut sg);
        let mut j0 = i + 1;
        for c in (0..whole).step_by(8) {
            self.chunk_n::<D>(V8::load(self.kr, c), c, j0, &fi, &mut acc, (kc, rc, gc));
            j0 += 8;
        }
        if whole < len {
            // Kernel values past the row set to zero (a lane select, no partial copies).
            let rem = len - whole;
            let k0 = c8(self.kr, whole);
            let k: [f64; 8] = std::array::from_fn(|t| if t < rem { k0[t] } else { 0.0 });
            self.chunk_n::<D>(V8::load(&k, 0), whole, j0, &fi, &mut acc, (kc, rc, gc));
        }
        kc[i] += hsum8(&sk.to_array());
        rc[i] += hsum8(&sr.to_array());
        for q in 0..D {
            gc[q * ns + i] += hsum8(&sg[q].to_array());
        }
    }

    /// Eight pairs `(i, j0 … j0+7)` of [`PackedRow::run_n`] (kernel values `k`, at offset `c`
    /// of the row): row sums into `acc`, column sides into `kc`, `rc`, `gc` at `j0…`.
    #[inline(always)]
    #[allow(clippy::type_complexity)]
    fn chunk_n<const D: usize>(
        &self,
        k: V8,
        c: usize,
        j0: usize,
        fi: &[f64x4; D],
        (sk, sr, sg): &mut (&mut V8, &mut V8, &mut [V8; D]),
        (kc, rc, gc): (&mut [f64], &mut [f64], &mut [f64]),
    ) {
        let r = V8::load(self.rr, c);
        **sk = sk.add(k);
        V8::load(kc, j0).add(k).store(kc, j0);
        **sr = k.mul_add(r, **sr);
        k.mul_add(r, V8::load(rc, j0)).store(rc, j0);
        for q in 0..D {
            let o = q * self.ns + j0;
            sg[q] = k.mul_add(V8::load(self.ft, o), sg[q]);
            let g = V8::load(gc, o);
            V8(fma4(fi[q], k.0, g.0), fma4(fi[q], k.1, g.1)).store(gc, o);
        }
    }

    /// [`PackedRow::run`] with 8-lane arrays (vectorised by LLVM; one register each on
    /// AVX-512).
    #[inline(always)]
    fn run_w<const D: usize>(&self, kc: &mut [f64], rc: &mut [f64], gc: &mut [f64]) {
        let (i, ns) = (self.i, self.ns);
        let fi: [f64; D] = std::array::from_fn(|q| self.ft[q * ns + i]);
        let z = [0.0_f64; 8];
        let (mut sk, mut sr) = (z, z);
        let mut sg = [z; D];
        let (len, whole) = (self.len, self.len / 8 * 8);
        let mut j0 = i + 1;
        for c in (0..whole).step_by(8) {
            packed_chunk::<D>(
                c8(self.kr, c),
                c8(self.rr, c),
                j0,
                self.ft,
                ns,
                &fi,
                (&mut sk, &mut sr, &mut sg),
                (kc, rc, gc),
            );
            j0 += 8;
        }
        if whole < len {
            // Kernel values past the row set to zero (a lane select, no partial copies).
            let rem = len - whole;
            let k0 = c8(self.kr, whole);
            let k: [f64; 8] = std::array::from_fn(|t| if t < rem { k0[t] } else { 0.0 });
            packed_chunk::<D>(
                &k,
                c8(self.rr, whole),
                j0,
                self.ft,
                ns,
                &fi,
                (&mut sk, &mut sr, &mut sg),
                (kc, rc, gc),
            );
        }
        kc[i] += hsum8(&sk);
        rc[i] += hsum8(&sr);
        for q in 0..D {
            gc[q * ns + i] += hsum8(&sg[q]);
        }
    }
}

/// Eight pairs `(i, j0 … j0+7)` of [`PackedRow::run`]: row sums into `sk`, `sr`, `sg`,
/// column sides into `kc`, `rc`, `gc` at `j0…`.
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn packed_chunk<const D: usize>(
    k: &[f64; 8],
    r: &[f64; 8],
    j0: usize,
    ft: &[f64],
    ns: usize,
    fi: &[f64; D],
    (sk, sr, sg): (&mut [f64; 8], &mut [f64; 8], &mut [[f64; 8]; D]),
    (kc, rc, gc): (&mut [f64], &mut [f64], &mut [f64]),
) {
    let kcj: &mut [f64; 8] = (&mut kc[j0..j0 + 8]).try_into().expect("8");
    for t in 0..8 {
        sk[t] += k[t];
        kcj[t] += k[t];
    }
    let rcj: &mut [f64; 8] = (&mut rc[j0..j0 + 8]).try_into().expect("8");
    for t in 0..8 {
        sr[t] = fmadd(k[t], r[t], sr[t]);
        rcj[t] = fmadd(k[t], r[t], rcj[t]);
    }
    for q in 0..D {
        let fj = c8(ft, q * ns + j0);
        fma8(&mut sg[q], k, fj);
        let gj: &mut [f64; 8] = (&mut gc[q * ns + j0..][..8]).try_into().expect("8");
        axpy8(gj, fi[q], k);
    }
}

/// Eight lanes as two explicit 4-lane vectors (lanes 0–3, 4–7), for the kernels of targets
/// without [`wide_regs`].
#[derive(Clone, Copy)]
struct V8(f64x4, f64x4);

impl V8 {
    const ZERO: V8 = V8(f64x4::ZERO, f64x4::ZERO);

    #[inline(always)]
    fn load(s: &[f64], i: usize) -> V8 {
        V8(v4(s, i), v4(s, i + 4))
    }

    #[inline(always)]
    fn store(self, s: &mut [f64], i: usize) {
        s[i..i + 4].copy_from_slice(&self.0.to_array());
        s[i + 4..i + 8].copy_from_slice(&self.1.to_array());
    }

    /// `self·b + c` lane-wise (fused, as `fmadd`).
    #[inline(always)]
    fn mul_add(self, b: V8, c: V8) -> V8 {
        V8(fma4(self.0, b.0, c.0), fma4(self.1, b.1, c.1))
    }

    #[inline(always)]
    fn add(self, b: V8) -> V8 {
        V8(self.0 + b.0, self.1 + b.1)
    }

    #[inline(always)]
    fn to_array(self) -> [f64; 8] {
        let (a, b) = (self.0.to_array(), self.1.to_array());
        [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]
    }
}

/// Horizontal sum of 8 lanes in a fixed order.
#[inline(always)]
fn hsum8(a: &[f64; 8]) -> f64 {
    ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]))
}

/// `acc += a·b` lane-wise.
#[inline(always)]
fn fma8(acc: &mut [f64; 8], a: &[f64; 8], b: &[f64; 8]) {
    for t in 0..8 {
        acc[t] = fmadd(a[t], b[t], acc[t]);
    }
}

/// `out = v` (`add == false`) or `out += v`, lane-wise.
#[inline(always)]
fn store8(out: &mut [f64], v: &[f64; 8], add: bool) {
    let out: &mut [f64; 8] = out.try_into().expect("8 lanes");
    if add {
        for t in 0..8 {
            out[t] += v[t];
        }
    } else {
        *out = *v;
    }
}

/// Row side for 4 rows and 4 features: `out[(ib + r)·d + f + q] += Σ_jj m[ib + r][jj] ·
/// feat[f + q][j0 + jj]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dots_4x4(
    m: &[f64],
    ib: usize,
    tj: usize,
    feat: &[f64],
    np: usize,
    j0: usize,
    f: usize,
    d: usize,
    out: &mut [f64],
) {
    let (r0, r1) = (&m[ib * tj..][..tj], &m[(ib + 1) * tj..][..tj]);
    let (r2, r3) = (&m[(ib + 2) * tj..][..tj], &m[(ib + 3) * tj..][..tj]);
    let f0 = &feat[f * np + j0..][..tj];
    let f1 = &feat[(f + 1) * np + j0..][..tj];
    let f2 = &feat[(f + 2) * np + j0..][..tj];
    let f3 = &feat[(f + 3) * np + j0..][..tj];
    let z = [0.0_f64; 8];
    let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
    let (mut a4, mut a5, mut a6, mut a7) = (z, z, z, z);
    let (mut a8, mut a9, mut a10, mut a11) = (z, z, z, z);
    let (mut a12, mut a13, mut a14, mut a15) = (z, z, z, z);
    for c in (0..tj).step_by(8) {
        let (k0, k1, k2, k3) = (c8(r0, c), c8(r1, c), c8(r2, c), c8(r3, c));
        let (g0, g1, g2, g3) = (c8(f0, c), c8(f1, c), c8(f2, c), c8(f3, c));
        fma8(&mut a0, k0, g0);
        fma8(&mut a1, k0, g1);
        fma8(&mut a2, k0, g2);
        fma8(&mut a3, k0, g3);
        fma8(&mut a4, k1, g0);
        fma8(&mut a5, k1, g1);
        fma8(&mut a6, k1, g2);
        fma8(&mut a7, k1, g3);
        fma8(&mut a8, k2, g0);
        fma8(&mut a9, k2, g1);
        fma8(&mut a10, k2, g2);
        fma8(&mut a11, k2, g3);
        fma8(&mut a12, k3, g0);
        fma8(&mut a13, k3, g1);
        fma8(&mut a14, k3, g2);
        fma8(&mut a15, k3, g3);
    }
    let acc = [
        a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15,
    ];
    for r in 0..4 {
        for q in 0..4 {
            out[(ib + r) * d + f + q] += hsum8(&acc[4 * r + q]);
        }
    }
}

/// Row side for 4 rows and one feature (the remainder of [`dots_4x4`]).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dots_4x1(
    m: &[f64],
    ib: usize,
    tj: usize,
    feat: &[f64],
    np: usize,
    j0: usize,
    f: usize,
    d: usize,
    out: &mut [f64],
) {
    let (r0, r1) = (&m[ib * tj..][..tj], &m[(ib + 1) * tj..][..tj]);
    let (r2, r3) = (&m[(ib + 2) * tj..][..tj], &m[(ib + 3) * tj..][..tj]);
    let f0 = &feat[f * np + j0..][..tj];
    let z = [0.0_f64; 8];
    let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
    for c in (0..tj).step_by(8) {
        let g0 = c8(f0, c);
        fma8(&mut a0, c8(r0, c), g0);
        fma8(&mut a1, c8(r1, c), g0);
        fma8(&mut a2, c8(r2, c), g0);
        fma8(&mut a3, c8(r3, c), g0);
    }
    for (r, a) in [a0, a1, a2, a3].iter().enumerate() {
        out[(ib + r) * d + f] += hsum8(a);
    }
}

/// Row side of a tile: `out[ii·d + l] += Σ_jj m[ii][jj]·feat[l][j0 + jj]` (`ti × d` output).
#[allow(clippy::too_many_arguments)]
fn row_dots(
    m: &[f64],
    ti: usize,
    tj: usize,
    feat: &[f64],
    np: usize,
    j0: usize,
    d: usize,
    out: &mut [f64],
) {
    crate::simd::dispatch(
        #[inline(always)]
        || {
            for ib in (0..ti).step_by(4) {
                let mut f = 0;
                while f + 4 <= d {
                    dots_4x4(m, ib, tj, feat, np, j0, f, d, out);
                    f += 4;
                }
                while f < d {
                    dots_4x1(m, ib, tj, feat, np, j0, f, d, out);
                    f += 1;
                }
            }
        },
    )
}

/// Row side for 4 rows and `Q ≤ 4` features, kept in 8 lanes across tiles (no horizontal
/// sums per tile): `lanes[((ib + r)·d + f + q)·8 + u] += Σ_c m[ib + r][8c + u] · feat[f +
/// q][j0 + 8c + u]` (the accumulators start from the lanes, then the tile's chunks in order).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dots_lanes_q<const Q: usize>(
    m: &[f64],
    ib: usize,
    tj: usize,
    feat: &[f64],
    np: usize,
    j0: usize,
    f: usize,
    d: usize,
    lanes: &mut [f64],
) {
    let (r0, r1) = (&m[ib * tj..][..tj], &m[(ib + 1) * tj..][..tj]);
    let (r2, r3) = (&m[(ib + 2) * tj..][..tj], &m[(ib + 3) * tj..][..tj]);
    let fr: [&[f64]; 4] = std::array::from_fn(|q| &feat[(f + q.min(Q - 1)) * np + j0..][..tj]);
    let o = |r: usize, q: usize| ((ib + r) * d + f + q.min(Q - 1)) * 8;
    let ld = |r: usize, q: usize| *c8(lanes, o(r, q));
    let (mut a0, mut a1, mut a2, mut a3) = (ld(0, 0), ld(0, 1), ld(0, 2), ld(0, 3));
    let (mut a4, mut a5, mut a6, mut a7) = (ld(1, 0), ld(1, 1), ld(1, 2), ld(1, 3));
    let (mut a8, mut a9, mut a10, mut a11) = (ld(2, 0), ld(2, 1), ld(2, 2), ld(2, 3));
    let (mut a12, mut a13, mut a14, mut a15) = (ld(3, 0), ld(3, 1), ld(3, 2), ld(3, 3));
    for c in (0..tj).step_by(8) {
        let (k0, k1, k2, k3) = (c8(r0, c), c8(r1, c), c8(r2, c), c8(r3, c));
        let g0 = c8(fr[0], c);
        fma8(&mut a0, k0, g0);
        fma8(&mut a4, k1, g0);
        fma8(&mut a8, k2, g0);
        fma8(&mut a12, k3, g0);
        if Q > 1 {
            let g1 = c8(fr[1], c);
            fma8(&mut a1, k0, g1);
            fma8(&mut a5, k1, g1);
            fma8(&mut a9, k2, g1);
            fma8(&mut a13, k3, g1);
        }
        if Q > 2 {
            let g2 = c8(fr[2], c);
            fma8(&mut a2, k0, g2);
            fma8(&mut a6, k1, g2);
            fma8(&mut a10, k2, g2);
            fma8(&mut a14, k3, g2);
        }
        if Q > 3 {
            let g3 = c8(fr[3], c);
            fma8(&mut a3, k0, g3);
            fma8(&mut a7, k1, g3);
            fma8(&mut a11, k2, g3);
            fma8(&mut a15, k3, g3);
        }
    }
    let acc = [
        a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15,
    ];
    for r in 0..4 {
        for q in 0..Q {
            lanes[o(r, q)..][..8].copy_from_slice(&acc[4 * r + q]);
        }
    }
}

/// [`dots_lanes_q`] for targets without [`wide_regs`]: 4 rows × `Q ≤ 2` features, the 8 lanes
/// as two halves of 4 one after the other (8 accumulator registers of 256 bits). Each lane is
/// the same sum in the same order as there.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dots_lanes_n<const Q: usize>(
    m: &[f64],
    ib: usize,
    tj: usize,
    feat: &[f64],
    np: usize,
    j0: usize,
    f: usize,
    d: usize,
    lanes: &mut [f64],
) {
    let r: [&[f64]; 4] = std::array::from_fn(|k| &m[(ib + k) * tj..][..tj]);
    let fr: [&[f64]; 2] = std::array::from_fn(|q| &feat[(f + q.min(Q - 1)) * np + j0..][..tj]);
    let o = |k: usize, q: usize, h: usize| ((ib + k) * d + f + q.min(Q - 1)) * 8 + 4 * h;
    for h in 0..2 {
        let ld = |k: usize, q: usize| v4(lanes, o(k, q, h));
        let (mut a0, mut a1, mut a2, mut a3) = (ld(0, 0), ld(1, 0), ld(2, 0), ld(3, 0));
        let (mut b0, mut b1, mut b2, mut b3) = (ld(0, 1), ld(1, 1), ld(2, 1), ld(3, 1));
        for c in (4 * h..tj).step_by(8) {
            let (k0, k1, k2, k3) = (v4(r[0], c), v4(r[1], c), v4(r[2], c), v4(r[3], c));
            let g0 = v4(fr[0], c);
            a0 = fma4(k0, g0, a0);
            a1 = fma4(k1, g0, a1);
            a2 = fma4(k2, g0, a2);
            a3 = fma4(k3, g0, a3);
            if Q > 1 {
                let g1 = v4(fr[1], c);
                b0 = fma4(k0, g1, b0);
                b1 = fma4(k1, g1, b1);
                b2 = fma4(k2, g1, b2);
                b3 = fma4(k3, g1, b3);
            }
        }
        for (k, (a, b)) in [(a0, b0), (a1, b1), (a2, b2), (a3, b3)].iter().enumerate() {
            lanes[o(k, 0, h)..][..4].copy_from_slice(&a.to_array());
            if Q > 1 {
                lanes[o(k, 1, h)..][..4].copy_from_slice(&b.to_array());
            }
        }
    }
}

/// Row side of a tile into 8-lane accumulators (`ti × d × 8`, see [`dots_lanes_q`]); the
/// lanes are reduced by [`hsum8`] after the last tile of the row block.
#[allow(clippy::too_many_arguments)]
fn row_dots_lanes(
    m: &[f64],
    ti: usize,
    tj: usize,
    feat: &[f64],
    np: usize,
    j0: usize,
    d: usize,
    lanes: &mut [f64],
) {
    crate::simd::dispatch(
        #[inline(always)]
        || {
            row_dots_lanes_with(wide_regs(), m, ti, tj, feat, np, j0, d, lanes);
        },
    )
}

/// [`row_dots_lanes`] with the block shape for `wide` registers or not (see [`wide_regs`]).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn row_dots_lanes_with(
    wide: bool,
    m: &[f64],
    ti: usize,
    tj: usize,
    feat: &[f64],
    np: usize,
    j0: usize,
    d: usize,
    lanes: &mut [f64],
) {
    if !wide {
        for ib in (0..ti).step_by(4) {
            let mut f = 0;
            while f + 2 <= d {
                dots_lanes_n::<2>(m, ib, tj, feat, np, j0, f, d, lanes);
                f += 2;
            }
            if f < d {
                dots_lanes_n::<1>(m, ib, tj, feat, np, j0, f, d, lanes);
            }
        }
        return;
    }
    for ib in (0..ti).step_by(4) {
        let mut f = 0;
        while f + 4 <= d {
            dots_lanes_q::<4>(m, ib, tj, feat, np, j0, f, d, lanes);
            f += 4;
        }
        match d - f {
            3 => dots_lanes_q::<3>(m, ib, tj, feat, np, j0, f, d, lanes),
            2 => dots_lanes_q::<2>(m, ib, tj, feat, np, j0, f, d, lanes),
            1 => dots_lanes_q::<1>(m, ib, tj, feat, np, j0, f, d, lanes),
            _ => {}
        }
    }
}

/// Row side for 4 rows and 16 coordinates `f..`, vectorised over coordinates:
/// `out[(ib + r)·d + f + c] += Σ_jj m[ib + r][jj]·feat[j0 + jj][f + c]` with particle-major
/// `feat` (`dp` coordinates per particle, zero padded); eight 8-lane accumulators.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn rows_axpy_16(
    m: &[f64],
    ib: usize,
    tj: usize,
    feat: &[f64],
    dp: usize,
    j0: usize,
    f: usize,
    d: usize,
    out: &mut [f64],
) {
    let (r0, r1) = (&m[ib * tj..][..tj], &m[(ib + 1) * tj..][..tj]);
    let (r2, r3) = (&m[(ib + 2) * tj..][..tj], &m[(ib + 3) * tj..][..tj]);
    let z = [0.0_f64; 8];
    let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
    let (mut a4, mut a5, mut a6, mut a7) = (z, z, z, z);
    for jj in 0..tj {
        let fr = &feat[(j0 + jj) * dp + f..][..16];
        let (g0, g1) = (c8(fr, 0), c8(fr, 8));
        axpy8(&mut a0, r0[jj], g0);
        axpy8(&mut a2, r1[jj], g0);
        axpy8(&mut a4, r2[jj], g0);
        axpy8(&mut a6, r3[jj], g0);
        axpy8(&mut a1, r0[jj], g1);
        axpy8(&mut a3, r1[jj], g1);
        axpy8(&mut a5, r2[jj], g1);
        axpy8(&mut a7, r3[jj], g1);
    }
    let valid = (d - f).min(16);
    for (r, (lo, hi)) in [(a0, a1), (a2, a3), (a4, a5), (a6, a7)].iter().enumerate() {
        let o = &mut out[(ib + r) * d + f..][..valid];
        for (q, v) in o.iter_mut().enumerate() {
            *v += if q < 8 { lo[q] } else { hi[q - 8] };
        }
    }
}

/// Row side for 4 rows × 8 coordinates in eight 4-lane accumulators (one 256-bit register
/// each): every group on targets without [`wide_regs`], and the 8-coordinate groups on all
/// (the same sums in the same order as [`rows_axpy_16`]). (Explicit vectors: LLVM's SLP
/// vectoriser left the array forms of this loop scalar once inlined.)
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn rows_axpy_n(
    m: &[f64],
    ib: usize,
    tj: usize,
    feat: &[f64],
    dp: usize,
    j0: usize,
    f: usize,
    d: usize,
    out: &mut [f64],
) {
    let (r0, r1) = (&m[ib * tj..][..tj], &m[(ib + 1) * tj..][..tj]);
    let (r2, r3) = (&m[(ib + 2) * tj..][..tj], &m[(ib + 3) * tj..][..tj]);
    let z = f64x4::ZERO;
    let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
    let (mut a4, mut a5, mut a6, mut a7) = (z, z, z, z);
    for jj in 0..tj {
        let fr = &feat[(j0 + jj) * dp + f..][..8];
        let (g0, g1) = (v4(fr, 0), v4(fr, 4));
        let (s0, s1) = (f64x4::splat(r0[jj]), f64x4::splat(r1[jj]));
        let (s2, s3) = (f64x4::splat(r2[jj]), f64x4::splat(r3[jj]));
        a0 = fma4(s0, g0, a0);
        a1 = fma4(s0, g1, a1);
        a2 = fma4(s1, g0, a2);
        a3 = fma4(s1, g1, a3);
        a4 = fma4(s2, g0, a4);
        a5 = fma4(s2, g1, a5);
        a6 = fma4(s3, g0, a6);
        a7 = fma4(s3, g1, a7);
    }
    let valid = (d - f).min(8);
    for (r, (lo, hi)) in [(a0, a1), (a2, a3), (a4, a5), (a6, a7)].iter().enumerate() {
        let b = V8(*lo, *hi).to_array();
        for (v, x) in out[(ib + r) * d + f..][..valid].iter_mut().zip(b) {
            *v += x;
        }
    }
}

/// Four lanes `s[i..i + 4]` as a vector.
#[inline(always)]
fn v4(s: &[f64], i: usize) -> f64x4 {
    let a: [f64; 4] = s[i..i + 4].try_into().expect("4 lanes");
    f64x4::new(a)
}

/// Row side of a tile, vectorised over coordinates (see [`rows_axpy_16`]).
#[allow(clippy::too_many_arguments)]
fn row_axpy(
    m: &[f64],
    ti: usize,
    tj: usize,
    feat: &[f64],
    dp: usize,
    j0: usize,
    d: usize,
    out: &mut [f64],
) {
    crate::simd::dispatch(
        #[inline(always)]
        || {
            row_axpy_with(wide_regs(), m, ti, tj, feat, dp, j0, d, out);
        },
    )
}

/// [`row_axpy`] with the block shape for `wide` registers or not (see [`wide_regs`]).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn row_axpy_with(
    wide: bool,
    m: &[f64],
    ti: usize,
    tj: usize,
    feat: &[f64],
    dp: usize,
    j0: usize,
    d: usize,
    out: &mut [f64],
) {
    // Coordinate groups outside, row groups inside: a group's features of the tile's `tj`
    // particles (`tj` × 8 or 16 values) stay in L1 for all row groups, and the tile's kernel
    // rows are read in order (the other order streams every feature group from L2 once per
    // row group; a scratch benchmark of the row side alone at n = 1000, d = 100 on Zen 3:
    // 2.77 against 3.18 ms per step). Each entry of `out` still gets one sum per tile, in the
    // same order (same bits).
    let mut f = 0;
    while f < d {
        let step = if !wide || f + 16 > dp { 8 } else { 16 };
        for ib in (0..ti).step_by(4) {
            if step == 16 {
                rows_axpy_16(m, ib, tj, feat, dp, j0, f, d, out);
            } else {
                // Eight coordinates: the explicit 4-lane form on every target. (The 8-lane
                // array form of a single group is left scalar by LLVM's SLP vectoriser on
                // AVX-512, spilling its 32 accumulators: perf at n = 1000, d = 100 on Zen 4
                // found the last group of 4 coordinates taking a fifth of the row side.)
                rows_axpy_n(m, ib, tj, feat, dp, j0, f, d, out);
            }
        }
        f += step;
    }
}

/// The particle features of the radial engine: coordinate-major centred particles `xt`
/// (general kernels only) and scores or features `st` (`np` per coordinate), and for `d ≥
/// WIDE_D` particle-major copies `xp` (general kernels only), `sp` (`dp` per particle; `dp = 0`
/// otherwise).
struct Feats<'a> {
    /// The particles (`d × n`, column-major) and their distance layouts.
    x: &'a [f64],
    dist: &'a DistPanels,
    xt: &'a [f64],
    st: &'a [f64],
    xp: &'a [f64],
    sp: &'a [f64],
    dp: usize,
}

/// Column side, `Q ≤ 4` features at a time: `out[(f + q)·t + jb + c] = Σ_ii feat[f + q][i0 +
/// ii] · m[ii][jb + c]` for the 16 columns `jb..jb + 16`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn col_axpy_q<const Q: usize>(
    m: &[f64],
    ti: usize,
    tj: usize,
    jb: usize,
    feat: &[f64],
    np: usize,
    i0: usize,
    f: usize,
    t: usize,
    out: &mut [f64],
    add: bool,
) {
    let fr: [&[f64]; Q] = std::array::from_fn(|q| &feat[(f + q) * np + i0..][..ti]);
    let z = [0.0_f64; 8];
    let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
    let (mut a4, mut a5, mut a6, mut a7) = (z, z, z, z);
    // (Indexing four feature rows by `ii`: an iterator over one of them would not help.)
    #[allow(clippy::needless_range_loop)]
    for ii in 0..ti {
        let (k0, k1) = (c8(m, ii * tj + jb), c8(m, ii * tj + jb + 8));
        let s0 = fr[0][ii];
        axpy8(&mut a0, s0, k0);
        axpy8(&mut a1, s0, k1);
        if Q > 1 {
            let s1 = fr[1][ii];
            axpy8(&mut a2, s1, k0);
            axpy8(&mut a3, s1, k1);
        }
        if Q > 2 {
            let s2 = fr[2][ii];
            axpy8(&mut a4, s2, k0);
            axpy8(&mut a5, s2, k1);
        }
        if Q > 3 {
            let s3 = fr[3][ii];
            axpy8(&mut a6, s3, k0);
            axpy8(&mut a7, s3, k1);
        }
    }
    for (q, (lo, hi)) in [(a0, a1), (a2, a3), (a4, a5), (a6, a7)]
        .iter()
        .enumerate()
        .take(Q)
    {
        let o = (f + q) * t + jb;
        store8(&mut out[o..o + 8], lo, add);
        store8(&mut out[o + 8..o + 16], hi, add);
    }
}

/// [`col_axpy_q`] with `Q = 4` features over the 32 columns `jb..jb + 32` (16 accumulators:
/// half the loads per multiply-add). Same sums in the same order.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn col_axpy_4x32(
    m: &[f64],
    ti: usize,
    tj: usize,
    jb: usize,
    feat: &[f64],
    np: usize,
    i0: usize,
    f: usize,
    t: usize,
    out: &mut [f64],
    add: bool,
) {
    let fr: [&[f64]; 4] = std::array::from_fn(|q| &feat[(f + q) * np + i0..][..ti]);
    let z = [0.0_f64; 8];
    let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
    let (mut a4, mut a5, mut a6, mut a7) = (z, z, z, z);
    let (mut a8, mut a9, mut a10, mut a11) = (z, z, z, z);
    let (mut a12, mut a13, mut a14, mut a15) = (z, z, z, z);
    #[allow(clippy::needless_range_loop)]
    for ii in 0..ti {
        let row = &m[ii * tj + jb..][..32];
        let (k0, k1, k2, k3) = (c8(row, 0), c8(row, 8), c8(row, 16), c8(row, 24));
        let s0 = fr[0][ii];
        axpy8(&mut a0, s0, k0);
        axpy8(&mut a1, s0, k1);
        axpy8(&mut a2, s0, k2);
        axpy8(&mut a3, s0, k3);
        let s1 = fr[1][ii];
        axpy8(&mut a4, s1, k0);
        axpy8(&mut a5, s1, k1);
        axpy8(&mut a6, s1, k2);
        axpy8(&mut a7, s1, k3);
        let s2 = fr[2][ii];
        axpy8(&mut a8, s2, k0);
        axpy8(&mut a9, s2, k1);
        axpy8(&mut a10, s2, k2);
        axpy8(&mut a11, s2, k3);
        let s3 = fr[3][ii];
        axpy8(&mut a12, s3, k0);
        axpy8(&mut a13, s3, k1);
        axpy8(&mut a14, s3, k2);
        axpy8(&mut a15, s3, k3);
    }
    let acc = [
        a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15,
    ];
    for q in 0..4 {
        let o = (f + q) * t + jb;
        for c in 0..4 {
            store8(&mut out[o + 8 * c..][..8], &acc[4 * q + c], add);
        }
    }
}

/// Column side of a tile: `out[l·t + jj] = Σ_ii feat[l][i0 + ii]·m[ii][jj]`.
#[allow(clippy::too_many_arguments)]
fn col_axpy(
    m: &[f64],
    ti: usize,
    tj: usize,
    feat: &[f64],
    np: usize,
    i0: usize,
    d: usize,
    t: usize,
    out: &mut [f64],
    add: bool,
) {
    crate::simd::dispatch(
        #[inline(always)]
        || {
            col_axpy_with(wide_regs(), m, ti, tj, feat, np, i0, d, t, out, add);
        },
    )
}

/// [`col_axpy`] with the block shape for `wide` registers or not (see [`wide_regs`]).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn col_axpy_with(
    wide: bool,
    m: &[f64],
    ti: usize,
    tj: usize,
    feat: &[f64],
    np: usize,
    i0: usize,
    d: usize,
    t: usize,
    out: &mut [f64],
    add: bool,
) {
    if !wide {
        // 16 registers of 256 bits: 2 features × 16 columns (8 accumulator registers).
        for jb in (0..tj).step_by(CW) {
            let mut f = 0;
            while f + 2 <= d {
                col_axpy_q::<2>(m, ti, tj, jb, feat, np, i0, f, t, out, add);
                f += 2;
            }
            if f < d {
                col_axpy_q::<1>(m, ti, tj, jb, feat, np, i0, f, t, out, add);
            }
        }
        return;
    }
    for jb in (0..tj).step_by(CW) {
        let mut f = 0;
        if jb % 32 == 0 && jb + 32 <= tj {
            // Pairs of 16-column chunks: the 4-feature groups over 32 columns at once.
            while f + 4 <= d {
                col_axpy_4x32(m, ti, tj, jb, feat, np, i0, f, t, out, add);
                f += 4;
            }
        } else if jb % 32 == 16 {
            // (Covered with the previous chunk, which had 32 columns.)
            f = d / 4 * 4;
        }
        while f + 4 <= d {
            col_axpy_q::<4>(m, ti, tj, jb, feat, np, i0, f, t, out, add);
            f += 4;
        }
        if f + 2 <= d {
            col_axpy_q::<2>(m, ti, tj, jb, feat, np, i0, f, t, out, add);
            f += 2;
        }
        if f < d {
            col_axpy_q::<1>(m, ti, tj, jb, feat, np, i0, f, t, out, add);
        }
    }
}

/// Column sums `out[jj] = Σ_ii m[ii][jj]` (added to `out` if `add`).
fn col_sum(m: &[f64], ti: usize, tj: usize, out: &mut [f64], add: bool) {
    crate::simd::dispatch(
        #[inline(always)]
        || {
            for jb in (0..tj).step_by(CW) {
                let mut acc = [0.0_f64; CW];
                for ii in 0..ti {
                    let kr: &[f64; CW] = m[ii * tj + jb..][..CW].try_into().expect("chunk");
                    for c in 0..CW {
                        acc[c] += kr[c];
                    }
                }
                let (lo, hi) = acc.split_at(8);
                store8(&mut out[jb..][..8], lo.try_into().expect("8 lanes"), add);
                store8(
                    &mut out[jb + 8..][..8],
                    hi.try_into().expect("8 lanes"),
                    add,
                );
            }
        },
    )
}

/// Phase 1 for row block `b`: every tile `(b, J)` (`J ≥ b` if symmetric, all `J` otherwise).
/// Row sides accumulate, in increasing `J`, into the block's `a`, `wx = Σ w x`, `ws = Σ w`,
/// `cs = Σ c`; column sides of tiles `J > b` (symmetric) go to partial slots: the block's own
/// slot per tile, or with `direct` one slot per column block summed in place, as in
/// [`gauss_block`].
#[allow(clippy::too_many_arguments)]
fn block_pass<K: Kernel>(
    kernel: &K,
    d: usize,
    n: usize,
    np: usize,
    g: Geometry,
    f: &Feats,
    b: usize,
    a: &mut [f64],
    wx: &mut [f64],
    ws: &mut [f64],
    cs: &mut [f64],
    slots: (&mut [f64], bool),
) {
    a.fill(0.0);
    wx.fill(0.0);
    ws.fill(0.0);
    cs.fill(0.0);
    TILES.with_borrow_mut(|buf| {
        if buf.len() < 4 * TMAX * TMAX {
            buf.resize(4 * TMAX * TMAX, 0.0);
        }
        let (r2, rest) = buf.split_at_mut(TMAX * TMAX);
        let (kv, rest) = rest.split_at_mut(TMAX * TMAX);
        let (wv, cv) = rest.split_at_mut(TMAX * TMAX);
        block_tiles(
            kernel, d, n, np, g, f, b, a, wx, ws, cs, slots, r2, kv, wv, cv,
        );
    });
}

/// [`block_pass`] with its tile buffers (every entry is written before it is read).
#[allow(clippy::too_many_arguments)]
fn block_tiles<K: Kernel>(
    kernel: &K,
    d: usize,
    n: usize,
    np: usize,
    g: Geometry,
    f: &Feats,
    b: usize,
    a: &mut [f64],
    wx: &mut [f64],
    ws: &mut [f64],
    cs: &mut [f64],
    (slots, direct): (&mut [f64], bool),
    r2: &mut [f64],
    kv: &mut [f64],
    wv: &mut [f64],
    cv: &mut [f64],
) {
    let (xt, st) = (f.xt, f.st);
    let t = g.t;
    let i0 = b * t;
    let ti = ws.len();
    for jblk in b..g.nb {
        let j0 = jblk * t;
        let tj = (np - j0).min(t);
        let len = ti * tj;
        let (r2, kv, wv, cv) = (
            &mut r2[..len],
            &mut kv[..len],
            &mut wv[..len],
            &mut cv[..len],
        );
        f.dist.tile(f.x, b, ti, jblk, tj, r2);
        kernel.radial_block(r2, kv, wv, cv);
        zero_padding(n, (i0, ti), (j0, tj), [&mut *kv, &mut *wv, &mut *cv]);
        if f.dp > 0 {
            row_axpy(kv, ti, tj, f.sp, f.dp, j0, d, a);
            row_axpy(wv, ti, tj, f.xp, f.dp, j0, d, wx);
        } else {
            row_dots(kv, ti, tj, st, np, j0, d, a);
            row_dots(wv, ti, tj, xt, np, j0, d, wx);
        }
        for ii in 0..ti {
            ws[ii] += sum8(&wv[ii * tj..][..tj]);
            cs[ii] += sum8(&cv[ii * tj..][..tj]);
        }
        if jblk > b {
            let (at, add) = if direct {
                (jblk, b > 0)
            } else {
                (jblk - b - 1, false)
            };
            let slot = &mut slots[at * g.slot_len()..][..g.slot_len()];
            let (sa, rest) = slot.split_at_mut(d * t);
            let (sw, rest) = rest.split_at_mut(d * t);
            let (sws, scs) = rest.split_at_mut(t);
            col_axpy(kv, ti, tj, st, np, i0, d, t, sa, add);
            col_axpy(wv, ti, tj, xt, np, i0, d, t, sw, add);
            col_sum(wv, ti, tj, sws, add);
            col_sum(cv, ti, tj, scs, add);
        }
    }
}

/// Phase 2 for block `jblk`: the column-side partials of the tiles `(I, jblk)`, `I < jblk`,
/// summed in increasing `I` (`direct`: already summed in slot `jblk`, see [`block_pass`]) and
/// added to the block's sums, then `rep = Σ w x − x Σ w` and `div = −d Σ w + Σ c`.
#[allow(clippy::too_many_arguments)]
fn block_finish(
    d: usize,
    np: usize,
    g: Geometry,
    xt: &[f64],
    (slots, direct): (&[f64], bool),
    jblk: usize,
    a: &mut [f64],
    wx: &mut [f64],
    ws: &mut [f64],
    cs: &mut [f64],
) {
    if jblk > 0 {
        with_col_sum(slots, direct, g, jblk, g.slot_len(), |acc| {
            add_col_sides(d, g.t, acc, a, wx, ws, cs);
        });
    }
    radial_outputs(d, np, jblk * g.t, xt, wx, ws, cs);
}

/// Adds a block's summed column sides `acc` (the layout of a slot of [`block_tiles`]) to its
/// particle-major sums `a`, `wx = Σ w x`, `ws = Σ w`, `cs = Σ c`.
fn add_col_sides(
    d: usize,
    t: usize,
    acc: &[f64],
    a: &mut [f64],
    wx: &mut [f64],
    ws: &mut [f64],
    cs: &mut [f64],
) {
    for jj in 0..ws.len() {
        for l in 0..d {
            a[jj * d + l] += acc[l * t + jj];
            wx[jj * d + l] += acc[(d + l) * t + jj];
        }
        ws[jj] += acc[2 * d * t + jj];
        cs[jj] += acc[(2 * d + 1) * t + jj];
    }
}

/// The general radial path's outputs of the block starting at particle `j0` from its sums:
/// `rep = Σ w x − x Σ w` (in place of `wx`) and `div = −d Σ w + Σ c` (in place of `cs`).
fn radial_outputs(
    d: usize,
    np: usize,
    j0: usize,
    xt: &[f64],
    wx: &mut [f64],
    ws: &[f64],
    cs: &mut [f64],
) {
    let df = d as f64;
    for jj in 0..ws.len() {
        for l in 0..d {
            wx[jj * d + l] -= ws[jj] * xt[l * np + j0 + jj];
        }
        cs[jj] += -df * ws[jj];
    }
}

/// Gaussian path, one tile: `kv = exp(−hp·r2)` (zero on padding), the row sums `ks[ii] +=
/// Σ_jj kv`, the column sums written to `ck` (or added to it, `add`) if `COLS`, and `rl +=
/// w·Σ_ii (Σ_jj kv·r2)` (8 lanes per row, rows added lane-wise: only the total `Σ k r²` of
/// all pairs enters the KSD, so no per-particle sums of `k r²` are formed).
#[allow(clippy::too_many_arguments)]
fn gauss_tile<const COLS: bool>(
    r2: &[f64],
    kv: &mut [f64],
    (ti, tj, vi, vj): (usize, usize, usize, usize),
    hp: f64,
    ks: &mut [f64],
    (ck, add): (&mut [f64], bool),
    (rl, w): (&mut [f64; 8], f64),
) {
    crate::simd::dispatch(
        #[inline(always)]
        || {
            // Plain loops over whole slices: LLVM's loop vectoriser turns them into full-width code.
            for (k, r) in kv[..vi * tj].iter_mut().zip(&r2[..vi * tj]) {
                *k = crate::fastmath::exp_nonpos(-hp * r);
            }
            if vj < tj {
                for ii in 0..vi {
                    kv[ii * tj + vj..(ii + 1) * tj].fill(0.0);
                }
            }
            // Row sums in 8 lanes per row (the order of `sum8`), column sums lane-wise per 8-column
            // chunk, all in explicit 8-lane arrays.
            let z = [0.0_f64; 8];
            let mut colk = [z; TMAX / 8];
            let mut tr = z;
            let nc = tj / 8;
            for ii in 0..vi {
                let (rrow, krow) = (&r2[ii * tj..][..tj], &kv[ii * tj..][..tj]);
                let (mut sk, mut sr) = (z, z);
                // (Chunk `c` indexes three arrays: an iterator over one of them would not help.)
                #[allow(clippy::needless_range_loop)]
                for c in 0..nc {
                    let (k, r) = (c8(krow, 8 * c), c8(rrow, 8 * c));
                    for t in 0..8 {
                        sk[t] += k[t];
                        sr[t] = fmadd(k[t], r[t], sr[t]);
                    }
                    if COLS {
                        let ck = &mut colk[c];
                        for t in 0..8 {
                            ck[t] += k[t];
                        }
                    }
                }
                ks[ii] += hsum8(&sk);
                for t in 0..8 {
                    tr[t] += sr[t];
                }
            }
            for t in 0..8 {
                rl[t] = fmadd(w, tr[t], rl[t]);
            }
            kv[vi * tj..ti * tj].fill(0.0);
            if COLS {
                for c in 0..nc {
                    store8(&mut ck[8 * c..][..8], &colk[c], add);
                }
            }
        },
    )
}

/// Gaussian path, phase 1 for row block `b` (see [`block_pass`]): row sides accumulate into
/// `ga = Σ_j k f_j`, `ks = Σ_j k`, `rs = Σ_j k r²` in increasing `J`; column sides of tiles
/// `J > b` go to partial slots (`d` features, then `K`). In parallel (`direct == false`,
/// `slots` the block's own region) each tile writes its own slot `J − b − 1`, summed in
/// increasing `I` by [`gauss_finish`]. On one thread (`direct`, `slots` all of them, blocks
/// in increasing `b`) tile `(b, J)` writes slot `J` for `b = 0` and adds to it after: the
/// same sums in the same order, without a slot per tile pair (at n = 1000, d = 100 the
/// per-pair slots are 6 MB written and read back per step) or the summing pass.
#[allow(clippy::too_many_arguments)]
fn gauss_block(
    d: usize,
    lay: TileLayout,
    g: Geometry,
    f: &Feats,
    hp: f64,
    store: Option<&[f64]>,
    b: usize,
    ga: &mut [f64],
    ks: &mut [f64],
    rs: &mut [f64],
    (slots, direct): (&mut [f64], bool),
) {
    ga.fill(0.0);
    ks.fill(0.0);
    rs.fill(0.0);
    let (np, t) = (lay.np, g.t);
    TILES.with_borrow_mut(|buf| {
        let need = 2 * TMAX * TMAX + TMAX * WIDE_D * 8;
        if buf.len() < need {
            buf.resize(need, 0.0);
        }
        let (r2buf, rest) = buf.split_at_mut(TMAX * TMAX);
        let (kvbuf, lanes) = rest.split_at_mut(TMAX * TMAX);
        let i0 = b * t;
        let ti = ks.len();
        let lanes = &mut lanes[..if f.dp > 0 { 0 } else { ti * d * 8 }];
        lanes.fill(0.0);
        let mut rl = [0.0_f64; 8];
        let vi = lay.valid(b);
        for jblk in b..g.nb {
            let j0 = jblk * t;
            let tj = lay.len(jblk);
            let len = ti * tj;
            let r2: &[f64] = match store {
                Some(st) => &st[lay.offset(b, jblk)..][..len],
                None => {
                    f.dist.tile(f.x, b, ti, jblk, tj, &mut r2buf[..len]);
                    &r2buf[..len]
                }
            };
            let kv = &mut kvbuf[..len];
            let vj = lay.valid(jblk);
            let dims = (ti, tj, vi, vj);
            if jblk > b {
                // The tile stands for the pairs (i, j) and (j, i): its `Σ k r²` counts twice.
                let (at, add) = if direct {
                    (jblk, b > 0)
                } else {
                    (jblk - b - 1, false)
                };
                let slot = &mut slots[at * g.slot_len()..][..(d + 1) * t];
                let (sg, sk) = slot.split_at_mut(d * t);
                gauss_tile::<true>(r2, kv, dims, hp, ks, (sk, add), (&mut rl, 2.0));
                col_axpy(kv, ti, tj, f.st, np, i0, d, t, sg, add);
            } else {
                gauss_tile::<false>(r2, kv, dims, hp, ks, (&mut [], false), (&mut rl, 1.0));
            }
            if f.dp > 0 {
                row_axpy(kv, ti, tj, f.sp, f.dp, j0, d, ga);
            } else {
                row_dots_lanes(kv, ti, tj, f.st, np, j0, d, lanes);
            }
        }
        if f.dp == 0 {
            for (o, l) in ga.iter_mut().zip(lanes.chunks_exact(8)) {
                *o = hsum8(l.try_into().expect("8 lanes"));
            }
        }
        // The block's share of `Σ_{i,j} k r²` (see `PairScratch::div`).
        rs[0] = hsum8(&rl);
    });
}

/// One block's outputs `(g, K, R)` and its region, for [`round_finish`].
type RoundOut<'a> = (((&'a mut [f64], &'a mut [f64]), &'a mut [f64]), &'a [f64]);

/// One block's outputs `(a, rep, K, div)` and its region, for the finish of
/// [`PairScratch::radial_rounds`].
type RadialOut<'a> = (
    (
        ((&'a mut [f64], &'a mut [f64]), &'a mut [f64]),
        &'a mut [f64],
    ),
    &'a [f64],
);

/// The first `len` entries of `buf`, zeroed (`buf` grown to `len` at its first use).
fn fresh_regions(buf: &mut Vec<f64>, len: usize) -> &mut [f64] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let regions = &mut buf[..len];
    regions.fill(0.0);
    regions
}

/// One kernel path of the round-robin engine ([`PairScratch::gauss_rounds`],
/// [`PairScratch::radial_rounds`]): what a block's region holds and how one tile adds into it.
trait RoundPass: Sync {
    /// Blocks per group and `f64`s per block region.
    fn shape(&self) -> (usize, usize);
    /// `f64`s of thread-local buffer a task needs (tile buffers, row-side lanes).
    fn buffer(&self) -> usize;
    /// Tile `(bi, bj)`, `bi ≤ bj` (`col`: block `bj` and its region; `None` for the diagonal
    /// tile): the row side into `reg` (or the row-side lanes in `buf`), and off the diagonal
    /// the column side into block `bj`'s region.
    fn tile(&self, bi: usize, reg: &mut [f64], buf: &mut [f64], col: Option<(usize, &mut [f64])>);
    /// Called before and after the tiles of row block `bi` inside a task (`end`): zero, then
    /// fold the row-side lanes of `buf` into `reg`, if the path keeps any.
    fn row(&self, bi: usize, reg: &mut [f64], buf: &mut [f64], end: bool);
}

/// The `nb` rounds of group pairs over `regions` (`nb` block regions, see
/// [`PairScratch::gauss_rounds`]), on the pool (`parallel`) or on this thread.
fn run_rounds<R: RoundPass>(pass: &R, nb: usize, regions: &mut [f64], parallel: bool) {
    let (sb, rb) = pass.shape();
    let ng = nb.div_ceil(sb);
    let unit = sb * rb;
    for r in 0..ng {
        // Groups 0..=r pair as i ↔ r − i; groups r+1..ng as r+1+i ↔ ng−1−i (sum ng + r).
        let (left, right) = regions.split_at_mut(((r + 1) * unit).min(nb * rb));
        let (ml, mr) = (r + 1, ng - r - 1);
        #[cfg(feature = "rayon")]
        if parallel {
            rayon::join(
                || round_segment(pass, left, (0, ml), true),
                || round_segment(pass, right, (r + 1, mr), true),
            );
            continue;
        }
        round_segment(pass, left, (0, ml), parallel);
        round_segment(pass, right, (r + 1, mr), parallel);
    }
}

/// `f64`s of one block's region on the Gaussian path of the round-robin engine: the row side
/// of `g` (`t·d`, particle-major), the row sums `K` (`t`), the column side (`d·t` of `g` then
/// `t` of `K`, coordinate-major), and the 8 lanes of `Σ k r²`.
fn rounds_region(d: usize, t: usize) -> usize {
    (2 * d + 2) * t + 8
}

/// Blocks per group of the round-robin engine, a function of the block count only: up to 8
/// (a task's column-side sums and features then stay in L2), and at least 16 groups where
/// there are 32 blocks or more, so that a round has 8 or more tasks to share between
/// threads.
fn rounds_group(nb: usize) -> usize {
    (nb / 16).clamp(1, 8)
}

/// One round's tasks in a run `seg` of `m` consecutive groups starting at group `g0`: group
/// `g0 + i` with group `g0 + m − 1 − i`, and the middle group with itself if `m` is odd (see
/// [`round_task`]). The tasks touch disjoint regions, so their order (or running them in
/// parallel) changes no sum.
fn round_segment<R: RoundPass>(pass: &R, seg: &mut [f64], (g0, m): (usize, usize), parallel: bool) {
    let (sb, rb) = pass.shape();
    let unit = sb * rb;
    let h = m / 2;
    let (lo, rest) = seg.split_at_mut(h * unit);
    // The middle group may be the last, shorter one.
    let (mid, hi) = rest.split_at_mut(((m % 2) * unit).min(rest.len()));
    if m % 2 == 1 {
        round_task(pass, (g0 + h, mid), None);
    }
    let pair = |(i, (ri, rj)): (usize, (&mut [f64], &mut [f64]))| {
        round_task(pass, (g0 + i, ri), Some((g0 + m - 1 - i, rj)));
    };
    #[cfg(feature = "rayon")]
    if parallel {
        use rayon::prelude::*;
        lo.par_chunks_mut(unit)
            .zip(hi.par_chunks_mut(unit).rev())
            .enumerate()
            .for_each(pair);
        return;
    }
    let _ = parallel;
    lo.chunks_mut(unit)
        .zip(hi.chunks_mut(unit).rev())
        .enumerate()
        .for_each(pair);
}

/// The tiles of group pair `(G, H)` (`other`: group `H > G` and its regions; `None`: `G` with
/// itself, the tiles `(I, J)`, `I ≤ J`, inside it), row block `I` after row block `I`, each
/// row's column blocks `J` in increasing order, with this thread's buffers.
fn round_task<R: RoundPass>(
    pass: &R,
    (gi, ri): (usize, &mut [f64]),
    other: Option<(usize, &mut [f64])>,
) {
    let (sb, rb) = pass.shape();
    TILES.with_borrow_mut(|buf| {
        let need = pass.buffer();
        if buf.len() < need {
            buf.resize(need, 0.0);
        }
        let buf = &mut buf[..need];
        match other {
            Some((gj, rj)) => {
                for (ki, reg_i) in ri.chunks_mut(rb).enumerate() {
                    let bi = gi * sb + ki;
                    pass.row(bi, reg_i, buf, false);
                    for (kj, reg_j) in rj.chunks_mut(rb).enumerate() {
                        pass.tile(bi, reg_i, buf, Some((gj * sb + kj, reg_j)));
                    }
                    pass.row(bi, reg_i, buf, true);
                }
            }
            None => {
                for ki in 0..ri.len() / rb {
                    let bi = gi * sb + ki;
                    let (head, tail) = ri.split_at_mut((ki + 1) * rb);
                    let reg_i = &mut head[ki * rb..];
                    pass.row(bi, reg_i, buf, false);
                    pass.tile(bi, reg_i, buf, None);
                    for (kj, reg_j) in tail.chunks_mut(rb).enumerate() {
                        pass.tile(bi, reg_i, buf, Some((bi + 1 + kj, reg_j)));
                    }
                    pass.row(bi, reg_i, buf, true);
                }
            }
        }
    });
}

/// The Gaussian path's [`RoundPass`]: regions of [`rounds_region`]; buffers `r²`, kernel
/// values, and for `d < WIDE_D` the row side's 8 lanes per (particle, feature) of the
/// current row block (reduced by [`hsum8`] into its region after its last tile in the task).
struct GaussRounds<'a> {
    d: usize,
    lay: TileLayout,
    g: Geometry,
    f: &'a Feats<'a>,
    hp: f64,
    store: Option<&'a [f64]>,
}

impl GaussRounds<'_> {
    fn lanes(&self) -> usize {
        if self.f.dp > 0 {
            0
        } else {
            self.g.t * self.d * 8
        }
    }
}

impl RoundPass for GaussRounds<'_> {
    fn shape(&self) -> (usize, usize) {
        (self.g.group, rounds_region(self.d, self.g.t))
    }
    fn buffer(&self) -> usize {
        2 * TMAX * TMAX + self.lanes()
    }
    fn row(&self, bi: usize, reg: &mut [f64], buf: &mut [f64], end: bool) {
        let lanes = &mut buf[2 * TMAX * TMAX..];
        if !end {
            lanes.fill(0.0);
        } else if !lanes.is_empty() {
            let ti = self.lay.len(bi);
            for (o, l) in reg[..ti * self.d].iter_mut().zip(lanes.chunks_exact(8)) {
                *o += hsum8(l.try_into().expect("8 lanes"));
            }
        }
    }
    /// The kernel values, the row side (as [`gauss_block`] does for one tile) and, off the
    /// diagonal, the column side added into block `bj`'s region (the tile then stands for
    /// both `(i, j)` and `(j, i)`, so its `Σ k r²` counts twice).
    fn tile(&self, bi: usize, reg: &mut [f64], buf: &mut [f64], col: Option<(usize, &mut [f64])>) {
        let (d, lay, f) = (self.d, self.lay, self.f);
        let (np, t) = (lay.np, self.g.t);
        let bj = col.as_ref().map_or(bi, |cj| cj.0);
        let (ti, tj) = (lay.len(bi), lay.len(bj));
        let dims = (ti, tj, lay.valid(bi), lay.valid(bj));
        let (rowsum, rest) = reg.split_at_mut(t * d);
        let (ksr, rest) = rest.split_at_mut(t);
        let rlanes: &mut [f64; 8] = (&mut rest[(d + 1) * t..][..8]).try_into().expect("8 lanes");
        let ks = &mut ksr[..ti];
        let (r2buf, rest) = buf.split_at_mut(TMAX * TMAX);
        let (kvbuf, lanes) = rest.split_at_mut(TMAX * TMAX);
        let len = ti * tj;
        let r2: &[f64] = match self.store {
            Some(st) => &st[lay.offset(bi, bj)..][..len],
            None => {
                f.dist.tile(f.x, bi, ti, bj, tj, &mut r2buf[..len]);
                &r2buf[..len]
            }
        };
        let kv = &mut kvbuf[..len];
        match col {
            Some((_, rj)) => {
                let cj = &mut rj[(d + 1) * t..][..(d + 1) * t];
                let (sg, sk) = cj.split_at_mut(d * t);
                gauss_tile::<true>(r2, kv, dims, self.hp, ks, (sk, true), (rlanes, 2.0));
                col_axpy(kv, ti, tj, f.st, np, bi * t, d, t, sg, true);
            }
            None => {
                let rl = (rlanes, 1.0);
                gauss_tile::<false>(r2, kv, dims, self.hp, ks, (&mut [], false), rl);
            }
        }
        if f.dp > 0 {
            row_axpy(kv, ti, tj, f.sp, f.dp, bj * t, d, &mut rowsum[..ti * d]);
        } else {
            row_dots_lanes(kv, ti, tj, f.st, np, bj * t, d, &mut lanes[..ti * d * 8]);
        }
    }
}

/// The general radial path's [`RoundPass`]: a block's region holds its row sides (`a`, `Σ w
/// x`: `t·d` each, particle-major; `Σ w`, `Σ c`: `t` each) and then its column sides in the
/// layout of a slot of [`block_tiles`] (`(2d + 2)·t`); buffers `r²`, `k`, `w`, `c`.
struct RadialRounds<'a, K> {
    kernel: &'a K,
    d: usize,
    n: usize,
    lay: TileLayout,
    g: Geometry,
    f: &'a Feats<'a>,
}

impl<K: Kernel + Sync> RoundPass for RadialRounds<'_, K> {
    fn shape(&self) -> (usize, usize) {
        (self.g.group, 2 * self.g.slot_len())
    }
    fn buffer(&self) -> usize {
        4 * TMAX * TMAX
    }
    fn row(&self, _: usize, _: &mut [f64], _: &mut [f64], _: bool) {}
    /// The kernel's `(k, w, c)` on the tile, the row sides into block `bi`'s region and, off
    /// the diagonal, the column sides into block `bj`'s (as [`block_tiles`] does).
    fn tile(&self, bi: usize, reg: &mut [f64], buf: &mut [f64], col: Option<(usize, &mut [f64])>) {
        let (d, n, lay, f) = (self.d, self.n, self.lay, self.f);
        let (np, t) = (lay.np, self.g.t);
        let bj = col.as_ref().map_or(bi, |cj| cj.0);
        let (ti, tj) = (lay.len(bi), lay.len(bj));
        let len = ti * tj;
        let (r2, rest) = buf.split_at_mut(TMAX * TMAX);
        let (kv, rest) = rest.split_at_mut(TMAX * TMAX);
        let (wv, cv) = rest.split_at_mut(TMAX * TMAX);
        let (r2, kv, wv, cv) = (
            &mut r2[..len],
            &mut kv[..len],
            &mut wv[..len],
            &mut cv[..len],
        );
        f.dist.tile(f.x, bi, ti, bj, tj, r2);
        self.kernel.radial_block(r2, kv, wv, cv);
        let (i0, j0) = (bi * t, bj * t);
        zero_padding(n, (i0, ti), (j0, tj), [&mut *kv, &mut *wv, &mut *cv]);
        let (a, rest) = reg.split_at_mut(t * d);
        let (wx, rest) = rest.split_at_mut(t * d);
        let (ws, rest) = rest.split_at_mut(t);
        let cs = &mut rest[..t];
        let (a, wx) = (&mut a[..ti * d], &mut wx[..ti * d]);
        if f.dp > 0 {
            row_axpy(kv, ti, tj, f.sp, f.dp, j0, d, a);
            row_axpy(wv, ti, tj, f.xp, f.dp, j0, d, wx);
        } else {
            row_dots(kv, ti, tj, f.st, np, j0, d, a);
            row_dots(wv, ti, tj, f.xt, np, j0, d, wx);
        }
        for ii in 0..ti {
            ws[ii] += sum8(&wv[ii * tj..][..tj]);
            cs[ii] += sum8(&cv[ii * tj..][..tj]);
        }
        if let Some((_, rj)) = col {
            let slot = &mut rj[self.g.slot_len()..];
            let (sa, rest) = slot.split_at_mut(d * t);
            let (sw, rest) = rest.split_at_mut(d * t);
            let (sws, scs) = rest.split_at_mut(t);
            col_axpy(kv, ti, tj, f.st, np, i0, d, t, sa, true);
            col_axpy(wv, ti, tj, f.xt, np, i0, d, t, sw, true);
            col_sum(wv, ti, tj, sws, true);
            col_sum(cv, ti, tj, scs, true);
        }
    }
}

/// Zeroes the entries of a tile's value arrays (`ti × tj`, rows of particles `i0..`, columns
/// of particles `j0..`) that involve padding particles (index `≥ n`): they contribute nothing.
fn zero_padding(
    n: usize,
    (i0, ti): (usize, usize),
    (j0, tj): (usize, usize),
    vals: [&mut [f64]; 3],
) {
    let (vi, vj) = (n.saturating_sub(i0).min(ti), n.saturating_sub(j0).min(tj));
    if vi < ti || vj < tj {
        for v in vals {
            for ii in 0..ti {
                let from = if ii < vi { vj } else { 0 };
                v[ii * tj..(ii + 1) * tj][from..].fill(0.0);
            }
        }
    }
}

/// Round-robin engine, block after the last round: `ga` and `ks` its row sums plus its column
/// side (added as [`gauss_finish`] adds summed slots), and its share of `Σ k r²` in `rs[0]`
/// (see [`PairScratch::div`]).
fn round_finish(d: usize, t: usize, reg: &[f64], ga: &mut [f64], ks: &mut [f64], rs: &mut [f64]) {
    let ti = ks.len();
    let (row, rest) = reg.split_at(t * d);
    let (ksr, rest) = rest.split_at(t);
    let (col, rl) = rest.split_at((d + 1) * t);
    ga.copy_from_slice(&row[..ti * d]);
    ks.copy_from_slice(&ksr[..ti]);
    add_transposed(d, t, ti, col, ga, ks);
    rs.fill(0.0);
    rs[0] = hsum8(rl.try_into().expect("8 lanes"));
}

/// Gaussian path, phase 2 for block `jblk`: the column-side partials of the tiles `(I,
/// jblk)`, `I < jblk`, summed in increasing `I` in their coordinate-major layout (contiguous,
/// full-width adds; `direct`: already summed in slot `jblk`, see [`gauss_block`]), then added
/// to the block's particle-major sums in one transposing pass.
#[allow(clippy::too_many_arguments)]
fn gauss_finish(
    d: usize,
    g: Geometry,
    slots: &[f64],
    direct: bool,
    jblk: usize,
    ga: &mut [f64],
    ks: &mut [f64],
) {
    if jblk == 0 {
        return;
    }
    let (t, tj) = (g.t, ks.len());
    with_col_sum(slots, direct, g, jblk, (d + 1) * t, |acc| {
        add_transposed(d, t, tj, acc, ga, ks);
    });
}

/// Hands `f` the first `len` entries of block `jblk`'s column-side partials (`jblk ≥ 1`)
/// summed in increasing `I`: with `direct`, slot `jblk`, summed in place already (see
/// [`gauss_block`]); otherwise the per-tile slots `(I, jblk)`, `I < jblk`, of the blocks'
/// regions, summed into this thread's tile buffer.
fn with_col_sum(
    slots: &[f64],
    direct: bool,
    g: Geometry,
    jblk: usize,
    len: usize,
    f: impl FnOnce(&[f64]),
) {
    if direct {
        f(&slots[jblk * g.slot_len()..][..len]);
        return;
    }
    let region = (g.nb - 1) * g.slot_len();
    let slot = |i: usize| &slots[i * region + (jblk - i - 1) * g.slot_len()..][..len];
    TILES.with_borrow_mut(|buf| {
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        let acc = &mut buf[..len];
        acc.copy_from_slice(slot(0));
        for i in 1..jblk {
            for (a, v) in acc.iter_mut().zip(slot(i)) {
                *a += v;
            }
        }
        f(acc);
    });
}

/// `ga[jj·d + l] += acc[l·t + jj]` and `ks[jj] += acc[d·t + jj]` for the `tj` particles of a
/// block: a summed column-side partial into the block's particle-major sums.
fn add_transposed(d: usize, t: usize, tj: usize, acc: &[f64], ga: &mut [f64], ks: &mut [f64]) {
    for jj in 0..tj {
        for l in 0..d {
            ga[jj * d + l] += acc[l * t + jj];
        }
        ks[jj] += acc[d * t + jj];
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
    p.compute(kernel, x.as_slice(), s.as_slice(), None);
    p.phi_into(x.as_slice(), phi.as_mut_slice());
    let (v, u) = p.ksd(kernel, x.as_slice(), s.as_slice());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Imq, Rbf};

    /// The two register-block shapes ([`wide_regs`] or not) of the row-side and
    /// column-side kernels give the same bits (each entry is the same sum in the same order),
    /// and both equal the direct sum to rounding. Odd `d` (tails of 8-lane and 2-feature
    /// groups), tiles with `ti < tj` (`tj = 32`: the wide column side's 32-column blocks;
    /// `tj = 48`: those and a lone 16-column chunk), and accumulation into non-zero `out`.
    #[test]
    fn block_shapes_give_the_same_bits() {
        for (d, (ti, tj)) in [1_usize, 3, 16, 21, 100]
            .into_iter()
            .flat_map(|d| [(d, (8, 32)), (d, (4, 48))])
        {
            let np = 64;
            let (i0, j0) = (4, 16);
            let xt: Vec<f64> = (0..d * np)
                .map(|k| (k * 37 % 101) as f64 / 50.0 - 1.0)
                .collect();
            // A tile of kernel-like weights.
            let m: Vec<f64> = (0..ti * tj).map(|k| (-(k as f64) / 97.0).exp()).collect();
            // Row side: particle-major features, `dp` padded to a multiple of 8 with zeros.
            let dp = d.div_ceil(8) * 8;
            let mut feat = vec![0.0; np * dp];
            for j in 0..np {
                for l in 0..d {
                    feat[j * dp + l] = xt[l * np + j] * 0.5 + l as f64 * 0.01;
                }
            }
            let start: Vec<f64> = (0..ti * d).map(|k| k as f64 * 0.125).collect();
            let (mut o_n, mut o_w) = (start.clone(), start.clone());
            row_axpy_with(false, &m, ti, tj, &feat, dp, j0, d, &mut o_n);
            row_axpy_with(true, &m, ti, tj, &feat, dp, j0, d, &mut o_w);
            for ii in 0..ti {
                for l in 0..d {
                    let sum: f64 = (0..tj)
                        .map(|jj| m[ii * tj + jj] * feat[(j0 + jj) * dp + l])
                        .sum();
                    let (a, b) = (o_n[ii * d + l], o_w[ii * d + l]);
                    assert_eq!(a.to_bits(), b.to_bits(), "row d={d} ({ii},{l})");
                    let direct = start[ii * d + l] + sum;
                    assert!(
                        (a - direct).abs() <= 1e-13 * direct.abs().max(1.0),
                        "row d={d}"
                    );
                }
            }
            // Row side into 8-lane accumulators (coordinate-major features), from non-zero lanes.
            let lstart: Vec<f64> = (0..ti * d * 8).map(|k| (k % 13) as f64 * 0.25).collect();
            let (mut l_n, mut l_w) = (lstart.clone(), lstart.clone());
            row_dots_lanes_with(false, &m, ti, tj, &xt, np, j0, d, &mut l_n);
            row_dots_lanes_with(true, &m, ti, tj, &xt, np, j0, d, &mut l_w);
            for ii in 0..ti {
                for l in 0..d {
                    for lane in 0..8 {
                        let k = (ii * d + l) * 8 + lane;
                        let sum: f64 = (lane..tj)
                            .step_by(8)
                            .map(|jj| m[ii * tj + jj] * xt[l * np + j0 + jj])
                            .sum();
                        let direct = lstart[k] + sum;
                        assert_eq!(l_n[k].to_bits(), l_w[k].to_bits(), "lanes d={d} ({ii},{l})");
                        assert!((l_n[k] - direct).abs() <= 1e-13 * direct.abs().max(1.0));
                    }
                }
            }
            // Column side: coordinate-major features, output `d` rows of `t` slots.
            let t = tj;
            let (mut c_n, mut c_w) = (vec![0.0; d * t], vec![0.0; d * t]);
            col_axpy_with(false, &m, ti, tj, &xt, np, i0, d, t, &mut c_n, false);
            col_axpy_with(true, &m, ti, tj, &xt, np, i0, d, t, &mut c_w, false);
            for l in 0..d {
                for jj in 0..tj {
                    let direct: f64 = (0..ti)
                        .map(|ii| xt[l * np + i0 + ii] * m[ii * tj + jj])
                        .sum();
                    let (a, b) = (c_n[l * t + jj], c_w[l * t + jj]);
                    assert_eq!(a.to_bits(), b.to_bits(), "col d={d} ({l},{jj})");
                    assert!(
                        (a - direct).abs() <= 1e-13 * direct.abs().max(1.0),
                        "col d={d}"
                    );
                }
            }
        }
    }

    /// Deterministic, irregular particles and scores (no RNG needed).
    fn data(d: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
        let x = (0..d * n)
            .map(|t| ((t * 7919) % 1013) as f64 / 337.0 - 1.2)
            .collect();
        let s = (0..d * n)
            .map(|t| ((t * 104_729) % 997) as f64 / 401.0 - 1.1)
            .collect();
        (x, s)
    }

    /// The parallel preparation (coordinate-major copies, features, particle-major copies) writes exactly
    /// the buffers of the serial one, for the Gaussian features and the general ones, wide
    /// and narrow `d`, on a 2-thread pool (fails on a row or block offset in the split); and
    /// the serial one writes what its definition says (fails on a wrong centring, a feature
    /// from the uncentred copy, a particle-major copy of the wrong buffer).
    #[test]
    fn preparation_matches_its_definition_serial_and_parallel() {
        for (d, n) in [(20, 300), (3, 257), (17, 129)] {
            let (x, s) = data(d, n);
            for p in [Some(0.7), None] {
                let mut a = PairScratch::new(d, n);
                a.prepare(&x, &s, p, false);
                let np = a.np;
                for l in 0..d {
                    let mean = (0..n).map(|i| x[i * d + l]).sum::<f64>() / n as f64;
                    for i in 0..n {
                        let xc = x[i * d + l] - mean;
                        let f = p.map_or(s[i * d + l], |p| s[i * d + l] - p * xc);
                        if p.is_none() {
                            assert!((a.xt[l * np + i] - xc).abs() <= 1e-15);
                        }
                        assert!((a.st[l * np + i] - f).abs() <= 1e-14);
                        if a.dp > 0 {
                            assert_eq!(a.sp[i * a.dp + l], a.st[l * np + i]);
                            if p.is_none() {
                                assert_eq!(a.xp[i * a.dp + l], a.xt[l * np + i]);
                            }
                        }
                    }
                }
                #[cfg(feature = "rayon")]
                {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(2)
                        .build()
                        .unwrap();
                    let mut b = PairScratch::new(d, n);
                    pool.install(|| b.prepare(&x, &s, p, true));
                    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    for (name, u, v) in [
                        ("xt", &a.xt, &b.xt),
                        ("st", &a.st, &b.st),
                        ("sp", &a.sp, &b.sp),
                        ("xp", &a.xp, &b.xp),
                    ] {
                        assert_eq!(bits(u), bits(v), "{name}, d = {d}, n = {n}, p = {p:?}");
                    }
                }
            }
        }
    }

    /// The Gaussian path reading the median's tile store gives bit-for-bit the results of
    /// recomputing the distances (same layout, same distance kernels), and the general
    /// radial path (a, rep, div) agrees with it to rounding: φ to 1e-13 of its scale.
    #[test]
    fn reused_distances_and_gaussian_path() {
        use crate::kernel::{Bandwidth, FitKernel, MedianScratch};
        for (d, n) in [(3, 301), (20, 203), (2, 100), (1, 5)] {
            let (x, s) = data(d, n);
            let xm = DMatrix::from_column_slice(d, n, &x);
            let mut med = MedianScratch::new(n);
            let k = Bandwidth::Median.fit(&xm, &mut med).unwrap();
            let store = med.fresh_store(n, d).expect("fresh store");
            let mut p1 = PairScratch::new(d, n);
            p1.compute(&k, &x, &s, Some(store));
            let mut p2 = PairScratch::new(d, n);
            p2.compute(&k, &x, &s, None);
            let (mut phi1, mut phi2) = (vec![0.0; d * n], vec![0.0; d * n]);
            p1.phi_into(&x, &mut phi1);
            p2.phi_into(&x, &mut phi2);
            assert_eq!(phi1, phi2);
            assert_eq!(
                p1.ksd(&k, &x, &s).0.to_bits(),
                p2.ksd(&k, &x, &s).0.to_bits()
            );
            med.mark_stale();
            assert!(med.fresh_store(n, d).is_none());
            // The general radial path on the same kernel (a wrapper without the hook).
            struct Plain(crate::kernel::Rbf);
            impl Kernel for Plain {
                fn value(&self, x: &[f64], y: &[f64]) -> f64 {
                    self.0.value(x, y)
                }
                fn value_grad_x(&self, x: &[f64], y: &[f64], g: &mut [f64]) -> f64 {
                    self.0.value_grad_x(x, y, g)
                }
                fn div_grad(&self, x: &[f64], y: &[f64]) -> f64 {
                    self.0.div_grad(x, y)
                }
                fn is_radial(&self) -> bool {
                    true
                }
                fn radial_block(&self, r2: &[f64], k: &mut [f64], w: &mut [f64], c: &mut [f64]) {
                    self.0.radial_block(r2, k, w, c)
                }
            }
            let mut p3 = PairScratch::new(d, n);
            p3.compute(&Plain(k), &x, &s, None);
            assert!(p3.gauss.is_none() && p1.gauss.is_some());
            let mut phi3 = vec![0.0; d * n];
            p3.phi_into(&x, &mut phi3);
            let scale = phi3.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
            let err = phi1
                .iter()
                .zip(&phi3)
                .fold(0.0_f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(err <= 1e-13 * scale, "d={d} n={n}: {err:e} vs {scale:e}");
            let (v1, u1) = p1.ksd(&k, &x, &s);
            let (v3, u3) = p3.ksd(&Plain(k), &x, &s);
            assert!((v1 - v3).abs() <= 1e-12 * v3.abs(), "{v1} vs {v3}");
            assert!((u1 - u3).abs() <= 1e-12 * v3.abs(), "{u1} vs {u3}");
        }
    }

    /// The small-n Gaussian path (packed upper triangle, untiled) agrees with the tiled one
    /// to rounding: `g`, `K`, `R` to 1e-13 of their largest |value|, for d = 1 … 4, n with
    /// and without a partial last chunk, n = 1 and the largest packed n; and it is used
    /// exactly up to `PACKED_MAX_N` particles in dimension `PACKED_MAX_D`.
    #[test]
    fn packed_gaussian_path_equals_tiled() {
        let lay = TileLayout::new;
        assert!(lay(PACKED_MAX_N, PACKED_MAX_D).packed);
        assert!(!lay(PACKED_MAX_N + 1, 1).packed && !lay(2, PACKED_MAX_D + 1).packed);
        let rbf = Rbf::new(0.8).unwrap();
        for (d, n) in [
            (2, 100),
            (1, 5),
            (1, 1),
            (4, 64),
            (3, 33),
            (3, PACKED_MAX_N),
        ] {
            let (x, s) = data(d, n);
            let mut p1 = PairScratch::new(d, n);
            assert!(p1.lay.packed);
            p1.compute(&rbf, &x, &s, None);
            let mut p2 = PairScratch::new(d, n);
            p2.lay.packed = false;
            p2.compute(&rbf, &x, &s, None);
            // R: the total Σ k r² (per particle on the packed path, per block when tiled).
            let (r1, r2) = (
                [p1.div[..n].iter().sum::<f64>()],
                [p2.div[..n].iter().sum::<f64>()],
            );
            for (u, v) in [
                (&p1.a[..d * n], &p2.a[..d * n]),
                (&p1.wsum[..n], &p2.wsum[..n]),
                (&r1[..], &r2[..]),
            ] {
                let scale = v.iter().fold(0.0_f64, |m, z| m.max(z.abs()));
                let err = u
                    .iter()
                    .zip(v)
                    .fold(0.0_f64, |m, (a, b)| m.max((a - b).abs()));
                assert!(err <= 1e-13 * scale, "d={d} n={n}: {err:e} vs {scale:e}");
            }
            assert!(p1.wsum[..n].iter().all(|&k| k >= 1.0));
            // The other register shape of the small-n kernel: the same bits.
            let mut p3 = PairScratch::new(d, n);
            p3.wide = !p3.wide;
            p3.compute(&rbf, &x, &s, None);
            for (u, v) in [
                (&p1.a[..d * n], &p3.a[..d * n]),
                (&p1.wsum[..n], &p3.wsum[..n]),
                (&p1.div[..n], &p3.div[..n]),
            ] {
                assert!(u.iter().zip(v).all(|(a, b)| a.to_bits() == b.to_bits()));
            }
        }
    }

    /// The round-robin engine of large n (one and three blocks per group) agrees with the
    /// per-tile slots (checked against naive sums by the proptests in `tests/stein.rs`) to
    /// rounding: 1e-12 relative to the largest |sum|, for narrow (dot form) and wide
    /// (d ≥ WIDE_D, coordinate-vectorised) rows, with padding (n ≢ 0 mod 16).
    #[test]
    fn rounds_engine_equals_per_tile_slots() {
        // Odd and even block counts (5, 7, 8), short last blocks, both row forms.
        for (d, n) in [(3, 301), (20, 203), (1, 207), (5, 500), (17, 450)] {
            let (x, s) = data(d, n);
            let run = |(per_tile, group), kernel: &dyn Fn(&mut PairScratch)| {
                let mut p = PairScratch::new(d, n);
                p.geo.per_tile = per_tile;
                p.geo.group = group;
                p.slots = vec![0.0; p.geo.nb * p.geo.region()];
                // Twice: the second pass must not see the first one's sums.
                kernel(&mut p);
                kernel(&mut p);
                // Gaussian path: (g, K, R) with R the total Σ k r² (its per-block parts
                // differ between the engines); general: (a, rep, div).
                let (second, third) = if p.gauss.is_some() {
                    (p.wsum[..n].to_vec(), vec![p.div[..n].iter().sum::<f64>()])
                } else {
                    (p.rep[..d * n].to_vec(), p.div[..n].to_vec())
                };
                (p.a[..d * n].to_vec(), second, third)
            };
            let rbf = Rbf::new(0.9).unwrap();
            let imq = Imq::new(1.0, -0.5).unwrap();
            let kernels: [&dyn Fn(&mut PairScratch); 2] = [
                &|p: &mut PairScratch| p.compute(&rbf, &x, &s, None),
                &|p: &mut PairScratch| p.compute(&imq, &x, &s, None),
            ];
            // Rounds of one block or 3 blocks per group (a short last group for 5, 7 and 8
            // blocks).
            let engines = [(false, 1), (false, 3)];
            for (k, e) in kernels.into_iter().flat_map(|k| engines.map(|e| (k, e))) {
                let (a0, r0, v0) = run((true, 1), k);
                let (a1, r1, v1) = run(e, k);
                for (u, v) in [(a0, a1), (r0, r1), (v0, v1)] {
                    let scale = u.iter().fold(0.0_f64, |m, z| m.max(z.abs()));
                    let err = u
                        .iter()
                        .zip(&v)
                        .fold(0.0_f64, |m, (a, b)| m.max((a - b).abs()));
                    assert!(err <= 1e-12 * scale, "d={d} n={n}: {err:e} vs {scale:e}");
                    assert!(scale > 0.0);
                }
            }
        }
    }

    /// The round-robin engine gives the same bits on 1, 2 and 3 threads (every block receives
    /// its tiles in an order fixed by `n` whoever runs them), Gaussian and IMQ kernels, for
    /// the narrow and the wide row
    /// forms, at block counts that are odd (11) and even (12), with groups of 1 and 2 blocks
    /// (odd and even group counts).
    #[cfg(feature = "rayon")]
    #[test]
    fn rounds_engine_bit_identical_across_thread_counts() {
        for (d, n, group) in [(4, 700, 1), (18, 760, 1), (4, 700, 2), (18, 760, 2)] {
            let (x, s) = data(d, n);
            let rbf = Rbf::new(1.3).unwrap();
            let imq = Imq::new(1.0, -0.5).unwrap();
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| {
                    let mut p = PairScratch::new(d, n);
                    (p.geo.per_tile, p.geo.group) = (false, group);
                    p.compute(&rbf, &x, &s, None);
                    let all = p.a.iter().chain(&p.wsum).chain(&p.div);
                    let mut bits: Vec<u64> = all.map(|v| v.to_bits()).collect();
                    p.compute(&imq, &x, &s, None);
                    let all = p.a.iter().chain(&p.rep).chain(&p.wsum).chain(&p.div);
                    bits.extend(all.map(|v| v.to_bits()));
                    bits
                })
            };
            let one = run(1);
            assert_eq!(one, run(2), "d = {d}, n = {n}, group = {group}");
            assert_eq!(one, run(3), "d = {d}, n = {n}, group = {group}");
        }
    }
}
