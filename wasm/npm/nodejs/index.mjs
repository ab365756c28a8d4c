// The Node entry of `arrwdb`. wasm-bindgen's Node build beside this file
// (arrwdb_wasm.js) is CommonJS that compiles the wasm synchronously when loaded (its
// `package.json` says `"type": "commonjs"`); this module registers it with the shared
// ES-module layer, so code written for the browser (`await init()`) runs unchanged.
import bindings from "./arrwdb_wasm.js";
import { register } from "../lib/bindings.js";

register(bindings.RawEngine, null);

/** Nothing to do: the Node build is ready on import. */
export default async function init() {}

/** Nothing to do: the Node build is ready on import. */
export function initSync() {}

export * from "../lib/index.js";
