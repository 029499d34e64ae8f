/**
 * One candidate of the IMDB utility harness's `--tune-configs` (bench/use_lite_utility.ts): a
 * `,`-separated list of `key=value` overrides of the private run's settings. Parsed here, apart
 * from the harness, so that the keys and their checks can be tested.
 */
import { InvalidArgumentError } from '../../errors';
import type { LrScheduleName } from './finetune';

/** The overrides of one candidate; absent keys keep the command line's values. */
export interface TuneSpec {
  /** Adam learning rate of the LoRA weights (`lr`). */
  lr?: number;
  /** Head learning rate (`headLr`). */
  headLr?: number;
  /** Learning-rate schedule (`sched`). */
  schedule?: LrScheduleName;
  /** Warmup fraction of the steps (`warmup`). */
  warmup?: number;
  /** Expected batch of the FULL run (`batch`). */
  batch?: number;
  /** Epochs of the full run (`ep`). */
  epochs?: number;
  /** Per-sample clipping norm C (`clip`; a huge value such as 1e9 leaves gradients unclipped). */
  clip?: number;
  /** LoRA rank and alpha (`rank`, `alpha`). */
  rank?: number;
  alpha?: number;
  /** LoRA target names (`targets=q_proj+v_proj`). */
  targets?: string[];
  /** Public warm start: epochs, lr, head lr (`pubEp`, `pubLr`, `pubHeadLr`). */
  pubEpochs?: number;
  pubLr?: number;
  pubHeadLr?: number;
  /** DP-AdamBC floor as a fraction of the noise variance (`bc`; 0: plain DP-Adam). */
  adamBc?: number;
  /**
   * Diagnostics only (`sigma`): the full run's noise multiplier, used instead of the one
   * calibrated to epsilon; 0 means no noise, and such a run is NOT differentially private.
   */
  sigma?: number;
}

const NUMERIC: Record<string, keyof TuneSpec> = {
  lr: 'lr',
  headLr: 'headLr',
  warmup: 'warmup',
  batch: 'batch',
  ep: 'epochs',
  clip: 'clip',
  rank: 'rank',
  alpha: 'alpha',
  pubEp: 'pubEpochs',
  pubLr: 'pubLr',
  pubHeadLr: 'pubHeadLr',
  sigma: 'sigma',
  bc: 'adamBc',
};

/** Keys whose value may be 0 (the others must be > 0). */
const MAY_BE_ZERO = new Set(['warmup', 'sigma', 'pubEp', 'headLr', 'pubHeadLr', 'bc']);

/**
 * Parses one candidate, e.g. `lr=1e-2,sched=linear,batch=500,ep=3,sigma=0`. Throws an
 * InvalidArgumentError naming `tune-configs` for an unknown key, a pair without `=`, a value
 * that is not a finite number (negative, or zero where zero makes no sense), or an unknown
 * schedule.
 */
export function parseTuneSpec(label: string): TuneSpec {
  const spec: TuneSpec = {};
  const bad = (why: string) => new InvalidArgumentError('tune-configs', `${why} in '${label}'`);
  for (const kv of label.split(',')) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw bad(`'${kv}' is not key=value`);
    const k = kv.slice(0, eq);
    const v = kv.slice(eq + 1);
    if (k === 'sched') {
      if (v !== 'constant' && v !== 'linear' && v !== 'cosine')
        throw bad(`sched must be constant, linear or cosine, got '${v}'`);
      spec.schedule = v;
    } else if (k === 'targets') {
      const ts = v.split('+').filter(Boolean);
      if (ts.length === 0) throw bad('targets is empty');
      spec.targets = ts;
    } else if (k in NUMERIC) {
      const x = v.trim() === '' ? NaN : Number(v);
      const ok = Number.isFinite(x) && (MAY_BE_ZERO.has(k) ? x >= 0 : x > 0);
      if (!ok)
        throw bad(
          `${k} must be a finite number ${MAY_BE_ZERO.has(k) ? '>= 0' : '> 0'}, got '${v}'`,
        );
      (spec as Record<string, number>)[NUMERIC[k]] = x;
    } else throw bad(`unknown key '${k}'`);
  }
  return spec;
}
