/*
 * Shared by the hostile-call fuzz children (fuzz_child.js: every export; fuzz_methods_child.js:
 * the instance methods of valid instances). Hostile argument lists and one guarded call.
 */
'use strict';

/** Thrown by the hostile inputs themselves (getters, callbacks): may propagate unchanged. */
class HostileInputError extends Error {}

const throwing = new Proxy(
  {},
  {
    get() {
      throw new HostileInputError('hostile getter');
    },
  },
);

const HOSTILE = [
  [],
  [undefined],
  [null],
  [NaN],
  [-1],
  [0],
  [2 ** 31],
  [2 ** 53],
  [1e308],
  [-Infinity],
  ['x'],
  [''],
  [{}],
  [[]],
  [new Float32Array(0)],
  [new Float32Array(3), new Float32Array(2), new Float32Array(1)],
  [{ length: 2 ** 40 }],
  [throwing],
  [Symbol('s')],
  [10n ** 30n],
  [{ m: 2 ** 20, n: 2 ** 20, k: 2 ** 20 }],
  [new Float32Array(4), { batch: 2 ** 30, seq: 1, inDim: 2, outDim: 2 }],
  [{ targetEpsilon: 1e-300, targetDelta: 1e-300, sampleRate: 1e-300, steps: 2 ** 52 }],
  [{ noiseMultiplier: 1e-300, sampleRate: 1, steps: 2 ** 52 }],
  [-(2 ** 31), 2 ** 31, NaN],
  // Inputs that hung before issue 10: a device file, order 1e9, a 2^31-wide feature space.
  ['/dev/zero'],
  [{ sampleRate: 0.5, noiseMultiplier: 1, steps: 1, orders: [1e9] }],
  [['a b c'], { dim: 2 ** 31 }],
];

/**
 * A call runner: writes each call's name to stderr before it runs (the parent names the call
 * that crashed or hung), awaits promises for at most `promiseMs`, and classifies what was
 * thrown with `classify(error)` (returns null when the error is acceptable, else a reason).
 */
function makeRunner({ maxCalls = 30000, promiseMs = 5000, slowMs = Infinity, classify } = {}) {
  const stats = { calls: 0, threw: 0, rejected: 0, findings: [], slowest: { ms: 0, name: '' } };
  async function attempt(name, fn) {
    if (stats.calls >= maxCalls) return { skipped: true };
    stats.calls++;
    process.stderr.write(`call ${name}\n`);
    const t0 = Date.now();
    let r;
    let error;
    let threw = false;
    try {
      r = fn();
    } catch (e) {
      threw = true;
      error = e;
    }
    if (!threw) {
      let thenable = false;
      try {
        thenable = r !== null && typeof r === 'object' && typeof r.then === 'function';
      } catch {
        // a hostile object handed back as it came
      }
      if (thenable) {
        const settled = await Promise.race([
          r.then(
            (v) => ({ v }),
            (e) => ({ e }),
          ),
          new Promise((res) => setTimeout(() => res('pending'), promiseMs).unref()),
        ]);
        if (settled === 'pending')
          throw new Error(`${name}: promise still pending after ${promiseMs} ms`);
        if ('e' in settled) {
          stats.rejected++;
          threw = true;
          error = settled.e;
        } else r = settled.v;
      }
    } else stats.threw++;
    const ms = Date.now() - t0;
    if (ms > stats.slowest.ms) stats.slowest = { ms, name };
    if (ms > slowMs) stats.findings.push({ name, reason: `took ${ms} ms` });
    if (threw && classify) {
      const why = classify(error);
      if (why) stats.findings.push({ name, reason: why });
    }
    return threw ? { error } : { value: r };
  }
  return { attempt, stats };
}

module.exports = { HOSTILE, throwing, HostileInputError, makeRunner };
