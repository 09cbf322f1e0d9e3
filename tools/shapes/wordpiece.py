"""WordPiece vocabulary (BERT vocab.txt layout: one token per line, id = line index) trained on the
caption corpus, and the encoder of BertTokenizer (BasicTokenizer lower-casing + punctuation split,
greedy longest-match-first WordPiece with '##' continuations, [UNK] for a word that cannot be
matched) followed by ImageReward's call: [CLS] ids [SEP], truncated and padded with [PAD] to 35.

Vocabulary: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, then every character of the corpus and its
'##' form, then the words seen at least min_count times (most frequent first); [DEC] and [ENC] are
added after it as ImageReward's init_tokenizer does (so vocab_size = lines + 2)."""
import os
import unicodedata
from collections import Counter

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _is_punct(ch):
    o = ord(ch)
    return 33 <= o <= 47 or 58 <= o <= 64 or 91 <= o <= 96 or 123 <= o <= 126 or unicodedata.category(ch).startswith("P")


def basic_tokens(text):
    text = "".join(" " if ch.isspace() else ch for ch in text if ch not in "\x00\ufffd")
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    out = []
    for w in text.split():
        cur = ""
        for ch in w:
            if _is_punct(ch):
                if cur:
                    out.append(cur)
                    cur = ""
                out.append(ch)
            else:
                cur += ch
        if cur:
            out.append(cur)
    return out


def train(texts, min_count=1):
    words = Counter(w for t in texts for w in basic_tokens(t))
    chars = sorted({c for w in words for c in w})
    vocab = SPECIAL + chars + ["##" + c for c in chars]
    seen = set(vocab)
    for w, c in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])):
        if c >= min_count and w not in seen:
            vocab.append(w)
            seen.add(w)
    return vocab


def save(folder, vocab, max_length=35):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")


class WordPiece:
    def __init__(self, folder):
        with open(os.path.join(folder, "vocab.txt"), encoding="utf-8") as f:
            toks = [l.rstrip("\n") for l in f]
        self.vocab = {t: i for i, t in enumerate(toks)}
        self.vocab_size = len(toks) + 2  # + [DEC], [ENC]
        self.pad, self.unk, self.cls, self.sep = (self.vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]"))

    def wordpiece(self, w):
        if len(w) > 100:
            return [self.unk]
        out, s = [], 0
        while s < len(w):
            e = len(w)
            cur = None
            while s < e:
                sub = w[s:e] if s == 0 else "##" + w[s:e]
                if sub in self.vocab:
                    cur = self.vocab[sub]
                    break
                e -= 1
            if cur is None:
                return [self.unk]
            out.append(cur)
            s = e
        return out

    def encode(self, text):
        return [i for w in basic_tokens(text) for i in self.wordpiece(w)]

    def encode_35(self, text, length=35):
        ids = [self.cls] + self.encode(text)[: length - 2] + [self.sep]
        mask = [1] * len(ids) + [0] * (length - len(ids))
        return ids + [self.pad] * (length - len(ids)), mask
