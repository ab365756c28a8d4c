//! Reading a library back from storage, and appending to its log, for an instance that
//! lives for one request.
//!
//! Reading: one listing of `{tenant}/{library}/` (manifests, snapshots and segments in
//! one round trip; compaction keeps it short), the newest manifest that decodes, its
//! snapshot (older ones as fallbacks for a damaged object, as the host does), and every
//! WAL segment after it — snapshot and segments fetched concurrently. Every record is
//! checksummed (WAL v2) and must follow the one before; a damaged segment or a gap
//! stops the request with 503 `unavailable` naming the object: garbage is never
//! applied, and a prefix of the log is never served as if it were all of it. A library
//! only edges wrote has no manifest yet: it replays from record 1. When the credentials
//! may not list, the `manifest/LATEST` hint and probing (`manifest/{n+1}`,
//! `wal/{seq+1}`, … until a 404) replace the listing.
//!
//! Writing ([`commit`]): prepare and apply the commands on a copy of the loaded state,
//! encode them as one segment at `wal/{seq+1}`, create it only if absent, and
//! acknowledge only after that succeeded. Losing the race means another writer (a host
//! or an edge) owns that position: read the new tail, apply it, prepare again.

use std::collections::HashMap;

use arrwdb_core::storage::{self, Manifest};
use arrwdb_core::{Command, Engine, Error, Outcome, WalOp, WalRecord, codec};

use crate::store::{ObjectStore, StoreError};
use crate::timing;

/// How often a write is retried after losing its WAL position.
pub const WRITE_ATTEMPTS: usize = 8;

/// One library loaded from storage (absent if it has no log).
#[derive(Debug, Clone)]
pub struct LoadedLibrary {
    /// A fresh engine holding the library (or nothing if it does not exist).
    pub engine: Engine,
    tenant: String,
    library: String,
    /// The last record applied (0: the library does not exist).
    pub seq: u64,
    /// Key of the last WAL segment read; new segments sort after it.
    last_segment: Option<String>,
    /// Whether the store lets us list (else the hint and probing are used).
    listing: bool,
}

fn corrupt_at(key: &str, e: &Error) -> StoreError {
    StoreError::Corrupt(Error::Corrupt {
        what: "stored object",
        reason: format!("{key}: {e}"),
    })
}

fn damaged(key: &str, why: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "{key}: {why}; refusing to serve a partial log (the writer repairs torn segments on its next load)"
    ))
}

/// The objects listed under a library's prefix, by kind.
#[derive(Debug, Default)]
struct Objects {
    manifests: Vec<u64>,
    snapshots: Vec<u64>,
    segments: Vec<u64>,
}

fn classify(prefix: &str, keys: &[String]) -> Objects {
    let mut objects = Objects::default();
    for key in keys {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        if let Some(name) = rest.strip_prefix("manifest/") {
            objects.manifests.extend(storage::parse_manifest_name(name));
        } else if let Some(name) = rest.strip_prefix("snapshots/") {
            objects.snapshots.extend(storage::parse_snapshot_name(name));
        } else if let Some(name) = rest.strip_prefix("wal/") {
            objects.segments.extend(storage::parse_wal_name(name));
        }
    }
    objects.manifests.sort_unstable();
    objects
}

impl LoadedLibrary {
    fn empty(tenant: &str, library: &str, listing: bool) -> Self {
        LoadedLibrary {
            engine: Engine::new(),
            tenant: tenant.into(),
            library: library.into(),
            seq: 0,
            last_segment: None,
            listing,
        }
    }

    /// The library's name.
    pub fn name(&self) -> &str {
        &self.library
    }

    /// Whether the library exists (has a log that does not end in its deletion).
    pub fn exists(&self) -> bool {
        self.engine.library(&self.library).is_some()
    }

    /// Loads `library` of `tenant`.
    ///
    /// # Errors
    /// `Unavailable` for storage failures, damaged segments and gaps (naming the
    /// object); `Corrupt` for a record the engine refuses.
    pub fn load(store: &dyn ObjectStore, tenant: &str, library: &str) -> Result<Self, StoreError> {
        let prefix = format!("{}/", storage::library_prefix(tenant, library));
        let listed = timing::time("list", || store.list(&prefix, None));
        match listed {
            Ok(keys) => Self::load_listed(store, tenant, library, &classify(&prefix, &keys)),
            Err(StoreError::ListDenied(_)) => Self::load_probing(store, tenant, library),
            Err(e) => Err(e),
        }
    }

    fn load_listed(
        store: &dyn ObjectStore,
        tenant: &str,
        library: &str,
        objects: &Objects,
    ) -> Result<Self, StoreError> {
        let mut loaded = Self::empty(tenant, library, true);
        if objects.snapshots.is_empty() && objects.segments.is_empty() {
            return Ok(loaded);
        }
        let manifest = newest_manifest(store, tenant, library, &objects.manifests)?;
        let mut fetched: HashMap<String, Option<Vec<u8>>> = HashMap::new();
        let mut skipped = Vec::new();
        for candidate in storage::snapshot_candidates(manifest.as_ref(), &objects.snapshots) {
            let segments = storage::segments_after(candidate, &objects.segments);
            let mut keys: Vec<String> = segments
                .iter()
                .map(|&s| storage::wal_key(tenant, library, s))
                .collect();
            let snapshot_key = candidate.map(|s| storage::snapshot_key(tenant, library, s));
            keys.extend(snapshot_key.clone());
            let missing: Vec<String> = keys
                .iter()
                .filter(|k| !fetched.contains_key(*k))
                .cloned()
                .collect();
            let bodies = timing::time("fetch", || store.get_many(&missing))?;
            fetched.extend(missing.into_iter().zip(bodies));

            loaded.engine = Engine::new();
            if let (Some(seq), Some(key)) = (candidate, &snapshot_key) {
                let bytes = fetched.get(key).and_then(Option::as_ref);
                match restore(&mut loaded.engine, library, seq, key, bytes) {
                    Ok(()) => loaded.seq = seq,
                    Err(why) => {
                        skipped.push(why);
                        continue;
                    }
                }
            } else {
                loaded.seq = 0;
            }
            for first in segments {
                let key = storage::wal_key(tenant, library, first);
                let Some(Some(bytes)) = fetched.get(&key) else {
                    // Listed a moment ago, gone now: compaction collected it.
                    return Err(StoreError::Unavailable(format!(
                        "{key} disappeared while loading (compaction?); retry"
                    )));
                };
                if loaded.apply_segment(&key, bytes)? {
                    break;
                }
            }
            return Ok(loaded);
        }
        Err(StoreError::Unavailable(format!(
            "no usable snapshot of `{library}`: {}",
            skipped.join("; ")
        )))
    }

    /// Without listing: the `LATEST` hint, then `manifest/{n+1}…` and `wal/{seq+1}…`
    /// probed until a 404.
    fn load_probing(
        store: &dyn ObjectStore,
        tenant: &str,
        library: &str,
    ) -> Result<Self, StoreError> {
        let mut loaded = Self::empty(tenant, library, false);
        let hint_key = storage::manifest_latest_key(tenant, library);
        let hint = timing::time("fetch", || store.get(&hint_key))?
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let mut newest = hint;
        while timing::time("fetch", || {
            store.get(&storage::manifest_key(tenant, library, newest + 1))
        })?
        .is_some()
        {
            newest += 1;
        }
        let numbers: Vec<u64> = (1..=newest).collect();
        let manifest = newest_manifest(store, tenant, library, &numbers)?;
        if let Some(seq) = manifest.as_ref().and_then(|m| m.snapshot) {
            let key = storage::snapshot_key(tenant, library, seq);
            let bytes = timing::time("fetch", || store.get(&key))?;
            restore(&mut loaded.engine, library, seq, &key, bytes.as_ref())
                .map_err(StoreError::Unavailable)?;
            loaded.seq = seq;
        }
        loaded.tail(store)?;
        Ok(loaded)
    }

    /// Applies one segment's records after `self.seq`. Returns `true` if the library
    /// was deleted by it (nothing after a tombstone counts).
    fn apply_segment(&mut self, key: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        let started = std::time::Instant::now();
        let records = codec::decode_wal_segment(bytes).map_err(|e| damaged(key, &e.to_string()));
        let result = records.and_then(|records| self.apply_records(key, &records));
        timing::add("wal", started.elapsed().as_secs_f64() * 1e3);
        self.last_segment = Some(key.to_owned());
        result
    }

    fn apply_records(&mut self, key: &str, records: &[WalRecord]) -> Result<bool, StoreError> {
        for record in records {
            if record.seq <= self.seq {
                continue;
            }
            if record.library != self.library {
                return Err(damaged(
                    key,
                    &format!("holds a record of library `{}`", record.library),
                ));
            }
            if record.seq != self.seq + 1 {
                return Err(damaged(
                    key,
                    &format!(
                        "the log has a gap: expected record {}, found {}",
                        self.seq + 1,
                        record.seq
                    ),
                ));
            }
            self.engine.apply(record).map_err(|e| corrupt_at(key, &e))?;
            self.seq = record.seq;
            if record.op == WalOp::DeleteLibrary {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Reads and applies the segments written after the ones already applied.
    ///
    /// # Errors
    /// As [`LoadedLibrary::load`].
    pub fn tail(&mut self, store: &dyn ObjectStore) -> Result<(), StoreError> {
        if self.listing {
            let dir = format!(
                "{}/wal/",
                storage::library_prefix(&self.tenant, &self.library)
            );
            // Segments are named by their first record: the next one sorts after the
            // last one read, or after `seq` if none was read.
            let after = self
                .last_segment
                .clone()
                .unwrap_or_else(|| storage::wal_key(&self.tenant, &self.library, self.seq));
            let keys = timing::time("list", || store.list(&dir, Some(&after)))?;
            let bodies = timing::time("fetch", || store.get_many(&keys))?;
            for (key, bytes) in keys.iter().zip(bodies) {
                let Some(bytes) = bytes else { continue };
                if self.apply_segment(key, &bytes)? {
                    break;
                }
            }
        } else {
            loop {
                let key = storage::wal_key(&self.tenant, &self.library, self.seq + 1);
                let Some(bytes) = timing::time("fetch", || store.get(&key))? else {
                    break;
                };
                if self.apply_segment(&key, &bytes)? {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Restores a snapshot and checks it holds `library` as of record `seq`; the error is
/// why it cannot be used.
fn restore(
    engine: &mut Engine,
    library: &str,
    seq: u64,
    key: &str,
    bytes: Option<&Vec<u8>>,
) -> Result<(), String> {
    let Some(bytes) = bytes else {
        return Err(format!("{key}: missing"));
    };
    let name =
        timing::time("decode", || engine.restore(bytes)).map_err(|e| format!("{key}: {e}"))?;
    let held = engine.library(&name).map_or(0, |l| l.seq());
    if name != library || held != seq {
        engine.evict(&name);
        return Err(format!(
            "{key}: holds `{name}` as of record {held}, not `{library}` as of {seq}"
        ));
    }
    Ok(())
}

/// The newest manifest among `numbers` that decodes (older ones when the newest is
/// damaged).
fn newest_manifest(
    store: &dyn ObjectStore,
    tenant: &str,
    library: &str,
    numbers: &[u64],
) -> Result<Option<Manifest>, StoreError> {
    for &n in numbers.iter().rev() {
        let key = storage::manifest_key(tenant, library, n);
        let Some(bytes) = timing::time("fetch", || store.get(&key))? else {
            continue;
        };
        if let Ok(manifest) = Manifest::from_json(&bytes) {
            return Ok(Some(manifest));
        }
    }
    Ok(None)
}

/// Runs `commands` against the newest state of the library and publishes the accepted
/// ones as one WAL segment, retrying on a fresh tail when another writer took the
/// position. Returns each command's outcome, in order, and the state after them.
///
/// # Errors
/// `Conflict` after [`WRITE_ATTEMPTS`] lost races, `Unavailable` when the segment's PUT
/// failed or its outcome is unknown (nothing is acknowledged then).
pub fn commit(
    store: &dyn ObjectStore,
    mut base: LoadedLibrary,
    commands: &[Command],
) -> Result<(Vec<Result<Outcome, Error>>, LoadedLibrary), StoreError> {
    let mut lost_at = 0;
    for _ in 0..WRITE_ATTEMPTS {
        let mut work = base.clone();
        let mut records = Vec::new();
        let mut outcomes = Vec::with_capacity(commands.len());
        for command in commands {
            let outcome = work.engine.prepare(command.clone()).and_then(|record| {
                let outcome = work.engine.apply(&record)?;
                records.push(record);
                Ok(outcome)
            });
            outcomes.push(outcome);
        }
        let Some(first) = records.first() else {
            return Ok((outcomes, work));
        };
        let key = storage::wal_key(&base.tenant, &base.library, first.seq);
        let segment = codec::encode_wal_segment(&records).map_err(StoreError::Corrupt)?;
        if timing::time("put", || store.put_if_absent(&key, &segment))? {
            work.seq = records.last().map_or(work.seq, |r| r.seq);
            work.last_segment = Some(key);
            return Ok((outcomes, work));
        }
        lost_at = first.seq;
        base.tail(store)?;
    }
    Err(StoreError::Conflict(lost_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// An in-memory store whose listing can be switched off, for the probing path.
    #[derive(Debug, Default)]
    struct MemoryStore {
        objects: RefCell<BTreeMap<String, Vec<u8>>>,
        deny_list: bool,
    }

    impl ObjectStore for MemoryStore {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.objects.borrow().get(key).cloned())
        }
        fn list(&self, prefix: &str, after: Option<&str>) -> Result<Vec<String>, StoreError> {
            if self.deny_list {
                return Err(StoreError::ListDenied(prefix.into()));
            }
            Ok(self
                .objects
                .borrow()
                .keys()
                .filter(|k| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a))
                .cloned()
                .collect())
        }
        fn list_dirs(&self, _prefix: &str) -> Result<Vec<String>, StoreError> {
            Ok(Vec::new())
        }
        fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool, StoreError> {
            let mut objects = self.objects.borrow_mut();
            if objects.contains_key(key) {
                return Ok(false);
            }
            objects.insert(key.into(), bytes.to_vec());
            Ok(true)
        }
        fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.objects.borrow_mut().remove(key);
            Ok(())
        }
        fn describe(&self) -> String {
            "memory".into()
        }
    }

    fn create(name: &str) -> Command {
        let request: arrwdb_core::api::CreateLibraryRequest =
            serde_json::from_str(&format!(r#"{{"name":"{name}","dimension":2}}"#)).expect("json");
        Command::CreateLibrary(request.into_config().expect("config"))
    }

    fn upsert(id: &str, x: f32) -> Command {
        let request: arrwdb_core::api::UpsertDocumentRequest = serde_json::from_str(&format!(
            r#"{{"id":"{id}","chunks":[{{"embedding":[{x},1.0]}}]}}"#
        ))
        .expect("json");
        Command::UpsertDocument {
            library: "lib".into(),
            document: request.into_document(id.into()),
        }
    }

    fn write(store: &MemoryStore, command: Command) -> u64 {
        let base = LoadedLibrary::load(store, "t", "lib").expect("load");
        let (outcomes, after) = commit(store, base, &[command]).expect("commit");
        assert!(outcomes[0].is_ok(), "{outcomes:?}");
        after.seq
    }

    fn documents(loaded: &LoadedLibrary) -> usize {
        loaded
            .engine
            .library("lib")
            .map_or(0, |l| l.info().documents as usize)
    }

    #[test]
    fn a_lost_race_reads_the_new_tail_and_takes_the_next_position() {
        let store = MemoryStore::default();
        assert_eq!(write(&store, create("lib")), 1);
        let stale = LoadedLibrary::load(&store, "t", "lib").expect("load");
        assert_eq!(write(&store, upsert("a", 1.0)), 2);
        // `stale` thinks position 2 is free; it loses it, reads record 2, writes 3.
        let (outcomes, after) = commit(&store, stale, &[upsert("b", 2.0)]).expect("commit");
        assert!(outcomes[0].is_ok());
        assert_eq!((after.seq, documents(&after)), (3, 2));
        let fresh = LoadedLibrary::load(&store, "t", "lib").expect("load");
        assert_eq!((fresh.seq, documents(&fresh)), (3, 2));
    }

    #[test]
    fn snapshots_manifests_and_probing_reach_the_same_state() {
        let mut store = MemoryStore::default();
        write(&store, create("lib"));
        for i in 0..4 {
            write(&store, upsert(&format!("d{i}"), i as f32));
        }
        // A host-style compaction at record 3: snapshot, manifest, LATEST hint.
        let mut at3 = Engine::new();
        for key in ["1", "2", "3"] {
            let key = format!("t/lib/wal/{:020}.wal", key.parse::<u64>().expect("n"));
            let bytes = store.get(&key).expect("get").expect("segment");
            for r in codec::decode_wal_segment(&bytes).expect("decode") {
                at3.apply(&r).expect("apply");
            }
        }
        let snap = at3.snapshot("lib").expect("snapshot");
        let manifest = Manifest {
            version: 1,
            library: "lib".into(),
            epoch: 1,
            writer: "host".into(),
            snapshot: Some(3),
            wal_start: 4,
            next_seq: 4,
            created_at_ms: 0,
        };
        {
            let mut objects = store.objects.borrow_mut();
            objects.insert(storage::snapshot_key("t", "lib", 3), snap);
            objects.insert(
                storage::manifest_key("t", "lib", 1),
                manifest.to_json().expect("json"),
            );
            objects.insert(storage::manifest_latest_key("t", "lib"), b"1".to_vec());
            // Compaction collected the covered segments.
            for n in 1..=3 {
                objects.remove(&storage::wal_key("t", "lib", n));
            }
        }
        let listed = LoadedLibrary::load(&store, "t", "lib").expect("listed");
        assert_eq!((listed.seq, documents(&listed)), (5, 4));
        store.deny_list = true;
        let probed = LoadedLibrary::load(&store, "t", "lib").expect("probed");
        assert_eq!(probed.engine, listed.engine);
        // Writing without listing probes forward too.
        assert_eq!(write(&store, upsert("e", 9.0)), 6);
    }

    #[test]
    fn damaged_segments_and_gaps_are_refused_not_skipped() {
        let store = MemoryStore::default();
        write(&store, create("lib"));
        write(&store, upsert("a", 1.0));
        write(&store, upsert("b", 1.0));
        let key = storage::wal_key("t", "lib", 2);
        let mut bytes = store.get(&key).expect("get").expect("segment");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        store.objects.borrow_mut().insert(key.clone(), bytes);
        let e = LoadedLibrary::load(&store, "t", "lib").expect_err("damaged");
        assert!(
            matches!(&e, StoreError::Unavailable(m) if m.contains(&key)),
            "{e}"
        );
        store.objects.borrow_mut().remove(&key);
        let e = LoadedLibrary::load(&store, "t", "lib").expect_err("gap");
        assert!(e.to_string().contains("gap"), "{e}");
        // A library nobody wrote does not exist.
        assert!(
            !LoadedLibrary::load(&store, "t", "nope")
                .expect("load")
                .exists()
        );
    }
}
