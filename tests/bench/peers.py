"""`cargo xtask bench`: arrwDB and its peers on the same data, the same queries, one thread.

Runs `arrwdb-bench` (given with --arrwdb) and the Python peers (faiss, hnswlib,
usearch) in this one process run, collects one JSON line per configuration (engine,
index, build, search, n, build_s, qps, recall10, bytes_per_vector), and prints a table
with arrwDB's QPS as a ratio of each peer's at the same index and search parameters,
recall always beside it. A peer that is not installed is reported and skipped.

Usage: python3 tests/bench/peers.py --dataset DIR --arrwdb BIN [--n 100000] [--queries 1000]
"""

import argparse
import json
import subprocess
import sys
import time

import numpy as np

K = 10


def fvecs(path, limit):
    raw = np.fromfile(path, dtype="float32")
    dim = raw[:1].view("int32")[0]
    return np.ascontiguousarray(raw.reshape(-1, dim + 1)[:limit, 1:])


def ivecs(path, limit):
    raw = np.fromfile(path, dtype="int32")
    dim = raw[0]
    return raw.reshape(-1, dim + 1)[:limit, 1 : K + 1]


def recall(found, truth):
    hits = sum(len(set(f[:K]) & set(t[:K])) for f, t in zip(found, truth))
    return hits / (len(truth) * K)


ROWS = []


def emit(engine, index, build, search, n, build_s, qps, rec, bpv):
    row = {"engine": engine, "index": index, "build": build, "search": search, "n": n,
           "build_s": build_s, "qps": qps, "recall10": rec, "bytes_per_vector": bpv}
    ROWS.append(row)
    print(json.dumps(row), file=sys.stderr, flush=True)


def canonical(search):
    return json.dumps(json.loads(search or "{}"), sort_keys=True)


def table():
    print(f"\n{'index':7} {'engine':8} {'search':16} {'recall@10':>9} {'QPS':>9} "
          f"{'build s':>8} {'B/vec':>7}  arrwDB QPS ratio")
    for row in sorted(ROWS, key=lambda r: (r["index"], r["engine"] != "arrwdb", r["engine"],
                                          canonical(r["search"]))):
        ratio = ""
        if row["engine"] != "arrwdb":
            ours = [r for r in ROWS if r["engine"] == "arrwdb" and r["index"] == row["index"]
                    and canonical(r["search"]) == canonical(row["search"])]
            if ours:
                ratio = f"{ours[0]['qps'] / row['qps']:.2f}x of {row['engine']}"
        bpv = "" if row["bytes_per_vector"] is None else f"{row['bytes_per_vector']:.0f}"
        print(f"{row['index']:7} {row['engine']:8} {canonical(row['search']):16} "
              f"{row['recall10']:9.4f} {row['qps']:9.0f} {row['build_s']:8.2f} {bpv:>7}  {ratio}")


def timed_queries(search_one, queries):
    started = time.perf_counter()
    found = [search_one(q) for q in queries]
    return found, len(queries) / (time.perf_counter() - started)


def run_faiss(base, queries, truth, n):
    import faiss
    faiss.omp_set_num_threads(1)
    d = base.shape[1]
    started = time.perf_counter()
    flat = faiss.IndexFlatIP(d)
    flat.add(base)
    build = time.perf_counter() - started
    found, qps = timed_queries(lambda q: flat.search(q[None, :], K)[1][0], queries)
    emit("faiss", "flat", "IndexFlatIP", "{}", n, build, qps, recall(found, truth), d * 4)

    started = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(d, 16, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 200
    hnsw.add(base)
    build = time.perf_counter() - started
    for ef in (64, 128, 256):
        hnsw.hnsw.efSearch = ef
        found, qps = timed_queries(lambda q: hnsw.search(q[None, :], K)[1][0], queries)
        emit("faiss", "hnsw", "M=16 efC=200", json.dumps({"ef": ef}), n, build, qps,
             recall(found, truth), None)

    started = time.perf_counter()
    quantizer = faiss.IndexFlatIP(d)
    ivf = faiss.IndexIVFFlat(quantizer, d, 256, faiss.METRIC_INNER_PRODUCT)
    ivf.train(base[: min(len(base), 10_000)])
    ivf.add(base)
    build = time.perf_counter() - started
    for nprobe in (8, 16, 32):
        ivf.nprobe = nprobe
        found, qps = timed_queries(lambda q: ivf.search(q[None, :], K)[1][0], queries)
        emit("faiss", "ivf", "nlist=256", json.dumps({"nprobe": nprobe}), n, build, qps,
             recall(found, truth), None)


def run_hnswlib(base, queries, truth, n):
    import hnswlib
    index = hnswlib.Index(space="ip", dim=base.shape[1])
    started = time.perf_counter()
    index.init_index(max_elements=len(base), M=16, ef_construction=200, random_seed=1)
    index.set_num_threads(1)
    index.add_items(base, np.arange(len(base)))
    build = time.perf_counter() - started
    for ef in (64, 128, 256):
        index.set_ef(ef)
        found, qps = timed_queries(lambda q: index.knn_query(q, k=K)[0][0], queries)
        emit("hnswlib", "hnsw", "M=16 efC=200", json.dumps({"ef": ef}), n, build, qps,
             recall(found, truth), None)


def run_usearch(base, queries, truth, n):
    from usearch.index import Index
    index = Index(ndim=base.shape[1], metric="ip", dtype="f32", connectivity=16,
                  expansion_add=200)
    started = time.perf_counter()
    index.add(np.arange(len(base)), base, threads=1)
    build = time.perf_counter() - started
    for ef in (64, 128, 256):
        index.expansion_search = ef
        found, qps = timed_queries(lambda q: index.search(q, K, threads=1).keys, queries)
        emit("usearch", "hnsw", "M=16 efC=200", json.dumps({"ef": ef}), n, build, qps,
             recall(found, truth), None)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--arrwdb", required=True, help="the arrwdb-bench binary")
    args = parser.parse_args()
    out = subprocess.run([args.arrwdb, "--dataset", args.dataset, "--n", str(args.n),
                          "--queries", str(args.queries)], check=True, capture_output=True,
                         text=True)
    sys.stderr.write(out.stderr)
    for line in out.stdout.splitlines():
        ROWS.append(json.loads(line))
        print(line, file=sys.stderr, flush=True)
    base = fvecs(f"{args.dataset}/base.fvecs", args.n)
    queries = fvecs(f"{args.dataset}/queries.fvecs", args.queries)
    if args.n >= 100_000:
        truth = ivecs(f"{args.dataset}/groundtruth.ivecs", args.queries)
    else:
        truth = np.argsort(-(queries @ base.T), axis=1, kind="stable")[:, :K]
    for run in (run_faiss, run_hnswlib, run_usearch):
        try:
            run(base, queries, truth, args.n)
        except ImportError as missing:
            print(f"peers.py: skipping {run.__name__[4:]}: {missing}", file=sys.stderr)
    print(f"n={args.n} base vectors, {args.queries} queries, k={K}, one thread; recall@10 "
          "against exact inner-product ground truth")
    table()


if __name__ == "__main__":
    main()
