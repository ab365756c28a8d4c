// The host console (console.html) against the real arrwDB host binary in headless
// Chromium: sign in with a key made through the admin API, create a library, import
// documents with a job and watch it complete, see the change events arrive over SSE,
// search (vector from a stored sample, keyword), read the metrics charts, survive a
// reload, sign out. The page comes from the host's own `/console`, under its
// Content-Security-Policy (a violation is a console error, so it fails the test).
// A second test checks development through serve.mjs, which serves the page and
// proxies the API. Screenshots go to target/www-console/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { hostJson, launchBrowser, root, startAuthHost, startServer, watchProblems } from "./support.mjs";

const shots = path.join(root, "target", "www-console");
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const adminKey = `arrw_${[...randomBytes(40)].map((b) => BASE62[b % 62]).join("")}`;

test("the host console signs in, imports with a job, streams events, searches and charts metrics", { timeout: 120_000 }, async () => {
  mkdirSync(shots, { recursive: true });
  const host = await startAuthHost(adminKey);
  let browser = null;
  try {
    const { key } = await hostJson(host.url, "POST", "/v1/admin/tenants/default/keys", { name: "console-test", scopes: ["read", "write"] }, adminKey);
    browser = await launchBrowser();
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const problems = watchProblems(page, { allowStatus: [401] });
    const urls = [];
    page.on("request", (request) => urls.push(request.url()));
    const status = page.locator("#status");
    const statusIs = (text) => page.waitForFunction((t) => document.querySelector("#status").textContent === t, text, { timeout: 15_000 });

    await page.goto(`${host.url}/console`);
    assert.equal(await page.locator("#app").isHidden(), true, "nothing but the sign-in form before signing in");

    // A wrong key is refused and explained; the right one signs in.
    await page.fill("#api-key", "arrw_wrong");
    await page.press("#api-key", "Enter");
    await page.locator("#status.error").waitFor();
    assert.match(await status.innerText(), /^sign in failed: unauthorized: /);
    await page.fill("#api-key", key);
    await page.click("#signin-form button[type=submit]");
    await statusIs("Signed in.");
    assert.equal(await page.locator("#app").isVisible(), true);
    assert.equal(await page.evaluate(() => document.activeElement.id), "session-title", "focus moves to the console");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("arrwdb.console.key")), key);
    assert.equal(await page.inputValue("#api-key"), "", "the key does not stay in the form");

    await page.fill("#new-name", "docs");
    await page.click("#create-form button[type=submit]");
    await statusIs("Created library docs.");
    assert.equal(await page.locator('#libraries tr[data-library="docs"] td').nth(1).innerText(), "3");

    // Watch docs' events, then import the template's three documents with a job.
    await page.fill("#events-library", "docs");
    await page.click("#events-toggle");
    await page.waitForFunction(() => document.querySelector("#events-state").textContent === "Watching docs.");
    await page.selectOption("#job-type", "import");
    await page.click("#job-form button[type=submit]");
    await page.waitForFunction(() => /^Started import job job_/.test(document.querySelector("#status").textContent));
    const job = page.locator("#jobs tbody tr").first();
    await page.locator('#jobs tbody tr[data-status="completed"]').first().waitFor({ timeout: 30_000 });
    assert.equal((await job.locator("td").nth(4).innerText()).trim(), "3 / 3");
    assert.equal(await job.locator("progress").evaluate((p) => p.value === p.max), true);
    await page.locator('#events li[data-type="job.completed"]').waitFor({ timeout: 15_000 });
    assert.equal(await page.locator('#events li[data-type="document.upserted"]').count(), 3);
    const ids = await page.locator("#events li").evaluateAll((items) => items.map((li) => Number(li.dataset.id)));
    assert.deepEqual(ids, [...ids].sort((a, b) => b - a), "events are listed newest first, by id");
    await page.waitForFunction(() => document.querySelector('#libraries tr[data-library="docs"] td:nth-child(5)')?.textContent === "3");
    await page.screenshot({ path: path.join(shots, "job-and-events.png"), fullPage: true });

    // A job that fails shows why.
    await page.selectOption("#job-type", "optimize");
    await page.fill("#job-params", '{"library": "missing"}');
    await page.click("#job-form button[type=submit]");
    await page.locator('#jobs tbody tr[data-status="failed"]').waitFor({ timeout: 30_000 });
    assert.match(await page.locator('#jobs tbody tr[data-status="failed"] td').nth(3).innerText(), /^failed: not_found: /);

    // Vector search from a stored sample (the first document, "python"), then keyword.
    await page.selectOption("#search-mode", "vector");
    await page.click("#sample");
    await statusIs("Using the vector of chunk python#0.");
    await page.click("#search-form button[type=submit]");
    await statusIs("3 hits.");
    assert.equal(await page.locator("#hits tbody tr").first().getAttribute("data-chunk-id"), "python#0");
    await page.selectOption("#search-mode", "keyword");
    await page.fill("#search-text", "rust");
    await page.click("#search-form button[type=submit]");
    await statusIs("2 hits.");
    assert.deepEqual(
      (await page.locator("#hits tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.chunkId))).sort(),
      ["rust#0", "vectors#0"],
    );

    // The charts: a request rate, and a median search latency once a scrape saw searches.
    await page.waitForFunction(() => /req\/s$/.test(document.querySelector("#rate-value").textContent));
    await page.waitForFunction(() => document.querySelector("#chart-p50 path")?.getAttribute("d")?.startsWith("M"), null, { timeout: 10_000 });
    assert.match(await page.locator("#chart-rate").getAttribute("aria-label"), /^Request rate over the last \d+ seconds: now [\d.]+ req\/s/);
    await page.screenshot({ path: path.join(shots, "search-and-metrics.png"), fullPage: true });

    // A reload keeps the session (sessionStorage); signing out forgets the key.
    await page.reload();
    await statusIs("Signed in.");
    await page.click("#signout");
    await statusIs("Signed out.");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("arrwdb.console.key")), null);
    assert.equal(await page.locator("#app").isHidden(), true);
    assert.deepEqual(urls.filter((u) => u.includes(key)), [], "the key never appears in a URL");
    assert.deepEqual(problems, []);
  } finally {
    await browser?.close();
    await host.stop();
  }
});

test("serve.mjs serves the console and passes its API calls and events to the host", { timeout: 60_000 }, async () => {
  const host = await startAuthHost(adminKey);
  let server = null;
  let browser = null;
  try {
    const { key } = await hostJson(host.url, "POST", "/v1/admin/tenants/default/keys", { name: "proxy-test", scopes: ["read", "write"] }, adminKey);
    await hostJson(host.url, "POST", "/v1/libraries", { name: "proxied", dimension: 2 }, key);
    server = await startServer({ api: host.url });
    browser = await launchBrowser();
    const page = await browser.newPage();
    const problems = watchProblems(page);
    await page.goto(`${server.url}/console`);
    await page.fill("#api-key", key);
    await page.press("#api-key", "Enter");
    await page.waitForFunction(() => document.querySelector("#status").textContent === "Signed in.", null, { timeout: 15_000 });
    await page.locator('#libraries tr[data-library="proxied"]').waitFor({ timeout: 10_000 });
    // An event written behind the page's back arrives through the proxy's SSE stream.
    await page.fill("#events-library", "proxied");
    await page.click("#events-toggle");
    await page.waitForFunction(() => document.querySelector("#events-state").textContent === "Watching proxied.", null, { timeout: 10_000 });
    await hostJson(host.url, "POST", "/v1/libraries/proxied/documents", { id: "a", chunks: [{ embedding: [1, 0] }] }, key);
    await page.locator('#events li[data-type="document.upserted"]').waitFor({ timeout: 15_000 });
    assert.deepEqual(problems, []);
  } finally {
    await browser?.close();
    await server?.stop();
    await host.stop();
  }
});
