// Jest transform: a .sh file imports as its text, as esbuild's text loader does in the bundle.
module.exports = {
  process(src) {
    return { code: `module.exports = { __esModule: true, default: ${JSON.stringify(src)} };` };
  },
};
