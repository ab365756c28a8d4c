// `withEmbedder`: text-only documents and searches in the npm package, with a real
// (small, deterministic) embedding function: hashed bag of words, L2-normalized. A
// user plugs transformers.js the same way.
import { test } from "node:test";
import assert from "node:assert/strict";

import init, { ArrwdbError, Database, withEmbedder } from "../pkg/nodejs/index.mjs";

await init();

const DIM = 64;

function words(text) {
  return text.toLowerCase().match(/[a-z0-9]+/g) ?? [];
}

/** FNV-1a of a word, as a bucket. */
function bucket(word) {
  let h = 0x811c9dc5;
  for (const c of word) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return h % DIM;
}

function bagOfWords(texts) {
  return texts.map((text) => {
    const v = new Float32Array(DIM);
    for (const w of words(text)) v[bucket(w)] += 1;
    const norm = Math.hypot(...v) || 1;
    return v.map((x) => x / norm);
  });
}

const TEXTS = [
  "fast vector search in the browser",
  "durable storage with snapshots and a write-ahead log",
  "hybrid ranking fuses keyword and vector scores",
  "edge functions answer near the user",
  "rate limits protect every tenant",
];

function library() {
  const calls = [];
  const embed = async (texts, purpose) => {
    calls.push({ texts, purpose });
    return bagOfWords(texts);
  };
  const db = withEmbedder(new Database(), embed, { batchSize: 2 });
  db.createLibrary({ name: "notes", dimension: DIM, metric: "cosine" });
  return { db, calls };
}

test("text-only chunks are embedded, in batches, and found by their own text", async () => {
  const { db, calls } = library();
  for (const [i, text] of TEXTS.entries()) {
    await db.upsert("notes", { id: `n${i}`, chunks: [{ text }] });
  }
  // A document with three text chunks goes out in batches of two.
  calls.length = 0;
  await db.upsert("notes", { id: "multi", chunks: [{ text: "a b" }, { text: "c d" }, { text: "e f" }] });
  assert.deepEqual(calls.map((c) => c.texts.length), [2, 1]);
  assert.ok(calls.every((c) => c.purpose === "document"));
  // The stored vector is the function's.
  const stored = db.getDocument("notes", "n0").chunks[0].embedding;
  assert.deepEqual(Array.from(stored), Array.from(bagOfWords([TEXTS[0]])[0]));
  for (const [i, text] of TEXTS.entries()) {
    const vector = await db.search("notes", { text, mode: "vector", k: 1 });
    assert.equal(vector.hits[0].document_id, `n${i}`);
    const hybrid = await db.search("notes", { text, k: 1 });
    assert.equal(hybrid.hits[0].document_id, `n${i}`);
    assert.equal(typeof hybrid.hits[0].breakdown.vector_rank, "number", "no mode: hybrid");
  }
  assert.equal(calls.at(-1).purpose, "query");
});

test("keyword searches and chunks with vectors never call the function", async () => {
  const { db, calls } = library();
  await db.upsert("notes", { id: "v", chunks: [{ text: "has a vector", embedding: bagOfWords(["x"])[0] }] });
  await db.search("notes", { text: "vector", mode: "keyword" });
  assert.equal(calls.length, 0);
  // Other methods are the database's own.
  assert.equal(db.getLibrary("notes").documents, 1);
  assert.equal(db.listDocuments("notes").documents[0].id, "v");
});

test("a failing or wrong embedding function writes nothing and throws ArrwdbError", async () => {
  const db = new Database();
  db.createLibrary({ name: "l", dimension: DIM });
  const failing = withEmbedder(db, async () => {
    throw new Error("model not loaded");
  });
  await assert.rejects(failing.upsert("l", { id: "a", chunks: [{ text: "x" }] }), (e) => {
    assert.ok(e instanceof ArrwdbError);
    assert.equal(e.kind, "unavailable");
    assert.match(e.message, /model not loaded/);
    return true;
  });
  const wrongDimension = withEmbedder(db, async (texts) => texts.map(() => new Float32Array(3)));
  await assert.rejects(wrongDimension.upsert("l", { id: "a", chunks: [{ text: "x" }] }), (e) => {
    assert.equal(e.kind, "invalid");
    assert.match(e.message, /3-dimensional.*dimension 64/);
    return true;
  });
  const tooFew = withEmbedder(db, async () => []);
  await assert.rejects(tooFew.search("l", { text: "x" }), (e) => e.kind === "invalid");
  assert.equal(db.getLibrary("l").documents, 0);
  assert.throws(() => withEmbedder(db, "not a function"), (e) => e.kind === "invalid");
  // Without the wrapper, a chunk without a vector is the engine's clear 400.
  assert.throws(() => db.upsert("l", { id: "a", chunks: [{ text: "x" }] }), (e) => {
    assert.equal(e.kind, "invalid");
    assert.match(e.message, /no `embedding`/);
    return true;
  });
});
