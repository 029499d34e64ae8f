/**
 * Hashed text features: word unigrams and bigrams plus character 3- and 5-grams, hashed into
 * `dim` buckets (each family with its own hash seed), sublinear term frequency
 * (log1p(count)), then L2-normalized per text.
 *
 * For e-mail (`stripHeaders`, default true for the spam corpus) the RFC 822 header block is
 * dropped except the Subject line, whose words are hashed as separate `subject:` features
 * as well as in the body stream. Text is lower-cased; a word is a run of ASCII letters, digits
 * or any non-ASCII letter, and `$` and `!` are words of their own (they carry spam signal).
 * Character n-grams run over the text with every non-word run collapsed to one space.
 * Only the first `maxChars` characters of the body are used (bounds time on huge mails).
 */
import { InvalidArgumentError } from '../errors';
import { requireArray, requireInt, requireLength, requireString } from '../validate';

/** Featurizer settings (part of the base-model cache key). */
export interface FeaturizerConfig {
  /** Number of hash buckets (default 4096). */
  dim: number;
  /** Drop mail headers except Subject (default true). */
  stripHeaders: boolean;
  /** Characters of body text used at most (default 20000). */
  maxChars: number;
}

/** Default featurizer settings. */
export const DEFAULT_FEATURIZER: FeaturizerConfig = {
  dim: 4096,
  stripHeaders: true,
  maxChars: 20000,
};

/** Version tag of the feature definition: bump when the hashing changes. */
export const FEATURIZER_VERSION = 'hash-v1';

// Module-level aliases: under jest (vm contexts) every global lookup in a hot loop is slow.
const imul = Math.imul;
const log1p = Math.log1p;
const sqrt = Math.sqrt;

const SEED_WORD = 0x9e3779b1;
const SEED_BIGRAM = 0x85ebca77;
const SEED_SUBJECT = 0xc2b2ae3d;
const SEED_CHAR3 = 0x27d4eb2f;
const SEED_CHAR5 = 0x165667b1;

/** 32-bit finalizer (murmur3 fmix32). */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function isWordChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c > 127;
}

/** Splits a mail into its Subject and body (headers dropped). Non-mail text is all body. */
export function splitMail(text: string): { subject: string; body: string } {
  let end = text.indexOf('\n\n');
  const crlf = text.indexOf('\r\n\r\n');
  if (crlf >= 0 && (end < 0 || crlf < end)) end = crlf;
  const firstLine = text.slice(0, Math.min(text.length, 200)).split(/\r?\n/, 1)[0];
  const looksLikeHeader = /^(From |[A-Za-z][A-Za-z0-9-]*:)/.test(firstLine);
  if (end < 0 || !looksLikeHeader) return { subject: '', body: text };
  const header = text.slice(0, end);
  const m = /^subject:[ \t]*(.*(?:\r?\n[ \t].*)*)/im.exec(header);
  return { subject: m ? m[1].replace(/\r?\n[ \t]+/g, ' ') : '', body: text.slice(end + 2) };
}

/**
 * Adds the hashed counts of one text to `counts` (length dim).
 * Word features are seeded by `wordSeed` so the subject can use its own space.
 */
function addCounts(
  text: string,
  counts: Float32Array,
  dim: number,
  wordSeed: number,
  chars: boolean,
): void {
  const mask = dim - 1;
  const pow2 = (dim & mask) === 0;
  const bucket = (h: number) => (pow2 ? h & mask : h % dim);
  let prevWord = 0;
  let havePrev = false;
  let wordHash = 0;
  let inWord = false;
  // ring of the last 5 normalized chars for char n-grams
  let c1 = 32,
    c2 = 32,
    c3 = 32,
    c4 = 32;
  let lastWasSpace = true;
  let nChars = 0;
  const n = text.length;
  const endWord = () => {
    const h = fmix(wordHash ^ wordSeed);
    counts[bucket(h)] += 1;
    if (havePrev) counts[bucket(fmix(imul(prevWord, 31) ^ h ^ SEED_BIGRAM))] += 1;
    prevWord = h;
    havePrev = true;
    inWord = false;
  };
  for (let i = 0; i <= n; i++) {
    let c = i < n ? text.charCodeAt(i) : 32;
    if (c >= 65 && c <= 90) c += 32;
    const w = isWordChar(c);
    if (w) {
      if (!inWord) {
        inWord = true;
        wordHash = 0x811c9dc5;
      }
      wordHash = imul(wordHash ^ c, 0x01000193);
    } else {
      if (inWord) endWord();
      if (c === 36 || c === 33) {
        // '$' and '!' are words of their own
        wordHash = imul(0x811c9dc5 ^ c, 0x01000193);
        inWord = true;
        endWord();
      }
    }
    if (!chars) continue;
    // char n-grams over the normalized stream (non-word runs -> one space)
    let nc: number;
    if (w) nc = c;
    else if (c === 36 || c === 33) nc = c;
    else {
      if (lastWasSpace) continue;
      nc = 32;
    }
    lastWasSpace = nc === 32;
    nChars++;
    if (nChars >= 3)
      counts[
        bucket(fmix(((c2 << 16) ^ (c1 << 8) ^ nc ^ imul(c2 ^ c1, 0x2c1b3c6d)) + SEED_CHAR3))
      ] += 1;
    if (nChars >= 5) {
      const h5 =
        imul(
          imul(imul(imul(c4 + SEED_CHAR5, 0x01000193) ^ c3, 0x01000193) ^ c2, 0x01000193) ^ c1,
          0x01000193,
        ) ^ nc;
      counts[bucket(fmix(h5))] += 1;
    }
    c4 = c3;
    c3 = c2;
    c2 = c1;
    c1 = nc;
  }
}

/** Features of one text written into `out` (length dim). */
export function featurizeInto(
  text: string,
  out: Float32Array,
  config: FeaturizerConfig = DEFAULT_FEATURIZER,
): void {
  const { dim } = config;
  requireLength('out', out, dim, 'dim');
  out.fill(0);
  let subject = '';
  let body = text;
  if (config.stripHeaders) ({ subject, body } = splitMail(text));
  if (body.length > config.maxChars) body = body.slice(0, config.maxChars);
  if (subject) {
    addCounts(subject, out, dim, SEED_SUBJECT, false);
    addCounts(subject, out, dim, SEED_WORD, true);
  }
  addCounts(body, out, dim, SEED_WORD, true);
  let ss = 0;
  for (let j = 0; j < dim; j++) {
    const v = out[j];
    if (v !== 0) {
      const t = log1p(v);
      out[j] = t;
      ss += t * t;
    }
  }
  if (ss > 0) {
    const inv = 1 / sqrt(ss);
    for (let j = 0; j < dim; j++) out[j] *= inv;
  }
}

/** Largest hashed feature dimension. */
export const MAX_FEATURE_DIM = 2 ** 24;
/** Largest feature matrix one call builds (numbers; 1 GiB of float32). */
export const MAX_FEATURE_ELEMENTS = 2 ** 28;

/** Features of many texts: a row-major [texts.length, dim] Float32Array. */
export function featurize(texts: string[], config: Partial<FeaturizerConfig> = {}): Float32Array {
  const cfg = { ...DEFAULT_FEATURIZER, ...config };
  requireInt('dim', cfg.dim, { min: 2, max: MAX_FEATURE_DIM });
  requireArray('texts', texts);
  if (texts.length * cfg.dim > MAX_FEATURE_ELEMENTS)
    throw new InvalidArgumentError(
      'dim',
      `${texts.length} texts x dim ${cfg.dim} needs more than ${MAX_FEATURE_ELEMENTS} numbers; use a smaller dim or fewer texts per call`,
    );
  requireInt('maxChars', cfg.maxChars, { min: 1 });
  const out = new Float32Array(texts.length * cfg.dim);
  for (let i = 0; i < texts.length; i++) {
    requireString(`texts[${i}]`, texts[i], false);
    featurizeInto(texts[i], out.subarray(i * cfg.dim, (i + 1) * cfg.dim), cfg);
  }
  return out;
}
