#!/usr/bin/python3
"""Generates src/models/unicode_tables.{c,h}: the Unicode data the CLIP tokenizer needs.

Run with Debian's /usr/bin/python3 (3.11, unicodedata.unidata_version 14.0.0, the same Python the
tokenizer-clip fixture was produced with):

    /usr/bin/python3 tools/gen_unicode_tables.py

Tables (all derived from the Python standard library, nothing copied from other projects):
  - property ranges: letter (\\p{L}), number (\\p{N}), whitespace (str.isspace, what Python's re `\\s`
    matches), cased and case-ignorable (for the final-sigma rule of str.lower)
  - simple lowercase mapping (str.lower per code point; the one multi-code-point mapping,
    U+0130 -> 'i' U+0307, is handled in C)
  - canonical combining classes, full canonical decompositions and primary composites (NFC)
  - the fullwidth/halfwidth map of U+FF01..U+FFEF (NFKC of each) plus U+3000 -> space
  - HTML5 named character references (html.entities.html5), flagged for html.unescape (all names)
    and for the ftfy-style unescaper (names ending in ';' plus their all-uppercase variants)
"""
import html
import html.entities
import os
import sys
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_C = os.path.join(ROOT, "src", "models", "unicode_tables.c")
OUT_H = os.path.join(ROOT, "src", "models", "unicode_tables.h")
MAXCP = 0x110000

PROP_LETTER, PROP_NUMBER, PROP_SPACE, PROP_CASED, PROP_CASE_IGNORABLE = 1, 2, 4, 8, 16
# Word_Break MidLetter / MidNumLet / Single_Quote characters (part of Case_Ignorable)
MID_WORD = {0x27, 0x2E, 0x3A, 0xB7, 0x387, 0x55F, 0x5F4, 0x2018, 0x2019, 0x2024, 0x2027, 0xFE13, 0xFE52,
            0xFE55, 0xFF07, 0xFF0E, 0xFF1A}


def props(cp):
    c = chr(cp)
    cat = unicodedata.category(c)
    p = 0
    if cat[0] == "L":
        p |= PROP_LETTER
    if cat[0] == "N":
        p |= PROP_NUMBER
    if c.isspace():
        p |= PROP_SPACE
    if cat in ("Lu", "Ll", "Lt") or c.lower() != c or c.upper() != c:
        p |= PROP_CASED
    if cat in ("Mn", "Me", "Cf", "Lm", "Sk") or cp in MID_WORD:
        p |= PROP_CASE_IGNORABLE
    return p


def ranges_of(fn):
    """[(lo, hi, value)] for maximal runs of equal non-zero fn(cp)."""
    out = []
    start, cur = 0, fn(0)
    for cp in range(1, MAXCP + 1):
        v = fn(cp) if cp < MAXCP else None
        if v != cur:
            if cur:
                out.append((start, cp - 1, cur))
            start, cur = cp, v
    return out


def full_decomp(cp):
    d = unicodedata.decomposition(chr(cp))
    if not d or d.startswith("<"):
        return [cp]
    out = []
    for h in d.split():
        out.extend(full_decomp(int(h, 16)))
    return out


def emit_array(f, ctype, name, rows, per_line):
    f.write("const %s %s[%d] = {\n" % (ctype, name, max(len(rows), 1)))
    for i in range(0, len(rows), per_line):
        f.write("    " + " ".join(r + "," for r in rows[i:i + per_line]) + "\n")
    f.write("};\n")


def c_str(s):
    out = []
    for ch in s:
        o = ord(ch)
        if ch in "\\\"":
            out.append("\\" + ch)
        elif 32 <= o < 127:
            out.append(ch)
        else:
            raise ValueError("non-ASCII entity name")
    return '"' + "".join(out) + '"'


def main():
    if not sys.executable.startswith("/usr/bin/"):
        print("warning: run with Debian's /usr/bin/python3 so that the Unicode version is the documented one",
              file=sys.stderr)
    uver = unicodedata.unidata_version

    prop_ranges = ranges_of(props)

    lower = []
    for cp in range(MAXCP):
        lo = chr(cp).lower()
        if lo != chr(cp):
            if len(lo) == 1:
                lower.append((cp, ord(lo)))
            elif cp != 0x130:
                raise SystemExit("unexpected multi-code-point lowercase for U+%04X" % cp)

    ccc_ranges = ranges_of(lambda cp: unicodedata.combining(chr(cp)) if cp < MAXCP else 0)

    decomp_rows, decomp_data = [], []
    compose = []
    for cp in range(MAXCP):
        if 0xAC00 <= cp <= 0xD7A3:
            continue  # Hangul syllables: algorithmic
        d = unicodedata.decomposition(chr(cp))
        if not d or d.startswith("<"):
            continue
        full = full_decomp(cp)
        if len(full) > 255:
            raise SystemExit("decomposition too long")
        decomp_rows.append((cp, len(decomp_data), len(full)))
        decomp_data.extend(full)
        parts = [int(h, 16) for h in d.split()]
        # primary composite: a two-part canonical decomposition that NFC recomposes
        if len(parts) == 2 and unicodedata.normalize("NFC", chr(cp)) == chr(cp):
            compose.append((parts[0], parts[1], cp))
    compose.sort()

    width = [(0x3000, [0x20])]
    for cp in range(0xFF01, 0xFFF0):
        alt = unicodedata.normalize("NFKC", chr(cp))
        if alt != chr(cp):
            if len(alt) > 2:
                raise SystemExit("width map too long")
            width.append((cp, [ord(x) for x in alt]))
    width.sort()

    ent = {}
    for name, val in html.entities.html5.items():
        ent.setdefault(name, [val, 0])[1] |= 1  # html.unescape
    for name, val in html.entities.html5.items():
        if name.endswith(";"):
            ent[name][1] |= 2  # ftfy-style
            if name == name.lower():
                up = name.upper()
                if html.unescape("&" + up) == "&" + up:
                    e = ent.setdefault(up, [val.upper(), 0])
                    e[1] |= 2
    names = sorted(ent)
    for n in names:
        if len(ent[n][0]) > 3:
            raise SystemExit("entity value too long: " + n)

    with open(OUT_H, "w") as f:
        f.write("/* GENERATED by tools/gen_unicode_tables.py from Python %s unicodedata (Unicode %s)\n"
                " * and html.entities.html5. Do not edit. Lookups: src/models/unicode_text.h. */\n"
                % (sys.version.split()[0], uver))
        f.write("#ifndef TDM_MODELS_UNICODE_TABLES_H\n#define TDM_MODELS_UNICODE_TABLES_H\n\n#include <stdint.h>\n\n")
        f.write('#define TDM_UC_UNICODE_VERSION "%s"\n\n' % uver)
        f.write("typedef struct { uint32_t lo, hi; uint8_t v; } tdm_uc_range;      /* [lo, hi] -> v */\n")
        f.write("typedef struct { uint32_t cp, to; } tdm_uc_pair;\n")
        f.write("typedef struct { uint32_t cp; uint16_t off; uint8_t len; } tdm_uc_decomp; /* tdm_uc_decomp_data[off..+len) */\n")
        f.write("typedef struct { uint32_t a, b, c; } tdm_uc_compose;                /* a + b -> c, sorted by (a, b) */\n")
        f.write("typedef struct { uint32_t cp; uint32_t to[2]; uint8_t len; } tdm_uc_map2;\n")
        f.write("typedef struct { const char *name; uint32_t to[3]; uint8_t len, flags; } tdm_uc_entity; /* sorted by name (strcmp) */\n\n")
        f.write("enum { TDM_UC_LETTER = 1, TDM_UC_NUMBER = 2, TDM_UC_SPACE = 4, TDM_UC_CASED = 8, TDM_UC_CASE_IGNORABLE = 16 };\n")
        f.write("enum { TDM_UC_ENT_HTML5 = 1, TDM_UC_ENT_FTFY = 2 };\n\n")
        for decl, n in [("const tdm_uc_range tdm_uc_prop_ranges", len(prop_ranges)),
                        ("const tdm_uc_pair tdm_uc_lower_map", len(lower)),
                        ("const tdm_uc_range tdm_uc_ccc_ranges", len(ccc_ranges)),
                        ("const tdm_uc_decomp tdm_uc_decomps", len(decomp_rows)),
                        ("const uint32_t tdm_uc_decomp_data", len(decomp_data)),
                        ("const tdm_uc_compose tdm_uc_compositions", len(compose)),
                        ("const tdm_uc_map2 tdm_uc_width_map", len(width)),
                        ("const tdm_uc_entity tdm_uc_entities", len(names))]:
            f.write("extern %s[%d];\n" % (decl, n))
        f.write("\n#endif\n")

    with open(OUT_C, "w") as f:
        f.write("/* GENERATED by tools/gen_unicode_tables.py from Python %s unicodedata (Unicode %s)\n"
                " * and html.entities.html5. Do not edit. */\n" % (sys.version.split()[0], uver))
        f.write('#include "models/unicode_tables.h"\n\n')
        emit_array(f, "tdm_uc_range", "tdm_uc_prop_ranges",
                   ["{0x%X,0x%X,%d}" % r for r in prop_ranges], 5)
        emit_array(f, "tdm_uc_pair", "tdm_uc_lower_map", ["{0x%X,0x%X}" % p for p in lower], 8)
        emit_array(f, "tdm_uc_range", "tdm_uc_ccc_ranges", ["{0x%X,0x%X,%d}" % r for r in ccc_ranges], 6)
        emit_array(f, "tdm_uc_decomp", "tdm_uc_decomps", ["{0x%X,%d,%d}" % r for r in decomp_rows], 6)
        emit_array(f, "uint32_t", "tdm_uc_decomp_data", ["0x%X" % x for x in decomp_data], 12)
        emit_array(f, "tdm_uc_compose", "tdm_uc_compositions", ["{0x%X,0x%X,0x%X}" % c for c in compose], 5)
        emit_array(f, "tdm_uc_map2", "tdm_uc_width_map",
                   ["{0x%X,{0x%X,0x%X},%d}" % (cp, to[0], to[1] if len(to) > 1 else 0, len(to)) for cp, to in width],
                   4)
        rows = []
        for n in names:
            val, flags = ent[n]
            cps = [ord(x) for x in val] + [0, 0]
            rows.append("{%s,{0x%X,0x%X,0x%X},%d,%d}" % (c_str(n), cps[0], cps[1], cps[2], len(val), flags))
        emit_array(f, "tdm_uc_entity", "tdm_uc_entities", rows, 3)
    print("wrote %s and %s (Unicode %s): %d property ranges, %d lowercase, %d ccc ranges, %d decompositions, "
          "%d compositions, %d width, %d entities" % (OUT_C, OUT_H, uver, len(prop_ranges), len(lower),
                                                      len(ccc_ranges), len(decomp_rows), len(compose), len(width),
                                                      len(names)))


if __name__ == "__main__":
    main()
