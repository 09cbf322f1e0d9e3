#!/usr/bin/python3
"""Stage 4: the teacher UNet2DConditionModel, trained as Stable Diffusion: epsilon prediction on
VAE latents (posterior samples x scaling_factor) noised at t ~ U{0..999} on the scaled_linear
schedule, conditioned on the frozen text encoder's last_hidden_state (77 tokens), captions replaced by
"" with probability --dropout (0.1) so classifier-free guidance works. The loss is weighted by
Min-SNR-gamma (--min-snr 5: min(SNR, 5) / SNR per sample; Hang et al., "Efficient Diffusion Training via
Min-SNR Weighting Strategy", 2023), which stops the many easy low-noise timesteps from dominating the
gradient while the global layout (high noise) is still wrong. AdamW, EMA of the weights (exported). Output: WORK/teacher/out (diffusers UNet folder, EMA weights).

usage (from tools/): /usr/bin/python3 -m shapes.train_teacher [--minutes M] [--steps S] [--resume]"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "shapes"

from shapes import common, config as C, data, diffusion, nn_diffusers  # noqa: E402

STAGE = "teacher"


def load_latents(a):
    path = os.path.join(common.out_dir(a.work, "vae"), "latents_train.pt")
    if not os.path.exists(path):  # not kept between sessions (hundreds of MB): encode again
        from shapes.train_vae import encode_all
        common.log(STAGE, "encoding the training images with the VAE (latents_train.pt is not there)")
        ds = data.dataset(os.path.join(a.work, "data"), "train", a.n_train, a.world_seed,
                          log=lambda m: common.log(STAGE, m))
        with torch.no_grad():
            mean, logvar = encode_all(common.load_vae(a.work), ds["images"])
        torch.save({"mean": mean, "logvar": logvar, "n_train": a.n_train, "world_seed": a.world_seed}, path)
    lat = torch.load(path)
    if lat["n_train"] != a.n_train or lat["world_seed"] != a.world_seed:
        raise SystemExit("teacher: the VAE stage encoded n_train=%d world_seed=%d; pass the same --n-train/--world-seed"
                         % (lat["n_train"], lat["world_seed"]))
    return lat["mean"], lat["logvar"]


def main(argv=None):
    ap = common.parser(__doc__, steps=7000, batch=32, lr=5e-4)
    ap.add_argument("--dropout", type=float, default=0.1, help="caption dropout probability")
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--min-snr", type=float, default=5.0,
                    help="Min-SNR-gamma loss weighting min(SNR, gamma) / SNR (Hang et al. 2023); 0: uniform")
    ap.add_argument("--guidance", type=float, default=5.0, help="guidance of the quick evaluation")
    ap.add_argument("--eval-n", type=int, default=64)
    a = ap.parse_args(argv)
    folder = common.setup(a, STAGE)
    tok = common.load_tokenizer(a.work)
    te = common.load_text_encoder(a.work)
    vae = common.load_vae(a.work)
    sf = vae.cfg["scaling_factor"]
    ds = data.dataset(os.path.join(a.work, "data"), "train", a.n_train, a.world_seed)
    mean, logvar = load_latents(a)
    texts = common.TextCache(tok, te)
    cfg = C.unet_cfg(te.text_model.cfg["hidden_size"])
    unet = nn_diffusers.UNet2DConditionModel(cfg)
    ema = common.EMA(unet, a.ema)
    opt = torch.optim.AdamW(unet.parameters(), lr=a.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 500))
    g = np.random.default_rng(a.seed)

    def state():
        return {"model": unet.state_dict(), "ema": ema.model.state_dict(), "opt": opt.state_dict(),
                "sched": sched.state_dict(), "np_rng": g.bit_generator.state}

    def restore(s):
        unet.load_state_dict(s["model"])
        ema.model.load_state_dict(s["ema"])
        opt.load_state_dict(s["opt"])
        sched.load_state_dict(s["sched"])
        sched.base_lrs = [a.lr for _ in sched.base_lrs]  # --lr is this run's peak rate, also on resume
        g.bit_generator.state = s["np_rng"]

    loop = common.Loop(a, STAGE, folder, state, restore)
    n = len(ds["captions"])

    def step(i):
        unet.train()
        idx = g.integers(0, n, a.batch)
        m, lv = mean[idx].float(), logvar[idx].float()
        z0 = (m + torch.exp(0.5 * lv) * torch.randn_like(m)) * sf
        caps = ["" if u < a.dropout else c for u, c in zip(g.random(a.batch), ds["captions"][idx])]
        ctx = texts(caps)
        t = torch.from_numpy(g.integers(0, diffusion.T, a.batch))
        noise = torch.randn_like(z0)
        xt = diffusion.add_noise(z0, noise, t)
        per_sample = (unet(xt, t.float(), ctx) - noise).pow(2).mean(dim=(1, 2, 3))  # [B]
        if a.min_snr > 0:  # SNR = abar / (1 - abar); eps prediction: weight min(SNR, gamma) / SNR
            ab = diffusion.a_of(t).float()
            snr = ab / (1 - ab)
            per_sample = per_sample * snr.clamp(max=a.min_snr) / snr
        loss = per_sample.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched.step()
        ema.update(unet)
        return {"loss": loss.item()}

    done = loop.run(step)
    out = common.out_dir(a.work, STAGE)
    common.save_component(ema.model, out, cfg, "diffusion_pytorch_model.safetensors")
    # quick evaluation (the full one is shapes.evaluate)
    from shapes import evaluate
    res = evaluate.evaluate_unet(a.work, ema.model, "ddim", steps=50, w=a.guidance, n=a.eval_n, seed=1234)
    res.update(step=loop.step, minutes=loop.seconds / 60, finished=done)
    common.write_json(os.path.join(out, "metrics.json"), res)
    common.log(STAGE, "quick eval (%d test prompts, DDIM-50, w %.1f): one-object %.3f  two-object %.3f -> %s" % (
        a.eval_n, a.guidance, res["mean_one_object"], res["mean_two_object"], out))


if __name__ == "__main__":
    main()
