#!/usr/bin/python3
"""Stage "lora": an LCM-LoRA-style student for the shapes world: a LoRA on the frozen teacher UNet,
distilled with the latent consistency recipe of LCM-LoRA (Luo et al. 2023, "LCM-LoRA"; diffusers
examples/consistency_distillation/train_lcm_distill_lora_sd_wds.py, read, not copied):

  grid  = DDIM solver on 50 of 1000 steps: t_i = 20 i - 1 (19, 39, ..., 999) (LCMScheduler's
          original_inference_steps 50 grid); n ~ U{0..49}; t = grid[n], t' = t - 20 clamped at 0
  x_t   = sqrt(a_t) z0 + sqrt(1 - a_t) eps                                    (z0: VAE latent)
  w     ~ U[w_min, w_max] per sample (guidance scale, eps_u + w (eps_c - eps_u), = diffusers' w + 1)
  teacher (the base UNet, LoRA off, no grad): CFG_w x0 and eps at (x_t, t); one DDIM step to t'
          x_t' = sqrt(a_t') x0_w + sqrt(1 - a_t') eps_w   (a_t' = alphas_cumprod[0] at t' = 0)
  f(x, t) = c_skip(t) x + c_out(t) x0(x, eps_theta(x, t), t),  boundary scalings with s = 10 t,
          sigma_data 0.5: c_skip = 0.25 / (s^2 + 0.25), c_out = s / sqrt(s^2 + 0.25) (LCMScheduler)
  student: f with the LoRA on, at (x_t, t), conditional only (no CFG, no w input)
  target : f with the LoRA of the TARGET network, at (x_t', t'), no gradient. The target network is the
          base UNet with an EMA of the LoRA weights, theta- <- mu theta- + (1 - mu) theta after each step
          (--target-ema mu, default 0.95: the consistency distillation recipe's target, as distill_student.py;
          the base stays frozen). --target-ema 0 uses the online LoRA itself, as diffusers' LCM-LoRA script
          does ("we do not use a separate target network for LCM-LoRA"): the first shipped shapes LoRA was
          trained that way; the EMA target gave a better student (docs/LORA.md)
  loss  = mean squared error (--loss huber: mean(sqrt(d^2 + c^2) - c), c = 0.001); AdamW, grad clip 1.

The guidance range: diffusers uses w 3..15 (guidance scale 4..16) for SD1.5, i.e. around and above
the 7.5 SD is used at. The shapes teacher is trained and evaluated at guidance 5 and a small UNet
saturates at high guidance, so the range is centred on 5: U[3, 7] (--w-min / --w-max, guidance-scale
convention). The student has no guidance input: it learns the guided teacher's trajectories, so it is
sampled WITHOUT classifier-free guidance (guidance 1, one UNet evaluation per step) with the LCM
sampler (LCMScheduler, 4 steps: 999, 759, 499, 259), as the released LCM-LoRA is.

LoRA: rank --rank (alpha = rank) on the LCM-LoRA target set (shapes.lora.LCM_TARGETS: attention
q/k/v/out, proj_in/out, ff, resnet convs, time_emb_proj, down/up sampling convs); rank 32 keeps the
float16 file under 5 MB. Output: WORK/lora/out/pytorch_lora_weights.safetensors (float32, kohya keys)
+ lora_config.json + metrics.json (quick evaluation: checker scores of --eval-n test prompts, the LoRA
student with the Python LCM sampler at 4 steps, guidance 1, next to the teacher's DDIM-50 at guidance 5
from the same noise). export(work, out_dir) writes out_dir/lcm_lora/pytorch_lora_weights.safetensors
(float16, metadata tandem.kind = lcm-lora, which tandem reads to pick the LCM defaults).

usage (from tools/): /usr/bin/python3 -m shapes.distill_lora [--minutes M] [--steps S] [--resume]
                     /usr/bin/python3 -m shapes.distill_lora --export OUT_DIR   (export only)"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "shapes"

from shapes import common, config as C, data, diffusion, lora, st, train_teacher  # noqa: E402

STAGE = "lora"
WEIGHTS = "pytorch_lora_weights.safetensors"
N_GRID = 50          # DDIM solver steps (num_ddim_timesteps; LCMScheduler original_inference_steps)
TIMESTEP_SCALING = 10.0
SIGMA_DATA = 0.5


def lcm_grid(n=N_GRID):
    """DDIMSolver / LCMScheduler origin grid: (1..n) * (T // n) - 1 (19, 39, ..., 999 for n = 50)."""
    k = diffusion.T // n
    return [i * k - 1 for i in range(1, n + 1)]


def boundary_scalings(t):
    """LCMScheduler.get_scalings_for_boundary_condition_discrete: s = 10 t, c_skip = sd^2 / (s^2 + sd^2),
    c_out = s / sqrt(s^2 + sd^2)."""
    s = torch.as_tensor(t, dtype=torch.float64) * TIMESTEP_SCALING
    c_skip = SIGMA_DATA ** 2 / (s ** 2 + SIGMA_DATA ** 2)
    c_out = s / (s ** 2 + SIGMA_DATA ** 2).sqrt()
    return c_skip, c_out


def _bc(v, x):
    v = torch.as_tensor(v).to(x.dtype)
    if v.dim() == 0:
        v = v.expand(x.shape[0])
    return v.view(-1, *([1] * (x.dim() - 1)))


def alpha_at(t):
    """alphas_cumprod[t] (t >= 0 integers)."""
    return diffusion.AC[torch.as_tensor(t).long()]


def x0_eps(x, eps, t):
    a = _bc(alpha_at(t), x)
    return (x - (1 - a).sqrt() * eps) / a.sqrt()


def consistency_fn(unet, x, t, ctx):
    """f(x, t) = c_skip x + c_out x0(eps_theta(x, t)) (conditional pass only)."""
    tt = torch.as_tensor(t).expand(x.shape[0]).float()
    eps = unet(x, tt, ctx)
    c_skip, c_out = boundary_scalings(t)
    return _bc(c_skip, x) * x + _bc(c_out, x) * x0_eps(x, eps, t)


def lcm_timesteps(steps, orig=N_GRID, T=diffusion.T):
    """LCMScheduler.set_timesteps(steps) (strength 1): origin grid reversed, every floor(i * orig / steps)-th
    (4 -> 999, 759, 499, 259)."""
    k = T // orig
    return [(orig - int(np.floor(i * orig / steps))) * k - 1 for i in range(steps)]


@torch.no_grad()
def sample_lcm(unet, noise, ctx, steps=4, generator=None):
    """LCMScheduler.step (diffusers v0.27, what tandem's "lcm" sampler computes), guidance 1:
    denoised = c_out x0 + c_skip x; x = sqrt(a_prev) denoised + sqrt(1 - a_prev) z (not after the last
    step); returns the last denoised."""
    ts = lcm_timesteps(steps)
    x = noise
    d = noise
    for i, t in enumerate(ts):
        d = consistency_fn(unet, x, t, ctx)
        if i + 1 < len(ts):
            a = alpha_at(ts[i + 1]).to(x.dtype)
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = a.sqrt() * d + (1 - a).sqrt() * z
    return d


def build_student(work, rank, alpha=None):
    """The teacher UNet (WORK/teacher/out) with LoRA wrappers: (unet, wrappers)."""
    unet = common.load_unet(work, "teacher")
    wr = lora.inject(unet, rank, alpha)
    return unet, wr


@torch.no_grad()
def quick_eval(work, unet, wrappers, n, seed, teacher_w, steps, world_seed=1):
    from shapes import evaluate
    tok, te, vae = common.load_tokenizer(work), common.load_text_encoder(work), common.load_vae(work)
    sf = vae.cfg["scaling_factor"]
    ds = evaluate.test_prompts(work, n, world_seed)
    caps = list(ds["captions"])
    noise = torch.randn(n, C.LATENT_CHANNELS, C.LATENT_SIZE, C.LATENT_SIZE, generator=torch.Generator().manual_seed(seed))
    unet.eval()
    g = torch.Generator().manual_seed(seed + 1)
    imgs = []
    for s in range(0, n, 32):
        ctx = te(common.ids_tensor(tok, caps[s:s + 32]))[0]
        imgs.append(data.to_uint8(vae.decode(sample_lcm(unet, noise[s:s + 32], ctx, steps, g) / sf)))
    sc = data.checker_scores(caps, np.concatenate(imgs))
    with lora.disabled(wrappers):
        timgs = evaluate.generate(work, unet, "ddim", caps, noise, 50, teacher_w, seed, parts=(tok, te, vae))
    tsc = data.checker_scores(caps, timgs)
    res = {"student": dict(evaluate.summarise(sc, ds["n_objects"], ds["held_out"]), sampler="lcm", steps=steps,
                           guidance=1.0),
           "teacher": dict(evaluate.summarise(tsc, ds["n_objects"], ds["held_out"]), sampler="ddim", steps=50,
                           guidance=teacher_w)}
    res["student_over_teacher"] = float(sc.mean() / max(tsc.mean(), 1e-9))
    diff = sc != tsc
    res["student_wins_among_differing"] = float((sc[diff] > tsc[diff]).mean()) if diff.any() else float("nan")
    return res


def main(argv=None):
    ap = common.parser(__doc__, steps=1000, batch=16, lr=3e-4)
    ap.add_argument("--rank", type=int, default=32, help="LoRA rank (alpha = rank); 32 -> about 2.8 MB in float16")
    ap.add_argument("--w-min", type=float, default=3.0, help="teacher guidance scale range, lower end")
    ap.add_argument("--w-max", type=float, default=7.0, help="teacher guidance scale range, upper end")
    ap.add_argument("--loss", choices=("l2", "huber"), default="l2")
    ap.add_argument("--huber-c", type=float, default=0.001)
    ap.add_argument("--teacher-guidance", type=float, default=5.0, help="teacher guidance of the quick evaluation")
    ap.add_argument("--sample-steps", type=int, default=4, help="LCM steps of the quick evaluation")
    ap.add_argument("--eval-n", type=int, default=64, help="test prompts of the quick evaluation (0: none)")
    ap.add_argument("--target-ema", type=float, default=0.95,
                    help="EMA rate of the target network's LoRA weights (0.95: the consistency distillation "
                         "recipe's rate, as distill_student.py; 0: the online LoRA, as diffusers' LCM-LoRA script)")
    ap.add_argument("--export", metavar="OUT_DIR", help="only export WORK/lora/out to OUT_DIR/lcm_lora and exit")
    ap.add_argument("--init-lora", metavar="FILE",
                    help="start from these LoRA weights (kohya keys, e.g. a finished stage's output) with a fresh "
                         "optimizer: a warm restart that trains --steps more steps")
    a = ap.parse_args(argv)
    if a.export:
        export(a.work, a.export)
        return
    folder = common.setup(a, STAGE)
    tok = common.load_tokenizer(a.work)
    te = common.load_text_encoder(a.work)
    vae = common.load_vae(a.work)
    sf = vae.cfg["scaling_factor"]
    ds = data.dataset(os.path.join(a.work, "data"), "train", a.n_train, a.world_seed)
    mean, logvar = train_teacher.load_latents(a)
    texts = common.TextCache(tok, te)
    unet, wr = build_student(a.work, a.rank)
    unet.train()
    if a.init_lora and not a.resume:
        sd = st.load(a.init_lora)
        with torch.no_grad():
            for path, w in wr.items():
                k = lora.kohya_name(path)
                if k + ".lora_down.weight" not in sd:
                    raise SystemExit("lora: %s has no %s.lora_down.weight" % (a.init_lora, k))
                w.lora_down.weight.copy_(sd[k + ".lora_down.weight"].float())
                w.lora_up.weight.copy_(sd[k + ".lora_up.weight"].float())
        common.log(STAGE, "LoRA weights from %s (warm restart)" % a.init_lora)
    params = lora.parameters(wr)
    for p in params:
        p.requires_grad_(True)
    common.log(STAGE, "LoRA rank %d on %d modules: %.3fM parameters (%.2f MB in float16)" % (
        a.rank, len(wr), lora.n_parameters(wr) / 1e6, 2 * lora.n_parameters(wr) / 1e6))
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.0)
    if not 0.0 <= a.target_ema < 1.0:
        raise SystemExit("lora: --target-ema must be in [0, 1), got %g" % a.target_ema)
    # EMA target: one copy of every LoRA factor, [rank, in(, kh, kw)] / [out, rank(, 1, 1)] as the wrapper's
    target_w = [p.detach().clone() for p in params] if a.target_ema > 0 else None
    g = np.random.default_rng(a.seed)
    grid = torch.tensor(lcm_grid())
    step_k = diffusion.T // N_GRID
    unc = texts([""])

    def state():
        return {"lora": lora.state_dict(wr), "opt": opt.state_dict(), "np_rng": g.bit_generator.state,
                "rank": a.rank, "target_ema": a.target_ema, "target": target_w}

    def restore(s):
        if s.get("rank") != a.rank:
            raise SystemExit("lora: the checkpoint has rank %s, not --rank %d" % (s.get("rank"), a.rank))
        sd = s["lora"]
        with torch.no_grad():
            for path, w in wr.items():
                k = lora.kohya_name(path)
                w.lora_down.weight.copy_(sd[k + ".lora_down.weight"])
                w.lora_up.weight.copy_(sd[k + ".lora_up.weight"])
        opt.load_state_dict(s["opt"])
        g.bit_generator.state = s["np_rng"]
        if s.get("target_ema", 0.0) != a.target_ema:  # checkpoints before the option: online target (0)
            raise SystemExit("lora: the checkpoint has --target-ema %s, not %g" % (s.get("target_ema", 0.0), a.target_ema))
        if target_w is not None:
            for p_target, v in zip(target_w, s["target"]):
                p_target.copy_(v)

    loop = common.Loop(a, STAGE, folder, state, restore)
    n = len(ds["captions"])
    B = a.batch

    def step(i):
        idx = g.integers(0, n, B)
        m, lv = mean[idx].float(), logvar[idx].float()
        z0 = (m + torch.exp(0.5 * lv) * torch.randn_like(m)) * sf
        ctx = texts(list(ds["captions"][idx]))
        k = torch.from_numpy(g.integers(0, N_GRID, B))
        t = grid[k]
        t2 = (t - step_k).clamp(min=0)
        w = torch.from_numpy(g.uniform(a.w_min, a.w_max, B)).float()
        xt = diffusion.add_noise(z0, torch.randn_like(z0), t)
        with torch.no_grad():
            with lora.disabled(wr):  # teacher: the base UNet, CFG in one batched pass
                e = unet(torch.cat([xt, xt]), torch.cat([t, t]).float(), torch.cat([unc.expand(B, -1, -1), ctx]))
            eps_w = e[:B] + _bc(w, xt) * (e[B:] - e[:B])
            x0_w = x0_eps(xt, eps_w, t)
            a2 = _bc(alpha_at(t2), xt)  # t' = 0: alphas_cumprod[0] (DDIMSolver's prev of index 0)
            x_t2 = a2.sqrt() * x0_w + (1 - a2).sqrt() * eps_w
            if target_w is None:
                tgt = consistency_fn(unet, x_t2, t2, ctx)
            else:  # the EMA weights in place for the target's pass, the online ones back after it
                online = [p.detach().clone() for p in params]
                for p, p_target in zip(params, target_w):
                    p.copy_(p_target)
                tgt = consistency_fn(unet, x_t2, t2, ctx)
                for p, o in zip(params, online):
                    p.copy_(o)
        pred = consistency_fn(unet, xt, t, ctx)
        if a.loss == "l2":
            loss = F.mse_loss(pred, tgt)
        else:
            loss = torch.mean(torch.sqrt((pred - tgt) ** 2 + a.huber_c ** 2) - a.huber_c)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if target_w is not None:
            with torch.no_grad():
                for p_target, p in zip(target_w, params):
                    p_target.mul_(a.target_ema).add_(p.detach(), alpha=1 - a.target_ema)
        return {"loss": loss.item()}

    done = loop.run(step)
    out = common.out_dir(a.work, STAGE)
    os.makedirs(out, exist_ok=True)
    meta = metadata(a.rank, a.w_min, a.w_max, a.target_ema)
    lora.save(wr, os.path.join(out, WEIGHTS), dtype=torch.float32, metadata=meta)
    common.write_json(os.path.join(out, "lora_config.json"), dict(
        rank=a.rank, alpha=float(a.rank), targets=list(lora.LCM_TARGETS), n_modules=len(wr),
        n_parameters=lora.n_parameters(wr), base="teacher", key_style="kohya (lora_unet_*)", **{
            "original_inference_steps": N_GRID, "timestep_scaling": TIMESTEP_SCALING, "w_min": a.w_min,
            "w_max": a.w_max, "loss": a.loss, "target_ema": a.target_ema, "sampler": "lcm", "steps": a.sample_steps, "guidance_scale": 1.0}))
    res = quick_eval(a.work, unet, wr, a.eval_n, 1234, a.teacher_guidance, a.sample_steps, a.world_seed) \
        if a.eval_n > 0 else {"student": {}, "teacher": {}}
    res.update(step=loop.step, minutes=loop.seconds / 60, finished=done, rank=a.rank, w_min=a.w_min, w_max=a.w_max,
               n_lora_parameters=lora.n_parameters(wr))
    common.write_json(os.path.join(out, "metrics.json"), res)
    if a.eval_n <= 0:
        common.log(STAGE, "no quick evaluation (--eval-n 0) -> %s" % out)
        return
    common.log(STAGE, "quick eval (%d test prompts): LoRA student LCM %d steps guidance 1: mean %.3f (one %.3f, two %.3f);"
               " teacher DDIM-50 w %.1f: mean %.3f; ratio %.3f -> %s" % (
                   a.eval_n, a.sample_steps, res["student"]["mean"], res["student"]["mean_one_object"],
                   res["student"]["mean_two_object"], a.teacher_guidance, res["teacher"]["mean"],
                   res["student_over_teacher"], out))


def metadata(rank, w_min, w_max, target_ema):
    return {"tandem.kind": "lcm-lora", "tandem.base": "shapes teacher (unet/)", "format": "pt",
            "ss_network_dim": str(rank), "ss_network_alpha": str(rank),
            "lcm.original_inference_steps": str(N_GRID), "lcm.recommended": "sampler lcm, 4 steps, guidance 1",
            "lcm.teacher_guidance_range": "%g..%g" % (w_min, w_max), "lcm.target_ema": "%g" % target_ema}


def export(work, out_dir):
    """WORK/lora/out -> out_dir/lcm_lora/pytorch_lora_weights.safetensors (float16, kohya keys, metadata
    tandem.kind = lcm-lora) + lora_config.json. Returns the file path."""
    src = common.out_dir(work, STAGE)
    cfg = common.read_json(os.path.join(src, "lora_config.json"))
    sd = st.load(os.path.join(src, WEIGHTS))
    dst = os.path.join(out_dir, "lcm_lora")
    os.makedirs(dst, exist_ok=True)
    path = os.path.join(dst, WEIGHTS)
    meta = metadata(cfg["rank"], cfg["w_min"], cfg["w_max"], cfg.get("target_ema", 0.0))
    st.save({k: v.half() for k, v in sd.items()}, path, metadata=meta)
    common.write_json(os.path.join(dst, "lora_config.json"), cfg)
    common.log(STAGE, "exported %s (%.2f MB)" % (path, os.path.getsize(path) / 1e6))
    return path


if __name__ == "__main__":
    main()
