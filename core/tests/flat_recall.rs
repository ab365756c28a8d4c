//! `flat` on the real dataset: recall 1.0 against the published exact ground truth.

mod support;

use arrwdb_core::{IndexConfig, Metric};

#[test]
fn flat_matches_the_datasets_exact_ground_truth() {
    // The published ground truth is over all 100k rows; a prefix of the base would change
    // it, so this test loads everything (a few seconds in release).
    let (engine, _) = support::load(IndexConfig::Flat, Metric::Dot, 100_000);
    let queries = support::fvecs("queries.fvecs", 50);
    let truth = support::ivecs_groundtruth(50);
    let found: Vec<Vec<usize>> = queries
        .iter()
        .map(|q| support::search_ids(&engine, support::request(q, 10, None, None)))
        .collect();
    let recall = support::recall(&found, &truth, 10);
    assert!(recall >= 0.999, "flat recall@10 = {recall}");
}
