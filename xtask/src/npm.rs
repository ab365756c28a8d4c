//! Builds the `arrwdb` npm package into `wasm/pkg/`.
//!
//! The package holds three wasm-bindgen outputs of one `.wasm` file: `web/` (an ES
//! module with an async `init()`, for browsers and Web Workers), `bundler/` (imports
//! the `.wasm` as an ES module, for webpack/Vite) and `nodejs/` (CommonJS that compiles
//! the wasm synchronously on load). The hand-written package in `wasm/npm/` completes
//! it: `lib/` (the public classes, IndexedDB persistence, replication, the worker), one
//! entry per build, `index.d.ts`, and `package.json`, whose export conditions route
//! `import "arrwdb"` to the Node or the web entry.
//!
//! Size: the `.wasm` is compiled with fat LTO, one codegen unit and `panic = abort`
//! (through `CARGO_PROFILE_RELEASE_*`, in a target directory of its own so the other
//! builds of the workspace keep their profile), with the crate's `compact` feature (same
//! results, smaller tables), then shrunk with `wasm-opt -Oz` from the npm package
//! `binaryen` (pinned in `wasm/tools/`; Debian's binaryen 108 breaks wasm-bindgen
//! output). Where the bytes go: docs/npm.md.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// wasm-bindgen targets, each written to `wasm/pkg/<target>/`.
const BINDGEN_TARGETS: [&str; 3] = ["web", "bundler", "nodejs"];
/// Files copied from `wasm/npm/` to `wasm/pkg/`, after wasm-bindgen has run.
const TEMPLATES: [&str; 16] = [
    "package.json",
    "README.md",
    "index.d.ts",
    "lib/bindings.js",
    "lib/database.js",
    "lib/embed.js",
    "lib/errors.js",
    "lib/follow.js",
    "lib/index.js",
    "lib/persistent.js",
    "lib/worker.js",
    "lib/worker-client.js",
    "web/index.js",
    "bundler/index.js",
    "nodejs/index.mjs",
    "nodejs/package.json",
];
/// Release-profile settings of the package build: small and still fast. `opt-level`
/// stays 3: with the explicit `simd128` distance kernels, `"s"` saves 9.7 % gzipped and
/// `"z"` 16.7 %, but they cost 15–50 % of search speed (the search loops stop being
/// inlined), more than the package allows; docs/npm.md, "`opt-level` again".
const PROFILE: [(&str, &str); 5] = [
    ("CARGO_PROFILE_RELEASE_LTO", "fat"),
    ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1"),
    ("CARGO_PROFILE_RELEASE_PANIC", "abort"),
    ("CARGO_PROFILE_RELEASE_DEBUG", "false"),
    ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3"),
];
/// wasm features the Rust target enables by default (and `+simd128`), for wasm-opt.
const WASM_OPT_FEATURES: [&str; 7] = [
    "--enable-simd",
    "--enable-bulk-memory",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-reference-types",
    "--enable-multivalue",
];

/// Compiles `arrwdb-wasm` for `wasm32-unknown-unknown` (release, `+simd128` from
/// `.cargo/config.toml`, the size settings of [`PROFILE`]), runs `wasm_bindgen` (the
/// CLI, whose version must equal the `wasm-bindgen` crate's) for the three targets,
/// shrinks each `.wasm` with `wasm-opt -Oz`, and lays out `wasm/pkg/` with the files of
/// `wasm/npm/`. Prints the sizes.
///
/// # Errors
/// A message naming the step that failed: a command that could not start or exited
/// unsuccessfully, or a file that could not be written.
pub fn build(root: &Path, wasm_bindgen: &Path) -> Result<(), String> {
    install_tools(root)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = root.join("target").join("npm");
    let mut compile = Command::new(cargo);
    compile
        .current_dir(root)
        .envs(PROFILE)
        .args([
            "build",
            "--release",
            "--package",
            "arrwdb-wasm",
            "--features",
            "compact",
            "--target",
            WASM_TARGET,
            "--target-dir",
        ])
        .arg(&target_dir);
    run(&mut compile)?;

    let wasm = target_dir
        .join(WASM_TARGET)
        .join("release")
        .join("arrwdb_wasm.wasm");
    let pkg = root.join("wasm").join("pkg");
    // Start clean so files of an older build never ship.
    if pkg.exists() {
        fs::remove_dir_all(&pkg).map_err(|e| format!("removing {}: {e}", pkg.display()))?;
    }
    let wasm_opt = wasm_opt(root);
    // wasm-opt takes most of the build: targets whose wasm-bindgen output is the same
    // bytes share one run.
    let mut optimized: Vec<(Vec<u8>, PathBuf)> = Vec::new();
    for target in BINDGEN_TARGETS {
        let out = pkg.join(target);
        let mut bindgen = Command::new(wasm_bindgen);
        bindgen
            .arg("--target")
            .arg(target)
            .arg("--out-dir")
            .arg(&out)
            .arg(&wasm);
        run(&mut bindgen)?;
        let file = out.join("arrwdb_wasm_bg.wasm");
        let bytes = fs::read(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
        if let Some((_, done)) = optimized.iter().find(|(b, _)| *b == bytes) {
            fs::copy(done, &file).map_err(|e| format!("copying {}: {e}", done.display()))?;
            continue;
        }
        let mut opt = Command::new(&wasm_opt);
        opt.arg("-Oz")
            .args(WASM_OPT_FEATURES)
            .args(["--strip-debug", "--strip-producers"])
            .arg(&file)
            .arg("-o")
            .arg(&file);
        run(&mut opt)?;
        optimized.push((bytes, file));
    }

    let npm = root.join("wasm").join("npm");
    for file in TEMPLATES {
        let (from, to) = (npm.join(file), pkg.join(file));
        if let Some(dir) = to.parent() {
            fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        fs::copy(&from, &to)
            .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))?;
    }
    run(Command::new("node")
        .arg(root.join("wasm").join("tools").join("sizes.mjs"))
        .arg(&pkg))
}

/// `wasm-opt` of the pinned npm package `binaryen` in `wasm/tools/`.
fn wasm_opt(root: &Path) -> PathBuf {
    root.join("wasm")
        .join("tools")
        .join("node_modules")
        .join(".bin")
        .join("wasm-opt")
}

/// Installs the package's pinned build and test tools (`npm ci` in `wasm/tools/`:
/// binaryen's wasm-opt, fake-indexeddb and TypeScript for the Node tests) unless
/// already there.
///
/// # Errors
/// A message if `npm` cannot start or fails.
pub fn install_tools(root: &Path) -> Result<(), String> {
    let tools = root.join("wasm").join("tools");
    let modules = tools.join("node_modules");
    if wasm_opt(root).exists()
        && modules.join("fake-indexeddb").exists()
        && modules.join(".bin").join("tsc").exists()
    {
        return Ok(());
    }
    run(Command::new("npm")
        .current_dir(&tools)
        .args(["ci", "--no-audit", "--no-fund"]))
}

/// The `node --test` files of the npm package and of the web pages. The page tests need
/// `www/node_modules` (see [`install_www`]) and Chromium at `/usr/bin/chromium`; all
/// need [`build`] first, and the replication and host-console tests need the host binary
/// (`target/release/arrwdb`).
pub fn node_test_files(root: &Path) -> Vec<PathBuf> {
    vec![
        root.join("wasm").join("tests").join("database.test.mjs"),
        root.join("wasm").join("tests").join("api.test.mjs"),
        root.join("wasm").join("tests").join("persistent.test.mjs"),
        root.join("wasm").join("tests").join("types.test.mjs"),
        root.join("wasm").join("tests").join("embed.test.mjs"),
        root.join("www").join("tests").join("page.test.mjs"),
        root.join("www").join("tests").join("sample.test.mjs"),
        root.join("www").join("tests").join("browser.test.mjs"),
        root.join("www").join("tests").join("local.test.mjs"),
        root.join("www").join("tests").join("console-host.test.mjs"),
    ]
}

/// Installs the web page's pinned test dependencies (`npm ci` in `www/`, from the
/// committed lock file) and the package's tools ([`install_tools`]) unless they are
/// already there.
///
/// # Errors
/// A message if `npm` cannot start or fails.
pub fn install_www(root: &Path) -> Result<(), String> {
    install_tools(root)?;
    let www = root.join("www");
    if www.join("node_modules").join("playwright-core").exists() {
        return Ok(());
    }
    run(Command::new("npm")
        .current_dir(&www)
        .args(["ci", "--no-audit", "--no-fund"]))
}

fn run(command: &mut Command) -> Result<(), String> {
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
