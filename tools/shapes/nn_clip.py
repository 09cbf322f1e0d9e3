"""transformers-compatible CLIP (CLIPTextModel, CLIPVisionModelWithProjection, CLIPModel) with the
transformers 4.30 parameter names (text_model.*, vision_model.*, text_projection, visual_projection,
logit_scale). Semantics follow transformers' models/clip/modeling_clip.py (read, not copied):
pre-LN encoder layers, causal text self-attention, quick_gelu / gelu MLP, pooled text output at the
<|endoftext|> position, vision CLS token + pre_layrnorm (sic) + post_layernorm."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _act(name):
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name == "gelu":
        return F.gelu
    raise ValueError("unsupported hidden_act %r" % name)


class CLIPAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        B, L, C = x.shape
        d = C // self.heads
        q = (self.q_proj(x) * self.scale).view(B, L, self.heads, d).transpose(1, 2)
        k = self.k_proj(x).view(B, L, self.heads, d).transpose(1, 2)
        v = self.v_proj(x).view(B, L, self.heads, d).transpose(1, 2)
        w = q @ k.transpose(-1, -2)
        if mask is not None:
            w = w + mask
        w = torch.softmax(w, dim=-1)
        return self.out_proj((w @ v).transpose(1, 2).reshape(B, L, C))


class CLIPMLP(nn.Module):
    def __init__(self, dim, inter, act):
        super().__init__()
        self.act = _act(act)
        self.fc1 = nn.Linear(dim, inter)
        self.fc2 = nn.Linear(inter, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class CLIPEncoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
        self.self_attn = CLIPAttention(C, cfg["num_attention_heads"])
        self.layer_norm1 = nn.LayerNorm(C, eps=eps)
        self.mlp = CLIPMLP(C, cfg["intermediate_size"], cfg["hidden_act"])
        self.layer_norm2 = nn.LayerNorm(C, eps=eps)

    def forward(self, x, mask=None):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class CLIPEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.ModuleList([CLIPEncoderLayer(cfg) for _ in range(cfg["num_hidden_layers"])])


class CLIPTextEmbeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.token_embedding = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.position_embedding = nn.Embedding(cfg["max_position_embeddings"], cfg["hidden_size"])


class CLIPTextTransformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embeddings = CLIPTextEmbeddings(cfg)
        self.encoder = CLIPEncoder(cfg)
        self.final_layer_norm = nn.LayerNorm(cfg["hidden_size"], eps=cfg["layer_norm_eps"])

    def forward(self, ids, hidden_states=None):
        """ids [B, L] int64 -> (last_hidden_state [B, L, C], pooled [B, C]). hidden_states: optional
        list receiving the embeddings and every layer output (transformers' hidden_states tuple)."""
        B, L = ids.shape
        pos = torch.arange(L, device=ids.device)
        h = self.embeddings.token_embedding(ids) + self.embeddings.position_embedding(pos)[None]
        mask = torch.full((L, L), torch.finfo(h.dtype).min, dtype=h.dtype, device=h.device).triu(1)
        if hidden_states is not None:
            hidden_states.append(h)
        for layer in self.encoder.layers:
            h = layer(h, mask)
            if hidden_states is not None:
                hidden_states.append(h)
        last = self.final_layer_norm(h)
        eos = self.cfg["eos_token_id"]
        if eos == 2:  # legacy configs: the highest id is <|endoftext|>
            idx = ids.argmax(dim=-1)
        else:  # transformers >= 4.31: first position holding eos_token_id
            idx = (ids == eos).int().argmax(dim=-1)
        pooled = last[torch.arange(B, device=ids.device), idx]
        return last, pooled


class CLIPVisionEmbeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, p = cfg["hidden_size"], cfg["patch_size"]
        self.class_embedding = nn.Parameter(torch.randn(C))
        self.patch_embedding = nn.Conv2d(cfg["num_channels"], C, p, stride=p, bias=False)
        n = (cfg["image_size"] // p) ** 2 + 1
        self.position_embedding = nn.Embedding(n, C)

    def forward(self, pixels):
        B = pixels.shape[0]
        p = self.patch_embedding(pixels).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(B, 1, -1)
        h = torch.cat([cls, p], dim=1)
        return h + self.position_embedding.weight[None, : h.shape[1]]


class CLIPVisionTransformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
        self.embeddings = CLIPVisionEmbeddings(cfg)
        self.pre_layrnorm = nn.LayerNorm(C, eps=eps)
        self.encoder = CLIPEncoder(cfg)
        self.post_layernorm = nn.LayerNorm(C, eps=eps)

    def forward(self, pixels, hidden_states=None):
        h = self.pre_layrnorm(self.embeddings(pixels))
        if hidden_states is not None:
            hidden_states.append(h)
        for layer in self.encoder.layers:
            h = layer(h)
            if hidden_states is not None:
                hidden_states.append(h)
        return h, self.post_layernorm(h[:, 0])


class CLIPTextModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.text_model = CLIPTextTransformer(cfg)

    def forward(self, ids, hidden_states=None):
        return self.text_model(ids, hidden_states)


class CLIPModel(nn.Module):
    """text_model, vision_model, text_projection / visual_projection (no bias), logit_scale."""

    def __init__(self, text_cfg, vision_cfg, projection_dim):
        super().__init__()
        self.text_model = CLIPTextTransformer(text_cfg)
        self.vision_model = CLIPVisionTransformer(vision_cfg)
        self.text_projection = nn.Linear(text_cfg["hidden_size"], projection_dim, bias=False)
        self.visual_projection = nn.Linear(vision_cfg["hidden_size"], projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def text_embeds(self, ids):
        return self.text_projection(self.text_model(ids)[1])

    def image_embeds(self, pixels):
        return self.visual_projection(self.vision_model(pixels)[1])


# ---- configs (what transformers' save_pretrained writes) ----------------------------------------

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def text_config(vocab_size, hidden, layers, heads, inter, act, bos, eos, pad, projection_dim, max_pos=77):
    return {
        "architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": bos, "dropout": 0.0,
        "eos_token_id": eos, "hidden_act": act, "hidden_size": hidden, "initializer_factor": 1.0,
        "initializer_range": 0.02, "intermediate_size": inter, "layer_norm_eps": 1e-05,
        "max_position_embeddings": max_pos, "model_type": "clip_text_model", "num_attention_heads": heads,
        "num_hidden_layers": layers, "pad_token_id": pad, "projection_dim": projection_dim,
        "torch_dtype": "float32", "transformers_version": "4.30.2", "vocab_size": vocab_size,
    }


def vision_config(hidden, layers, heads, inter, act, image_size, patch_size, projection_dim):
    return {
        "architectures": ["CLIPVisionModelWithProjection"], "attention_dropout": 0.0, "dropout": 0.0,
        "hidden_act": act, "hidden_size": hidden, "image_size": image_size, "initializer_factor": 1.0,
        "initializer_range": 0.02, "intermediate_size": inter, "layer_norm_eps": 1e-05,
        "model_type": "clip_vision_model", "num_attention_heads": heads, "num_channels": 3,
        "num_hidden_layers": layers, "patch_size": patch_size, "projection_dim": projection_dim,
        "torch_dtype": "float32", "transformers_version": "4.30.2",
    }


def clip_model_config(tcfg, vcfg, projection_dim):
    t = {k: v for k, v in tcfg.items() if k not in ("architectures", "torch_dtype", "transformers_version")}
    v = {k: v for k, v in vcfg.items() if k not in ("architectures", "torch_dtype", "transformers_version")}
    return {"architectures": ["CLIPModel"], "initializer_factor": 1.0, "logit_scale_init_value": 2.6592,
            "model_type": "clip", "projection_dim": projection_dim, "text_config": t,
            "torch_dtype": "float32", "transformers_version": "4.30.2", "vision_config": v}


def preprocessor_config(size):
    return {"crop_size": {"height": size, "width": size}, "do_center_crop": True, "do_convert_rgb": True,
            "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": CLIP_MEAN,
            "image_processor_type": "CLIPImageProcessor", "image_std": CLIP_STD, "resample": 3,
            "rescale_factor": 1 / 255, "size": {"shortest_edge": size}}


def normalize_images(x01):
    """[B, 3, H, W] in [0,1] -> CLIP-normalised pixels."""
    m = torch.tensor(CLIP_MEAN, dtype=x01.dtype).view(1, 3, 1, 1)
    s = torch.tensor(CLIP_STD, dtype=x01.dtype).view(1, 3, 1, 1)
    return (x01 - m) / s
