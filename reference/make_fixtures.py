# Writes the PyTorch-parity fixtures in test/fixtures/parity/ (safetensors files with a magic/version header).
# Run: /usr/bin/python3 reference/make_fixtures.py   (PyTorch 1.13 + torchvision 0.14; no downloads, timm not needed)
#
# Each case holds, all as named tensors:
#   input.<name>             inputs (float inputs are differentiated)
#   state.<name>             the module's full state dict before the forward (weights and buffers)
#   output                   the forward output
#   cotangent                a fixed random tensor; the scalar differentiated is (output * cotangent).sum()
#   grad.input.<name>        the gradient of every float input
#   grad.param.<name>        the gradient of every parameter
#   state_after.<name>       buffers after the forward (batch-norm running statistics in training mode)
# Weights and inputs are drawn in float32 (so storing them as float32 is exact); the computation runs in float64 and
# outputs and gradients are stored as float32 (rounding ~6e-8 relative, far under the tests' 1e-4).
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
from timm_vit import Block, PatchEmbed, get_2d_sincos_pos_embed  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "test", "fixtures", "parity")
MAGIC = "selfsup-parity"
VERSION = "1"


# ------------------------------------------------------------------ torchvision ResNet with a width multiplier

class WideResNet(ResNet):
    """torchvision's ResNet (its _make_layer, BasicBlock, Bottleneck and naming) with stage widths scaled by `width`.
    width=1 gives exactly torchvision.models.resnet18/34/50 (checked in names())."""

    def __init__(self, block, layers, num_classes=1000, width=1.0, cifar_stem=False, zero_init_residual=False):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        w = [int(round(c * width)) for c in (64, 128, 256, 512)]
        self.inplanes = w[0]
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        if cifar_stem:  # SimSiam/MoCo CIFAR recipes: 3x3 stride-1 conv1 and no max-pool
            self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if cifar_stem else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, w[0], layers[0])
        self.layer2 = self._make_layer(block, w[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, w[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, w[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(w[3] * block.expansion, num_classes)


# ------------------------------------------------------------------ MAE models_vit

class VisionTransformer(nn.Module):
    """MAE's models_vit.VisionTransformer (timm's with global_pool: fc_norm replaces norm)."""

    def __init__(self, img_size, patch_size, embed_dim, depth, num_heads, num_classes, global_pool=False, mlp_ratio=4.0):
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, 3, embed_dim)
        n = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, embed_dim))
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.global_pool = global_pool
        if global_pool:
            self.fc_norm = nn.LayerNorm(embed_dim, eps=1e-6)
        else:
            self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x):
        B = x.shape[0]
        x = self.patch_embed(x)  # [B, L, D]
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)  # [B, L+1, D]
        x = x + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        if self.global_pool:
            outcome = self.fc_norm(x[:, 1:, :].mean(dim=1))  # [B, D]
        else:
            outcome = self.norm(x)[:, 0]  # [B, D]
        return self.head(outcome)


# ------------------------------------------------------------------ helpers

def randomize_norms(model, gen):
    """Non-trivial affine and running statistics, so the tests see every term."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.LayerNorm)) and m.weight is not None:
            with torch.no_grad():
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            with torch.no_grad():
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(1 + 0.5 * torch.rand(m.running_var.shape, generator=gen))


def f32(t):
    return t.detach().to(torch.float32)


def run_case(name, model, inputs, forward, meta, cotangent=True, gen=None, train=True):
    """model: float32-initialised module; inputs: dict of float32/int64 tensors; forward(model, **inputs) -> tensor."""
    model.train(train)
    out = {}
    for k, v in model.state_dict().items():
        out["state." + k] = v.clone()
    model = model.double()
    ins = {}
    for k, v in inputs.items():
        out["input." + k] = v
        ins[k] = v.double().requires_grad_(True) if v.is_floating_point() else v
    y = forward(model, **ins)
    if cotangent:
        cot = torch.randn(y.shape, generator=gen, dtype=torch.float32)
        out["cotangent"] = cot
        loss = (y * cot.double()).sum()
    else:
        loss = y
    loss.backward()
    out["output"] = f32(y)
    for k, v in ins.items():
        if v.is_floating_point():
            out["grad.input." + k] = f32(v.grad)
    for k, p in model.named_parameters():
        if p.requires_grad:
            out["grad.param." + k] = f32(p.grad)
    for k, b in model.named_buffers():
        out["state_after." + k] = b.to(torch.float32) if b.is_floating_point() else b
    # weights were float32; keep them so (state.* is exact), converting int64 counters to int64 as PyTorch stores them
    out = {k: (v.to(torch.float32) if v.is_floating_point() and not k.startswith("state") else v) for k, v in out.items()}
    path = os.path.join(OUT_DIR, name + ".safetensors")
    safetensors_io.save(out, path, {"magic": MAGIC, "version": VERSION, "case": name, "torch": torch.__version__,
                                    "config": json.dumps(meta)})
    print(f"wrote {os.path.relpath(path, ROOT)}: {len(out)} tensors, {os.path.getsize(path) / 1024:.0f} KiB")


def names():
    """State-dict names and shapes of full-size backbones, so tests can check naming without weights."""
    res = {}
    for arch, block, layers in (("resnet18", BasicBlock, [2, 2, 2, 2]), ("resnet34", BasicBlock, [3, 4, 6, 3]),
                                ("resnet50", Bottleneck, [3, 4, 6, 3])):
        tv = getattr(torchvision.models, arch)()
        ours = WideResNet(block, layers)
        a = {k: list(v.shape) for k, v in tv.state_dict().items()}
        b = {k: list(v.shape) for k, v in ours.state_dict().items()}
        assert a == b, f"WideResNet(width=1) must match torchvision {arch}"
        res[arch] = a
        res[arch + "_cifar"] = {k: list(v.shape) for k, v in WideResNet(block, layers, cifar_stem=True).state_dict().items()}
    res["vit_tiny_patch4_32_cls"] = {k: list(v.shape) for k, v in
                                     VisionTransformer(32, 4, 192, 12, 3, 10).state_dict().items()}
    res["vit_small_patch16_224_gap"] = {k: list(v.shape) for k, v in
                                        VisionTransformer(224, 16, 384, 12, 6, 1000, global_pool=True).state_dict().items()}
    path = os.path.join(OUT_DIR, "names.json")
    with open(path, "w") as f:
        json.dump({"magic": MAGIC, "version": VERSION, "models": res}, f, indent=0, sort_keys=True)
    print(f"wrote {os.path.relpath(path, ROOT)}")


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)

    # (a) conv-bn-relu, training-mode batch norm (stride 2, padding 1, no conv bias as in ResNets)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
    randomize_norms(m, gen)
    run_case("conv_bn_relu", m, {"x": torch.randn(4, 3, 9, 9, generator=gen)}, lambda mod, x: mod(x),
             {"in": 3, "out": 8, "kernel": 3, "stride": 2, "padding": 1}, gen=gen)

    # (b) a timm transformer block (pre-norm, qkv attention, GELU MLP, LayerNorm eps 1e-6)
    m = Block(24, 3)
    randomize_norms(m, gen)
    run_case("vit_block", m, {"x": torch.randn(2, 7, 24, generator=gen)}, lambda mod, x: mod(x),
             {"dim": 24, "heads": 3, "mlp_ratio": 4.0, "eps": 1e-6}, gen=gen)

    # (c) cross-entropy with label smoothing over logits (mean reduction); the output is the loss itself
    logits = torch.randn(6, 10, generator=gen) * 3
    labels = torch.randint(0, 10, (6,), generator=gen)
    run_case("cross_entropy", nn.Identity(), {"logits": logits, "labels": labels},
             lambda mod, logits, labels: F.cross_entropy(mod(logits), labels, label_smoothing=0.1),
             {"label_smoothing": 0.1}, cotangent=False, gen=gen)

    # (d) torchvision ResNet-18 with the CIFAR stem at width 1/8, training-mode BN
    m = WideResNet(BasicBlock, [2, 2, 2, 2], num_classes=10, width=0.125, cifar_stem=True)
    randomize_norms(m, gen)
    run_case("resnet18_cifar_w0.125", m, {"x": torch.randn(4, 3, 16, 16, generator=gen)}, lambda mod, x: mod(x),
             {"width": 0.125, "num_classes": 10, "stem": "cifar", "img": 16}, gen=gen)

    # (d') the ImageNet stem (7x7/2 conv + 3x3/2 max-pool), eval-mode BN, at width 1/16 on 32x32
    m = WideResNet(BasicBlock, [2, 2, 2, 2], num_classes=5, width=0.0625)
    randomize_norms(m, gen)
    run_case("resnet18_imagenet_w0.0625_eval", m, {"x": torch.randn(2, 3, 32, 32, generator=gen)},
             lambda mod, x: mod(x), {"width": 0.0625, "num_classes": 5, "stem": "imagenet", "img": 32}, gen=gen,
             train=False)

    # (d'') Bottleneck blocks (ResNet-50 layout) at width 1/16, CIFAR stem. 16x16 inputs leave 2x2 maps in layer4, so
    # training-mode BN sees 8 values per channel: with fewer the float32 comparison is ill-conditioned
    m = WideResNet(Bottleneck, [3, 4, 6, 3], num_classes=4, width=0.0625, cifar_stem=True)
    randomize_norms(m, gen)
    # the input is shifted (after the draw, so later cases keep their values) to keep every ReLU input of this deep
    # net far from zero relative to float32 rounding; with the plain draw one ReLU input sat at 6e-6 and its sign
    # flipped in float32, which moved whole BN channels of the gradient
    run_case("resnet50_cifar_w0.0625", m, {"x": torch.randn(2, 3, 16, 16, generator=gen) + 0.3}, lambda mod, x: mod(x),
             {"width": 0.0625, "num_classes": 4, "stem": "cifar", "img": 16}, gen=gen)

    # (e) MAE-style ViT encoder: patch 4 on 32x32, dim 48, 3 heads, depth 2; cls-token head and global-pool head
    for pool in ("cls", "gap"):
        m = VisionTransformer(32, 4, 48, 2, 3, 10, global_pool=(pool == "gap"))
        with torch.no_grad():
            m.cls_token.copy_(0.02 * torch.randn(m.cls_token.shape, generator=gen))
            pe = get_2d_sincos_pos_embed(48, 8, cls_token=True)
            m.pos_embed.copy_(torch.from_numpy(pe).float().unsqueeze(0))
        randomize_norms(m, gen)
        run_case(f"vit_d48_depth2_patch4_{pool}", m, {"x": torch.randn(2, 3, 32, 32, generator=gen)},
                 lambda mod, x: mod(x), {"img": 32, "patch": 4, "dim": 48, "depth": 2, "heads": 3, "num_classes": 10,
                                         "global_pool": pool == "gap"}, gen=gen)

    # MAE's fixed 2-D sine-cosine position embeddings (float64, with the cls row of zeros)
    pe = {"pos_embed.d48.g8": torch.from_numpy(get_2d_sincos_pos_embed(48, 8, cls_token=True)),
          "pos_embed.d192.g8": torch.from_numpy(get_2d_sincos_pos_embed(192, 8, cls_token=True)),
          "pos_embed.d64.g4.nocls": torch.from_numpy(get_2d_sincos_pos_embed(64, 4, cls_token=False))}
    path = os.path.join(OUT_DIR, "pos_embed.safetensors")
    safetensors_io.save(pe, path, {"magic": MAGIC, "version": VERSION, "case": "pos_embed"})
    print(f"wrote {os.path.relpath(path, ROOT)}")

    names()


if __name__ == "__main__":
    main()
