/**
 * Wraps the linear projections of a model with LoRA by PEFT target names: a
 * projection whose module path equals a target or ends with `.<target>` is
 * replaced by a {@link LoraLinear} around it (PEFT's `target_modules` rule).
 * Containers that allow it expose `setChild(name, module)` (attention:
 * `q_proj`, `k_proj`, `v_proj`, `o_proj`; feed-forward: `fc1`, `fc2`).
 */
import { requireArray } from '../validate';
import { InvalidArgumentError } from '../errors';
import { Linear } from './linear';
import { LoraLinear, LoraOptions } from './lora_linear';
import { Module } from './module';

interface SettableContainer extends Module {
  setChild(name: string, m: Linear | LoraLinear): void;
}

function isSettable(m: Module): m is SettableContainer {
  return typeof (m as Partial<SettableContainer>).setChild === 'function';
}

/** True if `path` matches one of the PEFT `targets`. */
export function matchesTarget(path: string, targets: readonly string[]): boolean {
  return targets.some((t) => path === t || path.endsWith(`.${t}`));
}

/**
 * Wraps every matching frozen projection with LoRA (seeds `options.seed + i`
 * in module order, public randomness).
 *
 * @param model - the model (its projections are frozen by the wrap)
 * @param targets - PEFT target names, e.g. `['q_proj', 'v_proj']`
 * @param options - LoRA options shared by every adapter
 * @param filter - optional extra condition on the module path (e.g. only layer 1)
 * @returns the dotted paths wrapped, in module order
 */
export function applyLora(
  model: Module,
  targets: readonly string[],
  options: LoraOptions,
  filter: (path: string) => boolean = () => true,
): string[] {
  requireArray('targets', targets, true);
  const wrapped: string[] = [];
  for (const [path, m] of model.namedModules()) {
    if (!isSettable(m)) continue;
    for (const [name, child] of m.children()) {
      const full = path ? `${path}.${name}` : name;
      if (!(child instanceof Linear) || !matchesTarget(full, targets) || !filter(full)) continue;
      const seed = (options.seed ?? 0) + wrapped.length;
      m.setChild(name, new LoraLinear(child, { ...options, seed }));
      wrapped.push(full);
    }
  }
  if (wrapped.length === 0)
    throw new InvalidArgumentError(
      'targets',
      `no projection matches ${JSON.stringify(targets)} (known names: q_proj, k_proj, v_proj, o_proj, fc1, fc2)`,
    );
  return wrapped;
}
