// Prints the size of each build of the npm package's .wasm, raw and gzipped (level 9):
//   node wasm/tools/sizes.mjs wasm/pkg
import { readFileSync } from "node:fs";
import path from "node:path";
import { gzipSync } from "node:zlib";

const pkg = process.argv[2] ?? "wasm/pkg";
for (const target of ["web", "bundler", "nodejs"]) {
  const bytes = readFileSync(path.join(pkg, target, "arrwdb_wasm_bg.wasm"));
  const gz = gzipSync(bytes, { level: 9 }).length;
  console.log(`${target}/arrwdb_wasm_bg.wasm: ${(bytes.length / 1024).toFixed(1)} KiB, ${(gz / 1024).toFixed(1)} KiB gzipped`);
}
