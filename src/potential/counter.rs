//! Counting evaluations.

use std::sync::atomic::{AtomicU64, Ordering};

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, OMatrix, OVector};

use crate::potential::{Potential, PotentialHessian};

/// How many times each capability of a [`Counted`] potential was called.
///
/// # Example
///
/// ```
/// use klflow::potential::{Counted, EvaluationCounts, Gaussian, Potential};
/// use nalgebra::Vector1;
///
/// let p = Counted::new(Gaussian::standard(nalgebra::Const::<1>));
/// let mut g = Vector1::zeros();
/// p.energy(&Vector1::new(1.0));
/// p.energy_grad(&Vector1::new(1.0), &mut g);
/// p.energy_grad(&Vector1::new(2.0), &mut g);
/// assert_eq!(p.counts(), EvaluationCounts { energy: 1, gradient: 2, hessian: 0 });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvaluationCounts {
    /// Calls of [`Potential::energy`].
    pub energy: u64,
    /// Calls of [`Potential::energy_grad`].
    pub gradient: u64,
    /// Calls of [`PotentialHessian::hessian`].
    pub hessian: u64,
}

/// Wraps a potential and counts its evaluations (thread-safe; relaxed atomics).
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::Ula, potential::{Counted, Gaussian}, run::run};
/// use nalgebra::SVector;
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let target = Counted::new(Gaussian::standard(nalgebra::Const::<2>));
/// let ula = Ula::new(&target, 0.1)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut state = ula.init(SVector::zeros(), &mut rng)?;
/// run(&ula, &mut state, 100, &mut rng, &mut ())?;
/// assert_eq!(target.counts().gradient, 101); // one per step + one at init
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Counted<P> {
    inner: P,
    energy: AtomicU64,
    gradient: AtomicU64,
    hessian: AtomicU64,
}

impl<P> Counted<P> {
    /// Wraps `inner` with all counts at zero.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::{Counted, EvaluationCounts, Gaussian};
    ///
    /// let p = Counted::new(Gaussian::standard(nalgebra::Const::<2>));
    /// assert_eq!(p.counts(), EvaluationCounts::default());
    /// ```
    pub fn new(inner: P) -> Self {
        Self {
            inner,
            energy: AtomicU64::new(0),
            gradient: AtomicU64::new(0),
            hessian: AtomicU64::new(0),
        }
    }

    /// The counts so far.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::{Counted, Gaussian, PotentialHessian};
    /// use nalgebra::{Matrix2, Vector2};
    ///
    /// let p = Counted::new(Gaussian::standard(nalgebra::Const::<2>));
    /// let mut h = Matrix2::zeros();
    /// p.hessian(&Vector2::zeros(), &mut h);
    /// assert_eq!(p.counts().hessian, 1);
    /// assert_eq!(h, Matrix2::identity());
    /// ```
    pub fn counts(&self) -> EvaluationCounts {
        EvaluationCounts {
            energy: self.energy.load(Ordering::Relaxed),
            gradient: self.gradient.load(Ordering::Relaxed),
            hessian: self.hessian.load(Ordering::Relaxed),
        }
    }

    /// Sets all counts to zero.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::{Counted, EvaluationCounts, Gaussian, Potential};
    ///
    /// let p = Counted::new(Gaussian::standard(nalgebra::Const::<1>));
    /// p.energy(&nalgebra::Vector1::new(0.0));
    /// assert_eq!(p.counts().energy, 1);
    /// p.reset();
    /// assert_eq!(p.counts(), EvaluationCounts::default());
    /// ```
    pub fn reset(&self) {
        self.energy.store(0, Ordering::Relaxed);
        self.gradient.store(0, Ordering::Relaxed);
        self.hessian.store(0, Ordering::Relaxed);
    }

    /// The wrapped potential.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::potential::{Counted, Gaussian, Potential};
    ///
    /// let p = Counted::new(Gaussian::standard(nalgebra::Const::<2>));
    /// assert_eq!(p.inner().dim_value(), 2);
    /// // going through the inner potential is not counted
    /// p.inner().energy(&nalgebra::Vector2::zeros());
    /// assert_eq!(p.counts().energy, 0);
    /// ```
    pub fn inner(&self) -> &P {
        &self.inner
    }
}

impl<P: Potential> Potential for Counted<P> {
    type Dim = P::Dim;

    fn dim(&self) -> P::Dim {
        self.inner.dim()
    }

    fn energy(&self, x: &OVector<f64, P::Dim>) -> f64
    where
        DefaultAllocator: Allocator<P::Dim>,
    {
        self.energy.fetch_add(1, Ordering::Relaxed);
        self.inner.energy(x)
    }

    fn energy_grad(&self, x: &OVector<f64, P::Dim>, grad: &mut OVector<f64, P::Dim>) -> f64
    where
        DefaultAllocator: Allocator<P::Dim>,
    {
        self.gradient.fetch_add(1, Ordering::Relaxed);
        self.inner.energy_grad(x, grad)
    }

    fn smoothness(&self) -> Option<f64> {
        self.inner.smoothness()
    }

    fn strong_convexity(&self) -> Option<f64> {
        self.inner.strong_convexity()
    }
}

impl<P: PotentialHessian> PotentialHessian for Counted<P> {
    fn hessian(&self, x: &OVector<f64, P::Dim>, hess: &mut OMatrix<f64, P::Dim, P::Dim>)
    where
        DefaultAllocator: crate::dim::Alloc<P::Dim>,
    {
        self.hessian.fetch_add(1, Ordering::Relaxed);
        self.inner.hessian(x, hess)
    }
}
