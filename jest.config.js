/** Jest: TypeScript through @swc/jest (fast, no type checking: `npm run typecheck` does that).
 * middy 5+ and p-limit (with yocto-queue) are ESM-only, so they are transformed to CommonJS too. */
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'json', 'sh'],
  transform: {
    '\\.sh$': '<rootDir>/test/support/text-transform.js',
    '^.+\\.(t|j|mj)s$': ['@swc/jest', { jsc: { target: 'es2022' }, module: { type: 'commonjs' } }],
  },
  transformIgnorePatterns: ['node_modules/(?!(@middy|p-limit|yocto-queue)/)'],
  testTimeout: 60000,
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
};
