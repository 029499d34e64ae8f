/**
 * The module interface: explicit forward/backward, parameters by dotted path,
 * train/eval, and the per-sample gradient hooks the DP optimizer relies on.
 */
import {
  LayerRecordContext,
  RecordContext,
  layerKey,
  validateRecordContext,
} from './record_random';
import { Parameter, Tensor } from './tensor';
import { InvalidArgumentError, InvalidStateError } from '../errors';

/**
 * How backward treats parameter gradients.
 * - 'sum': the raw gradient summed over the batch goes into `Parameter.grad`
 *   (non-private training).
 * - 'perSample': backward only keeps what per-sample norms and clipped sums
 *   need (book-keeping); `Parameter.grad` is never written.
 */
export type GradMode = 'sum' | 'perSample';

/**
 * Receives a parameter and returns the double-precision buffer its clipped sum
 * accumulates into (double, so that one record's contribution stays within C
 * through the rounding of the sum; see lib/nn/per_sample.ts).
 */
export type ClippedSink = (p: Parameter) => Float64Array;

/**
 * Base class of every layer.  Subclasses implement `forward`/`backward` and
 * list their own parameters and children; recursion is handled here.
 */
export abstract class Module {
  /** True in training mode (dropout active). */
  training = true;
  /** Gradient mode (see {@link GradMode}); set for the whole tree with {@link Module.setGradMode}. */
  gradMode: GradMode = 'sum';
  /** Which records the next forward pass holds (see {@link Module.setRecordContext}); null if unset. */
  recordContext: LayerRecordContext | null = null;

  /** Runs the layer; keeps what backward needs. */
  abstract forward(x: Tensor): Tensor;
  /**
   * Given dLoss/dOutput, returns dLoss/dInput and handles parameter gradients per
   * {@link GradMode}. With `inputGrad = false` (nothing upstream needs dLoss/dInput, as for
   * the first layer of a model fed with data) a layer may skip that product and return
   * {@link noInputGrad}'s empty tensor; parameter gradients are unaffected.
   */
  abstract backward(gradOut: Tensor, inputGrad?: boolean): Tensor;

  /** This module's own parameters (not its children's), by local name. */
  ownParameters(): Array<[string, Parameter]> {
    return [];
  }

  /** Direct children by local name. */
  children(): Array<[string, Module]> {
    return [];
  }

  /** Every module of the tree with its dotted path (`''` for the root, then `layers.0`, ...). */
  namedModules(prefix = ''): Array<[string, Module]> {
    const out: Array<[string, Module]> = [[prefix, this]];
    for (const [name, child] of this.children()) {
      out.push(...child.namedModules(prefix ? `${prefix}.${name}` : name));
    }
    return out;
  }

  /** Every parameter of the tree with its dotted path (`layers.0.weight`). */
  namedParameters(prefix = ''): Array<[string, Parameter]> {
    const out: Array<[string, Parameter]> = [];
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [name, p] of m.ownParameters()) out.push([path ? `${path}.${name}` : name, p]);
    }
    return out;
  }

  /** Every parameter of the tree (frozen ones included). */
  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Parameters that training changes (`requiresGrad`). */
  trainableParameters(): Parameter[] {
    return this.parameters().filter((p) => p.requiresGrad);
  }

  /** Training mode for the whole tree. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  /** Evaluation mode for the whole tree. */
  eval(): this {
    return this.train(false);
  }

  /** Sets the gradient mode for the whole tree and drops any pending per-sample capture. */
  setGradMode(mode: GradMode): this {
    for (const [, m] of this.namedModules()) {
      m.gradMode = mode;
      if (isPerSampleModule(m)) m.releaseCapture();
    }
    return this;
  }

  /**
   * Says which data-set records the next forward pass holds, for the whole
   * tree: layers that draw per-record randomness (LoRA dropout, Dropout) then
   * key each record's draws by (run key, step, record index, layer path), so a
   * record's mask never depends on the other records of its batch.  Set it
   * before the forward pass of every micro-batch (the privacy engine does);
   * `null` clears it.  In `'perSample'` mode an active dropout without a
   * context throws.
   *
   * @param ctx - run key, step and the batch's data-set indices
   */
  setRecordContext(ctx: RecordContext | null): this {
    if (ctx !== null) validateRecordContext(ctx);
    const records = ctx ? Array.from(ctx.records) : [];
    for (const [path, m] of this.namedModules()) {
      m.recordContext = ctx
        ? { key: ctx.key, step: ctx.step, records, layer: layerKey(path) }
        : null;
    }
    return this;
  }

  /** Drops parameter gradients of the whole tree. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }
}

/**
 * A module whose trainable parameters provide per-sample gradient norms and
 * clipped sums from one backward pass (book-keeping).
 */
export interface PerSampleModule extends Module {
  /** Marker: this module implements the per-sample hooks. */
  readonly perSample: true;
  /** Batch size of the pending capture, or -1 when none is pending. */
  captureBatch(): number;
  /**
   * Adds each sample's squared gradient norm over this module's own trainable
   * parameters to `out[batch]` (layers compute them during backward, while the
   * activations are hot in cache).  Throws if no capture is pending.
   */
  addPerSampleNormsSq(out: Float64Array): void;
  /**
   * Adds `sum_i factors_i * grad_i` for each own trainable parameter into
   * `sink(param)`.  Samples with factor 0 are skipped entirely (so NaN/Inf in
   * their activations never reach the sums).  Throws if no capture is pending.
   */
  accumulateClippedGrads(factors: Float32Array, sink: ClippedSink): void;
  /** Drops the pending capture. */
  releaseCapture(): void;
  /**
   * Optional (needed by the DP optimizer's subspace mode): writes samples `i0 .. i0 + n - 1`
   * of the pending per-sample gradients into `out` as float rows of stride `ld`, each own
   * trainable parameter `p` at columns `column(p) .. column(p) + p.size - 1`; the capture stays
   * pending. Columns of parameters without a gradient are left as they are.
   */
  writePerSampleRows?(
    i0: number,
    n: number,
    out: Float32Array,
    ld: number,
    column: (p: Parameter) => number,
  ): void;
}

/** True if `m` implements the per-sample hooks. */
export function isPerSampleModule(m: Module): m is PerSampleModule {
  return (m as Partial<PerSampleModule>).perSample === true;
}

/** Shape helper: [batch, seq, features] view of a 2-D or 3-D tensor. */
export function bsf(
  x: Tensor,
  who: string,
  features?: number,
): { batch: number; seq: number; feat: number } {
  if (!(x instanceof Tensor)) throw new InvalidArgumentError('input', `${who}: must be a Tensor`);
  if (x.shape.length < 2 || x.shape.length > 3) {
    throw new InvalidArgumentError(
      'input',
      `${who}: input must be [batch, features] or [batch, seq, features], got ${JSON.stringify(x.shape)}`,
    );
  }
  const feat = x.features;
  if (features !== undefined && feat !== features) {
    throw new InvalidArgumentError(
      'input',
      `${who}: input has ${feat} features, expected ${features}`,
    );
  }
  return { batch: x.shape[0], seq: x.seq, feat };
}

/** Checks that backward's gradient matches the shape the forward produced. */
export function checkGradShape(g: Tensor, shape: readonly number[], who: string): void {
  if (g.shape.length !== shape.length || g.shape.some((d, i) => d !== shape[i])) {
    throw new InvalidArgumentError(
      'gradOut',
      `${who}: gradOut shape ${JSON.stringify(g.shape)} does not match the output shape ${JSON.stringify(shape)}`,
    );
  }
}

/** The empty tensor `backward(g, false)` returns in place of an input gradient not computed. */
export function noInputGrad(): Tensor {
  return new Tensor(new Float32Array(0), [0]);
}

/** Error for calling backward without a matching forward. */
export function noForward(who: string): Error {
  return new InvalidStateError(
    `${who}: backward called without a preceding forward in training mode`,
  );
}
