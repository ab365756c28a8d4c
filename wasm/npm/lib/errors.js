// The one error class of the package. Every failure, from the engine (bad request,
// unknown library, conflicting id, corrupt bytes) or from around it (IndexedDB, HTTP,
// a worker), is an ArrwdbError whose `kind` says what the caller should do.

/** What the caller should do: fix the request, look elsewhere, re-read state and retry,
 * retry later, or report a bug. The first four match arrwDB's HTTP statuses. */
export const ERROR_KINDS = Object.freeze(["invalid", "not_found", "conflict", "unavailable", "internal"]);

/** An error of arrwDB: `kind` is one of ERROR_KINDS; `message` is the HTTP API's text. */
export class ArrwdbError extends Error {
  constructor(kind, message, options) {
    super(message, options);
    this.name = "ArrwdbError";
    this.kind = ERROR_KINDS.includes(kind) ? kind : "internal";
  }
}

/** Any thrown value as an ArrwdbError: the engine's errors keep their kind and text. */
export function toArrwdbError(error, fallbackKind = "internal") {
  if (error instanceof ArrwdbError) return error;
  if (error instanceof Error && error.name === "ArrwdbError" && typeof error.kind === "string") {
    return new ArrwdbError(error.kind, error.message);
  }
  const message = error instanceof Error ? error.message : String(error);
  return new ArrwdbError(fallbackKind, message, { cause: error });
}

/** Runs `fn`, rethrowing anything it throws as an ArrwdbError. */
export function guard(fn) {
  try {
    return fn();
  } catch (error) {
    throw toArrwdbError(error);
  }
}
