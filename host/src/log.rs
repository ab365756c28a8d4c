//! Reading a library back from storage: newest manifest → snapshot (falling back to an
//! older one when it is corrupt) → the WAL after it, every record checked; and, for
//! read replicas, tailing new segments. Writers and replicas share this code, so both
//! reach the same state from the same objects.
//!
//! Rules (docs/durability.md has the reasoning):
//! - Every record must be the successor of the one before (`seq + 1`). A missing record
//!   is a gap and stops loading with the key of the object that shows it.
//! - A segment that does not decode whole keeps its intact leading records
//!   (`decode_prefix`). If it is the *last* segment it is a torn tail: loading stops at
//!   the last good record and the tear is reported (log and `/ready`). A writer
//!   (`repair`) moves a tail that contributed no record to `quarantine/`, so its WAL
//!   position can be written again. A torn segment in the middle is only acceptable
//!   when the next segment starts right after its last good record; otherwise records
//!   would be skipped silently, which is refused.
//! - Only the newest segment can be a library's tombstone (`DeleteLibrary`): a library
//!   that ends in one is gone, and a writer deletes its leftover objects.

use arrwdb_core::storage::{self, Manifest};
use arrwdb_core::{Query, QueryResponse, WalOp, WalRecord, codec};

use crate::component::{CallError, EngineInstance};
use crate::storage::{LibraryObjects, ObjectStorage, StorageError};

/// Why a library could not be loaded from storage. Every variant names the object.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("{key}: the log has a gap: expected record {expected}, found {found}")]
    Gap {
        key: String,
        expected: u64,
        found: u64,
    },
    #[error("engine instance: {0}")]
    Instance(String),
}

/// Runs a synchronous engine call without stalling the async runtime's other tasks.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

/// The intact leading records of a segment and, if it is torn or corrupt after them,
/// the error (WAL v2 checks every record; a v1 segment is all or nothing).
pub fn decode_prefix(bytes: &[u8]) -> (Vec<WalRecord>, Option<arrwdb_core::Error>) {
    codec::decode_wal_segment_prefix(bytes)
}

/// What loading a library found.
#[derive(Debug, Default, Clone)]
pub struct Loaded {
    /// The newest readable manifest and its number.
    pub manifest: Option<(u64, Manifest)>,
    /// The newest manifest number seen (even if unreadable).
    pub newest_manifest: u64,
    /// The snapshot actually loaded.
    pub snapshot: Option<u64>,
    /// The last record applied (0: nothing, the library does not exist).
    pub seq: u64,
    /// First record of the last segment read whole (replicas list after it).
    pub last_segment: Option<u64>,
    /// Records and bytes of WAL after the snapshot (for the compactor).
    pub tail_records: u64,
    pub tail_bytes: u64,
    /// Problems that did not stop loading (torn tail, corrupt snapshot skipped).
    pub warnings: Vec<String>,
    /// The library ends in its tombstone.
    pub deleted: bool,
}

fn refused(e: CallError, key: &str) -> RecoveryError {
    match e {
        CallError::Refused(e) => RecoveryError::Corrupt {
            key: key.into(),
            reason: e.message().into(),
        },
        CallError::Trapped(m) | CallError::Stopped(m) => RecoveryError::Instance(m),
    }
}

/// The last applied record of `library` in `instance` (0 if it is not loaded).
pub fn library_seq(instance: &mut EngineInstance, library: &str) -> Result<u64, RecoveryError> {
    match blocking(|| {
        instance.query(&Query::GetLibrary {
            library: library.into(),
        })
    }) {
        Ok(QueryResponse::Library(info)) => Ok(info.seq),
        Ok(_) => Err(RecoveryError::Instance("unexpected query response".into())),
        Err(CallError::Refused(_)) => Ok(0),
        Err(CallError::Trapped(m) | CallError::Stopped(m)) => Err(RecoveryError::Instance(m)),
    }
}

/// Reads the newest manifest that decodes, newest first. Unreadable ones are skipped
/// with a warning (they are tiny and written atomically; only corruption at rest or an
/// injected tear makes one unreadable).
pub async fn newest_manifest(
    storage: &ObjectStorage,
    tenant: &str,
    library: &str,
    numbers: &[u64],
    warnings: &mut Vec<String>,
) -> Result<Option<(u64, Manifest)>, StorageError> {
    for &n in numbers.iter().rev() {
        let key = storage::manifest_key(tenant, library, n);
        let bytes = match storage.get(&key).await {
            Ok(bytes) => bytes,
            Err(StorageError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        match Manifest::from_json(&bytes) {
            Ok(m) => return Ok(Some((n, m))),
            Err(e) => warnings.push(format!("{key}: {e}; using an older manifest")),
        }
    }
    Ok(None)
}

/// Loads one library into `instance` (which must not hold it). `repair` (writers only)
/// deletes a deleted library's leftovers and quarantines an empty torn tail.
pub async fn recover(
    storage: &ObjectStorage,
    instance: &mut EngineInstance,
    tenant: &str,
    library: &str,
    repair: bool,
) -> Result<Loaded, RecoveryError> {
    let objects = storage.library_objects(tenant, library).await?;
    let mut loaded = Loaded {
        newest_manifest: objects.manifests.last().copied().unwrap_or(0),
        ..Loaded::default()
    };

    // The newest segment first: a library that ends in its tombstone is gone.
    let mut newest = None;
    if let Some(&last) = objects.segments.last() {
        let key = storage::wal_key(tenant, library, last);
        let bytes = storage.get(&key).await?;
        let (records, error) = decode_prefix(&bytes);
        if records.last().is_some_and(|r| r.op == WalOp::DeleteLibrary) {
            loaded.deleted = true;
            if repair {
                tracing::info!(%library, "library was deleted; removing its leftover objects");
                delete_library_objects(storage, library, objects.keys, &key).await?;
            }
            return Ok(loaded);
        }
        newest = Some((last, bytes.len() as u64, records, error));
    }

    loaded.manifest = newest_manifest(
        storage,
        tenant,
        library,
        &objects.manifests,
        &mut loaded.warnings,
    )
    .await?;
    let manifest = loaded.manifest.as_ref().map(|(_, m)| m);

    // Snapshot: the manifest's, else older ones, else none (replay from record 1).
    let mut seq = 0;
    let mut skipped: Vec<String> = Vec::new();
    for candidate in storage::snapshot_candidates(manifest, &objects.snapshots) {
        let Some(snapshot) = candidate else {
            loaded.snapshot = None;
            break;
        };
        let key = storage::snapshot_key(tenant, library, snapshot);
        match load_snapshot(storage, instance, library, snapshot, &key).await {
            Ok(()) => {
                seq = snapshot;
                loaded.snapshot = Some(snapshot);
                break;
            }
            Err(RecoveryError::Corrupt { key, reason }) => {
                let _ = blocking(|| instance.evict(library));
                skipped.push(format!("{key}: {reason}"));
            }
            Err(RecoveryError::Storage(StorageError::NotFound { key })) => {
                skipped.push(format!("{key}: missing"));
            }
            Err(e) => return Err(e),
        }
    }
    for s in &skipped {
        let warning = format!("snapshot unusable, fell back to an older one plus WAL: {s}");
        tracing::warn!(%library, "{warning}");
        loaded.warnings.push(warning);
    }

    let segments = storage::segments_after(loaded.snapshot, &objects.segments);
    let count = segments.len();
    // A torn segment in the middle: (its key, why, last good record).
    let mut torn: Option<(String, String)> = None;
    for (i, first) in segments.into_iter().enumerate() {
        let key = storage::wal_key(tenant, library, first);
        let (len, records, error) = match newest.take() {
            Some((last, len, records, error)) if last == first => (len, records, error),
            other => {
                newest = other;
                let bytes = storage.get(&key).await?;
                let (records, error) = decode_prefix(&bytes);
                (bytes.len() as u64, records, error)
            }
        };
        let before = seq;
        for record in &records {
            if record.seq <= seq {
                continue;
            }
            if record.library != library {
                return Err(RecoveryError::Corrupt {
                    key,
                    reason: format!("holds a record of library `{}`", record.library),
                });
            }
            if record.seq != seq + 1 {
                if let Some((torn_key, reason)) = torn.take() {
                    return Err(RecoveryError::Corrupt {
                        key: torn_key,
                        reason: format!(
                            "{reason}; the next segment {key} starts at record {}, so records {}..={} cannot be read",
                            record.seq,
                            seq + 1,
                            record.seq - 1
                        ),
                    });
                }
                return Err(RecoveryError::Gap {
                    key,
                    expected: seq + 1,
                    found: record.seq,
                });
            }
            blocking(|| instance.apply(record)).map_err(|e| refused(e, &key))?;
            seq = record.seq;
        }
        if seq > before {
            loaded.tail_records += seq - before;
            loaded.tail_bytes += len;
        }
        torn = None;
        match error {
            None => loaded.last_segment = Some(first),
            Some(e) if i + 1 == count => {
                let warning = format!(
                    "{key}: torn or corrupt tail segment ({e}); recovery stopped at record {seq}"
                );
                tracing::warn!(%library, "{warning}");
                loaded.warnings.push(warning);
                if repair && seq == before {
                    // Read it once more: a read that went wrong must never make us move
                    // a good segment out of the log.
                    let again = storage.get(&key).await?;
                    if decode_prefix(&again).1.is_none() {
                        return Err(RecoveryError::Storage(StorageError::Failed {
                            key,
                            source: object_store::Error::Generic {
                                store: "recovery",
                                source: "the segment read torn once and whole the next time".into(),
                            },
                        }));
                    }
                    quarantine(storage, tenant, library, &key, first).await?;
                }
            }
            Some(e) => torn = Some((key, e.to_string())),
        }
    }
    if let Some((key, reason)) = torn {
        return Err(RecoveryError::Corrupt { key, reason });
    }
    if seq == 0 && !objects.keys.is_empty() {
        tracing::warn!(%library, keys = ?objects.keys, "objects without a snapshot or WAL segment; ignoring");
    }
    loaded.seq = seq;
    tracing::debug!(%library, seq, "library loaded");
    Ok(loaded)
}

async fn load_snapshot(
    storage: &ObjectStorage,
    instance: &mut EngineInstance,
    library: &str,
    snapshot: u64,
    key: &str,
) -> Result<(), RecoveryError> {
    let bytes = storage.get(key).await?;
    let name = blocking(|| instance.restore(&bytes)).map_err(|e| refused(e, key))?;
    if name != library {
        let _ = blocking(|| instance.evict(&name));
        return Err(RecoveryError::Corrupt {
            key: key.into(),
            reason: format!("holds library `{name}`"),
        });
    }
    let seq = library_seq(instance, library)?;
    if seq != snapshot {
        return Err(RecoveryError::Corrupt {
            key: key.into(),
            reason: format!("snapshot named {snapshot} holds the library as of record {seq}"),
        });
    }
    Ok(())
}

/// Moves a torn segment that contributed nothing out of the log, so its position can
/// be written again (its PUT failed, so none of it was acknowledged).
async fn quarantine(
    storage: &ObjectStorage,
    tenant: &str,
    library: &str,
    key: &str,
    first: u64,
) -> Result<(), StorageError> {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let to = format!(
        "{}/quarantine/{first:020}.wal.{millis}",
        storage::library_prefix(tenant, library)
    );
    storage.copy(key, &to).await?;
    storage.delete_all(&[key.to_string()]).await?;
    tracing::warn!(%key, quarantined = %to, "moved a torn WAL segment out of the log");
    Ok(())
}

/// Deletes a deleted library's objects, its tombstone segment last.
pub async fn delete_library_objects(
    storage: &ObjectStorage,
    library: &str,
    mut keys: Vec<String>,
    tombstone: &str,
) -> Result<(), StorageError> {
    keys.retain(|k| k != tombstone);
    keys.push(tombstone.into());
    storage.delete_all(&keys).await?;
    tracing::debug!(%library, objects = keys.len(), "deleted library objects");
    Ok(())
}

/// What one tailing pass of a replica did.
#[derive(Debug, PartialEq, Eq)]
pub enum Tail {
    /// Applied records up to `seq` (maybe none); `last_segment` was read whole.
    Advanced { seq: u64, last_segment: Option<u64> },
    /// The library's tombstone was applied: it is gone.
    Deleted,
    /// The next record is not in storage any more (compacted away) or the log moved
    /// under us: load the library again from its manifest.
    Reload,
}

/// Segments fetched after a replica's position, not yet applied.
#[derive(Debug, Default)]
pub struct Fetched {
    /// `(first_seq, key, intact records, whether the segment is torn)`, in order.
    segments: Vec<(u64, String, Vec<WalRecord>, bool)>,
}

impl Fetched {
    /// Whether any record was fetched: the replica moves on, so the log has not been
    /// compacted away under it ([`needs_reload`] is for a replica that sees nothing new).
    pub fn has_records(&self) -> bool {
        self.segments
            .iter()
            .any(|(_, _, records, _)| !records.is_empty())
    }
}

/// Fetches the segments that follow record `seq`, without touching the engine (so a
/// replica does its I/O outside the instance lock). Segments are named by their first
/// record, so the next one is exactly `wal/{seq + 1}`: one GET per poll when nothing
/// is new, no listing.
pub async fn fetch_tail(
    storage: &ObjectStorage,
    tenant: &str,
    library: &str,
    mut seq: u64,
) -> Result<Fetched, StorageError> {
    let mut fetched = Fetched::default();
    loop {
        let first = seq + 1;
        let key = storage::wal_key(tenant, library, first);
        let bytes = match storage.get(&key).await {
            Ok(bytes) => bytes,
            Err(StorageError::NotFound { .. }) => break,
            Err(e) => return Err(e),
        };
        let (records, error) = decode_prefix(&bytes);
        let torn = error.is_some();
        let last = records.last().map(|r| r.seq);
        fetched.segments.push((first, key, records, torn));
        match last {
            // Torn: wait for the writer to repair it or to write after its good records.
            Some(last) if !torn && last >= first => seq = last,
            _ => break,
        }
    }
    Ok(fetched)
}

/// Applies fetched segments to a library loaded up to `seq`.
pub fn apply_tail(
    instance: &mut EngineInstance,
    library: &str,
    mut seq: u64,
    mut last_segment: Option<u64>,
    fetched: Fetched,
) -> Result<Tail, RecoveryError> {
    for (first, key, records, torn) in fetched.segments {
        for record in &records {
            if record.seq <= seq {
                continue;
            }
            if record.seq != seq + 1 || record.library != library {
                return Ok(Tail::Reload);
            }
            blocking(|| instance.apply(record)).map_err(|e| refused(e, &key))?;
            seq = record.seq;
            if record.op == WalOp::DeleteLibrary {
                return Ok(Tail::Deleted);
            }
        }
        if torn {
            break;
        }
        last_segment = Some(first);
    }
    Ok(Tail::Advanced { seq, last_segment })
}

/// The occasional full check of a replica that sees nothing new: is the log still
/// there where it stopped? True when segments exist beyond a missing next record
/// (compacted away while the replica lagged) or the last segment it read is gone (the
/// library was deleted, tombstone included).
pub async fn needs_reload(
    storage: &ObjectStorage,
    tenant: &str,
    library: &str,
    seq: u64,
    last_segment: Option<u64>,
) -> Result<bool, StorageError> {
    let dir = format!("{}/wal", storage::library_prefix(tenant, library));
    let offset = storage::wal_key(tenant, library, last_segment.unwrap_or(0));
    let keys = storage.list_after(&dir, &offset).await?;
    let beyond = keys
        .iter()
        .filter_map(|k| k.rsplit('/').next().and_then(storage::parse_wal_name))
        .any(|first| first > seq + 1);
    if beyond {
        return Ok(true);
    }
    Ok(keys.is_empty() && last_segment.is_some() && !storage.exists(&offset).await?)
}

/// The objects of a library, for callers that already listed them.
pub fn tombstone_key(tenant: &str, library: &str, objects: &LibraryObjects) -> String {
    objects
        .segments
        .last()
        .map(|&seq| storage::wal_key(tenant, library, seq))
        .unwrap_or_default()
}
