// The in-tab console (local.html) as a person uses it, in headless Chromium: open a database, create a
// library, upsert documents, search (hybrid, with a filter), see an error explained,
// reload and find the data still there, export a snapshot as a download.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { launchBrowser, startServer, watchProblems } from "./support.mjs";

test("the in-tab console stores, searches, survives a reload and exports", { timeout: 90_000 }, async () => {
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage({ acceptDownloads: true });
    const problems = watchProblems(page);
    await page.goto(`${server.url}/local.html`);
    const status = page.locator("#status");
    await page.waitForFunction(() => document.querySelector("#status").textContent === "Opened console.", null, { timeout: 15_000 });

    // Start from an empty database, whatever an earlier run left.
    await page.click("#destroy");
    await page.waitForFunction(() => document.querySelector("#status").textContent === "Deleted every library of console.");

    await page.selectOption("#new-stemmer", "english");
    await page.click("#create-form button[type=submit]");
    await page.waitForFunction(() => document.querySelector("#status").textContent === "Created library docs.");
    await page.click("#upsert-form button[type=submit]");
    await page.waitForFunction(() => document.querySelector("#status").textContent === "Upserted 3 documents into docs.");
    const row = page.locator('#libraries tr[data-library="docs"] td');
    assert.equal(await row.nth(4).innerText(), "3");

    // The form's defaults: vector [1, 0, 0] and text "rust", so a hybrid search.
    await page.click("#search-form button[type=submit]");
    const hits = page.locator("#hits tbody tr");
    await hits.first().waitFor();
    assert.deepEqual(await hits.evaluateAll((rows) => rows.map((r) => r.dataset.chunkId)), ["rust#0", "vectors#0", "python#0"]);
    assert.equal(await hits.first().locator("td").nth(3).innerText(), "1 / 1");
    assert.equal(await hits.first().locator("td").nth(5).innerText(), '{"year":2024}');

    await page.fill("#search-filter", '{"year": {"$gte": 2025}}');
    await page.click("#search-form button[type=submit]");
    await page.waitForFunction(() => document.querySelectorAll("#hits tbody tr").length === 1);
    assert.equal(await hits.first().getAttribute("data-chunk-id"), "vectors#0");

    // Errors are explained, not thrown.
    await page.click("#create-form button[type=submit]");
    await page.locator("#status.error").waitFor();
    assert.equal(await status.innerText(), "create library failed: conflict: library `docs` already exists");

    await page.reload();
    await page.waitForFunction(() => document.querySelector("#status").textContent === "Opened console.", null, { timeout: 15_000 });
    assert.equal(await page.locator('#libraries tr[data-library="docs"] td').nth(4).innerText(), "3", "still there after a reload");

    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export")]);
    assert.equal(download.suggestedFilename(), "docs.snap");
    const bytes = await readFile(await download.path());
    assert.equal(bytes.subarray(0, 4).toString(), "ARWS", "a snapshot file");
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});
