// The host console (console.html): a page the arrwdb server serves at `/console`, talking
// to the REST API of its own origin. No framework and no dependencies.
//
// Key choices:
// - The API key lives in sessionStorage (this tab only, gone when it closes) and travels
//   only in the `Authorization: Bearer` header, never in a URL: a URL ends up in
//   history, logs and Referer headers.
// - Live events come from `GET /v1/events` read with `fetch` and a stream reader, not
//   `EventSource`, which cannot send an `Authorization` header. The reader parses the
//   SSE framing itself, remembers the last event id and resumes with `Last-Event-ID`
//   after a dropped connection, so no event is missed or repeated.
// - Job progress comes from `job.*` events when the event stream is open, and from
//   polling `GET /v1/jobs/{id}` otherwise (both update the same table).
// - Metrics are the Prometheus text of `/metrics`, scraped every second: the request
//   rate is the change of `arrwdb_http_requests_total` (without the console's own
//   scrapes), the median search latency is interpolated from the change of the
//   `arrwdb_search_duration_seconds` buckets (as PromQL's histogram_quantile does).

const KEY_STORAGE = "arrwdb.console.key";
const MAX_EVENTS = 200;
const METRICS_EVERY_MS = 1000;
const METRICS_POINTS = 120;
const JOB_POLL_MS = 700;

const $ = (selector) => document.querySelector(selector);

/** An error of the API (or of the network), with the API's error kind. */
class ConsoleError extends Error {
  constructor(kind, message, status = 0) {
    super(message);
    this.kind = kind;
    this.status = status;
  }
}

let key = sessionStorage.getItem(KEY_STORAGE);
let libraries = [];
const jobs = new Map();
let jobTimer = null;
let metricsTimer = null;
let watcher = null;

function setStatus(message, isError = false) {
  $("#status").textContent = message;
  $("#status").classList.toggle("error", isError);
}

/** Runs a UI action, showing its outcome or its error in the status line. */
async function action(what, fn) {
  try {
    const message = await fn();
    setStatus(message ?? `${what}: done`);
  } catch (error) {
    setStatus(`${what} failed: ${error.kind ?? "error"}: ${error.message}`, true);
    if (error.status === 401 && key !== null) signOut("Your key was refused; sign in again.");
  }
}

function authHeaders(extra = {}) {
  return key ? { ...extra, authorization: `Bearer ${key}` } : extra;
}

/** A JSON request to this origin's API; throws a ConsoleError for an error status. */
async function api(method, route, body) {
  let response;
  try {
    response = await fetch(route, {
      method,
      headers: authHeaders(body === undefined ? {} : { "content-type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (error) {
    throw new ConsoleError("unavailable", `the server cannot be reached (${error.message})`);
  }
  const text = await response.text();
  let value = null;
  try {
    value = text === "" ? null : JSON.parse(text);
  } catch {
    value = null;
  }
  if (!response.ok) {
    const detail = value?.error;
    throw new ConsoleError(detail?.kind ?? "internal", detail?.message ?? `HTTP ${response.status}`, response.status);
  }
  return value;
}

function parseJson(text, what) {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ConsoleError("invalid", `${what} is not JSON: ${error.message}`);
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

const route = (...parts) => parts.map(encodeURIComponent).join("/");

// ---------------------------------------------------------------- sign in / out

/** Shows the signed-in console, or the sign-in form. */
function showSignedIn(signedIn) {
  $("#signin").hidden = signedIn;
  $("#app").hidden = !signedIn;
}

async function signIn(candidate) {
  key = candidate;
  try {
    await api("GET", "/v1/libraries");
  } catch (error) {
    key = null;
    throw error;
  }
  sessionStorage.setItem(KEY_STORAGE, candidate);
  $("#api-key").value = "";
  const shown = candidate ? `${candidate.slice(0, 7)}…${candidate.slice(-4)}` : "none (authentication is off)";
  $("#whoami").textContent = `Signed in to ${location.origin} with key ${shown}.`;
  showSignedIn(true);
  await refreshLibraries();
  await refreshJobs();
  startMetrics();
}

function signOut(message = "Signed out.") {
  key = null;
  sessionStorage.removeItem(KEY_STORAGE);
  stopWatching();
  clearInterval(jobTimer);
  jobTimer = null;
  clearTimeout(metricsTimer);
  metricsTimer = null;
  jobs.clear();
  showSignedIn(false);
  setStatus(message, message !== "Signed out.");
  $("#api-key").focus();
}

$("#signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  action("sign in", async () => {
    await signIn($("#api-key").value.trim());
    $("#session-title").focus();
    return "Signed in.";
  });
});

$("#signout").addEventListener("click", () => signOut());

// ---------------------------------------------------------------- libraries

async function refreshLibraries() {
  ({ libraries } = await api("GET", "/v1/libraries"));
  $("#libraries tbody").replaceChildren(
    ...libraries.map((info) => {
      const tr = document.createElement("tr");
      tr.dataset.library = info.name;
      tr.append(
        cell(info.name), cell(String(info.dimension)), cell(info.metric), cell(info.index.type),
        cell(String(info.documents)), cell(String(info.chunks)), cell(String(info.seq)),
      );
      return tr;
    }),
  );
  for (const select of document.querySelectorAll(".library-select")) {
    const current = select.value;
    select.replaceChildren(...libraries.map((l) => new Option(l.name, l.name)));
    if (libraries.some((l) => l.name === current)) select.value = current;
  }
  if ($("#job-params").value.trim() === "") fillJobTemplate();
  return libraries;
}

$("#refresh").addEventListener("click", () =>
  action("refresh", async () => `${(await refreshLibraries()).length} libraries.`),
);

$("#create-form").addEventListener("submit", (event) => {
  event.preventDefault();
  action("create library", async () => {
    const info = await api("POST", "/v1/libraries", {
      name: $("#new-name").value.trim(),
      dimension: Number($("#new-dimension").value),
      metric: $("#new-metric").value,
      index: { type: $("#new-index").value },
    });
    await refreshLibraries();
    for (const select of document.querySelectorAll(".library-select")) select.value = info.name;
    fillJobTemplate();
    return `Created library ${info.name}.`;
  });
});

// ---------------------------------------------------------------- search

$("#sample").addEventListener("click", () =>
  action("sample vector", async () => {
    const library = $("#search-library").value;
    const { documents } = await api("GET", `/v1/libraries/${route(library)}/documents?limit=1`);
    if (documents.length === 0) throw new ConsoleError("not_found", `library ${library} has no documents yet`);
    const document = await api("GET", `/v1/libraries/${route(library)}/documents/${route(documents[0].id)}`);
    const chunk = document.chunks.find((c) => c.embedding.length > 0);
    if (chunk === undefined) throw new ConsoleError("not_found", `document ${document.id} has no vector`);
    $("#search-vector").value = JSON.stringify(chunk.embedding);
    return `Using the vector of chunk ${chunk.id}.`;
  }),
);

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
      );
      return tr;
    }),
  );
}

$("#search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  action("search", async () => {
    const mode = $("#search-mode").value;
    const request = { k: Number($("#search-k").value), mode, include: ["text"] };
    const vector = $("#search-vector").value.trim();
    const text = $("#search-text").value.trim();
    const filter = $("#search-filter").value.trim();
    if (mode !== "keyword") {
      if (!vector) throw new ConsoleError("invalid", `a ${mode} search needs a vector (try “Use a stored vector”)`);
      request.vector = parseJson(vector, "the vector");
    }
    if (mode !== "vector") {
      if (!text) throw new ConsoleError("invalid", `a ${mode} search needs text`);
      request.text = text;
    }
    if (filter) request.filter = parseJson(filter, "the filter");
    const library = $("#search-library").value;
    const response = await api("POST", `/v1/libraries/${route(library)}/search`, request);
    renderHits(response);
    return `${response.hits.length} hits.`;
  });
});

// ---------------------------------------------------------------- live events

/**
 * Yields the frames of a `text/event-stream` body as { id, event, data } (`data`
 * undefined for a frame with only an id), following the WHATWG parsing rules.
 */
async function* sseFrames(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let frame = { data: [] };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      for (;;) {
        const match = /\r\n|\r|\n/.exec(buffer);
        // A lone "\r" at the end may be the first half of "\r\n": wait for more.
        if (match === null || (match[0] === "\r" && match.index === buffer.length - 1)) break;
        const line = buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
        if (line === "") {
          if (frame.data.length > 0 || frame.id !== undefined) {
            yield { id: frame.id, event: frame.event ?? "message", data: frame.data.length > 0 ? frame.data.join("\n") : undefined };
          }
          frame = { data: [] };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") frame.data.push(value);
        else if (field === "event") frame.event = value;
        else if (field === "id" && !value.includes("\0")) frame.id = value;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function describeEvent(event) {
  const parts = [];
  if (event.library) parts.push(event.library);
  if (event.ids?.length) parts.push(event.ids.length > 3 ? `${event.ids.slice(0, 3).join(", ")} … (${event.ids.length})` : event.ids.join(", "));
  if (event.seq !== undefined) parts.push(`seq ${event.seq}`);
  if (event.data !== undefined) parts.push(JSON.stringify(event.data));
  return parts.join(" · ");
}

function addEventItem(type, id, text, className = "") {
  const li = document.createElement("li");
  li.className = className;
  li.dataset.type = type;
  if (id !== undefined) li.dataset.id = id;
  const name = Object.assign(document.createElement("span"), { className: "type", textContent: type });
  const detail = document.createElement("code");
  detail.textContent = text;
  li.append(name, detail);
  const list = $("#events");
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
}

/** Reads `/v1/events` until stopped, reconnecting (with Last-Event-ID) after errors. */
async function watchEvents(library, types, controller) {
  const { signal } = controller;
  let lastId = null;
  let delay = 500;
  const params = new URLSearchParams();
  if (library) params.set("library", library);
  if (types) params.set("types", types);
  const state = (text) => {
    if (!signal.aborted) $("#events-state").textContent = text;
  };
  while (!signal.aborted) {
    try {
      const headers = authHeaders({ accept: "text/event-stream" });
      if (lastId !== null) headers["last-event-id"] = lastId;
      const response = await fetch(`/v1/events?${params}`, { headers, signal, cache: "no-store" });
      if (!response.ok) {
        const detail = (await response.json().catch(() => null))?.error;
        const error = new ConsoleError(detail?.kind ?? "internal", detail?.message ?? `HTTP ${response.status}`, response.status);
        // A refused request (bad filter, bad key) will not get better by retrying.
        if (response.status < 500 && response.status !== 429) {
          stopWatching();
          setStatus(`events failed: ${error.kind}: ${error.message}`, true);
          if (response.status === 401) signOut("Your key was refused; sign in again.");
          return;
        }
        throw error;
      }
      state(`Watching ${library || "every library"}${types ? ` (${types})` : ""}${lastId === null ? "" : `, resumed after event ${lastId}`}.`);
      delay = 500;
      for await (const frame of sseFrames(response.body)) {
        if (frame.id !== undefined) lastId = frame.id;
        if (frame.data === undefined) continue;
        if (frame.event === "reset") {
          const reset = JSON.parse(frame.data);
          addEventItem("reset", frame.id, `missed events could not be replayed: ${reset.reason}`, "reset");
          await refreshLibraries().catch(() => {});
          continue;
        }
        const event = JSON.parse(frame.data);
        addEventItem(event.type, frame.id, describeEvent(event));
        if (event.type.startsWith("job.") && event.ids?.length === 1) updateJobFromEvent(event.ids[0], event.data);
      }
      state("The stream ended; reconnecting…");
    } catch (error) {
      if (signal.aborted) return;
      state(`Disconnected (${error.message}); reconnecting in ${(delay / 1000).toFixed(1)} s…`);
    }
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, delay);
      signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
    delay = Math.min(delay * 2, 10_000);
  }
}

function stopWatching() {
  watcher?.abort();
  watcher = null;
  $("#events-toggle").textContent = "Watch";
  $("#events-state").textContent = "Not watching.";
}

$("#events-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (watcher !== null) {
    stopWatching();
    setStatus("Stopped watching events.");
    return;
  }
  watcher = new AbortController();
  $("#events-toggle").textContent = "Stop";
  $("#events-state").textContent = "Connecting…";
  watchEvents($("#events-library").value.trim(), $("#events-types").value.replace(/\s+/g, ""), watcher);
  setStatus("Watching events.");
});

// ---------------------------------------------------------------- jobs

const ACTIVE = new Set(["pending", "running"]);

/** A parameters template for the chosen job type and library. */
function fillJobTemplate() {
  const type = $("#job-type").value;
  const info = libraries.find((l) => l.name === $("#job-library").value);
  const dimension = info?.dimension ?? 3;
  const unit = (i) => Array.from({ length: dimension }, (_, j) => (j === i % dimension ? 1 : 0));
  const templates = {
    import: {
      documents: [
        { id: "rust", chunks: [{ text: "Rust is a fast systems language", embedding: unit(0) }] },
        { id: "python", chunks: [{ text: "Python for data science", embedding: unit(1) }] },
        { id: "vectors", chunks: [{ text: "An embedded vector database in Rust", embedding: unit(2) }] },
      ],
      batch_size: 500,
    },
    export: { destination: "file:///tmp/export.ndjson" },
    delete: { ids: ["python"] },
    rebuild: { index: { type: "hnsw", m: 16 } },
    optimize: {},
    compact: {},
  };
  $("#job-params").value = JSON.stringify(templates[type] ?? {}, null, 1);
}

$("#job-type").addEventListener("change", fillJobTemplate);
$("#job-library").addEventListener("change", fillJobTemplate);

function renderJobs() {
  const sorted = [...jobs.values()].sort((a, b) => b.created_at_ms - a.created_at_ms || (a.id < b.id ? 1 : -1));
  $("#jobs tbody").replaceChildren(
    ...sorted.map((job) => {
      const tr = document.createElement("tr");
      tr.dataset.jobId = job.id;
      tr.dataset.status = job.status;
      const { done, total } = job.progress ?? { done: 0, total: null };
      const progress = document.createElement("progress");
      progress.setAttribute("aria-label", `progress of ${job.type} job ${job.id}`);
      if (total !== null && total !== undefined) {
        progress.max = Math.max(total, 1);
        progress.value = total === 0 && job.status === "completed" ? 1 : done;
      } else if (!ACTIVE.has(job.status)) {
        // Finished with an unknown total: full when completed, empty otherwise.
        progress.max = 1;
        progress.value = job.status === "completed" ? 1 : 0;
      }
      const progressCell = document.createElement("td");
      progressCell.append(progress, ` ${done}${total === null || total === undefined ? "" : ` / ${total}`}`);
      const status = job.error ? `${job.status}: ${job.error.kind}: ${job.error.message}` : job.status;
      const actions = document.createElement("td");
      if (ACTIVE.has(job.status)) {
        const cancel = Object.assign(document.createElement("button"), { type: "button", className: "danger", textContent: "Cancel" });
        cancel.setAttribute("aria-label", `Cancel job ${job.id}`);
        cancel.addEventListener("click", () =>
          action("cancel job", async () => {
            jobs.set(job.id, await api("DELETE", `/v1/jobs/${route(job.id)}`));
            renderJobs();
            return `Job ${job.id} is ${jobs.get(job.id).status}.`;
          }),
        );
        actions.append(cancel);
      }
      tr.append(cell(job.id, true), cell(job.type), cell(job.library ?? "–"), cell(status), progressCell, actions);
      return tr;
    }),
  );
}

/** Polls the active jobs until none is left. */
function watchJobs() {
  if (jobTimer !== null || ![...jobs.values()].some((j) => ACTIVE.has(j.status))) return;
  jobTimer = setInterval(async () => {
    const active = [...jobs.values()].filter((j) => ACTIVE.has(j.status));
    if (active.length === 0) {
      clearInterval(jobTimer);
      jobTimer = null;
      return;
    }
    for (const job of active) {
      try {
        const record = await api("GET", `/v1/jobs/${route(job.id)}`);
        const finished = ACTIVE.has(job.status) && !ACTIVE.has(record.status);
        jobs.set(record.id, record);
        if (finished) await refreshLibraries().catch(() => {});
      } catch (error) {
        if (error.status === 401) return signOut("Your key was refused; sign in again.");
      }
    }
    renderJobs();
  }, JOB_POLL_MS);
}

/** Applies the status and progress a `job.*` event carries. */
function updateJobFromEvent(id, data) {
  const job = jobs.get(id);
  if (job === undefined || data === undefined) return;
  if (!ACTIVE.has(job.status)) return;
  jobs.set(id, { ...job, status: data.status ?? job.status, progress: data.progress ?? job.progress, error: data.error ?? job.error, result: data.result ?? job.result });
  renderJobs();
  if (!ACTIVE.has(jobs.get(id).status)) refreshLibraries().catch(() => {});
}

async function refreshJobs() {
  const { jobs: list } = await api("GET", "/v1/jobs?limit=20");
  for (const job of list) jobs.set(job.id, job);
  renderJobs();
  watchJobs();
}

$("#job-form").addEventListener("submit", (event) => {
  event.preventDefault();
  action("start job", async () => {
    const text = $("#job-params").value.trim();
    const params = text === "" ? {} : parseJson(text, "the parameters");
    if (params === null || typeof params !== "object" || Array.isArray(params)) {
      throw new ConsoleError("invalid", "the parameters must be a JSON object");
    }
    const request = { type: $("#job-type").value, library: $("#job-library").value, ...params };
    const job = await api("POST", "/v1/jobs", request);
    jobs.set(job.id, job);
    renderJobs();
    watchJobs();
    return `Started ${job.type} job ${job.id}.`;
  });
});

// ---------------------------------------------------------------- metrics

/** Parses the Prometheus text format into [{ name, labels, value }]. */
export function parseMetrics(text) {
  const samples = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const raw of text.split("\n")) {
    if (raw === "" || raw.startsWith("#")) continue;
    const match = line.exec(raw);
    if (match === null) continue;
    const labels = {};
    for (const [, name, value] of (match[2] ?? "").matchAll(label)) {
      labels[name] = value.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

/** The q-quantile of histogram buckets [{ le, count }] (cumulative), interpolated. */
function quantile(q, buckets) {
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  const total = sorted.at(-1)?.count ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const { le, count } of sorted) {
    if (count >= rank) {
      if (le === Infinity) return lower;
      return lower + (le - lower) * ((rank - below) / Math.max(count - below, 1e-12));
    }
    lower = le;
    below = count;
  }
  return lower;
}

function metricsSample(text) {
  let requests = 0;
  const buckets = new Map();
  for (const { name, labels, value } of parseMetrics(text)) {
    if (name === "arrwdb_http_requests_total" && labels.route !== "/metrics") requests += value;
    if (name === "arrwdb_search_duration_seconds_bucket") {
      const le = labels.le === "+Inf" ? Infinity : Number(labels.le);
      buckets.set(le, (buckets.get(le) ?? 0) + value);
    }
  }
  return { time: performance.now(), requests, buckets };
}

const series = { rate: [], p50: [] };
let previous = null;

function drawChart(svg, values, format, what) {
  const NS = "http://www.w3.org/2000/svg";
  const present = values.filter((v) => v !== null);
  const max = Math.max(...present, 0) * 1.15 || 1;
  const x = (i) => (i / (METRICS_POINTS - 1)) * 300;
  const y = (v) => 86 - (v / max) * 76;
  let d = "";
  let drawing = false;
  values.forEach((v, i) => {
    if (v === null) {
      drawing = false;
      return;
    }
    const offset = METRICS_POINTS - values.length;
    d += `${drawing ? "L" : "M"}${x(i + offset).toFixed(1)},${y(v).toFixed(1)} `;
    drawing = true;
  });
  const path = document.createElementNS(NS, "path");
  path.setAttribute("d", d.trim());
  const latest = values.at(-1);
  const marks = [path];
  if (latest !== null && latest !== undefined) {
    // The newest value as a dot, so a single point is visible too.
    const dot = document.createElementNS(NS, "circle");
    dot.setAttribute("cx", x(METRICS_POINTS - 1).toFixed(1));
    dot.setAttribute("cy", y(latest).toFixed(1));
    dot.setAttribute("r", "2.5");
    marks.push(dot);
  }
  svg.replaceChildren(...marks);
  svg.nextElementSibling.textContent = present.length ? `highest ${format(Math.max(...present))}` : "";
  svg.setAttribute(
    "aria-label",
    `${what} over the last ${values.length} seconds: now ${latest === null || latest === undefined ? "no data" : format(latest)}, highest ${present.length ? format(Math.max(...present)) : "no data"}`,
  );
}

const formatRate = (v) => `${v.toFixed(v < 10 ? 2 : 0)} req/s`;
const formatMs = (v) => `${(v * 1000).toFixed(v < 0.01 ? 2 : 1)} ms`;

async function scrapeMetrics() {
  const response = await fetch("/metrics", { cache: "no-store" });
  if (!response.ok) throw new ConsoleError("unavailable", `/metrics answered HTTP ${response.status}`);
  const sample = metricsSample(await response.text());
  if (previous !== null) {
    const seconds = Math.max((sample.time - previous.time) / 1000, 1e-3);
    const rate = Math.max(sample.requests - previous.requests, 0) / seconds;
    const delta = [...sample.buckets].map(([le, count]) => ({ le, count: count - (previous.buckets.get(le) ?? 0) }));
    const p50 = quantile(0.5, delta);
    for (const [name, value] of [["rate", rate], ["p50", p50]]) {
      series[name].push(value);
      if (series[name].length > METRICS_POINTS) series[name].shift();
    }
    $("#rate-value").textContent = formatRate(rate);
    $("#p50-value").textContent = p50 === null ? "no searches in the last second" : formatMs(p50);
    drawChart($("#chart-rate"), series.rate, formatRate, "Request rate");
    drawChart($("#chart-p50"), series.p50, formatMs, "Median search latency");
  }
  previous = sample;
}

function startMetrics() {
  if (metricsTimer !== null) return;
  const tick = async () => {
    if (!document.hidden) {
      try {
        await scrapeMetrics();
      } catch (error) {
        $("#rate-value").textContent = `unavailable (${error.message})`;
      }
    }
    if (key !== null) metricsTimer = setTimeout(tick, METRICS_EVERY_MS);
  };
  metricsTimer = setTimeout(tick, 0);
}

// ---------------------------------------------------------------- start

if (key !== null) {
  const stored = key;
  action("sign in", async () => {
    try {
      await signIn(stored);
    } catch (error) {
      if (error.status === 401) sessionStorage.removeItem(KEY_STORAGE);
      showSignedIn(false);
      throw error;
    }
    return "Signed in.";
  });
} else {
  showSignedIn(false);
}
