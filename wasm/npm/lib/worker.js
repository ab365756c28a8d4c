// The Web Worker side of WorkerDatabase: one database per worker, methods called by
// message. Searches run here, so they never block the page's UI thread.
//
//   new Worker(new URL("arrwdb/worker", import.meta.url), { type: "module" })
//
// Messages in: { id, method, args }; out: { id, value } or { id, error: { kind, message } }.
import init, { ArrwdbError, Database, PersistentDatabase, Replica, toArrwdbError } from "../web/index.js";

const READS = new Set(["listLibraries", "getLibrary", "getDocument", "listDocuments", "search", "exportSnapshot", "seq"]);
const WRITES = new Set([
  "createLibrary", "deleteLibrary", "upsert", "upsertBatch", "deleteDocument", "deleteDocuments",
  "rebuild", "optimize", "importSnapshot", "loadSnapshot", "compact", "flush", "poll",
]);

let db = null;

async function open(options = {}) {
  await init();
  if (db !== null) throw new ArrwdbError("conflict", "this worker already has a database");
  if (options.follow !== undefined) {
    const { baseUrl, ...rest } = options.follow;
    db = await Database.follow(baseUrl, rest);
  } else if (options.name !== undefined) {
    db = await Database.open(options.name, options.persist ?? {});
  } else {
    db = new Database();
  }
  return kindOf(db);
}

/** The class of the database, by instanceof (names do not survive minifiers). */
function kindOf(database) {
  if (database instanceof PersistentDatabase) return "PersistentDatabase";
  if (database instanceof Replica) return "Replica";
  return "Database";
}

async function call(method, args) {
  if (method === "open") return open(...args);
  if (db === null) throw new ArrwdbError("invalid", "the worker has no database yet");
  if (!READS.has(method) && !WRITES.has(method)) throw new ArrwdbError("invalid", `unknown method \`${method}\``);
  if (typeof db[method] !== "function") {
    throw new ArrwdbError("invalid", `a ${kindOf(db)} has no method \`${method}\``);
  }
  return db[method](...args);
}

self.onmessage = async ({ data }) => {
  const { id, method, args } = data ?? {};
  try {
    const value = await call(method, Array.isArray(args) ? args : []);
    self.postMessage({ id, value });
  } catch (error) {
    const e = toArrwdbError(error);
    self.postMessage({ id, error: { kind: e.kind, message: e.message } });
  }
};
