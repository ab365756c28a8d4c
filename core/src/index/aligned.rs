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
//! The wire format is that of a `Vec` of the items (a length, then each item), so
//! snapshots written before this type decode unchanged.

use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

use bytemuck::{Pod, Zeroable};
use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};

/// A 64-byte line of items.
pub trait Line: Pod + PartialEq + fmt::Debug {
    /// The item type.
    type Item: Pod + PartialEq + fmt::Debug;
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

impl<L: Line> Serialize for Aligned<L>
where
    L::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.as_slice())
    }
}

impl<'de, L: Line> Deserialize<'de> for Aligned<L>
where
    L::Item: Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Items<L>(PhantomData<L>);

        impl<'de, L: Line> Visitor<'de> for Items<L>
        where
            L::Item: Deserialize<'de>,
        {
            type Value = Aligned<L>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Aligned::<L>::default();
                // Outside bytes: trust the announced length only up to 64 MiB, as serde
                // does for a `Vec`, and grow past it as items really arrive.
                let cap = (64 << 20) / size_of::<L::Item>();
                out.reserve(seq.size_hint().unwrap_or(0).min(cap));
                let mut line = L::zeroed();
                let mut filled = 0;
                while let Some(item) = seq.next_element::<L::Item>()? {
                    bytemuck::cast_slice_mut::<L, L::Item>(core::slice::from_mut(&mut line))
                        [filled] = item;
                    filled += 1;
                    if filled == Aligned::<L>::PER_LINE {
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

        deserializer.deserialize_seq(Items(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Same wire bytes as a `Vec` of the items, both ways, and the items start a line.
        #[test]
        fn same_bytes_as_a_vec(items in proptest::collection::vec(any::<f32>(), 0..200),
                               bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut floats = AlignedF32::default();
            floats.extend_from_slice(&items);
            let wire = postcard::to_allocvec(&floats).expect("encode");
            prop_assert_eq!(&wire, &postcard::to_allocvec(&items).expect("encode"));
            let back: AlignedF32 = postcard::from_bytes(&wire).expect("decode");
            prop_assert_eq!(
                back.as_slice().iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                items.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
            prop_assert_eq!(back.as_slice().as_ptr() as usize % 64, 0);

            let mut codes = AlignedU8::default();
            for &b in &bytes {
                codes.push(b);
            }
            let wire = postcard::to_allocvec(&codes).expect("encode");
            prop_assert_eq!(&wire, &postcard::to_allocvec(&bytes).expect("encode"));
            let back: AlignedU8 = postcard::from_bytes(&wire).expect("decode");
            prop_assert_eq!(back.as_slice(), &bytes[..]);
            prop_assert!(back == codes);
        }
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
