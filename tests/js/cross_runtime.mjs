// The npm package's side of the cross-runtime test: load the same documents (or the same
// snapshot) as the host and the edge worker, run the same queries, and print the hits as
// one JSON value on stdout for the Rust test to compare.
//
//   node tests/js/cross_runtime.mjs --pkg wasm/pkg --dataset ../shared/datasets/pypi-minilm \
//        --docs 2000 --queries 50 [--snapshot FILE] [--export-snapshot FILE]
//        [--library NAME] [--index JSON] [--text-config JSON] [--filter JSON]
//        [--mode vector|keyword|hybrid] [--extra JSON]
//
// Without --snapshot it creates library NAME (default "crossrt"; 384-d, cosine, index
// JSON, default {"type":"flat"}) and upserts the
// first N lines of docs.jsonl, one document per line in file order, each with the
// matching row of base.fvecs as a Float32Array. With --snapshot it imports that file
// instead (it must hold a library named NAME). --filter adds a metadata filter to
// every search. --mode picks what a search sends: the query's vector (default), its
// text from queries.jsonl, or both; --extra is merged into every search request
// (fusion, rerankers, now). --text-config sets the library's text analysis.
// --export-snapshot writes the loaded
// library's snapshot, so the other runtimes can load what the browser engine built.
//
// Output: an array with one entry per query (the first Q rows of queries.fvecs, k = 10),
// each an array of {"chunk_id","document_id","score"}; scores are the engine's f32
// values widened to JS numbers, printed by JSON.stringify unchanged.
import { createReadStream } from "node:fs";
import { open, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const DIMENSION = 384;
const K = 10;

const { values: args } = parseArgs({
  options: {
    pkg: { type: "string" },
    dataset: { type: "string" },
    docs: { type: "string" },
    queries: { type: "string" },
    snapshot: { type: "string" },
    "export-snapshot": { type: "string" },
    library: { type: "string" },
    index: { type: "string" },
    filter: { type: "string" },
    "text-config": { type: "string" },
    mode: { type: "string" },
    extra: { type: "string" },
  },
  strict: true,
});
for (const required of ["pkg", "dataset", "queries"]) {
  if (args[required] === undefined) fail(`--${required} is required`);
}
if (args.snapshot === undefined && args.docs === undefined) fail("--docs is required without --snapshot");
const docCount = count("docs", args.docs ?? "0");
const queryCount = count("queries", args.queries);

function fail(message) {
  process.stderr.write(`cross_runtime: ${message}\n`);
  process.exit(2);
}

function count(name, text) {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) fail(`--${name} must be a non-negative integer, got ${text}`);
  return n;
}

/** Imports the package the way `import "arrwdb"` does in Node: through its export map. */
async function importPackage(dir) {
  const manifest = JSON.parse(await readFile(path.join(dir, "package.json"), "utf8"));
  let entry = manifest.exports?.["."]?.node ?? manifest.main;
  if (typeof entry === "object") entry = entry.import ?? entry.default;
  if (typeof entry !== "string") fail(`${dir}/package.json has no Node entry`);
  return import(pathToFileURL(path.resolve(dir, entry)).href);
}

/** The first `n` vectors of a texmex .fvecs file (int32 dimension, then float32s, LE). */
async function readFvecs(file, n) {
  const row = 4 + 4 * DIMENSION;
  const bytes = new Uint8Array(n * row);
  const handle = await open(file);
  try {
    const { bytesRead } = await handle.read(bytes, 0, bytes.length, 0);
    if (bytesRead < bytes.length) fail(`${file} holds fewer than ${n} vectors`);
  } finally {
    await handle.close();
  }
  const view = new DataView(bytes.buffer);
  return Array.from({ length: n }, (_, i) => {
    const offset = i * row;
    const dimension = view.getInt32(offset, true);
    if (dimension !== DIMENSION) fail(`${file} row ${i} has dimension ${dimension}, expected ${DIMENSION}`);
    const vector = new Float32Array(DIMENSION);
    for (let j = 0; j < DIMENSION; j++) vector[j] = view.getFloat32(offset + 4 + 4 * j, true);
    return vector;
  });
}

/** The first `n` lines of a JSON-lines file, parsed. */
async function readJsonLines(file, n) {
  const lines = [];
  if (n === 0) return lines;
  const reader = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of reader) {
    lines.push(JSON.parse(line));
    if (lines.length === n) break;
  }
  reader.close();
  if (lines.length < n) fail(`${file} holds fewer than ${n} lines`);
  return lines;
}

const LIBRARY = args.library ?? "crossrt";
const INDEX = args.index === undefined ? { type: "flat" } : JSON.parse(args.index);
const FILTER = args.filter === undefined ? undefined : JSON.parse(args.filter);
const TEXT_CONFIG = args["text-config"] === undefined ? undefined : JSON.parse(args["text-config"]);
const MODE = args.mode ?? "vector";
if (!["vector", "keyword", "hybrid"].includes(MODE)) fail(`unknown --mode ${MODE}`);
const EXTRA = args.extra === undefined ? {} : JSON.parse(args.extra);

const { default: init, Database } = await importPackage(args.pkg);
await init();
const db = new Database();

if (args.snapshot !== undefined) {
  const name = db.importSnapshot(await readFile(args.snapshot));
  if (name !== LIBRARY) fail(`snapshot holds library \`${name}\`, expected \`${LIBRARY}\``);
} else {
  db.createLibrary({
    name: LIBRARY,
    dimension: DIMENSION,
    metric: "cosine",
    index: INDEX,
    ...(TEXT_CONFIG === undefined ? {} : { text: TEXT_CONFIG }),
  });
  const [docs, vectors] = await Promise.all([
    readJsonLines(path.join(args.dataset, "docs.jsonl"), docCount),
    readFvecs(path.join(args.dataset, "base.fvecs"), docCount),
  ]);
  docs.forEach((doc, i) => {
    db.upsert(LIBRARY, {
      id: doc.id,
      metadata: doc.metadata,
      chunks: [{ text: doc.text, embedding: vectors[i] }],
    });
  });
}
if (args["export-snapshot"] !== undefined) {
  await writeFile(args["export-snapshot"], db.exportSnapshot(LIBRARY));
}

const queries = await readFvecs(path.join(args.dataset, "queries.fvecs"), queryCount);
const texts = (await readJsonLines(path.join(args.dataset, "queries.jsonl"), queryCount)).map((q) => q.text);
const results = queries.map((vector, i) => {
  const request = {
    k: K,
    include: [],
    ...(MODE === "keyword" ? {} : { vector }),
    ...(MODE === "vector" ? {} : { text: texts[i] }),
    ...(FILTER === undefined ? {} : { filter: FILTER }),
    ...EXTRA,
  };
  return db.search(LIBRARY, request).hits.map(({ chunk_id, document_id, score }) => ({
    chunk_id,
    document_id,
    score,
  }));
});
process.stdout.write(`${JSON.stringify(results)}\n`);
