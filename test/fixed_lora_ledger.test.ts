import {
  IntegerLora,
  IntegerLoraCheckpoint,
  planIntegerLora,
  quantizeInput,
} from '../lib/kernels/fixed_lora';
import { Rng } from '../lib/kernels/rng';
import { RdpAccountant } from '../lib/accounting/accountant';
import { createHash } from 'crypto';
import { PrivacyLedger, canonicalJson } from '../lib/accounting/privacy_ledger';
import { DpLoraError } from '../lib/errors';
import {
  D_IN,
  HIDDEN,
  INPUT_SCALE,
  planOptions,
  randomBase,
  task,
} from './helpers/fixed_lora_task';

const data = task(300, D_IN, 7);
const x = quantizeInput(data.x, INPUT_SCALE);
const seeded = (b: number) => new Rng({ seed: new Uint8Array(32).fill(b) });
const snapshot = (m: IntegerLora) => ({
  a: Array.from(m.state.a),
  b: Array.from(m.state.b),
  head: Array.from(m.state.head),
  steps: m.state.steps,
});

describe('the integer step is charged in the privacy ledger (contract 7)', () => {
  test('every step is in the ledger as it ran, and the ledger spends exactly the plan', () => {
    const p = planIntegerLora(planOptions({ steps: 5 }));
    const m = new IntegerLora(p);
    expect(m.ledger).toBeNull();
    expect(m.report().epsilon).toBe(0);
    const rng = seeded(3);
    for (let t = 0; t < 5; t++) m.step(x, data.y, rng);
    const led = m.ledger!;
    expect(led.steps).toBe(5);
    const steps = led.records.filter((r) => r.kind === 'step');
    expect(steps).toHaveLength(5);
    for (const r of steps) {
      if (r.kind !== 'step') throw new Error('unreachable');
      expect(r.mechanism).toBe('discreteGaussian');
      expect(r.noiseMultiplier).toBe(p.noiseMultiplier);
      expect(r.sampleRate).toBe(Number(p.config.sampleNum) / 2 ** 32);
      expect(r.maxGradNorm).toBe(p.config.clipInt / 2 ** p.config.fracBits);
    }
    // The fixed seed is recorded; the ledger's epsilon is the plan's, and an independent RDP
    // accountant over the same five steps agrees.
    expect(led.reproducible).toBe(true);
    expect(led.genesis.targetEpsilon).toBe(8);
    const ref = new RdpAccountant().step(
      {
        noiseMultiplier: p.noiseMultiplier,
        sampleRate: p.sampleRate,
        mechanism: 'discreteGaussian',
      },
      5,
    );
    expect(led.epsilon()).toBeCloseTo(ref.getEpsilon(1e-5), 12);
    expect(Math.abs(led.epsilon() - p.epsilon)).toBeLessThan(1e-9 * p.epsilon);
    expect(led.epsilon()).toBeLessThanOrEqual(8);
    expect(m.report().steps).toBe(5);
    // A new RNG is a new key record.
    const m2 = new IntegerLora(planIntegerLora(planOptions({ steps: 3 })));
    m2.step(x, data.y, seeded(1));
    m2.step(x, data.y, new Rng());
    const keys = m2.ledger!.records.filter((r) => r.kind === 'key');
    expect(keys.map((k) => (k.kind === 'key' ? [k.source, k.fromStep] : []))).toEqual([
      ['fixed-seed', 0],
      ['os-entropy', 1],
    ]);
  });

  test('the step is charged before the device runs it: a failing step stays charged', () => {
    const p = planIntegerLora(planOptions({ steps: 5 }));
    const m = new IntegerLora(p);
    m.step(x, data.y, seeded(2));
    const before = snapshot(m);
    (m.config as { loss: number }).loss = 7; // the device rejects the configuration
    expect(() => m.step(x, data.y, seeded(2))).toThrow();
    expect(m.ledger!.steps).toBe(2); // charged
    expect(snapshot(m)).toEqual(before); // not applied
    (m.config as { loss: number }).loss = 0;
    expect(() => m.step(x, data.y, seeded(2))).toThrow(/cannot continue/);
  });

  test('a refused step changes nothing: step budget, epsilon budget, lowered noise', () => {
    const p = planIntegerLora(planOptions({ steps: 2 }));
    const m = new IntegerLora(p);
    const rng = seeded(4);
    m.step(x, data.y, rng);
    m.step(x, data.y, rng);
    const head = m.ledger!.head;
    const before = snapshot(m);
    const pos = rng.getState().position;
    expect(() => m.step(x, data.y, rng)).toThrow(/privacy budget exhausted/);
    // Past the epsilon budget even when the device's step budget is raised.
    m.config.maxSteps = 10n;
    let err: unknown;
    try {
      m.step(x, data.y, rng);
    } catch (e) {
      err = e;
    }
    expect((err as DpLoraError).code).toBe('ERR_DPLORA_BUDGET_EXCEEDED');
    expect(m.ledger!.head).toBe(head);
    expect(m.ledger!.length).toBe(4);
    expect(snapshot(m)).toEqual(before);
    expect(rng.getState().position).toBe(pos);
    // Noise lowered after planning: refused, nothing charged.
    const q = planIntegerLora(planOptions({ steps: 3 }));
    const m3 = new IntegerLora(q);
    q.config.sigmaSqNum = q.config.sigmaSqNum / 2n;
    expect(() => m3.step(x, data.y, seeded(5))).toThrow(/sigmaSq was lowered/);
    expect(m3.ledger).toBeNull();
    expect(() => new IntegerLora(q)).toThrow(/understate/);
  });

  test('save/restore carries the ledger and continues bit for bit; tampering is refused', () => {
    const opts = planOptions({ steps: 4 });
    const m = new IntegerLora(planIntegerLora(opts));
    const rng = seeded(6);
    m.step(x, data.y, rng);
    m.step(x, data.y, rng);
    const saved = m.saveState();
    const rngState = rng.getState();
    m.step(x, data.y, rng);
    const r = IntegerLora.restore(planIntegerLora(opts), JSON.parse(JSON.stringify(saved)));
    expect(r.ledger!.steps).toBe(2);
    expect(r.ledger!.head).toBe(PrivacyLedger.fromJSON(saved.ledger).head);
    r.step(x, data.y, Rng.fromState(rngState));
    expect(Array.from(r.state.a)).toEqual(Array.from(m.state.a));
    expect(Array.from(r.state.head)).toEqual(Array.from(m.state.head));
    // Resuming with a new stream is a key record, then the step.
    expect(r.ledger!.records.slice(-2).map((x) => x.kind)).toEqual(['key', 'step']);

    const fresh = () => JSON.parse(JSON.stringify(saved)) as IntegerLoraCheckpoint;
    const reseal = (c: IntegerLoraCheckpoint): IntegerLoraCheckpoint => {
      // The attacker recomputes the checkpoint checksum (it is not a signature).
      const { format, version, config, state, ledger } = c;
      c.checksum = createHash('sha256')
        .update(canonicalJson({ format, version, config, state, ledger }))
        .digest('hex');
      return c;
    };
    const restore = (c: IntegerLoraCheckpoint) => () =>
      IntegerLora.restore(planIntegerLora(opts), c);
    // A flipped weight without resealing: the checksum.
    const t1 = fresh();
    t1.state.a = Buffer.from(
      Buffer.from(t1.state.a, 'base64').map((v, i) => (i ? v : v ^ 1)),
    ).toString('base64');
    expect(restore(t1)).toThrow(/checksum/);
    // Rewound: a step record dropped from the ledger (resealed): the chain breaks.
    const t2 = fresh();
    t2.ledger.records.splice(2, 1);
    expect(restore(reseal(t2))).toThrow(/ledger is broken/);
    // Counter rewound (resealed): the ledger's steps no longer match.
    const t3 = fresh();
    t3.state.steps = '1';
    expect(restore(reseal(t3))).toThrow(/ledger charged 2 steps/);
    // Another plan (other budget): refused.
    expect(() =>
      IntegerLora.restore(planIntegerLora({ ...opts, targetEpsilon: 4 }), fresh()),
    ).toThrow(DpLoraError);
    // Another configuration (other base): refused.
    expect(() =>
      IntegerLora.restore(
        planIntegerLora({ ...opts, baseWeight: randomBase(HIDDEN, D_IN, 5) }),
        fresh(),
      ),
    ).toThrow(/another configuration/);
  });
});
