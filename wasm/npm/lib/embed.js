// Text in, vectors out, in the browser: plug an embedding function (transformers.js,
// an API call, anything async) into any arrwDB database so documents and searches may
// carry text without vectors, as they may on the `arrwdb` host with an embedding
// provider configured.
import { ArrwdbError } from "./errors.js";

function needsVector(chunk) {
  return (
    chunk !== null &&
    typeof chunk === "object" &&
    chunk.embedding == null &&
    typeof chunk.text === "string" &&
    chunk.text.length > 0
  );
}

function toF32(vector, dimension, what) {
  let out;
  if (vector instanceof Float32Array) out = vector;
  else if (ArrayBuffer.isView(vector) || Array.isArray(vector)) out = Float32Array.from(vector);
  else throw new ArrwdbError("invalid", `the embedding function returned ${typeof vector} for ${what}, not an array of numbers`);
  if (out.length !== dimension) {
    throw new ArrwdbError(
      "invalid",
      `the embedding function returned ${out.length}-dimensional vectors, but the library has dimension ${dimension}: is it the library's model?`,
    );
  }
  return out;
}

async function embedAll(embed, texts, purpose, dimension, batchSize) {
  const out = [];
  for (let i = 0; i < texts.length; i += batchSize) {
    const batch = texts.slice(i, i + batchSize);
    let vectors;
    try {
      vectors = await embed(batch, purpose);
    } catch (error) {
      throw new ArrwdbError("unavailable", `the embedding function failed: ${error?.message ?? error}`, { cause: error });
    }
    if (!Array.isArray(vectors) || vectors.length !== batch.length) {
      throw new ArrwdbError(
        "invalid",
        `the embedding function must return one vector per text (${batch.length}), got ${Array.isArray(vectors) ? vectors.length : typeof vectors}`,
      );
    }
    vectors.forEach((v, j) => out.push(toF32(v, dimension, `text ${i + j}`)));
  }
  return out;
}

/**
 * Wraps `db` (a Database, PersistentDatabase, WorkerDatabase or Replica) so that
 * `upsert` embeds chunks that have `text` and no `embedding`, and `search` embeds a
 * `text` that comes without a `vector` (no `mode`: hybrid, like the host; `mode:
 * "vector"`: vector only; `mode: "keyword"`: not embedded). Both become async. Every
 * other method is `db`'s own. Nothing is written when embedding fails.
 *
 * `embed(texts, purpose)` resolves to one vector (Float32Array or number[]) per text;
 * `purpose` is `"document"` or `"query"`.
 */
export function withEmbedder(db, embed, { batchSize = 32 } = {}) {
  if (typeof embed !== "function") {
    throw new ArrwdbError("invalid", "withEmbedder(db, embed): `embed` must be a function (texts, purpose) => Promise<vectors>");
  }
  const size = Math.max(1, Math.floor(batchSize));
  const dimension = async (library) => (await db.getLibrary(library)).dimension;
  const wrapped = {
    async upsert(library, document) {
      const chunks = document?.chunks;
      if (!Array.isArray(chunks) || !chunks.some(needsVector)) return db.upsert(library, document);
      const todo = chunks.filter(needsVector);
      const vectors = await embedAll(embed, todo.map((c) => c.text), "document", await dimension(library), size);
      let next = 0;
      const filled = chunks.map((c) => (needsVector(c) ? { ...c, embedding: vectors[next++] } : c));
      return db.upsert(library, { ...document, chunks: filled });
    },
    async search(library, request) {
      const wants =
        request !== null &&
        typeof request === "object" &&
        request.vector == null &&
        typeof request.text === "string" &&
        request.text.length > 0 &&
        request.mode !== "keyword";
      if (!wants) return db.search(library, request);
      const [vector] = await embedAll(embed, [request.text], "query", await dimension(library), 1);
      const body = { ...request, vector };
      if (request.mode === "vector") delete body.text;
      return db.search(library, body);
    },
  };
  return new Proxy(db, {
    get(target, property) {
      if (Object.hasOwn(wrapped, property)) return wrapped[property];
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
