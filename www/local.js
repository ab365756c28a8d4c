// The in-tab console (local.html): every panel is a call of the `arrwdb` package. The database lives in
// a Web Worker (WorkerDatabase) persisted to IndexedDB, so searches never block this
// page and the data survives a reload; "Follow" swaps in a read replica of a library
// that an arrwDB host publishes to object storage.
import { Database, WorkerDatabase } from "/pkg/web/index.js";

const $ = (selector) => document.querySelector(selector);

let db = null;
let replica = null;
let followTimer = null;

function setStatus(message, isError = false) {
  $("#status").textContent = message;
  $("#status").classList.toggle("error", isError);
}

/** Runs a UI action, showing its outcome or its ArrwdbError in the status line. */
async function action(what, fn) {
  try {
    const message = await fn();
    setStatus(message ?? `${what}: done`);
  } catch (error) {
    setStatus(`${what} failed: ${error.kind ?? "error"}: ${error.message}`, true);
  }
}

function cell(text, code = false) {
  const td = document.createElement("td");
  if (code) {
    const c = document.createElement("code");
    c.textContent = text;
    td.append(c);
  } else {
    td.textContent = text;
  }
  return td;
}

function parseJson(text, what) {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw Object.assign(new Error(`${what} is not JSON: ${error.message}`), { kind: "invalid" });
  }
}

async function refreshLibraries() {
  const target = replica ?? db;
  const libraries = target === null ? [] : await target.listLibraries();
  const body = $("#libraries tbody");
  body.replaceChildren(
    ...libraries.map((info) => {
      const tr = document.createElement("tr");
      tr.dataset.library = info.name;
      tr.append(
        cell(info.name), cell(String(info.dimension)), cell(info.metric), cell(info.index.type),
        cell(String(info.documents)), cell(String(info.chunks)), cell(String(info.seq)),
      );
      const td = document.createElement("td");
      if (replica === null) {
        const button = Object.assign(document.createElement("button"), { type: "button", className: "danger", textContent: "Delete" });
        button.addEventListener("click", () =>
          action(`delete ${info.name}`, async () => {
            await db.deleteLibrary(info.name);
            await refreshLibraries();
            return `Deleted library ${info.name}.`;
          }),
        );
        td.append(button);
      }
      tr.append(td);
      return tr;
    }),
  );
  $("#db-info").textContent =
    replica !== null
      ? `Read replica in a Web Worker, ${libraries.length} library.`
      : db !== null
        ? `IndexedDB database “${$("#db-name").value.trim()}”, ${libraries.length} libraries, engine in a Web Worker.`
        : "Not open.";
  for (const select of document.querySelectorAll(".library-select")) {
    const current = select.value;
    select.replaceChildren(...libraries.map((l) => new Option(l.name, l.name)));
    if (libraries.some((l) => l.name === current)) select.value = current;
  }
  return libraries;
}

async function open(name) {
  stopFollowing();
  db?.terminate();
  db = null;
  db = await WorkerDatabase.spawn({ name });
  await refreshLibraries();
  return `Opened ${name}.`;
}

function stopFollowing() {
  clearInterval(followTimer);
  replica?.terminate();
  replica = null;
  $("#follow-info").textContent = "A replica is read-only and polls the host's WAL once a second.";
}

function renderHits({ hits, took_ms }) {
  $("#took").textContent = `${hits.length} in ${took_ms.toFixed(2)} ms`;
  $("#hits tbody").replaceChildren(
    ...hits.map((hit, i) => {
      const tr = document.createElement("tr");
      tr.dataset.chunkId = hit.chunk_id;
      const b = hit.breakdown ?? {};
      tr.append(
        cell(String(i + 1)),
        cell(hit.chunk_id, true),
        cell(hit.score.toFixed(4)),
        cell(`${b.vector_rank ?? "–"} / ${b.keyword_rank ?? "–"}`),
        cell(hit.text ?? ""),
        cell(JSON.stringify(hit.metadata ?? null), true),
      );
      return tr;
    }),
  );
}

$("#open-form").addEventListener("submit", (event) => {
  event.preventDefault();
  action("open", () => open($("#db-name").value.trim()));
});

$("#destroy").addEventListener("click", () =>
  action("delete database", async () => {
    const name = $("#db-name").value.trim();
    stopFollowing();
    db?.terminate();
    db = null;
    await Database.destroy(name);
    await open(name);
    return `Deleted every library of ${name}.`;
  }),
);

$("#create-form").addEventListener("submit", (event) => {
  event.preventDefault();
  action("create library", async () => {
    const info = await db.createLibrary({
      name: $("#new-name").value.trim(),
      dimension: Number($("#new-dimension").value),
      metric: $("#new-metric").value,
      index: { type: $("#new-index").value },
      text: { stemmer: $("#new-stemmer").value },
    });
    await refreshLibraries();
    for (const select of document.querySelectorAll(".library-select")) select.value = info.name;
    return `Created library ${info.name}.`;
  });
});

$("#upsert-form").addEventListener("submit", (event) => {
  event.preventDefault();
  action("upsert", async () => {
    const library = $("#upsert-library").value;
    const parsed = parseJson($("#documents").value, "the documents");
    const documents = Array.isArray(parsed) ? parsed : [parsed];
    for (const document of documents) await db.upsert(library, document);
    await refreshLibraries();
    return `Upserted ${documents.length} documents into ${library}.`;
  });
});

$("#search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  action("search", async () => {
    const request = { k: Number($("#search-k").value), include: ["text", "metadata"] };
    const vector = $("#search-vector").value.trim();
    const text = $("#search-text").value.trim();
    const filter = $("#search-filter").value.trim();
    if (vector) request.vector = Float32Array.from(parseJson(vector, "the vector"));
    if (text) request.text = text;
    if (filter) request.filter = parseJson(filter, "the filter");
    if ($("#search-mode").value) request.mode = $("#search-mode").value;
    if ($("#search-fusion").value === "linear" && vector && text) request.fusion = { method: "linear", normalization: "min_max" };
    const response = await (replica ?? db).search($("#search-library").value, request);
    renderHits(response);
    return `${response.hits.length} hits.`;
  });
});

$("#export").addEventListener("click", () =>
  action("export", async () => {
    const library = $("#snapshot-library").value;
    const bytes = await (replica ?? db).exportSnapshot(library);
    const link = Object.assign(document.createElement("a"), {
      href: URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" })),
      download: `${library}.snap`,
    });
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    return `Exported ${library}: ${bytes.length.toLocaleString()} bytes.`;
  }),
);

$("#import-file").addEventListener("change", (event) =>
  action("import", async () => {
    const file = event.target.files[0];
    if (!file) return "No file chosen.";
    const name = await db.importSnapshot(new Uint8Array(await file.arrayBuffer()));
    event.target.value = "";
    await refreshLibraries();
    return `Imported library ${name}.`;
  }),
);

$("#load-form").addEventListener("submit", (event) => {
  event.preventDefault();
  action("load", async () => {
    const name = await db.loadSnapshot($("#load-url").value.trim());
    await refreshLibraries();
    return `Loaded library ${name}.`;
  });
});

$("#follow-form").addEventListener("submit", (event) => {
  event.preventDefault();
  action("follow", async () => {
    stopFollowing();
    const library = $("#follow-library").value.trim();
    replica = await WorkerDatabase.spawn({
      follow: { baseUrl: $("#follow-url").value.trim(), library, prefix: $("#follow-prefix").value.trim(), pollInterval: 0 },
    });
    const show = async () => {
      const position = await replica.poll();
      $("#follow-info").textContent = `Following ${library} at record ${position}.`;
      await refreshLibraries();
    };
    await show();
    followTimer = setInterval(() => show().catch((error) => setStatus(`follow: ${error.message}`, true)), 1000);
    return `Following ${library}.`;
  });
});

await action("open", () => open($("#db-name").value.trim()));
