//! Row storage that starts on a cache line.
//!
//! Why: the allocator hands out large blocks 16 bytes past a 64-byte boundary, so in a
//! plain `Vec<f32>` of 384-d rows every row straddled 25 cache lines instead of 24 and
//! every 64-byte AVX-512 load was split across two lines (and every 384-byte SQ8 code
//! row took 7 lines instead of 6). A graph search waits on exactly those loads. Here the
//! items live in a `Vec` of 64-byte-aligned lines, viewed as a flat slice through
//! `bytemuck` (no `unsafe` in this crate), so a row whose byte size is a multiple of 64
//! starts and ends on line boundaries.
//!
//! On the wire (snapshot v3) the items are one byte string of their little-endian
//! bytes, decoded by one pass into lines of the final count ([`crate::codec::bulk`]);
//! snapshots v1 and v2 stored a `Vec` of the items (a length, then each item), which
//! still decodes.

use alloc::vec::Vec;
use core::fmt;

use bytemuck::{Pod, Zeroable};
use serde::de::{Deserialize, Deserializer, SeqAccess};
use serde::ser::{Serialize, Serializer};

use crate::codec::bulk::{self, Bulk, Le};

/// A 64-byte line of items.
pub trait Line: Pod + PartialEq + fmt::Debug {
    /// The item type.
    type Item: Le;
}

/// 16 floats.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C, align(64))]
pub struct F32Line([f32; 16]);

impl Line for F32Line {
    type Item = f32;
}

/// 64 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C, align(64))]
pub struct U8Line([u8; 64]);

impl Line for U8Line {
    type Item = u8;
}

/// A growable sequence of `L::Item` whose first item starts a cache line. Items past
/// `len` in the last line are always zero, so equality of the lines is equality of the
/// items.
#[derive(Clone, PartialEq)]
pub struct Aligned<L: Line> {
    lines: Vec<L>,
    len: usize,
}

/// Floats, aligned.
pub type AlignedF32 = Aligned<F32Line>;
/// Bytes, aligned.
pub type AlignedU8 = Aligned<U8Line>;

impl<L: Line> Default for Aligned<L> {
    fn default() -> Self {
        Aligned {
            lines: Vec::new(),
            len: 0,
        }
    }
}

impl<L: Line> fmt::Debug for Aligned<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<L: Line> Aligned<L> {
    /// Items per line.
    const PER_LINE: usize = size_of::<L>() / size_of::<L::Item>();

    /// The items.
    #[inline]
    pub fn as_slice(&self) -> &[L::Item] {
        &bytemuck::cast_slice::<L, L::Item>(&self.lines)[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes room for `additional` more items.
    pub fn reserve(&mut self, additional: usize) {
        let lines = (self.len.saturating_add(additional)).div_ceil(Self::PER_LINE);
        self.lines.reserve(lines.saturating_sub(self.lines.len()));
    }

    /// Appends `items`.
    pub fn extend_from_slice(&mut self, items: &[L::Item]) {
        let end = self.len + items.len();
        let lines = end.div_ceil(Self::PER_LINE);
        if lines > self.lines.len() {
            self.lines.resize(lines, L::zeroed());
        }
        bytemuck::cast_slice_mut::<L, L::Item>(&mut self.lines)[self.len..end]
            .copy_from_slice(items);
        self.len = end;
    }

    /// Appends one item.
    #[inline]
    pub fn push(&mut self, item: L::Item) {
        self.extend_from_slice(core::slice::from_ref(&item));
    }
}

impl<L: Line> Serialize for Aligned<L> {
    /// Snapshot v3: one byte string of the items' little-endian bytes
    /// ([`crate::codec::bulk`]).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        bulk::serialize(self.as_slice(), serializer)
    }
}

impl<'de, L: Line> Deserialize<'de> for Aligned<L> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        bulk::decode(deserializer)
    }
}

impl<L: Line> Bulk for Aligned<L> {
    type Item = L::Item;

    /// One pass: each line is read from its 64 bytes and written once, into a buffer of
    /// the final size.
    fn from_le_bytes(bytes: &[u8]) -> Self {
        let len = bytes.len() / size_of::<L::Item>();
        let whole = bytes.chunks_exact(size_of::<L>());
        let tail = whole.remainder();
        let mut lines: Vec<L> = Vec::with_capacity(len.div_ceil(Self::PER_LINE));
        lines.extend(whole.map(bytemuck::pod_read_unaligned::<L>));
        if !tail.is_empty() {
            let mut line = L::zeroed();
            bytemuck::bytes_of_mut(&mut line)[..tail.len()].copy_from_slice(tail);
            lines.push(line);
        }
        if cfg!(target_endian = "big") {
            for item in bytemuck::cast_slice_mut::<L, L::Item>(&mut lines) {
                *item = item.swap_le();
            }
        }
        Aligned { lines, len }
    }

    /// Snapshots v1 and v2 (and JSON): a sequence of items, one at a time.
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut out = Aligned::<L>::default();
        // Outside bytes: trust the announced length only up to 1 GiB (postcard gives no
        // hint at all when the announced count exceeds the bytes left, so the memory
        // reserved stays within the input's size), and grow past it as items really
        // arrive. Reserving it all up front spares the copies of a growing buffer
        // (which cost a v2 restore of 100k × 384 vectors a fifth of its time).
        let cap = (1 << 30) / size_of::<L::Item>();
        out.reserve(seq.size_hint().unwrap_or(0).min(cap));
        let mut line = L::zeroed();
        let mut filled = 0;
        while let Some(item) = seq.next_element::<L::Item>()? {
            bytemuck::cast_slice_mut::<L, L::Item>(core::slice::from_mut(&mut line))[filled] = item;
            filled += 1;
            if filled == Self::PER_LINE {
                out.lines.push(line);
                out.len += filled;
                line = L::zeroed();
                filled = 0;
            }
        }
        if filled > 0 {
            out.lines.push(line);
            out.len += filled;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bits(items: &[f32]) -> Vec<u32> {
        items.iter().map(|x| x.to_bits()).collect()
    }

    proptest! {
        /// v3 wire: one byte string of the little-endian items, both ways; v1/v2 wire
        /// (a `Vec` of the items) still decodes; the items start a line.
        #[test]
        fn bulk_bytes_and_legacy_sequences(items in proptest::collection::vec(any::<f32>(), 0..200),
                                           bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut floats = AlignedF32::default();
            floats.extend_from_slice(&items);
            let wire = postcard::to_allocvec(&floats).expect("encode");
            let le: Vec<u8> = items.iter().flat_map(|x| x.to_le_bytes()).collect();
            // postcard writes a `Vec<u8>` as a length and the raw bytes: a byte string.
            prop_assert_eq!(&wire, &postcard::to_allocvec(&le).expect("encode"));
            let back: AlignedF32 = postcard::from_bytes(&wire).expect("decode");
            prop_assert_eq!(bits(back.as_slice()), bits(&items));
            prop_assert_eq!(back.as_slice().as_ptr() as usize % 64, 0);
            prop_assert!(back == floats);

            let old = postcard::to_allocvec(&items).expect("encode");
            let back: AlignedF32 = crate::codec::legacy::from_bytes("test", &old).expect("decode");
            prop_assert_eq!(bits(back.as_slice()), bits(&items));
            prop_assert!(back == floats);

            let mut codes = AlignedU8::default();
            for &b in &bytes {
                codes.push(b);
            }
            let wire = postcard::to_allocvec(&codes).expect("encode");
            prop_assert_eq!(&wire, &postcard::to_allocvec(&bytes).expect("encode"));
            let back: AlignedU8 = postcard::from_bytes(&wire).expect("decode");
            prop_assert_eq!(back.as_slice(), &bytes[..]);
            prop_assert!(back == codes);
            let back: AlignedU8 = crate::codec::legacy::from_bytes("test", &wire).expect("decode");
            prop_assert!(back == codes);
        }

        /// A byte string that is not a whole number of floats, or cut short, is an
        /// error, never a panic.
        #[test]
        fn odd_and_truncated_byte_strings_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                                                      cut in 0usize..64) {
            let wire = postcard::to_allocvec(&bytes).expect("encode");
            let decoded = postcard::from_bytes::<AlignedF32>(&wire);
            prop_assert_eq!(decoded.is_ok(), bytes.len() % 4 == 0);
            if cut > 0 && cut <= wire.len() {
                prop_assert!(postcard::from_bytes::<AlignedF32>(&wire[..wire.len() - cut]).is_err());
            }
        }
    }

    #[test]
    fn json_keeps_a_sequence() {
        let mut floats = AlignedF32::default();
        floats.extend_from_slice(&[1.5, -2.0, 0.25]);
        let json = serde_json::to_string(&floats).expect("encode");
        assert_eq!(json, "[1.5,-2.0,0.25]");
        let back: AlignedF32 = serde_json::from_str(&json).expect("decode");
        assert!(back == floats);
    }

    #[test]
    fn rows_of_a_line_multiple_start_lines() {
        let mut floats = AlignedF32::default();
        for row in 0..10 {
            floats.extend_from_slice(&[row as f32; 48]);
        }
        for row in 0..10 {
            assert_eq!(floats.as_slice()[row * 48..].as_ptr() as usize % 64, 0);
        }
        assert_eq!(floats.len(), 480);
    }
}
