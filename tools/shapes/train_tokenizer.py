#!/usr/bin/python3
"""Stage 1: CLIP-format byte-level BPE trained on the caption corpus (`tandem world captions`, train
split). Writes WORK/tokenizer/out/{vocab.json, merges.txt, tokenizer_config.json,
special_tokens_map.json} and, with --fixture, a `tokenizer-clip` fixture folder whose cases are
encoded by the Python encoder (tandem check compares the C tokenizer with them).

usage (from tools/): /usr/bin/python3 -m shapes.train_tokenizer [--work W] [--n 100000] [--fixture DIR]"""
import argparse
import os
import shutil
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "shapes"

from shapes import bpe, common, data, fixtures  # noqa: E402

EXTRA_CASES = [
    "", "a", "A SMALL RED CIRCLE ON THE LEFT", "  a   red\tcircle \n on the  left  ",
    "a red circle,on the left.", "a purple hexagon!", "there's a red circle", "3 red circles, 12 squares",
    "grey center", "red-ish circle_thing", "a blue square above a large yellow triangle" * 8,
    "<|startoftext|>a red circle<|endoftext|>",
]


def write_fixture(folder, tok_dir, tok, texts, seed):
    os.makedirs(folder, exist_ok=True)
    for f in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(tok_dir, f), os.path.join(folder, f))
    cases = []
    for i, t in enumerate(texts):
        ids = tok.encode(t)
        cases.append({"id": i, "text": t, "n_tokens": len(ids), "truncated": len(ids) > 75,
                      "tokens_hf": tok.tokenize(t), "ids_hf": ids, "input_ids_sd15_77": tok.encode_77(t)})
    common.write_json(os.path.join(folder, "cases.json"), {"cases": cases})
    fixtures.write_json(os.path.join(folder, "case.json"), {
        "kind": "tokenizer-clip", "producer": fixtures.PRODUCER + "; tools/shapes/bpe.py encoder",
        "config": {"vocab_size": tok.vocab_size, "bos": tok.bos, "eos": tok.eos,
                   "n_merges": len(tok.ranks), "context_length": 77},
        "seed": seed,
        "files": {"vocab.json": "shapes-world BPE vocabulary (trained by tools/shapes/train_tokenizer.py)",
                  "merges.txt": "'#version: 0.2' header then the merges in rank order",
                  "tokenizer_config.json": "CLIPTokenizer config (pad <|endoftext|>, model_max_length 77)",
                  "special_tokens_map.json": "special tokens"},
        "fields": {"ids_hf": "tools/shapes/bpe.py Tokenizer.encode(text) (CLIPTokenizer semantics: whitespace "
                             "collapse, lower, CLIP pattern, byte-level BPE); no bos/eos, no truncation",
                   "input_ids_sd15_77": "[bos] + ids[:75] + [eos], padded with eos (<|endoftext|>)",
                   "tokens_hf": "BPE strings"},
        "n_cases": len(cases),
        "notes": "Cases: held-out test-split captions, train captions and edge cases (case, whitespace, "
                 "punctuation, unknown words, digits, special tokens, truncation). ASCII only (the Python "
                 "pre-tokeniser approximates \\p{L}/\\p{N} by [^\\W\\d_] / \\d)."})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=common.DEFAULT_WORK)
    ap.add_argument("--n", type=int, default=100000, help="training captions")
    ap.add_argument("--world-seed", type=int, default=1)
    ap.add_argument("--max-merges", type=int, default=2000)
    ap.add_argument("--fixture", default=None, help="also write a tokenizer-clip fixture folder here")
    a = ap.parse_args(argv)
    t0 = time.time()
    texts = data.captions("train", a.n, a.world_seed)
    common.log("tokenizer", "%d captions (%d distinct)" % (len(texts), len(set(texts))))
    vocab, merges = bpe.train(texts, max_merges=a.max_merges)
    out = common.out_dir(a.work, "tokenizer")
    bpe.save(out, vocab, merges)
    tok = bpe.Tokenizer(out)
    lens = [len(tok.encode(t)) for t in texts[:5000]]
    common.log("tokenizer", "vocab %d (%d merges), tokens per caption mean %.1f max %d; %.1f s -> %s" % (
        len(vocab), len(merges), sum(lens) / len(lens), max(lens), time.time() - t0, out))
    if a.fixture:
        test = data.captions("test", 200, a.world_seed + 1000)
        write_fixture(a.fixture, out, tok, test + texts[:100] + EXTRA_CASES, a.world_seed)
        common.log("tokenizer", "fixture -> %s" % a.fixture)


if __name__ == "__main__":
    main()
