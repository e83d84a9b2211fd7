"""Writes test/fixtures/data/recipes.json: the evaluation and fine-tuning transforms of the official recipes.

- MAE's util/crop.RandomResizedCrop (single try, bicubic) as main_linprobe.py uses it;
- Resize(256) + CenterCrop(224) (main_lincls.py bilinear, MAE bicubic), scaled to 32 px, and the demo's test transform.

Random transforms record every random draw they make, in order ("draws"), so the TypeScript side can replay the
same draws through its own code and must then reach the same parameters and pixels. Images are those of
reference/transforms.py. Run: /usr/bin/python3 reference/recipe_transforms.py
"""
import base64
import json
import math
import os
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

    doc = {
        "magic": "selfsup-recipe-transforms",
        "version": 1,
        "generator": f"reference/recipe_transforms.py (torch {torch.__version__}, torchvision {torchvision.__version__}, Pillow {Image.__version__})",
        "images": {k: {"height": v.shape[0], "width": v.shape[1], "data": b64(v)} for k, v in images.items()},
        "mae_crop": crops,
        "eval": evals,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
