/**
 * Huge-page advice for large new arrays (lib/kernels/linalg.ts `adviseHugePages`,
 * lib/nn/workspace.ts `newArray`): the advice never changes contents, is given exactly when
 * the array holds a whole 2 MiB-aligned page on Linux with transparent huge pages available,
 * and refuses anything but a Float32Array naming the argument; `newArray` hands out zeroed
 * arrays of the requested length with or without the advice; and the losses that allocate
 * their gradients through it give the plain formula's values at a size that takes the advice.
 */
import * as fs from 'fs';
import { adviseHugePages } from '../lib/kernels/linalg';
import { Tensor, mseLoss } from '../lib/nn';
import { BUFFER_REUSE, HUGE_PAGE_MIN_FLOATS, newArray } from '../lib/nn/workspace';

/** Whether this system can give huge-page advice: Linux with THP not set to `never`. */
function thpAvailable(): boolean {
  try {
    const mode = fs.readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8');
    return !/\[never\]/.test(mode);
  } catch {
    return false;
  }
}

describe('adviseHugePages', () => {
  it('leaves the contents as they are', () => {
    const n = 3 * HUGE_PAGE_MIN_FLOATS + 5;
    const a = new Float32Array(n);
    for (let i = 0; i < n; i += 997) a[i] = i * 0.5 - 7;
    const before = a.slice();
    adviseHugePages(a);
    let changed = 0;
    for (let i = 0; i < n; i++) if (!Object.is(a[i], before[i])) changed++;
    expect(changed).toBe(0);
    // Writes after the advice land where they should.
    for (let i = 0; i < n; i += 4093) a[i] = -i;
    for (let i = 0; i < n; i += 4093) expect(a[i]).toBe(-i);
  });

  it('is given for an array holding an aligned 2 MiB page, never for a small one', () => {
    expect(adviseHugePages(new Float32Array(1024))).toBe(false);
    expect(adviseHugePages(new Float32Array(0))).toBe(false);
    // A view of 6 MiB always holds a whole aligned 2 MiB page.
    const big = new Float32Array(2 * HUGE_PAGE_MIN_FLOATS);
    expect(adviseHugePages(big.subarray(1, 1 + (3 << 19)))).toBe(
      process.platform === 'linux' && thpAvailable(),
    );
  });

  it('refuses anything but a Float32Array, naming x', () => {
    expect(() => adviseHugePages(new Float64Array(4) as unknown as Float32Array)).toThrow(/x/);
    expect(() => adviseHugePages(null as unknown as Float32Array)).toThrow(/x/);
  });
});

describe('newArray', () => {
  afterEach(() => {
    BUFFER_REUSE.hugePages = true;
  });

  it.each([
    0,
    1,
    1000,
    HUGE_PAGE_MIN_FLOATS - 1,
    HUGE_PAGE_MIN_FLOATS,
    3 * HUGE_PAGE_MIN_FLOATS + 7,
  ])('gives %i zeros, with and without the advice', (n) => {
    for (const hp of [true, false]) {
      BUFFER_REUSE.hugePages = hp;
      const a = newArray(n);
      expect(a).toBeInstanceOf(Float32Array);
      expect(a.length).toBe(n);
      let nonzero = 0;
      for (let i = 0; i < n; i++) if (a[i] !== 0) nonzero++;
      expect(nonzero).toBe(0);
    }
  });
});

describe('losses on arrays that take the advice', () => {
  it('mseLoss gives the plain formula at 2^20 + 256 elements', () => {
    const batch = 4;
    const per = HUGE_PAGE_MIN_FLOATS / batch + 64;
    const n = batch * per;
    const p = new Float32Array(n);
    const t = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      p[i] = Math.fround(Math.sin(i * 0.37));
      t[i] = Math.fround(Math.cos(i * 0.11));
    }
    const r = mseLoss(new Tensor(p, [batch, per]), t);
    expect(r.grad.data.length).toBe(n);
    for (let i = 0; i < n; i += 101) {
      expect(r.grad.data[i]).toBe(Math.fround((2 * (p[i] - t[i])) / per));
    }
    for (let b = 0; b < batch; b++) {
      let s = 0;
      for (let j = 0; j < per; j++) s += (p[b * per + j] - t[b * per + j]) ** 2;
      expect(r.losses[b]).toBeCloseTo(s / per, 5);
    }
  });
});
