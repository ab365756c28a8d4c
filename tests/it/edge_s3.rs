//! The edge component under `wasmtime serve -Scli`, reading and writing a real S3
//! server (SeaweedFS on 127.0.0.1) through outbound wasi:http with SigV4-signed
//! requests, beside the `arrwdb` host on the same bucket: the host writes and the edge
//! reads identical results; edges write and the host and other edges see it; two
//! concurrent edge writers never lose a write; API keys come from the hashed list the
//! host publishes.
//!
//! `cargo test --release -p arrwdb-tests --test it edge_s3_cold_start -- --ignored
//! --nocapture` prints the cold-start numbers of docs/edge.md (`ARRWDB_EDGE_BENCH_N`,
//! default `10000,100000`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::host::{Server, encode};
use crate::support::s3::{ACCESS_KEY, BUCKET, SECRET_KEY, Seaweed};
use crate::support::{ChildGuard, edge_wasm, free_port, program};

/// A key with both scopes, one that may only read, and one that expired.
const WRITE_KEY: &str = "arrw_edge_test_write_0123456789";
const READ_KEY: &str = "arrw_edge_test_read_0123456789";
const EXPIRED_KEY: &str = "arrw_edge_test_expired_012345";

// ---------------------------------------------------------------------------------
// Harness

/// The SeaweedFS filer's port (the harness starts the filer beside the S3 gateway and
/// names it on its command line). The filer's HTTP API writes and lists objects
/// without signing, which is how these tests play "the host published this file" and
/// inspect what the edges wrote.
fn filer(seaweed: &Seaweed) -> String {
    let port = seaweed
        .command_line
        .split_whitespace()
        .find_map(|a| a.strip_prefix("-filer.port="))
        .expect("the harness passes -filer.port");
    format!("http://127.0.0.1:{port}/buckets/{BUCKET}")
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into()
}

/// Writes an object through the filer (`{prefix}/{key}` in the bucket).
fn filer_put(seaweed: &Seaweed, key: &str, bytes: &[u8]) {
    let url = format!("{}/{key}", filer(seaweed));
    let resp = agent().put(&url).send(bytes).expect("filer PUT");
    assert!(
        resp.status().is_success(),
        "filer PUT {url}: {}",
        resp.status()
    );
}

fn filer_get(seaweed: &Seaweed, key: &str) -> Vec<u8> {
    let url = format!("{}/{key}", filer(seaweed));
    let mut resp = agent().get(&url).call().expect("filer GET");
    assert_eq!(resp.status().as_u16(), 200, "filer GET {url}");
    resp.body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .expect("body")
}

/// Names of the objects in a bucket directory (`{prefix}/default/{lib}/wal`).
fn filer_list(seaweed: &Seaweed, dir: &str) -> Vec<String> {
    let url = format!("{}/{dir}/?limit=100000", filer(seaweed));
    let mut resp = agent()
        .get(&url)
        .header("accept", "application/json")
        .call()
        .expect("filer list");
    if resp.status().as_u16() == 404 {
        return Vec::new();
    }
    let listing: Value =
        serde_json::from_str(&resp.body_mut().read_to_string().expect("listing")).expect("json");
    let mut names: Vec<String> = listing["Entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["FullPath"].as_str())
        .filter_map(|p| p.rsplit('/').next().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// SHA-256 of a key as lowercase hex, computed by coreutils' `sha256sum`, so the tests
/// do not trust the hashing of the code under test.
fn sha256_hex(key: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(key.as_bytes())
        .expect("write key");
    let out = child.wait_with_output().expect("sha256sum output");
    let text = String::from_utf8(out.stdout).expect("utf8");
    let hex = text.split_whitespace().next().expect("a digest").to_owned();
    assert_eq!(hex.len(), 64, "{text}");
    hex
}

/// Publishes the key list at `{prefix}/_auth/edge-keys.json`, as the host will.
fn publish_keys(seaweed: &Seaweed, prefix: &str) {
    let list = json!({"version": 1, "keys": [
        {"id": "edge-writer", "sha256": sha256_hex(WRITE_KEY), "scopes": ["read", "write"], "tenant": "default"},
        {"id": "edge-reader", "sha256": sha256_hex(READ_KEY), "scopes": ["read"], "tenant": "default"},
        {"id": "old", "sha256": sha256_hex(EXPIRED_KEY), "scopes": ["read", "write"], "tenant": "default", "expires_at_ms": 1_000},
    ]});
    filer_put(
        seaweed,
        &format!("{prefix}/_auth/edge-keys.json"),
        &serde_json::to_vec(&list).expect("json"),
    );
}

/// One edge instance: `wasmtime serve -Scli` with the S3 settings in its environment.
struct Edge {
    _guard: ChildGuard,
    base: String,
    agent: ureq::Agent,
    key: Option<&'static str>,
}

/// Status, JSON body and `Server-Timing` header of a response.
type Reply = (u16, Value, String);

impl Edge {
    fn start(seaweed: &Seaweed, prefix: &str, auth: bool) -> Edge {
        Self::start_with(seaweed, prefix, auth, &[])
    }

    fn start_with(seaweed: &Seaweed, prefix: &str, auth: bool, extra: &[(&str, &str)]) -> Edge {
        Self::start_component(&edge_wasm(), seaweed, prefix, auth, extra)
    }

    fn start_component(
        component: &std::path::Path,
        seaweed: &Seaweed,
        prefix: &str,
        auth: bool,
        extra: &[(&str, &str)],
    ) -> Edge {
        let port = free_port();
        let mut command = Command::new(program("wasmtime"));
        command.arg("serve").arg("-Scli");
        let env = [
            ("ARRWDB_S3_ENDPOINT", seaweed.endpoint.as_str()),
            ("ARRWDB_S3_BUCKET", BUCKET),
            ("ARRWDB_S3_PREFIX", prefix),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("ARRWDB_EDGE_AUTH", if auth { "on" } else { "off" }),
        ];
        for (k, v) in env.iter().chain(extra) {
            command.arg("--env").arg(format!("{k}={v}"));
        }
        command
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg(component)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let guard = ChildGuard::spawn("wasmtime serve (S3)", &mut command);
        let edge = Edge {
            _guard: guard,
            base: format!("http://127.0.0.1:{port}"),
            agent: agent(),
            key: auth.then_some(WRITE_KEY),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while edge.call("GET", "/health", None, None).0 != 200 {
            assert!(Instant::now() < deadline, "edge not ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        edge
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>, key: Option<&str>) -> Reply {
        let url = format!("{}{path}", self.base);
        let auth = key.map(|k| format!("Bearer {k}"));
        let result = match (method, body) {
            ("GET", _) => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("authorization", a);
                }
                r.call()
            }
            ("DELETE", _) => {
                let mut r = self.agent.delete(&url);
                if let Some(a) = &auth {
                    r = r.header("authorization", a);
                }
                r.call()
            }
            (_, body) => {
                let mut r = self
                    .agent
                    .post(&url)
                    .header("content-type", "application/json");
                if let Some(a) = &auth {
                    r = r.header("authorization", a);
                }
                r.send(serde_json::to_vec(&body.cloned().unwrap_or(Value::Null)).expect("json"))
            }
        };
        let mut resp = match result {
            Ok(resp) => resp,
            Err(e) => return (0, Value::String(e.to_string()), String::new()),
        };
        let status = resp.status().as_u16();
        let timing = resp
            .headers()
            .get("server-timing")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            timing,
        )
    }

    fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None, self.key)
    }

    fn post(&self, path: &str, body: &Value) -> Reply {
        self.call("POST", path, Some(body), self.key)
    }

    fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, None, self.key)
    }
}

fn assert_kind(reply: &Reply, status: u16, kind: &str) {
    assert_eq!(reply.0, status, "{}", reply.1);
    assert_eq!(reply.1["error"]["kind"], kind, "{}", reply.1);
}

/// A document whose vector, text and metadata derive from `i`.
fn doc(i: usize, dim: usize) -> Value {
    let mut h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let vector: Vec<f32> = (0..dim)
        .map(|_| {
            h ^= h >> 29;
            h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            (h >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let words = [
        "rust", "vector", "edge", "storage", "search", "wasm", "index",
    ];
    let text = format!(
        "{} {} document number {i}",
        words[i % words.len()],
        words[(i / 3) % words.len()]
    );
    json!({
        "id": format!("d{i}"),
        "metadata": {"group": i % 4, "year": 2020 + (i % 6)},
        "chunks": [{"text": text, "embedding": vector}]
    })
}

/// The searches every runtime must answer identically (took_ms removed).
fn searches(dim: usize) -> Vec<Value> {
    let q = doc(7, dim)["chunks"][0]["embedding"].clone();
    vec![
        json!({"vector": q, "k": 5}),
        json!({"vector": q, "k": 5, "filter": {"group": {"$in": [1, 2]}, "year": {"$gte": 2022}}}),
        json!({"text": "rust storage", "mode": "keyword", "k": 5}),
        json!({"vector": q, "text": "edge search", "mode": "hybrid", "k": 5, "include": ["text", "metadata"]}),
    ]
}

fn without_took(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("took_ms");
    }
    v
}

// ---------------------------------------------------------------------------------
// Tests

#[test]
fn edge_s3_reads_exactly_what_the_host_wrote() {
    let seaweed = Seaweed::start();
    let prefix = "shared";
    let host = Server::start(&seaweed.storage_url(prefix), &seaweed.env());
    let dim = 16;
    let reply = host.http.post(
        "/v1/libraries",
        &json!({"name": "notes", "dimension": dim, "metric": "cosine", "index": {"type": "hnsw"}}),
    );
    assert_eq!(reply.0, 201, "{}", reply.1);
    let docs: Vec<Value> = (0..80).map(|i| doc(i, dim)).collect();
    let reply = host.http.post(
        "/v1/libraries/notes/documents/batch",
        &json!({"documents": docs[..60]}),
    );
    assert_eq!(reply.0, 200, "{}", reply.1);
    // A compaction (snapshot + manifest), then a WAL tail after it.
    assert_eq!(host.http.post_bytes("/v1/libraries/notes/snapshot").0, 200);
    for d in &docs[60..] {
        assert_eq!(host.http.post("/v1/libraries/notes/documents", d).0, 200);
    }
    assert_eq!(host.http.delete("/v1/libraries/notes/documents/d3").0, 204);

    publish_keys(&seaweed, prefix);
    let edge = Edge::start(&seaweed, prefix, true);
    for search in searches(dim) {
        let want = host.http.post("/v1/libraries/notes/search", &search);
        let got = edge.post("/v1/libraries/notes/search", &search);
        assert_eq!((want.0, got.0), (200, 200), "{} / {}", want.1, got.1);
        assert!(!want.1["hits"].as_array().expect("hits").is_empty());
        assert_eq!(without_took(got.1), without_took(want.1), "search {search}");
        assert!(got.2.contains("fetch;dur="), "Server-Timing: {}", got.2);
    }
    for path in [
        "/v1/libraries/notes",
        "/v1/libraries",
        "/v1/libraries/notes/documents/d42",
    ] {
        let want = host.http.get(path);
        let got = edge.get(path);
        assert_eq!(want.0, 200, "{path}: {}", want.1);
        assert_eq!((got.0, got.1), (want.0, want.1), "{path}");
    }
    assert_kind(
        &edge.get("/v1/libraries/notes/documents/d3"),
        404,
        "not_found",
    );
    assert_kind(&edge.get("/v1/libraries/absent"), 404, "not_found");

    // A damaged segment is refused with a 503 naming it, never applied or skipped.
    let next = host.http.get("/v1/libraries/notes").1["seq"]
        .as_u64()
        .expect("seq")
        + 1;
    let key = format!("{prefix}/default/notes/wal/{next:020}.wal");
    filer_put(&seaweed, &key, b"ARWL\x02\x00garbage");
    let reply = edge.get("/v1/libraries/notes");
    assert_kind(&reply, 503, "unavailable");
    assert!(
        reply.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("{next:020}.wal"))),
        "{}",
        reply.1
    );
}

#[test]
fn edge_s3_requires_a_key_from_the_published_list() {
    let seaweed = Seaweed::start();
    let prefix = "keys";
    let edge = Edge::start(&seaweed, prefix, true);
    let create = json!({"name": "k", "dimension": 2});
    let call = |method: &str, path: &str, body: Option<&Value>, key: Option<&str>| {
        edge.call(method, path, body, key)
    };
    // Nothing published yet: nobody can be checked.
    assert_kind(
        &call("GET", "/v1/libraries", None, Some(WRITE_KEY)),
        503,
        "unavailable",
    );
    assert_eq!(call("GET", "/health", None, None).0, 200, "health is open");
    publish_keys(&seaweed, prefix);
    assert_kind(
        &call("GET", "/v1/libraries", None, None),
        401,
        "unauthorized",
    );
    assert_kind(
        &call("GET", "/v1/libraries", None, Some("arrw_wrong")),
        401,
        "unauthorized",
    );
    let expired = call("GET", "/v1/libraries", None, Some(EXPIRED_KEY));
    assert_kind(&expired, 401, "unauthorized");
    assert!(
        expired.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired"))
    );
    assert_kind(
        &call("POST", "/v1/libraries", Some(&create), Some(READ_KEY)),
        403,
        "forbidden",
    );
    assert_eq!(
        call("POST", "/v1/libraries", Some(&create), Some(WRITE_KEY)).0,
        201
    );
    let upsert = json!({"id": "a", "chunks": [{"embedding": [1.0, 0.0]}]});
    assert_kind(
        &call(
            "POST",
            "/v1/libraries/k/documents",
            Some(&upsert),
            Some(READ_KEY),
        ),
        403,
        "forbidden",
    );
    assert_eq!(
        call(
            "POST",
            "/v1/libraries/k/documents",
            Some(&upsert),
            Some(WRITE_KEY)
        )
        .0,
        200
    );
    let search = json!({"vector": [1.0, 0.0], "k": 1});
    let found = call(
        "POST",
        "/v1/libraries/k/search",
        Some(&search),
        Some(READ_KEY),
    );
    assert_eq!(
        (found.0, &found.1["hits"][0]["document_id"]),
        (200, &json!("a"))
    );
    assert!(found.2.contains("auth;dur="), "{}", found.2);
    // `X-API-Key` works as well.
    let resp = agent()
        .get(format!("{}/v1/libraries/k", edge.base))
        .header("x-api-key", READ_KEY)
        .call()
        .expect("get");
    assert_eq!(resp.status().as_u16(), 200);
    // Revoking is one PUT of the list: the next request already sees it.
    filer_put(
        &seaweed,
        &format!("{prefix}/_auth/edge-keys.json"),
        br#"{"version":1,"keys":[]}"#,
    );
    assert_kind(
        &call("GET", "/v1/libraries/k", None, Some(READ_KEY)),
        401,
        "unauthorized",
    );
}

#[test]
fn edge_s3_writes_reach_the_host_and_other_edges() {
    let seaweed = Seaweed::start();
    let prefix = "edgewrites";
    publish_keys(&seaweed, prefix);
    let (a, b) = (
        Edge::start(&seaweed, prefix, true),
        Edge::start(&seaweed, prefix, true),
    );
    let dim = 8;
    // A library only edges wrote: no manifest, replayed from record 1.
    let reply = a.post(
        "/v1/libraries",
        &json!({"name": "field", "dimension": dim, "metric": "l2"}),
    );
    assert_eq!(reply.0, 201, "{}", reply.1);
    for i in 0..10 {
        let reply = a.post("/v1/libraries/field/documents", &doc(i, dim));
        assert_eq!(reply.0, 200, "{}", reply.1);
        // Read-your-writes from the other instance, at once.
        let seen = b.get(&format!("/v1/libraries/field/documents/d{i}"));
        assert_eq!(seen.0, 200, "{}", seen.1);
    }
    assert_eq!(b.delete("/v1/libraries/field/documents/d0").0, 204);
    assert_kind(&a.get("/v1/libraries/field/documents/d0"), 404, "not_found");

    // A host started now loads the edge-written log, claims the library and compacts it.
    let env = seaweed.env();
    let url = seaweed.storage_url(prefix);
    let host = Server::start(&url, &env);
    let info = host.http.get("/v1/libraries/field");
    assert_eq!(
        (info.0, info.1["documents"].as_u64(), info.1["seq"].as_u64()),
        (200, Some(9), Some(12)),
        "{}",
        info.1
    );
    assert_eq!(host.http.post_bytes("/v1/libraries/field/snapshot").0, 200);
    assert!(
        !filer_list(&seaweed, &format!("{prefix}/default/field/manifest")).is_empty(),
        "the host published a manifest"
    );
    // Edges now start from the host's snapshot and keep appending after it.
    let reply = b.post("/v1/libraries/field/documents", &doc(20, dim));
    assert_eq!(reply.0, 200, "{}", reply.1);
    let search = json!({"vector": doc(20, dim)["chunks"][0]["embedding"], "k": 3});
    let got = a.post("/v1/libraries/field/search", &search);
    assert_eq!(got.1["hits"][0]["document_id"], "d20", "{}", got.1);
    assert!(
        got.2.contains("decode;dur="),
        "loaded a snapshot: {}",
        got.2
    );

    // The running writer host picks up segments other writers appended: before a read
    // it checks for the next WAL segment (at most once a second) and reloads.
    let deadline = Instant::now() + Duration::from_secs(5);
    while host.http.get("/v1/libraries/field/documents/d20").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the writer host never saw the edge's write"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Its own next write lands after the edge's record.
    let reply = host
        .http
        .post("/v1/libraries/field/documents", &doc(21, dim));
    assert_eq!(reply.0, 200, "{}", reply.1);
    assert_eq!(host.http.get("/v1/libraries/field/documents/d20").0, 200);
    // A read replica follows edge writes by polling.
    let replica = Server::start_with(
        &url,
        &env,
        &["--replica-of", url.as_str(), "--poll-interval-ms", "100"],
    );
    let reply = a.post("/v1/libraries/field/documents", &doc(22, dim));
    assert_eq!(reply.0, 200, "{}", reply.1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while replica.http.get("/v1/libraries/field/documents/d22").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "replica never saw the edge write"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // And every runtime agrees on the final state.
    let want = without_took(host_search(&replica, &search));
    assert_eq!(
        without_took(a.post("/v1/libraries/field/search", &search).1),
        want
    );
    assert_eq!(
        without_took(b.post("/v1/libraries/field/search", &search).1),
        want
    );
}

#[test]
fn edge_s3_pinned_component_starts_from_its_snapshot_and_reads_newer_writes() {
    let seaweed = Seaweed::start();
    let prefix = "pin";
    let plain = Edge::start(&seaweed, prefix, false);
    let dim = 8;
    let reply = plain.post("/v1/libraries", &json!({"name": "p", "dimension": dim}));
    assert_eq!(reply.0, 201, "{}", reply.1);
    let docs: Vec<Value> = (0..30).map(|i| doc(i, dim)).collect();
    let reply = plain.post(
        "/v1/libraries/p/documents/batch",
        &json!({"documents": docs}),
    );
    assert_eq!(reply.0, 200, "{}", reply.1);
    // The documented workflow: copy the bucket to a directory, pre-initialize from it.
    let copy = tempfile::tempdir().expect("tempdir");
    let status = Command::new(crate::support::host_bin())
        .args(["backup", "--storage", &seaweed.storage_url(prefix), "--to"])
        .arg(copy.path())
        .envs(seaweed.env())
        .stdout(Stdio::null())
        .status()
        .expect("arrwdb backup");
    assert!(status.success());
    let component = pinned_component(copy.path(), "p");
    let pinned = Edge::start_component(&component, &seaweed, prefix, false, &[]);
    // Written after the pre-initialization: the pinned instance reads it from the WAL.
    let reply = plain.post("/v1/libraries/p/documents", &doc(99, dim));
    assert_eq!(reply.0, 200, "{}", reply.1);
    for search in searches(dim) {
        let want = plain.post("/v1/libraries/p/search", &search);
        let got = pinned.post("/v1/libraries/p/search", &search);
        assert_eq!(want.0, 200, "{}", want.1);
        assert_eq!(without_took(got.1), without_took(want.1), "{search}");
        assert!(
            got.2.contains("pinned"),
            "served from the pinned state: {}",
            got.2
        );
        assert!(!got.2.contains("decode"), "{}", got.2);
    }
    let got = pinned.get("/v1/libraries/p/documents/d99");
    assert_eq!(got.0, 200, "{}", got.1);
    // Writes through the pinned component work too, and other instances see them.
    let reply = pinned.post("/v1/libraries/p/documents", &doc(100, dim));
    assert_eq!(reply.0, 200, "{}", reply.1);
    assert_eq!(plain.get("/v1/libraries/p/documents/d100").0, 200);
}

fn host_search(server: &Server, search: &Value) -> Value {
    let reply = server.http.post("/v1/libraries/field/search", search);
    assert_eq!(reply.0, 200, "{}", reply.1);
    reply.1
}

#[test]
fn edge_s3_concurrent_writers_never_lose_a_write() {
    let seaweed = Seaweed::start();
    let prefix = "race";
    let edges = [
        Edge::start(&seaweed, prefix, false),
        Edge::start(&seaweed, prefix, false),
    ];
    let dim = 4;
    let reply = edges[0].post(
        "/v1/libraries",
        &json!({"name": "race", "dimension": dim, "metric": "l2"}),
    );
    assert_eq!(reply.0, 201, "{}", reply.1);
    // Two threads per edge process, all appending to one log.
    let per_thread = 12;
    let acknowledged: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let edge = &edges[t % 2];
                scope.spawn(move || {
                    let mut acked = Vec::new();
                    for i in 0..per_thread {
                        let mut d = doc(t * 1000 + i, dim);
                        let id = format!("t{t}-{i}");
                        d["id"] = json!(id);
                        let reply = edge.post("/v1/libraries/race/documents", &d);
                        match reply.0 {
                            200 => acked.push(id),
                            409 => {}
                            other => panic!("upsert {id}: {other} {}", reply.1),
                        }
                    }
                    acked
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("writer"))
            .collect()
    });
    assert!(
        acknowledged.len() >= 4 * per_thread * 3 / 4,
        "most writes succeed after retries: {} of {}",
        acknowledged.len(),
        4 * per_thread
    );
    for id in &acknowledged {
        let reply = edges[1].get(&format!("/v1/libraries/race/documents/{}", encode(id)));
        assert_eq!(reply.0, 200, "acknowledged {id} is missing: {}", reply.1);
    }
    let info = edges[0].get("/v1/libraries/race").1;
    assert_eq!(info["documents"].as_u64(), Some(acknowledged.len() as u64));
    // Every WAL position was written once: the records are exactly 1..=n.
    let dir = format!("{prefix}/default/race/wal");
    let mut seqs = Vec::new();
    for name in filer_list(&seaweed, &dir) {
        let bytes = filer_get(&seaweed, &format!("{dir}/{name}"));
        let records = arrwdb_core::codec::decode_wal_segment(&bytes).unwrap_or_else(|e| {
            panic!(
                "{name}: {e}: {} bytes {:02x?}",
                bytes.len(),
                &bytes[..bytes.len().min(400)]
            )
        });
        assert_eq!(
            Some(records[0].seq),
            name.strip_suffix(".wal").and_then(|n| n.parse().ok())
        );
        seqs.extend(records.iter().map(|r| r.seq));
    }
    let expected: Vec<u64> = (1..=acknowledged.len() as u64 + 1).collect();
    assert_eq!(
        seqs, expected,
        "one create plus one record per acknowledged write"
    );
}

// ---------------------------------------------------------------------------------
// Cold start

/// Pre-initializes the edge component with `library` from the data directory `dir`
/// (`wasmtime wizer`, calling the component's `preload` export) and returns the path
/// of the new component.
fn pinned_component(dir: &std::path::Path, library: &str) -> std::path::PathBuf {
    let out = dir.join(format!("pinned-{library}.wasm"));
    let status = Command::new(program("wasmtime"))
        // The memory image is read out through the component boundary: lift the
        // default cap on bytes copied by host calls (a 100k × 384 library is ~0.5 GB).
        .args([
            "wizer",
            "-Scli",
            "-Shttp",
            "-Shostcall-fuel=18446744073709551615",
            "--dir",
        ])
        .arg(format!("{}::/pin", dir.display()))
        .arg("--init-func")
        .arg(format!("preload(\"/pin\", \"{library}\")"))
        .arg("-o")
        .arg(&out)
        .arg(edge_wasm())
        .stdout(Stdio::null())
        .status()
        .expect("run wasmtime wizer");
    assert!(status.success(), "wasmtime wizer failed");
    out
}

/// Builds a flat library of `n` × `dim` vectors natively and returns its snapshot
/// (taken after record `n + 1`).
fn build_snapshot(name: &str, n: usize, dim: usize) -> (Vec<u8>, u64, Duration) {
    use arrwdb_core::{Command, Engine, api};
    let mut engine = Engine::new();
    let create: api::CreateLibraryRequest =
        serde_json::from_value(json!({"name": name, "dimension": dim, "metric": "cosine"}))
            .expect("create");
    let record = engine
        .prepare(Command::CreateLibrary(
            create.into_config().expect("config"),
        ))
        .expect("prepare");
    engine.apply(&record).expect("apply");
    for i in 0..n {
        let request: api::UpsertDocumentRequest = serde_json::from_value(doc(i, dim)).expect("doc");
        let id = format!("d{i}");
        let record = engine
            .prepare(Command::UpsertDocument {
                library: name.into(),
                document: request.into_document(id),
            })
            .expect("prepare");
        engine.apply(&record).expect("apply");
    }
    let bytes = engine.snapshot(name).expect("snapshot");
    let started = Instant::now();
    let mut fresh = Engine::new();
    fresh.restore(&bytes).expect("restore");
    (bytes, n as u64 + 1, started.elapsed())
}

fn phase(timing: &str, name: &str) -> f64 {
    timing
        .split(", ")
        .find_map(|p| p.strip_prefix(&format!("{name};dur=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
#[ignore = "benchmark: prints the cold-start numbers of docs/edge.md"]
fn edge_s3_cold_start() {
    let sizes: Vec<usize> = std::env::var("ARRWDB_EDGE_BENCH_N")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let dim = 384;
    let seaweed = Seaweed::start();
    let prefix = "bench";
    for &n in &sizes {
        let name = format!("bench{n}");
        let (snapshot, seq, native_decode) = build_snapshot(&name, n, dim);
        let lib = format!("{prefix}/default/{name}");
        filer_put(
            &seaweed,
            &format!("{lib}/snapshots/{seq:020}.snap"),
            &snapshot,
        );
        let local = tempfile::tempdir().expect("tempdir");
        let local_lib = local.path().join("default").join(&name);
        std::fs::create_dir_all(local_lib.join("snapshots")).expect("mkdir");
        std::fs::create_dir_all(local_lib.join("manifest")).expect("mkdir");
        std::fs::write(
            local_lib.join(format!("snapshots/{seq:020}.snap")),
            &snapshot,
        )
        .expect("write snapshot");
        let manifest = arrwdb_core::storage::Manifest {
            version: arrwdb_core::storage::MANIFEST_VERSION,
            library: name.clone(),
            epoch: 1,
            writer: "bench".into(),
            snapshot: Some(seq),
            wal_start: seq + 1,
            next_seq: seq + 1,
            created_at_ms: 0,
        };
        filer_put(
            &seaweed,
            &format!("{lib}/manifest/{:020}.json", 1),
            &manifest.to_json().expect("json"),
        );
        std::fs::write(
            local_lib.join(format!("manifest/{:020}.json", 1)),
            manifest.to_json().expect("json"),
        )
        .expect("write manifest");
        let started = Instant::now();
        let pinned = pinned_component(local.path(), &name);
        let wizer_s = started.elapsed().as_secs_f64();
        let pinned_mb = std::fs::metadata(&pinned).map_or(0, |m| m.len()) as f64 / 1e6;
        let search = json!({"vector": doc(5, dim)["chunks"][0]["embedding"], "k": 10});
        let path = format!("/v1/libraries/{name}/search");
        // One stream per object (ranges larger than the object) against 8 MiB ranges.
        let plain = edge_wasm();
        for (label, component, range_mb) in [
            ("one stream", &plain, "1024"),
            ("8 MiB ranges", &plain, "8"),
            ("pinned (wizer)", &pinned, "8"),
        ] {
            let edge = Edge::start_component(
                component,
                &seaweed,
                prefix,
                false,
                &[("ARRWDB_S3_RANGE_MB", range_mb)],
            );
            let mut totals = Vec::new();
            let mut phases: Vec<(&str, Vec<f64>)> =
                ["list", "fetch", "decode", "wal", "query", "drop", "total"]
                    .into_iter()
                    .map(|p| (p, Vec::new()))
                    .collect();
            for _ in 0..7 {
                let started = Instant::now();
                let reply = edge.post(&path, &search);
                totals.push(started.elapsed().as_secs_f64() * 1e3);
                assert_eq!(reply.0, 200, "{}", reply.1);
                assert_eq!(reply.1["hits"][0]["document_id"], "d5");
                for (p, v) in &mut phases {
                    v.push(phase(&reply.2, p));
                }
            }
            eprintln!(
                "edge cold start, {n} × {dim} flat, snapshot {:.1} MB, {label}: client {:.1} ms per request (median of 7); in the component: {}",
                snapshot.len() as f64 / 1e6,
                median(totals),
                phases
                    .into_iter()
                    .map(|(p, v)| format!("{p} {:.1} ms", median(v)))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        // Warm: the host keeps the library in a warm instance.
        let host = Server::start(&seaweed.storage_url(prefix), &seaweed.env());
        let mut warm = Vec::new();
        for _ in 0..50 {
            let started = Instant::now();
            let reply = host.http.post(&path, &search);
            warm.push(started.elapsed().as_secs_f64() * 1e3);
            assert_eq!(reply.1["hits"][0]["document_id"], "d5");
        }
        eprintln!(
            "{n} × {dim}: native decode (Engine::restore) {:.1} ms; warm host search {:.2} ms (median of 50); pinned component {pinned_mb:.1} MB, wizer {wizer_s:.1} s",
            native_decode.as_secs_f64() * 1e3,
            median(warm),
        );
    }
}
