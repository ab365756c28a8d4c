//! End-to-end tests of `arrwdb`'s client commands (host/src/cli.rs): the real release
//! binary against a real server (`--url`) and directly on a storage directory with no
//! server (`--storage`). Their stderr is a pipe, so no progress bar may draw.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::host::Server;
use crate::support::{TEST_ADMIN_KEY, edge_wasm, host_bin};

/// Runs `arrwdb ARGS` with `env` (and nothing from the caller's ARRWDB_* settings).
fn arrwdb<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(host_bin());
    cmd.args(args)
        .env_remove("ARRWDB_URL")
        .env_remove("ARRWDB_API_KEY")
        .env_remove("ARRWDB_STORAGE")
        .env("ARRWDB_COMPONENT", edge_wasm())
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("run arrwdb {args:?}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\r'),
        "terminal escape codes on a non-terminal stderr: {stderr:?}"
    );
    assert!(
        !stderr.contains("panicked"),
        "arrwdb {args:?} panicked: {stderr}"
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs and expects exit code 0.
fn ok<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S], env: &[(&str, &str)]) -> String {
    let output = arrwdb(args, env);
    assert!(
        output.status.success(),
        "arrwdb {args:?} failed ({}): {}{}",
        output.status,
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// Runs and expects exit code 1; returns stdout + stderr.
fn fails<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S], env: &[(&str, &str)]) -> String {
    let output = arrwdb(args, env);
    assert_eq!(
        output.status.code(),
        Some(1),
        "arrwdb {args:?} should fail: {}{}",
        stdout(&output),
        stderr(&output)
    );
    format!("{}{}", stdout(&output), stderr(&output))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a test file");
    path.to_string_lossy().into_owned()
}

/// The documents of an export, one JSON value per line, as a set.
fn documents(ndjson: &str) -> BTreeSet<String> {
    ndjson
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("export line {l:?} is not JSON: {e}"))
                .to_string()
        })
        .collect()
}

#[test]
fn import_reports_failed_lines_and_keeps_the_rest_directly_on_storage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().join("data");
    let storage = storage.to_string_lossy().into_owned();
    let with = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(["--storage".to_string(), storage.clone()]);
        all
    };

    let created = ok(
        &with(&[
            "libraries",
            "create",
            "docs",
            "--dimension",
            "2",
            "--metric",
            "l2",
        ]),
        &[],
    );
    assert!(created.contains("created library `docs`"), "{created}");

    // NDJSON: documents and flat records; line 2 has the wrong dimension, line 4 is
    // not JSON, line 3 is blank.
    let ndjson = write(
        dir.path(),
        "docs.ndjson",
        "{\"id\":\"n1\",\"text\":\"first\",\"embedding\":[1,0],\"lang\":\"en\"}\n\
         {\"id\":\"n2\",\"embedding\":[1]}\n\
         \n\
         not json\n\
         {\"id\":\"n3\",\"chunks\":[{\"text\":\"third\",\"embedding\":[0,1]}]}\n",
    );
    let report = fails(&with(&["import", &ndjson, "--library", "docs"]), &[]);
    assert!(report.contains("imported 2 of 4 records"), "{report}");
    assert!(report.contains("2 failed"), "{report}");
    assert!(
        report.contains("line 2: wrong vector dimension"),
        "{report}"
    );
    assert!(report.contains("line 4: malformed JSON"), "{report}");

    // A JSON array: element 2's vector is not numbers.
    let array = write(
        dir.path(),
        "docs.json",
        r#"[{"id":"j1","embedding":[0.5,0.5],"tag":"a"},
            {"id":"j2","embedding":"zz"},
            {"id":"j3","text":"three","embedding":[0.25,0.75]}]"#,
    );
    let report = fails(&with(&["import", &array, "--library", "docs"]), &[]);
    assert!(report.contains("imported 2 of 3 records"), "{report}");
    assert!(report.contains("element 2: `embedding`"), "{report}");

    // CSV with a custom embedding column: line 3 has three numbers, line 6 (after a
    // two-line record) is short.
    let csv = write(
        dir.path(),
        "docs.csv",
        "sku,title,vec,year\n\
         c1,one,\"[0.1,0.9]\",2020\n\
         c2,two,\"[1,2,3]\",2021\n\
         c3,\"multi\nline\",0.9 0.1,\n\
         c4\n",
    );
    let report = fails(
        &with(&[
            "import",
            &csv,
            "--library",
            "docs",
            "--embedding-column",
            "vec",
            "--id-column",
            "sku",
            "--text-column",
            "title",
        ]),
        &[],
    );
    assert!(report.contains("imported 2 of 4 records"), "{report}");
    assert!(
        report.contains("line 3: wrong vector dimension"),
        "{report}"
    );
    assert!(report.contains("line 6:"), "{report}");

    // The good records are there, with their metadata.
    let export = documents(&ok(&with(&["export", "--library", "docs"]), &[]));
    let ids: BTreeSet<String> = export
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|d| d["id"].as_str().map(str::to_string))
        .collect();
    let expected: BTreeSet<String> = ["n1", "n3", "j1", "j3", "c1", "c3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(ids, expected);
    let c3 = export
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|d| d["id"] == "c3")
        .expect("c3 exported");
    assert_eq!(c3["chunks"][0]["text"], "multi\nline");
    let c1 = export
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|d| d["id"] == "c1")
        .expect("c1 exported");
    assert_eq!(c1["metadata"], json!({"year": 2020}));
    assert!(
        c1["chunks"][0].get("embedding").is_none(),
        "vectors only with --with-embeddings"
    );

    // A fully valid import exits 0; an unknown library fails before reading.
    let good = write(
        dir.path(),
        "good.ndjson",
        "{\"id\":\"g\",\"embedding\":[0,1]}\n",
    );
    let report = ok(&with(&["import", &good, "--library", "docs"]), &[]);
    assert!(report.contains("imported 1 of 1 records"), "{report}");
    let missing = fails(&with(&["import", &good, "--library", "nope"]), &[]);
    assert!(
        missing.contains("error: library `nope` not found"),
        "{missing}"
    );

    // Library commands, directly on the storage (the data survived the processes).
    let list = ok(&with(&["libraries"]), &[]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("docs ") && l.contains(" 7 ")),
        "{list}"
    );
    let info: Value = serde_json::from_str(&ok(&with(&["libraries", "get", "docs"]), &[]))
        .expect("libraries get prints JSON");
    assert_eq!(info["documents"], 7);
    ok(&with(&["libraries", "delete", "docs"]), &[]);
    let gone = fails(&with(&["libraries", "get", "docs"]), &[]);
    assert!(gone.contains("not found (not_found, HTTP 404)"), "{gone}");
}

#[test]
fn export_import_round_trip_search_snapshot_and_bench_against_a_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("data").to_string_lossy(), &[]);
    let url = server.http.base.clone();
    let env = [("ARRWDB_URL", url.as_str())];

    ok(
        &[
            "libraries",
            "create",
            "src",
            "--dimension",
            "3",
            "--metric",
            "l2",
            "--index",
            "hnsw",
        ],
        &env,
    );
    let mut lines = String::new();
    for i in 0..300 {
        let x = i as f32 / 300.0;
        let doc = json!({
            "id": format!("doc-{i:03}"),
            "metadata": {"n": i, "even": i % 2 == 0},
            "chunks": [
                {"text": format!("chunk a of {i}"), "embedding": [x, 1.0 - x, 0.5]},
                {"id": format!("c{i}"), "text": format!("chunk b of {i}"), "embedding": [0.5, x, 1.0 - x], "metadata": {"part": "b"}}
            ]
        });
        lines.push_str(&doc.to_string());
        lines.push('\n');
    }
    let input = write(dir.path(), "in.ndjson", &lines);
    let report = ok(&["import", &input, "-l", "src"], &env);
    assert!(report.contains("imported 300 of 300 records"), "{report}");

    // Export (more than one page of 1000? no: 300 documents, 2 chunks each) and back.
    let first = dir.path().join("first.ndjson");
    let first = first.to_string_lossy();
    ok(
        &[
            "export",
            "-l",
            "src",
            "--with-embeddings",
            "--output",
            &first,
        ],
        &env,
    );
    let exported = std::fs::read_to_string(&*first).expect("read the export");
    assert_eq!(exported.lines().count(), 300);
    ok(
        &[
            "libraries",
            "create",
            "copy",
            "--dimension",
            "3",
            "--metric",
            "l2",
        ],
        &env,
    );
    ok(
        &["import", &first, "-l", "copy", "--format", "ndjson"],
        &env,
    );
    let second = ok(&["export", "-l", "copy", "--with-embeddings"], &env);
    assert_eq!(documents(&exported), documents(&second));
    let original = documents(&lines);
    let sample: Value = serde_json::from_str(
        exported
            .lines()
            .find(|l| l.contains("\"doc-007\""))
            .expect("doc-007 exported"),
    )
    .expect("JSON");
    assert_eq!(sample["metadata"], json!({"n": 7, "even": false}));
    assert_eq!(sample["chunks"][1]["id"], "c7");
    assert_eq!(sample["chunks"][1]["metadata"], json!({"part": "b"}));
    assert_eq!(original.len(), 300);

    // Search: a table by default, the server's JSON with --json.
    let table = ok(
        &[
            "search",
            "-l",
            "copy",
            "--vector",
            "[0.0, 1.0, 0.5]",
            "-k",
            "3",
        ],
        &env,
    );
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("#") && header.contains("score") && header.contains("document"),
        "{table}"
    );
    assert!(
        table.lines().nth(1).is_some_and(|l| l.contains("doc-000")),
        "{table}"
    );
    assert!(table.contains("3 hits"), "{table}");
    let found: Value = serde_json::from_str(&ok(
        &[
            "search",
            "-l",
            "copy",
            "--vector",
            "[0.0, 1.0, 0.5]",
            "-k",
            "2",
            "--filter",
            r#"{"even": false}"#,
            "--json",
        ],
        &env,
    ))
    .expect("--json prints JSON");
    let hits = found["hits"].as_array().expect("hits");
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0]["document_id"], "doc-001");
    let bad = fails(&["search", "-l", "copy", "--vector", "[1, 2]"], &env);
    assert!(
        bad.contains("error:") && bad.contains("(invalid, HTTP 400)"),
        "{bad}"
    );
    let bad = fails(&["search", "-l", "copy", "--vector", "[1, 2"], &env);
    assert!(bad.contains("--vector is not valid JSON"), "{bad}");

    // Snapshot: the bytes the endpoint returns, in the file.
    let snapshot = dir.path().join("copy.snapshot");
    let said = ok(
        &[
            "snapshot",
            "-l",
            "copy",
            "--output",
            &snapshot.to_string_lossy(),
        ],
        &env,
    );
    let bytes = std::fs::read(&snapshot).expect("read the snapshot");
    assert!(said.contains(&format!("({} bytes)", bytes.len())), "{said}");
    let (status, direct) = server.http.post_bytes("/v1/libraries/copy/snapshot");
    assert_eq!(status, 200);
    assert_eq!(bytes.get(..8), direct.get(..8), "same format header");
    assert!(bytes.len() > 1000);

    // Bench: bounded, reports numbers, leaves no scratch library behind.
    let report: Value = serde_json::from_str(&ok(
        &[
            "bench",
            "--vectors",
            "300",
            "--dimension",
            "8",
            "--queries",
            "40",
            "--json",
        ],
        &env,
    ))
    .expect("bench --json prints JSON");
    assert_eq!(report["vectors"], 300);
    assert_eq!(report["queries"], 40);
    let (p50, p99, qps) = (
        report["p50_ms"].as_f64().unwrap_or(-1.0),
        report["p99_ms"].as_f64().unwrap_or(-1.0),
        report["qps"].as_f64().unwrap_or(-1.0),
    );
    assert!(p50 > 0.0 && p50 <= p99 && qps > 0.0, "{report}");
    let list = ok(&["libraries", "--json"], &env);
    assert!(!list.contains("bench-"), "{list}");
    let human = ok(
        &[
            "bench",
            "--vectors",
            "50",
            "--queries",
            "10",
            "--index",
            "flat",
        ],
        &env,
    );
    assert!(human.contains("QPS") && human.contains("p99"), "{human}");
    let too_big = fails(&["bench", "--vectors", "999999999"], &env);
    assert!(too_big.contains("--vectors must be between"), "{too_big}");

    // A server that is not there: a clean message, exit 1.
    let gone = fails(&["libraries", "--url", "http://127.0.0.1:9"], &[]);
    assert!(
        gone.contains("cannot reach the server at http://127.0.0.1:9"),
        "{gone}"
    );
}

#[test]
fn keys_lifecycle_with_auth_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        &dir.path().join("data").to_string_lossy(),
        &[("ARRWDB_NO_AUTH".to_string(), "false".to_string())],
    );
    let url = server.http.base.clone();
    let admin = [
        ("ARRWDB_URL", url.as_str()),
        ("ARRWDB_API_KEY", TEST_ADMIN_KEY),
    ];

    let anonymous = fails(&["libraries", "--url", &url], &[]);
    assert!(
        anonymous.contains("(unauthorized, HTTP 401)"),
        "{anonymous}"
    );

    let created: Value = serde_json::from_str(&ok(
        &["keys", "create", "--scopes", "read", "--name", "reader"],
        &admin,
    ))
    .expect("keys create prints JSON");
    let id = created["id"].as_str().expect("id").to_string();
    let key = created["key"].as_str().expect("key").to_string();
    assert_eq!(created["scopes"], json!(["read"]));

    let list = ok(&["keys", "list"], &admin);
    let row = list
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} not listed: {list}"));
    assert!(
        row.contains("reader") && row.contains("read") && row.contains("active"),
        "{row}"
    );
    assert!(!list.contains(&key), "a listing never shows a key");
    let listed: Value =
        serde_json::from_str(&ok(&["keys", "list", "--json"], &admin)).expect("JSON");
    assert!(
        listed["keys"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k["id"] == id.as_str())),
        "{listed}"
    );

    // The read key reads but may not create.
    let reader = [
        ("ARRWDB_URL", url.as_str()),
        ("ARRWDB_API_KEY", key.as_str()),
    ];
    ok(&["libraries"], &reader);
    let denied = fails(&["libraries", "create", "x", "--dimension", "2"], &reader);
    assert!(denied.contains("(forbidden, HTTP 403)"), "{denied}");

    // Rotate: the old key stops working, the new one works.
    let rotated: Value = serde_json::from_str(&ok(&["keys", "rotate", &id], &admin)).expect("JSON");
    let new_key = rotated["key"].as_str().expect("a new key").to_string();
    let new_id = rotated["id"].as_str().expect("id").to_string();
    assert_ne!(new_key, key);
    let old = fails(&["libraries", "--api-key", &key, "--url", &url], &[]);
    assert!(old.contains("(unauthorized, HTTP 401)"), "{old}");
    ok(&["libraries", "--api-key", &new_key, "--url", &url], &[]);

    // Revoke: gone at once.
    let revoked: Value =
        serde_json::from_str(&ok(&["keys", "revoke", &new_id], &admin)).expect("JSON");
    assert!(revoked["revoked_at_ms"].as_u64().is_some(), "{revoked}");
    let after = fails(&["libraries", "--api-key", &new_key, "--url", &url], &[]);
    assert!(after.contains("(unauthorized, HTTP 401)"), "{after}");
    let list = ok(&["keys", "list"], &admin);
    assert!(
        list.lines()
            .any(|l| l.starts_with(&new_id) && l.contains("revoked")),
        "{list}"
    );
    let unknown = fails(&["keys", "revoke", "k_doesnotexist"], &admin);
    assert!(unknown.contains("(not_found, HTTP 404)"), "{unknown}");
}

#[test]
fn completions_and_help_examples() {
    let script = ok(&["completions", "bash"], &[]);
    assert!(script.contains("_arrwdb()"), "not a bash completion script");
    for command in [
        "import",
        "export",
        "search",
        "libraries",
        "keys",
        "snapshot",
        "bench",
    ] {
        assert!(script.contains(command), "completions lack `{command}`");
    }
    ok(&["completions", "zsh"], &[]);
    for command in [
        "import",
        "export",
        "search",
        "libraries",
        "keys",
        "snapshot",
        "completions",
        "bench",
    ] {
        let help = ok(&[command, "--help"], &[]);
        assert!(
            help.contains("EXAMPLE"),
            "`arrwdb {command} --help` has no example: {help}"
        );
        assert!(help.contains(&format!("arrwdb {command}")), "{help}");
    }
    let usage = arrwdb(&["import"], &[]);
    assert_eq!(usage.status.code(), Some(2), "usage errors exit 2");
}
