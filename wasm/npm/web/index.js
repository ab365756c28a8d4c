// The browser entry of `arrwdb` (also used in Web Workers): the wasm-bindgen "web"
// build, whose `init()` fetches and compiles the .wasm beside it.
import initWasm, { initSync as initSyncWasm, RawEngine } from "./arrwdb_wasm.js";
import { ensureReady, register } from "../lib/bindings.js";

register(RawEngine, (input) => initWasm(input === undefined ? undefined : { module_or_path: input }));

/** Fetches and compiles the .wasm (or uses `input`: a URL, Response, bytes or module). */
export default function init(input) {
  return ensureReady(input);
}

/** Compiles the .wasm synchronously from bytes or a WebAssembly.Module. */
export function initSync(module) {
  initSyncWasm({ module });
  register(RawEngine, null);
}

export * from "../lib/index.js";
