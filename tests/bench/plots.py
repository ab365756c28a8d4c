"""Plots of one `cargo xtask bench` run (called by peers.py), with matplotlib's Agg
backend (no display): recall@10 against QPS (log scale) per setting, and build time and
bytes per vector per engine. Each plot is written as SVG (for the docs) and PNG.
"""

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

# One colour per engine family, so a curve keeps its colour across plots.
COLOURS = {"arrwdb": "#d62728", "arrwdb-wasm": "#d62728", "hnswlib": "#1f77b4",
           "hnswlib-wasm": "#1f77b4", "faiss": "#2ca02c", "usearch": "#9467bd",
           "edgevec": "#ff7f0e", "voy": "#8c564b", "js brute force": "#7f7f7f"}
MARKERS = {"flat": "s", "flat+sq8": "s", "hnsw": "o", "hnsw+sq8": "v", "ivf": "^",
           "ivfpq": "D", "lsh": "x", "kdtree": "+", "kd-tree": "+"}


def _save(fig, out, name):
    paths = []
    for ext in ("svg", "png"):
        path = os.path.join(out, f"{name}.{ext}")
        fig.savefig(path, dpi=110, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def _series(rows):
    """Rows grouped by (engine, index, build), in first-seen order."""
    groups = {}
    for row in rows:
        if row.get("qps") is None or row["index"] in ("keyword", "hybrid"):
            continue
        groups.setdefault((row["engine"], row["index"], row.get("build", "")), []).append(row)
    return groups


def _style(engine, index, build):
    """Line style of a series: solid for the plain index, dashed for a variant."""
    if "Refine" in build or "sq8" in index:
        return "--"
    if index == "ivfpq":
        return ":"
    return "-"


def _panel(ax, rows, key, title):
    series = _series(rows)
    for (engine, index, build), group in series.items():
        points = sorted((r["recall10"], r[key]) for r in group if r.get(key))
        if not points:
            continue
        sizes = {r.get("n") for r in group if r.get("n")}
        label = f"{engine} {index}" + (" + refine" if "Refine" in build else "")
        if len({r.get("n") for r in rows if r.get("n")}) > 1 and sizes:
            label += f" (n={min(sizes)})"
        ax.plot([p[0] for p in points], [p[1] for p in points], _style(engine, index, build),
                marker=MARKERS.get(index, "o"), color=COLOURS.get(engine), label=label,
                linewidth=2.4 if engine.startswith("arrwdb") else 1.3, markersize=4)
    ax.set_yscale("log")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries per second (log)")
    ax.set_title(title, fontsize=10)
    ax.axvline(0.95, color="#bbbbbb", linewidth=0.8, linestyle=":")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")


def _curve(rows, out, name, title, key):
    """Two panels: the HNSW curves (ef sweep), and the IVF curves (nprobe sweep) with
    the exact and other indexes as points."""
    graph = [r for r in rows if r["index"] in ("hnsw", "hnsw+sq8")]
    other = [r for r in rows if r["index"] not in ("hnsw", "hnsw+sq8")]
    fig, axes = plt.subplots(1, 2, figsize=(15, 6))
    _panel(axes[0], graph, key, "HNSW, M=16 efC=200, ef swept")
    ivf = any(r["index"].startswith("ivf") for r in other)
    _panel(axes[1], other, key, "IVF (nlist=256, nprobe swept), exact and other indexes"
           if ivf else "exact and other indexes")
    fig.suptitle(title, fontsize=11)
    return _save(fig, out, name)


def _bars(rows, out, name, title):
    """Build seconds and bytes per vector of each native index (one build per series)."""
    builds = {}
    for (engine, index, build), group in _series([r for r in rows
                                                  if r.get("setting") == "native"]).items():
        label = f"{engine} {index}" + (" +refine" if "Refine" in build else "")
        builds[label] = (group[0]["build_s"], group[0].get("bytes_per_vector"), engine)
    labels = list(builds)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, max(4, 0.32 * len(labels) + 1)))
    y = range(len(labels))
    colours = [COLOURS.get(builds[l][2], "#333333") for l in labels]
    left.barh(y, [builds[l][0] for l in labels], color=colours)
    left.set_yticks(list(y), labels, fontsize=8)
    left.invert_yaxis()
    left.set_xscale("log")
    left.set_xlabel("build seconds, 1 thread (log)")
    right.barh(y, [builds[l][1] or 0 for l in labels], color=colours)
    right.set_yticks(list(y), [""] * len(labels))
    right.invert_yaxis()
    right.set_xlabel("bytes per vector (serialized index / n)")
    right.axvline(384 * 4, color="#999999", linewidth=0.8, linestyle=":")
    fig.suptitle(title, fontsize=10)
    return _save(fig, out, name)


def plot(rows, out, threads, header):
    """Writes every plot into `out`; returns the paths written."""
    os.makedirs(out, exist_ok=True)
    native = [r for r in rows if r.get("setting") == "native"]
    node = [r for r in rows if r.get("setting") == "node"]
    paths = []
    paths += _curve(native, out, "native-1-thread", f"Native, 1 thread. {header}", "qps")
    paths += _curve(native, out, "native-all-cores", f"Native, {threads} threads. {header}",
                    "qps_mt")
    if node:
        sizes = ", ".join(str(n) for n in sorted({r.get("n") for r in node if r.get("n")}))
        title = f"wasm in Node, 1 thread, n = {sizes} (each curve's n in its label). {header}"
        title = title.replace(f"n={native[0]['n']} × ", "dimension ") if native else title
        paths += _curve(node, out, "node-wasm", title, "qps")
    paths += _bars(rows, out, "build-and-size", f"Build time and size, native. {header}")
    return paths


if __name__ == "__main__":
    import sys

    with open(sys.argv[1]) as f:
        data = json.load(f)
    for p in plot(data["rows"], sys.argv[2], data["threads"],
                  f"n={data['n']}, {data['queries']} queries"):
        print(p)
