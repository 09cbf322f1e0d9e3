/* CLIP byte-level BPE tokenizer (SD1.x/SD2.x/SDXL text encoders, CLIP-based oracles).
 *
 * Reproduces transformers' slow CLIPTokenizer with ftfy installed (what diffusers feeds the text
 * encoder): text cleaning (a port of the ftfy.fix_text steps that matter for prompts, whitespace
 * collapse, Unicode lowercase), the CLIP pre-tokenisation regex, byte-to-unicode mapping and BPE with
 * '</w>' word ends. openai/CLIP's simple_tokenizer cleaning (html.unescape twice) is an option.
 * docs/TOKENIZER.md lists what is and is not covered, and the emphasis syntax.
 *
 * Files: vocab.json + merges.txt in the Hugging Face layout (a model's tokenizer/ folder);
 * tokenizer_config.json / special_tokens_map.json there, when present, give the pad token and the
 * model max length. */
#ifndef TDM_MODELS_CLIP_TOKENIZER_H
#define TDM_MODELS_CLIP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define TDM_CLIP_CONTEXT 77      /* tokens per window: bos + 75 + eos */
#define TDM_CLIP_CHUNK 75        /* content tokens per window */
#define TDM_CLIP_MAX_TEXT (1 << 20) /* longest prompt accepted, in bytes */

typedef struct tdm_clip_tokenizer tdm_clip_tokenizer;

/* Loads a tokenizer. `path` is either a folder holding vocab.json + merges.txt (+ optional
 * tokenizer_config.json, special_tokens_map.json) or the path of a vocab.json whose folder holds
 * merges.txt. Errors name the file and line (merges) or key (vocab). */
tdm_code tdm_clip_tokenizer_load(tdm_clip_tokenizer **out, const char *path, tdm_status *st);
/* Same with explicit file paths; config_dir (may be NULL) is searched for the two config files. */
tdm_code tdm_clip_tokenizer_load_files(tdm_clip_tokenizer **out, const char *vocab_json, const char *merges_txt,
                                       const char *config_dir, tdm_status *st);
void tdm_clip_tokenizer_free(tdm_clip_tokenizer *tok);

/* Properties of a loaded tokenizer. */
int tdm_clip_vocab_size(const tdm_clip_tokenizer *tok);
int tdm_clip_bos_id(const tdm_clip_tokenizer *tok);       /* <|startoftext|> (49406) */
int tdm_clip_eos_id(const tdm_clip_tokenizer *tok);       /* <|endoftext|> (49407) */
int tdm_clip_pad_id(const tdm_clip_tokenizer *tok);       /* from the config files; eos when absent */
int tdm_clip_max_length(const tdm_clip_tokenizer *tok);   /* model_max_length (77 when absent/absurd) */
/* Pad token string ("<|endoftext|>" for SD1.x, "!" for SD2.x / SDXL tokenizer_2). */
const char *tdm_clip_pad_token(const tdm_clip_tokenizer *tok);
/* Token string of id (byte-level unicode, '</w>' word ends), NULL when out of range. */
const char *tdm_clip_token_str(const tdm_clip_tokenizer *tok, int id);
/* Id of a token string, -1 when absent. */
int tdm_clip_token_id(const tdm_clip_tokenizer *tok, const char *token);

/* Text handling options (shared by tokenize and encode_windows). */
typedef enum tdm_clip_clean_mode {
    TDM_CLIP_CLEAN_HF = 0,    /* transformers CLIPTokenizer + ftfy (diffusers; default) */
    TDM_CLIP_CLEAN_OPENAI = 1 /* openai/CLIP simple_tokenizer: ftfy, then html.unescape twice */
} tdm_clip_clean_mode;

typedef struct tdm_clip_prompt_opts {
    int clean_mode;      /* tdm_clip_clean_mode */
    const char *split_token; /* NULL, or a token string that is cut out of the raw text as its own
                              * token before cleaning. CLIPTokenizer.from_pretrained does this for the
                              * pad token: diffusers' SDXL tokenizer_2 (pad '!') turns every literal
                              * '!' into id 0. Pass tdm_clip_pad_token(tok) to reproduce it. */
} tdm_clip_prompt_opts;

/* Raw BPE ids of text (UTF-8; invalid bytes become U+FFFD), no bos/eos, no truncation. *ids is
 * malloc'ed (caller frees; NULL when *n = 0). opts may be NULL (defaults). */
tdm_code tdm_clip_tokenize(const tdm_clip_tokenizer *tok, const char *text, int32_t **ids, int *n, tdm_status *st);
tdm_code tdm_clip_tokenize_ex(const tdm_clip_tokenizer *tok, const char *text, const tdm_clip_prompt_opts *opts,
                              int32_t **ids, int *n, tdm_status *st);
/* Same for text[len] that may hold NUL characters (Python strings can: ftfy removes them). */
tdm_code tdm_clip_tokenize_n(const tdm_clip_tokenizer *tok, const char *text, size_t len,
                             const tdm_clip_prompt_opts *opts, int32_t **ids, int *n, tdm_status *st);

/* Prompt -> K windows of 77 tokens: [bos, up to 75 tokens, eos, pad...] and per-token weights. */
typedef struct tdm_clip_encode_opts {
    tdm_clip_prompt_opts text;
    int truncate;        /* 1: only the first window (diffusers); 0: K = max(1, ceil(n/75)) windows */
    int emphasis;        /* 1: parse A1111 emphasis: (x) x1.1, [x] /1.1, (x:1.3), \( \) escapes, BREAK */
    int pad_id;          /* -1: the tokenizer's pad id */
    int comma_backtrack; /* A1111 comma_padding_backtrack (emphasis mode only; A1111 default 20); 0 = off */
    int max_windows;     /* refuse prompts needing more windows (0: 64) */
} tdm_clip_encode_opts;

void tdm_clip_encode_opts_init(tdm_clip_encode_opts *o); /* HF cleaning, no truncation, no emphasis */

typedef struct tdm_clip_windows {
    int n_windows;    /* K >= 1 */
    int window_len;   /* 77 */
    int32_t *ids;     /* [K, 77] */
    float *weights;   /* [K, 77] emphasis multipliers; 1 for bos/eos/pad and without emphasis */
    int n_tokens;     /* content tokens of the prompt (before truncation) */
    int truncated;    /* 1 when content tokens were dropped (truncate = 1 and n_tokens > 75) */
} tdm_clip_windows;

tdm_code tdm_clip_encode_windows(const tdm_clip_tokenizer *tok, const char *prompt, const tdm_clip_encode_opts *opts,
                                 tdm_clip_windows *out, tdm_status *st);
tdm_code tdm_clip_encode_windows_n(const tdm_clip_tokenizer *tok, const char *prompt, size_t len,
                                   const tdm_clip_encode_opts *opts, tdm_clip_windows *out, tdm_status *st);
void tdm_clip_windows_free(tdm_clip_windows *w);

/* ---- A1111 emphasis ---------------------------------------------------------------------------- */

/* One fragment of parsed prompt text with its weight (modules/prompt_parser.parse_prompt_attention).
 * is_break marks a BREAK (weight meaningless). */
typedef struct tdm_clip_fragment {
    char *text;   /* NUL-terminated; len bytes (may hold NULs when parsed with _n) */
    size_t len;
    float weight;
    int is_break;
} tdm_clip_fragment;

/* Parses A1111 emphasis syntax into fragments (malloc'ed array, free with tdm_clip_fragments_free).
 * Adjacent fragments with equal weights are merged, as A1111 does. */
tdm_code tdm_clip_parse_emphasis(const char *text, tdm_clip_fragment **frags, int *n, tdm_status *st);
tdm_code tdm_clip_parse_emphasis_n(const char *text, size_t len, tdm_clip_fragment **frags, int *n, tdm_status *st);
void tdm_clip_fragments_free(tdm_clip_fragment *frags, int n);

/* Applies per-token emphasis to encoder hidden states of one window, as A1111 ("Original" emphasis,
 * modules/sd_hijack_clip.py) and sd.cpp apply_token_weights do:
 *     m0 = mean(h);  h[t, c] *= w[t];  m1 = mean(h);  h *= m0 / m1
 * (means over all T*C values, accumulated in double; the rescale is skipped when m1 == 0).
 * hidden [T, C], weights [T]. The _n form takes T; the short form is T = 77. */
void tdm_clip_apply_emphasis_n(float *hidden /* [T, C] */, const float *weights /* [T] */, int T, int C);
void tdm_clip_apply_emphasis(float *hidden /* [77, C] */, const float *weights /* [77] */, int C);

/* ---- text cleaning (exposed for tests) ---------------------------------------------------------- */

/* The cleaned, lowercased text the pre-tokeniser sees (UTF-8, malloc'ed). For TDM_CLIP_CLEAN_HF this
 * is whitespace_clean(fix_text(text)).lower(); special tokens are not split out here. */
tdm_code tdm_clip_clean_text(const char *text, int clean_mode, char **out, tdm_status *st);

#endif
