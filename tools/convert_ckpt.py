#!/usr/bin/python3
"""Convert a PyTorch pickle checkpoint (.ckpt, .pt, .pth, .bin) to .safetensors for tandem.

tandem refuses pickle files because unpickling can execute arbitrary code. Run this once, where PyTorch
is installed, on a file you trust enough to open with PyTorch's restricted loader:

    /usr/bin/python3 tools/convert_ckpt.py model.ckpt [model.safetensors] [--half] [--keep-ema]

The file is opened with torch.load(weights_only=True) (PyTorch >= 1.13), which only rebuilds tensors
and plain containers and refuses any other object, so a malicious pickle fails instead of running. The
checkpoint's "state_dict" (Lightning/LDM) or the top-level dict is flattened to "a.b.c" names; by default
the model_ema.* copy that training checkpoints carry is dropped (--keep-ema keeps it). Tensors are written
contiguous, little-endian, sorted by name, with 8-byte header padding. --half stores float32 as float16.
"""
import json
import struct
import sys


def dtype_table(torch):
    return {
        torch.float32: ("F32", 4), torch.float16: ("F16", 2), torch.bfloat16: ("BF16", 2),
        torch.float64: ("F64", 8), torch.int64: ("I64", 8), torch.int32: ("I32", 4),
        torch.int16: ("I16", 2), torch.int8: ("I8", 1), torch.uint8: ("U8", 1), torch.bool: ("BOOL", 1),
    }


def flatten(prefix, obj, out, torch):
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out, torch)
    # other values (step counters, hyperparameters) are not weights: skipped


def write_safetensors(path, tensors, torch, half, metadata):
    """Writes {name: tensor} as safetensors: sorted names, contiguous little-endian data, header padded
    to 8 bytes; float32 stored as float16 when half. Returns the data size in bytes. ValueError on a
    dtype safetensors lacks."""
    table = dtype_table(torch)
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        if half and t.dtype == torch.float32:
            t = t.half()
        if t.dtype not in table:
            raise ValueError(f"tensor '{name}': dtype {t.dtype} not supported")
        code, size = table[t.dtype]
        data = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        if t.numel() and len(data) != t.numel() * size:  # view(uint8) needs a byte-compatible layout
            data = t.numpy().tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = metadata
    hdr = json.dumps(header, separators=(",", ":")).encode()
    hdr += b" " * ((8 - len(hdr) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)))
        f.write(hdr)
        for b in blobs:
            f.write(b)
    return offset


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    flags = {a for a in argv if a.startswith("--")}
    if not args or "--help" in flags:
        print(__doc__)
        return 0 if "--help" in flags else 2
    src = args[0]
    dst = args[1] if len(args) > 1 else src.rsplit(".", 1)[0] + ".safetensors"
    try:
        import torch
    except ImportError:
        print("convert_ckpt: PyTorch is needed (Debian: apt-get install python3-torch)", file=sys.stderr)
        return 1
    table = dtype_table(torch)
    try:
        ckpt = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as e:  # the restricted unpickler refuses anything but tensors and containers
        print(f"convert_ckpt: {src}: refused or unreadable: {e}", file=sys.stderr)
        return 1
    if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        ckpt = ckpt["state_dict"]
    tensors = {}
    flatten("", ckpt, tensors, torch)
    if "--keep-ema" not in flags:
        tensors = {k: v for k, v in tensors.items() if not k.startswith("model_ema.")}
    if not tensors:
        print(f"convert_ckpt: {src}: no tensors found", file=sys.stderr)
        return 1
    try:
        nbytes = write_safetensors(dst, tensors, torch, "--half" in flags,
                                   {"format": "pt", "converted_by": "tandem tools/convert_ckpt.py"})
    except ValueError as e:
        print(f"convert_ckpt: {e}", file=sys.stderr)
        return 1
    offset = nbytes
    print(f"{dst}: {len(tensors)} tensors, {offset / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
