//! Potentials differentiated automatically (forward mode, num-dual).

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, Dim, OMatrix, OVector, U1};
use num_dual::{Dual2Vec, DualNum, DualVec};

use crate::potential::{Potential, PotentialHessian};

/// A potential written once, generically over the number type, so that [`AutoDiff`] can
/// evaluate it with `f64` (energy) and with num-dual's dual numbers (gradient, Hessian).
///
/// Write the body with `DualNum` operations (`+ − × ÷`, `exp`, `ln`, `powi`, `sqrt`, …,
/// mixed with `f64` constants); clone entries of `x` since dual numbers for `Dyn` are not
/// `Copy`.
///
/// # Example
///
/// ```
/// use klflow::potential::{AutoDiff, DualFunction, Potential, PotentialHessian};
/// use nalgebra::{Const, OVector, SMatrix, SVector};
/// use num_dual::DualNum;
///
/// /// Rosenbrock: U(x) = (1 − x₁)² + 10 (x₂ − x₁²)².
/// struct Rosenbrock;
/// impl DualFunction for Rosenbrock {
///     type Dim = Const<2>;
///     fn dim(&self) -> Const<2> { Const }
///     fn eval<T: DualNum<Primitive = f64>>(&self, x: &OVector<T, Const<2>>) -> T {
///         let a = -x[0].clone() + 1.0;
///         let b = x[1].clone() - x[0].clone() * x[0].clone();
///         a.clone() * a + b.clone() * b * 10.0
///     }
/// }
///
/// let p = AutoDiff(Rosenbrock);
/// let mut g = SVector::zeros();
/// let u = p.energy_grad(&nalgebra::Vector2::new(1.0, 1.0), &mut g);
/// assert_eq!((u, g), (0.0, SVector::zeros())); // the minimum
/// let mut h = SMatrix::zeros();
/// p.hessian(&nalgebra::Vector2::new(1.0, 1.0), &mut h);
/// assert_eq!(h, SMatrix::<f64, 2, 2>::new(82.0, -40.0, -40.0, 20.0));
/// ```
pub trait DualFunction {
    /// The dimension of the point.
    type Dim: Dim;

    /// The dimension (`Const<N>` or `Dyn(d)`).
    fn dim(&self) -> Self::Dim;

    /// `U(x)` for any dual-number type `T` (including `f64` itself).
    fn eval<T: DualNum<Primitive = f64>>(&self, x: &OVector<T, Self::Dim>) -> T
    where
        DefaultAllocator: Allocator<Self::Dim>;
}

/// A [`Potential`] (and [`PotentialHessian`]) whose gradient and Hessian come from
/// forward-mode automatic differentiation of a [`DualFunction`].
///
/// Cost: a gradient carries `d` dual lanes, so it costs O(d) energy evaluations (measured by the
/// peers' survey: 18× an analytic gradient at d = 2, 73× at d = 8); for `Dyn` the dual numbers
/// allocate. Use it for convenience and to check hand-written derivatives, and write an
/// analytic [`Potential`] for hot loops in high dimension.
///
/// # Example
///
/// A quartic written once; its gradient `4x³` comes out of the dual numbers (see
/// [`DualFunction`] for a two-dimensional example with a Hessian).
///
/// ```
/// use klflow::potential::{AutoDiff, DualFunction, Potential};
/// use nalgebra::{Dyn, DVector, OVector};
/// use num_dual::DualNum;
///
/// /// U(x) = Σ x_i⁴ in any dimension.
/// struct Quartic(usize);
/// impl DualFunction for Quartic {
///     type Dim = Dyn;
///     fn dim(&self) -> Dyn { Dyn(self.0) }
///     fn eval<T: DualNum<Primitive = f64>>(&self, x: &OVector<T, Dyn>) -> T {
///         x.iter().fold(T::zero(), |acc, v| acc + v.powi(4))
///     }
/// }
///
/// let p = AutoDiff(Quartic(3));
/// let x = DVector::from_vec(vec![1.0, -2.0, 0.5]);
/// let mut g = DVector::zeros(3);
/// let u = p.energy_grad(&x, &mut g);
/// assert_eq!(u, 1.0 + 16.0 + 0.0625);
/// assert_eq!(g, DVector::from_vec(vec![4.0, -32.0, 0.5]));
/// ```
#[derive(Clone, Debug, Default)]
pub struct AutoDiff<F>(pub F);

impl<F: DualFunction> Potential for AutoDiff<F> {
    type Dim = F::Dim;

    fn dim(&self) -> F::Dim {
        self.0.dim()
    }

    fn energy(&self, x: &OVector<f64, F::Dim>) -> f64
    where
        DefaultAllocator: Allocator<F::Dim>,
    {
        self.0.eval(x)
    }

    fn energy_grad(&self, x: &OVector<f64, F::Dim>, grad: &mut OVector<f64, F::Dim>) -> f64
    where
        DefaultAllocator: Allocator<F::Dim>,
    {
        let (u, g) = num_dual::gradient(
            |v: OVector<DualVec<f64, F::Dim>, F::Dim>| self.0.eval(&v),
            x,
        );
        grad.copy_from(&g);
        u
    }
}

impl<F: DualFunction> PotentialHessian for AutoDiff<F> {
    fn hessian(&self, x: &OVector<f64, F::Dim>, hess: &mut OMatrix<f64, F::Dim, F::Dim>)
    where
        DefaultAllocator: crate::dim::Alloc<F::Dim>,
    {
        hessian_impl(&self.0, x, hess);
    }
}

fn hessian_impl<F: DualFunction>(
    f: &F,
    x: &OVector<f64, F::Dim>,
    hess: &mut OMatrix<f64, F::Dim, F::Dim>,
) where
    DefaultAllocator: Allocator<F::Dim> + Allocator<F::Dim, F::Dim> + Allocator<U1, F::Dim>,
{
    let (_, _, h) = num_dual::hessian(|v: OVector<Dual2Vec<f64, F::Dim>, F::Dim>| f.eval(&v), x);
    hess.copy_from(&h);
}
