//! Checkpoint and resume (feature `serde`).
//!
//! A sampler's state serialises completely (positions, gradients, adapted step sizes and
//! metrics, counters), and [`ChaChaState`] captures a `ChaCha8Rng` exactly (seed, stream and
//! position in the stream). Saving both mid-run and resuming gives the same bits as an
//! uninterrupted run — provided the serialisation format round-trips `f64` exactly: a binary
//! format, or `serde_json` with its `float_roundtrip` feature (its default parser can be off
//! by one unit in the last place).

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

/// The exact state of a [`ChaCha8Rng`]: its seed, stream and word position.
///
/// # Example
///
/// ```
/// use klflow::checkpoint::ChaChaState;
/// use rand::{RngExt, SeedableRng, rngs::ChaCha8Rng};
///
/// let mut rng = ChaCha8Rng::seed_from_u64(3);
/// rng.set_stream(5);
/// let _: u64 = rng.random();
/// let saved = ChaChaState::capture(&rng);
/// let mut back = saved.restore();
/// assert_eq!(rng.random::<u64>(), back.random::<u64>());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChaChaState {
    seed: [u8; 32],
    stream: u64,
    word_pos_hi: u64,
    word_pos_lo: u64,
}

impl ChaChaState {
    /// Captures `rng`'s state.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::checkpoint::ChaChaState;
    /// use rand::{RngExt, SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let mut rng = ChaCha8Rng::seed_from_u64(7);
    /// let before = ChaChaState::capture(&rng);
    /// let _: u32 = rng.random();
    /// // the position in the stream is part of the state
    /// assert_ne!(ChaChaState::capture(&rng), before);
    /// assert_eq!(before, ChaChaState::capture(&ChaCha8Rng::seed_from_u64(7)));
    /// ```
    pub fn capture(rng: &ChaCha8Rng) -> Self {
        let pos = rng.get_word_pos();
        Self {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos_hi: (pos >> 64) as u64,
            word_pos_lo: pos as u64,
        }
    }

    /// An RNG in exactly the captured state.
    ///
    /// # Example
    ///
    /// ```
    /// use klflow::checkpoint::ChaChaState;
    /// use rand::{RngExt, SeedableRng, rngs::ChaCha8Rng};
    ///
    /// let mut rng = ChaCha8Rng::seed_from_u64(1);
    /// rng.set_stream(3);
    /// for _ in 0..5 {
    ///     let _: f64 = rng.random();
    /// }
    /// let json = serde_json::to_string(&ChaChaState::capture(&rng)).unwrap();
    /// let mut back = serde_json::from_str::<ChaChaState>(&json).unwrap().restore();
    /// let (a, b): ([u64; 4], [u64; 4]) = (back.random(), rng.random());
    /// assert_eq!(a, b);
    /// ```
    pub fn restore(&self) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos((u128::from(self.word_pos_hi) << 64) | u128::from(self.word_pos_lo));
        rng
    }
}

/// A sampler state, the RNG driving it, and the number of steps already taken.
///
/// # Example
///
/// ```
/// use klflow::checkpoint::{ChaChaState, Checkpoint};
/// use klflow::{Sampler, langevin::Ula, potential::Gaussian, run::run};
/// use nalgebra::{Const, Vector2};
/// use rand::{SeedableRng, rngs::ChaCha8Rng};
///
/// let ula = Ula::new(Gaussian::standard(Const::<2>), 0.1)?;
/// let mut rng = ChaCha8Rng::seed_from_u64(1);
/// let mut state = ula.init(Vector2::new(1.0, 1.0), &mut rng)?;
/// run(&ula, &mut state, 50, &mut rng, &mut ())?;
/// let saved = serde_json::to_string(&Checkpoint { state: state.clone(), rng: ChaChaState::capture(&rng), steps: 50 }).unwrap();
///
/// run(&ula, &mut state, 50, &mut rng, &mut ())?; // the uninterrupted run
/// let cp: Checkpoint<klflow::sampler::ChainState<Const<2>>> = serde_json::from_str(&saved).unwrap();
/// let (mut resumed, mut rng2) = (cp.state, cp.rng.restore());
/// run(&ula, &mut resumed, 50, &mut rng2, &mut ())?;
/// assert_eq!(resumed, state);
/// # Ok::<(), klflow::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint<S> {
    /// The sampler state.
    pub state: S,
    /// The RNG's state.
    pub rng: ChaChaState,
    /// Steps taken so far.
    pub steps: usize,
}
