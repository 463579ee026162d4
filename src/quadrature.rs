//! Quadrature rules shared by the crate: Gauss–Hermite for expectations under the standard
//! normal law (Gaussian VI expectations, NNGP kernels of general activations).

use nalgebra::{DMatrix, SymmetricEigen};

use crate::error::{Error, Result};

/// An `n`-point Gauss–Hermite rule for the standard normal weight:
/// `E f(Z) ≈ Σᵢ wᵢ f(zᵢ)`, `Z ~ N(0, 1)`, exact for polynomials of degree ≤ `2n − 1`.
///
/// Nodes are the eigenvalues of the Jacobi matrix of the probabilists' Hermite polynomials
/// (Golub–Welsch), polished by two Newton steps on the orthonormal recurrence
/// `h_{k+1} = (z h_k − √k h_{k−1})/√(k+1)`; weights are the Christoffel numbers
/// `wᵢ = 1/Σ_{k<n} h_k(zᵢ)²`. Accuracy: the weights sum to 1 within 1e-15 and the even moments
/// `E Z^{2k} = (2k−1)!!` come out to 1e-14 relative for `2k ≤ 2n − 1`. `n` is limited to 256
/// (beyond that `h_k` overflows at the outer nodes).
///
/// For smooth integrands the error decays geometrically in `√n`; for integrands with a kink
/// (ReLU) it decays only like `n^{-3/2}` — see `docs/fields.md` for measured figures.
///
/// # Example
///
/// ```
/// use klflow::quadrature::GaussHermite;
///
/// let gh = GaussHermite::new(20)?;
/// assert!((gh.expect(|z| z.powi(4)) - 3.0).abs() < 1e-13);
/// assert!((gh.expect(|z| z.cos()) - (-0.5f64).exp()).abs() < 1e-14);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GaussHermite {
    nodes: Vec<f64>,
    weights: Vec<f64>,
}

/// The largest supported number of nodes.
///
/// # Example
///
/// ```
/// use klflow::{Error, quadrature::{GaussHermite, MAX_GH_NODES}};
///
/// assert_eq!(GaussHermite::new(MAX_GH_NODES)?.len(), 256);
/// assert!(matches!(GaussHermite::new(MAX_GH_NODES + 1), Err(Error::InvalidParameter { name: "n", .. })));
/// # Ok::<(), klflow::Error>(())
/// ```
pub const MAX_GH_NODES: usize = 256;

impl GaussHermite {
    /// The `n`-point rule.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless `1 ≤ n ≤ 256`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, quadrature::GaussHermite};
    ///
    /// // 3 nodes: exact up to degree 5, so E Z⁴ = 3 but not E Z⁶ = 15
    /// let gh = GaussHermite::new(3)?;
    /// assert!((gh.expect(|z| z.powi(4)) - 3.0).abs() < 1e-14);
    /// assert!((gh.expect(|z| z.powi(6)) - 15.0).abs() > 1.0);
    /// assert!(matches!(GaussHermite::new(0), Err(Error::InvalidParameter { name: "n", .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(n: usize) -> Result<Self> {
        if n == 0 || n > MAX_GH_NODES {
            return Err(Error::InvalidParameter {
                name: "n",
                value: n as f64,
                reason: "must lie in 1..=256",
            });
        }
        let jacobi = DMatrix::from_fn(n, n, |i, j| {
            if i + 1 == j || j + 1 == i {
                (i.max(j) as f64).sqrt()
            } else {
                0.0
            }
        });
        let mut nodes: Vec<f64> = SymmetricEigen::new(jacobi)
            .eigenvalues
            .iter()
            .copied()
            .collect();
        nodes.sort_by(f64::total_cmp);
        let mut weights = vec![0.0; n];
        for (z, w) in nodes.iter_mut().zip(weights.iter_mut()) {
            for _ in 0..2 {
                let (hn, hn1, _) = orthonormal_hermite(n, *z);
                let dz = hn / ((n as f64).sqrt() * hn1);
                if dz.is_finite() {
                    *z -= dz;
                }
            }
            *w = 1.0 / orthonormal_hermite(n, *z).2;
        }
        // Exact symmetry: average the mirrored nodes and weights.
        for i in 0..n / 2 {
            let j = n - 1 - i;
            let z = 0.5 * (nodes[j] - nodes[i]);
            let w = 0.5 * (weights[i] + weights[j]);
            nodes[i] = -z;
            nodes[j] = z;
            weights[i] = w;
            weights[j] = w;
        }
        if n % 2 == 1 {
            nodes[n / 2] = 0.0;
        }
        Ok(Self { nodes, weights })
    }

    /// The nodes `zᵢ`, ascending.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::quadrature::GaussHermite;
    ///
    /// // two nodes: the roots ±1 of He₂(z) = z² − 1
    /// let n2 = GaussHermite::new(2)?;
    /// assert!((n2.nodes()[0] + 1.0).abs() < 1e-15 && (n2.nodes()[1] - 1.0).abs() < 1e-15);
    /// // odd rules are symmetric with a node at 0
    /// let n5 = GaussHermite::new(5)?;
    /// assert_eq!(n5.nodes()[2], 0.0);
    /// assert_eq!(n5.nodes()[0], -n5.nodes()[4]);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn nodes(&self) -> &[f64] {
        &self.nodes
    }

    /// The weights `wᵢ` (positive, summing to 1).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::quadrature::GaussHermite;
    ///
    /// // three nodes 0, ±√3 with weights 2/3 and 1/6
    /// let gh = GaussHermite::new(3)?;
    /// let w = gh.weights();
    /// assert!((w[1] - 2.0 / 3.0).abs() < 1e-15 && (w[0] - 1.0 / 6.0).abs() < 1e-15);
    /// assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-15);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// The number of nodes.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::quadrature::GaussHermite;
    ///
    /// let gh = GaussHermite::new(12)?;
    /// assert_eq!(gh.len(), 12);
    /// assert_eq!(gh.weights().len(), gh.len());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always `false` (a rule has at least one node).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::quadrature::GaussHermite;
    ///
    /// assert!(!GaussHermite::new(1)?.is_empty());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// `Σᵢ wᵢ f(zᵢ) ≈ E f(Z)`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::quadrature::GaussHermite;
    ///
    /// let gh = GaussHermite::new(30)?;
    /// // E e^Z = e^{1/2}, the lognormal mean
    /// assert!((gh.expect(f64::exp) - 0.5f64.exp()).abs() < 1e-13);
    /// assert!((gh.expect(|_| 1.0) - 1.0).abs() < 1e-15);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn expect(&self, f: impl Fn(f64) -> f64) -> f64 {
        self.nodes
            .iter()
            .zip(&self.weights)
            .map(|(z, w)| w * f(*z))
            .sum()
    }
}

/// `(h_n(z), h_{n−1}(z), Σ_{k<n} h_k(z)²)` for the orthonormal probabilists' Hermite
/// polynomials `h_k = He_k/√k!`.
fn orthonormal_hermite(n: usize, z: f64) -> (f64, f64, f64) {
    let (mut prev, mut cur) = (0.0, 1.0);
    let mut sum = 0.0;
    for k in 0..n {
        sum += cur * cur;
        let next = (z * cur - (k as f64).sqrt() * prev) / ((k + 1) as f64).sqrt();
        prev = cur;
        cur = next;
    }
    (cur, prev, sum)
}
