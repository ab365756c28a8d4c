//! `arrwdb-bench`: builds each index kind over the pypi-minilm dataset through the
//! engine's public API and prints one JSON line per configuration: build time,
//! single-thread QPS, recall@10 against exact ground truth, and bytes per vector (the
//! library's snapshot size divided by its vectors). `cargo xtask bench` runs it beside
//! the peers (tests/bench/peers.py) on the same data and prints the ratios.
//!
//! The `keyword` and `hybrid` rows index the dataset's texts (BM25, default text
//! settings) beside the vectors and run the query texts of queries.jsonl: keyword alone,
//! and hybrid (the query vector plus its text, RRF). Their recall@10 is measured
//! against the dense (vector) ground truth, so it says how much a keyword or hybrid
//! answer agrees with semantic neighbours, not how "correct" BM25 is; their latency
//! percentiles are printed too.
//!
//! Usage: `arrwdb-bench --dataset DIR [--n 100000] [--queries 1000]
//! [--only flat,hnsw,keyword]`

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrwdb_core::api::SearchRequest;
use arrwdb_core::index::{Allowed, Bitset, QueryVector, VectorStore, exact_search};
use arrwdb_core::{
    ChunkData, Command, DocumentData, Engine, IndexConfig, LibraryConfig, Metadata, Metric, Query,
    QueryResponse,
};
use arrwdb_tests::{fvecs, read_vecs};
use serde_json::json;

const K: usize = 10;

struct Args {
    dataset: PathBuf,
    n: usize,
    queries: usize,
    only: Option<Vec<String>>,
}

fn args() -> Args {
    let mut args = Args {
        dataset: PathBuf::from("../shared/datasets/pypi-minilm"),
        n: 100_000,
        queries: 1000,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--dataset" => args.dataset = value.into(),
            "--n" => args.n = value.parse().expect("--n is a number"),
            "--queries" => args.queries = value.parse().expect("--queries is a number"),
            "--only" => args.only = Some(value.split(',').map(str::to_owned).collect()),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

/// Exact top-10 (by inner product) of each query over the first `n` base vectors: the
/// published ground truth when `n` is the whole set, computed otherwise.
fn ground_truth(args: &Args, base: &[Vec<f32>], queries: &[Vec<f32>]) -> Vec<Vec<u32>> {
    if args.n >= 100_000 {
        return read_vecs(&args.dataset.join("groundtruth.ivecs"), queries.len())
            .into_iter()
            .map(|row| row.into_iter().take(K).collect())
            .collect();
    }
    let mut store = VectorStore::new(base[0].len() as u32, Metric::Dot);
    let mut live = Bitset::default();
    for v in base {
        live.insert(store.push(v));
    }
    let allowed = Allowed::new(&live, None);
    queries
        .iter()
        .map(|q| {
            let query: QueryVector<'_> = store.query(q);
            exact_search(&store, &query, &allowed, K)
                .into_iter()
                .map(|s| s.slot)
                .collect()
        })
        .collect()
}

fn configs() -> Vec<(
    &'static str,
    &'static str,
    IndexConfig,
    Vec<serde_json::Value>,
)> {
    let parse =
        |v: serde_json::Value| -> IndexConfig { serde_json::from_value(v).expect("index config") };
    vec![
        ("flat", "", IndexConfig::Flat, vec![json!({})]),
        (
            "hnsw",
            "M=16 efC=200",
            parse(json!({"type": "hnsw"})),
            vec![json!({"ef": 64}), json!({"ef": 128}), json!({"ef": 256})],
        ),
        (
            "ivf",
            "nlist=256",
            parse(json!({"type": "ivf"})),
            vec![
                json!({"nprobe": 8}),
                json!({"nprobe": 16}),
                json!({"nprobe": 32}),
            ],
        ),
        (
            "lsh",
            "defaults",
            parse(json!({"type": "lsh"})),
            vec![json!({})],
        ),
        (
            "kdtree",
            "defaults",
            parse(json!({"type": "kdtree"})),
            vec![json!({})],
        ),
    ]
}

/// `docs.jsonl` texts of the first `n` rows.
fn texts(path: &Path, n: usize) -> Vec<String> {
    use std::io::BufRead as _;
    std::io::BufReader::new(File::open(path).expect("open jsonl"))
        .lines()
        .take(n)
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(&line.expect("line")).expect("json");
            v["text"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

/// Keyword and hybrid search over the dataset's texts: one row each.
fn text_search(args: &Args, base: &[Vec<f32>], queries: &[Vec<f32>], truth: &[Vec<u32>]) {
    let docs = texts(&args.dataset.join("docs.jsonl"), args.n);
    let query_texts = texts(&args.dataset.join("queries.jsonl"), queries.len());
    let mut engine = Engine::new();
    let config = LibraryConfig {
        name: "bench".into(),
        dimension: base[0].len() as u32,
        metric: Metric::Dot,
        index: IndexConfig::Hnsw(arrwdb_core::HnswParams::default()),
        quantization: arrwdb_core::api::QuantizationConfig::None,
        text: arrwdb_core::api::TextConfig::default(),
        embedding: None,
    };
    let record = engine
        .prepare(Command::CreateLibrary(config))
        .expect("create");
    engine.apply(&record).expect("create library");
    let started = Instant::now();
    for (i, (v, text)) in base.iter().zip(&docs).enumerate() {
        let document = DocumentData {
            id: i.to_string(),
            metadata: Metadata::default(),
            chunks: vec![ChunkData {
                id: i.to_string(),
                text: text.clone(),
                embedding: v.clone(),
                metadata: Metadata::default(),
            }],
        };
        let record = engine
            .prepare(Command::UpsertDocument {
                library: "bench".into(),
                document,
            })
            .expect("prepare");
        engine.apply(&record).expect("apply");
    }
    let build_s = started.elapsed().as_secs_f64();
    let bytes = engine.snapshot("bench").expect("snapshot").len();
    for mode in ["keyword", "hybrid"] {
        let mut latencies = Vec::with_capacity(queries.len());
        let mut found = Vec::with_capacity(queries.len());
        let started = Instant::now();
        for (q, text) in queries.iter().zip(&query_texts) {
            let body = if mode == "keyword" {
                json!({"text": text, "k": K, "include": []})
            } else {
                json!({"vector": q, "text": text, "k": K, "include": []})
            };
            let request: SearchRequest = serde_json::from_value(body).expect("request");
            let one = Instant::now();
            let QueryResponse::Search(response) = engine
                .query(&Query::Search {
                    library: "bench".into(),
                    request,
                })
                .expect("search")
            else {
                panic!("unexpected response");
            };
            latencies.push(one.elapsed().as_secs_f64() * 1e3);
            found.push(
                response
                    .hits
                    .into_iter()
                    .map(|h| h.chunk_id.parse::<u32>().expect("numeric id"))
                    .collect::<Vec<_>>(),
            );
        }
        let seconds = started.elapsed().as_secs_f64();
        latencies.sort_by(f64::total_cmp);
        let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
        let hits: usize = found
            .iter()
            .zip(truth)
            .map(|(f, t)| f.iter().filter(|id| t.contains(id)).count())
            .sum();
        let line = json!({
            "engine": "arrwdb", "index": mode, "build": "bm25 k1=1.2 b=0.75 + hnsw",
            "search": if mode == "keyword" { "text" } else { "vector+text rrf" },
            "n": args.n, "build_s": build_s, "qps": queries.len() as f64 / seconds,
            "recall10": hits as f64 / (truth.len() * K) as f64,
            "bytes_per_vector": bytes as f64 / args.n as f64,
            "p50_ms": percentile(0.5), "p99_ms": percentile(0.99),
        });
        #[allow(clippy::print_stdout)] // the benchmark's output
        {
            println!("{line}");
        }
    }
}

fn main() {
    let args = args();
    let base = fvecs(&args.dataset.join("base.fvecs"), args.n);
    let queries = fvecs(&args.dataset.join("queries.fvecs"), args.queries);
    let truth = ground_truth(&args, &base, &queries);
    let dim = base[0].len() as u32;
    for (kind, build_params, index, search_params) in configs() {
        if args
            .only
            .as_ref()
            .is_some_and(|only| !only.iter().any(|o| o == kind))
        {
            continue;
        }
        let mut engine = Engine::new();
        let config = LibraryConfig {
            name: "bench".into(),
            dimension: dim,
            metric: Metric::Dot,
            index,
            quantization: arrwdb_core::api::QuantizationConfig::None,
            text: arrwdb_core::api::TextConfig::default(),
            embedding: None,
        };
        let record = match engine.prepare(Command::CreateLibrary(config)) {
            Ok(record) => record,
            Err(e) => {
                eprintln!("arrwdb-bench: skipping {kind}: {e}");
                continue;
            }
        };
        engine.apply(&record).expect("create library");
        let started = Instant::now();
        for (i, v) in base.iter().enumerate() {
            let document = DocumentData {
                id: i.to_string(),
                metadata: Metadata::default(),
                chunks: vec![ChunkData {
                    id: i.to_string(),
                    text: String::new(),
                    embedding: v.clone(),
                    metadata: Metadata::default(),
                }],
            };
            let record = engine
                .prepare(Command::UpsertDocument {
                    library: "bench".into(),
                    document,
                })
                .expect("prepare");
            engine.apply(&record).expect("apply");
        }
        let build_s = started.elapsed().as_secs_f64();
        let bytes = engine.snapshot("bench").expect("snapshot").len();
        for params in search_params {
            let requests: Vec<SearchRequest> = queries
                .iter()
                .map(|q| {
                    serde_json::from_value(
                        json!({"vector": q, "k": K, "params": params, "include": []}),
                    )
                    .expect("request")
                })
                .collect();
            let started = Instant::now();
            let mut found = Vec::with_capacity(requests.len());
            for request in requests {
                let QueryResponse::Search(response) = engine
                    .query(&Query::Search {
                        library: "bench".into(),
                        request,
                    })
                    .expect("search")
                else {
                    panic!("unexpected response");
                };
                found.push(
                    response
                        .hits
                        .into_iter()
                        .map(|h| h.chunk_id.parse::<u32>().expect("numeric id"))
                        .collect::<Vec<_>>(),
                );
            }
            let seconds = started.elapsed().as_secs_f64();
            let hits: usize = found
                .iter()
                .zip(&truth)
                .map(|(f, t)| f.iter().filter(|id| t.contains(id)).count())
                .sum();
            let recall = hits as f64 / (truth.len() * K) as f64;
            let line = json!({
                "engine": "arrwdb", "index": kind, "build": build_params, "search": params.to_string(),
                "n": args.n, "build_s": build_s, "qps": queries.len() as f64 / seconds,
                "recall10": recall, "bytes_per_vector": bytes as f64 / args.n as f64,
            });
            #[allow(clippy::print_stdout)] // the benchmark's output
            {
                println!("{line}");
            }
        }
    }
    if args
        .only
        .as_ref()
        .is_none_or(|only| only.iter().any(|o| o == "keyword" || o == "hybrid"))
    {
        text_search(&args, &base, &queries, &truth);
    }
}
