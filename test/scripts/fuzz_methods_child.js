/*
 * Hostile-call fuzzing of instance methods, run by test/fuzz_methods.test.ts in a child process.
 * Builds VALID instances (privacy engine with a model, DP optimizer, trainer, ledger,
 * accountants, RNG, layers, optimizers, integer LoRA) and calls every public method and getter
 * with hostile arguments, then runs seeded random sequences of engine operations in hostile
 * orders (step before nextBatch, two nextBatch, loadStateDict mid-step, NaN inputs, ...).
 *
 * Findings (printed in the JSON line, the parent asserts there are none):
 *  - a thrown error that is not a DpLoraError with a stable ERR_DPLORA_* code, unless it is the
 *    hostile input's own error propagating unchanged (a throwing getter or callback);
 *  - a call slower than SLOW_MS;
 *  - PRIVACY: the model's trainable parameters changed during a call but the privacy ledger did
 *    not grow (an update released without being charged).
 * A crash or hang is seen by the parent (signal, timeout; stderr names the last call).
 */
'use strict';
const fs = require('fs');
const path = require('path');
const root = process.argv[2];
const quick = process.argv[3] === 'quick';
require('./ts_hook')(root);
const lib = require(path.join(root, 'lib', 'index.ts'));
const kernels = require(path.join(root, 'lib', 'api', 'kernels.ts'));
const fixed = require(path.join(root, 'lib', 'api', 'fixed.ts'));
const { HOSTILE, HostileInputError, makeRunner } = require('./fuzz_common');

const SLOW_MS = 20000;

function classify(e) {
  if (e instanceof HostileInputError) return null; // the hostile input's own error
  // Documented exception: Node's own file-system errors (ENOENT, EISDIR, EACCES...) for a path
  // that cannot be opened propagate unchanged (they carry the OS's code and the path).
  if (e && typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code) && typeof e.syscall === 'string')
    return null;
  if (e instanceof lib.DpLoraError && typeof e.code === 'string' && /^ERR_DPLORA_/.test(e.code))
    return null;
  const name = e && e.constructor ? e.constructor.name : typeof e;
  return `threw ${name}: ${String(e && e.message).slice(0, 200)}`;
}
const { attempt, stats } = makeRunner({ maxCalls: 60000, slowMs: SLOW_MS, classify });

// Deterministic uniform numbers in [0, 1) for the sequences (not for noise).
const { seededUniform: xorshift } = require(
  path.join(root, 'test', 'helpers', 'accounting_reference.ts'),
);

const IN = 4;
const OUT = 2;
const N = 40;
const rnd0 = xorshift(7);
const X = Float32Array.from({ length: N * IN }, () => rnd0() * 2 - 1);
const Y = Int32Array.from({ length: N }, (_, i) => i % OUT);

function model(seed = 1) {
  return new lib.Sequential(
    new lib.LoraLinear(new lib.Linear(IN, 6, { seed }), { r: 2, alpha: 4, seed: seed + 1 }),
    new lib.Tanh(),
    new lib.Linear(6, OUT, { seed: seed + 2 }),
  );
}

function snapshot(m) {
  return m.trainableParameters().map((p) => Float32Array.from(p.data));
}
function changed(m, snap) {
  const ps = m.trainableParameters();
  if (ps.length !== snap.length) return true;
  return ps.some(
    (p, i) => p.data.length !== snap[i].length || p.data.some((v, j) => !Object.is(v, snap[i][j])),
  );
}

/** A valid private-training setup. */
function setup(extra = {}) {
  const m = model();
  const opt = new lib.SGD(m.trainableParameters(), { lr: 0.5 });
  const engine = new lib.PrivacyEngine();
  engine.makePrivate({
    model: m,
    optimizer: opt,
    dataset: N,
    batchSize: 8,
    noiseMultiplier: 1,
    maxGradNorm: 1,
    maxPhysicalBatchSize: 4,
    targetEpsilon: 40,
    delta: 1e-3,
    accountant: 'rdp',
    seed: 3,
    onWarning: () => undefined,
    ...extra,
  });
  return { m, engine };
}

function batchOf(idx, nan = false) {
  const x = new Float32Array(idx.length * IN);
  const y = new Int32Array(idx.length);
  for (let k = 0; k < idx.length; k++) {
    x.set(X.subarray(idx[k] * IN, (idx[k] + 1) * IN), k * IN);
    y[k] = Y[idx[k]];
  }
  if (nan && x.length) x[0] = NaN;
  return { x: new lib.Tensor(x, [idx.length, IN]), y };
}

/** Runs forward/backward/accumulate over micro-batches (the valid middle of a step). */
function runMicro(ctx, micro, nan = false) {
  for (const idx of micro) {
    ctx.engine.useRecords(idx);
    const { x, y } = batchOf(idx, nan);
    const out = ctx.m.forward(x);
    const loss = lib.crossEntropyLoss(out, y);
    ctx.m.backward(loss.grad);
    ctx.engine.optimizer.accumulate();
  }
}

/**
 * Calls fn as one fuzz call and checks the privacy invariant around it: the parameters may
 * change only if the ledger grew.
 */
async function guarded(ctx, name, fn) {
  if (!(ctx.engine instanceof lib.PrivacyEngine)) return attempt(name, fn); // no engine: no ledger
  const before = snapshot(ctx.m);
  const len = safeLen(ctx.engine);
  const r = await attempt(name, fn);
  if (changed(ctx.m, before) && !(safeLen(ctx.engine) > len))
    stats.findings.push({
      name,
      reason: 'PRIVACY: parameters changed but the ledger did not grow',
    });
  return r;
}
function safeLen(engine) {
  try {
    return engine.privacyLedger.length;
  } catch {
    return -1;
  }
}

/**
 * Members that are not public API, per class, read from the sources: `private` / `protected`
 * members and those tagged `@internal` (JavaScript can call them; callers of the typed API
 * cannot, so they are not fuzzed).
 */
const NON_PUBLIC = (() => {
  const out = new Map();
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const f = path.join(d, e.name);
      if (e.isDirectory()) walk(f);
      else if (f.endsWith('.ts')) {
        const parts = fs.readFileSync(f, 'utf8').split(/\bclass\s+(\w+)/);
        for (let i = 1; i < parts.length; i += 2) {
          const set = out.get(parts[i]) || new Set();
          const body = parts[i + 1];
          const re =
            /\b(?:private|protected)\s+(?:static\s+)?(?:readonly\s+)?(?:async\s+)?(?:get\s+|set\s+)?([A-Za-z_$][\w$]*)/g;
          for (let m; (m = re.exec(body));) set.add(m[1]);
          const ri = /@internal[^\n]*\*\/\s*\n\s*(?:get\s+|set\s+|static\s+)?([A-Za-z_$][\w$]*)/g;
          for (let m; (m = ri.exec(body));) set.add(m[1]);
          out.set(parts[i], set);
        }
      }
    }
  };
  walk(path.join(root, 'lib'));
  return out;
})();

/** Every public method and accessor of `obj` (prototype chain up to Object.prototype). */
function membersOf(obj) {
  const out = new Map();
  for (
    let p = Object.getPrototypeOf(obj);
    p && p !== Object.prototype;
    p = Object.getPrototypeOf(p)
  ) {
    const hidden = NON_PUBLIC.get(p.constructor && p.constructor.name) || new Set();
    for (const k of Object.getOwnPropertyNames(p)) {
      if (k === 'constructor' || out.has(k) || hidden.has(k)) continue;
      out.set(k, Object.getOwnPropertyDescriptor(p, k));
    }
  }
  return out;
}

/** Hostile arguments to every method of a fresh instance from `make` (one instance per method). */
async function fuzzMethods(label, make, opts = {}) {
  const skip = new Set(opts.skip || []);
  const probe = make();
  if (!probe) return;
  for (const [k, d] of membersOf(probe.obj)) {
    if (skip.has(k)) continue;
    const ctx = make();
    if (d.get) {
      await guarded(ctx, `${label}.${k} (get)`, () => d.get.call(ctx.obj));
      if (d.set)
        for (const args of HOSTILE)
          await guarded(ctx, `${label}.${k} = ${args.length}`, () => d.set.call(ctx.obj, args[0]));
      continue;
    }
    if (typeof d.value !== 'function') continue;
    const argSets = quick ? HOSTILE.slice(0, 6) : HOSTILE;
    for (const args of argSets)
      await guarded(ctx, `${label}#${k}(${args.length})`, () => d.value.apply(ctx.obj, args));
  }
}

/** Engine operations for the random sequences: valid ones and misuses. */
const OPS = {
  nextBatch: (c) => {
    c.batch = c.engine.nextBatch();
  },
  micro: (c) => runMicro(c, c.batch ? c.batch.microBatches : [[0, 1]]),
  microWrong: (c) => runMicro(c, [[0, 1, 2]]),
  microNaN: (c) => runMicro(c, c.batch ? c.batch.microBatches : [[3]], true),
  accumulate: (c) => c.engine.optimizer.accumulate(),
  step: (c) => c.engine.optimizer.step(),
  zeroGrad: (c) => c.engine.optimizer.zeroGrad(),
  abandon: (c) => c.engine.abandonBatch(),
  save: (c) => {
    c.saved = c.engine.stateDict();
  },
  load: (c) => c.engine.loadStateDict(c.saved || c.first),
  loadFirst: (c) => c.engine.loadStateDict(c.first),
  loadTampered: (c) => {
    const s = c.engine.stateDict();
    s.step = 0;
    c.engine.loadStateDict(s);
  },
  loadNoLedger: (c) => c.engine.loadStateDict({ ...c.first, ledger: undefined }),
  epsilon: (c) => c.engine.getEpsilon(),
  useRecords: (c) => c.engine.useRecords([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
  makePrivateAgain: (c) =>
    c.engine.makePrivate({
      model: c.m,
      optimizer: new lib.SGD(c.m.trainableParameters(), { lr: 1 }),
      dataset: N,
      batchSize: 8,
      noiseMultiplier: 1,
      maxGradNorm: 1,
      onWarning: () => undefined,
    }),
  rowsUnclipped: (c) => {
    const total = c.m.trainableParameters().reduce((a, p) => a + p.size, 0);
    c.engine.optimizer.accumulateGradients(new Float32Array(total).fill(1e30), 1);
  },
  setLr: (c) => {
    c.engine.optimizer.lr = 1e30;
  },
  remaining: (c) => c.engine.remainingSteps(),
  report: (c) => c.engine.report(),
};

async function sequences(count, len) {
  const rnd = xorshift(11);
  const names = Object.keys(OPS);
  for (let s = 0; s < count; s++) {
    const c = setup();
    c.first = c.engine.stateDict();
    for (let i = 0; i < len; i++) {
      const op = names[Math.floor(rnd() * names.length)];
      await guarded(c, `seq${s}:${op}`, () => OPS[op](c));
    }
  }
  // Fixed misuse orders named in the brief.
  const orders = [
    ['step'],
    ['nextBatch', 'nextBatch'],
    ['nextBatch', 'micro', 'loadFirst', 'step'],
    ['nextBatch', 'micro', 'save', 'step', 'load', 'nextBatch', 'micro', 'step'],
    ['nextBatch', 'microNaN', 'step', 'nextBatch', 'micro', 'step'],
    ['nextBatch', 'step'],
    ['nextBatch', 'microWrong', 'step'],
    ['abandon', 'nextBatch', 'abandon', 'step'],
    ['nextBatch', 'micro', 'makePrivateAgain', 'step'],
    ['nextBatch', 'micro', 'zeroGrad', 'step'],
    ['nextBatch', 'rowsUnclipped', 'step'],
    ['setLr', 'nextBatch', 'micro', 'step'],
    ['nextBatch', 'micro', 'loadTampered', 'step'],
  ];
  for (const o of orders) {
    const c = setup();
    c.first = c.engine.stateDict();
    for (const op of o) await guarded(c, `order[${o.join(',')}]:${op}`, () => OPS[op](c));
  }
}

async function trainerCalls() {
  const dir = fs.mkdtempSync(path.join(process.cwd(), 'trainer-'));
  const data = lib.arrayDataset(X, Y, IN);
  const privacy = { targetEpsilon: 20, epochs: 1, batchSize: 8, maxGradNorm: 1, accountant: 'rdp' };
  const base = () => ({
    model: model(),
    loss: lib.crossEntropyLoss,
    data,
    privacy,
    onWarning: () => undefined,
  });
  const hostileOptions = [
    { privacy: { ...privacy, targetEpsilon: -1 } },
    { privacy: { ...privacy, epochs: 1e300 } },
    { privacy: { ...privacy, batchSize: 1e9 } },
    { privacy: { ...privacy, accountant: 'x' } },
    { privacy: { ...privacy, noiseMultiplier: 1e-300 } },
    { privacy: null },
    { data: { size: 2 ** 53, batch: () => ({}) } },
    {
      data: {
        size: 10,
        batch: () => {
          throw new HostileInputError('batch');
        },
      },
    },
    {
      loss: () => {
        throw new HostileInputError('loss');
      },
    },
    { loss: () => ({ total: NaN, grad: null }) },
    { runDir: '/proc/x' },
    { runDir: path.join(dir, 'a'), checkpointEvery: 0 },
    { lr: NaN },
    { optimizer: () => null },
  ];
  for (let i = 0; i < hostileOptions.length; i++) {
    const o = { ...base(), ...hostileOptions[i] };
    const r = await attempt(`PrivateTrainer.create(hostile ${i})`, () =>
      lib.PrivateTrainer.create(o),
    );
    if (r.value) {
      const ctrl = new AbortController();
      await attempt(`trainer(hostile ${i}).fit`, () =>
        r.value.fit({ maxSteps: 2, signal: ctrl.signal }),
      );
      await attempt(`trainer(hostile ${i}).close`, () => r.value.close());
    }
  }
  // A valid trainer: fit with an aborted signal, a throwing progress callback, hostile fit
  // options, every method with hostile arguments, methods after close, resume of a closed run.
  const runDir = path.join(dir, 'run');
  const t = lib.PrivateTrainer.create({ ...base(), runDir });
  const snap = snapshot(t.engine.optimizer.model || model());
  void snap;
  const ac = new AbortController();
  ac.abort();
  await attempt('trainer.fit(aborted)', () => t.fit({ signal: ac.signal }));
  await attempt('trainer.fit(onProgress throws)', () =>
    t.fit({
      maxSteps: 2,
      onProgress: () => {
        throw new HostileInputError('progress');
      },
    }),
  );
  for (const args of HOSTILE) await attempt(`trainer.fit(${args.length})`, () => t.fit(...args));
  for (const [k, d] of membersOf(t)) {
    if (k === 'fit' || k === 'close') continue;
    if (d.get) await attempt(`trainer.${k} (get)`, () => d.get.call(t));
    else if (typeof d.value === 'function')
      for (const args of HOSTILE.slice(0, 8))
        await attempt(`trainer#${k}(${args.length})`, () => d.value.apply(t, args));
  }
  await attempt('trainer.close', () => t.close());
  for (const k of ['fit', 'save', 'close']) await attempt(`trainer#${k} after close`, () => t[k]());
  await attempt('PrivateTrainer.resume(valid)', () => {
    const r = lib.PrivateTrainer.resume(runDir, {
      model: model(),
      loss: lib.crossEntropyLoss,
      data,
      onWarning: () => undefined,
    });
    r.close();
  });
  for (const args of HOSTILE.slice(0, 12))
    await attempt(`PrivateTrainer.resume(hostile ${args.length})`, () =>
      lib.PrivateTrainer.resume(runDir, ...args),
    );
  await attempt('PrivateTrainer.resume(wrong model)', () =>
    lib.PrivateTrainer.resume(runDir, {
      model: new lib.Sequential(new lib.Linear(IN, OUT)),
      loss: lib.crossEntropyLoss,
      data,
    }),
  );
}

/** Hostile files for readSafetensors / loadCheckpoint. */
async function fileCalls() {
  const dir = fs.mkdtempSync(path.join(process.cwd(), 'files-'));
  const hdr = (json, pad = 0) => {
    const j = Buffer.from(JSON.stringify(json));
    const b = Buffer.alloc(8 + j.length + pad);
    b.writeBigUInt64LE(BigInt(j.length), 0);
    j.copy(b, 8);
    return b;
  };
  const files = {
    empty: Buffer.alloc(0),
    short: Buffer.from([1, 2, 3]),
    hugeHeader: (() => {
      const b = Buffer.alloc(16);
      b.writeBigUInt64LE(2n ** 62n, 0);
      return b;
    })(),
    garbage: Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{{{{')]),
    badOffsets: hdr({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 1e15] } }),
    negOffsets: hdr({ a: { dtype: 'F32', shape: [2], data_offsets: [-8, 0] } }),
    hugeShape: hdr({ a: { dtype: 'F32', shape: [2 ** 31, 2 ** 31], data_offsets: [0, 8] } }, 8),
    badDtype: hdr({ a: { dtype: 'X99', shape: [1], data_offsets: [0, 4] } }, 4),
    proto: hdr({ __proto__: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 4),
  };
  for (const [name, buf] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), buf);
  fs.mkdirSync(path.join(dir, 'adir'));
  try {
    fs.symlinkSync('/dev/zero', path.join(dir, 'zero-link'));
  } catch {
    // no symlinks here
  }
  const targets = [...Object.keys(files), 'adir', 'zero-link', 'missing'].map((f) =>
    path.join(dir, f),
  );
  for (const f of targets) {
    await attempt(`readSafetensors(${path.basename(f)})`, () => lib.readSafetensors(f));
    await attempt(`loadCheckpoint(${path.basename(f)})`, () => lib.loadCheckpoint(f));
    await attempt(`loadAdapter(${path.basename(f)})`, () => lib.loadAdapter(f));
  }
  // A checkpoint folder whose files are hostile.
  const ck = path.join(dir, 'ck');
  fs.mkdirSync(ck);
  fs.writeFileSync(path.join(ck, 'latest'), '../../../../etc');
  await attempt('loadCheckpoint(latest escapes)', () => lib.loadCheckpoint(ck));
  fs.writeFileSync(path.join(ck, 'latest'), 'step-00000001');
  fs.mkdirSync(path.join(ck, 'step-00000001'));
  for (const [name, buf] of Object.entries(files)) {
    for (const f of ['manifest.json', 'state.json', 'ledger.json', 'tensors.safetensors'])
      fs.writeFileSync(path.join(ck, 'step-00000001', f), buf);
    await attempt(`loadCheckpoint(ck with ${name} files)`, () => lib.loadCheckpoint(ck));
  }
}

async function main() {
  // The engine and its DP optimizer (methods, getters, setters), fresh instance per method.
  await fuzzMethods('PrivacyEngine', () => {
    const c = setup();
    return { ...c, obj: c.engine };
  });
  await fuzzMethods('PrivacyEngine(mid-step)', () => {
    const c = setup();
    const b = c.engine.nextBatch();
    runMicro(c, b.microBatches);
    return { ...c, obj: c.engine };
  });
  await fuzzMethods(
    'DPOptimizer',
    () => {
      const c = setup();
      return { ...c, obj: c.engine.optimizer };
    },
    { skip: ['addGradientRows'] /* @internal audit test aid (documented: --plant no-clip) */ },
  );
  await fuzzMethods(
    'DPOptimizer(mid-step)',
    () => {
      const c = setup();
      const b = c.engine.nextBatch();
      runMicro(c, b.microBatches);
      return { ...c, obj: c.engine.optimizer };
    },
    { skip: ['addGradientRows'] },
  );
  await fuzzMethods('PrivacyEngine(unset)', () => {
    const m = model();
    return { m, engine: new lib.PrivacyEngine(), obj: new lib.PrivacyEngine() };
  });
  await sequences(quick ? 20 : 120, 10);

  // Ledger and accountants.
  const ledgerOf = () => {
    const c = setup();
    const b = c.engine.nextBatch();
    runMicro(c, b.microBatches);
    c.engine.optimizer.step();
    return c.engine.privacyLedger;
  };
  const led = ledgerOf();
  await fuzzMethods('PrivacyLedger', () => ({
    m: model(),
    engine: {},
    obj: lib.PrivacyLedger.fromJSON(led.toJSON()),
  }));
  const json = led.toJSON();
  const tampered = [
    { ...json, records: [] },
    { ...json, records: json.records.slice(1) },
    { ...json, records: [...json.records, json.records[json.records.length - 1]] },
    JSON.parse(JSON.stringify(json).replace(/"noiseMultiplier":1/, '"noiseMultiplier":100')),
    JSON.stringify(json).slice(0, 100),
    { ...json, records: json.records.map((r) => ({ ...r, sampleRate: 1e-300 })) },
  ];
  for (let i = 0; i < tampered.length; i++)
    await attempt(`PrivacyLedger.fromJSON(tampered ${i})`, () =>
      lib.PrivacyLedger.fromJSON(tampered[i]),
    );
  const specs = [
    { noiseMultiplier: 1e-300, sampleRate: 1 },
    { noiseMultiplier: 1e300, sampleRate: 1e-300 },
    { noiseMultiplier: 1e-3, sampleRate: 1 },
    { noiseMultiplier: 0.3, sampleRate: 0.5, mechanism: 'discreteGaussian' },
    { noiseMultiplier: 1, sampleRate: 0.01, mechanism: 'x' },
    { noiseMultiplier: NaN, sampleRate: 0.01 },
  ];
  for (const kind of ['PldAccountant', 'RdpAccountant']) {
    const mk = () =>
      kind === 'PldAccountant'
        ? new lib.PldAccountant({ gridStep: 1e-2 })
        : new lib.RdpAccountant();
    await fuzzMethods(kind, () => ({
      m: model(),
      engine: {},
      obj: mk().step({ noiseMultiplier: 1, sampleRate: 0.01 }, 10),
    }));
    for (const s of specs)
      for (const n of [1, 2 ** 40, Number.MAX_SAFE_INTEGER]) {
        const a = mk();
        const r = await attempt(`${kind}.step(${JSON.stringify(s)}, ${n})`, () => a.step(s, n));
        if (!r.error) {
          await attempt(`${kind}.getEpsilon after ${JSON.stringify(s)} x${n}`, () =>
            a.getEpsilon(1e-300),
          );
          await attempt(`${kind}.getDelta after ${JSON.stringify(s)} x${n}`, () =>
            a.getDelta(1e300),
          );
        }
      }
    const j = mk().step({ noiseMultiplier: 1, sampleRate: 0.01 }, 10).toJSON();
    const bad = [
      { ...j, history: [{ ...j.history[0], steps: -1 }] },
      { ...j, history: [{ ...j.history[0], steps: 2 ** 60 }] },
      { ...j, parameters: { ...j.parameters, gridStep: 1e-300 } },
      { ...j, parameters: { ...j.parameters, orders: [1e9] } },
      { ...j, formatVersion: 99 },
      { ...j, history: 'x' },
    ];
    for (let i = 0; i < bad.length; i++)
      await attempt(`${kind}.fromJSON(bad ${i})`, () => lib[kind].fromJSON(bad[i]));
  }

  // RNG (every method; async ones with a detached or shrunk buffer while pending).
  const makeRng = () => ({
    m: model(),
    engine: {},
    obj: new kernels.Rng({ seed: new Uint8Array(32).fill(1) }),
  });
  await fuzzMethods('Rng', makeRng);
  {
    const rng = new kernels.Rng();
    const buf = new Float32Array(1 << 16);
    const p = rng.addGaussianNoiseAsync(buf, 1);
    await attempt('Rng.addGaussianNoiseAsync(detached while pending)', () => {
      structuredClone(buf.buffer, { transfer: [buf.buffer] });
      return p;
    });
    const ab = new ArrayBuffer(1 << 16, { maxByteLength: 1 << 17 });
    const rb = new Float32Array(ab);
    const p2 = (() => {
      try {
        return rng.addGaussianNoiseAsync(rb, 1);
      } catch (e) {
        return Promise.reject(e);
      }
    })();
    await attempt('Rng.addGaussianNoiseAsync(resizable shrunk while pending)', () => {
      if (ab.resizable) ab.resize(0);
      return p2;
    });
  }

  // Layers (wrong shapes, NaN, huge dims), optimizers, integer LoRA.
  const layers = {
    Linear: () => new lib.Linear(IN, 3, { seed: 1 }),
    LoraLinear: () =>
      new lib.LoraLinear(new lib.Linear(IN, 3, { seed: 1 }), { r: 2, alpha: 2, seed: 2 }),
    LayerNorm: () => new lib.LayerNorm(IN),
    Dropout: () => new lib.Dropout(0.5),
    Embedding: () => new lib.Embedding(10, IN),
    Sequential: () => model(),
  };
  for (const [name, mk] of Object.entries(layers)) {
    await fuzzMethods(name, () => ({ m: model(), engine: {}, obj: mk() }));
    const l = mk();
    const inputs = [
      new lib.Tensor(new Float32Array(3 * IN).fill(NaN), [3, IN]),
      new lib.Tensor(new Float32Array(3 * 7), [3, 7]),
      new lib.Tensor(new Float32Array(0), [0, IN]),
    ];
    for (const x of inputs) {
      await attempt(`${name}.forward(${x.shape})`, () => l.forward(x));
      await attempt(`${name}.backward(${x.shape})`, () => l.backward(x));
    }
  }
  for (const [name, mk] of Object.entries({
    SGD: (ps) => new lib.SGD(ps, { lr: 0.1, momentum: 0.9 }),
    Adam: (ps) => new lib.Adam(ps, { lr: 0.1 }),
    AdamW: (ps) => new lib.AdamW(ps, { lr: 0.1 }),
  })) {
    await fuzzMethods(name, () => {
      const m = model();
      for (const p of m.trainableParameters()) p.grad = new Float32Array(p.size).fill(NaN);
      return { m, engine: {}, obj: mk(m.trainableParameters()) };
    });
  }
  try {
    const plan = fixed.planIntegerLora({ inFeatures: 4, outFeatures: 2, rank: 2 });
    await fuzzMethods('IntegerLora', () => ({
      m: model(),
      engine: {},
      obj: new fixed.IntegerLora(plan),
    }));
  } catch (e) {
    await attempt('planIntegerLora(valid?)', () => {
      throw e;
    });
  }

  await trainerCalls();
  await fileCalls();
  process.stdout.write(JSON.stringify(stats) + '\n');
}
main().catch((e) => {
  process.stdout.write(JSON.stringify({ error: String(e && e.stack) }) + '\n');
  process.exitCode = 2;
});
