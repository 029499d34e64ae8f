/**
 * Sequential container: children named `0`, `1`, ... (paths `layers.0` when
 * nested under a parent's `layers` field).
 *
 * Memory: when every child is a library layer whose lifetimes are known here ({@link Linear},
 * {@link LoraLinear} over a plain `Linear`, {@link ReLU}, {@link GELU}, {@link Tanh}, or a
 * `Sequential` of these; exact classes, not subclasses, which may keep what they are given),
 * the activations and gradients that stay inside the model come from a workspace reused from
 * one pass to the next (lib/nn/workspace.ts) instead of new arrays every step; what is handed
 * to the caller (the output of `forward`, the input gradient of `backward`) is always a new
 * array, which the caller may keep.  Within backward, an output gradient that a child has
 * consumed is reused for the next one unless a pending per-sample capture still reads it.
 * With any other child, every pass allocates as before.
 */
import { GELU, ReLU, Tanh } from './activations';
import { Linear } from './linear';
import { LoraLinear } from './lora_linear';
import { Module } from './module';
import { captureMayRead } from './per_sample';
import { Tensor } from './tensor';
import {
  BUFFER_REUSE,
  Workspace,
  outsideWorkspace,
  releaseScratch,
  workspaceActive,
} from './workspace';
import { requireInstance } from '../validate';

/**
 * True if `m` is a library layer that keeps what it is given only until its own backward (or
 * in a per-sample capture, which the workspace checks), never hands out memory it keeps, and
 * allocates through the workspace: the condition for reusing a Sequential's internal buffers.
 */
function lifetimesKnown(m: Module): boolean {
  const c = m.constructor;
  if (c === Linear || c === ReLU || c === GELU || c === Tanh) return true;
  if (c === LoraLinear) return (m as LoraLinear).base.constructor === Linear;
  if (c === Sequential) return (m as Sequential).layers.every(lifetimesKnown);
  return false;
}

/** Runs its children in order; backward in reverse. */
export class Sequential extends Module {
  /** The layers, applied in order. */
  readonly layers: Module[];
  /**
   * What `backward(g)` does when its `inputGrad` argument is left out: `true` (the default)
   * computes the gradient with respect to the model input; `false` skips it (for a frozen
   * first layer, one full product per step) and returns an empty tensor, as
   * `backward(g, false)` does. Set it to `false` for a model fed with data, whose input
   * gradient nothing reads.
   */
  inputGrad = true;
  /** The reused activations and gradients (see the module comment). */
  private readonly workspace = new Workspace();

  constructor(...layers: Module[]) {
    super();
    layers.forEach((l, i) => requireInstance(`layers[${i}]`, l, Module, 'a Module'));
    this.layers = layers;
  }

  children(): Array<[string, Module]> {
    return this.layers.map((m, i) => [String(i), m]);
  }

  /**
   * The workspace plan of a pass: `'own'` (this model starts and owns the passes),
   * `'nested'` (an enclosing model's pass is active: use it, the owner handles lifetimes)
   * or `'none'` (a child of unknown lifetimes, or fewer than two children: plain allocation).
   */
  private plan(): 'own' | 'nested' | 'none' {
    if (!BUFFER_REUSE.sequential || this.layers.length < 2) return 'none';
    if (!this.layers.every(lifetimesKnown)) return 'none';
    return workspaceActive() ? 'nested' : 'own';
  }

  forward(x: Tensor): Tensor {
    const plan = this.plan();
    const n = this.layers.length;
    let h = x;
    if (plan !== 'own') {
      for (const l of this.layers) h = l.forward(h);
      return h;
    }
    this.workspace.run(this, true, () => {
      for (let i = 0; i < n - 1; i++) h = this.layers[i].forward(h);
    });
    // The output goes to the caller, who may keep it: new memory.
    return outsideWorkspace(() => this.layers[n - 1].forward(h));
  }

  /**
   * Runs the layers' backward in reverse. `inputGrad = false` lets the first layer skip
   * the gradient with respect to the model input (for a frozen first layer, one full
   * product per step) and returns an empty tensor instead of it; left out, it is
   * {@link Sequential.inputGrad} (default true).
   */
  backward(gradOut: Tensor, inputGrad = this.inputGrad): Tensor {
    const plan = this.plan();
    const n = this.layers.length;
    if (plan === 'none') {
      let g = gradOut;
      for (let i = n - 1; i >= 0; i--) g = this.layers[i].backward(g, i > 0 || inputGrad);
      return g;
    }
    // Gradients between children are internal: each is produced by child i + 1, read by
    // child i only, and reused once child i is done with it (unless a capture reads it).
    const inner = (): Tensor => {
      let g = gradOut;
      for (let i = n - 1; i >= 1; i--) {
        const gi = this.layers[i].backward(g, true);
        if (i < n - 1) this.reuse(g);
        g = gi;
      }
      return g;
    };
    if (plan === 'nested') {
      const g1 = inner();
      const g0 = this.layers[0].backward(g1, inputGrad);
      this.reuse(g1);
      return g0;
    }
    const g1 = this.workspace.run(this, false, inner);
    // The input gradient goes to the caller: new memory.
    const g0 = outsideWorkspace(() => this.layers[0].backward(g1, inputGrad));
    this.workspace.run(this, false, () => this.reuse(g1));
    return g0;
  }

  /** Hands `g` back to the active pass if no pending capture in this model may read it. */
  private reuse(g: Tensor): void {
    if (!captureMayRead(this, g.data.buffer)) releaseScratch(g.data);
  }
}
