/**
 * The API report: every name each public entry point exports, with its kind, read from the
 * TypeScript sources with the compiler API. Entry points come from package.json's `exports`
 * map (`./dist/lib/X.js` is compiled from `lib/X.ts`), so a new entry point is picked up
 * without changing this file.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';

/** Repository root. */
export const ROOT = path.resolve(__dirname, '..', '..');
/** The committed report. */
export const REPORT_FILE = path.join(ROOT, 'etc', 'api-report.json');

/** Kind of an exported name. */
export type ExportKind =
  'class' | 'function' | 'value' | 'enum' | 'namespace' | 'interface' | 'type';

/** Entry point specifier (`dp-lora`, `dp-lora/kernels`) -> exported name -> kind. */
export type ApiReport = Record<string, Record<string, ExportKind>>;

/** The entry points of package.json's `exports` map: specifier -> TypeScript source file. */
export function entryPoints(): Record<string, string> {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
    name: string;
    exports: Record<string, string | { default: string }>;
  };
  const out: Record<string, string> = {};
  for (const [key, target] of Object.entries(pkg.exports)) {
    const js = typeof target === 'string' ? target : target.default;
    const m = /^\.\/dist\/(lib\/.*)\.js$/.exec(js);
    if (!m) continue; // ./package.json
    out[key === '.' ? pkg.name : `${pkg.name}/${key.slice(2)}`] = path.join(ROOT, `${m[1]}.ts`);
  }
  return out;
}

function kindOf(checker: ts.TypeChecker, symbol: ts.Symbol): ExportKind {
  const s = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
  const f = s.flags;
  if (f & ts.SymbolFlags.Class) return 'class';
  if (f & ts.SymbolFlags.Function) return 'function';
  if (f & ts.SymbolFlags.Enum) return 'enum';
  if (f & ts.SymbolFlags.Variable) return 'value';
  if (f & ts.SymbolFlags.ValueModule) return 'namespace';
  if (f & ts.SymbolFlags.Interface) return 'interface';
  return 'type';
}

/** Builds the report from the sources as they are now. */
export function buildApiReport(): ApiReport {
  const entries = entryPoints();
  const program = ts.createProgram(Object.values(entries), {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    strict: true,
    esModuleInterop: true,
    skipLibCheck: true,
    resolveJsonModule: true,
    types: ['node'],
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  const report: ApiReport = {};
  for (const [spec, file] of Object.entries(entries).sort(([a], [b]) => a.localeCompare(b))) {
    const sf = program.getSourceFile(file);
    if (!sf) throw new Error(`${spec}: source ${path.relative(ROOT, file)} not found`);
    const mod = checker.getSymbolAtLocation(sf);
    const names: Record<string, ExportKind> = {};
    const exported = mod ? checker.getExportsOfModule(mod) : [];
    for (const s of exported.sort((a, b) => a.name.localeCompare(b.name)))
      names[s.name] = kindOf(checker, s);
    report[spec] = names;
  }
  return report;
}

/** Lines saying what was added to, removed from or changed in `actual` against `expected`. */
export function diffApiReports(expected: ApiReport, actual: ApiReport): string[] {
  const lines: string[] = [];
  const specs = [...new Set([...Object.keys(expected), ...Object.keys(actual)])].sort();
  for (const spec of specs) {
    const e = expected[spec];
    const a = actual[spec];
    if (!e) {
      lines.push(`+ entry point ${spec} (${Object.keys(a).length} names)`);
      continue;
    }
    if (!a) {
      lines.push(`- entry point ${spec}`);
      continue;
    }
    for (const name of [...new Set([...Object.keys(e), ...Object.keys(a)])].sort()) {
      if (!(name in e)) lines.push(`+ ${spec}: ${name} (${a[name]})`);
      else if (!(name in a)) lines.push(`- ${spec}: ${name} (${e[name]})`);
      else if (e[name] !== a[name]) lines.push(`~ ${spec}: ${name} (${e[name]} -> ${a[name]})`);
    }
  }
  return lines;
}

/** The report as committed (pretty JSON, one name a line, trailing newline). */
export function formatApiReport(report: ApiReport): string {
  return JSON.stringify(report, null, 2) + '\n';
}
