//! One SVGD step (Liu–Wang bandwidth re-fitted every step, N(0, I_d) target) at the sizes of
//! the `svgd` workload, and the pair engine alone (Gaussian path: `Rbf`; general radial path:
//! `Imq`). `cargo bench --bench stein`; add `--features rayon` for the parallel engine. The
//! median bench fits the same particles repeatedly, so after the first call it measures the
//! bracket path (thresholds from the previous fit), as in an SVGD run.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use klflow::Sampler;
use klflow::kernel::{Bandwidth, FitKernel, Imq, MedianScratch, Rbf};
use klflow::potential::Gaussian;
use klflow::stein::{Svgd, stein_direction};
use nalgebra::{DMatrix, Dyn};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

fn particles(d: usize, n: usize) -> DMatrix<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    DMatrix::from_fn(d, n, |_, _| {
        -1.0 + 0.5 * rng.sample::<f64, _>(StandardNormal)
    })
}

fn svgd_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("svgd_step_liu_wang");
    for (n, d) in [(100, 2), (100, 100), (1000, 2), (1000, 10), (1000, 100)] {
        let target = Gaussian::standard(Dyn(d));
        let svgd = Svgd::new(&target, Bandwidth::LiuWang, 0.1).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut state = svgd.init(particles(d, n), &mut rng).unwrap();
        g.bench_function(BenchmarkId::from_parameter(format!("n{n}_d{d}")), |b| {
            b.iter(|| svgd.step(&mut state, &mut rng).unwrap())
        });
    }
    g.finish();
}

fn parts(c: &mut Criterion) {
    let mut g = c.benchmark_group("svgd_parts");
    // n = 5000: past the per-tile slots, the pair engine runs in rounds of block groups.
    for (n, d) in [(100, 2), (1000, 10), (1000, 100), (5000, 10)] {
        if n >= 5000 {
            g.sample_size(20);
        }
        let x = particles(d, n);
        let s = -&x;
        let mut phi = DMatrix::zeros(d, n);
        let k = Rbf::new(1.0).unwrap();
        g.bench_function(BenchmarkId::new("pair_engine", format!("n{n}_d{d}")), |b| {
            b.iter(|| stein_direction(&k, &x, &s, &mut phi).unwrap())
        });
        // The general radial path (k, w, c per pair; 2d + 2 features per side).
        let imq = Imq::new(1.0, -0.5).unwrap();
        g.bench_function(
            BenchmarkId::new("pair_engine_imq", format!("n{n}_d{d}")),
            |b| b.iter(|| stein_direction(&imq, &x, &s, &mut phi).unwrap()),
        );
        let mut scratch = MedianScratch::new(n);
        g.bench_function(
            BenchmarkId::new("liu_wang_median", format!("n{n}_d{d}")),
            |b| b.iter(|| Bandwidth::LiuWang.fit(&x, &mut scratch).unwrap()),
        );
    }
    g.finish();
}

criterion_group!(benches, svgd_step, parts);
criterion_main!(benches);
