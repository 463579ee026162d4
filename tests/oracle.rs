//! The exact Gaussian oracle is internally consistent (tier 1: deterministic, 1e-10).

mod common;

use common::{rng, spd_with_spectrum};
use klflow::Error;
use klflow::oracle::UlaOracle;
use klflow::potential::Gaussian;
use nalgebra::{SMatrix, SVector};

/// The closed-form stationary law is the fixed point of the one-step recursion, and the
/// recursion converges to it: checks 1/(λ(1 − hλ/2)) against the map it claims to solve.
#[test]
fn ula_stationary_law_is_the_fixed_point_of_the_recursion() {
    let mut r = rng(10);
    for (eigs, h) in [
        ([0.1, 0.5, 1.0, 3.0], 0.3),
        ([1.0, 1.0, 2.0, 9.0], 0.2),
        ([0.2, 0.4, 0.6, 0.8], 2.0),
    ] {
        let cov = spd_with_spectrum::<4>(eigs.map(|l| 1.0 / l), &mut r);
        let target = Gaussian::new(nalgebra::Vector4::new(1.0, -2.0, 0.0, 3.0), cov).unwrap();
        let oracle = UlaOracle::new(&target, h).unwrap();
        let stat = oracle.stationary();
        let next = oracle.step(&stat).unwrap();
        assert!((next.covariance() - stat.covariance()).amax() < 1e-10);
        assert!((next.mean() - stat.mean()).amax() < 1e-12);
        let start = Gaussian::isotropic(SVector::repeat(5.0), 0.1).unwrap();
        let far = oracle.propagate(&start, 3_000).unwrap();
        assert!(far.kl(&stat).unwrap() < 1e-10);
        // The bias is real: KL(stationary ‖ target) > 0 and grows with h.
        assert!(stat.kl(&target).unwrap() > 1e-4);
    }
}

/// One step by hand in 2-D with a non-diagonal precision.
#[test]
fn ula_one_step_matches_hand_computation() {
    let a = SMatrix::<f64, 2, 2>::new(2.0, 0.5, 0.5, 1.0);
    let mu = nalgebra::Vector2::new(1.0, -1.0);
    let target = Gaussian::from_precision(mu, a).unwrap();
    let h = 0.2;
    let oracle = UlaOracle::new(&target, h).unwrap();
    let m0 = nalgebra::Vector2::new(0.5, 0.5);
    let s0 = SMatrix::<f64, 2, 2>::new(1.0, 0.2, 0.2, 2.0);
    let law = Gaussian::new(m0, s0).unwrap();
    let next = oracle.step(&law).unwrap();
    let b = SMatrix::<f64, 2, 2>::identity() - a * h;
    let m1 = m0 - a * (m0 - mu) * h;
    let s1 = b * s0 * b + SMatrix::<f64, 2, 2>::identity() * (2.0 * h);
    assert!((next.mean() - m1).amax() < 1e-14);
    assert!((next.covariance() - s1).amax() < 1e-14);
    // interpolate(0) is the identity, interpolate(h) is the step.
    let same = oracle.interpolate(&law, 0.0).unwrap();
    assert!((same.covariance() - s0).amax() < 1e-15);
    let full = oracle.interpolate(&law, h).unwrap();
    assert!((full.covariance() - s1).amax() < 1e-14);
    assert!(matches!(
        oracle.interpolate(&law, 0.3),
        Err(Error::InvalidParameter { name: "u", .. })
    ));
}

/// The oracle refuses unstable steps (hλ_max ≥ 2), where no stationary law exists.
#[test]
fn ula_oracle_rejects_unstable_steps() {
    let target =
        Gaussian::from_precision(SVector::<f64, 1>::zeros(), SMatrix::identity() * 4.0).unwrap();
    assert!(UlaOracle::new(&target, 0.49).is_ok());
    assert!(matches!(
        UlaOracle::new(&target, 0.5),
        Err(Error::InvalidParameter {
            name: "step_size",
            ..
        })
    ));
}
