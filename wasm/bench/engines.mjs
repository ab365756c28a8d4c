// The measured part of the npm benchmark, the same code in Node and in headless Chromium:
// each engine indexes the same vectors, answers the same queries, and is scored against
// exact top-10 neighbours (recall@10) and by queries per second on one thread.
//
// `modules` holds the loaded packages (the loaders differ per runtime; see node.mjs and
// browser.mjs): { arrwdb, hnswlib, edgevec, voy }.

/** Exact top-k rows by inner product (the dataset is L2-normalized: = cosine). */
export function exactTopK(base, queries, dimension, k) {
  const n = base.length / dimension;
  const out = [];
  for (let q = 0; q < queries.length / dimension; q++) {
    const query = queries.subarray(q * dimension, (q + 1) * dimension);
    const best = [];
    for (let i = 0; i < n; i++) {
      let dot = 0;
      const row = i * dimension;
      for (let j = 0; j < dimension; j++) dot += query[j] * base[row + j];
      if (best.length < k || dot > best[best.length - 1][1]) {
        best.push([i, dot]);
        best.sort((a, b) => b[1] - a[1]);
        if (best.length > k) best.pop();
      }
    }
    out.push(best.map(([i]) => i));
  }
  return out;
}

function recall(results, truth, k) {
  let found = 0;
  results.forEach((ids, q) => {
    const want = new Set(truth[q].slice(0, k));
    for (const id of ids.slice(0, k)) if (want.has(id)) found++;
  });
  return found / (truth.length * k);
}

/** Runs `search` over every query (after a warm-up pass) and times it. */
function measure(queries, dimension, search) {
  const count = queries.length / dimension;
  const rows = Array.from({ length: count }, (_, q) => queries.subarray(q * dimension, (q + 1) * dimension));
  for (const query of rows.slice(0, Math.min(20, count))) search(query);
  const started = performance.now();
  const results = rows.map((query) => search(query));
  const ms = performance.now() - started;
  return { results, qps: (count * 1000) / ms };
}

const HNSW = { m: 16, efConstruction: 200, ef: 64 };

/** The engines, each: build(base) -> search(query) -> row numbers. */
export function engines(modules, dimension) {
  const list = [];
  const { arrwdb } = modules;
  if (arrwdb) {
    for (const [label, index] of [
      ["arrwdb flat (exact)", { type: "flat" }],
      [`arrwdb hnsw m=${HNSW.m} ef=${HNSW.ef}`, { type: "hnsw", m: HNSW.m, ef_construction: HNSW.efConstruction, ef_search: HNSW.ef, seed: 1 }],
      ["arrwdb flat + sq8", { type: "flat" }, { type: "sq8" }],
    ].map(([l, i, q]) => [l, { index: i, quantization: q }])) {
      list.push({
        name: label,
        build(base) {
          const db = new arrwdb.Database();
          db.createLibrary({ name: "bench", dimension, metric: "dot", index: index.index, quantization: index.quantization ?? { type: "none" } });
          const n = base.length / dimension;
          const ids = Array.from({ length: n }, (_, i) => String(i));
          db.upsertBatch("bench", { ids, vectors: base });
          return (query) => db.search("bench", { vector: query, k: 10, include: [] }).hits.map((h) => Number(h.document_id));
        },
      });
    }
  }
  const { hnswlib } = modules;
  if (hnswlib) {
    list.push({
      name: `hnswlib-wasm m=${HNSW.m} ef=${HNSW.ef}`,
      build(base) {
        const n = base.length / dimension;
        const index = new hnswlib.HierarchicalNSW("ip", dimension, "");
        index.initIndex(n, HNSW.m, HNSW.efConstruction, 1);
        for (let i = 0; i < n; i++) index.addPoint(base.subarray(i * dimension, (i + 1) * dimension), i, false);
        index.setEfSearch(HNSW.ef);
        return (query) => index.searchKnn(query, 10, undefined).neighbors;
      },
    });
  }
  const { edgevec } = modules;
  if (edgevec) {
    list.push({
      name: `edgevec hnsw m=${HNSW.m} ef=${HNSW.ef}`,
      build(base) {
        const config = new edgevec.EdgeVecConfig(dimension);
        // edgevec 0.9 ranks wrongly with "cosine" and "dot" (checked on 3 unit vectors);
        // on this L2-normalized data, L2 gives the same order.
        config.metric = "l2";
        config.m = HNSW.m;
        config.ef_construction = HNSW.efConstruction;
        config.ef_search = HNSW.ef;
        const index = new edgevec.EdgeVec(config);
        const ids = index.insertBatchFlat(base, base.length / dimension);
        const row = new Map(Array.from(ids, (id, i) => [id, i]));
        return (query) => index.search(query, 10).map((r) => row.get(r.id));
      },
    });
  }
  const { voy } = modules;
  if (voy) {
    list.push({
      name: "voy-search kd-tree",
      build(base) {
        const n = base.length / dimension;
        const embeddings = Array.from({ length: n }, (_, i) => ({
          id: String(i),
          title: "",
          url: "",
          embeddings: Array.from(base.subarray(i * dimension, (i + 1) * dimension)),
        }));
        const index = new voy.Voy({ embeddings });
        return (query) => index.search(query, 10).neighbors.map((r) => Number(r.id));
      },
    });
  }
  return list;
}

/** Builds and measures every engine; returns one row per engine. */
export function run(modules, { base, queries, dimension, log = () => {} }) {
  const truth = exactTopK(base, queries, dimension, 10);
  const rows = [];
  for (const engine of engines(modules, dimension)) {
    try {
      const started = performance.now();
      const search = engine.build(base);
      const buildMs = performance.now() - started;
      const { results, qps } = measure(queries, dimension, search);
      const row = { engine: engine.name, build_s: buildMs / 1000, qps, recall_at_10: recall(results, truth, 10) };
      rows.push(row);
      log(row);
    } catch (error) {
      const row = { engine: engine.name, error: String(error?.message ?? error) };
      rows.push(row);
      log(row);
    }
  }
  return rows;
}
