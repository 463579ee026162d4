//! Runtime choice of the vector instruction set for the hot loops.
//!
//! A crate that depends on klflow compiles it for its own target, by default baseline x86-64
//! (SSE2, no FMA, 2 lanes of `f64`) unless it sets `-C target-cpu`. The hot kernels (normal
//! draws, the SVGD pair engine and median, kernel values, mixture scores, logistic
//! likelihoods, the diagonal Gaussian's gradients) therefore run through [`dispatch`], which
//! detects AVX-512 or AVX2 + FMA once (cached) and runs the kernel compiled for it (`pulp`'s
//! `V4` / `V3` tokens: the kernel body is inlined into a function with those target features,
//! so LLVM vectorises it at 8 or 4 lanes and uses FMA instructions). Results do not change:
//! every multiply-add in the kernels is a fused one on every target (`fastmath::fmadd`), and
//! the other operations are IEEE operations in a fixed order, so a baseline build gives the
//! bits of a native one (a unit test compares the kernels with and without dispatch). A build
//! that already targets AVX-512 calls the kernels directly.

/// Runs `f` compiled for the widest vector extension the CPU has (AVX-512, else AVX2 + FMA;
/// otherwise as the build targets). `f` should be an `#[inline(always)]` closure, and what it
/// calls should inline into it: a function it calls without inlining runs compiled for the
/// build's target (correct, only slower).
#[inline(always)]
pub(crate) fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(test)]
    if tests::OFF.load(std::sync::atomic::Ordering::Relaxed) {
        return f();
    }
    #[cfg(all(target_arch = "x86_64", not(target_feature = "avx512f")))]
    {
        if let Some(v4) = pulp::x86::V4::try_new() {
            return v4.vectorize(f);
        }
        #[cfg(not(target_feature = "avx2"))]
        if let Some(v3) = pulp::x86::V3::try_new() {
            return v3.vectorize(f);
        }
    }
    f()
}

/// `true` if [`dispatch`] runs its kernels with AVX-512 (32 registers of 512 bits): the build
/// targets it, or the CPU has it.
#[inline]
pub(crate) fn avx512() -> bool {
    #[cfg(all(target_arch = "x86_64", not(target_feature = "avx512f")))]
    {
        pulp::x86::V4::is_available()
    }
    #[cfg(not(all(target_arch = "x86_64", not(target_feature = "avx512f"))))]
    {
        cfg!(target_feature = "avx512f")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use nalgebra::{DMatrix, DVector, Dyn};
    use rand::SeedableRng;
    use rand::rngs::ChaCha8Rng;

    use crate::diffusion::{MixtureScore, ScoreModel};
    use crate::kernel::{Imq, Rbf};
    use crate::potential::{
        BatchPotential, BatchWorkspace, Gaussian, GaussianMixture, LogisticRegression, Potential,
    };
    use crate::stein::pairwise::PairScratch;

    /// Set: [`super::dispatch`] calls its kernel as the build compiled it.
    pub(crate) static OFF: AtomicBool = AtomicBool::new(false);

    /// Every dispatched kernel family, run through dispatch and without it: the bits of the
    /// results are equal. (Meaningful on a build that does not target AVX-512, such as the
    /// baseline x86-64 build `.ci/run` tests, on a CPU with AVX2 or AVX-512; elsewhere both
    /// runs take the same path.) Fails if a kernel's arithmetic depended on the instruction
    /// set: an unfused multiply-add, a reduction order chosen by vector width.
    #[test]
    fn dispatch_gives_the_bits_of_the_plain_build() {
        let run = |off: bool| -> Vec<u64> {
            OFF.store(off, Ordering::Relaxed);
            let mut bits = Vec::new();
            let mut push = |v: &[f64]| bits.extend(v.iter().map(|x| x.to_bits()));
            // Normal draws.
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            let mut z = vec![0.0; 1001];
            crate::fastmath::fill_normals(&mut rng, &mut z);
            push(&z);
            // The pair engine: tiled narrow and wide rows, packed small n, Gaussian and IMQ.
            for (d, n) in [(3, 301), (20, 203), (2, 100)] {
                let x: Vec<f64> = z.iter().cycle().take(d * n).map(|v| 0.7 * v).collect();
                let s: Vec<f64> = x.iter().map(|v| -v).collect();
                let mut p = PairScratch::new(d, n);
                p.compute(&Rbf::new(0.8).unwrap(), &x, &s, None);
                push(&p.a);
                p.compute(&Imq::new(1.0, -0.5).unwrap(), &x, &s, None);
                push(&p.a);
                push(&p.rep);
            }
            // Logistic likelihood: the fused small-d kernel, the matrix-product path, one point.
            for d in [5, 30] {
                let feats = DMatrix::from_fn(200, d, |i, j| z[(i * d + j) % 1001]);
                let labels: Vec<f64> = (0..200).map(|i| (z[i] > 0.0) as u8 as f64).collect();
                let lr = LogisticRegression::new(Dyn(d), &feats, &labels, 2.0).unwrap();
                let x = DMatrix::from_fn(d, 13, |i, j| 0.3 * z[(7 * i + j) % 1001]);
                let mut g = DMatrix::zeros(d, 13);
                let mut e = vec![0.0; 13];
                let mut work = BatchWorkspace::new();
                lr.energy_grad_columns(x.as_view(), g.as_view_mut(), &mut e, &mut work);
                push(g.as_slice());
                push(&e);
                lr.grad_columns(x.as_view(), g.as_view_mut(), &mut work);
                push(g.as_slice());
                let mut g1 = DVector::zeros(d);
                let e1 = lr.energy_grad(&x.column(0).into_owned(), &mut g1);
                push(g1.as_slice());
                push(&[e1]);
            }
            // The diagonal Gaussian's batched gradient.
            let gauss = Gaussian::diagonal(
                DVector::from_element(7, 0.5),
                DVector::from_fn(7, |i, _| 1.0 + i as f64),
            )
            .unwrap();
            let x = DMatrix::from_fn(7, 9, |i, j| z[i * 9 + j]);
            let mut g = DMatrix::zeros(7, 9);
            gauss.grad_columns(x.as_view(), g.as_view_mut(), &mut BatchWorkspace::new());
            push(g.as_slice());
            // Mixture scores (small and wide dimension paths).
            for d in [2, 40] {
                let comps = (0..4)
                    .map(|k| {
                        Gaussian::isotropic(DVector::from_fn(d, |i, _| z[k * 50 + i]), 0.3).unwrap()
                    })
                    .collect();
                let mix = GaussianMixture::new(&[0.1, 0.2, 0.3, 0.4], comps).unwrap();
                let score = MixtureScore::new(&mix);
                let xs: Vec<DVector<f64>> = (0..17)
                    .map(|j| DVector::from_fn(d, |i, _| z[(j * d + i) % 1001]))
                    .collect();
                let mut out = vec![DVector::zeros(d); 17];
                score.score_batch(0.4, &xs, &mut out);
                for o in &out {
                    push(o.as_slice());
                }
            }
            OFF.store(false, Ordering::Relaxed);
            bits
        };
        let (plain, dispatched) = (run(true), run(false));
        assert_eq!(plain.len(), dispatched.len());
        let differ = plain
            .iter()
            .zip(&dispatched)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(differ, 0, "{differ} of {} values differ", plain.len());
    }
}
