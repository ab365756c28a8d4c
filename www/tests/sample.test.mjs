// The playground's bundled sample (www/sample/) is what www/tools/sample.mjs makes from
// the pypi-minilm dataset: the same documents, queries and vector bytes. Skipped where
// the dataset is not next to the repository (../shared/datasets/pypi-minilm).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { root, www } from "./support.mjs";

const dataset = path.resolve(root, "..", "shared", "datasets", "pypi-minilm");

test("the bundled sample matches the dataset it was made from", { skip: !existsSync(dataset) && `no dataset at ${dataset}` }, () => {
  const run = spawnSync(process.execPath, [path.join(www, "tools", "sample.mjs"), "--check", "--dataset", dataset], { encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /^sample: 2000 documents and 40 queries match the dataset$/m);
});
