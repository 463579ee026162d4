//! Fast, vectorisable elementary functions shared by the hot loops (kernel evaluations of the
//! SVGD pair engine, mixture scores, logistic likelihoods).
//!
//! Branch-free `exp` and `ln_1p` that the compiler vectorises.
//!
//! Cody–Waite reduction `x = n·ln2 + r`, `|r| ≤ ln2/2`, the degree-13 Taylor polynomial of
//! `e^r` (truncation error `|r|¹⁴/14! < 5·10⁻¹⁸`), and the scale `2ⁿ` built from the bits of
//! the rounding constant. Relative error a few ulp against `f64::exp` on `[−708, 709]`;
//! arguments below −708 give `exp(−708) ≈ 3·10⁻³⁰⁸` instead of a subnormal or 0 (an absolute
//! difference below 10⁻³⁰⁷, far below any tolerance of a kernel sum).

/// 1.5·2⁵²: adding it rounds to the nearest integer and leaves that integer in the low bits.
const ROUND: f64 = 6_755_399_441_055_744.0;
const LOG2E: f64 = std::f64::consts::LOG2_E;
/// ln 2 split so that `n·LN2_HI` is exact for |n| < 2¹¹.
const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);

/// `e^x` for `x ≤ 709`, branch free (see the module docs for the accuracy).
#[inline(always)]
pub(crate) fn exp(x: f64) -> f64 {
    let x = if x < -708.0 { -708.0 } else { x };
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // Horner on 1 + r + r²/2! + … + r¹³/13!.
    let mut p = 1.0 / 6_227_020_800.0;
    p = p * r + 1.0 / 479_001_600.0;
    p = p * r + 1.0 / 39_916_800.0;
    p = p * r + 1.0 / 3_628_800.0;
    p = p * r + 1.0 / 362_880.0;
    p = p * r + 1.0 / 40_320.0;
    p = p * r + 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // Low 12 bits of t's representation hold n (mod 4096); n + 1023 ∈ [1, 2046] here.
    let scale = f64::from_bits(t.to_bits().wrapping_add(1023) << 52);
    p * scale
}

/// `ln(1 + x)` for finite `x > −1`, branch free (relative error a few ulp against
/// `f64::ln_1p`; see the unit test).
///
/// `u = 1 + x` rounded, with the rounding error restored by the first-order correction
/// `c = (x − (u − 1))/u`; `u = 2ᵏm` with `m ∈ [√½, √2)` read from the bits; `ln m = 2 atanh s`,
/// `s = (m − 1)/(m + 1)`, `|s| ≤ 0.172`, by its odd series to `s²³` (truncation below
/// `0.172²⁴/25 < 10⁻¹⁹`).
#[inline(always)]
#[cfg_attr(not(test), allow(dead_code))] // the hot loops call `ln_1p_with`
pub(crate) fn ln_1p(x: f64) -> f64 {
    let u = 1.0 + x;
    ln_1p_with(x, u, 1.0 / u)
}

/// [`ln_1p`] given `u = 1 + x` (rounded) and `inv_u = 1/u` (a caller that needs `1/(1 + x)`
/// anyway, like the logistic function, saves a division).
#[inline(always)]
pub(crate) fn ln_1p_with(x: f64, u: f64, inv_u: f64) -> f64 {
    let c = (x - (u - 1.0)) * inv_u;
    // Exponent and mantissa of u, with the mantissa moved into [√½, √2).
    let bits = u.to_bits();
    // Adding (1 − √½)·2⁵² worth of mantissa carries into the exponent exactly when m ≥ √2.
    let shifted = bits.wrapping_add(0x0009_5F61_9980_C433);
    let k = ((shifted >> 52) as i64 - 1023) as f64;
    let m = f64::from_bits((shifted & 0x000F_FFFF_FFFF_FFFF).wrapping_add(0x3FE6_A09E_667F_3BCD));
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut p = 1.0 / 23.0;
    p = p * s2 + 1.0 / 21.0;
    p = p * s2 + 1.0 / 19.0;
    p = p * s2 + 1.0 / 17.0;
    p = p * s2 + 1.0 / 15.0;
    p = p * s2 + 1.0 / 13.0;
    p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    let ln_m = 2.0 * s + 2.0 * s * s2 * p;
    k * LN2_HI + (ln_m + (k * LN2_LO + c))
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_std_ln_1p() {
        // Relative error against f64::ln_1p on a log grid of positive x (tiny to 1e300), on
        // (−1, 0), and around the mantissa break points √2 and √½ of 1 + x.
        let mut worst = 0.0_f64;
        let mut check = |x: f64| {
            let (a, b) = (super::ln_1p(x), x.ln_1p());
            let e = if b == 0.0 {
                a.abs()
            } else {
                ((a - b) / b).abs()
            };
            assert!(e < 4.0 * f64::EPSILON, "x = {x:e}: {a:e} vs {b:e}");
            worst = worst.max(e);
        };
        let mut x = 1e-300;
        while x < 1e300 {
            check(x);
            x *= 1.000_9;
        }
        let mut x = -0.999_999;
        while x < 0.0 {
            check(x);
            x += 1.234_567e-5;
        }
        for b in [
            std::f64::consts::SQRT_2 - 1.0,
            std::f64::consts::FRAC_1_SQRT_2 - 1.0,
        ] {
            for k in -2000..2000 {
                check(b + k as f64 * f64::EPSILON);
            }
        }
        check(0.0);
        assert_eq!(super::ln_1p(0.0), 0.0);
        assert!(worst > 0.0 && worst < 4.0 * f64::EPSILON, "worst {worst:e}");
    }

    #[test]
    fn matches_std_exp() {
        let mut worst = 0.0_f64;
        let mut x = -708.0;
        while x < 709.0 {
            let (a, b) = (super::exp(x), x.exp());
            worst = worst.max(((a - b) / b).abs());
            x += 0.012_345_678_9;
        }
        assert!(worst < 4.0 * f64::EPSILON, "worst relative error {worst:e}");
        assert!(super::exp(-1e300) < 1e-307);
        assert_eq!(super::exp(0.0), 1.0);
    }
}
