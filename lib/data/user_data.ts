/**
 * Loading the user's labelled text data for `dp-lora train --data FILE`.
 *
 * Formats (by extension): `.jsonl` / `.ndjson` (one JSON object per line, blank lines
 * skipped) and `.csv` (RFC 4180: a header row, comma-separated, fields in double quotes may
 * hold commas, newlines and `""` for a quote; CRLF or LF line ends; a UTF-8 BOM is skipped).
 * Labels may be strings, numbers or booleans; they map to class ids by sorting the distinct
 * values (numerically when every label is a number, else as strings).
 */
import * as fs from 'fs';
import * as path from 'path';
import { DataFormatError } from '../errors';
import { requireString } from '../validate';
export { DataFormatError };

/** Labelled texts with class ids. */
export interface LabelledTexts {
  /** The texts, in file order. */
  texts: string[];
  /** Class id per text, in [0, classes.length). */
  labels: Int32Array;
  /** Original label value of each class id, sorted. */
  classes: string[];
}

/**
 * Most records in a data file (4,194,304). Parsing costs some hundred bytes of memory per
 * record, so a file of many tiny records could otherwise exhaust the heap well inside
 * {@link MAX_USER_DATA_BYTES}.
 */
export const MAX_USER_DATA_RECORDS = 1 << 22;

/** Most fields in a CSV file, over all records (16,777,216), for the same reason. */
export const MAX_CSV_FIELDS = 1 << 24;

/** A quoted field's body with each `""` pair made one `"`, in one pass and one allocation. */
function unescapeQuotes(body: string): string {
  const out = new Uint16Array(body.length);
  let k = 0;
  for (let j = 0; j < body.length; j++) {
    const c = body.charCodeAt(j);
    out[k++] = c;
    if (c === 34) j++; // the body holds quotes only in pairs: skip the second
  }
  return Buffer.from(out.buffer, 0, 2 * k).toString('utf16le');
}

function checkCounts(records: number, fields: number, source: string): void {
  if (records > MAX_USER_DATA_RECORDS)
    throw new DataFormatError(
      `${source}: more than ${MAX_USER_DATA_RECORDS} records; use a smaller file`,
    );
  if (fields > MAX_CSV_FIELDS)
    throw new DataFormatError(
      `${source}: more than ${MAX_CSV_FIELDS} fields in all; use a smaller file (or quote fields that contain commas)`,
    );
}

/**
 * Parses CSV text into rows of fields (RFC 4180). Throws {@link DataFormatError} on an
 * unterminated quoted field or a stray quote inside an unquoted field.
 */
export function parseCsv(text: string, source = 'CSV'): string[][] {
  requireString('text', text, false);
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false; // the current field was a quoted one (closed)
  let rowHasContent = false;
  let line = 1;
  let i = 0;
  const n = text.length;
  let fields = 0;
  const endRow = () => {
    if (rowHasContent) {
      row.push(field);
      rows.push(row);
      fields += row.length;
      checkCounts(rows.length, fields, source);
    }
    row = [];
    field = '';
    quoted = false;
    rowHasContent = false;
  };
  while (i < n) {
    const c = text[i];
    if (c === '"' && field.length === 0 && !quoted) {
      const startLine = line;
      i++;
      let closed = false;
      let escaped = false;
      const start = i;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 34) {
          if (text.charCodeAt(i + 1) === 34) {
            escaped = true;
            i += 2;
          } else {
            closed = true;
            break;
          }
        } else {
          if (d === 10) line++;
          i++;
        }
      }
      if (!closed)
        throw new DataFormatError(
          `${source}: line ${startLine}: quoted field is not closed (missing ")`,
        );
      // One slice for the whole field (not one concatenation per "" pair).
      field = escaped ? unescapeQuotes(text.slice(start, i)) : text.slice(start, i);
      i++;
      quoted = true;
      rowHasContent = true;
      if (i < n && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') {
        throw new DataFormatError(
          `${source}: line ${line}: unexpected character ${JSON.stringify(text[i])} after a closing quote (write "" for a quote inside a quoted field)`,
        );
      }
      continue;
    }
    if (c === ',') {
      row.push(field);
      if (row.length + fields > MAX_CSV_FIELDS)
        checkCounts(rows.length, row.length + fields, source);
      field = '';
      quoted = false;
      rowHasContent = true;
      i++;
      continue;
    }
    if (c === '\r' || c === '\n') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      i++;
      line++;
      if (field.length > 0) rowHasContent = true;
      endRow();
      continue;
    }
    if (c === '"')
      throw new DataFormatError(
        `${source}: line ${line}: a quote inside an unquoted field; quote the whole field and write "" for a quote`,
      );
    // The run of ordinary characters up to the next delimiter, appended in one piece (one
    // concatenation per character would make a long line cost tens of bytes per byte).
    const start = i;
    while (i < n) {
      const d = text.charCodeAt(i);
      if (d === 44 || d === 10 || d === 13 || d === 34) break;
      i++;
    }
    field += text.slice(start, i);
    rowHasContent = true;
  }
  if (field.length > 0) rowHasContent = true;
  endRow();
  return rows;
}

function mapLabels(raw: unknown[], source: string): { labels: Int32Array; classes: string[] } {
  const allNumbers = raw.every(
    (v) =>
      typeof v === 'number' ||
      (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))),
  );
  const keys = raw.map((v) => String(v).trim());
  const distinct = [...new Set(keys)];
  if (distinct.length < 2) {
    throw new DataFormatError(
      `${source}: every example has the label ${JSON.stringify(distinct[0])}; a classifier needs at least two classes`,
    );
  }
  distinct.sort(
    allNumbers ? (a, b) => Number(a) - Number(b) : (a, b) => (a < b ? -1 : a > b ? 1 : 0),
  );
  const id = new Map(distinct.map((k, i) => [k, i]));
  return { labels: Int32Array.from(keys.map((k) => id.get(k)!)), classes: distinct };
}

/** Field names for an error message, cut to a readable length (a header may be megabytes). */
function listFields(names: string[]): string {
  const all = names.join(', ');
  return all.length <= 200 ? all : `${all.slice(0, 200)}... (${names.length} fields)`;
}

/** The text and the label must come from different fields (else the label is in the text). */
function sameField(textField: string, labelField: string, source: string): void {
  if (textField === labelField)
    throw new DataFormatError(
      `${source}: the text field and the label field are both "${textField}"; set --text-field and --label-field to different fields`,
    );
}

function labelValue(v: unknown, where: string, field: string): string | number | boolean {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') {
    if (typeof v === 'string' && v.trim() === '')
      throw new DataFormatError(`${where}: label field "${field}" is empty`);
    if (typeof v === 'number' && !Number.isFinite(v))
      throw new DataFormatError(`${where}: label field "${field}" is not finite`);
    return v;
  }
  throw new DataFormatError(
    `${where}: label field "${field}" must be a string, number or boolean, got ${v === null ? 'null' : typeof v}`,
  );
}

/** Parses JSONL text with the given text and label fields. */
export function parseJsonl(
  text: string,
  textField: string,
  labelField: string,
  source = 'JSONL',
): LabelledTexts {
  requireString('text', text, false);
  requireString('textField', textField);
  requireString('labelField', labelField);
  sameField(textField, labelField, source);
  const texts: string[] = [];
  const raw: unknown[] = [];
  // Line by line without splitting first: an array of every line (blank ones too) of a large
  // file would cost far more memory than the file.
  for (let i = 0, at = 0; at <= text.length; i++) {
    let end = text.indexOf('\n', at);
    if (end < 0) end = text.length;
    const l = text.slice(at, end).trim(); // trim also drops the \r of a CRLF
    at = end + 1;
    if (l === '') continue;
    const where = `${source}: line ${i + 1}`;
    let obj: unknown;
    try {
      obj = JSON.parse(l);
    } catch (e) {
      throw new DataFormatError(`${where}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
      throw new DataFormatError(`${where}: each line must be a JSON object`);
    const o = obj as Record<string, unknown>;
    if (!(textField in o))
      throw new DataFormatError(
        `${where}: no field "${textField}" (fields: ${listFields(Object.keys(o))}); set --text-field`,
      );
    if (!(labelField in o))
      throw new DataFormatError(
        `${where}: no field "${labelField}" (fields: ${listFields(Object.keys(o))}); set --label-field`,
      );
    if (typeof o[textField] !== 'string')
      throw new DataFormatError(`${where}: text field "${textField}" must be a string`);
    texts.push(o[textField]);
    raw.push(labelValue(o[labelField], where, labelField));
    checkCounts(texts.length, 0, source);
  }
  if (texts.length === 0) throw new DataFormatError(`${source}: no examples (the file is empty)`);
  return { texts, ...mapLabels(raw, source) };
}

/** Parses CSV text (with a header row) with the given text and label columns. */
export function parseCsvData(
  text: string,
  textField: string,
  labelField: string,
  source = 'CSV',
): LabelledTexts {
  requireString('text', text, false);
  requireString('textField', textField);
  requireString('labelField', labelField);
  const rows = parseCsv(text, source);
  if (rows.length === 0) throw new DataFormatError(`${source}: the file is empty`);
  const header = rows[0].map((h) => h.trim());
  sameField(textField, labelField, source);
  const ti = header.indexOf(textField);
  const li = header.indexOf(labelField);
  if (ti < 0)
    throw new DataFormatError(
      `${source}: no column "${textField}" in the header (${listFields(header)}); set --text-field`,
    );
  if (li < 0)
    throw new DataFormatError(
      `${source}: no column "${labelField}" in the header (${listFields(header)}); set --label-field`,
    );
  for (const [f, at] of [
    [textField, ti],
    [labelField, li],
  ] as const)
    if (header.indexOf(f, at + 1) >= 0)
      throw new DataFormatError(
        `${source}: the header names the column "${f}" more than once; rename one of them`,
      );
  const texts: string[] = [];
  const raw: unknown[] = [];
  for (let r = 1; r < rows.length; r++) {
    const row = rows[r];
    if (row.length !== header.length) {
      throw new DataFormatError(
        `${source}: record ${r + 1} has ${row.length} fields but the header has ${header.length} (quote fields that contain commas)`,
      );
    }
    texts.push(row[ti]);
    raw.push(labelValue(row[li], `${source}: record ${r + 1}`, labelField));
  }
  if (texts.length === 0) throw new DataFormatError(`${source}: only a header row, no examples`);
  return { texts, ...mapLabels(raw, source) };
}

/**
 * The label set is data too: every label value ends up in the clear in the adapter's config.
 * It must therefore be public. {@link fixLabelSet} re-maps `d` onto a public label set:
 * - `declared` (e.g. `--labels a,b,c`, in that order) or a public file's classes: every label
 *   of `d` must be one of them;
 * - neither: the set is taken from `d` itself, and refused if any label occurs fewer than
 *   `minCount` times (a rare label identifies the few records that carry it).
 * @throws DataFormatError naming the source (never the rare label's value)
 */
export function fixLabelSet(
  d: LabelledTexts,
  source: string,
  o: { declared?: readonly string[]; minCount: number },
): LabelledTexts {
  if (o.declared) {
    const set = [...o.declared];
    if (set.length < 2 || new Set(set).size !== set.length)
      throw new DataFormatError(
        `${source}: the declared labels must be at least two distinct values`,
      );
    const id = new Map(set.map((k, i) => [k, i]));
    const map = d.classes.map((c) => {
      const k = id.get(c);
      if (k === undefined)
        throw new DataFormatError(
          `${source}: a label is not among the declared labels (${set.join(', ')})`,
        );
      return k;
    });
    return { texts: d.texts, labels: Int32Array.from(d.labels, (l) => map[l]), classes: set };
  }
  const counts = new Array<number>(d.classes.length).fill(0);
  for (const l of d.labels) counts[l]++;
  const rare = counts.filter((c) => c < o.minCount).length;
  if (rare > 0)
    throw new DataFormatError(
      `${source}: ${rare} label value(s) occur fewer than ${o.minCount} times; the label set is written in the clear into the adapter, so declare it (--labels a,b,c, or --public-data whose labels define it) or remove the rare labels`,
    );
  return d;
}

/** Largest user data file read (bytes): 512 MiB. */
export const MAX_USER_DATA_BYTES = 512 * 1024 * 1024;

/**
 * Strict UTF-8: an invalid byte would otherwise become U+FFFD, silently changing the texts and
 * merging labels that differ only in such bytes (e.g. two Latin-1 labels).
 */
function decodeUtf8(bytes: Buffer, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ERR_ENCODING_INVALID_ENCODED_DATA')
      throw new DataFormatError(
        `${file}: not valid UTF-8 text; convert the file to UTF-8 (e.g. iconv -t UTF-8)`,
        { cause: e },
      );
    throw new DataFormatError(`${file}: cannot be read as text (${(e as Error).message})`, {
      cause: e,
    });
  }
}

/** Loads `.jsonl`/`.ndjson` or `.csv` user data (see the module comment). */
export function loadUserData(
  file: string,
  textField = 'text',
  labelField = 'label',
): LabelledTexts {
  requireString('file', file);
  requireString('textField', textField);
  requireString('labelField', labelField);
  if (!fs.existsSync(file)) throw new DataFormatError(`${file}: no such file`);
  const ext = path.extname(file).toLowerCase();
  // Bounded before reading: a link to /dev/zero or a FIFO would otherwise be read forever.
  const st = fs.statSync(file);
  if (!st.isFile()) throw new DataFormatError(`${file}: not a regular file`);
  if (st.size > MAX_USER_DATA_BYTES)
    throw new DataFormatError(
      `${file}: ${st.size} bytes, more than the ${MAX_USER_DATA_BYTES} a data file may have`,
    );
  const text = decodeUtf8(fs.readFileSync(file), file);
  if (text.trim() === '') throw new DataFormatError(`${file}: the file is empty`);
  if (ext === '.jsonl' || ext === '.ndjson') return parseJsonl(text, textField, labelField, file);
  if (ext === '.csv') return parseCsvData(text, textField, labelField, file);
  throw new DataFormatError(`${file}: unknown extension "${ext}" (use .jsonl, .ndjson or .csv)`);
}
