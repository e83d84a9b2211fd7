# Minimal safetensors writer/reader (the format: u64 LE header length, JSON header, raw LE data), because torch 1.13
# ships without the safetensors package. Used by make_fixtures.py and pth_to_safetensors.py.
import json
import struct

import numpy as np
import torch

_DTYPES = {
    torch.float32: ("F32", np.float32), torch.float64: ("F64", np.float64), torch.float16: ("F16", np.float16),
    torch.int64: ("I64", np.int64), torch.int32: ("I32", np.int32), torch.uint8: ("U8", np.uint8),
    torch.bool: ("BOOL", np.bool_),
}
_BY_CODE = {code: np_t for code, np_t in _DTYPES.values()}


def save(tensors, path, metadata=None):
    """tensors: dict name -> torch.Tensor (any device/layout; written contiguous, little-endian)."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            code, raw = "BF16", t.view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            code, np_t = _DTYPES[t.dtype]
            raw = t.numpy().astype(np.dtype(np_t).newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)  # pad so the data starts 8-byte aligned, as the Rust writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def load(path):
    """Returns (dict name -> numpy array, metadata dict)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.dtype(_BY_CODE[info["dtype"]]).newbyteorder("<")).reshape(info["shape"])
    return out, meta
