/**
 * Hostile-call fuzzing of instance methods (issue 10, section 4): test/scripts/
 * fuzz_methods_child.js builds valid instances (engine, DP optimizer, trainer, ledger,
 * accountants, RNG, layers, optimizers, integer LoRA, hostile files) and calls every public
 * method with hostile arguments and in hostile orders, in a child process. Fails on a crash or
 * hang, on an error that is not a DpLoraError with a stable code (documented exceptions: the
 * hostile input's own error, Node's file-system errors), on a call over 20 s, and on any call
 * that changed the model's parameters without the privacy ledger growing. Plus regression
 * tests for what it found.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { computeRdp } from '../lib/accounting/rdp';
import { PrivacyLedger } from '../lib/accounting/privacy_ledger';
import { RdpAccountant } from '../lib';
import { makeData, makeModel, quiet, snapshot, trainStep } from './helpers/dp_setup';
import { SGD } from '../lib/optim';
import { Dropout, Embedding, LayerNorm, Linear, LoraLinear } from '../lib/nn';
import { PrivacyEngine } from '../lib/privacy';

const root = path.resolve(__dirname, '..');

/**
 * Findings known and NOT fixed here (in the trainer, helper h10a's area; reported to the lead):
 * a TypeError when the user's loss function returns no gradient tensor.
 * Each entry: call-name pattern and reason pattern. Anything else fails the test.
 */
// Known untyped throws (none left: a loss returning { grad: null } is now refused by name).
const KNOWN: [RegExp, RegExp][] = [];

interface Finding {
  name: string;
  reason: string;
}

test('no instance method crashes, hangs, throws untyped errors or updates without a charge', () => {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-fuzzm-'));
  try {
    const r = spawnSync(
      process.execPath,
      [
        '--max-old-space-size=4096',
        path.join(__dirname, 'scripts', 'fuzz_methods_child.js'),
        root,
        'quick',
      ],
      { cwd, encoding: 'utf8', timeout: 280_000, maxBuffer: 1 << 28 },
    );
    const lastCall = r.stderr.trim().split('\n').pop();
    expect({ status: r.status, signal: r.signal, lastCall }).toEqual({
      status: 0,
      signal: null,
      lastCall: expect.any(String),
    });
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      calls: number;
      findings: Finding[];
      slowest: { ms: number; name: string };
    };
    console.log(
      `instance-method fuzz: ${out.calls} calls, slowest ${out.slowest.ms} ms (${out.slowest.name})`,
    );
    expect(out.calls).toBeGreaterThan(1000);
    const unknown = out.findings.filter(
      (f) => !KNOWN.some(([n, why]) => n.test(f.name) && why.test(f.reason)),
    );
    expect(unknown).toEqual([]);
    // Privacy findings are never "known".
    expect(out.findings.filter((f) => /PRIVACY/.test(f.reason))).toEqual([]);
  } finally {
    fs.rmSync(cwd, { recursive: true, force: true });
  }
}, 300_000);

describe('regressions found by the fuzz', () => {
  test('loadStateDict of an older state cannot rewind an engine that has charged steps', () => {
    const data = makeData(20, 1, 5);
    const model = makeModel(1);
    const engine = new PrivacyEngine();
    engine.makePrivate({
      model,
      optimizer: new SGD(model.trainableParameters(), { lr: 0.5 }),
      dataset: 20,
      batchSize: 5,
      noiseMultiplier: 1,
      maxGradNorm: 1,
      accountant: 'rdp',
      delta: 1e-3,
      ...quiet(),
    });
    const before = engine.stateDict();
    trainStep(engine, model, data);
    const after = snapshot(model);
    const led = engine.privacyLedger.length;
    expect(() => engine.loadStateDict(before)).toThrow(
      expect.objectContaining({ code: 'ERR_DPLORA_LEDGER' }) as Error,
    );
    expect(snapshot(model)).toEqual(after); // nothing restored
    expect(engine.privacyLedger.length).toBe(led); // nothing rewound
    expect(engine.privacyLedger.steps).toBe(1);
    // A state that continues this engine's own ledger still loads.
    const later = engine.stateDict();
    expect(() => engine.loadStateDict(later)).not.toThrow();
    expect(engine.privacyLedger.steps).toBe(1);
  });
  test('RDP with tiny noise is bounded by alpha / (2 z^2) (was an internal error or minutes)', () => {
    for (const z of [1e-300, 1e-20, 1e-3]) {
      const orders = [1.5, 2, 32.5];
      const r = computeRdp({ sampleRate: 0.2, noiseMultiplier: z, steps: 1, orders });
      orders.forEach((a, i) => {
        expect(r[i]).toBeGreaterThan(0);
        expect(r[i]).toBeLessThanOrEqual(a / (2 * z * z));
      });
    }
    const eps = new RdpAccountant()
      .step({ sampleRate: 0.2, noiseMultiplier: 1e-300 }, 3)
      .getEpsilon(1e-5);
    expect(eps).toBe(Infinity);
  });
  test('PrivacyLedger.append and isPrefixOf name a bad argument', () => {
    const l = PrivacyLedger.create({
      accountant: 'rdp',
      parameters: new RdpAccountant().toJSON().parameters,
      delta: 1e-5,
      targetEpsilon: null,
      keySource: 'os-entropy',
    });
    for (const bad of [undefined, null, 3])
      expect(() => l.append(bad as never)).toThrow(
        expect.objectContaining({ code: 'ERR_DPLORA_INVALID_ARGUMENT' }) as Error,
      );
    expect(() => l.isPrefixOf({} as never)).toThrow(
      expect.objectContaining({ code: 'ERR_DPLORA_INVALID_ARGUMENT' }) as Error,
    );
  });
  test('layers name a non-Tensor input, a bad record context and a bad LoRA weight', () => {
    const bad = expect.objectContaining({ code: 'ERR_DPLORA_INVALID_ARGUMENT' }) as Error;
    const lora = new LoraLinear(new Linear(4, 3, { seed: 1 }), { r: 2, alpha: 2, seed: 2 });
    const layers = [
      new Linear(4, 3),
      lora,
      new LayerNorm(4),
      new Dropout(0.5),
      new Embedding(5, 4),
    ];
    for (const l of layers) {
      for (const x of [undefined, null, { shape: [1, 4], data: [] }])
        expect(() => l.forward(x as never)).toThrow(bad);
      expect(() => l.setRecordContext(undefined as never)).toThrow(bad);
    }
    expect(() => {
      lora.loraA = [1, 2] as never;
    }).toThrow(bad);
    expect(() => {
      lora.loraB = null as never;
    }).toThrow(bad);
  });
});
