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
//! | object | v1 | v2 (current) |
//! |---|---|---|
//! | snapshot `ARWS` | postcard library state | adds the library's text settings and BM25 index |
//! | WAL segment `ARWL` | postcard `Vec<WalRecord>` | `count: u32`, then per record `len: u32 \| crc32: u32 \| postcard WalRecord`; library configs carry text settings |
//!
//! Every older version keeps decoding (golden files in `core/tests/golden/v{N}/`):
//! v1 libraries get the default text settings and their BM25 index is built from the
//! chunks' text on load. WAL v2 checksums each record, so a damaged segment still
//! yields its intact leading records ([`decode_wal_segment_prefix`]).

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
pub const SNAPSHOT_VERSION: u16 = 2;
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
        (1, payload) => Ok(from_bytes::<LibraryStateV1>("snapshot", payload)?.into()),
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
