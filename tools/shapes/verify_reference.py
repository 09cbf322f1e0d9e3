#!/usr/bin/python3
"""Cross-check of the tools/shapes PyTorch modules against the reference libraries: loads the shared
reference fixtures (../shared/fixtures, produced by diffusers / transformers / THUDM ImageReward) into
our modules and compares their outputs with the stored reference outputs.

usage (from tools/): /usr/bin/python3 -m shapes.verify_reference [--fixtures ../../shared/fixtures]"""
import argparse
import json
import os
import sys

import torch

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "shapes"

from shapes import nn_blip, nn_clip, nn_diffusers, st  # noqa: E402


def cmp(name, got, exp):
    d = (got.double() - exp.double())
    rel = (d.norm() / exp.double().norm()).item()
    ok = rel < 1e-5
    print("%s %-40s max_abs %.2e rel_l2 %.2e" % ("PASS" if ok else "FAIL", name, d.abs().max().item(), rel))
    return ok


def load_json(p):
    with open(p) as f:
        return json.load(f)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fixtures", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures"))
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    F = a.fixtures
    ok = True
    with torch.no_grad():
        # UNet
        d = os.path.join(F, "unet-sd15-tiny")
        io = st.load(os.path.join(d, "io.safetensors"))
        u = nn_diffusers.UNet2DConditionModel(load_json(os.path.join(d, "model", "config.json")))
        u.load_state_dict(st.load(os.path.join(d, "model", "diffusion_pytorch_model.safetensors")))
        ok &= cmp("unet-sd15-tiny noise_pred", u.eval()(io["sample"], io["timestep"], io["encoder_hidden_states"]),
                  io["noise_pred"])
        # VAE
        d = os.path.join(F, "vae-sd-tiny")
        io = st.load(os.path.join(d, "io.safetensors"))
        v = nn_diffusers.AutoencoderKL(load_json(os.path.join(d, "model", "config.json"))).eval()
        v.load_state_dict(st.load(os.path.join(d, "model", "diffusion_pytorch_model.safetensors")))
        mean, logvar, _ = v.encode(io["image"])
        ok &= cmp("vae-sd-tiny mean", mean, io["mean"])
        ok &= cmp("vae-sd-tiny logvar", logvar, io["logvar"])
        ok &= cmp("vae-sd-tiny decoded", v.decode(io["latent"]), io["decoded"])
        # CLIP text
        d = os.path.join(F, "clip-text-tiny")
        io = st.load(os.path.join(d, "io.safetensors"))
        t = nn_clip.CLIPTextModel(load_json(os.path.join(d, "model", "config.json"))).eval()
        sd = st.load(os.path.join(d, "model", "model.safetensors"))
        sd.pop("text_model.embeddings.position_ids", None)
        t.load_state_dict(sd)
        last, pooled = t(io["input_ids"])
        ok &= cmp("clip-text-tiny last_hidden_state", last, io["last_hidden_state"])
        ok &= cmp("clip-text-tiny pooler_output", pooled, io["pooler_output"])
        # CLIP vision
        d = os.path.join(F, "clip-vision-tiny")
        io = st.load(os.path.join(d, "io.safetensors"))
        vc = load_json(os.path.join(d, "model", "config.json"))
        vm = nn_clip.CLIPVisionTransformer(vc).eval()
        sd = st.load(os.path.join(d, "model", "model.safetensors"))
        proj = sd.pop("visual_projection.weight")
        sd = {k[len("vision_model."):]: w for k, w in sd.items() if k.startswith("vision_model.")}
        sd.pop("embeddings.position_ids", None)
        vm.load_state_dict(sd)
        last, pooled = vm(io["pixel_values_random"])
        ok &= cmp("clip-vision-tiny last_hidden_state", last, io["last_hidden_state_random"])
        ok &= cmp("clip-vision-tiny image_embeds", pooled @ proj.T, io["image_embeds_random"])
        # ImageReward
        d = os.path.join(F, "imagereward-tiny")
        io = st.load(os.path.join(d, "io.safetensors"))
        cfg = load_json(os.path.join(d, "model", "config.json"))
        med = load_json(os.path.join(d, "model", "med_config.json"))
        m = nn_blip.ImageReward(cfg, med).eval()
        sd = st.load(os.path.join(d, "model", "model.safetensors"))
        m.load_state_dict(sd)
        px, ids, mask = io["pixel_values"], io["input_ids"], io["attention_mask"]
        P, I = ids.shape[0], px.shape[0]
        o = {}
        r = m(px.repeat(P, 1, 1, 1), ids.repeat_interleave(I, 0), mask.repeat_interleave(I, 0), o)
        ok &= cmp("imagereward-tiny image_embeds", o["image_embeds"][:I], io["image_embeds"])
        ok &= cmp("imagereward-tiny text_last_hidden_state", o["text_last_hidden_state"].reshape(io["text_last_hidden_state"].shape),
                  io["text_last_hidden_state"])
        ok &= cmp("imagereward-tiny reward", r.view(P, I), io["reward"])
    print("all PASS" if ok else "SOME FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
