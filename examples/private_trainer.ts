// The README's PrivateTrainer example (test/trainer.test.ts runs this very file).
import * as os from 'os';
import * as path from 'path';
import {
  Linear,
  LoraLinear,
  PrivateTrainer,
  ReLU,
  Sequential,
  arrayDataset,
  crossEntropyLoss,
} from '../lib';

export async function example(dir = path.join(os.tmpdir(), `dp-lora-example-${process.pid}`)) {
  // Your own arrays: 2000 records of 20 features, 2 classes (here a synthetic task).
  const n = 2000;
  const features = 20;
  const x = new Float32Array(n * features);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 2;
    for (let j = 0; j < features; j++)
      x[i * features + j] = Math.sin(i * 7.1 + j * 3.3) + (j < 4 ? (y[i] ? 0.8 : -0.8) : 0);
  }
  // A frozen base layer adapted with LoRA, and a trainable head.
  const model = new Sequential(
    new LoraLinear(new Linear(features, 32, { seed: 1 }), { r: 4, alpha: 8, seed: 2 }),
    new ReLU(),
    new Linear(32, 2, { seed: 3 }),
  );
  const controller = new AbortController(); // e.g. abort on a request's 'close' event
  const trainer = PrivateTrainer.create({
    model,
    loss: crossEntropyLoss,
    data: arrayDataset(x, y, features),
    privacy: { targetEpsilon: 4, epochs: 3, batchSize: 100, maxGradNorm: 1, accountant: 'rdp' },
    lr: 0.02,
    runDir: dir, // journal, checkpoints and lock; omit to keep everything in memory
  });
  try {
    const result = await trainer.fit({
      signal: controller.signal,
      onProgress: (p) => {
        if (p.step % 20 === 0) console.log(`step ${p.step}/${p.plannedSteps} loss ${p.loss}`);
      },
    });
    const { accuracy } = trainer.evaluate(arrayDataset(x, y, features));
    console.log(result.report.statement, 'accuracy', accuracy);
    return { result, accuracy, dir };
  } finally {
    trainer.close(); // releases the run directory's lock
  }
}
