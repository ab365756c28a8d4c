//! Shared test harness: where the built artifacts are, child processes that die with
//! the test, free ports, a tiny HTTP client, and the dataset reader.

#![allow(dead_code)]

pub mod dataset;
pub mod s3;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Cargo's target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn artifact(path: PathBuf, how: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: build it with `{how}` (or run `cargo xtask test`)",
        path.display()
    );
    path
}

/// The `arrwdb` host binary (release build).
pub fn host_bin() -> PathBuf {
    artifact(
        target_dir().join("release/arrwdb"),
        "cargo build --release -p arrwdb-host",
    )
}

/// The edge component (release build for wasm32-wasip2).
pub fn edge_wasm() -> PathBuf {
    artifact(
        target_dir().join("wasm32-wasip2/release/arrwdb_edge.wasm"),
        "cargo build --release -p arrwdb-edge --target wasm32-wasip2",
    )
}

/// The npm package directory (wasm-bindgen output plus package.json).
pub fn npm_package() -> PathBuf {
    artifact(
        workspace_root().join("wasm/pkg/package.json"),
        "cargo xtask build",
    )
    .parent()
    .expect("package.json has a parent")
    .to_path_buf()
}

/// An installed program on PATH (or in ~/.cargo/bin).
pub fn program(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed: run `cargo xtask test`, which installs it")
        })
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A child process killed (SIGKILL; SIGTERM under coverage) and reaped when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    pub child: Child,
    pub name: String,
}

impl ChildGuard {
    pub fn spawn(name: &str, cmd: &mut Command) -> Self {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        ChildGuard {
            child,
            name: name.to_string(),
        }
    }

    /// SIGKILL now: no shutdown hook runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        false
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Under `cargo xtask coverage` the children are instrumented and write their
        // profile only when they exit normally: stop them with SIGTERM there, so the
        // host's coverage counts every test, not just the few that stop it cleanly.
        if std::env::var_os("LLVM_PROFILE_FILE").is_some() {
            self.terminate(Duration::from_secs(10));
        } else {
            self.kill();
        }
    }
}

/// A minimal JSON-over-HTTP client for one server.
#[derive(Debug, Clone)]
pub struct Http {
    pub base: String,
    agent: ureq::Agent,
    /// Sent as `Authorization: Bearer <key>` with every request, if set.
    pub key: Option<String>,
}

/// The admin key the test servers are started with (`ARRWDB_ADMIN_KEY`).
pub const TEST_ADMIN_KEY: &str = "arrw_testadminkey0123456789abcdefghijklmnopqrstu";

/// Status and JSON body of a response (`Value::Null` for an empty or non-JSON body).
pub type Reply = (u16, Value);

impl Http {
    pub fn new(base: impl Into<String>) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build();
        Http {
            base: base.into(),
            agent: config.into(),
            key: None,
        }
    }

    /// The same client, sending `key` with every request.
    pub fn with_key(&self, key: &str) -> Self {
        Http {
            key: Some(key.into()),
            ..self.clone()
        }
    }

    /// The same client, sending no key.
    pub fn without_key(&self) -> Self {
        Http {
            key: None,
            ..self.clone()
        }
    }

    fn auth<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.key {
            Some(key) => request.header("authorization", format!("Bearer {key}")),
            None => request,
        }
    }

    /// A request with extra headers (and the key, if set); `body` None sends none.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Reply {
        let url = format!("{}{path}", self.base);
        let request = ureq::http::Request::builder().method(method).uri(url);
        let mut request = match &self.key {
            Some(key) => request.header("authorization", format!("Bearer {key}")),
            None => request,
        };
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let bytes = body.map(|b| serde_json::to_vec(b).expect("serialize"));
        let request = request
            .header("content-type", "application/json")
            .body(bytes.unwrap_or_default())
            .expect("build request");
        Self::reply(self.agent.run(request))
    }

    fn reply(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut resp = resp.expect("HTTP request failed at the transport level");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn get(&self, path: &str) -> Reply {
        Self::reply(
            self.auth(self.agent.get(format!("{}{path}", self.base)))
                .call(),
        )
    }

    pub fn delete(&self, path: &str) -> Reply {
        Self::reply(
            self.auth(self.agent.delete(format!("{}{path}", self.base)))
                .call(),
        )
    }

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.post_raw(path, &serde_json::to_vec(body).expect("serialize"))
    }

    pub fn post_raw(&self, path: &str, body: &[u8]) -> Reply {
        Self::reply(
            self.auth(self.agent.post(format!("{}{path}", self.base)))
                .header("content-type", "application/json")
                .send(body),
        )
    }

    /// POST and return the raw response bytes (for binary endpoints).
    pub fn post_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let mut resp = self
            .auth(self.agent.post(format!("{}{path}", self.base)))
            .send_empty()
            .expect("HTTP request failed at the transport level");
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap_or_default();
        (status, bytes)
    }

    /// Polls `GET path` until it answers 200, or panics after `timeout`.
    pub fn wait_ready(&self, path: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(resp) = self.agent.get(format!("{}{path}", self.base)).call()
                && resp.status().as_u16() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}{path} not ready after {timeout:?}",
                self.base
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Asserts an error reply: the status and the JSON error shape every runtime shares.
pub fn assert_error(reply: &Reply, status: u16, kind: &str) {
    assert_eq!(reply.0, status, "unexpected status, body: {}", reply.1);
    assert_eq!(reply.1["error"]["kind"], kind, "body: {}", reply.1);
    assert!(
        reply.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "body: {}",
        reply.1
    );
}
