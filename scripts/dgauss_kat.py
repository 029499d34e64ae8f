#!/usr/bin/env python3
"""Known-answer vectors for the exact discrete Gaussian, from an independent
implementation in Python (exact big integers and fractions, no floating
point anywhere).

It implements Canonne, Kamath and Steinke, "The Discrete Gaussian for
Differential Privacy" (2020), Algorithms 1-3, from the paper and the stream
contract of native/include/dplora.h, drawing every uniform from the same
ChaCha20 stream (RFC 8439, written here from the RFC) in the same order as
the C sampler:
  * group g of 64 samples reads words from position base + g * 2^26 with a
    fresh bit buffer; bits are taken most significant first from a word;
  * U < n/d for a fresh uniform U (0 < n < d < 2^112): U is read in 16-bit
    chunks, most significant first, and compared exactly with n/d (no
    rejection); Bernoulli(n/d) for d >= 2^111 instead draws U uniform in
    [0, d) most significant chunk first (len(d-1) mod 32 bits, then words),
    rejecting U >= d and deciding U < n as soon as the prefix settles it;
  * Bernoulli(exp(-1)) by Algorithm 1 read as k = min{j : U >= 1/j!} on one
    uniform U for j <= 7, fresh trials Bernoulli(1/j) beyond;
  * Bernoulli(exp(-n/d)), n <= d, by Algorithm 1 with unreduced d*k; where
    d <= 2^40 and n/d >= 2^-16, one uniform settles the first two trials
    (k = 1 if U >= n/d, k = 2 if (n/d)^2/2 <= U < n/d);
    exp(-(q + r/d)) as q trials of exp(-1) then exp(-r/d);
  * uniform in [0, t): Lemire multiply-and-reject on whole words;
  * discrete Laplace (Algorithm 2, s = 1), discrete Gaussian (Algorithm 3)
    with t = floor(sigma) or floor(sigma) + 1 (laplace_scale) and the
    acceptance exponent's numerator and denominator divided by
    gcd(a, b t)^2.
The acceptance exponent of Algorithm 3 is cross-checked as a Fraction
against (|y| - sigma^2/t)^2 / (2 sigma^2).

Usage: python3 scripts/dgauss_kat.py > native/nofpu/dgauss_kat_vectors.h
"""
from fractions import Fraction
from math import factorial, gcd, isqrt
import sys

M32 = (1 << 32) - 1


def rotl(x, n):
    return ((x << n) | (x >> (32 - n))) & M32


def chacha20_block(key_words, counter, nonce_words):
    c = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    s = c + list(key_words) + [counter & M32] + list(nonce_words)
    x = list(s)

    def qr(a, b, cc, d):
        x[a] = (x[a] + x[b]) & M32; x[d] = rotl(x[d] ^ x[a], 16)
        x[cc] = (x[cc] + x[d]) & M32; x[b] = rotl(x[b] ^ x[cc], 12)
        x[a] = (x[a] + x[b]) & M32; x[d] = rotl(x[d] ^ x[a], 8)
        x[cc] = (x[cc] + x[d]) & M32; x[b] = rotl(x[b] ^ x[cc], 7)

    for _ in range(10):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)
    return [(x[i] + s[i]) & M32 for i in range(16)]


def le_words(b):
    return [int.from_bytes(b[4 * i:4 * i + 4], 'little') for i in range(len(b) // 4)]


class Stream:
    def __init__(self, key, nonce):
        self.k = le_words(key)
        self.n = le_words(nonce)
        self.cache = {}

    def word(self, j):
        blk = j >> 4
        if blk not in self.cache:
            n0 = (self.n[0] + (blk >> 32)) & M32
            self.cache = {blk: chacha20_block(self.k, blk, [n0, self.n[1], self.n[2]])}
        return self.cache[blk][j & 15]


class Exhausted(Exception):
    pass


class Reader:
    def __init__(self, stream, pos, limit):
        self.s, self.pos, self.limit = stream, pos, limit
        self.buf, self.cnt = 0, 0

    def word(self):
        if self.pos >= self.limit:
            raise Exhausted()
        w = self.s.word(self.pos)
        self.pos += 1
        return w

    def bits(self, n):
        r = 0
        while n > 0:
            if self.cnt == 0:
                self.buf, self.cnt = self.word(), 32
            take = min(n, self.cnt)
            r = (r << take) | ((self.buf >> (self.cnt - take)) & ((1 << take) - 1))
            self.cnt -= take
            n -= take
        return r


class Sampler:
    def __init__(self, rd):
        self.rd = rd

    def lemire(self, t, nbits):
        draw = self.rd.word if nbits == 32 else (lambda: self.rd.bits(nbits))
        mask = (1 << nbits) - 1
        m = draw() * t
        if (m & mask) < t:
            thresh = ((1 << nbits) - t) % t
            while (m & mask) < thresh:
                m = draw() * t
        return m >> nbits

    def uniform(self, t):
        if t == 1:
            return 0
        if t <= 1 << 32:
            return self.lemire(t, 32)
        raise ValueError('t > 2^32 cannot occur for 64-bit sigma^2')

    def bern_big(self, n, d):
        ln = (d - 1).bit_length()
        d_above = (d >> ln) != 0
        first = ln - 32 * ((ln - 1) // 32)
        while True:
            vs_n, vs_d, reject = 0, (-1 if d_above else 0), False
            rem, c = ln, first
            while rem > 0:
                u = self.rd.word() if c == 32 else self.rd.bits(c)
                mask = (1 << c) - 1
                nc, dc = (n >> (rem - c)) & mask, (d >> (rem - c)) & mask
                if vs_n == 0:
                    if u < nc:
                        return True
                    if u > nc:
                        vs_n = 1
                if vs_d == 0:
                    if u < dc:
                        vs_d = -1
                    elif u > dc:
                        reject = True
                        break
                if vs_n == 1 and vs_d == -1:
                    return False
                rem -= c
                c = 32
            if reject or vs_d == 0:
                continue
            return False

    def less(self, n, d):
        """U < n/d for a fresh uniform U in [0, 1), read 16 bits at a time.

        With U = (w + U') / 2^16: U < n/d iff U' < n 2^16 / d - w, which is
        settled when that quantity is <= 0 or >= 1 and otherwise is the same
        question one chunk further down."""
        frac = Fraction(n, d)
        while True:
            frac = frac * 65536 - self.rd.bits(16)
            if frac <= 0:
                return False
            if frac >= 1:
                return True

    def bern(self, p_num, p_den):
        """Bernoulli(p_num / p_den), unreduced (the denominator picks the draw)."""
        if p_num == 0:
            return False
        if p_num >= p_den:
            return True
        if p_den.bit_length() <= 111:
            return self.less(p_num, p_den)
        return self.bern_big(p_num, p_den)

    def bern_e1(self):
        """Bernoulli(exp(-1)): Algorithm 1 with gamma = 1 stops at the first k
        whose trial fails and answers k odd; P(k > j) = 1/j!, so the first
        j = 2..7 are read off one uniform U (k = min{j : U >= 1/j!})."""
        w = self.rd.bits(16)
        k = 2
        while k <= 7:
            # Is U < 1/k! ?  U in [w, w + 1) / 2^16.
            edge = Fraction(65536, factorial(k))
            if w + 1 <= edge:
                k += 1
                continue
            if w >= edge:
                break
            # 1/k! lies in w's cell: compare the rest of U with edge - w.
            rest = edge - w
            if self.less(rest.numerator, rest.denominator):
                k += 1
            break
        if k == 8:
            while self.bern(1, k):
                k += 1
        return k % 2 == 1

    def bern_exp_le1(self, n, d):
        """Algorithm 1 for gamma = n/d in [0, 1]."""
        assert 0 <= n <= d
        if n == 0:
            return True
        if n == d:
            return self.bern_e1()
        k = 1
        gamma = Fraction(n, d)
        if d <= 1 << 40 and gamma >= Fraction(1, 65536):
            # One uniform U for the first two trials: k = 1 if U >= gamma,
            # k = 2 if gamma^2/2 <= U < gamma, else fresh trials from k = 3.
            w = self.rd.bits(16)
            lo, hi = Fraction(w, 65536), Fraction(w + 1, 65536)
            if lo >= gamma:
                return True
            if hi > gamma:  # gamma inside w's cell (w >= 1 here)
                rest = gamma * 65536 - w
                below = self.less(rest.numerator, rest.denominator)
                assert not below or gamma * gamma / 2 < lo
                return not below
            g2 = gamma * gamma / 2
            if lo >= g2:
                return False
            if hi > g2:
                rest = g2 * 65536 - w
                if not self.less(rest.numerator, rest.denominator):
                    return False
            k = 3
        while True:
            assert d * k < 1 << 128
            if not self.bern(n, d * k):
                break
            k += 1
        return k % 2 == 1

    def bern_exp(self, q, r, d):
        for _ in range(q):
            if not self.bern_e1():
                return False
        return self.bern_exp_le1(r, d)

    def dlap(self, t):
        """Algorithm 2 with s = 1: P(y) proportional to exp(-|y|/t)."""
        while True:
            u = self.uniform(t)
            if not self.bern_exp_le1(u, t):
                continue
            v = 0
            while self.bern_e1():
                v += 1
            x = u + t * v
            neg = self.rd.bits(1)
            if neg and x == 0:
                continue
            return -x if neg else x

    def dgauss(self, a, b):
        """Algorithm 3, sigma^2 = a / b."""
        sigma2 = Fraction(a, b)
        t = laplace_scale(a, b)
        g = gcd(a, b * t)  # taken out of |y| b t - a
        den = 2 * (a // g) * (b * t // g) * t
        while True:
            y = self.dlap(t)
            diff = abs(abs(y) * (b * t // g) - a // g)
            q, r = divmod(diff * diff, den)
            assert Fraction(q) + Fraction(r, den) == (abs(y) - sigma2 / t) ** 2 / (2 * sigma2)
            if self.bern_exp(q, r, den):
                return y


def laplace_scale(a, b):
    """The scale t of the discrete Laplace proposal: floor(sigma) or
    floor(sigma) + 1, whichever has the smaller t exp(sigma^2 / (2 t^2))
    when ln(1 + 1/s) is taken as 2 / (2 s + 1) (first order above 2^20)."""
    s = isqrt(a // b)
    if s == 0:
        return 1
    if s < 1 << 20:
        lower = a * (2 * s + 1) ** 2 < 4 * b * s * s * (s + 1) ** 2
    else:
        lower = 4 * (a - b * s * s) < b * (4 * s + 3)
    return s if lower else s + 1


def samples(key, nonce, base, a, b, n):
    s = Stream(key, nonce)
    out = []
    for g in range((n + 63) // 64):
        start = base + (g << 26)
        smp = Sampler(Reader(s, start, start + (1 << 26)))
        for _ in range(min(64, n - 64 * g)):
            out.append(smp.dgauss(a, b))
    return out


# (name, sigma^2 numerator, denominator, base position, count)
CASES = [
    ('tiny', 1, 100, 0, 96),
    ('unit', 1, 1, 5, 128),
    ('third', 10, 3, 1 << 40, 128),
    ('mid', 123456789, 1000, 77, 128),
    ('sigma_2p16', 1 << 32, 1, 0, 128),
    ('huge', (1 << 62) + 12345, 7, 3, 64),
    # sigma = 1000 at positions (found by search) where the first 64 samples
    # take the rare exact paths: 1/j! inside the chunk's cell in
    # Bernoulli(exp(-1)), k > 7 there, and gamma or gamma^2/2 inside the
    # chunk's cell in the two-trial read of Algorithm 1.
    ('tie_e1', 10**6, 1, 12482248704, 64),
    ('e1_beyond7', 10**6, 1, 1946157056, 64),
    ('tie_first', 10**6, 1, 8321499136, 64),
    ('tie_second', 10**6, 1, 8388608000, 64),
]
KEY = bytes(range(32))
NONCE = bytes([0, 0, 0, 9, 0, 0, 0, 0x4A, 0, 0, 0, 0])


def rfc_check():
    # RFC 8439 section 2.3.2 test vector (first and last words).
    w = chacha20_block(le_words(KEY), 1, le_words(NONCE))
    assert w[0] == 0xE4E7F110 and w[15] == 0x4E3C50A2, [hex(v) for v in w]


def main():
    rfc_check()
    o = sys.stdout
    o.write('// Generated by scripts/dgauss_kat.py (independent Python implementation\n')
    o.write('// with exact integers and fractions). Do not edit.\n')
    o.write('// clang-format off\n')
    o.write('#pragma once\n#include <stdint.h>\n\n')
    o.write('static const uint8_t kKatKey[32] = {%s};\n' % ', '.join(str(v) for v in KEY))
    o.write('static const uint8_t kKatNonce[12] = {%s};\n\n' % ', '.join(str(v) for v in NONCE))
    for name, a, b, base, n in CASES:
        vals = samples(KEY, NONCE, base, a, b, n)
        o.write('static const int64_t kKat_%s[%d] = {\n' % (name, n))
        for i in range(0, n, 8):
            o.write('    %s,\n' % ', '.join('INT64_C(%d)' % v for v in vals[i:i + 8]))
        o.write('};\n')
    o.write('\nstruct KatCase {\n  const char *name;\n  uint64_t num, den, base;\n'
            '  int64_t n;\n  const int64_t *expect;\n};\n')
    o.write('static const KatCase kKatCases[] = {\n')
    for name, a, b, base, n in CASES:
        o.write('    {"%s", UINT64_C(%d), UINT64_C(%d), UINT64_C(%d), %d, kKat_%s},\n'
                % (name, a, b, base, n, name))
    o.write('};\n')


if __name__ == '__main__':
    main()
