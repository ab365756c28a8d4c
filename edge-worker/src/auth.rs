//! API keys at the edge: the host publishes a list of *hashed* keys to the bucket
//! (`{root}/_auth/edge-keys.json`), and every edge request presents a key
//! (`Authorization: Bearer …` or `X-API-Key: …`) whose SHA-256 must be in it, with the
//! scope the request needs (`read` for GET and search, `write` for everything that
//! logs a record) and not past its expiry.
//!
//! Why a published hash list rather than signed tokens: revoking a key is one PUT of
//! the list (an edge reads it on every request, since instances live for one request),
//! no signing secret has to reach the edge, and a leaked bucket reveals hashes of
//! high-entropy random keys, not keys. The cost is one small GET per request.
//! Comparison runs in constant time over every entry (`subtle`), so timing does not
//! reveal how much of a hash matched.
//!
//! ```json
//! {"version": 1, "keys": [
//!   {"id": "k1", "sha256": "<64 hex digits of sha256(key)>", "scopes": ["read", "write"],
//!    "tenant": "default", "expires_at_ms": 1893456000000}
//! ]}
//! ```

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{ObjectStore, StoreError};

/// Key of the published key list, relative to the store's root.
pub const KEYS_KEY: &str = "_auth/edge-keys.json";
/// The key-list format version this build reads.
pub const KEYS_VERSION: u16 = 1;

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Reads: GET, search.
    Read,
    /// Writes: anything that appends a WAL record.
    Write,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }
}

/// The published key list.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyList {
    /// Format version ([`KEYS_VERSION`]).
    pub version: u16,
    /// The keys.
    pub keys: Vec<KeyEntry>,
}

/// One key, as the host publishes it.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyEntry {
    /// A name for logs and operators (never the key).
    pub id: String,
    /// Lowercase hex SHA-256 of the key.
    pub sha256: String,
    /// `read`, `write`.
    pub scopes: Vec<String>,
    /// The tenant whose libraries the key reaches.
    pub tenant: String,
    /// Expiry in milliseconds since the Unix epoch, if any.
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No key, or a key not in the list, or an expired one (HTTP 401).
    #[error("{0}")]
    Unauthorized(String),
    /// A valid key without the scope or tenant the request needs (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// The key list cannot be read (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
}

/// Lowercase hex SHA-256 of a presented key.
pub fn key_hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The key a request presents: `Authorization: Bearer KEY`, else `X-API-Key: KEY`.
pub fn presented_key<'a>(
    authorization: Option<&'a str>,
    api_key: Option<&'a str>,
) -> Option<&'a str> {
    authorization
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .or(api_key)
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

impl KeyList {
    /// Decodes a published list.
    ///
    /// # Errors
    /// `Unavailable` for malformed JSON or an unknown version.
    pub fn from_json(bytes: &[u8]) -> Result<Self, AuthError> {
        let list: KeyList = serde_json::from_slice(bytes)
            .map_err(|e| AuthError::Unavailable(format!("{KEYS_KEY} is malformed: {e}")))?;
        if list.version != KEYS_VERSION {
            return Err(AuthError::Unavailable(format!(
                "{KEYS_KEY} has version {}, this edge reads version {KEYS_VERSION}",
                list.version
            )));
        }
        Ok(list)
    }

    /// Checks a presented key for `scope` on `tenant` at `now_ms`; returns the key's id.
    ///
    /// # Errors
    /// `Unauthorized` for a missing, unknown or expired key, `Forbidden` for a key
    /// without the scope or for another tenant.
    pub fn check(
        &self,
        key: Option<&str>,
        scope: Scope,
        tenant: &str,
        now_ms: u64,
    ) -> Result<&str, AuthError> {
        let Some(key) = key else {
            return Err(AuthError::Unauthorized(
                "an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"
                    .into(),
            ));
        };
        let hash = key_hash(key);
        // Every entry is compared, in constant time, whatever matches.
        let mut found: Option<&KeyEntry> = None;
        for entry in &self.keys {
            let stored = entry.sha256.to_ascii_lowercase();
            if bool::from(stored.as_bytes().ct_eq(hash.as_bytes())) {
                found = Some(entry);
            }
        }
        let Some(entry) = found else {
            return Err(AuthError::Unauthorized("unknown API key".into()));
        };
        if entry.expires_at_ms.is_some_and(|at| at <= now_ms) {
            return Err(AuthError::Unauthorized(format!(
                "API key `{}` has expired",
                entry.id
            )));
        }
        if entry.tenant != tenant {
            return Err(AuthError::Forbidden(format!(
                "API key `{}` belongs to another tenant",
                entry.id
            )));
        }
        if !entry.scopes.iter().any(|s| s == scope.name()) {
            return Err(AuthError::Forbidden(format!(
                "API key `{}` lacks the `{}` scope",
                entry.id,
                scope.name()
            )));
        }
        Ok(&entry.id)
    }
}

/// Reads the published list from `store` and checks `key`.
///
/// # Errors
/// As [`KeyList::check`]; `Unavailable` when the list is missing or unreadable.
pub fn authorize(
    store: &dyn ObjectStore,
    key: Option<&str>,
    scope: Scope,
    tenant: &str,
    now_ms: u64,
) -> Result<String, AuthError> {
    let bytes = match crate::timing::time("auth", || store.get(KEYS_KEY)) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return Err(AuthError::Unavailable(format!(
                "no API keys are published for this edge ({KEYS_KEY} is missing in {}); the host publishes it, or set ARRWDB_EDGE_AUTH=off for local development",
                store.describe()
            )));
        }
        Err(StoreError::Unavailable(m)) => return Err(AuthError::Unavailable(m)),
        Err(e) => return Err(AuthError::Unavailable(e.to_string())),
    };
    let list = KeyList::from_json(&bytes)?;
    list.check(key, scope, tenant, now_ms).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> KeyList {
        let json = format!(
            r#"{{"version":1,"keys":[
                {{"id":"reader","sha256":"{}","scopes":["read"],"tenant":"default"}},
                {{"id":"writer","sha256":"{}","scopes":["read","write"],"tenant":"default","expires_at_ms":2000}},
                {{"id":"other","sha256":"{}","scopes":["read","write"],"tenant":"acme"}}
            ]}}"#,
            key_hash("arrw_read"),
            key_hash("arrw_write").to_uppercase(),
            key_hash("arrw_other"),
        );
        KeyList::from_json(json.as_bytes()).expect("list")
    }

    #[test]
    fn keys_are_checked_for_scope_tenant_and_expiry() {
        let l = list();
        let t = "default";
        assert_eq!(l.check(Some("arrw_read"), Scope::Read, t, 0), Ok("reader"));
        assert!(matches!(
            l.check(Some("arrw_read"), Scope::Write, t, 0),
            Err(AuthError::Forbidden(m)) if m.contains("write")
        ));
        assert_eq!(
            l.check(Some("arrw_write"), Scope::Write, t, 1999),
            Ok("writer")
        );
        assert!(matches!(
            l.check(Some("arrw_write"), Scope::Read, t, 2000),
            Err(AuthError::Unauthorized(m)) if m.contains("expired")
        ));
        assert!(matches!(
            l.check(Some("arrw_other"), Scope::Read, t, 0),
            Err(AuthError::Forbidden(_))
        ));
        assert!(matches!(
            l.check(Some("nope"), Scope::Read, t, 0),
            Err(AuthError::Unauthorized(_))
        ));
        assert!(matches!(
            l.check(None, Scope::Read, t, 0),
            Err(AuthError::Unauthorized(_))
        ));
    }

    #[test]
    fn keys_come_from_either_header() {
        assert_eq!(presented_key(Some("Bearer k1"), Some("k2")), Some("k1"));
        assert_eq!(presented_key(Some("Basic xx"), Some("k2")), Some("k2"));
        assert_eq!(presented_key(None, Some(" ")), None);
        assert_eq!(
            key_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn malformed_lists_are_refused() {
        assert!(KeyList::from_json(b"{").is_err());
        assert!(KeyList::from_json(br#"{"version":2,"keys":[]}"#).is_err());
    }

    proptest::proptest! {
        /// The list decoder reads outside bytes: it never panics.
        #[test]
        fn key_list_decoder_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            if let Ok(list) = KeyList::from_json(&bytes) {
                let _ = list.check(Some("k"), Scope::Read, "default", 0);
            }
        }
    }
}
