//! Background jobs (issue 7) on the real `arrwdb` binary: every job type from
//! submission to completion, imports and exports through a local directory and a real
//! S3 server (SeaweedFS), cancellation of pending and running jobs, failures, the full
//! queue, retries of transient storage errors, restart semantics, tenant isolation and
//! the URL allowlist.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::host::{Server, as_f32s, create_library};
use crate::support::s3::Seaweed;
use crate::support::{Http, TEST_ADMIN_KEY, assert_error};

/// `n` documents `{prefix}{i}` of dimension `dim`, half in group `a`, half in `b`.
fn docs(prefix: &str, n: usize, dim: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let embedding: Vec<f32> = (0..dim)
                .map(|d| ((i * 31 + d * 7) % 97) as f32 / 97.0 + 0.01)
                .collect();
            json!({
                "id": format!("{prefix}{i}"),
                "metadata": {"group": if i % 2 == 0 { "a" } else { "b" }},
                "chunks": [{"text": format!("document number {i}"), "embedding": embedding}],
            })
        })
        .collect()
}

/// Submits a job and returns its record (asserting 202).
fn submit(http: &Http, body: &Value) -> Value {
    let reply = http.post("/v1/jobs", body);
    assert_eq!(reply.0, 202, "submit {body}: {}", reply.1);
    assert_eq!(reply.1["status"], "pending", "{}", reply.1);
    reply.1
}

fn job(http: &Http, id: &str) -> Value {
    let reply = http.get(&format!("/v1/jobs/{id}"));
    assert_eq!(reply.0, 200, "get job {id}: {}", reply.1);
    reply.1
}

/// Polls the job until `done(record)` holds, or panics after `timeout`.
fn wait_for(http: &Http, id: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let record = job(http, id);
        if done(&record) {
            return record;
        }
        assert!(Instant::now() < deadline, "job {id} stuck: {record}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_final(record: &Value) -> bool {
    matches!(
        record["status"].as_str(),
        Some("completed" | "failed" | "cancelled")
    )
}

/// Submits a job, waits for it to finish and asserts it completed.
fn run(http: &Http, body: &Value) -> Value {
    let id = submit(http, body)["id"].as_str().expect("id").to_string();
    let record = wait_for(http, &id, Duration::from_secs(120), is_final);
    assert_eq!(record["status"], "completed", "{body}: {record}");
    for field in ["created_at_ms", "started_at_ms", "finished_at_ms"] {
        assert!(record[field].as_u64().is_some(), "{field}: {record}");
    }
    record
}

/// Submits a job, waits for it to finish and asserts it failed with `kind`.
fn run_failing(http: &Http, body: &Value, kind: &str) -> Value {
    let id = submit(http, body)["id"].as_str().expect("id").to_string();
    let record = wait_for(http, &id, Duration::from_secs(120), is_final);
    assert_eq!(record["status"], "failed", "{body}: {record}");
    assert_eq!(record["error"]["kind"], kind, "{record}");
    assert!(
        record["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{record}"
    );
    record
}

fn documents(http: &Http, library: &str) -> u64 {
    let reply = http.get(&format!("/v1/libraries/{library}"));
    assert_eq!(reply.0, 200, "{}", reply.1);
    reply.1["documents"].as_u64().expect("documents")
}

/// POSTs raw bytes with a content type (the support client always sends JSON).
fn post_typed(http: &Http, path: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent
        .post(format!("{}{path}", http.base))
        .header("content-type", content_type);
    if let Some(key) = &http.key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let mut resp = request.send(body).expect("transport");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn ndjson_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn every_job_type_runs_to_completion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().join("data").display().to_string();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    let allow = format!("{}/", file_url(&out));
    let server = Server::start_with(&storage, &[], &["--jobs-allow-url", &allow]);
    let http = &server.http;
    create_library(http, "lib", 4);

    // Import from the request body, in batches, with progress.
    let record = run(
        http,
        &json!({"type": "import", "library": "lib", "documents": docs("d", 300, 4), "batch_size": 50}),
    );
    assert_eq!(record["progress"], json!({"done": 300, "total": 300}));
    assert_eq!(record["result"]["imported"], 300);
    assert_eq!(record["type"], "import");
    assert_eq!(record["library"], "lib");
    assert!(record.get("documents").is_none() && record["params"].get("documents").is_none());
    assert_eq!(documents(http, "lib"), 300);

    // Import from an NDJSON body.
    let ndjson: String = docs("n", 40, 4).iter().map(|d| format!("{d}\n")).collect();
    let reply = post_typed(
        http,
        "/v1/jobs?type=import&library=lib&batch_size=7",
        "application/x-ndjson",
        ndjson.as_bytes(),
    );
    assert_eq!(reply.0, 202, "{}", reply.1);
    let id = reply.1["id"].as_str().expect("id");
    let record = wait_for(http, id, Duration::from_secs(60), is_final);
    assert_eq!(record["status"], "completed", "{record}");
    assert_eq!(record["result"]["imported"], 40);
    assert_eq!(documents(http, "lib"), 340);

    // Export NDJSON with and without embeddings, then import the export elsewhere.
    let record = run(
        http,
        &json!({"type": "export", "library": "lib", "destination": format!("{allow}lib.ndjson")}),
    );
    assert_eq!(record["result"]["documents"], 340, "{record}");
    assert_eq!(record["progress"]["done"], 340);
    let lines = ndjson_lines(&out.join("lib.ndjson"));
    assert_eq!(lines.len(), 340);
    let d7 = lines.iter().find(|l| l["id"] == "d7").expect("d7 exported");
    assert_eq!(
        as_f32s(&d7["chunks"][0]["embedding"]),
        as_f32s(&docs("d", 8, 4)[7]["chunks"][0]["embedding"])
    );
    assert_eq!(d7["metadata"]["group"], "b");
    run(
        http,
        &json!({"type": "export", "library": "lib", "destination": format!("{allow}bare.ndjson"), "embeddings": false}),
    );
    let bare = ndjson_lines(&out.join("bare.ndjson"));
    assert_eq!(bare.len(), 340);
    assert!(
        bare.iter().all(
            |l| l["chunks"][0].get("embedding").is_none() && l["chunks"][0]["text"].is_string()
        )
    );
    create_library(http, "copy", 4);
    let record = run(
        http,
        &json!({"type": "import", "library": "copy", "source": format!("{allow}lib.ndjson")}),
    );
    assert_eq!(record["result"]["imported"], 340);
    let original = http.get("/v1/libraries/lib/documents/d7");
    let copied = http.get("/v1/libraries/copy/documents/d7");
    assert_eq!(
        original.1, copied.1,
        "a round trip through export and import"
    );

    // Snapshot export.
    run(
        http,
        &json!({"type": "export", "library": "lib", "destination": format!("{allow}lib.snap"), "format": "snapshot"}),
    );
    let snap = std::fs::read(out.join("lib.snap")).expect("snapshot written");
    assert_eq!(snap[..4], arrwdb_core::codec::SNAPSHOT_MAGIC);

    // Delete by ids (batched) and by filter.
    let ids: Vec<String> = (0..10).map(|i| format!("d{i}")).collect();
    let record = run(
        http,
        &json!({"type": "delete", "library": "lib", "ids": ids, "batch_size": 3}),
    );
    assert_eq!(record["result"]["deleted"], 10);
    assert_eq!(record["progress"], json!({"done": 10, "total": 10}));
    assert_eq!(documents(http, "lib"), 330);
    let record = run(
        http,
        &json!({"type": "delete", "library": "copy", "filter": {"group": "a"}}),
    );
    assert_eq!(record["result"]["deleted"], 170, "{record}");
    assert_eq!(documents(http, "copy"), 170);

    // Rebuild, optimize, compact.
    let record = run(
        http,
        &json!({"type": "rebuild", "library": "lib", "index": {"type": "hnsw"}}),
    );
    assert_eq!(
        record["result"]["library"]["index"]["type"], "hnsw",
        "{record}"
    );
    let record = run(http, &json!({"type": "optimize", "library": "lib"}));
    assert_eq!(record["result"]["library"]["documents"], 330);
    let record = run(http, &json!({"type": "compact", "library": "lib"}));
    assert!(
        record["result"]["snapshot_bytes"]
            .as_u64()
            .is_some_and(|b| b > 0)
    );
    let snapshots = dir.path().join("data/default/lib/snapshots");
    assert!(
        std::fs::read_dir(&snapshots).is_ok_and(|mut d| d.next().is_some()),
        "compact wrote a snapshot into storage"
    );
    let hits = http.post(
        "/v1/libraries/lib/search",
        &json!({"vector": docs("d", 12, 4)[11]["chunks"][0]["embedding"], "k": 1}),
    );
    assert_eq!(hits.1["hits"][0]["document_id"], "d11", "{}", hits.1);

    // Backup, lose the libraries, restore them.
    let record = run(
        http,
        &json!({"type": "backup", "destination": format!("{allow}backup1/")}),
    );
    assert_eq!(
        record["result"]["libraries"].as_array().map(Vec::len),
        Some(2),
        "{record}"
    );
    for library in ["lib", "copy"] {
        assert_eq!(http.delete(&format!("/v1/libraries/{library}")).0, 204);
    }
    let record = run(
        http,
        &json!({"type": "restore", "source": format!("{allow}backup1/")}),
    );
    assert_eq!(
        record["progress"],
        json!({"done": 2, "total": 2}),
        "{record}"
    );
    assert_eq!(documents(http, "lib"), 330);
    assert_eq!(documents(http, "copy"), 170);
    // Restoring over existing libraries is refused, nothing is mixed.
    run_failing(
        http,
        &json!({"type": "restore", "source": format!("{allow}backup1/")}),
        "conflict",
    );

    // Listing: filters and pagination (newest first, no duplicates).
    let reply = http.get("/v1/jobs?type=import&status=completed");
    assert_eq!(reply.0, 200, "{}", reply.1);
    assert_eq!(
        reply.1["jobs"].as_array().map(Vec::len),
        Some(3),
        "{}",
        reply.1
    );
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?limit=4&cursor={c}"),
            None => "/v1/jobs?limit=4".to_string(),
        };
        let reply = http.get(&path);
        assert_eq!(reply.0, 200, "{}", reply.1);
        for job in reply.1["jobs"].as_array().expect("jobs") {
            seen.push(job["id"].as_str().expect("id").to_string());
        }
        match reply.1["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 14, "{seen:?}");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first, each once");
    assert_eq!(
        http.get("/v1/jobs?library=copy").1["jobs"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_error(&http.get("/v1/jobs?status=sleeping"), 400, "invalid");
    assert_error(&http.get("/v1/jobs?limit=0"), 400, "invalid");
    assert_error(&http.get("/v1/jobs/job_nope"), 404, "not_found");

    let metrics = ureq::get(format!("{}/metrics", http.base))
        .call()
        .expect("metrics")
        .body_mut()
        .read_to_string()
        .expect("metrics text");
    assert!(
        metrics.contains(r#"arrwdb_jobs_total{type="import",status="completed"} 3"#),
        "{metrics}"
    );
}

#[test]
fn bad_input_fails_the_job_or_the_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    let allow = format!("{}/", file_url(&out));
    let server = Server::start_with("memory://", &[], &["--jobs-allow-url", &allow]);
    let http = &server.http;
    create_library(http, "lib", 4);

    // Refused at submission: 400, no job.
    for body in [
        json!({"type": "teleport", "library": "lib"}),
        json!({"type": "optimize", "library": "lib", "extra": true}),
        json!({"type": "optimize", "library": "no/slash"}),
        json!({"type": "import", "library": "lib"}),
        json!({"type": "import", "library": "lib", "documents": []}),
        json!({"type": "import", "library": "lib", "documents": docs("x", 1, 4), "source": format!("{allow}a")}),
        json!({"type": "import", "library": "lib", "documents": docs("x", 1, 4), "batch_size": 0}),
        json!({"type": "delete", "library": "lib"}),
        json!({"type": "delete", "library": "lib", "ids": ["a"], "filter": {"g": 1}}),
        json!({"type": "export", "library": "lib", "destination": format!("{allow}dir/")}),
    ] {
        assert_error(&http.post("/v1/jobs", &body), 400, "invalid");
    }
    assert_error(&http.post_raw("/v1/jobs", b"{not json"), 400, "invalid");
    let reply = post_typed(
        http,
        "/v1/jobs?type=import&library=lib",
        "application/x-ndjson",
        b"{\"id\":\"a\",\"chunks\":[{\"embedding\":[1,2,3,4]}]}\n{oops\n",
    );
    assert_error(&reply, 400, "invalid");
    assert!(
        reply.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("line 2")),
        "{}",
        reply.1
    );
    assert!(
        http.get("/v1/jobs").1["jobs"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );

    // Fail while running: the error says why, and committed batches stay.
    run_failing(
        http,
        &json!({"type": "import", "library": "missing", "documents": docs("x", 3, 4)}),
        "not_found",
    );
    let mut mixed = docs("m", 20, 4);
    mixed[13]["chunks"][0]["embedding"] = json!([1.0, 2.0]);
    let record = run_failing(
        http,
        &json!({"type": "import", "library": "lib", "documents": mixed, "batch_size": 5}),
        "invalid",
    );
    let message = record["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("document 14") && message.contains("m13"),
        "{message}"
    );
    // Batches 1 and 2 were committed, and the rest of batch 3 (m10..m14 minus m13).
    assert_eq!(record["progress"]["done"], 14, "{record}");
    assert_eq!(documents(http, "lib"), 14);
    std::fs::write(
        out.join("bad.ndjson"),
        "{\"id\":\"a\",\"chunks\":[{\"embedding\":[1,2,3,4]}]}\nnot json\n",
    )
    .expect("write");
    let record = run_failing(
        http,
        &json!({"type": "import", "library": "lib", "source": format!("{allow}bad.ndjson")}),
        "invalid",
    );
    assert!(
        record["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("line 2")),
        "{record}"
    );
    assert_eq!(
        record["progress"]["done"], 0,
        "nothing imported from a malformed input"
    );
    run_failing(
        http,
        &json!({"type": "import", "library": "lib", "source": format!("{allow}absent.ndjson")}),
        "not_found",
    );
    run_failing(
        http,
        &json!({"type": "export", "library": "missing", "destination": format!("{allow}x.ndjson")}),
        "not_found",
    );
    assert!(
        !out.join("x.ndjson").exists(),
        "a failed export writes nothing"
    );
    run_failing(
        http,
        &json!({"type": "rebuild", "library": "lib", "index": {"type": "ivf", "nlist": 0}}),
        "invalid",
    );
    // Cancelling a finished job is a conflict; an unknown one is 404.
    let done = run(http, &json!({"type": "optimize", "library": "lib"}));
    let id = done["id"].as_str().expect("id");
    assert_error(&http.delete(&format!("/v1/jobs/{id}")), 409, "conflict");
    assert_error(&http.delete("/v1/jobs/job_nope"), 404, "not_found");
}

/// A slow import: many small batches, each a group commit of at least the flush
/// interval the server is started with.
fn big_import(prefix: &str, n: usize) -> Value {
    json!({"type": "import", "library": "big", "documents": docs(prefix, n, 8), "batch_size": 10})
}

#[test]
fn cancel_pending_and_running_jobs_and_a_full_queue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().join("data").display().to_string();
    let server = Server::start_with(
        &storage,
        &[],
        &[
            "--jobs-workers",
            "1",
            "--jobs-queue",
            "1",
            "--flush-interval-ms",
            "20",
        ],
    );
    let http = &server.http;
    create_library(http, "big", 8);

    let running = submit(http, &big_import("r", 5000))["id"]
        .as_str()
        .expect("id")
        .to_string();
    let record = wait_for(http, &running, Duration::from_secs(60), |r| {
        r["status"] == "running" && r["progress"]["done"].as_u64().is_some_and(|d| d > 0)
    });
    assert_eq!(record["progress"]["total"], 5000);
    // One worker busy, one queue slot: the next job waits, the one after is refused.
    let pending = submit(http, &json!({"type": "optimize", "library": "big"}))["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_error(
        &http.post("/v1/jobs", &json!({"type": "compact", "library": "big"})),
        429,
        "rate_limited",
    );
    assert_eq!(job(http, &pending)["status"], "pending");

    let reply = http.delete(&format!("/v1/jobs/{pending}"));
    assert_eq!(reply.0, 200, "{}", reply.1);
    assert_eq!(reply.1["status"], "cancelled");
    assert!(
        reply.1["started_at_ms"].is_null(),
        "it never ran: {}",
        reply.1
    );

    let asked = Instant::now();
    let reply = http.delete(&format!("/v1/jobs/{running}"));
    let took = asked.elapsed();
    assert_eq!(reply.0, 200, "{}", reply.1);
    assert_eq!(reply.1["status"], "cancelled", "{}", reply.1);
    assert!(took < Duration::from_secs(3), "cancelling took {took:?}");
    let done = reply.1["progress"]["done"].as_u64().expect("done");
    assert!(done > 0 && done < 5000, "{}", reply.1);
    // What was committed stays committed, and nothing after the cancellation point.
    assert_eq!(documents(http, "big"), done);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(documents(http, "big"), done, "the import stopped");
    assert_eq!(job(http, &running)["status"], "cancelled");
    // Cancelling again is harmless; the pending job never runs; the queue works on.
    assert_eq!(http.delete(&format!("/v1/jobs/{running}")).0, 200);
    let next = run(http, &json!({"type": "compact", "library": "big"}));
    assert_eq!(next["status"], "completed");
    assert_eq!(job(http, &pending)["status"], "cancelled");
}

#[test]
fn restart_marks_interrupted_jobs_failed_and_keeps_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().join("data").display().to_string();
    let server = Server::start_with(
        &storage,
        &[],
        &["--jobs-workers", "1", "--flush-interval-ms", "20"],
    );
    let http = server.http.clone();
    create_library(&http, "big", 8);
    let finished = run(&http, &json!({"type": "optimize", "library": "big"}));
    let running = submit(&http, &big_import("r", 5000))["id"]
        .as_str()
        .expect("id")
        .to_string();
    wait_for(&http, &running, Duration::from_secs(60), |r| {
        r["progress"]["done"].as_u64().is_some_and(|d| d > 0)
    });
    let pending = submit(&http, &json!({"type": "compact", "library": "big"}))["id"]
        .as_str()
        .expect("id")
        .to_string();
    // Let a progress update reach storage (at most every 2 s), then SIGKILL.
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(
        job(&http, &running)["status"],
        "running",
        "still running when killed"
    );

    let server = server.crash_and_restart();
    let http = &server.http;
    for (id, was) in [(&running, "running"), (&pending, "pending")] {
        let record = job(http, id);
        assert_eq!(record["status"], "failed", "{record}");
        assert_eq!(record["error"]["kind"], "unavailable", "{record}");
        let message = record["error"]["message"].as_str().expect("message");
        assert!(
            message.contains("interrupted by restart") && message.contains(was),
            "{message}"
        );
        assert!(record["finished_at_ms"].as_u64().is_some());
    }
    let progress = job(http, &running)["progress"]["done"]
        .as_u64()
        .expect("done");
    assert!(progress > 0, "progress was stored while running");
    assert!(
        documents(http, "big") >= progress,
        "committed batches survive"
    );
    let id = finished["id"].as_str().expect("id");
    assert_eq!(job(http, id)["status"], "completed");
    assert_eq!(
        http.get("/v1/jobs").1["jobs"].as_array().map(Vec::len),
        Some(3)
    );
    // The queue works after the restart.
    run(http, &json!({"type": "optimize", "library": "big"}));
}

#[test]
fn transient_storage_errors_are_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().join("data").display().to_string();
    let env = vec![(
        "ARRWDB_FAULTS".to_string(),
        "put_fail=0.15,seed=11".to_string(),
    )];
    let server = Server::start_with(
        &storage,
        &env,
        &["--jobs-max-retries", "30", "--jobs-retry-base-ms", "5"],
    );
    let http = &server.http;
    // The API answers 503 for a failed PUT; clients retry.
    let retrying = |body: &Value, path: &str, expect: u16| -> Value {
        for _ in 0..100 {
            let reply = http.post(path, body);
            if reply.0 != 503 {
                assert_eq!(reply.0, expect, "{}", reply.1);
                return reply.1;
            }
        }
        panic!("{path} kept failing");
    };
    retrying(
        &json!({"name": "lib", "dimension": 4}),
        "/v1/libraries",
        201,
    );
    let body = json!({"type": "import", "library": "lib", "documents": docs("d", 400, 4), "batch_size": 10});
    let id = retrying(&body, "/v1/jobs", 202)["id"]
        .as_str()
        .expect("id")
        .to_string();
    let record = wait_for(http, &id, Duration::from_secs(120), is_final);
    assert_eq!(record["status"], "completed", "{record}");
    assert!(
        record["retries"].as_u64().is_some_and(|r| r > 0),
        "{record}"
    );
    assert_eq!(record["result"]["imported"], 400);
    // Explicit ids make a retried (possibly ambiguous) batch idempotent.
    assert_eq!(documents(http, "lib"), 400);
}

#[test]
fn url_jobs_on_s3_and_the_allowlist() {
    let seaweed = Seaweed::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().join("data");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    std::fs::create_dir_all(&storage).expect("mkdir");
    std::os::unix::fs::symlink(&storage, out.join("link")).expect("symlink");
    let local = format!("{}/", file_url(&out));
    let server = Server::start_with(
        &storage.display().to_string(),
        &seaweed.env(),
        &[
            "--jobs-allow-url",
            "s3://arrwdb/exports/{tenant}/",
            "--jobs-allow-url",
            &local,
        ],
    );
    let http = &server.http;
    create_library(http, "lib", 4);
    run(
        http,
        &json!({"type": "import", "library": "lib", "documents": docs("d", 120, 4)}),
    );
    let url = "s3://arrwdb/exports/default/lib.ndjson";
    let record = run(
        http,
        &json!({"type": "export", "library": "lib", "destination": url}),
    );
    assert_eq!(record["result"]["documents"], 120);
    create_library(http, "back", 4);
    let record = run(
        http,
        &json!({"type": "import", "library": "back", "source": url}),
    );
    assert_eq!(record["result"]["imported"], 120);
    assert_eq!(documents(http, "back"), 120);
    assert_eq!(
        http.get("/v1/libraries/lib/documents/d5").1,
        http.get("/v1/libraries/back/documents/d5").1
    );
    run(
        http,
        &json!({"type": "backup", "destination": "s3://arrwdb/exports/default/b1/"}),
    );

    // Refused: outside the prefixes, another tenant's prefix, traversal, the
    // server's own storage (directly or through a symlink), malformed URLs.
    for bad in [
        "s3://arrwdb/other/x.ndjson",
        "s3://arrwdb/exports/acme/x.ndjson",
        "s3://arrwdb/exports/default/../acme/x.ndjson",
        "s3://another-bucket/exports/default/x.ndjson",
        &format!("{}/default/lib/wal/x.wal", file_url(&storage)),
        &format!("{local}link/default/x.ndjson"),
        &format!("{local}../data/x.ndjson"),
        "/etc/passwd",
        "file:///etc/passwd",
        "http://example.com/x",
    ] {
        let reply = http.post(
            "/v1/jobs",
            &json!({"type": "export", "library": "lib", "destination": bad}),
        );
        assert_error(&reply, 400, "invalid");
        let reply = http.post(
            "/v1/jobs",
            &json!({"type": "import", "library": "lib", "source": bad}),
        );
        assert_error(&reply, 400, "invalid");
    }
    assert!(!storage.join("default/x.ndjson").exists());

    // Without the flag, no URL job at all, and the message names the flag.
    let plain = Server::start("memory://", &[]);
    let reply = plain.http.post(
        "/v1/jobs",
        &json!({"type": "export", "library": "lib", "destination": "s3://arrwdb/exports/x"}),
    );
    assert_error(&reply, 400, "invalid");
    assert!(
        reply.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("--jobs-allow-url")),
        "{}",
        reply.1
    );
    // A prefix that contains the server's storage is ignored.
    let root = tempfile::tempdir().expect("tempdir");
    let inside = Server::start_with(
        &root.path().join("data").display().to_string(),
        &[],
        &["--jobs-allow-url", &format!("{}/", file_url(root.path()))],
    );
    create_library(&inside.http, "lib", 4);
    let reply = inside.http.post(
        "/v1/jobs",
        &json!({"type": "export", "library": "lib", "destination": format!("{}/x.ndjson", file_url(root.path()))}),
    );
    assert_error(&reply, 400, "invalid");
}

fn new_key(admin: &Http, tenant: &str, scopes: &[&str]) -> Http {
    let reply = admin.post(
        &format!("/v1/admin/tenants/{tenant}/keys"),
        &json!({"scopes": scopes}),
    );
    assert_eq!(reply.0, 201, "{}", reply.1);
    admin.with_key(reply.1["key"].as_str().expect("key"))
}

#[test]
fn tenants_see_and_cancel_only_their_own_jobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    let allow = format!("{}/", file_url(&out));
    let env = vec![("ARRWDB_NO_AUTH".to_string(), "false".to_string())];
    let server = Server::start_with(
        &dir.path().join("data").display().to_string(),
        &env,
        &[
            "--jobs-allow-url",
            &allow,
            "--jobs-workers",
            "1",
            "--flush-interval-ms",
            "20",
        ],
    );
    let admin = server.http.with_key(TEST_ADMIN_KEY);
    for tenant in ["acme", "globex"] {
        assert_eq!(
            admin.post("/v1/admin/tenants", &json!({"name": tenant})).0,
            201
        );
    }
    let acme = new_key(&admin, "acme", &["read", "write"]);
    let acme_reader = new_key(&admin, "acme", &["read"]);
    let acme_admin = new_key(&admin, "acme", &["admin", "read", "write"]);
    let globex = new_key(&admin, "globex", &["read", "write"]);
    create_library(&acme, "big", 8);
    create_library(&globex, "big", 8);

    let id = submit(&acme, &big_import("a", 3000))["id"]
        .as_str()
        .expect("id")
        .to_string();
    wait_for(&acme, &id, Duration::from_secs(60), |r| {
        r["status"] == "running"
    });
    // Another tenant cannot see, list or cancel it: 404, as if it did not exist.
    assert_error(&globex.get(&format!("/v1/jobs/{id}")), 404, "not_found");
    assert_error(&globex.delete(&format!("/v1/jobs/{id}")), 404, "not_found");
    assert!(
        globex.get("/v1/jobs").1["jobs"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    assert_eq!(
        job(&acme, &id)["status"],
        "running",
        "globex's cancel did nothing"
    );
    // Scopes: read lists and gets, write submits and cancels, admin backs up.
    assert_eq!(acme_reader.get(&format!("/v1/jobs/{id}")).0, 200);
    assert_eq!(
        acme_reader.get("/v1/jobs").1["jobs"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_error(
        &acme_reader.post("/v1/jobs", &json!({"type": "optimize", "library": "big"})),
        403,
        "forbidden",
    );
    assert_error(
        &acme_reader.delete(&format!("/v1/jobs/{id}")),
        403,
        "forbidden",
    );
    assert_error(
        &acme.post(
            "/v1/jobs",
            &json!({"type": "backup", "destination": format!("{allow}b/")}),
        ),
        403,
        "forbidden",
    );
    assert_error(&acme.without_key().get("/v1/jobs"), 401, "unauthorized");
    let reply = acme.delete(&format!("/v1/jobs/{id}"));
    assert_eq!(reply.1["status"], "cancelled", "{}", reply.1);
    // Each tenant's jobs work on its own libraries.
    let record = run(
        &globex,
        &json!({"type": "import", "library": "big", "documents": docs("g", 5, 8)}),
    );
    assert_eq!(record["tenant"], "globex");
    assert_eq!(documents(&globex, "big"), 5);
    let backup = run(
        &acme_admin,
        &json!({"type": "backup", "destination": format!("{allow}acme/")}),
    );
    assert_eq!(backup["tenant"], "acme");
    assert!(
        out.join("acme/acme/big").is_dir(),
        "only acme's prefix is copied"
    );
    assert!(!out.join("acme/globex").exists());
}

/// Collects the JSON `data:` lines of an SSE stream on a raw socket (enough to find
/// the job events; the framing itself is tested in events.rs).
fn sse_data(base: &str, path: &str) -> std::sync::mpsc::Receiver<Value> {
    use std::io::{BufRead, BufReader, Write};
    let host = base.trim_start_matches("http://").to_string();
    let mut socket = std::net::TcpStream::connect(&host).expect("connect");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n");
    socket.write_all(request.as_bytes()).expect("send");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let reader = BufReader::new(socket);
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if let Some(data) = line.strip_prefix("data:")
                && let Ok(value) = serde_json::from_str::<Value>(data.trim())
                && tx.send(value).is_err()
            {
                return;
            }
        }
    });
    rx
}

#[test]
fn job_events_follow_the_job() {
    let server = Server::start("memory://", &[]);
    let http = &server.http;
    create_library(http, "lib", 4);
    let events = sse_data(&http.base, "/v1/events?types=job.*");
    std::thread::sleep(Duration::from_millis(300));
    let ok = run(
        http,
        &json!({"type": "import", "library": "lib", "documents": docs("d", 30, 4), "batch_size": 10}),
    );
    let failed = run_failing(
        http,
        &json!({"type": "optimize", "library": "missing"}),
        "not_found",
    );
    let mut seen: Vec<(String, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.iter().any(|(kind, _)| kind == "job.failed") {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = events
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("job events so far: {seen:?}"));
        let id = event["ids"][0].as_str().expect("job id").to_string();
        let kind = event["type"].as_str().expect("type").to_string();
        assert_eq!(
            event["data"]["type"],
            if id == ok["id"] { "import" } else { "optimize" }
        );
        if kind == "job.completed" {
            assert_eq!(event["data"]["result"]["imported"], 30, "{event}");
        }
        seen.push((kind, id));
    }
    let of = |job: &Value| -> Vec<&str> {
        seen.iter()
            .filter(|(_, id)| *id == job["id"])
            .map(|(kind, _)| kind.as_str())
            .collect()
    };
    assert_eq!(
        of(&ok),
        [
            "job.started",
            "job.progress",
            "job.progress",
            "job.progress",
            "job.progress",
            "job.completed"
        ]
    );
    assert_eq!(of(&failed), ["job.started", "job.failed"]);
}

#[test]
fn a_read_replica_shows_the_writers_jobs_and_runs_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().join("data").display().to_string();
    let writer = Server::start_with(&storage, &[], &["--flush-interval-ms", "20"]);
    create_library(&writer.http, "big", 8);
    let done = run(&writer.http, &json!({"type": "optimize", "library": "big"}));
    let replica = Server::start_with(
        &storage,
        &[],
        &["--replica-of", &storage, "--poll-interval-ms", "50"],
    );
    let id = done["id"].as_str().expect("id");
    assert_eq!(job(&replica.http, id)["status"], "completed");
    // A job submitted to the writer after the replica started shows up there too.
    let running = submit(&writer.http, &big_import("r", 2000))["id"]
        .as_str()
        .expect("id")
        .to_string();
    wait_for(&replica.http, &running, Duration::from_secs(30), |r| {
        r["status"] == "running"
    });
    assert_eq!(
        replica.http.get("/v1/jobs").1["jobs"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_error(
        &replica
            .http
            .post("/v1/jobs", &json!({"type": "optimize", "library": "big"})),
        503,
        "unavailable",
    );
    assert_error(
        &replica.http.delete(&format!("/v1/jobs/{running}")),
        503,
        "unavailable",
    );
    assert_eq!(job(&writer.http, &running)["status"], "running");
    assert_eq!(
        writer.http.delete(&format!("/v1/jobs/{running}")).1["status"],
        "cancelled"
    );
}
