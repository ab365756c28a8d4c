//! Keyword and hybrid search on the real dataset (100k PyPI summaries with their
//! MiniLM embeddings), through the engine's public API.
//!
//! 1. Keyword: for 200 sampled documents, the two rarest terms of the document's own
//!    text must rank it in the top 3 for at least 95% of them.
//! 2. Hybrid: the query vector is the document's embedding plus seeded Gaussian noise
//!    (σ chosen so vector-only MRR of the source is about 0.5), the query text is 3 of
//!    its terms with one replaced by a random term of another document. Hybrid RRF
//!    must reach a higher MRR than vector-only and keyword-only.
//!
//! Run with `cargo test --release -p arrwdb-core --test hybrid -- --nocapture` to see
//! the numbers.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader};

use arrwdb_core::api::{SearchRequest, TextConfig};
use arrwdb_core::text::Analyzer;
use arrwdb_core::{
    ChunkData, Command, DocumentData, Engine, IndexConfig, LibraryConfig, Metadata, Metric,
};
use serde_json::{Value, json};
use support::{DIM, dataset_dir, fvecs, search_ids};

const SEED: u64 = 0x05ee_db25;
const SAMPLES: usize = 200;
/// Per-dimension noise on unit-norm 384-d embeddings (noise norm ≈ σ·√384).
const SIGMA: f32 = 0.21;

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn gaussian(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

fn texts(limit: usize) -> Vec<(String, Value)> {
    BufReader::new(File::open(dataset_dir().join("docs.jsonl")).expect("open docs"))
        .lines()
        .take(limit)
        .map(|l| {
            let v: Value = serde_json::from_str(&l.expect("line")).expect("json");
            (
                v["text"].as_str().unwrap_or_default().to_string(),
                v["metadata"].clone(),
            )
        })
        .collect()
}

fn load(n: usize) -> (Engine, Vec<Vec<f32>>, Vec<String>) {
    let vectors = fvecs("base.fvecs", n);
    let docs = texts(n);
    let mut engine = Engine::new();
    let config = LibraryConfig {
        name: "lib".into(),
        dimension: DIM as u32,
        metric: Metric::Dot,
        index: IndexConfig::Flat,
        quantization: arrwdb_core::api::QuantizationConfig::None,
        text: TextConfig::default(),
        embedding: None,
    };
    let record = engine
        .prepare(Command::CreateLibrary(config))
        .expect("create");
    engine.apply(&record).expect("apply");
    let mut out_texts = Vec::with_capacity(n);
    for (i, (v, (text, meta))) in vectors.iter().zip(docs).enumerate() {
        let document = DocumentData {
            id: format!("d{i}"),
            metadata: Metadata::default(),
            chunks: vec![ChunkData {
                id: format!("d{i}"),
                text: text.clone(),
                embedding: v.clone(),
                metadata: Metadata(meta),
            }],
        };
        let record = engine
            .prepare(Command::UpsertDocument {
                library: "lib".into(),
                document,
            })
            .expect("prepare");
        engine.apply(&record).expect("apply");
        out_texts.push(text);
    }
    (engine, vectors, out_texts)
}

/// The distinct analyzed terms of a text, in first-occurrence order.
fn terms(analyzer: &Analyzer, text: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    analyzer.terms(text, |t| {
        if seen.insert(t.to_string()) {
            out.push(t.to_string());
        }
    });
    out
}

fn search(engine: &Engine, body: Value) -> Vec<usize> {
    let request: SearchRequest = serde_json::from_value(body).expect("valid request");
    search_ids(engine, request)
}

fn reciprocal_rank(found: &[usize], target: usize) -> f64 {
    found
        .iter()
        .position(|&d| d == target)
        .map_or(0.0, |p| 1.0 / (p as f64 + 1.0))
}

#[test]
fn keyword_and_hybrid_search_find_the_source_document() {
    let started = std::time::Instant::now();
    let (engine, vectors, texts) = load(100_000);
    let analyzer = Analyzer::new(&TextConfig::default());
    let doc_terms: Vec<Vec<String>> = texts.iter().map(|t| terms(&analyzer, t)).collect();
    let mut df: BTreeMap<&str, u32> = BTreeMap::new();
    for list in &doc_terms {
        for t in list {
            *df.entry(t.as_str()).or_default() += 1;
        }
    }
    eprintln!(
        "seed {SEED:#x}: loaded {} documents, {} terms in {:.1?}",
        texts.len(),
        df.len(),
        started.elapsed()
    );

    // 1. Two rarest terms of a document's own text → top 3.
    let mut rng = Rng(SEED);
    let mut top3 = 0;
    let mut tried = 0;
    while tried < SAMPLES {
        let d = rng.below(texts.len());
        if doc_terms[d].len() < 2 {
            continue;
        }
        tried += 1;
        let mut by_rarity = doc_terms[d].clone();
        by_rarity.sort_by_key(|t| (df.get(t.as_str()).copied().unwrap_or(0), t.clone()));
        let query = format!("{} {}", by_rarity[0], by_rarity[1]);
        let found = search(&engine, json!({"text": query, "k": 3}));
        if found.contains(&d) {
            top3 += 1;
        }
    }
    let keyword_top3 = f64::from(top3) / SAMPLES as f64;
    eprintln!("keyword: source in the top 3 for {top3}/{SAMPLES} = {keyword_top3:.3}");
    assert!(keyword_top3 >= 0.95, "keyword top-3 rate {keyword_top3}");

    // 2. Noisy vector + partly wrong text: hybrid beats both retrievers alone.
    let sigma: f32 = std::env::var("ARRWDB_HYBRID_SIGMA")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SIGMA);
    let mut rng = Rng(SEED ^ 0xface);
    let (mut mrr_vector, mut mrr_keyword, mut mrr_hybrid, mut mrr_linear) = (0.0, 0.0, 0.0, 0.0);
    let mut n = 0;
    while n < SAMPLES {
        let d = rng.below(texts.len());
        if doc_terms[d].len() < 3 {
            continue;
        }
        n += 1;
        let noisy: Vec<f32> = vectors[d]
            .iter()
            .map(|&x| x + sigma * rng.gaussian() as f32)
            .collect();
        let mut pool = doc_terms[d].clone();
        let mut words = Vec::new();
        for _ in 0..3 {
            words.push(pool.remove(rng.below(pool.len())));
        }
        let other = loop {
            let o = rng.below(texts.len());
            if o != d && !doc_terms[o].is_empty() {
                break o;
            }
        };
        words[rng.below(3)] = doc_terms[other][rng.below(doc_terms[other].len())].clone();
        let text = words.join(" ");
        let k = 100;
        mrr_vector += reciprocal_rank(&search(&engine, json!({"vector": noisy, "k": k})), d);
        mrr_keyword += reciprocal_rank(&search(&engine, json!({"text": text, "k": k})), d);
        mrr_hybrid += reciprocal_rank(
            &search(&engine, json!({"vector": noisy, "text": text, "k": k})),
            d,
        );
        mrr_linear += reciprocal_rank(
            &search(
                &engine,
                json!({"vector": noisy, "text": text, "k": k,
                       "fusion": {"method": "linear", "normalization": "min_max"}}),
            ),
            d,
        );
    }
    let count = SAMPLES as f64;
    let (v, kw, h, lin) = (
        mrr_vector / count,
        mrr_keyword / count,
        mrr_hybrid / count,
        mrr_linear / count,
    );
    eprintln!(
        "MRR over {SAMPLES} queries (σ = {sigma}): vector {v:.3}, keyword {kw:.3}, \
         hybrid RRF {h:.3}, hybrid linear min-max {lin:.3} ({:.1?} total)",
        started.elapsed()
    );
    assert!(
        (0.3..=0.7).contains(&v),
        "σ should put vector-only MRR near 0.5, got {v}"
    );
    assert!(h > v, "hybrid RRF {h} must beat vector-only {v}");
    assert!(h > kw, "hybrid RRF {h} must beat keyword-only {kw}");
}

/// A small library: three documents with two chunks each, 2-d vectors.
fn small() -> Engine {
    let mut engine = Engine::new();
    let create: arrwdb_core::api::CreateLibraryRequest = serde_json::from_value(json!({
        "name": "lib", "dimension": 2, "metric": "cosine",
        "text": {"stemmer": "english", "ascii_folding": true}
    }))
    .expect("create request");
    let record = engine
        .prepare(Command::CreateLibrary(
            create.into_config().expect("valid config"),
        ))
        .expect("create");
    engine.apply(&record).expect("apply");
    let docs = [
        (
            "d0",
            "2020-01-01",
            ["Rust vector databases", "Running fast searches in Rust"],
        ),
        (
            "d1",
            "2024-06-01",
            ["Python notebooks for data", "A café with Rust coffee"],
        ),
        (
            "d2",
            "2010-03-15",
            ["Rusty old engines", "vector graphics editor"],
        ),
    ];
    for (i, (id, date, texts)) in docs.iter().enumerate() {
        let request: arrwdb_core::api::UpsertDocumentRequest = serde_json::from_value(json!({
            "metadata": {"published": date, "group": i % 2},
            "chunks": [
                {"text": texts[0], "embedding": [1.0, i as f32 * 0.1]},
                {"text": texts[1], "embedding": [i as f32 * 0.1, 1.0]},
            ]
        }))
        .expect("upsert request");
        let record = engine
            .prepare(Command::UpsertDocument {
                library: "lib".into(),
                document: request.into_document((*id).into()),
            })
            .expect("prepare");
        engine.apply(&record).expect("apply");
    }
    engine
}

fn hits(engine: &Engine, body: Value) -> Vec<arrwdb_core::api::Hit> {
    let request: SearchRequest = serde_json::from_value(body).expect("valid request");
    match engine.query(&arrwdb_core::Query::Search {
        library: "lib".into(),
        request,
    }) {
        Ok(arrwdb_core::QueryResponse::Search(found)) => found.hits,
        other => panic!("unexpected {other:?}"),
    }
}

fn error(engine: &Engine, body: Value) -> String {
    let request: SearchRequest = serde_json::from_value(body).expect("parses");
    let e = engine
        .query(&arrwdb_core::Query::Search {
            library: "lib".into(),
            request,
        })
        .expect_err("refused");
    assert_eq!(e.kind(), arrwdb_core::ErrorKind::Invalid, "{e}");
    e.to_string()
}

fn ids(hits: &[arrwdb_core::api::Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.chunk_id.as_str()).collect()
}

#[test]
fn keyword_search_uses_the_library_analyzer_filters_and_breakdowns() {
    let engine = small();
    // Stemming: "run" matches "Running"; folding: "cafe" matches "café".
    assert_eq!(ids(&hits(&engine, json!({"text": "run"}))), ["d0#1"]);
    assert_eq!(ids(&hits(&engine, json!({"text": "CAFE"}))), ["d1#1"]);
    // "rust" (stem of Rust and Rusty? no: rusty → rusti) is in d0#0, d0#1, d1#1.
    let found = hits(&engine, json!({"text": "rust", "k": 10}));
    assert_eq!(found.len(), 3);
    let breakdown = found[0].breakdown.expect("keyword hits carry a breakdown");
    assert_eq!(breakdown.keyword_rank, Some(1));
    assert_eq!(breakdown.keyword_score, Some(found[0].score));
    assert_eq!(breakdown.vector_score, None);
    assert_eq!(found[0].distance, None);
    // The metadata filter applies before ranking.
    let filtered = hits(&engine, json!({"text": "rust", "filter": {"group": 1}}));
    assert_eq!(ids(&filtered), ["d1#1"]);
    // No shared term: no hits.
    assert!(hits(&engine, json!({"text": "kubernetes"})).is_empty());
    // Pure vector search keeps its old shape: no breakdown, a distance.
    let plain = hits(&engine, json!({"vector": [1.0, 0.0], "k": 1}));
    assert!(plain[0].breakdown.is_none());
    assert!(plain[0].distance.is_some());
}

#[test]
fn hybrid_fuses_both_lists_and_reports_each_part() {
    let engine = small();
    let found = hits(
        &engine,
        json!({"vector": [0.0, 1.0], "text": "vector", "k": 6}),
    );
    // "vector" is in d0#0 and d2#1; d2#1 is also the closest vector but one.
    assert_eq!(found[0].chunk_id, "d2#1");
    let b = found[0].breakdown.expect("breakdown");
    assert!(b.vector_rank.is_some() && b.keyword_rank.is_some());
    let expected = 1.0 / (60.0 + f64::from(b.vector_rank.unwrap_or(0)))
        + 1.0 / (60.0 + f64::from(b.keyword_rank.unwrap_or(0)));
    assert!((f64::from(found[0].score) - expected).abs() < 1e-6);
    assert_eq!(b.fused_score, Some(found[0].score));
    assert!(
        found[0].distance.is_some(),
        "vector hits keep their distance"
    );
    // Weighting only the keyword list orders by keyword rank.
    let keyword_only = hits(
        &engine,
        json!({"vector": [0.0, 1.0], "text": "vector", "k": 2,
               "fusion": {"method": "rrf", "weights": {"vector": 0, "keyword": 1}}}),
    );
    let ranks: Vec<Option<u32>> = keyword_only
        .iter()
        .map(|h| h.breakdown.and_then(|b| b.keyword_rank))
        .collect();
    assert_eq!(ranks, [Some(1), Some(2)]);
}

#[test]
fn rerankers_reorder_candidates() {
    let engine = small();
    let now = 1_735_689_600_000i64; // 2025-01-01
    let base = json!({"text": "rust vector", "k": 3});
    let plain = ids(&hits(&engine, base.clone())).join(",");
    // Recency with full weight: newest document first (d1 2024, d0 2020, d2 2010).
    let mut recent = base.clone();
    recent["rerank"] =
        json!({"type":"recency","field":"published","half_life_days":365,"weight":1});
    recent["now"] = json!(now);
    assert_eq!(
        ids(&hits(&engine, recent))[0],
        "d1#1",
        "plain order {plain}"
    );
    // Position with full weight: first chunks of their documents first.
    let mut first = base.clone();
    first["rerank"] = json!([{"type":"position","weight":1}]);
    let found = hits(&engine, first);
    let order = ids(&found);
    assert!(order[0].ends_with("#0"), "{order:?}");
    // Length: a 29-character target prefers "Running fast searches in Rust", which
    // BM25 alone does not rank first (it has more terms than "Rust vector databases").
    let long = json!({"text": "rust", "k": 3});
    assert_eq!(ids(&hits(&engine, long.clone()))[0], "d0#0");
    let mut long = long;
    long["rerank"] = json!([{"type":"length","target":29,"weight":1}]);
    assert_eq!(ids(&hits(&engine, long))[0], "d0#1");
    // MMR with λ = 0 picks the most relevant, then the most different vector.
    let mmr = hits(
        &engine,
        json!({"vector": [1.0, 0.0], "k": 2, "rerank": [{"type":"mmr","lambda":0.0}]}),
    );
    assert_eq!(mmr.len(), 2);
    assert_eq!(mmr[0].chunk_id, "d0#0");
    assert!(
        mmr[1].chunk_id.ends_with("#1"),
        "the orthogonal chunk: {mmr:?}"
    );
    // Recency without `now` is a client error.
    let mut no_now = base;
    no_now["rerank"] = json!({"type":"recency","field":"published","half_life_days":30});
    assert!(error(&engine, no_now).contains("now"));
}

#[test]
fn modes_and_options_are_validated() {
    let engine = small();
    for (body, needle) in [
        (
            json!({"text": "rust", "mode": "vector"}),
            "no embedding provider",
        ),
        (
            json!({"vector": [1.0, 0.0], "mode": "keyword"}),
            "needs `text`",
        ),
        (
            json!({"vector": [1.0, 0.0], "text": "x", "mode": "keyword"}),
            "does not use `vector`",
        ),
        (
            json!({"vector": [1.0, 0.0], "mode": "hybrid"}),
            "needs `text`",
        ),
        (
            json!({"text": "x", "mode": "hybrid"}),
            "needs `vector` and `text`",
        ),
        (json!({"k": 3}), "needs `vector`"),
        (
            json!({"vector": [1.0, 0.0], "fusion": {"method": "rrf"}}),
            "hybrid searches",
        ),
        (
            json!({"vector": [1.0, 0.0], "text": "x", "fusion": {"method": "max"}}),
            "fusion",
        ),
        (
            json!({"text": "x", "rerank": [{"type": "mmr"}, {"type": "position"}]}),
            "last",
        ),
        (json!({"text": "x", "candidates": 0}), "candidates"),
        (
            json!({"text": "x", "distance_threshold": 0.5}),
            "vector scores",
        ),
    ] {
        let message = error(&engine, body.clone());
        assert!(message.contains(needle), "{body}: {message}");
    }
}

#[test]
fn the_text_index_follows_deletes_snapshots_and_optimize() {
    let mut engine = small();
    let before = hits(&engine, json!({"text": "rust vector", "k": 6}));
    // Snapshot round trip keeps keyword results bit for bit.
    let bytes = engine.snapshot("lib").expect("snapshot");
    let mut restored = Engine::new();
    restored.restore(&bytes).expect("restore");
    assert_eq!(
        hits(&restored, json!({"text": "rust vector", "k": 6})),
        before
    );
    // Deleting a document removes its chunks from keyword results.
    let record = engine
        .prepare(Command::DeleteDocument {
            library: "lib".into(),
            document: "d0".into(),
        })
        .expect("delete");
    engine.apply(&record).expect("apply");
    let after = hits(&engine, json!({"text": "rust vector", "k": 6}));
    assert!(after.iter().all(|h| h.document_id != "d0"), "{after:?}");
    // Optimize renumbers slots; keyword results are unchanged.
    let record = engine
        .prepare(Command::Optimize {
            library: "lib".into(),
        })
        .expect("optimize");
    engine.apply(&record).expect("apply");
    assert_eq!(hits(&engine, json!({"text": "rust vector", "k": 6})), after);
}
