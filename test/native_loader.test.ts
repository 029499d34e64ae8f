import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { capabilities, loadAddonFrom, setIsa, setThreads } from '../lib/native';
import { expectError } from './helpers/errors';

describe('native loader', () => {
  it('loads the addon and reports a supported ISA', () => {
    const caps = capabilities();
    expect(caps.supportedIsas).toContain('scalar');
    expect(caps.supportedIsas).toContain(caps.isa);
    expect(caps.threads).toBeGreaterThanOrEqual(1);
    expect(caps.addonPath).toMatch(/(dplora|dp-lora)\.node$/);
  });

  it('forces each supported ISA and rejects unknown ones', () => {
    const { supportedIsas, isa } = capabilities();
    for (const name of supportedIsas) {
      setIsa(name);
      expect(capabilities().isa).toBe(name);
    }
    setIsa(isa);
    expectError(() => setIsa('sse9'), 'InvalidArgumentError', /isa/);
    expectError(() => setIsa(3 as unknown as string), 'InvalidArgumentError', /isa/);
  });

  it('validates the thread count', () => {
    expectError(() => setThreads(0), 'InvalidArgumentError', /threads/);
    expectError(() => setThreads(1.5), 'InvalidArgumentError', /threads/);
    const before = capabilities().threads;
    setThreads(3);
    expect(capabilities().threads).toBe(3);
    setThreads(before);
  });
});

describe('DPLORA_ISA environment override', () => {
  const probe = (env: Record<string, string>) =>
    JSON.parse(
      execFileSync(
        process.execPath,
        [
          '-e',
          "process.stdout.write(JSON.stringify(require('node-gyp-build')(process.argv[1]).isaInfo()))",
          path.resolve(__dirname, '..'),
        ],
        {
          env: { ...process.env, ...env },
        },
      ).toString(),
    ) as { active: string; supported: string[] };

  it('forces the scalar path in a fresh process', () => {
    expect(probe({ DPLORA_ISA: 'scalar' }).active).toBe('scalar');
  });

  it('honours every supported ISA and falls back to the best for unknown names', () => {
    const best = probe({ DPLORA_ISA: '' });
    for (const isa of best.supported) expect(probe({ DPLORA_ISA: isa }).active).toBe(isa);
    expect(probe({ DPLORA_ISA: 'bogus' }).active).toBe(best.active);
  });
});

describe('loader diagnostics', () => {
  it('says what it tried and how to fix it when no addon can be loaded', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-noaddon-'));
    const bogus = path.join(dir, 'missing.node');
    let err: Error | undefined;
    try {
      loadAddonFrom(dir, bogus);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.name).toBe('NativeLoadError');
    expect(err?.message).toContain(`DPLORA_ADDON_PATH=${bogus}`);
    expect(err?.message).toContain(`node-gyp-build(${dir})`);
    expect(err?.message).toMatch(/npm rebuild dp-lora/);
    expect(err?.message).toMatch(/npm run prebuild/);
  });

  it('loads an explicit DPLORA_ADDON_PATH first', () => {
    const real = capabilities().addonPath;
    expect(loadAddonFrom('/nonexistent-root', real).path).toBe(real);
  });
});
