/**
 * Training checkpoints: JSON state (privacy engine state, the accountant LEDGER, sampler and
 * RNG state, step) plus tensors in a safetensors file, written atomically.
 *
 * Layout under a checkpoint root directory:
 *   step-00000120/state.json            {format, version, step, ledgerSha256, state}
 *   step-00000120/tensors.safetensors
 *   latest.json                         {"dir": "step-00000120", "step": 120}
 * Each step directory is written with {@link atomicWriteDir}; `latest.json` is then replaced
 * atomically, so a crash leaves the previous checkpoint valid. Older step directories beyond
 * `keep` are removed after the new one is in place.
 *
 * The ledger is mandatory: loading a checkpoint whose ledger is missing, not an object/array,
 * fails its SHA-256 check or is refused by the caller's validator throws
 * {@link CheckpointError}. The ledger can never be silently reset.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as crypto from 'crypto';
import { atomicWriteDir, atomicWriteFile } from './atomic';
import { parseSafetensors, serializeSafetensors, StTensor, StTensorInput } from './safetensors';
import { CheckpointError } from '../errors';
import { requireObject, requireString } from '../validate';
export { CheckpointError };

/** What a checkpoint holds besides tensors. */
export interface CheckpointState {
  /** Optimizer steps done. */
  step: number;
  /** The privacy accountant's ledger (every recorded mechanism event). Required. */
  ledger: unknown;
  /** The privacy engine's stateDict (may embed the ledger too). */
  engine?: unknown;
  /** Sampler / RNG state (for seeded, reproducible runs). */
  sampler?: unknown;
  /** The noise RNG's state, for seeded runs only (an OS-keyed RNG is re-keyed on resume). */
  rng?: unknown;
  /** Anything else the caller needs to resume (config, epoch, ...). */
  run?: Record<string, unknown>;
}

const FORMAT = 'dplora-checkpoint';
const VERSION = 1;
const STATE_FILE = 'state.json';
const TENSORS_FILE = 'tensors.safetensors';
const LATEST_FILE = 'latest.json';

/** SHA-256 of the ledger's JSON text (key order as stored). */
export function ledgerDigest(ledger: unknown): string {
  return crypto.createHash('sha256').update(JSON.stringify(ledger)).digest('hex');
}

function stepDirName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
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
    );
  }
  const keep = options.keep ?? 2;
  fs.mkdirSync(root, { recursive: true });
  const name = stepDirName(state.step);
  const doc = {
    format: FORMAT,
    version: VERSION,
    step: state.step,
    ledgerSha256: ledgerDigest(state.ledger),
    state,
  };
  atomicWriteDir(path.join(root, name), {
    [STATE_FILE]: JSON.stringify(doc),
    [TENSORS_FILE]: serializeSafetensors(tensors),
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

/**
 * Loads the latest checkpoint under `root`. `validateLedger` may check the ledger's structure
 * further and throw; any failure raises {@link CheckpointError}.
 */
export function loadCheckpoint(
  root: string,
  options: {
    /** Called with the ledger before anything is returned; throws to refuse it. */
    validateLedger?: (ledger: unknown) => void;
  } = {},
): {
  /** The saved state. */
  state: CheckpointState;
  /** The saved tensors by name. */
  tensors: Map<string, StTensor>;
  /** The step directory read. */
  dir: string;
} {
  requireString('root', root);
  const latestPath = path.join(root, LATEST_FILE);
  if (!fs.existsSync(latestPath))
    throw new CheckpointError(`${root}: no checkpoint (missing ${LATEST_FILE})`);
  let latest: { dir?: unknown };
  try {
    latest = JSON.parse(fs.readFileSync(latestPath, 'utf8')) as typeof latest;
  } catch (e) {
    throw new CheckpointError(`${latestPath}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof latest.dir !== 'string' || !/^step-\d{8}$/.test(latest.dir))
    throw new CheckpointError(`${latestPath}: "dir" must name a step directory`);
  const dir = path.join(root, latest.dir);
  const statePath = path.join(dir, STATE_FILE);
  if (!fs.existsSync(statePath)) throw new CheckpointError(`${dir}: missing ${STATE_FILE}`);
  let doc: {
    format?: unknown;
    version?: unknown;
    step?: unknown;
    ledgerSha256?: unknown;
    state?: CheckpointState;
  };
  try {
    doc = JSON.parse(fs.readFileSync(statePath, 'utf8')) as typeof doc;
  } catch (e) {
    throw new CheckpointError(`${statePath}: not valid JSON (${(e as Error).message})`);
  }
  if (doc.format !== FORMAT)
    throw new CheckpointError(
      `${statePath}: not a dp-lora checkpoint (format ${JSON.stringify(doc.format)})`,
    );
  if (doc.version !== VERSION)
    throw new CheckpointError(
      `${statePath}: unsupported checkpoint version ${JSON.stringify(doc.version)}`,
    );
  const state = doc.state;
  if (typeof state !== 'object' || state === null)
    throw new CheckpointError(`${statePath}: missing "state"`);
  if (typeof state.step !== 'number' || state.step !== doc.step)
    throw new CheckpointError(`${statePath}: step is missing or inconsistent`);
  if (state.ledger === undefined || state.ledger === null) {
    throw new CheckpointError(
      `${statePath}: the privacy ledger is missing; refusing to resume (the ledger cannot be reset)`,
    );
  }
  if (typeof state.ledger !== 'object')
    throw new CheckpointError(
      `${statePath}: the privacy ledger is malformed (not an object or array)`,
    );
  if (typeof doc.ledgerSha256 !== 'string' || doc.ledgerSha256 !== ledgerDigest(state.ledger)) {
    throw new CheckpointError(
      `${statePath}: the privacy ledger does not match its checksum (corrupted or edited)`,
    );
  }
  if (options.validateLedger) {
    try {
      options.validateLedger(state.ledger);
    } catch (e) {
      throw new CheckpointError(
        `${statePath}: the privacy ledger is malformed: ${(e as Error).message}`,
      );
    }
  }
  const tpath = path.join(dir, TENSORS_FILE);
  if (!fs.existsSync(tpath)) throw new CheckpointError(`${dir}: missing ${TENSORS_FILE}`);
  let tensors: Map<string, StTensor>;
  try {
    tensors = parseSafetensors(fs.readFileSync(tpath), tpath).tensors;
  } catch (e) {
    throw new CheckpointError((e as Error).message);
  }
  return { state, tensors, dir };
}
