// A read replica of one library that a host publishes to object storage, over plain
// HTTP GET: a public bucket, a CDN in front of one, or presigned URLs.
//
// The layout is the host's (arrwdb_core::storage), under `{prefix}` in the bucket:
//   {tenant}/{library}/manifest/LATEST            hint: the newest manifest number n
//   {tenant}/{library}/manifest/{n:020}.json      the current snapshot and WAL start
//   {tenant}/{library}/snapshots/{seq:020}.snap   the library as of record seq
//   {tenant}/{library}/wal/{first:020}.wal        one segment per group commit
// Segments are named by their first record and follow each other without gaps, so once
// the replica is at `seq`, the next segment is exactly `wal/{seq+1}`: tailing needs no
// listing, only a GET that answers 404 (or 403, S3's answer to a missing key when
// listing is not allowed) until the host writes it.
//
// Start: the manifest (LATEST, then newer numbers probed until one is missing) names
// the snapshot to load. Without a manifest, S3 listing (ListObjectsV2, a GET with
// `?list-type=2`) finds the newest snapshot; where listing is refused too (CDNs,
// presigned URLs) the replica starts from `options.snapshot` or replays the log from
// record 1. When the next segment is missing, the manifest is re-read: if the host
// published a newer snapshot (and may have garbage-collected older segments), the
// replica reloads from it instead of waiting forever.
import { ArrwdbError, toArrwdbError } from "./errors.js";
import { ensureReady, newRawEngine } from "./bindings.js";
import { Reader } from "./database.js";

const pad = (n) => String(n).padStart(20, "0");

/** Keys of a ListObjectsV2 answer (all pages). Returns null if listing is refused. */
async function listKeys(fetchImpl, base, prefix) {
  const keys = [];
  let token = null;
  for (let page = 0; page < 1000; page++) {
    const url = new URL(base);
    url.searchParams.set("list-type", "2");
    url.searchParams.set("prefix", prefix);
    if (token !== null) url.searchParams.set("continuation-token", token);
    let text;
    try {
      const response = await fetchImpl(url.href);
      if (!response.ok) return null;
      text = await response.text();
    } catch {
      return null;
    }
    if (!text.includes("<ListBucketResult")) return null;
    for (const match of text.matchAll(/<Key>([^<]*)<\/Key>/g)) keys.push(unescapeXml(match[1]));
    const next = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(text);
    if (!/<IsTruncated>true<\/IsTruncated>/.test(text) || next === null) return keys;
    token = unescapeXml(next[1]);
  }
  return keys;
}

function unescapeXml(text) {
  return text.replace(/&(lt|gt|amp|quot|apos);/g, (_, e) => ({ lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" })[e]);
}

/** The sequence numbers in keys ending in `{20 digits}{ext}`, ascending. */
function seqs(keys, ext) {
  const out = [];
  for (const key of keys) {
    const match = new RegExp(`/(\\d{20})\\${ext}$`).exec(key);
    if (match) out.push(Number(match[1]));
  }
  return out.sort((a, b) => a - b);
}

/**
 * A read-only copy of one library published by an arrwDB host, kept up to date by
 * polling its WAL. Created with `Database.follow(baseUrl, { library })`.
 */
export class Replica extends Reader {
  #base;
  #library;
  #tenant;
  #fetch;
  #url;
  #pollMs;
  #onUpdate;
  #onError;
  #timer = null;
  #stopped = false;
  #polling = null;
  #deleted = false;
  #prefix;
  /** Number of the newest manifest read, 0 before any. */
  #manifest = 0;

  /** @internal use `Database.follow`. */
  constructor(raw, base, options) {
    super(raw);
    this.#base = base;
    this.#library = options.library;
    this.#tenant = options.tenant ?? "default";
    const prefix = String(options.prefix ?? "").replace(/^\/+|\/+$/g, "");
    this.#prefix = prefix === "" ? "" : `${prefix}/`;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#url = options.url ?? null;
    this.#pollMs = options.pollInterval ?? 1000;
    this.#onUpdate = options.onUpdate ?? null;
    this.#onError = options.onError ?? null;
  }

  /** Loads the newest snapshot, catches up on the WAL and starts polling. */
  static async follow(baseUrl, options = {}) {
    if (typeof options.library !== "string" || options.library.length === 0) {
      throw new ArrwdbError("invalid", "follow needs `options.library`, the library to replicate");
    }
    let base;
    try {
      base = new URL(String(baseUrl), globalThis.location?.href);
    } catch {
      throw new ArrwdbError("invalid", `not a URL: ${baseUrl}`);
    }
    if (!base.pathname.endsWith("/")) base.pathname += "/";
    const pollInterval = options.pollInterval ?? 1000;
    if (!(pollInterval >= 0)) throw new ArrwdbError("invalid", `pollInterval must be ≥ 0 ms, got ${pollInterval}`);
    await ensureReady();
    const replica = new Replica(newRawEngine(false), base, options);
    try {
      await replica.#start(options.snapshot);
    } catch (error) {
      replica.stop();
      replica.free();
      throw toArrwdbError(error);
    }
    replica.#schedule();
    return replica;
  }

  /** The replicated library's name. */
  get library() {
    return this.#library;
  }

  /** Sequence number of the last record applied (0 before the library exists). */
  get position() {
    return this._raw.seq(this.#library);
  }

  /** Stops polling and releases the wasm memory; reads throw `invalid` afterwards. */
  free() {
    this.stop();
    super.free();
  }

  /** Whether the host deleted the library (the replica then stops). */
  get deleted() {
    return this.#deleted;
  }

  #keyPrefix() {
    return `${this.#prefix}${this.#tenant}/${this.#library}/`;
  }

  /**
   * The newest manifest numbered after the last one read, or null if there is none.
   * `LATEST` is only a hint (written after the manifest), so numbers past it are probed.
   */
  async #newerManifest() {
    const dir = `${this.#keyPrefix()}manifest/`;
    const hint = await this.#get(`${dir}LATEST`);
    if (hint === null && this.#manifest > 0 && (await this.#get(`${dir}${pad(this.#manifest)}.json`)) === null) {
      // Manifests are never deleted while the library lives: it was deleted, and its
      // tombstone segment was removed before this replica read it.
      this._raw.evict(this.#library);
      this.#deleted = true;
      return null;
    }
    let n = hint === null ? 0 : Number.parseInt(new TextDecoder().decode(hint).trim(), 10);
    if (!Number.isSafeInteger(n) || n < 0) n = 0;
    let manifest = null;
    const start = Math.max(n, this.#manifest + 1);
    for (let probe = start; probe < start + 10_000; probe++) {
      const bytes = await this.#get(`${dir}${pad(probe)}.json`);
      if (bytes === null) break;
      try {
        manifest = JSON.parse(new TextDecoder().decode(bytes));
      } catch {
        throw new ArrwdbError("internal", `corrupt manifest ${dir}${pad(probe)}.json`);
      }
      if (typeof manifest?.version !== "number" || manifest.version < 1 || manifest.version > 1) {
        throw new ArrwdbError("internal", `unsupported manifest version ${manifest?.version} in ${dir}${pad(probe)}.json`);
      }
      this.#manifest = probe;
    }
    return manifest;
  }

  async #loadSnapshot(seq) {
    const key = `${this.#keyPrefix()}snapshots/${pad(seq)}.snap`;
    const bytes = await this.#get(key);
    if (bytes === null) throw new ArrwdbError("not_found", `no snapshot at ${await this.#href(key)}`);
    const name = this._raw.importSnapshot(bytes);
    if (name !== this.#library) {
      this._raw.evict(name);
      throw new ArrwdbError("internal", `${key} holds library \`${name}\`, not \`${this.#library}\``);
    }
  }

  async #href(key) {
    return this.#url === null ? new URL(key, this.#base).href : String(await this.#url(key));
  }

  /** GETs an object; resolves to null if it does not exist (404, or 403 from S3). */
  async #get(key) {
    const url = await this.#href(key);
    let response;
    try {
      response = await this.#fetch(url, { cache: "no-store" });
    } catch (error) {
      throw new ArrwdbError("unavailable", `GET ${url} failed: ${error.message}`, { cause: error });
    }
    if (response.status === 404 || response.status === 403) return null;
    if (!response.ok) throw new ArrwdbError("unavailable", `GET ${url} answered HTTP ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  }

  async #start(snapshot) {
    let snapshotSeq = snapshot ?? null;
    let segments = null;
    if (snapshot === undefined) {
      const manifest = await this.#newerManifest();
      if (manifest !== null) {
        snapshotSeq = manifest.snapshot ?? null;
      } else if (this.#url === null) {
        const keys = await listKeys(this.#fetch, this.#bucket(), this.#keyPrefix());
        if (keys !== null) {
          const snaps = seqs(keys, ".snap");
          snapshotSeq = snaps.length > 0 ? snaps[snaps.length - 1] : null;
          segments = seqs(keys, ".wal");
        }
      }
    }
    if (snapshotSeq !== null) await this.#loadSnapshot(snapshotSeq);
    // A snapshot may end inside a segment: start from the one holding the next record.
    if (segments !== null) {
      const next = this.position + 1;
      const from = segments.filter((first) => first <= next).pop();
      if (from !== undefined && from !== next) await this.#apply(from);
    }
    await this.#catchUp();
    if (this.position === 0 && !this.#deleted) {
      throw new ArrwdbError("not_found", `library \`${this.#library}\` is not published under ${this.#base.href}${this.#keyPrefix()}`);
    }
  }

  /** The bucket URL that listing goes to (the base URL). */
  #bucket() {
    return this.#base;
  }

  /** Applies segment `first`; false if it does not exist yet. */
  async #apply(first) {
    const bytes = await this.#get(`${this.#keyPrefix()}wal/${pad(first)}.wal`);
    if (bytes === null) return false;
    const [, seq] = this._raw.applySegment(bytes);
    if (seq === 0) this.#deleted = true;
    return true;
  }

  /** Applies every segment that exists after the current position. */
  async #catchUp() {
    const before = this.position;
    while (!this.#deleted && (await this.#apply(this.position + 1))) {
      // keep going
    }
    if (!this.#deleted) {
      // Nothing more in the log: has the host moved on to a snapshot past us?
      const manifest = await this.#newerManifest();
      if (!this.#deleted && manifest?.snapshot != null && manifest.snapshot > this.position) {
        await this.#loadSnapshot(manifest.snapshot);
        while (await this.#apply(this.position + 1)) {
          // keep going
        }
      }
    }
    return this.position !== before || this.#deleted;
  }

  /** Fetches and applies new segments now; resolves to the position afterwards. */
  async poll() {
    if (this.#stopped) return this.position;
    this.#polling ??= this.#catchUp()
      .then((changed) => {
        if (changed) this.#onUpdate?.(this.position);
        if (this.#deleted) this.stop();
        return this.position;
      })
      .finally(() => {
        this.#polling = null;
      });
    return this.#polling;
  }

  #schedule() {
    if (this.#stopped || this.#pollMs === 0) return;
    this.#timer = setTimeout(async () => {
      try {
        await this.poll();
      } catch (error) {
        this.#onError?.(toArrwdbError(error));
      }
      this.#schedule();
    }, this.#pollMs);
  }

  /** Stops polling; the replica stays readable. */
  stop() {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
