'use strict';
/**
 * The `clusters` parameter (comma-separated cluster names the stack serves), parsed and checked
 * once for every generator that needs it (alarms.js, iam.js).
 */
const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function servedClusters(raw) {
  const clusters = String(raw).split(',').map((c) => c.trim()).filter(Boolean);
  for (const c of clusters) if (!NAME.test(c)) throw new Error(`param clusters: "${c}" is not a valid cluster name`);
  return clusters;
}

module.exports = { servedClusters };
