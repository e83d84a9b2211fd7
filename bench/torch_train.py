"""Times one training step of each method in PyTorch at bench/train.ts's configs; prints JSON lines.

Usage: /usr/bin/python3 bench/torch_train.py [simsiam|moco|mae ...] (batch 128, 32x32, 2 threads).
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'reference'))
import ssl_torch as S  # noqa: E402

torch.set_num_threads(int(os.environ.get('THREADS', '2')))
torch.manual_seed(0)
B = int(os.environ.get('BATCH', '128'))
STEPS = int(os.environ.get('STEPS', '4'))


def time_steps(step):
    step()  # warm-up
    t = time.perf_counter()
    for _ in range(STEPS):
        step()
    return (time.perf_counter() - t) / STEPS


def bench(name):
    x1 = torch.randn(B, 3, 32, 32)
    x2 = torch.randn(B, 3, 32, 32)
    if name == 'simsiam':
        model = S.SimSiam(lambda num_classes: S.resnet18_cifar(num_classes, zero_init_residual=True), 2048, 512)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)

        def step():
            p1, p2, z1, z2 = model(x1, x2)
            loss = S.simsiam_loss(p1, p2, z1, z2)
            opt.zero_grad()
            loss.backward()
            opt.step()
    elif name == 'moco':
        model = S.MoCo(lambda num_classes: S.resnet18_cifar(num_classes, bn_splits=8), 128, 4096, 0.99, 0.1, mlp=True)
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.06, momentum=0.9, weight_decay=5e-4)

        def step():
            loss = model(x1, x2, torch.randperm(B))
            opt.zero_grad()
            loss.backward()
            opt.step()
    elif name == 'mae':
        model = S.MaskedAutoencoderViT(32, 4, 3, 192, 12, 3, 128, 4, 4, norm_pix_loss=True)
        opt = torch.optim.AdamW(model.parameters(), lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05)

        def step():
            loss, _, _ = model(x1, 0.75)
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        raise SystemExit(f'unknown method {name}')
    model.train()
    sec = time_steps(step)
    print(json.dumps({'name': f'train_{name}', 'value': B / sec, 'unit': 'img/s', 'impl': 'torch',
                      'torch_version': torch.__version__, 'threads': torch.get_num_threads(), 'batch': B}), flush=True)


for n in sys.argv[1:] or ['simsiam', 'moco', 'mae']:
    bench(n)
