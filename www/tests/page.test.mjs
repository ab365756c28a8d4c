// The playground as a person sees it: served by serve.mjs, loaded in headless Chromium,
// it searches on load and again through the form, without page or console errors.
// Needs the built package in wasm/pkg/ and Debian's /usr/bin/chromium.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const www = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Starts serve.mjs on a free port; resolves to the child and its base URL. */
async function startServer() {
  const child = spawn(process.execPath, [path.join(www, "serve.mjs"), "0"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout });
  const exited = once(child, "exit").then(([code]) => {
    throw new Error(`serve.mjs exited with ${code} before listening`);
  });
  const listening = (async () => {
    for await (const line of lines) {
      const match = /^listening (http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
      if (match) return match[1];
    }
    throw new Error("serve.mjs closed its output before listening");
  })();
  const timeout = new Promise((_, reject) =>
    setTimeout(() => reject(new Error("serve.mjs did not start in 10 s")), 10_000).unref(),
  );
  try {
    return { child, url: await Promise.race([listening, exited, timeout]) };
  } catch (error) {
    child.kill();
    throw error;
  }
}

test("the playground finds the nearest colours on load and on request", { timeout: 90_000 }, async () => {
  let server;
  let browser;
  try {
    server = await startServer();
    browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    const page = await browser.newPage();
    const problems = [];
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console error: ${message.text()}`);
    });
    page.on("requestfailed", (request) =>
      problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`),
    );
    page.on("response", (response) => {
      if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
    });

    const wasm = page.waitForResponse((r) => r.url().endsWith("/pkg/web/arrwdb_wasm_bg.wasm"));
    await page.goto(server.url, { waitUntil: "load" });
    assert.equal((await wasm).headers()["content-type"], "application/wasm");

    // On load: the default query #e8392c, five hits, red first.
    const hits = page.locator("#hits li[data-chunk-id]");
    await hits.first().waitFor({ timeout: 15_000 });
    assert.equal(await hits.count(), 5);
    assert.deepEqual(
      await hits.evaluateAll((items) => items.map((li) => li.dataset.chunkId)),
      ["red#0", "coral#0", "brown#0", "orange#0", "maroon#0"],
    );
    assert.match(await hits.first().innerText(), /red: fire trucks/);
    assert.match(await page.locator("#library").innerText(), /24 documents, 24 chunks, 25 log records/);

    // Through the form: a dark turquoise is nearest to cyan; ask for three hits.
    await page.fill("#query", "0, 206, 209");
    await page.selectOption("#k", "3");
    await page.click("#search");
    await page.waitForFunction(
      () => document.querySelector("#hits li[data-chunk-id]")?.dataset.chunkId === "cyan#0",
      null,
      { timeout: 10_000 },
    );
    assert.equal(await hits.count(), 3);
    assert.equal(await hits.first().getAttribute("data-document-id"), "cyan");
    assert.doesNotMatch(await page.locator("#status").getAttribute("class") ?? "", /error/);

    // A malformed query is explained, not thrown.
    await page.fill("#query", "not a colour");
    await page.click("#search");
    await page.locator("#status.error").waitFor({ timeout: 5_000 });
    assert.equal(await hits.count(), 3, "the previous hits stay");

    if (process.env.PAGE_SCREENSHOT) {
      await page.fill("#query", "#e8392c");
      await page.selectOption("#k", "5");
      await page.click("#search");
      await page.screenshot({ path: process.env.PAGE_SCREENSHOT, fullPage: true });
    }
    assert.deepEqual(problems, []);
  } finally {
    await browser?.close();
    if (server && server.child.exitCode === null) {
      const exit = once(server.child, "exit");
      server.child.kill();
      await exit;
    }
  }
});
