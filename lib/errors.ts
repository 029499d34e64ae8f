/**
 * The one error hierarchy of dp-lora.
 *
 * Every error the library throws on purpose is a {@link DpLoraError} with a stable
 * {@link DpLoraError.code | code} (a Node-style string a program can branch on) and, where one
 * argument is at fault, its {@link DpLoraError.argument | name}. Messages may improve between
 * releases; codes do not change.
 *
 * ```ts
 * try {
 *   engine.step();
 * } catch (e) {
 *   if (e instanceof DpLoraError && e.code === ErrorCode.BudgetExceeded) stopTraining();
 *   else throw e;
 * }
 * ```
 */

/** The stable error codes (the README lists them with their meaning). */
export const ErrorCode = {
  /** An argument has the wrong type, is out of range, or is malformed. */
  InvalidArgument: 'ERR_DPLORA_INVALID_ARGUMENT',
  /** The API was used out of order (e.g. a step with no batch drawn, a second batch without a step). */
  InvalidState: 'ERR_DPLORA_INVALID_STATE',
  /** A step would take epsilon past the target; refused before any update. */
  BudgetExceeded: 'ERR_DPLORA_BUDGET_EXCEEDED',
  /** A trainable parameter lacks the per-sample information a private step needs. */
  PerSampleGrad: 'ERR_DPLORA_PER_SAMPLE_GRAD',
  /** A checkpoint or run directory is missing, inconsistent or tampered with. */
  Checkpoint: 'ERR_DPLORA_CHECKPOINT',
  /** A privacy ledger is malformed, tampered with or does not belong to the state it came with. */
  Ledger: 'ERR_DPLORA_LEDGER',
  /** The native addon could not be loaded. */
  NativeLoad: 'ERR_DPLORA_NATIVE_LOAD',
  /** A native kernel failed at run time (entropy source, memory). */
  Native: 'ERR_DPLORA_NATIVE',
  /** User data (CSV/JSONL, labels) is malformed. */
  DataFormat: 'ERR_DPLORA_DATA_FORMAT',
  /** A file (safetensors, adapter, model weights) is malformed or too large. */
  FileFormat: 'ERR_DPLORA_FILE_FORMAT',
  /** A run directory is locked by another live training process. */
  RunLocked: 'ERR_DPLORA_RUN_LOCKED',
} as const;

/** One of the values of {@link ErrorCode}. */
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Options shared by every {@link DpLoraError} constructor. */
export interface DpLoraErrorOptions {
  /** The argument (or CLI option, or file) at fault, where there is one. */
  argument?: string;
  /** The underlying error, if this one wraps another. */
  cause?: unknown;
}

/** Base class of every error dp-lora throws on purpose. */
export class DpLoraError extends Error {
  /** Stable machine-readable code, one of {@link ErrorCode}. */
  readonly code: ErrorCodeValue;
  /** The argument (or CLI option, or file) at fault, where there is one. */
  declare readonly argument?: string;

  /**
   * @param code - one of {@link ErrorCode}
   * @param message - a sentence for people; it should name the argument and say what to do
   * @param options - the argument at fault and an underlying cause
   */
  constructor(code: ErrorCodeValue, message: string, options: DpLoraErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    if (options.argument !== undefined) this.argument = options.argument;
  }
}

function namesArgument(message: string, argument: string): boolean {
  const escaped = argument.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // "rank must be ...", "LoraLinear: r must be ...", "state.position: ..." name it already.
  return new RegExp(`(^|: )${escaped}([ :.[]|$)`).test(message);
}

/** A bad argument: wrong type, out of range, non-finite or malformed. Always names it. */
export class InvalidArgumentError extends DpLoraError {
  declare readonly argument: string;

  /**
   * @param argument - the argument's name as the caller wrote it (e.g. `maxGradNorm`, `--rank`)
   * @param message - what is wrong and what is accepted; the argument's name is prefixed
   *   (`"rank: must be ..."`) unless the message already starts with it, alone or after a
   *   `"Caller: "` prefix (`"rank must be ..."`, `"LoraLinear: r must be ..."`)
   * @param cause - an underlying error, if any
   */
  constructor(argument: string, message: string, cause?: unknown) {
    super(
      ErrorCode.InvalidArgument,
      namesArgument(message, argument) ? message : `${argument}: ${message}`,
      {
        argument,
        cause,
      },
    );
  }
}

/** The API was used out of order (e.g. a step with no batch drawn). */
export class InvalidStateError extends DpLoraError {
  /** @param message - what was called out of order and what to call first */
  constructor(message: string) {
    super(ErrorCode.InvalidState, message);
  }
}

/** The native addon (dplora.node) could not be loaded; the message lists every path tried. */
export class NativeLoadError extends DpLoraError {
  /** @param message - what was tried, each failure, and how to fix it */
  constructor(message: string, options: DpLoraErrorOptions = {}) {
    super(ErrorCode.NativeLoad, message, options);
  }
}

/** A native kernel failed at run time (the OS entropy source, memory). */
export class NativeError extends DpLoraError {
  /** @param message - the call that failed and why */
  constructor(message: string, options: DpLoraErrorOptions = {}) {
    super(ErrorCode.Native, message, options);
  }
}

/** A privacy ledger that cannot be parsed or fails validation. */
export class LedgerFormatError extends DpLoraError {
  /** @param message - what is wrong (prefixed with "invalid privacy ledger: ") */
  constructor(message: string, options: DpLoraErrorOptions = {}) {
    super(ErrorCode.Ledger, `invalid privacy ledger: ${message}`, options);
  }
}

/**
 * Which part of a checkpoint is missing or disagrees with the others: `missing` (no latest.json,
 * manifest or listed file), `manifest` (latest.json or manifest.json malformed, of another version
 * or failing its checksum), `file` (not a regular file, or not the size the manifest records),
 * `ledger` (the ledger is absent, malformed, fails its hash chain or its SHA-256), `ledger-steps`,
 * `ledger-head` and `run-id` (the ledger disagrees with the step, head or run id of the
 * manifest), `step` (latest.json and the manifest name different steps), `base-model` (the base
 * model file is missing or has another SHA-256), `tensors` (the safetensors file is corrupt or
 * fails its SHA-256) and `state` (state.json, or an invalid argument when saving).
 */
export type CheckpointPart =
  | 'missing'
  | 'manifest'
  | 'file'
  | 'ledger'
  | 'ledger-steps'
  | 'ledger-head'
  | 'run-id'
  | 'step'
  | 'base-model'
  | 'tensors'
  | 'state';

/** A missing, malformed or tampered checkpoint, or one whose parts disagree. */
export class CheckpointError extends DpLoraError {
  /** Which part is at fault. */
  readonly what: CheckpointPart;
  /**
   * @param message - what is wrong, naming the file
   * @param what - which part is at fault
   */
  constructor(message: string, what: CheckpointPart = 'state') {
    super(ErrorCode.Checkpoint, message);
    this.what = what;
  }
}

/** Unusable user data (CSV/JSONL, labels); the message names the file, line and fix. */
export class DataFormatError extends DpLoraError {
  /** @param message - the file, the line and what to fix */
  constructor(message: string, options: DpLoraErrorOptions = {}) {
    super(ErrorCode.DataFormat, message, options);
  }
}

/** A malformed or inconsistent LoRA adapter (PEFT format). */
export class AdapterFormatError extends DpLoraError {
  /** @param message - what is wrong */
  constructor(message: string, options: DpLoraErrorOptions = {}) {
    super(ErrorCode.FileFormat, message, options);
  }
}

/** A malformed safetensors file, or bad input to the safetensors writer. */
export class SafetensorsError extends DpLoraError {
  /** @param message - what is wrong */
  constructor(message: string, options: DpLoraErrorOptions = {}) {
    super(ErrorCode.FileFormat, message, options);
  }
}

/** Thrown BEFORE a step (or batch draw) that would take epsilon past the target. */
export class PrivacyBudgetExceededError extends DpLoraError {
  /** Epsilon spent so far (at `delta`). */
  readonly epsilonSpent: number;
  /** The budget. */
  readonly targetEpsilon: number;
  /** The delta at which epsilon is reported. */
  readonly delta: number;
  /** Steps taken before the refusal. */
  readonly stepsTaken: number;

  /** @param o - the spent and target epsilon, delta and the steps taken */
  constructor(o: {
    epsilonSpent: number;
    targetEpsilon: number;
    delta: number;
    stepsTaken: number;
  }) {
    super(
      ErrorCode.BudgetExceeded,
      `privacy budget exhausted: another step would take epsilon past the target ${o.targetEpsilon} ` +
        `(delta ${o.delta}); spent ${o.epsilonSpent.toPrecision(6)} in ${o.stepsTaken} steps. ` +
        'Stop training, or start a new run with a larger budget (the ledger cannot be reset).',
    );
    this.epsilonSpent = o.epsilonSpent;
    this.targetEpsilon = o.targetEpsilon;
    this.delta = o.delta;
    this.stepsTaken = o.stepsTaken;
  }
}

/** A trainable parameter lacks per-sample gradient support or information. */
export class PerSampleGradError extends DpLoraError {
  /** @param message - the parameter and what it lacks */
  constructor(message: string, options: DpLoraErrorOptions = {}) {
    super(ErrorCode.PerSampleGrad, message, options);
  }
}
