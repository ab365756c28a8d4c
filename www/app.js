// The playground (index.html): the bundled pypi-minilm sample (www/sample/, made by
// www/tools/sample.mjs) in an in-memory arrwDB running in a Web Worker. Vector queries
// are held-out summaries of the same dataset, so no embedding model is needed; an
// approximate index is compared against a flat (exact) twin of the same library.
import { WorkerDatabase } from "/pkg/web/index.js";

const LIBRARY = "pypi";
const EXACT = "pypi_exact";
const SAMPLE = new URL("sample/pypi-minilm.json", import.meta.url);
const SAMPLE_FORMAT = "arrwdb-sample";
const SAMPLE_VERSION = 1;

const $ = (selector) => document.querySelector(selector);

let db = null;
/** The decoded sample: { dimension, documents, queries, docVectors, queryVectors }. */
let sample = null;
/** What is loaded: { index, exactTwin }. */
let loaded = null;

function setStatus(message, isError = false) {
  $("#status").textContent = message;
  $("#status").classList.toggle("error", isError);
}

/** The message a failure shows: the engine's kind and text, or the error's own. */
function describe(error) {
  return error?.kind ? `${error.kind}: ${error.message}` : String(error?.message ?? error);
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

const hex = (buffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");

/** Fetches the sample and checks its format, version, size and SHA-256. */
async function fetchSample() {
  const response = await fetch(SAMPLE);
  if (!response.ok) throw new Error(`the sample is missing (${SAMPLE.pathname}: HTTP ${response.status})`);
  const manifest = await response.json();
  if (manifest.format !== SAMPLE_FORMAT) throw new Error(`${SAMPLE.pathname} is not an arrwDB sample`);
  if (manifest.version !== SAMPLE_VERSION) {
    throw new Error(`the sample has version ${manifest.version}; this page reads version ${SAMPLE_VERSION}`);
  }
  const { dimension, documents, queries, vectors } = manifest;
  if (vectors.rows !== documents.length + queries.length || vectors.bytes !== vectors.rows * dimension * 4) {
    throw new Error("the sample's manifest does not add up");
  }
  const file = await fetch(new URL(vectors.file, SAMPLE));
  if (!file.ok) throw new Error(`the sample's vectors are missing (HTTP ${file.status})`);
  const bytes = await file.arrayBuffer();
  if (bytes.byteLength !== vectors.bytes) {
    throw new Error(`the sample's vectors have ${bytes.byteLength} bytes, not ${vectors.bytes}`);
  }
  // SubtleCrypto exists on secure origins only (https, localhost); elsewhere the size check stands alone.
  let verified = false;
  if (globalThis.crypto?.subtle) {
    const digest = hex(await crypto.subtle.digest("SHA-256", bytes));
    if (digest !== vectors.sha256) throw new Error("the sample's vectors fail their SHA-256 check");
    verified = true;
  }
  // Little-endian float32 whatever this machine's byte order.
  const view = new DataView(bytes);
  const all = new Float32Array(vectors.rows * dimension);
  for (let i = 0; i < all.length; i++) all[i] = view.getFloat32(i * 4, true);
  const split = documents.length * dimension;
  return {
    dimension,
    documents,
    queries,
    verified,
    docVectors: all.subarray(0, split),
    queryVectors: all.subarray(split),
  };
}

async function createAndFill(name, options) {
  await db.deleteLibrary(name).catch((error) => {
    if (error.kind !== "not_found") throw error;
  });
  await db.createLibrary({ name, dimension: sample.dimension, metric: "cosine", ...options });
  return db.upsertBatch(name, {
    ids: sample.documents.map((d) => d.id),
    vectors: sample.docVectors,
    texts: sample.documents.map((d) => d.text),
    metadata: sample.documents.map((d) => d.metadata),
  });
}

async function load() {
  const index = $("#index").value;
  const quantization = $("#quantization").value;
  const text = { stemmer: $("#stemmer").value, stop_words: "english" };
  setStatus(`Loading ${sample.documents.length.toLocaleString("en")} documents into a ${index} library…`);
  const started = performance.now();
  await createAndFill(LIBRARY, { index: { type: index }, quantization: { type: quantization }, text });
  const took = performance.now() - started;
  const exactTwin = index !== "flat" || quantization !== "none";
  if (exactTwin) {
    await createAndFill(EXACT, { index: { type: "flat" }, text });
  } else {
    await db.deleteLibrary(EXACT).catch(() => {});
  }
  loaded = { index, exactTwin };
  const info = await db.getLibrary(LIBRARY);
  const snapshot = await db.exportSnapshot(LIBRARY);
  $("#library").textContent =
    `Library ${info.name}: ${info.index.type} index, quantization ${info.quantization.type}, ` +
    `${info.documents.toLocaleString("en")} documents, loaded and indexed in ${Math.round(took)} ms; ` +
    `snapshot ${snapshot.length.toLocaleString("en")} bytes.` +
    (sample.verified ? "" : " (The sample's SHA-256 was not checked: this origin is not secure.)");
  $("#library").dataset.documents = String(info.documents);
}

/** The filter of the form, or undefined; throws `invalid` for bad JSON. */
function filterOfForm() {
  const clauses = [];
  const range = {};
  if ($("#year-from").value !== "") range.$gte = Number($("#year-from").value);
  if ($("#year-to").value !== "") range.$lte = Number($("#year-to").value);
  if (Object.keys(range).length > 0) clauses.push({ year: range });
  if ($("#popular").checked) clauses.push({ download_rank: { $exists: true } });
  const extra = $("#filter").value.trim();
  if (extra) {
    try {
      clauses.push(JSON.parse(extra));
    } catch (error) {
      throw Object.assign(new Error(`the filter is not JSON: ${error.message}`), { kind: "invalid" });
    }
  }
  if (clauses.length === 0) return undefined;
  return clauses.length === 1 ? clauses[0] : { $and: clauses };
}

function requestOfForm() {
  const request = { k: Number($("#k").value), include: ["text", "metadata"] };
  const query = $("#query").value;
  if (query !== "") {
    const q = Number(query);
    request.vector = sample.queryVectors.slice(q * sample.dimension, (q + 1) * sample.dimension);
  }
  const text = $("#text").value.trim();
  if (text) request.text = text;
  // The engine refuses a request whose mode leaves a given part unused; the form keeps
  // both filled in, so the mode picks which one is sent.
  const mode = $("#mode").value;
  if (mode) request.mode = mode;
  if (mode === "vector") delete request.text;
  if (mode === "keyword") delete request.vector;
  if (request.vector && request.text) {
    request.fusion = $("#fusion").value === "linear" ? { method: "linear", normalization: "min_max" } : { method: "rrf" };
  }
  const breadth = $("#breadth").value;
  if (breadth !== "" && loaded.index === "hnsw") request.params = { ef: Number(breadth) };
  if (breadth !== "" && loaded.index === "ivf") request.params = { nprobe: Number(breadth) };
  const filter = filterOfForm();
  if (filter !== undefined) request.filter = filter;
  return request;
}

const fixed = (x, digits = 4) => (typeof x === "number" ? x.toFixed(digits) : "–");

function renderHits(hits, exactIds) {
  $("#hits tbody").replaceChildren(
    ...hits.map((hit, i) => {
      const tr = document.createElement("tr");
      tr.dataset.chunkId = hit.chunk_id;
      tr.dataset.documentId = hit.document_id;
      const b = hit.breakdown ?? {};
      const meta = hit.metadata ?? {};
      const missed = exactIds !== null && !exactIds.has(hit.chunk_id);
      if (missed) {
        tr.classList.add("exact-miss");
        tr.title = "not among the exact search's hits";
      }
      tr.append(
        cell(String(i + 1), "num"),
        cell(meta.package ?? hit.document_id, "package"),
        cell(hit.text ?? ""),
        cell(meta.year === undefined ? "–" : String(meta.year), "num"),
        cell(fixed(hit.score), "num"),
        cell(b.vector_rank === undefined ? "–" : `${fixed(b.vector_score)} · ${b.vector_rank}`, "num"),
        cell(b.keyword_rank === undefined ? "–" : `${fixed(b.keyword_score, 3)} · ${b.keyword_rank}`, "num"),
      );
      return tr;
    }),
  );
}

async function search() {
  const request = requestOfForm();
  if (!request.vector && !request.text) {
    throw Object.assign(new Error("choose a query or type keyword text"), { kind: "invalid" });
  }
  const response = await db.search(LIBRARY, request);
  const effectiveMode = request.mode ?? (request.vector && request.text ? "hybrid" : request.vector ? "vector" : "keyword");
  // Recall: the same vector search on the flat twin, which scores every chunk exactly.
  let exactIds = null;
  let recall = "";
  if (effectiveMode === "vector") {
    if (loaded.exactTwin) {
      const { params: _params, ...exactRequest } = request;
      const exact = await db.search(EXACT, exactRequest);
      exactIds = new Set(exact.hits.map((h) => h.chunk_id));
      const found = response.hits.filter((h) => exactIds.has(h.chunk_id)).length;
      recall = ` Recall against exact search: ${found} of ${exact.hits.length}.`;
      $("#summary").dataset.recall = `${found}/${exact.hits.length}`;
    } else {
      recall = " The flat index is exact search.";
      $("#summary").dataset.recall = "exact";
    }
  } else {
    delete $("#summary").dataset.recall;
  }
  renderHits(response.hits, exactIds);
  const filter = request.filter === undefined ? "" : ` Filter ${JSON.stringify(request.filter)}.`;
  $("#summary").textContent =
    `${response.hits.length} hits, ${effectiveMode} search, in ${response.took_ms.toFixed(2)} ms.${filter}${recall}`;
  // Counts answered searches, so a test (or a person) sees that a new answer arrived.
  $("#summary").dataset.searches = String(Number($("#summary").dataset.searches ?? 0) + 1);
  return `${response.hits.length} hits.`;
}

/** Runs a UI action with the form buttons disabled, reporting its outcome. */
async function action(fn) {
  $("#load").disabled = true;
  $("#search").disabled = true;
  try {
    setStatus(await fn());
  } catch (error) {
    setStatus(describe(error), true);
  } finally {
    $("#load").disabled = false;
    $("#search").disabled = loaded === null;
  }
}

$("#library-form").addEventListener("submit", (event) => {
  event.preventDefault();
  action(async () => {
    await load();
    await search();
    return `Loaded the sample into a ${loaded.index} library.`;
  });
});

$("#search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  action(search);
});

$("#query").addEventListener("change", () => {
  const query = $("#query").value;
  $("#text").value = query === "" ? "" : sample.queries[Number(query)].text;
});

try {
  db = await WorkerDatabase.spawn();
  sample = await fetchSample();
  $("#query").append(...sample.queries.map((q, i) => new Option(q.text, String(i))));
  $("#query").value = "0";
  $("#text").value = sample.queries[0].text;
  await action(async () => {
    await load();
    await search();
    return `Ready: ${sample.documents.length.toLocaleString("en")} documents, ${sample.queries.length} queries.`;
  });
} catch (error) {
  setStatus(`Could not start: ${describe(error)}`, true);
  $("#library").textContent = "Not loaded.";
}
