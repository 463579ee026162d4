//! Criterion benches for the random-field module: batched network evaluation on 10 000
//! points, NNGP kernel matrices on 1 000 points, the limit-field Cholesky and one-point W₁.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use klflow::field::{
    Activation, GaussianField, Jitter, NetworkSpec, NetworkWorkspace, Nngp, fibonacci_sphere,
    kernel_matrix, one_point_w1,
};
use nalgebra::DMatrix;
use rand::{SeedableRng, rngs::ChaCha8Rng};
use std::hint::black_box;

fn network_eval(c: &mut Criterion) {
    let pts = fibonacci_sphere(10_000);
    let mut group = c.benchmark_group("network_eval_10k_points");
    for (name, widths, act) in [
        ("relu_1x512", vec![512], Activation::Relu),
        ("relu_2x256", vec![256, 256], Activation::Relu),
        ("tanh_2x256", vec![256, 256], Activation::Tanh),
    ] {
        let spec = NetworkSpec::new(3, &widths, 1, act).unwrap();
        let net = spec.sample(&mut ChaCha8Rng::seed_from_u64(1));
        let mut ws = NetworkWorkspace::new(&spec, 256);
        let mut out = DMatrix::zeros(1, 10_000);
        group.bench_function(name, |b| {
            b.iter(|| net.eval_batch(black_box(&pts), &mut out, &mut ws).unwrap())
        });
    }
    group.finish();
}

fn kernel_matrices(c: &mut Criterion) {
    let mut group = c.benchmark_group("nngp_kernel_matrix");
    group.sample_size(10);
    let pts = fibonacci_sphere(1000);
    for (name, k) in [
        (
            "relu_depth1",
            Nngp::new(Activation::Relu, 1, 1.0, 2.0, 0.0).unwrap(),
        ),
        (
            "relu_depth3",
            Nngp::new(Activation::Relu, 3, 1.0, 2.0, 0.1).unwrap(),
        ),
        (
            "erf_depth3",
            Nngp::new(Activation::Erf, 3, 1.0, 2.0, 0.1).unwrap(),
        ),
    ] {
        group.bench_function(BenchmarkId::new(name, 1000), |b| {
            b.iter(|| kernel_matrix(black_box(&k), &pts))
        });
    }
    // Quadrature kernels cost 64² activation evaluations per pair and layer: 100 points.
    let small = fibonacci_sphere(100);
    let tanh = Nngp::new(Activation::Tanh, 1, 1.0, 1.0, 0.0).unwrap();
    group.bench_function(BenchmarkId::new("tanh_depth1_gh64", 100), |b| {
        b.iter(|| kernel_matrix(black_box(&tanh), &small))
    });
    let relu = Nngp::new(Activation::Relu, 2, 1.0, 2.0, 0.0).unwrap();
    group.bench_function(
        BenchmarkId::new("limit_field_cholesky_relu_depth2", 1000),
        |b| b.iter(|| GaussianField::new(black_box(&relu), &pts, Jitter::default()).unwrap()),
    );
    group.finish();
}

fn one_point(c: &mut Criterion) {
    let mut group = c.benchmark_group("one_point_w1");
    group.sample_size(10);
    let spec = NetworkSpec::new(3, &[64], 1, Activation::Relu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    group.bench_function("relu_n64_200k_draws", |b| {
        b.iter(|| one_point_w1(&spec, &[0.0, 0.0, 1.0], 200_000, &mut rng).unwrap())
    });
    group.finish();
}

criterion_group!(benches, network_eval, kernel_matrices, one_point);
criterion_main!(benches);
