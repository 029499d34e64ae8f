/**
 * Training checkpoints: one checksummed manifest over every part of the saved state, written
 * atomically.
 *
 * Layout under a checkpoint root directory:
 *   step-00000120/manifest.json         {format, version, step, runId, ledgerHead, ledgerSteps,
 *                                        baseModelSha256, files: {name: {sha256, bytes}}, checksum}
 *   step-00000120/ledger.json           the privacy ledger (a PrivacyLedger hash chain)
 *   step-00000120/state.json            engine state (optimizer, sampler, RNG), run configuration
 *   step-00000120/tensors.safetensors   weights and optimizer buffers
 *   latest.json                         {"dir": "step-00000120", "step": 120}
 * Each step directory is written with {@link atomicWriteDir}; `latest.json` is then replaced
 * atomically, so a crash leaves the previous checkpoint valid. Older step directories beyond
 * `keep` are removed after the new one is in place.
 *
 * Loading verifies the manifest's own checksum, the SHA-256 of every file, the ledger's hash
 * chain, that the ledger's step count, head and run id are the manifest's, and (when given) the
 * base model's hash. Any disagreement is a {@link CheckpointError} whose `what` says which part.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as crypto from 'crypto';
import { atomicWriteDir, atomicWriteFile } from './atomic';
import { parseSafetensors, serializeSafetensors, StTensor, StTensorInput } from './safetensors';
import { PrivacyLedger, canonicalJson } from '../accounting/privacy_ledger';
import { CheckpointError } from '../errors';
import type { CheckpointPart } from '../errors';
import { requireObject, requireString } from '../validate';
export { CheckpointError };
export type { CheckpointPart };

/** What a checkpoint holds besides tensors. */
export interface CheckpointState {
  /** Steps charged so far; must equal the ledger's step count. */
  step: number;
  /** The privacy ledger (a {@link PrivacyLedger} or its JSON). Required. */
  ledger: unknown;
  /** The privacy engine's stateDict without its tensors and ledger. */
  engine?: unknown;
  /** Anything else the caller needs to resume (configuration, counters). */
  run?: Record<string, unknown>;
  /** SHA-256 of the frozen base model the weights belong to, or null/absent for none. */
  baseModelSha256?: string | null;
}

const FORMAT = 'dplora-checkpoint';
const VERSION = 2;
const MANIFEST_FILE = 'manifest.json';
const STATE_FILE = 'state.json';
const LEDGER_FILE = 'ledger.json';
const TENSORS_FILE = 'tensors.safetensors';
const LATEST_FILE = 'latest.json';

/** The manifest of one checkpoint. */
export interface CheckpointManifest {
  /** Format tag: always `'dplora-checkpoint'`. */
  format: typeof FORMAT;
  /** Checkpoint format version (currently 2; other versions are rejected on load). */
  version: number;
  /** Steps charged when the checkpoint was written (the step directory's number). */
  step: number;
  /** The run's id, from the ledger's genesis record. */
  runId: string;
  /** Hash of the ledger's last record ({@link PrivacyLedger.head}). */
  ledgerHead: string;
  /** The ledger's step count; must equal `step`. */
  ledgerSteps: number;
  /** SHA-256 (hex) of the frozen base model the weights belong to, or null for none. */
  baseModelSha256: string | null;
  /** SHA-256 (hex) and size in bytes of each file of the step directory, by file name. */
  files: Record<
    string,
    {
      /** SHA-256 (hex) of the file's content. */
      sha256: string;
      /** Size of the file in bytes. */
      bytes: number;
    }
  >;
  /** SHA-256 of the canonical JSON of every other field. */
  checksum: string;
}

/** SHA-256 (hex) of bytes or a string. */
export function sha256(data: Uint8Array | string): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

/** SHA-256 (hex) of a file's content, read in chunks. */
export function fileSha256(file: string): string {
  if (!fs.statSync(file).isFile()) throw new CheckpointError(`${file}: not a regular file`, 'file');
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** SHA-256 of the ledger's JSON text (kept for callers of format 1). */
export function ledgerDigest(ledger: unknown): string {
  return sha256(JSON.stringify(ledger));
}

function stepDirName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

function manifestChecksum(m: Omit<CheckpointManifest, 'checksum'>): string {
  return sha256(canonicalJson(m));
}

function toLedger(l: unknown, where: string): PrivacyLedger {
  if (l instanceof PrivacyLedger) return l;
  try {
    return PrivacyLedger.fromJSON(l);
  } catch (e) {
    throw new CheckpointError(`${where}: ${(e as Error).message}`, 'ledger');
  }
}

/**
 * Writes a checkpoint under `root` and points latest.json at it. Keeps the newest `keep`
 * step directories (default 2). Returns the step directory written.
 */
export function saveCheckpoint(
  root: string,
  state: CheckpointState,
  tensors: Record<string, StTensorInput> = {},
  options: { keep?: number } = {},
): string {
  requireString('root', root);
  requireObject('state', state);
  if (!Number.isSafeInteger(state.step) || state.step < 0)
    throw new CheckpointError(`state.step must be a non-negative integer, got ${state.step}`);
  if (state.ledger === undefined || state.ledger === null || typeof state.ledger !== 'object') {
    throw new CheckpointError(
      'state.ledger is required (the privacy ledger must be saved with every checkpoint)',
      'ledger',
    );
  }
  const ledger = toLedger(state.ledger, 'saveCheckpoint');
  if (ledger.steps !== state.step)
    throw new CheckpointError(
      `saveCheckpoint: state.step is ${state.step} but the ledger records ${ledger.steps} steps`,
      'ledger-steps',
    );
  const keep = options.keep ?? 2;
  fs.mkdirSync(root, { recursive: true });
  const name = stepDirName(state.step);
  const files: Record<string, Uint8Array> = {
    [LEDGER_FILE]: Buffer.from(JSON.stringify(ledger.toJSON())),
    [STATE_FILE]: Buffer.from(
      JSON.stringify({ engine: state.engine ?? null, run: state.run ?? {} }),
    ),
    [TENSORS_FILE]: serializeSafetensors(tensors),
  };
  const body: Omit<CheckpointManifest, 'checksum'> = {
    format: FORMAT,
    version: VERSION,
    step: state.step,
    runId: ledger.runId,
    ledgerHead: ledger.head,
    ledgerSteps: ledger.steps,
    baseModelSha256: state.baseModelSha256 ?? null,
    files: Object.fromEntries(
      Object.entries(files).map(([k, v]) => [k, { sha256: sha256(v), bytes: v.length }]),
    ),
  };
  const manifest: CheckpointManifest = { ...body, checksum: manifestChecksum(body) };
  atomicWriteDir(path.join(root, name), {
    ...files,
    [MANIFEST_FILE]: JSON.stringify(manifest, null, 1),
  });
  atomicWriteFile(
    path.join(root, LATEST_FILE),
    JSON.stringify({ dir: name, step: state.step }) + '\n',
  );
  const steps = fs
    .readdirSync(root)
    .filter((d) => /^step-\d{8}$/.test(d))
    .sort();
  for (const old of steps.slice(0, Math.max(0, steps.length - keep))) {
    if (old !== name) fs.rmSync(path.join(root, old), { recursive: true, force: true });
  }
  return path.join(root, name);
}

/** Whether `root` holds a checkpoint (a latest.json). */
export function hasCheckpoint(root: string): boolean {
  requireString('root', root);
  return fs.existsSync(path.join(root, LATEST_FILE));
}

/** Largest checkpoint file read (a bound against hostile sizes): 4 GiB. */
const MAX_FILE_BYTES = 4 * 1024 ** 3;

function readBounded(file: string, expectBytes: number): Buffer {
  const st = fs.statSync(file);
  if (!st.isFile()) throw new CheckpointError(`${file}: not a regular file`, 'file');
  if (st.size !== expectBytes || st.size > MAX_FILE_BYTES)
    throw new CheckpointError(
      `${file}: ${st.size} bytes, the manifest says ${expectBytes} (truncated or replaced)`,
      'file',
    );
  return fs.readFileSync(file);
}

function parseJson(text: string, file: string, what: CheckpointPart): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${file}: not valid JSON (${(e as Error).message})`, what);
  }
}

/**
 * Loads and verifies the latest checkpoint under `root` (see the module comment). With
 * `baseModelFile`, that file's SHA-256 must be the one the manifest recorded.
 */
export function loadCheckpoint(
  root: string,
  options: { baseModelFile?: string } = {},
): {
  /** The saved state, with `engine` and `run` from state.json and the step from the manifest. */
  state: CheckpointState & {
    /** The ledger, rebuilt from ledger.json with its hash chain verified. */
    ledger: PrivacyLedger;
  };
  /** The tensors of tensors.safetensors, by name. */
  tensors: Map<string, StTensor>;
  /** Path of the step directory loaded (e.g. `<root>/step-00000120`). */
  dir: string;
  /** The verified manifest of that directory. */
  manifest: CheckpointManifest;
} {
  requireString('root', root);
  const latestPath = path.join(root, LATEST_FILE);
  if (!fs.existsSync(latestPath))
    throw new CheckpointError(`${root}: no checkpoint (missing ${LATEST_FILE})`, 'missing');
  const latest = parseJson(fs.readFileSync(latestPath, 'utf8'), latestPath, 'manifest') as {
    dir?: unknown;
    step?: unknown;
  } | null;
  if (!latest || typeof latest.dir !== 'string' || !/^step-\d{8}$/.test(latest.dir))
    throw new CheckpointError(`${latestPath}: "dir" must name a step directory`, 'manifest');
  const dir = path.join(root, latest.dir);
  const mpath = path.join(dir, MANIFEST_FILE);
  if (!fs.existsSync(mpath))
    throw new CheckpointError(`${dir}: missing ${MANIFEST_FILE}`, 'missing');
  const m = parseJson(fs.readFileSync(mpath, 'utf8'), mpath, 'manifest') as CheckpointManifest;
  if (!m || typeof m !== 'object' || m.format !== FORMAT)
    throw new CheckpointError(`${mpath}: not a dp-lora checkpoint manifest`, 'manifest');
  if (m.version !== VERSION)
    throw new CheckpointError(
      `${mpath}: unsupported checkpoint version ${JSON.stringify(m.version)} (this dp-lora reads ${VERSION})`,
      'manifest',
    );
  const { checksum, ...body } = m;
  if (typeof checksum !== 'string' || checksum !== manifestChecksum(body))
    throw new CheckpointError(
      `${mpath}: the manifest does not match its checksum (corrupted or edited)`,
      'manifest',
    );
  if (latest.dir !== stepDirName(m.step) || latest.step !== m.step)
    throw new CheckpointError(
      `${root}: latest.json points at ${latest.dir} (step ${String(latest.step)}) but its manifest is for step ${m.step}`,
      'step',
    );
  const bytes: Record<string, Buffer> = {};
  for (const f of [LEDGER_FILE, STATE_FILE, TENSORS_FILE]) {
    const entry = m.files?.[f];
    const file = path.join(dir, f);
    if (!entry || !fs.existsSync(file))
      throw new CheckpointError(`${dir}: missing ${f}`, 'missing');
    const b = readBounded(file, entry.bytes);
    if (sha256(b) !== entry.sha256)
      throw new CheckpointError(
        `${file}: does not match the manifest's SHA-256 (corrupted, edited or from another checkpoint)`,
        f === TENSORS_FILE ? 'tensors' : f === LEDGER_FILE ? 'ledger' : 'state',
      );
    bytes[f] = b;
  }
  const ledger = toLedger(
    parseJson(bytes[LEDGER_FILE].toString('utf8'), path.join(dir, LEDGER_FILE), 'ledger'),
    path.join(dir, LEDGER_FILE),
  );
  if (ledger.steps !== m.step || ledger.steps !== m.ledgerSteps)
    throw new CheckpointError(
      `${dir}: the ledger records ${ledger.steps} steps but the checkpoint is for step ${m.step}`,
      'ledger-steps',
    );
  if (ledger.head !== m.ledgerHead)
    throw new CheckpointError(`${dir}: the ledger's head is not the manifest's`, 'ledger-head');
  if (ledger.runId !== m.runId)
    throw new CheckpointError(
      `${dir}: the ledger belongs to run ${ledger.runId}, the manifest to run ${m.runId}`,
      'run-id',
    );
  if (options.baseModelFile !== undefined) {
    if (!fs.existsSync(options.baseModelFile))
      throw new CheckpointError(
        `${options.baseModelFile}: the base model is missing`,
        'base-model',
      );
    const h = fileSha256(options.baseModelFile);
    if (h !== m.baseModelSha256)
      throw new CheckpointError(
        `${options.baseModelFile}: the base model is not the one this checkpoint was trained on (SHA-256 ${h.slice(0, 12)}..., recorded ${String(m.baseModelSha256).slice(0, 12)}...)`,
        'base-model',
      );
  }
  const st = parseJson(bytes[STATE_FILE].toString('utf8'), path.join(dir, STATE_FILE), 'state') as {
    engine?: unknown;
    run?: Record<string, unknown>;
  } | null;
  if (!st || typeof st !== 'object')
    throw new CheckpointError(`${path.join(dir, STATE_FILE)}: missing state`, 'state');
  let tensors: Map<string, StTensor>;
  try {
    tensors = parseSafetensors(bytes[TENSORS_FILE], path.join(dir, TENSORS_FILE)).tensors;
  } catch (e) {
    throw new CheckpointError((e as Error).message, 'tensors');
  }
  return {
    state: {
      step: m.step,
      ledger,
      engine: st.engine ?? undefined,
      run: st.run ?? {},
      baseModelSha256: m.baseModelSha256,
    },
    tensors,
    dir,
    manifest: m,
  };
}
