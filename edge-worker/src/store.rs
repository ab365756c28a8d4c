//! Object storage for the edge worker, behind one small trait ([`ObjectStore`]) with
//! two backends: a directory the runtime mounts ([`DirStore`]: `wasmtime serve --dir
//! HOST::/data`, Spin `files`) and an S3-compatible bucket over outbound wasi:http
//! ([`crate::s3::S3Store`]). Both hold the host's layout (`arrwdb_core::storage`), so
//! host and edges read and write one data set.
//!
//! Durability rule, the same on both: a WAL segment is created only if absent
//! (`put_if_absent`: a hard link on a directory, `If-None-Match: *` on S3), so whoever
//! creates `wal/N` owns log positions `N..`, and a write is acknowledged only after
//! that call returned.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use arrwdb_core::Error;

use crate::config::{Backend, EdgeConfig};

/// Where the data directory is mounted inside the component by default.
pub const DEFAULT_DATA_DIR: &str = "/data";

/// Why storage could not serve a request.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Storage cannot be reached, refused the request, or holds damaged objects
    /// (HTTP 503: nothing is served from a log that cannot be read whole).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Storage refused a listing (credentials without `s3:ListBucket`); readers fall
    /// back to the `manifest/LATEST` hint and probing.
    #[error("storage refused to list {0}")]
    ListDenied(String),
    /// Other writers kept taking the WAL position of a write (HTTP 409).
    #[error("other writers kept taking WAL position {0}; retry")]
    Conflict(u64),
    /// Stored bytes do not decode as an engine object, or do not replay (HTTP 500).
    #[error("{0}")]
    Corrupt(Error),
}

/// The few object-storage calls the edge worker needs. Keys are relative to the
/// store's root (`{tenant}/{library}/wal/…`); listings return full keys, sorted.
pub trait ObjectStore {
    /// The object's bytes, `None` if it does not exist.
    ///
    /// # Errors
    /// `Unavailable` for anything but "absent".
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Several objects, fetched concurrently where the backend can.
    ///
    /// # Errors
    /// As [`ObjectStore::get`].
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// Every key under `prefix` (which ends in `/`) that sorts after `start_after`.
    ///
    /// # Errors
    /// `ListDenied` when the credentials may not list, `Unavailable` otherwise.
    fn list(&self, prefix: &str, start_after: Option<&str>) -> Result<Vec<String>, StoreError>;

    /// The names directly under `prefix` (which ends in `/`) that have children.
    ///
    /// # Errors
    /// As [`ObjectStore::list`].
    fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, StoreError>;

    /// Creates `key` unless it exists. Returns `false` (and changes nothing) if it
    /// exists.
    ///
    /// # Errors
    /// `Unavailable` when the outcome is unknown or the call failed.
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool, StoreError>;

    /// Deletes `key` (absent is fine).
    ///
    /// # Errors
    /// `Unavailable` on failure.
    fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// What this store is, for error messages.
    fn describe(&self) -> String;
}

/// Opens the backend the configuration names.
///
/// # Errors
/// `Unavailable` if the directory is not mounted or the S3 settings are unusable.
pub fn open(config: &EdgeConfig) -> Result<Box<dyn ObjectStore>, StoreError> {
    Ok(match &config.backend {
        Backend::Dir(dir) => Box::new(DirStore::open(dir)?),
        Backend::S3(s3) => Box::new(crate::s3::S3Store::new(s3)?),
    })
}

fn unavailable(path: &Path, e: &io::Error) -> StoreError {
    StoreError::Unavailable(format!("{}: {e}", path.display()))
}

/// Objects as files under a mounted directory (the layout of the host's
/// local-directory backend).
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    /// Opens `dir`.
    ///
    /// # Errors
    /// `Unavailable` if the directory is not mounted.
    pub fn open(dir: &str) -> Result<Self, StoreError> {
        let root = PathBuf::from(dir);
        fs::metadata(&root).map_err(|e| {
            StoreError::Unavailable(format!(
                "data directory {dir} is not mounted ({e}); run with `--dir HOST_DIR::{dir}`, or set ARRWDB_S3_ENDPOINT"
            ))
        })?;
        Ok(DirStore { root })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn entries(&self, prefix: &str) -> Result<Vec<(String, bool)>, StoreError> {
        let dir = self.path(prefix);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(unavailable(&dir, &e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| unavailable(&dir, &e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            // Temporary files of an unfinished create are not objects.
            if name.starts_with('.') {
                continue;
            }
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            out.push((name, is_dir));
        }
        Ok(out)
    }

    fn list_into(&self, prefix: &str, out: &mut Vec<String>) -> Result<(), StoreError> {
        for (name, is_dir) in self.entries(prefix)? {
            let key = format!("{prefix}{name}");
            if is_dir {
                self.list_into(&format!("{key}/"), out)?;
            } else {
                out.push(key);
            }
        }
        Ok(())
    }
}

impl ObjectStore for DirStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(key);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(unavailable(&path, &e)),
        }
    }

    fn list(&self, prefix: &str, start_after: Option<&str>) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        self.list_into(prefix, &mut keys)?;
        keys.retain(|k| start_after.is_none_or(|after| k.as_str() > after));
        keys.sort();
        Ok(keys)
    }

    fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = self
            .entries(prefix)?
            .into_iter()
            .filter_map(|(name, is_dir)| is_dir.then_some(name))
            .collect();
        names.sort();
        Ok(names)
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        let path = self.path(key);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| unavailable(&dir, &e))?;
        let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
        let written = (|| {
            let mut file = fs::File::create_new(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(unavailable(&tmp, &e));
        }
        // A hard link fails if the name exists: create-if-absent, atomically.
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(unavailable(&path, &e)),
        }
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(unavailable(&path, &e)),
            _ => {
                // Directories are not objects: drop the ones this emptied (`remove_dir`
                // refuses a non-empty one), up to the library's.
                let mut dir = path.parent();
                for _ in 0..2 {
                    match dir {
                        Some(d) if d != self.root && fs::remove_dir(d).is_ok() => {
                            dir = d.parent();
                        }
                        _ => break,
                    }
                }
                Ok(())
            }
        }
    }

    fn describe(&self) -> String {
        format!("directory {}", self.root.display())
    }
}
