// manualSeed reseeds the global generator in place, so modules built before it (holding that generator) follow it:
// Dropout, DropPath, attention dropout and MAE's random masking reproduce after manualSeed(s), as after
// torch.manual_seed(s).
import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { Dropout, DropPath } from '../../src/nn/layers.js';
import { Attention } from '../../src/nn/transformer.js';
import { MaskedAutoencoderViT, maeModelConfig, maeCifarConfig } from '../../src/methods/mae.js';

it('manualSeed(s) makes Dropout, DropPath, attention dropout and MAE masking reproducible', () => {
  const dev = { device: 'reference' as const };
  // built first: they hold the global generator from construction on
  const dropout = new Dropout(0.5);
  const dropPath = new DropPath(0.5);
  const attn = new Attention(8, 2, { attnDrop: 0.5 }, { ...dev, rng: new T.Rng(0) });
  const attnGlobal = new Attention(8, 2, { attnDrop: 0.5 }, dev); // dropout draws from the global generator
  const mae = new MaskedAutoencoderViT(maeModelConfig('vit-d8-depth1-heads2-patch4', 8, { ...maeCifarConfig(), decoderEmbedDim: 8, decoderDepth: 1, decoderNumHeads: 2 }));
  mae.to('reference');
  for (const m of [dropout, dropPath, attn, attnGlobal, mae]) m.train();
  const x = T.ones([4, 16], dev);
  const tokens = T.randn([2, 5, 8], { ...dev, rng: new T.Rng(1) });
  const imgs = T.randn([2, 3, 8, 8], { ...dev, rng: new T.Rng(2) });
  const draw = (): number[][] => T.noGrad(() => T.tidy(() => [
    dropout.forward(x).toArray(),
    dropPath.forward(x).toArray(),
    attnGlobal.forward(tokens).toArray(),
    mae.randomMasking(tokens, 0.75).mask.toArray(),
    [mae.computeLoss(imgs).loss.item()],
  ]));
  T.manualSeed(42);
  const a = draw();
  T.manualSeed(42);
  const b = draw();
  assert.deepEqual(b, a, 'the same seed gives the same draws');
  T.manualSeed(43);
  const c = draw();
  a.forEach((va, i) => assert.notDeepEqual(c[i], va, `draw ${i} changes with the seed`));
  // a module given its own generator is not reseeded by manualSeed
  const before = T.noGrad(() => attn.forward(tokens).toArray());
  T.manualSeed(42);
  const after = T.noGrad(() => attn.forward(tokens).toArray());
  assert.notDeepEqual(after, before);
  for (const m of [dropout, dropPath, attn, attnGlobal, mae]) m.dispose();
});
