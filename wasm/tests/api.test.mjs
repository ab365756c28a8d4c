// The rest of the package API in Node, against the built package (wasm/pkg/, imported
// through its export map like `import "arrwdb"`): batch writes from one flat
// Float32Array, batch deletes, typed vectors in and out, snapshots from bytes and URLs,
// the ArrwdbError class with every kind, and Database.follow over plain HTTP against
// the real host's files (no listing, like a CDN).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createReadStream, existsSync, mkdtempSync, rmSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const pkg = path.resolve(here, "..", "pkg");
const manifest = JSON.parse(await readFile(path.join(pkg, "package.json"), "utf8"));
const entry = manifest.exports["."].node;
const arrwdb = await import(pathToFileURL(path.join(pkg, entry)).href);
const { default: init, ArrwdbError, Database, PersistentDatabase, Replica, WorkerDatabase, ERROR_KINDS } = arrwdb;
await init();

function expectError(fn, kind, message) {
  assert.throws(fn, (e) => checkError(e, kind, message));
}

async function expectRejection(promise, kind, message) {
  await assert.rejects(promise, (e) => checkError(e, kind, message));
}

function checkError(e, kind, message) {
  assert.ok(e instanceof ArrwdbError, `an ArrwdbError, got ${e?.constructor?.name}: ${e?.message}`);
  assert.ok(e instanceof Error);
  assert.equal(e.name, "ArrwdbError");
  assert.equal(e.kind, kind, e.message);
  if (message instanceof RegExp) assert.match(e.message, message);
  else assert.equal(e.message, message);
  return true;
}

/** Deterministic vectors: row i is [cos(i), sin(i), i/n, 1, ...]. */
function matrix(n, dimension) {
  const out = new Float32Array(n * dimension);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < dimension; j++) out[i * dimension + j] = Math.cos(i * (j + 1)) + j / dimension;
  }
  return out;
}

test("the package's Node entry resolves through the export map", () => {
  assert.equal(entry, "./nodejs/index.mjs");
  assert.deepEqual(ERROR_KINDS, ["invalid", "not_found", "conflict", "unavailable", "internal"]);
  assert.equal(typeof PersistentDatabase.open, "function");
  assert.equal(typeof Replica.follow, "function");
  const error = new ArrwdbError("conflict", "m");
  assert.equal(error.kind, "conflict");
  assert.equal(new ArrwdbError("bogus", "m").kind, "internal");
});

test("upsertBatch stores the same documents as one upsert each, in one call", () => {
  const dimension = 6;
  const n = 50;
  const vectors = matrix(n, dimension);
  const ids = Array.from({ length: n }, (_, i) => `doc-${i}`);
  const texts = ids.map((id) => `text of ${id}`);
  const metadata = ids.map((_, i) => ({ i, group: i % 3 }));

  const batched = new Database();
  batched.createLibrary({ name: "lib", dimension, metric: "cosine" });
  assert.deepEqual(batched.upsertBatch("lib", { ids, vectors, texts, metadata }), { upserted: n, seq: 1 + n });

  const single = new Database();
  single.createLibrary({ name: "lib", dimension, metric: "cosine" });
  ids.forEach((id, i) =>
    single.upsert("lib", {
      id,
      chunks: [{ text: texts[i], embedding: vectors.subarray(i * dimension, (i + 1) * dimension), metadata: metadata[i] }],
    }),
  );
  assert.deepEqual(batched.exportSnapshot("lib"), single.exportSnapshot("lib"), "byte-identical snapshots");

  const stored = batched.getDocument("lib", "doc-7");
  assert.equal(stored.chunks[0].id, "doc-7#0");
  assert.ok(stored.chunks[0].embedding instanceof Float32Array);
  assert.deepEqual(stored.chunks[0].embedding, vectors.slice(7 * dimension, 8 * dimension));
  assert.deepEqual(stored.chunks[0].metadata, { i: 7, group: 1 });

  const query = vectors.slice(7 * dimension, 8 * dimension);
  const { hits } = batched.search("lib", { vector: query, k: 3, filter: { group: 1 }, include: ["vector", "metadata", "text"] });
  assert.equal(hits[0].chunk_id, "doc-7#0");
  assert.deepEqual(hits[0].vector, query, "stored vectors come back exactly, as Float32Arrays");
  assert.equal(hits[0].text, "text of doc-7");
  assert.ok(hits.every((h) => h.metadata.group === 1));

  // Plain number arrays and other typed arrays are accepted too.
  batched.upsertBatch("lib", { ids: ["plain"], vectors: Array.from(query) });
  batched.upsert("lib", { id: "f64", chunks: [{ embedding: Float64Array.from(query) }] });
  const top = batched.search("lib", { vector: Float64Array.from(query), k: 3 }).hits.map((h) => h.document_id).sort();
  assert.deepEqual(top, ["doc-7", "f64", "plain"]);
});

test("a bad batch is refused whole", () => {
  const db = new Database();
  db.createLibrary({ name: "lib", dimension: 2, metric: "cosine" });
  db.upsert("lib", { id: "owner", chunks: [{ id: "taken#0", embedding: [1, 0] }] });
  const before = db.exportSnapshot("lib");
  const ok = { ids: ["a", "b"], vectors: new Float32Array([1, 0, 0, 1]) };
  expectError(() => db.upsertBatch("nope", ok), "not_found", "library `nope` not found");
  expectError(
    () => db.upsertBatch("lib", { ids: ["a", "b"], vectors: new Float32Array(3) }),
    "invalid",
    "batch vectors hold 3 numbers, expected 2 ids × dimension 2 = 4",
  );
  expectError(() => db.upsertBatch("lib", { ...ok, ids: ["a", "a"] }), "invalid", "batch ids contain `a` twice");
  expectError(() => db.upsertBatch("lib", { ...ok, texts: ["x"] }), "invalid", "batch texts has 1 entries, expected one per id (2)");
  expectError(() => db.upsertBatch("lib", { ...ok, metadata: [1, 2, 3] }), "invalid", "batch metadata has 3 entries, expected one per id (2)");
  expectError(() => db.upsertBatch("lib", { ...ok, extra: 1 }), "invalid", "invalid batch: unknown field `extra`");
  expectError(() => db.upsertBatch("lib", { ...ok, ids: "ab" }), "invalid", "invalid batch: `ids` must be an array of strings");
  expectError(() => db.upsertBatch("lib", { ...ok, ids: [1, 2] }), "invalid", /^invalid batch ids: invalid type: integer `1`, expected a string$/);
  expectError(() => db.upsertBatch("lib", { ...ok, vectors: "x" }), "invalid", /`vectors` must be a Float32Array/);
  expectError(() => db.upsertBatch("lib", null), "invalid", /^invalid batch: expected an object/);
  expectError(() => db.upsertBatch("lib", { ...ok, texts: [1, 2] }), "invalid", /^invalid batch texts: invalid type: integer/);
  expectError(
    () => db.upsertBatch("lib", { ids: ["a", "b"], vectors: new Float32Array([1, 0, NaN, 1]) }),
    "invalid",
    "batch item 1: chunks[0].embedding contains a non-finite number (NaN or infinity) at position 0",
  );
  expectError(
    () => db.upsertBatch("lib", { ids: ["a", "b"], vectors: new Float32Array([1, 0, 0, 0]) }),
    "invalid",
    "batch item 1: chunks[0].embedding is all zeros, which has no cosine similarity",
  );
  expectError(
    () => db.upsertBatch("lib", { ids: ["a", "taken"], vectors: new Float32Array([1, 0, 0, 1]) }),
    "conflict",
    "batch item 1: chunk id `taken#0` already belongs to document `owner`",
  );
  assert.deepEqual(db.exportSnapshot("lib"), before, "nothing was applied");
  assert.deepEqual(db.upsertBatch("lib", { ids: [], vectors: new Float32Array(0) }), { upserted: 0, seq: 2 });
});

test("deleteDocuments removes by ids or by filter as one write; listDocuments pages", () => {
  const db = new Database();
  db.createLibrary({ name: "lib", dimension: 2, metric: "l2" });
  db.upsertBatch("lib", {
    ids: ["a", "b", "c", "d", "e"],
    vectors: matrix(5, 2),
    metadata: [{ g: 1 }, { g: 2 }, { g: 1 }, { g: 2 }, { g: 3 }],
  });
  assert.equal(db.seq("lib"), 6);
  assert.deepEqual(db.deleteDocuments("lib", ["a", "zz"]), { deleted: 1, ids: ["a"] }, "missing ids are skipped");
  assert.equal(db.seq("lib"), 7, "one record");
  assert.deepEqual(db.deleteDocuments("lib", { filter: { g: 2 } }), { deleted: 2, ids: ["b", "d"] });
  assert.deepEqual(db.deleteDocuments("lib", { ids: ["c"] }), { deleted: 1, ids: ["c"] });
  expectError(() => db.deleteDocuments("lib", { ids: ["e"], filter: { g: 3 } }), "invalid", "a bulk delete takes exactly one of `ids` and `filter`");
  expectError(() => db.deleteDocuments("lib", "e"), "invalid", /^invalid delete request: invalid type: string "e"/);
  expectError(() => db.deleteDocuments("nope", ["a"]), "not_found", "library `nope` not found");
  assert.deepEqual(db.listLibraries().map((l) => [l.name, l.documents]), [["lib", 1]]);
  expectError(() => db.getDocument("lib", "a"), "not_found", "document `a` not found in library `lib`");
  assert.equal(db.seq("nope"), 0);

  db.upsertBatch("lib", { ids: ["p", "q", "r"], vectors: matrix(3, 2), metadata: [{ g: 1 }, { g: 2 }, { g: 1 }] });
  const first = db.listDocuments("lib", { limit: 2 });
  assert.deepEqual(first.documents.map((d) => d.id), ["e", "p"]);
  assert.deepEqual(first.documents[0], { id: "e", metadata: null, chunks: 1 });
  const second = db.listDocuments("lib", { limit: 2, cursor: first.next_cursor });
  assert.deepEqual(second.documents.map((d) => d.id), ["q", "r"]);
  assert.equal(second.next_cursor ?? null, null);
  assert.deepEqual(db.listDocuments("lib", { filter: { g: 1 } }).documents.map((d) => d.id), ["p", "r"]);
  expectError(() => db.listDocuments("lib", { limit: 0 }), "invalid", "limit must be between 1 and 1000, got 0");
  expectError(() => db.listDocuments("lib", { page: 2 }), "invalid", /^invalid list request: unknown field `page`/);
});

test("ids are generated when missing, and bad JSON values are refused", () => {
  const db = new Database();
  db.createLibrary({ name: "lib", dimension: 2 });
  const { id, chunk_ids } = db.upsert("lib", { chunks: [{ embedding: new Float32Array([1, 2]) }] });
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.deepEqual(chunk_ids, [`${id}#0`]);
  expectError(() => db.upsert("lib", { chunks: [{ embedding: [1, 2], metadata: { n: 1n } }] }), "invalid", /^invalid document: /);
  const cyclic = { vector: [1, 2] };
  cyclic.self = cyclic;
  expectError(() => db.search("lib", cyclic), "invalid", /^invalid search request: /);
  expectError(() => db.importSnapshot("bytes"), "invalid", "a snapshot must be a Uint8Array or an ArrayBuffer");
  // A mix of typed and plain embeddings in one document keeps each chunk's own vector.
  db.upsert("lib", { id: "mix", chunks: [{ embedding: [3, 4] }, { embedding: new Float32Array([5, 6]) }, { embedding: [7, 8] }] });
  assert.deepEqual(db.getDocument("lib", "mix").chunks.map((c) => Array.from(c.embedding)), [[3, 4], [5, 6], [7, 8]]);
  expectError(
    () => db.upsert("lib", { id: "bad", chunks: [{ embedding: [3, 4] }, { embedding: new Float32Array([5]) }] }),
    "invalid",
    "wrong vector dimension: expected 2, got 1",
  );
});

test("browser-only features say so in Node", async () => {
  await expectRejection(
    Database.open("x"),
    "unavailable",
    "IndexedDB is not available here: use `new Database()` for an in-memory database",
  );
  await expectRejection(WorkerDatabase.spawn(), "unavailable", "Web Workers are not available here");
  await expectRejection(Database.open(""), "invalid", "a database name must be a non-empty string");
});

/** A static file server over `dir` (GET only, 404 for anything missing): a CDN. */
async function serveDirectory(dir) {
  const requests = [];
  const server = createServer(async (req, res) => {
    requests.push(req.url);
    const file = path.join(dir, decodeURIComponent(new URL(req.url, "http://x").pathname));
    if (!file.startsWith(dir) || !(await stat(file).then((s) => s.isFile(), () => false))) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/octet-stream" });
    createReadStream(file).pipe(res);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { url: `http://127.0.0.1:${server.address().port}/`, requests, close: () => server.close() };
}

test("loadSnapshot fetches one snapshot file; HTTP failures have kinds", async () => {
  const source = new Database();
  source.createLibrary({ name: "snap", dimension: 2 });
  source.upsert("snap", { id: "a", chunks: [{ embedding: [1, 2] }] });
  const dir = mkdtempSync(path.join(tmpdir(), "arrwdb-snap-"));
  const { writeFile } = await import("node:fs/promises");
  await writeFile(path.join(dir, "snap.snap"), source.exportSnapshot("snap"));
  await writeFile(path.join(dir, "junk.snap"), new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]));
  const cdn = await serveDirectory(dir);
  try {
    const db = new Database();
    assert.equal(await db.loadSnapshot(`${cdn.url}snap.snap`), "snap");
    assert.equal(db.getDocument("snap", "a").id, "a");
    assert.equal(db.importSnapshot(source.exportSnapshot("snap").buffer), "snap");
    await expectRejection(db.loadSnapshot(`${cdn.url}missing.snap`), "not_found", `GET ${cdn.url}missing.snap answered HTTP 404`);
    await expectRejection(db.loadSnapshot(`${cdn.url}junk.snap`), "internal", "corrupt snapshot: wrong magic bytes");
    await expectRejection(db.loadSnapshot("http://127.0.0.1:1/x.snap"), "unavailable", /^GET http:\/\/127\.0\.0\.1:1\/x\.snap failed: /);
  } finally {
    cdn.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

const hostBinary = path.resolve(here, "..", "..", "target", "release", "arrwdb");

test("follow replicates a library from the host's files served as plain static files", { skip: !existsSync(hostBinary) && "target/release/arrwdb is not built", timeout: 120_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "arrwdb-follow-"));
  const port = await new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const host = spawn(hostBinary, ["serve", "--addr", `127.0.0.1:${port}`, "--storage", dir], { stdio: "ignore", env: { ...process.env, RUST_LOG: "warn", ARRWDB_NO_AUTH: "true" } });
  const api = `http://127.0.0.1:${port}`;
  const call = async (method, route, body) => {
    const response = await fetch(`${api}${route}`, {
      method,
      headers: body ? { "content-type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${await response.text()}`);
    return response.status === 204 ? null : response.json();
  };
  const cdn = await serveDirectory(dir);
  let replica;
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${api}/health`)).ok) break;
      } catch {
        // not yet
      }
      if (i > 600 || host.exitCode !== null) throw new Error("the host did not start");
      await new Promise((r) => setTimeout(r, 100));
    }
    await call("POST", "/v1/libraries", { name: "pub", dimension: 3, metric: "dot" });
    await call("POST", "/v1/libraries/pub/documents", { id: "a", chunks: [{ text: "a", embedding: [1, 2, 3] }] });
    assert.equal((await fetch(`${api}/v1/libraries/pub/snapshot`, { method: "POST" })).status, 200);
    await call("POST", "/v1/libraries/pub/documents", { id: "b", chunks: [{ text: "b", embedding: [3, 2, 1] }] });

    await expectRejection(Database.follow(cdn.url, {}), "invalid", "follow needs `options.library`, the library to replicate");
    await expectRejection(Database.follow(cdn.url, { library: "pub", pollInterval: -1 }), "invalid", "pollInterval must be ≥ 0 ms, got -1");
    await expectRejection(
      Database.follow(cdn.url, { library: "nothing", pollInterval: 0 }),
      "not_found",
      `library \`nothing\` is not published under ${cdn.url}default/nothing/`,
    );

    const updates = [];
    replica = await Database.follow(cdn.url, { library: "pub", pollInterval: 0, onUpdate: (seq) => updates.push(seq) });
    assert.equal(replica.library, "pub");
    assert.equal(replica.position, 3);
    assert.ok(
      cdn.requests.some((r) => r.endsWith(".snap")),
      `started from the published snapshot: ${cdn.requests.join(" ")}`,
    );
    const query = { vector: [1, 0, 0], k: 2, include: [] };
    const hostHits = async () => (await call("POST", "/v1/libraries/pub/search", query)).hits;
    assert.deepEqual(replica.search("pub", query).hits, await hostHits());
    assert.equal(typeof replica.upsert, "undefined", "a replica is read-only");

    await call("POST", "/v1/libraries/pub/documents", { id: "c", chunks: [{ text: "c", embedding: [0, 0, 9] }] });
    await call("DELETE", "/v1/libraries/pub/documents/a");
    const seq = (await call("GET", "/v1/libraries/pub")).seq;
    assert.equal(await replica.poll(), seq);
    assert.deepEqual(updates, [seq]);
    assert.deepEqual(replica.search("pub", query).hits, await hostHits());
    assert.equal(replica.getLibrary("pub").documents, 2);

    await call("DELETE", "/v1/libraries/pub");
    await replica.poll();
    assert.equal(replica.deleted, true);
    expectError(() => replica.getLibrary("pub"), "not_found", "library `pub` not found");
  } finally {
    replica?.stop();
    cdn.close();
    const exit = once(host, "exit");
    host.kill("SIGKILL");
    await exit;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("keyword and hybrid search: BM25 with text settings, filters, fusion breakdowns, recency at now", () => {
  const db = new Database();
  const info = db.createLibrary({ name: "t", dimension: 3, text: { stemmer: "english", ascii_folding: true, stop_words: "english" } });
  assert.deepEqual(info.text, { ascii_folding: true, stop_words: "english", stemmer: "english", k1: 1.2, b: 0.75 });
  const docs = [
    ["rust", "Rust is a fast systems programming language", [1, 0, 0], "2010-01-01"],
    ["python", "Python is a popular programming language for data science", [0, 1, 0], "2025-06-01"],
    ["db", "An embedded vector database written in Rust", [0.9, 0.1, 0.1], "2025-06-01"],
    ["cafe", "Café culture and coffee", [0, 0, 1], "2020-01-01"],
  ];
  db.upsertBatch("t", {
    ids: docs.map((d) => d[0]),
    vectors: new Float32Array(docs.flatMap((d) => d[2])),
    texts: docs.map((d) => d[1]),
    metadata: docs.map((d) => ({ published: d[3] })),
  });
  const ids = (response) => response.hits.map((h) => h.document_id);

  // Keyword mode is inferred from `text` alone; hits carry their BM25 rank.
  const rust = db.search("t", { text: "rust" });
  assert.deepEqual(ids(rust), ["rust", "db"]);
  assert.deepEqual(rust.hits[0].breakdown, { keyword_score: rust.hits[0].score, keyword_rank: 1 });
  assert.deepEqual(ids(db.search("t", { text: "databases" })), ["db"], "English stemming");
  assert.deepEqual(ids(db.search("t", { text: "CAFE" })), ["cafe"], "ASCII folding and lowercasing");
  assert.deepEqual(ids(db.search("t", { text: "the and" })), [], "stop words only");
  assert.deepEqual(ids(db.search("t", { text: "programming", filter: { published: { $lt: "2012" } } })), ["rust"]);

  // Hybrid: both retrievers, fused with RRF (k = 60) by default.
  const hybrid = db.search("t", { text: "rust", vector: new Float32Array([1, 0, 0]), k: 2 });
  assert.deepEqual(ids(hybrid), ["rust", "db"]);
  const top = hybrid.hits[0].breakdown;
  assert.equal(top.vector_rank, 1);
  assert.equal(top.keyword_rank, 1);
  assert.equal(Math.fround(top.fused_score), Math.fround(2 / 61));
  const linear = db.search("t", {
    text: "rust",
    vector: [0, 1, 0],
    fusion: { method: "linear", normalization: "min_max", weights: { vector: 1, keyword: 0 } },
  });
  assert.equal(ids(linear)[0], "python", "keyword weight 0: the vector ranking decides");

  // Recency ages against `now`, which the binding fills with Date.now() when absent.
  const recency = { text: "language", rerank: [{ type: "recency", field: "published", half_life_days: 365, weight: 1 }] };
  assert.deepEqual(ids(db.search("t", { text: "language" })), ["rust", "python"], "BM25 alone");
  assert.deepEqual(ids(db.search("t", recency)), ["python", "rust"], "the 2010 document has aged");
  const defaulted = db.search("t", recency).hits;
  const explicit = db.search("t", { ...recency, now: Date.now() }).hits;
  defaulted.forEach((hit, i) => assert.ok(Math.abs(hit.score - explicit[i].score) < 1e-6, "the default is Date.now()"));
  const scores = (request) => db.search("t", request).hits.map((h) => h.score);
  assert.notDeepEqual(scores({ ...recency, now: Date.parse("2100-01-01") }), scores(recency), "an explicit now is used");

  expectError(() => db.search("t", { mode: "keyword", vector: [1, 0, 0] }), "invalid", "a keyword search needs `text`");
  expectError(() => db.search("t", { text: "x", fusion: { method: "rrf" } }), "invalid", "`fusion` applies to hybrid searches (both `vector` and `text`)");
  expectError(() => db.search("t", { text: "x", candidates: 0 }), "invalid", "candidates must be between 1 and 1000, got 0");
  expectError(() => db.search("t", { text: "x", vector: [1, 0, 0], fusion: { method: "max" } }), "invalid", /unknown variant `max`/);
  expectError(() => db.search("t", { text: "x", rerank: [{ type: "recency", half_life_days: 3 }] }), "invalid", /missing field `field`/);
});
