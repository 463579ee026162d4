//! One step of each Langevin sampler on the WORKLOADS.md targets.
//!
//! `cargo bench --bench langevin`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use klflow::Sampler;
use klflow::langevin::{
    KineticIntegrator, Mala, MalaEnsemble, Ula, UlaEnsemble, UnderdampedLangevin,
};
use klflow::potential::{BatchPotential, BatchWorkspace, Potential};
use klflow::potential::{Gaussian, LogisticRegression};
use nalgebra::{Const, DMatrix, DVector, Dyn, SVector};
use rand::rngs::{ChaCha8Rng, Xoshiro256PlusPlus};
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

fn aniso_const<const N: usize>() -> Gaussian<Const<N>> {
    let v = SVector::<f64, N>::from_fn(|i, _| 1.0 / 100f64.powf(i as f64 / (N - 1) as f64));
    Gaussian::diagonal(SVector::zeros(), v).unwrap()
}

fn aniso_dyn(d: usize) -> Gaussian<Dyn> {
    let v = DVector::from_fn(d, |i, _| 1.0 / 100f64.powf(i as f64 / (d - 1) as f64));
    Gaussian::diagonal(DVector::zeros(d), v).unwrap()
}

fn logreg(d: usize) -> LogisticRegression<Dyn> {
    let mut r = ChaCha8Rng::seed_from_u64(3);
    let x = DMatrix::from_fn(1000, d, |_, _| r.sample::<f64, _>(StandardNormal));
    let y: Vec<f64> = (0..1000)
        .map(|_| f64::from(u8::from(r.random::<bool>())))
        .collect();
    LogisticRegression::new(Dyn(d), &x, &y, 1.0).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("langevin_step");

    let t10 = aniso_const::<10>();
    let ula = Ula::new(&t10, 1e-3).unwrap();
    let mut r = ChaCha8Rng::seed_from_u64(1);
    let mut s = ula.init(SVector::repeat(1.0), &mut r).unwrap();
    g.bench_function("ula/aniso/d10/const/chacha8", |b| {
        b.iter(|| ula.step(black_box(&mut s), &mut r).unwrap())
    });
    let mut rx = Xoshiro256PlusPlus::seed_from_u64(1);
    g.bench_function("ula/aniso/d10/const/xoshiro", |b| {
        b.iter(|| ula.step(black_box(&mut s), &mut rx).unwrap())
    });

    let td = aniso_dyn(10);
    let ula_d = Ula::new(&td, 1e-3).unwrap();
    let mut sd = ula_d.init(DVector::from_element(10, 1.0), &mut r).unwrap();
    g.bench_function("ula/aniso/d10/dyn/chacha8", |b| {
        b.iter(|| ula_d.step(black_box(&mut sd), &mut r).unwrap())
    });

    let t100 = aniso_dyn(100);
    let ula100 = Ula::new(&t100, 1e-3).unwrap();
    let mut s100 = ula100
        .init(DVector::from_element(100, 1.0), &mut r)
        .unwrap();
    g.bench_function("ula/aniso/d100/dyn/chacha8", |b| {
        b.iter(|| ula100.step(black_box(&mut s100), &mut r).unwrap())
    });

    // 100 chains of the d = 100 anisotropic Gaussian as one ensemble (bulk normals).
    let ens100 = UlaEnsemble::new(&t100, 1e-3).unwrap().without_energies();
    let mut rngs100: Vec<Xoshiro256PlusPlus> =
        (0..100u64).map(Xoshiro256PlusPlus::seed_from_u64).collect();
    let mut se100 = ens100
        .init(DMatrix::from_element(100, 100, 1.0), &mut r)
        .unwrap();
    g.bench_function("ula_ensemble/aniso/d100/c100/xoshiro", |b| {
        b.iter(|| {
            ens100
                .step_streams(black_box(&mut se100), &mut rngs100)
                .unwrap()
        })
    });

    let mala = Mala::new(&t10, 1e-3).unwrap();
    let mut m = mala.init(SVector::repeat(1.0), &mut r).unwrap();
    g.bench_function("mala/aniso/d10/const/chacha8", |b| {
        b.iter(|| mala.step(black_box(&mut m), &mut r).unwrap())
    });
    g.bench_function("mala/aniso/d10/const/xoshiro", |b| {
        b.iter(|| mala.step(black_box(&mut m), &mut rx).unwrap())
    });

    let ulmc = UnderdampedLangevin::new(&t10, 1.0, 1e-2, KineticIntegrator::ExactOu).unwrap();
    let mut k = ulmc.init(SVector::repeat(1.0), &mut r).unwrap();
    g.bench_function("underdamped/exact_ou/d10/const", |b| {
        b.iter(|| ulmc.step(black_box(&mut k), &mut r).unwrap())
    });
    let baoab = UnderdampedLangevin::new(&t10, 1.0, 1e-2, KineticIntegrator::Baoab).unwrap();
    let mut kb = baoab.init(SVector::repeat(1.0), &mut r).unwrap();
    g.bench_function("underdamped/baoab/d10/const", |b| {
        b.iter(|| baoab.step(black_box(&mut kb), &mut r).unwrap())
    });

    for d in [10, 100] {
        let post = logreg(d);
        let ula = Ula::new(&post, 2e-4).unwrap();
        let mut s = ula.init(DVector::zeros(d), &mut r).unwrap();
        g.bench_function(format!("ula/logreg/d{d}/n1000"), |b| {
            b.iter(|| ula.step(black_box(&mut s), &mut r).unwrap())
        });
    }

    // Ensembles: C chains per step, one batched gradient (logreg: the fused kernel at d = 10,
    // two matrix products at d = 100).
    for (d, c) in [(10, 100), (100, 100)] {
        let post = logreg(d);
        let x = DMatrix::from_fn(d, c, |i, j| 0.01 * (i as f64 - j as f64));
        let mut grad = DMatrix::zeros(d, c);
        let mut e = vec![0.0; c];
        let mut work = BatchWorkspace::new();
        g.bench_function(format!("logreg_batch_grad/d{d}/c{c}/n1000"), |b| {
            b.iter(|| post.energy_grad_batch(black_box(&x), &mut grad, &mut e, &mut work))
        });
        g.bench_function(format!("logreg_batch_grad_only/d{d}/c{c}/n1000"), |b| {
            b.iter(|| post.grad_columns(black_box(x.as_view()), grad.as_view_mut(), &mut work))
        });
        let mut gv = DVector::zeros(d);
        let xv = x.column(0).into_owned();
        g.bench_function(format!("logreg_grad/d{d}/n1000"), |b| {
            b.iter(|| post.energy_grad(black_box(&xv), &mut gv))
        });
        let mut rngs: Vec<Xoshiro256PlusPlus> = (0..c as u64)
            .map(Xoshiro256PlusPlus::seed_from_u64)
            .collect();
        let ula_e = UlaEnsemble::new(&post, 2e-4).unwrap();
        let mut se = ula_e.init(DMatrix::zeros(d, c), &mut r).unwrap();
        g.bench_function(format!("ula_ensemble/logreg/d{d}/c{c}/xoshiro"), |b| {
            b.iter(|| ula_e.step_streams(black_box(&mut se), &mut rngs).unwrap())
        });
        let ula_f = UlaEnsemble::new(&post, 2e-4).unwrap().without_energies();
        let mut sf = ula_f.init(DMatrix::zeros(d, c), &mut r).unwrap();
        g.bench_function(
            format!("ula_ensemble_grad_only/logreg/d{d}/c{c}/xoshiro"),
            |b| b.iter(|| ula_f.step_streams(black_box(&mut sf), &mut rngs).unwrap()),
        );
        let mala_e = MalaEnsemble::new(&post, 2e-4).unwrap();
        let mut sm = mala_e.init(DMatrix::zeros(d, c), &mut r).unwrap();
        g.bench_function(format!("mala_ensemble/logreg/d{d}/c{c}/xoshiro"), |b| {
            b.iter(|| mala_e.step_streams(black_box(&mut sm), &mut rngs).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
