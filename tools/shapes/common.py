"""Shared plumbing of the training stages: arguments (--work, --minutes, --resume, --seed), the
wall-clock budget, progress lines, checkpoints that resume exactly (model, optimizer, EMA, step, RNG
states), and loading the outputs of earlier stages from the work folder."""
import argparse
import copy
import json
import os
import time

import torch

from . import bpe, nn_clip, nn_diffusers, st

DEFAULT_WORK = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "build", "shapes-work"))


def parser(desc, steps, batch, lr):
    ap = argparse.ArgumentParser(description=desc)
    ap.add_argument("--work", default=DEFAULT_WORK, help="work folder (datasets, checkpoints, stage outputs)")
    ap.add_argument("--minutes", type=float, default=90.0, help="wall-clock budget of this run")
    ap.add_argument("--steps", type=int, default=steps, help="total optimisation steps (the stage's end)")
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--seed", type=int, default=0, help="training seed (world data uses --world-seed)")
    ap.add_argument("--world-seed", type=int, default=1)
    ap.add_argument("--n-train", type=int, default=60000, help="training scenes")
    ap.add_argument("--resume", action="store_true", help="continue from the stage checkpoint")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt-every", type=float, default=5.0, help="minutes between checkpoints")
    ap.add_argument("--log-every", type=int, default=50)
    return ap


def setup(a, stage):
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    d = os.path.join(a.work, stage)
    os.makedirs(d, exist_ok=True)
    return d


def log(stage, msg):
    print("[%s %s] %s" % (time.strftime("%H:%M:%S"), stage, msg), flush=True)


class Budget:
    def __init__(self, minutes):
        self.t0 = time.time()
        self.limit = minutes * 60

    def elapsed(self):
        return time.time() - self.t0

    def over(self):
        return self.elapsed() >= self.limit


def save_ckpt(path, **state):
    state["rng"] = torch.get_rng_state()
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)


def load_ckpt(path):
    s = torch.load(path)
    if "rng" in s:  # absent from a checkpoint made from exported weights (it starts a fresh stream)
        torch.set_rng_state(s["rng"])
    return s


def _cast_floats(obj, dtype):
    if torch.is_tensor(obj):
        return obj.to(dtype) if obj.is_floating_point() else obj
    if isinstance(obj, dict):
        return {k: _cast_floats(v, dtype) for k, v in obj.items()}
    return obj


LIGHT_CKPT = "ckpt_light.pt"


def lighten_ckpt(src, dst):
    """A checkpoint small enough to keep in the repository between sessions: the weights (model, EMA, LoRA)
    in float16, the step, the time and the RNG states, without the optimiser and LR-scheduler states.
    Loop resumes from it with a fresh optimiser (and a fresh warm-up), a warm restart."""
    s = torch.load(src)
    light = {k: (v if k in ("rng", "np_rng") else _cast_floats(v, torch.float16)) for k, v in s.items()
             if k not in ("opt", "sched")}
    light["light"] = True
    torch.save(light, dst + ".tmp")
    os.replace(dst + ".tmp", dst)


class EMA:
    def __init__(self, model, decay):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        for pe, p in zip(self.model.parameters(), model.parameters()):
            pe.mul_(self.decay).add_(p.detach(), alpha=1 - self.decay)


class Loop:
    """Runs step_fn(step) -> dict of floats until --steps or the budget; checkpoints every
    --ckpt-every minutes and at the end; state_fn() -> dict to checkpoint, restore_fn(dict)."""

    def __init__(self, a, stage, folder, state_fn, restore_fn):
        self.a, self.stage, self.folder = a, stage, folder
        self.state_fn, self.restore_fn = state_fn, restore_fn
        self.ckpt = os.path.join(folder, "ckpt.pt")
        self.step = 0
        self.seconds = 0.0  # training time accumulated over runs
        light = os.path.join(folder, LIGHT_CKPT)
        if a.resume and os.path.exists(self.ckpt):
            s = load_ckpt(self.ckpt)
            self.step, self.seconds = s["step"], s.get("seconds", 0.0)
            restore_fn(s)
            log(stage, "resumed at step %d (%.1f min trained so far)" % (self.step, self.seconds / 60))
        elif a.resume and os.path.exists(light):  # weights only (lighten_ckpt): fresh optimiser state
            s = _cast_floats(load_ckpt(light), torch.float32)
            fresh = state_fn()
            s.update({k: v for k, v in fresh.items() if k not in s})
            self.step, self.seconds = s["step"], s.get("seconds", 0.0)
            restore_fn(s)
            log(stage, "resumed at step %d from the weights-only %s (fresh optimiser; %.1f min trained so far)" % (
                self.step, LIGHT_CKPT, self.seconds / 60))
        elif os.path.exists(self.ckpt) and not a.resume:
            log(stage, "note: %s exists; starting over (use --resume to continue)" % self.ckpt)

    def save(self):
        save_ckpt(self.ckpt, step=self.step, seconds=self.seconds, **self.state_fn())

    def run(self, step_fn):
        a = self.a
        budget = Budget(a.minutes)
        last_ckpt = time.time()
        t_run0 = time.time()
        acc, n_acc, t_log = {}, 0, time.time()
        while self.step < a.steps and not budget.over():
            out = step_fn(self.step)
            self.step += 1
            for k, v in out.items():
                acc[k] = acc.get(k, 0.0) + float(v)
            n_acc += 1
            if self.step % a.log_every == 0 or self.step == a.steps:
                dt = (time.time() - t_log) / n_acc
                log(self.stage, "step %d/%d  %s  %.3f s/step  (run %.1f/%.0f min)" % (
                    self.step, a.steps, "  ".join("%s %.4f" % (k, v / n_acc) for k, v in acc.items()), dt,
                    budget.elapsed() / 60, a.minutes))
                acc, n_acc, t_log = {}, 0, time.time()
            if time.time() - last_ckpt > a.ckpt_every * 60:
                self.seconds += time.time() - t_run0
                t_run0 = time.time()
                self.save()
                last_ckpt = time.time()
        self.seconds += time.time() - t_run0
        self.save()
        done = self.step >= a.steps
        log(self.stage, "%s at step %d (%.1f min of training in all)" % (
            "finished" if done else "budget reached, stopped", self.step, self.seconds / 60))
        return done


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def read_json(path):
    with open(path) as f:
        return json.load(f)


# ---- stage outputs (float32 in the work folder; export converts to float16) -------------------

def out_dir(work, stage):
    return os.path.join(work, stage, "out")


def load_tokenizer(work):
    return bpe.Tokenizer(os.path.join(out_dir(work, "tokenizer")))


def load_text_encoder(work):
    d = os.path.join(out_dir(work, "clip"), "text_encoder")
    cfg = read_json(os.path.join(d, "config.json"))
    m = nn_clip.CLIPTextModel(cfg)
    m.load_state_dict(st.load(os.path.join(d, "model.safetensors")))
    return m.eval()


def load_clip(work):
    d = os.path.join(out_dir(work, "clip"), "clip")
    cfg = read_json(os.path.join(d, "config.json"))
    m = nn_clip.CLIPModel(dict(cfg["text_config"]), dict(cfg["vision_config"]), cfg["projection_dim"])
    m.load_state_dict(st.load(os.path.join(d, "model.safetensors")))
    return m.eval()


def load_vae(work):
    d = out_dir(work, "vae")
    cfg = read_json(os.path.join(d, "config.json"))
    m = nn_diffusers.AutoencoderKL(cfg)
    m.load_state_dict(st.load(os.path.join(d, "diffusion_pytorch_model.safetensors")))
    return m.eval()


def load_unet(work, stage):
    d = out_dir(work, stage)
    cfg = read_json(os.path.join(d, "config.json"))
    m = nn_diffusers.UNet2DConditionModel(cfg)
    m.load_state_dict(st.load(os.path.join(d, "diffusion_pytorch_model.safetensors")))
    return m.eval()


def save_component(module, folder, cfg, weights_name, skip=()):
    os.makedirs(folder, exist_ok=True)
    write_json(os.path.join(folder, "config.json"), cfg)
    sd = {k: v.detach().float().contiguous() for k, v in module.state_dict().items()
          if not any(k.startswith(s) for s in skip)}
    st.save(sd, os.path.join(folder, weights_name))


def ids_tensor(tok, texts, trim=False):
    """[B, 77] ids (bos, tokens, eos, eos padding). trim: cut the common padding tail (keeps one eos
    per row): causal attention makes every position up to the first eos, hence the pooled output,
    independent of later positions, so contrastive training can skip them."""
    ids = torch.tensor([tok.encode_77(t) for t in texts], dtype=torch.int64)
    if trim:
        n = int((ids != tok.pad).sum(1).max().item()) + 1
        ids = ids[:, :n]
    return ids


class TextCache:
    """Frozen text encoder outputs by caption (the UNet stages see a few thousand distinct captions)."""

    def __init__(self, tok, te, limit=100000):
        self.tok, self.te, self.cache, self.limit = tok, te, {}, limit

    @torch.no_grad()
    def __call__(self, texts):
        miss = [t for t in dict.fromkeys(texts) if t not in self.cache]
        for i in range(0, len(miss), 256):
            chunk = miss[i:i + 256]
            h = self.te(ids_tensor(self.tok, chunk))[0].half()
            if len(self.cache) < self.limit:
                for t, v in zip(chunk, h):
                    self.cache[t] = v
        return torch.stack([self.cache[t] if t in self.cache else self.te(ids_tensor(self.tok, [t]))[0][0].half()
                            for t in texts]).float()


def half_safetensors(path):
    """Rewrites a safetensors file with its float32 tensors in float16 (a finished stage kept between
    sessions: the shipped models are float16 anyway, and loading into float32 modules widens them)."""
    t = st.load(path)
    st.save({k: v.half() if v.dtype == torch.float32 else v for k, v in t.items()}, path + ".tmp")
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="checkpoint tools")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--lighten", nargs=2, metavar=("CKPT", "OUT"),
                   help="write a weights-only float16 checkpoint (see lighten_ckpt)")
    g.add_argument("--half", nargs="+", metavar="FILE", help="safetensors files to rewrite in float16")
    args = ap.parse_args()
    if args.lighten:
        lighten_ckpt(*args.lighten)
    else:
        for f in args.half:
            half_safetensors(f)
