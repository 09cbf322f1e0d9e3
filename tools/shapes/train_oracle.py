#!/usr/bin/python3
"""Stage 6 (last): the oracle, ImageReward's architecture (shapes.nn_blip; BLIP ViT + BERT with
cross-attention + 5-layer linear head, ImageReward key names) with a WordPiece vocabulary trained on
the captions, trained to regress the checker score (`tandem score --checker`) of generated samples,
the way ImageReward learned from human ratings.

Training pairs (WORK/oracle/pairs_*.npz, built once): for train-split prompts, samples of the teacher
(DDIM with few steps and varied guidance: a spread of qualities) and of the student (1, 2, 4 steps; the
4-step guidance-5 samples the adaptive run routes are the largest share, about 37%), plus real scenes paired
with the caption of another scene (15%, mismatches) or with their own (5%); every pair scored by the
checker. Held-out pairs: the same on test-split prompts. Loss: MSE on the score; metrics: Spearman rank
correlation with the checker on the held-out pairs, and on the held-out student samples at the run's
settings alone (what routing needs).
Output: WORK/oracle/out/{config.json, med_config.json, vocab.txt, tokenizer_config.json, model.safetensors}.

usage (from tools/): /usr/bin/python3 -m shapes.train_oracle [--pairs 10000] [--minutes M] [--steps S] [--resume]"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "shapes"

from shapes import common, config as C, data, evaluate, nn_blip, nn_clip, wordpiece  # noqa: E402

STAGE = "oracle"
RUN_RECIPE = ("student", "cd", 4, 5.0, 3.0)  # the student as acceptance.sh runs it (model, sampler, steps, w, weight)


def make_pairs(a, split, n, world_seed, seed, path):
    """-> dict(images uint8, captions, scores); cached in path."""
    if os.path.exists(path):
        z = np.load(path)
        return {k: z[k] for k in z.files}
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
    scores = data.checker_scores(caps, images)
    d = {"images": images, "captions": np.array(caps), "scores": scores.astype(np.float32), "kind": kind}
    np.savez(path + ".tmp.npz", **d)
    os.replace(path + ".tmp.npz", path)
    common.log(STAGE, "%s pairs: %d, checker mean %.3f, share of 1.0: %.2f" % (split, n, scores.mean(), (scores == 1).mean()))
    return d


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
    ap = common.parser(__doc__, steps=3000, batch=64, lr=3e-4)
    ap.add_argument("--pairs", type=int, default=10000, help="training pairs to generate")
    ap.add_argument("--test-pairs", type=int, default=1000)
    a = ap.parse_args(argv)
    folder = common.setup(a, STAGE)
    out = common.out_dir(a.work, STAGE)
    texts = data.captions("train", 100000, a.world_seed)
    vocab = wordpiece.train(texts)
    wordpiece.save(out, vocab)
    wp = wordpiece.WordPiece(out)
    tr = make_pairs(a, "train", a.pairs, a.world_seed, 100, os.path.join(folder, "pairs_train_%d.npz" % a.pairs))
    te = make_pairs(a, "test", a.test_pairs, a.world_seed + 2000, 200, os.path.join(folder, "pairs_test_%d.npz" % a.test_pairs))
    cfg, med = nn_blip.configs(wp.vocab_size)
    model = nn_blip.ImageReward(cfg, med)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
    g = np.random.default_rng(a.seed)

    def state():
        return {"model": model.state_dict(), "opt": opt.state_dict(), "np_rng": g.bit_generator.state}

    def restore(s):
        model.load_state_dict(s["model"])
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
        if g.random() < 0.5:  # no flips: left/right matter; small brightness jitter only
            x = (x + torch.empty(len(idx), 1, 1, 1).uniform_(-0.03, 0.03)).clamp(-1, 1)
        px = nn_clip.normalize_images(x * 0.5 + 0.5)
        loss = F.mse_loss(model(px, ids, mask), torch.from_numpy(tr["scores"][idx]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    done = loop.run(step)
    model.eval()
    pred = predict(model, wp, te["images"], list(te["captions"]))
    rho = spearman(pred, te["scores"])
    run = te["kind"] == 5  # held-out student samples at the run's settings (RUN_RECIPE is recipe 5)
    rho_run = spearman(pred[run], te["scores"][run]) if run.sum() > 2 else float("nan")
    rho_tr = spearman(predict(model, wp, tr["images"][:500], caps[:500]), tr["scores"][:500])
    common.save_component(model, out, cfg, "model.safetensors")
    common.write_json(os.path.join(out, "med_config.json"), med)
    common.write_json(os.path.join(out, "tokenizer_config.json"), {
        "do_lower_case": True, "model_max_length": 35, "tokenizer_class": "BertTokenizer",
        "additional_special_tokens": ["[DEC]", "[ENC]"], "bos_token": "[DEC]", "cls_token": "[CLS]",
        "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]"})
    common.write_json(os.path.join(out, "metrics.json"), {
        "step": loop.step, "minutes": loop.seconds / 60, "spearman_test": rho, "spearman_test_student_run": rho_run,
        "n_test_student_run": int(run.sum()), "spearman_train500": rho_tr,
        "n_train_pairs": n, "n_test_pairs": len(te["scores"]), "finished": done})
    common.log(STAGE, "Spearman vs checker: held-out %.3f, held-out student at the run's settings %.3f (%d), "
               "train %.3f -> %s" % (rho, rho_run, run.sum(), rho_tr, out))


if __name__ == "__main__":
    main()
