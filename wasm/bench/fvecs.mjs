// Reads the first rows of a texmex .fvecs file (per row: int32 dimension, then float32s,
// little-endian) into one flat Float32Array.
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
