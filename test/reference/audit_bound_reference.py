#!/usr/bin/python3
"""Independent high-precision values of the one-run audit bound (Steinke,
Nasr, Jagielski 2023) for test/audit_bound.test.ts.

Exact binomial coefficients (math.comb) and 60-digit decimal arithmetic for
q = 1 / (1 + exp(-eps)); the p-value is beta + 2 m delta alpha with
beta = P[Bin(r, q) >= v] and alpha = max_i P[v-i <= Bin(r, q) < v] / i; the
epsilon lower bound is found by bisection to 1e-12.  Run:
  /usr/bin/python3 test/reference/audit_bound_reference.py > test/reference/audit_bound_values.json
"""
import json
import math
from decimal import Decimal, getcontext

getcontext().prec = 60


def pvalue(m, r, v, eps, delta):
    eps = Decimal(eps)
    q = 1 / (1 + (-eps).exp())
    pm = [Decimal(math.comb(r, k)) * q**k * (1 - q) ** (r - k) for k in range(r + 1)]
    beta = sum(pm[v:], Decimal(0))
    alpha = Decimal(0)
    window = Decimal(0)
    for i in range(1, v + 1):
        window += pm[v - i]
        alpha = max(alpha, window / i)
    return min(Decimal(1), beta + 2 * m * Decimal(delta) * alpha)


def eps_lb(m, r, v, delta, p=Decimal("0.05")):
    if not pvalue(m, r, v, 0, delta) < p:
        return 0.0
    lo, hi = Decimal(0), Decimal(1)
    while pvalue(m, r, v, hi, delta) < p:
        lo, hi = hi, hi * 2
    while hi - lo > Decimal("1e-12"):
        mid = (lo + hi) / 2
        if pvalue(m, r, v, mid, delta) < p:
            lo = mid
        else:
            hi = mid
    return float(lo)


cases = [
    (1000, 100, 100, 0.0),
    (1000, 100, 100, 1e-5),
    (1000, 100, 90, 1e-5),
    (1000, 200, 150, 1e-5),
    (1000, 20, 20, 1e-5),
    (1000, 1000, 600, 1e-5),
    (100, 10, 10, 0.0),
    (1000, 100, 55, 1e-5),
]
out = {"cases": []}
for m, r, v, d in cases:
    out["cases"].append(
        {
            "m": m,
            "r": r,
            "v": v,
            "delta": d,
            "epsilonLowerBound": eps_lb(m, r, v, d),
            "pValueAt1": float(pvalue(m, r, v, 1, d)),
            "pValueAt2": float(pvalue(m, r, v, 2, d)),
        }
    )
print(json.dumps(out, indent=1))
