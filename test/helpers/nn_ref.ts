/**
 * Plain-TypeScript references for the nn tests: one-sample-at-a-time
 * gradients through the model's non-private ('sum') backward, finite
 * differences, and a seeded data generator.
 */
import { Module, Tensor, Parameter } from '../../lib/nn';
import { isPerSampleModule } from '../../lib/nn/module';

/** Deterministic pseudo-random numbers for test data (not for privacy). */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Float32Array of n values in [-scale, scale). */
export function randArray(n: number, rnd: () => number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (2 * rnd() - 1) * scale;
  return a;
}

/** Rows [i0, i1) of a [batch, ...] tensor as a new tensor. */
export function sliceBatch(x: Tensor, i0: number, i1: number): Tensor {
  const per = x.size / x.shape[0];
  return new Tensor(x.data.slice(i0 * per, i1 * per), [i1 - i0, ...x.shape.slice(1)]);
}

/** Loss function: per-sample losses and grad of the sum. */
export type LossFn = (y: Tensor, i0: number, i1: number) => { total: number; grad: Tensor };

/** Raw gradient of the summed loss over samples [i0, i1) via the 'sum' backward, flattened over `params`. */
export function rawGrad(
  model: Module,
  params: Parameter[],
  x: Tensor,
  loss: LossFn,
  i0: number,
  i1: number,
): Float64Array {
  model.setGradMode('sum');
  model.zeroGrad();
  const y = model.forward(sliceBatch(x, i0, i1));
  model.backward(loss(y, i0, i1).grad);
  const n = params.reduce((s, p) => s + p.size, 0);
  const out = new Float64Array(n);
  let o = 0;
  for (const p of params) {
    if (p.grad) for (let j = 0; j < p.size; j++) out[o + j] = p.grad[j];
    o += p.size;
  }
  model.zeroGrad();
  return out;
}

/** Per-sample squared norms and clipped sum (flattened over `params`) through the per-sample hooks. */
export function perSampleViaHooks(
  model: Module,
  params: Parameter[],
  x: Tensor,
  loss: LossFn,
  factors: Float32Array,
): { normsSq: Float64Array; sum: Float64Array } {
  model.setGradMode('perSample');
  const y = model.forward(x);
  model.backward(loss(y, 0, x.shape[0]).grad);
  const batch = x.shape[0];
  const normsSq = new Float64Array(batch);
  const acc = new Map<Parameter, Float64Array>();
  const sink = (p: Parameter) => {
    let b = acc.get(p);
    if (!b) acc.set(p, (b = new Float64Array(p.size)));
    return b;
  };
  for (const [, m] of model.namedModules()) {
    if (!isPerSampleModule(m) || !m.ownParameters().some(([, p]) => p.requiresGrad)) continue;
    m.addPerSampleNormsSq(normsSq);
    m.accumulateClippedGrads(factors, sink);
    m.releaseCapture();
  }
  const n = params.reduce((s, p) => s + p.size, 0);
  const sum = new Float64Array(n);
  let o = 0;
  for (const p of params) {
    const b = acc.get(p);
    if (b) for (let j = 0; j < p.size; j++) sum[o + j] = b[j];
    o += p.size;
  }
  model.setGradMode('sum');
  return { normsSq, sum };
}

/** Squared L2 norm. */
export function normSq(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return s;
}

/** max |a - b| / (max |b| + floor). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-6): number {
  let d = 0;
  let m = floor;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}
