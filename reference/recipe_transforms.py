"""Writes test/fixtures/data/recipes.json: the evaluation and fine-tuning transforms of the official recipes.

- MAE's util/crop.RandomResizedCrop (single try, bicubic) as main_linprobe.py uses it;
- Resize(256) + CenterCrop(224) (main_lincls.py bilinear, MAE bicubic), scaled to 32 px, and the demo's test transform;
- MAE's fine-tuning transform, timm 0.3.2's create_transform: each RandAugment op (rand-m9-mstd0.5-inc1's increasing
  set) alone, and the whole pipeline (bicubic RandomResizedCropAndInterpolation, flip, RandAugment, ToTensor,
  Normalize, RandomErasing 0.25 in pixel mode) with its draws recorded.

Random transforms record every random draw they make, in order ("draws"), so the TypeScript side can replay the
same draws through its own code and must then reach the same parameters and pixels. Images are those of
reference/transforms.py. Run: /usr/bin/python3 reference/recipe_transforms.py
"""
import base64
import json
import math
import os
import random
import sys

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from transforms import synthetic  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "data", "recipes.json")
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
CIFAR = ([0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010])


def b64(a):
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


class Recorder:
    """The draws a transform makes, in order: [kind, value]."""

    def __init__(self):
        self.draws = []

    def add(self, kind, value):
        self.draws.append([kind, value])
        return value


def mae_crop_params(img, scale, ratio, rec):
    """mae/util/crop.py RandomResizedCrop.get_params, verbatim logic, with its torch draws recorded."""
    width, height = F.get_image_size(img)  # F._get_image_size in the torchvision MAE pinned
    area = height * width
    target_area = area * rec.add("uniform", torch.empty(1).uniform_(scale[0], scale[1]).item())
    log_ratio = torch.log(torch.tensor(ratio))
    aspect_ratio = torch.exp(torch.tensor(rec.add("uniform", torch.empty(1).uniform_(log_ratio[0], log_ratio[1]).item()))).item()
    w = int(round(math.sqrt(target_area * aspect_ratio)))
    h = int(round(math.sqrt(target_area / aspect_ratio)))
    w = min(w, width)
    h = min(h, height)
    i = rec.add("randint", torch.randint(0, height - h + 1, size=(1,)).item())
    j = rec.add("randint", torch.randint(0, width - w + 1, size=(1,)).item())
    return i, j, h, w


# ------------------------------------------------------------------ timm 0.3.2's transforms (timm is not installable
# here): the logic of timm/data/auto_augment.py, random_erasing.py and transforms.py, vendored with every random call
# going through a Recorder. np.random.choice(ops, n, replace=True) becomes n uniform index draws.
_MAX_LEVEL = 10.
_RAND_INCREASING_TRANSFORMS = [
    'AutoContrast', 'Equalize', 'Invert', 'Rotate', 'PosterizeIncreasing', 'SolarizeIncreasing', 'SolarizeAdd',
    'ColorIncreasing', 'ContrastIncreasing', 'BrightnessIncreasing', 'SharpnessIncreasing', 'ShearX', 'ShearY',
    'TranslateXRel', 'TranslateYRel',
]


class RecordingRandom:
    """Python's random module as timm calls it, each draw recorded."""

    def __init__(self, rec):
        self.rec = rec

    def random(self):
        return self.rec.add("random", random.random())

    def uniform(self, a, b):
        return self.rec.add("uniform", random.uniform(a, b))

    def randint(self, a, b):  # inclusive, as Python's
        return self.rec.add("randint", random.randint(a, b))

    def gauss(self, mu, sigma):
        return self.rec.add("gauss", random.gauss(mu, sigma))


def timm_ops(rnd, fillcolor):
    from PIL import ImageEnhance, ImageOps
    kw = dict(fillcolor=fillcolor, resample=Image.BICUBIC)

    def negate(v):
        return -v if rnd.random() > 0.5 else v

    def enhance_inc(level):
        return 1.0 + negate((level / _MAX_LEVEL) * .9)

    def solarize_add(img, add, thresh=128):
        lut = [min(255, i + add) if i < thresh else i for i in range(256)]
        return img.point(lut + lut + lut)

    def posterize(img, bits):
        return img if bits >= 8 else ImageOps.posterize(img, bits)

    return {
        'AutoContrast': lambda img, l: ImageOps.autocontrast(img),
        'Equalize': lambda img, l: ImageOps.equalize(img),
        'Invert': lambda img, l: ImageOps.invert(img),
        'Rotate': lambda img, l: img.rotate(negate((l / _MAX_LEVEL) * 30.), **kw),
        'PosterizeIncreasing': lambda img, l: posterize(img, 4 - int((l / _MAX_LEVEL) * 4)),
        'SolarizeIncreasing': lambda img, l: ImageOps.solarize(img, 256 - int((l / _MAX_LEVEL) * 256)),
        'SolarizeAdd': lambda img, l: solarize_add(img, int((l / _MAX_LEVEL) * 110)),
        'ColorIncreasing': lambda img, l: ImageEnhance.Color(img).enhance(enhance_inc(l)),
        'ContrastIncreasing': lambda img, l: ImageEnhance.Contrast(img).enhance(enhance_inc(l)),
        'BrightnessIncreasing': lambda img, l: ImageEnhance.Brightness(img).enhance(enhance_inc(l)),
        'SharpnessIncreasing': lambda img, l: ImageEnhance.Sharpness(img).enhance(enhance_inc(l)),
        'ShearX': lambda img, l: img.transform(img.size, Image.AFFINE, (1, negate((l / _MAX_LEVEL) * 0.3), 0, 0, 1, 0), **kw),
        'ShearY': lambda img, l: img.transform(img.size, Image.AFFINE, (1, 0, 0, negate((l / _MAX_LEVEL) * 0.3), 1, 0), **kw),
        'TranslateXRel': lambda img, l: img.transform(img.size, Image.AFFINE, (1, 0, negate((l / _MAX_LEVEL) * 0.45) * img.size[0], 0, 1, 0), **kw),
        'TranslateYRel': lambda img, l: img.transform(img.size, Image.AFFINE, (1, 0, 0, 0, 1, negate((l / _MAX_LEVEL) * 0.45) * img.size[1]), **kw),
    }


def rand_augment(img, rnd, fillcolor, magnitude=9, num_layers=2, magnitude_std=0.5):
    """RandAugment(rand_augment_ops(9, hparams, _RAND_INCREASING_TRANSFORMS), 2) with magnitude_std 0.5."""
    ops = timm_ops(rnd, fillcolor)
    chosen = [_RAND_INCREASING_TRANSFORMS[rnd.rec.add("randint", int(np.random.randint(len(_RAND_INCREASING_TRANSFORMS))))]
              for _ in range(num_layers)]
    for name in chosen:  # AugmentOp.__call__
        if rnd.random() > 0.5:
            continue
        m = magnitude
        if magnitude_std > 0:
            m = rnd.gauss(m, magnitude_std)
        m = min(_MAX_LEVEL, max(0, m))
        img = ops[name](img, m)
    return img, chosen


def rrc_and_interpolation_params(img, scale, ratio, rnd):
    """timm transforms.py RandomResizedCropAndInterpolation.get_params."""
    area = img.size[0] * img.size[1]
    for attempt in range(10):
        target_area = rnd.uniform(*scale) * area
        log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        aspect_ratio = math.exp(rnd.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if w <= img.size[0] and h <= img.size[1]:
            i = rnd.randint(0, img.size[1] - h)
            j = rnd.randint(0, img.size[0] - w)
            return i, j, h, w
    in_ratio = img.size[0] / img.size[1]
    if in_ratio < min(ratio):
        w = img.size[0]
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = img.size[1]
        w = int(round(h * max(ratio)))
    else:
        w = img.size[0]
        h = img.size[1]
    return (img.size[1] - h) // 2, (img.size[0] - w) // 2, h, w


def random_erasing(t, rnd, probability=0.25, min_area=0.02, max_area=1 / 3, min_aspect=0.3):
    """timm random_erasing.py RandomErasing(probability, mode='pixel', max_count=1)._erase on one CHW tensor."""
    if rnd.random() > probability:
        return t
    chan, img_h, img_w = t.shape
    area = img_h * img_w
    log_aspect_ratio = (math.log(min_aspect), math.log(1 / min_aspect))
    for attempt in range(10):
        target_area = rnd.uniform(min_area, max_area) * area / 1
        aspect_ratio = math.exp(rnd.uniform(*log_aspect_ratio))
        h = int(round(math.sqrt(target_area * aspect_ratio)))
        w = int(round(math.sqrt(target_area / aspect_ratio)))
        if w < img_w and h < img_h:
            top = rnd.randint(0, img_h - h)
            left = rnd.randint(0, img_w - w)
            pixels = torch.empty((chan, h, w), dtype=t.dtype).normal_()
            for v in pixels.flatten().tolist():
                rnd.rec.add("normal", v)
            t[:, top:top + h, left:left + w] = pixels
            break
    return t


def mae_finetune_transform(img, size, mean, std, rnd):
    """timm 0.3.2 create_transform(is_training=True, auto_augment='rand-m9-mstd0.5-inc1', interpolation='bicubic',
    re_prob=0.25, re_mode='pixel', re_count=1) as mae/main_finetune.py builds it."""
    fill = tuple([min(255, round(255 * x)) for x in mean])
    i, j, h, w = rrc_and_interpolation_params(img, (0.08, 1.0), (3. / 4., 4. / 3.), rnd)
    img = F.resized_crop(img, i, j, h, w, [size, size], T.InterpolationMode.BICUBIC)
    if rnd.random() < 0.5:  # RandomHorizontalFlip: torch.rand(1) < p; a uniform draw all the same
        img = F.hflip(img)
    img, chosen = rand_augment(img, rnd, fill)
    t = F.normalize(F.to_tensor(img), mean, std)
    return random_erasing(t, rnd), chosen


def main():
    torch.manual_seed(0)
    images = {"a": synthetic(37, 29, 1), "b": synthetic(96, 80, 2), "c": synthetic(20, 26, 3), "d": synthetic(32, 32, 4)}
    pil = {k: Image.fromarray(v, "RGB") for k, v in images.items()}

    crops = []
    for k in range(16):
        image = "ab"[k % 2]
        scale = (0.08, 1.0) if k < 12 else (0.9, 1.0)  # the last ones overflow the image and get clamped
        rec = Recorder()
        i, j, h, w = mae_crop_params(pil[image], scale, (3 / 4, 4 / 3), rec)
        out = np.asarray(F.resized_crop(pil[image], i, j, h, w, [24, 24], T.InterpolationMode.BICUBIC))
        crops.append({"image": image, "size": 24, "scale": scale, "draws": rec.draws, "params": [i, j, h, w], "data": b64(out)})

    evals = []
    for image in ["a", "b"]:
        for interp, name in [(T.InterpolationMode.BILINEAR, "moco-v2"), (T.InterpolationMode.BICUBIC, "mae")]:
            # main_lincls.py / main_linprobe.py at 32 px: Resize(round(32 * 256 / 224) = 37) + CenterCrop(32)
            t = T.Compose([T.Resize(37, interpolation=interp), T.CenterCrop(32), T.ToTensor(), T.Normalize(*IMAGENET)])
            evals.append({"image": image, "augment": name, "size": 32, "data": b64(t(pil[image]).numpy().astype(np.float32))})
    # the CIFAR demo's test transform on a 32x32 image: ToTensor + Normalize only
    t = T.Compose([T.ToTensor(), T.Normalize(*CIFAR)])
    evals.append({"image": "d", "augment": "moco-demo-cifar", "size": 32, "data": b64(t(pil["d"]).numpy().astype(np.float32))})

    # each RandAugment op alone at magnitudes 9 and 4, on two images, its random sign recorded
    fill = tuple([min(255, round(255 * x)) for x in IMAGENET[0]])
    ops = []
    for name in _RAND_INCREASING_TRANSFORMS:
        for image, level in [("a", 9.0), ("c", 4.3), ("d", 9.7)]:
            rec = Recorder()
            out = np.asarray(timm_ops(RecordingRandom(rec), fill)[name](pil[image], level))
            ops.append({"op": name, "image": image, "level": level, "fill": list(fill), "draws": rec.draws, "data": b64(out)})

    # the whole fine-tuning transform at 32 px, seeded; erasing at its official 0.25
    random.seed(0)
    np.random.seed(0)
    finetune = []
    for k in range(40):
        image = "abcd"[k % 4]
        rec = Recorder()
        t, chosen = mae_finetune_transform(pil[image], 32, *IMAGENET, RecordingRandom(rec))
        finetune.append({"image": image, "size": 32, "chosen": chosen, "draws": rec.draws, "data": b64(t.numpy().astype(np.float32))})

    doc = {
        "magic": "selfsup-recipe-transforms",
        "version": 1,
        "generator": f"reference/recipe_transforms.py (torch {torch.__version__}, torchvision {torchvision.__version__}, Pillow {Image.__version__})",
        "images": {k: {"height": v.shape[0], "width": v.shape[1], "data": b64(v)} for k, v in images.items()},
        "mae_crop": crops,
        "eval": evals,
        "randaugment_ops": ops,
        "mae_finetune": finetune,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
