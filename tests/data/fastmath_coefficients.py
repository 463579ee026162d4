"""Coefficients of src/fastmath.rs's `cos_sin_quarter` (run: python3 fastmath_coefficients.py).

cos φ = 1 − z/2 + z²·C(z), sin φ = φ + φ³·S(z), z = φ², |φ| ≤ π/4: C and S are the degree-5
Chebyshev interpolants (near-minimax) of (cos √z − 1 + z/2)/z² and (sin √z − √z)/√z³ on
[0, (π/4)²], computed in 50-digit arithmetic (mpmath) and rounded to double. Prints, for
4..7 coefficients, the worst absolute error of cos and sin (coefficients rounded, evaluation
exact), then the coefficients used (highest degree first).
"""
import mpmath as mp

mp.mp.dps = 50
Z = (mp.pi / 4) ** 2


def fit(f, n):
    return [float(x) for x in mp.chebyfit(f, [0, Z], n)]


def worst(f, coefs, weight):
    w = 0
    for i in range(2001):
        z = Z * mp.mpf(i) / 2000
        p = mp.mpf(0)
        for c in coefs:
            p = p * z + mp.mpf(c)
        w = max(w, abs(p - f(z)) * weight(z))
    return w


def gc(z):
    return (mp.cos(mp.sqrt(z)) - 1 + z / 2) / z**2 if z > 0 else mp.mpf(1) / 24


def gs(z):
    return (mp.sin(mp.sqrt(z)) - mp.sqrt(z)) / mp.sqrt(z) ** 3 if z > 0 else -mp.mpf(1) / 6


for n in range(4, 8):
    ec = worst(gc, fit(gc, n), lambda z: z * z)
    es = worst(gs, fit(gs, n), lambda z: z**1.5)
    print(n, "coefficients: cos abs err", mp.nstr(ec, 3), "sin abs err", mp.nstr(es, 3))
print("C", [repr(x) for x in fit(gc, 6)])
print("S", [repr(x) for x in fit(gs, 6)])
