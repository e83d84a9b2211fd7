"""Writes test/fixtures/methods/*.safetensors: MoCo, SimSiam and MAE on tiny models, computed in float64.

Each method is built like its official builder (reference/ssl_torch.py) around a tiny encoder, run for a step or
two with fixed inputs, masking noise and key shuffles, and every weight, loss, gradient and updated state is stored.
Run: /usr/bin/python3 reference/make_method_fixtures.py
"""
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_io  # noqa: E402
import ssl_torch as S  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'methods')
META = {'magic': 'selfsup-methods', 'version': '1', 'torch': torch.__version__}
torch.set_default_dtype(torch.float64)


class TinyEncoder(nn.Module):
    """conv1 3x3 (8 ch) -> bn1 -> relu -> global average pool -> fc: the smallest net with BN and an fc head."""

    def __init__(self, num_classes, bn_splits=1):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = S.SplitBatchNorm(8, bn_splits) if bn_splits > 1 else nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        return self.fc(h.mean(dim=(2, 3)))


def state(prefix, module):
    return {f'{prefix}{k}': v.detach().clone() for k, v in module.state_dict().items()}


def grads(prefix, module):
    return {f'{prefix}{k}': p.grad.detach().clone() for k, p in module.named_parameters() if p.grad is not None}


def moco():
    torch.manual_seed(1)
    N = 4
    model = S.MoCo(lambda num_classes: TinyEncoder(num_classes, bn_splits=2), dim=16, K=24, m=0.99, T=0.1,
                   mlp=True, symmetric=True)
    # give the key encoder different BN buffers than zeros/ones would be indistinguishable: keep the defaults
    out = state('init.', model)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5, momentum=0.9)
    for step in range(2):
        im1 = torch.randn(N, 3, 6, 6)
        im2 = torch.randn(N, 3, 6, 6)
        s1 = torch.randperm(N)
        s2 = torch.randperm(N)
        loss = model(im1, im2, s1, s2)
        opt.zero_grad()
        loss.backward()
        out.update({f'step{step}.im1': im1, f'step{step}.im2': im2, f'step{step}.shuffle1': s1.int(),
                    f'step{step}.shuffle2': s2.int(), f'step{step}.loss': loss.detach().reshape(1)})
        out.update(grads(f'step{step}.grad.', model))
        opt.step()
        out.update(state(f'step{step}.after.', model))
    safetensors_io.save(out, os.path.join(OUT, 'moco.safetensors'), {**META, 'N': N, 'dim': 16, 'K': 24, 'm': 0.99,
                                                                      'T': 0.1, 'lr': 0.5, 'momentum': 0.9})


def simsiam(proj_layers=3):
    torch.manual_seed(2 if proj_layers == 3 else 4)
    N = 6
    model = S.SimSiam(lambda num_classes: TinyEncoder(num_classes), dim=16, pred_dim=4, proj_layers=proj_layers)
    out = state('init.', model)
    x1 = torch.randn(N, 3, 6, 6)
    x2 = torch.randn(N, 3, 6, 6)
    p1, p2, z1, z2 = model(x1, x2)
    loss = S.simsiam_loss(p1, p2, z1, z2)
    loss.backward()
    out.update({'x1': x1, 'x2': x2, 'loss': loss.detach().reshape(1), 'p1': p1.detach(), 'z2': z2})
    out.update(grads('grad.', model))
    out.update(state('after.', model))  # running statistics after the two encoder passes
    name = 'simsiam.safetensors' if proj_layers == 3 else f'simsiam_proj{proj_layers}.safetensors'
    safetensors_io.save(out, os.path.join(OUT, name), {**META, 'N': N, 'dim': 16, 'pred_dim': 4, 'proj_layers': proj_layers})


def mae():
    torch.manual_seed(3)
    N = 3
    cfg = dict(img_size=8, patch_size=2, in_chans=3, embed_dim=16, depth=2, num_heads=2, decoder_embed_dim=8,
               decoder_depth=1, decoder_num_heads=2, mlp_ratio=2.0)
    out = {}
    for norm_pix in (True, False):
        tag = 'normpix' if norm_pix else 'pix'
        model = S.MaskedAutoencoderViT(**cfg, norm_pix_loss=norm_pix)
        imgs = torch.randn(N, 3, 8, 8)
        noise = torch.rand(N, 16)
        loss, pred, mask = model(imgs, 0.75, noise)
        loss.backward()
        out.update(state(f'{tag}.init.', model))
        out.update({f'{tag}.imgs': imgs, f'{tag}.noise': noise, f'{tag}.loss': loss.detach().reshape(1),
                    f'{tag}.pred': pred.detach(), f'{tag}.mask': mask})
        out.update(grads(f'{tag}.grad.', model))
    safetensors_io.save(out, os.path.join(OUT, 'mae.safetensors'), {**META, 'N': N, **{k: str(v) for k, v in cfg.items()}})


def mocov3(kind):
    """Two steps of MoCo v3 (SGD between them) with the cosine momentum schedule: the first momentum update sees
    equal encoders, the second moves the momentum encoder towards the stepped base encoder."""
    torch.manual_seed(5 if kind == 'resnet' else 6)
    N, epochs, iters = 4, 3, 2
    if kind == 'resnet':
        model = S.MoCoV3(lambda num_classes: TinyEncoder(num_classes), dim=6, mlp_dim=10, T=1.0)
    else:
        model = S.MoCoV3(lambda num_classes: S.VisionTransformerMoCo(img_size=8, patch_size=2, embed_dim=16, depth=1,
                                                                     num_heads=2, mlp_ratio=2.0, num_classes=num_classes,
                                                                     stop_grad_conv1=True),
                         dim=6, mlp_dim=10, T=0.2, vit=True)
    model.double()
    out = state('init.', model)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5, momentum=0.9)
    ms = []
    for step in range(2):
        m = S.adjust_moco_momentum(step / iters, 0.9, epochs)
        ms.append(m)
        x1 = torch.randn(N, 3, 8, 8)
        x2 = torch.randn(N, 3, 8, 8)
        loss = model(x1, x2, m)
        opt.zero_grad()
        loss.backward()
        out.update({f'step{step}.x1': x1, f'step{step}.x2': x2, f'step{step}.loss': loss.detach().reshape(1),
                    f'step{step}.m': torch.tensor([m])})
        out.update(grads(f'step{step}.grad.', model))
        out.update(state(f'step{step}.forward.', model))  # momentum encoder after its update, BN statistics
        opt.step()
    # the schedule over a run: epochs 0, 0.5, ..., 10 of 10 for m = 0.99 and 0.996
    sched = [[e / 2, m0, 10, S.adjust_moco_momentum(e / 2, m0, 10)] for m0 in (0.99, 0.996) for e in range(21)]
    out['schedule'] = torch.tensor(sched)
    safetensors_io.save(out, os.path.join(OUT, f'mocov3_{kind}.safetensors'),
                        {**META, 'N': N, 'dim': 6, 'mlp_dim': 10, 'T': model.T, 'lr': 0.5, 'momentum': 0.9,
                         'moco_m': 0.9, 'epochs': epochs, 'iters': iters})


if __name__ == '__main__':
    os.makedirs(OUT, exist_ok=True)
    moco()
    simsiam()
    simsiam(proj_layers=2)
    mae()
    mocov3('resnet')
    mocov3('vit')
    print('wrote', sorted(os.listdir(OUT)))
