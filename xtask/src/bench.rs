//! `cargo xtask bench`: arrwDB beside its peers on the same data, in one run
//! (docs/benchmarks.md).

use std::path::Path;
use std::process::Command;

use crate::{Result, cargo, run, step};

/// Python packages of the benchmark's peers (PyPI names).
const BENCH_PEERS: [&str; 4] = ["numpy", "faiss-cpu", "hnswlib", "usearch"];

pub fn bench(root: &Path, extra: &[String]) -> Result {
    let missing = !BENCH_PEERS.iter().all(|p| {
        Command::new("python3")
            .args(["-m", "pip", "show", "-q", p])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if missing {
        step(&format!("pip install {}", BENCH_PEERS.join(" ")));
        run(Command::new("python3")
            .args(["-m", "pip", "install", "-q"])
            .args(BENCH_PEERS))?;
    }
    step("build arrwdb-bench");
    run(cargo(root).args([
        "build",
        "--release",
        "-p",
        "arrwdb-tests",
        "--bin",
        "arrwdb-bench",
    ]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| root.join(d))
        .unwrap_or_else(|| root.join("target"));
    step("benchmark (arrwDB and peers, one thread, same data)");
    run(Command::new("python3")
        .current_dir(root)
        .arg("tests/bench/peers.py")
        .arg("--dataset")
        .arg(root.join("../shared/datasets/pypi-minilm"))
        .arg("--arrwdb")
        .arg(target.join("release/arrwdb-bench"))
        .args(extra))
}
