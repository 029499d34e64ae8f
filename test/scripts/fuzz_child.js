/*
 * Hostile-call fuzzing, run by test/fuzz_exports.test.ts in a child process (so that a crash or
 * a hang fails the test instead of killing jest). Loads the package from its TypeScript sources
 * (transpiled on require), then calls every exported function, constructor, static method and
 * instance method with hostile arguments. Any thrown error or rejected promise is fine; what
 * must not happen is a crash (signal, abort) or a call that never returns. Before each call the
 * call's name is written to stderr, so that the parent can say which call crashed or hung.
 * Prints one JSON line: {calls, threw, rejected}.
 */
'use strict';
const path = require('path');
const root = process.argv[2];
require('./ts_hook')(root);
// I/O of hostile calls lands in a scratch folder (the parent makes cwd a temp dir).
const lib = require(path.join(root, 'lib', 'index.ts'));

const SKIP = new Set([
  'setThreads', // changes the thread pool of the whole process (valid calls are tested elsewhere)
  'setIsa',
  'loadSpamCorpus', // reads the bundled corpus: slow, not hostile-input code
]);
const { HOSTILE, makeRunner } = require('./fuzz_common');
const { attempt, stats } = makeRunner({ maxCalls: 30000 });

const isClass = (f) => /^class[\s{]/.test(Function.prototype.toString.call(f));

async function main() {
  const names = Object.keys(lib).sort();
  for (const name of names) {
    const v = lib[name];
    if (typeof v !== 'function' || SKIP.has(name)) continue;
    const instances = [];
    for (const args of HOSTILE) {
      if (isClass(v)) {
        await attempt(`new ${name}(${args.length})`, () => {
          const o = new v(...args);
          instances.push(o);
          return undefined;
        });
      } else {
        await attempt(`${name}(${args.length})`, () => v(...args));
      }
    }
    // Static methods.
    for (const k of Object.getOwnPropertyNames(v)) {
      if (['length', 'name', 'prototype', 'caller', 'arguments'].includes(k)) continue;
      const d = Object.getOwnPropertyDescriptor(v, k);
      if (!d || typeof d.value !== 'function') continue;
      for (const args of HOSTILE) await attempt(`${name}.${k}`, () => d.value.apply(v, args));
    }
    // Methods of the instances that could be built from hostile arguments.
    for (const o of instances.slice(0, 3)) {
      const proto = Object.getPrototypeOf(o);
      for (const k of Object.getOwnPropertyNames(proto)) {
        if (k === 'constructor') continue;
        const d = Object.getOwnPropertyDescriptor(proto, k);
        if (!d || typeof d.value !== 'function') continue;
        for (const args of HOSTILE) await attempt(`${name}#${k}`, () => d.value.apply(o, args));
      }
    }
  }
  process.stdout.write(
    JSON.stringify({ calls: stats.calls, threw: stats.threw, rejected: stats.rejected }) + '\n',
  );
}
main().catch((e) => {
  process.stdout.write(JSON.stringify({ error: String(e && e.stack) }) + '\n');
  process.exitCode = 2;
});
