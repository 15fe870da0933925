// Prints jest's --json results as the one line CI reads: `tests: N passed, N failed`.
const { readFileSync } = require('node:fs');
const r = JSON.parse(readFileSync(process.argv[2], 'utf8'));
console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed`);
