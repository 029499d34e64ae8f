/**
 * loadUseLite() against the reference runtime (@energetic-ai/embeddings on
 * TF.js WASM): identical token ids and embeddings within 1e-4 per element on
 * real sentences, empty strings and truncated long texts.
 */
import { loadUseLite, UseLite, USE_LITE_DIM } from '../lib/models/use_lite/model';
import { loadSpamCorpus } from '../lib/data/spam_corpus';
import { imdbReviews, referenceSentences, runtimeModel } from './helpers/use_lite_reference';

jest.setTimeout(600000);

function maxAbsDiff(a: Float32Array, b: number[][], row0: number): number {
  let m = 0;
  for (let i = 0; i < b.length; i++)
    for (let j = 0; j < USE_LITE_DIM; j++)
      m = Math.max(m, Math.abs(a[(row0 + i) * USE_LITE_DIM + j] - b[i][j]));
  return m;
}

describe('loadUseLite against the runtime', () => {
  let use: UseLite;
  let ref: Awaited<ReturnType<typeof runtimeModel>>;
  beforeAll(async () => {
    use = await loadUseLite();
    ref = await runtimeModel();
  });

  test('embeddings of real sentences match within 1e-4 per element', async () => {
    const sentences = referenceSentences(loadSpamCorpus(), 120, 11);
    const mine = use.embed(sentences);
    let worst = 0;
    for (let s = 0; s < sentences.length; s += 20) {
      const want = await ref.embed(sentences.slice(s, s + 20));
      worst = Math.max(worst, maxAbsDiff(mine, want, s));
    }
    expect(worst).toBeLessThan(1e-4);
    // unit rows
    for (let i = 0; i < sentences.length; i++) {
      let n = 0;
      for (let j = 0; j < USE_LITE_DIM; j++) n += mine[i * USE_LITE_DIM + j] ** 2;
      expect(Math.abs(n - 1)).toBeLessThan(1e-5);
    }
  });

  test('embeddings of IMDB review sentences match within 1e-4 per element', async () => {
    const sentences = referenceSentences(imdbReviews(), 40, 9);
    const mine = use.embed(sentences);
    const want = await ref.embed(sentences);
    expect(maxAbsDiff(mine, want, 0)).toBeLessThan(1e-4);
  });

  test('empty strings (not last), unknown characters, and texts past 128 tokens', async () => {
    const long = 'The quick brown fox jumps over the lazy dog again and again. '.repeat(20);
    const texts = ['', 'a\tb c', long, 'x', '\u{1F600} emoji only', long + ' different tail'];
    const mine = use.embed(texts);
    const want = await ref.embed(texts);
    expect(maxAbsDiff(mine, want, 0)).toBeLessThan(1e-4);
    expect(use.tokenize(long).length).toBeGreaterThan(128);
    // truncation: the tails differ past 128 tokens only
    for (let j = 0; j < USE_LITE_DIM; j++)
      expect(mine[2 * USE_LITE_DIM + j]).toBe(mine[5 * USE_LITE_DIM + j]);
  });
});
