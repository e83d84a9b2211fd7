# Writes test/fixtures/optim/optim.json: PyTorch 1.13 SGD / AdamW and MoCo v3 / MAE-style LARS trajectories under
# per-iteration lr schedules with two parameter groups, clip_grad_norm_ results, schedule values from the official
# formulas, and MAE's weight-decay / layer-wise lr-decay groups. Run: /usr/bin/python3 reference/make_optim_fixtures.py
import json
import math
import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "test", "fixtures", "optim")
STEPS = 4


def floats(t):
    """float32 values as exact JSON numbers (a float32 converts to a double exactly)."""
    return [float(v) for v in t.detach().reshape(-1).tolist()]


# ---------------------------------------------------------------- LARS (MoCo v3 optimizer.py / MAE util/lars.py)
class LARS(torch.optim.Optimizer):
    """SGD with momentum and a layer-wise trust ratio; parameters with ndim <= 1 get neither weight decay nor the ratio."""

    def __init__(self, params, lr=0, weight_decay=0, momentum=0.9, trust_coefficient=0.001):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, trust_coefficient=trust_coefficient))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if p.ndim > 1:
                    update = update.add(p, alpha=group["weight_decay"])
                    w_norm = torch.norm(p)
                    u_norm = torch.norm(update)
                    one = torch.ones_like(w_norm)
                    ratio = torch.where(w_norm > 0.0, torch.where(u_norm > 0, group["trust_coefficient"] * w_norm / u_norm, one), one)
                    update = update.mul(ratio)
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                state["mu"].mul_(group["momentum"]).add_(update)
                p.add_(state["mu"], alpha=-group["lr"])


# ---------------------------------------------------------------- LARC (apex.parallel.LARC, as SimSiam's main_lincls.py)
class LARC:
    """apex/parallel/LARC.py's step (apex is not installable here): rescale each gradient by the trust ratio, with the
    weight decay folded in, then the wrapped optimizer steps with weight decay 0."""

    def __init__(self, optimizer, trust_coefficient=0.02, clip=True, eps=1e-8):
        self.optim = optimizer
        self.trust_coefficient = trust_coefficient
        self.eps = eps
        self.clip = clip

    @property
    def param_groups(self):
        return self.optim.param_groups

    def zero_grad(self, set_to_none=True):
        self.optim.zero_grad(set_to_none=set_to_none)

    def step(self):
        with torch.no_grad():
            weight_decays = []
            for group in self.optim.param_groups:
                weight_decay = group['weight_decay'] if 'weight_decay' in group else 0
                weight_decays.append(weight_decay)
                group['weight_decay'] = 0
                for p in group['params']:
                    if p.grad is None:
                        continue
                    param_norm = torch.norm(p.data)
                    grad_norm = torch.norm(p.grad.data)
                    if param_norm != 0 and grad_norm != 0:
                        adaptive_lr = self.trust_coefficient * (param_norm) / (grad_norm + param_norm * weight_decay + self.eps)
                        if self.clip:
                            adaptive_lr = min(adaptive_lr / group['lr'], 1)
                        p.grad.data += weight_decay * p.data
                        p.grad.data *= adaptive_lr
        self.optim.step()
        for i, group in enumerate(self.optim.param_groups):
            group['weight_decay'] = weight_decays[i]


# ---------------------------------------------------------------- schedules (official formulas)
def warmup_cosine(epoch, lr, min_lr, warmup_epochs, epochs):
    """MAE util/lr_sched.py (MoCo v3 is the min_lr = 0 case)."""
    if epoch < warmup_epochs:
        return lr * epoch / warmup_epochs
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup_epochs) / (epochs - warmup_epochs)))


def cosine(epoch, lr, epochs):
    """SimSiam main_simsiam.py / MoCo v2 --cos."""
    return lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def step_decay(epoch, lr, milestones):
    """MoCo v1 main_moco.py without --cos."""
    for m in milestones:
        lr *= 0.1 if epoch >= m else 1.0
    return lr


def moco_momentum(epoch, m, epochs):
    """MoCo v3 main_moco.py adjust_moco_momentum."""
    return 1.0 - 0.5 * (1.0 + math.cos(math.pi * epoch / epochs)) * (1.0 - m)


def schedule_lr(s, epoch):
    if s["kind"] == "warmupCosine":
        return warmup_cosine(epoch, s["lr"], s["minLr"], s["warmupEpochs"], s["epochs"])
    if s["kind"] == "cosine":
        return cosine(epoch, s["lr"], s["epochs"])
    if s["kind"] == "step":
        return step_decay(epoch, s["lr"], s["milestones"])
    raise ValueError(s["kind"])


def apply_lr(optimizer, s, epoch):
    """MAE: lr * lr_scale where a group has lr_scale; SimSiam: fix_lr groups keep the initial lr."""
    lr = schedule_lr(s, epoch)
    for g in optimizer.param_groups:
        if g.get("fix_lr", False):
            g["lr"] = s["lr"]
        elif "lr_scale" in g:
            g["lr"] = lr * g["lr_scale"]
        else:
            g["lr"] = lr


# ---------------------------------------------------------------- optimizer trajectories
PARAM_SHAPES = [("w1", [4, 3]), ("b1", [4]), ("w0", [2, 3]), ("w2", [2, 4]), ("b2", [2])]
GROUP_A = ["w1", "b1", "w0"]
GROUP_B = ["w2", "b2"]


def make_params(gen):
    params = {}
    for name, shape in PARAM_SHAPES:
        if name == "w0":  # all zeros: LARS's zero-norm branch
            params[name] = torch.zeros(shape)
        else:
            params[name] = (torch.randn(shape, generator=gen) * 0.5).float()
    return params


def make_grads(gen):
    """One gradient per parameter per step; b2 has no gradient at step 1 (optimizers skip it)."""
    steps = []
    for s in range(STEPS):
        g = {}
        for name, shape in PARAM_SHAPES:
            if name == "b2" and s == 1:
                continue
            g[name] = torch.randn(shape, generator=gen).float()
        steps.append(g)
    return steps


RUNS = [
    # name, optimizer kind, defaults (TS names), group B extras (TS names), schedule, iterations per epoch
    ("sgd_nesterov_warmup_cosine", "sgd", {"momentum": 0.9, "nesterov": True, "weightDecay": 0.05},
     {"lrScale": 0.5, "weightDecay": 0.01}, {"kind": "warmupCosine", "lr": 0.1, "minLr": 0.001, "warmupEpochs": 1, "epochs": 3}, 2),
    ("sgd_dampening_fixed_lr_cosine", "sgd", {"momentum": 0.9, "dampening": 0.1, "weightDecay": 0.05},
     {"fixedLr": True}, {"kind": "cosine", "lr": 0.1, "epochs": 4}, 1),
    ("sgd_plain_step", "sgd", {"momentum": 0.0, "weightDecay": 0.0},
     {}, {"kind": "step", "lr": 0.1, "milestones": [1, 3]}, 1),
    ("sgd_momentum_step", "sgd", {"momentum": 0.9, "weightDecay": 1e-4},
     {"weightDecay": 0.0}, {"kind": "step", "lr": 0.1, "milestones": [1, 3]}, 1),
    ("lars_warmup_cosine", "lars", {"momentum": 0.9, "weightDecay": 0.05},
     {"lrScale": 0.5, "weightDecay": 0.01}, {"kind": "warmupCosine", "lr": 0.5, "minLr": 0.0, "warmupEpochs": 1, "epochs": 3}, 2),
    # SimSiam's linear probe: LARC(SGD, trust 0.001, clip False), wd 0, cosine; a larger trust makes the steps visible
    ("larc_simsiam_cosine", "larc", {"momentum": 0.9, "weightDecay": 0.0, "trustCoefficient": 0.05, "clip": False},
     {"lrScale": 0.5}, {"kind": "cosine", "lr": 0.5, "epochs": 4}, 1),
    ("larc_clip_decay", "larc", {"momentum": 0.9, "weightDecay": 0.01, "trustCoefficient": 0.02, "clip": True},
     {"weightDecay": 0.0}, {"kind": "cosine", "lr": 0.5, "epochs": 4}, 1),
    ("adamw_warmup_cosine", "adamw", {"betas": [0.9, 0.95], "eps": 1e-8, "weightDecay": 0.05},
     {"lrScale": 0.5, "weightDecay": 0.0}, {"kind": "warmupCosine", "lr": 0.01, "minLr": 1e-4, "warmupEpochs": 1, "epochs": 3}, 2),
    ("adamw_amsgrad_cosine", "adamw", {"betas": [0.9, 0.999], "eps": 1e-6, "weightDecay": 0.1, "amsgrad": True},
     {"fixedLr": True, "weightDecay": 0.0}, {"kind": "cosine", "lr": 0.01, "epochs": 4}, 1),
]


def torch_group_options(kind, opts):
    out = {}
    for k, v in opts.items():
        if k == "weightDecay":
            out["weight_decay"] = v
        elif k == "lrScale":
            out["lr_scale"] = v
        elif k == "fixedLr":
            out["fix_lr"] = v
        elif k == "betas":
            out["betas"] = tuple(v)
        else:
            out[k] = v
    return out


def run_trajectory(name, kind, defaults, group_b, schedule, iters_per_epoch, init, grads):
    params = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    groups = [
        {"params": [params[n] for n in GROUP_A]},
        {"params": [params[n] for n in GROUP_B], **torch_group_options(kind, group_b)},
    ]
    d = torch_group_options(kind, defaults)
    if kind == "sgd":
        opt = torch.optim.SGD(groups, lr=schedule["lr"], foreach=False, **d)
    elif kind == "adamw":
        opt = torch.optim.AdamW(groups, lr=schedule["lr"], foreach=False, **d)
    elif kind == "larc":
        larc = {k: d.pop(k) for k in ("trustCoefficient", "clip") if k in d}
        opt = LARC(torch.optim.SGD(groups, lr=schedule["lr"], foreach=False, **d),
                   trust_coefficient=larc["trustCoefficient"], clip=larc["clip"])
    else:
        opt = LARS(groups, lr=schedule["lr"], **d)
    lrs, after = [], []
    for it in range(STEPS):
        apply_lr(opt, schedule, it / iters_per_epoch)
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.zero_grad(set_to_none=True)
        for n, g in grads[it].items():
            params[n].grad = g.clone()
        opt.step()
        after.append({n: floats(p) for n, p in params.items()})
    return {
        "name": name, "optimizer": kind, "defaults": defaults, "groupB": group_b, "schedule": schedule,
        "itersPerEpoch": iters_per_epoch, "lrs": lrs, "params": after,
    }


# ---------------------------------------------------------------- gradient clipping
def clip_cases(gen):
    shapes = [[3, 4], [5], [2, 2, 2]]
    cases = []
    for max_norm, norm_type in [(1.0, 2.0), (1e3, 2.0), (0.5, math.inf), (2.0, 1.0), (0.25, 3.0)]:
        grads = [torch.randn(s, generator=gen).float() for s in shapes]
        params = [torch.zeros(s, requires_grad=True) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)
        cases.append({
            "maxNorm": max_norm, "normType": "inf" if norm_type == math.inf else norm_type, "shapes": shapes,
            "grads": [floats(g) for g in grads], "totalNorm": float(total), "clipped": [floats(p.grad) for p in params],
        })
    return cases


# ---------------------------------------------------------------- schedules at chosen epochs
def schedule_cases():
    epochs = [0.0, 0.25, 0.5, 1.0, 2.0, 4.99, 5.0, 5.5, 17.3, 50.0, 99.9, 100.0, 119.0, 120.0, 159.0, 199.5]
    specs = [
        {"kind": "warmupCosine", "lr": 1.5e-4 * 4096 / 256, "minLr": 1e-6, "warmupEpochs": 40, "epochs": 200},
        {"kind": "warmupCosine", "lr": 0.6, "minLr": 0.0, "warmupEpochs": 5, "epochs": 100},
        {"kind": "cosine", "lr": 0.05 * 512 / 256, "epochs": 100},
        {"kind": "step", "lr": 0.03, "milestones": [120, 160]},
    ]
    out = [{"schedule": s, "epochs": epochs, "lrs": [schedule_lr(s, e) for e in epochs]} for s in specs]
    momentum = {"m": 0.99, "epochs": 100, "at": epochs, "values": [moco_momentum(e, 0.99, 100) for e in epochs]}
    # group lrs through the apply rule: a plain group, an lr_scale group and a fix_lr group
    p = [torch.zeros(2, requires_grad=True) for _ in range(3)]
    opt = torch.optim.SGD([{"params": [p[0]]}, {"params": [p[1]], "lr_scale": 0.3}, {"params": [p[2]], "fix_lr": True}], lr=0.1)
    group_lrs = []
    for s in specs:
        rows = []
        for e in epochs:
            apply_lr(opt, s, e)
            rows.append([g["lr"] for g in opt.param_groups])
        group_lrs.append(rows)
    return {"cases": out, "mocoMomentum": momentum, "groupLrs": {"lrScale": 0.3, "lrs": group_lrs}}


# ---------------------------------------------------------------- MAE / timm parameter groups
VIT_NAMES = (
    [("cls_token", [1, 1, 8]), ("pos_embed", [1, 5, 8]), ("patch_embed.proj.weight", [8, 3, 2, 2]), ("patch_embed.proj.bias", [8])]
    + [(f"blocks.{i}.{n}", s) for i in range(11) for n, s in [
        ("norm1.weight", [8]), ("norm1.bias", [8]), ("attn.qkv.weight", [24, 8]), ("attn.qkv.bias", [24]),
        ("attn.proj.weight", [8, 8]), ("attn.proj.bias", [8]), ("norm2.weight", [8]), ("norm2.bias", [8]),
        ("mlp.fc1.weight", [16, 8]), ("mlp.fc1.bias", [16]), ("mlp.fc2.weight", [8, 16]), ("mlp.fc2.bias", [8])]]
    + [("fc_norm.weight", [8]), ("fc_norm.bias", [8]), ("head.weight", [10, 8]), ("head.bias", [10])]
)


def vit_layer_id(name, num_layers):
    """MAE util/lr_decay.py get_layer_id_for_vit (after BEiT)."""
    if name in ("cls_token", "pos_embed") or name.startswith("patch_embed"):
        return 0
    if name.startswith("blocks"):
        return int(name.split(".")[1]) + 1
    return num_layers


def layer_decay_groups(named, depth, weight_decay, skip, layer_decay):
    """MAE util/lr_decay.py param_groups_lrd, with parameter names in place of tensors."""
    num_layers = depth + 1
    scales = [layer_decay ** (num_layers - i) for i in range(num_layers + 1)]
    groups = {}
    for n, shape in named:
        no_decay = len(shape) == 1 or n in skip
        layer_id = vit_layer_id(n, num_layers)
        key = "layer_%d_%s" % (layer_id, "no_decay" if no_decay else "decay")
        if key not in groups:
            groups[key] = {"name": key, "lrScale": scales[layer_id], "weightDecay": 0.0 if no_decay else weight_decay, "params": []}
        groups[key]["params"].append(n)
    return list(groups.values())


def weight_decay_groups(named, weight_decay, skip):
    """timm 0.3.2 optim_factory.add_weight_decay (MAE main_pretrain.py)."""
    decay, no_decay = [], []
    for n, shape in named:
        (no_decay if len(shape) == 1 or n.endswith(".bias") or n in skip else decay).append(n)
    return [{"weightDecay": 0.0, "params": no_decay}, {"weightDecay": weight_decay, "params": decay}]


def main():
    gen = torch.Generator().manual_seed(0)
    init = make_params(gen)
    grads = make_grads(gen)
    runs = [run_trajectory(*r, init, grads) for r in RUNS]
    skip = ["pos_embed", "cls_token", "dist_token"]
    doc = {
        "magic": "selfsup-optim-fixtures",
        "version": 1,
        "torch": torch.__version__,
        "steps": STEPS,
        "paramShapes": [{"name": n, "shape": s} for n, s in PARAM_SHAPES],
        "groups": [GROUP_A, GROUP_B],
        "init": {n: floats(v) for n, v in init.items()},
        "grads": [{n: floats(g) for n, g in step.items()} for step in grads],
        "runs": runs,
        "clip": clip_cases(gen),
        "schedules": schedule_cases(),
        "paramGroups": {
            "vit": [{"name": n, "shape": s} for n, s in VIT_NAMES],
            "depth": 11,
            "skip": skip,
            "layerDecay": {"weightDecay": 0.05, "layerDecay": 0.75, "groups": layer_decay_groups(VIT_NAMES, 11, 0.05, skip, 0.75)},
            "weightDecay": {"weightDecay": 0.05, "groups": weight_decay_groups(VIT_NAMES, 0.05, skip)},
        },
    }
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, "optim.json")
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
