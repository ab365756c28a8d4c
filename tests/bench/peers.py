"""`cargo xtask bench`: arrwDB and its peers on the same data and queries, in one run.

Runs, one after the other in this process tree:

- `arrwdb-bench` (given with --arrwdb): every arrwDB index kind natively, HNSW over an
  `ef` sweep and IVF over an `nprobe` sweep, on one thread and on --threads threads;
- the Python peers from PyPI: faiss (IndexFlatIP, IndexHNSWFlat, IndexIVFFlat,
  IndexIVFPQ with and without exact re-ranking), hnswlib and usearch, with the same
  M / ef_construction and the same sweeps, on one thread and on --threads threads;
- with --node-bench, the npm package against hnswlib-wasm, edgevec, voy-search and brute
  force in JavaScript, in Node (wasm/bench/node.mjs);
- with --runtimes, the runtimes engineer's wasmtime-vs-native script when it exists.

Every row is one JSON line (engine, index, build, search, n, build_s, qps, qps_mt,
threads, recall10, bytes_per_vector), echoed to stderr as it comes. At the end it prints
the tables, the ratios computed pair by pair within this run, and the targets of issue
11, and writes docs/benchmarks/results.{json,md} and the plots (tests/bench/plots.py).

Peers are timed through their batch calls (one call for all queries, with the thread
count set to 1 or --threads), so no per-query Python overhead counts against them;
arrwDB is timed one request at a time through its public query path. Each QPS is the
best of up to three passes (fewer when a pass takes over a second).

Usage: python3 tests/bench/peers.py --dataset DIR --arrwdb BIN [--n 100000]
    [--queries 1000] [--threads N] [--node-bench wasm/bench/node.mjs]
    [--runtimes tests/bench/runtimes.py] [--out docs/benchmarks]
"""

import argparse
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

K = 10
EFS = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256)
NPROBES = (1, 2, 4, 8, 16, 32, 64)
M, EF_CONSTRUCTION = 16, 200
NLIST, PQ_M, PQ_BITS, REFINE = 256, 48, 8, 8
TRAIN = 10_000

ROWS = []
PEERS = {}
# CPU seconds of the one-thread HNSW builds, by (engine, index): on a shared machine the
# wall time depends on the load, the CPU time much less.
BUILD_CPU = {}


def fvecs(path, limit):
    raw = np.fromfile(path, dtype="float32")
    dim = raw[:1].view("int32")[0]
    return np.ascontiguousarray(raw.reshape(-1, dim + 1)[:limit, 1:])


def ivecs(path, limit):
    raw = np.fromfile(path, dtype="int32")
    dim = raw[0]
    return raw.reshape(-1, dim + 1)[:limit, 1 : K + 1]


def recall(found, truth):
    hits = sum(len(set(np.asarray(f[:K]).tolist()) & set(t[:K].tolist()))
               for f, t in zip(found, truth))
    return hits / (len(truth) * K)


def emit(**row):
    row.setdefault("setting", "native")
    if (row["engine"], row["index"]) in BUILD_CPU and "build_cpu_s" not in row:
        row["build_cpu_s"] = BUILD_CPU[(row["engine"], row["index"])]
    ROWS.append(row)
    print(json.dumps(row), file=sys.stderr, flush=True)


def best_qps(search_all, count):
    """Runs `search_all()` up to three times (fewer past one second); returns its last
    answer and the best QPS."""
    best, spent, found = 0.0, 0.0, None
    for _ in range(3):
        started = time.perf_counter()
        found = search_all()
        seconds = time.perf_counter() - started
        spent += seconds
        best = max(best, count / seconds)
        if spent > 1.0:
            break
    return found, best


def serialized_bytes(save):
    """Size of the file `save(path)` writes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "index")
        save(path)
        return os.path.getsize(path)


# ---- peers -------------------------------------------------------------------------


def run_faiss(base, queries, truth, n, threads):
    import faiss
    PEERS["faiss-cpu"] = faiss.__version__
    d = base.shape[1]

    def sweep(index, name, build, build_s, bpv, settings, apply):
        for setting in settings:
            apply(setting)
            runs = {}
            for t in (1, threads):
                faiss.omp_set_num_threads(t)
                runs[t] = best_qps(lambda: index.search(queries, K)[1], len(queries))
            emit(engine="faiss", index=name, build=build, search=json.dumps(setting), n=n,
                 build_s=build_s, qps=runs[1][1], qps_mt=runs[threads][1], threads=threads,
                 recall10=recall(runs[1][0], truth), bytes_per_vector=bpv)

    def size(index):
        return faiss.serialize_index(index).nbytes / n

    faiss.omp_set_num_threads(1)
    started = time.perf_counter()
    flat = faiss.IndexFlatIP(d)
    flat.add(base)
    build_s = time.perf_counter() - started
    sweep(flat, "flat", "IndexFlatIP (batched: BLAS)", build_s, size(flat), [{}], lambda s: None)

    faiss.omp_set_num_threads(1)
    started, cpu = time.perf_counter(), time.process_time()
    hnsw = faiss.IndexHNSWFlat(d, M, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = EF_CONSTRUCTION
    hnsw.add(base)
    build_s = time.perf_counter() - started
    BUILD_CPU[("faiss", "hnsw")] = time.process_time() - cpu

    def set_ef(s):
        hnsw.hnsw.efSearch = s["ef"]
    sweep(hnsw, "hnsw", f"IndexHNSWFlat M={M} efC={EF_CONSTRUCTION}", build_s, size(hnsw),
          [{"ef": ef} for ef in EFS], set_ef)
    del hnsw

    for name, make, build in (
        ("ivf", lambda q: faiss.IndexIVFFlat(q, d, NLIST, faiss.METRIC_INNER_PRODUCT),
         f"IndexIVFFlat nlist={NLIST}"),
        ("ivfpq", lambda q: faiss.IndexIVFPQ(q, d, NLIST, PQ_M, PQ_BITS,
                                             faiss.METRIC_INNER_PRODUCT),
         f"IndexIVFPQ nlist={NLIST} m={PQ_M} nbits={PQ_BITS} (no re-ranking)"),
    ):
        faiss.omp_set_num_threads(1)
        started = time.perf_counter()
        quantizer = faiss.IndexFlatIP(d)
        ivf = make(quantizer)
        ivf.train(base[: min(len(base), TRAIN)])
        ivf.add(base)
        build_s = time.perf_counter() - started

        def set_nprobe(s, ivf=ivf):
            ivf.nprobe = s["nprobe"]
        sweep(ivf, name, build, build_s, size(ivf), [{"nprobe": p} for p in NPROBES],
              set_nprobe)
        if name == "ivfpq":
            # The same IVFPQ, its best k·REFINE candidates re-ranked with the full vectors
            # (what arrwDB's ivf+pq does).
            started = time.perf_counter()
            refined = faiss.IndexRefineFlat(ivf, faiss.swig_ptr(base))
            refined.k_factor = REFINE
            refine_s = build_s + time.perf_counter() - started

            def set_refined(s, ivf=ivf):
                ivf.nprobe = s["nprobe"]
            sweep(refined, "ivfpq", f"{build} + IndexRefineFlat k_factor={REFINE}".replace(
                " (no re-ranking)", ""), refine_s, size(refined),
                [{"nprobe": p} for p in NPROBES], set_refined)
    faiss.omp_set_num_threads(threads)


def run_hnswlib(base, queries, truth, n, threads):
    import hnswlib
    PEERS["hnswlib"] = importlib.metadata.version("hnswlib")
    index = hnswlib.Index(space="ip", dim=base.shape[1])
    started, cpu = time.perf_counter(), time.process_time()
    index.init_index(max_elements=len(base), M=M, ef_construction=EF_CONSTRUCTION, random_seed=1)
    index.set_num_threads(1)
    index.add_items(base, np.arange(len(base)), num_threads=1)
    build_s = time.perf_counter() - started
    BUILD_CPU[("hnswlib", "hnsw")] = time.process_time() - cpu
    bpv = serialized_bytes(index.save_index) / n
    for ef in EFS:
        index.set_ef(ef)
        runs = {t: best_qps(lambda t=t: index.knn_query(queries, k=K, num_threads=t)[0],
                            len(queries)) for t in (1, threads)}
        emit(engine="hnswlib", index="hnsw", build=f"M={M} efC={EF_CONSTRUCTION}",
             search=json.dumps({"ef": ef}), n=n, build_s=build_s, qps=runs[1][1],
             qps_mt=runs[threads][1], threads=threads, recall10=recall(runs[1][0], truth),
             bytes_per_vector=bpv)


def run_usearch(base, queries, truth, n, threads):
    import usearch
    from usearch.index import Index
    PEERS["usearch"] = usearch.__version__
    index = Index(ndim=base.shape[1], metric="ip", dtype="f32", connectivity=M,
                  expansion_add=EF_CONSTRUCTION)
    started, cpu = time.perf_counter(), time.process_time()
    index.add(np.arange(len(base)), base, threads=1)
    build_s = time.perf_counter() - started
    BUILD_CPU[("usearch", "hnsw")] = time.process_time() - cpu
    bpv = serialized_bytes(index.save) / n
    for ef in EFS:
        index.expansion_search = ef
        runs = {t: best_qps(lambda t=t: index.search(queries, K, threads=t).keys, len(queries))
                for t in (1, threads)}
        emit(engine="usearch", index="hnsw", build=f"connectivity={M} expansion_add="
             f"{EF_CONSTRUCTION} f32", search=json.dumps({"ef": ef}), n=n, build_s=build_s,
             qps=runs[1][1], qps_mt=runs[threads][1], threads=threads,
             recall10=recall(runs[1][0], truth), bytes_per_vector=bpv)


# ---- other processes ---------------------------------------------------------------


def run_arrwdb(args):
    proc = subprocess.Popen([args.arrwdb, "--dataset", args.dataset, "--n", str(args.n),
                             "--queries", str(args.queries), "--threads", str(args.threads)],
                            stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        row = json.loads(line)
        row["setting"] = "native"
        ROWS.append(row)
        print(line.rstrip(), file=sys.stderr, flush=True)
    if proc.wait() != 0:
        raise SystemExit(f"arrwdb-bench failed: {proc.returncode}")


def run_node(args):
    """wasm/bench/node.mjs: rows with setting "node"; returns its header rows."""
    return run_js(["node", args.node_bench, "--n", str(args.node_n or args.n), "--queries",
                   str(args.queries), "--dataset", args.dataset], "node")


def run_browser(args):
    """wasm/bench/browser.mjs (headless Chromium, the page's main thread): rows with
    setting "chromium"; returns its header rows."""
    return run_js(["node", args.browser_bench, "--n", str(args.browser_n), "--queries",
                   str(args.browser_queries), "--dataset", args.dataset], "chromium")


def run_js(command, setting):
    """A JS benchmark printing JSON lines: measured rows get `setting`; the others
    (runtime, versions, sizes, failures) are returned."""
    proc = subprocess.run(command, check=False, stdout=subprocess.PIPE, text=True)
    extra = []
    for line in proc.stdout.splitlines():
        print(line, file=sys.stderr, flush=True)
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a package's own log line (hnswlib-wasm prints some)
        if "qps" in row:
            row["setting"] = setting
            ROWS.append(row)
        else:
            extra.append(row)
    if proc.returncode != 0:
        extra.append({"error": f"{os.path.basename(command[1])} exited with {proc.returncode}"})
    return extra


def run_runtimes(args):
    """The runtimes engineer's script (tests/bench/runtimes.py), when present: its JSON
    lines are kept as they are (docs/benchmarks/runtimes.md explains them)."""
    if not args.runtimes or not os.path.exists(args.runtimes):
        return []
    # Built snapshots are cached under target/ (keyed by n and the native binary's
    # modification time), so a re-run with the same binaries does not build them again.
    cache = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "target",
                         "bench-cache")
    proc = subprocess.run([sys.executable, args.runtimes, "--dataset", args.dataset, "--n",
                           str(args.n), "--queries", str(args.queries), "--cache", cache],
                          check=False, stdout=subprocess.PIPE, text=True)
    rows = []
    for line in proc.stdout.splitlines():
        try:
            rows.append(json.loads(line))
            print(line, file=sys.stderr, flush=True)
        except json.JSONDecodeError:
            print(line, file=sys.stderr, flush=True)
    if proc.returncode != 0:
        rows.append({"error": f"runtimes.py exited with {proc.returncode}"})
    return rows


# ---- tables ------------------------------------------------------------------------


def search_label(search):
    try:
        value = json.loads(search or "{}")
    except json.JSONDecodeError:
        return search  # keyword / hybrid rows: "text", "vector+text rrf"
    return " ".join(f"{k}={v}" for k, v in sorted(value.items())) if isinstance(value, dict) \
        else str(value)


def fmt_bpv(row):
    bpv = row.get("bytes_per_vector")
    return "" if bpv is None else f"{bpv:.0f}"


def fmt_qps(value):
    return "" if value is None else f"{value:.0f}"


def curve(engine, index, setting, build=None):
    return [r for r in ROWS if r["engine"] == engine and r["index"] == index
            and r.get("setting") == setting and (build is None or r.get("build") == build)]


def at_recall(rows, target, key="qps"):
    """The best QPS among the rows reaching `target` recall@10, or None."""
    ok = [r[key] for r in rows if r.get(key) is not None and r["recall10"] >= target]
    return max(ok) if ok else None


def matched(ours, theirs, target, key="qps"):
    """Equal-recall comparison: the peer's fastest point reaching `target` (its QPS and
    recall), and arrwDB's fastest QPS reaching that same recall."""
    points = [r for r in theirs if r.get(key) is not None and r["recall10"] >= target]
    if not points:
        return None, None, None
    peer = max(points, key=lambda r: r[key])
    return at_recall(ours, peer["recall10"], key), peer[key], peer["recall10"]


def native_table(threads, total):
    out = [f"| index | engine | build | search | recall@10 | QPS 1 thread | QPS {threads} "
           "threads | build s | bytes/vector |", "|---|---|---|---|---|---|---|---|---|"]
    order = ["flat", "flat+sq8", "hnsw", "hnsw+sq8", "ivf", "ivfpq", "lsh", "kdtree", "keyword",
             "hybrid"]
    native = [r for r in ROWS if r.get("setting") == "native"]
    for row in sorted(native, key=lambda r: (order.index(r["index"]) if r["index"] in order
                                             else 99, r["engine"] != "arrwdb", r["engine"],
                                             r["build"], json.dumps(r["search"]))):
        label = search_label(row["search"])
        if row.get("queries") and row["queries"] != total:
            label = f"{label} (first {row['queries']} queries)".strip()
        out.append(f"| {row['index']} | {row['engine']} | {row['build']} | "
                   f"{label} | {row['recall10']:.4f} | "
                   f"{fmt_qps(row['qps'])} | {fmt_qps(row.get('qps_mt'))} | "
                   f"{row['build_s']:.2f} | {fmt_bpv(row)} |")
    return out


def wasm_table(total, setting):
    out = ["| n | engine | index | build | search | recall@10 | QPS | build s |",
           "|---|---|---|---|---|---|---|---|"]
    for row in [r for r in ROWS if r.get("setting") == setting]:
        label = search_label(row["search"])
        if row.get("queries") and row["queries"] != total:
            label = f"{label} (first {row['queries']} queries)".strip()
        out.append(f"| {row.get('n', '')} | {row['engine']} | {row['index']} | {row['build']} | "
                   f"{label} | {row['recall10']:.4f} | "
                   f"{fmt_qps(row['qps'])} | {row['build_s']:.2f} |")
    return out


def ratio(ours, theirs):
    return None if ours is None or theirs is None or theirs == 0 else ours / theirs


def fmt_ratio(value):
    return "n/a" if value is None else f"{value:.2f}×"


def ratios(threads, n):
    """Pair-by-pair ratios within this run: arrwDB's value over each peer's. QPS is
    compared at equal recall: the peer's fastest point reaching the target recall, and
    arrwDB's fastest point reaching at least the recall of that point."""
    lines = ["| comparison | arrwDB | peer | ratio (arrwDB / peer) |", "|---|---|---|---|"]
    results = {}

    def add(label, ours, theirs, fmt="{:.0f}", key=None):
        value = ratio(ours, theirs)
        if key:
            results[key] = value
        show = (lambda v: "n/a" if v is None else fmt.format(v))
        lines.append(f"| {label} | {show(ours)} | {show(theirs)} | {fmt_ratio(value)} |")

    def compare(label, ours, theirs, target, key="qps", result=None):
        o, t, r = matched(ours, theirs, target, key)
        if t is None:
            return
        add(f"{label} at recall@10 ≥ {target} (peer's point: {r:.4f})", o, t, key=result)

    # arrwDB's HNSW twice: on full vectors ("hnsw") and on SQ8 codes with rescoring
    # ("hnsw+sq8"), each against the peers' full-vector HNSW at equal recall.
    for index in ("hnsw", "hnsw+sq8"):
        ours_hnsw = curve("arrwdb", index, "native")
        for target in (0.90, 0.95, 0.99):
            for peer in ("hnswlib", "faiss", "usearch"):
                theirs = curve(peer, "hnsw", "native")
                for key, label in (("qps", "1 thread"), ("qps_mt", f"{threads} threads")):
                    compare(f"{index} QPS, {label}, vs {peer}", ours_hnsw, theirs, target,
                            key, f"{index}_{key}_{target}_{peer}")
    for index in ("ivf", "ivfpq"):
        theirs = curve("faiss", index, "native")
        ours = curve("arrwdb", index, "native")
        for b in sorted({r["build"] for r in theirs}):
            compare(f"{index} QPS, 1 thread, vs faiss {b}", ours,
                    [r for r in theirs if r["build"] == b], 0.90)
    flat_ours = curve("arrwdb", "flat", "native")
    flat_faiss = curve("faiss", "flat", "native")
    if flat_ours and flat_faiss:
        add("flat QPS, 1 thread, vs faiss IndexFlatIP (batched)", flat_ours[0]["qps"],
            flat_faiss[0]["qps"])
    for index in ("hnsw", "hnsw+sq8"):
        ours_hnsw = curve("arrwdb", index, "native")
        for peer in ("hnswlib", "faiss", "usearch"):
            theirs = curve(peer, "hnsw", "native")
            if ours_hnsw and theirs:
                add(f"{index} build throughput (vectors/s, 1 thread, wall), vs {peer}",
                    n / ours_hnsw[0]["build_s"], n / theirs[0]["build_s"],
                    key=f"{index}_build_wall_{peer}")
                if ours_hnsw[0].get("build_cpu_s") and theirs[0].get("build_cpu_s"):
                    add(f"{index} build throughput (vectors per CPU second), vs {peer}",
                        n / ours_hnsw[0]["build_cpu_s"], n / theirs[0]["build_cpu_s"],
                        key=f"{index}_build_{peer}")
                else:
                    results[f"{index}_build_{peer}"] = results[f"{index}_build_wall_{peer}"]
                add(f"{index} bytes/vector, vs {peer}", ours_hnsw[0]["bytes_per_vector"],
                    theirs[0]["bytes_per_vector"])
    # wasm in Node: the npm package against each wasm peer on equal n: HNSW peers at
    # equal recall against arrwdb's hnsw, exact peers (brute force, voy's kd-tree, exact
    # in 384 dimensions) against arrwdb's flat.
    # The same in headless Chromium (the page's main thread).
    for setting, where in (("node", "Node"), ("chromium", "Chromium")):
        rows = [r for r in ROWS if r.get("setting") == setting]
        for peer in sorted({r["engine"] for r in rows if r["engine"] != "arrwdb-wasm"}):
            for size in sorted({r.get("n") for r in rows if r["engine"] == peer}):
                theirs = [r for r in rows if r["engine"] == peer and r.get("n") == size]
                ours = {index: [r for r in rows if r["engine"] == "arrwdb-wasm"
                                and r["index"] == index and r.get("n") == size]
                        for index in ("hnsw", "hnsw+sq8", "flat")}
                if theirs[0]["index"] != "hnsw":
                    if ours["flat"]:
                        add(f"{where} exact search QPS (n={size}), arrwdb flat vs {peer} "
                            f"{theirs[0]['index']}", ours["flat"][0]["qps"], theirs[0]["qps"])
                    continue
                for index in ("hnsw", "hnsw+sq8"):
                    for target in (0.90, 0.95):
                        compare(f"{where} wasm QPS (n={size}), arrwdb {index} vs {peer}",
                                ours[index], theirs, target,
                                result=f"{setting}_{index}_{target}_{peer}")
                    if ours[index]:
                        add(f"{where} wasm {index} build throughput (vectors/s, n={size}), "
                            f"vs {peer}", size / ours[index][0]["build_s"],
                            size / theirs[0]["build_s"], key=f"{setting}_{index}_build_{peer}")
    return lines, results


def sq8_summary():
    """SQ8's footprint against f32 at the same index, and its recall."""
    out = {}
    for plain, quant in (("flat", "flat+sq8"), ("hnsw", "hnsw+sq8")):
        a, b = curve("arrwdb", plain, "native"), curve("arrwdb", quant, "native")
        if a and b:
            out[quant] = {
                "bytes_ratio": b[0]["bytes_per_vector"] / a[0]["bytes_per_vector"],
                "best_recall": max(r["recall10"] for r in b),
                "qps_at_0.95": at_recall(b, 0.95), "f32_qps_at_0.95": at_recall(a, 0.95),
            }
    return out


def targets(results, sq8):
    def verdict(value, goal):
        if value is None:
            return "not measured"
        return "met" if value >= goal else f"missed by {(1 - value / goal) * 100:.0f}%"

    lines = ["| target | measured | verdict |", "|---|---|---|"]
    for index in ("hnsw", "hnsw+sq8"):
        v = results.get(f"{index}_qps_0.95_hnswlib")
        lines.append(f"| native {index} 1-thread QPS at recall@10 ≥ 0.95 ≥ 1.2× hnswlib | "
                     f"{fmt_ratio(v)} | {verdict(v, 1.2)} |")
    for index in ("hnsw", "hnsw+sq8"):
        v = results.get(f"{index}_build_hnswlib")
        lines.append(f"| {index} build throughput ≥ hnswlib's | {fmt_ratio(v)} | "
                     f"{verdict(v, 1.0)} |")
    for index in ("hnsw", "hnsw+sq8"):
        for peer in ("hnswlib-wasm", "edgevec"):
            v = results.get(f"node_{index}_0.95_{peer}")
            lines.append(f"| Node wasm {index} QPS ≥ 3× {peer} at equal recall (≥ 0.95) | "
                         f"{fmt_ratio(v)} | {verdict(v, 3.0)} |")
    for quant in ("hnsw+sq8", "flat+sq8"):
        s = sq8.get(quant)
        if s:
            ok = s["bytes_ratio"] <= 0.35 and s["best_recall"] >= 0.95
            how = "met" if ok else (f"missed: {s['bytes_ratio']:.2f}× f32 (goal ≤ 0.35×)"
                                    if s["bytes_ratio"] > 0.35 else "missed: recall < 0.95")
            lines.append(f"| SQ8 ({quant}) bytes ≤ 0.35× f32 at recall@10 ≥ 0.95 | "
                         f"{s['bytes_ratio']:.2f}× f32, best recall {s['best_recall']:.4f} | "
                         f"{how} |")
    return lines


def machine():
    model = ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {mem}, {platform.system()} {platform.release()}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--arrwdb", required=True, help="the arrwdb-bench binary")
    parser.add_argument("--node-bench", help="wasm/bench/node.mjs (skipped when absent)")
    parser.add_argument("--node-n", type=int, help="base vectors for the Node run (default --n)")
    parser.add_argument("--browser-bench",
                        help="wasm/bench/browser.mjs, headless Chromium (skipped when absent)")
    parser.add_argument("--browser-n", type=int, default=20_000,
                        help="base vectors for the Chromium run (default 20000)")
    parser.add_argument("--browser-queries", type=int, default=200,
                        help="queries of the Chromium run (default 200)")
    parser.add_argument("--runtimes", help="tests/bench/runtimes.py (skipped when absent)")
    parser.add_argument("--out", help="directory for results.{json,md} and the plots")
    parser.add_argument("--skip", default="",
                        help="comma list of: arrwdb,peers,node,chromium,runtimes")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    started = time.perf_counter()
    PEERS["numpy"] = np.__version__
    phases = {}

    def phase(name, fn):
        t = time.perf_counter()
        value = fn()
        phases[name] = time.perf_counter() - t
        return value

    load = {"start": os.getloadavg()}
    state = {"node_meta": [], "browser_meta": [], "runtime_rows": [], "base_dim": None}

    def report(final):
        """Prints (at the end) and writes the tables so far: a run cut short still
        leaves its finished phases in --out."""
        wall = time.perf_counter() - started
        load["end"] = os.getloadavg()
        header = (f"n={args.n} × {state['base_dim']}, {args.queries} queries, k={K}, "
                  "recall@10 against exact inner-product ground truth")
        ratio_lines, results = ratios(args.threads, args.n)
        sq8 = sq8_summary()
        target_lines = targets(results, sq8)
        versions = ", ".join(f"{k} {v}" for k, v in sorted(PEERS.items()))
        node_lines = [json.dumps(m) for m in state["node_meta"]]
        loads = ", ".join(f"{k} {' / '.join(f'{x:.1f}' for x in v)}" for k, v in load.items())
        md = [f"Machine: {machine()}; load average (1/5/15 min) {loads}", "", header, "",
              f"Peers: {versions}", "", "### Native", "", *native_table(args.threads, args.queries),
              "", "### Ratios (pair by pair, this run)", "", *ratio_lines, "", "### Targets", "",
              *target_lines, ""]
        if any(r.get("setting") == "node" for r in ROWS) or node_lines:
            md += ["### wasm in Node", "", *wasm_table(args.queries, "node"), "", "```", *node_lines,
                   "```", ""]
        browser_lines = [json.dumps(m) for m in state["browser_meta"]]
        if any(r.get("setting") == "chromium" for r in ROWS) or browser_lines:
            md += ["### wasm in headless Chromium (the page's main thread)", "",
                   *wasm_table(args.browser_queries, "chromium"), "", "```", *browser_lines,
                   "```", ""]
        if state["runtime_rows"]:
            md += ["### wasmtime vs native (tests/bench/runtimes.py)", "", "```",
                   *[json.dumps(r) for r in state["runtime_rows"]], "```", ""]
        md += ["Phases: " + ", ".join(f"{k} {v:.0f} s" for k, v in phases.items()),
               f"Wall time of the run (after the build): {wall:.0f} s"
               + ("" if final else " (still running)"), ""]
        if final:
            print("\n".join(md))
        if not args.out:
            return
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"machine": machine(), "load": load, "n": args.n, "queries": args.queries,
                       "threads": args.threads, "peers": PEERS, "rows": ROWS,
                       "node": state["node_meta"], "chromium": state["browser_meta"],
                       "runtimes": state["runtime_rows"],
                       "ratios": results, "sq8": sq8, "phases": phases, "wall_s": wall,
                       "complete": final}, f, indent=1)
        with open(os.path.join(args.out, "results.md"), "w") as f:
            f.write("# Benchmark results (written by `cargo xtask bench`)\n\n" + "\n".join(md))
        if final:
            try:
                sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
                import plots
                for path in plots.plot(ROWS, args.out, args.threads, header + "; " + machine()):
                    print(f"wrote {path}")
            except (ImportError, ValueError) as missing:
                # ValueError: a partial run (--skip) left a plot without data.
                print(f"peers.py: no plots: {missing}", file=sys.stderr)

    base = fvecs(f"{args.dataset}/base.fvecs", args.n)
    state["base_dim"] = base.shape[1]
    if "arrwdb" not in skip:
        phase("arrwdb native", lambda: run_arrwdb(args))
        report(False)
    queries = fvecs(f"{args.dataset}/queries.fvecs", args.queries)
    if args.n >= 100_000:
        truth = ivecs(f"{args.dataset}/groundtruth.ivecs", args.queries)
    else:
        truth = np.argsort(-(queries @ base.T), axis=1, kind="stable")[:, :K]
    # The comparisons the targets name come first (hnswlib, then wasm in Node), so a run
    # cut short still has them in --out.
    def peer(run):
        if "peers" in skip:
            return
        try:
            phase(run.__name__[4:], lambda: run(base, queries, truth, args.n, args.threads))
        except ImportError as missing:
            print(f"peers.py: skipping {run.__name__[4:]}: {missing}", file=sys.stderr)
        report(False)

    peer(run_hnswlib)
    if args.node_bench and "node" not in skip:
        state["node_meta"] = phase("node wasm", lambda: run_node(args))
        report(False)
    if args.browser_bench and "chromium" not in skip:
        state["browser_meta"] = phase("chromium wasm", lambda: run_browser(args))
        report(False)
    peer(run_faiss)
    peer(run_usearch)
    if "runtimes" not in skip:
        state["runtime_rows"] = phase("runtimes", lambda: run_runtimes(args))
    report(True)

if __name__ == "__main__":
    main()
