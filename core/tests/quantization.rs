//! Per-library quantization (SQ8 and binary) of the exact scan: recall against the
//! unquantized scan, exact answers before SQ8 training, snapshots, determinism, filters,
//! and the JSON config.

#![allow(clippy::print_stdout)] // the tests report their measured recall and speed

mod support;

use std::time::Instant;

use arrwdb_core::api::{self, QuantizationConfig, QuantizationParams};
use arrwdb_core::index::{Allowed, Bitset, Scored, VectorStore, exact_search, quant};
use arrwdb_core::{
    ChunkData, Command, DocumentData, Engine, IndexConfig, LibraryConfig, Metadata, Metric, Query,
    QueryResponse,
};
use serde_json::{Value, json};

const K: usize = 10;

fn sq8(oversample: u32) -> QuantizationConfig {
    QuantizationConfig::Sq8(QuantizationParams { oversample })
}

fn binary(oversample: u32) -> QuantizationConfig {
    QuantizationConfig::Binary(QuantizationParams { oversample })
}

fn store(base: &[Vec<f32>], metric: Metric, q: QuantizationConfig) -> VectorStore {
    let mut store = VectorStore::with_quantization(support::DIM as u32, metric, q);
    for v in base {
        store.push(v);
    }
    store
}

fn all(n: usize) -> Bitset {
    let mut live = Bitset::with_capacity(n);
    for slot in 0..n as u32 {
        live.insert(slot);
    }
    live
}

fn key(found: &[Scored]) -> Vec<(u32, u32)> {
    found.iter().map(|s| (s.slot, s.score.to_bits())).collect()
}

/// Results per query and queries per second.
fn run(store: &VectorStore, queries: &[Vec<f32>], allowed: &Allowed<'_>) -> (Vec<Vec<usize>>, f64) {
    let start = Instant::now();
    let found: Vec<Vec<usize>> = queries
        .iter()
        .map(|q| {
            exact_search(store, &store.query(q), allowed, K)
                .iter()
                .map(|s| s.slot as usize)
                .collect()
        })
        .collect();
    (found, queries.len() as f64 / start.elapsed().as_secs_f64())
}

#[test]
fn recall_and_speed_on_a_20k_prefix() {
    const N: usize = 20_000;
    let base = support::fvecs("base.fvecs", N);
    let queries = support::fvecs("queries.fvecs", 200);
    let live = all(N);
    let allowed = Allowed::new(&live, None);
    let full = store(&base, Metric::Cosine, QuantizationConfig::None);
    let (truth, flat_qps) = run(&full, &queries, &allowed);
    println!(
        "none: {flat_qps:.0} QPS, {} bytes/vector",
        full.bytes_per_vector()
    );
    for (config, min_recall) in [(sq8(4), 0.99), (binary(8), 0.90), (binary(16), 0.90)] {
        let start = Instant::now();
        let s = store(&base, Metric::Cosine, config);
        let build = start.elapsed();
        assert!(s.codes().is_active());
        let (found, qps) = run(&s, &queries, &allowed);
        let recall = support::recall(&found, &truth, K);
        println!(
            "{config:?}: recall@{K} {recall:.4}, {qps:.0} QPS ({:.2}x flat), build {build:?}, {} bytes/vector",
            qps / flat_qps,
            s.bytes_per_vector()
        );
        assert!(
            recall >= min_recall,
            "{config:?}: recall {recall} < {min_recall}"
        );
        // Scores are the exact ones (rescored with full vectors), best first.
        let q = s.query(&queries[0]);
        let hits = exact_search(&s, &q, &allowed, K);
        for w in hits.windows(2) {
            assert!(w[0].rank_cmp(&w[1]).is_lt());
        }
        for h in &hits {
            assert_eq!(h.score.to_bits(), full.score(&q, h.slot).to_bits());
        }
    }
    assert_eq!(full.bytes_per_vector(), 4 * support::DIM);
    assert_eq!(
        store(&base[..10], Metric::Cosine, binary(8)).bytes_per_vector(),
        4 * support::DIM + support::DIM / 8
    );
}

#[test]
fn sq8_answers_exactly_until_trained_and_every_metric_works() {
    let base = support::fvecs("base.fvecs", quant::SQ8_TRAIN_AT + 500);
    let queries = support::fvecs("queries.fvecs", 20);
    for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
        let mut s = VectorStore::with_quantization(support::DIM as u32, metric, sq8(1));
        let mut full = VectorStore::new(support::DIM as u32, metric);
        for v in &base[..quant::SQ8_TRAIN_AT - 1] {
            s.push(v);
            full.push(v);
        }
        assert!(!s.codes().is_active(), "trained too early");
        let live = all(s.len());
        let allowed = Allowed::new(&live, None);
        for q in &queries {
            assert_eq!(
                key(&exact_search(&s, &s.query(q), &allowed, K)),
                key(&exact_search(&full, &full.query(q), &allowed, K)),
                "{metric:?}: untrained SQ8 must answer exactly"
            );
        }
        for v in &base[quant::SQ8_TRAIN_AT - 1..] {
            s.push(v);
            full.push(v);
        }
        assert!(s.codes().is_active(), "trained at {}", quant::SQ8_TRAIN_AT);
        let live = all(s.len());
        let allowed = Allowed::new(&live, None);
        let mut truth = Vec::new();
        let mut found = Vec::new();
        for q in &queries {
            let ids = |r: Vec<Scored>| r.iter().map(|s| s.slot as usize).collect::<Vec<_>>();
            truth.push(ids(exact_search(&full, &full.query(q), &allowed, K)));
            found.push(ids(exact_search(&s, &s.query(q), &allowed, K)));
        }
        let recall = support::recall(&found, &truth, K);
        println!("{metric:?} sq8 oversample 1: recall@{K} {recall:.4}");
        assert!(recall >= 0.9, "{metric:?}: recall {recall}");
        // Binary for the same metric.
        let b = store(&base, metric, binary(16));
        let found: Vec<Vec<usize>> = queries
            .iter()
            .map(|q| {
                exact_search(&b, &b.query(q), &allowed, K)
                    .iter()
                    .map(|s| s.slot as usize)
                    .collect()
            })
            .collect();
        let recall = support::recall(&found, &truth, K);
        println!("{metric:?} binary oversample 16: recall@{K} {recall:.4}");
        assert!(recall >= 0.8, "{metric:?}: binary recall {recall}");
    }
}

fn create(engine: &mut Engine, quantization: QuantizationConfig) {
    let config = LibraryConfig {
        name: "lib".into(),
        dimension: support::DIM as u32,
        metric: Metric::Cosine,
        index: IndexConfig::Flat,
        quantization,
        text: arrwdb_core::api::TextConfig::default(),
        embedding: None,
    };
    let record = engine
        .prepare(Command::CreateLibrary(config))
        .expect("create");
    engine.apply(&record).expect("apply");
}

fn load(quantization: QuantizationConfig, base: &[Vec<f32>], meta: &[Value]) -> Engine {
    let mut engine = Engine::new();
    create(&mut engine, quantization);
    for (i, (v, m)) in base.iter().zip(meta).enumerate() {
        let document = DocumentData {
            id: format!("d{i}"),
            metadata: Metadata::default(),
            chunks: vec![ChunkData {
                id: format!("d{i}"),
                text: String::new(),
                embedding: v.clone(),
                metadata: Metadata(m.clone()),
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
    for d in (0..base.len()).step_by(7) {
        let record = engine
            .prepare(Command::DeleteDocument {
                library: "lib".into(),
                document: format!("d{d}"),
            })
            .expect("prepare delete");
        engine.apply(&record).expect("apply delete");
    }
    engine
}

#[test]
fn engine_snapshot_determinism_and_filters() {
    const N: usize = 3_000;
    let base = support::fvecs("base.fvecs", N);
    let meta = support::metadata(N);
    let queries = support::fvecs("queries.fvecs", 20);
    for config in [sq8(2), binary(8)] {
        let engine = load(config, &base, &meta);
        let again = load(config, &base, &meta);
        let bytes = engine.snapshot("lib").expect("snapshot");
        assert_eq!(
            bytes,
            again.snapshot("lib").expect("snapshot"),
            "determinism"
        );
        let mut restored = Engine::new();
        assert_eq!(restored.restore(&bytes).expect("restore"), "lib");
        assert_eq!(restored, engine, "snapshot round trip");
        assert_eq!(restored.snapshot("lib").expect("snapshot"), bytes);
        let info = engine.library("lib").expect("library").info();
        assert_eq!(info.quantization, config);
        for q in &queries {
            // Broad and very selective (engine's exact path) filters.
            for (filter, year_ok) in [
                (
                    json!({"year": {"$gte": 2020}}),
                    (|y: i64| y >= 2020) as fn(i64) -> bool,
                ),
                (json!({"year": {"$lte": 2008}}), |y: i64| y <= 2008),
            ] {
                let request = support::request(q, K as u32, Some(filter.clone()), None);
                let hits = support::search_ids(&engine, request.clone());
                assert!(!hits.is_empty());
                for &d in &hits {
                    assert!(d % 7 != 0, "deleted document {d} returned");
                    let year = meta[d]["year"].as_i64().expect("year");
                    assert!(year_ok(year), "{filter}: d{d} has year {year}");
                }
                assert_eq!(hits, support::search_ids(&restored, request));
            }
        }
    }
}

#[test]
fn json_config_defaults_validation_and_info() {
    let parse = |q: Value| {
        let body = json!({"name": "lib", "dimension": 3, "quantization": q});
        api::from_json::<api::CreateLibraryRequest>(&serde_json::to_vec(&body).expect("json"))
    };
    let config = parse(json!({"type": "sq8"}))
        .expect("sq8")
        .into_config()
        .expect("config");
    assert_eq!(config.quantization, sq8(4));
    assert_eq!(
        parse(json!({"type": "binary", "oversample": 12}))
            .expect("binary")
            .into_config()
            .expect("config")
            .quantization,
        binary(12)
    );
    assert_eq!(
        parse(json!({"type": "none"}))
            .expect("none")
            .into_config()
            .expect("config")
            .quantization,
        QuantizationConfig::None
    );
    assert!(parse(json!({"type": "pq"})).is_err());
    assert!(parse(json!({"type": "sq8", "bits": 4})).is_err());
    assert_eq!(
        serde_json::to_value(sq8(4)).expect("json"),
        json!({"type": "sq8", "oversample": 4})
    );
    for bad in [0, 65] {
        let config = parse(json!({"type": "sq8", "oversample": bad}))
            .expect("parses")
            .into_config()
            .expect("config");
        let err = Engine::new()
            .prepare(Command::CreateLibrary(config))
            .expect_err("oversample out of range");
        assert!(err.to_string().contains("oversample"), "{err}");
    }
    // Postcard round trip of the config (plain enum).
    for q in [QuantizationConfig::None, sq8(4), binary(64)] {
        let bytes = postcard::to_allocvec(&q).expect("encode");
        assert_eq!(
            postcard::from_bytes::<QuantizationConfig>(&bytes).expect("decode"),
            q
        );
    }
    let mut engine = Engine::new();
    create(&mut engine, binary(3));
    let response = engine
        .query(&Query::Search {
            library: "lib".into(),
            request: support::request(&[1.0; support::DIM], 3, None, None),
        })
        .expect("search on an empty library");
    assert!(matches!(response, QueryResponse::Search(r) if r.hits.is_empty()));
}
