/**
 * Where a training step's CPU time goes, call by call: every function of the native addon is
 * wrapped with a timer (process CPU time and minor page faults around each call; with
 * DPLORA_THREADS=1 that is the call's own work), the steps are run alternating, and the time
 * outside the addon (JavaScript, allocation, garbage collection) is the step's CPU time minus
 * the calls'.  Products are told apart by their shape (`sgemm MxNxK`), per-sample gradients
 * by their sides.  Used by bench/phases.ts with `DPLORA_PHASES_PROFILE=1`.
 */
import { loadAddon } from '../lib/native';
import { median } from './util';

/** One profiled addon function (or product shape) of one step kind. */
export interface ProfileRow {
  /** Step kind (the key of the step in the input). */
  step: string;
  /** Addon function, with the product shape for sgemm and the sides for perSampleGrads. */
  call: string;
  /** Calls per step. */
  calls: number;
  /** CPU ms per step (mean over the timed steps). */
  ms: number;
  /** Minor page faults per step (mean). */
  faults: number;
}

/** CPU ms (user + system) of the process. */
function cpuNow(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
}

/** A short name for one addon call: the function, plus the shape of products. */
function callName(name: string, args: unknown[]): string {
  if (name === 'sgemm') {
    const o = args[3] as { m: number; n: number; k: number; transA?: boolean; transB?: boolean };
    return `sgemm ${o.m}x${o.n}x${o.k}${o.transA ? ' tA' : ''}${o.transB ? ' tB' : ''}`;
  }
  if (name === 'perSampleGrads') {
    const s = args[2] as { inDim: number; outDim: number };
    return `perSampleGrads ${s.outDim}x${s.inDim}`;
  }
  return name;
}

/**
 * Runs each step of `steps` once untimed, then `reps` times alternating, with every addon call
 * timed; returns per step kind the calls (sorted by time) followed by two summary rows:
 * `(outside the addon)` and `(whole step)` (median step CPU ms and page faults).
 */
export function profileSteps(steps: Record<string, () => void>, reps: number): ProfileRow[] {
  const addon = loadAddon() as unknown as Record<string, (...args: unknown[]) => unknown>;
  const saved = new Map(Object.entries(addon));
  let acc: Map<string, { ms: number; calls: number; faults: number }> | null = null;
  for (const [name, fn] of saved) {
    if (typeof fn !== 'function') continue;
    addon[name] = (...args: unknown[]): unknown => {
      if (!acc) return fn(...args);
      const f0 = process.resourceUsage().minorPageFault;
      const c0 = cpuNow();
      const out = fn(...args);
      const ms = cpuNow() - c0;
      const key = callName(name, args);
      const e = acc.get(key) ?? { ms: 0, calls: 0, faults: 0 };
      e.ms += ms;
      e.calls++;
      e.faults += process.resourceUsage().minorPageFault - f0;
      acc.set(key, e);
      return out;
    };
  }
  const kinds = Object.keys(steps);
  const per = new Map(
    kinds.map((k) => [k, new Map<string, { ms: number; calls: number; faults: number }>()]),
  );
  const whole = new Map(kinds.map((k) => [k, [] as Array<{ ms: number; faults: number }>]));
  try {
    for (let i = 0; i <= reps; i++) {
      for (const k of kinds) {
        acc = i > 0 ? per.get(k)! : null;
        const f0 = process.resourceUsage().minorPageFault;
        const c0 = cpuNow();
        steps[k]();
        const ms = cpuNow() - c0;
        acc = null;
        if (i > 0) whole.get(k)!.push({ ms, faults: process.resourceUsage().minorPageFault - f0 });
      }
    }
  } finally {
    acc = null;
    for (const [name, fn] of saved) addon[name] = fn;
  }
  const rows: ProfileRow[] = [];
  for (const k of kinds) {
    const calls = [...per.get(k)!.entries()].sort((a, b) => b[1].ms - a[1].ms);
    let inCalls = 0;
    for (const [call, e] of calls) {
      inCalls += e.ms;
      rows.push({ step: k, call, calls: e.calls / reps, ms: e.ms / reps, faults: e.faults / reps });
    }
    const w = whole.get(k)!;
    const meanMs = w.reduce((s, x) => s + x.ms, 0) / reps;
    const meanFaults = w.reduce((s, x) => s + x.faults, 0) / reps;
    const callFaults = calls.reduce((s, [, e]) => s + e.faults, 0) / reps;
    rows.push({
      step: k,
      call: '(outside the addon: JS, allocation, GC; mean)',
      calls: 0,
      ms: meanMs - inCalls / reps,
      faults: meanFaults - callFaults,
    });
    rows.push({
      step: k,
      call: '(whole step, median)',
      calls: 0,
      ms: median(w.map((x) => x.ms)),
      faults: median(w.map((x) => x.faults)),
    });
  }
  return rows;
}
