//! Explicit SIMD versions of the kernels: the engine's only `unsafe` code.
//!
//! Why: the portable loops of the parent module are vectorized by LLVM only at
//! `opt-level = 3` and only to the baseline ISA (SSE2 on x86-64). Written with
//! intrinsics, the wasm `simd128` kernel stays vectorized in the size-optimized npm
//! build, and natively AVX-512/AVX2 are used when the CPU has them.
//!
//! Each kernel does, lane by lane, exactly the additions of the portable definition
//! (lane `i` of the accumulator registers is accumulator `i`; no FMA), then hands the
//! 16 lanes to the shared tail and reduction, so every path returns the same bits.
//!
//! The `unsafe` here is of two kinds only, each with its SAFETY comment: unaligned
//! loads from a full 16-float block of a slice (in bounds by construction) and calls of
//! `#[target_feature]` functions after the CPU reported the feature at run time
//! (`std::is_x86_feature_detected!`, so native detection needs the crate's `std`
//! feature, which every native user enables; without it the portable loop runs).
//! Functions return `None` where no explicit version applies.
#![allow(unsafe_code)]

pub use imp::{dot, dot_u8_i16, l2_squared};

/// Asks the CPU to start loading every cache line of the `bytes` bytes at `start` (see
/// [`super::prefetch`]). On x86-64 a `prefetcht0` per 64 bytes: it never faults and
/// nothing waits for it, so a whole batch of vectors is requested at once. Returns
/// `false` where there is no such instruction.
#[inline]
pub fn prefetch(start: *const u8, bytes: usize) -> bool {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        for line in 0..bytes.div_ceil(64) {
            // SAFETY: a prefetch never faults and reads nothing architecturally, whatever
            // the address; the callers pass the start and length of a slice anyway. SSE
            // is enabled at compile time (the x86-64 baseline).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(line * 64).cast::<i8>()) };
        }
        true
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
    {
        let _ = (start, bytes);
        false
    }
}
#[cfg(test)]
pub use imp::{dot_at, l2_squared_at, levels};

#[cfg(all(target_arch = "x86_64", feature = "std"))]
mod imp {
    extern crate std;

    use super::super::{LANES, finish_dot, finish_l2, split};
    use core::arch::x86_64::*;
    use core::sync::atomic::{AtomicU8, Ordering};

    const UNKNOWN: u8 = 0;
    const BASELINE: u8 = 1;
    const AVX2: u8 = 2;
    const AVX512: u8 = 3;

    /// The detected level, [`UNKNOWN`] until the first call.
    static LEVEL: AtomicU8 = AtomicU8::new(UNKNOWN);

    #[inline]
    fn level() -> u8 {
        match LEVEL.load(Ordering::Relaxed) {
            UNKNOWN => {
                let level = if std::is_x86_feature_detected!("avx512f") {
                    AVX512
                } else if std::is_x86_feature_detected!("avx2") {
                    AVX2
                } else {
                    BASELINE
                };
                LEVEL.store(level, Ordering::Relaxed);
                level
            }
            level => level,
        }
    }

    /// Inner product with the best instructions of this CPU.
    #[inline]
    pub fn dot(a: &[f32], b: &[f32]) -> Option<f32> {
        dot_at(level(), a, b)
    }

    /// Squared distance with the best instructions of this CPU.
    #[inline]
    pub fn l2_squared(a: &[f32], b: &[f32]) -> Option<f32> {
        l2_squared_at(level(), a, b)
    }

    /// `Σ codes[i] · weights[i]` with AVX2 when the CPU has it (AVX-512 implies it).
    #[inline]
    pub fn dot_u8_i16(codes: &[u8], weights: &[i16]) -> Option<i32> {
        if level() >= AVX2 {
            // SAFETY: `level` says the CPU reported AVX2 (AVX512 is only chosen on CPUs
            // that report AVX-512F, which all have AVX2).
            Some(unsafe { dot_u8_i16_avx2(codes, weights) })
        } else {
            None
        }
    }

    #[target_feature(enable = "avx2")]
    fn dot_u8_i16_avx2(codes: &[u8], weights: &[i16]) -> i32 {
        let (mut lo, mut hi) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        let (cc, cw) = (codes.chunks_exact(32), weights.chunks_exact(32));
        let (rc, rw) = (cc.remainder(), cw.remainder());
        for (c, w) in cc.zip(cw) {
            // SAFETY: `c` holds 32 bytes (two 16-byte loads at 0 and 16) and `w` 32
            // `i16`s (two 32-byte loads at 0 and 16); unaligned loads.
            let (c0, c1, w0, w1) = unsafe {
                (
                    _mm_loadu_si128(c.as_ptr().cast()),
                    _mm_loadu_si128(c.as_ptr().add(16).cast()),
                    _mm256_loadu_si256(w.as_ptr().cast()),
                    _mm256_loadu_si256(w.as_ptr().add(16).cast()),
                )
            };
            // Codes widen to 16 bits (0..=255), pairs of products add into 32 bits.
            lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_cvtepu8_epi16(c0), w0));
            hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_cvtepu8_epi16(c1), w1));
        }
        let mut lanes = [0i32; 8];
        // SAFETY: `lanes` has room for the 8 `i32`s stored.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), _mm256_add_epi32(lo, hi)) };
        let tail = super::super::dot_u8_i16_portable(rc, rw);
        lanes.iter().fold(tail, |acc, &x| acc.wrapping_add(x))
    }

    /// The levels this CPU supports (for the tests).
    #[cfg(test)]
    pub fn levels() -> std::vec::Vec<u8> {
        let mut levels = std::vec::Vec::new();
        if std::is_x86_feature_detected!("avx2") {
            levels.push(AVX2);
        }
        if std::is_x86_feature_detected!("avx512f") {
            levels.push(AVX512);
        }
        levels
    }

    /// Inner product at `level`, which must be this CPU's or one of [`levels`].
    #[inline]
    pub fn dot_at(level: u8, a: &[f32], b: &[f32]) -> Option<f32> {
        match level {
            // SAFETY: `level` says the CPU reported AVX-512F (`level`, `levels`).
            AVX512 => Some(unsafe { dot_avx512(a, b) }),
            // SAFETY: `level` says the CPU reported AVX2.
            AVX2 => Some(unsafe { dot_avx2(a, b) }),
            _ => None,
        }
    }

    /// Squared distance at `level` (see [`dot_at`]).
    #[inline]
    pub fn l2_squared_at(level: u8, a: &[f32], b: &[f32]) -> Option<f32> {
        match level {
            // SAFETY: `level` says the CPU reported AVX-512F.
            AVX512 => Some(unsafe { l2_avx512(a, b) }),
            // SAFETY: `level` says the CPU reported AVX2.
            AVX2 => Some(unsafe { l2_avx2(a, b) }),
            _ => None,
        }
    }

    /// The 16 lanes of `v`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn lanes512(v: __m512) -> [f32; LANES] {
        let mut out = [0.0f32; LANES];
        // SAFETY: `out` has room for the 16 floats stored.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), v) };
        out
    }

    /// Lanes 0..8 from `lo`, 8..16 from `hi`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn lanes256(lo: __m256, hi: __m256) -> [f32; LANES] {
        let mut out = [0.0f32; LANES];
        // SAFETY: `out` has room for the 2 × 8 floats stored.
        unsafe {
            _mm256_storeu_ps(out.as_mut_ptr(), lo);
            _mm256_storeu_ps(out.as_mut_ptr().add(8), hi);
        }
        out
    }

    #[target_feature(enable = "avx512f")]
    fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = _mm512_setzero_ps();
        for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
            // SAFETY: `x` and `y` hold 16 floats each.
            let (x, y) = unsafe { (_mm512_loadu_ps(x.as_ptr()), _mm512_loadu_ps(y.as_ptr())) };
            acc = _mm512_add_ps(acc, _mm512_mul_ps(x, y));
        }
        let (_, ra, rb) = split(a, b);
        finish_dot(lanes512(acc), ra, rb)
    }

    #[target_feature(enable = "avx512f")]
    fn l2_avx512(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = _mm512_setzero_ps();
        for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
            // SAFETY: `x` and `y` hold 16 floats each.
            let (x, y) = unsafe { (_mm512_loadu_ps(x.as_ptr()), _mm512_loadu_ps(y.as_ptr())) };
            let d = _mm512_sub_ps(x, y);
            acc = _mm512_add_ps(acc, _mm512_mul_ps(d, d));
        }
        let (_, ra, rb) = split(a, b);
        finish_l2(lanes512(acc), ra, rb)
    }

    #[target_feature(enable = "avx2")]
    fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
            // SAFETY: `x` and `y` hold 16 floats each: offsets 0 and 8 load 8 each.
            let (x0, x1, y0, y1) = unsafe {
                (
                    _mm256_loadu_ps(x.as_ptr()),
                    _mm256_loadu_ps(x.as_ptr().add(8)),
                    _mm256_loadu_ps(y.as_ptr()),
                    _mm256_loadu_ps(y.as_ptr().add(8)),
                )
            };
            lo = _mm256_add_ps(lo, _mm256_mul_ps(x0, y0));
            hi = _mm256_add_ps(hi, _mm256_mul_ps(x1, y1));
        }
        let (_, ra, rb) = split(a, b);
        finish_dot(lanes256(lo, hi), ra, rb)
    }

    #[target_feature(enable = "avx2")]
    fn l2_avx2(a: &[f32], b: &[f32]) -> f32 {
        let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
            // SAFETY: `x` and `y` hold 16 floats each: offsets 0 and 8 load 8 each.
            let (x0, x1, y0, y1) = unsafe {
                (
                    _mm256_loadu_ps(x.as_ptr()),
                    _mm256_loadu_ps(x.as_ptr().add(8)),
                    _mm256_loadu_ps(y.as_ptr()),
                    _mm256_loadu_ps(y.as_ptr().add(8)),
                )
            };
            let (d0, d1) = (_mm256_sub_ps(x0, y0), _mm256_sub_ps(x1, y1));
            lo = _mm256_add_ps(lo, _mm256_mul_ps(d0, d0));
            hi = _mm256_add_ps(hi, _mm256_mul_ps(d1, d1));
        }
        let (_, ra, rb) = split(a, b);
        finish_l2(lanes256(lo, hi), ra, rb)
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use super::super::{LANES, finish_dot, finish_l2, split};
    use core::arch::wasm32::*;

    /// Four 4-lane registers: accumulators 0..4, 4..8, 8..12, 12..16.
    type Acc = [v128; 4];

    /// The four registers of the 16-float block `x` (which must hold 16 floats).
    #[inline(always)]
    fn load(x: &[f32]) -> Acc {
        debug_assert_eq!(x.len(), LANES);
        let p = x.as_ptr();
        // SAFETY: `x` holds 16 floats, so offsets 0, 4, 8 and 12 each start 4 in-bounds
        // floats; wasm loads need no alignment.
        unsafe {
            [
                v128_load(p.cast::<v128>()),
                v128_load(p.add(4).cast::<v128>()),
                v128_load(p.add(8).cast::<v128>()),
                v128_load(p.add(12).cast::<v128>()),
            ]
        }
    }

    #[inline(always)]
    fn lanes(acc: Acc) -> [f32; LANES] {
        let mut out = [0.0f32; LANES];
        for (chunk, v) in out.chunks_exact_mut(4).zip(acc) {
            chunk[0] = f32x4_extract_lane::<0>(v);
            chunk[1] = f32x4_extract_lane::<1>(v);
            chunk[2] = f32x4_extract_lane::<2>(v);
            chunk[3] = f32x4_extract_lane::<3>(v);
        }
        out
    }

    /// Inner product in `simd128`.
    #[inline]
    pub fn dot(a: &[f32], b: &[f32]) -> Option<f32> {
        let z = f32x4_splat(0.0);
        let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
        for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
            let ([x0, x1, x2, x3], [y0, y1, y2, y3]) = (load(x), load(y));
            a0 = f32x4_add(a0, f32x4_mul(x0, y0));
            a1 = f32x4_add(a1, f32x4_mul(x1, y1));
            a2 = f32x4_add(a2, f32x4_mul(x2, y2));
            a3 = f32x4_add(a3, f32x4_mul(x3, y3));
        }
        let (_, ra, rb) = split(a, b);
        Some(finish_dot(lanes([a0, a1, a2, a3]), ra, rb))
    }

    /// Squared distance in `simd128`.
    #[inline]
    pub fn l2_squared(a: &[f32], b: &[f32]) -> Option<f32> {
        let z = f32x4_splat(0.0);
        let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
        for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
            let ([x0, x1, x2, x3], [y0, y1, y2, y3]) = (load(x), load(y));
            let (d0, d1, d2, d3) = (
                f32x4_sub(x0, y0),
                f32x4_sub(x1, y1),
                f32x4_sub(x2, y2),
                f32x4_sub(x3, y3),
            );
            a0 = f32x4_add(a0, f32x4_mul(d0, d0));
            a1 = f32x4_add(a1, f32x4_mul(d1, d1));
            a2 = f32x4_add(a2, f32x4_mul(d2, d2));
            a3 = f32x4_add(a3, f32x4_mul(d3, d3));
        }
        let (_, ra, rb) = split(a, b);
        Some(finish_l2(lanes([a0, a1, a2, a3]), ra, rb))
    }

    /// `Σ codes[i] · weights[i]` in `simd128`.
    #[inline]
    pub fn dot_u8_i16(codes: &[u8], weights: &[i16]) -> Option<i32> {
        let mut acc = i32x4_splat(0);
        let (cc, cw) = (codes.chunks_exact(16), weights.chunks_exact(16));
        let (rc, rw) = (cc.remainder(), cw.remainder());
        for (c, w) in cc.zip(cw) {
            // SAFETY: `c` holds 16 bytes and `w` 16 `i16`s (loads at 0 and 8); wasm
            // loads need no alignment.
            let (c, w0, w1) = unsafe {
                (
                    v128_load(c.as_ptr().cast::<v128>()),
                    v128_load(w.as_ptr().cast::<v128>()),
                    v128_load(w.as_ptr().add(8).cast::<v128>()),
                )
            };
            let lo = i32x4_dot_i16x8(u16x8_extend_low_u8x16(c), w0);
            let hi = i32x4_dot_i16x8(u16x8_extend_high_u8x16(c), w1);
            acc = i32x4_add(acc, i32x4_add(lo, hi));
        }
        let tail = super::super::dot_u8_i16_portable(rc, rw);
        Some(
            tail.wrapping_add(i32x4_extract_lane::<0>(acc))
                .wrapping_add(i32x4_extract_lane::<1>(acc))
                .wrapping_add(i32x4_extract_lane::<2>(acc))
                .wrapping_add(i32x4_extract_lane::<3>(acc)),
        )
    }

    #[cfg(test)]
    pub fn levels() -> alloc::vec::Vec<u8> {
        alloc::vec![0]
    }

    #[cfg(test)]
    pub fn dot_at(_: u8, a: &[f32], b: &[f32]) -> Option<f32> {
        dot(a, b)
    }

    #[cfg(test)]
    pub fn l2_squared_at(_: u8, a: &[f32], b: &[f32]) -> Option<f32> {
        l2_squared(a, b)
    }
}

#[cfg(not(any(
    all(target_arch = "x86_64", feature = "std"),
    all(target_arch = "wasm32", target_feature = "simd128")
)))]
mod imp {
    /// No explicit version: the portable loop runs.
    #[inline(always)]
    pub fn dot(_: &[f32], _: &[f32]) -> Option<f32> {
        None
    }

    /// No explicit version: the portable loop runs.
    #[inline(always)]
    pub fn l2_squared(_: &[f32], _: &[f32]) -> Option<f32> {
        None
    }

    /// No explicit version: the portable loop runs.
    #[inline(always)]
    pub fn dot_u8_i16(_: &[u8], _: &[i16]) -> Option<i32> {
        None
    }

    #[cfg(test)]
    pub fn levels() -> alloc::vec::Vec<u8> {
        alloc::vec::Vec::new()
    }

    #[cfg(test)]
    pub fn dot_at(_: u8, _: &[f32], _: &[f32]) -> Option<f32> {
        None
    }

    #[cfg(test)]
    pub fn l2_squared_at(_: u8, _: &[f32], _: &[f32]) -> Option<f32> {
        None
    }
}
