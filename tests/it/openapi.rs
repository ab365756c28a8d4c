//! `/openapi.json`, structured logs and the slow-query log (issue 7), against the real
//! release binary.
//!
//! The OpenAPI tests hold the document to the server from both sides: every route the
//! host's source registers (`.route("…", get(…).post(…))` in host/src/*.rs) must be
//! documented with its methods, every documented operation must be answered by the
//! running server (not its "no route" fallback), and real responses must validate
//! against the documented schemas, so neither a new route nor a changed JSON type can
//! go undocumented.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::host::Server;
use crate::support::{
    ChildGuard, Http, TEST_ADMIN_KEY, edge_wasm, free_port, host_bin, workspace_root,
};

/// HTTP methods an axum method router can register.
const METHODS: &[&str] = &[
    "get", "post", "put", "delete", "patch", "head", "options", "trace", "any",
];

/// The `(METHOD, route)` pairs registered by `.route(path, method_router)` calls in
/// Rust source text (comment lines skipped). `any(…)` is reported as method `ANY`.
fn routes_in_source(text: &str) -> BTreeSet<(String, String)> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let args = rest.trim_start();
        let Some(after_quote) = args.strip_prefix('"') else {
            continue; // `.route(PATH_CONST, …)`: a path that is not a literal
        };
        let Some(end) = after_quote.find('"') else {
            continue;
        };
        let path = &after_quote[..end];
        // The method router: up to the parenthesis closing `.route(`.
        let tail = &after_quote[end + 1..];
        let mut depth = 1usize;
        let mut close = tail.len();
        let mut in_string = false;
        for (i, c) in tail.char_indices() {
            match c {
                '"' => in_string = !in_string,
                '(' if !in_string => depth += 1,
                ')' if !in_string => {
                    depth -= 1;
                    if depth == 0 {
                        close = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let router = &tail[..close];
        let bytes = router.as_bytes();
        let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let mut i = 0;
        while i < bytes.len() {
            if is_ident(bytes[i]) && (i == 0 || !is_ident(bytes[i - 1])) {
                let start = i;
                while i < bytes.len() && is_ident(bytes[i]) {
                    i += 1;
                }
                let word = &router[start..i];
                let called = router[i..].trim_start().starts_with('(');
                if called && METHODS.contains(&word) {
                    found.insert((word.to_ascii_uppercase(), path.to_string()));
                }
            } else {
                i += 1;
            }
        }
    }
    found
}

/// Every route registered in host/src/*.rs.
fn host_routes() -> BTreeSet<(String, String)> {
    let dir: PathBuf = workspace_root().join("host/src");
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("read host/src") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("read a source file");
            routes.extend(routes_in_source(&text));
        }
    }
    routes
}

/// The `(METHOD, route)` pairs of an OpenAPI document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if METHODS.contains(&method.as_str()) {
                out.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn fetch_document(http: &Http) -> Value {
    let agent = ureq::Agent::new_with_defaults();
    let mut resp = agent
        .get(format!("{}/openapi.json", http.base))
        .call()
        .expect("GET /openapi.json");
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let text = resp.body_mut().read_to_string().expect("body");
    serde_json::from_str(&text).expect("/openapi.json is JSON")
}

#[test]
fn route_parser_reads_chained_and_multiline_method_routers() {
    let source = r#"
        // .route("/commented", get(x))
        Router::new()
            .route("/a", get(crate::x::get_a).post(create))
            .route(
                "/b/{id}",
                axum::routing::patch(update).delete(remove),
            )
            .route_layer(layer)
            .route("/c", any(all))
    "#;
    let routes: Vec<(String, String)> = routes_in_source(source).into_iter().collect();
    let expect = [
        ("ANY", "/c"),
        ("DELETE", "/b/{id}"),
        ("GET", "/a"),
        ("PATCH", "/b/{id}"),
        ("POST", "/a"),
    ];
    assert_eq!(
        routes,
        expect
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect::<Vec<_>>()
    );
}

/// A request to `path` (with `{param}`s filled in) that tells whether the router has
/// the route: not its "no route" fallback and not 405.
fn answered_by_router(http: &Http, method: &str, path: &str) -> Result<u16, String> {
    let concrete: String = path
        .split('/')
        .map(|s| {
            if s.starts_with('{') {
                "openapi-probe"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{}{concrete}", http.base))
        .header("content-type", "application/json")
        .body(b"{}".to_vec())
        .expect("request");
    let mut resp = agent
        .run(request)
        .map_err(|e| format!("{method} {concrete}: {e}"))?;
    let status = resp.status().as_u16();
    // Streams (SSE) answer 200 at once and never end: read no body then.
    if status == 404 || status == 405 {
        let body: Value =
            serde_json::from_str(&resp.body_mut().read_to_string().unwrap_or_default())
                .unwrap_or(Value::Null);
        let message = body["error"]["message"].as_str().unwrap_or_default();
        if status == 405 || message.starts_with("no route for") {
            return Err(format!("{method} {concrete}: {status} {body}"));
        }
    }
    Ok(status)
}

#[test]
fn openapi_document_describes_every_route_the_router_registers() {
    let server = Server::start("memory://", &[]);
    let doc = fetch_document(&server.http.without_key());

    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "OpenAPI 3.x, got {version:?}");
    assert_eq!(doc["info"]["title"], "arrwDB");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["type"], "apiKey");
    assert_eq!(schemes["api_key"]["in"], "header");
    assert_eq!(schemes["api_key"]["name"], "X-API-Key");
    let kinds: BTreeSet<&str> = doc["components"]["schemas"]["ErrorKind"]["enum"]
        .as_array()
        .expect("error kinds")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "invalid",
            "not_found",
            "conflict",
            "unauthorized",
            "forbidden",
            "rate_limited",
            "unavailable",
            "internal"
        ])
    );

    // Every registered route is documented with each of its methods …
    let registered = host_routes();
    assert!(
        registered.contains(&("POST".into(), "/v1/libraries/{lib}/search".into()))
            && registered.contains(&("GET".into(), "/health".into()))
            && registered.len() >= 30,
        "the source parser found too little: {registered:?}"
    );
    let documented = documented(&doc);
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes registered in host/src but missing from /openapi.json: {undocumented:?}"
    );
    // … and every documented operation exists on the running server.
    let phantom: Vec<String> = documented
        .iter()
        .filter_map(|(method, path)| answered_by_router(&server.http, method, path).err())
        .collect();
    assert!(phantom.is_empty(), "documented but not routed: {phantom:?}");

    // Operations: errors in the shared shape, security per route.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let at = format!("{method} {path}");
            assert!(op["operationId"].is_string(), "{at}: operationId");
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|s| s.starts_with('2') || s == "101"),
                "{at}: no success response"
            );
            let security = op["security"].as_array().expect("security");
            if path.starts_with("/v1/") {
                assert_eq!(security.len(), 2, "{at}: Bearer or X-API-Key");
                for status in ["401", "403", "500", "503"] {
                    let error = &responses[status]["$ref"];
                    assert!(
                        error
                            .as_str()
                            .is_some_and(|r| r.starts_with("#/components/responses/")),
                        "{at}: {status} is not a shared error response"
                    );
                }
            } else {
                assert!(security.is_empty(), "{at}: public routes need no key");
            }
        }
    }
    for (name, response) in doc["components"]["responses"]
        .as_object()
        .expect("responses")
    {
        assert_eq!(
            response["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody",
            "error response {name}"
        );
    }
}

// ---- a small JSON Schema (OpenAPI 3.1 subset) validator ----

/// Follows `$ref`s into the document.
fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..32 {
        let Some(reference) = schema["$ref"].as_str() else {
            return schema;
        };
        let mut node = doc;
        for part in reference.trim_start_matches("#/").split('/') {
            node = &node[part];
        }
        assert!(!node.is_null(), "dangling $ref {reference}");
        schema = node;
    }
    panic!("$ref loop")
}

fn type_matches(kind: &str, value: &Value) -> bool {
    match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => true,
    }
}

/// The property names an object schema (with its `allOf` parts) defines, or `None`
/// when it allows any.
fn known_properties(doc: &Value, schema: &Value) -> Option<BTreeSet<String>> {
    let schema = resolve(doc, schema);
    let mut names = BTreeSet::new();
    let mut any = schema.get("properties").is_none() && schema.get("allOf").is_none();
    if let Some(props) = schema["properties"].as_object() {
        names.extend(props.keys().cloned());
    }
    if schema["additionalProperties"].is_object() || schema["additionalProperties"] == true {
        any = true;
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        match known_properties(doc, part) {
            Some(more) => names.extend(more),
            None => any = true,
        }
    }
    if any { None } else { Some(names) }
}

/// Problems of `value` against `schema`; unknown object properties count as problems
/// (the server must not answer fields the document does not describe).
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let schema = resolve(doc, schema);
    let mut problems = Vec::new();
    if let Some(kind) = schema.get("type") {
        let ok = match kind {
            Value::String(k) => type_matches(k, value),
            Value::Array(ks) => ks
                .iter()
                .filter_map(Value::as_str)
                .any(|k| type_matches(k, value)),
            _ => true,
        };
        if !ok {
            return vec![format!("{at}: {value} is not of type {kind}")];
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        problems.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        // Property strictness is judged over the union below.
        let mut inner = validate(doc, part, value, at);
        inner.retain(|p| !p.contains("is not documented"));
        problems.extend(inner);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema[key].as_array() {
            let fits = options
                .iter()
                .any(|option| validate(doc, option, value, at).is_empty());
            if !fits {
                let reasons: Vec<String> = options
                    .iter()
                    .flat_map(|o| validate(doc, o, value, at))
                    .collect();
                problems.push(format!("{at}: fits no option of {key}: {reasons:?}"));
            }
        }
    }
    if let Some(object) = value.as_object() {
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                problems.push(format!("{at}: required `{name}` is missing"));
            }
        }
        let props = schema["properties"].as_object();
        if let Some(known) = known_properties(doc, schema) {
            for name in object.keys() {
                if !known.contains(name) {
                    problems.push(format!("{at}: property `{name}` is not documented"));
                }
            }
        }
        for (name, item) in object {
            if let Some(prop) = props.and_then(|p| p.get(name)) {
                problems.extend(validate(doc, prop, item, &format!("{at}.{name}")));
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, item) in list.iter().enumerate() {
            problems.extend(validate(doc, items, item, &format!("{at}[{i}]")));
        }
    }
    problems
}

/// The documented schema of `method path`'s `status` answer, or `None` for one
/// without a body.
fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> Option<&'a Value> {
    let op = &doc["paths"][path][method.to_ascii_lowercase()];
    assert!(op.is_object(), "{method} {path} is not documented");
    let response = resolve(doc, &op["responses"][status.to_string()]);
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which is not documented"
    );
    response["content"]
        .as_object()
        .and_then(|c| c.get("application/json"))
        .map(|c| &c["schema"])
}

/// Calls the server and validates the answer against the document.
fn checked(
    doc: &Value,
    http: &Http,
    method: &str,
    template: &str,
    path: &str,
    body: Option<&Value>,
    expect: u16,
) -> Value {
    let (status, reply) = http.request(method, path, &[], body);
    assert_eq!(status, expect, "{method} {path}: {reply}");
    if let Some(schema) = response_schema(doc, method, template, status) {
        let problems = validate(
            doc,
            schema,
            &reply,
            &format!("{method} {template} {status}"),
        );
        assert!(problems.is_empty(), "{problems:#?}\nbody: {reply}");
    }
    reply
}

#[test]
fn real_responses_validate_against_the_documented_schemas() {
    let server = Server::start("memory://", &[]);
    let http = &server.http;
    let doc = fetch_document(&http.without_key());
    // The validator itself: it must reject what the document does not describe.
    let schema = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let hit = json!({"chunk_id": "a", "document_id": "b", "score": 1.0});
    let ok = json!({"hits": [hit], "took_ms": 1.0});
    assert_eq!(
        validate(&doc, &schema("SearchResponse"), &ok, "ok"),
        Vec::<String>::new()
    );
    for bad in [
        json!({"hits": [hit], "took_ms": 1.0, "extra": 1}),
        json!({"hits": [{"chunk_id": "a", "document_id": "b", "score": 1.0, "x": 1}], "took_ms": 1.0}),
        json!({"hits": [hit]}),
        json!({"hits": [{"chunk_id": 1, "document_id": "b", "score": 1.0}], "took_ms": 1.0}),
    ] {
        assert!(
            !validate(&doc, &schema("SearchResponse"), &bad, "bad").is_empty(),
            "{bad}"
        );
    }
    let index = schema("IndexConfig");
    assert!(validate(&doc, &index, &json!({"type": "hnsw", "m": 8}), "i").is_empty());
    assert!(!validate(&doc, &index, &json!({"type": "hnsw", "nlist": 8}), "i").is_empty());
    assert!(!validate(&doc, &index, &json!({"type": "annoy"}), "i").is_empty());
    let c = |method: &str, template: &str, path: &str, body: Option<Value>, expect: u16| {
        checked(&doc, http, method, template, path, body.as_ref(), expect)
    };
    c("GET", "/health", "/health", None, 200);
    c("GET", "/ready", "/ready", None, 200);
    let lib = json!({"name": "docs", "dimension": 2, "index": {"type": "hnsw", "m": 8},
                     "quantization": {"type": "sq8"}});
    c(
        "POST",
        "/v1/libraries",
        "/v1/libraries",
        Some(lib.clone()),
        201,
    );
    c("POST", "/v1/libraries", "/v1/libraries", Some(lib), 409);
    c(
        "POST",
        "/v1/libraries",
        "/v1/libraries",
        Some(json!({"name": "x"})),
        400,
    );
    c("GET", "/v1/libraries", "/v1/libraries", None, 200);
    c(
        "GET",
        "/v1/libraries/{lib}",
        "/v1/libraries/docs",
        None,
        200,
    );
    c(
        "GET",
        "/v1/libraries/{lib}",
        "/v1/libraries/nope",
        None,
        404,
    );
    let docs = "/v1/libraries/{lib}/documents";
    c(
        "POST",
        docs,
        "/v1/libraries/docs/documents",
        Some(json!({"id": "a", "metadata": {"year": 2024},
                  "chunks": [{"text": "alpha beta", "embedding": [1.0, 0.0], "metadata": {"k": "v"}}]})),
        200,
    );
    c(
        "POST",
        "/v1/libraries/{lib}/documents/batch",
        "/v1/libraries/docs/documents/batch",
        Some(json!({"documents": [
          {"id": "b", "chunks": [{"text": "beta", "embedding": [0.0, 1.0]}]},
          {"id": "c", "chunks": [{"text": "bad", "embedding": [1.0, 2.0, 3.0]}]}]})),
        200,
    );
    c(
        "GET",
        docs,
        "/v1/libraries/docs/documents?limit=1",
        None,
        200,
    );
    c(
        "GET",
        "/v1/libraries/{lib}/documents/{doc}",
        "/v1/libraries/docs/documents/a",
        None,
        200,
    );
    let search = "/v1/libraries/{lib}/search";
    for body in [
        json!({"vector": [1.0, 0.0], "k": 2}),
        json!({"text": "alpha"}),
        json!({"vector": [1.0, 0.0], "text": "alpha", "include": ["text", "metadata", "vector"],
               "filter": {"year": {"$gte": 2000}}}),
    ] {
        c("POST", search, "/v1/libraries/docs/search", Some(body), 200);
    }
    c(
        "POST",
        search,
        "/v1/libraries/docs/search",
        Some(json!({"vector": "x"})),
        400,
    );
    c(
        "POST",
        "/v1/libraries/{lib}/documents/delete",
        "/v1/libraries/docs/documents/delete",
        Some(json!({"ids": ["b", "zz"]})),
        200,
    );
    c(
        "POST",
        "/v1/libraries/{lib}/rebuild",
        "/v1/libraries/docs/rebuild",
        Some(json!({"index": {"type": "flat"}})),
        200,
    );
    c(
        "POST",
        "/v1/libraries/{lib}/optimize",
        "/v1/libraries/docs/optimize",
        None,
        200,
    );
    c(
        "DELETE",
        "/v1/libraries/{lib}/documents/{doc}",
        "/v1/libraries/docs/documents/a",
        None,
        204,
    );
    c(
        "GET",
        "/v1/libraries/{lib}/documents/{doc}",
        "/v1/libraries/docs/documents/a",
        None,
        404,
    );

    c("GET", "/v1/admin/tenants", "/v1/admin/tenants", None, 200);
    c(
        "POST",
        "/v1/admin/tenants",
        "/v1/admin/tenants",
        Some(json!({"name": "acme"})),
        201,
    );
    c(
        "PATCH",
        "/v1/admin/tenants/{tenant}",
        "/v1/admin/tenants/acme",
        Some(json!({"rates": {"search_per_sec": 5}})),
        200,
    );
    c(
        "GET",
        "/v1/admin/tenants/{tenant}",
        "/v1/admin/tenants/acme",
        None,
        200,
    );
    let key = c(
        "POST",
        "/v1/admin/tenants/{tenant}/keys",
        "/v1/admin/tenants/acme/keys",
        Some(json!({"scopes": ["read"], "name": "ci"})),
        201,
    );
    let id = key["id"].as_str().expect("key id");
    c(
        "GET",
        "/v1/admin/tenants/{tenant}/keys",
        "/v1/admin/tenants/acme/keys",
        None,
        200,
    );
    c(
        "POST",
        "/v1/admin/keys/{id}/rotate",
        &format!("/v1/admin/keys/{id}/rotate"),
        None,
        201,
    );
    c(
        "POST",
        "/v1/admin/keys/{id}/revoke",
        &format!("/v1/admin/keys/{id}/revoke"),
        None,
        200,
    );

    let job = c(
        "POST",
        "/v1/jobs",
        "/v1/jobs",
        Some(json!({"type": "optimize", "library": "docs"})),
        202,
    );
    let id = job["id"].as_str().expect("job id");
    c("GET", "/v1/jobs/{id}", &format!("/v1/jobs/{id}"), None, 200);
    c("GET", "/v1/jobs", "/v1/jobs", None, 200);
    c("GET", "/v1/jobs/{id}", "/v1/jobs/no-such-job", None, 404);
}

// ---- logs ----

/// A host started with `env`, its stderr in a file.
struct LoggedServer {
    _guard: ChildGuard,
    http: Http,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl LoggedServer {
    fn start(env: &[(&str, &str)]) -> LoggedServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("stderr.log");
        let port = free_port();
        let mut cmd = Command::new(host_bin());
        cmd.arg("serve")
            .args([
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--storage",
                "memory://",
            ])
            .arg("--component")
            .arg(edge_wasm())
            .env("ARRWDB_ADMIN_KEY", TEST_ADMIN_KEY)
            .env("ARRWDB_NO_AUTH", "false")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        let mut guard = ChildGuard::spawn("arrwdb", &mut cmd);
        let http = Http::new(format!("http://127.0.0.1:{port}")).with_key(TEST_ADMIN_KEY);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http.get("/ready").0 == 200)
        {
            if let Ok(Some(status)) = guard.child.try_wait() {
                panic!(
                    "arrwdb exited with {status}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "arrwdb not ready after 120 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        LoggedServer {
            _guard: guard,
            http,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).expect("read the log")
    }

    /// The log lines with `message` (the log must be JSON lines).
    fn lines_with(&self, message: &str) -> Vec<Value> {
        self.log()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
            })
            .filter(|l| l["message"] == message)
            .collect()
    }
}

/// Values that must never reach the log.
const SECRET_TEXT: &str = "zebraquartzunicorn";
const SECRET_FILTER: &str = "topsecret-filter-value";
const SECRET_COMPONENT: &str = "0.7071234";

fn secret_search(http: &Http, path: &str, request_id: &str) -> u16 {
    let body = json!({
        "vector": [0.7071234, 0.1234567],
        "text": SECRET_TEXT,
        "k": 5,
        "filter": {"category": {"$in": [SECRET_FILTER]}, "year": {"$gte": 1999}},
    });
    http.request("POST", path, &[("x-request-id", request_id)], Some(&body))
        .0
}

#[test]
fn slow_query_log_is_json_with_the_shape_and_never_the_content() {
    let server =
        LoggedServer::start(&[("ARRWDB_SLOW_QUERY_MS", "0"), ("ARRWDB_LOG_FORMAT", "json")]);
    let http = &server.http;
    // The document is public, even with authentication on; the API is not.
    assert_eq!(fetch_document(&http.without_key())["openapi"], "3.1.0");
    assert_eq!(http.without_key().get("/v1/libraries").0, 401);

    let reply = http.post("/v1/libraries", &json!({"name": "logs", "dimension": 2}));
    assert_eq!(reply.0, 201, "{}", reply.1);
    let doc = json!({"id": "d", "chunks": [{"text": format!("{SECRET_TEXT} text"),
                     "embedding": [1.0, 0.0], "metadata": {"category": SECRET_FILTER, "year": 2020}}]});
    assert_eq!(http.post("/v1/libraries/logs/documents", &doc).0, 200);
    assert_eq!(
        secret_search(http, "/v1/libraries/logs/search", "slow-req-1"),
        200
    );
    assert_eq!(
        secret_search(http, "/v1/libraries/logs/search/stream", "slow-req-2"),
        200
    );
    let (status, _) = http.request(
        "GET",
        "/v1/libraries/logs/documents?filter=%7B%22category%22%3A%22topsecret-filter-value%22%7D",
        &[("x-request-id", "slow-req-3")],
        None,
    );
    assert_eq!(status, 200);

    let lines = server.lines_with("slow query");
    let by_id: BTreeMap<&str, &Value> = lines
        .iter()
        .filter_map(|l| Some((l["request_id"].as_str()?, l)))
        .collect();
    let search = by_id
        .get("slow-req-1")
        .unwrap_or_else(|| panic!("no slow-query line: {lines:?}"));
    assert_eq!(search["level"], "WARN");
    assert_eq!(search["target"], "arrwdb::slow_query");
    assert_eq!(search["route"], "/v1/libraries/{lib}/search");
    assert_eq!(search["library"], "logs");
    assert_eq!(search["mode"], "hybrid");
    assert_eq!(search["index"], "flat");
    assert_eq!(search["k"], 5);
    assert_eq!(search["candidates"], 100);
    assert_eq!(search["results"], 1);
    assert_eq!(
        search["filter"],
        r#"{"category":{"$in":?},"year":{"$gte":?}}"#
    );
    assert!(search["took_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    assert_eq!(search["span"]["request_id"], "slow-req-1");
    let stream = by_id
        .get("slow-req-2")
        .expect("the streamed search is logged");
    assert_eq!(stream["route"], "/v1/libraries/{lib}/search/stream");
    let list = by_id.get("slow-req-3").expect("the listing is logged");
    assert_eq!(list["mode"], "list");
    assert_eq!(list["filter"], r#"{"category":?}"#);

    let log = server.log();
    for secret in [
        SECRET_TEXT,
        SECRET_FILTER,
        SECRET_COMPONENT,
        "0.1234567",
        TEST_ADMIN_KEY,
        &TEST_ADMIN_KEY[5..],
    ] {
        assert!(!log.contains(secret), "`{secret}` reached the log:\n{log}");
    }
}

#[test]
fn fast_queries_stay_out_of_the_log_and_text_is_the_default_format() {
    let server = LoggedServer::start(&[("ARRWDB_SLOW_QUERY_MS", "60000")]);
    let http = &server.http;
    assert_eq!(
        http.post("/v1/libraries", &json!({"name": "quiet", "dimension": 2}))
            .0,
        201
    );
    assert_eq!(
        secret_search(http, "/v1/libraries/quiet/search", "fast-req"),
        200
    );
    let log = server.log();
    assert!(log.contains("listening on"), "{log}");
    assert!(!log.contains("slow query"), "{log}");
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_err()),
        "text lines by default:\n{log}"
    );
}
