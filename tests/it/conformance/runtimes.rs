//! The runtimes: how each maps a plan's operations to its own API and returns the
//! normalized results (one `Vec` per scenario, one value per operation).

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrwdb_core::api::{
    self, BatchUpsertRequest, DeleteDocumentsRequest, ListDocumentsRequest, RebuildRequest,
    SearchRequest, UpsertDocumentRequest,
};
use arrwdb_core::{Command as EngineCommand, Engine, Error, Outcome, Query, QueryResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::normalize;
use super::plan::{Op, Plan};
use crate::edge::start_edge;
use crate::host::{Server, encode};
use crate::support::{Http, npm_package, workspace_root};

type Raw = Result<Value, String>;

// ---------------------------------------------------------------- native

/// The reference: `arrwdb_core::Engine` in this process, one fresh engine per scenario.
pub(crate) fn native(plan: &Plan) -> Vec<Vec<Value>> {
    plan.scenarios
        .iter()
        .map(|s| {
            let mut engine = Engine::new();
            s.ops
                .iter()
                .map(|op| {
                    normalize(
                        op,
                        native_op(&mut engine, op).map_err(|e| e.kind().as_str().to_owned()),
                    )
                })
                .collect()
        })
        .collect()
}

fn parse<T: DeserializeOwned>(body: Option<&Value>) -> Result<T, Error> {
    serde_json::from_value(body.cloned().unwrap_or(Value::Null))
        .map_err(|e| Error::Invalid(format!("invalid request: {e}")))
}

/// A response as the transports send it: through JSON text (`to_value` would widen an
/// f32 such as `k1: 1.2` to 1.2000000476837158, where the text says 1.2).
fn value<T: Serialize>(v: &T) -> Value {
    serde_json::from_slice(&api::to_json(v)).expect("JSON")
}

fn execute(engine: &mut Engine, command: EngineCommand) -> Result<Outcome, Error> {
    let record = engine.prepare(command)?;
    engine.apply(&record)
}

fn upsert_one(
    engine: &mut Engine,
    library: &str,
    request: UpsertDocumentRequest,
) -> Result<Value, Error> {
    let id = request.id.clone().expect("scenario documents have ids");
    match execute(
        engine,
        EngineCommand::UpsertDocument {
            library: library.into(),
            document: request.into_document(id),
        },
    )? {
        Outcome::DocumentUpserted(done) => Ok(value(&done)),
        other => panic!("unexpected {other:?}"),
    }
}

fn info(outcome: Outcome) -> Value {
    match outcome {
        Outcome::LibraryCreated(info) | Outcome::IndexRebuilt(info) | Outcome::Optimized(info) => {
            value(&info)
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn native_op(engine: &mut Engine, op: &Op) -> Result<Value, Error> {
    let library = op.library.clone();
    let body = op.body.as_ref();
    let query = |engine: &Engine, query: Query| -> Result<Value, Error> {
        Ok(match engine.query(&query)? {
            QueryResponse::Libraries(v) => value(&v),
            QueryResponse::Library(v) => value(&v),
            QueryResponse::Document(v) => value(&v),
            QueryResponse::Search(v) => value(&v),
            QueryResponse::Documents(v) => value(&v),
        })
    };
    match op.op.as_str() {
        "create_library" => {
            let config = parse::<api::CreateLibraryRequest>(body)?.into_config()?;
            Ok(info(execute(engine, EngineCommand::CreateLibrary(config))?))
        }
        "upsert" => upsert_one(engine, &library, parse(body)?),
        "upsert_batch" => {
            let batch: BatchUpsertRequest = parse(body)?;
            batch.validate()?;
            let results: Vec<Value> = batch
                .documents
                .into_iter()
                .map(|d| {
                    upsert_one(engine, &library, d)
                        .unwrap_or_else(|e| json!({"error": {"kind": e.kind().as_str()}}))
                })
                .collect();
            Ok(json!({ "results": results }))
        }
        "delete_document" => {
            let document = op.id.clone().expect("delete_document needs `id`");
            execute(engine, EngineCommand::DeleteDocument { library, document })?;
            Ok(Value::Null)
        }
        "delete_documents" => {
            let request: DeleteDocumentsRequest = parse(body)?;
            match execute(engine, EngineCommand::DeleteDocuments { library, request })? {
                Outcome::DocumentsDeleted { ids, .. } => {
                    Ok(json!({"deleted": ids.len(), "ids": ids}))
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        "rebuild" => {
            let request: RebuildRequest = parse(body)?;
            Ok(info(execute(
                engine,
                EngineCommand::RebuildIndex {
                    library,
                    index: request.index,
                },
            )?))
        }
        "optimize" => Ok(info(execute(engine, EngineCommand::Optimize { library })?)),
        "search" => {
            let request: SearchRequest = parse(body)?;
            query(engine, Query::Search { library, request })
        }
        "get_library" => query(engine, Query::GetLibrary { library }),
        "get_document" => query(
            engine,
            Query::GetDocument {
                library,
                document: op.id.clone().expect("get_document needs `id`"),
            },
        ),
        "list_documents" => {
            let request: ListDocumentsRequest =
                parse(Some(op.query.as_ref().unwrap_or(&json!({}))))?;
            query(engine, Query::ListDocuments { library, request })
        }
        "snapshot" => Ok(magic(&engine.snapshot(&library)?)),
        "restart" => {
            // Every library leaves as snapshot bytes and enters a fresh engine.
            let names: Vec<String> = engine.library_names().map(str::to_owned).collect();
            let mut fresh = Engine::new();
            for name in names {
                let restored = fresh.restore(&engine.snapshot(&name)?)?;
                assert_eq!(restored, name);
            }
            *engine = fresh;
            Ok(Value::Null)
        }
        other => panic!("unknown op {other}"),
    }
}

fn magic(bytes: &[u8]) -> Value {
    json!({"magic": String::from_utf8_lossy(&bytes[..bytes.len().min(4)])})
}

// ---------------------------------------------------------------- JavaScript

/// The npm package in Node, or in headless Chromium: tests/js/conformance.mjs runs the
/// whole plan in one process and prints every raw result.
pub(crate) fn js(plan: &Plan, browser: bool) -> Vec<Vec<Value>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("plan.json");
    std::fs::write(&file, plan.to_json().to_string()).expect("write plan");
    let mut command = Command::new("node");
    command
        .current_dir(workspace_root())
        .arg("tests/js/conformance.mjs")
        .arg("--pkg")
        .arg(npm_package())
        .arg("--plan")
        .arg(&file)
        .stderr(Stdio::inherit());
    if browser {
        command.arg("--browser");
    }
    let out = command.output().expect("run node");
    assert!(
        out.status.success(),
        "tests/js/conformance.mjs failed: {}",
        out.status
    );
    let raw: Vec<Vec<Value>> = serde_json::from_slice(&out.stdout).expect("the runner prints JSON");
    assert_eq!(raw.len(), plan.scenarios.len(), "scenario count");
    plan.scenarios
        .iter()
        .zip(raw)
        .map(|(s, results)| {
            assert_eq!(results.len(), s.ops.len(), "{}: result count", s.name);
            s.ops
                .iter()
                .zip(results)
                .map(|(op, r)| {
                    let raw = match r.get("error") {
                        Some(e) => Err(e["kind"].as_str().unwrap_or("?").to_owned()),
                        None => Ok(r["ok"].clone()),
                    };
                    normalize(op, raw)
                })
                .collect()
        })
        .collect()
}

// ---------------------------------------------------------------- HTTP

/// One operation over the HTTP API. Checks the status against the error kind (and the
/// success status of each route) so a runtime cannot agree on a kind but not a status.
fn http_op(http: &Http, op: &Op) -> Raw {
    let lib = format!("/v1/libraries/{}", encode(&op.library));
    let id = || encode(op.id.as_deref().expect("`id`"));
    let body = op.body.clone().unwrap_or_else(|| json!({}));
    let (status, reply, ok) = match op.op.as_str() {
        "create_library" => {
            let (s, r) = http.post("/v1/libraries", &body);
            (s, r, 201)
        }
        "upsert" => with(http.post(&format!("{lib}/documents"), &body), 200),
        "upsert_batch" => with(http.post(&format!("{lib}/documents/batch"), &body), 200),
        "delete_document" => with(http.delete(&format!("{lib}/documents/{}", id())), 204),
        "delete_documents" => with(http.post(&format!("{lib}/documents/delete"), &body), 200),
        "rebuild" => with(http.post(&format!("{lib}/rebuild"), &body), 200),
        "optimize" => with(http.post(&format!("{lib}/optimize"), &body), 200),
        "search" => with(http.post(&format!("{lib}/search"), &body), 200),
        "get_library" => with(http.get(&lib), 200),
        "get_document" => with(http.get(&format!("{lib}/documents/{}", id())), 200),
        "list_documents" => with(
            http.get(&format!(
                "{lib}/documents{}",
                query_string(op.query.as_ref())
            )),
            200,
        ),
        "snapshot" => {
            let (s, bytes) = http.post_bytes(&format!("{lib}/snapshot"));
            if s == 200 {
                return Ok(magic(&bytes));
            }
            let reply = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (s, reply, 200)
        }
        other => panic!("{}: no HTTP mapping for {other}", op.label),
    };
    if status == ok {
        return Ok(reply);
    }
    let kind = reply["error"]["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: HTTP {status} without an error body: {reply}", op.label))
        .to_owned();
    let expected = match kind.as_str() {
        "invalid" => 400,
        "not_found" => 404,
        "conflict" => 409,
        "unavailable" => 503,
        _ => 500,
    };
    assert_eq!(
        status, expected,
        "{}: HTTP status of `{kind}`: {reply}",
        op.label
    );
    Err(kind)
}

fn with((status, reply): (u16, Value), ok: u16) -> (u16, Value, u16) {
    (status, reply, ok)
}

/// `?cursor=&limit=&filter=` (filter as URL-encoded JSON), as the host and edge read it.
fn query_string(query: Option<&Value>) -> String {
    let Some(Value::Object(fields)) = query else {
        return String::new();
    };
    let parts: Vec<String> = fields
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{k}={}", encode(&text))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn over_http(plan: &Plan, mut run: impl FnMut(&Op) -> Raw) -> Vec<Vec<Value>> {
    plan.scenarios
        .iter()
        .map(|s| s.ops.iter().map(|op| normalize(op, run(op))).collect())
        .collect()
}

/// The edge component under `wasmtime serve`: every request reloads its library from
/// the directory, so `restart` has nothing to do.
pub(crate) fn edge(plan: &Plan) -> Vec<Vec<Value>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_edge, http) = start_edge(dir.path());
    over_http(plan, |op| match op.op.as_str() {
        "restart" => Ok(Value::Null),
        _ => http_op(&http, op),
    })
}

/// The `arrwdb` host on a local directory; `restart` is SIGKILL and recovery.
pub(crate) fn host(plan: &Plan) -> Vec<Vec<Value>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Some(Server::start(&dir.path().display().to_string(), &[]));
    over_http(plan, |op| match op.op.as_str() {
        "restart" => {
            server = server.take().map(Server::crash_and_restart);
            Ok(Value::Null)
        }
        _ => http_op(&server.as_ref().expect("server").http, op),
    })
}

const READS: [&str; 4] = ["search", "get_library", "get_document", "list_documents"];

/// A writer host and its read replica (`--replica-of` the writer's storage): writes go
/// to the writer, reads to the replica once its `seq` of the library equals the
/// writer's. `restart` is a no-op: the replica reloads from storage as it follows.
pub(crate) fn replica(plan: &Plan) -> Vec<Vec<Value>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().display().to_string();
    let writer = Server::start(&storage, &[]);
    let replica = Server::start_with(
        &storage,
        &[],
        &["--replica-of", &storage, "--poll-interval-ms", "50"],
    );
    let mut dirty = BTreeSet::new();
    over_http(plan, |op| {
        if op.op == "restart" {
            return Ok(Value::Null);
        }
        if !READS.contains(&op.op.as_str()) {
            dirty.insert(op.library.clone());
            return http_op(&writer.http, op);
        }
        if dirty.remove(&op.library) {
            catch_up(&writer.http, &replica.http, &op.library);
        }
        http_op(&replica.http, op)
    })
}

/// Waits until the replica's `seq` of `library` equals the writer's (or both say 404).
fn catch_up(writer: &Http, replica: &Http, library: &str) {
    let path = format!("/v1/libraries/{}", encode(library));
    let (status, info) = writer.get(&path);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, r) = replica.get(&path);
        if s == status && (status != 200 || r["seq"] == info["seq"]) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica of {library} stuck at HTTP {s} {r}, writer at HTTP {status} {info}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
