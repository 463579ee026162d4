//! The blocked batch kernel of [`super::LogisticRegression`] for `d > FUSED_MAX_D`: both
//! matrix products of the gradient (`η = AΘ`, `∇ = AᵀR`) fused with the logistic pass between
//! them, one block of observations at a time, with the chains along the vector lanes.
//!
//! Layouts: `Θ` is copied chain-minor (`xt[k·cp + c]`, `cp` the chain count rounded up to 8,
//! padding chains zero), the design is read row by row (`Aᵀ`, column-major: observation `i`'s
//! features contiguous), and the gradient accumulates chain-minor in `gt` (`gt[k·cp + c]`).
//! For each block of [`ROWS`] observations:
//!
//! 1. `E[i][c] = Σ_k a_ik θ_kc` (register tiles of chain vectors × observations, `k` inner);
//! 2. `E[i][c] ← logistic(E[i][c]) − y_i` (and, with energies, `Σ softplus − yη` per chain);
//! 3. `gt[k][c] += Σ_i a_ik E[i][c]` (register tiles of chain vectors × features, `i` inner).
//!
//! The block of `E` (`ROWS × cp`) stays in the first-level cache between the three steps, and
//! neither product packs anything per call: `Aᵀ` is the posterior's own copy, `Θ` is
//! transposed once per call (O(dC)). Each output's sum runs in a fixed order (over `k` for
//! `η`, over the observations for `∇`) whatever the register tile's shape, so the two tile
//! shapes (32 registers of 512 bits, or 16 of 256) give the same bits.

use crate::fastmath::{self, axpy8, c8};

/// Observations per block.
pub(super) const ROWS: usize = 64;
// The product of a block's `1 + e` factors (each in `[1, 2]`) must stay below `2⁶⁴`.
const _: () = assert!(ROWS <= 64);

/// `eta_R::<M>`: `e[(r0 + r)·cp + c0 + 8m + t] = Σ_k rows[(r0 + r)·d + k] · xt[k·cp + c0 +
/// 8m + t]` for `R` observations and `M` chain vectors (`M·R` accumulators of 8 lanes, one
/// named array per observation so that they stay in registers).
macro_rules! eta_tile {
    ($name:ident; $($acc:ident $row:ident $r:literal),+) => {
        #[inline(always)]
        #[allow(clippy::too_many_arguments)]
        fn $name<const M: usize>(
            xt: &[f64],
            cp: usize,
            d: usize,
            c0: usize,
            rows: &[f64],
            r0: usize,
            e: &mut [f64],
        ) {
            $(
                let $row = &rows[(r0 + $r) * d..][..d];
                let mut $acc = [[0.0f64; 8]; M];
            )+
            for (k, xk) in xt.chunks_exact(cp).take(d).enumerate() {
                let xk = &xk[c0..][..8 * M];
                $(
                    let s = $row[k];
                    for m in 0..M {
                        axpy8(&mut $acc[m], s, c8(xk, 8 * m));
                    }
                )+
            }
            $(
                for m in 0..M {
                    e[(r0 + $r) * cp + c0 + 8 * m..][..8].copy_from_slice(&$acc[m]);
                }
            )+
        }
    };
}

eta_tile!(eta_8; a0 w0 0, a1 w1 1, a2 w2 2, a3 w3 3, a4 w4 4, a5 w5 5, a6 w6 6, a7 w7 7);
eta_tile!(eta_6; a0 w0 0, a1 w1 1, a2 w2 2, a3 w3 3, a4 w4 4, a5 w5 5);
eta_tile!(eta_1; a0 w0 0);

/// `grad_F::<M>`: `gt[(k0 + f)·cp + c0 + 8m + t] += Σ_i rows[i·d + k0 + f] · e[i·cp + c0 + 8m
/// + t]` over the block's `nb` observations in order, for `F` features and `M` chain vectors.
macro_rules! grad_tile {
    ($name:ident, $n:literal; $($acc:ident $f:literal),+) => {
        #[inline(always)]
        #[allow(clippy::too_many_arguments)]
        fn $name<const M: usize>(
            e: &[f64],
            cp: usize,
            d: usize,
            c0: usize,
            rows: &[f64],
            nb: usize,
            k0: usize,
            gt: &mut [f64],
        ) {
            $(
                let mut $acc: [[f64; 8]; M] =
                    std::array::from_fn(|m| *c8(gt, (k0 + $f) * cp + c0 + 8 * m));
            )+
            for (a, ei) in rows.chunks_exact(d).zip(e.chunks_exact(cp)).take(nb) {
                let a = &a[k0..][..$n];
                let ev = &ei[c0..][..8 * M];
                $(
                    let s = a[$f];
                    for m in 0..M {
                        axpy8(&mut $acc[m], s, c8(ev, 8 * m));
                    }
                )+
            }
            $(
                for m in 0..M {
                    gt[(k0 + $f) * cp + c0 + 8 * m..][..8].copy_from_slice(&$acc[m]);
                }
            )+
        }
    };
}

grad_tile!(grad_8, 8; a0 0, a1 1, a2 2, a3 3, a4 4, a5 5, a6 6, a7 7);
grad_tile!(grad_6, 6; a0 0, a1 1, a2 2, a3 3, a4 4, a5 5);
grad_tile!(grad_4, 4; a0 0, a1 1, a2 2, a3 3);
grad_tile!(grad_1, 1; a0 0);

/// The chain panels of `cp` lanes: `(c0, full)`, the first lane and whether the panel is 3
/// vectors wide (`WIDE` registers, while 3 are left) or a single vector (otherwise).
#[inline(always)]
fn chain_panels<const WIDE: bool>(cp: usize) -> impl Iterator<Item = (usize, bool)> {
    let (nv, pm) = (cp / 8, if WIDE { 3 } else { 1 });
    let mut v = 0;
    std::iter::from_fn(move || {
        (v < nv).then(|| {
            let full = v + pm <= nv;
            let c0 = 8 * v;
            v += if full { pm } else { 1 };
            (c0, full)
        })
    })
}

/// Step 1 for one block: chain panels of 3 vectors × 8 observations with `WIDE` registers,
/// else single vectors × 6 observations; then the leftover chain vectors and observations.
#[inline(always)]
fn eta_block<const WIDE: bool>(
    xt: &[f64],
    cp: usize,
    d: usize,
    rows: &[f64],
    nb: usize,
    e: &mut [f64],
) {
    let pr = if WIDE { 8 } else { 6 };
    for (c0, full) in chain_panels::<WIDE>(cp) {
        let mut r0 = 0;
        while r0 + pr <= nb {
            match (WIDE, full) {
                (true, true) => eta_8::<3>(xt, cp, d, c0, rows, r0, e),
                (true, false) => eta_8::<1>(xt, cp, d, c0, rows, r0, e),
                (false, _) => eta_6::<1>(xt, cp, d, c0, rows, r0, e),
            }
            r0 += pr;
        }
        while r0 < nb {
            if WIDE && full {
                eta_1::<3>(xt, cp, d, c0, rows, r0, e);
            } else {
                eta_1::<1>(xt, cp, d, c0, rows, r0, e);
            }
            r0 += 1;
        }
    }
}

/// Step 3 for one block: chain panels of 3 vectors × 8 features with `WIDE` registers, else
/// single vectors × 6 features; then the leftover chain vectors and features (4, then 1).
#[inline(always)]
fn grad_block<const WIDE: bool>(
    e: &[f64],
    cp: usize,
    d: usize,
    rows: &[f64],
    nb: usize,
    gt: &mut [f64],
) {
    let pf = if WIDE { 8 } else { 6 };
    for (c0, full) in chain_panels::<WIDE>(cp) {
        let mut k0 = 0;
        while k0 + pf <= d {
            match (WIDE, full) {
                (true, true) => grad_8::<3>(e, cp, d, c0, rows, nb, k0, gt),
                (true, false) => grad_8::<1>(e, cp, d, c0, rows, nb, k0, gt),
                (false, _) => grad_6::<1>(e, cp, d, c0, rows, nb, k0, gt),
            }
            k0 += pf;
        }
        while k0 + 4 <= d {
            if WIDE && full {
                grad_4::<3>(e, cp, d, c0, rows, nb, k0, gt);
            } else {
                grad_4::<1>(e, cp, d, c0, rows, nb, k0, gt);
            }
            k0 += 4;
        }
        while k0 < d {
            if WIDE && full {
                grad_1::<3>(e, cp, d, c0, rows, nb, k0, gt);
            } else {
                grad_1::<1>(e, cp, d, c0, rows, nb, k0, gt);
            }
            k0 += 1;
        }
    }
}

/// The whole batch: `gt` (zeroed by the caller) receives `Σ_i a_i (logistic(η_i) − y_i)` per
/// chain (chain-minor), and with `ENERGY` `lik[c]` (`2cp` entries, the first `cp` zeroed by
/// the caller, the rest scratch) receives `Σ_i softplus(η_ic) − y_i η_ic`, the softplus
/// logarithms taken once per block and chain, of the product of the block's `1 + e^{−|η|}`
/// (at most 64 factors in `[1, 2]`: the rounding bound of `super::fused_tile` applies).
/// `at`: the design row by row (`n × d`), `xt`: `Θ` chain-minor (`d × cp`), `e`: scratch of
/// `ROWS × cp`; `wide`: the register tiles for 32 registers of 512 bits.
#[allow(clippy::too_many_arguments)]
pub(super) fn batch<const ENERGY: bool>(
    wide: bool,
    at: &[f64],
    labels: &[f64],
    d: usize,
    xt: &[f64],
    cp: usize,
    gt: &mut [f64],
    e: &mut [f64],
    lik: &mut [f64],
) {
    crate::simd::dispatch(
        #[inline(always)]
        || {
            if wide {
                blocks::<ENERGY, true>(at, labels, d, xt, cp, gt, e, lik);
            } else {
                blocks::<ENERGY, false>(at, labels, d, xt, cp, gt, e, lik);
            }
        },
    )
}

/// [`batch`] for one register-tile shape.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn blocks<const ENERGY: bool, const WIDE: bool>(
    at: &[f64],
    labels: &[f64],
    d: usize,
    xt: &[f64],
    cp: usize,
    gt: &mut [f64],
    e: &mut [f64],
    lik: &mut [f64],
) {
    for (rows, ys) in at.chunks(ROWS * d).zip(labels.chunks(ROWS)) {
        let nb = ys.len();
        eta_block::<WIDE>(xt, cp, d, rows, nb, e);
        let (lik, prod) = lik.split_at_mut(cp);
        if ENERGY {
            prod.fill(1.0);
        }
        for (ei, &y) in e.chunks_exact_mut(cp).zip(ys) {
            if ENERGY {
                // softplus(η) = max(η, 0) + ln(1 + e^{−|η|}): the logarithms of the block as
                // one logarithm of the product of the `1 + e` (see `super::fused_tile`).
                for ((v, l), p) in ei.iter_mut().zip(lik.iter_mut()).zip(prod.iter_mut()) {
                    let ex = fastmath::exp_nonpos(-v.abs());
                    let (x, sig) = super::sigmoid_parts(*v, ex);
                    *l += v.max(0.0) - y * *v;
                    *p *= x;
                    *v = sig - y;
                }
            } else {
                for v in ei.iter_mut() {
                    *v = super::sigmoid(*v) - y;
                }
            }
        }
        if ENERGY {
            for (l, &p) in lik.iter_mut().zip(prod.iter()) {
                *l += fastmath::ln(p);
            }
        }
        grad_block::<WIDE>(e, cp, d, rows, nb, gt);
    }
}
