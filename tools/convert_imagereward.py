#!/usr/bin/python3
"""Convert the published ImageReward checkpoint to a tandem ImageReward model folder.

    /usr/bin/python3 tools/convert_imagereward.py ImageReward.pt med_config.json OUT_DIR \\
        [--vocab bert-base-uncased/vocab.txt] [--vit-heads N] [--half]

Inputs: ImageReward.pt and med_config.json from the Hugging Face repo THUDM/ImageReward (what
ImageReward's utils.load() downloads), and optionally bert-base-uncased's vocab.txt (the tokenizer file,
not part of ImageReward.pt; it is copied into OUT_DIR when given).

ImageReward.pt is opened with torch.load(weights_only=True) (PyTorch >= 1.13): the restricted unpickler
only rebuilds tensors and plain containers, so a malicious pickle fails instead of running. Tensors keep
ImageReward's state-dict names (blip.visual_encoder.*, blip.text_encoder.*, mlp.layers.*); blip.vision_proj,
blip.text_proj and the position_ids buffer are kept too (tandem recognises and ignores them); any other
key is reported and dropped. Written:
  OUT_DIR/model.safetensors  (float32, or float16 with --half)
  OUT_DIR/med_config.json    (the BertConfig as given)
  OUT_DIR/config.json        (ViT dims inferred from the tensor shapes, heads = width / 64 as BLIP's
                              ViT-B/ViT-L unless --vit-heads; head dims; reward mean/std
                              0.16717362830052426 / 1.0333394966054072; preprocessing; tokenizer)
  OUT_DIR/vocab.txt          (with --vocab)
Format of config.json: docs/ORACLES.md, "ImageReward".
"""
import json
import math
import os
import re
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_ckpt import flatten, write_safetensors  # noqa: E402  (tandem's pickle -> tensor helpers)

REWARD_MEAN = 0.16717362830052426
REWARD_STD = 1.0333394966054072
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
KEPT_PREFIXES = ("blip.visual_encoder.", "blip.text_encoder.", "blip.vision_proj.", "blip.text_proj.",
                 "mlp.layers.")
HEAD_INDICES = [0, 2, 4, 6, 7]  # ImageReward.MLP: Linear layers; 1, 3, 5 are Dropout


def infer_config(sd, med, heads):
    """config.json from the tensor shapes (BLIP create_vit: head dim 64, so heads = width / 64)."""
    def shape(name):
        if name not in sd:
            raise SystemExit(f"convert_imagereward: tensor '{name}' is missing (not an ImageReward checkpoint?)")
        return list(sd[name].shape)

    width, in_chans, patch, _ = shape("blip.visual_encoder.patch_embed.proj.weight")
    tokens = shape("blip.visual_encoder.pos_embed")[1]
    grid = int(round(math.sqrt(tokens - 1)))
    if grid * grid != tokens - 1:
        raise SystemExit(f"convert_imagereward: pos_embed has {tokens} tokens, not 1 + a square grid")
    blocks = {int(m.group(1)) for k in sd for m in [re.match(r"blip\.visual_encoder\.blocks\.(\d+)\.", k)] if m}
    depth = max(blocks) + 1 if blocks else 0
    mlp_hidden = shape("blip.visual_encoder.blocks.0.mlp.fc1.weight")[0] if depth else 4 * width
    if heads is None:
        if width % 64:
            raise SystemExit(f"convert_imagereward: ViT width {width} is not a multiple of 64: give --vit-heads")
        heads = width // 64
    if heads <= 0 or width % heads:
        raise SystemExit(f"convert_imagereward: --vit-heads {heads} does not divide the ViT width {width}")
    dims = [shape(f"mlp.layers.{HEAD_INDICES[0]}.weight")[1]]
    for i in HEAD_INDICES:
        dims.append(shape(f"mlp.layers.{i}.weight")[0])
    return {
        "architecture": "ImageReward (THUDM/ImageReward ImageReward/ImageReward.py)",
        "image_size": grid * patch,
        "vit": {"patch_size": patch, "width": width, "depth": depth, "heads": heads,
                "mlp_ratio": mlp_hidden / width, "qkv_bias": True, "layer_norm_eps": 1e-6, "in_chans": in_chans,
                "act": "nn.GELU (erf)", "num_patches": grid * grid, "pos_embed_tokens": tokens},
        "med_config": "med_config.json (BertConfig; encoder_width is overwritten with vit.width by BLIP)",
        "mlp_dims": dims,
        "mlp_layer_indices": {"Linear": HEAD_INDICES, "Dropout": [1, 3, 5]},
        "reward_mean": REWARD_MEAN,
        "reward_std": REWARD_STD,
        "tokenizer": {"vocab": "vocab.txt (bert-base-uncased)", "do_lower_case": True,
                      "added_special_tokens": {"[DEC]": 30522, "[ENC]": 30523},
                      "padding": "max_length", "truncation": True, "max_length": 35},
        "preprocess": {"Resize": [grid * patch, "BICUBIC (PIL)"], "CenterCrop": grid * patch,
                       "ToTensor": "x/255", "Normalize": {"mean": CLIP_MEAN, "std": CLIP_STD}},
    }


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    flags = [a for a in argv if a.startswith("--")]
    opts = {}
    for opt in ("--vocab", "--vit-heads"):
        if opt in argv:
            i = argv.index(opt)
            if i + 1 >= len(argv):
                print(f"convert_imagereward: {opt} needs a value", file=sys.stderr)
                return 2
            opts[opt] = argv[i + 1]
            args.remove(argv[i + 1])
    vocab = opts.get("--vocab")
    try:
        heads = int(opts["--vit-heads"]) if "--vit-heads" in opts else None
    except ValueError:
        print("convert_imagereward: --vit-heads needs an integer", file=sys.stderr)
        return 2
    if len(args) != 3 or "--help" in flags:
        print(__doc__)
        return 0 if "--help" in flags else 2
    src, med_path, out_dir = args
    try:
        import torch
    except ImportError:
        print("convert_imagereward: PyTorch is needed (Debian: apt-get install python3-torch)", file=sys.stderr)
        return 1
    try:
        ckpt = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as e:  # the restricted unpickler refuses anything but tensors and containers
        print(f"convert_imagereward: {src}: refused or unreadable: {e}", file=sys.stderr)
        return 1
    if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        ckpt = ckpt["state_dict"]
    flat = {}
    flatten("", ckpt, flat, torch)
    sd = {k: v for k, v in flat.items() if k.startswith(KEPT_PREFIXES)}
    dropped = sorted(set(flat) - set(sd))
    for k in dropped:
        print(f"convert_imagereward: dropping '{k}' (not used by ImageReward.score)", file=sys.stderr)
    with open(med_path) as f:
        med = json.load(f)
    if not isinstance(med, dict):
        print(f"convert_imagereward: {med_path}: not a JSON object", file=sys.stderr)
        return 1
    config = infer_config(sd, med, heads)
    os.makedirs(out_dir, exist_ok=True)
    try:
        size = write_safetensors(os.path.join(out_dir, "model.safetensors"), sd, torch, "--half" in flags,
                                 {"format": "pt", "converted_by": "tandem tools/convert_imagereward.py"})
    except ValueError as e:
        print(f"convert_imagereward: {e}", file=sys.stderr)
        return 1
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
        f.write("\n")
    with open(os.path.join(out_dir, "med_config.json"), "w") as f:
        json.dump(med, f, indent=1)
        f.write("\n")
    if vocab:
        shutil.copyfile(vocab, os.path.join(out_dir, "vocab.txt"))
    print(f"{out_dir}: {len(sd)} tensors, {size / 1e6:.1f} MB; ViT {config['vit']['width']}x{config['vit']['depth']} "
          f"at {config['image_size']}px, head {config['mlp_dims']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
