//! Reader for `../shared/datasets/pypi-minilm` (see its README).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use serde_json::Value;

use super::workspace_root;

pub const DIM: usize = 384;

pub fn dir() -> PathBuf {
    let dir = workspace_root().join("../shared/datasets/pypi-minilm");
    assert!(dir.is_dir(), "dataset missing at {}", dir.display());
    dir
}

/// The first `limit` vectors of an `.fvecs` file.
pub fn fvecs(name: &str, limit: usize) -> Vec<Vec<f32>> {
    let vectors = arrwdb_tests::fvecs(&dir().join(name), limit);
    assert!(
        vectors.iter().all(|v| v.len() == DIM),
        "unexpected dimension in {name}"
    );
    vectors
}

/// The first `limit` lines of a `.jsonl` file.
pub fn jsonl(name: &str, limit: usize) -> Vec<Value> {
    BufReader::new(File::open(dir().join(name)).expect("open jsonl"))
        .lines()
        .take(limit)
        .map(|l| serde_json::from_str(&l.expect("read line")).expect("valid JSON line"))
        .collect()
}

/// The first `n` base documents as upsert requests: `{"id","metadata","chunks":[{"text","embedding"}]}`.
pub fn documents(n: usize) -> Vec<Value> {
    let vectors = fvecs("base.fvecs", n);
    jsonl("docs.jsonl", n)
        .into_iter()
        .zip(vectors)
        .map(|(doc, v)| {
            serde_json::json!({
                "id": doc["id"].as_str().map(str::to_owned).unwrap_or_else(|| doc["id"].to_string()),
                "metadata": doc["metadata"],
                "chunks": [{ "text": doc["text"], "embedding": v }],
            })
        })
        .collect()
}
