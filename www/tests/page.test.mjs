// The playground (index.html) as a person uses it, in headless Chromium: the bundled
// pypi-minilm sample loads into the engine in a Web Worker, and vector, keyword, hybrid
// and filtered searches return what an exact computation over the same sample files
// says they must. Screenshot: target/www-playground/playground.png.
// Needs the built package in wasm/pkg/ and Debian's /usr/bin/chromium.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { launchBrowser, root, startServer, watchProblems, www } from "./support.mjs";

const shots = path.join(root, "target", "www-playground");

/** The sample as the page reads it, decoded here without the engine: the oracle. */
function readSample() {
  const manifest = JSON.parse(readFileSync(path.join(www, "sample", "pypi-minilm.json"), "utf8"));
  const bytes = readFileSync(path.join(www, "sample", manifest.vectors.file));
  const d = manifest.dimension;
  const row = (i) => Array.from({ length: d }, (_, j) => bytes.readFloatLE((i * d + j) * 4));
  const docs = manifest.documents.map((doc, i) => ({ ...doc, vector: row(i) }));
  const queries = manifest.queries.map((q, i) => ({ ...q, vector: row(manifest.documents.length + i) }));
  return { docs, queries };
}

/** Ids of the k documents with the highest cosine similarity to query q among `docs`. */
function exactTop(sample, q, k, keep = () => true) {
  const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  const query = sample.queries[q].vector;
  const qn = norm(query);
  return sample.docs
    .filter((doc) => keep(doc.metadata))
    .map((doc) => ({ id: doc.id, score: doc.vector.reduce((s, x, i) => s + x * query[i], 0) / (qn * norm(doc.vector)) }))
    .sort((a, b) => b.score - a.score)
    .slice(0, k)
    .map((hit) => `${hit.id}#0`);
}

const rows = (page) => page.locator("#hits tbody tr").evaluateAll((trs) =>
  trs.map((tr) => ({
    id: tr.dataset.chunkId,
    cells: Array.from(tr.cells, (td) => td.textContent),
  })),
);

/** Submits the search form and waits for the summary to change. */
async function search(page) {
  const before = await page.locator("#summary").getAttribute("data-searches");
  await page.click("#search");
  await page.waitForFunction(
    (old) => {
      const status = document.querySelector("#status");
      return status.classList.contains("error") || document.querySelector("#summary").dataset.searches !== old;
    },
    before,
    { timeout: 20_000 },
  );
  assert.equal(await page.locator("#status.error").count(), 0, await page.locator("#status").textContent());
}

/** Loads the sample with the form's index settings and waits until it is searchable. */
async function load(page, index, quantization = "none") {
  await page.selectOption("#index", index);
  await page.selectOption("#quantization", quantization);
  await page.click("#load");
  await page.waitForFunction(
    (kind) => document.querySelector("#status").textContent.startsWith(`Loaded the sample into a ${kind} library.`) ||
      document.querySelector("#status").classList.contains("error"),
    index,
    { timeout: 60_000 },
  );
  assert.equal(await page.locator("#status.error").count(), 0, await page.locator("#status").textContent());
}

test("the playground loads the bundled sample and searches it like exact computation says", { timeout: 180_000 }, async () => {
  const sample = readSample();
  assert.equal(sample.docs.length, 2000);
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const problems = watchProblems(page);
    const wasm = page.waitForResponse((r) => r.url().endsWith("/pkg/web/arrwdb_wasm_bg.wasm"));
    await page.goto(server.url, { waitUntil: "load" });
    assert.equal((await wasm).headers()["content-type"], "application/wasm");

    // On load: an HNSW library of the whole sample, and a hybrid search with query 0.
    await page.waitForFunction(
      () => /^(Ready|Could not)/.test(document.querySelector("#status").textContent) || document.querySelector("#status.error"),
      null,
      { timeout: 60_000 },
    );
    assert.equal(await page.locator("#status").textContent(), "Ready: 2,000 documents, 40 queries.");
    assert.equal(await page.locator("#library").getAttribute("data-documents"), "2000");
    assert.match(await page.locator("#library").textContent(), /^Library pypi: hnsw index, quantization none, 2,000 documents/);
    assert.equal(await page.locator("#query option").count(), 41, "the 40 queries and keyword-only");
    assert.equal(await page.inputValue("#text"), sample.queries[0].text);
    let hits = await rows(page);
    assert.equal(hits.length, 10);
    assert.match(await page.locator("#summary").textContent(), /^10 hits, hybrid search, in [\d.]+ ms\.$/);
    // Hybrid hits carry where they came from; the best one was found by both retrievers.
    assert.match(hits[0].cells[5], /^0\.\d{4} · \d+$/);
    assert.match(hits[0].cells[6], /^\d+\.\d{3} · \d+$/);

    // Vector search on HNSW: compared with exact search over the same sample.
    const exact0 = exactTop(sample, 0, 10);
    await page.selectOption("#mode", "vector");
    await search(page);
    hits = await rows(page);
    const recall = await page.locator("#summary").getAttribute("data-recall");
    const [found] = recall.split("/").map(Number);
    assert.equal(recall, `${hits.filter((h) => exact0.includes(h.id)).length}/10`, "the page's recall is the oracle's");
    assert.ok(found >= 9, `HNSW recall@10 on 2,000 documents: ${recall}`);
    assert.ok(hits.every((h) => h.cells[6] === "–"), "vector search has no keyword part");

    // A flat library is exact: the oracle's ids in the oracle's order.
    await load(page, "flat");
    await page.selectOption("#mode", "vector");
    await search(page);
    assert.equal(await page.locator("#summary").getAttribute("data-recall"), "exact");
    assert.deepEqual((await rows(page)).map((h) => h.id), exact0);

    // Filters: a year range, and the popular packages (download_rank present), ANDed.
    await page.fill("#year-from", "2019");
    await page.fill("#year-to", "2022");
    await search(page);
    hits = await rows(page);
    assert.deepEqual(hits.map((h) => h.id), exactTop(sample, 0, 10, (m) => m.year >= 2019 && m.year <= 2022));
    assert.ok(hits.every((h) => Number(h.cells[3]) >= 2019 && Number(h.cells[3]) <= 2022));
    assert.match(await page.locator("#summary").textContent(), /Filter \{"year":\{"\$gte":2019,"\$lte":2022\}\}\./);
    await page.check("#popular");
    await search(page);
    const popular = exactTop(sample, 0, 10, (m) => m.year >= 2019 && m.year <= 2022 && m.download_rank !== undefined);
    assert.ok(popular.length > 0 && popular.length < 10, `a selective filter (${popular.length} matches)`);
    assert.deepEqual((await rows(page)).map((h) => h.id), popular);
    await page.fill("#year-from", "");
    await page.fill("#year-to", "");
    await page.uncheck("#popular");

    // Keyword search without a vector: every hit has the word; no vector part.
    await page.selectOption("#query", "");
    assert.equal(await page.inputValue("#text"), "");
    await page.fill("#text", "django");
    await page.selectOption("#mode", "");
    await search(page);
    hits = await rows(page);
    assert.match(await page.locator("#summary").textContent(), /keyword search/);
    const withDjango = sample.docs.filter((d) => /django/i.test(d.text)).length;
    assert.equal(hits.length, Math.min(10, withDjango));
    assert.ok(hits.every((h) => /django/i.test(h.cells[2]) && h.cells[5] === "–" && /^\d+\.\d{3} · \d+$/.test(h.cells[6])));

    // Mistakes are explained, and the hits stay.
    await page.fill("#filter", "{year: 2020}");
    await page.click("#search");
    await page.locator("#status.error").waitFor({ timeout: 5_000 });
    assert.match(await page.locator("#status").textContent(), /^invalid: the filter is not JSON/);
    await page.fill("#filter", '{"year": {"$near": 2020}}');
    await page.click("#search");
    await page.waitForFunction(() => /\$near/.test(document.querySelector("#status").textContent));
    assert.match(await page.locator("#status").textContent(), /^invalid: /);
    assert.equal((await rows(page)).length, hits.length);
    await page.fill("#filter", "");

    // Every other index kind and a quantized store load and answer vector queries.
    for (const [index, quantization] of [["ivf", "none"], ["kdtree", "none"], ["lsh", "none"], ["hnsw", "sq8"]]) {
      await load(page, index, quantization);
      assert.match(await page.locator("#library").textContent(), new RegExp(`^Library pypi: ${index} index, quantization ${quantization}, 2,000 documents`));
      await page.selectOption("#query", "1");
      await page.selectOption("#mode", "vector");
      await search(page);
      const got = await page.locator("#summary").getAttribute("data-recall");
      const exact1 = exactTop(sample, 1, 10);
      const ids = (await rows(page)).map((h) => h.id);
      assert.equal(got, `${ids.filter((id) => exact1.includes(id)).length}/10`, `${index}/${quantization}`);
    }

    // Keyboard only: Tab walks the controls in reading order, Enter in a field searches.
    await page.focus("#index");
    const order = [];
    for (let i = 0; i < 15; i++) {
      order.push(await page.evaluate(() => document.activeElement.id));
      await page.keyboard.press("Tab");
    }
    assert.deepEqual(order, [
      "index", "quantization", "stemmer", "load", "query", "text", "mode", "fusion", "k", "breadth",
      "year-from", "year-to", "popular", "filter", "search",
    ]);
    await page.selectOption("#mode", "keyword");
    await page.focus("#text");
    await page.keyboard.press("Control+A");
    await page.keyboard.type("numpy arrays");
    const searches = await page.locator("#summary").getAttribute("data-searches");
    await page.keyboard.press("Enter");
    await page.waitForFunction((old) => document.querySelector("#summary").dataset.searches !== old, searches);
    assert.match(await page.locator("#summary").textContent(), /keyword search/);
    assert.ok((await rows(page)).every((h) => /numpy|array/i.test(h.cells[2])), "keyword hits have a query word");

    // The screenshot: a hybrid search on HNSW with a filter.
    await load(page, "hnsw");
    await page.selectOption("#query", "2");
    await page.selectOption("#mode", "hybrid");
    await page.fill("#year-from", "2024");
    await search(page);
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: path.join(shots, "playground.png"), fullPage: true });
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});
