//! Export (CSV, NPY) and checkpoint/resume. Needs the `export` and `serde` features
//! (`cargo test --all-features`).
#![cfg(all(feature = "export", feature = "serde"))]

use klflow::Error;
use klflow::Sampler;
use klflow::checkpoint::{ChaChaState, Checkpoint};
use klflow::export::{write_csv, write_npy};
use klflow::langevin::{Mala, MalaState, MetricAdaptation, Warmup};
use klflow::potential::Banana;
use klflow::run::{Trace, run};
use nalgebra::{Const, Vector2};
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

fn draws() -> Vec<Vec<Vector2<f64>>> {
    let target = Banana::standard(Const::<2>);
    let mala = Mala::new(&target, 0.3).unwrap();
    (0..3)
        .map(|c| {
            let mut r = ChaCha8Rng::seed_from_u64(c);
            let mut s = mala.init(Vector2::new(0.1, 0.2), &mut r).unwrap();
            let mut t = Trace::new();
            run(&mala, &mut s, 50, &mut r, &mut t).unwrap();
            t.into_samples()
        })
        .collect()
}

/// CSV and NPY hold exactly the draws (f64 values round-trip bit for bit), in ArviZ's
/// (chain, draw, parameter) layout.
#[test]
fn csv_and_npy_round_trip() {
    let chains = draws();
    let mut csv = Vec::new();
    write_csv(&mut csv, &["x1", "x2"], &chains).unwrap();
    let text = String::from_utf8(csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("chain,draw,x1,x2"));
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 150);
    for row in &rows {
        let (c, t) = (row[0] as usize, row[1] as usize);
        assert_eq!(&row[2..], chains[c][t].as_slice());
    }

    let mut npy = Vec::new();
    write_npy(&mut npy, &["x1", "x2"], &chains).unwrap();
    let arr = npyz::NpyFile::new(&npy[..]).unwrap();
    assert_eq!(arr.shape(), &[3, 50, 2]);
    let flat: Vec<f64> = arr.into_vec().unwrap();
    let want: Vec<f64> = chains
        .iter()
        .flatten()
        .flat_map(|x| x.iter().copied())
        .collect();
    assert_eq!(flat, want);
}

#[test]
fn export_rejects_ragged_input() {
    let mut chains = draws();
    chains[1].pop();
    assert!(matches!(
        write_csv(Vec::new(), &["x1", "x2"], &chains),
        Err(Error::DimensionMismatch { name: "chains", .. })
    ));
    assert!(matches!(
        write_npy(Vec::new(), &["x1"], &draws()),
        Err(Error::DimensionMismatch { name: "names", .. })
    ));
}

/// A MALA run with warm-up (dual averaging, dense metric windows) saved as JSON at step 700 and
/// resumed gives exactly the same chain as the uninterrupted run, adaptation state and RNG
/// included.
#[test]
fn checkpoint_resume_is_bit_identical() {
    let target = Banana::standard(Const::<2>);
    let warmup = Warmup {
        steps: 1_000,
        target_accept: 0.574,
        metric: MetricAdaptation::Dense,
    };
    let mala = Mala::new(&target, 0.1)
        .unwrap()
        .with_warmup(warmup)
        .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    rng.set_stream(3);
    let mut state = mala.init(Vector2::new(1.0, 1.0), &mut rng).unwrap();
    run(&mala, &mut state, 700, &mut rng, &mut ()).unwrap();
    let saved = serde_json::to_string(&Checkpoint {
        state: state.clone(),
        rng: ChaChaState::capture(&rng),
        steps: 700,
    })
    .unwrap();

    let mut full = Trace::new();
    run(&mala, &mut state, 1_300, &mut rng, &mut full).unwrap();

    let cp: Checkpoint<MalaState<Const<2>>> = serde_json::from_str(&saved).unwrap();
    assert_eq!(cp.steps, 700);
    let (mut resumed, mut rng2) = (cp.state, cp.rng.restore());
    let mut rest = Trace::new();
    run(&mala, &mut resumed, 1_300, &mut rng2, &mut rest).unwrap();
    let first_diff = rest
        .samples()
        .iter()
        .zip(full.samples())
        .position(|(a, b)| a != b);
    assert_eq!(
        first_diff, None,
        "resumed chain differs from step {first_diff:?} on"
    );
    assert_eq!(rest.samples().len(), full.samples().len());
    assert_eq!(resumed.step_size(), state.step_size());
    assert_eq!(resumed.metric(), state.metric());
}
