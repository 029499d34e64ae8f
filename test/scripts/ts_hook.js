/* Loads TypeScript sources in a plain child process: transpiles each .ts file on require. */
'use strict';
const fs = require('fs');
const path = require('path');

module.exports = function registerTs(root) {
  const ts = require(path.join(root, 'node_modules', 'typescript'));
  require.extensions['.ts'] = (module, filename) => {
    const out = ts.transpileModule(fs.readFileSync(filename, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 },
      fileName: filename,
    });
    module._compile(out.outputText, filename);
  };
};
