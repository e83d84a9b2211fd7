# Writes test/fixtures/data/transforms.json: torchvision 0.14 / Pillow outputs on fixed images with fixed random
# parameters, plus statistics of RandomResizedCrop and ColorJitter parameter sampling. Run: /usr/bin/python3 reference/transforms.py
import base64
import io
import json
import math
import os

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image, ImageFilter, ImageOps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "test", "fixtures", "data")


def b64(a):
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def synthetic(w, h, seed):
    """Smooth colour gradients, stripes, grey and saturated patches and noise: exercises every code path."""
    rs = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127.5 + 127.5 * np.sin(x / w * 6.0 + y / h * 2.0)
    g = 255.0 * (y / max(h - 1, 1))
    b = 127.5 + 127.5 * np.cos((x * x + y * y) / (w * 3.0))
    img = np.stack([r, g, b], axis=-1) + rs.normal(0, 12, (h, w, 3))
    img[: h // 4, : w // 4] = [200, 200, 200]  # grey patch: saturation 0
    img[h // 2 : h // 2 + 3, :] = [255, 0, 0]  # pure red stripe
    img[-3:, -5:] = [0, 0, 255]
    img[-2:, :3] = [255, 255, 255]
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def main():
    torch.manual_seed(0)
    images = {"a": synthetic(37, 29, 1), "b": synthetic(96, 80, 2), "c": synthetic(20, 26, 3)}
    pil = {k: Image.fromarray(v, "RGB") for k, v in images.items()}
    cases = []

    def add(op, image, params, out):
        arr = np.asarray(out)
        if arr.dtype == np.uint8:
            cases.append({"op": op, "image": image, "params": params, "height": arr.shape[0], "width": arr.shape[1], "dtype": "uint8", "data": b64(arr)})
        else:  # CHW float tensor
            arr = arr.astype(np.float32)
            cases.append({"op": op, "image": image, "params": params, "height": arr.shape[1], "width": arr.shape[2], "dtype": "float32", "data": b64(arr)})

    interp = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}
    for mode in ["bilinear", "bicubic"]:
        for image, size in [("a", [16, 20]), ("a", [64, 50]), ("b", [24, 20]), ("b", [23, 77]), ("c", [26, 7])]:
            add("resize", image, {"size": size, "interpolation": mode}, F.resize(pil[image], size, interp[mode]))
        for image, size in [("b", 24), ("a", 30), ("c", 13)]:
            add("resize", image, {"size": size, "interpolation": mode}, F.resize(pil[image], size, interp[mode]))
        for image, box, size in [("b", (5, 7, 50, 40), [32, 32]), ("a", (0, 0, 29, 37), [16, 16]), ("a", (3, 4, 10, 12), [32, 32]), ("b", (70, 1, 10, 95), [8, 40]), ("c", (2, 2, 1, 1), [5, 5])]:
            i, j, h, w = box
            add("resized_crop", image, {"top": i, "left": j, "height": h, "width": w, "size": size, "interpolation": mode},
                F.resized_crop(pil[image], i, j, h, w, size, interp[mode]))
    for image, size in [("a", [20, 20]), ("a", [24, 30]), ("a", [40, 41]), ("c", [25, 20]), ("b", [79, 95])]:
        add("center_crop", image, {"size": size}, F.center_crop(pil[image], size))
    for image in ["a", "c"]:
        add("hflip", image, {}, F.hflip(pil[image]))
        add("grayscale", image, {}, F.rgb_to_grayscale(pil[image], num_output_channels=3))
        add("solarize", image, {"threshold": 128}, ImageOps.solarize(pil[image]))  # MoCo v3's Solarize
        for f in [0.0, 0.6, 1.0, 1.37]:
            add("brightness", image, {"factor": f}, F.adjust_brightness(pil[image], f))
        for f in [0.0, 0.6, 1.4]:
            add("contrast", image, {"factor": f}, F.adjust_contrast(pil[image], f))
            add("saturation", image, {"factor": f}, F.adjust_saturation(pil[image], f))
        for f in [-0.5, -0.1, -0.013, 0.0, 0.05, 0.37, 0.5]:
            add("hue", image, {"factor": f}, F.adjust_hue(pil[image], f))
    for image in ["a", "b", "c"]:
        for sigma in [0.1, 0.7, 1.3, 2.0, 5.5]:
            # moco/loader.py GaussianBlur: PIL's box-blur approximation with radius=sigma
            add("gaussian_blur", image, {"sigma": sigma}, pil[image].filter(ImageFilter.GaussianBlur(radius=sigma)))

    # ColorJitter: torchvision's own forward split as get_params + functional calls, with recorded parameters
    jitter = T.ColorJitter(0.4, 0.4, 0.4, 0.1)
    for k in range(6):
        image = "abc"[k % 3]
        fn_idx, b, c, s, h = T.ColorJitter.get_params(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)
        img = pil[image]
        for fn_id in fn_idx.tolist():
            if fn_id == 0:
                img = F.adjust_brightness(img, b)
            elif fn_id == 1:
                img = F.adjust_contrast(img, c)
            elif fn_id == 2:
                img = F.adjust_saturation(img, s)
            elif fn_id == 3:
                img = F.adjust_hue(img, h)
        add("color_jitter", image, {"order": fn_idx.tolist(), "brightness": b, "contrast": c, "saturation": s, "hue": h}, img)

    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    for image in ["a", "c"]:
        t = F.to_tensor(pil[image])
        add("to_tensor", image, {}, t.numpy())
        add("normalize", image, {"mean": mean, "std": std}, F.normalize(t, mean, std).numpy())

    # RandomResizedCrop's central-crop fallback: an impossible scale makes all 10 attempts fail
    fallback = []
    for (h, w) in [(29, 37), (20, 100), (100, 20), (50, 50), (31, 40), (7, 3)]:
        for ratio in [(3 / 4, 4 / 3), (0.5, 0.5), (2.0, 3.0)]:
            img = Image.new("RGB", (w, h))
            i, j, ch, cw = T.RandomResizedCrop.get_params(img, scale=(2.0, 3.0), ratio=ratio)
            fallback.append({"height": h, "width": w, "ratio": list(ratio), "params": [i, j, ch, cw]})

    # statistics of the random parameters over many draws
    n = 20000
    H, W = 80, 100
    img = Image.new("RGB", (W, H))
    draws = np.array([T.RandomResizedCrop.get_params(img, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)) for _ in range(n)], dtype=np.float64)
    i, j, h, w = draws.T
    rrc_stats = {"height": H, "width": W, "scale": [0.2, 1.0], "ratio": [3 / 4, 4 / 3], "n": n, "moments": {}}
    for name, v in [("top", i), ("left", j), ("h", h), ("w", w), ("area", h * w / (H * W)), ("logratio", np.log(w / h))]:
        rrc_stats["moments"][name] = {"mean": float(v.mean()), "std": float(v.std())}
    rrc_stats["full_image_rate"] = float(np.mean((h == H) & (w == W)))

    jit = []
    for _ in range(n):
        fn_idx, b, c, s, hh = T.ColorJitter.get_params(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)
        jit.append([b, c, s, hh] + fn_idx.tolist())
    jit = np.array(jit, dtype=np.float64)
    cj_stats = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1, "n": n, "moments": {}}
    for k, name in enumerate(["brightness", "contrast", "saturation", "hue"]):
        cj_stats["moments"][name] = {"mean": float(jit[:, k].mean()), "std": float(jit[:, k].std())}
    # frequency of each adjustment in each position of the order
    cj_stats["position_freq"] = [[float(np.mean(jit[:, 4 + pos] == fn)) for fn in range(4)] for pos in range(4)]

    # decoding: PIL's pil_loader (open + convert('RGB')) on tiny files written here
    decode = []
    os.makedirs(OUT_DIR, exist_ok=True)
    src = images["a"]
    for name, make in [
        ("tiny.jpg", lambda p: Image.fromarray(src, "RGB").save(p, quality=90)),  # 4:2:0, odd size
        ("tiny-422.jpg", lambda p: Image.fromarray(src, "RGB").save(p, quality=75, subsampling=1)),
        ("tiny-444.jpg", lambda p: Image.fromarray(src, "RGB").save(p, quality=95, subsampling=0)),
        ("tiny-gray.jpg", lambda p: Image.fromarray(src[:, :, 0], "L").save(p, quality=85)),
        ("tiny-progressive.jpg", lambda p: Image.fromarray(src, "RGB").save(p, quality=80, progressive=True)),
        ("tiny-q16.jpg", lambda p: Image.fromarray(images["c"], "RGB").save(p, quality=3)),  # coarse tables: clipping paths
        ("tiny-gray.png", lambda p: Image.fromarray(src[:, :, 1], "L").save(p)),
        ("tiny-rgba.png", lambda p: Image.fromarray(np.dstack([src, np.full(src.shape[:2], 77, np.uint8)]), "RGBA").save(p)),
        ("tiny.webp", lambda p: Image.fromarray(src, "RGB").save(p, lossless=True)),
    ]:
        path = os.path.join(OUT_DIR, name)
        make(path)
        with open(path, "rb") as f:
            out = np.asarray(Image.open(f).convert("RGB"))
        decode.append({"file": name, "height": out.shape[0], "width": out.shape[1], "data": b64(out)})

    doc = {
        "magic": "selfsup-data-fixtures",
        "version": 1,
        "generator": f"reference/transforms.py (torch {torch.__version__}, torchvision {torchvision.__version__}, Pillow {Image.__version__})",
        "images": {k: {"height": v.shape[0], "width": v.shape[1], "data": b64(v)} for k, v in images.items()},
        "cases": cases,
        "rrc_fallback": fallback,
        "rrc_stats": rrc_stats,
        "color_jitter_stats": cj_stats,
        "decode": decode,
    }
    path = os.path.join(OUT_DIR, "transforms.json")
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print(f"wrote {path}: {len(cases)} cases, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
