//! `arrwdb backup` / `arrwdb restore`: copy every library of a tenant from one store to
//! another as a consistent cut — the snapshot the newest manifest names, then the WAL
//! segments after it, each one verified (checksum, consecutive records) before it is
//! copied, stopping before the first torn or missing one — and finally a fresh
//! manifest in the target that names exactly that range. The manifest goes last, so an
//! interrupted copy is recognizable (no manifest) and a reader never sees a half-copied
//! range through it.
//!
//! The source can keep taking writes while it is copied: objects are immutable once
//! written, and a segment that appears after the listing is simply not part of the cut.
//! Garbage collection only deletes objects older than its grace period, which a copy
//! must finish within.

use arrwdb_core::WalOp;
use arrwdb_core::storage::{self, MANIFEST_VERSION, Manifest};

use crate::log;
use crate::storage::ObjectStorage;

/// What was copied for one library.
#[derive(Debug)]
pub struct Copied {
    pub name: String,
    pub snapshot: Option<u64>,
    /// First and last record of the copied WAL range.
    pub records: Option<(u64, u64)>,
    pub objects: usize,
}

/// Checks the frame of a snapshot (`magic | u16 version | payload | crc32`) without
/// decoding it (that is the engine's job when the copy is loaded).
fn check_snapshot_frame(bytes: &[u8]) -> anyhow::Result<()> {
    anyhow::ensure!(bytes.len() >= 10, "too short");
    anyhow::ensure!(
        bytes[..4] == arrwdb_core::codec::SNAPSHOT_MAGIC,
        "wrong magic bytes"
    );
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    anyhow::ensure!(crc32fast::hash(body) == stored, "checksum mismatch");
    Ok(())
}

/// Copies every library of `tenant` from `source` to `target`.
///
/// # Errors
/// Storage failures, a corrupt snapshot, a library that already exists in the target,
/// or a library whose log cannot be read from its snapshot on.
pub async fn copy_tenant(
    source: &ObjectStorage,
    target: &ObjectStorage,
    tenant: &str,
) -> anyhow::Result<Vec<Copied>> {
    let mut copied = Vec::new();
    for name in source.library_names(tenant).await? {
        if arrwdb_core::api::validate_library_name(&name).is_err() {
            continue;
        }
        if let Some(c) = copy_library(source, target, tenant, &name).await? {
            copied.push(c);
        }
    }
    Ok(copied)
}

async fn copy_library(
    source: &ObjectStorage,
    target: &ObjectStorage,
    tenant: &str,
    library: &str,
) -> anyhow::Result<Option<Copied>> {
    let objects = source.library_objects(tenant, library).await?;
    if let Some(&last) = objects.segments.last() {
        let bytes = source.get(&storage::wal_key(tenant, library, last)).await?;
        let (records, _) = log::decode_prefix(&bytes);
        if records.last().is_some_and(|r| r.op == WalOp::DeleteLibrary) {
            tracing::info!(%library, "skipping a deleted library");
            return Ok(None);
        }
    }
    let existing = target.library_objects(tenant, library).await?;
    anyhow::ensure!(
        existing.keys.is_empty(),
        "the target already holds library `{library}` ({} objects); refusing to mix two histories",
        existing.keys.len()
    );
    let mut warnings = Vec::new();
    let manifest = log::newest_manifest(source, tenant, library, &objects.manifests, &mut warnings)
        .await?
        .map(|(_, m)| m);
    for w in warnings {
        tracing::warn!(%library, "{w}");
    }
    let snapshot = match &manifest {
        Some(m) => m.snapshot,
        None => objects.snapshots.last().copied(),
    };
    let mut count = 0;
    if let Some(seq) = snapshot {
        let key = storage::snapshot_key(tenant, library, seq);
        let bytes = source.get(&key).await?;
        check_snapshot_frame(&bytes).map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
        target.put(&key, bytes.to_vec()).await?;
        count += 1;
    }
    let mut seq = snapshot.unwrap_or(0);
    let first = seq + 1;
    for segment in storage::segments_after(snapshot, &objects.segments) {
        let key = storage::wal_key(tenant, library, segment);
        let bytes = source.get(&key).await?;
        let (records, error) = log::decode_prefix(&bytes);
        if let Some(e) = error {
            tracing::warn!(%key, error = %e, "torn segment: the copy ends before it");
            break;
        }
        let Some(last) = records.last().map(|r| r.seq) else {
            break;
        };
        let starts = records.iter().find(|r| r.seq > seq).map(|r| r.seq);
        if last <= seq {
            continue;
        }
        anyhow::ensure!(
            starts == Some(seq + 1),
            "{key}: the log has a gap after record {seq}"
        );
        target.put_if_absent(&key, bytes.to_vec()).await?;
        count += 1;
        seq = last;
    }
    if seq == 0 {
        tracing::warn!(%library, "nothing to copy");
        return Ok(None);
    }
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        library: library.into(),
        epoch: manifest.as_ref().map_or(0, |m| m.epoch),
        writer: format!("backup of {}", source.description()),
        snapshot,
        wal_start: first,
        next_seq: seq + 1,
        created_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    };
    let key = storage::manifest_key(tenant, library, 1);
    target.put_if_absent(&key, manifest.to_json()?).await?;
    target
        .put(
            &storage::manifest_latest_key(tenant, library),
            b"1".to_vec(),
        )
        .await?;
    Ok(Some(Copied {
        name: library.into(),
        snapshot,
        records: (seq >= first).then_some((first, seq)),
        objects: count + 1,
    }))
}
