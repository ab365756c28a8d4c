// The npm benchmark in Node: arrwdb against hnswlib-wasm, edgevec and voy-search on the
// first N vectors of the pypi-minilm dataset (384-d MiniLM embeddings), in one run.
//
//   cd wasm/bench && npm ci && node node.mjs [--n 20000] [--queries 200] [--pkg ../pkg]
//       [--dataset ../../../shared/datasets/pypi-minilm] [--only arrwdb,hnswlib,edgevec,voy]
//
// Prints one JSON line per engine (build seconds, QPS on one thread, recall@10 against
// exact search) and the gzipped size of each package's .wasm.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { run } from "./engines.mjs";
import { readFvecsFlat } from "./fvecs.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    n: { type: "string", default: "20000" },
    queries: { type: "string", default: "200" },
    pkg: { type: "string", default: path.join(here, "..", "pkg") },
    dataset: { type: "string", default: path.join(here, "..", "..", "..", "shared", "datasets", "pypi-minilm") },
    only: { type: "string", default: "arrwdb,hnswlib,edgevec,voy" },
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
  // hnswlib-wasm's Emscripten build targets the web only; it runs in browser.mjs.
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
const base = await readFvecsFlat(path.join(args.dataset, "base.fvecs"), n, DIMENSION);
const queries = await readFvecsFlat(path.join(args.dataset, "queries.fvecs"), q, DIMENSION);
console.log(JSON.stringify({ runtime: `node ${process.version}`, n, queries: q, dimension: DIMENSION }));
for (const row of unavailable) console.log(JSON.stringify(row));
run(modules, { base, queries, dimension: DIMENSION, log: (row) => console.log(JSON.stringify(row)) });
console.log(JSON.stringify({ wasm_gzipped_bytes: sizes }));
