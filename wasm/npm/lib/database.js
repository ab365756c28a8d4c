// The in-memory Database and the read methods every kind of database shares.
//
// Requests cross into wasm as JSON text, vectors as Float32Arrays beside it (one copy
// into wasm memory, never element by element); responses come back as JSON text, and
// the vectors of hits and documents as one Float32Array beside it, split here into one
// array per vector. See wasm/src/lib.rs for why.
import { ArrwdbError, guard } from "./errors.js";
import { newRawEngine } from "./bindings.js";

const EMPTY_F32 = new Float32Array(0);
const EMPTY_U32 = new Uint32Array(0);
/** In `upsert`'s lengths: this chunk's embedding is in the JSON text. */
const IN_JSON = 0xffffffff;

/** JSON text of a request; values JSON cannot hold (BigInt, cycles) are `invalid`. */
export function stringify(value, what) {
  try {
    return JSON.stringify(value) ?? "null";
  } catch (error) {
    throw new ArrwdbError("invalid", `invalid ${what}: ${error.message}`);
  }
}

/** A Float32Array view of a typed-array vector, or null for anything else. */
function typedVector(value) {
  if (value instanceof Float32Array) return value;
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) return Float32Array.from(value);
  return null;
}

/** `flat` (the engine's vectors one after another) cut into `count` equal
 * Float32Arrays, each with a buffer of its own. */
function splitVectors(flat, count) {
  const d = count === 0 ? 0 : flat.length / count;
  return Array.from({ length: count }, (_, i) => flat.slice(i * d, (i + 1) * d));
}

/** A document id when the caller gave none (same as the host: a random UUID). */
export function randomId() {
  const crypto = globalThis.crypto;
  if (typeof crypto?.randomUUID === "function") return crypto.randomUUID();
  if (typeof crypto?.getRandomValues !== "function") {
    throw new ArrwdbError("invalid", "no crypto.getRandomValues here to generate an id: give the document an `id`");
  }
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function now() {
  return globalThis.performance?.now() ?? Date.now();
}

/**
 * Stands in for the RawEngine after `free()`: every call throws an `invalid`
 * ArrwdbError (the caller used a database it had released) instead of wasm-bindgen's
 * "null pointer passed to rust"; a second `free()` does nothing.
 */
const FREED = new Proxy(
  {},
  {
    get(_, name) {
      if (name === "free") return () => {};
      return () => {
        throw new ArrwdbError("invalid", "this database was freed: free() released its memory for good");
      };
    },
  },
);

/** Read methods over a RawEngine, shared by Database, PersistentDatabase and Replica. */
export class Reader {
  /** @internal */
  _raw;

  /** @internal */
  constructor(raw) {
    this._raw = raw;
  }

  /** All libraries and their statistics, ordered by name. */
  listLibraries() {
    return JSON.parse(guard(() => this._raw.listLibraries()));
  }

  /** One library and its statistics. Throws `not_found`. */
  getLibrary(library) {
    return JSON.parse(guard(() => this._raw.getLibrary(String(library))));
  }

  /** A stored document; embeddings come back as Float32Arrays. Throws `not_found`. */
  getDocument(library, id) {
    const [text, embeddings] = guard(() => this._raw.getDocument(String(library), String(id)));
    const document = JSON.parse(text);
    const split = splitVectors(embeddings, document.chunks.length);
    document.chunks.forEach((chunk, i) => {
      chunk.embedding = split[i];
    });
    return document;
  }

  /** One page of documents (`{ cursor?, limit?, filter? }`), in id order. */
  listDocuments(library, request = {}) {
    return JSON.parse(guard(() => this._raw.listDocuments(String(library), stringify(request, "list request"))));
  }

  /** Vector, keyword or hybrid search, best hit first. Throws `invalid` or `not_found`. */
  search(library, request) {
    const started = now();
    let vector;
    let body = request;
    if (request !== null && typeof request === "object" && !Array.isArray(request)) {
      // The engine has no clock: recency reranking ages documents against `now`.
      vector = typedVector(request.vector) ?? undefined;
      body = { ...request, now: request.now ?? Date.now() };
      if (vector !== undefined) delete body.vector;
    }
    const text = stringify(body, "search request");
    const [answer, vectors] = guard(() => this._raw.search(String(library), text, vector));
    const response = JSON.parse(answer);
    // With `include: ["vector"]` every hit's vector is in `vectors`, in hit order.
    if (vectors.length > 0) {
      const split = splitVectors(vectors, response.hits.length);
      response.hits.forEach((hit, i) => {
        hit.vector = split[i];
      });
    }
    response.took_ms = now() - started;
    return response;
  }

  /** The library as snapshot bytes, loadable by every arrwDB runtime. Throws `not_found`. */
  exportSnapshot(library) {
    return guard(() => this._raw.exportSnapshot(String(library)));
  }

  /** Sequence number of the library's last applied write (0 if there is none). */
  seq(library) {
    return guard(() => this._raw.seq(String(library)));
  }

  /** Releases the wasm memory now instead of at garbage collection. Every later call
   * throws `invalid`; freeing twice does nothing. */
  free() {
    const raw = this._raw;
    this._raw = FREED;
    raw.free();
  }
}

/** Shared write helpers: argument conversion for the raw engine's write calls. */
export const writes = {
  createLibrary(raw, options) {
    return JSON.parse(guard(() => raw.createLibrary(stringify(options, "library options"))));
  },

  deleteLibrary(raw, library) {
    guard(() => raw.deleteLibrary(String(library)));
  },

  upsert(raw, library, document) {
    let body = document;
    let flat = EMPTY_F32;
    let lengths = EMPTY_U32;
    const chunks = document?.chunks;
    if (Array.isArray(chunks) && chunks.some((c) => typedVector(c?.embedding) !== null)) {
      const parts = [];
      let total = 0;
      lengths = new Uint32Array(chunks.length);
      const copies = chunks.map((chunk, i) => {
        const embedding = typedVector(chunk?.embedding);
        if (embedding === null) {
          lengths[i] = IN_JSON;
          return chunk;
        }
        parts.push(embedding);
        lengths[i] = embedding.length;
        total += embedding.length;
        return { ...chunk, embedding: [] };
      });
      flat = new Float32Array(total);
      let offset = 0;
      for (const part of parts) {
        flat.set(part, offset);
        offset += part.length;
      }
      body = { ...document, chunks: copies };
    }
    const needsId = document !== null && typeof document === "object" && document.id == null;
    const id = needsId ? randomId() : "";
    const text = stringify(body, "document");
    return JSON.parse(guard(() => raw.upsert(String(library), text, id, flat, lengths)));
  },

  upsertBatch(raw, library, batch) {
    if (batch === null || typeof batch !== "object") {
      throw new ArrwdbError("invalid", "invalid batch: expected an object { ids, vectors, texts?, metadata? }");
    }
    const { ids, vectors, texts, metadata, ...rest } = batch;
    const unknown = Object.keys(rest);
    if (unknown.length > 0) throw new ArrwdbError("invalid", `invalid batch: unknown field \`${unknown[0]}\``);
    if (!Array.isArray(ids)) throw new ArrwdbError("invalid", "invalid batch: `ids` must be an array of strings");
    let flat = typedVector(vectors);
    if (flat === null) {
      if (!Array.isArray(vectors)) {
        throw new ArrwdbError("invalid", "invalid batch: `vectors` must be a Float32Array of ids.length × dimension numbers");
      }
      flat = Float32Array.from(vectors);
    }
    const seq = guard(() =>
      raw.upsertBatch(
        String(library),
        stringify(ids, "batch ids"),
        flat,
        texts === undefined ? "" : stringify(texts, "batch texts"),
        metadata === undefined ? "" : stringify(metadata, "batch metadata"),
      ),
    );
    return { upserted: ids.length, seq };
  },

  deleteDocument(raw, library, id) {
    guard(() => raw.deleteDocument(String(library), String(id)));
  },

  deleteDocuments(raw, library, request) {
    const body = Array.isArray(request) ? { ids: request } : request;
    return JSON.parse(guard(() => raw.deleteDocuments(String(library), stringify(body, "delete request"))));
  },

  rebuild(raw, library, options) {
    return JSON.parse(guard(() => raw.rebuild(String(library), stringify(options, "rebuild options"))));
  },

  optimize(raw, library) {
    return JSON.parse(guard(() => raw.optimize(String(library))));
  },

  importSnapshot(raw, bytes) {
    if (!(bytes instanceof Uint8Array)) {
      if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
      else throw new ArrwdbError("invalid", "a snapshot must be a Uint8Array or an ArrayBuffer");
    }
    return guard(() => raw.importSnapshot(bytes));
  },
};

/** GETs a URL's bytes; HTTP and network failures are `unavailable` (404: `not_found`). */
export async function fetchBytes(url, init, fetchImpl = globalThis.fetch) {
  let response;
  try {
    response = await fetchImpl(url, init);
  } catch (error) {
    throw new ArrwdbError("unavailable", `GET ${url} failed: ${error.message}`, { cause: error });
  }
  if (!response.ok) {
    const kind = response.status === 404 ? "not_found" : "unavailable";
    throw new ArrwdbError(kind, `GET ${url} answered HTTP ${response.status}`);
  }
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * An in-memory database: every method is synchronous. See PersistentDatabase
 * (`Database.open`) for one that survives a reload and Replica (`Database.follow`) for a
 * read replica of a library published to object storage.
 */
export class Database extends Reader {
  constructor() {
    super(newRawEngine(false));
  }

  /** Creates a library. Throws `invalid` for bad options, `conflict` if it exists. */
  createLibrary(options) {
    return writes.createLibrary(this._raw, options);
  }

  /** Deletes a library and everything in it. Throws `not_found`. */
  deleteLibrary(library) {
    writes.deleteLibrary(this._raw, library);
  }

  /** Inserts or replaces a whole document. */
  upsert(library, document) {
    return writes.upsert(this._raw, library, document);
  }

  /** Inserts or replaces many single-chunk documents from one flat Float32Array. */
  upsertBatch(library, batch) {
    return writes.upsertBatch(this._raw, library, batch);
  }

  /** Deletes a document and its chunks. Throws `not_found`. */
  deleteDocument(library, id) {
    writes.deleteDocument(this._raw, library, id);
  }

  /** Deletes documents by id (an array, or `{ ids }`) or by `{ filter }`, as one write. */
  deleteDocuments(library, request) {
    return writes.deleteDocuments(this._raw, library, request);
  }

  /** Re-indexes the library with another index. */
  rebuild(library, options) {
    return writes.rebuild(this._raw, library, options);
  }

  /** Compacts deleted space and rebuilds the index. */
  optimize(library) {
    return writes.optimize(this._raw, library);
  }

  /** Loads snapshot bytes, replacing a library of the same name; returns its name. */
  importSnapshot(bytes) {
    return writes.importSnapshot(this._raw, bytes);
  }

  /** Fetches one snapshot file over HTTP GET and imports it; resolves to its library name. */
  async loadSnapshot(url, init) {
    return this.importSnapshot(await fetchBytes(url, init));
  }
}
