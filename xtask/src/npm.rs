//! Builds the `arrwdb` npm package into `wasm/pkg/`.
//!
//! The package holds two wasm-bindgen outputs of the same `.wasm` file: `web/` (an ES
//! module with an async `init()`, for browsers and bundlers) and `nodejs/` (CommonJS
//! that compiles the wasm synchronously on load). The committed templates in
//! `wasm/npm/` complete it: `package.json` routes `import "arrwdb"` through export
//! conditions, and because that package is `"type": "module"`, `nodejs/package.json`
//! marks wasm-bindgen's Node output as CommonJS while `nodejs/arrwdb.mjs` re-exports it
//! for `import` with no-op `init`/`initSync`, so browser code runs unchanged in Node.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// wasm-bindgen targets, each written to `wasm/pkg/<target>/`.
const BINDGEN_TARGETS: [&str; 2] = ["web", "nodejs"];
/// Files copied from `wasm/npm/` to `wasm/pkg/`, after wasm-bindgen has run.
const TEMPLATES: [&str; 4] = [
    "package.json",
    "README.md",
    "nodejs/package.json",
    "nodejs/arrwdb.mjs",
];

/// Compiles `arrwdb-wasm` for `wasm32-unknown-unknown` (release, with the `+simd128`
/// from `.cargo/config.toml`), runs `wasm_bindgen` (the CLI, whose version must equal
/// the `wasm-bindgen` crate's) for the web and Node targets, and lays out `wasm/pkg/`
/// with the templates of `wasm/npm/`.
///
/// # Errors
/// A message naming the step that failed: a command that could not start or exited
/// unsuccessfully, or a file that could not be written.
pub fn build(root: &Path, wasm_bindgen: &Path) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut compile = Command::new(cargo);
    compile.current_dir(root).args([
        "build",
        "--release",
        "--package",
        "arrwdb-wasm",
        "--target",
        WASM_TARGET,
    ]);
    run(&mut compile)?;

    let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    let wasm = target_dir
        .join(WASM_TARGET)
        .join("release")
        .join("arrwdb_wasm.wasm");
    let pkg = root.join("wasm").join("pkg");
    for target in BINDGEN_TARGETS {
        let out = pkg.join(target);
        // Start clean so files of an older build never ship.
        if out.exists() {
            fs::remove_dir_all(&out).map_err(|e| format!("removing {}: {e}", out.display()))?;
        }
        let mut bindgen = Command::new(wasm_bindgen);
        bindgen
            .arg("--target")
            .arg(target)
            .arg("--out-dir")
            .arg(&out)
            .arg(&wasm);
        run(&mut bindgen)?;
    }

    let npm = root.join("wasm").join("npm");
    for file in TEMPLATES {
        let (from, to) = (npm.join(file), pkg.join(file));
        fs::copy(&from, &to)
            .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))?;
    }
    Ok(())
}

/// The `node --test` files of the npm package and of the web page. The page test needs
/// `www/node_modules` (see [`install_www`]) and Chromium at `/usr/bin/chromium`; both
/// need [`build`] first.
pub fn node_test_files(root: &Path) -> Vec<PathBuf> {
    vec![
        root.join("wasm").join("tests").join("database.test.mjs"),
        root.join("www").join("tests").join("page.test.mjs"),
    ]
}

/// Installs the web page's pinned test dependencies (`npm ci` in `www/`, from the
/// committed lock file) unless they are already there.
///
/// # Errors
/// A message if `npm` cannot start or fails.
pub fn install_www(root: &Path) -> Result<(), String> {
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
