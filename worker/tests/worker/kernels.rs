//! The CPU kernels of the patched candle-core (`vendor/candle-core/SENTINEL.md`): the SIMD dot
//! products against candle's scalar reference, the prompt matmul against the row-by-row one, and
//! both against f32 arithmetic on the dequantized weights.

use candle_core::quantized::k_quants::{matmul, BlockQ4_0, BlockQ4_1, BlockQ8_0, GgmlType};

/// A small deterministic generator (xorshift64*), so a failure reproduces.
struct Numbers(u64);

impl Numbers {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
        bits as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    fn values(&mut self, len: usize, scale: f32, offset: f32) -> Vec<f32> {
        (0..len).map(|_| self.next() * scale + offset).collect()
    }
}

fn quantize<T: GgmlType>(values: &[f32]) -> Vec<T> {
    let mut blocks = vec![T::zeros(); values.len() / T::BLCK_SIZE];
    T::from_float(values, &mut blocks);
    blocks
}

/// Σ|x·y|: what the rounding error of a float sum of the products scales with.
fn magnitude(xs: &[f32], ys: &[f32]) -> f32 {
    xs.iter().zip(ys).map(|(x, y)| (x * y).abs()).sum()
}

/// `vec_dot` (AVX2 where built for it) against `vec_dot_unopt` (scalar) on the same blocks, for
/// rows of several lengths, with offsets that make Q4_1's `m` and Q8_1's `s` terms matter.
fn simd_matches_scalar<T: GgmlType>() {
    let mut numbers = Numbers(0x05e1_71e1);
    for k in [32, 64, 576, 1536] {
        for (scale, offset) in [(1.0, 0.0), (0.05, 0.3), (3.0, -2.0)] {
            let weights_f32 = numbers.values(k, scale, offset);
            let activations_f32 = numbers.values(k, 1.0, 0.5);
            let weights = quantize::<T>(&weights_f32);
            let activations = quantize::<T::VecDotType>(&activations_f32);
            let simd = T::vec_dot(k, &weights, &activations);
            let scalar = T::vec_dot_unopt(k, &weights, &activations);
            // The two sum the same integer products in a different order: they agree to within
            // float rounding, far below the quantization error.
            let tolerance = 1e-5 * magnitude(&weights_f32, &activations_f32) + 1e-6;
            assert!(
                (simd - scalar).abs() <= tolerance,
                "{:?} k={k} scale={scale} offset={offset}: simd {simd} vs scalar {scalar}",
                T::DTYPE
            );
        }
    }
}

#[test]
fn q4_1_dot_product_matches_the_scalar_reference() {
    simd_matches_scalar::<BlockQ4_1>();
}

#[test]
fn q4_0_dot_product_matches_the_scalar_reference() {
    simd_matches_scalar::<BlockQ4_0>();
}

#[test]
fn q8_0_dot_product_matches_the_scalar_reference() {
    simd_matches_scalar::<BlockQ8_0>();
}

/// A prompt's matmul (several rows at once, one loop over the weight rows) gives exactly what
/// one matmul per row gives, and both agree with f32 arithmetic on the dequantized weights to
/// within the quantization of the activations.
fn prompt_matmul_matches_rows<T: GgmlType>() {
    let (m, k, n) = (7, 576, 300);
    let mut numbers = Numbers(42);
    let weights_f32 = numbers.values(n * k, 0.1, 0.02);
    let weights = quantize::<T>(&weights_f32);
    let mut dequantized = vec![0f32; n * k];
    T::to_float(&weights, &mut dequantized);
    let lhs = numbers.values(m * k, 1.0, 0.0);

    let mut together = vec![0f32; m * n];
    matmul((m, k, n), &lhs, &weights, &mut together).expect("the matmul runs");
    for row in 0..m {
        let mut alone = vec![0f32; n];
        matmul(
            (1, k, n),
            &lhs[row * k..(row + 1) * k],
            &weights,
            &mut alone,
        )
        .expect("the matmul runs");
        assert_eq!(
            &together[row * n..(row + 1) * n],
            alone.as_slice(),
            "{:?}: row {row} differs between the prompt matmul and a single-row matmul",
            T::DTYPE
        );
        let lhs_row = &lhs[row * k..(row + 1) * k];
        // The activations are quantized to 8 bits per block of 32: each is off by at most half a
        // step, 1/254 of the row's largest magnitude.
        let step = lhs_row.iter().fold(0f32, |max, x| max.max(x.abs())) / 254.0;
        for col in 0..n {
            let weights_row = &dequantized[col * k..(col + 1) * k];
            let exact: f32 = lhs_row.iter().zip(weights_row).map(|(a, b)| a * b).sum();
            let bound = step * weights_row.iter().map(|w| w.abs()).sum::<f32>() + 1e-4;
            assert!(
                (alone[col] - exact).abs() <= bound,
                "{:?}: ({row}, {col}) is {} where f32 gives {exact} (bound {bound})",
                T::DTYPE,
                alone[col]
            );
        }
    }
}

#[test]
fn q4_1_prompt_matmul_matches_row_by_row() {
    prompt_matmul_matches_rows::<BlockQ4_1>();
}

#[test]
fn q8_0_prompt_matmul_matches_row_by_row() {
    prompt_matmul_matches_rows::<BlockQ8_0>();
}

/// Several threads run matmuls at once: one holds the spin pool, the others fall back to rayon
/// while it is busy, and every result is the one a single thread computes.
#[test]
fn matmuls_from_several_threads_agree() {
    let (k, n) = (576, 1024);
    let mut numbers = Numbers(7);
    let weights = quantize::<BlockQ4_1>(&numbers.values(n * k, 0.1, 0.0));
    let lhs = numbers.values(k, 1.0, 0.0);
    let mut want = vec![0f32; n];
    matmul((1, k, n), &lhs, &weights, &mut want).expect("the matmul runs");
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                scope.spawn(|| {
                    let mut got = vec![0f32; n];
                    for _ in 0..50 {
                        matmul((1, k, n), &lhs, &weights, &mut got).expect("the matmul runs");
                    }
                    got
                })
            })
            .collect();
        for handle in handles {
            assert_eq!(handle.join().expect("the thread finishes"), want);
        }
    });
}
