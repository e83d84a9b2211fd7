# Converts a PyTorch checkpoint (.pth/.pth.tar) into .safetensors for `loadModule(path, module, { keyMap })`.
# Nested dicts are flattened with dots: MoCo/SimSiam's checkpoint['state_dict'] gives `state_dict.module.encoder_q.*`
# unless --entry state_dict is given; MAE's checkpoint['model'] gives `model.*` (maeKeys() accepts both).
# Run: /usr/bin/python3 reference/pth_to_safetensors.py IN.pth OUT.safetensors [--entry state_dict|model]
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


def flatten(d, prefix, out):
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, torch.Tensor):
            out[name] = v
        elif isinstance(v, dict):
            flatten(v, name + ".", out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--entry", default=None, help="take only this top-level entry (state_dict, model)")
    a = ap.parse_args()
    ckpt = torch.load(a.src, map_location="cpu")
    if a.entry is not None:
        ckpt = ckpt[a.entry]
    tensors = {}
    flatten(ckpt, "", tensors)
    safetensors_io.save(tensors, a.dst, {"source": os.path.basename(a.src)})
    print(f"wrote {a.dst}: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
