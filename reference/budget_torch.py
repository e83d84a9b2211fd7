"""PyTorch side of the equal-budget comparison (issue 15): MoCo, SimSiam or MAE on CIFAR-10 JPEGs with the recipe of
selfsup's `cifar` preset, for a given number of epochs, with the kNN monitor's protocol before and after (MoCo,
SimSiam) or the held-out reconstruction loss and the weights saved for selfsup's evaluators (MAE).

The models are reference/ssl_torch.py's (the official builders); the ResNet-18 CIFAR stem takes the same width
multiplier as selfsup's (channels round(64 w), round(128 w), ...). Augmentations are the torchvision lists that
src/data/presets.ts copies: MoCo's CIFAR demo (RandomResizedCrop(32) at scale 0.08-1, flip, ColorJitter p 0.8,
grayscale 0.2) and SimSiam's main_simsiam.py list without blur. SGD with momentum 0.9, cosine lr per epoch as
main_moco.py's adjust_learning_rate (SimSiam: lr x batch / 256, its predictor at the constant lr, fix_pred_lr).
kNN: weighted kNN (k 200, T 0.1, cosine) on L2-normalised features, the MoCo demo's knn_predict; features are the
backbone's pooled output (SimSiam) or the normalised 128-d head (MoCo's demo), all 50,000 training images as the
bank and all 10,000 test images as queries unless --bank-size / --test-size cut them (first N in file order).

MAE: models_mae.py's MaskedAutoencoderViT (reference/ssl_torch.py) as ViT-Tiny/4 with the 128-d, 4-block decoder,
mask 0.75, norm_pix_loss; main_pretrain.py's recipe: RandomResizedCrop(32, 0.2-1, bicubic) + flip, AdamW (betas 0.9,
0.95; no weight decay on biases and 1-D parameters, timm's add_weight_decay) at blr x batch / 256, lr_sched.py's
per-iteration warmup + cosine. `--save PATH` writes the weights under their official names as safetensors, which
bench/budget.ts turns into a selfsup run folder, so both sides are scored by the same kNN, held-out loss and probe.

Prints JSON lines: {"event": "calibrate"|"knn"|"epoch"|"test_loss"|"done", ...}. `--calibrate S` times S training steps (after 3
warm-up steps) on a second model with the training optimizer and prints img/s without training the real one; bench/budget.ts uses it to
fit the epoch count to a time budget.

Run with Debian's torch and this environment's OpenBLAS variables unset:
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 reference/budget_torch.py --method moco \
      --data ../shared/datasets/cifar10-jpg.tar.gz --epochs 20 --width 0.25 --batch-size 256
"""
import argparse
import io
import json
import math
import os
import sys
import tarfile
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
import torchvision.transforms as T
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
from ssl_torch import MaskedAutoencoderViT, MoCo, SimSiam, SplitBatchNorm, blas_in_use, simsiam_loss  # noqa: E402

CIFAR_MEAN = [0.4914, 0.4822, 0.4465]
CIFAR_STD = [0.2023, 0.1994, 0.2010]
CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']


def emit(**record):
    print(json.dumps(record), flush=True)


# ----------------------------------------------------------------------------- data

def read_split(path, split):
    """[(jpeg bytes, label)] of cifar10/<split>/<class>/*.jpg from a .tar.gz or a folder, in sorted path order."""
    items = []
    if os.path.isdir(path):
        root = os.path.join(path, split) if os.path.isdir(os.path.join(path, split)) else os.path.join(path, 'cifar10', split)
        for label, c in enumerate(CLASSES):
            folder = os.path.join(root, c)
            for f in sorted(os.listdir(folder)):
                with open(os.path.join(folder, f), 'rb') as fh:
                    items.append((f'{c}/{f}', fh.read(), label))
    else:
        with tarfile.open(path, 'r:*') as tar:
            for m in tar:
                parts = m.name.strip('/').split('/')
                if not m.isfile() or len(parts) < 3 or parts[-3] != split or parts[-2] not in CLASSES:
                    continue
                items.append((f'{parts[-2]}/{parts[-1]}', tar.extractfile(m).read(), CLASSES.index(parts[-2])))
    if not items:
        raise SystemExit(f'[budget_torch] no {split} images under {path} (expected cifar10/{split}/<class>/*.jpg)')
    items.sort(key=lambda it: (it[2], it[0]))
    return [(data, label) for _, data, label in items]


class Images(torch.utils.data.Dataset):
    def __init__(self, items, transform, views):
        self.items, self.transform, self.views = items, transform, views

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        data, label = self.items[i]
        img = Image.open(io.BytesIO(data)).convert('RGB')
        if self.views == 1:
            return self.transform(img), label
        return [self.transform(img) for _ in range(self.views)], label


def train_transform(method):
    jitter = T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8)
    tail = [T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)]
    if method == 'mae':  # main_pretrain.py's transform_train at 32 px with the CIFAR statistics (selfsup's mae-cifar)
        return T.Compose([T.RandomResizedCrop(32, scale=(0.2, 1.0), interpolation=T.InterpolationMode.BICUBIC), T.RandomHorizontalFlip(), *tail])
    if method == 'moco':  # moco_cifar10_demo's train_transform
        return T.Compose([T.RandomResizedCrop(32), T.RandomHorizontalFlip(), jitter, T.RandomGrayscale(p=0.2), *tail])
    # main_simsiam.py's augmentation (MoCo v2's list) at 32 px without blur
    return T.Compose([T.RandomResizedCrop(32, scale=(0.2, 1.0)), jitter, T.RandomGrayscale(p=0.2), T.RandomHorizontalFlip(), *tail])


# ----------------------------------------------------------------------------- models

def resnet18_cifar_width(num_classes, width, bn_splits=1):
    """torchvision's ResNet-18 with the CIFAR stem and every stage's channels scaled by width (selfsup's resnet18-cifar)."""
    norm = (lambda c: SplitBatchNorm(c, bn_splits)) if bn_splits > 1 else nn.BatchNorm2d
    widths = [max(1, round(c * width)) for c in (64, 128, 256, 512)]

    class Net(torchvision.models.resnet.ResNet):
        def __init__(self):
            nn.Module.__init__(self)
            self._norm_layer = norm
            self.inplanes, self.dilation, self.groups, self.base_width = widths[0], 1, 1, 64
            self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
            self.bn1 = norm(widths[0])
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.Identity()
            block = torchvision.models.resnet.BasicBlock
            self.layer1 = self._make_layer(block, widths[0], 2)
            self.layer2 = self._make_layer(block, widths[1], 2, stride=2)
            self.layer3 = self._make_layer(block, widths[2], 2, stride=2)
            self.layer4 = self._make_layer(block, widths[3], 2, stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(widths[3], num_classes)
            for m in self.modules():  # torchvision's init
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)

    return Net()


def backbone_features(encoder, x):
    """The pooled backbone output (the fc's input), as selfsup's knn.feature = 'backbone'."""
    m = encoder
    x = m.relu(m.bn1(m.conv1(x)))
    x = m.layer4(m.layer3(m.layer2(m.layer1(m.maxpool(x)))))
    return torch.flatten(m.avgpool(x), 1)


def build(args):
    if args.method == 'mae':
        model = MaskedAutoencoderViT(img_size=32, patch_size=4, embed_dim=192, depth=12, num_heads=3, decoder_embed_dim=128,
                                     decoder_depth=4, decoder_num_heads=4, mlp_ratio=4., norm_pix_loss=True)
        lr = args.lr * args.batch_size / 256
        # timm 0.3.2 optim_factory.add_weight_decay: 1-D parameters and biases get none
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim == 1 or name.endswith('.bias') else decay).append(p)
        opt = torch.optim.AdamW([{'params': no_decay, 'weight_decay': 0.}, {'params': decay, 'weight_decay': args.wd}],
                                lr=lr, betas=(0.9, 0.95))
        return model, opt, None, lr
    if args.method == 'moco':
        model = MoCo(lambda num_classes: resnet18_cifar_width(num_classes, args.width, args.bn_splits),
                     dim=128, K=args.K, m=0.99, T=0.1, mlp=False, symmetric=False)
        feature = lambda x: F.normalize(model.encoder_q(x), dim=1)  # noqa: E731 (the demo's kNN on the head)
        lr = args.lr
        groups = [{'params': [p for p in model.parameters() if p.requires_grad], 'fix_lr': False}]
    else:
        model = SimSiam(lambda num_classes: resnet18_cifar_width(num_classes, args.width), dim=2048, pred_dim=512, proj_layers=2)
        feature = lambda x: F.normalize(backbone_features(model.encoder, x), dim=1)  # noqa: E731
        lr = args.lr * args.batch_size / 256
        groups = [{'params': [p for p in model.encoder.parameters() if p.requires_grad], 'fix_lr': False},
                  {'params': list(model.predictor.parameters()), 'fix_lr': True}]
    opt = torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=args.wd)
    return model, opt, feature, lr


def train_step(args, model, opt, views):
    if args.method == 'mae':
        loss, _, _ = model(views, mask_ratio=0.75)
    elif args.method == 'moco':
        im1, im2 = views
        loss = model(im1, im2, torch.randperm(im1.shape[0]))
    else:
        p1, p2, z1, z2 = model(*views)
        loss = simsiam_loss(p1, p2, z1, z2)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


# ----------------------------------------------------------------------------- kNN

@torch.no_grad()
def knn_accuracy(model, feature, bank, test, args):
    """The MoCo demo's knn_predict: cosine similarities, top-k, weights exp(sim / T), vote per class."""
    model.eval()

    def encode(items):
        loader = torch.utils.data.DataLoader(Images(items, T.Compose([T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)]), 1),
                                             batch_size=512, shuffle=False, num_workers=args.workers)
        feats, labels = [], []
        for x, y in loader:
            feats.append(feature(x))
            labels.append(y)
        return torch.cat(feats), torch.cat(labels)

    t0 = time.perf_counter()
    bank_f, bank_y = encode(bank)
    test_f, test_y = encode(test)
    correct = 0
    for i in range(0, test_f.shape[0], 1000):
        sim = test_f[i:i + 1000] @ bank_f.t()
        w, idx = sim.topk(args.k, dim=1)
        w = (w / args.t).exp()
        one_hot = torch.zeros(idx.shape[0] * args.k, 10).scatter_(1, bank_y[idx].view(-1, 1), 1.0)
        scores = (one_hot.view(idx.shape[0], args.k, 10) * w.unsqueeze(-1)).sum(1)
        correct += (scores.argmax(1) == test_y[i:i + 1000]).sum().item()
    model.train()
    return 100.0 * correct / test_f.shape[0], time.perf_counter() - t0


@torch.no_grad()
def held_out_loss(model, test, args):
    """The mean MAE loss (mask 0.75, random masks from a fixed generator) over the test images, evaluation transform."""
    model.eval()
    loader = torch.utils.data.DataLoader(Images(test, T.Compose([T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)]), 1),
                                         batch_size=256, shuffle=False, num_workers=args.workers)
    g = torch.Generator().manual_seed(1234)
    t0, total, n = time.perf_counter(), 0.0, 0
    for x, _ in loader:
        loss, _, _ = model(x, mask_ratio=0.75, noise=torch.rand(x.shape[0], model.patch_embed.num_patches, generator=g))
        total += loss.item() * x.shape[0]
        n += x.shape[0]
    model.train()
    return total / n, time.perf_counter() - t0


def mae_lr(base_lr, warmup, epochs, e):
    """mae util/lr_sched.py adjust_learning_rate at fractional epoch e (min_lr 0)."""
    if e < warmup:
        return base_lr * e / warmup
    return base_lr * 0.5 * (1. + math.cos(math.pi * (e - warmup) / (epochs - warmup)))


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--method', choices=['moco', 'simsiam', 'mae'], required=True)
    ap.add_argument('--data', required=True, help='cifar10-jpg.tar.gz or its extracted folder')
    ap.add_argument('--epochs', type=int, default=1)
    ap.add_argument('--batch-size', type=int, default=256)
    ap.add_argument('--lr', type=float, default=None, help='MoCo: the lr (0.06); SimSiam: the base lr per 256 images (0.03); MAE: the blr (1.5e-4); the cifar preset\'s values, which bench/budget.ts passes explicitly')
    ap.add_argument('--wd', type=float, default=None, help='weight decay (MoCo, SimSiam: 5e-4; MAE: 0.05)')
    ap.add_argument('--warmup-epochs', type=float, default=10, help='MAE: linear warmup epochs of lr_sched.py')
    ap.add_argument('--save', default=None, help='MAE: write the trained weights (official names) to this .safetensors')
    ap.add_argument('--width', type=float, default=1.0)
    ap.add_argument('--bn-splits', type=int, default=8, help='MoCo: SplitBatchNorm splits (the demo: 8)')
    ap.add_argument('--K', type=int, default=4096)
    ap.add_argument('--k', type=int, default=200)
    ap.add_argument('--t', type=float, default=0.1)
    ap.add_argument('--bank-size', type=int, default=0, help='kNN bank: the first N training images (0: all)')
    ap.add_argument('--test-size', type=int, default=0, help='kNN queries: the first N test images (0: all)')
    ap.add_argument('--limit', type=int, default=0, help='train on the first N training images (0: all)')
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--threads', type=int, default=0, help='torch threads (0: the machine\'s cores)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--calibrate', type=int, default=0, help='only time this many steps on a copy of the model, print img/s')
    ap.add_argument('--no-knn', action='store_true')
    args = ap.parse_args()
    if args.lr is None:
        args.lr = {'mae': 1.5e-4, 'moco': 0.06, 'simsiam': 0.03}[args.method]
    if args.wd is None:
        args.wd = 0.05 if args.method == 'mae' else 5e-4
    for k in ('OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'):
        if k in os.environ:
            print(f'[budget_torch] warning: {k} is set and slows OpenBLAS; run with env -u {k}', file=sys.stderr)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads or os.cpu_count())

    train_items = read_split(args.data, 'train')
    test_items = read_split(args.data, 'test')
    # file order is class-sorted; the monitor's subsets (like selfsup's) are spread over the classes
    spread = lambda items, n: items if n <= 0 or n >= len(items) else [items[round(i * len(items) / n)] for i in range(n)]  # noqa: E731
    train_set = spread(train_items, args.limit)
    model, opt, feature, base_lr = build(args)
    loader = torch.utils.data.DataLoader(Images(train_set, train_transform(args.method), 1 if args.method == 'mae' else 2), batch_size=args.batch_size,
                                         shuffle=True, drop_last=True, num_workers=args.workers,
                                         persistent_workers=args.workers > 0)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise SystemExit(f'[budget_torch] {len(train_set)} images make no batch of {args.batch_size}')
    emit(event='start', method=args.method, images=len(train_set), batch=args.batch_size, steps_per_epoch=steps_per_epoch,
         epochs=args.epochs, width=args.width, lr=base_lr, threads=torch.get_num_threads(), workers=args.workers,
         torch=torch.__version__, blas=blas_in_use())

    if args.calibrate > 0:
        m2, o2, _, _ = build(args)  # a second model with the training optimizer; the real one stays untouched
        # a step's time includes waiting for its batch, as selfsup's img/s does
        times, it = [], iter(loader)
        t0 = time.perf_counter()
        for s in range(3 + args.calibrate):
            try:
                views, _ = next(it)
            except StopIteration:
                it = iter(loader)
                views, _ = next(it)
            train_step(args, m2, o2, views)
            now = time.perf_counter()
            if s >= 3:
                times.append(now - t0)
            t0 = now
        times.sort()
        emit(event='calibrate', img_per_sec=args.batch_size / times[len(times) // 2], steps=len(times), blas=blas_in_use())
        return

    bank = spread(train_items, args.bank_size)
    test = spread(test_items, args.test_size)
    if args.method == 'mae':
        args.no_knn = True  # scored by selfsup's evaluators from --save (bench/budget.ts); the held-out loss here too
        loss0, sec = held_out_loss(model, test, args)
        emit(event='test_loss', epoch=0, loss=loss0, test=len(test), sec=sec)
    if not args.no_knn:
        acc, sec = knn_accuracy(model, feature, bank, test, args)
        emit(event='knn', epoch=0, top1=acc, bank=len(bank), test=len(test), sec=sec)
    t_train, seen = 0.0, 0
    for epoch in range(args.epochs):
        lr = base_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / args.epochs))  # main_moco.py's cosine, per epoch
        for g in opt.param_groups:
            g['lr'] = base_lr if g.get('fix_lr') else lr
        t0 = time.perf_counter()
        losses = []
        for i, (views, _) in enumerate(loader):
            if args.method == 'mae':  # per iteration, as main_pretrain.py's train_one_epoch
                lr = mae_lr(base_lr, args.warmup_epochs, args.epochs, epoch + i / steps_per_epoch)
                for g in opt.param_groups:
                    g['lr'] = lr
            losses.append(train_step(args, model, opt, views))
            seen += args.batch_size
        dt = time.perf_counter() - t0
        t_train += dt
        emit(event='epoch', epoch=epoch + 1, loss=sum(losses) / len(losses), lr=lr, sec=dt, img_per_sec=len(losses) * args.batch_size / dt)
    result = {'images_seen': seen, 'train_sec': t_train}
    if args.method == 'mae':
        loss1, sec = held_out_loss(model, test, args)
        emit(event='test_loss', epoch=args.epochs, loss=loss1, test=len(test), sec=sec)
        result['test_loss'] = loss1
    if args.save:
        tmp = args.save + '.tmp'
        safetensors_io.save(model.state_dict(), tmp, {'format': 'pytorch-budget', 'method': args.method, 'epochs': str(args.epochs)})
        os.replace(tmp, args.save)  # atomic
    if not args.no_knn:
        acc, sec = knn_accuracy(model, feature, bank, test, args)
        emit(event='knn', epoch=args.epochs, top1=acc, bank=len(bank), test=len(test), sec=sec)
        result['knn_top1'] = acc
    emit(event='done', **result)


if __name__ == '__main__':
    main()
