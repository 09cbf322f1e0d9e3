#!/usr/bin/python3
"""Evaluation with the ground-truth checker (`tandem score --checker`) on test-split prompts:
teacher (DDIM, guidance w) and student (multistep consistency sampler, k steps) from the SAME
initial noise per prompt; mean scores by object count, the student/teacher ratio and, among prompts
where the two scores differ, the student's win share (the issue's quality bars). Writes
WORK/eval/metrics.json (and sample grids when --save-images). The teacher's images and checker
results are cached in WORK/eval/cache_teacher_<key>.npz, keyed by the teacher's weights and the settings,
so that evaluating another student (the part that changes while distilling) costs only its own samples.

usage (from tools/): /usr/bin/python3 -m shapes.evaluate [--n 500] [--teacher-steps 50] [--student-steps 4]"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "shapes"

from shapes import common, config as C, data, diffusion  # noqa: E402


@torch.no_grad()
def generate(work, unet, kind, prompts, noise, steps, w, seed, batch=32, parts=None, control=None):
    """-> uint8 images [N, 64, 64, 3]. kind: 'ddim', 'cd' or 'lcm' (guidance 1). parts: (tok, te, vae) to
    reuse. control: object ids [N, 64, 64] of each prompt's scene, the condition of a ControlledUNet `unet`."""
    tok, te, vae = parts or (common.load_tokenizer(work), common.load_text_encoder(work), common.load_vae(work))
    sf = vae.cfg["scaling_factor"]
    unc = te(common.ids_tensor(tok, [""]))[0]
    out = []
    g = torch.Generator().manual_seed(seed + 1)
    for s in range(0, len(prompts), batch):
        p = list(prompts[s:s + batch])
        ctx = te(common.ids_tensor(tok, p))[0]
        cu = unc.expand(len(p), -1, -1)
        x = noise[s:s + batch]
        if control is not None:
            from shapes import train_controlnet
            unet.set_cond([train_controlnet.cond_tensor(control[s:s + batch])])
        if kind == "lcm":
            from shapes import distill_lora
            z = distill_lora.sample_lcm(unet, x, ctx, steps, g)
        elif kind == "ddim":
            z = diffusion.sample_ddim(unet, x, ctx, cu, steps, w)
        else:
            z = diffusion.sample_consistency(unet, x, ctx, cu, steps, w, generator=g)
        out.append(data.to_uint8(vae.decode(z / sf)))
    return np.concatenate(out)


def test_prompts(work, n, world_seed=1, split="test"):
    """Test split: world seed + 1000 (the card's figures); validation split: the world seed (as
    acceptance.sh's calibration prompts), for choosing settings without looking at the test split."""
    return data.dataset(os.path.join(work, "data"), split, n, world_seed + (1000 if split == "test" else 0))


def summarise(scores, nobj, held, details=None):
    r = {"n": int(len(scores)), "mean": float(scores.mean())}
    if details:
        r["attribute_accuracy"] = data.attribute_accuracy(details)
    for k, name in [(1, "one_object"), (2, "two_object")]:
        m = nobj == k
        r["mean_" + name] = float(scores[m].mean()) if m.any() else float("nan")
        r["n_" + name] = int(m.sum())
    if held.any():
        r["mean_held_out_pair"] = float(scores[held].mean())
    return r


def evaluate_unet(work, unet, kind, steps, w, n, seed, world_seed=1):
    ds = test_prompts(work, n, world_seed)
    noise = torch.randn(n, C.LATENT_CHANNELS, C.LATENT_SIZE, C.LATENT_SIZE, generator=torch.Generator().manual_seed(seed))
    imgs = generate(work, unet.eval(), kind, ds["captions"], noise, steps, w, seed)
    details = []
    sc = data.checker_scores(list(ds["captions"]), imgs, details)
    return summarise(sc, ds["n_objects"], ds["held_out"], details)


def _cache_key(work, stage, kind, steps, w, n, seed, world_seed, split):
    """SHA-256 over the UNet's weights file and the sampling settings (first 16 hex digits)."""
    h = hashlib.sha256()
    with open(os.path.join(common.out_dir(work, stage), "diffusion_pytorch_model.safetensors"), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    h.update(json.dumps([kind, steps, w, n, seed, world_seed, split]).encode())
    return h.hexdigest()[:16]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=common.DEFAULT_WORK)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--world-seed", type=int, default=1)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--teacher-steps", type=int, default=50)
    ap.add_argument("--teacher-guidance", type=float, default=5.0)
    ap.add_argument("--student-steps", type=int, default=4)
    ap.add_argument("--student-guidance", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save-images", action="store_true")
    ap.add_argument("--split", choices=("test", "val"), default="test")
    ap.add_argument("--out", help="metrics file (default WORK/eval/metrics.json)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    parts = (common.load_tokenizer(a.work), common.load_text_encoder(a.work), common.load_vae(a.work))
    ds = test_prompts(a.work, a.n, a.world_seed, a.split)
    caps = list(ds["captions"])
    noise = torch.randn(a.n, C.LATENT_CHANNELS, C.LATENT_SIZE, C.LATENT_SIZE,
                        generator=torch.Generator().manual_seed(a.seed))
    res = {"n_prompts": a.n, "split": a.split, "world_seed_%s" % a.split: a.world_seed + (1000 if a.split == "test" else 0),
           "noise_seed": a.seed}
    scores = {}
    for name, stage, kind, steps, w in [("teacher", "teacher", "ddim", a.teacher_steps, a.teacher_guidance),
                                        ("student", "student", "cd", a.student_steps, a.student_guidance)]:
        if not os.path.exists(os.path.join(common.out_dir(a.work, stage), "config.json")):
            common.log("eval", "%s: no %s output yet, skipped" % (name, stage))
            continue
        cache = None
        if name == "teacher":
            cache = os.path.join(a.work, "eval", "cache_teacher_%s.npz" % _cache_key(
                a.work, stage, kind, steps, w, a.n, a.seed, a.world_seed, a.split))
        if cache and os.path.exists(cache):
            z = np.load(cache, allow_pickle=False)
            imgs, sc, details = z["images"], z["scores"], [json.loads(d) for d in z["details"]]
            common.log("eval", "%s: samples and checker results from %s" % (name, cache))
        else:
            unet = common.load_unet(a.work, stage)
            imgs = generate(a.work, unet, kind, caps, noise, steps, w, a.seed, parts=parts)
            details = []
            sc = data.checker_scores(caps, imgs, details)
            if cache:
                os.makedirs(os.path.dirname(cache), exist_ok=True)
                np.savez(cache + ".tmp.npz", images=imgs, scores=sc, details=np.array([json.dumps(d) for d in details]))
                os.replace(cache + ".tmp.npz", cache)
        scores[name] = sc
        res[name] = dict(summarise(sc, ds["n_objects"], ds["held_out"], details), sampler=kind, steps=steps,
                         guidance=w)
        common.log("eval", "%s: %s" % (name, res[name]))
        if a.save_images:
            d = os.path.join(a.work, "eval", name)
            os.makedirs(d, exist_ok=True)
            for i in range(min(64, len(imgs))):
                data.save_png(imgs[i], os.path.join(d, "%03d.png" % i))
    if "teacher" in scores and "student" in scores:
        s, t = scores["student"], scores["teacher"]
        diff = s != t
        res["student_over_teacher"] = float(s.mean() / max(t.mean(), 1e-9))
        res["student_wins_among_differing"] = float((s[diff] > t[diff]).mean()) if diff.any() else float("nan")
        res["wins_losses_ties"] = [int((s > t).sum()), int((s < t).sum()), int((s == t).sum())]
        common.log("eval", "student/teacher %.3f; student wins %.3f of %d differing prompts" % (
            res["student_over_teacher"], res["student_wins_among_differing"], int(diff.sum())))
    out = a.out or os.path.join(a.work, "eval", "metrics.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    common.write_json(out, res)


if __name__ == "__main__":
    main()
