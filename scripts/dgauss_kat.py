#!/usr/bin/env python3
"""Known-answer vectors for the exact discrete Gaussian, from an independent
implementation in Python (exact big integers and fractions, no floating
point anywhere).

It implements the sampler's definition from its mathematics and the stream
contract of native/include/dplora.h, drawing every uniform from the same
ChaCha20 stream (RFC 8439, written here from the RFC) in the same order as
the C sampler:
  * group g of 64 samples reads words from position base + g * 2^26 with a
    fresh bit buffer; bits are taken most significant first from a word;
    whole words and bits come from one sequential position;
  * sigma^2 = a / b; T is the least integer >= 1 with T^2 b >= 2a;
  * a slot is one proposal: it reads five words W0..W4, then, only when a
    step needs more, further bits from the stream in step order:
      1. v uniform on [0, 2T) by one Lemire draw (W0 when 2T <= 2^32, else
         W0 2^32 + the next word), rejecting the slot when the low part is
         below 2^k mod 2T; u = v >> 1, s = v & 1;
      2. j = number of Bernoulli(e^-1) successes before the first failure,
         trial 1 on W1's high 16 bits, trial 2 on its low 16 bits; when both
         succeed, step 4's first two trials (W2's halves) run first (any
         failure rejects) and j's further trials read 16-bit chunks;
      3. x = j T + u, y = -x if s else x; y = 0 with s = 1 rejects;
      4. gamma = x^2 / (2 sigma^2) - j = q + r / den, den = 2a / gcd(b, 2a);
         q Bernoulli(e^-1) trials must all succeed (trial i's first chunk:
         W2's high half, low half, then the stream);
      5. Bernoulli(exp(-r / den)) by Algorithm 1 of Canonne, Kamath and
         Steinke (2020): where den <= 2^40 and r / den >= 2^-16, one uniform
         U with first 32 bits W3 gives k = 1 (U >= gamma) or 2
         (gamma^2 / 2 <= U < gamma); trials 3 and 4 (Bernoulli(gamma / k))
         read their first 16 bits from W4's halves; later trials are fresh;
         elsewhere every trial is fresh; accept when k is odd;
  * Bernoulli(e^-1) with a given first chunk is Algorithm 1 with gamma = 1
    read as k = min{i : U >= 1/i!} for i <= 7, fresh trials Bernoulli(1/i)
    beyond;
  * U < p for a uniform with some bits known compares exactly and reads the
    rest 16 bits at a time; Bernoulli(n / d) for d >= 2^111 draws U in
    [0, d) most significant chunk first (len(d-1) mod 32 bits, then words),
    rejecting U >= d;
  * the accepted slots in order are the samples; a group stops at 64.
The acceptance probability exp(-(x^2 / (2 sigma^2) - j)) turns the proposal
pmf (1 - e^-1) / (2T) e^-floor(|y| / T) into the discrete Gaussian; the
script checks that the exponent is never negative.

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


class Overflow(Exception):
    pass


def block_width(a, b):
    """The least T >= 1 with T^2 b >= 2a."""
    t = max(1, isqrt(2 * a // b))
    while t * t * b < 2 * a:
        t += 1
    while t > 1 and (t - 1) * (t - 1) * b >= 2 * a:
        t -= 1
    return t


class Sampler:
    def __init__(self, rd, a, b):
        self.rd = rd
        self.a, self.b = a, b
        self.t = block_width(a, b)
        g = gcd(b, 2 * a)
        self.bp, self.den = b // g, 2 * a // g
        self.seen = set()  # rare paths taken (for choosing the KAT positions)

    def less(self, frac):
        """U < frac for a fresh uniform U, read 16 bits at a time: with U =
        (w + U') / 2^16, U < frac iff U' < frac 2^16 - w, settled when that is
        <= 0 or >= 1 and otherwise the same question one chunk further."""
        while True:
            frac = frac * 65536 - self.rd.bits(16)
            if frac <= 0:
                return False
            if frac >= 1:
                return True

    def less_from(self, frac, w, width, tag):
        """U < frac where U's first `width` bits are w (the rest from the stream)."""
        rest = frac * (1 << width) - w
        if rest <= 0:
            return False
        if rest >= 1:
            return True
        self.seen.add(tag)
        return self.less(rest)

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

    def bern(self, p_num, p_den):
        """Bernoulli(p_num / p_den), unreduced (the denominator picks the draw)."""
        if p_num == 0:
            return False
        if p_num >= p_den:
            return True
        if p_den.bit_length() <= 111:
            return self.less(Fraction(p_num, p_den))
        self.seen.add('bern_big')
        return self.bern_big(p_num, p_den)

    def e1(self, w):
        """Bernoulli(exp(-1)) on a uniform U whose first 16 bits are w:
        Algorithm 1 with gamma = 1 stops at the first k whose trial fails and
        answers k odd; P(k > i) = 1/i!, so k = min{i : U >= 1/i!} for i <= 7,
        then fresh trials Bernoulli(1/k)."""
        k = 2
        while k <= 7:
            edge = Fraction(65536, factorial(k))  # 1/k! in units of the chunk
            if w + 1 <= edge:
                k += 1
                continue
            if w >= edge:
                break
            self.seen.add('e1_tie')
            if self.less(edge - w):
                k += 1
            break
        if k == 8:
            self.seen.add('e1_beyond7')
            while self.bern(1, k):
                k += 1
        return k % 2 == 1

    def alg1_from(self, n, d, k):
        """Algorithm 1 from trial k on: Bernoulli(n / (d k)), k, k + 1, ..."""
        while self.bern(n, d * k):
            k += 1
        return k % 2 == 1

    def exp_frac(self, r, den, w3, w4):
        """Bernoulli(exp(-r / den)), 0 <= r < den."""
        if r == 0:
            return True
        gamma = Fraction(r, den)
        if den > 1 << 40 or gamma < Fraction(1, 65536):
            self.seen.add('exp_fresh')
            return self.alg1_from(r, den, 1)
        if not self.less_from(gamma, w3, 32, 'cell_gamma'):
            return True  # k = 1
        if not self.less_from(gamma * gamma / 2, w3, 32, 'cell_gamma2'):
            return False  # k = 2
        self.seen.add('k_ge3')
        if not self.less_from(gamma / 3, w4 >> 16, 16, 'cell_k3'):
            return True  # k = 3
        if not self.less_from(gamma / 4, w4 & 0xFFFF, 16, 'cell_k4'):
            return False  # k = 4
        self.seen.add('k_ge5')
        return self.alg1_from(r, den, 5)

    def slot(self, w):
        """One proposal from the slice w (5 words): the sample, or None."""
        t, two_t = self.t, 2 * self.t
        if two_t <= 1 << 32:
            m = w[0] * two_t
            if m % (1 << 32) < (1 << 32) % two_t:
                return None
            v = m >> 32
        else:
            self.seen.add('lemire64')
            m = ((w[0] << 32) | self.rd.word()) * two_t
            if m % (1 << 64) < (1 << 64) % two_t:
                return None
            v = m >> 64
        u, s = v >> 1, v & 1
        j, pre = 0, 0
        if self.e1(w[1] >> 16):
            j = 1
            if self.e1(w[1] & 0xFFFF):
                # j >= 2: gamma >= j^2 - j >= 2, so step 4 has at least two
                # trials; they run now.
                if not self.e1(w[2] >> 16) or not self.e1(w[2] & 0xFFFF):
                    return None
                self.seen.add('j_ge2')
                pre, j = 2, 2
                while self.e1(self.rd.bits(16)):
                    j += 1
        x = j * t + u
        if x >= 1 << 63:
            raise Overflow()
        if x == 0 and s == 1:
            return None
        num = x * x * self.bp - j * self.den
        # The acceptance exponent x^2 / (2 sigma^2) - j, never negative.
        assert num >= 0 and Fraction(num, self.den) == Fraction(x * x * self.b, 2 * self.a) - j
        q, r = divmod(num, self.den)
        assert pre <= q
        for i in range(pre, q):
            if i >= 2:
                self.seen.add('q_ge3')
            c = (w[2] >> 16) if i == 0 else (w[2] & 0xFFFF) if i == 1 else self.rd.bits(16)
            if not self.e1(c):
                return None
        if not self.exp_frac(r, self.den, w[3], w[4]):
            return None
        return -x if s else x


def group_samples(stream, start, a, b, count, seen=None):
    smp = Sampler(Reader(stream, start, start + (1 << 26)), a, b)
    out = []
    while len(out) < count:
        w = [smp.rd.word() for _ in range(5)]
        y = smp.slot(w)
        if y is not None:
            out.append(y)
    if seen is not None:
        seen |= smp.seen
    return out


def samples(key, nonce, base, a, b, n, seen=None):
    s = Stream(key, nonce)
    out = []
    for g in range((n + 63) // 64):
        out += group_samples(s, base + (g << 26), a, b, min(64, n - 64 * g), seen)
    return out


# (name, sigma^2 numerator, denominator, base position, count, rare paths the
# first groups must take)
CASES = [
    ('tiny', 1, 100, 0, 96, ()),
    ('unit', 1, 1, 5, 128, ('q_ge3',)),
    ('third', 10, 3, 1 << 40, 128, ()),
    ('mid', 123456789, 1000, 77, 128, ('k_ge5',)),
    ('sigma_2p16', 1 << 32, 1, 0, 128, ('j_ge2', 'k_ge3')),
    ('huge', (1 << 62) + 12345, 7, 3, 64, ('exp_fresh',)),
    ('max', (1 << 64) - 1, 1, 0, 64, ('lemire64',)),
    ('den_2p64', (1 << 64) - 1, 1 << 62, 0, 64, ('exp_fresh',)),
    # sigma = 1000 at positions (found by search) where the first 64 samples
    # take rare exact paths: 1/i! inside the chunk's cell in Bernoulli(e^-1),
    # k > 7 there, gamma/3 inside W4's high chunk's cell.
    ('tie_e1', 10**6, 1, 7449083904, 64, ('e1_tie',)),
    ('e1_beyond7', 10**6, 1, 3154116608, 64, ('e1_beyond7',)),
    ('cell_k3', 10**6, 1, 15502147584, 64, ('cell_k3',)),
]
KEY = bytes(range(32))
NONCE = bytes([0, 0, 0, 9, 0, 0, 0, 0x4A, 0, 0, 0, 0])


def run_slot(a, b, pos, w):
    """One slot on slice w with its continuation from `pos`: (sample or None,
    continuation words used, rare paths taken)."""
    rd = Reader(Stream(KEY, NONCE), pos, pos + (1 << 26))
    smp = Sampler(rd, a, b)
    y = smp.slot(w)
    return y, rd.pos - pos, smp.seen


def slot_cases():
    """Slices chosen so that each rare step of the definition runs (the
    thresholds are computed here exactly; each case asserts its path)."""
    out = []

    def add(name, a, b, w, path, pos=1000):
        y, used, seen = run_slot(a, b, pos, w)
        assert path in seen or path == '', (name, path, seen)
        out.append((name, a, b, pos, w, y, used))

    def w0_for(a, b, u, s):
        """The least W0 whose Lemire draw on 2T gives v = 2u + s."""
        two_t = 2 * block_width(a, b)
        v = 2 * u + s
        w0 = -(-(v << 32) // two_t)
        while (w0 * two_t) % (1 << 32) < (1 << 32) % two_t:
            w0 += 1
        assert (w0 * two_t) >> 32 == v and w0 < 1 << 32
        return w0

    def floor32(f, bits):
        return (f.numerator << bits) // f.denominator

    a, b = 10**6, 1  # sigma = 1000, T = 1415, den = 2 * 10^6
    gamma = Fraction(999 * 999, 2 * 10**6)
    w0 = w0_for(a, b, 999, 0)
    j0 = 0xFFFFFFFF  # W1: the first Bernoulli(e^-1) trial fails: j = 0
    add('cell_gamma', a, b, [w0, j0, 0, floor32(gamma, 32), 0x12345678], 'cell_gamma')
    add('cell_gamma2', a, b, [w0, j0, 0, floor32(gamma * gamma / 2, 32), 0x12345678],
        'cell_gamma2')
    add('cell_k3', a, b, [w0, j0, 0, 0, (floor32(gamma / 3, 16) << 16) | 0xFFFF], 'cell_k3')
    add('cell_k4', a, b, [w0, j0, 0, 0, floor32(gamma / 4, 16)], 'cell_k4')
    add('k_ge5', a, b, [w0, j0, 0, 0, 0], 'k_ge5')
    add('small_gamma', a, b, [w0_for(a, b, 1, 1), j0, 0, 0, 0], 'exp_fresh')
    # Bernoulli(e^-1) on W1's high chunk: w == floor(2^16 / i!) for i = 3..7, and U < 1/7!.
    for i, tie in enumerate([10922, 2730, 546, 91, 13]):
        add('e1_tie_%d' % (i + 3), a, b, [w0, (tie << 16) | 0xFFFF, 0, 0, 0], 'e1_tie')
    add('e1_beyond7', a, b, [w0, (5 << 16) | 0xFFFF, 0, 0, 0], 'e1_beyond7')
    # j >= 2: both geometric trials succeed (w = 20000: 1/3! <= U < 1/2, k = 3), so
    # step 4's first two trials run, then j's further trials from the stream.
    ok = 20000
    add('j_ge2', a, b, [w0, (ok << 16) | ok, (ok << 16) | ok, 0, 0], 'j_ge2')
    add('j_ge2_reject', a, b, [w0, (ok << 16) | ok, (ok << 16) | 0xFFFF, 0, 0], '')
    # sigma = 1: T = 2, j = 1, x = 3: gamma = 9/2 - 1, q = 3, trial 3 from the stream.
    add('q_ge3', 1, 1, [w0_for(1, 1, 1, 0), (ok << 16) | 0xFFFF, (ok << 16) | ok, 0, 0],
        'q_ge3')
    # y = -0 rejects.
    add('minus_zero', 1, 1, [w0_for(1, 1, 0, 1), j0, 0, 0, 0], '')
    # 2T > 2^32: the Lemire draw takes a continuation word.
    add('lemire64', (1 << 64) - 1, 1, [0x89ABCDEF, j0, 0, 0x80000000, 0], 'lemire64')
    return out


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
    for name, a, b, base, n, paths in CASES:
        seen = set()
        vals = samples(KEY, NONCE, base, a, b, n, seen)
        assert set(paths) <= seen, (name, paths, seen)
        o.write('static const int64_t kKat_%s[%d] = {\n' % (name, n))
        for i in range(0, n, 8):
            o.write('    %s,\n' % ', '.join('INT64_C(%d)' % v for v in vals[i:i + 8]))
        o.write('};\n')
    o.write('\nstruct KatCase {\n  const char *name;\n  uint64_t num, den, base;\n'
            '  int64_t n;\n  const int64_t *expect;\n};\n')
    o.write('static const KatCase kKatCases[] = {\n')
    for name, a, b, base, n, _ in CASES:
        o.write('    {"%s", UINT64_C(%d), UINT64_C(%d), UINT64_C(%d), %d, kKat_%s},\n'
                % (name, a, b, base, n, name))
    o.write('};\n')
    o.write('\n// One slot on a chosen slice W0..W4, its continuation read from the stream\n'
            '// at `pos`: accepted (0/1), the sample, the continuation words used.\n')
    o.write('struct SlotCase {\n  const char *name;\n  uint64_t num, den, pos;\n'
            '  uint32_t w[5];\n  int accepted;\n  int64_t y;\n  uint64_t used;\n};\n')
    o.write('static const SlotCase kSlotCases[] = {\n')
    for name, a, b, pos, w, y, used in slot_cases():
        o.write('    {"%s", UINT64_C(%d), UINT64_C(%d), UINT64_C(%d), {%s}, %d, INT64_C(%d), %d},\n'
                % (name, a, b, pos, ', '.join('0x%08X' % v for v in w), y is not None,
                   y or 0, used))
    o.write('};\n')


if __name__ == '__main__':
    main()
