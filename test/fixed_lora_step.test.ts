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

describe('two-layer integer model (the float path architecture)', () => {
  const scaled = (w: Float32Array, k: number) => w.map((v) => v * k);
  const base2 = scaled(randomBase(HIDDEN, HIDDEN, 7), 4);
  const bias = (n: number, seed: number) => randomBase(1, n, seed).map((v) => v * 0.5);
  const twoLayer = (over: Partial<Parameters<typeof planOptions>[0]> = {}) =>
    planIntegerLora(
      planOptions({
        baseWeight: scaled(randomBase(HIDDEN, D_IN), 10),
        baseBias: bias(HIDDEN, 11),
        base2: { weight: base2, bias: bias(HIDDEN, 12) },
        head: { weight: scaled(randomBase(2, HIDDEN, 13), 4), bias: Float32Array.of(0.01, -0.01) },
        loraScale: 2,
        fracBits: 16,
        loss: 'crossEntropy',
        optimizer: 'momentum',
        learningRate: 1.5,
        ...over,
      }),
    );

  // Plain float64 forward of the same model from the dequantized configuration and state.
  function floatScores(p: ReturnType<typeof twoLayer>, xq: Int8Array, r: number): number[] {
    const c = p.config;
    const s = p.state;
    const one = 2 ** c.fracBits;
    const xs = Array.from(xq.subarray(r * c.dIn, (r + 1) * c.dIn), (v) => v * inputScale);
    const aUnit = one * inputScale * 2 ** (c.inShift ?? 0);
    const z = Array.from({ length: c.rank }, (_, k) =>
      xs.reduce((acc, v, j) => acc + (s.a[k * c.dIn + j] / aUnit) * v, 0),
    );
    const layer = (
      inp: number[],
      w: Int8Array,
      mult: Int32Array,
      sh: Int8Array,
      nIn: number,
      bq: Int32Array | undefined,
      B: Int32Array,
      zz: number[],
      inScale: number,
    ) =>
      Array.from({ length: c.hidden }, (_, i) => {
        let v = 0;
        for (let j = 0; j < nIn; j++) v += w[i * nIn + j] * inp[j];
        v *= (mult[i] / 2 ** sh[i]) * inScale;
        v += (bq ? bq[i] : 0) / one;
        for (let k = 0; k < c.rank; k++)
          v += ((2 ** (c.loraShift ?? 0) * B[i * c.rank + k]) / one) * zz[k];
        return Math.max(0, v);
      });
    const a1 = layer(
      Array.from(xq.subarray(r * c.dIn, (r + 1) * c.dIn)),
      c.w0,
      c.w0Mult,
      c.w0Shift,
      c.dIn,
      c.bias0,
      s.b,
      z,
      1 / one,
    );
    const z2 = Array.from({ length: c.rank }, (_, k) =>
      a1.reduce((acc, v, j) => acc + (s.a2![k * c.hidden + j] / one) * v, 0),
    );
    const a2 = layer(a1, c.w1!, c.w1Mult!, c.w1Shift!, c.hidden, c.bias1, s.b2!, z2, 1);
    return [0, 1].map(
      (o) =>
        a2.reduce((acc, v, i) => acc + (s.head[o * c.hidden + i] / one) * v, 0) + s.headB![o] / one,
    );
  }

  test('forward: the integer model predicts as its float64 reference wherever the margin is clear', () => {
    const p = twoLayer();
    // Non-zero LoRA B so that both adapters take part.
    let k = 1;
    p.state.b = p.state.b.map(() => ((k = (k * 48271) % 2147483647) % 4001) - 2000);
    p.state.b2 = p.state.b2!.map(() => ((k = (k * 48271) % 2147483647) % 4001) - 2000);
    const d = task(400, dIn, 21);
    const xq = quantizeInput(d.x, inputScale);
    const pred = new IntegerLora(p).predict(xq);
    let clear = 0;
    let classes = 0;
    for (let r = 0; r < 400; r++) {
      const s = floatScores(p, xq, r);
      classes += s[1] > s[0] ? 1 : 0;
      if (Math.abs(s[1] - s[0]) < 1e-3) continue;
      clear++;
      expect(pred[r]).toBe(s[1] > s[0] ? 1 : 0);
    }
    expect(clear).toBeGreaterThan(350);
    expect(classes).toBeGreaterThan(20); // both classes occur (the comparison can fail)
    expect(classes).toBeLessThan(380);
  });

  test('it learns at epsilon 8 with cross-entropy and momentum', () => {
    const train = task(1000, dIn, 1);
    const test = task(400, dIn, 2);
    const m = new IntegerLora(twoLayer());
    const xt = quantizeInput(test.x, inputScale);
    const acc = () => {
      const pr = m.predict(xt);
      return pr.reduce((s, v, i) => s + (v === test.y[i] ? 1 : 0), 0) / pr.length;
    };
    const before = acc();
    const rng = new Rng({ seed: new Uint8Array(32).fill(8) });
    const xq = quantizeInput(train.x, inputScale);
    for (let t = 0; t < 30; t++) m.step(xq, train.y, rng);
    expect(acc()).toBeGreaterThan(0.85);
    expect(acc() - before).toBeGreaterThan(0.2);
    expect(m.state.m).toHaveLength(4 * dIn + hidden * 4 + 4 * hidden + hidden * 4 + 2 * hidden + 2);
  });

  test('adversary: one record moves all parameters (both adapters, head, head bias) by at most lr C', () => {
    for (const fill of [127, -128, 3]) {
      const p = twoLayer({
        optimizer: 'sgd',
        learningRate: 1,
        loss: fill > 0 ? 'squared' : 'crossEntropy',
      });
      p.config.sigmaSqNum = 1n;
      p.config.sigmaSqDen = 1000n;
      p.config.sampleNum = 2n ** 32n;
      p.config.expectedBatch = 1;
      p.accounting = {
        ...p.accounting,
        noiseMultiplier: (Math.sqrt(1 / 1000) / p.config.clipInt) * (1 - 1e-9),
        targetEpsilon: null,
      };
      p.state.b = p.state.b.map((_, i) => (i % 5) * 30000);
      p.state.b2 = p.state.b2!.map((_, i) => (i % 3) * 40000 - 40000);
      p.state.head = p.state.head.map((v) => v * 30);
      const m = new IntegerLora(p);
      const all = () =>
        [m.state.a, m.state.b, m.state.a2!, m.state.b2!, m.state.head, m.state.headB!].flatMap(
          (v) => Array.from(v),
        );
      const before = all();
      m.step(
        new Int8Array(dIn).fill(fill),
        Int32Array.of(fill > 0 ? 0 : 1),
        new Rng({ seed: new Uint8Array(32).fill(9) }),
      );
      const after = all();
      let n2 = 0n;
      for (let i = 0; i < after.length; i++) n2 += BigInt(after[i] - before[i]) ** 2n;
      expect(n2).toBeLessThanOrEqual(BigInt(p.config.clipInt) ** 2n);
      expect(n2).toBeGreaterThan(0n);
    }
  });
});
