/**
 * LoRA adapter around a frozen {@link Linear}:
 *   y = x W0^T + b0 + s * (drop(x) A^T) B^T,  s = alpha / r  (rsLoRA: alpha / sqrt(r)).
 * 'vanilla': A kaiming-uniform(a = sqrt(5)), B = 0, both trained.
 * 'ffa' (FFA-LoRA): A Gaussian and frozen, B = 0 trained.
 * Per-sample: with h = drop(x) A^T and g_h = s g B,
 *   grad B = s g^T h  and  grad A = g_h^T drop(x).
 */
import { InitRandom, kaimingUniform, normalFill } from './init';
import { Linear } from './linear';
import { Module, bsf, checkGradShape, noForward, noInputGrad } from './module';
import {
  FUSION,
  InitOperands,
  addOuterGrad,
  loraDownProduct,
  loraUpInit,
  loraUpProduct,
  matmul,
  matmulBT,
  NormMethod,
} from './ops';
import type { OutputInit } from './ops';
import { PerSampleLayer } from './per_sample';
import { dropoutMask } from './dropout';
import { scratch } from './workspace';
import { Parameter, Tensor } from './tensor';
import { InvalidArgumentError, InvalidStateError } from '../errors';
import type { BaseDtype } from '../kernels/linalg';
import {
  requireInstance,
  requireInt,
  requireFloat32Array,
  requireNumber,
  requireObject,
  requireOneOf,
} from '../validate';

/** LoRA variant. */
export type LoraMethod = 'vanilla' | 'ffa';

/** Options of {@link LoraLinear}. */
export interface LoraOptions {
  /** Rank r (>= 1). */
  r: number;
  /** Scaling numerator alpha (default r, i.e. s = 1). */
  alpha?: number;
  /** 'vanilla' (train A and B) or 'ffa' (A frozen Gaussian, train B). Default 'vanilla'. */
  method?: LoraMethod;
  /** rsLoRA scaling alpha / sqrt(r) instead of alpha / r. */
  rslora?: boolean;
  /** Dropout probability on the LoRA input (default 0). */
  dropout?: number;
  /**
   * Seed for A's initialization and, outside private training, the dropout
   * masks (public randomness); in private training masks are keyed by record
   * (see {@link Module.setRecordContext}).
   */
  seed?: number;
  /** Per-sample norm method (default 'auto'). */
  normMethod?: NormMethod;
  /**
   * Element type of the frozen base weight (sets `base.baseDtype`; default: leave the base's
   * own setting, `'fp32'` unless it was built with another). The adapter is always fp32.
   */
  baseDtype?: BaseDtype;
}

/** Whether a LoRA term over `rows` rows runs inside the packed base pass (`FUSION`). */
function packedInit(rows: number): boolean {
  return FUSION.packedInit && rows >= FUSION.packedInitMinRows;
}

/** A frozen linear layer plus a trainable low-rank update. */
export class LoraLinear extends PerSampleLayer {
  /** The wrapped base layer (frozen). */
  readonly base: Linear;
  /** Rank. */
  readonly r: number;
  /** Scaling numerator. */
  readonly alpha: number;
  /** Applied scale: alpha / r, or alpha / sqrt(r) with rsLoRA. */
  readonly scaling: number;
  /** LoRA variant: `'ffa'` (A frozen) or `'vanilla'` (A and B trained). */
  readonly method: LoraMethod;
  /** Rank-stabilized scaling. */
  readonly rslora: boolean;
  /** Dropout probability on the LoRA input during training. */
  readonly dropout: number;
  /** Parameter holding A [r, in]. */
  readonly loraAParam: Parameter;
  /** Parameter holding B [out, r]. */
  readonly loraBParam: Parameter;
  /** How per-sample gradient norms are computed (`'auto'` picks ghost or direct by cost). */
  normMethod: NormMethod;
  private merged = false;
  /** The packed LoRA operands of the fused passes, packed again in place each call. */
  private readonly initOps = new InitOperands();
  private rnd: InitRandom;
  private saved: {
    x: Tensor;
    xd: Float32Array;
    h: Float32Array;
    mask: Float32Array | null;
  } | null = null;

  constructor(base: Linear, options: LoraOptions) {
    super();
    requireInstance('base', base, Linear);
    requireObject('options', options);
    const r = requireInt('r', options.r, { min: 1 });
    // A rank above min(in, out) adds parameters without adding expressiveness, and bounds
    // every allocation of A [r, in] and B [out, r] by the base layer's size.
    const maxRank = Math.min(base.inFeatures, base.outFeatures);
    if (r > maxRank)
      throw new InvalidArgumentError(
        'r',
        `LoraLinear: r must be <= min(inFeatures, outFeatures) = ${maxRank}, got ${r}`,
      );
    const alpha = requireNumber('alpha', options.alpha ?? r);
    const dropout = requireNumber('dropout', options.dropout ?? 0, { min: 0, lessThan: 1 });
    const method = requireOneOf('method', options.method ?? 'vanilla', ['vanilla', 'ffa']);
    if (options.baseDtype !== undefined) base.baseDtype = options.baseDtype;
    this.base = base;
    base.weight.requiresGrad = false;
    if (base.bias) base.bias.requiresGrad = false;
    this.r = r;
    this.alpha = alpha;
    this.rslora = !!options.rslora;
    this.scaling = this.rslora ? alpha / Math.sqrt(r) : alpha / r;
    this.method = method;
    this.dropout = dropout;
    this.rnd = new InitRandom(options.seed);
    const a = new Float32Array(r * base.inFeatures);
    if (method === 'vanilla') kaimingUniform(a, base.inFeatures, Math.sqrt(5), this.rnd);
    else normalFill(a, 1 / Math.sqrt(base.inFeatures), this.rnd);
    this.loraAParam = new Parameter(a, [r, base.inFeatures], method === 'vanilla');
    this.loraBParam = new Parameter(
      new Float32Array(base.outFeatures * r),
      [base.outFeatures, r],
      true,
    );
    this.normMethod = options.normMethod ?? 'auto';
  }

  /** A [r, in], row-major. */
  get loraA(): Float32Array {
    return this.loraAParam.data;
  }
  /** Overwrites A [r, in] (row-major) with `v`, which must have r * in elements. */
  set loraA(v: Float32Array) {
    this.loraAParam.data.set(requireFloat32Array('loraA', v, this.loraAParam.size));
  }
  /** B [out, r], row-major. */
  get loraB(): Float32Array {
    return this.loraBParam.data;
  }
  /** Overwrites B [out, r] (row-major) with `v`, which must have out * r elements. */
  set loraB(v: Float32Array) {
    this.loraBParam.data.set(requireFloat32Array('loraB', v, this.loraBParam.size));
  }
  /** Input width (that of the wrapped base layer). */
  get inFeatures(): number {
    return this.base.inFeatures;
  }
  /** Output width (that of the wrapped base layer). */
  get outFeatures(): number {
    return this.base.outFeatures;
  }
  /** True while B A is folded into the base weight. */
  get isMerged(): boolean {
    return this.merged;
  }

  ownParameters(): Array<[string, Parameter]> {
    return [
      ['lora_A', this.loraAParam],
      ['lora_B', this.loraBParam],
    ];
  }

  children(): Array<[string, Module]> {
    return [['base', this.base]];
  }

  /** base.weight += alpha * B A. */
  private addToBase(alpha: number): void {
    const { loraB, loraA, outFeatures, r, inFeatures } = this;
    matmul(loraB, loraA, outFeatures, r, inFeatures, alpha, this.base.weight.data, 1);
    this.base.weight.markChanged();
  }

  /** Folds s * B A into the base weight (inference); forward then skips the adapter. */
  merge(): void {
    if (this.merged) return;
    this.addToBase(this.scaling);
    this.merged = true;
  }

  /** Removes s * B A from the base weight again. */
  unmerge(): void {
    if (!this.merged) return;
    this.addToBase(-this.scaling);
    this.merged = false;
  }

  forward(x: Tensor): Tensor {
    const { batch, seq } = bsf(x, 'LoraLinear.forward', this.inFeatures);
    if (this.merged) {
      this.saved = null;
      return this.base.forward(x);
    }
    const rows = batch * seq;
    let xd = x.data;
    let mask: Float32Array | null = null;
    if (this.training && this.dropout > 0) {
      mask = dropoutMask(this, x, this.dropout, this.rnd, 'LoraLinear');
      xd = scratch(x.size); // every element written below
      for (let i = 0; i < mask.length; i++) xd[i] = x.data[i] * mask[i];
    }
    const h = matmulBT(xd, this.loraA, rows, this.inFeatures, this.r);
    let y: Tensor;
    if (FUSION.lora) {
      y = this.base.forwardWith(x, this.upInit(h, rows));
    } else {
      y = this.base.forward(x);
      matmulBT(h, this.loraB, rows, this.r, this.outFeatures, this.scaling, y.data, 1);
    }
    this.saved = this.training ? { x, xd, h, mask } : null;
    return y;
  }

  /**
   * bias + s h B^T as the C init of x W0^T: written once, and in the base product's own pass
   * over y when the base is packed (fp32 or bf16) and the product is tall ({@link packedInit}).
   */
  private upInit(h: Float32Array, rows: number): OutputInit {
    const bias = this.base.bias ? this.base.bias.data : null;
    const { loraB, scaling, r, outFeatures } = this;
    const p = packedInit(rows)
      ? loraUpProduct(h, loraB, bias, scaling, rows, r, outFeatures, this.initOps)
      : null;
    return p ?? ((yd) => loraUpInit(h, loraB, bias, scaling, rows, r, outFeatures, yd));
  }

  /**
   * gh A as the C init of g W0: written once, and in the base product's own pass over the
   * input gradient when the base is packed (fp32 or bf16) and the product is tall
   * ({@link packedInit}).
   */
  private downInit(gh: Float32Array, rows: number): OutputInit {
    const { loraA, r, inFeatures } = this;
    const p = packedInit(rows) ? loraDownProduct(gh, loraA, r, inFeatures, this.initOps) : null;
    return p ?? ((into) => matmul(gh, loraA, rows, r, inFeatures, 1, into, 0));
  }

  backward(gradOut: Tensor, inputGrad = true): Tensor {
    if (this.merged)
      throw new InvalidStateError(
        'LoraLinear.backward: the adapter is merged; unmerge() before training',
      );
    const sv = this.saved;
    if (!sv) throw noForward('LoraLinear.backward');
    const outShape = [...sv.x.shape];
    outShape[outShape.length - 1] = this.outFeatures;
    checkGradShape(gradOut, outShape, 'LoraLinear.backward');
    const { batch, seq } = bsf(sv.x, 'LoraLinear.backward');
    const rows = batch * seq;
    const g = gradOut.data;
    // g_h = s * g B  [rows, r]
    const gh = matmul(g, this.loraB, rows, this.outFeatures, this.r, this.scaling);
    const trainA = this.loraAParam.requiresGrad;
    const trainB = this.loraBParam.requiresGrad;
    if (trainA || trainB) {
      if (this.gradMode === 'perSample') {
        // Per-sample gradients of B (s g^T h) and A (g_h^T drop(x)).
        const cap = this.beginCapture(batch);
        const method = this.normMethod;
        if (trainB)
          cap.addLinear(this.loraBParam, sv.h, g, seq, this.r, this.outFeatures, {
            scale: this.scaling,
            method,
          });
        if (trainA)
          cap.addLinear(this.loraAParam, sv.xd, gh, seq, this.inFeatures, this.r, { method });
      } else {
        if (trainB)
          addOuterGrad(
            g,
            sv.h,
            rows,
            this.r,
            this.outFeatures,
            this.loraBParam.rawGradBuffer(),
            this.scaling,
          );
        if (trainA)
          addOuterGrad(gh, sv.xd, rows, this.inFeatures, this.r, this.loraAParam.rawGradBuffer());
      }
    }
    if (inputGrad && !sv.mask && FUSION.lora) {
      const gi = this.base.backwardWith(gradOut, true, this.downInit(gh, rows));
      this.saved = null;
      return gi;
    }
    const gi = this.base.backward(gradOut, inputGrad);
    if (!inputGrad) {
      this.saved = null;
      return noInputGrad();
    }
    if (sv.mask) {
      const t = matmul(gh, this.loraA, rows, this.r, this.inFeatures);
      const m = sv.mask;
      const d = gi.data;
      for (let i = 0; i < d.length; i++) d[i] += t[i] * m[i];
    } else {
      matmul(gh, this.loraA, rows, this.r, this.inFeatures, 1, gi.data, 1);
    }
    this.saved = null;
    return gi;
  }
}
