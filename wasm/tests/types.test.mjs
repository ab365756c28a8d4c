// The hand-written TypeScript declarations (index.d.ts) against the built package,
// resolved the way a TypeScript project resolves `import "arrwdb"` (node_modules, the
// export map's "types"): types/usage.ts, which calls every public method with every
// option, must compile under --strict, with and without the DOM lib; each marked line
// of types/misuse.ts must fail.
// Uses the pinned tsc of wasm/tools.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const tsc = path.resolve(here, "..", "tools", "node_modules", ".bin", "tsc");
const pkg = path.resolve(here, "..", "pkg");

/** tsc --strict on types/`file` importing the package; `lib` as a project sets it. */
function compile(file, lib = ["es2022", "dom"]) {
  const dir = mkdtempSync(path.join(tmpdir(), "arrwdb-types-"));
  try {
    mkdirSync(path.join(dir, "node_modules"));
    symlinkSync(pkg, path.join(dir, "node_modules", "arrwdb"), "dir");
    cpSync(path.join(here, "types", file), path.join(dir, file));
    writeFileSync(path.join(dir, "package.json"), JSON.stringify({ type: "module" }));
    writeFileSync(
      path.join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true, noEmit: true, target: "es2022", module: "nodenext", moduleResolution: "nodenext",
          lib, types: [], skipLibCheck: false, noUnusedLocals: false,
        },
        files: [file],
      }),
    );
    try {
      execFileSync(tsc, ["-p", dir], { encoding: "utf8", stdio: "pipe" });
      return "";
    } catch (error) {
      return `${error.stdout}${error.stderr}`;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("every public call type-checks under --strict", () => {
  assert.equal(compile("usage.ts"), "");
});

test("the declarations compile without the DOM lib, as in a Node project", () => {
  assert.equal(compile("usage.ts", ["es2022"]), "");
});

test("misuse is a type error on exactly the marked lines", () => {
  const output = compile("misuse.ts");
  const lines = readFileSync(path.join(here, "types", "misuse.ts"), "utf8").split("\n");
  const marked = lines.flatMap((line, i) => (/\/\/ error:/.test(line) ? [i + 1] : []));
  const reported = [...new Set([...output.matchAll(/misuse\.ts\((\d+),\d+\): error/g)].map((m) => Number(m[1])))];
  assert.deepEqual(reported.sort((a, b) => a - b), marked, output);
});

test("the declarations have no `any`", () => {
  const text = readFileSync(path.join(pkg, "index.d.ts"), "utf8").replace(/\/\/.*$|\/\*[\s\S]*?\*\//gm, "");
  assert.doesNotMatch(text, /\bany\b/);
});
