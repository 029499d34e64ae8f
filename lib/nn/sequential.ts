/**
 * Sequential container: children named `0`, `1`, ... (paths `layers.0` when
 * nested under a parent's `layers` field).
 *
 * Memory: when every child is a library layer whose lifetimes are known here ({@link Linear},
 * {@link LoraLinear} over a plain `Linear`, {@link ReLU}, {@link GELU}, {@link Tanh}, or a
 * `Sequential` of these; exact classes, not subclasses, which may keep what they are given),
 * the activations and gradients that stay inside the model come from a workspace reused from
 * one pass to the next (lib/nn/workspace.ts) instead of new arrays every step; what is handed
 * to the caller (the output of `forward`, the input gradient of `backward`) is a new array,
 * which the caller may keep, unless the caller opts into reusing it ({@link
 * Sequential.reuseOutputs}).  Within backward, an output gradient that a child has
 * consumed, and an activation once the children that read it are past it, are reused for
 * the next gradients unless a pending per-sample capture still reads them.
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
  /**
   * Opt-in reuse of what this model hands to its caller (default `false`: a new array every
   * pass, which the caller may keep).  `true`: the output of `forward` and the input gradient
   * of `backward` are memory of the model, overwritten by its next `forward` (respectively
   * `backward`): read or copy them before the next pass.  This spares a training loop two
   * fresh arrays per step, whose first writes are one page fault per 4 KiB (tens of
   * milliseconds for a 25 MB batch of activations on a virtual machine).  Privacy is not at
   * stake: a per-sample capture never keeps a reference to these arrays (lib/nn/per_sample.ts).
   * Applies when the model reuses its internal buffers (library layers only, see the module
   * comment); otherwise every pass allocates as before.
   */
  reuseOutputs = false;
  /** The reused activations and gradients (see the module comment). */
  private readonly workspace = new Workspace();
  /** The output of `forward` when {@link Sequential.reuseOutputs} is set. */
  private readonly outputWorkspace = new Workspace();
  /** The input gradient of `backward` when {@link Sequential.reuseOutputs} is set. */
  private readonly inputGradWorkspace = new Workspace();
  /** The outputs of children 0..n-2 of the last forward in training mode (workspace memory). */
  private outputs: Tensor[] = [];

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
    this.outputs = [];
    let h = x;
    if (plan === 'none') {
      for (const l of this.layers) h = l.forward(h);
      return h;
    }
    // The outputs of children 0..n-2 (workspace memory), reused once backward is past them.
    const outputs: Tensor[] = [];
    const body = (): void => {
      for (let i = 0; i < n - 1; i++) {
        h = this.layers[i].forward(h);
        outputs.push(h);
      }
    };
    if (plan === 'nested') {
      body();
      h = this.layers[n - 1].forward(h);
    } else {
      this.workspace.run(this, true, body);
      // The output goes to the caller, who may keep it: new memory (unless reuseOutputs).
      const last = (): Tensor => this.layers[n - 1].forward(h);
      if (this.reuseOutputs) {
        this.outputWorkspace.recycle();
        h = this.outputWorkspace.run(this, false, last);
      } else h = outsideWorkspace(last);
    }
    if (this.training) this.outputs = outputs;
    return h;
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
    // child i only, and reused once child i is done with it.  Child i's output is read by
    // child i + 1 (its saved input) and by child i itself (an activation keeps its output),
    // so it is reused once child i's backward is done.  Neither is reused while a pending
    // per-sample capture reads it.
    const outputs = this.outputs;
    this.outputs = [];
    const inner = (): Tensor => {
      let g = gradOut;
      for (let i = n - 1; i >= 1; i--) {
        const gi = this.layers[i].backward(g, true);
        if (i < n - 1) {
          this.reuse(g);
          if (outputs.length === n - 1) this.reuse(outputs[i]);
        }
        g = gi;
      }
      return g;
    };
    const after0 = (g1: Tensor): void => {
      this.reuse(g1);
      if (outputs.length === n - 1) this.reuse(outputs[0]);
    };
    if (plan === 'nested') {
      const g1 = inner();
      const g0 = this.layers[0].backward(g1, inputGrad);
      after0(g1);
      return g0;
    }
    const g1 = this.workspace.run(this, false, inner);
    // The input gradient goes to the caller: new memory (unless reuseOutputs).
    const first = (): Tensor => this.layers[0].backward(g1, inputGrad);
    if (this.reuseOutputs) this.inputGradWorkspace.recycle();
    const g0 = this.reuseOutputs
      ? this.inputGradWorkspace.run(this, false, first)
      : outsideWorkspace(first);
    this.workspace.run(this, false, () => after0(g1));
    return g0;
  }

  /** Hands `t`'s memory back to the active pass if no pending capture in this model reads it. */
  private reuse(t: Tensor): void {
    if (!captureMayRead(this, t.data.buffer)) releaseScratch(t.data);
  }
}
