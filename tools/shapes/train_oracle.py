#!/usr/bin/python3
"""Stage 6 (last): the oracle, ImageReward's architecture (shapes.nn_blip; BLIP ViT + BERT with
cross-attention + 5-layer linear head, ImageReward key names) with a WordPiece vocabulary trained on
the captions, trained to regress the checker score (`tandem score --checker`) of generated samples,
the way ImageReward learned from human ratings.

Training pairs (WORK/oracle/*.npz, built once): for 10000 train-split prompts, samples of the teacher
(DDIM with few steps and varied guidance: a spread of qualities) and of the student (1, 2, 4 steps; the
4-step guidance-5 samples the adaptive run routes are the largest share, about 37%), plus real scenes paired
with the caption of another scene (15%, mismatches) or with their own (5%); then 2 blocks of 5000 further
train prompts drawn by the student at the run's settings only, each with 2 initial noises (20000: the same
caption drawn well and badly), and every pair mirrored left-right (caption's left/right swapped) and
re-scored: 60000 pairs, every one scored by the checker. Held-out pairs: the first recipe mix on 1000
test-split prompts, and 1000 further test prompts drawn by the student at the run's settings.
Loss: MSE on the score + 0.5 x a pairwise ranking loss over the batch + 0.3 x training-only per-attribute
heads (the checker's attribute kinds; not exported). Metrics: Spearman rank correlation with the checker on
the held-out pairs, and on the held-out student samples at the run's settings alone (what routing needs).
Output: WORK/oracle/out/{config.json, med_config.json, vocab.txt, tokenizer_config.json, model.safetensors}.

usage (from tools/): /usr/bin/python3 -m shapes.train_oracle [--pairs 10000] [--student-extra 5000] [--no-mirror]
       [--minutes M] [--steps S] [--resume]"""
import argparse
import os
import re
import sys

import numpy as np
import torch
import torch.nn.functional as F

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "shapes"

from shapes import common, config as C, data, evaluate, nn_blip, nn_clip, nn_controlnet, wordpiece  # noqa: E402

STAGE = "oracle"
RUN_RECIPE = ("student", "cd", 4, 5.0, 3.0)  # the student as acceptance.sh runs it (model, sampler, steps, w, weight)


RUN_KIND = 5  # index of RUN_RECIPE among make_pairs' recipes: the pairs' "kind" of student samples at the run's settings
# Students drawn with the shapes ControlNet as `tandem control-eval` runs them (acceptance.sh: scale 1.25, the
# scene's own segmentation map): (stage, sampler, steps, guidance, pairs' kind). make_pairs' kinds are 0-7.
CONTROL_RECIPES = (("student", "cd", 4, 5.0, 8), ("lora", "lcm", 4, 1.0, 9))
CONTROL_SCALE = 1.25


def control_recipes(names):
    """The CONTROL_RECIPES named in a comma list ("student,lora": all, in that order)."""
    want = [n for n in names.split(",") if n]
    known = [r[0] for r in CONTROL_RECIPES]
    bad = [n for n in want if n not in known]
    if bad or not want:
        raise SystemExit("train_oracle: --control-students: %s (known: %s)" % (",".join(bad) or "none", ",".join(known)))
    return tuple(r for r in CONTROL_RECIPES if r[0] in want)


def _cached(path):
    """-> the dict saved at path, or None."""
    if not os.path.exists(path):
        return None
    z = np.load(path)
    return {k: z[k] for k in z.files}


def _save(path, d):
    np.savez(path + ".tmp.npz", **d)
    os.replace(path + ".tmp.npz", path)
    return d


def _scored(caps, images, kind):
    """Pairs scored by the checker -> dict(images, captions, scores, kind, attrs)."""
    details = []
    scores = data.checker_scores(caps, images, details)
    return {"images": images, "captions": np.array(caps), "scores": scores.astype(np.float32), "kind": kind,
            "attrs": attribute_targets(details)}


def make_pairs(a, split, n, world_seed, seed, path):
    """-> dict(images uint8, captions, scores, kind, attrs); cached in path."""
    d = _cached(path)
    if d is not None:
        return d
    ds = data.dataset(os.path.join(a.work, "data"), split, n, world_seed)
    caps = list(ds["captions"])
    g = np.random.default_rng(seed)
    parts = (common.load_tokenizer(a.work), common.load_text_encoder(a.work), common.load_vae(a.work))
    models = {"teacher": common.load_unet(a.work, "teacher")}
    if os.path.exists(os.path.join(common.out_dir(a.work, "student"), "config.json")):
        models["student"] = common.load_unet(a.work, "student")
    # recipes: (model, sampler, steps, guidance, weight); each prompt gets one recipe, drawn by weight.
    # The student at the adaptive run's settings (consistency, 4 steps, guidance 5: RUN_RECIPE) has the
    # largest share: routing ranks exactly those samples. 15% are real scenes with another scene's
    # caption (mismatches), 5% real scenes with their own.
    recipes = [("teacher", "ddim", 10, 5.0, 1.0), ("teacher", "ddim", 5, 2.0, 0.5), ("teacher", "ddim", 20, 3.0, 0.5)]
    if "student" in models:
        recipes += [("student", "cd", 1, 5.0, 0.75), ("student", "cd", 2, 5.0, 0.75), RUN_RECIPE]
        assert recipes.index(RUN_RECIPE) == RUN_KIND
    w = np.array([r[4] for r in recipes])
    kind = g.choice(len(recipes), n, p=w / w.sum())
    u = g.random(n)
    kind[u < 0.15] = len(recipes)  # real scene, another scene's caption
    kind[(u >= 0.15) & (u < 0.2)] = len(recipes) + 1  # real scene, its own caption
    images = np.zeros((n, C.IMAGE_SIZE, C.IMAGE_SIZE, 3), np.uint8)
    for r, (mname, sampler, steps, w, _) in enumerate(recipes):
        idx = np.nonzero(kind == r)[0]
        if len(idx) == 0:
            continue
        noise = torch.randn(len(idx), C.LATENT_CHANNELS, C.LATENT_SIZE, C.LATENT_SIZE,
                            generator=torch.Generator().manual_seed(seed + r))
        images[idx] = evaluate.generate(a.work, models[mname], sampler, [caps[i] for i in idx], noise, steps, w,
                                        seed + r, parts=parts)
        common.log(STAGE, "%s pairs: %s %s-%d w %.1f: %d samples" % (split, mname, sampler, steps, w, len(idx)))
    idx = np.nonzero(kind == len(recipes))[0]
    other = (idx + 1 + g.integers(0, n - 1, len(idx))) % n
    images[idx] = ds["images"][other]
    idx = np.nonzero(kind == len(recipes) + 1)[0]
    images[idx] = ds["images"][idx]
    d = _save(path, _scored(caps, images, kind))
    common.log(STAGE, "%s pairs: %d, checker mean %.3f, share of 1.0: %.2f" % (
        split, n, d["scores"].mean(), (d["scores"] == 1).mean()))
    return d


ATTR_KINDS = ("present", "colour", "shape", "size", "position", "relation", "background", "count")


def attribute_targets(details):
    """Checker JSON results -> float32 [N, len(ATTR_KINDS)]: the share of each kind of stated attribute
    the checker found satisfied, NaN where the caption states none of that kind (training-only
    auxiliary targets; the shipped model keeps ImageReward's single reward head)."""
    t = np.full((len(details), len(ATTR_KINDS)), np.nan, np.float32)
    for i, j in enumerate(details):
        ok, n = np.zeros(len(ATTR_KINDS)), np.zeros(len(ATTR_KINDS))
        for at in j.get("attributes", []):
            kind = at["name"].split(".")[-1]
            if kind in ATTR_KINDS:
                k = ATTR_KINDS.index(kind)
                n[k] += 1
                ok[k] += 1 if at.get("ok") else 0
        m = n > 0
        t[i, m] = ok[m] / n[m]
    return t


def make_student_pairs(a, split, n_caps, seeds, world_seed, start, seed, path):
    """Extra samples of the student at the run's settings (RUN_RECIPE) only: n_caps captions from index
    `start` of the split, each with `seeds` initial noises (the same caption drawn well and badly teaches
    the oracle to look at the image, not the caption's difficulty) -> dict like make_pairs; cached."""
    d = _cached(path)
    if d is not None:
        return d
    caps = data.captions(split, n_caps, world_seed, start=start) * seeds
    parts = (common.load_tokenizer(a.work), common.load_text_encoder(a.work), common.load_vae(a.work))
    student = common.load_unet(a.work, "student")
    _, sampler, steps, w, _ = RUN_RECIPE
    images = np.zeros((len(caps), C.IMAGE_SIZE, C.IMAGE_SIZE, 3), np.uint8)
    chunk = 1024
    for s in range(0, len(caps), chunk):
        idx = np.arange(s, min(s + chunk, len(caps)))
        noise = torch.randn(len(idx), C.LATENT_CHANNELS, C.LATENT_SIZE, C.LATENT_SIZE,
                            generator=torch.Generator().manual_seed(seed + s))
        images[idx] = evaluate.generate(a.work, student, sampler, [caps[i] for i in idx], noise, steps, w, seed + s,
                                        parts=parts)
        common.log(STAGE, "%s student pairs: %d / %d" % (split, idx[-1] + 1, len(caps)))
    d = _save(path, _scored(caps, images, np.full(len(caps), RUN_KIND)))
    common.log(STAGE, "%s student pairs: %d, checker mean %.3f" % (split, len(caps), d["scores"].mean()))
    return d


def _control_student(work, stage):
    """-> the UNet of a ControlNet recipe's student: the consistency student, or the teacher with the
    LCM-LoRA (WORK/lora/out) loaded into its wrappers."""
    if stage != "lora":
        return common.load_unet(work, stage)
    from shapes import distill_lora, lora
    cfg = common.read_json(os.path.join(common.out_dir(work, "lora"), "lora_config.json"))
    unet, wrappers = distill_lora.build_student(work, cfg["rank"], cfg["alpha"])
    lora.load(wrappers, os.path.join(common.out_dir(work, "lora"), "pytorch_lora_weights.safetensors"))
    return unet.eval()


@torch.no_grad()
def make_control_pairs(a, split, n_caps, seeds, world_seed, start, seed, path):
    """Samples drawn with the shapes ControlNet (WORK/controlnet/out, scale CONTROL_SCALE, each scene's own
    segmentation map as the condition) by each student of --control-students: n_caps scenes of the split from
    index `start`, `seeds` initial noises each (routing ranks these samples in `tandem control-eval`; the
    text-to-image pairs never show the ControlNet's look) -> dict like make_pairs; cached."""
    d = _cached(path)
    if d is not None:
        return d
    from shapes import train_controlnet
    masks, recs = data._mask_chunk(split, n_caps, world_seed, start)  # [n_caps, 64, 64] object ids
    caps = [r["caption"] for r in recs] * seeds
    masks = np.concatenate([masks] * seeds)
    parts = (common.load_tokenizer(a.work), common.load_text_encoder(a.work), common.load_vae(a.work))
    cn = train_controlnet.load_controlnet(a.work)
    images, kinds = [], []
    recipes = control_recipes(a.control_students)
    for stage, sampler, steps, w, kind in recipes:
        r = [c[0] for c in CONTROL_RECIPES].index(stage)  # noise seed per student, whichever are drawn
        model = nn_controlnet.ControlledUNet(_control_student(a.work, stage), [cn], [CONTROL_SCALE])
        noise = torch.randn(len(caps), C.LATENT_CHANNELS, C.LATENT_SIZE, C.LATENT_SIZE,
                            generator=torch.Generator().manual_seed(seed + 2 * r))
        images.append(evaluate.generate(a.work, model, sampler, caps, noise, steps, w, seed + 2 * r, parts=parts,
                                        control=masks))
        kinds.append(np.full(len(caps), kind))
        common.log(STAGE, "%s ControlNet pairs, %s: %d" % (split, stage, len(caps)))
    d = _save(path, _scored(caps * len(recipes), np.concatenate(images), np.concatenate(kinds)))
    common.log(STAGE, "%s ControlNet pairs: %d, checker mean %.3f" % (split, len(d["scores"]), d["scores"].mean()))
    return d


def ensure_attrs(d, path):
    """Adds the auxiliary attribute targets to pairs cached before they existed (re-scores them)."""
    if "attrs" not in d:
        d = _save(path, _scored(list(d["captions"]), d["images"], d["kind"]))
    return d


def mirror_caption(c):
    """The caption of the horizontally mirrored scene: 'left' and 'right' swap (the grammar's only
    words with a horizontal direction)."""
    return re.sub(r"\b(left|right)\b", lambda m: "right" if m.group(1) == "left" else "left", c)


def mirrored_pairs(d, path):
    """Horizontal mirror of every pair (image flipped, 'left' <-> 'right' in its caption), re-scored by the
    checker (it is mirror-symmetric up to pixel rounding: 2% of 300 student samples score differently
    mirrored, so the mirrored pairs get their own scores, not the originals'); cached."""
    m = _cached(path)
    if m is not None:
        return m
    caps = [mirror_caption(c) for c in d["captions"]]
    m = _save(path, _scored(caps, np.ascontiguousarray(d["images"][:, :, ::-1]), d["kind"]))
    common.log(STAGE, "mirrored pairs: %d, checker mean %.3f" % (len(caps), m["scores"].mean()))
    return m


def spearman(x, y):
    rx = np.argsort(np.argsort(x)).astype(np.float64)
    ry = np.argsort(np.argsort(y)).astype(np.float64)
    # average ranks of ties
    for r, v in ((rx, x), (ry, y)):
        for u in np.unique(v):
            m = v == u
            if m.sum() > 1:
                r[m] = r[m].mean()
    return float(np.corrcoef(rx, ry)[0, 1])


def encode_text(wp, caps):
    e = [wp.encode_35(c) for c in caps]
    return torch.tensor([x[0] for x in e]), torch.tensor([x[1] for x in e])


@torch.no_grad()
def predict(model, wp, images, caps, batch=128):
    out = []
    for s in range(0, len(caps), batch):
        ids, mask = encode_text(wp, caps[s:s + batch])
        px = nn_clip.normalize_images(data.to_float(images[s:s + batch]) * 0.5 + 0.5)
        out.append(model(px, ids, mask))
    return torch.cat(out).numpy()


def main(argv=None):
    ap = common.parser(__doc__, steps=4000, batch=64, lr=3e-4)
    ap.add_argument("--pairs", type=int, default=10000, help="training pairs to generate")
    ap.add_argument("--test-pairs", type=int, default=1000)
    ap.add_argument("--student-extra", type=int, default=5000,
                    help="extra train captions sampled by the student at the run's settings only")
    ap.add_argument("--student-seeds", type=int, default=2, help="initial noises per extra caption")
    ap.add_argument("--student-blocks", type=int, default=2,
                    help="blocks of --student-extra captions each (block b: the next captions, its own noise)")
    ap.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=True,
                    help="add every training pair mirrored left-right (caption's left/right swapped, re-scored)")
    ap.add_argument("--test-student-extra", type=int, default=1000,
                    help="extra held-out test captions of the student at the run's settings (one noise each)")
    ap.add_argument("--control-extra", type=int, default=0,
                    help="train scenes drawn with the ControlNet by each of --control-students (0: none, the "
                         "shipped recipe; the ControlNet-aware experiment of docs/CONTROLNET.md used 2500)")
    ap.add_argument("--control-seeds", type=int, default=2, help="initial noises per ControlNet scene")
    ap.add_argument("--control-students", default="student,lora",
                    help="which students of CONTROL_RECIPES draw the ControlNet scenes (comma list)")
    ap.add_argument("--test-control-extra", type=int, default=0,
                    help="held-out test scenes drawn with the ControlNet by each student (one noise each)")
    ap.add_argument("--rank-weight", type=float, default=0.5,
                    help="weight of a pairwise ranking loss (logistic on prediction differences) next to the MSE")
    ap.add_argument("--aux-weight", type=float, default=0.3,
                    help="weight of training-only per-attribute heads (checker's attribute kinds; not exported)")
    a = ap.parse_args(argv)
    recipes = control_recipes(a.control_students)  # checked before any work
    tag = "" if recipes == CONTROL_RECIPES else "_" + "_".join(r[0] for r in recipes)  # cache names
    folder = common.setup(a, STAGE)
    out = common.out_dir(a.work, STAGE)
    texts = data.captions("train", 100000, a.world_seed)
    vocab = wordpiece.train(texts)
    wordpiece.save(out, vocab)
    wp = wordpiece.WordPiece(out)
    p_tr = os.path.join(folder, "pairs_train_%d.npz" % a.pairs)
    p_te = os.path.join(folder, "pairs_test_%d.npz" % a.test_pairs)
    tr = ensure_attrs(make_pairs(a, "train", a.pairs, a.world_seed, 100, p_tr), p_tr)
    te = make_pairs(a, "test", a.test_pairs, a.world_seed + 2000, 200, p_te)
    te_run = None
    keys = ("images", "captions", "scores", "kind", "attrs")
    if a.student_extra > 0:  # captions after the a.pairs used above
        for b in range(a.student_blocks):
            ex = make_student_pairs(a, "train", a.student_extra, a.student_seeds, a.world_seed,
                                    a.pairs + b * a.student_extra, 300 + 7919 * b, os.path.join(
                                        folder, "student_train_%d_x%d%s.npz" % (
                                            a.student_extra, a.student_seeds, "_b%d" % b if b else "")))
            tr = {k: np.concatenate([tr[k], ex[k]]) for k in keys}
    if a.mirror:
        mi = mirrored_pairs(tr, os.path.join(folder, "mirrored_%d.npz" % len(tr["scores"])))
        tr = {k: np.concatenate([tr[k], mi[k]]) for k in keys}
    te_ctl = None
    if a.control_extra > 0:  # train scenes after the text-to-image captions above; mirrored on their own
        start = a.pairs + a.student_blocks * a.student_extra
        ct = make_control_pairs(a, "train", a.control_extra, a.control_seeds, a.world_seed, start, 500, os.path.join(
            folder, "control_train_%d_x%d%s.npz" % (a.control_extra, a.control_seeds, tag)))
        parts = [ct]
        if a.mirror:
            parts.append(mirrored_pairs(ct, os.path.join(folder, "control_mirrored_%d%s.npz" % (len(ct["scores"]), tag))))
        tr = {k: np.concatenate([tr[k]] + [c[k] for c in parts]) for k in keys}
    if a.test_control_extra > 0:
        te_ctl = make_control_pairs(a, "test", a.test_control_extra, 1, a.world_seed + 2000,
                                    a.test_pairs + a.test_student_extra, 600,
                                    os.path.join(folder, "control_test_%d%s.npz" % (a.test_control_extra, tag)))
    if a.test_student_extra > 0:
        te_run = make_student_pairs(a, "test", a.test_student_extra, 1, a.world_seed + 2000, a.test_pairs, 400,
                                    os.path.join(folder, "student_test_%d.npz" % a.test_student_extra))
    cfg, med = nn_blip.configs(wp.vocab_size)
    # building pairs loads UNets (their construction draws from the global generator) only when the pairs
    # are not cached yet: re-seed so that the oracle's initialisation does not depend on the cache
    torch.manual_seed(a.seed)
    model = nn_blip.ImageReward(cfg, med)
    aux = torch.nn.Linear(med["hidden_size"], len(ATTR_KINDS))  # training only
    params = list(model.parameters()) + (list(aux.parameters()) if a.aux_weight > 0 else [])
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.01)
    g = np.random.default_rng(a.seed)

    def state():
        return {"model": model.state_dict(), "aux": aux.state_dict(), "opt": opt.state_dict(),
                "np_rng": g.bit_generator.state}

    def restore(s):
        model.load_state_dict(s["model"])
        if "aux" in s:
            aux.load_state_dict(s["aux"])
        opt.load_state_dict(s["opt"])
        g.bit_generator.state = s["np_rng"]

    loop = common.Loop(a, STAGE, folder, state, restore)
    n = len(tr["scores"])
    caps = list(tr["captions"])

    def step(i):
        model.train()
        idx = g.integers(0, n, a.batch)
        ids, mask = encode_text(wp, [caps[j] for j in idx])
        x = data.to_float(tr["images"][idx])
        if g.random() < 0.5:  # no random flips (left/right matter; --mirror adds re-captioned mirrors); jitter only
            x = (x + torch.empty(len(idx), 1, 1, 1).uniform_(-0.03, 0.03)).clamp(-1, 1)
        px = nn_clip.normalize_images(x * 0.5 + 0.5)
        feats = {}
        pred = model(px, ids, mask, out=feats)
        y = torch.from_numpy(tr["scores"][idx])
        mse = F.mse_loss(pred, y)
        loss, logs = mse, {"mse": mse.item()}
        if a.rank_weight > 0:
            # logistic pairwise loss over the batch's pairs whose checker scores differ by > 0.05:
            # softplus(-(p_i - p_j) * 10) for y_i > y_j (RankNet; the scale matches scores in [0, 1])
            dy = y[:, None] - y[None, :]
            sel = dy > 0.05
            if sel.any():
                dp = (pred[:, None] - pred[None, :])[sel]
                rank = F.softplus(-10.0 * dp).mean()
                loss = loss + a.rank_weight * rank
                logs["rank"] = rank.item()
        if a.aux_weight > 0:
            t = torch.from_numpy(tr["attrs"][idx])
            m = ~torch.isnan(t)
            la = F.binary_cross_entropy_with_logits(aux(feats["text_cls"])[m], t[m])
            loss = loss + a.aux_weight * la
            logs["aux"] = la.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return logs

    done = loop.run(step)
    model.eval()
    pred = predict(model, wp, te["images"], list(te["captions"]))
    rho = spearman(pred, te["scores"])
    run = te["kind"] == RUN_KIND  # held-out student samples at the run's settings
    rho_run = spearman(pred[run], te["scores"][run]) if run.sum() > 2 else float("nan")
    rho_tr = spearman(predict(model, wp, tr["images"][:500], caps[:500]), tr["scores"][:500])
    metrics = {"step": loop.step, "minutes": loop.seconds / 60, "spearman_test": rho,
               "spearman_test_student_run": rho_run, "n_test_student_run": int(run.sum()),
               "spearman_train500": rho_tr, "n_train_pairs": n, "n_test_pairs": len(te["scores"]),
               "student_extra": a.student_extra, "student_seeds": a.student_seeds, "rank_weight": a.rank_weight,
               "aux_weight": a.aux_weight, "student_blocks": a.student_blocks, "mirror": a.mirror,
               "finished": done}
    if te_run is not None:
        p2 = predict(model, wp, te_run["images"], list(te_run["captions"]))
        metrics["spearman_test_student_extra"] = spearman(p2, te_run["scores"])
        metrics["n_test_student_extra"] = int(len(p2))
    if te_ctl is not None:
        p3 = predict(model, wp, te_ctl["images"], list(te_ctl["captions"]))
        for stage, _, _, _, kind in control_recipes(a.control_students):
            m = te_ctl["kind"] == kind
            metrics["spearman_test_control_%s" % stage] = spearman(p3[m], te_ctl["scores"][m])
        metrics["n_test_control"] = int(len(p3))
    metrics.update(control_extra=a.control_extra, control_seeds=a.control_seeds, control_students=a.control_students)
    common.save_component(model, out, cfg, "model.safetensors")
    common.write_json(os.path.join(out, "med_config.json"), med)
    common.write_json(os.path.join(out, "tokenizer_config.json"), {
        "do_lower_case": True, "model_max_length": 35, "tokenizer_class": "BertTokenizer",
        "additional_special_tokens": ["[DEC]", "[ENC]"], "bos_token": "[DEC]", "cls_token": "[CLS]",
        "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]"})
    common.write_json(os.path.join(out, "metrics.json"), metrics)
    extra = ""
    if te_run is not None:
        extra = ", extra held-out student %.3f (%d)" % (metrics["spearman_test_student_extra"], len(p2))
    if te_ctl is not None:
        extra += ", with the ControlNet: %s (%d each)" % (", ".join("%s %.3f" % (name, metrics[
            "spearman_test_control_" + name]) for name, _, _, _, _ in control_recipes(a.control_students)),
            a.test_control_extra)
    common.log(STAGE, "Spearman vs checker: held-out %.3f, held-out student at the run's settings %.3f (%d)%s, "
               "train %.3f -> %s" % (rho, rho_run, run.sum(), extra, rho_tr, out))


if __name__ == "__main__":
    main()
