//! The S3 backend: S3 API requests signed with SigV4 by `rusty-s3` (sans-I/O: it only
//! turns an action plus credentials into a presigned URL, so it builds for
//! `wasm32-wasip2` and takes its clock from `std::time::SystemTime`, which wasip2
//! provides), sent over outbound wasi:http through spin-sdk. Works with AWS and any
//! S3-compatible server (R2, MinIO, SeaweedFS); path-style URLs, so custom endpoints
//! need no DNS per bucket.
//!
//! Why presigned URLs rather than an `Authorization` header: that is the form
//! `rusty-s3` signs, and the one header that matters for correctness,
//! `If-None-Match: *`, is part of the signature (`X-Amz-SignedHeaders`), so nothing
//! on the way can drop it unnoticed.
//!
//! Requests of one batch ([`ObjectStore::get_many`]) run concurrently on spin-sdk's
//! executor. Reads are retried once after a transport error or a 5xx; a conditional
//! PUT is never retried blindly (its outcome would be unknown), its failure is a 503.

use std::time::Duration;

use rusty_s3::actions::{ListObjectsV2, ListObjectsV2Response, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};

use crate::store::{ObjectStore, StoreError};

/// How long a signed URL stays valid (it is used at once).
const SIGNED_FOR: Duration = Duration::from_secs(300);
/// Concurrent requests in one batch.
const CONCURRENCY: usize = 16;
/// Objects are read in ranges of this size (`ARRWDB_S3_RANGE_MB`), the ranges of one
/// object concurrently: one stream from an S3 server is slower than several (measured
/// in docs/edge.md).
pub const RANGE: usize = 8 << 20;

/// Where the bucket is and how to sign for it.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `http(s)://host[:port]`.
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// Key prefix inside the bucket, without surrounding slashes (may be empty).
    pub prefix: String,
    /// Signing region.
    pub region: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
    /// Size of the ranges objects are read in.
    pub range_bytes: usize,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// One HTTP exchange, as the transport sees it.
#[derive(Debug, Clone)]
pub struct HttpCall {
    /// `GET`, `PUT` or `DELETE`.
    pub method: &'static str,
    /// The presigned URL.
    pub url: String,
    /// Headers to send (signed ones included).
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Vec<u8>,
}

/// A response: status, body and `Content-Range` (for ranged reads).
#[derive(Debug, Clone, Default)]
pub struct HttpResponse {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
    /// `Content-Range`, if the server sent one.
    pub content_range: Option<String>,
}

/// A response, or why there was none.
pub type HttpResult = Result<HttpResponse, String>;

/// The total size in a `Content-Range: bytes a-b/total` header.
fn range_total(content_range: Option<&str>) -> Option<usize> {
    content_range?.rsplit_once('/')?.1.trim().parse().ok()
}

/// A bucket reached over outbound HTTP.
#[derive(Debug, Clone)]
pub struct S3Store {
    bucket: Bucket,
    credentials: Credentials,
    prefix: String,
    description: String,
    range: usize,
}

impl S3Store {
    /// Checks the settings (no request is made).
    ///
    /// # Errors
    /// `Unavailable` for an endpoint that is not an http(s) URL.
    pub fn new(config: &S3Config) -> Result<Self, StoreError> {
        let bad = |e: &dyn std::fmt::Display| {
            StoreError::Unavailable(format!("ARRWDB_S3_ENDPOINT {:?}: {e}", config.endpoint))
        };
        let endpoint = config.endpoint.parse().map_err(|e| bad(&e))?;
        let bucket = Bucket::new(
            endpoint,
            UrlStyle::Path,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| bad(&e))?;
        let credentials = match &config.session_token {
            Some(token) => Credentials::new_with_token(
                config.access_key.clone(),
                config.secret_key.clone(),
                token.clone(),
            ),
            None => Credentials::new(config.access_key.clone(), config.secret_key.clone()),
        };
        let prefix = if config.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", config.prefix)
        };
        Ok(S3Store {
            range: config.range_bytes.max(64 << 10),
            description: format!("s3://{}/{}", config.bucket, config.prefix),
            bucket,
            credentials,
            prefix,
        })
    }

    fn object(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// A signed GET of bytes `start..end` of `key`.
    fn get_call(&self, key: &str, start: usize, end: usize) -> HttpCall {
        let object = self.object(key);
        let range = format!("bytes={start}-{}", end.saturating_sub(1));
        let mut action = self.bucket.get_object(Some(&self.credentials), &object);
        action.headers_mut().insert("range", range.clone());
        HttpCall {
            method: "GET",
            url: action.sign(SIGNED_FOR).to_string(),
            headers: vec![("range".into(), range)],
            body: Vec::new(),
        }
    }

    /// Reads objects: the first range of each (all of a small object), then the rest
    /// of the large ones, every request of a round concurrently.
    fn read_objects(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut out: Vec<Option<Vec<u8>>> = Vec::with_capacity(keys.len());
        // (object index, start, end) of the ranges still to read.
        let mut rest: Vec<(usize, usize, usize)> = Vec::new();
        for (chunk_at, chunk) in keys.chunks(CONCURRENCY).enumerate() {
            let calls = chunk
                .iter()
                .map(|k| self.get_call(k, 0, self.range))
                .collect();
            for (i, (key, result)) in chunk.iter().zip(send_all(calls)).enumerate() {
                let result = retry_read(result, || self.get_call(key, 0, self.range));
                let first = first_range(key, result)?;
                if let Some((bytes, total)) = &first {
                    let mut start = bytes.len();
                    while start < *total {
                        let end = (start + self.range).min(*total);
                        rest.push((chunk_at * CONCURRENCY + i, start, end));
                        start = end;
                    }
                }
                out.push(first.map(|(mut bytes, total)| {
                    bytes.reserve_exact(total.saturating_sub(bytes.len()));
                    bytes
                }));
            }
        }
        for round in rest.chunks(CONCURRENCY) {
            let calls = round
                .iter()
                .map(|&(i, start, end)| self.get_call(&keys[i], start, end))
                .collect();
            for (&(i, start, end), result) in round.iter().zip(send_all(calls)) {
                let key = &keys[i];
                let result = retry_read(result, || self.get_call(key, start, end));
                let part = match result {
                    Ok(r) if r.status == 206 && r.body.len() == end - start => r.body,
                    Ok(r) => {
                        return Err(StoreError::Unavailable(format!(
                            "get {key} bytes {start}..{end}: HTTP {} with {} bytes (object replaced while read?)",
                            r.status,
                            r.body.len()
                        )));
                    }
                    Err(e) => return Err(StoreError::Unavailable(format!("get {key}: {e}"))),
                };
                // Ranges of one object come in order: they were queued in order and
                // every round preserves it.
                match out.get_mut(i) {
                    Some(Some(bytes)) if bytes.len() == start => bytes.extend_from_slice(&part),
                    _ => {
                        return Err(StoreError::Unavailable(format!(
                            "get {key}: ranges out of order"
                        )));
                    }
                }
            }
        }
        Ok(out)
    }

    /// The signed conditional PUT of `key` (public for the signing test).
    pub fn put_if_absent_call(&self, key: &str, bytes: &[u8]) -> HttpCall {
        let object = self.object(key);
        let mut action = self.bucket.put_object(Some(&self.credentials), &object);
        action.headers_mut().insert("if-none-match", "*");
        HttpCall {
            method: "PUT",
            url: action.sign(SIGNED_FOR).to_string(),
            headers: vec![("if-none-match".into(), "*".into())],
            body: bytes.to_vec(),
        }
    }

    fn list_page(
        &self,
        prefix: &str,
        delimiter: bool,
        start_after: Option<&str>,
        token: Option<&str>,
    ) -> Result<ListObjectsV2Response, StoreError> {
        let full = self.object(prefix);
        let mut action: ListObjectsV2<'_> = self.bucket.list_objects_v2(Some(&self.credentials));
        action.with_prefix(full.as_str());
        if delimiter {
            action.with_delimiter("/");
        }
        let after = start_after.map(|a| self.object(a));
        if let Some(after) = &after {
            action.with_start_after(after.as_str());
        }
        if let Some(token) = token {
            action.with_continuation_token(token);
        }
        let call = HttpCall {
            method: "GET",
            url: action.sign(SIGNED_FOR).to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        };
        match send_read(call) {
            Ok(r) if r.status == 200 => ListObjectsV2::parse_response(&r.body).map_err(|e| {
                StoreError::Unavailable(format!("listing {full}: unreadable answer: {e}"))
            }),
            Ok(r) if r.status == 403 => Err(StoreError::ListDenied(full)),
            Ok(r) => Err(failed("list", &full, r.status, &r.body)),
            Err(e) => Err(StoreError::Unavailable(format!("list {full}: {e}"))),
        }
    }

    fn list_all(
        &self,
        prefix: &str,
        delimiter: bool,
        start_after: Option<&str>,
    ) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let (mut keys, mut dirs) = (Vec::new(), Vec::new());
        let mut token: Option<String> = None;
        loop {
            let page = self.list_page(prefix, delimiter, start_after, token.as_deref())?;
            keys.extend(
                page.contents
                    .into_iter()
                    .filter_map(|c| c.key.strip_prefix(&self.prefix).map(str::to_owned)),
            );
            dirs.extend(
                page.common_prefixes
                    .into_iter()
                    .filter_map(|p| p.prefix.strip_prefix(&self.prefix).map(str::to_owned)),
            );
            match page.next_continuation_token {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => break,
            }
        }
        keys.sort();
        Ok((keys, dirs))
    }
}

/// A short, readable error from an S3 error answer (`<Code>…</Code>` if present).
fn failed(what: &str, key: &str, status: u16, body: &[u8]) -> StoreError {
    let text = String::from_utf8_lossy(body);
    let code = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map_or("", |(code, _)| code);
    StoreError::Unavailable(format!("{what} {key}: HTTP {status} {code}"))
}

fn transient(result: &HttpResult) -> bool {
    match result {
        Ok(r) => r.status >= 500,
        Err(_) => true,
    }
}

/// Sends a read, retried once after a transport error or a 5xx.
fn send_read(call: HttpCall) -> HttpResult {
    let first = send_all(vec![call.clone()])
        .pop()
        .unwrap_or_else(|| Err("no response".into()));
    retry_read(first, || call)
}

impl ObjectStore for S3Store {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read_objects(&[key.to_owned()])?.pop().flatten())
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.read_objects(keys)
    }

    fn list(&self, prefix: &str, start_after: Option<&str>) -> Result<Vec<String>, StoreError> {
        Ok(self.list_all(prefix, false, start_after)?.0)
    }

    fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let (_, dirs) = self.list_all(prefix, true, None)?;
        let mut names: Vec<String> = dirs
            .iter()
            .filter_map(|d| d.strip_prefix(prefix))
            .map(|d| d.trim_end_matches('/').to_owned())
            .filter(|d| !d.is_empty())
            .collect();
        names.sort();
        Ok(names)
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        let call = self.put_if_absent_call(key, bytes);
        match send_all(vec![call]).pop() {
            Some(Ok(r)) if matches!(r.status, 200 | 201 | 204) => Ok(true),
            // 412 Precondition Failed; 409 when a concurrent conditional PUT is in flight.
            Some(Ok(r)) if matches!(r.status, 412 | 409) => Ok(false),
            Some(Ok(r)) => Err(failed("conditional put", key, r.status, &r.body)),
            Some(Err(e)) => Err(StoreError::Unavailable(format!(
                "conditional put {key}: {e} (outcome unknown)"
            ))),
            None => Err(StoreError::Unavailable(format!("put {key}: no response"))),
        }
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let object = self.object(key);
        let action = self.bucket.delete_object(Some(&self.credentials), &object);
        let call = HttpCall {
            method: "DELETE",
            url: action.sign(SIGNED_FOR).to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        };
        match send_read(call) {
            Ok(r) if matches!(r.status, 200 | 204 | 404) => Ok(()),
            Ok(r) => Err(failed("delete", key, r.status, &r.body)),
            Err(e) => Err(StoreError::Unavailable(format!("delete {key}: {e}"))),
        }
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

/// The first range of an object and the object's size (`None`: it does not exist).
fn first_range(key: &str, result: HttpResult) -> Result<Option<(Vec<u8>, usize)>, StoreError> {
    match result {
        // The whole object (a server that ignores ranges, or a small object).
        Ok(r) if r.status == 200 => {
            let total = r.body.len();
            Ok(Some((r.body, total)))
        }
        Ok(r) if r.status == 206 => {
            let total = range_total(r.content_range.as_deref()).ok_or_else(|| {
                StoreError::Unavailable(format!("get {key}: 206 without a usable Content-Range"))
            })?;
            Ok(Some((r.body, total)))
        }
        // An empty object cannot satisfy any range.
        Ok(r) if r.status == 416 => Ok(Some((Vec::new(), 0))),
        Ok(r) if r.status == 404 => Ok(None),
        Ok(r) => Err(failed("get", key, r.status, &r.body)),
        Err(e) => Err(StoreError::Unavailable(format!("get {key}: {e}"))),
    }
}

/// `result`, or the result of sending `again()` once if it was transient.
fn retry_read(result: HttpResult, again: impl FnOnce() -> HttpCall) -> HttpResult {
    if transient(&result) {
        send_all(vec![again()]).pop().unwrap_or(result)
    } else {
        result
    }
}

/// Sends every call concurrently and returns their results in order.
#[cfg(target_arch = "wasm32")]
pub fn send_all(calls: Vec<HttpCall>) -> Vec<HttpResult> {
    use spin_sdk::http::{Method, Request, Response};

    async fn one(call: HttpCall) -> HttpResult {
        let method = match call.method {
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            _ => Method::Get,
        };
        let mut builder = Request::builder();
        builder.method(method).uri(call.url);
        for (name, value) in call.headers {
            builder.header(name, value);
        }
        let request = builder.body(call.body).build();
        let response: Response = spin_sdk::http::send(request)
            .await
            .map_err(|e| e.to_string())?;
        let content_range = response
            .header("content-range")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        Ok(HttpResponse {
            status: *response.status(),
            content_range,
            body: response.into_body(),
        })
    }

    spin_sdk::http::run(futures::future::join_all(calls.into_iter().map(one)))
}

/// Outside a component there is no wasi:http: every call fails (native builds only
/// compile the logic; the tests run the component).
#[cfg(not(target_arch = "wasm32"))]
pub fn send_all(calls: Vec<HttpCall>) -> Vec<HttpResult> {
    calls
        .iter()
        .map(|_| Err("outbound HTTP needs the wasi:http component".to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> S3Store {
        S3Store::new(&S3Config {
            endpoint: "http://127.0.0.1:8333".into(),
            bucket: "arrwdb".into(),
            prefix: "edge".into(),
            region: "us-east-1".into(),
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
            range_bytes: RANGE,
        })
        .expect("store")
    }

    #[test]
    fn the_conditional_put_signs_if_none_match() {
        let call = store().put_if_absent_call("default/lib/wal/00000000000000000001.wal", b"x");
        assert_eq!(call.method, "PUT");
        assert!(
            call.url.starts_with(
                "http://127.0.0.1:8333/arrwdb/edge/default/lib/wal/00000000000000000001.wal?"
            ),
            "{}",
            call.url
        );
        assert!(
            call.url
                .contains("X-Amz-SignedHeaders=host%3Bif-none-match"),
            "{}",
            call.url
        );
        assert!(call.url.contains("X-Amz-Algorithm=AWS4-HMAC-SHA256"));
        assert_eq!(call.headers, vec![("if-none-match".into(), "*".into())]);
    }

    #[test]
    fn ranges_are_signed_and_sizes_read_from_content_range() {
        let call = store().get_call("k", RANGE, 2 * RANGE);
        assert_eq!(
            call.headers,
            vec![("range".into(), format!("bytes={RANGE}-{}", 2 * RANGE - 1))]
        );
        assert!(
            call.url.contains("X-Amz-SignedHeaders=host%3Brange"),
            "{}",
            call.url
        );
        assert_eq!(
            range_total(Some("bytes 0-8388607/167300000")),
            Some(167_300_000)
        );
        assert_eq!(range_total(Some("bytes */0")), Some(0));
        assert_eq!(range_total(Some("garbage")), None);
        let partial = HttpResponse {
            status: 206,
            body: vec![1, 2],
            content_range: Some("bytes 0-1/10".into()),
        };
        assert_eq!(
            first_range("k", Ok(partial)).expect("ok"),
            Some((vec![1, 2], 10))
        );
        let missing = HttpResponse {
            status: 404,
            ..HttpResponse::default()
        };
        assert_eq!(first_range("k", Ok(missing)).expect("ok"), None);
    }

    #[test]
    fn error_answers_name_the_s3_code() {
        let e = failed("get", "k", 403, b"<Error><Code>AccessDenied</Code></Error>");
        assert_eq!(
            e.to_string(),
            "storage unavailable: get k: HTTP 403 AccessDenied"
        );
        assert!(
            S3Store::new(&S3Config {
                endpoint: "ftp://x".into(),
                ..store_config()
            })
            .is_err()
        );
    }

    fn store_config() -> S3Config {
        S3Config {
            endpoint: "http://x".into(),
            bucket: "b".into(),
            prefix: String::new(),
            region: "us-east-1".into(),
            access_key: "k".into(),
            secret_key: "s".into(),
            session_token: None,
            range_bytes: RANGE,
        }
    }
}
