// Reads the first rows of a texmex .fvecs file (per row: int32 dimension, then float32s,
// little-endian) into one flat Float32Array.
import { readFileSync } from "node:fs";
import { open } from "node:fs/promises";

export async function readFvecsFlat(file, count, dimension) {
  const row = 4 + 4 * dimension;
  const bytes = new Uint8Array(count * row);
  const handle = await open(file);
  try {
    const { bytesRead } = await handle.read(bytes, 0, bytes.length, 0);
    if (bytesRead < bytes.length) throw new Error(`${file} holds fewer than ${count} vectors`);
  } finally {
    await handle.close();
  }
  const view = new DataView(bytes.buffer);
  const out = new Float32Array(count * dimension);
  for (let i = 0; i < count; i++) {
    if (view.getInt32(i * row, true) !== dimension) throw new Error(`${file} row ${i} is not ${dimension}-d`);
    for (let j = 0; j < dimension; j++) out[i * dimension + j] = view.getFloat32(i * row + 4 + 4 * j, true);
  }
  return out;
}

/** The first `limit` entries of the first `count` rows of an .ivecs file (int32
 * dimension, then int32s per row), as arrays of numbers. */
export function readIvecs(file, count, limit) {
  const bytes = readFileSync(file);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const rows = [];
  let at = 0;
  for (let i = 0; i < count && at < bytes.length; i++) {
    const dimension = view.getInt32(at, true);
    const row = [];
    for (let j = 0; j < Math.min(limit, dimension); j++) row.push(view.getInt32(at + 4 + 4 * j, true));
    rows.push(row);
    at += 4 + 4 * dimension;
  }
  return rows;
}
