// The measured part of the npm benchmark, the same code in Node and in headless Chromium:
// each engine indexes the same vectors, answers the same queries, and is scored against
// exact top-10 neighbours (recall@10) and by queries per second on one thread.
//
// HNSW engines are measured over an `ef` sweep on one build (edgevec fixes `ef_search`
// when the index is created, so it is built once per `ef` of EDGEVEC_EFS). "js brute
// force" is a plain JavaScript scan (Float32Array, one top-k list), measured as an engine;
// it also gives the reference answers unless `truth` (e.g. the dataset's
// groundtruth.ivecs) is given.
//
// `modules` holds the loaded packages (the loaders differ per runtime; see node.mjs and
// browser.mjs): { arrwdb, hnswlib, edgevec, voy }.

export const EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256];
export const EDGEVEC_EFS = [64];
const HNSW = { m: 16, efConstruction: 200 };
const K = 10;

/** Exact top-k row numbers of one query by inner product (the dataset is L2-normalized:
 * the same order as cosine). */
function bruteForce(base, dimension, query, k) {
  const n = base.length / dimension;
  const ids = new Int32Array(k).fill(-1);
  const scores = new Float64Array(k).fill(-Infinity);
  for (let i = 0, row = 0; i < n; i++, row += dimension) {
    let dot = 0;
    for (let j = 0; j < dimension; j++) dot += query[j] * base[row + j];
    if (dot <= scores[k - 1]) continue;
    let at = k - 1;
    while (at > 0 && scores[at - 1] < dot) {
      scores[at] = scores[at - 1];
      ids[at] = ids[at - 1];
      at--;
    }
    scores[at] = dot;
    ids[at] = i;
  }
  return Array.from(ids);
}

/** Exact top-k rows of every query (row-major `queries`). */
export function exactTopK(base, queries, dimension, k) {
  const out = [];
  for (let q = 0; q < queries.length / dimension; q++) {
    out.push(bruteForce(base, dimension, queries.subarray(q * dimension, (q + 1) * dimension), k));
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

/** Runs `search` over every query and times it: the best of up to three passes (fewer
 * when a pass takes over a second), after a warm-up of 20 queries. */
function measure(queries, dimension, search) {
  const count = queries.length / dimension;
  const rows = Array.from({ length: count }, (_, q) => queries.subarray(q * dimension, (q + 1) * dimension));
  for (const query of rows.slice(0, Math.min(20, count))) search(query);
  let best = 0;
  let spent = 0;
  let results = [];
  for (let pass = 0; pass < 3 && spent < 1000; pass++) {
    const started = performance.now();
    results = rows.map((query) => search(query));
    const ms = performance.now() - started;
    spent += ms;
    best = Math.max(best, (count * 1000) / ms);
  }
  return { results, qps: best };
}

const hnswBuild = `M=${HNSW.m} efC=${HNSW.efConstruction}`;
const efSettings = (efs) => efs.map((ef) => ({ ef }));

/**
 * The engines. Each: { engine, index, build (parameters as printed), settings (search
 * parameters), make(base, setting) -> search(query) -> row numbers }. `make` is called
 * once per engine unless `rebuildPerSetting` is set.
 */
export function engines(modules, dimension) {
  const list = [];
  list.push({
    engine: "js brute force",
    index: "flat",
    build: "Float32Array scan",
    settings: [{}],
    exhaustive: true,
    make: (base) => () => (query) => bruteForce(base, dimension, query, K),
  });
  const { arrwdb } = modules;
  if (arrwdb) {
    const library = (base, index, quantization) => {
      const db = new arrwdb.Database();
      db.createLibrary({ name: "bench", dimension, metric: "dot", index, quantization: quantization ?? { type: "none" } });
      const n = base.length / dimension;
      const ids = Array.from({ length: n }, (_, i) => String(i));
      db.upsertBatch("bench", { ids, vectors: base });
      return db;
    };
    const searcher = (db) => (setting) => {
      const params = setting && Object.keys(setting).length ? setting : undefined;
      return (query) => db.search("bench", { vector: query, k: K, include: [], params }).hits.map((h) => Number(h.document_id));
    };
    list.push({ engine: "arrwdb-wasm", index: "flat", build: "", settings: [{}], exhaustive: true, make: (base) => searcher(library(base, { type: "flat" })) });
    list.push({
      engine: "arrwdb-wasm",
      index: "flat+sq8",
      build: "sq8 oversample=4",
      settings: [{}],
      exhaustive: true,
      make: (base) => searcher(library(base, { type: "flat" }, { type: "sq8" })),
    });
    list.push({
      engine: "arrwdb-wasm",
      index: "hnsw",
      build: hnswBuild,
      settings: efSettings(EFS),
      make: (base) => searcher(library(base, { type: "hnsw", m: HNSW.m, ef_construction: HNSW.efConstruction, seed: 1 })),
    });
    list.push({
      engine: "arrwdb-wasm",
      index: "hnsw+sq8",
      build: `${hnswBuild} sq8 oversample=4`,
      settings: efSettings(EFS),
      make: (base) =>
        searcher(library(base, { type: "hnsw", m: HNSW.m, ef_construction: HNSW.efConstruction, seed: 1 }, { type: "sq8" })),
    });
  }
  const { hnswlib } = modules;
  if (hnswlib) {
    list.push({
      engine: "hnswlib-wasm",
      index: "hnsw",
      build: hnswBuild,
      settings: efSettings(EFS),
      make(base) {
        const n = base.length / dimension;
        const index = new hnswlib.HierarchicalNSW("ip", dimension, "");
        index.initIndex(n, HNSW.m, HNSW.efConstruction, 1);
        for (let i = 0; i < n; i++) index.addPoint(base.subarray(i * dimension, (i + 1) * dimension), i, false);
        return ({ ef }) => {
          index.setEfSearch(ef);
          return (query) => index.searchKnn(query, K, undefined).neighbors;
        };
      },
    });
  }
  const { edgevec } = modules;
  if (edgevec) {
    list.push({
      engine: "edgevec",
      index: "hnsw",
      build: `${hnswBuild} l2`,
      settings: efSettings(EDGEVEC_EFS),
      rebuildPerSetting: true,
      make(base, { ef }) {
        const config = new edgevec.EdgeVecConfig(dimension);
        // edgevec 0.9 ranks wrongly with "cosine" and "dot" (checked on 3 unit vectors);
        // on this L2-normalized data, L2 gives the same order.
        config.metric = "l2";
        config.m = HNSW.m;
        config.ef_construction = HNSW.efConstruction;
        config.ef_search = ef;
        const index = new edgevec.EdgeVec(config);
        const ids = index.insertBatchFlat(base, base.length / dimension);
        const row = new Map(Array.from(ids, (id, i) => [id, i]));
        return () => (query) => index.search(query, K).map((r) => row.get(r.id));
      },
    });
  }
  const { voy } = modules;
  if (voy) {
    list.push({
      engine: "voy",
      index: "kd-tree",
      build: "voy-search defaults",
      settings: [{}],
      exhaustive: true,
      make(base) {
        const n = base.length / dimension;
        const embeddings = Array.from({ length: n }, (_, i) => ({
          id: String(i),
          title: "",
          url: "",
          embeddings: Array.from(base.subarray(i * dimension, (i + 1) * dimension)),
        }));
        const index = new voy.Voy({ embeddings });
        return () => (query) => index.search(query, K).neighbors.map((r) => Number(r.id));
      },
    });
  }
  return list;
}

/**
 * Builds and measures every engine (those whose name or "name/index" is in `only`, when
 * given); returns one row per engine and search setting: { engine, index, build, search,
 * build_s, qps, recall10, queries }. Exhaustive engines (every query scans every vector)
 * answer the first `exactQueries` queries only. `truth` (exact top-10 per query) is the
 * reference; without it, the brute force's answers are.
 */
export function run(modules, { base, queries, dimension, truth, only, exactQueries = 200, log = () => {} }) {
  const rows = [];
  const count = queries.length / dimension;
  let reference = truth ?? exactTopK(base, queries, dimension, K);
  for (const engine of engines(modules, dimension)) {
    if (only && !only.has(engine.engine) && !only.has(`${engine.engine}/${engine.index}`)) continue;
    const used = engine.exhaustive ? Math.min(count, exactQueries) : count;
    const subset = queries.subarray(0, used * dimension);
    let built = null;
    let buildS = 0;
    for (const setting of engine.settings) {
      try {
        if (!built || engine.rebuildPerSetting) {
          const started = performance.now();
          built = engine.make(base, setting);
          buildS = (performance.now() - started) / 1000;
        }
        const measured = measure(subset, dimension, built(setting));
        const row = {
          engine: engine.engine,
          index: engine.index,
          build: engine.build,
          search: JSON.stringify(setting),
          build_s: buildS,
          qps: measured.qps,
          recall10: recall(measured.results, reference.slice(0, used), K),
          queries: used,
        };
        rows.push(row);
        log(row);
      } catch (error) {
        const row = { engine: engine.engine, index: engine.index, search: JSON.stringify(setting), error: String(error?.message ?? error) };
        rows.push(row);
        log(row);
        break;
      }
    }
  }
  return rows;
}
