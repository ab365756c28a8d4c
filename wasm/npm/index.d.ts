// Types of the `arrwdb` package (hand-written; shared by its web, Node and bundler
// builds). Request and response objects have the shapes of arrwDB's HTTP API (/v1/...).

/** Any JSON value: metadata is arbitrary JSON. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A vector: a Float32Array crosses into the engine in one copy; number arrays work too. */
export type Vector = Float32Array | number[];

/** How vectors are compared. Scores are always "higher is closer". */
export type Metric = "cosine" | "dot" | "l2";

/** Index kind and its parameters; missing parameters take their defaults. */
export type IndexConfig =
  | { type: "flat" }
  | { type: "hnsw"; m?: number; ef_construction?: number; ef_search?: number; seed?: number }
  | { type: "ivf"; nlist?: number; nprobe?: number; train_size?: number; pq_m?: number; seed?: number }
  | { type: "kdtree"; leaf_size?: number }
  | { type: "lsh"; num_tables?: number; hash_size?: number; seed?: number };

/** Quantization of a library's exact scan (compact codes, then exact rescoring). */
export type Quantization =
  | { type: "none" }
  | { type: "sq8"; oversample?: number }
  | { type: "binary"; oversample?: number };

/** How chunk text is tokenized for keyword (BM25) search. */
export interface TextConfig {
  /** Fold accents to ASCII (`café` matches `cafe`). Default false. */
  ascii_folding?: boolean;
  /** Default `"none"`. */
  stop_words?: "none" | "english";
  /** Default `"none"`. */
  stemmer?: "none" | "english";
  /** BM25 term-frequency saturation, default 1.2. */
  k1?: number;
  /** BM25 length normalization, default 0.75. */
  b?: number;
}

/** Options of `createLibrary` (the body of `POST /v1/libraries`). */
export interface CreateLibraryOptions {
  /** 1 to 64 characters of A-Z, a-z, 0-9, `_` or `-`. */
  name: string;
  /** Vector dimension, 1 to 4096. */
  dimension: number;
  /** Defaults to `"cosine"`. */
  metric?: Metric;
  /** Defaults to `{ type: "flat" }`. */
  index?: IndexConfig;
  /** Defaults to `{ type: "none" }`; `oversample` 1 to 64, default 4. */
  quantization?: Quantization;
  /** Keyword-search settings. */
  text?: TextConfig;
  /**
   * The embedding provider (configured on a server, by name) and model that produce
   * this library's vectors; recorded so vectors of another model are refused.
   */
  embedding?: EmbeddingConfig | null;
}

/** Which provider and model embed a library's text. */
export interface EmbeddingConfig {
  provider: string;
  model: string;
}

/** Options of `rebuild` (the body of `POST /v1/libraries/{lib}/rebuild`). */
export interface RebuildOptions {
  /** The new index; the library is re-indexed over every live chunk. */
  index: IndexConfig;
}

/** A library and its statistics. */
export interface LibraryInfo {
  id: string;
  name: string;
  dimension: number;
  metric: Metric;
  index: IndexConfig;
  quantization: Quantization;
  text: Required<TextConfig>;
  embedding: EmbeddingConfig | null;
  documents: number;
  chunks: number;
  /** Sequence number of the last applied write (WAL record). */
  seq: number;
}

/** One chunk of a document to upsert. */
export interface ChunkInput {
  /** At most 512 bytes; defaults to `"{documentId}#{position}"`. */
  id?: string;
  /** At most 64 KiB of UTF-8; searched by keyword and hybrid search. */
  text?: string;
  /** Exactly `dimension` finite numbers. May be left out under `withEmbedder` when
   * `text` is given. */
  embedding?: Vector;
  metadata?: Json;
}

/** A document to insert or replace as a whole. */
export interface DocumentInput {
  /** At most 512 bytes; defaults to `crypto.randomUUID()`. */
  id?: string;
  metadata?: Json;
  /** At least one chunk. */
  chunks: ChunkInput[];
}

/** Ids assigned by an upsert. */
export interface UpsertResult {
  id: string;
  chunk_ids: string[];
}

/**
 * Many single-chunk documents in one call: document `ids[i]` gets the chunk `"{id}#0"`
 * whose embedding is `vectors.subarray(i * dimension, (i + 1) * dimension)`.
 */
export interface BatchInput {
  /** Document ids, unique within the batch. */
  ids: string[];
  /** `ids.length × dimension` numbers, row after row (one copy into the engine). */
  vectors: Float32Array | number[];
  /** Chunk texts, one per id. */
  texts?: string[];
  /** Chunk metadata, one per id (what filters and hits see). */
  metadata?: Json[];
}

/** Result of a batch write. */
export interface BatchResult {
  /** Documents written. */
  upserted: number;
  /** The library's sequence number after the batch. */
  seq: number;
}

/** What `deleteDocuments` deletes: these ids, or every document with a chunk matching
 * the filter (exactly one of the two). */
export type DeleteRequest = string[] | { ids: string[] } | { filter: Filter };

/** Result of `deleteDocuments`: ids that did not exist are not listed. */
export interface DeleteResult {
  deleted: number;
  ids: string[];
}

/** A page request of `listDocuments`. */
export interface ListDocumentsRequest {
  /** `next_cursor` of the previous page. */
  cursor?: string;
  /** Documents per page. */
  limit?: number;
  /** Only documents with a chunk (or document metadata) matching this filter. */
  filter?: Filter;
}

/** A document in a listing. */
export interface DocumentSummary {
  id: string;
  metadata: Json;
  /** Number of chunks. */
  chunks: number;
}

/** One page of documents, in id order; `next_cursor` is absent on the last page. */
export interface DocumentList {
  documents: DocumentSummary[];
  next_cursor?: string | null;
}

/** A stored chunk. */
export interface StoredChunk {
  id: string;
  text: string;
  embedding: Float32Array;
  metadata: Json;
}

/** A stored document, as returned by `getDocument`. */
export interface StoredDocument {
  id: string;
  metadata: Json;
  chunks: StoredChunk[];
}

/** How vector and keyword results are merged in hybrid search. */
export type Fusion =
  | { method: "rrf"; k?: number; weights?: { vector?: number; keyword?: number } }
  | {
      method: "linear";
      normalization?: "min_max" | "z_score";
      weights?: { vector?: number; keyword?: number };
    };

/** A reranking stage applied after retrieval (and fusion), in order. */
export type Reranker =
  | { type: "recency"; field: string; half_life_days: number; weight?: number }
  | { type: "position"; weight?: number }
  | { type: "length"; target?: number; weight?: number }
  | { type: "mmr"; lambda?: number };

/** A metadata filter in the MongoDB shape, e.g. `{ year: { $gte: 2024 } }`. */
export type Filter = { [key: string]: Json };

/** A search (the body of `POST /v1/libraries/{lib}/search`). */
export interface SearchRequest {
  /** The query vector (vector and hybrid search). */
  vector?: Vector;
  /** The query text (keyword and hybrid search). */
  text?: string;
  /** Defaults to hybrid with both `vector` and `text`, else the one given. */
  mode?: "vector" | "keyword" | "hybrid";
  /** Number of hits, 1 to 1000; defaults to 10. */
  k?: number;
  filter?: Filter;
  /** Results each retriever passes to fusion and reranking. */
  candidates?: number;
  fusion?: Fusion;
  rerank?: Reranker[];
  /** Unix milliseconds used by recency reranking; defaults to `Date.now()`. */
  now?: number;
  /** Per-query overrides: HNSW `ef` (1 to 4096), IVF `nprobe` (1 to 65536). */
  params?: { ef?: number; nprobe?: number };
  /** What hits carry besides ids and score; defaults to `["text", "metadata"]`. */
  include?: ("text" | "metadata" | "vector")[];
  /** Only hits scoring at least this much. */
  min_score?: number;
  /** Only hits at most this far (cosine and l2 libraries); at least 0. */
  distance_threshold?: number;
}

/** Where a hybrid hit's score came from. */
export interface ScoreBreakdown {
  vector_score?: number;
  vector_rank?: number;
  keyword_score?: number;
  keyword_rank?: number;
  fused_score?: number;
}

/** One search result. */
export interface Hit {
  chunk_id: string;
  document_id: string;
  /** Higher is closer, whatever the metric. */
  score: number;
  /** The metric's distance where it has one (cosine: `1 - score`, l2: euclidean). */
  distance?: number;
  text?: string;
  metadata?: Json;
  vector?: Float32Array;
  breakdown?: ScoreBreakdown;
}

/** The answer to a search, best hit first. */
export interface SearchResponse {
  hits: Hit[];
  /** Time spent in this call, in milliseconds. */
  took_ms: number;
}

/** What the caller should do: fix the request, look elsewhere, re-read state and retry,
 * retry later, or report a bug. */
export type ErrorKind = "invalid" | "not_found" | "conflict" | "unavailable" | "internal";

/** Every failure of this package; `message` is the same text the HTTP API returns. */
export class ArrwdbError extends Error {
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown });
  readonly name: "ArrwdbError";
  readonly kind: ErrorKind;
}

/** The error kinds, in order. */
export const ERROR_KINDS: readonly ErrorKind[];

/** Any thrown value as an ArrwdbError (engine errors keep their kind). */
export function toArrwdbError(error: unknown, fallbackKind?: ErrorKind): ArrwdbError;

/** What every database can read; all synchronous. */
declare abstract class Reader {
  /** All libraries and their statistics, ordered by name. */
  listLibraries(): LibraryInfo[];
  /** Throws `not_found`. */
  getLibrary(library: string): LibraryInfo;
  /** Throws `not_found`. */
  getDocument(library: string, id: string): StoredDocument;
  /** One page of documents in id order. Throws `not_found`. */
  listDocuments(library: string, request?: ListDocumentsRequest): DocumentList;
  /** Throws `invalid` for a bad request, `not_found` for an unknown library. */
  search(library: string, request: SearchRequest): SearchResponse;
  /** Snapshot bytes loadable by every arrwDB runtime. Throws `not_found`. */
  exportSnapshot(library: string): Uint8Array;
  /** Sequence number of the library's last write; 0 for an unknown library. */
  seq(library: string): number;
  /** Releases the wasm memory now. Every later call throws `invalid`; a second `free()`
   * does nothing; a `Replica` also stops polling. */
  free(): void;
}

/** Options of `Database.open`. */
export interface OpenOptions {
  /** Write a snapshot and drop the logged records after this many; default 1000. */
  compactAfter?: number;
  /** IndexedDB durability of write transactions; default `"strict"` (flushed to disk). */
  durability?: "strict" | "relaxed" | "default";
  /** Called after another tab's writes to `library` were replayed here. */
  onChange?: (library: string, seq: number) => void;
}

/** Options of `Database.follow`. */
export interface FollowOptions {
  /** The library to replicate. */
  library: string;
  /** The host's key prefix inside the bucket (its `--storage s3://bucket/{prefix}`);
   * default none. `baseUrl` is the bucket's URL. */
  prefix?: string;
  /** The host's tenant (the path segment after the prefix); default `"default"`. */
  tenant?: string;
  /** Start from this snapshot sequence instead of listing the bucket (`null`: from the
   * first WAL record). */
  snapshot?: number | null;
  /** Milliseconds between polls of the WAL; 0 polls only on `poll()`. Default 1000. */
  pollInterval?: number;
  /** Maps an object key (`tenant/library/wal/….wal`) to its URL, e.g. a presigned one.
   * Listing is skipped then. */
  url?: (key: string) => string | Promise<string>;
  /** The fetch to use; default `globalThis.fetch`. */
  fetch?: (url: string, init?: RequestInit) => Promise<Response>;
  /** Called after new records were applied. */
  onUpdate?: (seq: number) => void;
  /** Called when a background poll fails (polling goes on). */
  onError?: (error: ArrwdbError) => void;
}

/** An in-memory database; every method is synchronous. */
export class Database extends Reader {
  constructor();
  /** Opens (or creates) a database persisted to IndexedDB (or throws `unavailable`). */
  static open(name: string, options?: OpenOptions): Promise<PersistentDatabase>;
  /** Deletes a persisted database. */
  static destroy(name: string): Promise<void>;
  /** Loads the newest snapshot of a published library and tails its WAL. */
  static follow(baseUrl: string | URL, options: FollowOptions): Promise<Replica>;

  /** Throws `invalid` for bad options, `conflict` if the library exists. */
  createLibrary(options: CreateLibraryOptions): LibraryInfo;
  /** Throws `not_found`. */
  deleteLibrary(library: string): void;
  /** Inserts or replaces a whole document. Throws `invalid`, `not_found`, `conflict`. */
  upsert(library: string, document: DocumentInput): UpsertResult;
  /** Validates every item first: a bad batch changes nothing. */
  upsertBatch(library: string, batch: BatchInput): BatchResult;
  /** Throws `not_found`. */
  deleteDocument(library: string, id: string): void;
  /** One write, whatever the number of documents. */
  deleteDocuments(library: string, request: DeleteRequest): DeleteResult;
  rebuild(library: string, options: RebuildOptions): LibraryInfo;
  optimize(library: string): LibraryInfo;
  /** Replaces a library of the same name; returns the name. Throws `internal` for corrupt bytes. */
  importSnapshot(bytes: Uint8Array | ArrayBuffer): string;
  /** Fetches one snapshot file and imports it. */
  loadSnapshot(url: string | URL, init?: RequestInit): Promise<string>;
}

/** Storage of one library in IndexedDB. */
export interface StorageStats {
  snapshot_seq: number | null;
  snapshot_bytes: number;
  wal_segments: number;
  wal_records: number;
  wal_bytes: number;
}

/**
 * A database persisted to IndexedDB: reads are synchronous; a write is applied at once
 * and its promise resolves when it is durable (rejects `conflict` if another tab wrote
 * the library first, `unavailable` if IndexedDB failed; the library is reloaded then).
 */
export class PersistentDatabase extends Reader {
  private constructor();
  static open(name: string, options?: OpenOptions): Promise<PersistentDatabase>;
  static destroy(name: string): Promise<void>;
  readonly name: string;
  createLibrary(options: CreateLibraryOptions): Promise<LibraryInfo>;
  deleteLibrary(library: string): Promise<void>;
  upsert(library: string, document: DocumentInput): Promise<UpsertResult>;
  /** One transaction for the whole batch. */
  upsertBatch(library: string, batch: BatchInput): Promise<BatchResult>;
  deleteDocument(library: string, id: string): Promise<void>;
  deleteDocuments(library: string, request: DeleteRequest): Promise<DeleteResult>;
  rebuild(library: string, options: RebuildOptions): Promise<LibraryInfo>;
  optimize(library: string): Promise<LibraryInfo>;
  importSnapshot(bytes: Uint8Array | ArrayBuffer): Promise<string>;
  loadSnapshot(url: string | URL, init?: RequestInit): Promise<string>;
  /** Writes the snapshot and drops logged records now. */
  compact(library: string): Promise<void>;
  /** Resolves when every write issued so far has settled. */
  flush(): Promise<void>;
  storageStats(library: string): Promise<StorageStats>;
  /** Waits for pending writes and closes IndexedDB; reads keep working, writes throw. */
  close(): Promise<void>;
}

/** A read-only replica of a library published to object storage. */
export class Replica extends Reader {
  private constructor();
  readonly library: string;
  /** Sequence number of the last applied record. */
  readonly position: number;
  /** Whether the host deleted the library (polling stopped). */
  readonly deleted: boolean;
  /** Applies new WAL segments now; resolves to the new position. */
  poll(): Promise<number>;
  /** Stops polling; reads keep working. */
  stop(): void;
}

/** Options of `WorkerDatabase.spawn`. */
export interface SpawnOptions {
  /** Persist to IndexedDB under this name (else in memory). */
  name?: string;
  persist?: OpenOptions;
  /** Follow a published library instead (`onUpdate`/`onError`/`fetch`/`url` cannot cross to a worker). */
  follow?: { baseUrl: string } & Omit<FollowOptions, "onUpdate" | "onError" | "fetch" | "url">;
  /** A worker running `arrwdb/worker`; default: one started from the package. */
  worker?: Worker;
}

/** The whole API in a Web Worker, so searching never blocks the UI thread. */
export class WorkerDatabase {
  private constructor();
  static spawn(options?: SpawnOptions): Promise<WorkerDatabase>;
  readonly kind: "Database" | "PersistentDatabase" | "Replica";
  listLibraries(): Promise<LibraryInfo[]>;
  getLibrary(library: string): Promise<LibraryInfo>;
  getDocument(library: string, id: string): Promise<StoredDocument>;
  listDocuments(library: string, request?: ListDocumentsRequest): Promise<DocumentList>;
  search(library: string, request: SearchRequest): Promise<SearchResponse>;
  exportSnapshot(library: string): Promise<Uint8Array>;
  seq(library: string): Promise<number>;
  createLibrary(options: CreateLibraryOptions): Promise<LibraryInfo>;
  deleteLibrary(library: string): Promise<void>;
  upsert(library: string, document: DocumentInput): Promise<UpsertResult>;
  upsertBatch(library: string, batch: BatchInput): Promise<BatchResult>;
  deleteDocument(library: string, id: string): Promise<void>;
  deleteDocuments(library: string, request: DeleteRequest): Promise<DeleteResult>;
  rebuild(library: string, options: RebuildOptions): Promise<LibraryInfo>;
  optimize(library: string): Promise<LibraryInfo>;
  importSnapshot(bytes: Uint8Array | ArrayBuffer): Promise<string>;
  loadSnapshot(url: string): Promise<string>;
  /** PersistentDatabase only. */
  compact(library: string): Promise<void>;
  /** PersistentDatabase only. */
  flush(): Promise<void>;
  /** Replica only. */
  poll(): Promise<number>;
  /** Stops the worker; pending and later calls reject with `unavailable`. */
  terminate(): void;
}

/** What an embedding function is asked to embed for. */
export type EmbedPurpose = "document" | "query";

/** Turns texts into vectors (transformers.js, an API call, ...): one per text. */
export type EmbedFunction = (
  texts: string[],
  purpose: EmbedPurpose,
) => Promise<ArrayLike<number>[]> | ArrayLike<number>[];

/** Options of {@link withEmbedder}. */
export interface EmbedderOptions {
  /** Most texts per call of the embedding function (default 32). */
  batchSize?: number;
}

/** `db` with `upsert` and `search` made async and able to embed text. */
export type WithEmbedder<D> = Omit<D, "upsert" | "search"> & {
  /** Chunks with `text` and no `embedding` are embedded first (nothing is written if
   * that fails). */
  upsert(library: string, document: DocumentInput): Promise<UpsertResult>;
  /** `text` without `vector` is embedded: hybrid without a `mode`, vector-only with
   * `mode: "vector"`, plain keyword with `mode: "keyword"`. */
  search(library: string, request: SearchRequest): Promise<SearchResponse>;
};

/**
 * Plugs an embedding function into any database so documents and searches may carry
 * text without vectors. Embedding failures reject with `unavailable`, vectors of the
 * wrong dimension with `invalid`.
 */
export function withEmbedder<
  D extends { getLibrary(library: string): LibraryInfo | Promise<LibraryInfo>; search: unknown },
>(
  db: D,
  embed: EmbedFunction,
  options?: EmbedderOptions,
): WithEmbedder<D>;

/** Browsers: fetches and compiles the .wasm (`input`: its URL, a Response, bytes or a
 * module). Node and bundlers: nothing to do. `Database.open`/`follow` call it for you. */
export default function init(
  input?: string | URL | Request | Response | ArrayBuffer | ArrayBufferView | WebAssembly.Module,
): Promise<void>;

/** Compiles the .wasm synchronously (browsers); a no-op in Node and bundlers. */
export function initSync(module?: ArrayBuffer | ArrayBufferView | WebAssembly.Module): void;

// Web platform names used above. A project compiled without the DOM lib (Node, no
// `lib: ["dom"]`) has none of them; these empty interfaces let it compile, and where
// the DOM lib or @types/node declares them they merge into those declarations.
declare global {
  interface Worker {}
  interface Request {}
  interface Response {}
  interface RequestInit {}
  interface URL {}
  namespace WebAssembly {
    interface Module {}
  }
}
