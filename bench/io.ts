/**
 * I/O and data benchmarks: featurizing the whole SpamAssassin corpus, and writing / reading a
 * LoRA adapter's safetensors file. Run: `npx tsc -p tsconfig.build.json && node dist/bench/run.js io`.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { featurize } from '../lib/data/featurize';
import { loadSpamCorpus } from '../lib/data/spam_corpus';
import { readSafetensors, writeSafetensors } from '../lib/io/safetensors';
import { median, printTable, writeResults } from './util';

function time(fn: () => void, reps: number): number {
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const s = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - s) / 1e9);
  }
  return median(t);
}

/** Runs the I/O benchmarks and writes bench/results/io.json. */
export async function run(): Promise<void> {
  const texts = loadSpamCorpus().map((m) => m.text);
  const chars = texts.reduce((s, t) => s + t.length, 0);
  const rows: Record<string, unknown>[] = [];
  for (const dim of [1024, 4096]) {
    const s = time(() => featurize(texts, { dim }), 3);
    rows.push({
      task: `featurize corpus (${texts.length} mails, ${(chars / 1e6).toFixed(1)} MB), dim ${dim}`,
      seconds: s,
      'MB/s': chars / 1e6 / s,
    });
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-bench-'));
  try {
    // An adapter the size of rank-16 LoRA on 12 layers x 4 projections of 768x768.
    const tensors: Record<string, { data: Float32Array; shape: number[] }> = {};
    for (let l = 0; l < 48; l++) {
      tensors[`base_model.model.layers.${l}.lora_A.weight`] = {
        data: new Float32Array(16 * 768).fill(0.5),
        shape: [16, 768],
      };
      tensors[`base_model.model.layers.${l}.lora_B.weight`] = {
        data: new Float32Array(768 * 16).fill(0.25),
        shape: [768, 16],
      };
    }
    const file = path.join(dir, 'a.safetensors');
    const bytes = 96 * 16 * 768 * 4;
    const w = time(() => writeSafetensors(file, tensors), 5);
    const r = time(() => readSafetensors(file), 5);
    rows.push({
      task: `write adapter safetensors (${(bytes / 1e6).toFixed(1)} MB, atomic + fsync)`,
      seconds: w,
      'MB/s': bytes / 1e6 / w,
    });
    rows.push({
      task: `read + validate adapter safetensors (${(bytes / 1e6).toFixed(1)} MB)`,
      seconds: r,
      'MB/s': bytes / 1e6 / r,
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  printTable('I/O and data', rows);
  writeResults('io', { rows });
}
