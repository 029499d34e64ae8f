/** Plain BigInt reference of the fixed-point clipping (algorithms.md section 4). */

/** floor(sqrt(n)) for n >= 0 by Newton's method on BigInt. */
export function isqrt(n: bigint): bigint {
  if (n < 0n) throw new Error('negative');
  if (n < 2n) return n;
  let x = BigInt(Math.floor(Math.sqrt(Number(n))));
  // Fix the float estimate exactly.
  while (x * x > n) x--;
  while ((x + 1n) * (x + 1n) <= n) x++;
  return x;
}

export function ceilIsqrt(n: bigint): bigint {
  const r = isqrt(n);
  return r * r === n ? r : r + 1n;
}

/** One row clipped as the native kernel documents. */
export function clipRow(row: ArrayLike<number>, clipInt: number): bigint[] {
  const c = BigInt(clipInt);
  let n2 = 0n;
  for (let j = 0; j < row.length; j++) n2 += BigInt(row[j]) ** 2n;
  if (n2 <= c * c) return Array.from(row, (v) => BigInt(v));
  const k = (c << 32n) / ceilIsqrt(n2);
  return Array.from(row, (v) => {
    const g = BigInt(v);
    const mag = ((g < 0n ? -g : g) * k) >> 32n;
    return g < 0n ? -mag : mag;
  });
}

/** Reference clipped sum over a [batch, dim] matrix. */
export function clipSumRef(
  grads: Int32Array,
  batch: number,
  dim: number,
  clipInt: number,
): { sum: bigint[]; clipped: number } {
  const sum = new Array<bigint>(dim).fill(0n);
  let clipped = 0;
  const c2 = BigInt(clipInt) ** 2n;
  for (let i = 0; i < batch; i++) {
    const row = grads.subarray(i * dim, (i + 1) * dim);
    let n2 = 0n;
    for (let j = 0; j < dim; j++) n2 += BigInt(row[j]) ** 2n;
    if (n2 > c2) clipped++;
    const v = clipRow(row, clipInt);
    for (let j = 0; j < dim; j++) sum[j] += v[j];
  }
  return { sum, clipped };
}
