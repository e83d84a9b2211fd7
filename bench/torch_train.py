"""Times training steps of one method in PyTorch at bench/train.ts's configs; prints one JSON line.

Usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/torch_train.py simsiam|moco|mae
Environment: BATCH (128), STEPS timed after WARMUP (5, 1), THREADS (2), PRECISION (fp32 | bf16: torch.autocast on CPU).
Prints the median seconds per step, every step's time, peak RSS of this process, and the BLAS library and core in use.
"""
import json
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'reference'))
import ssl_torch as S  # noqa: E402

torch.set_num_threads(int(os.environ.get('THREADS', '2')))
torch.manual_seed(0)
B = int(os.environ.get('BATCH', '128'))
STEPS = int(os.environ.get('STEPS', '5'))
WARMUP = int(os.environ.get('WARMUP', '1'))
PRECISION = os.environ.get('PRECISION', 'fp32')


def bench(name):
    x1 = torch.randn(B, 3, 32, 32)
    x2 = torch.randn(B, 3, 32, 32)
    if name == 'simsiam':
        model = S.SimSiam(lambda num_classes: S.resnet18_cifar(num_classes, zero_init_residual=True), 2048, 512)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)

        def loss_fn():
            p1, p2, z1, z2 = model(x1, x2)
            return S.simsiam_loss(p1, p2, z1, z2)
    elif name == 'moco':
        model = S.MoCo(lambda num_classes: S.resnet18_cifar(num_classes, bn_splits=8), 128, 4096, 0.99, 0.1, mlp=True)
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.06, momentum=0.9, weight_decay=5e-4)

        def loss_fn():
            return model(x1, x2, torch.randperm(B))
    elif name == 'mae':
        model = S.MaskedAutoencoderViT(32, 4, 3, 192, 12, 3, 128, 4, 4, norm_pix_loss=True)
        opt = torch.optim.AdamW(model.parameters(), lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05)

        def loss_fn():
            loss, _, _ = model(x1, 0.75)
            return loss
    else:
        raise SystemExit(f'unknown method {name}')

    def step():
        if PRECISION == 'bf16':
            with torch.autocast('cpu', dtype=torch.bfloat16):
                loss = loss_fn()
        else:
            loss = loss_fn()
        opt.zero_grad()
        loss.float().backward()
        opt.step()

    model.train()
    for _ in range(max(WARMUP, 1)):
        step()
    times = []
    for _ in range(STEPS):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    print(json.dumps({'name': f'train_{name}', 'impl': 'torch', 'precision': PRECISION,
                      'median_s': statistics.median(times), 'step_s': times,
                      'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      'blas': S.blas_in_use(), 'mkldnn': torch.backends.mkldnn.is_available(),
                      'torch_version': torch.__version__, 'threads': torch.get_num_threads(), 'batch': B}), flush=True)


if len(sys.argv) != 2:
    raise SystemExit('usage: torch_train.py simsiam|moco|mae')
bench(sys.argv[1])
