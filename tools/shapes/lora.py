"""LoRA (low-rank adaptation) for the shapes-world UNet without editing nn_diffusers.py: inject()
replaces the targeted nn.Linear / nn.Conv2d modules of a built UNet2DConditionModel by wrappers that
keep the frozen base module and add

    y = base(x) + enabled * (alpha / r) * up(down(x))

(kohya sd-scripts networks/lora.py, diffusers LoRACompatibleLinear / LoRACompatibleConv, PEFT): for a
Linear target down = Linear(in, r), up = Linear(r, out); for a Conv2d target down = Conv2d(in, r) with
the base conv's kernel, stride and padding and up = 1x1 Conv2d(r, out); no biases; down is initialised as
nn.Linear / nn.Conv2d do (Kaiming uniform), up with zeros, so the adapted model starts as the base.

The base weights stay where they are (the wrappers hold the original modules): disabled(model) runs the
plain base (the frozen teacher) through the same module tree, as diffusers' LCM-LoRA script runs its
teacher next to the LoRA UNet.

Files use the kohya key style of the released LCM-LoRA (latent-consistency/lcm-lora-sdv1-5):
    lora_unet_<module path, '.' -> '_'>.lora_down.weight  [r, in(, kh, kw)]
    lora_unet_<...>.lora_up.weight                         [out, r(, 1, 1)]
    lora_unet_<...>.alpha                                  0-dim
which tandem reads (docs/LORA.md; src/models/lora.c resolves the flattened paths against the UNet)."""
import contextlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import st

# diffusers train_lcm_distill_lora_sd_wds.py target modules (the released LCM-LoRA's set): attention
# projections, transformer proj_in / proj_out, feed-forward, resnet convs, time embedding projections,
# down / up sampling convs (matched as suffixes of the module path).
LCM_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1",
               "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj")


class LoRALinear(nn.Module):
    def __init__(self, base, rank, alpha):
        super().__init__()
        self.base = base
        self.rank, self.alpha = rank, float(alpha)
        self.lora_down = nn.Linear(base.in_features, rank, bias=False)
        self.lora_up = nn.Linear(rank, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_up.weight)
        self.enabled = True

    def forward(self, x):
        y = self.base(x)
        if self.enabled:
            y = y + (self.alpha / self.rank) * self.lora_up(self.lora_down(x))
        return y


class LoRAConv2d(nn.Module):
    def __init__(self, base, rank, alpha):
        super().__init__()
        self.base = base
        self.rank, self.alpha = rank, float(alpha)
        self.lora_down = nn.Conv2d(base.in_channels, rank, base.kernel_size, base.stride, base.padding, bias=False)
        self.lora_up = nn.Conv2d(rank, base.out_channels, 1, bias=False)
        nn.init.kaiming_uniform_(self.lora_down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_up.weight)
        self.enabled = True

    def forward(self, x):
        y = self.base(x)
        if self.enabled:
            y = y + (self.alpha / self.rank) * self.lora_up(self.lora_down(x))
        return y


def _is_target(path, targets):
    return any(path == t or path.endswith("." + t) for t in targets)


def inject(model, rank, alpha=None, targets=LCM_TARGETS):
    """Freezes model and wraps every Linear / Conv2d whose module path ends with one of targets.
    Returns {module path: wrapper} (paths as in the base model's state_dict, e.g.
    'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q')."""
    alpha = rank if alpha is None else alpha
    for p in model.parameters():
        p.requires_grad_(False)
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d)) and _is_target(n, targets)]
    wrappers = {}
    for path, m in found:
        parent_path, _, leaf = path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        w = LoRALinear(m, rank, alpha) if isinstance(m, nn.Linear) else LoRAConv2d(m, rank, alpha)
        if isinstance(parent, (nn.ModuleList, nn.Sequential)):
            parent[int(leaf)] = w
        else:
            setattr(parent, leaf, w)
        wrappers[path] = w
    if not wrappers:
        raise ValueError("lora: no module of the model matches the targets %s" % (targets,))
    return wrappers


def parameters(wrappers):
    return [p for w in wrappers.values() for p in (w.lora_down.weight, w.lora_up.weight)]


def n_parameters(wrappers):
    return sum(p.numel() for p in parameters(wrappers))


@contextlib.contextmanager
def disabled(wrappers):
    """Runs the base model (LoRA terms off) inside the block."""
    prev = {k: w.enabled for k, w in wrappers.items()}
    for w in wrappers.values():
        w.enabled = False
    try:
        yield
    finally:
        for k, w in wrappers.items():
            w.enabled = prev[k]


def kohya_name(path):
    return "lora_unet_" + path.replace(".", "_")


def state_dict(wrappers, dtype=torch.float32):
    """kohya keys -> tensors (down, up in dtype; alpha 0-dim in dtype, as the released LCM-LoRA)."""
    sd = {}
    for path, w in wrappers.items():
        k = kohya_name(path)
        sd[k + ".lora_down.weight"] = w.lora_down.weight.detach().to(dtype).contiguous()
        sd[k + ".lora_up.weight"] = w.lora_up.weight.detach().to(dtype).contiguous()
        sd[k + ".alpha"] = torch.tensor(w.alpha, dtype=dtype)
    return sd


def save(wrappers, path, dtype=torch.float16, metadata=None):
    st.save(state_dict(wrappers, dtype), path, metadata=metadata)


def load(wrappers, path):
    """Loads a kohya file written by save() into the wrappers (every module must be present, no extras)."""
    sd = st.load(path)
    seen = set()
    for p, w in wrappers.items():
        k = kohya_name(p)
        for suf, param in ((".lora_down.weight", w.lora_down.weight), (".lora_up.weight", w.lora_up.weight)):
            t = sd.get(k + suf)
            if t is None:
                raise KeyError("%s: no %s" % (path, k + suf))
            if tuple(t.shape) != tuple(param.shape):
                raise ValueError("%s: %s has shape %s, the model needs %s" % (path, k + suf, tuple(t.shape),
                                                                             tuple(param.shape)))
            with torch.no_grad():
                param.copy_(t.float())
            seen.add(k + suf)
        if k + ".alpha" in sd:
            w.alpha = float(sd[k + ".alpha"].float())
            seen.add(k + ".alpha")
    extra = sorted(set(sd) - seen)
    if extra:
        raise KeyError("%s: %d keys fit no module of the model, e.g. %s" % (path, len(extra), extra[0]))


@torch.no_grad()
def merged_state_dict(model, wrappers):
    """The base UNet's state_dict with W' = W + (alpha / r) up @ down merged (diffusers fuse_lora), under
    the base names (for checks against tandem's --lora-merge)."""
    sd = {}
    for name, t in model.state_dict().items():
        if ".lora_down." in name or ".lora_up." in name:
            continue
        sd[name.replace(".base.", ".")] = t.clone()
    for path, w in wrappers.items():
        W = sd[path + ".weight"]
        d = w.lora_down.weight.flatten(1)
        u = w.lora_up.weight.flatten(1)
        sd[path + ".weight"] = W + (w.alpha / w.rank) * (u @ d).reshape(W.shape)
    return sd


def _selftest():
    """A Linear and a conv wrapper against the merged weight (python -m shapes.lora)."""
    torch.manual_seed(0)
    lin = nn.Linear(6, 5)
    w = LoRALinear(lin, 3, 6.0)
    nn.init.normal_(w.lora_up.weight)
    x = torch.randn(4, 6)
    W = lin.weight + 2.0 * w.lora_up.weight @ w.lora_down.weight
    assert torch.allclose(w(x), F.linear(x, W, lin.bias), atol=1e-5)
    conv = nn.Conv2d(4, 7, 3, stride=2, padding=1)
    c = LoRAConv2d(conv, 2, 2.0)
    nn.init.normal_(c.lora_up.weight)
    x = torch.randn(2, 4, 9, 9)
    W = conv.weight + (c.lora_up.weight.flatten(1) @ c.lora_down.weight.flatten(1)).reshape(conv.weight.shape)
    assert torch.allclose(c(x), F.conv2d(x, W, conv.bias, 2, 1), atol=1e-5)
    print("lora self-test ok")


if __name__ == "__main__":
    _selftest()
