// The npm benchmark in headless Chromium (Debian's /usr/bin/chromium through
// playwright-core): the same engines.mjs as node.mjs, on the page's main thread.
//
//   cd wasm/bench && npm ci && node browser.mjs [--n 20000] [--queries 200] [--pkg ../pkg]
//
// A small server on 127.0.0.1 serves the page, the packages (wasm/pkg and this folder's
// node_modules) and the first N dataset vectors as raw float32 bytes.
import { readFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { once } from "node:events";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { readFvecsFlat } from "./fvecs.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    n: { type: "string", default: "20000" },
    queries: { type: "string", default: "200" },
    pkg: { type: "string", default: path.join(here, "..", "pkg") },
    dataset: { type: "string", default: path.join(here, "..", "..", "..", "shared", "datasets", "pypi-minilm") },
  },
});
const DIMENSION = 384;
const n = Number(args.n);
const q = Number(args.queries);
const base = await readFvecsFlat(path.join(args.dataset, "base.fvecs"), n, DIMENSION);
const queries = await readFvecsFlat(path.join(args.dataset, "queries.fvecs"), q, DIMENSION);

const TYPES = { ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".html": "text/html" };
const roots = [
  ["/pkg/", path.resolve(args.pkg)],
  ["/bench/", here],
];
const server = createServer((req, res) => {
  const url = new URL(req.url, "http://x").pathname;
  if (url === "/favicon.ico") {
    res.writeHead(204).end();
    return;
  }
  if (url === "/") {
    res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>bench</title>");
    return;
  }
  if (url === "/data/base.f32" || url === "/data/queries.f32") {
    const data = url.endsWith("base.f32") ? base : queries;
    res.writeHead(200, { "content-type": "application/octet-stream" }).end(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    return;
  }
  for (const [prefix, dir] of roots) {
    if (!url.startsWith(prefix)) continue;
    const file = path.resolve(dir, `.${url.slice(prefix.length - 1)}`);
    if (!file.startsWith(dir) || !statSync(file, { throwIfNoEntry: false })?.isFile()) break;
    res.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream" }).end(readFileSync(file));
    return;
  }
  res.writeHead(404).end();
});
server.listen(0, "127.0.0.1");
await once(server, "listening");
const origin = `http://127.0.0.1:${server.address().port}`;

const { chromium } = await import(path.join(here, "..", "..", "www", "node_modules", "playwright-core", "index.mjs"));
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
try {
  const page = await browser.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") console.error(`page: ${m.text()}`);
  });
  await page.goto(origin);
  const version = await browser.version();
  console.log(JSON.stringify({ runtime: `chromium ${version}`, n, queries: q, dimension: DIMENSION }));
  const rows = await page.evaluate(async ({ dimension }) => {
    const modules = {};
    const failures = [];
    const load = async (name, fn) => {
      try {
        modules[name] = await fn();
      } catch (error) {
        failures.push({ engine: name, error: String(error?.message ?? error) });
      }
    };
    await load("arrwdb", async () => {
      const m = await import("/pkg/web/index.js");
      await m.default();
      return m;
    });
    await load("hnswlib", async () => {
      const { loadHnswlib } = await import("/bench/node_modules/hnswlib-wasm/dist/hnswlib.js");
      return loadHnswlib();
    });
    await load("edgevec", async () => {
      const m = await import("/bench/node_modules/edgevec/edgevec.js");
      await m.default({ module_or_path: "/bench/node_modules/edgevec/edgevec_bg.wasm" });
      return m;
    });
    await load("voy", async () => {
      const bg = await import("/bench/node_modules/voy-search/voy_search_bg.js");
      const { instance } = await WebAssembly.instantiateStreaming(fetch("/bench/node_modules/voy-search/voy_search_bg.wasm"), {
        "./voy_search_bg.js": bg,
      });
      bg.__wbg_set_wasm(instance.exports);
      return bg;
    });
    const floats = async (url) => new Float32Array(await (await fetch(url)).arrayBuffer());
    const { run } = await import("/bench/engines.mjs");
    const measured = run(modules, { base: await floats("/data/base.f32"), queries: await floats("/data/queries.f32"), dimension });
    return [...failures, ...measured];
  }, { dimension: DIMENSION });
  for (const row of rows) console.log(JSON.stringify({ n, ...row }));
  const gz = (file) => gzipSync(readFileSync(file), { level: 9 }).length;
  const modulesDir = path.join(here, "node_modules");
  console.log(
    JSON.stringify({
      wasm_gzipped_bytes: {
        arrwdb: gz(path.join(args.pkg, "web", "arrwdb_wasm_bg.wasm")),
        hnswlib: gz(path.join(modulesDir, "hnswlib-wasm", "dist", "hnswlib-317962d7.js")),
        edgevec: gz(path.join(modulesDir, "edgevec", "edgevec_bg.wasm")),
        voy: gz(path.join(modulesDir, "voy-search", "voy_search_bg.wasm")),
      },
    }),
  );
} finally {
  await browser.close();
  server.close();
}
