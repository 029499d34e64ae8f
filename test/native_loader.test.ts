import { capabilities, setIsa, setThreads } from '../lib';
import { expectError } from './helpers/errors';

describe('native loader', () => {
  it('loads the addon and reports a supported ISA', () => {
    const caps = capabilities();
    expect(caps.supportedIsas).toContain('scalar');
    expect(caps.supportedIsas).toContain(caps.isa);
    expect(caps.threads).toBeGreaterThanOrEqual(1);
    expect(caps.addonPath).toMatch(/dplora\.node$/);
  });

  it('forces each supported ISA and rejects unknown ones', () => {
    const { supportedIsas, isa } = capabilities();
    for (const name of supportedIsas) {
      setIsa(name);
      expect(capabilities().isa).toBe(name);
    }
    setIsa(isa);
    expectError(() => setIsa('sse9'), 'RangeError', /isa/);
    expectError(() => setIsa(3 as unknown as string), 'TypeError', /isa/);
  });

  it('validates the thread count', () => {
    expectError(() => setThreads(0), 'RangeError', /threads/);
    expectError(() => setThreads(1.5), 'RangeError', /threads/);
    const before = capabilities().threads;
    setThreads(3);
    expect(capabilities().threads).toBe(3);
    setThreads(before);
  });
});
