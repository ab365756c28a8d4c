//! Scenario files (tests/conformance/*.json) and their expansion into a plan of
//! concrete, HTTP-shaped operations (docs/conformance.md has the format).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::support::{dataset, workspace_root};

/// A scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: String,
    #[allow(dead_code)]
    description: String,
    steps: Vec<Step>,
}

/// One step of a scenario file: an operation, or a dataset step that expands to many.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    op: String,
    #[serde(default)]
    library: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    query: Option<Value>,
    #[serde(default)]
    expect: Option<Value>,
    #[serde(default)]
    expect_error: Option<String>,
    #[serde(default)]
    min_hits: Option<usize>,
    #[serde(default)]
    expect_ids: Option<Vec<String>>,
    /// `upsert_dataset`: first row and number of rows; `search_dataset`: first query.
    #[serde(default)]
    offset: Option<usize>,
    #[serde(default)]
    count: Option<usize>,
    /// `upsert_dataset`: documents per batch (default 100).
    #[serde(default)]
    batch: Option<usize>,
    /// `upsert_dataset`: merged into every document's metadata.
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    /// `search_dataset`: how many queries.
    #[serde(default)]
    queries: Option<usize>,
    /// `search_dataset`: `vector` (default), `keyword` or `hybrid`: what each search sends.
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
}

/// A concrete operation, run the same way by every runtime.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    /// `scenario step N (op)`, for messages.
    pub(crate) label: String,
    pub(crate) op: String,
    pub(crate) library: String,
    pub(crate) id: Option<String>,
    pub(crate) body: Option<Value>,
    pub(crate) query: Option<Value>,
    /// The normalized result the native engine must give.
    pub(crate) expect: Option<Value>,
    pub(crate) expect_error: Option<String>,
    pub(crate) min_hits: Option<usize>,
    /// The document ids a search's hits or a listing's documents must have, in order.
    pub(crate) expect_ids: Option<Vec<String>>,
}

impl Op {
    /// The operation as the JavaScript runner reads it.
    pub(crate) fn to_json(&self) -> Value {
        json!({"op": self.op, "library": self.library, "id": self.id, "body": self.body, "query": self.query})
    }
}

#[derive(Debug)]
pub(crate) struct Scenario {
    pub(crate) name: String,
    pub(crate) ops: Vec<Op>,
}

/// Every scenario, expanded.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) scenarios: Vec<Scenario>,
}

const OPS: [&str; 13] = [
    "create_library",
    "upsert",
    "upsert_batch",
    "delete_document",
    "delete_documents",
    "rebuild",
    "optimize",
    "search",
    "get_library",
    "get_document",
    "list_documents",
    "snapshot",
    "restart",
];

/// The dataset rows the scenarios use, read once.
#[derive(Debug)]
struct Data {
    docs: Vec<Value>,
    /// (vector, text) of each query.
    queries: Vec<(Vec<f32>, String)>,
}

impl Plan {
    /// Loads and expands tests/conformance/*.json in file-name order. Panics with the
    /// file and step on a malformed scenario.
    pub(crate) fn load() -> Plan {
        let dir = workspace_root().join("tests/conformance");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no scenarios in {}", dir.display());
        let parsed: Vec<ScenarioFile> = files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f).expect("read scenario");
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()))
            })
            .collect();
        let rows = parsed
            .iter()
            .flat_map(|s| &s.steps)
            .filter(|s| s.op == "upsert_dataset")
            .map(|s| s.offset.unwrap_or(0) + s.count.unwrap_or(0))
            .max()
            .unwrap_or(0);
        let queries = parsed
            .iter()
            .flat_map(|s| &s.steps)
            .filter(|s| s.op == "search_dataset")
            .map(|s| s.offset.unwrap_or(0) + s.queries.unwrap_or(0))
            .max()
            .unwrap_or(0);
        let texts = dataset::jsonl("queries.jsonl", queries);
        let data = Data {
            docs: dataset::documents(rows),
            queries: dataset::fvecs("queries.fvecs", queries)
                .into_iter()
                .zip(&texts)
                .map(|(v, t)| (v, t["text"].as_str().unwrap_or_default().to_owned()))
                .collect(),
        };
        assert_eq!(data.docs.len(), rows, "dataset rows");
        assert_eq!(data.queries.len(), queries, "dataset queries");

        let mut names = BTreeSet::new();
        let scenarios: Vec<Scenario> = parsed
            .iter()
            .map(|file| {
                let ops = expand(file, &data);
                // HTTP runtimes run every scenario on one server.
                for op in ops.iter().filter(|o| o.op == "create_library") {
                    if op.expect_error.is_none() {
                        assert!(
                            names.insert(op.library.clone()),
                            "{}: library `{}` is created by another scenario too",
                            op.label,
                            op.library
                        );
                    }
                }
                Scenario {
                    name: file.name.clone(),
                    ops,
                }
            })
            .collect();
        Plan { scenarios }
    }

    /// The plan as the JavaScript runner reads it.
    pub(crate) fn to_json(&self) -> Value {
        json!({"scenarios": self.scenarios.iter().map(|s| json!({
            "name": s.name,
            "ops": s.ops.iter().map(Op::to_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>()})
    }
}

fn expand(file: &ScenarioFile, data: &Data) -> Vec<Op> {
    let mut ops = Vec::new();
    for (n, step) in file.steps.iter().enumerate() {
        let label = format!("{} step {n} ({})", file.name, step.op);
        let library = step.library.clone().unwrap_or_else(|| {
            // create_library names its library in the body.
            step.body
                .as_ref()
                .and_then(|b| b["name"].as_str())
                .unwrap_or_default()
                .to_owned()
        });
        let base = Op {
            label: label.clone(),
            op: step.op.clone(),
            library,
            id: step.id.clone(),
            body: step.body.clone(),
            query: step.query.clone(),
            expect: step.expect.clone(),
            expect_error: step.expect_error.clone(),
            min_hits: step.min_hits,
            expect_ids: step.expect_ids.clone(),
        };
        match step.op.as_str() {
            "upsert_dataset" => {
                let offset = step.offset.unwrap_or(0);
                let count = step.count.unwrap_or_else(|| panic!("{label}: `count`"));
                let rows = &data.docs[offset..offset + count];
                for (b, chunk) in rows.chunks(step.batch.unwrap_or(100)).enumerate() {
                    let documents: Vec<Value> = chunk
                        .iter()
                        .map(|doc| {
                            let mut doc = doc.clone();
                            if let (Some(extra), Some(meta)) =
                                (&step.metadata, doc["metadata"].as_object_mut())
                            {
                                meta.extend(extra.clone());
                            }
                            doc
                        })
                        .collect();
                    ops.push(Op {
                        label: format!("{label} batch {b}"),
                        op: "upsert_batch".into(),
                        body: Some(json!({ "documents": documents })),
                        expect: None,
                        ..base.clone()
                    });
                }
            }
            "search_dataset" => {
                let offset = step.offset.unwrap_or(0);
                let n = step.queries.unwrap_or_else(|| panic!("{label}: `queries`"));
                let mode = step.mode.as_deref().unwrap_or("vector");
                assert!(
                    ["vector", "keyword", "hybrid"].contains(&mode),
                    "{label}: mode {mode}"
                );
                for (q, (vector, text)) in data.queries[offset..offset + n].iter().enumerate() {
                    let mut body = step.body.clone().unwrap_or_else(|| json!({}));
                    if mode != "keyword" {
                        body["vector"] = json!(vector);
                    }
                    if mode != "vector" {
                        body["text"] = json!(text);
                    }
                    ops.push(Op {
                        label: format!("{label} query {}", offset + q),
                        op: "search".into(),
                        body: Some(body),
                        expect: None,
                        ..base.clone()
                    });
                }
            }
            op => {
                assert!(OPS.contains(&op), "{label}: unknown op `{op}`");
                if ["upsert", "upsert_batch"].contains(&op) {
                    let docs = match &step.body {
                        Some(b) if op == "upsert" => vec![b.clone()],
                        Some(b) => b["documents"].as_array().cloned().unwrap_or_default(),
                        None => panic!("{label}: `body`"),
                    };
                    // Without an id every runtime would make up its own.
                    assert!(
                        docs.iter().all(|d| d["id"].is_string()),
                        "{label}: every document needs an `id`"
                    );
                }
                ops.push(base);
            }
        }
    }
    ops
}
