//! Finite-width random networks on the sphere: architecture, weight laws, batched evaluation.

use nalgebra::{DMatrix, DVector};
use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Error, Result};

use super::activation::Activation;
use super::nngp::{Nngp, check_variance};

/// A standardised weight law (mean 0, variance 1); the network multiplies draws by the
/// layer's standard deviation.
///
/// Any other [`Distribution<f64>`] can be used through [`Standardized`].
///
/// # Example
///
/// ```
/// use klflow::field::WeightLaw;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
/// use rand_distr::Distribution;
///
/// let mut rng = ChaCha8Rng::seed_from_u64(3);
/// let r = WeightLaw::Rademacher.sample(&mut rng);
/// assert!(r == 1.0 || r == -1.0);
/// let u = WeightLaw::Uniform.sample(&mut rng);
/// assert!(u.abs() <= 3f64.sqrt());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum WeightLaw {
    /// `N(0, 1)`.
    Gaussian,
    /// `±1` with probability ½ each.
    Rademacher,
    /// Uniform on `[−√3, √3]`.
    Uniform,
}

impl Distribution<f64> for WeightLaw {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self {
            Self::Gaussian => rng.sample(StandardNormal),
            Self::Rademacher => {
                if rng.random::<bool>() {
                    1.0
                } else {
                    -1.0
                }
            }
            Self::Uniform => 3f64.sqrt() * (2.0 * rng.random::<f64>() - 1.0),
        }
    }
}

/// Any `rand` distribution with a stated mean `m` and variance `v`, standardised:
/// draws `(X − m)/√v`.
///
/// The moments are the caller's statement; they are not estimated.
///
/// # Example
///
/// ```
/// use klflow::field::Standardized;
/// use rand_distr::Exp;
///
/// // Exp(1) has mean 1 and variance 1: a skewed centred weight law.
/// let law = Standardized::new(Exp::new(1.0).unwrap(), 1.0, 1.0)?;
/// assert!(Standardized::new(Exp::new(1.0).unwrap(), 1.0, 0.0).is_err());
/// # let _ = law;
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Standardized<W> {
    law: W,
    mean: f64,
    inv_sd: f64,
}

impl<W: Distribution<f64>> Standardized<W> {
    /// Standardises `law`, whose mean is `mean` and variance `variance`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless `mean` is finite and `variance` finite and > 0.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, field::Standardized};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    /// use rand_distr::{Distribution, Uniform};
    ///
    /// // U(0, 1) has mean ½ and variance 1/12: standardised, it is uniform on [−√3, √3]
    /// let law = Standardized::new(Uniform::new(0.0, 1.0).unwrap(), 0.5, 1.0 / 12.0)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// assert!((0..100).all(|_| law.sample(&mut rng).abs() <= 3f64.sqrt()));
    /// let err = Standardized::new(Uniform::new(0.0, 1.0).unwrap(), f64::NAN, 1.0).unwrap_err();
    /// assert!(matches!(err, Error::InvalidParameter { name: "mean", .. }));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(law: W, mean: f64, variance: f64) -> Result<Self> {
        if !mean.is_finite() {
            return Err(Error::InvalidParameter {
                name: "mean",
                value: mean,
                reason: "must be finite",
            });
        }
        let v = check_variance("variance", variance, true)?;
        Ok(Self {
            law,
            mean,
            inv_sd: 1.0 / v.sqrt(),
        })
    }
}

impl<W: Distribution<f64>> Distribution<f64> for Standardized<W> {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        (self.law.sample(rng) - self.mean) * self.inv_sd
    }
}

/// The architecture of a fully connected network `ℝ^{n+1} → ℝ^d` and its weight variances.
///
/// ```text
/// z¹(x)    = W⁰x + b⁰,          W⁰_ij = σ_w0 ξ      (no fan-in factor: inputs are unit vectors)
/// z^{ℓ+1}(x) = Wˡσ(zˡ(x)) + bˡ,  Wˡ_ij = (σ_w/√n_ℓ) ξ,   bˡ_i = σ_b ξ
/// F(x)     = z^{L+1}(x) ∈ ℝ^d
/// ```
///
/// with `ξ` standardised draws (mean 0, variance 1). Defaults: `σ_w0² = σ_w² = 1`, `σ_b² = 0`.
/// The NNGP kernel with the same conventions is [`NetworkSpec::nngp`].
///
/// # Example
///
/// ```
/// use klflow::field::{Activation, NetworkSpec};
///
/// // S² → ℝ, two hidden ReLU layers of width 64, He scaling, small biases.
/// let spec = NetworkSpec::new(3, &[64, 64], 1, Activation::Relu)?
///     .with_weight_variances(1.0, 2.0)?
///     .with_bias_variance(0.1)?;
/// assert_eq!(spec.widths(), &[64, 64]);
/// assert!(NetworkSpec::new(3, &[], 1, Activation::Relu).is_err());
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct NetworkSpec {
    input_dim: usize,
    widths: Vec<usize>,
    output_dim: usize,
    activation: Activation,
    sigma_w0_sq: f64,
    sigma_w_sq: f64,
    sigma_b_sq: f64,
}

fn nonzero(name: &'static str, v: usize) -> Result<usize> {
    if v == 0 {
        Err(Error::InvalidParameter {
            name,
            value: 0.0,
            reason: "must be >= 1",
        })
    } else {
        Ok(v)
    }
}

impl NetworkSpec {
    /// A network with inputs in `ℝ^{input_dim}` (the sphere `S^{input_dim − 1}`), hidden
    /// layers of the given `widths`, `output_dim` outputs and activation `activation`.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if `widths` is empty; [`Error::InvalidParameter`] if a dimension or
    /// width is 0.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, field::{Activation, NetworkSpec}};
    ///
    /// let spec = NetworkSpec::new(3, &[32, 16], 2, Activation::Tanh)?;
    /// assert_eq!((spec.input_dim(), spec.output_dim()), (3, 2));
    /// assert_eq!(spec.variances(), (1.0, 1.0, 0.0)); // the defaults
    /// assert_eq!(NetworkSpec::new(3, &[], 1, Activation::Relu).unwrap_err(), Error::Empty { name: "widths" });
    /// assert!(matches!(
    ///     NetworkSpec::new(3, &[8, 0], 1, Activation::Relu),
    ///     Err(Error::InvalidParameter { name: "widths", .. })
    /// ));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(
        input_dim: usize,
        widths: &[usize],
        output_dim: usize,
        activation: Activation,
    ) -> Result<Self> {
        nonzero("input_dim", input_dim)?;
        nonzero("output_dim", output_dim)?;
        if widths.is_empty() {
            return Err(Error::Empty { name: "widths" });
        }
        for &w in widths {
            nonzero("widths", w)?;
        }
        Ok(Self {
            input_dim,
            widths: widths.to_vec(),
            output_dim,
            activation,
            sigma_w0_sq: 1.0,
            sigma_w_sq: 1.0,
            sigma_b_sq: 0.0,
        })
    }

    /// Sets the first-layer weight variance `σ_w0²` and the deeper one `σ_w²` (before the
    /// `1/n_ℓ` fan-in factor).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless both are finite and > 0.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, NetworkSpec};
    ///
    /// let spec = NetworkSpec::new(3, &[8], 1, Activation::Relu)?.with_weight_variances(1.0, 2.0)?;
    /// assert_eq!(spec.variances(), (1.0, 2.0, 0.0));
    /// let base = NetworkSpec::new(3, &[8], 1, Activation::Relu)?;
    /// assert!(base.with_weight_variances(0.0, 1.0).is_err());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn with_weight_variances(mut self, sigma_w0_sq: f64, sigma_w_sq: f64) -> Result<Self> {
        self.sigma_w0_sq = check_variance("sigma_w0_sq", sigma_w0_sq, true)?;
        self.sigma_w_sq = check_variance("sigma_w_sq", sigma_w_sq, true)?;
        Ok(self)
    }

    /// Sets the bias variance `σ_b²` (0 = no biases).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless finite and ≥ 0.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, NetworkSpec};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let spec = NetworkSpec::new(3, &[8], 1, Activation::Relu)?;
    /// // without biases every bias vector stays zero
    /// let net = spec.sample(&mut ChaCha8Rng::seed_from_u64(0));
    /// assert!(net.biases(0).unwrap().iter().all(|&b| b == 0.0));
    /// let biased = spec.with_bias_variance(0.1)?;
    /// assert_eq!(biased.variances().2, 0.1);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn with_bias_variance(mut self, sigma_b_sq: f64) -> Result<Self> {
        self.sigma_b_sq = check_variance("sigma_b_sq", sigma_b_sq, false)?;
        Ok(self)
    }

    /// The input dimension `n + 1`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, NetworkSpec};
    ///
    /// // the sphere S² sits in ℝ³
    /// assert_eq!(NetworkSpec::new(3, &[8], 1, Activation::Relu)?.input_dim(), 3);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn input_dim(&self) -> usize {
        self.input_dim
    }

    /// The hidden widths `n₁, …, n_L`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, NetworkSpec};
    ///
    /// let spec = NetworkSpec::new(3, &[64, 32, 16], 1, Activation::Relu)?;
    /// assert_eq!(spec.widths(), &[64, 32, 16]);
    /// assert_eq!(spec.nngp().depth(), 3); // one kernel layer per hidden layer
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// The output dimension `d`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, NetworkSpec};
    ///
    /// assert_eq!(NetworkSpec::new(3, &[8], 4, Activation::Relu)?.output_dim(), 4);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn output_dim(&self) -> usize {
        self.output_dim
    }

    /// The activation.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, NetworkSpec};
    ///
    /// let spec = NetworkSpec::new(3, &[8], 1, Activation::Erf)?;
    /// assert!(matches!(spec.activation(), Activation::Erf));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn activation(&self) -> &Activation {
        &self.activation
    }

    /// `(σ_w0², σ_w², σ_b²)`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, NetworkSpec};
    ///
    /// let spec = NetworkSpec::new(3, &[8], 1, Activation::Relu)?
    ///     .with_weight_variances(1.5, 2.0)?
    ///     .with_bias_variance(0.25)?;
    /// let (s0, s, sb) = spec.variances();
    /// assert_eq!((s0, s, sb), (1.5, 2.0, 0.25));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn variances(&self) -> (f64, f64, f64) {
        (self.sigma_w0_sq, self.sigma_w_sq, self.sigma_b_sq)
    }

    /// The NNGP kernel of this architecture (the covariance of each output coordinate as all
    /// widths grow).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, NetworkSpec};
    ///
    /// let spec = NetworkSpec::new(3, &[16], 1, Activation::Relu)?;
    /// assert!((spec.nngp().variance() - 0.5).abs() < 1e-15); // E relu(Z)² = ½
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn nngp(&self) -> Nngp {
        Nngp::new(
            self.activation.clone(),
            self.widths.len(),
            self.sigma_w0_sq,
            self.sigma_w_sq,
            self.sigma_b_sq,
        )
        .expect("a validated spec gives a valid kernel")
    }

    /// Draws a network with Gaussian weights and biases.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, NetworkSpec};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let spec = NetworkSpec::new(3, &[32], 2, Activation::Tanh)?;
    /// let net = spec.sample(&mut ChaCha8Rng::seed_from_u64(0));
    /// let mut out = [0.0; 2];
    /// net.eval(&[0.0, 0.0, 1.0], &mut out)?;
    /// assert!(out.iter().all(|v| v.is_finite()));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Network {
        self.sample_with(&WeightLaw::Gaussian, &WeightLaw::Gaussian, rng)
    }

    /// Draws a network whose first-layer weights and biases follow `input_law` and whose
    /// deeper weights and biases follow `hidden_law` (both standardised: mean 0, variance 1).
    ///
    /// The NNGP limit assumes Gaussian first-layer pre-activations: with a non-Gaussian
    /// `input_law` the first layer is not Gaussian at any width (its fan-in is the fixed
    /// input dimension), so the limit differs from [`NetworkSpec::nngp`]. Non-Gaussian
    /// `hidden_law`s have the same limit.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, NetworkSpec, WeightLaw};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let spec = NetworkSpec::new(3, &[16], 1, Activation::Relu)?.with_weight_variances(1.0, 2.0)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let net = spec.sample_with(&WeightLaw::Rademacher, &WeightLaw::Rademacher, &mut rng);
    /// // Rademacher weights: ±σ_w0 in the first layer, ±σ_w/√n₁ in the output layer
    /// assert!(net.weights(0).unwrap().iter().all(|w| w.abs() == 1.0));
    /// assert!(net.weights(1).unwrap().iter().all(|w| (w.abs() - (2.0f64 / 16.0).sqrt()).abs() < 1e-15));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn sample_with<R, W0, W>(&self, input_law: &W0, hidden_law: &W, rng: &mut R) -> Network
    where
        R: Rng + ?Sized,
        W0: Distribution<f64>,
        W: Distribution<f64>,
    {
        let mut fan_in = self.input_dim;
        let mut weights = Vec::with_capacity(self.widths.len() + 1);
        let mut biases = Vec::with_capacity(self.widths.len() + 1);
        for &out in self.widths.iter().chain(std::iter::once(&self.output_dim)) {
            weights.push(DMatrix::zeros(out, fan_in));
            biases.push(DVector::zeros(out));
            fan_in = out;
        }
        let mut net = Network {
            spec: self.clone(),
            weights,
            biases,
        };
        net.resample_with(input_law, hidden_law, rng);
        net
    }
}

/// A sampled network: a random field `Sⁿ → ℝ^d` (defined on all of `ℝ^{n+1}`).
///
/// Evaluate one point with [`Network::eval`], or many at once with
/// [`Network::eval_batch`] (points as the columns of a matrix, matrix products per chunk of
/// points, no allocation). [`Network::resample`] redraws the weights in place, so a Monte
/// Carlo loop over networks allocates nothing either.
///
/// # Example
///
/// ```
/// use klflow::field::{Activation, NetworkSpec, NetworkWorkspace};
/// use nalgebra::DMatrix;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let spec = NetworkSpec::new(2, &[128, 128], 1, Activation::Relu)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(7);
/// let mut net = spec.sample(&mut rng);
/// // 500 points on the circle S¹, as columns.
/// let pts = DMatrix::from_fn(2, 500, |i, j| {
///     let t = j as f64 * std::f64::consts::TAU / 500.0;
///     if i == 0 { t.cos() } else { t.sin() }
/// });
/// let mut ws = NetworkWorkspace::new(&spec, 256);
/// let mut out = DMatrix::zeros(1, 500);
/// net.eval_batch(&pts, &mut out, &mut ws)?;
/// let mut one = [0.0];
/// net.eval(pts.column(42).as_slice(), &mut one)?;
/// assert!((one[0] - out[(0, 42)]).abs() < 1e-12);
/// net.resample(&mut rng); // a fresh, independent network
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Network {
    spec: NetworkSpec,
    weights: Vec<DMatrix<f64>>,
    biases: Vec<DVector<f64>>,
}

/// Pre-allocated buffers for [`Network::eval_batch`]: one `n_ℓ × chunk` matrix per hidden
/// layer. Reusable across networks of the same [`NetworkSpec`].
///
/// # Example
///
/// ```
/// use klflow::field::{Activation, NetworkSpec, NetworkWorkspace};
/// use nalgebra::DMatrix;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let spec = NetworkSpec::new(2, &[32], 1, Activation::Tanh)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let pts = DMatrix::from_fn(2, 10, |i, j| if i == 0 { (j as f64).cos() } else { (j as f64).sin() });
/// // the chunk size changes how the work is split, not the result
/// let (mut small, mut large) = (NetworkWorkspace::new(&spec, 3), NetworkWorkspace::new(&spec, 64));
/// let (mut a, mut b) = (DMatrix::zeros(1, 10), DMatrix::zeros(1, 10));
/// for _ in 0..2 {
///     let net = spec.sample(&mut rng); // one workspace serves every network of the spec
///     net.eval_batch(&pts, &mut a, &mut small)?;
///     net.eval_batch(&pts, &mut b, &mut large)?;
///     assert!((&a - &b).amax() < 1e-12);
/// }
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct NetworkWorkspace {
    chunk: usize,
    layers: Vec<DMatrix<f64>>,
}

impl NetworkWorkspace {
    /// Buffers for evaluating `chunk` points per matrix product (values of 64–512 keep the
    /// buffers in cache; `chunk` is raised to 1 if 0).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, NetworkSpec, NetworkWorkspace};
    ///
    /// let spec = NetworkSpec::new(3, &[64], 1, Activation::Relu)?;
    /// assert_eq!(NetworkWorkspace::new(&spec, 256).chunk(), 256);
    /// assert_eq!(NetworkWorkspace::new(&spec, 0).chunk(), 1); // raised to 1
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(spec: &NetworkSpec, chunk: usize) -> Self {
        let chunk = chunk.max(1);
        Self {
            chunk,
            layers: spec
                .widths
                .iter()
                .map(|&w| DMatrix::zeros(w, chunk))
                .collect(),
        }
    }

    /// The number of points per chunk.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, NetworkSpec, NetworkWorkspace};
    ///
    /// let spec = NetworkSpec::new(3, &[64], 1, Activation::Relu)?;
    /// assert_eq!(NetworkWorkspace::new(&spec, 128).chunk(), 128);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn chunk(&self) -> usize {
        self.chunk
    }
}

impl Network {
    /// The architecture.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, NetworkSpec};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let spec = NetworkSpec::new(3, &[64, 32], 2, Activation::Relu)?;
    /// let net = spec.sample(&mut ChaCha8Rng::seed_from_u64(0));
    /// assert_eq!(net.spec().widths(), &[64, 32]);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn spec(&self) -> &NetworkSpec {
        &self.spec
    }

    /// The weight matrix of layer `l` (`0` = input layer, `L` = output layer), or `None`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, NetworkSpec};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let spec = NetworkSpec::new(3, &[64, 32], 2, Activation::Relu)?;
    /// let net = spec.sample(&mut ChaCha8Rng::seed_from_u64(0));
    /// // layer l maps n_l inputs to n_{l+1} outputs: 3 → 64 → 32 → 2
    /// assert_eq!(net.weights(0).unwrap().shape(), (64, 3));
    /// assert_eq!(net.weights(2).unwrap().shape(), (2, 32));
    /// assert!(net.weights(3).is_none());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn weights(&self, l: usize) -> Option<&DMatrix<f64>> {
        self.weights.get(l)
    }

    /// The bias vector of layer `l`, or `None`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, NetworkSpec};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let spec = NetworkSpec::new(3, &[64], 2, Activation::Relu)?.with_bias_variance(1.0)?;
    /// let net = spec.sample(&mut ChaCha8Rng::seed_from_u64(0));
    /// assert_eq!(net.biases(0).unwrap().len(), 64);
    /// assert_eq!(net.biases(1).unwrap().len(), 2);
    /// assert!(net.biases(2).is_none());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn biases(&self, l: usize) -> Option<&DVector<f64>> {
        self.biases.get(l)
    }

    /// Redraws all weights and biases from Gaussian laws, in place.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, NetworkSpec};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let spec = NetworkSpec::new(3, &[16], 1, Activation::Relu)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut net = spec.sample(&mut rng);
    /// let before = net.weights(0).unwrap().clone();
    /// net.resample(&mut rng);
    /// assert_eq!(net.weights(0).unwrap().shape(), before.shape());
    /// assert_ne!(*net.weights(0).unwrap(), before);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn resample<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        self.resample_with(&WeightLaw::Gaussian, &WeightLaw::Gaussian, rng);
    }

    /// Redraws all weights and biases in place (see [`NetworkSpec::sample_with`]).
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, NetworkSpec, WeightLaw};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let spec = NetworkSpec::new(3, &[16], 1, Activation::Relu)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut net = spec.sample(&mut rng);
    /// // Gaussian input layer, Rademacher output layer: ±1/√16
    /// net.resample_with(&WeightLaw::Gaussian, &WeightLaw::Rademacher, &mut rng);
    /// assert!(net.weights(1).unwrap().iter().all(|w| w.abs() == 0.25));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn resample_with<R, W0, W>(&mut self, input_law: &W0, hidden_law: &W, rng: &mut R)
    where
        R: Rng + ?Sized,
        W0: Distribution<f64>,
        W: Distribution<f64>,
    {
        let (s0, s, sb) = self.spec.variances();
        let sd_b = sb.sqrt();
        for (l, (w, b)) in self.weights.iter_mut().zip(&mut self.biases).enumerate() {
            let sd = if l == 0 {
                s0.sqrt()
            } else {
                (s / w.ncols() as f64).sqrt()
            };
            if l == 0 {
                w.iter_mut().for_each(|v| *v = sd * input_law.sample(rng));
            } else {
                w.iter_mut().for_each(|v| *v = sd * hidden_law.sample(rng));
            }
            if sd_b > 0.0 {
                if l == 0 {
                    b.iter_mut().for_each(|v| *v = sd_b * input_law.sample(rng));
                } else {
                    b.iter_mut()
                        .for_each(|v| *v = sd_b * hidden_law.sample(rng));
                }
            }
        }
    }

    /// Evaluates `F(x)` into `out` (length `d`). Allocates the per-layer vectors; use
    /// [`Network::eval_batch`] for many points.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if `x` or `out` has the wrong length.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, field::{Activation, NetworkSpec}};
    /// use nalgebra::DVector;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let spec = NetworkSpec::new(3, &[8], 1, Activation::Relu)?.with_bias_variance(0.5)?;
    /// let net = spec.sample(&mut ChaCha8Rng::seed_from_u64(0));
    /// let x = [0.0, 0.6, 0.8];
    /// let mut out = [0.0];
    /// net.eval(&x, &mut out)?;
    /// // by hand: W¹ relu(W⁰x + b⁰) + b¹
    /// let h = (net.weights(0).unwrap() * DVector::from_column_slice(&x) + net.biases(0).unwrap()).map(|v| v.max(0.0));
    /// let by_hand = (net.weights(1).unwrap() * h + net.biases(1).unwrap())[0];
    /// assert!((out[0] - by_hand).abs() < 1e-12);
    /// assert!(matches!(net.eval(&[1.0, 0.0], &mut out), Err(Error::DimensionMismatch { name: "x", .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn eval(&self, x: &[f64], out: &mut [f64]) -> Result<()> {
        check("x", self.spec.input_dim, x.len())?;
        check("out", self.spec.output_dim, out.len())?;
        let mut h = DVector::from_column_slice(x);
        let last = self.weights.len() - 1;
        for (l, (w, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            h = w * h + b;
            if l < last {
                self.spec.activation.apply(h.as_mut_slice());
            }
        }
        out.copy_from_slice(h.as_slice());
        Ok(())
    }

    /// Evaluates the field at the columns of `points` (`(n+1) × P`) into the columns of
    /// `out` (`d × P`), `ws.chunk()` points per matrix product. Allocates nothing.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if `points`, `out` or the workspace do not match the
    /// architecture.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, field::{Activation, NetworkSpec, NetworkWorkspace}};
    /// use nalgebra::DMatrix;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let spec = NetworkSpec::new(2, &[32, 32], 2, Activation::Erf)?;
    /// let net = spec.sample(&mut ChaCha8Rng::seed_from_u64(1));
    /// let pts = DMatrix::from_column_slice(2, 3, &[1.0, 0.0, 0.0, 1.0, -1.0, 0.0]);
    /// let mut ws = NetworkWorkspace::new(&spec, 2);
    /// let mut out = DMatrix::zeros(2, 3);
    /// net.eval_batch(&pts, &mut out, &mut ws)?;
    /// let mut one = [0.0; 2];
    /// net.eval(pts.column(2).as_slice(), &mut one)?;
    /// assert!((one[0] - out[(0, 2)]).abs() < 1e-12 && (one[1] - out[(1, 2)]).abs() < 1e-12);
    /// let mut wrong = DMatrix::zeros(1, 3);
    /// assert!(matches!(net.eval_batch(&pts, &mut wrong, &mut ws), Err(Error::DimensionMismatch { name: "out", .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn eval_batch(
        &self,
        points: &DMatrix<f64>,
        out: &mut DMatrix<f64>,
        ws: &mut NetworkWorkspace,
    ) -> Result<()> {
        check("out", self.spec.output_dim, out.nrows())?;
        check("out", points.ncols(), out.ncols())?;
        self.check_ws(points, ws)?;
        let p = points.ncols();
        let l_out = self.weights.len() - 1;
        let mut start = 0;
        while start < p {
            let m = ws.chunk.min(p - start);
            self.hidden_chunk(points, start, m, ws);
            let last = &ws.layers[l_out - 1];
            let d = self.spec.output_dim;
            let o = &mut out.as_mut_slice()[start * d..(start + m) * d];
            affine(
                &self.weights[l_out],
                &self.biases[l_out],
                &last.as_slice()[..last.nrows() * m],
                o,
                m,
            );
            start += m;
        }
        Ok(())
    }

    /// The last hidden layer's activations `σ(z^L)` at the columns of `points`, written into
    /// the columns of `features` (`n_L × P`). Allocates nothing.
    ///
    /// Given these, the output is `W^L σ(z^L) + b^L`; with Gaussian output weights it is
    /// exactly Gaussian with covariance `σ_b² + (σ_w²/n_L) σ(z^L)ᵀσ(z^L)` (the finite-width
    /// conditional kernel used by [`sup_norm_proxy`](super::sup_norm_proxy)).
    ///
    /// # Errors
    ///
    /// As [`Network::eval_batch`].
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::field::{Activation, NetworkSpec, NetworkWorkspace};
    /// use nalgebra::DMatrix;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let spec = NetworkSpec::new(2, &[16], 1, Activation::Relu)?;
    /// let net = spec.sample(&mut ChaCha8Rng::seed_from_u64(2));
    /// let pts = DMatrix::from_column_slice(2, 2, &[1.0, 0.0, 0.0, 1.0]);
    /// let mut ws = NetworkWorkspace::new(&spec, 8);
    /// let (mut feats, mut out) = (DMatrix::zeros(16, 2), DMatrix::zeros(1, 2));
    /// net.features_batch(&pts, &mut feats, &mut ws)?;
    /// net.eval_batch(&pts, &mut out, &mut ws)?;
    /// // the output is the last affine map applied to the features (no biases here)
    /// assert!((net.weights(1).unwrap() * &feats - out).amax() < 1e-12);
    /// assert!(feats.iter().all(|&v| v >= 0.0)); // ReLU activations
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn features_batch(
        &self,
        points: &DMatrix<f64>,
        features: &mut DMatrix<f64>,
        ws: &mut NetworkWorkspace,
    ) -> Result<()> {
        let n_last = *self.spec.widths.last().expect("non-empty widths");
        check("features", n_last, features.nrows())?;
        check("features", points.ncols(), features.ncols())?;
        self.check_ws(points, ws)?;
        let p = points.ncols();
        let mut start = 0;
        while start < p {
            let m = ws.chunk.min(p - start);
            self.hidden_chunk(points, start, m, ws);
            let last = ws.layers.last().expect("non-empty widths");
            features
                .columns_mut(start, m)
                .copy_from(&last.columns(0, m));
            start += m;
        }
        Ok(())
    }

    fn check_ws(&self, points: &DMatrix<f64>, ws: &NetworkWorkspace) -> Result<()> {
        check("points", self.spec.input_dim, points.nrows())?;
        check("ws", self.spec.widths.len(), ws.layers.len())?;
        for (buf, &w) in ws.layers.iter().zip(&self.spec.widths) {
            check("ws", w, buf.nrows())?;
        }
        Ok(())
    }

    /// Fills `ws.layers[l]` (first `m` columns) with the hidden activations of points
    /// `start..start + m`.
    fn hidden_chunk(
        &self,
        points: &DMatrix<f64>,
        start: usize,
        m: usize,
        ws: &mut NetworkWorkspace,
    ) {
        let k = points.nrows();
        let input = &points.as_slice()[start * k..(start + m) * k];
        for l in 0..self.spec.widths.len() {
            let (done, rest) = ws.layers.split_at_mut(l);
            let cur = &mut rest[0];
            let rows = cur.nrows();
            let z = &mut cur.as_mut_slice()[..rows * m];
            if l == 0 {
                affine(&self.weights[0], &self.biases[0], input, z, m);
            } else {
                let prev = &done[l - 1];
                affine(
                    &self.weights[l],
                    &self.biases[l],
                    &prev.as_slice()[..prev.nrows() * m],
                    z,
                    m,
                );
            }
            self.spec.activation.apply(z);
        }
    }
}

/// `out = W·input + b·1ᵀ` for `m` column-major columns (`input`: `k × m`, `out`: `r × m`).
///
/// nalgebra's `gemm` calls the blocked `matrixmultiply` kernel only when every dimension
/// exceeds 5 and otherwise loops over tiny vectors; the input layer (`k = n + 1`, often 2–4)
/// and the output layer (`r = d`, often 1) are exactly those cases, so they get slice loops
/// the compiler vectorises: axpy over the rows when `k` is small, dot products when `r` is.
fn affine(w: &DMatrix<f64>, b: &DVector<f64>, input: &[f64], out: &mut [f64], m: usize) {
    const SMALL: usize = 5;
    let (r, k) = w.shape();
    let ws = w.as_slice();
    if r == 1 {
        for (x, o) in input.chunks_exact(k).zip(out.iter_mut()).take(m) {
            *o = b[0] + dot(ws, x);
        }
    } else if r <= SMALL {
        for (x, o) in input.chunks_exact(k).zip(out.chunks_exact_mut(r)).take(m) {
            for (i, oi) in o.iter_mut().enumerate() {
                // Row i of W is strided by r; for r = 1 it is contiguous.
                let mut acc = b[i];
                for (j, xj) in x.iter().enumerate() {
                    acc += ws[j * r + i] * xj;
                }
                *oi = acc;
            }
        }
    } else if k <= SMALL {
        for (x, o) in input.chunks_exact(k).zip(out.chunks_exact_mut(r)).take(m) {
            o.copy_from_slice(b.as_slice());
            for (xj, wc) in x.iter().zip(ws.chunks_exact(r)) {
                for (oi, wi) in o.iter_mut().zip(wc) {
                    *oi += xj * wi;
                }
            }
        }
    } else {
        let x = nalgebra::DMatrixView::from_slice(input, k, m);
        let mut o = nalgebra::DMatrixViewMut::from_slice(out, r, m);
        o.gemm(1.0, w, &x, 0.0);
        for mut col in o.column_iter_mut() {
            col += b;
        }
    }
}

/// A dot product with eight independent accumulators (so that it vectorises).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f64>() + tail
}

fn check(name: &'static str, expected: usize, found: usize) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(Error::DimensionMismatch {
            name,
            expected,
            found,
        })
    }
}
