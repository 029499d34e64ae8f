import {
  planIntegerLora,
  IntegerLora,
  noiseCovers,
  quantizeInput,
} from '../lib/kernels/fixed_lora';
import { Rng } from '../lib/kernels/rng';
import { DpLoraError, InvalidArgumentError } from '../lib/errors';
import { calibrateNoiseMultiplier } from '../lib/accounting/calibrate';
import { loadAddon } from '../lib/native';
import {
  D_IN,
  HIDDEN,
  INPUT_SCALE,
  planOptions,
  randomBase,
  task,
} from './helpers/fixed_lora_task';

const dIn = D_IN;
const hidden = HIDDEN;
const inputScale = INPUT_SCALE;

const plan = (steps = 30) => planIntegerLora(planOptions({ steps }));

describe('integer LoRA step (host side of the FPU-less mode)', () => {
  test('the plan carries the accountant calibration exactly', () => {
    const p = plan();
    expect(p.config.sampleDen).toBe(2n ** 32n);
    expect(Number(p.config.sampleNum) / 2 ** 32).toBe(p.sampleRate);
    expect(Math.abs(p.sampleRate - 0.064)).toBeLessThan(2 ** -32);
    const cal = calibrateNoiseMultiplier({
      targetEpsilon: 8,
      targetDelta: 1e-5,
      sampleRate: p.sampleRate,
      steps: 30,
      mechanism: 'discreteGaussian',
      accountant: 'rdp',
    });
    expect(p.noiseMultiplier).toBe(cal.noiseMultiplier);
    expect(p.epsilon).toBeLessThanOrEqual(8);
    // sigma^2 = (z clipInt)^2 rounded up by 2^-40 relative: never below what is charged.
    const s2 = (p.noiseMultiplier * p.config.clipInt) ** 2;
    const got = Number(p.config.sigmaSqNum) / Number(p.config.sigmaSqDen);
    expect(got).toBeGreaterThanOrEqual(s2);
    expect(got / s2 - 1).toBeLessThan(1e-11);
    expect(noiseCovers(p.config, p.noiseMultiplier)).toBe(true);
    expect(noiseCovers(p.config, p.noiseMultiplier * (1 + 1e-10))).toBe(false);
    expect(p.accounting).toEqual({
      accountant: 'rdp',
      noiseMultiplier: p.noiseMultiplier,
      delta: 1e-5,
      targetEpsilon: 8,
    });
    expect(p.config.clipInt).toBe(4096);
    expect(p.config.maxSteps).toBe(30n);
    expect(p.config.expectedBatch).toBe(64);
  });

  test('per-channel requantization reproduces the float base within int8 error', () => {
    const base = randomBase(hidden, dIn);
    const p = plan();
    const c = p.config;
    for (let h = 0; h < hidden; h++) {
      let m = 0;
      for (let j = 0; j < dIn; j++) m = Math.max(m, Math.abs(base[h * dIn + j]));
      // one int8 unit times the multiplier equals (max|w| / 127) inputScale 2^f
      const real = (c.w0Mult[h] / 2 ** c.w0Shift[h]) * 127;
      expect(Math.abs(real / (m * inputScale * 2 ** c.fracBits) - 1)).toBeLessThan(1e-8);
      for (let j = 0; j < dIn; j++)
        expect(Math.abs((c.w0[h * dIn + j] * m) / 127 - base[h * dIn + j])).toBeLessThanOrEqual(
          m / 254 + 1e-7,
        );
    }
  });

  test('it learns at epsilon 8 and is deterministic for a fixed seed', () => {
    const train = task(1000, dIn, 1);
    const test = task(400, dIn, 2);
    const xTrain = quantizeInput(train.x, inputScale);
    const xTest = quantizeInput(test.x, inputScale);
    const acc = (m: IntegerLora): number => {
      const pred = m.predict(xTest);
      let ok = 0;
      for (let i = 0; i < pred.length; i++) ok += pred[i] === test.y[i] ? 1 : 0;
      return ok / pred.length;
    };
    const run = (): IntegerLora => {
      const m = new IntegerLora(plan());
      const rng = new Rng({ seed: new Uint8Array(32).fill(5) });
      let total = 0;
      for (let t = 0; t < 30; t++) total += m.step(xTrain, train.y, rng);
      // Poisson batches: mean 64 per step, 30 steps; 6 sd = 6 sqrt(30 * 64) ~ 263.
      expect(Math.abs(total - 1920)).toBeLessThan(263);
      return m;
    };
    const m0 = new IntegerLora(plan());
    const before = acc(m0);
    const m1 = run();
    const after = acc(m1);
    expect(after).toBeGreaterThan(0.85);
    expect(after - before).toBeGreaterThan(0.2);
    const m2 = run();
    expect(Array.from(m2.state.a)).toEqual(Array.from(m1.state.a));
    expect(Array.from(m2.state.head)).toEqual(Array.from(m1.state.head));
    expect(m2.state.position).toBe(m1.state.position);
  });

  test('refuses a step past the planned budget before drawing anything', () => {
    const train = task(100, dIn, 3);
    const x = quantizeInput(train.x, inputScale);
    const m = new IntegerLora(plan(2));
    const rng = new Rng({ seed: new Uint8Array(32).fill(1) });
    m.step(x, train.y, rng);
    m.step(x, train.y, rng);
    const a = Array.from(m.state.a);
    const pos = rng.getState().position;
    expect(() => m.step(x, train.y, rng)).toThrow(DpLoraError);
    try {
      m.step(x, train.y, rng);
    } catch (e) {
      expect((e as DpLoraError).code).toBe('ERR_DPLORA_BUDGET_EXCEEDED');
    }
    expect(Array.from(m.state.a)).toEqual(a);
    expect(rng.getState().position).toBe(pos);
    expect(m.stepsLeft).toBe(0n);
    // The device refuses too (the counter is in the C state), through the addon directly.
    const st = { ...m.state, a: m.state.a.slice() };
    const { key, nonce } = rng.getState();
    const hex = (h: string) => Uint8Array.from(Buffer.from(h, 'hex'));
    expect(() => loadAddon().fixedLoraStep(m.config, st, hex(key), hex(nonce), x, train.y)).toThrow(
      /budget is spent/,
    );
    expect(Array.from(st.a)).toEqual(a);
    // A rewound device counter no longer matches the ledger.
    m.state.steps = 0n;
    expect(() => m.step(x, train.y, rng)).toThrow(/ledger charged 2 steps/);
  });

  test('sign-momentum update: every parameter moves by exactly +-lr 2^f or 0 per step', () => {
    const p = planIntegerLora(
      planOptions({ steps: 3, learningRate: 1 / 256, optimizer: 'signMomentum' }),
    );
    expect(p.config.update).toBe(1);
    const m = new IntegerLora(p);
    const train = task(1000, dIn, 4);
    const head0 = Array.from(m.state.head);
    m.step(quantizeInput(train.x, inputScale), train.y, new Rng({ seed: new Uint8Array(32) }));
    const step = 2 ** p.config.fracBits / 256;
    let moved = 0;
    m.state.head.forEach((v, i) => {
      const d = Math.abs(v - head0[i]);
      expect(d === 0 || d === step).toBe(true);
      moved += d === step ? 1 : 0;
      // the step's sign is that of the momentum
      if (d === step)
        expect(Math.sign(head0[i] - v)).toBe(
          Math.sign(m.state.m![m.state.m!.length - head0.length + i]),
        );
    });
    expect(moved).toBeGreaterThan(head0.length / 2);
    expect(() =>
      new IntegerLora({ ...p, state: { ...p.state, m: undefined, steps: 0n } }).step(
        quantizeInput(train.x, inputScale),
        train.y,
        new Rng({ seed: new Uint8Array(32) }),
      ),
    ).toThrow(/state\.m/);
  });

  test('adversary: one record moves the parameters by at most lr * clipInt / expectedBatch', () => {
    // Noise made negligible (sigma^2 = 1/1000: P(sample != 0) < e^-400) so the update is the
    // clipped gradient itself; sampling rate 1 so the record is always in the batch.
    const p = plan();
    p.config.sigmaSqNum = 1n;
    p.config.sigmaSqDen = 1000n;
    // The ledger charges the tiny noise honestly (no epsilon budget: the step budget only).
    p.accounting = {
      ...p.accounting,
      noiseMultiplier: (Math.sqrt(1 / 1000) / p.config.clipInt) * (1 - 1e-9),
      targetEpsilon: null,
    };
    p.config.sampleNum = 2n ** 32n;
    p.config.expectedBatch = 1;
    p.config.lrNum = 1 << 16; // lr = 1
    const lrReal = p.config.lrNum / p.config.lrDen;
    for (const fill of [127, -128, 1]) {
      const m = new IntegerLora({
        ...p,
        state: {
          ...p.state,
          a: p.state.a.slice(),
          b: p.state.b.map((_, i) => (i % 3) * 9000),
          head: p.state.head.map((v) => v * 50),
        },
      });
      const before = [...m.state.a, ...m.state.b, ...m.state.head];
      const x = new Int8Array(dIn).fill(fill);
      m.step(x, Int32Array.of(fill > 0 ? 1 : 0), new Rng({ seed: new Uint8Array(32).fill(9) }));
      const after = [...m.state.a, ...m.state.b, ...m.state.head];
      let n2 = 0n;
      for (let i = 0; i < after.length; i++) n2 += BigInt(after[i] - before[i]) ** 2n;
      const bound = BigInt(Math.floor(lrReal * p.config.clipInt));
      expect(n2).toBeLessThanOrEqual(bound * bound);
      expect(n2).toBeGreaterThan(0n); // the record did move the model (the test can fail)
    }
  });

  test('bad arguments get typed errors naming them', () => {
    const p = plan();
    const m = new IntegerLora(p);
    const rng = new Rng({ seed: new Uint8Array(32) });
    expect(() => m.step(new Int8Array(5), new Int32Array(1), rng)).toThrow(InvalidArgumentError);
    expect(() => m.step(new Int8Array(dIn), Int32Array.of(7), rng)).toThrow(/y\[0\]/);
    expect(() =>
      planIntegerLora({
        ...{ baseWeight: new Float32Array(3) },
        dIn,
        hidden,
        classes: 2,
        rank: 4,
        inputScale,
        clipNorm: 1,
        targetEpsilon: 1,
        targetDelta: 1e-5,
        datasetSize: 10,
        sampleRate: 0.1,
        steps: 1,
        learningRate: 1,
      }),
    ).toThrow(/baseWeight/);
    expect(() => plan(0)).toThrow(/steps/);
  });
});
