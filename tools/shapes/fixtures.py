"""Export of `tandem check` fixture folders in the shared fixture format (case.json with kind,
config, inputs/outputs, fp32_vs_fp64; io.safetensors; model folders in the real on-disk layout).

fp32_vs_fp64 is measured the way the reference fixtures do it: the same torch module and inputs run
in float64, and the float32 outputs compared with those (max_abs_err, rel_l2_err)."""
import copy
import json
import os

import torch

from . import st

PRODUCER = "tandem tools/shapes (own PyTorch modules with diffusers/transformers names); torch %s, CPU" % torch.__version__


def perturb_(module, seed, scale=0.1):
    """Adds N(0, scale) to every 1-D parameter (norm weights, biases) so that zero-initialised biases
    and unit norms do not hide wiring mistakes (as the reference fixtures do)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() == 1:
                p.add_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype) * scale)


def fp_error(a32, a64):
    d = (a32.double() - a64).abs()
    den = a64.pow(2).sum().sqrt().item()
    num = (a32.double() - a64).pow(2).sum().sqrt().item()
    return {"max_abs_err": d.max().item(), "rel_l2_err": num / den if den > 0 else num}


def run_both(module, run_fn, inputs):
    """run_fn(module, inputs) -> dict name -> tensor. Returns (outputs f32, fp32_vs_fp64)."""
    module = module.eval()
    with torch.no_grad():
        out32 = run_fn(module.float(), {k: (v.float() if v.is_floating_point() else v) for k, v in inputs.items()})
        m64 = copy.deepcopy(module).double()
        out64 = run_fn(m64, {k: (v.double() if v.is_floating_point() else v) for k, v in inputs.items()})
    fp = {k: fp_error(out32[k], out64[k]) for k in out32}
    return {k: v.float().contiguous() for k, v in out32.items()}, fp


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def write_case(folder, kind, config, seed, inputs, outputs, input_doc, output_doc, fp, notes, extra=None):
    os.makedirs(folder, exist_ok=True)
    io = {}
    for k, v in inputs.items():
        io[k] = v if not v.is_floating_point() else v.float()
    io.update(outputs)
    st.save(io, os.path.join(folder, "io.safetensors"))
    def desc(doc, t):
        return "%s; %s %s" % (doc, "f32" if t.is_floating_point() else "i64", list(t.shape))
    case = {
        "kind": kind, "producer": PRODUCER, "config": config, "seed": seed, "model": "model",
        "inputs": {k: desc(input_doc.get(k, k), v) for k, v in inputs.items()},
        "outputs": {k: desc(output_doc.get(k.split(".")[0] if k.startswith("inter.") else k, k), v)
                    for k, v in outputs.items()},
        "fp32_vs_fp64": fp, "notes": notes,
    }
    if extra:
        case.update(extra)
    write_json(os.path.join(folder, "case.json"), case)


def save_state(module, path, dtype=torch.float32, skip=()):
    sd = {k: v.detach().to(dtype) if v.is_floating_point() else v.detach()
          for k, v in module.state_dict().items() if not any(k.startswith(s) for s in skip)}
    st.save(sd, path)
