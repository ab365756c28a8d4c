// The Node side of the runtime benchmark (tests/bench/runtimes.py): the npm package's
// cold start from a snapshot file and its per-query latency on the same index the
// native and wasmtime sides load.
//
//   node coldstart.mjs --snapshot FILE --dataset DIR [--queries 100] [--params '{"ef":64}']
//       [--pkg ../pkg]
//
// Prints one JSON line in the format the other runtimes use: `init_ms` (importing the
// package, which compiles its .wasm), then the cold start (`read_ms`: the file into
// memory, `restore_ms`: Database#importSnapshot, `first_query_ms`: query 0; `cold_ms`
// their sum), then every query's latency (`latencies_ms`: its fastest of 3 passes, after a warm-up) and the ids
// found (`ids`). tests/bench/runtimes.py computes percentiles and recall from them.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { readFvecsFlat } from "./fvecs.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    snapshot: { type: "string" },
    dataset: { type: "string", default: path.join(here, "..", "..", "..", "shared", "datasets", "pypi-minilm") },
    queries: { type: "string", default: "100" },
    params: { type: "string", default: "{}" },
    pkg: { type: "string", default: path.join(here, "..", "pkg") },
  },
});
if (!args.snapshot) throw new Error("--snapshot FILE is required");
const DIMENSION = 384;
const K = 10;
const WARMUP = 20;

const count = Number(args.queries);
const flat = await readFvecsFlat(path.join(args.dataset, "queries.fvecs"), count, DIMENSION);
const queries = Array.from({ length: count }, (_, q) => flat.slice(q * DIMENSION, (q + 1) * DIMENSION));
const params = JSON.parse(args.params);

const initStarted = performance.now();
const { Database } = await import(pathToFileURL(path.join(args.pkg, "nodejs", "index.mjs")).href);
const db = new Database();
const initMs = performance.now() - initStarted;

const search = (vector) =>
  db.search("bench", { vector, k: K, params, include: [] }).hits.map((h) => Number(h.chunk_id ?? h.document_id));

const started = performance.now();
const bytes = readFileSync(args.snapshot);
const readMs = performance.now() - started;
const restored = performance.now();
const name = db.importSnapshot(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
const restoreMs = performance.now() - restored;
if (name !== "bench") throw new Error(`the snapshot holds library ${name}, not bench`);
const first = performance.now();
const firstIds = search(queries[0]);
const firstQueryMs = performance.now() - first;
const coldMs = performance.now() - started;

for (const query of queries.slice(0, WARMUP)) search(query);
// Each query's latency is its fastest of PASSES timed passes (as in the other runtimes).
const PASSES = 3;
// Each pass starts at another query, so a periodic stall does not hit the same queries
// in every pass. CPU time: the main thread's on-CPU ns (/proc/thread-self/schedstat),
// which does not grow while other processes hold the core.
const threadCpuNs = () => {
  try {
    return Number(readFileSync("/proc/thread-self/schedstat", "utf8").split(" ")[0]);
  } catch {
    return null;
  }
};
const latencies = queries.map(() => Infinity);
const ids = queries.map(() => []);
const cpuBefore = threadCpuNs();
for (let pass = 0; pass < PASSES; pass++) {
  const start = (pass * (Math.floor(count / PASSES) + 1)) % count;
  for (let i = 0; i < count; i++) {
    const q = (start + i) % count;
    const one = performance.now();
    const found = search(queries[q]);
    latencies[q] = Math.min(latencies[q], performance.now() - one);
    if (pass === 0) ids[q] = found;
  }
}
const cpuAfter = threadCpuNs();
const cpuMsPerQuery = cpuBefore === null || cpuAfter === null ? null : (cpuAfter - cpuBefore) / 1e6 / (PASSES * count);
if (JSON.stringify(ids[0]) !== JSON.stringify(firstIds)) throw new Error("the first answer differs from a warm one");
console.log(
  JSON.stringify({
    runtime: "node",
    node: process.version,
    init_ms: initMs,
    read_ms: readMs,
    restore_ms: restoreMs,
    first_query_ms: firstQueryMs,
    cold_ms: coldMs,
    cpu_ms_per_query: cpuMsPerQuery,
    latencies_ms: latencies,
    ids,
  }),
);
