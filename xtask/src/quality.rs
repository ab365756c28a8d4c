//! Quality gates (docs/quality.md): coverage, the fuzzing campaign and the mutation check.
//!
//! All three are measurements, not part of `cargo xtask test`: each takes from minutes
//! (fuzzing, bounded by its budget) to an hour (mutants), and their numbers are
//! recorded in docs/quality.md. Tools are installed when missing, pinned like the other
//! installs: cargo-llvm-cov and cargo-mutants, the nightly toolchain and its
//! `llvm-tools-preview` (branch coverage is still a nightly-only rustc option).
//!
//! - Coverage builds in its own target directory (`target/coverage`), so the release
//!   build of the test command stays cached. cargo-llvm-cov's `show-env` gives the
//!   environment (a rustc wrapper that instruments only the workspace's crates); plain
//!   `cargo build`/`cargo test` then run under it, and the integration tests start the
//!   instrumented `arrwdb` binary from that target directory, which writes its own
//!   profile, so the host is measured through the real HTTP tests. The edge component
//!   is wasm run by wasmtime inside the host and cannot be measured; it is built as
//!   usual and copied where the tests look for it.
//! - The fuzz campaign runs every target of core/fuzz for a time budget from its
//!   corpus and prints executions, coverage and findings per target.
//! - The mutation check runs cargo-mutants over core's filter evaluator, fusion and
//!   WAL code (`MUTANT_FILES`) against the fast core tests (`MUTANT_TESTS`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{FUZZ_TARGETS, Result, cargo, output, run, step};

const LLVM_COV_VERSION: &str = "0.9.1";
const MUTANTS_VERSION: &str = "27.1.0";

/// The crates whose native code is measured, by source directory.
const COVERED: [(&str, &str); 3] = [
    ("arrwdb-core", "core/src/"),
    ("arrwdb-host", "host/src/"),
    ("arrwdb-edge", "edge-worker/src/"),
];

/// Files of the mutation check: the filter evaluator, fusion and reranking, and the
/// WAL (segment format, record types, storage layout and recovery plans).
const MUTANT_FILES: [&str; 5] = [
    "core/src/filter.rs",
    "core/src/rank.rs",
    "core/src/codec.rs",
    "core/src/command.rs",
    "core/src/storage.rs",
];

/// Test targets each mutant runs: core's unit tests and the integration tests of the
/// mutated code, without the recall measurements of the indexes and the kernel and
/// text checks (minutes each in a debug build, and unrelated to the mutated files).
/// Unit and integration tests left out by name (see `MUTANT_TESTS`).
const MUTANT_SKIPS: [&str; 3] = [
    "kernels::",
    "text::",
    "keyword_and_hybrid_search_find_the_source_document",
];

const MUTANT_TESTS: [&str; 9] = [
    "commands",
    "hybrid",
    "engine",
    "filter",
    "filter_eval",
    "fusion",
    "golden",
    "regressions",
    "wal",
];

/// `cargo <sub>` at `version`, installed (`--locked`) when missing or another version.
fn install_subcommand(sub: &str, krate: &str, version: &str) -> Result {
    let shown = output(Command::new("cargo").args([sub, "--version"])).unwrap_or_default();
    if shown.split_whitespace().nth(1) == Some(version) {
        return Ok(());
    }
    step(&format!("cargo install {krate}@{version}"));
    run(Command::new("cargo").args(["install", krate, "--version", version, "--locked"]))
}

/// The LLVM tools (llvm-profdata, llvm-cov) of the default toolchain, or of nightly
/// (installed by the fuzz step) for branch coverage.
fn install_llvm_tools(nightly: bool) -> Result {
    if nightly {
        crate::install_fuzz_tools()?;
    }
    let toolchain: &[&str] = if nightly {
        &["--toolchain", "nightly"]
    } else {
        &[]
    };
    let installed = output(
        Command::new("rustup")
            .args(["component", "list", "--installed"])
            .args(toolchain),
    )
    .unwrap_or_default();
    if installed.lines().any(|l| l.starts_with("llvm-tools")) {
        return Ok(());
    }
    step(&format!(
        "rustup component add llvm-tools-preview {}",
        toolchain.join(" ")
    ));
    run(Command::new("rustup")
        .args(["component", "add", "llvm-tools-preview"])
        .args(toolchain))
}

/// `KEY='value'` lines of `cargo llvm-cov show-env --sh`.
fn parse_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.strip_prefix("export ")?.split_once('=')?;
            let value = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(value);
            Some((key.to_string(), value.replace("'\\''", "'")))
        })
        .collect()
}

/// `cargo` (`cargo +nightly` for branch coverage) in `root` with the coverage
/// environment.
fn cov_cargo(root: &Path, branch: bool, env: &[(String, String)]) -> Command {
    let mut command = Command::new("cargo");
    command.current_dir(root);
    if branch {
        command.arg("+nightly");
    }
    command.env_remove("CARGO").env_remove("RUSTC");
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command
}

/// Lines and branches (total, missed) per covered crate from llvm-cov's text table:
/// `file regions missed cover functions missed executed lines missed cover branches
/// missed cover`.
fn summarize(report: &str, root: &Path) -> BTreeMap<&'static str, [u64; 4]> {
    let prefix = format!("{}/", root.display());
    let mut sums = BTreeMap::new();
    for line in report.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 13 {
            continue;
        }
        let file = cols[0].strip_prefix(&prefix).unwrap_or(cols[0]);
        let Some((name, _)) = COVERED.iter().find(|(_, dir)| file.starts_with(dir)) else {
            continue;
        };
        let n = |i: usize| cols[i].parse::<u64>().unwrap_or(0);
        let sum: &mut [u64; 4] = sums.entry(*name).or_default();
        for (slot, col) in [7, 8, 10, 11].into_iter().enumerate() {
            sum[slot] += n(col);
        }
    }
    sums
}

fn percent(total: u64, missed: u64) -> String {
    if total == 0 {
        return "-".into();
    }
    format!("{:.1}%", 100.0 * (total - missed) as f64 / total as f64)
}

/// `cargo xtask coverage [--branch] [TEST-ARGS...]`: line (and with `--branch`, branch)
/// coverage of core, host and edge-worker (native code) under the whole workspace's
/// tests. TEST-ARGS go to every test binary (e.g. `--skip durability`).
///
/// Branch coverage needs nightly rustc, so `--branch` builds everything with nightly
/// in `target/coverage-branch`: the first run compiles all dependencies (wasmtime
/// included) again. Without it, the stable toolchain's dependencies are reused when
/// `target/coverage` starts as a copy of `target/release` (see docs/quality.md).
pub fn coverage(root: &Path, extra: &[String]) -> Result {
    let branch = extra.first().map(String::as_str) == Some("--branch");
    let extra = if branch { &extra[1..] } else { extra };
    install_llvm_tools(branch)?;
    install_subcommand("llvm-cov", "cargo-llvm-cov", LLVM_COV_VERSION)?;
    let target = crate::target_dir(root);
    let cov = target.join(if branch {
        "coverage-branch"
    } else {
        "coverage"
    });

    // The component the host runs: not measurable (wasm). The test command's build is
    // copied (built first if missing; `cargo xtask build` refreshes it).
    let wasm = "wasm32-wasip2/release/arrwdb_edge.wasm";
    if !target.join(wasm).exists() {
        crate::build_edge(root)?;
    }
    std::fs::create_dir_all(cov.join("wasm32-wasip2/release"))
        .and_then(|()| std::fs::copy(target.join(wasm), cov.join(wasm)))
        .map_err(|e| format!("copying the edge component: {e}"))?;

    let mut show = cov_cargo(root, branch, &[]);
    show.env("CARGO_TARGET_DIR", &cov)
        .args(["llvm-cov", "show-env", "--sh"]);
    if branch {
        show.arg("--branch");
    }
    let shown = output(&mut show).ok_or("cargo llvm-cov show-env failed")?;
    let mut env = parse_env(&shown);
    env.push(("CARGO_TARGET_DIR".into(), cov.display().to_string()));

    // Earlier profiles would add up with this run's. Workspace crates built without
    // instrumentation (a copied target/release) would look up to date to cargo, so
    // they are removed once, before the first instrumented build.
    let marker = cov.join(".instrumented");
    let clean = if marker.exists() {
        "--profraw-only"
    } else {
        "--workspace"
    };
    step(&format!("cargo llvm-cov clean {clean}"));
    run(cov_cargo(root, branch, &env).args(["llvm-cov", "clean", clean]))?;
    std::fs::write(&marker, "workspace crates here are instrumented\n")
        .map_err(|e| format!("{}: {e}", marker.display()))?;

    // The whole workspace, like the test command's build: cargo resolves features per
    // selection of packages, so building fewer would compile other variants of the
    // dependencies (wasmtime among them) instead of reusing them.
    step("instrumented build of the workspace (the arrwdb binary and every test)");
    run(cov_cargo(root, branch, &env).args([
        "build",
        "--release",
        "--workspace",
        "--all-targets",
    ]))?;
    step("unit, property and end-to-end tests against the instrumented binaries");
    let tested = run(cov_cargo(root, branch, &env)
        .args([
            "test",
            "--release",
            "--workspace",
            "--tests",
            "--no-fail-fast",
            "--",
        ])
        .args(extra));

    step("coverage report (target/coverage/html, target/coverage/summary.txt)");
    let report_args = |command: &mut Command| {
        command.args(["llvm-cov", "report", "--release"]);
        if branch {
            command.arg("--branch");
        }
        command.args(["--ignore-filename-regex", "(/tests/|/xtask/|/wasm/src/)"]);
    };
    let mut html = cov_cargo(root, branch, &env);
    report_args(&mut html);
    run(html.args(["--html", "--output-dir"]).arg(&cov))?;
    let mut text = cov_cargo(root, branch, &env);
    report_args(&mut text);
    let table = output(&mut text).ok_or("cargo llvm-cov report failed")?;
    std::fs::write(cov.join("summary.txt"), &table).map_err(|e| format!("summary.txt: {e}"))?;
    eprintln!("{table}");

    let sums = summarize(&table, root);
    eprintln!("| crate | lines | line coverage | branches | branch coverage |");
    eprintln!("| --- | ---: | ---: | ---: | ---: |");
    for (name, _) in COVERED {
        let [lines, lines_missed, branches, branches_missed] =
            sums.get(name).copied().unwrap_or_default();
        eprintln!(
            "| {name} | {lines} | {} | {branches} | {} |",
            percent(lines, lines_missed),
            percent(branches, branches_missed)
        );
    }
    tested.map_err(|e| format!("coverage measured, but tests failed: {e}"))
}

/// What one fuzz target's run printed.
#[derive(Debug, Default)]
struct FuzzRun {
    executions: u64,
    coverage: String,
    crash: Option<String>,
}

/// Runs one target for `secs`, its output kept in `log`.
fn fuzz_one(dir: &Path, target: &str, secs: u64, log: &Path) -> Result<FuzzRun> {
    let scratch = format!("target/corpus/{target}");
    std::fs::create_dir_all(dir.join(&scratch)).map_err(|e| format!("{scratch}: {e}"))?;
    let mut child = Command::new("cargo")
        .current_dir(dir)
        .args(["+nightly", "fuzz", "run", target, &scratch])
        .arg(format!("corpus/{target}"))
        .args([
            "--",
            &format!("-max_total_time={secs}"),
            "-rss_limit_mb=2048",
            "-timeout=30",
            "-print_final_stats=1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cargo fuzz run {target}: {e}"))?;
    let mut result = FuzzRun::default();
    let mut kept = String::new();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr)
            .lines()
            .map_while(std::io::Result::ok)
        {
            if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
                result.executions = n.trim().parse().unwrap_or(0);
            }
            // libFuzzer's status lines: `#N  REDUCE cov: C ft: F corp: ...`.
            if line.starts_with('#')
                && let Some(at) = line.find("cov:")
            {
                result.coverage = line[at..]
                    .split_whitespace()
                    .take(6)
                    .collect::<Vec<_>>()
                    .join(" ");
            }
            if let Some(path) = line.split("Test unit written to ").nth(1) {
                result.crash = Some(path.trim().to_string());
            }
            kept.push_str(&line);
            kept.push('\n');
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    std::fs::write(log, kept).map_err(|e| format!("{}: {e}", log.display()))?;
    if !status.success() && result.crash.is_none() {
        result.crash = Some(format!("exit {status}, see {}", log.display()));
    }
    Ok(result)
}

/// `cargo xtask fuzz [SECS]`: every fuzz target for SECS seconds each (default 300),
/// from its corpus; prints executions, final coverage and findings per target.
pub fn fuzz_campaign(root: &Path, extra: &[String]) -> Result {
    let secs: u64 = match extra.first() {
        Some(s) => s
            .parse()
            .map_err(|_| format!("fuzz: SECS `{s}` is not a number"))?,
        None => 300,
    };
    crate::install_fuzz_tools()?;
    let dir = root.join("core/fuzz");
    step("cargo +nightly fuzz build (every target)");
    run(Command::new("cargo")
        .current_dir(&dir)
        .args(["+nightly", "fuzz", "build"]))?;
    let logs = dir.join("target/campaign");
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    let mut rows = Vec::new();
    for target in FUZZ_TARGETS {
        step(&format!("fuzz {target} for {secs} s"));
        let result = fuzz_one(&dir, target, secs, &logs.join(format!("{target}.log")))?;
        eprintln!("{target}: {} executions", result.executions);
        rows.push((target, result));
    }
    eprintln!("| target | seconds | executions | exec/s | final coverage | findings |");
    eprintln!("| --- | ---: | ---: | ---: | --- | --- |");
    for (target, r) in &rows {
        eprintln!(
            "| `{target}` | {secs} | {} | {} | {} | {} |",
            r.executions,
            r.executions / secs.max(1),
            r.coverage,
            r.crash.as_deref().unwrap_or("none")
        );
    }
    let crashes: Vec<String> = rows
        .iter()
        .filter_map(|(t, r)| r.crash.as_ref().map(|c| format!("{t}: {c}")))
        .collect();
    if crashes.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fuzzing found crashes (minimise with `cargo +nightly fuzz tmin`, keep under core/fuzz/regressions/): {}",
            crashes.join("; ")
        ))
    }
}

/// `cargo xtask mutants [ARGS...]`: cargo-mutants over `MUTANT_FILES` (or, when ARGS
/// are given, `cargo mutants -p arrwdb-core ARGS`), output in target/mutants.
pub fn mutants(root: &Path, extra: &[String]) -> Result {
    install_subcommand("mutants", "cargo-mutants", MUTANTS_VERSION)?;
    let out = crate::target_dir(root).join("mutants");
    let mut command = cargo(root);
    // One build directory across runs (only core is rebuilt per mutant), without debug
    // info: building is most of a mutant's time.
    command
        .env(
            "CARGO_TARGET_DIR",
            crate::target_dir(root).join("mutants-build"),
        )
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .env("CARGO_PROFILE_TEST_DEBUG", "0");
    // `--gitignore=true`: the copy each run tests in leaves out build output (the fuzz
    // targets' included), which cargo-mutants would otherwise copy.
    command.args([
        "mutants",
        "-p",
        "arrwdb-core",
        "--gitignore=true",
        "--timeout",
        "300",
        "--output",
    ]);
    command.arg(&out);
    if extra.is_empty() {
        for file in MUTANT_FILES {
            command.args(["--file", file]);
        }
    } else {
        command.args(extra);
    }
    // Targets go to every cargo call (`--cargo-arg`), so a mutant builds only the
    // tests that run, not the recall tests' binaries too.
    command.arg("--cargo-arg=--lib");
    for test in MUTANT_TESTS {
        command.arg(format!("--cargo-arg=--test={test}"));
    }
    command.args(["--", "--"]);
    for skip in MUTANT_SKIPS {
        command.args(["--skip", skip]);
    }
    step("cargo mutants (core: filter, fusion, WAL)");
    // Exit code 2 means missed mutants: a finding to report, not a failure to run.
    let status = command
        .status()
        .map_err(|e| format!("cannot start cargo mutants: {e}"))?;
    let outcomes = out.join("mutants.out");
    let count = |name: &str| -> BTreeMap<String, usize> {
        let mut per_file = BTreeMap::new();
        let text = std::fs::read_to_string(outcomes.join(name)).unwrap_or_default();
        for line in text.lines() {
            let file = line.split(':').next().unwrap_or_default().to_string();
            *per_file.entry(file).or_default() += 1;
        }
        per_file
    };
    let kinds = ["caught.txt", "missed.txt", "unviable.txt", "timeout.txt"];
    let tables: Vec<BTreeMap<String, usize>> = kinds.iter().map(|k| count(k)).collect();
    let mut files: Vec<&String> = tables.iter().flat_map(BTreeMap::keys).collect();
    files.sort();
    files.dedup();
    eprintln!("| file | caught | missed | unviable | timeout |");
    eprintln!("| --- | ---: | ---: | ---: | ---: |");
    for file in files {
        let n = |t: &BTreeMap<String, usize>| t.get(file).copied().unwrap_or(0);
        eprintln!(
            "| `{file}` | {} | {} | {} | {} |",
            n(&tables[0]),
            n(&tables[1]),
            n(&tables[2]),
            n(&tables[3])
        );
    }
    eprintln!("missed mutants: {}", outcomes.join("missed.txt").display());
    match status.code() {
        Some(0 | 2 | 3) => Ok(()),
        _ => Err(format!("cargo mutants failed: {status}")),
    }
}
