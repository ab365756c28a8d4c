//! Byte formats. Everything that is stored is framed as
//!
//! ```text
//! magic (4 bytes) | version (u16 LE) | postcard payload | crc32 (u32 LE, over all before it)
//! ```
//!
//! so a torn or corrupted object is detected, and a format this build does not know is
//! refused with a clear error instead of being misread. Messages that only cross the
//! component boundary in memory (commands, queries, outcomes) are bare postcard.

use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::command::WalRecord;
use crate::engine::LibraryState;
use crate::error::{Error, Result};

/// Magic of a library snapshot object.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"ARWS";
/// Current snapshot format version.
pub const SNAPSHOT_VERSION: u16 = 1;
/// Magic of a WAL segment object.
pub const WAL_MAGIC: [u8; 4] = *b"ARWL";
/// Current WAL segment format version.
pub const WAL_VERSION: u16 = 1;

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

fn frame(magic: [u8; 4], version: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len() + FOOTER);
    out.extend_from_slice(&magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks magic, checksum and version; returns the payload.
fn unframe<'a>(
    what: &'static str,
    magic: [u8; 4],
    supported: u16,
    bytes: &'a [u8],
) -> Result<&'a [u8]> {
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
    let (body, crc) = bytes.split_at(bytes.len() - FOOTER);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(body) != stored {
        return Err(corrupt("checksum mismatch"));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version == 0 || version > supported {
        return Err(Error::UnknownVersion {
            what,
            version,
            supported,
        });
    }
    Ok(&body[HEADER..])
}

/// Encodes a library snapshot.
pub(crate) fn encode_snapshot(state: &LibraryState) -> Result<Vec<u8>> {
    Ok(frame(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, &to_bytes(state)?))
}

/// Decodes a library snapshot (structure only; the engine checks invariants).
pub(crate) fn decode_snapshot(bytes: &[u8]) -> Result<LibraryState> {
    from_bytes(
        "snapshot",
        unframe("snapshot", SNAPSHOT_MAGIC, SNAPSHOT_VERSION, bytes)?,
    )
}

/// Encodes the records of one WAL segment (one group commit). Records must be
/// consecutive and of one library.
///
/// # Errors
/// `Internal` if the records are empty, of several libraries, or not consecutive.
pub fn encode_wal_segment(records: &[WalRecord]) -> Result<Vec<u8>> {
    check_segment(records)?;
    Ok(frame(WAL_MAGIC, WAL_VERSION, &to_bytes(&records)?))
}

/// Decodes one WAL segment.
///
/// # Errors
/// `Internal` for a corrupt, truncated or unknown-version segment.
pub fn decode_wal_segment(bytes: &[u8]) -> Result<Vec<WalRecord>> {
    let records: Vec<WalRecord> = from_bytes(
        "WAL segment",
        unframe("WAL segment", WAL_MAGIC, WAL_VERSION, bytes)?,
    )?;
    check_segment(&records).map_err(|e| Error::Corrupt {
        what: "WAL segment",
        reason: e.to_string(),
    })?;
    Ok(records)
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
