//! Shared by the core's dataset tests: the pypi-minilm reader (../shared/datasets), an
//! engine loader, and recall against exact search. Each test binary uses a part.

#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use arrwdb_core::api::{self, SearchRequest};
use arrwdb_core::{
    ChunkData, Command, DocumentData, Engine, IndexConfig, LibraryConfig, Metadata, Metric, Query,
    QueryResponse,
};
use serde_json::Value;

pub const DIM: usize = 384;

pub fn dataset_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/pypi-minilm");
    assert!(dir.is_dir(), "dataset missing at {}", dir.display());
    dir
}

/// The first `limit` vectors of an `.fvecs` file (texmex layout).
pub fn fvecs(name: &str, limit: usize) -> Vec<Vec<f32>> {
    let mut reader = BufReader::new(File::open(dataset_dir().join(name)).expect("open fvecs"));
    let mut out = Vec::with_capacity(limit.min(200_000));
    let mut header = [0u8; 4];
    while out.len() < limit && reader.read_exact(&mut header).is_ok() {
        let d = i32::from_le_bytes(header) as usize;
        let mut raw = vec![0u8; d * 4];
        reader.read_exact(&mut raw).expect("truncated fvecs");
        out.push(
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        );
    }
    out
}

/// The metadata objects of the first `limit` documents.
pub fn metadata(limit: usize) -> Vec<Value> {
    BufReader::new(File::open(dataset_dir().join("docs.jsonl")).expect("open docs"))
        .lines()
        .take(limit)
        .map(|l| {
            let v: Value = serde_json::from_str(&l.expect("line")).expect("json");
            v["metadata"].clone()
        })
        .collect()
}

/// An engine holding library `lib` with the first `n` base vectors as documents `d{i}`
/// (one chunk each, chunk metadata = the dataset's metadata).
pub fn load(index: IndexConfig, metric: Metric, n: usize) -> (Engine, Vec<Vec<f32>>) {
    let vectors = fvecs("base.fvecs", n);
    let meta = metadata(n);
    let mut engine = Engine::new();
    let config = LibraryConfig {
        name: "lib".into(),
        dimension: DIM as u32,
        metric,
        index,
        quantization: arrwdb_core::api::QuantizationConfig::None,
        text: arrwdb_core::api::TextConfig::default(),
        embedding: None,
    };
    let record = engine
        .prepare(Command::CreateLibrary(config))
        .expect("create");
    engine.apply(&record).expect("apply");
    for (i, (v, m)) in vectors.iter().zip(meta).enumerate() {
        let document = DocumentData {
            id: format!("d{i}"),
            metadata: Metadata::default(),
            chunks: vec![ChunkData {
                id: format!("d{i}"),
                text: String::new(),
                embedding: v.clone(),
                metadata: Metadata(m),
            }],
        };
        let record = engine
            .prepare(Command::UpsertDocument {
                library: "lib".into(),
                document,
            })
            .expect("prepare");
        engine.apply(&record).expect("apply");
    }
    (engine, vectors)
}

/// Document numbers of a search's hits.
pub fn search_ids(engine: &Engine, request: SearchRequest) -> Vec<usize> {
    let query = Query::Search {
        library: "lib".into(),
        request,
    };
    match engine.query(&query).expect("search") {
        QueryResponse::Search(found) => found
            .hits
            .iter()
            .map(|h| h.document_id[1..].parse().expect("d{n}"))
            .collect(),
        other => panic!("unexpected {other:?}"),
    }
}

/// A vector search request with optional filter and params.
pub fn request(
    vector: &[f32],
    k: u32,
    filter: Option<Value>,
    params: Option<Value>,
) -> SearchRequest {
    let mut body = serde_json::json!({"vector": vector, "k": k});
    if let Some(f) = filter {
        body["filter"] = f;
    }
    if let Some(p) = params {
        body["params"] = p;
    }
    api::from_json(&serde_json::to_vec(&body).expect("json")).expect("valid request")
}

/// Mean recall@k of `found` against `truth` (both lists of ids per query).
pub fn recall(found: &[Vec<usize>], truth: &[Vec<usize>], k: usize) -> f64 {
    let mut hit = 0usize;
    let mut total = 0usize;
    for (f, t) in found.iter().zip(truth) {
        let t: Vec<usize> = t.iter().take(k).copied().collect();
        hit += f.iter().take(k).filter(|id| t.contains(id)).count();
        total += t.len();
    }
    if total == 0 {
        1.0
    } else {
        hit as f64 / total as f64
    }
}

/// The published ground truth (100 nearest base rows by inner product) of the first
/// `limit` queries.
pub fn ivecs_groundtruth(limit: usize) -> Vec<Vec<usize>> {
    let mut reader =
        BufReader::new(File::open(dataset_dir().join("groundtruth.ivecs")).expect("open ivecs"));
    let mut out = Vec::new();
    let mut header = [0u8; 4];
    while out.len() < limit && reader.read_exact(&mut header).is_ok() {
        let d = i32::from_le_bytes(header) as usize;
        let mut raw = vec![0u8; d * 4];
        reader.read_exact(&mut raw).expect("truncated ivecs");
        out.push(
            raw.chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .collect(),
        );
    }
    out
}

/// splitmix64: the tests' seeded pseudo-random numbers.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A store of `n` pseudo-random vectors of `dim` components in [-1, 1) from `seed`.
pub fn random_store(
    metric: Metric,
    n: usize,
    dim: usize,
    seed: u64,
    quantization: api::QuantizationConfig,
) -> arrwdb_core::index::VectorStore {
    let mut store =
        arrwdb_core::index::VectorStore::with_quantization(dim as u32, metric, quantization);
    let mut state = seed;
    for _ in 0..n {
        let v: Vec<f32> = (0..dim)
            .map(|_| {
                state = splitmix64(state);
                (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect();
        store.push(&v);
    }
    store
}
