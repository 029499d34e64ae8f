/**
 * The error hierarchy: every stable code is produced by at least one public call (with `code`,
 * `argument` and class checked), and public functions given bad arguments (wrong type, NaN,
 * negative, huge) throw an InvalidArgumentError naming the argument before doing any work.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  AdapterFormatError,
  CheckpointError,
  DataFormatError,
  DpLoraError,
  ErrorCode,
  InvalidArgumentError,
  InvalidStateError,
  LedgerFormatError,
  Linear,
  LayerNorm,
  LoraLinear,
  Module,
  Adam,
  ShuffleSampler,
  parseJsonl,
  crossEntropyLoss,
  mseLoss,
  LRScheduler,
  Parameter,
  Sequential,
  NativeLoadError,
  PerSampleGradError,
  PoissonSampler,
  PrivacyBudgetExceededError,
  PrivacyEngine,
  SGD,
  SafetensorsError,
  Tensor,
  accountantFromJSON,
  calibrateNoiseMultiplier,
  featurize,
  loadCheckpoint,
  hasCheckpoint,
  saveCheckpoint,
  loadAdapter,
  loadUserData,
  readSafetensors,
  loadPrivacyReport,
  parseCsv,
  parseSafetensors,
  saveAdapter,
  defaultAdapterConfig,
} from '../lib';
import { splitMicroBatches } from '../lib/privacy/samplers';
import { decodeAdapter } from '../lib/io/peft_adapter';
import { Rng, clipFactors, setThreads } from '../lib/api/kernels';
import { computeRdp } from '../lib/api/accounting';
import { fixed } from '../lib/api/fixed';
import { atomicWriteFile } from '../lib/io/atomic';
import type { AdapterData, CheckpointState, PrivacyReport } from '../lib';
import { loadAddonFrom } from '../lib/native';
import { MAX_ELEMENTS } from '../lib/validate';
import { impossibleBudgetEngine, privateSgd, quiet } from './helpers/dp_setup';
import { expectCode, expectInvalidArgument } from './helpers/errors';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-errors-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function adapter(): AdapterData {
  return {
    config: defaultAdapterConfig({ r: 1, lora_alpha: 2, target_modules: ['fc1'] }),
    loras: [
      {
        path: 'fc1',
        loraA: new Float32Array(3),
        loraB: new Float32Array(2),
        r: 1,
        inDim: 3,
        outDim: 2,
      },
    ],
    extra: {},
  };
}

const goodReport: PrivacyReport = {
  epsilon: 1,
  delta: 1e-5,
  noiseMultiplier: 1,
  maxGradNorm: 1,
  sampleRate: 0.01,
  steps: 10,
  accountant: 'pld',
  reproducibleSeed: false,
};

describe('every code has a public call that produces it', () => {
  test('the codes are the documented, distinct ERR_DPLORA_* strings', () => {
    const codes = Object.values(ErrorCode);
    expect(new Set(codes).size).toBe(codes.length);
    for (const c of codes) expect(c).toMatch(/^ERR_DPLORA_[A-Z_]+$/);
    // The README lists each code.
    const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
    for (const c of codes) expect(readme).toContain(c);
  });

  test('ERR_DPLORA_INVALID_ARGUMENT: saveAdapter with a string as the privacy report', () => {
    const dir = path.join(tmp, 'abc-report');
    let err: unknown;
    try {
      saveAdapter(dir, adapter(), 'abc' as unknown as PrivacyReport);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err).toBeInstanceOf(DpLoraError);
    expectCode(
      () => {
        throw err as Error;
      },
      'ERR_DPLORA_INVALID_ARGUMENT',
      { argument: 'privacyReport', message: /must be an object, got "abc"/ },
    );
    expect(fs.existsSync(dir)).toBe(false); // refused before anything was written
    // A report of the right type with a bad field names the field.
    expectInvalidArgument(
      () => saveAdapter(dir, adapter(), { ...goodReport, epsilon: Number.NaN }),
      'privacyReport.epsilon',
    );
    expectInvalidArgument(
      () => saveAdapter(dir, adapter(), { ...goodReport, steps: 1.5 }),
      'privacyReport.steps',
    );
    expectInvalidArgument(
      () =>
        saveAdapter(dir, adapter(), {
          ...goodReport,
          reproducibleSeed: 'no' as unknown as boolean,
        }),
      'privacyReport.reproducibleSeed',
    );
    expect(fs.existsSync(dir)).toBe(false);
    // The good report is written and read back.
    saveAdapter(dir, adapter(), goodReport);
    expect(loadPrivacyReport(dir)).toEqual(goodReport);
  });

  test('ERR_DPLORA_INVALID_STATE: the engine used out of order', () => {
    expectCode(() => new PrivacyEngine().getEpsilon(), ErrorCode.InvalidState, {
      message: /makePrivate first/,
    });
    expect(() => new PrivacyEngine().getEpsilon()).toThrow(InvalidStateError);
  });

  test('ERR_DPLORA_BUDGET_EXCEEDED: an impossible budget refuses the first batch', () => {
    const engine = impossibleBudgetEngine({ gridStep: 2e-3 });
    expectCode(() => engine.nextBatch(), ErrorCode.BudgetExceeded, { message: /budget/ });
    expect(() => engine.nextBatch()).toThrow(PrivacyBudgetExceededError);
  });

  test('ERR_DPLORA_PER_SAMPLE_GRAD: a trainable parameter without per-sample support', () => {
    class Scale extends Module {
      w = new Parameter(Float32Array.from([1]), [1]);
      ownParameters(): Array<[string, Parameter]> {
        return [['w', this.w]];
      }
      forward(x: Tensor): Tensor {
        return x;
      }
      backward(g: Tensor): Tensor {
        return g;
      }
    }
    const model = new Sequential(new Linear(3, 2), new Scale());
    const call = () =>
      privateSgd(new PrivacyEngine(), model, 0.1, {
        dataset: 10,
        batchSize: 2,
        noiseMultiplier: 1,
        maxGradNorm: 1,
        ...quiet(),
      });
    expectCode(call, ErrorCode.PerSampleGrad, { message: /no per-sample/ });
    expect(call).toThrow(PerSampleGradError);
  });

  test('ERR_DPLORA_CHECKPOINT: no checkpoint in a directory', () => {
    const empty = fs.mkdtempSync(path.join(tmp, 'ck-'));
    expectCode(() => loadCheckpoint(empty), ErrorCode.Checkpoint);
    expect(() => loadCheckpoint(empty)).toThrow(CheckpointError);
  });

  test('ERR_DPLORA_LEDGER: a ledger that is not JSON', () => {
    expectCode(() => accountantFromJSON('{nope'), ErrorCode.Ledger, {
      message: /invalid privacy ledger/,
    });
    expect(() => accountantFromJSON('{nope')).toThrow(LedgerFormatError);
  });

  test('ERR_DPLORA_NATIVE_LOAD: no addon where one is looked for', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'noaddon-'));
    expectCode(() => loadAddonFrom(dir, path.join(dir, 'none.node')), ErrorCode.NativeLoad, {
      message: /Tried:/,
    });
    expect(() => loadAddonFrom(dir)).toThrow(NativeLoadError);
  });

  test('ERR_DPLORA_DATA_FORMAT: an unterminated quoted CSV field', () => {
    expectCode(() => parseCsv('text,label\n"abc,1\n', 'x.csv'), ErrorCode.DataFormat, {
      message: /x\.csv/,
    });
    expect(() => parseCsv('"abc')).toThrow(DataFormatError);
  });

  test('ERR_DPLORA_FILE_FORMAT: a truncated safetensors file, a missing adapter, a bad report', () => {
    expectCode(() => parseSafetensors(Buffer.from([1, 2, 3])), ErrorCode.FileFormat);
    expect(() => parseSafetensors(Buffer.from([1, 2, 3]))).toThrow(SafetensorsError);
    const dir = path.join(tmp, 'bad-report');
    saveAdapter(dir, adapter(), goodReport);
    fs.writeFileSync(
      path.join(dir, 'privacy_report.json'),
      JSON.stringify({ ...goodReport, epsilon: 'low' }),
    );
    expectCode(() => loadPrivacyReport(dir), ErrorCode.FileFormat, {
      message: /report\.epsilon/,
    });
    expect(() => loadPrivacyReport(dir)).toThrow(AdapterFormatError);
  });

  test('ERR_DPLORA_NATIVE: the class carries the code (run-time native failures)', () => {
    // The entropy source and allocation failures cannot be provoked from a test; the
    // translation of a native Error into this code is checked in native_types.test.ts.
    const { NativeError } = jest.requireActual<typeof import('../lib/errors')>('../lib/errors');
    expect(new NativeError('osEntropy: failed').code).toBe('ERR_DPLORA_NATIVE');
  });
});

// Table: a public call with one bad argument, the argument it must name. Each call would
// otherwise allocate or work with the value.
type Case = [string, () => unknown, string];
const base = () => new Linear(4, 3);
const bad = {
  string: 'x' as unknown as number,
  nan: Number.NaN,
  negative: -1,
  huge: 1e12,
};
const cases: Case[] = [];
const u = (): never => undefined as never;
for (const [kind, v] of Object.entries(bad)) {
  cases.push(
    [`Linear inFeatures ${kind}`, () => new Linear(v, 3), 'inFeatures'],
    [`Linear outFeatures ${kind}`, () => new Linear(3, v), 'outFeatures'],
    [`LoraLinear r ${kind}`, () => new LoraLinear(base(), { r: v }), 'r'],
    [`setThreads ${kind}`, () => setThreads(v), 'threads'],
    [`featurize dim ${kind}`, () => featurize(['a'], { dim: v }), 'dim'],
    [`fixed.quantize fracBits ${kind}`, () => fixed.quantize(new Float32Array(2), v), 'fracBits'],
    [
      `computeRdp steps ${kind}`,
      () => computeRdp({ sampleRate: 0.1, noiseMultiplier: 1, steps: kind === 'huge' ? -v : v }),
      'steps',
    ],
    [
      `calibrateNoiseMultiplier targetEpsilon ${kind}`,
      () =>
        calibrateNoiseMultiplier({
          targetEpsilon: kind === 'huge' ? -v : v,
          targetDelta: 1e-5,
          sampleRate: 0.01,
          steps: 10,
        }),
      'targetEpsilon',
    ],
    [
      `Rng.addGaussianNoise std ${kind}`,
      () =>
        new Rng({ seed: new Uint8Array(32) }).addGaussianNoise(
          new Float32Array(2),
          kind === 'huge' ? 1e39 : v, // above the float32 range
        ),
      'std',
    ],
    [
      `PoissonSampler sampleRate ${kind}`,
      () =>
        new PoissonSampler({
          datasetSize: 10,
          sampleRate: v,
          rng: new Rng({ seed: new Uint8Array(32) }),
        }),
      'sampleRate',
    ],
    [
      `SGD lr ${kind}`,
      () => new SGD(base().trainableParameters(), { lr: kind === 'huge' ? Infinity : v }),
      'lr',
    ],
  );
  if (kind !== 'huge')
    cases.push([
      `clipFactors maxNorm ${kind}`,
      () => clipFactors(new Float64Array(2), v),
      'maxNorm',
    ]);
}
cases.push(
  ['Linear weight matrix too large', () => new Linear(2 ** 16, 2 ** 15), 'outFeatures'],
  ['LoraLinear r above min(in, out)', () => new LoraLinear(base(), { r: 4 }), 'r'],
  ['Tensor shape not integers', () => new Tensor(new Float32Array(2), [0.5, 4]), 'shape'],
  [
    'Tensor data not a Float32Array',
    () => new Tensor([1, 2] as unknown as Float32Array, [2]),
    'data',
  ],
  ['saveAdapter dir not a string', () => saveAdapter(42 as unknown as string, adapter()), 'dir'],
  ['loadAdapter dir not a string', () => loadAdapter(7 as unknown as string), 'dir'],
  ['loadCheckpoint root not a string', () => loadCheckpoint({} as unknown as string), 'root'],
  ['hasCheckpoint root not a string', () => hasCheckpoint(null as unknown as string), 'root'],
  [
    'saveCheckpoint state not an object',
    () => saveCheckpoint(path.join(tmp, 'ck'), 'x' as unknown as CheckpointState),
    'state',
  ],
  ['loadUserData file not a string', () => loadUserData(1 as unknown as string), 'file'],
  ['parseCsv text not a string', () => parseCsv(undefined as unknown as string), 'text'],
  ['parseSafetensors buf not bytes', () => parseSafetensors('x' as unknown as Buffer), 'buf'],
  ['readSafetensors file not a string', () => readSafetensors(3 as unknown as string), 'file'],
  [
    'atomicWriteFile target not a string',
    () => atomicWriteFile(3 as unknown as string, 'x'),
    'target',
  ],
  // Options objects of the wrong type.
  ['makePrivate options', () => new PrivacyEngine().makePrivate(u()), 'options'],
  [
    'makePrivateWithEpsilon options',
    () => new PrivacyEngine().makePrivateWithEpsilon(u()),
    'options',
  ],
  ['SGD options', () => new SGD([], u()), 'options'],
  ['Adam options', () => new Adam([], u()), 'options'],
  ['PoissonSampler options', () => new PoissonSampler(u()), 'options'],
  ['ShuffleSampler options', () => new ShuffleSampler(u()), 'options'],
  ['computeRdp opts', () => computeRdp(u()), 'opts'],
  ['LoraLinear options', () => new LoraLinear(base(), u()), 'options'],
  ['Linear options', () => new Linear(2, 2, 'x' as never), 'options'],
  ['splitMicroBatches indices', () => splitMicroBatches(u(), 2), 'indices'],
  ['parseJsonl text', () => parseJsonl(u(), 'a', 'b'), 'text'],
  ['crossEntropyLoss logits', () => crossEntropyLoss(u(), u()), 'logits'],
  ['mseLoss pred', () => mseLoss(u(), u()), 'pred'],
  ['LRScheduler optimizer', () => new LRScheduler(u(), u()), 'optimizer'],
  ['decodeAdapter configText', () => decodeAdapter(u(), u()), 'configText'],
  ['Rng seed too short', () => new Rng({ seed: new Uint8Array(3) }), 'seed'],
  ['LayerNorm features huge', () => new LayerNorm(2 ** 31), 'features'],
  ['Tensor.zeros shape huge', () => Tensor.zeros([2 ** 20, 2 ** 20]), 'shape'],
  ['Tensor.zeros shape NaN', () => Tensor.zeros([Number.NaN]), 'shape'],
  ['fixed.clipSum dim huge', () => fixed.clipSum(new Int32Array(0), 0, 1e12, 1), 'dim'],
  [
    'computeRdp orders huge',
    () => computeRdp({ sampleRate: 0.1, noiseMultiplier: 1, steps: 1, orders: [1e12] }),
    'orders',
  ],
);

describe('bad arguments are InvalidArgumentErrors naming the argument', () => {
  test('MAX_ELEMENTS keeps every bounded allocation inside a typed array', () => {
    expect(MAX_ELEMENTS).toBeLessThanOrEqual(2 ** 32 - 1);
  });

  test.each(cases)('%s', (_label, call, argument) => {
    expectInvalidArgument(call, argument);
  });
});

describe('InvalidArgumentError messages', () => {
  test.each([
    ['rank', 'must be an integer', 'rank: must be an integer'],
    ['a', 'must be a Float32Array', 'a: must be a Float32Array'],
    ['a', 'a must be a Float32Array', 'a must be a Float32Array'],
    ['r', 'LoraLinear: r must be <= 4', 'LoraLinear: r must be <= 4'],
    ['--rank', 'must be at most 256', '--rank: must be at most 256'],
    ['state.position', 'state.position must be < 2^64', 'state.position must be < 2^64'],
    ['x', 'max must be finite', 'x: max must be finite'],
  ])('argument %p, message %p -> %p', (argument, message, expected) => {
    const e = new InvalidArgumentError(argument, message);
    expect(e.message).toBe(expected);
    expect(e.argument).toBe(argument);
    expect(e.code).toBe('ERR_DPLORA_INVALID_ARGUMENT');
    expect(e.name).toBe('InvalidArgumentError');
  });
});
