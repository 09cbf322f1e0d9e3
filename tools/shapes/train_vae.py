#!/usr/bin/python3
"""Stage 3: AutoencoderKL (64x64x3 <-> 16x16x4) trained on train-split images: loss = L1 + MSE of the
reconstruction from a posterior sample (random 32x32 crops, at multiples of 4 px, for the first 80% of
the steps, then full images) + kl_weight * KL(q(z|x) || N(0, I)) (kl_weight 1e-6 as SD's
VAE; no perceptual / adversarial terms: the world is flat colours). After training,
scaling_factor = 1 / std(posterior means over the training images) goes into config.json, as
SD's 0.18215 was derived. Output: WORK/vae/out (diffusers AutoencoderKL folder) and
WORK/vae/out/latents_train.pt (means and logvars of the training images for the UNet stages).

usage (from tools/): /usr/bin/python3 -m shapes.train_vae [--minutes M] [--steps S] [--resume]"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "shapes"

from shapes import common, config as C, data, nn_diffusers  # noqa: E402

STAGE = "vae"


@torch.no_grad()
def encode_all(vae, images, batch=256):
    means, logvars = [], []
    for s in range(0, len(images), batch):
        m, lv, _ = vae.encode(data.to_float(images[s:s + batch]))
        means.append(m.half())
        logvars.append(lv.half())
    return torch.cat(means), torch.cat(logvars)


def main(argv=None):
    ap = common.parser(__doc__, steps=3000, batch=32, lr=4e-4)  # the shipped VAE: 3000 steps
    ap.add_argument("--kl-weight", type=float, default=1e-6)
    ap.add_argument("--crop", type=int, default=32, help="random crop size for the first 80%% of the steps "
                    "(4x cheaper at 32; the last 20%% use full 64x64 images so the mid attention sees 16x16 latents)")
    a = ap.parse_args(argv)
    folder = common.setup(a, STAGE)
    ds = data.dataset(os.path.join(a.work, "data"), "train", a.n_train, a.world_seed, log=lambda m: common.log(STAGE, m))
    cfg = C.vae_cfg()
    vae = nn_diffusers.AutoencoderKL(cfg)
    opt = torch.optim.AdamW(vae.parameters(), lr=a.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 200) * (0.1 if s > 0.8 * a.steps else 1.0))
    g = np.random.default_rng(a.seed)

    def state():
        return {"model": vae.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "np_rng": g.bit_generator.state}

    def restore(s):
        vae.load_state_dict(s["model"])
        opt.load_state_dict(s["opt"])
        sched.load_state_dict(s["sched"])
        g.bit_generator.state = s["np_rng"]

    loop = common.Loop(a, STAGE, folder, state, restore)
    n = len(ds["captions"])

    def step(i):
        vae.train()
        x = data.to_float(ds["images"][g.integers(0, n, a.batch)])
        if a.crop < C.IMAGE_SIZE and i < 0.8 * a.steps:
            oy, ox = (int(v) * 4 for v in g.integers(0, (C.IMAGE_SIZE - a.crop) // 4 + 1, 2))
            x = x[:, :, oy:oy + a.crop, ox:ox + a.crop]
        mean, logvar, _ = vae.encode(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        rec = vae.decode(z)
        l1 = (rec - x).abs().mean()
        mse = F.mse_loss(rec, x)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(dim=(1, 2, 3)).mean()
        loss = l1 + mse + a.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return {"l1": l1.item(), "mse": mse.item(), "kl": kl.item()}

    done = loop.run(step)
    vae.eval()
    mean, logvar = encode_all(vae, ds["images"])
    std = mean.float().std().item()
    cfg["scaling_factor"] = round(1.0 / std, 5)
    out = common.out_dir(a.work, STAGE)
    common.save_component(vae, out, cfg, "diffusion_pytorch_model.safetensors")
    torch.save({"mean": mean, "logvar": logvar, "n_train": a.n_train, "world_seed": a.world_seed},
               os.path.join(out, "latents_train.pt"))
    # held-out reconstruction quality
    test = data.dataset(os.path.join(a.work, "data"), "test", 500, a.world_seed + 1000)
    with torch.no_grad():
        x = data.to_float(test["images"][:256])
        rec = vae.decode(vae.encode(x)[0])
        psnr = (10 * torch.log10(4.0 / ((rec.clamp(-1, 1) - x) ** 2).mean(dim=(1, 2, 3)))).mean().item()
        rec_u8 = data.to_uint8(rec)
        sc = data.checker_scores(list(test["captions"][:100]), rec_u8[:100])
    common.write_json(os.path.join(out, "metrics.json"), {
        "step": loop.step, "minutes": loop.seconds / 60, "latent_std": std, "scaling_factor": cfg["scaling_factor"],
        "test_psnr_db": psnr, "test_checker_on_reconstructions": float(sc.mean()), "finished": done})
    common.log(STAGE, "latent std %.4f -> scaling_factor %.5f; test PSNR %.2f dB; checker on reconstructions %.3f"
               % (std, cfg["scaling_factor"], psnr, sc.mean()))


if __name__ == "__main__":
    main()
