/**
 * Scratch memory reused from one forward/backward pass to the next.
 *
 * A layer allocates its outputs, saved activations and gradients through
 * {@link scratch}; outside a workspace that is a plain `new Float32Array(n)`,
 * inside {@link Workspace.run} it hands out a buffer the workspace keeps.
 * Freshly allocated memory is expensive (the kernel maps and zeroes every page
 * on first touch: on some virtual machines that costs more than the matrix
 * products of a transformer layer), so a model that runs many passes of
 * similar shapes (USE-Lite's encoder and classifier) runs each pass in its
 * own workspace: the buffers of pass n are handed out again in pass n+1.
 *
 * Lifetimes: a buffer handed out in a pass stays valid until the owner starts
 * its next pass.  A pass is started only when the owner's tree has no pending
 * per-sample capture (which may still reference activations and gradients of
 * the previous pass); otherwise the owner gets a fresh workspace and the old
 * buffers live as long as the capture.  The owner must not return a workspace
 * buffer to its caller: its final output (and a requested input gradient) is
 * allocated outside the workspace or copied out.
 *
 * Buffers from {@link scratch} are NOT zeroed inside a workspace (a layer that
 * needs zeros calls {@link scratchZeroed}).
 */
import { Module, isPerSampleModule } from './module';
import { adviseHugePages } from '../kernels/linalg';

/**
 * Switches for same-process A/B benchmarks (bench/phases.ts, bench/training.ts): `sequential`
 * lets a `Sequential` reuse its internal activations and gradients, `perSampleRows` lets
 * per-sample captures reuse the buffers of their materialized gradients, `hugePages` gives new
 * large arrays huge-page advice ({@link newArray}).  All three true by default; results are
 * bit-identical either way.  `poison` (tests only) fills every buffer a workspace
 * takes back (at a new pass or by {@link releaseScratch}) with NaN, so that a read after the
 * reuse point shows.  Internal, not part of the public API.
 */
export const BUFFER_REUSE = {
  sequential: true,
  perSampleRows: true,
  poison: false,
  hugePages: true,
};

/** Floats (4 MiB) from which {@link newArray} asks for huge pages: at least one whole 2 MiB page. */
export const HUGE_PAGE_MIN_FLOATS = 1 << 20;

/**
 * A new zeroed `Float32Array(n)`; from {@link HUGE_PAGE_MIN_FLOATS} floats on, with the advice
 * that the OS back it with transparent huge pages ({@link adviseHugePages}) given before its
 * first write.  A fresh large array is otherwise mapped one 4 KiB page fault at a time as it
 * is first written (a layer's output, a loss gradient: ~45 ms for 12 MiB on a virtual machine,
 * ~6 ms with the advice).  `BUFFER_REUSE.hugePages = false` leaves the advice out (A/B runs).
 */
export function newArray(n: number): Float32Array {
  const a = new Float32Array(n);
  if (n >= HUGE_PAGE_MIN_FLOATS && BUFFER_REUSE.hugePages) adviseHugePages(a);
  return a;
}

/** The workspace active while a model's pass runs (null: plain allocation). */
let active: Pass | null = null;

/** Passes a buffer may stay unused before a workspace frees it. */
const KEEP_PASSES = 4;

/** One workspace's buffers, handed out best-fit within a factor of two. */
class Pass {
  private readonly bufs: Float32Array[] = [];
  private readonly inUse: boolean[] = [];
  private readonly lastUsed: number[] = [];
  private pass = 0;

  /** Makes every buffer available again and frees those unused for a few passes. */
  begin(): void {
    this.pass++;
    for (let i = this.bufs.length - 1; i >= 0; i--) {
      this.inUse[i] = false;
      if (BUFFER_REUSE.poison) this.bufs[i].fill(NaN);
      if (this.pass - this.lastUsed[i] > KEEP_PASSES) {
        this.bufs.splice(i, 1);
        this.inUse.splice(i, 1);
        this.lastUsed.splice(i, 1);
      }
    }
  }

  take(n: number): Float32Array {
    let best = -1;
    for (let i = 0; i < this.bufs.length; i++) {
      const len = this.bufs[i].length;
      if (this.inUse[i] || len < n || len > 2 * n + 1024) continue;
      if (best < 0 || len < this.bufs[best].length) best = i;
    }
    if (best < 0) {
      best = this.bufs.length;
      this.bufs.push(newArray(n));
      this.inUse.push(false);
      this.lastUsed.push(this.pass);
    }
    this.inUse[best] = true;
    this.lastUsed[best] = this.pass;
    const b = this.bufs[best];
    return b.length === n ? b : b.subarray(0, n);
  }

  /**
   * Makes the buffer behind `b` available again within this pass; false (nothing done) if
   * `b` is not a view of a buffer this pass handed out and still counts as in use.
   */
  release(b: Float32Array): boolean {
    for (let i = 0; i < this.bufs.length; i++) {
      if (this.inUse[i] && this.bufs[i].buffer === b.buffer) {
        this.inUse[i] = false;
        if (BUFFER_REUSE.poison) this.bufs[i].fill(NaN);
        return true;
      }
    }
    return false;
  }

  /** Floats held. */
  size(): number {
    return this.bufs.reduce((s, b) => s + b.length, 0);
  }
}

/**
 * A `Float32Array(n)` for a layer's output, saved activations or gradients:
 * from the active workspace (contents undefined) or, outside one, a new zeroed array.
 */
export function scratch(n: number): Float32Array {
  return active ? active.take(n) : newArray(n);
}

/** {@link scratch} filled with zeros. */
export function scratchZeroed(n: number): Float32Array {
  if (!active) return newArray(n);
  const b = active.take(n);
  b.fill(0);
  return b;
}

/** True while a workspace is active (a model's pass hands out reused buffers). */
export function workspaceActive(): boolean {
  return active !== null;
}

/**
 * Runs `fn` with no workspace active, so that every {@link scratch} inside it is a new array:
 * for the layer whose output (or input gradient) a model hands to its caller, who may keep it.
 */
export function outsideWorkspace<T>(fn: () => T): T {
  const prev = active;
  active = null;
  try {
    return fn();
  } finally {
    active = prev;
  }
}

/**
 * Hands `b` back to the active workspace's pass before the pass ends, so that a later
 * {@link scratch} of the same pass may reuse its memory.  The caller guarantees that nothing
 * reads `b` any more (no layer's saved state, no pending per-sample capture, not the caller's
 * caller).  Returns false, doing nothing, outside a workspace or for memory the active pass
 * did not hand out (or already took back).
 */
export function releaseScratch(b: Float32Array): boolean {
  return active ? active.release(b) : false;
}

/** True if a module of `owner`'s tree holds a per-sample capture not yet accumulated. */
export function hasPendingCapture(owner: Module): boolean {
  return owner.namedModules().some(([, m]) => isPerSampleModule(m) && m.captureBatch() >= 0);
}

/**
 * The scratch memory of one model (see the module comment).  Internal to the
 * models that use it; not part of the public API.
 */
export class Workspace {
  private pass = new Pass();

  /**
   * Runs `fn` with {@link scratch} handing out this workspace's buffers.  With
   * `newPass`, the buffers of the previous pass are recycled first, unless a
   * module of `owner` still holds a per-sample capture (then a fresh set of
   * buffers is started and the old one is left to the capture).
   */
  run<T>(owner: Module, newPass: boolean, fn: () => T): T {
    if (newPass) {
      if (hasPendingCapture(owner)) this.pass = new Pass();
      this.pass.begin();
    }
    const prev = active;
    active = this.pass;
    try {
      return fn();
    } finally {
      active = prev;
    }
  }

  /**
   * Recycles the buffers of the previous pass whether or not a capture is pending: only for
   * memory that no per-sample capture can read (what a {@link Sequential} of library layers
   * hands to its caller: their captures keep no reference to it, lib/nn/per_sample.ts).
   */
  recycle(): void {
    this.pass.begin();
  }

  /** Floats held by the workspace (for tests and diagnostics). */
  floats(): number {
    return this.pass.size();
  }

  /** Drops every buffer (the next pass allocates again). */
  clear(): void {
    this.pass = new Pass();
  }
}
