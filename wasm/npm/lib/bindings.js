// The wasm-bindgen module the package entry loaded (web, Node or bundler build). The
// entry registers it here so the shared classes in this folder work with any of them.

let Raw = null;
let initialize = null;
let ready = false;
let starting = null;

/** Called once by the entry: the RawEngine class, and the async init of builds that
 * must fetch the .wasm first (`null` when the module is ready on import). */
export function register(RawEngine, init) {
  Raw = RawEngine;
  initialize = init;
  ready = init === null;
}

/** Loads the .wasm if the build needs it (idempotent). */
export function ensureReady(input) {
  if (ready) return Promise.resolve();
  starting ??= Promise.resolve(initialize(input)).then(
    () => {
      ready = true;
    },
    (error) => {
      starting = null;
      throw error;
    },
  );
  return starting;
}

/** A new RawEngine; throws if the web build's `init()` has not finished. */
export function newRawEngine(logging) {
  if (!ready || Raw === null) {
    const error = new Error("the wasm module is not loaded yet: `await init()` first");
    error.name = "ArrwdbError";
    error.kind = "invalid";
    throw error;
  }
  return new Raw(logging);
}
