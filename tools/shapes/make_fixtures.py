#!/usr/bin/python3
"""Wiring fixtures: random-weight models with the shapes-world block structure (reduced widths),
run by the tools/shapes PyTorch modules in float32 and float64, exported in the shared fixture
format so `build/tandem check --fixture tests/fixtures/shapes-<component>` compares the C engine with
exactly the modules the training uses.

usage: /usr/bin/python3 -m shapes.make_fixtures [--out tests/fixtures] [--only unet,vae,text,clip,oracle,controlnet]
(run from tools/)."""
import argparse
import os
import sys

import torch

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "shapes"

from shapes import config as C  # noqa: E402
from shapes import fixtures as FX  # noqa: E402
from shapes import nn_clip, nn_controlnet, nn_diffusers  # noqa: E402


def unet_fixture(out, seed=4101):
    ctx_dim = 32
    cfg = C.unet_cfg(ctx_dim, C.TINY_UNET)
    torch.manual_seed(seed)
    m = nn_diffusers.UNet2DConditionModel(cfg)
    FX.perturb_(m, seed + 1)
    g = torch.Generator().manual_seed(seed + 100)
    inputs = {
        "sample": torch.randn(2, 4, C.LATENT_SIZE, C.LATENT_SIZE, generator=g, dtype=torch.float64).float(),
        "timestep": torch.tensor([981.0, 181.0]),
        "encoder_hidden_states": torch.randn(2, 77, ctx_dim, generator=g, dtype=torch.float64).float(),
    }

    def run(mod, x):
        inter = {}
        y = mod(x["sample"], x["timestep"], x["encoder_hidden_states"], inter)
        o = {"noise_pred": y}
        o.update({"inter." + k: v for k, v in inter.items()})
        return o

    outs, fp = FX.run_both(m, run, inputs)
    # float16 copy of the weights, upcast, run in float32
    m16 = nn_diffusers.UNet2DConditionModel(cfg)
    m16.load_state_dict({k: v.half().float() for k, v in m.float().state_dict().items()})
    with torch.no_grad():
        outs["noise_pred_f16w"] = m16.eval()(inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"])
    d = (outs["noise_pred_f16w"] - outs["noise_pred"])
    os.makedirs(os.path.join(out, "model"), exist_ok=True)
    os.makedirs(os.path.join(out, "model-f16"), exist_ok=True)
    FX.write_json(os.path.join(out, "model", "config.json"), cfg)
    FX.write_json(os.path.join(out, "model-f16", "config.json"), cfg)
    FX.save_state(m, os.path.join(out, "model", "diffusion_pytorch_model.safetensors"))
    FX.save_state(m, os.path.join(out, "model-f16", "diffusion_pytorch_model.safetensors"), torch.float16)
    FX.write_case(out, "unet2d_condition", cfg, seed, inputs, outs,
                  {"sample": "latent x_t (NCHW)", "timestep": "timesteps (float32 holding integers)",
                   "encoder_hidden_states": "text states (B, 77, cross_attention_dim)"},
                  {"noise_pred": "UNet output (epsilon prediction)", "inter": "intermediate (debug aid)",
                   "noise_pred_f16w": "UNet output with the model-f16 weights upcast to f32"},
                  fp,
                  "shapes-world teacher/student UNet structure (3 levels: CrossAttnDownBlock2D x2 + DownBlock2D, "
                  "UNetMidBlock2DCrossAttn, UpBlock2D + CrossAttnUpBlock2D x2, layers_per_block 1, "
                  "attention_head_dim 4 = number of heads) at reduced widths; random weights (torch.manual_seed(seed) "
                  "default init, 1-D params += N(0,0.1)). noise_pred_f16w vs noise_pred: max_abs %.3g, rel_l2 %.3g."
                  % (d.abs().max().item(), (d.norm() / outs["noise_pred"].norm()).item()))


def vae_fixture(out, seed=4201):
    cfg = C.vae_cfg(C.TINY_VAE, scaling_factor=1.0)
    torch.manual_seed(seed)
    m = nn_diffusers.AutoencoderKL(cfg)
    FX.perturb_(m, seed + 1)
    g = torch.Generator().manual_seed(seed + 100)
    inputs = {
        "image": (torch.rand(1, 3, C.IMAGE_SIZE, C.IMAGE_SIZE, generator=g, dtype=torch.float64) * 2 - 1).float(),
        "latent": torch.randn(1, 4, C.LATENT_SIZE, C.LATENT_SIZE, generator=g, dtype=torch.float64).float(),
    }

    def run(mod, x):
        inter = {}
        mean, logvar, moments = mod.encode(x["image"], inter)
        dec = mod.decode(x["latent"], inter)
        o = {"mean": mean, "logvar": logvar, "moments": moments, "decoded": dec}
        o.update({"inter." + k: v for k, v in inter.items()})
        return o

    outs, fp = FX.run_both(m, run, inputs)
    os.makedirs(os.path.join(out, "model"), exist_ok=True)
    FX.write_json(os.path.join(out, "model", "config.json"), cfg)
    FX.save_state(m, os.path.join(out, "model", "diffusion_pytorch_model.safetensors"))
    FX.write_case(out, "autoencoder_kl", cfg, seed, inputs, outs,
                  {"image": "image in [-1,1], NCHW", "latent": "latent for the decoder test (N(0,1))"},
                  {"mean": "latent_dist.mean", "logvar": "latent_dist.logvar = clamp(moments[:, 4:], -30, 20)",
                   "moments": "quant_conv output", "decoded": "decode(latent): post_quant_conv -> decoder (RAW, "
                   "no scaling_factor)", "inter": "intermediate (debug aid)"},
                  fp,
                  "shapes-world VAE structure (3 levels DownEncoderBlock2D/UpDecoderBlock2D -> 4x downsampling, "
                  "layers_per_block 1 (decoder 2 resnets per level), single-head mid attention, latent_channels 4) "
                  "at reduced widths; random weights (default init, 1-D params += N(0,0.1)).")


def text_fixture(out, seed=4301, with_vision=False, vocab_size=600):
    bos, eos = vocab_size - 2, vocab_size - 1
    tcfg = C.text_cfg(vocab_size, bos, eos, C.TINY_TEXT, projection_dim=24)
    torch.manual_seed(seed)
    if with_vision:
        vcfg = C.vision_cfg(C.TINY_VISION, projection_dim=24)
        m = nn_clip.CLIPModel(tcfg, vcfg, 24)
        cfg = nn_clip.clip_model_config(tcfg, vcfg, 24)
    else:
        m = nn_clip.CLIPTextModel(tcfg)
        cfg = tcfg
    FX.perturb_(m, seed + 1, 0.05)
    g = torch.Generator().manual_seed(seed + 100)
    ids = torch.full((3, 77), eos, dtype=torch.int64)
    for b, n in enumerate([5, 12, 20]):
        ids[b, 0] = bos
        ids[b, 1:1 + n] = torch.randint(0, vocab_size - 2, (n,), generator=g)
        ids[b, 1 + n] = eos
    inputs = {"input_ids": ids}

    def run(mod, x):
        tm = mod.text_model
        hs = []
        last, pooled = tm(x["input_ids"], hs)
        o = {"last_hidden_state": last, "pooler_output": pooled}
        for i, h in enumerate(hs):
            o["hidden_states_%d" % i] = h
        o["penultimate_final_ln"] = tm.final_layer_norm(hs[-2])
        if with_vision:
            o["text_embeds"] = mod.text_projection(pooled)
        return o

    outs, fp = FX.run_both(m, run, inputs)
    os.makedirs(os.path.join(out, "model"), exist_ok=True)
    FX.write_json(os.path.join(out, "model", "config.json"), cfg)
    FX.save_state(m, os.path.join(out, "model", "model.safetensors"))
    FX.write_case(out, "clip-text-shapes" + ("-full" if with_vision else ""), cfg, seed, inputs, outs,
                  {"input_ids": "[bos, random ids, eos, eos padding] (pad = <|endoftext|>, the highest id)"},
                  {"last_hidden_state": "final_layer_norm(encoder output)",
                   "pooler_output": "last_hidden_state at the first eos_token_id position",
                   "hidden_states_0": "embeddings; hidden_states_i = output of layer i",
                   "penultimate_final_ln": "final_layer_norm(hidden_states[-2])",
                   "text_embeds": "text_projection(pooler_output)"},
                  fp,
                  ("Full CLIPModel folder (text_model.* + vision_model.* + projections + logit_scale), as the "
                   "shapes CLIP is saved for the CLIPScore oracle; the text tower is checked. " if with_vision else
                   "shapes-world text encoder (transformers CLIPTextModel) at reduced width. ") +
                  "quick_gelu, causal mask, eos_token_id = %d (not 2: pooling at the first eos); random weights "
                  "(default init, 1-D params += N(0,0.05))." % eos)


def oracle_fixture(out, seed=4501):
    from shapes import nn_blip, wordpiece
    vocab = wordpiece.SPECIAL + list("abcdefghijklmnopqrstuvwxyz,.") + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"] + \
        ["a", "red", "circle", "on", "the", "left", "blue", "square", "above", "large", "yellow", "triangle"]
    os.makedirs(os.path.join(out, "model"), exist_ok=True)
    wordpiece.save(os.path.join(out, "model"), vocab)
    wp = wordpiece.WordPiece(os.path.join(out, "model"))
    cfg, med = nn_blip.configs(wp.vocab_size, vit_width=24, vit_depth=2, hidden=16, layers=2, inter=32,
                               mlp_dims=[16, 32, 16, 8, 4, 1])
    cfg["reward_mean"], cfg["reward_std"] = 0.25, 1.5  # non-trivial normalisation for the check
    torch.manual_seed(seed)
    m = nn_blip.ImageReward(cfg, med)
    FX.perturb_(m, seed + 1, 0.05)
    g = torch.Generator().manual_seed(seed + 100)
    prompts = ["a red circle on the left", "a large yellow triangle above a blue square, purple"]
    enc = [wp.encode_35(p) for p in prompts]
    inputs = {"input_ids": torch.tensor([e[0] for e in enc]), "attention_mask": torch.tensor([e[1] for e in enc]),
              "pixel_values": torch.randn(2, 3, 64, 64, generator=g, dtype=torch.float64).float()}

    def run(mod, x):
        P, I = x["input_ids"].shape[0], x["pixel_values"].shape[0]
        ids = x["input_ids"].repeat_interleave(I, 0)
        mask = x["attention_mask"].repeat_interleave(I, 0)
        px = x["pixel_values"].repeat(P, 1, 1, 1)
        o = {}
        r = mod(px, ids, mask, o)
        H = o["text_last_hidden_state"].shape[-1]
        return {"image_embeds": o["image_embeds"][:I],
                "text_last_hidden_state": o["text_last_hidden_state"].view(P, I, -1, H),
                "text_cls": o["text_cls"].view(P, I, H), "head_raw": o["head_raw"].view(P, I), "reward": r.view(P, I)}

    outs, fp = FX.run_both(m, run, inputs)
    FX.write_json(os.path.join(out, "model", "config.json"), cfg)
    FX.write_json(os.path.join(out, "model", "med_config.json"), med)
    FX.save_state(m, os.path.join(out, "model", "model.safetensors"))
    FX.write_case(out, "imagereward-shapes", {"model/config.json": cfg, "model/med_config.json": med}, seed, inputs,
                  outs, {"input_ids": "WordPiece ids of %r: [CLS] ... [SEP] + [PAD] 0 to 35 (model/vocab.txt)" % prompts,
                         "attention_mask": "1 for real tokens", "pixel_values": "already-normalised pixels NCHW"},
                  {"image_embeds": "blip.visual_encoder(pixel_values): final norm on all 65 tokens, CLS first",
                   "text_last_hidden_state": "[prompts, images, 35, H] blip.text_encoder (self-attn with padding mask "
                   "(1-m)*-10000, cross-attn to all image tokens, FFN; post-LN)",
                   "text_cls": "[prompts, images, H] position 0", "head_raw": "mlp(text_cls), 5 Linear, no activations",
                   "reward": "(head_raw - reward_mean) / reward_std (config.json: 0.25 / 1.5 here)"},
                  fp, "Shapes-world oracle structure (ImageReward keys blip.*, mlp.layers.{0,2,4,6,7}) at reduced "
                  "dims: ViT 64px patch 8 (65 tokens) width 24, BERT hidden 16; WordPiece vocab.txt with [DEC]/[ENC] "
                  "appended (vocab_size = lines + 2). Random weights (1-D params += N(0,0.05)). Layout of the outputs "
                  "as ../shared/fixtures/imagereward-tiny (every prompt x every image).")


class _UNetWithControlNet(torch.nn.Module):
    def __init__(self, unet, cn):
        super().__init__()
        self.unet, self.cn = unet, cn


def controlnet_fixture(out, seed=4601):
    """The shapes-world ControlNet (train_controlnet.py: ControlNetModel.from_unet of the teacher,
    3-level conditioning embedding 64x64 -> 16x16) on the shapes-unet structure, kind "controlnet" in
    the layout of ../shared/fixtures/controlnet-sd15-tiny; the base UNet is in the fixture (unet/)."""
    from shapes.train_controlnet import TINY_COND_CHANNELS
    ctx_dim = 32
    torch.manual_seed(seed)
    unet = nn_diffusers.UNet2DConditionModel(C.unet_cfg(ctx_dim, C.TINY_UNET))
    FX.perturb_(unet, seed + 1)
    cn = nn_controlnet.ControlNetModel.from_unet(unet, TINY_COND_CHANNELS)
    torch.manual_seed(seed + 2)  # the zero convs get random weights so that they test the wiring
    for m in list(cn.controlnet_down_blocks) + [cn.controlnet_mid_block, cn.controlnet_cond_embedding.conv_out]:
        m.reset_parameters()
    g = torch.Generator().manual_seed(seed + 100)
    inputs = {
        "sample": torch.randn(2, 4, C.LATENT_SIZE, C.LATENT_SIZE, generator=g, dtype=torch.float64).float(),
        "timestep": torch.tensor([981.0, 181.0]),
        "encoder_hidden_states": torch.randn(2, 77, ctx_dim, generator=g, dtype=torch.float64).float(),
        "controlnet_cond": torch.rand(1, 3, C.IMAGE_SIZE, C.IMAGE_SIZE, generator=g, dtype=torch.float64).float(),
    }

    def run(mod, x):
        args = (x["sample"], x["timestep"], x["encoder_hidden_states"])
        o = {"noise_pred_nocontrol": mod.unet(*args)}
        for pre, s in (("cs1_0", 1.0), ("cs0_5", 0.5)):
            down, mid = mod.cn(*args, x["controlnet_cond"], conditioning_scale=s)
            for i, r in enumerate(down):
                o["%s.down_block_res_samples.%d" % (pre, i)] = r
            o[pre + ".mid_block_res_sample"] = mid
            o[pre + ".noise_pred"] = mod.unet(*args, down_block_additional_residuals=down,
                                              mid_block_additional_residual=mid)
        return o

    outs, fp = FX.run_both(_UNetWithControlNet(unet, cn), run, inputs)
    for sub, m in (("model", cn), ("unet", unet)):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
        FX.write_json(os.path.join(out, sub, "config.json"), m.cfg)
        FX.save_state(m, os.path.join(out, sub, "diffusion_pytorch_model.safetensors"))
    FX.write_case(out, "controlnet", cn.cfg, seed, inputs, outs,
                  {"sample": "latent x_t (NCHW)", "timestep": "timesteps (float32 holding integers)",
                   "encoder_hidden_states": "text states (B, 77, cross_attention_dim)",
                   "controlnet_cond": "conditioning image in [0,1] (no [-1,1] rescale), 4x the latent size, "
                                      "shared by the batch"},
                  {"noise_pred_nocontrol": "base UNet output without ControlNet residuals",
                   "cs1_0": "conditioning_scale 1.0", "cs0_5": "conditioning_scale 0.5"},
                  fp,
                  "shapes-world ControlNet structure (ControlNetModel.from_unet of the shapes-unet structure at "
                  "reduced widths: 6 down residuals (conv_in output, one per level, two downsamplers) + mid; "
                  "conditioning embedding %s: 2 stride-2 convs, 64x64 -> 16x16); random weights (base UNet "
                  "default init, 1-D params += N(0,0.1); zero convs re-initialised with reset_parameters() after "
                  "torch.manual_seed(seed + 2) so they are not zero). Outputs named as controlnet-sd15-tiny: "
                  "cs<scale>.down_block_res_samples.i, .mid_block_res_sample, .noise_pred (UNet with the residuals)."
                  % list(TINY_COND_CHANNELS),
                  {"base_unet": "unet (base UNet folder in this fixture)"})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures"))
    ap.add_argument("--only", default="unet,vae,text,clip,oracle,controlnet")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    only = set(a.only.split(","))
    if "unet" in only:
        unet_fixture(os.path.join(a.out, "shapes-unet"))
    if "vae" in only:
        vae_fixture(os.path.join(a.out, "shapes-vae"))
    if "text" in only:
        text_fixture(os.path.join(a.out, "shapes-clip-text"))
    if "clip" in only:
        text_fixture(os.path.join(a.out, "shapes-clip-text-full"), seed=4401, with_vision=True)
    if "oracle" in only:
        oracle_fixture(os.path.join(a.out, "shapes-oracle"))
    if "controlnet" in only:
        controlnet_fixture(os.path.join(a.out, "shapes-controlnet"))


if __name__ == "__main__":
    main()
