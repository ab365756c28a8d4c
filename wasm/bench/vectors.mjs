// How long vectors take to leave the engine: a search of k = 100 with and without
// `include: ["vector"]`, and getDocument of a 50-chunk document, over 5,000 random
// 384-d vectors in HNSW. Give one or more built packages (default ../pkg) to compare
// them in one process:
//
//   node wasm/bench/vectors.mjs [wasm/pkg] [/path/to/another/pkg]
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
const D = 384;
const here = path.dirname(fileURLToPath(import.meta.url));
const pkgs = process.argv.length > 2 ? process.argv.slice(2) : [path.join(here, "..", "pkg")];
for (const pkg of pkgs) {
  const { Database } = await import(pathToFileURL(path.resolve(pkg, "nodejs", "index.mjs")).href);
  const db = new Database();
  db.createLibrary({ name: "b", dimension: D, index: { type: "hnsw" } });
  let s = 1; const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
  const n = 5000;
  const vectors = Float32Array.from({ length: n * D }, rnd);
  db.upsertBatch("b", { ids: Array.from({ length: n }, (_, i) => `d${i}`), vectors });
  db.upsert("b", { id: "multi", chunks: Array.from({ length: 50 }, () => ({ embedding: Float32Array.from({ length: D }, rnd) })) });
  const q = vectors.subarray(0, D);
  const time = (f, reps) => { for (let i = 0; i < 20; i++) f(); const t = process.hrtime.bigint(); for (let i = 0; i < reps; i++) f(); return Number(process.hrtime.bigint() - t) / 1e3 / reps; };
  const withVec = time(() => db.search("b", { vector: q, k: 100, include: ["vector"] }), 300);
  const without = time(() => db.search("b", { vector: q, k: 100, include: [] }), 300);
  const doc = time(() => db.getDocument("b", "multi"), 300);
  console.log(pkg, `search k=100 with vectors ${withVec.toFixed(0)} µs, without ${without.toFixed(0)} µs, getDocument(50 chunks) ${doc.toFixed(0)} µs`);
}
