//! Tenants and API keys: the records, the admin operations on them, and the middleware
//! that authenticates every `/v1` request and hands the handler the caller's tenant.
//!
//! Key choices:
//! - A key is `arrw_` + 40 base62 characters from the OS CSPRNG (`getrandom`): about
//!   238 bits, so an unsalted SHA-256 (`sha2`) is an adequate hash. Only the hash is
//!   stored; the key is shown once. The presented key's hash is compared with every
//!   stored hash in constant time (`subtle`), as the edge worker does.
//! - The tenant of a request is the tenant of its key, never a name in the URL, so a
//!   tenant cannot even name another tenant's library: it simply does not exist for it.
//! - Records are JSON objects in the object store under `_system/` (tenants, keys),
//!   which no tenant name can collide with (tenant names are `[a-z0-9_-]{1,64}` and may
//!   not start with `_`). Every key change republishes `_auth/edge-keys.json` (the format
//!   in docs/edge.md) so edge workers accept the same keys.
//! - The operator's tenant is `default`: an `admin` key of `default` manages every
//!   tenant; an `admin` key of another tenant manages only that tenant's keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrwdb_core::storage::DEFAULT_TENANT;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{Mutex, RwLock};

use crate::component::EngineComponent;
use crate::error::ApiError;
use crate::ratelimit::{Budget, Limiters, Rates};
use crate::storage::{ObjectStorage, StorageError};
use crate::tenant::{DurabilityConfig, Role, Tenant};

/// Prefix of tenant records.
const TENANTS_DIR: &str = "_system/tenants";
/// Prefix of key records.
const KEYS_DIR: &str = "_system/keys";
/// The key list edge workers read.
pub const EDGE_KEYS: &str = "_auth/edge-keys.json";
/// Version of the tenant and key records.
const RECORD_VERSION: u32 = 1;
/// Random characters after `arrw_`.
const KEY_CHARS: usize = 40;
/// Id of the key given with `--admin-key` (never stored).
const CONFIGURED_KEY_ID: &str = "k_configured";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Manage tenants and keys.
    Admin,
    /// Everything that logs a record, and snapshots.
    Write,
    /// GET and search.
    Read,
}

/// A tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantRecord {
    pub version: u32,
    pub name: String,
    pub active: bool,
    pub created_at_ms: u64,
    /// Rate limits of this tenant's keys (unset: the server's defaults).
    #[serde(default)]
    pub rates: Rates,
}

/// A stored key: never the key itself, only its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    pub version: u32,
    pub id: String,
    pub tenant: String,
    pub sha256: String,
    pub scopes: Vec<Scope>,
    #[serde(default)]
    pub name: Option<String>,
    pub created_at_ms: u64,
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    #[serde(default)]
    pub revoked_at_ms: Option<u64>,
    #[serde(default)]
    pub last_used_at_ms: Option<u64>,
}

/// A key as the admin API shows it (without the hash).
#[derive(Debug, Serialize)]
pub struct KeyView {
    pub id: String,
    pub tenant: String,
    pub scopes: Vec<Scope>,
    pub name: Option<String>,
    pub created_at_ms: u64,
    pub expires_at_ms: Option<u64>,
    pub revoked_at_ms: Option<u64>,
    pub last_used_at_ms: Option<u64>,
    /// Only in the answer that creates the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl KeyRecord {
    fn view(&self, key: Option<String>) -> KeyView {
        KeyView {
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            scopes: self.scopes.clone(),
            name: self.name.clone(),
            created_at_ms: self.created_at_ms,
            expires_at_ms: self.expires_at_ms,
            revoked_at_ms: self.revoked_at_ms,
            last_used_at_ms: self.last_used_at_ms,
            key,
        }
    }
}

/// `POST /v1/admin/tenants/{t}/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    pub scopes: Vec<Scope>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
}

/// Who is calling: the key's tenant (already started) and what the key may do.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_name: String,
    pub tenant: Arc<Tenant>,
    pub key_id: Option<String>,
    pub scopes: Vec<Scope>,
}

impl Caller {
    /// Whether this caller may manage `tenant`'s keys.
    pub fn may_manage(&self, tenant: &str) -> bool {
        self.scopes.contains(&Scope::Admin)
            && (self.tenant_name == DEFAULT_TENANT || self.tenant_name == tenant)
    }

    /// Whether this caller may manage tenants themselves.
    pub fn is_operator(&self) -> bool {
        self.may_manage(DEFAULT_TENANT) && self.tenant_name == DEFAULT_TENANT
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase hex SHA-256 of the key's UTF-8 bytes.
pub fn hash_key(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

/// `n` random base62 characters from the OS CSPRNG (rejection sampling: no bias).
fn random_base62(n: usize) -> Result<String, ApiError> {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let mut buf = [0u8; 64];
        getrandom::fill(&mut buf)
            .map_err(|e| ApiError::internal(format!("the OS random generator failed: {e}")))?;
        for b in buf {
            if out.len() < n && b < 248 {
                out.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
    }
    Ok(out)
}

/// A new API key.
fn new_key() -> Result<String, ApiError> {
    Ok(format!("arrw_{}", random_base62(KEY_CHARS)?))
}

/// Tenant names: `[a-z0-9_-]{1,64}`, not starting with `_` (reserved for `_system`,
/// `_auth`).
pub fn validate_tenant_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "tenant name must be 1 to 64 characters of a-z, 0-9, `_` or `-`, not starting with `_`, got {name:?}"
        )))
    }
}

fn storage_error(e: StorageError) -> ApiError {
    ApiError::unavailable(e.to_string())
}

/// Every running tenant: the default one, started at boot, and the others, started
/// (and loaded from storage) on their first request.
#[derive(Debug)]
pub struct Tenants {
    component: Arc<EngineComponent>,
    storage: ObjectStorage,
    role: Role,
    config: DurabilityConfig,
    default: Arc<Tenant>,
    others: Mutex<BTreeMap<String, Arc<Tenant>>>,
}

impl Tenants {
    /// The registry around the already started default tenant.
    pub fn new(
        component: Arc<EngineComponent>,
        storage: ObjectStorage,
        role: Role,
        config: DurabilityConfig,
        default: Arc<Tenant>,
    ) -> Self {
        Tenants {
            component,
            storage,
            role,
            config,
            default,
            others: Mutex::new(BTreeMap::new()),
        }
    }

    /// The tenant `name`, started and loaded.
    ///
    /// # Errors
    /// 503 while the default tenant loads or when storage fails.
    pub async fn get(&self, name: &str) -> Result<Arc<Tenant>, ApiError> {
        if name == DEFAULT_TENANT {
            return Ok(self.default.clone());
        }
        let mut others = self.others.lock().await;
        if let Some(tenant) = others.get(name) {
            return Ok(tenant.clone());
        }
        let tenant = Tenant::start(
            name,
            self.component.clone(),
            self.storage.clone(),
            self.role.clone(),
            self.config.clone(),
        );
        tenant.load().await.map_err(ApiError::from)?;
        others.insert(name.into(), tenant.clone());
        Ok(tenant)
    }

    /// Snapshots every changed library of every running tenant (on shutdown).
    pub async fn snapshot_all(&self) {
        self.default.snapshot_all().await;
        let others: Vec<Arc<Tenant>> = self.others.lock().await.values().cloned().collect();
        for tenant in others {
            tenant.snapshot_all().await;
        }
    }
}

/// Tenant and key records, cached in memory and written through to storage.
#[derive(Debug, Default)]
struct Records {
    tenants: BTreeMap<String, TenantRecord>,
    keys: BTreeMap<String, KeyRecord>,
    /// When `last_used_at_ms` of a key was last written to storage.
    persisted_use: BTreeMap<String, u64>,
}

/// Authentication and the tenant/key records.
#[derive(Debug)]
pub struct Auth {
    /// `false` with `--no-auth`: every request is the default tenant with every scope.
    pub enabled: bool,
    storage: ObjectStorage,
    records: RwLock<Records>,
    /// Hash of the `--admin-key` key.
    configured: Option<String>,
    pub tenants: Tenants,
    /// Default rate limits per key (`--search-rate`, `--write-rate`).
    default_rates: Rates,
    limiters: Limiters,
}

impl Auth {
    /// Loads the records from storage. Without a configured admin key and without a
    /// stored admin key of the default tenant, creates one and returns it (to print
    /// once).
    ///
    /// # Errors
    /// Storage failures, undecodable records, a configured key that is too short.
    pub async fn open(
        storage: ObjectStorage,
        tenants: Tenants,
        enabled: bool,
        admin_key: Option<&str>,
        default_rates: Rates,
    ) -> anyhow::Result<(Self, Option<String>)> {
        if let Some(key) = admin_key
            && key.len() < 32
        {
            anyhow::bail!("the admin key must be at least 32 characters (use a random one)");
        }
        // Storage that fails now may answer in a moment (as the library loader does).
        let mut attempt = 0;
        let records = loop {
            match load_records(&storage).await {
                Ok(records) => break records,
                Err(e) if attempt < 50 => {
                    attempt += 1;
                    tracing::warn!(error = %e, "loading tenants and keys failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let auth = Auth {
            enabled,
            storage,
            records: RwLock::new(records),
            configured: admin_key.map(hash_key),
            tenants,
            default_rates,
            limiters: Limiters::default(),
        };
        // The default tenant always exists; it is stored only once changed.
        auth.records
            .write()
            .await
            .tenants
            .entry(DEFAULT_TENANT.into())
            .or_insert_with(|| TenantRecord {
                version: RECORD_VERSION,
                name: DEFAULT_TENANT.into(),
                active: true,
                created_at_ms: now_ms(),
                rates: Rates::default(),
            });
        let has_admin = auth.records.read().await.keys.values().any(|k| {
            k.tenant == DEFAULT_TENANT
                && k.scopes.contains(&Scope::Admin)
                && k.revoked_at_ms.is_none()
        });
        let mut created = None;
        let writer = matches!(auth.tenants.role, Role::Writer { .. });
        if enabled && writer && admin_key.is_none() && !has_admin {
            let (key, _) = auth
                .create_key(
                    DEFAULT_TENANT,
                    CreateKeyRequest {
                        scopes: vec![Scope::Admin, Scope::Write, Scope::Read],
                        name: Some("bootstrap admin".into()),
                        expires_at_ms: None,
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
            created = Some(key);
        }
        Ok((auth, created))
    }

    async fn put_tenant(&self, record: TenantRecord) -> Result<(), ApiError> {
        let bytes = serde_json::to_vec(&record).map_err(|e| ApiError::internal(e.to_string()))?;
        self.storage
            .put(&format!("{TENANTS_DIR}/{}.json", record.name), bytes)
            .await
            .map_err(storage_error)?;
        self.records
            .write()
            .await
            .tenants
            .insert(record.name.clone(), record);
        Ok(())
    }

    async fn put_key(&self, record: KeyRecord) -> Result<(), ApiError> {
        let bytes = serde_json::to_vec(&record).map_err(|e| ApiError::internal(e.to_string()))?;
        self.storage
            .put(&format!("{KEYS_DIR}/{}.json", record.id), bytes)
            .await
            .map_err(storage_error)?;
        self.records
            .write()
            .await
            .keys
            .insert(record.id.clone(), record);
        self.publish_edge_keys().await
    }

    /// Writes `_auth/edge-keys.json`: every live key with `read` or `write`.
    async fn publish_edge_keys(&self) -> Result<(), ApiError> {
        let now = now_ms();
        let keys: Vec<serde_json::Value> = {
            let records = self.records.read().await;
            records
                .keys
                .values()
                .filter(|k| k.revoked_at_ms.is_none() && k.expires_at_ms.is_none_or(|t| t > now))
                .filter(|k| records.tenants.get(&k.tenant).is_some_and(|t| t.active))
                .filter_map(|k| {
                    let scopes: Vec<Scope> = k
                        .scopes
                        .iter()
                        .copied()
                        .filter(|s| *s != Scope::Admin)
                        .collect();
                    (!scopes.is_empty()).then(|| {
                        serde_json::json!({
                            "id": k.id, "sha256": k.sha256, "scopes": scopes,
                            "tenant": k.tenant, "expires_at_ms": k.expires_at_ms,
                        })
                    })
                })
                .collect()
        };
        let list = serde_json::json!({"version": 1, "keys": keys});
        let bytes = serde_json::to_vec(&list).map_err(|e| ApiError::internal(e.to_string()))?;
        self.storage
            .put(EDGE_KEYS, bytes)
            .await
            .map_err(storage_error)
    }

    /// Creates a tenant.
    ///
    /// # Errors
    /// 400 for a bad name, 409 if it exists, 503 if storage fails.
    pub async fn create_tenant(&self, name: &str, rates: Rates) -> Result<TenantRecord, ApiError> {
        validate_tenant_name(name)?;
        if self.records.read().await.tenants.contains_key(name) {
            return Err(ApiError::conflict(format!(
                "tenant `{name}` already exists"
            )));
        }
        let record = TenantRecord {
            version: RECORD_VERSION,
            name: name.into(),
            active: true,
            created_at_ms: now_ms(),
            rates,
        };
        self.put_tenant(record.clone()).await?;
        Ok(record)
    }

    /// Every tenant.
    pub async fn list_tenants(&self) -> Vec<TenantRecord> {
        self.records
            .read()
            .await
            .tenants
            .values()
            .cloned()
            .collect()
    }

    /// One tenant.
    ///
    /// # Errors
    /// 404 if unknown.
    pub async fn tenant(&self, name: &str) -> Result<TenantRecord, ApiError> {
        self.records
            .read()
            .await
            .tenants
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("tenant `{name}` does not exist")))
    }

    /// Replaces a tenant's rate limits. They apply to the next request of each of its
    /// keys (the limiters read the record per request; a changed rate starts a fresh,
    /// full bucket).
    ///
    /// # Errors
    /// 404 if unknown, 503 if storage fails.
    pub async fn set_tenant_rates(
        &self,
        name: &str,
        rates: Rates,
    ) -> Result<TenantRecord, ApiError> {
        let mut record = self.tenant(name).await?;
        record.rates = rates;
        self.put_tenant(record.clone()).await?;
        tracing::info!(tenant = %name, ?rates, "tenant rates changed");
        Ok(record)
    }

    /// Deactivates a tenant: its keys stop working (403). Its data stays.
    ///
    /// # Errors
    /// 404 if unknown, 400 for the default tenant, 503 if storage fails.
    pub async fn deactivate_tenant(&self, name: &str) -> Result<TenantRecord, ApiError> {
        if name == DEFAULT_TENANT {
            return Err(ApiError::invalid(
                "the default tenant cannot be deactivated",
            ));
        }
        let mut record = self.tenant(name).await?;
        record.active = false;
        self.put_tenant(record.clone()).await?;
        self.publish_edge_keys().await?;
        Ok(record)
    }

    /// Creates a key of `tenant`; returns the key (shown once) and its record.
    ///
    /// # Errors
    /// 404 for an unknown tenant, 400 for no scopes, 503 if storage fails.
    pub async fn create_key(
        &self,
        tenant: &str,
        request: CreateKeyRequest,
    ) -> Result<(String, KeyView), ApiError> {
        self.tenant(tenant).await?;
        if request.scopes.is_empty() {
            return Err(ApiError::invalid("a key needs at least one scope"));
        }
        let mut scopes = request.scopes;
        scopes.sort();
        scopes.dedup();
        let key = new_key()?;
        let record = KeyRecord {
            version: RECORD_VERSION,
            id: format!("k_{}", random_base62(12)?),
            tenant: tenant.into(),
            sha256: hash_key(&key),
            scopes,
            name: request.name,
            created_at_ms: now_ms(),
            expires_at_ms: request.expires_at_ms,
            revoked_at_ms: None,
            last_used_at_ms: None,
        };
        let view = record.view(Some(key.clone()));
        self.put_key(record).await?;
        Ok((key, view))
    }

    /// Every key of `tenant`.
    pub async fn list_keys(&self, tenant: &str) -> Vec<KeyView> {
        self.records
            .read()
            .await
            .keys
            .values()
            .filter(|k| k.tenant == tenant)
            .map(|k| k.view(None))
            .collect()
    }

    /// One key record.
    ///
    /// # Errors
    /// 404 if unknown.
    pub async fn key(&self, id: &str) -> Result<KeyRecord, ApiError> {
        self.records
            .read()
            .await
            .keys
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("key `{id}` does not exist")))
    }

    /// Revokes a key (it answers 401 from now on).
    ///
    /// # Errors
    /// 404 if unknown, 503 if storage fails.
    pub async fn revoke_key(&self, id: &str) -> Result<KeyView, ApiError> {
        let mut record = self.key(id).await?;
        if record.revoked_at_ms.is_none() {
            record.revoked_at_ms = Some(now_ms());
            self.put_key(record.clone()).await?;
        }
        Ok(record.view(None))
    }

    /// Replaces a key by a new one with the same tenant, scopes and expiry, and
    /// revokes the old one.
    ///
    /// # Errors
    /// 404 if unknown, 503 if storage fails.
    pub async fn rotate_key(&self, id: &str) -> Result<KeyView, ApiError> {
        let old = self.key(id).await?;
        let (_, view) = self
            .create_key(
                &old.tenant,
                CreateKeyRequest {
                    scopes: old.scopes.clone(),
                    name: old.name.clone(),
                    expires_at_ms: old.expires_at_ms,
                },
            )
            .await?;
        self.revoke_key(id).await?;
        Ok(view)
    }

    /// Finds the key `presented` (constant-time against every stored hash) and checks
    /// it is live and its tenant active.
    async fn authenticate(
        &self,
        presented: &str,
    ) -> Result<(String, Option<String>, Vec<Scope>), ApiError> {
        let hash = hash_key(presented);
        if let Some(configured) = &self.configured
            && bool::from(configured.as_bytes().ct_eq(hash.as_bytes()))
        {
            return Ok((
                DEFAULT_TENANT.into(),
                Some(CONFIGURED_KEY_ID.into()),
                vec![Scope::Admin, Scope::Write, Scope::Read],
            ));
        }
        let now = now_ms();
        let found = {
            let records = self.records.read().await;
            let mut found = None;
            for record in records.keys.values() {
                if bool::from(record.sha256.as_bytes().ct_eq(hash.as_bytes())) {
                    found = Some(record.clone());
                }
            }
            found.map(|k| {
                let active = records.tenants.get(&k.tenant).is_some_and(|t| t.active);
                (k, active)
            })
        };
        let Some((record, active)) = found else {
            return Err(unauthorized("the API key is not valid"));
        };
        if record.revoked_at_ms.is_some() {
            return Err(unauthorized("the API key has been revoked"));
        }
        if record.expires_at_ms.is_some_and(|t| t <= now) {
            return Err(unauthorized("the API key has expired"));
        }
        if !active {
            return Err(forbidden(&format!(
                "tenant `{}` is deactivated",
                record.tenant
            )));
        }
        self.touch(&record.id, now).await;
        Ok((record.tenant, Some(record.id), record.scopes))
    }

    /// Records `last_used_at_ms`; writes it to storage at most once a minute per key.
    async fn touch(&self, id: &str, now: u64) {
        let persist = {
            let mut records = self.records.write().await;
            let Some(record) = records.keys.get_mut(id) else {
                return;
            };
            record.last_used_at_ms = Some(now);
            let record = record.clone();
            let last = records.persisted_use.get(id).copied().unwrap_or(0);
            if now.saturating_sub(last) >= 60_000 {
                records.persisted_use.insert(id.into(), now);
                Some(record)
            } else {
                None
            }
        };
        if let Some(record) = persist
            && let Ok(bytes) = serde_json::to_vec(&record)
        {
            let storage = self.storage.clone();
            tokio::spawn(async move {
                let key = format!("{KEYS_DIR}/{}.json", record.id);
                if let Err(e) = storage.put(&key, bytes).await {
                    tracing::warn!(error = %e, "could not record when a key was last used");
                }
            });
        }
    }
}

fn retry_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

fn rate_limited(secs: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("this API key is over its rate limit; retry in {secs} s"),
    )
}

impl Auth {
    /// Spends one request of `caller`'s search (`Read`) or write budget, for requests
    /// that arrive inside an already admitted connection (WebSocket messages).
    ///
    /// # Errors
    /// 429 `rate_limited` saying when to retry.
    pub async fn spend_request(&self, caller: &Caller, needed: Scope) -> Result<(), ApiError> {
        if !self.enabled || needed == Scope::Admin {
            return Ok(());
        }
        self.spend(caller, needed)
            .await
            .map_err(|wait| rate_limited(retry_secs(wait)))
    }

    /// Spends one request of the caller's search or write budget.
    async fn spend(&self, caller: &Caller, needed: Scope) -> Result<(), std::time::Duration> {
        let Some(key) = &caller.key_id else {
            return Ok(());
        };
        let overrides = self
            .records
            .read()
            .await
            .tenants
            .get(&caller.tenant_name)
            .map(|t| t.rates)
            .unwrap_or_default();
        let (budget, rate) = if needed == Scope::Read {
            (
                Budget::Search,
                overrides
                    .search_per_sec
                    .or(self.default_rates.search_per_sec),
            )
        } else {
            (
                Budget::Write,
                overrides.write_per_sec.or(self.default_rates.write_per_sec),
            )
        };
        self.limiters.check(budget, rate, key)
    }
}

/// Reads every tenant and key record.
async fn load_records(storage: &ObjectStorage) -> anyhow::Result<Records> {
    let mut records = Records::default();
    for key in storage.list_after(TENANTS_DIR, "").await? {
        let record: TenantRecord = serde_json::from_slice(&storage.get(&key).await?)
            .map_err(|e| anyhow::anyhow!("cannot decode {key}: {e}"))?;
        records.tenants.insert(record.name.clone(), record);
    }
    for key in storage.list_after(KEYS_DIR, "").await? {
        let record: KeyRecord = serde_json::from_slice(&storage.get(&key).await?)
            .map_err(|e| anyhow::anyhow!("cannot decode {key}: {e}"))?;
        records.keys.insert(record.id.clone(), record);
    }
    Ok(records)
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

fn forbidden(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// The key of a request: `Authorization: Bearer <key>` or `X-API-Key: <key>`.
fn presented_key(request: &Request) -> Option<String> {
    let headers = request.headers();
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let mut parts = value.trim().splitn(2, ' ');
        if let (Some(scheme), Some(token)) = (parts.next(), parts.next())
            && scheme.eq_ignore_ascii_case("bearer")
        {
            return Some(token.trim().to_string());
        }
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
}

/// The scope a route needs: admin routes `admin`; GET and search `read`; the rest
/// `write`.
fn needed_scope(method: &Method, path: &str) -> Scope {
    if path.starts_with("/v1/admin") {
        Scope::Admin
    } else if method == Method::GET || method == Method::HEAD || path.ends_with("/search") {
        Scope::Read
    } else {
        Scope::Write
    }
}

/// Middleware of every `/v1` route: authenticates, checks the scope, starts the
/// caller's tenant and puts a [`Caller`] into the request's extensions.
pub async fn require_key(
    State(auth): State<Arc<Auth>>,
    mut request: Request,
    next: Next,
) -> Response {
    if !request.uri().path().starts_with("/v1/") {
        return next.run(request).await;
    }
    let key = presented_key(&request);
    let needed = needed_scope(request.method(), request.uri().path());
    match caller(&auth, key, needed).await {
        Ok(caller) if needed != Scope::Admin && auth.enabled => {
            if let Err(wait) = auth.spend(&caller, needed).await {
                let secs = retry_secs(wait);
                let mut response = rate_limited(secs).into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, secs.into());
                return response;
            }
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Ok(caller) => {
            tracing::debug!(tenant = %caller.tenant_name, key = ?caller.key_id, "authenticated");
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

async fn caller(auth: &Auth, key: Option<String>, needed: Scope) -> Result<Caller, ApiError> {
    let (tenant_name, key_id, scopes) = if auth.enabled {
        let Some(key) = key else {
            return Err(unauthorized(
                "an API key is required: `Authorization: Bearer <key>` or `X-API-Key: <key>`",
            ));
        };
        auth.authenticate(&key).await?
    } else {
        (
            DEFAULT_TENANT.to_string(),
            None,
            vec![Scope::Admin, Scope::Write, Scope::Read],
        )
    };
    if !scopes.contains(&needed) {
        let needed = match needed {
            Scope::Admin => "admin",
            Scope::Write => "write",
            Scope::Read => "read",
        };
        return Err(forbidden(&format!(
            "this API key lacks the `{needed}` scope"
        )));
    }
    let tenant = auth.tenants.get(&tenant_name).await?;
    Ok(Caller {
        tenant_name,
        tenant,
        key_id,
        scopes,
    })
}
