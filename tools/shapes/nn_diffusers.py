"""diffusers-compatible UNet2DConditionModel and AutoencoderKL (the subsets the shapes world uses),
with the diffusers v0.27 parameter names, so state_dict() saves as a diffusers component folder that
real loaders (and tandem) read. Semantics follow diffusers' unet_2d_condition.py, unet_2d_blocks.py,
resnet.py, attention.py, attention_processor.py, transformer_2d.py, embeddings.py and
autoencoders/vae.py (read, not copied): see the docstrings for the formulas."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------------------------------------
# shared blocks

def timestep_embedding(t, dim, flip_sin_to_cos=True, freq_shift=0, max_period=10000):
    """diffusers get_timestep_embedding: half = dim // 2,
    freq_i = exp(-ln(max_period) * i / (half - freq_shift)), emb = [sin(t f), cos(t f)]
    (flip_sin_to_cos: [cos, sin]); t is cast to float (of the module dtype)."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device)
    exponent = exponent / (half - freq_shift)
    emb = t[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


class TimestepEmbedding(nn.Module):
    """linear_1 -> silu -> linear_2."""

    def __init__(self, in_dim, dim):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    """h = conv1(silu(norm1(x))) [+ time_emb_proj(silu(temb))[:, :, None, None]];
    h = conv2(silu(norm2(h))); out = shortcut(x) + h (conv_shortcut 1x1 when widths differ)."""

    def __init__(self, cin, cout, temb, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout) if temb else None
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class Downsample2D(nn.Module):
    """conv 3x3 stride 2; padding 1 (UNet) or 0 with an explicit (0,1,0,1) zero pad (VAE)."""

    def __init__(self, c, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample2D(nn.Module):
    """nearest x2, then conv 3x3."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _attend(q, k, v, heads):
    """q [B, Lq, C], k/v [B, Lk, C] -> softmax(q k^T / sqrt(d)) v per head, [B, Lq, C]."""
    B, Lq, C = q.shape
    d = C // heads
    q = q.view(B, Lq, heads, d).transpose(1, 2)
    k = k.view(B, -1, heads, d).transpose(1, 2)
    v = v.view(B, -1, heads, d).transpose(1, 2)
    w = torch.softmax((q @ k.transpose(-1, -2)) * (d ** -0.5), dim=-1)
    return (w @ v).transpose(1, 2).reshape(B, Lq, C)


class Attention(nn.Module):
    """diffusers Attention (AttnProcessor): to_q/to_k/to_v (bias: VAE yes, UNet no), to_out.0 (bias)."""

    def __init__(self, dim, heads, ctx_dim=None, bias=False):
        super().__init__()
        ctx_dim = ctx_dim or dim
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=bias)
        self.to_k = nn.Linear(ctx_dim, dim, bias=bias)
        self.to_v = nn.Linear(ctx_dim, dim, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        return self.to_out[0](_attend(self.to_q(x), self.to_k(ctx), self.to_v(ctx), self.heads))


class GEGLU(nn.Module):
    def __init__(self, din, dout):
        super().__init__()
        self.proj = nn.Linear(din, dout * 2)

    def forward(self, x):
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class FeedForward(nn.Module):
    """net.0 = GEGLU(dim, 4 dim), net.1 dropout, net.2 = Linear(4 dim, dim)."""

    def __init__(self, dim):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, 4 * dim), nn.Dropout(0.0), nn.Linear(4 * dim, dim)])

    def forward(self, x):
        return self.net[2](self.net[0](x))


class BasicTransformerBlock(nn.Module):
    """x += attn1(norm1(x)); x += attn2(norm2(x), ctx); x += ff(norm3(x)) (LayerNorm eps 1e-5)."""

    def __init__(self, dim, heads, ctx_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, ctx_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x, ctx):
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), ctx)
        return x + self.ff(self.norm3(x))


class Transformer2DModel(nn.Module):
    """GroupNorm(eps 1e-6) -> proj_in (1x1 conv) -> [B, HW, C] -> blocks -> proj_out (1x1) -> + x."""

    def __init__(self, c, heads, ctx_dim, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.proj_in = nn.Conv2d(c, c, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(c, heads, ctx_dim)])
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x, ctx):
        B, C, H, W = x.shape
        h = self.proj_in(self.norm(x))
        h = h.permute(0, 2, 3, 1).reshape(B, H * W, C)
        for blk in self.transformer_blocks:
            h = blk(h, ctx)
        h = h.reshape(B, H, W, C).permute(0, 3, 1, 2)
        return self.proj_out(h) + x


# ---------------------------------------------------------------------------------------------
# UNet2DConditionModel

UNET_DEFAULTS = {
    "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.27.2",
    "act_fn": "silu", "addition_embed_type": None, "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": None, "attention_type": "default", "center_input_sample": False,
    "class_embed_type": None, "class_embeddings_concat": False, "conv_in_kernel": 3, "conv_out_kernel": 3,
    "cross_attention_norm": None, "downsample_padding": 1, "dropout": 0.0, "dual_cross_attention": False,
    "encoder_hid_dim": None, "encoder_hid_dim_type": None, "flip_sin_to_cos": True, "freq_shift": 0,
    "in_channels": 4, "mid_block_only_cross_attention": None, "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_eps": 1e-05, "num_attention_heads": None,
    "num_class_embeds": None, "only_cross_attention": False, "out_channels": 4,
    "projection_class_embeddings_input_dim": None, "resnet_out_scale_factor": 1.0,
    "resnet_skip_time_act": False, "resnet_time_scale_shift": "default",
    "reverse_transformer_layers_per_block": None, "time_cond_proj_dim": None,
    "time_embedding_act_fn": None, "time_embedding_dim": None, "time_embedding_type": "positional",
    "timestep_post_act": None, "transformer_layers_per_block": 1, "upcast_attention": False,
    "use_linear_projection": False,
}


def unet_config(block_out_channels, down_block_types, up_block_types, layers_per_block, cross_attention_dim,
                attention_head_dim, norm_num_groups, sample_size):
    cfg = dict(UNET_DEFAULTS)
    cfg.update(block_out_channels=list(block_out_channels), down_block_types=list(down_block_types),
               up_block_types=list(up_block_types), layers_per_block=layers_per_block,
               cross_attention_dim=cross_attention_dim, attention_head_dim=attention_head_dim,
               norm_num_groups=norm_num_groups, sample_size=sample_size)
    return dict(sorted(cfg.items()))


class _Block(nn.Module):
    pass


class UNet2DConditionModel(nn.Module):
    """Supports what the config above allows: CrossAttnDownBlock2D/DownBlock2D,
    CrossAttnUpBlock2D/UpBlock2D, UNetMidBlock2DCrossAttn, conv proj_in/out, one transformer layer,
    attention_head_dim = number of heads (diffusers' naming), int or per-block list."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        bo = cfg["block_out_channels"]
        L = len(bo)
        g, eps = cfg["norm_num_groups"], cfg["norm_eps"]
        nl = cfg["layers_per_block"]
        ctx = cfg["cross_attention_dim"]
        heads = cfg["attention_head_dim"]
        heads = heads if isinstance(heads, list) else [heads] * L
        temb = 4 * bo[0]
        self.conv_in = nn.Conv2d(cfg["in_channels"], bo[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(bo[0], temb)
        self.down_blocks = nn.ModuleList()
        cout = bo[0]
        for i, typ in enumerate(cfg["down_block_types"]):
            cin, cout = cout, bo[i]
            blk = _Block()
            blk.resnets = nn.ModuleList([ResnetBlock2D(cin if j == 0 else cout, cout, temb, g, eps) for j in range(nl)])
            blk.has_attn = typ == "CrossAttnDownBlock2D"
            if blk.has_attn:
                blk.attentions = nn.ModuleList([Transformer2DModel(cout, heads[i], ctx, g) for _ in range(nl)])
            if i < L - 1:
                blk.downsamplers = nn.ModuleList([Downsample2D(cout, 1)])
            self.down_blocks.append(blk)
        self.mid_block = _Block()
        self.mid_block.resnets = nn.ModuleList([ResnetBlock2D(bo[-1], bo[-1], temb, g, eps) for _ in range(2)])
        self.mid_block.attentions = nn.ModuleList([Transformer2DModel(bo[-1], heads[-1], ctx, g)])
        rbo = list(reversed(bo))
        rheads = list(reversed(heads))
        self.up_blocks = nn.ModuleList()
        prev = rbo[0]
        for i, typ in enumerate(cfg["up_block_types"]):
            cout = rbo[i]
            cin = rbo[min(i + 1, L - 1)]
            blk = _Block()
            res = []
            for j in range(nl + 1):
                skip = cin if j == nl else cout
                rin = prev if j == 0 else cout
                res.append(ResnetBlock2D(rin + skip, cout, temb, g, eps))
            blk.resnets = nn.ModuleList(res)
            blk.has_attn = typ == "CrossAttnUpBlock2D"
            if blk.has_attn:
                blk.attentions = nn.ModuleList([Transformer2DModel(cout, rheads[i], ctx, g) for _ in range(nl + 1)])
            if i < L - 1:
                blk.upsamplers = nn.ModuleList([Upsample2D(cout)])
            prev = cout
            self.up_blocks.append(blk)
        self.conv_norm_out = nn.GroupNorm(g, bo[0], eps=eps)
        self.conv_out = nn.Conv2d(bo[0], cfg["out_channels"], 3, padding=1)

    def forward(self, sample, timestep, encoder_hidden_states, inter=None, down_block_additional_residuals=None,
                mid_block_additional_residual=None):
        """sample [B, 4, h, w], timestep [B] (float or int), encoder_hidden_states [B, L, ctx].
        inter: optional dict that receives the debug intermediates named as in the fixtures.
        down_block_additional_residuals (one per skip connection, ControlNet) are added to the skips
        after the down path (the mid block sees the plain output), mid_block_additional_residual to the
        mid-block output (diffusers' semantics)."""
        bo = self.cfg["block_out_channels"]
        t = timestep
        if t.dim() == 0:
            t = t[None].expand(sample.shape[0])
        tp = timestep_embedding(t, bo[0], self.cfg["flip_sin_to_cos"], self.cfg["freq_shift"]).to(sample.dtype)
        emb = self.time_embedding(tp)
        ctx = encoder_hidden_states
        h = self.conv_in(sample)
        if inter is not None:
            inter["time_embedding"] = emb
            inter["conv_in"] = h
        skips = [h]
        for i, blk in enumerate(self.down_blocks):
            for j, r in enumerate(blk.resnets):
                h = r(h, emb)
                if blk.has_attn:
                    h = blk.attentions[j](h, ctx)
                skips.append(h)
            if hasattr(blk, "downsamplers"):
                h = blk.downsamplers[0](h)
                skips.append(h)
            if inter is not None:
                inter["down_blocks.%d" % i] = h
        if down_block_additional_residuals is not None:
            if len(down_block_additional_residuals) != len(skips):
                raise ValueError("UNet: %d down residuals for %d skip connections"
                                 % (len(down_block_additional_residuals), len(skips)))
            skips = [s + r for s, r in zip(skips, down_block_additional_residuals)]
        m = self.mid_block
        h = m.resnets[0](h, emb)
        h = m.attentions[0](h, ctx)
        h = m.resnets[1](h, emb)
        if mid_block_additional_residual is not None:
            h = h + mid_block_additional_residual
        if inter is not None:
            inter["mid_block"] = h
        for i, blk in enumerate(self.up_blocks):
            for j, r in enumerate(blk.resnets):
                h = r(torch.cat([h, skips.pop()], dim=1), emb)
                if blk.has_attn:
                    h = blk.attentions[j](h, ctx)
            if hasattr(blk, "upsamplers"):
                h = blk.upsamplers[0](h)
            if inter is not None:
                inter["up_blocks.%d" % i] = h
        return self.conv_out(F.silu(self.conv_norm_out(h)))


# ---------------------------------------------------------------------------------------------
# AutoencoderKL

def vae_config(block_out_channels, layers_per_block, latent_channels, norm_num_groups, sample_size,
               scaling_factor):
    n = len(block_out_channels)
    return {
        "_class_name": "AutoencoderKL", "_diffusers_version": "0.27.2", "act_fn": "silu",
        "block_out_channels": list(block_out_channels),
        "down_block_types": ["DownEncoderBlock2D"] * n, "force_upcast": True, "in_channels": 3,
        "latent_channels": latent_channels, "latents_mean": None, "latents_std": None,
        "layers_per_block": layers_per_block, "norm_num_groups": norm_num_groups, "out_channels": 3,
        "sample_size": sample_size, "scaling_factor": scaling_factor,
        "up_block_types": ["UpDecoderBlock2D"] * n,
    }


class VAEAttention(nn.Module):
    """Mid-block attention: one head of width C, group_norm (eps 1e-6), biased q/k/v/out, residual."""

    def __init__(self, c, groups):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.to_q = nn.Linear(c, c)
        self.to_k = nn.Linear(c, c)
        self.to_v = nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c), nn.Dropout(0.0)])

    def forward(self, x):
        B, C, H, W = x.shape
        h = self.group_norm(x).reshape(B, C, H * W).transpose(1, 2)
        h = self.to_out[0](_attend(self.to_q(h), self.to_k(h), self.to_v(h), 1))
        return h.transpose(1, 2).reshape(B, C, H, W) + x


class _Mid(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(c, c, None, groups, 1e-6) for _ in range(2)])
        self.attentions = nn.ModuleList([VAEAttention(c, groups)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        bo, g, nl = cfg["block_out_channels"], cfg["norm_num_groups"], cfg["layers_per_block"]
        self.conv_in = nn.Conv2d(cfg["in_channels"], bo[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        cout = bo[0]
        for i in range(len(bo)):
            cin, cout = cout, bo[i]
            blk = _Block()
            blk.resnets = nn.ModuleList([ResnetBlock2D(cin if j == 0 else cout, cout, None, g, 1e-6) for j in range(nl)])
            if i < len(bo) - 1:
                blk.downsamplers = nn.ModuleList([Downsample2D(cout, 0)])
            self.down_blocks.append(blk)
        self.mid_block = _Mid(bo[-1], g)
        self.conv_norm_out = nn.GroupNorm(g, bo[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(bo[-1], 2 * cfg["latent_channels"], 3, padding=1)

    def forward(self, x, inter=None):
        h = self.conv_in(x)
        if inter is not None:
            inter["encoder.conv_in"] = h
        for i, blk in enumerate(self.down_blocks):
            for r in blk.resnets:
                h = r(h)
            if hasattr(blk, "downsamplers"):
                h = blk.downsamplers[0](h)
            if inter is not None:
                inter["encoder.down_blocks.%d" % i] = h
        h = self.mid_block(h)
        if inter is not None:
            inter["encoder.mid_block"] = h
        h = self.conv_out(F.silu(self.conv_norm_out(h)))
        if inter is not None:
            inter["encoder.conv_out"] = h
        return h


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        bo, g, nl = cfg["block_out_channels"], cfg["norm_num_groups"], cfg["layers_per_block"]
        rbo = list(reversed(bo))
        self.conv_in = nn.Conv2d(cfg["latent_channels"], bo[-1], 3, padding=1)
        self.mid_block = _Mid(bo[-1], g)
        self.up_blocks = nn.ModuleList()
        prev = rbo[0]
        for i in range(len(bo)):
            cout = rbo[i]
            blk = _Block()
            blk.resnets = nn.ModuleList([ResnetBlock2D(prev if j == 0 else cout, cout, None, g, 1e-6)
                                         for j in range(nl + 1)])
            if i < len(bo) - 1:
                blk.upsamplers = nn.ModuleList([Upsample2D(cout)])
            prev = cout
            self.up_blocks.append(blk)
        self.conv_norm_out = nn.GroupNorm(g, bo[0], eps=1e-6)
        self.conv_out = nn.Conv2d(bo[0], cfg["out_channels"], 3, padding=1)

    def forward(self, z, inter=None):
        h = self.conv_in(z)
        if inter is not None:
            inter["decoder.conv_in"] = h
        h = self.mid_block(h)
        if inter is not None:
            inter["decoder.mid_block"] = h
        for i, blk in enumerate(self.up_blocks):
            for r in blk.resnets:
                h = r(h)
            if hasattr(blk, "upsamplers"):
                h = blk.upsamplers[0](h)
            if inter is not None:
                inter["decoder.up_blocks.%d" % i] = h
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class AutoencoderKL(nn.Module):
    """encode: moments = quant_conv(encoder(x)); mean, logvar = chunk(moments); logvar clamp(-30, 20).
    decode: decoder(post_quant_conv(z)) (z unscaled: the pipeline divides by scaling_factor first)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        L = cfg["latent_channels"]
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quant_conv = nn.Conv2d(2 * L, 2 * L, 1)
        self.post_quant_conv = nn.Conv2d(L, L, 1)

    def encode(self, x, inter=None):
        moments = self.quant_conv(self.encoder(x, inter))
        mean, logvar = moments.chunk(2, dim=1)
        return mean, torch.clamp(logvar, -30.0, 20.0), moments

    def decode(self, z, inter=None):
        z = self.post_quant_conv(z)
        if inter is not None:
            inter["post_quant_conv"] = z
        return self.decoder(z, inter)
