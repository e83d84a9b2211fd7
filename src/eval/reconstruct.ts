// MAE reconstructions as the official demo (mae/demo/mae_visualize.ipynb, run_one_image) draws them:
// original | masked | reconstruction | reconstruction with the visible patches pasted back.
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import type { MaskedAutoencoderViT } from '../methods/mae.js';

export interface Reconstruction {
  /** [N, C, H, W] the input, normalised as in training */
  original: Tensor;
  /** [N, C, H, W] the input with the removed patches zeroed (the dataset mean once unnormalised) */
  masked: Tensor;
  /** [N, C, H, W] the decoder's prediction for every patch, in the input's normalised units */
  reconstruction: Tensor;
  /** [N, C, H, W] visible patches from the input, removed ones from the prediction */
  pasted: Tensor;
  /** mean squared error on the removed patches, in the loss's units (per-patch normalised under normPixLoss) */
  loss: number;
}

/**
 * Runs the MAE on imgs [N, C, H, W] with the mask drawn from noise [N, L] (argsort: the smallest are kept).
 * With normPixLoss the prediction is in per-patch normalised units; like the demo we de-normalise it with the
 * target patch's own mean and (unbiased) variance so it can be shown as pixels.
 */
export function reconstruct(model: MaskedAutoencoderViT, imgs: Tensor, maskRatio: number, noise: Tensor): Reconstruction {
  return T.noGrad(() => T.tidy(() => {
    const { loss, pred, mask } = model.computeLoss(imgs, maskRatio, noise); // pred [N, L, p*p*C], mask [N, L]
    let y = pred;
    if (model.cfg.normPixLoss) {
      const target = model.patchify(imgs); // [N, L, p*p*C]
      const mean = T.mean(target, -1, true); // [N, L, 1]
      const variance = T.variance(target, -1, true); // [N, L, 1]
      y = T.add(T.mul(y, T.sqrt(T.addScalar(variance, 1e-6))), mean);
    }
    const D = pred.shape[2]!;
    const [N, L] = mask.shape as [number, number];
    const reconstruction = model.unpatchify(y); // [N, C, H, W]
    const m = model.unpatchify(T.expand(T.reshape(mask, [N, L, 1]), [N, L, D])); // [N, C, H, W] 1 is removed
    const keep = T.addScalar(T.neg(m), 1);
    const masked = T.mul(imgs, keep);
    const pasted = T.add(masked, T.mul(reconstruction, m));
    const out = { original: T.keep(T.mul(imgs, 1)), masked: T.keep(masked), reconstruction: T.keep(reconstruction), pasted: T.keep(pasted), loss: loss.item() };
    return out;
  }));
}
