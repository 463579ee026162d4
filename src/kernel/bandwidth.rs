//! Bandwidth rules (median heuristics) that fit an [`Rbf`] kernel to particles.
//!
//! Every rule is stated in the peers' parameterisation `k = exp(−r²/ℓ)` and mapped exactly onto
//! ours, `k = exp(−r²/(2σ²))`, by `σ² = ℓ/2`. Medians follow `numpy.median`: for an even count
//! the two middle values are averaged (of `r²` or of `r`, as the rule says). They are exact
//! order statistics of the `m = n(n−1)/2` upper-triangle squared distances — never a full
//! sort. The distances are computed in the SVGD pair engine's tile layout (the packed upper
//! triangle for `n ≤ 192`, `d ≤ 4`; reused by the
//! pair pass of the same step); thresholds around the previous fit's median are counted during
//! that pass and the few values between them collected, so the selection runs on about 1 % of
//! the values (a deterministic sample gives the thresholds when there is no usable previous
//! fit; every bracket is checked by counts, so the result is exact either way). The full
//! `n × n` medians (zero diagonal included) are read off the upper triangle: sorted, the full
//! list is `n` zeros followed by every upper-triangle value twice.
//!
//! **Large n.** Above [`EXACT_MEDIAN_MAX_PAIRS`] pairs (n > 2048) the `m` distances do not fit a
//! reasonable buffer; the median is then taken over a fixed, deterministic subsample of
//! [`SUBSAMPLE_PAIRS`] pairs `(i, j)`, `i ≠ j`, drawn by a SplitMix64 hash of the pair counter
//! (no RNG involved, the same pairs every step), at the same quantile of the upper triangle as
//! the exact rule. Its rank error is that of a sample quantile, `≈ 0.5/√S` (`S` = pairs); at
//! n = 2000 the tests measure it against the exact median.

use nalgebra::DMatrix;

use super::{FitKernel, Rbf};
use crate::error::{Error, Result};
use crate::fastmath::c8;
use crate::stein::dists::DistPanels;
#[cfg(feature = "rayon")]
use crate::stein::pairwise::PARALLEL_MIN_N;
use crate::stein::pairwise::TileLayout;

/// Sample size (at most) of the exact selection's thresholds.
const SAMPLE_MAX: usize = 2048;
/// Number of thresholds of the exact selection.
const NT: usize = 6;
/// Threshold positions, in standard errors of the sample quantile around the wanted rank.
const Z: [f64; NT] = [-6.0, -2.0, -0.7, 0.7, 2.0, 6.0];

/// `cnt[k] += #{v ∈ row : bits(v) < tt[k]}` for `k < nt` (eight lanes at a time, all
/// thresholds per load).
/// The thresholds are distances (`+0` ≤ `t` ≤ `+∞`, not NaN), where the order of bit patterns
/// is the order of the values; a NaN distance compares false in both.
fn count_lt(row: &[f64], tt: &[f64; NT], nt: usize, cnt: &mut [usize; NT]) {
    crate::simd::dispatch(
        #[inline(always)]
        || {
            // Counts as f64 (exact below 2⁵³): a compare and a masked add per lane. (Separate
            // accumulators, not an array: LLVM then keeps them in registers.)
            #[inline(always)]
            fn lt8(acc: &mut [f64; 8], v: &[f64; 8], t: f64) {
                for q in 0..8 {
                    acc[q] += if v[q] < t { 1.0 } else { 0.0 };
                }
            }
            let z = [0.0_f64; 8];
            let (mut a0, mut a1, mut a2, mut a3, mut a4, mut a5) = (z, z, z, z, z, z);
            let chunks = row.chunks_exact(8);
            let rest = chunks.remainder();
            let six = nt > 4;
            if nt == 1 {
                // One threshold (the bracket counted during the distance pass).
                for ch in chunks {
                    lt8(&mut a0, c8(ch, 0), tt[0]);
                }
                cnt[0] +=
                    a0.iter().sum::<f64>() as usize + rest.iter().filter(|&&v| v < tt[0]).count();
                return;
            }
            for ch in chunks {
                let v = c8(ch, 0);
                lt8(&mut a0, v, tt[0]);
                lt8(&mut a1, v, tt[1]);
                lt8(&mut a2, v, tt[2]);
                lt8(&mut a3, v, tt[3]);
                if six {
                    lt8(&mut a4, v, tt[4]);
                    lt8(&mut a5, v, tt[5]);
                }
            }
            for (k, a) in [a0, a1, a2, a3, a4, a5].iter().enumerate().take(nt) {
                cnt[k] +=
                    a.iter().sum::<f64>() as usize + rest.iter().filter(|&&v| v < tt[k]).count();
            }
        },
    )
}

/// Appends to `out` the bit patterns `v` of `row` with `lo ≤ v < hi` (`hi = None`: no upper
/// bound). A vectorised pre-test per eight values skips the chunks without candidates.
#[inline(never)]
fn gather_row(row: &[f64], lo: u64, hi: Option<u64>, out: &mut Vec<u64>) {
    let Some(hi) = hi else {
        out.extend(row.iter().map(|x| x.to_bits()).filter(|&x| x >= lo));
        return;
    };
    let keep = |v: u64| v >= lo && v < hi;
    // For distances (≥ +0, or NaN) with `lo`, `hi` distances, the comparisons as f64 equal
    // those of the bit patterns (NaN fails both, as NaN bits lie above `hi`).
    let (lo_f, hi_f) = (f64::from_bits(lo), f64::from_bits(hi));
    let chunks = row.chunks_exact(8);
    let rest = chunks.remainder();
    for ch in chunks {
        let v = c8(ch, 0);
        let mut hit = false;
        for &x in v {
            hit |= (x >= lo_f) & (x < hi_f);
        }
        if hit {
            // Branch free inside a chunk with candidates (about one value in ten is one, at
            // unpredictable places): every value is written, and the end advances past the
            // kept ones only. Same values in the same order as a filter.
            let mut buf = [0_u64; 8];
            let mut k = 0;
            for &x in v {
                let b = x.to_bits();
                buf[k] = b;
                k += usize::from(keep(b));
            }
            out.extend_from_slice(&buf[..k]);
        }
    }
    out.extend(rest.iter().map(|x| x.to_bits()).filter(|&x| keep(x)));
}

/// The order statistics of the previous exact fit (to bracket the next one).
#[derive(Clone, Copy, Debug)]
struct Prev {
    n: usize,
    v0: f64,
    v1: f64,
    /// Relative half-width of the next bracket.
    width: f64,
}

/// A range `[lo, hi)` of bit patterns holding the wanted ranks `k0 ≤ k1`: `below` stored
/// values lie under `lo`, `above` under `hi` (`hi = None`: no bound, `above = m`).
#[derive(Clone, Copy, Debug)]
struct Bracket {
    lo: u64,
    below: usize,
    hi: Option<u64>,
    above: usize,
}

impl Bracket {
    /// Intersects with the tightest bracket that thresholds `th` (ascending) with counts
    /// `counts` (values below each) give for ranks `k0 ≤ k1`.
    fn narrow(&mut self, th: &[u64], counts: &[usize], k0: usize, k1: usize) {
        for (&t, &c) in th.iter().zip(counts) {
            if c <= k0 && c >= self.below {
                (self.lo, self.below) = (t, c);
            }
            if c > k1 && c < self.above {
                (self.hi, self.above) = (Some(t), c);
            }
        }
    }
}

/// Calls `f` on every run of upper-triangle distances (pairs `i < j` of real particles) in
/// chunk `c` of a tile store.
fn visit_rows(lay: TileLayout, c: usize, chunk: &[f64], mut f: impl FnMut(&[f64])) {
    if lay.packed {
        // One chunk: exactly the m upper-triangle values.
        f(&chunk[..lay.n * (lay.n - 1) / 2]);
        return;
    }
    for i in lay.chunk_rows(c) {
        for j in i..lay.nb {
            let tile = &chunk[lay.local_offset(i, j)..][..lay.len(i) * lay.len(j)];
            visit_tile(lay, i, j, tile, &mut f);
        }
    }
}

/// Calls `f` on every run of upper-triangle distances of tile `(i, j)`.
fn visit_tile(lay: TileLayout, i: usize, j: usize, tile: &[f64], f: &mut impl FnMut(&[f64])) {
    let (vi, vj, tj) = (lay.valid(i), lay.valid(j), lay.len(j));
    if i != j && vj == tj {
        f(&tile[..vi * tj]);
        return;
    }
    for ii in 0..vi {
        let from = if i == j { ii + 1 } else { 0 };
        if from < vj {
            f(&tile[ii * tj + from..ii * tj + vj]);
        }
    }
}

/// Fills chunk `c` of a tile store with squared distances and, with a bracket `th = [lo,
/// hi)`, counts the upper-triangle values below `lo` (returned in slot 0) and collects into
/// `out` those in `[lo, hi)` while each tile is still in cache.
fn fill_chunk(
    lay: TileLayout,
    x: &[f64],
    dist: &DistPanels,
    th: Option<&[f64; 2]>,
    c: usize,
    chunk: &mut [f64],
    out: &mut Vec<u64>,
) -> [usize; NT] {
    let mut cnt = [0; NT];
    out.clear();
    let mut tt = [f64::INFINITY; NT];
    if let Some(th) = th {
        tt[0] = th[0];
    }
    if lay.packed {
        dist.packed(chunk);
        let vals = &chunk[..lay.n * (lay.n - 1) / 2];
        if let Some(th) = th {
            count_lt(vals, &tt, 1, &mut cnt);
            gather_row(vals, th[0].to_bits(), Some(th[1].to_bits()), out);
        }
        return cnt;
    }
    for i in lay.chunk_rows(c) {
        let ti = lay.len(i);
        for j in i..lay.nb {
            let tj = lay.len(j);
            let tile = &mut chunk[lay.local_offset(i, j)..][..ti * tj];
            dist.tile(x, i, ti, j, tj, tile);
            if let Some(th) = th {
                let (lo, hi) = (th[0].to_bits(), Some(th[1].to_bits()));
                if i == j {
                    // Count over the whole (symmetric, zero-diagonal) square in long runs,
                    // then halve: r²(i, j) and r²(j, i) have the same bits and r²(i, i) = +0
                    // exactly (see `stein::dists`).
                    let vi = lay.valid(i);
                    let mut cd = [0; NT];
                    if vi == tj {
                        count_lt(&tile[..vi * tj], &tt, 1, &mut cd);
                    } else {
                        for ii in 0..vi {
                            count_lt(&tile[ii * tj..ii * tj + vi], &tt, 1, &mut cd);
                        }
                    }
                    // (The diagonal's zeros lie below a positive threshold.)
                    // (Saturating: with finite particles the diagonal is +0 exactly.)
                    cnt[0] += cd[0].saturating_sub(if th[0] > 0.0 { vi } else { 0 }) / 2;
                    visit_tile(lay, i, j, tile, &mut |row| gather_row(row, lo, hi, out));
                } else {
                    visit_tile(lay, i, j, tile, &mut |row| {
                        count_lt(row, &tt, 1, &mut cnt);
                        gather_row(row, lo, hi, out);
                    });
                }
            }
        }
    }
    cnt
}

/// Above this many pairs `n(n−1)/2` the median uses a deterministic subsample (n > 2048).
///
/// # Example
///
/// ```
/// use klflow::kernel::{EXACT_MEDIAN_MAX_PAIRS, MedianScratch};
///
/// // 2048 particles have 2048·2047/2 pairs: still exact; one more particle is not.
/// assert!(2048 * 2047 / 2 <= EXACT_MEDIAN_MAX_PAIRS);
/// assert!(MedianScratch::new(2048).is_exact());
/// assert!(!MedianScratch::new(2049).is_exact());
/// ```
pub const EXACT_MEDIAN_MAX_PAIRS: usize = 1 << 21;
/// The number of pairs of the subsampled median.
///
/// # Example
///
/// ```
/// use klflow::kernel::{EXACT_MEDIAN_MAX_PAIRS, SUBSAMPLE_PAIRS};
///
/// // The subsample is smaller than the largest exact pair set.
/// assert!(SUBSAMPLE_PAIRS < EXACT_MEDIAN_MAX_PAIRS);
/// ```
pub const SUBSAMPLE_PAIRS: usize = 1 << 20;

/// A named rule for the bandwidth of the RBF kernel, fitted to the particles `x_1 … x_n`.
///
/// `r_ij = ‖x_i − x_j‖`, `ℓ` is the length scale of `exp(−r²/ℓ)`, `σ² = ℓ/2` the bandwidth of
/// [`Rbf`]:
///
/// | rule | peer | `ℓ` | `σ²` |
/// |---|---|---|---|
/// | [`LiuWang`](Bandwidth::LiuWang) | Liu & Wang's reference code | `med(all n² r²_ij, zero diagonal included) / ln(n+1)` | `ℓ/2` |
/// | [`BlackJax`](Bandwidth::BlackJax) | BlackJAX `median_heuristic` | `med_{i<j}(r_ij)² / ln n` | `ℓ/2` |
/// | [`NumPyro`](Bandwidth::NumPyro) | NumPyro `median_bandwidth` | `med(all n² r_ij)² / ln n + ε` (ε = 2⁻⁵²) | `ℓ/2` |
/// | [`Median`](Bandwidth::Median) | "plain" median (Ba et al. 2022) | `med_{i<j}(r²_ij)` | `ℓ/2` |
/// | [`Fixed`](Bandwidth::Fixed) | — | `2σ²` | `σ²` |
///
/// `med` is `numpy.median` (an even count averages the two middle values, of `r²` or of `r`
/// as written). BlackJAX starts its first step with `ℓ = 1` before the first fit; here every
/// fit uses the particles. With one particle, or when the median is 0 (coincident particles),
/// the rules return `ℓ = 1` (NumPyro's choice for one particle) instead of a zero bandwidth.
///
/// # Example
///
/// ```
/// use klflow::kernel::{Bandwidth, FitKernel, MedianScratch};
/// use nalgebra::DMatrix;
///
/// // Three points on a line: r² = 1, 4, 9 for the pairs i < j.
/// let x = DMatrix::from_column_slice(1, 3, &[0.0, 1.0, 3.0]);
/// let mut s = MedianScratch::new(3);
/// // Liu–Wang: the 9 entries 0,0,0,1,1,4,4,9,9 have median 1; ℓ = 1/ln 4.
/// let lw = Bandwidth::LiuWang.fit(&x, &mut s)?;
/// assert!((lw.length_scale() - 1.0 / 4f64.ln()).abs() < 1e-15);
/// // BlackJAX: distances 1, 2, 3 have median 2; ℓ = 4/ln 3.
/// let bj = Bandwidth::BlackJax.fit(&x, &mut s)?;
/// assert!((bj.length_scale() - 4.0 / 3f64.ln()).abs() < 1e-15);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Bandwidth {
    /// Liu & Wang (2016) reference code: `ℓ = med(r²) / ln(n+1)` over the full `n × n` matrix.
    LiuWang,
    /// BlackJAX: `ℓ = med_{i<j}(r)² / ln n`.
    BlackJax,
    /// NumPyro: `ℓ = med(r)² / ln n + 2⁻⁵²` over the full `n × n` matrix.
    NumPyro,
    /// The plain median: `ℓ = med_{i<j}(r²)`.
    Median,
    /// A fixed bandwidth `σ` (not fitted).
    Fixed(f64),
}

/// Which kind of median a rule takes.
#[derive(Clone, Copy)]
enum Over {
    /// Over the `m` upper-triangle entries.
    Upper,
    /// Over all `n²` entries (zero diagonal included).
    Full,
}

impl Bandwidth {
    /// The length scale `ℓ` of `exp(−r²/ℓ)` this rule gives for the particles (the columns of
    /// `x`).
    ///
    /// # Errors
    ///
    /// [`Error::NonFiniteInput`] if the particles are not finite.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::kernel::{Bandwidth, MedianScratch};
    /// use nalgebra::DMatrix;
    ///
    /// let x = DMatrix::from_column_slice(1, 3, &[0.0, 1.0, 3.0]);
    /// let l = Bandwidth::Median.length_scale(&x, &mut MedianScratch::new(3))?;
    /// assert_eq!(l, 4.0);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn length_scale(&self, x: &DMatrix<f64>, scratch: &mut MedianScratch) -> Result<f64> {
        let n = x.ncols();
        let nf = n as f64;
        if let Bandwidth::Fixed(s) = *self {
            return Ok(2.0 * s * s);
        }
        if n < 2 {
            return Ok(1.0);
        }
        // (Checked here, not inferred from the median: one non-finite particle makes only its
        // own n − 1 distances NaN, and the median of the others can be finite.)
        crate::error::finite_input("particles", x.as_slice())?;
        scratch.fill(x);
        let ell = match self {
            Bandwidth::LiuWang => scratch.median(n, Over::Full, false) / (nf + 1.0).ln(),
            Bandwidth::BlackJax => scratch.median(n, Over::Upper, true) / nf.ln(),
            Bandwidth::NumPyro => scratch.median(n, Over::Full, true) / nf.ln() + f64::EPSILON,
            Bandwidth::Median => scratch.median(n, Over::Upper, false),
            Bandwidth::Fixed(_) => unreachable!("handled above"),
        };
        if !ell.is_finite() {
            return Err(Error::NonFiniteInput { name: "particles" });
        }
        Ok(if ell > 0.0 { ell } else { 1.0 })
    }
}

impl FitKernel for Bandwidth {
    type Kernel = Rbf;

    fn fit(&self, x: &DMatrix<f64>, scratch: &mut MedianScratch) -> Result<Rbf> {
        Rbf::from_length_scale(self.length_scale(x, scratch)?)
    }

    fn is_adaptive(&self) -> bool {
        !matches!(self, Bandwidth::Fixed(_))
    }
}

/// Buffers of the median heuristics: the pairwise squared distances (as order-preserving bit
/// patterns) and the particles in the layouts of the distance kernels. Allocated once per particle system.
///
/// # Example
///
/// ```
/// use klflow::kernel::MedianScratch;
///
/// assert!(MedianScratch::new(2048).is_exact());
/// assert!(!MedianScratch::new(100_000).is_exact()); // subsampled median
/// ```
#[derive(Clone, Debug, Default)]
pub struct MedianScratch {
    /// Subsampled path: the squared distances of the sampled pairs (bit patterns).
    dist: Vec<u64>,
    /// The particles in the layouts of the distance kernels.
    panels: DistPanels,
    /// Exact path: the squared distances of all pairs in the pair engine's tile store.
    store: Vec<f64>,
    /// The layout of `store` and whether it still belongs to the current particles.
    lay: Option<TileLayout>,
    fresh: bool,
    hist: Vec<u32>,
    cand: Vec<u64>,
    parts: Vec<Vec<u64>>,
    sample: Vec<u64>,
    prev: Option<Prev>,
    /// Thresholds and counts of the last distance pass (see [`MedianScratch::fill`]).
    pre: Option<([u64; 2], [usize; 2])>,
    /// `None`: all pairs; `Some(s)`: `s` hashed pairs.
    subsample: Option<usize>,
}

impl MedianScratch {
    /// Buffers for `n` particles: exact medians if `n(n−1)/2 ≤` [`EXACT_MEDIAN_MAX_PAIRS`],
    /// otherwise the subsample of [`SUBSAMPLE_PAIRS`] pairs.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::kernel::MedianScratch;
    ///
    /// assert!(MedianScratch::new(500).is_exact());
    /// assert!(!MedianScratch::new(10_000).is_exact());
    /// ```
    pub fn new(n: usize) -> Self {
        let m = n * n.saturating_sub(1) / 2;
        if m <= EXACT_MEDIAN_MAX_PAIRS {
            // (The capacity of the tiled layout: at least that of the packed one.)
            let lay = TileLayout::new(n, usize::MAX);
            Self {
                store: Vec::with_capacity(if m > 0 { lay.store_len() } else { 0 }),
                subsample: None,
                ..Self::default()
            }
        } else {
            Self::subsampled(SUBSAMPLE_PAIRS)
        }
    }

    /// Buffers for a median over a fixed subsample of `pairs` pairs, whatever `n`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::kernel::MedianScratch;
    ///
    /// assert!(!MedianScratch::subsampled(1 << 12).is_exact());
    /// ```
    pub fn subsampled(pairs: usize) -> Self {
        Self {
            dist: Vec::with_capacity(pairs.max(1)),
            subsample: Some(pairs.max(1)),
            ..Self::default()
        }
    }

    /// `true` if medians are taken over all pairs.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::kernel::MedianScratch;
    ///
    /// assert!(MedianScratch::new(10).is_exact());
    /// assert!(!MedianScratch::subsampled(45).is_exact()); // even if 45 pairs = all pairs of 10
    /// ```
    pub fn is_exact(&self) -> bool {
        self.subsample.is_none()
    }

    /// Fills `dist` with the squared distances of all pairs `i < j` (or of the subsample).
    fn fill(&mut self, x: &DMatrix<f64>) {
        let (d, n) = x.shape();
        self.dist.clear();
        self.fresh = false;
        self.pre = None;
        match self.subsample {
            None => {
                // Centred copies, then every tile of the pair engine's layout
                // (kept: the pair pass of the same step reuses them).
                let lay = TileLayout::new(n, d);
                self.panels.fill(x.as_slice(), d, lay, None);
                self.store.resize(lay.store_len(), 0.0);
                // Around the previous fit's order statistics (they move little from one step
                // to the next): the bracket `[(1 − w) v0, (1 + w) v1)`, during the distance
                // pass: the values below its lower end counted, those inside it collected
                // (their number is the count between the two ends, so one comparison per
                // value counts). If it misses a rank, `select_store` falls back to sampled
                // thresholds.
                let th = self
                    .prev
                    .filter(|p| p.n == n)
                    .map(|p| [p.v0 * (1.0 - p.width), p.v1 * (1.0 + p.width)]);
                self.parts.resize_with(lay.chunks(), Vec::new);
                let (panels, th_ref, xs) = (&self.panels, th.as_ref(), x.as_slice());
                let run = |(c, (chunk, out)): (usize, (&mut [f64], &mut Vec<u64>))| {
                    fill_chunk(lay, xs, panels, th_ref, c, chunk, out)
                };
                let add = |mut a: [usize; NT], b: [usize; NT]| {
                    for (x, y) in a.iter_mut().zip(b) {
                        *x += y;
                    }
                    a
                };
                let store = &mut self.store[..lay.store_len()];
                #[cfg(feature = "rayon")]
                let counts = if n >= PARALLEL_MIN_N {
                    use rayon::prelude::*;
                    store
                        .par_chunks_mut(lay.chunk_len())
                        .zip(self.parts.par_iter_mut())
                        .enumerate()
                        .map(run)
                        .reduce(|| [0; NT], add)
                } else {
                    store
                        .chunks_mut(lay.chunk_len())
                        .zip(self.parts.iter_mut())
                        .enumerate()
                        .map(run)
                        .fold([0; NT], add)
                };
                #[cfg(not(feature = "rayon"))]
                let counts = store
                    .chunks_mut(lay.chunk_len())
                    .zip(self.parts.iter_mut())
                    .enumerate()
                    .map(run)
                    .fold([0; NT], add);
                let inside: usize = self.parts.iter().map(Vec::len).sum();
                self.pre = th.map(|t| (t.map(f64::to_bits), [counts[0], counts[0] + inside]));
                self.lay = Some(lay);
                self.fresh = true;
            }
            Some(s) => {
                for t in 0..s as u64 {
                    let h1 = splitmix64(2 * t);
                    let h2 = splitmix64(2 * t + 1);
                    let i = (h1 % n as u64) as usize;
                    let mut j = (h2 % (n as u64 - 1)) as usize;
                    if j >= i {
                        j += 1;
                    }
                    let r2 = crate::kernel::sq_dist(x.column(i).as_slice(), x.column(j).as_slice());
                    self.dist.push(r2.to_bits());
                }
            }
        }
    }

    /// The `numpy.median` of the upper-triangle or full list of `r²` (`of_r = false`) or of
    /// `r` (`of_r = true`, then squared).
    fn median(&mut self, n: usize, over: Over, of_r: bool) -> f64 {
        let m = n * (n - 1) / 2;
        // Positions in the chosen list, then mapped to upper-triangle ranks (None = a zero
        // of the diagonal).
        let len = match over {
            Over::Upper => m,
            Over::Full => n * n,
        };
        let pos = if len % 2 == 1 {
            [(len - 1) / 2, (len - 1) / 2]
        } else {
            [len / 2 - 1, len / 2]
        };
        let rank = |t: usize| -> Option<usize> {
            match over {
                Over::Upper => Some(t),
                Over::Full => (t >= n).then(|| (t - n) / 2),
            }
        };
        let ranks = [rank(pos[0]), rank(pos[1])];
        let values = self.order_stats(m, ranks);
        if of_r {
            let r = 0.5 * (values[0].sqrt() + values[1].sqrt());
            r * r
        } else {
            0.5 * (values[0] + values[1])
        }
    }

    /// The upper-triangle order statistics of ranks `ranks` (ascending; `None` = 0).
    fn order_stats(&mut self, m: usize, ranks: [Option<usize>; 2]) -> [f64; 2] {
        let mut out = [0.0; 2];
        let Some(k1) = ranks[1] else {
            return out;
        };
        let (v0, v1) = match (self.subsample, self.lay) {
            (None, Some(lay)) => self.select_store(lay, ranks[0].unwrap_or(k1), k1),
            _ => {
                let len = self.dist.len();
                // Rank k among m pairs ↦ rank among the stored values.
                let map = |k: usize| -> usize {
                    if len == m || m <= 1 {
                        k.min(len - 1)
                    } else {
                        ((k as f64) * (len - 1) as f64 / (m - 1) as f64).round() as usize
                    }
                };
                let k1 = map(k1);
                self.select_two(ranks[0].map_or(k1, map), k1)
            }
        };
        out[1] = f64::from_bits(v1);
        if ranks[0].is_some() {
            out[0] = f64::from_bits(v0);
        }
        out
    }

    /// The exact order statistics of ranks `k0 ≤ k1` among the `m = n(n−1)/2` distances of the
    /// tile store, by bracketing: a deterministic sample (one entry per tile row, along the
    /// tile diagonals) gives thresholds around the wanted quantile; one counting pass
    /// (vectorised comparisons) finds the narrowest threshold bracket holding both ranks, a
    /// second pass gathers the values inside it and the selection runs on those only. Exact
    /// whatever the sample (an unlucky sample only widens the bracket, up to all values).
    /// Both passes run over the store's chunks in parallel with `rayon`; the counts are
    /// integers and the selected values unique, so the result does not depend on threads.
    fn select_store(&mut self, lay: TileLayout, k0: usize, k1: usize) -> (u64, u64) {
        let m = lay.n * (lay.n - 1) / 2;
        // A valid bracket: `below` values lie under `lo`, the ranks k0, k1 lie in [lo, hi).
        let mut br = Bracket {
            lo: 0,
            below: 0,
            hi: None,
            above: m,
        };
        // 1. The bracket counted during the distance pass (see `fill`), if it holds the
        //    ranks: its candidates are already collected.
        // (The serial stretches below keep a pool thread awake for the parallel passes of the
        // fallback and the pair pass that follows the fit: `keep_warm`; never around those
        // parallel passes themselves.)
        let pre = self.pre.take();
        let (cand, parts) = (&mut self.cand, &self.parts);
        let collected = crate::par::keep_warm_for(lay.n, || {
            let Some((th, counts)) = pre else {
                return false;
            };
            br.narrow(&th, &counts, k0, k1);
            if br.lo >= th[0] && br.hi.is_some_and(|h| h <= th[1]) {
                let (lo, hi) = (br.lo, br.hi.expect("bounded"));
                cand.clear();
                for p in parts {
                    cand.extend(p.iter().filter(|&&v| v >= lo && v < hi));
                }
                return true;
            }
            false
        });
        // 2. Otherwise, or if that bracket is wide: thresholds from a deterministic sample
        //    (one entry per tile row along the tile diagonals) around the wanted quantile.
        if !collected {
            if br.above - br.below > m / 32 + 64 {
                self.sample_thresholds(lay, k0, k1, m, &mut br);
            }
            self.gather(lay, br.lo, br.hi);
        }
        let (k0, k1) = (k0 - br.below, k1 - br.below);
        let cand = &mut self.cand;
        let (v0, v1) = crate::par::keep_warm_for(lay.n, || {
            let (_, v1, _) = cand.select_nth_unstable(k1);
            let v1 = *v1;
            let v0 = if k0 == k1 {
                v1
            } else {
                *cand[..k1].select_nth_unstable(k0).1
            };
            (v0, v1)
        });
        // The next bracket's width: a few times this fit's relative change.
        let (f0, f1) = (f64::from_bits(v0), f64::from_bits(v1));
        let width = match self.prev.filter(|p| p.n == lay.n) {
            Some(p) => {
                (3.0 * ((f0 / p.v0 - 1.0).abs()).max((f1 / p.v1 - 1.0).abs())).clamp(1e-4, 0.05)
            }
            None => 0.01,
        };
        self.prev = (f0 > 0.0 && f1.is_finite()).then_some(Prev {
            n: lay.n,
            v0: f0,
            v1: f1,
            width: if width.is_finite() { width } else { 0.01 },
        });
        (v0, v1)
    }

    /// Narrows `br` with thresholds from a deterministic sample of the stored distances.
    fn sample_thresholds(
        &mut self,
        lay: TileLayout,
        k0: usize,
        k1: usize,
        m: usize,
        br: &mut Bracket,
    ) {
        self.sample.clear();
        if lay.packed {
            // A regular sample of the packed upper triangle (pairs in row order).
            let step = m.div_ceil(SAMPLE_MAX / 4).max(1);
            self.sample
                .extend(self.store[..m].iter().step_by(step).map(|v| v.to_bits()));
        }
        let rows = lay.nb * (lay.nb + 1) / 2 * lay.t;
        let step = rows.div_ceil(SAMPLE_MAX).max(1);
        for i in (0..lay.nb).filter(|_| !lay.packed) {
            for j in i..lay.nb {
                let (vi, vj, tj) = (lay.valid(i), lay.valid(j), lay.len(j));
                let tile = &self.store[lay.offset(i, j)..];
                let shift = if i == j { (vj / 2).max(1) } else { 0 };
                for q in (0..vi).step_by(step) {
                    if q + shift < vj {
                        self.sample.push(tile[q * tj + q + shift].to_bits());
                    }
                }
            }
        }
        self.sample.sort_unstable();
        // Thresholds must be distances, not NaN (bit patterns above +∞): drop those.
        let finite = self
            .sample
            .partition_point(|&v| v <= f64::INFINITY.to_bits());
        self.sample.truncate(finite);
        let ns = self.sample.len();
        if ns < 16 {
            return;
        }
        let q = 0.5 * (k0 + k1) as f64 / m as f64;
        let se = (q * (1.0 - q) * ns as f64).sqrt().max(1.0);
        let th: [u64; NT] = std::array::from_fn(|k| {
            let pos = (q * ns as f64 + Z[k] * se)
                .round()
                .clamp(0.0, (ns - 1) as f64);
            self.sample[pos as usize]
        });
        let counts = self.count_below(lay, &th);
        br.narrow(&th, &counts, k0, k1);
    }

    /// For every threshold `th[k]`, the number of stored distances whose bit pattern is
    /// below it.
    fn count_below(&self, lay: TileLayout, th: &[u64]) -> [usize; NT] {
        let mut thf = [f64::INFINITY; NT];
        for (f, &t) in thf.iter_mut().zip(th) {
            *f = f64::from_bits(t);
        }
        let nt = th.len();
        let count = |(c, chunk): (usize, &[f64])| {
            let mut cnt = [0_usize; NT];
            visit_rows(lay, c, chunk, |row| count_lt(row, &thf, nt, &mut cnt));
            cnt
        };
        let add = |mut a: [usize; NT], b: [usize; NT]| {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
            a
        };
        #[cfg(feature = "rayon")]
        if lay.n >= PARALLEL_MIN_N {
            use rayon::prelude::*;
            return self.store[..lay.store_len()]
                .par_chunks(lay.chunk_len())
                .enumerate()
                .map(count)
                .reduce(|| [0; NT], add);
        }
        self.store[..lay.store_len()]
            .chunks(lay.chunk_len())
            .enumerate()
            .map(count)
            .fold([0; NT], add)
    }

    /// Collects into `cand` the stored bit patterns `v` with `lo ≤ v < hi` (`hi = None`: no
    /// upper bound), chunk by chunk.
    fn gather(&mut self, lay: TileLayout, lo: u64, hi: Option<u64>) {
        let run = |(c, (chunk, out)): (usize, (&[f64], &mut Vec<u64>))| {
            out.clear();
            visit_rows(lay, c, chunk, |row| gather_row(row, lo, hi, out));
        };
        self.parts.resize_with(lay.chunks(), Vec::new);
        let store = &self.store[..lay.store_len()];
        #[cfg(feature = "rayon")]
        if lay.n >= PARALLEL_MIN_N {
            use rayon::prelude::*;
            store
                .par_chunks(lay.chunk_len())
                .zip(self.parts.par_iter_mut())
                .enumerate()
                .for_each(run);
        } else {
            store
                .chunks(lay.chunk_len())
                .zip(self.parts.iter_mut())
                .enumerate()
                .for_each(run);
        }
        #[cfg(not(feature = "rayon"))]
        store
            .chunks(lay.chunk_len())
            .zip(self.parts.iter_mut())
            .enumerate()
            .for_each(run);
        self.cand.clear();
        for p in &self.parts {
            self.cand.extend_from_slice(p);
        }
    }

    /// The tile store of the particles of the last fit, if it is still current (the exact
    /// path, `n` particles in dimension `d`).
    pub(crate) fn fresh_store(&self, n: usize, d: usize) -> Option<&[f64]> {
        let lay = self.lay?;
        (self.fresh
            && self.subsample.is_none()
            && lay == TileLayout::new(n, d)
            && self.panels.matches(lay, d))
        .then_some(&self.store[..lay.store_len()])
    }

    /// Marks the stored distances as stale (the particles moved).
    pub(crate) fn mark_stale(&mut self) {
        self.fresh = false;
    }

    /// The order statistics of ranks `k0 ≤ k1` of `dist` (exact). Large lists go through a
    /// histogram of the (order-preserving) bit patterns: one pass counts, a second gathers
    /// the few values in the bins holding ranks `k0`, `k1`, and the selection runs on those
    /// only. `dist` is not reordered.
    fn select_two(&mut self, k0: usize, k1: usize) -> (u64, u64) {
        let len = self.dist.len();
        let bins = (len / 8).next_power_of_two().clamp(256, 1 << 14);
        if len < 1024 {
            let (_, v1, _) = self.dist.select_nth_unstable(k1);
            let v1 = *v1;
            let v0 = if k0 == k1 {
                v1
            } else {
                // Everything left of k1 is ≤ it: select inside that part only.
                *self.dist[..k1].select_nth_unstable(k0).1
            };
            return (v0, v1);
        }
        let (lo, hi) = self
            .dist
            .iter()
            .fold((u64::MAX, 0), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let mut shift = 0;
        while (hi - lo) >> shift >= bins as u64 {
            shift += 1;
        }
        self.hist.clear();
        self.hist.resize(bins, 0);
        for &v in &self.dist {
            self.hist[((v - lo) >> shift) as usize] += 1;
        }
        // Bins of ranks k0 and k1, and the number of values below the first.
        let (mut below, mut cum, mut b0, mut b1) = (0, 0, None, 0);
        for (b, &c) in self.hist.iter().enumerate() {
            let next = cum + c as usize;
            if b0.is_none() && k0 < next {
                b0 = Some(b);
                below = cum;
            }
            if k1 < next {
                b1 = b;
                break;
            }
            cum = next;
        }
        let b0 = b0.unwrap_or(b1) as u64;
        let b1 = b1 as u64;
        self.cand.clear();
        // One (almost never true, so well predicted) comparison per value.
        self.cand.extend(
            self.dist
                .iter()
                .copied()
                .filter(|&v| ((v - lo) >> shift).wrapping_sub(b0) <= b1 - b0),
        );
        let (k0, k1) = (k0 - below, k1 - below);
        let (_, v1, _) = self.cand.select_nth_unstable(k1);
        let v1 = *v1;
        let v0 = if k0 == k1 {
            v1
        } else {
            *self.cand[..k1].select_nth_unstable(k0).1
        };
        (v0, v1)
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014): a fixed hash of the pair counter.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
