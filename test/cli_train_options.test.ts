import {
  parseSeed,
  resolveTrainConfig,
  defaultDelta,
  describeLr,
  OptionError,
  TRAIN_DEFAULTS,
} from '../lib/cli/train_options';
import { extractTensors, restoreTensors } from '../lib/trainer/state';
import { formatCliError } from '../lib/cli/main';
import { parseSafetensors, serializeSafetensors, StTensorInput } from '../lib/io/safetensors';

describe('train options', () => {
  test('defaults', () => {
    const c = resolveTrainConfig({});
    expect(c).toMatchObject({
      targetEpsilon: 8,
      epochs: 10,
      batchSize: 128,
      rank: 8,
      alpha: 16,
      method: 'vanilla',
      accountant: 'pld',
      clip: 1,
      baseline: true,
    });
    expect(c.seed).toBeUndefined();
    expect(c.delta).toBeUndefined();
    expect(TRAIN_DEFAULTS.dim).toBe(4096);
    expect(resolveTrainConfig({ rank: '4' }).alpha).toBe(8);
    expect(c.baseDtype).toBeUndefined(); // fp32
    expect(resolveTrainConfig({ baseDtype: 'bf16' }).baseDtype).toBe('bf16');
    expect(resolveTrainConfig({ baseDtype: 'fp32' }).baseDtype).toBe('fp32');
    expect(c.lrSchedule).toBeUndefined(); // constant lr, as before the option existed
  });

  test('--lr-schedule and --warmup: stored for the trainer, printed with the lr', () => {
    const lin = resolveTrainConfig({ lrSchedule: 'linear', warmup: '0.06', lr: '0.003' });
    expect(lin.lrSchedule).toEqual({ name: 'linear', warmup: 0.06 });
    expect(describeLr(lin)).toBe('lr 0.003, linear, warmup 0.06');
    expect(resolveTrainConfig({ lrSchedule: 'cosine' }).lrSchedule).toEqual({
      name: 'cosine',
      warmup: 0,
    });
    // --warmup alone warms up to a constant lr.
    expect(resolveTrainConfig({ warmup: '1' }).lrSchedule).toEqual({ name: 'constant', warmup: 1 });
    expect(describeLr(resolveTrainConfig({}))).toBe('lr 0.01');
  });

  test('delta default is min(1e-5, 1/(10 N)) and below 1/N', () => {
    expect(defaultDelta(2242)).toBe(1e-5);
    expect(defaultDelta(1e6)).toBeCloseTo(1e-7, 20);
    for (const n of [10, 1000, 1e7]) expect(defaultDelta(n)).toBeLessThan(1 / n);
  });

  test('seed parsing: decimal, 0x-hex, bare hex; canonical hex text', () => {
    expect(parseSeed('42')).toEqual({ value: 42n, text: '0x2a' });
    expect(parseSeed('0xC0FFEE').value).toBe(0xc0ffeen);
    expect(parseSeed('deadbeef').value).toBe(0xdeadbeefn);
    expect(parseSeed('  7 ').value).toBe(7n);
    expect(() => parseSeed('12z')).toThrow(OptionError);
    expect(() => parseSeed('')).toThrow(/--seed/);
    expect(() => parseSeed('0x1' + '0'.repeat(64))).toThrow(/256 bits/);
  });

  test.each([
    [{ epsilon: '0' }, /--epsilon: must be a positive number/],
    [{ epsilon: 'abc' }, /--epsilon/],
    [{ delta: '1' }, /--delta: must be in \(0, 1\)/],
    [{ batchSize: '2.5' }, /--batch-size: must be a positive integer/],
    [{ rank: '-3' }, /--rank/],
    [{ method: 'lora' }, /--method: must be ffa or vanilla/],
    [{ accountant: 'gdp' }, /--accountant: must be pld or rdp/],
    [{ publicData: 'x.csv' }, /--public-data: needs --data/],
    [{ limit: '5' }, /--limit: must be at least 20/],
    [{ lr: 'Infinity' }, /--lr/],
    [{ baseDtype: 'fp16' }, /--base-dtype: must be fp32 or bf16/],
    [{ lrSchedule: 'step' }, /--lr-schedule: must be constant, linear or cosine/],
    [{ warmup: '1.5' }, /--warmup: must be a fraction/],
    [{ warmup: '-0.1' }, /--warmup: must be a fraction/],
    [{ warmup: ' ' }, /--warmup: must be a fraction/],
    [{ warmup: 'NaN' }, /--warmup: must be a fraction/],
  ])('rejects %p', (raw, re) => {
    expect(() => resolveTrainConfig(raw as any)).toThrow(re);
  });
});

describe('engine state <-> checkpoint tensors', () => {
  test('round trip through safetensors keeps every tensor and the JSON', () => {
    const state = {
      step: 3,
      params: { 'fc1.lora_A': { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, -0]) } },
      optimizer: {
        slots: {
          'fc1.lora_A': { m: new Float32Array([0.5, 0, 0, 0, 0, 1]), v: new Float32Array(6) },
        },
      },
      list: [new Float32Array([7]), { x: 1 }],
      skip: undefined,
    };
    const tensors: Record<string, StTensorInput> = {};
    const json = JSON.parse(JSON.stringify(extractTensors(state, tensors)));
    expect(Object.keys(tensors).sort()).toEqual([
      'list.0',
      'optimizer.slots.fc1.lora_A.m',
      'optimizer.slots.fc1.lora_A.v',
      'params.fc1.lora_A.data',
    ]);
    expect(json.params['fc1.lora_A']).toEqual({
      shape: [2, 3],
      data: { $tensor: 'params.fc1.lora_A.data' },
    });
    const back = restoreTensors(
      json,
      parseSafetensors(serializeSafetensors(tensors)).tensors,
    ) as any;
    expect(Array.from(back.params['fc1.lora_A'].data)).toEqual([1, 2, 3, 4, 5, -0]);
    expect(Object.is(back.params['fc1.lora_A'].data[5], -0)).toBe(true);
    expect(back.optimizer.slots['fc1.lora_A'].m).toBeInstanceOf(Float32Array);
    expect(back.list[1]).toEqual({ x: 1 });
    expect('skip' in back).toBe(false);
    expect(() => restoreTensors({ a: { $tensor: 'missing' } }, new Map())).toThrow(/missing/);
    expect(() => extractTensors({ a: new Float64Array(1) }, {})).toThrow(/only Float32Array/);
  });
});

describe('CLI error line', () => {
  test('a dp-lora error prints its message and code; others their message', () => {
    let err: unknown;
    try {
      resolveTrainConfig({ rank: '1e9' });
    } catch (e) {
      err = e;
    }
    expect(formatCliError(err)).toBe(
      'dp-lora: --rank: must be at most 256, got "1e9" [ERR_DPLORA_INVALID_ARGUMENT]',
    );
    expect(formatCliError(new Error('boom'))).toBe('dp-lora: boom');
    expect(formatCliError('odd')).toBe('dp-lora: odd');
  });
});
