#!/usr/bin/python3
"""Final stage: gathers the stage outputs of the work folder into models/shapes/ (float16
safetensors + configs, the diffusers StableDiffusionPipeline layout plus the student UNet, the full
CLIP and the oracle), writes shapes_family.json (sampling defaults) and the model card README.md, and
exports `tandem check` fixtures that compare the C engine with PyTorch on the SHIPPED weights
(tests/fixtures/shapes-trained-*; their case.json points at ../../../models/shapes/<component>, no
weights are duplicated).

usage (from tools/): /usr/bin/python3 -m shapes.export [--work W] [--out ../models/shapes] [--fixtures ../tests/fixtures]"""
import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "shapes"

from shapes import common, config as C, diffusion, fixtures as FX, st  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def copy_f16(src_dir, dst_dir, weights, extra=()):
    os.makedirs(dst_dir, exist_ok=True)
    sd = st.load(os.path.join(src_dir, weights))
    st.save({k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}, os.path.join(dst_dir, weights),
            metadata={"format": "pt"})
    for f in ("config.json",) + tuple(extra):
        shutil.copy(os.path.join(src_dir, f), os.path.join(dst_dir, f))


def size_mb(folder):
    n = 0
    for d, _, fs in os.walk(folder):
        for f in fs:
            n += os.path.getsize(os.path.join(d, f))
    return n / 1e6


def metrics(work, stage):
    p = os.path.join(common.out_dir(work, stage), "metrics.json")
    return common.read_json(p) if os.path.exists(p) else {}


def export_models(work, out, teacher_w, student_w, student_steps):
    W = lambda s: common.out_dir(work, s)  # noqa: E731
    os.makedirs(out, exist_ok=True)
    tokd = os.path.join(out, "tokenizer")
    os.makedirs(tokd, exist_ok=True)
    for f in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(W("tokenizer"), f), os.path.join(tokd, f))
    copy_f16(os.path.join(W("clip"), "text_encoder"), os.path.join(out, "text_encoder"), "model.safetensors")
    copy_f16(os.path.join(W("clip"), "clip"), os.path.join(out, "clip"), "model.safetensors",
             ("preprocessor_config.json",))
    copy_f16(W("vae"), os.path.join(out, "vae"), "diffusion_pytorch_model.safetensors")
    copy_f16(W("teacher"), os.path.join(out, "unet"), "diffusion_pytorch_model.safetensors")
    have_student = os.path.exists(os.path.join(W("student"), "config.json"))
    if have_student:
        copy_f16(W("student"), os.path.join(out, "unet_student"), "diffusion_pytorch_model.safetensors")
    have_oracle = os.path.exists(os.path.join(W("oracle"), "config.json"))
    if have_oracle:
        copy_f16(W("oracle"), os.path.join(out, "oracle"), "model.safetensors", ("med_config.json", "vocab.txt",
                                                                                 "tokenizer_config.json"))
    os.makedirs(os.path.join(out, "scheduler"), exist_ok=True)
    common.write_json(os.path.join(out, "scheduler", "scheduler_config.json"), diffusion.scheduler_config())
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.27.2",
             "feature_extractor": [None, None], "image_encoder": [None, None], "requires_safety_checker": False,
             "safety_checker": [None, None], "scheduler": ["diffusers", "DDIMScheduler"],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
    if have_student:
        index["unet_student"] = ["diffusers", "UNet2DConditionModel"]
    common.write_json(os.path.join(out, "model_index.json"), index)
    fam = {
        "teacher": {"component": "unet", "sampler": "ddim", "steps": 50, "guidance_scale": teacher_w,
                    "timesteps": diffusion.ddim_timesteps(50)},
        "student": {"component": "unet_student", "sampler": "consistency-multistep", "steps": student_steps,
                    "guidance_scale": student_w, "timesteps": diffusion.cd_timesteps(student_steps),
                    "grid": "DDIM-50 (leading, steps_offset 1)", "boundary": "alpha_cumprod := 1 at t <= 1",
                    "renoise": "x = sqrt(a_next) x0 + sqrt(1 - a_next) z with fresh z between steps; output x0"},
        "negative_prompt": "", "image_size": C.IMAGE_SIZE, "latent_size": C.LATENT_SIZE,
        "clip": "clip/ (transformers CLIPModel, 64x64 input, CLIPScore oracle)",
        "oracle": "oracle/ (ImageReward architecture)" if have_oracle else None,
    }
    if os.path.exists(os.path.join(W("lora"), "pytorch_lora_weights.safetensors")):
        from shapes import distill_lora
        fam["lcm_lora"] = {"file": "lcm_lora/pytorch_lora_weights.safetensors", "base": "unet", "sampler": "lcm",
                           "steps": 4, "guidance_scale": 1.0, "timesteps": distill_lora.lcm_timesteps(4),
                           "original_inference_steps": 50}
    common.write_json(os.path.join(out, "shapes_family.json"), fam)
    return have_student, have_oracle


def trained_fixtures(work, out_models, fx_root):
    """Fixtures on the shipped (float16) weights: the torch modules run the f16 weights upcast to
    float32 (and float64 for fp32_vs_fp64)."""
    rel = lambda comp: os.path.relpath(os.path.join(out_models, comp), os.path.join(fx_root, "x"))  # noqa: E731
    tok = common.load_tokenizer(work)
    prompts = ["a small red circle on the left", "on a white background, a blue square above a large yellow triangle"]
    ids = common.ids_tensor(tok, prompts)
    # text encoder
    from shapes import nn_clip, nn_diffusers
    tcfg = common.read_json(os.path.join(out_models, "text_encoder", "config.json"))
    te = nn_clip.CLIPTextModel(tcfg)
    te.load_state_dict({k: v.float() for k, v in st.load(os.path.join(out_models, "text_encoder", "model.safetensors")).items()})

    def run_te(mod, x):
        hs = []
        last, pooled = mod.text_model(x["input_ids"], hs)
        return {"last_hidden_state": last, "pooler_output": pooled,
                "penultimate_final_ln": mod.text_model.final_layer_norm(hs[-2])}
    outs, fp = FX.run_both(te, run_te, {"input_ids": ids})
    d = os.path.join(fx_root, "shapes-trained-clip-text")
    FX.write_case(d, "clip-text-shapes-trained", tcfg, None, {"input_ids": ids}, outs,
                  {"input_ids": "tokenizer ids of %r" % prompts}, {}, fp,
                  "Shipped text encoder (float16 weights upcast to float32).", {"model": rel("text_encoder")})
    ctx = outs["last_hidden_state"]
    # UNets
    for comp in ("unet", "unet_student"):
        folder = os.path.join(out_models, comp)
        if not os.path.exists(folder):
            continue
        ucfg = common.read_json(os.path.join(folder, "config.json"))
        u = nn_diffusers.UNet2DConditionModel(ucfg)
        u.load_state_dict({k: v.float() for k, v in st.load(os.path.join(folder, "diffusion_pytorch_model.safetensors")).items()})
        g = torch.Generator().manual_seed(7)
        inputs = {"sample": torch.randn(2, 4, C.LATENT_SIZE, C.LATENT_SIZE, generator=g, dtype=torch.float64).float(),
                  "timestep": torch.tensor([981.0, 241.0]), "encoder_hidden_states": ctx}

        def run_u(mod, x):
            inter = {}
            y = mod(x["sample"], x["timestep"], x["encoder_hidden_states"], inter)
            o = {"noise_pred": y}
            o.update({"inter." + k: v for k, v in inter.items()})
            return o
        outs, fp = FX.run_both(u, run_u, inputs)
        name = "shapes-trained-" + comp.replace("_", "-")
        FX.write_case(os.path.join(fx_root, name), "unet2d_condition", ucfg, 7, inputs, outs,
                      {"encoder_hidden_states": "shipped text encoder last_hidden_state of two captions"},
                      {"noise_pred": "UNet output", "inter": "intermediate (debug aid)"}, fp,
                      "Shipped %s (float16 weights upcast to float32)." % comp, {"model": rel(comp)})
    # VAE
    vcfg = common.read_json(os.path.join(out_models, "vae", "config.json"))
    vae = nn_diffusers.AutoencoderKL(vcfg)
    vae.load_state_dict({k: v.float() for k, v in st.load(os.path.join(out_models, "vae", "diffusion_pytorch_model.safetensors")).items()})
    from shapes import data
    test = data.dataset(os.path.join(work, "data"), "test", 500, 1001)
    img = data.to_float(test["images"][:1])
    with torch.no_grad():
        lat = vae.encode(img)[0]

    def run_v(mod, x):
        inter = {}
        mean, logvar, moments = mod.encode(x["image"], inter)
        return {"mean": mean, "logvar": logvar, "moments": moments, "decoded": mod.decode(x["latent"], inter)}
    outs, fp = FX.run_both(vae, run_v, {"image": img, "latent": lat})
    FX.write_case(os.path.join(fx_root, "shapes-trained-vae"), "autoencoder_kl", vcfg, None,
                  {"image": img, "latent": lat}, outs, {"image": "a test-split scene in [-1,1]",
                                                       "latent": "its posterior mean (unscaled)"},
                  {"decoded": "decode(latent), RAW"}, fp, "Shipped VAE (float16 weights upcast to float32).",
                  {"model": rel("vae")})


def trained_lora_fixture(out_models, fx_root):
    """shapes-trained-lora (kind "lora", checked by `tandem check` like lora-sd15-tiny): the shipped teacher UNet
    with the shipped LCM-LoRA (float16 upcast) at scales 1 and 0.5, unfused (x W + s alpha/r up(down(x))), on
    the inputs of shapes-trained-unet at the LCM sampler's first and last timesteps."""
    from shapes import distill_lora, lora, nn_diffusers
    path = os.path.join(out_models, "lcm_lora", "pytorch_lora_weights.safetensors")
    src = os.path.join(fx_root, "shapes-trained-unet", "io.safetensors")
    if not os.path.exists(path) or not os.path.exists(src):
        return
    rel = lambda p: os.path.relpath(os.path.join(out_models, p), os.path.join(fx_root, "x"))  # noqa: E731
    folder = os.path.join(out_models, "unet")
    ucfg = common.read_json(os.path.join(folder, "config.json"))
    u = nn_diffusers.UNet2DConditionModel(ucfg)
    u.load_state_dict({k: v.float() for k, v in st.load(os.path.join(folder, "diffusion_pytorch_model.safetensors")).items()})
    cfg = common.read_json(os.path.join(out_models, "lcm_lora", "lora_config.json"))
    wr = lora.inject(u, cfg["rank"], cfg["alpha"])
    lora.load(wr, path)
    io = st.load(src)
    ts = distill_lora.lcm_timesteps(4)
    inputs = {"sample": io["sample"], "timestep": torch.tensor([float(ts[0]), float(ts[-1])]),
              "encoder_hidden_states": io["encoder_hidden_states"]}

    def run(mod, x):
        ws = [m for m in mod.modules() if isinstance(m, (lora.LoRALinear, lora.LoRAConv2d))]
        args = (x["sample"], x["timestep"], x["encoder_hidden_states"])
        o = {"noise_pred_lora_1_0": mod(*args)}
        for w in ws:
            w.alpha *= 0.5  # scale 0.5: (0.5 alpha) / r
        o["noise_pred_lora_0_5"] = mod(*args)
        for w in ws:
            w.alpha *= 2.0
            w.enabled = False
        o["noise_pred_base"] = mod(*args)
        for w in ws:
            w.enabled = True
        return o
    outs, fp = FX.run_both(u, run, inputs)
    # The merge path (--lora-merge) stores W' = W + s alpha/r up @ down in the base weights' float16:
    # its reference merges in float32 and rounds W' to float16, as tandem does.
    merged = lora.merged_state_dict(u, wr)
    base_w = {p + ".weight": w.base.weight.detach() for p, w in wr.items()}  # W of every adapted module
    for scale, name in ((1.0, "1_0"), (0.5, "0_5")):
        sd = {}
        for k, v in merged.items():
            if k in base_w:
                w0 = base_w[k]
                v = (w0 + scale * (v - w0)).half().float()  # W + s (W' - W), rounded as stored
            sd[k] = v
        m = nn_diffusers.UNet2DConditionModel(ucfg)
        m.load_state_dict(sd)
        o, f = FX.run_both(m, lambda mod, x: {"noise_pred_lora_%s_merged_f16" % name: mod(
            x["sample"], x["timestep"], x["encoder_hidden_states"])}, inputs)
        outs.update(o)
        fp.update(f)
    FX.write_case(os.path.join(fx_root, "shapes-trained-lora"), "lora", cfg, None, inputs, outs,
                  {"sample": "= shapes-trained-unet sample", "encoder_hidden_states": "= shapes-trained-unet "
                   "encoder_hidden_states", "timestep": "the LCM sampler's first and last of 4 steps"},
                  {"noise_pred_base": "teacher UNet output without the LoRA",
                   "noise_pred_lora_1_0": "with the LoRA at scale 1 (unfused)",
                   "noise_pred_lora_0_5": "with the LoRA at scale 0.5 (unfused)",
                   "noise_pred_lora_1_0_merged_f16": "the LoRA merged at scale 1 in float32, the merged weights "
                   "rounded to float16 (what --lora-merge stores for float16 base weights)",
                   "noise_pred_lora_0_5_merged_f16": "the same at scale 0.5"}, fp,
                  "Shipped teacher UNet + shipped LCM-LoRA (float16 weights upcast to float32).",
                  {"base_model": rel("unet"), "lora_file": rel("lcm_lora/pytorch_lora_weights.safetensors")})


def engine_scores(path, run):
    """Checker scores of one run ("student" / "teacher") per sample of a `tandem eval` log (samples.jsonl:
    the shipped float16 weights through the C code) -> {sample: (prompt, score)}; {} when the file is missing."""
    if not os.path.exists(path):
        return {}
    out = {}
    with open(path) as f:
        next(f, None)  # the settings header
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:  # a line torn by an interruption
                continue
            if r.get(run, {}).get("checker") is not None:
                out[r["sample"]] = (r["prompt"], r[run]["checker"])
    return out


def engine_eval(teacher_log, student_log):
    """The students of student_log against the teachers of teacher_log, paired by sample (same prompt file,
    seed rule and seeds: the same initial noise) -> dict(n, student, teacher, wins, losses, ties), or {}."""
    te, stu = engine_scores(teacher_log, "teacher"), engine_scores(student_log, "student")
    both = sorted(set(te) & set(stu))
    if not both:
        return {}
    if any(te[i][0] != stu[i][0] for i in both):
        raise SystemExit("export: %s and %s hold other prompts" % (teacher_log, student_log))
    st, t = np.array([[stu[i][1], te[i][1]] for i in both], dtype=np.float64).T
    return {"n": len(both), "student": st.mean(), "teacher": t.mean(), "wins": int((st > t).sum()),
            "losses": int((st < t).sum()), "ties": int((st == t).sum())}


def model_card(work, out, tw, sw, ssteps):
    m = {s: metrics(work, s) for s in ("tokenizer", "clip", "vae", "teacher", "student", "oracle", "controlnet",
                                          "lora")}
    ev = common.read_json(os.path.join(work, "eval", "metrics.json")) if os.path.exists(
        os.path.join(work, "eval", "metrics.json")) else {}
    fmt = lambda d, k, f="%.3f": (f % d[k]) if k in d and d[k] is not None else "(not measured)"  # noqa: E731
    mins = lambda s: fmt(m[s], "minutes", "%.1f min")  # noqa: E731
    steps = lambda s: fmt(m[s], "step", "%d")  # noqa: E731
    lines = [
        "# shapes-world model family", "",
        "A complete Stable-Diffusion-style model family trained from scratch on the procedural shapes world "
        "(docs/WORLD.md) by tools/shapes (docs/TRAINING.md). Same classes and on-disk layouts as real models: "
        "a diffusers StableDiffusionPipeline folder (model_index.json) plus the consistency-distilled student "
        "(`unet_student/`), the full CLIP (`clip/`) and the oracle (`oracle/`); beside them a ControlNet "
        "(`controlnet/`) and a second, consistency-distilled student as a LoRA on the teacher (`lcm_lora/`). "
        "Weights are float16 safetensors.",
        "", "| component | class | size |", "|---|---|---|"]
    for comp, cls in [("tokenizer", "CLIPTokenizer (byte-level BPE trained on the captions)"),
                      ("text_encoder", "CLIPTextModel"), ("unet", "UNet2DConditionModel (teacher)"),
                      ("unet_student", "UNet2DConditionModel (student, consistency-distilled)"),
                      ("vae", "AutoencoderKL (64x64x3 <-> 16x16x4)"), ("scheduler", "DDIMScheduler config"),
                      ("clip", "CLIPModel (text + vision towers)"), ("oracle", "ImageReward architecture"),
                      ("controlnet", "ControlNetModel (segmentation silhouettes; on the teacher)"),
                      ("lcm_lora", "LCM-LoRA on unet/ (kohya keys; consistency-distilled, EMA target): lcm sampler, 4 steps, "
                       "guidance 1")]:
        if os.path.exists(os.path.join(out, comp)):
            lines.append("| `%s/` | %s | %.2f MB |" % (comp, cls, size_mb(os.path.join(out, comp))))
    lines += ["", "Total: %.1f MB." % size_mb(out), "",
              "## Data", "",
              "Train split of the shapes world (`tandem world sample --split train --seed 1`), 64x64 scenes with "
              "grammar captions; evaluation on the test split (`--seed 1001`), which holds the held-out "
              "(colour, shape) pairs (purple triangle, orange circle, green square) never seen in training.", "",
              "## Training (2-core CPU, tools/shapes/build_all.sh)", "",
              "| stage | steps | time |", "|---|---|---|"]
    total = 0.0
    for s in ("clip", "vae", "teacher", "student", "lora", "oracle", "controlnet"):
        if m[s]:
            lines.append("| %s | %s | %s |" % (s, steps(s), mins(s)))
            total += m[s].get("minutes") or 0.0
    lines += ["", "Training time in all: %.0f min (%.1f hours) on 2 cores, plus rendering and encoding the training "
              "scenes, the oracle's sample pairs and the evaluations (docs/TRAINING.md). In build_all.sh every stage fits "
              "the 90-minute stage budget (the teacher runs as two stages of 3500 steps; the shipped one was trained "
              "in four budget-stopped runs)." % (total, total / 60)]
    lines += ["", "## Sampling", "",
              "- teacher: DDIM 50 steps (leading, steps_offset 1), classifier-free guidance %.1f, negative prompt \"\"." % tw,
              "- student: %d-step multistep consistency sampler on the DDIM-50 grid (timesteps %s), guidance %.1f "
              "(real CFG, two UNet passes a step), boundary alpha := 1 at t <= 1." % (
                  ssteps, ", ".join(map(str, diffusion.cd_timesteps(ssteps))), sw),
              "- LCM-LoRA student: the teacher's UNet + `lcm_lora/`, LCM sampler 4 steps (timesteps 999, 759, 499, "
              "259), guidance 1 (one UNet pass a step).", "",
              "## Metrics (checker = `tandem score --checker`)", "",
              "| metric | value | bar |", "|---|---|---|",
              "| CLIP text->image top-1 (test, groups of 100) | %s | >= 0.8 |" % fmt(m["clip"], "test_retrieval_top1_group100"),
              "| VAE test PSNR | %s | |" % fmt(m["vae"], "test_psnr_db", "%.2f dB"),
              "| teacher one-object mean (DDIM-50) | %s | >= 0.90 |" % fmt(ev.get("teacher", {}), "mean_one_object"),
              "| teacher two-object mean (DDIM-50) | %s | >= 0.70 |" % fmt(ev.get("teacher", {}), "mean_two_object"),
              "| student mean / teacher mean | %s | >= 0.90 |" % fmt(ev, "student_over_teacher"),
              "| student wins among differing prompts (PyTorch, float32) | %s | >= 0.30 |" % fmt(ev, "student_wins_among_differing"),
              "| LCM-LoRA student (4 steps, guidance 1) / teacher, quick eval | %s | |" % fmt(m["lora"], "student_over_teacher"),
              "| oracle Spearman vs checker (held-out samples) | %s | >= 0.6 |" % fmt(m["oracle"], "spearman_test"),
              "| ControlNet placement IoU (teacher + ControlNet, training's quick eval) | %s | |" % fmt(m["controlnet"], "mean_iou"),
              "", "Evaluated on %s test prompts (same initial noise for teacher and student) in PyTorch with the float32 "
              "weights (shapes.evaluate). The quick ControlNet evaluation thresholds colours; the acceptance "
              "measurement (segmentation IoU in the engine, docs/CONTROLNET.md) is higher." % ev.get("n_prompts", "(no)")]
    teacher_log = os.path.join(work, "engine_eval", "samples.jsonl")
    ee = engine_eval(teacher_log, teacher_log)
    el = engine_eval(teacher_log, os.path.join(work, "engine_eval_lora", "samples.jsonl"))
    if ee:
        lines += ["", "### In the engine", "",
                  "`tandem eval` on the first %d test prompts (`tandem world captions --split test --seed 1001`, "
                  "seed per prompt), the shipped float16 weights through the C code; each student against the "
                  "teacher's DDIM-50 sample from the same initial noise:" % ee["n"], "",
                  "| metric | consistency student (`unet_student/`, 4 steps, w %.1f) | LCM-LoRA student (`lcm_lora/`, "
                  "4 steps, w 1) | bar |" % sw, "|---|---|---|---|",
                  "| teacher mean (DDIM-50) | %.3f | | |" % ee["teacher"]]
        cols = [ee, el if el and el["n"] == ee["n"] else {}]
        cell = lambda e, f: f(e) if e else "(not measured)"  # noqa: E731
        lines += ["| student mean | %s | %s | |" % tuple(cell(e, lambda e: "%.3f" % e["student"]) for e in cols),
                  "| student mean / teacher mean | %s | %s | >= 0.90 |" % tuple(
                      cell(e, lambda e: "%.3f" % (e["student"] / e["teacher"])) for e in cols),
                  "| student wins among differing prompts | %s | %s | >= 0.30 |" % tuple(
                      cell(e, lambda e: "%.3f (%d of %d; ties %d)" % (
                          e["wins"] / max(e["wins"] + e["losses"], 1), e["wins"], e["wins"] + e["losses"], e["ties"]))
                      for e in cols)]
    lines += [
              "", "## Reproduce", "", "```", "tools/shapes/build_all.sh   # all stages + export + fixtures", "```", ""]
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(lines))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=common.DEFAULT_WORK)
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "shapes"))
    ap.add_argument("--fixtures", default=os.path.join(ROOT, "tests", "fixtures"))
    ap.add_argument("--teacher-guidance", type=float, default=5.0)
    ap.add_argument("--student-guidance", type=float, default=5.0)
    ap.add_argument("--student-steps", type=int, default=4)
    ap.add_argument("--card-only", action="store_true",
                    help="rewrite the model card (README.md) only, e.g. after the engine evaluation")
    a = ap.parse_args(argv)
    if a.card_only:
        model_card(a.work, a.out, a.teacher_guidance, a.student_guidance, a.student_steps)
        return
    torch.set_num_threads(2)
    export_models(a.work, a.out, a.teacher_guidance, a.student_guidance, a.student_steps)
    from shapes import train_controlnet
    train_controlnet.export(a.work, a.out)  # out/controlnet/ when the stage ran (not a pipeline component)
    from shapes import distill_lora
    if os.path.exists(os.path.join(common.out_dir(a.work, "lora"), "pytorch_lora_weights.safetensors")):
        distill_lora.export(a.work, a.out)  # out/lcm_lora/ (LCM-LoRA on unet/; not a pipeline component)
    trained_fixtures(a.work, a.out, a.fixtures)
    train_controlnet.trained_fixture(a.work, a.out, a.fixtures)
    trained_lora_fixture(a.out, a.fixtures)
    model_card(a.work, a.out, a.teacher_guidance, a.student_guidance, a.student_steps)
    common.log("export", "%s: %.1f MB" % (a.out, size_mb(a.out)))


if __name__ == "__main__":
    main()
