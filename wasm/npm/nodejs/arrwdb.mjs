// The Node entry of the `arrwdb` package for `import`.
//
// wasm-bindgen's Node build beside this file (arrwdb_wasm.js) is CommonJS and compiles
// the wasm synchronously when it loads; its `package.json` says `"type": "commonjs"` so
// Node reads it as such inside this `"type": "module"` package. This module re-exports
// it and adds the web build's `init` and `initSync` as no-ops, so code written for the
// browser, `import init, { Database } from "arrwdb"; await init();`, runs unchanged.
export * from "./arrwdb_wasm.js";

/** Nothing to do: the Node build is ready on import. */
export default async function init() {}

/** Nothing to do: the Node build is ready on import. */
export function initSync() {}
