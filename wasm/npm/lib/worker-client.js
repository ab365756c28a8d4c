// WorkerDatabase: the whole API, asynchronous, with the engine in a Web Worker
// (lib/worker.js) so that searching and indexing never block the UI thread.
import { ArrwdbError } from "./errors.js";

const METHODS = [
  "listLibraries", "getLibrary", "getDocument", "listDocuments", "search", "exportSnapshot", "seq",
  "createLibrary", "deleteLibrary", "upsert", "upsertBatch", "deleteDocument", "deleteDocuments",
  "rebuild", "optimize", "importSnapshot", "loadSnapshot", "compact", "flush", "poll",
];

/** A database living in a Web Worker; every method returns a promise. */
export class WorkerDatabase {
  #worker;
  #next = 1;
  #pending = new Map();
  #kind = null;
  #terminated = false;

  /** @internal use `WorkerDatabase.spawn`. */
  constructor(worker) {
    this.#worker = worker;
    worker.onmessage = ({ data }) => {
      const pending = this.#pending.get(data?.id);
      if (pending === undefined) return;
      this.#pending.delete(data.id);
      if (data.error !== undefined) pending.reject(new ArrwdbError(data.error.kind, data.error.message));
      else pending.resolve(data.value);
    };
    worker.onerror = (event) => {
      event.preventDefault?.();
      this.#failAll(new ArrwdbError("internal", `the arrwdb worker failed: ${event.message ?? "unknown error"}`));
    };
  }

  /**
   * Starts a worker holding an in-memory database, a persisted one (`name`) or a
   * replica (`follow: { baseUrl, library, ... }`).
   */
  static async spawn(options = {}) {
    if (typeof Worker !== "function") throw new ArrwdbError("unavailable", "Web Workers are not available here");
    const { worker, ...open } = options;
    const instance = new WorkerDatabase(worker ?? new Worker(new URL("./worker.js", import.meta.url), { type: "module" }));
    try {
      instance.#kind = await instance.#call("open", [open]);
    } catch (error) {
      instance.terminate();
      throw error;
    }
    return instance;
  }

  /** "Database", "PersistentDatabase" or "Replica": what the worker holds. */
  get kind() {
    return this.#kind;
  }

  #call(method, args) {
    return new Promise((resolve, reject) => {
      // A terminated worker never answers: fail now instead of waiting forever.
      if (this.#terminated) {
        reject(new ArrwdbError("unavailable", "the worker was terminated"));
        return;
      }
      const id = this.#next++;
      this.#pending.set(id, { resolve, reject });
      try {
        this.#worker.postMessage({ id, method, args });
      } catch (error) {
        this.#pending.delete(id);
        reject(new ArrwdbError("invalid", `cannot send to the worker: ${error.message}`));
      }
    });
  }

  /** @internal */
  _call(method, args) {
    return this.#call(method, args);
  }

  #failAll(error) {
    for (const { reject } of this.#pending.values()) reject(error);
    this.#pending.clear();
  }

  /** Stops the worker; pending and later calls reject with `unavailable`. */
  terminate() {
    this.#terminated = true;
    this.#worker.terminate();
    this.#failAll(new ArrwdbError("unavailable", "the worker was terminated"));
  }
}

for (const method of METHODS) {
  Object.defineProperty(WorkerDatabase.prototype, method, {
    value(...args) {
      return this._call(method, args);
    },
    writable: true,
    configurable: true,
  });
}
