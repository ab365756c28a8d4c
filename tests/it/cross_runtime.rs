//! One scenario, four runtimes: the native engine, the npm package in Node, the edge
//! component under `wasmtime serve`, and the `arrwdb` host (which runs that same
//! component under wasmtime). Each creates a library, upserts the first 1,000 documents
//! of the pypi-minilm dataset and runs 20 of its queries. All four must return the same
//! chunk ids in the same order with bit-identical scores: the distance kernels reduce
//! in a fixed order (core/src/kernels.rs), so native x86-64 and wasm32 round alike.
//! Then a snapshot exported by the host must load in Node and answer identically.

use std::process::{Command, Stdio};
use std::time::Duration;

use arrwdb_core::api::{self, SearchRequest, UpsertDocumentRequest};
use arrwdb_core::{Command as EngineCommand, Engine, Query, QueryResponse};
use serde_json::{Value, json};

use crate::edge::start_edge;
use crate::support::{
    ChildGuard, Http, dataset, edge_wasm, free_port, host_bin, npm_package, workspace_root,
};

const DOCS: usize = 1000;
const QUERIES: usize = 20;
const K: u32 = 10;
const LIBRARY: &str = "crossrt";

/// One query's ranked hits: (chunk id, document id, score).
type Ranking = Vec<(String, String, f32)>;

fn create_request() -> Value {
    json!({"name": LIBRARY, "dimension": dataset::DIM, "metric": "cosine", "index": {"type": "flat"}})
}

fn rankings_from_json(replies: &[Value]) -> Vec<Ranking> {
    replies
        .iter()
        .map(|reply| {
            reply["hits"]
                .as_array()
                .unwrap_or_else(|| panic!("no hits in {reply}"))
                .iter()
                .map(|h| {
                    (
                        h["chunk_id"].as_str().expect("chunk_id").to_owned(),
                        h["document_id"].as_str().expect("document_id").to_owned(),
                        h["score"].as_f64().expect("score") as f32,
                    )
                })
                .collect()
        })
        .collect()
}

fn native(docs: &[Value], queries: &[Vec<f32>]) -> Vec<Ranking> {
    let mut engine = Engine::new();
    let config = serde_json::from_value::<api::CreateLibraryRequest>(create_request())
        .expect("request")
        .into_config()
        .expect("config");
    let record = engine
        .prepare(EngineCommand::CreateLibrary(config))
        .expect("prepare");
    engine.apply(&record).expect("apply");
    for doc in docs {
        let request: UpsertDocumentRequest = serde_json::from_value(doc.clone()).expect("document");
        let id = request.id.clone().expect("dataset ids");
        let command = EngineCommand::UpsertDocument {
            library: LIBRARY.into(),
            document: request.into_document(id),
        };
        let record = engine.prepare(command).expect("prepare");
        engine.apply(&record).expect("apply");
    }
    queries
        .iter()
        .map(|q| {
            let query = Query::Search {
                library: LIBRARY.into(),
                request: SearchRequest::vector(q.clone(), K),
            };
            match engine.query(&query).expect("search") {
                QueryResponse::Search(found) => found
                    .hits
                    .into_iter()
                    .map(|h| (h.chunk_id, h.document_id, h.score))
                    .collect(),
                other => panic!("unexpected {other:?}"),
            }
        })
        .collect()
}

fn node(snapshot: Option<&std::path::Path>) -> Vec<Ranking> {
    let mut command = Command::new("node");
    command
        .current_dir(workspace_root())
        .arg("tests/js/cross_runtime.mjs")
        .arg("--pkg")
        .arg(npm_package())
        .arg("--dataset")
        .arg(dataset::dir())
        .args([
            "--docs",
            &DOCS.to_string(),
            "--queries",
            &QUERIES.to_string(),
        ])
        .stderr(Stdio::inherit());
    if let Some(path) = snapshot {
        command.arg("--snapshot").arg(path);
    }
    let out = command.output().expect("run node");
    assert!(out.status.success(), "node failed: {}", out.status);
    let results: Vec<Vec<Value>> = serde_json::from_slice(&out.stdout).expect("node prints JSON");
    let replies: Vec<Value> = results
        .into_iter()
        .map(|hits| json!({ "hits": hits }))
        .collect();
    rankings_from_json(&replies)
}

/// Creates the library and loads the documents over HTTP (batches of 100), then searches.
fn over_http(http: &Http, docs: &[Value], queries: &[Vec<f32>]) -> Vec<Ranking> {
    let (status, body) = http.post("/v1/libraries", &create_request());
    assert_eq!(status, 201, "{body}");
    for batch in docs.chunks(100) {
        let (status, body) = http.post(
            &format!("/v1/libraries/{LIBRARY}/documents/batch"),
            &json!({ "documents": batch }),
        );
        assert_eq!(status, 200, "{body}");
        assert!(
            body["results"]
                .as_array()
                .expect("results")
                .iter()
                .all(|r| r.get("error").is_none()),
            "{body}"
        );
    }
    let replies: Vec<Value> = queries
        .iter()
        .map(|q| {
            let (status, body) = http.post(
                &format!("/v1/libraries/{LIBRARY}/search"),
                &json!({"vector": q, "k": K}),
            );
            assert_eq!(status, 200, "{body}");
            body
        })
        .collect();
    rankings_from_json(&replies)
}

fn assert_same(reference: &[Ranking], other: &[Ranking], runtime: &str) {
    assert_eq!(reference.len(), other.len(), "{runtime}: number of queries");
    for (q, (a, b)) in reference.iter().zip(other).enumerate() {
        let ids = |r: &Ranking| {
            r.iter()
                .map(|h| (h.0.clone(), h.1.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(a), ids(b), "{runtime}: ranking of query {q}");
        for (rank, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x.2 - y.2).abs() <= 1e-6,
                "{runtime}: query {q} rank {rank}: {} vs {}",
                x.2,
                y.2
            );
            assert_eq!(
                x.2.to_bits(),
                y.2.to_bits(),
                "{runtime}: query {q} rank {rank} is not bit-identical"
            );
        }
    }
}

#[test]
fn four_runtimes_rank_identically() {
    let docs = dataset::documents(DOCS);
    let queries = dataset::fvecs("queries.fvecs", QUERIES);
    let reference = native(&docs, &queries);
    assert!(reference.iter().all(|r| r.len() == K as usize));

    // The native answer is the exact top-k (checked in f64 against every document).
    for (q, ranking) in queries.iter().zip(&reference) {
        let mut exact: Vec<(f64, String)> = docs
            .iter()
            .map(|d| {
                let v: Vec<f64> = d["chunks"][0]["embedding"]
                    .as_array()
                    .expect("v")
                    .iter()
                    .map(|x| x.as_f64().expect("f"))
                    .collect();
                let dot: f64 = v.iter().zip(q).map(|(a, b)| a * f64::from(*b)).sum();
                let nv = v.iter().map(|a| a * a).sum::<f64>().sqrt();
                let nq = q.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
                (dot / (nv * nq), d["id"].as_str().expect("id").to_owned())
            })
            .collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (rank, hit) in ranking.iter().enumerate() {
            assert!(
                (f64::from(hit.2) - exact[rank].0).abs() < 1e-5,
                "rank {rank}: {} vs exact {}",
                hit.2,
                exact[rank].0
            );
        }
    }

    let in_node = node(None);
    assert_same(&reference, &in_node, "node (npm package)");

    let edge_dir = tempfile::tempdir().expect("tempdir");
    let (_edge, edge_http) = start_edge(edge_dir.path());
    let at_edge = over_http(&edge_http, &docs, &queries);
    assert_same(&reference, &at_edge, "edge (wasmtime serve)");

    let host_dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _host = ChildGuard::spawn(
        "arrwdb",
        Command::new(host_bin())
            .arg("serve")
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--storage")
            .arg(host_dir.path())
            .arg("--component")
            .arg(edge_wasm()),
    );
    let host_http = Http::new(format!("http://127.0.0.1:{port}"));
    host_http.wait_ready("/ready", Duration::from_secs(60));
    let in_host = over_http(&host_http, &docs, &queries);
    assert_same(&reference, &in_host, "host (arrwdb)");

    // A snapshot exported by the host loads in Node and answers identically.
    let (status, bytes) = host_http.post_bytes(&format!("/v1/libraries/{LIBRARY}/snapshot"));
    assert_eq!(status, 200);
    assert_eq!(&bytes[..4], b"ARWS", "snapshot magic");
    let file = host_dir.path().join("exported.snap");
    std::fs::write(&file, &bytes).expect("write snapshot");
    let from_snapshot = node(Some(&file));
    assert_same(&reference, &from_snapshot, "node (host snapshot)");
}
