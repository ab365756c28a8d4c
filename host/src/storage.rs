//! Object storage for the host: a local directory, memory, or any S3-compatible
//! service, all through `object_store`, with the object layout of
//! `arrwdb_core::storage`.
//!
//! Durability rule: a WAL segment is created with `PutMode::Create` (put-if-absent:
//! `If-None-Match: *` on S3, a hard link on a local directory), so whoever creates
//! `wal/N` owns log positions `N..`. SeaweedFS honours `If-None-Match: *` (verified
//! against 4.48: the second conditional PUT of a key answers 412, which object_store
//! reports as `AlreadyExists`). The local-directory backend does not fsync: an
//! acknowledged write survives a process crash, not a power loss.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt as _;
use object_store::aws::AmazonS3Builder;
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
    /// Every key under the library's prefix (including unrecognized ones).
    pub keys: Vec<String>,
}

/// The configured object store.
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    description: String,
}

impl ObjectStorage {
    /// Opens `spec`: a directory path or `file:///abs/path` (created if missing),
    /// `memory://`, or `s3://bucket[/prefix]` configured from the environment
    /// (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// region `us-east-1` by default, plain HTTP allowed when the endpoint is `http://`).
    ///
    /// # Errors
    /// An unsupported scheme, a directory that cannot be created, or an incomplete S3
    /// configuration.
    pub fn open(spec: &str) -> anyhow::Result<Self> {
        if spec == "memory://" || spec == "memory:" {
            return Ok(ObjectStorage {
                store: Arc::new(InMemory::new()),
                description: spec.into(),
            });
        }
        if let Some(rest) = spec.strip_prefix("s3://") {
            return Self::open_s3(rest);
        }
        let dir = match spec.strip_prefix("file://") {
            Some(path) if path.starts_with('/') => path,
            Some(_) => {
                anyhow::bail!("`{spec}`: a file URL needs an absolute path (file:///abs/path)")
            }
            None if spec.contains("://") => anyhow::bail!(
                "unsupported storage `{spec}`: use a directory, file:///abs/path, memory:// or s3://bucket/prefix"
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
        })
    }

    fn open_s3(rest: &str) -> anyhow::Result<Self> {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        anyhow::ensure!(
            !bucket.is_empty(),
            "s3 storage needs a bucket: s3://bucket/prefix"
        );
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
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        let at = endpoint.map(|e| format!(" at {e}")).unwrap_or_default();
        Ok(ObjectStorage {
            store,
            description: format!("s3://{rest}{at}"),
        })
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
                    _ => {}
                }
            }
            objects.keys.push(key);
        }
        objects.segments.sort_unstable();
        objects.snapshots.sort_unstable();
        objects.keys.sort();
        Ok(objects)
    }

    /// Reads a whole object.
    ///
    /// # Errors
    /// [`StorageError::Failed`], including for a missing key.
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
            .map_err(failed(key))
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
            .map_err(failed(key))
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

#[cfg(test)]
mod tests {
    use super::*;

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
