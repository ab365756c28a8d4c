// A database that survives a page reload: the engine in memory, its write-ahead log and
// snapshots in IndexedDB.
//
// Layout: one IndexedDB database `arrwdb:{name}` with two object stores,
//   snapshots  key library           -> { library, seq, bytes }   (engine snapshot format)
//   wal        key [library, first]  -> { library, first, last, bytes }  (WAL segment format)
// the same framed, checksummed formats the host writes to object storage. Opening loads
// each library's snapshot and replays its segments; a write applies in memory at once
// (so reads see it), and its promise resolves when the IndexedDB transaction holding its
// segment has committed (durability "strict": flushed to disk). After `compactAfter`
// records a library's snapshot is rewritten and its segments dropped, so a write costs
// one small segment, not a rewrite of the store.
//
// Several tabs: IndexedDB is the arbiter, like put-if-absent on object storage. A
// segment is added only if it continues the log on disk (the previous segment ends right
// before it, or the snapshot does); otherwise the transaction aborts, the library is
// reloaded from disk and the write rejects with `conflict`. Committed writes are
// announced on a BroadcastChannel so other tabs replay them.
//
// Why JavaScript and not web-sys: IndexedDB is an event API; driving it from Rust needs
// web-sys's IDB features plus wasm-bindgen-futures and closures, which add size to the
// .wasm for every user and gain nothing: the engine only produces and replays bytes.
import { ArrwdbError, toArrwdbError } from "./errors.js";
import { ensureReady, newRawEngine } from "./bindings.js";
import { Reader, fetchBytes, writes } from "./database.js";

const STORE_SNAPSHOTS = "snapshots";
const STORE_WAL = "wal";
const CREATED = 1;
const DELETED = 2;

function request(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function finished(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error ?? new DOMException("transaction aborted", "AbortError"));
  });
}

function libraryRange(library, upTo = Infinity, openUpper = false) {
  return IDBKeyRange.bound([library, 0], [library, upTo], false, openUpper);
}

function indexedDb() {
  const idb = globalThis.indexedDB;
  if (idb === undefined) {
    throw new ArrwdbError("unavailable", "IndexedDB is not available here: use `new Database()` for an in-memory database");
  }
  return idb;
}

function openIdb(name) {
  const open = indexedDb().open(name, 1);
  open.onupgradeneeded = () => {
    const db = open.result;
    db.createObjectStore(STORE_SNAPSHOTS);
    db.createObjectStore(STORE_WAL);
  };
  return request(open).catch((error) => {
    throw new ArrwdbError("unavailable", `cannot open IndexedDB database \`${name}\`: ${error?.message}`);
  });
}

/** Why a write transaction aborted on purpose. */
class LogConflict extends Error {}

/**
 * A database persisted to IndexedDB: reads are synchronous, writes return promises that
 * resolve once durable. Created with `Database.open(name)`.
 */
export class PersistentDatabase extends Reader {
  #idb;
  #name;
  #channel = null;
  #compactAfter;
  #durability;
  #onChange;
  /** Write transactions not yet finished. */
  #inflight = 0;
  #idle = [];
  /** library -> records logged since its snapshot. */
  #logged = new Map();
  #compactions = new Set();
  #closed = false;

  /** @internal use `Database.open`. */
  constructor(raw, idb, name, options) {
    super(raw);
    this.#idb = idb;
    this.#name = name;
    this.#compactAfter = options.compactAfter ?? 1000;
    this.#durability = options.durability ?? "strict";
    this.#onChange = options.onChange ?? null;
  }

  /** Opens (or creates) the persisted database `name`. */
  static async open(name, options = {}) {
    if (typeof name !== "string" || name.length === 0) {
      throw new ArrwdbError("invalid", "a database name must be a non-empty string");
    }
    const compactAfter = options.compactAfter ?? 1000;
    if (!Number.isInteger(compactAfter) || compactAfter < 1) {
      throw new ArrwdbError("invalid", `compactAfter must be a positive integer, got ${compactAfter}`);
    }
    await ensureReady();
    const idb = await openIdb(`arrwdb:${name}`);
    const db = new PersistentDatabase(newRawEngine(true), idb, name, options);
    try {
      await db.#loadAll();
    } catch (error) {
      idb.close();
      db.free();
      throw toArrwdbError(error);
    }
    if (typeof BroadcastChannel === "function") {
      db.#channel = new BroadcastChannel(`arrwdb:${name}`);
      db.#channel.onmessage = (event) => db.#announced(event.data);
    }
    // Another tab deleting the database must not be blocked by this connection.
    idb.onversionchange = () => db.close();
    return db;
  }

  /** Deletes the persisted database `name` (close open handles first). */
  static async destroy(name) {
    await request(indexedDb().deleteDatabase(`arrwdb:${name}`)).catch((error) => {
      throw new ArrwdbError("unavailable", `cannot delete IndexedDB database \`${name}\`: ${error?.message}`);
    });
  }

  /** The name given to `Database.open`. */
  get name() {
    return this.#name;
  }

  async #loadAll() {
    const tx = this.#idb.transaction([STORE_SNAPSHOTS, STORE_WAL], "readonly");
    const [snapshots, segments] = await Promise.all([
      request(tx.objectStore(STORE_SNAPSHOTS).getAll()),
      request(tx.objectStore(STORE_WAL).getAll()),
    ]);
    for (const snapshot of snapshots) this.#restore(snapshot);
    for (const segment of segments) this.#replay(segment);
    for (const info of this.listLibraries()) {
      const base = snapshots.find((s) => s.library === info.name)?.seq ?? 0;
      this.#logged.set(info.name, info.seq - base);
    }
  }

  #restore({ library, seq, bytes }) {
    const name = writes.importSnapshot(this._raw, bytes);
    if (name !== library || this._raw.seq(name) !== seq) {
      this._raw.evict(name);
      throw new ArrwdbError("internal", `corrupt IndexedDB snapshot of \`${library}\`: holds \`${name}\` at ${this._raw.seq(name)}`);
    }
  }

  #replay({ library, first, last, bytes }) {
    const have = this._raw.seq(library);
    if (last <= have) return;
    if (first > have + 1) {
      throw new ArrwdbError("internal", `IndexedDB log of \`${library}\` has a gap: at ${have}, next segment starts at ${first}`);
    }
    try {
      this._raw.applySegment(bytes);
    } catch (error) {
      throw new ArrwdbError("internal", `IndexedDB log of \`${library}\` at ${first}: ${toArrwdbError(error).message}`);
    }
  }

  /** Re-reads one library from IndexedDB (after a conflict or another tab's write). */
  async #reload(library) {
    const tx = this.#idb.transaction([STORE_SNAPSHOTS, STORE_WAL], "readonly");
    const [snapshot, segments] = await Promise.all([
      request(tx.objectStore(STORE_SNAPSHOTS).get(library)),
      request(tx.objectStore(STORE_WAL).getAll(libraryRange(library))),
    ]);
    // Swap synchronously, so no read sees a half-loaded library.
    this._raw.evict(library);
    if (snapshot !== undefined) this.#restore(snapshot);
    for (const segment of segments) this.#replay(segment);
    this.#logged.set(library, this._raw.seq(library) - (snapshot?.seq ?? 0));
  }

  #checkOpen() {
    if (this.#closed) throw new ArrwdbError("invalid", `database \`${this.#name}\` is closed`);
  }

  /**
   * Runs a synchronous engine write, then logs what it applied in one IndexedDB
   * transaction; resolves to the write's result once that transaction committed.
   */
  #commit(write) {
    this.#checkOpen();
    let result;
    let failure = null;
    try {
      result = write();
    } catch (error) {
      failure = error;
    }
    // A failed write applied nothing, except a batch failing after validation (a bug);
    // whatever was applied is logged either way.
    const segments = this._raw.takeLog();
    if (segments.length === 0) {
      return failure === null ? Promise.resolve(result) : Promise.reject(failure);
    }
    return this.#write(segments).then(() => {
      if (failure !== null) throw failure;
      return result;
    });
  }

  /** Adds segments to the log on disk; see the module comment for the checks. */
  #write(segments) {
    const tx = this.#idb.transaction([STORE_SNAPSHOTS, STORE_WAL], "readwrite", { durability: this.#durability });
    const snapshots = tx.objectStore(STORE_SNAPSHOTS);
    const wal = tx.objectStore(STORE_WAL);
    let conflict = null;
    const abort = (message) => {
      conflict = new LogConflict(message);
      tx.abort();
    };
    const steps = async () => {
      for (const [library, first, last, flags, bytes] of segments) {
        if (flags & DELETED) {
          wal.delete(libraryRange(library));
          snapshots.delete(library);
          continue;
        }
        const entry = { library, first, last, bytes };
        if (flags & CREATED) {
          const [snapshot, count] = await Promise.all([
            request(snapshots.getKey(library)),
            request(wal.count(libraryRange(library))),
          ]);
          if (snapshot !== undefined || count > 0) return abort(`library \`${library}\` was created by another tab or window`);
        } else {
          const [snapshot, previous, next] = await Promise.all([
            request(snapshots.get(library)),
            request(wal.openCursor(libraryRange(library, first, true), "prev")),
            request(wal.getKey(IDBKeyRange.bound([library, first], [library, Infinity]))),
          ]);
          const continues = previous?.value.last === first - 1 || (previous === null && snapshot?.seq === first - 1);
          if (!continues || next !== undefined) {
            return abort(`library \`${library}\` was changed by another tab or window`);
          }
        }
        wal.add(entry, [library, first]);
      }
    };
    this.#inflight += 1;
    const checked = steps().catch((error) => {
      if (conflict === null) {
        conflict = error;
        try {
          tx.abort();
        } catch {
          // already finished
        }
      }
    });
    return Promise.all([finished(tx), checked])
      .then(
        () => {
          for (const [library, first, last, flags] of segments) {
            if (flags & DELETED) this.#logged.delete(library);
            else this.#logged.set(library, (flags & CREATED ? 0 : (this.#logged.get(library) ?? 0)) + last - first + 1);
            this.#channel?.postMessage({ library, seq: last });
          }
        },
        async (error) => {
          const libraries = new Set(segments.map((s) => s[0]));
          await Promise.all([...libraries].map((l) => this.#reload(l).catch(() => {})));
          if (conflict instanceof LogConflict) {
            throw new ArrwdbError("conflict", `${conflict.message}; reloaded it from IndexedDB, retry the write`);
          }
          const cause = conflict ?? error;
          throw new ArrwdbError("unavailable", `the write was not stored in IndexedDB: ${cause?.message ?? cause}`, { cause });
        },
      )
      .finally(() => {
        this.#inflight -= 1;
        if (this.#inflight === 0) this.#becameIdle();
      });
  }

  #becameIdle() {
    for (const [library, records] of this.#logged) {
      if (records >= this.#compactAfter && !this.#compactions.has(library)) {
        this.compact(library).catch(() => {});
      }
    }
    const waiting = this.#idle;
    this.#idle = [];
    for (const resolve of waiting) resolve();
  }

  /** Another tab committed `seq` of `library`: replay it when this tab is idle. */
  async #announced({ library, seq } = {}) {
    if (this.#closed || typeof library !== "string") return;
    await this.flush();
    if (this._raw.seq(library) >= seq) return;
    await this.#reloadTail(library);
    this.#onChange?.(library, this._raw.seq(library));
  }

  /** Applies what is on disk after this tab's state (or reloads if the log moved on). */
  async #reloadTail(library) {
    const have = this._raw.seq(library);
    const tx = this.#idb.transaction([STORE_SNAPSHOTS, STORE_WAL], "readonly");
    const [snapshot, segments] = await Promise.all([
      request(tx.objectStore(STORE_SNAPSHOTS).get(library)),
      request(tx.objectStore(STORE_WAL).getAll(libraryRange(library))),
    ]);
    if (this._raw.seq(library) !== have) return;
    const continues = segments.some((s) => s.first <= have + 1 && s.last > have);
    if (have === 0 || (snapshot?.seq ?? 0) > have || !continues) {
      await this.#reload(library);
      return;
    }
    for (const segment of segments) this.#replay(segment);
    this.#logged.set(library, this._raw.seq(library) - (snapshot?.seq ?? 0));
  }

  /** Resolves when every write issued so far has been stored (or has failed). */
  flush() {
    if (this.#inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /**
   * Writes the library's snapshot and drops its logged segments (done automatically
   * every `compactAfter` records). Throws `not_found`.
   */
  async compact(library) {
    this.#checkOpen();
    library = String(library);
    this.#compactions.add(library);
    try {
      await this.flush();
      const bytes = this.exportSnapshot(library);
      const seq = this._raw.seq(library);
      const tx = this.#idb.transaction([STORE_SNAPSHOTS, STORE_WAL], "readwrite", { durability: this.#durability });
      tx.objectStore(STORE_SNAPSHOTS).put({ library, seq, bytes }, library);
      tx.objectStore(STORE_WAL).delete(libraryRange(library, seq));
      await finished(tx).catch((error) => {
        throw new ArrwdbError("unavailable", `compaction of \`${library}\` failed: ${error?.message}`);
      });
      if (this._raw.seq(library) === seq) this.#logged.set(library, 0);
      else this.#logged.set(library, this._raw.seq(library) - seq);
    } finally {
      this.#compactions.delete(library);
    }
  }

  /** How a library is stored: snapshot sequence and size, logged segments and records. */
  async storageStats(library) {
    library = String(library);
    const tx = this.#idb.transaction([STORE_SNAPSHOTS, STORE_WAL], "readonly");
    const [snapshot, segments] = await Promise.all([
      request(tx.objectStore(STORE_SNAPSHOTS).get(library)),
      request(tx.objectStore(STORE_WAL).getAll(libraryRange(library))),
    ]);
    return {
      snapshot_seq: snapshot?.seq ?? null,
      snapshot_bytes: snapshot?.bytes.length ?? 0,
      wal_segments: segments.length,
      wal_records: segments.reduce((n, s) => n + s.last - s.first + 1, 0),
      wal_bytes: segments.reduce((n, s) => n + s.bytes.length, 0),
    };
  }

  /** Creates a library; resolves once durable. */
  async createLibrary(options) {
    return this.#commit(() => writes.createLibrary(this._raw, options));
  }

  /** Deletes a library and its stored data. */
  async deleteLibrary(library) {
    return this.#commit(() => writes.deleteLibrary(this._raw, library));
  }

  /** Inserts or replaces a document; resolves once durable. */
  async upsert(library, document) {
    return this.#commit(() => writes.upsert(this._raw, library, document));
  }

  /** Inserts or replaces many single-chunk documents in one transaction. */
  async upsertBatch(library, batch) {
    return this.#commit(() => writes.upsertBatch(this._raw, library, batch));
  }

  /** Deletes a document; resolves once durable. */
  async deleteDocument(library, id) {
    return this.#commit(() => writes.deleteDocument(this._raw, library, id));
  }

  /** Deletes documents by id or by filter, as one write; resolves once durable. */
  async deleteDocuments(library, request) {
    return this.#commit(() => writes.deleteDocuments(this._raw, library, request));
  }

  /** Re-indexes a library; resolves once durable. */
  async rebuild(library, options) {
    return this.#commit(() => writes.rebuild(this._raw, library, options));
  }

  /** Compacts deleted space and rebuilds the index; resolves once durable. */
  async optimize(library) {
    return this.#commit(() => writes.optimize(this._raw, library));
  }

  /** Loads snapshot bytes (replacing a library of that name) and stores them. */
  async importSnapshot(bytes) {
    this.#checkOpen();
    await this.flush();
    const library = writes.importSnapshot(this._raw, bytes);
    this.#compactions.add(library);
    try {
      const seq = this._raw.seq(library);
      const tx = this.#idb.transaction([STORE_SNAPSHOTS, STORE_WAL], "readwrite", { durability: this.#durability });
      tx.objectStore(STORE_WAL).delete(libraryRange(library));
      tx.objectStore(STORE_SNAPSHOTS).put({ library, seq, bytes: this.exportSnapshot(library) }, library);
      await finished(tx).catch(async (error) => {
        await this.#reload(library).catch(() => {});
        throw new ArrwdbError("unavailable", `the snapshot was not stored in IndexedDB: ${error?.message}`);
      });
      this.#logged.set(library, 0);
      this.#channel?.postMessage({ library, seq });
      return library;
    } finally {
      this.#compactions.delete(library);
    }
  }

  /** Fetches one snapshot file over HTTP GET, imports and stores it. */
  async loadSnapshot(url, init) {
    return this.importSnapshot(await fetchBytes(url, init));
  }

  /** Waits for pending writes, then closes IndexedDB; reads keep working, writes throw. */
  async close() {
    if (this.#closed) return;
    await this.flush();
    this.#closed = true;
    this.#channel?.close();
    this.#idb.close();
  }
}
