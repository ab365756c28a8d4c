// The npm benchmark in Node: arrwdb against hnswlib-wasm, edgevec, voy-search and a
// brute-force scan in JavaScript on the first N vectors of the pypi-minilm dataset
// (384-d MiniLM embeddings), in one run. `cargo xtask bench` runs it (tests/bench/peers.py).
//
//   cd wasm/bench && npm ci && node node.mjs [--n 20000] [--queries 200] [--pkg ../pkg]
//       [--dataset ../../../shared/datasets/pypi-minilm] [--only arrwdb,hnswlib,edgevec,voy,brute]
//       [--small edgevec,voy] [--small-n 20000] [--exact-queries 200]
//
// Exhaustive engines (arrwdb flat, voy's kd-tree in 384 dimensions, the brute force)
// answer the first --exact-queries queries only.
// The engines named in --small build too slowly for the whole set within the
// benchmark's time budget (edgevec takes minutes for 20k vectors here and is built once
// per ef): they run on the first --small-n vectors, beside arrwdb's hnsw on the same
// vectors.
//
// Prints one JSON line per engine and search setting (build seconds, QPS on one thread,
// recall@10 against exact search: the dataset's groundtruth.ivecs when N is the whole
// set, the brute-force answers otherwise), then the packages' versions and the gzipped
// size of each package's .wasm.
import { existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { run } from "./engines.mjs";
import { readFvecsFlat, readIvecs } from "./fvecs.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    n: { type: "string", default: "20000" },
    queries: { type: "string", default: "200" },
    pkg: { type: "string", default: path.join(here, "..", "pkg") },
    dataset: { type: "string", default: path.join(here, "..", "..", "..", "shared", "datasets", "pypi-minilm") },
    only: { type: "string", default: "arrwdb,hnswlib,edgevec,voy,brute" },
    small: { type: "string", default: "edgevec,voy" },
    "small-n": { type: "string", default: "20000" },
    "exact-queries": { type: "string", default: "200" },
  },
});
const DIMENSION = 384;

const modulePath = (name, file) => path.join(here, "node_modules", name, file);
const only = new Set(args.only.split(","));
const modules = {};
const sizes = {};
const gz = (file) => gzipSync(readFileSync(file), { level: 9 }).length;

if (only.has("arrwdb")) {
  modules.arrwdb = await import(pathToFileURL(path.join(args.pkg, "nodejs", "index.mjs")).href);
  sizes.arrwdb = gz(path.join(args.pkg, "web", "arrwdb_wasm_bg.wasm"));
}
const unavailable = [];
if (only.has("hnswlib")) {
  // hnswlib-wasm's Emscripten build accepts only the web or a worker ("not compiled for
  // this environment" otherwise); with a worker's globals it runs in Node (its .wasm is
  // inlined in the .js, so nothing is fetched).
  globalThis.importScripts ??= () => {};
  globalThis.self ??= globalThis;
  globalThis.location ??= { href: pathToFileURL(modulePath("hnswlib-wasm", "dist/")).href };
  // It also mounts an IndexedDB file system at load; Node has no IndexedDB, so the
  // package's test tools' in-memory one stands in (wasm/tools, installed by the build).
  const fakeIdb = path.join(here, "..", "tools", "node_modules", "fake-indexeddb", "auto", "index.mjs");
  if (!globalThis.indexedDB && existsSync(fakeIdb)) await import(pathToFileURL(fakeIdb).href);
  try {
    const { loadHnswlib } = await import(pathToFileURL(modulePath("hnswlib-wasm", "dist/hnswlib.js")).href);
    modules.hnswlib = await loadHnswlib();
  } catch (error) {
    unavailable.push({ engine: "hnswlib-wasm", error: String(error.message).split("\n")[0] });
  }
  sizes.hnswlib = gz(modulePath("hnswlib-wasm", "dist/hnswlib-317962d7.js"));
}
if (only.has("edgevec")) {
  const edgevec = await import(pathToFileURL(modulePath("edgevec", "edgevec.js")).href);
  await edgevec.default({ module_or_path: readFileSync(modulePath("edgevec", "edgevec_bg.wasm")) });
  modules.edgevec = edgevec;
  sizes.edgevec = gz(modulePath("edgevec", "edgevec_bg.wasm"));
}
if (only.has("voy")) {
  // voy-search ships a bundler build (`import * as wasm from "./x.wasm"`): instantiate by hand.
  const bg = await import(pathToFileURL(modulePath("voy-search", "voy_search_bg.js")).href);
  const { instance } = await WebAssembly.instantiate(readFileSync(modulePath("voy-search", "voy_search_bg.wasm")), {
    "./voy_search_bg.js": bg,
  });
  bg.__wbg_set_wasm(instance.exports);
  modules.voy = bg;
  sizes.voy = gz(modulePath("voy-search", "voy_search_bg.wasm"));
}

const n = Number(args.n);
const q = Number(args.queries);
const smallN = Math.min(n, Number(args["small-n"]));
const small = new Set(args.small.split(",").filter((e) => only.has(e)));
const names = { arrwdb: "arrwdb-wasm", hnswlib: "hnswlib-wasm", edgevec: "edgevec", voy: "voy", brute: "js brute force" };
const queries = await readFvecsFlat(path.join(args.dataset, "queries.fvecs"), q, DIMENSION);
const baseRows = statSync(path.join(args.dataset, "base.fvecs")).size / (4 + 4 * DIMENSION);
const truthFile = path.join(args.dataset, "groundtruth.ivecs");
for (const row of unavailable) console.log(JSON.stringify(row));
// Engines too slow to build N vectors within the benchmark's time (see --small) run in a
// second pass on the first --small-n vectors, beside arrwdb's hnsw (full vectors and
// SQ8), its flat index and the brute force on the same vectors, so their ratios stay
// pair by pair on equal data.
const passes = [{ n, engines: [...only].filter((e) => smallN === n || !small.has(e)).map((e) => names[e] ?? e) }];
if (smallN < n && small.size) passes.push({ n: smallN, engines: ["arrwdb-wasm/hnsw", "arrwdb-wasm/hnsw+sq8", "arrwdb-wasm/flat", "js brute force", ...[...small].map((e) => names[e] ?? e)] });
for (const pass of passes) {
  const base = await readFvecsFlat(path.join(args.dataset, "base.fvecs"), pass.n, DIMENSION);
  const truth = pass.n === baseRows && existsSync(truthFile) ? readIvecs(truthFile, q, 10) : undefined;
  console.log(JSON.stringify({ runtime: `node ${process.version}`, n: pass.n, queries: q, dimension: DIMENSION, truth: truth ? "groundtruth.ivecs" : "js brute force", engines: pass.engines }));
  run(modules, {
    base,
    queries,
    dimension: DIMENSION,
    truth,
    only: new Set(pass.engines),
    exactQueries: Number(args["exact-queries"]),
    log: (row) => console.log(JSON.stringify({ ...row, n: pass.n })),
  });
}
const version = (dir) => JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")).version;
const versions = { node: process.version, arrwdb: version(args.pkg) };
for (const name of ["hnswlib-wasm", "edgevec", "voy-search"]) versions[name] = version(path.join(here, "node_modules", name));
console.log(JSON.stringify({ versions, params: { hnsw: "M=16 efC=200, ef swept (edgevec: built once per ef, on the first small-n vectors)", k: 10 } }));
console.log(JSON.stringify({ wasm_gzipped_bytes: sizes }));
