// A tiny static server for the playground: www/ at `/`, the built npm package
// (wasm/pkg/) at `/pkg/`. No dependencies; development and tests only.
//
//   node www/serve.mjs [PORT] [--api http://127.0.0.1:7700]   (or PORT=... ; 0 picks a free port)
//
// With `--api`, the host console is served at `/console` (as the arrwdb host serves it)
// and the host's routes (`/v1/…`, `/metrics`, `/health`, `/ready`, `/openapi.json`) are
// proxied to that host, streamed (Server-Sent Events pass through), so the console talks
// to its own origin exactly as it does when the host serves it.
//
// Prints `listening http://127.0.0.1:PORT` as its first line of output.
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer, request as httpRequest } from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOTS = [
  ["/pkg/", path.resolve(here, "..", "wasm", "pkg")],
  ["/", here],
];
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".wasm": "application/wasm",
  ".ts": "text/plain; charset=utf-8",
  ".md": "text/markdown; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

/** The file a URL path names, or null if it is outside the served roots. */
function resolve(urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  for (const [prefix, root] of ROOTS) {
    if (!decoded.startsWith(prefix)) continue;
    const file = path.resolve(root, `.${decoded.slice(prefix.length - 1)}`);
    if (file !== root && !file.startsWith(root + path.sep)) return null;
    return file;
  }
  return null;
}

const { values: options, positionals } = parseArgs({ options: { api: { type: "string" } }, allowPositionals: true });
const api = options.api ? new URL(options.api) : null;
/** Paths the arrwdb host answers, proxied with `--api`. */
const HOST_ROUTES = /^\/(v1\/|metrics$|health$|ready$|openapi\.json$)/;

/** Forwards a request to the `--api` host and streams the answer back. */
function proxy(req, res) {
  const upstream = httpRequest(
    { host: api.hostname, port: api.port, method: req.method, path: req.url, headers: { ...req.headers, host: api.host } },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on("error", (error) => {
    if (!res.headersSent) res.writeHead(502, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { kind: "unavailable", message: `proxy: ${error.message}` } }));
  });
  res.on("close", () => upstream.destroy());
  req.pipe(upstream);
}

const server = createServer(async (req, res) => {
  const send = (status, text) => {
    res.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
    res.end(req.method === "HEAD" ? undefined : `${text}\n`);
  };
  const pathname = new URL(req.url, "http://localhost").pathname;
  if (api !== null && HOST_ROUTES.test(pathname)) return proxy(req, res);
  if (req.method !== "GET" && req.method !== "HEAD") return send(405, "method not allowed");
  let file = resolve(pathname === "/console" ? "/console.html" : pathname);
  if (file === null) return send(404, "not found");
  try {
    let info = await stat(file);
    if (info.isDirectory()) {
      file = path.join(file, "index.html");
      info = await stat(file);
    }
    res.writeHead(200, {
      "content-type": TYPES[path.extname(file)] ?? "application/octet-stream",
      "content-length": info.size,
      "cache-control": "no-store",
    });
    if (req.method === "HEAD") return res.end();
    createReadStream(file).pipe(res);
  } catch {
    send(404, "not found");
  }
});

const port = Number(positionals[0] ?? process.env.PORT ?? 8080);
server.listen(port, "127.0.0.1", () => {
  console.log(`listening http://127.0.0.1:${server.address().port}`);
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => server.close(() => process.exit(0)));
