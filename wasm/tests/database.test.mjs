// What a user of the `arrwdb` npm package relies on, checked against the built Node
// package (`cargo xtask` builds it into wasm/pkg/): exact search matches brute force,
// writes replace and delete, snapshots round-trip, and bad input throws ArrwdbErrors
// with the core's messages.
import { test } from "node:test";
import assert from "node:assert/strict";

import init, { ArrwdbError, Database, ERROR_KINDS, toArrwdbError } from "../pkg/nodejs/index.mjs";

await init();

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomVectors(seed, count, dimension) {
  const next = rng(seed);
  return Array.from({ length: count }, () =>
    Float32Array.from({ length: dimension }, () => next() * 2 - 1),
  );
}

/** Brute-force score in f64 over the f32 inputs; "higher is closer" for every metric. */
function score(metric, q, v) {
  let dot = 0;
  let qq = 0;
  let vv = 0;
  let l2 = 0;
  for (let i = 0; i < q.length; i++) {
    dot += q[i] * v[i];
    qq += q[i] * q[i];
    vv += v[i] * v[i];
    l2 += (q[i] - v[i]) ** 2;
  }
  if (metric === "cosine") return dot / Math.sqrt(qq * vv);
  if (metric === "dot") return dot;
  return -Math.sqrt(l2);
}

function expectError(fn, kind, message) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof Error, "an Error instance");
    assert.equal(e.name, "ArrwdbError");
    assert.equal(e.kind, kind);
    if (message instanceof RegExp) assert.match(e.message, message);
    else assert.equal(e.message, message);
    return true;
  });
}

const withoutTime = ({ hits }) => hits;

const DIMENSION = 12;
const DOCS = 48;
const K = 10;

for (const metric of ["cosine", "dot", "l2"]) {
  test(`${metric}: search returns brute-force ids in brute-force order`, () => {
    const db = new Database();
    const { embedding, ...info } = db.createLibrary({ name: `lib-${metric}`, dimension: DIMENSION, metric });
    // `embedding` (the library's embedding model, if any) is being added to the core.
    assert.ok(embedding === undefined || embedding === null, `no embedding model: ${JSON.stringify(embedding)}`);
    assert.deepEqual(info, {
      id: `lib-${metric}`,
      name: `lib-${metric}`,
      dimension: DIMENSION,
      metric,
      index: { type: "flat" },
      quantization: { type: "none" },
      text: { ascii_folding: false, stop_words: "none", stemmer: "none", k1: 1.2, b: 0.75 },
      documents: 0,
      chunks: 0,
      seq: 1,
    });
    const vectors = randomVectors(7, DOCS, DIMENSION);
    vectors.forEach((embedding, i) => {
      // Half the documents pass plain arrays: both input forms must store the same floats.
      const input = i % 2 ? embedding : Array.from(embedding);
      const result = db.upsert(`lib-${metric}`, {
        id: `doc-${i}`,
        metadata: { i },
        chunks: [{ text: `text ${i}`, embedding: input }],
      });
      assert.deepEqual(result, { id: `doc-${i}`, chunk_ids: [`doc-${i}#0`] });
    });
    const stats = db.getLibrary(`lib-${metric}`);
    assert.equal(stats.documents, DOCS);
    assert.equal(stats.chunks, DOCS);
    assert.equal(stats.seq, 1 + DOCS, "one WAL record per upsert");

    for (const [qi, query] of randomVectors(99, 6, DIMENSION).entries()) {
      const expected = vectors
        .map((v, i) => ({ id: `doc-${i}`, score: score(metric, query, v) }))
        .sort((a, b) => b.score - a.score);
      // The comparison below is exact only if the data has no near-ties around the top k.
      for (let i = 0; i < K; i++) {
        assert.ok(expected[i].score - expected[i + 1].score > 1e-5, `near-tie in query ${qi}`);
      }
      const response = db.search(`lib-${metric}`, {
        vector: qi % 2 ? query : Array.from(query),
        k: K,
      });
      assert.equal(typeof response.took_ms, "number");
      assert.ok(response.took_ms >= 0);
      assert.deepEqual(
        response.hits.map((h) => h.document_id),
        expected.slice(0, K).map((e) => e.id),
        `query ${qi}`,
      );
      response.hits.forEach((hit, i) => {
        assert.equal(hit.chunk_id, `${hit.document_id}#0`);
        assert.ok(Math.abs(hit.score - expected[i].score) <= 1e-6, `${hit.score} vs ${expected[i].score}`);
        if (metric === "cosine") assert.equal(Math.fround(hit.distance), Math.fround(1 - Math.fround(hit.score)));
        if (metric === "l2") assert.equal(hit.distance, -hit.score);
        if (metric === "dot") assert.equal("distance" in hit, false);
        const n = Number(hit.document_id.slice(4));
        assert.equal(hit.text, `text ${n}`);
        assert.deepEqual(hit.metadata, null, "chunks were stored without metadata");
      });
    }
  });
}

test("hits carry plain-object metadata, text and vectors as asked", () => {
  const db = new Database();
  db.createLibrary({ name: "meta", dimension: 2, metric: "dot" });
  const metadata = { tags: ["a", "b"], nested: { year: 2024, ok: true, none: null } };
  db.upsert("meta", {
    id: "d",
    chunks: [{ id: "c", text: "hello", embedding: [1, 2], metadata }],
  });
  const [hit] = db.search("meta", { vector: [1, 0], k: 1 }).hits;
  assert.deepEqual(hit, { chunk_id: "c", document_id: "d", score: 1, text: "hello", metadata });
  assert.equal(Object.getPrototypeOf(hit.metadata), Object.prototype);
  assert.equal(Object.getPrototypeOf(hit.metadata.nested), Object.prototype);

  const [bare] = db.search("meta", { vector: [1, 0], k: 1, include: ["vector"] }).hits;
  assert.deepEqual(Object.keys(bare).sort(), ["chunk_id", "document_id", "score", "vector"]);
  assert.ok(bare.vector instanceof Float32Array);
  assert.deepEqual(Array.from(bare.vector), [1, 2]);
});

test("upsert replaces a whole document and keeps inputs untouched", () => {
  const db = new Database();
  db.createLibrary({ name: "docs", dimension: 3, metric: "l2" });
  const first = {
    id: "a",
    chunks: [
      { text: "one", embedding: new Float32Array([1, 0, 0]) },
      { text: "two", embedding: new Float32Array([0, 1, 0]) },
    ],
  };
  assert.deepEqual(db.upsert("docs", first), { id: "a", chunk_ids: ["a#0", "a#1"] });
  assert.ok(first.chunks[0].embedding instanceof Float32Array, "the caller's object is not rewritten");
  db.upsert("docs", { id: "b", chunks: [{ text: "bee", embedding: [0, 0, 1] }] });
  assert.equal(db.search("docs", { vector: [0, 1, 0], k: 1 }).hits[0].chunk_id, "a#1");

  db.upsert("docs", { id: "a", chunks: [{ id: "only", text: "new", embedding: [0, 0, 2] }] });
  const hits = db.search("docs", { vector: [0, 1, 0], k: 10 }).hits;
  assert.deepEqual(hits.map((h) => h.chunk_id), ["b#0", "only"]);
  assert.equal(db.getLibrary("docs").chunks, 2);
  const doc = db.getDocument("docs", "a");
  assert.deepEqual(doc.chunks.map((c) => c.id), ["only"]);
});

test("getDocument returns what was stored", () => {
  const db = new Database();
  db.createLibrary({ name: "g", dimension: 3 });
  const embedding = new Float32Array([0.1, -0.2, 0.3]);
  db.upsert("g", {
    id: "doc",
    metadata: { author: { name: "Ada" } },
    chunks: [
      { id: "x", text: "first", embedding, metadata: { page: 1 } },
      { text: "second", embedding: [1, 1, 1] },
    ],
  });
  const doc = db.getDocument("g", "doc");
  assert.equal(doc.id, "doc");
  assert.deepEqual(doc.metadata, { author: { name: "Ada" } });
  assert.equal(doc.chunks.length, 2);
  assert.deepEqual(
    doc.chunks.map(({ id, text, metadata }) => ({ id, text, metadata })),
    [
      { id: "x", text: "first", metadata: { page: 1 } },
      { id: "doc#1", text: "second", metadata: null },
    ],
  );
  assert.ok(doc.chunks[0].embedding instanceof Float32Array);
  assert.deepEqual(doc.chunks[0].embedding, embedding);
  assert.deepEqual(doc.chunks[1].embedding, new Float32Array([1, 1, 1]));
});

test("a document without an id gets a UUID, its chunks `{id}#{position}`", () => {
  const db = new Database();
  db.createLibrary({ name: "u", dimension: 2 });
  const { id, chunk_ids } = db.upsert("u", { chunks: [{ embedding: [1, 0] }, { embedding: [0, 1] }] });
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.deepEqual(chunk_ids, [`${id}#0`, `${id}#1`]);
  assert.equal(db.getDocument("u", id).id, id);
});

test("deleteDocument removes its hits", () => {
  const db = new Database();
  db.createLibrary({ name: "del", dimension: 2, metric: "cosine" });
  db.upsert("del", { id: "keep", chunks: [{ embedding: [1, 0] }] });
  db.upsert("del", { id: "gone", chunks: [{ embedding: [1, 0.1] }, { embedding: [0, 1] }] });
  assert.deepEqual(
    db.search("del", { vector: [1, 0.1] }).hits.map((h) => h.chunk_id),
    ["gone#0", "keep#0", "gone#1"],
  );
  assert.equal(db.deleteDocument("del", "gone"), undefined);
  assert.deepEqual(db.search("del", { vector: [1, 0.1] }).hits.map((h) => h.chunk_id), ["keep#0"]);
  assert.deepEqual(
    { documents: db.getLibrary("del").documents, chunks: db.getLibrary("del").chunks },
    { documents: 1, chunks: 1 },
  );
  expectError(() => db.getDocument("del", "gone"), "not_found", "document `gone` not found in library `del`");
  expectError(() => db.deleteDocument("del", "gone"), "not_found", "document `gone` not found in library `del`");
});

test("a snapshot imported into a fresh Database answers identically", () => {
  const db = new Database();
  db.createLibrary({ name: "snap", dimension: 8, metric: "cosine" });
  const vectors = randomVectors(3, 30, 8);
  vectors.forEach((embedding, i) =>
    db.upsert("snap", { id: `d${i}`, metadata: { i }, chunks: [{ text: `t${i}`, embedding, metadata: { even: i % 2 === 0 } }] }),
  );
  db.deleteDocument("snap", "d4");
  db.upsert("snap", { id: "d5", chunks: [{ text: "replaced", embedding: vectors[0] }] });

  const bytes = db.exportSnapshot("snap");
  assert.ok(bytes instanceof Uint8Array);
  assert.equal(new TextDecoder().decode(bytes.subarray(0, 4)), "ARWS");

  const copy = new Database();
  assert.equal(copy.importSnapshot(bytes), "snap");
  assert.deepEqual(copy.listLibraries(), db.listLibraries());
  for (const query of randomVectors(11, 5, 8)) {
    const request = { vector: query, k: 12, include: ["text", "metadata", "vector"] };
    assert.deepEqual(withoutTime(copy.search("snap", request)), withoutTime(db.search("snap", request)));
  }
  assert.deepEqual(copy.getDocument("snap", "d7"), db.getDocument("snap", "d7"));
  assert.deepEqual(copy.exportSnapshot("snap"), bytes, "export is deterministic");

  // The imported library keeps taking writes at the next sequence number.
  copy.upsert("snap", { id: "new", chunks: [{ embedding: vectors[1] }] });
  assert.equal(copy.getLibrary("snap").seq, db.getLibrary("snap").seq + 1);

  const corrupt = bytes.slice();
  corrupt[10] ^= 0xff;
  expectError(() => new Database().importSnapshot(corrupt), "internal", "corrupt snapshot: checksum mismatch");
  expectError(() => new Database().importSnapshot(new Uint8Array([1, 2])), "internal", "corrupt snapshot: too short");
  expectError(() => db.exportSnapshot("nope"), "not_found", "library `nope` not found");
});

test("libraries can be listed and deleted", () => {
  const db = new Database();
  db.createLibrary({ name: "b", dimension: 2 });
  db.createLibrary({ name: "a", dimension: 3, metric: "dot", index: { type: "flat" }, quantization: { type: "none" } });
  assert.deepEqual(db.listLibraries().map((l) => l.name), ["a", "b"]);
  db.deleteLibrary("a");
  assert.deepEqual(db.listLibraries().map((l) => l.name), ["b"]);
  expectError(() => db.deleteLibrary("a"), "not_found", "library `a` not found");
});

test("bad input throws ArrwdbErrors with the core's kind and message", () => {
  const db = new Database();
  db.createLibrary({ name: "lib", dimension: 3 });
  db.upsert("lib", { id: "owner", chunks: [{ id: "taken", embedding: [1, 1, 1] }] });
  const chunk = (embedding) => ({ chunks: [{ embedding }] });

  // Validation by the core.
  expectError(() => db.upsert("lib", chunk([1, 2])), "invalid", "wrong vector dimension: expected 3, got 2");
  expectError(
    () => db.upsert("lib", chunk(new Float32Array([1, 2, 3, 4]))),
    "invalid",
    "wrong vector dimension: expected 3, got 4",
  );
  expectError(
    () => db.upsert("lib", { chunks: [{ embedding: [1, 0, 0] }, { embedding: new Float32Array([1, NaN, 0]) }] }),
    "invalid",
    "chunks[1].embedding contains a non-finite number (NaN or infinity) at position 1",
  );
  expectError(
    () => db.upsert("lib", chunk(new Float32Array([1, 0, Infinity]))),
    "invalid",
    "chunks[0].embedding contains a non-finite number (NaN or infinity) at position 2",
  );
  expectError(
    () => db.search("lib", { vector: new Float32Array([NaN, 0, 0]) }),
    "invalid",
    "vector contains a non-finite number (NaN or infinity) at position 0",
  );
  expectError(() => db.search("lib", { vector: [1, 2] }), "invalid", "wrong vector dimension: expected 3, got 2");
  expectError(() => db.search("lib", { vector: [1, 2, 3], k: 0 }), "invalid", "k must be between 1 and 1000, got 0");
  expectError(
    () => db.search("lib", {}),
    "invalid",
    "a search needs `vector` (vector search), `text` (keyword search) or both",
  );
  expectError(() => db.upsert("lib", { chunks: [] }), "invalid", "a document needs at least one chunk");
  expectError(() => db.upsert("nope", chunk([1, 2, 3])), "not_found", "library `nope` not found");
  expectError(() => db.search("nope", { vector: [1, 2, 3] }), "not_found", "library `nope` not found");
  expectError(() => db.getLibrary("nope"), "not_found", "library `nope` not found");
  expectError(() => db.createLibrary({ name: "lib", dimension: 3 }), "conflict", "library `lib` already exists");
  expectError(
    () => db.upsert("lib", { id: "other", chunks: [{ id: "taken", embedding: [1, 0, 0] }] }),
    "conflict",
    "chunk id `taken` already belongs to document `owner`",
  );
  expectError(() => db.createLibrary({ name: "x", dimension: 0 }), "invalid", "dimension must be between 1 and 4096, got 0");
  expectError(
    () => db.createLibrary({ name: "has space", dimension: 2 }),
    "invalid",
    'library name must be 1 to 64 characters of A-Z, a-z, 0-9, `_` or `-`, got "has space"',
  );

  // Malformed request objects: the shape errors of the core's serde types.
  expectError(
    () => db.createLibrary({ name: "x", dimension: "3" }),
    "invalid",
    'invalid library options: invalid type: string "3", expected u32',
  );
  expectError(
    () => db.createLibrary({ name: "x", dimension: 3, metrik: "dot" }),
    "invalid",
    /^invalid library options: unknown field `metrik`, expected one of /,
  );
  expectError(
    () => db.createLibrary({ name: "x", dimension: 3, metric: "hamming" }),
    "invalid",
    /^invalid library options: unknown variant `hamming`/,
  );
  expectError(() => db.createLibrary(undefined), "invalid", /^invalid library options: invalid type: null/);
  expectError(() => db.upsert("lib", { id: "d" }), "invalid", "invalid document: missing field `chunks`");
  expectError(() => db.upsert("lib", { chunks: "many" }), "invalid", /^invalid document: invalid type: string "many"/);
  expectError(
    () => db.upsert("lib", { chunks: [{ embedding: new Float32Array(3).fill(1), vector: [] }] }),
    "invalid",
    /^invalid document: unknown field `vector`/,
  );
  expectError(() => db.upsert("lib", { chunks: [{ embedding: ["a", 1, 2] }] }), "invalid", /^invalid document: invalid type: string "a"/);
  expectError(() => db.upsert("lib", 42), "invalid", /^invalid document: invalid type/);
  expectError(() => db.search("lib", { vector: [1, 0, 0], limit: 3 }), "invalid", /^invalid search request: unknown field `limit`/);

  // Nothing above changed the library.
  assert.equal(db.getLibrary("lib").seq, 2);
  assert.equal(db.getLibrary("lib").chunks, 1);
});

test("rebuild switches the index and optimize compacts, keeping the results", () => {
  const db = new Database();
  db.createLibrary({ name: "lib", dimension: DIMENSION, metric: "cosine" });
  const vectors = randomVectors(11, 200, DIMENSION);
  vectors.forEach((embedding, i) => db.upsert("lib", { id: `d${i}`, chunks: [{ text: `t${i}`, embedding }] }));
  for (let i = 0; i < 200; i += 3) db.deleteDocument("lib", `d${i}`);
  const live = 200 - Math.ceil(200 / 3);
  const queries = randomVectors(12, 10, DIMENSION);
  const exact = queries.map((vector) => withoutTime(db.search("lib", { vector, k: K })));
  const before = db.exportSnapshot("lib").length;

  const rebuilt = db.rebuild("lib", { index: { type: "hnsw", m: 8 } });
  assert.deepEqual(rebuilt.index, { type: "hnsw", m: 8, ef_construction: 200, ef_search: 64, seed: 0x5eed });
  assert.equal(rebuilt.chunks, live);
  assert.deepEqual(db.getLibrary("lib").index, rebuilt.index);
  // Each document finds itself first through the graph.
  for (const i of [1, 2, 50, 199]) {
    assert.equal(db.search("lib", { vector: vectors[i], k: 1 }).hits[0].document_id, `d${i}`);
  }

  const optimized = db.optimize("lib");
  assert.equal(optimized.chunks, live);
  assert.equal(optimized.seq, rebuilt.seq + 1);
  assert.deepEqual(optimized.index, rebuilt.index);
  db.rebuild("lib", { index: { type: "flat" } });
  // Exact results are bit-identical after compaction, and the snapshot is smaller.
  queries.forEach((vector, i) => assert.deepEqual(withoutTime(db.search("lib", { vector, k: K })), exact[i]));
  assert.ok(db.exportSnapshot("lib").length < before, "optimize shrinks the snapshot");

  expectError(() => db.rebuild("lib", { index: { type: "hnsw", m: 1 } }), "invalid", /`m` must be between 2 and 128, got 1/);
  expectError(() => db.rebuild("lib", { index: { type: "flat" }, extra: 1 }), "invalid", /^invalid rebuild options: unknown field `extra`/);
  expectError(() => db.rebuild("nope", { index: { type: "flat" } }), "not_found", "library `nope` not found");
  expectError(() => db.optimize("nope"), "not_found", "library `nope` not found");
});

test("request limits: k, chunk text and id sizes", () => {
  const db = new Database();
  db.createLibrary({ name: "lib", dimension: 3 });
  const embedding = [1, 0, 0];
  expectError(() => db.search("lib", { vector: embedding, k: 1001 }), "invalid", "k must be between 1 and 1000, got 1001");
  expectError(
    () => db.upsert("lib", { id: "big", chunks: [{ text: "x".repeat(70 * 1024), embedding }] }),
    "invalid",
    "chunks[0].text is 71680 bytes of UTF-8, more than the limit of 65536 bytes (64 KiB)",
  );
  expectError(() => db.upsert("lib", { id: "d".repeat(600), chunks: [{ embedding }] }), "invalid", /^document id must be 1 to 512 bytes/);
  db.upsert("lib", { id: "d".repeat(512), chunks: [{ id: "c".repeat(512), text: "x".repeat(64 * 1024), embedding }] });
  assert.equal(db.search("lib", { vector: embedding, k: 1000 }).hits.length, 1);
});

test("search bounds and per-query parameters: min_score, distance_threshold, params", () => {
  const db = new Database();
  const vectors = randomVectors(7, 300, DIMENSION);
  const query = randomVectors(8, 1, DIMENSION)[0];
  for (const [name, index] of [["flat", { type: "flat" }], ["hnsw", { type: "hnsw", m: 8, ef_construction: 64, seed: 3 }], ["ivf", { type: "ivf", nlist: 4, nprobe: 1, train_size: 64, seed: 3 }]]) {
    db.createLibrary({ name, dimension: DIMENSION, index });
    db.upsertBatch(name, { ids: vectors.map((_, i) => `d${i}`), vectors: Float32Array.from(vectors.flatMap((v) => [...v])) });
  }
  const exact = vectors
    .map((v, i) => ({ id: `d${i}#0`, score: score("cosine", query, v) }))
    .sort((a, b) => b.score - a.score);

  // Bounds are applied to the exact scores: everything above 0.3, at most k.
  const above = exact.filter((h) => h.score >= 0.3);
  assert.ok(above.length > 3 && above.length < 50, `a threshold that cuts (${above.length} above)`);
  const bounded = db.search("flat", { vector: query, k: 100, min_score: 0.3, include: [] }).hits;
  assert.deepEqual(bounded.map((h) => h.chunk_id), above.map((h) => h.id));
  // distance_threshold 0.7 on cosine is the same bound (distance = 1 - score).
  const near = db.search("flat", { vector: query, k: 100, distance_threshold: 0.7, include: [] }).hits;
  assert.deepEqual(near.map((h) => h.chunk_id), exact.filter((h) => 1 - h.score <= 0.7).map((h) => h.id));
  assert.ok(near.every((h) => Math.abs(h.distance - (1 - h.score)) < 1e-6));
  expectError(() => db.search("flat", { vector: query, distance_threshold: -0.1 }), "invalid", "`distance_threshold` must be a finite number of at least 0");

  // params: a search as wide as the library is exact; the narrowest is not worse than nothing.
  const top10 = exact.slice(0, 10).map((h) => h.id);
  assert.deepEqual(db.search("hnsw", { vector: query, k: 10, params: { ef: 300 }, include: [] }).hits.map((h) => h.chunk_id), top10);
  assert.deepEqual(db.search("ivf", { vector: query, k: 10, params: { nprobe: 4 }, include: [] }).hits.map((h) => h.chunk_id), top10);
  const narrow = db.search("ivf", { vector: query, k: 10, params: { nprobe: 1 }, include: [] }).hits;
  assert.equal(narrow.length, 10);
  expectError(() => db.search("hnsw", { vector: query, params: { ef: 0 } }), "invalid", "`params.ef` must be between 1 and 4096, got 0");
  expectError(() => db.search("ivf", { vector: query, params: { nprobe: 0 } }), "invalid", "`params.nprobe` must be between 1 and 65536, got 0");
  expectError(() => db.search("hnsw", { vector: query, params: { ef: 1.5 } }), "invalid", /^invalid search request: invalid type: floating point `1.5`, expected u32/);
  expectError(() => db.search("hnsw", { vector: query, params: { m: 4 } }), "invalid", /^invalid search request: unknown field `m`, expected `ef` or `nprobe`/);
});

test("binary quantization rescoring returns exact scores", () => {
  const db = new Database();
  const vectors = randomVectors(11, 200, DIMENSION);
  const query = randomVectors(12, 1, DIMENSION)[0];
  db.createLibrary({ name: "bin", dimension: DIMENSION, quantization: { type: "binary", oversample: 64 } });
  db.upsertBatch("bin", { ids: vectors.map((_, i) => `d${i}`), vectors: Float32Array.from(vectors.flatMap((v) => [...v])) });
  assert.deepEqual(db.getLibrary("bin").quantization, { type: "binary", oversample: 64 });
  const exact = vectors.map((v, i) => ({ id: `d${i}#0`, score: score("cosine", query, v) })).sort((a, b) => b.score - a.score);
  // 5 × 64 candidates cover all 200 codes, so the rescored top 5 is the exact one.
  const hits = db.search("bin", { vector: query, k: 5, include: [] }).hits;
  assert.deepEqual(hits.map((h) => h.chunk_id), exact.slice(0, 5).map((h) => h.id));
  hits.forEach((h, i) => assert.ok(Math.abs(h.score - exact[i].score) < 1e-5, `${h.chunk_id}: ${h.score} vs ${exact[i].score}`));
});

test("position and length rerankers blend their feature into the order", () => {
  const db = new Database();
  db.createLibrary({ name: "r", dimension: 2 });
  // Chunk 0 is the farthest from the query; texts of 10, 5 and 40 characters.
  db.upsert("r", {
    id: "d",
    chunks: [
      { text: "0123456789", embedding: [0, 1] },
      { text: "abcde", embedding: [1, 0.2] },
      { text: "x".repeat(40), embedding: [1, 0] },
    ],
  });
  const ask = (rerank) => db.search("r", { vector: [1, 0], include: [], rerank }).hits.map((h) => [h.chunk_id, h.score]);
  assert.deepEqual(ask(undefined).map(([id]) => id), ["d#2", "d#1", "d#0"]);
  // Weight 1: the feature alone, 1 / (1 + position).
  // (Scores cross as JSON text, the shortest decimal of the f32: compare as f32.)
  const asF32 = (hits) => hits.map(([id, s]) => [id, Math.fround(s)]);
  assert.deepEqual(asF32(ask([{ type: "position", weight: 1 }])), [["d#0", 1], ["d#1", 0.5], ["d#2", Math.fround(1 / 3)]]);
  // Length near 10 characters: min(len, 10) / max(len, 10).
  assert.deepEqual(ask([{ type: "length", target: 10, weight: 1 }]), [["d#0", 1], ["d#1", 0.5], ["d#2", 0.25]]);
  // Weight 0.5: half the min-max normalized vector score (d#2: 1, d#1: cos = 0.981,
  // d#0: 0) and half the feature: d#1 0.740, d#2 0.667, d#0 0.5.
  const blended = ask([{ type: "position", weight: 0.5 }]);
  assert.deepEqual(blended.map(([id]) => id), ["d#1", "d#2", "d#0"]);
  const cos = 1 / Math.sqrt(1.04);
  const expected = [0.5 * cos + 0.25, 0.5 + 0.5 / 3, 0.5];
  blended.forEach(([id, got], i) => assert.ok(Math.abs(got - expected[i]) < 1e-6, `${id}: ${got} vs ${expected[i]}`));
  expectError(() => ask([{ type: "length", target: 0 }]), "invalid", "rerank[0].target must be at least 1");
  expectError(() => ask([{ type: "position", weight: 2 }]), "invalid", /^rerank\[0\]\.weight must be between 0 and 1/);
});

test("free releases the engine: later calls are `invalid`, a second free does nothing", () => {
  const db = new Database();
  db.createLibrary({ name: "lib", dimension: 2 });
  db.upsert("lib", { id: "a", chunks: [{ embedding: [1, 0] }] });
  db.free();
  const freed = "this database was freed: free() released its memory for good";
  expectError(() => db.listLibraries(), "invalid", freed);
  expectError(() => db.search("lib", { vector: [1, 0] }), "invalid", freed);
  expectError(() => db.seq("lib"), "invalid", freed);
  expectError(() => db.upsert("lib", { id: "b", chunks: [{ embedding: [0, 1] }] }), "invalid", freed);
  expectError(() => db.exportSnapshot("lib"), "invalid", freed);
  db.free();
});

test("toArrwdbError keeps engine errors and wraps anything else", () => {
  const own = new ArrwdbError("conflict", "taken");
  assert.equal(toArrwdbError(own), own);
  // An error that crossed a worker or realm boundary as a plain Error keeps kind and text.
  const crossed = Object.assign(new Error("library `x` not found"), { name: "ArrwdbError", kind: "not_found" });
  const kept = toArrwdbError(crossed);
  assert.ok(kept instanceof ArrwdbError);
  assert.deepEqual([kept.kind, kept.message], ["not_found", "library `x` not found"]);
  const wrapped = toArrwdbError(new TypeError("boom"), "unavailable");
  assert.deepEqual([wrapped.kind, wrapped.message, wrapped.cause.name], ["unavailable", "boom", "TypeError"]);
  assert.deepEqual([toArrwdbError("text").kind, toArrwdbError("text").message], ["internal", "text"]);
  assert.equal(new ArrwdbError("no such kind", "x").kind, "internal", "unknown kinds become internal");
  assert.deepEqual(ERROR_KINDS, ["invalid", "not_found", "conflict", "unavailable", "internal"]);
});

test("hit vectors and document embeddings come back bit-exact, each in its own Float32Array", () => {
  const db = new Database();
  const d = 7;
  db.createLibrary({ name: "v", dimension: d });
  const vectors = randomVectors(21, 20, d);
  db.upsertBatch("v", { ids: vectors.map((_, i) => `d${i}`), vectors: Float32Array.from(vectors.flatMap((v) => [...v])) });
  const { hits } = db.search("v", { vector: vectors[3], k: 5, include: ["vector"] });
  assert.equal(hits.length, 5);
  assert.equal(hits[0].chunk_id, "d3#0");
  for (const hit of hits) {
    assert.ok(hit.vector instanceof Float32Array);
    assert.equal(hit.vector.buffer.byteLength, d * 4, "not a view into a shared buffer");
    assert.deepEqual(hit.vector, vectors[Number(hit.document_id.slice(1))], hit.chunk_id);
  }
  assert.ok(db.search("v", { vector: vectors[3], k: 5, include: [] }).hits.every((h) => !("vector" in h)));

  const chunks = randomVectors(22, 3, d);
  db.upsert("v", { id: "multi", chunks: chunks.map((embedding, i) => ({ text: `chunk ${i}`, embedding })) });
  const doc = db.getDocument("v", "multi");
  assert.deepEqual(doc.chunks.map((c) => c.text), ["chunk 0", "chunk 1", "chunk 2"]);
  doc.chunks.forEach((c, i) => {
    assert.deepEqual(c.embedding, chunks[i]);
    assert.equal(c.embedding.buffer.byteLength, d * 4);
  });
});
