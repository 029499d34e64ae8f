/**
 * The data of a training run: featurized public / private / heldout parts.
 *
 * - Built-in task: the SpamAssassin split of lib/data/spam_corpus.ts.
 * - User data (`--data`): split by a hash of each text into private (75%) and heldout (25%);
 *   identical texts always land in the same part. The base model is pretrained on
 *   `--public-data` (same fields, labels must be among the private file's classes) if
 *   given; otherwise there is no public data and the base MLP stays randomly initialized
 *   and frozen (random features), which the report states.
 *   The set of label values is treated as public (it is the task's schema).
 */
import * as crypto from 'crypto';
import { featurize } from '../data/featurize';
import { splitSpamCorpus, Mail } from '../data/spam_corpus';
import { loadUserData, DataFormatError, fixLabelSet } from '../data/user_data';
import { OptionError, TRAIN_LIMITS } from './train_options';
import type { TrainConfig } from './train_options';

/** Features and labels of one part. */
export interface DataPart {
  /** Row-major [n, dim]. */
  X: Float32Array;
  y: Int32Array;
  n: number;
}

/** Everything a run trains and evaluates on. */
export interface TrainTask {
  /** 'spam' for the built-in task, else the data file name. */
  name: string;
  dim: number;
  classes: string[];
  /** Pretraining data (non-private); undefined when the base is random. */
  public?: DataPart;
  private: DataPart;
  heldout: DataPart;
  /** One line describing where each part comes from. */
  description: string;
}

function part(
  texts: string[],
  labels: ArrayLike<number>,
  dim: number,
  stripHeaders: boolean,
): DataPart {
  if (texts.length * dim > TRAIN_LIMITS.maxFeatures)
    throw new OptionError(
      '--dim',
      `${texts.length} examples * --dim ${dim} exceeds ${TRAIN_LIMITS.maxFeatures} features; lower --dim or use --limit`,
    );
  return {
    X: featurize(texts, { dim, stripHeaders }),
    y: Int32Array.from(labels),
    n: texts.length,
  };
}

function mailsPart(mails: Mail[], dim: number): DataPart {
  return part(
    mails.map((m) => m.text),
    mails.map((m) => m.label),
    dim,
    true,
  );
}

/** Builds the built-in SpamAssassin task (optionally limited to `cfg.limit` mails). */
export function buildSpamTask(cfg: Pick<TrainConfig, 'dim' | 'limit'>): TrainTask {
  const s = splitSpamCorpus(undefined, { limit: cfg.limit });
  if (s.private.length < 10 || s.heldout.length < 5)
    throw new DataFormatError(
      `--limit ${cfg.limit} leaves too few private mails (${s.private.length}) or heldout mails (${s.heldout.length})`,
    );
  return {
    name: 'spam',
    dim: cfg.dim,
    classes: ['ham', 'spam'],
    public: mailsPart(s.public, cfg.dim),
    private: mailsPart(s.private, cfg.dim),
    heldout: mailsPart(s.heldout, cfg.dim),
    description:
      `SpamAssassin: public = easy-ham-1 + spam-1 (${s.public.length} mails, base pretraining, no privacy); ` +
      `private = easy-ham-2 + hard-ham-1 + spam-2 (${s.private.length} mails, DP fine-tuning); heldout = ${s.heldout.length} other mails of the private groups`,
  };
}

function textFraction(text: string): number {
  return (
    crypto
      .createHash('sha256')
      .update('dplora-user-split-v1\0')
      .update(text)
      .digest()
      .readUIntBE(0, 6) /
    2 ** 48
  );
}

/** Texts and labels of one part of the user's data. */
export interface TextPart {
  texts: string[];
  labels: Int32Array;
}

/** The user's `--data` (and `--public-data`) as text parts, before any featurizing. */
export interface UserTexts {
  /** The label set (public: declared, defined by the public file, or common enough). */
  classes: string[];
  public?: TextPart;
  private: TextPart;
  heldout: TextPart;
}

/**
 * Reads the user's `--data` file (and `--public-data`, if given) and splits it by a hash of each
 * text into private (75%) and heldout (25%). The label set is fixed first (declared with
 * --labels, or the public file's, or labels occurring at least --min-label-count times).
 */
export function loadUserTexts(
  cfg: Pick<
    TrainConfig,
    'limit' | 'data' | 'publicData' | 'textField' | 'labelField' | 'labels' | 'minLabelCount'
  >,
): UserTexts {
  if (!cfg.data) throw new DataFormatError('no --data file given');
  // The label set is public: declared, or defined by the public file, or common enough.
  const pubRaw = cfg.publicData
    ? loadUserData(cfg.publicData, cfg.textField, cfg.labelField)
    : undefined;
  const d = fixLabelSet(loadUserData(cfg.data, cfg.textField, cfg.labelField), cfg.data, {
    declared: cfg.labels ?? pubRaw?.classes,
    minCount: cfg.minLabelCount ?? 20,
  });
  let idx = [...d.texts.keys()];
  if (cfg.limit !== undefined && idx.length > cfg.limit) idx = idx.slice(0, cfg.limit);
  const priv: number[] = [];
  const held: number[] = [];
  for (const i of idx) (textFraction(d.texts[i]) < 0.25 ? held : priv).push(i);
  if (priv.length < 10 || held.length < 2) {
    throw new DataFormatError(
      `${cfg.data}: ${idx.length} examples are too few (need at least 10 for private training and 2 held out; got ${priv.length} and ${held.length})`,
    );
  }
  const pick = (ids: number[]): TextPart => ({
    texts: ids.map((i) => d.texts[i]),
    labels: Int32Array.from(ids, (i) => d.labels[i]),
  });
  let pub: TextPart | undefined;
  if (pubRaw) {
    const map = pubRaw.classes.map((c) => {
      const k = d.classes.indexOf(c);
      if (k < 0)
        throw new DataFormatError(
          `${cfg.publicData}: label ${JSON.stringify(c)} does not occur in ${cfg.data} (classes: ${d.classes.join(', ')})`,
        );
      return k;
    });
    pub = { texts: pubRaw.texts, labels: Int32Array.from(pubRaw.labels, (l) => map[l]) };
  }
  return { classes: d.classes, public: pub, private: pick(priv), heldout: pick(held) };
}

/** Builds a task from the user's `--data` file (and `--public-data`, if given). */
export function buildUserTask(
  cfg: Pick<
    TrainConfig,
    | 'dim'
    | 'limit'
    | 'data'
    | 'publicData'
    | 'textField'
    | 'labelField'
    | 'labels'
    | 'minLabelCount'
  >,
): TrainTask {
  const u = loadUserTexts(cfg);
  const feat = (p: TextPart) => part(p.texts, p.labels, cfg.dim, false);
  const pub = u.public ? feat(u.public) : undefined;
  const priv = feat(u.private);
  const held = feat(u.heldout);
  return {
    name: cfg.data!,
    dim: cfg.dim,
    classes: u.classes,
    public: pub,
    private: priv,
    heldout: held,
    description:
      `${cfg.data}: private = ${priv.n} examples (DP fine-tuning), heldout = ${held.n} (split by text hash); ` +
      (pub
        ? `public = ${cfg.publicData} (${pub.n} examples, base pretraining, no privacy)`
        : 'no public data: the base MLP is random and frozen'),
  };
}

/** Builds the task the configuration asks for. */
export function buildTask(cfg: TrainConfig): TrainTask {
  return cfg.data ? buildUserTask(cfg) : buildSpamTask(cfg);
}
