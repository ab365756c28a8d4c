//! Distance kernels.
//!
//! Each kernel keeps [`LANES`] explicit accumulators and reduces them in a fixed
//! pairwise order. LLVM never reorders float additions on its own, so this order is the
//! order in every build: x86-64 (SSE/AVX2), `wasm32` with `simd128`, and the scalar
//! fallback all produce bit-identical sums, and the same query ranks the same way in the
//! browser, the edge worker and the host. The fixed-width inner loop is what lets LLVM
//! vectorize it anyway. No fused multiply-add is used (it rounds differently).

/// Number of independent accumulators (a multiple of every SIMD width we target).
pub const LANES: usize = 16;

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

/// Inner product of two equally long slices.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    for i in 0..ra.len().min(rb.len()) {
        acc[i] += ra[i] * rb[i];
    }
    reduce(acc)
}

/// Squared Euclidean distance of two equally long slices.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    for i in 0..ra.len().min(rb.len()) {
        let d = ra[i] - rb[i];
        acc[i] += d * d;
    }
    reduce(acc)
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
