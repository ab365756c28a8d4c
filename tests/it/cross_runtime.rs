//! One scenario, four runtimes: the native engine, the npm package in Node, the edge
//! component under `wasmtime serve`, and the `arrwdb` host (which runs that same
//! component under wasmtime). Each creates a library, upserts the first 1,000 documents
//! of the pypi-minilm dataset and runs 20 of its queries. All four must return the same
//! chunk ids in the same order with bit-identical scores: the distance kernels reduce
//! in a fixed order (core/src/kernels.rs), so native x86-64 and wasm32 round alike, and
//! every index is deterministic, so the same log builds the same HNSW graph everywhere.
//! The scenario runs four times: exact search, HNSW with a metadata filter, keyword
//! (BM25 with stemming, folding and stop words, filtered) and hybrid search (linear
//! z-score fusion, then recency, position and MMR rerankers at a fixed `now`). Then a
//! snapshot exported by the host must load in Node and answer identically.
//! The broader conformance suite (every operation, index, filter operator, Chromium and
//! the read replica) is conformance.rs; see docs/conformance.md.

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

/// One query's ranked hits: (chunk id, document id, score).
type Ranking = Vec<(String, String, f32)>;

/// A library configuration and the searches run against it.
struct Scenario {
    library: &'static str,
    index: Value,
    /// The library's text settings.
    text: Option<Value>,
    filter: Option<Value>,
    /// `vector`, `keyword` or `hybrid`: what each search sends.
    mode: &'static str,
    /// Merged into every search request.
    extra: Option<Value>,
}

/// A query: its vector and its text (queries.jsonl).
type QueryInput = (Vec<f32>, String);

impl Scenario {
    fn create_request(&self) -> Value {
        let mut body = json!({"name": self.library, "dimension": dataset::DIM, "metric": "cosine", "index": self.index});
        if let Some(text) = &self.text {
            body["text"] = text.clone();
        }
        body
    }

    fn search_request(&self, (vector, text): &QueryInput) -> Value {
        let mut body = json!({"k": K});
        if self.mode != "keyword" {
            body["vector"] = json!(vector);
        }
        if self.mode != "vector" {
            body["text"] = json!(text);
        }
        if let Some(filter) = &self.filter {
            body["filter"] = filter.clone();
        }
        if let Some(Value::Object(extra)) = &self.extra {
            for (key, value) in extra {
                body[key] = value.clone();
            }
        }
        body
    }
}

fn scenarios() -> [Scenario; 4] {
    let plain = |library, index, filter| Scenario {
        library,
        index,
        text: None,
        filter,
        mode: "vector",
        extra: None,
    };
    [
        plain("crossrt", json!({"type": "flat"}), None),
        plain(
            "crossrt_hnsw",
            json!({"type": "hnsw", "m": 8, "ef_construction": 64}),
            // ~50% of the rows: searched through the graph, not the exact fallback.
            Some(json!({"year": {"$gte": 2025}})),
        ),
        Scenario {
            library: "crossrt_keyword",
            index: json!({"type": "flat"}),
            text: Some(
                json!({"stemmer": "english", "stop_words": "english", "ascii_folding": true}),
            ),
            filter: Some(json!({"year": {"$gte": 2020}})),
            mode: "keyword",
            extra: None,
        },
        Scenario {
            library: "crossrt_hybrid",
            index: json!({"type": "hnsw", "m": 8, "ef_construction": 64}),
            text: Some(json!({"stemmer": "english", "k1": 1.5, "b": 0.6})),
            filter: None,
            mode: "hybrid",
            extra: Some(json!({
                "candidates": 50,
                "fusion": {"method": "linear", "normalization": "z_score", "weights": {"vector": 0.7, "keyword": 0.3}},
                "rerank": [
                    {"type": "recency", "field": "month", "half_life_days": 365, "weight": 0.1},
                    {"type": "position", "weight": 0.05},
                    {"type": "mmr", "lambda": 0.8}
                ],
                "now": 1_798_761_600_000i64
            })),
        },
    ]
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

fn native(scenario: &Scenario, docs: &[Value], queries: &[QueryInput]) -> Vec<Ranking> {
    let library = scenario.library;
    let mut engine = Engine::new();
    let config = serde_json::from_value::<api::CreateLibraryRequest>(scenario.create_request())
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
            library: library.into(),
            document: request.into_document(id),
        };
        let record = engine.prepare(command).expect("prepare");
        engine.apply(&record).expect("apply");
    }
    queries
        .iter()
        .map(|q| {
            let request: SearchRequest =
                serde_json::from_value(scenario.search_request(q)).expect("search request");
            let query = Query::Search {
                library: library.into(),
                request,
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

fn node(scenario: &Scenario, snapshot: Option<&std::path::Path>) -> Vec<Ranking> {
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
        .arg("--library")
        .arg(scenario.library)
        .arg("--index")
        .arg(scenario.index.to_string())
        .arg("--mode")
        .arg(scenario.mode)
        .stderr(Stdio::inherit());
    if let Some(text) = &scenario.text {
        command.arg("--text-config").arg(text.to_string());
    }
    if let Some(extra) = &scenario.extra {
        command.arg("--extra").arg(extra.to_string());
    }
    if let Some(filter) = &scenario.filter {
        command.arg("--filter").arg(filter.to_string());
    }
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
fn over_http(
    http: &Http,
    scenario: &Scenario,
    docs: &[Value],
    queries: &[QueryInput],
) -> Vec<Ranking> {
    let library = scenario.library;
    let (status, body) = http.post("/v1/libraries", &scenario.create_request());
    assert_eq!(status, 201, "{body}");
    for batch in docs.chunks(100) {
        let (status, body) = http.post(
            &format!("/v1/libraries/{library}/documents/batch"),
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
                &format!("/v1/libraries/{library}/search"),
                &scenario.search_request(q),
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

/// The flat scenario's native answer is the exact top-k (checked in f64).
fn assert_exact(docs: &[Value], queries: &[QueryInput], reference: &[Ranking]) {
    for ((q, _), ranking) in queries.iter().zip(reference) {
        let mut exact: Vec<f64> = docs
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
                dot / (nv * nq)
            })
            .collect();
        exact.sort_by(|a, b| b.total_cmp(a));
        for (rank, hit) in ranking.iter().enumerate() {
            let (got, want) = (f64::from(hit.2), exact[rank]);
            assert!(
                (got - want).abs() < 1e-5,
                "rank {rank}: {got} vs exact {want}"
            );
        }
    }
}

#[test]
fn four_runtimes_rank_identically() {
    let docs = dataset::documents(DOCS);
    let texts = dataset::jsonl("queries.jsonl", QUERIES);
    let queries: Vec<QueryInput> = dataset::fvecs("queries.fvecs", QUERIES)
        .into_iter()
        .zip(&texts)
        .map(|(v, t)| (v, t["text"].as_str().expect("query text").to_owned()))
        .collect();
    let scenarios = scenarios();
    let references: Vec<Vec<Ranking>> = scenarios
        .iter()
        .map(|s| native(s, &docs, &queries))
        .collect();
    assert!(references[0].iter().all(|r| r.len() == K as usize));
    assert_exact(&docs, &queries, &references[0]);
    let years: Vec<i64> = docs
        .iter()
        .map(|d| d["metadata"]["year"].as_i64().unwrap_or(0))
        .collect();
    // Keyword and hybrid searches find something for most queries.
    for (scenario, reference) in scenarios.iter().zip(&references).skip(2) {
        let answered = reference.iter().filter(|r| !r.is_empty()).count();
        assert!(
            answered >= QUERIES / 2,
            "{}: only {answered} of {QUERIES} queries have hits",
            scenario.library
        );
    }
    for ranking in &references[1] {
        assert_eq!(ranking.len(), K as usize);
        for hit in ranking {
            let row = docs
                .iter()
                .position(|d| d["id"] == hit.1.as_str())
                .expect("known document");
            assert!(
                years[row] >= 2025,
                "filtered hit {} has year {}",
                hit.1,
                years[row]
            );
        }
    }

    for (scenario, reference) in scenarios.iter().zip(&references) {
        let in_node = node(scenario, None);
        assert_same(
            reference,
            &in_node,
            &format!("{}: node (npm package)", scenario.library),
        );
    }

    let edge_dir = tempfile::tempdir().expect("tempdir");
    let (_edge, edge_http) = start_edge(edge_dir.path());
    for (scenario, reference) in scenarios.iter().zip(&references) {
        let at_edge = over_http(&edge_http, scenario, &docs, &queries);
        assert_same(
            reference,
            &at_edge,
            &format!("{}: edge (wasmtime serve)", scenario.library),
        );
    }

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
            .arg(edge_wasm())
            .env("ARRWDB_NO_AUTH", "true"),
    );
    let host_http = Http::new(format!("http://127.0.0.1:{port}"));
    host_http.wait_ready("/ready", Duration::from_secs(60));
    for (scenario, reference) in scenarios.iter().zip(&references) {
        let in_host = over_http(&host_http, scenario, &docs, &queries);
        assert_same(
            reference,
            &in_host,
            &format!("{}: host (arrwdb)", scenario.library),
        );

        // A snapshot exported by the host loads in Node and answers identically.
        let path = format!("/v1/libraries/{}/snapshot", scenario.library);
        let (status, bytes) = host_http.post_bytes(&path);
        assert_eq!(status, 200);
        assert_eq!(&bytes[..4], b"ARWS", "snapshot magic");
        let file = host_dir.path().join(format!("{}.snap", scenario.library));
        std::fs::write(&file, &bytes).expect("write snapshot");
        let from_snapshot = node(scenario, Some(&file));
        assert_same(
            reference,
            &from_snapshot,
            &format!("{}: node (host snapshot)", scenario.library),
        );
    }
}
