// Prints jest's --json results as the one line CI reads: `tests: N passed, N failed`. Several
// results files (one per etcd version npm test ran) are added up.
const { readFileSync } = require('node:fs');
let passed = 0;
let failed = 0;
for (const file of process.argv.slice(2)) {
  const r = JSON.parse(readFileSync(file, 'utf8'));
  passed += r.numPassedTests;
  failed += r.numFailedTests + (r.numRuntimeErrorTestSuites ?? 0);
}
console.log(`tests: ${passed} passed, ${failed} failed`);
