#!/usr/bin/python3
"""Stage 5: the student, consistency-distilled from the teacher with the recipe of the paper's
CD-SD1.5 (yandex-research/adaptive-diffusion consistency_models_sd; docs/TRAINING.md):

  grid = DDIM-50 timesteps (981, 961, ..., 21, 1); n ~ U{0..48}; t = grid[n], t' = grid[n+1]
  x_t  = sqrt(a_t) z0 + sqrt(1 - a_t) eps                                   (z0: VAE latent)
  teacher (frozen): one DDIM step t -> t' with CFG_w:  x_t' = DDIM(x_t, CFG_w(eps_T(x_t, t)))
  student f_theta(x, t) = x0_from_eps(x, CFG_w(eps_theta(x, t)), t) with the boundary condition
          alpha := 1 at t <= 1, i.e. f(x, 1) = x  (c_skip(t) = 1[t <= 1], c_out(t) = 1[t > 1])
  target: f_target(x_t', t') from the EMA target network (rate --target-ema, 0.95 as the COCO script),
          no gradient; loss = mean squared error (uniform weights); RAdam.
The student starts from the teacher's weights; an EMA of the student (--ema) is exported.
Steps: 3000 (the shipped student: 1500 steps, then 1500 more resumed from its exported EMA weights with
a fresh optimiser and --seed 2; docs/TRAINING.md). Longer is not better: at 4500 steps the 500-prompt
student/teacher ratio fell from 0.931 to 0.897.
Sampling: shapes.diffusion.sample_consistency (k steps on the same grid, e.g. 981, 741, 481, 241).
Output: WORK/student/out (diffusers UNet folder).

usage (from tools/): /usr/bin/python3 -m shapes.distill_student [--minutes M] [--steps S] [--resume]"""
import copy
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "shapes"

from shapes import common, data, diffusion, train_teacher  # noqa: E402

STAGE = "student"


def main(argv=None):
    ap = common.parser(__doc__, steps=3000, batch=16, lr=1e-4)
    ap.add_argument("--guidance", type=float, default=5.0, help="CFG scale w of teacher, target and student")
    ap.add_argument("--target-ema", type=float, default=0.95)
    ap.add_argument("--ema", type=float, default=0.995, help="EMA of the student weights (exported)")
    ap.add_argument("--sample-steps", type=int, default=4, help="student steps of the quick evaluation")
    ap.add_argument("--eval-n", type=int, default=64)
    ap.add_argument("--snapshot-every", type=int, default=0,
                    help="also save the exported (EMA) weights every N steps to WORK/student/snapshots/, for "
                         "choosing the step on validation prompts (0: off)")
    a = ap.parse_args(argv)
    folder = common.setup(a, STAGE)
    tok = common.load_tokenizer(a.work)
    te = common.load_text_encoder(a.work)
    vae = common.load_vae(a.work)
    sf = vae.cfg["scaling_factor"]
    ds = data.dataset(os.path.join(a.work, "data"), "train", a.n_train, a.world_seed)
    mean, logvar = train_teacher.load_latents(a)
    texts = common.TextCache(tok, te)
    teacher = common.load_unet(a.work, "teacher")
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = copy.deepcopy(teacher).train()
    for p in student.parameters():
        p.requires_grad_(True)
    target = common.EMA(student, a.target_ema)
    ema = common.EMA(student, a.ema)
    opt = torch.optim.RAdam(student.parameters(), lr=a.lr, weight_decay=0.0)
    g = np.random.default_rng(a.seed)
    grid = diffusion.ddim_timesteps(50)
    unc = texts([""])

    def state():
        return {"model": student.state_dict(), "target": target.model.state_dict(), "ema": ema.model.state_dict(),
                "opt": opt.state_dict(), "np_rng": g.bit_generator.state}

    def restore(s):
        student.load_state_dict(s["model"])
        target.model.load_state_dict(s["target"])
        ema.model.load_state_dict(s["ema"])
        opt.load_state_dict(s["opt"])
        g.bit_generator.state = s["np_rng"]

    loop = common.Loop(a, STAGE, folder, state, restore)
    n = len(ds["captions"])
    w = a.guidance

    def step(i):
        idx = g.integers(0, n, a.batch)
        m, lv = mean[idx].float(), logvar[idx].float()
        z0 = (m + torch.exp(0.5 * lv) * torch.randn_like(m)) * sf
        ctx = texts(list(ds["captions"][idx]))
        cu = unc.expand(a.batch, -1, -1)
        k = torch.from_numpy(g.integers(0, 49, a.batch))
        t = torch.tensor(grid)[k]
        t2 = torch.tensor(grid)[k + 1]
        xt = diffusion.add_noise(z0, torch.randn_like(z0), t)
        with torch.no_grad():
            x_t2 = diffusion.ddim_step(xt, diffusion.cfg_eps(teacher, xt, t, ctx, cu, w), t, t2)
            tgt = diffusion.x0_from_eps(x_t2, diffusion.cfg_eps(target.model, x_t2, t2, ctx, cu, w), t2, boundary=True)
        pred = diffusion.x0_from_eps(xt, diffusion.cfg_eps(student, xt, t, ctx, cu, w), t, boundary=True)
        loss = F.mse_loss(pred, tgt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        target.update(student)
        ema.update(student)
        if a.snapshot_every and (i + 1) % a.snapshot_every == 0:
            d = os.path.join(folder, "snapshots", "step_%d" % (i + 1))
            common.save_component(ema.model, d, teacher.cfg, "diffusion_pytorch_model.safetensors")
        return {"loss": loss.item()}

    done = loop.run(step)
    out = common.out_dir(a.work, STAGE)
    common.save_component(ema.model, out, teacher.cfg, "diffusion_pytorch_model.safetensors")
    from shapes import evaluate
    res = evaluate.evaluate_unet(a.work, ema.model, "cd", steps=a.sample_steps, w=w, n=a.eval_n, seed=1234)
    res.update(step=loop.step, minutes=loop.seconds / 60, finished=done, guidance=w, sample_steps=a.sample_steps)
    common.write_json(os.path.join(out, "metrics.json"), res)
    common.log(STAGE, "quick eval (%d test prompts, %d-step consistency, w %.1f): one-object %.3f  two-object %.3f -> %s"
               % (a.eval_n, a.sample_steps, w, res["mean_one_object"], res["mean_two_object"], out))


if __name__ == "__main__":
    main()
