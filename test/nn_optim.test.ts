/**
 * Optimizers and schedules against hand-computed updates.
 */
import { Parameter } from '../lib/nn';
import {
  Adam,
  AdamW,
  LRScheduler,
  SGD,
  constantSchedule,
  cosineSchedule,
  linearSchedule,
} from '../lib/optim';

function param(values: number[], grad: number[]): Parameter {
  const p = new Parameter(Float32Array.from(values), [values.length]);
  p.grad = Float32Array.from(grad);
  p.gradSource = 'private';
  return p;
}

test('SGD: plain, weight decay, momentum, nesterov', () => {
  const p = param([1, -2], [0.5, 0.25]);
  new SGD([p], { lr: 0.1, weightDecay: 0.1 }).step();
  expect(p.data[0]).toBeCloseTo(1 - 0.1 * (0.5 + 0.1), 6);
  expect(p.data[1]).toBeCloseTo(-2 - 0.1 * (0.25 - 0.2), 6);

  const q = param([1], [1]);
  const opt = new SGD([q], { lr: 0.5, momentum: 0.9 });
  opt.step(); // v = 1, w = 0.5
  q.grad = Float32Array.from([2]);
  opt.step(); // v = 0.9 + 2 = 2.9, w = 0.5 - 1.45
  expect(q.data[0]).toBeCloseTo(-0.95, 6);

  const n = param([0], [1]);
  const on = new SGD([n], { lr: 1, momentum: 0.5, nesterov: true });
  on.step(); // v = 1; w -= 1 + 0.5
  expect(n.data[0]).toBeCloseTo(-1.5, 6);
});

test('Adam and AdamW: first steps by hand', () => {
  const p = param([1], [0.2]);
  const a = new Adam([p], { lr: 0.01 });
  a.step();
  // m_hat = g, v_hat = g^2: step = lr * g / (|g| + eps)
  expect(p.data[0]).toBeCloseTo(1 - 0.01 * (0.2 / (0.2 + 1e-8)), 6);
  p.grad = Float32Array.from([-0.4]);
  a.step();
  const m = 0.9 * 0.1 * 0.2 + 0.1 * -0.4;
  const v = 0.999 * 0.001 * 0.04 + 0.001 * 0.16;
  const expected = 1 - 0.01 - (0.01 * (m / (1 - 0.81))) / (Math.sqrt(v / (1 - 0.999 ** 2)) + 1e-8);
  expect(p.data[0]).toBeCloseTo(expected, 5);

  const w = param([2], [0.5]);
  new AdamW([w], { lr: 0.1, weightDecay: 0.5 }).step();
  expect(w.data[0]).toBeCloseTo(2 - 0.1 * 0.5 * 2 - 0.1, 5);
  const l2 = param([2], [0.5]);
  new Adam([l2], { lr: 0.1, weightDecay: 0.5 }).step(); // gradient 0.5 + 1 -> normalized step 0.1
  expect(l2.data[0]).toBeCloseTo(1.9, 5);
});

test('DP-AdamBC: the noise variance is taken off the second moment, with a floor', () => {
  // Plain Adam over three steps, written out, with v_hat replaced by max(v_hat - phi, floor).
  const gs = [
    [0.3, -0.01],
    [-0.1, 0.02],
    [0.25, 0.005],
  ];
  const phi = 0.004;
  const floor = 1e-4;
  const p = param([1, -1], gs[0]);
  const a = new Adam([p], { lr: 0.01, noiseVariance: phi, varianceFloor: floor });
  const w = [1, -1];
  const m = [0, 0];
  const v = [0, 0];
  let floored = 0;
  gs.forEach((g, k) => {
    p.grad = Float32Array.from(g);
    a.step();
    const t = k + 1;
    for (let j = 0; j < 2; j++) {
      m[j] = 0.9 * m[j] + 0.1 * g[j];
      v[j] = 0.999 * v[j] + 0.001 * g[j] * g[j];
      const vh = v[j] / (1 - 0.999 ** t) - phi;
      if (vh < floor) floored++;
      w[j] -= (0.01 * (m[j] / (1 - 0.9 ** t))) / (Math.sqrt(Math.max(vh, floor)) + 1e-8);
    }
    expect(p.data[0]).toBeCloseTo(w[0], 5);
    expect(p.data[1]).toBeCloseTo(w[1], 5);
  });
  // Both branches of the max ran: the large coordinate above the floor, the small one on it.
  expect(floored).toBeGreaterThan(0);
  expect(floored).toBeLessThan(6);
  // Default floor: a tenth of the variance; 0 turns the correction off (plain Adam's update).
  const d = new Adam([param([0], [1])], { lr: 1, noiseVariance: 0.5 });
  expect(d.varianceFloor).toBeCloseTo(0.05, 12);
  const off = param([1], [0.2]);
  const o = new Adam([off], { lr: 0.01 });
  o.setNoiseVariance(0.01);
  o.setNoiseVariance(0);
  o.step();
  expect(off.data[0]).toBeCloseTo(1 - 0.01 * (0.2 / (0.2 + 1e-8)), 6);
  // Its settings are in the saved state only when it is on.
  expect(o.stateDict().hyper).not.toHaveProperty('noiseVariance');
  expect(a.stateDict().hyper).toMatchObject({ noiseVariance: phi, varianceFloor: floor });
  // Bad values are refused with the argument named.
  expect(() => new Adam([param([0], [1])], { lr: 1, noiseVariance: -1 })).toThrow(/noiseVariance/);
  expect(() => new Adam([param([0], [1])], { lr: 1, noiseVariance: NaN })).toThrow(/noiseVariance/);
  expect(() => o.setNoiseVariance(1, 0)).toThrow(/varianceFloor/);
  expect(() => o.setNoiseVariance(1, Infinity)).toThrow(/varianceFloor/);
});

test('optimizer state round trip continues identically', () => {
  const mk = () => param([1, 2, 3], [0.1, -0.2, 0.3]);
  const p1 = mk();
  const o1 = new Adam([p1], { lr: 0.05 });
  o1.step();
  const p2 = param(Array.from(p1.data), [0.1, -0.2, 0.3]);
  const o2 = new Adam([p2], { lr: 0.05 });
  o2.loadStateDict(o1.stateDict());
  p1.grad = Float32Array.from([0.3, 0.1, -0.5]);
  p2.grad = Float32Array.from([0.3, 0.1, -0.5]);
  o1.step();
  o2.step();
  expect(Array.from(p2.data)).toEqual(Array.from(p1.data));
  expect(() => new SGD([p2], { lr: 1 }).loadStateDict(o1.stateDict())).toThrow(/not 'sgd'/);
});

test('schedules', () => {
  expect(constantSchedule()(123)).toBe(1);
  const lin = linearSchedule({ warmupSteps: 2, totalSteps: 10 });
  expect([0, 1, 2, 6, 10, 20].map(lin)).toEqual([0.5, 1, 1, 0.5, 0, 0]);
  const cos = cosineSchedule({ warmupSteps: 0, totalSteps: 4, minFraction: 0.1 });
  expect(cos(0)).toBeCloseTo(1, 12);
  expect(cos(2)).toBeCloseTo(0.55, 12);
  expect(cos(4)).toBeCloseTo(0.1, 12);
  const p = param([0], [0]);
  const opt = new SGD([p], { lr: 1 });
  const s = new LRScheduler(opt, lin);
  expect(opt.lr).toBe(0.5);
  s.step();
  s.step();
  s.step();
  expect(opt.lr).toBeCloseTo(1 - 1 / 8, 12);
  expect(() => linearSchedule({ warmupSteps: 5, totalSteps: 3 })).toThrow(/exceeds/);
});
