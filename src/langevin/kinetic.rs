//! Underdamped (kinetic) Langevin dynamics: the exact Ornstein–Uhlenbeck integrator with a
//! frozen force, and BAOAB.

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, Dim, OVector};
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;

use crate::dim::fill_standard_normal;
use crate::error::{Error, Result, positive};
use crate::langevin::ula::{chain_state, check_finite};
use crate::potential::Potential;
use crate::sampler::{ChainState, HasPosition, Sampler};

/// The coefficients of one step of length `η` of the kinetic Langevin dynamics
/// `dX = P dt`, `dP = (f − γP) dt + √(2γ) dB` with the force `f` frozen at the start of the step
/// (`f = −∇U(X₀)` for sampling, `f = s(t, X₀)` for a diffusion corrector).
///
/// The linear part is integrated exactly: with `e = e^{−γη}`, `a₁ = (1 − e)/γ`,
/// `a₂ = (η − a₁)/γ`,
///
/// ```text
/// X' = X + a₁P + a₂f + ζ_X,      P' = eP + a₁f + ζ_P,
/// ```
///
/// where per coordinate `(ζ_X, ζ_P) ~ N(0, [[v_x, c],[c, v_p]])`, `v_p = 1 − e²`,
/// `c = (1 − e)²/γ`, `v_x = (2/γ)[η − 2(1 − e)/γ + (1 − e²)/(2γ)]`. The position and velocity
/// noises are **correlated**: drawing them independently is a common bug that gives a larger,
/// opposite-sign bias. `v_x` is evaluated by its Taylor series `(2/γ²)(z³/3 − z⁴/4 + …)`,
/// `z = γη`, when `z < 0.01`, where the closed form cancels.
///
/// # Example
///
/// ```
/// use klflow::langevin::OuStep;
///
/// let s = OuStep::new(2.0, 0.1)?;
/// let [[vx, c], [_, vp]] = s.noise_covariance();
/// assert!(c * c < vx * vp); // a valid 2×2 covariance
/// assert!((vp - (1.0 - (-0.4f64).exp())).abs() < 1e-15);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct OuStep {
    friction: f64,
    step: f64,
    e: f64,
    a1: f64,
    a2: f64,
    vx: f64,
    vp: f64,
    cxp: f64,
    // Cholesky factor of the 2×2 noise covariance: ζ_X = l11 ξ₁, ζ_P = l21 ξ₁ + l22 ξ₂.
    l11: f64,
    l21: f64,
    l22: f64,
}

impl OuStep {
    /// Coefficients for friction `γ = friction` and step `η = step`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless both are finite and positive.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, langevin::OuStep};
    ///
    /// assert!(OuStep::new(1.0, 0.1).is_ok());
    /// assert!(matches!(OuStep::new(0.0, 0.1), Err(Error::InvalidParameter { name: "friction", .. })));
    /// assert!(matches!(OuStep::new(1.0, -0.1), Err(Error::InvalidParameter { name: "step", .. })));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(friction: f64, step: f64) -> Result<Self> {
        positive("friction", friction)?;
        positive("step", step)?;
        let g = friction;
        let z = g * step;
        let one_minus_e = -(-z).exp_m1();
        let e = 1.0 - one_minus_e;
        let a1 = one_minus_e / g;
        let a2 = (step - a1) / g;
        let vp = -(-2.0 * z).exp_m1();
        let cxp = one_minus_e * one_minus_e / g;
        let f = if z < 1e-2 {
            // z − 2(1 − e^{−z}) + (1 − e^{−2z})/2 = Σ_{k≥3} (−1)^{k+1}(2^{k−1} − 2) z^k / k!
            let z3 = z * z * z;
            z3 * (1.0 / 3.0
                + z * (-0.25
                    + z * (7.0 / 60.0 + z * (-1.0 / 24.0 + z * (31.0 / 2520.0 - z / 320.0)))))
        } else {
            z - 2.0 * one_minus_e + 0.5 * vp
        };
        let vx = 2.0 * f / (g * g);
        let l11 = vx.sqrt();
        let l21 = if l11 > 0.0 { cxp / l11 } else { 0.0 };
        let l22 = (vp - l21 * l21).max(0.0).sqrt();
        if !(l11 > 0.0 && l22.is_finite()) {
            return Err(Error::InvalidParameter {
                name: "step",
                value: step,
                reason: "too small for the friction: the position noise underflows",
            });
        }
        Ok(Self {
            friction,
            step,
            e,
            a1,
            a2,
            vx,
            vp,
            cxp,
            l11,
            l21,
            l22,
        })
    }

    /// The friction `γ`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::langevin::OuStep;
    ///
    /// assert_eq!(OuStep::new(2.0, 0.1)?.friction(), 2.0);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn friction(&self) -> f64 {
        self.friction
    }

    /// The step `η`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::langevin::OuStep;
    ///
    /// assert_eq!(OuStep::new(2.0, 0.1)?.step(), 0.1);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn step(&self) -> f64 {
        self.step
    }

    /// `(e, a₁, a₂)`: the velocity decay and the coefficients of `P` and `f` in the update.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::langevin::OuStep;
    ///
    /// let (g, eta) = (2.0, 0.1);
    /// let (e, a1, a2) = OuStep::new(g, eta)?.drift_coefficients();
    /// assert!((e - (-g * eta).exp()).abs() < 1e-15);
    /// assert!((a1 - (1.0 - e) / g).abs() < 1e-15);
    /// assert!((a2 - (eta - a1) / g).abs() < 1e-15);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn drift_coefficients(&self) -> (f64, f64, f64) {
        (self.e, self.a1, self.a2)
    }

    /// The per-coordinate noise covariance `[[v_x, c], [c, v_p]]`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::langevin::OuStep;
    ///
    /// // For a small step the covariance is ≈ 2γ[[η³/3, η²/2], [η²/2, η]].
    /// let (g, eta) = (1.0, 1e-3);
    /// let [[vx, c], [_, vp]] = OuStep::new(g, eta)?.noise_covariance();
    /// assert!((vx / (2.0 * g * eta.powi(3) / 3.0) - 1.0).abs() < 1e-2);
    /// assert!((c / (g * eta * eta) - 1.0).abs() < 1e-2);
    /// assert!((vp / (2.0 * g * eta) - 1.0).abs() < 1e-2);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn noise_covariance(&self) -> [[f64; 2]; 2] {
        [[self.vx, self.cxp], [self.cxp, self.vp]]
    }

    /// Advances `(x, p)` by one step with the frozen `force`. Allocates nothing.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::langevin::OuStep;
    /// use nalgebra::Vector1;
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let s = OuStep::new(1.0, 0.1)?;
    /// let (mut x, mut p) = (Vector1::new(1.0), Vector1::new(0.0));
    /// s.apply(&mut x, &mut p, &Vector1::new(-1.0), &mut ChaCha8Rng::seed_from_u64(0));
    /// assert!(x[0] < 1.05 && p[0] < 0.5);
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn apply<D: Dim, R: Rng + ?Sized>(
        &self,
        x: &mut OVector<f64, D>,
        p: &mut OVector<f64, D>,
        force: &OVector<f64, D>,
        rng: &mut R,
    ) where
        DefaultAllocator: Allocator<D>,
    {
        for ((xi, pi), fi) in x.iter_mut().zip(p.iter_mut()).zip(force.iter()) {
            let z1: f64 = rng.sample(StandardNormal);
            let z2: f64 = rng.sample(StandardNormal);
            *xi += self.a1 * *pi + self.a2 * fi + self.l11 * z1;
            *pi = self.e * *pi + self.a1 * fi + self.l21 * z1 + self.l22 * z2;
        }
    }
}

/// The integrator of [`UnderdampedLangevin`].
///
/// # Example
///
/// ```
/// use klflow::langevin::{KineticIntegrator, UnderdampedLangevin};
/// use klflow::potential::Gaussian;
/// use nalgebra::Const;
///
/// assert_eq!(KineticIntegrator::default(), KineticIntegrator::ExactOu);
/// let target = Gaussian::standard(Const::<3>);
/// let _baoab = UnderdampedLangevin::new(&target, 1.0, 0.2, KineticIntegrator::Baoab)?;
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum KineticIntegrator {
    /// The exact OU step with the force frozen at the start of the step ([`OuStep`]):
    /// first-order bias in `η`, exact on the linear part. One gradient per step.
    #[default]
    ExactOu,
    /// BAOAB (Leimkuhler–Matthews): half kick, half drift, exact OU velocity refresh, half drift,
    /// half kick. Second-order accurate for the position marginal. One gradient per step.
    Baoab,
}

/// Underdamped (kinetic) Langevin Monte Carlo targeting `π(x) ⊗ N(0, I)` in `(x, p)`:
/// `dX = P dt`, `dP = −∇U(X) dt − γP dt + √(2γ) dB`.
///
/// Friction `γ` and step `η` are validated; the velocity starts from `N(0, I)` in `init`. The
/// exact OU integrator is the one analysed for the probability-flow-ODE corrector (Chen et al.
/// 2023); BAOAB is the usual molecular-dynamics choice.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::{KineticIntegrator, UnderdampedLangevin}};
/// use klflow::potential::Gaussian;
/// use klflow::run::{OnlineMoments, run};
/// use nalgebra::{Const, Vector2};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let target = Gaussian::standard(Const::<2>);
/// let ulmc = UnderdampedLangevin::new(&target, 2.0, 0.1, KineticIntegrator::Baoab)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(5);
/// let mut state = ulmc.init(Vector2::new(3.0, 0.0), &mut rng)?;
/// let mut m = OnlineMoments::with_burn_in(Const::<2>, 500);
/// run(&ulmc, &mut state, 50_000, &mut rng, &mut m)?;
/// assert!((m.covariance()[(0, 0)] - 1.0).abs() < 0.1);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct UnderdampedLangevin<P> {
    potential: P,
    ou: OuStep,
    // BAOAB's O-step: p ← e p + √(1 − e²) ξ over the full step.
    baoab_noise: f64,
    integrator: KineticIntegrator,
}

/// The state of an underdamped chain: the position part ([`ChainState`]) and the velocity.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::{KineticIntegrator, UnderdampedLangevin}};
/// use klflow::potential::Gaussian;
/// use nalgebra::{Const, Vector2};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let target = Gaussian::standard(Const::<2>);
/// let ulmc = UnderdampedLangevin::new(&target, 1.0, 0.1, KineticIntegrator::ExactOu)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut state = ulmc.init(Vector2::new(1.0, -1.0), &mut rng)?;
/// ulmc.step(&mut state, &mut rng)?;
/// assert_eq!(state.chain().iteration(), 1);
/// assert_eq!(state.position(), state.chain().position());
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(bound(
        serialize = "OVector<f64, D>: serde::Serialize",
        deserialize = "OVector<f64, D>: serde::Deserialize<'de>"
    ))
)]
pub struct KineticState<D: Dim>
where
    DefaultAllocator: Allocator<D>,
{
    chain: ChainState<D>,
    velocity: OVector<f64, D>,
    force: OVector<f64, D>,
}

impl<D: Dim> KineticState<D>
where
    DefaultAllocator: Allocator<D>,
{
    /// The position part: position, gradient, energy, step count.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::{KineticIntegrator, UnderdampedLangevin}};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::{Const, Vector2};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let target = Gaussian::standard(Const::<2>);
    /// let ulmc = UnderdampedLangevin::new(&target, 1.0, 0.1, KineticIntegrator::ExactOu)?;
    /// let state = ulmc.init(Vector2::new(3.0, 4.0), &mut ChaCha8Rng::seed_from_u64(0))?;
    /// assert_eq!(state.chain().energy(), 12.5); // U(x) = ‖x‖²/2
    /// assert_eq!(state.chain().gradient(), &Vector2::new(3.0, 4.0));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn chain(&self) -> &ChainState<D> {
        &self.chain
    }
    /// The current position.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::{KineticIntegrator, UnderdampedLangevin}};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::{Const, Vector2};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let target = Gaussian::standard(Const::<2>);
    /// let ulmc = UnderdampedLangevin::new(&target, 1.0, 0.1, KineticIntegrator::Baoab)?;
    /// let state = ulmc.init(Vector2::new(3.0, 4.0), &mut ChaCha8Rng::seed_from_u64(0))?;
    /// assert_eq!(state.position(), &Vector2::new(3.0, 4.0));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn position(&self) -> &OVector<f64, D> {
        self.chain.position()
    }
    /// The velocity `p`.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Sampler, langevin::{KineticIntegrator, UnderdampedLangevin}};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::{Const, Vector1};
    /// use rand::{SeedableRng, rngs::ChaCha8Rng};
    ///
    /// // `init` draws p ~ N(0, 1): over 2000 chains, E p² = 1 within 5 standard errors (√(2/2000)).
    /// let target = Gaussian::standard(Const::<1>);
    /// let ulmc = UnderdampedLangevin::new(&target, 1.0, 0.1, KineticIntegrator::ExactOu)?;
    /// let mut rng = ChaCha8Rng::seed_from_u64(1);
    /// let mut p2 = 0.0;
    /// for _ in 0..2000 {
    ///     p2 += ulmc.init(Vector1::new(0.0), &mut rng)?.velocity()[0].powi(2) / 2000.0;
    /// }
    /// assert!((p2 - 1.0).abs() < 5.0 * (2.0f64 / 2000.0).sqrt());
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn velocity(&self) -> &OVector<f64, D> {
        &self.velocity
    }
}

impl<D: Dim> HasPosition for KineticState<D>
where
    DefaultAllocator: Allocator<D>,
{
    type Dim = D;
    fn position(&self) -> &OVector<f64, D> {
        self.chain.position()
    }
}

/// What one underdamped step reports.
///
/// # Example
///
/// ```
/// use klflow::{Sampler, langevin::{KineticIntegrator, UnderdampedLangevin}};
/// use klflow::potential::Gaussian;
/// use nalgebra::{Const, Vector2};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let target = Gaussian::standard(Const::<2>);
/// let ulmc = UnderdampedLangevin::new(&target, 1.0, 0.1, KineticIntegrator::ExactOu)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let mut state = ulmc.init(Vector2::new(1.0, 2.0), &mut rng)?;
/// let info = ulmc.step(&mut state, &mut rng)?;
/// assert_eq!(info.energy, state.chain().energy());
/// assert!((info.kinetic_energy - 0.5 * state.velocity().norm_squared()).abs() < 1e-15);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KineticInfo {
    /// `U(x)` at the new position.
    pub energy: f64,
    /// The kinetic energy `‖p‖²/2`.
    pub kinetic_energy: f64,
}

impl<P: Potential> UnderdampedLangevin<P> {
    /// Underdamped Langevin with friction `friction` (γ), step `step` (η) and `integrator`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming `friction` or `step` unless finite and positive.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::{Error, langevin::{KineticIntegrator, UnderdampedLangevin}};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Const;
    ///
    /// let target = Gaussian::standard(Const::<2>);
    /// assert!(UnderdampedLangevin::new(&target, 2.0, 0.1, KineticIntegrator::ExactOu).is_ok());
    /// assert!(matches!(
    ///     UnderdampedLangevin::new(&target, -1.0, 0.1, KineticIntegrator::ExactOu),
    ///     Err(Error::InvalidParameter { name: "friction", .. })
    /// ));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn new(
        potential: P,
        friction: f64,
        step: f64,
        integrator: KineticIntegrator,
    ) -> Result<Self> {
        let ou = OuStep::new(friction, step)?;
        let baoab_noise = ou.vp.sqrt();
        Ok(Self {
            potential,
            ou,
            baoab_noise,
            integrator,
        })
    }

    /// The step coefficients.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::langevin::{KineticIntegrator, UnderdampedLangevin};
    /// use klflow::potential::Gaussian;
    /// use nalgebra::Const;
    ///
    /// let target = Gaussian::standard(Const::<2>);
    /// let ulmc = UnderdampedLangevin::new(&target, 2.0, 0.1, KineticIntegrator::ExactOu)?;
    /// assert_eq!((ulmc.ou_step().friction(), ulmc.ou_step().step()), (2.0, 0.1));
    /// # Ok::<(), klflow::Error>(())
    /// ```
    pub fn ou_step(&self) -> &OuStep {
        &self.ou
    }
}

impl<P: Potential> Sampler for UnderdampedLangevin<P>
where
    DefaultAllocator: Allocator<P::Dim>,
{
    type Init = OVector<f64, P::Dim>;
    type State = KineticState<P::Dim>;
    type Info = KineticInfo;

    fn init<R: Rng + ?Sized>(&self, init: Self::Init, rng: &mut R) -> Result<Self::State> {
        let chain = chain_state(&self.potential, init)?;
        let mut velocity = chain.position.clone();
        fill_standard_normal(&mut velocity, rng);
        let force = chain.position.clone();
        Ok(KineticState {
            chain,
            velocity,
            force,
        })
    }

    fn step<R: Rng + ?Sized>(&self, state: &mut Self::State, rng: &mut R) -> Result<KineticInfo> {
        let KineticState {
            chain,
            velocity,
            force,
        } = state;
        match self.integrator {
            KineticIntegrator::ExactOu => {
                force.copy_from(&chain.gradient);
                *force *= -1.0;
                self.ou.apply(&mut chain.position, velocity, force, rng);
                chain.energy = self
                    .potential
                    .energy_grad(&chain.position, &mut chain.gradient);
            }
            KineticIntegrator::Baoab => {
                let half = 0.5 * self.ou.step;
                velocity.axpy(-half, &chain.gradient, 1.0);
                chain.position.axpy(half, velocity, 1.0);
                for v in velocity.iter_mut() {
                    let z: f64 = rng.sample(StandardNormal);
                    *v = self.ou.e * *v + self.baoab_noise * z;
                }
                chain.position.axpy(half, velocity, 1.0);
                chain.energy = self
                    .potential
                    .energy_grad(&chain.position, &mut chain.gradient);
                velocity.axpy(-half, &chain.gradient, 1.0);
            }
        }
        chain.iteration += 1;
        check_finite(chain.iteration, chain.energy, &chain.gradient)?;
        Ok(KineticInfo {
            energy: chain.energy,
            kinetic_energy: 0.5 * velocity.norm_squared(),
        })
    }
}
