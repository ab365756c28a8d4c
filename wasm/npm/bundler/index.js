// The bundler entry of `arrwdb` (webpack, Vite, Rollup with wasm support): the
// wasm-bindgen "bundler" build imports the .wasm as an ES module, so it is ready on import.
import { RawEngine } from "./arrwdb_wasm.js";
import { register } from "../lib/bindings.js";

register(RawEngine, null);

/** Nothing to do: the bundler build is ready on import. */
export default async function init() {}

/** Nothing to do: the bundler build is ready on import. */
export function initSync() {}

export * from "../lib/index.js";
