//! `cargo xtask bench`: arrwDB beside its peers on the same data, in one run
//! (docs/benchmarks.md).
//!
//! Installs what the run needs unless it is there (the Python peers and matplotlib from
//! PyPI, the Node peers from wasm/bench's lock file), builds `arrwdb-bench` and the npm
//! package (and, for tests/bench/runtimes.py, the host and the edge component), then
//! hands over to tests/bench/peers.py, which runs everything else (native arrwDB, the
//! Python peers, wasm in Node and in headless Chromium, the runtimes comparison when
//! present), prints the tables and writes docs/benchmarks/. The arguments after `bench`
//! go to peers.py (`--n`, `--queries`, `--threads`, `--skip
//! arrwdb,peers,node,chromium,runtimes`); `--no-npm` reuses the npm package already in
//! wasm/pkg instead of rebuilding it.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::{Result, cargo, run, step};

/// Python packages of the benchmark's peers and plots (PyPI names).
const BENCH_PACKAGES: [&str; 5] = ["numpy", "faiss-cpu", "hnswlib", "usearch", "matplotlib"];

/// Installs the missing [`BENCH_PACKAGES`] with pip.
fn install_python(packages: &[&str]) -> Result {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("python3")
                .args(["-m", "pip", "show", "-q", p])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(&format!("pip install {}", missing.join(" ")));
    run(Command::new("python3")
        .args(["-m", "pip", "install", "-q"])
        .args(&missing))
}

/// `npm ci` in wasm/bench (hnswlib-wasm, edgevec, voy-search at the locked versions)
/// unless every package is there.
fn install_node(root: &Path) -> Result {
    let dir = root.join("wasm").join("bench");
    let modules = dir.join("node_modules");
    if ["hnswlib-wasm", "edgevec", "voy-search"]
        .iter()
        .all(|p| modules.join(p).join("package.json").exists())
    {
        return Ok(());
    }
    step("npm ci (wasm/bench: hnswlib-wasm, edgevec, voy-search)");
    run(Command::new("npm").current_dir(&dir).args([
        "ci",
        "--no-audit",
        "--no-fund",
        "--prefer-offline",
    ]))
}

pub fn bench(root: &Path, extra: &[String]) -> Result {
    let started = Instant::now();
    let no_npm = extra.iter().any(|a| a == "--no-npm");
    let extra: Vec<&String> = extra.iter().filter(|a| *a != "--no-npm").collect();
    install_python(&BENCH_PACKAGES)?;
    install_node(root)?;
    // browser.mjs drives Debian's Chromium through www's pinned playwright-core.
    crate::npm::install_www(root)?;
    crate::install_rust_targets()?;
    if no_npm && root.join("wasm/pkg/nodejs/index.mjs").exists() {
        step("npm package: reusing wasm/pkg (--no-npm)");
    } else {
        crate::npm_package(root, &[])?;
    }
    let runtimes = root.join("tests/bench/runtimes.py");
    if runtimes.exists() {
        // What runtimes.py runs: the host (`arrwdb bench-engine`), its native runner
        // (`arrwdb-bench-runtimes`) and the edge component.
        crate::build_edge(root)?;
        step("build arrwdb-bench, arrwdb-bench-runtimes and the host");
        run(cargo(root).args([
            "build",
            "--release",
            "-p",
            "arrwdb-host",
            "-p",
            "arrwdb-tests",
        ]))?;
    } else {
        step("build arrwdb-bench");
        run(cargo(root).args([
            "build",
            "--release",
            "-p",
            "arrwdb-tests",
            "--bin",
            "arrwdb-bench",
        ]))?;
    }
    let target = crate::target_dir(root);
    let built = started.elapsed().as_secs_f64();
    step("benchmark (arrwDB, the Python peers, wasm in Node: same data, same run)");
    let mut command = Command::new("python3");
    command
        .current_dir(root)
        .arg("tests/bench/peers.py")
        .arg("--dataset")
        .arg(root.join("../shared/datasets/pypi-minilm"))
        .arg("--arrwdb")
        .arg(target.join("release/arrwdb-bench"))
        .arg("--node-bench")
        .arg(root.join("wasm/bench/node.mjs"))
        .arg("--browser-bench")
        .arg(root.join("wasm/bench/browser.mjs"))
        .arg("--out")
        .arg(root.join("docs/benchmarks"));
    if runtimes.exists() {
        command.arg("--runtimes").arg(runtimes);
    }
    run(command.args(extra))?;
    eprintln!(
        "\ncargo xtask bench: {:.0} s in all ({built:.0} s installing and building)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
