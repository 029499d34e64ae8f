/**
 * `dp-lora predict`: classify texts with a saved USE-Lite adapter
 * (`dp-lora train --model use-lite --out DIR` writes DIR/adapter).
 */
import * as path from 'path';
import { readRegularFile } from '../io/files';
import { Command } from 'commander';
import { AdapterData, AdapterFormatError, loadAdapter } from '../io/peft_adapter';
import { atomicWriteFile } from '../io/atomic';
import { loadUserData } from '../data/user_data';
import { USE_LITE_MAX_TOKENS, defaultUseLiteDir } from '../models/use_lite/model';
import { readTfjsWeights } from '../models/use_lite/weights';
import { UseLiteTokenizer, VocabEntry } from '../models/use_lite/tokenizer';
import {
  CachedPart,
  UseLiteLoraSettings,
  checkLoraSettings,
  forwardRows,
  lengthBuckets,
  loadUseLiteAdapter,
  loraClassifier,
  startBlockFor,
} from '../models/use_lite/finetune';
import { OptionError } from './train_options';

/** One prediction. */
export interface Prediction {
  /** The text classified, as given. */
  text: string;
  /** The most probable class (its name, from the adapter's class list). */
  label: string;
  /** Class probabilities (softmax of the logits), in the adapter's class order. */
  probabilities: number[];
}

function adapterSettings(
  a: AdapterData,
  dir: string,
): { lora: UseLiteLoraSettings; classes: string[]; maxTokens: number } {
  const d = a.config.dplora as Record<string, unknown> | undefined;
  if (!d || d.model !== 'use-lite')
    throw new OptionError(
      `--adapter ${dir}: not a USE-Lite adapter (predict supports adapters from dp-lora train --model use-lite)`,
    );
  const classes = d.classes;
  const layers = d.loraLayers;
  const maxTokens = d.maxTokens;
  if (!Array.isArray(classes) || !classes.every((c) => typeof c === 'string'))
    throw new OptionError(`--adapter ${dir}: adapter_config.json lacks dplora.classes`);
  if (!Array.isArray(layers) || typeof maxTokens !== 'number')
    throw new OptionError(
      `--adapter ${dir}: adapter_config.json lacks dplora.loraLayers/maxTokens`,
    );
  // What dp-lora train writes, and nothing else: a value it could not have written would
  // silently change the predictions (a rank-0 token limit, a negated or absent LoRA update,
  // an rsLoRA scaling predict does not apply, two classes of one name).
  const bad = (field: string, what: string) =>
    new AdapterFormatError(`${dir}/adapter_config.json: ${field} ${what}`, { argument: field });
  if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > USE_LITE_MAX_TOKENS)
    throw bad(
      'dplora.maxTokens',
      `must be an integer in [1, ${USE_LITE_MAX_TOKENS}], got ${maxTokens}`,
    );
  if (classes.length < 2 || new Set(classes).size !== classes.length || classes.includes(''))
    throw bad('dplora.classes', 'must list at least two distinct, non-empty class names');
  if (!(a.config.lora_alpha > 0))
    throw bad('lora_alpha', `must be positive, got ${a.config.lora_alpha}`);
  if (a.config.use_rslora)
    throw bad('use_rslora', 'is not supported by predict (dp-lora train writes false)');
  const method = d.method === 'ffa' ? 'ffa' : 'vanilla';
  return {
    lora: checkLoraSettings({
      rank: a.config.r,
      alpha: a.config.lora_alpha,
      method,
      targets: a.config.target_modules,
      layers: layers as number[],
      seed: 0,
    }),
    classes: classes,
    maxTokens,
  };
}

/**
 * Classifies `texts` with the USE-Lite adapter saved in `adapterDir`.
 *
 * @param adapterDir - the adapter folder (PEFT layout) written by `dp-lora train --model use-lite --out`
 * @param texts - texts to classify
 */
export function predictWithAdapter(adapterDir: string, texts: string[]): Prediction[] {
  const a = loadAdapter(adapterDir);
  const { lora, classes, maxTokens } = adapterSettings(a, adapterDir);
  const dir = defaultUseLiteDir();
  const weights = readTfjsWeights(path.join(dir, 'model.json'));
  const vocab = JSON.parse(
    readRegularFile('modelDir', path.join(dir, 'vocab.json'), 16 << 20).toString('utf8'),
  ) as VocabEntry[];
  const tok = new UseLiteTokenizer(vocab);
  const clf = loraClassifier(
    weights,
    classes.length,
    lora,
    undefined,
    undefined,
    startBlockFor(lora),
  );
  loadUseLiteAdapter(clf, a);
  clf.eval();
  const clean = texts.map((t) => t.replace(/\s+/g, ' ').trim());
  const part: CachedPart = {
    rows: clf.encodePrefix(clean.map((t) => tok.encode(t).slice(0, maxTokens))),
    y: new Int32Array(texts.length),
    n: texts.length,
  };
  const out: Prediction[] = new Array<Prediction>(texts.length);
  for (const idx of lengthBuckets(part, [...Array(texts.length).keys()], 64)) {
    const z = forwardRows(clf, part, idx);
    const k = z.features;
    idx.forEach((ex, r) => {
      const row = Array.from(z.data.subarray(r * k, (r + 1) * k));
      if (!row.every(Number.isFinite))
        throw new AdapterFormatError(
          `--adapter ${adapterDir}: the adapter gives non-finite logits for text ${ex} (lora_alpha or the weights are out of range)`,
          { argument: 'adapter' },
        );
      const mx = Math.max(...row);
      const e = row.map((v) => Math.exp(v - mx));
      const s = e.reduce((x, y) => x + y, 0);
      const probabilities = e.map((v) => v / s);
      let best = 0;
      for (let j = 1; j < k; j++) if (probabilities[j] > probabilities[best]) best = j;
      out[ex] = { text: texts[ex], label: classes[best], probabilities };
    });
  }
  return out;
}

/** Adds `predict` to the program. */
export function registerPredictCommand(program: Command): void {
  program
    .command('predict')
    .description(
      'Classify texts with a USE-Lite adapter saved by dp-lora train --model use-lite --out DIR',
    )
    .requiredOption('--adapter <dir>', 'the adapter folder (DIR/adapter of a training run)')
    .option('--text <text...>', 'one or more texts to classify')
    .option('--data <file>', 'a .jsonl or .csv file of texts')
    .option('--text-field <name>', 'text field/column of --data (default text)')
    .option(
      '--label-field <name>',
      'label field/column of --data (default label; then accuracy is printed)',
    )
    .option('--json <file>', 'write the predictions as JSON')
    .action(
      (opts: {
        adapter: string;
        text?: string[];
        data?: string;
        textField?: string;
        labelField?: string;
        json?: string;
      }) => {
        let texts: string[] = [];
        let labels: string[] | undefined;
        if (opts.text) texts = opts.text;
        else if (opts.data) {
          const d = loadUserData(opts.data, opts.textField ?? 'text', opts.labelField ?? 'label');
          texts = d.texts;
          labels = Array.from(d.labels, (l) => d.classes[l]);
        } else throw new OptionError('give --text or --data');
        const preds = predictWithAdapter(opts.adapter, texts);
        if (opts.json) atomicWriteFile(opts.json, JSON.stringify(preds, null, 2) + '\n');
        const lines = preds.map(
          (p) =>
            `${p.label}\t${Math.max(...p.probabilities).toFixed(3)}\t${p.text.slice(0, 80).replace(/\s+/g, ' ')}`,
        );
        if (labels) {
          const ok = preds.filter((p, i) => p.label === labels[i]).length;
          lines.push(
            `accuracy ${((100 * ok) / preds.length).toFixed(1)}% on ${preds.length} texts`,
          );
        }
        process.stdout.write(lines.join('\n') + '\n');
      },
    );
}
