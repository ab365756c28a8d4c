//! The edge component served by a real wasi:http runtime (`wasmtime serve`), with its
//! data in a mounted directory: every request is a fresh instance, so everything it
//! returns came back from storage.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::support::{ChildGuard, Http, assert_error, edge_wasm, free_port, program};

/// Starts `wasmtime serve -Scli` on a free port with `data` mounted at `/data`.
pub fn start_edge(data: &Path) -> (ChildGuard, Http) {
    let port = free_port();
    let mut command = Command::new(program("wasmtime"));
    command
        .arg("serve")
        .arg("-Scli")
        .arg("--dir")
        .arg(format!("{}::/data", data.display()))
        // These tests are about the data API on a directory; keys are tested in
        // edge_s3.rs.
        .arg("--env")
        .arg("ARRWDB_EDGE_AUTH=off")
        .arg("--addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg(edge_wasm())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let guard = ChildGuard::spawn("wasmtime serve", &mut command);
    let http = Http::new(format!("http://127.0.0.1:{port}"));
    http.wait_ready("/health", Duration::from_secs(60));
    (guard, http)
}

#[test]
fn edge_serves_the_data_api_from_storage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, http) = start_edge(dir.path());

    let (status, health) = http.get("/health");
    assert_eq!((status, health["runtime"].as_str()), (200, Some("edge")));

    let (status, created) = http.post(
        "/v1/libraries",
        &json!({"name": "notes", "dimension": 3, "metric": "cosine"}),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "notes");
    assert_eq!(created["index"]["type"], "flat");

    let upsert = |id: &str, v: [f32; 3], text: &str| {
        http.post(
            "/v1/libraries/notes/documents",
            &json!({"id": id, "metadata": {"lang": "en"}, "chunks": [{"text": text, "embedding": v}]}),
        )
    };
    assert_eq!(
        upsert("red", [1.0, 0.0, 0.0], "warm").1,
        json!({"id": "red", "chunk_ids": ["red#0"]})
    );
    assert_eq!(upsert("green", [0.0, 1.0, 0.0], "grass").0, 200);
    assert_eq!(upsert("blue", [0.0, 0.0, 1.0], "sky").0, 200);
    // Replacing a document keeps one copy of it.
    assert_eq!(upsert("blue", [0.1, 0.0, 1.0], "sea").0, 200);

    let (status, found) = http.post(
        "/v1/libraries/notes/search",
        &json!({"vector": [0.9, 0.1, 0.0], "k": 2}),
    );
    assert_eq!(status, 200, "{found}");
    let hits = found["hits"].as_array().expect("hits");
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0]["chunk_id"], "red#0");
    assert_eq!(hits[0]["text"], "warm");
    assert_eq!(
        hits[0]["metadata"],
        json!(null),
        "chunk metadata was not set"
    );
    assert_eq!(hits[1]["chunk_id"], "green#0");
    assert!(found["took_ms"].as_f64().is_some());

    let (status, info) = http.get("/v1/libraries/notes");
    assert_eq!(
        (status, info["documents"].as_u64(), info["chunks"].as_u64()),
        (200, Some(3), Some(3))
    );
    let (status, doc) = http.get("/v1/libraries/notes/documents/blue");
    assert_eq!(
        (status, doc["chunks"][0]["text"].as_str()),
        (200, Some("sea"))
    );
    assert_eq!(doc["metadata"]["lang"], "en");

    assert_eq!(http.delete("/v1/libraries/notes/documents/red").0, 204);
    assert_error(
        &http.get("/v1/libraries/notes/documents/red"),
        404,
        "not_found",
    );
    let (_, found) = http.post(
        "/v1/libraries/notes/search",
        &json!({"vector": [1.0, 0.0, 0.0], "k": 5}),
    );
    assert!(
        found["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .all(|h| h["document_id"] != "red")
    );

    let (status, list) = http.get("/v1/libraries");
    assert_eq!(status, 200);
    assert_eq!(list["libraries"][0]["name"], "notes");

    // The log is on disk in the shared layout.
    let wal = dir.path().join("default/notes/wal");
    assert_eq!(
        std::fs::read_dir(wal).expect("wal dir").count(),
        6,
        "one segment per acknowledged write"
    );
}

#[test]
fn edge_refuses_bad_input_with_json_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, http) = start_edge(dir.path());
    assert_eq!(
        http.post("/v1/libraries", &json!({"name": "lib", "dimension": 3}))
            .0,
        201
    );
    let docs = "/v1/libraries/lib/documents";
    let reply = http.post(docs, &json!({"chunks": [{"embedding": [1.0, 2.0]}]}));
    assert_error(&reply, 400, "invalid");
    assert_eq!(
        reply.1["error"]["message"],
        "wrong vector dimension: expected 3, got 2"
    );
    assert_error(
        &http.post(
            "/v1/libraries/nope/documents",
            &json!({"chunks": [{"embedding": [1, 2, 3]}]}),
        ),
        404,
        "not_found",
    );
    assert_error(&http.post_raw(docs, b"{\"chunks\": [ {"), 400, "invalid");
    assert_error(
        &http.post_raw(docs, br#"{"chunks":[{"embedding":[NaN,1,2]}]}"#),
        400,
        "invalid",
    );
    let inf = http.post_raw(docs, br#"{"chunks":[{"embedding":[1e39,1,2]}]}"#);
    assert_error(&inf, 400, "invalid");
    assert!(
        inf.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("non-finite")),
        "{}",
        inf.1
    );
    assert_error(&http.post(docs, &json!({"chunks": []})), 400, "invalid");
    assert_error(
        &http.post(
            docs,
            &json!({"chunks": [{"embedding": [1, 2, 3]}], "extra": 1}),
        ),
        400,
        "invalid",
    );
    assert_error(
        &http.post("/v1/libraries", &json!({"name": "lib", "dimension": 3})),
        409,
        "conflict",
    );
    assert_error(
        &http.post("/v1/libraries", &json!({"name": "a/b", "dimension": 3})),
        400,
        "invalid",
    );
    assert_error(
        &http.post(
            "/v1/libraries/lib/search",
            &json!({"vector": [1, 2, 3], "k": 0}),
        ),
        400,
        "invalid",
    );
    assert_error(&http.get("/v1/nothing"), 404, "not_found");
    assert_error(&http.get("/v1/libraries/lib/search"), 405, "invalid");
    // Nothing above was written.
    let (_, info) = http.get("/v1/libraries/lib");
    assert_eq!(info["documents"], 0);
}

#[test]
fn concurrent_edge_writers_never_lose_an_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, http) = start_edge(dir.path());
    assert_eq!(
        http.post(
            "/v1/libraries",
            &json!({"name": "race", "dimension": 2, "metric": "l2"})
        )
        .0,
        201
    );
    // Two clients race for the same log positions; create-if-absent decides each one,
    // and the loser retries on the new tail.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let http = http.clone();
            std::thread::spawn(move || {
                (0..15)
                    .filter(|i| {
                        let body = json!({"id": format!("w{w}-{i}"), "chunks": [{"embedding": [w as f32, *i as f32]}]});
                        http.post("/v1/libraries/race/documents", &body).0 == 200
                    })
                    .count()
            })
        })
        .collect();
    let acknowledged: usize = writers.into_iter().map(|t| t.join().expect("writer")).sum();
    let (_, info) = http.get("/v1/libraries/race");
    assert_eq!(
        info["documents"].as_u64(),
        Some(acknowledged as u64),
        "{info}"
    );
    assert!(
        acknowledged >= 25,
        "most writes should succeed after retries, got {acknowledged}"
    );
}

#[test]
fn edge_rebuilds_optimizes_and_enforces_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, http) = start_edge(dir.path());
    // Every request is a fresh instance: the rebuilt index comes back from storage.
    crate::host::rebuild_optimize_and_limits_over_http(&http);
}

#[test]
fn edge_lists_pages_and_deletes_by_filter_like_the_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, edge) = start_edge(dir.path());
    let host_dir = tempfile::tempdir().expect("tempdir");
    let host = crate::host::Server::start(host_dir.path().to_str().expect("utf-8"), &[]);
    for http in [&edge, &host.http] {
        let (status, body) = http.post(
            "/v1/libraries",
            &json!({"name": "pages", "dimension": 2, "metric": "l2"}),
        );
        assert_eq!(status, 201, "{body}");
        let documents: Vec<_> = (0..7)
            .map(|i| {
                json!({"id": format!("d{i}"), "metadata": {"even": i % 2 == 0},
                       "chunks": [{"text": format!("t{i}"), "embedding": [i as f32, 1.0]}]})
            })
            .collect();
        let (status, body) = http.post(
            "/v1/libraries/pages/documents/batch",
            &json!({ "documents": documents }),
        );
        assert_eq!(status, 200, "{body}");
    }
    // The same pages (ids, order, cursors) from both.
    let pages = |http: &Http| {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/libraries/pages/documents?limit=3&cursor={c}"),
                None => "/v1/libraries/pages/documents?limit=3".to_string(),
            };
            let (status, page) = http.get(&path);
            assert_eq!(status, 200, "{page}");
            out.push(page.clone());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        out
    };
    let edge_pages = pages(&edge);
    assert_eq!(edge_pages.len(), 3);
    assert_eq!(edge_pages, pages(&host.http));
    // A filter, URL-encoded.
    let filtered = "/v1/libraries/pages/documents?filter=%7B%22even%22%3Atrue%7D";
    let (status, even) = edge.get(filtered);
    assert_eq!(status, 200, "{even}");
    assert_eq!(even["documents"].as_array().map(Vec::len), Some(4));
    assert_eq!(even, host.http.get(filtered).1);
    // Client mistakes are 400s, as on the host.
    for bad in ["limit=x", "filter=%7Bnot-json", "colour=red"] {
        let reply = edge.get(&format!("/v1/libraries/pages/documents?{bad}"));
        assert_error(&reply, 400, "invalid");
        assert_error(
            &host
                .http
                .get(&format!("/v1/libraries/pages/documents?{bad}")),
            400,
            "invalid",
        );
    }
    // Bulk delete by filter, then by ids; the same answers from both.
    for http in [&edge, &host.http] {
        let (status, deleted) = http.post(
            "/v1/libraries/pages/documents/delete",
            &json!({"filter": {"even": true}}),
        );
        assert_eq!(status, 200, "{deleted}");
        assert_eq!(deleted["deleted"], 4);
        let (status, deleted) = http.post(
            "/v1/libraries/pages/documents/delete",
            &json!({"ids": ["d1", "missing"]}),
        );
        assert_eq!(status, 200, "{deleted}");
        assert_eq!(deleted["ids"], json!(["d1"]));
        let (status, left) = http.get("/v1/libraries/pages/documents");
        assert_eq!(status, 200, "{left}");
        let ids: Vec<_> = left["documents"]
            .as_array()
            .expect("documents")
            .iter()
            .map(|d| d["id"].clone())
            .collect();
        assert_eq!(ids, vec![json!("d3"), json!("d5")]);
    }
}
