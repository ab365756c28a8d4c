//! Library storage for the edge worker: the shared object layout
//! (`arrwdb_core::storage`) on a directory the runtime mounts (`wasmtime serve --dir
//! HOST::/data`, Spin `files`). The host's local-directory backend writes the same
//! files, so both read and write one data set.
//!
//! A WAL segment is published with create-if-absent semantics: the bytes go to a
//! temporary file that is then hard-linked to its final name, which fails if the name
//! exists. Whoever creates `wal/N` owns log positions N.., exactly like a conditional
//! PUT (`If-None-Match: *`) on object storage.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use arrwdb_core::{Engine, Error, WalRecord, codec, storage};

/// Where the data directory is mounted inside the component.
pub const DEFAULT_DATA_DIR: &str = "/data";

/// Why storage could not serve a request.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory is missing or an I/O call failed (HTTP 503).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Another writer already created this WAL position (retry on the new tail).
    #[error("another writer appended at sequence {0}; retry")]
    Conflict(u64),
    /// Stored bytes do not decode, or do not replay (HTTP 500).
    #[error("{0}")]
    Corrupt(Error),
}

fn unavailable(path: &Path, e: &io::Error) -> StoreError {
    StoreError::Unavailable(format!("{}: {e}", path.display()))
}

/// A tenant's libraries under a mounted directory.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
    tenant: String,
}

impl DirStore {
    /// Opens `$ARRWDB_DATA_DIR` (default `/data`) for the default tenant.
    ///
    /// # Errors
    /// `Unavailable` if the directory is not mounted.
    pub fn open() -> Result<Self, StoreError> {
        let root = std::env::var("ARRWDB_DATA_DIR").unwrap_or_else(|_| DEFAULT_DATA_DIR.into());
        let root = PathBuf::from(root);
        fs::metadata(&root).map_err(|e| {
            StoreError::Unavailable(format!(
                "data directory {} is not mounted ({e}); run with `--dir HOST_DIR::{}`",
                root.display(),
                root.display()
            ))
        })?;
        Ok(DirStore {
            root,
            tenant: storage::DEFAULT_TENANT.into(),
        })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn library_dir(&self, library: &str) -> PathBuf {
        self.path(&storage::library_prefix(&self.tenant, library))
    }

    /// Names of the libraries that have a log.
    ///
    /// # Errors
    /// `Unavailable` on I/O errors.
    pub fn library_names(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.path(&self.tenant);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(unavailable(&dir, &e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| unavailable(&dir, &e))?;
            if let Some(name) = entry.file_name().to_str()
                && arrwdb_core::api::validate_library_name(name).is_ok()
                && entry.path().join("wal").is_dir()
            {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn seqs(&self, dir: &Path, parse: fn(&str) -> Option<u64>) -> Result<Vec<u64>, StoreError> {
        match fs::read_dir(dir) {
            Ok(entries) => {
                let mut out = Vec::new();
                for entry in entries {
                    let entry = entry.map_err(|e| unavailable(dir, &e))?;
                    if let Some(seq) = entry.file_name().to_str().and_then(parse) {
                        out.push(seq);
                    }
                }
                Ok(out)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(unavailable(dir, &e)),
        }
    }

    fn read(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.path(key);
        fs::read(&path).map_err(|e| unavailable(&path, &e))
    }

    /// Loads `library` into `engine`: newest snapshot, then every later WAL record.
    /// Returns `false` if the library has no log.
    ///
    /// # Errors
    /// `Corrupt` if a stored object does not decode or replay (with its key),
    /// `Unavailable` on I/O errors.
    pub fn load(&self, engine: &mut Engine, library: &str) -> Result<bool, StoreError> {
        let dir = self.library_dir(library);
        let snapshots = self.seqs(&dir.join("snapshots"), storage::parse_snapshot_name)?;
        let segments = self.seqs(&dir.join("wal"), storage::parse_wal_name)?;
        if snapshots.is_empty() && segments.is_empty() {
            return Ok(false);
        }
        engine.evict(library);
        let plan = storage::recovery_plan(&snapshots, &segments);
        if let Some(seq) = plan.snapshot {
            let key = storage::snapshot_key(&self.tenant, library, seq);
            engine
                .restore(&self.read(&key)?)
                .map_err(|e| corrupt_at(&key, e))?;
        }
        for first in plan.segments {
            let key = storage::wal_key(&self.tenant, library, first);
            let records =
                codec::decode_wal_segment(&self.read(&key)?).map_err(|e| corrupt_at(&key, e))?;
            for record in &records {
                let current = engine.library(library).map_or(0, |l| l.seq());
                if record.seq > current {
                    engine.apply(record).map_err(|e| corrupt_at(&key, e))?;
                }
            }
        }
        Ok(engine.library(library).is_some())
    }

    /// Publishes one WAL segment holding `records` (consecutive, one library).
    ///
    /// # Errors
    /// `Conflict` if another writer already created that position; `Unavailable` on
    /// I/O errors.
    pub fn append(&self, records: &[WalRecord]) -> Result<(), StoreError> {
        let bytes = codec::encode_wal_segment(records).map_err(StoreError::Corrupt)?;
        let first = &records[0];
        let key = storage::wal_key(&self.tenant, &first.library, first.seq);
        self.create(&key, &bytes, first.seq)
    }

    /// Stores a snapshot of `library` taken at `seq` (a no-op if it exists).
    ///
    /// # Errors
    /// `Unavailable` on I/O errors.
    pub fn put_snapshot(&self, library: &str, seq: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let key = storage::snapshot_key(&self.tenant, library, seq);
        match self.create(&key, bytes, seq) {
            Err(StoreError::Conflict(_)) => Ok(()),
            other => other,
        }
    }

    /// Removes every object of `library` (after its deletion record is durable).
    ///
    /// # Errors
    /// `Unavailable` on I/O errors.
    pub fn remove_library(&self, library: &str) -> Result<(), StoreError> {
        let dir = self.library_dir(library);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(unavailable(&dir, &e)),
            _ => Ok(()),
        }
    }

    fn create(&self, key: &str, bytes: &[u8], seq: u64) -> Result<(), StoreError> {
        let path = self.path(key);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| unavailable(&dir, &e))?;
        let tmp = dir.join(format!(".{}.tmp-{}", seq, uuid::Uuid::new_v4().simple()));
        let written = (|| {
            let mut file = fs::File::create_new(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(unavailable(&tmp, &e));
        }
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(StoreError::Conflict(seq)),
            Err(e) => Err(unavailable(&path, &e)),
        }
    }
}

fn corrupt_at(key: &str, e: Error) -> StoreError {
    StoreError::Corrupt(Error::Corrupt {
        what: "stored object",
        reason: format!("{key}: {e}"),
    })
}
