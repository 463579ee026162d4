//! Noisy SVGD: SVGD plus Gaussian noise (Priser, Bianchi & Salim 2025; Gallego & Insua 2018;
//! Nüsken & Renger 2023).

use nalgebra::DMatrix;
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;

use crate::error::{Error, Result};
use crate::kernel::Kernel;

/// The noise a [`Svgd`](super::Svgd) step adds after the deterministic update
/// `x_i ← x_i + γ φ_i`.
///
/// With step `γ`, `n` particles and `c = scale`:
///
/// | variant | increment of particle `i` | cost per step |
/// |---|---|---|
/// | [`None`](Noise::None) | 0 (plain SVGD) | — |
/// | [`Isotropic`](Noise::Isotropic) | `c·√(2γ/n)·ξ_i`, `ξ_i ~ N(0, I_d)` iid | O(nd) |
/// | [`KernelCorrelated`](Noise::KernelCorrelated) | `c·√(2γ/n)·(K^{1/2}Ξ)_i`, `K = [k(x_i, x_j)]`, `Ξ` an `n × d` iid normal matrix | O(n³ + n²d) |
///
/// `scale = 1` is the noise of the theory. Isotropic: each particle's own term in `φ_i` is
/// `s(x_i)/n` (with `k(x, x) = 1`), so with `√(2γ/n)ξ_i` every particle contains an exact
/// Langevin step of size `γ/n`. Kernel-correlated: SVGD is the drift of the preconditioned
/// Langevin diffusion `dX = [D∇log π^{⊗n} + ∇·D]dt + √(2D) dB` with `D = K/n ⊗ I_d`, so adding
/// its noise makes `π^{⊗n}` exactly invariant in continuous time. The factor used is the
/// Cholesky factor `L` of `K` (`LLᵀ = K`, same law as `K^{1/2}Ξ`), computed in place with
/// pivots below `n·ε·max K_ii` set to zero (a positive semi-definite Gram matrix can be
/// numerically singular). The O(n³) factorisation restricts this variant to moderate `n`
/// (a few thousand particles).
///
/// `scale` is the user's noise scale: `scale = √n` gives the full-strength `√(2γ)ξ`, which
/// over-disperses the particles (a negative control in the tests).
///
/// # Example
///
/// ```
/// use klflow::stein::Noise;
///
/// assert_eq!(Noise::isotropic(), Noise::Isotropic { scale: 1.0 });
/// assert_eq!(Noise::kernel_correlated(), Noise::KernelCorrelated { scale: 1.0 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Noise {
    /// No noise: plain SVGD.
    None,
    /// `scale·√(2γ/n)·ξ_i`, independent across particles and coordinates.
    Isotropic {
        /// Multiplier of the theory's `√(2γ/n)`.
        scale: f64,
    },
    /// `scale·√(2γ/n)·K^{1/2}Ξ`: correlated across particles through the kernel matrix.
    KernelCorrelated {
        /// Multiplier of the theory's `√(2γ/n)`.
        scale: f64,
    },
}

impl Noise {
    /// Isotropic noise with `scale = 1`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::stein::Noise;
    ///
    /// assert_eq!(Noise::isotropic(), Noise::Isotropic { scale: 1.0 });
    /// ```
    pub fn isotropic() -> Self {
        Noise::Isotropic { scale: 1.0 }
    }

    /// Kernel-correlated noise with `scale = 1`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::stein::Noise;
    ///
    /// assert_eq!(Noise::kernel_correlated(), Noise::KernelCorrelated { scale: 1.0 });
    /// ```
    pub fn kernel_correlated() -> Self {
        Noise::KernelCorrelated { scale: 1.0 }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        match *self {
            Noise::None => Ok(()),
            Noise::Isotropic { scale } | Noise::KernelCorrelated { scale } => {
                if scale.is_finite() && scale >= 0.0 {
                    Ok(())
                } else {
                    Err(Error::InvalidParameter {
                        name: "noise scale",
                        value: scale,
                        reason: "must be finite and >= 0",
                    })
                }
            }
        }
    }
}

/// Buffers of the noise: the increments and, for the correlated variant, the n × n factor.
#[derive(Clone, Debug)]
pub(crate) struct NoiseScratch {
    pub(crate) eta: DMatrix<f64>,
    /// Row-major lower Cholesky factor (correlated variant only; empty otherwise).
    chol: Vec<f64>,
    z: DMatrix<f64>,
}

impl NoiseScratch {
    pub(crate) fn new(noise: &Noise, d: usize, n: usize) -> Self {
        match noise {
            Noise::None => Self {
                eta: DMatrix::zeros(0, 0),
                chol: Vec::new(),
                z: DMatrix::zeros(0, 0),
            },
            Noise::Isotropic { .. } => Self {
                eta: DMatrix::zeros(d, n),
                chol: Vec::new(),
                z: DMatrix::zeros(0, 0),
            },
            Noise::KernelCorrelated { .. } => Self {
                eta: DMatrix::zeros(d, n),
                chol: vec![0.0; n * n],
                z: DMatrix::zeros(d, n),
            },
        }
    }

    /// Draws the increments for step size `gamma` at positions `x` into `eta`. Returns `false`
    /// for [`Noise::None`].
    pub(crate) fn draw<K: Kernel, R: Rng + ?Sized>(
        &mut self,
        noise: &Noise,
        kernel: &K,
        x: &DMatrix<f64>,
        gamma: f64,
        rng: &mut R,
    ) -> bool {
        let (d, n) = x.shape();
        let std = |scale: f64| scale * (2.0 * gamma / n as f64).sqrt();
        match *noise {
            Noise::None => false,
            Noise::Isotropic { scale } => {
                let c = std(scale);
                for v in self.eta.iter_mut() {
                    *v = c * rng.sample::<f64, _>(StandardNormal);
                }
                true
            }
            Noise::KernelCorrelated { scale } => {
                let c = std(scale);
                self.factor(kernel, x);
                for v in self.z.iter_mut() {
                    *v = rng.sample::<f64, _>(StandardNormal);
                }
                // eta_i = c Σ_{p ≤ i} L_ip z_p.
                for i in 0..n {
                    let row = &self.chol[i * n..][..=i];
                    let e = &mut self.eta.as_mut_slice()[i * d..][..d];
                    e.fill(0.0);
                    for (p, lip) in row.iter().enumerate() {
                        if *lip != 0.0 {
                            for (ev, zv) in e.iter_mut().zip(&self.z.as_slice()[p * d..][..d]) {
                                *ev += lip * zv;
                            }
                        }
                    }
                    for ev in e.iter_mut() {
                        *ev *= c;
                    }
                }
                true
            }
        }
    }

    /// Semi-definite Cholesky factor of `K = [k(x_i, x_j)]`, row-major lower triangle.
    fn factor<K: Kernel>(&mut self, kernel: &K, x: &DMatrix<f64>) {
        let n = x.ncols();
        let l = &mut self.chol;
        let mut max_diag = 0.0_f64;
        for i in 0..n {
            let xi = x.column(i);
            for j in 0..=i {
                let v = kernel.value(xi.as_slice(), x.column(j).as_slice());
                l[i * n + j] = v;
            }
            max_diag = max_diag.max(l[i * n + i]);
        }
        let tol = n as f64 * f64::EPSILON * max_diag;
        for j in 0..n {
            let tail = &mut l[j * n..];
            let rowj = &mut tail[..n];
            let s = rowj[j] - rowj[..j].iter().map(|v| v * v).sum::<f64>();
            if !(s > tol) {
                // A (numerically) zero pivot: the column of L is zero.
                rowj[j] = 0.0;
                for i in j + 1..n {
                    tail[(i - j) * n + j] = 0.0;
                }
                continue;
            }
            let pivot = s.sqrt();
            rowj[j] = pivot;
            let (rowj, below) = tail.split_at_mut(n);
            for i in j + 1..n {
                let rowi = &mut below[(i - j - 1) * n..][..n];
                let dot: f64 = rowi[..j].iter().zip(&rowj[..j]).map(|(a, b)| a * b).sum();
                rowi[j] = (rowi[j] - dot) / pivot;
            }
        }
    }
}
