// Validate .glb files with the Khronos glTF validator; prints one JSON report per file
// (the validator's own report: issues.numErrors, numWarnings, messages, info).
// Usage: node validate_gltf.js FILE.glb [...]
"use strict";
const fs = require("fs");
const validator = require("gltf-validator");

async function main(files) {
  const reports = {};
  for (const file of files) {
    reports[file] = await validator.validateBytes(new Uint8Array(fs.readFileSync(file)), {
      maxIssues: 100,
      format: "glb",
    });
  }
  process.stdout.write(JSON.stringify(reports));
}

main(process.argv.slice(2)).catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
  process.exit(1);
});
