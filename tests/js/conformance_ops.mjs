// The conformance suite's executor for the npm package, shared by Node and the browser
// (no Node or DOM API here): runs an expanded plan (docs/conformance.md) against the
// package's in-memory `Database` and returns one raw result per operation, which the
// Rust side normalizes and compares with the native engine.
//
// Result of an operation: `{ ok: <response JSON> }` or `{ error: { kind, message } }`.
// The package has no HTTP-shaped batch (its `upsertBatch` takes flat vectors), so
// `upsert_batch` is one `upsert` per document, each result or error in request order,
// as the HTTP batch reports them.

/** Stored vectors come back as Float32Arrays: make them plain arrays for JSON. */
function plain(value) {
  return JSON.parse(
    JSON.stringify(value, (_, v) => (v instanceof Float32Array ? Array.from(v) : v)),
  );
}

function attempt(fn) {
  try {
    return { ok: plain(fn() ?? null) };
  } catch (error) {
    return { error: { kind: error?.kind ?? "internal", message: String(error?.message ?? error) } };
  }
}

function magic(bytes) {
  return String.fromCharCode(...bytes.subarray(0, 4));
}

/** Runs one operation against `state.db`; `restart` swaps in a fresh database. */
function runOp(arrwdb, state, op) {
  const db = state.db;
  const lib = op.library;
  switch (op.op) {
    case "create_library":
      return attempt(() => db.createLibrary(op.body));
    case "upsert":
      return attempt(() => db.upsert(lib, op.body));
    case "upsert_batch":
      return {
        ok: {
          results: op.body.documents.map((document) => {
            const one = attempt(() => db.upsert(lib, document));
            return one.ok ?? { error: one.error };
          }),
        },
      };
    case "delete_document":
      return attempt(() => db.deleteDocument(lib, op.id));
    case "delete_documents":
      return attempt(() => db.deleteDocuments(lib, op.body));
    case "rebuild":
      return attempt(() => db.rebuild(lib, op.body));
    case "optimize":
      return attempt(() => db.optimize(lib));
    case "search":
      return attempt(() => db.search(lib, op.body));
    case "get_library":
      return attempt(() => db.getLibrary(lib));
    case "get_document":
      return attempt(() => db.getDocument(lib, op.id));
    case "list_documents":
      return attempt(() => db.listDocuments(lib, op.query ?? {}));
    case "snapshot":
      return attempt(() => ({ magic: magic(db.exportSnapshot(lib)) }));
    case "restart":
      return attempt(() => {
        // Every library leaves as snapshot bytes and enters a fresh database.
        const listed = db.listLibraries();
        const libraries = Array.isArray(listed) ? listed : listed.libraries;
        const snapshots = libraries.map((l) => db.exportSnapshot(l.name));
        const fresh = new arrwdb.Database();
        for (const bytes of snapshots) fresh.importSnapshot(bytes);
        db.free();
        state.db = fresh;
        return null;
      });
    default:
      return { error: { kind: "internal", message: `conformance: unknown op ${op.op}` } };
  }
}

/** Runs every scenario of `plan` in a fresh Database; returns `[[result per op]]`. */
export function runPlan(arrwdb, plan) {
  return plan.scenarios.map((scenario) => {
    const state = { db: new arrwdb.Database() };
    const results = scenario.ops.map((op) => runOp(arrwdb, state, op));
    state.db.free();
    return results;
  });
}
