// The conformance suite's JavaScript runtimes (docs/conformance.md): runs an expanded
// plan against the npm package in Node, or in headless Chromium, and prints the raw
// results (one array per scenario, one entry per operation) as one JSON value on stdout.
//
//   node tests/js/conformance.mjs --pkg wasm/pkg --plan PLAN.json [--browser]
//
// With --browser it serves the package, conformance_ops.mjs, conformance.html and the
// plan from a throwaway HTTP server on 127.0.0.1, opens the page in Debian's
// /usr/bin/chromium through playwright-core (www/node_modules, the launcher flags of
// www/tests/support.mjs) and runs the same executor there.
import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { createServer } from "node:http";
import { once } from "node:events";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { runPlan } from "./conformance_ops.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");

const { values: args } = parseArgs({
  options: {
    pkg: { type: "string" },
    plan: { type: "string" },
    browser: { type: "boolean" },
  },
  strict: true,
});
for (const required of ["pkg", "plan"]) {
  if (args[required] === undefined) fail(`--${required} is required`);
}

function fail(message) {
  process.stderr.write(`conformance: ${message}\n`);
  process.exit(2);
}

/** Imports the package the way `import "arrwdb"` does in Node: through its export map. */
async function importPackage(dir) {
  const manifest = JSON.parse(await readFile(path.join(dir, "package.json"), "utf8"));
  let entry = manifest.exports?.["."]?.node ?? manifest.main;
  if (typeof entry === "object") entry = entry.import ?? entry.default;
  if (typeof entry !== "string") fail(`${dir}/package.json has no Node entry`);
  return import(pathToFileURL(path.resolve(dir, entry)).href);
}

async function inNode(planText) {
  const arrwdb = await importPackage(args.pkg);
  await arrwdb.default();
  return runPlan(arrwdb, JSON.parse(planText));
}

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
};

/** Serves `/pkg/…` from the package, `/js/…` from tests/js and `/plan.json`. */
async function serve(planText) {
  const pkg = path.resolve(args.pkg);
  const server = createServer(async (req, res) => {
    const url = decodeURIComponent(new URL(req.url, "http://x").pathname);
    if (url === "/plan.json") {
      res.writeHead(200, { "content-type": TYPES[".json"] });
      res.end(planText);
      return;
    }
    const [prefix, dir] = url.startsWith("/pkg/") ? ["/pkg/", pkg] : ["/js/", here];
    const file = path.resolve(dir, `.${url.slice(prefix.length - 1)}`);
    const inside = url.startsWith(prefix) && file.startsWith(dir + path.sep);
    if (!inside || !(await stat(file).then((s) => s.isFile(), () => false))) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream" });
    createReadStream(file).pipe(res);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server;
}

async function inChromium(planText) {
  const playwright = path.join(root, "www", "node_modules", "playwright-core", "index.mjs");
  const { chromium } = await import(pathToFileURL(playwright).href);
  const server = await serve(planText);
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  try {
    const page = await browser.newPage();
    const problems = [];
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    await page.goto(`http://127.0.0.1:${server.address().port}/js/conformance.html`);
    // The results cross back as JSON text: one string, not a structured clone of MBs.
    const text = await page.evaluate(async () => {
      const arrwdb = await import("/pkg/web/index.js");
      await arrwdb.default();
      const { runPlan: run } = await import("/js/conformance_ops.mjs");
      const plan = await (await fetch("/plan.json")).json();
      return JSON.stringify(run(arrwdb, plan));
    });
    if (problems.length > 0) fail(problems.join("\n"));
    return JSON.parse(text);
  } finally {
    await browser.close();
    server.close();
  }
}

const planText = await readFile(args.plan, "utf8");
const results = args.browser ? await inChromium(planText) : await inNode(planText);
process.stdout.write(`${JSON.stringify(results)}\n`);
