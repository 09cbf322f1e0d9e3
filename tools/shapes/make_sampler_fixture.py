"""Writes tests/fixtures/shapes-consistency-sampler: the multistep consistency sampler of
diffusion.py (sample_consistency, cd_timesteps) run with an analytic model, for the C sampler
"consistency" (src/sampling, `tandem check`, kind "sampler-consistency").

Model (no network): eps(x, t, c) = a_c x + 0.1 sin(t / 100), a_c = 0.3 for the prompt (c = 1, the
shared scheduler fixtures' model) and 0.2 for the unconditional pass (c = 0), so classifier-free
guidance (w = 5, one batched call [uncond; cond]) changes the result.
Noise: the engine's documented streams (src/pipeline/generate.h): the initial latent is
tdm_randn(seed, stream 0), re-noising draw k is tdm_randn(seed, stream 1 + k). tdm_randn
(src/base/rng.c: Philox4x32-10, Box-Muller in double, rounded to float) is re-implemented below, so
the fixture also pins the stream convention.
float32 run = the reference; the same run in float64 (same noise) gives fp32_vs_fp64.

Run from the repository root: /usr/bin/python3 tools/shapes/make_sampler_fixture.py [--out DIR]
(seconds; torch CPU)."""
import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from shapes import diffusion, st  # noqa: E402

SEED = 20240601
SHAPE = (1, 4, 8, 8)  # the latent of a 32x32 shapes image (VAE scale 4)
GUIDANCE = 5.0
TRAJ_STEPS = [1, 2, 4, 5]
MASK32 = 0xFFFFFFFF


def philox4x32(key, ctr):
    """Philox4x32-10 (Salmon et al. SC'11) as src/base/rng.c tdm_philox4x32."""
    M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
    k0, k1 = key & MASK32, (key >> 32) & MASK32
    c0, c1, c2, c3 = ctr
    for _ in range(10):
        p0, p1 = M0 * c0, M1 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & MASK32, p1 & MASK32, ((p0 >> 32) ^ c3 ^ k1) & MASK32, p0 & MASK32
        k0, k1 = (k0 + W0) & MASK32, (k1 + W1) & MASK32
    return c0, c1, c2, c3


def tdm_randn(n, seed, stream):
    """n normals of stream `stream` (offset 0), float32, as tdm_randn."""
    out = []
    block = 0
    while len(out) < n:
        x = philox4x32(seed, (block & MASK32, block >> 32, stream & MASK32, (stream >> 32) & MASK32))
        for p in range(2):
            u0 = (x[2 * p] + 0.5) / 4294967296.0
            u1 = (x[2 * p + 1] + 0.5) / 4294967296.0
            r = math.sqrt(-2.0 * math.log(u0))
            out += [r * math.cos(2 * math.pi * u1), r * math.sin(2 * math.pi * u1)]
        block += 1
    return torch.tensor(out[:n], dtype=torch.float32)


def analytic_unet(x, tt, ctx):
    """x [B, C, H, W], tt [B] float32 timesteps, ctx [B] 1 = prompt, 0 = unconditional."""
    c = ctx.view(-1, 1, 1, 1) > 0.5
    s = 0.1 * torch.sin(tt.to(x.dtype) / 100)
    return torch.where(c, 0.3 * x, 0.2 * x) + s.view(-1, 1, 1, 1)


def run(k, x_T, noises, dtype):
    """diffusion.sample_consistency with the analytic model; records every step's sample, guided eps
    and x0 (through wrappers of the module functions the sampler calls)."""
    rec = {"x": [], "eps": [], "x0": []}
    orig_cfg, orig_x0 = diffusion.cfg_eps, diffusion.x0_from_eps

    def cfg_rec(unet, x, t, c, cu, w):
        rec["x"].append(x.clone())
        e = orig_cfg(unet, x, t, c, cu, w)
        rec["eps"].append(e.clone())
        return e

    def x0_rec(x, eps, t, boundary=False):
        r = orig_x0(x, eps, t, boundary)
        rec["x0"].append(r.clone())
        return r

    diffusion.cfg_eps, diffusion.x0_from_eps = cfg_rec, x0_rec
    try:
        ctx = torch.ones(1, dtype=dtype)
        ctx_u = torch.zeros(1, dtype=dtype)
        out = diffusion.sample_consistency(analytic_unet, x_T.to(dtype), ctx, ctx_u, steps=k, w=GUIDANCE,
                                           renoise=[z.to(dtype) for z in noises])
    finally:
        diffusion.cfg_eps, diffusion.x0_from_eps = orig_cfg, orig_x0
    rec["out"] = out
    return rec


def err(a32, a64):
    d = a32.double() - a64
    den = a64.norm().item()
    return {"max_abs_err": d.abs().max().item(), "rel_l2_err": d.norm().item() / den if den > 0 else d.norm().item()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures/shapes-consistency-sampler")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    n = math.prod(SHAPE)
    tensors, fp = {}, {}
    x_T = tdm_randn(n, SEED, 0).view(SHAPE)
    tensors["x_T"] = x_T
    max_k = max(TRAJ_STEPS)
    draws = [tdm_randn(n, SEED, 1 + j).view(SHAPE) for j in range(max_k - 1)]
    for j, z in enumerate(draws):
        tensors["noise.%d" % j] = z
    outputs = {"x_T": "tdm_randn(seed, stream 0): the initial latent; f32 %s" % list(SHAPE),
               "noise.j": "tdm_randn(seed, stream 1 + j): re-noising draw j (before step j + 1)"}
    for k in TRAJ_STEPS:
        r32 = run(k, x_T, draws[:k - 1], torch.float32)
        r64 = run(k, x_T, draws[:k - 1], torch.float64)
        assert len(r32["x"]) == k and len(r32["x0"]) == k
        for i in range(k):
            for key in ("x", "eps", "x0"):
                if key == "x" and i == 0:
                    continue  # x_T
                name = "k%d.%s.%d" % (k, key, i)
                tensors[name] = r32[key][i].float()
                fp[name] = err(r32[key][i], r64[key][i])
        tensors["k%d.out" % k] = r32["out"].float()
        fp["k%d.out" % k] = err(r32["out"], r64["out"])
    outputs.update({"kK.x.i": "sample entering step i (i >= 1; step 0 starts from x_T)",
                    "kK.eps.i": "guided eps of step i: eps_u + w (eps_c - eps_u)",
                    "kK.x0.i": "x0 of step i: (x - sqrt(1 - a_t) eps) / sqrt(a_t)",
                    "kK.out": "the sampler's result (the last x0)"})
    timesteps = {str(k): diffusion.cd_timesteps(k) for k in range(1, 51)}
    case = {
        "kind": "sampler-consistency",
        "producer": "tandem tools/shapes/make_sampler_fixture.py; tools/shapes/diffusion.py sample_consistency; "
                    "torch %s, CPU" % torch.__version__,
        "config": diffusion.scheduler_config(),
        "grid_steps": 50,
        "seed": SEED,
        "streams": {"initial_latent": 0, "sampler_draw_k": "1 + k"},
        "guidance": GUIDANCE,
        "model": "eps(x, t, c) = a_c x + 0.1 sin(t / 100); a_c = 0.3 (prompt), 0.2 (unconditional); "
                 "float32, t a float32 tensor",
        "timesteps": timesteps,
        "refused_steps": [0, 51],
        "trajectory_steps": TRAJ_STEPS,
        "outputs": outputs,
        "fp32_vs_fp64": fp,
        "notes": "k-step timesteps: DDIM-50 grid (leading, steps_offset 1: 981, 961, ..., 1) at indices "
                 "floor(i * 50 / k) (diffusion.cd_timesteps). No step reaches t <= 1 for k < 50, so the boundary "
                 "condition (x0 = x at t <= 1) does not enter these trajectories.",
    }
    st.save(tensors, os.path.join(a.out, "io.safetensors"))
    with open(os.path.join(a.out, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(a.out, p)) for p in os.listdir(a.out))
    print("wrote %s: %d tensors, %d bytes" % (a.out, len(tensors), size))


if __name__ == "__main__":
    main()
