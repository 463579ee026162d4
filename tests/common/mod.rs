//! Helpers shared by the integration tests.
#![allow(dead_code)]

use klflow::potential::{BatchPotential, Potential};
use nalgebra::{DMatrix, DVector, Dyn, SMatrix};
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

/// `U(x) = x₀²/2` on `x₀ < 1`, `+∞` from there on (gradient `x₀` everywhere, so finite): a
/// target whose energy turns non-finite at a known place. Coordinates after the first do not
/// enter (`dim` is `Dyn(d)`).
pub struct Wall(pub usize);

impl Potential for Wall {
    type Dim = Dyn;
    fn dim(&self) -> Dyn {
        Dyn(self.0)
    }
    fn energy(&self, x: &DVector<f64>) -> f64 {
        if x[0] < 1.0 {
            0.5 * x[0] * x[0]
        } else {
            f64::INFINITY
        }
    }
    fn energy_grad(&self, x: &DVector<f64>, g: &mut DVector<f64>) -> f64 {
        g.fill(0.0);
        g[0] = x[0];
        self.energy(x)
    }
}

impl BatchPotential for Wall {}

/// Runs `f` on 1- and 2-thread rayon pools (once without the `rayon` feature).
pub fn on_pools(f: impl Fn() + Send + Sync) {
    #[cfg(feature = "rayon")]
    for threads in [1, 2] {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(&f);
    }
    #[cfg(not(feature = "rayon"))]
    f();
}
