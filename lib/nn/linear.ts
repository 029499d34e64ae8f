/**
 * Linear layer y = x W^T + b with W [out, in]; weight and bias may be frozen
 * or trainable.  Per-sample gradients (a = the layer input, g = the output
 * gradient) go through a {@link PerSampleCapture}.
 */
import { InitRandom, kaimingUniform, uniformFill } from './init';
import { bsf, checkGradShape, noForward, noInputGrad } from './module';
import {
  addColumnSums,
  addOuterGrad,
  linearForward,
  matmul,
  matmulPacked,
  matmulWithInit,
  NormMethod,
} from './ops';
import type { OutputInit } from './ops';
import { PackedWeight } from './packed_weight';
import type { BaseDtype } from '../kernels/linalg';
import { PerSampleLayer } from './per_sample';
import { Parameter, Tensor } from './tensor';
import {
  MAX_ELEMENTS,
  requireElementCount,
  requireInt,
  requireLength,
  requireObject,
  requireOneOf,
} from '../validate';

/** The element types a frozen weight may be stored in (see {@link LinearOptions.baseDtype}). */
export const BASE_DTYPES: readonly BaseDtype[] = ['fp32', 'bf16'];

/** Options of {@link Linear}. */
export interface LinearOptions {
  /** Whether the layer has a bias (default true). */
  bias?: boolean;
  /** Whether training changes the weight and bias (default true). */
  trainable?: boolean;
  /** Initial weight [out, in] (copied); default kaiming-uniform(a = sqrt(5)). */
  weight?: Float32Array;
  /** Initial bias [out] (copied); default U(-1/sqrt(in), 1/sqrt(in)). */
  biasData?: Float32Array;
  /** Seed for the default initialization (public randomness). */
  seed?: number;
  /** Per-sample norm method for the weight (default 'auto'). */
  normMethod?: NormMethod;
  /**
   * Element type of the weight's packed copy while it is frozen (default `'fp32'`).
   * `'bf16'` stores it in bfloat16 (half the packed memory) and rounds the other operand of
   * its products (the input forward, the output gradient backward) to bfloat16, with fp32
   * accumulation: about twice the throughput where the CPU has AVX512_BF16. A trainable
   * weight always runs in fp32; the bias, LoRA products and all privacy arithmetic are fp32.
   */
  baseDtype?: BaseDtype;
}

/** Fully connected layer with optional per-sample gradient support. */
export class Linear extends PerSampleLayer {
  /** Input width. */
  readonly inFeatures: number;
  /** Output width. */
  readonly outFeatures: number;
  /** Weight [out, in], row-major. */
  readonly weight: Parameter;
  /** Bias [out], or null without one. */
  readonly bias: Parameter | null;
  /** How per-sample gradient norms are computed (`'auto'` picks ghost or direct by cost). */
  normMethod: NormMethod;
  private input: Tensor | null = null;
  /** The weight packed for the GEMM kernel while it is frozen. */
  private readonly packed: PackedWeight;

  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    requireObject('options', options);
    requireInt('inFeatures', inFeatures, { min: 1, max: MAX_ELEMENTS });
    requireInt('outFeatures', outFeatures, { min: 1, max: MAX_ELEMENTS });
    requireElementCount('outFeatures', [outFeatures, inFeatures]);
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const trainable = options.trainable ?? true;
    const rnd = new InitRandom(options.seed);
    let w: Float32Array;
    if (options.weight) {
      const n = inFeatures * outFeatures;
      w = Float32Array.from(
        requireLength('weight', options.weight, n, `${outFeatures}x${inFeatures}`),
      );
    } else {
      w = kaimingUniform(new Float32Array(inFeatures * outFeatures), inFeatures, Math.sqrt(5), rnd);
    }
    this.weight = new Parameter(w, [outFeatures, inFeatures], trainable);
    if (options.bias ?? true) {
      let b: Float32Array;
      if (options.biasData) {
        b = Float32Array.from(requireLength('biasData', options.biasData, outFeatures));
      } else {
        b = uniformFill(new Float32Array(outFeatures), 1 / Math.sqrt(inFeatures), rnd);
      }
      this.bias = new Parameter(b, [outFeatures], trainable);
    } else {
      this.bias = null;
    }
    this.normMethod = options.normMethod ?? 'auto';
    this.packed = new PackedWeight(this.weight, outFeatures, inFeatures);
    if (options.baseDtype !== undefined) this.baseDtype = options.baseDtype;
  }

  /**
   * Element type of the frozen weight's packed copy: `'fp32'` or `'bf16'` (see
   * {@link LinearOptions.baseDtype}). Setting it repacks at the next product.
   *
   * @throws InvalidArgumentError (`baseDtype`) for any other value
   */
  get baseDtype(): BaseDtype {
    return this.packed.dtype;
  }
  /** Stores the frozen weight's packed copy as `d` from the next product on (validated). */
  set baseDtype(d: BaseDtype) {
    this.packed.dtype = requireOneOf('baseDtype', d, BASE_DTYPES);
  }

  ownParameters(): Array<[string, Parameter]> {
    const out: Array<[string, Parameter]> = [['weight', this.weight]];
    if (this.bias) out.push(['bias', this.bias]);
    return out;
  }

  forward(x: Tensor): Tensor {
    return this.forwardWith(x, null);
  }

  /**
   * {@link Linear.forward} with the output's initial value written by `init` (every element,
   * in place of the bias) and the product added to it: a LoRA layer's adapter term as the C
   * init of the base product (a product init runs in the base product's pass over the output
   * when the weight is packed in fp32; see {@link OutputInit}).
   *
   * @internal
   */
  forwardWith(x: Tensor, init: OutputInit | null): Tensor {
    const { batch, seq } = bsf(x, 'Linear.forward', this.inFeatures);
    const rows = batch * seq;
    const y = linearForward(
      x.data,
      this.weight.data,
      this.bias ? this.bias.data : null,
      rows,
      this.inFeatures,
      this.outFeatures,
      this.packed.forward(),
      init,
    );
    this.input = this.training ? x : null;
    const shape = [...x.shape];
    shape[shape.length - 1] = this.outFeatures;
    return new Tensor(y, shape);
  }

  backward(gradOut: Tensor, inputGrad = true): Tensor {
    return this.backwardWith(gradOut, inputGrad, null);
  }

  /**
   * {@link Linear.backward} with the input gradient's initial value written by `init` (every
   * element) and g W added to it: a LoRA layer's adapter term as the C init of the base product
   * (a product init runs in the base product's pass over the input gradient when the weight is
   * packed in fp32; see {@link OutputInit}).
   *
   * @internal
   */
  backwardWith(gradOut: Tensor, inputGrad: boolean, init: OutputInit | null): Tensor {
    const x = this.input;
    if (!x) throw noForward('Linear.backward');
    const outShape = [...x.shape];
    outShape[outShape.length - 1] = this.outFeatures;
    checkGradShape(gradOut, outShape, 'Linear.backward');
    const { batch, seq } = bsf(x, 'Linear.backward');
    const rows = batch * seq;
    const g = gradOut.data;
    const trainW = this.weight.requiresGrad;
    const trainB = !!this.bias && this.bias.requiresGrad;
    if (trainW || trainB) {
      if (this.gradMode === 'perSample') {
        const cap = this.beginCapture(batch);
        if (trainW)
          cap.addLinear(this.weight, x.data, g, seq, this.inFeatures, this.outFeatures, {
            method: this.normMethod,
          });
        if (trainB) cap.addBias(this.bias, g, seq, this.outFeatures);
      } else {
        if (trainW)
          addOuterGrad(
            g,
            x.data,
            rows,
            this.inFeatures,
            this.outFeatures,
            this.weight.rawGradBuffer(),
          );
        if (trainB) addColumnSums(g, rows, this.outFeatures, this.bias.rawGradBuffer());
      }
    }
    if (!inputGrad) {
      this.input = null;
      return noInputGrad();
    }
    const wp = this.packed.backward();
    const gi = init
      ? matmulWithInit(g, this.weight.data, wp, rows, this.outFeatures, this.inFeatures, init)
      : wp
        ? matmulPacked(g, wp, rows, this.outFeatures, this.inFeatures)
        : matmul(g, this.weight.data, rows, this.outFeatures, this.inFeatures);
    this.input = null;
    return new Tensor(gi, x.shape);
  }
}
