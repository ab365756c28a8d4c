//! `arrwdb-bench`: builds each index kind over the pypi-minilm dataset through the
//! engine's public API and prints one JSON line per configuration and search setting:
//! build time (one thread), QPS on one thread and on `--threads` threads (one shared
//! [`Engine`] queried from that many OS threads, as the host's read path does), recall@10
//! against exact ground truth, and bytes per vector (the library's snapshot size divided
//! by its vectors). `cargo xtask bench` runs it beside the peers (tests/bench/peers.py)
//! on the same data and prints the ratios.
//!
//! HNSW rows sweep `ef` and IVF rows sweep `nprobe`, so each index gives a recall/QPS
//! curve rather than one point. Each QPS is the best of up to three passes over the
//! queries (the machine is shared; the best pass is the least disturbed one).
//!
//! The `keyword` and `hybrid` rows index the dataset's texts (BM25, default text
//! settings) beside the vectors (flat index) and run the query texts of queries.jsonl: keyword alone,
//! and hybrid (the query vector plus its text, RRF). Their recall@10 is measured
//! against the dense (vector) ground truth, so it says how much a keyword or hybrid
//! answer agrees with semantic neighbours, not how "correct" BM25 is; their latency
//! percentiles are printed too.
//!
//! The exhaustive indexes (flat, flat+sq8, kdtree) answer the first `--exact-queries`
//! queries only (200 by default): each of their queries scans every vector.
//!
//! Usage: `arrwdb-bench --dataset DIR [--n 100000] [--queries 1000] [--threads 2]
//! [--exact-queries 200] [--only flat,hnsw,hnsw+sq8,keyword]`

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrwdb_core::api::{QuantizationConfig, QuantizationParams, SearchRequest};
use arrwdb_core::index::{Allowed, Bitset, QueryVector, VectorStore, exact_search};
use arrwdb_core::{Engine, HnswParams, IndexConfig, Metric};
use arrwdb_tests::{engine_with_library, fvecs, read_vecs, search_rows, upsert_rows};
use serde_json::json;

const K: usize = 10;

/// `ef` values of every HNSW curve (the peers sweep the same list).
const EFS: [u32; 10] = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256];
/// `nprobe` values of every IVF curve.
const NPROBES: [u32; 7] = [1, 2, 4, 8, 16, 32, 64];

struct Args {
    dataset: PathBuf,
    n: usize,
    queries: usize,
    threads: usize,
    only: Option<Vec<String>>,
    /// Queries answered by the exhaustive indexes (flat, kdtree), whose QPS and recall
    /// need fewer queries to settle and whose 1,000 queries would take minutes.
    exact_queries: usize,
}

fn args() -> Args {
    let mut args = Args {
        dataset: PathBuf::from("../shared/datasets/pypi-minilm"),
        n: 100_000,
        queries: 1000,
        threads: std::thread::available_parallelism().map_or(1, usize::from),
        only: None,
        exact_queries: 200,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--dataset" => args.dataset = value.into(),
            "--n" => args.n = value.parse().expect("--n is a number"),
            "--queries" => args.queries = value.parse().expect("--queries is a number"),
            "--threads" => args.threads = value.parse().expect("--threads is a number"),
            "--only" => args.only = Some(value.split(',').map(str::to_owned).collect()),
            "--exact-queries" => {
                args.exact_queries = value.parse().expect("--exact-queries is a number");
            }
            other => panic!("unknown flag {other}"),
        }
    }
    args.threads = args.threads.max(1);
    args
}

impl Args {
    /// Whether to run `kind`: named by `--only`, or in the default set without it.
    fn wants(&self, kind: &str, default: bool) -> bool {
        self.only
            .as_ref()
            .map_or(default, |only| only.iter().any(|o| o == kind))
    }
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

/// One library configuration of the run and the search settings it is measured at.
struct Setting {
    /// Name in the output (`--only` selects by it).
    kind: &'static str,
    /// Build parameters as printed.
    build: &'static str,
    index: IndexConfig,
    quantization: QuantizationConfig,
    searches: Vec<serde_json::Value>,
    /// Scans every vector per query: measured on `--exact-queries` queries.
    exhaustive: bool,
    /// Runs without `--only`.
    default: bool,
}

fn settings() -> Vec<Setting> {
    let parse =
        |v: serde_json::Value| -> IndexConfig { serde_json::from_value(v).expect("index config") };
    let hnsw = IndexConfig::Hnsw(HnswParams {
        m: 16,
        ef_construction: 200,
        ..HnswParams::default()
    });
    let efs = || EFS.iter().map(|ef| json!({ "ef": ef })).collect::<Vec<_>>();
    let nprobes = || {
        NPROBES
            .iter()
            .map(|nprobe| json!({ "nprobe": nprobe }))
            .collect::<Vec<_>>()
    };
    let sq8 = QuantizationConfig::Sq8(QuantizationParams::default());
    let none = QuantizationConfig::None;
    vec![
        Setting {
            kind: "flat",
            build: "",
            index: IndexConfig::Flat,
            quantization: none,
            searches: vec![json!({})],
            exhaustive: true,
            default: true,
        },
        Setting {
            kind: "flat+sq8",
            build: "sq8 oversample=4",
            index: IndexConfig::Flat,
            quantization: sq8,
            searches: vec![json!({})],
            exhaustive: true,
            default: true,
        },
        Setting {
            kind: "hnsw",
            build: "M=16 efC=200",
            index: hnsw.clone(),
            quantization: none,
            searches: efs(),
            exhaustive: false,
            default: true,
        },
        // The same graph parameters on a library with SQ8 codes: built and searched on
        // the codes, the best k × oversample rescored with full vectors (index/hnsw.rs).
        Setting {
            kind: "hnsw+sq8",
            build: "M=16 efC=200 sq8 oversample=4",
            index: hnsw,
            quantization: sq8,
            searches: efs(),
            exhaustive: false,
            default: true,
        },
        Setting {
            kind: "ivf",
            build: "nlist=256",
            index: parse(json!({"type": "ivf", "nlist": 256})),
            quantization: none,
            searches: nprobes(),
            exhaustive: false,
            default: true,
        },
        Setting {
            kind: "ivfpq",
            build: "nlist=256 pq_m=48 (8 bits) + rescoring",
            index: parse(json!({"type": "ivf", "nlist": 256, "pq_m": 48})),
            quantization: none,
            searches: nprobes(),
            exhaustive: false,
            default: true,
        },
        Setting {
            kind: "lsh",
            build: "defaults",
            index: parse(json!({"type": "lsh"})),
            quantization: none,
            searches: vec![json!({})],
            exhaustive: false,
            default: true,
        },
        Setting {
            kind: "kdtree",
            build: "defaults",
            index: parse(json!({"type": "kdtree"})),
            quantization: none,
            searches: vec![json!({})],
            exhaustive: true,
            default: true,
        },
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

/// A fresh engine holding library "bench", or `None` when the configuration is refused.
fn create(
    dim: u32,
    index: IndexConfig,
    quantization: QuantizationConfig,
    kind: &str,
) -> Option<Engine> {
    engine_with_library("bench", dim, index, quantization)
        .map_err(|e| eprintln!("arrwdb-bench: skipping {kind}: {e}"))
        .ok()
}

/// CPU time this thread has run, from Linux's `/proc/thread-self/schedstat` (first
/// field, nanoseconds); `None` elsewhere. Build times are also reported as CPU time
/// because wall time on a shared machine depends on what else runs.
fn thread_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

/// Upserts one single-chunk document per vector (id = row number); returns wall and CPU
/// seconds.
fn load(engine: &mut Engine, base: &[Vec<f32>], texts: Option<&[String]>) -> (f64, Option<f64>) {
    let cpu = thread_cpu_s();
    let started = Instant::now();
    upsert_rows(engine, "bench", base, texts);
    let cpu = cpu.zip(thread_cpu_s()).map(|(a, b)| b - a);
    (started.elapsed().as_secs_f64(), cpu)
}

/// Runs one search; returns the hit row numbers.
fn search(engine: &Engine, request: &SearchRequest) -> Vec<u32> {
    search_rows(engine, "bench", request)
}

/// Answers every request on `threads` OS threads sharing `engine` (thread `t` takes
/// requests `t, t + threads, …`); returns the hits in request order and the QPS, the
/// best of up to three passes (fewer when a pass takes over a second).
fn measure(engine: &Engine, requests: &[SearchRequest], threads: usize) -> (Vec<Vec<u32>>, f64) {
    let mut best = 0.0f64;
    let mut found = Vec::new();
    let mut spent = 0.0;
    for _ in 0..3 {
        let started = Instant::now();
        let parts: Vec<Vec<(usize, Vec<u32>)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || {
                        requests
                            .iter()
                            .enumerate()
                            .skip(t)
                            .step_by(threads)
                            .map(|(i, r)| (i, search(engine, r)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("search thread"))
                .collect()
        });
        let seconds = started.elapsed().as_secs_f64();
        spent += seconds;
        best = best.max(requests.len() as f64 / seconds);
        let mut all: Vec<(usize, Vec<u32>)> = parts.into_iter().flatten().collect();
        all.sort_by_key(|(i, _)| *i);
        found = all.into_iter().map(|(_, hits)| hits).collect();
        if spent > 1.0 {
            break;
        }
    }
    (found, best)
}

fn recall(found: &[Vec<u32>], truth: &[Vec<u32>]) -> f64 {
    let hits: usize = found
        .iter()
        .zip(truth)
        .map(|(f, t)| f.iter().take(K).filter(|id| t.contains(id)).count())
        .sum();
    hits as f64 / (truth.len() * K) as f64
}

fn print(line: &serde_json::Value) {
    #[allow(clippy::print_stdout)] // the benchmark's output
    {
        println!("{line}");
    }
}

/// Keyword and hybrid search over the dataset's texts: one row each.
fn text_search(args: &Args, base: &[Vec<f32>], queries: &[Vec<f32>], truth: &[Vec<u32>]) {
    let docs = texts(&args.dataset.join("docs.jsonl"), args.n);
    let query_texts = texts(&args.dataset.join("queries.jsonl"), queries.len());
    let index = IndexConfig::Hnsw(HnswParams::default());
    let Some(mut engine) = create(
        base[0].len() as u32,
        index,
        QuantizationConfig::None,
        "text",
    ) else {
        return;
    };
    let (build_s, build_cpu_s) = load(&mut engine, base, Some(&docs));
    let bytes = engine.snapshot("bench").expect("snapshot").len();
    // Hybrid scans every vector (flat): both modes answer the `--exact-queries` subset.
    let m = args.exact_queries.min(queries.len());
    let (queries, truth) = (&queries[..m], &truth[..m]);
    for mode in ["keyword", "hybrid"] {
        let requests: Vec<SearchRequest> = queries
            .iter()
            .zip(&query_texts)
            .map(|(q, text)| {
                let body = if mode == "keyword" {
                    json!({"text": text, "k": K, "include": []})
                } else {
                    json!({"vector": q, "text": text, "k": K, "include": []})
                };
                serde_json::from_value(body).expect("request")
            })
            .collect();
        let mut latencies = Vec::with_capacity(requests.len());
        let mut found = Vec::with_capacity(requests.len());
        let started = Instant::now();
        for request in &requests {
            let one = Instant::now();
            found.push(search(&engine, request));
            latencies.push(one.elapsed().as_secs_f64() * 1e3);
        }
        let qps = requests.len() as f64 / started.elapsed().as_secs_f64();
        let (_, qps_mt) = measure(&engine, &requests, args.threads);
        latencies.sort_by(f64::total_cmp);
        let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
        print(&json!({
            "engine": "arrwdb", "index": mode, "build": "bm25 k1=1.2 b=0.75 + flat",
            "search": if mode == "keyword" { "text" } else { "vector+text rrf" },
            "n": args.n, "build_s": build_s, "build_cpu_s": build_cpu_s,
            "qps": qps, "qps_mt": qps_mt,
            "threads": args.threads, "recall10": recall(&found, truth), "queries": m,
            "bytes_per_vector": bytes as f64 / args.n as f64,
            "p50_ms": percentile(0.5), "p99_ms": percentile(0.99),
        }));
    }
}

fn main() {
    let args = args();
    let base = fvecs(&args.dataset.join("base.fvecs"), args.n);
    let queries = fvecs(&args.dataset.join("queries.fvecs"), args.queries);
    let truth = ground_truth(&args, &base, &queries);
    let dim = base[0].len() as u32;
    for setting in settings() {
        if !args.wants(setting.kind, setting.default) {
            continue;
        }
        let (queries, truth) = if setting.exhaustive {
            let m = args.exact_queries.min(queries.len());
            (&queries[..m], &truth[..m])
        } else {
            (&queries[..], &truth[..])
        };
        let Some(mut engine) = create(dim, setting.index, setting.quantization, setting.kind)
        else {
            continue;
        };
        let (build_s, build_cpu_s) = load(&mut engine, &base, None);
        let bytes = engine.snapshot("bench").expect("snapshot").len();
        for params in setting.searches {
            let requests: Vec<SearchRequest> = queries
                .iter()
                .map(|q| {
                    serde_json::from_value(
                        json!({"vector": q, "k": K, "params": params, "include": []}),
                    )
                    .expect("request")
                })
                .collect();
            let (found, qps) = measure(&engine, &requests, 1);
            let (found_mt, qps_mt) = measure(&engine, &requests, args.threads);
            assert_eq!(found, found_mt, "threads change no answer");
            print(&json!({
                "engine": "arrwdb", "index": setting.kind, "build": setting.build,
                "search": params.to_string(), "n": args.n, "build_s": build_s,
                "build_cpu_s": build_cpu_s,
                "qps": qps, "qps_mt": qps_mt, "threads": args.threads,
                "recall10": recall(&found, truth), "queries": queries.len(),
                "bytes_per_vector": bytes as f64 / args.n as f64,
            }));
        }
    }
    if args.wants("keyword", true) || args.wants("hybrid", true) {
        text_search(&args, &base, &queries, &truth);
    }
}
