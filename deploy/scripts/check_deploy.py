#!/usr/bin/env python3
"""Checks of the deployment files that no off-the-shelf validator does, run by
`cargo xtask test` (xtask/src/deploy.rs) beside the real validators.

  check_deploy.py monitoring [--metrics F] [--rules F ...] [--dashboard F ...]
      Every PromQL expression of the alert rules and the Grafana dashboards parses
      (promql-parser, the Rust PromQL parser), names only metrics listed in
      deploy/monitoring/metrics.txt (histograms by base name), and every listed metric
      is shown on the dashboard. The dashboard's structure is checked too.
  check_deploy.py helm OUTDIR
      Lints the chart with Helm's own library (helm-python-sdk: Helm v4's Go SDK, no
      helm binary here), renders it for several value sets into OUTDIR/*.yaml (for
      kubernetes-validate), checks the ServiceMonitor (a CRD: no schema ships for it),
      and checks that the default render holds the same objects as deploy/k8s/.

Exits non-zero with one line per problem.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent.parent
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Grafana's variables, replaced by something PromQL accepts before parsing.
GRAFANA_VARIABLES = [
    (re.compile(r"\$__rate_interval|\$__interval|\$\{__rate_interval\}"), "5m"),
    (re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(:[a-z]+)?\}?"), ".*"),
]
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<expr>.+),\s*)?(?P<label>[A-Za-z_]\w*)\)$")


def load_contract(path):
    names, problems = [], []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not re.fullmatch(r"arrwdb_[a-z0-9_]+", line):
            problems.append(f"{path}:{number}: `{line}` is not a metric name")
        elif line in names:
            problems.append(f"{path}:{number}: `{line}` is listed twice")
        else:
            names.append(line)
    return set(names), problems


def metric_names(expr):
    """The metric names an expression selects; raises ValueError if it does not parse."""
    import promql_parser

    for pattern, replacement in GRAFANA_VARIABLES:
        expr = pattern.sub(replacement, expr)
    ast = promql_parser.parse(expr)
    names = []

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            name = node.name
            if not name:
                for matcher in node.matchers.matchers:
                    if matcher.name == "__name__":
                        name = matcher.value
            if not name:
                raise ValueError("a selector without a metric name")
            names.append(name)
        return True

    promql_parser.walk(ast, visit)
    return names


def contract_problems(where, expr, contract, used):
    try:
        names = metric_names(expr)
    except ValueError as e:
        return [f"{where}: PromQL does not parse: {e}: {expr}"]
    problems = []
    for name in names:
        base = name
        if name not in contract:
            base = next(
                (name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), name
            )
        if base in contract:
            used.add(base)
        else:
            problems.append(f"{where}: `{name}` is not in metrics.txt")
    if not names:
        problems.append(f"{where}: names no metric: {expr}")
    return problems


def check_rules(path, contract, used):
    doc = yaml.safe_load(Path(path).read_text())
    problems = []
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record")
            problems += contract_problems(f"{path}: rule {name}", str(rule["expr"]), contract, used)
    return problems


def dashboard_panels(panels):
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))


def check_dashboard(path, contract, used):
    doc = json.loads(Path(path).read_text())
    problems = []
    for key in ("uid", "title", "panels", "schemaVersion"):
        if key not in doc:
            problems.append(f"{path}: no `{key}`")
    ids = set()
    for panel in dashboard_panels(doc.get("panels", [])):
        where = f"{path}: panel {panel.get('id')} `{panel.get('title')}`"
        if panel.get("id") in ids:
            problems.append(f"{where}: id used twice")
        ids.add(panel.get("id"))
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in "xywh") or grid["x"] + grid["w"] > 24:
            problems.append(f"{where}: gridPos must hold integers x, y, w, h within 24 columns")
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"{where}: no query")
        ref_ids = [t.get("refId") for t in targets]
        if len(set(ref_ids)) != len(ref_ids) or None in ref_ids:
            problems.append(f"{where}: refIds must be present and distinct")
        if "datasource" not in panel:
            problems.append(f"{where}: no datasource")
        for target in targets:
            if not target.get("expr"):
                problems.append(f"{where}: target {target.get('refId')} has no expr")
                continue
            problems += contract_problems(where, target["expr"], contract, used)
    for variable in doc.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        match = LABEL_VALUES.match(str(query))
        where = f"{path}: variable `{variable.get('name')}`"
        if not match or not match.group("expr"):
            problems.append(f"{where}: expected label_values(METRIC, label), got {query}")
        else:
            problems += contract_problems(where, match.group("expr"), contract, used)
    return problems


def monitoring(args):
    metrics = args.metrics or DEPLOY / "monitoring/metrics.txt"
    rules = args.rules or [DEPLOY / "monitoring/alerts.yml"]
    dashboards = args.dashboard or sorted((DEPLOY / "monitoring/grafana/dashboards").glob("*.json"))
    contract, problems = load_contract(metrics)
    used_by_rules, used_by_dashboards = set(), set()
    for path in rules:
        problems += check_rules(path, contract, used_by_rules)
    for path in dashboards:
        problems += check_dashboard(path, contract, used_by_dashboards)
    for name in sorted(contract - used_by_dashboards):
        problems.append(f"{metrics}: `{name}` is on no dashboard panel")
    if not problems:
        print(
            f"monitoring: {len(contract)} metrics in the contract; rules use "
            f"{len(used_by_rules)}, dashboards use {len(used_by_dashboards)}; all parse"
        )
    return problems


# Value sets the chart is rendered with; each render is validated against the schemas.
HELM_SCENARIOS = {
    "default": {},
    "everything": {
        "ingress": {"enabled": True, "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "64m"}},
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "credentials": {"existingSecret": "my-s3"},
        "storage": {"url": "s3://bucket/prefix", "endpoint": "https://s3.example.com"},
        "imagePullSecrets": [{"name": "registry"}],
        "writer": {"nodeSelector": {"disk": "ssd"}, "tolerations": [{"key": "db", "operator": "Exists"}]},
    },
    "fixed-replicas": {"replicas": {"autoscaling": {"enabled": False}, "count": 3}, "networkPolicy": {"enabled": False}},
    "writer-only": {"replicas": {"enabled": False}},
}


# Value sets the chart must refuse (values.schema.json, `required`).
HELM_REFUSED = {
    "replica count as text": {"replicas": {"count": "three"}},
    "no storage url": {"storage": {"url": ""}},
    "in-memory storage": {"storage": {"url": "memory://"}},
    "bad scrape interval": {"serviceMonitor": {"enabled": True, "interval": "often"}},
}


def check_service_monitor(where, doc):
    problems = []
    spec = doc.get("spec", {})
    if not spec.get("selector", {}).get("matchLabels"):
        problems.append(f"{where}: ServiceMonitor needs spec.selector.matchLabels")
    endpoints = spec.get("endpoints") or []
    if not endpoints:
        problems.append(f"{where}: ServiceMonitor needs spec.endpoints")
    for endpoint in endpoints:
        if endpoint.get("port") != "http" or endpoint.get("path") != "/metrics":
            problems.append(f"{where}: ServiceMonitor endpoint must scrape port `http`, path /metrics")
        if not re.fullmatch(r"(\d+(ms|s|m|h))+", str(endpoint.get("interval", "30s"))):
            problems.append(f"{where}: ServiceMonitor interval `{endpoint.get('interval')}` is not a duration")
    return problems


def object_keys(docs):
    keys = set()
    for doc in docs:
        labels = doc.get("metadata", {}).get("labels", {})
        keys.add((doc["kind"], labels.get("app.kubernetes.io/component", "")))
    return keys


def helm(args):
    import helm_python

    chart_dir = DEPLOY / "helm/arrwdb"
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    problems = []
    report = helm_python.lint(str(chart_dir), strict=True)
    for message in report.get("messages", []):
        if message.get("severity", 0) >= 2:
            problems.append(f"helm lint: {message.get('path')}: {message.get('error')}")
    problems += [f"helm lint: {e}" for e in report.get("errors", [])]
    rendered = {}
    with helm_python.Chart.load(str(chart_dir)) as chart:
        for scenario, values in HELM_SCENARIOS.items():
            try:
                files = chart.render(values, name="arrwdb", namespace="arrwdb", is_install=True)
            except Exception as e:  # HelmRenderError, HelmValuesError
                problems.append(f"helm render {scenario}: {e}")
                continue
            text = "\n---\n".join(
                body for path, body in sorted(files.items()) if path.endswith(".yaml") and body.strip()
            )
            docs = [d for d in yaml.safe_load_all(text) if d]
            rendered[scenario] = docs
            (out / f"{scenario}.yaml").write_text(text + "\n")
            for doc in docs:
                if doc.get("kind") == "ServiceMonitor":
                    problems += check_service_monitor(f"helm render {scenario}", doc)
        for case, values in HELM_REFUSED.items():
            try:
                chart.render(values, name="arrwdb", namespace="arrwdb", is_install=True)
                problems.append(f"helm render accepted bad values ({case}): {values}")
            except Exception:  # HelmValuesError / HelmRenderError: refused, as it should be
                pass
    if "default" in rendered:
        plain = []
        for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
            plain += [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] != "Namespace"]
        want, got = object_keys(plain), object_keys(rendered["default"])
        if want != got:
            problems.append(
                f"helm default render and deploy/k8s differ: only in k8s {sorted(want - got)}, "
                f"only in the chart {sorted(got - want)}"
            )
        for doc in rendered["default"]:
            if doc["kind"] == "Deployment" and doc["metadata"]["labels"].get("app.kubernetes.io/component") == "writer":
                if doc["spec"].get("replicas") != 1 or doc["spec"].get("strategy", {}).get("type") != "Recreate":
                    problems.append("helm: the writer must have 1 replica and the Recreate strategy")
    kinds = sorted({d["kind"] for docs in rendered.values() for d in docs})
    if not problems:
        print(
            f"helm: lint clean; {len(rendered)} renders ({', '.join(kinds)}) in {out}; "
            f"{len(HELM_REFUSED)} bad value sets refused"
        )
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    mon = sub.add_parser("monitoring")
    mon.add_argument("--metrics", type=Path)
    mon.add_argument("--rules", type=Path, action="append")
    mon.add_argument("--dashboard", type=Path, action="append")
    hlm = sub.add_parser("helm")
    hlm.add_argument("outdir")
    args = parser.parse_args()
    problems = monitoring(args) if args.command == "monitoring" else helm(args)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
