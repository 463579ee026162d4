//! Helpers shared by the integration tests.
#![allow(dead_code)]

use nalgebra::{DMatrix, SMatrix};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

/// A deterministic RNG for a test.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A random orthogonal matrix (QR of a Gaussian matrix).
pub fn random_rotation<const N: usize>(rng: &mut ChaCha8Rng) -> SMatrix<f64, N, N> {
    let g = DMatrix::<f64>::from_fn(N, N, |_, _| rng.sample(StandardNormal));
    SMatrix::<f64, N, N>::from_column_slice(g.qr().q().as_slice())
}

/// `Q diag(eigs) Qᵀ` with a random rotation `Q`.
pub fn spd_with_spectrum<const N: usize>(
    eigs: [f64; N],
    rng: &mut ChaCha8Rng,
) -> SMatrix<f64, N, N> {
    let q = random_rotation::<N>(rng);
    let m = q * SMatrix::<f64, N, N>::from_diagonal(&eigs.into()) * q.transpose();
    (m + m.transpose()) * 0.5
}

/// Sample mean and unbiased sample covariance of the columns of `x` (d × M).
pub fn moments(x: &DMatrix<f64>) -> (nalgebra::DVector<f64>, DMatrix<f64>) {
    let m = x.ncols() as f64;
    let mean = x.column_mean();
    let mut c = x.clone();
    for mut col in c.column_iter_mut() {
        col -= &mean;
    }
    let cov = &c * c.transpose() / (m - 1.0);
    (mean, cov)
}

/// Gauss–Legendre nodes and weights on [a, b] (Newton's method on the Legendre polynomial).
pub fn gauss_legendre(n: usize, a: f64, b: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 0.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=n {
                let p2 = ((2 * k - 1) as f64 * x * p1 - (k - 1) as f64 * p0) / k as f64;
                p0 = p1;
                p1 = p2;
            }
            dp = n as f64 * (x * p1 - p0) / (x * x - 1.0);
            let dx = p1 / dp;
            x -= dx;
            if dx.abs() < 1e-15 {
                break;
            }
        }
        let w = 2.0 / ((1.0 - x * x) * dp * dp);
        out.push((0.5 * (b - a) * x + 0.5 * (b + a), 0.5 * (b - a) * w));
    }
    out
}
