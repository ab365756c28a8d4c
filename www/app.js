// The playground: a colour library held by arrwDB's wasm engine in this tab.
import init, { Database } from "/pkg/web/index.js";

const LIBRARY = "colors";

/** Named colours; each becomes one document whose single chunk embeds its RGB vector. */
const COLORS = [
  ["red", "#ff0000", "fire trucks and ripe tomatoes"],
  ["orange", "#ffa500", "the fruit, and autumn leaves"],
  ["gold", "#ffd700", "the precious metal"],
  ["yellow", "#ffff00", "lemons and sunflowers"],
  ["lime", "#00ff00", "the purest screen green"],
  ["green", "#008000", "leaves and lawns"],
  ["olive", "#808000", "unripe olives"],
  ["teal", "#008080", "a duck's wing, between green and blue"],
  ["cyan", "#00ffff", "shallow tropical water"],
  ["sky blue", "#87ceeb", "a clear afternoon sky"],
  ["blue", "#0000ff", "the purest screen blue"],
  ["navy", "#000080", "sailors' uniforms"],
  ["indigo", "#4b0082", "the dye, between blue and violet"],
  ["purple", "#800080", "royal robes"],
  ["magenta", "#ff00ff", "printer ink, red plus blue light"],
  ["pink", "#ffc0cb", "cherry blossoms"],
  ["coral", "#ff7f50", "living reefs"],
  ["maroon", "#800000", "dark red, like chestnuts"],
  ["brown", "#8b4513", "saddle leather"],
  ["beige", "#f5f5dc", "undyed wool"],
  ["white", "#ffffff", "fresh snow"],
  ["silver", "#c0c0c0", "polished metal"],
  ["grey", "#808080", "rain clouds"],
  ["black", "#000000", "the night sky"],
];

const $ = (selector) => document.querySelector(selector);
const slug = (name) => name.replace(/\s+/g, "-");

/** `#rrggbb` or `r, g, b` (0–255) → a Float32Array with components in [0, 1], or null. */
function parseColor(text) {
  const value = text.trim();
  const hex = /^#?([0-9a-f]{6})$/i.exec(value);
  if (hex) {
    return Float32Array.from([0, 2, 4], (i) => parseInt(hex[1].slice(i, i + 2), 16) / 255);
  }
  const parts = value.split(/[\s,]+/).filter(Boolean).map(Number);
  if (parts.length === 3 && parts.every((n) => Number.isFinite(n) && n >= 0 && n <= 255)) {
    return Float32Array.from(parts, (n) => n / 255);
  }
  return null;
}

function toHex(vector) {
  const byte = (x) => Math.round(Math.min(1, Math.max(0, x)) * 255).toString(16).padStart(2, "0");
  return `#${Array.from(vector, byte).join("")}`;
}

function setStatus(message, isError = false) {
  const status = $("#status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

function element(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function renderHits(hits) {
  $("#hits").replaceChildren(
    ...hits.map((hit, i) => {
      const { name, hex } = hit.metadata;
      const li = element("li", {}, [
        element("span", { className: "rank", textContent: `${i + 1}.` }),
        element("span", { className: "swatch", title: hex }),
        element("div", {}, [
          element("div", { className: "name", textContent: name }),
          element("div", { className: "text", textContent: hit.text }),
          element("div", { className: "id", textContent: `${hit.chunk_id} · ${hex}` }),
        ]),
        element("div", { className: "score" }, [
          `distance ${hit.distance.toFixed(3)}`,
          element("small", { textContent: `score ${hit.score.toFixed(4)}` }),
        ]),
      ]);
      li.dataset.chunkId = hit.chunk_id;
      li.dataset.documentId = hit.document_id;
      li.querySelector(".swatch").style.background = hex;
      return li;
    }),
  );
}

function main(db) {
  const search = () => {
    const vector = parseColor($("#query").value);
    if (!vector) {
      setStatus("Type a colour as #rrggbb or as r, g, b with numbers from 0 to 255.", true);
      return;
    }
    const k = Number($("#k").value);
    try {
      const { hits, took_ms } = db.search(LIBRARY, { vector, k });
      renderHits(hits);
      const swatch = element("span", { className: "query-swatch" });
      swatch.style.background = toHex(vector);
      $("#status").replaceChildren(
        swatch,
        ` [${Array.from(vector, (x) => x.toFixed(3)).join(", ")}]: ${hits.length} nearest in ${took_ms.toFixed(2)} ms`,
      );
      $("#status").classList.remove("error");
    } catch (error) {
      setStatus(`${error.kind ?? "error"}: ${error.message}`, true);
    }
  };

  $("#search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  $("#picker").addEventListener("input", (event) => {
    $("#query").value = event.target.value;
    search();
  });
  $("#query").addEventListener("input", () => {
    const vector = parseColor($("#query").value);
    if (vector) $("#picker").value = toHex(vector);
  });
  $("#k").addEventListener("change", search);

  $("#palette").replaceChildren(
    ...COLORS.map(([name, hex]) => {
      const button = element("button", { type: "button", title: `${name} ${hex}` });
      button.style.background = hex;
      button.addEventListener("click", () => {
        $("#query").value = hex;
        $("#picker").value = hex;
        search();
      });
      return button;
    }),
  );

  const info = db.getLibrary(LIBRARY);
  $("#count").textContent = String(info.documents);
  const snapshot = db.exportSnapshot(LIBRARY);
  $("#library").textContent =
    `Library ${info.name}: ${info.documents} documents, ${info.chunks} chunks, ` +
    `${info.seq} log records, snapshot ${snapshot.length.toLocaleString()} bytes.`;
  search();
}

try {
  await init();
  const db = new Database();
  db.createLibrary({ name: LIBRARY, dimension: 3, metric: "l2" });
  for (const [name, hex, text] of COLORS) {
    db.upsert(LIBRARY, {
      id: slug(name),
      metadata: { name, hex },
      chunks: [{ text: `${name}: ${text}`, embedding: parseColor(hex), metadata: { name, hex } }],
    });
  }
  main(db);
} catch (error) {
  setStatus(`Could not start the engine: ${error.message}`, true);
  throw error;
}
