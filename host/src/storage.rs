//! Object storage for the host: a local directory, memory, any S3-compatible service,
//! Google Cloud Storage or Azure Blob Storage, all through `object_store` (its own
//! builders, configured from the environment), with the object layout of
//! `arrwdb_core::storage`. An optional fault-injection wrapper ([`crate::faults`]) sits
//! between this module and the store when `ARRWDB_FAULTS` is set.
//!
//! Durability rule: a WAL segment is created with `PutMode::Create` (put-if-absent:
//! `If-None-Match: *` on S3, a hard link on a local directory), so whoever creates
//! `wal/N` owns log positions `N..`. SeaweedFS honours `If-None-Match: *` (verified
//! against 4.48: the second conditional PUT of a key answers 412, which object_store
//! reports as `AlreadyExists`). object_store's local-directory backend does not fsync;
//! this module does (file, then directory) before a write counts as done, unless
//! `--no-fsync` turns it off, so an acknowledged write survives a power loss too.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt as _;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload};

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A put-if-absent found the key taken: another writer owns that log position.
    #[error("object {key} already exists")]
    AlreadyExists { key: String },
    /// The object does not exist.
    #[error("object {key} does not exist")]
    NotFound { key: String },
    /// Anything else: network, permissions, missing bucket, I/O.
    #[error("storage failed on {key}: {source}")]
    Failed {
        key: String,
        #[source]
        source: object_store::Error,
    },
}

fn failed(key: &str) -> impl FnOnce(object_store::Error) -> StorageError + '_ {
    move |source| match source {
        object_store::Error::AlreadyExists { .. } => {
            StorageError::AlreadyExists { key: key.into() }
        }
        object_store::Error::NotFound { .. } => StorageError::NotFound { key: key.into() },
        source => StorageError::Failed {
            key: key.into(),
            source,
        },
    }
}

/// Every object of one library, by kind.
#[derive(Debug, Default)]
pub struct LibraryObjects {
    /// Sequence numbers of the snapshots.
    pub snapshots: Vec<u64>,
    /// First sequence numbers of the WAL segments.
    pub segments: Vec<u64>,
    /// Numbers of the manifests.
    pub manifests: Vec<u64>,
    /// Every key under the library's prefix (including unrecognized ones).
    pub keys: Vec<String>,
    /// Last-modified time of every key, in milliseconds since the Unix epoch.
    pub modified_ms: BTreeMap<String, i64>,
}

/// The configured object store.
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    description: String,
    /// The directory of the local backend.
    local_root: Option<std::path::PathBuf>,
    /// Local backend: every object written is synced (its data, then its directory
    /// entry) before the write counts as done.
    fsync: bool,
}

impl ObjectStorage {
    /// Opens `spec`: a directory path or `file:///abs/path` (created if missing),
    /// `memory://`, `s3://bucket[/prefix]` configured from the environment
    /// (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// region `us-east-1` by default, plain HTTP allowed when the endpoint is `http://`),
    /// `gs://bucket[/prefix]` (object_store's `GoogleCloudStorageBuilder::from_env`:
    /// `GOOGLE_SERVICE_ACCOUNT`, `GOOGLE_SERVICE_ACCOUNT_KEY`, …) or
    /// `az://container[/prefix]` (`MicrosoftAzureBuilder::from_env`:
    /// `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, …). With `ARRWDB_FAULTS`
    /// set, the store is wrapped in the fault injector.
    ///
    /// # Errors
    /// An unsupported scheme, a directory that cannot be created, an incomplete cloud
    /// configuration, or a malformed `ARRWDB_FAULTS`.
    pub fn open(spec: &str) -> anyhow::Result<Self> {
        let mut storage = Self::open_plain(spec)?;
        if let Ok(faults) = std::env::var("ARRWDB_FAULTS")
            && !faults.trim().is_empty()
        {
            let config = crate::faults::FaultConfig::parse(&faults)?;
            tracing::warn!(%faults, "fault injection is ON: storage calls will fail, stall and tear");
            storage.description = format!("{} (faults: {faults})", storage.description);
            storage.store = Arc::new(crate::faults::FaultyStore::new(storage.store, config));
        }
        Ok(storage)
    }

    fn open_plain(spec: &str) -> anyhow::Result<Self> {
        if spec == "memory://" || spec == "memory:" {
            return Ok(ObjectStorage {
                store: Arc::new(InMemory::new()),
                description: spec.into(),
                local_root: None,
                fsync: false,
            });
        }
        if let Some(rest) = spec.strip_prefix("s3://") {
            return Self::open_s3(rest);
        }
        if let Some(rest) = spec.strip_prefix("gs://") {
            let (bucket, prefix) = split_bucket(spec, rest)?;
            let gcs = GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .build()?;
            return Ok(Self::prefixed(gcs, prefix, spec.into()));
        }
        if let Some(rest) = spec.strip_prefix("az://") {
            let (container, prefix) = split_bucket(spec, rest)?;
            let azure = MicrosoftAzureBuilder::from_env()
                .with_container_name(container)
                .build()?;
            return Ok(Self::prefixed(azure, prefix, spec.into()));
        }
        let dir = match spec.strip_prefix("file://") {
            Some(path) if path.starts_with('/') => path,
            Some(_) => {
                anyhow::bail!("`{spec}`: a file URL needs an absolute path (file:///abs/path)")
            }
            None if spec.contains("://") => anyhow::bail!(
                "unsupported storage `{spec}`: use a directory, file:///abs/path, memory://, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix"
            ),
            None => spec,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("create storage directory {dir}: {e}"))?;
        let local = LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true);
        let abs = std::fs::canonicalize(dir)
            .map_or_else(|_| dir.to_string(), |p| p.display().to_string());
        Ok(ObjectStorage {
            store: Arc::new(local),
            description: format!("file://{abs}"),
            local_root: Some(std::path::PathBuf::from(abs)),
            fsync: true,
        })
    }

    fn open_s3(rest: &str) -> anyhow::Result<Self> {
        let (bucket, prefix) = split_bucket("s3://", rest)?;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let endpoint = std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT"));
        if let Ok(endpoint) = &endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|_| "us-east-1".into());
        let s3 = builder.with_region(region).build()?;
        let at = endpoint.map(|e| format!(" at {e}")).unwrap_or_default();
        Ok(Self::prefixed(s3, prefix, format!("s3://{rest}{at}")))
    }

    fn prefixed(store: impl ObjectStore, prefix: &str, description: String) -> Self {
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        };
        ObjectStorage {
            store,
            description,
            local_root: None,
            fsync: false,
        }
    }

    /// Turns fsync of the local-directory backend off (it is on by default; other
    /// backends are durable when their PUT returns).
    pub fn without_fsync(mut self) -> Self {
        if self.fsync {
            self.fsync = false;
            self.description.push_str(" (no fsync)");
        }
        self
    }

    /// Local backend: deletes object_store's staging files (`name#N`) older than
    /// `age` under `prefix`, left behind by a process killed mid-upload. No reader
    /// lists them; this only reclaims the space. Returns how many were deleted.
    pub fn remove_stale_staging_files(&self, prefix: &str, age: std::time::Duration) -> usize {
        fn walk(dir: &std::path::Path, age: std::time::Duration, removed: &mut usize) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    walk(&path, age, removed);
                } else if entry.file_name().to_string_lossy().contains('#')
                    && meta
                        .modified()
                        .ok()
                        .and_then(|m| m.elapsed().ok())
                        .is_some_and(|elapsed| elapsed >= age)
                    && std::fs::remove_file(&path).is_ok()
                {
                    *removed += 1;
                }
            }
        }
        let mut removed = 0;
        if let Some(root) = &self.local_root {
            walk(&root.join(prefix), age, &mut removed);
        }
        removed
    }

    /// Makes a just-written local object durable: `fsync` of the file (a hard link to
    /// object_store's staging file, so the same inode) and of its directory (the new
    /// name). object_store's local backend does neither.
    async fn sync(&self, key: &str) -> Result<(), StorageError> {
        let (Some(root), true) = (&self.local_root, self.fsync) else {
            return Ok(());
        };
        let path = root.join(key);
        let io = |e: std::io::Error| StorageError::Failed {
            key: key.into(),
            source: object_store::Error::Generic {
                store: "fsync",
                source: Box::new(e),
            },
        };
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&path)?.sync_all()?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| io(std::io::Error::other(e)))?
        .map_err(io)
    }

    /// Where the data lives, for logs.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Names of the libraries with at least one object under `{tenant}/`.
    ///
    /// # Errors
    /// [`StorageError::Failed`] if listing fails (e.g. a missing bucket).
    pub async fn library_names(&self, tenant: &str) -> Result<Vec<String>, StorageError> {
        let prefix = Path::from(tenant);
        let listing = self
            .store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(failed(tenant))?;
        let mut names: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Lists every object of a library.
    ///
    /// # Errors
    /// [`StorageError::Failed`] if listing fails.
    pub async fn library_objects(
        &self,
        tenant: &str,
        library: &str,
    ) -> Result<LibraryObjects, StorageError> {
        let prefix = arrwdb_core::storage::library_prefix(tenant, library);
        let metas: Vec<_> = self
            .store
            .list(Some(&Path::from(prefix.as_str())))
            .try_collect()
            .await
            .map_err(failed(&prefix))?;
        let mut objects = LibraryObjects::default();
        for meta in metas {
            let key = meta.location.to_string();
            let parts: Vec<_> = meta.location.parts().collect();
            if let [.., dir, file] = parts.as_slice() {
                match dir.as_ref() {
                    "wal" => objects
                        .segments
                        .extend(arrwdb_core::storage::parse_wal_name(file.as_ref())),
                    "snapshots" => objects
                        .snapshots
                        .extend(arrwdb_core::storage::parse_snapshot_name(file.as_ref())),
                    "manifest" => objects
                        .manifests
                        .extend(arrwdb_core::storage::parse_manifest_name(file.as_ref())),
                    _ => {}
                }
            }
            objects
                .modified_ms
                .insert(key.clone(), meta.last_modified.timestamp_millis());
            objects.keys.push(key);
        }
        objects.segments.sort_unstable();
        objects.snapshots.sort_unstable();
        objects.manifests.sort_unstable();
        objects.keys.sort();
        Ok(objects)
    }

    /// Keys under `dir` (a "directory" such as `t/lib/wal`) that sort after `offset`
    /// (exclusive), sorted. Stores that can push the offset down (S3, GCS) list only
    /// the new objects, which keeps a replica's poll cheap.
    ///
    /// # Errors
    /// [`StorageError::Failed`] if listing fails.
    pub async fn list_after(&self, dir: &str, offset: &str) -> Result<Vec<String>, StorageError> {
        let metas: Vec<_> = self
            .store
            .list_with_offset(Some(&Path::from(dir)), &Path::from(offset))
            .try_collect()
            .await
            .map_err(failed(dir))?;
        let mut keys: Vec<String> = metas.into_iter().map(|m| m.location.to_string()).collect();
        keys.sort();
        Ok(keys)
    }

    /// Whether `key` exists (a HEAD request).
    ///
    /// # Errors
    /// [`StorageError::Failed`] for anything but "not found".
    pub async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        match self.store.head(&Path::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(failed(key)(e)),
        }
    }

    /// Copies `from` to `to` inside this store (replacing `to`).
    ///
    /// # Errors
    /// [`StorageError::NotFound`] or [`StorageError::Failed`].
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), StorageError> {
        self.store
            .copy(&Path::from(from), &Path::from(to))
            .await
            .map_err(failed(from))
    }

    /// Reads a whole object.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] for a missing key, [`StorageError::Failed`] otherwise.
    pub async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let path = Path::from(key);
        let result = self.store.get(&path).await.map_err(failed(key))?;
        result.bytes().await.map_err(failed(key))
    }

    /// Creates `key` only if it does not exist yet.
    ///
    /// # Errors
    /// [`StorageError::AlreadyExists`] if another writer created it first,
    /// [`StorageError::Failed`] otherwise.
    pub async fn put_if_absent(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        self.store
            .put_opts(&Path::from(key), PutPayload::from(bytes), options)
            .await
            .map(drop)
            .map_err(failed(key))?;
        self.sync(key).await
    }

    /// Writes `key`, replacing any previous object (for snapshots, whose content is
    /// determined by their name).
    ///
    /// # Errors
    /// [`StorageError::Failed`].
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.store
            .put(&Path::from(key), PutPayload::from(bytes))
            .await
            .map(drop)
            .map_err(failed(key))?;
        self.sync(key).await
    }

    /// Deletes `keys` in order; a key that is already gone is fine.
    ///
    /// # Errors
    /// [`StorageError::Failed`] on the first other failure.
    pub async fn delete_all(&self, keys: &[String]) -> Result<(), StorageError> {
        for key in keys {
            match self.store.delete(&Path::from(key.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(failed(key)(e)),
            }
        }
        Ok(())
    }
}

/// Splits `bucket[/prefix]`, refusing an empty bucket.
fn split_bucket<'a>(spec: &str, rest: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    anyhow::ensure!(
        !bucket.is_empty(),
        "`{spec}`: storage needs a bucket (or container): scheme://bucket/prefix"
    );
    Ok((bucket, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_staging_files_are_removed_and_objects_kept() {
        let dir = tempfile_dir("staging");
        let storage = ObjectStorage::open(&dir.display().to_string()).expect("open");
        let wal = dir.join("default/lib/wal");
        std::fs::create_dir_all(&wal).expect("mkdir");
        std::fs::write(wal.join("00000000000000000001.wal"), b"x").expect("write");
        std::fs::write(wal.join("00000000000000000002.wal#3"), b"x").expect("write");
        let young =
            storage.remove_stale_staging_files("default", std::time::Duration::from_secs(60));
        assert_eq!(young, 0, "a young staging file may be an upload in flight");
        let removed = storage.remove_stale_staging_files("default", std::time::Duration::ZERO);
        assert_eq!(removed, 1);
        assert!(wal.join("00000000000000000001.wal").exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("arrwdb-host-{name}-{}", std::process::id()))
    }

    #[tokio::test]
    async fn put_if_absent_refuses_a_taken_key() {
        let dir = std::env::temp_dir().join(format!("arrwdb-host-test-{}", std::process::id()));
        for spec in ["memory://".to_string(), dir.display().to_string()] {
            let storage = ObjectStorage::open(&spec).expect("open");
            let key = arrwdb_core::storage::wal_key("default", "lib", 1);
            storage
                .put_if_absent(&key, b"one".to_vec())
                .await
                .expect("first put");
            let second = storage.put_if_absent(&key, b"two".to_vec()).await;
            assert!(
                matches!(second, Err(StorageError::AlreadyExists { .. })),
                "{spec}: {second:?}"
            );
            assert_eq!(storage.get(&key).await.expect("get").as_ref(), b"one");
            assert_eq!(
                storage.library_names("default").await.expect("names"),
                ["lib"]
            );
            let objects = storage
                .library_objects("default", "lib")
                .await
                .expect("list");
            assert_eq!(objects.segments, [1]);
            storage.delete_all(&objects.keys).await.expect("delete");
            assert!(
                storage
                    .library_objects("default", "lib")
                    .await
                    .expect("list")
                    .keys
                    .is_empty()
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
