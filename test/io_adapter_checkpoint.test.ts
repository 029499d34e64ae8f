import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PrivacyLedger } from '../lib/accounting/privacy_ledger';
import { RdpAccountant } from '../lib/accounting';
import { atomicWriteDir, atomicWriteFile } from '../lib/io/atomic';
import {
  AdapterData,
  defaultAdapterConfig,
  loadAdapter,
  loadPrivacyReport,
  saveAdapter,
  AdapterFormatError,
  PrivacyReport,
} from '../lib/io/peft_adapter';
import {
  fileSha256,
  sha256,
  loadCheckpoint,
  saveCheckpoint,
  hasCheckpoint,
} from '../lib/io/checkpoint';

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 16807) % 2147483647;
    a[i] = (s / 2147483647 - 0.5) * 3;
  }
  return a;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return (
    a.length === b.length &&
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    )
  );
}

/** Independent header decode: length prefix + JSON. */
function headerOf(file: string): any {
  const b = fs.readFileSync(file);
  const n = Number(b.readBigUInt64LE(0));
  return JSON.parse(b.subarray(8, 8 + n).toString('utf8'));
}

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-io-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

function sampleAdapter(): AdapterData {
  return {
    config: defaultAdapterConfig({
      r: 4,
      lora_alpha: 8,
      target_modules: ['layers.0', 'layers.1'],
      task_type: 'SEQ_CLS',
      modules_to_save: ['head'],
      dplora: { method: 'ffa' },
    }),
    loras: [
      { path: 'layers.0', r: 4, inDim: 6, outDim: 5, loraA: rand(24, 1), loraB: rand(20, 2) },
      { path: 'layers.1', r: 4, inDim: 5, outDim: 3, loraA: rand(20, 3), loraB: rand(12, 4) },
    ],
    extra: {
      'head.weight': { data: rand(6, 5), shape: [2, 3] },
      'head.bias': { data: rand(2, 6), shape: [2] },
    },
  };
}

const report: PrivacyReport = {
  epsilon: 7.9,
  delta: 1e-5,
  targetEpsilon: 8,
  noiseMultiplier: 0.9,
  maxGradNorm: 1,
  sampleRate: 0.01,
  steps: 300,
  accountant: 'rdp',
  reproducibleSeed: false,
};

describe('PEFT adapter', () => {
  test('save then load is bit-identical with PEFT key names and shapes', () => {
    const a = sampleAdapter();
    const dir = path.join(tmp, 'adapter');
    saveAdapter(dir, a, report);
    expect(fs.readdirSync(dir).sort()).toEqual([
      'adapter_config.json',
      'adapter_model.safetensors',
      'privacy_report.json',
    ]);
    const h = headerOf(path.join(dir, 'adapter_model.safetensors'));
    expect(h['base_model.model.layers.0.lora_A.weight']).toMatchObject({
      dtype: 'F32',
      shape: [4, 6],
    });
    expect(h['base_model.model.layers.0.lora_B.weight']).toMatchObject({
      dtype: 'F32',
      shape: [5, 4],
    });
    expect(h['base_model.model.head.weight']).toMatchObject({ dtype: 'F32', shape: [2, 3] });
    expect(h['base_model.model.head.bias']).toMatchObject({ dtype: 'F32', shape: [2] });
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({
      peft_type: 'LORA',
      r: 4,
      lora_alpha: 8,
      target_modules: ['layers.0', 'layers.1'],
      use_rslora: false,
      lora_dropout: 0,
      bias: 'none',
      dplora: { method: 'ffa' },
    });

    const b = loadAdapter(dir);
    expect(b.config).toEqual(a.config);
    expect(b.loras.map((l) => l.path)).toEqual(['layers.0', 'layers.1']);
    for (let i = 0; i < 2; i++) {
      expect(sameBits(b.loras[i].loraA, a.loras[i].loraA)).toBe(true);
      expect(sameBits(b.loras[i].loraB, a.loras[i].loraB)).toBe(true);
      expect([b.loras[i].r, b.loras[i].inDim, b.loras[i].outDim]).toEqual([
        a.loras[i].r,
        a.loras[i].inDim,
        a.loras[i].outDim,
      ]);
    }
    expect(sameBits(b.extra['head.weight'].data, a.extra['head.weight'].data)).toBe(true);
    expect(b.extra['head.weight'].shape).toEqual([2, 3]);
    expect(loadPrivacyReport(dir)).toEqual(report);
  });

  test('unknown config keys survive a load/save cycle', () => {
    const dir = path.join(tmp, 'a');
    saveAdapter(dir, sampleAdapter());
    const cfgPath = path.join(dir, 'adapter_config.json');
    const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
    cfg.layers_to_transform = null;
    cfg.revision = 'abc';
    fs.writeFileSync(cfgPath, JSON.stringify(cfg));
    const a = loadAdapter(dir);
    saveAdapter(path.join(tmp, 'b'), a);
    const cfg2 = JSON.parse(fs.readFileSync(path.join(tmp, 'b', 'adapter_config.json'), 'utf8'));
    expect(cfg2.revision).toBe('abc');
    expect(cfg2.layers_to_transform).toBeNull();
  });

  test('rejects inconsistent adapters', () => {
    const a = sampleAdapter();
    a.loras[0].loraA = new Float32Array(3);
    expect(() => saveAdapter(path.join(tmp, 'x'), a)).toThrow(
      /loraA must be a Float32Array of r\*inDim = 24/,
    );
    const b = sampleAdapter();
    b.loras[1].r = 2;
    expect(() => saveAdapter(path.join(tmp, 'x'), b)).toThrow(/rank 2 differs/);
    expect(fs.existsSync(path.join(tmp, 'x'))).toBe(false);

    const dir = path.join(tmp, 'ok');
    saveAdapter(dir, sampleAdapter());
    const cfgPath = path.join(dir, 'adapter_config.json');
    const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
    fs.writeFileSync(cfgPath, JSON.stringify({ ...cfg, r: 8 }));
    expect(() => loadAdapter(dir)).toThrow(AdapterFormatError);
    expect(() => loadAdapter(dir)).toThrow(/rank 4 differs from adapter_config r 8/);
    fs.writeFileSync(cfgPath, JSON.stringify({ ...cfg, peft_type: 'IA3' }));
    expect(() => loadAdapter(dir)).toThrow(/peft_type must be "LORA"/);
    fs.rmSync(cfgPath);
    expect(() => loadAdapter(dir)).toThrow(/no adapter_config.json/);
  });
});

describe('atomic writes', () => {
  test('a failing write leaves neither a partial file nor a temp file, and keeps the old content', () => {
    const target = path.join(tmp, 'f.bin');
    atomicWriteFile(target, 'old content');
    function* chunks() {
      yield Buffer.alloc(1000, 1);
      throw new Error('disk full (simulated)');
    }
    expect(() => atomicWriteFile(target, chunks())).toThrow(/simulated/);
    expect(fs.readFileSync(target, 'utf8')).toBe('old content');
    expect(fs.readdirSync(tmp)).toEqual(['f.bin']);
    // A fresh target is not created at all by a failing write.
    expect(() => atomicWriteFile(path.join(tmp, 'g.bin'), chunks())).toThrow(/simulated/);
    expect(fs.readdirSync(tmp)).toEqual(['f.bin']);
  });

  test('a failing directory write keeps the old directory intact', () => {
    const dir = path.join(tmp, 'd');
    atomicWriteDir(dir, { 'a.txt': 'A1', 'b.txt': 'B1' });
    function* bad() {
      yield 'partial';
      throw new Error('interrupted (simulated)');
    }
    expect(() => atomicWriteDir(dir, { 'a.txt': 'A2', 'b.txt': bad() })).toThrow(/simulated/);
    expect(fs.readFileSync(path.join(dir, 'a.txt'), 'utf8')).toBe('A1');
    expect(fs.readFileSync(path.join(dir, 'b.txt'), 'utf8')).toBe('B1');
    expect(fs.readdirSync(tmp)).toEqual(['d']);
    atomicWriteDir(dir, { 'c.txt': 'C' });
    expect(fs.readdirSync(dir)).toEqual(['c.txt']);
    expect(() => atomicWriteDir(dir, { '../evil': 'x' })).toThrow(/plain name/);
  });
});

describe('checkpoints', () => {
  const ledgerAt = (steps: number, runId?: string) => {
    const l = PrivacyLedger.create({
      accountant: 'rdp',
      parameters: new RdpAccountant().toJSON().parameters,
      delta: 1e-5,
      targetEpsilon: 8,
      keySource: 'os-entropy',
      runId,
    });
    for (let i = 0; i < steps; i++)
      l.append({
        kind: 'step',
        mechanism: 'gaussian',
        noiseMultiplier: 1.1,
        sampleRate: 0.01,
        maxGradNorm: 1,
      });
    return l;
  };
  const RUN = 'ab'.repeat(16);

  test('round trip of state, ledger and tensors; latest wins; old ones pruned', () => {
    const root = path.join(tmp, 'ck');
    expect(hasCheckpoint(root)).toBe(false);
    const w = rand(12, 9);
    for (const step of [10, 20, 30]) {
      saveCheckpoint(
        root,
        {
          step,
          ledger: ledgerAt(step, RUN),
          engine: { z: 1.1, rng: { counter: step } },
          run: { epoch: 1 },
        },
        { w: { data: w, shape: [3, 4] } },
      );
    }
    expect(hasCheckpoint(root)).toBe(true);
    const ck = loadCheckpoint(root);
    expect(ck.state.step).toBe(30);
    expect(ck.state.ledger.head).toBe(ledgerAt(30, RUN).head);
    expect(ck.state.engine).toEqual({ z: 1.1, rng: { counter: 30 } });
    expect(sameBits(ck.tensors.get('w')!.data as Float32Array, w)).toBe(true);
    expect(fs.readdirSync(root).sort()).toEqual(['latest.json', 'step-00000020', 'step-00000030']);
  });

  test('refuses to save without a ledger, or with one that disagrees with the step', () => {
    const root = path.join(tmp, 'ck2');
    expect(() => saveCheckpoint(root, { step: 1, ledger: undefined })).toThrow(
      /ledger is required/,
    );
    expect(() => saveCheckpoint(root, { step: 4, ledger: ledgerAt(0) })).toThrow(/records 0 steps/);
  });

  const what = (fn: () => unknown): string => {
    try {
      fn();
    } catch (e) {
      expect((e as { code: string }).code).toBe('ERR_DPLORA_CHECKPOINT');
      return (e as { what: string }).what;
    }
    throw new Error('expected a CheckpointError');
  };

  test('every part is covered by the manifest: any disagreement is refused and named', () => {
    const root = path.join(tmp, 'ck3');
    const base = path.join(tmp, 'base.bin');
    fs.writeFileSync(base, 'base weights v1');
    const saveAt = (step: number, seed: number) =>
      saveCheckpoint(
        root,
        {
          step,
          ledger: ledgerAt(step, RUN),
          run: { targetEpsilon: 8, at: step },
          baseModelSha256: fileSha256(base),
        },
        { w: { data: rand(4, seed), shape: [4] } },
      );
    const d100 = saveAt(100, 1);
    const save100 = fs.mkdtempSync(path.join(tmp, 'keep-'));
    fs.cpSync(d100, save100, { recursive: true });
    const d120 = saveAt(120, 2);
    expect(loadCheckpoint(root, { baseModelFile: base }).state.step).toBe(120);
    const orig = (f: string) => fs.readFileSync(path.join(d120, f));
    const restore: Record<string, Buffer> = {};
    for (const f of fs.readdirSync(d120)) restore[f] = orig(f);
    const reset = () => {
      for (const [f, b] of Object.entries(restore)) fs.writeFileSync(path.join(d120, f), b);
    };
    // 1. step-100's state (or ledger) copied over step-120's.
    fs.copyFileSync(path.join(save100, 'state.json'), path.join(d120, 'state.json'));
    expect(['file', 'state']).toContain(what(() => loadCheckpoint(root)));
    reset();
    fs.copyFileSync(path.join(save100, 'ledger.json'), path.join(d120, 'ledger.json'));
    expect(['file', 'ledger']).toContain(what(() => loadCheckpoint(root)));
    reset();
    // 2. The whole step-100 folder under step-120's name.
    fs.rmSync(d120, { recursive: true });
    fs.cpSync(save100, d120, { recursive: true });
    expect(what(() => loadCheckpoint(root))).toBe('step');
    fs.rmSync(d120, { recursive: true });
    fs.mkdirSync(d120);
    reset();
    // 3. The config edited (target epsilon 8 -> 80), with or without re-hashing that file.
    const st = JSON.parse(orig('state.json').toString());
    st.run.targetEpsilon = 80;
    fs.writeFileSync(path.join(d120, 'state.json'), JSON.stringify(st));
    expect(['file', 'state']).toContain(what(() => loadCheckpoint(root)));
    reset();
    // 4. A flipped byte in the tensors.
    const t = Buffer.from(orig('tensors.safetensors'));
    t[t.length - 1] ^= 1;
    fs.writeFileSync(path.join(d120, 'tensors.safetensors'), t);
    expect(what(() => loadCheckpoint(root))).toBe('tensors');
    reset();
    // 5. Another run's ledger of the same length, with the manifest's file hash updated.
    const other = Buffer.from(JSON.stringify(ledgerAt(120).toJSON()));
    const m = JSON.parse(orig('manifest.json').toString());
    m.files['ledger.json'] = { sha256: sha256(other), bytes: other.length };
    fs.writeFileSync(path.join(d120, 'ledger.json'), other);
    fs.writeFileSync(path.join(d120, 'manifest.json'), JSON.stringify(m));
    expect(what(() => loadCheckpoint(root))).toBe('manifest'); // checksum of the manifest
    reset();
    // 6. A different base model next to the checkpoint.
    fs.writeFileSync(base, 'base weights v2');
    expect(what(() => loadCheckpoint(root, { baseModelFile: base }))).toBe('base-model');
    expect(what(() => loadCheckpoint(path.join(tmp, 'none')))).toBe('missing');
  });
});
