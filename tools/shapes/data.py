"""Shapes-world data through the C engine's CLI (the world is defined once, in src/world/):
`tandem world sample` renders scenes + captions, `tandem world captions` prints captions,
`tandem score --checker` scores an image against a caption. Datasets are cached as .npz
(images uint8 [N, 64, 64, 3], captions, held_out flags, n_objects)."""
import json
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np
from PIL import Image

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TANDEM = os.environ.get("TANDEM", os.path.join(ROOT, "build", "tandem"))


def _run(args):
    # the binary may be briefly absent while `make` relinks it: wait up to two minutes
    for _ in range(60):
        if os.access(TANDEM, os.X_OK):
            break
        time.sleep(2)
    r = subprocess.run([TANDEM] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError("tandem %s failed (%d): %s" % (" ".join(args[:3]), r.returncode, r.stderr.strip()))
    return r.stdout


def captions(split, n, seed, start=0):
    out = _run(["world", "captions", "--split", split, "--n", str(n), "--seed", str(seed), "--start", str(start)])
    return [l for l in out.split("\n") if l.strip()]


def _sample_chunk(split, n, seed, start):
    tmp = tempfile.mkdtemp(prefix="shapes_")
    try:
        _run(["world", "sample", "--split", split, "--n", str(n), "--seed", str(seed), "--start", str(start),
              "--out", tmp])
        recs = [json.loads(l) for l in open(os.path.join(tmp, "captions.jsonl")) if l.strip()]
        imgs = np.stack([np.asarray(Image.open(os.path.join(tmp, r["file"])).convert("RGB")) for r in recs])
        return imgs, recs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def dataset(cache_dir, split, n, seed, chunk=5000, log=print):
    """-> dict(images uint8 [N,64,64,3], captions [N] str, held_out [N] bool, n_objects [N] int)."""
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, "%s_s%d_n%d.npz" % (split, seed, n))
    if os.path.exists(path):
        z = np.load(path, allow_pickle=False)
        return {k: z[k] for k in z.files}
    imgs, caps, held, nobj = [], [], [], []
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        im, recs = _sample_chunk(split, m, seed, start)
        imgs.append(im)
        caps += [r["caption"] for r in recs]
        held += [bool(r.get("held_out_pair", False)) for r in recs]
        nobj += [len(r["scene"]["objects"]) if "scene" in r else 0 for r in recs]
        log("data: %s %d/%d" % (split, start + m, n))
    d = {"images": np.concatenate(imgs), "captions": np.array(caps), "held_out": np.array(held),
         "n_objects": np.array(nobj, dtype=np.int64)}
    np.savez(path + ".tmp.npz", **d)
    os.replace(path + ".tmp.npz", path)
    return d


BACKGROUND_RGB = {"white": (245, 245, 245), "black": (15, 15, 15), "gray": (128, 128, 128)}  # src/world/world.c


def _mask_chunk(split, n, seed, start):
    tmp = tempfile.mkdtemp(prefix="shapes_mask_")
    try:
        _run(["world", "sample", "--split", split, "--n", str(n), "--seed", str(seed), "--start", str(start),
              "--out", tmp, "--masks"])
        recs = [json.loads(l) for l in open(os.path.join(tmp, "captions.jsonl")) if l.strip()]
        masks = np.stack([np.asarray(Image.open(os.path.join(tmp, r["mask"])).convert("L")) for r in recs])
        return masks, recs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def masks(cache_dir, split, n, seed, chunk=5000, log=print):
    """Object masks of the same scenes as dataset(cache_dir, split, n, seed) (`tandem world sample
    --masks`), cached in their own file (masks_<split>_s<seed>_n<n>.npz, the image cache is unchanged)
    -> dict(masks uint8 [N,64,64] object id (0 background, 1 first object, 2 second), background [N] str)."""
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, "masks_%s_s%d_n%d.npz" % (split, seed, n))
    if os.path.exists(path):
        z = np.load(path, allow_pickle=False)
        return {k: z[k] for k in z.files}
    ms, bgs = [], []
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        mk, recs = _mask_chunk(split, m, seed, start)
        ms.append(mk)
        bgs += [r["scene"]["background"] for r in recs]
        log("data: masks %s %d/%d" % (split, start + m, n))
    d = {"masks": np.concatenate(ms), "background": np.array(bgs)}
    np.savez_compressed(path + ".tmp.npz", **d)
    os.replace(path + ".tmp.npz", path)
    return d


def control_image(mask_ids):
    """Condition image of the shapes-world ControlNet (docs/TRAINING.md): uint8 object ids [N,H,W] ->
    RGB8 [N,H,W,3], object pixels (id > 0) 255, background 0."""
    return np.repeat((np.asarray(mask_ids) > 0)[..., None], 3, axis=-1).astype(np.uint8) * 255


def save_png(img_uint8_hwc, path):
    Image.fromarray(img_uint8_hwc).save(path)


def checker_score(prompt, image_path):
    """-> (score in [0,1], full JSON result)."""
    j = json.loads(_run(["score", "--checker", "--prompt", prompt, "--image", image_path, "--json"]))
    return float(j["score"]), j


def checker_scores(prompts, images_uint8, details=None):
    """Scores a batch (writes temporary PNGs). details: a list that receives each full JSON result."""
    tmp = tempfile.mkdtemp(prefix="shapes_score_")
    try:
        out = []
        for i, (p, im) in enumerate(zip(prompts, images_uint8)):
            f = os.path.join(tmp, "%d.png" % i)
            save_png(im, f)
            s, j = checker_score(p, f)
            out.append(s)
            if details is not None:
                details.append(j)
        return np.array(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def attribute_accuracy(details):
    """Share of stated attributes the checker found satisfied, by kind (colour, shape, size, position,
    relation, background, count, present), over checker JSON results."""
    ok, n = {}, {}
    for j in details:
        for a in j.get("attributes", []):
            kind = a["name"].split(".")[-1]
            n[kind] = n.get(kind, 0) + 1
            ok[kind] = ok.get(kind, 0) + (1 if a.get("ok") else 0)
    return {k: round(ok[k] / n[k], 4) for k in sorted(n)}


def to_float(images_uint8):
    """uint8 [N,H,W,3] -> float32 tensor [N,3,H,W] in [-1, 1]."""
    import torch
    x = torch.from_numpy(np.ascontiguousarray(images_uint8)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def to_uint8(x):
    """float tensor [N,3,H,W] in [-1,1] -> uint8 numpy [N,H,W,3] (as the SD pipeline: (x/2+0.5) clamp, round)."""
    x = ((x.detach().float() / 2 + 0.5).clamp(0, 1) * 255).round().byte()
    return x.permute(0, 2, 3, 1).cpu().numpy()
