//! End-to-end tests of tenants and API keys on the real `arrwdb` binary: the auth matrix
//! (no key, bad key, revoked, expired, wrong scope, wrong tenant) on every route, tenant
//! isolation, key rotation and revocation, the published edge key list, and that all
//! of it survives a restart.

use serde_json::{Value, json};

use crate::host::Server;
use crate::support::{Http, TEST_ADMIN_KEY, assert_error};

/// Every authenticated route with a body that is valid for it.
fn routes() -> Vec<(&'static str, &'static str, Option<Value>)> {
    let doc = json!({"id": "m1", "chunks": [{"text": "t", "embedding": [1.0, 0.0]}]});
    vec![
        ("GET", "/v1/libraries", None),
        (
            "POST",
            "/v1/libraries",
            Some(json!({"name": "x", "dimension": 2})),
        ),
        ("GET", "/v1/libraries/lib", None),
        ("DELETE", "/v1/libraries/zzz", None),
        ("GET", "/v1/libraries/lib/documents", None),
        ("POST", "/v1/libraries/lib/documents", Some(doc.clone())),
        (
            "POST",
            "/v1/libraries/lib/documents/batch",
            Some(json!({"documents": [doc]})),
        ),
        (
            "POST",
            "/v1/libraries/lib/documents/delete",
            Some(json!({"ids": ["none"]})),
        ),
        ("GET", "/v1/libraries/lib/documents/m1", None),
        ("DELETE", "/v1/libraries/lib/documents/none", None),
        (
            "POST",
            "/v1/libraries/lib/search",
            Some(json!({"vector": [1.0, 0.0]})),
        ),
        ("POST", "/v1/libraries/lib/snapshot", None),
        ("POST", "/v1/libraries/lib/rebuild", Some(json!({}))),
        ("POST", "/v1/libraries/lib/optimize", None),
        ("GET", "/v1/admin/tenants", None),
        (
            "POST",
            "/v1/admin/tenants",
            Some(json!({"name": "t-matrix"})),
        ),
        ("GET", "/v1/admin/tenants/acme", None),
        ("POST", "/v1/admin/tenants/nobody/deactivate", None),
        ("GET", "/v1/admin/tenants/acme/keys", None),
        (
            "POST",
            "/v1/admin/tenants/acme/keys",
            Some(json!({"scopes": ["read"]})),
        ),
        ("POST", "/v1/admin/keys/k_none/rotate", None),
        ("POST", "/v1/admin/keys/k_none/revoke", None),
    ]
}

fn call(http: &Http, (method, path, body): &(&str, &str, Option<Value>)) -> (u16, Value) {
    http.request(method, path, &[], body.as_ref())
}

fn new_key(admin: &Http, tenant: &str, body: Value) -> (String, String) {
    let reply = admin.post(&format!("/v1/admin/tenants/{tenant}/keys"), &body);
    assert_eq!(reply.0, 201, "{}", reply.1);
    let key = reply.1["key"].as_str().expect("key shown once").to_string();
    let id = reply.1["id"].as_str().expect("id").to_string();
    (key, id)
}

fn lib_body() -> Value {
    json!({"id": "m1", "chunks": [{"text": "t", "embedding": [1.0, 0.0]}]})
}

#[test]
fn auth_matrix_isolation_rotation_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().to_str().expect("utf-8").to_string();
    let env = [("ARRWDB_NO_AUTH".to_string(), "false".to_string())];
    let server = Server::start(&storage, &env);
    let admin = server.http.clone();
    let anon = admin.without_key();

    // Open routes stay open; unknown routes are 404 even without a key.
    assert_eq!(anon.get("/health").0, 200);
    assert_eq!(anon.get("/ready").0, 200);
    assert_error(&anon.get("/v1/nope"), 404, "not_found");

    // Both headers work.
    let x_api = anon.request(
        "GET",
        "/v1/libraries",
        &[("x-api-key", TEST_ADMIN_KEY)],
        None,
    );
    assert_eq!(x_api.0, 200, "{}", x_api.1);

    // Tenants.
    assert_eq!(
        admin.post("/v1/admin/tenants", &json!({"name": "acme"})).0,
        201
    );
    assert_error(
        &admin.post("/v1/admin/tenants", &json!({"name": "acme"})),
        409,
        "conflict",
    );
    for bad in ["_system", "_auth", "Upper", "", "a/b"] {
        assert_error(
            &admin.post("/v1/admin/tenants", &json!({"name": bad})),
            400,
            "invalid",
        );
    }
    let listed = admin.get("/v1/admin/tenants");
    let names: Vec<&str> = listed.1["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["acme", "default"]);
    assert_error(&admin.get("/v1/admin/tenants/ghost"), 404, "not_found");

    // Keys of acme: shown once, `arrw_` + 40 base62.
    let (rw, rw_id) = new_key(&admin, "acme", json!({"scopes": ["read", "write"]}));
    assert!(
        rw.starts_with("arrw_")
            && rw.len() == 45
            && rw[5..].bytes().all(|b| b.is_ascii_alphanumeric())
    );
    let (read, read_id) = new_key(&admin, "acme", json!({"scopes": ["read"]}));
    let (acme_admin, _) = new_key(&admin, "acme", json!({"scopes": ["admin"]}));
    let (expired, _) = new_key(
        &admin,
        "acme",
        json!({"scopes": ["read", "write", "admin"], "expires_at_ms": 1}),
    );
    let (revoked, revoked_id) = new_key(
        &admin,
        "acme",
        json!({"scopes": ["read", "write", "admin"]}),
    );
    assert_eq!(
        admin
            .post(&format!("/v1/admin/keys/{revoked_id}/revoke"), &json!({}))
            .0,
        200
    );
    let keys = admin.get("/v1/admin/tenants/acme/keys");
    assert_eq!(keys.0, 200);
    assert_eq!(keys.1["keys"].as_array().map(Vec::len), Some(5));
    assert!(!keys.1.to_string().contains(&rw) && !keys.1.to_string().contains("sha256"));

    // Tenant isolation: acme's `lib` is not the default tenant's, and vice versa.
    let acme = admin.with_key(&rw);
    assert_eq!(
        acme.post("/v1/libraries", &json!({"name": "lib", "dimension": 2}))
            .0,
        201
    );
    assert_eq!(acme.post("/v1/libraries/lib/documents", &lib_body()).0, 200);
    assert_error(&admin.get("/v1/libraries/lib"), 404, "not_found");
    assert_error(
        &admin.get("/v1/libraries/lib/documents/m1"),
        404,
        "not_found",
    );
    assert_error(
        &admin.post("/v1/libraries/lib/search", &json!({"vector": [1.0, 0.0]})),
        404,
        "not_found",
    );
    assert_eq!(
        admin
            .post("/v1/libraries", &json!({"name": "lib", "dimension": 3}))
            .0,
        201
    );
    assert_eq!(acme.get("/v1/libraries/lib").1["dimension"], 2);
    assert_eq!(admin.get("/v1/libraries/lib").1["dimension"], 3);
    assert!(dir.path().join("acme/lib").is_dir() && dir.path().join("default/lib").is_dir());

    // The matrix on every route.
    let bad = anon.with_key("arrw_0000000000000000000000000000000000000000");
    let revoked_http = anon.with_key(&revoked);
    let expired_http = anon.with_key(&expired);
    let reader = anon.with_key(&read);
    let tenant_admin = anon.with_key(&acme_admin);
    for route in routes() {
        let what = format!("{} {}", route.0, route.1);
        assert_error(&call(&anon, &route), 401, "unauthorized");
        assert_error(&call(&bad, &route), 401, "unauthorized");
        assert_error(&call(&revoked_http, &route), 401, "unauthorized");
        assert_error(&call(&expired_http, &route), 401, "unauthorized");
        let admin_route = route.1.starts_with("/v1/admin");
        let read_route = route.0 == "GET" || route.1.ends_with("/search");
        if admin_route {
            // Wrong scope: a read/write key; wrong tenant: acme's admin on tenants.
            assert_error(&call(&acme, &route), 403, "forbidden");
            if !route.1.contains("/acme") && !route.1.contains("/keys/") {
                assert_error(&call(&tenant_admin, &route), 403, "forbidden");
            }
        } else {
            assert_error(&call(&tenant_admin, &route), 403, "forbidden");
            if !read_route {
                assert_error(&call(&reader, &route), 403, "forbidden");
            } else {
                let reply = call(&reader, &route);
                assert!(reply.0 == 200, "{what} with a read key: {reply:?}");
            }
        }
    }
    // A tenant admin manages its own keys, not the default tenant's.
    assert_eq!(tenant_admin.get("/v1/admin/tenants/acme/keys").0, 200);
    assert_error(
        &tenant_admin.get("/v1/admin/tenants/default/keys"),
        403,
        "forbidden",
    );
    let default_keys = admin.get("/v1/admin/tenants/default/keys");
    assert_eq!(default_keys.0, 200);

    // Rotation: the new key works, the old one is 401.
    let rotated = admin.post(&format!("/v1/admin/keys/{read_id}/rotate"), &json!({}));
    assert_eq!(rotated.0, 201, "{}", rotated.1);
    let new_read = rotated.1["key"].as_str().expect("new key").to_string();
    assert_eq!(rotated.1["scopes"], json!(["read"]));
    assert_error(&reader.get("/v1/libraries"), 401, "unauthorized");
    assert_eq!(anon.with_key(&new_read).get("/v1/libraries/lib").0, 200);

    // The edge key list: live read/write keys only, as SHA-256.
    let edge: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("_auth/edge-keys.json")).expect("edge-keys.json"),
    )
    .expect("json");
    assert_eq!(edge["version"], 1);
    let text = edge.to_string();
    let new_read_id = rotated.1["id"].as_str().expect("id");
    let ids: Vec<&str> = edge["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["id"].as_str())
        .collect();
    assert!(
        ids.contains(&new_read_id) && ids.contains(&rw_id.as_str()),
        "{ids:?}"
    );
    assert!(
        !ids.contains(&read_id.as_str()) && !ids.contains(&revoked_id.as_str()),
        "{ids:?}"
    );
    assert!(
        edge["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .all(|k| k["sha256"].as_str().is_some_and(|h| h.len() == 64))
    );
    assert!(!text.contains(&rw), "no plaintext keys");

    // Everything survives a restart (SIGKILL: records are written before answering).
    let server = server.crash_and_restart();
    let admin = server.http.clone();
    let anon = admin.without_key();
    assert_eq!(
        anon.with_key(&new_read)
            .get("/v1/libraries/lib/documents/m1")
            .0,
        200
    );
    assert_error(
        &anon.with_key(&read).get("/v1/libraries"),
        401,
        "unauthorized",
    );
    assert_error(
        &anon.with_key(&revoked).get("/v1/libraries"),
        401,
        "unauthorized",
    );
    let keys = admin.get("/v1/admin/tenants/acme/keys");
    let rw_record = keys.1["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["id"] == rw_id.as_str())
        .cloned()
        .expect("rw key listed");
    assert!(
        rw_record["last_used_at_ms"].as_u64().is_some(),
        "{rw_record}"
    );

    // Deactivating a tenant stops its keys (403), not its data.
    assert_eq!(
        admin
            .post("/v1/admin/tenants/acme/deactivate", &json!({}))
            .0,
        200
    );
    assert_error(&anon.with_key(&rw).get("/v1/libraries"), 403, "forbidden");
    assert_error(
        &admin.post("/v1/admin/tenants/default/deactivate", &json!({})),
        400,
        "invalid",
    );
    assert!(dir.path().join("acme/lib").is_dir());
}

#[test]
fn first_start_prints_an_admin_key_once() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().expect("tempdir");
    let start = || {
        let port = crate::support::free_port();
        let mut cmd = Command::new(crate::support::host_bin());
        cmd.args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--storage"])
            .arg(dir.path())
            .arg("--component")
            .arg(crate::support::edge_wasm())
            .env_remove("ARRWDB_ADMIN_KEY")
            .env_remove("ARRWDB_NO_AUTH")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut guard = crate::support::ChildGuard::spawn("arrwdb", &mut cmd);
        let stdout = guard.child.stdout.take().expect("stdout");
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("line");
            let done = line.starts_with("listening on");
            lines.push(line);
            if done {
                break;
            }
        }
        (guard, Http::new(format!("http://127.0.0.1:{port}")), lines)
    };
    let (mut first, http, lines) = start();
    let key = lines
        .iter()
        .find_map(|l| l.split("stored as a hash): ").nth(1))
        .unwrap_or_else(|| panic!("no admin key printed: {lines:?}"))
        .to_string();
    assert!(
        lines.iter().any(|l| l.contains("ARRWDB_ADMIN_KEY")),
        "{lines:?}"
    );
    http.wait_ready("/ready", std::time::Duration::from_secs(120));
    assert_error(&http.get("/v1/admin/tenants"), 401, "unauthorized");
    assert_eq!(http.with_key(&key).get("/v1/admin/tenants").0, 200);
    assert!(first.terminate(std::time::Duration::from_secs(30)));
    let (_second, http, lines) = start();
    assert!(
        !lines.iter().any(|l| l.contains("arrw_")),
        "printed again: {lines:?}"
    );
    http.wait_ready("/ready", std::time::Duration::from_secs(120));
    assert_eq!(http.with_key(&key).get("/v1/admin/tenants").0, 200);
}

/// Status and `Retry-After` of one GET with `key`.
fn get_with_retry_after(base: &str, path: &str, key: &str) -> (u16, Option<u64>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let resp = agent
        .get(format!("{base}{path}"))
        .header("x-api-key", key)
        .call()
        .expect("transport");
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (resp.status().as_u16(), retry)
}

#[test]
fn rate_limits_per_key_with_separate_search_and_write_budgets() {
    let env = [("ARRWDB_NO_AUTH".to_string(), "false".to_string())];
    let server = Server::start_with("memory://", &env, &["--write-rate", "1000"]);
    let admin = server.http.clone();
    let created = admin.post(
        "/v1/admin/tenants",
        &json!({"name": "bursty", "rates": {"search_per_sec": 5, "write_per_sec": 3}}),
    );
    assert_eq!(created.0, 201, "{}", created.1);
    let (key, _) = new_key(&admin, "bursty", json!({"scopes": ["read", "write"]}));
    let (other, _) = new_key(&admin, "bursty", json!({"scopes": ["read", "write"]}));
    let http = admin.with_key(&key);
    assert_eq!(
        http.post("/v1/libraries", &json!({"name": "lib", "dimension": 2}))
            .0,
        201
    );

    // A burst above the budget: the first 5 pass, then 429 with Retry-After.
    let replies: Vec<(u16, Option<u64>)> = (0..20)
        .map(|_| get_with_retry_after(&http.base, "/v1/libraries/lib", &key))
        .collect();
    let ok = replies.iter().filter(|r| r.0 == 200).count();
    let limited: Vec<_> = replies.iter().filter(|r| r.0 == 429).collect();
    assert!((5..=7).contains(&ok), "{replies:?}");
    assert_eq!(ok + limited.len(), 20, "{replies:?}");
    assert!(
        limited.iter().all(|r| r.1.is_some_and(|s| s >= 1)),
        "{replies:?}"
    );
    assert_error(&http.get("/v1/libraries/lib"), 429, "rate_limited");
    // The write budget is separate, and so is another key's.
    let doc = json!({"id": "a", "chunks": [{"text": "t", "embedding": [1.0, 0.0]}]});
    assert_eq!(http.post("/v1/libraries/lib/documents", &doc).0, 200);
    assert_eq!(
        get_with_retry_after(&http.base, "/v1/libraries/lib", &other).0,
        200
    );
    // Writes: budget 3 (one spent creating the library, one above).
    let writes: Vec<u16> = (0..6)
        .map(|_| http.post("/v1/libraries/lib/documents", &doc).0)
        .collect();
    assert!(writes.contains(&429) && writes[0] == 200, "{writes:?}");

    // Under the budget (4/s against 5/s), never a 429.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    for _ in 0..12 {
        let reply = get_with_retry_after(&http.base, "/v1/libraries/lib", &key);
        assert_eq!(reply.0, 200, "{reply:?}");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}
