//! Special functions the diagnostics need: the standard normal quantile (rank normalisation)
//! and the Beta quantile (quantile MCSE).
//!
//! The normal quantile is Acklam's rational approximation (relative error below 1.2e-9)
//! polished by one Halley step on `Φ(x) − p`, with `Φ` evaluated through `libm`'s `erf`/`erfc`
//! (accurate to about one ulp). Halley's method converges cubically, so one step takes the error
//! to the accuracy of `erfc` itself: the test against SciPy's `ndtri` finds agreement to a few
//! ulps over `p ∈ [1e-300, 1 − 1e-10]`.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// The standard normal CDF `Φ(t)`.
///
/// # Example
///
/// ```
/// use klflow::diagnostics::normal_cdf;
/// assert_eq!(normal_cdf(0.0), 0.5);
/// assert!((normal_cdf(1.959963984540054) - 0.975).abs() < 1e-15);
/// ```
pub fn normal_cdf(t: f64) -> f64 {
    0.5 * libm::erfc(-t * std::f64::consts::FRAC_1_SQRT_2)
}

/// The standard normal quantile function `Φ⁻¹(p)`.
///
/// Returns `−∞` at `p = 0`, `+∞` at `p = 1` and NaN for `p` outside `[0, 1]` or NaN (the
/// diagnostics only call it with `p` strictly inside `(0, 1)`). Relative accuracy is a few
/// ulps, also deep in the tails.
///
/// # Example
///
/// ```
/// use klflow::diagnostics::normal_quantile;
///
/// assert_eq!(normal_quantile(0.5), 0.0);
/// assert!((normal_quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-15);
/// // Symmetric, and accurate in the far tail.
/// assert_eq!(normal_quantile(0.25), -normal_quantile(0.75));
/// assert!((normal_quantile(1e-20) / -9.262_340_089_798_408 - 1.0).abs() < 1e-14);
/// ```
pub fn normal_quantile(p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    if p > 0.5 {
        // 1 − p is exact for p ∈ [0.5, 1] (Sterbenz), so the symmetry costs no accuracy.
        return -normal_quantile(1.0 - p);
    }
    let x = acklam(p);
    // One Halley step on f(x) = Φ(x) − p. In the central region the residual is formed from
    // erf and p − ½ (exact for p ≥ ¼), which keeps relative accuracy near x = 0.
    let residual = if p > P_LOW {
        0.5 * libm::erf(x * FRAC_1_SQRT_2) - (p - 0.5)
    } else {
        0.5 * libm::erfc(-x * FRAC_1_SQRT_2) - p
    };
    let density = (-0.5 * x * x).exp() / (2.0 * PI).sqrt();
    let u = residual / density;
    if !u.is_finite() {
        // Only for subnormal p, where the density underflows.
        return x;
    }
    x - u / (1.0 + 0.5 * x * u)
}

/// Lower breakpoint of Acklam's approximation.
const P_LOW: f64 = 0.02425;

/// Acklam's rational approximation of `Φ⁻¹(p)` for `p ∈ (0, ½]`.
fn acklam(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    if p < P_LOW {
        let q = (-2.0 * p.ln()).sqrt();
        let num = ((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5];
        let den = (((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0;
        num / den
    } else {
        let q = p - 0.5;
        let r = q * q;
        let num = (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q;
        let den = ((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0;
        num / den
    }
}

/// The regularised incomplete Beta function `I_x(a, b)` for `a, b > 0`, `x ∈ [0, 1]`.
///
/// Continued fraction (modified Lentz) on the side of the mode where it converges fast; it
/// needs O(√max(a, b)) terms, so large shape parameters (ESS in the tens of thousands) are fine.
pub(crate) fn beta_cdf(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - beta_cdf_cf(1.0 - x, b, a);
    }
    beta_cdf_cf(x, a, b)
}

/// `I_x(a, b)` by its continued fraction; accurate for `x ≤ (a + 1)/(a + b + 2)`.
fn beta_cdf_cf(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const MAX_TERMS: usize = 100_000;
    let front = beta_prefactor(x, a, b) / a;
    if front == 0.0 {
        return 0.0;
    }
    // Modified Lentz for 0 + 1/(1 + d₁/(1 + d₂/(1 + …))): partial numerators 1, d₁, d₂, …,
    // partial denominators all 1.
    let mut f = TINY;
    let mut c = f;
    let mut d = 0.0;
    for k in 0..MAX_TERMS {
        let numerator = if k == 0 {
            1.0
        } else {
            let m = (k / 2) as f64;
            if k % 2 == 0 {
                m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m))
            } else {
                -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0))
            }
        };
        d = 1.0 + numerator * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + numerator / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() <= 2.0 * f64::EPSILON {
            break;
        }
    }
    (front * f).min(1.0)
}

/// `xᵃ(1 − x)ᵇ / B(a, b)` without the cancellation of `ln Γ` differences at large `a, b`.
///
/// Stirling's formula with its remainder `δ(z) = ln Γ(z) − (z − ½)ln z + z − ½ln 2π` gives
/// `√(ab/(2π(a + b))) · exp(a ln(x(a+b)/a) + b ln((1−x)(a+b)/b) + δ(a+b) − δ(a) − δ(b))`; both
/// logarithms are formed from `t = x(a + b) − a` with `ln_1p` near the mode (where the
/// quantiles live), so the exponent is accurate to about `a·ε` absolute instead of
/// `ln Γ(a + b)·ε` (1e-10 at `a + b = 4·10⁴` with `lgamma` differences).
fn beta_prefactor(x: f64, a: f64, b: f64) -> f64 {
    let t = x * (a + b) - a;
    // Near the mode ln_1p of the small relative deviation; far from it the plain ratio (where
    // t has cancelled and ln_1p would magnify its rounding).
    let ln_a = if (t / a).abs() < 0.5 {
        (t / a).ln_1p()
    } else {
        (x * (a + b) / a).ln()
    };
    let ln_b = if (t / b).abs() < 0.5 {
        (-t / b).ln_1p()
    } else {
        ((1.0 - x) * (a + b) / b).ln()
    };
    let exponent = a * ln_a + b * ln_b + stirling_remainder(a + b)
        - stirling_remainder(a)
        - stirling_remainder(b);
    (a * b / (2.0 * PI * (a + b))).sqrt() * exponent.exp()
}

/// `δ(z) = ln Γ(z) − ((z − ½) ln z − z + ½ ln 2π)`: the asymptotic series for `z ≥ 10` (error
/// below 1e-15), `libm::lgamma` minus Stirling's terms below (where both are small).
fn stirling_remainder(z: f64) -> f64 {
    if z >= 10.0 {
        // Σ B₂ₖ / (2k(2k − 1) z^{2k−1}), k = 1..6.
        const C: [f64; 6] = [
            1.0 / 12.0,
            -1.0 / 360.0,
            1.0 / 1260.0,
            -1.0 / 1680.0,
            1.0 / 1188.0,
            -691.0 / 360_360.0,
        ];
        let w = 1.0 / (z * z);
        let series = C[0] + w * (C[1] + w * (C[2] + w * (C[3] + w * (C[4] + w * C[5]))));
        series / z
    } else {
        libm::lgamma(z) - ((z - 0.5) * z.ln() - z + 0.5 * (2.0 * PI).ln())
    }
}

/// The Beta(a, b) quantile: the `x` with `I_x(a, b) = p`, by bisection to the last bit.
pub(crate) fn beta_quantile(p: f64, a: f64, b: f64) -> f64 {
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    loop {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            return mid;
        }
        if beta_cdf(mid, a, b) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Closed forms: I_x(1, 1) = x, I_x(a, 1) = xᵃ, I_x(1, b) = 1 − (1 − x)ᵇ, and the symmetry
    /// I_x(a, b) = 1 − I_{1−x}(b, a). A wrong continued-fraction coefficient breaks all of them.
    #[test]
    fn beta_cdf_closed_forms() {
        for &x in &[1e-6, 0.01, 0.2, 0.5, 0.77, 0.999] {
            assert!((beta_cdf(x, 1.0, 1.0) - x).abs() < 1e-15);
            for &s in &[0.5, 2.0, 7.5, 300.0] {
                let xa = x.powf(s);
                assert!(
                    (beta_cdf(x, s, 1.0) - xa).abs() < 1e-13 * xa.max(1e-3),
                    "a={s} x={x}"
                );
                let ib = 1.0 - (1.0 - x).powf(s);
                assert!((beta_cdf(x, 1.0, s) - ib).abs() < 1e-13, "b={s} x={x}");
                let (a, b) = (s, 3.0 * s + 1.0);
                let sym = beta_cdf(x, a, b) + beta_cdf(1.0 - x, b, a);
                assert!((sym - 1.0).abs() < 1e-13, "symmetry a={a} b={b} x={x}");
            }
        }
    }

    /// The quantile inverts the CDF, including for the large shapes quantile MCSE uses.
    #[test]
    fn beta_quantile_inverts() {
        for &(a, b) in &[(1.5, 20.0), (2001.0, 38001.0), (2e5, 3.8e6), (0.7, 0.4)] {
            for &p in &[0.1586553, 0.5, 0.8413447] {
                let x = beta_quantile(p, a, b);
                assert!((beta_cdf(x, a, b) - p).abs() < 1e-12, "a={a} b={b} p={p}");
            }
        }
    }

    /// Agreement with SciPy's `beta.ppf` (values in tests/data/arviz_reference.json, written by
    /// tests/data/arviz_reference.py), including the large shapes of quantile MCSE.
    #[test]
    fn beta_quantile_matches_scipy() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/data/arviz_reference.json")).unwrap();
        let mut worst: f64 = 0.0;
        for row in doc["beta_quantile"].as_array().unwrap() {
            let v: Vec<f64> = row
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            let ours = beta_quantile(v[0], v[1], v[2]);
            let d = (ours / v[3] - 1.0).abs();
            assert!(d < 1e-13, "{v:?}: {ours}");
            worst = worst.max(d);
        }
        eprintln!("beta quantile: max relative difference to SciPy {worst:.2e}");
    }

    /// The Halley-polished quantile inverts Φ to near machine precision.
    #[test]
    fn normal_quantile_inverts_phi() {
        for k in 1..200 {
            let p = k as f64 / 200.0;
            let x = normal_quantile(p);
            let phi = 0.5 * libm::erfc(-x * FRAC_1_SQRT_2);
            assert!((phi - p).abs() < 4e-16, "p={p}");
        }
        assert!(normal_quantile(-0.1).is_nan() && normal_quantile(f64::NAN).is_nan());
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
        assert_eq!(normal_quantile(1.0), f64::INFINITY);
        // Subnormal probabilities stay finite and ordered.
        let tiny = normal_quantile(5e-324);
        assert!(tiny.is_finite() && tiny < normal_quantile(1e-300));
    }
}
