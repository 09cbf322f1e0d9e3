"""Noise schedule, DDIM sampling with classifier-free guidance, and the multistep consistency
sampler, as diffusers' DDIMScheduler (leading spacing, steps_offset 1, set_alpha_to_one false: SD's
configuration) and the CD-SD1.5 code of the paper (see docs/TRAINING.md) compute them."""
import torch

T = 1000
BETA_START, BETA_END = 0.00085, 0.012


def alphas_cumprod(dtype=torch.float64):
    """scaled_linear: betas = linspace(sqrt(b0), sqrt(b1), T)^2 (computed in float32 as diffusers)."""
    betas = torch.linspace(BETA_START ** 0.5, BETA_END ** 0.5, T, dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0).to(dtype)


AC = alphas_cumprod()
FINAL_ALPHA = AC[0].item()  # set_alpha_to_one = false


def scheduler_config(class_name="DDIMScheduler"):
    return {"_class_name": class_name, "_diffusers_version": "0.27.2", "beta_end": BETA_END,
            "beta_schedule": "scaled_linear", "beta_start": BETA_START, "clip_sample": False,
            "clip_sample_range": 1.0, "dynamic_thresholding_ratio": 0.995, "num_train_timesteps": T,
            "prediction_type": "epsilon", "rescale_betas_zero_snr": False, "sample_max_value": 1.0,
            "set_alpha_to_one": False, "steps_offset": 1, "thresholding": False, "timestep_spacing": "leading",
            "trained_betas": None}


def ddim_timesteps(n):
    """leading spacing + steps_offset 1: [(n-1)r, ..., r, 0] + 1 with r = T // n (50 -> 981, ..., 1)."""
    r = T // n
    return [i * r + 1 for i in reversed(range(n))]


def cd_timesteps(k, n_grid=50):
    """k-step consistency schedule on the DDIM-n_grid grid: grid indices floor(i * n_grid / k),
    i < k (k = 5 -> 981, 781, 581, 381, 181; 4 -> 981, 741, 481, 241; 2 -> 981, 481; 1 -> 981)."""
    g = ddim_timesteps(n_grid)
    return [g[(i * n_grid) // k] for i in range(k)]


def a_of(t):
    """alpha_cumprod at integer timesteps (tensor or int); the boundary t <= 0 -> final alpha."""
    t = torch.as_tensor(t)
    return torch.where(t >= 0, AC[t.clamp(min=0)], torch.tensor(FINAL_ALPHA, dtype=AC.dtype))


def _bc(a, x):
    return a.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))


def x0_from_eps(x, eps, t, boundary=False):
    """(x - sqrt(1-a) eps) / sqrt(a); boundary: alpha := 1 where t <= 1 (CD-SD1.5: f(x, 1) = x)."""
    a = a_of(t).to(x.dtype)
    if a.dim() == 0:
        a = a.expand(x.shape[0])
    if boundary:
        tt = torch.as_tensor(t).expand(x.shape[0])
        a = torch.where(tt <= 1, torch.ones_like(a), a)
    a = _bc(a, x)
    return (x - (1 - a).sqrt() * eps) / a.sqrt()


def ddim_step(x, eps, t, t_prev):
    """eta = 0: x0 = x0_from_eps; x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev) eps."""
    x0 = x0_from_eps(x, eps, t)
    ap = a_of(t_prev).to(x.dtype)
    if ap.dim() == 0:
        ap = ap.expand(x.shape[0])
    ap = _bc(ap, x)
    return ap.sqrt() * x0 + (1 - ap).sqrt() * eps


def add_noise(x0, noise, t):
    a = _bc(a_of(t).to(x0.dtype), x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def cfg_eps(unet, x, t, ctx, ctx_uncond, w):
    """Classifier-free guidance: eps_u + w (eps_c - eps_u) (one batched UNet call); w = 1: cond only."""
    B = x.shape[0]
    tt = torch.as_tensor(t, dtype=torch.float32)
    if tt.dim() == 0:
        tt = tt.expand(B)
    if w == 1.0:
        return unet(x, tt, ctx)
    e = unet(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([ctx_uncond, ctx]))
    eu, ec = e[:B], e[B:]
    return eu + w * (ec - eu)


@torch.no_grad()
def sample_ddim(unet, noise, ctx, ctx_uncond, steps=50, w=5.0):
    x = noise
    ts = ddim_timesteps(steps)
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        x = ddim_step(x, cfg_eps(unet, x, t, ctx, ctx_uncond, w), t, t_prev)
    return x


@torch.no_grad()
def sample_consistency(unet, noise, ctx, ctx_uncond, steps=4, w=5.0, generator=None, renoise=None):
    """Multistep consistency sampling (CD-SD1.5 'stochastic' sampler): for t_i in cd_timesteps(k):
    x0 = f(x, t_i) = x0_from_eps(CFG eps); before the next step x = sqrt(a_next) x0 + sqrt(1-a_next) z.
    Returns the last x0 (the released code re-noises it to t = 1 and applies the identity boundary:
    that adds noise of std 0.041, which we omit). renoise: optional list of noise tensors [k-1]."""
    ts = cd_timesteps(steps)
    x = noise
    x0 = None
    for i, t in enumerate(ts):
        x0 = x0_from_eps(x, cfg_eps(unet, x, t, ctx, ctx_uncond, w), t)
        if i + 1 < len(ts):
            z = renoise[i] if renoise is not None else torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = add_noise(x0, z, ts[i + 1])
    return x0
