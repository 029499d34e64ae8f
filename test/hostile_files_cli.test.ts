/**
 * Hostile files and command-line values: saved adapters (`dp-lora predict --adapter`), user
 * data (`--data`), and numeric options. Each case gets a typed error naming the file, field or
 * option, never a crash, a hang, a huge allocation or a silently wrong prediction.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DpLoraError, ErrorCode, InvalidArgumentError } from '../lib/errors';
import { parseSafetensors } from '../lib/io/safetensors';
import {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  PEFT_PREFIX,
  PRIVACY_REPORT_FILE,
  decodeAdapter,
  encodeAdapter,
  loadAdapter,
  loadPrivacyReport,
  saveAdapter,
} from '../lib/io/peft_adapter';
import { predictWithAdapter } from '../lib/cli/predict';
import { defaultUseLiteDir } from '../lib/models/use_lite/model';
import { readTfjsWeights } from '../lib/models/use_lite/weights';
import {
  checkLoraSettings,
  loraClassifier,
  startBlockFor,
  useLiteAdapter,
} from '../lib/models/use_lite/finetune';
import { loraModules } from '../lib/nn/lora_modules';
import {
  DataFormatError,
  MAX_CSV_FIELDS,
  loadUserData,
  parseCsv,
  parseCsvData,
  parseJsonl,
} from '../lib/data/user_data';
import { integerOption, numberOption } from '../lib/cli/format';
import { positiveInt, positiveNumber, resolveTrainConfig } from '../lib/cli/train_options';
import { useLiteRawOptions } from '../lib/cli/train_use_lite';
import { runAudit } from '../lib/audit';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-hostile-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The error `f` throws (fails the test if it returns). */
function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error');
}

function expectCode(f: () => unknown, code: string, message: RegExp): void {
  const e = thrown(f);
  expect(e).toBeInstanceOf(DpLoraError);
  expect((e as DpLoraError).code).toBe(code);
  expect((e as Error).message).toMatch(message);
}

const HEADER = (b: Buffer) => Number(b.readBigUInt64LE(0));
/** Safetensors bytes with the header JSON rewritten by `edit`. */
function editHeader(buf: Buffer, edit: (h: Record<string, Record<string, unknown>>) => void) {
  const n = HEADER(buf);
  const h = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<
    string,
    Record<string, unknown>
  >;
  edit(h);
  const json = Buffer.from(JSON.stringify(h));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, buf.subarray(8 + n)]);
}

describe('safetensors and adapter files', () => {
  const small = () =>
    encodeAdapter({
      config: {
        peft_type: 'LORA',
        r: 1,
        lora_alpha: 2,
        target_modules: ['fc'],
        use_rslora: false,
        lora_dropout: 0,
        bias: 'none',
        task_type: null,
        base_model_name_or_path: null,
        modules_to_save: null,
        inference_mode: true,
      },
      loras: [
        {
          path: 'fc',
          loraA: new Float32Array([1, 2]),
          loraB: new Float32Array([3, 4, 5]),
          r: 1,
          inDim: 2,
          outDim: 3,
        },
      ],
      extra: {},
    });

  test('a dtype named after an Object.prototype key is an unsupported dtype', () => {
    const { weights } = small();
    const key = `${PEFT_PREFIX}fc.lora_A.weight`;
    for (const dtype of ['toString', '__proto__', 'constructor']) {
      const bad = editHeader(weights, (h) => {
        h[key].dtype = dtype;
      });
      expectCode(
        () => parseSafetensors(bad, 'w.safetensors'),
        ErrorCode.FileFormat,
        new RegExp(`unsupported dtype "${dtype}"`),
      );
    }
  });

  test('NaN or infinite weights are refused, naming the tensor', () => {
    const { configJson, weights } = small();
    const n = HEADER(weights);
    for (const v of [NaN, Infinity, -Infinity]) {
      const bad = Buffer.from(weights);
      bad.writeFloatLE(v, 8 + n + 4); // the second value of lora_A
      expectCode(
        () => decodeAdapter(configJson, bad, 'ad'),
        ErrorCode.FileFormat,
        /tensor "base_model\.model\.fc\.lora_A\.weight" holds a non-finite value/,
      );
    }
  });

  test('a folder, not a file, in place of the adapter files is a typed error', () => {
    const { configJson, weights } = small();
    const dir = path.join(tmp, 'dirs');
    fs.mkdirSync(path.join(dir, ADAPTER_CONFIG_FILE), { recursive: true });
    fs.writeFileSync(path.join(dir, ADAPTER_WEIGHTS_FILE), weights);
    expectCode(() => loadAdapter(dir), ErrorCode.FileFormat, /adapter_config\.json/);
    fs.rmSync(path.join(dir, ADAPTER_CONFIG_FILE), { recursive: true });
    fs.writeFileSync(path.join(dir, ADAPTER_CONFIG_FILE), configJson);
    fs.rmSync(path.join(dir, ADAPTER_WEIGHTS_FILE));
    fs.mkdirSync(path.join(dir, ADAPTER_WEIGHTS_FILE));
    expectCode(() => loadAdapter(dir), ErrorCode.FileFormat, /adapter_model\.safetensors/);
    fs.mkdirSync(path.join(dir, PRIVACY_REPORT_FILE));
    expectCode(() => loadPrivacyReport(dir), ErrorCode.FileFormat, /privacy_report\.json/);
  });
});

describe('dp-lora predict with a tampered USE-Lite adapter', () => {
  let base: string;
  const KA = `${PEFT_PREFIX}encoder.layers.1.attention.q_proj.lora_A.weight`;
  const KB = `${PEFT_PREFIX}encoder.layers.1.attention.q_proj.lora_B.weight`;
  const HW = `${PEFT_PREFIX}head.weight`;

  beforeAll(() => {
    const w = readTfjsWeights(path.join(defaultUseLiteDir(), 'model.json'));
    const lora = checkLoraSettings({
      rank: 4,
      alpha: 8,
      method: 'vanilla',
      targets: ['q_proj', 'v_proj'],
      layers: [1],
      seed: 0,
    });
    const clf = loraClassifier(w, 2, lora, undefined, undefined, startBlockFor(lora));
    for (const { module } of loraModules(clf)) {
      const b = module.loraB;
      for (let i = 0; i < b.length; i++) b[i] = 0.01 * Math.sin(i);
    }
    const hw = clf.head.weight.data;
    for (let i = 0; i < hw.length; i++) hw[i] = 0.05 * Math.cos(i);
    base = path.join(tmp, 'base');
    saveAdapter(base, useLiteAdapter(clf, lora, { classes: ['neg', 'pos'], maxTokens: 24 }));
  });

  let count = 0;
  /** A copy of the base adapter with its config and/or weights edited. */
  function variant(
    editConfig: (c: Record<string, unknown> & { dplora: Record<string, unknown> }) => void,
    editWeights?: (h: Record<string, Record<string, unknown>>) => void,
    rawWeights?: (b: Buffer) => Buffer,
  ): string {
    const dir = path.join(tmp, `v${count++}`);
    fs.mkdirSync(dir);
    const cfg = JSON.parse(fs.readFileSync(path.join(base, ADAPTER_CONFIG_FILE), 'utf8')) as Record<
      string,
      unknown
    > & { dplora: Record<string, unknown> };
    editConfig(cfg);
    fs.writeFileSync(path.join(dir, ADAPTER_CONFIG_FILE), JSON.stringify(cfg));
    let w: Buffer = fs.readFileSync(path.join(base, ADAPTER_WEIGHTS_FILE));
    if (editWeights) w = editHeader(w, editWeights);
    if (rawWeights) w = rawWeights(w);
    fs.writeFileSync(path.join(dir, ADAPTER_WEIGHTS_FILE), w);
    return dir;
  }
  const predict = (dir: string) => predictWithAdapter(dir, ['great film', 'awful movie']);

  test('the untouched adapter predicts finite probabilities', () => {
    const p = predict(variant(() => undefined));
    for (const x of p) {
      expect(x.probabilities.every(Number.isFinite)).toBe(true);
      expect(['neg', 'pos']).toContain(x.label);
    }
  });

  test('config values train never writes are refused, naming the field', () => {
    const cases: Array<
      [(c: Record<string, unknown> & { dplora: Record<string, unknown> }) => void, RegExp]
    > = [
      [(c) => (c.dplora.maxTokens = 0), /dplora\.maxTokens must be an integer in \[1, 128\]/],
      [(c) => (c.dplora.maxTokens = -5), /dplora\.maxTokens/],
      [(c) => (c.dplora.maxTokens = 2.5), /dplora\.maxTokens/],
      [(c) => (c.dplora.classes = ['a', 'a']), /dplora\.classes must list at least two distinct/],
      [(c) => (c.dplora.classes = ['', 'x']), /dplora\.classes/],
      [(c) => (c.dplora.classes = []), /dplora\.classes/],
      [(c) => (c.lora_alpha = -8), /lora_alpha must be positive/],
      [(c) => (c.lora_alpha = 0), /lora_alpha must be positive/],
      [(c) => (c.use_rslora = true), /use_rslora is not supported/],
    ];
    for (const [edit, message] of cases)
      expectCode(() => predict(variant(edit)), ErrorCode.FileFormat, message);
  });

  test('weights that overflow give an error, not NaN probabilities', () => {
    expectCode(
      () => predict(variant((c) => (c.lora_alpha = 1e308))),
      ErrorCode.FileFormat,
      /non-finite logits/,
    );
  });

  test('tensors missing, unexpected or of the wrong shape are refused', () => {
    const cases: Array<[string, ReturnType<typeof variant>, RegExp]> = [
      [
        'head transposed',
        variant(
          () => undefined,
          (h) => (h[HW].shape = [512, 2]),
        ),
        /the head does not match this classifier \(head\.weight must be \[2, 512\]/,
      ],
      [
        'q_proj pair missing',
        variant(
          () => undefined,
          undefined,
          (b) => dropTensors(b, [KA, KB]),
        ),
        /no LoRA weights for encoder\.layers\.1\.attention\.q_proj/,
      ],
      [
        'config adapts fc1 too',
        variant((c) => (c.target_modules = ['q_proj', 'v_proj', 'fc1'])),
        /no LoRA weights for encoder\.layers\.1\.ffn\.fc1/,
      ],
      [
        'config adapts layer 0 too',
        variant((c) => (c.dplora.loraLayers = [0, 1])),
        /no LoRA weights for encoder\.layers\.0\./,
      ],
      [
        'an unknown tensor',
        variant(
          () => undefined,
          undefined,
          (b) => addTensor(b, `${PEFT_PREFIX}encoder.layers.0.fc1.bias`),
        ),
        /unexpected tensors "encoder\.layers\.0\.fc1\.bias"/,
      ],
    ];
    for (const [name, dir, message] of cases) {
      const e = thrown(() => predict(dir));
      expect([name, e]).toEqual([name, expect.any(InvalidArgumentError)]);
      expect((e as Error).message).toMatch(message);
    }
  });

  /** Safetensors bytes without the named tensors (the data section re-tiled). */
  function dropTensors(buf: Buffer, names: string[]): Buffer {
    const st = parseSafetensors(buf);
    const parts: Buffer[] = [];
    const header: Record<string, unknown> = {};
    let off = 0;
    for (const [k, t] of st.tensors) {
      if (names.includes(k)) continue;
      const d = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      header[k] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + d.length] };
      parts.push(d);
      off += d.length;
    }
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    return Buffer.concat([len, json, ...parts]);
  }

  /** Safetensors bytes with a 4-value F32 tensor `name` appended. */
  function addTensor(buf: Buffer, name: string): Buffer {
    const n = HEADER(buf);
    const data = buf.subarray(8 + n);
    return Buffer.concat([
      editHeader(buf.subarray(0, 8 + n), (h) => {
        h[name] = { dtype: 'F32', shape: [4], data_offsets: [data.length, data.length + 16] };
      }),
      data,
      Buffer.alloc(16),
    ]);
  }
});

describe('user data files', () => {
  const write = (name: string, content: string | Buffer) => {
    const f = path.join(tmp, name);
    fs.writeFileSync(f, content);
    return f;
  };

  test('a duplicated text or label column is refused, not the first one taken', () => {
    expectCode(
      () => parseCsvData('text,label,label\na,x,y\nb,y,x\n', 'text', 'label', 'd.csv'),
      ErrorCode.DataFormat,
      /d\.csv: the header names the column "label" more than once/,
    );
    expectCode(
      () => parseCsvData('text,text,label\na,b,x\nb,c,y\n', 'text', 'label', 'd.csv'),
      ErrorCode.DataFormat,
      /the header names the column "text" more than once/,
    );
  });

  test('the same field for text and label is refused (the label would be in the text)', () => {
    expectCode(
      () => parseCsvData('text,label\na,x\nb,y\n', 'text', 'text', 'd.csv'),
      ErrorCode.DataFormat,
      /text field and the label field are both "text"/,
    );
    expectCode(
      () => parseJsonl('{"text":"a","label":"x"}\n', 'label', 'label', 'd.jsonl'),
      ErrorCode.DataFormat,
      /text field and the label field are both "label"/,
    );
  });

  test('invalid UTF-8 is refused, not replaced (two Latin-1 labels would merge)', () => {
    const f = write(
      'latin1.csv',
      Buffer.concat([
        Buffer.from('text,label\na,caf'),
        Buffer.from([0xe9]),
        Buffer.from('\nb,caf'),
        Buffer.from([0xe8]),
        Buffer.from('\n'),
      ]),
    );
    expectCode(() => loadUserData(f), ErrorCode.DataFormat, /latin1\.csv: not valid UTF-8/);
    // a UTF-8 BOM is still fine
    const g = write('bom.csv', '\ufefftext,label\r\na,x\r\nb,y\r\n');
    expect(loadUserData(g).classes).toEqual(['x', 'y']);
  });

  test('a megabyte header is not copied whole into the error message', () => {
    const e = thrown(() => parseCsvData('h'.repeat(1 << 20) + '\n', 'text', 'label', 'd.csv'));
    expect(e).toBeInstanceOf(DataFormatError);
    expect((e as Error).message.length).toBeLessThan(1000);
  });

  test('long fields and fields of many quote pairs parse whole', () => {
    // (Their speed is not timed here: the parser appends each run of ordinary characters, and
    // each quoted field, in one piece.)
    const big = 'x'.repeat(3_000_000);
    const rows = parseCsv(`text,label\n${big},a\nb,c\n`);
    expect(rows[1][0]).toBe(big);
    expect(rows[2]).toEqual(['b', 'c']);
    const quotes = '""'.repeat(3_000_000);
    const q = parseCsv(`text,label\n"${quotes}",a\n"a""b",c\n"x,""y""\nz",d\n`);
    expect(q[1][0]).toBe('"'.repeat(3_000_000));
    expect(q[2][0]).toBe('a"b');
    expect(q[3]).toEqual(['x,"y"\nz', 'd']);
  });

  test('too many fields is a typed error, not an exhausted heap', () => {
    // (The record cap, MAX_USER_DATA_RECORDS, is checked the same way; a file of 4 million
    // records is too heavy for a unit test.)
    expectCode(
      () => parseCsv('text,label\n' + ','.repeat(MAX_CSV_FIELDS), 'd.csv'),
      ErrorCode.DataFormat,
      new RegExp(`d\\.csv: more than ${MAX_CSV_FIELDS} fields`),
    );
  });
});

describe('numeric options: decimal notation only', () => {
  test.each(['0x10', '0b11', '0o7'])('%j is refused, naming the option', (v) => {
    for (const f of [
      () => numberOption('--sample-rate')(v),
      () => integerOption('--steps')(v),
      () => positiveNumber('lr', v),
      () => positiveInt('batch-size', v),
      () => resolveTrainConfig({ epochs: v }),
      () => useLiteRawOptions({ maxTokens: v }),
    ]) {
      const e = thrown(f);
      expect(e).toBeInstanceOf(InvalidArgumentError);
      expect((e as InvalidArgumentError).argument).toMatch(/^--/);
    }
  });

  test('fractions and epoch counts in hex or binary are refused too', () => {
    for (const f of [
      () => resolveTrainConfig({ warmup: '0x0' }),
      () => useLiteRawOptions({ publicWarmStart: '0b1' }),
    ]) {
      const e = thrown(f);
      expect(e).toBeInstanceOf(InvalidArgumentError);
      expect((e as InvalidArgumentError).argument).toMatch(/^--(warmup|public-warm-start)$/);
    }
  });

  test('decimal forms are still accepted', () => {
    expect(integerOption('--steps')(' 16 ')).toBe(16);
    expect(integerOption('--steps')('1e3')).toBe(1000);
    expect(numberOption('--delta')('.5')).toBe(0.5);
    expect(positiveNumber('lr', '+2.5')).toBe(2.5);
    expect(resolveTrainConfig({ epochs: '5.' }).epochs).toBe(5);
    expect(resolveTrainConfig({ warmup: '0.1' }).lrSchedule?.warmup).toBe(0.1);
    expect(useLiteRawOptions({ maxTokens: '16' }).ul.maxTokens).toBe(16);
    expect(useLiteRawOptions({ publicWarmStart: '2' }).ul.publicWarmStart).toBe(2);
  });
});

describe('dp-lora audit: canaries', () => {
  test('a canary count whose buffers cannot be allocated is refused up front', () => {
    const data = {
      X: new Float32Array(40),
      y: Int32Array.from({ length: 10 }, (_, i) => i % 2),
      n: 10,
      dim: 4,
      classes: 2,
    };
    for (const kind of ['gradient', 'input'] as const) {
      const e = thrown(() => runAudit({ epsilon: 1, canaries: 2 ** 31 - 1, kind, steps: 1, data }));
      expect(e).toBeInstanceOf(InvalidArgumentError);
      expect((e as InvalidArgumentError).argument).toBe('canaries');
    }
  });
});
