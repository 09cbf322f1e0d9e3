#!/usr/bin/python3
"""Stage 2: CLIP (text tower = the pipeline's text encoder, vision tower kept for a CLIPScore oracle)
trained contrastively on (image, caption) pairs of the train split: symmetric InfoNCE over the batch
with the learned logit_scale (clamped to 100, as CLIP). Outputs WORK/clip/out/clip (CLIPModel folder)
and WORK/clip/out/text_encoder (CLIPTextModel folder, text_model.* only).

usage (from tools/): /usr/bin/python3 -m shapes.train_clip [--minutes M] [--steps S] [--resume]"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "shapes"

from shapes import common, config as C, data, nn_clip  # noqa: E402

STAGE = "clip"


def pixels(images_uint8):
    return nn_clip.normalize_images(data.to_float(images_uint8) * 0.5 + 0.5)


@torch.no_grad()
def retrieval_top1(model, tok, images, caps, group=100):
    """text -> image top-1 within groups of `group` consecutive pairs (chance 1/group)."""
    model.eval()
    hits = n = 0
    for s in range(0, len(caps) - group + 1, group):
        ie = F.normalize(model.image_embeds(pixels(images[s:s + group])), dim=-1)
        te = F.normalize(model.text_embeds(common.ids_tensor(tok, list(caps[s:s + group]), trim=True)), dim=-1)
        hits += (te @ ie.T).argmax(1).eq(torch.arange(group)).sum().item()
        n += group
    return hits / max(n, 1)


def export(model, tcfg, vcfg, out):
    full = os.path.join(out, "clip")
    common.save_component(model, full, nn_clip.clip_model_config(tcfg, vcfg, C.PROJECTION_DIM), "model.safetensors")
    common.write_json(os.path.join(full, "preprocessor_config.json"), nn_clip.preprocessor_config(C.IMAGE_SIZE))
    te = nn_clip.CLIPTextModel(tcfg)
    te.text_model.load_state_dict(model.text_model.state_dict())
    common.save_component(te, os.path.join(out, "text_encoder"), tcfg, "model.safetensors")


def main(argv=None):
    ap = common.parser(__doc__, steps=1400, batch=128, lr=5e-4)  # the shipped CLIP: 1400 steps
    ap.add_argument("--eval-n", type=int, default=1000)
    a = ap.parse_args(argv)
    folder = common.setup(a, STAGE)
    tok = common.load_tokenizer(a.work)
    ds = data.dataset(os.path.join(a.work, "data"), "train", a.n_train, a.world_seed, log=lambda m: common.log(STAGE, m))
    tcfg = C.text_cfg(tok.vocab_size, tok.bos, tok.eos)
    vcfg = C.vision_cfg()
    model = nn_clip.CLIPModel(tcfg, vcfg, C.PROJECTION_DIM)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.1, betas=(0.9, 0.98), eps=1e-6)
    warm = min(500, a.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(warm, 1)) * 0.5 * (1 + math.cos(math.pi * min(s, a.steps) / a.steps)))
    g = np.random.default_rng(a.seed)

    def state():
        return {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "np_rng": g.bit_generator.state}

    def restore(s):
        model.load_state_dict(s["model"])
        opt.load_state_dict(s["opt"])
        sched.load_state_dict(s["sched"])
        g.bit_generator.state = s["np_rng"]

    loop = common.Loop(a, STAGE, folder, state, restore)
    n = len(ds["captions"])

    def step(i):
        model.train()
        idx = g.integers(0, n, a.batch)
        ie = F.normalize(model.image_embeds(pixels(ds["images"][idx])), dim=-1)
        te = F.normalize(model.text_embeds(common.ids_tensor(tok, list(ds["captions"][idx]), trim=True)), dim=-1)
        scale = model.logit_scale.exp().clamp(max=100)
        logits = scale * te @ ie.T
        lab = torch.arange(a.batch)
        loss = (F.cross_entropy(logits, lab) + F.cross_entropy(logits.T, lab)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        return {"loss": loss.item(), "scale": scale.item()}

    done = loop.run(step)
    out = common.out_dir(a.work, STAGE)
    export(model.eval(), tcfg, vcfg, out)
    test = data.dataset(os.path.join(a.work, "data"), "test", a.eval_n, a.world_seed + 1000)
    r = retrieval_top1(model, tok, test["images"], test["captions"])
    common.write_json(os.path.join(out, "metrics.json"), {"step": loop.step, "minutes": loop.seconds / 60,
                                                          "test_retrieval_top1_group100": r, "finished": done})
    common.log(STAGE, "test text->image top-1 (groups of 100): %.3f; -> %s" % (r, out))


if __name__ == "__main__":
    main()
