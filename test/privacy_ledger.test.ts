/**
 * The privacy ledger (issue 10, section 1): an append-only hash chain from which steps, epsilon
 * and the report are derived; the engine charges every step to it before the update and refuses
 * any state whose parts disagree with it.
 */
import { RdpAccountant } from '../lib/accounting';
import { PrivacyLedger } from '../lib/accounting/privacy_ledger';
import type { LedgerRecord } from '../lib/accounting/privacy_ledger';
import { PrivacyEngine } from '../lib/privacy';
import type { PrivacyEngineState } from '../lib/privacy/privacy_engine';
import { makeData, makeModel, privateSgd, quiet, trainStep } from './helpers/dp_setup';
import { expectError } from './helpers/errors';

function engineOf(o: {
  seed?: number;
  noise?: number;
  target?: number;
  onLedgerRecord?: (r: LedgerRecord) => void;
}) {
  const model = makeModel(1);
  const engine = new PrivacyEngine();
  privateSgd(engine, model, 0.05, {
    dataset: 40,
    batchSize: 8,
    noiseMultiplier: o.noise ?? 1.5,
    maxGradNorm: 1,
    delta: 1e-5,
    targetEpsilon: o.target,
    accountant: 'rdp',
    seed: o.seed,
    onLedgerRecord: o.onLedgerRecord,
    ...quiet(),
  });
  return { model, engine };
}

const data = makeData(40, 1, 5);

describe('PrivacyLedger chain', () => {
  const mk = () => {
    const l = PrivacyLedger.create({
      accountant: 'rdp',
      parameters: new RdpAccountant().toJSON().parameters,
      delta: 1e-5,
      targetEpsilon: 3,
      keySource: 'os-entropy',
    });
    for (let i = 0; i < 5; i++)
      l.append({
        kind: 'step',
        mechanism: 'gaussian',
        noiseMultiplier: 1.2,
        sampleRate: 0.1,
        maxGradNorm: 1,
      });
    return l;
  };

  test('round trip; steps and epsilon equal an accountant fed the same steps', () => {
    const l = mk();
    const back = PrivacyLedger.fromJSON(JSON.parse(JSON.stringify(l.toJSON())));
    expect(back.steps).toBe(5);
    expect(back.head).toBe(l.head);
    const ref = new RdpAccountant().step({ noiseMultiplier: 1.2, sampleRate: 0.1 }, 5);
    expect(back.epsilon(1e-5)).toBe(ref.getEpsilon(1e-5));
    expect(back.report().private).toBe(true);
  });

  test('an edited, re-hashed, removed or reordered record is refused', () => {
    const json = mk().toJSON();
    const edit = structuredClone(json);
    (edit.records[3] as { noiseMultiplier: number }).noiseMultiplier = 100;
    expect(() => PrivacyLedger.fromJSON(edit)).toThrow(/hash/);
    // Re-hash the edited record: the next record no longer links to it.
    const { recordHash } = jest.requireActual('../lib/accounting/privacy_ledger');
    edit.records[3].hash = recordHash(edit.records[3]);
    expect(() => PrivacyLedger.fromJSON(edit)).toThrow(/records\[4\].*link/);
    const removed = structuredClone(json);
    removed.records.splice(3, 1);
    expect(() => PrivacyLedger.fromJSON(removed)).toThrow(/seq/);
    const swapped = structuredClone(json);
    [swapped.records[2], swapped.records[3]] = [swapped.records[3], swapped.records[2]];
    expect(() => PrivacyLedger.fromJSON(swapped)).toThrow(/records\[2\]/);
    try {
      PrivacyLedger.fromJSON(removed);
    } catch (e) {
      expect((e as { code: string }).code).toBe('ERR_DPLORA_LEDGER');
    }
  });

  test('prefix: a saved ledger is a prefix of the longer one of the same run only', () => {
    const l = mk();
    const early = PrivacyLedger.fromJSON({ ...l.toJSON(), records: l.records.slice(0, 4) });
    expect(early.isPrefixOf(l)).toBe(true);
    expect(l.isPrefixOf(early)).toBe(false);
    expect(mk().isPrefixOf(l)).toBe(false); // another run: another runId
  });
});

describe('engine charges the ledger', () => {
  test('a second nextBatch() without a step is refused', () => {
    const { engine } = engineOf({});
    engine.nextBatch();
    expectError(() => engine.nextBatch(), 'InvalidStateError', /not been stepped/);
  });

  test('each step is charged before the update and passed to onLedgerRecord', () => {
    const seen: LedgerRecord[] = [];
    const { engine, model } = engineOf({
      onLedgerRecord: (r) => {
        // The record arrives before the update: the ledger already holds it.
        seen.push(r);
      },
    });
    trainStep(engine, model, data);
    trainStep(engine, model, data);
    expect(seen.map((r) => r.kind)).toEqual(['step', 'step']);
    expect(seen.map((r) => (r as { step: number }).step)).toEqual([1, 2]);
    expect(engine.steps).toBe(2);
    // A failing persistence refuses the step before any parameter changes.
    const failing = engineOf({
      onLedgerRecord: () => {
        throw new Error('disk full');
      },
    });
    const before = failing.model.trainableParameters().map((p) => p.data.slice());
    expect(() => trainStep(failing.engine, failing.model, data)).toThrow(/disk full/);
    failing.model.trainableParameters().forEach((p, i) => expect(p.data).toEqual(before[i]));
  });

  test('a step whose update fails (non-finite) stays charged: steps and ledger agree', () => {
    const { engine, model } = engineOf({ noise: 1e300 });
    expect(() => trainStep(engine, model, data)).toThrow();
    expect(engine.steps).toBe(1);
    expect(engine.privacyLedger.steps).toBe(1);
    expect(engine.getEpsilon()).toBeGreaterThan(0);
  });

  test('a noise-free step is a ledger event: the report says not private, after a resume too', () => {
    const { engine, model } = engineOf({ noise: 0 });
    trainStep(engine, model, data);
    expect(engine.report().private).toBe(false);
    expect(engine.report().statement).toMatch(/NOT PRIVATE/);
    expect(engine.getEpsilon()).toBe(Infinity);
    const st = structuredClone(engine.stateDict());
    const other = engineOf({ noise: 0 });
    other.engine.loadStateDict(st);
    expect(other.engine.isPrivate).toBe(false);
    expect(other.engine.getEpsilon()).toBe(Infinity);
  });
});

describe('loadStateDict refuses parts that disagree', () => {
  const fourSteps = () => {
    const { engine, model } = engineOf({ seed: 3 });
    for (let i = 0; i < 4; i++) trainStep(engine, model, data);
    return structuredClone(engine.stateDict());
  };

  test('an empty (or shorter) ledger at step 4', () => {
    const st = fourSteps();
    const empty = engineOf({ seed: 3 }).engine.stateDict().ledger;
    const bad = { ...st, ledger: empty } as PrivacyEngineState;
    let err: unknown;
    try {
      engineOf({ seed: 3 }).engine.loadStateDict(bad);
    } catch (e) {
      err = e;
    }
    expect((err as { what: string }).what).toBe('ledger-steps');
    expect((err as Error).message).toMatch(/step 4 but its ledger records 0/);
  });

  test('a ledger from another run, as the journal, is refused; a longer one of the same run wins', () => {
    const st = fourSteps();
    const other = engineOf({ seed: 3 });
    for (let i = 0; i < 6; i++) trainStep(other.engine, other.model, data);
    expect(() =>
      engineOf({ seed: 3 }).engine.loadStateDict(structuredClone(st), {
        ledger: other.engine.ledger(),
      }),
    ).toThrow(/belongs to run/);
    // Same run, two steps charged after the state was saved: they stay charged.
    const { engine, model } = engineOf({ seed: 3 });
    for (let i = 0; i < 4; i++) trainStep(engine, model, data);
    const saved = structuredClone(engine.stateDict());
    trainStep(engine, model, data);
    trainStep(engine, model, data);
    const journal = engine.ledger();
    const r = engineOf({ seed: 3 });
    r.engine.loadStateDict(saved, { ledger: journal });
    expect(r.engine.steps).toBe(6);
    expect(r.engine.getEpsilon()).toBe(engine.getEpsilon());
    // ... and the seeded stream is not replayed over released steps: re-keyed from the OS.
    expect(r.engine.privacyLedger.records.at(-1)).toMatchObject({
      kind: 'key',
      source: 'os-entropy',
    });
  });

  test('the budget cannot be changed by resuming', () => {
    const st = fourSteps();
    const { engine } = engineOf({ seed: 3, target: 80 });
    expect(() => engine.loadStateDict(st)).toThrow(/budget/);
  });

  test('a seeded run stays reported as seeded, whatever its saved RNG state claims', () => {
    const st = fourSteps() as PrivacyEngineState & { rng: Record<string, unknown> };
    st.rng = { description: 'OS entropy', reproducible: false };
    const { engine } = engineOf({}); // an OS-keyed engine
    engine.loadStateDict(st);
    expect(engine.reproducible).toBe(true);
    expect(engine.report().keySource).toBe('fixed-seed');
  });
});

describe('budget guard', () => {
  test('uses the accountant: the steps it allows are exactly the steps that fit', () => {
    const target = 2;
    const { engine, model } = engineOf({ target });
    // Reference: plain loop over an independent accountant.
    const ref = new RdpAccountant();
    let fit = 0;
    while (
      ref.clone().step({ noiseMultiplier: 1.5, sampleRate: 0.2 }, 1).getEpsilon(1e-5) <= target
    ) {
      ref.step({ noiseMultiplier: 1.5, sampleRate: 0.2 });
      fit++;
    }
    let taken = 0;
    for (;;) {
      try {
        trainStep(engine, model, data);
        taken++;
      } catch (e) {
        expect((e as Error).name).toBe('PrivacyBudgetExceededError');
        break;
      }
    }
    expect(taken).toBe(fit);
    expect(engine.steps).toBe(fit);
  });
});
