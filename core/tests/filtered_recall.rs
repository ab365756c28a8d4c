#![allow(clippy::print_stdout)] // the measured recall is the point of this test
//! Filtered recall through the engine and the filter language, for every approximate
//! index, at the selectivities the dataset's metadata gives (~0.1 %, ~1–2 %, ~10 %,
//! ~50 %). Very selective filters take the engine's exact path; the others are walked
//! inside the index. Ground truth: exact search over the matching documents.

mod support;

use arrwdb_core::{IndexConfig, Metric};
use serde_json::{Value, json};

const N: usize = 20_000;
const QUERIES: usize = 100;

fn filters() -> Vec<(&'static str, Value)> {
    vec![
        ("~0.1%", json!({"year": 2008})),
        ("~1.7%", json!({"download_rank": {"$exists": true}})),
        ("~11%", json!({"year": {"$lte": 2018}})),
        ("~50%", json!({"year": {"$gte": 2025}})),
    ]
}

#[test]
fn filtered_recall_is_high_for_every_index_and_selectivity() {
    let queries = support::fvecs("queries.fvecs", QUERIES);
    let (flat, _) = support::load(IndexConfig::Flat, Metric::Cosine, N);
    let truth: Vec<Vec<Vec<usize>>> = filters()
        .into_iter()
        .map(|(_, filter)| {
            queries
                .iter()
                .map(|q| {
                    support::search_ids(&flat, support::request(q, 10, Some(filter.clone()), None))
                })
                .collect()
        })
        .collect();
    let kinds: Vec<(&str, IndexConfig)> = vec![
        (
            "hnsw",
            serde_json::from_value(json!({"type": "hnsw"})).expect("config"),
        ),
        (
            "ivf",
            serde_json::from_value(json!({"type": "ivf", "nlist": 128, "train_size": 5000}))
                .expect("config"),
        ),
        (
            "lsh",
            serde_json::from_value(json!({"type": "lsh"})).expect("config"),
        ),
    ];
    for (kind, config) in kinds {
        let (engine, _) = support::load(config, Metric::Cosine, N);
        for ((label, filter), truth) in filters().into_iter().zip(&truth) {
            let found: Vec<Vec<usize>> = queries
                .iter()
                .map(|q| {
                    support::search_ids(
                        &engine,
                        support::request(q, 10, Some(filter.clone()), None),
                    )
                })
                .collect();
            let recall = support::recall(&found, truth, 10);
            println!("{kind} filter {label} {filter}: recall@10 {recall:.4}");
            let floor = if kind == "lsh" { 0.80 } else { 0.95 };
            assert!(
                recall >= floor,
                "{kind} at {label}: recall@10 {recall:.4} < {floor}"
            );
        }
    }
}
