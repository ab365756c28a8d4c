"""The runtime half of `cargo xtask bench`: the same engine natively, in wasmtime and in
Node, on the pypi-minilm dataset, in one run.

Three sections, one JSON line per measurement on stdout, a table on stderr:

- ``wasmtime``: per-query latency of the engine component in wasmtime (``arrwdb
  bench-engine``: in process, no HTTP) against the same calls on ``arrwdb_core::Engine``
  natively (``arrwdb-bench-runtimes run``), and the npm package in Node
  (wasm/bench/coldstart.mjs), on the very same index (one snapshot, built natively,
  loaded by each runtime). ``ratio`` = thread CPU time per query / native's in the same
  round, median of 3 rounds (target: wasmtime <= 1.3); CPU time, because other
  processes sharing the cores inflate wall time. Wall-clock ratios (mean and median of
  each query's fastest of 3 passes) are beside it, and recall@10 beside every row.
- ``cold_start``: time to a first answer from the snapshot file (read it, restore it,
  answer one query) in each runtime, against the raw read of the same bytes (the page
  cache is warm: the file was just written and read). ``ratio`` = cold_ms / raw read
  (target: <= 2). The runtime's own start (wasm compile/instantiate, module import) is
  reported beside it as ``init_ms`` and is not in the ratio.
- ``ingest``: durable vectors/s through ``POST /v1/libraries/{lib}/documents/stream`` of
  ``arrwdb serve`` to a local directory (fsync on) and to SeaweedFS (``weed mini``, S3).
  The response's summary line comes after the last batch is durable (each batch of 256
  goes through group commit before the next is read), so wall time to the summary is
  the durable time.

Needs built binaries (see docs/benchmarks/runtimes.md):
  cargo build --release -p arrwdb-host -p arrwdb-tests
  cargo build --release -p arrwdb-edge --target wasm32-wasip2
  cargo xtask npm          (wasm/pkg, for the Node rows)
and `weed` on PATH for the SeaweedFS row (installed by `cargo xtask test`).

Usage: python3 tests/bench/runtimes.py --dataset DIR --n N --queries Q
           [--bin-dir target/release] [--only wasmtime,cold_start,ingest]
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# The dataset readers are peers.py's (this directory is on sys.path when run as a script).
from peers import K, fvecs, ivecs  # noqa: E402
ROOT = Path(__file__).resolve().parents[2]
HNSW_PARAMS = {"ef": 64}
# Flat search reads every vector: at n = 100k a query takes ~40 ms natively, so the
# flat rows time fewer queries to keep the run short.
FLAT_QUERIES = 50
# Rounds: fresh processes per runtime (cold start: the median; latency ratio: the median
# of the per-round ratios).
COLD_RUNS = 3


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def ground_truth(dataset, n, queries):
    """Exact top-10 by inner product: the published file for the whole set, else numpy."""
    base_rows = os.path.getsize(dataset / "base.fvecs") // (4 + 4 * 384)
    if n >= base_rows:
        return [list(map(int, row)) for row in ivecs(dataset / "groundtruth.ivecs", queries)]
    base = fvecs(dataset / "base.fvecs", n)
    q = fvecs(dataset / "queries.fvecs", queries)
    scores = q @ base.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    return [list(map(int, row)) for row in top]


def recall(found, truth):
    hits = sum(len(set(f[:K]) & set(t[:K])) for f, t in zip(found, truth))
    return hits / (len(found) * K)


def run_json(cmd, cwd=None, env=None):
    """Runs a command that prints one JSON line (its last line) and returns it parsed."""
    out = subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def emit(row):
    print(json.dumps(row), flush=True)
    return row


def percentile(values, p):
    ordered = sorted(values)
    return ordered[round((len(ordered) - 1) * p)]


# ---------------------------------------------------------------------------------------
# wasmtime and cold start: one snapshot per index, loaded by every runtime


def cache_path(args, paths, index):
    """Where `--cache` keeps a built snapshot: keyed by index, n and the native binary's
    modification time, so a rebuilt engine builds again."""
    if args.cache is None:
        return None
    stamp = int(os.path.getmtime(paths["native"]))
    return args.cache.resolve() / f"{index}-n{args.n}-{stamp}.snap"


def runtimes(args, paths, work, truth):
    rows = []
    dataset = str(args.dataset)
    for index in ["hnsw", "flat"]:
        snapshot = work / f"{index}.snap"
        cached = cache_path(args, paths, index)
        if cached and cached.exists():
            log(f"==> {index}: reusing {cached} (--cache)")
            shutil.copyfile(cached, snapshot)
            built = {"build_s": None, "bytes": snapshot.stat().st_size}
        else:
            log(f"==> build {index} natively over n={args.n} and write its snapshot")
            built = run_json([paths["native"], "build", "--dataset", dataset, "--n", str(args.n),
                              "--index", index, "--out", str(snapshot)])
            log(f"    {built['build_s']:.1f} s, snapshot {built['bytes'] / 1e6:.1f} MB")
            if cached:
                cached.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(snapshot, cached)
        queries = args.queries if index == "hnsw" else min(args.queries, FLAT_QUERIES)
        params = json.dumps(HNSW_PARAMS if index == "hnsw" else {})
        # The baseline: one read of the whole file into fresh memory in a fresh process (as
        # each runtime does it), page cache warm; the median of 5 such processes.
        raw_ms = statistics.median(
            run_json([paths["native"], "read", "--snapshot", str(snapshot), "--repeat", "1"])["read_ms"][0]
            for _ in range(5))
        runners = {"native": [paths["native"], "run"]}
        if paths.get("host"):
            runners["wasmtime"] = [paths["host"], "bench-engine", "--component", paths["component"]]
        if paths.get("node"):
            runners["node"] = [paths["node"], str(ROOT / "wasm/bench/coldstart.mjs"), "--pkg", paths["pkg"]]
        # COLD_RUNS rounds; in each, every runtime runs once as a fresh process (native,
        # wasmtime, node, native, ...), so that each round's runs share a time window
        # and the per-round ratios pair like with like on a machine others also use.
        runs = {runtime: [] for runtime in runners}
        for round_ in range(COLD_RUNS):
            for runtime, cmd in runners.items():
                if runtime != "native" and runtime in runs and runs[runtime] is None:
                    continue
                log(f"==> {index}: {runtime} ({' '.join(Path(c).name for c in cmd[:2])}), "
                    f"round {round_ + 1}/{COLD_RUNS}")
                try:
                    runs[runtime].append(run_json(cmd + ["--snapshot", str(snapshot), "--dataset", dataset,
                                                         "--params", params, "--queries", str(queries)]))
                except (subprocess.CalledProcessError, ValueError, IndexError) as e:
                    if runtime == "native":
                        raise
                    log(f"    {runtime} failed ({e}): its rows are skipped")
                    runs[runtime] = None
        runs = {runtime: r for runtime, r in runs.items() if r}
        native = runs["native"]
        search = f"ef={HNSW_PARAMS['ef']}" if index == "hnsw" else "exact"

        def paired(runtime, value):
            """Median over rounds of this runtime's value / native's in the same round."""
            ratios = [value(r) / value(n) for r, n in zip(runs[runtime], native) if value(r) and value(n)]
            return statistics.median(ratios) if ratios else None

        cpu = lambda run: run.get("cpu_ms_per_query")  # noqa: E731
        wall_mean = lambda run: statistics.mean(run["latencies_ms"])  # noqa: E731
        wall_p50 = lambda run: percentile(run["latencies_ms"], 0.5)  # noqa: E731
        for runtime, rounds in runs.items():
            # The round with the median CPU time stands for the runtime's latencies.
            r = sorted(rounds, key=lambda run: cpu(run) or wall_mean(run))[len(rounds) // 2]
            lat = r["latencies_ms"]
            ratio = paired(runtime, cpu) or paired(runtime, wall_mean)
            rows.append(emit({
                "section": "wasmtime", "runtime": runtime, "index": index,
                "build": "M=16 efC=200" if index == "hnsw" else "", "search": search,
                "n": args.n, "queries": len(lat), "rounds": len(rounds),
                "mean_ms": statistics.mean(lat), "p50_ms": percentile(lat, 0.5), "p99_ms": percentile(lat, 0.99),
                "recall10": recall(r["ids"], truth[: len(lat)]),
                "cpu_ms_per_query": cpu(r),
                # Thread CPU time per query against native's in the same round (robust to
                # other processes taking the cores), median over rounds; wall-clock beside.
                "ratio": ratio, "ratio_per_round": [cpu(a) / cpu(b) for a, b in zip(rounds, native)
                                                    if cpu(a) and cpu(b)],
                "wall_mean_ratio": paired(runtime, wall_mean), "wall_p50_ratio": paired(runtime, wall_p50),
                "target": 1.3 if runtime == "wasmtime" else None,
            }))
        for runtime, rounds in runs.items():
            r = sorted(rounds, key=lambda run: run["cold_ms"])[len(rounds) // 2]
            rows.append(emit({
                "section": "cold_start", "runtime": "edge component (wasmtime)" if runtime == "wasmtime" else runtime,
                "index": index, "n": args.n, "snapshot_bytes": built["bytes"],
                "raw_read_ms": raw_ms, "read_ms": r["read_ms"], "restore_ms": r["restore_ms"],
                "first_query_ms": r["first_query_ms"], "cold_ms": r["cold_ms"],
                "init_ms": r.get("init_ms", 0.0), "compile_ms": r.get("compile_ms"),
                "ratio": r["cold_ms"] / raw_ms, "target": 2.0, "runs": len(rounds),
                "cold_ms_all": [run["cold_ms"] for run in rounds],
                "first_answer_correct": all(run["ids"][0] == native[0]["ids"][0] for run in rounds),
            }))
        snapshot.unlink(missing_ok=True)
    return rows


# ---------------------------------------------------------------------------------------
# ingest: arrwdb serve, local directory and SeaweedFS


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, timeout=600):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"content-type": "application/json"}
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def wait_until(what, check, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready after {timeout} s")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Seaweed:
    """`weed mini` on 127.0.0.1 with one bucket, as tests/it/support/s3.rs starts it."""

    ACCESS, SECRET, BUCKET = "arrwdb-bench", "arrwdb-bench-secret", "arrwdb"

    def __init__(self, weed, work):
        self.dir = Path(tempfile.mkdtemp(prefix="weed-", dir=work))
        data = self.dir / "data"
        data.mkdir()
        self.s3, filer = free_port(), free_port()
        cmd = [weed, f"-logdir={self.dir}", "mini", f"-dir={data}", "-ip=127.0.0.1",
               "-ip.bind=127.0.0.1", f"-s3.port={self.s3}", f"-filer.port={filer}"]
        for name in ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
                     "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc"]:
            cmd.append(f"-{name}={free_port()}")
        cmd += ["-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
                "-master.telemetry=false", f"-bucket={self.BUCKET}"]
        env = dict(os.environ, AWS_ACCESS_KEY_ID=self.ACCESS, AWS_SECRET_ACCESS_KEY=self.SECRET)
        self.out = open(self.dir / "weed.out", "wb")
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT)

        def ready():
            conn = http.client.HTTPConnection("127.0.0.1", filer, timeout=5)
            conn.request("GET", f"/buckets/{self.BUCKET}/", headers={"accept": "application/json"})
            ok = conn.getresponse().status == 200
            conn.close()
            if not ok:
                return False
            conn = http.client.HTTPConnection("127.0.0.1", self.s3, timeout=5)
            conn.request("GET", "/")
            conn.getresponse()
            conn.close()
            return True

        wait_until("weed mini", ready, self.proc, 90)

    def env(self):
        return {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.s3}", "AWS_ACCESS_KEY_ID": self.ACCESS,
                "AWS_SECRET_ACCESS_KEY": self.SECRET, "AWS_REGION": "us-east-1"}

    def close(self):
        stop(self.proc)
        self.out.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_server(paths, work, storage, env):
    """`arrwdb serve` on a free port; returns (process, port, log path) once /ready is 200."""
    port = free_port()
    log_path = work / f"serve-{port}.log"
    with open(log_path, "wb") as server_log:
        proc = subprocess.Popen([paths["host"], "serve", "--addr", f"127.0.0.1:{port}", "--storage", storage,
                                 "--component", paths["component"]],
                                env=env, stdin=subprocess.DEVNULL, stdout=server_log, stderr=subprocess.STDOUT)
    try:
        wait_until("arrwdb serve", lambda: request(port, "GET", "/ready", timeout=5)[0] == 200, proc, 300)
    except Exception:
        proc.kill()
        proc.wait()
        log(log_path.read_text(errors="replace")[-3000:])
        raise
    return proc, port, log_path


def ingest_one(args, paths, work, body, target, storage, extra_env):
    env = dict(os.environ, ARRWDB_NO_AUTH="true", ARRWDB_WRITE_RATE="0", ARRWDB_SEARCH_RATE="0",
               RUST_LOG="warn", **extra_env)
    env.pop("ARRWDB_CONFIG", None)
    if not args.ingest_snapshots:
        # Durability comes from the WAL (group commit); background snapshots only bound
        # recovery time. Deferred here: see docs/benchmarks/runtimes.md (snapshots over
        # 128 MiB fail in the host at the time of writing).
        env.update(ARRWDB_SNAPSHOT_EVERY_RECORDS=str(10**12), ARRWDB_SNAPSHOT_EVERY_BYTES=str(10**15))
    proc, port, log_path = start_server(paths, work, storage, env)
    try:
        status, data = request(port, "POST", "/v1/libraries", {
            "name": "ingest", "dimension": 384, "metric": "dot", "index": {"type": args.ingest_index}})
        if status != 201:
            raise RuntimeError(f"create library: {status} {data[:300]!r}")
        size = os.path.getsize(body)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
        started = time.perf_counter()
        with open(body, "rb") as f:
            conn.request("POST", "/v1/libraries/ingest/documents/stream", body=f,
                         headers={"content-type": "application/x-ndjson", "content-length": str(size)})
            resp = conn.getresponse()
            last = b""
            failed_lines = 0
            for line in resp:
                if line.strip():
                    if b'"error"' in line and b'"line"' in line:
                        failed_lines += 1
                    last = line
        seconds = time.perf_counter() - started
        conn.close()
        if resp.status != 200:
            raise RuntimeError(f"stream: HTTP {resp.status} {last[:300]!r}")
        summary = json.loads(last)
        if summary.get("upserted") != args.n or summary.get("failed") or failed_lines:
            raise RuntimeError(f"ingest incomplete: {summary}")
    except Exception:
        log(log_path.read_text(errors="replace")[-3000:])
        raise
    finally:
        # SIGKILL: no shutdown snapshot; what the restart finds is what was acknowledged.
        proc.kill()
        proc.wait()
    # Durable: a fresh process on the same storage must hold every acknowledged vector.
    recovery_started = time.perf_counter()
    proc, port, log_path = start_server(paths, work, storage, env)
    try:
        recovery_s = time.perf_counter() - recovery_started
        status, info = request(port, "GET", "/v1/libraries/ingest")
        recovered = json.loads(info).get("documents") if status == 200 else None
        if recovered != args.n:
            raise RuntimeError(f"after a crash and restart the library holds {recovered} documents, not {args.n}")
    finally:
        proc.kill()
        proc.wait()
    return emit({
        "section": "ingest", "target": target, "index": args.ingest_index, "n": args.n,
        "seconds": seconds, "vectors_per_s": args.n / seconds, "mb_per_s": size / seconds / 1e6,
        "body_bytes": size, "upserted": summary["upserted"], "server_took_ms": summary.get("took_ms"),
        "background_snapshots": bool(args.ingest_snapshots),
        "recovered_after_kill": recovered, "restart_to_ready_s": recovery_s,
    })


def ingest(args, paths, work):
    body = work / "ingest.ndjson"
    log(f"==> ingest: writing {args.n} documents as NDJSON (not timed)")
    run_json([paths["native"], "ndjson", "--dataset", str(args.dataset), "--n", str(args.n),
              "--out", str(body)])
    rows = []
    log("==> ingest: arrwdb serve --storage <local dir> (fsync on)")
    local = work / "ingest-local"
    rows.append(ingest_one(args, paths, work, body, "local dir", str(local), {}))
    shutil.rmtree(local, ignore_errors=True)
    weed = shutil.which("weed")
    if weed is None:
        log("    `weed` is not on PATH (cargo xtask test installs it): SeaweedFS row skipped")
    else:
        log("==> ingest: arrwdb serve --storage s3://… (SeaweedFS weed mini)")
        seaweed = Seaweed(weed, work)
        try:
            rows.append(ingest_one(args, paths, work, body, "SeaweedFS (S3)",
                                   f"s3://{Seaweed.BUCKET}/bench", seaweed.env()))
        finally:
            seaweed.close()
    body.unlink(missing_ok=True)
    return rows


# ---------------------------------------------------------------------------------------


def table(rows):
    sections = {r["section"] for r in rows}
    if "wasmtime" in sections:
        log("")
        log("wasm in the host vs native: per-query latency (same index, same queries, one thread)")
        log(f"{'index':6} {'runtime':10} {'search':8} {'queries':>7} {'recall@10':>9} {'cpu ms/q':>9} "
            f"{'mean ms':>8} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6} {'wall mean':>9} {'wall p50':>8}  target")
    for r in (r for r in rows if r["section"] == "wasmtime"):
        target = ""
        if r["target"]:
            target = f"<= {r['target']}: {'met' if r['ratio'] <= r['target'] else 'MISSED'}"
        cpu = r["cpu_ms_per_query"]
        log(f"{r['index']:6} {r['runtime']:10} {r['search']:8} {r['queries']:>7} {r['recall10']:>9.3f} "
            f"{cpu if cpu is not None else float('nan'):>9.3f} {r['mean_ms']:>8.3f} {r['p50_ms']:>8.3f} "
            f"{r['p99_ms']:>8.3f} {r['ratio']:>6.2f} {r['wall_mean_ratio']:>9.2f} {r['wall_p50_ratio']:>8.2f}  {target}"
            + (f" (rounds: {' '.join(f'{x:.2f}' for x in r['ratio_per_round'])})" if r["runtime"] != "native" else ""))
    if "cold_start" in sections:
        log("")
        log("cold start: snapshot file -> first answer (page cache warm), against reading the bytes")
        log(f"{'index':6} {'runtime':26} {'MB':>6} {'raw read':>9} {'read':>8} {'restore':>9} {'1st query':>9} "
            f"{'cold ms':>9} {'ratio':>6}  {'init ms':>8}  target")
    for r in (r for r in rows if r["section"] == "cold_start"):
        met = "met" if r["ratio"] <= r["target"] else "MISSED"
        log(f"{r['index']:6} {r['runtime']:26} {r['snapshot_bytes'] / 1e6:>6.1f} {r['raw_read_ms']:>9.1f} "
            f"{r['read_ms']:>8.1f} {r['restore_ms']:>9.1f} {r['first_query_ms']:>9.2f} {r['cold_ms']:>9.1f} "
            f"{r['ratio']:>6.1f}  {r['init_ms']:>8.1f}  <= {r['target']}: {met}")
    ingest_rows = [r for r in rows if r["section"] == "ingest"]
    if ingest_rows:
        log("")
        log("ingest: NDJSON stream to arrwdb serve, durable (acknowledged after group commit)")
        log(f"{'target':16} {'index':6} {'n':>7} {'seconds':>8} {'vectors/s':>10} {'MB/s':>7} "
            f"{'recovered after kill':>20} {'restart s':>9}")
        for r in ingest_rows:
            log(f"{r['target']:16} {r['index']:6} {r['n']:>7} {r['seconds']:>8.1f} "
                f"{r['vectors_per_s']:>10.0f} {r['mb_per_s']:>7.1f} {r['recovered_after_kill']:>20} "
                f"{r['restart_to_ready_s']:>9.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/datasets/pypi-minilm")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--bin-dir", type=Path, default=ROOT / "target/release")
    parser.add_argument("--component", type=Path, default=None,
                        help="arrwdb_edge.wasm (default: <bin-dir>/../wasm32-wasip2/release/)")
    parser.add_argument("--pkg", type=Path, default=ROOT / "wasm/pkg", help="the npm package (cargo xtask npm)")
    parser.add_argument("--only", default="wasmtime,cold_start,ingest")
    parser.add_argument("--ingest-index", default="flat", help="index of the ingest library")
    parser.add_argument("--ingest-snapshots", action="store_true",
                        help="keep the server's background snapshots on during ingest (default: deferred)")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep built snapshots here and reuse them while the native binary is unchanged")
    args = parser.parse_args()
    args.dataset = args.dataset.resolve()
    only = set(args.only.split(","))

    bin_dir = args.bin_dir.resolve()
    component = (args.component or bin_dir / "../wasm32-wasip2/release/arrwdb_edge.wasm").resolve()
    paths = {"native": str(bin_dir / "arrwdb-bench-runtimes")}
    if not Path(paths["native"]).exists():
        sys.exit(f"{paths['native']} is missing: cargo build --release -p arrwdb-tests")
    if (bin_dir / "arrwdb").exists() and component.exists():
        paths["host"], paths["component"] = str(bin_dir / "arrwdb"), str(component)
    else:
        log(f"arrwdb or {component} missing (cargo build --release -p arrwdb-host; cargo build "
            "--release -p arrwdb-edge --target wasm32-wasip2): wasmtime, edge and ingest rows skipped")
    node = shutil.which("node")
    if node and (args.pkg / "nodejs/index.mjs").exists():
        paths["node"], paths["pkg"] = node, str(args.pkg.resolve())
    else:
        log(f"node or {args.pkg}/nodejs missing (cargo xtask npm): Node rows skipped")

    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="arrwdb-runtimes-", dir=args.work))
    rows = []
    try:
        if paths.get("pkg"):
            # A private copy: a concurrent `cargo xtask npm` rewrites wasm/pkg in place.
            shutil.copytree(paths["pkg"], scratch / "pkg", ignore=shutil.ignore_patterns("node_modules"))
            paths["pkg"] = str(scratch / "pkg")
        if only & {"wasmtime", "cold_start"}:
            truth = ground_truth(args.dataset, args.n, args.queries)
            rows += runtimes(args, paths, scratch, truth)
        if "ingest" in only and paths.get("host"):
            rows += ingest(args, paths, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    table([r for r in rows if r["section"] in only])
    log(f"\n(runtimes.py took {time.monotonic() - started:.0f} s; machine load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
