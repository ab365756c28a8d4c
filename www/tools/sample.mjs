// Makes (or, with --check, verifies) the playground's bundled sample of the pypi-minilm
// dataset: www/sample/pypi-minilm.json (format, documents, queries) and
// www/sample/pypi-minilm.f32 (their 384-d vectors, little-endian float32, the documents'
// rows then the queries').
//
//   node www/tools/sample.mjs [--check] [--dataset DIR]
//
// DIR defaults to ../shared/datasets/pypi-minilm next to the repository. The selection
// is deterministic: the first QUERIES held-out queries with a one-line text of 25 to 90
// characters, the NEIGHBOURS nearest base rows of each (from groundtruth.ivecs, so the
// queries find their real neighbours in the sample), then rows drawn with a fixed-seed
// generator until there are DOCUMENTS. `--check` rebuilds both files in memory and
// exits 1 if the committed ones differ.
import { createHash } from "node:crypto";
import { existsSync, openSync, readSync, closeSync, readFileSync, statSync, writeFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const QUERIES = 40;
const NEIGHBOURS = 20;
const DOCUMENTS = 2000;
const DIMENSION = 384;
const FORMAT = "arrwdb-sample";
const VERSION = 1;

const www = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: { check: { type: "boolean" }, dataset: { type: "string" } },
});
const dataset = path.resolve(values.dataset ?? path.join(www, "..", "..", "shared", "datasets", "pypi-minilm"));
const out = path.join(www, "sample");

function fail(message) {
  console.error(`sample: ${message}`);
  process.exit(1);
}

if (!existsSync(path.join(dataset, "base.fvecs"))) fail(`no dataset at ${dataset} (pass --dataset DIR)`);

/** Reads `rows` (sorted row numbers) of a texmex `.fvecs` file without loading all of it. */
function readRows(file, rows) {
  const stride = 4 + DIMENSION * 4;
  const fd = openSync(file, "r");
  const result = new Float32Array(rows.length * DIMENSION);
  const row = Buffer.alloc(stride);
  try {
    rows.forEach((r, i) => {
      if (readSync(fd, row, 0, stride, r * stride) !== stride) fail(`${file}: row ${r} is cut short`);
      if (row.readInt32LE(0) !== DIMENSION) fail(`${file}: row ${r} is not ${DIMENSION}-d`);
      for (let d = 0; d < DIMENSION; d++) result[i * DIMENSION + d] = row.readFloatLE(4 + d * 4);
    });
  } finally {
    closeSync(fd);
  }
  return result;
}

const lines = (file) => readFileSync(file, "utf8").split("\n").filter((line) => line.length > 0).map((line) => JSON.parse(line));

const queryLines = lines(path.join(dataset, "queries.jsonl"));
const chosen = [];
for (let q = 0; q < queryLines.length && chosen.length < QUERIES; q++) {
  const text = queryLines[q].text;
  if (text.length >= 25 && text.length <= 90 && !text.includes("\n")) chosen.push(q);
}
if (chosen.length < QUERIES) fail(`only ${chosen.length} usable queries`);

// Ground truth: per query, 100 nearest base rows (int32 count, then the rows).
const truth = readFileSync(path.join(dataset, "groundtruth.ivecs"));
const truthStride = 4 + 100 * 4;
const picked = new Set();
for (const q of chosen) {
  for (let j = 0; j < NEIGHBOURS; j++) picked.add(truth.readInt32LE(q * truthStride + 4 + j * 4));
}
const baseCount = statSync(path.join(dataset, "base.fvecs")).size / (4 + DIMENSION * 4);
if (!Number.isInteger(baseCount)) fail("base.fvecs is not a whole number of 384-d rows");
// xorshift32 with a fixed seed: the same rows on every machine.
let state = 0x9e3779b9;
const next = () => {
  state ^= state << 13;
  state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5;
  state >>>= 0;
  return state;
};
while (picked.size < DOCUMENTS) picked.add(next() % baseCount);
const rows = [...picked].sort((a, b) => a - b);

const docLines = lines(path.join(dataset, "docs.jsonl"));
if (docLines.length !== baseCount) fail(`docs.jsonl has ${docLines.length} lines for ${baseCount} vectors`);
const documents = rows.map((r) => {
  const { id, text, metadata } = docLines[r];
  return { id, text, metadata };
});
const queries = chosen.map((q) => ({ text: queryLines[q].text, metadata: queryLines[q].metadata }));

const docVectors = readRows(path.join(dataset, "base.fvecs"), rows);
const queryVectors = readRows(path.join(dataset, "queries.fvecs"), chosen);
const vectors = Buffer.alloc((docVectors.length + queryVectors.length) * 4);
[...docVectors, ...queryVectors].forEach((x, i) => vectors.writeFloatLE(x, i * 4));

const manifest = {
  format: FORMAT,
  version: VERSION,
  source:
    "pypi-minilm: one-line summaries of PyPI packages embedded with all-MiniLM-L6-v2 " +
    `(L2-normalized). ${QUERIES} held-out queries, the ${NEIGHBOURS} nearest documents of each, ` +
    "and documents drawn at random; made by www/tools/sample.mjs.",
  dimension: DIMENSION,
  metric: "cosine",
  vectors: {
    file: "pypi-minilm.f32",
    rows: documents.length + queries.length,
    bytes: vectors.length,
    sha256: createHash("sha256").update(vectors).digest("hex"),
  },
  documents,
  queries,
};
const json = `${JSON.stringify(manifest, null, 0).replace(/},{"id"/g, '},\n{"id"')}\n`;

const files = [
  [path.join(out, "pypi-minilm.json"), Buffer.from(json)],
  [path.join(out, manifest.vectors.file), vectors],
];
if (values.check) {
  const stale = files.filter(([file, bytes]) => !existsSync(file) || !readFileSync(file).equals(bytes));
  if (stale.length > 0) fail(`${stale.map(([file]) => path.relative(www, file)).join(", ")} do not match the dataset: run node www/tools/sample.mjs`);
  console.log(`sample: ${documents.length} documents and ${queries.length} queries match the dataset`);
} else {
  mkdirSync(out, { recursive: true });
  for (const [file, bytes] of files) writeFileSync(file, bytes);
  console.log(`sample: wrote ${documents.length} documents and ${queries.length} queries (${vectors.length} vector bytes) to ${path.relative(process.cwd(), out)}`);
}
