"""CLIP-format byte-level BPE: training on a caption corpus, saving in the Hugging Face layout
(vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json) and an encoder with the
semantics of transformers' CLIPTokenizer (tokenization_clip.py, read, not copied):

  text -> whitespace collapse, strip, lower() -> pre-tokenise with the CLIP pattern
  (<|startoftext|> | <|endoftext|> | 's|'t|'re|'ve|'m|'ll|'d | letters+ | one digit | other non-space+)
  -> each piece's UTF-8 bytes through bytes_to_unicode -> BPE with '</w>' on the last symbol
  (repeatedly merge the adjacent pair of lowest merge rank, all its occurrences, left to right)
  -> ids from vocab.json.

Vocabulary order as openai/CLIP builds it: the 256 byte characters in bytes_to_unicode order, the same
with '</w>', one token per merge in rank order, then <|startoftext|>, <|endoftext|> (the two highest
ids, so pooling at argmax(ids) finds the first <|endoftext|>).

Limitation: Python's re has no \\p{L}/\\p{N}; letters are [^\\W\\d_] and numbers \\d, which equals the
CLIP classes on ASCII text (the caption corpus). ftfy's fix_text is not applied (a no-op on it)."""
import json
import os
import re
from collections import Counter

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
_PAT = re.compile(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+",
                  re.IGNORECASE)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


_B2U = bytes_to_unicode()


def clean(text):
    return re.sub(r"\s+", " ", text).strip().lower()


def pieces(text):
    """Pre-tokenised pieces as byte-level unicode strings."""
    return ["".join(_B2U[b] for b in p.encode("utf-8")) for p in _PAT.findall(clean(text))]


def train(texts, max_merges=2000, min_count=2):
    """Classic BPE on word counts: merge the most frequent adjacent pair (ties: the smallest pair in
    string order) until max_merges or no pair occurs min_count times. A merge whose joined string is
    already a token is skipped (keeps vocab.json one-to-one)."""
    words = Counter()
    for t in texts:
        for p in pieces(t):
            if p in (BOS, EOS):
                continue
            words[tuple(p[:-1]) + (p[-1] + "</w>",)] += 1
    words = dict(words)
    vocab = list(_B2U.values())
    vocab = vocab + [v + "</w>" for v in vocab]
    known = set(vocab)
    merges = []
    banned = set()
    while len(merges) < max_merges:
        pairs = Counter()
        for w, c in words.items():
            for a, b in zip(w[:-1], w[1:]):
                pairs[(a, b)] += c
        best = None
        for pr, c in pairs.items():
            if c < min_count or pr in banned:
                continue
            if best is None or c > best[1] or (c == best[1] and pr < best[0]):
                best = (pr, c)
        if best is None:
            break
        pr = best[0]
        joined = pr[0] + pr[1]
        if joined in known:
            banned.add(pr)
            continue
        merges.append(pr)
        known.add(joined)
        vocab.append(joined)
        nw = {}
        for w, c in words.items():
            out = []
            i = 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == pr[0] and w[i + 1] == pr[1]:
                    out.append(joined)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            nw[tuple(out)] = nw.get(tuple(out), 0) + c
        words = nw
    vocab += [BOS, EOS]
    return vocab, merges


def save(folder, vocab, merges, max_length=77):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write("%s %s\n" % (a, b))
    special = {"bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "unk_token": EOS}
    cfg = {"add_prefix_space": False, "bos_token": BOS, "clean_up_tokenization_spaces": True,
           "do_lower_case": True, "eos_token": EOS, "errors": "replace", "model_max_length": max_length,
           "pad_token": EOS, "tokenizer_class": "CLIPTokenizer", "unk_token": EOS}
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=2)


class Tokenizer:
    def __init__(self, folder):
        with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(os.path.join(folder, "merges.txt"), encoding="utf-8") as f:
            lines = f.read().strip().split("\n")[1:]
        self.ranks = {tuple(l.split()): i for i, l in enumerate(lines)}
        self.bos = self.encoder[BOS]
        self.eos = self.encoder[EOS]
        self.pad = self.eos
        self.vocab_size = len(self.encoder)
        self.cache = {}

    def bpe(self, piece):
        if piece in self.cache:
            return self.cache[piece]
        w = list(piece[:-1]) + [piece[-1] + "</w>"]
        while len(w) > 1:
            best = min(((self.ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(w[:-1], w[1:]))))
            if best[0] == 1 << 30:
                break
            a, b = w[best[1]], w[best[1] + 1]
            out = []
            i = 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            w = out
        self.cache[piece] = w
        return w

    def tokenize(self, text):
        out = []
        for p in pieces(text):
            if p in (BOS, EOS):
                out.append(p)
            else:
                out.extend(self.bpe(p))
        return out

    def encode(self, text):
        """Raw ids (no bos/eos); unknown symbols are impossible with a byte-level vocabulary."""
        return [self.encoder[t] for t in self.tokenize(text)]

    def encode_77(self, text, length=77):
        """[bos] + ids[:length-2] + [eos], padded with eos (diffusers / SD1.5 layout)."""
        ids = [self.bos] + self.encode(text)[: length - 2] + [self.eos]
        return ids + [self.pad] * (length - len(ids))
