"""ImageReward architecture (THUDM/ImageReward: ImageReward.py, models/BLIP/{blip_pretrain,vit,med}.py,
read, not copied) with its state_dict key names (blip.visual_encoder.*, blip.text_encoder.*,
blip.vision_proj, blip.text_proj, mlp.layers.{0,2,4,6,7}):

  image -> timm-style ViT: patch_embed.proj (conv with bias), cls_token, pos_embed (no pre-norm),
           pre-LN blocks (qkv with bias, proj; mlp fc1/fc2 exact GELU; LayerNorm eps 1e-6), final norm
           on all tokens -> image_embeds [B, 1 + P, Dv]
  text   -> BLIP "MED" BERT: word + position embeddings (no token types), LayerNorm (eps 1e-12); each
           layer post-LN: self-attention (padding mask (1 - m) * -10000), cross-attention to all image
           tokens (key/value Linear Dv -> H), FFN (gelu); no pooler
  reward -> (mlp(h[:, 0]) - reward_mean) / reward_std, mlp = 5 Linear layers without activations."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class _Attn(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        w = torch.softmax(q @ k.transpose(-1, -2) * (C // self.heads) ** -0.5, dim=-1)
        return self.proj((w @ v).transpose(1, 2).reshape(B, N, C))


class _Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attn(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, p, c):
        super().__init__()
        self.proj = nn.Conv2d(3, c, p, stride=p)


class VisionTransformer(nn.Module):
    def __init__(self, image_size, patch, width, depth, heads, mlp_ratio=4.0):
        super().__init__()
        n = (image_size // patch) ** 2
        self.patch_embed = _PatchEmbed(patch, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, width) * 0.02)
        self.blocks = nn.ModuleList([_Block(width, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=1e-6)

    def forward(self, x):
        B = x.shape[0]
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1) + self.pos_embed[:, : x.shape[1] + 1]
        for b in self.blocks:
            x = b(x)
        return self.norm(x)


class _SelfAttn(nn.Module):
    def __init__(self, H, kv_dim, heads):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(H, H)
        self.key = nn.Linear(kv_dim, H)
        self.value = nn.Linear(kv_dim, H)

    def forward(self, x, kv, add_mask):
        B, L, H = x.shape
        d = H // self.heads
        q = self.query(x).view(B, L, self.heads, d).transpose(1, 2)
        k = self.key(kv).view(B, -1, self.heads, d).transpose(1, 2)
        v = self.value(kv).view(B, -1, self.heads, d).transpose(1, 2)
        w = q @ k.transpose(-1, -2) / math.sqrt(d)
        if add_mask is not None:
            w = w + add_mask
        w = torch.softmax(w, dim=-1)
        return (w @ v).transpose(1, 2).reshape(B, L, H)


class _Output(nn.Module):
    def __init__(self, din, H, eps):
        super().__init__()
        self.dense = nn.Linear(din, H)
        self.LayerNorm = nn.LayerNorm(H, eps=eps)

    def forward(self, h, res):
        return self.LayerNorm(self.dense(h) + res)


class _AttnBlock(nn.Module):
    def __init__(self, H, kv_dim, heads, eps):
        super().__init__()
        self.self = _SelfAttn(H, kv_dim, heads)
        self.output = _Output(H, H, eps)

    def forward(self, x, kv, mask):
        return self.output(self.self(x, kv, mask), x)


class _Inter(nn.Module):
    def __init__(self, H, I):
        super().__init__()
        self.dense = nn.Linear(H, I)


class BertLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        H, eps, heads = cfg["hidden_size"], cfg["layer_norm_eps"], cfg["num_attention_heads"]
        self.attention = _AttnBlock(H, H, heads, eps)
        self.crossattention = _AttnBlock(H, cfg["encoder_width"], heads, eps)
        self.intermediate = _Inter(H, cfg["intermediate_size"])
        self.output = _Output(cfg["intermediate_size"], H, eps)

    def forward(self, h, mask, img):
        h = self.attention(h, h, mask)
        h = self.crossattention(h, img, None)
        return self.output(F.gelu(self.intermediate.dense(h)), h)


class _Embeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"], padding_idx=cfg["pad_token_id"])
        self.position_embeddings = nn.Embedding(cfg["max_position_embeddings"], cfg["hidden_size"])
        self.LayerNorm = nn.LayerNorm(cfg["hidden_size"], eps=cfg["layer_norm_eps"])
        self.register_buffer("position_ids", torch.arange(cfg["max_position_embeddings"])[None])  # saved, as in ImageReward.pt


class _Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(cfg) for _ in range(cfg["num_hidden_layers"])])


class BertModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embeddings = _Embeddings(cfg)
        self.encoder = _Encoder(cfg)

    def forward(self, ids, attention_mask, image_embeds):
        L = ids.shape[1]
        h = self.embeddings.word_embeddings(ids) + self.embeddings.position_embeddings.weight[None, :L]
        h = self.embeddings.LayerNorm(h)
        mask = (1.0 - attention_mask[:, None, None, :].to(h.dtype)) * -10000.0
        for layer in self.encoder.layer:
            h = layer(h, mask, image_embeds)
        return h


class _Blip(nn.Module):
    def __init__(self, cfg, med):
        super().__init__()
        v = cfg["vit"]
        self.visual_encoder = VisionTransformer(cfg["image_size"], v["patch_size"], v["width"], v["depth"], v["heads"],
                                                v["mlp_ratio"])
        self.text_encoder = BertModel(med)
        self.vision_proj = nn.Linear(v["width"], cfg["blip_embed_dim"])
        self.text_proj = nn.Linear(med["hidden_size"], cfg["blip_embed_dim"])


class _MLP(nn.Module):
    def __init__(self, dims):
        super().__init__()
        mods = []
        for i in range(len(dims) - 1):
            mods.append(nn.Linear(dims[i], dims[i + 1]))
            if i < 3:
                mods.append(nn.Dropout(0.0))
        self.layers = nn.Sequential(*mods)  # Linear at 0, 2, 4, 6, 7

    def forward(self, x):
        return self.layers(x)


class ImageReward(nn.Module):
    def __init__(self, cfg, med):
        super().__init__()
        self.cfg = cfg
        self.blip = _Blip(cfg, med)
        self.mlp = _MLP(cfg["mlp_dims"])

    def forward(self, pixels, ids, attention_mask, out=None):
        img = self.blip.visual_encoder(pixels)
        h = self.blip.text_encoder(ids, attention_mask, img)
        raw = self.mlp(h[:, 0]).squeeze(-1)
        if out is not None:
            out.update(image_embeds=img, text_last_hidden_state=h, text_cls=h[:, 0], head_raw=raw)
        return (raw - self.cfg["reward_mean"]) / self.cfg["reward_std"]


def configs(vocab_size, image_size=64, patch=8, vit_width=96, vit_depth=3, vit_heads=4, hidden=96, layers=3,
            heads=4, inter=384, mlp_dims=None, max_length=35):
    mlp_dims = mlp_dims or [hidden, 128, 64, 32, 16, 1]
    cfg = {"architecture": "ImageReward (THUDM/ImageReward ImageReward/ImageReward.py) at shapes-world dims",
           "image_size": image_size,
           "vit": {"patch_size": patch, "width": vit_width, "depth": vit_depth, "heads": vit_heads, "mlp_ratio": 4.0,
                   "qkv_bias": True, "layer_norm_eps": 1e-06, "in_chans": 3, "act": "nn.GELU (erf)",
                   "num_patches": (image_size // patch) ** 2, "pos_embed_tokens": (image_size // patch) ** 2 + 1},
           "med_config": "med_config.json", "blip_embed_dim": 64, "mlp_dims": mlp_dims,
           "mlp_layer_indices": {"Linear": [0, 2, 4, 6, 7], "Dropout": [1, 3, 5]},
           "reward_mean": 0.0, "reward_std": 1.0,
           "tokenizer": {"vocab": "vocab.txt (WordPiece trained on the shapes-world captions)", "do_lower_case": True,
                         "added_special_tokens": {"[DEC]": vocab_size - 2, "[ENC]": vocab_size - 1},
                         "padding": "max_length", "truncation": True, "max_length": max_length},
           "preprocess": {"Resize": [image_size, "BICUBIC (PIL)"], "CenterCrop": image_size, "ToTensor": "x/255",
                          "Normalize": {"mean": [0.48145466, 0.4578275, 0.40821073],
                                        "std": [0.26862954, 0.26130258, 0.27577711]}}}
    med = {"architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
           "hidden_dropout_prob": 0.1, "hidden_size": hidden, "initializer_range": 0.02, "intermediate_size": inter,
           "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
           "num_attention_heads": heads, "num_hidden_layers": layers, "pad_token_id": 0, "type_vocab_size": 2,
           "vocab_size": vocab_size, "encoder_width": vit_width, "add_cross_attention": True}
    return cfg, med
