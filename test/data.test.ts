import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  loadSpamCorpus,
  splitSpamCorpus,
  keyFraction,
  PUBLIC_GROUPS,
  PRIVATE_GROUPS,
} from '../lib/data/spam_corpus';
import { featurize, splitMail, DEFAULT_FEATURIZER } from '../lib/data/featurize';
import {
  parseCsv,
  parseCsvData,
  parseJsonl,
  loadUserData,
  DataFormatError,
} from '../lib/data/user_data';
import { InvalidArgumentError } from '../lib/errors';

describe('spam corpus split', () => {
  const mails = loadSpamCorpus();

  test('corpus: 6046 mails, unique keys, spam label from group', () => {
    expect(mails.length).toBe(6046);
    expect(new Set(mails.map((m) => m.key)).size).toBe(6046);
    expect(mails.filter((m) => m.label === 1).length).toBe(500 + 1396);
  });

  test('parts are disjoint, cover the corpus, by group, and deterministic', () => {
    const s = splitSpamCorpus(mails);
    expect(s.public.length + s.private.length + s.heldout.length).toBe(6046);
    const keys = [s.public, s.private, s.heldout].map((p) => new Set(p.map((m) => m.key)));
    for (const k of keys[1]) expect(keys[2].has(k)).toBe(false);
    expect(s.public.every((m) => PUBLIC_GROUPS.includes(m.group))).toBe(true);
    expect([...s.private, ...s.heldout].every((m) => PRIVATE_GROUPS.includes(m.group))).toBe(true);
    expect(s.public.length).toBe(3000);
    // heldout ~25% of 3046: binomial sd ~ 24, allow 5 sd
    expect(Math.abs(s.heldout.length - 0.25 * 3046)).toBeLessThan(120);
    // deterministic and independent of input order
    const s2 = splitSpamCorpus([...mails].reverse());
    expect(new Set(s2.heldout.map((m) => m.key))).toEqual(keys[2]);
    // the split rule is the documented one
    for (const m of s.heldout.slice(0, 50)) expect(keyFraction(m.key)).toBeLessThan(0.25);
    // both classes in every part
    for (const p of [s.public, s.private, s.heldout]) {
      expect(p.some((m) => m.label === 1)).toBe(true);
      expect(p.some((m) => m.label === 0)).toBe(true);
    }
  });

  test('limit gives a deterministic subsample of the requested size', () => {
    const a = splitSpamCorpus(mails, { limit: 600 });
    const b = splitSpamCorpus(mails, { limit: 600 });
    expect(a.public.length + a.private.length + a.heldout.length).toBe(600);
    expect(a.private.map((m) => m.key)).toEqual(b.private.map((m) => m.key));
    expect(() => splitSpamCorpus(mails, { limit: 3 })).toThrow(InvalidArgumentError);
  });
});

describe('featurizer', () => {
  const mail = (headers: string, subject: string, body: string) =>
    `From a@b  Mon\nReceived: ${headers}\nSubject: ${subject}\nX-Other: 1\n\n${body}`;
  const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  const D = DEFAULT_FEATURIZER.dim;

  test('split keeps Subject, drops other headers', () => {
    expect(splitMail(mail('relay.example.com', 'Cheap meds', 'Hello there'))).toEqual({
      subject: 'Cheap meds',
      body: 'Hello there',
    });
    expect(splitMail('just text\n\nwith a blank line')).toEqual({
      subject: '',
      body: 'just text\n\nwith a blank line',
    });
    expect(splitMail('Subject: multi\n  line\nX: y\n\nb').subject).toBe('multi line');
  });

  test('unit L2 norm, non-negative, deterministic, header-invariant, case-insensitive', () => {
    const a = mail('host1 [1.2.3.4]', 'Win money now', 'Click here to WIN $$$ today!!!');
    const b = mail('another.host [5.6.7.8]', 'Win money now', 'click here to win $$$ today!!!');
    const c = mail('host1 [1.2.3.4]', 'Meeting notes', 'Click here to WIN $$$ today!!!');
    const X = featurize([a, b, c, a]);
    const rows = [0, 1, 2, 3].map((i) => X.subarray(i * D, (i + 1) * D));
    for (const r of rows) {
      expect(norm(r)).toBeCloseTo(1, 5);
      expect(r.every((x) => x >= 0)).toBe(true);
    }
    expect(Array.from(rows[0])).toEqual(Array.from(rows[3]));
    expect(Array.from(rows[0])).toEqual(Array.from(rows[1]));
    expect(Array.from(rows[0])).not.toEqual(Array.from(rows[2]));
  });

  test('sublinear tf: a repeated word weighs log1p(count) before normalization', () => {
    // In 'qx qx qx' (huge dim: no collisions) the most frequent feature occurs 3 times (the
    // word 'qx') and the rarest once (e.g. the 5-gram at the start); linear tf would give 3.
    const one = featurize(['qx'], { dim: 1 << 20, stripHeaders: false });
    const three = featurize(['qx qx qx'], { dim: 1 << 20, stripHeaders: false });
    const nz1 = [...one.keys()].filter((i) => one[i] > 0);
    const counts3 = [...three.keys()].filter((i) => three[i] > 0).map((i) => three[i]);
    const max = Math.max(...counts3);
    const min = Math.min(...counts3);
    expect(max / min).toBeCloseTo(Math.log1p(3) / Math.log1p(1), 4);
    expect(nz1.length).toBeGreaterThanOrEqual(1);
  });

  test('empty text gives a zero vector; bad input throws', () => {
    const X = featurize(['']);
    expect(X.every((x) => x === 0)).toBe(true);
    expect(() => featurize([5 as any])).toThrow(InvalidArgumentError);
    expect(() => featurize(['a'], { dim: 1 })).toThrow(/dim/);
  });
});

describe('user data', () => {
  test('CSV: quotes, escaped quotes, newlines in quotes, CRLF, BOM, empty fields', () => {
    const text =
      '\ufefftext,label\r\n"hello, world",spam\r\n"say ""hi""\nnext line",ham\r\nplain,ham\n,spam\n';
    expect(parseCsv(text)).toEqual([
      ['text', 'label'],
      ['hello, world', 'spam'],
      ['say "hi"\nnext line', 'ham'],
      ['plain', 'ham'],
      ['', 'spam'],
    ]);
    expect(parseCsv('a,"",b')).toEqual([['a', '', 'b']]);
    expect(parseCsv('a,b\n\n\nc,d')).toEqual([
      ['a', 'b'],
      ['c', 'd'],
    ]);
    const d = parseCsvData(text, 'text', 'label');
    expect(d.classes).toEqual(['ham', 'spam']);
    expect(Array.from(d.labels)).toEqual([1, 0, 0, 1]);
  });

  test('CSV errors', () => {
    expect(() => parseCsv('a,"unterminated\nb')).toThrow(/not closed/);
    expect(() => parseCsv('a,"x"y')).toThrow(/after a closing quote/);
    expect(() => parseCsv('a,b"c')).toThrow(/quote inside an unquoted field/);
    expect(() => parseCsvData('t,l\nx,1,extra\n', 't', 'l')).toThrow(
      /3 fields but the header has 2/,
    );
    expect(() => parseCsvData('t,l\n', 't', 'l')).toThrow(/only a header/);
    expect(() => parseCsvData('t,l\nx,1\n', 'text', 'l')).toThrow(/no column "text".*--text-field/);
    expect(() => parseCsvData('t,l\nx,1\ny,1\n', 't', 'l')).toThrow(/at least two classes/);
  });

  test('JSONL: numeric labels sorted numerically; errors name the line', () => {
    const d = parseJsonl('{"t":"a","y":10}\n\n{"t":"b","y":2}\n{"t":"c","y":"10"}\n', 't', 'y');
    expect(d.classes).toEqual(['2', '10']);
    expect(Array.from(d.labels)).toEqual([1, 0, 1]);
    expect(() => parseJsonl('{"t":"a","y":1}\n{"t":"b"}\n', 't', 'y')).toThrow(
      /line 2: no field "y"/,
    );
    expect(() => parseJsonl('{"t":"a","y":1}\nnot json\n', 't', 'y')).toThrow(
      /line 2: not valid JSON/,
    );
    expect(() => parseJsonl('{"t":1,"y":1}\n', 't', 'y')).toThrow(/must be a string/);
    expect(() => parseJsonl('{"t":"a","y":null}\n', 't', 'y')).toThrow(/label field "y" must be/);
    expect(() => parseJsonl('\n\n', 't', 'y')).toThrow(DataFormatError);
  });

  test('loadUserData by extension; empty file and unknown extension', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-data-'));
    try {
      fs.writeFileSync(
        path.join(dir, 'a.jsonl'),
        '{"text":"x","label":true}\n{"text":"y","label":false}\n',
      );
      expect(loadUserData(path.join(dir, 'a.jsonl')).classes).toEqual(['false', 'true']);
      fs.writeFileSync(path.join(dir, 'e.csv'), '');
      expect(() => loadUserData(path.join(dir, 'e.csv'))).toThrow(/empty/);
      fs.writeFileSync(path.join(dir, 'a.txt'), 'x');
      expect(() => loadUserData(path.join(dir, 'a.txt'))).toThrow(/unknown extension/);
      expect(() => loadUserData(path.join(dir, 'nope.csv'))).toThrow(/no such file/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
