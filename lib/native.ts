/**
 * Loads the dp-lora native addon and reports what it can do.
 *
 * Order tried: `DPLORA_ADDON_PATH` (an explicit `.node` file), then
 * node-gyp-build's search of the package (`build/Release`, then
 * `prebuilds/<platform>-<arch>/`).  If nothing loads, the error lists every
 * path tried, each failure, and how to fix it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { InvalidArgumentError, NativeError, NativeLoadError } from './errors';
import { NATIVE_FUNCTION_NAMES, NativeAddon } from './native_types';
import { requireInt, requireString } from './validate';
export { NativeLoadError };

export type { NativeAddon } from './native_types';

/** The package root (holds package.json, build/ and prebuilds/). */
export const PACKAGE_ROOT = findPackageRoot(__dirname);

function findPackageRoot(start: string): string {
  let dir = start;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        const meta = JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: unknown };
        if (meta.name === 'dp-lora') return dir;
      } catch {
        /* keep looking */
      }
    }
    const up = path.dirname(dir);
    if (up === dir) return path.resolve(start, '..', '..');
    dir = up;
  }
}

let cached: { addon: NativeAddon; path: string } | undefined;

function describeFailure(tried: string[], failures: string[]): string {
  const lines = [
    'dp-lora: could not load the native addon (dplora.node).',
    `Runtime: node ${process.version}, N-API ${process.versions.napi}, ${process.platform}-${process.arch}.`,
    'Tried:',
    ...tried.map((t, i) => `  - ${t}: ${failures[i] ?? 'not found'}`),
    'How to fix:',
    '  - Build it from source in the package folder: `npm rebuild dp-lora` (or `npx node-gyp rebuild`),',
    '    which needs python3, make and a C++17 compiler (g++ >= 9 or clang >= 10).',
    '  - Or make a prebuild for this platform: `npm run prebuild` (prebuildify --napi --strip).',
    '  - Or point DPLORA_ADDON_PATH at a dplora.node built for this platform.',
    '  - A "wrong ELF class" or "invalid ELF header" error means the binary is for another',
    '    platform or architecture: delete build/ and rebuild.',
  ];
  return lines.join('\n');
}

// A native message names the argument first: "a must be a Float32Array",
// "shape.batch must be >= 1", "factors[3] must be finite", "sgemm: invalid argument".
const LEADING_NAME = /^([A-Za-z_$][\w$]*(?:\.[\w$]+|\[\d+\])*)(?=[ :])/;

/**
 * Turns an error thrown by a native function into the library's hierarchy: a `TypeError` or
 * `RangeError` (argument checks; created in Node's main realm, so compared by name) becomes an
 * {@link InvalidArgumentError} naming the argument its message starts with; any other `Error`
 * (entropy source, memory) a {@link NativeError}. Anything else passes through.
 */
export function translateNativeError(e: unknown, fn: string): unknown {
  if (typeof e !== 'object' || e === null || typeof (e as Error).message !== 'string') return e;
  const err = e as Error;
  if (err.name === 'TypeError' || err.name === 'RangeError') {
    const m = LEADING_NAME.exec(err.message);
    return new InvalidArgumentError(m ? m[1] : fn, err.message, err);
  }
  if (err.name === 'Error') return new NativeError(`${fn}: ${err.message}`, { cause: err });
  return e;
}

function wrapAddon(raw: Record<string, unknown>, file: string): NativeAddon {
  const out: Record<string, unknown> = {};
  for (const name of NATIVE_FUNCTION_NAMES) {
    const fn = raw[name];
    if (typeof fn !== 'function')
      throw new NativeLoadError(
        `dp-lora: the native addon ${file} has no function ${name}: it is from another ` +
          'version of dp-lora; rebuild it (`npm rebuild dp-lora` or `npx node-gyp rebuild`).',
      );
    const call = fn as (...args: unknown[]) => unknown;
    // Async functions validate synchronously (a sync throw means nothing was queued, which
    // callers rely on), then settle; both paths are translated.
    out[name] = name.endsWith('Async')
      ? (...args: unknown[]): unknown => {
          let p: Promise<unknown>;
          try {
            p = call(...args) as Promise<unknown>;
          } catch (e) {
            throw translateNativeError(e, name) as Error;
          }
          return p.then(undefined, (e: unknown) => {
            throw translateNativeError(e, name) as Error;
          });
        }
      : (...args: unknown[]): unknown => {
          try {
            return call(...args);
          } catch (e) {
            throw translateNativeError(e, name) as Error;
          }
        };
  }
  return out as unknown as NativeAddon;
}

function requireAddon(file: string): NativeAddon {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- the .node addon
  return wrapAddon(require(file) as Record<string, unknown>, file);
}

/**
 * Searches for the addon: `explicitPath` (if given), then node-gyp-build's
 * search of `root`.  Returns the addon (typed, its errors translated into the
 * library's hierarchy) and its path, or throws a {@link NativeLoadError}
 * listing every path tried and how to fix it.
 */
export function loadAddonFrom(
  root: string,
  explicitPath?: string,
): { addon: NativeAddon; path: string } {
  const tried: string[] = [];
  const failures: string[] = [];
  if (explicitPath) {
    tried.push(`DPLORA_ADDON_PATH=${explicitPath}`);
    try {
      const p = path.resolve(explicitPath);
      return { addon: requireAddon(p), path: p };
    } catch (e) {
      failures.push((e as Error).message.split('\n')[0]);
    }
  }
  tried.push(
    `node-gyp-build(${root}) [build/Release, build/Debug, prebuilds/${process.platform}-${process.arch}]`,
  );
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- no type declarations
    const ngb = require('node-gyp-build') as { resolve(dir: string): string };
    const resolved = ngb.resolve(root);
    return { addon: requireAddon(resolved), path: resolved };
  } catch (e) {
    failures.push((e as Error).message.split('\n')[0]);
  }
  throw new NativeLoadError(describeFailure(tried, failures));
}

/**
 * Loads (once) and returns the addon, typed as {@link NativeAddon}, or throws a
 * {@link NativeLoadError}. Its argument errors are {@link InvalidArgumentError}s naming the
 * argument; its run-time failures {@link NativeError}s.
 */
export function loadAddon(): NativeAddon {
  if (!cached) cached = loadAddonFrom(PACKAGE_ROOT, process.env.DPLORA_ADDON_PATH);
  return cached.addon;
}

/**
 * The names of the functions the loaded addon file exports (for the test that checks them
 * against {@link NativeAddon}).
 */
export function rawAddonFunctionNames(): string[] {
  loadAddon();
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- the .node addon
  const raw = require(cached!.path) as Record<string, unknown>;
  return Object.keys(raw)
    .filter((k) => typeof raw[k] === 'function')
    .sort();
}

/** What the loaded addon runs on. */
export interface Capabilities {
  /** ISA path in use: 'scalar' | 'neon' | 'avx2' | 'avx512'. */
  isa: string;
  /** ISA paths this build and CPU support. */
  supportedIsas: string[];
  /** The DPLORA_ISA request, if any, and whether it was honoured. */
  isaRequested?: {
    /** The requested ISA name. */
    name: string;
    /** Whether the active path is the one requested. */
    honoured: boolean;
  };
  /** Native pool threads (DPLORA_THREADS). */
  threads: number;
  /**
   * How the active path runs a bf16 frozen base (`baseDtype: 'bf16'`): `'native'`
   * (AVX512_BF16 `vdpbf16ps`, only on the `'avx512'` path of a CPU that has it) or
   * `'widened'` (bf16 widened to fp32 for the path's fp32 kernel: same results within
   * the fp32 rounding bound, no speed-up).
   */
  bf16: 'native' | 'widened';
  /** Path of the loaded .node file. */
  addonPath: string;
  /** Whether a CUDA addon is in use (not yet: always false). */
  cuda: boolean;
}

/** Reports the ISA, threads and addon file in use. */
export function capabilities(): Capabilities {
  const info = loadAddon().isaInfo();
  const req = process.env.DPLORA_ISA;
  return {
    isa: info.active,
    supportedIsas: info.supported,
    isaRequested: req ? { name: req, honoured: req === info.active } : undefined,
    threads: info.threads,
    bf16: info.bf16Native ? 'native' : 'widened',
    addonPath: cached!.path,
    cuda: false,
  };
}

/** Forces an ISA path for this process ('scalar', 'avx2', ...); throws if unsupported. */
export function setIsa(isa: string): void {
  requireString('isa', isa);
  loadAddon().setIsa(isa);
}

/** Resizes the native thread pool (>= 1). */
export function setThreads(threads: number): void {
  requireInt('threads', threads, { min: 1, max: 1024 });
  loadAddon().setThreads(threads);
}
