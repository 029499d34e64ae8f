import { loadUseLiteSync, padTokens } from '../lib/models/use_lite/model';
import { UseLiteClassifier } from '../lib/models/use_lite/classifier';
import { applyLora } from '../lib/nn/lora_targets';
import { crossEntropyLoss } from '../lib/nn/losses';
import { Tensor } from '../lib/nn';
test('speed', () => {
  const use = loadUseLiteSync();
  const T = 64, B = 32;
  const lists = Array.from({ length: B }, (_, i) => Array.from({ length: T }, (_, t) => 6 + ((i * 131 + t * 17) % 7000)));
  const b = padTokens(lists);
  use.encoder.setMask(b.mask);
  let t0 = Date.now();
  use.encoder.forward(b.ids);
  console.log('fwd eval ms/ex', (Date.now() - t0) / B);
  const clf = new UseLiteClassifier(use.encoder, { classes: 2, startLayer: 1 });
  applyLora(clf, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'fc1', 'fc2'], { r: 8, alpha: 16, seed: 1 }, (p) => p.includes('layers.1'));
  const rows = clf.encodePrefix(lists);
  clf.train();
  for (const mode of ['sum', 'perSample'] as const) {
    clf.setGradMode(mode);
    t0 = Date.now();
    const x = clf.batchInput(rows);
    const y = clf.forward(x);
    const l = crossEntropyLoss(y, new Int32Array(B));
    clf.backward(l.grad);
    console.log(mode, 'train ms/ex (layer1 only)', (Date.now() - t0) / B);
    clf.setGradMode('sum');
    clf.zeroGrad();
  }
});
