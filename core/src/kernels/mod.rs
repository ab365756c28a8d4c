//! Distance kernels.
//!
//! Each kernel keeps [`LANES`] explicit accumulators and reduces them in a fixed
//! pairwise order. LLVM never reorders float additions on its own, so this order is the
//! order in every build: x86-64 (SSE/AVX2/AVX-512), `wasm32` with `simd128`, and the
//! scalar fallback all produce bit-identical sums, and the same query ranks the same way
//! in the browser, the edge worker and the host. No fused multiply-add is used (it
//! rounds differently).
//!
//! Accumulator `i` adds the products of elements `i`, `i + 16`, `i + 32`, … in that
//! order; the elements after the last full block of 16 go to accumulators `0..rem`;
//! then `acc[i] += acc[i + 8]`, `+ 4`, `+ 2`, `+ 1`. The portable loop below is that
//! definition. The explicit SIMD versions in `simd` (AVX-512 as one 16-lane register,
//! AVX2 as two 8-lane registers, wasm `simd128` as four 4-lane registers) do the very
//! same additions lane by lane and share the tail and the reduction with it, so they
//! are faster without changing a bit: the wasm one stays vectorized when the npm build
//! optimizes for size (auto-vectorization does not), and natively the wider registers
//! leave room for the CPU to overlap the independent distances of a batch. A unit test
//! compares them with the portable loop on random inputs.

mod simd;

/// Number of independent accumulators (a multiple of every SIMD width we target).
pub const LANES: usize = 16;

/// `acc[i] += acc[i + 8]`, then `+ 4`, `+ 2`, `+ 1`: the one reduction order.
#[inline]
fn reduce(acc: [f32; LANES]) -> f32 {
    let mut width = LANES;
    let mut acc = acc;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] += acc[i + width];
        }
    }
    acc[0]
}

/// The elements after the last full block of `LANES` of `a` and `b`, and the number of
/// full blocks both have.
#[inline]
fn split<'a, 'b>(a: &'a [f32], b: &'b [f32]) -> (usize, &'a [f32], &'b [f32]) {
    let (fa, fb) = (a.len() / LANES, b.len() / LANES);
    let ra = a.get(fa * LANES..).unwrap_or(&[]);
    let rb = b.get(fb * LANES..).unwrap_or(&[]);
    (fa.min(fb), ra, rb)
}

/// Adds the products of the tails to the accumulators, then reduces.
#[inline]
fn finish_dot(mut acc: [f32; LANES], ra: &[f32], rb: &[f32]) -> f32 {
    for ((slot, x), y) in acc.iter_mut().zip(ra).zip(rb) {
        *slot += x * y;
    }
    reduce(acc)
}

/// Adds the squared differences of the tails to the accumulators, then reduces.
#[inline]
fn finish_l2(mut acc: [f32; LANES], ra: &[f32], rb: &[f32]) -> f32 {
    for ((slot, x), y) in acc.iter_mut().zip(ra).zip(rb) {
        let d = x - y;
        *slot += d * d;
    }
    reduce(acc)
}

/// Inner product of two equally long slices.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    simd::dot(a, b).unwrap_or_else(|| dot_portable(a, b))
}

/// Squared Euclidean distance of two equally long slices.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    simd::l2_squared(a, b).unwrap_or_else(|| l2_squared_portable(a, b))
}

/// [`dot`] as plain loops over 16 accumulators: the definition of the order, used where
/// no explicit SIMD version applies (LLVM vectorizes it at `opt-level = 3`).
#[inline]
pub fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let (_, ra, rb) = split(a, b);
    finish_dot(acc, ra, rb)
}

/// [`l2_squared`] as plain loops over 16 accumulators (see [`dot_portable`]).
#[inline]
pub fn l2_squared_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let (_, ra, rb) = split(a, b);
    finish_l2(acc, ra, rb)
}

/// Starts loading `data` into the cache ahead of a kernel that reads it, so the loads
/// of a batch of vectors overlap: a prefetch instruction per cache line on x86-64, and
/// elsewhere (wasm has none) a read of one word per cache line. Changes no result.
#[inline]
pub fn prefetch(data: &[f32]) {
    if !simd::prefetch(data.as_ptr().cast(), 4 * data.len()) {
        for &x in data.iter().step_by(LANES) {
            core::hint::black_box(x);
        }
    }
}

/// [`prefetch`] for a row of byte codes (SQ8).
#[inline]
pub fn prefetch_bytes(data: &[u8]) {
    if !simd::prefetch(data.as_ptr(), data.len()) {
        for &x in data.iter().step_by(64) {
            core::hint::black_box(x);
        }
    }
}

/// `Σ codes[i] · weights[i]` in wrapping `i32` arithmetic over equally long slices: the
/// SQ8 scan's kernel ([`crate::index::quant`]). Integer sums do not depend on their
/// order, so every SIMD path gives the same value as this loop by construction; the
/// caller scales the weights so that the sum cannot overflow.
#[inline]
pub fn dot_u8_i16(codes: &[u8], weights: &[i16]) -> i32 {
    debug_assert_eq!(codes.len(), weights.len());
    simd::dot_u8_i16(codes, weights).unwrap_or_else(|| dot_u8_i16_portable(codes, weights))
}

/// [`dot_u8_i16`] as a plain loop.
#[inline]
pub fn dot_u8_i16_portable(codes: &[u8], weights: &[i16]) -> i32 {
    codes.iter().zip(weights).fold(0i32, |acc, (&c, &w)| {
        acc.wrapping_add(i32::from(c) * i32::from(w))
    })
}

/// Euclidean norm.
#[inline]
pub fn norm(a: &[f32]) -> f32 {
    sqrt(dot(a, a))
}

/// Square root without `std`. IEEE 754 requires it to be correctly rounded, and `libm`
/// implements it so, hence the same bits as `sqrtss` on x86-64 and `f32.sqrt` in wasm.
#[inline]
pub fn sqrt(x: f32) -> f32 {
    libm::sqrtf(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// Values with a wide spread of magnitudes and signs, zeros and subnormals included,
    /// so that any change of order would show in the rounding.
    fn value() -> impl Strategy<Value = f32> {
        prop_oneof![
            -1.0e3f32..1.0e3,
            -1.0f32..1.0,
            Just(0.0f32),
            Just(-0.0f32),
            Just(1.0e-40f32),
            (-1.0e30f32..1.0e30),
        ]
    }

    fn pair() -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
        (0usize..1000).prop_flat_map(|n| {
            (
                proptest::collection::vec(value(), n),
                proptest::collection::vec(value(), n),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The dispatched kernels (AVX-512, AVX2 or simd128 where available) give the
        /// bits of the portable definition.
        #[test]
        fn simd_matches_portable((a, b) in pair()) {
            prop_assert_eq!(dot(&a, &b).to_bits(), dot_portable(&a, &b).to_bits());
            prop_assert_eq!(
                l2_squared(&a, &b).to_bits(),
                l2_squared_portable(&a, &b).to_bits()
            );
        }

        /// Every x86-64 level this CPU has gives the same bits, not only the chosen one.
        #[test]
        fn every_level_matches_portable((a, b) in pair()) {
            for level in simd::levels() {
                prop_assert_eq!(
                    simd::dot_at(level, &a, &b).map(f32::to_bits),
                    Some(dot_portable(&a, &b).to_bits())
                );
                prop_assert_eq!(
                    simd::l2_squared_at(level, &a, &b).map(f32::to_bits),
                    Some(l2_squared_portable(&a, &b).to_bits())
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The SIMD integer kernel (AVX2 or simd128) sums exactly what the loop sums.
        #[test]
        fn integer_kernel_matches_portable(
            pairs in proptest::collection::vec((any::<u8>(), any::<i16>()), 0..1000)
        ) {
            let (codes, weights): (Vec<u8>, Vec<i16>) = pairs.into_iter().unzip();
            prop_assert_eq!(
                dot_u8_i16(&codes, &weights),
                dot_u8_i16_portable(&codes, &weights)
            );
        }
    }

    /// A sum whose value depends on the order: the portable loop defines it.
    #[test]
    fn order_is_the_documented_one() {
        let n = 16 * 3 + 5;
        let a: Vec<f32> = (0..n)
            .map(|i| {
                if i % 7 == 0 {
                    1.0e8
                } else {
                    1.0 + i as f32 * 1.0e-3
                }
            })
            .collect();
        let b: Vec<f32> = (0..n)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let mut acc = [0.0f32; LANES];
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            acc[i % LANES] += x * y;
        }
        let mut width = LANES;
        while width > 1 {
            width /= 2;
            for i in 0..width {
                acc[i] += acc[i + width];
            }
        }
        assert_eq!(dot(&a, &b).to_bits(), acc[0].to_bits());
        assert_eq!(dot_portable(&a, &b).to_bits(), acc[0].to_bits());
    }
}
