// PersistentDatabase's storage rules in Node, on fake-indexeddb (a complete IndexedDB
// implementation in JavaScript; Node has none). Real Chromium runs the same code in
// www/tests/browser.test.mjs, including a real page reload; here the cases that are hard
// to provoke in a browser: every error, corrupt stored data, compaction bookkeeping.
import "../tools/node_modules/fake-indexeddb/auto/index.mjs";
import { test } from "node:test";
import assert from "node:assert/strict";

import { ArrwdbError, Database } from "../pkg/nodejs/index.mjs";

async function expectRejection(promise, kind, message) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof ArrwdbError, `an ArrwdbError, got ${e?.constructor?.name}: ${e?.message}`);
    assert.equal(e.kind, kind, e.message);
    if (message instanceof RegExp) assert.match(e.message, message);
    else assert.equal(e.message, message);
    return true;
  });
}

const doc = (id, x) => ({ id, chunks: [{ text: `text ${id}`, embedding: new Float32Array([x, 1, -x]) }] });

/** Everything a reader sees of a database, for before/after comparisons. */
function state(db) {
  return db.listLibraries().map((info) => ({
    info,
    snapshot: Array.from(db.exportSnapshot(info.name)),
  }));
}

test("state survives closing and reopening; compaction keeps it and trims the log", async () => {
  await Database.destroy("reopen");
  const db = await Database.open("reopen", { compactAfter: 10 });
  assert.equal(db.name, "reopen");
  const info = await db.createLibrary({ name: "lib", dimension: 3, metric: "l2", index: { type: "kdtree" } });
  assert.equal(info.seq, 1);
  assert.deepEqual(await db.upsert("lib", doc("a", 1)), { id: "a", chunk_ids: ["a#0"] });
  assert.deepEqual(await db.upsertBatch("lib", { ids: ["b", "c", "d"], vectors: new Float32Array([2, 1, -2, 3, 1, -3, 4, 1, -4]) }), { upserted: 3, seq: 5 });
  await db.deleteDocument("lib", "b");
  assert.deepEqual(await db.deleteDocuments("lib", ["c"]), { deleted: 1, ids: ["c"] });
  assert.equal((await db.rebuild("lib", { index: { type: "flat" } })).index.type, "flat");
  assert.equal((await db.optimize("lib")).seq, 9);
  assert.deepEqual(await db.storageStats("lib"), { snapshot_seq: null, snapshot_bytes: 0, wal_segments: 7, wal_records: 9, wal_bytes: (await db.storageStats("lib")).wal_bytes });
  const before = state(db);
  await db.close();
  await expectRejection(db.upsert("lib", doc("z", 9)), "invalid", "database `reopen` is closed");

  const again = await Database.open("reopen", { compactAfter: 10 });
  assert.deepEqual(state(again), before, "replayed from the log");
  // The 10th record triggers a compaction once the database is idle.
  await again.upsert("lib", doc("e", 5));
  await again.flush();
  await new Promise((resolve) => setTimeout(resolve, 50));
  const stats = await again.storageStats("lib");
  assert.equal(stats.snapshot_seq, 10);
  assert.equal(stats.wal_records, 0);
  await again.upsert("lib", doc("f", 6));
  const after = state(again);
  await again.close();
  const third = await Database.open("reopen");
  assert.deepEqual(state(third), after, "snapshot plus the log after it");
  assert.deepEqual((await third.storageStats("lib")).wal_records, 1);
  await third.close();
});

test("deleting a library removes its stored data; imported snapshots are stored", async () => {
  await Database.destroy("drop");
  const db = await Database.open("drop");
  await db.createLibrary({ name: "gone", dimension: 3 });
  await db.upsert("gone", doc("a", 1));
  await db.deleteLibrary("gone");
  assert.deepEqual(await db.storageStats("gone"), { snapshot_seq: null, snapshot_bytes: 0, wal_segments: 0, wal_records: 0, wal_bytes: 0 });

  const source = new Database();
  source.createLibrary({ name: "imported", dimension: 3 });
  source.upsert("imported", doc("x", 2));
  assert.equal(await db.importSnapshot(source.exportSnapshot("imported")), "imported");
  await db.upsert("imported", doc("y", 3));
  await db.close();
  const again = await Database.open("drop");
  assert.deepEqual(again.listLibraries().map((l) => [l.name, l.documents, l.seq]), [["imported", 2, 3]]);
  assert.equal((await again.storageStats("imported")).snapshot_seq, 2);
  // A name can be reused after deletion.
  await again.createLibrary({ name: "gone", dimension: 2 });
  assert.equal(again.getLibrary("gone").documents, 0);
  await again.close();
});

test("a refused write stores nothing and rejects with the engine's error", async () => {
  await Database.destroy("refused");
  const db = await Database.open("refused");
  await db.createLibrary({ name: "lib", dimension: 3 });
  await expectRejection(db.upsert("lib", { id: "a", chunks: [{ embedding: [1, 2] }] }), "invalid", "wrong vector dimension: expected 3, got 2");
  await expectRejection(db.upsert("nope", doc("a", 1)), "not_found", "library `nope` not found");
  await expectRejection(db.createLibrary({ name: "lib", dimension: 3 }), "conflict", "library `lib` already exists");
  await expectRejection(db.deleteDocuments("lib", { ids: [] , filter: {} }), "invalid", "a bulk delete takes exactly one of `ids` and `filter`");
  await expectRejection(db.compact("nope"), "not_found", "library `nope` not found");
  assert.equal((await db.storageStats("lib")).wal_records, 1);
  await db.close();
  await expectRejection(Database.open("x", { compactAfter: 0 }), "invalid", "compactAfter must be a positive integer, got 0");
});

test("a second handle that is behind conflicts, reloads, and can then write", async () => {
  await Database.destroy("two");
  const a = await Database.open("two");
  const b = await Database.open("two");
  await a.createLibrary({ name: "t", dimension: 3 });
  await b.flush();
  // Both write before either hears of the other.
  const results = await Promise.allSettled([a.upsert("t", doc("x", 1)), b.createLibrary({ name: "t", dimension: 3 })]);
  assert.equal(results[0].status, "fulfilled");
  // b may or may not have heard of the creation yet: either its own validation or the
  // log refuses the second creation.
  assert.equal(results[1].status, "rejected");
  assert.equal(results[1].reason.kind, "conflict");
  const settled = await Promise.allSettled([a.upsert("t", doc("y", 2)), b.upsert("t", doc("z", 3))]);
  assert.equal(settled[0].status, "fulfilled");
  assert.equal(settled[1].status, "rejected");
  assert.match(settled[1].reason.message, /^library `t` was (changed|created) by another tab or window; reloaded it from IndexedDB, retry the write$/);
  assert.equal(b.getLibrary("t").documents, 2, "b reloaded a's writes");
  await b.upsert("t", doc("z", 3));
  for (let i = 0; i < 50 && a.seq("t") < 4; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(state(a), state(b));
  await a.close();
  await b.close();
});

test("corrupt or incomplete stored data fails the open with `internal`", async () => {
  await Database.destroy("corrupt");
  const db = await Database.open("corrupt");
  await db.createLibrary({ name: "c", dimension: 3 });
  await db.upsert("c", doc("a", 1));
  await db.close();

  const raw = await new Promise((resolve, reject) => {
    const open = indexedDB.open("arrwdb:corrupt", 1);
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  const put = (value, key) =>
    new Promise((resolve, reject) => {
      const tx = raw.transaction("wal", "readwrite");
      tx.objectStore("wal").put(value, key);
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
    });
  // A segment after a gap.
  await put({ library: "c", first: 5, last: 5, bytes: new Uint8Array([1]) }, ["c", 5]);
  await expectRejection(Database.open("corrupt"), "internal", "IndexedDB log of `c` has a gap: at 2, next segment starts at 5");
  // Bytes that are not a segment.
  await put({ library: "c", first: 3, last: 3, bytes: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) }, ["c", 3]);
  await expectRejection(Database.open("corrupt"), "internal", "IndexedDB log of `c` at 3: corrupt WAL segment: wrong magic bytes");
  raw.close();
  await Database.destroy("corrupt");
});
