//! Where the edge worker's data lives and whether requests need an API key, read per
//! request (instances are per request anyway) from the environment — `wasmtime serve
//! -Scli --env KEY=VALUE` — or, in a build with the `spin` feature, from Spin
//! variables of the same names in lowercase (`s3_endpoint`, …), falling back to the
//! environment.
//!
//! | name | meaning |
//! |---|---|
//! | `ARRWDB_S3_ENDPOINT` | S3 endpoint URL (`https://s3.us-east-1.amazonaws.com`, `http://127.0.0.1:8333`); set → the S3 backend |
//! | `ARRWDB_S3_BUCKET` | bucket (required with an endpoint) |
//! | `ARRWDB_S3_PREFIX` | key prefix inside the bucket (the host's `s3://bucket/prefix`), optional |
//! | `ARRWDB_S3_REGION` | signing region, default `us-east-1` |
//! | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` | credentials (token optional) |
//! | `ARRWDB_S3_RANGE_MB` | objects are read in concurrent ranges of this size, default 8 |
//! | `ARRWDB_DATA_DIR` | directory backend (default `/data`) when no endpoint is set |
//! | `ARRWDB_EDGE_AUTH` | `off` disables API keys (local development only) |

use crate::s3::S3Config;

/// The storage backend a request uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A directory the runtime mounts.
    Dir(String),
    /// An S3-compatible bucket over outbound wasi:http.
    S3(S3Config),
}

/// Everything a request needs to know about its deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeConfig {
    /// Where libraries are stored.
    pub backend: Backend,
    /// Whether requests must present an API key from the published key list.
    pub auth: bool,
}

/// Reads one setting: a Spin variable (lowercase name, `spin` builds only), else the
/// environment. Empty values count as unset.
pub fn setting(name: &str) -> Option<String> {
    #[cfg(all(feature = "spin", target_arch = "wasm32"))]
    if let Ok(value) = spin_sdk::variables::get(&name.to_ascii_lowercase())
        && !value.is_empty()
    {
        return Some(value);
    }
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl EdgeConfig {
    /// Reads the configuration through `get` (normally [`setting`]).
    ///
    /// # Errors
    /// A message naming the missing setting (an endpoint without a bucket or
    /// credentials).
    pub fn from_settings(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let auth = !get("ARRWDB_EDGE_AUTH").is_some_and(|v| v.eq_ignore_ascii_case("off"));
        let backend = match get("ARRWDB_S3_ENDPOINT") {
            Some(endpoint) => {
                let need = |name: &str| {
                    get(name).ok_or_else(|| format!("ARRWDB_S3_ENDPOINT is set but {name} is not"))
                };
                Backend::S3(S3Config {
                    endpoint,
                    bucket: need("ARRWDB_S3_BUCKET")?,
                    prefix: get("ARRWDB_S3_PREFIX")
                        .map(|p| p.trim_matches('/').to_owned())
                        .unwrap_or_default(),
                    region: get("ARRWDB_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
                    access_key: need("AWS_ACCESS_KEY_ID")?,
                    secret_key: need("AWS_SECRET_ACCESS_KEY")?,
                    session_token: get("AWS_SESSION_TOKEN"),
                    range_bytes: get("ARRWDB_S3_RANGE_MB")
                        .and_then(|m| m.parse::<usize>().ok())
                        .map_or(crate::s3::RANGE, |m| m.saturating_mul(1 << 20)),
                })
            }
            None => Backend::Dir(
                get("ARRWDB_DATA_DIR").unwrap_or_else(|| crate::store::DEFAULT_DATA_DIR.into()),
            ),
        };
        Ok(EdgeConfig { backend, auth })
    }

    /// Reads the configuration of this deployment.
    ///
    /// # Errors
    /// As [`EdgeConfig::from_settings`].
    pub fn load() -> Result<Self, String> {
        Self::from_settings(setting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<EdgeConfig, String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        EdgeConfig::from_settings(|k| map.get(k).cloned())
    }

    #[test]
    fn picks_the_backend_from_the_settings() {
        let dir = from(&[]).expect("defaults");
        assert_eq!(dir.backend, Backend::Dir("/data".into()));
        assert!(dir.auth, "auth is on unless turned off");
        assert!(!from(&[("ARRWDB_EDGE_AUTH", "OFF")]).expect("off").auth);

        let s3 = from(&[
            ("ARRWDB_S3_ENDPOINT", "http://127.0.0.1:8333"),
            ("ARRWDB_S3_BUCKET", "b"),
            ("ARRWDB_S3_PREFIX", "/edge/"),
            ("AWS_ACCESS_KEY_ID", "k"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ])
        .expect("s3");
        let Backend::S3(s3) = s3.backend else {
            panic!("not s3")
        };
        assert_eq!(
            (s3.prefix.as_str(), s3.region.as_str()),
            ("edge", "us-east-1")
        );

        let missing = from(&[
            ("ARRWDB_S3_ENDPOINT", "http://x"),
            ("ARRWDB_S3_BUCKET", "b"),
        ]);
        assert!(missing.is_err_and(|e| e.contains("AWS_ACCESS_KEY_ID")));
    }
}
