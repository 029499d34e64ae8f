/**
 * SentencePiece-style unigram tokenizer of Universal Sentence Encoder Lite.
 *
 * It reproduces the ids of the reference TF.js runtime (a Viterbi search over
 * the scored pieces of `vocab.json` after NFKC normalization and
 * space -> U+2581), with the same tie-breaking and the same handling of
 * characters no piece covers (the unknown id 0, runs of unknowns merged into
 * one), but in time linear in the text length: the candidate pieces at each
 * position come from a walk down a trie of at most the longest piece's length,
 * instead of a trie search over the whole remaining text.
 *
 * Whitespace: the runtime only turns the space character into U+2581; tabs,
 * newlines and other whitespace that NFKC keeps become the unknown id.  With
 * `whitespace: 'nmt'` (not the default) every run of whitespace is first
 * collapsed to one space and leading/trailing whitespace is dropped, as
 * SentencePiece's nmt_nfkc normalization does; ids then differ from the runtime
 * on text with tabs, newlines or repeated spaces.
 */
import { InvalidArgumentError } from '../../errors';
import { requireOneOf, requireString } from '../../validate';

/** One vocabulary entry: the piece and its log-probability score (`null` reads as 0). */
export type VocabEntry = [string, number | null];

/** The unknown-token id. */
export const UNK_ID = 0;
/** Ids below this are reserved (unknown, `<s>`, `</s>`, extra tokens) and never produced by pieces. */
export const RESERVED_IDS = 6;
/** The word-boundary marker SentencePiece writes for a space. */
export const WORD_BOUNDARY = '\u2581';

/** Options of {@link UseLiteTokenizer}. */
export interface TokenizerOptions {
  /**
   * `'runtime'` (default): only the space character marks a word boundary, as
   * in the reference runtime.  `'nmt'`: whitespace runs collapse to one space
   * and are trimmed first (SentencePiece nmt_nfkc).
   */
  whitespace?: 'runtime' | 'nmt';
}

interface TrieNode {
  next: Map<number, TrieNode>;
  /** Piece id ending here, or -1. */
  id: number;
  score: number;
}

function newNode(): TrieNode {
  return { next: new Map(), id: -1, score: 0 };
}

/** Unigram tokenizer over a USE-Lite vocabulary (see the module comment). */
export class UseLiteTokenizer {
  /** Number of vocabulary entries. */
  readonly vocabSize: number;
  private readonly root = newNode();
  /** Length in UTF-16 units of each piece (the runtime steps back by this). */
  private readonly unitLength: Int32Array;
  private readonly whitespace: 'runtime' | 'nmt';

  /**
   * @param vocab - `[piece, score]` entries, id = index (the package's `vocab.json`)
   * @param options - whitespace handling
   */
  constructor(vocab: readonly VocabEntry[], options: TokenizerOptions = {}) {
    if (!Array.isArray(vocab) || vocab.length <= RESERVED_IDS)
      throw new InvalidArgumentError(
        'vocab',
        `must be an array of more than ${RESERVED_IDS} [piece, score] entries`,
      );
    this.whitespace = requireOneOf('whitespace', options.whitespace ?? 'runtime', [
      'runtime',
      'nmt',
    ]);
    this.vocabSize = vocab.length;
    this.unitLength = new Int32Array(vocab.length);
    for (let id = 0; id < vocab.length; id++) {
      const e = (vocab as readonly unknown[])[id] as VocabEntry;
      // The package's vocab.json has `null` scores for the pieces with ':'; the
      // runtime adds them as 0 (null + x === x), and so do we.
      if (
        !Array.isArray(e) ||
        typeof e[0] !== 'string' ||
        !(typeof e[1] === 'number' || e[1] === null)
      )
        throw new InvalidArgumentError(`vocab[${id}]`, 'must be a [piece, score] pair');
      this.unitLength[id] = e[0].length;
      if (id < RESERVED_IDS) continue;
      let node = this.root;
      for (const ch of e[0]) {
        const cp = ch.codePointAt(0) as number;
        let nx = node.next.get(cp);
        if (!nx) {
          nx = newNode();
          node.next.set(cp, nx);
        }
        node = nx;
      }
      if (node !== this.root) {
        // A later duplicate overwrites an earlier one, as in the runtime's trie.
        node.id = id;
        node.score = e[1] ?? 0;
      }
    }
  }

  /** The normalized text the search runs on: NFKC, then spaces to U+2581 with one in front. */
  normalize(text: string): string {
    let s = text.normalize('NFKC');
    if (this.whitespace === 'nmt') s = s.replace(/\s+/gu, ' ').trim();
    return s.length > 0 ? WORD_BOUNDARY + s.replace(/ /g, WORD_BOUNDARY) : s;
  }

  /**
   * Token ids of `text` (no start/end tokens), linear in its length.
   *
   * @param text - any string
   */
  encode(text: string): number[] {
    requireString('text', text, false);
    const s = this.normalize(text);
    const cps: number[] = [];
    for (const ch of s) cps.push(ch.codePointAt(0) as number);
    const n = cps.length;
    if (n === 0) return [];
    // Candidates ending at each position, in increasing start order (the
    // runtime visits them so and keeps the last of equal scores).
    const candStart: number[][] = Array.from({ length: n + 1 }, () => []);
    const candScore: number[][] = Array.from({ length: n + 1 }, () => []);
    const candId: number[][] = Array.from({ length: n + 1 }, () => []);
    for (let i = 0; i < n; i++) {
      let node: TrieNode | undefined = this.root.next.get(cps[i]);
      let found = false;
      for (let j = i; j < n && node; j++) {
        if (node.id >= 0) {
          candStart[j + 1].push(i);
          candScore[j + 1].push(node.score);
          candId[j + 1].push(node.id);
          found = true;
        }
        node = j + 1 < n ? node.next.get(cps[j + 1]) : undefined;
      }
      if (!found) {
        candStart[i + 1].push(i);
        candScore[i + 1].push(0);
        candId[i + 1].push(UNK_ID);
      }
    }
    // Viterbi with the runtime's conventions: 0 means "unset" and a score
    // that is >= the current best replaces it.
    const best = new Float64Array(n + 1);
    const words = new Int32Array(n + 1);
    for (let end = 1; end <= n; end++) {
      const st = candStart[end];
      const sc = candScore[end];
      const ids = candId[end];
      for (let c = 0; c < st.length; c++) {
        const score = sc[c] + best[st[c]];
        if (best[end] === 0 || score >= best[end]) {
          best[end] = score;
          words[end] = ids[c];
        }
      }
    }
    // Back-track by each chosen piece's length in UTF-16 units, as the runtime does.
    const out: number[] = [];
    let it = n;
    while (it > 0) {
      out.push(words[it]);
      it -= this.unitLength[words[it]];
    }
    const merged: number[] = [];
    let prevUnk = false;
    for (const id of out) {
      if (!(prevUnk && id === UNK_ID)) merged.push(id);
      prevUnk = id === UNK_ID;
    }
    return merged.reverse();
  }
}
