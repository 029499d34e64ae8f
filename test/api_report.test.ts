/**
 * The public surface: each entry point of package.json's `exports` map exports exactly the
 * names (and kinds) listed in etc/api-report.json. A name that appears or disappears fails here
 * until the report is regenerated on purpose (`npm run api:update`) and committed.
 */
import * as fs from 'fs';
import * as path from 'path';
import {
  REPORT_FILE,
  ROOT,
  ApiReport,
  buildApiReport,
  diffApiReports,
  entryPoints,
  formatApiReport,
} from './helpers/api_report';

const UPDATE = process.env.DPLORA_API_UPDATE === '1';

describe('API report', () => {
  const actual = buildApiReport();

  it('lists every entry point of the exports map and no deep import path', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      exports: Record<string, unknown>;
    };
    expect(Object.keys(pkg.exports).sort()).toEqual(
      ['.', './accounting', './fixed', './kernels', './package.json'].sort(),
    );
    // No wildcard subpaths: nothing outside the named entry points is importable.
    for (const key of Object.keys(pkg.exports)) expect(key).not.toMatch(/\*/);
  });

  it('documents exactly the entry points of the exports map (typedoc.json)', () => {
    const typedoc = JSON.parse(fs.readFileSync(path.join(ROOT, 'typedoc.json'), 'utf8')) as {
      entryPoints: string[];
    };
    const fromExports = Object.values(entryPoints()).map((f) => path.relative(ROOT, f));
    expect([...typedoc.entryPoints].sort()).toEqual(fromExports.sort());
  });

  it('matches etc/api-report.json', () => {
    if (UPDATE) {
      fs.mkdirSync(path.dirname(REPORT_FILE), { recursive: true });
      fs.writeFileSync(REPORT_FILE, formatApiReport(actual));
    }
    const expected = JSON.parse(fs.readFileSync(REPORT_FILE, 'utf8')) as ApiReport;
    const diff = diffApiReports(expected, actual);
    if (diff.length)
      throw new Error(
        `The public API changed (+ added, - removed, ~ kind changed):\n${diff.join('\n')}\n` +
          'If this is intended, run `npm run api:update` and commit etc/api-report.json.',
      );
    expect(fs.readFileSync(REPORT_FILE, 'utf8')).toBe(formatApiReport(actual));
  });

  it('agrees with what each entry point exports at run time', () => {
    for (const [spec, file] of Object.entries(entryPoints())) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const mod = require(file) as Record<string, unknown>;
      const values = Object.entries(actual[spec])
        .filter(([, kind]) => kind !== 'interface' && kind !== 'type')
        .map(([name]) => name)
        .sort();
      expect({ spec, names: Object.keys(mod).sort() }).toEqual({ spec, names: values });
    }
  });

  it('reports an added, a removed and a changed name', () => {
    const diff = diffApiReports(
      { a: { X: 'class', Y: 'function' } },
      { a: { X: 'value', Z: 'type' }, b: {} },
    );
    expect(diff).toEqual([
      '~ a: X (class -> value)',
      '- a: Y (function)',
      '+ a: Z (type)',
      '+ entry point b (0 names)',
    ]);
  });

  it('keeps the root free of internals', () => {
    for (const internal of [
      'chacha20Block',
      'sigmaSqRational',
      'featurizeInto',
      'keyFraction',
      'splitMail',
      'loadAddon',
      'atomicWriteFile',
    ])
      expect(actual['dp-lora']).not.toHaveProperty(internal);
  });
});
