//! The conformance suite (docs/conformance.md): scenario files in tests/conformance/
//! (operations shaped like the HTTP API, some with expected results) run on every
//! runtime of the engine, and each runtime's normalized results must equal the native
//! engine's: ids and order exactly, scores bit for bit (the distance kernels reduce in
//! a fixed order and every index is deterministic, see cross_runtime.rs), so the
//! tolerance is zero. One test per runtime, so a failure names it.
//!
//! The scenario files are expanded here, once, into a plan of concrete operations (the
//! dataset steps become batches of documents and searches with the dataset's vectors
//! and texts inline), so every runtime only maps an HTTP-shaped operation to its own
//! API and no runtime reads the dataset itself.

mod plan;
mod runtimes;

use serde_json::{Value, json};

use plan::{Op, Plan};

/// The native reference of every scenario: also checks each step's `expect` /
/// `expect_error` and some properties that do not depend on another runtime.
#[test]
fn conformance_native_matches_the_scenarios_expectations() {
    let plan = Plan::load();
    let results = runtimes::native(&plan);
    for (scenario, outputs) in plan.scenarios.iter().zip(&results) {
        for (op, output) in scenario.ops.iter().zip(outputs) {
            if let Some(expected) = &op.expect {
                assert_eq!(
                    output,
                    &scores_as_f32(op, expected),
                    "{}: native result differs from the scenario's `expect`",
                    op.label
                );
            }
            if let Some(kind) = &op.expect_error {
                assert_eq!(
                    output,
                    &json!({ "error": kind }),
                    "{}: expected error `{kind}`",
                    op.label
                );
            } else {
                assert!(
                    output.get("error").is_none(),
                    "{}: unexpected error {output}",
                    op.label
                );
            }
            if let Some(ids) = &op.expect_ids {
                let got: Vec<&Value> = match op.op.as_str() {
                    "search" => output["hits"]
                        .as_array()
                        .map(|h| h.iter().map(|h| &h[1]).collect()),
                    _ => output["documents"]
                        .as_array()
                        .map(|d| d.iter().map(|d| &d["id"]).collect()),
                }
                .unwrap_or_default();
                assert_eq!(
                    got,
                    ids.iter()
                        .map(|i| json!(i))
                        .collect::<Vec<_>>()
                        .iter()
                        .collect::<Vec<_>>(),
                    "{}: document ids",
                    op.label
                );
            }
            if std::env::var_os("CONFORMANCE_PRINT").is_some() {
                eprintln!("{}: {}", op.label, truncate(output));
            }
            if let Some(min) = op.min_hits {
                let hits = output["hits"].as_array().map_or(0, Vec::len);
                assert!(hits >= min, "{}: {hits} hits, expected >= {min}", op.label);
            }
        }
    }
}

#[test]
fn conformance_node_matches_native() {
    let plan = Plan::load();
    let (native, node) = numbers_by_value(runtimes::native(&plan), runtimes::js(&plan, false));
    compare(&plan, &native, &node, "node");
}

#[test]
fn conformance_chromium_matches_native() {
    let plan = Plan::load();
    let (native, chromium) = numbers_by_value(runtimes::native(&plan), runtimes::js(&plan, true));
    compare(&plan, &native, &chromium, "chromium");
}

#[test]
fn conformance_edge_matches_native() {
    let plan = Plan::load();
    compare(
        &plan,
        &runtimes::native(&plan),
        &runtimes::edge(&plan),
        "edge",
    );
}

#[test]
fn conformance_host_matches_native() {
    let plan = Plan::load();
    compare(
        &plan,
        &runtimes::native(&plan),
        &runtimes::host(&plan),
        "host",
    );
}

#[test]
fn conformance_replica_matches_native() {
    let plan = Plan::load();
    compare(
        &plan,
        &runtimes::native(&plan),
        &runtimes::replica(&plan),
        "replica",
    );
}

/// JavaScript has one number type, so metadata written as `1.0` reads back as `1` from
/// the npm package: for the JS runtimes every number is compared as the f64 it is.
fn numbers_by_value(a: Vec<Vec<Value>>, b: Vec<Vec<Value>>) -> (Vec<Vec<Value>>, Vec<Vec<Value>>) {
    fn canonical(v: &mut Value) {
        match v {
            Value::Number(n) => {
                if let Some(x) = n.as_f64() {
                    *v = json!(x);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(canonical),
            Value::Object(map) => map.values_mut().for_each(canonical),
            _ => {}
        }
    }
    let all = |mut runs: Vec<Vec<Value>>| {
        runs.iter_mut().flatten().for_each(canonical);
        runs
    };
    (all(a), all(b))
}

/// Asserts that `other` equals the native reference, op by op; the message names the
/// runtime, the scenario, the step and the first difference.
fn compare(plan: &Plan, reference: &[Vec<Value>], other: &[Vec<Value>], runtime: &str) {
    assert_eq!(reference.len(), other.len(), "{runtime}: scenario count");
    let ops: usize = reference.iter().map(Vec::len).sum();
    let hits: usize = reference
        .iter()
        .flatten()
        .filter_map(|r| r["hits"].as_array())
        .map(Vec::len)
        .sum();
    for ((scenario, want), got) in plan.scenarios.iter().zip(reference).zip(other) {
        assert_eq!(
            want.len(),
            got.len(),
            "{runtime}: {}: result count",
            scenario.name
        );
        for ((op, a), b) in scenario.ops.iter().zip(want).zip(got) {
            if a != b {
                panic!(
                    "{runtime}: {}: differs from native\n  native: {}\n  {runtime}: {}\n  first difference: {}",
                    op.label,
                    truncate(a),
                    truncate(b),
                    first_difference(a, b, String::new())
                );
            }
        }
    }
    eprintln!("conformance: {runtime} matches native on {ops} operations ({hits} search hits)");
}

fn truncate(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 600 {
        format!("{}…", &text[..text.floor_char_boundary(600)])
    } else {
        text
    }
}

/// The JSON path of the first place two values differ, with both sides.
fn first_difference(a: &Value, b: &Value, at: String) -> String {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                if p != q {
                    return first_difference(p, q, format!("{at}[{i}]"));
                }
            }
            format!("{at}: length {} vs {}", x.len(), y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            for (key, p) in x {
                match y.get(key) {
                    Some(q) if p == q => {}
                    Some(q) => return first_difference(p, q, format!("{at}.{key}")),
                    None => return format!("{at}.{key}: missing on the right"),
                }
            }
            format!("{at}: keys {:?} vs {:?}", x.keys(), y.keys())
        }
        _ => format!("{at}: {a} vs {b}"),
    }
}

/// Normalizes a raw result (the response JSON, or the error kind) into what is
/// compared: only what every runtime must agree on (no timings, no library ids, no
/// sequence numbers, which differ with how a runtime groups writes).
pub(crate) fn normalize(op: &Op, raw: Result<Value, String>) -> Value {
    let body = match raw {
        Ok(body) => body,
        Err(kind) => return json!({ "error": kind }),
    };
    match op.op.as_str() {
        "create_library" | "get_library" | "rebuild" | "optimize" => json!({
            "name": body["name"],
            "dimension": body["dimension"],
            "metric": body["metric"],
            "index": body["index"],
            "quantization": body["quantization"],
            "text": body["text"],
            "documents": body["documents"],
            "chunks": body["chunks"],
        }),
        "upsert" => json!({"id": body["id"], "chunk_ids": body["chunk_ids"]}),
        "upsert_batch" => Value::Array(
            body["results"]
                .as_array()
                .map(|results| {
                    results
                        .iter()
                        .map(|r| match r["error"]["kind"].as_str() {
                            Some(kind) => json!({ "error": kind }),
                            None => json!({"id": r["id"], "chunk_ids": r["chunk_ids"]}),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ),
        "delete_documents" => json!({"deleted": body["deleted"], "ids": body["ids"]}),
        "search" => {
            let hits = body["hits"].as_array().cloned().unwrap_or_default();
            json!({"hits": hits.iter().map(|h| {
                let mut hit = json!([h["chunk_id"], h["document_id"], f32_value(&h["score"])]);
                if let Some(vector) = h.get("vector").and_then(Value::as_array) {
                    hit.as_array_mut().expect("array").push(Value::Array(vector.iter().map(f32_value).collect()));
                }
                hit
            }).collect::<Vec<_>>()})
        }
        "get_document" => {
            let mut doc = body;
            if let Some(chunks) = doc["chunks"].as_array_mut() {
                for chunk in chunks {
                    if let Some(e) = chunk["embedding"].as_array() {
                        chunk["embedding"] = Value::Array(e.iter().map(f32_value).collect());
                    }
                }
            }
            doc
        }
        "list_documents" => json!({
            "documents": body["documents"],
            "next_cursor": body["next_cursor"],
        }),
        // delete_document, snapshot, restart: the body says all there is.
        _ => body,
    }
}

/// A written `expect` with its search scores read as f32, as results are (so `0.6`
/// in a scenario means the f32 nearest to 0.6).
fn scores_as_f32(op: &Op, expected: &Value) -> Value {
    let mut expected = expected.clone();
    if op.op == "search"
        && let Some(hits) = expected["hits"].as_array_mut()
    {
        for hit in hits {
            hit[2] = f32_value(&hit[2]);
        }
    }
    expected
}

/// A score or vector component as the f32 it is: every runtime prints f32s as decimal
/// text (Rust's and JS's shortest representations differ in digits, not in value), so
/// the comparison is on the f32 after parsing, bit for bit.
fn f32_value(v: &Value) -> Value {
    match v.as_f64() {
        Some(x) => json!(f64::from(x as f32)),
        None => v.clone(),
    }
}
