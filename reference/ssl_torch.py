"""PyTorch versions of the three methods, mirroring the official builders, for fixtures and benchmarks.

MoCo follows facebookresearch/moco (moco/builder.py) and its CIFAR demo (SplitBatchNorm, symmetric loss);
SimSiam follows facebookresearch/simsiam (simsiam/builder.py); MAE follows facebookresearch/mae (models_mae.py)
with timm 0.3.2's Block (reference/timm_vit.py). Run with Debian's /usr/bin/python3 (python3-torch, python3-torchvision).
"""
import ctypes
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timm_vit import Block, PatchEmbed, get_2d_sincos_pos_embed  # noqa: E402


# ----------------------------------------------------------------------------- backbones

def blas_in_use():
    """The BLAS shared libraries this process mapped, and OpenBLAS's core name when it is OpenBLAS. Debian's torch
    calls the `libblas.so.3` the alternatives system points at; with no OpenBLAS installed, or with that name resolved
    to the netlib reference BLAS (libblas3), its matmuls are several times slower: a handicapped peer. Such a library
    (a libblas without OpenBLAS's symbols) is named with the marker 'reference BLAS'."""
    libs = set()
    with open('/proc/self/maps') as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ''
            base = os.path.basename(path)
            if 'blas' in base or 'mkl_rt' in base:
                libs.add(os.path.realpath(path))
    core, reference = None, []
    for path in sorted(libs):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if hasattr(lib, 'openblas_get_corename'):
            fn = lib.openblas_get_corename
            fn.restype = ctypes.c_char_p
            core = core or fn().decode()
        elif os.path.basename(path).startswith('libblas.so') and not hasattr(lib, 'mkl_blas_sgemm'):
            reference.append(path)
    return (', '.join(sorted(libs)) + (f' (OpenBLAS core {core})' if core else '')
            + ''.join(f' [reference BLAS: {p}]' for p in reference))


class SplitBatchNorm(nn.BatchNorm2d):
    """The MoCo CIFAR demo's BN that normalises num_splits sub-batches separately (emulating several GPUs)."""

    def __init__(self, num_features, num_splits, **kw):
        super().__init__(num_features, **kw)
        self.num_splits = num_splits

    def forward(self, input):
        N, C, H, W = input.shape
        if self.training or not self.track_running_stats:
            running_mean_split = self.running_mean.repeat(self.num_splits)
            running_var_split = self.running_var.repeat(self.num_splits)
            outcome = F.batch_norm(
                input.view(-1, C * self.num_splits, H, W), running_mean_split, running_var_split,
                self.weight.repeat(self.num_splits), self.bias.repeat(self.num_splits),
                True, self.momentum, self.eps).view(N, C, H, W)
            self.running_mean.data.copy_(running_mean_split.view(self.num_splits, C).mean(dim=0))
            self.running_var.data.copy_(running_var_split.view(self.num_splits, C).mean(dim=0))
            return outcome
        return F.batch_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                            False, self.momentum, self.eps)


def resnet18_cifar(num_classes, bn_splits=1, width=64, zero_init_residual=False):
    """torchvision resnet18 with the CIFAR stem: conv1 3x3 stride 1, no max-pool."""
    norm_layer = (lambda c: SplitBatchNorm(c, bn_splits)) if bn_splits > 1 else nn.BatchNorm2d
    net = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [2, 2, 2, 2],
                                           num_classes=num_classes, norm_layer=norm_layer,
                                           zero_init_residual=zero_init_residual)
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


# ----------------------------------------------------------------------------- MoCo

class MoCo(nn.Module):
    """moco/builder.py on one process: the key batch shuffle uses a random permutation instead of all_gather."""

    def __init__(self, base_encoder, dim=128, K=4096, m=0.99, T=0.1, mlp=False, symmetric=False):
        super().__init__()
        self.K, self.m, self.T, self.symmetric = K, m, T, symmetric
        self.encoder_q = base_encoder(num_classes=dim)
        self.encoder_k = base_encoder(num_classes=dim)
        if mlp:
            dim_mlp = self.encoder_q.fc.weight.shape[1]
            self.encoder_q.fc = nn.Sequential(nn.Linear(dim_mlp, dim_mlp), nn.ReLU(), self.encoder_q.fc)
            self.encoder_k.fc = nn.Sequential(nn.Linear(dim_mlp, dim_mlp), nn.ReLU(), self.encoder_k.fc)
        for param_q, param_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            param_k.data.copy_(param_q.data)
            param_k.requires_grad = False
        self.register_buffer('queue', F.normalize(torch.randn(dim, K), dim=0))
        self.register_buffer('queue_ptr', torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def _momentum_update_key_encoder(self):
        for param_q, param_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            param_k.data = param_k.data * self.m + param_q.data * (1. - self.m)

    @torch.no_grad()
    def _dequeue_and_enqueue(self, keys):
        batch_size = keys.shape[0]
        ptr = int(self.queue_ptr)
        assert self.K % batch_size == 0
        self.queue[:, ptr:ptr + batch_size] = keys.t()
        self.queue_ptr[0] = (ptr + batch_size) % self.K

    def contrastive_loss(self, im_q, im_k, shuffle):
        q = F.normalize(self.encoder_q(im_q), dim=1)
        with torch.no_grad():
            idx_unshuffle = torch.argsort(shuffle)
            k = F.normalize(self.encoder_k(im_k[shuffle]), dim=1)[idx_unshuffle]
        l_pos = torch.einsum('nc,nc->n', [q, k]).unsqueeze(-1)
        l_neg = torch.einsum('nc,ck->nk', [q, self.queue.clone().detach()])
        logits = torch.cat([l_pos, l_neg], dim=1) / self.T
        labels = torch.zeros(logits.shape[0], dtype=torch.long)
        return F.cross_entropy(logits, labels), k

    def forward(self, im1, im2, shuffle1, shuffle2=None):
        with torch.no_grad():
            self._momentum_update_key_encoder()
        if self.symmetric:
            loss_12, k2 = self.contrastive_loss(im1, im2, shuffle1)
            loss_21, k1 = self.contrastive_loss(im2, im1, shuffle2)
            loss = loss_12 + loss_21
            k = torch.cat([k1, k2], dim=0)
        else:
            loss, k = self.contrastive_loss(im1, im2, shuffle1)
        self._dequeue_and_enqueue(k)
        return loss


# ----------------------------------------------------------------------------- SimSiam

class SimSiam(nn.Module):
    """simsiam/builder.py: 3-layer projector (last BN without affine; 2 layers on CIFAR), 2-layer bottleneck predictor."""

    def __init__(self, base_encoder, dim=2048, pred_dim=512, proj_layers=3):
        super().__init__()
        self.encoder = base_encoder(num_classes=dim)
        prev_dim = self.encoder.fc.weight.shape[1]
        hidden = [nn.Linear(prev_dim, prev_dim, bias=False), nn.BatchNorm1d(prev_dim), nn.ReLU(inplace=True)]
        if proj_layers == 3:  # builder.py; the paper's CIFAR-10 setting (appendix D) has 2 layers
            hidden += [nn.Linear(prev_dim, prev_dim, bias=False), nn.BatchNorm1d(prev_dim), nn.ReLU(inplace=True)]
        self.encoder.fc = nn.Sequential(*hidden, self.encoder.fc, nn.BatchNorm1d(dim, affine=False))
        self.encoder.fc[len(hidden)].bias.requires_grad = False  # followed by BN: the bias does nothing
        self.predictor = nn.Sequential(
            nn.Linear(dim, pred_dim, bias=False), nn.BatchNorm1d(pred_dim), nn.ReLU(inplace=True),
            nn.Linear(pred_dim, dim))

    def forward(self, x1, x2):
        z1 = self.encoder(x1)
        z2 = self.encoder(x2)
        p1 = self.predictor(z1)
        p2 = self.predictor(z2)
        return p1, p2, z1.detach(), z2.detach()


def simsiam_loss(p1, p2, z1, z2):
    crit = nn.CosineSimilarity(dim=1)
    return -(crit(p1, z2).mean() + crit(p2, z1).mean()) * 0.5


# ----------------------------------------------------------------------------- MAE

class MaskedAutoencoderViT(nn.Module):
    """models_mae.py with the same stage names; masking noise can be passed in for reproducible fixtures."""

    def __init__(self, img_size=32, patch_size=4, in_chans=3, embed_dim=192, depth=12, num_heads=3,
                 decoder_embed_dim=128, decoder_depth=4, decoder_num_heads=4, mlp_ratio=4., norm_pix_loss=False):
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, decoder_embed_dim), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([Block(decoder_embed_dim, decoder_num_heads, mlp_ratio)
                                             for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size ** 2 * in_chans, bias=True)
        self.norm_pix_loss = norm_pix_loss
        self.initialize_weights()

    def initialize_weights(self):
        g = int(self.patch_embed.num_patches ** .5)
        self.pos_embed.data.copy_(torch.from_numpy(
            get_2d_sincos_pos_embed(self.pos_embed.shape[-1], g, cls_token=True)).float().unsqueeze(0))
        self.decoder_pos_embed.data.copy_(torch.from_numpy(
            get_2d_sincos_pos_embed(self.decoder_pos_embed.shape[-1], g, cls_token=True)).float().unsqueeze(0))
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
        nn.init.normal_(self.cls_token, std=.02)
        nn.init.normal_(self.mask_token, std=.02)
        self.apply(self._init_weights)

    def _init_weights(self, m):
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    def patchify(self, imgs):
        p = self.patch_embed.patch_size[0]
        h = w = imgs.shape[2] // p
        x = imgs.reshape(imgs.shape[0], 3, h, p, w, p)
        x = torch.einsum('nchpwq->nhwpqc', x)
        return x.reshape(imgs.shape[0], h * w, p ** 2 * 3)

    def random_masking(self, x, mask_ratio, noise):
        N, L, D = x.shape
        len_keep = int(L * (1 - mask_ratio))
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        x_masked = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, D))
        mask = torch.ones([N, L], device=x.device)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, dim=1, index=ids_restore)
        return x_masked, mask, ids_restore

    def forward_encoder(self, x, mask_ratio, noise):
        x = self.patch_embed(x)
        x = x + self.pos_embed[:, 1:, :]
        x, mask, ids_restore = self.random_masking(x, mask_ratio, noise)
        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat((cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, x, ids_restore):
        x = self.decoder_embed(x)
        mask_tokens = self.mask_token.repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
        x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        x = torch.cat([x[:, :1, :], x_], dim=1)
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        return self.decoder_pred(x)[:, 1:, :]

    def forward_loss(self, imgs, pred, mask):
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.e-6) ** .5
        loss = ((pred - target) ** 2).mean(dim=-1)
        return (loss * mask).sum() / mask.sum()

    def forward(self, imgs, mask_ratio=0.75, noise=None):
        if noise is None:
            noise = torch.rand(imgs.shape[0], self.patch_embed.num_patches)
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)
        loss = self.forward_loss(imgs, pred, mask)
        return loss, pred, mask


# ----------------------------------------------------------------------------- MoCo v3

class VisionTransformerMoCo(nn.Module):
    """moco-v3 vits.py on timm's ViT (cls token, final norm, head), with its fixed sin-cos table and init."""

    def __init__(self, img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0,
                 num_classes=1000, stop_grad_conv1=False):
        super().__init__()
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(img_size, patch_size, 3, embed_dim)
        self.grid = img_size // patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes)
        self.build_2d_sincos_position_embedding()
        # vits.py's weight initialization
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                if 'qkv' in name:
                    val = math.sqrt(6. / float(m.weight.shape[0] // 3 + m.weight.shape[1]))
                    nn.init.uniform_(m.weight, -val, val)
                else:
                    nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.cls_token, std=1e-6)
        val = math.sqrt(6. / float(3 * patch_size * patch_size + self.embed_dim))
        nn.init.uniform_(self.patch_embed.proj.weight, -val, val)
        nn.init.zeros_(self.patch_embed.proj.bias)
        if stop_grad_conv1:
            self.patch_embed.proj.weight.requires_grad = False
            self.patch_embed.proj.bias.requires_grad = False

    def build_2d_sincos_position_embedding(self, temperature=10000.):
        h, w = self.grid, self.grid
        grid_w = torch.arange(w, dtype=torch.float32)
        grid_h = torch.arange(h, dtype=torch.float32)
        grid_w, grid_h = torch.meshgrid(grid_w, grid_h, indexing='ij')
        pos_dim = self.embed_dim // 4
        omega = torch.arange(pos_dim, dtype=torch.float32) / pos_dim
        omega = 1. / (temperature**omega)
        out_w = torch.einsum('m,d->md', [grid_w.flatten(), omega])
        out_h = torch.einsum('m,d->md', [grid_h.flatten(), omega])
        pos_emb = torch.cat([torch.sin(out_w), torch.cos(out_w), torch.sin(out_h), torch.cos(out_h)], dim=1)[None, :, :]
        pe_token = torch.zeros([1, 1, self.embed_dim], dtype=torch.float32)
        self.pos_embed = nn.Parameter(torch.cat([pe_token, pos_emb], dim=1))
        self.pos_embed.requires_grad = False

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


class MoCoV3(nn.Module):
    """moco-v3 moco/builder.py (MoCo, MoCo_ResNet, MoCo_ViT) on one process: concat_all_gather is the identity."""

    def __init__(self, base_encoder, dim=256, mlp_dim=4096, T=1.0, vit=False):
        super().__init__()
        self.T = T
        self.base_encoder = base_encoder(num_classes=mlp_dim)
        self.momentum_encoder = base_encoder(num_classes=mlp_dim)
        if vit:
            hidden_dim = self.base_encoder.head.weight.shape[1]
            del self.base_encoder.head, self.momentum_encoder.head
            self.base_encoder.head = self._build_mlp(3, hidden_dim, mlp_dim, dim)
            self.momentum_encoder.head = self._build_mlp(3, hidden_dim, mlp_dim, dim)
            self.predictor = self._build_mlp(2, dim, mlp_dim, dim)
        else:
            hidden_dim = self.base_encoder.fc.weight.shape[1]
            del self.base_encoder.fc, self.momentum_encoder.fc
            self.base_encoder.fc = self._build_mlp(2, hidden_dim, mlp_dim, dim)
            self.momentum_encoder.fc = self._build_mlp(2, hidden_dim, mlp_dim, dim)
            self.predictor = self._build_mlp(2, dim, mlp_dim, dim, False)
        for param_b, param_m in zip(self.base_encoder.parameters(), self.momentum_encoder.parameters()):
            param_m.data.copy_(param_b.data)
            param_m.requires_grad = False

    def _build_mlp(self, num_layers, input_dim, mlp_dim, output_dim, last_bn=True):
        mlp = []
        for l in range(num_layers):
            dim1 = input_dim if l == 0 else mlp_dim
            dim2 = output_dim if l == num_layers - 1 else mlp_dim
            mlp.append(nn.Linear(dim1, dim2, bias=False))
            if l < num_layers - 1:
                mlp.append(nn.BatchNorm1d(dim2))
                mlp.append(nn.ReLU(inplace=True))
            elif last_bn:
                mlp.append(nn.BatchNorm1d(dim2, affine=False))
        return nn.Sequential(*mlp)

    @torch.no_grad()
    def _update_momentum_encoder(self, m):
        for param_b, param_m in zip(self.base_encoder.parameters(), self.momentum_encoder.parameters()):
            param_m.data = param_m.data * m + param_b.data * (1. - m)

    def contrastive_loss(self, q, k):
        q = nn.functional.normalize(q, dim=1)
        k = nn.functional.normalize(k, dim=1)
        logits = torch.einsum('nc,mc->nm', [q, k]) / self.T
        N = logits.shape[0]
        labels = torch.arange(N, dtype=torch.long)
        return nn.CrossEntropyLoss()(logits, labels) * (2 * self.T)

    def forward(self, x1, x2, m):
        q1 = self.predictor(self.base_encoder(x1))
        q2 = self.predictor(self.base_encoder(x2))
        with torch.no_grad():
            self._update_momentum_encoder(m)
            k1 = self.momentum_encoder(x1)
            k2 = self.momentum_encoder(x2)
        return self.contrastive_loss(q1, k2) + self.contrastive_loss(q2, k1)


def adjust_moco_momentum(epoch, moco_m, epochs):
    """moco-v3 main_moco.py: the momentum rises from moco_m to 1 by a half cosine."""
    return 1. - 0.5 * (1. + math.cos(math.pi * epoch / epochs)) * (1. - moco_m)
