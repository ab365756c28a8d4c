//! Tenant isolation under load, read instances and the server's configuration, on the
//! real `arrwdb` binary (issue 6): changing a tenant's rates at runtime, `serve
//! --config`, read-your-writes across read instances, and a hostile tenant that must
//! neither slow another tenant's searches beyond 2× nor get past the call deadline or
//! the memory limit.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::host::{Server, create_library};
use crate::support::{ChildGuard, Http, assert_error, dataset, edge_wasm, free_port, host_bin};

fn auth_on() -> Vec<(String, String)> {
    vec![("ARRWDB_NO_AUTH".to_string(), "false".to_string())]
}

fn patch(http: &Http, path: &str, body: &Value) -> (u16, Value) {
    http.request("PATCH", path, &[], Some(body))
}

fn key_of(admin: &Http, tenant: &str, scopes: &[&str]) -> String {
    let reply = admin.post(
        &format!("/v1/admin/tenants/{tenant}/keys"),
        &json!({ "scopes": scopes }),
    );
    assert_eq!(reply.0, 201, "{}", reply.1);
    reply.1["key"].as_str().expect("key shown once").to_string()
}

/// How many of `n` back-to-back reads pass the rate limit.
fn passing_reads(http: &Http, n: usize) -> usize {
    (0..n)
        .filter(|_| {
            let reply = http.get("/v1/libraries");
            assert!(
                reply.0 == 200 || reply.0 == 429,
                "unexpected {}: {}",
                reply.0,
                reply.1
            );
            reply.0 == 200
        })
        .count()
}

#[test]
fn tenant_rates_change_at_runtime_and_persist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().to_str().expect("utf-8").to_string();
    let server = Server::start(&storage, &auth_on());
    let admin = server.http.clone();
    let created = admin.post(
        "/v1/admin/tenants",
        &json!({"name": "slow", "rates": {"search_per_sec": 3}}),
    );
    assert_eq!(created.0, 201, "{}", created.1);
    let reader = admin.with_key(&key_of(&admin, "slow", &["read", "admin"]));

    // Burst = one second's worth: 3 pass, the rest of a quick burst is limited.
    assert!(passing_reads(&reader, 10) <= 4);
    let limited = reader.get("/v1/libraries");
    assert_error(&limited, 429, "rate_limited");

    // Raising the rate applies to the existing key at once (no restart).
    let raised = patch(
        &admin,
        "/v1/admin/tenants/slow",
        &json!({"rates": {"search_per_sec": 1000, "write_per_sec": 7}}),
    );
    assert_eq!(raised.0, 200, "{}", raised.1);
    assert_eq!(raised.1["rates"]["search_per_sec"], 1000);
    assert_eq!(raised.1["rates"]["write_per_sec"], 7);
    assert_eq!(passing_reads(&reader, 50), 50);

    // Lowering it limits the same key again.
    let lowered = patch(
        &admin,
        "/v1/admin/tenants/slow",
        &json!({"rates": {"search_per_sec": 2}}),
    );
    assert_eq!(lowered.0, 200, "{}", lowered.1);
    assert!(lowered.1["rates"]["write_per_sec"].is_null());
    assert!(passing_reads(&reader, 10) <= 3);

    // Only the operator changes rates, with a valid body, of a tenant that exists.
    assert_error(
        &patch(
            &reader,
            "/v1/admin/tenants/slow",
            &json!({"rates": {"search_per_sec": 1000}}),
        ),
        403,
        "forbidden",
    );
    assert_error(
        &patch(
            &admin.without_key(),
            "/v1/admin/tenants/slow",
            &json!({"rates": {}}),
        ),
        401,
        "unauthorized",
    );
    assert_error(
        &patch(&admin, "/v1/admin/tenants/nobody", &json!({"rates": {}})),
        404,
        "not_found",
    );
    for bad in [
        json!({}),
        json!({"rates": {"search_per_sec": -1}}),
        json!({"rates": {"searches": 5}}),
        json!({"rates": {}, "name": "x"}),
    ] {
        assert_error(
            &patch(&admin, "/v1/admin/tenants/slow", &bad),
            400,
            "invalid",
        );
    }

    // Persisted like the other records.
    let server = server.crash_and_restart();
    let record = server.http.get("/v1/admin/tenants/slow");
    assert_eq!(record.0, 200, "{}", record.1);
    assert_eq!(record.1["rates"]["search_per_sec"], 2);
    let reader = server.http.with_key(reader.key.as_deref().expect("key"));
    assert!(passing_reads(&reader, 10) <= 3);
}

/// Starts `arrwdb serve` with `args` and `env` (no defaults added); returns the guard
/// once `port` answers `/ready`, or the exit status and stderr if it stops first.
fn serve_raw(
    args: &[&str],
    env: &[(&str, &str)],
    port: u16,
) -> Result<ChildGuard, (String, String)> {
    let mut cmd = Command::new(host_bin());
    cmd.arg("serve")
        .args(args)
        .env_remove("ARRWDB_ADDR")
        .env_remove("ARRWDB_STORAGE")
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut guard = ChildGuard::spawn("arrwdb", &mut cmd);
    let http = Http::new(format!("http://127.0.0.1:{port}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = guard.child.try_wait() {
            let mut stderr = String::new();
            if let Some(mut pipe) = guard.child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            return Err((status.to_string(), stderr));
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && http.get("/ready").0 == 200
        {
            return Ok(guard);
        }
        assert!(Instant::now() < deadline, "arrwdb not ready after 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn config_file_with_env_and_flag_precedence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let wasm = edge_wasm();
    let wasm = wasm.to_str().expect("utf-8");
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let config = dir.path().join("arrwdb.toml");
    std::fs::write(
        &config,
        format!(
            "# both spellings work\naddr = \"127.0.0.1:{file_port}\"\nstorage = {:?}\ncomponent = {wasm:?}\nno-auth = true\nread_instances = 3\nflush-interval-ms = 2\n",
            data.to_str().expect("utf-8")
        ),
    )
    .expect("write config");
    let config = config.to_str().expect("utf-8");

    // The file alone: its address and storage.
    let server = serve_raw(&["--config", config], &[], file_port).expect("starts");
    let http = Http::new(format!("http://127.0.0.1:{file_port}"));
    create_library(&http, "from-config", 2);
    assert!(
        data.join("default/from-config").is_dir(),
        "the file's storage is used"
    );
    drop(server);

    // An environment variable beats the file; a flag beats both.
    let env = [("ARRWDB_ADDR", format!("127.0.0.1:{env_port}"))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = serve_raw(&["--config", config], &env, env_port).expect("starts on env");
    let libs = Http::new(format!("http://127.0.0.1:{env_port}")).get("/v1/libraries");
    assert_eq!(libs.0, 200, "{}", libs.1);
    assert_eq!(libs.1["libraries"][0]["name"], "from-config", "{}", libs.1);
    drop(server);
    let flag = format!("127.0.0.1:{flag_port}");
    let _server =
        serve_raw(&["--config", config, "--addr", &flag], &env, flag_port).expect("starts on flag");
    assert_eq!(
        Http::new(format!("http://{flag}")).get("/health").0,
        200,
        "the flag's address wins"
    );

    // Unknown keys and bad values are errors naming the key; nothing starts.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "addr = \"127.0.0.1:1\"\nread_instance = 2\n").expect("write");
    let (status, stderr) = serve_raw(&["--config", bad.to_str().expect("utf-8")], &[], 1)
        .expect_err("an unknown key stops the server");
    assert!(!status.contains("code: 0"), "{status}");
    assert!(stderr.contains("`read_instance`"), "{stderr}");
    std::fs::write(&bad, "read_instances = \"many\"\n").expect("write");
    let (_, stderr) = serve_raw(&["--config", bad.to_str().expect("utf-8")], &[], 1)
        .expect_err("a bad value stops the server");
    assert!(stderr.contains("read-instances"), "{stderr}");

    // `serve --help` documents the file.
    let help = Command::new(host_bin())
        .args(["serve", "--help"])
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--config"), "{help}");
    assert!(help.contains("CONFIG FILE"), "{help}");
    assert!(help.contains("--read-instances"), "{help}");
}

/// Writes from several clients, each followed at once by reads of what it wrote:
/// every read (served by one of 4 read instances) sees the acknowledged write, also
/// after a deletion, a snapshot and a restart.
#[test]
fn read_instances_read_your_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().to_str().expect("utf-8").to_string();
    let server = Server::start_with(&storage, &[], &["--read-instances", "4"]);
    let http = server.http.clone();
    create_library(&http, "ryw", 2);
    let failures = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let http = http.clone();
            let failures = failures.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let id = format!("t{t}-{i}");
                    let x = (t * 100 + i) as f32;
                    let doc = json!({"id": id, "chunks": [{"text": "x", "embedding": [x, 1.0]}]});
                    let put = http.post("/v1/libraries/ryw/documents", &doc);
                    assert!(put.0 == 200 || put.0 == 201, "{}", put.1);
                    let got = http.get(&format!("/v1/libraries/ryw/documents/{id}"));
                    let hits = http.post(
                        "/v1/libraries/ryw/search",
                        &json!({"vector": [x, 1.0], "k": 200, "include": []}),
                    );
                    let found = hits.1["hits"]
                        .as_array()
                        .is_some_and(|h| h.iter().any(|hit| hit["document_id"] == id.as_str()));
                    if got.0 != 200 || !found {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    if i % 5 == 4 {
                        let del = http.delete(&format!("/v1/libraries/ryw/documents/{id}"));
                        assert!(del.0 == 200 || del.0 == 204, "{}", del.1);
                        let gone = http.get(&format!("/v1/libraries/ryw/documents/{id}"));
                        if gone.0 != 404 {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("client thread");
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0, "stale reads");
    let info = http.get("/v1/libraries/ryw");
    assert_eq!(info.1["documents"], 6 * 20, "{}", info.1);

    // A snapshot, a deleted library, a restart: the readers follow.
    assert_eq!(http.post_bytes("/v1/libraries/ryw/snapshot").0, 200);
    create_library(&http, "gone", 2);
    assert_eq!(http.get("/v1/libraries/gone").0, 200);
    assert!(matches!(http.delete("/v1/libraries/gone").0, 200 | 204));
    assert_error(&http.get("/v1/libraries/gone"), 404, "not_found");
    let server = server.crash_and_restart();
    let info = server.http.get("/v1/libraries/ryw");
    assert_eq!(info.1["documents"], 6 * 20, "{}", info.1);
    assert_error(&server.http.get("/v1/libraries/gone"), 404, "not_found");
}

/// The two hostile-tenant tests measure latency and load the CPU: one at a time.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index.min(samples.len() - 1)]
}

/// Loads the first `n` dataset documents into `library` of the key's tenant.
fn load_dataset(http: &Http, library: &str, n: usize) {
    let reply = http.post(
        "/v1/libraries",
        &json!({"name": library, "dimension": dataset::DIM, "metric": "cosine"}),
    );
    assert_eq!(reply.0, 201, "{}", reply.1);
    for batch in dataset::documents(n).chunks(500) {
        let reply = http.post(
            &format!("/v1/libraries/{library}/documents/batch"),
            &json!({ "documents": batch }),
        );
        assert_eq!(reply.0, 200, "{}", reply.1);
    }
}

/// A filter the engine evaluates on every chunk: an `$or` of many misses.
fn pathological_filter() -> Value {
    let misses: Vec<Value> = (0..300)
        .map(|i| json!({ "license": { "$eq": format!("no-such-license-{i}") } }))
        .collect();
    json!({ "$or": misses })
}

/// Tenant `hostile` runs k = 1000 searches with a 300-clause filter over 5000
/// documents back to back while tenant `victim` searches its own library. Solo and
/// contended rounds alternate (8 each), so outside load on a busy machine hits both
/// alike; the victim's p99 is taken per round and the median round compared, which a
/// single noisy round cannot decide. The victim's p99 under attack must stay within 2×
/// its solo p99 (floor 5 ms). It holds because each tenant has its own instances and
/// engine calls leave the async workers (`block_in_place`), so the attack costs the
/// victim only a share of the CPU.
#[test]
fn hostile_tenant_does_not_slow_another() {
    let _heavy = HEAVY.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().to_str().expect("utf-8").to_string();
    let server = Server::start_with(
        &storage,
        &auth_on(),
        &["--search-rate", "0", "--write-rate", "0"],
    );
    let admin = server.http.clone();
    for tenant in ["hostile", "victim"] {
        let reply = admin.post("/v1/admin/tenants", &json!({ "name": tenant }));
        assert_eq!(reply.0, 201, "{}", reply.1);
    }
    let hostile = admin.with_key(&key_of(&admin, "hostile", &["read", "write"]));
    let victim = admin.with_key(&key_of(&admin, "victim", &["read", "write"]));
    load_dataset(&hostile, "big", 5000);
    load_dataset(&victim, "small", 2000);
    let queries = dataset::fvecs("queries.fvecs", 40);

    let huge = json!({
        "vector": queries[0], "k": 1000, "filter": pathological_filter(),
        "include": ["text", "metadata"],
    });
    let started = Instant::now();
    let reply = hostile.post("/v1/libraries/big/search", &huge);
    assert_eq!(reply.0, 200, "{}", reply.1);
    let hostile_ms = started.elapsed().as_millis();

    let victim_search = |samples: &mut Vec<Duration>| {
        for q in &queries {
            let started = Instant::now();
            let reply = victim.post("/v1/libraries/small/search", &json!({"vector": q, "k": 10}));
            samples.push(started.elapsed());
            assert_eq!(reply.0, 200, "{}", reply.1);
        }
    };
    // Solo and contended rounds interleaved, so machine noise hits both alike.
    let (mut solo, mut contended) = (Vec::new(), Vec::new());
    let (mut solo_p99, mut contended_p99) = (Vec::new(), Vec::new());
    let mut hostile_calls = 0;
    for _ in 0..8 {
        let mut round = Vec::new();
        victim_search(&mut round);
        solo_p99.push(percentile(&mut round, 0.99));
        solo.extend(round);
        let stop = Arc::new(AtomicBool::new(false));
        let attacker = {
            let (stop, hostile, huge) = (stop.clone(), hostile.clone(), huge.clone());
            std::thread::spawn(move || {
                let mut calls = 0;
                while !stop.load(Ordering::Relaxed) {
                    let reply = hostile.post("/v1/libraries/big/search", &huge);
                    assert_eq!(reply.0, 200, "{}", reply.1);
                    calls += 1;
                }
                calls
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        let mut round = Vec::new();
        victim_search(&mut round);
        contended_p99.push(percentile(&mut round, 0.99));
        contended.extend(round);
        stop.store(true, Ordering::Relaxed);
        hostile_calls += attacker.join().expect("attacker");
    }
    let solo_median = percentile(&mut solo_p99, 0.5);
    let contended_median = percentile(&mut contended_p99, 0.5);
    eprintln!(
        "hostile search {hostile_ms} ms, {hostile_calls} hostile calls; victim p50 {:?} solo / {:?} contended; pooled p99 {:?} solo / {:?} contended; median round p99 {solo_median:?} solo / {contended_median:?} contended",
        percentile(&mut solo, 0.5),
        percentile(&mut contended, 0.5),
        percentile(&mut solo, 0.99),
        percentile(&mut contended, 0.99),
    );
    assert!(
        hostile_calls >= 8,
        "the attacker ran ({hostile_calls} calls)"
    );
    let floor = solo_median.max(Duration::from_millis(5));
    assert!(
        contended_median <= floor * 2,
        "victim p99 {contended_median:?} under attack vs {solo_median:?} solo (floor {floor:?})"
    );
}

/// A tenant whose request runs past the call deadline or the memory limit gets a clear
/// error; the other tenant keeps working, and so does the hostile one afterwards.
#[test]
fn hostile_tenant_hits_deadline_and_memory_limit() {
    let _heavy = HEAVY.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().to_str().expect("utf-8").to_string();
    let server = Server::start_with(
        &storage,
        &auth_on(),
        &[
            "--search-rate",
            "0",
            "--write-rate",
            "0",
            "--call-timeout-secs",
            "1",
            "--memory-limit-mb",
            "48",
        ],
    );
    let admin = server.http.clone();
    for tenant in ["hostile", "victim"] {
        let reply = admin.post("/v1/admin/tenants", &json!({ "name": tenant }));
        assert_eq!(reply.0, 201, "{}", reply.1);
    }
    let hostile = admin.with_key(&key_of(&admin, "hostile", &["read", "write"]));
    let victim = admin.with_key(&key_of(&admin, "victim", &["read", "write"]));
    load_dataset(&victim, "small", 500);
    let query = dataset::fvecs("queries.fvecs", 1).remove(0);
    let search = || {
        victim.post(
            "/v1/libraries/small/search",
            &json!({"vector": query, "k": 10}),
        )
    };
    assert_eq!(search().0, 200);

    // Deadline: an index rebuild that runs past the 1 s call timeout.
    let reply = hostile.post(
        "/v1/libraries",
        &json!({"name": "slow", "dimension": dataset::DIM}),
    );
    assert_eq!(reply.0, 201, "{}", reply.1);
    let docs = dataset::documents(3000);
    for batch in docs.chunks(500) {
        let reply = hostile.post(
            "/v1/libraries/slow/documents/batch",
            &json!({ "documents": batch }),
        );
        assert_eq!(reply.0, 200, "{}", reply.1);
    }
    let started = Instant::now();
    let (stop, victim_ok) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let watcher = {
        let (stop, victim_ok, victim, query) = (
            stop.clone(),
            victim_ok.clone(),
            victim.clone(),
            query.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let reply = victim.post(
                    "/v1/libraries/small/search",
                    &json!({"vector": query, "k": 10}),
                );
                assert_eq!(reply.0, 200, "{}", reply.1);
                victim_ok.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let slow = hostile.post(
        "/v1/libraries/slow/rebuild",
        &json!({"index": {"type": "hnsw", "m": 128, "ef_construction": 4096}}),
    );
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    watcher.join().expect("victim thread");
    eprintln!(
        "hostile rebuild answered {} after {took:?}; the victim searched {} times meanwhile",
        slow.0,
        victim_ok.load(Ordering::Relaxed)
    );
    assert_error(&slow, 500, "internal");
    let message = slow.1["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("deadline"), "{message}");
    assert!(
        took < Duration::from_secs(10),
        "the deadline cut it short: {took:?}"
    );
    assert!(
        victim_ok.load(Ordering::Relaxed) >= 10,
        "the victim kept searching"
    );
    let slow = hostile.get("/v1/libraries/slow");
    assert_eq!(slow.0, 200, "{}", slow.1);
    assert_eq!(slow.1["documents"], 3000, "{}", slow.1);

    // Memory: documents until the instance's linear memory would pass 48 MiB.
    let reply = hostile.post(
        "/v1/libraries",
        &json!({"name": "hog", "dimension": dataset::DIM}),
    );
    assert_eq!(reply.0, 201, "{}", reply.1);
    let text = "x".repeat(60_000);
    let chunks: Vec<Value> = (0..64)
        .map(|_| json!({"text": text, "embedding": query}))
        .collect();
    let mut trapped = None;
    for i in 0..40 {
        let doc = json!({"id": format!("d{i}"), "chunks": chunks});
        let reply = hostile.post("/v1/libraries/hog/documents", &doc);
        if reply.0 != 200 && reply.0 != 201 {
            trapped = Some((i, reply));
            break;
        }
        assert_eq!(search().0, 200, "the victim keeps searching");
    }
    let (stored, reply) = trapped.expect("the memory limit stopped the hostile tenant");
    assert_error(&reply, 500, "internal");
    let message = reply.1["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("trapped"), "{message}");
    assert_eq!(search().0, 200, "the victim is unaffected");
    // The hostile tenant's acknowledged documents are back once its instance is
    // rebuilt from storage.
    let hog = hostile.get("/v1/libraries/hog");
    assert_eq!(hog.0, 200, "{}", hog.1);
    assert_eq!(hog.1["documents"], stored, "{}", hog.1);

    // A rebuild of the library that fills the instance is not taken outside it: loading
    // a natively built copy back would not fit the 48 MiB, so it runs inside, under the
    // limit, wherever that ends.
    let native = |result| crate::host::index_rebuilds(&admin, "native", result);
    let (built, failed) = (native("built"), native("failed"));
    let reply = hostile.post(
        "/v1/libraries/hog/rebuild",
        &json!({"index": {"type": "hnsw"}}),
    );
    eprintln!("rebuild of the full instance answered {}", reply.0);
    assert!(reply.0 == 200 || reply.0 == 500, "{}", reply.1);
    assert_eq!((native("built"), native("failed")), (built, failed));
    assert_eq!(search().0, 200, "the victim is unaffected");
}
