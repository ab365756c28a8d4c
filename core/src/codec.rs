//! Byte formats. Everything that is stored is framed as
//!
//! ```text
//! magic (4 bytes) | version (u16 LE) | payload | crc32 (u32 LE, over all before it)
//! ```
//!
//! so a torn or corrupted object is detected, and a format this build does not know is
//! refused with a clear error instead of being misread. Messages that only cross the
//! component boundary in memory (commands, queries, outcomes) are bare postcard.
//!
//! | object | v1 | v2 | v3 (current) |
//! |---|---|---|---|
//! | snapshot `ARWS` | postcard library state | adds the library's text settings and BM25 index | the large arrays as byte strings ([`bulk`]) |
//! | WAL segment `ARWL` | postcard `Vec<WalRecord>` | `count: u32`, then per record `len: u32 \| crc32: u32 \| postcard WalRecord`; library configs carry text settings | (still v2) |
//!
//! Snapshot v3 is v2 with every large array of numbers stored as one postcard byte
//! string (a varint byte length, then the items' little-endian bytes) instead of a
//! sequence of items (a varint item count, then each item: fixed 4 bytes for an `f32`,
//! a varint for a `u32`): the vectors and their norms, the SQ8 and binary codes, the
//! HNSW levels and links, and the IVF, LSH and k-d tree arrays (see [`bulk`] for the
//! list). Such an array decodes by one copy into memory of its final size instead of
//! a visitor call per item into a growing buffer, which was most of a restore's time.
//!
//! Every older version keeps decoding (golden files in `core/tests/golden/v{N}/`):
//! v1 libraries get the default text settings and their BM25 index is built from the
//! chunks' text on load; v1 and v2 payloads are read through [`legacy`], which reads
//! every large array as the sequence it was written as. WAL v2 checksums each record, so a damaged segment still yields its intact
//! leading records ([`decode_wal_segment_prefix`]).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::command::{WalRecord, WalRecordV1};
use crate::engine::{LibraryState, LibraryStateV1};
use crate::error::{Error, Result};

/// Magic of a library snapshot object.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"ARWS";
/// Current snapshot format version.
pub const SNAPSHOT_VERSION: u16 = 3;
/// Magic of a WAL segment object.
pub const WAL_MAGIC: [u8; 4] = *b"ARWL";
/// Current WAL segment format version.
pub const WAL_VERSION: u16 = 2;

const HEADER: usize = 6;
const FOOTER: usize = 4;

/// Encodes a value as bare postcard (for messages across the component boundary).
pub fn to_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| Error::Internal(format!("encode: {e}")))
}

/// Decodes bare postcard. Trailing bytes are an error.
pub fn from_bytes<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| Error::Corrupt {
        what,
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(Error::Corrupt {
            what,
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(value)
}

/// CRC-32 (IEEE) of `bytes`: the checksum of every frame and WAL record.
#[cfg(not(feature = "small-crc"))]
fn checksum(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// CRC-32 (IEEE) of `bytes`, the same value as crc32fast's, from a 1 KiB table instead
/// of crc32fast's 16 KiB one: the npm package's `.wasm` is 17 KB smaller gzipped, and
/// checksums run a few times slower (see docs/npm.md).
#[cfg(feature = "small-crc")]
fn checksum(bytes: &[u8]) -> u32 {
    const CRC32: crc::Crc<u32, crc::Table<1>> =
        crc::Crc::<u32, crc::Table<1>>::new(&crc::CRC_32_ISO_HDLC);
    CRC32.checksum(bytes)
}

fn frame(magic: [u8; 4], version: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len() + FOOTER);
    out.extend_from_slice(&magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks magic, checksum and version; returns the version and the payload.
fn unframe<'a>(
    what: &'static str,
    magic: [u8; 4],
    supported: u16,
    bytes: &'a [u8],
) -> Result<(u16, &'a [u8])> {
    let corrupt = |reason: &str| Error::Corrupt {
        what,
        reason: reason.to_string(),
    };
    if bytes.len() < HEADER + FOOTER {
        return Err(corrupt("too short"));
    }
    if bytes[..4] != magic {
        return Err(corrupt("wrong magic bytes"));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version == 0 || version > supported {
        return Err(Error::UnknownVersion {
            what,
            version,
            supported,
        });
    }
    let (body, crc) = bytes.split_at(bytes.len() - FOOTER);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if checksum(body) != stored {
        return Err(corrupt("checksum mismatch"));
    }
    Ok((version, &body[HEADER..]))
}

/// Encodes a library snapshot.
pub(crate) fn encode_snapshot(state: &LibraryState) -> Result<Vec<u8>> {
    Ok(frame(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, &to_bytes(state)?))
}

/// Decodes a library snapshot of any version (structure only; the engine checks
/// invariants).
pub(crate) fn decode_snapshot(bytes: &[u8]) -> Result<LibraryState> {
    match unframe("snapshot", SNAPSHOT_MAGIC, SNAPSHOT_VERSION, bytes)? {
        (1, payload) => Ok(legacy::from_bytes::<LibraryStateV1>("snapshot", payload)?.into()),
        (2, payload) => legacy::from_bytes("snapshot", payload),
        (_, payload) => from_bytes("snapshot", payload),
    }
}

/// Encodes the records of one WAL segment (one group commit) in the current format.
/// Records must be consecutive and of one library.
///
/// # Errors
/// `Internal` if the records are empty, of several libraries, or not consecutive.
pub fn encode_wal_segment(records: &[WalRecord]) -> Result<Vec<u8>> {
    check_segment(records)?;
    let count = u32::try_from(records.len())
        .map_err(|_| Error::Internal("too many records for one WAL segment".to_string()))?;
    let mut payload = Vec::new();
    payload.extend_from_slice(&count.to_le_bytes());
    for record in records {
        let bytes = to_bytes(record)?;
        let len = u32::try_from(bytes.len())
            .map_err(|_| Error::Internal("WAL record over 4 GiB".to_string()))?;
        payload.extend_from_slice(&len.to_le_bytes());
        payload.extend_from_slice(&checksum(&bytes).to_le_bytes());
        payload.extend_from_slice(&bytes);
    }
    Ok(frame(WAL_MAGIC, WAL_VERSION, &payload))
}

/// Decodes one WAL segment of any version; every record must be intact.
///
/// # Errors
/// `Internal` for a corrupt, truncated or unknown-version segment.
pub fn decode_wal_segment(bytes: &[u8]) -> Result<Vec<WalRecord>> {
    match decode_wal_segment_prefix(bytes) {
        (records, None) => Ok(records),
        (_, Some(e)) => Err(e),
    }
}

/// Decodes the intact leading records of a WAL segment: for a damaged (torn,
/// truncated, bit-flipped) v2 segment, the records before the first damaged one, with
/// the error that stopped decoding. Recovery applies those and stops there; it never
/// applies a record whose checksum fails. A v1 segment has one checksum, so it is
/// all or nothing.
pub fn decode_wal_segment_prefix(bytes: &[u8]) -> (Vec<WalRecord>, Option<Error>) {
    let corrupt = |reason: String| Error::Corrupt {
        what: "WAL segment",
        reason,
    };
    if bytes.len() < HEADER + FOOTER || bytes[..4] != WAL_MAGIC {
        // Let `unframe` name the problem.
        return match unframe("WAL segment", WAL_MAGIC, WAL_VERSION, bytes) {
            Err(e) => (Vec::new(), Some(e)),
            Ok(_) => (Vec::new(), Some(corrupt("unreadable header".to_string()))),
        };
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version == 1 {
        let decoded = unframe("WAL segment", WAL_MAGIC, WAL_VERSION, bytes)
            .and_then(|(_, payload)| from_bytes::<Vec<WalRecordV1>>("WAL segment", payload));
        return match decoded {
            Ok(v1) => {
                let records: Vec<WalRecord> = v1.into_iter().map(WalRecord::from).collect();
                match check_segment(&records) {
                    Ok(()) => (records, None),
                    Err(e) => (Vec::new(), Some(corrupt(e.to_string()))),
                }
            }
            Err(e) => (Vec::new(), Some(e)),
        };
    }
    if version == 0 || version > WAL_VERSION {
        return (
            Vec::new(),
            Some(Error::UnknownVersion {
                what: "WAL segment",
                version,
                supported: WAL_VERSION,
            }),
        );
    }
    // v2: walk the records, each checked on its own, then the whole-segment checksum.
    let mut records: Vec<WalRecord> = Vec::new();
    let mut at = HEADER;
    let read_u32 = |at: usize| -> Option<u32> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let Some(count) = read_u32(at) else {
        return (records, Some(corrupt("truncated record count".to_string())));
    };
    at += 4;
    for i in 0..count {
        let (Some(len), Some(crc)) = (read_u32(at), read_u32(at + 4)) else {
            return (
                records,
                Some(corrupt(format!("record {i} of {count}: truncated header"))),
            );
        };
        let start = at + 8;
        let Some(body) = start
            .checked_add(len as usize)
            .and_then(|end| bytes.get(start..end))
        else {
            return (
                records,
                Some(corrupt(format!("record {i} of {count}: truncated"))),
            );
        };
        if checksum(body) != crc {
            return (
                records,
                Some(corrupt(format!("record {i} of {count}: checksum mismatch"))),
            );
        }
        let record: WalRecord = match from_bytes("WAL record", body) {
            Ok(r) => r,
            Err(e) => {
                return (
                    records,
                    Some(corrupt(format!("record {i} of {count}: {e}"))),
                );
            }
        };
        if let Some(first) = records.first()
            && (record.library != first.library
                || Some(record.seq) != first.seq.checked_add(u64::from(i)))
        {
            return (
                records,
                Some(corrupt(format!(
                    "record {i} of {count}: records must be consecutive and of one library"
                ))),
            );
        }
        records.push(record);
        at = start + len as usize;
    }
    if count == 0 {
        return (records, Some(corrupt("empty WAL segment".to_string())));
    }
    let end = bytes.len() - FOOTER;
    if at != end {
        return (
            records,
            Some(corrupt(format!(
                "{} unexpected bytes after the records",
                end.abs_diff(at)
            ))),
        );
    }
    if checksum(&bytes[..end]) != read_u32(end).unwrap_or(0) {
        return (records, Some(corrupt("checksum mismatch".to_string())));
    }
    (records, None)
}

fn check_segment(records: &[WalRecord]) -> Result<()> {
    let Some(first) = records.first() else {
        return Err(Error::Internal("empty WAL segment".to_string()));
    };
    for (i, r) in records.iter().enumerate() {
        if r.library != first.library || Some(r.seq) != first.seq.checked_add(i as u64) {
            return Err(Error::Internal(format!(
                "WAL segment records must be consecutive and of one library (record {i})"
            )));
        }
    }
    Ok(())
}

/// Large arrays of numbers as one byte string (snapshot v3): a varint byte length, then
/// the items' little-endian bytes.
///
/// Such a field decodes in one pass over its bytes into memory of its final size (on a
/// little-endian host the byte-order conversion is the identity and the pass is a
/// copy), instead of a visitor call per item into a buffer that grows by doubling. A
/// byte length that is not a whole number of items is refused. The same field also
/// decodes from a sequence of items, which is what v1 and v2 stored (read through
/// [`legacy`]); human-readable formats (JSON) keep a sequence both ways.
///
/// Fields stored this way (`#[serde(with = "crate::codec::bulk")]`, or the
/// [`Bulk`] impl of the aligned rows): the vectors and their norms, SQ8 ranges and
/// codes, binary codes, HNSW levels, layer-0 links, upper-layer offsets and links, IVF
/// pending slots, centroids and lists, PQ codebooks and codes, LSH hyperplanes and k-d
/// tree bounds. The id maps of a library keep their v2 form but are built in bulk
/// ([`sorted_map`]).
pub(crate) mod bulk {
    use alloc::collections::BTreeMap;
    use alloc::vec;
    use alloc::vec::Vec;
    use core::fmt;
    use core::marker::PhantomData;

    use bytemuck::Pod;
    use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, MapAccess, SeqAccess};
    use serde::de::{Error as _, Visitor};
    use serde::ser::{Serialize, Serializer};

    /// An item of a bulk array: plain old data with a little-endian wire form.
    pub(crate) trait Le:
        Pod + PartialEq + fmt::Debug + Serialize + DeserializeOwned
    {
        /// Little-endian to native byte order, or back (the swap is its own inverse):
        /// the identity on little-endian hosts.
        fn swap_le(self) -> Self;
    }

    impl Le for u8 {
        #[inline]
        fn swap_le(self) -> Self {
            self
        }
    }

    impl Le for u32 {
        #[inline]
        fn swap_le(self) -> Self {
            u32::from_le(self)
        }
    }

    impl Le for u64 {
        #[inline]
        fn swap_le(self) -> Self {
            u64::from_le(self)
        }
    }

    impl Le for f32 {
        #[inline]
        fn swap_le(self) -> Self {
            f32::from_bits(u32::from_le(self.to_bits()))
        }
    }

    /// A container of items that decodes from a bulk array.
    pub(crate) trait Bulk: Sized {
        type Item: Le;

        /// The items whose little-endian bytes are `bytes`, a whole number of items.
        fn from_le_bytes(bytes: &[u8]) -> Self;

        /// The items of a sequence (v1, v2, human-readable formats).
        fn from_seq<'de, A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error>;
    }

    impl<T: Le> Bulk for Vec<T> {
        type Item = T;

        fn from_le_bytes(bytes: &[u8]) -> Self {
            // Zeroed memory comes from the allocator untouched (calloc), so the copy is
            // the only pass over it.
            let mut items = vec![T::zeroed(); bytes.len() / size_of::<T>()];
            bytemuck::cast_slice_mut::<T, u8>(&mut items).copy_from_slice(bytes);
            if cfg!(target_endian = "big") {
                for item in &mut items {
                    *item = item.swap_le();
                }
            }
            items
        }

        fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
            // Outside bytes: trust the announced length only up to 1 MiB, as serde does
            // for a `Vec`, and grow past it as items really arrive.
            let cap = (1 << 20) / size_of::<T>();
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(cap));
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(items)
        }
    }

    struct BulkVisitor<C>(PhantomData<C>);

    impl<'de, C: Bulk> Visitor<'de> for BulkVisitor<C> {
        type Value = C;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                f,
                "a byte string of {}-byte little-endian items, or a sequence",
                size_of::<C::Item>()
            )
        }

        fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<C, E> {
            if !bytes.len().is_multiple_of(size_of::<C::Item>()) {
                return Err(E::invalid_length(bytes.len(), &self));
            }
            Ok(C::from_le_bytes(bytes))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<C, A::Error> {
            C::from_seq(seq)
        }
    }

    /// Writes `items` as a byte string (a sequence in human-readable formats).
    pub(crate) fn serialize<T: Le, S: Serializer>(
        items: &[T],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_seq(items)
        } else if cfg!(target_endian = "little") {
            serializer.serialize_bytes(bytemuck::cast_slice(items))
        } else {
            let swapped: Vec<T> = items.iter().map(|item| item.swap_le()).collect();
            serializer.serialize_bytes(bytemuck::cast_slice(&swapped))
        }
    }

    /// Reads what [`serialize`] wrote into any [`Bulk`] container, or a sequence.
    pub(crate) fn decode<'de, C: Bulk, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<C, D::Error> {
        if deserializer.is_human_readable() || super::legacy::sequences() {
            deserializer.deserialize_seq(BulkVisitor(PhantomData))
        } else {
            deserializer.deserialize_bytes(BulkVisitor(PhantomData))
        }
    }

    /// Reads what [`serialize`] wrote, or a sequence (v1, v2).
    pub(crate) fn deserialize<'de, T: Le, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<T>, D::Error> {
        decode(deserializer)
    }

    /// A list of bulk arrays (IVF lists, PQ codes): a sequence of byte strings.
    pub(crate) mod lists {
        use alloc::vec::Vec;
        use serde::de::{Deserialize, Deserializer};
        use serde::ser::{Serialize, Serializer};

        use super::Le;

        struct Borrowed<'a, T>(&'a [T]);

        impl<T: Le> Serialize for Borrowed<'_, T> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                super::serialize(self.0, serializer)
            }
        }

        struct Owned<T>(Vec<T>);

        impl<'de, T: Le> Deserialize<'de> for Owned<T> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                super::deserialize(deserializer).map(Owned)
            }
        }

        pub(crate) fn serialize<T: Le, S: Serializer>(
            lists: &[Vec<T>],
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(lists.iter().map(|list| Borrowed(list)))
        }

        pub(crate) fn deserialize<'de, T: Le, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Vec<Vec<T>>, D::Error> {
            let lists = Vec::<Owned<T>>::deserialize(deserializer)?;
            Ok(lists.into_iter().map(|list| list.0).collect())
        }
    }

    /// A map written by serde's `BTreeMap` (same wire form in every version), built in
    /// bulk: the entries are collected in order and the tree built from them at once
    /// (`BTreeMap::from_iter` of sorted entries), instead of one insert per entry. An
    /// encoder only ever writes a map's keys in ascending order, so keys out of order
    /// or repeated are refused as corrupt (serde's own decoder let a repeated key
    /// silently replace the earlier entry).
    pub(crate) fn sorted_map<'de, K, V, D>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Ord + Deserialize<'de>,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        struct Entries<K, V>(PhantomData<(K, V)>);

        impl<'de, K, V> Visitor<'de> for Entries<K, V>
        where
            K: Ord + Deserialize<'de>,
            V: Deserialize<'de>,
        {
            type Value = BTreeMap<K, V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map with keys in ascending order")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                // Outside bytes: trust the announced length only up to 1 MiB.
                let cap = (1 << 20) / size_of::<(K, V)>().max(1);
                let mut entries: Vec<(K, V)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(0).min(cap));
                while let Some((key, value)) = map.next_entry::<K, V>()? {
                    if entries.last().is_some_and(|(last, _)| *last >= key) {
                        return Err(A::Error::custom("map keys out of order or repeated"));
                    }
                    entries.push((key, value));
                }
                // Sorted already: the sort inside is one pass over the entries.
                #[cfg(not(feature = "small-maps"))]
                let map = entries.into_iter().collect();
                // Ordered inserts: no sort instantiated per map type (see Cargo.toml).
                #[cfg(feature = "small-maps")]
                let map = {
                    let mut map = BTreeMap::new();
                    map.extend(entries);
                    map
                };
                Ok(map)
            }
        }

        deserializer.deserialize_map(Entries(PhantomData))
    }
}

/// Snapshot v1 and v2 payloads: postcard with every large array read as a sequence.
///
/// v3 stores the large arrays as byte strings ([`bulk`]); v1 and v2 stored the same
/// fields as sequences of items, and postcard's wire form does not say which it is.
/// The types therefore decode both (their visitors accept bytes and sequences), and
/// [`bulk::decode`] asks for a sequence while a v1 or v2 payload is being decoded on
/// this thread ([`from_bytes`] sets that for its duration). This keeps one set of types
/// (no v2 copy of every struct that holds an array) and one decoder of each type: an
/// adapter wrapping postcard's deserializer instead would compile the whole state's
/// decoding a second time, which measured +16 KB gzipped in the npm package.
pub(crate) mod legacy {
    use serde::de::DeserializeOwned;

    use crate::error::Result;

    #[cfg(feature = "std")]
    mod flag {
        extern crate std;
        use core::cell::Cell;

        std::thread_local! {
            static SEQUENCES: Cell<bool> = const { Cell::new(false) };
        }

        pub(super) fn get() -> bool {
            SEQUENCES.with(Cell::get)
        }

        pub(super) fn set(on: bool) -> bool {
            SEQUENCES.with(|s| s.replace(on))
        }
    }

    /// Without `std` there are no threads to keep apart (the npm package: wasm32, one
    /// thread), so the flag is one global.
    #[cfg(not(feature = "std"))]
    mod flag {
        use core::sync::atomic::{AtomicBool, Ordering};

        static SEQUENCES: AtomicBool = AtomicBool::new(false);

        pub(super) fn get() -> bool {
            SEQUENCES.load(Ordering::Relaxed)
        }

        pub(super) fn set(on: bool) -> bool {
            SEQUENCES.swap(on, Ordering::Relaxed)
        }
    }

    /// Whether the payload being decoded on this thread stores its arrays as sequences.
    pub(crate) fn sequences() -> bool {
        flag::get()
    }

    /// Puts the flag back as it was, also when decoding unwinds.
    struct Restore(bool);

    impl Drop for Restore {
        fn drop(&mut self) {
            flag::set(self.0);
        }
    }

    /// Decodes a v1 or v2 payload; trailing bytes are an error.
    pub(crate) fn from_bytes<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
        let _restore = Restore(flag::set(true));
        super::from_bytes(what, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::WalOp;

    proptest::proptest! {
        /// The `small-crc` table computes crc32fast's checksum (so both builds read
        /// each other's files).
        #[test]
        fn small_crc_table_matches_crc32fast(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
            const SMALL: crc::Crc<u32, crc::Table<1>> = crc::Crc::<u32, crc::Table<1>>::new(&crc::CRC_32_ISO_HDLC);
            proptest::prop_assert_eq!(SMALL.checksum(&bytes), crc32fast::hash(&bytes));
            proptest::prop_assert_eq!(checksum(&bytes), crc32fast::hash(&bytes));
        }
    }

    fn records(n: u64) -> Vec<WalRecord> {
        (1..=n)
            .map(|seq| WalRecord {
                library: "lib".into(),
                seq: 10 + seq,
                op: WalOp::DeleteDocument {
                    id: alloc::format!("doc-{seq}"),
                },
            })
            .collect()
    }

    #[test]
    fn a_damaged_segment_yields_its_intact_leading_records() {
        let all = records(5);
        let bytes = encode_wal_segment(&all).expect("encode");
        assert_eq!(decode_wal_segment(&bytes).expect("decode"), all);
        assert_eq!(decode_wal_segment_prefix(&bytes), (all.clone(), None));

        // Truncated anywhere: the records wholly before the cut survive (all of them
        // when only the footer is cut), and the strict decoder refuses the segment.
        for cut in HEADER..bytes.len() {
            let (good, error) = decode_wal_segment_prefix(&bytes[..cut]);
            assert!(error.is_some(), "cut at {cut}");
            if cut < bytes.len() - FOOTER {
                assert!(good.len() < all.len(), "cut at {cut}");
            }
            assert_eq!(good[..], all[..good.len()], "cut at {cut}");
            assert!(decode_wal_segment(&bytes[..cut]).is_err());
        }
        // A flipped bit inside record 3 keeps records 1 and 2 only.
        let mut flipped = bytes.clone();
        let third = HEADER + 4 + 2 * (8 + to_bytes(&all[0]).expect("len").len()) + 8 + 2;
        flipped[third] ^= 0x10;
        let (good, error) = decode_wal_segment_prefix(&flipped);
        assert_eq!(good, all[..2]);
        assert!(error.is_some_and(|e| e.to_string().contains("record 2 of 5: checksum mismatch")));
    }

    /// Every kind of bulk field, and the same fields as v1 and v2 stored them.
    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Arrays {
        #[serde(with = "bulk")]
        bytes: Vec<u8>,
        #[serde(with = "bulk")]
        words: Vec<u32>,
        #[serde(with = "bulk")]
        longs: Vec<u64>,
        #[serde(with = "bulk")]
        floats: Vec<f32>,
        #[serde(with = "bulk::lists")]
        lists: Vec<Vec<u32>>,
        #[serde(with = "bulk::lists")]
        codes: Vec<Vec<u8>>,
        tail: Option<String>,
    }

    #[derive(Serialize)]
    struct ArraysV2<'a> {
        bytes: &'a [u8],
        words: &'a [u32],
        longs: &'a [u64],
        floats: &'a [f32],
        lists: &'a [Vec<u32>],
        codes: &'a [Vec<u8>],
        tail: &'a Option<String>,
    }

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Words(#[serde(with = "bulk")] Vec<u32>);

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Floats(#[serde(with = "bulk")] Vec<f32>);

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Map(
        #[serde(deserialize_with = "bulk::sorted_map")] alloc::collections::BTreeMap<String, u32>,
    );

    fn arrays() -> impl proptest::strategy::Strategy<Value = Arrays> {
        use proptest::collection::vec;
        use proptest::prelude::*;
        (
            vec(any::<u8>(), 0..300),
            vec(any::<u32>(), 0..300),
            vec(any::<u64>(), 0..50),
            // Any bit pattern (NaNs too): compared by bits below.
            vec(any::<u32>().prop_map(f32::from_bits), 0..300),
            vec(vec(any::<u32>(), 0..20), 0..10),
            vec(vec(any::<u8>(), 0..20), 0..10),
            proptest::option::of("[a-z]{0,8}"),
        )
            .prop_map(|(bytes, words, longs, floats, lists, codes, tail)| Arrays {
                bytes,
                words,
                longs,
                floats,
                lists,
                codes,
                tail,
            })
    }

    fn same(a: &Arrays, b: &Arrays) -> bool {
        let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        a.bytes == b.bytes
            && a.words == b.words
            && a.longs == b.longs
            && bits(&a.floats) == bits(&b.floats)
            && a.lists == b.lists
            && a.codes == b.codes
            && a.tail == b.tail
    }

    proptest::proptest! {
        /// Bulk fields round-trip, and the same values written as v1/v2 sequences decode
        /// to the same through [`legacy`].
        #[test]
        fn bulk_arrays_round_trip_and_read_the_old_sequences(a in arrays()) {
            let wire = to_bytes(&a).expect("encode");
            let back: Arrays = from_bytes("test", &wire).expect("decode");
            proptest::prop_assert!(same(&a, &back));
            let old = to_bytes(&ArraysV2 {
                bytes: &a.bytes, words: &a.words, longs: &a.longs, floats: &a.floats,
                lists: &a.lists, codes: &a.codes, tail: &a.tail,
            }).expect("encode");
            let back: Arrays = legacy::from_bytes("test", &old).expect("decode old");
            proptest::prop_assert!(same(&a, &back));
            // The v3 wire is not the v2 one (except when every array is empty)...
            if !a.words.is_empty() || !a.floats.is_empty() || !a.longs.is_empty() {
                proptest::prop_assert_ne!(&wire, &old);
            }
            // ...and a byte string is a length and the little-endian bytes.
            let le: Vec<u8> = a.words.iter().flat_map(|w| w.to_le_bytes()).collect();
            proptest::prop_assert_eq!(to_bytes(&Words(a.words.clone())).expect("encode"), to_bytes(&le).expect("encode"));
        }

        /// Every truncation of a valid encoding is an error (never a panic), in both
        /// decoders.
        #[test]
        fn truncated_bulk_arrays_are_corrupt(a in arrays()) {
            let wire = to_bytes(&a).expect("encode");
            for cut in 0..wire.len() {
                proptest::prop_assert!(matches!(
                    from_bytes::<Arrays>("test", &wire[..cut]),
                    Err(Error::Corrupt { .. })
                ), "cut at {}", cut);
                let _ = legacy::from_bytes::<Arrays>("test", &wire[..cut]);
            }
        }

        /// A byte string that is not a whole number of 4-byte items is refused.
        #[test]
        fn byte_lengths_must_be_whole_items(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let wire = to_bytes(&bytes).expect("encode");
            let whole = bytes.len() % 4 == 0;
            proptest::prop_assert_eq!(from_bytes::<Words>("test", &wire).is_ok(), whole);
            proptest::prop_assert_eq!(from_bytes::<Floats>("test", &wire).is_ok(), whole);
            if let Ok(Words(words)) = from_bytes::<Words>("test", &wire) {
                let expected: Vec<u32> = bytes
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                proptest::prop_assert_eq!(words, expected);
            }
        }

        /// Arbitrary bytes never panic either decoder.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = from_bytes::<Arrays>("test", &bytes);
            let _ = legacy::from_bytes::<Arrays>("test", &bytes);
            let _ = from_bytes::<Map>("test", &bytes);
        }

        /// Maps decode in bulk when their keys ascend, and are refused when a key is out
        /// of order or repeated (serde's decoder kept the last of a repeated key).
        #[test]
        fn maps_need_ascending_keys(entries in proptest::collection::vec(("[a-c]{0,3}", proptest::num::u32::ANY), 0..40)) {
            let wire = to_bytes(&entries).expect("encode");
            let ascending = entries.windows(2).all(|w| w[0].0 < w[1].0);
            let decoded = from_bytes::<Map>("test", &wire);
            proptest::prop_assert_eq!(decoded.is_ok(), ascending);
            if let Ok(Map(map)) = decoded {
                proptest::prop_assert!(map.into_iter().eq(entries.into_iter()));
            } else {
                let corrupt = matches!(decoded, Err(Error::Corrupt { .. }));
                proptest::prop_assert!(corrupt);
            }
            let legacy = legacy::from_bytes::<Map>("test", &wire);
            proptest::prop_assert_eq!(legacy.is_ok(), ascending);
        }
    }

    #[test]
    fn unknown_versions_and_foreign_bytes_are_refused() {
        let mut bytes = encode_wal_segment(&records(2)).expect("encode");
        bytes[4] = 9;
        assert!(matches!(
            decode_wal_segment(&bytes),
            Err(Error::UnknownVersion { version: 9, .. })
        ));
        assert!(decode_wal_segment(b"ARWSxxxxxxxxxxx").is_err());
        assert!(decode_wal_segment(b"").is_err());
        assert!(encode_wal_segment(&[]).is_err());
    }
}
