/**
 * A run directory: where one training run keeps its privacy journal, checkpoints, adapter and
 * report. Its rules (the README's "Run directories"):
 * - one process at a time: an exclusive lock file (`run.lock`, holding pid and host); a lock whose
 *   process is gone (same host, pid not alive) is stale and taken over, any other is refused;
 * - a new run never starts over a directory that holds a run (a journal or checkpoints) unless
 *   `overwrite` is given, and then the old run is moved to `archive/` (never deleted);
 * - the path is checked (created, a directory, writable) before any work;
 * - temporary files and folders left by a killed process are removed when the lock is taken;
 * - the journal `ledger.jsonl` is append-only: one ledger record per line, written and flushed
 *   (fdatasync) before the step's update is applied.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PrivacyLedger } from '../accounting/privacy_ledger';
import type { LedgerRecord } from '../accounting/privacy_ledger';
import { DpLoraError, ErrorCode, InvalidArgumentError } from '../errors';

/** The journal file of a run directory. */
export const JOURNAL_FILE = 'ledger.jsonl';
/** The lock file of a run directory. */
export const LOCK_FILE = 'run.lock';
/** The checkpoints folder of a run directory. */
export const CHECKPOINTS_DIR = 'checkpoints';
/** Where an overwritten run is kept. */
export const ARCHIVE_DIR = 'archive';

/** Thrown when another live process holds the run directory. */
export class RunLockedError extends DpLoraError {
  /**
   * @param dir - the run directory
   * @param holder - what the lock file says
   */
  constructor(dir: string, holder: string) {
    super(
      ErrorCode.RunLocked,
      `${dir} is in use by another training (${holder}); wait for it, or remove ${path.join(dir, LOCK_FILE)} if that process is gone`,
      { argument: dir },
    );
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Checks that `dir` can hold a run: creates it, checks it is a directory and that a file can be
 * written, synced, renamed and removed in it. Throws {@link InvalidArgumentError} naming
 * `argument` otherwise. Special file systems (/proc, /sys, /dev) are refused outright.
 */
export function validateOutputDir(dir: string, argument = 'runDir'): string {
  if (typeof dir !== 'string' || dir.length === 0 || dir.includes('\0'))
    throw new InvalidArgumentError(argument, 'must be a non-empty path');
  const abs = path.resolve(dir);
  if (/^\/(proc|sys|dev)(\/|$)/.test(abs))
    throw new InvalidArgumentError(
      argument,
      `${abs} is on a special file system, not a directory for a run`,
    );
  try {
    fs.mkdirSync(abs, { recursive: true });
    if (!fs.statSync(abs).isDirectory()) throw new Error('not a directory');
    const probe = path.join(abs, `.probe-${process.pid}`);
    fs.writeFileSync(probe, 'ok');
    fs.renameSync(probe, probe + '.x');
    fs.rmSync(probe + '.x');
  } catch (e) {
    throw new InvalidArgumentError(
      argument,
      `${abs} cannot hold a run (${(e as Error).message})`,
      e,
    );
  }
  return abs;
}

/**
 * Checks that `file` can be written (its folder exists or can be created, and is writable), and
 * that it is not a directory or a special file. Throws {@link InvalidArgumentError}.
 */
export function validateOutputFile(file: string, argument: string): string {
  if (typeof file !== 'string' || file.length === 0 || file.includes('\0'))
    throw new InvalidArgumentError(argument, 'must be a non-empty path');
  const abs = path.resolve(file);
  if (/^\/(proc|sys|dev)(\/|$)/.test(abs))
    throw new InvalidArgumentError(argument, `${abs} is on a special file system`);
  if (fs.existsSync(abs) && !fs.statSync(abs).isFile())
    throw new InvalidArgumentError(argument, `${abs} exists and is not a regular file`);
  validateOutputDir(path.dirname(abs), argument);
  return abs;
}

/** An open, locked run directory. */
export class RunDirectory {
  private journalFd: number | null = null;
  /** {@link continueJournal} was called: the journal opens at the next append. */
  private continuing = false;
  private released = false;

  private constructor(
    /** Absolute path of the directory. */
    readonly dir: string,
  ) {}

  /**
   * Opens `dir` for a run: validates it, takes the lock, removes stray temporaries.
   * `mode: 'new'` refuses a directory holding a run unless `overwrite` (the old run is then
   * archived); `mode: 'resume'` requires one. `log` receives one line per notable action
   * (stale lock taken, run archived).
   */
  static open(
    dir: string,
    o: {
      mode: 'new' | 'resume';
      overwrite?: boolean;
      log?: (line: string) => void;
      /** How errors name the directory (default 'runDir' / 'resume'; the CLI: --out / --resume). */
      argument?: string;
    },
  ): RunDirectory {
    const arg = o.argument ?? (o.mode === 'resume' ? 'resume' : 'runDir');
    if (o.mode === 'resume' && (typeof dir !== 'string' || !fs.existsSync(dir)))
      throw new InvalidArgumentError(
        arg,
        `${String(dir)}: no such run directory (no checkpoint to resume)`,
      );
    const abs = validateOutputDir(dir, arg);
    const rd = new RunDirectory(abs);
    rd.lock(o.log ?? (() => undefined));
    try {
      rd.cleanTemporaries();
      const holds = rd.holdsRun();
      if (o.mode === 'resume' && !holds)
        throw new InvalidArgumentError(
          arg,
          `${abs} holds no run to resume (no ${JOURNAL_FILE}, no checkpoint)`,
        );
      if (o.mode === 'new' && holds) {
        if (!o.overwrite)
          throw new InvalidArgumentError(
            arg,
            `${abs} already holds a run; resume it, choose another directory, or pass overwrite (--overwrite) to archive it and start over`,
          );
        const to = rd.archive();
        (o.log ?? (() => undefined))(`the previous run in ${abs} was moved to ${to}`);
      }
    } catch (e) {
      rd.release();
      throw e;
    }
    return rd;
  }

  /** Path of a file in the directory. */
  file(name: string): string {
    return path.join(this.dir, name);
  }

  /** Whether the directory holds a run (a journal or checkpoints). */
  holdsRun(): boolean {
    return (
      fs.existsSync(this.file(JOURNAL_FILE)) ||
      fs.existsSync(path.join(this.dir, CHECKPOINTS_DIR, 'latest.json'))
    );
  }

  private lock(log: (line: string) => void): void {
    const lockPath = this.file(LOCK_FILE);
    const me = JSON.stringify({
      pid: process.pid,
      host: os.hostname(),
      since: new Date().toISOString(),
    });
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        fs.writeFileSync(lockPath, me, { flag: 'wx' });
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      let holder: { pid?: unknown; host?: unknown } = {};
      try {
        holder = JSON.parse(fs.readFileSync(lockPath, 'utf8')) as typeof holder;
      } catch {
        /* unreadable: a lock being written, or damaged; treated as held */
      }
      const desc = `pid ${String(holder.pid)} on ${String(holder.host)}`;
      const sameHost = holder.host === os.hostname();
      if (sameHost && typeof holder.pid === 'number' && !pidAlive(holder.pid)) {
        log(`taking over a stale lock in ${this.dir} (${desc} is gone)`);
        // Rename first so that two processes cannot both remove and retake it.
        const aside = `${lockPath}.stale-${process.pid}`;
        try {
          fs.renameSync(lockPath, aside);
          fs.rmSync(aside, { force: true });
        } catch {
          /* another process took it over first; retry */
        }
        continue;
      }
      throw new RunLockedError(this.dir, desc);
    }
    throw new RunLockedError(this.dir, 'a lock that keeps changing');
  }

  private cleanTemporaries(): void {
    const stray = /^\..+\.tmp-\d+-[0-9a-f]+(\.old)?$|^\.probe-\d+(\.x)?$/;
    for (const d of [this.dir, path.join(this.dir, CHECKPOINTS_DIR)]) {
      if (!fs.existsSync(d)) continue;
      for (const name of fs.readdirSync(d))
        if (stray.test(name)) fs.rmSync(path.join(d, name), { recursive: true, force: true });
    }
  }

  /** Moves the run held here to archive/<time>-<runId>/ and returns that folder. */
  private archive(): string {
    let runId = 'unknown';
    try {
      runId = this.readJournal()?.runId ?? runId;
    } catch {
      /* a damaged journal is archived as it is */
    }
    const to = path.join(
      this.dir,
      ARCHIVE_DIR,
      `${new Date().toISOString().replace(/[:.]/g, '-')}-${runId}`,
    );
    fs.mkdirSync(to, { recursive: true });
    for (const name of fs.readdirSync(this.dir)) {
      if (name === ARCHIVE_DIR || name === LOCK_FILE) continue;
      fs.renameSync(path.join(this.dir, name), path.join(to, name));
    }
    return to;
  }

  /**
   * Reads the journal (null when there is none). A last line without its newline is a record
   * whose write was cut by a crash: its step was never applied, so it is ignored.
   */
  readJournal(): PrivacyLedger | null {
    const f = this.file(JOURNAL_FILE);
    if (!fs.existsSync(f)) return null;
    const text = fs.readFileSync(f, 'utf8');
    const lines = text.split('\n');
    lines.pop(); // the part after the last newline: empty, or a torn record
    const records = lines.map((l, i) => {
      try {
        return JSON.parse(l) as unknown;
      } catch {
        throw new DpLoraError(ErrorCode.Ledger, `${f}: line ${i + 1} is not a ledger record`);
      }
    });
    return PrivacyLedger.fromJSON(records);
  }

  /** Starts the journal with every record of `ledger` (the journal must not exist). */
  startJournal(ledger: PrivacyLedger): void {
    const f = this.file(JOURNAL_FILE);
    this.journalFd = fs.openSync(f, 'wx');
    for (const r of ledger.records) this.appendRecord(r);
  }

  /**
   * Continues the existing journal: it is opened for appending at the first record appended, so
   * that a resume refused before it charges anything leaves the file exactly as it was.
   */
  continueJournal(): void {
    this.continuing = true;
  }

  private openToContinue(): void {
    this.continuing = false;
    const f = this.file(JOURNAL_FILE);
    // Drop a torn last line so that the next record starts on a line of its own.
    const text = fs.readFileSync(f, 'utf8');
    const cut = text.lastIndexOf('\n') + 1;
    if (cut !== text.length) fs.truncateSync(f, Buffer.byteLength(text.slice(0, cut)));
    this.journalFd = fs.openSync(f, 'a');
  }

  /** Appends one record and flushes it to the disk before returning. */
  appendRecord(r: LedgerRecord): void {
    if (this.journalFd === null && this.continuing) this.openToContinue();
    if (this.journalFd === null)
      throw new DpLoraError(ErrorCode.InvalidState, 'the run journal is not open');
    const b = Buffer.from(JSON.stringify(r) + '\n');
    let off = 0;
    while (off < b.length) {
      const n = fs.writeSync(this.journalFd, b, off, b.length - off);
      if (n <= 0) throw new DpLoraError(ErrorCode.Checkpoint, 'the run journal cannot be written');
      off += n;
    }
    fs.fdatasyncSync(this.journalFd);
  }

  /** Closes the journal and removes the lock (idempotent). */
  release(): void {
    if (this.released) return;
    this.released = true;
    if (this.journalFd !== null) fs.closeSync(this.journalFd);
    this.journalFd = null;
    try {
      const cur = JSON.parse(fs.readFileSync(this.file(LOCK_FILE), 'utf8')) as { pid?: number };
      if (cur.pid === process.pid) fs.rmSync(this.file(LOCK_FILE), { force: true });
    } catch {
      /* already gone */
    }
  }
}
