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
import { NativeLoadError } from './errors';
export { NativeLoadError };

/** Raw addon object: each kernel module casts it to the functions it uses. */
export type RawAddon = Record<string, (...args: any[]) => any>;

/** The package root (holds package.json, build/ and prebuilds/). */
export const PACKAGE_ROOT = findPackageRoot(__dirname);

function findPackageRoot(start: string): string {
  let dir = start;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        if (JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'dp-lora') return dir;
      } catch {
        /* keep looking */
      }
    }
    const up = path.dirname(dir);
    if (up === dir) return path.resolve(start, '..', '..');
    dir = up;
  }
}

let cached: { addon: RawAddon; path: string } | undefined;

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

/**
 * Searches for the addon: `explicitPath` (if given), then node-gyp-build's
 * search of `root`.  Returns the addon and its path, or throws a
 * {@link NativeLoadError} listing every path tried and how to fix it.
 */
export function loadAddonFrom(
  root: string,
  explicitPath?: string,
): { addon: RawAddon; path: string } {
  const tried: string[] = [];
  const failures: string[] = [];
  if (explicitPath) {
    tried.push(`DPLORA_ADDON_PATH=${explicitPath}`);
    try {
      const p = path.resolve(explicitPath);
      return { addon: require(p) as RawAddon, path: p };
    } catch (e) {
      failures.push((e as Error).message.split('\n')[0]);
    }
  }
  tried.push(
    `node-gyp-build(${root}) [build/Release, build/Debug, prebuilds/${process.platform}-${process.arch}]`,
  );
  try {
    const ngb = require('node-gyp-build') as { resolve(dir: string): string };
    const resolved = ngb.resolve(root);
    return { addon: require(resolved) as RawAddon, path: resolved };
  } catch (e) {
    failures.push((e as Error).message.split('\n')[0]);
  }
  throw new NativeLoadError(describeFailure(tried, failures));
}

/** Loads (once) and returns the raw addon, or throws a {@link NativeLoadError}. */
export function loadAddon(): RawAddon {
  if (!cached) cached = loadAddonFrom(PACKAGE_ROOT, process.env.DPLORA_ADDON_PATH);
  return cached.addon;
}

/** What the loaded addon runs on. */
export interface Capabilities {
  /** ISA path in use: 'scalar' | 'neon' | 'avx2' | 'avx512'. */
  isa: string;
  /** ISA paths this build and CPU support. */
  supportedIsas: string[];
  /** The DPLORA_ISA request, if any, and whether it was honoured. */
  isaRequested?: { name: string; honoured: boolean };
  /** Native pool threads (DPLORA_THREADS). */
  threads: number;
  /** Path of the loaded .node file. */
  addonPath: string;
  /** Whether a CUDA addon is in use (not yet: always false). */
  cuda: boolean;
}

/** Reports the ISA, threads and addon file in use. */
export function capabilities(): Capabilities {
  const addon = loadAddon();
  const info = addon.isaInfo() as { active: string; supported: string[]; threads: number };
  const req = process.env.DPLORA_ISA;
  return {
    isa: info.active,
    supportedIsas: info.supported,
    isaRequested: req ? { name: req, honoured: req === info.active } : undefined,
    threads: info.threads,
    addonPath: cached!.path,
    cuda: false,
  };
}

/** Forces an ISA path for this process ('scalar', 'avx2', ...); throws if unsupported. */
export function setIsa(isa: string): void {
  loadAddon().setIsa(isa);
}

/** Resizes the native thread pool (>= 1). */
export function setThreads(threads: number): void {
  loadAddon().setThreads(threads);
}
