/*
 * Run by test/native_async_detach.test.ts in a child process with --expose-gc: calls every async
 * kernel, then transfers (detaches) or shrinks the arrays it was given while the promise is
 * pending, under garbage-collector pressure. Before the fix this crashed the process (SIGSEGV);
 * now inputs are copied and a detached output rejects the promise. Prints one JSON line.
 */
'use strict';
const path = require('path');
const addon = require(path.join(process.argv[2], 'build', 'Release', 'dplora.node'));

const N = 1 << 18; // 1 MiB of floats: the worker is still running when the buffer goes away
const key = new Uint8Array(32).fill(7);
const nonce = new Uint8Array(12).fill(1);
const detach = (ta) => structuredClone(ta.buffer, { transfer: [ta.buffer] });
const pressure = () => {
  for (let i = 0; i < 20; i++) new Float32Array(N).fill(i);
  global.gc();
};

async function outcome(p) {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return /detached|transferred|resized/.test(String(e.message))
      ? 'rejected-detached'
      : `rejected: ${e.message}`;
  }
}

async function main() {
  const out = {};
  for (let rep = 0; rep < 3; rep++) {
    // Output transferred while pending.
    let buf = new Float32Array(N);
    let p = addon.rngAddGaussianAsync(key, nonce, 0n, buf, 1);
    detach(buf);
    pressure();
    out.gaussianOutputTransferred = await outcome(p);

    // Resizable buffer shrunk while pending.
    const rab = new ArrayBuffer(N * 4, { maxByteLength: N * 4 });
    buf = new Float32Array(rab);
    try {
      p = addon.rngAddGaussianAsync(key, nonce, 0n, buf, 1);
      rab.resize(0);
      pressure();
      out.gaussianResizableShrunk = await outcome(p);
    } catch (e) {
      out.gaussianResizableShrunk = `refused: ${e.message}`;
    }

    // sgemm: inputs transferred (result still computed), output transferred (rejected).
    const m = 256,
      k = 256,
      n = 256;
    let a = new Float32Array(m * k).fill(1);
    let b = new Float32Array(k * n).fill(2);
    let c = new Float32Array(m * n);
    p = addon.sgemmAsync(a, b, c, { m, n, k });
    detach(a);
    detach(b);
    pressure();
    out.sgemmInputsTransferred = await outcome(p);
    out.sgemmValue = c[0]; // k * 1 * 2 = 512
    a = new Float32Array(m * k).fill(1);
    b = new Float32Array(k * n).fill(2);
    c = new Float32Array(m * n);
    p = addon.sgemmAsync(a, b, c, { m, n, k });
    detach(c);
    pressure();
    out.sgemmOutputTransferred = await outcome(p);

    const shape = { batch: 64, seq: 4, inDim: 64, outDim: 64 };
    const ga = new Float32Array(64 * 4 * 64).fill(0.5);
    const gg = new Float32Array(64 * 4 * 64).fill(0.25);
    const norms = new Float64Array(64);
    p = addon.gradNormSqAsync(ga, gg, shape, norms);
    detach(ga);
    detach(norms);
    pressure();
    out.gradNormOutputTransferred = await outcome(p);

    const ca = new Float32Array(64 * 4 * 64).fill(0.5);
    const cg = new Float32Array(64 * 4 * 64).fill(0.25);
    const f = new Float32Array(64).fill(1);
    const sum = new Float32Array(64 * 64);
    p = addon.clippedSumAsync(ca, cg, shape, f, sum);
    detach(f);
    detach(sum);
    pressure();
    out.clippedSumOutputTransferred = await outcome(p);
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}
main().catch((e) => {
  process.stdout.write(JSON.stringify({ error: String(e && e.stack) }) + '\n');
  process.exitCode = 2;
});
