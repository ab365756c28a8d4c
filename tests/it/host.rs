//! End-to-end tests of the `arrwdb` host: the real release binary, running the real edge
//! component, on a local directory, in memory, and on a real S3 server (SeaweedFS).
//! Each test starts its own processes on free ports with its own directories, so they
//! run in parallel.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::s3::Seaweed;
use crate::support::{
    ChildGuard, Http, TEST_ADMIN_KEY, assert_error, dataset, edge_wasm, free_port, host_bin,
};

/// A running `arrwdb serve`.
pub(crate) struct Server {
    pub(crate) guard: ChildGuard,
    pub(crate) http: Http,
    pub(crate) storage: String,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) args: Vec<String>,
}

impl Server {
    /// Starts the host on `storage` and waits until `/ready` answers 200.
    pub(crate) fn start(storage: &str, env: &[(String, String)]) -> Server {
        Self::start_with(storage, env, &[])
    }

    pub(crate) fn start_with(storage: &str, env: &[(String, String)], args: &[&str]) -> Server {
        let port = free_port();
        let mut cmd = Command::new(host_bin());
        cmd.arg("serve")
            .args([
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--storage",
                storage,
                "--component",
            ])
            .arg(edge_wasm())
            .args(args)
            // Auth is off unless a test turns it on (`ARRWDB_NO_AUTH=false` in `env`):
            // the durability tests drive the server with their own clients.
            .env("ARRWDB_NO_AUTH", "true")
            .env("ARRWDB_ADMIN_KEY", TEST_ADMIN_KEY)
            .envs(env.iter().map(|(k, v)| (k, v)))
            // `TEST_RUST_LOG=info cargo test … -- --nocapture` shows the servers' logs.
            .env(
                "RUST_LOG",
                std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let mut guard = ChildGuard::spawn("arrwdb", &mut cmd);
        let http = Http::new(format!("http://127.0.0.1:{port}")).with_key(TEST_ADMIN_KEY);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = guard.child.try_wait() {
                panic!("arrwdb exited during startup with {status} (storage {storage})");
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && http.get("/ready").0 == 200
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "arrwdb on {storage} not ready after 120 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            guard,
            http,
            storage: storage.into(),
            env: env.to_vec(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// SIGKILL (no shutdown hook runs), then a fresh process on the same storage.
    pub(crate) fn crash_and_restart(mut self) -> Server {
        self.guard.kill();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        Server::start_with(&self.storage, &self.env, &args)
    }
}

pub(crate) fn create_library(http: &Http, name: &str, dimension: usize) {
    let reply = http.post(
        "/v1/libraries",
        &json!({"name": name, "dimension": dimension}),
    );
    assert_eq!(reply.0, 201, "create {name}: {}", reply.1);
    assert_eq!(reply.1["name"], name);
}

pub(crate) fn embedding(doc: &Value) -> &Value {
    &doc["chunks"][0]["embedding"]
}

pub(crate) fn as_f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("an array of numbers")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

/// Searches with `doc`'s own vector and asserts that `doc` comes first.
pub(crate) fn assert_found_first(http: &Http, library: &str, doc: &Value) {
    let reply = http.post(
        &format!("/v1/libraries/{library}/search"),
        &json!({"vector": embedding(doc), "k": 3}),
    );
    assert_eq!(reply.0, 200, "search: {}", reply.1);
    assert_eq!(
        reply.1["hits"][0]["document_id"], doc["id"],
        "hits: {}",
        reply.1["hits"]
    );
    assert!(
        reply.1["took_ms"].as_f64().is_some(),
        "took_ms missing: {}",
        reply.1
    );
}

/// Asserts that `GET` returns `doc` with its vector bit for bit (as f32).
pub(crate) fn assert_stored(http: &Http, library: &str, doc: &Value) {
    let id = doc["id"].as_str().expect("string id");
    let reply = http.get(&format!("/v1/libraries/{library}/documents/{}", encode(id)));
    assert_eq!(reply.0, 200, "get {id}: {}", reply.1);
    assert_eq!(reply.1["id"], doc["id"]);
    assert_eq!(reply.1["metadata"], doc["metadata"]);
    assert_eq!(
        as_f32s(&reply.1["chunks"][0]["embedding"]),
        as_f32s(embedding(doc))
    );
}

/// Percent-encodes a path segment (dataset ids look like `pypi:name`).
pub(crate) fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) fn library_info(http: &Http, library: &str) -> Value {
    let reply = http.get(&format!("/v1/libraries/{library}"));
    assert_eq!(reply.0, 200, "get library {library}: {}", reply.1);
    reply.1
}

/// Files with extension `ext` under `{dir}/default/{library}/{sub}`, sorted.
pub(crate) fn objects(dir: &Path, library: &str, sub: &str) -> Vec<PathBuf> {
    let path = dir.join("default").join(library).join(sub);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.is_file());
    files.sort();
    files
}

/// An acknowledged upsert survives `kill -9`: the document is searchable and readable
/// after a restart on the same storage.
fn acknowledged_write_survives_sigkill(storage: &str, env: &[(String, String)]) {
    let docs = dataset::documents(20);
    let server = Server::start(storage, env);
    create_library(&server.http, "durable", dataset::DIM);
    let reply = server.http.post(
        "/v1/libraries/durable/documents/batch",
        &json!({"documents": docs[1..]}),
    );
    assert_eq!(reply.0, 200, "batch: {}", reply.1);
    let reply = server
        .http
        .post("/v1/libraries/durable/documents", &docs[0]);
    assert_eq!(reply.0, 200, "upsert: {}", reply.1);
    assert_eq!(reply.1["id"], docs[0]["id"]);

    let server = server.crash_and_restart();
    assert_found_first(&server.http, "durable", &docs[0]);
    assert_stored(&server.http, "durable", &docs[0]);
    let info = library_info(&server.http, "durable");
    // create (1), the batch (2..=20), the upsert (21)
    assert_eq!(
        (info["documents"].as_u64(), info["seq"].as_u64()),
        (Some(20), Some(21)),
        "{info}"
    );
}

#[test]
fn host_keeps_acknowledged_writes_across_sigkill_on_a_local_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    acknowledged_write_survives_sigkill(&dir.path().display().to_string(), &[]);
    assert_eq!(objects(dir.path(), "durable", "wal").len(), 3);
}

#[test]
fn host_keeps_acknowledged_writes_across_sigkill_on_s3() {
    let seaweed = Seaweed::start();
    acknowledged_write_survives_sigkill(&seaweed.storage_url("sigkill"), &seaweed.env());
}

// Two writers on one storage: see `durability.rs` (the newer one fences the older).

#[test]
fn host_restarts_from_a_snapshot_plus_later_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = dir.path().display().to_string();
    let docs = dataset::documents(15);
    let server = Server::start(&storage, &[]);
    create_library(&server.http, "snap", dataset::DIM);
    let reply = server.http.post(
        "/v1/libraries/snap/documents/batch",
        &json!({"documents": docs[..10]}),
    );
    assert_eq!(reply.0, 200, "batch: {}", reply.1);

    let (status, bytes) = server.http.post_bytes("/v1/libraries/snap/snapshot");
    assert_eq!(status, 200);
    assert_eq!(&bytes[..4], b"ARWS", "snapshot framing");
    let snapshots = objects(dir.path(), "snap", "snapshots");
    assert_eq!(snapshots.len(), 1);
    assert!(
        snapshots[0].ends_with("00000000000000000011.snap"),
        "{snapshots:?}"
    );
    assert_eq!(std::fs::read(&snapshots[0]).expect("read snapshot"), bytes);

    for doc in &docs[10..] {
        assert_eq!(server.http.post("/v1/libraries/snap/documents", doc).0, 200);
    }
    let deleted = docs[3]["id"].as_str().expect("id");
    let reply = server
        .http
        .delete(&format!("/v1/libraries/snap/documents/{}", encode(deleted)));
    assert_eq!(reply.0, 204, "delete: {}", reply.1);
    let mut changed = docs[4].clone();
    changed["metadata"] = json!({"version": 2});
    assert_eq!(
        server.http.post("/v1/libraries/snap/documents", &changed).0,
        200
    );

    let mut server = server;
    server.guard.kill();
    // The records up to the snapshot are no longer needed: drop their segments, so the
    // restart can only succeed by loading the snapshot and replaying what follows.
    // create (1), the batch (2..=11) snapshotted at 11, 5 upserts, a delete, an upsert
    let wal = objects(dir.path(), "snap", "wal");
    assert_eq!(wal.len(), 9, "{wal:?}");
    for covered in &wal[..2] {
        std::fs::remove_file(covered).expect("remove covered segment");
    }
    let server = Server::start(&storage, &[]);

    let info = library_info(&server.http, "snap");
    assert_eq!(
        (
            info["documents"].as_u64(),
            info["chunks"].as_u64(),
            info["seq"].as_u64()
        ),
        (Some(14), Some(14), Some(18)),
        "{info}"
    );
    for (i, doc) in docs.iter().enumerate() {
        if i == 3 {
            continue;
        }
        assert_found_first(&server.http, "snap", if i == 4 { &changed } else { doc });
        assert_stored(&server.http, "snap", if i == 4 { &changed } else { doc });
    }
    let gone = server
        .http
        .get(&format!("/v1/libraries/snap/documents/{}", encode(deleted)));
    assert_error(&gone, 404, "not_found");
}

#[test]
fn host_sigterm_writes_a_snapshot_that_the_restart_loads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = dir.path().display().to_string();
    let docs = dataset::documents(10);
    let mut server = Server::start(&storage, &[]);
    create_library(&server.http, "term", dataset::DIM);
    let batch = json!({"documents": docs[..8]});
    assert_eq!(
        server
            .http
            .post("/v1/libraries/term/documents/batch", &batch)
            .0,
        200
    );
    assert_eq!(
        server.http.post("/v1/libraries/term/documents", &docs[8]).0,
        200
    );
    assert!(objects(dir.path(), "term", "snapshots").is_empty());

    assert!(
        server.guard.terminate(Duration::from_secs(60)),
        "SIGTERM must exit 0"
    );
    let snapshots = objects(dir.path(), "term", "snapshots");
    assert_eq!(snapshots.len(), 1, "graceful shutdown writes one snapshot");
    assert!(
        snapshots[0].ends_with("00000000000000000010.snap"),
        "{snapshots:?}"
    );

    // Only the snapshot remains: the restart must load it.
    for segment in objects(dir.path(), "term", "wal") {
        std::fs::remove_file(segment).expect("remove segment");
    }
    let server = Server::start(&storage, &[]);
    let info = library_info(&server.http, "term");
    assert_eq!(
        (info["documents"].as_u64(), info["seq"].as_u64()),
        (Some(9), Some(10)),
        "{info}"
    );
    for doc in &docs[..9] {
        assert_found_first(&server.http, "term", doc);
    }
    // The log continues after the snapshot, across another crash.
    assert_eq!(
        server.http.post("/v1/libraries/term/documents", &docs[9]).0,
        200
    );
    let server = server.crash_and_restart();
    assert_stored(&server.http, "term", &docs[9]);
    assert_eq!(library_info(&server.http, "term")["seq"], 11);
}

#[test]
fn host_deletes_a_library_with_its_objects() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = dir.path().display().to_string();
    let docs = dataset::documents(3);
    let server = Server::start(&storage, &[]);
    create_library(&server.http, "gone", dataset::DIM);
    assert_eq!(
        server.http.post("/v1/libraries/gone/documents", &docs[0]).0,
        200
    );
    assert_eq!(server.http.post_bytes("/v1/libraries/gone/snapshot").0, 200);
    let reply = server.http.delete("/v1/libraries/gone");
    assert_eq!(reply.0, 204, "{}", reply.1);
    assert_error(&server.http.get("/v1/libraries/gone"), 404, "not_found");
    assert!(objects(dir.path(), "gone", "wal").is_empty());
    assert!(objects(dir.path(), "gone", "snapshots").is_empty());
    assert_error(&server.http.delete("/v1/libraries/gone"), 404, "not_found");

    // The name is free again, and the new library starts from nothing.
    create_library(&server.http, "gone", 4);
    let server = server.crash_and_restart();
    let info = library_info(&server.http, "gone");
    assert_eq!(
        (info["dimension"].as_u64(), info["documents"].as_u64()),
        (Some(4), Some(0))
    );
    let listed = server.http.get("/v1/libraries");
    assert_eq!(listed.0, 200);
    assert_eq!(
        listed.1["libraries"].as_array().map(Vec::len),
        Some(1),
        "{}",
        listed.1
    );
}

#[test]
fn host_rejects_bad_input_with_json_errors() {
    let server = Server::start_with("memory://", &[], &["--max-body-mb", "1"]);
    let http = &server.http;
    create_library(http, "bad", 4);
    let upsert = |body: &Value| http.post("/v1/libraries/bad/documents", body);
    let chunk = |embedding: Value| json!({"chunks": [{"text": "t", "embedding": embedding}]});

    // wrong dimension
    let reply = upsert(&chunk(json!([1.0, 2.0, 3.0])));
    assert_error(&reply, 400, "invalid");
    assert!(
        reply.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("dimension"))
    );
    // unknown library
    assert_error(&http.get("/v1/libraries/nope"), 404, "not_found");
    assert_error(
        &http.post("/v1/libraries/nope/documents", &chunk(json!([1, 0, 0, 0]))),
        404,
        "not_found",
    );
    assert_error(
        &http.post(
            "/v1/libraries/nope/search",
            &json!({"vector": [1, 0, 0, 0]}),
        ),
        404,
        "not_found",
    );
    assert_error(
        &http.get("/v1/libraries/bad/documents/none"),
        404,
        "not_found",
    );
    assert_error(
        &http.delete("/v1/libraries/bad/documents/none"),
        404,
        "not_found",
    );
    // malformed JSON
    let reply = http.post_raw("/v1/libraries/bad/documents", b"{\"chunks\": [");
    assert_error(&reply, 400, "invalid");
    assert!(
        reply.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("malformed JSON"))
    );
    assert_error(&http.post_raw("/v1/libraries", b""), 400, "invalid");
    // infinity: 1e39 overflows f32; NaN is not JSON at all
    let reply = http.post_raw(
        "/v1/libraries/bad/documents",
        br#"{"chunks":[{"text":"t","embedding":[1e39,0,0,0]}]}"#,
    );
    assert_error(&reply, 400, "invalid");
    assert!(
        reply.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("non-finite")),
        "{}",
        reply.1
    );
    let reply = http.post_raw(
        "/v1/libraries/bad/search",
        br#"{"vector":[NaN,0,0,0],"k":1}"#,
    );
    assert_error(&reply, 400, "invalid");
    assert!(
        reply.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("malformed JSON"))
    );
    assert_error(
        &http.post(
            "/v1/libraries/bad/search",
            &json!({"vector": [1e39, 0, 0, 0]}),
        ),
        400,
        "invalid",
    );
    // empty chunk list
    assert_error(&upsert(&json!({"chunks": []})), 400, "invalid");
    // unknown fields
    assert_error(
        &upsert(&json!({"chunks": [{"text": "t", "embeddings": [1, 0, 0, 0]}]})),
        400,
        "invalid",
    );
    assert_error(
        &http.post(
            "/v1/libraries",
            &json!({"name": "x", "dimension": 4, "colour": "red"}),
        ),
        400,
        "invalid",
    );
    // duplicate library, bad library names and dimensions
    assert_error(
        &http.post("/v1/libraries", &json!({"name": "bad", "dimension": 4})),
        409,
        "conflict",
    );
    assert_error(
        &http.post("/v1/libraries", &json!({"name": "a/b", "dimension": 4})),
        400,
        "invalid",
    );
    assert_error(
        &http.post("/v1/libraries", &json!({"name": "z", "dimension": 0})),
        400,
        "invalid",
    );
    // k = 0
    assert_error(
        &http.post(
            "/v1/libraries/bad/search",
            &json!({"vector": [1, 0, 0, 0], "k": 0}),
        ),
        400,
        "invalid",
    );
    // unknown routes
    assert_error(&http.get("/v1/nothing"), 404, "not_found");
    assert_error(
        &http.post("/v1/libraries/bad/frobnicate", &json!({})),
        404,
        "not_found",
    );
    // wrong methods
    let put = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut resp = put
        .put(format!("{}/v1/libraries", http.base))
        .send(b"{}".as_slice())
        .expect("PUT");
    let body: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap_or_default())
        .unwrap_or(Value::Null);
    assert_error(&(resp.status().as_u16(), body), 405, "invalid");
    assert_error(&http.get("/v1/libraries/bad/search"), 405, "invalid");
    assert_error(&http.delete("/v1/libraries/bad/documents"), 405, "invalid");
    // A body over the limit (1 MiB here) is refused from its declared length, before
    // it is sent: only the headers go out, so the answer cannot race the upload.
    let reply = post_headers_only(&http.base, "/v1/libraries/bad/documents", 2 << 20);
    assert_error(&reply, 413, "invalid");

    // None of it reached the log.
    let info = library_info(http, "bad");
    assert_eq!(
        (info["documents"].as_u64(), info["seq"].as_u64()),
        (Some(0), Some(1)),
        "{info}"
    );
    let health = http.get("/health");
    assert_eq!((health.0, &health.1["runtime"]), (200, &json!("host")));
}

#[test]
fn host_batch_upsert_reports_each_document_and_commits_one_segment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = dir.path().display().to_string();
    let mut docs = dataset::documents(6);
    docs[2]["chunks"][0]["embedding"] = json!([0.5, 0.5]);
    docs[4]["chunks"] = json!([]);
    let server = Server::start(&storage, &[]);
    create_library(&server.http, "batch", dataset::DIM);
    assert_eq!(objects(dir.path(), "batch", "wal").len(), 1);

    let reply = server.http.post(
        "/v1/libraries/batch/documents/batch",
        &json!({"documents": docs}),
    );
    assert_eq!(reply.0, 200, "{}", reply.1);
    let results = reply.1["results"].as_array().expect("results");
    assert_eq!(results.len(), 6);
    for (i, result) in results.iter().enumerate() {
        if i == 2 || i == 4 {
            assert_eq!(result["error"]["kind"], "invalid", "result {i}: {result}");
            assert!(
                result["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        } else {
            assert_eq!(result["id"], docs[i]["id"], "result {i}: {result}");
            assert_eq!(result["chunk_ids"].as_array().map(Vec::len), Some(1));
        }
    }
    assert_eq!(
        objects(dir.path(), "batch", "wal").len(),
        2,
        "one segment for the whole batch"
    );

    // A batch where nothing is accepted writes nothing.
    let reply = server.http.post(
        "/v1/libraries/batch/documents/batch",
        &json!({"documents": [docs[2], docs[4]]}),
    );
    assert_eq!(reply.0, 200, "{}", reply.1);
    assert_eq!(objects(dir.path(), "batch", "wal").len(), 2);

    let server = server.crash_and_restart();
    for (i, doc) in docs.iter().enumerate() {
        let id = doc["id"].as_str().expect("id");
        if i == 2 || i == 4 {
            let reply = server
                .http
                .get(&format!("/v1/libraries/batch/documents/{}", encode(id)));
            assert_error(&reply, 404, "not_found");
        } else {
            assert_found_first(&server.http, "batch", doc);
        }
    }
    let info = library_info(&server.http, "batch");
    assert_eq!(
        (info["documents"].as_u64(), info["seq"].as_u64()),
        (Some(4), Some(5)),
        "{info}"
    );
}

/// Measures one search through the component on 1,000 × 384 and checks that every
/// query vector finds its own document.
#[test]
fn host_searches_1000_documents_of_384_dimensions() {
    let docs = dataset::documents(1000);
    let server = Server::start("memory://", &[]);
    create_library(&server.http, "bench", dataset::DIM);
    for part in docs.chunks(250) {
        let reply = server.http.post(
            "/v1/libraries/bench/documents/batch",
            &json!({"documents": part}),
        );
        assert_eq!(reply.0, 200);
    }
    assert_eq!(library_info(&server.http, "bench")["documents"], 1000);

    let queries: Vec<&Value> = docs.iter().step_by(5).collect();
    let mut took_ms = 0.0;
    let started = Instant::now();
    for doc in &queries {
        let reply = server.http.post(
            "/v1/libraries/bench/search",
            &json!({"vector": embedding(doc), "k": 10, "include": []}),
        );
        assert_eq!(reply.0, 200, "{}", reply.1);
        assert_eq!(reply.1["hits"][0]["document_id"], doc["id"]);
        assert_eq!(reply.1["hits"].as_array().map(Vec::len), Some(10));
        took_ms += reply.1["took_ms"].as_f64().expect("took_ms");
    }
    let n = queries.len() as f64;
    eprintln!(
        "host search, 1000 x 384 flat, k=10: {:.3} ms in the host (parse + component call), {:.3} ms per HTTP round trip, {} queries",
        took_ms / n,
        started.elapsed().as_secs_f64() * 1e3 / n,
        queries.len()
    );
}

/// Starts the host on `storage` expecting startup to fail; returns its stderr.
fn start_expecting_failure(storage: &str) -> String {
    let mut cmd = Command::new(host_bin());
    cmd.arg("serve")
        .args([
            "--addr",
            &format!("127.0.0.1:{}", free_port()),
            "--storage",
            storage,
        ])
        .arg("--component")
        .arg(edge_wasm())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut guard = ChildGuard::spawn("arrwdb", &mut cmd);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Ok(Some(status)) = guard.child.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "arrwdb kept running on a broken log"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "arrwdb must fail on a broken log");
    let mut stderr = String::new();
    if let Some(mut pipe) = guard.child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).expect("read stderr");
    }
    stderr
}

#[test]
fn host_refuses_to_start_on_a_corrupt_or_gapped_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = dir.path().display().to_string();
    let docs = dataset::documents(2);
    let mut server = Server::start(&storage, &[]);
    create_library(&server.http, "broken", dataset::DIM);
    for doc in &docs {
        assert_eq!(
            server.http.post("/v1/libraries/broken/documents", doc).0,
            200
        );
    }
    server.guard.kill();
    let wal = objects(dir.path(), "broken", "wal");
    assert_eq!(wal.len(), 3);

    // One flipped bit in the middle segment: startup stops and names the object.
    let original = std::fs::read(&wal[1]).expect("read segment");
    let mut flipped = original.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    std::fs::write(&wal[1], &flipped).expect("corrupt segment");
    let stderr = start_expecting_failure(&storage);
    assert!(
        stderr.contains("default/broken/wal/00000000000000000002.wal"),
        "{stderr}"
    );
    assert!(stderr.contains("checksum"), "{stderr}");

    // A missing segment is a gap, never silently skipped.
    std::fs::remove_file(&wal[1]).expect("remove segment");
    let stderr = start_expecting_failure(&storage);
    assert!(
        stderr.contains("default/broken/wal/00000000000000000003.wal"),
        "{stderr}"
    );
    assert!(stderr.contains("gap"), "{stderr}");

    // Repaired, it starts with everything.
    std::fs::write(&wal[1], &original).expect("restore segment");
    let server = Server::start(&storage, &[]);
    assert_eq!(library_info(&server.http, "broken")["documents"], 2);
}

#[test]
fn host_resets_an_instance_that_runs_out_of_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = dir.path().display().to_string();
    let docs = dataset::documents(3000);
    let server = Server::start_with(&storage, &[], &["--memory-limit-mb", "8"]);
    create_library(&server.http, "big", dataset::DIM);
    let reply = server.http.post(
        "/v1/libraries/big/documents/batch",
        &json!({"documents": docs[..100]}),
    );
    assert_eq!(reply.0, 200, "{}", reply.1);

    // 3,000 more vectors do not fit in 8 MiB: the instance traps, the request fails,
    // nothing of it is written, and the next request runs on a fresh instance rebuilt
    // from storage.
    let reply = server.http.post(
        "/v1/libraries/big/documents/batch",
        &json!({"documents": docs}),
    );
    assert_error(&reply, 500, "internal");
    assert!(
        reply.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("trapped")),
        "{}",
        reply.1
    );
    let info = library_info(&server.http, "big");
    assert_eq!(
        (info["documents"].as_u64(), info["seq"].as_u64()),
        (Some(100), Some(101)),
        "{info}"
    );
    assert_found_first(&server.http, "big", &docs[42]);
    assert_eq!(
        server
            .http
            .post("/v1/libraries/big/documents", &docs[200])
            .0,
        200
    );
    assert_eq!(objects(dir.path(), "big", "wal").len(), 3);
}

/// Distinct pseudo-random vectors of `dim` components in [-1, 1): a splitmix64-style
/// hash of the document number `d` and the position.
fn hashed_vector(d: usize, dim: usize) -> Vec<f32> {
    (0..dim as u64)
        .map(|i| {
            let mut x = (d as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (i + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x ^= x >> 31;
            x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^= x >> 29;
            (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

/// Rebuild to HNSW, optimize and the request limits over the JSON API; shared by the
/// host and the edge tests (the same routes and messages in both runtimes).
pub(crate) fn rebuild_optimize_and_limits_over_http(http: &Http) {
    const DIM: usize = 8;
    let vector = |d: usize| hashed_vector(d, DIM);
    let reply = http.post("/v1/libraries", &json!({"name": "maint", "dimension": DIM}));
    assert_eq!(reply.0, 201, "create: {}", reply.1);
    let documents: Vec<Value> = (0..40)
        .map(|d| json!({"id": format!("d{d}"), "chunks": [{"text": format!("t{d}"), "embedding": vector(d)}]}))
        .collect();
    let reply = http.post(
        "/v1/libraries/maint/documents/batch",
        &json!({"documents": documents}),
    );
    assert_eq!(reply.0, 200, "batch: {}", reply.1);
    for d in (0..40).step_by(3) {
        assert_eq!(
            http.delete(&format!("/v1/libraries/maint/documents/d{d}"))
                .0,
            204
        );
    }
    let live = 40 - (0..40).step_by(3).count() as u64;
    let top = |d: usize| {
        let reply = http.post(
            "/v1/libraries/maint/search",
            &json!({"vector": vector(d), "k": 5}),
        );
        assert_eq!(reply.0, 200, "search: {}", reply.1);
        let ids: Vec<String> = reply.1["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .map(|h| h["chunk_id"].as_str().expect("id").to_string())
            .collect();
        ids
    };
    let exact: Vec<Vec<String>> = [1, 2, 4, 38].iter().map(|&d| top(d)).collect();

    let reply = http.post(
        "/v1/libraries/maint/rebuild",
        &json!({"index": {"type": "hnsw", "m": 8}}),
    );
    assert_eq!(reply.0, 200, "rebuild: {}", reply.1);
    assert_eq!(reply.1["index"]["type"], "hnsw");
    assert_eq!(reply.1["index"]["m"], 8);
    assert_eq!(reply.1["chunks"], live);
    let info = library_info(http, "maint");
    assert_eq!(info["index"], reply.1["index"], "GET reports the new index");
    for (&d, expected) in [1, 2, 4, 38].iter().zip(&exact) {
        assert_eq!(&top(d)[..1], &expected[..1], "hnsw finds d{d} itself first");
    }

    let seq = info["seq"].as_u64().expect("seq");
    let reply = http.post_raw("/v1/libraries/maint/optimize", b"");
    assert_eq!(reply.0, 200, "optimize: {}", reply.1);
    assert_eq!(
        (reply.1["chunks"].as_u64(), reply.1["seq"].as_u64()),
        (Some(live), Some(seq + 1))
    );
    assert_eq!(reply.1["index"]["type"], "hnsw");
    let reply = http.post("/v1/libraries/maint/optimize", &json!({}));
    assert_eq!(reply.0, 200, "optimize {{}}: {}", reply.1);
    for (&d, expected) in [1, 2, 4, 38].iter().zip(&exact) {
        assert_eq!(&top(d)[..1], &expected[..1], "after optimize");
    }
    // Back to flat: exactly the results before any rebuild.
    let reply = http.post(
        "/v1/libraries/maint/rebuild",
        &json!({"index": {"type": "flat"}}),
    );
    assert_eq!(reply.0, 200, "rebuild flat: {}", reply.1);
    for (&d, expected) in [1, 2, 4, 38].iter().zip(&exact) {
        assert_eq!(&top(d), expected, "flat after optimize");
    }

    // Refusals.
    let message = |reply: &(u16, Value)| {
        reply.1["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let reply = http.post(
        "/v1/libraries/maint/rebuild",
        &json!({"index": {"type": "hnsw", "m": 1}}),
    );
    assert_error(&reply, 400, "invalid");
    assert!(message(&reply).contains("`m`"), "{}", reply.1);
    assert_error(
        &http.post(
            "/v1/libraries/maint/rebuild",
            &json!({"index": {"type": "flat"}, "extra": 1}),
        ),
        400,
        "invalid",
    );
    assert_error(
        &http.post("/v1/libraries/maint/rebuild", &json!({})),
        400,
        "invalid",
    );
    assert_error(
        &http.post("/v1/libraries/maint/optimize", &json!({"extra": 1})),
        400,
        "invalid",
    );
    assert_error(
        &http.post(
            "/v1/libraries/nope/rebuild",
            &json!({"index": {"type": "flat"}}),
        ),
        404,
        "not_found",
    );
    assert_error(
        &http.post_raw("/v1/libraries/nope/optimize", b""),
        404,
        "not_found",
    );

    // Limits.
    let reply = http.post(
        "/v1/libraries/maint/search",
        &json!({"vector": vector(1), "k": 1001}),
    );
    assert_error(&reply, 400, "invalid");
    assert_eq!(message(&reply), "k must be between 1 and 1000, got 1001");
    let reply = http.post(
        "/v1/libraries/maint/search",
        &json!({"vector": vector(1), "k": 1000}),
    );
    assert_eq!(reply.0, 200, "k = 1000: {}", reply.1);
    let reply = http.post(
        "/v1/libraries/maint/documents",
        &json!({"id": "big", "chunks": [{"text": "x".repeat(70 * 1024), "embedding": vector(1)}]}),
    );
    assert_error(&reply, 400, "invalid");
    assert!(
        message(&reply).starts_with("chunks[0].text is 71680 bytes")
            && message(&reply).contains("65536"),
        "{}",
        reply.1
    );
    let reply = http.post(
        "/v1/libraries/maint/documents",
        &json!({"id": "d".repeat(600), "chunks": [{"embedding": vector(1)}]}),
    );
    assert_error(&reply, 400, "invalid");
    assert!(message(&reply).contains("512 bytes"), "{}", reply.1);
    let reply = http.post(
        "/v1/libraries/maint/documents",
        &json!({"id": "ok", "chunks": [{"id": "c".repeat(512), "text": "y".repeat(64 * 1024), "embedding": vector(1)}]}),
    );
    assert_eq!(reply.0, 200, "at the limits: {}", reply.1);
    assert_eq!(library_info(http, "maint")["chunks"], live + 1);
}

#[test]
fn host_rebuilds_optimizes_and_enforces_limits_and_keeps_them_across_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = dir.path().display().to_string();
    let server = Server::start(&storage, &[]);
    rebuild_optimize_and_limits_over_http(&server.http);
    let reply = server.http.post(
        "/v1/libraries/maint/rebuild",
        &json!({"index": {"type": "hnsw", "m": 12}}),
    );
    assert_eq!(reply.0, 200, "rebuild: {}", reply.1);
    let before = library_info(&server.http, "maint");
    // The rebuild and optimize records replay from the WAL after a crash.
    let server = server.crash_and_restart();
    let after = library_info(&server.http, "maint");
    assert_eq!(after, before);
    assert_eq!(after["index"]["m"], 12);
    let reply = server.http.post(
        "/v1/libraries/maint/search",
        &json!({"vector": [1, 0, 0, 0, 0, 0, 0, 0], "k": 3}),
    );
    assert_eq!(reply.0, 200, "search: {}", reply.1);
    assert_eq!(reply.1["hits"].as_array().map(Vec::len), Some(3));
}

/// `arrwdb_index_rebuilds_total{runtime,result}` of a running server.
pub(crate) fn index_rebuilds(http: &Http, runtime: &str, result: &str) -> f64 {
    let text = ureq::get(format!("{}/metrics", http.base))
        .call()
        .expect("GET /metrics")
        .body_mut()
        .read_to_string()
        .expect("metrics text");
    let series =
        format!("arrwdb_index_rebuilds_total{{runtime=\"{runtime}\",result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} not in /metrics"))
}

/// Creates library `name` of `docs` hashed vectors of `dim` components.
fn load_hashed(http: &Http, name: &str, docs: usize, dim: usize) {
    create_library(http, name, dim);
    for start in (0..docs).step_by(500) {
        let documents: Vec<Value> = (start..docs.min(start + 500))
            .map(|d| json!({"id": format!("d{d}"), "chunks": [{"text": "", "embedding": hashed_vector(d, dim)}]}))
            .collect();
        let reply = http.post(
            &format!("/v1/libraries/{name}/documents/batch"),
            &json!({"documents": documents}),
        );
        assert_eq!(reply.0, 200, "batch: {}", reply.1);
    }
}

/// The writer applies `RebuildIndex` and `Optimize` natively (several threads, outside
/// its instance: `host/src/native_build.rs`) and hands its read instances the result; a
/// replica with `--build-threads 0` replays the same records inside its component, on
/// one thread. Both must hold the very same library: the same answers, scores
/// included, for every query, over enough documents (2,500) that the rebuild links in
/// parallel batches. The metrics show where each rebuild ran.
#[test]
fn native_rebuilds_match_a_replica_that_replays_them() {
    const DIM: usize = 16;
    const DOCS: usize = 2_500;
    let vector = |d: usize| hashed_vector(d, DIM);
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = dir.path().display().to_string();
    let writer = Server::start_with(
        &storage,
        &[],
        &["--read-instances", "2", "--build-threads", "2"],
    );
    load_hashed(&writer.http, "big", DOCS, DIM);
    let replica = Server::start_with(
        &storage,
        &[],
        &[
            "--replica-of",
            &storage,
            "--poll-interval-ms",
            "50",
            "--build-threads",
            "0",
        ],
    );
    let caught_up = |seq: u64| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while library_info(&replica.http, "big")["seq"].as_u64() != Some(seq) {
            assert!(
                Instant::now() < deadline,
                "the replica did not reach seq {seq}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    caught_up(
        library_info(&writer.http, "big")["seq"]
            .as_u64()
            .expect("seq"),
    );

    let reply = writer.http.post(
        "/v1/libraries/big/rebuild",
        &json!({"index": {"type": "hnsw", "m": 8, "ef_construction": 64}}),
    );
    assert_eq!(reply.0, 200, "rebuild: {}", reply.1);
    for d in (0..DOCS).step_by(5) {
        assert_eq!(
            writer
                .http
                .delete(&format!("/v1/libraries/big/documents/d{d}"))
                .0,
            204
        );
    }
    let reply = writer.http.post("/v1/libraries/big/optimize", &json!({}));
    assert_eq!(reply.0, 200, "optimize: {}", reply.1);
    let seq = reply.1["seq"].as_u64().expect("seq");
    caught_up(seq);
    assert_eq!(index_rebuilds(&writer.http, "native", "built"), 2.0);
    assert_eq!(index_rebuilds(&writer.http, "component", "built"), 0.0);
    // Once each: its read instances get the library's snapshot, and following a
    // stream of writes never reloads the library (and replays the rebuilds again).
    assert_eq!(index_rebuilds(&replica.http, "native", "built"), 0.0);
    assert_eq!(index_rebuilds(&replica.http, "component", "built"), 2.0);

    let hits = |http: &Http, d: usize| -> Value {
        let reply = http.post(
            "/v1/libraries/big/search",
            &json!({"vector": vector(d), "k": 10, "params": {"ef": 16}}),
        );
        assert_eq!(reply.0, 200, "search: {}", reply.1);
        reply.1["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .map(|h| json!([h["document_id"], h["chunk_id"], h["score"]]))
            .collect()
    };
    let mut found_itself = 0;
    for d in (1..DOCS).step_by(37) {
        let ours = hits(&writer.http, d);
        assert_eq!(
            ours,
            hits(&replica.http, d),
            "query d{d}: writer and replica differ"
        );
        found_itself += usize::from(ours[0][0] == format!("d{d}") && d % 5 != 0);
    }
    // The graph is a real HNSW graph: a live document finds itself first.
    let live_queries = (1..DOCS).step_by(37).filter(|d| d % 5 != 0).count();
    assert!(
        found_itself * 10 >= live_queries * 9,
        "{found_itself}/{live_queries}"
    );
}

/// A native rebuild keeps the instance's call deadline: one far too large for 1 s is
/// given up within a few seconds with the deadline error, logs nothing and leaves the
/// library as it was (same sequence, index and answers); a modest rebuild then
/// succeeds natively, and survives a restart.
#[test]
fn a_native_rebuild_stops_at_the_call_deadline_and_changes_nothing() {
    // About 5 s of building natively on two threads (measured: 6,000 × 128 took 3.1 s).
    const DIM: usize = 128;
    const DOCS: usize = 8_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = dir.path().display().to_string();
    let args = ["--call-timeout-secs", "1", "--build-threads", "2"];
    let server = Server::start_with(&storage, &[], &args);
    load_hashed(&server.http, "lib", DOCS, DIM);
    let before = library_info(&server.http, "lib");
    let query = json!({"vector": hashed_vector(7, DIM), "k": 5});
    let answer = server.http.post("/v1/libraries/lib/search", &query);
    assert_eq!(answer.0, 200, "{}", answer.1);

    let started = Instant::now();
    let reply = server.http.post(
        "/v1/libraries/lib/rebuild",
        &json!({"index": {"type": "hnsw", "m": 128, "ef_construction": 4096}}),
    );
    let took = started.elapsed();
    assert_error(&reply, 500, "internal");
    let message = reply.1["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("index rebuild exceeded its 1s deadline")
            && message.contains("the library is unchanged")
            && !message.contains("trapped"),
        "{message}"
    );
    assert!(took < Duration::from_secs(6), "not cut short: {took:?}");
    assert_eq!(index_rebuilds(&server.http, "native", "failed"), 1.0);
    assert_eq!(library_info(&server.http, "lib"), before);
    let again = server.http.post("/v1/libraries/lib/search", &query);
    assert_eq!(again.0, 200, "{}", again.1);
    assert_eq!(again.1["hits"], answer.1["hits"]);

    let reply = server.http.post(
        "/v1/libraries/lib/rebuild",
        &json!({"index": {"type": "hnsw", "m": 8, "ef_construction": 32}}),
    );
    assert_eq!(reply.0, 200, "rebuild: {}", reply.1);
    assert_eq!(index_rebuilds(&server.http, "native", "built"), 1.0);
    assert_eq!(
        reply.1["seq"].as_u64(),
        Some(before["seq"].as_u64().expect("seq") + 1)
    );
    let rebuilt = server.http.post("/v1/libraries/lib/search", &query);
    assert_eq!(rebuilt.1["hits"][0]["document_id"], "d7", "{}", rebuilt.1);
    drop(server);
    let server = Server::start_with(&storage, &[], &args);
    let info = library_info(&server.http, "lib");
    assert_eq!(info["index"]["type"], "hnsw", "{info}");
    assert_eq!(info["seq"], reply.1["seq"]);
    let restarted = server.http.post("/v1/libraries/lib/search", &query);
    assert_eq!(restarted.1["hits"], rebuilt.1["hits"]);
}

/// Sends a POST whose headers declare `length` body bytes but sends no body, and reads
/// the answer (the server must answer from the headers alone).
fn post_headers_only(base: &str, path: &str, length: usize) -> (u16, Value) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("send headers");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {response:?}"));
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn host_lists_documents_by_cursor_and_deletes_by_ids_and_by_filter() {
    let server = Server::start("memory://", &[]);
    let http = &server.http;
    create_library(http, "pages", 2);
    for i in 0..7 {
        let color = if i % 2 == 0 { "red" } else { "blue" };
        let reply = http.post(
            "/v1/libraries/pages/documents",
            &json!({"id": format!("d{i}"), "metadata": {"color": color},
                    "chunks": [{"text": "t", "embedding": [1.0, i as f32]}]}),
        );
        assert_eq!(reply.0, 200, "{}", reply.1);
    }
    // Pages of 3 in id order, until next_cursor is absent.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let query = match &cursor {
            Some(c) => format!("?limit=3&cursor={}", encode(c)),
            None => "?limit=3".into(),
        };
        let page = http.get(&format!("/v1/libraries/pages/documents{query}"));
        assert_eq!(page.0, 200, "{}", page.1);
        let docs = page.1["documents"].as_array().expect("documents").clone();
        assert!(docs.len() <= 3);
        seen.extend(
            docs.iter()
                .map(|d| d["id"].as_str().expect("id").to_string()),
        );
        match page.1["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.into()),
            None => break,
        }
    }
    let all: Vec<String> = (0..7).map(|i| format!("d{i}")).collect();
    assert_eq!(seen, all);
    // Filter as a JSON string.
    let red = http.get(&format!(
        "/v1/libraries/pages/documents?filter={}",
        encode(r#"{"color":"red"}"#)
    ));
    assert_eq!(red.0, 200, "{}", red.1);
    assert_eq!(red.1["documents"].as_array().map(Vec::len), Some(4));
    assert_error(
        &http.get("/v1/libraries/pages/documents?filter=notjson"),
        400,
        "invalid",
    );
    assert_error(
        &http.get("/v1/libraries/pages/documents?bogus=1"),
        400,
        "invalid",
    );
    assert_error(&http.get("/v1/libraries/nope/documents"), 404, "not_found");

    // Delete by ids (an unknown id is not listed), then by filter.
    let deleted = http.post(
        "/v1/libraries/pages/documents/delete",
        &json!({"ids": ["d0", "d1", "zzz"]}),
    );
    assert_eq!(deleted.0, 200, "{}", deleted.1);
    assert_eq!(deleted.1, json!({"deleted": 2, "ids": ["d0", "d1"]}));
    let deleted = http.post(
        "/v1/libraries/pages/documents/delete",
        &json!({"filter": {"color": "red"}}),
    );
    assert_eq!(deleted.0, 200, "{}", deleted.1);
    assert_eq!(deleted.1, json!({"deleted": 3, "ids": ["d2", "d4", "d6"]}));
    assert_error(
        &http.post("/v1/libraries/pages/documents/delete", &json!({})),
        400,
        "invalid",
    );
    let left = http.get("/v1/libraries/pages/documents");
    let ids: Vec<&str> = left.1["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(ids, ["d3", "d5"]);
    assert_error(
        &http.get("/v1/libraries/pages/documents/d0"),
        404,
        "not_found",
    );

    // Batch size limit, empty batch, and a wrong method.
    let too_many: Vec<Value> = (0..=arrwdb_core::api::MAX_BATCH_DOCUMENTS)
        .map(|i| json!({"id": format!("b{i}"), "chunks": []}))
        .collect();
    let reply = http.post(
        "/v1/libraries/pages/documents/batch",
        &json!({"documents": too_many}),
    );
    assert_error(&reply, 400, "invalid");
    assert!(
        reply.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("batch"))
    );
    assert_error(
        &http.post(
            "/v1/libraries/pages/documents/batch",
            &json!({"documents": []}),
        ),
        400,
        "invalid",
    );
    assert_error(
        &http.request("PUT", "/v1/libraries/pages/documents", &[], None),
        405,
        "invalid",
    );
}

#[test]
fn host_writer_reads_see_segments_another_writer_appended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().to_str().expect("utf-8").to_string();
    let a = Server::start(&storage, &[]);
    create_library(&a.http, "shared", 2);
    let doc = |id: &str| json!({"id": id, "chunks": [{"text": "t", "embedding": [1.0, 0.5]}]});
    assert_eq!(
        a.http
            .post("/v1/libraries/shared/documents", &doc("mine"))
            .0,
        200
    );
    // Another writer (as an edge worker would) appends to the same log.
    let b = Server::start(&storage, &[]);
    assert_eq!(
        b.http
            .post("/v1/libraries/shared/documents", &doc("theirs"))
            .0,
        200
    );
    // A does not write, yet its reads pick the segment up within about a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.http.get("/v1/libraries/shared/documents/theirs").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the writer never saw the foreign segment"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(a.http.get("/v1/libraries/shared").1["documents"], 2);
}

#[test]
fn the_console_is_served_with_a_strict_content_security_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Auth on: the console itself loads without a key; its API calls need one.
    let server = Server::start(
        dir.path().to_str().expect("utf-8"),
        &[("ARRWDB_NO_AUTH".into(), "false".into())],
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let base = server.http.base.clone();
    for (path, content_type, needle) in [
        ("/console", "text/html", "console.js"),
        ("/console.js", "text/javascript", "Authorization"),
    ] {
        let mut reply = agent
            .get(format!("{base}{path}"))
            .call()
            .expect("GET the console");
        assert_eq!(reply.status().as_u16(), 200, "{path}");
        let header = |name: &str| {
            reply
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert!(header("content-type").starts_with(content_type), "{path}");
        let csp = header("content-security-policy");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
            "{path}: {csp}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
        let body = reply.body_mut().read_to_string().expect("body");
        assert!(body.contains(needle), "{path} does not mention {needle}");
    }
    // The page is the one in www/, so the e2e tests of www/ test what the host serves.
    let page = std::fs::read_to_string(crate::support::workspace_root().join("www/console.html"))
        .expect("www/console.html");
    let served = agent
        .get(format!("{base}/console"))
        .call()
        .expect("GET")
        .body_mut()
        .read_to_string()
        .expect("body");
    assert_eq!(served, page);
    assert_error(
        &server.http.without_key().get("/v1/libraries"),
        401,
        "unauthorized",
    );
}
