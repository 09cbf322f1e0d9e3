#!/usr/bin/python3
"""Stage "controlnet": a diffusers ControlNetModel on the frozen teacher, conditioned on the scene's
segmentation silhouette (docs/TRAINING.md): condition image RGB8 64x64, object pixels (mask id > 0 of
`tandem world sample --masks`) white (255), background black, passed as RGB / 255 in [0, 1].

Initialised from the teacher (ControlNetModel.from_unet: encoder copied, zero convs), trained with
the teacher's epsilon loss on VAE latents (same schedule, caption dropout 0.1) through the frozen
teacher with the residuals added (only the ControlNet learns). AdamW, EMA of the weights (exported).
Output: WORK/controlnet/out (diffusers ControlNet folder, float32 EMA weights; export() writes the
float16 copy) and out/metrics.json: a quick evaluation on --eval-n test prompts with their test
scenes' conditions (DDIM-50, w 5, teacher + ControlNet): checker score and the IoU of the decoded
image's object pixels (|pixel - background colour| > --iou-threshold) with the condition mask.

usage (from tools/): /usr/bin/python3 -m shapes.train_controlnet [--minutes M] [--steps S] [--resume]"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "shapes"

from shapes import common, config as C, data, diffusion, nn_controlnet, st  # noqa: E402

STAGE = "controlnet"
# conditioning embedding widths: 3 levels = 2 stride-2 convs, 64x64 image -> 16x16 latent
COND_CHANNELS = (16, 32, 64)
TINY_COND_CHANNELS = (8, 8, 16)  # wiring fixture (make_fixtures.py)


def cond_tensor(mask_ids):
    """uint8 object ids [B, 64, 64] -> [B, 3, 64, 64] float in {0, 1} (data.control_image / 255)."""
    m = torch.from_numpy(np.ascontiguousarray(mask_ids > 0)).float()[:, None]
    return m.expand(-1, 3, -1, -1).contiguous()


def load_controlnet(work, stage=STAGE):
    d = common.out_dir(work, stage)
    m = nn_controlnet.ControlNetModel(common.read_json(os.path.join(d, "config.json")))
    m.load_state_dict(st.load(os.path.join(d, "diffusion_pytorch_model.safetensors")))
    return m.eval()


def object_pixels(images_uint8, backgrounds, threshold):
    """uint8 [N,H,W,3], background names [N] -> bool [N,H,W]: max_c |pixel - background colour| > threshold."""
    bg = np.array([data.BACKGROUND_RGB[b] for b in backgrounds], dtype=np.int16)[:, None, None, :]
    return np.abs(images_uint8.astype(np.int16) - bg).max(-1) > threshold


def mask_iou(pred, target):
    """bool [N,H,W] x2 -> IoU per image (1 where both are empty)."""
    inter = (pred & target).sum((1, 2))
    union = (pred | target).sum((1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


@torch.no_grad()
def evaluate(work, unet, controlnet, n, seed=1234, w=5.0, steps=50, world_seed=1, threshold=64, batch=32,
             save_dir=None, scale=1.0):
    """Teacher (+ ControlNet unless controlnet is None) on n test prompts with their scenes' conditions
    -> dict of metrics (checker means, mask IoU)."""
    from shapes import evaluate as E
    tok, te, vae = common.load_tokenizer(work), common.load_text_encoder(work), common.load_vae(work)
    sf = vae.cfg["scaling_factor"]
    ds = E.test_prompts(work, n, world_seed)
    mk = data.masks(os.path.join(work, "data"), "test", n, world_seed + 1000)
    noise = torch.randn(n, C.LATENT_CHANNELS, C.LATENT_SIZE, C.LATENT_SIZE,
                        generator=torch.Generator().manual_seed(seed))
    model = nn_controlnet.ControlledUNet(unet.eval(), [controlnet.eval()] if controlnet is not None else [], [scale])
    unc = te(common.ids_tensor(tok, [""]))[0]
    imgs = []
    for s in range(0, n, batch):
        p = list(ds["captions"][s:s + batch])
        ctx = te(common.ids_tensor(tok, p))[0]
        model.set_cond([cond_tensor(mk["masks"][s:s + batch])] if controlnet is not None else [])
        z = diffusion.sample_ddim(model, noise[s:s + batch], ctx, unc.expand(len(p), -1, -1), steps, w)
        imgs.append(data.to_uint8(vae.decode(z / sf)))
    imgs = np.concatenate(imgs)
    sc = data.checker_scores(list(ds["captions"]), imgs)
    iou = mask_iou(object_pixels(imgs, mk["background"], threshold), mk["masks"] > 0)
    res = E.summarise(sc, ds["n_objects"], ds["held_out"])
    res.update(mean_iou=float(iou.mean()), iou_at_least_0_8=float((iou >= 0.8).mean()), iou_threshold=threshold,
               sampler="ddim", steps=steps, guidance=w, conditioning_scale=scale)
    if save_dir:
        os.makedirs(save_dir, exist_ok=True)
        cond = data.control_image(mk["masks"])
        for i in range(min(16, n)):
            data.save_png(imgs[i], os.path.join(save_dir, "%03d.png" % i))
            data.save_png(cond[i], os.path.join(save_dir, "%03d_cond.png" % i))
    return res


def main(argv=None):
    ap = common.parser(__doc__, steps=1500, batch=32, lr=1e-4)
    ap.add_argument("--dropout", type=float, default=0.1, help="caption dropout probability")
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument("--guidance", type=float, default=5.0, help="guidance of the quick evaluation")
    ap.add_argument("--eval-n", type=int, default=64)
    ap.add_argument("--eval-baseline", action="store_true", help="also evaluate the teacher without ControlNet")
    a = ap.parse_args(argv)
    folder = common.setup(a, STAGE)
    from shapes.train_teacher import load_latents
    tok = common.load_tokenizer(a.work)
    te = common.load_text_encoder(a.work)
    vae = common.load_vae(a.work)
    sf = vae.cfg["scaling_factor"]
    ds = data.dataset(os.path.join(a.work, "data"), "train", a.n_train, a.world_seed)
    mk = data.masks(os.path.join(a.work, "data"), "train", a.n_train, a.world_seed,
                    log=lambda m: common.log(STAGE, m))["masks"]
    mean, logvar = load_latents(a)
    texts = common.TextCache(tok, te)
    unet = common.load_unet(a.work, "teacher")
    for p in unet.parameters():
        p.requires_grad_(False)
    cn = nn_controlnet.ControlNetModel.from_unet(unet, COND_CHANNELS)
    cfg = cn.cfg
    ema = common.EMA(cn, a.ema)
    opt = torch.optim.AdamW(cn.parameters(), lr=a.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100))
    g = np.random.default_rng(a.seed)
    common.log(STAGE, "ControlNet %.2f M parameters (teacher %.2f M), conditioning embedding %s" % (
        sum(p.numel() for p in cn.parameters()) / 1e6, sum(p.numel() for p in unet.parameters()) / 1e6,
        list(COND_CHANNELS)))

    def state():
        return {"model": cn.state_dict(), "ema": ema.model.state_dict(), "opt": opt.state_dict(),
                "sched": sched.state_dict(), "np_rng": g.bit_generator.state}

    def restore(s):
        cn.load_state_dict(s["model"])
        ema.model.load_state_dict(s["ema"])
        opt.load_state_dict(s["opt"])
        sched.load_state_dict(s["sched"])
        g.bit_generator.state = s["np_rng"]

    loop = common.Loop(a, STAGE, folder, state, restore)
    n = len(ds["captions"])

    def step(i):
        cn.train()
        idx = g.integers(0, n, a.batch)
        m, lv = mean[idx].float(), logvar[idx].float()
        z0 = (m + torch.exp(0.5 * lv) * torch.randn_like(m)) * sf
        caps = ["" if u < a.dropout else c for u, c in zip(g.random(a.batch), ds["captions"][idx])]
        ctx = texts(caps)
        t = torch.from_numpy(g.integers(0, diffusion.T, a.batch))
        noise = torch.randn_like(z0)
        xt = diffusion.add_noise(z0, noise, t)
        down, mid = cn(xt, t.float(), ctx, cond_tensor(mk[idx]))
        eps = unet(xt, t.float(), ctx, down_block_additional_residuals=down, mid_block_additional_residual=mid)
        loss = F.mse_loss(eps, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(cn.parameters(), 1.0)
        opt.step()
        sched.step()
        ema.update(cn)
        return {"loss": loss.item()}

    done = loop.run(step)
    out = common.out_dir(a.work, STAGE)
    common.save_component(ema.model, out, cfg, "diffusion_pytorch_model.safetensors")
    res = evaluate(a.work, unet, ema.model, a.eval_n, w=a.guidance, world_seed=a.world_seed,
                   save_dir=os.path.join(folder, "samples"))
    res.update(step=loop.step, minutes=loop.seconds / 60, finished=done,
               parameters=sum(p.numel() for p in cn.parameters()))
    if a.eval_baseline:
        b = evaluate(a.work, unet, None, a.eval_n, w=a.guidance, world_seed=a.world_seed)
        res["teacher_without_controlnet"] = {k: b[k] for k in ("mean", "mean_iou", "iou_at_least_0_8")}
    common.write_json(os.path.join(out, "metrics.json"), res)
    common.log(STAGE, "quick eval (%d test prompts, DDIM-50, w %.1f, teacher + ControlNet): checker %.3f "
               "(one-object %.3f, two-object %.3f), mask IoU %.3f (>= 0.8: %.2f) -> %s" % (
                   a.eval_n, a.guidance, res["mean"], res["mean_one_object"], res["mean_two_object"],
                   res["mean_iou"], res["iou_at_least_0_8"], out))


def export(work, out_dir):
    """WORK/controlnet/out -> out_dir/controlnet/ (config.json + diffusion_pytorch_model.safetensors in
    float16). Returns the folder, or None when the stage has no output."""
    from shapes.export import copy_f16
    src = common.out_dir(work, STAGE)
    if not os.path.exists(os.path.join(src, "config.json")):
        return None
    dst = os.path.join(out_dir, "controlnet")
    copy_f16(src, dst, "diffusion_pytorch_model.safetensors")
    return dst


def trained_fixture(work, out_models, fx_root):
    """fx_root/shapes-trained-controlnet on the SHIPPED float16 weights (upcast to float32; float64 for
    fp32_vs_fp64): kind "controlnet", case.json "model" and "base_unet" point at
    out_models/controlnet and out_models/unet (nothing duplicated). Condition: a test scene's
    silhouette; context: the shipped text encoder's states of two captions."""
    from shapes import fixtures as FX, nn_clip, nn_diffusers

    def load16(cls, folder, weights):
        m = cls(common.read_json(os.path.join(folder, "config.json")))
        m.load_state_dict({k: v.float() for k, v in st.load(os.path.join(folder, weights)).items()})
        return m.eval()
    cn_dir, unet_dir = os.path.join(out_models, "controlnet"), os.path.join(out_models, "unet")
    if not os.path.exists(os.path.join(cn_dir, "config.json")):
        return None
    rel = lambda d: os.path.relpath(d, os.path.join(fx_root, "x"))  # noqa: E731
    cn = load16(nn_controlnet.ControlNetModel, cn_dir, "diffusion_pytorch_model.safetensors")
    unet = load16(nn_diffusers.UNet2DConditionModel, unet_dir, "diffusion_pytorch_model.safetensors")
    te = load16(nn_clip.CLIPTextModel, os.path.join(out_models, "text_encoder"), "model.safetensors")
    prompts = ["a small red circle on the left", "on a white background, a blue square above a large yellow triangle"]
    with torch.no_grad():
        ctx = te(common.ids_tensor(common.load_tokenizer(work), prompts))[0]
    mk = data.masks(os.path.join(work, "data"), "test", 64, 1001)["masks"]
    g = torch.Generator().manual_seed(7)
    inputs = {"sample": torch.randn(2, 4, C.LATENT_SIZE, C.LATENT_SIZE, generator=g, dtype=torch.float64).float(),
              "timestep": torch.tensor([981.0, 241.0]), "encoder_hidden_states": ctx,
              "controlnet_cond": cond_tensor(mk[2:3])}

    class Both(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unet, self.cn = unet, cn

    def run(mod, x):
        args = (x["sample"], x["timestep"], x["encoder_hidden_states"])
        o = {"noise_pred_nocontrol": mod.unet(*args)}
        for pre, sc in (("cs1_0", 1.0), ("cs0_5", 0.5)):
            down, mid = mod.cn(*args, x["controlnet_cond"], conditioning_scale=sc)
            for i, r in enumerate(down):
                o["%s.down_block_res_samples.%d" % (pre, i)] = r
            o[pre + ".mid_block_res_sample"] = mid
            o[pre + ".noise_pred"] = mod.unet(*args, down_block_additional_residuals=down,
                                              mid_block_additional_residual=mid)
        return o
    outs, fp = FX.run_both(Both(), run, inputs)
    d = os.path.join(fx_root, "shapes-trained-controlnet")
    FX.write_case(d, "controlnet", cn.cfg, 7, inputs, outs,
                  {"encoder_hidden_states": "shipped text encoder last_hidden_state of %r" % prompts,
                   "controlnet_cond": "silhouette of test scene 2 (world seed 1001) in {0, 1}, shared by the batch"},
                  {"noise_pred_nocontrol": "teacher output without ControlNet", "cs1_0": "conditioning_scale 1.0",
                   "cs0_5": "conditioning_scale 0.5"}, fp,
                  "Shipped ControlNet on the shipped teacher (float16 weights upcast to float32).",
                  {"model": rel(cn_dir), "base_unet": "%s (the shipped teacher)" % rel(unet_dir)})
    return d


if __name__ == "__main__":
    main()
