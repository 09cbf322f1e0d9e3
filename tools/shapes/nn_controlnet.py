"""diffusers-compatible ControlNetModel (v0.27 names and config.json) for the shapes-world UNet: the
UNet's encoder half (conv_in, time_embedding, down_blocks, mid_block: the same classes and names as
nn_diffusers.UNet2DConditionModel) plus the conditioning embedding and the zero convolutions.
Semantics follow diffusers' controlnet.py (read, not copied):

  emb      = time_embedding(timestep_embedding(t))
  h        = conv_in(sample) + controlnet_cond_embedding(cond)
  skips    = [h, every resnet/attention output of the down path, every downsampler output]
  h        = mid_block(h)
  down_i   = controlnet_down_blocks.i(skips_i) * scale      (1x1 convs, zero-initialised)
  mid      = controlnet_mid_block(h) * scale                (1x1 conv, zero-initialised)

ControlNetConditioningEmbedding: silu(conv_in(cond)); for k < K-1: silu(blocks.2k(x)) (3x3, c_k -> c_k),
silu(blocks.2k+1(x)) (3x3 stride 2, c_k -> c_k+1); conv_out (3x3, c_K-1 -> block_out_channels[0],
zero-initialised). K = len(conditioning_embedding_out_channels): the image is reduced 2^(K-1) times
(3 levels: 64x64 -> 16x16, the shapes-world latent size). The UNet adds down_i to its skip
connections and mid to its mid-block output (nn_diffusers.UNet2DConditionModel.forward)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import nn_diffusers as D

# ControlNetModel's config fields (diffusers 0.27.2, as ControlNetModel.from_unet fills them)
_FROM_UNET = ("in_channels", "flip_sin_to_cos", "freq_shift", "down_block_types", "only_cross_attention",
              "block_out_channels", "layers_per_block", "downsample_padding", "mid_block_scale_factor", "act_fn",
              "norm_num_groups", "norm_eps", "cross_attention_dim", "transformer_layers_per_block",
              "encoder_hid_dim", "encoder_hid_dim_type", "attention_head_dim", "num_attention_heads",
              "use_linear_projection", "class_embed_type", "addition_embed_type", "addition_time_embed_dim",
              "num_class_embeds", "upcast_attention", "resnet_time_scale_shift",
              "projection_class_embeddings_input_dim", "addition_embed_type_num_heads")


def controlnet_config(unet_cfg, conditioning_embedding_out_channels, conditioning_channels=3):
    """config.json of ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=...)."""
    cfg = {"_class_name": "ControlNetModel", "_diffusers_version": "0.27.2"}
    for k in _FROM_UNET:
        cfg[k] = unet_cfg.get(k)
    cfg.update(conditioning_channels=conditioning_channels, controlnet_conditioning_channel_order="rgb",
               conditioning_embedding_out_channels=list(conditioning_embedding_out_channels),
               global_pool_conditions=False)
    return dict(sorted(cfg.items()))


def _zero(m):
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


class ControlNetConditioningEmbedding(nn.Module):
    def __init__(self, emb_channels, cond_channels, out_channels):
        super().__init__()
        c = list(out_channels)
        self.conv_in = nn.Conv2d(cond_channels, c[0], 3, padding=1)
        blocks = []
        for k in range(len(c) - 1):
            blocks.append(nn.Conv2d(c[k], c[k], 3, padding=1))
            blocks.append(nn.Conv2d(c[k], c[k + 1], 3, padding=1, stride=2))
        self.blocks = nn.ModuleList(blocks)
        self.conv_out = _zero(nn.Conv2d(c[-1], emb_channels, 3, padding=1))

    def forward(self, x):
        h = F.silu(self.conv_in(x))
        for b in self.blocks:
            h = F.silu(b(h))
        return self.conv_out(h)


class ControlNetModel(nn.Module):
    """The subset nn_diffusers.UNet2DConditionModel supports (CrossAttnDownBlock2D / DownBlock2D,
    UNetMidBlock2DCrossAttn, conv proj_in/out, one transformer layer, attention_head_dim = heads)."""

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
        self.time_embedding = D.TimestepEmbedding(bo[0], temb)
        self.controlnet_cond_embedding = ControlNetConditioningEmbedding(
            bo[0], cfg["conditioning_channels"], cfg["conditioning_embedding_out_channels"])
        self.down_blocks = nn.ModuleList()
        zc = [_zero(nn.Conv2d(bo[0], bo[0], 1))]  # for conv_in's output
        cout = bo[0]
        for i, typ in enumerate(cfg["down_block_types"]):
            cin, cout = cout, bo[i]
            blk = D._Block()
            blk.resnets = nn.ModuleList([D.ResnetBlock2D(cin if j == 0 else cout, cout, temb, g, eps)
                                         for j in range(nl)])
            blk.has_attn = typ == "CrossAttnDownBlock2D"
            if blk.has_attn:
                blk.attentions = nn.ModuleList([D.Transformer2DModel(cout, heads[i], ctx, g) for _ in range(nl)])
            zc += [_zero(nn.Conv2d(cout, cout, 1)) for _ in range(nl)]
            if i < L - 1:
                blk.downsamplers = nn.ModuleList([D.Downsample2D(cout, 1)])
                zc.append(_zero(nn.Conv2d(cout, cout, 1)))
            self.down_blocks.append(blk)
        self.controlnet_down_blocks = nn.ModuleList(zc)
        self.mid_block = D._Block()
        self.mid_block.resnets = nn.ModuleList([D.ResnetBlock2D(bo[-1], bo[-1], temb, g, eps) for _ in range(2)])
        self.mid_block.attentions = nn.ModuleList([D.Transformer2DModel(bo[-1], heads[-1], ctx, g)])
        self.controlnet_mid_block = _zero(nn.Conv2d(bo[-1], bo[-1], 1))

    @classmethod
    def from_unet(cls, unet, conditioning_embedding_out_channels, conditioning_channels=3):
        """diffusers ControlNetModel.from_unet(load_weights_from_unet=True): the encoder parts copy the
        UNet's weights; the conditioning embedding (except its zero conv_out) is freshly initialised."""
        cn = cls(controlnet_config(unet.cfg, conditioning_embedding_out_channels, conditioning_channels))
        usd = unet.state_dict()
        own = cn.state_dict()
        parts = ("conv_in.", "time_embedding.", "down_blocks.", "mid_block.")
        missing = [k for k in own if k.startswith(parts) and k not in usd]
        if missing:
            raise ValueError("ControlNet.from_unet: the UNet lacks %s" % missing[:3])
        cn.load_state_dict({k: (usd[k].clone() if k.startswith(parts) else v) for k, v in own.items()})
        return cn

    def embed_cond(self, cond):
        """cond [Bc, 3, 4h, 4w] in [0, 1] -> [Bc, C0, h, w] (step-independent: compute once)."""
        return self.controlnet_cond_embedding(cond)

    def forward(self, sample, timestep, encoder_hidden_states, controlnet_cond=None, conditioning_scale=1.0,
                cond_emb=None):
        """-> (down residuals list [B, C_i, h_i, w_i], mid residual [B, C_L, h_L, w_L]).
        controlnet_cond [B or 1, 3, H, W] in [0, 1], or cond_emb = embed_cond(controlnet_cond)."""
        bo = self.cfg["block_out_channels"]
        t = timestep
        if t.dim() == 0:
            t = t[None].expand(sample.shape[0])
        tp = D.timestep_embedding(t, bo[0], self.cfg["flip_sin_to_cos"], self.cfg["freq_shift"]).to(sample.dtype)
        emb = self.time_embedding(tp)
        ctx = encoder_hidden_states
        if cond_emb is None:
            cond_emb = self.embed_cond(controlnet_cond)
        h = self.conv_in(sample) + cond_emb
        skips = [h]
        for blk in self.down_blocks:
            for j, r in enumerate(blk.resnets):
                h = r(h, emb)
                if blk.has_attn:
                    h = blk.attentions[j](h, ctx)
                skips.append(h)
            if hasattr(blk, "downsamplers"):
                h = blk.downsamplers[0](h)
                skips.append(h)
        m = self.mid_block
        h = m.resnets[1](m.attentions[0](m.resnets[0](h, emb), ctx), emb)
        down = [zc(s) * conditioning_scale for zc, s in zip(self.controlnet_down_blocks, skips)]
        return down, self.controlnet_mid_block(h) * conditioning_scale


class ControlledUNet(nn.Module):
    """UNet + ControlNets as diffusers' StableDiffusionControlNetPipeline calls them (residuals of
    several ControlNets summed). forward(sample, t, ctx) -> eps, so diffusion.sample_ddim / cfg_eps
    take it in place of the UNet; the condition embeddings are set once per batch with set_cond (the
    same image for both CFG halves: a [1 or B] embedding is broadcast / repeated)."""

    def __init__(self, unet, controlnets, scales=None):
        super().__init__()
        self.unet = unet
        self.controlnets = nn.ModuleList(controlnets)
        self.scales = list(scales) if scales is not None else [1.0] * len(controlnets)
        self.cond_embs = None

    @torch.no_grad()
    def set_cond(self, conds):
        """conds: one [Bc, 3, H, W] image batch per ControlNet."""
        self.cond_embs = [cn.embed_cond(c) for cn, c in zip(self.controlnets, conds)]

    def forward(self, sample, timestep, encoder_hidden_states):
        B = sample.shape[0]
        down, mid = None, None
        for cn, e, s in zip(self.controlnets, self.cond_embs, self.scales):
            if e.shape[0] != B:  # CFG: [uncond; cond] halves share the image
                e = e.repeat(B // e.shape[0], 1, 1, 1)
            d, m = cn(sample, timestep, encoder_hidden_states, cond_emb=e, conditioning_scale=s)
            down = d if down is None else [a + b for a, b in zip(down, d)]
            mid = m if mid is None else mid + m
        return self.unet(sample, timestep, encoder_hidden_states, down_block_additional_residuals=down,
                         mid_block_additional_residual=mid)


def verify_reference(fixtures):
    """Our ControlNetModel + UNet residual path against diffusers' outputs in
    FIXTURES/controlnet-sd15-tiny (base UNet ../unet-sd15-tiny/model) -> {output: rel_l2 error}."""
    import json
    import os

    from . import st

    def load(d, cls):
        with open(os.path.join(d, "config.json")) as f:
            m = cls(json.load(f))
        m.load_state_dict(st.load(os.path.join(d, "diffusion_pytorch_model.safetensors")))
        return m.eval()
    d = os.path.join(fixtures, "controlnet-sd15-tiny")
    io = st.load(os.path.join(d, "io.safetensors"))
    cn = load(os.path.join(d, "model"), ControlNetModel)
    unet = load(os.path.join(fixtures, "unet-sd15-tiny", "model"), D.UNet2DConditionModel)
    x, t, ctx, cond = io["sample"], io["timestep"], io["encoder_hidden_states"], io["controlnet_cond"]
    res = {}

    def rel(got, name):
        e = io[name].double()
        res[name] = ((got.double() - e).norm() / e.norm()).item()
    with torch.no_grad():
        rel(unet(x, t, ctx), "noise_pred_nocontrol")
        for pre, s in (("cs1_0", 1.0), ("cs0_5", 0.5)):
            down, mid = cn(x, t, ctx, cond, conditioning_scale=s)
            for i, r in enumerate(down):
                rel(r, "%s.down_block_res_samples.%d" % (pre, i))
            rel(mid, pre + ".mid_block_res_sample")
            rel(unet(x, t, ctx, down_block_additional_residuals=down, mid_block_additional_residual=mid),
                pre + ".noise_pred")
    return res


if __name__ == "__main__":
    import os
    import sys
    fx = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared",
                                                              "fixtures")
    r = verify_reference(fx)
    worst = max(r, key=r.get)
    ok = all(v < 1e-5 for v in r.values())
    print("controlnet-sd15-tiny: %d outputs, worst rel_l2 %.2e (%s) -> %s" % (
        len(r), r[worst], worst, "PASS" if ok else "FAIL"))
    sys.exit(0 if ok else 1)
