// Compiled by types.test.mjs with `tsc --noEmit --strict` against the built package's
// index.d.ts: every public call with its declared types. Must compile cleanly.
import init, {
  ArrwdbError,
  Database,
  ERROR_KINDS,
  WorkerDatabase,
  initSync,
  toArrwdbError,
  type BatchResult,
  type ErrorKind,
  type Hit,
  type LibraryInfo,
  type PersistentDatabase,
  type Replica,
  type SearchResponse,
  type StoredDocument,
} from "arrwdb";

export async function usage(): Promise<void> {
  await init();
  const db = new Database();
  const info: LibraryInfo = db.createLibrary({
    name: "docs",
    dimension: 3,
    metric: "cosine",
    index: { type: "hnsw", m: 16, ef_construction: 100 },
    quantization: { type: "sq8", oversample: 4 },
    text: { stemmer: "english", stop_words: "english", ascii_folding: true, k1: 1.2, b: 0.75 },
  });
  const k1: number = info.text.k1;
  db.upsert("docs", { id: "a", metadata: { year: 2024 }, chunks: [{ text: "hello", embedding: new Float32Array(3) }] });
  const batch: BatchResult = db.upsertBatch("docs", {
    ids: ["b", "c"],
    vectors: new Float32Array(6),
    texts: ["b", "c"],
    metadata: [{ tag: "x" }, null],
  });
  const response: SearchResponse = db.search("docs", {
    vector: new Float32Array([1, 0, 0]),
    text: "hello world",
    mode: "hybrid",
    k: 5,
    candidates: 50,
    filter: { year: { $gte: 2024 }, $or: [{ tag: { $in: ["x"] } }] },
    fusion: { method: "linear", normalization: "z_score", weights: { vector: 0.7, keyword: 0.3 } },
    rerank: [
      { type: "recency", field: "published_at", half_life_days: 30 },
      { type: "mmr", lambda: 0.5 },
      { type: "position" },
      { type: "length", target: 200, weight: 0.1 },
    ],
    include: ["text", "metadata", "vector"],
    min_score: 0.1,
  });
  const hit: Hit | undefined = response.hits[0];
  const fused: number | undefined = hit?.breakdown?.fused_score;
  const vector: Float32Array | undefined = hit?.vector;
  const doc: StoredDocument = db.getDocument("docs", "a");
  const embedding: Float32Array = doc.chunks[0].embedding;
  db.deleteDocuments("docs", ["b"]).deleted satisfies number;
  const removed: string[] = db.deleteDocuments("docs", { filter: { tag: "x" } }).ids;
  const page = db.listDocuments("docs", { limit: 10, filter: { year: 2024 } });
  const next: string | null | undefined = page.next_cursor;
  const chunks: number | undefined = page.documents[0]?.chunks;
  const bytes: Uint8Array = db.exportSnapshot("docs");
  const name: string = new Database().importSnapshot(bytes);
  await db.loadSnapshot("https://example.invalid/x.snap");

  const persisted: PersistentDatabase = await Database.open("app", {
    compactAfter: 500,
    durability: "relaxed",
    onChange: (l, s) => void [l, s],
  });
  const created: LibraryInfo = await persisted.createLibrary({ name: "p", dimension: 2 });
  await persisted.upsertBatch("p", { ids: ["x"], vectors: [1, 2] });
  const stats = await persisted.storageStats("p");
  const snapshotSeq: number | null = stats.snapshot_seq;
  await persisted.close();

  const replica: Replica = await Database.follow("https://bucket.example.invalid/", {
    library: "docs",
    prefix: "site",
    pollInterval: 500,
    url: (key) => `https://cdn.example.invalid/${key}`,
    onUpdate: (seq) => void seq,
    onError: (e) => void e.kind,
  });
  const position: number = replica.position;
  replica.stop();

  const worker = await WorkerDatabase.spawn({ name: "app" });
  const fromWorker: SearchResponse = await worker.search("p", { vector: [1, 2] });
  worker.terminate();

  initSync(new Uint8Array(0));
  const wrapped: ArrwdbError = toArrwdbError(new Error("x"), "unavailable");
  const kinds: readonly ErrorKind[] = ERROR_KINDS;
  db.free();
  try {
    db.getLibrary("nope");
  } catch (e) {
    if (e instanceof ArrwdbError) {
      const kind: ErrorKind = e.kind;
      void kind;
    }
  }
  void [removed, next, chunks, k1, batch, fused, vector, embedding, name, created, snapshotSeq, position, fromWorker, wrapped, kinds];
}
