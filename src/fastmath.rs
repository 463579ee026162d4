//! Fast, vectorisable elementary functions shared by the hot loops (kernel evaluations of the
//! SVGD pair engine, mixture scores, logistic likelihoods).
//!
//! Branch-free `exp`, `ln`, `ln(1 + x)`, `cos`/`sin` and bulk normal draws that the compiler
//! vectorises.
//!
//! The exponentials: Cody–Waite reduction `x = n·ln2 + r`, `|r| ≤ ln2/2`, a polynomial in `r`
//! (truncation below `2·10⁻¹⁷` relative for [`exp`] and [`exp_nonpos`]; `exp_fast` trades
//! accuracy for speed, 10⁻¹³), and the scale `2ⁿ` built from the bits of the rounding
//! constant. Relative error a few ulp against `f64::exp` on `[−708, 709]`;
//! arguments below −708 give `exp(−708) ≈ 3·10⁻³⁰⁸` instead of a subnormal or 0 (an absolute
//! difference below 10⁻³⁰⁷, far below any tolerance of a kernel sum).

/// 1.5·2⁵²: adding it rounds to the nearest integer and leaves that integer in the low bits.
const ROUND: f64 = 6_755_399_441_055_744.0;
const LOG2E: f64 = std::f64::consts::LOG2_E;
/// ln 2 split so that `n·LN2_HI` is exact for |n| < 2¹¹.
const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);

/// `a·b + c` with one rounding (a fused multiply-add), on every target: an FMA instruction
/// where the code runs compiled for FMA (native builds, and the kernels that
/// [`crate::simd::dispatch`] runs for the CPU's vector extensions), else the C library's
/// correctly rounded `fma` (slower, the same bits). So results do not depend on the build's
/// target features or on the CPU.
#[inline(always)]
pub(crate) fn fmadd(a: f64, b: f64, c: f64) -> f64 {
    a.mul_add(b, c)
}

/// The 8 lanes at `i`.
#[inline(always)]
pub(crate) fn c8(s: &[f64], i: usize) -> &[f64; 8] {
    s[i..i + 8].try_into().expect("8 lanes")
}

/// `acc += s·a` lane-wise, each lane one [`fmadd`].
#[inline(always)]
pub(crate) fn axpy8(acc: &mut [f64; 8], s: f64, a: &[f64; 8]) {
    for t in 0..8 {
        acc[t] = fmadd(s, a[t], acc[t]);
    }
}

/// Four `f64` lanes for the kernels written with explicit vectors: `wide::f64x4` (one 256-bit
/// register) where the build targets AVX and FMA; elsewhere a plain array whose lane-wise
/// operations LLVM vectorises at the width of the function it is inlined into, so that the
/// kernels [`crate::simd::dispatch`] compiles for AVX2 or AVX-512 use full-width registers
/// (`wide`'s baseline form is a pair of 128-bit SSE2 values, which no target feature widens).
/// The same IEEE operations lane for lane either way, so the same bits.
#[cfg(all(target_feature = "avx", target_feature = "fma"))]
pub(crate) type F4 = wide::f64x4;

/// See the `wide::f64x4` form above.
#[cfg(not(all(target_feature = "avx", target_feature = "fma")))]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct F4([f64; 4]);

#[cfg(not(all(target_feature = "avx", target_feature = "fma")))]
impl F4 {
    pub(crate) const ZERO: F4 = F4([0.0; 4]);
    #[inline(always)]
    pub(crate) fn new(a: [f64; 4]) -> F4 {
        F4(a)
    }
    #[inline(always)]
    pub(crate) fn splat(v: f64) -> F4 {
        F4([v; 4])
    }
    #[inline(always)]
    pub(crate) fn to_array(self) -> [f64; 4] {
        self.0
    }
}

#[cfg(not(all(target_feature = "avx", target_feature = "fma")))]
impl std::ops::Add for F4 {
    type Output = F4;
    #[inline(always)]
    fn add(self, b: F4) -> F4 {
        F4(std::array::from_fn(|q| self.0[q] + b.0[q]))
    }
}

/// [`fmadd`] on four lanes: `a·b + c` with one rounding per lane.
#[inline(always)]
pub(crate) fn fma4(a: F4, b: F4, c: F4) -> F4 {
    #[cfg(all(target_feature = "avx", target_feature = "fma"))]
    {
        a.mul_add(b, c)
    }
    #[cfg(not(all(target_feature = "avx", target_feature = "fma")))]
    {
        F4(std::array::from_fn(|q| a.0[q].mul_add(b.0[q], c.0[q])))
    }
}

/// The kernels run with 32 vector registers of 512 bits (AVX-512: a native build for it, or
/// [`crate::simd::dispatch`] on a CPU that has it): the register-blocked micro-kernels
/// of the pair engine then keep 8 accumulators of 8 lanes; with 16 registers of 256 bits (AVX2)
/// the same blocks would spill to the stack on every step of their inner loop, so they use
/// half as many. The block shape never changes a sum's order, only how many sums run at once:
/// results are bit-identical either way.
pub(crate) fn wide_regs() -> bool {
    crate::simd::avx512()
}

/// `e^x` for `x ≤ 709`, branch free (see the module docs for the accuracy): `e^r ≈ 1 + r +
/// r²q(r)`, `q` the near-minimax (Chebyshev) fit of degree 9 of `(e^r − 1 − r)/r²` on
/// `|r| ≤ ln2/2`, relative error below `2·10⁻¹⁷` there (so `e^0 = 1` exactly). The reduction
/// and the Horner steps are fused multiply-adds ([`fmadd`]: one rounding each, on every
/// target).
#[inline(always)]
pub(crate) fn exp(x: f64) -> f64 {
    let x = if x < -708.0 { -708.0 } else { x };
    let t = fmadd(x, LOG2E, ROUND);
    let n = t - ROUND;
    let r = fmadd(-n, LN2_LO, fmadd(-n, LN2_HI, x));
    let scale = f64::from_bits(t.to_bits().wrapping_add(1023) << 52);
    exp_poly(r) * scale
}

/// The degree-11 polynomial of [`exp`] and [`exp_nonpos`]: `e^r` on `|r| ≤ ln 2/2`, by
/// Horner's scheme in fused multiply-adds.
#[inline(always)]
fn exp_poly(r: f64) -> f64 {
    let mut p = 2.510_037_583_256_123_4e-8;
    p = fmadd(p, r, 2.762_007_587_998_336_7e-7);
    p = fmadd(p, r, 2.755_726_848_031_002_4e-6);
    p = fmadd(p, r, 2.480_152_132_236_869_2e-5);
    p = fmadd(p, r, 1.984_126_986_304_054_5e-4);
    p = fmadd(p, r, 1.388_888_891_719_671_9e-3);
    p = fmadd(p, r, 8.333_333_333_330_065e-3);
    p = fmadd(p, r, 4.166_666_666_662_416_4e-2);
    p = fmadd(p, r, 0.166_666_666_666_666_69);
    p = fmadd(p, r, 0.500_000_000_000_000_1);
    p = fmadd(p, r, 1.0);
    p = fmadd(p, r, 1.0);
    p
}

/// `e^x` for `x ≤ 709` with a looser accuracy contract than [`exp`]: relative error below
/// `10⁻¹³` on `[−708, 709]` (the interpolant's truncation is `3.7·10⁻¹⁴`; unit test), in 9 fused multiply-adds
/// for the polynomial instead of 13. For ratios such as softmax weights, where `10⁻¹³`
/// relative is far below every other error.
///
/// Same reduction as [`exp`] (`x = n ln2 + r`, `|r| ≤ ln2/2`), then `e^r ≈ 1 + r·g(r)` with
/// `g` the degree-8 Chebyshev interpolant of `(e^r − 1)/r` on `[−ln2/2, ln2/2]` (truncation
/// `3.7·10⁻¹⁴`), by Horner's scheme: lowest instruction count, for loops that evaluate many
/// independent exponentials (their latency overlaps). `exp_fast(0) = 1` exactly.
#[inline(always)]
pub(crate) fn exp_fast(x: f64) -> f64 {
    let x = if x < -708.0 { -708.0 } else { x };
    let t = fmadd(x, LOG2E, ROUND);
    let n = t - ROUND;
    let r = fmadd(-n, LN2_LO, fmadd(-n, LN2_HI, x));
    let mut p = 2.762_510_214_111_035_2e-6;
    p = fmadd(p, r, 2.487_616_417_198_313e-5);
    p = fmadd(p, r, 1.984_120_875_674_779_8e-4);
    p = fmadd(p, r, 1.388_882_167_736_127_6e-3);
    p = fmadd(p, r, 8.333_333_353_717_28e-3);
    p = fmadd(p, r, 4.166_666_689_095_835e-2);
    p = fmadd(p, r, 0.166_666_666_666_483_03);
    p = fmadd(p, r, 0.499_999_999_997_979_34);
    p = fmadd(p, r, 1.0);
    p = fmadd(p, r, 1.0);
    let scale = f64::from_bits(t.to_bits().wrapping_add(1023) << 52);
    p * scale
}

/// Bits of √½: subtracting them from a positive double's bits puts the exponent `k` with
/// `x = 2ᵏ m`, `m ∈ [√½, √2)`, in the top 12 bits (musl's reduction).
const SQRT_HALF_BITS: u64 = 0x3FE6_A09E_667F_3BCD;

/// `ln x` for finite normal `x > 0`, branch free and without a division: `x = 2ᵏ m`,
/// `m ∈ [√½, √2)` read from the bits (musl's reduction), then `ln m = f·g(f)`, `f = m − 1`, with `g` the degree-18
/// Chebyshev interpolant of `ln(1 + f)/f` on `[√½ − 1, √2 − 1]` (truncation `1.2·10⁻¹⁶`),
/// evaluated by Estrin's scheme in fused multiply-adds: pairs of coefficients, then powers
/// `f², f⁴, f⁸, f¹⁶`, five dependent steps instead of Horner's eighteen. The Box–Muller radius
/// loop is latency bound (short runs per chain), and this took a sixth off it (6.6 → 5.6 µs
/// per 5600 radii on an AVX-512 core). Error below 4 ulp of `max(|ln x|, 1)` on
/// `[10⁻³⁰⁰, 10³⁰⁰]`, and below 4 ulp relative on `[0.9, 1)` and for the Box–Muller arguments
/// just below 1 (unit test; measured 2.3 ulp); zero, negative, subnormal or non-finite `x` give
/// garbage.
#[inline(always)]
pub(crate) fn ln(x: f64) -> f64 {
    /// `(g(f) − 1)/f` by ascending powers: `C[i]` multiplies `fⁱ`.
    const C: [f64; 18] = [
        -0.499_999_999_999_984_5,
        0.333_333_333_333_371_73,
        -0.250_000_000_007_695_6,
        0.199_999_999_999_093_18,
        -0.166_666_665_548_946_2,
        0.142_857_141_735_780_96,
        -0.125_000_072_532_943_8,
        0.111_111_242_705_117_63,
        -0.099_997_548_599_958_85,
        0.090_902_865_851_816_4,
        -0.083_378_106_100_433_31,
        0.077_073_478_240_058_95,
        -0.071_024_220_420_706_9,
        0.064_733_768_826_712,
        -0.063_392_662_271_860_51,
        0.070_920_120_907_091_78,
        -0.066_063_772_742_917_01,
        0.029_914_714_370_611_58,
    ];
    let ix = x.to_bits().wrapping_sub(SQRT_HALF_BITS);
    let k = ln_exponent(ix);
    let m = f64::from_bits((ix & 0x000F_FFFF_FFFF_FFFF).wrapping_add(SQRT_HALF_BITS));
    let f = m - 1.0;
    let f2 = f * f;
    let f4 = f2 * f2;
    let f8 = f4 * f4;
    let f16 = f8 * f8;
    let q: [f64; 9] = std::array::from_fn(|i| fmadd(C[2 * i + 1], f, C[2 * i]));
    let r0 = fmadd(q[1], f2, q[0]);
    let r1 = fmadd(q[3], f2, q[2]);
    let r2 = fmadd(q[5], f2, q[4]);
    let r3 = fmadd(q[7], f2, q[6]);
    let s0 = fmadd(r1, f4, r0);
    let s1 = fmadd(r3, f4, r2);
    let p = fmadd(q[8], f16, fmadd(s1, f8, s0));
    // ln m = f + f²·(g(f) − 1)/f…: written as f + f·(f·p), p the polynomial above (g without
    // its constant 1), so that the leading term is exact.
    let lnm = fmadd(f2, p, f);
    fmadd(k, LN2_HI, lnm + k * LN2_LO)
}

/// `(ix as i64 >> 52) as f64`, the exponent of [`ln`]'s reduction. AVX2 has neither a 64-bit
/// arithmetic shift nor an integer-to-double conversion of 64-bit lanes (both AVX-512), and
/// LLVM's emulation of the pair moves lanes through general registers; there the same value
/// comes exactly from a logical shift of the sign-flipped bits (`k + 2048 ∈ [0, 4096)`) and
/// [`u52_to_f64`].
#[inline(always)]
fn ln_exponent(ix: u64) -> f64 {
    if cfg!(target_feature = "avx512dq") {
        ((ix as i64) >> 52) as f64
    } else {
        ln_exponent_magic(ix)
    }
}

/// The conversion-free form of [`ln_exponent`] (tested on every target).
#[inline(always)]
fn ln_exponent_magic(ix: u64) -> f64 {
    u52_magic((ix ^ (1 << 63)) >> 52) - 2048.0
}

/// `k as f64` for `k < 2⁵²` (exact): on targets without AVX-512's 64-bit conversion, by
/// placing `k` in the mantissa of `2⁵²` and subtracting `2⁵²` (both steps exact).
#[inline(always)]
pub(crate) fn u52_to_f64(k: u64) -> f64 {
    if cfg!(target_feature = "avx512dq") {
        k as f64
    } else {
        u52_magic(k)
    }
}

/// The conversion-free form of [`u52_to_f64`] (tested on every target; `k < 2⁵²`).
#[inline(always)]
fn u52_magic(k: u64) -> f64 {
    debug_assert!(k < 1 << 52);
    f64::from_bits(k | 0x4330_0000_0000_0000) - 4_503_599_627_370_496.0
}

/// `(cos φ, sin φ)` for `|φ| ≤ π/4`, branch free: `cos φ = 1 − z/2 + z²·C(z)` and
/// `sin φ = φ + φ³·S(z)`, `z = φ²`, with `C`, `S` of degree 5 the Chebyshev interpolants of
/// `(cos √z − 1 + z/2)/z²` and `(sin √z − √z)/√z³` on `[0, (π/4)²]` (near-minimax; truncation
/// below `10⁻¹⁸` and `1.4·10⁻¹⁷`; coefficients from `tests/data/fastmath_coefficients.py`),
/// by Horner's scheme in fused multiply-adds; a few ulp.
#[inline(always)]
pub(crate) fn cos_sin_quarter(phi: f64) -> (f64, f64) {
    let z = phi * phi;
    let mut c = -1.138_263_242_552_171_7e-11;
    c = fmadd(c, z, 2.087_614_626_840_32e-9);
    c = fmadd(c, z, -2.755_731_727_172_979_3e-7);
    c = fmadd(c, z, 2.480_158_729_876_569e-5);
    c = fmadd(c, z, -0.001_388_888_888_888_739_8);
    c = fmadd(c, z, 0.041_666_666_666_666_664);
    c = fmadd(c, z, -0.5);
    c = fmadd(c, z, 1.0);
    let mut s = 1.591_812_929_486_660_8e-10;
    s = fmadd(s, z, -2.505_113_184_500_362_4e-8);
    s = fmadd(s, z, 2.755_731_610_255_244e-6);
    s = fmadd(s, z, -0.000_198_412_698_367_585_74);
    s = fmadd(s, z, 0.008_333_333_333_330_948);
    s = fmadd(s, z, -0.166_666_666_666_666_66);
    (c, fmadd(phi * z, s, phi))
}

/// Normals generated per refill of the word buffer in [`fill_normals`].
const NORMAL_CHUNK: usize = 128;

/// Fills `out` with independent standard normal draws: Box–Muller on one 64-bit word per pair,
/// the words drawn in bulk (`rng.fill`), the transform vectorised and division-free ([`ln`],
/// [`cos_sin_quarter`]: polynomials in fused multiply-adds).
///
/// Word `w` gives the radius `√(−2 ln u)` from `u = (⌊w/2²⁴⌋ + 1)/2⁴⁰ ∈ (0, 1]` (40 bits: the
/// largest radius is 7.45, `P(|Z| > 7.45) ≈ 10⁻¹³`) and the angle `2π(j + ½)/2²⁴` from its low
/// 24 bits `j` (top two bits: the quadrant; the rest: the offset inside it, through
/// [`cos_sin_quarter`]). Each refill of 128 normals stores the 64 cosine draws, then the 64
/// sine draws; a shorter last refill stores as many sines as it needs. Deterministic given
/// the RNG state, like any other draw.
pub(crate) fn fill_normals<R: rand::Rng + ?Sized>(rng: &mut R, out: &mut [f64]) {
    let len = out.len();
    for_normals(rng, len, |start, z| {
        out[start..start + z.len()].copy_from_slice(z);
    });
}

/// The draws of [`fill_normals`]`(rng, out)` for an `out` of length `len`, handed to `sink`
/// as `(start, run)` pieces (`run` belongs at `out[start..start + run.len()]`), in order and
/// covering `0..len` once, without storing them: callers that consume the noise at once (the
/// ULA update) skip the copy and the buffer. Same words, same values as [`fill_normals`].
pub(crate) fn for_normals<R, F>(rng: &mut R, len: usize, sink: F)
where
    R: rand::Rng + ?Sized,
    F: FnMut(usize, &[f64]),
{
    for_normals_in(&mut NormalScratch::new(), rng, len, sink);
}

/// The buffers of [`for_normals`], for callers that draw many short runs in a row (one ULA
/// chain after another) and would otherwise initialise them for every run. Their contents
/// between calls never reach the output.
pub(crate) struct NormalScratch {
    words: [u64; NORMAL_CHUNK / 2],
    buf: [f64; NORMAL_CHUNK],
}

impl NormalScratch {
    /// Zeroed buffers.
    pub(crate) fn new() -> Self {
        Self {
            words: [0; NORMAL_CHUNK / 2],
            buf: [0.0; NORMAL_CHUNK],
        }
    }
}

/// [`for_normals`] with caller-provided buffers: same words, same values.
#[inline]
pub(crate) fn for_normals_in<R, F>(
    scratch: &mut NormalScratch,
    rng: &mut R,
    len: usize,
    mut sink: F,
) where
    R: rand::Rng + ?Sized,
    F: FnMut(usize, &[f64]),
{
    use rand::RngExt;
    const HALF: usize = NORMAL_CHUNK / 2;
    let NormalScratch { words, buf } = scratch;
    let mut start = 0;
    crate::simd::dispatch(
        #[inline(always)]
        || {
            while start < len {
                let n = (len - start).min(NORMAL_CHUNK);
                let pairs = n.div_ceil(2);
                rng.fill(&mut words[..pairs]);
                // Two short passes (radii, then angles) rather than one long one: more independent
                // iterations fit in the out-of-order window, hiding the polynomials' latency.
                // Only the words in use, rounded up to whole vectors of 8.
                let k = pairs.next_multiple_of(8).min(HALF);
                let (cs, ss) = buf.split_at_mut(HALF);
                // The radii go to the sine half first, then each is replaced by its sine draw.
                for (r, w) in ss[..k].iter_mut().zip(&words[..k]) {
                    *r = box_muller_radius(*w);
                }
                for ((c, s), w) in cs[..k].iter_mut().zip(ss[..k].iter_mut()).zip(&words[..k]) {
                    (*c, *s) = box_muller_angle(*w, *s);
                }
                // The cosines of the pairs, then the sines of the first `n − pairs` of them.
                sink(start, &buf[..pairs]);
                sink(start + pairs, &buf[HALF..HALF + n - pairs]);
                start += n;
            }
        },
    );
}

/// The Box–Muller radius `√(−2 ln u)` of a word (see [`fill_normals`]).
#[inline(always)]
fn box_muller_radius(w: u64) -> f64 {
    (-2.0 * ln(radius_uniform(w))).sqrt()
}

/// The radius uniform `u = (⌊w/2²⁴⌋ + 1)/2⁴⁰` of a word (see [`fill_normals`]).
#[inline(always)]
fn radius_uniform(w: u64) -> f64 {
    // u = (k + 1)·2⁻⁴⁰ as one exact FMA: k < 2⁴⁰, so k·2⁻⁴⁰ + 2⁻⁴⁰ is representable and no
    // rounding happens. (Written as `((w >> 24) + 1) as f64 · 2⁻⁴⁰`, LLVM adds the 1 with an
    // all-ones vector built by `vpternlogd` into a register that a later instruction of the
    // loop writes: a false dependency chaining the iterations, 6 % of the radius loop.)
    fmadd(u52_to_f64(w >> 24), TWO_M40, TWO_M40)
}

/// `2⁻⁴⁰`, the spacing of the Box–Muller radius uniforms.
const TWO_M40: f64 = 1.0 / 1_099_511_627_776.0;

/// `r (cos θ, sin θ)` for the angle `θ` of a word (see [`fill_normals`]).
#[inline(always)]
fn box_muller_angle(w: u64, r: f64) -> (f64, f64) {
    const TWO_M22: f64 = 1.0 / 4_194_304.0;
    let j = w & 0xFF_FFFF;
    let q = j >> 22;
    let f = (u52_to_f64(j & 0x3F_FFFF) + 0.5) * TWO_M22 - 0.5;
    let phi = f * std::f64::consts::FRAC_PI_2;
    let (c, s) = cos_sin_quarter(phi);
    // Rotate by q quarter turns: (c, s), (−s, c), (−c, −s), (s, −c).
    let odd = q & 1 == 1;
    let (a, b) = if odd { (s, c) } else { (c, s) };
    let sign_a = ((q ^ (q >> 1)) & 1) << 63;
    let sign_b = (q >> 1) << 63;
    (
        r * f64::from_bits(a.to_bits() ^ sign_a),
        r * f64::from_bits(b.to_bits() ^ sign_b),
    )
}

/// `ln(1 + x)` for `x ∈ [0, 1]` (the softplus of a logistic likelihood: `x = e^{−|η|}`),
/// branch free and without bit manipulation: `1 + x = 2ᵏm` with `k = [x ≥ ½]`, so
/// `s = (m − 1)/(m + 1)` is `x/(2 + x)` or `(x − 1)/(3 + x)` (numerators exact: `x − 1` by
/// Sterbenz), `|s| ≤ 0.2`; `ln m = 2 atanh s` by its odd series to `s²³` (truncation below
/// `0.04¹¹/23 < 10⁻¹⁶` relative), in fused multiply-adds by Estrin's scheme. Relative error
/// a few ulp against `f64::ln_1p` on `[0, 1]` (unit test); no rounding of `1 + x` to correct
/// for.
#[inline(always)]
pub(crate) fn ln_1p_unit(x: f64) -> f64 {
    let big = x >= 0.5;
    let num = if big { x - 1.0 } else { x };
    let den = if big { 3.0 + x } else { 2.0 + x };
    let s = num / den;
    let z = s * s;
    let z2 = z * z;
    let z4 = z2 * z2;
    let z8 = z4 * z4;
    // p(z) = Σ_{i=0}^{10} z^i/(2i + 3).
    let a0 = fmadd(z, 1.0 / 5.0, 1.0 / 3.0);
    let a1 = fmadd(z, 1.0 / 9.0, 1.0 / 7.0);
    let a2 = fmadd(z, 1.0 / 13.0, 1.0 / 11.0);
    let a3 = fmadd(z, 1.0 / 17.0, 1.0 / 15.0);
    let a4 = fmadd(z, 1.0 / 21.0, 1.0 / 19.0);
    let b0 = fmadd(z2, a1, a0);
    let b1 = fmadd(z2, a3, a2);
    let b2 = fmadd(z2, 1.0 / 23.0, a4);
    let p = fmadd(z8, b2, fmadd(z4, b1, b0));
    let two_s = 2.0 * s;
    let ln_m = fmadd(two_s, z * p, two_s);
    if big { LN2_HI + (ln_m + LN2_LO) } else { ln_m }
}

/// 1.5·2⁵² + 1023: adding it rounds to the nearest integer `n` and leaves `n + 1023` (the
/// biased exponent of `2ⁿ`) in the low bits.
const ROUND_BIASED: f64 = 6_755_399_441_056_767.0;

/// `ln 2` rounded to `f64` (the error `ln 2 − LN2 ≈ 2.3·10⁻¹⁷`).
const LN2: f64 = std::f64::consts::LN_2;

/// `e^x` for `x ≤ 0` (the `e^{−|η|}` of a logistic likelihood), branch free, two operations
/// fewer than [`exp`]: the same polynomial, a one-constant reduction `r = x − n·LN2` (one
/// fused multiply-add instead of two) and the biased exponent of `2ⁿ` taken directly from the
/// rounding constant. The reduction's error `|n|·2.3·10⁻¹⁷` in `r` makes the relative error
/// `4 ulp + |n|·2.4·10⁻¹⁷` (`n = round(x/ln 2) ≥ −1022`; at most `2.5·10⁻¹⁴` relative near
/// −708) while the absolute error stays below `4 ulp + 2·10⁻¹⁷` (the relative excess is
/// multiplied by `e^x ≤ 2^{−|n|+½}`; unit test, run on a baseline x86-64 build too). For sums
/// of `e^x`, `1/(1 + e^x)` or
/// `ln(1 + e^x)`, where only the absolute error counts. Arguments below −708 give
/// `exp(−708)`; positive arguments give garbage.
#[inline(always)]
pub(crate) fn exp_nonpos(x: f64) -> f64 {
    let x = if x < -708.0 { -708.0 } else { x };
    let t = fmadd(x, LOG2E, ROUND_BIASED);
    let n = t - ROUND_BIASED;
    let r = fmadd(-n, LN2, x);
    exp_poly(r) * f64::from_bits(t.to_bits() << 52)
}

#[cfg(test)]
mod tests {
    /// `ln_1p_unit` against `f64::ln_1p` on a fine grid of `[0, 1]`, a log grid down to
    /// 1e-300, and around the switch at ½: within 4 ulp relative.
    #[test]
    fn ln_1p_unit_matches_std() {
        let check = |x: f64| {
            let (a, b) = (super::ln_1p_unit(x), x.ln_1p());
            let e = if b == 0.0 {
                a.abs()
            } else {
                ((a - b) / b).abs()
            };
            assert!(e < 4.0 * f64::EPSILON, "x = {x:e}: {a:e} vs {b:e}");
        };
        for i in 0..=200_000 {
            check(i as f64 / 200_000.0);
        }
        let mut x = 1e-300;
        while x < 1.0 {
            check(x);
            x *= 1.01;
        }
        for k in -64..=64 {
            check(f64::from_bits(0.5f64.to_bits().wrapping_add_signed(k)));
        }
        check(1.0);
    }

    /// `for_normals` hands out pieces that tile `0..len` in order, exactly once, for every
    /// length across the refill boundaries, and draws one word per pair of each refill (the
    /// generator ends where `ceil(refill/2)` words per refill leave it).
    #[test]
    fn fill_normals_matches_the_word_by_word_reference() {
        // Each output is the documented function of its word, for refills of every size
        // (transforming only the words in use must not leak stale values of an earlier refill
        // or of an earlier call).
        use rand::{Rng, SeedableRng, rngs::ChaCha8Rng};
        let mut out = vec![0.0; 1100];
        for len in (0..=300).chain([1000, 1023, 1024, 1025]) {
            // A previous call with other words leaves other values in any reused storage.
            super::fill_normals(&mut ChaCha8Rng::seed_from_u64(99), &mut out[..len]);
            super::fill_normals(&mut ChaCha8Rng::seed_from_u64(len as u64), &mut out[..len]);
            let mut rng = ChaCha8Rng::seed_from_u64(len as u64);
            let mut start = 0;
            while start < len {
                let n = (len - start).min(super::NORMAL_CHUNK);
                let pairs = n.div_ceil(2);
                for p in 0..pairs {
                    let w = rng.next_u64();
                    let (c, s) = super::box_muller_angle(w, super::box_muller_radius(w));
                    assert_eq!(out[start + p].to_bits(), c.to_bits(), "len {len} cos {p}");
                    if pairs + p < n {
                        let z = out[start + pairs + p];
                        assert_eq!(z.to_bits(), s.to_bits(), "len {len} sin {p}");
                    }
                }
                start += n;
            }
        }
    }

    #[test]
    fn for_normals_pieces_tile_the_output_in_order() {
        use rand::{Rng, SeedableRng, rngs::ChaCha8Rng};
        for len in (0..=300).chain([1000, 1023, 1024, 1025]) {
            let mut rng = ChaCha8Rng::seed_from_u64(len as u64);
            let mut next = 0;
            let mut seen = 0;
            super::for_normals(&mut rng, len, |start, z| {
                assert_eq!(start, next, "len {len}: piece out of order");
                assert!(z.iter().all(|v| v.is_finite()));
                next += z.len();
                seen += z.len();
            });
            assert_eq!((next, seen), (len, len), "len {len}");
            let words: usize = (0..len)
                .step_by(super::NORMAL_CHUNK)
                .map(|s| (len - s).min(super::NORMAL_CHUNK).div_ceil(2))
                .sum();
            let mut reference = ChaCha8Rng::seed_from_u64(len as u64);
            for _ in 0..words {
                reference.next_u64();
            }
            assert_eq!(
                rng.next_u64(),
                reference.next_u64(),
                "len {len}: words drawn"
            );
        }
    }

    /// `fill_normals` in short calls (as a ULA chain makes them): moments, quantiles and
    /// lag-1 correlation of 10⁶ draws made of calls of every length 1..=40 (partial refills),
    /// the pair correlation of full refills, determinism and the layout of a partial refill.
    #[test]
    fn fill_normals_in_short_calls_is_standard_normal() {
        use rand::SeedableRng;
        let n = 1_000_000;
        let mut z = vec![0.0; n];
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(9);
        let mut i = 0;
        let mut len = 1;
        while i < n {
            let l = len.min(n - i);
            super::fill_normals(&mut rng, &mut z[i..i + l]);
            i += l;
            len = if len == 40 { 1 } else { len + 1 };
        }
        assert_standard_normal(&z);
        let nf = n as f64;
        // Lag-1 correlation of the stream (neighbours inside and across calls); SE 1/√n.
        let lag1 = z.windows(2).map(|w| w[0] * w[1]).sum::<f64>() / nf;
        assert!(lag1.abs() < 5.0 / nf.sqrt(), "lag-1 correlation {lag1}");
        let mut big = vec![0.0; 160_000];
        super::fill_normals(&mut rng, &mut big);
        assert_pairs_uncorrelated(&big);
        assert!(big.iter().all(|v| v.is_finite() && v.abs() < 7.5));
        // Same state, same draws; a 5-draw call is the cosines of 3 words, then the sines of
        // the first 2 (of a full refill: entries 0, 1, 2, 64, 65).
        let mut a = [0.0; 128];
        let mut b = [0.0; 5];
        super::fill_normals(&mut rand::rngs::ChaCha8Rng::seed_from_u64(1), &mut a);
        super::fill_normals(&mut rand::rngs::ChaCha8Rng::seed_from_u64(1), &mut b);
        assert_eq!(b, [a[0], a[1], a[2], a[64], a[65]]);
    }

    #[test]
    fn matches_std_exp() {
        // `exp` against f64::exp (glibc, < 1 ulp): a grid of [−708, 709] and densely around
        // the reduced range's edges (|r| ≈ ln2/2, where the polynomial error peaks); bound
        // 4 ulp relative, as the module docs state.
        let mut worst = 0.0_f64;
        let mut check = |x: f64| {
            let b = x.exp();
            worst = worst.max(((super::exp(x) - b) / b).abs());
        };
        let mut x = -708.0;
        while x < 709.0 {
            check(x);
            x += 0.012_345_678_9;
        }
        let h = 0.5 * std::f64::consts::LN_2;
        for k in -3000..3000 {
            for c in [-h, h, 3.0 * h, -5.0 * h] {
                check(c + k as f64 * 1e-7);
            }
        }
        assert!(worst < 4.0 * f64::EPSILON, "exp: worst {worst:e}");
        assert!(super::exp(-1e300) < 1e-307);
        assert_eq!(super::exp(0.0), 1.0);
    }

    /// `exp_nonpos` against f64::exp on `[−708, 0]` (a fine grid, the reduced range's edges,
    /// and near 0): relative error within `4 ulp + |n|·2.4·10⁻¹⁷` (`n = round(x/ln 2)`, the
    /// one-constant reduction's share) and absolute error within `4 ulp + 2·10⁻¹⁷`, as its
    /// docs state; `exp_nonpos(0) = 1`, and arguments below −708 give `exp(−708)`.
    #[test]
    fn exp_nonpos_is_within_its_stated_bounds() {
        let (mut worst_rel, mut worst_abs) = (0.0_f64, 0.0_f64);
        // The reduction's share per unit of |n| and the absolute excess (the reduction is
        // one fused multiply-add on every target).
        let (per_n, abs_excess) = (2.4e-17, 2e-17);
        let mut check = |x: f64| {
            let (a, b) = (super::exp_nonpos(x), x.exp());
            let n = (x / std::f64::consts::LN_2).round().abs();
            let rel = ((a - b) / b).abs();
            assert!(
                rel <= 4.0 * f64::EPSILON + n * per_n,
                "x = {x}: relative {rel:e}"
            );
            let abs = (a - b).abs();
            assert!(
                abs <= 4.0 * f64::EPSILON + abs_excess,
                "x = {x}: absolute {abs:e}"
            );
            worst_rel = worst_rel.max(rel);
            worst_abs = worst_abs.max(abs);
        };
        let mut x = -708.0;
        while x <= 0.0 {
            check(x);
            x += 0.001_234_567_89;
        }
        let h = 0.5 * std::f64::consts::LN_2;
        for k in -3000..3000 {
            for c in [-h, -3.0 * h, -1021.0 * h, -2041.0 * h] {
                check(c + k as f64 * 1e-7);
            }
        }
        for k in 1..=2000 {
            check(-(k as f64) * 1e-12);
        }
        check(-708.0);
        assert_eq!(super::exp_nonpos(0.0), 1.0);
        assert_eq!(super::exp_nonpos(-1e300), super::exp_nonpos(-708.0));
        // The reduction's share is visible (the bound is not vacuous) yet small.
        let worst_rel_max = 3e-14;
        assert!(worst_rel < worst_rel_max && worst_abs < 3.0 * f64::EPSILON);
    }
    #[test]
    fn exp_fast_is_within_its_stated_bound() {
        // Relative error against f64::exp (glibc, < 1 ulp) on a fine grid of [−708, 709] and
        // densely on [−40, 0], the range of softmax weights: stated bound 1e-13.
        let mut worst = 0.0_f64;
        let mut check = |x: f64| {
            let (a, b) = (super::exp_fast(x), x.exp());
            worst = worst.max(((a - b) / b).abs());
        };
        let mut x = -708.0;
        while x < 709.0 {
            check(x);
            x += 0.003_456_789;
        }
        for k in 0..400_000 {
            check(-40.0 * k as f64 / 400_000.0);
        }
        assert!(worst < 1e-13, "worst relative error {worst:e}");
        // Not accidentally exact: the degree-9 polynomial is coarser than exp's.
        assert!(worst > 4.0 * f64::EPSILON, "worst relative error {worst:e}");
        assert_eq!(super::exp_fast(0.0), 1.0);
        assert!(super::exp_fast(-1e300) < 1e-307 && super::exp_fast(-1e300) > 0.0);
    }

    #[test]
    fn ln_matches_std_ln() {
        // Relative error where |ln x| ≥ 1, absolute below; and relative just below 1 (the
        // Box–Muller range). Bound 4 ulp.
        let mut worst = 0.0_f64;
        let mut x = 1e-300_f64;
        while x < 1e300 {
            let (a, b) = (super::ln(x), x.ln());
            worst = worst.max((a - b).abs() / b.abs().max(1.0));
            x *= 1.001_234_567;
        }
        for k in 1..100_000u64 {
            let x = 1.0 - k as f64 * 1e-6;
            let (a, b) = (super::ln(x), x.ln());
            worst = worst.max(((a - b) / b).abs());
        }
        // Every 40-bit Box–Muller argument's neighbourhood: u = j/2⁴⁰ for j near 2⁴⁰.
        for j in 1..10_000u64 {
            let x = (1u64 << 40).wrapping_sub(j * 97) as f64 / 1_099_511_627_776.0;
            let (a, b) = (super::ln(x), x.ln());
            worst = worst.max(((a - b) / b).abs());
        }
        assert!(worst < 4.0 * f64::EPSILON, "worst relative error {worst:e}");
        assert_eq!(super::ln(1.0), 0.0);
    }

    #[test]
    fn radius_uniform_is_exact() {
        // The FMA form of u equals (k + 1)/2⁴⁰ computed in integers, for the extreme words and
        // a spread of others (exact: no rounding either way).
        let words = [0, u64::MAX, 1 << 24, (1 << 24) - 1, 0x8000_0000_0000_0000]
            .into_iter()
            .chain((0..10_000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        for w in words {
            let exact = ((w >> 24) + 1) as f64 / 1_099_511_627_776.0;
            let u = super::radius_uniform(w);
            assert_eq!(u.to_bits(), exact.to_bits(), "word {w:#x}");
        }
    }

    /// The conversion-free forms equal the integer conversions they replace, bit for bit:
    /// `u52_to_f64` on `[0, 2⁵²)` (ends, powers of two, a spread), and `ln`'s exponent for
    /// every biased exponent field and both signs (the reduction's `ix` spans all 64 bits).
    #[test]
    fn conversions_without_convert_instructions_are_exact() {
        let spread = (0..20_000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let ks = [0, 1, 2, (1 << 52) - 1, 1 << 40, (1 << 40) - 1, 1 << 22]
            .into_iter()
            .chain(spread.clone().map(|w| w >> 12))
            .chain(spread.clone().map(|w| w >> 24));
        for k in ks {
            let want = (k as f64).to_bits();
            assert_eq!(super::u52_magic(k).to_bits(), want, "k = {k}");
            assert_eq!(super::u52_to_f64(k).to_bits(), want, "k = {k}");
        }
        let ixs = (0..4096u64)
            .map(|e| e << 52)
            .chain((0..4096u64).map(|e| (e << 52) | 0x000F_FFFF_FFFF_FFFF))
            .chain(spread);
        for ix in ixs {
            let want = (((ix as i64) >> 52) as f64).to_bits();
            assert_eq!(super::ln_exponent_magic(ix).to_bits(), want, "ix = {ix:#x}");
            assert_eq!(super::ln_exponent(ix).to_bits(), want, "ix = {ix:#x}");
        }
    }

    #[test]
    fn cos_sin_quarter_match_std() {
        let mut worst = 0.0_f64;
        for k in -10_000..=10_000 {
            let phi = k as f64 * std::f64::consts::FRAC_PI_4 / 10_000.0;
            let (c, s) = super::cos_sin_quarter(phi);
            worst = worst.max((c - phi.cos()).abs()).max((s - phi.sin()).abs());
        }
        // Absolute error; |cos|, |sin| ≤ 1, so this is a few ulp.
        assert!(worst < 3.0 * f64::EPSILON, "worst error {worst:e}");
    }

    #[test]
    fn fill_normals_has_standard_normal_moments_and_quantiles() {
        use rand::SeedableRng;
        let n = 1_000_001; // odd: exercises the discarded half pair
        let mut z = vec![0.0; n];
        super::fill_normals(&mut rand::rngs::ChaCha8Rng::seed_from_u64(5), &mut z);
        assert_standard_normal(&z);
        assert_pairs_uncorrelated(&z);
    }

    /// Moments and quantiles of draws meant to be standard normal, every draw finite and
    /// inside the generator's largest radius 7.45: `E Z`, `E Z²`, `E Z⁴` within 5 standard
    /// errors (`1/√n`, `√2/√n`, `√96/√n`: Var Z⁴ = 105 − 9) and `P(Z ≤ q)` at seven quantiles
    /// within 5 SE (`√(p(1 − p)/n)`).
    fn assert_standard_normal(z: &[f64]) {
        let nf = z.len() as f64;
        assert!(z.iter().all(|v| v.is_finite() && v.abs() < 7.5));
        let m1 = z.iter().sum::<f64>() / nf;
        let m2 = z.iter().map(|v| v * v).sum::<f64>() / nf;
        let m4 = z.iter().map(|v| v.powi(4)).sum::<f64>() / nf;
        assert!(m1.abs() < 5.0 / nf.sqrt(), "mean {m1}");
        assert!(
            (m2 - 1.0).abs() < 5.0 * 2f64.sqrt() / nf.sqrt(),
            "E Z² {m2}"
        );
        assert!(
            (m4 - 3.0).abs() < 5.0 * 96f64.sqrt() / nf.sqrt(),
            "E Z⁴ {m4}"
        );
        for (q, p) in [
            (-2.575_829, 0.005),
            (-1.959_964, 0.025),
            (-0.994_458, 0.16),
            (0.0, 0.5),
            (0.994_458, 0.84),
            (1.959_964, 0.975),
            (2.575_829, 0.995),
        ] {
            let f = z.iter().filter(|v| **v <= q).count() as f64 / nf;
            let se = (p * (1.0 - p) / nf).sqrt();
            assert!((f - p).abs() < 5.0 * se, "P(Z <= {q}) = {f}, expected {p}");
        }
    }

    /// The cosine and sine draws of one word (64 apart in every full refill of 128) are
    /// uncorrelated: mean product within 5 SE (`1/√pairs`).
    fn assert_pairs_uncorrelated(z: &[f64]) {
        let (c, k) = z
            .chunks_exact(128)
            .flat_map(|g| g[..64].iter().zip(&g[64..]))
            .fold((0.0, 0.0), |(s, k), (a, b)| (s + a * b, k + 1.0));
        assert!(
            (c / k).abs() < 5.0 / f64::sqrt(k),
            "pair correlation {}",
            c / k
        );
    }
}
