/**
 * One-run empirical privacy audit (Steinke, Nasr and Jagielski 2023): m
 * canaries, each included with probability 1/2 by the secure RNG, ONE private
 * training run through the real mechanism (PrivacyEngine + DPOptimizer), a
 * score per canary, guesses for the top k+ and bottom k- scores, and the 95%
 * lower bound on epsilon from {@link epsilonLowerBound}.
 *
 * Canaries:
 * - `'gradient'` (default, white-box Dirac canaries): a gradient-space record
 *   whose gradient is `10 C` on one coordinate of LoRA A reserved for it (a
 *   feature column no real record uses, so real gradients there are exactly
 *   0), clipped like any record.  Score: how far that coordinate moved against
 *   the canary's gradient.
 * - `'input'`: a real input record on a reserved feature column of its own with
 *   a random label.  Score: the log-probability of its label under the trained
 *   model minus the same with LoRA A's reserved columns reset (only canary c
 *   trains its column, so this isolates its influence from the global drift).
 *
 * `plant` deliberately breaks the mechanism to show the audit's power (a TEST
 * AID: the claimed epsilon is then false): `'no-noise'` trains without noise,
 * `'no-clip'` adds the canaries' gradients unclipped.  Audit runs never write
 * an adapter.
 */
import { calibrateNoiseMultiplier } from '../accounting';
import { featurize } from '../data/featurize';
import { splitSpamCorpus } from '../data/spam_corpus';
import { Rng } from '../kernels/rng';
import { Linear, LoraLinear, ReLU, Sequential, Tensor, crossEntropyLoss } from '../nn';
import { SGD } from '../optim';
import { PrivacyEngine } from '../privacy/privacy_engine';
import { SeedLike, seedToKey } from '../privacy/seed';
import { InvalidArgumentError } from '../errors';
import { MAX_ELEMENTS, OPEN_UNIT, requireInt, requireNumber, requireOneOf } from '../validate';
import { epsilonLowerBound } from './bound';

/** Canary kind: white-box gradient-space (Dirac) canaries or input-space records. */
export type CanaryKind = 'gradient' | 'input';
/** Deliberate break of the mechanism (test aid), or `'none'` for an honest audit. */
export type AuditPlant = 'none' | 'no-noise' | 'no-clip';

/** Labeled features to audit on (default: the built-in SpamAssassin task). */
export interface AuditData {
  /** Row-major [n, dim]. */
  X: Float32Array;
  /** Label of each row, [n], integers in [0, classes). */
  y: Int32Array;
  /** Number of rows (records). */
  n: number;
  /** Feature width of each row. */
  dim: number;
  /** Number of classes. */
  classes: number;
}

/** Options of {@link runAudit}. */
export interface AuditOptions {
  /** The claimed epsilon; the noise is calibrated to it (PLD accountant). */
  epsilon: number;
  /** delta of the claim (default 1e-5). */
  delta?: number;
  /** Number of canaries m (default 1000). */
  canaries?: number;
  /** Canary kind (default 'gradient'). */
  kind?: CanaryKind;
  /** Test aid: break the mechanism on purpose (default 'none'). */
  plant?: AuditPlant;
  /** Guesses on each side: k+ = k- (default m / 20). */
  guessesPerSide?: number;
  /** Training steps (default 100). */
  steps?: number;
  /** Poisson sampling rate (default 0.06). */
  sampleRate?: number;
  /** Clipping norm C (default 1). */
  maxGradNorm?: number;
  /** SGD learning rate (default 0.5). */
  lr?: number;
  /** Data to train on (default: the built-in task, private part). */
  data?: AuditData;
  /** Built-in task only: use at most this many mails (default all). */
  limit?: number;
  /** Explicit opt-in to a reproducible run (inclusion bits, sampling and noise); default OS entropy. */
  seed?: SeedLike;
  /** Called after each step. */
  onProgress?: (step: number, steps: number) => void;
}

/** What {@link runAudit} reports (the JSON of `dp-lora audit`). */
export interface AuditResult {
  /** The epsilon the run claimed (the noise was calibrated to it). */
  claimedEpsilon: number;
  /** delta of the claim and of the lower bound. */
  delta: number;
  /** 95% lower bound on epsilon certified by the audit. */
  epsilonLowerBound: number;
  /** Confidence level of `epsilonLowerBound` (0.95). */
  confidence: number;
  /** m. */
  canaries: number;
  /** r = k+ + k-. */
  guesses: number;
  /** v. */
  correct: number;
  /** Guesses "included", made for the canaries with the highest scores. */
  kPlus: number;
  /** Guesses "excluded", made for the canaries with the lowest scores. */
  kMinus: number;
  /** The canary kind audited. */
  kind: CanaryKind;
  /** The deliberate break of the mechanism, or 'none' for an honest audit. */
  plant: AuditPlant;
  /** True when `plant` is not 'none': the run broke the mechanism on purpose. */
  testAid: boolean;
  /** Canaries included by the secure coin flips. */
  included: number;
  /** Noise multiplier calibrated to the claim (the run used 0 instead under 'no-noise'). */
  noiseMultiplier: number;
  /** Training steps run. */
  steps: number;
  /** Poisson sampling rate of each step. */
  sampleRate: number;
  /** Clipping norm C. */
  maxGradNorm: number;
  /** True in fixed-seed mode (reproducible, not secure). */
  seeded: boolean;
  /** Wall-clock duration of the audit, in seconds. */
  seconds: number;
}

const HIDDEN = 32;
const RANK = 4;
/** Canary gradient magnitude in units of C (so that clipping matters). */
const DIRAC_SCALE = 10;

/** The private part of the built-in task, featurized (dim 4096). */
export function builtinAuditData(limit?: number, dim = 4096): AuditData {
  const s = splitSpamCorpus(undefined, { limit });
  return {
    X: featurize(
      s.private.map((m) => m.text),
      { dim, stripHeaders: true },
    ),
    y: Int32Array.from(s.private.map((m) => m.label)),
    n: s.private.length,
    dim,
    classes: 2,
  };
}

const calibrated = new Map<string, number>();

/** The noise multiplier of the claim (PLD accountant), remembered per claim. */
function noiseFor(eps: number, delta: number, q: number, steps: number): number {
  const key = `${eps}|${delta}|${q}|${steps}`;
  let z = calibrated.get(key);
  if (z === undefined) {
    z = calibrateNoiseMultiplier({
      targetEpsilon: eps,
      targetDelta: delta,
      sampleRate: q,
      steps,
    }).noiseMultiplier;
    calibrated.set(key, z);
  }
  return z;
}

/**
 * Runs the one-run audit: one private training run with m canaries, then the
 * certified lower bound on epsilon.
 */
export function runAudit(o: AuditOptions): AuditResult {
  const t0 = Date.now();
  const eps = requireNumber('epsilon', o.epsilon, { greaterThan: 0 });
  const delta = requireNumber('delta', o.delta ?? 1e-5, OPEN_UNIT);
  const m = requireInt('canaries', o.canaries ?? 1000, { min: 1 });
  const kind = requireOneOf('kind', o.kind ?? 'gradient', ['gradient', 'input'] as const);
  const plant = requireOneOf('plant', o.plant ?? 'none', ['none', 'no-noise', 'no-clip'] as const);
  const k = requireInt('guessesPerSide', o.guessesPerSide ?? Math.max(1, Math.floor(m / 20)), {
    min: 1,
    max: Math.floor(m / 2),
    hint: '(at most half the canaries)',
  });
  const steps = requireInt('steps', o.steps ?? 100, { min: 1 });
  const q = requireNumber('sampleRate', o.sampleRate ?? 0.06, { greaterThan: 0, max: 1 });
  const C = requireNumber('maxGradNorm', o.maxGradNorm ?? 1, { greaterThan: 0 });
  const lr = requireNumber('lr', o.lr ?? 0.5, { greaterThan: 0 });
  const data = o.data ?? builtinAuditData(o.limit);
  // Each canary widens the input (a reserved column, or one per RANK canaries); the audit holds
  // [canaries, width] inputs (kind input) or up to [canaries, RANK * width] gradient rows in a
  // step (kind gradient): bound them before anything is allocated.
  const width = data.dim + (kind === 'input' ? m : Math.ceil(m / RANK));
  const rowWidth = kind === 'input' ? width : RANK * width;
  if (!(m * rowWidth <= MAX_ELEMENTS))
    throw new InvalidArgumentError(
      'canaries',
      `${m} ${kind} canaries on ${data.dim} features need ${m} x ${rowWidth} numbers, more than the ${MAX_ELEMENTS} allowed; use fewer canaries`,
    );
  const seeded = o.seed !== undefined;

  // Secure coin flips (or the explicit fixed seed, domain-separated).
  const coinRng = seeded
    ? new Rng({ seed: seedToKey(`audit coins:${String(o.seed)}`) })
    : new Rng();
  const words = coinRng.fillUint32(new Uint32Array(m));
  const inc = Array.from(words, (w) => (w & 1) === 1);
  const includedIdx = inc.flatMap((b, c) => (b ? [c] : []));

  // Reserved feature columns: one per canary (input) or per RANK canaries (gradient).
  const extra = kind === 'input' ? m : Math.ceil(m / RANK);
  const dimX = data.dim + extra;
  const nReal = data.n;
  const nTotal = nReal + includedIdx.length;
  const expectedBatch = q * nTotal;

  const fc = new LoraLinear(new Linear(dimX, HIDDEN, { trainable: false, seed: 11 }), {
    r: RANK,
    alpha: RANK,
    seed: 12,
  });
  const head = new Linear(HIDDEN, data.classes, { seed: 13 });
  const model = new Sequential(fc, new ReLU(), head);
  // Public canary labels and a public tie-break order.
  const pub = new Rng({ seed: seedToKey('dp-lora audit public canary design') });
  const pubWords = pub.fillUint32(new Uint32Array(2 * m));
  const canaryLabel = (c: number) => pubWords[c] % data.classes;
  const tieBreak = (c: number) => pubWords[m + c];

  const rowOf = (i: number, out: Float32Array, o2: number): number => {
    // Dataset index i: real record i < nReal, else included canary includedIdx[i - nReal].
    if (i < nReal) {
      out.set(data.X.subarray(i * data.dim, (i + 1) * data.dim), o2);
      return data.y[i];
    }
    const c = includedIdx[i - nReal];
    out[o2 + data.dim + c] = 1;
    return canaryLabel(c);
  };
  const batchOf = (idx: ArrayLike<number>): { x: Tensor; y: Int32Array } => {
    const x = new Float32Array(idx.length * dimX);
    const y = new Int32Array(idx.length);
    for (let r = 0; r < idx.length; r++) y[r] = rowOf(idx[r], x, r * dimX);
    return { x: new Tensor(x, [idx.length, dimX]), y };
  };
  const logProb = (): Float64Array => {
    const all = Array.from({ length: m }, (_, c) => c);
    const x = new Float32Array(m * dimX);
    for (let c = 0; c < m; c++) x[c * dimX + data.dim + c] = 1;
    model.eval();
    const logits = model.forward(new Tensor(x, [m, dimX])).data;
    model.train();
    return Float64Array.from(all, (c) => {
      const row = logits.subarray(c * data.classes, (c + 1) * data.classes);
      const mx = Math.max(...row);
      const lse = mx + Math.log(row.reduce((s, v) => s + Math.exp(v - mx), 0));
      return row[canaryLabel(c)] - lse;
    });
  };
  // Dirac canary c: coordinate (c % RANK, data.dim + floor(c / RANK)) of LoRA A.
  const coord = (c: number) => (c % RANK) * dimX + data.dim + Math.floor(c / RANK);

  const z = noiseFor(eps, delta, expectedBatch / nTotal, steps);
  const engine = new PrivacyEngine();
  const { optimizer: dp } = engine.makePrivate({
    model,
    optimizer: new SGD(model.trainableParameters(), { lr }),
    dataset: nTotal,
    batchSize: expectedBatch,
    noiseMultiplier: plant === 'no-noise' ? 0 : z,
    maxGradNorm: C,
    delta,
    seed: seeded ? `audit run:${String(o.seed)}` : undefined,
    onWarning: () => {},
  });
  const total = dp.tracked.reduce((s, t) => s + t.params.reduce((a, p) => a + p.size, 0), 0);
  const aOffset = (() => {
    let off = 0;
    for (const t of dp.tracked)
      for (const p of t.params) {
        if (p === fc.loraAParam) return off;
        off += p.size;
      }
    throw new Error('internal: audit: LoRA A is not tracked');
  })();
  const a0 = Float64Array.from(fc.loraA);

  for (let s = 0; s < steps; s++) {
    const { indices } = engine.nextBatch();
    const real = Array.from(indices).filter((i) => kind === 'input' || i < nReal);
    const canary = kind === 'gradient' ? Array.from(indices).filter((i) => i >= nReal) : [];
    if (real.length > 0) {
      engine.useRecords(real);
      const { x, y } = batchOf(real);
      model.backward(crossEntropyLoss(model.forward(x), y).grad);
      dp.accumulate();
    }
    if (canary.length > 0) {
      const rows = new Float32Array(canary.length * total);
      canary.forEach((i, r) => {
        rows[r * total + aOffset + coord(includedIdx[i - nReal])] = DIRAC_SCALE * C;
      });
      dp.addGradientRows(rows, canary.length, plant !== 'no-clip');
    }
    dp.step();
    if (o.onProgress) o.onProgress(s + 1, steps);
  }

  let score: Float64Array;
  if (kind === 'gradient') {
    const a = fc.loraA;
    score = Float64Array.from({ length: m }, (_, c) => a0[coord(c)] - a[coord(c)]);
  } else {
    // Only canary c ever trains LoRA A's column for its reserved feature: score
    // the log-probability of its label against the same model with those
    // columns reset to their initial values (global drift cancels).
    const lp = logProb();
    const a = fc.loraA;
    const trained = Float32Array.from(a);
    for (let r = 0; r < RANK; r++)
      for (let j = data.dim; j < dimX; j++) a[r * dimX + j] = a0[r * dimX + j];
    const lpReset = logProb();
    a.set(trained);
    score = Float64Array.from(lp, (v, c) => v - lpReset[c]);
  }
  const order = Array.from({ length: m }, (_, c) => c).sort(
    (x, y) => score[y] - score[x] || tieBreak(x) - tieBreak(y),
  );
  let correct = 0;
  for (let r = 0; r < k; r++) if (inc[order[r]]) correct++;
  for (let r = m - k; r < m; r++) if (!inc[order[r]]) correct++;
  return {
    claimedEpsilon: eps,
    delta,
    epsilonLowerBound: epsilonLowerBound(m, 2 * k, correct, delta, 0.95),
    confidence: 0.95,
    canaries: m,
    guesses: 2 * k,
    correct,
    kPlus: k,
    kMinus: k,
    kind,
    plant,
    testAid: plant !== 'none',
    included: includedIdx.length,
    noiseMultiplier: z,
    steps,
    sampleRate: expectedBatch / nTotal,
    maxGradNorm: C,
    seeded,
    seconds: (Date.now() - t0) / 1000,
  };
}
